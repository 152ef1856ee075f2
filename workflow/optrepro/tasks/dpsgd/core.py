"""The names of the original DP-SGD module.

A strategy file is the original's editable block, so it runs in a namespace
holding what the module imported and defined above that block: the standard
modules, numpy, torch, torchvision and scipy names, the two models and the
benchmark's own privacy accountant (`compute_epsilon`,
`calibrate_noise_to_epsilon`), with their original behaviour. The
per-example loop `compute_per_sample_gradients` is the original's reference;
training uses the vectorised `vectorised.per_sample_gradients`, checked against it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import scipy.optimize as sp_optimize
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

# RDP orders α: 1.1, 1.2, ..., 10.9, then 12, ..., 63 — Opacus' default grid.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


class MNISTNet(nn.Module):
    """MNIST and Fashion-MNIST: 26,010 parameters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 8, stride=2, padding=3)
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2)
        self.fc1 = nn.Linear(32 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 1)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 1)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CIFAR10Net(nn.Module):
    """CIFAR-10: four conv + GroupNorm blocks, 132,042 parameters."""

    def __init__(self):
        super().__init__()
        self.conv1, self.gn1 = nn.Conv2d(3, 32, 3, padding=1), nn.GroupNorm(8, 32)
        self.conv2, self.gn2 = nn.Conv2d(32, 64, 3, padding=1), nn.GroupNorm(8, 64)
        self.conv3, self.gn3 = nn.Conv2d(64, 64, 3, padding=1), nn.GroupNorm(8, 64)
        self.conv4, self.gn4 = nn.Conv2d(64, 128, 3, padding=1), nn.GroupNorm(8, 128)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(self.gn1(self.conv1(x))), 2)
        x = F.avg_pool2d(F.relu(self.gn2(self.conv2(x))), 2)
        x = F.avg_pool2d(F.relu(self.gn3(self.conv3(x))), 2)
        x = F.relu(self.gn4(self.conv4(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


MODELS = {"mnist": MNISTNet, "fmnist": MNISTNet, "cifar10": CIFAR10Net}


def compute_epsilon(steps: int, sigma: float, q: float, delta: float) -> tuple[float, float]:
    """The benchmark's ε after `steps` steps: per-step RDP α q²/(2σ²), its own conversion; (ε, best α)."""
    epsilon, order = min((steps * alpha * q**2 / (2 * sigma**2) + math.log(1 / delta) / (alpha - 1)
                          + math.log(1 - 1 / alpha), alpha) for alpha in RDP_ORDERS)
    return max(epsilon, 0.0), order


def calibrate_noise_to_epsilon(target_epsilon: float, steps: int, q: float, delta: float,
                               tol: float = 1e-3) -> float:
    """Bisection on σ over [0.01, 100] until the bracket is narrower than `tol`; its midpoint."""
    low, high = 0.01, 100.0
    while high - low > tol:
        mid = (low + high) / 2
        if compute_epsilon(steps, mid, q, delta)[0] > target_epsilon:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def compute_per_sample_gradients(model: nn.Module, data: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """The original's exact per-example gradients: one forward and backward pass per example."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros(data.shape[0], *p.shape, dtype=p.dtype, device=p.device) for p in params]
    for i in range(data.shape[0]):
        model.zero_grad()
        F.cross_entropy(model(data[i:i + 1]), target[i:i + 1]).backward()
        for grad, p in zip(grads, params):
            grad[i] = p.grad
    model.zero_grad()
    return grads


# The namespace a mechanism file runs in: the names TASK.original_names lists (and says why they are those).
NAMES = {"argparse": argparse, "math": math, "os": os, "sys": sys, "np": np, "torch": torch, "nn": nn, "F": F,
         "optim": optim, "sp_optimize": sp_optimize, "DataLoader": DataLoader, "Subset": Subset,
         "datasets": datasets, "transforms": transforms, "compute_epsilon": compute_epsilon,
         "calibrate_noise_to_epsilon": calibrate_noise_to_epsilon, "MNISTNet": MNISTNet,
         "CIFAR10Net": CIFAR10Net, "compute_per_sample_gradients": compute_per_sample_gradients}
