--[[
Algorithm 1 written out as a plain loop, with a loss of your own: here the
L1 norm of (eps - eps_theta) instead of L_simple's squared error. The script
computes the loss and its gradient with respect to the model output in Lua
and hands the gradient to m:backward; the optimiser, clipping and EMA are the
same C calls ddpm.train makes. Every metric lands in runs.db. (The same
loss also fits ddpm.train{..., loss = function(out, eps, ctx) return loss,
grad end}, which adds checkpoints and resuming.) ddpm.steps gives the loop
ddpm.train's Ctrl-C: the step under way finishes and the run is marked
'interrupted'.

   ddpmlua experiments/plain_loop.lua --steps=300
   mpirun -np 2 ddpmlua experiments/plain_loop.lua --steps=300    # data-parallel

Under mpirun the loop is data-parallel with the three lines marked "dist":
each rank takes its share of the batch (the same examples, timesteps and
noise it would have in one process), and the gradients are averaged over
the ranks before the optimiser. The run history, the progress bar and the
sample grid are rank 0's alone (ddpm.log, ddpm.progress and ddpm.save_grid
see to that).
]]
local ddpm = require 'ddpm'
local core = ddpm.core

local cfg = ddpm.cli.parse(arg, {
   steps = 300, batch = 32, lr = 1e-3, warmup = 50, grad_clip = 1.0, ema_decay = 0.995,
   T = 1000, seed = 1, db = 'runs.db', sample_n = 16,
})

local data = ddpm.data.fashion_mnist{split = 'train'}
local m = ddpm.unet{ch = 32, ch_mult = {1, 2, 2}, num_res_blocks = 1, attn_resolutions = {7},
                    dropout = 0, in_ch = 1, out_ch = 1, resolution = 28, seed = cfg.seed}
local ema = ddpm.unet{ch = 32, ch_mult = {1, 2, 2}, num_res_blocks = 1, attn_resolutions = {7},
                      dropout = 0, in_ch = 1, out_ch = 1, resolution = 28}
ema:flat_params():copy(m:flat_params())
local diff = ddpm.diffusion{schedule = 'linear', T = cfg.T}
local adam = core.adam(m:num_params())
local run = ddpm.log.start{db = cfg.db, name = 'plain_loop_l1', config = cfg, seed = cfg.seed}
local bar = ddpm.progress.new{total = cfg.steps, label = 'train'}
local N = data:size()
m:training()

-- Ctrl-C ends the loop after the current step and marks the run 'interrupted'
for step in ddpm.steps{steps = cfg.steps, run = run} do
   -- x0 ~ q(x0), t ~ Uniform({0..T-1}), eps ~ N(0, I)          (Algorithm 1, lines 2-4)
   local idx = core.randint(cfg.batch, N, core.mix_seed(cfg.seed, 1), step * 1048576)
   for i = 1, #idx do idx[i] = idx[i] + 1 end
   local t = core.randint(cfg.batch, cfg.T, core.mix_seed(cfg.seed, 2), step * 1048576)
   local lo, hi = ddpm.dist.shard(cfg.batch)                                      -- dist
   idx, t = {unpack(idx, lo + 1, hi)}, {unpack(t, lo + 1, hi)}                    -- dist
   local x0 = data:batch(idx, 0)
   -- normal j of a draw uses counters c + 2j: this share's noise starts at 2 * lo * 784
   local eps = core.randn(x0:size(), core.mix_seed(cfg.seed, 3), step * 4294967296 + 2 * lo * 784)
   local xt = diff:q_sample(x0, t, eps)
   -- the loss of our choosing: mean |eps - eps_theta|, and its gradient
   m:zero_grad()
   local out = m:forward(xt, t)
   local d = out - eps
   local loss = d:abs():mean()
   local grad = d:clamp(0, 0)                                  -- a zero tensor of the same shape
   local n = d:numel()
   local flat = grad:view(n)
   local dflat = d:view(n)
   for i = 1, n do
      local v = dflat[i]
      flat[i] = (v > 0 and 1 or v < 0 and -1 or 0) / n
   end
   m:backward(grad)
   ddpm.dist.allreduce(m:flat_grads()):mul_(1 / ddpm.dist.size())                -- dist
   -- clip, warm-up, Adam, EMA                                   (Algorithm 1, line 5)
   local gnorm = core.clip_grad_norm(m:flat_grads(), cfg.grad_clip)
   local lr = cfg.lr * math.min((step - 1) / cfg.warmup, 1)
   adam:step(m:flat_params(), m:flat_grads(), lr)
   core.ema_update(ema:flat_params(), m:flat_params(), cfg.ema_decay)
   run:metrics(step, {loss_l1 = loss, grad_norm = gnorm, lr = lr})
   bar:update(step, {loss = loss})
end
bar:finish()
if run.status == 'interrupted' then return end

local x = diff:sample(ema, {n = cfg.sample_n, shape = {1, 28, 28}, seed = cfg.seed})
local path = run.dir .. '/samples.png'
ddpm.save_grid(path, x)
run:artifact(cfg.steps, 'sample_grid', path)
run:finish()
print(('run %d finished; samples in %s'):format(run.id, path))
