--[[
ddpm.train — the paper's training loop (Algorithm 1 with the official
optimiser set-up, docs/math.md §4.1 and §7) with run history, checkpoints, samples,
progress and a clean Ctrl-C.

   local result = ddpm.train{
      model = m, diffusion = diff, data = ddpm.data.fashion_mnist{},
      steps = 2000, batch = 64, lr = 2e-4, warmup = 5000, grad_clip = 1,
      ema_decay = 0.9999, seed = 1, pad_to = 0, flip = false, time_limit = nil,
      run = ddpm.log.start{...},            -- or db = 'runs.db', name = ..., config = ...
      sample_every = 1000, sample_n = 64, checkpoint_every = 1000,
      schedule_sampler = 'uniform',         -- or 'loss-second-moment'
   }

loss = function(out, eps, ctx) return loss, grad_out end replaces L_simple
(or the diffusion's loss_type) with an objective of your own (diff:loss has
the details); everything else (clipping, Adam, EMA, checkpoints, Ctrl-C, the
run history) stays as it is.

schedule_sampler = 'loss-second-moment' draws t by importance from the loss
history (Improved DDPM sec. 3.3; diff:tsampler, options through
schedule_sampler_opts = {history = 10, uniform_prob = 0.001}); its history is
part of the checkpoint, so resuming stays exact. A core.tsampler object may
be given instead of the name.

Every random choice of step s (data order, flips, timesteps, noise, dropout)
is a pure function of (seed, s) and of the example's place in the batch, so
a run resumed from a checkpoint (resume = path) continues bit for bit as if
it had never stopped.

Under mpirun (ddpm.dist) the run is data-parallel: each of the N ranks
takes batch/N of each step's examples (the same examples, timesteps, noise
and dropout masks they get in one process), the gradients are summed over
the ranks and scaled by 1/N, and every rank applies the same clipping, Adam
and EMA. Rank 0 alone writes the history, checkpoints, samples and
progress. The ranks compare a digest of their parameters every
check_every steps (100) and at each checkpoint. A run may resume with
another N. docs/distributed.md has the details.

A step whose loss or gradient norm is NaN or infinite is caught before Adam
sees it. With nan = 'stop' (the default) the run stops there with an error
naming the step and the batch's t, and ends 'failed' with that reason; its
checkpoints stay as they were (parameters that are not finite are never
checkpointed). With nan = 'skip' the step makes no Adam or EMA update, the
metric nonfinite_skips counts such steps, and max_nonfinite (10) of them in a
row stop the run.

time_limit (seconds) ends training early, as a finished run, at the first
step past it. Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint, marks the
run 'interrupted' and returns with status 'interrupted'. A Lua error marks the
run 'failed' with its traceback and is raised again.
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'
local progress = require 'ddpm.progress'
local checkpoint = require 'ddpm.checkpoint'
local log = require 'ddpm.log'
local dist = require 'ddpm.dist'

local host = package.preload['ddpm.host'] and require('ddpm.host') or nil

-- Stream ids under the run seed.
local S_T, S_EPS, S_DROPOUT, S_FLIP, S_SAMPLE = 1, 2, 3, 4, 5

local known = {model = 1, diffusion = 1, data = 1, steps = 1, batch = 1, lr = 1, warmup = 1,
   grad_clip = 1, ema_decay = 1, seed = 1, pad_to = 1, flip = 1, run = 1, db = 1, name = 1,
   experiment = 1, config = 1, sample_every = 1, sample_n = 1, sample_at_end = 1,
   checkpoint_every = 1, keep_checkpoints = 1, resume = 1, log_every = 1, progress = 1,
   on_step = 1, max_nonfinite = 1, nan = 1, adam = 1, finish = 1, time_limit = 1, schedule_sampler = 1,
   schedule_sampler_opts = 1, check_every = 1, loss = 1}

