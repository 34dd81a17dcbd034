--[[
ddpm — the Lua library of ddpmlua.

   local ddpm = require 'ddpm'
   local x = ddpm.randn(8, 3, 32, 32, {seed = 1})
   local m = ddpm.unet{ch = 128, ch_mult = {1, 2, 2, 2}, num_res_blocks = 2,
                       attn_resolutions = {16}, dropout = 0.1, resolution = 32}
   local eps = m:forward(x, {0, 1, 2, 3, 4, 5, 6, 7})

Tensors are ddpm.core userdata (1-based indexing, as in torch7); this file adds
the friendly constructors, the UNet class and the module-level helpers.
]]
local core = require 'ddpm.core'

local ddpm = {core = core, _VERSION = '0.1.0'}

---------------------------------------------------------------- classes

--- ddpm.class(name [, parent]) -> class table; class(...) builds an instance
--- through class:__init(...).
function ddpm.class(name, parent)
   local cls = {}
   cls.__index = cls
   cls.__typename = name
   if parent then setmetatable(cls, {__index = parent}) end
   cls.new = function(...)
      local self = setmetatable({}, cls)
      if self.__init then self:__init(...) end
      return self
   end
   return cls, parent
end

---------------------------------------------------------------- tensors

ddpm.Tensor = core.Tensor_mt
ddpm.is_tensor = core.is_tensor

