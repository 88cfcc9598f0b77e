#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real PyTorch client of libpolar-accel's ONNX import.

Trains two small models with PyTorch (Debian's python3-torch), on
Fashion-MNIST as dataset-fashion-mnist installs it, exports them with
torch.onnx.export, and writes next to each model PyTorch's outputs on the
test split, so that tests/onnx/onnx-client.sh can compare the library's
fp32 forward pass with them:

  resnet_small  conv+BatchNorm, a residual block (two conv+BatchNorm and
                an Add of the two branches), a strided conv, an average
                pool with padding, a 1x1 conv, global average pooling, a
                linear layer
  mlp_bn        flatten, linear+BatchNorm1d (a Gemm then a
                BatchNormalization node), ReLU, two linear layers and a
                final Softmax

Nothing here chooses anything on the test split: the epochs and learning
rate are fixed, and the accuracy printed while training is on 5,000
training images held out from the training.

usage: client.py OUTDIR [--epochs N] [--train-images N] [--seed N]
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    x = idx(os.path.join(DATA, split + "-images-idx3-ubyte.gz"))
    y = idx(os.path.join(DATA, split + "-labels-idx1-ubyte.gz"))
    # torchvision's ToTensor: the byte / 255, one channel.
    return (torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1),
            torch.from_numpy(y.astype(np.int64)))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + x)


def resnet_small():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        nn.ReLU(), nn.MaxPool2d(2),                     # 16 x 14 x 14
        Residual(16),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32),
        nn.ReLU(),                                      # 32 x 7 x 7
        nn.AvgPool2d(3, stride=2, padding=1),           # 32 x 4 x 4
        nn.Conv2d(32, 64, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10))


def mlp_bn():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


class WithSoftmax(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return torch.softmax(self.m(x), dim=1)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    return out, (out.argmax(1) == y).float().mean().item()


def train(model, x, y, xv, yv, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            loss.backward()
            opt.step()
            sched.step()
        _, va = accuracy(model, xv, yv)
        print(f"  epoch {ep + 1}/{epochs}: loss {loss.item():.3f}, "
              f"held-out accuracy {100 * va:.2f}% ({time.time() - t0:.0f} s)",
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(a.outdir, exist_ok=True)
    x, y = load("train")
    xt, yt = load("t10k")
    xv, yv = x[55000:], y[55000:]
    x, y = x[:min(a.train_images, 55000)], y[:min(a.train_images, 55000)]
    for name, make, softmax in (("resnet_small", resnet_small, False),
                                ("mlp_bn", mlp_bn, True)):
        print(f"{name}: training on {len(x)} images, {a.epochs} epochs",
              flush=True)
        model = make()
        train(model, x, y, xv, yv, a.epochs, a.seed)
        model.eval()
        export = WithSoftmax(model) if softmax else model
        export.eval()
        path = os.path.join(a.outdir, name + ".onnx")
        torch.onnx.export(export, torch.zeros(1, 1, 28, 28), path,
                          opset_version=13, input_names=["image"],
                          output_names=["out"],
                          dynamic_axes={"image": {0: "n"}, "out": {0: "n"}})
        out, acc = accuracy(export, xt, yt)
        out.numpy().astype("<f4").tofile(os.path.join(a.outdir,
                                                      name + ".torch.f32"))
        with open(os.path.join(a.outdir, name + ".torch.acc"), "w") as f:
            f.write(f"{int(round(acc * len(yt)))}\n")
        print(f"{name}: exported {path}, PyTorch test accuracy "
              f"{100 * acc:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
