-- test_train.lua — training end to end on tiny synthetic data: the loss
-- falls; a resumed run equals a straight one bit for bit; the SQLite rows of
-- a run; a failing script and Ctrl-C leave the history and checkpoints
-- intact; two runs share one runs.db; one sampler step against the closed form;
-- the fused optimiser pass against the separate calls.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_train'
os.execute('mkdir -p ' .. tmp)

local exe = (function()
   local a, i = arg, 0
   while a[i - 1] do i = i - 1 end
   return a[i]
end)()

-- 64 synthetic 8x8 images: a bright square at one of four places. Written as
-- an uncompressed IDX file, which the reader takes like the .gz ones.
local function u32be(n)
   return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                      math.floor(n / 256) % 256, n % 256)
end
local IDX = tmp .. '/synthetic-idx3-ubyte'
do
   local parts = {'\0\0\8\3', u32be(64), u32be(8), u32be(8)}
   for n = 0, 63 do
      local q = n % 4
      local oy, ox = (q < 2) and 1 or 5, (q % 2 == 0) and 1 or 5
      for y = 0, 7 do
         for x = 0, 7 do
            local on = y >= oy and y < oy + 2 and x >= ox and x < ox + 2
            parts[#parts + 1] = string.char(on and 255 or 0)
         end
      end
   end
   local f = assert(io.open(IDX, 'wb'))
   f:write(table.concat(parts))
   f:close()
end

local function tiny_model(seed)
   return ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0.1, in_ch = 1, out_ch = 1, resolution = 8, seed = seed or 1}
end

local function run_script(body, name)
   local path = ('%s/%s.lua'):format(tmp, name)
   local f = assert(io.open(path, 'w'))
   f:write(body)
   f:close()
   return path
end

local function sh(cmd)
   local p = io.popen(cmd .. ' 2>&1; echo "rc=$?"')
   local out = p:read('*a')
   p:close()
   local rc = tonumber(out:match('rc=(%d+)%s*$'))
   return rc, out
end

local function query(db, sql, params)
   local rl = core.runlog_open(db)
   local rows = rl:query(sql, params)
   rl:close()
   return rows
end

function tests.loss_falls_on_synthetic_data()
   local m = tiny_model(1)
   local losses = {}
   local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 50}, data = core.dataset_idx(IDX),
      steps = 120, batch = 16, lr = 3e-3, warmup = 10, ema_decay = 0.9, seed = 5,
      db = tmp .. '/falls.db', name = 'falls', progress = false, sample_n = 8,
      on_step = function(step, info) losses[step] = info.loss end}
   T.assert_eq(r.status, 'finished')
   local first, last = 0, 0
   for i = 1, 20 do first = first + losses[i] / 20; last = last + losses[100 + i] / 20 end
   T.assert_true(last < 0.6 * first, ('mean loss of the last 20 steps %.4f vs the first 20 %.4f'):format(last, first))
end

