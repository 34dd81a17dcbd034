-- test_tensor.lua — the ddpm.Tensor API: construction, shape, indexing,
-- arithmetic, reductions, printing, safetensors round trips, and every
-- wrong call as a Lua error with a useful message (never a crash).

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

function tests.construct_and_shape()
   local z = ddpm.zeros(2, 3)
   T.assert_eq(z:size(), {2, 3})
   T.assert_eq(z:size(2), 3)
   T.assert_eq(z:dim(), 2)
   T.assert_eq(z:numel(), 6)
   T.assert_eq(ddpm.zeros{4}:size(), {4})
   T.assert_eq(ddpm.ones(2, 2):sum(), 4)
   T.assert_eq(ddpm.full({3}, 2.5):totable(), {2.5, 2.5, 2.5})
   local t = ddpm.tensor{{1, 2, 3}, {4, 5, 6}}
   T.assert_eq(t:totable(), {{1, 2, 3}, {4, 5, 6}})
   T.assert_eq(#t, 2)
end

function tests.randn_is_seeded_and_normal()
   local a = ddpm.randn({1000, 100}, 7)
   local b = ddpm.randn({1000, 100}, {seed = 7})
   T.assert_true(a:equal(b), 'same seed, same numbers')
   T.assert_true(not a:equal(ddpm.randn({1000, 100}, 8)), 'another seed, other numbers')
   T.assert_near(a:mean(), 0, 0.01)
   local sq = (a * a):mean()
   T.assert_near(sq, 1, 0.02)
   ddpm.manual_seed(3)
   local c = ddpm.randn(5)
   ddpm.manual_seed(3)
   T.assert_true(c:equal(ddpm.randn(5)), 'manual_seed makes the default generator repeat')
   local u = ddpm.rand({10000}, 1)
   T.assert_true(u:min() >= 0 and u:max() < 1, 'rand in [0,1)')
end

function tests.indexing_and_views()
   local t = ddpm.tensor{{1, 2, 3}, {4, 5, 6}}
   T.assert_eq(t[2][3], 6)
   T.assert_eq(t:get(1, 2), 2)
   t:set(1, 2, 20)
   T.assert_eq(t[1][2], 20)
   t[2] = 0
   T.assert_eq(t:totable(), {{1, 20, 3}, {0, 0, 0}})
   local row = t[1]
   row[1] = 7                              -- a view writes through
   T.assert_eq(t:get(1, 1), 7)
   local tt = t:transpose(1, 2)
   T.assert_eq(tt:size(), {3, 2})
   T.assert_true(not tt:is_contiguous())
   T.assert_eq(tt:contiguous():totable(), {{7, 0}, {20, 0}, {3, 0}})
   T.assert_eq(t:view(3, 2):totable(), {{7, 20}, {3, 0}, {0, 0}})
   T.assert_eq(t:narrow(2, 2, 2):totable(), {{20, 3}, {0, 0}})
   T.assert_eq(t:select(1, 1):totable(), {7, 20, 3})
end

function tests.arithmetic_and_reductions()
   local a = ddpm.tensor{1, 2, 3}
   local b = ddpm.tensor{4, 5, 6}
   T.assert_eq((a + b):totable(), {5, 7, 9})
   T.assert_eq((b - a):totable(), {3, 3, 3})
   T.assert_eq((a * b):totable(), {4, 10, 18})
   T.assert_eq((b / 2):totable(), {2, 2.5, 3})
   T.assert_eq((10 - a):totable(), {9, 8, 7})
   T.assert_eq((-a):totable(), {-1, -2, -3})
   T.assert_eq(a:sum(), 6)
   T.assert_eq(a:mean(), 2)
   T.assert_eq(b:min(), 4)
   T.assert_eq(b:max(), 6)
   T.assert_eq(ddpm.tensor{-1, 2}:abs():totable(), {1, 2})
   T.assert_eq(ddpm.tensor{-3, 0.5, 3}:clamp(-1, 1):totable(), {-1, 0.5, 1})
   a:add_(b, 2)
   T.assert_eq(a:totable(), {9, 12, 15})
end

function tests.printing_is_short()
   local s = tostring(ddpm.zeros(8, 3, 32, 32))
   T.assert_true(s:find('[ddpm.Tensor f32 8x3x32x32]', 1, true) == 1, s)
   T.assert_true(#s < 200, 'no megabytes of numbers')
   T.assert_true(tostring(ddpm.tensor{1, 2}):find('min 1 max 2', 1, true) ~= nil)
end

function tests.safetensors_round_trip()
   local path = os.tmpname() .. '.safetensors'
   local a, b = ddpm.randn({2, 3}, 1), ddpm.tensor{{1}, {2}}
   ddpm.save_safetensors(path, {a = a, ['b.weight'] = b:transpose(1, 2)}, {note = 'hi'})
   local t, meta = ddpm.load_safetensors(path)
   T.assert_true(t.a:equal(a))
   T.assert_eq(t['b.weight']:totable(), {{1, 2}})
   T.assert_eq(meta.note, 'hi')
   os.remove(path)
end

function tests.errors_are_lua_errors()
   local t = ddpm.zeros(2, 3)
   T.assert_error(function() return t + ddpm.zeros(3, 2) end, 'shapes [2,3] and [3,2] differ')
   T.assert_error(function() return t + 'x' end, 'expected a tensor or a number')
   T.assert_error(function() return t[3] end, 'index 3 out of range 1..2')
   T.assert_error(function() return t:get(1) end, '1 indices given for a 2-dimensional tensor')
   T.assert_error(function() return t:view(4, 2) end, 'cannot view [2,3]')
   T.assert_error(function() return t:transpose(1, 2):view(6) end, 'not contiguous')
   T.assert_error(function() return t:narrow(2, 3, 2) end, 'narrow')
   T.assert_error(function() return ddpm.tensor{{1, 2}, {3}} end, 'ragged table')
   T.assert_error(function() return ddpm.tensor{1, 'a'} end, 'expected a number')
   T.assert_error(function() return ddpm.zeros(-1) end, 'non-negative integer')
   T.assert_error(function() return core.zeros{2^30, 2^30} end, '2^40 elements')
   T.assert_error(function() return ddpm.zeros(2):mean() + ddpm.zeros(0):mean() end, 'empty')
   T.assert_error(function() return t.sum(nil) end, 'ddpm.Tensor expected, got nil')
   T.assert_error(function() return t.sum(42) end, 'ddpm.Tensor expected, got number')
   T.assert_error(function() return t:copy(ddpm.zeros(5)) end, 'differ in element count')
   T.assert_error(function() ddpm.save_safetensors('/nonexistent-dir/x.safetensors', {a = t}) end, 'nonexistent')
   T.assert_error(function() ddpm.save_safetensors('/tmp/x.safetensors', {a = 3}) end, 'expected a ddpm.Tensor')
   T.assert_error(function() ddpm.load_safetensors('/nonexistent.safetensors') end, 'nonexistent')
end

function tests.freed_tensor_is_an_error()
   local t = ddpm.zeros(3)
   local v = t:view(3)
   t:free()
   T.assert_true(t:is_freed())
   T.assert_error(function() return t:sum() end, 'tensor was freed')
   T.assert_error(function() return t + 1 end, 'tensor was freed')
   T.assert_error(function() return t[1] end, 'tensor was freed')
   T.assert_eq(tostring(t), '[ddpm.Tensor (freed)]')
   T.assert_eq(v:sum(), 0, 'a view keeps the storage alive')
end

function tests.malformed_safetensors_files()
   local dir = os.tmpname()
   local function write(name, s)
      local f = assert(io.open(dir .. name, 'wb'))
      f:write(s)
      f:close()
      return dir .. name
   end
   local header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
   local function le64(n) local s = '' for _ = 1, 8 do s = s .. string.char(n % 256); n = math.floor(n / 256) end return s end
   local good = le64(#header) .. header .. string.rep('\0', 8)
   T.assert_eq(ddpm.load_safetensors(write('.good', good)).a:totable(), {0, 0})
   T.assert_error(function() ddpm.load_safetensors(write('.trunc', good:sub(1, #good - 3))) end, '.trunc')
   T.assert_error(function() ddpm.load_safetensors(write('.empty', '')) end, '.empty')
   T.assert_error(function() ddpm.load_safetensors(write('.huge', '\255\255\255\255\255\255\255\255{}')) end, 'header')
   local bad = header:gsub('F32', 'Q99')
   T.assert_error(function() ddpm.load_safetensors(write('.dtype', le64(#bad) .. bad .. string.rep('\0', 8))) end, 'Q99')
   local json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
   T.assert_error(function() ddpm.load_safetensors(write('.dup', le64(#json) .. json .. string.rep('\0', 8))) end, 'duplicate')
   os.execute('rm -f ' .. dir .. '.*')
end

return tests
