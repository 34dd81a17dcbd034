--[[
ddpm.cmd.fid — `ddpmlua fid DIR_OR_RUN [--ref stats.npz] [--weights PATH]
[--save stats.npz] [--splits 10] [--batch 250] [--db PATH]`: FID and the
Inception Score of a folder of PNG images, or of a run's evaluation samples
(the newest `sample_dir` artifact that experiments/cifar_linear.lua records),
on the FID Inception-v3 (ddpm.fid, docs/fid.md).

--ref names the reference statistics (.npz with mu and sigma as published,
or ddpmlua's own); without it only the Inception Score is printed. --save
writes the folder's own statistics (e.g. of the CIFAR-10 training images, to
be a reference later). --weights defaults to fid.weights_path().
]]
local fid = require 'ddpm.fid'
local common = require 'ddpm.cmd.common'
local util = require 'ddpm.util'
local fail, is_dir, exists = common.fail, util.is_dir, util.exists

local command = {
   doc = '  FID and Inception Score of a folder of PNGs or a run\'s samples against reference statistics.',
   usage = 'fid DIR_OR_RUN [--ref stats.npz] [--weights PATH] [--save stats.npz] [--splits N] '
           .. '[--batch N] [--db PATH]',
   spec = {ref = 'string', weights = 'string', save = 'string', splits = 'int', batch = 'int',
           db = 'string'},
   run = function(o, pos)
      if #pos ~= 1 then fail('fid takes one folder of PNG images or one run, got %d arguments', #pos) end
      local dir = pos[1]
      if not is_dir(dir) then
         local db = o.db or 'runs.db'
         if not exists(db) then
            fail("'%s' is not a folder, and there is no run database '%s' to look it up in", dir, db)
         end
         local rl = common.open_db(db)
         local id = common.resolve(rl, dir, db)
         local rows = common.query(rl, "SELECT path FROM artifacts WHERE run_id = :id AND kind = 'sample_dir' "
                                   .. 'ORDER BY step DESC, rowid DESC LIMIT 1', {id = id})
         if #rows == 0 then
            fail('run %d has no evaluation samples (a sample_dir artifact: cifar_linear.lua --eval_samples)', id)
         end
         dir = rows[1].path
         if not is_dir(dir) then fail("run %d's samples folder '%s' is gone", id, dir) end
      end
      if o.splits and o.splits < 1 then fail('--splits must be at least 1') end
      if o.batch and o.batch < 1 then fail('--batch must be at least 1') end
      local weights = o.weights or fid.weights_path()
      if not exists(weights) then fail('%s', fid.weights_help(weights)) end
      if o.ref and not exists(o.ref) then fail("reference statistics '%s' not found", o.ref) end
      local t0 = os.time()
      local ok, r = pcall(fid.folder, dir, {
         ref = o.ref, weights = weights, save = o.save, splits = o.splits, batch = o.batch,
         warn = false,
         log = function(k, n)
            io.stderr:write(('\rfid: %d/%d images'):format(k, n))
            if k == n then io.stderr:write('\n') end
         end,
      })
      if not ok then
         if tostring(r):match('interrupted$') then error(r, 0) end
         common.failure('%s', (tostring(r):gsub('^[^:]*:%d+: ', '')))
      end
      if r.warning then io.stderr:write('warning: ', r.warning, '\n') end
      if r.fid then io.stdout:write(('FID %.4f  (%d images of %s against %s)\n'):format(r.fid, r.n, dir, o.ref)) end
      if r.is then
         io.stdout:write(('IS  %.4f +- %.4f  (%d splits)\n'):format(r.is, r.is_std, r.splits))
      end
      if o.save then io.stdout:write(('statistics of %d images saved to %s\n'):format(r.n, o.save)) end
      io.stderr:write(('%d s\n'):format(os.time() - t0))
   end,
}

return command
