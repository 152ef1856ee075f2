"""Strategy code in a process of its own: only what a strategy function returns comes back to the driver.

Why: a strategy is untrusted code. Inside the driver it could print the driver's METRICS lines, patch the
driver or read what the driver holds; in a process of its own it can do none of that under bubblewrap or
confinement (on a bare host, as root, it reaches the driver through /proc: see docs/failures.md). Here the
driver starts a host process that loads the strategy file and calls its functions on request; the results of
the functions a driver names `kept` (DP-SGD's `DPMechanism`) stay in the host as objects whose methods the
driver calls there (HostedObject), and a snapshot of the host (a fork on the CPU) answers a call without
touching the live object (the DP-SGD audit's probes). With every call the driver sends
the arguments and the state of every random generator (torch's CPU and CUDA ones, numpy's, `random`'s) and
takes back the return value, the generators' new states and, for a module argument (`init_model`'s model), its
new parameters: every random stream is the one an in-process call would have used, so the numbers a driver
prints do not change (tests/test_strategy_host.py, over every shipped strategy).

Trust runs one way. Requests are pickled (the host trusts the driver); replies are read with
`torch.load(weights_only=True)`, which builds tensors and plain containers only, never an object of the
strategy's choosing. A result travels as tensors (detached, on the CPU), numbers, strings, tuples, lists and
dicts (numpy arrays as tensors, numpy scalars as numbers); a dataclass the driver accepts (bilevel's
ToyStrategy and HypercleanStrategy, parity's PackedInputs) as its fields; any other object as an empty
stand-in of the same type name, which the driver's checks then refuse as they refuse the object. A driver may
first compact a result in the host, losslessly (`Driver.compact_result`: parity bit-packs a training set of 0s
and 1s). Requests go through the pipe, their large tensors (a step's per-example gradients) through shared
memory set up once (Arena); results through a file in an exchange folder, memory-mapped when large.

Isolation: where bubblewrap works (the `sandbox` setting, from the runner in SANDBOX_ENV; default auto) the
host runs in a sandbox nested in the driver's: the file system read-only, the data root and the workflow's
`results/` hidden, no network, user nobody, writable only a private /tmp and the exchange folder; where the
driver is confined instead (optrepro.confine) the host shares its confinement. Its stdout and stderr reach the
driver's stderr with every line prefixed `strategy| `, so a strategy can print neither a METRICS line nor an
`ERROR:` line of the driver. The driver makes itself non-dumpable, so the host (the same user) cannot reach
its memory or file descriptors through /proc. The host ends with the driver (parent-death signal, the driver's
process group), and a host that dies during a call fails the run with the reason.
"""

from __future__ import annotations

import argparse
import base64
import copy
import dataclasses
import fcntl
import functools
import json
import math
import mmap
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from .data.manifest import DATA_ROOT_ENV
from .sandbox import (
    SANDBOX_ENV,
    child_env,
    code_paths,
    death_reason,
    die_with_parent,
    undumpable,
    unwrapped_status,
    wrap,
)
from .strategy import StrategyError, call_strategy, load_strategy, read_source
from .tasks import external_files, get

OUTPUT_PREFIX = "strategy| "
REPLY = "reply.pt"
ARENA_MIN_BYTES = 1 << 16  # tensor arguments this large cross through the shared arena, smaller ones in the request
MMAP_MIN_BYTES = 1 << 24  # replies this large are memory-mapped, not read
# In the host, glibc keeps what the strategy frees for reuse (no mmap below 32 MB, no trimming, the heap grown
# 256 MB at a time), so a step's temporaries (a DP-SGD mechanism's clipped copy of the gradients) do not fault
# in fresh pages every call; without it the separate process cost MNIST about 48 % (bench/dpsgd_speed.py).
KEEP_FREED = ("glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:"
              "glibc.malloc.top_pad=268435456")
ALIGN = 64  # arena offsets, so that a slice views as any dtype
SNAPSHOTS = ("fork", "copy")  # how a snapshot is taken: fork the host (CPU), or deep-copy the kept objects (CUDA)


