"""The faults a hostile or careless strategy author, user or host can cause, and what each must come to.

Each runner fault is a parity strategy whose `make_dataset` (or whole file) misbehaves; it goes through the real
runner (`python -m optrepro.runner`, its default sandbox, the strategy in its own process inside it) and must end
as the run's own result with `error` matching. docs/failures.md has one row per fault here and
per workflow fault (test_fault_workflow.py), with what the user sees.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HEADER = "import os, signal, subprocess, sys, time, socket\n"
INIT = "def init_model(model, config):\n    pass\n\n"
OPTIMIZER = ('def get_optimizer_config(config):\n'
             '    return {"lr": 1e-3, "wd": 0.0, "beta1": 0.9, "beta2": 0.999}\n')
GOOD_DATA = "x = torch.randint(0, 2, (64, config.n_features)).float(); return x, parity_labels(x, secret)"
# A death of the strategy's process, as the driver reports it after the strategy file's path.
ENDED = r".*: the strategy's process ended while running make_dataset: "
# What the driver's last lines would say of a perfect run (the record must keep the real ones: num_runs 1).
FORGED = ("FINAL_METRICS test_accuracy=1.000000 score=1.000000 test_accuracy_std=0.000000 mean_steps=1.000000 "
          "num_runs=99")


def strategy(body: str = GOOD_DATA, init: str = "pass", header: str = HEADER) -> str:
    """A parity strategy file whose make_dataset runs `body` (placeholders filled in by `Fault.text`)."""
    return (header + f"def init_model(model, config):\n    {init}\n\n"
            f"def make_dataset(secret, config, seed):\n    {body}\n\n" + OPTIMIZER)


SAME = object()  # a Fault's outcome where bubblewrap cannot run: the same as with it


@dataclass(frozen=True)
class Fault:
    id: str
    source: str  # the strategy file; {run_dir}, {other} (another run's folder), {marker} (a token unique to the
    # test, for processes and files to look for) and {port} (a listening local port) are filled in
    error: str | None  # regex the record's error must match from its start; None: the run is ok
    sees: str  # what the user sees, for docs/failures.md
    time_limit: float | None = None
    # Where bubblewrap cannot run (tests.conftest.WITHOUT_BWRAP): the record's error there, where it differs, and
    # the one containment check (a key of `contained` in test_fault_runner) that a bare host, with nothing to
    # confine the strategy, does not pass; the test asserts that it indeed got through.
    confined_error: str | None | object = SAME
    bare_error: str | None | object = SAME
    bare_escape: str | None = None

    def expected_error(self, host: str) -> str | None:
        """The record's error on `host` (bwrap, confined or bare), as a regex; None: the run is ok."""
        error = {"bwrap": self.error, "confined": self.confined_error, "bare": self.bare_error}[host]
        return self.error if error is SAME else error

    def text(self, **values: str) -> str:
        """The strategy file with its placeholders filled in."""
        text = self.source
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text


