-- test_diffusion.lua — the diffusion bindings (bindings/l_diffusion.c): the
-- ddpm.Schedule userdata, q_sample and friends on tensors, and that every bad
-- argument is a Lua error with a useful message (pcall false, process alive).
-- Timesteps are the 0-based code index 0..T-1 (docs/math.md §0).

local T = require 'ddpm.test'
local core = require 'ddpm.core'

local tests = T.suite()

local function lin()
   return core.schedule('linear', 1000, 1e-4, 0.02)
end

function tests.schedule_values()
   local s = lin()
   T.assert_eq(s:T(), 1000)
   T.assert_eq(#s, 1000)
   T.assert_true(tostring(s):find('ddpm.Schedule T=1000', 1, true), tostring(s))
   T.assert_near(s:get('betas', 0), 1e-4, 1e-18)
   T.assert_near(s:get('alphas_cumprod', 499), 0.0785872, 5e-8)
   T.assert_near(s:get('alphas_cumprod', 999), 4.03583e-5, 5e-11)
   T.assert_near(s:get('posterior_variance', 1), 5.45319e-5, 5e-11)
   T.assert_near(s:get('posterior_log_variance_clipped', 0), -9.81673, 5e-6)
   local a = s:array('sqrt_alphas_cumprod')
   T.assert_eq(a:size(), {1000})
   T.assert_near(a[1000], 6.35282e-3, 1e-8)       -- tensors are 1-based
   T.assert_eq(#s:names(), 14)
   local c = core.schedule('cosine', 1000)
   T.assert_near(c:get('betas', 999), 0.999, 1e-15)
   T.assert_eq(core.schedule('jsd', 10):get('betas', 9), 1)
   local d = core.schedule('linear', 1000)            -- paper defaults
   T.assert_eq(d:get('betas', 999), 0.02)
end

function tests.schedule_from_betas_table_and_tensor()
   local s = core.schedule_from_betas({0.1, 0.2, 0.5})
   T.assert_eq(s:T(), 3)
   T.assert_near(s:get('alphas_cumprod', 2), 0.9 * 0.8 * 0.5, 1e-15)
   local t = core.tensor({0.1, 0.2, 0.5})
   local s2 = core.schedule_from_betas(t)
   T.assert_near(s2:get('alphas_cumprod', 2), 0.9 * 0.8 * 0.5, 1e-7)
end

function tests.respace_and_spacing()
   local idx = core.space_timesteps(1000, 'ddim50')
   T.assert_eq(#idx, 50)
   T.assert_eq(idx[2], 20)
   local s = lin()
   local r = s:respace('ddim50')
   T.assert_eq(r:T(), 50)
   T.assert_eq(r:timestep_map()[4], 60)
   T.assert_near(r:get('alphas_cumprod', 3), s:get('alphas_cumprod', 60), 1e-15)
   local r2 = s:respace({0, 500, 999})
   T.assert_near(r2:get('alphas_cumprod', 1), s:get('alphas_cumprod', 500), 1e-15)
   T.assert_error(function() s:respace({5, 5}) end, 'increase')
   T.assert_error(function() s:respace('ddim7x') end, 'ddim')
   T.assert_error(function() s:respace({1000}) end, '0..999')
   T.assert_error(function() core.space_timesteps(10, '11') end, 'cannot divide')
end

function tests.schedule_errors()
   T.assert_error(function() core.schedule('cosin', 1000) end, 'known: linear')
   T.assert_error(function() core.schedule('linear', 0) end, 'T must be')
   T.assert_error(function() core.schedule('linear', 1.5) end, 'T must be')
   T.assert_error(function() core.schedule(nil, 10) end, 'string expected')
   T.assert_error(function() core.schedule('linear', 10, 0, 0.02) end, 'outside (0, 1]')
   T.assert_error(function() core.schedule_from_betas({0.1, 0, 0.2}) end, 'beta[1] = 0')
   T.assert_error(function() core.schedule_from_betas({0.1, 'x'}) end, 'beta 2 is a string')
   T.assert_error(function() core.schedule_from_betas({}) end, 'empty')
   T.assert_error(function() core.schedule_from_betas(42) end, 'table or ddpm.Tensor')
   T.assert_error(function() core.schedule_from_betas(core.zeros(2, 2)) end, 'expected betas [T]')
   local s = lin()
   T.assert_error(function() s:get('betas', 1000) end, '0..999')
   T.assert_error(function() s:get('betas', -1) end, '0..999')
   T.assert_error(function() s:get('betas', 0.5) end, '0..999')
   T.assert_error(function() s:get('bogus', 0) end, 'posterior_mean_coef2')
   T.assert_error(function() s.get(42, 'betas', 0) end, 'ddpm.Schedule expected')
   s:free()
   T.assert_error(function() s:T() end, 'freed')
   T.assert_true(tostring(s):find('freed'), tostring(s))
end

-- one q_sample call against eq. 4 computed here
function tests.q_sample_matches_eq4()
   local s = lin()
   local x0 = core.randn({2, 3, 4, 4}, 1)
   local eps = core.randn({2, 3, 4, 4}, 2)
   local xt = core.q_sample(s, x0, eps, {0, 999})
   T.assert_eq(xt:size(), {2, 3, 4, 4})
   for _, n in ipairs({1, 2}) do
      local t = n == 1 and 0 or 999
      local ab = s:get('alphas_cumprod', t)
      for _, ix in ipairs({{1, 1, 1}, {3, 4, 2}}) do
         local c, h, w = ix[1], ix[2], ix[3]
         local want = math.sqrt(ab) * x0:get(n, c, h, w) + math.sqrt(1 - ab) * eps:get(n, c, h, w)
         T.assert_near(xt:get(n, c, h, w), want, 1e-6)
      end
   end
   -- number, tensor timesteps; out argument; round trip through predict_x0
   local out = core.zeros(2, 3, 4, 4)
   local r = core.q_sample(s, x0, eps, core.tensor({0, 999}), out)
   T.assert_true(r == out, 'returns the out tensor')
   T.assert_eq((r - xt):max(), 0)
   local back = core.predict_x0(s, xt, eps, {0, 999})
   T.assert_true((back - x0):max() < 1e-4 and (x0 - back):max() < 1e-4, 'round trip')
   local one = core.q_sample(s, x0, eps, 500)
   T.assert_near(one:get(1, 1, 1, 1), math.sqrt(s:get('alphas_cumprod', 500)) * x0:get(1, 1, 1, 1)
                 + math.sqrt(1 - s:get('alphas_cumprod', 500)) * eps:get(1, 1, 1, 1), 1e-6)
   -- a non-contiguous input is copied
   local xT = x0:transpose(3, 4)
   local e2 = eps:transpose(3, 4)
   local y = core.q_sample(s, xT, e2, {0, 999})
   T.assert_near(y:get(2, 3, 2, 4), xt:get(2, 3, 4, 2), 1e-7)
end

function tests.q_sample_errors()
   local s = lin()
   local x0, eps = core.zeros(2, 3, 4, 4), core.zeros(2, 3, 4, 4)
   T.assert_error(function() core.q_sample(nil, x0, eps, {0, 1}) end, 'ddpm.Schedule expected')
   T.assert_error(function() core.q_sample(s, nil, eps, {0, 1}) end, 'ddpm.Tensor expected')
   T.assert_error(function() core.q_sample(s, x0, 'eps', {0, 1}) end, 'ddpm.Tensor expected')
   T.assert_error(function() core.q_sample(s, x0, core.zeros(2, 3, 4, 5), {0, 1}) end,
                  'eps expected [2,3,4,4] (the shape of x0), got [2,3,4,5]')
   T.assert_error(function() core.q_sample(s, x0, eps) end, 'timesteps expected')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, 1000}) end, 'timestep 2 = 1000')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, -1}) end, '0..999')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, 1.5}) end, 'not an integer')
   T.assert_error(function() core.q_sample(s, x0, eps, {0}) end, '1 timesteps given for a batch of 2')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, 'a'}) end, 'timestep 2 is a string')
   T.assert_error(function() core.q_sample(s, x0, eps, 1000) end, '0..999')
   T.assert_error(function() core.q_sample(s, x0, eps, core.zeros(3)) end, 'one value per example')
   T.assert_error(function() core.q_sample(s, x0, eps, true) end, 'timesteps expected')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, 1}, core.zeros(2, 3, 4)) end,
                  'out expected [2,3,4,4], got [2,3,4]')
   T.assert_error(function() core.q_sample(s, x0, eps, {0, 1}, core.zeros(2, 3, 4, 4):transpose(3, 4)) end,
                  'contiguous')
   T.assert_error(function() core.q_sample(s, core.zeros(0), core.zeros(0), {}) end, 'N >= 1')
   local dead = core.zeros(2, 3, 4, 4)
   dead:free()
   T.assert_error(function() core.q_sample(s, dead, eps, {0, 1}) end, 'freed')
   T.assert_error(function() core.predict_x0(s, x0, core.zeros(1, 3, 4, 4), 0) end, 'expected [2,3,4,4]')
