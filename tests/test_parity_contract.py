"""The parity strategy contract and seed derivation (docs/tasks/parity.md), through the real driver."""

import random
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from optrepro.metrics import parse_log
from optrepro.strategy import StrategyError
from optrepro.strategy_host import plain
from optrepro.tasks.parity.batched import pack_bits, unpack_bits
from optrepro.tasks.parity.config import resolve_config
from optrepro.tasks.parity.core import all_binary, normalize_dataset, parity_labels, sample_hidden_secrets
from optrepro.tasks.parity.driver import (
    DRIVER,
    PackedInputs,
    checked_dataset,
    compact_result,
    main,
    prepare_runs,
    task_config_fields,
)

REPO = Path(__file__).resolve().parent.parent

GOOD = {
    "init": "def init_model(model, config):\n    pass\n",
    "data": textwrap.dedent("""
        def make_dataset(secret, config, seed):
            g = torch.Generator().manual_seed(seed)
            x = torch.randint(0, 2, (256, config.n_features), generator=g).float()
            return x, parity_labels(x, secret)
        """),
    "opt": "def get_optimizer_config(config):\n    return {'lr': 1e-3, 'wd': 0.0, 'beta1': 0.9, 'beta2': 0.99}\n",
}
TINY = ["--set", "num_hidden_secrets=1", "--set", "num_orderings=1", "--set", "max_steps=3",
        "--set", "test_set_size=64", "--set", "max_train_examples=300"]


def run_driver(tmp_path, capsys, source):
    path = tmp_path / "strategy.py"
    path.write_text(source)
    status = main(["--strategy", str(path), "--device", "cpu", *TINY])
    captured = capsys.readouterr()
    return status, captured.out, captured.err, str(path)


def with_dataset(body):
    return GOOD["init"] + GOOD["opt"] + "def make_dataset(secret, config, seed):\n" + textwrap.indent(body, "    ")


def with_optimizer(returned):
    return GOOD["init"] + GOOD["data"] + f"def get_optimizer_config(config):\n    return {returned}\n"


X = "x = torch.zeros(8, config.n_features)\n"
CASES = [
    (with_dataset(X + "return {'x': x}"),
     "make_dataset returned an invalid dataset: Dataset dict must contain 'x' and 'y'."),
    (with_dataset(X + "return (x, x[:, 0], x)"), "must have exactly 2 elements"),
    (with_dataset(X + "return x"), "make_dataset must return (x, y) or a dict"),
    (with_dataset("return torch.zeros(8), torch.zeros(8)"), "Training inputs must be 2-D, got shape (8,)"),
    (with_dataset("return torch.zeros(8, 5), torch.zeros(8)"), "must have 32 columns, got 5"),
    (with_dataset(X + "return x, torch.zeros(7)"), "disagree on size: 8 vs 7"),
    (with_dataset("return torch.zeros(0, 32), torch.zeros(0)"), "at least one example"),
    # The benchmark's own limit (a scale's lower cap truncates instead); expanded views take no memory.
    (with_dataset("n = 12_800_001\nreturn torch.zeros(1, 32).expand(n, 32), torch.zeros(1).expand(n)"),
     "Training dataset size 12800001 exceeds limit 12800000"),
    (with_dataset(X + "x[0, 0] = 2\nreturn x, torch.zeros(8)"), "Training inputs must stay in {0, 1}."),
    (with_dataset(X + "return x, torch.full((8, 1), 0.5)"), "Training labels must stay in {0, 1}."),
    (with_dataset("raise RuntimeError('no data today')"), "make_dataset raised RuntimeError: no data today"),
    (with_optimizer("{'lr': 1e-3, 'beta2': 0.9}"), "missing keys: ['beta1', 'wd']"),
    (with_optimizer("{'lr': 0, 'wd': 0, 'beta1': 0.9, 'beta2': 0.9}"), "lr must be > 0"),
    (with_optimizer("{'lr': 1e-3, 'wd': -1, 'beta1': 0.9, 'beta2': 0.9}"), "wd must be >= 0"),
    (with_optimizer("{'lr': 1e-3, 'wd': 0, 'beta1': 1.0, 'beta2': 0.9}"), "beta1 must be in (0, 1)"),
    (with_optimizer("{'lr': 1e-3, 'wd': 0, 'beta1': 0.9, 'beta2': 0.0}"), "beta2 must be in (0, 1)"),
    (with_optimizer("{'lr': float('nan'), 'wd': 0, 'beta1': 0.9, 'beta2': 0.9}"), "lr must be > 0, got nan"),
    (with_optimizer("{'lr': 'fast', 'wd': 0, 'beta1': 0.9, 'beta2': 0.9}"), "could not convert string to float"),
    (GOOD["data"] + GOOD["opt"] + "def init_model(model, config):\n    model[7].weight\n",
     "init_model raised IndexError"),
    (GOOD["data"] + GOOD["opt"], "missing function(s) init_model"),
    (GOOD["data"] + GOOD["opt"] + "def init_model(model, config)\n    pass\n", "SyntaxError: expected ':' (line"),
    ("import not_a_module\n" + GOOD["data"], "failed while loading: ModuleNotFoundError"),
]


