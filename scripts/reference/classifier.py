#!/usr/bin/python3
"""PyTorch twin of gen's classifier (src/models/classifier.h), the feature
network of gen eval, with the same parameter names, for the weights of
`gen export` (scripts/test-export.sh loads them strictly):

  x (N, C, H, W) in [0, 1]
  conv1 Conv(C, F, 3, 1, 1)   - bn1 - ReLU
  conv2 Conv(F, F, 4, 2, 1)   - bn2 - ReLU
  conv3 Conv(F, 2F, 3, 1, 1)  - bn3 - ReLU
  conv4 Conv(2F, 2F, 4, 2, 1) - bn4 - ReLU
  flatten, fc1 Linear(2F H/4 W/4, 128) - ReLU  -> features (N, 128)
  fc2 Linear(128, K)                           -> logits (N, K)

Convolutions have no bias; BatchNorm as PyTorch's (momentum 0.1, eps 1e-5):
batch statistics in training mode, the running ones in eval mode (gen's
features and evaluation).

  /usr/bin/python3 scripts/reference/classifier.py WEIGHTS.safetensors [--data data/mnist]
      test loss and accuracy of exported weights, as `gen eval classifier`"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_mnist  # noqa: E402


def conv_out(n, k, s, p=1):
    return (n + 2 * p - k) // s + 1


class Classifier(nn.Module):
    def __init__(self, channels=1, height=28, width=28, classes=10, filters=32):
        super().__init__()
        f = filters
        cin, cout, k, s = (channels, f, f, 2 * f), (f, f, 2 * f, 2 * f), (3, 4, 3, 4), (1, 2, 1, 2)
        for i in range(4):
            setattr(self, f"conv{i + 1}", nn.Conv2d(cin[i], cout[i], k[i], s[i], 1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(cout[i]))
        h4 = conv_out(conv_out(height, 4, 2), 4, 2)
        w4 = conv_out(conv_out(width, 4, 2), 4, 2)
        self.fc1 = nn.Linear(2 * f * h4 * w4, 128)
        self.fc2 = nn.Linear(128, classes)

    def features(self, x):
        for i in range(1, 5):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.features(x))


def main():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import gen_safetensors

    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--data", default=None, help="IDX folder (default: the model's)")
    a = ap.parse_args()
    tensors, meta = gen_safetensors.load(a.weights, backend="torch")
    shape, cfg = meta["data_shape"], meta["config"]
    model = Classifier(shape["channels"], shape["height"], shape["width"], shape["classes"],
                       cfg["filters"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in tensors.items()}, strict=True)
    model.eval()
    x, y = load_mnist(a.data or cfg["data"], "t10k")
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000, None]) for i in range(0, len(x), 1000)])
    print(json.dumps({"test_loss": F.cross_entropy(logits, y).item(),
                      "test_accuracy": (logits.argmax(1) == y).float().mean().item()}))


if __name__ == "__main__":
    main()
