--[[
ddpm.cli — command-line overrides for an experiment's config table, checked
before anything is recorded.

   local cfg = ddpm.cli.parse(arg, {steps = 1000, lr = 2e-4, ch_mult = {1, 2, 2}},
                              {fd_n = {'samples for FD-LeNet', int = true, min = 0}})
   -- ddpmlua exp.lua --steps=50 --lr 1e-3 --ch_mult=1,2 --flip

Each option must name a key of the defaults; its value is converted to the
default's type (numbers, booleans: true/false/1/0 or a bare flag, lists of
numbers: comma-separated, strings) and checked against the option's spec:
the third argument, else the shared table cli.options (steps, batch, lr, T,
mean_type, ...). A spec is a description, or {description, int = true,
min = , max = , choices = {...}, path = true}. Path options are made absolute
(also in arg, which the run history records), so a recorded run re-runs from
any folder. A `db` option takes DDPMLUA_DB as its default when that is set.

A wrong option raises a usage error (cli.usage_error): the host prints its
one line and exits with status 2, without a traceback (--debug, or
DDPMLUA_DEBUG=1, gives one). Nothing is recorded, no run folder exists yet.
--help prints every option with its description and default.
]]
local cli = {}

--- The options experiment scripts share, with their checks.
cli.options = {
   name = 'run name in the history',
   experiment = 'experiment name in the history',
   db = {'the run history (SQLite); DDPMLUA_DB overrides the default', path = true},
   seed = {'seed of every random choice (data order, t, noise, dropout, init)', int = true, min = 0},
   -- model
   ch = {'base channels of the U-Net (a multiple of its 32 GroupNorm groups)', int = true, min = 1},
   ch_mult = 'channel multiplier per resolution level (comma-separated)',
   num_res_blocks = {'ResNet blocks per level', int = true, min = 1},
   attn_resolutions = 'resolutions with self-attention (comma-separated; empty for none)',
   dropout = {'dropout probability in the ResNet blocks', min = 0, max = 1},
   -- diffusion
   schedule = {'beta schedule', choices = {'linear', 'quad', 'scaled_linear', 'const', 'jsd', 'warmup10',
      'warmup50', 'cosine', 'squaredcos_cap_v2'}},
   T = {'diffusion steps', int = true, min = 1},
   beta_start = {'beta_1 of the schedule', min = 0, max = 1},
   beta_end = {'beta_T of the schedule', min = 0, max = 1},
   mean_type = {'what the network predicts', choices = {'eps', 'xstart', 'xprev', 'v'}},
   var_type = {'reverse-process variance: fixedlarge = beta_t, fixedsmall = beta~_t, or learned',
      choices = {'fixedlarge', 'fixedsmall', 'learned', 'learned_range'}},
   loss_type = {'training objective: mse = L_simple, kl = the bound L',
      choices = {'mse', 'rescaled_mse', 'kl', 'rescaled_kl'}},
   -- optimisation
   steps = {'training steps', int = true, min = 1},
   batch = {'images per step', int = true, min = 1},
   lr = {'Adam learning rate', min = 0},
   warmup = {'linear learning-rate warm-up steps', int = true, min = 0},
   grad_clip = {'gradient norm clipping threshold (0: none)', min = 0},
   ema_decay = {'EMA decay of the weights', min = 0, max = 1},
   ema_warmup = 'EMA decay min(ema_decay, (1+s)/(10+s)) early in training',
   flip = 'random horizontal flips',
   pad_to = {'zero-pad images to this size (0: none)', int = true, min = 0},
   time_limit = {'stop training after this many seconds (0: none)', min = 0},
   -- bookkeeping
   sample_every = {'steps between sample grids (0: none)', int = true, min = 0},
   sample_n = {'images per sample grid (0: none)', int = true, min = 0},
   checkpoint_every = {'steps between checkpoints (0: at the end only)', int = true, min = 0},
   resume = {'checkpoint to resume training from', path = true},
   eval_from = {'evaluate this checkpoint or model file instead of training', path = true},
   data_dir = {'CIFAR-10 binary batches (cifar-10-batches-bin/); DDPMLUA_CIFAR10', path = true},
   -- evaluation
   nll_n = {'test images for the NLL bound in bits/dim (0: none)', int = true, min = 0},
   nll_train_n = {'train images for the NLL bound (0: none)', int = true, min = 0},
   nll_batch = {'images per NLL batch', int = true, min = 1},
   nll_steps = {'respace the NLL bound to this many terms (0: all T)', int = true, min = 0},
   fd_n = {'samples for FD-LeNet (0: none)', int = true, min = 0},
   fd_steps = {'sampling steps for FD-LeNet (0: all T)', int = true, min = 0},
   fd_sampler = {'sampler for FD-LeNet', choices = {'ancestral', 'ddim'}},
   eta = {'DDIM eta (0: deterministic)', min = 0},
   eval_samples = {'samples written as PNG files for FID/IS (0: none)', int = true, min = 0},
   eval_batch = {'samples per sampling batch', int = true, min = 1},
   eval_steps = {'sampling steps for eval_samples (0: all T)', int = true, min = 0},
   fid_n = {'samples for FID and IS (0: none)', int = true, min = 0},
   fid_ref = {'reference statistics for FID (.npz)', path = true},
   fid_weights = {'Inception weights for FID (DDPMLUA_INCEPTION)', path = true},
   override = 'diffusion settings (comma-separated) whose flags win over the checkpoint\'s',
   precision = {'arithmetic of sampling and evaluation forwards (bf16 needs AVX512-BF16)',
      choices = {'float32', 'bf16'}},
}

