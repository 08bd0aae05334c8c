"""The double-backward rule for losskit's custom autograd Functions.

A custom ``torch.autograd.Function`` with an analytic backward is not differentiable a second
time unless it says how. ``torch.autograd.function.once_differentiable`` is not enough on its
own: it refuses only when the *incoming gradient* requires grad, so in the common case
``torch.autograd.grad(loss, x, create_graph=True)`` (gradient penalties, MAML, Hessian-vector
products) the incoming gradient is a constant 1, nothing is refused, and the returned gradient
silently counts as a constant: every second derivative through the loss is dropped.

Every Function in losskit therefore takes one of two decorators on its ``backward``:

* :func:`differentiable_backward` — when autograd asks for a graph of the gradient
  (``create_graph=True``, which is exactly when grad mode is on inside ``backward``), the
  gradient is recomputed by autograd through an eager, differentiable formula of the same loss,
  so double backward is exact (checked by ``gradgradcheck`` in float64). Otherwise the fast
  analytic backward runs, under ``no_grad``.
  An eager formula may materialise what the Function streams (linear cross-entropy's and
  CosFace's logits): only a ``create_graph`` call pays for it.
* :func:`refuse_double_backward` — where there is no eager formula to differentiate (the fused
  distillations, SigLIP's ring across processes), or autograd's derivative of it would be
  wrong where the Function's is right (ArcFace on its cone), a ``create_graph`` backward
  raises :class:`DoubleBackwardError` naming the loss, instead of a wrong number. (An eager formula may also raise it itself, as
  the vocab-parallel losses' do across processes, where no rank holds the whole loss.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Backward = Callable[..., Any]


class DoubleBackwardError(RuntimeError):
    """A loss was differentiated twice (``create_graph=True``) where it does not support it."""


def refuse_double_backward(loss: str) -> Callable[[Backward], Backward]:
    """Decorate a Function's ``backward``: run it under ``no_grad``, and raise
    :class:`DoubleBackwardError` when a graph of the gradient is asked for."""

    def decorate(backward: Backward) -> Backward:
        @functools.wraps(backward)
        def wrapper(ctx: Any, *grad_outputs: Any) -> Any:
            if torch.is_grad_enabled():
                raise DoubleBackwardError(
                    f"{loss}: double backward (create_graph=True) is not supported: its "
                    "backward is a fused analytic gradient with no graph of its own. Use the "
                    "dense formula where second derivatives are needed."
                )
            with torch.no_grad():
                return backward(ctx, *grad_outputs)

        wrapper.refused_by = loss  # type: ignore[attr-defined]
        return wrapper

    return decorate


def differentiable_backward(
    eager: Callable[[Any, tuple[Tensor, ...]], Sequence[Tensor | None] | Tensor],
) -> Callable[[Backward], Backward]:
    """Decorate a Function's ``backward`` so that double backward is exact.

    ``eager(ctx, grad_outputs)`` is called under ``enable_grad`` only when a graph of the
    gradient is asked for; it rebuilds the loss from ``ctx.saved_tensors`` with differentiable
    torch operations and returns the Function's outputs recomputed (one tensor, or a sequence
    matching the forward's outputs). The gradients are then taken by autograd with
    ``create_graph=True`` for every input with ``ctx.needs_input_grad``; the saved tensors are
    the forward's own inputs, so those gradients stay connected to the outer graph.

    The tensor inputs of the forward must be saved, in order, by ``save_for_backward`` (None
    for an absent optional tensor): saved tensor ``i`` is forward argument ``i``. Non-tensor
    arguments get ``None`` gradients; a tensor passed in two slots gets its gradient in the
    first and zeros in the other.
    """

    def decorate(backward: Backward) -> Backward:
        @functools.wraps(backward)
        def wrapper(ctx: Any, *grad_outputs: Any) -> Any:
            if not torch.is_grad_enabled():
                return backward(ctx, *grad_outputs)
            saved = ctx.saved_tensors
            needs = ctx.needs_input_grad
            # one tensor passed in two slots gets its gradient once: autograd.grad would give
            # the whole gradient to each slot, and the caller would count it twice
            wrt: list[int] = []
            for i, t in enumerate(saved):
                fresh = not any(saved[j] is t for j in wrt)
                if i < len(needs) and needs[i] and isinstance(t, Tensor) and fresh:
                    wrt.append(i)
            with torch.enable_grad():
                outputs = eager(ctx, saved)
                if isinstance(outputs, Tensor):
                    outputs = (outputs,)
                pairs = [
                    (o, g)
                    for o, g in zip(outputs, grad_outputs, strict=True)
                    if o is not None and o.requires_grad and g is not None
                ]
                grads = (
                    torch.autograd.grad(
                        [o for o, _ in pairs],
                        [saved[i] for i in wrt],
                        [g for _, g in pairs],
                        create_graph=True,
                        allow_unused=True,
                    )
                    if pairs and wrt
                    else (None,) * len(wrt)
                )
            result: list[Tensor | None] = [None] * len(needs)
            for i, g in zip(wrt, grads, strict=True):
                result[i] = torch.zeros_like(saved[i]) if g is None else g
            return tuple(result)

        wrapper.eager = eager  # type: ignore[attr-defined]
        return wrapper

    return decorate


class LossFunction(torch.autograd.Function):
    """The base of losskit's autograd Functions: ``torch.autograd.Function`` that also works
    under functorch transforms (``torch.func.grad``, ``vjp``, ``jacrev``, ``jacfwd``, ``hessian``).

    torch runs a Function under those transforms only if it defines ``setup_context`` (and
    ``vmap`` for ``vmap``), which would send every call through ``Function.apply``'s Python
    layer (see :func:`c_apply`). Instead, where a transform is active, :meth:`apply` computes
    the Function's outputs with the eager formula its double backward uses (the ``eager`` of
    :func:`differentiable_backward`): the forward runs once under ``no_grad`` for the
    attributes and saved tensors that formula reads, then the formula runs on the inputs with
    the transform watching, so values and every derivative are autograd's of that formula. A
    Function whose backward refuses double backward has no such formula: there
    :class:`DoubleBackwardError` names the loss (the transforms differentiate a graph of the
    gradient, which a fused backward does not have). Outside transforms nothing changes."""

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if torch._C._are_functorch_transforms_active():
            return _apply_eager_formula(cls, args)
        return super().apply(*args, **kwargs)


class _EagerContext:
    """What a Function's forward and eager formula use of ``ctx``, outside autograd."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        self.saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


