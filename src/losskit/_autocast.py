"""How losskit's losses behave under ``torch.autocast`` (mixed precision).

Under autocast a model's outputs come out in the autocast dtype (a ``Linear`` returns bfloat16 or
float16) while targets, class weights and parameters stay float32, and every operation inside the
region is cast by autocast's per-op policy. torch runs its own losses under the *float32* policy
(``mse_loss``, ``cross_entropy``, ``binary_cross_entropy_with_logits`` ... cast every input to
float32), because sums of many small terms, exponentials and logarithms lose too much in 16 bits.
losskit does the same, with one decorator on each public loss:

* :func:`autocast_float32`: where autocast is enabled for the inputs' device, floating inputs
  (positional and keyword tensors alike) in float16, bfloat16 or float32 are cast to float32 and
  the loss runs with autocast off, so its value and gradients are those of float32 on the same
  (possibly rounded) inputs, and the result is float32. float64 stays float64.
* :func:`autocast_lower_precision`: for losses whose cost is a matrix product (linear
  cross-entropy), the floating inputs are cast to the autocast dtype, as ``nn.Linear`` would cast
  them, and the loss runs with autocast off; its own rule for half inputs (float32 softmax and
  accumulation) applies, and the result is returned in float32 as torch's losses are.

Outside autocast the decorators cost a Python call and one C call
(``torch._C._is_any_autocast_enabled``), and change nothing. Casting is done with ``Tensor.to``,
so gradients reach the inputs in their own dtypes. Run ``backward()`` after the autocast region,
as torch advises: a backward inside it runs the backward matrix products in the autocast dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypeVar

import torch
from torch import Tensor

#: ``float32``: inputs cast to float32 (torch's policy for losses); ``lower_precision_matmul``:
#: inputs cast to the autocast dtype for the matrix products, softmax in float32
AutocastPolicy = Literal["float32", "lower_precision_matmul"]

AUTOCAST_POLICIES: dict[str, str] = {
    "float32": "inputs cast to float32, computed and returned in float32, like torch's losses",
    "lower_precision_matmul": "matrix products in the autocast dtype (as nn.Linear's would be), "
    "softmax and accumulation in float32; result float32",
}

_CASTABLE = (torch.float16, torch.bfloat16, torch.float32)
#: one C call, the cheapest test that no autocast region is open (the path every call takes)
_any_autocast = torch._C._is_any_autocast_enabled

P = ParamSpec("P")
R = TypeVar("R")


def _device_type(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value.device.type
    return None


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Tensor) and value.dtype in _CASTABLE and value.dtype != dtype:
        return value.to(dtype)
    return value


def _with_policy(fn: Callable[P, R], lower: bool) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _any_autocast():
            return fn(*args, **kwargs)
        device = _device_type(args, kwargs)
        if device is None or not torch.is_autocast_enabled(device):
            return fn(*args, **kwargs)
        dtype = torch.get_autocast_dtype(device) if lower else torch.float32
        cast_args = tuple(_cast(a, dtype) for a in args)
        cast_kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
        with torch.autocast(device, enabled=False):
            out = fn(*cast_args, **cast_kwargs)  # type: ignore[arg-type]
        if lower and isinstance(out, Tensor):
            return _cast(out, torch.float32)  # type: ignore[return-value]
        return out

    wrapper.autocast_policy = "lower_precision_matmul" if lower else "float32"  # type: ignore[attr-defined]
    return wrapper


def autocast_float32(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` in float32 with autocast off wherever autocast is on (see module docstring)."""
    return _with_policy(fn, lower=False)


def autocast_lower_precision(fn: Callable[P, R]) -> Callable[P, R]:
    """Cast ``fn``'s floating inputs to the autocast dtype and run it with autocast off; the
    result comes back in float32 (see module docstring)."""
    return _with_policy(fn, lower=True)
