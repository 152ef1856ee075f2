"""Data on the device and the fast per-step pieces of the driver.

* `load_split`: torchvision's own loader (no download) for the folders
  `optrepro.data` lays out, normalised as the original's transforms do, as
  one tensor.
* `epoch_order`: the original's DataLoader draws, reproduced without
  DataLoader: each iteration of a loader takes one int64 from the CPU
  generator for its workers' base seed, and the shuffling sampler takes a
  second one to seed the generator of its `randperm`. Same seed, same batches;
  test passes take their one draw through `skip_loader_draw`.
* `poisson_batches`: under `corrected`, the sampling its accountant assumes:
  each example joins each step's batch independently with probability q,
  drawn as Opacus's `UniformWithReplacementSampler` draws it (the same
  indices from the same generator), so batch sizes are Binomial(N, q).
* `per_sample_gradients`: every example's exact gradient in one vectorised
  pass (torch.func `vmap` over `grad` of the model applied to a batch of one).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ...data.manifest import DataError

TEST_BATCH_SIZE = 1024
# Per-channel normalisation after scaling pixels to [0, 1].
NORMALIZATION = {"mnist": ((0.1307,), (0.3081,)), "fmnist": ((0.2860,), (0.3530,)),
                 "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}


def load_split(dataset: str, folder: str | Path, train: bool, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, C, H, W] float32 normalised like ToTensor + Normalize, labels int64; the first `limit` if set."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fmnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[dataset]
    try:
        split = cls(str(folder), train=train, download=False)
    except RuntimeError as exc:
        raise DataError(f"{dataset} is not ready under {folder} ({exc}); fetch it with python -m optrepro.data "
                        f"fetch --dataset {dataset} --root <DATA_ROOT>") from None
    images = torch.as_tensor(split.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(split.targets, dtype=torch.int64)
    if limit:
        images, labels = images[:limit], labels[:limit]
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORMALIZATION[dataset])
    return (images.to(torch.float32).div(255) - mean) / std, labels


def skip_loader_draw() -> None:
    """The CPU-generator draw a DataLoader iteration makes for its worker base seed."""
    torch.empty((), dtype=torch.int64).random_()


def epoch_order(n: int) -> torch.Tensor:
    """The permutation a shuffling DataLoader would use for this epoch, consuming the CPU generator as it does."""
    skip_loader_draw()
    seed = int(torch.empty((), dtype=torch.int64).random_().item())
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def poisson_batches(n: int, q: float, steps: int, generator: torch.Generator):
    """`steps` batches of row indices, each row in each batch independently with probability q (one uniform per
    row per step from `generator`, compared with q, as Opacus does); a batch may be empty."""
    for _ in range(steps):
        yield (torch.rand(n, generator=generator) < q).nonzero().reshape(-1)


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of each example's own cross-entropy loss, [B, *shape] per parameter, in `parameters()` order."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return list(grads.values())


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in % over a split, in the original's test batches (one host sync)."""
    skip_loader_draw()
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, x.shape[0], TEST_BATCH_SIZE):
        logits = model(x[start:start + TEST_BATCH_SIZE])
        labels = y[start:start + TEST_BATCH_SIZE]
        loss += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(dim=1) == labels).sum()
    return loss.item() / x.shape[0], 100.0 * correct.item() / x.shape[0]
