"""The device every driver runs on, chosen the same way by all of them."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` = CUDA if available else CPU; `cuda` without CUDA is an error rather than a silent CPU run."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but CUDA is not available.")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")
