-- ddpm.repl — the read-eval-print loop of ddpmlua (started by `ddpmlua` alone
-- or `ddpmlua -i script.lua`).
--
-- Each chunk is first tried as `return <chunk>`, so `1+1` prints 2; a chunk
-- that ends early ('<eof>' syntax errors) keeps reading with the `   >> `
-- prompt; a `local` at the start of a chunk is dropped when the rest still
-- compiles, so `local x = 3` is visible to the next line. Every returned
-- value is printed: strings quoted, tables one level deep with sorted keys,
-- anything with __tostring through tostring. Errors print their message and
-- traceback and the loop goes on; Ctrl-C drops the line or stops the chunk;
-- Ctrl-D (end of input) leaves.
--
-- What it is not (yet): completion, timing, help, colour. Line reading,
-- history and Ctrl-C live in C (`ddpm.host`, bindings/main.c); with stdin
-- not a terminal, lines are read plainly with no prompt, so transcripts can
-- be piped in.

local host = require 'ddpm.host'

local M = {}

M.prompt = 'ddpm> '
M.prompt2 = '   >> '
M.max_items = 50        -- entries shown of a table before "..."

local function quote(s)
   return (string.format('%q', s):gsub('\\\n', '\\n'))
end

local function safe_tostring(v)
   local ok, s = pcall(tostring, v)
   if ok and type(s) == 'string' then return s end
   return '<tostring failed: ' .. tostring(s) .. '>'
end

local function has_tostring(v)
   local mt = getmetatable(v)
   return type(mt) == 'table' and rawget(mt, '__tostring') ~= nil
end

-- One value inside a table: no recursion.
local function brief(v)
   local tv = type(v)
   if tv == 'string' then return quote(v) end
   if tv == 'table' and not has_tostring(v) then
      return next(v) == nil and '{}' or '{...}'
   end
   return safe_tostring(v)
end

local type_rank = {number = 1, string = 2, boolean = 3}

local function key_less(a, b)
   local ra, rb = type_rank[type(a)] or 4, type_rank[type(b)] or 4
   if ra ~= rb then return ra < rb end
   if ra == 1 or ra == 2 then return a < b end
   return safe_tostring(a) < safe_tostring(b)
end

local function is_name(k)
   return type(k) == 'string' and k:match('^[%a_][%w_]*$') ~= nil
end

-- A table, one level deep: array part in order, then the other keys sorted.
local function format_table(t)
   local items, n = {}, #t
   for i = 1, n do items[#items + 1] = brief(t[i]) end
   local keys = {}
   for k in pairs(t) do
      if not (type(k) == 'number' and k >= 1 and k <= n and k % 1 == 0) then
         keys[#keys + 1] = k
      end
   end
   table.sort(keys, key_less)
   for _, k in ipairs(keys) do
      local ks = is_name(k) and k or '[' .. brief(k) .. ']'
      items[#items + 1] = ks .. ' = ' .. brief(t[k])
   end
   local total = #items
   if total > M.max_items then
      for i = M.max_items + 1, total do items[i] = nil end
      items[#items + 1] = string.format('... (%d more)', total - M.max_items)
   end
   local line = '{' .. table.concat(items, ', ') .. '}'
   if #line <= 80 then return line end
   return '{\n   ' .. table.concat(items, ',\n   ') .. '\n}'
end

-- The text the REPL prints for one value.
function M.format(v)
   local tv = type(v)
   if tv == 'string' then return quote(v) end
   if tv == 'table' and not has_tostring(v) then return format_table(v) end
   return safe_tostring(v)
end

-- f or nil, err, incomplete: compiles one chunk of REPL input. The
-- expression form passes its values through `select` (given as the chunk's
-- vararg) rather than returning them directly, so that `error("x")` is not a
-- tail call and keeps its position ("stdin:1: x") and the chunk's frame.
function M.compile(src)
   src = src:gsub('^%s*=', '', 1)   -- lua 5.1's `=expr` habit
   local f = loadstring('local __ddpm_select = ...; return __ddpm_select(1, ' .. src .. '\n)', '=stdin')
   if f then return f end
   local err
   f, err = loadstring(src, '=stdin')
   if not f then
      -- incomplete as a statement (`for i = 1, 3 do`) or as an expression (`{`)
      local _, rerr = loadstring('return ' .. src, '=stdin')
      return nil, err, err:sub(-7) == "'<eof>'" or rerr:sub(-7) == "'<eof>'"
   end
   local rest = src:match('^%s*local%s+(.*)$')
   if rest then f = loadstring(rest, '=stdin') or f end
   return f
end

local function show(ok, ...)
   local n = select('#', ...)
   if not ok then
      io.stdout:flush()
      io.stderr:write(tostring((...)), '\n')
      io.stderr:flush()
      return
   end
   if n == 0 then return end
   local out = {}
   for i = 1, n do out[i] = M.format((select(i, ...))) end
   io.stdout:write(table.concat(out, '\t'), '\n')
   io.stdout:flush()
end

-- Runs until end of input.
function M.run()
   local tty = host.interactive()
   if tty then
      io.stdout:write(host.version, ' -- Ctrl-D leaves, Ctrl-C stops a chunk\n')
   end
   local buf, last_hist
   while true do
      local line, why = host.readline(buf and M.prompt2 or M.prompt)
      if line == nil then
         if why == 'interrupt' then
            if tty then io.stdout:write('\n') end
            buf = nil
         else
            if tty then io.stdout:write('\n') end
            if buf then
               local _, err = M.compile(buf)
               show(false, err)
            end
            return
         end
      else
         if tty and line:match('%S') and line ~= last_hist then
            host.add_history(line)
            last_hist = line
         end
         buf = buf and (buf .. '\n' .. line) or line
         if not buf:match('%S') then
            buf = nil
         else
            local f, err, incomplete = M.compile(buf)
            if f then
               buf = nil
               show(host.docall(f, select))
            elseif not incomplete then
               buf = nil
               show(false, err)
            end
         end
      end
   end
end

return M
