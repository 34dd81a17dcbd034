--[[
ddpm.metrics — FD-LeNet, the sample-quality metric ddpmlua can compute
offline: the Fréchet distance between the 84-d penultimate features of a
small LeNet-5-style classifier (trained by ddpmlua itself on Fashion-MNIST,
weights in data/lenet_fmnist.safetensors) on generated samples and on the
Fashion-MNIST test set. It is not FID (no Inception network, other features,
other scale): compare FD-LeNet values only with each other, computed with
the same classifier (its sha256 is logged) and the same sample count.

   local metrics = require 'ddpm.metrics'
   local fd, info = metrics.fd_lenet(samples)     -- samples [N,1,28,28] in [-1,1]
   metrics.log_fd_lenet(run, step, fd, {sampler = 'ddim', steps = 50, ema = true, n = info.n})

   metrics.train_lenet{seed = 1, epochs = 12, out = 'data/lenet_fmnist.safetensors'}
   local m, meta = metrics.load_lenet(path)        -- a ddpm.LeNet, its metadata

See docs/fd_lenet.md for what the numbers mean and how the weights were made.
]]
local core = require 'ddpm.core'
local data = require 'ddpm.data'
local json = require 'ddpm.json'
local util = require 'ddpm.util'

local metrics = {}

metrics.FEATURES = 84

-- <repo>/lib/ddpm/metrics.lua -> <repo>
local function repo_root()
   local src = debug.getinfo(1, 'S').source
   local dir = src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/[^/]*$') or '.'
   local root, n = dir:gsub('/lib/ddpm$', '')
   return n == 1 and root or dir .. '/../..'
end

--- The committed classifier: $DDPMLUA_LENET, else data/lenet_fmnist.safetensors
--- of the source tree this library lives in.
metrics.DEFAULT_CLASSIFIER = os.getenv('DDPMLUA_LENET') or (repo_root() .. '/data/lenet_fmnist.safetensors')

local function say_fn(opt)
   if opt.log == false then return function() end end
   if type(opt.log) == 'function' then return opt.log end
   return function(...) print(...); io.stdout:flush() end
end

local function labels_of(d)
   local t = {}
   for i = 1, d:size() do t[i] = d:label(i) end
   return t
end

local function all_images(d)
   local idx = {}
   for i = 1, d:size() do idx[i] = i end
   return d:batch(idx)
end

local function check_opts(opt, known, where)
   if opt == nil then return {} end
   if type(opt) ~= 'table' then error(where .. ': options must be a table, got ' .. type(opt), 3) end
   util.check_keys(opt, known, where, 3)
   return opt
end

---------------------------------------------------------------- training

local train_keys = {seed = true, epochs = true, batch = true, lr = true, steps = true, out = true,
                    evaluate = true, log = true, data_dir = true, train_data = true, test_data = true}

