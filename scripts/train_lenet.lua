--[[
scripts/train_lenet.lua — reproduces data/lenet_fmnist.safetensors, the
classifier behind FD-LeNet (docs/fd_lenet.md), and prints the sanity values.

   ./ddpmlua scripts/train_lenet.lua                       # train, save, sanity FDs
   ./ddpmlua scripts/train_lenet.lua --out=/tmp/l.safetensors --epochs=2
   ./ddpmlua scripts/train_lenet.lua --train=false          # sanity FDs of --out only

Training: seed 1, 12 epochs of the Fashion-MNIST train split, batch 64, Adam
(0.9, 0.999, 1e-8) with lr 2e-3 decayed to 0 by a cosine, 2 threads. The
same seed and thread count on the same build and CPU give the same bits (the
GEMMs' rounding depends on OpenBLAS's kernel for the CPU and the thread
count); elsewhere expect the same accuracy within ~0.3 points.

Sanity: FD-LeNet between feature sets that must be ordered
   same distribution (train vs test, test half vs half; a floor that grows as
   the sample count falls)  <  test vs a noised or blurred test
   <  test vs pure noise.
]]
local ddpm = require 'ddpm'
local core = ddpm.core
local metrics = ddpm.metrics

local cfg = ddpm.cli.parse(arg, {
   seed = 1, epochs = 12, batch = 64, lr = 2e-3, threads = 2,
   out = metrics.DEFAULT_CLASSIFIER, train = true, sanity = true,
}, {
   epochs = {'training epochs', int = true, min = 1},
   threads = {'threads for OpenBLAS and OpenMP', int = true, min = 1},
   out = {'the classifier file to write', path = true},
   train = 'train the classifier (false: only check an existing one)',
   sanity = 'check the classifier afterwards (test accuracy, FD of real images)',
})
core.set_num_threads(cfg.threads)

if cfg.train then
   local dir = cfg.out:match('^(.*)/[^/]*$')
   if dir then os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end
   metrics.train_lenet{seed = cfg.seed, epochs = cfg.epochs, batch = cfg.batch, lr = cfg.lr, out = cfg.out}
end
if not cfg.sanity then return end

local model, meta = metrics.load_lenet(cfg.out)
local sha = core.sha256_file(cfg.out)
print(('classifier %s\n  sha256 %s\n  params_sha256 %s\n  test accuracy %s')
      :format(cfg.out, sha, meta['ddpmlua.params_sha256'], tostring(meta['ddpmlua.test_accuracy'])))

-- The first n images of a split (all when n is nil), and the dataset.
local function images(split, n)
   local d = ddpm.data.fashion_mnist{split = split}
   local idx = {}
   for i = 1, n or d:size() do idx[i] = i end
   return d:batch(idx), #idx, d
end

-- 3x3 box blur with the background value (-1) outside the image.
local function blur3(x)
   local N = x:size(1)
   local p = core.full({N, 1, 30, 30}, -1)
   p:narrow(3, 2, 28):narrow(4, 2, 28):copy(x)
   local acc = core.zeros({N, 1, 28, 28})
   for dy = 1, 3 do
      for dx = 1, 3 do acc:add_(p:narrow(3, dy, 28):narrow(4, dx, 28)) end
   end
   return acc:mul_(1 / 9)
end

local function noised(x, sigma, seed)
   local n = core.randn(x:size(), seed)
   return (x + n:mul_(sigma)):clamp(-1, 1)
end

local test, ntest = images('test')
local train, _, dtrain = images('train', 10000)
local stats = {
   test = metrics.feature_stats(model, test),
   train = metrics.dataset_stats(model, dtrain),
   test_a = metrics.feature_stats(model, test:narrow(1, 1, ntest / 2)),
   test_b = metrics.feature_stats(model, test:narrow(1, ntest / 2 + 1, ntest / 2)),
}
local function fd(a, b)
   return (core.frechet_distance(a, b))
end
-- Same-distribution rows show the estimator's bias at each sample count:
-- a model's FD-LeNet cannot go below the row with its N.
local rows = {
   {'train (60000) vs test (10000)', fd(stats.train, stats.test)},
   {'train[1..10000] vs test', fd(metrics.feature_stats(model, train), stats.test)},
   {'train[1..5000] vs test', fd(metrics.feature_stats(model, train:narrow(1, 1, 5000)), stats.test)},
   {'train[1..1000] vs test', fd(metrics.feature_stats(model, train:narrow(1, 1, 1000)), stats.test)},
   {'test[1..5000] vs test[5001..10000]', fd(stats.test_a, stats.test_b)},
   {'test vs test blurred 3x3', fd(stats.test, metrics.feature_stats(model, blur3(test)))},
   {'test vs test + N(0, 0.1^2), clamped', fd(stats.test, metrics.feature_stats(model, noised(test, 0.1, 7)))},
   {'test vs test + N(0, 0.3^2), clamped', fd(stats.test, metrics.feature_stats(model, noised(test, 0.3, 8)))},
   {'test vs uniform noise in [-1, 1]', fd(stats.test, metrics.feature_stats(model, core.rand({ntest, 1, 28, 28}, 9):mul_(2):add_(-1)))},
   {'test vs N(0, 1) noise, clamped', fd(stats.test, metrics.feature_stats(model, core.randn({ntest, 1, 28, 28}, 10):clamp(-1, 1)))},
}
print('FD-LeNet sanity values (84-d fc2 features, float64):')
for _, r in ipairs(rows) do print(('  %-40s %12.4f'):format(r[1], r[2])) end
