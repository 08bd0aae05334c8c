r"""The numerics of Barron's general robust loss: one elementwise kernel with analytic derivatives.

Barron, "A General and Adaptive Robust Loss Function" (CVPR 2019), eq. 1: for a residual
:math:`d = x - y`, a shape parameter :math:`\alpha` and a scale :math:`c > 0`,

.. math:: \rho(d, \alpha, c) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(d/c)^2}{|\alpha-2|}
          + 1\right)^{\alpha/2} - 1\right)

with its limits :math:`\tfrac12(d/c)^2` at :math:`\alpha = 2`, :math:`\log(\tfrac12(d/c)^2 + 1)`
at :math:`\alpha = 0` and :math:`1 - \exp(-\tfrac12(d/c)^2)` as :math:`\alpha \to -\infty`.
:math:`\alpha = 1` is Charbonnier (pseudo-Huber) and :math:`\alpha = -2` Geman-McClure.

How it is evaluated (no 0/0 anywhere, finite gradients everywhere):

* Everything is written with :math:`z = (d/c)^2`, :math:`b = |\alpha - 2|`,
  :math:`L = \log(1 + z/b)` and :math:`t = \alpha L / 2`, so that
  :math:`\rho = \tfrac{b}{\alpha}(e^t - 1) = \tfrac{b}{2} L\,E_1(t)` with
  :math:`E_1(t) = (e^t - 1)/t`: ``log1p`` and ``expm1`` keep full precision for small residuals,
  and :math:`E_1` is smooth through :math:`\alpha = 0`. Named members use their closed forms.
* A custom autograd function returns analytic derivatives, so no ``where`` ever sends a NaN
  from an unused branch into the gradient, and only the derivative (not a dozen intermediates)
  is kept for backward: :math:`\partial\rho/\partial d = (d/c^2)\,w` and
  :math:`\partial\rho/\partial c = -z w / c` with :math:`w = (1 + z/b)^{(\alpha-2)/2}`.
  The derivative in :math:`\alpha` has two forms: from :math:`\tfrac{b}{2} L E_1(t)` for
  :math:`\alpha < 1` (a series for :math:`E_1'` near 0) and from
  :math:`(z w + b(w - 1))/\alpha` for :math:`\alpha \ge 1`, which has no :math:`1/b` term to
  cancel near :math:`\alpha = 2`.
* The :math:`\alpha`-derivative truly diverges like :math:`\log(1/|\alpha - 2|)` at
  :math:`\alpha = 2` (the loss is continuous there but not differentiable in :math:`\alpha`);
  it is evaluated with :math:`|\alpha - 2|` at least the dtype's machine epsilon, which is the
  derivative at the nearest representable :math:`\alpha`.
* :math:`(d/c)^2` is capped at :math:`2^{-10}` times the dtype's largest finite value (and
  :math:`z/b` at a quarter of it), so residuals beyond :math:`|d/c| \approx 5.8\cdot10^{17}`
  (float32; :math:`4\cdot10^{152}` in float64) give a finite, saturated loss and finite
  gradients instead of ``inf``/``NaN``.
* :math:`\alpha` below :math:`-1/\epsilon^2` (about ``-7e13`` in float32, ``-2e31`` in
  float64) is evaluated there, where the loss equals Welsch's to the dtype's precision; this is
  how a tensor :math:`\alpha` of ``-inf`` is handled. A Python ``-inf`` uses Welsch's closed form.
  Likewise a tensor :math:`\alpha` above :math:`1/\epsilon^2` is evaluated there, which is the
  limit :math:`e^{z/2} - 1` of :math:`\alpha \to +\infty` to the dtype's precision (instead of
  ``inf / inf = NaN``).
* For :math:`\alpha < 0` the loss is bounded by :math:`(\alpha - 2)/\alpha`; the result is
  clamped there, since rounding could exceed the bound by an ulp once saturated.

Second derivatives (``torch.autograd.grad(..., create_graph=True)`` and then another ``grad``:
gradient penalties, meta-learning) are exact: when a graph of the gradient is asked for, the
gradient is recomputed by autograd through :func:`_eager_rho`, a differentiable formula of the
same loss (see :mod:`losskit._autograd`); the fast analytic path above serves first order only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autograd import differentiable_backward

__all__ = ["HyperValue", "robust_rho"]

HyperValue = float | Tensor

#: z = (d/c)^2 is capped at this fraction of the largest float, so that z, z / c and the
#: alpha-derivative (about z log(z) / 4) stay finite
_Z_CAP = 2.0**-10

#: |t| below this uses the series of g(t) = E1'(t) / E1(t), E1(t) = (e^t - 1) / t
_SERIES_RADIUS = 0.1


# ------------------------------------------------------------------------- elementwise math


def _log_e1_slope(t: Tensor, expm1_t: Tensor) -> Tensor:
    """``g(t) = E1'(t) / E1(t) = 1 - 1/t + 1/(e^t - 1)`` for ``E1(t) = (e^t - 1) / t``.

    The closed form cancels near 0, where the odd series ``1/2 + t/12 - t^3/720 + ...``
    (Bernoulli numbers) takes over for ``|t| < 0.1``: terms to ``t^7`` reach float64 precision
    there and to ``t^3`` float32 precision, while the closed form loses at most ``2 eps / |t| =
    20 eps`` at the switch. Consumes ``t`` and ``expm1_t`` (updated in place).
    """
    coefficients = (-1 / 1209600, 1 / 30240, -1 / 720, 1 / 12)
    if t.dtype != torch.float64:
        coefficients = coefficients[2:]
    t2 = t.square()
    series = t2 * coefficients[0]
    for c in coefficients[1:-1]:
        series.add_(c).mul_(t2)
    del t2
    series.add_(coefficients[-1]).mul_(t).add_(0.5)
    closed = expm1_t.reciprocal_().sub_(t.reciprocal()).add_(1.0)
    return torch.where(t.abs_() < _SERIES_RADIUS, series, closed, out=closed)


def _ratio(z: Tensor, b: HyperValue) -> Tensor:
    """``u = z / b``, capped at a quarter of the dtype's largest finite value so that
    ``(1 + u)^(alpha/2)`` stays finite for ``alpha <= 2``."""
    u = z * _reciprocal(b)
    if isinstance(b, Tensor) or b < 4.0:
        u.clamp_(max=0.25 * torch.finfo(z.dtype).max)
    return u


def _robust_terms(
    residual: Tensor, alpha: HyperValue, scale: HyperValue, want_residual_grad: bool,
    want_alpha_grad: bool,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:  # fmt: skip
    """``(rho, d rho / d residual, z * w, d rho / d alpha)`` for ``rc = residual / scale``.

    With ``z = rc**2`` and ``w = (1 + z/b)^((alpha-2)/2)``, ``d rho / d residual = rc w / c``
    and ``d rho / d c = -z w / c``. ``z`` is capped at ``2^-10`` times the dtype's largest
    finite value, so ``z * w`` and the derivatives are finite for ``alpha <= 2``. Temporaries
    are updated in place and dropped early: this runs on every element, and its peak memory is
    the loss's.
    """
    rc = _divide(residual, scale)
    z = rc.square().clamp_(max=_Z_CAP * torch.finfo(rc.dtype).max)
    if not isinstance(alpha, Tensor):
        rho, w = _float_alpha_terms(z, float(alpha))
        d_residual = None
        if want_residual_grad:
            d_residual = _divide(rc if w is None else rc.mul(w), scale)
        return rho, d_residual, z if w is None else z.mul_(w), None

    finfo = torch.finfo(rc.dtype)
    a = _clamp_alpha(alpha)
    b = (a - 2.0).abs_().clamp_(min=finfo.eps)
    # P = L * E1(t) = (2/alpha) expm1(t), which is L at alpha = 0; coefficients on alpha's shape
    near_zero = a.abs() < finfo.tiny
    expm1_coefficient = torch.where(near_zero, 0.0, 2.0 / a)
    log_coefficient = near_zero.to(a.dtype)
    low = a < 1.0
    inv_a = 1.0 / a

    log_ratio = _ratio(z, b).log1p_()
    w_minus_1 = log_ratio * (0.5 * (a - 2.0))
    w = torch.exp(w_minus_1)
    w_minus_1.expm1_()
    zw = z.mul_(w)
    d_residual = _divide(w.mul_(rc), scale) if want_residual_grad else None
    del w, rc
    t = log_ratio * (0.5 * a)
    expm1_t = torch.expm1(t)
    p = expm1_t * expm1_coefficient
    p.addcmul_(log_ratio, log_coefficient)
    # alpha < 1: (b/2) L E1(t); alpha >= 1: (z w + b (w - 1)) / alpha, insensitive to the cap
    # on z/b near alpha = 2
    rho = torch.addcmul(zw, w_minus_1, b).mul_(inv_a)
    torch.where(low, p * (0.5 * b), rho, out=rho)
    # the bound (alpha - 2) / alpha for alpha < 0, rounded once from float64 where the device
    # has it; rounding of the saturated loss could exceed it by an ulp (NaN stays NaN)
    wide = a.to(torch.float32 if a.device.type == "mps" else torch.float64)
    bound = torch.where(wide < 0.0, (wide - 2.0) / wide, math.inf).to(rho.dtype)
    torch.minimum(rho, bound, out=rho)
    if not want_alpha_grad:
        return rho, d_residual, zw, None
    # d/dalpha of (b/2) L E1(t): the E1' part, then the rest in the form that does not cancel:
    # with 1/b for alpha < 1 (b > 1 there), with 1/alpha for alpha >= 1
    d_alpha = log_ratio.mul_(0.25 * b).mul_(p).mul_(_log_e1_slope(t, expm1_t))
    d_low = (zw * _reciprocal(b)).sub_(p).mul_(0.5)
    d_high = w_minus_1.mul_(torch.sign(a - 2.0)).sub_(zw, alpha=0.5).mul_(inv_a)
    d_alpha.add_(torch.where(low, d_low, d_high, out=d_high))
    return rho, d_residual, zw, d_alpha


def _float_alpha_terms(z: Tensor, a: float) -> tuple[Tensor, Tensor | None]:
    """``(rho, w)`` for a Python alpha: closed forms for the named members, else the general
    form with two (``0 <= alpha < 1``) or three transcendental functions per element."""
    if a == 2.0:
        return 0.5 * z, None
    if a == 0.0:  # Cauchy
        half = 0.5 * z
        return torch.log1p(half), half.add_(1.0).reciprocal_()
    if a == 1.0:  # Charbonnier: sqrt(z + 1) - 1 without cancellation
        root = (z + 1.0).sqrt_()
        return z / (root + 1.0), root.reciprocal_()
    if a == -2.0:  # Geman-McClure, 2 z / (z + 4)
        p = 0.25 * z + 1.0
        return z / (2.0 * p), p.square_().reciprocal_()
    if a == -math.inf:  # Welsch
        return -torch.expm1(-0.5 * z), torch.exp(-0.5 * z)
    finfo = torch.finfo(z.dtype)
    a = max(a, -1.0 / finfo.eps**2)
    b = max(abs(a - 2.0), finfo.eps)
    u = _ratio(z, b)
    log_ratio = torch.log1p(u)
    if a >= 1.0:
        # (z w + b (w - 1)) / alpha: insensitive to the cap on z/b near alpha = 2
        log_w = (0.5 * (a - 2.0)) * log_ratio
        w = torch.exp(log_w)
        return (z * w).add_(torch.expm1(log_w), alpha=b).div_(a), w
    expm1_t = torch.expm1((0.5 * a) * log_ratio)
    # rho = (b/alpha)(e^t - 1), or (b/2) L where b/alpha would overflow (exact to |alpha| L)
    rho = (0.5 * b) * log_ratio if abs(a) < finfo.tiny else (b / a) * expm1_t
    if a >= 0.0:
        # w = e^t / (1 + u) with e^t >= 1: no cancellation, no further exp
        return rho, expm1_t.add_(1.0).div_(u.add_(1.0))
    # rounding can exceed the bound (alpha - 2) / alpha by an ulp once saturated; a bound
    # beyond the dtype's range (alpha = -1e-300) bounds nothing, and clamp_ would refuse it
    bound = (a - 2.0) / a
    if bound <= finfo.max:
        rho.clamp_(max=bound)
    return rho, torch.exp((0.5 * (a - 2.0)) * log_ratio)


def _clamp_alpha(alpha: Tensor) -> Tensor:
    """A tensor alpha within ``+-1/eps^2``, where the loss equals its limits at ``+-inf`` to
    the dtype's precision (Welsch's ``1 - e^{-z/2}`` and ``e^{z/2} - 1``)."""
    limit = 1.0 / torch.finfo(alpha.dtype).eps ** 2
    return alpha.clamp(min=-limit, max=limit)


# the series of E1(t) = (e^t - 1) / t to t^6, exact to float64 precision for |t| < 0.1
_E1_SERIES = (1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0)


def _eager_rho(residual: Tensor, alpha: HyperValue, scale: HyperValue) -> Tensor:
    """``rho`` from differentiable torch operations only, for double backward.

    Every branch that :func:`torch.where` does not select is fed a harmless value, so its
    derivatives (all orders) stay finite and add nothing. The caps on ``z`` and ``z / b`` are the
    analytic path's.
    """
    rc = residual / scale
    z = rc.square().clamp(max=_Z_CAP * torch.finfo(rc.dtype).max)
    if not isinstance(alpha, Tensor):
        if alpha == -math.inf:
            return -torch.expm1(-0.5 * z)
        if alpha == 2.0:
            return 0.5 * z
        alpha = torch.tensor(alpha, dtype=z.dtype, device=z.device)
    finfo = torch.finfo(z.dtype)
    a = _clamp_alpha(alpha)
    b = (a - 2.0).abs().clamp(min=finfo.eps)
    log_ratio = torch.log1p((z / b).clamp(max=0.25 * finfo.max))
    # rho = (b/2) L E1(t), t = alpha L / 2: smooth through alpha = 0
    t = 0.5 * a * log_ratio
    near = t.abs() < _SERIES_RADIUS
    t_near = torch.where(near, t, 0.0)
    series = torch.zeros_like(t_near)
    for c in _E1_SERIES:
        series = series * t_near + c
    t_far = torch.where(near, 1.0, t)
    e1 = torch.where(near, series, torch.expm1(t_far) / t_far)
    return 0.5 * b * log_ratio * e1


def _eager_of_saved(ctx: FunctionCtx, saved: tuple[Tensor | None, ...]) -> Tensor:
    residual, alpha, scale = saved[:3]
    alpha_value, scale_value = ctx.numbers
    return _eager_rho(
        residual,
        alpha_value if alpha is None else alpha,
        scale_value if scale is None else scale,
    )


class _GeneralRobust(torch.autograd.Function):
    """``rho(residual, alpha, scale)`` elementwise, with analytic first derivatives.

    ``alpha`` and ``scale`` are Python floats or tensors that broadcast to ``residual``'s shape;
    their gradients are summed back to their own shapes. Forward keeps the inputs (for an exact
    double backward through :func:`_eager_rho`) and the derivatives that will be needed (one
    tensor per input that requires grad).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, residual: Tensor, alpha: HyperValue, scale: HyperValue) -> Tensor:
        need_r, need_a, need_c = ctx.needs_input_grad[:3]
        rho, d_residual, zw, d_alpha = _robust_terms(residual, alpha, scale, need_r, need_a)
        d_scale = zw.mul_(_reciprocal(scale)).neg_() if need_c else None
        tensors = [v if isinstance(v, Tensor) else None for v in (alpha, scale)]
        ctx.save_for_backward(residual, *tensors, d_residual, d_alpha, d_scale)
        ctx.numbers = tuple(None if isinstance(v, Tensor) else v for v in (alpha, scale))
        ctx.shapes = tuple(v.shape if isinstance(v, Tensor) else None for v in (alpha, scale))
        return rho

    @staticmethod
    @differentiable_backward(_eager_of_saved)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        d_residual, d_alpha, d_scale = ctx.saved_tensors[3:]
        alpha_shape, scale_shape = ctx.shapes
        grad_r = None if d_residual is None else grad * d_residual
        grad_a = None if d_alpha is None else (grad * d_alpha).sum_to_size(alpha_shape)
        grad_c = None if d_scale is None else (grad * d_scale).sum_to_size(scale_shape)
        return grad_r, grad_a, grad_c


def _reciprocal(v: HyperValue) -> HyperValue:
    return v.reciprocal() if isinstance(v, Tensor) else 1.0 / v


def _divide(x: Tensor, scale: HyperValue) -> Tensor:
    """``x / scale`` as a product with the reciprocal: ``scale`` is small (a number, or one value
    per dimension) and a vectorised multiply is cheaper than a divide."""
    if isinstance(scale, float) and scale == 1.0:
        return x
    return x * _reciprocal(scale)


def robust_rho(residual: Tensor, alpha: HyperValue, scale: HyperValue) -> Tensor:
    """``rho(residual, alpha, scale)`` elementwise, without validation (internal use).

    ``alpha`` and ``scale`` must broadcast to ``residual``'s shape without enlarging it."""
    inputs = (residual, alpha, scale)
    if torch.is_grad_enabled() and any(isinstance(v, Tensor) and v.requires_grad for v in inputs):
        return _GeneralRobust.apply(residual, alpha, scale)
    return _robust_terms(residual, alpha, scale, False, False)[0]
