-- test_fid.lua — FID and the Inception Score from Lua (lib/ddpm/fid.lua,
-- bindings/l_inception.c, lib/ddpm/cmd/fid.lua, experiments/cifar_linear.lua).
--
-- The network runs with the random weights of the parity fixture
-- (tests/fixtures/inception_weights.safetensors, made by `make test` with
-- python3-torchvision; tests/c/test_inception.c proves it equal to PyTorch);
-- without it the tests that need it skip and say why. Checked here: the
-- Inception Score against numpy on the same logits, FID against numpy's
-- non-symmetric eigenvalue route Tr sqrt(S1 S2), a folder of PNGs (ddpmlua
-- fid) equal to the same samples fed as a tensor, .npz statistics round
-- trips, cifar_linear.lua --fid_n logging fid/is to runs.db and agreeing with
-- `ddpmlua fid RUN`, and the bad inputs: missing or wrong weights, truncated
-- .npz, wrong channel count, too few samples (a warning naming the number).

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local fid = require 'ddpm.fid'
local core = ddpm.core

local tests = T.suite()

local WEIGHTS = 'tests/fixtures/inception_weights.safetensors'
local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_fid'
os.execute('mkdir -p ' .. tmp .. '/png ' .. tmp .. '/cifar')

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

local function have_weights()
   local f = io.open(WEIGHTS, 'rb')
   if f then f:close(); return true end
   local rc = sh('/usr/bin/python3 -c "import torchvision"')
   if rc ~= 0 then T.skip('python3-torchvision is not installed: no Inception fixture weights') end
   error(WEIGHTS .. ' is missing (make test generates it with scripts/torch_inception.py)')
end

local function have_numpy()
   if sh('/usr/bin/python3 -c "import numpy"') ~= 0 then T.skip('numpy is not installed') end
end

-- 40 smooth random images in [-1, 1]
local function samples(seed, n)
   local x = ddpm.randn({n or 40, 3, 32, 32}, seed)
   return (x * 0.5):clamp(-1, 1)
end

function tests.inception_score_matches_numpy()
   have_numpy()
   local logits = ddpm.randn({50, 1008}, 3) * 4
   -- write the logits as text for numpy
   local f = assert(io.open(tmp .. '/logits.txt', 'w'))
   local t = logits:totable()
   for i = 1, #t do
      local row = {}
      for j = 1, #t[i] do row[j] = ('%.9g'):format(t[i][j]) end
      f:write(table.concat(row, ' '), '\n')
   end
   f:close()
   local rc, out = sh(([[/usr/bin/python3 -c "
import numpy as np
l = np.loadtxt('%s', dtype=np.float32).astype(np.float64)
scores = []
for part in np.array_split(l, 5):
    p = np.exp(part - part.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    py = p.mean(0, keepdims=True)
    scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), 1))))
print('%%.15g %%.15g' %% (np.mean(scores), np.std(scores)))
"]]):format(tmp .. '/logits.txt'))
   T.assert_eq(rc, 0, out)
   local want_m, want_s = out:match('(%S+) (%S+)')
   local m, s = fid.inception_score(logits, 5)
   T.assert_near(m, tonumber(want_m), 1e-9 * tonumber(want_m), 'IS mean as numpy computes it')
   T.assert_near(s, tonumber(want_s), 1e-7, 'IS std (ddof 0) as numpy computes it')
   T.assert_true(m > 1.5, 'sharp logits give an IS well above 1: ' .. m)
   T.assert_error(function() fid.inception_score(logits, 51) end, 'at least one image per split')

end

