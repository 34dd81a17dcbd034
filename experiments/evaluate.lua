--[[
Evaluate a finished run again, with other sampler settings or more images:
its last checkpoint (EMA weights by default) and its diffusion config are
read back from runs.db, and the results are recorded as a new run whose
parent is the evaluated one (experiment 'evaluate'), so

   SELECT p.name, c.config_json ->> '$.fd_steps' AS steps, m.value
   FROM runs c JOIN runs p ON p.run_id = c.parent_run_id JOIN metrics_v m ON m.run_id = c.run_id
   WHERE m.key = 'fd_lenet'

lists them beside the originals. Fashion-MNIST runs (1x28x28) get FD-LeNet
and the NLL on the Fashion-MNIST test set; other runs the NLL on CIFAR-10's
test split (--data_dir).

   ddpmlua experiments/evaluate.lua --run=3 --fd_steps=1000          # full ancestral chain
   ddpmlua experiments/evaluate.lua --run=3 --fd_sampler=ddim --fd_steps=50 --nll_n=0
   ddpmlua experiments/evaluate.lua --run=3 --precision=bf16                # bfloat16 forwards
]]
local ddpm = require 'ddpm'

local cfg = ddpm.cli.parse(arg, {
   run = 0, db = 'runs.db', weights = 'ema',
   fd_n = 500, fd_steps = 0, fd_sampler = 'ancestral', eta = 0, seed = 1,
   nll_n = 0, nll_batch = 64, nll_steps = 0, data_dir = os.getenv('DDPMLUA_CIFAR10') or '',
   name = '', precision = 'float32',
}, {
   run = {'the run to evaluate (its id in --db)', int = true, min = 1},
   weights = {'which weights of its checkpoint', choices = {'ema', 'raw'}},
})
if cfg.run < 1 then error('evaluate: --run=ID (a run in ' .. cfg.db .. ') is required', 0) end
if cfg.weights ~= 'ema' and cfg.weights ~= 'raw' then error("evaluate: --weights must be 'ema' or 'raw'", 0) end

local rl = ddpm.core.runlog_open(cfg.db)
local row = rl:query('SELECT run_id, uuid, name, config_json FROM runs WHERE run_id = :id', {id = cfg.run})[1]
if not row then error(('evaluate: no run %d in %s'):format(cfg.run, cfg.db), 0) end
local ck = rl:query('SELECT step, path FROM checkpoints WHERE run_id = :id ORDER BY step DESC LIMIT 1',
                    {id = cfg.run})[1]
if not ck then
   -- an ablation run that reused another's training has that run's weights
   local tag = rl:query("SELECT value FROM run_tags WHERE run_id = :id AND key = 'weights_from_run'",
                        {id = cfg.run})[1]
   if tag then
      ck = rl:query('SELECT step, path FROM checkpoints WHERE run_id = :id ORDER BY step DESC LIMIT 1',
                    {id = tonumber(tag.value)})[1]
   end
end
rl:close()
if not ck then error(('evaluate: run %d has no checkpoint to evaluate'):format(cfg.run), 0) end
local rc = ddpm.json.decode(row.config_json)

-- the checkpoint describes its model, process and images; older ones leave
-- the process to the run's recorded config
local model, diff, info = ddpm.load_unet(ck.path, {prefix = cfg.weights == 'ema' and 'ema.' or nil, strict = false})
model:evaluate()
model:set_precision(cfg.precision)
local mc = model:config()
-- The process is the evaluated run's own when its config records one: a run
-- may evaluate weights another run trained (an ablation's sigma rows share
-- one training, tag weights_from_run), and that checkpoint describes the
-- training run's process, not this run's.
if rc.T or rc.var_type or rc.schedule then
   diff = ddpm.diffusion{schedule = rc.schedule, T = rc.T, beta_start = rc.beta_start,
                         beta_end = rc.beta_end, mean_type = rc.mean_type, var_type = rc.var_type,
                         loss_type = rc.loss_type}
end
if not diff then
   error(('evaluate: neither run %d\'s config nor its checkpoint %s describes the diffusion process'):format(
      cfg.run, ck.path), 0)
end
local steps = cfg.fd_steps > 0 and cfg.fd_steps or diff.T

cfg.parent_name = row.name
local run = ddpm.log.start{db = cfg.db, experiment = 'evaluate', config = cfg, seed = cfg.seed,
                           parent_run_id = cfg.run,
                           name = cfg.name ~= '' and cfg.name or ('eval of run %d (%s)'):format(cfg.run, row.name)}
run:tag('checkpoint', ck.path)
io.stderr:write(('evaluating run %d (%s) at step %d, %s weights: %s\n'):format(cfg.run, row.name, ck.step,
                cfg.weights, ck.path))

local shape = info.data_shape or {mc.in_ch, mc.resolution, mc.resolution}
local fashion = shape[1] == 1 and shape[2] == 28 and shape[3] == 28
if cfg.nll_n > 0 then
   local test = fashion and ddpm.data.fashion_mnist{split = 'test'}
                or ddpm.data.cifar10{dir = cfg.data_dir ~= '' and cfg.data_dir or nil, split = 'test'}
   local r = diff:nll(model, test, {n = cfg.nll_n, batch = cfg.nll_batch, seed = cfg.seed, run = run,
                                    step = ck.step, steps = cfg.nll_steps > 0 and cfg.nll_steps or nil})
   io.stderr:write(('   NLL %.4f bits/dim (+- %.4f)\n'):format(r.bpd, r.bpd_se or 0))
end
if cfg.fd_n > 0 then
   if not fashion then error('evaluate: FD-LeNet needs a 1x28x28 (Fashion-MNIST) model', 0) end
   local x = diff:sample(model, {n = cfg.fd_n, shape = {1, 28, 28}, seed = cfg.seed + 1, steps = steps,
                                 sampler = cfg.fd_sampler, eta = cfg.fd_sampler == 'ddim' and cfg.eta or nil})
   local fd = ddpm.metrics.fd_lenet(x)
   ddpm.metrics.log_fd_lenet(run, ck.step, fd, {sampler = cfg.fd_sampler, steps = steps,
                                                ema = cfg.weights == 'ema', n = cfg.fd_n})
   local path = ('%s/samples-%s%d.png'):format(run.dir, cfg.fd_sampler, steps)
   ddpm.save_grid(path, x:narrow(1, 1, math.min(64, cfg.fd_n)))
   run:artifact(ck.step, 'sample_grid', path, {n = math.min(64, cfg.fd_n), sampler = cfg.fd_sampler,
                                               steps = steps, ema = cfg.weights == 'ema'})
   io.stderr:write(('   FD-LeNet %.3f (%d samples, %s %d steps) %s\n'):format(fd, cfg.fd_n, cfg.fd_sampler,
                   steps, path))
   x:free()
end
run:finish('finished')
print(('run %d: evaluation of run %d'):format(run.id, cfg.run))
