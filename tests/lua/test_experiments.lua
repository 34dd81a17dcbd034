-- test_experiments.lua — the shipped experiment scripts end to end on tiny
-- settings: cifar_linear.lua on CIFAR-10 binary files written here (train,
-- then NLL and sample evaluation; --eval_from reproduces the NLL from the
-- checkpoint), and ablation_sigma.lua on Fashion-MNIST (one training shared
-- by both sigma runs, each with its own NLL and FD-LeNet in runs.db), and
-- evaluate.lua reproducing a run's FD-LeNet from its checkpoint.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_exp'
os.execute('mkdir -p ' .. tmp .. '/cifar')

local exe = (function()
   local a, i = arg, 0
   while a[i - 1] do i = i - 1 end
   return a[i]
end)()

local function sh(cmd)
   local p = io.popen(cmd .. ' 2>&1; echo "rc=$?"')
   local out = p:read('*a')
   p:close()
   return tonumber(out:match('rc=(%d+)%s*$')), out
end

local function query(db, sql, params)
   local rl = core.runlog_open(db)
   local rows = rl:query(sql, params)
   rl:close()
   return rows
end

-- CIFAR-10 binary format: records of 1 label byte + 3072 pixel bytes (R, G, B
-- planes of 32x32). Six records per file of smooth colour gradients.
do
   local function write(name, seed)
      local f = assert(io.open(tmp .. '/cifar/' .. name, 'wb'))
      for r = 0, 5 do
         local parts = {string.char((r + seed) % 10)}
         for c = 0, 2 do
            for y = 0, 31 do
               local row = {}
               for x = 0, 31 do row[x + 1] = string.char((x * (c + 1) * 3 + y * (r + 2) + seed * 17) % 256) end
               parts[#parts + 1] = table.concat(row)
            end
         end
         f:write(table.concat(parts))
      end
      f:close()
   end
   for i = 1, 5 do write(('data_batch_%d.bin'):format(i), i) end
   write('test_batch.bin', 9)
end

local CIFAR_ARGS = '--ch=32 --ch_mult=1,2 --num_res_blocks=1 --attn_resolutions=16 --T=20 ' ..
   '--steps=3 --batch=2 --warmup=1 --sample_n=0 --checkpoint_every=0 --nll_batch=4 ' ..
   '--data_dir=' .. tmp .. '/cifar --db=' .. tmp .. '/cifar.db'

function tests.cifar_linear_trains_then_evaluates_nll_and_samples()
   local rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=4 --nll_train_n=2 --eval_samples=3 ' ..
                       '--eval_batch=2'):format(exe, CIFAR_ARGS))
   T.assert_eq(rc, 0, out)
   local db = tmp .. '/cifar.db'
   local run = query(db, 'SELECT run_id, status FROM runs ORDER BY run_id DESC LIMIT 1')[1]
   T.assert_eq(run.status, 'finished')
   local m = {}
   for _, r in ipairs(query(db, "SELECT key, step, value FROM metrics_v WHERE run_id = :id", {id = run.run_id})) do
      m[r.key] = m[r.key] or {}
      m[r.key][#m[r.key] + 1] = r
   end
   for _, k in ipairs{'nll_bpd', 'nll_train_bpd', 'nll_prior'} do
      T.assert_true(m[k] and m[k][1].value > 0 and m[k][1].value < 100,
                    ('%s logged, a positive finite bits/dim: %s'):format(k, m[k] and m[k][1].value))
      T.assert_eq(m[k][1].step, 3, k .. ' at the last training step')
   end
   T.assert_eq(#m.nll_t, 20, 'one nll_t term per timestep (T = 20)')
   local arts = query(db, "SELECT kind, path, meta_json FROM artifacts WHERE run_id = :id ORDER BY kind", {id = run.run_id})
   local kinds = {}
   for _, a in ipairs(arts) do kinds[a.kind] = a end
   T.assert_true(kinds.sample_dir ~= nil and kinds.sample_grid ~= nil, 'sample folder and grid are artifacts')
   local n = 0
   for i = 0, 2 do
      local f = io.open(('%s/%06d.png'):format(kinds.sample_dir.path, i), 'rb')
      if f and f:read(8) == '\137PNG\r\n\26\n' then n = n + 1 end
      if f then f:close() end
   end
   T.assert_eq(n, 3, 'three sample PNGs written')
   T.assert_true(io.open(('%s/%06d.png'):format(kinds.sample_dir.path, 3)) == nil, 'and no fourth')
   local one = core.dataset_png_dir(kinds.sample_dir.path, 3)
   T.assert_eq(one:shape(), {3, 32, 32}, 'each sample is one 32x32 RGB image')

   -- --eval_from the final checkpoint: its EMA, the same NLL bit for bit
   local ck = query(db, 'SELECT path FROM checkpoints WHERE run_id = :id ORDER BY step DESC', {id = run.run_id})[1]
   rc, out = sh(('%s experiments/cifar_linear.lua %s --nll_n=4 --eval_samples=0 --eval_from=%s'):format(
      exe, CIFAR_ARGS, ck.path))
   T.assert_eq(rc, 0, out)
   local r2 = query(db, 'SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1')[1]
   local v2 = query(db, "SELECT value FROM metrics_v WHERE run_id = :id AND key = 'nll_bpd'", {id = r2.run_id})[1]
   T.assert_eq(v2.value, m.nll_bpd[1].value, 'the checkpoint EMA evaluates to the same NLL')
   local nloss = query(db, "SELECT count(*) AS n FROM metrics_v WHERE run_id = :id AND key = 'loss'", {id = r2.run_id})[1]
   T.assert_eq(nloss.n, 0, 'no training in an --eval_from run')
end

-- --precision=bf16 trains with bfloat16 products (64/128 channels: the
-- 128-input layers run in bf16), is recorded in the run's config, and is a
-- clear error on a CPU without AVX512-BF16
function tests.cifar_linear_trains_in_bf16()
   local args = CIFAR_ARGS:gsub('%-%-ch=32', '--ch=64') .. ' --nll_n=0 --eval_samples=0'
   local db = tmp .. '/cifar.db'
   local function last_loss()
      local r = query(db, 'SELECT run_id, status, config_json ->> \'$.precision\' AS p FROM runs ' ..
                      'ORDER BY run_id DESC LIMIT 1')[1]
      local l = query(db, "SELECT value FROM metrics_v WHERE run_id = :id AND key = 'loss' " ..
                      'ORDER BY step DESC LIMIT 1', {id = r.run_id})[1]
      return r, l.value
   end
   local rc, out = sh(('%s experiments/cifar_linear.lua %s'):format(exe, args))
   T.assert_eq(rc, 0, out)
   local r32, l32 = last_loss()
   rc, out = sh(('%s experiments/cifar_linear.lua %s --precision=bf16'):format(exe, args))
   T.assert_eq(rc, 0, out)
   local r16, l16 = last_loss()
   T.assert_eq(r32.p, 'float32')
   T.assert_eq(r16.p, 'bf16', 'the precision is in the run\'s config')
   T.assert_eq(r16.status, 'finished')
   T.assert_true(l16 ~= l32, ('bf16 changed the arithmetic (loss %.9g against %.9g)'):format(l16, l32))
   T.assert_true(math.abs(l16 - l32) < 0.05 * math.abs(l32),
                 ('and the loss stays within 5%% of float32 (%.6g against %.6g)'):format(l16, l32))
   rc, out = sh(('DDPM_NO_BF16=1 %s experiments/cifar_linear.lua %s --precision=bf16'):format(exe, args))
   T.assert_true(rc ~= 0 and out:find('AVX512-BF16', 1, true) ~= nil, out)
end

function tests.cifar_linear_reports_a_missing_data_dir()
   local rc, out = sh(('%s experiments/cifar_linear.lua --data_dir=%s/nowhere --db=%s/x.db'):format(exe, tmp, tmp))
   T.assert_true(rc ~= 0 and out:find('nowhere not found', 1, true) ~= nil, out)
end

function tests.ablation_sigma_shares_training_and_logs_both()
   local db = tmp .. '/abl.db'
   local rc, out = sh(('%s experiments/ablation_sigma.lua --db=%s --T=20 --steps=4 --batch=8 --warmup=1 ' ..
                       '--sample_n=0 --nll_n=8 --nll_batch=8 --fd_n=16 --fd_steps=5'):format(exe, db))
   T.assert_eq(rc, 0, out)
   local rows = query(db, [[SELECT r.run_id, r.status, r.config_json ->> '$.var_type' AS var,
      max(m.value) FILTER (WHERE m.key = 'nll_bpd') AS nll, max(m.value) FILTER (WHERE m.key = 'fd_lenet') AS fd,
      count(*) FILTER (WHERE m.key = 'loss') AS nloss
      FROM runs r JOIN metrics_v m USING (run_id) WHERE r.experiment = 'ablation_sigma' GROUP BY r.run_id
      ORDER BY r.run_id]])
   T.assert_eq(#rows, 2, 'two runs')
   T.assert_eq({rows[1].var, rows[2].var}, {'fixedlarge', 'fixedsmall'})
   for _, r in ipairs(rows) do
      T.assert_eq(r.status, 'finished')
      T.assert_true(r.nll and r.nll > 0 and r.fd and r.fd > 0, 'NLL and FD-LeNet logged for run ' .. r.run_id)
   end
   T.assert_eq(rows[1].nloss, 4, 'the first run trained 4 steps')
   T.assert_eq(rows[2].nloss, 0, 'the second did not train')
   T.assert_true(rows[1].nll ~= rows[2].nll, 'sigma changes the NLL bound')
   local tag = query(db, "SELECT value FROM run_tags WHERE run_id = :id AND key = 'weights_from_run'",
                     {id = rows[2].run_id})
   T.assert_eq(tonumber(tag[1] and tag[1].value), rows[1].run_id, 'weights_from_run names the trained run')
   local fdm = query(db, [[SELECT count(*) AS n FROM metrics_v WHERE key LIKE 'fd_lenet%' AND run_id = :id]],
                     {id = rows[2].run_id})
   T.assert_true(fdm[1].n >= 1, 'FD-LeNet metric of the second run')

   -- experiments/evaluate.lua on the second run (no checkpoint of its own: the
   -- weights of the run it reused) with the same settings reproduces its FD-LeNet
   rc, out = sh(('%s experiments/evaluate.lua --db=%s --run=%d --fd_n=16 --fd_steps=5'):format(
      exe, db, rows[2].run_id))
   T.assert_eq(rc, 0, out)
   local ev = query(db, [[SELECT c.parent_run_id AS parent, m.value FROM runs c JOIN metrics_v m USING (run_id)
      WHERE c.experiment = 'evaluate' AND m.key = 'fd_lenet']])
   T.assert_eq(#ev, 1)
   T.assert_eq(ev[1].parent, rows[2].run_id, 'the evaluation is a child of the evaluated run')
   -- (equal up to the last bits: the test-set statistics may come from the
   -- cache file in one process and be computed in the other)
   T.assert_near(ev[1].value, rows[2].fd, 1e-9 * rows[2].fd, 'same weights, seed and sampler: the same FD-LeNet')
   rc, out = sh(('%s experiments/evaluate.lua --db=%s --run=99'):format(exe, db))
   T.assert_true(rc ~= 0 and out:find('no run 99', 1, true) ~= nil, out)
end

return tests
