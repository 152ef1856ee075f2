"""CUDA-graph replay of a training step: one launch per step instead of one per kernel.

Why: the parity step and a PBGD outer step are dozens of small kernels each; launched one by one from
Python they leave the GPU waiting on the host. A step can be captured when it has fixed shapes, keeps its
state in tensors that live across steps and never reads a value back to the host.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..device import graphs_enabled

WARM_UP_STEPS = 3  # run before capture, on a side stream, as capture requires; then undone


def graphed(step: Callable[[], object], state: Sequence[torch.Tensor]) -> Callable[[], object]:
    """`step` captured as a CUDA graph: a function that replays it and returns what the captured call
    returned (static tensors, overwritten by the next replay). `state` must hold every tensor a step changes
    that outlives it: the warm-up steps' changes to them are undone. With CUDA graphs turned off (device.GRAPHS_ENV),
    `step` itself."""
    if not graphs_enabled():
        return step
    saved = [tensor.detach().clone() for tensor in state]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARM_UP_STEPS):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    with torch.no_grad():
        for tensor, value in zip(state, saved):
            tensor.copy_(value)

    def replay() -> object:
        graph.replay()
        return outputs

    return replay
