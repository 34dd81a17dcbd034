--[[
ddpm.log — run history in SQLite (runtime/runlog.c does the storage).

   local run = ddpm.log.start{db = 'runs.db', name = 'fmnist', config = cfg, seed = 1}
   run:metric(step, 'loss', 0.031)         -- buffered, committed in batches
   run:artifact(step, 'sample_grid', path)
   run:finish()                            -- status 'finished'

A run records the script's text and hash, the config as canonical JSON, the
seed, argv, the git commit (when the script lives in a git work tree), host,
pid and times. A run that is never finished is marked 'failed' (with the
script's error and traceback when the script died of one) when the process
ends or the Run is collected.
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'
local util = require 'ddpm.util'

local log = {}

local Run = {}
Run.__index = Run
log.Run = Run

local read_file, shell_quote = util.read_file, util.shell_quote

local function git_info(path)
   local dir = path and path:match('^(.*)/[^/]*$') or '.'
   local p = io.popen('git -C ' .. shell_quote(dir) .. ' rev-parse HEAD 2>/dev/null')
   if not p then return nil end
   local commit = p:read('*l')
   p:close()
   if not commit or not commit:match('^%x+$') then return nil end
   local q = io.popen('git -C ' .. shell_quote(dir) .. ' status --porcelain --untracked-files=no 2>/dev/null')
   local dirty = q and q:read('*a') or ''
   if q then q:close() end
   return commit, dirty ~= ''
end

-- sha256 of this executable (nil where /proc is missing); hashed once.
local exe_sha
local function binary_sha256()
   if exe_sha == nil then
      local ok, h = pcall(core.sha256_file, '/proc/self/exe')
      exe_sha = ok and h or false
   end
   return exe_sha or nil
end

--- Run folders made lazily: log.start names runs/<uuid>/, and the folder
--- appears when the first file is written there (log.prepare), so a run
--- that writes nothing leaves no empty folder behind.
local pending = {}

--- log.prepare(path): before writing path, make its folder when it is a
--- run's folder not made yet. Other folders are left alone (a wrong path
--- stays an error).
function log.prepare(path)
   local dir = type(path) == 'string' and path:match('^(.*)/[^/]*$')
   if dir and pending[dir] then
      os.execute('mkdir -p ' .. shell_quote(dir))
      pending[dir] = nil
   end
end

--- Ids of the runs this process finished as 'failed': the host's exit
--- status is 1 when there is one, even if the script caught the error.
log.failed_runs = {}

local function script_info()
   local a = rawget(_G, 'arg')
   local path = a and a[0]
   local text = path and read_file(path)
   local argv = {}
   if a then
      local i = 0
      while a[i - 1] do i = i - 1 end
      for k = i, #a do argv[#argv + 1] = tostring(a[k]) end
   end
   return path, text, argv
end

--- log.open(path = 'runs.db' [, {write = true}]): the raw run store (core
--- RunLog) for queries. It must exist; it is opened read-only (statements
--- that would write are refused) unless write = true.
function log.open(path, opt)
   return core.runlog_open(path or 'runs.db', {readonly = not (opt and opt.write)})
end

--- log.start{db=, name=, experiment=, config=, seed=, parent_run_id=,
---           script_path=, script_text=, dir=}
--- Opens (or creates) the database and begins a run. Files of the run go to
--- dir (default runs/<uuid>/ beside the database).
function log.start(opt)
   opt = opt or {}
   local db = opt.db or os.getenv('DDPMLUA_DB') or 'runs.db'
   local path, text, argv = script_info()
   path = opt.script_path or path
   text = opt.script_text or text or ''
   local config = opt.config or {}
   local nranks = core.dist_size()
   if nranks > 1 then
      -- every rank must run the same script with the same configuration
      local same, who = core.dist_same(table.concat({text, json.encode(config), json.encode(argv),
                                                     db, tostring(opt.seed or config.seed or 0)}, '\0'))
      if not same then
         error(('log.start: rank %d runs another script, configuration or arguments than rank 0 ' ..
                '(every rank of mpirun must run the same command)'):format(who), 2)
      end
      if core.dist_rank() ~= 0 then return log.follower(db, config, opt) end
   end
   local rl = core.runlog_open(db)
   local commit, dirty = git_info(path)
   local id = rl:begin_run{
      name = opt.name, experiment = opt.experiment, script_path = path, script_text = text,
      config_json = json.encode(config), seed = opt.seed or config.seed or 0,
      argv_json = json.encode(argv), git_commit = commit, git_dirty = commit and dirty or nil,
      -- `ddpmlua rerun` names the parent by uuid: a run in another database is never linked
      parent_run_id = opt.parent_run_id or (rl:query('SELECT run_id FROM runs WHERE uuid = ?1',
         {os.getenv('DDPMLUA_PARENT_RUN') or ''})[1] or {}).run_id,
      version = 'ddpmlua ' .. (require('ddpm')._VERSION),
      -- a re-run is bit-exact only with the same binary (and thread count)
      env_json = json.encode{threads = core.get_num_threads(), luajit = jit and jit.version,
                             binary_sha256 = binary_sha256(), ranks = nranks > 1 and nranks or nil},
      world_size = nranks,
   }
   local rows = rl:query('SELECT uuid FROM runs WHERE run_id = :id', {id = id})
   local self = setmetatable({db = rl, db_path = db, id = id, uuid = rows[1].uuid, config = config,
                              status = 'running', seed = opt.seed or config.seed or 0}, Run)
   local base = db:match('^(.*)/[^/]*$') or '.'
   self.dir = opt.dir or (base .. '/runs/' .. self.uuid)
   pending[self.dir] = true   -- made on the first write (log.prepare)
   if nranks > 1 then   -- the other ranks learn the run's id, uuid and folder
      core.dist_broadcast_string(json.encode{id = self.id, uuid = self.uuid, dir = self.dir}, 0)
   end
   -- If the script dies without finishing the run, record why.
   local guard = newproxy(true)
   getmetatable(guard).__gc = function()
      if self.status == 'running' then
         local err = rawget(_G, '_DDPMLUA_LAST_ERROR')
         pcall(self.finish, self, 'failed', err or 'the script ended without finishing the run')
      end
   end
   self._guard = guard
   return self
end

function Run:metric(step, name, value)
   self.db:metric(self.id, name, step, value)
end

--- run:metrics(step, {name = value, ...})
function Run:metrics(step, tbl)
   for k, v in pairs(tbl) do self.db:metric(self.id, k, step, v) end
end

function Run:artifact(step, kind, path, meta)
   self.db:artifact(self.id, step, kind, path, meta and json.encode(meta) or nil)
end

function Run:checkpoint(step, path) self.db:checkpoint(self.id, step, path) end
function Run:tag(k, v) self.db:tag(self.id, k, v) end
function Run:flush() self.db:flush() end

--- run:finish([status = 'finished' | 'failed' | 'interrupted', error_text])
function Run:finish(status, err)
   if self.status ~= 'running' then return end
   status = status or 'finished'
   self.db:end_run(self.id, status, err)
   self.db:flush()
   self.status = status
   if status == 'failed' then log.failed_runs[#log.failed_runs + 1] = self.id end
end

function Run:__tostring()
   return ('[ddpm.Run %d %s (%s) in %s]'):format(self.id, self.uuid, self.status, self.db_path)
end

--- The Run of a rank other than 0 in an MPI job: rank 0 alone writes the
--- history and the run's files; here every call that would write does
--- nothing, and id, uuid and dir are rank 0's.
local Follower = {}
Follower.__index = function(_, k)
   if Run[k] and k ~= '__tostring' then return function() end end
end

function log.follower(db, config, opt)
   local info = json.decode(core.dist_broadcast_string('', 0))
   return setmetatable({db_path = db, id = info.id, uuid = info.uuid, dir = opt.dir or info.dir,
                        config = config, status = 'running', seed = opt.seed or config.seed or 0,
                        follower = true}, Follower)
end

--- log.runs{db=, last=, status=} -> rows of the runs table (newest first).
function log.runs(opt)
   opt = opt or {}
   local rl = core.runlog_open(opt.db or 'runs.db', {readonly = true})
   local where, params = {}, {}
   if opt.status then where[#where + 1] = 'status = :status'; params.status = opt.status end
   local sql = 'SELECT run_id, name, status, start_time, end_time, seed, script_path FROM runs' ..
               (#where > 0 and (' WHERE ' .. table.concat(where, ' AND ')) or '') ..
               ' ORDER BY run_id DESC LIMIT ' .. math.floor(opt.last or 20)
   local rows = rl:query(sql, params)
   rl:close()
   return rows
end

return log
