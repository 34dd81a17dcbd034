"""Writes a U-Net test fixture: random weights, inputs, the float64 forward
output and the gradients of L = sum(y * r), all in one safetensors file (F32).

   /usr/bin/python3 scripts/make_fixtures.py --config small --batch 2 --seed 1 \
       --out tests/fixtures/unet_small.safetensors [--no-grad] [--attn-names old]

Contents (names as stored):
   <param>            every parameter under its diffusers UNet2DModel name
                      (query/key/value/proj_attn for attention with --attn-names old)
   input.x            [N, in_ch, res, res]  ~ N(0, 1)
   input.t            [N]  integer timesteps in [0, 1000), as floats
   input.r            [N, out_ch, res, res] ~ N(0, 1), the loss weights   (not with --no-grad)
   output.y           [N, out_ch, res, res] = model(x, t), eval mode (no dropout)
   grad.x             dL/dx                                                 (not with --no-grad)
   grad.<param>       dL/dparam, always under the to_q/to_k/to_v/to_out.0 names (not with --no-grad)
   __metadata__       config keys (ch, ch_mult, num_res_blocks, attn_resolutions, dropout,
                      in_ch, out_ch, resolution) with JSON-encoded values, plus groups, eps,
                      seed, batch, attn_names, grads, compute.

Weights are drawn in float32 and the model then runs in float64, so the file
holds exactly the weights used; only outputs and gradients are rounded to F32.
Every weight is non-zero-ish on purpose (unlike the official zero-ish init of
conv2, proj_out and conv_out) so that every parameter affects the result.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_unet      # noqa: E402


def fill_random(model, g):
   """Weights ~ N(0, 1/fan_in); GroupNorm gamma = 1 + 0.1 N(0,1); biases and beta 0.1 N(0,1)."""
   with torch.no_grad():
      for name, p in model.named_parameters():
         z = torch.randn(p.shape, generator=g, dtype=torch.float32)
         if name.endswith(".bias"):
            p.copy_(0.1 * z)
         elif p.dim() == 1:                    # GroupNorm gamma
            p.copy_(1.0 + 0.1 * z)
         else:                                 # Linear (out, in) or conv (out, in, kh, kw)
            fan_in = p[0].numel()
            p.copy_(z / math.sqrt(fan_in))


def main():
   ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
   ap.add_argument("--config", choices=sorted(torch_unet.CONFIGS), default="small")
   ap.add_argument("--batch", type=int, default=2)
   ap.add_argument("--seed", type=int, default=1)
   ap.add_argument("--out", required=True)
   ap.add_argument("--no-grad", action="store_true", help="forward only: no input.r, no grad.*")
   ap.add_argument("--attn-names", choices=("new", "old"), default="new",
                   help="old: attention tensors as query/key/value/proj_attn")
   ap.add_argument("--threads", type=int, default=2)
   args = ap.parse_args()
   torch.set_num_threads(args.threads)
   t0 = time.time()

   model = torch_unet.build(args.config)
   cfg = model.config
   g = torch.Generator().manual_seed(args.seed)
   fill_random(model, g)
   params32 = [(n, p.detach().clone()) for n, p in model.named_parameters()]

   N, res = args.batch, cfg["resolution"]
   x = torch.randn(N, cfg["in_ch"], res, res, generator=g, dtype=torch.float32)
   t = torch.randint(0, 1000, (N,), generator=g).to(torch.float32)
   r = torch.randn(N, cfg["out_ch"], res, res, generator=g, dtype=torch.float32)

   model = model.double().eval()
   xd = x.double().requires_grad_(not args.no_grad)
   with torch.set_grad_enabled(not args.no_grad):
      y = model(xd, t.double())
      if not args.no_grad:
         (y * r.double()).sum().backward()
   t_compute = time.time() - t0

   rename = torch_unet.old_attn_name if args.attn_names == "old" else (lambda s: s)
   tensors = [(rename(n), p) for n, p in params32]
   tensors += [("input.x", x), ("input.t", t)]
   if not args.no_grad:
      tensors.append(("input.r", r))
   tensors.append(("output.y", y.detach()))
   if not args.no_grad:
      tensors.append(("grad.x", xd.grad))
      tensors += [("grad." + n, p.grad) for n, p in model.named_parameters()]
   tensors = [(n, v.detach().cpu().numpy()) for n, v in tensors]

   meta = {k: json.dumps(v) for k, v in cfg.items()}
   meta.update(groups=json.dumps(torch_unet.GROUPS), eps=json.dumps(torch_unet.EPS),
               seed=str(args.seed), batch=str(N), attn_names=args.attn_names,
               grads="0" if args.no_grad else "1", compute="float64")
   out_dir = os.path.dirname(os.path.abspath(args.out))
   os.makedirs(out_dir, exist_ok=True)
   size = safetensors_io.write(args.out, tensors, meta)

   yd = y.detach()
   print("%s: config %s batch %d seed %d, %d tensors, %.1f MB; |y| mean %.3g max %.3g; "
         "compute %.2f s, total %.2f s"
         % (args.out, args.config, N, args.seed, len(tensors), size / 1e6,
            yd.abs().mean().item(), yd.abs().max().item(), t_compute, time.time() - t0))


if __name__ == "__main__":
   main()
