"""Input validation shared by every loss.

Two levels:

* ``fast`` (default): shapes, dtypes, devices and hyper-parameter ranges. These read tensor
  metadata only, so they never synchronise the host with an accelerator.
* ``full``: also inspects values (class indices in range, probabilities in [0, 1], finite
  inputs). Each of these is a reduction whose result is read on the host, so it costs a sync;
  use it while debugging a pipeline, not in a tuned training loop.

Every failure raises :class:`LossInputError` with a message of the form
``"<loss>: <argument> <what came>; expected <what was expected>"``.

The level is a :class:`contextvars.ContextVar`: :func:`set_checks` and :func:`checks` change it
for the current thread (or asyncio task) only, so two threads that each open
``with losskit.checks("full"):`` cannot leave each other's level changed. A new thread starts
from the default level, ``LOSSKIT_CHECKS`` (``fast`` if unset), not from the level of the thread
that started it; an asyncio task starts from a copy of the level where it was created.
Under ``torch.compile`` the level is read once, when a function is traced: compile under the
level you mean to run with (a compiled function is not traced again when the level changes).

Option values are checked with plain comparisons (never ``math.isnan``): under
``torch.compile``'s automatic dynamic shapes a float option that changes between calls becomes a
symbolic float, which comparisons turn into guards and ``math`` functions cannot take.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

# re-exported: the families import every check from here
from losskit._errors import LossInputError as LossInputError
from losskit._errors import check_number as check_number
from losskit._errors import fail as fail
from losskit._errors import shape_str as shape_str

CheckLevel = Literal["fast", "full"]
CHECK_LEVELS: tuple[str, ...] = ("fast", "full")


def _level_from_env() -> CheckLevel:
    value = os.environ.get("LOSSKIT_CHECKS", "fast").strip().lower() or "fast"
    if value not in CHECK_LEVELS:
        raise LossInputError(
            f"losskit: LOSSKIT_CHECKS is {value!r}; expected one of {', '.join(CHECK_LEVELS)}"
        )
    return value  # type: ignore[return-value]


#: the level every new thread starts from: ``LOSSKIT_CHECKS``, read once at import
DEFAULT_LEVEL: CheckLevel = _level_from_env()
# thread- and task-local (see the module docstring)
_level: contextvars.ContextVar[CheckLevel] = contextvars.ContextVar(
    "losskit_checks", default=DEFAULT_LEVEL
)


def _check_level(caller: str, level: object) -> CheckLevel:
    if level not in CHECK_LEVELS:
        raise LossInputError(
            f"{caller}: level is {level!r}; expected one of {', '.join(CHECK_LEVELS)}"
        )
    return level  # type: ignore[return-value]


def set_checks(level: CheckLevel) -> None:
    """Set the validation level, ``"fast"`` (default) or ``"full"``, for the current thread or
    asyncio task (a :mod:`contextvars` value; other threads keep theirs)."""
    _level.set(_check_level("set_checks", level))


def get_checks() -> CheckLevel:
    """The validation level of the current thread or asyncio task."""
    return _level.get()


@contextmanager
def checks(level: CheckLevel) -> Iterator[None]:
    """Use another validation level inside a block, for the current thread or asyncio task
    only: ``with losskit.checks("full"): ...``. Blocks nest; on exit the level is the one the
    block started with, whatever other threads did meanwhile."""
    token = _level.set(_check_level("checks", level))
    try:
        yield
    finally:
        _level.reset(token)


def full_checks() -> bool:
    """Whether the value checks run (level ``full`` in the current thread or task)."""
    return _level.get() == "full"


# torch.compile cannot trace ContextVar.get: the level is read when the loss is traced and
# becomes a constant of the compiled graph (see the module docstring). This is what
# torch.compiler.assume_constant_result does, without the import of torch._dynamo that it
# starts (over a second, on every `import losskit`); tests/test_checks.py checks that both agree.
full_checks._dynamo_marked_constant = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------- metadata checks (fast)


def check_tensor(loss: str, name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        fail(loss, name, f"is a {type(x).__name__}", "a torch.Tensor")
    return x


def check_floating(loss: str, name: str, x: object) -> Tensor:
    x = check_tensor(loss, name, x)
    if not x.is_floating_point():
        fail(loss, name, f"has dtype {x.dtype}", "a floating-point tensor")
    return x


def check_same_shape(loss: str, name: str, x: Tensor, like: Tensor, like_name: str) -> None:
    if x.shape != like.shape:
        fail(
            loss,
            name,
            f"has shape {shape_str(x.shape)}",
            f"the shape of {like_name}, {shape_str(like.shape)} (losskit never broadcasts "
            f"{name} against {like_name})",
        )


def check_same_dtype(loss: str, name: str, x: Tensor, like: Tensor, like_name: str) -> None:
    if x.dtype != like.dtype:
        fail(loss, name, f"has dtype {x.dtype}", f"the dtype of {like_name}, {like.dtype}")


def check_same_device(loss: str, name: str, x: Tensor, like: Tensor, like_name: str) -> None:
    if x.device != like.device:
        fail(loss, name, f"is on {x.device}", f"the device of {like_name}, {like.device}")


def check_reduction(loss: str, reduction: object, allowed: Sequence[str]) -> None:
    if reduction not in allowed:
        fail(loss, "reduction", f"is {reduction!r}", f"one of {', '.join(map(repr, allowed))}")


def same_float_tensors(input: object, target: object) -> bool:
    """Whether ``input`` and ``target`` are floating-point tensors of one dtype, shape and device,
    and the level is ``fast``: then every metadata check of a same-shape loss passes and no value
    check runs, so a caller may skip them (on ``False`` it runs them, for their messages)."""
    return (
        not full_checks()
        and isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and input.is_floating_point()
        and input.dtype == target.dtype
        and input.shape == target.shape
        and input.device == target.device
    )


def check_optional_weight(
    loss: str, weight: object, input: Tensor, name: str = "weight"
) -> Tensor | None:
    """An elementwise weight: same shape, dtype class and device as ``input``."""
    if weight is None:
        return None
    w = check_floating(loss, name, weight)
    if w.shape != input.shape:
        fail(
            loss,
            name,
            f"has shape {shape_str(w.shape)}",
            f"the shape of input, {shape_str(input.shape)}; expand it explicitly "
            f"(e.g. weight.expand_as(input)) if you meant to broadcast it",
        )
    check_same_device(loss, name, w, input, "input")
    return w


def check_class_weight(loss: str, weight: object, num_classes: int, input: Tensor) -> Tensor | None:
    if weight is None:
        return None
    w = check_floating(loss, "weight", weight)
    if w.shape != (num_classes,):
        fail(
            loss,
            "weight",
            f"has shape {shape_str(w.shape)}",
            f"({num_classes},), one weight per class of input {shape_str(input.shape)}",
        )
    check_same_device(loss, "weight", w, input, "input")
    return w


# ---------------------------------------------------------------- value checks (full only)


def check_finite(loss: str, name: str, x: Tensor) -> None:
    if full_checks() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        fail(loss, name, f"has {bad} non-finite value(s)", "finite values (checks='full')")


def _fail_on_nan(loss: str, name: str, x: Tensor, expected: str) -> None:
    """A value check found a NaN min or max: say how many NaNs, not "a minimum of nan"."""
    bad = int(x.isnan().sum())
    if bad:
        fail(loss, name, f"has {bad} NaN value(s)", f"{expected} (checks='full')")


def check_in_unit_interval(loss: str, name: str, x: Tensor) -> None:
    if full_checks() and x.numel():
        # detached: reading a value of a tensor that requires grad warns
        lo, hi = (float(v) for v in torch.aminmax(x.detach()))
        # written so that NaN (which compares False) fails too
        if not (lo >= 0.0 and hi <= 1.0):
            _fail_on_nan(loss, name, x.detach(), "values in [0, 1]")
            fail(loss, name, f"has values in [{lo:g}, {hi:g}]", "values in [0, 1] (checks='full')")


def check_nonnegative(loss: str, name: str, x: Tensor) -> None:
    if full_checks() and x.numel():
        lo = float(x.detach().min())
        if not lo >= 0.0:
            _fail_on_nan(loss, name, x.detach(), "non-negative values")
            fail(loss, name, f"has a minimum of {lo:g}", "non-negative values (checks='full')")


def values_checked(x: Tensor) -> bool:
    """Whether a value check runs on ``x``: always under ``full``; under ``fast`` only for CPU
    tensors, where reading a min/max costs no host-device synchronisation (one pass over the
    targets). On accelerators ``fast`` stays sync-free and checks no values."""
    if x.numel() == 0:
        return False
    if full_checks():
        return True
    # a traced graph cannot read values on the host without breaking, nor can vmap; compiled
    # code and torch.func transforms keep to the metadata checks under "fast", as accelerators
    return (
        x.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
    )


def check_class_indices(
    loss: str, target: Tensor, num_classes: int, ignore_index: int
) -> tuple[int, int] | None:
    """Class indices in ``[0, num_classes)`` or ``ignore_index``: under ``full``, and under
    ``fast`` on the CPU (see :func:`values_checked`); a wrong index there is otherwise a raw
    IndexError or, in some kernels, a silently wrong number.

    Returns the smallest and largest index when it read them (None when no value check ran):
    a caller may use them, e.g. to know that no target equals ``ignore_index``."""
    if not values_checked(target) or target.dtype == torch.bool:
        return None
    lo, hi = torch.aminmax(target)
    lo, hi = int(lo), int(hi)
    if lo >= 0 and hi < num_classes:
        return lo, hi
    bounds = lo, hi
    if lo == ignore_index or hi == ignore_index:
        counted = target[target != ignore_index]
        if counted.numel() == 0:
            return bounds
        lo, hi = int(counted.min()), int(counted.max())
        if lo >= 0 and hi < num_classes:
            return bounds
    fail(
        loss,
        "target",
        f"has class indices in [{lo}, {hi}]",
        f"indices in [0, {num_classes - 1}] or ignore_index={ignore_index}",
    )
