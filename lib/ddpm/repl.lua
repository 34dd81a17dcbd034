-- ddpm.repl — the read-eval-print loop of ddpmlua (started by `ddpmlua` alone
-- or `ddpmlua -i script.lua`), after torch's trepl.
--
--   ddpm> x = ddpm.randn(2, 3)
--   ddpm> x                        -- values print without `=`
--   ddpm> for i = 1, 3 do          -- an incomplete chunk keeps reading (`>>`)
--   ddpm> ?ddpm.randn              -- documentation (lib/ddpm/help.lua); `?` lists topics
--   ddpm> :time on                 -- print each line's wall time, `(0.84 s)`
--   ddpm> ddpm.show(x0)            -- an image batch in the terminal (lib/ddpm/show.lua)
--
-- Each chunk is first tried as `return <chunk>`, so `1+1` prints 2; a trailing
-- `;` keeps the value from printing. A chunk that ends early ('<eof>' syntax
-- errors) keeps reading; a `local` at the start of a chunk is dropped when the
-- rest still compiles, so `local x = 3` is visible to the next line. Results
-- go through M.format: tensors as their shape, min/max/mean and a corner of
-- values; tables nested to M.max_depth levels, keys sorted, cycles marked;
-- objects through __tostring. The first result is kept in _LAST. Errors print
-- their message and traceback and the loop goes on.
--
-- Ctrl-C drops the line being typed, or stops the running chunk: host.docall
-- arms a hook that raises "interrupted" and sets the flag C kernels poll (the
-- U-Net checks it between layers). LuaJIT never runs hooks inside compiled
-- traces, so chunks typed here run with the JIT off (jit.off(f, true), which
-- covers the functions they define): a `while true do end` then stops at the
-- first Ctrl-C. Interpreted Lua is ~10x slower on tight loops, which the C
-- kernels do not notice. With `:jit on` chunks compile, and Ctrl-C still
-- stops them: M.compile inserts a check of the interrupt flag at the top of
-- every loop body, function body and label of the chunk (`do`, `repeat`,
-- `function (...)`, `::name::`; on the same line, so line numbers stay), a
-- call through the FFI to ddpm_interrupted() that compiles into the trace
-- as one load and compare. Code outside the chunk (library functions) is
-- compiled unchanged; its loops are short or C kernels that poll.
--
-- TAB completes globals, fields and methods (through __index tables, and the
-- __methods table of userdata such as ddpm.Tensor), with `.`, `:` or `(`
-- appended as trepl does; inside a string it completes file names. Line
-- reading, history (~/.ddpmlua_history, DDPMLUA_HISTORY) and the C side of
-- completion and Ctrl-C live in bindings/main.c (`ddpm.host`). With stdin
-- not a terminal, lines are read plainly with no prompt, so transcripts can
-- be piped in.
--
-- What it is not: a debugger, or a sandbox.

local host = require 'ddpm.host'
local core = require 'ddpm.core'

local M = {}

M.prompt = 'ddpm> '
M.prompt2 = '   >> '
M.max_items = 50        -- entries shown of a table before "..."
M.max_total = 200       -- entries shown of one value, all nested tables together
M.max_depth = 2         -- nested tables printed below the top one
M.width = 80            -- a table fitting in this many columns prints on one line
M.max_string = 200      -- longer strings inside tables are cut
M.time = (os.getenv('DDPMLUA_REPL_TIME') or '') ~= '' and os.getenv('DDPMLUA_REPL_TIME') ~= '0'
M.jit = false           -- REPL chunks run interpreted, so Ctrl-C always stops them

---------------------------------------------------------------- printing

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

local is_tensor = core.is_tensor

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch('%a+') do keywords[w] = true end

local function is_name(k)
   return type(k) == 'string' and k:match('^[%a_][%w_]*$') ~= nil and not keywords[k]
end

local type_rank = {number = 1, string = 2, boolean = 3}

local function key_less(a, b)
   local ra, rb = type_rank[type(a)] or 4, type_rank[type(b)] or 4
   if ra ~= rb then return ra < rb end
   if ra == 1 or ra == 2 then return a < b end
   return safe_tostring(a) < safe_tostring(b)
end

