"""Devices, in one place: which one a run asks for, which one its driver resolved, and how the runner learns it.

Two halves. The torch-free half serves the plan (job resources), the runner (the sandbox's /dev, the record) and
the provenance: whether a run will use CUDA is told from `nvidia-smi` and CUDA_VISIBLE_DEVICES, and the device a
driver resolved reaches the runner as one stderr line (DEVICE_LINE), so neither imports torch. The torch half
(`resolve_device`, `device_info`) serves the drivers and imports torch when called.
"""

from __future__ import annotations

import json
import os
import platform
import shutil

from .tasks.scale import parse_bool

REQUESTS = ("auto", "cpu", "cuda")
# The driver's stderr line saying which device it runs on, printed where the runner asks for it (DEVICE_ENV=1;
# a driver run by hand keeps its stderr for errors); the runner records it and so imports no torch.
DEVICE_LINE = "OPTREPRO_DEVICE "
DEVICE_ENV = "OPTREPRO_REPORT_DEVICE"
DEVICE_FIELDS = ("resolved", "name", "cuda", "cuda_graphs")  # of DEVICE_LINE, which the record keeps
# OPTREPRO_CUDA_GRAPHS=0 runs every step eagerly: the same numbers (tests/test_cuda.py: replay == eager), one
# launch per kernel. The way out on a GPU or PyTorch build where capture fails; a run's record says which ran.
GRAPHS_ENV = "OPTREPRO_CUDA_GRAPHS"


def graphs_enabled() -> bool:
    """Whether CUDA steps are replayed as CUDA graphs (GRAPHS_ENV, default 1); a value that is no boolean is a
    ValueError naming the variable."""
    value = os.environ.get(GRAPHS_ENV, "1")
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"{GRAPHS_ENV}={value!r}: expected 1 (CUDA graphs, the default) or 0 (eager steps)") \
            from None


def cuda_visible() -> bool:
    """Whether this host has an NVIDIA GPU, without importing torch (the Snakefile is parsed often; runners
    must stay light)."""
    return shutil.which("nvidia-smi") is not None and os.environ.get("CUDA_VISIBLE_DEVICES", "0") != ""


def uses_cuda(requested: str) -> bool:
    """Whether a run asked for `--device requested` will use CUDA here (`cuda`, or `auto` on a GPU host), told
    without torch: for job resources and the sandbox's devices, before any driver starts."""
    return requested == "cuda" or (requested == "auto" and cuda_visible())


def device_from_stderr(lines: list[str], requested: str) -> dict[str, object]:
    """The driver's first DEVICE_LINE (printed before the strategy is loaded, so a strategy cannot forge it);
    without one (the driver failed earlier) only what was requested."""
    for line in lines:
        if line.startswith(DEVICE_LINE):
            try:
                found = json.loads(line[len(DEVICE_LINE):])
            except ValueError:
                break
            if isinstance(found, dict):
                return {"requested": requested, **{key: found.get(key) for key in DEVICE_FIELDS}}
            break
    return {"requested": requested, **dict.fromkeys(DEVICE_FIELDS)}


def resolve_device(name: str):
    """`auto` = CUDA if available else CPU; `cuda` without CUDA is an error rather than a silent CPU run."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but CUDA is not available.")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def device_info(requested: str, device) -> dict[str, object]:
    """What `--device requested` resolved to (`device`, a torch.device from resolve_device), its name, and on
    CUDA whether steps are replayed as CUDA graphs: what DEVICE_LINE carries."""
    import torch

    use_cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if use_cuda else (platform.processor() or platform.machine())
    return {"requested": requested, "resolved": device.type, "name": name,
            "cuda": torch.version.cuda if use_cuda else None, "cuda_graphs": graphs_enabled() if use_cuda else None}
