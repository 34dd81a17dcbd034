--[[
ddpm.cli — command-line overrides for an experiment's config table.

   local cfg = ddpm.cli.parse(arg, {steps = 1000, lr = 2e-4, ch_mult = {1, 2, 2}})
   -- ddpmlua exp.lua --steps=50 --lr 1e-3 --ch_mult=1,2 --flip

Each option must name a key of the defaults; its value is converted to the
default's type (numbers, booleans: true/false/1/0 or a bare flag, lists of
numbers: comma-separated, strings). --help prints the defaults.
]]
local cli = {}

local function convert(key, default, text)
   local ty = type(default)
   if ty == 'number' then
      local v = tonumber(text)
      if not v then error(("option --%s expects a number, got '%s'"):format(key, text), 0) end
      return v
   elseif ty == 'boolean' then
      if text == nil or text == 'true' or text == '1' or text == 'yes' then return true end
      if text == 'false' or text == '0' or text == 'no' then return false end
      error(("option --%s expects true or false, got '%s'"):format(key, text), 0)
   elseif ty == 'table' then
      local out = {}
      if text ~= '' then
         for item in (text .. ','):gmatch('([^,]*),') do
            local v = tonumber(item)
            if not v then error(("option --%s expects numbers separated by commas, got '%s'"):format(key, text), 0) end
            out[#out + 1] = v
         end
      end
      return out
   end
   return text
end

local function usage(defaults)
   local keys = {}
   for k in pairs(defaults) do keys[#keys + 1] = k end
   table.sort(keys)
   local lines = {'options (defaults):'}
   for _, k in ipairs(keys) do
      local v = defaults[k]
      if type(v) == 'table' then v = table.concat(v, ',') end
      lines[#lines + 1] = ('  --%-20s %s'):format(k, tostring(v))
   end
   return table.concat(lines, '\n')
end

--- cli.parse(args, defaults) -> a new table: defaults overridden by args.
function cli.parse(args, defaults)
   local cfg = {}
   for k, v in pairs(defaults) do
      if type(v) == 'table' then
         local c = {}
         for i, x in ipairs(v) do c[i] = x end
         cfg[k] = c
      else cfg[k] = v end
   end
   args = args or {}
   local i = 1
   while i <= #args do
      local a = args[i]
      if a == '--help' or a == '-h' then
         io.stdout:write(usage(defaults), '\n')
         os.exit(0)
      end
      local key, val = a:match('^%-%-([%w_]+)=(.*)$')
      if not key then
         key = a:match('^%-%-([%w_]+)$')
         if not key then error(("unexpected argument '%s' (options look like --key=value)"):format(a), 0) end
         if type(defaults[key]) ~= 'boolean' then
            i = i + 1
            val = args[i]
            if val == nil then error(('option --%s needs a value'):format(key), 0) end
         end
      end
      if defaults[key] == nil then
         error(("unknown option --%s\n%s"):format(key, usage(defaults)), 0)
      end
      cfg[key] = convert(key, defaults[key], val)
      i = i + 1
   end
   return cfg
end

return cli
