--[[
ddpm.ablation — run several variants of one experiment with the same seed and
budget, evaluate each the same way, and record everything in runs.db.

   ddpm.ablation.run(base_cfg, {
      {name = 'eps-Lsimple', mean_type = 'eps', var_type = 'fixedlarge', loss_type = 'mse'},
      {name = 'eps-L-learned', mean_type = 'eps', var_type = 'learned', loss_type = 'kl'},
   })

Each variant is one run (its config = base merged with the variant): train
for cfg.steps on Fashion-MNIST (28x28), then with the EMA weights
- the NLL bound in bits/dim over all T terms plus the prior on cfg.nll_n test
  images (metrics nll_bpd, nll_prior, and nll_t per timestep), and
- FD-LeNet of cfg.fd_n samples (cfg.fd_sampler, cfg.fd_steps) against the
  test set (metric fd_lenet, with the sampler recorded; never called FID).
A variant that diverges is recorded as failed and the others go on (the
paper's "unstable" rows).

Variants whose training is identical share one training: with a fixed
variance, L_simple (loss 'mse') never reads sigma_t^2, so 'eps | mse |
fixedlarge' and 'eps | mse | fixedsmall' differ only at evaluation. The second
such variant reuses the first one's EMA weights (its run gets the tag
weights_from_run = <id> and no loss curve of its own). Ctrl-C during training
ends the variant as 'interrupted' and stops the ablation.
]]
local ddpm = require 'ddpm'
local core = ddpm.core

local ablation = {}

local function merge(a, b)
   local c = {}
   for k, v in pairs(a) do c[k] = v end
   for k, v in pairs(b) do c[k] = v end
   return c
end

-- Keys that only change evaluation, never the trained weights.
local eval_only = {name = true, experiment = true, db = true, nll_n = true, nll_batch = true,
                   fd_n = true, fd_sampler = true, fd_steps = true, sample_n = true}

--- The part of a config that determines the trained weights, as canonical JSON.
function ablation.training_key(cfg)
   local k = {}
   for key, v in pairs(cfg) do
      if not eval_only[key] then k[key] = v end
   end
   local mse = cfg.loss_type == 'mse' or cfg.loss_type == 'rescaled_mse'
   if mse and tostring(cfg.var_type):sub(1, 5) == 'fixed' then k.var_type = nil end
   return ddpm.json.encode(k)
end

--- The EMA decay of step s: cfg.ema_decay, or with cfg.ema_warmup the usual
--- warm-up min(ema_decay, (1 + s) / (10 + s)). A short run needs it: with a
--- constant 0.999 the EMA after 1200 steps still holds 0.999^1200 = 30% of
--- the initial weights.
function ablation.ema_schedule(cfg)
   if not cfg.ema_warmup then return cfg.ema_decay end
   local d = cfg.ema_decay
   return function(s) return math.min(d, (1 + s) / (10 + s)) end
end

