"""Minimal safetensors writer and reader (numpy only; the safetensors package
is not installed here).

Layout: 8-byte little-endian header length N, N bytes of JSON
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}
padded with spaces to a multiple of 8, then the raw little-endian row-major
data; offsets are relative to the end of the header and contiguous.
Writes float32 only (what the fixtures need); reads the common dtypes.
"""
import json
import os
import struct

import numpy as np

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4",
           "U64": "<u8", "BOOL": "?"}


def write(path, tensors, metadata=None):
   """tensors: ordered list of (name, array-like); every array is stored as F32
   in the given order. metadata: {str: str}. Written to a temp file, then renamed."""
   header, blobs, offset = {}, [], 0
   for name, value in tensors:
      a = np.ascontiguousarray(np.asarray(value, dtype="<f4"))
      if name in header or name == "__metadata__":
         raise ValueError("duplicate or reserved tensor name %r" % name)
      b = a.tobytes()
      header[name] = {"dtype": "F32", "shape": list(a.shape),
                      "data_offsets": [offset, offset + len(b)]}
      blobs.append(b)
      offset += len(b)
   if metadata:
      if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
         raise ValueError("__metadata__ must map str to str")
      header = dict([("__metadata__", dict(metadata))] + list(header.items()))
   h = json.dumps(header, separators=(",", ":")).encode("utf-8")
   h += b" " * (-len(h) % 8)
   tmp = path + ".tmp"
   with open(tmp, "wb") as f:
      f.write(struct.pack("<Q", len(h)))
      f.write(h)
      for b in blobs:
         f.write(b)
   os.replace(tmp, path)
   return 8 + len(h) + offset


def read(path):
   """-> (dict name -> numpy array, metadata dict). Checks the offsets."""
   with open(path, "rb") as f:
      data = f.read()
   (n,) = struct.unpack("<Q", data[:8])
   header = json.loads(data[8:8 + n].decode("utf-8"))
   meta = header.pop("__metadata__", {})
   buf = data[8 + n:]
   out, spans = {}, []
   for name, e in header.items():
      begin, end = e["data_offsets"]
      dt = np.dtype(_DTYPES[e["dtype"]])
      count = int(np.prod(e["shape"], dtype=np.int64))
      if end - begin != count * dt.itemsize:
         raise ValueError("%s: %d bytes for shape %s" % (name, end - begin, e["shape"]))
      out[name] = np.frombuffer(buf, dtype=dt, count=count, offset=begin).reshape(e["shape"])
      spans.append((begin, end))
   spans.sort()
   pos = 0
   for begin, end in spans:
      if begin != pos:
         raise ValueError("offsets not contiguous at byte %d" % begin)
      pos = end
   if pos != len(buf):
      raise ValueError("data buffer has %d bytes, tensors cover %d" % (len(buf), pos))
   return out, meta