local function check(opt)
   for k in pairs(opt) do
      if not known[k] then error(("train: unknown option '%s'"):format(tostring(k)), 3) end
   end
   if type(opt.model) ~= 'table' or not opt.model._c then error('train: model = ddpm.unet{...} is required', 3) end
   if type(opt.diffusion) ~= 'table' or not opt.diffusion.sched then
      error('train: diffusion = ddpm.diffusion{...} is required', 3)
   end
   if opt.data == nil then error('train: data (a ddpm.Dataset) is required', 3) end
   if opt.loss ~= nil and type(opt.loss) ~= 'function' then
      error('train: loss must be a function (out, eps, ctx) -> loss, grad_out [, losses], got ' ..
            type(opt.loss), 3)
   end
   if opt.loss and opt.schedule_sampler and opt.schedule_sampler ~= 'uniform' then
      error('train: a custom loss cannot be combined with an importance timestep sampler', 3)
   end
   if opt.nan ~= nil and opt.nan ~= 'stop' and opt.nan ~= 'skip' then
      error(("train: nan must be 'stop' or 'skip', got %s"):format(tostring(opt.nan)), 3)
   end
   local ss = opt.schedule_sampler
   if ss ~= nil and ss ~= 'uniform' and ss ~= 'loss-second-moment' and type(ss) ~= 'userdata' then
      error(("train: schedule_sampler must be 'uniform' or 'loss-second-moment' (or a core.tsampler), " ..
             "got %s"):format(tostring(ss)), 3)
   end
   for _, k in ipairs{'steps', 'batch'} do
      local v = opt[k]
      if type(v) ~= 'number' or v < 1 or v % 1 ~= 0 then
         error(('train: %s must be a positive integer, got %s'):format(k, tostring(v)), 3)
      end
   end
   local n = core.dist_size()
   if opt.batch % n ~= 0 then
      error(('train: the batch of %d does not divide over the %d ranks of this MPI job; use a ' ..
             'multiple of %d (or another -np)'):format(opt.batch, n, n), 3)
   end
end

