"""Scale overrides (`--set FIELD=VALUE`) shared by every task's driver and job sizing.

A configuration's `overrides` reduce budgets (the quick scale) or resize a
problem; each task names the fields it accepts and their types.
"""

from __future__ import annotations

from typing import Mapping


class TaskConfigError(ValueError):
    """A driver configuration that cannot run: a scale override that names an unknown field or has an invalid
    value, or a resolved configuration that fails the task's checks. (The workflow configuration's own error is
    optrepro.configuration.WorkflowConfigError.)"""


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def parse_overrides(items: list[str], types: Mapping[str, type]) -> dict[str, object]:
    """`field=value` pairs, each converted to its field's type; one precise error for the first bad item."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise TaskConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(types)}")
        convert = parse_bool if types[key] is bool else types[key]
        try:
            overrides[key] = convert(value)
        except ValueError:
            raise TaskConfigError(f"--set {item!r}: {value!r} is not a valid {types[key].__name__}") from None
    return overrides
