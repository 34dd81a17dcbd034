-- test_host.lua — the host seen from inside: preloaded modules, package.path,
-- ddpm.host.docall, the REPL's compiler and printer, the ddpm.test helpers.
-- Process-level behaviour (options, exit codes, piped REPL, Ctrl-C) is in
-- tests/test_host.sh.

local T = require 'ddpm.test'
local host = require 'ddpm.host'
local repl = require 'ddpm.repl'

local tests = T.suite()

function tests.core_is_preloaded()
   local core = require 'ddpm.core'
   T.assert_eq(type(core), 'table')
   T.assert_true(package.preload['ddpm.core'] ~= nil, 'ddpm.core in package.preload')
   local n = core.get_num_threads()
   T.assert_true(type(n) == 'number' and n >= 1, 'thread count ' .. tostring(n))
end

function tests.ddpm_is_found_on_the_path()
   T.assert_true(package.path:find('/lib/?/init.lua', 1, true), package.path)
   T.assert_true(package.path:find('/share/ddpmlua/lua/?/init.lua', 1, true), package.path)
   local ddpm = require 'ddpm'
   T.assert_eq(type(ddpm), 'table')
   T.assert_true(ddpm.core == require 'ddpm.core', 'ddpm.core is the built-in module')
end

function tests.arg_names_the_runner()
   T.assert_true(arg[0]:match('run%.lua$'), arg[0])
   T.assert_true(arg[-1] ~= nil, 'arg[-1] is the interpreter')
end

function tests.host_api()
   for _, f in ipairs{'readline', 'add_history', 'interactive', 'docall'} do
      T.assert_eq(type(host[f]), 'function', f)
   end
   T.assert_true(host.version:match('^ddpmlua %S+ %(LuaJIT'), host.version)
   T.assert_eq(type(host.interactive()), 'boolean')
end

function tests.docall_returns_every_value()
   local r = {host.docall(function(a, b) return a + b, nil, 'x' end, 1, 2)}
   T.assert_eq(r[1], true)
   T.assert_eq(r[2], 3)
   T.assert_eq(r[3], nil)
   T.assert_eq(r[4], 'x')
   T.assert_eq(select('#', host.docall(function() end)), 1)
end

function tests.docall_error_has_traceback_of_the_call_only()
   local function inner() error('deep failure') end
   local ok, msg = host.docall(function() inner() end)
   T.assert_eq(ok, false)
   T.assert_true(msg:find('test_host.lua:%d+: deep failure'), msg)
   T.assert_true(msg:find('stack traceback:', 1, true), msg)
   T.assert_true(msg:find("in function 'inner'", 1, true), msg)
   -- the frames below docall (this test, the runner) are not shown
   T.assert_true(not msg:find('run.lua', 1, true), msg)
end

function tests.docall_shows_non_string_errors()
   local obj = setmetatable({}, {__tostring = function() return 'custom error object' end})
   local ok, msg = host.docall(function() error(obj) end)
   T.assert_eq(ok, false)
   T.assert_true(msg:find('^custom error object'), msg)
   ok, msg = host.docall(function() error({}) end)
   T.assert_true(msg:find('^table: '), msg)
   ok, msg = host.docall(function() error(42) end)
   T.assert_true(msg:find(':%d+: 42\n'), msg)   -- numbers get a position, as strings do
end

function tests.docall_checks_its_argument()
   T.assert_error(function() host.docall(42) end, 'function expected')
end

function tests.compile_prefers_expressions()
   local f = repl.compile('1 + 1')
   T.assert_eq(select(2, host.docall(f, select)), 2)
   f = repl.compile('1, nil, 3')
   T.assert_eq({select(2, host.docall(f, select))}, {1, nil, 3})
   T.assert_eq(select('#', host.docall(repl.compile('repl_probe = 1'), select)), 1)
   _G.repl_probe = nil
   T.assert_eq(select(2, host.docall(repl.compile('= 2 * 3'), select)), 6)
end

