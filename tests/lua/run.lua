-- tests/lua/run.lua — the Lua test runner, executed by ddpmlua itself:
--
--   ./ddpmlua tests/lua/run.lua [-p pattern] [files...]
--
-- Without files it runs tests/lua/test_*.lua (next to this file), in name
-- order. -p keeps only tests whose "file: name" contains pattern (plain text).
--
-- A test file is a chunk that returns a table of tests, name -> function:
--
--   local T = require 'ddpm.test'
--   local tests = T.suite()            -- optional; keeps the written order
--   function tests.zeros_are_zero() T.assert_eq(0 * 5, 0) end
--   return tests
--
-- A plain table works too (tests then run sorted by name). Each file runs in
-- its own global environment (reads fall through to _G). Each test is called
-- with no arguments under xpcall: it passes when it returns, fails when it
-- raises (the message and traceback follow as "# " lines), and is skipped by
-- T.skip(reason). A function named teardown is not a test: it runs after the
-- file's tests (also when -p left none of them), is not counted when it
-- succeeds, and counts as one failure when it raises. A skipped test is
-- counted neither passed nor failed. A file that fails to load or return a
-- table counts as one failed test. Output is TAP, then "N passed, N failed";
-- the exit status is 1 when anything failed.

local T = require 'ddpm.test'

local dir = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'
local files, pattern = {}, nil
local i = 1
while arg and arg[i] do
   if arg[i] == '-p' then pattern = arg[i + 1]; i = i + 1
   else files[#files + 1] = arg[i] end
   i = i + 1
end
if #files == 0 then
   local p = io.popen('ls -1 ' .. dir .. '/test_*.lua 2>/dev/null')
   for line in p:lines() do files[#files + 1] = line end
   p:close()
end

local n, passed, failed, skipped = 0, 0, 0, 0

local function comment(text)
   for line in (tostring(text) .. '\n'):gmatch('(.-)\n') do print('#   ' .. line) end
end

local function report(ok, desc, err)
   n = n + 1
   if ok then
      passed = passed + 1
      print(string.format('ok %d - %s', n, desc))
   elseif T.is_skip(err) then
      skipped = skipped + 1
      print(string.format('ok %d - %s # SKIP %s', n, desc, err.reason))
   else
      failed = failed + 1
      print(string.format('not ok %d - %s', n, desc))
      comment(err)
   end
   io.stdout:flush()
end

-- The traceback stops at the runner's own xpcall.
local function handler(err)
   if T.is_skip(err) then return err end
   if type(err) ~= 'string' then err = tostring(err) end
   local tb = debug.traceback(err, 2)
   return (tb:gsub("\n%s*%[C%]: in function 'xpcall'.*$", ''))
end

local function selected(desc)
   return not pattern or desc:find(pattern, 1, true) ~= nil
end

for _, file in ipairs(files) do
   local short = file:match('([^/]*)$')
   local chunk, err = loadfile(file)
   local tests
   if chunk then
      setfenv(chunk, setmetatable({}, {__index = _G}))
      local ok, res = xpcall(chunk, handler)
      if not ok then err = res
      elseif type(res) ~= 'table' then err = 'the file returned ' .. type(res) .. ', not a table of tests'
      else tests = res end
   end
   if not tests then
      if selected(short) then report(false, short .. ': (load)', err) end
   else
      for _, name in ipairs(T.names(tests)) do
         local desc = short .. ': ' .. name
         if name ~= 'teardown' and selected(desc) then
            local ok, terr = xpcall(tests[name], handler)
            report(ok, desc, terr)
         end
      end
      if type(tests.teardown) == 'function' then
         local ok, terr = xpcall(tests.teardown, handler)
         if ok then print('# ' .. short .. ': teardown done')
         else report(false, short .. ': teardown', terr) end
      end
   end
end

print('1..' .. n)
if skipped > 0 then print('# ' .. skipped .. ' skipped (not counted as passed)') end
print(string.format('%d passed, %d failed', passed, failed))
io.stdout:flush()
-- close the state first: every tensor still held is freed by its __gc, so
-- LeakSanitizer (make asan) sees only real leaks
os.exit(failed > 0 and 1 or 0, true)
