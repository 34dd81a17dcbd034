-- test_metrics.lua — FD-LeNet (lib/ddpm/metrics.lua, bindings/l_lenet.c):
-- the committed classifier loads and classifies Fashion-MNIST, FD-LeNet
-- orders test-vs-test below test-vs-noise, the test-set statistics cache,
-- deterministic training, the SQLite logging helper, and every bad argument
-- as a Lua error with a useful message. The kernels and the distance itself
-- are tested in C (tests/c/test_lenet.c, tests/c/test_frechet.c).

local T = require 'ddpm.test'
local core = require 'ddpm.core'
local metrics = require 'ddpm.metrics'

local tests = T.suite()

local FMNIST = (os.getenv('DDPMLUA_FASHION_MNIST') or '/usr/share/datasets/fashion-mnist') ..
               '/t10k-images-idx3-ubyte.gz'

local function exists(path)
   local f = io.open(path, 'rb')
   if f then f:close() end
   return f ~= nil
end

local function need_data()
   if not exists(FMNIST) then T.skip('Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)') end
end

local function need_weights()
   if not exists(metrics.DEFAULT_CLASSIFIER) then
      error(metrics.DEFAULT_CLASSIFIER .. ' is missing: run ./ddpmlua scripts/train_lenet.lua', 0)
   end
end

-- The first n test images and labels (cached across tests).
local cache = {}
local function test_set(n)
   if not cache.d then cache.d = require('ddpm.data').fashion_mnist{split = 'test'} end
   local idx, lab = {}, {}
   for i = 1, n do idx[i], lab[i] = i, cache.d:label(i) end
   return cache.d:batch(idx), lab
end

local function tmpdir()
   local base = os.tmpname()
   os.remove(base)
   os.execute('mkdir -p ' .. base)
   return base, function() os.execute("rm -rf '" .. base .. "'") end
end

