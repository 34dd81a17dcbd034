"""Converts the FID Inception weights that pytorch-fid uses,
pt_inception-2015-12-05-6726825d.pth (a PyTorch state dict ported from
TensorFlow's 2015-12-05 Inception graph), to the safetensors file ddpmlua
reads (runtime/inception.c). A conversion tool only: ddpmlua itself never
runs Python.

   python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth \
       data/pt_inception-2015-12-05.safetensors

Every tensor is kept under its name as float32 (num_batches_tracked
counters, if any, are dropped); the metadata records the source file's name
and SHA-256. The state dict is checked before anything is written: 472
tensors, fc.weight [1008, 2048], and, when python3-torchvision is installed,
a strict load into the network of scripts/torch_inception.py (every name and
shape). ddpmlua checks names and shapes again when it loads the file.
"""
import argparse
import hashlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def main():
   ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
   ap.add_argument("pth", help="pt_inception-2015-12-05-6726825d.pth")
   ap.add_argument("out", help="the .safetensors file to write")
   a = ap.parse_args()
   h = hashlib.sha256()
   with open(a.pth, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
         h.update(block)
   sd = torch.load(a.pth, map_location="cpu")
   if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
      sd = sd["state_dict"]
   if not isinstance(sd, dict):
      sys.exit("convert_inception: %s does not hold a state dict" % a.pth)
   items = [(k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")]
   fc = dict(items).get("fc.weight")
   if fc is None or tuple(fc.shape) != (1008, 2048) or len(items) != 472:
      sys.exit("convert_inception: %s is not the FID Inception state dict (%d tensors, fc.weight %s; "
               "expected 472 and [1008, 2048]): use pt_inception-2015-12-05-6726825d.pth, the "
               "file pytorch-fid downloads" % (a.pth, len(items),
                                                None if fc is None else list(fc.shape)))
   try:
      import torch_inception
   except ImportError:
      print("convert_inception: python3-torchvision not installed; names are checked by ddpmlua "
            "when it loads the file")
   else:
      net = torch_inception.fid_inception()
      net.load_state_dict(dict(items), strict=True)
      print("convert_inception: the state dict loads strictly into the FID Inception network")
   safetensors_io.write(a.out, [(k, v.detach().float().numpy()) for k, v in items],
                        {"format": "pt", "ddpmlua.model": "fid_inception_v3",
                         "source": os.path.basename(a.pth), "source_sha256": h.hexdigest()})
   print("wrote %s: %d tensors from %s (sha256 %s)" % (a.out, len(items), a.pth, h.hexdigest()))


if __name__ == "__main__":
   main()