end

function tests.p_sample_step()
   local s = lin()
   local xt = core.randn({2, 3, 4, 4}, 3)
   local e = core.randn({2, 3, 4, 4}, 4)
   local z = core.randn({2, 3, 4, 4}, 5)
   -- t = 0: the mean, no noise
   local m = core.p_mean_variance(s, e, xt, {0, 0}, {clip = false})
   local x = core.p_sample_step(s, e, xt, {0, 0}, z, {clip = false})
   T.assert_eq((x - m):max(), 0)
   T.assert_eq((m - x):max(), 0)
   -- t = 500, fixedsmall: mean + sqrt(beta~) z; x0_out filled
   local x0 = core.zeros(2, 3, 4, 4)
   local m5, lv5 = core.p_mean_variance(s, e, xt, 500, {var_type = 'fixedsmall'})
   local x5 = core.p_sample_step(s, e, xt, 500, z, {var_type = 'fixedsmall', x0_out = x0})
   local sig = math.sqrt(s:get('posterior_variance', 500))
   T.assert_near(lv5:get(1, 1, 1, 1), s:get('posterior_log_variance_clipped', 500), 1e-5)
   T.assert_near(x5:get(2, 2, 3, 1), m5:get(2, 2, 3, 1) + sig * z:get(2, 2, 3, 1), 1e-5)
   T.assert_true(x0:max() <= 1 and x0:min() >= -1, 'x0_out clipped')
   -- learned_range needs 2C channels
   local mo = core.zeros(2, 6, 4, 4)
   local y = core.p_sample_step(s, mo, xt, 10, z, {var_type = 'learned_range'})
   T.assert_eq(y:size(), {2, 3, 4, 4})
   local out = core.zeros(2, 3, 4, 4)
   T.assert_true(core.p_sample_step(s, e, xt, 3, z, {out = out}) == out, 'opts.out returned')
   -- DDIM, eta = 0 needs no noise
   local r = s:respace('ddim10')
   local d = core.ddim_step(r, e, xt, 5, nil, {eta = 0})
   T.assert_eq(d:size(), {2, 3, 4, 4})
