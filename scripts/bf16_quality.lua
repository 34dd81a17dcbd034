--[[
scripts/bf16_quality.lua — the quality gate of precision = 'bf16' on a trained
Fashion-MNIST model: FD-LeNet of samples drawn in bfloat16 and in float32
(two seeds of float32 give the sampling noise the bf16 value is judged
against; bf16 with the same two seeds), and the NLL bound in bits/dim on
test images with the same noise draws in both precisions. Prints the
README's table.

   ./ddpmlua scripts/bf16_quality.lua                       # 1000 samples, 100 steps
   ./ddpmlua scripts/bf16_quality.lua --n=256 --steps=50 --nll_n=64
   ./ddpmlua scripts/bf16_quality.lua --from=runs/<uuid>/ckpt-....safetensors
        # writes --model from a Fashion-MNIST checkpoint's EMA weights first

The model file committed as data/fashion_bf16_gate.safetensors (4.5 MB) is
the EMA (decay 0.995) of experiments/fashion_mnist.lua's U-Net after 775
steps of batch 64 (--steps=1500 --ema_decay=0.995, stopped at step 775): a
short run, so blurry but recognisable samples; what the gate compares is
bf16 against float32 on the same weights. tests/lua/test_bf16.lua calls
M.run with fewer samples.
]]
local ddpm = require 'ddpm'

local M = {}

M.DEFAULT_MODEL = 'data/fashion_bf16_gate.safetensors'

--- M.run{model =, n =, steps =, nll_n =, nll_steps =, batch =, progress =, bf16_seed2 =,
---       min_channels = 2} ->
--- {fd32_a, fd32_b, fd16_a, fd16_b (not with bf16_seed2 = false), nll32, nll16,
---  seconds = {float32 =, bf16 =}}
function M.run(opt)
   local model, diff = ddpm.load_unet(opt.model or M.DEFAULT_MODEL)
   model:evaluate()
   model:set_grad_enabled(false)
   local batch, progress = opt.batch or 250, opt.progress ~= false
   local secs = {float32 = 0, bf16 = 0}
   -- every 3x3 layer with an even input count in bfloat16 (min_channels 2),
   -- not only the wide ones the default picks: the gate is of the arithmetic
   local mc = {min_channels = opt.min_channels or 2}
   local function fd(precision, seed)
      model:set_precision(precision, mc)
      local parts, left, b = {}, opt.n, 0
      local w0 = ddpm.core.time()
      while left > 0 do
         local k = math.min(batch, left)
         parts[#parts + 1] = diff:sample(model, {n = k, shape = {1, 28, 28}, seed = 1000 * seed + b,
                                                steps = opt.steps, progress = progress})
         left, b = left - k, b + 1
      end
      secs[precision] = secs[precision] + (ddpm.core.time() - w0)
      local x = ddpm.zeros({opt.n, 1, 28, 28})
      local at = 0
      for _, p in ipairs(parts) do
         x:narrow(1, at + 1, p:size(1)):copy(p)
         at = at + p:size(1)
         p:free()
      end
      local v = ddpm.metrics.fd_lenet(x)
      x:free()
      return v
   end
   local test = ddpm.data.fashion_mnist{split = 'test'}
   local function nll(precision)
      model:set_precision(precision, mc)
      return diff:nll(model, test, {n = opt.nll_n, batch = 64, seed = 1, steps = opt.nll_steps,
                                    progress = progress}).bpd
   end
   local r = {}
   r.fd32_a, r.fd32_b = fd('float32', 1), fd('float32', 2)
   r.fd16_a = fd('bf16', 1)
   if opt.bf16_seed2 ~= false then r.fd16_b = fd('bf16', 2) end
   r.nll32, r.nll16 = nll('float32'), nll('bf16')
   r.seconds = secs
   model:set_precision('float32')
   return r
end