local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.message end
cli.UsageError = UsageError

--- cli.usage_error(fmt, ...): raises a usage error, which the host prints as
--- one line and exits with status 2 (a traceback only with --debug).
function cli.usage_error(fmt, ...)
   local msg = select('#', ...) > 0 and fmt:format(...) or fmt
   if cli.debug or os.getenv('DDPMLUA_DEBUG') == '1' then error(msg, 2) end
   error(setmetatable({message = msg, exit_status = 2}, UsageError), 0)
end
local fail = cli.usage_error

--- cli.is_usage_error(e) -> true for the error object of cli.usage_error.
function cli.is_usage_error(e) return getmetatable(e) == UsageError end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
   local prev = {}
   for j = 0, #b do prev[j] = j end
   for i = 1, #a do
      local cur = {[0] = i}
      for j = 1, #b do
         local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
         cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      end
      prev = cur
   end
   return prev[#b]
end

--- cli.suggest(word, names) -> the nearest of names (a list or a set), or nil
--- when none is close.
function cli.suggest(word, names)
   local best, bd
   local list = {}
   if names[1] ~= nil then
      for i, n in ipairs(names) do list[i] = n end
   else
      for k in pairs(names) do list[#list + 1] = k end
   end
   table.sort(list)
   for _, n in ipairs(list) do
      local d = distance(word, n)
      if (not bd or d < bd) then best, bd = n, d end
   end
   if best and (bd <= math.max(1, math.floor(#word / 3)) or best:find(word, 1, true)) then return best end
   return nil
end

local function spec_of(key, extra)
   local s = (extra and extra[key]) or cli.options[key]
   if type(s) == 'string' then s = {s} end
   return s or {}
end

local function show(v)
   if type(v) == 'table' then return table.concat(v, ',') end
   if v == '' then return "''" end
   return tostring(v)
end

local function convert(key, default, text)
   local ty = type(default)
   if ty == 'number' then
      local v = tonumber(text)
      if not v or v ~= v then fail("option --%s expects a number, got '%s'", key, tostring(text)) end
      return v
   elseif ty == 'boolean' then
      if text == nil or text == 'true' or text == '1' or text == 'yes' then return true end
      if text == 'false' or text == '0' or text == 'no' then return false end
      fail("option --%s expects true or false, got '%s'", key, text)
   elseif ty == 'table' then
      local out = {}
      if text ~= '' then
         for item in (text .. ','):gmatch('([^,]*),') do
            local v = tonumber(item)
            if not v then fail("option --%s expects numbers separated by commas, got '%s'", key, text) end
            out[#out + 1] = v
         end
      end
      return out
   end
   return text
end

-- The spec's checks, for a value of the default's type.
local function check(key, v, default, s)
   if type(v) == 'number' and type(default) == 'number' then
      if s.int and v % 1 ~= 0 then fail('option --%s expects an integer, got %s', key, show(v)) end
      if s.min and v < s.min then fail('option --%s must be at least %s, got %s', key, show(s.min), show(v)) end
      if s.max and v > s.max then fail('option --%s must be at most %s, got %s', key, show(s.max), show(v)) end
   elseif type(v) == 'string' and type(default) == 'string' and s.choices then
      local ok = false
      for _, c in ipairs(s.choices) do ok = ok or c == v end
      if not ok then
         local near = cli.suggest(v, s.choices)
         fail("option --%s must be one of %s, got '%s'%s", key, table.concat(s.choices, ', '), v,
              near and ("; did you mean '" .. near .. "'?") or '')
      end
   end
end

local function absolute(p)
   if p == '' or p:sub(1, 1) == '/' then return p end
   local dir = require('ddpm.core').cwd()
   p = p:gsub('^%./', '')
   return (dir == '/' and '' or dir) .. '/' .. p
end

--- cli.usage(defaults [, spec]) -> the text of --help: every option with its
--- description and default.
function cli.usage(defaults, extra)
   local keys = {}
   for k in pairs(defaults) do keys[#keys + 1] = k end
   table.sort(keys)
   local lines = {'options (--key=value or --key value; a bare --flag is true):'}
   for _, k in ipairs(keys) do
      local s, v = spec_of(k, extra), defaults[k]
      local what = s[1] or ''
      if s.choices then what = what .. (what ~= '' and ' ' or '') .. '(' .. table.concat(s.choices, '|') .. ')' end
      lines[#lines + 1] = ('  --%-18s %s [default %s]'):format(k, what, show(v))
   end
   lines[#lines + 1] = ('  --%-18s %s [default false]'):format('debug', 'errors with a traceback')
   return table.concat(lines, '\n')
end

--- cli.parse(args, defaults [, spec]) -> cfg, given: a new table (defaults
--- overridden by args, every value checked) and the set of keys args gave.
--- Raises a usage error (see above) on a bad one.
function cli.parse(args, defaults, extra)
   local cfg = {}
   for k, v in pairs(defaults) do
      if type(v) == 'table' then
         local c = {}
         for i, x in ipairs(v) do c[i] = x end
         cfg[k] = c
      else cfg[k] = v end
   end
   if type(cfg.db) == 'string' and os.getenv('DDPMLUA_DB') and os.getenv('DDPMLUA_DB') ~= '' then
      cfg.db = os.getenv('DDPMLUA_DB')
   end
   args = args or {}
   for _, a in ipairs(args) do
      if a == '--debug' then cli.debug = true end
   end
   local given = {}
   local i = 1
   while i <= #args do
      local a = args[i]
      if a == '--help' or a == '-h' then
         io.stdout:write(cli.usage(defaults, extra), '\n')
         os.exit(0)
      end
      local first = i
      if a ~= '--debug' then
         local key, val = a:match('^%-%-([%w_]+)=(.*)$')
         if not key then
            key = a:match('^%-%-([%w_]+)$')
            if not key then fail("unexpected argument '%s' (options look like --key=value)", a) end
         end
         if defaults[key] == nil then
            local near = cli.suggest(key, defaults)
            fail('unknown option --%s%s (--help lists them)', key, near and ('; did you mean --' .. near .. '?') or '')
         end
         if val == nil and type(defaults[key]) ~= 'boolean' then
            i = i + 1
            val = args[i]
            if val == nil then fail('option --%s needs a value', key) end
         end
         local s = spec_of(key, extra)
         local v = convert(key, defaults[key], val)
         check(key, v, defaults[key], s)
         if s.path and type(v) == 'string' and v ~= '' then
            local abs = absolute(v)
            if abs ~= v then   -- the history records arg: store the absolute path
               if i > first then args[i] = abs else args[first] = '--' .. key .. '=' .. abs end
               v = abs
            end
         end
         cfg[key] = v
         given[key] = true
      end
      i = i + 1
   end
   for k, v in pairs(cfg) do
      local s = spec_of(k, extra)
      if s.path and type(v) == 'string' and v ~= '' then cfg[k] = absolute(v) end
   end
   return cfg, given
end

return cli
