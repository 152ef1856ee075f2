"""`make check STRATEGY=...` (optrepro.check): a strategy file's every benchmark at the check budget through the
runner, one line each; on a good file, on broken ones and on files that cannot be checked."""

import subprocess
from pathlib import Path

import pytest

from optrepro.check import main

REPO = Path(__file__).resolve().parent.parent
BROKEN_BILEVEL = '''
def get_toy_strategy():
    raise ValueError("no toy strategy here")

def get_hyperclean_strategy(net):
    raise ValueError("no hyper-cleaning strategy for " + net)
'''


def test_a_good_strategy_passes_every_benchmark(data_root, capsys):
    assert main([str(REPO / "strategies" / "bilevel" / "v_pbgd.py"), "--data-root", str(data_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("as a bilevel strategy: 3 benchmark(s) under mlsbench, seed 42, at the check budget")
    assert [line.split(" in ")[0] for line in lines[1:]] == ["ok toy-convergence", "ok hyperclean-linear",
                                                             "ok hyperclean-mlp"]
    assert "convergence_steps=261.256000" in lines[1]  # the toy at its own budget: the original's number


def test_a_broken_strategy_fails_each_benchmark_with_its_error(data_root, tmp_path, capsys):
    """Outside strategies/, its task is told by the functions it defines; each benchmark's line is the run's
    one-line error, and the exit status says it failed."""
    path = tmp_path / "mine.py"
    path.write_text(BROKEN_BILEVEL)
    assert main([str(path), "--data-root", str(data_root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "as a bilevel strategy" in lines[0] and len(lines) == 4
    assert lines[1].startswith("FAILED toy-convergence: ") and "no toy strategy here" in lines[1]
    assert lines[2].startswith("FAILED hyperclean-linear: ") and "no hyper-cleaning strategy for linear" in lines[2]


def test_a_benchmark_whose_data_is_not_fetched_is_skipped_and_nothing_passes(tmp_path, capsys):
    assert main([str(REPO / "strategies" / "dpsgd" / "standard_dpsgd.py"), "--data-root", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["skipped mnist", "skipped fmnist", "skipped cifar10"]
    assert lines[0].endswith("(optrepro-data fetch --dataset mnist)")


@pytest.mark.parametrize("text, message", [
    ("def get_toy_strategy(:\n", "mine.py:1: not valid Python"),
    ("def something_else():\n    pass\n", "cannot tell its task (it lies in no strategies/<task>/ folder and "
                                         "defines the functions of 0 tasks"),
])
def test_a_file_that_cannot_be_checked_is_one_error(tmp_path, capsys, text, message):
    path = tmp_path / "mine.py"
    path.write_text(text)
    assert main([str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ERROR: ") and message in error and len(error.splitlines()) == 1


def test_make_check_needs_a_strategy():
    result = subprocess.run(["make", "-s", "check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "usage: make check STRATEGY=path/to/strategy.py" in result.stderr
