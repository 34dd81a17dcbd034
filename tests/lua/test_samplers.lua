-- test_samplers.lua — the samplers of lib/ddpm/diffusion.lua (ancestral,
-- respaced, DDIM, DDIM encode/decode, progressive, interpolation, shared
-- latents) and the closed forms they rest on (docs/math.md §1, §2, §5).
--
-- The analytic test. Data x0 ~ N(mu, diag(s^2)) with a different (mu, s) per
-- pixel of a 1x4x4 image. Then x_t ~ N(sqrt(ab) mu, ab s^2 + 1 - ab) and the
-- optimal eps-predictor is, elementwise,
--    eps*(x_t, t) = E[eps | x_t] = sqrt(1-ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab)
-- (Cov(eps, x_t) = sqrt(1-ab), Var(x_t) = ab s^2 + 1 - ab). It is plugged in
-- as a Lua-function model that computes ab from the ORIGINAL schedule at the
-- timestep it is fed, so a respaced sampler that fed the wrong timestep would
-- be caught.
-- Every sampler step is then affine in x with scalar coefficients and
-- independent noise per element, so each sampler's output law is exactly
-- Gaussian, N(m_p, v_p) per pixel with zero covariance between pixels, and
-- (m_p, v_p) follow from a scalar recursion computed here in float64 from the
-- schedule tables (`law`). Two separate claims are checked:
--   1. implementation: the sample mean, variance and all 120 pixel-pair
--      covariances agree with that law within 4.5 standard errors (n = 2048
--      samples; SE of a mean sqrt(v/n), of a variance v sqrt(2/(n-1)), of a
--      covariance sqrt(v_p v_q / n); 4.5 SE over the ~150 statistics of a
--      sampler gives a false alarm below 0.1%).
--   2. the sampler's law vs the data law (mu, s^2): a deterministic
--      discretisation error. Measured here for s = 0.25..1: ancestral T = 1000
--      |dvar| <= 0.8% (below the 3% SE, so the samples match the data itself
--      within 4.5 SE, checked directly); respaced to 100 steps (fixedlarge,
--      beta' recomputed) var up to +9.5%; DDIM eta = 0 with 50 steps var down
--      to -19% and with 1000 steps within 1.2% (first-order convergence in K).
--      These measured values are asserted as bounds.
-- Covariance: the data covariance is diagonal; a sampler that shared noise
-- across pixels or examples would show off-diagonal covariance and fail 1.

local T = require 'ddpm.test'
local ddpm = require 'ddpm'
local core = ddpm.core

local tests = T.suite()

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '_ddpm_samplers'
os.execute('mkdir -p ' .. tmp)

local function note(fmt, ...) print('# ' .. fmt:format(...)) end

------------------------------------------------------------------ closed forms

function tests.schedule_spot_checks()
   local lin = core.schedule('linear', 1000)
   T.assert_near(lin:get('betas', 1), 1.19920e-4, 5e-10)
   T.assert_near(lin:get('sqrt_alphas_cumprod', 999), 6.35282e-3, 5e-9)
   local cos = core.schedule('cosine', 1000)
   T.assert_near(cos:get('betas', 0), 4.12842e-5, 5e-11)
   T.assert_near(cos:get('alphas_cumprod', 999) / 2.4288e-9, 1, 1e-4)
   local q = core.schedule('quad', 1000, 1e-4, 0.02)
   T.assert_near(q:get('betas', 500), (math.sqrt(1e-4) + (math.sqrt(0.02) - math.sqrt(1e-4)) * 500 / 999) ^ 2, 1e-15)
   local w = core.schedule('warmup10', 1000, 1e-4, 0.02)
   T.assert_near(w:get('betas', 99), 0.02, 1e-15)                -- end of the 100-step warm-up
   T.assert_near(w:get('betas', 50), 1e-4 + (0.02 - 1e-4) * 50 / 99, 1e-15)
   T.assert_eq(w:get('betas', 100), 0.02)
   local j = core.schedule('jsd', 1000)
   T.assert_near(j:get('betas', 0), 1 / 1000, 1e-18)
   T.assert_eq(j:get('alphas_cumprod', 999), 0)
   -- derived tables against their definitions (docs/math.md §1.2) at a few t
   for _, t in ipairs{0, 1, 500, 999} do
      local b, ab = lin:get('betas', t), lin:get('alphas_cumprod', t)
      local abp = t == 0 and 1 or lin:get('alphas_cumprod', t - 1)
      T.assert_near(lin:get('alphas_cumprod_prev', t), abp, 0)
      T.assert_near(lin:get('posterior_variance', t), b * (1 - abp) / (1 - ab), 1e-18)
      T.assert_near(lin:get('posterior_mean_coef1', t), b * math.sqrt(abp) / (1 - ab), 1e-14)
      T.assert_near(lin:get('posterior_mean_coef2', t), (1 - abp) * math.sqrt(1 - b) / (1 - ab), 1e-14)
   end
   T.assert_eq(lin:get('posterior_variance', 0), 0)
   T.assert_eq(lin:get('alphas_cumprod_next', 999), 0)
end

function tests.respaced_schedule_recomputes_betas()
   local s = core.schedule('linear', 1000)
   local idx = core.space_timesteps(1000, '10')
   T.assert_eq(idx, {0, 111, 222, 333, 444, 555, 666, 777, 888, 999})
   T.assert_eq(core.space_timesteps(1000, '2,3'), {0, 499, 500, 750, 999})
   local r = s:respace('10')
   T.assert_eq(r:timestep_map(), idx)
   local prev = 1
   for k = 0, 9 do
      local ab = s:get('alphas_cumprod', idx[k + 1])
      T.assert_near(r:get('betas', k), 1 - ab / prev, 1e-15)
      T.assert_near(r:get('alphas_cumprod', k) / ab, 1, 1e-12)
      prev = ab
   end
   -- the diffusion object's view of it: cached, its own T, the original timesteps
   local d = ddpm.diffusion{T = 1000}
   local d10 = d:respace(10)
   T.assert_true(d10 == d:respace('10'), 'cached per spec')
   T.assert_true(d:respace(1000) == d and d:respace(nil) == d, 'steps = T is the process itself')
   T.assert_eq(d10.T, 10)
   T.assert_eq(d10:model_t(1), 111)
   T.assert_eq(d10:index_at(500), 4)          -- largest kept index <= 500 is 444 (k = 4)
   T.assert_eq(d:respace('ddim50'):model_t(49), 980)
   T.assert_error(function() d:respace(0) end, 'steps = 0')
   T.assert_error(function() d:respace('ddim7x') end, 'ddim')
end

function tests.q_sample_and_posterior_round_trips()
   local s = core.schedule('linear', 1000)
   local x0 = core.randn({4, 1, 4, 4}, 1)
   local eps = core.randn({4, 1, 4, 4}, 2)
   local t = {0, 1, 500, 999}
   local xt = core.q_sample(s, x0, eps, t)
   -- x0 -> (x_t, eps) -> x0 and eps (the factor sqrt(1/ab) = 157 at t = 999
   -- multiplies the float32 rounding of x_t: 1e-4 absolute)
   T.assert_true(core.predict_x0(s, xt, eps, t):max_abs_diff(x0) < 1e-4, 'x0 from eps')
   T.assert_true(core.predict_eps(s, xt, x0, t):max_abs_diff(eps) < 1e-4, 'eps from x0')
   -- the posterior against Bayes' rule for x_{t-1} ~ N(sqrt(abp) x0, 1-abp),
   -- x_t | x_{t-1} ~ N(sqrt(a_t) x_{t-1}, beta_t) (an independent formula)
   local mean, var, lv = core.q_posterior(s, x0, xt, t)
   for n = 2, 4 do
      local tn = t[n]
      local b, abp = s:get('betas', tn), s:get('alphas_cumprod_prev', tn)
      local prec = 1 / (1 - abp) + (1 - b) / b
      T.assert_near(var[n] / (1 / prec), 1, 1e-5)
      T.assert_near(lv[n], math.log(1 / prec), 1e-5)
      for _, ix in ipairs{{1, 1}, {3, 2}, {4, 4}} do
         local a0, at = x0:get(n, 1, ix[1], ix[2]), xt:get(n, 1, ix[1], ix[2])
         local m = (math.sqrt(abp) * a0 / (1 - abp) + math.sqrt(1 - b) * at / b) / prec
         T.assert_near(mean:get(n, 1, ix[1], ix[2]), m, 1e-5)
      end
   end
   -- the other parameterisations invert: xprev (the true posterior mean) and v
   local u = {1, 200, 500, 900}
   local xu = core.q_sample(s, x0, eps, u)
   local mu = core.q_posterior(s, x0, xu, u)
   local _, _, x0p = core.p_mean_variance(s, mu, xu, u, {mean_type = 'xprev', clip = false})
   T.assert_true(x0p:max_abs_diff(x0) < 1e-3, 'x0 from the posterior mean')
   local v = core.v_target(s, x0, eps, u)
   local _, _, x0v = core.p_mean_variance(s, v, xu, u, {mean_type = 'v', clip = false})
   T.assert_true(x0v:max_abs_diff(x0) < 1e-5, 'x0 from v')
   -- with the true eps the model mean is the posterior mean
   local m_eps = core.p_mean_variance(s, eps, xu, u, {clip = false})
   T.assert_true(m_eps:max_abs_diff(mu) < 1e-4, 'eps model mean = posterior mean')
end

function tests.ddim_eta1_is_ancestral_fixedsmall_and_t0()
   -- eta = 1: sigma^2 = beta~, and sqrt(abp) x0 + sqrt(1-abp-sigma^2) eps equals
   -- c1 x0 + c2 x_t, so one DDIM step = one fixedsmall ancestral step
   local s = core.schedule('linear', 1000):respace('ddim50')
   local xt = core.randn({3, 1, 4, 4}, 3)
   local e = core.randn({3, 1, 4, 4}, 4) * 0.5
   local z = core.randn({3, 1, 4, 4}, 5)
   for _, t in ipairs{1, 10, 30, 49} do
      local a = core.ddim_step(s, e, xt, t, z, {eta = 1, clip = false})
      local b = core.p_sample_step(s, e, xt, t, z, {var_type = 'fixedsmall', clip = false})
      T.assert_true(a:max_abs_diff(b) < 2e-5, ('t = %d: %g'):format(t, a:max_abs_diff(b)))
   end
   -- t = 0: abp = 1, the DDIM step returns the x0 prediction, noise unused
   local x0 = core.zeros({3, 1, 4, 4})
   local a = core.ddim_step(s, e, xt, 0, z, {eta = 1, clip = false, x0_out = x0})
   T.assert_true(a:max_abs_diff(x0) < 1e-6, 'DDIM at t = 0 is x0_hat')
   -- reverse step: x_next = sqrt(ab_next) x0_hat + sqrt(1 - ab_next) eps_hat
   local r = core.ddim_reverse_step(s, e, xt, 10, {clip = false})
   local abn = s:get('alphas_cumprod_next', 10)
   local _, _, x0h = core.p_mean_variance(s, e, xt, 10, {clip = false})
   local eh = core.predict_eps(s, xt, x0h, 10)
   local want = x0h * math.sqrt(abn) + eh * math.sqrt(1 - abn)
   T.assert_true(r:max_abs_diff(want) < 1e-5, 'ddim_reverse_step closed form')
   T.assert_error(function() core.ddim_reverse_step(s, e, xt, 10, {eta = 0}) end, "unknown option 'eta'")
end

------------------------------------------------------------------ the Gaussian model

local NPIX = 16
local MU, SD = {}, {}
for p = 1, NPIX do
   MU[p] = -0.6 + 0.08 * (p - 1)
   SD[p] = 0.25 + 0.05 * (p - 1)
end

-- Per-pixel constants broadcast to a batch of n (cached by n).
local function per_pixel(values, n, cache)
   if cache[n] then return cache[n] end
   local t = core.zeros({n, 1, 4, 4})
   local f = t:view({n * NPIX})
   for i = 0, n - 1 do
      for p = 1, NPIX do f[i * NPIX + p] = values[p] end
   end
   cache[n] = t
   return t
end

local S2 = {}
for p = 1, NPIX do S2[p] = SD[p] ^ 2 end
local mu_cache, s2_cache = {}, {}

--- eps*(x, t) for the base schedule `sched` (t: the ORIGINAL timestep).
local function gauss_model(sched)
   return function(x, t)
      T.assert_true(type(t) == 'number', 'the sampler feeds one timestep for the batch')
      local n = x:size(1)
      local mu, s2 = per_pixel(MU, n, mu_cache), per_pixel(S2, n, s2_cache)
      local ab = sched:get('alphas_cumprod', t)
      local num = x - mu * math.sqrt(ab)
      local den = s2 * ab + (1 - ab)
      return (num / den):mul_(math.sqrt(1 - ab))
   end
end

-- The exact output law N(m, v) of one pixel under sampler (ancestral
-- fixedlarge / DDIM eta) on process d, the model built on `base`, x_T ~ N(0, 1).
local function law(d, base, sampler, eta, mu, s2)
   local sc = d.sched
   local m, v = 0, 1
   for k = d.T - 1, 0, -1 do
      local abo = base:get('alphas_cumprod', d:model_t(k))
      local g, h = math.sqrt(1 - abo) / (abo * s2 + 1 - abo), math.sqrt(abo) * mu
      local sra, srm1 = sc:get('sqrt_recip_alphas_cumprod', k), sc:get('sqrt_recipm1_alphas_cumprod', k)
      local a, b = sra - srm1 * g, srm1 * g * h            -- x0_hat = a x + b
      local A, B, var
      if sampler == 'ddim' then
         local ab, abp = sc:get('alphas_cumprod', k), sc:get('alphas_cumprod_prev', k)
         local sig = k > 0 and eta * math.sqrt((1 - abp) / (1 - ab)) * math.sqrt(1 - ab / abp) or 0
         local ea, eb = (sra - a) / srm1, -b / srm1          -- eps re-derived from x0_hat
         local ce = math.sqrt(math.max(1 - abp - sig * sig, 0))
         A, B, var = math.sqrt(abp) * a + ce * ea, math.sqrt(abp) * b + ce * eb, sig * sig
      else
         local c1, c2 = sc:get('posterior_mean_coef1', k), sc:get('posterior_mean_coef2', k)
         A, B, var = c1 * a + c2, c1 * b, k > 0 and sc:get('betas', k) or 0
      end
      m, v = A * m + B, A * A * v + var
   end
   return m, v
end

-- Max |z| of the sample's per-pixel means, variances and pairwise
-- covariances against the law (m[p], v[p]), zero covariance.
local function moment_z(x, m, v)
   local n = x:size(1)
   local f = x:contiguous():view({n * NPIX})
   local cols, means = {}, {}
   for p = 1, NPIX do
      local c, s = {}, 0
      for i = 0, n - 1 do c[i + 1] = f[i * NPIX + p]; s = s + c[i + 1] end
      means[p] = s / n
      for i = 1, n do c[i] = c[i] - means[p] end
      cols[p] = c
   end
   local zmax, what = 0, ''
   local function z(val, label)
      if math.abs(val) > zmax then zmax, what = math.abs(val), label end
   end
   for p = 1, NPIX do
      local ss = 0
      for i = 1, n do ss = ss + cols[p][i] ^ 2 end
      local var = ss / (n - 1)
      z((means[p] - m[p]) / math.sqrt(v[p] / n), 'mean of pixel ' .. p)
      z((var - v[p]) / (v[p] * math.sqrt(2 / (n - 1))), 'variance of pixel ' .. p)
      for q = p + 1, NPIX do
         local c = 0
         for i = 1, n do c = c + cols[p][i] * cols[q][i] end
         z(c / (n - 1) / math.sqrt(v[p] * v[q] / n), ('covariance %d,%d'):format(p, q))
      end
   end
   return zmax, what
end

local NS = 2048
local ZTOL = 4.5

local function check_sampler(label, opt, sampler, eta, var_bound)
   local diff = ddpm.diffusion{T = 1000}
   local base = diff.sched
   local d = diff:respace(opt.steps)
   local m, v, worst = {}, {}, 0
   for p = 1, NPIX do
      m[p], v[p] = law(d, base, sampler, eta, MU[p], S2[p])
      worst = math.max(worst, math.abs(v[p] / S2[p] - 1))
      -- mean: x_T ~ N(0, 1) instead of N(sqrt(ab_T) mu, .) offsets it by ~0.006 mu,
      -- which the deterministic DDIM map carries to x_0 (times about s)
      T.assert_true(math.abs(m[p] - MU[p]) < 5e-3, label .. ': law mean bias')
   end
   local o = {n = NS, shape = {1, 4, 4}, seed = 7, clip = false, progress = false}
   for k, val in pairs(opt) do o[k] = val end
   local t0 = core.time()
   local x = diff:sample(gauss_model(base), o)
   local z, what = moment_z(x, m, v)
   note('%s: %d samples in %.1f s; max |z| vs its exact law %.2f (%s); law vs data: max |var/s^2 - 1| = %.4f',
        label, NS, core.time() - t0, z, what, worst)
   T.assert_true(z < ZTOL, ('%s: %s is %.2f SE from the exact law'):format(label, what, z))
   T.assert_true(worst <= var_bound, ('%s: discretisation bias %.4f over %.4f'):format(label, worst, var_bound))
   return x, m, v
end

function tests.analytic_ancestral_T1000()
   local x = check_sampler('ancestral T=1000', {}, 'ancestral', 0, 0.008)
   -- and directly against the data law N(mu, s^2)
   local v = {}
   for p = 1, NPIX do v[p] = S2[p] end
   local z, what = moment_z(x, MU, v)
   note('ancestral T=1000 vs the data law: max |z| %.2f (%s)', z, what)
   T.assert_true(z < ZTOL, ('%s is %.2f SE from the data law'):format(what, z))
end

function tests.analytic_respaced_100()
   check_sampler('ancestral respaced to 100', {steps = 100}, 'ancestral', 0, 0.10)
end

function tests.analytic_ddim_50()
   check_sampler('DDIM eta=0, 50 steps', {steps = 50, sampler = 'ddim', eta = 0}, 'ddim', 0, 0.20)
   -- the bias is discretisation error: it shrinks as the steps grow
   local diff = ddpm.diffusion{T = 1000}
   local prev = math.huge
   for _, K in ipairs{50, 250, 1000} do
      local _, v = law(diff:respace(K), diff.sched, 'ddim', 0, MU[1], S2[1])
      local b = math.abs(v / S2[1] - 1)
      T.assert_true(b < prev, 'DDIM variance bias falls with K')
      prev = b
   end
   T.assert_true(prev < 0.012, 'DDIM with 1000 steps: variance within 1.2%')
end

-- A mu~ (xprev) network predicts the mean of x_{t-1} in the ORIGINAL
-- process. On a respaced process its output has to be read through x0; the
-- xprev form of the same exact model must then sample exactly like the eps
-- form (respaced ancestral and DDIM), which it cannot when the output is
-- taken for the respaced step's mean.
function tests.xprev_model_on_respaced_processes()
   local eps_model = gauss_model(ddpm.diffusion{T = 1000}.sched)
   local base = ddpm.diffusion{T = 1000}.sched
   local function xprev_model(x, t)
      local e = eps_model(x, t)
      local ab = base:get('alphas_cumprod', t)
      local c1, c2 = base:get('posterior_mean_coef1', t), base:get('posterior_mean_coef2', t)
      local x0h = (x - e * math.sqrt(1 - ab)):mul_(1 / math.sqrt(ab))
      return x0h:mul_(c1):add_(x, c2)
   end
   for _, o in ipairs{{steps = 100}, {steps = 50, sampler = 'ddim', eta = 0}, {steps = 1000}} do
      local opt = {n = 64, shape = {1, 4, 4}, seed = 3, clip = false, progress = false,
                   steps = o.steps, sampler = o.sampler, eta = o.eta}
      local a = ddpm.diffusion{T = 1000}:sample(eps_model, opt)
      local b = ddpm.diffusion{T = 1000, mean_type = 'xprev'}:sample(xprev_model, opt)
      local d = a:max_abs_diff(b)
      note('%s %d steps: eps vs xprev model max |diff| %.2g', o.sampler or 'ancestral', o.steps, d)
      T.assert_true(d < 2e-3, ('%s %d steps: xprev and eps forms differ by %.3g'):format(
         o.sampler or 'ancestral', o.steps, d))
   end
end

------------------------------------------------------------------ DDIM: deterministic, invertible

function tests.ddim_deterministic_and_invertible_analytic()
   local diff = ddpm.diffusion{T = 1000}
   local model = gauss_model(diff.sched)
   local xT = core.randn({32, 1, 4, 4}, 11)
   local a = diff:ddim_decode(model, xT, {steps = 50, clip = false, progress = false})
   local b = diff:ddim_decode(model, xT, {steps = 50, clip = false, progress = false})
   T.assert_true(a:equal(b), 'same x_T, same x_0, bit for bit')
   local c = diff:sample(model, {noise = xT, sampler = 'ddim', eta = 0, steps = 50, seed = 99, clip = false,
                                 progress = false})
   T.assert_true(a:equal(c), 'eta = 0 draws no noise: the seed does not matter')
   T.assert_eq(xT:max_abs_diff(core.randn({32, 1, 4, 4}, 11)), 0)   -- x_T untouched
   T.assert_error(function() diff:ddim_encode(model, xT, {eta = 0.5}) end, 'eta must be 0')
   -- encode then decode. With this model each direction is an affine map per
   -- pixel; the round trip is not the identity only by the first-order
   -- (Euler) error of the K-step discretisation, measured ~10/K here for
   -- |x0 - mu| up to 3 s: K = 100: 0.10, K = 1000: 0.011.
   local x0 = per_pixel(MU, 64, {}) + per_pixel(SD, 64, {}) * core.randn({64, 1, 4, 4}, 12)
   for _, c in ipairs{{100, 0.12}, {1000, 0.015}} do
      local K, tol = c[1], c[2]
      local lat = diff:ddim_encode(model, x0, {steps = K, clip = false, progress = false})
      local back = diff:ddim_decode(model, lat, {steps = K, clip = false, progress = false})
      local err = back:max_abs_diff(x0)
      local d = back - x0
      note('DDIM K=%d encode/decode (Gaussian model): max |x0 - dec(enc(x0))| = %.4f, rms %.4f (tolerance %.3f)',
           K, err, math.sqrt((d * d):mean()), tol)
      T.assert_true(err < tol, ('K = %d: round trip error %.4f >= %.3f'):format(K, err, tol))
      -- the latent is (close to) N(0, 1): standardised data pushed to t = T-1
      local sd = math.sqrt((lat * lat):mean())
      T.assert_true(math.abs(sd - 1) < 0.15, ('latent standard deviation %.3f'):format(sd))
   end
end

-- A tiny U-Net trained for a few seconds on 8x8 images of a 2x2 square at one of
-- four places (the data of test_train.lua), trained once and shared.
local trained
local function tiny_trained()
   if trained then return trained end
   local N = 64
   local data = core.full({N, 1, 8, 8}, -1)
   for n = 1, N do
      local q = (n - 1) % 4
      local oy, ox = (q < 2) and 2 or 6, (q % 2 == 0) and 2 or 6
      for y = oy, oy + 1 do for x = ox, ox + 1 do data:set(n, 1, y, x, 1) end end
   end
   local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                       dropout = 0, in_ch = 1, out_ch = 1, resolution = 8, seed = 1}
   local diff = ddpm.diffusion{T = 1000}
   local adam = core.adam(m:num_params())
   m:training()
   local t0 = core.time()
   for step = 1, 200 do
      local idx = core.randint(32, N, 7, step * 1000)
      local x0 = core.zeros({32, 1, 8, 8})
      for i = 1, 32 do x0[i] = data[idx[i] + 1] end
      m:zero_grad()
      diff:loss(m, x0, {t_seed = 1, t_counter = step * 1000, eps_seed = 2, eps_counter = step * 100000})
      core.clip_grad_norm(m:flat_grads(), 1)
      adam:step(m:flat_params(), m:flat_grads(), 2e-3 * math.min(step / 20, 1))
   end
   m:evaluate()
   note('tiny U-Net trained 200 steps in %.1f s', core.time() - t0)
   trained = {model = m, diff = diff, data = data}
   return trained
