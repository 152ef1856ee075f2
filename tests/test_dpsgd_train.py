"""DP-SGD driver pieces (dpsgd.md §5-§7): models, data on the device, batch order, per-example gradients.

* both models have the spec's parameter tensors, in order, and counts;
* the vectorised per-example gradients equal the original's per-example loop;
* `epoch_order` draws from the CPU generator exactly as the original's
  DataLoaders do, so the same seed gives the same batches, epoch after epoch,
  with the test-loader passes in between;
* under `corrected`, `poisson_batches` gives the indices Opacus's own
  Poisson sampler gives from the same generator, and its batch sizes follow
  Binomial(N, q);
* `load_split` reads torchvision's CIFAR-10 folder and normalises like
  ToTensor + Normalize (the MNIST format: test_dpsgd_driver.py).
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
import torchvision
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from scipy import stats
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms

from optrepro.tasks.dpsgd.core import CIFAR10Net, MNISTNet, compute_per_sample_gradients
from optrepro.tasks.dpsgd.vectorised import (
    NORMALIZATION,
    epoch_order,
    evaluate,
    load_split,
    per_sample_gradients,
    poisson_batches,
)

MNIST_SHAPES = [(16, 1, 8, 8), (16,), (32, 16, 4, 4), (32,), (32, 512), (32,), (10, 32), (10,)]
CIFAR_SHAPES = [(32, 3, 3, 3), (32,), (32,), (32,), (64, 32, 3, 3), (64,), (64,), (64,), (64, 64, 3, 3), (64,), (64,),
                (64,), (128, 64, 3, 3), (128,), (128,), (128,), (10, 128), (10,)]


@pytest.mark.parametrize("model, shapes, count", [(MNISTNet, MNIST_SHAPES, 26_010),
                                                  (CIFAR10Net, CIFAR_SHAPES, 132_042)])
def test_models_match_the_spec(model, shapes, count):
    net = model()
    assert [tuple(p.shape) for p in net.parameters()] == shapes
    assert sum(p.numel() for p in net.parameters()) == count
    side = 28 if model is MNISTNet else 32
    assert net(torch.zeros(2, 1 if model is MNISTNet else 3, side, side)).shape == (2, 10)


@pytest.mark.parametrize("model, channels, side", [(MNISTNet, 1, 28), (CIFAR10Net, 3, 32)])
def test_vectorised_gradients_equal_the_per_example_loop(model, channels, side):
    torch.manual_seed(0)
    net = model()
    x, y = torch.randn(5, channels, side, side), torch.tensor([0, 3, 3, 9, 1])
    fast = per_sample_gradients(net, x, y)
    slow = compute_per_sample_gradients(net, x, y)
    assert [tuple(g.shape) for g in fast] == [(5, *p.shape) for p in net.parameters()]
    assert not any(g.requires_grad for g in fast)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_batches_and_draws_match_the_original_dataloaders():
    """Two epochs: train loader (shuffle, drop_last), then a test-loader pass, each epoch; then one more test pass."""
    n, batch = 103, 10
    data = TensorDataset(torch.arange(n))
    train = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
    test = DataLoader(data, batch_size=1024)
    torch.manual_seed(7)
    expected = []
    for _ in range(2):
        expected.append(torch.cat([b for (b,) in train]))
        next(iter(test))
    next(iter(test))
    after = torch.rand(3)
    x, y = torch.zeros(n, 1, 1, 1), torch.zeros(n, dtype=torch.int64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1, 10))
    torch.manual_seed(7)
    for epoch in range(2):
        assert torch.equal(epoch_order(n)[:n // batch * batch], expected[epoch])
        evaluate(model, x, y)
    evaluate(model, x, y)
    assert torch.equal(torch.rand(3), after)


def test_cifar_batches_are_loaded_channels_first(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    md5 = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        blob = pickle.dumps({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [i, i + 1]})
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    meta = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    (folder / "batches.meta").write_bytes(meta)
    # Stock CIFAR10 md5-checks every batch before unpickling: give it the generated files' sums.
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[name, md5[name]] for name in names[:5]])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": hashlib.md5(meta).hexdigest()})
    x, y = load_split("cifar10", tmp_path, train=True)
    mean, std = NORMALIZATION["cifar10"]
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    dataset = cls(tmp_path, train=True, transform=reference)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert torch.equal(x[5], dataset[5][0])
    assert load_split("cifar10", tmp_path, train=False)[0].shape == (2, 3, 32, 32)


def test_poisson_batches_are_opacus_batches():
    n, q, steps = 500, 0.04, 25  # batch_size 20
    opacus = UniformWithReplacementSampler(num_samples=n, sample_rate=q, generator=torch.Generator().manual_seed(7))
    ours = poisson_batches(n, q, steps, torch.Generator().manual_seed(7))
    assert len(opacus) == steps  # Opacus's epoch: 1/q steps, as many as a fixed-size epoch of n // (q n) has
    assert [batch.tolist() for batch in ours] == [list(batch) for batch in opacus]


def test_poisson_batch_sizes_follow_the_binomial():
    """4,000 batches of N = 1,000 at q = 0.02: the sizes' histogram against Binomial(1000, 0.02) by a chi-square
    test (sizes 9..31, the rest pooled at both ends), with their mean and variance beside it."""
    n, q = 1_000, 0.02
    sizes = np.array([batch.numel() for batch in poisson_batches(n, q, 4_000, torch.Generator().manual_seed(1))])
    edges = np.arange(9, 32)
    observed = np.array([(sizes < 9).sum(), *[(sizes == k).sum() for k in edges], (sizes > 31).sum()])
    law = stats.binom(n, q)
    expected = len(sizes) * np.array([law.cdf(8), *law.pmf(edges), law.sf(31)])
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3
    assert abs(sizes.mean() - n * q) < 0.2 and abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.1