def _apply_eager_formula(function: type[torch.autograd.Function], args: tuple[Any, ...]) -> Any:
    backward = function.backward
    eager = getattr(backward, "eager", None)
    if eager is None:
        loss = getattr(backward, "refused_by", function.__name__)
        raise DoubleBackwardError(
            f"{loss}: torch.func transforms (grad, vjp, jacrev, hessian, vmap) are not "
            "supported: they differentiate a graph of the gradient, and this loss's backward is "
            "a fused analytic gradient with no graph of its own. Use the dense formula there."
        )
    ctx = _EagerContext(args)
    with torch.no_grad():
        forward = function.forward(ctx, *args)
    with torch.enable_grad():
        outputs = eager(ctx, ctx.saved_tensors)
    if isinstance(forward, Tensor):
        return outputs if isinstance(outputs, Tensor) else outputs[0]
    # an output the formula leaves out (None: not differentiable) is the forward's own
    return tuple(
        f if o is None else o
        for f, o in zip(
            forward, (outputs,) if isinstance(outputs, Tensor) else outputs, strict=True
        )
    )


# ------------------------------------------------------------------ per-call costs of small losses
#
# At the sizes most people train with a loss is a handful of kernels of about a microsecond each,
# so what surrounds them counts as much: a Python number meeting a tensor is wrapped into a new
# 0-dim tensor by every operation, and ``Function.apply`` adds a Python layer. The families'
# Functions share these three helpers.

