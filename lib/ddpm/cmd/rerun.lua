--[[
ddpm.cmd.rerun — `ddpmlua rerun RUN`: the stored script again, as a child run, compared with its parent.
]]
local core = require 'ddpm.core'
local common = require 'ddpm.cmd.common'
local failure = common.failure
local util = require 'ddpm.util'
local fail, query, open_db, resolve = common.fail, common.query, common.open_db, common.resolve
local get_run = common.get_run
local visible, num, decode_config = common.visible, common.num, common.decode_config
local file_name, split_argv = common.file_name, common.split_argv
local write_file = common.write_file
local basename, shell_quote, read_file = util.basename, util.shell_quote, util.read_file

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

-- The script as it ran: the file itself when unchanged (same path in
-- arg[0]), else the stored text in a temporary directory. -> path, tmpdir
local function script_to_run(r)
   if read_file(r.script_path) == r.script_text then return r.script_path, nil end
   local tmpdir = os.tmpname()
   os.remove(tmpdir)
   if not os.execute('mkdir -p ' .. shell_quote(tmpdir) .. ' 2>/dev/null') then
      failure('cannot make a temporary directory %s', tmpdir)
   end
   local script = tmpdir .. '/' .. file_name(r.script_path, 'script.lua')
   write_file(script, r.script_text)
   return script, tmpdir
end

-- The shell command: this ddpmlua, the run's interpreter options, script and
-- arguments, with the parent run, the database and the thread count set.
local function command_line(r, db, script, threads)
   local pre, post = split_argv(r)
   local words = {'DDPMLUA_PARENT_RUN=' .. shell_quote(r.uuid), 'DDPMLUA_DB=' .. shell_quote(db)}
   if threads then words[#words + 1] = 'DDPMLUA_NUM_THREADS=' .. math.floor(threads) end
   words[#words + 1] = shell_quote(self_exe())
   for _, a in ipairs(pre) do words[#words + 1] = shell_quote(a) end
   words[#words + 1] = shell_quote(script)
   for _, a in ipairs(post) do words[#words + 1] = shell_quote(a) end
   return table.concat(words, ' ')
end

local function note_other_build(id, env)
   if not env.binary_sha256 then return end
   local ok, here = pcall(core.sha256_file, self_exe())
   if ok and here ~= env.binary_sha256 then
      io.stderr:write(('rerun: note: run %d was made by another build of ddpmlua (sha256 %s, this ' ..
                       'one %s); metrics may differ in the last bits\n'):format(id,
                       env.binary_sha256:sub(1, 12), here:sub(1, 12)))
   end
end

-- Each child run of run id after run_id before: its status, its seed when it
-- differs, and how many of the parent's metric values it reproduced. -> how many.
local function report_children(rl, r, id, before)
   local kids = query(rl, 'SELECT run_id, status, seed FROM runs WHERE parent_run_id = :id AND ' ..
                          'run_id > :before ORDER BY run_id', {id = id, before = before})
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
   return #kids
end

local command = {
   doc = '  Runs a run\'s script again with its arguments, seed and thread count, into the same\n' ..
        '  database, and compares the new metrics with the old ones.',
   usage = 'rerun RUN [--threads N] [--dry-run] [--db PATH]',
   spec = {db = 'string', threads = 'int', dry_run = 'flag'},
   run = function(o, pos)
      if #pos ~= 1 then fail('rerun takes one run, got %d arguments', #pos) end
      local rl, id, db = common.open_run(o, pos[1])
      local r = get_run(rl, id)
      if not r.script_path or r.script_text == '' then
         fail('run %d has no script to re-run (it was started from the REPL or -e)', id)
      end
      if o.threads == 0 then fail('--threads must be at least 1') end
      local env = decode_config(r.env_json)
      local threads = o.threads or env.threads
      local script, tmpdir = script_to_run(r)
      local command = command_line(r, db, script, threads)
      if o.dry_run then
         if tmpdir then
            io.stderr:write(('rerun: %s is missing here or differs from the stored script; its ' ..
                             'stored text would run from a temporary copy\n'):format(r.script_path))
            os.execute('rm -rf ' .. shell_quote(tmpdir))
         end
         io.stdout:write(command, '\n')
         return
      end
      note_other_build(id, env)
      local before = query(rl, 'SELECT coalesce(max(run_id), 0) AS n FROM runs')[1].n
      io.stderr:write(('rerun: run %d (%s), seed %s, %s thread%s\n'):format(id, visible(basename(r.script_path)),
         num(r.seed), threads and num(threads) or 'default', threads == 1 and '' or 's'))
      io.stdout:flush()
      io.stderr:flush()
      local code = exit_code(os.execute(command))
      if tmpdir then os.execute('rm -rf ' .. shell_quote(tmpdir)) end
      if report_children(rl, r, id, before) == 0 then
         failure('the script %s (exit status %d) but recorded no run linked to run %d in %s ' ..
                 '(does its command line name another database?)',
                 code == 0 and 'ran' or 'failed', code, id, db)
      end
      if code ~= 0 then failure('the re-run failed (exit status %d)', code) end
   end,
}

return command
