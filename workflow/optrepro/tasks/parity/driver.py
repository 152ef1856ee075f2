"""The sparse-parity driver: `python -m optrepro.tasks.parity --benchmark n32-k8 --strategy FILE --seed 42`.

It prints exactly the original benchmark's METRICS lines, in the original's
order, but prepares every run the way the original does (same seeds, same RNG
consumption) and then trains them all at once (`batched.py`). The command
line and its errors are the shared skeleton's (`optrepro.tasks.cli`).
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import asdict, dataclass, replace

import torch

from ...metrics import emit
from ...strategy import StrategyError, call_strategy
from .. import cli
from .batched import PreparedRun, pack_bits, train_batched
from .config import DEFAULT_TASK, RunResult, TaskConfig, TaskConfigError, resolve_config
from .core import (
    NAMES,
    build_model,
    check_dataset,
    dataset_parts,
    make_test_set,
    normalize_dataset,
    normalize_optimizer_config,
    sample_hidden_secrets,
    set_global_seed,
)

# The TaskConfig fields the original's TASK_CONFIG line leaves out; printed after it where an override set them.
UNPRINTED_FIELDS = ("max_train_examples", "log_interval", "min_steps_before_stop", "early_stop_acc",
                    "early_stop_windows")


def test_seed(seed: int, secret_index: int, test_salt: int | None) -> int:
    """The seed of one secret's test set: the original's `seed·20 000 + i`, which a strategy can derive from the
    seed it is given (and so train on the test set), or under `corrected` that mixed with a salt the driver draws
    and the strategy never sees (TASK_CONFIG prints it, so the record keeps it and `--test-salt` reruns it)."""
    original = seed * 20_000 + secret_index
    return original if test_salt is None else (original + test_salt * 0x9E3779B97F4A7C15) % 2**63


def task_config_fields(config: TaskConfig, test_salt: int | None = None) -> dict[str, object]:
    """The original's fields, then every other field that differs from the benchmark's default, then the test
    sets' salt (`corrected`)."""
    fields = {"N": config.n_features, "K": config.secret_size, "W": config.hidden_width,
              "num_hidden_secrets": config.num_hidden_secrets, "num_orderings": config.num_orderings,
              "test_set_size": config.test_set_size, "batch_size": config.batch_size, "max_steps": config.max_steps}
    fields.update({name: getattr(config, name) for name in UNPRINTED_FIELDS
                   if getattr(config, name) != getattr(DEFAULT_TASK, name)})
    return fields if test_salt is None else {**fields, "test_salt": test_salt}


