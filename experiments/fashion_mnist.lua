--[[
Fashion-MNIST with the paper's diffusion (T = 1000, linear betas 1e-4..0.02,
eps prediction, L_simple, sigma_t^2 = beta_t), on a U-Net sized for a 2-core
CPU: 1.1M parameters at 28x28 (ch 32, ch_mult 1,2,2, one ResNet block per
level, attention at 7x7). A few hours give clean samples of every class.

   ddpmlua experiments/fashion_mnist.lua [--steps=20000] [--resume=runs/<uuid>/ckpt-....safetensors]
]]
local ddpm = require 'ddpm'

local cfg, given = ddpm.cli.parse(arg, {
   name = 'fashion_mnist',
   -- model
   ch = 32, ch_mult = {1, 2, 2}, num_res_blocks = 1, attn_resolutions = {7}, dropout = 0.0,
   -- diffusion (the paper's)
   schedule = 'linear', T = 1000, beta_start = 1e-4, beta_end = 0.02,
   mean_type = 'eps', var_type = 'fixedlarge', loss_type = 'mse',
   -- optimisation
   steps = 20000, batch = 64, lr = 1e-3, warmup = 200, grad_clip = 1.0, ema_decay = 0.999,
   seed = 1, pad_to = 0, flip = false,
   -- bookkeeping
   sample_every = 5000, sample_n = 64, checkpoint_every = 1000, db = 'runs.db', resume = '',
   precision = 'float32',   -- 'bf16': bfloat16 products where they pay (AVX512-BF16)
})
-- a checkpoint knows its model and process: --resume takes them from it, and
-- a flag that contradicts it is an error
if cfg.resume ~= '' then ddpm.checkpoint.configure(cfg, cfg.resume, given) end

local diffusion = ddpm.diffusion{schedule = cfg.schedule, T = cfg.T, beta_start = cfg.beta_start,
                                 beta_end = cfg.beta_end, mean_type = cfg.mean_type,
                                 var_type = cfg.var_type, loss_type = cfg.loss_type}
local model = ddpm.unet{ch = cfg.ch, ch_mult = cfg.ch_mult, num_res_blocks = cfg.num_res_blocks,
                        attn_resolutions = cfg.attn_resolutions, dropout = cfg.dropout,
                        in_ch = 1, out_ch = diffusion:out_channels(1), resolution = 28, seed = cfg.seed}
model:set_precision(cfg.precision)
local run = ddpm.log.start{db = cfg.db, name = cfg.name, config = cfg, seed = cfg.seed}
print(('run %d (%s): %s, %d parameters'):format(run.id, run.dir, tostring(model), model:num_params()))

local result = ddpm.train{
   model = model, diffusion = diffusion, data = ddpm.data.fashion_mnist{split = 'train'},
   steps = cfg.steps, batch = cfg.batch, lr = cfg.lr, warmup = cfg.warmup, grad_clip = cfg.grad_clip,
   ema_decay = cfg.ema_decay, seed = cfg.seed, pad_to = cfg.pad_to, flip = cfg.flip, run = run,
   sample_every = cfg.sample_every, sample_n = cfg.sample_n, checkpoint_every = cfg.checkpoint_every,
   resume = cfg.resume ~= '' and cfg.resume or nil,
}
-- what there is: no grid with sample_n = 0 or after Ctrl-C
local said = {('%s at step %d'):format(result.status, result.step or 0)}
if result.samples then said[#said + 1] = 'samples ' .. result.samples end
if result.checkpoint then said[#said + 1] = 'checkpoint ' .. result.checkpoint end
print(table.concat(said, '; '))
