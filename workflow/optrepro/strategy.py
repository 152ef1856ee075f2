"""Load a strategy file by path and check its contract.

A strategy of the original benchmarks is the editable region of the driver
module, so it relies on the names that module defined or imported above it.
We execute the file in a namespace holding exactly those names (the task
driver passes them), which lets strategy files written for the original run
unchanged. Every problem becomes a `StrategyError` whose message names the
file and what is wrong; drivers print it as one `ERROR:` line.
"""

from __future__ import annotations
import __future__

import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable, Mapping


class StrategyError(Exception):
    """A strategy file that cannot be loaded, breaks its contract, or raised."""

    def __init__(self, path: str | Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file:line)` for the innermost frame, enough to find the fault in a strategy."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    lines = str(exc).strip().splitlines()
    message = f": {lines[0]}" if lines else ""
    return f"{type(exc).__name__}{message}{where}"


def read_source(path: Path) -> str:
    """The strategy file's text; one that cannot be read is a StrategyError."""
    try:
        return path.read_text()
    except OSError as exc:
        raise StrategyError(path, f"cannot read strategy file ({exc.strerror})") from None


def load_strategy(path: str | Path, namespace: Mapping[str, object], required: Iterable[str]) -> SimpleNamespace:
    """Execute `path` in a copy of `namespace`; return the required callables as attributes.

    The original modules start with `from __future__ import annotations`, so the
    file is compiled in that mode too (annotations are never evaluated).
    """
    path = Path(path)
    source = read_source(path)
    scope = dict(namespace)
    scope["__name__"] = f"optrepro_strategy_{path.stem}"
    scope["__file__"] = str(path)
    try:
        code = compile(source, str(path), "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    except SyntaxError as exc:
        raise StrategyError(path, f"SyntaxError: {exc.msg} (line {exc.lineno})") from None
    try:
        exec(code, scope)
    except Exception as exc:  # noqa: BLE001 - any failure of foreign code is reported, not raised
        raise StrategyError(path, f"failed while loading: {describe_exception(exc)}") from None
    missing = [name for name in required if not callable(scope.get(name))]
    if missing:
        raise StrategyError(path, f"missing function(s) {', '.join(missing)}")
    return SimpleNamespace(**{name: scope[name] for name in required}, path=str(path))


def call_strategy(path: str | Path, name: str, function: Callable, *args, **kwargs):
    """Call a strategy function; any exception it raises becomes a StrategyError naming the call."""
    try:
        return function(*args, **kwargs)
    except StrategyError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StrategyError(path, f"{name} raised {describe_exception(exc)}") from None
