"""Times the PyTorch reference U-Net in float32 on the CPU: the PyTorch column
of `make bench`. Not a training script; inputs and targets are random.

   /usr/bin/python3 scripts/bench_torch.py --config cifar --batch 8 --mode train --reps 5 --threads 2

forward: one sampling step, eval mode under torch.no_grad().
train:   one training step in train mode (the preset's dropout, 0.1 for cifar):
         forward, MSE against a random target, backward, torch.optim.Adam (lr 2e-4),
         and an EMA update (decay 0.9999) of a copy of the parameters.
One warm-up, then --reps timed repetitions. Prints one JSON line:
{"median_s", "times", "rss_mb" (peak resident set, getrusage), and the settings}.
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
   args = ap.parse_args()
   torch.set_num_threads(args.threads)
   torch.manual_seed(args.seed)

   model = torch_unet.build(args.config)
   cfg = model.config
   N, res = args.batch, cfg["resolution"]
   x = torch.randn(N, cfg["in_ch"], res, res)
   t = torch.randint(0, 1000, (N,)).float()

   if args.mode == "forward":
      model.eval()

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
         loss = F.mse_loss(model(x, t), target)
         loss.backward()
         opt.step()
         with torch.no_grad():
            for e, p in zip(ema, params):
               e.mul_(decay).add_(p, alpha=1.0 - decay)

   step()                                   # warm-up
   times = []
   for _ in range(args.reps):
      t0 = time.perf_counter()
      step()
      times.append(time.perf_counter() - t0)

   rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB
   print(json.dumps({"median_s": statistics.median(times), "times": times,
                     "rss_mb": round(rss_mb, 1), "impl": "torch", "torch": torch.__version__,
                     "config": args.config, "batch": N, "mode": args.mode,
                     "threads": args.threads, "reps": args.reps}))


if __name__ == "__main__":
   main()
