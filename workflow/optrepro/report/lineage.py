"""Which runs stand behind each table cell, and whether they agree on what produced them.

A cell (task × protocol × benchmark × strategy × scale) averages seeds; that is
only meaningful when its runs ran the same strategy file, driver, data, software
and kind of device. `cell_warnings` names every such field on which a cell's ok
runs disagree; `provenance` is the content of reports/provenance.json.
"""

from __future__ import annotations

import pandas as pd

from .summarize import CELL, with_seeds

# Fields a cell's runs must share, with the words a warning uses for them.
SHARED = {"strategy_sha256": "strategy file", "driver_sha256": "driver", "data_sha256": "data",
          "git_commit": "git commit", "git_dirty": "git dirty flag", "python": "Python", "packages": "package versions",
          "device": "device", "device_name": "device model", "sandbox": "sandbox"}
RUN_FIELDS = ["seed", "status", "error", *SHARED, "host", "start", "end", "wall_seconds", "run_dir", "notes"]


def text(value: object) -> str:
    return "" if pd.isna(value) else str(value)


def plain(value: object) -> object:
    """A table value as JSON writes it: None for missing, Python scalars for numpy ones."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def disagreements(cell: pd.DataFrame) -> dict[str, list[str]]:
    """The shared fields on which a cell's ok runs differ, each with its distinct values."""
    ok = cell[cell["status"] == "ok"]
    found = {}
    for field in SHARED:
        values = sorted({text(value) for value in ok[field]}) if field in ok else []
        if len(values) > 1:
            found[field] = values
    return found


def warning_text(differences: dict[str, list[str]]) -> str:
    return "runs disagree on " + "; ".join(f"{SHARED[field]} ({len(values)} values)"
                                           for field, values in differences.items())


def run_notes(cell: pd.DataFrame) -> str:
    """The notes of a cell's ok runs (e.g. datasets cut by the scale's row cap), each once, with its seeds."""
    ok = cell[cell["status"] == "ok"]
    seeds: dict[str, list[str]] = {}
    for _, run in ok.iterrows():
        for note in filter(None, text(run.get("notes")).split("; ")):
            seeds.setdefault(note, []).append(text(run["seed"]))
    return with_seeds(seeds)


def cell_warning(cell: pd.DataFrame) -> str:
    """What a reader must know about a cell: its runs' disagreements and notes ('' when nothing)."""
    differences = disagreements(cell)
    return "; ".join(filter(None, [warning_text(differences) if differences else "", run_notes(cell)]))


def cell_warnings(runs: pd.DataFrame) -> dict[tuple, str]:
    """Cell key (CELL order) → warning, for the cells whose ok runs disagree on a shared field or carry notes."""
    warnings = {}
    for key, cell in runs.groupby(CELL, sort=True, dropna=False):
        if warning := cell_warning(cell):
            warnings[key] = warning
    return warnings


def run_record(run: pd.Series) -> dict[str, object]:
    return {field: plain(run.get(field)) for field in RUN_FIELDS}


def provenance(runs: pd.DataFrame, config: dict, missing_runs: list[str]) -> dict[str, object]:
    """Every cell with its runs and any disagreement, the failed runs with their reasons, the resolved config."""
    cells = []
    for key, cell in runs.groupby(CELL, sort=True, dropna=False):
        differences = disagreements(cell)
        cells.append({**dict(zip(CELL, key)), "warning": cell_warning(cell) or None,
                      "differences": differences, "runs": [run_record(run) for _, run in cell.iterrows()]})
    failed = runs[runs["status"] != "ok"]
    return {"cells": cells,
            "failed_runs": [{field: plain(run[field]) for field in [*CELL, "seed", "error", "run_dir"]}
                            for _, run in failed.iterrows()],
            "missing_runs": missing_runs, "config": config}
