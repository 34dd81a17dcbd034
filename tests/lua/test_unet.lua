-- test_unet.lua — the U-Net from Lua: the paper's parameter count, forward
-- and backward shapes, training/evaluation (dropout), parameter views,
-- save/load, and every wrong call as a Lua error that names the shapes.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'

local tests = T.suite()

local function tiny(extra)
   local cfg = {ch = 32, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4}, dropout = 0.5,
                in_ch = 3, out_ch = 3, resolution = 8}
   for k, v in pairs(extra or {}) do cfg[k] = v end
   return ddpm.unet(cfg)
end

function tests.cifar10_config_counts()
   local m = ddpm.unet{ch = 128, ch_mult = {1, 2, 2, 2}, num_res_blocks = 2, attn_resolutions = {16},
                       dropout = 0.1, in_ch = 3, out_ch = 3, resolution = 32}
   T.assert_eq(m:num_params(), 35746307)
   T.assert_eq(m:num_tensors(), 328)
   T.assert_eq(m:param('down_blocks.1.attentions.0.to_q.weight'):size(), {256, 256})
   T.assert_eq(m:param('conv_in.weight'):size(), {128, 3, 3, 3})
   m:free()
end

function tests.forward_backward_shapes()
   local m = tiny()
   local x = ddpm.randn({2, 3, 8, 8}, 1)
   local y = m:forward(x, {10, 900})
   T.assert_eq(y:size(), {2, 3, 8, 8})
   local y2 = m:forward(x, ddpm.tensor{10, 900})
   T.assert_true(y:equal(y2), 'timesteps as a table or a tensor')
   local dx = m:backward(ddpm.randn({2, 3, 8, 8}, 2))
   T.assert_eq(dx:size(), {2, 3, 8, 8})
   T.assert_true(m:grad('conv_in.weight'):abs():sum() > 0, 'gradients accumulated')
   m:zero_grad()
   T.assert_eq(m:grad('conv_in.weight'):abs():sum(), 0)
end

function tests.dropout_only_in_training()
   local m = tiny()
   -- make conv2 weights matter (the official init makes them ~1e-10)
   for name, p in pairs(m:parameters()) do
      if name:find('conv2.weight', 1, true) then p:copy(ddpm.randn(p:size(), 3) * 0.1) end
   end
   local x = ddpm.randn({1, 3, 8, 8}, 1)
   local a = m:forward(x, 5):clone()
   T.assert_true(m:forward(x, 5):equal(a), 'evaluation is deterministic')
   m:training()
   m:set_dropout_seed(1)
   local b = m:forward(x, 5):clone()
   T.assert_true(not b:equal(a), 'dropout changes the output in training')
   m:set_dropout_seed(2)
   T.assert_true(not m:forward(x, 5):equal(b), 'another dropout seed, another mask')
   m:set_dropout_seed(1)
   T.assert_true(m:forward(x, 5):equal(b), 'same seed, same mask')
   m:evaluate()
   T.assert_true(m:forward(x, 5):equal(a))
end

function tests.parameter_views_write_through()
   local m = tiny()
   local x = ddpm.randn({1, 3, 8, 8}, 1)
   local before = m:forward(x, 3):clone()
   m:param('conv_out.bias'):fill(1)
   local after = m:forward(x, 3)
   T.assert_near((after - before):mean(), 1, 1e-5)
end

function tests.save_and_load()
   local path = os.tmpname() .. '.safetensors'
   local a, b = tiny{seed = 1}, tiny{seed = 2}
   T.assert_true(not a:flat_params():equal(b:flat_params()))
   a:save(path)
   b:load(path)
   T.assert_true(a:flat_params():equal(b:flat_params()))
   local c = ddpm.load_unet(path)
   T.assert_true(c:flat_params():equal(a:flat_params()), 'load_unet rebuilds the model from the file')
   -- a file missing a tensor, and a file with a mis-shaped one
   local t = ddpm.load_safetensors(path)
   t['conv_in.bias'] = nil
   ddpm.save_safetensors(path, t)
   T.assert_error(function() b:load(path) end, 'conv_in.bias')
   t['conv_in.bias'] = ddpm.zeros(7)
   ddpm.save_safetensors(path, t)
   T.assert_error(function() b:load(path) end, "tensor 'conv_in.bias' has shape [7], the model expects [32]")
   t['conv_in.bias'] = ddpm.zeros(32)
   t['extra.weight'] = ddpm.zeros(1)
   ddpm.save_safetensors(path, t)
   T.assert_error(function() b:load(path) end, "unexpected tensor 'extra.weight'")
   b:load(path, {strict = false})
   T.assert_error(function() b:load('/nonexistent.safetensors') end, 'nonexistent')
   os.remove(path)
end

function tests.bad_calls_are_lua_errors()
   local m = tiny()
   T.assert_error(function() m:forward(ddpm.zeros(2, 1, 8, 8), {1, 2}) end, 'expected input [N,3,H,W], got [2,1,8,8]')
   T.assert_error(function() m:forward(ddpm.zeros(2, 3, 8), {1, 2}) end, 'expected input [N,3,H,W], got [2,3,8]')
   T.assert_error(function() m:forward(ddpm.zeros(2, 3, 7, 7), {1, 2}) end, 'multiple of')
   T.assert_error(function() m:forward(ddpm.zeros(2, 3, 8, 8), {1}) end, '1 timesteps given for a batch of 2')
   T.assert_error(function() m:forward(ddpm.zeros(2, 3, 8, 8)) end, 'timesteps expected')
   T.assert_error(function() m:forward('x', 1) end, 'ddpm.Tensor expected, got string')
   T.assert_error(function() m.forward(ddpm.zeros(1, 3, 8, 8), 1) end, 'call it with a colon')
   m:forward(ddpm.zeros(2, 3, 8, 8), 1)
   T.assert_error(function() m:backward(ddpm.zeros(1, 3, 8, 8)) end, 'expected gradient [2,3,8,8]')
   local x = ddpm.zeros(1, 3, 8, 8)
   x:free()
   T.assert_error(function() m:forward(x, 1) end, 'tensor was freed')
   T.assert_error(function() ddpm.unet{ch = 48} end, 'not divisible by the 32 GroupNorm groups')
   T.assert_error(function() ddpm.unet{chmult = {1}} end, "unknown option 'chmult'")
   T.assert_error(function() ddpm.unet{ch = '128'} end, "option 'ch' must be a number")
   T.assert_error(function() ddpm.unet{resolution = 30} end, 'resolution 30')
   T.assert_error(function() ddpm.unet{dropout = 1.5} end, 'dropout')
   T.assert_error(function() m:param('nope') end, "no parameter named 'nope'")
   local f = tiny()
   f:free()
   T.assert_error(function() f:forward(ddpm.zeros(1, 3, 8, 8), 1) end, 'model was freed')
end

return tests