--- metrics.train_lenet{seed = 1, epochs = 12, batch = 64, lr = 2e-3, out = path,
---                     steps = nil, evaluate = true, log = print, data_dir = nil}
--- Trains the classifier on the Fashion-MNIST train split (60,000 images,
--- no augmentation) with Adam and a cosine learning-rate decay to zero over
--- all steps; each epoch's order is d:permutation(seed, epoch). steps stops
--- early (for tests). Prints and returns the test accuracy (unless evaluate
--- is false); saves to out (if given) with the recipe, accuracy and thread
--- count in the metadata. Returns the ddpm.LeNet and an info table.
--- The same seed and thread count give the same bits.
function metrics.train_lenet(opt)
   opt = check_opts(opt, train_keys, 'train_lenet')
   local seed, epochs, batch, lr = opt.seed or 1, opt.epochs or 12, opt.batch or 64, opt.lr or 2e-3
   for k, v in pairs{seed = seed, epochs = epochs, batch = batch} do
      if type(v) ~= 'number' or v < 0 or v % 1 ~= 0 then
         error(('train_lenet: %s must be a non-negative integer, got %s'):format(k, tostring(v)), 2)
      end
   end
   if batch < 1 or epochs < 1 then error('train_lenet: batch and epochs must be positive', 2) end
   if type(lr) ~= 'number' or not (lr > 0) then error('train_lenet: lr must be positive', 2) end
   local say = say_fn(opt)
   local train = opt.train_data or data.fashion_mnist{split = 'train', dir = opt.data_dir}
   local N = train:size()
   local per_epoch = math.floor(N / batch)     -- the last partial batch is dropped
   if per_epoch < 1 then error('train_lenet: fewer training images than one batch', 2) end
   local total = epochs * per_epoch
   local stop = opt.steps and math.min(opt.steps, total) or total
   local labels = labels_of(train)

   local m = core.lenet_new(seed)
   local adam = core.adam(m:num_params(), {beta1 = 0.9, beta2 = 0.999, eps = 1e-8})
   local params, grads = m:flat(false), m:flat(true)
   local x = core.zeros({batch, 1, 28, 28})
   local idx, lab = {}, {}
   local step, t0 = 0, core.time()
   local run_loss, run_correct, run_n = 0, 0, 0
   say(('train_lenet: seed %d, %d epochs of %d steps (batch %d), lr %g cosine, %d threads')
       :format(seed, epochs, per_epoch, batch, lr, core.get_num_threads()))
   for epoch = 1, epochs do
      if step >= stop then break end
      local perm = train:permutation(seed, epoch)
      for b = 0, per_epoch - 1 do
         if step >= stop then break end
         for i = 1, batch do
            local k = perm[b * batch + i]
            idx[i], lab[i] = k, labels[k]
         end
         train:batch(idx, 0, nil, x)
         m:zero_grad()
         local loss, correct = m:train_step(x, lab)
         adam:step(params, grads, lr * 0.5 * (1 + math.cos(math.pi * step / total)))
         step = step + 1
         run_loss, run_correct, run_n = run_loss + loss * batch, run_correct + correct, run_n + batch
      end
      say(('  epoch %d: train loss %.4f, train accuracy %.4f (%.0f s)')
          :format(epoch, run_loss / math.max(run_n, 1), run_correct / math.max(run_n, 1), core.time() - t0))
      run_loss, run_correct, run_n = 0, 0, 0
   end
   local info = {steps = step, seconds = core.time() - t0, seed = seed, epochs = epochs, batch = batch,
                 lr = lr, threads = core.get_num_threads(), params_sha256 = m:params_sha256()}
   if opt.evaluate ~= false then
      local test = opt.test_data or data.fashion_mnist{split = 'test', dir = opt.data_dir}
      local correct = m:evaluate(all_images(test), labels_of(test))
      info.test_accuracy = correct / test:size()
      say(('train_lenet: test accuracy %.4f (%d / %d)'):format(info.test_accuracy, correct, test:size()))
   end
   if opt.out then
      local recipe = {seed = seed, epochs = epochs, batch = batch, lr = lr, schedule = 'cosine',
                      optimizer = 'adam(0.9, 0.999, 1e-8)', steps = step, threads = info.threads,
                      data = 'fashion-mnist train (60000), no augmentation',
                      script = 'scripts/train_lenet.lua'}
      local meta = {['ddpmlua.recipe'] = json.encode(recipe),
                    ['ddpmlua.features'] = 'fc2 (84-d, before its ReLU)'}
      if info.test_accuracy then
         meta['ddpmlua.test_accuracy'] = ('%.4f'):format(info.test_accuracy)
      end
      m:save(opt.out, meta)
      info.file_sha256 = core.sha256_file(opt.out)
      say(('train_lenet: wrote %s (sha256 %s)'):format(opt.out, info.file_sha256))
   end
   return m, info
end

--- metrics.load_lenet([path]) -> ddpm.LeNet, metadata table
function metrics.load_lenet(path)
   path = path or metrics.DEFAULT_CLASSIFIER
   if type(path) ~= 'string' then error('load_lenet: path must be a string', 2) end
   local f = io.open(path, 'rb')
   if not f then
      error(('load_lenet: %s not found; scripts/train_lenet.lua reproduces it'):format(path), 2)
   end
   f:close()
   return core.lenet_load(path)
end

---------------------------------------------------------------- FD-LeNet

-- Statistics computed in this process, by classifier sha256 and reference.
local memo = {}

--- metrics.feature_stats(model, images) -> ddpm.GaussStats of the 84-d features.
--- Under mpirun each rank takes a share of the images and the statistics
--- are merged over the ranks (every rank gets the result).
function metrics.feature_stats(model, images)
   local g = core.gauss_stats(metrics.FEATURES)
   if core.dist_size() > 1 then
      local lo, hi = require('ddpm.dist').shard(images:size(1))
      if hi > lo then g:add(model:features(images:narrow(1, lo + 1, hi - lo):contiguous())) end
      g:allreduce()
   else
      g:add(model:features(images))
   end
   return g
