"""Images per second of the FID Inception-v3 in PyTorch (scripts/torch_inception.py,
the same network as runtime/inception.c) on 32x32 inputs, for scripts/bench_fid.sh.

   /usr/bin/python3 scripts/bench_fid_torch.py [--n 16] [--reps 3] [--threads 2]

Prints "rep <i> seconds=<s> images_per_s=<r>" per repetition after one
warm-up batch (float32, eval mode, no gradients; random weights: the speed
does not depend on their values).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_inception  # noqa: E402


def main():
   ap = argparse.ArgumentParser()
   ap.add_argument("--n", type=int, default=16)
   ap.add_argument("--reps", type=int, default=3)
   ap.add_argument("--threads", type=int, default=2)
   a = ap.parse_args()
   torch.set_num_threads(a.threads)
   net = torch_inception.fid_inception()
   torch_inception.fill_random(net, torch.Generator().manual_seed(1))
   x = torch.rand((a.n, 3, 32, 32), generator=torch.Generator().manual_seed(2))
   with torch.no_grad():
      torch_inception.forward(net, x)
      for r in range(a.reps):
         t0 = time.perf_counter()
         torch_inception.forward(net, x)
         dt = time.perf_counter() - t0
         print("rep %d seconds=%.4f images_per_s=%.3f" % (r, dt, a.n / dt), flush=True)


if __name__ == "__main__":
   main()
