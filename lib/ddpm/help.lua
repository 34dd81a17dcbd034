--[[
ddpm.help — the documentation the REPL prints for `?name` and help(name).

   local help = require 'ddpm.help'
   print(help.text('ddpm.randn'))    -- by name ("randn" and "x:numel" work too)
   print(help.text(ddpm.randn))      -- by value
   print(help.text())                -- the list of topics
   help('UNet:forward')              -- the module is callable: prints

Each entry is a signature, a few lines written from the code (not from
memory: lib/ddpm/*.lua, bindings/l_*.c), and an example. A name is either a
path from the ddpm module (`ddpm.zeros`, `ddpm.data.cifar10`), a path from
ddpm.core (`core.q_sample`), or `Class:method` for the objects the API hands
out (Tensor, UNet, Diffusion, Dataset, Schedule, Adam, Run). Looking up a
value finds the entry whose name resolves to that very value, so help works
on whatever the user holds (`help(m.forward)`, `?x:numel`).

What it is not: a reference of every core binding (the README and the
comments at the top of each bindings/l_*.c file have those).
]]

local help = {}

-- {section, name, signature, text, example}
local E = {}
local function entry(section, name, sig, text, example)
   E[#E + 1] = {section = section, name = name, sig = sig, text = text, example = example}
end

---------------------------------------------------------------- tensors

local S = 'Tensors'
entry(S, 'ddpm.zeros', 'ddpm.zeros(n1, n2, ...) or ddpm.zeros({n1, n2, ...}) -> Tensor',
   'A new float32 tensor of the given sizes, filled with 0. No sizes gives a\n' ..
   '0-dimensional (scalar) tensor.',
   'z = ddpm.zeros(2, 3)          --> [ddpm.Tensor f32 2x3]')
entry(S, 'ddpm.ones', 'ddpm.ones(n1, n2, ...) or ddpm.ones({n1, n2, ...}) -> Tensor',
   'A new float32 tensor filled with 1.',
   'o = ddpm.ones(4)')
entry(S, 'ddpm.full', 'ddpm.full({n1, n2, ...}, value) -> Tensor',
   'A new tensor filled with value; the sizes must be a table.',
   'h = ddpm.full({2, 2}, 0.5)')
entry(S, 'ddpm.tensor', 'ddpm.tensor(nested table of numbers) -> Tensor',
   'A tensor from nested tables; the shape is read from the nesting and every\n' ..
   'row must have the same length (a ragged table is an error naming where).',
   't = ddpm.tensor{{1, 2}, {3, 4}}   t[2][1] --> 3')
entry(S, 'ddpm.randn', 'ddpm.randn({n1, n2, ...} [, seed or {seed = s}]) or ddpm.randn(n1, n2, ... [, {seed = s}]) -> Tensor',
   'Standard normal samples (Philox counter-based generator). With a seed the\n' ..
   'result depends only on (seed, sizes); without one it comes from the\n' ..
   'default generator, which ddpm.manual_seed resets. A bare number after the\n' ..
   'sizes is one more size: give the seed as {seed = s} or the sizes as a table.',
   'x = ddpm.randn({8, 3, 32, 32}, 1)    -- seed 1: the same tensor every time')
entry(S, 'ddpm.rand', 'ddpm.rand({n1, n2, ...} [, seed]) or ddpm.rand(n1, n2, ... [, {seed = s}]) -> Tensor',
   'Uniform samples in [0, 1); seeds as for ddpm.randn.',
   'u = ddpm.rand(1000, {seed = 7})')
entry(S, 'ddpm.manual_seed', 'ddpm.manual_seed(s)',
   'Reseeds the default generator used by ddpm.randn and ddpm.rand when they\n' ..
   'are given no seed (s a non-negative integer).',
   'ddpm.manual_seed(0); a = ddpm.randn(3); ddpm.manual_seed(0); b = ddpm.randn(3)  -- a:equal(b)')
entry(S, 'ddpm.is_tensor', 'ddpm.is_tensor(v) -> boolean',
   'True when v is a ddpm.Tensor (freed or not).',
   'ddpm.is_tensor(ddpm.zeros(1))   --> true')
entry(S, 'Tensor', 'ddpm.Tensor: float32 tensors (1-based indices, as in torch7)',
   'Views (size, stride, offset) over refcounted storage: view, narrow, select\n' ..
   'and transpose share data; clone and contiguous copy. t[i] reads a number\n' ..
   '(1-D) or row i as a view; t[i] = v fills or copies row i. Arithmetic makes\n' ..
   'new tensors: t + u, t - u, t * u, t / u (elementwise, same shape) or with\n' ..
   'a number on either side, and -t. #t is the first size. Methods: size dim\n' ..
   'numel get set view narrow select transpose clone contiguous is_contiguous\n' ..
   'fill copy add_ mul_ equal max_abs_diff abs clamp sum mean min max totable\n' ..
   'shape_str free is_freed (?Tensor:name for each).',
   '((t + 1) * t / 2 - t):sum()')
entry(S, 'Tensor:size', 't:size() -> {n1, n2, ...}; t:size(d) -> number',
   'The sizes, or the size of dimension d (1-based).',
   'ddpm.zeros(2, 3):size(2)   --> 3')
entry(S, 'Tensor:dim', 't:dim() -> number of dimensions', 'The number of dimensions (0 for a scalar).',
   'ddpm.zeros(2, 3):dim()   --> 2')
entry(S, 'Tensor:numel', 't:numel() -> number of elements',
   'The number of elements, the product of the sizes (t:nelement() is the same).',
   'ddpm.zeros(2, 3):numel()   --> 6')
entry(S, 'Tensor:get', 't:get(i1, i2, ...) -> number',
   'One element; exactly t:dim() indices, each 1-based and in range.',
   't = ddpm.tensor{{1, 2}, {3, 4}}; t:get(2, 1)   --> 3')
entry(S, 'Tensor:set', 't:set(i1, i2, ..., value)',
   'Writes one element (indices as t:get, then the value).',
   't:set(1, 2, 5)')
entry(S, 'Tensor:view', 't:view(n1, n2, ...) or t:view({n1, ...}) -> Tensor view',
   'The same data with a new shape and the same number of elements; the\n' ..
   'tensor must be viewable without a copy (t:contiguous() first if not).',
   'ddpm.zeros(2, 3, 4):view(6, 4):size()   --> {6, 4}')
entry(S, 'Tensor:narrow', 't:narrow(d, start, len) -> Tensor view',
   'Elements start .. start+len-1 (1-based) of dimension d; shares data.',
   'x:narrow(1, 1, 4)     -- the first 4 images of a batch')
entry(S, 'Tensor:select', 't:select(d, i) -> Tensor view',
   'Index i of dimension d, which is removed; shares data.',
   'x:select(1, 1)        -- image 1 of [N,C,H,W] as [C,H,W]')
entry(S, 'Tensor:transpose', 't:transpose(d1, d2) -> Tensor view',
   'Dimensions d1 and d2 swapped (strides only; no copy).',
   'ddpm.zeros(2, 3):transpose(1, 2):size()   --> {3, 2}')
entry(S, 'Tensor:clone', 't:clone() -> Tensor', 'A contiguous copy with its own storage.',
   'y = x:clone(); y:fill(0)   -- x unchanged')
entry(S, 'Tensor:contiguous', 't:contiguous() -> Tensor',
   't itself when already contiguous, else a contiguous copy.',
   'x:transpose(1, 2):contiguous()')
entry(S, 'Tensor:is_contiguous', 't:is_contiguous() -> boolean', 'True when the elements are dense in row-major order.',
   'x:transpose(1, 2):is_contiguous()   --> false')
entry(S, 'Tensor:fill', 't:fill(v) -> t', 'Sets every element to v, in place.', 'ddpm.zeros(3):fill(2)')
entry(S, 'Tensor:copy', 't:copy(src) -> t', 'Copies src (same shape) into t, in place.',
   'ema:flat_params():copy(m:flat_params())')
entry(S, 'Tensor:add_', 't:add_(u [, alpha]) or t:add_(number) -> t',
   'In place: t = t + alpha * u (u of the same shape, alpha 1 by default) or\n' ..
   't = t + number.',
   'w:add_(g, -0.01)')
entry(S, 'Tensor:mul_', 't:mul_(u) or t:mul_(number) -> t', 'In place elementwise product with u (same shape) or a number.',
   'x:mul_(0.5)')
entry(S, 'Tensor:equal', 't:equal(u) -> boolean',
   'Same shape and bit-identical values (NaNs compare by their bits).',
   'ddpm.randn({3}, 1):equal(ddpm.randn({3}, 1))   --> true')
entry(S, 'Tensor:max_abs_diff', 't:max_abs_diff(u) -> number', 'max |t - u| over all elements (same shape).',
   'a:max_abs_diff(b) < 1e-5')
entry(S, 'Tensor:abs', 't:abs() -> Tensor', 'A new tensor of absolute values.', 'x:abs():max()')
entry(S, 'Tensor:clamp', 't:clamp(lo, hi) -> Tensor', 'A new tensor with every value clamped to [lo, hi].',
   'x:clamp(-1, 1)')
entry(S, 'Tensor:sum', 't:sum() -> number', 'The sum of all elements.', 'ddpm.ones(2, 3):sum()   --> 6')
entry(S, 'Tensor:mean', 't:mean() -> number', 'The mean of all elements (an error on an empty tensor).',
   'ddpm.randn(10000, 1):mean()')
entry(S, 'Tensor:min', 't:min() -> number', 'The smallest element (an error on an empty tensor).', 'x:min()')
entry(S, 'Tensor:max', 't:max() -> number', 'The largest element (an error on an empty tensor).', 'x:max()')
entry(S, 'Tensor:totable', 't:totable() -> nested table of numbers',
   'The values as nested Lua tables (a number for a scalar); at most 50M elements.',
   'ddpm.tensor{{1, 2}, {3, 4}}:totable()   --> {{1, 2}, {3, 4}}')
entry(S, 'Tensor:shape_str', 't:shape_str() -> string', 'The shape as text, as error messages show it.',
   'ddpm.zeros(8, 3):shape_str()   --> "[8,3]"')
entry(S, 'Tensor:free', 't:free()',
   'Releases the data now instead of at garbage collection; later use of t is\n' ..
   'a Lua error ("tensor was freed").',
   'out:free()')
entry(S, 'Tensor:is_freed', 't:is_freed() -> boolean', 'True after t:free().', 't:is_freed()')

---------------------------------------------------------------- files and images

S = 'Files and images'
entry(S, 'ddpm.save_safetensors', 'ddpm.save_safetensors(path, {name = tensor, ...} [, {key = "string", ...}])',
   'Writes the tensors as F32 into a safetensors file, with optional string\n' ..
   'metadata. Names must be strings and values tensors.',
   "ddpm.save_safetensors('a.safetensors', {a = x, b = t}, {note = 'test'})")
entry(S, 'ddpm.load_safetensors', 'ddpm.load_safetensors(path) -> {name = tensor, ...}, {key = value, ...}',
   'Reads every tensor of a safetensors file as float32 (F32, F16, BF16, F64 and\n' ..
   'integer types are converted) and its metadata. A truncated or malformed\n' ..
   'file is an error that says what is wrong.',
   "tensors, meta = ddpm.load_safetensors('a.safetensors')")
entry(S, 'ddpm.save_grid', 'ddpm.save_grid(path, x [, nrow = 8, padding = 2])',
   'Writes x [N,1,H,W] or [N,3,H,W] with values in [-1, 1] as one PNG grid,\n' ..
   'nrow images per row with padding pixels between them.',
   "ddpm.save_grid('samples.png', samples)")
entry(S, 'ddpm.show', 'ddpm.show(x [, {n =, width =, mode = "blocks" | "ascii"}])',
   'Previews an image batch [N,C,H,W] (or one image [C,H,W]) with values in\n' ..
   '[-1, 1] in the terminal: Unicode half blocks in 24-bit colour, two pixel\n' ..
   'rows per text row, images side by side. NO_COLOR (or TERM=dumb) gives a\n' ..
   'grayscale ASCII ramp instead. Large images are averaged down to width\n' ..
   'columns; at most n images (default 16) are drawn. ddpm.show.render(x, opt)\n' ..
   'returns the text instead of printing it.',
   'ddpm.show(samples:narrow(1, 1, 8))     -- also :img samples in the REPL')

---------------------------------------------------------------- the U-Net

S = 'U-Net'
entry(S, 'ddpm.unet', 'ddpm.unet{ch =, ch_mult =, num_res_blocks =, attn_resolutions =, dropout =,\n' ..
                      '          in_ch =, out_ch =, resolution =, groups = 32, eps = 1e-6, seed = 0} -> UNet',
   "The paper's U-Net. Defaults are the CIFAR-10 model (ch 128, ch_mult\n" ..
   '{1,2,2,2}, 2 res blocks, attention at 16, dropout 0.1, 3->3 channels,\n' ..
   '32x32: 35,746,307 parameters). Unknown options and wrong types are errors;\n' ..
   'channels must divide into the GroupNorm groups. seed initialises the weights.',
   'm = ddpm.unet{ch = 32, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {},\n' ..
   '              in_ch = 1, out_ch = 1, resolution = 28}')
entry(S, 'ddpm.load_unet', 'ddpm.load_unet(path) -> UNet',
   'A model built from the config that m:save stored in the file, with its\n' ..
   'weights loaded. Files without that metadata (e.g. diffusers weights) need\n' ..
   'ddpm.unet{...} and m:load(path).',
   "m2 = ddpm.load_unet('unet.safetensors')")
entry(S, 'UNet', 'ddpm.UNet: the U-Net as a Lua object (m = ddpm.unet{...})',
   'Parameters and gradients live in one flat buffer each, with named views\n' ..
   '(diffusers names such as "conv_in.weight"). Methods: forward backward\n' ..
   'zero_grad training evaluate num_params num_tensors param_names param grad\n' ..
   'parameters gradients flat_params flat_grads config save load\n' ..
   'set_dropout_seed set_grad_enabled workspace_bytes free (?UNet:name).\n' ..
   'A forward or backward pass checks the Ctrl-C flag between layers.',
   'print(m)   --> [ddpm.UNet ch=128 ch_mult={1,2,2,2} ...: 35746307 params in 328 tensors]')
entry(S, 'UNet:forward', 'm:forward(x, t) -> Tensor',
   'x [N,in_ch,H,W]; t the N timesteps (code index 0..T-1) as a tensor, a table,\n' ..
   'or one number for the whole batch. Returns a new [N,out_ch,H,W] tensor (also\n' ..
   'kept as m.output) and caches what backward needs.',
   'eps = m:forward(ddpm.randn({4, 3, 32, 32}, 1), {0, 10, 100, 999})')
entry(S, 'UNet:backward', 'm:backward(dy) -> Tensor',
   'dy: the gradient of a loss w.r.t. the last forward output (same shape).\n' ..
   'Accumulates the parameter gradients (m:grad(name), m:flat_grads()) and\n' ..
   'returns the gradient w.r.t. the input x.',
   'm:zero_grad(); out = m:forward(x, t); loss, g = ddpm.core.loss_simple(out, eps); m:backward(g)')
entry(S, 'UNet:zero_grad', 'm:zero_grad()', 'Sets every parameter gradient to 0 (backward accumulates).',
   'm:zero_grad()')
entry(S, 'UNet:training', 'm:training() -> m', 'Dropout on (training mode).', 'm:training()')
entry(S, 'UNet:evaluate', 'm:evaluate() -> m', 'Dropout off (the default).', 'm:evaluate()')
entry(S, 'UNet:num_params', 'm:num_params() -> number', 'The number of scalar parameters.',
   'ddpm.unet{}:num_params()   --> 35746307')
entry(S, 'UNet:num_tensors', 'm:num_tensors() -> number', 'The number of parameter tensors.',
   'ddpm.unet{}:num_tensors()   --> 328')
entry(S, 'UNet:param_names', 'm:param_names() -> {names}', 'Parameter names in storage order (diffusers names).',
   'm:param_names()[1]   --> "time_embedding.linear_1.weight"')
entry(S, 'UNet:param', 'm:param(name or index) -> Tensor view',
   'A view of one parameter; writing to it changes the model.',
   "m:param('conv_in.weight'):size()")
entry(S, 'UNet:grad', 'm:grad(name or index) -> Tensor view', "A view of that parameter's gradient.",
   "m:grad('conv_in.weight'):abs():max()")
entry(S, 'UNet:parameters', 'm:parameters() -> {name = Tensor view}', 'Every parameter by name.',
   'for name, p in pairs(m:parameters()) do print(name, p:numel()) end')
entry(S, 'UNet:gradients', 'm:gradients() -> {name = Tensor view}', 'Every gradient by name.',
   'm:gradients()')
entry(S, 'UNet:flat_params', 'm:flat_params() -> Tensor view [num_params]',
   'The whole parameter buffer as one 1-D view (what Adam and EMA update).',
   'ema:flat_params():copy(m:flat_params())')
entry(S, 'UNet:flat_grads', 'm:flat_grads() -> Tensor view [num_params]', 'The whole gradient buffer as one 1-D view.',
   'ddpm.core.clip_grad_norm(m:flat_grads(), 1)')
entry(S, 'UNet:config', 'm:config() -> table', 'The configuration the model was built with.',
   'm:config().ch_mult')
entry(S, 'UNet:save', 'm:save(path)',
   'A safetensors file under the diffusers UNet2DModel names, with the config\n' ..
   'in the metadata (so ddpm.load_unet can rebuild it).',
   "m:save('unet.safetensors')")
entry(S, 'UNet:load', "m:load(path [, {prefix = '', strict = true}]) -> m",
   'Loads diffusers-named weights (google/ddpm-cifar10-32 loads unchanged).\n' ..
   'prefix selects names, e.g. "ema." in a training checkpoint; strict = false\n' ..
   'ignores extra tensors. A missing or mis-shaped tensor is an error.',
   "m:load('ckpt.safetensors', {prefix = 'ema.', strict = false})")
entry(S, 'UNet:set_dropout_seed', 'm:set_dropout_seed(s [, first = 0])',
   'Seeds the dropout masks of the next passes. first is the index of the\n' ..
   "batch's first image in a larger batch (a data-parallel rank's share):\n" ..
   'each image then gets the masks it would get in the whole batch.',
   'm:set_dropout_seed(1)')
entry(S, 'UNet:set_grad_enabled', 'm:set_grad_enabled(on)',
   'With false, forward keeps no activations for backward (sampling).',
   'm:set_grad_enabled(false)')
entry(S, 'UNet:set_precision', "m:set_precision('float32' | 'bf16' [, {min_channels = 128}]) -> m",
   'The arithmetic of forwards and training steps: \'bf16\' multiplies the\n' ..
   '3x3 convolutions (forward, input gradient) in bfloat16 with float32 sums\n' ..
   '(AVX512-BF16; an error on a CPU without it). Weight gradients, weights,\n' ..
   'Adam and the EMA stay float32; not saved with the model. min_channels:\n' ..
   'the fewest summed channels of a layer run in bfloat16. m.precision = ...\n' ..
   'does the same.',
   "m:set_precision('bf16')")
entry(S, 'UNet:workspace_bytes', 'm:workspace_bytes() -> number', 'Bytes of activation and scratch memory held now.',
   'm:workspace_bytes() / 2^20')
entry(S, 'UNet:free', 'm:free()', 'Releases the model now; later use is an error.', 'm:free()')

---------------------------------------------------------------- diffusion

S = 'Diffusion'
entry(S, 'ddpm.diffusion', "ddpm.diffusion{schedule = 'linear', T = 1000, beta_start = 1e-4, beta_end = 0.02,\n" ..
                           "               mean_type = 'eps', var_type = 'fixedlarge', loss_type = 'mse', clip = true} -> Diffusion",
   'The forward process, the loss and the sampler over one noise schedule.\n' ..
   "schedule: 'linear', 'quad', 'const', 'jsd', 'warmup10', 'warmup50', 'cosine',\n" ..
   'a table (or tensor) of T betas, or a function t -> beta (t = 0..T-1).\n' ..
   "mean_type 'eps' | 'xstart' | 'xprev' | 'v'; var_type 'fixedlarge' |\n" ..
   "'fixedsmall' | 'learned' | 'learned_range'; loss_type 'mse' | 'rescaled_mse'\n" ..
   "| 'kl' | 'rescaled_kl'. Timesteps are the code index t = 0..T-1.",
   "diff = ddpm.diffusion{schedule = 'cosine', T = 1000}")
entry(S, 'Diffusion:q_sample', 'diff:q_sample(x0, t, eps) -> Tensor',
   'x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (eq. 4); t a number, table or tensor.',
   'xt = diff:q_sample(x0, 500, ddpm.randn(x0:size(), 1))')
entry(S, 'Diffusion:loss', 'diff:loss(model, x0, rng) -> loss, losses, t',
   'One training loss (Algorithm 1 lines 2-5, no optimiser step): draws t and\n' ..
   'eps from rng = {t_seed =, t_counter =, eps_seed =, eps_counter =}, runs\n' ..
   'the model forward, computes the loss and runs backward (gradients\n' ..
   'accumulate). Returns the loss, per-example losses (a tensor) and t (a table).',
   'm:zero_grad(); loss = diff:loss(m, x0, {t_seed = 1, eps_seed = 2})')
entry(S, 'Diffusion:tsampler', 'diff:tsampler{history = 10, uniform_prob = 0.001} -> TSampler',
   'Importance sampling of t from the loss history (Improved DDPM sec. 3.3):\n' ..
   'uniform until every t holds `history` losses, then p_t ~ sqrt(E[L_t^2])\n' ..
   'mixed with uniform_prob / T; an example drawn at t weighs 1 / (T p_t).\n' ..
   "Give it to diff:loss as rng.sampler, or schedule_sampler = 'loss-second-moment'\n" ..
   'to ddpm.train (its history then goes into the checkpoints). Methods:\n' ..
   'sample(N, seed, counter) -> t, weights; update(t, losses); probs(); warm().',
   "s = diff:tsampler(); loss = diff:loss(m, x0, {t_seed = 1, eps_seed = 2, sampler = s})")
entry(S, 'Diffusion:sample', 'diff:sample(model, {n = 16, shape = {C, H, W}, seed = 0, progress = true,\n' ..
                              '                   clip =, on_step = function(t, x, x0_pred)}) -> Tensor',
   'Ancestral sampling (Algorithm 2): x_T ~ N(0, I), then T reverse steps.\n' ..
   'The model runs in evaluation mode without activation caching and is\n' ..
   'restored afterwards. Returns x_0 [n,C,H,W] (not clipped). Ctrl-C stops it.',
   "x = diff:sample(m, {n = 16, shape = {1, 28, 28}, seed = 1}); ddpm.show(x)")
entry(S, 'Diffusion:out_channels', 'diff:out_channels(C) -> number',
   'Output channels the network needs for C image channels: 2C with a learned\n' ..
   'variance, else C.',
   'ddpm.unet{out_ch = diff:out_channels(3)}')

---------------------------------------------------------------- training and data

S = 'Training and data'
entry(S, 'ddpm.train', 'ddpm.train{model =, diffusion =, data =, steps =, batch =, lr = 2e-4, warmup = 0,\n' ..
                       '           grad_clip = 1, ema_decay = 0.9999, seed = 0, flip = false, pad_to = 0,\n' ..
                       "           db = 'runs.db', name =, config =, run =, resume =, time_limit =,\n" ..
                       '           sample_every =, sample_n = 64, checkpoint_every =, log_every = 1,\n' ..
                       "           schedule_sampler = 'uniform' | 'loss-second-moment',\n" ..
                       "           nan = 'stop' | 'skip', max_nonfinite = 10, ...} -> result",
   'Algorithm 1 with warm-up, gradient clipping, Adam, an EMA of the weights,\n' ..
   'run history (runs.db), checkpoints and sample grids. Every random choice of\n' ..
   'step s is a function of (seed, s), so resume = checkpoint continues bit for\n' ..
   'bit. Ctrl-C finishes the step, writes a checkpoint, marks the run\n' ..
   "'interrupted' and returns (a second Ctrl-C stops at once). result: status,\n" ..
   'loss, step, run, model, ema, adam, checkpoint, samples. A NaN or infinite\n' ..
   "loss or gradient norm stops the run at that step (nan = 'skip': the step is\n" ..
   'skipped and counted as the metric nonfinite_skips).',
   "r = ddpm.train{model = m, diffusion = diff, data = ddpm.data.fashion_mnist{},\n" ..
   "               steps = 500, batch = 32, db = 'runs.db', name = 'try'}")
entry(S, 'ddpm.data.fashion_mnist', "ddpm.data.fashion_mnist{split = 'train' | 'test', dir =} -> Dataset",
   "Fashion-MNIST from Debian's dataset-fashion-mnist (or dir, or\n" ..
   '$DDPMLUA_FASHION_MNIST): 1x28x28 images with labels.',
   "d = ddpm.data.fashion_mnist{split = 'test'}; d:size()   --> 10000")
entry(S, 'ddpm.data.cifar10', "ddpm.data.cifar10{dir =, split = 'train' | 'test'} -> Dataset",
   'CIFAR-10 from the binary batches (cifar-10-batches-bin); dir defaults to\n' ..
   '$DDPMLUA_CIFAR10. 3x32x32 images with labels.',
   "d = ddpm.data.cifar10{dir = '/data/cifar-10-batches-bin'}")
entry(S, 'ddpm.data.png_dir', 'ddpm.data.png_dir(dir [, channels = 3]) -> Dataset',
   'Every PNG in a folder (all the same size) as 1 or 3 channels, no labels.',
   "d = ddpm.data.png_dir('faces/', 3)")
entry(S, 'Dataset', 'ddpm.Dataset: images held as bytes (from ddpm.data.*)',
   'Methods: size shape batch permutation label has_labels free (?Dataset:name).',
   'd:size(), d:shape()')
entry(S, 'Dataset:size', 'd:size() -> N', 'The number of images (#d is the same).', 'd:size()')
entry(S, 'Dataset:shape', 'd:shape() -> {C, H, W}', 'The shape of one image.', 'd:shape()   --> {1, 28, 28}')
entry(S, 'Dataset:batch', 'd:batch(indices [, pad_to = 0, flips, out]) -> Tensor [n,C,P,P]',
   'Images at 1-based indices (a table or 1-D tensor) as floats in [-1, 1];\n' ..
   'pad_to > 0 pads to P x P; flips: n booleans or numbers (non-zero mirrors);\n' ..
   'out: a contiguous tensor to fill instead of a new one.',
   'x0 = d:batch({1, 2, 3, 4}); ddpm.show(x0)')
entry(S, 'Dataset:permutation', 'd:permutation(seed, epoch [, t]) -> {1-based indices}',
   'A shuffle of 1..N that depends only on (seed, epoch); fills t when given.',
   'p = d:permutation(1, 0)')
entry(S, 'Dataset:label', 'd:label(i) -> 0..9 or nil', 'The label of image i (nil for a PNG folder).', 'd:label(1)')

---------------------------------------------------------------- run history

S = 'Many processes (mpirun)'
entry(S, 'ddpm.dist', 'ddpm.dist: rank, size, is_main, allreduce, allreduce_numbers, broadcast,\n' ..
   'broadcast_string, barrier, same, shard, gather_rows, timeout',
   'Data parallelism over MPI ranks. Under `mpirun -np N ddpmlua script.lua`\n' ..
   'ddpm.train, diff:sample, diff:nll and FD-LeNet split their work over the\n' ..
   'ranks by themselves; rank 0 alone writes files and the history. Without\n' ..
   'mpirun it is a world of one and MPI is never started.',
   'mpirun -np 2 ddpmlua experiments/fashion_mnist.lua --batch=64')
entry(S, 'ddpm.dist.rank', 'ddpm.dist.rank() -> r', 'This process\'s rank, 0 .. size()-1 (0 without mpirun).',
   'if ddpm.dist.rank() == 0 then print(loss) end')
entry(S, 'ddpm.dist.size', 'ddpm.dist.size() -> N', 'The number of ranks (1 without mpirun).', 'ddpm.dist.size()')
entry(S, 'ddpm.dist.is_main', 'ddpm.dist.is_main() -> bool', 'True on rank 0, the rank that writes.',
   'if ddpm.dist.is_main() then ddpm.save_grid(path, x) end')
entry(S, 'ddpm.dist.allreduce', "ddpm.dist.allreduce(t [, 'sum' | 'max' | 'min']) -> t",
   'Reduces a contiguous float32 tensor over every rank, in place (a collective:\n' ..
   'every rank calls it, in the same order).',
   'ddpm.dist.allreduce(m:flat_grads()):mul_(1 / ddpm.dist.size())')
entry(S, 'ddpm.dist.allreduce_numbers', "ddpm.dist.allreduce_numbers({a, b, ...} [, op]) -> {...}",
   'Reduces Lua numbers (as float64) over every rank.', "local tot = ddpm.dist.allreduce_numbers({loss})[1]")
entry(S, 'ddpm.dist.broadcast', 'ddpm.dist.broadcast(t [, root = 0]) -> t',
   "Copies root's tensor into t on every rank.", 'ddpm.dist.broadcast(m:flat_params(), 0)')
entry(S, 'ddpm.dist.broadcast_string', 'ddpm.dist.broadcast_string(s [, root = 0]) -> s',
   "root's string on every rank.", "local path = ddpm.dist.broadcast_string(os.tmpname())")
entry(S, 'ddpm.dist.barrier', 'ddpm.dist.barrier()', 'Waits until every rank has called it.', 'ddpm.dist.barrier()')
entry(S, 'ddpm.dist.same', 'ddpm.dist.same(s) -> bool, first_differing_rank',
   'Whether every rank passed the same string (compared by a digest).',
   "assert(ddpm.dist.same(script_text))")
entry(S, 'ddpm.dist.shard', 'ddpm.dist.shard(n) -> lo, hi',
   "This rank's contiguous share [lo, hi) of 0 .. n-1 (the first n % size ranks\n" ..
   'get one more).', 'local lo, hi = ddpm.dist.shard(batch)')
entry(S, 'ddpm.dist.gather_rows', 'ddpm.dist.gather_rows(x, lo, sizes) -> full',
   "Every rank's rows [lo, lo + x:size(1)) gathered into a [n, ...] tensor on\n" ..
   'every rank (x is freed).', 'x = ddpm.dist.gather_rows(x, lo, {n, 1, 28, 28})')
entry(S, 'ddpm.dist.timeout', 'ddpm.dist.timeout() -> seconds; ddpm.dist.set_timeout(s)',
   'How long a collective waits for the other ranks before it fails (600 s, or\n' ..
   'DDPMLUA_DIST_TIMEOUT).', 'ddpm.dist.set_timeout(120)')

S = 'Run history'
entry(S, 'ddpm.log.start', 'ddpm.log.start{db = \'runs.db\', name =, experiment =, config =, seed =,\n' ..
                           '               parent_run_id =, script_path =, script_text =, dir =} -> Run',
   'Opens (or creates) the SQLite run history and begins a run: script text and\n' ..
   'hash, config as canonical JSON, seed, argv, git commit, host, times. Files\n' ..
   'go to runs/<uuid>/ beside the database. A run never finished is marked\n' ..
   "'failed' when the process ends. db defaults to $DDPMLUA_DB, else runs.db.",
   "run = ddpm.log.start{db = 'runs.db', name = 'sweep', config = {lr = 2e-4}}")
entry(S, 'Run:metric', 'run:metric(step, name, value)', 'Records one metric (buffered, committed in batches).',
   "run:metric(100, 'loss', 0.031)")
entry(S, 'Run:metrics', 'run:metrics(step, {name = value, ...})', 'Records several metrics of one step.',
   "run:metrics(100, {loss = 0.031, lr = 2e-4})")
entry(S, 'Run:artifact', 'run:artifact(step, kind, path [, meta table])', 'Records a file the run wrote.',
   "run:artifact(1000, 'sample_grid', 'samples.png')")
entry(S, 'Run:checkpoint', 'run:checkpoint(step, path)', 'Records a checkpoint file (with its sha256).',
   "run:checkpoint(1000, path)")
entry(S, 'Run:tag', 'run:tag(key, value)', 'Attaches a key/value tag to the run.', "run:tag('note', 'baseline')")
entry(S, 'Run:finish', "run:finish([status = 'finished' | 'failed' | 'interrupted', error_text])",
   'Flushes and ends the run with that status (once; later calls do nothing).',
   'run:finish()')
entry(S, 'ddpm.log.runs', "ddpm.log.runs{db = 'runs.db', last = 20, status =} -> rows",
   'The newest runs as tables (run_id, name, status, start_time, end_time,\n' ..
   'seed, script_path). Reads the database read-only; a missing one is an error.',
   "for _, r in ipairs(ddpm.log.runs{last = 5}) do print(r.run_id, r.status) end")
entry(S, 'ddpm.log.open', "ddpm.log.open(path = 'runs.db' [, {write = true}]) -> RunLog",
   'The raw run store; rl:query(sql, params) returns rows as tables. The file\n' ..
   'must exist; it is opened read-only (a statement that would write is an\n' ..
   'error) unless write = true. A run whose process is gone reads as crashed.',
   "ddpm.log.open('runs.db'):query('SELECT count(*) AS n FROM runs')")

---------------------------------------------------------------- FID and IS

S = 'FID and Inception Score'
entry(S, 'ddpm.fid.accumulator', 'ddpm.fid.accumulator{weights = path, net = m, chunk = 100} -> acc',
   'FID/IS statistics over batches: acc:add(x) with samples x [N,3,H,W] in\n' ..
   '[-1,1] (quantized to 8 bits as PNGs store them), then acc:result{ref =\n' ..
   "'stats.npz', splits = 10} -> {n, fid, is, is_std, warning}. The weights are\n" ..
   'the FID Inception-v3 converted by scripts/convert_inception.py (default\n' ..
   'ddpm.fid.weights_path(); docs/fid.md). Fewer than 2048 samples warn.',
   "acc = ddpm.fid.accumulator(); acc:add(x); print(acc:result{ref = 'cifar10_train.npz'}.fid)")
entry(S, 'ddpm.fid.folder', 'ddpm.fid.folder(dir, {ref =, weights =, save =, splits = 10}) -> result',
   'FID and IS of every PNG in a folder (as `ddpmlua fid DIR` prints them);\n' ..
   'save writes the folder\'s statistics (.npz: mu, sigma, n) as a reference.',
   "r = ddpm.fid.folder('samples/', {ref = 'cifar10_train.npz'})")
entry(S, 'ddpm.fid.load_ref', 'ddpm.fid.load_ref(path) -> GaussStats, n_known',
   'Reference statistics: an .npz with mu [2048] and sigma [2048,2048] as\n' ..
   'published, or ddpmlua\'s own; ddpm.fid.distance(g1, g2) is the FID.',
   "g = ddpm.fid.load_ref('cifar10_train.npz')")

---------------------------------------------------------------- core ops

S = 'Core diffusion ops (ddpm.core)'
entry(S, 'core.schedule', 'core.schedule(name, T [, beta_start = 1e-4, beta_end = 0.02]) -> Schedule',
   "A named beta schedule ('linear', 'quad', 'const', 'jsd', 'warmup10',\n" ..
   "'warmup50', 'cosine') with every derived table (alphas_cumprod, posterior\n" ..
   'coefficients, ...) in float64.',
   "s = ddpm.core.schedule('linear', 1000); s:get('alphas_cumprod', 999)")
entry(S, 'core.schedule_from_betas', 'core.schedule_from_betas(betas) -> Schedule',
   'A schedule from a table or 1-D tensor of T betas, each in (0, 1].',
   'core.schedule_from_betas{0.1, 0.2, 0.3}')
entry(S, 'Schedule', 'ddpm.Schedule: T steps of betas and derived tables (diff.sched)',
   'Methods: T get array names timestep_map respace free; #s is T.',
   "diff.sched:array('betas')")
entry(S, 'Schedule:get', "s:get(name, t) -> number", 'Table name (see s:names()) at code index t = 0..T-1.',
   "s:get('betas', 0)   --> 1e-4")
entry(S, 'Schedule:array', 's:array(name) -> Tensor [T]', 'A float32 copy of one table.',
   "s:array('alphas_cumprod')")
entry(S, 'core.q_sample', 'core.q_sample(sched, x0, eps, t [, out]) -> x_t',
   'x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (eq. 4) for a batch [N, ...];\n' ..
   't: one number, or N timesteps in a table or tensor.',
   'xt = core.q_sample(diff.sched, x0, eps, {0, 500})')
entry(S, 'core.predict_x0', 'core.predict_x0(sched, xt, eps, t [, out]) -> x0',
   'x0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps (eq. 15).',
   'x0_hat = core.predict_x0(diff.sched, xt, eps_hat, t)')
entry(S, 'core.q_posterior', 'core.q_posterior(sched, x0, xt, t) -> mean, variance [N], log_variance [N]',
   'q(x_{t-1} | x_t, x0) (eqs. 6-7).',
   'mu, var, lv = core.q_posterior(diff.sched, x0, xt, t)')
entry(S, 'core.p_mean_variance', 'core.p_mean_variance(sched, model_out, xt, t [, {mean_type, var_type, clip = true}])\n' ..
                                 '  -> mean, log_variance, x0_hat',
   'p(x_{t-1} | x_t) from the network output (all [N,C,H,W]).',
   'mean, lv, x0 = core.p_mean_variance(diff.sched, m:forward(xt, t), xt, t)')
entry(S, 'core.p_sample_step', 'core.p_sample_step(sched, model_out, xt, t, noise [, {mean_type, var_type, clip = true,\n' ..
                               '                   out =, x0_out =}]) -> x_{t-1}',
   'One ancestral step (Algorithm 2 line 4): no noise is added at t = 0. out\n' ..
   'may be xt itself (in place); x0_out receives the predicted x0.',
   'x = core.p_sample_step(diff.sched, m:forward(x, t), x, t, ddpm.randn(x:size()), {out = x})')
entry(S, 'core.ddim_step', 'core.ddim_step(sched, model_out, xt, t, noise or nil [, {eta = 0, out =, x0_out =,\n' ..
                           '               mean_type, var_type, clip}]) -> x_prev',
   'One DDIM step (Song et al. 2021) on a (typically respaced) schedule;\n' ..
   'noise may be nil when eta = 0 (deterministic).',
   'x = core.ddim_step(s, m:forward(x, t), x, t, nil, {out = x})')
entry(S, 'core.loss_simple', 'core.loss_simple(model_out, target [, grad]) -> loss, grad',
   'L_simple (eq. 14): the batch mean of mean((out - target)^2) and its\n' ..
   'gradient w.r.t. model_out (written into grad when given).',
   'loss, g = core.loss_simple(m:forward(xt, t), eps); m:backward(g)')
entry(S, 'core.training_losses', 'core.training_losses(sched, model_out, x0, xt, eps, t [, {mean_type, var_type, loss_type,\n' ..
                                 '                     weights}]) -> loss, grad, losses [N], mse [N], vb [N]',
   'The improved-diffusion objectives: L_simple, the variational bound terms\n' ..
   '(bits/dim) and hybrids, with the gradient w.r.t. model_out.',
   "loss, g = core.training_losses(s, out, x0, xt, eps, t, {var_type = 'learned_range', loss_type = 'mse'})")
entry(S, 'core.vb_terms_bpd', 'core.vb_terms_bpd(sched, model_out, x0, xt, t [, {mean_type, var_type, clip = false}])\n' ..
                              '  -> terms [N], x0_mse [N]',
   'The variational bound term L_{t-1} per example in bits/dim (the decoder\n' ..
   'NLL at t = 0).',
   'terms = core.vb_terms_bpd(diff.sched, out, x0, xt, t)')
entry(S, 'core.prior_bpd', 'core.prior_bpd(sched, x0) -> L_T [N]', 'The prior term KL(q(x_T|x0) || N(0, I)) in bits/dim.',
   'core.prior_bpd(diff.sched, x0)')
entry(S, 'core.adam', 'core.adam(n [, {beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0}]) -> Adam',
   'Adam over n parameters; adam:step(params, grads, lr) updates the flat\n' ..
   'params in place; adam:m(), adam:v() are its moments; adam:t() the step count.\n' ..
   'adam:step(params, grads, lr, {grad_scale = s, ema = e, ema_decay = d, zero_grads = true})\n' ..
   'also scales the gradients by s (clipping), updates the EMA e and zeroes the\n' ..
   'gradients, in the same pass and with the bits of the separate calls.',
   'opt = core.adam(m:num_params()); opt:step(m:flat_params(), m:flat_grads(), 2e-4)')
entry(S, 'core.clip_grad_norm', 'core.clip_grad_norm(g, max_norm) -> norm',
   'Scales the contiguous tensor g to global L2 norm max_norm when above it\n' ..
   '(max_norm > 0); returns the norm before clipping.',
   'gnorm = core.clip_grad_norm(m:flat_grads(), 1)')
entry(S, 'core.ema_update', 'core.ema_update(ema, w, decay)', 'ema = ema - (1 - decay) (ema - w), in place (contiguous, same size).',
   'core.ema_update(ema:flat_params(), m:flat_params(), 0.9999)')
entry(S, 'core.randint', 'core.randint(n, hi, seed [, counter]) -> {n integers in [0, hi)}, next counter',
   'Counter-based uniform integers, e.g. timesteps for a batch.',
   't = core.randint(8, 1000, 1)')
entry(S, 'core.mix_seed', 'core.mix_seed(seed, stream) -> seed',
   'An independent seed for a stream (splitmix64), so one run seed gives\n' ..
   'separate streams for noise, timesteps, dropout and flips.',
   'core.mix_seed(1, 2)')
entry(S, 'ddpm.set_num_threads', 'ddpm.set_num_threads(n)', 'Threads used by OpenMP and OpenBLAS (1..1024).',
   'ddpm.set_num_threads(2)')
entry(S, 'ddpm.get_num_threads', 'ddpm.get_num_threads() -> n',
   'The thread count (DDPMLUA_NUM_THREADS, else OMP_NUM_THREADS, else one per CPU).',
   'ddpm.get_num_threads()')

---------------------------------------------------------------- more of the diffusion API

S = 'Diffusion'
entry(S, 'Diffusion:nll', 'diff:nll(model, data, opt) -> {bpd, bpd_se, prior, terms, mse, t, per_example, n}',
   'The variational bound in bits/dim over all T terms plus the prior (the\n' ..
   'official calc_bpd_loop). data: a tensor [N,C,H,W] in [-1, 1] or a Dataset\n' ..
   '(its first n examples). opt: n, batch (64), seed (0), clip (true), steps\n' ..
   '(the bound of a respaced process), progress, run and step (log\n' ..
   '<prefix>_bpd, <prefix>_prior and the per-t terms <prefix>_t), prefix (\'nll\').\n' ..
   'lib/ddpm/nll.lua has the details.',
   'r = diff:nll(ema, ddpm.data.fashion_mnist{split = \'test\'}, {n = 256}); print(r.bpd)')
entry(S, 'Diffusion:ddim_encode', 'diff:ddim_encode(model, x0 [, {steps =, clip =, progress =}]) -> xT',
   'The DDIM latent (eta = 0) that ddim_decode maps back to x0: the deterministic\n' ..
   'chain run forwards. steps respaces the process; x0 is not modified.',
   'xT = diff:ddim_encode(m, x0, {steps = 100}); x = diff:ddim_decode(m, xT, {steps = 100})')
entry(S, 'Diffusion:ddim_decode', 'diff:ddim_decode(model, xT [, {steps =, clip =, progress =}]) -> x0',
   'x0 from xT by the deterministic DDIM chain (eta = 0); xT is not modified.',
   'x = diff:ddim_decode(m, xT, {steps = 100})')
entry(S, 'Diffusion:progressive', 'diff:progressive(model, {n =, shape =, seed =, every =, path =}) -> x0, snapshots',
   'Progressive generation (the paper\'s Fig. 6): the predicted x0 every `every`\n' ..
   'steps along one ancestral chain; path writes them as a PNG, one row per sample.',
   'diff:progressive(m, {n = 8, shape = {1, 28, 28}, path = \'progressive.png\'})')
entry(S, 'Diffusion:interpolate', 'diff:interpolate(model, xa, xb [, {t =, lambdas =, seed =, steps =, path =}]) -> x, lambdas',
   'Interpolation in latent space (Fig. 8): both images noised to step t with\n' ..
   'the same noise, mixed for each lambda, and denoised with the same reverse noise.',
   'diff:interpolate(m, xa, xb, {t = 500, path = \'interp.png\'})')
entry(S, 'Diffusion:shared_latent', 'diff:shared_latent(model, {n =, shape =, split =, branches =, path =}) -> x, split',
   'Coarse-to-fine (Fig. 7): chains that share x_t down to each split step and\n' ..
   'then go on with independent noise. Also called diff:coarse_to_fine.',
   'diff:shared_latent(m, {n = 2, shape = {1, 28, 28}, branches = 4, path = \'c2f.png\'})')
entry(S, 'Diffusion:coarse_to_fine', 'diff:coarse_to_fine(model, opt)',
   'The same function as diff:shared_latent.', 'diff:coarse_to_fine(m, {n = 1, shape = {1, 28, 28}})')
entry(S, 'Diffusion:respace', 'diff:respace(steps) -> Diffusion',
   'The K-step respaced process (steps a number K or a spacing string such as\n' ..
   '\'ddim50\'), sharing this one\'s types; cached; steps = T returns diff itself.',
   'd50 = diff:respace(50); d50.T --> 50')
entry(S, 'Diffusion:model_t', 'diff:model_t(k) -> t',
   'The timestep the network is fed at code index k (the original index on a\n' ..
   'respaced process, k itself otherwise).', 'diff:respace(10):model_t(9)  --> 999 for T = 1000')
entry(S, 'Diffusion:index_at', 'diff:index_at(t) -> k',
   'The largest code index k with model_t(k) <= t: where a chain meant to start\n' ..
   'at original step t starts on this process.', 'diff:respace(10):index_at(500)')

---------------------------------------------------------------- the research workflow

S = 'Workflow'
entry(S, 'ddpm.cli.parse', 'ddpm.cli.parse(arg, defaults [, spec]) -> cfg, given',
   'A script\'s config from its command line: --key=value, --key value or a bare\n' ..
   '--flag overrides a key of defaults, converted to the default\'s type and\n' ..
   'checked (integers, ranges, allowed values, unknown keys with "did you mean")\n' ..
   'before anything is recorded. spec adds descriptions and checks per key\n' ..
   '({\'text\', int = true, min =, max =, choices = {...}, path = true}); common\n' ..
   'keys are described in ddpm.cli.options. Path options are stored absolute.\n' ..
   'given is the set of keys the command line set. --help lists every option\n' ..
   'with its description and default. A bad option: one line, exit status 2.',
   'local cfg = ddpm.cli.parse(arg, {steps = 100, lr = 2e-4}, {lr = {\'learning rate\', min = 0}})')
entry(S, 'ddpm.cli.usage_error', 'ddpm.cli.usage_error(fmt, ...)',
   'Raises an error the host prints as one line, with exit status 2 and no\n' ..
   'traceback (--debug or DDPMLUA_DEBUG=1 gives one): for mistakes in how a\n' ..
   'script was called.', 'if cfg.n < 1 then ddpm.cli.usage_error(\'--n must be positive, got %d\', cfg.n) end')
entry(S, 'ddpm.cli.failure', 'ddpm.cli.failure(fmt, ...)',
   'Raises the same one-line error with exit status 1: for a valid command\n' ..
   'that could not be carried out (a file that cannot be written).',
   'if not ok then ddpm.cli.failure(\'cannot write %s: %s\', path, err) end')
entry(S, 'ddpm.cli.is_usage_error', 'ddpm.cli.is_usage_error(err) -> boolean',
   'True for the error object of ddpm.cli.usage_error and ddpm.cli.failure (as\n' ..
   'pcall returns it): {message =, exit_status = 2 or 1}.',
   'local ok, e = pcall(ddpm.cli.parse, {\'--x=1\'}, {}); ddpm.cli.is_usage_error(e) --> true')
entry(S, 'ddpm.cli.read', 'ddpm.cli.read(args, options [, how]) -> values, positional, given',
   'The one argument parser, under ddpm.cli.parse and the history commands.\n' ..
   'options: name -> {type = \'string\'|\'number\'|\'boolean\'|\'numbers\', int =,\n' ..
   'min =, max =, choices =, path =, many =}; how: short = {o = \'output\'},\n' ..
   'positional = true, hint = text after an unknown option, help = function.\n' ..
   'Reads --k=v, --k v, a bare --flag, -o v and -- ; a mistake is a usage error.',
   'local o, pos = ddpm.cli.read({\'-o\', \'a.png\', \'3\'}, {output = {type = \'string\'}},\n' ..
   '                             {short = {o = \'output\'}, positional = true})')
entry(S, 'ddpm.cli.usage', 'ddpm.cli.usage(defaults [, spec]) -> text',
   'The text --help prints: every option with its description and default.',
   'print(ddpm.cli.usage({steps = 100}))')
entry(S, 'ddpm.cli.suggest', 'ddpm.cli.suggest(word, names) -> name or nil',
   'The nearest of names (a list or a set) by edit distance, when it is close.',
   'ddpm.cli.suggest(\'los_type\', {\'loss_type\', \'lr\'}) --> \'loss_type\'')
entry(S, 'ddpm.steps', 'for step in ddpm.steps{steps =, start = 0, run =, on_stop =} do ... end',
   'The step loop of a hand-written training loop with ddpm.train\'s Ctrl-C: the\n' ..
   'first Ctrl-C (or SIGTERM) lets the step under way finish, then on_stop(step)\n' ..
   'runs (save a checkpoint there), the run is marked \'interrupted\' and the loop\n' ..
   'ends. Check run.status afterwards.',
   'for step in ddpm.steps{steps = 300, run = run} do ... end')
entry(S, 'ddpm.runs', 'ddpm.runs{db =, status =, script =, since =, last =} -> rows',
   'The run list of `ddpmlua runs` as Lua tables, oldest first: run_id, name,\n' ..
   'script, status, steps, loss, nll, fd_lenet, start_time, duration, ...',
   'for _, r in ipairs(ddpm.runs{status = \'finished\', last = 5}) do print(r.run_id, r.loss) end')
entry(S, 'ddpm.class', 'ddpm.class(name [, parent]) -> class',
   'A class table with a constructor class.new(...) that calls class:__init(...),\n' ..
   'as torch7\'s class; parent is consulted for missing methods.',
   'local Foo = ddpm.class(\'Foo\'); function Foo:__init(x) self.x = x end; Foo.new(1)')
entry(S, 'Run', 'ddpm.Run: run.id, run.uuid, run.dir, run.status, run.db_path, run.config',
   'A run of the history (ddpm.log.start): id is its run_id in runs.db (what\n' ..
   '`ddpmlua show ID` takes), uuid its global name, dir its folder (runs/<uuid>/\n' ..
   'beside the database, made when the first file is written), status running,\n' ..
   'finished, failed or interrupted.',
   'run = ddpm.log.start{config = cfg}; print(run.id, run.dir)')
entry(S, 'Run:flush', 'run:flush()', 'Commits the buffered metrics now (they are committed in batches).',
   'run:flush()')
entry(S, 'ddpm.log.prepare', 'ddpm.log.prepare(path)',
   'Before writing path: makes its folder when that is a run\'s folder not made\n' ..
   'yet (ddpm.save_grid and checkpoints call it); other folders are left alone.',
   'ddpm.log.prepare(run.dir .. \'/x.png\')')
entry(S, 'ddpm.checkpoint.save', 'ddpm.checkpoint.save(path, {model =, ema =, adam =, step =, seed =, ...})',
   'Training state in one safetensors file, written atomically, with the model,\n' ..
   'diffusion and image shape described in its metadata (also as diffusers\n' ..
   'UNet2DModel and DDPMScheduler configs).', 'ddpm.checkpoint.save(\'c.safetensors\', {model = m, step = 0})')
entry(S, 'ddpm.checkpoint.load', 'ddpm.checkpoint.load(path, state) -> {step, seed, run_id, run_uuid, config}',
   'Loads a checkpoint into state (model, ema, adam, tsampler); refuses a model\n' ..
   'or diffusion process other than the checkpoint\'s.', 'meta = ddpm.checkpoint.load(path, {model = m})')
entry(S, 'ddpm.checkpoint.read_config', 'ddpm.checkpoint.read_config(path) -> {unet, diffusion, data_shape, checkpoint, ema}',
   'What a checkpoint or model file says about itself (nil fields when it does\n' ..
   'not record them, as in a diffusers file).', 'ddpm.checkpoint.read_config(path).diffusion.T')
entry(S, 'ddpm.checkpoint.configure', 'ddpm.checkpoint.configure(cfg, path [, given, override]) -> info, overridden',
   'A script\'s cfg takes the model and diffusion settings a file records; a\n' ..
   'typed flag (given) that contradicts them is a usage error unless override\n' ..
   '(a set or \'T,var_type\') names it (diffusion settings only).',
   'ddpm.checkpoint.configure(cfg, cfg.resume, given)')
entry(S, 'ddpm.checkpoint.describe', 'ddpm.checkpoint.describe(model [, diff, data_shape]) -> metadata',
   'The metadata strings that make a file self-describing.', 'ddpm.checkpoint.describe(m, diff, {1, 28, 28})')
entry(S, 'ddpm.checkpoint.diffusion_config', 'ddpm.checkpoint.diffusion_config(diff) -> table',
   'The options that rebuild diff with ddpm.diffusion{...} (of the original\n' ..
   'process when diff is respaced).', 'ddpm.diffusion(ddpm.checkpoint.diffusion_config(diff))')
entry(S, 'ddpm.json.encode', 'ddpm.json.encode(value) -> string',
   'Canonical JSON (sorted keys), as configs are stored in runs.db.', 'ddpm.json.encode{b = 1, a = {1, 2}}')
entry(S, 'ddpm.json.decode', 'ddpm.json.decode(text) -> value', 'Parses JSON; an error names where it fails.',
   'ddpm.json.decode(\'{"a": [1, 2]}\').a[2] --> 2')
entry(S, 'ddpm.progress.new', 'ddpm.progress.new{total =, label =, start =} -> bar',
   'A progress line on stderr (a bar on a terminal, plain lines otherwise):\n' ..
   'bar:update(step, {loss = ...}) and bar:finish().',
   'local bar = ddpm.progress.new{total = 100}; bar:update(1, {loss = 0.1}); bar:finish()')
entry(S, 'ddpm.progress.update', 'bar:update(step [, fields, force])', 'Reports step (and fields) on the progress line.',
   'bar:update(10, {loss = 0.05})')
entry(S, 'ddpm.progress.finish', 'bar:finish([fields])', 'Ends the progress line.', 'bar:finish()')
entry(S, 'ddpm.metrics.fd_lenet', 'ddpm.metrics.fd_lenet(samples [, {reference =, classifier =, cache =}]) -> d',
   'FD-LeNet (docs/fd_lenet.md; not FID): the Frechet distance of LeNet features\n' ..
   'of 1x28x28 samples against the Fashion-MNIST test set.', 'ddpm.metrics.fd_lenet(x)')
entry(S, 'ddpm.metrics.log_fd_lenet', 'ddpm.metrics.log_fd_lenet(run, step, value, {sampler =, steps =, ema =, n =})',
   'Records an FD-LeNet value with the sampler that drew the samples.',
   'ddpm.metrics.log_fd_lenet(run, 1000, fd, {sampler = \'ancestral\', steps = 100, ema = true, n = 500})')
entry(S, 'ddpm.metrics.load_lenet', 'ddpm.metrics.load_lenet([path]) -> LeNet, metadata',
   'The FD-LeNet classifier (data/lenet_fmnist.safetensors, or DDPMLUA_LENET).', 'ddpm.metrics.load_lenet()')
entry(S, 'ddpm.metrics.train_lenet', 'ddpm.metrics.train_lenet{seed =, epochs =, batch =, lr =, out =}',
   'Trains the FD-LeNet classifier on Fashion-MNIST (scripts/train_lenet.lua).', 'ddpm.metrics.train_lenet{epochs = 1, out = \'l.safetensors\'}')
entry(S, 'ddpm.metrics.feature_stats', 'ddpm.metrics.feature_stats(lenet, images) -> GaussStats',
   'Mean and covariance of the 84-d LeNet features of images.', 'ddpm.metrics.feature_stats(ddpm.metrics.load_lenet(), x)')
entry(S, 'ddpm.metrics.dataset_stats', 'ddpm.metrics.dataset_stats(lenet, dataset) -> GaussStats',
   'The same over a whole Dataset.', 'ddpm.metrics.dataset_stats(l, ddpm.data.fashion_mnist{split = \'test\'})')
entry(S, 'ddpm.dist.active', 'ddpm.dist.active() -> boolean', 'True under mpirun (an MPI job of any size).',
   'ddpm.dist.active()')
entry(S, 'ddpm.dist.local_rank', 'ddpm.dist.local_rank() -> n', 'This rank\'s index among the ranks on its host.',
   'ddpm.dist.local_rank()')
entry(S, 'ddpm.dist.set_timeout', 'ddpm.dist.set_timeout(seconds)',
   'The deadline of every collective: a rank that waits longer fails the job.', 'ddpm.dist.set_timeout(600)')

--- Functions reachable from the API tables that are plumbing between the
--- library's modules, not API (tests/lua/test_workflow.lua checks every
--- other public function has an entry).
help.internal = {['ddpm.log.follower'] = true, ['UNet:new'] = true, ['Diffusion:rev_opts'] = true,
                 ['ddpm.progress.line'] = true, ['ddpm.progress.fmt_time'] = true}

---------------------------------------------------------------- the REPL

S = 'REPL'
entry(S, 'help', 'help(name or value)   or   ?name',
   'Prints the entry for an API function; ? alone lists the topics. A value\n' ..
   'works too: help(m.forward), ?x:numel (x a tensor). :help lists the REPL\n' ..
   'commands (:time, :jit, :img, :quit).',
   '?ddpm.randn')

---------------------------------------------------------------- lookup

local by_name = {}
for _, e in ipairs(E) do by_name[e.name] = e end

--- help.names() -> every entry name, in the order of the topic list.
function help.names()
   local out = {}
   for i, e in ipairs(E) do out[i] = e.name end
   return out
end

--- help.entry(name) -> the entry table {name, sig, text, example, section} or nil.
function help.entry(name) return by_name[name] end

-- Walks a dotted path from a table without calling anything.
local function walk(v, path)
   for part in path:gmatch('[^%.]+') do
      if type(v) ~= 'table' then return nil end
      v = rawget(v, part)
      if v == nil then return nil end
   end
   return v
end

-- The method table of each class the API hands out.
local function class_methods(cls)
   local core = require 'ddpm.core'
   if cls == 'Tensor' then return core.Tensor_mt.__methods end
   if cls == 'UNet' then return require('ddpm').UNet end
   if cls == 'Diffusion' then return require('ddpm.diffusion').Diffusion end
   if cls == 'Run' then return require('ddpm.log').Run end
   local mt = debug.getregistry()['ddpm.' .. cls]
   if type(mt) == 'table' then
      local idx = rawget(mt, '__index')
      if type(idx) == 'table' then return idx end
   end
   return nil
end

-- The value an entry documents, or nil (classes and `help` have none).
local function resolve(name)
   local cls, m = name:match('^(%u%w*):([%w_]+)$')
   if cls then
      local t = class_methods(cls)
      return t and rawget(t, m)
   end
   if name:sub(1, 5) == 'core.' then return walk(require('ddpm.core'), name:sub(6)) end
   if name:sub(1, 5) == 'ddpm.' then
      local ok, ddpm = pcall(require, 'ddpm')
      return ok and walk(ddpm, name:sub(6)) or nil
   end
   return nil
end

local by_value
local function value_index()
   if by_value then return by_value end
   by_value = {}
   for _, e in ipairs(E) do
      local ok, v = pcall(resolve, e.name)
      if ok and v ~= nil and by_value[v] == nil then by_value[v] = e end
   end
   return by_value
end

-- The class name of an object the API hands out, or nil.
local function class_of(v)
   local core = require 'ddpm.core'
   if core.is_tensor(v) then return 'Tensor' end
   local mt = getmetatable(v)
   if type(mt) ~= 'table' then return nil end
   if type(v) == 'table' then
      for _, cls in ipairs{'UNet', 'Diffusion', 'Run'} do
         if mt == class_methods(cls) then return cls end
      end
      return nil
   end
   local n = rawget(mt, '__name')
   if type(n) == 'string' and n:match('^ddpm%.%u') then return n:sub(6) end
   return nil
end

-- Resolves a REPL expression path (`x`, `ddpm.data`, `m.forward`) in the
-- globals, through __index tables and __methods but never calling a function.
local function eval_path(path)
   if not path:match('^[%a_][%w_]*[%w_%.]*$') or path:find('..', 1, true) then return nil end
   local v = _G
   for part in path:gmatch('[^%.]+') do
      local nxt
      for _ = 1, 16 do
         if type(v) == 'table' then nxt = rawget(v, part) end
         if nxt ~= nil then break end
         local mt = getmetatable(v)
         if type(mt) ~= 'table' then break end
         local idx = rawget(mt, '__index')
         if type(idx) == 'table' then v = idx
         else
            local meth = rawget(mt, '__methods')
            if type(meth) == 'table' then nxt = rawget(meth, part) end
            break
         end
      end
      if nxt == nil then return nil end
      v = nxt
   end
   return v
end

--- help.find(name or value) -> entry or nil, plus a list of close names.
function help.find(what)
   if type(what) == 'string' then
      local s = what:gsub('^%s+', ''):gsub('%s+$', ''):gsub('%(%)?$', '')
      if by_name[s] then return by_name[s] end
      if by_name['ddpm.' .. s] then return by_name['ddpm.' .. s] end
      if by_name['core.' .. s] then return by_name['core.' .. s] end
      if s:sub(1, 10) == 'ddpm.core.' and by_name['core.' .. s:sub(11)] then
         return by_name['core.' .. s:sub(11)]
      end
      -- obj:method or obj.method on something the user holds
      local base, m = s:match('^(.-)[:%.]([%w_]+)$')
      if base then
         local bv = eval_path(base)
         local cls = bv ~= nil and class_of(bv)
         if cls and by_name[cls .. ':' .. m] then return by_name[cls .. ':' .. m] end
      end
      local v = eval_path(s)
      if v ~= nil then
         local e = help.find(v)
         if e then return e end
      end
      local close = {}
      local low = s:lower()
      for _, e in ipairs(E) do
         if low ~= '' and e.name:lower():find(low, 1, true) then close[#close + 1] = e.name end
      end
      return nil, close
   end
   if what == nil then return nil, {} end
   local e = value_index()[what]
   if e then return e end
   local cls = class_of(what)
   if cls and by_name[cls] then return by_name[cls] end
   if type(what) == 'table' then
      -- a module: the entries under its name
      local ok, ddpm = pcall(require, 'ddpm')
      if ok then
         if what == ddpm then return nil, help.names() end
         for k, v in pairs(ddpm) do
            if v == what and type(k) == 'string' then
               local close = {}
               for _, en in ipairs(E) do
                  if en.name:sub(1, #k + 6) == 'ddpm.' .. k .. '.' then close[#close + 1] = en.name end
               end
               return nil, close
            end
         end
      end
   end
   return nil, {}
end

local function format_entry(e)
   local lines = {e.sig, ''}
   for line in (e.text .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = '  ' .. line end
   if e.example then
      lines[#lines + 1] = ''
      lines[#lines + 1] = '  example:'
      for line in (e.example .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = '    ' .. line end
   end
   return table.concat(lines, '\n')
end

-- Names in columns under their section titles.
local function topics()
   local out = {'Topics (?name for one, e.g. ?ddpm.randn, ?Tensor:view, ?x:numel with x a tensor):'}
   local section, row = nil, {}
   local function flush()
      if #row > 0 then out[#out + 1] = '    ' .. table.concat(row, '  ') end
      row = {}
   end
   local width = 0
   for _, e in ipairs(E) do if #e.name > width then width = #e.name end end
   width = math.min(width, 26)
   local per = math.max(1, math.floor(78 / (width + 2)))
   for _, e in ipairs(E) do
      if e.section ~= section then
         flush()
         section = e.section
         out[#out + 1] = '  ' .. section
      end
      row[#row + 1] = e.name .. string.rep(' ', width - #e.name)
      if #row >= per then flush() end
   end
   flush()
   for i, l in ipairs(out) do out[i] = l:gsub('%s+$', '') end
   return table.concat(out, '\n')
end

--- help.text([name or value]) -> the text to print: the entry, or the topic
--- list when called with no argument or an empty name.
function help.text(what)
   if what == nil or what == '' then return topics() end
   local e, close = help.find(what)
   if e then return format_entry(e) end
   local label = type(what) == 'string' and what or tostring(what)
   local msg = ('no help for %s'):format(label)
   if type(what) == 'function' then
      local info = debug.getinfo(what, 'S')
      if info and info.what == 'Lua' then
         msg = msg .. (' (a Lua function defined at %s:%d)'):format(info.short_src, info.linedefined)
      end
   end
   if close and #close > 0 then
      if #close > 12 then
         close = {unpack(close, 1, 12)}
         close[#close + 1] = '...'
      end
      msg = msg .. '; see ' .. table.concat(close, ', ')
   else
      msg = msg .. '; ? lists the topics'
   end
   return msg
end

return setmetatable(help, {__call = function(_, what) print(help.text(what)) end})
