--[[
ddpm.steps — the step loop of a hand-written training loop, with the
Ctrl-C handling of ddpm.train.

   local run = ddpm.log.start{...}
   for step in ddpm.steps{run = run, steps = 1000, on_stop = function(step) save(step) end} do
      ...   -- one step
   end
   if run.status == 'interrupted' then return end   -- no sampling after Ctrl-C

The first Ctrl-C (or SIGTERM) lets the current step finish; the loop then
ends, on_stop(step) runs (write a checkpoint there), the run is marked
'interrupted' and a line says so on stderr. A second Ctrl-C stops at once,
as anywhere else. Under mpirun the ranks stop after the same step. Without Ctrl-C the loop runs steps start+1 .. steps and
leaves the run as it is (the script finishes it).

What it is not: ddpm.train. The body is yours; this only owns the stop.
]]
local host = package.preload['ddpm.host'] and require('ddpm.host') or nil

-- Whether to stop now. Under mpirun the ranks agree (any rank asked), so
-- that all leave the loop after the same step.
local function stop_agreed()
   local core = require 'ddpm.core'
   local asked = host.stop_requested()
   if core.dist_size() == 1 then return asked end
   return core.dist_allreduce_numbers({asked and 1 or 0}, 'max')[1] > 0
end

--- ddpm.steps{steps =, start = 0, run = nil, on_stop = nil} -> an iterator
--- over step numbers start+1 .. steps that ends early after Ctrl-C.
local function steps(opt)
   if type(opt) ~= 'table' then error('steps: expected {steps = N, run = ..., on_stop = ...}', 2) end
   local n, start = opt.steps, opt.start or 0
   if type(n) ~= 'number' or n % 1 ~= 0 or n < 0 then
      error(('steps: steps must be a non-negative integer, got %s'):format(tostring(n)), 2)
   end
   if type(start) ~= 'number' or start % 1 ~= 0 or start < 0 then
      error(('steps: start must be a non-negative integer, got %s'):format(tostring(start)), 2)
   end
   if opt.on_stop ~= nil and type(opt.on_stop) ~= 'function' then
      error('steps: on_stop must be a function (step)', 2)
   end
   local step, armed = start, false
   return function()
      if not armed then
         if host then host.graceful(true) end
         armed = true
      elseif host and stop_agreed() then
         host.graceful(false)
         if require('ddpm.core').dist_rank() == 0 then
            io.stderr:write(('interrupted at step %d\n'):format(step))
         end
         if opt.on_stop then opt.on_stop(step) end
         if opt.run then opt.run:finish('interrupted') end
         return nil
      end
      if step >= n then
         if host then host.graceful(false) end
         return nil
      end
      step = step + 1
      return step
   end
end

return steps