function tests.sqlite_rows_of_a_run()
   local db = tmp .. '/rows.db'
   local m = tiny_model(2)
   local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = core.dataset_idx(IDX),
      steps = 12, batch = 8, seed = 3, db = db, name = 'rows', config = {answer = 42},
      checkpoint_every = 5, keep_checkpoints = 5, sample_n = 8, progress = false}
   local rows = query(db, 'SELECT * FROM runs WHERE run_id = :id', {id = r.run.id})
   T.assert_eq(rows[1].status, 'finished')
   T.assert_eq(rows[1].name, 'rows')
   T.assert_eq(rows[1].seed, 3)
   T.assert_eq(ddpm.json.decode(rows[1].config_json).answer, 42)
   T.assert_true(#rows[1].script_sha256 == 64, 'script hash stored')
   T.assert_true(rows[1].end_time >= rows[1].start_time, 'end time set')
   T.assert_eq(ddpm.json.decode(rows[1].env_json).binary_sha256, (core.sha256_file(exe)),
               'env_json names the binary that made the run')
   local m = query(db, "SELECT count(*) AS n, min(step) AS a, max(step) AS b FROM metrics_v WHERE run_id = :id AND key = 'loss'", {id = r.run.id})
   T.assert_eq({m[1].n, m[1].a, m[1].b}, {12, 1, 12})
   local ck = query(db, 'SELECT step, path, sha256 FROM checkpoints WHERE run_id = :id ORDER BY step', {id = r.run.id})
   T.assert_eq(#ck, 3)   -- steps 5, 10 and the final 12
   T.assert_eq(ck[3].step, 12)
   T.assert_true(io.open(ck[3].path) ~= nil, 'checkpoint file exists')
   local art = query(db, "SELECT kind, path FROM artifacts WHERE run_id = :id", {id = r.run.id})
   T.assert_eq(art[1].kind, 'sample_grid')
   local f = io.open(art[1].path, 'rb')
   T.assert_true(f and f:read(8) == '\137PNG\r\n\26\n', 'the sample grid is a PNG')
   -- the checkpoint is a model file too: the EMA loads under its prefix
   local e = tiny_model(9)
   e:load(ck[3].path, {prefix = 'ema.', strict = false})
   T.assert_true(e:flat_params():equal(r.ema:flat_params()), 'EMA weights round-trip through the checkpoint')
end

local resume_script = [[
local ddpm = require 'ddpm'
local core = ddpm.core
local steps, resume, out, db = tonumber(arg[1]), arg[2], arg[3], arg[4]
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0.1, in_ch = 1, out_ch = 1, resolution = 8, seed = 1}
local lsm = arg[6] == 'loss-second-moment'
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = lsm and 10 or 30}, data = core.dataset_idx(arg[5]),
   steps = steps, batch = 12, lr = 1e-3, warmup = 4, ema_decay = 0.95, seed = 11, flip = true,
   db = db, name = 'resume', progress = false, sample_n = 0, checkpoint_every = 6,
   resume = resume ~= '-' and resume or nil,
   schedule_sampler = arg[6], schedule_sampler_opts = lsm and {history = 1} or nil}
local st = {params = m:flat_params(), ema = r.ema:flat_params(), m = r.adam:m(), v = r.adam:v()}
if r.tsampler then st.tsampler = r.tsampler:state(); st.probs = r.tsampler:probs() end
core.save_safetensors(out, st)
print('CKPT ' .. r.checkpoint)
if r.tsampler then print('WARM ' .. tostring(r.tsampler:warm())) end
]]

function tests.resume_is_bit_exact()
   local script = run_script(resume_script, 'resume')
   local db = tmp .. '/resume.db'
   local rc, out = sh(('%s %s 12 - %s/straight.st %s %s'):format(exe, script, tmp, db, IDX))
   T.assert_eq(rc, 0, out)
   rc, out = sh(('%s %s 6 - %s/half.st %s %s'):format(exe, script, tmp, db, IDX))
   T.assert_eq(rc, 0, out)
   local ckpt = out:match('CKPT (%S+)')
   T.assert_true(ckpt ~= nil, out)
   rc, out = sh(('%s %s 12 %s %s/resumed.st %s %s'):format(exe, script, ckpt, tmp, db, IDX))
   T.assert_eq(rc, 0, out)
   local a = core.load_safetensors(tmp .. '/straight.st')
   local b = core.load_safetensors(tmp .. '/resumed.st')
   for _, k in ipairs{'params', 'ema', 'm', 'v'} do
      T.assert_true(a[k]:equal(b[k]), k .. ' after 6 + 6 resumed steps equal 12 straight steps bit for bit')
   end
   local c = core.load_safetensors(tmp .. '/half.st')
   T.assert_true(not a.params:equal(c.params), 'and differ from the 6-step state (the test can fail)')
end

-- The same with t drawn by importance from the loss history (T = 10, a
-- history of 1): the sampler is warm by step 6, so the resumed half draws
-- non-uniform t from the history stored in the checkpoint.
function tests.resume_is_bit_exact_with_loss_second_moment_sampling()
   local script = run_script(resume_script, 'resume')
   local db = tmp .. '/resume_lsm.db'
   local lsm = 'loss-second-moment'
   local rc, out = sh(('%s %s 12 - %s/lsm_straight.st %s %s %s'):format(exe, script, tmp, db, IDX, lsm))
   T.assert_eq(rc, 0, out)
   rc, out = sh(('%s %s 6 - %s/lsm_half.st %s %s %s'):format(exe, script, tmp, db, IDX, lsm))
   T.assert_eq(rc, 0, out)
   T.assert_true(out:find('WARM true', 1, true) ~= nil, 'every t has its history by step 6: ' .. out)
   local ckpt = out:match('CKPT (%S+)')
   rc, out = sh(('%s %s 12 %s %s/lsm_resumed.st %s %s %s'):format(exe, script, ckpt, tmp, db, IDX, lsm))
   T.assert_eq(rc, 0, out)
   local a = core.load_safetensors(tmp .. '/lsm_straight.st')
   local b = core.load_safetensors(tmp .. '/lsm_resumed.st')
   for _, k in ipairs{'params', 'ema', 'm', 'v', 'tsampler'} do
      T.assert_true(a[k]:equal(b[k]), k .. ' after 6 + 6 resumed steps equal 12 straight steps bit for bit')
   end
   local p, pmin, pmax = a.probs, math.huge, 0
   for i = 1, 10 do pmin = math.min(pmin, p[i]); pmax = math.max(pmax, p[i]) end
   T.assert_true(pmax > 1.5 * pmin, ('p_t is no longer uniform (%.4f .. %.4f)'):format(pmin, pmax))
   -- a checkpoint of uniform-t training cannot silently resume with the sampler
   rc, out = sh(('%s %s 6 - %s/uni_half.st %s %s'):format(exe, script, tmp, db, IDX))
   T.assert_eq(rc, 0, out)
   local uck = out:match('CKPT (%S+)')
   rc, out = sh(('%s %s 12 %s %s/x.st %s %s %s'):format(exe, script, uck, tmp, db, IDX, lsm))
   T.assert_true(rc ~= 0 and out:find('no timestep-sampler state', 1, true) ~= nil, out)
