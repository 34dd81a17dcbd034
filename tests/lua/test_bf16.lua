-- test_bf16.lua — the bfloat16 precision from Lua (lib/ddpm/init.lua,
-- bindings/l_unet.c): the constructor option, m:set_precision and the
-- m.precision field, the errors (a bad name; a CPU without AVX512-BF16,
-- shown with DDPM_NO_BF16=1), bf16 forwards close to float32, the filter
-- cache following every way the weights change (Adam, the EMA, writes into
-- views, a load), training in bf16 against float32 (loss curves within the
-- seed noise), and the quality gate on the committed Fashion-MNIST model
-- (data/fashion_bf16_gate.safetensors): FD-LeNet of bf16 samples within the
-- sampling noise of float32 samples, and the NLL bound within 0.01
-- bits/dim. The kernels' error bounds, per layer for the forward and the
-- input gradient, are tested in C (tests/c/test_bf16.c);
-- scripts/bf16_quality.lua gives the README's table with more samples.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local GATE_MODEL = 'data/fashion_bf16_gate.safetensors'
local FMNIST = (os.getenv('DDPMLUA_FASHION_MNIST') or '/usr/share/datasets/fashion-mnist') ..
               '/t10k-images-idx3-ubyte.gz'

local exe = (function()
   local a, i = arg, 0
   while a[i - 1] do i = i - 1 end
   return a[i]
end)()

local function exists(path)
   local f = io.open(path, 'rb')
   if f then f:close() end
   return f ~= nil
end

local function available()
   local m = ddpm.unet{ch = 32, ch_mult = {1}, attn_resolutions = {}, resolution = 8}
   return pcall(m.set_precision, m, 'bf16')
end

local function need_bf16()
   if not available() then T.skip('this CPU has no AVX512-BF16') end
end

local function rel_l2(a, b)
   local d = a - b
   return math.sqrt((d * d):sum() / (b * b):sum())
end

function tests.precision_option_and_errors()
   local m = ddpm.unet{ch = 32, ch_mult = {1, 2}, attn_resolutions = {}, resolution = 8}
   T.assert_eq(m.precision, 'float32', 'float32 is the default')
   T.assert_eq(m._c:precision(), 'float32')
   T.assert_error(function() m:set_precision('fp8') end, "precision must be 'float32' or 'bf16', got fp8")
   T.assert_error(function() m:set_precision() end, "got nil")
   T.assert_error(function() ddpm.unet{ch = 32, resolution = 8, precision = 16} end, "option 'precision' must be a string")
   T.assert_error(function() ddpm.unet{ch = 32, resolution = 8, precision = 'half'} end, "unet: precision must be")
   T.assert_error(function() m._c:set_precision('half') end, "invalid option 'half'")
   T.assert_error(function() m:set_precision('float32', 5) end, 'options must be a table')
   T.assert_error(function() m:set_precision('float32', {min_channels = 1}) end, 'min_channels must be an integer >= 2')
   T.assert_error(function() m:set_precision('float32', {min_channels = 'x'}) end, 'number expected, got string')
   T.assert_error(function() m._c.set_precision(nil, 'bf16') end, 'ddpm.UNet')
   T.assert_eq(m.precision, 'float32', 'unchanged after the errors')
   m._c:free()
   T.assert_error(function() m._c:set_precision('float32') end, 'freed')
end

function tests.no_avx512_bf16_is_a_clear_error()
   local code = "local ddpm = require 'ddpm'; local m = ddpm.unet{ch = 32, ch_mult = {1}, resolution = 8}; " ..
                "local ok, e = pcall(m.set_precision, m, 'bf16'); print(ok, m.precision, e); " ..
                "m.precision = 'bf16'; ok, e = pcall(m.forward, m, ddpm.randn({1, 3, 8, 8}), 1); print(ok, e); " ..
                "ok, e = pcall(ddpm.unet, {ch = 32, ch_mult = {1}, resolution = 8, precision = 'bf16'}); print(ok, e)"
   local p = io.popen('DDPM_NO_BF16=1 ' .. exe .. ' -e "' .. code .. '" 2>&1')
   local out = p:read('*a')
   p:close()
   print('# ' .. out:gsub('\n', '\n# '))
   T.assert_true(out:find("false\tfloat32\tset_precision: precision 'bf16' needs a CPU with AVX512-BF16", 1, true), out)
   T.assert_true(out:find("false\tforward: precision 'bf16' needs a CPU with AVX512-BF16", 1, true), out)
   T.assert_true(out:find("false\tunet: precision 'bf16' needs a CPU with AVX512-BF16", 1, true), out)
end

