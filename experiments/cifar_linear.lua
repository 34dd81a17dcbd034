--[[
The paper's CIFAR-10 run (Ho et al. 2020, section 4 and appendix B; docs/math.md §7):
the 35.7M-parameter U-Net (ch 128, ch_mult 1,2,2,2, two ResNet blocks per
level, attention at 16x16, dropout 0.1), T = 1000 with linear betas
1e-4..0.02, eps prediction with L_simple, sigma_t^2 = beta_t, Adam lr 2e-4
with a 5000-step linear warm-up, gradient clipping at norm 1, EMA 0.9999,
batch 128, random horizontal flips, 800k steps.

After training, the EMA weights are evaluated as the paper does (Table 1):
- NLL: the variational bound in bits/dim over all T terms plus the prior
  (calc_bpd_loop) on --nll_n images of the test split and --nll_train_n of
  the train split (paper, L_simple: <= 3.75 test, 3.72 train; 0 skips); metrics
  nll_bpd / nll_train_bpd, and the per-t terms nll_t for plotting.
- Samples: --eval_samples images by ancestral sampling (--eval_steps = K
  respaces to K steps, 0 = all T), written one PNG each to
  <run dir>/eval-samples/ for an external FID/IS tool (the paper: 50000
  samples, FID 3.17, IS 9.46), plus a 64-image grid; both are artifacts.
- FID and IS (--fid_n samples, e.g. 50000, against --fid_ref statistics,
  e.g. of the training set): the FID Inception-v3 of the runtime on the same
  EMA samples (as 8-bit images), metrics fid, is, is_std, fid_n. The weights
  are the user's (--fid_weights or DDPMLUA_INCEPTION; docs/fid.md); they and
  the reference are checked before training starts.
--eval_from=path skips training and evaluates a checkpoint (its EMA) or a
model file (e.g. diffusers' google/ddpm-cifar10-32
diffusion_pytorch_model.safetensors, which loads unchanged). A checkpoint
or model file written by ddpmlua carries its model and diffusion settings:
--eval_from and --resume take them from the file, and a flag that
contradicts it is an error (--override=var_type,... lets diffusion flags
win, and the run records it).

Needs the CIFAR-10 binary batches (cifar-10-binary.tar.gz unpacked to
cifar-10-batches-bin/): --data_dir=... or DDPMLUA_CIFAR10=....

   ddpmlua experiments/cifar_linear.lua --data_dir=/data/cifar-10-batches-bin
   ddpmlua experiments/cifar_linear.lua --resume=runs/<uuid>/ckpt-00010000.safetensors
   ddpmlua experiments/cifar_linear.lua --eval_from=runs/<uuid>/ckpt-00800000.safetensors
]]
local ddpm = require 'ddpm'

local cfg, given = ddpm.cli.parse(arg, {
   name = 'cifar_linear',
   data_dir = os.getenv('DDPMLUA_CIFAR10') or '',
   -- model (unet2d16b2)
   ch = 128, ch_mult = {1, 2, 2, 2}, num_res_blocks = 2, attn_resolutions = {16}, dropout = 0.1,
   -- diffusion
   schedule = 'linear', T = 1000, beta_start = 1e-4, beta_end = 0.02,
   mean_type = 'eps', var_type = 'fixedlarge', loss_type = 'mse',
   -- optimisation
   steps = 800000, batch = 128, lr = 2e-4, warmup = 5000, grad_clip = 1.0, ema_decay = 0.9999,
   flip = true, seed = 1,
   -- bookkeeping
   sample_every = 10000, sample_n = 64, checkpoint_every = 5000, db = 'runs.db', resume = '',
   -- evaluation (EMA weights)
   nll_n = 10000, nll_train_n = 0, nll_batch = 100, eval_samples = 50000, eval_batch = 250,
   eval_steps = 0, eval_from = '', override = '',
   fid_n = 0, fid_ref = '', fid_weights = '',
   -- arithmetic: 'bf16' multiplies the 3x3 convolutions in bfloat16 (AVX512-BF16),
   -- in training (forward and input gradient) and in evaluation
   precision = 'float32',
})

-- FID / IS: the weights and the reference are checked now, not after training
local fid_acc, fid_ref
if cfg.fid_n > 0 then
   if cfg.fid_ref == '' then error('--fid_n needs --fid_ref=stats.npz (reference statistics, docs/fid.md)', 0) end
   fid_ref = ddpm.fid.load_ref(cfg.fid_ref)
   fid_acc = ddpm.fid.accumulator{weights = cfg.fid_weights ~= '' and cfg.fid_weights or nil}
   local warn = ddpm.fid.sample_warning(cfg.fid_n)
   if warn then io.stderr:write('warning: ', warn, '\n') end
end

-- a checkpoint or model file knows its model and process: take them from it
local from = cfg.eval_from ~= '' and cfg.eval_from or cfg.resume ~= '' and cfg.resume or nil
local overridden = {}
if from then
   local file
   file, overridden = ddpm.checkpoint.configure(cfg, from, given, cfg.override)
   local s = file.data_shape
   if s and (s[1] ~= 3 or s[2] ~= 32 or s[3] ~= 32) then
      ddpm.cli.usage_error('%s was trained on %sx%sx%s images; this script trains and evaluates 3x32x32 (CIFAR-10)',
                           from, s[1], s[2], s[3])
   end
end

local data = ddpm.data.cifar10{dir = cfg.data_dir ~= '' and cfg.data_dir or nil, split = 'train'}
local diffusion = ddpm.diffusion{schedule = cfg.schedule, T = cfg.T, beta_start = cfg.beta_start,
                                 beta_end = cfg.beta_end, mean_type = cfg.mean_type,
                                 var_type = cfg.var_type, loss_type = cfg.loss_type}
