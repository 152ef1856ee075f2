"""The METRICS line protocol of all three benchmarks: write and parse, in one place.

The original drivers print `KIND key=value ...` lines (floats fixed-point, 6
decimals unless a task says otherwise) plus a few free-form DP-SGD lines.
Writing and reading both live here so that our logs stay byte-compatible with
the original benchmark's and logs of the original can be imported.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Iterable, Mapping

# Line kinds that use the `KIND key=value ...` shape.
KEY_VALUE_KINDS = (
    "TASK_CONFIG",
    "DATASET_METRICS",
    "TRAIN_METRICS",
    "RUN_METRICS",
    "FINAL_METRICS",
    "TEST_METRICS",
)
# Kinds whose last occurrence holds a run's final metrics, in order of preference.
FINAL_KINDS = ("FINAL_METRICS", "TEST_METRICS")


@dataclass(frozen=True)
class MetricsLine:
    """One parsed line: its kind and its fields in printed order."""

    kind: str
    fields: dict[str, object] = field(default_factory=dict)


DEFAULT_DECIMALS = 6  # the originals print floats with six decimals unless a task says otherwise


def format_value(value: object, decimals: int = DEFAULT_DECIMALS) -> str:
    """Format like the originals: ints plainly, floats fixed-point (nan/inf as Python prints them)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def format_line(kind: str, fields: Mapping[str, object], decimals: Mapping[str, int] | None = None) -> str:
    """`KIND k1=v1 k2=v2 ...`; `decimals` overrides the 6-decimal default per key."""
    decimals = decimals or {}
    parts = [f"{key}={format_value(value, decimals.get(key, DEFAULT_DECIMALS))}" for key, value in fields.items()]
    return " ".join([kind, *parts])


def emit(kind: str, fields: Mapping[str, object], decimals: Mapping[str, int] | None = None,
         stream: IO[str] | None = None) -> str:
    """Print one metrics line and flush at once, as the original drivers do."""
    line = format_line(kind, fields, decimals)
    stream = stream or sys.stdout
    print(line, file=stream, flush=True)
    return line


# The free-form DP-SGD lines; `format_line` covers every other kind.
def format_calibration(sigma: float, epsilon: float, delta: float, steps: int, q: float) -> str:
    return (f"Calibrated noise_multiplier sigma={sigma:.4f} for epsilon={epsilon}, delta={delta}, "
            f"steps={steps}, q={q:.4f}")


def format_model(model: str, n_params: int) -> str:
    return f"Model: {model}, Parameters: {n_params}"


def format_epoch(epoch: int, epochs: int, train_loss: float, train_acc: float, test_loss: float,
                 test_acc: float, epsilon_spent: float, sigma: float) -> str:
    return (f"Epoch {epoch}/{epochs}: train_loss={train_loss:.4f} train_acc={train_acc:.2f}% "
            f"test_loss={test_loss:.4f} test_acc={test_acc:.2f}% epsilon_spent={epsilon_spent:.2f} "
            f"sigma={sigma:.4f}")


def format_final_results(accuracy: float, best_accuracy: float, epsilon: float) -> str:
    return f"Final Results: accuracy={accuracy:.2f}%, best_accuracy={best_accuracy:.2f}%, epsilon={epsilon:.2f}"


def parse_value(text: str) -> object:
    """Turn a printed value back into int, float or (failing both) str; a trailing % is dropped."""
    text = text.rstrip(",").removesuffix("%")
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


_PAIR = re.compile(r"([A-Za-z_][\w]*)=(\S+)")
# Free-form DP-SGD lines, parsed into the same (kind, fields) shape.
_DPSGD_PATTERNS = (
    ("CALIBRATION", re.compile(r"^Calibrated noise_multiplier (?P<rest>.*)$")),
    ("MODEL", re.compile(r"^Model: (?P<model>\w+), Parameters: (?P<n_params>\d+)$")),
    ("EPOCH", re.compile(r"^Epoch (?P<epoch>\d+)/(?P<epochs>\d+): (?P<rest>.*)$")),
    ("FINAL_RESULTS", re.compile(r"^Final Results: (?P<rest>.*)$")),
)


def _pairs(text: str) -> dict[str, object]:
    return {key: parse_value(value) for key, value in _PAIR.findall(text)}


