"""Divergences between distributions: Kullback-Leibler on log-probabilities (torch's argument
convention) and on raw logits with a temperature (knowledge distillation).

Both default to ``reduction="batchmean"``, the KL divergence per sample. torch defaults to
``"mean"``, which also divides by the number of classes, so the number it returns is not a KL
divergence (torch itself warns about it); ``"mean"``, ``"sum"`` and ``"none"`` are still
accepted and give torch's numbers.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_finite,
    check_floating,
    check_in_unit_interval,
    check_number,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    full_checks,
)
from losskit._reduce import upcast

__all__ = ["KL_REDUCTIONS", "KLReduction", "kl_div", "kl_div_with_logits"]

KLReduction = Literal["batchmean", "mean", "sum", "none"]
KL_REDUCTIONS: tuple[str, ...] = ("batchmean", "mean", "sum", "none")


def _check_bool(loss: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(loss, name, f"is {value!r}", "True or False")
    return value


def _check_pair(loss: str, input: object, target: object, reduction: object) -> None:
    input = check_floating(loss, "input", input)
    target = check_floating(loss, "target", target)
    if input.dim() == 0:
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


def _check_log_probabilities(loss: str, name: str, x: Tensor) -> None:
    """Under full checks: finite values <= 0 (a positive log-probability is a probability > 1,
    the usual sign that probabilities were passed where log-probabilities belong)."""
    check_finite(loss, name, x)
    if full_checks() and x.numel():
        hi = float(x.max())
        if hi > 0.0:
            fail(
                loss,
                name,
                f"has a maximum of {hi:g}",
                "log-probabilities, values <= 0 (e.g. log_softmax output) (checks='full')",
            )


def _batch_size(x: Tensor) -> int:
    """The batch size ``batchmean`` divides by: ``x.shape[0]``, or 1 for an unbatched ``(C,)``."""
    return x.shape[0] if x.dim() > 1 else 1


def _reduce_kl(log_q: Tensor, p: Tensor, log_target: bool, reduction: str, batch: int) -> Tensor:
    if reduction == "none":
        return F.kl_div(log_q, p, reduction="none", log_target=log_target)
    if reduction == "mean":
        # torch's "mean" (elementwise) without its deprecation warning; empty -> 0
        pointwise = F.kl_div(log_q, p, reduction="none", log_target=log_target)
        return pointwise.sum() if pointwise.numel() == 0 else pointwise.mean()
    total = F.kl_div(log_q, p, reduction="sum", log_target=log_target)
    if reduction == "sum" or batch in (0, 1):
        return total
    return total / batch


@autocast_float32
def kl_div(
    input: Tensor,
    target: Tensor,
    *,
    log_target: bool = False,
    reduction: KLReduction = "batchmean",
) -> Tensor:
    r"""Kullback-Leibler divergence :math:`D_{KL}(P \,\|\, Q)` with ``input`` :math:`= \log Q`.

    .. math:: \ell_{i} = p_{i} (\log p_{i} - x_{i}), \qquad
              \text{batchmean} = \frac{1}{N}\sum_{n,c} \ell_{n,c} = \frac1N \sum_n D_{KL}(P_n\|Q_n)

    As in torch, ``input`` holds **log-probabilities** of the model distribution :math:`Q` and
    ``target`` the probabilities of :math:`P` (or log-probabilities with ``log_target=True``,
    which is exact where :math:`p` underflows). Terms with :math:`p = 0` are 0.

    Shapes: ``input`` ``(N, C)``, ``(N, C, d1, ...)`` or an unbatched ``(C,)`` distribution;
    ``target`` the same shape and dtype.

    Reductions: ``"batchmean"`` (default) sums and divides by ``N``, giving the KL divergence per
    sample. Differences from ``torch.nn.functional.kl_div``, all deliberate:

    * the default is ``"batchmean"``, not torch's ``"mean"``. torch's ``"mean"`` divides by
      ``N * C`` and so is not a KL divergence; it is still available here, without torch's
      warning;
    * a 1-D input is one distribution, so ``"batchmean"`` returns its KL divergence (torch
      divides by ``C``, treating each class as a sample);
    * an empty batch gives 0.0, not NaN.

    Under ``checks="full"``, ``input`` must be finite log-probabilities (values <= 0, which
    catches probabilities passed by mistake) and ``target`` probabilities in [0, 1].

    >>> import torch, losskit.functional as LF
    >>> p = torch.tensor([0.36, 0.48, 0.16])          # binomial(2, 0.4)
    >>> q = torch.full((3,), 1 / 3)                     # uniform
    >>> round(LF.kl_div(q.log(), p).item(), 4)          # D_KL(P || Q)
    0.0853
    """
    loss = "kl_div"
    _check_pair(loss, input, target, reduction)
    _check_bool(loss, "log_target", log_target)
    _check_log_probabilities(loss, "input", input)
    if log_target:
        _check_log_probabilities(loss, "target", target)
    else:
        check_in_unit_interval(loss, "target", target)
    out_dtype = input.dtype
    log_q, p = upcast(input), upcast(target)
    return _reduce_kl(log_q, p, log_target, reduction, _batch_size(input)).to(out_dtype)


@autocast_float32
def kl_div_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    temperature: float = 1.0,
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
    teacher's logits if it is not being trained.

    >>> import torch, losskit.functional as LF
    >>> student = torch.tensor([[1.0, 1.0, 1.0]])
    >>> teacher = torch.tensor([[0.36, 0.48, 0.16]]).log() + 5.0   # logits are shift-invariant
    >>> round(LF.kl_div_with_logits(student, teacher).item(), 4)
    0.0853
    """
    loss = "kl_div_with_logits"
    _check_pair(loss, input, target, reduction)
    t = check_number(loss, "temperature", temperature, gt=0.0)
    check_finite(loss, "input", input)
    check_finite(loss, "target", target)
    out_dtype = input.dtype
    x, y = upcast(input), upcast(target)
    if t != 1.0:
        x, y = x / t, y / t
    dim = 1 if x.dim() > 1 else 0
    log_q, log_p = F.log_softmax(x, dim), F.log_softmax(y, dim)
    out = _reduce_kl(log_q, log_p, True, reduction, _batch_size(input))
    if t != 1.0:
        out = out * (t * t)
    return out.to(out_dtype)