end

function tests.importance_weighted_loss()
   local m = tiny_model(4)
   m:training()
   local d = ddpm.diffusion{T = 8, loss_type = 'kl'}
   local s = d:tsampler{history = 1, uniform_prob = 0.1}
   local x0 = ddpm.rand({4, 1, 8, 8}, 7):mul_(2):add_(-1)
   -- warm the history by hand: t has loss (t + 1)^2
   local ts, ls = {}, core.zeros{8}
   for t = 0, 7 do ts[t + 1] = t; ls[t + 1] = (t + 1) ^ 2 end
   s:update(ts, ls)
   T.assert_true(s:warm(), 'warm after one loss per t')
   local pw, sum = {}, 0
   for t = 0, 7 do pw[t + 1] = (t + 1) ^ 2; sum = sum + pw[t + 1] end
   local p = s:probs()
   for t = 1, 8 do T.assert_near(p[t], 0.9 * pw[t] / sum + 0.1 / 8, 1e-6, 'p_t') end
   local rng = {t_seed = 3, t_counter = 0, eps_seed = 4, eps_counter = 0, sampler = s}
   m:zero_grad()
   local loss, losses, t = d:loss(m, x0, rng)
   local want = 0
   for n = 1, 4 do want = want + losses[n] / (8 * p[t[n] + 1]) / 4 end
   T.assert_near(loss, want, 1e-5 * math.abs(want), 'loss = mean of L_n / (T p_t)')
   -- the history (of 1) now holds the last new loss of each drawn t
   local st, last = s:state(), {}
   for n = 1, 4 do last[t[n]] = losses[n] end
   for tt, l in pairs(last) do T.assert_eq(st[tt + 1][2], l, 'history of t = ' .. tt) end
   T.assert_error(function() d:loss(m, x0, {t_seed = 1, eps_seed = 2, sampler = core.tsampler(9)}) end,
                  'sampler has T = 9')
   T.assert_error(function()
      ddpm.train{model = m, diffusion = d, data = core.dataset_idx(IDX), steps = 1, batch = 2,
                 schedule_sampler = 'importance', progress = false, db = tmp .. '/x.db'}
   end, "schedule_sampler must be 'uniform' or 'loss-second-moment'")
end

function tests.failing_script_marks_run_failed()
   local db = tmp .. '/fail.db'
   local script = run_script(([[
local ddpm = require 'ddpm'
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8}
ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = ddpm.core.dataset_idx(%q),
   steps = 50, batch = 4, db = %q, progress = false, checkpoint_every = 3,
   on_step = function(step) if step == 7 then error('boom at step 7') end end}
]]):format(IDX, db), 'fail')
   local rc, out = sh(exe .. ' ' .. script)
   T.assert_eq(rc, 1, out)
   T.assert_true(out:find('boom at step 7', 1, true) ~= nil, out)
   local r = query(db, 'SELECT run_id, status, error_text FROM runs')[1]
   T.assert_eq(r.status, 'failed')
   T.assert_true(r.error_text:find('boom at step 7', 1, true) and r.error_text:find('traceback', 1, true),
                 'traceback stored: ' .. tostring(r.error_text))
   local m = query(db, "SELECT max(step) AS s FROM metrics_v WHERE key = 'loss'")[1]
   T.assert_eq(m.s, 7)
   local ck = query(db, 'SELECT path FROM checkpoints ORDER BY step DESC')[1]
   T.assert_true(ck and core.load_safetensors(ck.path) ~= nil, 'the last checkpoint still loads')
