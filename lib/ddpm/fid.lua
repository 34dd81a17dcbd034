--[[
ddpm.fid — FID and the Inception Score as the standard code computes them,
on the FID Inception-v3 of the runtime (runtime/inception.c; docs/fid.md).

   local fid = require 'ddpm.fid'
   local acc = fid.accumulator()                  -- loads the weights (fid.weights_path)
   acc:add(x)                                     -- samples [N,3,H,W] in [-1,1], any number of calls
   local r = acc:result{ref = 'cifar10_train.npz'}
   --> {n = 50000, fid = 3.2, is = 9.4, is_std = 0.1, splits = 10, warning = nil}
   fid.folder('samples/', {ref = 'stats.npz'})    -- every PNG in a folder, same result table
   fid.load_ref(path), fid.save_ref(path, g)      -- .npz (mu, sigma) or our safetensors statistics
   fid.distance(g1, g2), fid.inception_score(logits [, splits])

Images enter as PNG files hold them: samples are clamped to [-1, 1] and
rounded to 256 levels (x:to_8bit()), then mapped to [0, 1] and resized to
299x299 by the network. Features are accumulated as float64 mean and
co-moment (ddpm.GaussStats: mergeable, and reducible over MPI ranks with
g:allreduce()); the logits are kept for the Inception Score (10 splits).

Under mpirun every rank calls acc:add with the same images (diff:sample
gives every rank all samples); each rank runs the network on its share of
every chunk, and the chunk's features and logits are gathered (exactly, in
the images' order) on every rank, so every rank holds the statistics one
process would, bit for bit.

The weights are the user's: ddpmlua downloads nothing. fid.weights_help()
says which file to get and how to convert it.
]]
local core = require 'ddpm.core'
local dist = require 'ddpm.dist'

local fid = {}

fid.FEATURES = 2048
fid.CLASSES = 1008
fid.WEIGHTS_FILE = 'pt_inception-2015-12-05.safetensors'

local function repo_root()
   local src = debug.getinfo(1, 'S').source:gsub('^@', '')
   local dir = src:match('^(.*)/lib/ddpm/fid%.lua$')
   return dir
end

--- The default weights path: $DDPMLUA_INCEPTION, else data/pt_inception-2015-12-05.safetensors
--- beside lib/ (the repository), else in the current folder's data/.
function fid.weights_path()
   local env = os.getenv('DDPMLUA_INCEPTION')
   if env and env ~= '' then return env end
   local root = repo_root()
   return (root and root .. '/data/' or 'data/') .. fid.WEIGHTS_FILE
end

function fid.weights_help(path)
   return ("FID Inception weights not found at '%s'. ddpmlua downloads nothing: get "
      .. "pt_inception-2015-12-05-6726825d.pth (the file pytorch-fid uses; it keeps a copy in "
      .. "~/.cache/torch/hub/checkpoints/, or fetch it from "
      .. "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth), "
      .. "convert it once with\n  python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth %s\n"
      .. "and pass the .safetensors path (--fid_weights=PATH, --weights PATH) or set DDPMLUA_INCEPTION "
      .. "(see docs/fid.md)"):format(path, path)
end

local exists = require('ddpm.util').exists

--- fid.inception([path]) -> the network (ddpm.Inception); a clear error when the file is missing.
function fid.inception(path)
   path = path or fid.weights_path()
   if not exists(path) then error(fid.weights_help(path), 2) end
   return core.inception_load(path)
end

--- fid.load_ref(path) -> ddpm.GaussStats, n_known: .npz (mu, sigma [, n]) or ddpmlua's
--- safetensors statistics (g:save / fid.save_ref with a .safetensors name).
function fid.load_ref(path)
   if type(path) ~= 'string' then error('fid.load_ref: path expected, got ' .. type(path), 2) end
   if not exists(path) then error(("fid: reference statistics '%s' not found"):format(path), 2) end
   local g, known
   if path:lower():match('%.npz$') then
      g, known = core.fid_ref_load(path)
   else
      g = core.gauss_load(path)
      known = true
   end
   if g:dim() ~= fid.FEATURES then
      local d = g:dim()
      g:free()
      error(("fid: reference statistics '%s' have %d dimensions; FID Inception features have %d")
            :format(path, d, fid.FEATURES), 2)
   end
   return g, known
