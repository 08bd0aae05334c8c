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

from losskit._autograd import LossFunction, c_apply, differentiable_backward, number
from losskit._reduce import reduce_loss

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
    u = z * (b.reciprocal() if isinstance(b, Tensor) else _number(1.0 / b, z))
    if isinstance(b, Tensor) or b < 4.0:
        u.clamp_(max=0.25 * torch.finfo(z.dtype).max)
    return u


def _robust_terms(
    residual: Tensor, alpha: HyperValue, scale: HyperValue, need_residual: bool,
    need_alpha: bool, need_scale: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:  # fmt: skip
    """``(rho, d rho / d residual, d rho / d alpha, d rho / d scale)`` for ``rc = residual /
    scale``, each derivative only where asked for (else None).

    With ``z = rc**2`` and ``w = (1 + z/b)^((alpha-2)/2)``, ``d rho / d residual = rc w / c``
    and ``d rho / d c = -z w / c``. ``z`` is capped at ``2^-10`` times the dtype's largest
    finite value, so ``z * w`` and the derivatives are finite for ``alpha <= 2``. Temporaries
    are updated in place and dropped early: this runs on every element, and its peak memory is
    the loss's.
    """
    rc = _divide(residual, scale)
    if not isinstance(alpha, Tensor):
        rho, w, zw = _float_alpha_terms(rc, float(alpha), need_scale)
        d_residual = None
        if need_residual:
            # w is a temporary of this call (never rc, which may be the caller's residual)
            d_residual = _divide(rc, scale) if w is None else _divide_(w.mul_(rc), scale)
        d_scale = None if zw is None else zw.mul_(_negative_reciprocal(scale))
        return rho, d_residual, None, d_scale

    z = rc.square().clamp_(max=_Z_CAP * torch.finfo(rc.dtype).max)
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
    d_residual = _divide_(w.mul_(rc), scale) if need_residual else None
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
    d_alpha = None
    if need_alpha:
        # d/dalpha of (b/2) L E1(t): the E1' part, then the rest in the form that does not
        # cancel: with 1/b for alpha < 1 (b > 1 there), with 1/alpha for alpha >= 1
        d_alpha = log_ratio.mul_(0.25 * b).mul_(p).mul_(_log_e1_slope(t, expm1_t))
        d_low = (zw * _reciprocal(b)).sub_(p).mul_(0.5)
        d_high = w_minus_1.mul_(torch.sign(a - 2.0)).sub_(zw, alpha=0.5).mul_(inv_a)
        d_alpha.add_(torch.where(low, d_low, d_high, out=d_high))
    d_scale = zw.mul_(_negative_reciprocal(scale)) if need_scale else None
    return rho, d_residual, d_alpha, d_scale


def _float_alpha_terms(
    rc: Tensor, a: float, want_zw: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(rho, w, z w)`` for a Python alpha, ``w`` None meaning 1 and ``z w`` None unless
    ``want_zw`` (the scale's gradient needs it, nothing else does): closed forms for the named
    members, else the general form with two (``0 <= alpha < 1``) or three transcendental
    functions per element. Each returned tensor is a temporary of this call; ``z`` is
    overwritten where ``z w`` will not need it."""
    z = rc.square()
    cap = _Z_CAP * torch.finfo(z.dtype).max
    if a == -math.inf:  # Welsch
        # rho and w need no cap (expm1(-inf) = -1, exp(-inf) = 0), z w does (inf * 0)
        minus_half = _number(-0.5, z)
        h = z.clamp_(max=cap).mul(minus_half) if want_zw else z.mul_(minus_half)
        rho = torch.expm1(h).neg_()
        w = h.exp_()
        return rho, w, z.mul_(w) if want_zw else None
    z.clamp_(max=cap)
    if a == 2.0:
        half = _number(0.5, z)
        return (z * half if want_zw else z.mul_(half)), None, z if want_zw else None
    one = _number(1.0, z)
    if a == 0.0:  # Cauchy
        half = _number(0.5, z)
        half_z = z * half if want_zw else z.mul_(half)
        rho = torch.log1p(half_z)
        w = half_z.add_(one).reciprocal_()
    elif a == 1.0:  # Charbonnier: sqrt(z + 1) - 1 = z w / (1 + w) without cancellation
        # rsqrt, not sqrt: with MKL, sqrt (like exp and log) runs in MKL's threads even for a
        # small tensor, and starting them costs more than the kernel (1,024 elements, two
        # threads: 4.5 us against 2.5 us; rsqrt 2.5 us at any thread count)
        w = torch.add(z, one).rsqrt_()
        zw = z * w if want_zw else z.mul_(w)
        return (zw / (w + one) if want_zw else zw.div_(w + one)), w, zw if want_zw else None
    elif a == -2.0:  # Geman-McClure, 2 z / (z + 4)
        p = torch.mul(z, _number(0.25, z)).add_(one)
        twice = p * _number(2.0, z)
        rho = z / twice if want_zw else z.div_(twice)
        w = p.square_().reciprocal_()
    else:
        rho, w = _general_float_alpha(z, a)
    return rho, w, z.mul_(w) if want_zw else None


def _general_float_alpha(z: Tensor, a: float) -> tuple[Tensor, Tensor]:
    """``(rho, w)`` of the general form for a Python alpha that is none of the named ones;
    ``z`` (capped) is left as it is."""
    finfo = torch.finfo(z.dtype)
    a = max(a, -1.0 / finfo.eps**2)
    b = max(abs(a - 2.0), finfo.eps)
    u = _ratio(z, b)
    log_ratio = torch.log1p(u)
    if a >= 1.0:
        # (z w + b (w - 1)) / alpha: insensitive to the cap on z/b near alpha = 2
        log_w = log_ratio.mul_(_number(0.5 * (a - 2.0), z))
        w = torch.exp(log_w)
        return (z * w).add_(log_w.expm1_(), alpha=b).div_(_number(a, z)), w
    expm1_t = torch.expm1(log_ratio * _number(0.5 * a, z))
    # rho = (b/alpha)(e^t - 1), or (b/2) L where b/alpha would overflow (exact to |alpha| L)
    tiny = abs(a) < finfo.tiny
    rho = (log_ratio if tiny else expm1_t) * _number(0.5 * b if tiny else b / a, z)
    one = _number(1.0, z)
    if a >= 0.0:
        # w = e^t / (1 + u) with e^t >= 1: no cancellation, no further exp
        return rho, expm1_t.add_(one).div_(u.add_(one))
    # rounding can exceed the bound (alpha - 2) / alpha by an ulp once saturated; a bound
    # beyond the dtype's range (alpha = -1e-300) bounds nothing, and clamp_ would refuse it
    bound = (a - 2.0) / a
    if bound <= finfo.max:
        rho.clamp_(max=bound)
    return rho, log_ratio.mul_(_number(0.5 * (a - 2.0), z)).exp_()


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
    rho = _eager_rho(
        residual,
        alpha_value if alpha is None else alpha,
        scale_value if scale is None else scale,
    )
    return reduce_loss(rho, ctx.reduction)


class _GeneralRobust(LossFunction):
    """``rho(residual, alpha, scale)`` elementwise, reduced by ``reduction`` (``"none"``,
    ``"sum"`` or ``"mean"``, a mean over nothing being 0), with analytic first derivatives.

    ``alpha`` and ``scale`` are Python floats or tensors that broadcast to ``residual``'s shape;
    their gradients are summed back to their own shapes. Forward keeps the inputs (for an exact
    double backward through :func:`_eager_rho`) and the derivatives that will be needed (one
    tensor per input that requires grad).

    The reduction is part of the function because at small sizes autograd's own ``mean`` costs
    as much as the loss: its backward expands and divides the gradient in a node of its own,
    where here a 0-dim division is folded into the one product per input (1,024 elements, one
    CPU thread: 55 us instead of 68 us forward and backward). The numbers are autograd's: the
    mean is ``sum / N`` (what ``Tensor.mean`` computes on the CPU; elsewhere ``mean`` is called)
    and its gradient ``(g / N) * d``, as ``MeanBackward`` and the product compute it.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, residual: Tensor, alpha: HyperValue, scale: HyperValue, reduction: str
    ) -> Tensor:
        need_r, need_a, need_c = ctx.needs_input_grad[:3]
        rho, *derivatives = _robust_terms(residual, alpha, scale, need_r, need_a, need_c)
        alpha_t = alpha if isinstance(alpha, Tensor) else None
        scale_t = scale if isinstance(scale, Tensor) else None
        ctx.save_for_backward(residual, alpha_t, scale_t, *derivatives)
        ctx.numbers = (alpha if alpha_t is None else None, scale if scale_t is None else None)
        ctx.shapes = (
            None if alpha_t is None else alpha_t.shape,
            None if scale_t is None else scale_t.shape,
        )
        ctx.reduction = reduction
        ctx.count = None
        if reduction == "none":
            return rho
        n = rho.numel()
        if reduction == "sum" or n == 0:
            return rho.sum()
        if rho.is_cpu and not torch.compiler.is_compiling():
            ctx.count = count = number(n, rho.dtype, rho.device)
            return rho.sum().div_(count)
        ctx.count = n
        return rho.mean()

    @staticmethod
    @differentiable_backward(_eager_of_saved)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        d_residual, d_alpha, d_scale = ctx.saved_tensors[3:]
        alpha_shape, scale_shape = ctx.shapes
        if ctx.count is not None:
            grad = grad / ctx.count
        grad_r = None if d_residual is None else grad * d_residual
        grad_a = None if d_alpha is None else (grad * d_alpha).sum_to_size(alpha_shape)
        grad_c = None if d_scale is None else (grad * d_scale).sum_to_size(scale_shape)
        return grad_r, grad_a, grad_c, None


def _number(value: float, like: Tensor) -> HyperValue:
    """``value`` as a cached 0-dim tensor of ``like``'s dtype and device: an operator wraps a
    Python number in a new tensor on every call, which at 1,024 elements costs more than the
    arithmetic (one CPU thread: 2.3 us for ``mul_(0.5)``, 0.9 us with the cached tensor). The
    same number either way; a plain float while ``torch.compile`` traces."""
    if torch.compiler.is_compiling():
        return value
    return number(value, like.dtype, like.device)


def _reciprocal(v: HyperValue) -> HyperValue:
    return v.reciprocal() if isinstance(v, Tensor) else 1.0 / v


def _negative_reciprocal(v: HyperValue) -> HyperValue:
    return v.reciprocal().neg_() if isinstance(v, Tensor) else -1.0 / v


def _divide_(x: Tensor, scale: HyperValue) -> Tensor:
    """``x / scale`` in place (see :func:`_divide`), ``x`` a temporary of full shape."""
    if isinstance(scale, Tensor):
        return x.mul_(scale.reciprocal())
    return x if scale == 1.0 else x.mul_(_number(1.0 / scale, x))


def _divide(x: Tensor, scale: HyperValue) -> Tensor:
    """``x / scale`` as a product with the reciprocal: ``scale`` is small (a number, or one value
    per dimension) and a vectorised multiply is cheaper than a divide."""
    if isinstance(scale, Tensor):
        return x * scale.reciprocal()
    return x if scale == 1.0 else x * _number(1.0 / scale, x)


_APPLY, _UNWRAP = c_apply(_GeneralRobust)


def robust_rho(
    residual: Tensor, alpha: HyperValue, scale: HyperValue, reduction: str = "none"
) -> Tensor:
    """``rho(residual, alpha, scale)`` elementwise and reduced by ``reduction`` (``"none"``,
    ``"sum"`` or ``"mean"``), without validation (internal use).

    ``alpha`` and ``scale`` must broadcast to ``residual``'s shape without enlarging it."""
    grads = torch.is_grad_enabled() and (
        residual.requires_grad
        or (isinstance(alpha, Tensor) and alpha.requires_grad)
        or (isinstance(scale, Tensor) and scale.requires_grad)
    )
    if not grads:
        return reduce_loss(_robust_terms(residual, alpha, scale, False, False, False)[0], reduction)
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        # Function.apply, which these need, and the elementwise function as before: the
        # fused reduction's cached 0-dim divisor is an eager-mode saving
        return reduce_loss(_GeneralRobust.apply(residual, alpha, scale, "none"), reduction)
    # the C++ apply, without Function.apply's Python layer (see c_apply)
    unwrap = _UNWRAP
    return _APPLY(
        unwrap(residual),
        unwrap(alpha) if isinstance(alpha, Tensor) else alpha,
        unwrap(scale) if isinstance(scale, Tensor) else scale,
        reduction,
    )
