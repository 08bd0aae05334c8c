"""``torch.compile`` agrees with eager for every catalog entry, forward and backward.

Entries whose ``compile`` status is ``"fullgraph"`` must trace without a graph break
(``fullgraph=True``); ``"graph_break"`` entries say in ``compile_note`` where they break, and must
still agree when compiled with breaks. Compiling is slow (Inductor writes and builds C++ for each
graph), so the agreement tests are marked ``compile`` and run as their own pass (``make test``),
each on one small sample with static shapes.
"""

from __future__ import annotations

import pytest
import torch

import losskit
from catalog_helpers import catalog_params, with_grad
from losskit import LossSpec, SampleInput

ALL = catalog_params()


def _sample(spec: LossSpec) -> SampleInput:
    """The entry's first ordinary sample: not extreme, not empty."""
    return next(
        s
        for s in spec.sample_inputs(torch.float32, torch.device("cpu"))
        if "extreme" not in s.tags and s.args[0].numel() > 0
    )


@pytest.mark.parametrize("name", ALL)
def test_graph_breaks_are_documented(name):
    spec = losskit.catalog[name]
    assert spec.compile in ("fullgraph", "graph_break"), name
    assert bool(spec.compile_note) == (spec.compile == "graph_break"), (
        f"{name}: a graph_break entry says where it breaks in compile_note (and only one does)"
    )


@pytest.mark.compile
@pytest.mark.parametrize("name", ALL)
def test_compiled_matches_eager(name):
    spec = losskit.catalog[name]
    sample = _sample(spec)
    torch._dynamo.reset()
    compiled = torch.compile(spec.functional, fullgraph=spec.compile == "fullgraph", dynamic=False)
    args, leaves = with_grad(sample)
    out = compiled(*args, **sample.kwargs)
    out.sum().backward()
    ref_args, ref_leaves = with_grad(sample)
    expected = spec.functional(*ref_args, **sample.kwargs)
    expected.sum().backward()
    torch.testing.assert_close(out, expected, msg=lambda m: f"{sample}: {m}")
    for leaf, ref_leaf in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(leaf.grad, ref_leaf.grad, msg=lambda m: f"{sample} grad: {m}")
