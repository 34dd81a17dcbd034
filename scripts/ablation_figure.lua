--[[
One picture of an ablation: the sample grid of every run of an experiment
(the 'sample_grid' artifact that the FD-LeNet evaluation wrote, or the
newest one of an experiments/evaluate.lua re-evaluation of that run with
the same sampler settings), side by side in run order, on white.

   ddpmlua scripts/ablation_figure.lua --db=runs.db --experiment=ablation_loss --out=ablation.png
]]
local ddpm = require 'ddpm'
local core = ddpm.core

local cfg = ddpm.cli.parse(arg, {db = 'runs.db', experiment = 'ablation_loss', out = 'ablation.png', nrow = 3},
                           {out = {'the PNG to write', path = true},
                            nrow = {'grids per row', int = true, min = 1}})
local rl = core.runlog_open(cfg.db, {readonly = true})
local rows = rl:query([[SELECT r.run_id, r.name, (SELECT a.path FROM artifacts a WHERE a.kind = 'sample_grid'
      AND (a.run_id = r.run_id OR a.run_id IN (SELECT c.run_id FROM runs c WHERE c.parent_run_id = r.run_id
           AND c.experiment = 'evaluate' AND c.status = 'finished'
           AND c.config_json ->> '$.fd_steps' = r.config_json ->> '$.fd_steps'
           AND c.config_json ->> '$.fd_n' = r.config_json ->> '$.fd_n'))
      ORDER BY a.created DESC, a.artifact_id DESC LIMIT 1) AS path
   FROM runs r WHERE r.experiment = :e ORDER BY r.run_id]], {e = cfg.experiment})
rl:close()
local tmp = os.tmpname()
os.remove(tmp)
os.execute(("mkdir -p '%s'"):format(tmp))
local n = 0
for _, r in ipairs(rows) do
   if r.path then
      n = n + 1
      os.execute(("cp '%s' '%s/%03d.png'"):format(r.path, tmp, n))
      print(('%d. run %d  %s'):format(n, r.run_id, r.name))
   else
      print(('-  run %d  %s: no sample grid (failed or not evaluated)'):format(r.run_id, r.name))
   end
end
if n == 0 then error(('no sample grids of experiment %s in %s'):format(cfg.experiment, cfg.db), 0) end
local d = core.dataset_png_dir(tmp, 1)
local idx = {}
for i = 1, n do idx[i] = i end
local x = d:batch(idx)
core.save_grid(cfg.out, x, cfg.nrow, 8, 1)
os.execute(("rm -rf '%s'"):format(tmp))
print(('%s: %d grids, %d per row'):format(cfg.out, n, cfg.nrow))
