--[[
scripts/bench_mpi.lua — one case of `make bench-mpi` (scripts/bench_mpi.sh
runs it without and under mpirun):

   ddpmlua scripts/bench_mpi.lua train DATA_DIR [steps]   CIFAR-10 U-Net, ddpm.train,
                                                          global batch 8, images/s
   mpirun -np 2 ddpmlua scripts/bench_mpi.lua allreduce [reps]
                                                          sum of the U-Net's gradient buffer

Prints one line from rank 0:
   bench mpi_train ranks=R threads=T batch=8 step_s=<median> images_per_s=<8/median> rss_mb=<max over ranks>
   bench mpi_allreduce ranks=R floats=N mb=<MB> allreduce_s=<median> gb_per_s=<bus bandwidth>
The training steps are real ddpm.train steps (forward, L_simple, backward,
the gradient sum over the ranks, clipping, Adam, EMA) on synthetic CIFAR-10
files; the first step is a warm-up and not counted.
]]
local ddpm = require 'ddpm'
local core, dist = ddpm.core, ddpm.dist

local function median(v)
   table.sort(v)
   local n = #v
   return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

local function peak_rss_mb()
   local f = io.open('/proc/self/status')
   local kb = 0
   if f then
      for line in f:lines() do
         local v = line:match('^VmHWM:%s+(%d+)')
         if v then kb = tonumber(v) end
      end
      f:close()
   end
   return dist.allreduce_numbers({kb / 1024}, 'max')[1]
end

local mode = arg[1]
if mode == 'train' then
   local dir, steps = arg[2], tonumber(arg[3] or 4)
   local m = ddpm.unet{}                      -- the paper's CIFAR-10 model, 35.7M parameters
   local times, last = {}, nil
   local mine = os.tmpname()              -- one database, rank 0's (the ranks must agree)
   local db = dist.broadcast_string(mine, 0)
   if mine ~= db then os.remove(mine) end
   ddpm.train{model = m, diffusion = ddpm.diffusion{}, data = ddpm.data.cifar10{dir = dir},
      steps = steps + 1, batch = 8, lr = 2e-4, seed = 1, db = db, progress = false,
      sample_every = 0, sample_at_end = false, checkpoint_every = 0, check_every = 0,
      on_step = function(step)
         local now = core.time()
         if last and step > 1 then times[#times + 1] = now - last end
         last = now
      end}
   local s = median(times)
   local rss = peak_rss_mb()
   if dist.is_main() then
      os.remove(db); os.remove(db .. '-wal'); os.remove(db .. '-shm')
      print(('bench mpi_train ranks=%d threads=%d batch=8 step_s=%.4f images_per_s=%.3f rss_mb=%.0f'):format(
         dist.size(), core.get_num_threads(), s, 8 / s, rss))
   end
elseif mode == 'allreduce' then
   local reps = tonumber(arg[2] or 5)
   local n = ddpm.unet{}:num_params()
   local g = core.randn({n}, 1)
   local times = {}
   for i = 1, reps + 1 do
      dist.barrier()
      local t0 = core.time()
      dist.allreduce(g, 'sum')
      local t = core.time() - t0
      if i > 1 then times[#times + 1] = t end
   end
   local s = dist.allreduce_numbers({median(times)}, 'max')[1]
   local R = dist.size()
   if dist.is_main() then
      -- a ring moves 2 (R-1)/R of the buffer through each rank's link
      print(('bench mpi_allreduce ranks=%d floats=%d mb=%.0f allreduce_s=%.4f gb_per_s=%.2f'):format(
         R, n, n * 4 / 1e6, s, 2 * (R - 1) / R * n * 4 / s / 1e9))
   end
else
   io.stderr:write('usage: ddpmlua scripts/bench_mpi.lua train DATA_DIR [steps] | allreduce [reps]\n')
   os.exit(2)
end