def rng_states(device: torch.device) -> dict[str, object]:
    """Every random generator a strategy may draw from, as tensors and plain values."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": [torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
              "random": [version, list(internal), gauss_next]}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, object], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["random"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda":
        torch.cuda.set_rng_state_all(states["cuda"])


def advanced_states(states: dict[str, object], rng: random.Random, device: torch.device) -> dict[str, object]:
    """Generator states further along the same streams (each advanced by a number of draws from `rng`): a state the
    run's generators would reach, not a reseeding, so `torch.initial_seed()` and its like read as in training.
    The generators are advanced in place from `states`, then put back as they were."""
    saved = rng_states(device)
    try:
        set_rng_states(states, device)
        torch.empty(rng.randrange(1, 1 << 16)).normal_()
        np.random.random_sample(rng.randrange(1, 1 << 16))
        random.getrandbits(32 * rng.randrange(1, 1 << 16))
        for index in range(len(states.get("cuda", ()))):
            torch.empty(rng.randrange(1, 1 << 16), device=f"cuda:{index}").normal_()
        return rng_states(device)
    finally:
        set_rng_states(saved, device)


def plain(value: object) -> object:
    """`value` as what `torch.load(weights_only=True)` rebuilds (see the module docstring)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):  # before float: numpy's float64 is a float too
        return value.item()
    if value is None or type(value) in (bool, int, float, str):  # not subclasses: those pickle as themselves
        return value
    if isinstance(value, np.ndarray):
        try:
            return torch.from_numpy(np.ascontiguousarray(value))
        except TypeError:  # a dtype torch has no counterpart for
            return {"__object__": "ndarray"}
    if isinstance(value, (tuple, list)):
        return (tuple if isinstance(value, tuple) else list)(plain(item) for item in value)
    if isinstance(value, dict) and all(isinstance(key, (str, int)) for key in value):
        return {key: plain(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__name__,
                "fields": {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}}
    return {"__object__": type(value).__name__}


def rebuilt(value: object, accepted: dict[str, type]) -> object:
    """The inverse of `plain` on the driver's side, for the dataclasses it accepts."""
    if isinstance(value, tuple):
        return tuple(rebuilt(item, accepted) for item in value)
    if isinstance(value, list):
        return [rebuilt(item, accepted) for item in value]
    if isinstance(value, dict):
        if set(value) == {"__dataclass__", "fields"} and value["__dataclass__"] in accepted:
            try:
                return accepted[value["__dataclass__"]](**rebuilt(value["fields"], accepted))
            except TypeError:
                return type(value["__dataclass__"], (), {})()  # same name, other fields: refused downstream
        if set(value) in ({"__dataclass__", "fields"}, {"__object__"}):
            return type(str(value.get("__dataclass__", value.get("__object__"))), (), {})()
        return {key: rebuilt(item, accepted) for key, item in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class ArenaSlot:
    """Where a tensor argument lies in the arena: its byte offset, dtype and shape."""

    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]


def mapped(fd: int, size: int) -> torch.Tensor:
    """The first `size` bytes of the shared memory behind `fd`, as a tensor."""
    return torch.frombuffer(mmap.mmap(fd, size), dtype=torch.uint8) if size else torch.empty(0, dtype=torch.uint8)


def view_of(buffer: torch.Tensor, slot: ArenaSlot) -> torch.Tensor:
    count = math.prod(slot.shape) * torch.empty((), dtype=slot.dtype).element_size()
    return buffer[slot.offset:slot.offset + count].view(slot.dtype).view(slot.shape)


class Arena:
    """Large tensor arguments (a DP-SGD step's per-example gradients) cross to the host through one block of
    shared memory (a memfd both processes map; no file system, no write-back), not through a pickle and a file
    per call: the driver copies each into its slot and sends the slots. It grows when a call needs more room
    (the host maps it again at the new size); sealed against shrinking, so the host cannot pull the pages from
    under the driver. Only the driver writes here and it never reads back: a host writing into its views (a
    mechanism working in place) changes nothing the driver uses."""

    def __init__(self):
        self.fd = os.memfd_create("optrepro-arena", os.MFD_ALLOW_SEALING)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.buffer = mapped(self.fd, 0)

    def place(self, tensors: list[torch.Tensor]) -> list[ArenaSlot]:
        sizes = [-(-t.numel() * t.element_size() // ALIGN) * ALIGN for t in tensors]
        if sum(sizes) > self.buffer.numel():
            os.ftruncate(self.fd, 2 * sum(sizes))
            self.buffer = mapped(self.fd, 2 * sum(sizes))
        slots, offset = [], 0
        for tensor, size in zip(tensors, sizes):
            slot = ArenaSlot(offset, tensor.dtype, tuple(tensor.shape))
            view_of(self.buffer, slot).copy_(tensor.detach())
            slots.append(slot)
            offset += size
        return slots


def in_arena(value: object, large: list[torch.Tensor]) -> object:
    """`value` with each large tensor (collected into `large`, in order) replaced by its index there."""
    if isinstance(value, torch.Tensor) and value.numel() * value.element_size() >= ARENA_MIN_BYTES:
        large.append(value)
        return ArenaIndex(len(large) - 1)
    if isinstance(value, (tuple, list)):
        return type(value)(in_arena(item, large) for item in value)
    return value


@dataclasses.dataclass(frozen=True)
class ArenaIndex:
    index: int


def from_arena(value: object, tensors: list[torch.Tensor]) -> object:
    if isinstance(value, ArenaIndex):
        return tensors[value.index]
    if isinstance(value, (tuple, list)):
        return type(value)(from_arena(item, tensors) for item in value)
    return value


class SnapshotEnded(StrategyError):
    """A snapshot's process ended (exited, crashed) before it answered; the live host goes on."""


class HostedObject:
    """An object a strategy function made (a DP-SGD mechanism) that stays in the strategy's process: its methods
    are called there, as `strategy_host` calls functions. `snapshot` calls one on a snapshot of it instead."""

    def __init__(self, host: StrategyHost, key: int, type_name: str):
        self._host, self._key, self.type_name = host, key, type_name

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._host.call_on(self._key, name, args, kwargs)

    def snapshot(self, name: str, args: tuple, states: dict[str, object]) -> object:
        """`name(*args)` on a snapshot of the object and its process, under generator `states`: the live object
        and the driver's generators are as they were (StrategyHost.snapshot)."""
        return self._host.snapshot(self._key, name, args, states)


class LocalObject:
    """The in-process counterpart of HostedObject (the tests' reference): a snapshot is a deep copy."""

    def __init__(self, path: str, target: object, device: torch.device):
        self._path, self._target, self._device = path, target, device
        self.type_name = type(target).__name__

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._target, name)

    def snapshot(self, name: str, args: tuple, states: dict[str, object]) -> object:
        saved = rng_states(self._device)
        try:
            copied = copy.deepcopy(self._target)
            set_rng_states(states, self._device)
            return call_strategy(self._path, name, getattr(copied, name), *args)
        finally:
            set_rng_states(saved, self._device)


class StrategyHost:
    """The driver's handle on a strategy file loaded in a host process; its functions are attributes, called
    as in-process ones would be (arguments, return value, random streams, exceptions as StrategyError). The
    results of the functions named in `kept` stay in the host as objects (HostedObject); `snapshot` says how
    the host takes a snapshot of them (SNAPSHOTS; by default a fork, deep copies on CUDA)."""

    def __init__(self, task: str, path: str | Path, functions: tuple[str, ...], device: torch.device,
                 accepted: tuple[type, ...] = (), kept: tuple[str, ...] = (), snapshot: str | None = None):
        self.path, self.device = str(path), device
        snapshot = snapshot or ("copy" if device.type == "cuda" else "fork")
        read_source(Path(path))  # one that cannot be read fails here, as in-process, not in the sandbox's set-up
        self.accepted = {cls.__name__: cls for cls in accepted}
        undumpable()  # the host, the same user, cannot reach the driver's memory or descriptors through /proc
        self.exchange = Path(tempfile.mkdtemp(prefix="optrepro-strategy-"))
        self.arena = Arena()
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        command = [sys.executable, "-m", "optrepro.strategy_host", "--task", task,
                   "--strategy", str(Path(path).resolve()), "--device", device.type, "--exchange", str(self.exchange),
                   "--requests", str(requests_read), "--replies", str(replies_write), "--arena", str(self.arena.fd),
                   "--snapshot", snapshot, *[option for name in kept for option in ("--kept", name)]]
        hidden = [Path(os.environ[DATA_ROOT_ENV])] if os.environ.get(DATA_ROOT_ENV) else []
        command, self.sandbox, _ = wrap(command, os.environ.get(SANDBOX_ENV, "auto"), self.exchange,
                                        [Path(path), *code_paths(*external_files(task))], device.type == "cuda",
                                        Path.cwd(),
                                        [*hidden, Path.cwd() / "results"], nested=True)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=child_env(GLIBC_TUNABLES=KEEP_FREED),
                                        pass_fds=(requests_read, replies_write, self.arena.fd),
                                        preexec_fn=die_with_parent)
        os.close(requests_read)
        os.close(replies_write)
        self.requests = os.fdopen(requests_write, "w")
        self.replies = os.fdopen(replies_read, "r")
        self.output = threading.Thread(target=self.relay_output, daemon=True)
        self.output.start()
        answer = self.answer("loading the strategy")
        if not answer["ok"]:
            self.close()
            raise StrategyError(self.path, answer["error"])
        for name in functions:
            setattr(self, name, functools.partial(self.call, name))

    def relay_output(self) -> None:
        for line in self.process.stdout:
            sys.stderr.write(OUTPUT_PREFIX + line)
            sys.stderr.flush()

    def answer(self, doing: str) -> dict[str, object]:
        """The host's next answer line; a host that ended instead fails the run with the reason."""
        line = self.replies.readline()
        if line:
            return json.loads(line)
        try:
            returncode = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            returncode = None
        if returncode is not None:
            returncode = unwrapped_status(returncode, self.sandbox == "bwrap")
        reason = ("it stopped answering" if returncode is None
                  else death_reason(returncode) or f"exit status {returncode}")
        raise StrategyError(self.path, f"the strategy's process ended while {doing}: {reason}")

    def send(self, message: dict[str, object]) -> None:
        self.requests.write(json.dumps(message) + "\n")
        self.requests.flush()

    def call(self, name: str, *args: object, **kwargs: object) -> object:
        return self.call_on(None, name, args, kwargs)

    def call_on(self, key: int | None, name: str, args: tuple, kwargs: dict, states: dict | None = None) -> object:
        """`name(*args, **kwargs)`, a function of the file (`key` None) or a method of kept object `key`, with the
        driver's generator states (or `states`, which then do not come back to the driver)."""
        modules = [arg for arg in args if isinstance(arg, torch.nn.Module)]
        large: list[torch.Tensor] = []
        args = in_arena(args, large)
        request = pickle.dumps({"name": name, "key": key, "args": args, "kwargs": kwargs,
                                "slots": self.arena.place(large), "arena": self.arena.buffer.numel(),
                                "rng": states or rng_states(self.device)})
        self.send({"call": base64.b64encode(request).decode()})
        answer = self.answer(f"running {name}")
        if answer.get("ended"):  # the parent's word: its snapshot ended before answering
            raise SnapshotEnded(self.path, f"the snapshot of the strategy's process ended while running {name}")
        reply_path = self.exchange / REPLY
        try:
            reply = torch.load(reply_path, weights_only=True, mmap=reply_path.stat().st_size > MMAP_MIN_BYTES)
        except Exception as exc:  # noqa: BLE001 - whatever the host left there, it is its failure
            raise StrategyError(self.path, f"{name}: unreadable reply from the strategy's process ({exc})") from None
        finally:
            reply_path.unlink(missing_ok=True)
        if states is None:
            set_rng_states(reply["rng"], self.device)
        if not answer["ok"]:
            raise StrategyError(self.path, answer["error"])
        for module, state in zip(modules, reply["modules"]):
            try:
                module.load_state_dict(state)
            except (RuntimeError, TypeError, KeyError) as exc:
                raise StrategyError(self.path, f"{name} changed the model's structure: {exc}") from None
        result = reply["result"]
        if isinstance(result, dict) and set(result) == {"__kept__", "type"}:
            return HostedObject(self, int(result["__kept__"]), str(result["type"]))
        return rebuilt(result, self.accepted)

    def snapshot(self, key: int, name: str, args: tuple, states: dict[str, object]) -> object:
        """Call a method of kept object `key` on a snapshot of the host: on the CPU a fork of it, whose call goes
        through the same code, with the same stack, as a training call, then ends; with `--snapshot copy` (CUDA,
        where a fork cannot use the device) the host's objects are deep copies for the call."""
        self.send({"snapshot": "begin"})
        self.answer("taking a snapshot")
        ended = False
        try:
            return self.call_on(key, name, args, {}, states)
        except SnapshotEnded:
            ended = True
            raise
        finally:
            if not ended:
                self.send({"snapshot": "end"})
                self.answer("ending a snapshot")

    def close(self) -> None:
        """End the host (closing its requests ends its loop) and remove the exchange folder."""
        self.requests.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.join(timeout=5)
        self.replies.close()
        os.close(self.arena.fd)
        shutil.rmtree(self.exchange, ignore_errors=True)

    def __enter__(self) -> StrategyHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Served:
    """The host's side: the strategy, its kept objects and the arena's mapped file."""

    def __init__(self, args: argparse.Namespace, strategy, compact_result):
        self.args, self.strategy, self.compact_result = args, strategy, compact_result
        self.exchange, self.device = Path(args.exchange), torch.device(args.device)
        self.objects: dict[int, object] = {}
        self.arena = mapped(args.arena, 0)

    def tensors(self, slots: list[ArenaSlot], size: int) -> list[torch.Tensor]:
        if size != self.arena.numel():  # the driver grew it
            self.arena = mapped(self.args.arena, size)
        return [view_of(self.arena, slot).to(self.device) for slot in slots]

    def handle(self, call: str) -> str | None:
        """Answer a request; the error message, if any."""
        request = pickle.loads(base64.b64decode(call))  # from the driver, which the host trusts
        set_rng_states(request["rng"], self.device)
        args = from_arena(request["args"], self.tensors(request["slots"], request["arena"]))
        modules = [arg for arg in args if isinstance(arg, torch.nn.Module)]
        name, key = request["name"], request["key"]
        function = getattr(self.strategy, name) if key is None else getattr(self.objects[key], name, None)
        try:
            if not callable(function):
                raise StrategyError(self.args.strategy, f"{self.objects[key].__class__.__name__} has no method {name}")
            result = call_strategy(self.args.strategy, name, function, *args, **request["kwargs"])
            if key is None and name in self.args.kept:
                self.objects[len(self.objects)] = result
                result = {"__kept__": len(self.objects) - 1, "type": type(result).__name__}
            result = plain(result)
            if self.compact_result:  # on the plain form: numpy arrays are tensors by then
                result = plain(self.compact_result(name, result))
            error = None
        except StrategyError as exc:
            result, error = None, exc.message
        states = [plain(dict(module.state_dict())) for module in modules] if error is None else []
        torch.save({"result": result, "modules": states, "rng": rng_states(self.device)}, self.exchange / REPLY)
        return error


def serve(args: argparse.Namespace) -> int:
    """The host: load the strategy, then answer the driver's calls until it closes the requests."""
    requests, replies = os.fdopen(args.requests, "r"), os.fdopen(args.replies, "w")
    task = get(args.task)
    driver = task.load_driver()

    def answer(message: dict[str, object]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    if args.snapshot == "fork":
        torch.set_num_threads(1)  # a fork of a process whose OpenMP threads ran would hang in its first parallel op
    try:
        strategy = load_strategy(args.strategy, driver.namespace(), task.strategy_functions)
    except StrategyError as exc:
        answer({"ok": False, "error": exc.message})
        return 0
    served = Served(args, strategy, driver.compact_result)
    answer({"ok": True})
    live = None  # the kept objects while a snapshot's copies stand in for them (--snapshot copy)
    for line in requests:
        message = json.loads(line)
        if message.get("snapshot") == "begin":
            if args.snapshot == "copy":
                live, served.objects = served.objects, copy.deepcopy(served.objects)
            elif child := os.fork():  # the parent waits while its snapshot, the child, answers
                os.waitpid(child, 0)
                answer({"ok": True, "ended": True})
                continue
            answer({"ok": True})
        elif message.get("snapshot") == "end":
            if args.snapshot == "fork":
                sys.stdout.flush()
                os._exit(0)  # the child; its parent answers once it has gone
            served.objects, live = live, None
            answer({"ok": True, "ended": True})
        else:
            error = served.handle(message["call"])
            answer({"ok": error is None, "error": error})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="the strategy's process (started by a driver)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--replies", type=int, required=True)
    parser.add_argument("--arena", type=int, required=True, help="the shared memory of large tensor arguments")
    parser.add_argument("--kept", action="append", default=[], help="a function whose result stays here")
    parser.add_argument("--snapshot", choices=SNAPSHOTS, default="fork")
    return serve(parser.parse_args())


if __name__ == "__main__":  # through the module's import name, whose classes (ArenaIndex) the requests pickle
    from optrepro.strategy_host import main as imported_main

    sys.exit(imported_main())
