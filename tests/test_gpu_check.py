"""bench/gpu_check.sh --dry-run: the prepared device check, every step at tiny sizes on the CPU, so it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402

pytestmark = pytest.mark.workflow


def test_dry_run_runs_every_part(tmp_path, data_root):
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--data-root", str(data_root),
                           "--out", str(tmp_path)], env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=3600)  # a safety net
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = {part["name"]: part for part in report["parts"]}
    expected = {name for name, *_ in gpu_check.FULL} | {name for name, *_ in gpu_check.SIDE_BY_SIDE}
    assert expected <= set(parts) and len(parts) == len(expected) + 4  # + the tests, start-up, shared jobs, slice
    assert {part["status"] for part in parts.values()} == {"ok"}
    assert report["dry_run"] and report["environment"]["device"] == "cpu"
    assert "skipped" in parts["CUDA tests (pytest -m cuda)"]["result"]  # no GPU here: the tests say so
    for name, *_ in gpu_check.FULL:  # every full benchmark ran its driver to the end
        assert "score=" in parts[name]["result"], parts[name]
    assert all(part["seconds"] > 0 for part in parts.values())
    assert "at once" in parts[f"{gpu_check.SHARED_JOBS} small jobs at once vs one after another"]["result"]
    assert parts[gpu_check.SLICE_NAME]["result"].startswith("9 of 9 runs ok")  # 3 tasks x 1 strategy x 3 seeds
    assert "part" in done.stdout and "seconds" in done.stdout  # the table


def test_a_broken_part_is_its_own_line(tmp_path):
    part = gpu_check.run_part("broken", [sys.executable, "-c", "print('half'); raise SystemExit(3)"], 30, {})
    assert part["status"] == "failed" and part["detail"] == "exit status 3: half"
    slow = gpu_check.run_part("slow", [sys.executable, "-c", "import time; time.sleep(3600)"], 1, {})
    assert slow["status"] == "timed out" and slow["detail"] == "stopped after 1 s"  # it returned: it was ended
    assert gpu_check.run_part("late", ["true"], 0.5, {})["status"] == "skipped"


def wheel(folder: Path, name: str, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel of distribution `name` holding one module."""
    import zipfile

    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "PROBE = 1\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_wheels_install_only_what_is_missing(tmp_path):
    """--wheels installs, without network, the wheels whose distribution is not installed and skips the rest
    (here a broken 'pytest' wheel, which would fail if it were installed)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "optrepro_wheel_probe")
    (wheels / "pytest-0.0.0-py3-none-any.whl").write_bytes(b"not a wheel")
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--wheels", str(wheels), "--dry-run",
                           "--parts", "no such part", "--out", str(tmp_path / "out")],
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "installing 1 missing of 2 wheels" in done.stdout
    assert "written:" in done.stdout and "exit status 0" in done.stdout  # the check ran after the install