end

function tests.p_sample_step_errors()
   local s = lin()
   local xt, e, z = core.zeros(2, 3, 4, 4), core.zeros(2, 3, 4, 4), core.zeros(2, 3, 4, 4)
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {clip_denoised = true}) end,
                  "unknown option 'clip_denoised'")
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {mean_type = 'epsilon'}) end,
                  "unknown mean_type 'epsilon'")
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {var_type = 'large'}) end, 'fixedlarge')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {clip = 1}) end, 'must be a boolean')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, 'eps') end, 'options table expected')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {var_type = 'learned'}) end,
                  'model_out expected [2,6,4,4] (var_type learned needs 2C channels), got [2,3,4,4]')
   T.assert_error(function() core.p_sample_step(s, core.zeros(2, 3, 4, 5), xt, 0, z) end,
                  'model_out expected [2,3,4,4]')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, core.zeros(2, 3, 4)) end,
                  'noise expected [2,3,4,4]')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, nil) end, 'ddpm.Tensor expected')
   T.assert_error(function() core.p_sample_step(s, e, xt, {1000, 0}, z) end, '0..999')
   T.assert_error(function() core.p_sample_step(s, core.zeros(3), core.zeros(3), 0, z) end, '[N,C,H,W]')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {out = core.zeros(1)}) end,
                  'out expected [2,3,4,4], got [1]')
   T.assert_error(function() core.p_sample_step(s, e, xt, 0, z, {x0_out = 3}) end, 'must be a ddpm.Tensor')
   T.assert_error(function() core.ddim_step(s, e, xt, 5, nil, {eta = 1}) end, 'needs noise')
   T.assert_error(function() core.ddim_step(s, e, xt, 5, nil, {eta = -1}) end, 'eta')
