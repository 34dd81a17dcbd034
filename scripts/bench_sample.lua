--[[
scripts/bench_sample.lua B S THREADS — seconds per sampler step of the paper's
CIFAR-10 U-Net (35.7M parameters, T = 1000 linear) at batch B, each sampler
timed over S steps (the best of 2 runs), and the wall time of 50,000 samples
extrapolated from it: 1000-step ancestral, 100-step respaced ancestral and
50-step DDIM (eta 0). Run by scripts/bench_fid.sh.
]]
local ddpm = require 'ddpm'
local core = ddpm.core
local B, S, threads = tonumber(arg[1]) or 50, tonumber(arg[2]) or 3, tonumber(arg[3]) or 2
core.set_num_threads(threads)
local m = ddpm.unet{}
local d = ddpm.diffusion{}

-- seconds per step: a process of S steps out of the full one's spacing
local function per_step(opt)
   local best = math.huge
   for _ = 1, 2 do
      local o = {n = B, shape = {3, 32, 32}, seed = 1, steps = opt.steps, sampler = opt.sampler, eta = opt.eta,
                 progress = false}
      local t0 = core.time()
      local x = d:sample(m, o)
      best = math.min(best, core.time() - t0)
      x:free()
   end
   return best / S
end

local cases = {
   {'ancestral', 1000, {steps = S}},   -- every step of the full process costs one U-Net forward alike
   {'respaced', 100, {steps = S}},
   {'ddim', 50, {steps = 'ddim' .. S, sampler = 'ddim', eta = 0}},
}
for _, c in ipairs(cases) do
   local s = per_step(c[3])
   print(('sample %s steps=%d s_per_step_b%d=%.3f 50k_s=%.0f (extrapolated from %d measured steps at batch %d)')
         :format(c[1], c[2], B, s, s * c[2] * 50000 / B, S, B))
end
