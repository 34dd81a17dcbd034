"""Self-test of the PyTorch reference U-Net (torch_unet.py), the safetensors
helpers and the fixture generator, without the C runtime: hand-computed small
cases, naive loops, the parameter counts of docs/math.md §6.6 and §8, the time embedding
(§6.2) and the downsampling padding (§6.5).

   /usr/bin/python3 scripts/torch_unet_selftest.py

Prints "ok N - ..." / "not ok N - ..." lines, then "N passed, N failed";
exits 1 on any failure.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import torch_unet as tu  # noqa: E402

torch.set_num_threads(2)
torch.set_default_dtype(torch.float64)
_n = [0, 0]   # passed, failed


def check(cond, desc, detail=""):
   k = _n[0] + _n[1] + 1
   if cond:
      _n[0] += 1
      print("ok %d - %s" % (k, desc))
   else:
      _n[1] += 1
      print("not ok %d - %s%s" % (k, desc, "  # " + detail if detail else ""))


def maxdiff(a, b):
   return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()


# ---------------------------------------------------------------- timestep embedding

def test_embedding():
   e0 = tu.timestep_embedding(torch.tensor([0.0]), 128)[0]
   check(e0.shape == (128,) and bool((e0[:64] == 0).all()) and bool((e0[64:] == 1).all()),
         "embedding t=0: first 64 values 0, last 64 values 1 (docs/math.md §6.2)")
   e1 = tu.timestep_embedding(torch.tensor([1.0]), 128)[0]
   want = [math.sin(math.exp(-math.log(10000.0) * i / 63)) for i in range(64)] + \
          [math.cos(math.exp(-math.log(10000.0) * i / 63)) for i in range(64)]
   check(maxdiff(e1, want) < 1e-14 and abs(e1[0] - math.sin(1.0)) < 1e-15
         and abs(e1[1] - math.sin(math.exp(-math.log(1e4) / 63))) < 1e-15,
         "embedding t=1: sin(1), sin(exp(-ln(1e4)/63)), ... then cos (docs/math.md §6.2)")
   e = tu.timestep_embedding(torch.tensor([999.0, 10.0]), 128)
   check(abs(e[0, 63] - math.sin(999 * 1e-4)) < 1e-12 and abs(e[1, 127] - math.cos(10 * 1e-4)) < 1e-12,
         "embedding: last frequency is 1/10000 (divisor half-1 = 63)")
   e5 = tu.timestep_embedding(torch.tensor([3.0]), 5)[0]   # half = 2, odd dim zero-padded
   want5 = [math.sin(3.0), math.sin(3.0 * 1e-4), math.cos(3.0), math.cos(3.0 * 1e-4), 0.0]
   check(maxdiff(e5, want5) < 1e-14, "embedding: odd dim padded with one zero at the end")


# ---------------------------------------------------------------- group norm

def test_groupnorm():
   gn = tu.group_norm(64)
   check(gn.num_groups == 32 and gn.eps == 1e-6, "GroupNorm: 32 groups, eps 1e-6")
   x = torch.zeros(1, 64, 2, 2)
   x[0, 0], x[0, 1] = 1.0, 3.0          # group 0: mean 2, var 1
   x[0, 3] = 2e-3                       # group 1: values 0 and 2e-3, var 1e-6 (eps matters)
   x[0, 4, 0, 0] = 4.0                  # group 2: [4,0,0,0, 0,0,0,0]: mean .5, var 1.75
   with torch.no_grad():
      gn.weight.fill_(2.0)
      gn.bias.fill_(0.5)
   y = gn(x)
   g0 = 1 / math.sqrt(1 + 1e-6)
   g1 = 1e-3 / math.sqrt(1e-6 + 1e-6)   # = 0.70710...; eps 1e-5 would give 0.30
   g2 = 3.5 / math.sqrt(1.75 + 1e-6)
   ok = (abs(y[0, 0, 0, 0] - (-2 * g0 + 0.5)) < 1e-12 and abs(y[0, 1, 1, 1] - (2 * g0 + 0.5)) < 1e-12
         and abs(y[0, 2, 0, 0] - (-2 * g1 + 0.5)) < 1e-9 and abs(y[0, 3, 0, 0] - (2 * g1 + 0.5)) < 1e-9
         and abs(y[0, 4, 0, 0] - (2 * g2 + 0.5)) < 1e-12)
   check(ok, "GroupNorm hand cases (groups of 2 channels, biased variance, eps 1e-6)",
         "got %s" % y[0, :5, 0, 0].tolist())
   check(bool((y[0, 6:] == 0.5).all()), "GroupNorm: constant group gives beta")


# ---------------------------------------------------------------- attention

def naive_attention(a, x):
   """Loops over positions; reads the weights of an AttnBlock."""
   N, C, H, W = x.shape
   P = H * W
   h = F.group_norm(x, 32, a.group_norm.weight, a.group_norm.bias, 1e-6).reshape(N, C, P)
   lin = lambda m, v: m.weight @ v + m.bias          # noqa: E731
   out = x.clone().reshape(N, C, P)
   for b in range(N):
      q = [lin(a.to_q, h[b, :, i]) for i in range(P)]
      k = [lin(a.to_k, h[b, :, j]) for j in range(P)]
      v = [lin(a.to_v, h[b, :, j]) for j in range(P)]
      for i in range(P):
         s = [float(q[i] @ k[j]) / math.sqrt(C) for j in range(P)]
         m = max(s)
         e = [math.exp(z - m) for z in s]
         o = sum(e[j] / sum(e) * v[j] for j in range(P))
         out[b, :, i] += lin(a.to_out[0], o)
   return out.reshape(N, C, H, W)


def test_attention():
   torch.manual_seed(3)
   a = tu.AttnBlock(32)
   with torch.no_grad():
      for p in a.parameters():
         p.copy_(torch.randn(p.shape) * (0.5 if p.dim() == 2 else 0.1))
      a.group_norm.weight.add_(1.0)
   x = torch.randn(2, 32, 3, 2)
   d = maxdiff(a(x), naive_attention(a, x))
   check(d < 1e-12, "attention equals a naive single-head loop (scale C^-0.5)", "max diff %g" % d)
   check(a.to_q.weight.shape == (32, 32) and a.to_out[0].weight.shape == (32, 32),
         "attention projections are 2-D Linear weights (out, in)")
   with torch.no_grad():
      a.to_q.weight.zero_()
      a.to_q.bias.zero_()               # q = 0 -> uniform attention
   h = F.group_norm(x, 32, a.group_norm.weight, a.group_norm.bias, 1e-6).reshape(2, 32, 6)
   vmean = (a.to_v.weight @ h + a.to_v.bias[:, None]).mean(dim=2)       # [N, C]
   want = x + (a.to_out[0].weight @ vmean.T + a.to_out[0].bias[:, None]).T[:, :, None, None]
   d = maxdiff(a(x), want)
   check(d < 1e-12, "attention with q = 0 averages v uniformly", "max diff %g" % d)


# ---------------------------------------------------------------- resnet block

def test_resnet():
   torch.manual_seed(4)
   r = tu.ResnetBlock(32, 64, 16, dropout=0.0)
   with torch.no_grad():
      for p in r.parameters():
         p.copy_(torch.randn(p.shape) * 0.3)
   x, temb = torch.randn(2, 32, 4, 4), torch.randn(2, 16)
   gn = lambda v, m: F.group_norm(v, 32, m.weight, m.bias, 1e-6)   # noqa: E731
   h = F.conv2d(F.silu(gn(x, r.norm1)), r.conv1.weight, r.conv1.bias, padding=1)
   h = h + (F.silu(temb) @ r.time_emb_proj.weight.T + r.time_emb_proj.bias)[:, :, None, None]
   h = F.conv2d(F.silu(gn(h, r.norm2)), r.conv2.weight, r.conv2.bias, padding=1)
   want = F.conv2d(x, r.conv_shortcut.weight, r.conv_shortcut.bias) + h
   d = maxdiff(r(x, temb), want)
   check(d < 1e-12, "resnet block (32->64, 1x1 shortcut) equals the docs/math.md §6.3 formula", "max diff %g" % d)
   check(tu.ResnetBlock(64, 64, 16, 0.0).conv_shortcut is None, "no shortcut when channels match")
   r.dropout.p = 1.0                     # drops everything between norm2+SiLU and conv2
   r.train()
   want = F.conv2d(x, r.conv_shortcut.weight, r.conv_shortcut.bias) + r.conv2.bias[:, None, None]
   d = maxdiff(r(x, temb), want)
   check(d < 1e-12, "dropout sits after norm2+SiLU, before conv2 (p=1 leaves shortcut + conv2 bias)")


# ---------------------------------------------------------------- resampling

def test_resample():
   down = tu.Downsample(1)
   with torch.no_grad():
      down.conv.weight.fill_(1.0)
      down.conv.bias.zero_()
   y = down(torch.ones(1, 1, 32, 32))[0, 0]
   check(y.shape == (16, 16) and y[0, 0] == 9 and y[15, 15] == 4 and y[0, 15] == 6 and y[15, 0] == 6,
         "downsample all-ones 32x32: out[0][0]=9, out[15][15]=4, 16x16 (docs/math.md §6.5)",
         "shape %s, corners %s %s" % (tuple(y.shape), y[0, 0].item(), y[15, 15].item()))
   up = tu.Upsample(1)
   with torch.no_grad():
      up.conv.weight.zero_()
      up.conv.weight[0, 0, 1, 1] = 1.0   # identity kernel
      up.conv.bias.zero_()
   x = torch.arange(12.0).reshape(1, 1, 3, 4)
   y = up(x)[0, 0]
   ok = y.shape == (6, 8) and all(y[i, j] == x[0, 0, i // 2, j // 2] for i in range(6) for j in range(8))
   check(ok, "upsample is nearest pixel duplication then conv3x3")


# ---------------------------------------------------------------- sizes and names

# docs/math.md §6.6 and §8: (module prefix, tensors, params)
TABLE_93 = [
   ("time_embedding", 4, 328704), ("conv_in", 2, 3584),
   ("down_blocks.0.resnets.0", 10, 361344), ("down_blocks.0.resnets.1", 10, 361344),
   ("down_blocks.0.downsamplers.0.conv", 2, 147584),
   ("down_blocks.1.resnets.0", 12, 1050368), ("down_blocks.1.attentions.0", 10, 263680),
   ("down_blocks.1.resnets.1", 10, 1312512), ("down_blocks.1.attentions.1", 10, 263680),
   ("down_blocks.1.downsamplers.0.conv", 2, 590080),
   ("down_blocks.2.resnets.0", 10, 1312512), ("down_blocks.2.resnets.1", 10, 1312512),
   ("down_blocks.2.downsamplers.0.conv", 2, 590080),
   ("down_blocks.3.resnets.0", 10, 1312512), ("down_blocks.3.resnets.1", 10, 1312512),
   ("mid_block.resnets.0", 10, 1312512), ("mid_block.attentions.0", 10, 263680),
   ("mid_block.resnets.1", 10, 1312512),
] + [("up_blocks.%d.resnets.%d" % (k, j), 12, 2034176) for k in (0, 1) for j in range(3)] + [
   ("up_blocks.0.upsamplers.0.conv", 2, 590080), ("up_blocks.1.upsamplers.0.conv", 2, 590080),
   ("up_blocks.2.resnets.0", 12, 2034176), ("up_blocks.2.resnets.1", 12, 2034176),
   ("up_blocks.2.resnets.2", 12, 1706240),
] + [("up_blocks.2.attentions.%d" % j, 10, 263680) for j in range(3)] + [
   ("up_blocks.2.upsamplers.0.conv", 2, 590080),
   ("up_blocks.3.resnets.0", 12, 706048), ("up_blocks.3.resnets.1", 12, 541952),
   ("up_blocks.3.resnets.2", 12, 541952),
   ("conv_norm_out", 2, 256), ("conv_out", 2, 3459),
]


def test_sizes():
   torch.set_default_dtype(torch.float32)   # big models: keep them float32
   try:
      sizes()
   finally:
      torch.set_default_dtype(torch.float64)


def sizes():
   m = tu.build("cifar")
   n, k = tu.count(m)
   check((n, k) == (35746307, 328), "cifar: 35,746,307 parameters in 328 tensors", "%d in %d" % (n, k))
   sd = m.state_dict()
   bad = []
   covered = 0
   for prefix, tensors, params in TABLE_93:
      names = [s for s in sd if s.startswith(prefix + ".")]
      got = (len(names), sum(sd[s].numel() for s in names))
      covered += len(names)
      if got != (tensors, params):
         bad.append("%s %s" % (prefix, got))
   check(not bad and covered == 328, "every module of the key table (%d modules) matches" % len(TABLE_93),
         "; ".join(bad))
   sub = lambda ps: sum(v.numel() for s, v in sd.items() if s.startswith(ps))   # noqa: E731
   check(sub("time_embedding.") == 328704 and sub("conv_in.") + sub("down_blocks.") == 10194304
         and sub("mid_block.") == 2888704
         and sub("up_blocks.") + sub("conv_norm_out.") + sub("conv_out.") == 22334595,
         "docs/math.md §6.6 subtotals (temb, down, mid, up)")
   check(sum(s.endswith("conv_shortcut.weight") for s in sd) == 13
         and sum(s.endswith("to_q.weight") for s in sd) == 6,
         "13 shortcuts, 6 attention blocks")
   shapes_ok = (tuple(sd["down_blocks.1.attentions.0.to_out.0.weight"].shape) == (256, 256)
                and tuple(sd["up_blocks.3.resnets.0.conv_shortcut.weight"].shape) == (128, 384, 1, 1)
                and tuple(sd["up_blocks.3.resnets.0.conv1.weight"].shape) == (128, 384, 3, 3)
                and tuple(sd["time_embedding.linear_1.weight"].shape) == (512, 128)
                and tuple(sd["conv_out.weight"].shape) == (3, 128, 3, 3)
                and "down_blocks.3.downsamplers.0.conv.weight" not in sd
                and "up_blocks.3.upsamplers.0.conv.weight" not in sd)
   check(shapes_ok, "key shapes: Linear (out,in), conv OIHW, no resampler at the ends")
   n6, _ = tu.count(tu.build("cifar", out_ch=6))
   check(n6 == 35749766, "cifar with out_ch 6: 35,749,766 parameters", str(n6))
   n256, _ = tu.count(tu.build("cifar", ch_mult=(1, 1, 2, 2, 4, 4), resolution=256, dropout=0.0))
   check(n256 == 113673219, "256x256 config (1,1,2,2,4,4): 113,673,219 parameters (docs/math.md §6.7)", str(n256))
   old = {tu.old_attn_name(s) for s in sd}
   check(len(old) == 328 and "mid_block.attentions.0.query.weight" in old
         and "up_blocks.2.attentions.2.proj_attn.bias" in old
         and "mid_block.attentions.0.group_norm.weight" in old
         and not any(".to_" in s for s in old) and "conv_out.weight" in old,
         "old attention names query/key/value/proj_attn, others unchanged")


# ---------------------------------------------------------------- wiring

def test_wiring():
   torch.manual_seed(5)
   m = tu.build("small").eval()
   seen = {}

   def grab(name, inputs=False):
      def hook(mod, inp, out):
         seen[name] = (inp[0] if inputs else out).detach()
      return hook
   m.conv_in.register_forward_hook(grab("conv_in"))
   m.down_blocks[-1].resnets[-1].register_forward_hook(grab("last_down"))
   m.mid_block.resnets[1].register_forward_hook(grab("mid"))
   m.up_blocks[0].resnets[0].register_forward_hook(grab("up0_in", True))
   m.up_blocks[-1].resnets[-1].register_forward_hook(grab("upL_in", True))
   m.down_blocks[1].attentions[0].register_forward_hook(grab("attn8_in", True))
   x, t = torch.randn(2, 3, 16, 16), torch.tensor([5.0, 700.0])
   y = m(x, t)
   ok = (y.shape == (2, 3, 16, 16)
         and torch.equal(seen["up0_in"], torch.cat([seen["mid"], seen["last_down"]], 1))
         and torch.equal(seen["upL_in"][:, 32:], seen["conv_in"])
         and seen["attn8_in"].shape[-1] == 8)
   check(ok, "skips concatenated [hidden, skip]; last up block consumes conv_in; attention at 8x8")
   m2 = tu.build("small", dropout=0.5)
   m2.load_state_dict(m.state_dict())
   m2.eval()
   same = torch.equal(m2(x, t), y)
   m2.train()
   check(same and not torch.equal(m2(x, t), y), "eval mode disables dropout, train mode applies it")


# ---------------------------------------------------------------- safetensors and fixtures

def test_safetensors(tmp):
   path = os.path.join(tmp, "a.safetensors")
   a = np.arange(6, dtype=np.float32).reshape(2, 3)
   b = np.array([1.5], dtype=np.float32)
   safetensors_io.write(path, [("a", a), ("b.c", b)], {"k": "[1, 2]"})
   raw = open(path, "rb").read()
   (n,) = struct.unpack("<Q", raw[:8])
   hdr = json.loads(raw[8:8 + n])
   d, meta = safetensors_io.read(path)
   check(n % 8 == 0 and hdr["a"]["data_offsets"] == [0, 24] and hdr["b.c"]["data_offsets"] == [24, 28]
         and len(raw) == 8 + n + 28 and np.array_equal(d["a"], a) and np.array_equal(d["b.c"], b)
         and meta == {"k": "[1, 2]"} and hdr["a"]["dtype"] == "F32",
         "safetensors round trip: padded header, contiguous offsets, metadata")


def test_fixture(tmp):
   path, old = os.path.join(tmp, "f.safetensors"), os.path.join(tmp, "g.safetensors")
   gen = [sys.executable, os.path.join(HERE, "make_fixtures.py"), "--config", "small",
          "--batch", "2", "--seed", "7"]
   r1 = subprocess.run(gen + ["--out", path], capture_output=True, text=True)
   r2 = subprocess.run(gen + ["--out", old, "--attn-names", "old"], capture_output=True, text=True)
   if r1.returncode or r2.returncode:
      check(False, "make_fixtures.py runs", r1.stderr[-300:] + r2.stderr[-300:])
      return
   d, meta = safetensors_io.read(path)
   cfg = {k: json.loads(meta[k]) for k in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions",
                                           "dropout", "in_ch", "out_ch", "resolution")}
   m = tu.build(cfg).eval()
   names = [s for s, _ in m.named_parameters()]
   extra = {"input.x", "input.t", "input.r", "output.y", "grad.x"}
   check(set(d) == set(names) | {"grad." + s for s in names} | extra and cfg == tu.CONFIGS["small"] | {
         "ch_mult": [1, 2, 2], "attn_resolutions": [8]},
         "fixture holds every parameter, its gradient, inputs, output; config in metadata")
   t = d["input.t"]
   check(all(v == int(v) and 0 <= v < 1000 for v in t) and t.dtype == np.float32,
         "fixture timesteps are integers in [0, 1000) stored as F32")
   check(all(np.abs(d[s]).mean() > 0.01 for s in names)
         and all(abs(np.mean(d[s]) - 1) < 0.1 for s in names if "norm" in s and s.endswith("weight")),
         "fixture weights are non-zero, GroupNorm gammas near 1")
   with torch.no_grad():
      for s, p in m.named_parameters():
         p.copy_(torch.from_numpy(d[s].copy()))
   x = torch.from_numpy(d["input.x"].copy()).double().requires_grad_(True)
   rr = torch.from_numpy(d["input.r"].copy()).double()
   y = m(x, torch.from_numpy(t.copy()).double())
   dy = maxdiff(y, torch.from_numpy(d["output.y"].copy()))
   check(dy < 1e-5, "fixture output.y reproduced from the stored weights", "max diff %g" % dy)
   loss = lambda xx: (m(xx, torch.from_numpy(t.copy()).double()) * rr).sum()   # noqa: E731
   gx = d["grad.x"]
   ok, worst = True, 0.0
   for idx in [(0, 0, 0, 0), (1, 2, 15, 15), (0, 1, 7, 3), (1, 0, 8, 12)]:
      e = torch.zeros_like(x)
      e[idx] = 1e-5
      with torch.no_grad():
         fd = (loss(x + e) - loss(x - e)).item() / 2e-5
      err = abs(fd - gx[idx]) / max(1.0, abs(fd))
      worst = max(worst, err)
      ok = ok and err < 1e-5
   check(ok, "fixture grad.x agrees with central differences of L = sum(y*r)", "worst rel err %g" % worst)
   w = m.get_parameter("mid_block.attentions.0.to_q.weight")
   gw = d["grad.mid_block.attentions.0.to_q.weight"]
   with torch.no_grad():
      w0 = w[3, 5].item()
      w[3, 5] = w0 + 1e-5
      lp = loss(x).item()
      w[3, 5] = w0 - 1e-5
      lm = loss(x).item()
      w[3, 5] = w0
   fd = (lp - lm) / 2e-5
   check(abs(fd - gw[3, 5]) < 1e-5 * max(1.0, abs(fd)), "fixture parameter gradient agrees with central differences",
         "fd %g stored %g" % (fd, gw[3, 5]))
   o, ometa = safetensors_io.read(old)
   ren = {tu.old_attn_name(s): s for s in names}
   check(ometa["attn_names"] == "old" and "mid_block.attentions.0.proj_attn.weight" in o
         and all(np.array_equal(o[k], d[v]) for k, v in ren.items())
         and np.array_equal(o["output.y"], d["output.y"]) and "grad.mid_block.attentions.0.to_q.weight" in o,
         "--attn-names old: same values under query/key/value/proj_attn (grads keep new names)")


def main():
   test_embedding()
   test_groupnorm()
   test_attention()
   test_resnet()
   test_resample()
   test_sizes()
   test_wiring()
   with tempfile.TemporaryDirectory() as tmp:
      test_safetensors(tmp)
      test_fixture(tmp)
   print("%d passed, %d failed" % tuple(_n))
   sys.exit(1 if _n[1] else 0)


if __name__ == "__main__":
   main()
