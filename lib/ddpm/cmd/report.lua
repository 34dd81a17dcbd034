--[[
ddpm.cmd.report — `ddpmlua report RUN`: one self-contained HTML page (ddpm.report).
]]
local common = require 'ddpm.cmd.common'
local failure = common.failure
local fail, open_db, resolve, bytes = common.fail, common.open_db, common.resolve, common.bytes
local bare = common.bare
local is_user_error = common.is_user_error

local command = {
   doc = '  A self-contained HTML page of one run: config, curves, sample grids.',
   usage = 'report RUN [-o report.html] [--smooth N] [--log] [--db PATH]',
   spec = {db = 'string', output = 'string', smooth = 'int', log = 'flag'},
   short = {o = 'output'},
   run = function(o, pos)
      if #pos ~= 1 then fail('report takes one run, got %d arguments', #pos) end
      local rl, id, db = common.open_run(o, pos[1])
      local path = o.output or ('report-' .. id .. '.html')
      local ok, info = pcall(require('ddpm.report').write, {rl = rl, run = id, out = path,
                                                             smooth = o.smooth, logy = o.log})
      if not ok then
         if is_user_error(info) then error(info, 0) end
         failure('%s', bare(info))
      end
      io.stdout:write(('wrote %s (%s, %d chart%s, %d image%s)\n'):format(path, bytes(info.bytes),
         info.charts, info.charts == 1 and '' or 's', info.images, info.images == 1 and '' or 's'))
   end,
}

return command
