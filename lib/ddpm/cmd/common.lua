--[[
ddpm.cmd.common — what the history commands (lib/ddpm/cmd/*.lua) share:
user errors, opening runs.db read-only and resolving RUN, the option parser,
and text tables with numbers formatted and stored text made safe for the
terminal. Not here: the commands themselves, or anything that writes to the
history.
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'
local util = require 'ddpm.util'
local cli = require 'ddpm.cli'

local common = {}

local file_exists = util.exists

---------------------------------------------------------------- errors

-- Mistakes in how a command was called (an unknown option, no such run, no
-- such database, malformed SQL) are usage errors: one line, exit status 2.
-- failure is for a valid command that could not be carried out (a file that
-- cannot be written, a re-run that failed): one line, exit status 1. Both
-- are ddpm.cli's error objects ({message =, exit_status =}).
local fail = cli.usage_error
common.fail = fail
common.failure = cli.failure

local is_user_error = cli.is_usage_error
common.is_user_error = is_user_error

-- A Lua error message without the "file:line: " of where it was raised.
local function bare(msg)
   msg = tostring(msg)
   return (msg:gsub('^[^\n:]*:%d+: ', ''))
end
common.bare = bare

---------------------------------------------------------------- the database

local opened = {}   -- run logs opened by this command, closed on exit

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
   if not ok then common.failure('%s', (bare(rl):gsub('^runlog_open: ', ''))) end
   opened[#opened + 1] = rl
   return rl
end
common.open_db = open_db

function common.close_all()
   for i = #opened, 1, -1 do
      pcall(opened[i].close, opened[i])
      opened[i] = nil
   end
end

-- rl:query; an error in our own SQL is a failure (exit status 1).
local function query(rl, sql, params)
   local ok, rows, cols = pcall(rl.query, rl, sql, params)
   if not ok then common.failure('%s', (bare(rows):gsub('^runlog: ', ''):gsub('^query: ', ''))) end
   return rows, cols
end
common.query = query

--- The run_id of a reference: an id, 'last', or a uuid (prefix of at least
--- 6 hex digits). A number is a run id first; one that is no run id but
--- could be a uuid prefix (uuids are hex, so some begin with 6+ decimal
--- digits) is looked up as one.
local function resolve(rl, ref, db)
   ref = tostring(ref)
   local rows
   local function by_uuid()
      local r = query(rl, "SELECT run_id FROM runs WHERE uuid LIKE :p || '%' LIMIT 2", {p = ref:lower()})
      if #r > 1 then fail("'%s' matches several runs' uuids; give more digits", ref) end
      return r
   end
   if ref:match('^%d+$') then
      rows = query(rl, 'SELECT run_id FROM runs WHERE run_id = :id', {id = tonumber(ref)})
      if #rows == 0 and #ref >= 6 then rows = by_uuid() end
   elseif ref == 'last' then
      rows = query(rl, 'SELECT max(run_id) AS run_id FROM runs')
      if not rows[1].run_id then fail("no runs in '%s' yet", db) end
   elseif ref:match('^%x+$') and #ref >= 6 then
      rows = by_uuid()
   else
      fail("'%s' is not a run (expected a run id, a uuid or 'last')", ref)
   end
   if #rows == 0 then fail("no run %s in '%s'", ref, db) end
   return rows[1].run_id
end
common.resolve = resolve

--- The history a command reads (o.db or runs.db, opened read-only) and the
--- run_id of ref in it: rl, id, db.
function common.open_run(o, ref)
   local db = o.db or 'runs.db'
   local rl = open_db(db)
   return rl, resolve(rl, ref, db), db
end

function common.get_run(rl, id)
   return query(rl, 'SELECT * FROM runs WHERE run_id = :id', {id = id})[1]
end

---------------------------------------------------------------- options

-- A command's option types as ddpm.cli specs.
local TYPES = {string = {type = 'string'}, int = {type = 'number', int = true, min = 0},
               flag = {type = 'boolean'}, list = {type = 'string', many = true}}

--- parse_args(cmd, args, spec, short) -> options, positional arguments, read
--- by ddpm.cli's parser. spec: {name = 'string' | 'int' (non-negative) |
--- 'flag' | 'list' (repeatable)}; short: {o = 'output'}.
function common.parse_args(cmd, args, spec, short)
   local options, names = {}, {}
   for k, ty in pairs(spec) do
      options[k] = TYPES[ty]
      names[#names + 1] = '--' .. k
   end
   table.sort(names)
   local opts, pos = cli.read(args, options, {short = short, positional = true,
                                             hint = cmd .. ' takes ' .. table.concat(names, ', ')})
   return opts, pos
end

---------------------------------------------------------------- formatting

-- Shortest text that reads back as the same double (up to 17 digits).
local num = util.num
common.num = num

local function g6(v)
   if v == nil then return '-' end
   if type(v) ~= 'number' then return tostring(v) end
   if v ~= v then return 'nan' end
   if v % 1 == 0 and math.abs(v) < 1e15 then return ('%d'):format(v) end
   return ('%.6g'):format(v)
end
common.g6 = g6

function common.when(t)
   return t and os.date('%Y-%m-%d %H:%M', math.floor(t)) or '-'
end

function common.bytes(n)
   if not n then return '-' end
   if n < 1024 then return n .. ' B' end
   if n < 1024 ^ 2 then return ('%.1f KiB'):format(n / 1024) end
   if n < 1024 ^ 3 then return ('%.1f MiB'):format(n / 1024 ^ 2) end
   return ('%.2f GiB'):format(n / 1024 ^ 3)
end

-- The last part of a stored path as a file name inside a folder of ours:
-- fallback where it is empty, '.' or '..' or holds a control character (a
-- run's path comes from a database that anyone may have written).
function common.file_name(p, fallback)
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
common.visible = visible

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
common.print_table = print_table

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

--- decode_config(json_text) -> the table, or {} when it is not a JSON object.
local function decode_config(text)
   local ok, cfg = pcall(json.decode, text or '{}')
   return ok and type(cfg) == 'table' and cfg or {}
end
common.decode_config = decode_config

function common.flatten_config(text)
   return flatten(decode_config(text))
end

---------------------------------------------------------------- queries and files

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

--- common.metric_summary(rl, run_id) -> rows {key, points, first_step,
--- last_step, first, last, min, min_step, max, nan}
function common.metric_summary(rl, id)
   return query(rl, METRIC_SUMMARY_SQL, {run = id})
end

--- metric_keys(rl, run_id) -> the set and the sorted list of its metric names.
function common.metric_keys(rl, id)
   local rows = query(rl, 'SELECT DISTINCT key FROM metrics_v WHERE run_id = :id ORDER BY key', {id = id})
   local set, list = {}, {}
   for i, r in ipairs(rows) do set[r.key] = true; list[i] = r.key end
   return set, list
end

-- Writes text to path; an error names the file (exit status 1).
function common.write_file(path, text)
   local f, err = io.open(path, 'wb')
   if not f then common.failure('cannot write %s', bare(err)) end
   local ok, werr = f:write(text)
   if not ok then f:close(); common.failure('cannot write %s: %s', path, tostring(werr)) end
   local ok2, cerr = f:close()
   if not ok2 then common.failure('cannot write %s: %s', path, tostring(cerr)) end
end

-- The interpreter options, script path and arguments a run was started with.
function common.split_argv(r)
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

return common
