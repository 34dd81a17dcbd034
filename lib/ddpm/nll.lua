--[[
ddpm.nll — the negative log-likelihood bound in bits/dim (the official
calc_bpd_loop, docs/math.md §3.3), called as diff:nll(model, data, opt).

   local r = diff:nll(ema, ddpm.data.fashion_mnist{split = 'test'},
                      {n = 1000, batch = 100, seed = 1, run = run})
   print(r.bpd, r.prior, r.terms[1])           -- total, L_T, L_0

For every batch x_0 and every code index k = K-1 .. 0 of the (possibly
respaced) process: fresh eps, x_k = q_sample(x_0, k, eps), the model at
x_k (fed the original timestep), the VLB term of docs/math.md §3.2 (L_0 the discrete
decoder at k = 0, KL terms above) with clip_denoised = opt.clip (true, as
calc_bpd_loop), and meanflat((x0_hat - x_0)^2); then the prior L_T. The
bound per example is sum_k term_k + prior; r.bpd is its mean over the
examples. Cost: K model evaluations per batch.

opt: n (examples; default all), batch (64), seed (0; the eps draws), clip
(true), steps (respacing: the bound of the K-step process), progress (true),
run (a ddpm.log Run: logs <prefix>_bpd and <prefix>_prior at step opt.step
(default 0), <prefix>_t (the mean term) and <prefix>_mse_t at step = the
original timestep, so one query plots the terms), prefix ('nll'; a metric is
one value per (run, name, step), so a second evaluation in the same run
overwrites the first unless it gets another prefix, e.g. 'nll_ema').

data: a tensor [N,C,H,W] in [-1, 1] (8-bit values for a meaningful L_0), or
a ddpm.Dataset (its first n examples, in order, unflipped).

Returns {bpd, bpd_se (standard error over examples), prior, terms = {[k+1]
= mean term in bits/dim}, mse = {[k+1] = mean x0 mse}, t = {[k+1] =
original timestep}, per_example = {total bits/dim of each example}, n}.
]]
local core = require 'ddpm.core'
local progress = require 'ddpm.progress'
local dist = require 'ddpm.dist'

local M = {}

local S_EPS = 31   -- stream of the q_sample noise under opt.seed

local known = {n = 1, batch = 1, seed = 1, clip = 1, steps = 1, progress = 1, run = 1, step = 1,
               prefix = 1, label = 1}

