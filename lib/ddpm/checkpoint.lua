--[[
ddpm.checkpoint — training state in one safetensors file, written atomically
(temp file, fsync, rename): the model under its diffusers names, the EMA under
"ema.<name>", Adam's moments as "adam.m" / "adam.v", and in the metadata the
step, Adam's step count, the seed, the run and the configs; with importance
sampling of t, the sampler's loss history as "tsampler.state". Everything else a
step needs (data order, timesteps, noise, dropout masks) is derived from
(seed, step), so loading this file resumes a run bit for bit.

A checkpoint is also a model file: m:load(path, {strict = false}) loads the raw
weights, m:load(path, {prefix = 'ema.', strict = false}) the EMA.

Checkpoints and model files (m:save) describe themselves in their metadata
(docs/model-files.md):
   ddpmlua.unet_config       the U-Net's config (ddpm.unet{...} rebuilds it)
   ddpmlua.diffusion_config  schedule, T, beta_start, beta_end, mean_type,
                             var_type, loss_type, clip (when known)
   ddpmlua.data_shape        [C, H, W] of the training images (when known)
   diffusers.unet_config     the same U-Net as diffusers' UNet2DModel config
   diffusers.scheduler_config  the process as diffusers' DDPMScheduler config
so ddpm.load_unet, --eval_from, --resume and evaluate.lua rebuild the model
and the process from the file alone (checkpoint.configure).
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'

local checkpoint = {}

---------------------------------------------------------------- self-description

--- checkpoint.diffusion_config(diff) -> the table that rebuilds diff with
--- ddpm.diffusion{...} (a respaced process gives its original's). A custom
--- schedule (a table or function of betas) is recorded as its T betas, in
--- float64, so the file rebuilds the same process.
function checkpoint.diffusion_config(diff)
   while diff.parent do diff = diff.parent end
   local schedule = diff.schedule_name
   if schedule == 'custom' then
      schedule = {}
      for t = 0, diff.sched:T() - 1 do schedule[t + 1] = diff.sched:get('betas', t) end
   end
   return {schedule = schedule, T = diff.base_T or diff.T, beta_start = diff.beta_start,
           beta_end = diff.beta_end, mean_type = diff.mean_type, var_type = diff.var_type,
           loss_type = diff.loss_type, clip = diff.clip}
end

local DIFFUSERS_VAR = {fixedlarge = 'fixed_large', fixedsmall = 'fixed_small', learned = 'learned',
                       learned_range = 'learned_range'}
local DIFFUSERS_PRED = {eps = 'epsilon', xstart = 'sample', v = 'v_prediction'}

-- The U-Net config as diffusers' UNet2DModel would write it (config.json).
local function diffusers_unet(c)
   local down, up, blocks = {}, {}, {}
   local n = #c.ch_mult
   for i = 1, n do
      local res = c.resolution / 2 ^ (i - 1)
      local attn = false
      for _, r in ipairs(c.attn_resolutions) do attn = attn or r == res end
      down[i] = attn and 'AttnDownBlock2D' or 'DownBlock2D'
      up[n + 1 - i] = attn and 'AttnUpBlock2D' or 'UpBlock2D'
      blocks[i] = c.ch * c.ch_mult[i]
   end
   return {_class_name = 'UNet2DModel', sample_size = c.resolution, in_channels = c.in_ch,
           out_channels = c.out_ch, block_out_channels = blocks, layers_per_block = c.num_res_blocks,
           down_block_types = down, up_block_types = up, act_fn = 'silu', norm_num_groups = c.groups,
           norm_eps = c.eps, dropout = c.dropout, time_embedding_type = 'positional',
           flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0, center_input_sample = false,
           mid_block_scale_factor = 1}
end

local function diffusers_scheduler(d)
   if type(d.schedule) == 'table' then
      return {_class_name = 'DDPMScheduler', num_train_timesteps = d.T, trained_betas = d.schedule,
              variance_type = DIFFUSERS_VAR[d.var_type] or d.var_type,
              prediction_type = DIFFUSERS_PRED[d.mean_type] or d.mean_type, clip_sample = d.clip ~= false}
   end
   local sched = ({linear = 'linear', scaled_linear = 'scaled_linear', quad = 'scaled_linear',
                   squaredcos_cap_v2 = 'squaredcos_cap_v2', cosine = 'squaredcos_cap_v2'})[d.schedule]
   return {_class_name = 'DDPMScheduler', num_train_timesteps = d.T, beta_start = d.beta_start,
           beta_end = d.beta_end, beta_schedule = sched or d.schedule,
           variance_type = DIFFUSERS_VAR[d.var_type] or d.var_type,
           prediction_type = DIFFUSERS_PRED[d.mean_type] or d.mean_type, clip_sample = d.clip ~= false}
end

--- checkpoint.describe(model [, diff, data_shape]) -> the metadata strings
--- that make a file self-describing (see above).
function checkpoint.describe(model, diff, data_shape)
   local c = model:config()
   local meta = {['ddpmlua.unet_config'] = json.encode(c),
                 ['diffusers.unet_config'] = json.encode(diffusers_unet(c))}
   if diff then
      local d = checkpoint.diffusion_config(diff)
      meta['ddpmlua.diffusion_config'] = json.encode(d)
      meta['diffusers.scheduler_config'] = json.encode(diffusers_scheduler(d))
   end
   if data_shape then meta['ddpmlua.data_shape'] = json.encode(data_shape) end
   return meta
end

-- A JSON file beside a model file, or nil when there is none.
local function json_file(path)
   local f = io.open(path, 'rb')
   if not f then return nil end
   local s = f:read(1048576)
   f:close()
   local ok, v = pcall(json.decode, s or '')
   if not ok or type(v) ~= 'table' then
      error(('%s: not a JSON object: %s'):format(path, tostring(v)), 0)
   end
   return v, path
end

local FROM_DIFFUSERS_VAR, FROM_DIFFUSERS_PRED = {}, {}
for k, v in pairs(DIFFUSERS_VAR) do FROM_DIFFUSERS_VAR[v] = k end
for k, v in pairs(DIFFUSERS_PRED) do FROM_DIFFUSERS_PRED[v] = k end

-- The U-Net config of a diffusers UNet2DModel config.json (the inverse of
-- diffusers_unet); nil with a reason when the model is not one ddpm.unet
-- builds.
local function unet_from_diffusers(c, path)
   local function bad(why) error(('%s: %s'):format(path, why), 0) end
   if c._class_name ~= 'UNet2DModel' then bad('not a UNet2DModel config (_class_name ' .. tostring(c._class_name) .. ')') end
   local blocks, down = c.block_out_channels, c.down_block_types
   if type(blocks) ~= 'table' or #blocks == 0 or type(down) ~= 'table' or #down ~= #blocks then
      bad('block_out_channels and down_block_types must be lists of one length')
   end
   local ch, res = blocks[1], c.sample_size
   if type(res) == 'table' then res = res[1] end
   local mult, attn = {}, {}
   for i, b in ipairs(blocks) do
      if b % ch ~= 0 then bad(('block_out_channels %s are not multiples of %d'):format(table.concat(blocks, ','), ch)) end
      mult[i] = b / ch
      if tostring(down[i]):find('Attn', 1, true) then attn[#attn + 1] = res / 2 ^ (i - 1) end
   end
   -- the DDPM network's choices, where diffusers' defaults differ from them
   for k, want in pairs{act_fn = 'silu', time_embedding_type = 'positional', flip_sin_to_cos = false,
                        freq_shift = 1, downsample_padding = 0, center_input_sample = false,
                        mid_block_scale_factor = 1} do
      local v = c[k]
      if v == nil and (k == 'flip_sin_to_cos' or k == 'freq_shift' or k == 'downsample_padding') then
         bad(('%s is not set (diffusers\' default differs from the DDPM U-Net, which has %s = %s)'):format(
            k, k, tostring(want)))
      end
      if v ~= nil and v ~= want then
         bad(('%s = %s, but the DDPM U-Net has %s = %s'):format(k, tostring(v), k, tostring(want)))
      end
   end
   if c.attention_head_dim ~= nil then   -- channels per head; null means one head
      for i, b in ipairs(blocks) do
         if (tostring(down[i]):find('Attn', 1, true) or i == #blocks) and c.attention_head_dim ~= b then
            bad(('attention_head_dim = %s: the DDPM U-Net has one attention head (null)'):format(
               tostring(c.attention_head_dim)))
         end
      end
   end
   return {ch = ch, ch_mult = mult, num_res_blocks = c.layers_per_block or 2, attn_resolutions = attn,
           dropout = c.dropout or 0, in_ch = c.in_channels or 3, out_ch = c.out_channels or 3,
           resolution = res, groups = c.norm_num_groups or 32, eps = c.norm_eps or 1e-5}
end

local function diffusion_from_diffusers(d)
   local sched = d.trained_betas
   if type(sched) ~= 'table' then
      sched = ({linear = 'linear', squaredcos_cap_v2 = 'cosine'})[d.beta_schedule] or d.beta_schedule
   end
   return {schedule = sched, T = d.num_train_timesteps, beta_start = d.beta_start, beta_end = d.beta_end,
           mean_type = FROM_DIFFUSERS_PRED[d.prediction_type] or d.prediction_type,
           var_type = FROM_DIFFUSERS_VAR[d.variance_type] or d.variance_type, clip = d.clip_sample}
end

-- A diffusers model folder: config.json beside the weights, and the
-- scheduler's scheduler_config.json beside them or in ../scheduler/.
local function diffusers_folder(path)
   local dir = path:match('^(.*)/[^/]*$') or '.'
   local c, cpath = json_file(dir .. '/config.json')
   if not c then return nil end
   local unet = unet_from_diffusers(c, cpath)
   local d = json_file(dir .. '/scheduler_config.json') or json_file(dir .. '/../scheduler/scheduler_config.json')
   return unet, d and diffusion_from_diffusers(d), cpath
end

--- checkpoint.read_config(path) -> {unet =, diffusion =, data_shape =,
--- checkpoint = true when it is a training checkpoint, source = where the
--- configs came from}; a field is nil when nothing records it. A file
--- without ddpmlua metadata (diffusers' diffusion_pytorch_model.safetensors)
--- takes its configs from diffusers' config.json beside it and
--- scheduler_config.json beside it or in ../scheduler/.
function checkpoint.read_config(path)
   local tensors, meta = core.load_safetensors(path)
   local has_ema = tensors['ema.conv_in.weight'] ~= nil
   for _, t in pairs(tensors) do t:free() end
   local function field(k)
      local s = meta[k]
      if not s or s == '' then return nil end
      local ok, v = pcall(json.decode, s)
      if not ok then error(('%s: metadata %s is not JSON: %s'):format(path, k, tostring(v)), 3) end
      return v
   end
   local info = {unet = field('ddpmlua.unet_config'), diffusion = field('ddpmlua.diffusion_config'),
                 data_shape = field('ddpmlua.data_shape'), checkpoint = meta.format == 'ddpmlua.checkpoint/1',
                 ema = has_ema, meta = meta, source = path}
   if not info.unet then
      local unet, diff, cpath = diffusers_folder(path)
      if unet then
         info.unet, info.source = unet, cpath
         info.diffusion = info.diffusion or diff
         info.data_shape = info.data_shape or {unet.in_ch, unet.resolution, unet.resolution}
      end
   end
   return info
end

local MODEL_KEYS = {'ch', 'ch_mult', 'num_res_blocks', 'attn_resolutions', 'dropout'}
local DIFF_KEYS = {'schedule', 'T', 'beta_start', 'beta_end', 'mean_type', 'var_type', 'loss_type'}

local function same(a, b)
   if type(a) == 'number' and type(b) == 'number' then
      return math.abs(a - b) <= 1e-6 * math.max(math.abs(a), math.abs(b))
   end
   if type(a) == 'table' and type(b) == 'table' then
      if #a ~= #b then return false end
      for i = 1, #a do if not same(a[i], b[i]) then return false end end
      return true
   end
   return a == b
end

local function show(v)
   if type(v) == 'table' then
      if #v > 8 then return ('{%s, ... %d values}'):format(table.concat(v, ', ', 1, 3), #v) end
      return table.concat(v, ',')
   end
   return tostring(v)
end

--- checkpoint.configure(cfg, path [, given, override]) -> the file's config
--- (read_config). A script's cfg takes the model and diffusion settings the
--- file records (ch, ch_mult, num_res_blocks, attn_resolutions, dropout,
--- schedule, T, beta_start, beta_end, mean_type, var_type, loss_type: those
--- cfg has). given = the set of keys typed on the command line
--- (ddpm.cli.parse's second result): one that contradicts the file is a
--- usage error, unless override (a set, or a comma-separated string) names
--- it, and then the typed value wins (only diffusion settings: the weights
--- fix the model). Returns the file's config and the list of overridden keys.
function checkpoint.configure(cfg, path, given, override)
   local cli = require 'ddpm.cli'
   local ok, fc = pcall(checkpoint.read_config, path)
   if not ok then cli.usage_error('%s', tostring(fc)) end
   given = given or {}
   if type(override) == 'string' then
      local set = {}
      for k in override:gmatch('[^,%s]+') do set[k] = true end
      override = set
   end
   override = override or {}
   local used = {}
   local function take(src, keys, may_override)
      if not src then return end
      for _, k in ipairs(keys) do
         if cfg[k] ~= nil and src[k] ~= nil then
            if given[k] and not same(cfg[k], src[k]) then
               if override[k] and may_override then
                  used[#used + 1] = k
               else
                  cli.usage_error('--%s=%s contradicts %s, which was made with %s = %s; leave the flag out%s',
                     k, show(cfg[k]), path, k, show(src[k]),
                     may_override and (' or pass --override=' .. k .. ' to evaluate with it anyway') or
                     ' (the weights fix the model)')
               end
            else
               cfg[k] = src[k]
            end
         end
      end
   end
   take(fc.unet, MODEL_KEYS, false)
   take(fc.diffusion, DIFF_KEYS, true)
   for k in pairs(override) do
      local known = false
      for _, d in ipairs(DIFF_KEYS) do known = known or d == k end
      if not known then
         cli.usage_error('--override=%s: only diffusion settings (%s) can be overridden', k,
                         table.concat(DIFF_KEYS, ', '))
      end
   end
   return fc, used
end

local function named_views(flat, info, prefix, out)
   for _, p in ipairs(info) do
      out[prefix .. p.name] = flat:narrow(1, p.offset + 1, p.numel):view(p.shape)
   end
end

--- checkpoint.save(path, state): state = {model=, ema=, adam=, step=, seed=,
--- run_id=, config= [, tsampler=, diffusion=, data_shape=]} (ema a ddpm.UNet,
--- adam a core Adam, tsampler a core.tsampler, diffusion a ddpm.Diffusion,
--- data_shape {C, H, W}).
function checkpoint.save(path, st)
   local info = st.model._c:param_info()
   local tensors = {}
   named_views(st.model:flat_params(), info, '', tensors)
   if st.ema then named_views(st.ema:flat_params(), info, 'ema.', tensors) end
   if st.adam then
      tensors['adam.m'] = st.adam:m()
      tensors['adam.v'] = st.adam:v()
   end
   if st.tsampler then tensors['tsampler.state'] = st.tsampler:state() end
   local meta = {
      format = 'ddpmlua.checkpoint/1',
      step = ('%d'):format(st.step),
      adam_t = st.adam and ('%d'):format(st.adam:t()) or '0',
      seed = ('%d'):format(st.seed or 0),
      run_id = st.run_id and ('%d'):format(st.run_id) or '',
      run_uuid = st.run_uuid or '',
      config = json.encode(st.config or {}),
   }
   for k, v in pairs(checkpoint.describe(st.model, st.diffusion, st.data_shape)) do meta[k] = v end
   require('ddpm.log').prepare(path)
   core.save_safetensors(path, tensors, meta)
end

--- checkpoint.read_meta(path) -> metadata table (numbers converted).
function checkpoint.load(path, st)
   local tensors, meta = core.load_safetensors(path)
   if st.adam and core.dist_rank() == 0 then
      -- resuming a run that was killed: its folder may hold the temp file of
      -- a checkpoint or PNG write cut short (never a partial file under a
      -- final name); remove those whose writer is gone
      local dir = path:match('^(.*)/[^/]*$') or '.'
      local ok, n = pcall(core.remove_stale_temps, dir)
      if ok and n > 0 then
         io.stderr:write(('removed %d temporary file%s left in %s by a killed writer\n'):format(
            n, n == 1 and '' or 's', dir))
      end
   end
   if meta.format ~= 'ddpmlua.checkpoint/1' then
      error(('checkpoint: %s is not a ddpmlua checkpoint (format %s)'):format(path, tostring(meta.format)), 2)
   end
   local have = json.decode(meta['ddpmlua.unet_config'])
   local want = st.model:config()
   if json.encode(have) ~= json.encode(want) then
      error(('checkpoint: %s holds a model with config %s, but this model has %s'):format(
         path, json.encode(have), json.encode(want)), 2)
   end
   st.model:load(path, {strict = false})
   if st.ema then st.ema:load(path, {prefix = 'ema.', strict = false}) end
   if st.adam then
      if not tensors['adam.m'] or not tensors['adam.v'] then
         error(('checkpoint: %s has no optimiser state (adam.m / adam.v)'):format(path), 2)
      end
      st.adam:m():copy(tensors['adam.m'])
      st.adam:v():copy(tensors['adam.v'])
      st.adam:set_t(tonumber(meta.adam_t))
   end
   if st.tsampler then
      local ts = tensors['tsampler.state']
      if not ts then
         error(('checkpoint: %s has no timestep-sampler state (tsampler.state); it was trained ' ..
                'with uniform t'):format(path), 2)
      end
      local ok, err = pcall(st.tsampler.set_state, st.tsampler, ts)
      if not ok then error(('checkpoint: %s: %s'):format(path, tostring(err)), 2) end
   end
   local hd = meta['ddpmlua.diffusion_config'] and json.decode(meta['ddpmlua.diffusion_config'])
   if hd and st.diffusion then
      local want_d = checkpoint.diffusion_config(st.diffusion)
      for _, k in ipairs(DIFF_KEYS) do
         if not same(hd[k], want_d[k]) then
            error(('checkpoint: %s was trained with %s = %s, this run has %s = %s'):format(
               path, k, show(hd[k]), k, show(want_d[k])), 2)
         end
      end
   end
   for _, t in pairs(tensors) do t:free() end
   return {step = tonumber(meta.step), seed = tonumber(meta.seed), run_id = tonumber(meta.run_id),
           run_uuid = meta.run_uuid, config = json.decode(meta.config)}
end

return checkpoint