end

--- fid.save_ref(path, g): .npz (mu, sigma, n in float64, readable by numpy) or, for any
--- other name, ddpmlua's safetensors statistics.
function fid.save_ref(path, g)
   if path:lower():match('%.npz$') then core.fid_ref_save(g, path) else g:save(path) end
end

--- fid.distance(g1, g2) -> FID, {mean_term=, tr1=, tr2=, tr_sqrt=, min_eig=}
function fid.distance(a, b)
   return core.frechet_distance(a, b)
end

--- fid.inception_score(logits [N,1008] [, splits = 10]) -> mean, std
function fid.inception_score(logits, splits)
   return core.inception_score(logits, splits or 10)
end

--- The warning for n samples, or nil: below 2048 the covariance is singular, and
--- below 10,000 FID is still noticeably biased upwards; papers use 50,000.
function fid.sample_warning(n)
   if n < fid.FEATURES then
      return ('FID from %d samples: fewer than the %d feature dimensions, so the sample covariance '
              .. 'is singular and FID is biased far upwards; not comparable with published values '
              .. '(50,000 samples)'):format(n, fid.FEATURES)
   elseif n < 10000 then
      return ('FID from %d samples is biased upwards (it falls as the sample grows); published '
              .. 'values use 50,000'):format(n)
   end
end

local Acc = {}
Acc.__index = Acc

--- fid.accumulator{net =, weights =, chunk = 100} -> acc: acc:add(x), acc:count(),
--- acc:stats() (the GaussStats), acc:result{ref =, splits = 10, warn = true}, acc:free()
function fid.accumulator(opt)
   opt = opt or {}
   local net = opt.net or fid.inception(opt.weights)
   return setmetatable({net = net, own = opt.net == nil, g = core.gauss_stats(fid.FEATURES),
                        logits = {}, n = 0, chunk = opt.chunk or 100}, Acc)
end

