--[[
The rows of the paper's Table 2 in miniature, on Fashion-MNIST: mean
parameterisation (mu~ prediction = 'xprev', or eps) x objective (the true
bound L = 'kl', or the unweighted MSE) x reverse variance (fixed isotropic
sigma_t^2 = beta_t, or learned diagonal Sigma). Same seed, same model, same
budget for every row; each is evaluated by NLL (bits/dim) and FD-LeNet.
Variants that diverge are recorded as failed (the paper's "unstable" rows).

   ddpmlua experiments/ablation_loss.lua [--steps=1200] [--fd_n=500] [--fd_steps=100] [--nll_n=64]
]]
local ddpm = require 'ddpm'
local ablation = require 'ddpm.ablation'

local defaults = {}
for k, v in pairs(ablation.defaults) do defaults[k] = v end
defaults.experiment = 'ablation_loss'
defaults.name = ''   -- each row sets its own mean_type, loss_type and var_type
local cfg = ddpm.cli.parse(arg, defaults)

local ids = ablation.run(cfg, {
   {name = 'mu~ | L, learned Sigma',      mean_type = 'xprev', var_type = 'learned',    loss_type = 'kl'},
   {name = 'mu~ | L, fixed Sigma',        mean_type = 'xprev', var_type = 'fixedlarge', loss_type = 'kl'},
   {name = 'mu~ | unweighted MSE',        mean_type = 'xprev', var_type = 'fixedlarge', loss_type = 'mse'},
   {name = 'eps | L, learned Sigma',      mean_type = 'eps',   var_type = 'learned',    loss_type = 'kl'},
   {name = 'eps | L, fixed Sigma',        mean_type = 'eps',   var_type = 'fixedlarge', loss_type = 'kl'},
   {name = 'eps | L_simple',              mean_type = 'eps',   var_type = 'fixedlarge', loss_type = 'mse'},
})
print(('runs %s in %s; the table:'):format(table.concat(ids, ', '), cfg.db))
print(([[  ddpmlua sql --db %s "SELECT r.run_id, r.name, r.status, max(m.value) FILTER (WHERE m.key = 'nll_bpd') AS nll_bpd, max(m.value) FILTER (WHERE m.key = 'fd_lenet') AS fd_lenet FROM runs r LEFT JOIN metrics_v m USING (run_id) WHERE r.experiment = 'ablation_loss' GROUP BY r.run_id"]]):format(cfg.db))
