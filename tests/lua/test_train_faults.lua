-- test_train_faults.lua — numerical faults in ddpm.train: a NaN in a
-- parameter or a pixel is caught at the step it reaches the loss. By default
-- (nan = 'stop') the run stops with an error naming the step and the batch's
-- t, ends 'failed' with that reason and keeps its last good checkpoint;
-- nan = 'skip' skips such steps (no Adam or EMA update), counts them as the
-- metric nonfinite_skips and stops after max_nonfinite of them in a row.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_faults'
os.execute('mkdir -p ' .. tmp)

-- 64 synthetic 8x8 images (a bright 2x2 square at one of four places) as an
-- uncompressed IDX file.
local function u32be(n)
   return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                      math.floor(n / 256) % 256, n % 256)
end
local IDX = tmp .. '/synthetic-idx3-ubyte'
do
   local parts = {'\0\0\8\3', u32be(64), u32be(8), u32be(8)}
   for n = 0, 63 do
      local q = n % 4
      local oy, ox = (q < 2) and 1 or 5, (q % 2 == 0) and 1 or 5
      for y = 0, 7 do
         for x = 0, 7 do
            parts[#parts + 1] = string.char((y >= oy and y < oy + 2 and x >= ox and x < ox + 2) and 255 or 0)
         end
      end
   end
   local f = assert(io.open(IDX, 'wb'))
   f:write(table.concat(parts))
   f:close()
end

local function tiny_model()
   return ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0, in_ch = 1, out_ch = 1, resolution = 8, seed = 1}
end

local function query(db, sql, params)
   local rl = core.runlog_open(db)
   local rows = rl:query(sql, params)
   rl:close()
   return rows
end

