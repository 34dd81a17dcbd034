#!/usr/bin/env bash
# tests/test_crash.sh — crash consistency of a training run. A short run of a
# tiny U-Net on synthetic 8x8 images is killed with SIGKILL at 20 random
# moments, aimed in turn at the middle of a step, at a checkpoint being
# written, at the metric buffer being committed and at the moment a
# checkpoint file is in place but not yet in runs.db (the run script prints a
# marker as each begins and ends, so every kill is classified by where it
# really landed). After each kill:
#   * PRAGMA integrity_check of runs.db is ok;
#   * `ddpmlua show` reports the run as crashed at once;
#   * every ckpt-*.safetensors visible under its final name loads in full
#     (a checkpoint cut short exists only as a temp file);
#   * resuming from the newest of them ends bit for bit where an
#     uninterrupted run ends (parameters, EMA, Adam moments);
#   * every metric of every step up to that checkpoint is in runs.db;
#   * after the resume no temp file of the killed writer is left in its
#     folder (the resume removes them).
# CRASH_SEED=n repeats a sequence of kill moments (the seed is printed).
# Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DDPMLUA_NUM_THREADS=1 DDPMLUA_HISTORY=
unset DDPMLUA_DB DDPMLUA_PARENT_RUN

cat >"$tmp/train.lua" <<'EOF'
-- arg: db, resume ('-' or a checkpoint), out (state file), idx, ref ('-' or state file)
local ddpm = require 'ddpm'
local core = ddpm.core
local checkpoint = require 'ddpm.checkpoint'
io.stdout:setvbuf('no')
local db, resume, out, idx, ref = arg[1], arg[2], arg[3], arg[4], arg[5]
local STEPS, AUX = 24, 200
-- markers around the two writes the kills aim at
local save = checkpoint.save
checkpoint.save = function(...) io.stdout:write('CKPT-BEGIN\n'); save(...); io.stdout:write('CKPT-END\n') end
local record = ddpm.log.Run.checkpoint
ddpm.log.Run.checkpoint = function(...) record(...); io.stdout:write('ROW-END\n') end
local flush = ddpm.log.Run.flush
ddpm.log.Run.flush = function(self)
   io.stdout:write('FLUSH-BEGIN\n'); flush(self); io.stdout:write('FLUSH-END\n')
end
if resume ~= '-' then
   -- every checkpoint visible under its final name loads in full
   local dir = resume:match('^(.*)/[^/]*$')
   local p = io.popen('ls -1 ' .. dir)
   local n = 0
   for name in p:lines() do
      local step = name:match('^ckpt%-(%d+)%.safetensors$')
      if step then
         local ok, t, meta = pcall(core.load_safetensors, dir .. '/' .. name)
         if not ok or tonumber(meta.step) ~= tonumber(step) then
            print('CKPT-BAD ' .. name .. ' ' .. tostring(t)); os.exit(3)
         end
         n = n + 1
      end
   end
   p:close()
   print('CKPTS-OK ' .. n)
end
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0.1, in_ch = 1, out_ch = 1, resolution = 8, seed = 1}
local run = ddpm.log.start{db = db, name = 'crash', config = {steps = STEPS}, seed = 7}
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 40}, data = core.dataset_idx(idx),
   steps = STEPS, batch = 8, lr = 1e-3, warmup = 3, ema_decay = 0.9, seed = 7, flip = true,
   run = run, progress = false, sample_n = 0, checkpoint_every = 2, keep_checkpoints = 2,
   resume = resume ~= '-' and resume or nil,
   on_step = function(step)
      for i = 1, AUX do run:metric(step, 'aux' .. i, step + i) end
      io.stdout:write('STEP ' .. step .. '\n')
   end}
local st = {params = m:flat_params(), ema = r.ema:flat_params(), m = r.adam:m(), v = r.adam:v()}
core.save_safetensors(out, st)
if ref ~= '-' then
   local want = core.load_safetensors(ref)
   for _, k in ipairs{'params', 'ema', 'm', 'v'} do
      if not want[k]:equal(st[k]) then print('BITEXACT no ' .. k); os.exit(4) end
   end
   print('BITEXACT yes')
end
print('DONE ' .. run.id)
EOF

python3 - "$D" "$tmp" <<'EOF'
import os, random, re, signal, sqlite3, subprocess, sys, time

exe, tmp = sys.argv[1], sys.argv[2]
seed = int(os.environ.get('CRASH_SEED') or int(time.time()) % 100000)
rng = random.Random(seed)
print('# CRASH_SEED=%d' % seed)
STEPS, EVERY, AUX, KILLS = 24, 2, 200, 20

# 64 images 8x8, a bright 2x2 square at one of four places, as IDX
idx = os.path.join(tmp, 'synthetic-idx3-ubyte')
with open(idx, 'wb') as f:
    f.write(b'\0\0\x08\x03' + (64).to_bytes(4, 'big') + (8).to_bytes(4, 'big') * 2)
    for n in range(64):
        oy, ox = (1 if n % 4 < 2 else 5), (1 if n % 2 == 0 else 5)
        f.write(bytes(255 if oy <= y < oy + 2 and ox <= x < ox + 2 else 0
                      for y in range(8) for x in range(8)))

count, failed = 0, 0
def result(ok, what, why=''):
    global count, failed
    count += 1
    if not ok: failed += 1
    print('%s %d - %s' % ('ok' if ok else 'not ok', count, what))
    if not ok:
        for l in str(why).splitlines()[-25:]: print('#   ' + l)

