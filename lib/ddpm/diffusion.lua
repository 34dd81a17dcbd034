--[[
ddpm.diffusion — the forward process, the training loss, the samplers and the
likelihood, as one object over a noise schedule (the C core does the math:
runtime/diffusion.c; this file runs the loops over t).

   local diff = ddpm.diffusion{schedule = 'linear', T = 1000}      -- the paper
   local loss = diff:loss(model, x0, rng)                           -- Algorithm 1
   local x = diff:sample(model, {n = 64, shape = {1, 28, 28}, seed = 1})  -- Algorithm 2
   local x = diff:sample(model, {n = 64, shape = {1, 28, 28}, steps = 'ddim50',
                                 sampler = 'ddim', eta = 0})        -- DDIM, 50 steps
   local r = diff:nll(model, data, {n = 1000, batch = 100})         -- bits/dim (docs/math.md §3.3)

Options: schedule ('linear', 'quad', 'const', 'jsd', 'warmup10', 'warmup50',
'cosine', or a table of T betas, or a Lua function t -> beta for t = 0..T-1),
T, beta_start, beta_end, mean_type ('eps', 'xstart', 'xprev', 'v'),
var_type ('fixedlarge', 'fixedsmall', 'learned', 'learned_range'),
loss_type ('mse', 'rescaled_mse', 'kl', 'rescaled_kl'), clip (true).
Timesteps are the code index t = 0..T-1 (paper t - 1), as the network sees them.

The model. Every sampler and nll take either a ddpm.UNet (run in evaluation
mode without activation caching, restored afterwards) or a Lua function
model(x, t) -> tensor of the network's output shape, where x is
[N, C, H, W] and t one number (the same ORIGINAL timestep for the whole
batch), so an analytic model can be plugged in. A function's output is not
freed.

Respacing (docs/math.md §5.1). opt.steps = K (a number: improved-diffusion's "K", K
steps spread evenly over [0, T), first and last included) or a spacing string
('50', '10,15,20', 'ddim50') runs the K-step process with
beta'_k = 1 - ab[s_k] / ab[s_{k-1}] recomputed from the kept indices s_k; the
network receives the original index s_k. diff:respace(spec) returns that
process as a Diffusion of its own (cached); sampler loops, nll and q_sample
on it use its code index k = 0..K-1 and feed the model s_k. A mu~ ('xprev')
model predicts the mean of the ORIGINAL x_{t-1}: on a respaced process its
output is turned into x0 with the original coefficients and the process
runs as an x0 predictor. A 'learned' variance is the log-variance of one
original step and is used as it is (as improved-diffusion does); with few
steps, 'learned_range' (interpolated between the respaced beta and beta~)
or the full chain suits it better.
]]
local core = require 'ddpm.core'
local progress = require 'ddpm.progress'
local dist = require 'ddpm.dist'
local util = require 'ddpm.util'

local Diffusion = {}
Diffusion.__index = Diffusion
Diffusion.__typename = 'ddpm.Diffusion'

local known = {schedule = true, T = true, beta_start = true, beta_end = true, mean_type = true,
               var_type = true, loss_type = true, clip = true}

-- Random streams under a sampler's seed (core.mix_seed(seed, stream)).
local S_XT, S_Z, S_QEPS = 11, 12, 13       -- x_T; reverse-step noise; q_sample noise
local S_BRANCH = 100                       -- + split number: noise of the branches

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
   self.base_T = self.T
   self.tmap = self.sched:timestep_map()   -- [k + 1] = the timestep the network sees
   self._spaced = {}
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

--- The timestep the network is fed for code index k of this process (the
--- original index after respacing, k itself otherwise).
function Diffusion:model_t(k)
   local v = self.tmap[k + 1]
   if v == nil then
      error(('model_t: %s is not a code index in 0..%d'):format(tostring(k), self.T - 1), 2)
   end
   return v
end

