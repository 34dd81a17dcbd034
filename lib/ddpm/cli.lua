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
DDPMLUA_DEBUG=1, adds one). Nothing is recorded, no run folder exists yet.
--help prints every option with its description and default.

cli.read is the one argument parser: cli.parse reads a script's flags with
it, and the history commands (ddpm.commands) their options and arguments.
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
   precision = {'arithmetic of the 3x3 convolutions\' products, in training and evaluation (bf16 needs AVX512-BF16)',
      choices = {'float32', 'bf16'}},
}

-- The error object of the CLI layer: {message =, exit_status =}. The host
-- (bindings/main.c) and ddpm.commands print its message as one line and exit
-- with its status, without a traceback.
local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.message end
cli.UsageError = UsageError

local function raise(status, fmt, ...)
   local msg = select('#', ...) > 0 and fmt:format(...) or fmt
   -- --debug: the same one error, with where it was raised
   if cli.debug or os.getenv('DDPMLUA_DEBUG') == '1' then msg = debug.traceback(msg, 3) end
   error(setmetatable({message = msg, exit_status = status}, UsageError), 0)
end

--- cli.usage_error(fmt, ...): raises a usage error (an unknown option, a
--- bad value, a missing argument, something named that does not exist),
--- which the host prints as one line and exits with status 2 (with a
--- traceback under --debug or DDPMLUA_DEBUG=1).
function cli.usage_error(fmt, ...) raise(2, fmt, ...) end
local fail = cli.usage_error

--- cli.failure(fmt, ...): the same for a valid command that could not be
--- carried out (a file that cannot be written, a re-run that failed):
--- one line, exit status 1.
function cli.failure(fmt, ...) raise(1, fmt, ...) end

--- cli.is_usage_error(e) -> true for the error object of cli.usage_error
--- and cli.failure (e.exit_status tells which).
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

-- text as a value of the option's type ('number', 'boolean', 'numbers': a
-- comma-separated list, 'string'); flag is the option as typed.
local function convert(flag, s, text)
   if s.type == 'number' then
      local v = tonumber(text)
      if not v or v ~= v then
         fail("option %s expects %s, got '%s'", flag, s.int and (s.min == 0 and 'a non-negative integer'
              or 'an integer') or 'a number', tostring(text))
      end
      return v
   elseif s.type == 'boolean' then
      if text == nil or text == 'true' or text == '1' or text == 'yes' then return true end
      if text == 'false' or text == '0' or text == 'no' then return false end
      fail("option %s expects true or false, got '%s'", flag, text)
   elseif s.type == 'numbers' then
      local out = {}
      if text ~= '' then
         for item in (text .. ','):gmatch('([^,]*),') do
            local v = tonumber(item)
            if not v then fail("option %s expects numbers separated by commas, got '%s'", flag, text) end
            out[#out + 1] = v
         end
      end
      return out
   end
   return text
end

-- The spec's checks (int, min, max, choices) on a converted value.
local function check(flag, v, s)
   if s.type == 'number' then
      if s.int and v % 1 ~= 0 then fail('option %s expects an integer, got %s', flag, show(v)) end
      if s.min and v < s.min then fail('option %s must be at least %s, got %s', flag, show(s.min), show(v)) end
      if s.max and v > s.max then fail('option %s must be at most %s, got %s', flag, show(s.max), show(v)) end
   elseif s.type == 'string' and s.choices then
      local ok = false
      for _, c in ipairs(s.choices) do ok = ok or c == v end
      if not ok then
         local near = cli.suggest(v, s.choices)
         fail("option %s must be one of %s, got '%s'%s", flag, table.concat(s.choices, ', '), v,
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

--- cli.read(args, options [, how]) -> values, positional, given: the one
--- argument parser, of scripts (cli.parse) and of the history commands
--- (ddpm.commands). options maps a name to {type = 'string' | 'number' |
--- 'boolean' | 'numbers', int =, min =, max =, choices =, path =, many =}.
--- It reads --name=value, --name value, a bare --name for a boolean, -x
--- through how.short = {x = 'name'}, and '-' in names as '_'; after `--`
--- every argument is positional. A many option collects its values in a
--- list; a path option is made absolute, also in args. how.positional
--- accepts arguments that are not options (else they are an error);
--- how.hint follows the message of an unknown option; how.help is called for
--- -h and --help. --debug sets cli.debug. Raises a usage error on a mistake.
function cli.read(args, options, how)
   how = how or {}
   for _, a in ipairs(args) do
      if a == '--' then break end
      if a == '--debug' and not options.debug then cli.debug = true end
   end
   local values, pos, given = {}, {}, {}
   local i, only_pos = 1, false
   while i <= #args do
      local a = args[i]
      if only_pos or a == '-' or a:sub(1, 1) ~= '-' then
         if not how.positional then fail("unexpected argument '%s' (options look like --key=value)", a) end
         pos[#pos + 1] = a
      elseif a == '--' then
         only_pos = true
      elseif (a == '-h' or a == '--help') and how.help and not options.help then
         how.help()
      elseif a ~= '--debug' or options.debug then
         local first = i
         local flag, val = a:match('^(%-%-[%w_-]+)=(.*)$')
         flag = flag or a:match('^%-%-[%w_-]+$')
         local name = flag and (flag:sub(3):gsub('-', '_'))
         if not flag then
            flag = a
            local short = a:match('^%-(%a)$')
            name = short and how.short and how.short[short]
         end
         local s = name and options[name]
         if not s then
            local near = name and cli.suggest(name, options)
            fail("unknown option '%s'%s%s", flag, near and ('; did you mean --' .. near .. '?') or '',
                 how.hint and (' (' .. how.hint .. ')') or '')
         end
         if val == nil and s.type ~= 'boolean' then
            i = i + 1
            val = args[i]
            if val == nil then fail('option %s needs a value', flag) end
         end
         local v = convert(flag, s, val)
         check(flag, v, s)
         if s.path and type(v) == 'string' and v ~= '' then
            local abs = absolute(v)
            if abs ~= v then   -- the history records arg: store the absolute path
               if i > first then args[i] = abs else args[first] = flag .. '=' .. abs end
               v = abs
            end
         end
         if s.many then
            values[name] = values[name] or {}
            table.insert(values[name], v)
         else
            values[name] = v
         end
         given[name] = true
      end
      i = i + 1
   end
   return values, pos, given
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
   local options = {}
   for k, v in pairs(defaults) do
      local s, ty = {}, type(v)
      for f, x in pairs(spec_of(k, extra)) do s[f] = x end
      s.type = ty == 'table' and 'numbers' or ty
      options[k] = s
   end
   local values, _, given = cli.read(args or {}, options, {hint = '--help lists them', help = function()
      io.stdout:write(cli.usage(defaults, extra), '\n')
      os.exit(0)
   end})
   for k, v in pairs(values) do cfg[k] = v end
   for k, v in pairs(cfg) do
      local s = spec_of(k, extra)
      if s.path and type(v) == 'string' and v ~= '' then cfg[k] = absolute(v) end
   end
   return cfg, given
end

return cli