def run(*args):
    p = subprocess.run([exe, os.path.join(tmp, 'train.lua')] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout

ref = os.path.join(tmp, 'ref.st')
rc, out = run(os.path.join(tmp, 'ref.db'), '-', ref, idx, '-')
result(rc == 0, 'an uninterrupted run of %d steps' % STEPS, out)
if rc != 0:
    print('%d passed, %d failed' % (count - failed, failed)); sys.exit(1)

db = os.path.join(tmp, 'runs.db')
targets = ['step', 'checkpoint', 'flush', 'checkpoint row']
landed = {t: 0 for t in targets}
in_tmp = 0
for k in range(KILLS):
    target = targets[k % 4]
    if target == 'step':
        # after an odd step comes the next step's work, not a checkpoint
        mark, nth = 'STEP %d' % (2 * rng.randint(1, STEPS // 2 - 2) + 1), 1
    elif target == 'checkpoint':
        mark, nth = 'CKPT-BEGIN', rng.randint(2, STEPS // EVERY - 1)
    elif target == 'flush':
        mark, nth = 'FLUSH-BEGIN', rng.randint(2, STEPS // EVERY - 1)
    else:
        mark, nth = 'CKPT-END', rng.randint(2, STEPS // EVERY - 1)
    delay = rng.uniform(0, {'step': 0.001, 'checkpoint': 0.004, 'flush': 0.0003}.get(target, 0.001))
    p = subprocess.Popen([exe, os.path.join(tmp, 'train.lua'), db, '-', os.path.join(tmp, 'x.st'),
                          idx, '-'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         bufsize=1)
    lines, seen = [], 0
    for line in p.stdout:
        lines.append(line.strip())
        if line.strip() == mark:
            seen += 1
            if seen == nth:
                time.sleep(delay)
                os.kill(p.pid, signal.SIGKILL)
                break
    lines += [l.strip() for l in p.stdout]
    p.wait()
    what = 'kill %d (aimed at %s: %s #%d + %.1f ms)' % (k + 1, target, mark, nth, delay * 1000)
    if p.returncode != -signal.SIGKILL:
        result(False, what, 'the run ended before the kill (exit %s)' % p.returncode)
        continue
    last = [l for l in lines if l.endswith(('-BEGIN', '-END')) or l.startswith('STEP')]
    # ROW-END: the checkpoint's row is in runs.db; the kill came later
    where = {'CKPT-BEGIN': 'checkpoint', 'FLUSH-BEGIN': 'flush', 'CKPT-END': 'checkpoint row'}.get(last[-1] if last else '', 'step')
    landed[where] += 1
    why = []
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    ic = con.execute('PRAGMA integrity_check').fetchall()
    if ic != [('ok',)]: why.append('integrity_check: %r' % ic)
    run_id, rdir = con.execute('SELECT max(run_id), NULL FROM runs').fetchone()
    uuid = con.execute('SELECT uuid FROM runs WHERE run_id = ?', (run_id,)).fetchone()[0]
    rdir = os.path.join(tmp, 'runs', uuid)
    shown = subprocess.run([exe, 'show', str(run_id), '--db', db], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True).stdout
    if not re.search(r'^status\s+crashed', shown, re.M):
        why.append('ddpmlua show does not say crashed:\n' + shown)
    names = sorted(os.listdir(rdir))
    ckpts = [n for n in names if re.fullmatch(r'ckpt-\d{8}\.safetensors', n)]
    if any('.tmp.' in n for n in names): in_tmp += 1
    if not ckpts:
        why.append('no checkpoint in %s: %r' % (rdir, names))
    else:
        c = int(ckpts[-1][5:13])
        recorded = con.execute('SELECT max(step) FROM checkpoints WHERE run_id = ?', (run_id,)).fetchone()[0]
        if recorded is None or not (c - EVERY <= recorded <= c):
            why.append('checkpoints table says step %r, the newest file is step %d' % (recorded, c))
        nloss = con.execute("SELECT count(DISTINCT step) FROM metrics_v WHERE run_id = ? AND key = 'loss'"
                            " AND step <= ?", (run_id, c)).fetchone()[0]
        naux = con.execute("SELECT count(*) FROM metrics_v WHERE run_id = ? AND key LIKE 'aux%' AND"
                           " step <= ?", (run_id, c)).fetchone()[0]
        if nloss != c or naux != AUX * c:
            why.append('metrics up to step %d: %d loss rows (want %d), %d aux rows (want %d)'
                       % (c, nloss, c, naux, AUX * c))
        con.close()
        rc, out = run(db, os.path.join(rdir, ckpts[-1]), os.path.join(tmp, 'y.st'), idx, ref)
        if rc != 0 or 'BITEXACT yes' not in out or 'CKPTS-OK' not in out:
            why.append('resume from %s: exit %d\n%s' % (ckpts[-1], rc, out))
        left = [n for n in os.listdir(rdir) if '.tmp.' in n]
        if left: why.append('temp files of the killed run left after its resume: %r' % left)
        what += ', landed in %s, resumed from step %d' % (where, c)
    result(not why, what, '\n'.join(why))

print('# kills landed: %s; %d left a temp checkpoint behind (a write cut short)' %
      (', '.join('%s %d' % (t, landed[t]) for t in targets), in_tmp))
for t in targets:
    result(landed[t] >= 1, 'at least one kill landed in a %s' % t, 'landed: %r' % landed)
print('%d passed, %d failed' % (count - failed, failed))
sys.exit(1 if failed else 0)
EOF