--- diff:respace(steps) -> the K-step respaced process (docs/math.md §5.1) as a
--- Diffusion sharing this one's mean/var/loss types and clip. steps: a number
--- K or a spacing string ('50', '10,20', 'ddim50'). The result is cached per
--- spec; steps = T (the number) or nil returns self.
function Diffusion:respace(steps)
   if steps == nil or steps == self.T then return self end
   local spec
   if type(steps) == 'number' then
      if steps < 1 or steps % 1 ~= 0 or steps > self.T then
         error(('respace: steps = %s must be an integer in 1..%d'):format(tostring(steps), self.T), 2)
      end
      spec = tostring(steps)
   elseif type(steps) == 'string' then
      spec = steps
   else
      error('respace: steps must be a number or a spacing string such as "ddim50", got ' .. type(steps), 2)
   end
   local hit = self._spaced[spec]
   if hit then return hit end
   local ok, r = pcall(self.sched.respace, self.sched, spec)
   if not ok then error(r, 2) end
   local child = setmetatable({}, Diffusion)
   for _, k in ipairs{'beta_start', 'beta_end', 'mean_type', 'var_type', 'loss_type', 'clip',
                      'schedule_name'} do
      child[k] = self[k]
   end
   -- A mu~ (xprev) network predicts the mean of x_{t-1} of the ORIGINAL
   -- process, which is not the mean of a respaced step: its output is read
   -- as x0 = (mu - c2_t x_t) / c1_t with the original coefficients, and the
   -- respaced process runs as an x0 predictor (see model_view).
   if self.mean_type == 'xprev' or self.xprev_base then
      child.mean_type = 'xstart'
      child.xprev_base = self.xprev_base or self
   end
   child.sched = r
   child.T = r:T()
   child.base_T = self.base_T
   child.tmap = r:timestep_map()
   child.spacing = spec
   child.parent = self
   child._spaced = {}
   self._spaced[spec] = child
   return child
end

