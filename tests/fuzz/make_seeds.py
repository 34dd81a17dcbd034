#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py — writes the seed corpus of each fuzz target into
tests/fuzz/corpus/<target>/ (test-only; run from the repository root).

Seeds are small valid files plus the near misses each reader must refuse
(truncations, overflowing shapes, bad magic, wrong sizes), so that fuzzing
starts past the first byte of every format. The tiny U-Net checkpoint of the
metadata target is written by ./ddpmlua (python makes the rest by hand).
"""
import gzip
import json
import os
import struct
import subprocess
import zlib

ROOT = 'tests/fuzz/corpus'


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors
DT = {'F32': 4, 'F16': 2, 'BF16': 2, 'F64': 8, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1,
      'U8': 1, 'U16': 2, 'U32': 4, 'U64': 8, 'BOOL': 1}


def st(tensors, meta=None, raw_header=None, pad=b''):
    """tensors: [(name, dtype, shape, bytes)] laid out in order."""
    h, data = {}, b''
    for name, dt, shape, b in tensors:
        h[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(b)]}
        data += b
    if meta is not None:
        h['__metadata__'] = meta
    hb = raw_header if raw_header is not None else json.dumps(h, separators=(',', ':')).encode()
    return struct.pack('<Q', len(hb)) + hb + pad + data


def safetensors_seeds():
    f32 = struct.pack('<6f', 1, -2, 3.5, 0, float('inf'), -0.0)
    put('safetensors', 'f32', st([('w', 'F32', [2, 3], f32)], {'format': 'pt'}))
    put('safetensors', 'dtypes', st([(dt, dt, [2], bytes(2 * n)) for dt, n in DT.items()]))
    put('safetensors', 'scalar-and-empty', st([('s', 'F64', [], bytes(8)), ('e', 'F32', [0, 5], b'')]))
    put('safetensors', 'empty', st([]))
    put('safetensors', 'metadata', st([('a.b', 'F16', [1], b'\x00\x3c')],
                                      {'ddpmlua.unet_config': '{"ch":4}', 'step': '10', 'k\u00e9': 'v\u2603'}))
    put('safetensors', 'overflow-shape', st([], raw_header=(
        b'{"x":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}')))
    put('safetensors', 'overflow-zero-last', st([], raw_header=(
        b'{"x":{"dtype":"F32","shape":[4611686018427387904,8,0],"data_offsets":[0,0]}}')))
    put('safetensors', 'offsets-past-end', st([], raw_header=(
        b'{"x":{"dtype":"U8","shape":[4],"data_offsets":[0,18446744073709551615]}}')))
    put('safetensors', 'overlap', st([], raw_header=(
        b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
        b'"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}'), pad=b'abc'))
    put('safetensors', 'huge-header-len', struct.pack('<Q', 1 << 40) + b'{}')
    put('safetensors', 'truncated', st([('w', 'F32', [2, 3], f32)])[:-5])
    put('safetensors', 'escapes', st([('t\\u00e9\\ud83d\\ude00\\n', 'U8', [1], b'\x07')],
                                      raw_header=b'{"t\\u00e9\\ud83d\\ude00\\n":'
                                      b'{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}  '))


# ---------------------------------------------------------------- json
def json_seeds():
    texts = [b'{}', b'[]', b'{"a":[1,2,{"b":null}],"c":"\\u00e9\\ud83d\\ude00","d":-0.5e-3}',
             b'[18446744073709551615, 18446744073709551616, -0, 1e400, 0.0]',
             b'"\\"\\\\\\/\\b\\f\\n\\r\\t"', b'[true,false,null]', b' {"k" : "v" } ',
             b'[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]', b'"\\ud800"', b'01', b'[1,]',
             b'{"a":1,}', b'"\\u0000"', b'"\xc3\xa9"', b'"\xed\xa0\x80"']
    for i, t in enumerate(texts):
        put('json', 'text%02d' % i, t)


# ---------------------------------------------------------------- idx
def idx_images(n, h, w):
    return bytes([0, 0, 8, 3]) + struct.pack('>III', n, h, w) + bytes((i * 37) % 256 for i in range(n * h * w))


def idx_labels(n, bad=False):
    return bytes([0, 0, 8, 1]) + struct.pack('>I', n) + bytes((i % 10) + (10 if bad else 0) for i in range(n))


def idx_input(flags, images, labels=b''):
    return bytes([flags]) + struct.pack('<I', len(images)) + images + labels


def idx_seeds():
    im, lb = idx_images(3, 4, 5), idx_labels(3)
    put('idx', 'images-only', idx_input(0, im))
    put('idx', 'images-labels', idx_input(2, im, lb))
    put('idx', 'gz-both', idx_input(7, im, lb))
    put('idx', 'pre-gzipped', idx_input(2, gzip.compress(im, mtime=0), gzip.compress(lb, mtime=0)))
    put('idx', 'bad-label', idx_input(2, im, idx_labels(3, bad=True)))
    put('idx', 'count-mismatch', idx_input(2, im, idx_labels(2)))
    put('idx', 'huge-count', idx_input(1, bytes([0, 0, 8, 3]) + struct.pack('>III', 0xFFFFFFFF, 16384, 16384)))
    put('idx', 'huge-count-gz', idx_input(1, bytes([0, 0, 8, 3]) + struct.pack('>III', 60000, 28, 28) + bytes(64)))
    put('idx', 'trailing', idx_input(0, im + b'xx'))
    put('idx', 'float-type', idx_input(0, bytes([0, 0, 0x0D, 3]) + im[4:]))
    put('idx', 'zeros-gz', idx_input(0, gzip.compress(bytes([0, 0, 8, 3]) + struct.pack('>III', 64, 32, 32)
                                                    + bytes(64 * 32 * 32), mtime=0)))


# ---------------------------------------------------------------- cifar
def cifar_seeds():
    rec = lambda lab, k: bytes([lab]) + bytes((k + i) % 256 for i in range(3072))
    put('cifar', 'one', rec(3, 0))
    put('cifar', 'two', rec(0, 1) + rec(9, 2))
    put('cifar', 'bad-label', rec(10, 0))
    put('cifar', 'short', rec(1, 0)[:-1])
    put('cifar', 'long', rec(1, 0) + b'\x00')


# ---------------------------------------------------------------- png
def png(w, h, color_type, depth, rows, interlace=0, extra=b''):
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, depth, color_type, 0, 0, interlace)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + extra +
            chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def png_seeds():
    put('png', 'gray8', png(3, 2, 0, 8, b'\x00\x01\x02\x03\x01\x04\x05\x06'))
    put('png', 'gray1', png(9, 2, 0, 1, b'\x00\xaa\x80\x00\x55\x00'))
    put('png', 'gray16', png(2, 1, 0, 16, b'\x00\x01\x02\x03\x04'))
    put('png', 'rgb8', png(2, 2, 2, 8, b'\x00' + bytes(range(6)) + b'\x02' + bytes(range(6))))
    put('png', 'rgba8', png(1, 2, 6, 8, b'\x00\x01\x02\x03\x04\x03\x01\x02\x03\x04'))
    plte = struct.pack('>I', 6) + b'PLTE' + b'\xff\x00\x00\x00\xff\x00'
    plte += struct.pack('>I', zlib.crc32(b'PLTE\xff\x00\x00\x00\xff\x00') & 0xffffffff)
    put('png', 'palette', png(4, 1, 3, 2, b'\x00\x1b', extra=plte))
    put('png', 'gray-alpha', png(2, 1, 4, 8, b'\x04\x10\x20\x30\x40'))
    put('png', 'interlaced', png(3, 3, 0, 8, bytes(1 + 3) * 3 + bytes(16), interlace=1))
    put('png', 'huge-declared', png(16384, 16384, 2, 8, b'\x00' * 10))
    put('png', 'truncated', png(3, 2, 0, 8, b'\x00\x01\x02\x03\x01\x04\x05\x06')[:-20])


# ---------------------------------------------------------------- metadata
def metadata_seeds():
    tiny = '/tmp/ddpm-fuzz-tiny-unet.safetensors'
    subprocess.run(['./ddpmlua', '-e',
                    "local ddpm = require 'ddpm'; ddpm.unet{ch=4, groups=2, ch_mult={1,2}, "
                    "num_res_blocks=1, attn_resolutions={2}, resolution=4, in_ch=1, out_ch=1}"
                    ":save('%s')" % tiny], check=True)
    with open(tiny, 'rb') as f:
        put('metadata', 'tiny-unet', f.read())
    os.unlink(tiny)
    D = 3
    mean = struct.pack('<3d', 0.5, -1, 2)
    cov = struct.pack('<9d', 1, 0, 0, 0, 2, 0, 0, 0, 3)
    put('metadata', 'gauss', st([('cov', 'F64', [D, D], cov), ('mean', 'F64', [D], mean)],
                                {'ddpmlua.gauss_n': '100', 'format': 'ddpmlua.gauss/1'}))
    put('metadata', 'gauss-bad-n', st([('cov', 'F64', [D, D], cov), ('mean', 'F64', [D], mean)],
                                      {'ddpmlua.gauss_n': '-5x'}))
    put('metadata', 'gauss-nan', st([('cov', 'F64', [1, 1], struct.pack('<d', float('nan'))),
                                     ('mean', 'F64', [1], bytes(8))], {'ddpmlua.gauss_n': '2'}))
    put('metadata', 'lenet-names', st([('conv1.weight', 'F32', [6, 1, 5, 5], bytes(600)),
                                       ('fc3.bias', 'F32', [10], bytes(40))]))
    put('metadata', 'old-attention-names', st([
        ('down_blocks.1.attentions.0.query.weight', 'F32', [8, 8], bytes(256)),
        ('ema.down_blocks.1.attentions.0.proj_attn.weight', 'F16', [8, 8, 1, 1], bytes(128))]))


# ---------------------------------------------------------------- config
def config_seeds():
    texts = ['{"attn_resolutions":[16],"ch":128,"ch_mult":[1,2,2,2],"dropout":0.1,"eps":1e-06,'
             '"groups":32,"in_ch":3,"num_res_blocks":2,"out_ch":3,"resolution":32}',
             '{"batch":128,"lr":0.0002,"schedule":"linear","T":1000,"name":"a \\"q\\" <b>\\u00e9",'
             '"nested":{"x":[1,null,3],"y":[]},"big":1e+20,"neg":-0}',
             '["ddpmlua","experiments/fashion_mnist.lua","--steps=10"]',
             '{"HOME":"/root","LANG":"C.UTF-8"}', '"\\ud83d\\ude00"', '[1e999]', '"\\u12"',
             '[' * 300 + ']' * 300, '{"a":tru}', '1.5e', '  ']
    for i, t in enumerate(texts):
        put('config', 'text%02d' % i, t.encode())


if __name__ == '__main__':
    safetensors_seeds()
    json_seeds()
    idx_seeds()
    cifar_seeds()
    png_seeds()
    metadata_seeds()
    config_seeds()