#: (dtype, device) -> 0-dim (0, 1, -1): the constants the small path compares with and selects
_CONSTANTS: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor, Tensor]] = {}
#: (value, dtype, device) -> a 0-dim tensor holding it (margins, element counts); bounded
_NUMBERS: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}
_NUMBERS_MAX = 256


def constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """0-dim 0, 1 and -1 in ``dtype`` on ``device``, made once. Internal: never handed to a
    caller, never written to."""
    key = (dtype, device)
    found = _CONSTANTS.get(key)
    if found is None:
        with torch.inference_mode(False):  # usable outside inference mode too
            zero = torch.zeros((), dtype=dtype, device=device)
            found = _CONSTANTS[key] = (zero, zero + 1, zero - 1)
    return found


def number(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``value`` as a 0-dim tensor, cached: a Python number passed to an operator is wrapped in
    a new tensor on every call (about a microsecond each, the cost of a small loss)."""
    key = (value, dtype, device)
    found = _NUMBERS.get(key)
    if found is None:
        if len(_NUMBERS) >= _NUMBERS_MAX:
            _NUMBERS.clear()
        with torch.inference_mode(False):  # usable outside inference mode too
            found = _NUMBERS[key] = torch.full((), value, dtype=dtype, device=device)
    return found


def scale_early_grads(
    grads: tuple[Tensor | None, ...], grad_output: Tensor, dtype: torch.dtype
) -> tuple[Tensor | None, ...]:
    """Gradients that a Function computed in its forward for an incoming gradient of 1, scaled
    in place by the real one (in ``dtype``, the gradients' compute dtype). On the CPU reading
    ``grad_output`` costs nothing, and ``loss.backward()``'s 1 then needs no pass over them;
    elsewhere they are multiplied without a host synchronisation."""
    if grad_output.device.type == "cpu" and grad_output.item() == 1.0:
        return grads
    g = grad_output.to(dtype)
    return tuple(None if t is None else t.mul_(g) for t in grads)


def _identity(x: Tensor) -> Tensor:
    return x


def c_apply(function: type[torch.autograd.Function]) -> tuple[Callable[..., Any], Callable]:
    """``(apply, unwrap)``: call ``apply(*args)`` with each tensor argument passed through
    ``unwrap``, where no functorch transform is active
    (``torch._C._are_functorch_transforms_active()``, which the caller checks). That is what
    ``Function.apply`` does then (``unwrap_if_dead``, then the C++ ``apply``), without its
    Python preamble: about 2 us a call, 5% of a small loss. Where torch lacks either piece,
    ``(function.apply, identity)``."""
    unwrap = getattr(getattr(torch._C, "_functorch", None), "unwrap_if_dead", None)
    base = super(torch.autograd.Function, function)
    plain = function.setup_context is torch.autograd.Function.setup_context
    if unwrap is None or not plain or not hasattr(base, "apply"):
        return function.apply, _identity
    return base.apply, unwrap


#: below this many elements torch's own elementwise CPU kernels run on one thread (its grain
#: size)
SERIAL_MAX = 1 << 15
_CPU = torch.device("cpu")


def serial_log(x: Tensor) -> Tensor:
    """``log(x)``. On the CPU, with more than one thread and fewer than :data:`SERIAL_MAX`
    elements, as ``xlogy(1, x)`` (C's ``log``, one thread): ``torch.log`` calls MKL's vector
    log, which starts its own threads from 128 elements, where torch's other kernels (and
    ``F.kl_div``'s) stay on one; with the cores busy, waiting for the second thread took about
    7 ms, against 40 us for a whole KL loss. Either result is the logarithm to within an ulp
    (they differ in the last bit for about 1 element in 400); the gradient is the same."""
    if (
        not torch.compiler.is_compiling()  # dynamo: not past here
        and x.is_cpu
        and x.numel() < SERIAL_MAX
        and torch.get_num_threads() > 1
    ):
        return torch.xlogy(number(1.0, x.dtype, _CPU), x)  # 1 as a cached tensor
    return x.log()
