"""optrepro: reproduce ML optimization benchmarks from scratch and compare the strategies submitted to them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optrepro")
except PackageNotFoundError:  # the source tree imported without being installed
    __version__ = "unknown"
