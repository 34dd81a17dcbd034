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

Every command takes --db PATH (default runs.db), -h and --debug. RUN is a
run id, a uuid (or a unique prefix of one, 6+ hex digits) or 'last'. The
database must exist (no command creates one). Options and arguments are read
by ddpm.cli's parser (cli.read), as a script's flags are.

Exit status: a usage error (an unknown command or option, a bad value, a
missing argument, no such run, metric or database, malformed SQL) is one
line on stderr and status 2, without a traceback unless --debug is given,
as for a script's flags. Status 1 is kept for a valid command that could
not be carried out (a file that cannot be written, a re-run or an FID
computation that failed, Ctrl-C) and for internal errors (with their
traceback): scripts and CI can tell "you called it wrong" from "it broke".

This file is the dispatcher: each command is a module lib/ddpm/cmd/<name>.lua
returning {usage =, doc =, spec =, short =, run = function(opts, args)};
what they share (errors, the database, tables) is ddpm.cmd.common.

From Lua the run list is ddpm.runs{db=, status=, script=, since=, last=}
(commands.runs), rows as tables, oldest first.
]]
local common = require 'ddpm.cmd.common'

local commands = {}

local ORDER = {'runs', 'show', 'compare', 'plot', 'sql', 'rerun', 'export', 'report', 'fid'}
local KNOWN = {}
for _, name in ipairs(ORDER) do KNOWN[name] = true end

-- The module of a command, or nil for a name that is none.
local function command(name)
   return KNOWN[name] and require('ddpm.cmd.' .. name) or nil
end

--- ddpm.runs{...}: the run list for Lua, mistakes as ordinary Lua errors.
function commands.runs(opt)
   if opt ~= nil and type(opt) ~= 'table' then error('runs: expected an options table', 2) end
   local ok, rows = pcall(command('runs').list, opt)
   common.close_all()
   if not ok then error(common.is_user_error(rows) and ('runs: ' .. rows.message) or rows, 2) end
   return rows
end

local EXIT_STATUS = [[
exit status: 0 when done; 2 for a usage error (an unknown command or option, a bad
  value, a missing argument, no such run, metric or database), one line without a
  traceback (--debug adds one); 1 when a valid command could not be carried out
  (a file that cannot be written, a re-run or FID computation that failed, Ctrl-C).]]

local function usage_all()
   local lines = {'commands over the run history (runs.db, or --db PATH):'}
   for _, name in ipairs(ORDER) do lines[#lines + 1] = '  ddpmlua ' .. command(name).usage end
   return table.concat(lines, '\n')
end

-- One line on stderr (the usage after it for an unknown command), then exit.
local function quit(status, msg, with_usage)
   io.stdout:flush()
   io.stderr:write(msg, '\n', with_usage and (usage_all() .. '\n') or '')
   io.stderr:flush()
   os.exit(status)
end

--- commands.main(name, args): `ddpmlua <name> args...` (bindings/main.c).
function commands.main(name, args)
   if name == 'help' then   -- ddpmlua help [command]
      local which = args and args[1]
      if which == nil then
         io.stdout:write(usage_all(), '\n  ddpmlua help COMMAND\n', EXIT_STATUS, '\n')
         return
      end
      local c = command(which)
      if not c then quit(2, ("ddpmlua help: unknown command '%s'"):format(tostring(which)), true) end
      io.stdout:write('usage: ddpmlua ', c.usage, '\n')
      if c.doc then io.stdout:write(c.doc, '\n') end
      return
   end
   local c = command(name)
   if not c then quit(2, ('ddpmlua: unknown command \'%s\''):format(tostring(name)), true) end
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
      local o, pos = common.parse_args(name, list, c.spec, c.short)
      c.run(o, pos)
   end, function(e)
      if not common.is_user_error(e) then trace = debug.traceback(tostring(e), 2) end
      return e
   end)
   common.close_all()
   if ok then
      io.stdout:flush()
      return
   end
   if common.is_user_error(err) then
      quit(err.exit_status, ('ddpmlua %s: %s'):format(name, err.message))
   elseif tostring(err):match('interrupted$') then
      quit(1, ('ddpmlua %s: interrupted'):format(name))
   end
   quit(1, ('ddpmlua %s: internal error: %s'):format(name, trace or tostring(err)))
end

commands.usage = usage_all

return commands