local function ls(dir)
   local p = io.popen('ls -1A ' .. dir .. ' 2>/dev/null')
   local out = {}
   for l in p:lines() do out[#out + 1] = l end
   p:close()
   table.sort(out)
   return out
end

-- The t that ddpm.train draws for step s of a run with this seed (uniform
-- sampling: stream 1 under the seed, counter (s - 1) * 2^20).
local function t_of_step(seed, s, B, Tn)
   local t = core.randint(B, Tn, core.mix_seed(seed, 1), (s - 1) * 1048576)
   local out = {}
   for i = 1, B do out[i] = tostring(t[i]) end
   return table.concat(out, ',')
end

local function train_opts(db, extra)
   local o = {model = tiny_model(), diffusion = ddpm.diffusion{T = 20}, data = core.dataset_idx(IDX),
              steps = 12, batch = 8, lr = 1e-3, seed = 4, db = db, name = 'faults', progress = false,
              sample_n = 0, checkpoint_every = 3, keep_checkpoints = 5}
   for k, v in pairs(extra) do o[k] = v end
   return o
end

-- A parameter set to NaN after step 4 reaches the loss at step 5.
function tests.nan_parameter_stops_the_run_at_that_step()
   local db = tmp .. '/stop.db'
   local o = train_opts(db, {})
   local m = o.model
   o.on_step = function(step) if step == 4 then m:flat_params():narrow(1, 10, 1):fill(0 / 0) end end
   local ok, err = pcall(ddpm.train, o)
   T.assert_true(not ok, 'training with a NaN parameter must fail')
   err = tostring(err)
   T.assert_true(err:find('not finite at step 5', 1, true) ~= nil, err)
   local want_t = t_of_step(4, 5, 8, 20)
   T.assert_true(err:find('t of the batch: ' .. want_t, 1, true) ~= nil,
                 ('the error names the t of step 5 (%s): %s'):format(want_t, err))
   local r = query(db, 'SELECT run_id, status, error_text FROM runs')[1]
   T.assert_eq(r.status, 'failed')
   T.assert_true(r.error_text:find('not finite at step 5', 1, true) ~= nil, r.error_text)
   -- the step-3 checkpoint is the last one, intact and finite
   local ck = query(db, 'SELECT step, path FROM checkpoints ORDER BY step')
   T.assert_eq(#ck, 1)
   T.assert_eq(ck[1].step, 3)
   T.assert_true(err:find(ck[1].path, 1, true) ~= nil, 'the error names the last good checkpoint')
   local st = core.load_safetensors(ck[1].path)
   for k, v in pairs(st) do
      local s = v:sum()
      T.assert_true(s - s == 0, k .. ' in the checkpoint is finite')
   end
   T.assert_eq(query(db, "SELECT max(step) AS s FROM metrics_v WHERE key = 'loss'")[1].s, 4,
               'no metrics of the failed step')
end

-- NaN set at a checkpoint step: that checkpoint is refused, the one before kept.
function tests.nonfinite_parameters_are_never_checkpointed()
   local db = tmp .. '/ckpt.db'
   local o = train_opts(db, {})
   local m = o.model
   o.on_step = function(step) if step == 6 then m:flat_params():narrow(1, 10, 1):fill(1 / 0) end end
   local ok, err = pcall(ddpm.train, o)
   T.assert_true(not ok, 'training must fail')
   T.assert_true(tostring(err):find('parameters are not finite at step 6; no checkpoint written', 1, true)
                 ~= nil, tostring(err))
   local ck = query(db, 'SELECT step, path FROM checkpoints ORDER BY step')
   T.assert_eq(#ck, 1)
   T.assert_eq(ck[1].step, 3)
   local dir = ck[1].path:match('^(.*)/[^/]*$')
   T.assert_eq(ls(dir), {'ckpt-00000003.safetensors'}, 'no step-6 file and no temp file')
   T.assert_eq(query(db, 'SELECT status FROM runs')[1].status, 'failed')
end

-- A data set whose example 7 has a NaN pixel: each step whose batch holds
-- it is skipped with nan = 'skip'.
local function nan_pixel_data(bad)
   local inner = core.dataset_idx(IDX)
   local d = {}
   function d:size() return inner:size() end
   function d:shape() return inner:shape() end
   function d:permutation(...) return inner:permutation(...) end
   function d:batch(idx, P, flips, buf)
      local x = inner:batch(idx, P, flips, buf)
      local has = false
      for i, k in ipairs(idx) do
         if k == 7 then
            x:narrow(1, i, 1):narrow(3, 2, 1):narrow(4, 2, 1):fill(0 / 0)
            has = true
         end
      end
      bad[#bad + 1] = has
      return x
   end
   return d
end

function tests.nan_skip_skips_the_steps_and_counts_them()
   local db = tmp .. '/skip.db'
   local bad = {}
   local o = train_opts(db, {data = nan_pixel_data(bad), nan = 'skip', steps = 16, checkpoint_every = 0})
   local adam = core.adam(o.model:num_params(), {beta1 = 0.9, beta2 = 0.999, eps = 1e-8})
   local adam_t = {}
   o.adam = adam
   o.on_step = function(step) adam_t[step] = adam:t() end
   local r = ddpm.train(o)
   T.assert_eq(r.status, 'finished')
   T.assert_eq(#bad, 16)
   local nbad = 0
   for s = 1, 16 do if bad[s] then nbad = nbad + 1 end end
   T.assert_true(nbad >= 2 and nbad < 16, ('example 7 is in %d of the 16 batches'):format(nbad))
   T.assert_eq(adam:t(), 16 - nbad, 'one Adam step per finite step')
   for s = 2, 16 do
      T.assert_eq(adam_t[s] - adam_t[s - 1], bad[s] and 0 or 1, 'Adam at step ' .. s)
   end
   local rows = query(db, "SELECT step, value FROM metrics_v WHERE key = 'nonfinite_skips' ORDER BY step")
   T.assert_eq(#rows, nbad)
   local k = 0
   for s = 1, 16 do
      if bad[s] then
         k = k + 1
         T.assert_eq({rows[k].step, rows[k].value}, {s, k}, 'skip counted at step ' .. s)
      end
   end
   local p = r.model:flat_params():sum()
   T.assert_true(p - p == 0, 'the parameters stay finite')
   local e = r.ema:flat_params():sum()
   T.assert_true(e - e == 0, 'the EMA stays finite')
end

function tests.nan_skip_stops_after_max_nonfinite_in_a_row()
   local db = tmp .. '/skipmax.db'
   local o = train_opts(db, {nan = 'skip', max_nonfinite = 3, checkpoint_every = 4})
   local m = o.model
   o.on_step = function(step) if step == 5 then m:flat_params():narrow(1, 10, 1):fill(0 / 0) end end
   local ok, err = pcall(ddpm.train, o)
   T.assert_true(not ok, 'a NaN that stays must stop the run')
   err = tostring(err)
   T.assert_true(err:find('not finite at step 8', 1, true) and
                 err:find('3 steps in a row were not finite (max_nonfinite = 3)', 1, true), err)
   local rows = query(db, "SELECT step, value FROM metrics_v WHERE key = 'nonfinite_skips' ORDER BY step")
   T.assert_eq(#rows, 3)
   T.assert_eq({rows[1].step, rows[1].value, rows[3].step, rows[3].value}, {6, 1, 8, 3})
   T.assert_eq(query(db, 'SELECT status FROM runs')[1].status, 'failed')
   T.assert_eq(query(db, 'SELECT max(step) AS s FROM checkpoints')[1].s, 4)
end

function tests.nan_option_is_checked()
   T.assert_error(function() ddpm.train(train_opts(tmp .. '/opt.db', {nan = 'ignore'})) end,
                  "nan must be 'stop' or 'skip'")
end

return tests
