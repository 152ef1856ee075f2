"""CUDA-graph capture turned off by the environment (tasks/graphs.py): the way out where capture fails.

The replay itself is tested against the eager steps on a GPU (test_cuda.py); this runs everywhere.
"""

import pytest
import torch

from optrepro.device import GRAPHS_ENV, graphs_enabled
from optrepro.tasks.graphs import graphed


def test_turned_off_the_step_itself_runs_and_nothing_is_captured(monkeypatch):
    state = torch.zeros(3)

    def step():
        state.add_(1)
        return state.sum()

    monkeypatch.setenv(GRAPHS_ENV, "0")
    replay = graphed(step, [state])  # on a machine without CUDA, capture would raise here
    assert replay is step and state.tolist() == [0, 0, 0]  # no warm-up steps ran
    assert replay().item() == 3


def test_by_default_on_and_a_bad_value_is_one_clear_error(monkeypatch):
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    assert graphs_enabled()
    monkeypatch.setenv(GRAPHS_ENV, "sometimes")
    with pytest.raises(ValueError, match=r"^OPTREPRO_CUDA_GRAPHS='sometimes': expected 1 \(CUDA graphs, the "
                                          r"default\) or 0 \(eager steps\)$"):
        graphs_enabled()
