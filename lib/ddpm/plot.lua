--[[
ddpm.plot — training curves from runs.db as PNG charts. The drawing is
PLplot's (runtime/plot.c, core.plot_lines); this file fetches the series and
smooths them.

   local plot = require 'ddpm.plot'
   local rl = ddpm.log.open('runs.db')
   local x, y = plot.series(rl, 3, 'loss')              -- steps, values (NaN kept)
   plot.lines('loss.png', {{name = 'run 3', x = x, y = plot.smooth(y, 20)}},
              {title = 'loss', xlabel = 'step', ylabel = 'loss', logy = true})
   plot.runs{rl = rl, runs = {3, 4}, metrics = {'loss'}, out = 'loss.png', smooth = 20}

Metrics named nll*_t (diff:nll's per-timestep terms: nll_t, nll_mse_t,
nll_ema_t, ...) are logged with step = the diffusion timestep t, so their x
axis is t. Not here: reading PNGs, HTML (lib/ddpm/report.lua).
]]
local core = require 'ddpm.core'

local plot = {}

--- The series colours in order, '#rrggbb' (PLplot draws series i in colour i).
plot.colors = core.plot_colors

--- plot.is_per_t(key): true for metrics logged per diffusion timestep.
function plot.is_per_t(key)
   return key:match('^nll.*_t$') ~= nil
end

--- plot.series(rl, run_id, key) -> xs, ys: the metric's points by step. A
--- NaN logged (stored as NULL) comes back as NaN.
function plot.series(rl, run_id, key)
   local rows = rl:query('SELECT step, value FROM metrics_v WHERE run_id = :run AND key = :key ' ..
                         'ORDER BY step', {run = run_id, key = key})
   local xs, ys = {}, {}
   for i, r in ipairs(rows) do
      xs[i] = r.step
      ys[i] = r.value or 0 / 0
   end
   return xs, ys
end

--- plot.smooth(ys, n): trailing moving average over the last n points (NaN
--- points are skipped; a NaN stays NaN). n <= 1 returns a copy.
function plot.smooth(ys, n)
   local out = {}
   n = math.floor(n or 1)
   if n <= 1 then
      for i, v in ipairs(ys) do out[i] = v end
      return out
   end
   local sum, count, win = 0, 0, {}
   for i, v in ipairs(ys) do
      local finite = v == v and v ~= math.huge and v ~= -math.huge
      win[i] = finite and v or nil
      if finite then sum, count = sum + v, count + 1 end
      local old = i - n
      if old >= 1 and win[old] then sum, count = sum - win[old], count - 1 end
      if old >= 1 then win[old] = nil end
      out[i] = (finite and count > 0) and sum / count or v
   end
   return out
end

--- plot.lines(path, series, opt): series = {{name=, x=, y=}, ...};
--- opt = {title=, xlabel=, ylabel=, logy=, width = 800, height = 500}.
function plot.lines(path, series, opt)
   core.plot_lines(path, series, opt)
end

--- plot.runs{rl= (or db=), runs = {id, ...}, metrics = {'loss', ...}, out=,
---           smooth=, logy=, width=, height=, title=, names = {[id] = label}}
--- One chart with a curve per (run, metric). Raises an error naming the run
--- when one lacks a metric. Returns the number of curves.
function plot.runs(opt)
   local rl = opt.rl or core.runlog_open(opt.db or 'runs.db', {readonly = true})
   local series = {}
   local per_t = true
   for _, id in ipairs(opt.runs) do
      for _, key in ipairs(opt.metrics) do
         local xs, ys = plot.series(rl, id, key)
         if #xs == 0 then
            error(("run %d has no metric '%s'"):format(id, key), 0)
         end
         if opt.smooth and opt.smooth > 1 then ys = plot.smooth(ys, opt.smooth) end
         local label = (opt.names and opt.names[id]) or ('run ' .. id)
         if #opt.metrics > 1 then label = label .. ' ' .. key end
         series[#series + 1] = {name = label, x = xs, y = ys}
         per_t = per_t and plot.is_per_t(key)
      end
   end
   local title = opt.title or table.concat(opt.metrics, ', ')
   if not opt.title and opt.smooth and opt.smooth > 1 then
      title = ('%s (moving average of %d)'):format(title, opt.smooth)
   end
   core.plot_lines(opt.out, series, {
      title = title, xlabel = per_t and 't' or 'step',
      ylabel = #opt.metrics == 1 and opt.metrics[1] or 'value', logy = opt.logy,
      width = opt.width, height = opt.height})
   if not opt.rl then rl:close() end
   return #series
end

return plot
