--[[
ddpm.util — the small helpers the library shares: reading files, testing
paths, quoting for the shell, and numbers and durations as text. Each lives
here once; nothing here knows about tensors, models or runs.
]]
local util = {}

--- util.read_file(path [, limit]) -> the bytes, or nil and 'missing',
--- 'unreadable' or (past limit bytes) 'too large'.
function util.read_file(path, limit)
   local f = io.open(path, 'rb')
   if not f then return nil, 'missing' end
   local s = f:read(limit and (limit + 1) or '*a')
   f:close()
   if not s then return nil, 'unreadable' end
   if limit and #s > limit then return nil, 'too large' end
   return s
end

--- util.exists(path) -> whether a file (or folder) there can be opened.
function util.exists(path)
   local f = io.open(path, 'rb')
   if not f then return false end
   f:close()
   return true
end

--- util.shell_quote(s) -> s in single quotes, safe as one word for sh.
function util.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- util.is_dir(path) -> whether path is a folder.
function util.is_dir(path)
   local st = os.execute('test -d ' .. util.shell_quote(path))
   return st == 0 or st == true
end

--- util.basename(path) -> the last part of a path (nil stays nil).
function util.basename(p) return p and (p:match('([^/]+)$') or p) end

--- util.sorted_keys(t) -> the keys of t, sorted.
function util.sorted_keys(t)
   local keys = {}
   for k in pairs(t) do keys[#keys + 1] = k end
   table.sort(keys)
   return keys
end

--- util.check_keys(t, known, where, level): an error "<where>: unknown
--- option 'k' (known: a, b, ...)" for a key of t that is not in the set
--- known; level as error() would take it in the caller.
function util.check_keys(t, known, where, level)
   for k in pairs(t) do
      if not known[k] then
         error(("%s: unknown option '%s' (known: %s)"):format(where, tostring(k),
               table.concat(util.sorted_keys(known), ', ')), level + 1)
      end
   end
end

--- util.num(v) -> the shortest text that reads back as the same double (up
--- to 17 digits); integers without a decimal point, nan, inf, -inf.
function util.num(v)
   if v ~= v then return 'nan' end
   if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
   if v % 1 == 0 and math.abs(v) < 2^53 then return ('%d'):format(v) end
   for p = 6, 17 do
      local s = ('%.' .. p .. 'g'):format(v)
      if tonumber(s) == v then return s end
   end
   return ('%.17g'):format(v)
end

--- util.duration(seconds [, words]) -> '12.5s', '3m07s', '2h05m' ('-' for
--- nil); with words: '12.5 s', '3 min 07 s', '2 h 05 min'.
function util.duration(s, words)
   if not s then return '-' end
   local u = words and {' s', ' min ', ' s', ' h ', ' min'} or {'s', 'm', 's', 'h', 'm'}
   if s < 60 then return ('%.1f'):format(s) .. u[1] end
   if s < 3600 then
      return ('%d%s%02d%s'):format(math.floor(s / 60), u[2], math.floor(s % 60), u[3])
   end
   return ('%d%s%02d%s'):format(math.floor(s / 3600), u[4], math.floor(s % 3600 / 60), u[5])
end

return util
