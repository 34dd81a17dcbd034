--[[
ddpm.commands — `ddpmlua <command> ...` over the run history (runs.db):

   ddpmlua runs [--status S] [--script NAME] [--since 2d|DATE] [--last N]
   ddpmlua show RUN
   ddpmlua compare RUN RUN... [--metric loss,...] [--rows N]
   ddpmlua plot RUN... [--metric loss] [-o loss.png] [--smooth N] [--log]
   ddpmlua sql "SELECT ..." [--param name=value]... [--csv]
   ddpmlua rerun RUN [--threads N] [--dry-run]
   ddpmlua export RUN DIR
   ddpmlua report RUN [-o report.html] [--smooth N] [--log]
   ddpmlua fid DIR_OR_RUN [--ref stats.npz] [--weights PATH] [--save stats.npz]

Every command takes --db PATH (default runs.db) and -h. RUN is a run id, a
uuid (or a unique prefix of one, 6+ hex digits) or 'last'. A mistake of the
user's (unknown run, malformed SQL, no such database, unknown option) is one
line on stderr and exit status 1, never a traceback; the database must
exist (no command creates one).

From Lua the run list is ddpm.runs{db=, status=, script=, since=, last=}
(commands.runs), rows as tables, oldest first.
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'
local plot = require 'ddpm.plot'

local commands = {}

---------------------------------------------------------------- errors

-- A user's mistake: printed as one line, no traceback.
local UserError = {}
UserError.__tostring = function(e) return e.msg end

local function fail(msg, ...)
   if select('#', ...) > 0 then msg = msg:format(...) end
   error(setmetatable({msg = msg}, UserError), 0)
end
commands.fail = fail

local function is_user_error(e) return getmetatable(e) == UserError end

-- A Lua error message without the "file:line: " of where it was raised.
local function bare(msg)
   msg = tostring(msg)
   return (msg:gsub('^[^\n:]*:%d+: ', ''))
end

---------------------------------------------------------------- the database

local opened = {}   -- run logs opened by this command, closed on exit

local function file_exists(path)
   local f = io.open(path, 'rb')
   if not f then return false end
   f:close()
   return true
end

--- Opens an existing run store, read-only unless write is true (only
--- `sql --write` asks for that); never creates one.
local function open_db(path, write)
   path = path or 'runs.db'
   local f = io.open(path, 'rb')
   if not f then
      fail("no run database at '%s' (train something first, or name one with --db PATH)", path)
   end
   local head = f:read(16)
   f:close()
   if head ~= 'SQLite format 3\0' then
      fail("'%s' is not a run database (not an SQLite file)", path)
   end
   local ok, rl = pcall(core.runlog_open, path, {readonly = not write})
   if not ok then fail('%s', (bare(rl):gsub('^runlog_open: ', ''))) end
   opened[#opened + 1] = rl
   return rl
end

local function close_all()
   for i = #opened, 1, -1 do
      pcall(opened[i].close, opened[i])
      opened[i] = nil
   end
end

-- rl:query with SQL errors as user errors (the SQL is ours unless said).
local function query(rl, sql, params)
   local ok, rows, cols = pcall(rl.query, rl, sql, params)
   if not ok then fail('%s', (bare(rows):gsub('^runlog: ', ''):gsub('^query: ', ''))) end
   return rows, cols
end

--- The run_id of a reference: an id, 'last', or a uuid (prefix).
local function resolve(rl, ref, db)
   ref = tostring(ref)
   local rows
   if ref:match('^%d+$') then
      rows = query(rl, 'SELECT run_id FROM runs WHERE run_id = :id', {id = tonumber(ref)})
   elseif ref == 'last' then
      rows = query(rl, 'SELECT max(run_id) AS run_id FROM runs')
      if not rows[1].run_id then fail("no runs in '%s' yet", db) end
   elseif ref:match('^%x+$') and #ref >= 6 then
      rows = query(rl, "SELECT run_id FROM runs WHERE uuid LIKE :p || '%' LIMIT 2",
                   {p = ref:lower()})
      if #rows > 1 then fail("'%s' matches several runs' uuids; give more digits", ref) end
   else
      fail("'%s' is not a run (expected a run id, a uuid or 'last')", ref)
   end
   if #rows == 0 then fail("no run %s in '%s'", ref, db) end
   return rows[1].run_id
end

local function get_run(rl, id)
   return query(rl, 'SELECT * FROM runs WHERE run_id = :id', {id = id})[1]
end

---------------------------------------------------------------- options

-- spec: {name = 'string' | 'int' | 'flag' | 'list'}; short: {o = 'output'}.
-- Returns the options and the positional arguments.
local function parse_args(cmd, args, spec, short)
   local opts, pos = {}, {}
   local i, n = 1, #args
   local function known()
      local names = {}
      for k in pairs(spec) do names[#names + 1] = '--' .. k end
      table.sort(names)
      return table.concat(names, ', ')
   end
   local only_pos = false
   while i <= n do
      local a = args[i]
      if only_pos or a == '-' or a:sub(1, 1) ~= '-' then
         pos[#pos + 1] = a
      elseif a == '--' then
         only_pos = true
      else
         local name, val = a:match('^%-%-([%w_-]+)=(.*)$')
         if not name then name = a:match('^%-%-([%w_-]+)$') end
         if not name then
            local s = a:match('^%-(%a)$')
            name = s and short and short[s]
         end
         if name then name = name:gsub('-', '_') end
         local ty = name and spec[name]
         if not ty then
            fail("unknown option '%s' (%s takes %s)", a, cmd, known())
         end
         if ty == 'flag' then
            if val then fail("option %s takes no value", a) end
            opts[name] = true
         else
            if not val then
               i = i + 1
               val = args[i]
               if val == nil then fail('option %s needs a value', a) end
            end
            if ty == 'int' then
               local v = tonumber(val)
               if not v or v % 1 ~= 0 or v < 0 then
                  fail("option %s expects a non-negative integer, got '%s'", a, val)
               end
               opts[name] = v
            elseif ty == 'list' then
               opts[name] = opts[name] or {}
               table.insert(opts[name], val)
            else
               opts[name] = val
            end
         end
      end
      i = i + 1
   end
   return opts, pos
end

---------------------------------------------------------------- formatting

-- Shortest text that reads back as the same double (up to 17 digits).
local function num(v)
   if v ~= v then return 'nan' end
   if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
   if v % 1 == 0 and math.abs(v) < 2^53 then return ('%d'):format(v) end
   for p = 6, 17 do
      local s = ('%.' .. p .. 'g'):format(v)
      if tonumber(s) == v then return s end
   end
   return ('%.17g'):format(v)
end
commands.num = num

local function g6(v)
   if v == nil then return '-' end
   if type(v) ~= 'number' then return tostring(v) end
   if v ~= v then return 'nan' end
   if v % 1 == 0 and math.abs(v) < 1e15 then return ('%d'):format(v) end
   return ('%.6g'):format(v)
end
commands.g6 = g6

local function when(t)
   return t and os.date('%Y-%m-%d %H:%M', math.floor(t)) or '-'
end

local function duration(s)
   if not s then return '-' end
   if s < 60 then return ('%.1fs'):format(s) end
   if s < 3600 then return ('%dm%02ds'):format(math.floor(s / 60), math.floor(s % 60)) end
   return ('%dh%02dm'):format(math.floor(s / 3600), math.floor(s % 3600 / 60))
end

local function bytes(n)
   if not n then return '-' end
   if n < 1024 then return n .. ' B' end
   if n < 1024 ^ 2 then return ('%.1f KiB'):format(n / 1024) end
   if n < 1024 ^ 3 then return ('%.1f MiB'):format(n / 1024 ^ 2) end
   return ('%.2f GiB'):format(n / 1024 ^ 3)
end

local function basename(p) return p and (p:match('([^/]+)$') or p) end

-- The last part of a stored path as a file name inside a folder of ours:
-- fallback where it is empty, '.' or '..' or holds a control character (a
-- run's path comes from a database that anyone may have written).
local function file_name(p, fallback)
   local b = p and p:match('([^/]+)/*$')
   if not b or b == '.' or b == '..' or b:find('[%z\1-\31\127]') then return fallback end
   return b
end

-- Display width of UTF-8 text (one column per code point).
local function width(s)
   local _, cont = s:gsub('[\128-\191]', '')
   return #s - cont
end

local function pad(s, w, right)
   local fill = (' '):rep(math.max(0, w - width(s)))
   return right and (fill .. s) or (s .. fill)
end

-- Stored text as the terminal shows it: control characters (C0, DEL and the
-- C1 range U+0080..U+009F) become escapes such as \n, \x1b and \u{9b}, so a
-- run's name or error cannot move the cursor, clear the screen or retitle the
-- window. keep_tabs leaves tabs (tracebacks).
local function visible(v, keep_tabs)
   local s = tostring(v):gsub('[%z\1-\31\127]', function(c)
      if c == '\t' then return keep_tabs and c or '\\t' end
      if c == '\n' then return '\\n' end
      return ('\\x%02x'):format(c:byte())
   end)
   return (s:gsub('\194([\128-\159])', function(c) return ('\\u{%x}'):format(c:byte()) end))
end
commands.visible = visible

-- One cell: numbers formatted, control characters made visible, long text cut.
local function cell(v, fmt, maxw)
   local s
   if v == nil then s = ''
   elseif type(v) == 'number' then s = (fmt or num)(v)
   else s = visible(v) end
   if maxw and maxw > 0 and width(s) > maxw then
      local cut, w = {}, 0
      for ch in s:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
         if w + 1 >= maxw then break end
         cut[#cut + 1] = ch
         w = w + 1
      end
      s = table.concat(cut) .. '…'
   end
   return s
end

--- print_table(cols, rows, opt): rows of tables keyed by column name (or
--- arrays when opt.arrays); numbers right-aligned. opt.fmt formats numbers,
--- opt.maxw cuts cells, opt.out is the file (io.stdout), opt.indent a prefix.
local function print_table(cols, rows, opt)
   opt = opt or {}
   local out = opt.out or io.stdout
   local indent = opt.indent or ''
   local text, right, w = {}, {}, {}
   for c, name in ipairs(cols) do w[c] = width(name) end
   for r, row in ipairs(rows) do
      text[r] = {}
      for c, name in ipairs(cols) do
         local v = row[opt.arrays and c or name]
         if type(v) == 'number' then right[c] = true end
         local s = cell(v, opt.fmt, opt.maxw)
         text[r][c] = s
         w[c] = math.max(w[c], width(s))
      end
   end
   local function line(cells)
      local parts = {}
      for c = 1, #cols do parts[c] = pad(cells[c], w[c], right[c]) end
      out:write(indent, (table.concat(parts, '  '):gsub('%s+$', '')), '\n')
   end
   line(cols)
   local dashes = {}
   for c = 1, #cols do dashes[c] = ('-'):rep(w[c]) end
   line(dashes)
   for r = 1, #rows do line(text[r]) end
end
commands.print_table = print_table

---------------------------------------------------------------- config

--- flatten(value) -> {key = text}: nested objects become dotted keys; arrays
--- (and empty tables) stay JSON text.
local function flatten(v, prefix, out)
   out = out or {}
   if type(v) == 'table' then
      local is_obj = false
      for k in pairs(v) do
         if type(k) ~= 'number' then is_obj = true break end
      end
      if is_obj then
         for k, x in pairs(v) do
            flatten(x, prefix and (prefix .. '.' .. tostring(k)) or tostring(k), out)
         end
         return out
      end
      out[prefix or '(config)'] = json.encode(v)
   elseif type(v) == 'number' then
      out[prefix or '(config)'] = num(v)
   elseif v ~= nil then
      out[prefix or '(config)'] = tostring(v)
   end
   return out
end

local function decode_config(text)
   local ok, cfg = pcall(json.decode, text or '{}')
   return ok and type(cfg) == 'table' and cfg or {}
end

function commands.flatten_config(text)
   return flatten(decode_config(text))
end

local function sorted_keys(t)
   local keys = {}
   for k in pairs(t) do keys[#keys + 1] = k end
   table.sort(keys)
   return keys
end

---------------------------------------------------------------- runs

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

--- commands.runs{db=, status=, script=, since=, last=, rl=} -> rows, oldest
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

--- ddpm.runs{...}: list_runs for Lua, mistakes as ordinary Lua errors.
function commands.runs(opt)
   if opt ~= nil and type(opt) ~= 'table' then error('runs: expected an options table', 2) end
   local ok, rows = pcall(list_runs, opt)
   close_all()
   if not ok then error(is_user_error(rows) and ('runs: ' .. rows.msg) or rows, 2) end
   return rows
end

local cmd = {}

cmd.runs = {
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

---------------------------------------------------------------- show

local METRIC_SUMMARY_SQL = [[
SELECT n.name AS key, count(*) AS points, min(m.step) AS first_step, max(m.step) AS last_step,
       (SELECT f.value FROM metrics f WHERE f.run_id = m.run_id AND f.name_id = m.name_id
        ORDER BY f.step LIMIT 1) AS first,
       (SELECT f.value FROM metrics f WHERE f.run_id = m.run_id AND f.name_id = m.name_id
        ORDER BY f.step DESC LIMIT 1) AS last,
       min(m.value) AS min,
       (SELECT f.step FROM metrics f WHERE f.run_id = m.run_id AND f.name_id = m.name_id
        AND f.value IS NOT NULL ORDER BY f.value, f.step LIMIT 1) AS min_step,
       max(m.value) AS max, count(*) - count(m.value) AS nan
FROM metrics m JOIN metric_names n USING (name_id)
WHERE m.run_id = :run
GROUP BY m.name_id
ORDER BY key]]

--- commands.metric_summary(rl, run_id) -> rows {key, points, first_step,
--- last_step, first, last, min, min_step, max, nan}
function commands.metric_summary(rl, id)
   return query(rl, METRIC_SUMMARY_SQL, {run = id})
end

local function kv(out, key, value)
   if value == nil or value == '' then return end
   out:write(('%-12s %s\n'):format(key, visible(value)))
end

cmd.show = {
   usage = 'show RUN [--db PATH]',
   spec = {db = 'string'},
   run = function(o, pos)
      if #pos ~= 1 then fail('show takes one run (an id, a uuid or last), got %d arguments', #pos) end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local id = resolve(rl, pos[1], db)
      local r = get_run(rl, id)
      local out = io.stdout
      out:write(('run %d%s\n'):format(r.run_id, r.name and ('  ' .. visible(r.name)) or ''))
      kv(out, 'uuid', r.uuid)
      kv(out, 'status', r.status)
      kv(out, 'experiment', r.experiment)
      kv(out, 'script', r.script_path and (r.script_path .. '  (sha256 ' .. r.script_sha256:sub(1, 12) .. ')')
                       or '(no script: REPL or -e)')
      local ok, argv = pcall(json.decode, r.argv_json or '[]')
      if ok and type(argv) == 'table' and #argv > 0 then kv(out, 'argv', table.concat(argv, ' ')) end
      kv(out, 'seed', num(r.seed))
      if r.parent_run_id then kv(out, 'parent', 'run ' .. r.parent_run_id) end
      local stop = r.end_time or r.heartbeat
      kv(out, 'started', os.date('%Y-%m-%d %H:%M:%S', math.floor(r.start_time)))
      kv(out, 'duration', duration(stop and stop - r.start_time))
      kv(out, 'host', r.host and (r.host .. (r.pid and ('  pid ' .. num(r.pid)) or '')))
      if r.git_commit then
         kv(out, 'git', r.git_commit:sub(1, 12) .. (r.git_dirty == 1 and ' (dirty)' or ''))
      end
      local env = decode_config(r.env_json)
      kv(out, 'version', (r.version or '') .. (env.threads and ('  threads ' .. num(env.threads)) or ''))
      if env.binary_sha256 then kv(out, 'binary', 'sha256 ' .. env.binary_sha256:sub(1, 16)) end
      local kids = query(rl, 'SELECT run_id FROM runs WHERE parent_run_id = :id ORDER BY run_id', {id = id})
      if #kids > 0 then
         local ids = {}
         for i, k in ipairs(kids) do ids[i] = num(k.run_id) end
         kv(out, 'children', 'runs ' .. table.concat(ids, ', '))
      end
      if r.error_text and r.error_text ~= '' then
         out:write('\nerror\n')
         for line in (r.error_text .. '\n'):gmatch('([^\n]*)\n') do
            out:write('  ', visible(line, true), '\n')
         end
      end

      local cfg = commands.flatten_config(r.config_json)
      local keys = sorted_keys(cfg)
      out:write(('\nconfig (%d keys)\n'):format(#keys))
      if #keys > 0 then
         local rows = {}
         for i, k in ipairs(keys) do rows[i] = {key = k, value = cfg[k]} end
         print_table({'key', 'value'}, rows, {indent = '  ', maxw = 100})
      end

      local ms = commands.metric_summary(rl, id)
      out:write(('\nmetrics (%d)\n'):format(#ms))
      if #ms > 0 then
         local rows, any_nan = {}, false
         for i, m in ipairs(ms) do
            rows[i] = {metric = m.key, points = m.points,
                       steps = plot.is_per_t(m.key) and ('t ' .. num(m.first_step) .. '..' .. num(m.last_step))
                               or (num(m.first_step) .. '..' .. num(m.last_step)),
                       first = m.first or '-', last = m.last or '-', min = m.min or '-',
                       ['min at'] = m.min_step or '-', max = m.max or '-', nan = m.nan}
            any_nan = any_nan or m.nan > 0
         end
         local cols = {'metric', 'points', 'steps', 'first', 'last', 'min', 'min at', 'max'}
         if any_nan then cols[#cols + 1] = 'nan' end
         print_table(cols, rows, {indent = '  ', fmt = g6})
      end

      local arts = query(rl, 'SELECT step, kind, path FROM artifacts WHERE run_id = :id ' ..
                             'ORDER BY kind, step', {id = id})
      out:write(('\nartifacts (%d)\n'):format(#arts))
      if #arts > 0 then
         for _, a in ipairs(arts) do
            if not file_exists(a.path) then a.path = a.path .. '  (missing)' end
            a.step = a.step or '-'
         end
         print_table({'step', 'kind', 'path'}, arts, {indent = '  '})
      end

      local cks = query(rl, 'SELECT step, bytes, sha256, path FROM checkpoints WHERE run_id = :id ' ..
                            'ORDER BY step', {id = id})
      out:write(('\ncheckpoints (%d)\n'):format(#cks))
      if #cks > 0 then
         for _, c in ipairs(cks) do
            c.size = bytes(c.bytes)
            c.sha256 = c.sha256:sub(1, 12)
            if not file_exists(c.path) then c.path = c.path .. '  (deleted)' end
         end
         print_table({'step', 'size', 'sha256', 'path'}, cks, {indent = '  '})
      end

      local tags = query(rl, 'SELECT key, value FROM run_tags WHERE run_id = :id ORDER BY key', {id = id})
      if #tags > 0 then
         out:write(('\ntags (%d)\n'):format(#tags))
         print_table({'key', 'value'}, tags, {indent = '  '})
      end
   end,
}

---------------------------------------------------------------- compare

-- Up to n of the sorted steps, evenly spread, first and last kept.
local function thin(steps, n)
   if n <= 0 or #steps <= n then return steps end
   local out = {}
   for i = 0, n - 1 do
      out[#out + 1] = steps[1 + math.floor(i * (#steps - 1) / (n - 1) + 0.5)]
   end
   return out
end

local function metric_keys(rl, id)
   local rows = query(rl, 'SELECT DISTINCT key FROM metrics_v WHERE run_id = :id ORDER BY key', {id = id})
   local set, list = {}, {}
   for i, r in ipairs(rows) do set[r.key] = true; list[i] = r.key end
   return set, list
end

cmd.compare = {
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
      local heads = {}
      for i, r in ipairs(runs) do heads[i] = 'run ' .. r.run_id end
      local out = io.stdout

      -- the runs themselves
      local info = {}
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
      for _, f in ipairs(fields) do
         local row = {f[1]}
         for i, r in ipairs(runs) do row[i + 1] = f[2](r) end
         info[#info + 1] = row
      end
      local cols = {''}
      for i, h in ipairs(heads) do cols[i + 1] = h end
      print_table(cols, info, {arrays = true})

      -- config keys that differ
      local cfgs, union = {}, {}
      for i, r in ipairs(runs) do
         cfgs[i] = commands.flatten_config(r.config_json)
         for k in pairs(cfgs[i]) do union[k] = true end
      end
      local diff, same = {}, 0
      for _, k in ipairs(sorted_keys(union)) do
         local differs = false
         for i = 2, #runs do differs = differs or cfgs[i][k] ~= cfgs[1][k] end
         if differs or o.all then
            local row = {k}
            for i = 1, #runs do row[i + 1] = cfgs[i][k] or '(absent)' end
            diff[#diff + 1] = row
         end
         if not differs then same = same + 1 end
      end
      cols = {'config'}
      for i, h in ipairs(heads) do cols[i + 1] = h end
      out:write('\n')
      if #diff == 0 then
         out:write(('config: identical (%d keys)\n'):format(same))
      else
         if not o.all then
            out:write(('config: %d keys differ, %d equal (--all shows them)\n'):format(#diff, same))
         end
         print_table(cols, diff, {arrays = true, maxw = 60})
      end

      -- metrics: last values, then side by side at matching steps
      local sets, union_m = {}, {}
      for i, id in ipairs(ids) do
         local set, list = metric_keys(rl, id)
         sets[i] = set
         for _, k in ipairs(list) do union_m[k] = true end
      end
      local summary = {}
      for _, k in ipairs(sorted_keys(union_m)) do
         local row = {k}
         for i, id in ipairs(ids) do
            local v = query(rl, 'SELECT value, step FROM metrics_v WHERE run_id = :id AND key = :k ' ..
                                'ORDER BY step DESC LIMIT 1', {id = id, k = k})[1]
            row[i + 1] = v and (v.value or 0 / 0) or '-'
         end
         summary[#summary + 1] = row
      end
      if #summary > 0 then
         out:write('\n')
         cols = {'last value'}
         for i, h in ipairs(heads) do cols[i + 1] = h end
         print_table(cols, summary, {arrays = true, fmt = g6})
      end

      local metrics = {}
      if o.metric then
         for k in o.metric:gmatch('[^,%s]+') do metrics[#metrics + 1] = k end
         for _, k in ipairs(metrics) do
            if not union_m[k] then fail("no run of these has a metric '%s'", k) end
         end
      else
         local all = true
         for i = 1, #ids do all = all and sets[i].loss end
         if all then metrics = {'loss'} end
      end
      local nrows = o.rows or 12
      for _, k in ipairs(metrics) do
         local values, common = {}, nil
         for i, id in ipairs(ids) do
            local rows = query(rl, 'SELECT step, value FROM metrics_v WHERE run_id = :id AND key = :k',
                               {id = id, k = k})
            values[i] = {}
            local here = {}
            for _, r in ipairs(rows) do
               values[i][r.step] = r.value or 0 / 0
               here[r.step] = true
            end
            if not common then common = here
            else
               for s in pairs(common) do if not here[s] then common[s] = nil end end
            end
         end
         local steps = sorted_keys(common or {})
         out:write('\n')
         if #steps == 0 then
            out:write(("%s: no step logged by all runs\n"):format(visible(k)))
         else
            local shown = thin(steps, nrows)
            cols = {plot.is_per_t(k) and 't' or 'step'}
            for i, h in ipairs(heads) do cols[i + 1] = h .. ' ' .. k end
            if #ids == 2 then cols[#cols + 1] = 'difference' end
            local rows = {}
            for _, s in ipairs(shown) do
               local row = {s}
               for i = 1, #ids do row[i + 1] = values[i][s] end
               if #ids == 2 then row[4] = values[2][s] - values[1][s] end
               rows[#rows + 1] = row
            end
            out:write(('%s at %d of %d common steps (--rows N for more, 0 for all)\n')
                      :format(k, #shown, #steps))
            print_table(cols, rows, {arrays = true, fmt = g6})
         end
      end
   end,
}

---------------------------------------------------------------- plot

cmd.plot = {
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
      if not ok then fail('%s', (bare(err):gsub('^plot: ', ''))) end
      io.stdout:write(('wrote %s (%d curve%s, %dx%d)\n'):format(path, err, err == 1 and '' or 's', w, h))
   end,
}

---------------------------------------------------------------- sql

local function csv_cell(v)
   if v == nil then return '' end
   local s = type(v) == 'number' and num(v) or tostring(v)
   if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
   return s
end

cmd.sql = {
   usage = 'sql "SELECT ..." [--param name=value]... [--csv] [--width N] [--write] [--db PATH]',
   spec = {db = 'string', param = 'list', csv = 'flag', width = 'int', write = 'flag'},
   run = function(o, pos)
      if #pos ~= 1 then
         fail('sql takes one statement in quotes, e.g. ddpmlua sql "SELECT * FROM runs" (got %d arguments)', #pos)
      end
      local params
      for _, p in ipairs(o.param or {}) do
         local k, v = p:match('^:?([%w_]+)=(.*)$')
         if not k then fail("--param expects name=value, got '%s'", p) end
         params = params or {}
         params[k] = tonumber(v) or v
      end
      local rl = open_db(o.db, o.write)
      local ok, rows, cols = pcall(rl.query, rl, pos[1], params)
      if not ok then
         local msg = bare(rows):gsub('^runlog: ', ''):gsub('^query: ', '')
         if msg:find('is open read%-only and this statement would write') then
            fail('this statement would change %s: "%s"; the history is opened read-only ' ..
                 '(add --write to allow it)', o.db or 'runs.db', pos[1]:sub(1, 60))
         end
         local p = msg:match('^parameter [:$@]?([%w_]+) has no value')
         if p then msg = msg .. (' (give it with --param %s=VALUE)'):format(p) end
         fail('%s', msg)
      end
      if #cols == 0 then return end
      if o.csv then
         local line = {}
         for i, c in ipairs(cols) do line[i] = csv_cell(c) end
         io.stdout:write(table.concat(line, ','), '\n')
         for _, r in ipairs(rows) do
            for i, c in ipairs(cols) do line[i] = csv_cell(r[c]) end
            io.stdout:write(table.concat(line, ','), '\n')
         end
         return
      end
      -- the same column name twice (a join): rows hold one value per name
      print_table(cols, rows, {fmt = function(v)
         if v % 1 == 0 and math.abs(v) < 2^53 then return ('%d'):format(v) end
         return ('%.15g'):format(v)
      end, maxw = o.width or 60})
      if #rows == 0 then io.stdout:write('(no rows)\n') end
   end,
}

---------------------------------------------------------------- rerun

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_file(path)
   local f = io.open(path, 'rb')
   if not f then return nil end
   local s = f:read('*a')
   f:close()
   return s
end

local function write_file(path, text)
   local f, err = io.open(path, 'wb')
   if not f then fail('cannot write %s', bare(err)) end
   local ok, werr = f:write(text)
   if not ok then f:close(); fail('cannot write %s: %s', path, tostring(werr)) end
   local ok2, cerr = f:close()
   if not ok2 then fail('cannot write %s: %s', path, tostring(cerr)) end
end

-- This executable: /proc/<our pid>/exe, read through the shell (its parent).
local function self_exe()
   local p = io.popen('readlink /proc/$PPID/exe 2>/dev/null')
   local exe = p and p:read('*l')
   if p then p:close() end
   if exe and exe ~= '' then return exe end
   local a, i = rawget(_G, 'arg'), 0
   while a and a[i - 1] do i = i - 1 end
   return a and a[i] or 'ddpmlua'
end

-- The interpreter options, script path and arguments a run was started with.
local function split_argv(r)
   local ok, argv = pcall(json.decode, r.argv_json or '[]')
   if not ok or type(argv) ~= 'table' then argv = {} end
   local k
   for i = 2, #argv do
      if argv[i] == r.script_path then k = i break end
   end
   if not k then return {}, {} end
   local pre, post = {}, {}
   for i = 2, k - 1 do pre[#pre + 1] = argv[i] end
   for i = k + 1, #argv do post[#post + 1] = argv[i] end
   return pre, post
end

local function exit_code(st, how, code)
   if type(st) == 'number' then   -- Lua 5.1: the wait status
      if st % 256 == 0 then return math.floor(st / 256) end
      return 128 + st % 128
   end
   return how == 'exit' and code or 128 + (code or 0)
end

-- Per metric of the parent: how many values the child reproduced exactly.
local function compare_metrics(rl, parent, child)
   return query(rl, [[
SELECT n.name AS key, count(*) AS points,
       sum(c.run_id IS NOT NULL AND c.value IS p.value) AS same
FROM metrics p JOIN metric_names n USING (name_id)
LEFT JOIN metrics c ON c.run_id = :child AND c.name_id = p.name_id AND c.step = p.step
WHERE p.run_id = :parent
GROUP BY p.name_id ORDER BY key]], {parent = parent, child = child})
end
commands.compare_metrics = compare_metrics

cmd.rerun = {
   usage = 'rerun RUN [--threads N] [--dry-run] [--db PATH]',
   spec = {db = 'string', threads = 'int', dry_run = 'flag'},
   run = function(o, pos)
      if #pos ~= 1 then fail('rerun takes one run, got %d arguments', #pos) end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local id = resolve(rl, pos[1], db)
      local r = get_run(rl, id)
      if not r.script_path or r.script_text == '' then
         fail('run %d has no script to re-run (it was started from the REPL or -e)', id)
      end
      local pre, post = split_argv(r)
      -- The script as it ran: the file itself when unchanged (same path in
      -- arg[0]), else the stored text in a temporary directory.
      local script, tmpdir = r.script_path, nil
      if read_file(script) ~= r.script_text then
         tmpdir = os.tmpname()
         os.remove(tmpdir)
         if not os.execute('mkdir -p ' .. shell_quote(tmpdir) .. ' 2>/dev/null') then
            fail('cannot make a temporary directory %s', tmpdir)
         end
         script = tmpdir .. '/' .. file_name(r.script_path, 'script.lua')
         write_file(script, r.script_text)
      end
      local env = decode_config(r.env_json)
      local threads = o.threads or env.threads
      if o.threads == 0 then fail('--threads must be at least 1') end
      local words = {'DDPMLUA_PARENT_RUN=' .. shell_quote(r.uuid), 'DDPMLUA_DB=' .. shell_quote(db)}
      if threads then words[#words + 1] = 'DDPMLUA_NUM_THREADS=' .. math.floor(threads) end
      words[#words + 1] = shell_quote(self_exe())
      for _, a in ipairs(pre) do words[#words + 1] = shell_quote(a) end
      words[#words + 1] = shell_quote(script)
      for _, a in ipairs(post) do words[#words + 1] = shell_quote(a) end
      local command = table.concat(words, ' ')
      if o.dry_run then
         if tmpdir then
            io.stderr:write(('rerun: %s is missing here or differs from the stored script; its ' ..
                             'stored text would run from a temporary copy\n'):format(r.script_path))
            os.execute('rm -rf ' .. shell_quote(tmpdir))
         end
         io.stdout:write(command, '\n')
         return
      end
      if env.binary_sha256 then
         local ok, here = pcall(core.sha256_file, self_exe())
         if ok and here ~= env.binary_sha256 then
            io.stderr:write(('rerun: note: run %d was made by another build of ddpmlua (sha256 %s, this ' ..
                             'one %s); metrics may differ in the last bits\n'):format(id,
                             env.binary_sha256:sub(1, 12), here:sub(1, 12)))
         end
      end
      local before = query(rl, 'SELECT coalesce(max(run_id), 0) AS n FROM runs')[1].n
      io.stderr:write(('rerun: run %d (%s), seed %s, %s thread%s\n'):format(id, visible(basename(r.script_path)),
         num(r.seed), threads and num(threads) or 'default', threads == 1 and '' or 's'))
      io.stdout:flush()
      io.stderr:flush()
      local code = exit_code(os.execute(command))
      if tmpdir then os.execute('rm -rf ' .. shell_quote(tmpdir)) end
      local kids = query(rl, 'SELECT run_id, status, seed FROM runs WHERE parent_run_id = :id AND ' ..
                             'run_id > :before ORDER BY run_id', {id = id, before = before})
      if #kids == 0 then
         fail('the script %s (exit status %d) but recorded no run linked to run %d in %s ' ..
              '(does its command line name another database?)',
              code == 0 and 'ran' or 'failed', code, id, db)
      end
      for _, k in ipairs(kids) do
         io.stdout:write(('run %d: re-run of run %d, %s\n'):format(k.run_id, id, k.status))
         if k.seed ~= r.seed then
            io.stdout:write(('  seed %s differs from the parent\'s %s\n'):format(num(k.seed), num(r.seed)))
         end
         local same, total, differ = 0, 0, {}
         for _, m in ipairs(compare_metrics(rl, id, k.run_id)) do
            same, total = same + m.same, total + m.points
            if m.same < m.points then differ[#differ + 1] = ('%s (%d of %d)'):format(m.key, m.same, m.points) end
         end
         if total > 0 then
            io.stdout:write(('  metrics: %d of %d values identical to run %d%s\n'):format(same, total, id,
               #differ > 0 and ('; differ: ' .. table.concat(differ, ', ')) or ' (bit for bit)'))
         end
      end
      if code ~= 0 then fail('the re-run failed (exit status %d)', code) end
   end,
}

---------------------------------------------------------------- export

local function copy_file(from, to)
   local fi = io.open(from, 'rb')
   if not fi then return false, 'cannot read ' .. from end
   local fo, err = io.open(to, 'wb')
   if not fo then fi:close(); return false, bare(err) end
   while true do
      local chunk = fi:read(1048576)
      if not chunk then break end
      local ok, werr = fo:write(chunk)
      if not ok then fi:close(); fo:close(); return false, 'cannot write ' .. to .. ': ' .. tostring(werr) end
   end
   fi:close()
   local ok, cerr = fo:close()
   if not ok then return false, 'cannot write ' .. to .. ': ' .. tostring(cerr) end
   return true
end

local function is_dir(path)
   local st = os.execute('test -d ' .. shell_quote(path))
   return st == 0 or st == true
end

cmd.export = {
   usage = 'export RUN DIR [--db PATH]',
   spec = {db = 'string'},
   run = function(o, pos)
      if #pos ~= 2 then fail('export takes a run and a directory, got %d arguments', #pos) end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local id = resolve(rl, pos[1], db)
      local dir = pos[2]
      local r = get_run(rl, id)
      if not r.script_path or r.script_text == '' then
         fail('run %d has no script to export (it was started from the REPL or -e)', id)
      end
      if file_exists(dir) and not is_dir(dir) then fail("'%s' exists and is not a directory", dir) end
      if not is_dir(dir) then
         os.execute('mkdir -p ' .. shell_quote(dir) .. ' 2>/dev/null')
         if not is_dir(dir) then fail("cannot make the directory '%s'", dir) end
      end
      local script = file_name(r.script_path, 'script.lua')
      if script == 'config.json' or script == 'run.json' or script == 'README.md' then
         script = 'script-' .. script
      end
      write_file(dir .. '/' .. script, r.script_text)
      write_file(dir .. '/config.json', r.config_json .. '\n')
      local ck = query(rl, 'SELECT step, path, sha256, bytes FROM checkpoints WHERE run_id = :id ' ..
                           'ORDER BY step DESC LIMIT 1', {id = id})[1]
      local ck_name, ck_note
      if ck then
         ck_name = file_name(ck.path, 'checkpoint.safetensors')
         local ok, err = copy_file(ck.path, dir .. '/' .. ck_name)
         if not ok then
            ck_note = visible(('the last checkpoint (step %d, %s) could not be copied: %s'):format(ck.step,
                              ck.path, err))
            io.stderr:write('export: warning: ', ck_note, '\n')
            ck_name = nil
         end
      end
      -- the checkpoint the run resumed from goes into the bundle too, and the
      -- command names the bundled copy
      local parent = query(rl, "SELECT value FROM run_tags WHERE run_id = :id AND key = 'resumed_from'",
                           {id = id})[1]
      local parent_name
      if parent then
         parent_name = 'resumed-from-' .. file_name(parent.value, 'checkpoint.safetensors')
         local ok, err = copy_file(parent.value, dir .. '/' .. parent_name)
         if not ok then
            io.stderr:write('export: warning: the checkpoint it resumed from could not be copied: ',
                            visible(err), '\n')
            parent_name = nil
         end
      end
      local adir = dir:sub(1, 1) == '/' and dir or (core.cwd() .. '/' .. dir:gsub('^%./', ''))
      local pre, post = split_argv(r)
      local env = decode_config(r.env_json)
      local words = {}
      if env.threads then words[#words + 1] = 'DDPMLUA_NUM_THREADS=' .. num(env.threads) end
      words[#words + 1] = 'ddpmlua'
      for _, a in ipairs(pre) do words[#words + 1] = shell_quote(a) end
      local spath = adir .. '/' .. script
      words[#words + 1] = spath:match('^[%w_./=:,+-]+$') and spath or shell_quote(spath)
      for _, a in ipairs(post) do
         if parent_name then   -- --resume=PATH or a bare PATH: the bundled copy
            local k, v = a:match('^(%-%-[%w_]+=)(.*)$')
            if v == parent.value then a = k .. adir .. '/' .. parent_name
            elseif a == parent.value then a = adir .. '/' .. parent_name end
         end
         words[#words + 1] = a:match('^[%w_./=:,+-]+$') and a or shell_quote(a)
      end
      local rerun = table.concat(words, ' ')
      local meta = {run_id = r.run_id, uuid = r.uuid, name = r.name, experiment = r.experiment,
                    status = r.status, seed = r.seed, script = script, script_path = r.script_path,
                    script_sha256 = r.script_sha256, config_sha256 = r.config_sha256,
                    argv = json.decode(r.argv_json or '[]'), git_commit = r.git_commit,
                    git_dirty = r.git_commit and r.git_dirty == 1, host = r.host, version = r.version,
                    env = env, start_time = r.start_time, end_time = r.end_time,
                    checkpoint = ck_name and {file = ck_name, step = ck.step, sha256 = ck.sha256,
                                              bytes = ck.bytes} or nil}
      write_file(dir .. '/run.json', json.encode(meta) .. '\n')
      local lines = {
         ('# Run %d%s, exported by ddpmlua'):format(r.run_id, r.name and (' (' .. visible(r.name) .. ')') or ''),
         '',
         'Re-run it (from any folder; same script, arguments, seed and thread count):',
         '',
         '    ' .. rerun,
         '',
         'Paths among the arguments (data files) are as they were given to the original run.',
         '',
         ('- `%s`: the script, exactly as it ran (sha256 %s)'):format(script, r.script_sha256),
         '- `config.json`: its configuration (canonical JSON)',
      }
      if ck_name then
         lines[#lines + 1] = ('- `%s`: the last checkpoint (step %d; model, EMA under "ema.", Adam); ' ..
            'resume with ddpm.train{..., resume = \'%s\'} or load the EMA with ' ..
            'm:load(\'%s\', {prefix = \'ema.\', strict = false})'):format(ck_name, ck.step, ck_name, ck_name)
      elseif ck_note then
         lines[#lines + 1] = '- no checkpoint: ' .. ck_note
      else
         lines[#lines + 1] = '- no checkpoint: the run saved none'
      end
      if parent_name then
         lines[#lines + 1] = ('- `%s`: the checkpoint the run resumed from (%s); the command above ' ..
            'resumes from this copy'):format(parent_name, parent.value)
      end
      lines[#lines + 1] = '- `run.json`: the run record (uuid, seed, argv, git commit, host, versions)'
      lines[#lines + 1] = ''
      lines[#lines + 1] = ('Original run: %s, seed %s, status %s, started %s on %s%s.'):format(
         visible(r.uuid), num(r.seed), visible(r.status), os.date('%Y-%m-%d %H:%M', math.floor(r.start_time)),
         visible(r.host or '?'), r.git_commit and (', git ' .. visible(r.git_commit:sub(1, 12)) ..
         (r.git_dirty == 1 and ' (dirty)' or '')) or '')
      for i, l in ipairs(lines) do lines[i] = visible(l, true) end   -- stored text stays text
      write_file(dir .. '/README.md', table.concat(lines, '\n') .. '\n')
      io.stdout:write(('exported run %d to %s: %s, config.json, %srun.json, README.md\n'):format(
         id, dir, script, (ck_name and (ck_name .. ', ') or '') .. (parent_name and (parent_name .. ', ') or '')))
      io.stdout:write('re-run: ', rerun, '\n')
   end,
}

---------------------------------------------------------------- report

cmd.report = {
   usage = 'report RUN [-o report.html] [--smooth N] [--log] [--db PATH]',
   spec = {db = 'string', output = 'string', smooth = 'int', log = 'flag'},
   short = {o = 'output'},
   run = function(o, pos)
      if #pos ~= 1 then fail('report takes one run, got %d arguments', #pos) end
      local db = o.db or 'runs.db'
      local rl = open_db(db)
      local id = resolve(rl, pos[1], db)
      local path = o.output or ('report-' .. id .. '.html')
      local ok, info = pcall(require('ddpm.report').write, {rl = rl, run = id, out = path,
                                                             smooth = o.smooth, logy = o.log})
      if not ok then
         if is_user_error(info) then error(info, 0) end
         fail('%s', bare(info))
      end
      io.stdout:write(('wrote %s (%s, %d chart%s, %d image%s)\n'):format(path, bytes(info.bytes),
         info.charts, info.charts == 1 and '' or 's', info.images, info.images == 1 and '' or 's'))
   end,
}

-- FID and IS of a folder of PNGs or a run's samples (lib/ddpm/cmd_fid.lua)
cmd.fid = require('ddpm.cmd_fid').command{fail = fail, open_db = open_db, resolve = resolve,
                                          query = query}

---------------------------------------------------------------- main

local ORDER = {'runs', 'show', 'compare', 'plot', 'sql', 'rerun', 'export', 'report', 'fid'}

local function usage_all()
   local lines = {'commands over the run history (runs.db, or --db PATH):'}
   for _, name in ipairs(ORDER) do lines[#lines + 1] = '  ddpmlua ' .. cmd[name].usage end
   return table.concat(lines, '\n')
end

-- What `ddpmlua help COMMAND` says besides the usage line.
commands.doc = {
   runs = '  The runs, oldest first: id, name, script, status, steps, last loss, NLL, FD-LeNet, start, duration.',
   show = '  One run in full: config, status and error, first/last/min of each metric, checkpoints and files.',
   compare = '  Runs side by side: the config keys that differ and each metric at common steps.',
   plot = '  Metric curves of one or more runs as a PNG (-o FILE.png).',
   sql = '  A read-only SQL query over runs.db (--write to allow changes); --csv for CSV.',
   rerun = '  Runs a run\'s script again with its arguments, seed and thread count, into the same\n' ..
           '  database, and compares the new metrics with the old ones.',
   export = '  Writes DIR with the script, config.json, run.json, the last checkpoint and the one it\n' ..
            '  resumed from, and a README with the command that reproduces the run from any folder.',
   report = '  A self-contained HTML page of one run: config, curves, sample grids.',
   fid = '  FID and Inception Score of a folder of PNGs or a run\'s samples against reference statistics.',
}

--- commands.main(name, args): `ddpmlua <name> args...` (bindings/main.c).
function commands.main(name, args)
   if name == 'help' then   -- ddpmlua help [command]
      local which = args and args[1]
      if which == nil then
         io.stdout:write(usage_all(), '\n  ddpmlua help COMMAND\n')
         return
      end
      if not cmd[which] then
         io.stderr:write(("ddpmlua help: unknown command '%s'\n%s\n"):format(tostring(which), usage_all()))
         os.exit(1)
      end
      io.stdout:write('usage: ddpmlua ', cmd[which].usage, '\n')
      local doc = (commands.doc or {})[which]
      if doc then io.stdout:write(doc, '\n') end
      return
   end
   local c = cmd[name]
   if not c then
      io.stderr:write(('ddpmlua: unknown command \'%s\'\n%s\n'):format(tostring(name), usage_all()))
      os.exit(1)
   end
   local list = {}
   for i = 1, #(args or {}) do list[i] = args[i] end
   for _, a in ipairs(list) do
      if a == '-h' or a == '--help' then
         io.stdout:write('usage: ddpmlua ', c.usage, '\n')
         return
      end
      if a == '--' then break end
   end
   local trace
   local ok, err = xpcall(function()
      local o, pos = parse_args(name, list, c.spec, c.short)
      c.run(o, pos)
   end, function(e)
      if not is_user_error(e) then trace = debug.traceback(tostring(e), 2) end
      return e
   end)
   close_all()
   io.stdout:flush()
   if ok then return end
   if is_user_error(err) then
      io.stderr:write(('ddpmlua %s: %s\n'):format(name, err.msg))
   elseif tostring(err):match('interrupted$') then
      io.stderr:write(('ddpmlua %s: interrupted\n'):format(name))
   else
      io.stderr:write(('ddpmlua %s: internal error: %s\n'):format(name, trace or tostring(err)))
   end
   io.stderr:flush()
   os.exit(1)
end

commands.usage = usage_all

return commands
