"""``torch.compile`` agrees with eager for every catalog entry, forward and backward, with
compile's *default* settings while the float options change between calls.

With its defaults (automatic dynamic), ``torch.compile`` traces a float argument as a constant
on the first call and, once it changes, traces again with a symbolic float: every check of an
option's value must then work on a symbolic float (issue 14, defect 2: ``math.isnan`` in
``check_number`` raised ``Unsupported`` on the second call of ``sigmoid_focal_loss``,
``focal_loss``, ``huber_loss`` and ``general_robust_loss``). Each entry is therefore called three
times, each float hyper-parameter taking a new value inside its tuning range each time, and every
call must match eager in value and gradients. Entries whose ``compile`` status is ``"fullgraph"``
must trace without a graph break (``fullgraph=True``); ``"graph_break"`` entries say in
``compile_note`` where they break.

Compiling is slow (Inductor writes and builds C++ for each graph), so these tests are marked
``compile`` and run as their own pass (``make test``), on one small sample per entry, with
dynamo's caches reset per entry.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import losskit
from catalog_helpers import catalog_params, with_grad
from losskit import HyperParam, LossSpec, SampleInput

ALL = catalog_params()
#: where in its tuning range [low, high] a float option lies on the second and third calls
#: (on a log scale for ``log`` options); the first call uses the sample's own value
POSITIONS = (0.35, 0.7)


def _sample(spec: LossSpec) -> SampleInput:
    """The entry's first ordinary sample: not extreme, not empty."""
    return next(
        s
        for s in spec.sample_inputs(torch.float32, torch.device("cpu"))
        if "extreme" not in s.tags and s.args[0].numel() > 0
    )


def _in_range(p: HyperParam, position: float) -> float:
    assert p.low is not None and p.high is not None
    if p.log:
        return math.exp(math.log(p.low) + position * (math.log(p.high) - math.log(p.low)))
    return p.low + position * (p.high - p.low)


def _option_sets(spec: LossSpec, sample: SampleInput) -> list[dict[str, Any]]:
    """The sample's options, then twice more with every float hyper-parameter that has a
    tuning range moved to a new value inside it."""
    first = dict(sample.kwargs)
    floats = [
        p
        for p in spec.params
        if isinstance(p.default, float)
        and p.low is not None
        and p.high is not None
        and isinstance(first.get(p.name, p.default), float)
    ]
    sets = [first]
    for position in POSITIONS:
        sets.append({**first, **{p.name: _in_range(p, position) for p in floats}})
    return sets


def _check_against_eager(spec, compiled, sample: SampleInput, options: dict[str, Any]) -> None:
    args, leaves = with_grad(sample)
    out = compiled(*args, **options)
    out.sum().backward()
    ref_args, ref_leaves = with_grad(sample)
    expected = spec.functional(*ref_args, **options)
    expected.sum().backward()
    where = f"{sample} with {options}"
    torch.testing.assert_close(out, expected, msg=lambda m: f"{where}: {m}")
    for leaf, ref_leaf in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(leaf.grad, ref_leaf.grad, msg=lambda m: f"{where} grad: {m}")


@pytest.mark.parametrize("name", ALL)
def test_graph_breaks_are_documented(name):
    spec = losskit.catalog[name]
    assert spec.compile in ("fullgraph", "graph_break"), name
    assert bool(spec.compile_note) == (spec.compile == "graph_break"), (
        f"{name}: a graph_break entry says where it breaks in compile_note (and only one does)"
    )


@pytest.mark.parametrize("name", ALL)
def test_every_float_option_with_a_range_changes(name):
    """The compile test below moves every float option; this (cheap) test makes sure it has
    something to move where the entry has float options, so it cannot pass vacuously."""
    spec = losskit.catalog[name]
    sets = _option_sets(spec, _sample(spec))
    for p in spec.params:
        if isinstance(p.default, float) and p.low is not None and p.high is not None:
            values = [s.get(p.name, p.default) for s in sets]
            if isinstance(values[0], float):
                assert len(set(values)) == 3, (name, p.name, values)


@pytest.mark.compile
@pytest.mark.parametrize("name", ALL)
def test_compiled_with_default_settings_matches_eager_as_options_change(name):
    spec = losskit.catalog[name]
    sample = _sample(spec)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(spec.functional, fullgraph=spec.compile == "fullgraph")
        for options in _option_sets(spec, sample):
            _check_against_eager(spec, compiled, sample, options)
    finally:
        torch._dynamo.reset()


@pytest.mark.compile
def test_sigmoid_focal_gamma_changes_under_fullgraph():
    """The issue's reproducer, as written there."""
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(16, generator=g), (torch.rand(16, generator=g) > 0.5).float()
    torch._dynamo.reset()
    try:
        compiled = torch.compile(losskit.functional.sigmoid_focal_loss, fullgraph=True)
        for gamma in (2.0, 1.5, 0.5):
            torch.testing.assert_close(
                compiled(x, t, gamma=gamma),
                losskit.functional.sigmoid_focal_loss(x, t, gamma=gamma),
            )
    finally:
        torch._dynamo.reset()
