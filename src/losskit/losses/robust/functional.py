"""Barron's general robust loss, its named members, and the negative log-likelihood of the
general distribution. The numerics are in :mod:`losskit.losses.robust.rho`."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_floating,
    check_same_device,
    fail,
    full_checks,
    shape_str,
    values_checked,
)
from losskit._options import HyperParam
from losskit._pointwise import check_pointwise
from losskit._reduce import Reduction, compute_dtype, reduce_loss, upcast
from losskit.losses.robust.options import ALPHA, NLL_ALPHA, NLL_SCALE, SCALE
from losskit.losses.robust.partition import log_partition
from losskit.losses.robust.rho import HyperValue, robust_rho

__all__ = [
    "cauchy_loss",
    "charbonnier_loss",
    "geman_mcclure_loss",
    "general_robust_loss",
    "general_robust_nll_loss",
    "robust_log_partition",
    "welsch_loss",
]

Number = float | int


# ------------------------------------------------------------------------- validation


def check_hyper_number(loss: str, option: HyperParam, value: object) -> float:
    """A Python ``alpha`` or ``scale`` inside ``option``'s bounds. The general loss's alpha
    (any real number below ``ALPHA.lt``, ``-inf`` included) keeps its own words: those of
    :meth:`HyperParam.check` would hide that ``-inf`` is valid (Welsch's loss) and that a
    tensor is too."""
    if option is not ALPHA:
        return option.check(loss, value)
    if isinstance(value, bool) or not isinstance(value, Number):
        fail(loss, "alpha", f"is {value!r}", "a real number or a tensor")
    v = float(value)
    # comparisons only: under torch.compile a changing float option is a symbolic float,
    # which math.isnan cannot take (NaN compares False)
    if not v < ALPHA.lt:
        fail(loss, "alpha", f"is {value!r}", "a real number < inf (-inf is Welsch's loss)")
    return v


def _check_hyper(loss: str, option: HyperParam, value: object, input: Tensor) -> HyperValue:
    """A Python number inside ``option``'s bounds, or a floating tensor that broadcasts to
    ``input`` without enlarging it (returned in the compute dtype, cast differentiably)."""
    if not isinstance(value, Tensor):
        return check_hyper_number(loss, option, value)
    check_floating(loss, option.name, value)
    check_same_device(loss, option.name, value, input, "input")
    shape, target = value.shape, input.shape
    fits = len(shape) <= len(target) and all(
        n in (1, m) for n, m in zip(reversed(shape), reversed(target), strict=False)
    )
    if not fits:
        fail(
            loss,
            option.name,
            f"has shape {shape_str(value.shape)}",
            f"a shape that broadcasts to input's {shape_str(input.shape)} without enlarging "
            f"it (one value, one per element, or e.g. {shape_str(input.shape[-1:])} for one "
            "per last dimension)",
        )
    _check_hyper_values(loss, option, value)
    return value.to(compute_dtype(input.dtype))


def _check_hyper_values(loss: str, option: HyperParam, value: Tensor) -> None:
    """The values of a tensor ``alpha`` or ``scale``: inside ``option``'s bounds under
    ``full``, and under ``fast`` for CPU tensors, where reading them costs no device sync; NaN
    only under ``full`` (otherwise NaN in is NaN out). Not while ``torch.compile`` traces under
    ``fast``: reading a value there would break the graph."""
    if not values_checked(value) or (torch.compiler.is_compiling() and not full_checks()):
        return
    if option.gt is not None:  # a scale
        bad, what = (value <= option.gt) | (value == math.inf), f"finite values > {option.gt:g}"
    elif option.lt is not None:  # the general loss's alpha, -inf allowed
        bad, what = value >= option.lt, f"values < {option.lt:g}, not NaN"
    else:  # the distribution's alpha
        bad = (value < option.ge) | (value > option.le)
        what = f"values in [{option.ge:g}, {option.le:g}]"
    if full_checks():
        bad = bad | value.isnan()
    if bool(bad.any()):
        level = "checks='full'" if full_checks() else "checked on CPU tensors"
        fail(loss, option.name, f"has {int(bad.sum())} invalid value(s)", f"{what} ({level})")


def _robust_loss(
    loss: str,
    input: Tensor,
    target: Tensor,
    alpha: object,
    scale: object,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    check_pointwise(loss, input, target, weight, reduction)
    a = _check_hyper(loss, ALPHA, alpha, input)
    c = _check_hyper(loss, SCALE, scale, input)
    x, y = upcast(input), upcast(target)
    if weight is None:
        out = robust_rho(x - y, a, c, reduction)
    else:
        out = reduce_loss(robust_rho(x - y, a, c), reduction, upcast(weight))
    return out if out.dtype == input.dtype else out.to(input.dtype)


# ------------------------------------------------------------------------- public losses


@autocast_float32
def general_robust_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor = ALPHA.default,
    scale: float | Tensor = SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Barron's general robust loss (CVPR 2019, eq. 1) of the residual ``d = input - target``:

    .. math:: \rho(d, \alpha, c) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(d/c)^2}
              {|\alpha-2|} + 1\right)^{\alpha/2} - 1\right)

    One family: ``alpha=2`` is :math:`\tfrac12 (d/c)^2`, ``1`` Charbonnier / pseudo-Huber,
    ``0`` Cauchy, ``-2`` Geman-McClure, ``-inf`` Welsch. Smaller ``alpha`` means more robust:
    the loss's gradient stops growing at ``alpha = 1`` and falls back to zero for large
    residuals when ``alpha < 1``. ``scale`` (``c > 0``) is the residual size where the loss
    turns from quadratic to robust.

    ``alpha`` is a real number (``-inf`` allowed, ``+inf`` not) and ``scale`` a number ``> 0``;
    either may instead be a floating tensor that broadcasts to ``input``'s shape (one value per
    element, or e.g. shape ``(D,)`` for one per last dimension of an ``(N, D)`` input) and then
    receives gradients. A tensor's values must be in range too (no ``+inf``, scales ``> 0``):
    checked under ``checks("full")`` and, since it costs no device sync there, for CPU tensors
    under the default checks; unchecked, a ``+inf`` alpha is the limit
    :math:`e^{(d/c)^2/2} - 1`. Numerically stable for every ``alpha`` (see the module docs);
    second derivatives (``create_graph=True``) are exact.

    Shapes: ``input``, ``target`` and ``weight`` identical.

    >>> import torch, losskit.functional as LF
    >>> d = torch.tensor([0.5, 3.0, 100.0])
    >>> LF.general_robust_loss(d, torch.zeros(3), alpha=0.0, reduction="none")
    tensor([0.1178, 1.7047, 8.5174])
    >>> alpha = torch.tensor(1.0, requires_grad=True)
    >>> LF.general_robust_loss(d, torch.zeros(3), alpha=alpha).backward()
    >>> alpha.grad > 0
    tensor(True)
    """
    return _robust_loss("general_robust_loss", input, target, alpha, scale, weight, reduction)


@autocast_float32
def general_robust_nll_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor = NLL_ALPHA.default,
    scale: float | Tensor = NLL_SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Negative log-likelihood of Barron's general distribution (CVPR 2019, eq. 16-17):

    .. math:: \ell_i = \rho(x_i - y_i, \alpha, c) + \log c + \log Z(\alpha)

    The loss that can learn its own robustness: unlike :func:`general_robust_loss`, lowering
    ``alpha`` or raising ``scale`` is not free (the normaliser :math:`\log Z(\alpha)` and
    :math:`\log c` grow), so gradient descent on ``alpha`` and ``scale`` finds the shape and
    size of the residual distribution. At ``alpha=2`` it is the Gaussian negative log-likelihood
    with standard deviation ``scale`` (``torch.nn.functional.gaussian_nll_loss(..., var=scale**2,
    full=True)``), at ``alpha=0`` the Cauchy one. :class:`losskit.AdaptiveRobustLoss` holds
    ``alpha`` and ``scale`` as learnable parameters; pass tensors here to predict them per
    element (e.g. a network head that outputs the scale).

    ``0 <= alpha <= 4`` (the distribution does not exist for ``alpha < 0``) and ``scale > 0``,
    as numbers or tensors that broadcast to ``input``'s shape. :math:`\log Z` comes from
    :func:`losskit.functional.robust_log_partition` (error below ``3e-13`` in float64).

    >>> import math, torch, losskit.functional as LF
    >>> d = torch.tensor([0.5, -1.0])
    >>> nll = LF.general_robust_nll_loss(d, torch.zeros(2), alpha=2.0, scale=1.0)
    >>> round(nll.item() - 0.5 * math.log(2 * math.pi), 4)  # the Gaussian's (0.25 + 1) / 4
    0.3125
    """
    loss = "general_robust_nll_loss"
    check_pointwise(loss, input, target, weight, reduction)
    a = _check_hyper(loss, NLL_ALPHA, alpha, input)
    c = _check_hyper(loss, NLL_SCALE, scale, input)
    x, y, w = upcast(input), upcast(target), upcast(weight)
    log_scale = torch.log(c) if isinstance(c, Tensor) else math.log(c)
    log_z = log_partition(a) if isinstance(a, Tensor) else _log_partition_of_number(a)
    offset = log_scale + log_z
    if w is None and reduction == "mean" and not isinstance(offset, Tensor) and x.numel():
        # the mean of rho + log c + log Z for numbers alpha and scale: the constant added once
        # to the mean instead of to every element
        out = robust_rho(x - y, a, c, "mean") + offset
    else:
        out = reduce_loss(robust_rho(x - y, a, c) + offset, reduction, w)
    return out if out.dtype == input.dtype else out.to(input.dtype)


@functools.lru_cache(maxsize=256)
def _log_partition_of_number(alpha: float) -> float:
    """log Z for a Python alpha, computed once in float64."""
    return log_partition(torch.tensor(alpha, dtype=torch.float64)).item()


def robust_log_partition(alpha: float | Tensor) -> Tensor:
    r""":math:`\log Z(\alpha)` of Barron's general distribution for ``0 <= alpha <= 4``,
    elementwise and differentiable in ``alpha`` (see :mod:`losskit.losses.robust.partition` for the
    quadrature and its error bound).

    >>> import torch, losskit.functional as LF
    >>> LF.robust_log_partition(torch.tensor([0.0, 1.0, 2.0]))
    tensor([1.4913, 1.1855, 0.9189])
    """
    if isinstance(alpha, Tensor):
        check_floating("robust_log_partition", "alpha", alpha)
        _check_hyper_values("robust_log_partition", NLL_ALPHA, alpha)
        return log_partition(alpha)
    value = NLL_ALPHA.check("robust_log_partition", alpha)
    return torch.tensor(_log_partition_of_number(value))


@autocast_float32
def cauchy_loss(
    input: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cauchy (Lorentzian) loss, :math:`\log(\tfrac12 (d/c)^2 + 1)`: the general robust loss at
    :math:`\alpha = 0`, the negative log-likelihood of a Cauchy distribution up to a constant.

    >>> import torch, losskit.functional as LF
    >>> round(LF.cauchy_loss(torch.tensor([2.0]), torch.zeros(1)).item(), 4)
    1.0986
    """
    return _robust_loss("cauchy_loss", input, target, 0.0, scale, weight, reduction)


@autocast_float32
def geman_mcclure_loss(
    input: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Geman-McClure loss, :math:`\dfrac{2 (d/c)^2}{(d/c)^2 + 4}`: the general robust loss at
    :math:`\alpha = -2`; bounded by 2, so an outlier's pull vanishes.

    (Some texts write :math:`d^2 / (d^2 + \sigma^2)`; that is this loss at :math:`c = \sigma/2`
    divided by 2.)

    >>> import torch, losskit.functional as LF
    >>> LF.geman_mcclure_loss(torch.tensor([2.0]), torch.zeros(1)).item()
    1.0
    """
    return _robust_loss("geman_mcclure_loss", input, target, -2.0, scale, weight, reduction)


@autocast_float32
def welsch_loss(
    input: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Welsch (Leclerc) loss, :math:`1 - \exp(-\tfrac12 (d/c)^2)`: the limit of the general
    robust loss as :math:`\alpha \to -\infty`; bounded by 1 with a Gaussian-shaped gradient.

    >>> import torch, losskit.functional as LF
    >>> round(LF.welsch_loss(torch.tensor([2.0]), torch.zeros(1)).item(), 4)
    0.8647
    """
    return _robust_loss("welsch_loss", input, target, -math.inf, scale, weight, reduction)


@autocast_float32
def charbonnier_loss(
    input: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = SCALE.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Charbonnier (pseudo-Huber, smooth L1-L2) loss, :math:`\sqrt{(d/c)^2 + 1} - 1`: the
    general robust loss at :math:`\alpha = 1`; quadratic near 0, then :math:`|d|/c`.

    Other normalisations in use: the super-resolution loss :math:`\sqrt{d^2 + \epsilon^2}` is
    ``eps * charbonnier_loss(scale=eps) + eps``, and pseudo-Huber with threshold :math:`\delta`,
    :math:`\delta^2(\sqrt{1 + (d/\delta)^2} - 1)`, is ``delta**2 * charbonnier_loss(scale=delta)``.
    Computed without cancellation near 0 or overflow for huge residuals.

    >>> import torch, losskit.functional as LF
    >>> LF.charbonnier_loss(torch.tensor([3.0, 4.0]), torch.zeros(2), reduction="none")
    tensor([2.1623, 3.1231])
    """
    return _robust_loss("charbonnier_loss", input, target, 1.0, scale, weight, reduction)
