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
]]
local core = require 'ddpm.core'
local json = require 'ddpm.json'

local checkpoint = {}

local function named_views(flat, info, prefix, out)
   for _, p in ipairs(info) do
      out[prefix .. p.name] = flat:narrow(1, p.offset + 1, p.numel):view(p.shape)
   end
end

--- checkpoint.save(path, state): state = {model=, ema=, adam=, step=, seed=,
--- run_id=, config= [, tsampler=]} (ema a ddpm.UNet, adam a core Adam,
--- tsampler a core.tsampler).
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
      ['ddpmlua.unet_config'] = json.encode(st.model:config()),
   }
   core.save_safetensors(path, tensors, meta)
end

--- checkpoint.read_meta(path) -> metadata table (numbers converted).
function checkpoint.load(path, st)
   local tensors, meta = core.load_safetensors(path)
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
   for _, t in pairs(tensors) do t:free() end
   return {step = tonumber(meta.step), seed = tonumber(meta.seed), run_id = tonumber(meta.run_id),
           run_uuid = meta.run_uuid, config = json.decode(meta.config)}
end

return checkpoint
