--[[
The paper's sigma_t^2 ablation (section 3.2, "sigma_t^2 = beta_t and
sigma_t^2 = beta~_t had similar results"): the same eps-prediction model
trained with L_simple, sampled and evaluated with sigma_t^2 = beta_t
(fixedlarge) and with sigma_t^2 = beta~_t (fixedsmall). The variance choice
does not enter L_simple, so the model is trained once and the second run
reuses its EMA weights (tag weights_from_run); each run is evaluated with its
own sigma: NLL in bits/dim (the decoder and the KL terms depend on sigma) and
FD-LeNet of samples (ancestral, respaced to 250 steps by default). Results
land in runs.db (experiment 'ablation_sigma').

   ddpmlua experiments/ablation_sigma.lua [--steps=1200] [--fd_n=500] [--fd_steps=250] [--nll_n=64]
]]
local ddpm = require 'ddpm'
local ablation = require 'ddpm.ablation'

local defaults = {}
for k, v in pairs(ablation.defaults) do defaults[k] = v end
defaults.experiment = 'ablation_sigma'
defaults.fd_steps = 250
defaults.mean_type, defaults.loss_type, defaults.name = 'eps', 'mse', ''   -- each row sets var_type
local cfg = ddpm.cli.parse(arg, defaults)

local ids = ablation.run(cfg, {
   {name = 'sigma2=beta (fixedlarge)', var_type = 'fixedlarge'},
   {name = 'sigma2=beta_tilde (fixedsmall)', var_type = 'fixedsmall'},
})
print(('runs %s in %s; the table:'):format(table.concat(ids, ', '), cfg.db))
print(([[  ddpmlua sql --db %s "SELECT r.run_id, r.name, r.config_json ->> '$.var_type' AS sigma, max(m.value) FILTER (WHERE m.key = 'nll_bpd') AS nll_bpd, max(m.value) FILTER (WHERE m.key = 'fd_lenet') AS fd_lenet FROM runs r JOIN metrics_v m USING (run_id) WHERE r.experiment = 'ablation_sigma' GROUP BY r.run_id"]]):format(cfg.db))
