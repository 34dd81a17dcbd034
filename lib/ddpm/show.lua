--[[
ddpm.show — a look at an image batch from the REPL, in the terminal.

   ddpm.show(x)                         -- x [N,C,H,W] or [C,H,W] (or [H,W]), values in [-1, 1]
   ddpm.show(x, {n = 4, width = 32})    -- at most 4 images, each 32 columns wide
   local s = ddpm.show.render(x)        -- the text, without printing it

Each text cell is the half block U+2580 with the top pixel as its 24-bit
foreground colour and the pixel below as its background, so a 28x28 image
is 28 columns by 14 rows; images stand side by side, wrapping to the
terminal's width. With NO_COLOR set (or TERM=dumb, or mode = 'ascii') cells
are a grayscale ASCII ramp instead, one character per two pixel rows. C is
1 (gray) or 3 (RGB; a 4th, alpha, channel is ignored). Images wider than
`width` (default: min(W, 64), narrowed to fit the terminal) are box-averaged
down; a line under the images says how many were shown, their size and the
value range. Output does not depend on stdout being a terminal: the caller
asked for pictures (they survive `less -R`).

What it is not: an image viewer. ddpm.save_grid writes a PNG; the kitty and
sixel protocols are not used.
]]
local core = require 'ddpm.core'

local show = {}

show.ramp = ' .:-=+*#%@'
show.max_width = 64     -- default columns per image at most
show.max_images = 16    -- default images drawn at most

local function byte(v)
   if not (v > -1) then return 0 end       -- also NaN
   if v >= 1 then return 255 end
   return math.floor((v + 1) * 127.5 + 0.5)
end

local function terminal_columns()
   local c = core.term_width(1) or core.term_width(2) or tonumber(os.getenv('COLUMNS') or '')
   if not c or c < 20 then c = 80 end
   return c
end

-- Source ranges of output index j (1-based) when n source pixels map to m:
-- a box for downscaling, one pixel for upscaling.
local function span(j, n, m)
   local a = math.floor((j - 1) * n / m) + 1
   local b = math.floor(j * n / m)
   if b < a then b = a end
   if b > n then b = n end
   return a, b
end

-- One image [C,H,W] as rows of {r, g, b} bytes at ow x oh pixels.
local function resample(img, C, H, W, ow, oh)
   local chans = math.min(C, 3)
   local planes = {}
   for c = 1, chans do planes[c] = img:select(1, c):totable() end
   local rows = {}
   for i = 1, oh do
      local y0, y1 = span(i, H, oh)
      local row = {}
      for j = 1, ow do
         local x0, x1 = span(j, W, ow)
         local px, count = {}, (y1 - y0 + 1) * (x1 - x0 + 1)
         for c = 1, chans do
            local p, s = planes[c], 0
            for y = y0, y1 do
               local line = p[y]
               for x = x0, x1 do s = s + line[x] end
            end
            px[c] = byte(s / count)
         end
         if chans == 1 then px[2], px[3] = px[1], px[1] end
         row[j] = px
      end
      rows[i] = row
   end
   return rows
end

local function blocks_cell(top, bot, state)
   local fg = top[1] .. ';' .. top[2] .. ';' .. top[3]
   local bg = bot and (bot[1] .. ';' .. bot[2] .. ';' .. bot[3]) or 'none'
   local s = ''
   if fg ~= state.fg then s = s .. '\27[38;2;' .. fg .. 'm'; state.fg = fg end
   if bg ~= state.bg then
      s = s .. (bot and ('\27[48;2;' .. bg .. 'm') or '\27[49m')
      state.bg = bg
   end
   return s .. '\226\150\128'   -- U+2580 UPPER HALF BLOCK
end

local function gray(px) return 0.299 * px[1] + 0.587 * px[2] + 0.114 * px[3] end

