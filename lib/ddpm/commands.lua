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
   if not ok then error(common.is_user_error(rows) and ('runs: ' .. rows.msg) or rows, 2) end
   return rows
end

local function usage_all()
   local lines = {'commands over the run history (runs.db, or --db PATH):'}
   for _, name in ipairs(ORDER) do lines[#lines + 1] = '  ddpmlua ' .. command(name).usage end
   return table.concat(lines, '\n')
end

--- commands.main(name, args): `ddpmlua <name> args...` (bindings/main.c).
function commands.main(name, args)
   if name == 'help' then   -- ddpmlua help [command]
      local which = args and args[1]
      if which == nil then
         io.stdout:write(usage_all(), '\n  ddpmlua help COMMAND\n')
         return
      end
      local c = command(which)
      if not c then
         io.stderr:write(("ddpmlua help: unknown command '%s'\n%s\n"):format(tostring(which), usage_all()))
         os.exit(1)
      end
      io.stdout:write('usage: ddpmlua ', c.usage, '\n')
      if c.doc then io.stdout:write(c.doc, '\n') end
      return
   end
   local c = command(name)
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
      local o, pos = common.parse_args(name, list, c.spec, c.short)
      c.run(o, pos)
   end, function(e)
      if not common.is_user_error(e) then trace = debug.traceback(tostring(e), 2) end
      return e
   end)
   common.close_all()
   io.stdout:flush()
   if ok then return end
   if common.is_user_error(err) then
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
