"""The FID Inception-v3 in PyTorch, as the test reference of runtime/inception.c
(test-only: Debian's python3-torch and python3-torchvision).

The network is torchvision's Inception-v3 with 1008 classes and no auxiliary
head, with the blocks that the standard FID code patches: the 3x3 average
pools of Mixed_5b..5d, 6b..6e, 7b exclude the padding from their count, and
Mixed_7c pools its last branch with a 3x3 max pool. Input images in [0, 1]
are resized to 299x299 (bilinear, align_corners=False, no antialiasing) and
scaled to [-1, 1]. The logits are fc.weight . features without fc.bias (the
Inception Score's convention; runtime/inception.h).

   /usr/bin/python3 scripts/torch_inception.py --seed 1 --batch 2 --size 32 \
       --weights tests/fixtures/inception_weights.safetensors \
       --out tests/fixtures/inception_ref.safetensors

writes random non-zero weights under pytorch-fid's names (the layout
scripts/convert_inception.py produces from the real file: conv weights and
unfolded batch norm, float32) and, in a second file,
   input.x       [N,3,size,size] uniform in [0,1]
   stage.<i>     the output of stage i (the stages of runtime/inception.h),
                 each computed in float64 from the float64 output of stage i-1
and metadata naming the stages. The weights are drawn in float32 and the
model runs in float64, so the reference carries almost no rounding of its own.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

TV = torchvision.models.inception


def _avg3(x):
   return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDA(TV.InceptionA):
   def forward(self, x):
      b1 = self.branch1x1(x)
      b5 = self.branch5x5_2(self.branch5x5_1(x))
      b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
      bp = self.branch_pool(_avg3(x))
      return torch.cat([b1, b5, b3, bp], 1)


class FIDC(TV.InceptionC):
   def forward(self, x):
      b1 = self.branch1x1(x)
      b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
      d = self.branch7x7dbl_1(x)
      for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                    self.branch7x7dbl_5):
         d = layer(d)
      bp = self.branch_pool(_avg3(x))
      return torch.cat([b1, b7, d, bp], 1)


class FIDE(TV.InceptionE):
   def __init__(self, in_channels, max_pool):
      super().__init__(in_channels)
      self.max_pool = max_pool

   def forward(self, x):
      b1 = self.branch1x1(x)
      b3 = self.branch3x3_1(x)
      b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
      d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
      d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
      if self.max_pool:
         p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
      else:
         p = _avg3(x)
      return torch.cat([b1, b3, d, self.branch_pool(p)], 1)


def fid_inception():
   """The network with torchvision's default layers where FID keeps them."""
   net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                         init_weights=False)
   net.Mixed_5b = FIDA(192, pool_features=32)
   net.Mixed_5c = FIDA(256, pool_features=64)
   net.Mixed_5d = FIDA(288, pool_features=64)
   net.Mixed_6b = FIDC(768, channels_7x7=128)
   net.Mixed_6c = FIDC(768, channels_7x7=160)
   net.Mixed_6d = FIDC(768, channels_7x7=160)
   net.Mixed_6e = FIDC(768, channels_7x7=192)
   net.Mixed_7b = FIDE(1280, max_pool=False)
   net.Mixed_7c = FIDE(2048, max_pool=True)
   return net.eval()


def stages(net):
   """The stages of runtime/inception.h as (name, function of the previous output)."""
   def resize(x):
      x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
      return 2 * x - 1

   def mp(x):
      return F.max_pool2d(x, kernel_size=3, stride=2)

   out = [("resize", resize)]
   for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
      out.append((name, getattr(net, name)))
   out.append(("maxpool1", mp))
   for name in ("Conv2d_3b_1x1", "Conv2d_4a_3x3"):
      out.append((name, getattr(net, name)))
   out.append(("maxpool2", mp))
   for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
      out.append((name, getattr(net, name)))
   out.append(("avgpool", lambda x: x.mean(dim=(2, 3))))
   out.append(("logits", lambda f: f @ net.fc.weight.t()))
   return out


def forward(net, x):
   """features [N,2048], logits [N,1008] of images x [N,3,H,W] in [0,1]."""
   h = x
   for name, fn in stages(net)[:-1]:
      h = fn(h)
   return h, h @ net.fc.weight.t()


def fill_random(net, g):
   """Convolutions ~ N(0, 2/fan_in) (activations stay O(1) through the ReLUs),
   batch norm gamma 1 + 0.2 N, beta 0.2 N, running mean 0.2 N, running var
   uniform [0.5, 1.5]; fc ~ N(0, 1/2048), its bias 0.1 N."""
   with torch.no_grad():
      for name, t in list(net.named_parameters()) + list(net.named_buffers()):
         if name.endswith("num_batches_tracked"):
            continue
         z = torch.randn(t.shape, generator=g, dtype=torch.float32)
         if name.endswith("conv.weight"):
            t.copy_(z * math.sqrt(2.0 / t[0].numel()))
         elif name.endswith("bn.weight"):
            t.copy_(1.0 + 0.2 * z)
         elif name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
         elif name == "fc.weight":
            t.copy_(z / math.sqrt(t.shape[1]))
         else:
            t.copy_(0.1 * z if name.startswith("fc") else 0.2 * z)


def state_items(net):
   """(name, tensor) of everything the weights file holds, in state_dict order."""
   return [(k, v) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]


def main():
   ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
   ap.add_argument("--seed", type=int, default=1)
   ap.add_argument("--batch", type=int, default=2)
   ap.add_argument("--size", type=int, default=32)
   ap.add_argument("--weights", required=True)
   ap.add_argument("--out", required=True)
   a = ap.parse_args()
   torch.set_num_threads(2)
   g = torch.Generator().manual_seed(a.seed)
   net = fid_inception()
   fill_random(net, g)
   items = state_items(net)
   safetensors_io.write(a.weights, [(k, v.numpy()) for k, v in items],
                        {"format": "pt", "ddpmlua.model": "fid_inception_v3",
                         "note": "random weights for the parity test"})
   net = net.double()
   x = torch.rand((a.batch, 3, a.size, a.size), generator=g, dtype=torch.float32)
   out = [("input.x", x.numpy())]
   h = x.double()
   names = []
   with torch.no_grad():
      for i, (name, fn) in enumerate(stages(net)):
         h = fn(h)
         names.append(name)
         out.append(("stage.%d" % i, h.float().numpy()))
   safetensors_io.write(a.out, out, {"stages": ",".join(names), "seed": str(a.seed),
                                     "tensors": str(len(items))})
   print("wrote %s (%d tensors) and %s (%d stages)" % (a.weights, len(items), a.out, len(names)))


if __name__ == "__main__":
   main()
