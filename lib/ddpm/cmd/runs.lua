--[[
ddpm.cmd.runs — `ddpmlua runs`: the run list (and ddpm.runs{} from Lua, through list).
]]
local common = require 'ddpm.cmd.common'
local util = require 'ddpm.util'
local fail, query, open_db = common.fail, common.query, common.open_db
local print_table, g6 = common.print_table, common.g6
local when = common.when
local basename, duration = util.basename, util.duration

local STATUSES = {running = true, finished = true, failed = true, interrupted = true, crashed = true}

-- The steps a run reached: the highest step of a training metric (per-t
-- NLL terms are logged at step = t and do not count).
local STEPS_SQL = [[(SELECT max(l.step) FROM latest_metrics l JOIN metric_names n USING (name_id)
                     WHERE l.run_id = r.run_id AND NOT n.name GLOB 'nll*_t')]]
local BEST_SQL = [[(SELECT min(m.value) FROM metrics m JOIN metric_names n USING (name_id)
                    WHERE m.run_id = r.run_id AND (%s))]]
local NLL_KEYS = "n.name GLOB 'nll*_bpd' OR n.name = 'nll'"
local FD_KEYS = "n.name GLOB 'fd_lenet*'"

--- parse_since('2d' | '12h' | '30m' | '1w' | '2025-01-31' | '2025-01-31 14:00' | 'today')
--- -> unix time.
local function parse_since(s)
   local n, unit = s:match('^(%d+%.?%d*)%s*([smhdw])$')
   if n then
      local mult = {s = 1, m = 60, h = 3600, d = 86400, w = 7 * 86400}
      return os.time() - tonumber(n) * mult[unit]
   end
   if s == 'today' then
      local d = os.date('*t')
      return os.time{year = d.year, month = d.month, day = d.day, hour = 0}
   end
   local y, mo, d, rest = s:match('^(%d%d%d%d)%-(%d%d?)%-(%d%d?)(.*)$')
   if y then
      local h, mi, sec = 0, 0, 0
      if rest ~= '' then
         h, mi, sec = rest:match('^[T ](%d%d?):(%d%d)(.*)$')
         if not h then return nil end
         if sec ~= '' then
            sec = sec:match('^:(%d%d)$')
            if not sec then return nil end
         else
            sec = 0
         end
      end
      return os.time{year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                     hour = tonumber(h), min = tonumber(mi), sec = tonumber(sec)}
   end
   return nil
end

--- ddpm.runs{db=, status=, script=, since=, last=, rl=} -> rows, oldest
--- first: run_id, uuid, name, experiment, script, script_path, status,
--- steps, loss (last), nll (best nll*_bpd), fd_lenet (best), start_time,
--- end_time, duration (seconds), seed, parent_run_id, error (first line).
--- Raises a user error (a table with .msg) on bad options.
local function list_runs(opt)
   opt = opt or {}
   local where, params = {}, {}
   if opt.status then
      local list = {}
      for s in tostring(opt.status):gmatch('[^,%s]+') do
         if not STATUSES[s] then
            fail("unknown status '%s' (running, finished, failed, interrupted or crashed)", s)
         end
         list[#list + 1] = "'" .. s .. "'"
      end
      if #list > 0 then where[#where + 1] = 'r.status IN (' .. table.concat(list, ',') .. ')' end
   end
   if opt.script then
      where[#where + 1] = '(instr(r.script_path, :script) > 0 OR instr(r.name, :script) > 0)'
      params.script = tostring(opt.script)
   end
   if opt.since then
      local t = type(opt.since) == 'number' and opt.since or parse_since(tostring(opt.since))
      if not t then
         fail("--since expects an age (30m, 12h, 2d, 1w), a date (2025-01-31, " ..
              "'2025-01-31 14:00') or 'today', got '%s'", tostring(opt.since))
      end
      where[#where + 1] = 'r.start_time >= :since'
      params.since = t
   end
   local last = opt.last
   if last ~= nil and (type(last) ~= 'number' or last < 1 or last % 1 ~= 0) then
      fail('last must be a positive integer, got %s', tostring(last))
   end
   local sql = ([[
SELECT r.run_id, r.uuid, r.name, r.experiment, r.script_path, r.status, r.start_time,
       r.end_time, r.heartbeat, r.seed, r.parent_run_id, r.error_text,
       %s AS steps,
       (SELECT coalesce(l.value, 'nan') FROM latest_metrics l JOIN metric_names n USING (name_id)
        WHERE l.run_id = r.run_id AND n.name = 'loss') AS loss,
       %s AS nll, %s AS fd_lenet
FROM runs r %s
ORDER BY r.run_id DESC %s]]):format(STEPS_SQL, BEST_SQL:format(NLL_KEYS), BEST_SQL:format(FD_KEYS),
      #where > 0 and ('WHERE ' .. table.concat(where, ' AND ')) or '',
      last and ('LIMIT ' .. last) or '')
   local rl = opt.rl or open_db(opt.db)
   local rows = query(rl, sql, params)
   local out = {}
   for i = #rows, 1, -1 do
      local r = rows[i]
      r.script = basename(r.script_path)
      if r.loss == 'nan' then r.loss = 0 / 0 end
      local stop = r.end_time or r.heartbeat
      if r.status == 'running' then stop = math.max(stop or r.start_time, os.time()) end
      r.duration = stop and (stop - r.start_time) or nil
      r.error = r.error_text and r.error_text:match('^[^\n]*') or nil
      r.error_text = nil
      out[#out + 1] = r
   end
   return out
end

local command = {
   doc = '  The runs, oldest first: id, name, script, status, steps, last loss, NLL, FD-LeNet, start, duration.',
   usage = 'runs [--status S[,S]] [--script NAME] [--since 2d|DATE] [--last N] [--db PATH]',
   spec = {db = 'string', status = 'string', script = 'string', since = 'string', last = 'int'},
   run = function(o, pos)
      if #pos > 0 then fail("runs takes no arguments, got '%s' (did you mean 'show %s'?)", pos[1], pos[1]) end
      if o.last == 0 then fail('--last must be at least 1') end
      local rl = open_db(o.db)
      local rows = list_runs{rl = rl, status = o.status, script = o.script, since = o.since, last = o.last}
      if #rows == 0 then
         io.stdout:write('no runs', (o.status or o.script or o.since) and ' match' or ' yet', '\n')
         return
      end
      local has_nll, has_fd = false, false
      for _, r in ipairs(rows) do
         has_nll = has_nll or r.nll ~= nil
         has_fd = has_fd or r.fd_lenet ~= nil
      end
      local cols = {'id', 'name', 'script', 'status', 'steps', 'loss'}
      if has_nll then cols[#cols + 1] = 'best nll' end
      if has_fd then cols[#cols + 1] = 'best fd_lenet' end
      cols[#cols + 1] = 'started'
      cols[#cols + 1] = 'duration'
      local out = {}
      for i, r in ipairs(rows) do
         out[i] = {id = r.run_id, name = r.name or '', script = r.script or '(repl)',
                   status = r.status, steps = r.steps, loss = r.loss, ['best nll'] = r.nll,
                   ['best fd_lenet'] = r.fd_lenet, started = when(r.start_time),
                   duration = duration(r.duration)}
         -- numbers right-aligned; missing ones as '-'
         for _, k in ipairs{'steps', 'loss', 'best nll', 'best fd_lenet'} do
            if out[i][k] == nil then out[i][k] = '-' end
         end
      end
      print_table(cols, out, {fmt = g6})
   end,
}

--- list(opt): the rows of ddpm.runs{} (ddpm.runs), mistakes as user errors.
command.list = list_runs

return command
