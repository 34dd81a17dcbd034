--[[
ddpm.report — one self-contained HTML page per run (`ddpmlua report RUN`):
the run's record, its loss and metric curves, its sample grids, the per-t
terms of the likelihood bound when diff:nll logged them (nll*_t), the config,
a metric summary, checkpoints and the script. Images are PNGs embedded as
data: URIs and the CSS is inline, so the file opens in any browser, offline,
and can be mailed around as is.

   require('ddpm.report').write{rl = ddpm.log.open('runs.db'), run = 3,
                                out = 'report.html', smooth = 20, logy = false}
   -- -> {bytes = size of the page, charts = n, images = n}

Curves: 'loss' first (with a moving average when it has many points), then a
chart per metric with two or more points; metrics that differ only by a
trailing number (loss_q0..loss_q3) share a chart. Not here: interactivity,
JavaScript, other runs (see `ddpmlua compare`).
]]
local json = require 'ddpm.json'
local plot = require 'ddpm.plot'
local util = require 'ddpm.util'

local report = {}

local MAX_GRIDS = 8          -- the last sample grids of the run
local MAX_CHARTS = 16
local MAX_IMAGE_BYTES = 16 * 1048576

---------------------------------------------------------------- helpers

-- Stored text as HTML text: markup characters as entities, and control
-- characters other than tab and newline (which HTML does not allow) shown as
-- escapes such as \x1b, as the terminal tables show them.
local function esc(s)
   s = tostring(s):gsub('[%z\1-\8\11-\31\127]', function(c) return ('\\x%02x'):format(c:byte()) end)
   s = s:gsub('\194([\128-\159])', function(c) return ('\\u{%x}'):format(c:byte()) end)
   return (s:gsub('[&<>"\']', {['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;',
                                ['"'] = '&quot;', ["'"] = '&#39;'}))
end

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local b64chars = {}
for i = 1, 64 do b64chars[i - 1] = B64:sub(i, i) end

--- report.base64(bytes) -> text (RFC 4648, with padding)
function report.base64(s)
   local out, n = {}, #s
   local byte = string.byte
   for i = 1, n - 2, 3 do
      local a, b, c = byte(s, i, i + 2)
      local v = a * 65536 + b * 256 + c
      out[#out + 1] = b64chars[math.floor(v / 262144)] .. b64chars[math.floor(v / 4096) % 64] ..
                      b64chars[math.floor(v / 64) % 64] .. b64chars[v % 64]
   end
   local rest = n % 3
   if rest == 1 then
      local v = byte(s, n) * 65536
      out[#out + 1] = b64chars[math.floor(v / 262144)] .. b64chars[math.floor(v / 4096) % 64] .. '=='
   elseif rest == 2 then
      local a, b = byte(s, n - 1, n)
      local v = a * 65536 + b * 256
      out[#out + 1] = b64chars[math.floor(v / 262144)] .. b64chars[math.floor(v / 4096) % 64] ..
                      b64chars[math.floor(v / 64) % 64] .. '='
   end
   return table.concat(out)
end

local read_file = util.read_file

-- Width and height of PNG bytes, or nil when they are not a PNG.
local function png_size(s)
   if not s or #s < 24 or s:sub(1, 8) ~= '\137PNG\r\n\26\n' or s:sub(13, 16) ~= 'IHDR' then
      return nil
   end
   local function u32(i)
      local a, b, c, d = s:byte(i, i + 3)
      return ((a * 256 + b) * 256 + c) * 256 + d
   end
   return u32(17), u32(21)
end

local function png_uri(s) return 'data:image/png;base64,' .. report.base64(s) end

local function fmt(v)
   if v == nil then return '-' end
   return require('ddpm.cmd.common').g6(v)
end

local function duration(s) return util.duration(s, true) end

---------------------------------------------------------------- charts

-- Chart specs for the run's metrics: {title, keys = {...}, per_t, size}.
local function chart_specs(summary)
   local by_key, per_t, plain = {}, {}, {}
   for _, m in ipairs(summary) do
      by_key[m.key] = m
      if plot.is_per_t(m.key) then per_t[#per_t + 1] = m.key
      elseif m.points >= 2 then plain[#plain + 1] = m.key end
   end
   -- families: keys that differ only by a trailing number
   local fam, fam_order = {}, {}
   for _, k in ipairs(plain) do
      local stem = k:match('^(.-_?[%a]+)%d+$')
      local id = stem or k
      if not fam[id] then fam[id] = {}; fam_order[#fam_order + 1] = id end
      table.insert(fam[id], k)
   end
   local specs = {}
   if by_key.loss and by_key.loss.points >= 2 then
      specs[1] = {title = 'loss', keys = {'loss'}, main = true}
   end
   for _, id in ipairs(fam_order) do
      local keys = fam[id]
      if not (#keys == 1 and keys[1] == 'loss') then
         local title = #keys > 1 and (id .. '*') or keys[1]
         specs[#specs + 1] = {title = title, keys = keys}
      end
   end
   local terms, mse = {}, {}
   for _, k in ipairs(per_t) do
      if k:match('_mse_t$') then mse[#mse + 1] = k else terms[#terms + 1] = k end
   end
   local t_specs = {}
   if #terms > 0 then
      t_specs[#t_specs + 1] = {title = 'per-t terms of the bound (bits/dim)', keys = terms, per_t = true,
                               logy = true}
   end
   if #mse > 0 then
      t_specs[#t_specs + 1] = {title = 'x0 mean squared error per t', keys = mse, per_t = true, logy = true}
   end
   return specs, t_specs
end

local function draw(rl, id, spec, dir, n, opt)
   local series = {}
   local all_pos = true
   for _, k in ipairs(spec.keys) do
      local xs, ys = plot.series(rl, id, k)
      for _, v in ipairs(ys) do all_pos = all_pos and (v ~= v or v > 0) end
      series[#series + 1] = {name = k, x = xs, y = ys}
      if spec.main then
         local w = opt.smooth or math.max(1, math.floor(#xs / 25))
         if w > 1 then
            series[#series + 1] = {name = ('moving average of %d'):format(w), x = xs,
                                   y = plot.smooth(ys, w)}
         end
      end
   end
   local logy = spec.main and opt.logy or (spec.logy and all_pos)
   local path = ('%s/chart-%d.png'):format(dir, n)
   local w, h = spec.main and 960 or 470, spec.main and 400 or 300
   plot.lines(path, series, {title = spec.title, xlabel = spec.per_t and 't' or 'step',
                             logy = logy, width = w, height = h})
   local png = read_file(path)
   os.remove(path)
   return png, w, h
end

---------------------------------------------------------------- the page

local CSS = [[
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;
color:#222;background:#fff;margin:0 auto;max-width:1000px;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #e4e4e4;
padding-bottom:3px}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;color:#fff;
vertical-align:3px;margin-left:6px}
.finished{background:#2e7d32}.failed{background:#c62828}.running{background:#1565c0}
.interrupted,.crashed{background:#ef6c00}
table{border-collapse:collapse;font-size:13.5px}td,th{padding:2px 10px 2px 0;text-align:left;
vertical-align:top}th{color:#555;font-weight:600;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv td:first-child{color:#666;padding-right:16px}
code,pre{font:12.5px/1.4 "DejaVu Sans Mono",Menlo,Consolas,monospace}
pre{background:#f6f6f6;padding:10px;overflow:auto;border-radius:4px}
pre.error{background:#fdecea;color:#7f1d1d}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts img{border:1px solid #eee}
.grids{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-end}
figure{margin:0}figcaption{font-size:12.5px;color:#666;margin-top:2px}
img.px{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #ddd}
.note{color:#777;font-size:13px}
footer{margin-top:32px;color:#888;font-size:12px}
]]

local function kv_table(rows)
   local out = {'<table class="kv">'}
   for _, r in ipairs(rows) do
      if r[2] and r[2] ~= '' then
         out[#out + 1] = ('<tr><td>%s</td><td>%s</td></tr>'):format(esc(r[1]), r[3] and r[2] or esc(r[2]))
      end
   end
   out[#out + 1] = '</table>'
   return table.concat(out, '\n')
end

local function data_table(cols, rows, numeric)
   local out = {'<table><tr>'}
   for _, c in ipairs(cols) do out[#out + 1] = '<th>' .. esc(c) .. '</th>' end
   out[#out + 1] = '</tr>'
   for _, r in ipairs(rows) do
      out[#out + 1] = '<tr>'
      for i, c in ipairs(cols) do
         local v = r[i]
         local cls = numeric and numeric[i] and ' class="n"' or ''
         out[#out + 1] = ('<td%s>%s</td>'):format(cls, esc(v == nil and '' or v))
      end
      out[#out + 1] = '</tr>'
   end
   out[#out + 1] = '</table>'
   return table.concat(out)
end

---------------------------------------------------------------- sections

-- The page's head and the run's record (uuid, script, command, seed, ...).
local function head(r, summary)
   local common = require 'ddpm.cmd.common'
   local html = {}
   local function add(s) html[#html + 1] = s end
   local title = ('run %d%s'):format(r.run_id, r.name and (' · ' .. r.name) or '')
   add('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
   add('<meta name="viewport" content="width=device-width, initial-scale=1">')
   add('<title>' .. esc('ddpmlua ' .. title) .. '</title>\n<style>' .. CSS .. '</style></head><body>')
   add(('<h1>%s<span class="status %s">%s</span></h1>'):format(esc(title), esc(r.status), esc(r.status)))

   local argv = {}
   local okv, av = pcall(json.decode, r.argv_json or '[]')
   if okv and type(av) == 'table' then argv = av end
   local env = {}
   local oke, ev = pcall(json.decode, r.env_json or '{}')
   if oke and type(ev) == 'table' then env = ev end
   local stop = r.end_time or r.heartbeat
   local steps
   for _, m in ipairs(summary) do
      if not plot.is_per_t(m.key) then steps = math.max(steps or 0, m.last_step) end
   end
   add(kv_table{
      {'uuid', r.uuid},
      {'script', r.script_path and (r.script_path .. '  (sha256 ' .. r.script_sha256:sub(1, 12) .. ')')
                 or '(REPL or -e)'},
      {'command', #argv > 0 and table.concat(argv, ' ') or nil},
      {'experiment', r.experiment},
      {'seed', common.num(r.seed)},
      {'steps', steps and common.num(steps) or nil},
      {'started', os.date('%Y-%m-%d %H:%M:%S', math.floor(r.start_time))},
      {'duration', duration(stop and stop - r.start_time)},
      {'host', r.host and (r.host .. (env.threads and ('  ·  ' .. env.threads .. ' threads') or ''))},
      {'git', r.git_commit and (r.git_commit:sub(1, 12) .. (r.git_dirty == 1 and ' (dirty)' or ''))},
      {'version', r.version},
      {'parent', r.parent_run_id and ('run ' .. common.num(r.parent_run_id))},
   })
   if r.error_text and r.error_text ~= '' then
      add('<h2>Error</h2><pre class="error">' .. esc(r.error_text) .. '</pre>')
   end
   return table.concat(html, '\n')
end

-- The charts of specs as <img> tags (a note for one that could not be
-- drawn); page.charts counts them, up to MAX_CHARTS per page.
local function charts(page, list)
   local parts = {}
   for _, spec in ipairs(list) do
      if page.charts >= MAX_CHARTS then break end
      local ok, png, w, h = pcall(draw, page.rl, page.id, spec, page.dir, page.charts + 1, page.opt)
      if ok and png then
         page.charts = page.charts + 1
         parts[#parts + 1] = ('<img src="%s" width="%d" height="%d" alt="%s">'):format(
            png_uri(png), w, h, esc(spec.title))
      else
         parts[#parts + 1] = ('<p class="note">%s: no chart (%s)</p>'):format(esc(spec.title),
            esc(tostring(png):gsub('^[^\n:]*:%d+: ', '')))
      end
   end
   return table.concat(parts, '\n')
end

local function curves(page, specs)
   if #specs == 0 then return '<h2>Curves</h2>\n<p class="note">No metric with two or more points.</p>' end
   return '<h2>Curves</h2>\n<div class="charts">' .. charts(page, specs) .. '</div>'
end

-- The last MAX_GRIDS sample grids, embedded at an integer scale.
local function samples(page)
   local common = require 'ddpm.cmd.common'
   local arts = page.rl:query("SELECT step, kind, path, meta_json FROM artifacts WHERE run_id = :id " ..
                              "AND kind IN ('sample_grid', 'progression', 'samples') ORDER BY step, artifact_id",
                              {id = page.id})
   local html = {'<h2>Samples</h2>'}
   local function add(s) html[#html + 1] = s end
   if #arts == 0 then
      add('<p class="note">The run logged no sample grid.</p>')
      return table.concat(html, '\n')
   end
   local first = math.max(1, #arts - MAX_GRIDS + 1)
   if first > 1 then
      add(('<p class="note">The last %d of %d images.</p>'):format(MAX_GRIDS, #arts))
   end
   add('<div class="grids">')
   for i = first, #arts do
      local a = arts[i]
      local s, why = read_file(a.path, MAX_IMAGE_BYTES)
      local w, h = png_size(s)
      local cap = ('%s%s'):format(a.kind:gsub('_', ' '), a.step and (' · step ' .. common.num(a.step)) or '')
      if w then
         local scale = math.max(1, math.floor(360 / math.max(w, 1)))
         if w * scale > 960 then scale = 1 end
         page.images = page.images + 1
         add(('<figure><img class="px" src="%s" width="%d" height="%d" alt="%s"><figcaption>%s' ..
              '</figcaption></figure>'):format(png_uri(s), w * scale, h * scale, esc(cap), esc(cap)))
      else
         add(('<p class="note">%s: %s (%s)</p>'):format(esc(cap), esc(a.path),
                                                        esc(s and 'not a PNG' or why)))
      end
   end
   add('</div>')
   return table.concat(html, '\n')
end

-- The likelihood bound's terms per t: the bits/dim and their charts.
local function per_t(page, summary, t_specs)
   local html = {'<h2>Per-t terms</h2>'}
   local bpd = {}
   for _, m in ipairs(summary) do
      if m.key:match('^nll.*_bpd$') or m.key:match('^nll.*_prior$') then
         bpd[#bpd + 1] = {m.key, fmt(m.last), m.last_step}
      end
   end
   if #bpd > 0 then html[#html + 1] = data_table({'metric', 'bits/dim', 'at step'}, bpd, {false, true, true}) end
   html[#html + 1] = '<div class="charts">' .. charts(page, t_specs) .. '</div>'
   return table.concat(html, '\n')
end

local function config(r)
   local cfg = require('ddpm.cmd.common').flatten_config(r.config_json)
   local keys = util.sorted_keys(cfg)
   if #keys == 0 then return '<h2>Config</h2>\n<p class="note">Empty.</p>' end
   local rows = {}
   for i, k in ipairs(keys) do rows[i] = {k, cfg[k]} end
   return '<h2>Config</h2>\n' .. data_table({'key', 'value'}, rows)
end

local function metrics(summary)
   if #summary == 0 then return '<h2>Metrics</h2>\n<p class="note">None logged.</p>' end
   local num = require('ddpm.cmd.common').num
   local rows = {}
   for i, m in ipairs(summary) do
      rows[i] = {m.key, m.points, num(m.first_step) .. '..' .. num(m.last_step),
                 fmt(m.first), fmt(m.last), fmt(m.min), fmt(m.max), m.nan > 0 and m.nan or ''}
   end
   return '<h2>Metrics</h2>\n' .. data_table({'metric', 'points', 'steps', 'first', 'last', 'min', 'max', 'nan'},
                                             rows, {false, true, true, true, true, true, true, true})
end

-- Checkpoints, the script and the footer.
local function tail(page, r)
   local html = {}
   local cks = page.rl:query('SELECT step, bytes, sha256, path FROM checkpoints WHERE run_id = :id ORDER BY step',
                             {id = page.id})
   if #cks > 0 then
      html[#html + 1] = '<h2>Checkpoints</h2>'
      local rows = {}
      for i, c in ipairs(cks) do rows[i] = {c.step, c.bytes, c.sha256:sub(1, 16), c.path} end
      html[#html + 1] = data_table({'step', 'bytes', 'sha256', 'path'}, rows, {true, true})
   end
   if r.script_text and r.script_text ~= '' then
      html[#html + 1] = '<h2>Script</h2><details><summary>' .. esc(r.script_path or 'script') .. ' (' ..
                        #r.script_text .. ' bytes)</summary><pre>' .. esc(r.script_text) .. '</pre></details>'
   end
   html[#html + 1] = ('<footer>ddpmlua report · %s · %s</footer>\n</body></html>\n'):format(
      esc(os.date('%Y-%m-%d %H:%M')), esc(page.rl:path()))
   return table.concat(html, '\n')
end

local function write_page(path, page)
   local f, err = io.open(path, 'wb')
   if not f then error('cannot write ' .. tostring(err), 0) end
   local ok, werr = f:write(page)
   local ok2, cerr = f:close()
   if not ok or not ok2 then error(('cannot write %s: %s'):format(path, tostring(werr or cerr)), 0) end
end

---------------------------------------------------------------- the page

--- report.write{rl=, run=, out=, smooth=, logy=} -> {bytes, charts, images}
function report.write(opt)
   local rl, id = opt.rl, opt.run
   local r = rl:query('SELECT * FROM runs WHERE run_id = :id', {id = id})[1]
   if not r then error(('no run %s'):format(tostring(id)), 0) end
   local summary = require('ddpm.cmd.common').metric_summary(rl, id)
   local dir = os.tmpname()   -- the charts are drawn here, read back and removed
   os.remove(dir)
   if not os.execute('mkdir -p ' .. util.shell_quote(dir)) then
      error('cannot make a temporary directory ' .. dir, 0)
   end
   local page = {rl = rl, id = id, dir = dir, opt = opt, charts = 0, images = 0}
   local specs, t_specs = chart_specs(summary)
   local html = {head(r, summary), curves(page, specs), samples(page)}
   if #t_specs > 0 then html[#html + 1] = per_t(page, summary, t_specs) end
   html[#html + 1] = config(r)
   html[#html + 1] = metrics(summary)
   html[#html + 1] = tail(page, r)
   os.execute('rmdir ' .. util.shell_quote(dir) .. ' 2>/dev/null')
   local text = table.concat(html, '\n')
   write_page(opt.out, text)
   return {bytes = #text, charts = page.charts, images = page.images}
end

return report