@dataclass
class PackedInputs:
    """Training inputs of 0s and 1s as `pack_bits` packs them: what the strategy's process sends for them,
    1/32 of float32's bytes (12.8M rows x 64 features: 102 MB, not 3.3 GB written and read back)."""

    bits: torch.Tensor  # uint8 [rows, ceil(n_features / 8)]
    n_features: int

    def checked_bits(self) -> torch.Tensor:
        """The bits, once their form is sound (only a tampered strategy process sends another)."""
        bits, n = self.bits, self.n_features
        if not (type(n) is int and n >= 1 and isinstance(bits, torch.Tensor) and bits.dtype == torch.uint8
                and bits.ndim == 2 and bits.shape[1] == -(-n // 8)):
            raise ValueError("malformed packed inputs from the strategy's process")
        return bits


def compact_result(name: str, result: object) -> object:
    """In the strategy's process: `make_dataset`'s inputs bit-packed where they are one plain 2-D tensor of 0s
    and 1s within the row limit (as the driver would pack them); anything else is sent as it is and checked by
    the driver."""
    if name != "make_dataset":
        return result
    try:
        x, _ = dataset_parts(result)
    except (TypeError, ValueError):
        return result
    if (type(x) is not torch.Tensor or x.ndim != 2 or x.is_complex() or x.is_quantized
            or x.shape[0] > DEFAULT_TASK.max_train_examples):  # refused by the driver whatever the values
        return result
    try:
        packed = PackedInputs(pack_bits(x.detach().cpu()), x.shape[1])
    except ValueError:
        return result
    return {**result, "x": packed} if isinstance(result, dict) else (packed, result[1])


def checked_dataset(strategy, raw, config: TaskConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A `make_dataset` result validated against the benchmark's own row limit, packed, then cut to the scale's
    row cap (`max_train_examples` set below that limit) by keeping its first rows; (bits, y, rows before it)."""
    limit = replace(config, max_train_examples=DEFAULT_TASK.max_train_examples)
    try:
        x, y = dataset_parts(raw)
        if isinstance(x, PackedInputs):
            bits = x.checked_bits()
            y = torch.as_tensor(y, dtype=torch.float32).reshape(-1)
            check_dataset((bits.shape[0], x.n_features), lambda: True, y, limit)
        else:
            x, y = normalize_dataset(raw, limit)
            bits = pack_bits(x[:config.max_train_examples])
    except (TypeError, ValueError) as exc:
        raise StrategyError(strategy.path, f"make_dataset returned an invalid dataset: {exc}") from None
    return bits[:config.max_train_examples], y[:config.max_train_examples], y.shape[0]


def prepare_runs(strategy, config: TaskConfig, seed: int, device: torch.device, test_salt: int | None = None):
    """The original's per-secret and per-run start-up, in its order, without the training itself; the test sets
    salted where `test_salt` is given."""
    secrets = sample_hidden_secrets(config, seed)
    datasets, test_sets, positive_rates, built_rows, runs = [], [], [], [], []
    for i, secret in enumerate(secrets):
        raw = call_strategy(strategy.path, "make_dataset", strategy.make_dataset, secret, config, seed * 10_000 + i)
        bits, y, rows = checked_dataset(strategy, raw, config)
        del raw
        built_rows.append(rows)
        positive_rates.append(float(y.mean()))
        datasets.append((bits, y.to(torch.uint8)))
        test_sets.append(make_test_set(config, secret, test_seed(seed, i, test_salt)))
        for j in range(config.num_orderings):
            set_global_seed(seed * 1_000_000 + i * 1_000 + j)
            model = build_model(config).to(device)
            call_strategy(strategy.path, "init_model", strategy.init_model, model, config)
            raw_optimizer = call_strategy(strategy.path, "get_optimizer_config", strategy.get_optimizer_config, config)
            try:
                optimizer = normalize_optimizer_config(raw_optimizer)
            except (TypeError, ValueError) as exc:
                raise StrategyError(strategy.path, f"get_optimizer_config returned an invalid config: {exc}") from None
            parameters = [model[0].weight, model[0].bias, model[2].weight, model[2].bias]
            runs.append(PreparedRun([p.detach() for p in parameters], optimizer, i, seed * 2_000_000 + i * 1_000 + j))
    return datasets, test_sets, positive_rates, built_rows, runs


def run_benchmark(strategy, config: TaskConfig, seed: int, device: torch.device,
                  test_salt: int | None = None) -> dict[str, object]:
    """Print every METRICS line of one benchmark process; return the final metrics and per-run results."""
    emit("TASK_CONFIG", task_config_fields(config, test_salt))
    datasets, test_sets, positive_rates, built_rows, runs = prepare_runs(strategy, config, seed, device, test_salt)
    outcomes = train_batched(runs, datasets, test_sets, config, device)
    results = []
    for k, (run, outcome) in enumerate(zip(runs, outcomes)):
        i, j = divmod(k, config.num_orderings)
        if j == 0:
            num_examples = datasets[i][1].shape[0]
            truncated = {"truncated_from": built_rows[i]} if built_rows[i] > num_examples else {}
            emit("DATASET_METRICS", {"secret": i, "num_examples": num_examples,
                                     "positive_rate": positive_rates[i], **truncated})
        for step, loss, acc in outcome.log:
            emit("TRAIN_METRICS", {"secret": i, "order": j, "step": step, "loss": loss, "acc": acc})
        emit("RUN_METRICS", {"secret": i, "order": j, "steps": outcome.steps, "test_accuracy": outcome.test_accuracy})
        results.append(RunResult(i, j, outcome.steps, outcome.test_accuracy))
    accuracies = torch.tensor([r.test_accuracy for r in results], dtype=torch.float64)
    mean_accuracy = float(accuracies.mean())
    metrics = {"test_accuracy": mean_accuracy, "score": mean_accuracy,
               "test_accuracy_std": float(accuracies.std(correction=0)),
               "mean_steps": float(torch.tensor([float(r.steps) for r in results], dtype=torch.float64).mean()),
               "num_runs": len(results)}
    emit("FINAL_METRICS", metrics)
    emit("TEST_METRICS", {"test_accuracy": mean_accuracy, "score": mean_accuracy})
    return {"config": asdict(config), "metrics": metrics, "results": [asdict(r) for r in results]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="the original's smoke mode (small budgets)")
    parser.add_argument("--test-salt", type=int, help="corrected: the test sets' salt (default: drawn at random; "
                                                      "TASK_CONFIG prints it), to rerun a run exactly")


@dataclass(frozen=True)
class Configured:
    """What one benchmark process runs: the original's configuration (what strategies see) and the test sets'
    salt, which they must not see (None under `mlsbench`, which keeps the original's test seeds)."""

    config: TaskConfig
    test_salt: int | None


def configure(args: argparse.Namespace, overrides: dict[str, object]) -> Configured:
    config = resolve_config(args.benchmark, args.protocol, overrides, smoke=args.smoke)
    if args.protocol == "mlsbench":
        if args.test_salt is not None:
            raise TaskConfigError("--test-salt belongs to protocol corrected (mlsbench keeps the original's seeds)")
        return Configured(config, None)
    return Configured(config, secrets.randbits(62) if args.test_salt is None else args.test_salt)


def run_configured(strategy, configured: Configured, seed: int, device: torch.device) -> dict[str, object]:
    return run_benchmark(strategy, configured.config, seed, device, configured.test_salt)


def strategy_namespace() -> dict[str, object]:
    """The original module's names (core.NAMES) and its entry points."""
    return {**NAMES, "run_benchmark": run_benchmark, "parse_args": parse_args, "main": main}


DRIVER = cli.Driver("parity", strategy_namespace, run_configured,
                    add_arguments=add_arguments, configure=configure, separate_process=True,
                    accepted_results=(PackedInputs,), compact_result=compact_result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.parse_args(DRIVER, argv)


def main(argv: list[str] | None = None) -> int:
    return cli.main(DRIVER, argv)