function ablation.run_variant(cfg, data, test, trained)
   local diff = ddpm.diffusion{schedule = cfg.schedule, T = cfg.T, beta_start = cfg.beta_start,
                               beta_end = cfg.beta_end, mean_type = cfg.mean_type,
                               var_type = cfg.var_type, loss_type = cfg.loss_type}
   local model = ddpm.unet{ch = cfg.ch, ch_mult = cfg.ch_mult, num_res_blocks = cfg.num_res_blocks,
                           attn_resolutions = cfg.attn_resolutions, dropout = cfg.dropout,
                           in_ch = 1, out_ch = diff:out_channels(1), resolution = 28, seed = cfg.seed}
   local run = ddpm.log.start{db = cfg.db, name = cfg.name, experiment = cfg.experiment,
                              config = cfg, seed = cfg.seed}
   io.stderr:write(('== %s (run %d): mean %s, var %s, loss %s\n'):format(cfg.name, run.id,
                   cfg.mean_type, cfg.var_type, cfg.loss_type))
   local key = ablation.training_key(cfg)
   local ema, step
   local prior = trained and trained[key]
   if prior then
      ema, step = prior.ema, prior.step
      run:tag('weights_from_run', tostring(prior.run_id))
      io.stderr:write(('   same training as run %d (sigma does not enter the loss): its EMA weights\n')
                      :format(prior.run_id))
   else
      local ok, result = pcall(ddpm.train, {
         model = model, diffusion = diff, data = data, steps = cfg.steps, batch = cfg.batch,
         lr = cfg.lr, warmup = cfg.warmup, grad_clip = cfg.grad_clip, ema_decay = ablation.ema_schedule(cfg),
         seed = cfg.seed, run = run, sample_n = cfg.sample_n, checkpoint_every = 0, finish = false,
         time_limit = cfg.time_limit > 0 and cfg.time_limit or nil,
      })
      if not ok then
         io.stderr:write(('   %s failed: %s\n'):format(cfg.name, tostring(result):match('^[^\n]*')))
         return {run = run, status = 'failed'}
      end
      if result.status == 'interrupted' then return {run = run, status = 'interrupted'} end
      ema, step = result.ema, result.step
      if trained then trained[key] = {ema = ema, step = step, run_id = run.id} end
   end
   local ok2, err = pcall(function()
      if cfg.nll_n > 0 then
         local r = diff:nll(ema, test, {n = cfg.nll_n, batch = cfg.nll_batch, seed = cfg.seed,
                                        run = run, step = step})
         io.stderr:write(('   NLL %.4f bits/dim (+- %.4f), prior %.2e\n'):format(r.bpd, r.bpd_se or 0, r.prior))
      end
      if cfg.fd_n > 0 then
         local x = diff:sample(ema, {n = cfg.fd_n, shape = {1, 28, 28}, seed = cfg.seed + 1,
                                     steps = cfg.fd_steps, sampler = cfg.fd_sampler})
         local fd = ddpm.metrics.fd_lenet(x)
         ddpm.metrics.log_fd_lenet(run, step, fd, {sampler = cfg.fd_sampler, steps = cfg.fd_steps,
                                                   ema = true, n = cfg.fd_n})
         local path = ('%s/fd-samples-%08d.png'):format(run.dir, step)
         ddpm.save_grid(path, x:narrow(1, 1, math.min(64, cfg.fd_n)))
         run:artifact(step, 'sample_grid', path, {n = math.min(64, cfg.fd_n), sampler = cfg.fd_sampler,
                                                  steps = cfg.fd_steps, ema = true})
         io.stderr:write(('   FD-LeNet %.3f (%d samples, %s %s steps)\n'):format(fd, cfg.fd_n,
                         cfg.fd_sampler, tostring(cfg.fd_steps)))
         x:free()
      end
   end)
   if not ok2 then
      local msg = tostring(err)
      if msg:match('interrupted%s*$') or msg:match('interrupted\n') then   -- Ctrl-C
         run:finish('interrupted', msg)
         return {run = run, status = 'interrupted'}
      end
      run:finish('failed', msg)
      io.stderr:write(('   %s evaluation failed: %s\n'):format(cfg.name, tostring(err):match('^[^\n]*')))
      return {run = run, status = 'failed'}
   end
   run:finish('finished')
   return {run = run, status = 'finished'}
end

--- ablation.run(base, variants): runs every variant; returns their run ids.
function ablation.run(base, variants)
   local data = ddpm.data.fashion_mnist{split = 'train'}
   local test = ddpm.data.fashion_mnist{split = 'test'}
   local ids, trained = {}, {}
   for _, v in ipairs(variants) do
      local r = ablation.run_variant(merge(base, v), data, test, trained)
      ids[#ids + 1] = r.run.id
      if r.status == 'interrupted' then
         io.stderr:write('ablation interrupted; the remaining variants were not run\n')
         break
      end
   end
   return ids
end

--- The defaults every ablation starts from (override with --key=value).
ablation.defaults = {
   experiment = 'ablation', db = 'runs.db', seed = 1,
   ch = 32, ch_mult = {1, 2, 2}, num_res_blocks = 1, attn_resolutions = {7}, dropout = 0.0,
   schedule = 'linear', T = 1000, beta_start = 1e-4, beta_end = 0.02,
   steps = 1200, batch = 64, lr = 1e-3, warmup = 200, grad_clip = 1.0, ema_decay = 0.999, ema_warmup = true,
   time_limit = 0, sample_n = 0,
   nll_n = 64, nll_batch = 64, fd_n = 500, fd_sampler = 'ancestral', fd_steps = 100,
}

return ablation