end

function tests.ddim_invertible_tiny_unet()
   local tr = tiny_trained()
   local x0 = tr.data:narrow(1, 1, 8):clone()
   -- measured: K = 100: max 0.04, rms 0.012 (one 8-bit level is 0.0078)
   local lat = tr.diff:ddim_encode(tr.model, x0, {steps = 100, clip = false, progress = false})
   local back = tr.diff:ddim_decode(tr.model, lat, {steps = 100, clip = false, progress = false})
   local again = tr.diff:ddim_decode(tr.model, lat, {steps = 100, clip = false, progress = false})
   T.assert_true(back:equal(again), 'deterministic with the U-Net too')
   local d = back - x0
   local err, rms = back:max_abs_diff(x0), math.sqrt((d * d):mean())
   note('DDIM K=100 encode/decode (tiny trained U-Net, 8x8): max %.4f, rms %.4f (tolerances 0.15, 0.04)', err, rms)
   T.assert_true(err < 0.15 and rms < 0.04, ('round trip max %.4f rms %.4f'):format(err, rms))
end

------------------------------------------------------------------ figures

local function png_size(path)
   local f = io.open(path, 'rb')
   T.assert_true(f ~= nil, path .. ' written')
   local h = f:read(24)
   f:close()
   T.assert_true(h:sub(1, 8) == '\137PNG\r\n\26\n', 'a PNG')
   local function u32(i)
      local a, b, c, d = h:byte(i, i + 3)
      return ((a * 256 + b) * 256 + c) * 256 + d
   end
   return u32(17), u32(21)