RUNNER_FAULTS = [
    Fault("loops-forever", strategy("while True: pass"), r"timed out after 3 s$",
          "failed run `timed out after N s`; the driver's process group is ended", time_limit=3),
    Fault("child-outlives", strategy("subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(999)', "
                                     "'{marker}']); time.sleep(999)"), r"timed out after 3 s$",
          "failed run (timed out); the strategy's children end with it", time_limit=3),
    Fault("out-of-memory", strategy("os.kill(os.getpid(), signal.SIGKILL)"),
          ENDED + r"killed by SIGKILL \(out of memory\?\)$",
          "failed run `the strategy's process ended while running make_dataset: killed by SIGKILL (out of memory?)`"),
    Fault("keyboard-interrupt", strategy("raise KeyboardInterrupt"), ENDED + r"interrupted$",
          "failed run `... ended while running make_dataset: interrupted`"),
    Fault("segfault", strategy("os.kill(os.getpid(), signal.SIGSEGV)"), ENDED + r"killed by SIGSEGV$",
          "failed run `... ended while running make_dataset: killed by SIGSEGV`"),
    Fault("exit-0-silently", strategy("sys.exit(0)"), ENDED + r"exit status 0$",
          "failed run `... ended while running make_dataset: exit status 0`"),
    Fault("hard-exit", strategy("os._exit(3)"), ENDED + r"exit status 3$",
          "failed run `... ended while running make_dataset: exit status 3`"),
    Fault("forge-metrics-and-exit", strategy(f"print({FORGED!r}, flush=True); os._exit(0)"), ENDED + r"exit status 0$",
          "failed run: the line went to the job log as `strategy| FINAL_METRICS ...`, never into `run.log`"),
    Fault("forge-metrics", strategy(f"print({FORGED!r}, flush=True); " + GOOD_DATA), None,
          "ok run with its real numbers; the forged line is in the job log, prefixed `strategy| `"),
    Fault("patch-driver", strategy("import optrepro.metrics; optrepro.metrics.emit = lambda *a, **k: None; "
                                   + GOOD_DATA), None,
          "ok run: the strategy patched its own process's copy of the driver's code, not the driver"),
    Fault("raises", strategy("raise ValueError('no data for ' + str(secret))"),
          r".*make_dataset raised ValueError: no data for \(.*\) \(s\.py:\d+\)$",
          "failed run with the exception and the strategy's file and line"),
    Fault("syntax-error", "def make_dataset(:\n", r".*SyntaxError: .* \(line 1\)$",
          "failed run `SyntaxError: ... (line N)`"),
    Fault("missing-function", HEADER + INIT + OPTIMIZER, r".*missing function\(s\) make_dataset$",
          "failed run naming the missing functions"),
    Fault("wrong-return", strategy("return None"), r".*make_dataset",
          "failed run saying what make_dataset returned instead"),
    Fault("nan-weights", strategy(init="torch.nn.init.constant_(model[0].weight, float('nan'))"),
          r"diverged: loss nan at step 1", "failed run `diverged: loss nan at step 1 (...)`, numbers kept, unranked"),
    Fault("rewrite-other-record", strategy("open('{other}/record.json', 'w').write('forged'); " + GOOD_DATA),
          r".*make_dataset raised FileNotFoundError", "failed run; to the strategy `results/` is an empty folder",
          bare_error=None, bare_escape="other-record"),
    Fault("write-repository", strategy("import optrepro; open(os.path.join(os.path.dirname(optrepro.__file__), "
                                       "'planted_{marker}.py'), 'w'); " + GOOD_DATA),
          r".*make_dataset raised (PermissionError|OSError).*(Read-only file system|Permission denied)",
          "failed run; nothing is written outside the run directory", bare_error=None, bare_escape="repository"),
    Fault("write-system", strategy("open('/var/tmp/{marker}', 'w'); " + GOOD_DATA),
          r".*make_dataset raised (PermissionError|OSError).*(Read-only file system|Permission denied)",
          "failed run; the rest of the file system is read-only too", bare_error=None, bare_escape="system"),
    Fault("shell-command", strategy("os.system('touch /tmp/{marker}'); " + GOOD_DATA), None,
          "ok run; the command ran in the sandbox's private /tmp, nothing outside changed", bare_escape="tmp"),
    Fault("network", strategy("socket.create_connection(('127.0.0.1', {port}), timeout=5); " + GOOD_DATA),
          r".*make_dataset raised (ConnectionRefusedError|OSError)",
          "failed run; no connection leaves the sandbox (no network)", bare_error=None, bare_escape="network"),
    Fault("driver-stdout", strategy("drivers = [p for p in os.listdir('/proc') if p.isdigit() and "
                                    "b'optrepro.tasks' in open(f'/proc/{p}/cmdline', 'rb').read()]; "
                                    f"[open(f'/proc/{{p}}/fd/1', 'a').write('\\n' * 10**6 + {FORGED!r} + '\\n') "
                                    "for p in drivers]; " + GOOD_DATA),
          r".*make_dataset raised PermissionError",
          "failed run: the driver's descriptors (its stdout, the log) are out of the strategy's reach (a line far past "
          "the driver's own output would be the last FINAL_METRICS line)",
          bare_error=None, bare_escape="run-log"),
    Fault("daemon", strategy("subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(999)', "
                             "'{marker}'], start_new_session=True); " + GOOD_DATA), None,
          "ok run; the daemon it left ends with the run (its own process tree)"),
    Fault("forge-own-files", strategy("open('{run_dir}/record.json', 'w').write('forged'); "
                                      "open('{run_dir}/run.log', 'w').write('FINAL_METRICS test_accuracy=1.0'); "
                                      + GOOD_DATA), r".*make_dataset raised FileNotFoundError",
          "failed run: its run directory is out of the strategy's reach (the runner writes both files last anyway)",
          confined_error=None, bare_error=None),
]


# DP-SGD mechanisms: the baseline with one statement added to clip_and_noise ({first}) or to __init__ ({init}).
DP_FORGED = ("FINAL_METRICS score=99.9900 accuracy=99.9900 best_accuracy=99.9900 epsilon=0.0100 epsilon_rdp=0.0100 "
             "sigma=9.000000 sigma_reported=9.000000 audit=ok audit_ratio=1.0000 private=1 target_epsilon=3.000000 "
             "accountant=benchmark sampling=shuffled neighbours=add-remove target_delta=1e-05")
DP_CLASHING = "FINAL_METRICS task=forged strategy=forged status=ok seed=0 score=99.99"
# Tensors in the mechanism's process that look like a test set's labels, overwritten with the model's guesses'
# likeliest value (0); in the driver's process they would be the real labels.
LABELS = ("[t.zero_() for t in gc.get_objects() if isinstance(t, torch.Tensor) and t.dtype == torch.int64 "
          "and t.dim() == 1 and t.numel() >= 40]")
