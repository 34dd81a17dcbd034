--[[
ddpm.commands — `ddpmlua <command> ...` over the run history (runs.db):
runs, show, compare, plot, sql, rerun, export, report. Each takes --db PATH.
]]
local commands = {}

function commands.main(name, args)
   io.stderr:write(('ddpmlua %s: not implemented yet\n'):format(name))
   os.exit(2)
end

return commands