local function tensor_shape(t)
   if t:is_freed() then return '[ddpm.Tensor (freed)]' end
   local s = t:size()
   return '[ddpm.Tensor f32 ' .. (#s > 0 and table.concat(s, 'x') or 'scalar') .. ']'
end

-- A tensor element as the REPL prints it: 4 significant digits (util.num is
-- the exact, round-trip form).
local function num4(v)
   if v ~= v then return 'nan' end
   if v == math.huge then return 'inf' end
   if v == -math.huge then return '-inf' end
   return (string.format('%.4g', v))
end

-- Right-aligned rows of numbers; `...` marks cut rows and columns.
local function matrix_lines(rows, more_cols, more_rows, indent)
   local w = 1
   for _, r in ipairs(rows) do
      for j, v in ipairs(r) do r[j] = num4(v); if #r[j] > w then w = #r[j] end end
   end
   local out = {}
   for _, r in ipairs(rows) do
      for j, s in ipairs(r) do r[j] = string.rep(' ', w - #s) .. s end
      out[#out + 1] = indent .. table.concat(r, ' ') .. (more_cols and ' ...' or '')
   end
   if more_rows then out[#out + 1] = indent .. '...' end
   return out
end

-- A tensor at the top level: the C __tostring's first line (dtype, shape,
-- min/max/mean), then at most 6 rows of 8 values of its first matrix.
local function format_tensor(t)
   if t:is_freed() then return '[ddpm.Tensor (freed)]' end
   local head = safe_tostring(t):match('^[^\n]*')
   local nd, n = t:dim(), t:numel()
   if n == 0 then return head end
   if nd == 0 then return head .. '\n  ' .. num4(t:totable()) end
   local out = {head}
   if nd == 1 then
      local len = t:size(1)
      local k = math.min(len, 8)
      local row = t:narrow(1, 1, k):totable()
      local lines = matrix_lines({row}, len > k, false, '  ')
      out[#out + 1] = lines[1]
      return table.concat(out, '\n')
   end
   local m, label = t, {}
   for _ = 1, nd - 2 do
      m = m:select(1, 1)
      label[#label + 1] = '1'
   end
   local R, C = m:size(1), m:size(2)
   local r, c = math.min(R, 6), math.min(C, 8)
   local rows = m:narrow(1, 1, r):narrow(2, 1, c):totable()
   if nd > 2 then
      out[#out + 1] = '(' .. table.concat(label, ',') .. ',.,.) ='
   end
   for _, line in ipairs(matrix_lines(rows, C > c, R > r, '  ')) do out[#out + 1] = line end
   return table.concat(out, '\n')
end

-- One value that is not expanded (a leaf of the table printer).
local function brief(v)
   local tv = type(v)
   if tv == 'string' then
      if #v > M.max_string then
         return quote(v:sub(1, M.max_string)) .. ('...(%d bytes)'):format(#v)
      end
      return quote(v)
   end
   if is_tensor(v) then return tensor_shape(v) end
   local s = safe_tostring(v)
   if tv ~= 'number' and tv ~= 'boolean' and tv ~= 'nil' then
      local first = s:match('^[^\n]*')
      if first ~= s then s = first .. ' ...' end
   end
   return s
end

local function is_plain_table(v)
   return type(v) == 'table' and not has_tostring(v)
end

local function typename_of(t)
   local mt = getmetatable(t)
   if type(mt) == 'table' and t ~= mt then
      local n = rawget(mt, '__typename')
      if type(n) == 'string' then return n end
   end
   return nil
end

-- Tables are first built as a tree (so that a cycle found deep inside can
-- label its ancestor), then laid out: one line when it fits, else one entry
-- per line, indented by 3.
local function build(t, depth, stack, ids)
   local node = {typename = typename_of(t), items = {}}
   stack[t] = node
   local n = #t
   local count = 0
   local function child(v)
      if not is_plain_table(v) then return brief(v) end
      local anc = stack[v]
      if anc then
         if not anc.id then ids.n = ids.n + 1; anc.id = ids.n end
         return {cycle = anc}
      end
      if next(v) == nil then return (typename_of(v) and typename_of(v) .. ' {}' or '{}') end
      if depth >= M.max_depth then return (typename_of(v) and typename_of(v) .. ' {...}' or '{...}') end
      return build(v, depth + 1, stack, ids)
   end
   local function full()
      if count >= M.max_items or ids.total >= M.max_total then return true end
      count, ids.total = count + 1, ids.total + 1
      return false
   end
   for i = 1, n do
      if full() then break end
      node.items[#node.items + 1] = {value = child(t[i])}
   end
   local keys = {}
   for k in next, t do
      if not (type(k) == 'number' and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
   end
   table.sort(keys, key_less)
   local total = n + #keys
   for _, k in ipairs(keys) do
      if full() then break end
      local ks = is_name(k) and k or '[' .. brief(k) .. ']'
      node.items[#node.items + 1] = {key = ks, value = child(t[k])}
   end
   if total > count then node.more = total - count end
   stack[t] = nil
   return node
end

local function render(node, indent)
   if type(node) == 'string' then return node end
   if node.cycle then return '<cycle ' .. node.cycle.id .. '>' end
   local parts, multiline = {}, false
   for i, it in ipairs(node.items) do
      local v = render(it.value, indent .. '   ')
      if v:find('\n', 1, true) then multiline = true end
      parts[i] = it.key and (it.key .. ' = ' .. v) or v
   end
   if node.more then parts[#parts + 1] = ('... (%d more)'):format(node.more) end
   local prefix = (node.id and ('<' .. node.id .. '>') or '') ..
                  (node.typename and (node.typename .. ' ') or '')
   local line = prefix .. '{' .. table.concat(parts, ', ') .. '}'
   if not multiline and #indent + #line <= M.width then return line end
   local inner = indent .. '   '
   return prefix .. '{\n' .. inner .. table.concat(parts, ',\n' .. inner) .. '\n' .. indent .. '}'
end

--- repl.format(v) -> the text the REPL prints for one value.
function M.format(v)
   local tv = type(v)
   if tv == 'string' then return quote(v) end
   if is_tensor(v) then return format_tensor(v) end
   if is_plain_table(v) then return render(build(v, 0, {}, {n = 0, total = 0}), '') end
   return safe_tostring(v)
end

---------------------------------------------------------------- completion

-- Field k of v without calling functions: raw fields, then __index tables
-- (and the __methods table behind a C __index, as ddpm.Tensor has).
local function field(v, k)
   for _ = 1, 16 do
      if type(v) == 'table' then
         local x = rawget(v, k)
         if x ~= nil then return x end
      end
      local mt = getmetatable(v)
      if type(mt) ~= 'table' then return nil end
      local idx = rawget(mt, '__index')
      if type(idx) == 'table' then
         v = idx
      else
         local methods = rawget(mt, '__methods')
         if type(methods) == 'table' then return rawget(methods, k) end
         return nil
      end
   end
   return nil
end

-- Every name reachable from v, name -> value, the way `field` looks them up.
local function fields(v)
   local out, seen = {}, {}
   for _ = 1, 16 do
      if type(v) == 'table' and not seen[v] then
         seen[v] = true
         for k, x in next, v do
            if type(k) == 'string' and out[k] == nil then out[k] = x end
         end
      end
      local mt = getmetatable(v)
      if type(mt) ~= 'table' then break end
      local idx = rawget(mt, '__index')
      if type(idx) == 'table' then
         v = idx
      else
         local methods = rawget(mt, '__methods')
         if type(methods) == 'table' then
            for k, x in next, methods do
               if type(k) == 'string' and out[k] == nil then out[k] = x end
            end
         end
         break
      end
   end
   return out
end

-- What follows a completed name: `(` for a function, `:` for an object (a
-- table whose metatable has __index, a userdata with methods), `.` for any
-- other table (modules, classes).
local function suffix(x)
   local tx = type(x)
   if tx == 'function' then return '(' end
   if tx == 'table' then
      local mt = getmetatable(x)
      if type(mt) == 'table' and rawget(mt, '__call') ~= nil then return '(' end   -- ddpm.show
      if type(mt) == 'table' and rawget(mt, '__index') ~= nil and rawget(x, '__index') == nil then
         return ':'
      end
      return '.'
   end
   if tx == 'userdata' then
      local mt = getmetatable(x)
      if type(mt) == 'table' and (rawget(mt, '__index') ~= nil) then return ':' end
   end
   return ''
end

-- When the end of s is inside a quoted string, the text typed in it so far
-- (then TAB completes a file name); else nil.
local function string_tail(s)
   local q, start, i, n = nil, nil, 1, #s
   while i <= n do
      local c = s:sub(i, i)
      if q then
         if c == '\\' then i = i + 1 elseif c == q then q = nil end
      elseif c == '"' or c == "'" then
         q, start = c, i + 1
      elseif c == '-' and s:sub(i + 1, i + 1) == '-' then
         return nil
      end
      i = i + 1
   end
   return q and s:sub(start) or nil
end

M.commands = {
   {':time', '[on|off]  print the wall time of each line, e.g. (0.84 s)'},
   {':jit', '[on|off]   JIT-compile REPL chunks (faster loops; Ctrl-C still stops them)'},
   {':img', 'expr       preview an image batch, as ddpm.show(expr)'},
   {':help', '          this list'},
   {':quit', '          leave (so does Ctrl-D)'},
}

local function sorted_unique(list)
   table.sort(list)
   local out = {}
   for i, s in ipairs(list) do if s ~= list[i - 1] then out[#out + 1] = s end end
   return out
end

--- repl.complete(word, line) -> {candidates} for TAB, or a string: the file
--- name typed so far inside a string literal, for the host to complete.
--- word is the text before the cursor back to the last operator, space or
--- bracket (so `ddpm.data.fa`, `x:nu`); line is the line up to the cursor.
--- Candidates are whole words with their suffix.
function M.complete(word, line)
   line = line or word
   local file = string_tail(line)
   if file then return file end
   local out = {}
   if line:match('^%s*:[%w_]*$') and word:sub(1, 1) == ':' then
      for _, c in ipairs(M.commands) do
         if c[1]:sub(1, #word) == word then out[#out + 1] = c[1] .. ' ' end
      end
      return out
   end
   local lead = ''
   if word:sub(1, 1) == '?' then
      lead, word = '?', word:sub(2)
      local ok, help = pcall(require, 'ddpm.help')
      if ok then
         for _, name in ipairs(help.names()) do
            if name:sub(1, #word) == word then out[#out + 1] = '?' .. name end
         end
      end
   end
   local path, sep, partial = word:match('^(.-)([%.:])([%w_]*)$')
   local v, methods_only
   if path then
      if not path:match('^[%a_][%w_]*$') and not path:match('^[%a_][%w_]*[%.%w_]*[%w_]$') then
         return sorted_unique(out)
      end
      if path:find('..', 1, true) then return sorted_unique(out) end
      v = _G
      for name in path:gmatch('[^%.]+') do
         v = field(v, name)
         if v == nil then return sorted_unique(out) end
      end
      methods_only = sep == ':'
   else
      if not word:match('^[%a_]?[%w_]*$') then return sorted_unique(out) end
      v, path, sep, partial = _G, '', '', word
      if lead == '' then
         for k in pairs(keywords) do
            if k:sub(1, #partial) == partial then out[#out + 1] = k end
         end
      end
   end
   local show_private = partial:sub(1, 1) == '_'
   for k, x in pairs(fields(v)) do
      if is_name(k) and k:sub(1, #partial) == partial
         and (show_private or k:sub(1, 1) ~= '_')
         and (not methods_only or type(x) == 'function') then
         local suf = methods_only and '(' or suffix(x)
         if lead == '?' and suf ~= '.' then suf = '' end   -- a help topic, not a call
         out[#out + 1] = lead .. path .. sep .. k .. suf
      end
   end
   return sorted_unique(out)
end

---------------------------------------------------------------- compiling

-- The check a compiled chunk makes at every loop iteration and call:
-- the flag the first Ctrl-C sets (runtime/status.c), read through the FFI
-- so that it compiles into traces (a classic C function would abort them).
local poll
if jit then
   local ok, ffi = pcall(require, 'ffi')
   if ok and pcall(ffi.cdef, 'int ddpm_interrupted(void);') and pcall(function() return ffi.C.ddpm_interrupted end) then
      local C = ffi.C
      poll = function()
         if C.ddpm_interrupted() ~= 0 then error('interrupted (Ctrl-C)', 0) end
      end
   end
end
M.poll = poll

local KEYWORDS_AFTER = {['do'] = true, ['repeat'] = true}

--- M.instrument(src) -> src with `__ddpm_poll();` after every `do`, `repeat`,
--- function parameter list and label, outside strings and comments.
function M.instrument(src)
   local out, i, n = {}, 1, #src
   local want_paren = false   -- after `function`: the end of its parameters
   local last = 1
   local function emit_upto(j, extra)
      out[#out + 1] = src:sub(last, j)
      if extra then out[#out + 1] = extra end
      last = j + 1
   end
   while i <= n do
      local c = src:sub(i, i)
      if c == '-' and src:sub(i, i + 1) == '--' then
         local eq = src:match('^%-%-%[(=*)%[', i)
         if eq then
            local _, e = src:find(']' .. eq .. ']', i, true)
            i = (e or n) + 1
         else
            local e = src:find('\n', i, true)
            i = (e or n) + 1
         end
      elseif c == '[' and src:match('^%[=*%[', i) then
         local eq = src:match('^%[(=*)%[', i)
         local _, e = src:find(']' .. eq .. ']', i, true)
         i = (e or n) + 1
      elseif c == '"' or c == "'" then
         local j = i + 1
         while j <= n do
            local d = src:sub(j, j)
            if d == '\\' then j = j + 2
            elseif d == c then break
            else j = j + 1 end
         end
         i = j + 1
      elseif c:match('[%a_]') then
         local word = src:match('^[%w_]+', i)
         local e = i + #word - 1
         if KEYWORDS_AFTER[word] then emit_upto(e, ' __ddpm_poll();')
         elseif word == 'function' then want_paren = true end
         i = e + 1
      elseif c:match('%d') then
         i = i + #src:match('^[%w_.]+', i)
      elseif c == ')' and want_paren then
         want_paren = false
         emit_upto(i, ' __ddpm_poll();')
         i = i + 1
      elseif c == ':' and src:sub(i, i + 1) == '::' then
         local label = src:match('^::%s*[%a_][%w_]*%s*::', i)
         if label then
            emit_upto(i + #label - 1, ' __ddpm_poll();')
            i = i + #label
         else
            i = i + 2
         end
      else
         i = i + 1
      end
   end
   out[#out + 1] = src:sub(last)
   return table.concat(out)
end

-- f or nil, err, incomplete: compiles one chunk of REPL input. The
-- expression form passes its values through `select` (given as the chunk's
-- vararg) rather than returning them directly, so that `error("x")` is not a
-- tail call and keeps its position ("stdin:1: x") and the chunk's frame.
-- Unless M.jit, the chunk and the functions it defines never JIT-compile.
function M.compile(src)
   src = src:gsub('^%s*=', '', 1)   -- lua 5.1's `=expr` habit
   if jit and M.jit and poll then   -- compiled, and still stopped by Ctrl-C
      rawset(_G, '__ddpm_poll', poll)
      local f, err, incomplete = M.compile_plain(M.instrument(src))
      if f then return f end
      if incomplete then return nil, err, incomplete end
   end
   return M.compile_plain(src)
end

function M.compile_plain(src)
   local f = loadstring('local __ddpm_select = ...; return __ddpm_select(1, ' .. src .. '\n)', '=stdin')
   if not f then
      local err
      f, err = loadstring(src, '=stdin')
      if not f then
         -- incomplete as a statement (`for i = 1, 3 do`) or as an expression (`{`)
         local _, rerr = loadstring('return ' .. src, '=stdin')
         return nil, err, err:sub(-7) == "'<eof>'" or rerr:sub(-7) == "'<eof>'"
      end
      local rest = src:match('^%s*local%s+(.*)$')
      if rest then f = loadstring(rest, '=stdin') or f end
   end
   if jit and not M.jit then jit.off(f, true) end
   return f
end

---------------------------------------------------------------- the loop

local color = false   -- set by run(): a terminal, and NO_COLOR unset

local function dim(s) return color and ('\27[2m' .. s .. '\27[0m') or s end

local function print_error(msg)
   io.stdout:flush()
   io.stderr:write(color and ('\27[31m' .. msg .. '\27[0m') or msg, '\n')
   io.stderr:flush()
end

local function results(quiet, ok, ...)
   local n = select('#', ...)
   if not ok then
      print_error(tostring((...)))
      return
   end
   if n == 0 then return end
   rawset(_G, '_LAST', (...))
   if quiet then return end
   local out = {}
   for i = 1, n do
      local fok, s = pcall(M.format, (select(i, ...)))
      out[i] = fok and s or ('<format failed: ' .. tostring(s) .. '>')
   end
   io.stdout:write(table.concat(out, '\t'), '\n')
   io.stdout:flush()
end

local function timing(t0)
   if not M.time then return end
   io.stdout:write(dim(('(%.3g s)'):format(core.time() - t0)), '\n')
   io.stdout:flush()
end

--- repl.help(name or value): prints the documentation (see ddpm.help).
function M.help(what)
   local help = require 'ddpm.help'
   io.stdout:write(help.text(what), '\n')
   io.stdout:flush()
end

local function on_off(arg, current)
   if arg == 'on' or arg == '1' or arg == 'true' then return true end
   if arg == 'off' or arg == '0' or arg == 'false' then return false end
   if arg == '' then return not current end
   return nil
end

-- A line starting with `:`. Returns 'quit' to leave.
local function command(line)
   local name, arg = line:match('^%s*:(%a*)%s*(.-)%s*$')
   if name == 'q' or name == 'quit' or name == 'exit' then return 'quit' end
   if name == 'time' or name == 'jit' then
      local v = on_off(arg, M[name])
      if v == nil then
         print_error((':%s: expected on or off, got %s'):format(name, arg))
      else
         M[name] = v
         io.stdout:write((':%s %s\n'):format(name, v and 'on' or 'off'))
      end
   elseif name == 'img' then
      if arg == '' then print_error(':img: expected an expression, e.g. :img x0'); return end
      local f, err = M.compile(arg)
      if not f then print_error(err); return end
      local t0 = core.time()
      results(true, host.docall(function() require('ddpm.show')(f(select)) end))
      timing(t0)
   elseif name == 'help' or name == '' then
      local lines = {'commands:'}
      for _, c in ipairs(M.commands) do lines[#lines + 1] = '  ' .. c[1] .. ' ' .. c[2] end
      lines[#lines + 1] = '  ?name       documentation of an API function (? alone lists topics)'
      lines[#lines + 1] = '  TAB completes names; a trailing ; hides the value; _LAST holds it'
      io.stdout:write(table.concat(lines, '\n'), '\n')
   else
      print_error((':%s: unknown command (:help lists them)'):format(name))
   end
   io.stdout:flush()
end

--- Runs until end of input (or :quit).
function M.run()
   local tty = host.interactive()
   local nc = os.getenv('NO_COLOR')
   color = tty and (nc == nil or nc == '') and os.getenv('TERM') ~= 'dumb'
   if tty then
      host.set_completer(function(word, line)
         return M.complete(word, line)
      end)
      io.stdout:write(host.version, ' -- ?topic help, TAB completes, Ctrl-C stops a chunk, Ctrl-D leaves\n')
   end
   if rawget(_G, 'help') == nil then rawset(_G, 'help', M.help) end
   if rawget(_G, 'ddpm') == nil then   -- as th has torch: the API at hand
      local ok, ddpm = pcall(require, 'ddpm')
      if ok then rawset(_G, 'ddpm', ddpm) else print_error(tostring(ddpm)) end
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
               results(false, false, err)
            end
            return
         end
      else
         if tty and line:match('%S') and line ~= last_hist then
            host.add_history(line)
            last_hist = line
         end
         if not buf and line:match('^%s*%?') then
            local t0 = core.time()
            local topic = line:match('^%s*%?%s*(.-)%s*$')
            local ok, err = pcall(M.help, topic)
            if not ok then print_error(tostring(err)) end
            timing(t0)
         elseif not buf and line:match('^%s*:') then
            if command(line) == 'quit' then return end
         else
            buf = buf and (buf .. '\n' .. line) or line
            if not buf:match('%S') then
               buf = nil
            else
               -- a trailing `;` runs the chunk without printing its value
               local quiet = buf:match(';%s*$') ~= nil
               local src = quiet and buf:gsub(';%s*$', '') or buf
               local f, err, incomplete = M.compile(src)
               if not f and quiet then f, err, incomplete = M.compile(buf) end
               if f then
                  buf = nil
                  local t0 = core.time()
                  results(quiet, host.docall(f, select))
                  timing(t0)
               elseif not incomplete then
                  buf = nil
                  results(false, false, err)
               end
            end
         end
      end
   end
end

return M
