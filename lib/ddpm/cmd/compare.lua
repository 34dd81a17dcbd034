--[[
ddpm.cmd.compare — `ddpmlua compare RUN RUN...`: runs side by side.
]]
local plot = require 'ddpm.plot'
local common = require 'ddpm.cmd.common'
local util = require 'ddpm.util'
local fail, query, open_db, resolve = common.fail, common.query, common.open_db, common.resolve
local get_run = common.get_run
local visible, print_table, num, g6 = common.visible, common.print_table, common.num, common.g6
local metric_keys = common.metric_keys
local basename, duration, sorted_keys = util.basename, util.duration, util.sorted_keys

-- Up to n of the sorted steps, evenly spread, first and last kept.
local function thin(steps, n)
   if n <= 0 or #steps <= n then return steps end
   local out = {}
   for i = 0, n - 1 do
      out[#out + 1] = steps[1 + math.floor(i * (#steps - 1) / (n - 1) + 0.5)]
   end
   return out
end

-- The column heads: a first column, then 'run N' per run (suffix after it).
local function heads(first, runs, suffix)
   local cols = {first}
   for i, r in ipairs(runs) do cols[i + 1] = 'run ' .. r.run_id .. (suffix or '') end
   return cols
end

-- The runs themselves: name, status, script, seed, duration.
local function print_runs(runs)
   local fields = {
      {'name', function(r) return r.name or '-' end},
      {'status', function(r) return r.status end},
      {'script', function(r) return basename(r.script_path) or '-' end},
      {'script sha256', function(r) return r.script_sha256:sub(1, 12) end},
      {'seed', function(r) return num(r.seed) end},
      {'duration', function(r)
         local stop = r.end_time or r.heartbeat
         return duration(stop and stop - r.start_time) end},
   }
   local info = {}
   for _, f in ipairs(fields) do
      local row = {f[1]}
      for i, r in ipairs(runs) do row[i + 1] = f[2](r) end
      info[#info + 1] = row
   end
   print_table(heads('', runs), info, {arrays = true})
end

-- The config keys that differ (all of them with --all).
local function print_config(runs, all)
   local cfgs, union = {}, {}
   for i, r in ipairs(runs) do
      cfgs[i] = common.flatten_config(r.config_json)
      for k in pairs(cfgs[i]) do union[k] = true end
   end
   local diff, same = {}, 0
   for _, k in ipairs(sorted_keys(union)) do
      local differs = false
      for i = 2, #runs do differs = differs or cfgs[i][k] ~= cfgs[1][k] end
      if differs or all then
         local row = {k}
         for i = 1, #runs do row[i + 1] = cfgs[i][k] or '(absent)' end
         diff[#diff + 1] = row
      end
      if not differs then same = same + 1 end
   end
   io.stdout:write('\n')
   if #diff == 0 then
      io.stdout:write(('config: identical (%d keys)\n'):format(same))
      return
   end
   if not all then
      io.stdout:write(('config: %d keys differ, %d equal (--all shows them)\n'):format(#diff, same))
   end
   print_table(heads('config', runs), diff, {arrays = true, maxw = 60})
end

-- Each metric's last value per run; -> the set of every run's metrics and
-- each run's own set.
local function print_last_values(rl, runs, ids)
   local sets, union = {}, {}
   for i, id in ipairs(ids) do
      local set, list = metric_keys(rl, id)
      sets[i] = set
      for _, k in ipairs(list) do union[k] = true end
   end
   local summary = {}
   for _, k in ipairs(sorted_keys(union)) do
      local row = {k}
      for i, id in ipairs(ids) do
         local v = query(rl, 'SELECT value, step FROM metrics_v WHERE run_id = :id AND key = :k ' ..
                             'ORDER BY step DESC LIMIT 1', {id = id, k = k})[1]
         row[i + 1] = v and (v.value or 0 / 0) or '-'
      end
      summary[#summary + 1] = row
   end
   if #summary > 0 then
      io.stdout:write('\n')
      print_table(heads('last value', runs), summary, {arrays = true, fmt = g6})
   end
   return union, sets
end

-- The metrics to show side by side: --metric, else loss when every run has it.
local function chosen_metrics(o, union, sets, n)
   local metrics = {}
   if o.metric then
      for k in o.metric:gmatch('[^,%s]+') do metrics[#metrics + 1] = k end
      for _, k in ipairs(metrics) do
         if not union[k] then fail("no run of these has a metric '%s'", k) end
      end
   else
      local all = true
      for i = 1, n do all = all and sets[i].loss end
      if all then metrics = {'loss'} end
   end
   return metrics
end

-- Metric k of every run at the steps all of them logged (nrows of them,
-- spread), with the difference when there are two runs.
local function print_side_by_side(rl, runs, ids, k, nrows)
   local values, common_steps = {}, nil
   for i, id in ipairs(ids) do
      local rows = query(rl, 'SELECT step, value FROM metrics_v WHERE run_id = :id AND key = :k',
                         {id = id, k = k})
      values[i] = {}
      local here = {}
      for _, r in ipairs(rows) do
         values[i][r.step] = r.value or 0 / 0
         here[r.step] = true
      end
      if not common_steps then common_steps = here
      else
         for s in pairs(common_steps) do if not here[s] then common_steps[s] = nil end end
      end
   end
   local steps = sorted_keys(common_steps or {})
   io.stdout:write('\n')
   if #steps == 0 then
      io.stdout:write(("%s: no step logged by all runs\n"):format(visible(k)))
      return
   end
   local shown = thin(steps, nrows)
   local cols = heads(plot.is_per_t(k) and 't' or 'step', runs, ' ' .. k)
   if #ids == 2 then cols[#cols + 1] = 'difference' end
   local rows = {}
   for _, s in ipairs(shown) do
      local row = {s}
      for i = 1, #ids do row[i + 1] = values[i][s] end
      if #ids == 2 then row[4] = values[2][s] - values[1][s] end
      rows[#rows + 1] = row
   end
   io.stdout:write(('%s at %d of %d common steps (--rows N for more, 0 for all)\n')
                   :format(k, #shown, #steps))
   print_table(cols, rows, {arrays = true, fmt = g6})
end

local command = {
   doc = '  Runs side by side: the config keys that differ and each metric at common steps.',
   usage = 'compare RUN RUN... [--metric loss[,grad_norm...]] [--rows N] [--all] [--db PATH]',
   spec = {db = 'string', metric = 'string', rows = 'int', all = 'flag'},
   run = function(o, pos)
      if #pos < 2 then fail('compare needs at least two runs, got %d', #pos) end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local runs, ids, seen = {}, {}, {}
      for i, ref in ipairs(pos) do
         ids[i] = resolve(rl, ref, db)
         if seen[ids[i]] then fail('run %d is named twice', ids[i]) end
         seen[ids[i]] = true
         runs[i] = get_run(rl, ids[i])
      end
      print_runs(runs)
      print_config(runs, o.all)
      local union, sets = print_last_values(rl, runs, ids)
      for _, k in ipairs(chosen_metrics(o, union, sets, #ids)) do
         print_side_by_side(rl, runs, ids, k, o.rows or 12)
      end
   end,
}

return command
