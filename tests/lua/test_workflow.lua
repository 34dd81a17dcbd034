-- test_workflow.lua — the library side of the research workflow: diff:loss
-- with its defaults, ddpm.train with a custom loss (same numbers as the
-- built-in one when it computes L_simple; Ctrl-C ends it 'interrupted' with a
-- checkpoint), ddpm.steps for hand-written loops, self-describing
-- checkpoints and model files, prompt release of tensor temporaries, and
-- help for every public name.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core
local json = ddpm.json

local tests = T.suite()

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_workflow'
os.execute('mkdir -p ' .. tmp)

local function my_pid()
   local f = assert(io.open('/proc/self/stat'))
   local pid = f:read('*l'):match('^(%d+)')
   f:close()
   return pid
end

local function u32be(n)
   return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                      math.floor(n / 256) % 256, n % 256)
end
local IDX = tmp .. '/synthetic-idx3-ubyte'
do
   local parts = {'\0\0\8\3', u32be(32), u32be(8), u32be(8)}
   for n = 0, 31 do
      for y = 0, 7 do
         for x = 0, 7 do parts[#parts + 1] = string.char(((x + y + n) % 4 == 0) and 255 or 0) end
      end
   end
   local f = assert(io.open(IDX, 'wb'))
   f:write(table.concat(parts))
   f:close()
end

local MODEL = {ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {},
               dropout = 0, in_ch = 1, out_ch = 1, resolution = 8}
local function tiny(seed)
   local c = {}
   for k, v in pairs(MODEL) do c[k] = v end
   c.seed = seed or 1
   return ddpm.unet(c)
end

-- L_simple written in Lua: mean (out - eps)^2 and its gradient 2 (out - eps) / n
local function lua_mse(out, eps)
   local d = out - eps
   local loss = (d * d):mean()
   return loss, d * (2 / d:numel())
end

---------------------------------------------------------------- diff:loss

function tests.loss_without_options_draws_new_t_and_noise_each_call()
   local m, d = tiny(), ddpm.diffusion{T = 20}
   local x = ddpm.randn({2, 1, 8, 8}, 1)
   local a = d:loss(m, x)
   local b = d:loss(m, x)
   T.assert_true(type(a) == 'number' and a == a and a > 0, 'a loss')
   T.assert_true(a ~= b, 'two calls draw different t and noise')
   -- the same sequence of calls in a fresh diffusion gives the same draws
   local d2 = ddpm.diffusion{T = 20}
   T.assert_eq(d2:loss(m, x), a)
   T.assert_eq(d2:loss(m, x), b)
   local c = d:loss(m, x, {t_seed = 1})
   T.assert_true(type(c) == 'number' and c == c, 't_seed alone is enough')
   T.assert_error(function() d:loss(m, x, 5) end, 'options must be a table')
   T.assert_error(function() d:loss(m, x, {loss = 1}) end, 'loss must be a function')
end

function tests.custom_loss_gets_out_eps_and_returns_the_gradient()
   local m, d = tiny(), ddpm.diffusion{T = 20}
   local x = ddpm.randn({2, 1, 8, 8}, 1)
   local rng = {t_seed = 3, t_counter = 0, eps_seed = 4, eps_counter = 0}
   m:zero_grad()
   local builtin = d:loss(m, x, rng)
   local g1 = m:flat_grads():clone()
   m:zero_grad()
   local seen
   local custom = d:loss(m, x, {t_seed = 3, t_counter = 0, eps_seed = 4, eps_counter = 0,
      loss = function(out, eps, ctx) seen = ctx; return lua_mse(out, eps) end})
   local g2 = m:flat_grads():clone()
   T.assert_near(custom, builtin, 1e-6 * builtin)
   T.assert_near((g1 - g2):abs():max(), 0, 1e-5 * g1:abs():max())
   T.assert_true(seen and seen.model == m and seen.diffusion == d and #seen.t == 2 and ddpm.is_tensor(seen.xt))
   T.assert_error(function() d:loss(m, x, {loss = function(out) return 1, ddpm.zeros(3) end}) end,
                  'gradient with respect to the output')
end

---------------------------------------------------------------- ddpm.train{loss = }

function tests.train_with_a_custom_loss_matches_the_builtin_objective()
   local data = core.dataset_idx(IDX)
   local function go(loss, db)
      local m = tiny(1)
      return ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = data, steps = 5, batch = 4,
                        lr = 1e-3, seed = 1, db = db, name = 'custom', progress = false, sample_n = 0,
                        checkpoint_every = 0, loss = loss, on_step = function(s, info)
                           m.losses = m.losses or {}
                           m.losses[s] = info.loss
                        end}
   end
   local a = go(nil, tmp .. '/a.db')
   local b = go(lua_mse, tmp .. '/b.db')
   T.assert_eq(b.status, 'finished')
   for s = 1, 5 do T.assert_near(b.model.losses[s], a.model.losses[s], 1e-5 * a.model.losses[s], 'step ' .. s) end
   T.assert_true(b.checkpoint ~= nil, 'a checkpoint')
   local rl = ddpm.log.open(tmp .. '/b.db')
   local n = rl:query("SELECT count(*) AS n FROM metrics_v WHERE key = 'loss'")[1].n
   rl:close()
   T.assert_eq(n, 5, 'the custom loss lands in the history')
   T.assert_error(function() go(42, tmp .. '/c.db') end, 'loss must be a function')
end

function tests.train_with_a_custom_loss_ends_interrupted_on_sigterm()
   local data = core.dataset_idx(IDX)
   local pid = my_pid()
   local r = ddpm.train{model = tiny(1), diffusion = ddpm.diffusion{T = 20}, data = data, steps = 50, batch = 4,
                        seed = 1, db = tmp .. '/int.db', progress = false, sample_n = 0, loss = lua_mse,
                        on_step = function(s) if s == 3 then os.execute('kill -TERM ' .. pid) end end}
   T.assert_eq(r.status, 'interrupted')
   T.assert_true(r.step >= 3 and r.step < 50, 'stopped early at ' .. tostring(r.step))
   T.assert_true(r.checkpoint and io.open(r.checkpoint) ~= nil, 'a checkpoint of the last step')
   local rl = ddpm.log.open(tmp .. '/int.db')
   T.assert_eq(rl:query('SELECT status FROM runs')[1].status, 'interrupted')
   rl:close()
end

---------------------------------------------------------------- ddpm.steps

function tests.steps_helper_ends_a_plain_loop_interrupted()
   local run = ddpm.log.start{db = tmp .. '/plain.db', name = 'plain', config = {}}
   local pid, last, stopped = my_pid(), 0, nil
   for step in ddpm.steps{steps = 100, run = run, on_stop = function(s) stopped = s end} do
      last = step
      if step == 4 then os.execute('kill -TERM ' .. pid) end
   end
   T.assert_eq(last, 4, 'the step under way finishes, no other starts')
   T.assert_eq(stopped, 4, 'on_stop gets the last step')
   T.assert_eq(run.status, 'interrupted')
   local rl = ddpm.log.open(tmp .. '/plain.db')
   T.assert_eq(rl:query('SELECT status FROM runs')[1].status, 'interrupted')
   rl:close()
   -- without a stop: every step, the run left running
   local run2 = ddpm.log.start{db = tmp .. '/plain.db', name = 'plain2', config = {}}
   local n = 0
   for _ in ddpm.steps{steps = 7, start = 2, run = run2} do n = n + 1 end
   T.assert_eq(n, 5)
   T.assert_eq(run2.status, 'running')
   run2:finish()
   T.assert_error(function() ddpm.steps{steps = 1.5} end, 'steps must be a non-negative integer')
end

---------------------------------------------------------------- memory

-- The loop of 1000 ((x + 1) * 2 - x) / 3 on a 1.5 MB tensor, in a fresh
-- process: its peak resident memory (VmHWM) stays under 50 MB (550 MB when
-- the temporaries waited for Lua's collector).
function tests.tensor_temporaries_are_freed_promptly()
   local exe = (function() local a, i = arg, 0; while a[i - 1] do i = i - 1 end; return a[i] end)()
   local path = tmp .. '/mem.lua'
   local f = assert(io.open(path, 'w'))
   f:write([[
local ddpm = require 'ddpm'
local x = ddpm.randn({384, 1024}, 1)
for i = 1, 1000 do local y = ((x + 1) * 2 - x) / 3 end
for l in io.lines('/proc/self/status') do
   local v = l:match('^VmHWM:%s+(%d+)')
   if v then print(tonumber(v) / 1024) end
end
]])
   f:close()
   local p = io.popen(("'%s' '%s' 2>&1"):format(exe, path))
   local out = p:read('*a')
   p:close()
   local mb = tonumber(out:match('([%d.]+)%s*$'))
   T.assert_true(mb, 'peak memory printed: ' .. out)
   T.assert_true(mb < 50, ('peak %.1f MB, want < 50'):format(mb))
end

return tests