function tests.bf16_forward_close_to_float32()
   need_bf16()
   local m = ddpm.unet{ch = 64, ch_mult = {1, 2}, attn_resolutions = {8}, resolution = 16, seed = 3}
   -- Glorot-sized weights everywhere (the official init zeroes some convolutions)
   for name, p in pairs(m:parameters()) do
      if p:dim() > 1 then p:copy(ddpm.randn(p:size()) * 0.05) end
   end
   m:set_grad_enabled(false)
   local x, t = ddpm.randn({3, 3, 16, 16}), {5, 300, 900}
   local ref = m:forward(x, t):clone()
   m.precision = 'bf16'
   local got = m:forward(x, t):clone()
   T.assert_eq(m._c:precision(), 'bf16', 'the field took effect')
   local e = rel_l2(got, ref)
   print(('# small U-Net: bf16 vs float32 relative L2 error %.3e'):format(e))
   T.assert_true(e > 0 and e < 0.1, 'relative error ' .. e)
   -- a training forward (gradients on) runs in bf16 too: the filters are
   -- made per call there, not cached, and give the same bits
   m:set_grad_enabled(true)
   local tr = m:forward(x, t):clone()
   T.assert_true(tr:equal(got), 'a forward with gradients gives the bf16 bits of one without')
   m:set_precision('float32')
   m:set_grad_enabled(false)
   T.assert_true(m:forward(x, t):equal(ref), 'float32 again gives the same bits')
end

-- The bf16 output of a model must follow its weights whichever way they
-- change (the filter cache compares the parameter buffer's version, which
-- every writer bumps): after each write it equals, bit for bit, the output
-- of a fresh model given a copy of the weights, and differs from before.
function tests.bf16_cache_follows_every_write()
   need_bf16()
   local cfg = {ch = 32, ch_mult = {1, 2}, attn_resolutions = {}, resolution = 8, seed = 4}
   local m, fresh = ddpm.unet(cfg), ddpm.unet(cfg)
   for _, u in ipairs{m, fresh} do
      u:set_precision('bf16', {min_channels = 2})
      u:set_grad_enabled(false)
   end
   for _, p in pairs(m:parameters()) do p:copy(ddpm.randn(p:size()) * 0.05) end
   local x, t = ddpm.randn({2, 3, 8, 8}), {3, 700}
   local last = m:forward(x, t):clone()
   local function check(what)
      fresh:flat_params():copy(m:flat_params())
      local got, want = m:forward(x, t):clone(), fresh:forward(x, t)
      T.assert_true(got:equal(want), what .. ': the bf16 output follows the weights')
      T.assert_true(not got:equal(last), what .. ': the output moved')
      last = got
   end
   local W = 'down_blocks.0.resnets.0.conv2.weight'
   T.assert_true(m:forward(x, t):equal(last), 'no write, the same output')
   -- an Adam step (as ddpm.train takes it)
   local adam = core.adam(m:num_params(), {beta1 = 0.9, beta2 = 0.999, eps = 1e-8})
   local g = m:flat_grads()
   g:copy(ddpm.randn({m:num_params()}))
   adam:step(m:flat_params(), g, 1e-3)
   check('an Adam step')
   -- the EMA update into this model's weights
   core.ema_update(m:flat_params(), ddpm.randn({m:num_params()}) * 0.05, 0.5)
   check('an EMA update')
   -- t[i] = v on a 1-D view, and a row of a 4-D parameter view
   local flat, off = m:flat_params(), nil
   for _, p in ipairs(m._c:param_info()) do if p.name == W then off = p.offset end end
   flat[off + 1] = 0.75
   check('flat[i] = v')
   local w = m:param(W)
   w[2] = 0.125
   check('w[i] = v (a row)')
   w:fill(0.01)
   check('w:fill')
   w:mul_(-3)
   check('w:mul_')
   m:param(W):add_(ddpm.randn(w:size()) * 0.1)
   check('add_ on a new view')
   m:param(W):copy(ddpm.randn(w:size()) * 0.05)
   check('copy into a view')
   -- a load from a file
   local path = os.tmpname() .. '.safetensors'
   local other = ddpm.unet(cfg)
   for _, p in pairs(other:parameters()) do p:copy(ddpm.randn(p:size()) * 0.05) end
   other:save(path)
   m:load(path)
   os.remove(path)
   check('m:load')
end

