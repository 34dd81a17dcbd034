--[[
ddpm.progress — step/total, rate, ETA and loss for long loops, on stderr.

On a terminal (and CI unset, TERM not dumb): one line redrawn at most every
0.2 s. Otherwise: a plain line every `interval` seconds (30 by default,
DDPMLUA_PROGRESS_INTERVAL) plus the first and the last. DDPMLUA_PROGRESS=0/1
forces it off/on. Under mpirun only rank 0 shows it.

   local p = progress.new{total = 1000, label = 'train'}
   p:update(step, {loss = 0.031, lr = 2e-4})
   p:finish()
]]
local core = require 'ddpm.core'

local progress = {}
progress.__index = progress

local function fmt_time(s)
   if s ~= s or s == math.huge or s < 0 then return '--:--' end
   s = math.floor(s + 0.5)
   local h, m = math.floor(s / 3600), math.floor(s / 60) % 60
   if h > 0 then return ('%d:%02d:%02d'):format(h, m, s % 60) end
   return ('%02d:%02d'):format(m, s % 60)
end
progress.fmt_time = fmt_time

local function mode()
   local force = os.getenv('DDPMLUA_PROGRESS')
   if force == '0' then return 'off' end
   if core.dist_rank() ~= 0 then return 'off' end   -- under mpirun rank 0 reports
   local tty = core.isatty(2) and os.getenv('TERM') ~= 'dumb' and not os.getenv('CI')
   if force == '1' then return tty and 'tty' or 'plain' end
   return tty and 'tty' or 'plain'
end

function progress.new(opt)
   local self = setmetatable({}, progress)
   self.total = opt.total or 0
   self.label = opt.label or 'progress'
   self.start_step = opt.start or 0
   self.mode = opt.mode or mode()
   self.interval = opt.interval or tonumber(os.getenv('DDPMLUA_PROGRESS_INTERVAL') or '') or 30
   self.t0 = core.time()
   self.time_limit = opt.time_limit   -- seconds: a time-bounded loop (ETA from the clock)
   self.last_draw = -math.huge
   self.rate = nil
   self.last_t, self.last_step = self.t0, self.start_step
   return self
end

local function fmt_fields(fields)
   if not fields then return '' end
   local keys = {}
   for k in pairs(fields) do keys[#keys + 1] = k end
   table.sort(keys)
   local out = {}
   for _, k in ipairs(keys) do
      local v = fields[k]
      if type(v) == 'number' then
         v = (math.abs(v) >= 1e-3 and math.abs(v) < 1e4 or v == 0) and ('%.4f'):format(v) or ('%.3e'):format(v)
      end
      out[#out + 1] = k .. ' ' .. tostring(v)
   end
   return '  ' .. table.concat(out, '  ')
end

function progress:line(step, fields)
   local now = core.time()
   local done = step - self.start_step
   local elapsed = now - self.t0
   local rate = self.rate or (elapsed > 0 and done / elapsed or 0)
   local eta = rate > 0 and (self.total - step) / rate or math.huge
   local pct = self.total > 0 and 100 * step / self.total or 0
   if self.time_limit then
      local left = math.max(self.time_limit - elapsed, 0)
      if left < eta then
         eta = left
         pct = math.min(100 * elapsed / self.time_limit, 100)
         local r = rate >= 1 and ('%.2f it/s'):format(rate) or (rate > 0 and ('%.2f s/it'):format(1 / rate) or '-- it/s')
         return ('%s %d [%3d%% of %s] %s  %s<%s%s'):format(self.label, step, math.floor(pct),
            fmt_time(self.time_limit), r, fmt_time(elapsed), fmt_time(eta), fmt_fields(fields))
      end
   end
   local r = rate >= 1 and ('%.2f it/s'):format(rate) or (rate > 0 and ('%.2f s/it'):format(1 / rate) or '-- it/s')
   return ('%s %d/%d [%3d%%] %s  %s<%s%s'):format(self.label, step, self.total, math.floor(pct),
      r, fmt_time(elapsed), fmt_time(eta), fmt_fields(fields))
end

function progress:update(step, fields, force)
   if self.mode == 'off' then return end
   local now = core.time()
   -- exponentially smoothed rate (tqdm's 0.3)
   if now > self.last_t and step > self.last_step then
      local inst = (step - self.last_step) / (now - self.last_t)
      self.rate = self.rate and (0.3 * inst + 0.7 * self.rate) or inst
      self.last_t, self.last_step = now, step
   end
   if self.mode == 'tty' then
      if force or now - self.last_draw >= 0.2 or step >= self.total then
         local text = self:line(step, fields)
         local width = core.term_width(2) or 120
         if #text > width - 1 then text = text:sub(1, width - 1) end
         io.stderr:write('\r', text, '\27[K')
         io.stderr:flush()
         self.last_draw = now
      end
   else
      if force or self.last_draw == -math.huge or now - self.last_draw >= self.interval then
         io.stderr:write(os.date('[%Y-%m-%d %H:%M:%S] '), self:line(step, fields), '\n')
         io.stderr:flush()
         self.last_draw = now
      end
   end
   self.last_fields = fields
   self.last_step_seen = step
end

function progress:finish(fields)
   if self.mode == 'off' then return end
   local step = self.last_step_seen or self.total
   if self.mode == 'tty' then
      self:update(step, fields or self.last_fields, true)
      io.stderr:write('\n')
   else
      io.stderr:write(os.date('[%Y-%m-%d %H:%M:%S] '), self:line(step, fields or self.last_fields), '\n')
   end
   io.stderr:flush()
end

return progress
