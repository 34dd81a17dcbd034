--[[
ddpm.cmd.show — `ddpmlua show RUN`: one run in full.
]]
local json = require 'ddpm.json'
local plot = require 'ddpm.plot'
local common = require 'ddpm.cmd.common'
local util = require 'ddpm.util'
local fail, query, open_db, resolve = common.fail, common.query, common.open_db, common.resolve
local get_run = common.get_run
local visible, print_table, num, g6 = common.visible, common.print_table, common.num, common.g6
local bytes = common.bytes
local decode_config = common.decode_config
local duration, sorted_keys, file_exists = util.duration, util.sorted_keys, util.exists

local function kv(out, key, value)
   if value == nil or value == '' then return end
   out:write(('%-12s %s\n'):format(key, visible(value)))
end

-- The run's record: uuid, status, script, argv, seed, times, host, git,
-- version, children and the error.
local function record(out, rl, r)
   local id = r.run_id
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
end

local function config(out, r)
   local cfg = common.flatten_config(r.config_json)
   local keys = sorted_keys(cfg)
   out:write(('\nconfig (%d keys)\n'):format(#keys))
   if #keys > 0 then
      local rows = {}
      for i, k in ipairs(keys) do rows[i] = {key = k, value = cfg[k]} end
      print_table({'key', 'value'}, rows, {indent = '  ', maxw = 100})
   end
end

-- First, last, min (and where), max of each metric.
local function metrics(out, rl, id)
   local ms = common.metric_summary(rl, id)
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
end

-- Artifacts and checkpoints, each marked when its file is gone.
local function files(out, rl, id)
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
end

local function tags(out, rl, id)
   local tags = query(rl, 'SELECT key, value FROM run_tags WHERE run_id = :id ORDER BY key', {id = id})
   if #tags > 0 then
      out:write(('\ntags (%d)\n'):format(#tags))
      print_table({'key', 'value'}, tags, {indent = '  '})
   end
end

local command = {
   doc = '  One run in full: config, status and error, first/last/min of each metric, checkpoints and files.',
   usage = 'show RUN [--db PATH]',
   spec = {db = 'string'},
   run = function(o, pos)
      if #pos ~= 1 then fail('show takes one run (an id, a uuid or last), got %d arguments', #pos) end
      local rl, id, db = common.open_run(o, pos[1])
      local r = get_run(rl, id)
      local out = io.stdout
      record(out, rl, r)
      config(out, r)
      metrics(out, rl, id)
      files(out, rl, id)
      tags(out, rl, id)
   end,
}

return command