-- Sizes from (n1, n2, ...) or ({n1, n2, ...}); returns sizes and the first
-- non-size argument.
local function sizes_and_rest(...)
   local first = ...
   if type(first) == 'table' and not core.is_tensor(first) then
      return first, select(2, ...)
   end
   local sizes, n = {}, select('#', ...)
   for i = 1, n do
      local v = select(i, ...)
      if type(v) ~= 'number' then return sizes, select(i, ...) end
      sizes[#sizes + 1] = v
   end
   return sizes
end

--- ddpm.zeros(n1, n2, ...) or ddpm.zeros({n1, n2, ...})
function ddpm.zeros(...)
   local sizes = sizes_and_rest(...)
   return core.zeros(sizes)
end

--- ddpm.ones(n1, n2, ...)
function ddpm.ones(...)
   local sizes = sizes_and_rest(...)
   return core.full(sizes, 1)
end

--- ddpm.full(sizes, value)
function ddpm.full(sizes, value)
   if type(sizes) ~= 'table' then error('full: sizes must be a table, e.g. {2, 3}', 2) end
   return core.full(sizes, value)
end

--- ddpm.tensor{{1, 2}, {3, 4}}: a tensor from nested tables of numbers.
function ddpm.tensor(tbl)
   if type(tbl) ~= 'table' then error('tensor: expected a (nested) table of numbers, got ' .. type(tbl), 2) end
   return core.tensor(tbl)
end

-- The default generator: Philox(seed) with a running counter.
local gen = {seed = 0, counter = 0}

--- ddpm.manual_seed(s): reseed the default generator of randn/rand.
function ddpm.manual_seed(s)
   if type(s) ~= 'number' or s < 0 or s % 1 ~= 0 then
      error('manual_seed: seed must be a non-negative integer', 2)
   end
   gen.seed, gen.counter = s, 0
end

local function random(fn, name, ...)
   local sizes, opt = sizes_and_rest(...)
   local seed
   if type(opt) == 'number' then seed = opt
   elseif type(opt) == 'table' then seed = opt.seed
   elseif opt ~= nil then error(name .. ': expected sizes then a seed or {seed = s}', 3) end
   if seed ~= nil then
      return (fn(sizes, seed, 0))
   end
   local t, ctr = fn(sizes, gen.seed, gen.counter)
   gen.counter = ctr
   return t
end

--- ddpm.randn(n1, n2, ... [, {seed = s}]) or ddpm.randn({n1, n2, ...} [, seed]): standard
--- normal samples (a bare trailing number after sizes would be read as a size).
--- With a seed the result depends only on (seed, sizes); without, on the
--- default generator (ddpm.manual_seed).
function ddpm.randn(...) return random(core.randn, 'randn', ...) end

--- ddpm.rand(n1, n2, ... [, {seed = s}]) or ddpm.rand({n1, ...} [, seed]): uniform in [0, 1).
function ddpm.rand(...) return random(core.rand, 'rand', ...) end

ddpm.load_safetensors = core.load_safetensors
ddpm.save_safetensors = core.save_safetensors
ddpm.set_num_threads = core.set_num_threads
ddpm.get_num_threads = core.get_num_threads

---------------------------------------------------------------- the U-Net

local UNet = ddpm.class('ddpm.UNet')
ddpm.UNet = UNet

local unet_keys = {ch = 'number', ch_mult = 'table', num_res_blocks = 'number',
                   attn_resolutions = 'table', dropout = 'number', in_ch = 'number',
                   out_ch = 'number', resolution = 'number', groups = 'number',
                   eps = 'number', seed = 'number', precision = 'string'}

local function check_self(self, method)
   if getmetatable(self) ~= UNet then
      error(('UNet:%s: call it with a colon, m:%s(...)'):format(method, method), 3)
   end
end

function UNet:__init(cfg)
   cfg = cfg or {}
   if type(cfg) ~= 'table' then error('unet: expected a config table, got ' .. type(cfg), 3) end
   for k, v in pairs(cfg) do
      local want = unet_keys[k]
      if not want then
         local known = {}
         for name in pairs(unet_keys) do known[#known + 1] = name end
         table.sort(known)
         error(("unet: unknown option '%s' (known: %s)"):format(tostring(k), table.concat(known, ', ')), 3)
      end
      if type(v) ~= want then
         error(("unet: option '%s' must be a %s, got %s"):format(k, want, type(v)), 3)
      end
   end
   self._c = core.unet_new(cfg, cfg.seed or 0)
   self.is_training = false
   self.precision = 'float32'
   self._precision = 'float32'
   if cfg.precision then self:_apply_precision(cfg.precision, 'unet', 4) end
end

-- Sets the C model's precision; a bad name or a CPU without AVX512-BF16 is
-- an error naming `who`, raised at `level`.
function UNet:_apply_precision(p, who, level, min_channels)
   if p ~= 'float32' and p ~= 'bf16' then
      error(("%s: precision must be 'float32' or 'bf16', got %s"):format(who, tostring(p)), level)
   end
   local ok, err = pcall(self._c.set_precision, self._c, p, min_channels)
   if not ok then
      error(who .. ': ' .. tostring(err):gsub('^[^:]*:%d+: ', ''):gsub('^set_precision: unet: ', ''), level)
   end
   self.precision, self._precision = p, p
end

--- m:set_precision('float32' | 'bf16'), or m.precision = ... before a
--- forward: the arithmetic of forwards (sampling, the NLL bound) and of
--- training steps. 'bf16' multiplies the 3x3 convolutions (forward and
--- input gradient) in bfloat16 with float32 sums (AVX512-BF16); a CPU
--- without it raises an error saying so. Weight gradients, the weights,
--- Adam and the EMA stay float32. Not saved with the model. opt.min_channels:
--- the fewest input channels of a layer run in bfloat16 (128; below that
--- float32 is as fast; 2 for every layer, as the quality gate does).
function UNet:set_precision(p, opt)
   check_self(self, 'set_precision')
   if opt ~= nil and type(opt) ~= 'table' then error('set_precision: options must be a table', 2) end
   self:_apply_precision(p, 'set_precision', 3, opt and opt.min_channels)
   return self
end

--- ddpm.unet{ch=, ch_mult=, num_res_blocks=, attn_resolutions=, dropout=,
---           in_ch=, out_ch=, resolution=, groups=32, eps=1e-6, seed=0,
---           precision='float32'}
--- Defaults are the paper's CIFAR-10 model (35,746,307 parameters).
function ddpm.unet(cfg)
   return UNet.new(cfg)
end

--- m:forward(x, t): x [N,in_ch,H,W]; t a tensor or table of N timesteps (or
--- one number for all). Returns a new [N,out_ch,H,W] tensor.
function UNet:forward(x, t)
   check_self(self, 'forward')
   if self.precision ~= self._precision then self:_apply_precision(self.precision, 'forward', 3) end
   self.output = self._c:forward(x, t)
   return self.output
end

--- m:backward(dy): gradient of a loss w.r.t. the last output; accumulates the
--- parameter gradients (m:grad(name)) and returns the gradient w.r.t. x.
function UNet:backward(dy)
   check_self(self, 'backward')
   return self._c:backward(dy)
end

function UNet:zero_grad() check_self(self, 'zero_grad'); self._c:zero_grad() end

--- m:training(): dropout on. m:evaluate(): dropout off (the default).
function UNet:training()
   check_self(self, 'training')
   self._c:set_training(true)
   self.is_training = true
   return self
end

function UNet:evaluate()
   check_self(self, 'evaluate')
   self._c:set_training(false)
   self.is_training = false
   return self
end

function UNet:set_dropout_seed(s, first) check_self(self, 'set_dropout_seed'); self._c:set_dropout_seed(s, first) end
function UNet:set_grad_enabled(on) check_self(self, 'set_grad_enabled'); self._c:set_grad_enabled(on) end
function UNet:num_params() check_self(self, 'num_params'); return self._c:num_params() end
function UNet:num_tensors() check_self(self, 'num_tensors'); return self._c:num_tensors() end
function UNet:param_names() check_self(self, 'param_names'); return self._c:param_names() end
function UNet:config() check_self(self, 'config'); return self._c:config() end
function UNet:workspace_bytes() return self._c:workspace_bytes() end

--- m:param(name or index): a tensor view of that parameter (writes change the model).
function UNet:param(name) check_self(self, 'param'); return self._c:param(name, false) end
--- m:grad(name or index): a tensor view of that parameter's gradient.
function UNet:grad(name) check_self(self, 'grad'); return self._c:param(name, true) end

--- m:parameters() -> {name = tensor view}, m:gradients() -> {name = tensor view}
function UNet:parameters()
   check_self(self, 'parameters')
   local t = {}
   for i, name in ipairs(self._c:param_names()) do t[name] = self._c:param(i, false) end
   return t
end

function UNet:gradients()
   check_self(self, 'gradients')
   local t = {}
   for i, name in ipairs(self._c:param_names()) do t[name] = self._c:param(i, true) end
   return t
end

--- m:flat_params(), m:flat_grads(): the whole flat buffers as 1-D views.
function UNet:flat_params() return self._c:flat(false) end
function UNet:flat_grads() return self._c:flat(true) end

--- m:save(path [, {diffusion = diff, data_shape = {C, H, W}}]): safetensors
--- under the diffusers UNet2DModel names, with the model's config (and the
--- process and image shape when given) in the metadata, also as diffusers'
--- UNet2DModel and DDPMScheduler configs: ddpm.load_unet rebuilds both.
function UNet:save(path, opt)
   check_self(self, 'save')
   if opt ~= nil and type(opt) ~= 'table' then error('save: options must be a table', 2) end
   opt = opt or {}
   if opt.diffusion ~= nil and (type(opt.diffusion) ~= 'table' or not opt.diffusion.sched) then
      error('save: diffusion must be a ddpm.diffusion{...}', 2)
   end
   local tensors = {}
   local flat = self:flat_params()
   for _, p in ipairs(self._c:param_info()) do
      tensors[p.name] = flat:narrow(1, p.offset + 1, p.numel):view(p.shape)
   end
   local meta = require('ddpm.checkpoint').describe(self, opt.diffusion, opt.data_shape)
   meta.format = 'pt'
   core.save_safetensors(path, tensors, meta)
end

--- m:load(path [, {prefix = '', strict = true}]): loads a diffusers-named
--- safetensors file (the google/ddpm-cifar10-32 weights load unchanged).
function UNet:load(path, opt)
   check_self(self, 'load')
   opt = opt or {}
   local strict = opt.strict
   if strict == nil then strict = true end
   self._c:load(path, opt.prefix or '', strict)
   return self
end

function UNet:free() self._c:free() end

function UNet:__tostring()
   local c = self._c:config()
   return ('[ddpm.UNet ch=%d ch_mult={%s} res_blocks=%d attn={%s} %dx%d in=%d out=%d: %d params in %d tensors]')
      :format(c.ch, table.concat(c.ch_mult, ','), c.num_res_blocks, table.concat(c.attn_resolutions, ','),
              c.resolution, c.resolution, c.in_ch, c.out_ch, self._c:num_params(), self._c:num_tensors())
end

--- ddpm.load_unet(path [, opt]) -> model, diffusion, info: the model built
--- from the config stored in a file that m:save or a training checkpoint
--- wrote, with its weights loaded; the diffusion process it was trained
--- with (nil when the file does not record it); info = {data_shape =,
--- checkpoint =, unet =, diffusion =} (checkpoint.read_config). opt goes to
--- m:load; opt.ema = true loads a checkpoint's EMA ({prefix = 'ema.',
--- strict = false}).
function ddpm.load_unet(path, opt)
   if type(path) ~= 'string' then error('load_unet: path must be a string, got ' .. type(path), 2) end
   if opt ~= nil and type(opt) ~= 'table' then error('load_unet: options must be a table', 2) end
   for k in pairs(opt or {}) do
      if k ~= 'prefix' and k ~= 'strict' and k ~= 'ema' then
         error(("load_unet: unknown option '%s' (known: ema, prefix, strict)"):format(tostring(k)), 2)
      end
   end
   local ok, info = pcall(require('ddpm.checkpoint').read_config, path)
   if not ok then error('load_unet: ' .. tostring(info), 2) end
   if not info.unet then
      error(('load_unet: %s has no ddpmlua.unet_config metadata; build the model with ddpm.unet{...} and call m:load(path)'):format(path), 2)
   end
   local cfg = info.unet
   cfg.seed = nil
   local lo = {}
   for k, v in pairs(opt or {}) do lo[k] = v end
   if lo.ema then
      if not info.ema then error(('load_unet: %s has no EMA weights (ema.*)'):format(path), 2) end
      lo.prefix, lo.strict, lo.ema = 'ema.', false, nil
   elseif info.checkpoint and lo.strict == nil then
      lo.strict = false   -- the checkpoint's other tensors (EMA, Adam) are not the model's
   end
   local m = ddpm.unet(cfg)
   m:load(path, lo)
   local diff = info.diffusion and ddpm.diffusion(info.diffusion) or nil
   return m, diff, info