--- M.eps_error{model =, n = 64, t = {...}, min_channels = 2} -> {[t] = relative L2
--- error of the bf16 network output against float32}, on the first n test
--- images noised to each t (the whole-network error on the trained model).
function M.eps_error(opt)
   local model, diff = ddpm.load_unet(opt.model or M.DEFAULT_MODEL)
   model:evaluate()
   model:set_grad_enabled(false)
   local n, out = opt.n or 64, {}
   local test = ddpm.data.fashion_mnist{split = 'test'}
   local idx = {}
   for i = 1, n do idx[i] = i end
   local x0 = test:batch(idx)
   for _, t in ipairs(opt.t or {1, 10, 100, 500, 900, 999}) do
      local eps = ddpm.core.randn({n, 1, 28, 28}, ddpm.core.mix_seed(7, t), 0)
      local ts = {}
      for i = 1, n do ts[i] = t end
      local xt = diff:q_sample(x0, ts, eps)
      model:set_precision('float32')
      local ref = model:forward(xt, ts):clone()
      model:set_precision('bf16', {min_channels = opt.min_channels or 2})
      local got = model:forward(xt, ts):clone()
      local d = got - ref
      out[t] = math.sqrt((d * d):sum() / (ref * ref):sum())
   end
   model:set_precision('float32')
   return out
end

-- Writes the model file from a checkpoint's EMA weights.
function M.export(from, to)
   local model, diff = ddpm.load_unet(from, {prefix = 'ema.'})
   model:save(to, {diffusion = diff, data_shape = {1, 28, 28}})
end

local function main()
   local cfg = ddpm.cli.parse(arg, {model = M.DEFAULT_MODEL, from = '', n = 1000, steps = 100,
                                    nll_n = 256, nll_steps = 100, min_channels = 2, eps_only = false},
      {model = {'the Fashion-MNIST model file', path = true},
       from = {'a checkpoint whose EMA weights become --model first', path = true},
       n = {'samples per FD-LeNet value', int = true, min = 2},
       steps = {'sampling steps (ancestral, respaced)', int = true, min = 1},
       nll_n = {'test images for the NLL bound', int = true, min = 1},
       nll_steps = {'terms of the NLL bound (respaced)', int = true, min = 1},
       min_channels = {'fewest input channels of a layer run in bf16 (2: all)', int = true, min = 2},
       eps_only = 'only the network output error at a few t on 64 test images'})
   if cfg.from ~= '' then M.export(cfg.from, cfg.model) end
   if cfg.eps_only then
      local e = M.eps_error{model = cfg.model, min_channels = cfg.min_channels}
      print('| t | relative L2 error of the network output, bf16 vs float32 |')
      print('| ---: | ---: |')
      for _, t in ipairs({1, 10, 100, 500, 900, 999}) do print(('| %d | %.2e |'):format(t, e[t])) end
      return
   end
   local r = M.run(cfg)
   local noise = math.abs(r.fd32_a - r.fd32_b)
   print(('%d samples each (ancestral, %d steps); NLL on the first %d test images, %d terms; ' ..
          'bf16 in 3x3 layers of >= %d input channels')
         :format(cfg.n, cfg.steps, cfg.nll_n, cfg.nll_steps, cfg.min_channels))
   print('| | float32 | bf16 | bf16 - float32 |')
   print('| --- | ---: | ---: | ---: |')
   print(('| FD-LeNet, seed 1 | %.3f | %.3f | %+.3f |'):format(r.fd32_a, r.fd16_a, r.fd16_a - r.fd32_a))
   print(('| FD-LeNet, seed 2 | %.3f | %.3f | %+.3f |'):format(r.fd32_b, r.fd16_b, r.fd16_b - r.fd32_b))
   print(('| sampling noise (float32 seed 1 vs 2) | %.3f | | |'):format(noise))
   print(('| NLL bound, bits/dim | %.4f | %.4f | %+.4f |'):format(r.nll32, r.nll16, r.nll16 - r.nll32))
   print(('| sampling time, s | %.1f | %.1f | |'):format(r.seconds.float32, r.seconds.bf16))
end

if arg and arg[0] and arg[0]:match('bf16_quality%.lua$') then main() end

return M