@pytest.mark.parametrize("source, message", CASES)
def test_violation_gives_one_clear_error(tmp_path, capsys, source, message):
    status, out, err, path = run_driver(tmp_path, capsys, source)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"ERROR: {path}: ")
    assert message in err
    assert "FINAL_METRICS" not in out


def test_valid_strategy_prints_every_line_kind(tmp_path, capsys):
    status, out, err, _ = run_driver(tmp_path, capsys, GOOD["init"] + GOOD["data"] + GOOD["opt"])
    assert status == 0 and err == ""
    kinds = [line.split()[0] for line in out.splitlines()]
    assert kinds == ["TASK_CONFIG", "DATASET_METRICS", "TRAIN_METRICS", "TRAIN_METRICS", "RUN_METRICS",
                     "FINAL_METRICS", "TEST_METRICS"]


def test_missing_file_and_bad_override(tmp_path, capsys):
    assert main(["--strategy", str(tmp_path / "nope.py"), "--device", "cpu"]) == 2
    assert "cannot read strategy file" in capsys.readouterr().err
    assert main(["--strategy", str(tmp_path / "nope.py"), "--set", "hidden=3"]) == 2
    assert "expected FIELD=VALUE" in capsys.readouterr().err


SEED_SPY = GOOD["opt"] + textwrap.dedent("""
    SEEN = []
    def init_model(model, config):
        SEEN.append(("run", torch.initial_seed()))
    def make_dataset(secret, config, seed):
        SEEN.append(("data", seed))
        x = torch.zeros(4, config.n_features)
        return x, torch.zeros(4)
    """)


def test_seed_derivation_matches_worked_example(tmp_path):
    """parity.md §6.1 with seed 42: secrets 59, data 420000+i, tests 840000+i, runs 42e6+1000i+j, orders 84e6+..."""
    path = tmp_path / "spy.py"
    path.write_text(SEED_SPY)
    strategy = DRIVER.load_strategy(path)
    config = resolve_config("n32-k8", "mlsbench")
    config = config.__class__(**{**config.__dict__, "test_set_size": 32})
    _, test_sets, _, _, runs = prepare_runs(strategy, config, 42, torch.device("cpu"))
    seen = strategy.make_dataset.__globals__["SEEN"]
    expected = []
    for i in range(5):
        expected.append(("data", 420_000 + i))
        expected += [("run", 42_000_000 + 1_000 * i + j) for j in range(3)]
    assert seen == expected
    assert [r.order_seed for r in runs] == [84_000_000 + 1_000 * i + j for i in range(5) for j in range(3)]
    rng = random.Random(59)
    first = tuple(sorted(rng.sample(range(32), 8)))
    assert sample_hidden_secrets(config, 42)[0] == first
    x0 = torch.randint(0, 2, (32, 32), generator=torch.Generator().manual_seed(840_000), dtype=torch.int64)
    assert torch.equal(test_sets[0][0], x0.float())


