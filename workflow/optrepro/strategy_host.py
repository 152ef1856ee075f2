"""Strategy code in a process of its own: only what a strategy function returns comes back to the driver.

Why: a strategy is untrusted code. Inside the driver it could print the driver's METRICS lines, patch the
driver or read what the driver holds; in a process of its own it can do none of that under bubblewrap or
confinement (on a bare host, as root, it reaches the driver through /proc: see docs/failures.md). Here (parity
and bilevel; DP-SGD mechanisms are called at every step and stay in the training process) the driver starts a
host process that loads the strategy file and calls its functions on request. With every call the driver sends
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
and 1s). Results go through a file in an exchange folder and are memory-mapped, not copied.

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
import dataclasses
import functools
import json
import os
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
REQUEST, REPLY = "request.pt", "reply.pt"


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


class StrategyHost:
    """The driver's handle on a strategy file loaded in a host process; its functions are attributes, called
    as in-process ones would be (arguments, return value, random streams, exceptions as StrategyError)."""

    def __init__(self, task: str, path: str | Path, functions: tuple[str, ...], device: torch.device,
                 accepted: tuple[type, ...] = ()):
        self.path, self.device = str(path), device
        read_source(Path(path))  # one that cannot be read fails here, as in-process, not in the sandbox's set-up
        self.accepted = {cls.__name__: cls for cls in accepted}
        undumpable()  # the host, the same user, cannot reach the driver's memory or descriptors through /proc
        self.exchange = Path(tempfile.mkdtemp(prefix="optrepro-strategy-"))
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        command = [sys.executable, "-m", "optrepro.strategy_host", "--task", task,
                   "--strategy", str(Path(path).resolve()), "--device", device.type, "--exchange", str(self.exchange),
                   "--requests", str(requests_read), "--replies", str(replies_write)]
        hidden = [Path(os.environ[DATA_ROOT_ENV])] if os.environ.get(DATA_ROOT_ENV) else []
        command, self.sandbox, _ = wrap(command, os.environ.get(SANDBOX_ENV, "auto"), self.exchange,
                                        [Path(path), *code_paths(*external_files(task))], device.type == "cuda",
                                        Path.cwd(),
                                        [*hidden, Path.cwd() / "results"], nested=True)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=child_env(),
                                        pass_fds=(requests_read, replies_write), preexec_fn=die_with_parent)
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

    def call(self, name: str, *args: object) -> object:
        modules = [arg for arg in args if isinstance(arg, torch.nn.Module)]
        torch.save({"name": name, "args": args, "rng": rng_states(self.device)}, self.exchange / REQUEST)
        self.requests.write(json.dumps({"call": name}) + "\n")
        self.requests.flush()
        answer = self.answer(f"running {name}")
        reply_path = self.exchange / REPLY
        try:
            reply = torch.load(reply_path, weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - whatever the host left there, it is its failure
            raise StrategyError(self.path, f"{name}: unreadable reply from the strategy's process ({exc})") from None
        finally:
            reply_path.unlink(missing_ok=True)
        set_rng_states(reply["rng"], self.device)
        if not answer["ok"]:
            raise StrategyError(self.path, answer["error"])
        for module, state in zip(modules, reply["modules"]):
            try:
                module.load_state_dict(state)
            except (RuntimeError, TypeError, KeyError) as exc:
                raise StrategyError(self.path, f"{name} changed the model's structure: {exc}") from None
        return rebuilt(reply["result"], self.accepted)

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
        shutil.rmtree(self.exchange, ignore_errors=True)

    def __enter__(self) -> StrategyHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(args: argparse.Namespace) -> int:
    """The host: load the strategy, then answer the driver's calls until it closes the requests."""
    requests, replies = os.fdopen(args.requests, "r"), os.fdopen(args.replies, "w")
    exchange, device = Path(args.exchange), torch.device(args.device)
    task = get(args.task)
    driver = task.load_driver()

    def answer(message: dict[str, object]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    try:
        strategy = load_strategy(args.strategy, driver.namespace(), task.strategy_functions)
    except StrategyError as exc:
        answer({"ok": False, "error": exc.message})
        return 0
    answer({"ok": True})
    for line in requests:
        name = json.loads(line)["call"]
        request = torch.load(exchange / REQUEST, weights_only=False)  # from the driver, which the host trusts
        (exchange / REQUEST).unlink()
        set_rng_states(request["rng"], device)
        modules = [arg for arg in request["args"] if isinstance(arg, torch.nn.Module)]
        try:
            result = plain(call_strategy(args.strategy, name, getattr(strategy, name), *request["args"]))
            if driver.compact_result:  # on the plain form: numpy arrays are tensors by then
                result = plain(driver.compact_result(name, result))
            error = None
        except StrategyError as exc:
            result, error = None, exc.message
        states = [plain(dict(module.state_dict())) for module in modules] if error is None else []
        torch.save({"result": result, "modules": states, "rng": rng_states(device)}, exchange / REPLY)
        result = states = request = None  # a training set is not kept here while the driver maps its copy
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
    return serve(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