function tests.fid_matches_numpy_and_npz_round_trips()
   have_weights(); have_numpy()
   local acc_a = fid.accumulator{weights = WEIGHTS}
   acc_a:add(samples(1))
   local acc_b = fid.accumulator{net = acc_a.net}
   acc_b:add(samples(2) * 0.7)
   local a_path, b_path = tmp .. '/a.npz', tmp .. '/b.npz'
   fid.save_ref(a_path, acc_a:stats())
   fid.save_ref(b_path, acc_b:stats())
   local d = fid.distance(acc_a:stats(), acc_b:stats())
   local ra, known = fid.load_ref(a_path)
   T.assert_true(known, 'our .npz carries n')
   T.assert_eq(ra:count(), 40)
   T.assert_near(fid.distance(ra, acc_b:stats()), d, 1e-9 * d, 'the .npz statistics give the same FID')
   T.assert_near(fid.distance(ra, acc_a:stats()), 0, 1e-8, 'FID of statistics against themselves is 0')
   local rc, out = sh(([[/usr/bin/python3 -c "
import numpy as np
a = np.load('%s'); b = np.load('%s')
ev = np.linalg.eigvals(a['sigma'] @ b['sigma'])
tr = np.sum(np.sqrt(np.clip(ev.real, 0, None)))
print('%%.15g' %% (np.sum((a['mu'] - b['mu'])**2) + np.trace(a['sigma']) + np.trace(b['sigma']) - 2 * tr))
"]]):format(a_path, b_path))
   T.assert_eq(rc, 0, out)
   local want = tonumber(out:match('^(%S+)'))
   T.assert_near(d, want, 1e-6 * want, 'FID equals numpy through Tr sqrt(S1 S2)')
   -- a published-style file without n: statistics usable, n unknown
   sh(([[/usr/bin/python3 -c "
import numpy as np
a = np.load('%s'); np.savez_compressed('%s', mu=a['mu'], sigma=a['sigma'])
"]]):format(a_path, tmp .. '/published.npz'))
   local rp, known2 = fid.load_ref(tmp .. '/published.npz')
   T.assert_true(not known2, 'a file without n says so')
   T.assert_near(fid.distance(rp, acc_b:stats()), d, 1e-9 * d, 'a compressed numpy .npz gives the same FID')
   rp:free(); ra:free()
   acc_b:free(); acc_a:free()
end

function tests.folder_of_pngs_equals_the_tensor()
   have_weights()
   local x = samples(5, 24)
   for i = 1, 24 do ddpm.save_grid(('%s/png/%03d.png'):format(tmp, i), x:narrow(1, i, 1), 1, 0) end
   local acc = fid.accumulator{weights = WEIGHTS}
   acc:add(x)
   local ref = tmp .. '/self.npz'
   fid.save_ref(ref, acc:stats())
   local r = acc:result{ref = ref, splits = 4, warn = false}
   local rf = fid.folder(tmp .. '/png', {net = acc.net, ref = ref, splits = 4, warn = false})
   T.assert_eq(rf.n, 24)
   T.assert_near(rf.fid, 0, 1e-6, 'the PNGs give the features of the quantized tensor')
   T.assert_near(rf.is, r.is, 1e-12, 'and the same Inception Score')
   T.assert_true(rf.warning and rf.warning:find('24 samples', 1, true), 'the warning names the count')
   -- the command
   local rc, out = sh(('%s fid %s/png --ref %s --weights %s --splits 4'):format(exe, tmp, ref, WEIGHTS))
   T.assert_eq(rc, 0, out)
   T.assert_true(out:find('FID %-?0%.0000  %(') and out:find(('IS  %.4f'):format(r.is), 1, true), out)
   T.assert_true(out:find('warning: FID from 24 samples', 1, true), out)
   acc:free()
end

function tests.bad_inputs_are_clear_errors()
   have_weights()
   -- weights: missing (says what to get and how to convert), wrong file
   local e = T.assert_error(function() fid.inception(tmp .. '/none.safetensors') end, 'convert_inception.py')
   T.assert_true(e:find('pt_inception-2015-12-05-6726825d.pth', 1, true), e)
   local u = ddpm.unet{ch = 32, ch_mult = {1}, num_res_blocks = 1, attn_resolutions = {}, resolution = 8}
   u:save(tmp .. '/unet.safetensors')
   T.assert_error(function() fid.inception(tmp .. '/unet.safetensors') end, "unexpected tensor")
   local rc, out = sh(('%s fid %s/png --weights %s/unet.safetensors'):format(exe, tmp, tmp))
   T.assert_true(rc == 1 and out:find('not part of the FID Inception network', 1, true), out)
   -- .npz: truncated, not statistics, wrong dimension
   local acc = fid.accumulator{weights = WEIGHTS}
   acc:add(samples(7, 4))
   fid.save_ref(tmp .. '/s.npz', acc:stats())
   local f = assert(io.open(tmp .. '/s.npz', 'rb'))
   local bytes = f:read('*a')
   f:close()
   f = assert(io.open(tmp .. '/cut.npz', 'wb'))
   f:write(bytes:sub(1, 5000))
   f:close()
   T.assert_error(function() fid.load_ref(tmp .. '/cut.npz') end, 'cut.npz: not a zip archive')
   rc, out = sh(('%s fid %s/png --ref %s/cut.npz --weights %s'):format(exe, tmp, tmp, WEIGHTS))
   T.assert_true(rc == 1 and out:find('truncated', 1, true) and not out:find('images'), out)
   local g = core.gauss_stats(10)
   g:add(ddpm.randn({3, 10}, 1))
   fid.save_ref(tmp .. '/d10.npz', g)
   T.assert_error(function() fid.load_ref(tmp .. '/d10.npz') end, 'have 10 dimensions')
   -- images: channels, rank, size
   T.assert_error(function() acc:add(ddpm.zeros(2, 1, 28, 28)) end, 'FID needs RGB images [N,3,H,W], got [2,1,28,28]')
   T.assert_error(function() acc:add(ddpm.zeros(2, 3, 32)) end, 'got [2,3,32]')
   T.assert_error(function() acc:add(ddpm.zeros(2, 3, 4, 4)) end, 'too small')
   T.assert_error(function() acc.net:forward(ddpm.zeros(2, 4, 32, 32)) end, 'expected RGB images')
   -- a folder of PNGs of two sizes: the error names the odd file
   os.execute('mkdir -p ' .. tmp .. '/mixed')
   ddpm.save_grid(tmp .. '/mixed/a.png', samples(9, 1), 1, 0)
   ddpm.save_grid(tmp .. '/mixed/b.png', ddpm.zeros(1, 3, 16, 16), 1, 0)
   T.assert_error(function() fid.folder(tmp .. '/mixed', {net = acc.net}) end, 'b.png')
   -- too few samples: an error below 2, a warning naming the number below 2048
   local one = fid.accumulator{net = acc.net}
   one:add(samples(8, 1))
   T.assert_error(function() one:result{} end, 'need at least 2')
   T.assert_true(fid.sample_warning(1500):find('1500 samples', 1, true), 'the warning names 1500')
   T.assert_true(fid.sample_warning(5000):find('5000 samples', 1, true), 'and 5000')
   T.assert_eq(fid.sample_warning(50000), nil, 'none at 50,000')
   one:free()
   acc:free()
   g:free()
   -- a freed network
   local net = fid.inception(WEIGHTS)
   net:free()
   T.assert_error(function() net:forward(ddpm.zeros(1, 3, 32, 32)) end, 'was freed')
end

-- CIFAR-10 binary files of smooth gradients (as test_experiments.lua writes them)
local function write_cifar()
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

function tests.cifar_linear_logs_fid_and_is_and_the_command_agrees()
   have_weights()
   write_cifar()
   local ref = tmp .. '/ref.npz'
   local acc = fid.accumulator{weights = WEIGHTS}
   acc:add(samples(11, 12))
   fid.save_ref(ref, acc:stats())
   acc:free()
   local db = tmp .. '/cifar.db'
   local args = ('--ch=32 --ch_mult=1,2 --num_res_blocks=1 --attn_resolutions=16 --T=10 --steps=2 '
      .. '--batch=2 --warmup=1 --sample_n=0 --checkpoint_every=0 --nll_n=0 --eval_batch=6 '
      .. '--data_dir=%s/cifar --db=%s'):format(tmp, db)
   -- missing weights: refused before training, no run recorded
   local rc, out = sh(('%s experiments/cifar_linear.lua %s --eval_samples=0 --fid_n=12 --fid_ref=%s '
                       .. '--fid_weights=%s/none.safetensors'):format(exe, args, ref, tmp))
   T.assert_true(rc ~= 0 and out:find('convert_inception.py', 1, true), out)
   local f = io.open(db, 'rb')
   T.assert_true(f == nil, 'no run database was created for a run refused up front')
   if f then f:close() end
   rc, out = sh(('%s experiments/cifar_linear.lua %s --eval_samples=12 --fid_n=12 --fid_ref=%s '
                 .. '--fid_weights=%s'):format(exe, args, ref, WEIGHTS))
   T.assert_eq(rc, 0, out)
   T.assert_true(out:find('warning: FID from 12 samples', 1, true), out)
   local rl = core.runlog_open(db)
   local rows = rl:query("SELECT key, value FROM metrics_v WHERE key IN ('fid', 'is', 'is_std', 'fid_n')")
   rl:close()
   local m = {}
   for _, r in ipairs(rows) do m[r.key] = r.value end
   T.assert_eq(m.fid_n, 12)
   T.assert_true(m.fid and m.fid > 0 and m.is and m.is >= 1 and m.is_std, 'fid, is, is_std logged')
   rc, out = sh(('%s fid last --db %s --ref %s --weights %s'):format(exe, db, ref, WEIGHTS))
   T.assert_eq(rc, 0, out)
   local got_fid = tonumber(out:match('FID ([%d%.%-]+)  %('))
   local got_is = tonumber(out:match('IS  ([%d%.]+) %+%-'))
   T.assert_near(got_fid, m.fid, 1e-4 * m.fid + 1e-4, 'ddpmlua fid on the run\'s PNGs = the logged FID')
   T.assert_near(got_is, m.is, 1e-4, 'and the same IS')
end

return tests
