--[[
ddpm.diffusion — the forward process, the training loss and the samplers, as
one object over a noise schedule (the C core does the math: runtime/diffusion.c).

   local diff = ddpm.diffusion{schedule = 'linear', T = 1000}      -- the paper
   local loss = diff:train_step_loss(model, x0, step_seed)          -- Algorithm 1
   local x = diff:sample(model, {n = 64, shape = {1, 28, 28}, seed = 1})  -- Algorithm 2

Options: schedule ('linear', 'quad', 'const', 'jsd', 'warmup10', 'warmup50',
'cosine', or a table of T betas, or a Lua function t -> beta for t = 0..T-1),
T, beta_start, beta_end, mean_type ('eps', 'xstart', 'xprev', 'v'),
var_type ('fixedlarge', 'fixedsmall', 'learned', 'learned_range'),
loss_type ('mse', 'rescaled_mse', 'kl', 'rescaled_kl'), clip (true).
Timesteps are the code index t = 0..T-1 (paper t - 1), as the network sees them.
]]
local core = require 'ddpm.core'
local progress = require 'ddpm.progress'

local Diffusion = {}
Diffusion.__index = Diffusion
Diffusion.__typename = 'ddpm.Diffusion'

local known = {schedule = true, T = true, beta_start = true, beta_end = true, mean_type = true,
               var_type = true, loss_type = true, clip = true}

local function new(opt)
   opt = opt or {}
   if type(opt) ~= 'table' then error('diffusion: expected an options table', 3) end
   for k in pairs(opt) do
      if not known[k] then error(("diffusion: unknown option '%s'"):format(tostring(k)), 3) end
   end
   local self = setmetatable({}, Diffusion)
   self.T = opt.T or 1000
   self.beta_start = opt.beta_start or 1e-4
   self.beta_end = opt.beta_end or 0.02
   self.mean_type = opt.mean_type or 'eps'
   self.var_type = opt.var_type or 'fixedlarge'
   self.loss_type = opt.loss_type or 'mse'
   self.clip = opt.clip ~= false
   local s = opt.schedule or 'linear'
   if type(s) == 'string' then
      self.schedule_name = s
      self.sched = core.schedule(s, self.T, self.beta_start, self.beta_end)
   elseif type(s) == 'function' then
      local betas = {}
      for t = 0, self.T - 1 do betas[t + 1] = s(t) end
      self.schedule_name = 'custom'
      self.sched = core.schedule_from_betas(betas)
   elseif type(s) == 'table' or core.is_tensor(s) then
      self.schedule_name = 'custom'
      self.sched = core.schedule_from_betas(s)
      self.T = self.sched:T()
   else
      error('diffusion: schedule must be a name, a table of betas or a function of t', 3)
   end
   return self
end

--- The number of network output channels for C image channels.
function Diffusion:out_channels(C)
   if self.var_type == 'learned' or self.var_type == 'learned_range' then return 2 * C end
   return C
end

--- Options passed to the C reverse-process ops.
function Diffusion:rev_opts(extra)
   local o = {mean_type = self.mean_type, var_type = self.var_type, clip = self.clip}
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

--- x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (eq. 4).
function Diffusion:q_sample(x0, t, eps)
   return core.q_sample(self.sched, x0, eps, t)
end

--- One training loss (Algorithm 1 lines 2-5, without the optimiser):
--- draws t and eps from the seeds given, runs the model forward, computes the
--- loss and runs backward (gradients accumulate in the model).
--- rng = {t_seed=, t_counter=, eps_seed=, eps_counter=}. Returns the loss,
--- the per-example losses (a tensor) and the timesteps (a table).
function Diffusion:loss(model, x0, rng)
   local N = x0:size(1)
   local sizes = x0:size()
   local t = core.randint(N, self.T, rng.t_seed, rng.t_counter or 0)
   local eps = core.randn(sizes, rng.eps_seed, rng.eps_counter or 0)
   local xt = core.q_sample(self.sched, x0, eps, t)
   local out = model:forward(xt, t)
   local loss, grad, losses
   if self.loss_type == 'mse' and self.mean_type == 'eps' and self.var_type:sub(1, 5) == 'fixed' then
      loss, grad = core.loss_simple(out, eps)
      losses = core.loss_simple_per_example(out, eps)
   else
      loss, grad, losses = core.training_losses(self.sched, out, x0, xt, eps, t,
         {mean_type = self.mean_type, var_type = self.var_type, loss_type = self.loss_type})
   end
   model:backward(grad)
   return loss, losses, t
end

--- Ancestral sampling (Algorithm 2): x_T ~ N(0, I), then T reverse steps.
--- opt: n, shape = {C, H, W}, seed, progress (true), clip (the diffusion's),
--- on_step = function(t, x, x0_pred) (optional, e.g. for progressive figures).
--- The model is put in evaluation mode without activation caching and
--- restored afterwards. Returns x_0 [n, C, H, W] (not clipped).
function Diffusion:sample(model, opt)
   opt = opt or {}
   local n, shape = opt.n or 16, opt.shape
   if type(shape) ~= 'table' or #shape ~= 3 then error('sample: shape = {C, H, W} is required', 2) end
   local seed = opt.seed or 0
   local sizes = {n, shape[1], shape[2], shape[3]}
   local x, ctr = core.randn(sizes, core.mix_seed(seed, 11), 0)
   local zseed, zctr = core.mix_seed(seed, 12), 0
   local was_training = model.is_training
   model:evaluate()
   model:set_grad_enabled(false)
   local show = opt.progress ~= false
   local bar = show and progress.new{total = self.T, label = opt.label or 'sample'}
   local ropts = self:rev_opts{clip = opt.clip}
   local x0pred = opt.on_step and core.zeros(sizes) or nil
   if x0pred then ropts.x0_out = x0pred end
   local ok, err = pcall(function()
      for i = self.T - 1, 0, -1 do
         local out = model:forward(x, i)
         local z
         z, zctr = core.randn(sizes, zseed, zctr)
         ropts.out = x
         core.p_sample_step(self.sched, out, x, i, z, ropts)
         out:free(); z:free()
         if opt.on_step then opt.on_step(i, x, x0pred) end
         if bar then bar:update(self.T - i) end
      end
   end)
   model:set_grad_enabled(true)
   if was_training then model:training() end
   if bar then bar:finish() end
   if not ok then error(err, 0) end
   return x
end

function Diffusion:__tostring()
   return ('[ddpm.Diffusion %s T=%d mean=%s var=%s loss=%s]'):format(self.schedule_name, self.T,
      self.mean_type, self.var_type, self.loss_type)
end

return {new = new, Diffusion = Diffusion}