def parse_line(line: str) -> MetricsLine | None:
    """Parse one line of a driver's stdout; None for lines that carry no metrics."""
    line = line.strip()
    head, _, rest = line.partition(" ")
    if head in KEY_VALUE_KINDS:
        return MetricsLine(head, _pairs(rest))
    for kind, pattern in _DPSGD_PATTERNS:
        match = pattern.match(line)
        if match:
            groups = match.groupdict()
            fields = {k: parse_value(v) for k, v in groups.items() if k != "rest"}
            fields.update(_pairs(groups.get("rest") or ""))
            return MetricsLine(kind, fields)
    return None


def parse_log(lines: Iterable[str] | str) -> list[MetricsLine]:
    """Every metrics line of a log (text or iterable of lines), in order."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return [parsed for parsed in map(parse_line, lines) if parsed is not None]


# Lines whose `*loss` fields are training losses, and the fields that say where a line was printed.
LOSS_KINDS = ("TRAIN_METRICS", "EPOCH")
WHERE_FIELDS = ("secret", "order", "run")


def _not_finite(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def divergence(parsed: Iterable[MetricsLine]) -> str | None:
    """Why a run that printed these lines diverged: the first non-finite loss, else a non-finite final score.

    A diverged run is a failed run, whatever its other numbers say (a NaN loss can leave an accuracy of 50 %).
    """
    parsed = list(parsed)
    for line in parsed:
        if line.kind not in LOSS_KINDS:
            continue
        for key, value in line.fields.items():
            if key.endswith("loss") and _not_finite(value):
                at = f"epoch {line.fields['epoch']}" if line.kind == "EPOCH" else f"step {line.fields.get('step')}"
                where = ", ".join(f"{k} {line.fields[k]}" for k in WHERE_FIELDS if k in line.fields)
                return f"diverged: {key} {value} at {at}" + (f" ({where})" if where else "")
    score = final_metrics(parsed).get("score")
    if _not_finite(score):
        return f"diverged: final score is {score}"
    return None


def truncations(parsed: Iterable[MetricsLine]) -> list[str]:
    """One sentence per dataset a scale's row cap cut (DATASET_METRICS with `truncated_from`)."""
    return [f"secret {line.fields.get('secret')}: dataset cut from {line.fields['truncated_from']} to "
            f"{line.fields.get('num_examples')} rows by the scale's row cap"
            for line in parsed if line.kind == "DATASET_METRICS" and "truncated_from" in line.fields]


def final_metrics(parsed: Iterable[MetricsLine]) -> dict[str, object]:
    """The run's headline metrics: the last FINAL_METRICS line, else the last TEST_METRICS line."""
    last: dict[str, MetricsLine] = {}
    for line in parsed:
        if line.kind in FINAL_KINDS:
            last[line.kind] = line
    for kind in FINAL_KINDS:
        if kind in last:
            return dict(last[kind].fields)
    return {}



# A driver under the runner may train several seeds in one process (a grouped job: one cell's seeds); it frames
# each run: RUN_BEGIN before its lines on stdout and on stderr, RUN_END with the run's exit status after them on
# stderr. A strategy cannot frame or end a run: its output reaches the driver's stderr prefixed `strategy| `
# (optrepro.strategy_host), never the driver's stdout.
RUN_BEGIN = "RUN_BEGIN seed="
RUN_END = "RUN_END seed="
_RUN_END = re.compile(re.escape(RUN_END) + r"(-?\d+) status=(\d+)$")


def begin_mark(seed: int) -> str:
    return f"{RUN_BEGIN}{seed}"


def end_mark(seed: int, status: int) -> str:
    return f"{RUN_END}{seed} status={status}"


def begun_seed(line: str) -> int | None:
    """The seed a RUN_BEGIN line starts, else None."""
    text = line.rstrip("\n")
    if text.startswith(RUN_BEGIN) and text[len(RUN_BEGIN):].lstrip("-").isdigit():
        return int(text[len(RUN_BEGIN):])
    return None


def ended_run(line: str) -> tuple[int, int] | None:
    """(seed, exit status) of a RUN_END line, else None."""
    match = _RUN_END.match(line.rstrip("\n"))
    return (int(match[1]), int(match[2])) if match else None


def split_runs(text: str) -> dict[int | None, str]:
    """A grouped driver's stdout cut at its RUN_BEGIN lines: each seed's own lines (without the mark) by seed,
    and what came before the first mark under None."""
    runs: dict[int | None, list[str]] = {None: []}
    current = None
    for line in text.splitlines(keepends=True):
        seed = begun_seed(line)
        if seed is None:
            runs[current].append(line)
        else:
            current = seed
            runs[current] = []
    return {seed: "".join(lines) for seed, lines in runs.items()}
