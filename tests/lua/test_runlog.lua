-- test_runlog.lua — the ddpm.RunLog binding (bindings/l_runlog.c): a round
-- trip through SQLite, then every bad argument as a pcall'd Lua error with a
-- useful message and the process alive. The store itself is tested in C
-- (tests/c/test_runlog.c).

local T = require 'ddpm.test'
local core = require 'ddpm.core'

local tests = T.suite()

local function need()
   if type(core.runlog_open) ~= 'function' then
      T.skip('core.runlog_open not registered (l_runlog_register)')
   end
end

local function tmpdb()
   local base = os.tmpname()          -- creates an empty file; keep it as a marker
   local path = base .. '.db'
   return path, function()
      for _, suffix in ipairs{'', '-wal', '-shm'} do os.remove(path .. suffix) end
      os.remove(base)
   end
end

local function with_log(fn)
   need()
   local path, cleanup = tmpdb()
   local log = core.runlog_open(path)
   local ok, err = pcall(fn, log, path)
   if log:is_open() then log:close() end
   cleanup()
   if not ok then error(err, 0) end
end

local RUN = {name = 'lua-test', experiment = 'tests', script_path = 'tests/lua/test_runlog.lua',
             script_text = 'print(1)\n', config_json = '{"lr":0.0002,"T":1000}', seed = 7,
             argv_json = '["ddpmlua"]', git_commit = 'abc123', git_dirty = false, version = 'test'}

