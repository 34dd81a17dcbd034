"""Independent PyTorch reference of the official DDPM U-Net (docs/math.md §6).

Written from docs/math.md §6 and §8 so that state_dict() keys are
exactly the diffusers UNet2DModel names (google/ddpm-cifar10-32). It exists to
check the C runtime and to time PyTorch next to it; it is not a training
library and deliberately has no class conditioning, no scale-shift norm, no
multi-head attention and no options the official model never used.

   import torch_unet
   model = torch_unet.build("cifar")            # 35,746,307 params, 328 tensors
   eps = model(x, t)                            # x [N,3,32,32], t [N] float

Run it as a script to print the parameter counts of every preset.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GROUPS = 32
EPS = 1e-6

CONFIGS = {
   # official unet2d16b2 (run_cifar.py); dropout 0.1 is the training value
   "cifar": dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 dropout=0.1, in_ch=3, out_ch=3, resolution=32),
   # tiny but covers shortcuts, attention (down, mid, up), down- and upsampling
   "small": dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                 dropout=0.0, in_ch=3, out_ch=3, resolution=16),
   # the Fashion-MNIST model of experiments/fashion_mnist.lua (28x28, attention at 7x7)
   "fashion": dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(7,),
                   dropout=0.0, in_ch=1, out_ch=1, resolution=28),
}

# (parameters, tensors) the presets must have (docs/math.md §6.6 and §8)
EXPECTED = {"cifar": (35746307, 328)}


def timestep_embedding(t, dim):
   """[N] timesteps -> [N, dim]: sin block then cos block, divisor half-1 (docs/math.md §6.2)."""
   half = dim // 2
   i = torch.arange(half, dtype=t.dtype, device=t.device)
   freq = torch.exp(-math.log(10000.0) * i / (half - 1))
   arg = t[:, None] * freq[None, :]
   emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
   if dim % 2 == 1:
      emb = F.pad(emb, (0, 1))
   return emb


def group_norm(c):
   return nn.GroupNorm(GROUPS, c, eps=EPS)


class TimestepEmbedding(nn.Module):
   """dense0 -> SiLU -> dense1; no activation after dense1 (each block applies its own)."""

   def __init__(self, ch, temb_ch):
      super().__init__()
      self.linear_1 = nn.Linear(ch, temb_ch)
      self.linear_2 = nn.Linear(temb_ch, temb_ch)

   def forward(self, emb):
      return self.linear_2(F.silu(self.linear_1(emb)))


class ResnetBlock(nn.Module):
   """Spec 6.3: norm1, SiLU, conv1, + time_emb_proj(SiLU(temb)), norm2, SiLU,
   dropout, conv2; 1x1 shortcut when the channel count changes."""

   def __init__(self, in_ch, out_ch, temb_ch, dropout):
      super().__init__()
      self.norm1 = group_norm(in_ch)
      self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
      self.time_emb_proj = nn.Linear(temb_ch, out_ch)
      self.norm2 = group_norm(out_ch)
      self.dropout = nn.Dropout(dropout)
      self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
      self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

   def forward(self, x, temb):
      h = self.conv1(F.silu(self.norm1(x)))
      h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
      h = self.dropout(F.silu(self.norm2(h)))
      h = self.conv2(h)
      if self.conv_shortcut is not None:
         x = self.conv_shortcut(x)
      return x + h


class AttnBlock(nn.Module):
   """Spec 6.4: one head of width C over all H*W positions, scale C^-0.5,
   projections as Linear layers over channels (diffusers to_q/to_k/to_v/to_out.0)."""

   def __init__(self, c):
      super().__init__()
      self.group_norm = group_norm(c)
      self.to_q = nn.Linear(c, c)
      self.to_k = nn.Linear(c, c)
      self.to_v = nn.Linear(c, c)
      self.to_out = nn.ModuleList([nn.Linear(c, c)])

   def forward(self, x):
      N, C, H, W = x.shape
      h = self.group_norm(x).reshape(N, C, H * W).transpose(1, 2)   # [N, P, C]
      q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
      w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * C ** -0.5, dim=2)   # [N, P, P]
      o = self.to_out[0](torch.bmm(w, v))                                     # [N, P, C]
      return x + o.transpose(1, 2).reshape(N, C, H, W)


class Downsample(nn.Module):
   """TF 'SAME' stride 2 on an even size: zero pad right and bottom by one, then a
   3x3 stride-2 conv without padding (docs/math.md §6.5; symmetric padding is wrong)."""

   def __init__(self, c):
      super().__init__()
      self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

   def forward(self, x):
      return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
   """Nearest-neighbour x2 (pixel duplication), then a 3x3 conv."""

   def __init__(self, c):
      super().__init__()
      self.conv = nn.Conv2d(c, c, 3, padding=1)

   def forward(self, x):
      return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
   """One resolution of the down or up path: resnets, optional attentions after
   each resnet, optional resampler. Child names follow diffusers."""

   def __init__(self, resnets, attentions, resampler_name, resampler):
      super().__init__()
      self.resnets = nn.ModuleList(resnets)
      self.attentions = nn.ModuleList(attentions)
      if resampler is not None:
         setattr(self, resampler_name, nn.ModuleList([resampler]))


class MidBlock(nn.Module):
   def __init__(self, c, temb_ch, dropout):
      super().__init__()
      self.resnets = nn.ModuleList([ResnetBlock(c, c, temb_ch, dropout),
                                    ResnetBlock(c, c, temb_ch, dropout)])
      self.attentions = nn.ModuleList([AttnBlock(c)])


class UNet(nn.Module):
   def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, dropout,
                in_ch, out_ch, resolution):
      super().__init__()
      self.config = dict(ch=ch, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks,
                         attn_resolutions=list(attn_resolutions), dropout=float(dropout),
                         in_ch=in_ch, out_ch=out_ch, resolution=resolution)
      levels = len(ch_mult)
      assert resolution % (2 ** (levels - 1)) == 0, "resolution must halve evenly"
      temb_ch = 4 * ch
      self.ch = ch
      self.time_embedding = TimestepEmbedding(ch, temb_ch)
      self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)

      # down path; skip_ch mirrors the channel count of every tensor pushed to hs
      skip_ch = [ch]
      c, res = ch, resolution
      self.down_blocks = nn.ModuleList()
      for i, mult in enumerate(ch_mult):
         resnets, attns = [], []
         for _ in range(num_res_blocks):
            resnets.append(ResnetBlock(c, ch * mult, temb_ch, dropout))
            c = ch * mult
            if res in attn_resolutions:
               attns.append(AttnBlock(c))
            skip_ch.append(c)
         down = Downsample(c) if i != levels - 1 else None
         if down is not None:
            skip_ch.append(c)
            res //= 2
         self.down_blocks.append(Level(resnets, attns, "downsamplers", down))

      self.mid_block = MidBlock(c, temb_ch, dropout)

      # up path: diffusers up_blocks.k is official level levels-1-k
      self.up_blocks = nn.ModuleList()
      for i in reversed(range(levels)):
         resnets, attns = [], []
         for _ in range(num_res_blocks + 1):
            resnets.append(ResnetBlock(c + skip_ch.pop(), ch * ch_mult[i], temb_ch, dropout))
            c = ch * ch_mult[i]
            if res in attn_resolutions:
               attns.append(AttnBlock(c))
         up = Upsample(c) if i != 0 else None
         if up is not None:
            res *= 2
         self.up_blocks.append(Level(resnets, attns, "upsamplers", up))
      assert not skip_ch

      self.conv_norm_out = group_norm(c)
      self.conv_out = nn.Conv2d(c, out_ch, 3, padding=1)

   def forward(self, x, t):
      """x [N, in_ch, H, W], t [N] (integer values as floats) -> [N, out_ch, H, W]."""
      temb = self.time_embedding(timestep_embedding(t.to(x.dtype), self.ch))
      hs = [self.conv_in(x)]
      for level in self.down_blocks:
         for j, block in enumerate(level.resnets):
            h = block(hs[-1], temb)
            if len(level.attentions) > 0:
               h = level.attentions[j](h)
            hs.append(h)
         if hasattr(level, "downsamplers"):
            hs.append(level.downsamplers[0](hs[-1]))
      h = hs[-1]
      h = self.mid_block.resnets[0](h, temb)
      h = self.mid_block.attentions[0](h)
      h = self.mid_block.resnets[1](h, temb)
      for level in self.up_blocks:
         for j, block in enumerate(level.resnets):
            h = block(torch.cat([h, hs.pop()], dim=1), temb)    # hidden first, skip second
            if len(level.attentions) > 0:
               h = level.attentions[j](h)
         if hasattr(level, "upsamplers"):
            h = level.upsamplers[0](h)
      assert not hs
      return self.conv_out(F.silu(self.conv_norm_out(h)))


def count(model_or_module):
   """(parameters, tensors)"""
   ps = list(model_or_module.parameters())
   return sum(p.numel() for p in ps), len(ps)


def build(name_or_config, **overrides):
   """A preset name ('cifar', 'small', 'fashion') or a config dict; keyword
   overrides replace config entries. Presets with known sizes are checked."""
   if isinstance(name_or_config, str):
      cfg = dict(CONFIGS[name_or_config])
   else:
      cfg = dict(name_or_config)
   cfg.update(overrides)
   model = UNet(**cfg)
   if isinstance(name_or_config, str) and name_or_config in EXPECTED:
      keep = ("in_ch", "out_ch", "ch", "ch_mult", "num_res_blocks", "attn_resolutions")
      if not any(k in overrides for k in keep):
         got = count(model)
         assert got == EXPECTED[name_or_config], \
            "%s: %d params in %d tensors, expected %d in %d" % ((name_or_config,) + got
                                                              + EXPECTED[name_or_config])
   return model


# diffusers renamed the attention tensors; the 2022 .bin uses the old names
OLD_ATTN_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def old_attn_name(name):
   """'x.attentions.0.to_out.0.weight' -> 'x.attentions.0.proj_attn.weight'."""
   if ".attentions." not in name:
      return name
   for new, old in OLD_ATTN_NAMES.items():
      tag = "." + new + "."
      if tag in name:
         return name.replace(tag, "." + old + ".")
   return name


if __name__ == "__main__":
   for preset in CONFIGS:
      n, k = count(build(preset))
      print("%-8s %12s params %4d tensors" % (preset, format(n, ","), k))
