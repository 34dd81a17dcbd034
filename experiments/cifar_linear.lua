--[[
The paper's CIFAR-10 run (Ho et al. 2020, section 4 and appendix B; spec §7):
the 35.7M-parameter U-Net (ch 128, ch_mult 1,2,2,2, two ResNet blocks per
level, attention at 16x16, dropout 0.1), T = 1000 with linear betas
1e-4..0.02, eps prediction with L_simple, sigma_t^2 = beta_t, Adam lr 2e-4
with a 5000-step linear warm-up, gradient clipping at norm 1, EMA 0.9999,
batch 128, random horizontal flips, 800k steps.

Needs the CIFAR-10 binary batches (cifar-10-binary.tar.gz unpacked to
cifar-10-batches-bin/): --data_dir=... or DDPMLUA_CIFAR10=....

   ddpmlua experiments/cifar_linear.lua --data_dir=/data/cifar-10-batches-bin
   ddpmlua experiments/cifar_linear.lua --resume=runs/<uuid>/ckpt-00010000.safetensors
]]
local ddpm = require 'ddpm'

local cfg = ddpm.cli.parse(arg, {
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
})

local data = ddpm.data.cifar10{dir = cfg.data_dir ~= '' and cfg.data_dir or nil, split = 'train'}
local model = ddpm.unet{ch = cfg.ch, ch_mult = cfg.ch_mult, num_res_blocks = cfg.num_res_blocks,
                        attn_resolutions = cfg.attn_resolutions, dropout = cfg.dropout,
                        in_ch = 3, out_ch = 3, resolution = 32, seed = cfg.seed}
local diffusion = ddpm.diffusion{schedule = cfg.schedule, T = cfg.T, beta_start = cfg.beta_start,
                                 beta_end = cfg.beta_end, mean_type = cfg.mean_type,
                                 var_type = cfg.var_type, loss_type = cfg.loss_type}
local run = ddpm.log.start{db = cfg.db, name = cfg.name, config = cfg, seed = cfg.seed}
print(('run %d (%s): %s'):format(run.id, run.dir, tostring(model)))

local result = ddpm.train{
   model = model, diffusion = diffusion, data = data, steps = cfg.steps, batch = cfg.batch,
   lr = cfg.lr, warmup = cfg.warmup, grad_clip = cfg.grad_clip, ema_decay = cfg.ema_decay,
   seed = cfg.seed, flip = cfg.flip, run = run, sample_every = cfg.sample_every,
   sample_n = cfg.sample_n, checkpoint_every = cfg.checkpoint_every,
   resume = cfg.resume ~= '' and cfg.resume or nil,
}
print(('%s at step %d; samples %s; checkpoint %s'):format(result.status, result.step or 0,
      tostring(result.samples), tostring(result.checkpoint)))
