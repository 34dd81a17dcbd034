#!/usr/bin/env bash
# The PyTorch reference U-Net's own self-test (hand-computed cases, the
# paper's parameter counts, the official padding and embedding), so that the
# parity fixtures are checked independently of the C code.
exec /usr/bin/python3 "$(dirname "$0")/../scripts/torch_unet_selftest.py"