-- The training settings every rank must share (compared across ranks).
local function settings_digest(opt, model)
   local t = {}
   for _, k in ipairs{'steps', 'batch', 'lr', 'warmup', 'grad_clip', 'seed', 'pad_to', 'flip',
                      'sample_every', 'sample_n', 'checkpoint_every', 'log_every', 'max_nonfinite',
                      'resume', 'check_every', 'time_limit'} do
      t[#t + 1] = k .. '=' .. tostring(opt[k])
   end
   t[#t + 1] = 'ema=' .. (type(opt.ema_decay) == 'function' and 'function' or tostring(opt.ema_decay))
   t[#t + 1] = 'model=' .. json.encode(model:config())
   t[#t + 1] = 'data=' .. tostring(opt.data:size()) .. 'x' .. table.concat(opt.data:shape(), 'x')
   return table.concat(t, ';')
end

-- The ranks stop with an error when their parameters (or EMA) differ.
local function check_in_step(step, params, ema_params)
   local same, who = dist.same(core.hash64(params) .. core.hash64(ema_params))
   if not same then
      error(('train: at step %d the parameters of rank %d differ from rank 0\'s (the ranks ' ..
             'have drifted apart: different builds, thread counts with other arithmetic, or ' ..
             'a fault); stopping'):format(step, who), 0)
   end
end

local function ema_decay_at(d, step)
   if type(d) == 'function' then return d(step) end
   return d
end

--- The indices (1-based) of the examples of step s: the global stream of
--- examples k = (s-1)*B .. s*B-1 walks epoch permutations of (seed, epoch).
local function batch_indices(data, N, B, seed, step, cache)
   local idx = {}
   for i = 0, B - 1 do
      local k = (step - 1) * B + i
      local epoch = math.floor(k / N)
      if cache.epoch ~= epoch then
         cache.perm = data:permutation(seed, epoch, cache.perm)
         cache.epoch = epoch
      end
      idx[i + 1] = cache.perm[k % N + 1]
   end
   return idx
end

-- Elements first+1 .. first+n of a table.
local function share(list, first, n)
   local out = {}
   for i = 1, n do out[i] = list[first + i] end
   return out
end

local function ckpt_path(dir, step) return ('%s/ckpt-%08d.safetensors'):format(dir, step) end

-- Ctrl-C while a sample grid is drawn (minutes at T = 1000) stops the
-- sampling; the run ends 'interrupted' with a checkpoint of its last step.
local STOP = {}
local function stop_check()
   if host and host.stop_requested() then error(STOP, 0) end
end

---------------------------------------------------------------- setup

-- Loads the checkpoint at path into the model, EMA, Adam and sampler of s
-- -> the step it was written at. Errors name the caller of train (level 4).
local function resume(s, path)
   local meta = checkpoint.load(path, s.state)
   if meta.seed ~= s.seed then
      error(('train: checkpoint %s was trained with seed %d, this run has seed %d'):format(
         path, meta.seed, s.seed), 4)
   end
   s.run:tag('resumed_from', path)
   if s.R == 0 then io.stderr:write(('resumed from %s at step %d\n'):format(path, meta.step)) end
   return meta.step
end

-- The state of one call of train: options resolved, this rank's share, the
-- run, the EMA copy, Adam, buffers and seeds, resumed from a checkpoint when
-- asked. Errors name the caller of train (level 3).
local function setup(opt)
   local s = {opt = opt, model = opt.model, diff = opt.diffusion, data = opt.data,
              steps = opt.steps, B = opt.batch, seed = opt.seed or 0,
              lr = opt.lr or 2e-4, warmup = opt.warmup or 0,
              clip = opt.grad_clip == nil and 1 or opt.grad_clip,
              ema_decay = opt.ema_decay == nil and 0.9999 or opt.ema_decay,
              log_every = opt.log_every or 1, check_every = opt.check_every or 100,
              nan_mode = opt.nan or 'stop', max_nonfinite = opt.max_nonfinite or 10}
   local model, seed = s.model, s.seed
   s.N = s.data:size()
   local shape = s.data:shape()
   s.P = opt.pad_to or 0
   local P = s.P
   s.C, s.H, s.W = shape[1], P > 0 and P or shape[2], P > 0 and P or shape[3]

   s.R, s.NR = core.dist_rank(), core.dist_size()
   s.b = math.floor(s.B / s.NR)   -- this rank's share of each batch
   s.first = s.R * s.b
   if s.NR > 1 then
      local same, who = dist.same(settings_digest(opt, model))
      if not same then
         error(('train: rank %d trains with other settings than rank 0 (every rank of mpirun ' ..
                'must run the same command)'):format(who), 3)
      end
   end
   local run = opt.run or log.start{db = opt.db, name = opt.name, experiment = opt.experiment,
                                     config = opt.config, seed = seed}
   s.run = run
   s.ema = require('ddpm').unet((function()
      local c = model:config(); c.seed = nil; return c end)())
   s.ema:flat_params():copy(model:flat_params())
   s.adam = opt.adam or core.adam(model:num_params(), {beta1 = 0.9, beta2 = 0.999, eps = 1e-8})
   local tsampler = opt.schedule_sampler
   if tsampler == 'loss-second-moment' then tsampler = s.diff:tsampler(opt.schedule_sampler_opts)
   elseif tsampler == 'uniform' then tsampler = nil end
   s.tsampler = tsampler
   s.state = {model = model, ema = s.ema, adam = s.adam, seed = seed, run_id = run.id,
              run_uuid = run.uuid, config = run.config, tsampler = tsampler,
              diffusion = s.diff, data_shape = {s.C, s.H, s.W}}

   s.start = opt.resume and resume(s, opt.resume) or 0
   s.params, s.grads = model:flat_params(), model:flat_grads()
   s.ema_params = s.ema:flat_params()
   if s.NR > 1 then   -- one starting point for every rank, whatever each built or loaded
      dist.broadcast(s.params, 0)
      dist.broadcast(s.ema_params, 0)
   end
   s.cache = {}
   s.xbuf = core.zeros{s.b, s.C, s.H, s.W}
   s.lbuf = s.NR > 1 and core.zeros{s.B} or nil
   s.bar = opt.progress ~= false and s.R == 0 and progress.new{total = s.steps, start = s.start,
                                                   label = 'train', time_limit = opt.time_limit}
   s.nonfinite, s.skipped, s.last_loss = 0, 0, nil
   s.ckpts = {}
   s.status = 'finished'
   s.sseed = {t = core.mix_seed(seed, S_T), eps = core.mix_seed(seed, S_EPS),
              drop = core.mix_seed(seed, S_DROPOUT), flip = core.mix_seed(seed, S_FLIP)}
   s.result = {run = run, ema = s.ema, adam = s.adam, model = model, tsampler = tsampler}
   return s
end

---------------------------------------------------------------- checkpoints and samples

local function save_ckpt(s, step)
   local path = ckpt_path(s.run.dir, step)
   if s.NR > 1 then check_in_step(step, s.params, s.ema_params) end
   local sp, se = s.params:sum(), s.ema_params:sum()   -- a float sum in double is finite iff all are
   if sp - sp ~= 0 or se - se ~= 0 then
      error(('train: the parameters%s are not finite at step %d; no checkpoint written; last ' ..
             'good checkpoint: %s'):format(sp - sp ~= 0 and '' or ' of the EMA', step,
             s.ckpts[#s.ckpts] or 'none'), 0)
   end
   s.state.step = step
   if s.R == 0 then
      -- every metric up to this step is committed before the file appears
      s.run:flush()
      checkpoint.save(path, s.state)
      s.run:checkpoint(step, path)
   end
   s.ckpts[#s.ckpts + 1] = path
   local keep = s.opt.keep_checkpoints or 2
   while #s.ckpts > keep do
      local old = table.remove(s.ckpts, 1)
      if s.R == 0 then os.remove(old) end
   end
   return path
end

local function save_samples(s, step)
   local opt = s.opt
   local x = s.diff:sample(s.ema, {n = opt.sample_n or 64, shape = {s.C, s.H, s.W},
                                   seed = core.mix_seed(s.seed, S_SAMPLE), label = 'sample',
                                   progress = opt.progress ~= false and s.R == 0,
                                   -- ranks cannot leave a sharded chain one by one
                                   on_step = s.NR == 1 and stop_check or nil})
   local path = ('%s/samples-%08d.png'):format(s.run.dir, step)
   if s.R == 0 then
      log.prepare(path)
      core.save_grid(path, x, 8, 2)
      s.run:artifact(step, 'sample_grid', path, {n = opt.sample_n or 64, ema = true,
                                                 sampler = 'ancestral', steps = s.diff.T})
   end
   x:free()
   return path
end

---------------------------------------------------------------- one step

-- The loss and gradients of step n on this rank's share of the batch,
-- summed over the ranks: {loss, losses [B], t, stop_all}.
local function forward_backward(s, n)
   local opt, B, b, first = s.opt, s.B, s.b, s.first
   local idx = batch_indices(s.data, s.N, B, s.seed, n, s.cache)
   local flips = opt.flip and core.randint(B, 2, s.sseed.flip, (n - 1) * B * 4) or nil
   if s.NR > 1 then idx, flips = share(idx, first, b), flips and share(flips, first, b) end
   local x0 = s.data:batch(idx, s.P, flips, s.xbuf)
   -- the previous step's optimiser pass left the gradients at 0 (zero_grads)
   if not s.grads_zeroed then s.model:zero_grad() end
   s.grads_zeroed = false
   s.model:set_dropout_seed(core.mix_seed(s.sseed.drop, n), first)
   local loss, losses, t, t_all = s.diff:loss(s.model, x0, {t_seed = s.sseed.t,
      t_counter = (n - 1) * 1048576, eps_seed = s.sseed.eps,
      eps_counter = (n - 1) * 4294967296, sampler = s.tsampler, first = first, total = B,
      loss = opt.loss})
   local stop_all
   if s.NR > 1 then
      -- one sum of the gradients over the ranks, then every rank's
      -- per-example losses, the mean loss and the stop requests
      dist.allreduce(s.grads, 'sum')
      s.grads:mul_(1 / s.NR)
      s.lbuf:fill(0)
      s.lbuf:narrow(1, first + 1, b):copy(losses)
      dist.allreduce(s.lbuf, 'sum')
      local v = dist.allreduce_numbers({loss, host and host.stop_requested() and 1 or 0}, 'sum')
      loss, stop_all = v[1] / s.NR, v[2] > 0
      losses:free()
      losses, t = s.lbuf:clone(), t_all
      if s.tsampler and loss == loss and loss ~= math.huge then s.tsampler:update(t, losses) end
   end
   return {loss = loss, losses = losses, t = t, stop_all = stop_all}
end

-- A step whose loss or gradient norm is NaN or infinite: an error (nan =
-- 'stop', or max_nonfinite in a row), else counted and skipped.
local function nonfinite_step(s, n, st)
   -- no Adam or EMA update from this batch: the parameters stay those
   -- of step n - 1, and the checkpoints on disk are left as they are
   local ts = {}
   for i = 1, #st.t do ts[i] = tostring(st.t[i]) end
   local what = ('train: the loss or gradient norm is not finite at step %d (loss %s, grad ' ..
                 'norm %s; t of the batch: %s)'):format(n, tostring(st.loss), tostring(st.gnorm),
                 table.concat(ts, ','))
   local last = s.ckpts[#s.ckpts] or 'none'
   if s.nan_mode == 'stop' then
      error(("%s; stopping (nan = 'skip' skips such steps); last good checkpoint: %s"):format(
         what, last), 0)
   end
   s.nonfinite, s.skipped = s.nonfinite + 1, s.skipped + 1
   s.run:metric(n, 'nonfinite_skips', s.skipped)
   if s.R == 0 then io.stderr:write(what .. '; step skipped\n') end
   if s.nonfinite >= s.max_nonfinite then
      error(('%s; %d steps in a row were not finite (max_nonfinite = %d), stopping; last good ' ..
             'checkpoint: %s'):format(what, s.nonfinite, s.max_nonfinite, last), 0)
   end
end

-- Step n of Algorithm 1: forward and backward, clipping, Adam, EMA.
-- -> {loss, losses, t, gnorm, lr, stop_all}
-- The clip's scale, Adam, the EMA and the next step's zero_grad are one
-- pass over the parameters (adam:step with options), with the bits of
-- core.clip_grad_norm, adam:step, core.ema_update and zero_grad in turn.
local function step(s, n)
   local st = forward_backward(s, n)
   st.gnorm = core.l2_norm(s.grads)
   st.lr = s.warmup > 0 and s.lr * math.min((n - 1) / s.warmup, 1) or s.lr
   if st.loss - st.loss ~= 0 or st.gnorm - st.gnorm ~= 0 then   -- NaN or ±inf
      nonfinite_step(s, n, st)
   else
      s.nonfinite = 0
      local clip = s.clip > 0 and st.gnorm > s.clip
      s.adam:step(s.params, s.grads, st.lr, {grad_scale = clip and s.clip / st.gnorm or 0,
         ema = s.ema_params, ema_decay = ema_decay_at(s.ema_decay, n), zero_grads = true})
      s.grads_zeroed = true
   end
   s.last_loss = st.loss
   return st
end

---------------------------------------------------------------- logging

-- Metrics of step n (every log_every steps and the last), the progress bar
-- and the caller's on_step.
local function log_step(s, n, st)
   local run, t, losses = s.run, st.t, st.losses
   if n % s.log_every == 0 or n == s.steps then
      run:metric(n, 'loss', st.loss)
      run:metric(n, 'grad_norm', st.gnorm)
      run:metric(n, 'lr', st.lr)
      -- per-quartile of t loss, as improved-diffusion logs it
      local q, qn = {0, 0, 0, 0}, {0, 0, 0, 0}
      for i = 1, s.B do
         local k = math.floor(4 * t[i] / s.diff.T) + 1
         q[k] = q[k] + losses[i]; qn[k] = qn[k] + 1
      end
      for k = 1, 4 do
         if qn[k] > 0 then run:metric(n, 'loss_q' .. (k - 1), q[k] / qn[k]) end
      end
   end
   losses:free()
   if s.bar then s.bar:update(n, {loss = st.loss, lr = st.lr}) end
   if s.opt.on_step then s.opt.on_step(n, {loss = st.loss, grad_norm = st.gnorm, lr = st.lr}) end
end

-- After step n: checkpoints and samples when due, the ranks' agreement,
-- the time limit and Ctrl-C. -> 'time_limit', 'interrupted' or nil.
local function after_step(s, n, st)
   local opt = s.opt
   if opt.checkpoint_every and opt.checkpoint_every > 0 and n % opt.checkpoint_every == 0 then
      save_ckpt(s, n)
   end
   if opt.sample_every and opt.sample_every > 0 and n % opt.sample_every == 0 then
      save_samples(s, n)
   end
   s.result.step = n
   if s.NR > 1 and s.check_every > 0 and n % s.check_every == 0 then
      check_in_step(n, s.params, s.ema_params)
   end
   local over = opt.time_limit and core.time() - s.t_begin >= opt.time_limit
   if s.NR > 1 and opt.time_limit then   -- rank 0's clock decides for all
      over = dist.allreduce_numbers({s.R == 0 and over and 1 or 0}, 'sum')[1] > 0
   end
   if over then return 'time_limit' end
   if (s.NR > 1 and st.stop_all) or (s.NR == 1 and host and host.stop_requested()) then
      return 'interrupted'
   end
end

---------------------------------------------------------------- the loop and its end

local function close_bar(s)
   if s.bar then s.bar:finish() end
   s.bar = nil
end

-- Steps start+1 .. steps, then the last checkpoint and sample grid; Ctrl-C
-- checkpoints the step it stopped after.
local function loop(s)
   local result = s.result
   for n = s.start + 1, s.steps do
      local st = step(s, n)
      log_step(s, n, st)
      local stop = after_step(s, n, st)
      if stop == 'time_limit' then
         result.time_limited = true
         break
      elseif stop == 'interrupted' then
         close_bar(s)
         local path = save_ckpt(s, n)
         if s.R == 0 then io.stderr:write(('interrupted at step %d; checkpoint %s\n'):format(n, path)) end
         result.checkpoint = path
         s.status = 'interrupted'
         return
      end
   end
   close_bar(s)
   local final = result.step or s.start
   if final > s.start or s.opt.checkpoint_every then result.checkpoint = save_ckpt(s, final) end
   if s.opt.sample_at_end ~= false and (s.opt.sample_n or 64) > 0 and s.status == 'finished' then
      result.samples = save_samples(s, final)
   end
end

-- The run's end: Ctrl-C during sampling becomes 'interrupted' with a
-- checkpoint, a failure marks the run 'failed' and is raised again, else the
-- run is finished (unless finish = false) and the result returned.
local function finish(s, ok, err)
   local result, run = s.result, s.run
   if not ok and err == STOP then
      ok, s.status = true, 'interrupted'
      local n = result.step or s.start
      if s.ckpts[#s.ckpts] ~= ckpt_path(run.dir, n) then
         local okc, cerr = pcall(save_ckpt, s, n)
         if not okc then ok, err = false, cerr end
      end
      if ok then
         io.stderr:write(('\ninterrupted while sampling at step %d; checkpoint %s\n'):format(n, s.ckpts[#s.ckpts]))
         result.checkpoint = s.ckpts[#s.ckpts]
      end
   end
   if host then host.graceful(false) end
   s.model:evaluate()
   s.xbuf:free()
   result.loss = s.last_loss
   if not ok then
      result.status = 'failed'
      -- a full or failing database must not hide why the run stopped
      local okf, ferr = pcall(run.finish, run, 'failed', tostring(err))
      if not okf then
         io.stderr:write(('train: run %s could not be marked failed in %s: %s\n'):format(
            tostring(run.id), tostring(run.db_path), tostring(ferr)))
      end
      error(err, 0)
   end
   result.status = s.status
   if s.opt.finish ~= false or s.status == 'interrupted' then run:finish(s.status) end
   return result
end

local function train(opt)
   check(opt)
   local s = setup(opt)
   if host then host.graceful(true) end
   s.t_begin = core.time()
   s.model:training()
   local ok, err = xpcall(function() loop(s) end,
                          function(e) return e == STOP and e or debug.traceback(e) end)
   return finish(s, ok, err)
end

return train