end

function tests.unfinished_plain_loop_is_marked_failed()
   local db = tmp .. '/plain.db'
   local script = run_script(([[
local ddpm = require 'ddpm'
local run = ddpm.log.start{db = %q, name = 'plain', config = {lr = 1}}
for step = 1, 5 do run:metric(step, 'loss', 1 / step) end
error('plain loop died')
]]):format(db), 'plain')
   local rc, out = sh(exe .. ' ' .. script)
   T.assert_eq(rc, 1, out)
   local r = query(db, 'SELECT status, error_text FROM runs')[1]
   T.assert_eq(r.status, 'failed')
   T.assert_true(r.error_text:find('plain loop died', 1, true) ~= nil, tostring(r.error_text))
   T.assert_eq(query(db, 'SELECT count(*) AS n FROM metrics')[1].n, 5)
end

function tests.sigint_checkpoints_and_marks_interrupted()
   local db = tmp .. '/int.db'
   local marker = tmp .. '/int.started'
   local script = run_script(([[
local ddpm = require 'ddpm'
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8}
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = ddpm.core.dataset_idx(%q),
   steps = 1000000, batch = 4, db = %q, progress = false,
   on_step = function(step) if step == 3 then io.open(%q, 'w'):close() end end}
print('STATUS ' .. r.status .. ' ' .. r.step)
]]):format(IDX, db, marker), 'int')
   local rc, out = sh(([[
%s %s > %s/int.out 2>&1 & pid=$!
for i in $(seq 1 300); do [ -e %s ] && break; sleep 0.1; done
kill -INT $pid; wait $pid; echo "exit=$?"; cat %s/int.out]]):format(exe, script, tmp, marker, tmp))
   T.assert_true(out:find('exit=0', 1, true) ~= nil, out)
   local step = tonumber(out:match('STATUS interrupted (%d+)'))
   T.assert_true(step and step >= 3, out)
   local r = query(db, 'SELECT run_id, status FROM runs')[1]
   T.assert_eq(r.status, 'interrupted')
   local ck = query(db, 'SELECT step, path FROM checkpoints')
   T.assert_eq(#ck, 1)
   T.assert_eq(ck[1].step, step)
   local st = core.load_safetensors(ck[1].path)
   T.assert_true(st['adam.m'] ~= nil, 'checkpoint loads')
   T.assert_eq(query(db, "SELECT max(step) AS s FROM metrics_v WHERE key = 'loss'")[1].s, step)
end

-- Ctrl-C during the sample grid at the end of training (T = 20000 steps of
-- sampling) stops the sampling: 'interrupted', exit 0, the final checkpoint.
function tests.sigint_while_sampling_stops_the_sampling()
   local db = tmp .. '/int_sample.db'
   local marker = tmp .. '/int_sample.started'
   local script = run_script(([[
local ddpm = require 'ddpm'
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8}
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20000}, data = ddpm.core.dataset_idx(%q),
   steps = 5, batch = 4, db = %q, progress = false, sample_n = 4,
   on_step = function(step) if step == 5 then io.open(%q, 'w'):close() end end}
print('STATUS ' .. r.status .. ' ' .. r.step .. ' ' .. tostring(r.samples))
]]):format(IDX, db, marker), 'int_sample')
   local t0 = core.time()
   local rc, out = sh(([[
%s %s > %s/int_sample.out 2>&1 & pid=$!
for i in $(seq 1 300); do [ -e %s ] && break; sleep 0.1; done
sleep 0.5; kill -INT $pid; wait $pid; echo "exit=$?"; cat %s/int_sample.out]]):format(exe, script, tmp, marker, tmp))
   T.assert_true(out:find('exit=0', 1, true) ~= nil, out)
   T.assert_true(out:find('STATUS interrupted 5 nil', 1, true) ~= nil, out)
   T.assert_true(out:find('interrupted while sampling at step 5', 1, true) ~= nil, out)
   T.assert_eq(query(db, 'SELECT status FROM runs')[1].status, 'interrupted')
   local ck = query(db, 'SELECT step FROM checkpoints')
   T.assert_eq(#ck, 1)
   T.assert_eq(ck[1].step, 5)
   T.assert_eq(query(db, 'SELECT count(*) AS n FROM artifacts')[1].n, 0, 'no sample grid')
end

function tests.two_runs_share_one_db()
   local db = tmp .. '/shared.db'
   local script = run_script(([[
local ddpm = require 'ddpm'
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8}
ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = ddpm.core.dataset_idx(%q),
   steps = 25, batch = 4, db = %q, progress = false, sample_n = 0, seed = tonumber(arg[1])}
]]):format(IDX, db), 'shared')
   local rc, out = sh(('%s %s 1 & %s %s 2 & wait'):format(exe, script, exe, script))
   T.assert_eq(rc, 0, out)
   local rows = query(db, "SELECT r.status, count(m.step) AS n FROM runs r JOIN metrics_v m USING (run_id) WHERE m.key = 'loss' GROUP BY r.run_id")
   T.assert_eq(#rows, 2)
   for _, r in ipairs(rows) do
      T.assert_eq(r.status, 'finished')
      T.assert_eq(r.n, 25)
   end
end

-- ddpm.train's optimiser pass: adam:step with the clip's scale, the EMA and
-- zero_grads gives the bits of clip_grad_norm, adam:step, ema_update and a
-- zeroed gradient in turn, over 3 steps (a ragged length, clipping on in
-- the first, off in the later ones).
function tests.fused_optimiser_step_equals_the_separate_calls()
   local n, lr, clip, decay = 1000003, 1e-3, 30.0, 0.99
   local w1, e1 = ddpm.randn({n}, 1), ddpm.randn({n}, 2)
   local w2, e2 = w1:clone(), e1:clone()
   local a1, a2 = core.adam(n), core.adam(n)
   local clipped = 0
   for k = 1, 3 do
      local g1 = ddpm.randn({n}, 10 + k):mul_(k == 1 and 1 or 1e-3)
      local g2 = g1:clone()
      local norm = core.clip_grad_norm(g1, clip)
      a1:step(w1, g1, lr)
      core.ema_update(e1, w1, decay)
      local norm2 = core.l2_norm(g2)
      T.assert_eq(norm2, norm, 'the same norm')
      if norm2 > clip then clipped = clipped + 1 end
      a2:step(w2, g2, lr, {grad_scale = norm2 > clip and clip / norm2 or 0, ema = e2,
                            ema_decay = decay, zero_grads = true})
      T.assert_true(w1:equal(w2), 'step ' .. k .. ': parameters equal bit for bit')
      T.assert_true(e1:equal(e2), 'step ' .. k .. ': EMA equal bit for bit')
      T.assert_eq(core.l2_norm(g2), 0, 'step ' .. k .. ': gradients zeroed')
   end
   T.assert_eq(clipped, 1, 'the first step was clipped, the others not')
   T.assert_true(not w1:equal(ddpm.randn({n}, 1)), 'the parameters moved (the test can fail)')
   local ok, err = pcall(function() a2:step(w2, e2:clone(), lr, {ema = e2, ema_decay = 2}) end)
   T.assert_true(not ok and tostring(err):find('ema_decay', 1, true) ~= nil, tostring(err))
end

function tests.sampler_step_matches_closed_form()
   -- x_{t-1} = c1 clip(x0_hat) + c2 x_t + sqrt(beta_t) z, x0_hat from eps (docs/math.md §2.1, §4.2)
   local d = ddpm.diffusion{T = 1000}
   local s = d.sched
   local xt = ddpm.tensor{{{{0.3, -0.7}, {1.2, 0.05}}}}
   local eps = ddpm.tensor{{{{0.1, 0.4}, {-0.2, 0.9}}}}
   local z = ddpm.tensor{{{{0.5, -1.0}, {0.25, 2.0}}}}
   local t = 400
   local out = core.p_sample_step(s, eps, xt, t, z, {mean_type = 'eps', var_type = 'fixedlarge', clip = true})
   local ab, beta = s:get('alphas_cumprod', t), s:get('betas', t)
   local c1, c2 = s:get('posterior_mean_coef1', t), s:get('posterior_mean_coef2', t)
   for i = 1, 2 do
      for j = 1, 2 do
         local x, e = xt:get(1, 1, i, j), eps:get(1, 1, i, j)
         local x0 = math.sqrt(1 / ab) * x - math.sqrt(1 / ab - 1) * e
         x0 = math.max(-1, math.min(1, x0))
         local want = c1 * x0 + c2 * x + math.sqrt(beta) * z:get(1, 1, i, j)
         T.assert_near(out:get(1, 1, i, j), want, 1e-5)
      end
   end
end

return tests