end

---------------------------------------------------------------- submodules

ddpm.json = require 'ddpm.json'
ddpm.progress = require 'ddpm.progress'

--- ddpm.diffusion{schedule = 'linear', T = 1000, ...}: see lib/ddpm/diffusion.lua.
function ddpm.diffusion(opt) return require('ddpm.diffusion').new(opt) end

ddpm.data = require 'ddpm.data'
ddpm.log = require 'ddpm.log'
ddpm.dist = require 'ddpm.dist'         -- data parallelism under mpirun (rank, size, allreduce, ...)
ddpm.runs = require('ddpm.commands').runs   -- ddpm.runs{db=, status=, last=, ...}: run rows
ddpm.checkpoint = require 'ddpm.checkpoint'
ddpm.metrics = require('ddpm.metrics')
ddpm.fid = require('ddpm.fid')           -- FID and Inception Score (FID Inception-v3, user-supplied weights)
ddpm.ablation = setmetatable({}, {__index = function(_, k) return require('ddpm.ablation')[k] end})
ddpm.cli = require 'ddpm.cli'
ddpm.show = require('ddpm.show')

--- ddpm.train{model=, diffusion=, data=, steps=, batch=, ...}: see lib/ddpm/train.lua.
function ddpm.train(opt) return require('ddpm.train')(opt) end
ddpm.steps = require 'ddpm.loop'        -- for step in ddpm.steps{steps =, run =, on_stop =} do ... end

--- ddpm.save_grid(path, x [, nrow = 8, padding = 2]): x [N,C,H,W] in [-1,1] as a PNG grid.
--- Under mpirun only rank 0 writes files; the other ranks do nothing here.
function ddpm.save_grid(path, x, nrow, padding)
   if core.dist_rank() ~= 0 then return end
   require('ddpm.log').prepare(path)
   return core.save_grid(path, x, nrow or 8, padding or 2)
end

return ddpm
