--[[
ddpm.dist — data parallelism over MPI ranks (mpirun -np N ddpmlua script.lua).

   local dist = require('ddpm').dist
   dist.rank(), dist.size()          -- 0 and 1 without mpirun
   dist.allreduce(t [, 'sum'|'max'|'min'])   -- a float32 tensor, in place, on every rank
   dist.allreduce_numbers({a, b} [, op])     -- float64 values -> reduced table
   dist.broadcast(t [, root = 0])            -- root's values into t on every rank
   dist.barrier()
   dist.is_main()                    -- rank 0: the rank that writes files and the history
   dist.shard(n) -> lo, hi           -- this rank's share [lo, hi) of 0..n-1 (contiguous)

A process started by mpirun joins the job when ddpmlua starts; any other
process is a world of one in which every call above is a no-op and MPI is
never initialised. All ranks must make the same collective calls in the
same order. A collective waits at most dist.timeout() seconds (600, or
DDPMLUA_DIST_TIMEOUT) for the other ranks, then fails with a Lua error; a
rank whose script fails ends the whole job.

ddpm.train is data-parallel by itself; a custom loop adds three lines (see
experiments/plain_loop.lua): take this rank's share of the batch, sum the
gradients over ranks (dist.allreduce(grads) then scale by 1/size), and log
only on dist.is_main(). docs/distributed.md explains the design.
]]
local core = require 'ddpm.core'

local dist = {}

function dist.active() return core.dist_active() end
function dist.rank() return core.dist_rank() end
function dist.size() return core.dist_size() end
function dist.local_rank() return core.dist_local_rank() end
function dist.is_main() return core.dist_rank() == 0 end
function dist.timeout() return core.dist_timeout() end
function dist.set_timeout(s) core.dist_set_timeout(s) end

function dist.allreduce(t, op) return core.dist_allreduce(t, op) end
function dist.allreduce_numbers(v, op) return core.dist_allreduce_numbers(v, op) end
function dist.broadcast(t, root) return core.dist_broadcast(t, root) end
function dist.broadcast_string(s, root) return core.dist_broadcast_string(s, root) end
function dist.barrier() core.dist_barrier() end
function dist.same(s) return core.dist_same(s) end

--- This rank's contiguous share [lo, hi) of the indices 0..n-1: the first
--- n % size ranks get one more.
function dist.shard(n, rank, size)
   rank, size = rank or core.dist_rank(), size or core.dist_size()
   local q, r = math.floor(n / size), n % size
   local lo = rank * q + math.min(rank, r)
   return lo, lo + q + (rank < r and 1 or 0)
end

--- Every rank's piece of a [n, ...] result, gathered into one tensor on
--- every rank: x holds rows [lo, hi) of this rank (x may be nil when the
--- share is empty), sizes the full [n, ...]. A sum-reduction of zero-padded
--- copies: each row has one non-zero contributor, so the values are exact.
function dist.gather_rows(x, lo, sizes)
   if core.dist_size() == 1 then return x end
   local full = core.zeros(sizes)
   if x and x:size(1) > 0 then full:narrow(1, lo + 1, x:size(1)):copy(x) end
   core.dist_allreduce(full, 'sum')
   if x then x:free() end
   return full
end

return dist
