"""Times the PyTorch reference U-Net in float32 on the CPU: the PyTorch column
of `make bench`. Not a training script; inputs and targets are random.

   /usr/bin/python3 scripts/bench_torch.py --config cifar --batch 8 --mode train --reps 5 --threads 2

forward: one sampling step, eval mode under torch.no_grad().
train:   one training step in train mode (the preset's dropout, 0.1 for cifar):
         forward, MSE against a random target, backward, torch.optim.Adam (lr 2e-4),
         and an EMA update (decay 0.9999) of a copy of the parameters.
--precision bf16: the forward (and in training the loss) under
         torch.autocast('cpu', dtype=torch.bfloat16), PyTorch's own mixed precision
         (bfloat16 convolutions and matrix products, float32 elsewhere; in training
         the backward follows the forward's types, the weights, Adam and the EMA stay
         float32): the comparison for ddpmlua's precision = 'bf16'.
One warm-up, then --reps timed repetitions. Prints one JSON line:
{"median_s", "times", "cpu_s" (median process CPU seconds per step, all threads),
"rss_mb" (peak resident set, getrusage), and the settings}.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402


def main():
   ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
   ap.add_argument("--config", choices=sorted(torch_unet.CONFIGS), default="cifar")
   ap.add_argument("--batch", type=int, default=1)
   ap.add_argument("--mode", choices=("forward", "train"), default="forward")
   ap.add_argument("--reps", type=int, default=3)
   ap.add_argument("--threads", type=int, default=2)
   ap.add_argument("--seed", type=int, default=0)
   ap.add_argument("--precision", choices=("float32", "bf16"), default="float32")
   args = ap.parse_args()
   torch.set_num_threads(args.threads)
   torch.manual_seed(args.seed)

   model = torch_unet.build(args.config)
   cfg = model.config
   N, res = args.batch, cfg["resolution"]
   x = torch.randn(N, cfg["in_ch"], res, res)
   t = torch.randint(0, 1000, (N,)).float()

   if args.precision == "bf16":
      # PyTorch 1.13's CPU autocast leaves group_norm out of its float32
      # list, and group_norm then refuses the bfloat16 convolution output
      # with float32 weights; later PyTorch versions run it in float32,
      # which is what this does.
      def group_norm_f32(self, x):
         return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)
      torch.nn.GroupNorm.forward = group_norm_f32

   if args.mode == "forward":
      model.eval()

      if args.precision == "bf16":
         def step():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
               model(x, t)
      else:
         def step():
            with torch.no_grad():
               model(x, t)
   else:
      model.train()
      target = torch.randn(N, cfg["out_ch"], res, res)
      params = list(model.parameters())
      opt = torch.optim.Adam(params, lr=2e-4)
      ema = [p.detach().clone() for p in params]
      decay = 0.9999

      def step():
         opt.zero_grad(set_to_none=True)
         with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = model(x, t)
         loss = F.mse_loss(out.float(), target)
         loss.backward()
         opt.step()
         with torch.no_grad():
            for e, p in zip(ema, params):
               e.mul_(decay).add_(p, alpha=1.0 - decay)

   step()                                   # warm-up
   times, cpu = [], []
   for _ in range(args.reps):
      t0, c0 = time.perf_counter(), time.process_time()
      step()
      times.append(time.perf_counter() - t0)
      cpu.append(time.process_time() - c0)

   rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB
   print(json.dumps({"median_s": statistics.median(times), "times": times,
                     "cpu_s": statistics.median(cpu),
                     "rss_mb": round(rss_mb, 1), "impl": "torch", "torch": torch.__version__,
                     "config": args.config, "batch": N, "mode": args.mode,
                     "threads": args.threads, "reps": args.reps, "precision": args.precision}))


if __name__ == "__main__":
   main()
