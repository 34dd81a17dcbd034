--[[
ddpm.json — canonical JSON for configs and run metadata.

encode: keys sorted, no whitespace, integers without a decimal point, other
numbers as %.17g, so equal configs give equal text (and equal hashes).
Arrays are tables with keys 1..n only. Functions and userdata are written as
strings describing them (a config may hold a Lua function, e.g. a schedule).
decode: the subset ddpmlua writes (objects, arrays, strings, numbers, true,
false, null).
]]
local json = {}

local MAX_DEPTH = 200   -- nesting of { and [ that decode accepts

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}

local function encode_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return escapes[c] or ('\\u%04x'):format(c:byte())
   end) .. '"'
end

local function is_array(t)
   local n = 0
   for k in pairs(t) do
      if type(k) ~= 'number' or k < 1 or k % 1 ~= 0 then return false end
      n = n + 1
   end
   for i = 1, n do if t[i] == nil then return false end end
   return true, n
end

local function encode(v, seen)
   local tv = type(v)
   if tv == 'nil' then return 'null'
   elseif tv == 'boolean' then return tostring(v)
   elseif tv == 'number' then
      if v ~= v or v == math.huge or v == -math.huge then return 'null' end
      if v % 1 == 0 and math.abs(v) < 2^53 then return ('%d'):format(v) end
      return ('%.17g'):format(v)
   elseif tv == 'string' then return encode_string(v)
   elseif tv == 'table' then
      if seen[v] then error('json: cannot encode a table that contains itself', 0) end
      seen[v] = true
      local out = {}
      local arr, n = is_array(v)
      if arr and n > 0 then
         for i = 1, n do out[i] = encode(v[i], seen) end
         seen[v] = nil
         return '[' .. table.concat(out, ',') .. ']'
      end
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      for i, k in ipairs(keys) do
         local val = v[k]
         if val == nil then val = v[tonumber(k)] end
         out[i] = encode_string(k) .. ':' .. encode(val, seen)
      end
      seen[v] = nil
      return '{' .. table.concat(out, ',') .. '}'
   else
      return encode_string('<' .. tv .. '>')
   end
end

function json.encode(v) return encode(v, {}) end

function json.decode(s)
   if type(s) ~= 'string' then error('json.decode: expected a string, got ' .. type(s), 2) end
   local pos = 1
   local function err(what) error(('json: %s at byte %d'):format(what, pos), 0) end
   local function ws() pos = s:find('[^ \t\r\n]', pos) or #s + 1 end
   local function hex4(at)
      local h = s:sub(at, at + 3)
      if not h:match('^%x%x%x%x$') then pos = at; err('bad \\u escape (4 hex digits expected)') end
      return tonumber(h, 16)
   end
   local function utf8(code)
      if code < 0x80 then return string.char(code)
      elseif code < 0x800 then return string.char(0xC0 + math.floor(code / 64), 0x80 + code % 64)
      elseif code < 0x10000 then
         return string.char(0xE0 + math.floor(code / 4096), 0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
      end
      return string.char(0xF0 + math.floor(code / 262144), 0x80 + math.floor(code / 4096) % 64,
                         0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
   end
   local depth = 0
   local function str()
      local out, i = {}, pos + 1
      while true do
         local c = s:sub(i, i)
         if c == '' then err('unterminated string') end
         if c == '"' then pos = i + 1; return table.concat(out) end
         if c == '\\' then
            local e = s:sub(i + 1, i + 1)
            local map = {n = '\n', t = '\t', r = '\r', b = '\b', f = '\f', ['"'] = '"', ['\\'] = '\\', ['/'] = '/'}
            if map[e] then out[#out + 1] = map[e]; i = i + 2
            elseif e == 'u' then
               local code = hex4(i + 2)
               i = i + 6
               if code >= 0xD800 and code < 0xDC00 then        -- a UTF-16 pair (RFC 8259 §7)
                  local lo = s:sub(i, i + 1) == '\\u' and hex4(i + 2)
                  if not lo or lo < 0xDC00 or lo >= 0xE000 then pos = i; err('unpaired surrogate in \\u escape') end
                  code = 0x10000 + (code - 0xD800) * 1024 + (lo - 0xDC00)
                  i = i + 6
               elseif code >= 0xDC00 and code < 0xE000 then
                  pos = i - 6; err('unpaired surrogate in \\u escape')
               end
               out[#out + 1] = utf8(code)
            else err('bad escape') end
         else out[#out + 1] = c; i = i + 1 end
      end
   end
   local value
   local function nest(v)   -- leaves one level of { or [ with its value
      depth = depth - 1
      return v
   end
   function value()
      ws()
      local c = s:sub(pos, pos)
      if (c == '{' or c == '[') and depth >= MAX_DEPTH then
         err(('nesting deeper than %d'):format(MAX_DEPTH))
      end
      if c == '{' then
         local t = {}
         depth = depth + 1
         pos = pos + 1; ws()
         if s:sub(pos, pos) == '}' then pos = pos + 1; return nest(t) end
         while true do
            ws()
            if s:sub(pos, pos) ~= '"' then err('expected a key') end
            local k = str(); ws()
            if s:sub(pos, pos) ~= ':' then err("expected ':'") end
            pos = pos + 1
            t[k] = value(); ws()
            local d = s:sub(pos, pos); pos = pos + 1
            if d == '}' then return nest(t) end
            if d ~= ',' then err("expected ',' or '}'") end
         end
      elseif c == '[' then
         local t, n = {}, 0
         depth = depth + 1
         pos = pos + 1; ws()
         if s:sub(pos, pos) == ']' then pos = pos + 1; return nest(t) end
         while true do
            n = n + 1
            t[n] = value(); ws()
            local d = s:sub(pos, pos); pos = pos + 1
            if d == ']' then return nest(t) end
            if d ~= ',' then err("expected ',' or ']'") end
         end
      elseif c == '"' then return str()
      elseif s:sub(pos, pos + 3) == 'true' then pos = pos + 4; return true
      elseif s:sub(pos, pos + 4) == 'false' then pos = pos + 5; return false
      elseif s:sub(pos, pos + 3) == 'null' then pos = pos + 4; return nil
      else
         local num = s:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
         if not num or num == '' then err('unexpected character') end
         local x = tonumber(num)
         -- out of float64 range: encode would write null, so it could not round-trip
         if not x or x == math.huge or x == -math.huge then err('bad number') end
         pos = pos + #num
         return x
      end
   end
   local v = value()
   ws()
   if pos <= #s then err('trailing characters') end
   return v
end

return json