local function check_images(x, what)
   if type(x) ~= 'userdata' or not x.size then
      error(what .. ': a ddpm.Tensor of images [N,3,H,W] expected, got ' .. type(x), 3)
   end
   local s = x:size()
   if #s ~= 4 or s[2] ~= 3 then
      error(('%s: FID needs RGB images [N,3,H,W], got [%s]%s'):format(what, table.concat(s, ','),
            (#s == 4 and s[2] == 1) and ' (one channel: FID-Inception is defined on RGB; for '
            .. 'Fashion-MNIST use FD-LeNet, ddpm.metrics.fd_lenet)' or ''), 3)
   end
   if s[3] < 8 or s[4] < 8 then
      error(('%s: images of %dx%d are too small for a meaningful Inception feature '
             .. '(8x8 at least; CIFAR-10 is 32x32)'):format(what, s[3], s[4]), 3)
   end
   return s
end

-- features and logits of images [b,3,H,W] (range '-1,1': quantized to 8 bits first)
local function run_net(net, part, unit)
   if unit then return net:forward(part) end
   local q = part:to_8bit()
   local u = (q + 1) / 2
   local f, l = net:forward(u)
   q:free(); u:free()
   return f, l
end

--- acc:add(x [, {range = '-1,1' | '0,1', shard = true}]): x [N,3,H,W]; '-1,1' (the
--- default) are samples, quantized to 8 bits as a PNG stores them. Under mpirun
--- with shard (the default), x must be the same on every rank (as diff:sample
--- returns it): each rank runs the network on its share of the rows and the
--- features and logits are gathered, so every rank holds the statistics one
--- process would, bit for bit. shard = false: each rank adds its own x (merge
--- the statistics with acc:stats():allreduce()).
function Acc:add(x, opt)
   local s = check_images(x, 'fid add')
   local unit = opt and opt.range == '0,1'
   local shard = dist.size() > 1 and not (opt and opt.shard == false)
   for i = 1, s[1], self.chunk do
      local b = math.min(self.chunk, s[1] - i + 1)
      local f, l
      if shard then
         local lo, hi = dist.shard(b)
         local fl, ll
         if hi > lo then fl, ll = run_net(self.net, x:narrow(1, i + lo, hi - lo), unit) end
         f = dist.gather_rows(fl, lo, {b, fid.FEATURES})
         l = dist.gather_rows(ll, lo, {b, fid.CLASSES})
      else
         f, l = run_net(self.net, x:narrow(1, i, b), unit)
      end
      self.g:add(f)
      self.logits[#self.logits + 1] = l
      f:free()
      self.n = self.n + b
   end
end

function Acc:count() return self.n end
function Acc:stats() return self.g end

--- All logits so far as one tensor [n,1008] (under mpirun: every rank's, in order).
function Acc:all_logits()
   local ddpm = require 'ddpm'
   local all = ddpm.zeros(self.n, fid.CLASSES)
   local at = 1
   for _, l in ipairs(self.logits) do
      all:narrow(1, at, l:size(1)):copy(l)
      at = at + l:size(1)
   end
   return all
end

--- acc:result{ref = path or GaussStats, splits = 10, warn = true} ->
--- {n, fid (when ref), is, is_std, splits, warning}
function Acc:result(opt)
   opt = opt or {}
   local n = self.n
   if n < 2 then error(('fid: %d image(s); FID and IS need at least 2'):format(n), 2) end
   local r = {n = n, splits = opt.splits or 10}
   r.warning = fid.sample_warning(n)
   if r.warning and opt.warn ~= false and core.dist_rank() == 0 then io.stderr:write('warning: ', r.warning, '\n') end
   if opt.ref then
      local ref, own = opt.ref, false
      if type(ref) == 'string' then ref = fid.load_ref(ref); own = true end
      local d, parts = fid.distance(self.g, ref)
      r.fid, r.parts = d, parts
      if own then ref:free() end
   end
   if n >= r.splits then
      local all = self:all_logits()
      r.is, r.is_std = fid.inception_score(all, r.splits)
      all:free()
   end
   return r
end

function Acc:free()
   for _, l in ipairs(self.logits) do l:free() end
   self.logits = {}
   self.g:free()
   if self.own then self.net:free() end
end

--- fid.folder(dir, {ref =, weights =, net =, batch = 250, splits = 10, log = fn}) -> result
--- (see Acc:result) over every PNG in dir (converted to RGB, all of one size).
function fid.folder(dir, opt)
   opt = opt or {}
   local ddpm = require 'ddpm'
   local ref, own_ref = opt.ref, false
   if type(ref) == 'string' then ref, own_ref = fid.load_ref(ref), true end   -- fail before the work
   local d = ddpm.data.png_dir(dir, 3)
   local N = d:size()
   if N < 2 then error(("fid: '%s' holds %d PNG image(s); FID needs at least 2"):format(dir, N), 2) end
   local acc = fid.accumulator{net = opt.net, weights = opt.weights}
   local batch = opt.batch or 250
   for i = 1, N, batch do
      local idx = {}
      for k = i, math.min(N, i + batch - 1) do idx[#idx + 1] = k end
      local x = d:batch(idx)
      acc:add(x)
      x:free()
      if opt.log then opt.log(acc:count(), N) end
   end
   local r = acc:result{ref = ref, splits = opt.splits, warn = opt.warn}
   if opt.save then fid.save_ref(opt.save, acc:stats()) end
   acc:free()
   if own_ref then ref:free() end
   return r
end

return fid