-- The training gate: 300 steps of a small U-Net (ch 16, 164k parameters,
-- every layer with 16+ even summed channels in bf16) on Fashion-MNIST's test
-- images, in float32 and in bf16 from the same seed (the same batches,
-- timesteps and noise), and in float32 from a second seed. Each step's loss
-- smoothed over 50 steps; the seed noise is the mean (and largest)
-- distance between the two float32 curves, and the bf16 curve must stay
-- within a quarter of the mean and within the largest of that noise.
-- Measured on 2 threads: bf16 0.0003 mean, 0.0008 largest; noise 0.0066,
-- 0.0231 (final smoothed losses 0.0708 bf16, 0.0709 float32). ~36 s of CPU.
local function loss_curve(precision, seed)
   local m = ddpm.unet{ch = 16, groups = 8, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {},
                       dropout = 0, in_ch = 1, out_ch = 1, resolution = 28, seed = 1}
   if precision == 'bf16' then m:set_precision('bf16', {min_channels = 16}) end
   local dir = os.tmpname()
   os.remove(dir)
   os.execute('mkdir -p ' .. dir)
   local losses = {}
   ddpm.train{model = m, diffusion = ddpm.diffusion{T = 1000}, data = core.dataset_idx(FMNIST),
      steps = 300, batch = 12, lr = 1e-3, warmup = 20, ema_decay = 0.99, seed = seed, db = dir .. '/runs.db',
      name = 'bf16 gate ' .. precision, progress = false, sample_at_end = false,
      on_step = function(n, info) losses[n] = info.loss end}
   os.execute('rm -rf ' .. dir)
   local w, sm = 50, {}
   for i = 1, #losses - w + 1 do
      local a = 0
      for j = i, i + w - 1 do a = a + losses[j] end
      sm[i] = a / w
   end
   return sm
end

local function curve_distance(a, b)
   local sum, max = 0, 0
   for i = 1, #a do
      local d = math.abs(a[i] - b[i])
      sum, max = sum + d, math.max(max, d)
   end
   return sum / #a, max
end

function tests.training_loss_curve_within_seed_noise()
   need_bf16()
   if not exists(FMNIST) then T.skip('Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)') end
   local f32a, b16a, f32b = loss_curve('float32', 1), loss_curve('bf16', 1), loss_curve('float32', 2)
   local dm, dx = curve_distance(b16a, f32a)
   local nm, nx = curve_distance(f32b, f32a)
   print(('# smoothed loss: bf16 vs float32 (seed 1) mean %.5f, largest %.5f; float32 seed 1 vs 2 ' ..
          'mean %.5f, largest %.5f; final float32 %.5f bf16 %.5f'):format(dm, dx, nm, nx, f32a[#f32a], b16a[#b16a]))
   T.assert_true(f32a[#f32a] < 0.5 * f32a[1], 'the loss falls')
   T.assert_true(dm <= 0.25 * nm, ('mean distance %.5f within a quarter of the seed noise %.5f'):format(dm, nm))
   T.assert_true(dx <= nx, ('largest distance %.5f within the seed noise %.5f'):format(dx, nx))
end

-- The quality gate on a trained model, with few samples to keep the suite
-- short: FD-LeNet of bf16 samples (seed 1) against float32 samples of the
-- same seed, within the distance between float32 samples of seeds 1 and 2
-- (plus a margin for so few samples); the NLL bound with the same noise.
-- Every 3x3 layer with an even input count runs in bfloat16 (min_channels 2).
function tests.quality_gate_fashion_mnist()
   need_bf16()
   if not exists(GATE_MODEL) then T.skip(GATE_MODEL .. ' is missing: ./ddpmlua scripts/bf16_quality.lua --from=<checkpoint>') end
   if not exists(FMNIST) then T.skip('Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)') end
   local gate = dofile('scripts/bf16_quality.lua')
   local r = gate.run{model = GATE_MODEL, n = 200, steps = 40, nll_n = 64, nll_steps = 40, progress = false,
                      bf16_seed2 = false}
   print(('# FD-LeNet float32 seed 1 %.3f, seed 2 %.3f, bf16 seed 1 %.3f; NLL float32 %.4f bf16 %.4f bits/dim')
         :format(r.fd32_a, r.fd32_b, r.fd16_a, r.nll32, r.nll16))
   local noise = math.abs(r.fd32_a - r.fd32_b)
   T.assert_true(math.abs(r.fd16_a - r.fd32_a) <= math.max(noise, 0.05 * r.fd32_a),
                 ('FD bf16 %.3f vs float32 %.3f: within the seed noise %.3f'):format(r.fd16_a, r.fd32_a, noise))
   T.assert_true(math.abs(r.nll16 - r.nll32) < 0.01,
                 ('NLL bf16 %.4f vs float32 %.4f bits/dim'):format(r.nll16, r.nll32))
end

return tests