end

-- save_grid: ncol * (W + 2) + 2 by nrows * (H + 2) + 2
local function grid_px(ncol, nrows, side) return ncol * (side + 2) + 2, nrows * (side + 2) + 2 end

function tests.progressive_interpolation_shared_latent_pngs()
   local tr = tiny_trained()
   local m, diff = tr.model, tr.diff
   -- progressive (Fig. 6): 2 samples, 50 respaced steps, a snapshot every 100 steps
   local path = tmp .. '/progressive.png'
   local x, snaps = diff:progressive(m, {n = 2, shape = {1, 8, 8}, seed = 1, steps = 50, every = 100,
                                         progress = false, path = path})
   T.assert_eq(#snaps, 10)
   local first = 999                     -- '50' keeps 0, 20, 41, ..., 979, 999: the smallest >= 900
   for _, t in ipairs(diff:respace(50).tmap) do if t >= 900 and t < first then first = t end end
   T.assert_eq(snaps[1].t, first)
   T.assert_eq(snaps[10].t, 0)
   for i = 2, #snaps do T.assert_true(snaps[i].t < snaps[i - 1].t, 'descending t') end
   T.assert_true(snaps[10].x0:max_abs_diff(x:clamp(-1, 1)) < 1e-6, 'the t = 0 prediction is the sample')
   local w, h = png_size(path)
   T.assert_eq({w, h}, {grid_px(10, 2, 8)})
   -- the same seed and steps give the same sample as sample()
   local y = diff:sample(m, {n = 2, shape = {1, 8, 8}, seed = 1, steps = 50, progress = false})
   T.assert_true(x:equal(y), 'progressive = sample plus snapshots')

   -- interpolation (Fig. 8): 2 pairs, 5 lambdas, from t = 500 on the 50-step process
   path = tmp .. '/interp.png'
   local a, b = tr.data:narrow(1, 1, 2), tr.data:narrow(1, 3, 2)
   local lam = {0, 0.25, 0.5, 0.75, 1}
   local xi, l2 = diff:interpolate(m, a, b, {t = 500, lambdas = lam, steps = 50, seed = 2, progress = false,
                                            path = path})
   T.assert_eq(xi:size(), {10, 1, 8, 8})
   T.assert_eq(l2, lam)
   T.assert_eq({png_size(path)}, {grid_px(7, 2, 8)})
   -- lambda = 0 reconstructs from x_t of a alone: the same as lambda = 0 only
   local x0only = diff:interpolate(m, a, b, {t = 500, lambdas = {0}, steps = 50, seed = 2, progress = false})
   T.assert_true(x0only[1]:max_abs_diff(xi[1]) < 1e-6 and x0only[2]:max_abs_diff(xi[6]) < 1e-6,
                 'noise fixed across lambdas')
   -- t = 0 on the full process: pixel-space mixing, no reverse step beyond the decoder
   local mix = diff:interpolate(m, a, b, {t = 0, lambdas = {0.5}, progress = false})
   T.assert_eq(mix:size(), {2, 1, 8, 8})

   -- coarse-to-fine (Fig. 7): 1 root, splits at 999/749/499/249, 3 branches
   path = tmp .. '/shared.png'
   local xs, used = diff:shared_latent(m, {shape = {1, 8, 8}, branches = 3, steps = 50, seed = 3,
                                          progress = false, path = path})
   T.assert_eq(xs:size(), {12, 1, 8, 8})
   T.assert_eq(#used, 4)
   T.assert_eq(used[1], 999)
   T.assert_eq({png_size(path)}, {grid_px(3, 4, 8)})
   -- later splits share more. With the Gaussian model the spread of branches
   -- split at t is Var(x0 | x_t) = s^2 (1-ab)/(ab s^2 + 1-ab): about s^2 at
   -- t = 999, 0.1 s^2 at t = 49 (16 branches, 16 pixels)
   local g = gauss_model(diff.sched)
   local xg, ug = diff:shared_latent(g, {shape = {1, 4, 4}, branches = 16, split = {999, 49}, seed = 4,
                                         clip = false, progress = false})
   T.assert_eq(ug, {999, 49})
   local function spread(i)
      local r = xg:narrow(1, (i - 1) * 16 + 1, 16)
      local mean = core.zeros({1, 4, 4})
      for j = 1, 16 do mean:add_(r[j], 1 / 16) end
      local acc = 0
      for j = 1, 16 do local d = r[j] - mean; acc = acc + (d * d):sum() end
      local ref = 0
      for p = 1, NPIX do ref = ref + S2[p] end
      return acc / 15 / ref                 -- branch variance over the data variance
   end
   note('shared latents (Gaussian model): branch variance / data variance at t = 999: %.3f, t = 49: %.3f',
        spread(1), spread(2))
   T.assert_true(spread(1) > 0.6 and spread(2) < 0.3, 'branches split late stay close')
   -- progressive with a Lua-function model
   local _, sn = diff:progressive(g, {n = 1, shape = {1, 4, 4}, steps = 20, every = 250, progress = false,
                                      clip = false})
   T.assert_eq(#sn, 4)
   os.execute("rm -rf '" .. tmp .. "'")
end

function tests.argument_errors()
   local diff = ddpm.diffusion{T = 100}
   local f = function(x) return x end
   T.assert_error(function() diff:sample(f, {n = 1}) end, 'shape = {C, H, W}')
   T.assert_error(function() diff:sample(f, {n = 1, shape = {1, 2, 2}, step = 10}) end, "unknown option 'step'")
   T.assert_error(function() diff:progressive(f, {n = 1, shape = {1, 2, 2}, every = 0}) end, 'every')
   T.assert_error(function() diff:sample(42, {n = 1, shape = {1, 2, 2}}) end, 'model must be')
   T.assert_error(function() diff:sample(f, {n = 1, shape = {1, 2, 2}, sampler = 'plms'}) end, "'ancestral' or 'ddim'")
   T.assert_error(function() diff:sample(f, {n = 1, shape = {1, 2, 2}, eta = 1}) end, "sampler = 'ddim'")
   T.assert_error(function() diff:sample(function() return 1 end, {n = 1, shape = {1, 2, 2}, progress = false}) end,
                  'expected a tensor')
   T.assert_error(function() diff:sample(f, {n = 1, shape = {1, 2, 2}, steps = 101}) end, '1..100')
   T.assert_error(function() diff:interpolate(f, core.zeros({1, 1, 2, 2}), core.zeros({1, 1, 2, 3})) end, 'differ in shape')
   T.assert_error(function() diff:interpolate(f, core.zeros({1, 1, 2, 2}), core.zeros({1, 1, 2, 2}), {t = 100}) end, '0..99')
   -- a failing model leaves a U-Net's mode restored
   local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1}, num_res_blocks = 1, attn_resolutions = {},
                       in_ch = 1, out_ch = 1, resolution = 4}
   m:training()
   T.assert_error(function() diff:sample(m, {n = 1, shape = {2, 4, 4}, progress = false}) end)
   T.assert_true(m.is_training, 'training mode restored after an error')
end

return tests