local model = ddpm.unet{ch = cfg.ch, ch_mult = cfg.ch_mult, num_res_blocks = cfg.num_res_blocks,
                        attn_resolutions = cfg.attn_resolutions, dropout = cfg.dropout,
                        in_ch = 3, out_ch = diffusion:out_channels(3), resolution = 32, seed = cfg.seed}
model:set_precision(cfg.precision)
local run = ddpm.log.start{db = cfg.db, name = cfg.name, config = cfg, seed = cfg.seed}
print(('run %d (%s): %s'):format(run.id, run.dir, tostring(model)))
if #overridden > 0 then
   run:tag('override', table.concat(overridden, ','))
   print(('the flags for %s override %s'):format(table.concat(overridden, ', '), from))
end

local ema, step
if cfg.eval_from ~= '' then
   -- a checkpoint holds the EMA under 'ema.'; a model file is the weights themselves
   local tensors = ddpm.load_safetensors(cfg.eval_from)
   local prefix = tensors['ema.conv_in.weight'] and 'ema.' or ''
   for _, t in pairs(tensors) do t:free() end
   model:load(cfg.eval_from, {prefix = prefix, strict = prefix == ''})
   ema, step = model, 0
   run:tag('eval_from', cfg.eval_from)
   print(('evaluating %s (%s)'):format(cfg.eval_from, prefix == '' and 'weights' or 'EMA weights'))
else
   local result = ddpm.train{
      model = model, diffusion = diffusion, data = data, steps = cfg.steps, batch = cfg.batch,
      lr = cfg.lr, warmup = cfg.warmup, grad_clip = cfg.grad_clip, ema_decay = cfg.ema_decay,
      seed = cfg.seed, flip = cfg.flip, run = run, sample_every = cfg.sample_every,
      sample_n = cfg.sample_n, checkpoint_every = cfg.checkpoint_every,
      resume = cfg.resume ~= '' and cfg.resume or nil, finish = false,
   }
   local said = {('%s at step %d'):format(result.status, result.step or 0)}
   if result.samples then said[#said + 1] = 'samples ' .. result.samples end
   if result.checkpoint then said[#said + 1] = 'checkpoint ' .. result.checkpoint end
   print(table.concat(said, '; '))
   if result.status ~= 'finished' then return end   -- interrupted: the run is marked already
   ema, step = result.ema, result.step
end

ema:set_precision(cfg.precision)

-- NLL in bits/dim (Table 1's NLL column: test, and train in parentheses)
for _, split in ipairs{{'test', cfg.nll_n, 'nll'}, {'train', cfg.nll_train_n, 'nll_train'}} do
   local name, n, prefix = split[1], split[2], split[3]
   if n > 0 then
      local d = split[1] == 'train' and data or ddpm.data.cifar10{dir = cfg.data_dir ~= '' and cfg.data_dir or nil,
                                                              split = 'test'}
      local r = diffusion:nll(ema, d, {n = math.min(n, d:size()), batch = cfg.nll_batch, seed = cfg.seed,
                                       run = run, step = step, prefix = prefix, label = 'nll ' .. name})
      print(('NLL (%s, %d images): %.4f bits/dim (+- %.4f), prior %.2e'):format(name, r.n, r.bpd,
            r.bpd_se or 0, r.prior))
   end
end

-- samples for FID / IS, one PNG each (eval_samples) and into the FID statistics (fid_n), and a grid
local n_samples = math.max(cfg.eval_samples, cfg.fid_n)
if n_samples > 0 then
   local dir = run.dir .. '/eval-samples'
   if cfg.eval_samples > 0 then os.execute(("mkdir -p '%s'"):format(dir)) end
   local done = 0
   while done < n_samples do
      local b = math.min(cfg.eval_batch, n_samples - done)
      local x = diffusion:sample(ema, {n = b, shape = {3, 32, 32}, seed = ddpm.core.mix_seed(cfg.seed, 1000 + done),
                                       steps = cfg.eval_steps > 0 and cfg.eval_steps or nil,
                                       label = ('samples %d-%d/%d'):format(done + 1, done + b, n_samples)})
      for i = 1, math.min(b, cfg.eval_samples - done) do
         ddpm.save_grid(('%s/%06d.png'):format(dir, done + i - 1), x:narrow(1, i, 1), 1, 0)
      end
      if fid_acc and done < cfg.fid_n then fid_acc:add(x:narrow(1, 1, math.min(b, cfg.fid_n - done))) end
      if done == 0 then
         local grid = run.dir .. '/eval-grid.png'
         ddpm.save_grid(grid, x:narrow(1, 1, math.min(64, b)))
         run:artifact(step, 'sample_grid', grid, {n = math.min(64, b), ema = true, sampler = 'ancestral',
                                                  steps = cfg.eval_steps > 0 and cfg.eval_steps or cfg.T})
      end
      x:free()
      done = done + b
   end
   if cfg.eval_samples > 0 then
      run:artifact(step, 'sample_dir', dir, {n = cfg.eval_samples, ema = true, sampler = 'ancestral',
                                             steps = cfg.eval_steps > 0 and cfg.eval_steps or cfg.T,
                                             format = 'png, one image per file'})
      print(('%d samples in %s'):format(cfg.eval_samples, dir))
   end
end
if fid_acc then
   local r = fid_acc:result{ref = fid_ref, warn = false}
   run:metrics(step, {fid = r.fid, is = r.is, is_std = r.is_std, fid_n = r.n})
   print(('FID %.4f, IS %.4f +- %.4f (%d EMA samples against %s)'):format(r.fid, r.is or 0/0,
         r.is_std or 0/0, r.n, cfg.fid_ref))
   fid_acc:free()
   fid_ref:free()
end
run:finish('finished')
