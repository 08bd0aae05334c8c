"""Errors and the checks that need no tensor library: the one error type every loss raises, its
message format, and hyper-parameter checks. Torch-free, so the Keras adapter can use it.

Every failure raises :class:`LossInputError` with a message of the form
``"<loss>: <argument> <what came>; expected <what was expected>"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import NoReturn


class LossInputError(ValueError):
    """A loss received an argument it cannot use. The message names the loss, the argument,
    what was expected and what came."""


def fail(loss: str, argument: str, got: str, expected: str) -> NoReturn:
    raise LossInputError(f"{loss}: {argument} {got}; expected {expected}")


def shape_str(shape: Sequence[int]) -> str:
    dims = tuple(shape)
    return f"({dims[0]},)" if len(dims) == 1 else str(dims)


def check_number(
    loss: str,
    name: str,
    value: object,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    allow_inf: bool = False,
) -> float:
    """A real hyper-parameter inside the given bounds; finite unless ``allow_inf``."""
    # float and int first: the ABC check of Real is slow, and this runs on every call
    if (type(value) is not float and type(value) is not int) and (
        isinstance(value, bool) or not isinstance(value, Real)
    ):
        fail(loss, name, f"is {value!r}", "a real number")
    v = float(value)
    # comparisons only: a symbolic float under torch.compile supports them (as guards), while
    # math.isnan/isinf raise Unsupported; v != v is NaN
    infinite = v == math.inf or v == -math.inf
    if (
        v != v
        or (infinite and not allow_inf)
        or (gt is not None and not v > gt)
        or (ge is not None and not v >= ge)
        or (lt is not None and not v < lt)
        or (le is not None and not v <= le)
    ):
        # the message is built only here: building it on every call cost more than a small loss
        bounds = ((gt, ">"), (ge, ">="), (lt, "<"), (le, "<="))
        words = " and ".join(f"{op} {b:g}" for b, op in bounds if b is not None)
        kind = "finite number" if infinite or not words else "number"
        fail(loss, name, f"is {value!r}", f"a {kind} {words}".rstrip())
    return v