--- One training loss (Algorithm 1 lines 2-5, without the optimiser):
--- draws t and eps from the seeds given, runs the model forward, computes the
--- loss and runs backward (gradients accumulate in the model).
--- rng = {t_seed=, t_counter=, eps_seed=, eps_counter= [, sampler=]}.
--- With rng.sampler (a core.tsampler, see diff:tsampler) t is drawn by
--- importance from the loss history, the loss is the weighted mean
--- sum_n L_n / (T p_t(n)) / N, and the unweighted per-example losses are
--- added to the history afterwards. Returns the loss, the per-example
--- (unweighted) losses (a tensor) and the timesteps (a table).
---
--- A share of a larger batch (data parallelism): rng.total = the size of the
--- whole batch and rng.first = the index (0-based) of x0's first example in
--- it. t and eps are then those the examples get in the whole batch, the
--- loss is the mean over x0's examples, the sampler's history is left to the
--- caller (who has every rank's losses), and a fourth result is the whole
--- batch's timesteps.
---
--- Without seeds (diff:loss(m, x0), or only some of them) every call draws
--- new t and eps: the missing seeds are fixed (t 1, eps 2) and the missing
--- counters advance with this diffusion's call count, so the same sequence
--- of calls gives the same draws in every process.
---
--- rng.loss = function(out, eps, ctx) -> loss, grad_out [, losses] replaces
--- the built-in objective: out is the model output, eps the noise, ctx =
--- {x0 =, xt =, t =, model =, diffusion =}; it returns the loss (a number),
--- its gradient with respect to out (a tensor of out's shape) and optionally
--- the per-example losses (a tensor [N]). Not with rng.sampler.
function Diffusion:loss(model, x0, rng)
   rng = rng or {}
   if type(rng) ~= 'table' then error('loss: options must be a table, got ' .. type(rng), 2) end
   if not core.is_tensor(x0) then error('loss: x0 must be a ddpm.Tensor, got ' .. type(x0), 2) end
   if rng.loss ~= nil and type(rng.loss) ~= 'function' then
      error('loss: loss must be a function (out, eps, ctx) -> loss, grad_out, got ' .. type(rng.loss), 2)
   end
   if rng.loss and rng.sampler then error('loss: a custom loss cannot be combined with a timestep sampler', 2) end
   if rng.t_counter == nil or rng.eps_counter == nil then
      self._loss_calls = (self._loss_calls or 0) + 1
   end
   local calls = self._loss_calls or 0
   local t_seed = rng.t_seed or 1
   local eps_seed = rng.eps_seed or 2
   local t_counter = rng.t_counter or (calls - 1) * 1048576
   local eps_counter = rng.eps_counter or (calls - 1) * 4294967296
   local N = x0:size(1)
   local sizes = x0:size()
   local first, total = rng.first or 0, rng.total or N
   if first % 1 ~= 0 or first < 0 or total % 1 ~= 0 or first + N > total then
      error(('loss: examples %s..%s of a batch of %s'):format(tostring(first), tostring(first + N - 1),
            tostring(total)), 2)
   end
   local share = total ~= N
   local t, w, t_all
   if rng.sampler then
      if rng.sampler:T() ~= self.T then
         error(('loss: the timestep sampler has T = %d, the diffusion T = %d'):format(
            rng.sampler:T(), self.T), 2)
      end
      t, w = rng.sampler:sample(total, t_seed, t_counter)
   else
      t = core.randint(total, self.T, t_seed, t_counter)
   end
   if share then   -- this share's timesteps and weights
      t_all, t = t, {}
      for i = 1, N do t[i] = t_all[first + i] end
      if w then
         local ws = w:narrow(1, first + 1, N):contiguous()
         w:free()
         w = ws
      end
   end
   -- normal j of a draw takes counters c + 2j: example first + i starts at
   -- c + 2 * (first + i) * D, as in the whole batch
   local D = x0:numel() / N
   local eps = core.randn(sizes, eps_seed, eps_counter + 2 * first * D)
   local xt = core.q_sample(self.sched, x0, eps, t)
   local out = model:forward(xt, t)
   local loss, grad, losses
   if rng.loss then
      loss, grad, losses = rng.loss(out, eps, {x0 = x0, xt = xt, t = t, model = model, diffusion = self})
      if type(loss) ~= 'number' then
         error(('loss: the custom loss returned %s as the loss, expected a number'):format(type(loss)), 2)
      end
      if not core.is_tensor(grad) or grad:shape_str() ~= out:shape_str() then
         error(('loss: the custom loss must return the gradient with respect to the output, a tensor %s, ' ..
                'got %s'):format(out:shape_str(), core.is_tensor(grad) and grad:shape_str() or type(grad)), 2)
      end
      if losses == nil then losses = core.full({N}, loss)
      elseif not core.is_tensor(losses) or losses:numel() ~= N then
         error(('loss: the custom loss\'s per-example losses must be a tensor of %d values'):format(N), 2)
      end
   elseif not w and self.loss_type == 'mse' and self.mean_type == 'eps' and self.var_type:sub(1, 5) == 'fixed' then
      loss, grad = core.loss_simple(out, eps)
      losses = core.loss_simple_per_example(out, eps)
   else
      loss, grad, losses = core.training_losses(self.sched, out, x0, xt, eps, t,
         {mean_type = self.mean_type, var_type = self.var_type, loss_type = self.loss_type,
          weights = w})
   end
   model:backward(grad)
   if w then
      if not share and loss == loss and loss ~= math.huge then rng.sampler:update(t, losses) end
      w:free()
   end
   xt:free(); eps:free()
   return loss, losses, t, t_all
end

--- diff:tsampler{history = 10, uniform_prob = 0.001}: the loss-second-moment
--- timestep sampler of Improved DDPM (Nichol & Dhariwal 2021, sec. 3.3) for
--- this process: uniform until every t has `history` losses, then
--- p_t ∝ sqrt(E[L_t^2]) mixed with uniform_prob. Pass it as rng.sampler to
--- diff:loss, or schedule_sampler = 'loss-second-moment' to ddpm.train.
function Diffusion:tsampler(opt)
   return core.tsampler(self.T, opt)
end

---------------------------------------------------------------- models

-- A uniform view of a model: call(x, t) -> output, release(output), done().
local function plain_view(model, what)
   if type(model) == 'function' then
      return {call = model, release = function() end, done = function() end, fn = true}
   end
   if type(model) == 'table' and type(model.forward) == 'function' then
      local was_training = model.is_training
      if model.evaluate then model:evaluate() end
      if model.set_grad_enabled then model:set_grad_enabled(false) end
      return {
         call = function(x, t) return model:forward(x, t) end,
         release = function(out) if out.free then out:free() end end,
         done = function()
            if model.set_grad_enabled then model:set_grad_enabled(true) end
            if was_training and model.training then model:training() end
         end,
      }
   end
   error(('%s: model must be a ddpm.UNet (or an object with :forward) or a function (x, t) -> tensor, got %s')
         :format(what, type(model)), 4)
end

-- The model as process `diff` reads it. On a respaced process of a mu~
-- (xprev) model the mean channels are turned into x0 with the original
-- process's posterior coefficients at the original timestep t (a function
-- model's output is copied first, never changed).
local function model_view(model, what, diff)
   local m = plain_view(model, what)
   local base = diff and diff.xprev_base
   if not base then return m end
   local call = m.call
   m.call = function(x, t)
      local out = call(x, t)
      if not core.is_tensor(out) then return out end
      local own = out
      if m.fn then own = out:clone() end
      local C = x:size(2)
      local mu = own:narrow(2, 1, C)
      local _, _, x0 = core.p_mean_variance(base.sched, mu:contiguous(), x, t,
                                            {mean_type = 'xprev', var_type = 'fixedlarge', clip = false})
      mu:copy(x0)
      x0:free()
      return own
   end
   -- a function model's output was copied: the copy is ours to free
   if m.fn then m.release = function(out) out:free() end end
   return m
end

-- Runs f(m) with the model wrapped, restoring the model (and closing a
-- progress bar) even when f raises.
local function with_model(model, what, bar, f, diff)
   local m = model_view(model, what, diff)
   local res = {pcall(f, m)}
   m.done()
   if bar then bar:finish() end
   if not res[1] then error(res[2], 0) end
   return unpack(res, 2, table.maxn(res))
end

-- Unknown option names are errors (a typo like step = 50 would otherwise be ignored).
local function set(...)
   local t = {}
   for _, k in ipairs{...} do t[k] = true end
   return t
end
local COMMON = {'seed', 'steps', 'sampler', 'eta', 'clip', 'progress', 'label'}
local OPTS = {
   sample = set('n', 'shape', 'noise', 'on_step', 'shard', unpack(COMMON)),
   progressive = set('n', 'shape', 'noise', 'on_step', 'every', 'path', unpack(COMMON)),
   interpolate = set('t', 'lambdas', 'path', unpack(COMMON)),
   shared_latent = set('n', 'shape', 'split', 'branches', 'path', unpack(COMMON)),
   ddim_encode = set('steps', 'clip', 'progress', 'label', 'eta'),
   ddim_decode = set('steps', 'clip', 'progress', 'label', 'eta', 'on_step'),
}

local function check_opts(opt, what)
   if type(opt) ~= 'table' then error(('%s: expected an options table, got %s'):format(what, type(opt)), 3) end
   util.check_keys(opt, OPTS[what], what, 3)
end

local function check_shape(shape, what)
   if type(shape) ~= 'table' or #shape ~= 3 then error(what .. ': shape = {C, H, W} is required', 3) end
   for i = 1, 3 do
      if type(shape[i]) ~= 'number' or shape[i] < 1 or shape[i] % 1 ~= 0 then
         error(what .. ': shape = {C, H, W} must hold positive integers', 3)
      end
   end
end

-- A 4-D batch from x ([C,H,W] or [N,C,H,W]), contiguous, never the caller's tensor.
local function batch4(x, what, name)
   if not core.is_tensor(x) then error(('%s: %s must be a ddpm.Tensor, got %s'):format(what, name, type(x)), 3) end
   local s = x:size()
   if #s == 3 then return x:contiguous():view({1, s[1], s[2], s[3]}):clone() end
   if #s ~= 4 then error(('%s: %s expected [N,C,H,W] or [C,H,W], got %s'):format(what, name, x:shape_str()), 3) end
   return x:clone()
end

---------------------------------------------------------------- the reverse chain

local samplers = {ancestral = true, ddim = true}

local function check_sampler(opt, what)
   local s = opt.sampler or 'ancestral'
   if not samplers[s] then
      error(("%s: sampler must be 'ancestral' or 'ddim', got '%s'"):format(what, tostring(s)), 3)
   end
   local eta = opt.eta or 0
   if type(eta) ~= 'number' or eta < 0 then error(what .. ': eta must be a number >= 0', 3) end
   if s == 'ancestral' and opt.eta ~= nil then
      error(what .. ": eta is an option of sampler = 'ddim'", 3)
   end
   return s, eta
end

--- The largest code index k of this process with model_t(k) <= t (t an
--- original timestep); where a chain meant to start at original step t starts.
function Diffusion:index_at(t)
   if type(t) ~= 'number' or t % 1 ~= 0 or t < 0 or t >= self.base_T then
      error(('index_at: t = %s must be an integer in 0..%d'):format(tostring(t), self.base_T - 1), 2)
   end
   local k = 0
   for i = 0, self.T - 1 do
      if self.tmap[i + 1] <= t then k = i else break end
   end
   return k
end

-- Runs reverse steps k = from .. to (descending) on x in place.
-- st: m (wrapped model), sampler, eta, clip, noise(sizes) -> tensor or nil,
-- on_step(k, x, x0_pred, t_model), x0_out (tensor for x0_pred), bar, done
-- (steps already counted by the bar).
function Diffusion:_chain(x, from, to, st)
   local sizes = x:size()
   local ropts = self:rev_opts{clip = st.clip, out = x, x0_out = st.x0_out}
   if st.sampler == 'ddim' then ropts.eta = st.eta end
   for k = from, to, -1 do
      local tm = self.tmap[k + 1]
      local out = st.m.call(x, tm)
      if not core.is_tensor(out) then
         error(('model returned %s, expected a tensor'):format(type(out)), 0)
      end
      local z
      if st.sampler == 'ddim' then
         if st.eta > 0 then z = st.noise(sizes) end
         core.ddim_step(self.sched, out, x, k, z, ropts)
      else
         z = st.noise(sizes)
         core.p_sample_step(self.sched, out, x, k, z, ropts)
      end
      st.m.release(out)
      if z then z:free() end
      if st.on_step then st.on_step(k, x, st.x0_out, tm) end
      if st.bar then
         st.done = (st.done or 0) + 1
         st.bar:update(st.done)
      end
   end
   return x
end

-- The noise source of a chain: N(0, I) draws from (seed, stream), counters
-- running. A share of rows lo.. of an n-row chain (data parallelism) draws
-- what those rows draw in the whole chain: row i of a draw starts at counter
-- c + 2 i D (two uniforms a normal), and each draw of n rows advances c by 2 n D.
local function noise_stream(seed, stream, lo, n)
   local s, ctr = core.mix_seed(seed, stream), 0
   if lo then
      return function(sizes)
         local D = 1
         for i = 2, #sizes do D = D * sizes[i] end
         local z = core.randn(sizes, s, ctr + 2 * lo * D)
         ctr = ctr + 2 * n * D
         return z
      end
   end
   return function(sizes)
      local z
      z, ctr = core.randn(sizes, s, ctr)
      return z
   end
end

--- Sampling. opt:
---   n (16), shape = {C, H, W} (required unless noise is given), seed (0),
---   steps (nil = all T; a number K or a spacing string: respaced, docs/math.md §5.1),
---   sampler ('ancestral' | 'ddim'), eta (DDIM only; 0 = deterministic),
---   noise (x_T to start from, [n,C,H,W]; copied), clip (the diffusion's),
---   progress (true), label, on_step = function(k, x, x0_pred, t) (x0_pred
---   is the predicted x_0 of that step; t the network's timestep).
--- Ancestral sampling is Algorithm 2; with steps it runs on the respaced
--- process. The model may be a ddpm.UNet or a function (x, t) -> output.
--- Returns x_0 [n, C, H, W] (not clipped).
function Diffusion:sample(model, opt)
   opt = opt or {}
   check_opts(opt, 'sample')
   if opt.steps ~= nil then
      local r = self:respace(opt.steps)
      if r ~= self then
         local o = {}
         for k, v in pairs(opt) do o[k] = v end
         o.steps = nil
         return r:sample(model, o)
      end
   end
   local sampler, eta = check_sampler(opt, 'sample')
   local seed = opt.seed or 0
   local x, sizes, lo, n
   -- Under mpirun the n samples are split over the ranks (shard = false: not);
   -- sample i draws what it draws in one process, and every rank gets all n.
   local shard = core.dist_size() > 1 and opt.noise == nil and opt.shard ~= false
   if opt.noise ~= nil then
      x = batch4(opt.noise, 'sample', 'noise')
   else
      check_shape(opt.shape, 'sample')
      n = opt.n or 16
      sizes = {n, opt.shape[1], opt.shape[2], opt.shape[3]}
      if shard then
         local hi
         lo, hi = dist.shard(n)
         local D = sizes[2] * sizes[3] * sizes[4]
         x = hi > lo and core.randn({hi - lo, sizes[2], sizes[3], sizes[4]}, core.mix_seed(seed, S_XT),
                                    2 * lo * D) or nil
      else
         x = core.randn(sizes, core.mix_seed(seed, S_XT), 0)
      end
   end
   local show = opt.progress ~= false and core.dist_rank() == 0
   local bar = show and progress.new{total = self.T, label = opt.label or (sampler == 'ddim' and 'ddim' or 'sample')}
   return with_model(model, 'sample', bar, function(m)
      local st = {m = m, sampler = sampler, eta = eta, clip = opt.clip, bar = bar,
                  noise = noise_stream(seed, S_Z, lo, n), on_step = opt.on_step,
                  x0_out = x and opt.on_step and core.zeros(x:size()) or nil}
      if x then self:_chain(x, self.T - 1, 0, st) end
      if shard then x = dist.gather_rows(x, lo, sizes) end
      return x
   end, self)
end

--- DDIM decoding (eta = 0): x_0 from x_T by the deterministic DDIM chain.
--- opt: steps, clip, progress (as sample). x_T [n,C,H,W] is not modified.
function Diffusion:ddim_decode(model, xT, opt)
   opt = opt or {}
   check_opts(opt, 'ddim_decode')
   if opt.eta ~= nil and opt.eta ~= 0 then error('ddim_decode: eta must be 0 (deterministic)', 2) end
   return self:sample(model, {noise = xT, sampler = 'ddim', eta = 0, steps = opt.steps, clip = opt.clip,
                              progress = opt.progress, label = opt.label or 'ddim_decode',
                              on_step = opt.on_step})
end

--- DDIM encoding (docs/math.md §5.2; eta must be 0): the latent x_T that
--- ddim_decode maps back to x0. x0 is taken as the state at code index 0
--- and K - 1 encoder steps x_{k+1} = sqrt(ab_{k+1}) x0_hat + sqrt(1 - ab_{k+1}) eps
--- bring it to index K - 1, the state the decoder starts from (K = the
--- process's steps; opt.steps respaces). opt: steps, clip, progress.
function Diffusion:ddim_encode(model, x0, opt)
   opt = opt or {}
   check_opts(opt, 'ddim_encode')
   if opt.eta ~= nil and opt.eta ~= 0 then error('ddim_encode: eta must be 0 (deterministic)', 2) end
   local d = self:respace(opt.steps)
   local x = batch4(x0, 'ddim_encode', 'x0')
   local bar = opt.progress ~= false and progress.new{total = math.max(d.T - 1, 1), label = opt.label or 'ddim_encode'}
   return with_model(model, 'ddim_encode', bar, function(m)
      local ropts = d:rev_opts{clip = opt.clip, out = x}
      for k = 0, d.T - 2 do
         local out = m.call(x, d.tmap[k + 1])
         core.ddim_reverse_step(d.sched, out, x, k, ropts)
         m.release(out)
         if bar then bar:update(k + 1) end
      end
      return x
   end, d)
end

---------------------------------------------------------------- figures

-- Copies rows of tensors into one [sum, C, H, W] tensor in the order given
-- by items = {{tensor, row}, ...}.
local function gather(items, C, H, W)
   local out = core.zeros({#items, C, H, W})
   for i, it in ipairs(items) do out[i] = it[1][it[2]] end
   return out
end

local function save(path, x, nrow)
   if path then core.save_grid(path, x, nrow, 2) end
end

--- Progressive generation (paper Fig. 6, docs/math.md §4.3): samples while keeping the
--- predicted x_0 along the chain. opt: as sample, plus every (in original
--- timesteps; default T/20, so 20 snapshots for T = 1000), path (a PNG: one
--- row per sample, the snapshots from t = T-1 down to t = 0 left to right).
--- Snapshot slot j holds the prediction of the last step visited with
--- t // every == j (t = every*j when that step is run). Returns
--- x_0 [n,C,H,W] and snapshots = {{t = original t, x0 = [n,C,H,W]}, ...} in
--- descending t; the last snapshot (t = 0) equals x_0.
function Diffusion:progressive(model, opt)
   opt = opt or {}
   check_opts(opt, 'progressive')
   local every = opt.every or math.max(1, math.floor(self.base_T / 20))
   if type(every) ~= 'number' or every < 1 or every % 1 ~= 0 then
      error('progressive: every must be a positive integer', 2)
   end
   local slots, order = {}, {}
   local user = opt.on_step
   local o = {}
   for k, v in pairs(opt) do o[k] = v end
   o.every, o.path = nil, nil
   o.label = opt.label or 'progressive'
   o.on_step = function(k, x, x0, t)
      local j = math.floor(t / every)
      if not slots[j] then
         slots[j] = {t = t, x0 = x0:clone()}
         order[#order + 1] = j
      else
         slots[j].t = t
         slots[j].x0:copy(x0)
      end
      if user then user(k, x, x0, t) end
   end
   local x = self:sample(model, o)
   local snaps = {}
   for _, j in ipairs(order) do snaps[#snaps + 1] = slots[j] end
   if opt.path then
      local s = x:size()
      local items = {}
      for i = 1, s[1] do
         for _, sn in ipairs(snaps) do items[#items + 1] = {sn.x0, i} end
      end
      local g = gather(items, s[2], s[3], s[4])
      save(opt.path, g, #snaps)
      g:free()
   end
   return x, snaps
end

--- Interpolation in latent space (paper Sec. 4.4, Fig. 8; docs/math.md §4.4): for each
--- pair (x0a[i], x0b[i]) diffuse both to step t with noise fixed across the
--- lambdas, mix x_bar = (1 - lambda) x_t + lambda x'_t and run the reverse
--- chain from t to 0, with the same reverse noise for every lambda.
--- x0a, x0b: [B,C,H,W] (or [C,H,W]) in [-1, 1]. opt: t (original code index
--- the chain starts at; default T/2), lambdas (default 0, 0.1, ..., 1), seed,
--- steps (respaced: starts at the largest kept index <= t), sampler, eta,
--- clip, progress, path (a PNG: one row per pair: x0a, the lambdas, x0b).
--- Returns [B*L, C,H,W] ordered pair by pair, lambda fastest, and the lambdas.
function Diffusion:interpolate(model, x0a, x0b, opt)
   opt = opt or {}
   check_opts(opt, 'interpolate')
   local d = self:respace(opt.steps)
   local sampler, eta = check_sampler(opt, 'interpolate')
   local a, b = batch4(x0a, 'interpolate', 'x0a'), batch4(x0b, 'interpolate', 'x0b')
   if a:shape_str() ~= b:shape_str() then
      error(('interpolate: x0a %s and x0b %s differ in shape'):format(a:shape_str(), b:shape_str()), 2)
   end
   local t = opt.t or math.floor(self.base_T / 2)
   local k0 = d:index_at(t)
   local lambdas = opt.lambdas
   if lambdas == nil then
      lambdas = {}
      for i = 0, 10 do lambdas[#lambdas + 1] = i / 10 end
   end
   local L = #lambdas
   if L < 1 then error('interpolate: lambdas is empty', 2) end
   local seed = opt.seed or 0
   local s = a:size()
   local B, C, H, W = s[1], s[2], s[3], s[4]
   local eps, ctr = core.randn(s, core.mix_seed(seed, S_QEPS), 0)
   local eps2 = core.randn(s, core.mix_seed(seed, S_QEPS), ctr)
   local at, bt = core.q_sample(d.sched, a, eps, k0), core.q_sample(d.sched, b, eps2, k0)
   local x = core.zeros({B * L, C, H, W})
   for i = 1, B do
      for j, lam in ipairs(lambdas) do
         local row = at[i] * (1 - lam) + bt[i] * lam
         x[(i - 1) * L + j] = row
      end
   end
   -- the same reverse noise for all lambdas of a pair
   local base = noise_stream(seed, S_Z)
   local function noise(sizes)
      local z = base({B, C, H, W})
      local full = core.zeros(sizes)
      for i = 1, B do
         for j = 1, L do full[(i - 1) * L + j] = z[i] end
      end
      z:free()
      return full
   end
   local bar = opt.progress ~= false and progress.new{total = k0 + 1, label = opt.label or 'interpolate'}
   with_model(model, 'interpolate', bar, function(m)
      d:_chain(x, k0, 0, {m = m, sampler = sampler, eta = eta, clip = opt.clip, bar = bar, noise = noise})
   end, d)
   if opt.path then
      local items = {}
      for i = 1, B do
         items[#items + 1] = {a, i}
         for j = 1, L do items[#items + 1] = {x, (i - 1) * L + j} end
         items[#items + 1] = {b, i}
      end
      local g = gather(items, C, H, W)
      save(opt.path, g, L + 2)
      g:free()
   end
   return x, lambdas
end

--- Coarse-to-fine completion sharing x_t (paper Fig. 7, docs/math.md §4.5): one
--- reverse chain per root from x_T; at each split step t the current state
--- (the input of step t) is copied into `branches` chains that continue to
--- x_0 with independent noise. opt: n (roots, 1), shape, seed, split (original
--- code indices, default {T-1, 3T/4-1, T/2-1, T/4-1}: the paper's
--- 1000/750/500/250), branches (4), steps (respaced: a split starts at the
--- largest kept index <= t), sampler, eta, clip, progress, path (a PNG: one
--- row per (root, split), the branches across). Returns [n*S*branches, C,H,W]
--- ordered root, split, branch, and the split steps used (original t).
function Diffusion:shared_latent(model, opt)
   opt = opt or {}
   check_opts(opt, 'shared_latent')
   local d = self:respace(opt.steps)
   local sampler, eta = check_sampler(opt, 'shared_latent')
   check_shape(opt.shape, 'shared_latent')
   local T0 = self.base_T
   local split = opt.split or {T0 - 1, math.floor(3 * T0 / 4) - 1, math.floor(T0 / 2) - 1,
                               math.floor(T0 / 4) - 1}
   local nb, n = opt.branches or 4, opt.n or 1
   local C, H, W = opt.shape[1], opt.shape[2], opt.shape[3]
   local seed = opt.seed or 0
   local ks, used = {}, {}
   for i, t in ipairs(split) do
      ks[i] = d:index_at(t)
      used[i] = d.tmap[ks[i] + 1]
   end
   local kmin = math.huge
   for _, k in ipairs(ks) do kmin = math.min(kmin, k) end
   local total = d.T - 1 - kmin
   for _, k in ipairs(ks) do total = total + k + 1 end
   local bar = opt.progress ~= false and progress.new{total = total, label = opt.label or 'shared_latent'}
   local out = core.zeros({n * #ks * nb, C, H, W})
   with_model(model, 'shared_latent', bar, function(m)
      local x = core.randn({n, C, H, W}, core.mix_seed(seed, S_XT), 0)
      local states = {}
      local st = {m = m, sampler = sampler, eta = eta, clip = opt.clip, bar = bar,
                  noise = noise_stream(seed, S_Z)}
      local function keep(k)
         for i, ki in ipairs(ks) do
            if ki == k and not states[i] then states[i] = x:clone() end
         end
      end
      for k = d.T - 1, kmin, -1 do
         keep(k)
         if k > kmin then d:_chain(x, k, k, st) end
      end
      for i, ki in ipairs(ks) do
         local xb = core.zeros({n * nb, C, H, W})
         for r = 1, n do
            for j = 1, nb do xb[(r - 1) * nb + j] = states[i][r] end
         end
         d:_chain(xb, ki, 0, {m = m, sampler = sampler, eta = eta, clip = opt.clip, bar = bar,
                              done = st.done, noise = noise_stream(seed, S_BRANCH + i)})
         st.done = (st.done or 0) + ki + 1
         for r = 1, n do
            for j = 1, nb do out[((r - 1) * #ks + (i - 1)) * nb + j] = xb[(r - 1) * nb + j] end
         end
         xb:free()
      end
   end, d)
   save(opt.path, out, nb)
   return out, used
end
Diffusion.coarse_to_fine = Diffusion.shared_latent

---------------------------------------------------------------- likelihood

--- diff:nll(model, data, opt): the variational bound in bits/dim over all T
--- terms plus the prior (calc_bpd_loop, docs/math.md §3.3). See lib/ddpm/nll.lua.
function Diffusion:nll(model, data, opt)
   return require('ddpm.nll').nll(self, model, data, opt, model_view)
end

function Diffusion:__tostring()
   local sp = self.spacing and (' respaced ' .. self.spacing .. ' of ' .. self.base_T) or ''
   return ('[ddpm.Diffusion %s T=%d%s mean=%s var=%s loss=%s]'):format(self.schedule_name, self.T, sp,
      self.mean_type, self.var_type, self.loss_type)
end

return {new = new, Diffusion = Diffusion}