function M.nll(diff, model, data, opt, model_view)
   opt = opt or {}
   for k in pairs(opt) do
      if not known[k] then error(("nll: unknown option '%s'"):format(tostring(k)), 3) end
   end
   local d = diff:respace(opt.steps)
   local is_t = core.is_tensor(data)
   local N
   if is_t then
      if data:dim() ~= 4 then error('nll: data tensor expected [N,C,H,W], got ' .. data:shape_str(), 3) end
      N = data:size(1)
   elseif type(data) == 'userdata' or type(data) == 'table' then
      N = data:size()
   else
      error('nll: data must be a tensor [N,C,H,W] or a ddpm.Dataset, got ' .. type(data), 3)
   end
   local n = opt.n or N
   if type(n) ~= 'number' or n < 1 or n % 1 ~= 0 or n > N then
      error(('nll: n = %s must be an integer in 1..%d'):format(tostring(n), N), 3)
   end
   local B = math.min(opt.batch or 64, n)
   if B < 1 or B % 1 ~= 0 then error('nll: batch must be a positive integer', 3) end
   local clip = opt.clip ~= false
   local eseed, ectr = core.mix_seed(opt.seed or 0, S_EPS), 0
   local K = d.T
   local nb = math.ceil(n / B)
   local sum_t, sum_mse = {}, {}
   for k = 1, K do sum_t[k], sum_mse[k] = 0, 0 end
   local per, sum_prior = {}, 0
   local ropts = {mean_type = d.mean_type, var_type = d.var_type, clip = clip}
   -- Under mpirun, batch bi goes to rank bi % size; its noise starts where it
   -- starts in one process (every batch before it is full: 2 normals' worth
   -- of counters per value, K draws per batch), so the bound is the same
   -- for any number of ranks up to the order of its sums.
   local R, NR = core.dist_rank(), core.dist_size()
   local mine = 0
   for bi = 0, nb - 1 do if bi % NR == R then mine = mine + 1 end end
   local bar = opt.progress ~= false and R == 0 and progress.new{total = mine * K, label = opt.label or 'nll'}
   local D
   local done = 0
   local m = model_view(model, 'nll', d)
   local ok, err = pcall(function()
      for bi = R, nb - 1, NR do
         local i0 = bi * B
         local b = math.min(B, n - i0)
         local x0
         if is_t then
            x0 = data:narrow(1, i0 + 1, b):contiguous()
         else
            local idx = {}
            for i = 1, b do idx[i] = i0 + i end
            x0 = data:batch(idx)
         end
         local sizes = x0:size()
         D = D or sizes[2] * sizes[3] * sizes[4]
         ectr = 2 * D * B * K * bi
         local total = core.prior_bpd(d.sched, x0)
         sum_prior = sum_prior + total:sum()
         for k = K - 1, 0, -1 do
            local eps
            eps, ectr = core.randn(sizes, eseed, ectr)
            local xt = core.q_sample(d.sched, x0, eps, k)
            local out = m.call(xt, d.tmap[k + 1])
            if not core.is_tensor(out) then error(('model returned %s, expected a tensor'):format(type(out)), 0) end
            local terms, mse = core.vb_terms_bpd(d.sched, out, x0, xt, k, ropts)
            m.release(out)
            sum_t[k + 1] = sum_t[k + 1] + terms:sum()
            sum_mse[k + 1] = sum_mse[k + 1] + mse:sum()
            total:add_(terms)
            eps:free(); xt:free(); terms:free(); mse:free()
            done = done + 1
            if bar then bar:update(done) end
         end
         for i = 1, b do per[i0 + i] = total[i] end
      end
   end)
   m.done()
   if bar then bar:finish() end
   if not ok then error(err, 0) end
   if NR > 1 then   -- every rank's sums; each example's total has one owner
      local v = {sum_prior}
      for k = 1, K do v[#v + 1] = sum_t[k]; v[#v + 1] = sum_mse[k] end
      for i = 1, n do v[#v + 1] = per[i] or 0 end
      v = dist.allreduce_numbers(v, 'sum')
      sum_prior = v[1]
      for k = 1, K do sum_t[k], sum_mse[k] = v[2 * k], v[2 * k + 1] end
      for i = 1, n do per[i] = v[2 * K + 1 + i] end
   end
   local r = {n = n, terms = {}, mse = {}, t = {}, per_example = per}
   local s, s2 = 0, 0
   for i = 1, n do s = s + per[i] end
   local mean = s / n
   for i = 1, n do s2 = s2 + (per[i] - mean) ^ 2 end
   r.bpd = mean
   r.bpd_se = n > 1 and math.sqrt(s2 / (n - 1) / n) or 0 / 0
   r.prior = sum_prior / n
   for k = 1, K do
      r.terms[k] = sum_t[k] / n
      r.mse[k] = sum_mse[k] / n
      r.t[k] = d.tmap[k]
   end
   if opt.run and R == 0 then
      local run, pre, step = opt.run, opt.prefix or 'nll', opt.step or 0
      run:metric(step, pre .. '_bpd', r.bpd)
      run:metric(step, pre .. '_prior', r.prior)
      for k = 1, K do
         run:metric(r.t[k], pre .. '_t', r.terms[k])
         run:metric(r.t[k], pre .. '_mse_t', r.mse[k])
      end
      if run.flush then run:flush() end
   end
   return r
end

return M