def test_a_dataset_over_the_scales_row_cap_trains_on_its_first_rows(tmp_path, capsys):
    source = with_dataset("g = torch.Generator().manual_seed(seed)\n"
                          "x = torch.randint(0, 2, (301, config.n_features), generator=g).float()\n"
                          "return x, parity_labels(x, secret)")
    status, out, err, _ = run_driver(tmp_path, capsys, source)
    assert status == 0, err
    lines = {line.kind: line.fields for line in parse_log(out)}
    assert lines["TASK_CONFIG"]["max_train_examples"] == 300  # the override is shown
    assert lines["DATASET_METRICS"]["num_examples"] == 300 and lines["DATASET_METRICS"]["truncated_from"] == 301
    first_rows = torch.randint(0, 2, (301, 32), generator=torch.Generator().manual_seed(42 * 10_000)).float()[:300]
    secret = sample_hidden_secrets(resolve_config("n32-k8", "mlsbench"), 42)[0]
    assert lines["DATASET_METRICS"]["positive_rate"] == round(float(parity_labels(first_rows, secret).mean()), 6)


def test_task_config_of_an_unscaled_run_is_the_originals():
    fields = task_config_fields(resolve_config("n64-k8", "mlsbench"))
    assert list(fields) == ["N", "K", "W", "num_hidden_secrets", "num_orderings", "test_set_size", "batch_size",
                            "max_steps"]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.float32])
def test_cpu_randint_takes_one_generator_word_per_element_whatever_the_dtype(dtype):
    """What `default`, `nowd` and `ds_cube_max_orthogonal` rely on to draw the original's bits faster: one
    (rows, N) draw of any dtype equals the rows drawn one by one as int64 and leaves the generator alike."""
    block_generator, row_generator = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    block = torch.randint(0, 2, (50, 64), generator=block_generator, dtype=dtype)
    rows = torch.stack([torch.randint(0, 2, (64,), generator=row_generator, dtype=torch.int64) for _ in range(50)])
    assert torch.equal(block.long(), rows)
    assert torch.equal(block_generator.get_state(), row_generator.get_state())


@pytest.mark.parametrize("name", ["default", "nowd"])
def test_uint8_draws_build_the_originals_dataset(name):
    strategy = DRIVER.load_strategy(REPO / "strategies" / "parity" / f"{name}.py")
    config = resolve_config("n64-k8", "mlsbench", {"max_train_examples": 3_000})
    secret = sample_hidden_secrets(config, 42)[0]
    x, y = normalize_dataset(strategy.make_dataset(secret, config, 420_000), config)
    original = torch.randint(0, 2, (3_000, 64), generator=torch.Generator().manual_seed(420_000),
                             dtype=torch.int64).to(torch.float32)
    assert torch.equal(x, original) and torch.equal(y, parity_labels(original, secret))


STRATEGY = SimpleNamespace(path="strategy.py")


def test_binary_inputs_cross_packed_and_are_checked_like_the_tensor():
    config = resolve_config("n50-k8", "mlsbench", {"max_train_examples": 90})
    x = torch.randint(0, 2, (100, 50), generator=torch.Generator().manual_seed(1)).double()
    y = parity_labels(x, (0, 1, 2, 3, 4, 5, 6, 7))
    for raw in [(x, y), [x, y], {"x": x, "y": y, "note": 1}, (x.numpy(), y.numpy())]:
        sent = compact_result("make_dataset", plain(raw))  # as the strategy's process applies it
        parts = (sent["x"], sent["y"]) if isinstance(sent, dict) else sent
        assert isinstance(parts[0], PackedInputs) and torch.equal(parts[1], y)
        assert torch.equal(unpack_bits(parts[0].bits, 50, torch.float64), x)
        bits, labels, rows = checked_dataset(STRATEGY, sent, config)
        expected = checked_dataset(STRATEGY, raw, config)
        assert torch.equal(bits, expected[0]) and torch.equal(labels, expected[1]) and rows == expected[2] == 100
        assert bits.shape == (90, 7)
    # Sent as they are: other functions' results, values other than 0 and 1, other shapes, lists.
    not_binary = (x * 2, y)
    for name, raw in [("init_model", (x, y)), ("make_dataset", not_binary), ("make_dataset", (x[0], y)),
                      ("make_dataset", (x.tolist(), y)), ("make_dataset", (x, y, y))]:
        assert compact_result(name, raw) is raw
    with pytest.raises(StrategyError, match="Training inputs must stay in"):
        checked_dataset(STRATEGY, not_binary, config)
    with pytest.raises(StrategyError, match="must have 64 columns, got 50"):
        checked_dataset(STRATEGY, compact_result("make_dataset", (x, y)), resolve_config("n64-k8", "mlsbench"))


