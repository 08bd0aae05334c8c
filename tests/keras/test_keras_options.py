"""The Keras twins take their options from the declarations the PyTorch losses use
(``losskit/losses/<family>/options.py``): for every option a twin shares with a catalog entry
it mirrors, the Keras constructor's default is the declared one and values outside the declared
bounds are refused. Keras-only options (``from_logits``, ``ignore_class``, ``axis``) stay local."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest

from losskit._errors import LossInputError
from losskit._options import HyperParam
from losskit._twins import gather
from losskit.losses import FAMILIES
from losskit.losses.classification.options import LABEL_SMOOTHING

pytestmark = pytest.mark.keras

#: the twin table without Keras (collection must not import it)
TWINS = gather(FAMILIES)

#: options that only Keras has but that mean what a declaration of the PyTorch side means, so
#: they are validated with it: Keras's binary label smoothing spreads eps over the 2 classes
ALSO_DECLARED: dict[tuple[str, str], HyperParam] = {
    ("BCELoss", "label_smoothing"): LABEL_SMOOTHING,
    ("SigmoidFocalLoss", "label_smoothing"): LABEL_SMOOTHING,
}

#: numeric options with no PyTorch counterpart: the layout, not a hyper-parameter
KERAS_ONLY = frozenset({"axis"})


def _outside(p: HyperParam) -> list[float]:
    """Values just outside the declared bounds (as ``tests/test_options.py`` draws them)."""
    out = []
    if p.gt is not None:
        out.append(p.gt)
    if p.ge is not None:
        out.append(p.ge - 1.0)
    if p.lt is not None:
        out.append(p.lt)
    if p.le is not None:
        out.append(p.le + 1.0)
    if not p.allow_inf:
        out.append(math.inf)
    return [*out, math.nan]


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls.__init__).parameters)


def _shared(LK: Any) -> list[tuple[str, type, HyperParam]]:
    """``(where, Keras class, declaration)`` for every option a twin shares."""
    import losskit

    found = []
    for name, twin in TWINS.items():
        cls = getattr(LK, twin.keras)
        init = _init_params(cls)
        found += [(name, cls, p) for p in losskit.catalog[name].params if p.name in init]
    found += [(cls_name, getattr(LK, cls_name), p) for (cls_name, _), p in ALSO_DECLARED.items()]
    return found


def test_shared_options_take_the_declared_defaults(LK: Any) -> None:
    shared = _shared(LK)
    assert shared
    for where, cls, p in shared:
        default = _init_params(cls)[p.name].default
        assert default == p.default, (
            f"{where}: losskit.keras.{cls.__name__}'s default for {p.name} is {default!r}, the "
            f"declaration's {p.default!r}"
        )
        assert getattr(cls(), p.name) == p.default


def test_shared_options_refuse_values_outside_the_declared_bounds(LK: Any) -> None:
    checked = 0
    for where, cls, p in _shared(LK):
        if not p.bounded:
            continue
        for value in _outside(p):
            with pytest.raises(LossInputError, match=rf"{cls.__name__}: {p.name} is"):
                cls(**{p.name: value})
            checked += 1
        for end in (p.low, p.high):  # the tuning range is valid on both sides
            if end is not None:
                assert getattr(cls(**{p.name: end}), p.name) == end, where
    assert checked


def test_every_numeric_keras_option_is_declared(LK: Any) -> None:
    """A Keras option with a number for default is a hyper-parameter of the PyTorch side: a
    catalog entry the class mirrors declares it (or it is listed above)."""
    import losskit

    declared: dict[str, set[str]] = {}
    for name, twin in TWINS.items():
        declared.setdefault(twin.keras, set()).update(p.name for p in losskit.catalog[name].params)
    for cls_name, option in ALSO_DECLARED:
        declared.setdefault(cls_name, set()).add(option)
    for cls_name, options in declared.items():
        for parameter in _init_params(getattr(LK, cls_name)).values():
            default = parameter.default
            if isinstance(default, bool) or not isinstance(default, int | float):
                continue
            assert parameter.name in options or parameter.name in KERAS_ONLY, (
                f"losskit.keras.{cls_name}: option {parameter.name} is declared nowhere"
            )
