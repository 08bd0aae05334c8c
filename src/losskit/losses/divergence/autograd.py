"""The KL divergences as ``torch.autograd.Function``s with analytic backwards.

Written with autograd, :func:`kl_terms` (``p * (log p - log q)`` with its guards for ``p = 0``)
records about ten operations and keeps their results for the backward pass: at (1, 32) the
bookkeeping cost 1.4x torch's ``kl_div``, and at (1048, 1000) the saved intermediates took 1.5x
its memory. These Functions compute the value without a graph and save only what the gradient
needs: :class:`KLDivFunction` its two inputs (the gradient with respect to ``log q`` is ``-p``
times the incoming gradient), :class:`DistillationFunction` the student's log-probabilities and
the teacher's probabilities (the two tensors torch's formula keeps too).

**Value.** On the CPU outside ``torch.compile`` the value comes from a shorter formula than
:func:`kl_terms`, ``p * (max(log p, lowest) - log q)`` (``lowest`` the dtype's most negative
finite number), in place. Clamping ``log p = -inf`` (``p = 0``) makes that term
``0 * finite = 0``, the rule of :func:`kl_terms`, wherever ``log q`` is finite, and leaves every
other term as it was, bit for bit. The two differ only where the short formula gives NaN
(``p = 0`` with ``log q = -inf``, a class both sides rule out; or NaN in): the sum is read on the
host (free on the CPU) and, if NaN, recomputed with :func:`kl_terms`, so the result is always
:func:`kl_terms`' (up to the sign of a zero). On accelerators and under ``torch.compile``, where
that read would synchronise or break the graph, and for ``reduction="none"``, :func:`kl_terms`
runs directly.

**Gradient.** Operation for operation what autograd computes through the eager formulas
:func:`kl_terms` and :func:`distillation_direct`, so the numbers agree to the bit (but for the
sign of a zero where the eager formula's ``where`` cuts the gradient of ``log q = -inf`` at
``p = 0``, here ``-0 * g``).

**Second derivatives.** The backwards are decorated with
:func:`losskit._autograd.differentiable_backward`: when a graph of the gradient is asked for,
autograd differentiates the eager formulas instead, so double backward is exact.

**Overhead.** At 32 elements a forward+backward costs about 35 us, nearly all of it fixed costs
per operation, so these count: numbers that meet tensors (``T``, the batch size) are 0-dim
tensors made once (:func:`_constant`: a Python number is wrapped into a tensor by every
operation, about 1 us each); for ``loss.backward()`` (an incoming gradient of 1, read on the
host) the factor of ``p`` in the gradient is a constant made once too; and :func:`_applier`
skips ``Function.apply``'s Python layer where it has nothing to do (about 3 us).

**Threads.** With more than one thread every parallel region waits for its threads, and on a
busy machine that wait is milliseconds (a 40 us loss took 7 ms). Below torch's grain size its
elementwise kernels stay on one thread, but ``torch.log`` and ``torch.exp`` call MKL, which
starts threads from 128 elements, and log-softmax goes parallel from two rows. So at those
sizes the logarithm is :func:`losskit._autograd.serial_log` (C's ``log``, one thread, as in
``F.kl_div``'s ``xlogy``) and the distillation takes both log-softmaxes in one call. Above the
grain size each operation is one region, as each of torch's is; at 1 thread nothing changes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autograd import SERIAL_MAX, LossFunction, differentiable_backward, number, serial_log

__all__ = [
    "DistillationFunction",
    "KLDivFunction",
    "apply_distillation",
    "apply_kl_div",
    "distillation_direct",
    "kl_terms",
    "reduce_terms",
]

_LOWEST = {
    dtype: torch.finfo(dtype).min
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
}


def kl_terms(log_q: Tensor, target: Tensor, log_target: bool, p: Tensor | None = None) -> Tensor:
    """``p * (log p - log q)`` elementwise, 0 where ``p = 0`` whatever ``log q`` is (down to
    -inf: a class both sides rule out), with finite gradients there. torch's formula gives NaN
    for ``p = 0`` with ``log q = -inf``, and for every ``log_target = -inf``. A NaN stays NaN.
    ``p``, if given, is ``target.exp()`` (``log_target``) already computed."""
    if log_target:
        absent = target == -math.inf
        p = target.exp() if p is None else p
        log_p = torch.where(absent, 0.0, target)
    else:
        absent = target == 0
        p = target
        # log of 1, not of 0, where absent: log's gradient at 0 would be 0 * inf = NaN
        log_p = serial_log(torch.where(absent, 1.0, target))
    log_q = torch.where(absent & (log_q == -math.inf), 0.0, log_q)
    return p * (log_p - log_q)


def reduce_terms(terms: Tensor, reduction: str, batch: int) -> Tensor:
    if reduction == "none":
        return terms
    if reduction == "mean":
        # torch's "mean" (elementwise) without its deprecation warning; empty -> 0
        return terms.sum() if terms.numel() == 0 else terms.mean()
    total = terms.sum()
    if reduction == "sum" or batch in (0, 1):
        return total
    return total / batch


_CPU = torch.device("cpu")


def _constant(value: float, dtype: torch.dtype) -> Tensor:
    """``value`` as a 0-dim CPU tensor of ``dtype``, made once (:func:`losskit._autograd.number`).
    An operation with a Python number wraps it into a tensor every time (about 1 us, a kernel's
    worth at small sizes); the value is the same (both are rounded to ``dtype``), so is the
    result."""
    return number(value, dtype, _CPU)


def _reads_are_free(x: Tensor) -> bool:
    """Whether a value can be read on the host at no cost: a CPU tensor outside
    ``torch.compile`` (elsewhere it synchronises with the device or breaks the graph). Also
    where :func:`_constant` is used: under ``torch.compile`` numbers stay numbers."""
    return x.is_cpu and not torch.compiler.is_compiling()


def _reduce_on_cpu(terms: Tensor, reduction: str, batch: int) -> Tensor:
    """:func:`reduce_terms` (not ``"none"``), dividing by a :func:`_constant`."""
    if reduction == "mean":
        return reduce_terms(terms, reduction, batch)
    out = terms.sum()
    if reduction == "batchmean" and batch > 1:
        out = out.div_(_constant(batch, out.dtype))
    return out


def _divisor(reduction: str, batch: int, numel: int) -> int | None:
    """What :func:`reduce_terms` divides the sum by, if anything."""
    if reduction == "mean" and numel:
        return numel
    if reduction == "batchmean" and batch not in (0, 1):
        return batch
    return None


def _term_grad(grad: Tensor, reduction: str, batch: int, numel: int) -> Tensor:
    """The gradient reaching each term from :func:`reduce_terms`' output, as autograd computes
    it (``mean`` and ``batchmean`` divide the incoming gradient)."""
    divisor = _divisor(reduction, batch, numel)
    return grad if divisor is None else grad / divisor


@functools.lru_cache(maxsize=256)
def _minus_unit_grad(temperature: float | None, divisor: int | None, dtype: torch.dtype) -> Tensor:
    """What :func:`_minus_term_grad` computes for an incoming gradient of 1, made once."""
    with torch.inference_mode(False):
        g = _constant(1.0, dtype)
        if temperature is not None:
            t = _constant(temperature, dtype)
            g = g.mul(t).mul_(t)
        return g.neg() if divisor is None else g.div(_constant(-divisor, dtype))


def _minus_term_grad(
    grad: Tensor, reduction: str, batch: int, numel: int, temperature: float | None = None
) -> Tensor | None:
    """Minus the gradient reaching each term from the loss, by autograd's operations: the
    incoming gradient times ``T`` twice (distillation's ``out * T * T``), divided by the
    reduction's divisor, negated (``-(g / n)`` is ``g / -n`` to the bit). Where the incoming
    gradient is 1 (``loss.backward()``) and reading it is free, a constant made once, or None
    for ``-(1 * p) = -p``: the operations on 0-dim tensors cost a kernel's worth each."""
    divisor = _divisor(reduction, batch, numel)
    cpu = _reads_are_free(grad)
    if cpu and grad.dim() == 0 and grad.item() == 1.0:
        if temperature is None and divisor is None:
            return None
        return _minus_unit_grad(temperature, divisor, grad.dtype)
    if temperature is not None:
        t = _constant(temperature, grad.dtype) if cpu else temperature
        grad = grad.mul(t).mul_(t)
    if divisor is None:
        return grad.neg()
    return grad.div(_constant(-divisor, grad.dtype) if cpu else -divisor)


def _short_terms(log_q: Tensor, log_p: Tensor, p: Tensor) -> Tensor:
    """``p * (max(log p, lowest) - log q)``, written over ``log_p`` (the caller's own buffer):
    :func:`kl_terms` wherever it is not NaN (see the module docstring)."""
    return log_p.clamp_min_(_LOWEST[log_p.dtype]).sub_(log_q).mul_(p)


def _target_grad(log_q: Tensor, target: Tensor, log_target: bool, grad: Tensor) -> Tensor:
    """The gradient of ``sum(grad * kl_terms(log_q, target))`` with respect to ``target``,
    operation for operation what autograd computes through :func:`kl_terms`."""
    if log_target:
        absent = target == -math.inf
        p = target.exp()
        log_p = torch.where(absent, 0.0, target)
    else:
        absent = target == 0
        p = target
        p_safe = torch.where(absent, 1.0, target)
        log_p = serial_log(p_safe)
    log_q = torch.where(absent & (log_q == -math.inf), 0.0, log_q)
    direct = grad * (log_p - log_q)  # the product's gradient for its factor p ...
    through_log = grad * p  # ... and for log p - log q, which reaches log p
    if log_target:  # exp's gradient is its result; where's is 0 where absent
        return direct * p + torch.where(absent, 0.0, through_log)
    return direct + torch.where(absent, 0.0, through_log / p_safe)


def _applier(
    function: type[torch.autograd.Function], eager: Callable[..., Tensor]
) -> Callable[..., Tensor]:
    """``function.apply(x, y, *options)`` by the shortest path that is right.

    * Inside functorch transforms (``torch.func.grad``, ``vmap``...) the ``eager`` formula, with
      autograd: these Functions define no ``setup_context``, which the transforms need, and
      the eager formula is what the losses computed before they had a Function.
    * Under ``torch.compile``, and for tensors left wrapped by a finished transform, the public
      ``function.apply``: dynamo traces it, and it unwraps such tensors.
    * Otherwise the C++ apply that ``Function.apply`` ends in: its Python layer (the two cases
      above) costs about 3 us, a tenth of a forward+backward at 32 elements.
    """
    public = function.apply
    base = getattr(torch.autograd.function, "_SingleLevelFunction", None)
    native = getattr(super(base, function), "apply", None) if base is not None else None
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    if native is None or active is None or wrapped is None:  # another torch: public paths only
        native = public
        active = active or (lambda: False)
        wrapped = wrapped or (lambda t: False)
    compiling = torch.compiler.is_compiling

    def apply(x: Tensor, y: Tensor, option: Any, reduction: str, batch: int) -> Tensor:
        if compiling() or active() or wrapped(x) or wrapped(y):
            if not compiling() and active():
                return eager(x, y, option, reduction, batch)
            return public(x, y, option, reduction, batch)
        return native(x, y, option, reduction, batch)

    return apply


# ---------------------------------------------------------------- KL on log-probabilities


def _kl_div_eager(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    log_q, target = saved
    log_target, reduction, batch = ctx.options
    return reduce_terms(kl_terms(log_q, target, log_target), reduction, batch)


class KLDivFunction(LossFunction):
    """:func:`reduce_terms` of :func:`kl_terms`. Saves its two inputs; the gradient with
    respect to ``log_q`` is ``-p`` times the incoming gradient (one product), that with
    respect to ``target`` autograd's through :func:`kl_terms` (:func:`_target_grad`). The
    caller validates the inputs and passes them in the compute dtype."""

    @staticmethod
    def forward(
        ctx: Any, log_q: Tensor, target: Tensor, log_target: bool, reduction: str, batch: int
    ) -> Tensor:
        ctx.save_for_backward(log_q, target)
        ctx.options = (log_target, reduction, batch)
        if reduction != "none" and _reads_are_free(log_q):
            # the short formula (module docstring), in place on this call's own buffer
            if log_target:  # clamped out of place: target is the caller's
                lowest = _LOWEST[target.dtype]
                terms = target.clamp_min(lowest).sub_(log_q).mul_(target.exp())
            else:
                terms = _short_terms(log_q, serial_log(target), target)
            out = _reduce_on_cpu(terms, reduction, batch)
            if not math.isnan(out.item()):
                return out
        return reduce_terms(kl_terms(log_q, target, log_target), reduction, batch)

    @staticmethod
    @differentiable_backward(_kl_div_eager)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        log_q, target = ctx.saved_tensors
        log_target, reduction, batch = ctx.options
        need_q, need_t = ctx.needs_input_grad[:2]
        grad_q = grad_t = None
        if need_q:  # autograd's -(g * p) in one full-size pass: the sign goes on the scalar
            p = target.exp() if log_target else target
            minus_g = _minus_term_grad(grad, reduction, batch, log_q.numel())
            if minus_g is None:
                grad_q = p.neg_() if log_target else p.neg()
            else:
                grad_q = p.mul_(minus_g) if log_target else p * minus_g
        if need_t:
            g = _term_grad(grad, reduction, batch, log_q.numel())
            grad_t = _target_grad(log_q, target, log_target, g)
        return grad_q, grad_t, None, None, None


# ---------------------------------------------------------------- distillation on logits


def distillation_direct(
    x: Tensor, y: Tensor, temperature: float, reduction: str, batch: int
) -> Tensor:
    """The distillation loss by its direct formula, ``T^2`` times :func:`reduce_terms` of
    :func:`kl_terms` on the softened log-probabilities, with autograd (the eager formula)."""
    dim = 1 if x.dim() > 1 else 0
    if temperature != 1.0:
        x, y = x / temperature, y / temperature
    terms = kl_terms(F.log_softmax(x, dim), F.log_softmax(y, dim), True)
    out = reduce_terms(terms, reduction, batch)
    return out * temperature * temperature if temperature != 1.0 else out


def _distillation_eager(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    x, y = saved[:2]
    temperature, reduction, batch = ctx.options
    return distillation_direct(x, y, temperature, reduction, batch)


#: from this many elements log-softmax and its backward write over their input: a full-size
#: temporary fewer. Below, the ``out=`` call costs more (about 1.5 us) than the allocation.
_IN_PLACE_MIN = 1 << 16


def _in_place_ok(*tensors: Tensor) -> bool:
    """Whether log-softmax and its backward may write over their input on these tensors:
    large (:data:`_IN_PLACE_MIN`), contiguous, classes on the last dimension, on the CPU
    outside ``torch.compile``. There the kernel reads a row before it writes it (bit for bit
    the out-of-place result; not so for a transposed layout, where the backward's comes out
    wrong: tests/test_divergence.py checks both)."""
    return (
        all(
            t.numel() >= _IN_PLACE_MIN and t.is_contiguous() and t.dim() <= 2 and t.is_cpu
            for t in tensors
        )
        and not torch.compiler.is_compiling()
    )


def _log_softmax(x: Tensor, t: Tensor | float | None, dim: int) -> Tensor:
    """``log_softmax(x / t)`` (``t`` None: of ``x``), written over the quotient where
    :func:`_in_place_ok`: one full-size temporary fewer."""
    if t is None:
        return F.log_softmax(x, dim)
    scaled = x / t
    if _in_place_ok(scaled):
        return torch.log_softmax(scaled, dim, out=scaled)
    return F.log_softmax(scaled, dim)


def _log_softmaxes(
    x: Tensor, y: Tensor, t: Tensor | float | None, dim: int, cpu: bool
) -> tuple[Tensor, Tensor]:
    """``log_softmax(x / t)`` and ``log_softmax(y / t)``, in one call where that saves a
    parallel region: with more than one row and thread, log-softmax is one (and with the cores
    busy each waits milliseconds for its second thread). Below :data:`SERIAL_MAX` elements
    the division and the copy are not regions (one instead of two; a single row is computed
    on one thread, so two calls); above, the quotients are written into one buffer, with more
    than one thread only (it keeps ``log q``'s buffer, twice its size, for the backward)."""
    n = x.shape[0] if x.dim() == 2 else 0
    if cpu and n > 1:
        if x.numel() < SERIAL_MAX:
            both = torch.cat((x, y))
            both = F.log_softmax(both if t is None else both.div_(t), dim)
            return both[:n], both[n:]
        if t is not None and torch.get_num_threads() > 1:
            both = torch.empty((2 * n, x.shape[1]), dtype=x.dtype, device=x.device)
            torch.div(x, t, out=both[:n])
            torch.div(y, t, out=both[n:])
            if _in_place_ok(both):
                both = torch.log_softmax(both, dim, out=both)
            else:
                both = F.log_softmax(both, dim)
            return both[:n], both[n:]
    return _log_softmax(x, t, dim), _log_softmax(y, t, dim)


def _log_softmax_grad(grad: Tensor, log_s: Tensor, dim: int) -> Tensor:
    """log-softmax's backward (autograd's own function) of ``grad`` at the output ``log_s``,
    written over ``grad`` where :func:`_in_place_ok`."""
    if _in_place_ok(grad, log_s):
        return torch._log_softmax_backward_data(grad, log_s, dim, log_s.dtype, out=grad)
    return torch._log_softmax_backward_data(grad, log_s, dim, log_s.dtype)


class DistillationFunction(LossFunction):
    """:func:`distillation_direct` for student logits ``x`` and teacher logits ``y``. Saves
    the inputs, the student's log-probabilities ``log q`` and the teacher's probabilities
    ``p``: the student's gradient is log-softmax's backward of ``-p`` times the incoming
    gradient, divided by ``T``, as autograd computes it. The caller validates the inputs."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, y: Tensor, temperature: float, reduction: str, batch: int
    ) -> Tensor:
        ctx.options = (temperature, reduction, batch)
        dim = 1 if x.dim() > 1 else 0
        cpu = _reads_are_free(x)
        # T as a 0-dim tensor on the CPU: a Python number is wrapped into one by each of the
        # five operations that meet it (about 1 us each at small sizes)
        t = None
        if temperature != 1.0:
            t = _constant(temperature, x.dtype) if cpu else temperature
        ctx.t = t
        log_q, log_p = _log_softmaxes(x, y, t, dim, cpu)
        p = log_p.exp()
        out = None
        if cpu and reduction != "none":
            out = _reduce_on_cpu(_short_terms(log_q, log_p, p), reduction, batch)
            if math.isnan(out.item()):  # log_p was overwritten: recompute it for kl_terms
                out, log_p = None, _log_softmax(y, t, dim)
        if out is None:
            out = reduce_terms(kl_terms(log_q, log_p, True, p), reduction, batch)
        # saved tensors 0 and 1 must be the inputs (differentiable_backward differentiates
        # the eager formula with respect to them); 2 and 3 line up with non-tensor arguments
        ctx.save_for_backward(x, y, log_q, p)
        if t is not None:
            out = out.mul_(t).mul_(t)  # twice, as the eager formula (T^2 rounds differently)
        return out

    @staticmethod
    @differentiable_backward(_distillation_eager)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, y, log_q, p = ctx.saved_tensors
        _, reduction, batch = ctx.options
        t = ctx.t  # None for T = 1
        need_x, need_y = ctx.needs_input_grad[:2]
        dim = 1 if x.dim() > 1 else 0
        grad_x = grad_y = None
        if need_x:
            # -(g * p) is all that reaches log q: the eager formula's where(..., 0, log q)
            # only cuts it where p = 0, where it is -0 anyway
            temperature = None if t is None else ctx.options[0]
            minus_g = _minus_term_grad(grad, reduction, batch, x.numel(), temperature)
            grad_log_q = p.neg() if minus_g is None else p * minus_g
            grad_x = _log_softmax_grad(grad_log_q, log_q, dim)
            if t is not None:
                grad_x = grad_x.div_(t)
        if need_y:
            if t is not None:
                grad = grad.mul(t).mul_(t)  # the eager formula's out * T * T, backwards
            g = _term_grad(grad, reduction, batch, x.numel())
            log_p = _log_softmax(y, t, dim)
            grad_y = _log_softmax_grad(_target_grad(log_q, log_p, True, g), log_p, dim)
            if t is not None:
                grad_y = grad_y.div_(t)
        return grad_x, grad_y, None, None, None


#: ``KLDivFunction.apply`` and ``DistillationFunction.apply``, by the shortest safe path
apply_kl_div = _applier(
    KLDivFunction,
    lambda log_q, target, log_target, reduction, batch: reduce_terms(
        kl_terms(log_q, target, log_target), reduction, batch
    ),
)
apply_distillation = _applier(DistillationFunction, distillation_direct)
