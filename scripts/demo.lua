--[[
make demo: a short real DDPM training run on Fashion-MNIST, then samples.

Trains the small U-Net of experiments/fashion_mnist.lua with the paper's
diffusion (T = 1000, linear betas, eps prediction, L_simple) for a fixed time
budget (DDPMLUA_DEMO_MINUTES, default 7), samples a grid with the EMA weights
by ancestral sampling (Algorithm 2, sigma_t^2 = beta_t), and says where the
PNG and the run are, with the SQL that shows the loss curve.
]]
local ddpm = require 'ddpm'
local core = ddpm.core

local cfg = ddpm.cli.parse(arg, {
   name = 'demo_fashion_mnist',
   minutes = tonumber(os.getenv('DDPMLUA_DEMO_MINUTES') or '') or 7,
   ch = 32, ch_mult = {1, 2, 2}, num_res_blocks = 1, attn_resolutions = {7}, dropout = 0.0,
   T = 1000, batch = 32, lr = 1e-3, warmup = 100, grad_clip = 1.0, seed = 1,
   steps = 100000, sample_n = 32, db = 'runs.db',
}, {minutes = {'training time budget in minutes (DDPMLUA_DEMO_MINUTES)', min = 0}})

local t0 = core.time()
local model = ddpm.unet{ch = cfg.ch, ch_mult = cfg.ch_mult, num_res_blocks = cfg.num_res_blocks,
                        attn_resolutions = cfg.attn_resolutions, dropout = cfg.dropout,
                        in_ch = 1, out_ch = 1, resolution = 28, seed = cfg.seed}
local diffusion = ddpm.diffusion{schedule = 'linear', T = cfg.T}
local run = ddpm.log.start{db = cfg.db, name = cfg.name, config = cfg, seed = cfg.seed}
io.stderr:write(('demo: run %d, %s (%d parameters), training for %g minutes on %d threads\n'):format(
   run.id, tostring(model), model:num_params(), cfg.minutes, core.get_num_threads()))

local result = ddpm.train{
   model = model, diffusion = diffusion, data = ddpm.data.fashion_mnist{split = 'train'},
   steps = cfg.steps, batch = cfg.batch, lr = cfg.lr, warmup = cfg.warmup, grad_clip = cfg.grad_clip,
   -- a short run: the EMA warms up (decay (1+s)/(10+s), capped at 0.999)
   ema_decay = function(step) return math.min(0.999, (1 + step) / (10 + step)) end,
   seed = cfg.seed, run = run, time_limit = cfg.minutes * 60, sample_n = cfg.sample_n,
   checkpoint_every = 0,
}

local wall = core.time() - t0
run:metric(result.step or 0, 'demo_wall_seconds', wall)
run:flush()
print(('\n%s after %d training steps in %.1f minutes (total with sampling).'):format(
   result.status, result.step or 0, wall / 60))
print(('samples (EMA weights, %d ancestral steps): %s'):format(cfg.T, tostring(result.samples)))
print('checkpoint: ' .. tostring(result.checkpoint))
print(('run %d in %s; its loss curve:'):format(run.id, cfg.db))
print(('  sqlite3 -box %s "SELECT step, value AS loss FROM metrics_v WHERE run_id = %d AND key = \'loss\' AND step %% 100 = 0"')
      :format(cfg.db, run.id))
