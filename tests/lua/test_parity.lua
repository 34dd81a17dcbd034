-- test_parity.lua — the C U-Net against the independent PyTorch reference
-- (scripts/torch_unet.py, computed in float64): output and every parameter
-- gradient of L = sum(y * r), for a small config and for the paper's CIFAR-10
-- config, and the older attention names. Fixtures are written by
-- scripts/make_fixtures.py (make test generates them; python3-torch is a
-- test-only dependency).
--
-- Error measure per tensor: max |ours - ref| / max |ref|, bound 1e-4. Some
-- gradients are exactly zero in theory (every attention's key bias: softmax
-- ignores a constant added to a row; in the small config, parameters feeding
-- a GroupNorm of one channel per group), so the reference holds rounding
-- noise there; for those the scale has a floor of 1e-3 of the model's
-- largest gradient, and their values are also checked to be ~0.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local json = ddpm.json

local tests = T.suite()

local dir = (arg and arg[0] or ''):match('^(.*)/lua/[^/]*$') or 'tests'
local FIX = os.getenv('DDPMLUA_FIXTURES') or (dir .. '/fixtures')
local TOL = 1e-4

local function fixture(name)
   local path = FIX .. '/' .. name
   local f = io.open(path, 'rb')
   if not f then
      error(('fixture %s is missing: run `make fixtures` (needs /usr/bin/python3 with torch)'):format(path), 0)
   end
   f:close()
   return path
end

local function rel_err(a, b, floor)
   local scale = math.max(b:abs():max(), floor or 0)
   if scale == 0 then return a:abs():max() end
   return a:max_abs_diff(b) / scale
end

local function model_from(meta)
   local cfg = {}
   for _, k in ipairs{'ch', 'num_res_blocks', 'dropout', 'in_ch', 'out_ch', 'resolution'} do
      cfg[k] = json.decode(meta[k])
   end
   cfg.ch_mult = json.decode(meta.ch_mult)
   cfg.attn_resolutions = json.decode(meta.attn_resolutions)
   return ddpm.unet(cfg)
end

local function check(name, with_grads)
   local path = fixture(name)
   local t, meta = ddpm.load_safetensors(path)
   local m = model_from(meta)
   m:load(path, {strict = false})
   local y = m:forward(t['input.x'], t['input.t'])
   local e = rel_err(y, t['output.y'])
   print(('# %s: output rel err %.2e'):format(name, e))
   T.assert_true(e <= TOL, ('output: max rel err %.3e > %.0e'):format(e, TOL))
   if not with_grads or not t['input.r'] then return end
   m:zero_grad()
   local dx = m:backward(t['input.r'])
   local worst, worst_name, n = rel_err(dx, t['grad.x']), 'x', 1
   local gmax = 0
   for _, pname in ipairs(m:param_names()) do
      local ref = t['grad.' .. pname]
      T.assert_true(ref ~= nil, 'fixture has grad.' .. pname)
      gmax = math.max(gmax, ref:abs():max())
   end
   local zeros = 0
   for _, pname in ipairs(m:param_names()) do
      local ref, ours = t['grad.' .. pname], m:grad(pname)
      if ref:abs():max() < 1e-9 * gmax then
         zeros = zeros + 1
         T.assert_true(ours:abs():max() < 1e-6 * gmax, pname .. ': a zero gradient comes out ~0')
      end
      local err = rel_err(ours, ref, 1e-3 * gmax)
      n = n + 1
      if err > worst then worst, worst_name = err, pname end
   end
   print(('# %s: %d gradients are zero in theory'):format(name, zeros))
   print(('# %s: %d gradients, worst rel err %.2e (%s)'):format(name, n, worst, worst_name))
   T.assert_true(worst <= TOL, ('gradient of %s: rel err %.3e > %.0e'):format(worst_name, worst, TOL))
end

function tests.small_config_output_and_every_gradient() check('unet_small.safetensors', true) end

function tests.old_attention_names_load() check('unet_small_oldattn.safetensors', false) end

function tests.cifar10_config_output_and_every_gradient() check('unet_cifar.safetensors', true) end

return tests
