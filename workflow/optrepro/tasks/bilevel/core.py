"""The names of the original bilevel module (docs/tasks/bilevel.md) that strategy files run among.

`NAMES` is an explicit list; the driver adds its entry points (`run_toy`, `run_hyperclean`, the methods,
`parse_args`, `main`). The original's reference code they name lives in `toy.py` (the toy problem and the
original's loop) and `hyperclean.py` (data hyper-cleaning: data, models, losses, evaluation).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...device import resolve_device
from .config import (
    DEFAULT_HYPERCLEAN,
    DEFAULT_TOY,
    HypercleanConfig,
    HypercleanEval,
    HypercleanStrategy,
    ToyProblemConfig,
    ToyStrategy,
)
from .hyperclean import (
    HypercleanSplit,
    compute_accuracy,
    compute_cleaner_metrics,
    load_hyperclean_splits,
    make_eval_record,
    make_model,
    resolve_dataset_root,
    set_global_seed,
    sum_squared_norm,
    summarize_hyperclean_metrics,
    update_best_by_accuracy,
    update_best_by_f1,
    yforward,
)
from .toy import (
    project_x,
    run_toy_reference,
    toy_df,
    toy_df_exact,
    toy_dg,
    toy_f,
    toy_g,
    toy_gpbgd_penalty_grad,
    toy_penalized_gradient,
    toy_starting_points,
)


class LazyModule(types.ModuleType):
    """A module imported at the first use of one of its attributes."""

    def __getattr__(self, name: str) -> object:
        return getattr(importlib.import_module(self.__name__), name)


# Offered to strategies as the original module offered it; importing torchvision takes about a second per process
# (driver and strategy process), which the toy and every strategy that never names it need not pay.
datasets = LazyModule("torchvision.datasets")


# The names the original module defined or imported above its editable region that are defined here.
# The `hypergrad` helper package (`hg`) is not offered: no strategy uses it.
NAMES = {
    "argparse": argparse, "json": json, "math": math, "os": os, "random": random, "sys": sys, "time": time,
    "asdict": asdict, "dataclass": dataclass, "Path": Path, "torch": torch, "nn": nn, "F": F, "datasets": datasets,
    "ToyProblemConfig": ToyProblemConfig, "DEFAULT_TOY": DEFAULT_TOY, "ToyStrategy": ToyStrategy,
    "HypercleanConfig": HypercleanConfig, "DEFAULT_HYPERCLEAN": DEFAULT_HYPERCLEAN,
    "HypercleanStrategy": HypercleanStrategy, "HypercleanEval": HypercleanEval, "resolve_device": resolve_device,
    "toy_f": toy_f, "toy_df": toy_df, "toy_df_exact": toy_df_exact, "toy_g": toy_g, "toy_dg": toy_dg,
    "toy_gpbgd_penalty_grad": toy_gpbgd_penalty_grad, "toy_penalized_gradient": toy_penalized_gradient,
    "project_x": project_x, "toy_starting_points": toy_starting_points, "run_toy_reference": run_toy_reference,
    "set_global_seed": set_global_seed, "resolve_dataset_root": resolve_dataset_root,
    "HypercleanSplit": HypercleanSplit, "load_hyperclean_splits": load_hyperclean_splits, "make_model": make_model,
    "yforward": yforward, "sum_squared_norm": sum_squared_norm, "compute_accuracy": compute_accuracy,
    "compute_cleaner_metrics": compute_cleaner_metrics, "make_eval_record": make_eval_record,
    "update_best_by_accuracy": update_best_by_accuracy, "update_best_by_f1": update_best_by_f1,
    "summarize_hyperclean_metrics": summarize_hyperclean_metrics,
}