function tests.committed_weights_load()
   need_weights()
   local m, meta = metrics.load_lenet()
   T.assert_eq(m:num_params(), 61706)
   T.assert_eq(m:param_names(), {'conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'fc1.weight',
                                 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias'})
   T.assert_eq(meta['ddpmlua.model'], 'lenet5')
   T.assert_eq(meta['ddpmlua.params_sha256'], m:params_sha256(), 'the metadata hash is of these weights')
   local acc = tonumber(meta['ddpmlua.test_accuracy'])
   T.assert_true(acc and acc >= 0.89, 'recorded test accuracy ' .. tostring(acc))
   T.assert_true(tostring(m):find('ddpm.LeNet', 1, true))
end

function tests.accuracy_on_1000_test_images()
   need_data(); need_weights()
   local m = metrics.load_lenet()
   local x, lab = test_set(1000)
   local correct, loss = m:evaluate(x, lab)
   print(('# accuracy on test[1..1000]: %.3f, loss %.4f'):format(correct / 1000, loss))
   T.assert_true(correct / 1000 >= 0.85, 'accuracy ' .. correct / 1000)
   -- forward, predict and features agree on the logits/features of a batch.
   local sub = x:narrow(1, 1, 16):contiguous()
   local l1, f1 = m:forward(sub)
   local l2, f2 = m:predict(sub)
   T.assert_true(l1:equal(l2) and f1:equal(f2), 'forward = predict')
   T.assert_true(m:features(sub):equal(f2), 'features = predict features')
   T.assert_eq(f1:size(), {16, 84})
end

function tests.fd_orders_test_halves_below_noise()
   need_data(); need_weights()
   local x = test_set(4000)
   local a, b = x:narrow(1, 1, 2000), x:narrow(1, 2001, 2000)
   local noise = core.rand({2000, 1, 28, 28}, 3):mul_(2):add_(-1)
   local fd_ab, info = metrics.fd_lenet(a, {reference = b})
   local fd_an = metrics.fd_lenet(noise, {reference = b})
   print(('# FD-LeNet test half vs half (2000 each) %.3f, noise vs test %.1f'):format(fd_ab, fd_an))
   T.assert_eq(info.n, 2000)
   T.assert_eq(info.reference, 'images')
   T.assert_true(fd_ab >= 0 and fd_ab < 10, 'test vs test ' .. fd_ab)
   T.assert_true(fd_an > 50 * fd_ab, 'noise vs test ' .. fd_an)
   -- Padded 32x32 samples are centre-cropped to the same images.
   local p = core.full({2000, 1, 32, 32}, -1)
   p:narrow(3, 3, 28):narrow(4, 3, 28):copy(a)
   T.assert_near(metrics.fd_lenet(p, {reference = b}), fd_ab, 1e-9, '[N,1,32,32] is cropped')
   -- Samples are read as 8-bit images: test images (8-bit already) are
   -- unchanged, values past [-1, 1] count as +-1, and a sub-level offset
   -- rounds away; quantize = false takes the raw floats.
   T.assert_true(a:to_8bit():equal(a), '8-bit images are fixed points of to_8bit')
   local far = a:clone():mul_(3)
   local fd_far = metrics.fd_lenet(far, {reference = b})
   T.assert_near(fd_far, metrics.fd_lenet(far:clamp(-1, 1), {reference = b}), 1e-9, 'out-of-range values clamp')
   T.assert_true(metrics.fd_lenet(far, {reference = b, quantize = false}) > 10 * fd_far, 'raw floats do not')
   T.assert_near(metrics.fd_lenet(a:clone():add_(0.7 / 255), {reference = b}), fd_ab, 1e-9,
                 'a third of a level rounds back')
end

function tests.to_8bit_levels()
   local x = core.zeros({6})
   local v = {-2, -1, 1 / 127.5 - 1 + 0.3 / 127.5, 0.5, 1.5, 0 / 0}
   for i = 1, 6 do x[i] = v[i] end
   local y = x:to_8bit()
   local want = {-1, -1, 1 / 127.5 - 1, math.floor(1.5 * 127.5 + 0.5) / 127.5 - 1, 1, 128 / 127.5 - 1}
   for i = 1, 6 do T.assert_near(y[i], want[i], 1e-6, 'value ' .. i) end
   T.assert_true(x[1] == -2, 'to_8bit returns a new tensor')
end

function tests.test_set_statistics_are_cached_by_sha256()
   need_data(); need_weights()
   local dir, cleanup = tmpdir()
   local ok, err = pcall(function()
      local w = dir .. '/lenet.safetensors'
      os.execute(("cp '%s' '%s'"):format(metrics.DEFAULT_CLASSIFIER, w))
      local x = test_set(500)
      local fd1, info = metrics.fd_lenet(x, {classifier = w})
      local sha = core.sha256_file(w)
      T.assert_eq(info.classifier_sha256, sha)
      T.assert_eq(info.reference, 'fmnist-test')
      local cached = dir .. '/lenet.fmnist-test-stats.' .. sha:sub(1, 16) .. '.safetensors'
      T.assert_true(exists(cached), 'cache file ' .. cached)
      local g, meta = core.gauss_load(cached)
      T.assert_eq(g:count(), 10000)
      T.assert_eq(meta['ddpmlua.classifier_sha256'], sha)
      T.assert_true(fd1 > 0 and fd1 < 20, 'FD of 500 test images vs the test set ' .. fd1)
      T.assert_eq(metrics.fd_lenet(x, {classifier = w}), fd1, 'same value through the cache')
      T.assert_eq(metrics.fd_lenet(x, {classifier = w, cache = false}), fd1, 'same value without it')
      -- The file holds the covariance, the accumulator cov * (n - 1): ~1e-16 apart.
      T.assert_near(metrics.fd_lenet(x, {classifier = w, reference = g}), fd1, 1e-8 * fd1, 'same value from the file')
   end)
   cleanup()
   if not ok then error(err, 0) end
end

function tests.training_is_deterministic()
   need_data()
   local train = require('ddpm.data').fashion_mnist{split = 'train'}
   local function run()
      local m, info = metrics.train_lenet{seed = 5, steps = 20, batch = 32, evaluate = false, log = false,
                                          train_data = train}
      T.assert_eq(info.steps, 20)
      return m
   end
   local m1, m2 = run(), run()
   T.assert_true(m1:flat():equal(m2:flat()), 'two runs of 20 steps from seed 5 give identical weights')
   T.assert_eq(m1:params_sha256(), m2:params_sha256())
   local m0 = core.lenet_new(5)
   T.assert_true(not m0:flat():equal(m1:flat()), 'training changed the weights')
   local m3 = metrics.train_lenet{seed = 6, steps = 20, batch = 32, evaluate = false, log = false, train_data = train}
   T.assert_true(not m3:flat():equal(m1:flat()), 'another seed gives other weights')
end

function tests.save_load_round_trip()
   local dir, cleanup = tmpdir()
   local ok, err = pcall(function()
      local m = core.lenet_new(3)
      local path = dir .. '/m.safetensors'
      m:save(path, {note = 'hi'})
      local m2, meta = core.lenet_load(path)
      T.assert_true(m2:flat():equal(m:flat()))
      T.assert_eq(meta.note, 'hi')
      T.assert_eq(meta['ddpmlua.params_sha256'], m:params_sha256())
      local m3 = core.lenet_new(4)
      m3:load(path)
      T.assert_true(m3:flat():equal(m:flat()))
      T.assert_error(function() m:save(path, {['ddpmlua.model'] = 'x'}) end, 'set by the model')
      T.assert_error(function() m:save(path, {k = 1}) end, 'strings to strings')
      T.assert_error(function() core.lenet_load(dir .. '/none.safetensors') end, 'none.safetensors')
      core.save_safetensors(dir .. '/other.safetensors', {w = core.zeros({2})})
      T.assert_error(function() core.lenet_load(dir .. '/other.safetensors') end, "'conv1.weight' is missing")
   end)
   cleanup()
   if not ok then error(err, 0) end
end

function tests.log_fd_lenet_writes_metric_and_meta()
   local dir, cleanup = tmpdir()
   local ok, err = pcall(function()
      local log = require 'ddpm.log'
      local run = log.start{db = dir .. '/runs.db', name = 'fd-test', config = {x = 1}, dir = dir .. '/run'}
      local meta = metrics.log_fd_lenet(run, 500, 12.5, {sampler = 'ddim', steps = 50, ema = true, n = 1000,
                                                          classifier_sha256 = 'abc', extra = {eta = 0}})
      T.assert_eq(meta.weights, 'ema')
      metrics.log_fd_lenet(run, 600, 11.0, {sampler = 'ancestral', steps = 1000, ema = 'raw', n = 1000})
      run:finish()
      local rows = run.db:query("SELECT step, value FROM metrics_v WHERE run_id = :r AND key = 'fd_lenet' ORDER BY step",
                                {r = run.id})
      T.assert_eq(rows, {{step = 500, value = 12.5}, {step = 600, value = 11.0}})
      local arts = run.db:query("SELECT step, kind, json_extract(meta_json, '$.sampler') AS sampler, " ..
                                "json_extract(meta_json, '$.steps') AS steps, json_extract(meta_json, '$.weights') AS w, " ..
                                "json_extract(meta_json, '$.n') AS n, json_extract(meta_json, '$.eta') AS eta " ..
                                "FROM artifacts WHERE run_id = :r ORDER BY step", {r = run.id})
      T.assert_eq(arts, {{step = 500, kind = 'fd_lenet', sampler = 'ddim', steps = 50, w = 'ema', n = 1000, eta = 0},
                         {step = 600, kind = 'fd_lenet', sampler = 'ancestral', steps = 1000, w = 'raw', n = 1000}})
      T.assert_error(function() metrics.log_fd_lenet(run, 1, 1, {steps = 1, ema = true, n = 10}) end, 'sampler')
      T.assert_error(function() metrics.log_fd_lenet(run, 1, 1, {sampler = 'x', steps = 1, ema = 'maybe', n = 10}) end, 'ema')
      T.assert_error(function() metrics.log_fd_lenet(run, 1, 1, {sampler = 'x', steps = 1, ema = true, n = 10, name = 'fid'}) end, 'not FID')
      T.assert_error(function() metrics.log_fd_lenet(run, 1, 1, {sampler = 'x', steps = 1, ema = true, n = 10, color = 1}) end, "unknown option 'color'")
      T.assert_error(function() metrics.log_fd_lenet({}, 1, 1, {}) end, 'ddpm.log run')
      run.db:close()
   end)
   cleanup()
   if not ok then error(err, 0) end
end

function tests.bad_arguments_are_lua_errors()
   local m = core.lenet_new(1)
   local x = core.zeros({2, 1, 28, 28})
   T.assert_error(function() m:predict(nil) end, 'ddpm.Tensor expected')
   T.assert_error(function() m:predict(core.zeros({2, 3, 28, 28})) end, 'expected images [N,1,28,28]')
   T.assert_error(function() m:forward(core.zeros({2, 28, 28})) end, 'got [2,28,28]')
   T.assert_error(function() m:train_step(x, {1}) end, '1 labels for 2 images')
   T.assert_error(function() m:train_step(x, {1, 10}) end, 'not an integer in 0..9')
   T.assert_error(function() m:train_step(x, {1, 'a'}) end, 'is a string')
   T.assert_error(function() m:evaluate(x, {0.5, 1}) end, 'not an integer')
   T.assert_error(function() m:param('fc9.weight') end, "no parameter named 'fc9.weight'")
   T.assert_error(function() m.predict({}, x) end, 'ddpm.LeNet expected')
   T.assert_error(function() core.lenet_new(-1) end, 'seed')
   -- strided input is fine
   local big = core.zeros({2, 1, 30, 30})
   local l = m:predict(big:narrow(3, 2, 28):narrow(4, 2, 28))
   T.assert_eq(l:size(), {2, 10})
   T.assert_eq(m:train_step(x, core.tensor{3, 4}) > 0, true)
   m:free()
   T.assert_error(function() m:predict(x) end, 'freed')
   T.assert_true(tostring(m):find('freed', 1, true))

   local g = core.gauss_stats(84)
   T.assert_error(function() g:add(core.zeros({3, 10})) end, 'expected rows [N,84]')
   T.assert_error(function() g:cov() end, 'need at least 2')
   T.assert_error(function() core.gauss_stats(0) end, 'dimension')
   g:add(core.randn({5, 84}, 1))
   T.assert_eq(g:count(), 5)
   T.assert_eq(g:cov():size(), {84, 84})
   T.assert_eq(g:mean():size(), {84})
   local h = core.gauss_stats(3)
   h:add(core.randn({4, 3}, 2))
   T.assert_error(function() core.frechet_distance(g, h) end, 'dimensions 84 and 3')
   T.assert_error(function() g:add(core.full({2, 84}, 0 / 0)) end, 'not finite')
   local fd, parts = core.frechet_distance(g, g)
   T.assert_true(math.abs(fd) < 1e-9 and parts.tr1 > 0, 'FD(g, g) = ' .. fd)
   g:free()
   T.assert_error(function() g:count() end, 'freed')
   T.assert_error(function() core.frechet_distance(g, h) end, 'freed')

   T.assert_error(function() metrics.fd_lenet(core.zeros({2, 1, 27, 27})) end, 'expected images')
   T.assert_error(function() metrics.fd_lenet('x') end, 'ddpm.Tensor')
   T.assert_error(function() metrics.fd_lenet(core.zeros({4, 1, 28, 28}), {refrence = 'test'}) end, "unknown option 'refrence'")
   T.assert_error(function() metrics.fd_lenet(core.zeros({4, 1, 28, 28}), {classifier = '/nonexistent.safetensors'}) end,
                  'train_lenet.lua reproduces it')
   T.assert_error(function() metrics.train_lenet{epochs = 0} end, 'positive')
end

return tests