local function ascii_cell(top, bot)
   local v = bot and (gray(top) + gray(bot)) / 2 or gray(top)
   local k = math.floor(v / 256 * #show.ramp) + 1
   return show.ramp:sub(k, k)
end

local function shape_str(x)
   return x:shape_str()
end

-- lvl: the level of the user's call, for error positions.
local function render(x, opt, lvl)
   opt = opt or {}
   if type(opt) ~= 'table' then error('show: options must be a table, e.g. {n = 4}', lvl) end
   if not core.is_tensor(x) then error('show: expected a ddpm.Tensor [N,C,H,W], got ' .. type(x), lvl) end
   if x:is_freed() then error('show: the tensor was freed', lvl) end
   local nd = x:dim()
   if nd == 2 then x = x:contiguous():view(1, 1, x:size(1), x:size(2))
   elseif nd == 3 then x = x:contiguous():view(1, x:size(1), x:size(2), x:size(3)) end
   if x:dim() ~= 4 then
      error('show: expected an image batch [N,C,H,W] (or [C,H,W]), got ' .. shape_str(x), lvl)
   end
   local N, C, H, W = x:size(1), x:size(2), x:size(3), x:size(4)
   if N < 1 or H < 1 or W < 1 or not (C == 1 or C == 3 or C == 4) then
      error('show: expected [N,C,H,W] with C = 1 or 3 and N, H, W >= 1, got ' .. shape_str(x), lvl)
   end
   local mode = opt.mode
   if mode == nil then
      local nc = os.getenv('NO_COLOR')
      mode = ((nc and nc ~= '') or os.getenv('TERM') == 'dumb') and 'ascii' or 'blocks'
   end
   if mode ~= 'blocks' and mode ~= 'ascii' then
      error("show: mode must be 'blocks' or 'ascii', got " .. tostring(mode), lvl)
   end
   local cols = opt.columns or terminal_columns()
   local n = math.min(N, opt.n or show.max_images)
   local ow = opt.width or math.min(W, show.max_width, cols)
   if type(ow) ~= 'number' or ow < 1 then error('show: width must be a positive number', lvl) end
   ow = math.floor(ow)
   local oh = math.max(1, math.floor(H * ow / W + 0.5))
   local per_row = math.max(1, math.floor((cols + 1) / (ow + 1)))

   local out = {}
   for first = 1, n, per_row do
      local imgs = {}
      for k = first, math.min(n, first + per_row - 1) do
         imgs[#imgs + 1] = resample(x:select(1, k), C, H, W, ow, oh)
      end
      for i = 1, oh, 2 do
         local line = {}
         for k, rows in ipairs(imgs) do
            local top, bot = rows[i], rows[i + 1]
            local cells, state = {}, {}
            for j = 1, ow do
               cells[j] = mode == 'blocks' and blocks_cell(top[j], bot and bot[j], state)
                                           or ascii_cell(top[j], bot and bot[j])
            end
            line[k] = table.concat(cells) .. (mode == 'blocks' and '\27[0m' or '')
         end
         out[#out + 1] = table.concat(line, ' ')
      end
      if first + per_row <= n then out[#out + 1] = '' end
   end
   local lo, hi = x:narrow(1, 1, n):min(), x:narrow(1, 1, n):max()
   out[#out + 1] = ('%s of %d image%s, %dx%dx%d%s, values %.3g..%.3g%s'):format(
      n == N and 'all' or tostring(n), N, N == 1 and '' or 's', C, H, W,
      ow ~= W and (' shown %dx%d'):format(ow, oh) or '', lo, hi,
      (lo < -1.001 or hi > 1.001) and ' (clipped to [-1, 1])' or '')
   return table.concat(out, '\n') .. '\n'
end

--- show.render(x [, opt]) -> the text ddpm.show prints (with a final newline).
--- opt: n (images, default 16), width (columns per image), mode ('blocks' |
--- 'ascii'; default blocks unless NO_COLOR or TERM=dumb), columns (the
--- terminal's width, read from the terminal by default).
function show.render(x, opt)
   local s = render(x, opt, 3)
   return s
end

--- ddpm.show(x [, opt]): prints show.render(x, opt) to stdout.
function show.show(x, opt)
   io.stdout:write(render(x, opt, 3))
   io.stdout:flush()
end

return setmetatable(show, {__call = function(_, x, opt)
   io.stdout:write(render(x, opt, 3))
   io.stdout:flush()
end})
