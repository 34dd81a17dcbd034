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

---------------------------------------------------------------- self-describing files

local exe = (function() local a, i = arg, 0; while a[i - 1] do i = i - 1 end; return a[i] end)()

local function sh(cmd)
   local p = io.popen(cmd .. ' 2>&1; echo "rc=$?"')
   local out = p:read('*a')
   p:close()
   return tonumber(out:match('rc=(%d+)%s*$')), out
end

local function query(db, sql, params)
   local rl = ddpm.log.open(db)
   local rows = rl:query(sql, params)
   rl:close()
   return rows
end

-- CIFAR-10 binary files (1 label byte + 3072 pixel bytes per record)
local CIFAR = tmp .. '/cifar'
do
   os.execute('mkdir -p ' .. CIFAR)
   local function write(name, seed)
      local f = assert(io.open(CIFAR .. '/' .. name, 'wb'))
      for r = 0, 3 do
         local parts = {string.char((r + seed) % 10)}
         for c = 0, 2 do
            for y = 0, 31 do
               local row = {}
               for x = 0, 31 do row[x + 1] = string.char((x * (c + 1) * 3 + y * (r + 2) + seed * 17) % 256) end
               parts[#parts + 1] = table.concat(row)
            end
         end
         f:write(table.concat(parts))
      end
      f:close()
   end
   for i = 1, 5 do write(('data_batch_%d.bin'):format(i), i) end
   write('test_batch.bin', 9)
end
local CDB = tmp .. '/cifar.db'
local COMMON = ('--data_dir=%s --db=%s --nll_batch=4 --eval_samples=0 --sample_n=0'):format(CIFAR, CDB)

local function last_run(db)
   return query(db, 'SELECT run_id, status, config_json FROM runs ORDER BY run_id DESC LIMIT 1')[1]
end
local function nll_of(db, id)
   local r = query(db, "SELECT value FROM metrics_v WHERE run_id = :id AND key = 'nll_bpd'", {id = id})[1]
   return r and r.value
end

local ckpt_run
local ckpt   -- the checkpoint of a small, T = 20 CIFAR-10 run
local function trained()
   if ckpt then return ckpt end
   local rc, out = sh(('%s experiments/cifar_linear.lua %s --ch=32 --ch_mult=1,2 --num_res_blocks=1 ' ..
      '--attn_resolutions=16 --T=20 --var_type=fixedsmall --steps=3 --batch=2 --warmup=1 --checkpoint_every=0 ' ..
      '--nll_n=4'):format(exe, COMMON))
   T.assert_eq(rc, 0, out)
   local run = last_run(CDB)
   ckpt = query(CDB, 'SELECT path FROM checkpoints WHERE run_id = :id ORDER BY step DESC', {id = run.run_id})[1].path
   ckpt_run = run.run_id
   return ckpt
end

function tests.checkpoints_describe_their_model_process_and_images()
   local path = trained()
   local m, diff, info = ddpm.load_unet(path, {ema = true})
   local c = m:config()
   T.assert_eq({c.ch, c.ch_mult, c.num_res_blocks, c.attn_resolutions, c.in_ch, c.resolution},
               {32, {1, 2}, 1, {16}, 3, 32})
   T.assert_eq({diff.T, diff.var_type, diff.mean_type, diff.loss_type, diff.schedule_name},
               {20, 'fixedsmall', 'eps', 'mse', 'linear'})
   T.assert_eq(info.data_shape, {3, 32, 32})
   -- what a diffusers user reads
   local _, meta = ddpm.load_safetensors(path)
   local u, s = json.decode(meta['diffusers.unet_config']), json.decode(meta['diffusers.scheduler_config'])
   T.assert_eq({u._class_name, u.sample_size, u.block_out_channels, u.layers_per_block, u.down_block_types},
               {'UNet2DModel', 32, {32, 64}, 1, {'DownBlock2D', 'AttnDownBlock2D'}})
   T.assert_eq({s._class_name, s.num_train_timesteps, s.variance_type, s.prediction_type, s.beta_schedule},
               {'DDPMScheduler', 20, 'fixed_small', 'epsilon', 'linear'})
   -- the EMA loaded is the checkpoint's EMA
   local t = ddpm.load_safetensors(path)
   T.assert_eq((m:param('conv_in.weight') - t['ema.conv_in.weight']):abs():max(), 0)
   -- a model file written by m:save carries the same
   m:save(tmp .. '/model.safetensors', {diffusion = diff, data_shape = {3, 32, 32}})
   local m2, d2, i2 = ddpm.load_unet(tmp .. '/model.safetensors')
   T.assert_eq(d2.T, 20)
   T.assert_eq(i2.data_shape, {3, 32, 32})
   T.assert_eq((m2:flat_params() - m:flat_params()):abs():max(), 0)
   T.assert_error(function() ddpm.load_unet(path, {ema = true, bogus = 1}) end, 'bogus')
end

function tests.a_custom_schedule_is_rebuilt_from_the_file()
   -- betas that no named schedule gives, with digits a float32 copy would lose
   local betas = {}
   for t = 1, 30 do betas[t] = 1e-4 + (t - 1) * 6.1e-4 + 1e-9 * math.sin(t) end
   for _, sched in ipairs{betas, function(t) return betas[t + 1] end} do
      local d = ddpm.diffusion{schedule = sched, T = 30, var_type = 'fixedsmall'}
      local m = tiny(1)
      local path = tmp .. '/custom.safetensors'
      ddpm.checkpoint.save(path, {model = m, step = 1, seed = 1, diffusion = d})
      local _, d2 = ddpm.load_unet(path)
      T.assert_eq({d2.T, d2.var_type, d2.schedule_name}, {30, 'fixedsmall', 'custom'})
      for t = 0, 29 do
         T.assert_eq(d2.sched:get('betas', t), d.sched:get('betas', t), 'beta ' .. t .. ' bit for bit')
      end
      -- resuming with another custom schedule is refused, with this one accepted
      local other = {}
      for t = 1, 30 do other[t] = betas[t] * 1.01 end
      T.assert_error(function() ddpm.checkpoint.load(path, {model = m, diffusion = ddpm.diffusion{schedule = other}}) end,
                     'trained with schedule')
      T.assert_eq(ddpm.checkpoint.load(path, {model = m, diffusion = d}).step, 1)
      -- diffusers readers get the betas as trained_betas
      local _, meta = core.load_safetensors(path)
      T.assert_eq(#json.decode(meta['diffusers.scheduler_config']).trained_betas, 30)
   end
end

function tests.a_diffusers_folder_describes_its_weights()
   -- diffusers' layout: unet/config.json + unet/diffusion_pytorch_model.safetensors
   -- (no ddpmlua metadata) and scheduler/scheduler_config.json
   local m = tiny(4)
   local d = ddpm.diffusion{T = 40, var_type = 'fixedsmall'}
   local dir = tmp .. '/hub'
   os.execute(('rm -rf %s && mkdir -p %s/unet %s/scheduler'):format(dir, dir, dir))
   m:save(dir .. '/full.safetensors', {diffusion = d})
   local t, meta = core.load_safetensors(dir .. '/full.safetensors')
   local weights = dir .. '/unet/diffusion_pytorch_model.safetensors'
   core.save_safetensors(weights, t, {format = 'pt'})
   local function write(path, text)
      local f = assert(io.open(path, 'w'))
      f:write(text)
      f:close()
   end
   -- without config.json the file cannot say what it is
   T.assert_error(function() ddpm.load_unet(weights) end, 'has no ddpmlua.unet_config metadata')
   local ucfg = json.decode(meta['diffusers.unet_config'])
   write(dir .. '/unet/config.json', json.encode(ucfg))
   write(dir .. '/scheduler/scheduler_config.json', meta['diffusers.scheduler_config'])
   local m2, d2, info = ddpm.load_unet(weights)
   T.assert_eq(json.encode(m2:config()), json.encode(m:config()))
   T.assert_eq((m2:flat_params() - m:flat_params()):abs():max(), 0)
   T.assert_eq({d2.T, d2.var_type, d2.mean_type, d2.schedule_name}, {40, 'fixedsmall', 'eps', 'linear'})
   T.assert_eq(info.source, dir .. '/unet/config.json')
   -- a diffusers U-Net that is not the DDPM one is refused by name
   ucfg.downsample_padding = 1
   write(dir .. '/unet/config.json', json.encode(ucfg))
   T.assert_error(function() ddpm.load_unet(weights) end, 'downsample_padding = 1, but the DDPM U-Net has')
   ucfg.downsample_padding, ucfg.attention_head_dim = 0, 8
   write(dir .. '/unet/config.json', json.encode(ucfg))
   T.assert_error(function() ddpm.load_unet(weights) end, 'one attention head')
   write(dir .. '/unet/config.json', '{"_class_name": "UNet2DModel",')
   T.assert_error(function() ddpm.load_unet(weights) end, 'config.json: not a JSON object')
end

function tests.eval_from_rebuilds_model_and_process_from_the_checkpoint()
   local path = trained()
   local want = nll_of(CDB, ckpt_run)
   -- no architecture or diffusion flag: everything comes from the file
   local rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=4 --eval_from=%s'):format(exe, COMMON, path))
   T.assert_eq(rc, 0, out)
   local r = last_run(CDB)
   T.assert_eq(nll_of(CDB, r.run_id), want, 'the same NLL as the training run')
   local cfg = json.decode(r.config_json)
   T.assert_eq({cfg.ch, cfg.T, cfg.var_type}, {32, 20, 'fixedsmall'}, 'the run records the settings it used')
   -- a contradicting flag: one line, exit status 2, no run recorded
   local n = #query(CDB, 'SELECT run_id FROM runs')
   rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=4 --T=1000 --eval_from=%s'):format(exe, COMMON, path))
   T.assert_eq(rc, 2, out)
   T.assert_true(out:find('--T=1000 contradicts', 1, true) and out:find('T = 20', 1, true), out)
   T.assert_true(not out:find('traceback', 1, true), out)
   T.assert_eq(#query(CDB, 'SELECT run_id FROM runs'), n, 'no run row')
   rc, out = sh(('%s experiments/cifar_linear.lua %s --ch=128 --eval_from=%s'):format(exe, COMMON, path))
   T.assert_eq(rc, 2, out)
   T.assert_true(out:find('the weights fix the model', 1, true), out)
   -- an explicit override is recorded
   rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=4 --var_type=fixedlarge --override=var_type ' ..
                 '--eval_from=%s'):format(exe, COMMON, path))
   T.assert_eq(rc, 0, out)
   r = last_run(CDB)
   T.assert_eq(json.decode(r.config_json).var_type, 'fixedlarge')
   T.assert_eq(query(CDB, "SELECT value FROM run_tags WHERE run_id = :id AND key = 'override'", {id = r.run_id})[1].value,
               'var_type')
   T.assert_true(nll_of(CDB, r.run_id) ~= want, 'another variance, another bound')
end

function tests.resume_takes_the_settings_from_the_checkpoint()
   local path = trained()
   local rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=0 --steps=4 --resume=%s'):format(exe, COMMON, path))
   T.assert_eq(rc, 0, out)
   T.assert_true(out:find('resumed from', 1, true), out)
   T.assert_eq(last_run(CDB).status, 'finished')
   -- train.lua refuses a process other than the checkpoint's
   local m, diff = ddpm.load_unet(path)
   local st = {model = m, diffusion = ddpm.diffusion{T = 1000}}
   T.assert_error(function() ddpm.checkpoint.load(path, st) end, 'trained with T = 20')
   st.diffusion = diff
   T.assert_eq(ddpm.checkpoint.load(path, st).step, 3)
end

---------------------------------------------------------------- help

-- Every public function reachable from the API tables of the README has a
-- help entry (help.internal names the plumbing between modules).
function tests.every_public_function_has_help()
   local help = require 'ddpm.help'
   local missing = {}
   local function walk(prefix, t)
      for k, v in pairs(t) do
         if type(k) == 'string' and k:sub(1, 1) ~= '_' and type(v) == 'function' then
            local name = prefix .. k
            if not help.find(name) and not help.internal[name] then missing[#missing + 1] = name end
         end
      end
   end
   walk('ddpm.', ddpm)
   for _, m in ipairs{'data', 'log', 'dist', 'cli', 'checkpoint', 'metrics', 'json', 'progress'} do
      T.assert_true(type(ddpm[m]) == 'table', 'ddpm.' .. m)
      walk('ddpm.' .. m .. '.', ddpm[m])
   end
   walk('UNet:', ddpm.UNet)
   walk('Diffusion:', getmetatable(ddpm.diffusion{T = 10}).__index)
   walk('Run:', ddpm.log.Run)
   table.sort(missing)
   T.assert_eq(missing, {}, 'public functions without help')
   -- the names the REPL is asked for, by name and through a value held
   for _, n in ipairs{'Diffusion:nll', 'ddpm.runs', 'ddpm.cli.parse', 'ddpm.steps', 'Run'} do
      T.assert_true(help.find(n), n)
   end
   T.assert_true(help.text('Run'):find('run.id', 1, true), 'run.id is documented')
end

function tests.repl_help_for_methods_of_values_held()
   local exe = (function() local a, i = arg, 0; while a[i - 1] do i = i - 1 end; return a[i] end)()
   local p = io.popen(("printf 'diff = ddpm.diffusion{T = 10}\\n?diff:ddim_encode\\n?ddpm.runs\\n' | " ..
                       "DDPMLUA_HISTORY= '%s' 2>&1"):format(exe))
   local out = p:read('*a')
   p:close()
   T.assert_true(out:find('diff:ddim_encode(model, x0', 1, true), out)
   T.assert_true(out:find('ddpm.runs{db =', 1, true), out)
   T.assert_true(not out:find('no help', 1, true), out)
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
   -- under AddressSanitizer (make asan) freed memory stays resident in its
   -- quarantine: the peak says nothing there
   if not os.getenv('ASAN_OPTIONS') then
      T.assert_true(mb < 50, ('peak %.1f MB, want < 50'):format(mb))
   end
end

return tests