function tests.compile_flags_incomplete_chunks()
   local f, err, incomplete = repl.compile('for i = 1, 3 do')
   T.assert_eq(f, nil)
   T.assert_eq(incomplete, true, err)
   f, err, incomplete = repl.compile('x = = 1')
   T.assert_eq(f, nil)
   T.assert_true(not incomplete, 'a plain syntax error is not incomplete')
   T.assert_true(err:find("unexpected symbol near '='", 1, true), err)
   T.assert_eq(select(3, repl.compile('s = [[open')), true)
   T.assert_eq(select(3, repl.compile('{')), true)
   T.assert_eq(select(3, repl.compile('1 +')), true)
   T.assert_eq(select(2, host.docall(repl.compile('{\n1, 2\n}'), select)), {1, 2})
end

function tests.compile_keeps_top_level_locals()
   _G.repl_local_probe = nil
   host.docall(repl.compile('local repl_local_probe = 7'), select)
   T.assert_eq(_G.repl_local_probe, 7)
   _G.repl_local_probe = nil
   -- `local x` alone has no global form; it still compiles
   T.assert_true(repl.compile('local repl_local_probe'), 'local without a value')
end

function tests.compile_keeps_error_positions()
   local ok, msg = host.docall(repl.compile('error("boom")'), select)
   T.assert_eq(ok, false)
   T.assert_true(msg:find('^stdin:1: boom'), msg)
end

function tests.format_values()
   T.assert_eq(repl.format('a\nb"c'), '"a\\nb\\"c"')
   T.assert_eq(repl.format(3), '3')
   T.assert_eq(repl.format(nil), 'nil')
   T.assert_eq(repl.format({}), '{}')
   T.assert_eq(repl.format({1, 2, b = 'x', a = true, [10] = 0}),
               '{1, 2, [10] = 0, a = true, b = "x"}')
   T.assert_eq(repl.format({t = {1}, e = {}, ['not a name'] = 1}),
               '{e = {}, ["not a name"] = 1, t = {1}}')
   local obj = setmetatable({}, {__tostring = function() return '<obj>' end})
   T.assert_eq(repl.format(obj), '<obj>')
   T.assert_eq(repl.format({obj}), '{<obj>}')
   local bad = setmetatable({}, {__tostring = function() error('no') end})
   T.assert_true(repl.format(bad):find('^<tostring failed'), repl.format(bad))
end

function tests.format_long_tables()
   local t = {}
   for i = 1, 200 do t[i] = i end
   local s = repl.format(t)
   T.assert_true(s:find('... (150 more)', 1, true), s)
   T.assert_true(s:find('^{\n   1,\n   2,'), s)
end

function tests.assert_eq_compares_deeply()
   T.assert_eq({1, {a = 'x'}}, {1, {a = 'x'}})
   T.assert_eq(0 / 0, 0 / 0)
   local err = T.assert_error(function() T.assert_eq({1, {a = 'x'}}, {1, {a = 'y'}}) end)
   T.assert_true(err:find('[2]["a"]: got "x", want "y"', 1, true), err)
   err = T.assert_error(function() T.assert_eq({1, 2}, {1}) end)
   T.assert_true(err:find('[2]: got 2, want nil', 1, true), err)
   err = T.assert_error(function() T.assert_eq(1, 2, 'sum') end)
   T.assert_true(err:find('sum: assert_eq: got 1, want 2', 1, true), err)
   T.assert_true(err:find('test_host.lua:%d+:'), 'points at the caller: ' .. err)
end

function tests.assert_near_uses_the_tolerance()
   T.assert_near(1.0, 1.0 + 1e-9)
   T.assert_near(1.0, 1.05, 0.1)
   T.assert_error(function() T.assert_near(1.0, 1.2, 0.1) end, 'diff')
   T.assert_error(function() T.assert_near(0 / 0, 0, 1) end, 'assert_near')
   T.assert_error(function() T.assert_near('1', 1) end, 'expected numbers')
end

function tests.assert_error_matches_text_or_pattern()
   local err = T.assert_error(function() error('expected [N,64,H,W]') end, '[N,64,H,W]')
   T.assert_true(err:find('expected', 1, true), err)
   T.assert_error(function() error('code 42') end, 'code %d+')
   T.assert_error(function() T.assert_error(function() end) end, 'no error raised')
   T.assert_error(function()
      T.assert_error(function() error('other') end, 'wanted')
   end, 'does not match')
end

return tests