end

function tests.loss_simple()
   local o = core.tensor({{1, 2}, {3, 4}})
   local y = core.tensor({{0, 2}, {3, 2}})
   local loss, g = core.loss_simple(o, y)
   T.assert_near(loss, (1 + 4) / 4, 1e-12)                    -- mean of meanflat
   T.assert_near(g:get(1, 1), 2 * 1 / 4, 1e-7)                -- 2 (o - y) / (N D)
   T.assert_near(g:get(2, 2), 2 * 2 / 4, 1e-7)
   local per = core.loss_simple_per_example(o, y)
   T.assert_near(per[1], 0.5, 1e-7)
   T.assert_near(per[2], 2.0, 1e-7)
   T.assert_error(function() core.loss_simple(o, core.zeros(2, 3)) end,
                  'target expected [2,2] (the shape of model_out), got [2,3]')
   T.assert_error(function() core.loss_simple(o, y, core.zeros(3)) end, 'grad expected [2,2]')
   T.assert_error(function() core.loss_simple(o) end, 'ddpm.Tensor expected')
end

function tests.training_losses_and_vb()
   local s = lin()
   local x0 = core.randn({2, 3, 4, 4}, 6)
   local eps = core.randn({2, 3, 4, 4}, 7)
   local xt = core.q_sample(s, x0, eps, {3, 700})
   local mo = core.randn({2, 3, 4, 4}, 8)
   local loss, g, losses = core.training_losses(s, mo, x0, xt, eps, {3, 700})
   local l2, g2 = core.loss_simple(mo, eps)
   T.assert_near(loss, l2, 1e-6)
   T.assert_near(g:get(2, 3, 4, 4), g2:get(2, 3, 4, 4), 1e-9)
   T.assert_eq(losses:size(), {2})
   local mo2 = core.zeros(2, 6, 4, 4)
   local lh, gh, lsh, mse, vb = core.training_losses(s, mo2, x0, xt, eps, {3, 700},
      {var_type = 'learned_range', loss_type = 'rescaled_mse', weights = {1, 0.5}})
   T.assert_eq(gh:size(), {2, 6, 4, 4})
   T.assert_near(lsh[1], mse[1] + vb[1], 1e-5)
   T.assert_near(lh, (lsh[1] + 0.5 * lsh[2]) / 2, 1e-5)
   local terms = core.vb_terms_bpd(s, eps, x0, xt, {3, 700}, {var_type = 'fixedsmall'})
   T.assert_true(math.abs(terms[1]) < 1e-3 and math.abs(terms[2]) < 1e-3, 'true eps: KL ~ 0')
   local prior = core.prior_bpd(s, x0)
   T.assert_true(prior[1] > 0 and prior[1] < 1e-3, 'prior ~ 1e-5 bits/dim')
   local mean, var, lv = core.q_posterior(s, x0, xt, {3, 700})
   T.assert_near(var[2], s:get('posterior_variance', 700), 1e-7)
   T.assert_eq(mean:size(), {2, 3, 4, 4})
   T.assert_error(function() core.training_losses(s, mo, x0, xt, nil, {3, 700}) end, 'eps is needed')
   T.assert_error(function() core.training_losses(s, mo, x0, xt, eps, {3, 700}, {loss_type = 'l1'}) end,
                  "unknown loss_type 'l1'")
   T.assert_error(function() core.training_losses(s, mo, x0, xt, eps, {3, 700}, {weights = {1}}) end,
                  '1 weights given for a batch of 2')
   T.assert_error(function() core.vb_terms_bpd(s, eps, x0, core.zeros(2, 3, 4), 0) end, 'x0 expected')
end

return tests
