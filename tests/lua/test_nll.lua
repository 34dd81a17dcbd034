-- test_nll.lua — the likelihood: the closed forms of docs/math.md §3.2 (normal_kl,
-- the discretised Gaussian decoder, the t = 0 handling, the prior) and
-- diff:nll (calc_bpd_loop, docs/math.md §3.3) against an exactly known answer.
--
-- The analytic NLL test. Data: 8-bit images, each pixel y ~ N(0, 0.2^2)
-- quantised to the 256 levels x_k = -1 + 2k/255 of [-1, 1] (bins of width
-- 2/255, edge bins open), well inside [-1, 1] (|y| > 1 is 5 sigma). Its true
-- NLL is the discrete entropy H = -sum_k P_k log2 P_k per dim (6.7196 bits/dim;
-- per example: -mean log2 P(bin)). For any model E[VLB] >= H (the bound is
-- >= the model's NLL >= the entropy), so the test compares the bound with the
-- exact model to H and states the gap.
--
-- The model: the posterior mean that is optimal for these data, eps*(x_t, t)
-- = sqrt(1-ab) (x_t - sqrt(ab) m) / (ab v + 1 - ab) with m, v the mean and
-- variance of the QUANTISED distribution (v = s^2 + (2/255)^2/12 to 1e-9): the
-- x0 prediction it implies is the best linear estimate of x0 from x_t, whose
-- error is exactly V_t = v (1-ab)/(ab v + 1-ab) for any data with that mean
-- and variance. With var_type = 'learned' it also outputs the optimal
-- variance log(beta~_t + c1_t^2 V_t) (the exact reverse variance for Gaussian
-- data; at t = 0 the decoder variance V_0).
--
-- The expected bound E[VLB] of that model is then computable here without
-- sampling: E[L_t] = 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + c1^2 V_t exp(-lv2))
-- / ln 2 for t >= 1, E[L_0] by quadrature over the bins and x_1 (the
-- decoder through the binding), the prior in closed form. Measured:
--   learned (optimal) variance: E[VLB] - H = 0.0009 bits/dim (the exact
--     model's bound is tight: the gap is the decoder's Gaussian-vs-discrete
--     posterior mismatch at t = 0 plus the ~1e-6 prior);
--   fixedlarge (sigma^2 = beta_t, the paper's CIFAR choice): gap 0.130;
--   fixedsmall (sigma^2 = beta~_t): gap 0.742.
-- Checks: (1) the quadrature gaps are >= 0 and below stated bounds
-- (learned 0.005); (2) diff:nll's Monte Carlo estimate reproduces them:
-- the mean over examples of (bound_i - true NLL_i), paired on the same
-- examples, lies within 4 standard errors of the quadrature gap (n = 1024:
-- SE ~ 0.011 bits/dim); (3) for the exact model the bound is within 0.05
-- bits/dim of the true NLL of the sample.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local LN2 = math.log(2)
local function note(fmt, ...) print('# ' .. fmt:format(...)) end

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_nll'
os.execute('mkdir -p ' .. tmp)

------------------------------------------------------------------ closed forms

function tests.normal_kl_closed_form()
   for _, c in ipairs{{0, 0}, {0.3, -2}, {-5, 4}, {1e3, -20}, {-0.7, 0.5}} do
      T.assert_eq(core.normal_kl(c[1], c[2], c[1], c[2]), 0)
   end
   -- KL(N(0,1) || N(1, 4)) = 0.5 (-1 + ln 4 + 1/4 + 1/4)
   T.assert_near(core.normal_kl(0, 0, 1, math.log(4)), 0.5 * (math.log(4) - 0.5), 1e-15)
   -- positive elsewhere, and not symmetric
   T.assert_true(core.normal_kl(0.1, 0, 0, 0) > 0 and core.normal_kl(0, -1, 0, 0) > 0, 'positive')
   T.assert_true(math.abs(core.normal_kl(0, 0, 0, 1) - core.normal_kl(0, 1, 0, 0)) > 1e-3, 'asymmetric')
end

local function grid(k) return -1 + 2 * k / 255 end

function tests.discretized_likelihood_sums_to_one()
   for _, sigma in ipairs{1e-3, 0.1, 1} do
      for _, mu in ipairs{-1.3, -0.999, -0.31, 0, 0.0041, 0.62, 0.999, 1.4} do
         local s = 0
         for k = 0, 255 do
            s = s + math.exp(core.discretized_gaussian_log_likelihood(grid(k), mu, math.log(sigma)))
         end
         -- the bins telescope; bins under the 1e-12 floor add at most 256e-12
         T.assert_near(s, 1, 1e-9, ('sigma %g mu %g'):format(sigma, mu))
      end
   end
   -- a narrow decoder puts (almost) all mass on the bin of its mean
   T.assert_near(core.discretized_gaussian_log_likelihood(grid(100), grid(100), math.log(1e-4)), 0, 1e-9)
   T.assert_near(core.discretized_gaussian_log_likelihood(grid(101), grid(100), math.log(1e-4)), math.log(1e-12), 1e-9)
   -- the edge bins are open: the mass beyond -1 belongs to x = -1
   T.assert_near(core.discretized_gaussian_log_likelihood(-1, -3, 0), math.log(0.5 * (1 + math.tanh(
      math.sqrt(2 / math.pi) * (2 + 1 / 255 + 0.044715 * (2 + 1 / 255) ^ 3)))), 1e-12)
end

function tests.t0_handling_and_vb_terms()
   local s = core.schedule('linear', 1000)
   local lpv1 = math.log(s:get('posterior_variance', 1))
   -- log variance at t = 0 is log beta~_1 for both fixed choices (docs/math.md §1.2, §2.2)
   T.assert_eq(s:get('posterior_log_variance_clipped', 0), s:get('posterior_log_variance_clipped', 1))
   local xt = core.randn({1, 1, 2, 2}, 1)
   local e = core.randn({1, 1, 2, 2}, 2)
   for _, vt in ipairs{'fixedlarge', 'fixedsmall'} do
      local _, lv = core.p_mean_variance(s, e, xt, 0, {var_type = vt})
      T.assert_near(lv:get(1, 1, 1, 1), lpv1, 1e-5, vt)
   end
   local _, lv1 = core.p_mean_variance(s, e, xt, 1, {var_type = 'fixedlarge'})
   T.assert_near(lv1:get(1, 1, 2, 2), math.log(s:get('betas', 1)), 1e-5)
   -- vb term at t = 0: the decoder NLL of the 8-bit x0 (bits/dim); at t >= 1
   -- the mean KL between the posterior and the model's Gaussian
   local x0 = core.tensor({{{{grid(3), grid(128)}, {grid(200), grid(255)}}}})
   local xt0 = core.q_sample(s, x0, e, 0)
   for _, vt in ipairs{'fixedlarge', 'fixedsmall'} do
      local terms = core.vb_terms_bpd(s, e, x0, xt0, 0, {var_type = vt, clip = true})
      local mean, lv = core.p_mean_variance(s, e, xt0, 0, {var_type = vt, clip = true})
      local want = 0
      for i = 1, 2 do
         for j = 1, 2 do
            want = want - core.discretized_gaussian_log_likelihood(x0:get(1, 1, i, j), mean:get(1, 1, i, j),
                                                                   0.5 * lv:get(1, 1, i, j))
         end
      end
      T.assert_near(terms[1], want / 4 / LN2, 1e-5, 't = 0 ' .. vt)
   end
   local t = 300
   local xt3 = core.q_sample(s, x0, e, t)
   local terms = core.vb_terms_bpd(s, e * 0.9, x0, xt3, t, {clip = false})
   local m, lv = core.p_mean_variance(s, e * 0.9, xt3, t, {clip = false})
   local pm, _, plv = core.q_posterior(s, x0, xt3, t)
   local want = 0
   for i = 1, 2 do
      for j = 1, 2 do
         want = want + core.normal_kl(pm:get(1, 1, i, j), plv[1], m:get(1, 1, i, j), lv:get(1, 1, i, j))
      end
   end
   T.assert_near(terms[1], want / 4 / LN2, 1e-6, 't = 300')
   -- the prior L_T against its closed form
   local pr = core.prior_bpd(s, x0)
   local abT = s:get('alphas_cumprod', 999)
   local wantp = 0
   for i = 1, 2 do
      for j = 1, 2 do
         local v = x0:get(1, 1, i, j)
         wantp = wantp + 0.5 * (-1 - math.log(1 - abT) + (1 - abT) + abT * v * v)
      end
   end
   T.assert_near(pr[1], wantp / 4 / LN2, 1e-10)
   T.assert_near(core.prior_bpd(s, core.full({1, 1, 1, 1}, 1))[1], 2.9e-5, 1e-6)   -- docs/math.md §3.2
end

------------------------------------------------------------------ the quantised Gaussian

local MU, SD = 0.0, 0.2
local H, W = 4, 4
local D = H * W

-- Bin probabilities P[k] (Simpson's rule on each bin; the edge bins from 12 SD out).
local P, XS = {}, {}
local M_D, V_D, H_BITS = 0, 0, 0
do
   local function phi(y) return math.exp(-0.5 * ((y - MU) / SD) ^ 2) / (SD * math.sqrt(2 * math.pi)) end
   local function simpson(a, b, m)
      local h = (b - a) / m
      local acc = phi(a) + phi(b)
      for i = 1, m - 1 do acc = acc + (i % 2 == 1 and 4 or 2) * phi(a + i * h) end
      return acc * h / 3
   end
   for k = 0, 255 do
      local x = grid(k)
      local lo, hi = x - 1 / 255, x + 1 / 255
      if k == 0 then lo = MU - 12 * SD end
      if k == 255 then hi = MU + 12 * SD end
      P[k] = simpson(lo, hi, (k == 0 or k == 255) and 4000 or 16)
      XS[k] = x
   end
   for k = 0, 255 do M_D = M_D + P[k] * XS[k] end
   for k = 0, 255 do
      V_D = V_D + P[k] * (XS[k] - M_D) ^ 2
      H_BITS = H_BITS - P[k] * math.log(P[k]) / LN2
   end
end

-- The exact model for process `diff` (eps, and the optimal log variance when learned).
local function V_t(ab) return V_D * (1 - ab) / (ab * V_D + 1 - ab) end

local function model_logvar(diff, t)
   local sc = diff.sched
   if diff.var_type == 'learned' then
      return math.log(sc:get('posterior_variance', t) + sc:get('posterior_mean_coef1', t) ^ 2 *
                      V_t(sc:get('alphas_cumprod', t)))
   elseif diff.var_type == 'fixedlarge' then
      return t == 0 and sc:get('posterior_log_variance_clipped', 0) or math.log(sc:get('betas', t))
   end
   return sc:get('posterior_log_variance_clipped', t)
end

local function exact_model(diff)
   local sc = diff.sched
   return function(x, t)
      local ab = sc:get('alphas_cumprod', t)
      local eps = (x - math.sqrt(ab) * M_D):mul_(math.sqrt(1 - ab) / (ab * V_D + 1 - ab))
      if diff.var_type ~= 'learned' then return eps end
      local out = core.zeros({x:size(1), 2, H, W})
      out:narrow(2, 1, 1):copy(eps)
      out:narrow(2, 2, 1):fill(model_logvar(diff, t))
      return out
   end
end

-- E[VLB] in bits/dim of the exact model (no sampling): the KL terms in closed
-- form, L_0 by quadrature over the bins and x_1 = sqrt(ab_0) x_k + sqrt(1-ab_0) e.
local function expected_vlb(diff)
   local sc = diff.sched
   local kl = 0
   for t = 1, diff.T - 1 do
      local lv1, lv2 = sc:get('posterior_log_variance_clipped', t), model_logvar(diff, t)
      local c1 = sc:get('posterior_mean_coef1', t)
      kl = kl + 0.5 * (-1 + lv2 - lv1 + math.exp(lv1 - lv2) +
                       c1 * c1 * V_t(sc:get('alphas_cumprod', t)) * math.exp(-lv2)) / LN2
   end
   local ab0 = sc:get('alphas_cumprod', 0)
   local sab0, s0 = math.sqrt(ab0), math.sqrt(1 - ab0)
   local ls0 = 0.5 * model_logvar(diff, 0)
   local L0 = 0
   for k = 0, 255 do
      if P[k] > 1e-15 then
         local acc, wsum = 0, 0
         for i = -80, 80 do                       -- trapezoid in e over [-8, 8]
            local e = i / 10
            local w = math.exp(-0.5 * e * e) * ((i == -80 or i == 80) and 0.5 or 1)
            local x1 = sab0 * XS[k] + s0 * e
            local x0h = M_D + sab0 * V_D * (x1 - sab0 * M_D) / (ab0 * V_D + 1 - ab0)
            x0h = math.max(-1, math.min(1, x0h))
            acc = acc + w * core.discretized_gaussian_log_likelihood(XS[k], x0h, ls0)
            wsum = wsum + w
         end
         L0 = L0 - P[k] * acc / wsum / LN2
      end
   end
   local abT = sc:get('alphas_cumprod', diff.T - 1)
   local prior = 0.5 * (-1 - math.log(1 - abT) + (1 - abT) + abT * (V_D + M_D * M_D)) / LN2
   return L0 + kl + prior, L0, prior
end

-- n quantised examples [n,1,H,W] and the true NLL (bits/dim) of each.
local function quantised_data(n, seed)
   local y = core.randn({n * D}, seed)
   local x0 = core.zeros({n, 1, H, W})
   local xv = x0:view({n * D})
   local nll = {}
   for i = 1, n * D do
      local k = math.floor((MU + SD * y[i] + 1) * 127.5 + 0.5)
      k = math.max(0, math.min(255, k))
      xv[i] = XS[k]
      local e = math.floor((i - 1) / D) + 1
      nll[e] = (nll[e] or 0) - math.log(P[k]) / LN2 / D
   end
   return x0, nll
end

local function paired(r, nll)
   local n = #nll
   local s, s2, tn = 0, 0, 0
   for i = 1, n do s = s + r.per_example[i] - nll[i]; tn = tn + nll[i] end
   local m = s / n
   for i = 1, n do s2 = s2 + (r.per_example[i] - nll[i] - m) ^ 2 end
   return m, math.sqrt(s2 / (n - 1) / n), tn / n
end

function tests.quantised_gaussian_is_what_the_model_assumes()
   local tot = 0
   for k = 0, 255 do tot = tot + P[k] end
   T.assert_near(tot, 1, 1e-12)
   T.assert_near(M_D, 0, 1e-12)                                       -- symmetric grid and density
   -- Sheppard's correction; the open edge bins pull the 5.7e-7 of mass beyond
   -- +-1 onto +-1, which takes 4.4e-8 off the variance
   T.assert_near(V_D, SD ^ 2 + (2 / 255) ^ 2 / 12, 1e-7)
   T.assert_near(H_BITS, 6.7196, 1e-4)
end

local function check_nll(var_type, n, gap_lo, gap_hi)
   local diff = ddpm.diffusion{T = 1000, var_type = var_type}
   local ev, L0, prior = expected_vlb(diff)
   local gap = ev - H_BITS
   local x0, nll = quantised_data(n, 77)
   local t0 = core.time()
   local r = diff:nll(exact_model(diff), x0, {batch = 512, seed = 1, progress = false})
   local dt = core.time() - t0
   local m, se, tn = paired(r, nll)
   note('%s: entropy H = %.4f bits/dim, E[VLB] = %.4f (L0 %.4f, prior %.1e): gap %.4f; ' ..
        'nll of %d examples (%.1f s): bound %.4f, true NLL %.4f, paired gap %.4f +- %.4f',
        var_type, H_BITS, ev, L0, prior, gap, n, dt, r.bpd, tn, m, se)
   T.assert_true(gap >= gap_lo and gap <= gap_hi, ('%s: gap %.4f outside [%g, %g]'):format(var_type, gap, gap_lo, gap_hi))
   T.assert_true(math.abs(m - gap) < 4 * se, ('%s: Monte Carlo gap %.4f vs %.4f (SE %.4f)'):format(var_type, m, gap, se))
   -- the parts add up, and the prior is data-only (no sampling noise)
   local sum = r.prior
   for k = 1, diff.T do sum = sum + r.terms[k] end
   T.assert_near(sum, r.bpd, 1e-6 * r.bpd)
   T.assert_near(r.prior, prior, 1e-7)
   T.assert_eq(#r.terms, 1000)
   T.assert_eq(r.t[1], 0)
   return r, m, se
end

function tests.nll_exact_model_learned_variance()
   local r, m, se = check_nll('learned', 1024, 0, 0.005)
   T.assert_true(math.abs(m) < 0.05, ('bound - true NLL = %.4f, over the 0.05 bits/dim tolerance'):format(m))
   -- the x0 mse per t: small at t = 0 (noise sd 0.01), the data variance at t = T-1
   T.assert_true(r.mse[1] < 2e-4 and math.abs(r.mse[1000] / V_D - 1) < 0.05, 'x0 mse by t')
end

function tests.nll_exact_mean_fixed_variances()
   -- the paper's fixed variances: the same mean, a looser bound (docs/math.md §2.2)
   check_nll('fixedlarge', 512, 0.12, 0.14)
   check_nll('fixedsmall', 256, 0.7, 0.8)
end

-- The mu~ (xprev) parameterisation of the same exact model: output
-- c1 x0_hat + c2 x_t. Without clipping (which acts on x0 for eps, on nothing
-- for xprev) its bound equals the eps model's on the same draws.
function tests.nll_xprev_parameterisation_matches_eps()
   local x0 = quantised_data(128, 91)
   local r = {}
   for _, mt in ipairs{'eps', 'xprev'} do
      local diff = ddpm.diffusion{T = 1000, var_type = 'learned', mean_type = mt}
      local eps_model = exact_model(ddpm.diffusion{T = 1000, var_type = 'learned'})
      local sc = diff.sched
      local model = eps_model
      if mt == 'xprev' then
         model = function(x, t)
            local out = eps_model(x, t)
            local ab = sc:get('alphas_cumprod', t)
            local c1, c2 = sc:get('posterior_mean_coef1', t), sc:get('posterior_mean_coef2', t)
            local e = out:narrow(2, 1, 1)
            -- x0_hat = (x - sqrt(1 - ab) eps) / sqrt(ab); mu = c1 x0_hat + c2 x
            local x0h = x:clone():add_(e:clone():mul_(-math.sqrt(1 - ab))):mul_(1 / math.sqrt(ab))
            e:copy(x0h:mul_(c1):add_(x:clone():mul_(c2)))
            return out
         end
      end
      r[mt] = diff:nll(model, x0, {batch = 128, seed = 5, clip = false, progress = false})
   end
   note('eps %.6f, xprev %.6f bits/dim', r.eps.bpd, r.xprev.bpd)
   T.assert_near(r.xprev.bpd, r.eps.bpd, 1e-3 * r.eps.bpd, 'same bound in both parameterisations')
   local worst = 0
   for k = 1, 1000 do worst = math.max(worst, math.abs(r.xprev.terms[k] - r.eps.terms[k])) end
   T.assert_true(worst < 1e-4, ('every per-t term agrees (worst %.2g bits/dim)'):format(worst))
end

------------------------------------------------------------------ nll: data, respacing, SQLite

local function u32be(n)
   return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                      math.floor(n / 256) % 256, n % 256)
end

function tests.nll_dataset_respaced_and_logged()
   -- the same 7 images as a tensor and as an IDX data set give the same bound
   local x0 = quantised_data(7, 5)
   local idx = tmp .. '/q-idx3-ubyte'
   local parts = {'\0\0\8\3', u32be(7), u32be(H), u32be(W)}
   local f = x0:view({7 * D})
   for i = 1, 7 * D do parts[#parts + 1] = string.char(math.floor((f[i] + 1) * 127.5 + 0.5)) end
   local fh = assert(io.open(idx, 'wb'))
   fh:write(table.concat(parts))
   fh:close()
   local ds = core.dataset_idx(idx)
   local diff = ddpm.diffusion{T = 1000}
   local model = exact_model(diff)
   local a = diff:nll(model, x0, {batch = 3, steps = 20, seed = 2, progress = false})
   local b = diff:nll(model, ds, {batch = 3, steps = 20, seed = 2, progress = false})
   T.assert_eq(a.bpd, b.bpd)
   T.assert_eq(#a.terms, 20)
   T.assert_eq(a.t, diff:respace(20).tmap)
   local c = diff:nll(model, ds, {n = 4, batch = 4, steps = 20, seed = 2, progress = false})
   T.assert_eq(c.n, 4)
   -- logged: one query plots the per-t terms
   local db = tmp .. '/nll.db'
   local run = ddpm.log.start{db = db, name = 'nll-test'}
   local r = diff:nll(model, ds, {steps = 20, seed = 2, run = run, step = 7, progress = false})
   run:finish()
   local rl = core.runlog_open(db)
   local rows = rl:query("SELECT step, value FROM metrics_v WHERE run_id = :id AND key = 'nll_t' ORDER BY step",
                         {id = run.id})
   T.assert_eq(#rows, 20)
   T.assert_eq(rows[1].step, 0)
   T.assert_eq(rows[20].step, 999)
   T.assert_near(rows[1].value, r.terms[1], 1e-12)
   local tot = rl:query("SELECT step, value FROM metrics_v WHERE run_id = :id AND key = 'nll_bpd'", {id = run.id})
   T.assert_eq(tot[1].step, 7)
   T.assert_near(tot[1].value, r.bpd, 1e-12)
   T.assert_eq(#rl:query("SELECT 1 FROM metrics_v WHERE run_id = :id AND key = 'nll_mse_t'", {id = run.id}), 20)
   rl:close()
   -- a U-Net runs through the same loop (evaluation mode, restored)
   local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1}, num_res_blocks = 1, attn_resolutions = {},
                       in_ch = 1, out_ch = 1, resolution = 4}
   m:training()
   local u = diff:nll(m, x0, {n = 2, steps = 5, progress = false})
   T.assert_true(u.bpd > 0 and u.bpd == u.bpd, 'a finite bound')
   T.assert_true(m.is_training, 'mode restored')
   T.assert_error(function() diff:nll(model, x0, {n = 8}) end, '1..7')
   T.assert_error(function() diff:nll(model, x0, {bogus = 1}) end, "unknown option 'bogus'")
   T.assert_error(function() diff:nll(model, 42) end, 'tensor [N,C,H,W] or a ddpm.Dataset')
   os.execute("rm -rf '" .. tmp .. "'")
end

return tests
