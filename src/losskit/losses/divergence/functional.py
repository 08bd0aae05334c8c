"""Divergences between distributions: Kullback-Leibler on log-probabilities (torch's argument
convention) and on raw logits with a temperature (knowledge distillation).

Both default to ``reduction="batchmean"``, the KL divergence per sample. torch defaults to
``"mean"``, which also divides by the number of classes, so the number it returns is not a KL
divergence (torch itself warns about it); ``"mean"``, ``"sum"`` and ``"none"`` are still
accepted and give torch's numbers.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_floating,
    check_in_unit_interval,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    full_checks,
)
from losskit._reduce import upcast
from losskit.losses.divergence.autograd import (
    apply_distillation,
    apply_kl_div,
    kl_terms,
)
from losskit.losses.divergence.options import LOG_TARGET, TEMPERATURE

__all__ = ["KL_REDUCTIONS", "KLReduction", "kl_div", "kl_div_with_logits"]

KLReduction = Literal["batchmean", "mean", "sum", "none"]
KL_REDUCTIONS: tuple[str, ...] = ("batchmean", "mean", "sum", "none")
#: computed in float32 (see :func:`losskit._reduce.upcast`)
_HALF = (torch.float16, torch.bfloat16)


def _check_bool(loss: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(loss, name, f"is {value!r}", "True or False")
    return value


def _check_pair(
    loss: str, input: object, target: object, reduction: object, scalar: bool = False
) -> None:
    input = check_floating(loss, "input", input)
    target = check_floating(loss, "target", target)
    if input.dim() == 0 and not scalar:
        fail(
            loss,
            "input",
            "is a scalar",
            "(N, C), (N, C, d1, ...) or an unbatched (C,) distribution",
        )
    check_same_shape(loss, "target", target, input, "input")
    check_same_dtype(loss, "target", target, input, "input")
    check_same_device(loss, "target", target, input, "input")
    check_reduction(loss, reduction, KL_REDUCTIONS)


def _checked_pair(input: object, target: object, reduction: object) -> bool:
    """Whether every check of :func:`_check_pair` passes and no value check runs (``fast``
    level), so a caller may skip them all (on ``False`` it runs them, for their messages)."""
    return (
        isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and not full_checks()
        and input.is_floating_point()
        and input.dtype == target.dtype
        and input.shape == target.shape
        # two CPU tensors are on one device: the cheap test first (this runs on every call)
        and ((input.is_cpu and target.is_cpu) or input.device == target.device)
        and reduction in KL_REDUCTIONS
    )


def _check_no_nan_or_inf(loss: str, name: str, x: Tensor, expected: str) -> None:
    """Under full checks: no NaN and no +inf. -inf is a probability of 0 (a class ruled out,
    e.g. a masked vocabulary), which every formula here counts exactly."""
    if full_checks() and x.numel():
        bad = int((x.isnan() | (x == math.inf)).sum())
        if bad:
            fail(loss, name, f"has {bad} NaN or +inf value(s)", f"{expected} (checks='full')")


def _check_log_probabilities(loss: str, name: str, x: Tensor) -> None:
    """Under full checks: values <= 0, -inf included (a positive log-probability is a
    probability > 1, the usual sign that probabilities were passed where log-probabilities
    belong)."""
    _check_no_nan_or_inf(loss, name, x, "log-probabilities, values <= 0 or -inf")
    if full_checks() and x.numel():
        hi = float(x.detach().max())  # detached: reading a value that requires grad warns
        if hi > 0.0:
            fail(
                loss,
                name,
                f"has a maximum of {hi:g}",
                "log-probabilities, values <= 0 (e.g. log_softmax output) (checks='full')",
            )


def _batch_size(x: Tensor) -> int:
    """The batch size ``batchmean`` divides by: ``x.shape[0]``, or 1 for an unbatched ``(C,)``
    (or a 0-dim input, as torch)."""
    return x.shape[0] if x.dim() > 1 else 1


#: Above this temperature the softened distributions are close and ``p log(p / q)`` cancels
#: (float32 is off by 1% at T = 1000): rows whose scaled logit differences stay within
#: ``_CLOSE`` use the expansion of :func:`_close_rows` instead.
_HOT = 16.0
_CLOSE = 0.5
_SERIES = 18


def _series(z: Tensor, coefficient: list[float]) -> Tensor:
    """``sum_k coefficient[k] * z**k`` (Horner)."""
    out = torch.full_like(z, coefficient[-1])
    for c in reversed(coefficient[:-1]):
        out = out * z + c
    return out


# expm1(w) - w = w^2 sum w^k/(k+2)!;  r e^r - expm1(r) = r^2 sum (k+1) r^k/(k+2)!
_G = [1.0 / math.factorial(k + 2) for k in range(_SERIES)]
_H = [(k + 1) / math.factorial(k + 2) for k in range(_SERIES)]


def _close_rows(
    s: Tensor, t: Tensor, log_q: Tensor, close: Tensor, temperature: float, dim: int
) -> tuple[Tensor, Tensor]:
    """``T^2 KL(p || q)`` per row and ``T^2 p log(p / q)`` per element for rows where the
    centred logit differences ``w = (u - E_q u) / T``, ``u = t - s``, satisfy ``|w| <= _CLOSE``
    (other rows give finite garbage, to be discarded).

    With ``r = log(p / q) = w - log E_q e^w``, ``KL = sum_c q_c (r_c e^r_c - expm1(r_c))``, a
    sum of non-negative terms each computed from its series; ``T r`` is formed from
    ``u - E_q u`` without cancellation, so the result is exact to rounding for any ``T``
    (``T -> inf`` gives the logit-matching limit ``sum_c (u_c - mean u)^2 / 2C``)."""
    q = log_q.exp()
    u = torch.where(close, t - s, 0.0)
    big_u = u - (q * u).sum(dim, keepdim=True)
    w = big_u / temperature
    te = (q * big_u * w * _series(w, _G)).sum(dim, keepdim=True)  # T * E_q[expm1(w) - w]
    e = te / temperature
    positive = e > 0
    e_safe = torch.where(positive, e, 1.0)
    t_log = te * torch.where(positive, e_safe.log1p() / e_safe, 1.0)  # T * log E_q[e^w]
    rho = big_u - t_log  # T * r
    r = rho / temperature
    rows = (q * rho.square() * _series(r, _H)).sum(dim)
    return rows, q * r.exp() * rho * temperature


def _distillation(x: Tensor, y: Tensor, temperature: float, reduction: str, batch: int) -> Tensor:
    if temperature <= _HOT or x.numel() == 0:
        return apply_distillation(x, y, temperature, reduction, batch)
    dim = 1 if x.dim() > 1 else 0
    log_q = F.log_softmax(x / temperature, dim)
    terms = kl_terms(log_q, F.log_softmax(y / temperature, dim), True)
    with torch.no_grad():
        u = y - x
        spread = (u - (log_q.exp() * u).sum(dim, keepdim=True)).abs().amax(dim, keepdim=True)
        close = spread <= _CLOSE * temperature  # False for NaN and inf
    rows, elements = _close_rows(x, y, log_q, close, temperature, dim)
    # multiplied twice, not by T^2: T^2 overflows float32 for T > 1.8e19
    direct = terms * temperature * temperature
    if reduction == "none":
        return torch.where(close, elements, direct)
    direct_rows = terms.sum(dim) * temperature * temperature
    rows = torch.where(close.squeeze(dim), rows, direct_rows)
    if reduction == "mean":
        return rows.sum() / terms.numel()
    return rows.sum() if reduction == "sum" or batch == 1 else rows.sum() / batch


@autocast_float32
def kl_div(
    input: Tensor,
    target: Tensor,
    *,
    log_target: bool = LOG_TARGET.default,
    reduction: KLReduction = "batchmean",
) -> Tensor:
    r"""Kullback-Leibler divergence :math:`D_{KL}(P \,\|\, Q)` with ``input`` :math:`= \log Q`.

    .. math:: \ell_{i} = p_{i} (\log p_{i} - x_{i}), \qquad
              \text{batchmean} = \frac{1}{N}\sum_{n,c} \ell_{n,c} = \frac1N \sum_n D_{KL}(P_n\|Q_n)

    As in torch, ``input`` holds **log-probabilities** of the model distribution :math:`Q` and
    ``target`` the probabilities of :math:`P` (or log-probabilities with ``log_target=True``,
    which is exact where :math:`p` underflows). Terms with :math:`p = 0` (a log-target of
    -inf) are 0, with finite gradients, even where :math:`\log q = -\infty` (a class both sides
    rule out; torch's formula gives NaN in both cases). NaN in is NaN out.

    Shapes: ``input`` ``(N, C)``, ``(N, C, d1, ...)``, an unbatched ``(C,)`` distribution or a
    0-dim term (as torch; ``"batchmean"`` divides it by 1); ``target`` the same shape and dtype.

    Reductions: ``"batchmean"`` (default) sums and divides by ``N``, giving the KL divergence per
    sample. Differences from ``torch.nn.functional.kl_div``, all deliberate:

    * the default is ``"batchmean"``, not torch's ``"mean"``. torch's ``"mean"`` divides by
      ``N * C`` and so is not a KL divergence; it is still available here, without torch's
      warning;
    * a 1-D input is one distribution, so ``"batchmean"`` returns its KL divergence (torch
      divides by ``C``, treating each class as a sample);
    * an empty batch gives 0.0, not NaN.

    Under ``checks="full"``, ``input`` must be log-probabilities (values <= 0 or -inf, which
    catches probabilities passed by mistake; no NaN) and ``target`` probabilities in [0, 1].

    A custom autograd Function (:mod:`losskit.losses.divergence.autograd`): it keeps only its
    two inputs for the backward pass, and its gradients are the formula's to the bit (double
    backward too).

    >>> import torch, losskit.functional as LF
    >>> p = torch.tensor([0.36, 0.48, 0.16])          # binomial(2, 0.4)
    >>> q = torch.full((3,), 1 / 3)                     # uniform
    >>> round(LF.kl_div(q.log(), p).item(), 4)          # D_KL(P || Q)
    0.0853
    """
    loss = "kl_div"
    # the common call passes every check without reading a value: one test stands for them
    if not (_checked_pair(input, target, reduction) and type(log_target) is bool):
        _check_pair(loss, input, target, reduction, scalar=True)
        _check_bool(loss, "log_target", log_target)
        _check_log_probabilities(loss, "input", input)
        if log_target:
            _check_log_probabilities(loss, "target", target)
        else:
            check_in_unit_interval(loss, "target", target)
    batch = input.shape[0] if input.dim() > 1 else 1  # _batch_size, inline (every call)
    if input.dtype in _HALF:
        out = apply_kl_div(upcast(input), upcast(target), log_target, reduction, batch)
        return out.to(input.dtype)
    return apply_kl_div(input, target, log_target, reduction, batch)


@autocast_float32
def kl_div_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    temperature: float = TEMPERATURE.default,
    reduction: KLReduction = "batchmean",
) -> Tensor:
    r"""KL divergence between the softened distributions of two sets of logits: the
    knowledge-distillation loss of Hinton et al. (2015).

    .. math:: \ell = T^2\, D_{KL}\big(\operatorname{softmax}(t / T) \,\|\,
              \operatorname{softmax}(s / T)\big)

    with ``input`` the student logits :math:`s` and ``target`` the teacher logits :math:`t`. The
    factor :math:`T^2` keeps the gradient's scale independent of the temperature, so the loss can
    be mixed with a hard-label cross-entropy without retuning its weight. Computed in log-space
    (``log_softmax`` on both sides), so logits of any size give finite values and gradients.

    Shapes: ``(N, C)``, ``(N, C, d1, ...)`` (classes on dimension 1, like ``cross_entropy``) or an
    unbatched ``(C,)``; ``target`` the same shape. For language-model logits ``(B, T, V)``, pass
    ``(B * T, V)`` views so that ``"batchmean"`` is the KL divergence per token. Reductions as
    :func:`kl_div` (``"batchmean"`` by default), each multiplied by :math:`T^2`. Detach the
    teacher's logits if it is not being trained. A logit of -inf (a masked class) is a
    probability of 0: a teacher's contributes 0.

    Up to :math:`T = 16` a custom autograd Function (:mod:`losskit.losses.divergence.autograd`),
    which keeps the inputs, :math:`\log q` and :math:`p` for the backward pass (as torch's
    formula does), with the formula's gradients to the bit (double backward too).

    Exact to rounding at every temperature: above :math:`T = 16`, rows whose distributions are
    close (every centred logit difference within :math:`T/2`) are computed from the expansion
    of :math:`T^2 D_{KL}` in :math:`(t - s)/T`, where :math:`p \log(p/q)` would cancel (float32
    was 1% off at :math:`T = 1000`) and :math:`T^2` overflow. As :math:`T \to \infty` the loss
    tends to logit matching, :math:`\frac{1}{2C}\sum_c (d_c - \bar d)^2`, :math:`d = t - s`.
    With ``"none"`` each term :math:`T^2 p_c \log(p_c / q_c)` is :math:`O(T)` while their sum is
    :math:`O(1)`: reduce with ``"batchmean"`` or ``"sum"`` for the exact total.

    >>> import torch, losskit.functional as LF
    >>> student = torch.tensor([[1.0, 1.0, 1.0]])
    >>> teacher = torch.tensor([[0.36, 0.48, 0.16]]).log() + 5.0   # logits are shift-invariant
    >>> round(LF.kl_div_with_logits(student, teacher).item(), 4)
    0.0853
    """
    loss = "kl_div_with_logits"
    # the common call passes every check without reading a value: one test stands for them
    checked = _checked_pair(input, target, reduction) and input.dim() > 0
    if not checked:
        _check_pair(loss, input, target, reduction)
    t = TEMPERATURE.check(loss, temperature)
    if not checked:
        for name, x in (("input", input), ("target", target)):
            _check_no_nan_or_inf(loss, name, x, "finite logits, or -inf for a class ruled out")
    batch = _batch_size(input)
    if input.dtype in _HALF:
        return _distillation(upcast(input), upcast(target), t, reduction, batch).to(input.dtype)
    return _distillation(input, target, t, reduction, batch)
