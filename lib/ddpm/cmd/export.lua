--[[
ddpm.cmd.export — `ddpmlua export RUN DIR`: a folder that reproduces the run from anywhere.
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'
local common = require 'ddpm.cmd.common'
local failure = common.failure
local util = require 'ddpm.util'
local fail, query, open_db, resolve = common.fail, common.query, common.open_db, common.resolve
local get_run = common.get_run
local visible, num, bare = common.visible, common.num, common.bare
local decode_config = common.decode_config
local file_name, split_argv, write_file = common.file_name, common.split_argv, common.write_file
local file_exists, shell_quote, is_dir = util.exists, util.shell_quote, util.is_dir

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

-- DIR, made when missing; a file of that name is a usage error.
local function make_dir(dir)
   if file_exists(dir) and not is_dir(dir) then fail("'%s' exists and is not a directory", dir) end
   if not is_dir(dir) then
      os.execute('mkdir -p ' .. shell_quote(dir) .. ' 2>/dev/null')
      if not is_dir(dir) then failure("cannot make the directory '%s'", dir) end
   end
end

-- Copies the run's last checkpoint and the one it resumed from into the
-- bundle b: b.ck, b.ck_name (nil when not copied), b.ck_note (why), b.parent
-- (the resumed_from tag) and b.parent_name.
local function copy_checkpoints(rl, id, b)
   b.ck = query(rl, 'SELECT step, path, sha256, bytes FROM checkpoints WHERE run_id = :id ' ..
                    'ORDER BY step DESC LIMIT 1', {id = id})[1]
   local ck = b.ck
   if ck then
      b.ck_name = file_name(ck.path, 'checkpoint.safetensors')
      local ok, err = copy_file(ck.path, b.dir .. '/' .. b.ck_name)
      if not ok then
         b.ck_note = visible(('the last checkpoint (step %d, %s) could not be copied: %s'):format(ck.step,
                             ck.path, err))
         io.stderr:write('export: warning: ', b.ck_note, '\n')
         b.ck_name = nil
      end
   end
   -- the checkpoint the run resumed from goes into the bundle too, and the
   -- command names the bundled copy
   b.parent = query(rl, "SELECT value FROM run_tags WHERE run_id = :id AND key = 'resumed_from'",
                    {id = id})[1]
   if b.parent then
      b.parent_name = 'resumed-from-' .. file_name(b.parent.value, 'checkpoint.safetensors')
      local ok, err = copy_file(b.parent.value, b.dir .. '/' .. b.parent_name)
      if not ok then
         io.stderr:write('export: warning: the checkpoint it resumed from could not be copied: ',
                         visible(err), '\n')
         b.parent_name = nil
      end
   end
end

-- The shell command that re-runs the bundled script from any folder.
local function rerun_command(r, b)
   local dir = b.dir
   local adir = dir:sub(1, 1) == '/' and dir or (core.cwd() .. '/' .. dir:gsub('^%./', ''))
   local pre, post = split_argv(r)
   local words = {}
   if b.env.threads then words[#words + 1] = 'DDPMLUA_NUM_THREADS=' .. num(b.env.threads) end
   words[#words + 1] = 'ddpmlua'
   for _, a in ipairs(pre) do words[#words + 1] = shell_quote(a) end
   local spath = adir .. '/' .. b.script
   words[#words + 1] = spath:match('^[%w_./=:,+-]+$') and spath or shell_quote(spath)
   for _, a in ipairs(post) do
      if b.parent_name then   -- --resume=PATH or a bare PATH: the bundled copy
         local k, v = a:match('^(%-%-[%w_]+=)(.*)$')
         if v == b.parent.value then a = k .. adir .. '/' .. b.parent_name
         elseif a == b.parent.value then a = adir .. '/' .. b.parent_name end
      end
      words[#words + 1] = a:match('^[%w_./=:,+-]+$') and a or shell_quote(a)
   end
   return table.concat(words, ' ')
end

-- run.json: the run record.
local function run_json(r, b)
   local ck = b.ck
   local meta = {run_id = r.run_id, uuid = r.uuid, name = r.name, experiment = r.experiment,
                 status = r.status, seed = r.seed, script = b.script, script_path = r.script_path,
                 script_sha256 = r.script_sha256, config_sha256 = r.config_sha256,
                 argv = json.decode(r.argv_json or '[]'), git_commit = r.git_commit,
                 git_dirty = r.git_commit and r.git_dirty == 1, host = r.host, version = r.version,
                 env = b.env, start_time = r.start_time, end_time = r.end_time,
                 checkpoint = b.ck_name and {file = b.ck_name, step = ck.step, sha256 = ck.sha256,
                                             bytes = ck.bytes} or nil}
   return json.encode(meta) .. '\n'
end

-- README.md: the command and what each file is.
local function readme(r, b)
   local script, ck_name = b.script, b.ck_name
   local lines = {
      ('# Run %d%s, exported by ddpmlua'):format(r.run_id, r.name and (' (' .. visible(r.name) .. ')') or ''),
      '',
      'Re-run it (from any folder; same script, arguments, seed and thread count):',
      '',
      '    ' .. b.rerun,
      '',
      'Paths among the arguments (data files) are as they were given to the original run.',
      '',
      ('- `%s`: the script, exactly as it ran (sha256 %s)'):format(script, r.script_sha256),
      '- `config.json`: its configuration (canonical JSON)',
   }
   if ck_name then
      lines[#lines + 1] = ('- `%s`: the last checkpoint (step %d; model, EMA under "ema.", Adam); ' ..
         'resume with ddpm.train{..., resume = \'%s\'} or load the EMA with ' ..
         'm:load(\'%s\', {prefix = \'ema.\', strict = false})'):format(ck_name, b.ck.step, ck_name, ck_name)
   elseif b.ck_note then
      lines[#lines + 1] = '- no checkpoint: ' .. b.ck_note
   else
      lines[#lines + 1] = '- no checkpoint: the run saved none'
   end
   if b.parent_name then
      lines[#lines + 1] = ('- `%s`: the checkpoint the run resumed from (%s); the command above ' ..
         'resumes from this copy'):format(b.parent_name, b.parent.value)
   end
   lines[#lines + 1] = '- `run.json`: the run record (uuid, seed, argv, git commit, host, versions)'
   lines[#lines + 1] = ''
   lines[#lines + 1] = ('Original run: %s, seed %s, status %s, started %s on %s%s.'):format(
      visible(r.uuid), num(r.seed), visible(r.status), os.date('%Y-%m-%d %H:%M', math.floor(r.start_time)),
      visible(r.host or '?'), r.git_commit and (', git ' .. visible(r.git_commit:sub(1, 12)) ..
      (r.git_dirty == 1 and ' (dirty)' or '')) or '')
   for i, l in ipairs(lines) do lines[i] = visible(l, true) end   -- stored text stays text
   return table.concat(lines, '\n') .. '\n'
end

local command = {
   doc = '  Writes DIR with the script, config.json, run.json, the last checkpoint and the one it\n' ..
         '  resumed from, and a README with the command that reproduces the run from any folder.',
   usage = 'export RUN DIR [--db PATH]',
   spec = {db = 'string'},
   run = function(o, pos)
      if #pos ~= 2 then fail('export takes a run and a directory, got %d arguments', #pos) end
      local rl, id, db = common.open_run(o, pos[1])
      local dir = pos[2]
      local r = get_run(rl, id)
      if not r.script_path or r.script_text == '' then
         fail('run %d has no script to export (it was started from the REPL or -e)', id)
      end
      make_dir(dir)
      local b = {dir = dir, script = file_name(r.script_path, 'script.lua'), env = decode_config(r.env_json)}
      if b.script == 'config.json' or b.script == 'run.json' or b.script == 'README.md' then
         b.script = 'script-' .. b.script
      end
      write_file(dir .. '/' .. b.script, r.script_text)
      write_file(dir .. '/config.json', r.config_json .. '\n')
      copy_checkpoints(rl, id, b)
      b.rerun = rerun_command(r, b)
      write_file(dir .. '/run.json', run_json(r, b))
      write_file(dir .. '/README.md', readme(r, b))
      io.stdout:write(('exported run %d to %s: %s, config.json, %srun.json, README.md\n'):format(
         id, dir, b.script, (b.ck_name and (b.ck_name .. ', ') or '') ..
         (b.parent_name and (b.parent_name .. ', ') or '')))
      io.stdout:write('re-run: ', b.rerun, '\n')
   end,
}

return command
