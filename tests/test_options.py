"""Each option is declared once (a :class:`losskit.HyperParam` in its family's ``options.py``)
and everything that takes it agrees with that declaration: the functional's signature default,
the module constructor's default, the tuning range inside the valid values, and the bounds
enforced by the functional and the module alike (the Keras twins are checked in
``tests/keras/test_keras_options.py``)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import losskit
from catalog_helpers import catalog_params, samples
from losskit import HyperParam, LossInputError

ALL = catalog_params()


def _default_of(fn, name):
    parameter = inspect.signature(fn).parameters.get(name)
    return inspect.Parameter.empty if parameter is None else parameter.default


def _outside(p: HyperParam) -> list[float]:
    """Values just outside the declared bounds."""
    out = []
    for bound in (p.gt, p.le):
        if bound is not None:
            out.append(bound if bound == p.gt else bound + 1.0)
    for bound in (p.ge,):
        if bound is not None:
            out.append(bound - 1.0)
    if p.lt is not None:
        out.append(p.lt)
    if not p.allow_inf:
        out.append(math.inf)
    return [*out, math.nan]


@pytest.mark.parametrize("name", ALL)
def test_defaults_agree(name):
    spec = losskit.catalog[name]
    for p in spec.params:
        for where, fn in (("functional", spec.functional), ("module", spec.module.__init__)):
            default = _default_of(fn, p.name)
            if default is not inspect.Parameter.empty:
                assert default == p.default or (default is None and p.default is None), (
                    f"{name}: the {where}'s default for {p.name} is {default!r}, the catalog "
                    f"declares {p.default!r}"
                )


@pytest.mark.parametrize("name", ALL)
def test_tuning_range_is_valid(name):
    for p in losskit.catalog[name].params:
        if p.bounded:
            if p.default is not None:
                p.check(name, p.default)
            for end in (p.low, p.high):
                if end is not None:
                    p.check(name, end)


@pytest.mark.parametrize("name", ALL)
def test_bounds_are_enforced_by_functional_and_module(name):
    spec = losskit.catalog[name]
    sample = next(s for s in samples(spec, torch.float64) if "extreme" not in s.tags)
    init_params = inspect.signature(spec.module.__init__).parameters
    for p in spec.params:
        if not p.bounded:
            continue
        assert p.describe(), f"{name}: {p.name} has bounds but no description"
        for value in _outside(p):
            with pytest.raises(LossInputError, match=rf"{spec.functional.__name__}: {p.name} is"):
                spec.functional(*sample.args, **{**sample.kwargs, p.name: value})
            if p.name in init_params:
                with pytest.raises(LossInputError, match=rf": {p.name} is"):
                    spec.module(**{p.name: value})


@pytest.mark.parametrize("name", ALL)
def test_every_real_option_is_declared(name):
    """A keyword option with a real default is a hyper-parameter: the catalog declares it."""
    spec = losskit.catalog[name]
    declared = {p.name: p for p in spec.params}
    for parameter in inspect.signature(spec.functional).parameters.values():
        default = parameter.default
        if parameter.kind is not parameter.KEYWORD_ONLY or isinstance(default, bool):
            continue
        if isinstance(default, int | float):
            assert parameter.name in declared, f"{name}: option {parameter.name} is not declared"
            p = declared[parameter.name]
            assert p.bounded or p.valid, f"{name}: {p.name} states no valid values"
