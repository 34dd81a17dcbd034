-- ddpm.test — assertion helpers for tests/lua/test_*.lua (run by
-- tests/lua/run.lua, which documents the test-file protocol).
--
--   local T = require 'ddpm.test'
--   local tests = T.suite()             -- keeps tests in the order written
--   function tests.adds() T.assert_eq(1 + 1, 2) end
--   function tests.close() T.assert_near(0.1 + 0.2, 0.3, 1e-12) end
--   function tests.rejects() T.assert_error(function() error('bad shape') end, 'bad shape') end
--   return tests
--
-- Every failing assertion raises an error naming the caller's line. Not a
-- framework: no fixtures, no mocks, no describe/it.

local T = {}

local function show(v)
   if type(v) == 'string' then return (string.format('%q', v):gsub('\\\n', '\\n')) end
   return tostring(v)
end

local function fail(msg, user_msg)
   if user_msg then msg = tostring(user_msg) .. ': ' .. msg end
   error(msg, 3)
end

-- A table whose function entries keep the order they were added in.
function T.suite()
   local order = {}
   return setmetatable({}, {
      __newindex = function(t, k, v)
         if rawget(t, k) == nil then order[#order + 1] = k end
         rawset(t, k, v)
      end,
      __order = order,
   })
end

-- The test names of a test table: suite() order, else sorted.
function T.names(tests)
   local mt = getmetatable(tests)
   local names = {}
   if type(mt) == 'table' and type(rawget(mt, '__order')) == 'table' then
      for _, k in ipairs(mt.__order) do
         if type(tests[k]) == 'function' then names[#names + 1] = k end
      end
      return names
   end
   for k, v in pairs(tests) do
      if type(v) == 'function' then names[#names + 1] = tostring(k) end
   end
   table.sort(names)
   return names
end

-- nil when equal, else where and how they differ. Tables are compared
-- deeply (keys and values, metatables ignored); NaN equals NaN.
local function diff(got, want, path)
   if got == want then return nil end
   if got ~= got and want ~= want then return nil end
   if type(got) == 'table' and type(want) == 'table' then
      for k, w in pairs(want) do
         local d = diff(got[k], w, path .. '[' .. show(k) .. ']')
         if d then return d end
      end
      for k, g in pairs(got) do
         if want[k] == nil then
            return string.format('%s[%s]: got %s, want nil', path, show(k), show(g))
         end
      end
      return nil
   end
   return string.format('%sgot %s, want %s', path == '' and '' or path .. ': ', show(got), show(want))
end

function T.assert_eq(got, want, msg)
   local d = diff(got, want, '')
   if d then fail('assert_eq: ' .. d, msg) end
end

-- |got - want| <= tol (default 1e-6); numbers only.
function T.assert_near(got, want, tol, msg)
   tol = tol or 1e-6
   if type(got) ~= 'number' or type(want) ~= 'number' then
      fail(string.format('assert_near: expected numbers, got %s and %s', show(got), show(want)), msg)
   end
   if not (math.abs(got - want) <= tol) then
      fail(string.format('assert_near: got %.9g, want %.9g (diff %.3g > tol %.3g)',
                         got, want, math.abs(got - want), tol), msg)
   end
end

function T.assert_true(v, msg)
   if not v then fail('assert_true: got ' .. show(v), msg) end
end

-- Calls fn(...) and checks it raises an error whose text contains pattern
-- (a plain substring, else a Lua pattern). Returns the error text.
function T.assert_error(fn, pattern, ...)
   local ok, err = pcall(fn, ...)
   if ok then fail('assert_error: no error raised') end
   err = tostring(err)
   if pattern and not err:find(pattern, 1, true) then
      local found_ok, found = pcall(string.find, err, pattern)
      if not (found_ok and found) then
         fail(string.format('assert_error: error %s does not match %s', show(err), show(pattern)))
      end
   end
   return err
end

-- Ends the current test as skipped: `ok N - ... # SKIP reason`.
local Skip = {}
Skip.__index = Skip
Skip.__tostring = function(s) return 'SKIP ' .. s.reason end

function T.skip(reason)
   error(setmetatable({reason = tostring(reason or '')}, Skip), 0)
end

function T.is_skip(err)
   return getmetatable(err) == Skip
end

return T
