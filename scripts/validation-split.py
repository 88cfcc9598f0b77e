#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a Fashion-MNIST directory whose test split is a validation slice
of the training split, for choices that must not look at the test split
(issue 15's protocol): `polar eval --data DIR` then calibrates on the
training split as usual and "tests" on the slice.

polar eval calibrates on the training images k * (60000 / calib) and holds
out the trained method's 128 images half a step after them
(calib_subset() in tools/polar_eval.c); with calib = 512 the step is 117,
so the slice takes the images 117 k + r, r in {20, 40, 80, 100}: 2048
images that neither uses. The fp32 model was trained on the whole training
split, so absolute accuracies on the slice are optimistic; differences
between chips and methods (gaps to fp32) are what it is for.

Usage: validation-split.py SRC_DIR OUT_DIR [calib]
"""
import gzip
import os
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
calib = int(sys.argv[3]) if len(sys.argv) > 3 else 512


def read(name):
    with gzip.open(os.path.join(src, name + ".gz"), "rb") as f:
        return f.read()


images, labels = read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte")
n, rows, cols = struct.unpack(">III", images[4:16])
step = n // calib
held = step // 2
offsets = [r for r in (20, 40, 80, 100) if r not in (0, held) and r < step]
pick = sorted(step * k + r for k in range(calib) for r in offsets)
size = rows * cols
os.makedirs(out, exist_ok=True)
with gzip.open(os.path.join(out, "t10k-images-idx3-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, len(pick), rows, cols))
    f.write(b"".join(images[16 + i * size:16 + (i + 1) * size] for i in pick))
with gzip.open(os.path.join(out, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">II", 0x801, len(pick)))
    f.write(bytes(labels[8 + i] for i in pick))
for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    dst = os.path.join(out, name)
    if not os.path.lexists(dst):
        os.symlink(os.path.join(os.path.abspath(src), name), dst)
print(f"{out}: {len(pick)} validation images of the training split "
      f"(offsets {offsets} of every {step}th)")