end

--- metrics.dataset_stats(model, dataset) -> ddpm.GaussStats of the features
--- of every image of a ddpm.Dataset (28x28 gray), read in chunks of 5000.
function metrics.dataset_stats(model, d)
   local g = core.gauss_stats(metrics.FEATURES)
   local n, chunk = d:size(), 5000
   local x = core.zeros({chunk, 1, 28, 28})
   for i0 = 1, n, chunk do
      local k = math.min(chunk, n - i0 + 1)
      local idx = {}
      for i = 1, k do idx[i] = i0 + i - 1 end
      if k < chunk then x = core.zeros({k, 1, 28, 28}) end
      d:batch(idx, 0, nil, x)
      g:add(model:features(x))
   end
   return g
end

local function stats_path(classifier, reference, sha)
   return ('%s.%s-stats.%s.safetensors'):format(classifier:gsub('%.safetensors$', ''), reference, sha:sub(1, 16))
end

-- The Fashion-MNIST split's statistics for this classifier: from memory,
-- from the cache file next to the weights, or computed (and cached).
local function split_stats(model, classifier, sha, split, opt)
   -- by cache file (classifier file, split and weights' sha256): a copy of
   -- the weights elsewhere gets its own cache file beside it
   local path = stats_path(classifier, 'fmnist-' .. split, sha)
   local key = path
   if memo[key] then return memo[key] end
   local use_cache = opt.cache ~= false
   if use_cache then
      local ok, g, meta = pcall(core.gauss_load, path)
      if ok and meta['ddpmlua.classifier_sha256'] == sha and meta['ddpmlua.reference'] == 'fmnist-' .. split then
         memo[key] = g
         return g
      end
   end
   local d = data.fashion_mnist{split = split, dir = opt.data_dir}
   local g = metrics.dataset_stats(model, d)
   if use_cache then
      -- A read-only tree just means no cache; any other failure is said once.
      local ok, err = pcall(g.save, g, path, {['ddpmlua.classifier_sha256'] = sha,
                                              ['ddpmlua.reference'] = 'fmnist-' .. split,
                                              ['ddpmlua.note'] = 'FD-LeNet reference statistics (cache; delete freely)'})
      if not ok and not tostring(err):find('Permission denied', 1, true)
         and not tostring(err):find('Read-only file system', 1, true) then
         io.stderr:write(('FD-LeNet: the %s statistics were not cached: %s\n'):format(split, tostring(err)))
      end
   end
   memo[key] = g
   return g
end

-- samples as [N,1,28,28]: a [N,1,32,32] tensor (Fashion-MNIST padded by 2,
-- as pad_to = 32 trains) is cropped to its centre.
local function as_28(x, what)
   if not core.is_tensor(x) then error(what .. ': expected a ddpm.Tensor of images, got ' .. type(x), 3) end
   local s = x:size()
   if #s == 4 and s[2] == 1 and s[3] == 32 and s[4] == 32 then
      x = x:narrow(3, 3, 28):narrow(4, 3, 28)
      s = x:size()
   end
   if #s ~= 4 or s[2] ~= 1 or s[3] ~= 28 or s[4] ~= 28 or s[1] < 2 then
      error(('%s: expected images [N,1,28,28] (or [N,1,32,32]) with N >= 2, got %s'):format(what, x:shape_str()), 3)
   end
   return x
end

local fd_keys = {reference = true, classifier = true, cache = true, data_dir = true, quantize = true}

--- metrics.fd_lenet(samples [, {reference = 'test', classifier = path, cache = true}])
---    -> fd, info
--- samples: ddpm.Tensor [N,1,28,28] in [-1,1] (or [N,1,32,32], centre-cropped);
--- N well above 84 for a meaningful covariance (use the same N to compare).
--- The samples (and a reference tensor) are first stored as 8-bit images
--- would store them (x:to_8bit(): clamped to [-1, 1], 256 levels), as FID is
--- computed on image files; quantize = false takes the raw floats.
--- reference: 'test' (the 10,000 Fashion-MNIST test images, default), 'train',
--- another image tensor, or a ddpm.GaussStats. The split statistics are cached
--- next to the weights as <weights>.fmnist-<split>-stats.<sha256[1..16]>.safetensors.
--- info: n, reference, classifier, classifier_sha256, mean_term, trace_term.
function metrics.fd_lenet(samples, opt)
   opt = check_opts(opt, fd_keys, 'fd_lenet')
   samples = as_28(samples, 'fd_lenet')
   local q8 = opt.quantize ~= false
   if q8 then samples = samples:to_8bit() end
   local classifier = opt.classifier or metrics.DEFAULT_CLASSIFIER
   local model = metrics.load_lenet(classifier)
   local sha = core.sha256_file(classifier)
   local reference = opt.reference or 'test'
   local ref, ref_name
   if reference == 'test' or reference == 'train' then
      ref, ref_name = split_stats(model, classifier, sha, reference, opt), 'fmnist-' .. reference
   elseif core.is_tensor(reference) then
      local r = as_28(reference, 'fd_lenet reference')
      if q8 then r = r:to_8bit() end
      ref, ref_name = metrics.feature_stats(model, r), 'images'
      if q8 then r:free() end
   elseif tostring(reference):match('^%[ddpm%.GaussStats') then
      ref, ref_name = reference, 'stats'
   else
      error("fd_lenet: reference must be 'test', 'train', an image tensor or ddpm.GaussStats, got " ..
            tostring(reference), 2)
   end
   local g = metrics.feature_stats(model, samples)
   if q8 then samples:free() end
   local fd, parts = core.frechet_distance(g, ref)
   local n = g:count()
   g:free()
   model:free()
   return fd, {n = n, reference = ref_name, classifier = classifier, classifier_sha256 = sha,
               mean_term = parts.mean_term, trace_term = parts.tr1 + parts.tr2 - 2 * parts.tr_sqrt}
end

---------------------------------------------------------------- logging

local log_keys = {sampler = true, steps = true, ema = true, n = true, name = true, path = true,
                  reference = true, classifier = true, classifier_sha256 = true, extra = true}

--- metrics.log_fd_lenet(run, step, value, {sampler = 'ddim', steps = 50, ema = true, n = 10000,
---                      reference = 'fmnist-test', classifier_sha256 = ..., extra = {eta = 0}})
--- Writes metric 'fd_lenet' (or opt.name, which must start with 'fd_lenet')
--- at step, and an artifact of kind 'fd_lenet' (its path: the classifier's
--- weights, so its sha256 is recorded too; or opt.path) whose meta holds the
--- value, sampler, sampling steps, 'ema' or 'raw' weights and sample count.
--- Returns the meta table.
function metrics.log_fd_lenet(run, step, value, opt)
   if type(run) ~= 'table' or type(run.metric) ~= 'function' or type(run.artifact) ~= 'function' then
      error('log_fd_lenet: run must be a ddpm.log run (ddpm.log.start{...})', 2)
   end
   if type(step) ~= 'number' or step % 1 ~= 0 then error('log_fd_lenet: step must be an integer', 2) end
   if type(value) ~= 'number' then error('log_fd_lenet: value must be a number', 2) end
   opt = check_opts(opt, log_keys, 'log_fd_lenet')
   if type(opt.sampler) ~= 'string' then error("log_fd_lenet: opt.sampler (e.g. 'ancestral', 'ddim') is required", 2) end
   if type(opt.steps) ~= 'number' then error('log_fd_lenet: opt.steps (sampling steps) is required', 2) end
   if type(opt.n) ~= 'number' or opt.n < 2 then error('log_fd_lenet: opt.n (sample count) is required', 2) end
   local weights
   if opt.ema == true or opt.ema == 'ema' then weights = 'ema'
   elseif opt.ema == false or opt.ema == 'raw' then weights = 'raw'
   else error("log_fd_lenet: opt.ema must be true/false or 'ema'/'raw'", 2) end
   local name = opt.name or 'fd_lenet'
   if type(name) ~= 'string' or name:sub(1, 8) ~= 'fd_lenet' then
      error("log_fd_lenet: the metric name must start with 'fd_lenet' (it is not FID)", 2)
   end
   local classifier = opt.classifier or metrics.DEFAULT_CLASSIFIER
   local meta = {metric = name, value = value, sampler = opt.sampler, steps = opt.steps, weights = weights,
                 n = opt.n, reference = opt.reference or 'fmnist-test',
                 classifier_sha256 = opt.classifier_sha256}
   if opt.extra then
      for k, v in pairs(opt.extra) do if meta[k] == nil then meta[k] = v end end
   end
   run:metric(step, name, value)
   run:artifact(step, 'fd_lenet', opt.path or classifier, meta)
   return meta
end

return metrics