@pytest.mark.parametrize("packed", [PackedInputs(torch.zeros(4, 7, dtype=torch.int64), 50),
                                    PackedInputs(torch.zeros(4, 6, dtype=torch.uint8), 50),
                                    PackedInputs(torch.zeros(4, 7, dtype=torch.uint8), 50.0)])
def test_malformed_packed_inputs_are_refused(packed):
    """Only a tampered strategy process sends these: refused as the strategy's invalid dataset."""
    with pytest.raises(StrategyError, match="invalid dataset: malformed packed inputs"):
        checked_dataset(STRATEGY, (packed, torch.zeros(4)), resolve_config("n50-k8", "mlsbench"))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int8, torch.int64, torch.float16, torch.float32,
                                   torch.float64])
def test_only_zeros_and_ones_are_packed(dtype):
    x = torch.tensor([[0, 1, 1], [1, 0, 0]], dtype=dtype)
    assert all_binary(x) and torch.equal(unpack_bits(pack_bits(x), 3, torch.float32), x.float())
    others = [] if dtype == torch.bool else [2] + ([] if dtype == torch.uint8 else [-1]) + (
        [0.5, float("nan"), float("inf")] if dtype.is_floating_point else [])
    for value in others:
        bad = x.clone()
        bad[1, 2] = value
        assert not all_binary(bad), value
        with pytest.raises(ValueError, match="only 0s and 1s"):
            pack_bits(bad)


TEST_SET_THIEF = textwrap.dedent("""
    def init_model(model, config):
        pass

    def make_dataset(secret, config, seed):
        # the original's seeds: data seed·10 000 + i, test set seed·20 000 + i
        return make_test_set(config, secret, (seed // 10_000) * 20_000 + seed % 10_000)

    def get_optimizer_config(config):
        return {'lr': 1e-3, 'wd': 0.0, 'beta1': 0.9, 'beta2': 0.99}
    """)


def test_under_corrected_a_strategy_cannot_train_on_the_test_set(tmp_path):
    """mlsbench keeps the original's test seeds, which a strategy can derive and so train on the very test set;
    corrected salts them with a number the driver draws per run and prints (never the strategy's to see)."""
    from optrepro.tasks.parity.driver import configure

    path = tmp_path / "thief.py"
    path.write_text(TEST_SET_THIEF)
    thief = DRIVER.load_strategy(path)

    def prepared(protocol, salt=None):
        args = SimpleNamespace(benchmark="n32-k8", protocol=protocol, smoke=False, test_salt=salt)
        configured = configure(args, {"num_hidden_secrets": 2, "num_orderings": 1, "test_set_size": 64})
        datasets, test_sets, _, _, _ = prepare_runs(thief, configured.config, 42, torch.device("cpu"),
                                                    configured.test_salt)
        trained_on_test = [torch.equal(unpack_bits(bits, 32, torch.float32)[:64], x)
                           for (bits, _), (x, _) in zip(datasets, test_sets)]
        return configured.test_salt, test_sets, trained_on_test

    salt, _, stolen = prepared("mlsbench")
    assert salt is None and stolen == [True, True]
    first, salted, stolen = prepared("corrected")
    assert first is not None and stolen == [False, False]
    second, _, _ = prepared("corrected")
    assert second != first  # drawn per run
    again, replayed, _ = prepared("corrected", first)  # the record's salt reruns the run exactly
    assert again == first and all(torch.equal(a[0], b[0]) for a, b in zip(salted, replayed))
    config = resolve_config("n32-k8", "corrected")
    assert task_config_fields(config, first)["test_salt"] == first and "test_salt" not in task_config_fields(config)
    with pytest.raises(ValueError, match="--test-salt belongs to protocol corrected"):
        prepared("mlsbench", 7)
