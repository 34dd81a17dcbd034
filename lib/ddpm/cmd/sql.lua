--[[
ddpm.cmd.sql — `ddpmlua sql "SELECT ..."`: a read-only query as a table or CSV.
]]
local common = require 'ddpm.cmd.common'
local fail, query, open_db = common.fail, common.query, common.open_db
local print_table, num = common.print_table, common.num
local bare = common.bare

local function csv_cell(v)
   if v == nil then return '' end
   local s = type(v) == 'number' and num(v) or tostring(v)
   if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
   return s
end

local command = {
   doc = '  A read-only SQL query over runs.db (--write to allow changes); --csv for CSV.',
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

return command
