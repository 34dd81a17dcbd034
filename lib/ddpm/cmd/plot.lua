--[[
ddpm.cmd.plot — `ddpmlua plot RUN...`: metric curves as a PNG (ddpm.plot).
]]
local plot = require 'ddpm.plot'
local common = require 'ddpm.cmd.common'
local failure = common.failure
local fail, open_db, resolve, get_run = common.fail, common.open_db, common.resolve, common.get_run
local bare = common.bare
local metric_keys = common.metric_keys

local command = {
   doc = '  Metric curves of one or more runs as a PNG (-o FILE.png).',
   usage = 'plot RUN... [--metric loss[,lr...]] [-o FILE.png] [--smooth N] [--log] ' ..
           '[--width 800] [--height 500] [--title T] [--db PATH]',
   spec = {db = 'string', metric = 'string', output = 'string', smooth = 'int', log = 'flag',
           width = 'int', height = 'int', title = 'string'},
   short = {o = 'output'},
   run = function(o, pos)
      if #pos < 1 then fail('plot needs at least one run') end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local metrics = {}
      for k in (o.metric or 'loss'):gmatch('[^,%s]+') do metrics[#metrics + 1] = k end
      if #metrics == 0 then fail('--metric names no metric') end
      local ids, names = {}, {}
      for i, ref in ipairs(pos) do
         ids[i] = resolve(rl, ref, db)
         local r = get_run(rl, ids[i])
         names[ids[i]] = 'run ' .. r.run_id .. (r.name and (' ' .. r.name) or '')
      end
      for _, id in ipairs(ids) do
         local set, list = metric_keys(rl, id)
         for _, k in ipairs(metrics) do
            if not set[k] then
               fail("run %d has no metric '%s' (it has: %s)", id, k,
                    #list > 0 and table.concat(list, ', ') or 'none')
            end
         end
      end
      local path = o.output or (metrics[1]:gsub('[^%w_.-]', '_') .. '.png')
      if not path:lower():match('%.png$') then   -- never PNG bytes under another name
         fail("plot writes PNG images; -o %s: use a name ending in .png (for SVG or PDF, " ..
              "'ddpmlua sql --csv' gives the points to any plotting tool)", path)
      end
      local w, h = o.width or 800, o.height or 500
      local ok, err = pcall(plot.runs, {rl = rl, runs = ids, metrics = metrics, out = path,
                                        smooth = o.smooth, logy = o.log, width = w, height = h,
                                        title = o.title, names = names})
      if not ok then failure('%s', (bare(err):gsub('^plot: ', ''))) end
      io.stdout:write(('wrote %s (%d curve%s, %dx%d)\n'):format(path, err, err == 1 and '' or 's', w, h))
   end,
}

return command