function tests.round_trip()
   with_log(function(log, path)
      T.assert_true(tostring(log):find('ddpm.RunLog', 1, true), tostring(log))
      T.assert_eq(log:path(), path)
      local id = log:begin_run(RUN)
      T.assert_true(type(id) == 'number' and id >= 1, 'run id ' .. tostring(id))
      for step = 1, 2500 do log:metric(id, 'loss', step, 1 / step) end
      log:metric(id, 'loss', 3, 0 / 0)                  -- NaN, re-logged step
      log:tag(id, 'note', 'hello')
      log:tag(id, 'lr_scaled', 0.5)
      log:tag(id, 'ema', true)
      log:tag(id, 'gone', nil)
      log:source(id, 'lib/ddpm/init.lua', 'return {}')
      log:flush()
      T.assert_eq(log:pending(), 0)
      local rows, cols = log:query('SELECT step, value, key FROM metrics_v WHERE run_id = :run'
                                   .. ' ORDER BY step', {run = id})
      T.assert_eq(#rows, 2500)
      T.assert_eq(cols, {'step', 'value', 'key'})
      T.assert_eq(rows[1], {step = 1, value = 1, key = 'loss'})
      T.assert_eq(rows[3].value, nil, 'NaN comes back as nil')
      T.assert_eq(rows[2500].value, 1 / 2500)
      local r = log:query('SELECT config_json ->> ?1 AS lr, status, script_sha256 FROM runs'
                          .. ' WHERE run_id = ?2', {'$.lr', id})[1]
      T.assert_eq(r.lr, 0.0002)
      T.assert_eq(r.status, 'running')
      T.assert_eq(#r.script_sha256, 64)
      local tags = log:query('SELECT key, value FROM run_tags WHERE run_id = :run ORDER BY key',
                             {[':run'] = id})
      T.assert_eq(#tags, 5)
      T.assert_eq(tags[1], {key = 'ema', value = 'true'})
      T.assert_eq(tags[2], {key = 'gone'})
      T.assert_eq(tags[3], {key = 'lr_scaled', value = '0.5'})
      local empty, ecols = log:query('SELECT run_id, name FROM runs WHERE 0')
      T.assert_eq(empty, {})
      T.assert_eq(ecols, {'run_id', 'name'}, 'column names of an empty result')
      local f = io.open(path .. '.ckpt', 'wb'); f:write('abc'); f:close()
      log:checkpoint(id, 2500, path .. '.ckpt')
      log:artifact(id, nil, 'stdout', path .. '.ckpt', '{"lines":1}')
      local c = log:query('SELECT sha256, bytes FROM checkpoints WHERE run_id = :run', {run = id})[1]
      T.assert_eq(c, {sha256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
                      bytes = 3})
      os.remove(path .. '.ckpt')
      log:end_run(id, 'failed', 'boom')
      local s = log:query('SELECT status, error_text FROM runs WHERE run_id = ' .. id)[1]
      T.assert_eq(s, {status = 'failed', error_text = 'boom'})
      local child = log:begin_run{script_text = '', seed = 1, parent_run_id = id, world_size = 2}
      log:end_run(child, 'interrupted')
   end)
end

function tests.gc_flushes()
   need()
   local path, cleanup = tmpdb()
   do
      local log = core.runlog_open(path)
      local id = log:begin_run{seed = 0}
      log:metric(id, 'loss', 1, 0.25)
      log = nil                          -- luacheck: ignore
   end
   collectgarbage(); collectgarbage()
   local log = core.runlog_open(path)
   local rows = log:query("SELECT value FROM metrics_v WHERE key = 'loss'")
   log:close()
   cleanup()
   T.assert_eq(rows, {{value = 0.25}}, 'the buffered metric was written by __gc')
end

function tests.open_errors()
   need()
   T.assert_error(function() core.runlog_open() end, 'path must be a string')
   T.assert_error(function() core.runlog_open(42) end, 'path must be a string')
   T.assert_error(function() core.runlog_open({}) end, 'path must be a string')
   T.assert_error(function() core.runlog_open('/nonexistent/dir/runs.db') end, 'unable to open')
   local path, cleanup = tmpdb()
   local f = io.open(path, 'wb')
   for i = 1, 4096 do f:write(string.char((i * 37) % 256)) end
   f:close()
   T.assert_error(function() core.runlog_open(path) end, 'not a database')
   cleanup()
end

function tests.begin_run_errors()
   with_log(function(log)
      T.assert_error(function() log:begin_run() end, 'table expected')
      T.assert_error(function() log:begin_run('x') end, 'table expected')
      T.assert_error(function() log:begin_run{} end, "field 'seed' is required")
      T.assert_error(function() log:begin_run{seed = 1.5} end, "'seed' must be an integer")
      T.assert_error(function() log:begin_run{seed = 'one'} end, "'seed' must be an integer")
      T.assert_error(function() log:begin_run{seed = 1, nmae = 'typo'} end, "unknown field 'nmae'")
      T.assert_error(function() log:begin_run{seed = 1, [1] = 'x'} end, 'field names')
      T.assert_error(function() log:begin_run{seed = 1, name = 5} end, "'name' must be a string")
      T.assert_error(function() log:begin_run{seed = 1, name = 'a\0b'} end, 'NUL')
      T.assert_error(function() log:begin_run{seed = 1, config_json = '{"a":'} end, 'not valid JSON')
      T.assert_error(function() log:begin_run{seed = 1, config_json = '[]'} end, 'JSON object')
      T.assert_error(function() log:begin_run{seed = 1, git_dirty = 1} end, 'boolean')
      T.assert_error(function() log:begin_run{seed = 1, parent_run_id = 999} end, 'no run 999')
      T.assert_error(function() log:begin_run{seed = 1, world_size = 0} end, 'world_size')
      T.assert_error(function() log.begin_run({seed = 1}) end, 'ddpm.RunLog expected')
   end)
end

function tests.logging_errors()
   with_log(function(log, path)
      local id = log:begin_run{seed = 1}
      T.assert_error(function() log.metric(id, 'loss', 1, 1) end, "call methods with ':'")
      T.assert_error(function() log:metric('1', 'loss', 1, 1) end, 'run_id must be an integer')
      T.assert_error(function() log:metric(1.5, 'loss', 1, 1) end, 'run_id must be an integer')
      T.assert_error(function() log:metric(-1, 'loss', 1, 1) end, 'run_id must be positive')
      T.assert_error(function() log:metric(999, 'loss', 1, 1) end, 'no run 999')
      T.assert_error(function() log:metric(id, nil, 1, 1) end, 'metric name must be a string')
      T.assert_error(function() log:metric(id, '', 1, 1) end, 'metric name is empty')
      T.assert_error(function() log:metric(id, 'loss', 0.5, 1) end, 'step must be an integer')
      T.assert_error(function() log:metric(id, 'loss', 1, 'x') end, 'value must be a number')
      T.assert_error(function() log:metric(id, 'loss', 1) end, 'value must be a number')
      T.assert_error(function() log:artifact(id, 1, nil, path) end, 'kind must be a string')
      T.assert_error(function() log:artifact(id, 1, 'grid', path .. '.missing') end, 'cannot stat')
      T.assert_error(function() log:artifact(id, 1, 'grid', path, '{bad') end, 'meta_json')
      T.assert_error(function() log:artifact(id, 1, 'grid', path, 5) end, 'meta_json must be a string')
      T.assert_error(function() log:artifact(id, -5, 'grid', path) end, 'step must be non-negative')
      T.assert_error(function() log:checkpoint(id, 1, path .. '.missing') end, 'cannot open')
      T.assert_error(function() log:checkpoint(id, nil, path) end, 'step must be an integer')
      T.assert_error(function() log:tag(id, 'k', {}) end, 'tag value must be a string')
      T.assert_error(function() log:tag(id, nil, 'v') end, 'tag key must be a string')
      T.assert_error(function() log:source(id, 'a.lua') end, 'text must be a string')
      T.assert_error(function() log:end_run(id, 'done') end, "status 'done'")
      T.assert_error(function() log:end_run(id) end, 'status must be a string')
      log:end_run(id, 'finished')
      T.assert_error(function() log:end_run(id, 'finished') end, 'already ended')
   end)
end

function tests.query_errors()
   with_log(function(log)
      T.assert_error(function() log:query() end, 'sql must be a string')
      T.assert_error(function() log:query('SELEC 1') end, 'syntax error')
      T.assert_error(function() log:query('SELECT nope FROM runs') end, 'no such column')
      T.assert_error(function() log:query('SELECT 1; SELECT 2') end, 'one SQL statement')
      T.assert_error(function() log:query('SELECT :run') end, ':run has no value')
      T.assert_error(function() log:query('SELECT 1', {nope = 1}) end, "no parameter 'nope'")
      T.assert_error(function() log:query('SELECT :x', {x = {}}) end, 'numbers, strings and booleans')
      T.assert_error(function() log:query('SELECT ?1', {[1.5] = 1}) end, 'not an index')
      T.assert_error(function() log:query('SELECT ?1', {[true] = 1}) end, 'names or indices')
      T.assert_error(function() log:query('SELECT 1', 'x') end, 'table expected')
      T.assert_error(function() log:query('BEGIN') end, 'transaction')
      T.assert_eq(log:query('SELECT ?1 AS a, ?2 AS b', {true, 'x\0y'})[1], {a = 1, b = 'x\0y'})
      T.assert_eq(log:query('SELECT 1 AS one')[1].one, 1, 'still usable after errors')
   end)
end

function tests.closed_log()
   need()
   local path, cleanup = tmpdb()
   local log = core.runlog_open(path)
   local id = log:begin_run{seed = 3}
   log:close()
   T.assert_eq(log:is_open(), false)
   T.assert_eq(tostring(log), '[ddpm.RunLog (closed)]')
   T.assert_error(function() log:metric(id, 'loss', 1, 1) end, 'closed')
   T.assert_error(function() log:query('SELECT 1') end, 'closed')
   T.assert_error(function() log:flush() end, 'closed')
   T.assert_error(function() log:close() end, 'closed')
   log = nil                             -- luacheck: ignore
   collectgarbage()                      -- __gc of a closed log is a no-op
   cleanup()
end

return tests