FRAMES = ("f = sys._getframe()\n        while f:\n            [v.zero_() for v in f.f_locals.values() if isinstance(v, "
          "torch.Tensor) and v.dtype == torch.int64]\n            f = f.f_back")


def mechanism(first: str = "pass", init: str = "pass", header: str = "import atexit, gc, inspect, os, sys\n") -> str:
    """The baseline DP mechanism with `init` at the end of __init__ and `first` opening clip_and_noise."""
    source = (Path(__file__).resolve().parents[2] / "strategies" / "dpsgd" / "standard_dpsgd.py").read_text()
    source = source.replace("        self.noise_multiplier = noise_multiplier\n",
                            f"        self.noise_multiplier = noise_multiplier\n        {init}\n")
    source = source.replace("        batch = per_sample_grads[0].shape[0]\n",
                            f"        {first}\n        batch = per_sample_grads[0].shape[0]\n")
    return header + source


def noise_only_when(audited: str) -> str:
    """The baseline adding its noise only when `audited` (an expression) holds."""
    return mechanism(first=f"audited = {audited}").replace(
        "noise_std = self.noise_multiplier", "noise_std = float(audited) * self.noise_multiplier")


@dataclass(frozen=True)
class DPFault:
    id: str
    source: str
    outcome: str  # "failed: <regex of the error>", "honest" (the honest run's numbers), "unranked" (private 0)
    sees: str


UNDER_NOISED = "unranked: its audit measures the noise it adds in training, none (`under-noised:0.00`, private 0)"
DP_FAULTS = [
    DPFault("dp-forge-and-exit", mechanism(f"print({DP_FORGED!r}, flush=True); os._exit(0)"),
            r"failed: .*: the strategy's process ended while running clip_and_noise: exit status 0$",
            "failed run; the forged line only in the job log, prefixed `strategy| `"),
    DPFault("dp-forge-at-exit", mechanism(init=f"atexit.register(print, {DP_FORGED!r})"), "honest",
            "ok run with its real numbers: the line the mechanism's process prints as it ends is prefixed"),
    DPFault("dp-forge-clashing-keys", mechanism(f"print({DP_CLASHING!r}, flush=True)"), "honest",
            "ok run with its real numbers; the report reads only the driver's lines"),
    DPFault("dp-overwrite-labels", mechanism(LABELS), "honest",
            "ok run with its real numbers: the test labels are not in the mechanism's process"),
    DPFault("dp-overwrite-through-frames", mechanism(FRAMES), "honest",
            "ok run with its real numbers: no driver frame is on the mechanism's stack"),
    DPFault("dp-patch-evaluate", mechanism(init="sys.modules['optrepro.tasks.dpsgd.driver'].evaluate = "
                                                "lambda *a: (0.0, 100.0)"), "honest",
            "ok run with its real numbers: it patched its own process's copy of the driver"),
    DPFault("dp-patch-torch", mechanism(init="torch.Tensor.__eq__ = lambda a, b: torch.ones_like(a, dtype=bool)"),
            "honest", "ok run with its real numbers: torch is patched in the mechanism's process only"),
    DPFault("dp-dodge-stack", noise_only_when("any(f.function == 'audit_step' for f in inspect.stack())"),
            "unranked", UNDER_NOISED),
    DPFault("dp-dodge-deepcopy", noise_only_when("getattr(self, 'probed', False)").replace(
        "    def get_effective_sigma", "    def __deepcopy__(self, memo):\n"
        "        copied = type(self).__new__(type(self))\n"
        "        copied.__dict__.update(self.__dict__, probed=True)\n        return copied\n\n"
        "    def get_effective_sigma"), "unranked", UNDER_NOISED),
    DPFault("dp-dodge-initial-seed", noise_only_when("torch.initial_seed() != self.seed").replace(
        "self.noise_multiplier = noise_multiplier\n", "self.noise_multiplier = noise_multiplier\n"
        "        self.seed = torch.initial_seed()\n", 1), "unranked", UNDER_NOISED),
    DPFault("dp-numpy-noise", mechanism().replace(
        "mean + noise_std * torch.randn_like(mean)",
        "mean + noise_std * torch.from_numpy(np.random.standard_normal(tuple(mean.shape))).to(mean.dtype)"),
            "private", "ok run, audited `ok` and ranked: honest noise from numpy's generator is measured as such"),
]


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line contains `marker`, seen from outside any sandbox."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    (proc / "stat").read_text().split(") ")[1][0] != "Z":
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def gone(marker: str, timeout: float = 60) -> bool:
    """Whether no process holds `marker` (waiting up to `timeout` s for the dying: a safety net, not a speed bound)."""
    deadline = time.monotonic() + timeout
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_with(marker)


class Listener:
    """A local TCP server that counts the connections it accepts."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port, self.accepted = self.socket.getsockname()[1], 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()
