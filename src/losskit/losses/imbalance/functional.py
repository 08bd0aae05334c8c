"""Losses for class imbalance: focal loss (sigmoid and softmax), Poly-1 cross-entropy and the
asymmetric loss for multi-label classification.

The two focal losses run as ``torch.autograd.Function``s with analytic backwards
(:mod:`losskit.losses.imbalance.autograd`): they keep no intermediate tensors between the forward and the
backward pass and, on the CPU, never allocate a full-size temporary. The asymmetric loss runs
as one too, computing its gradient with its value (one node instead of about thirty). Double
backward goes through their eager formulas, so second derivatives are exact for all four losses. All four work in log-space
and compute float16/bfloat16 inputs in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._autograd import c_apply
from losskit._checks import (
    check_class_indices,
    check_class_weight,
    check_finite,
    check_floating,
    check_in_unit_interval,
    check_nonnegative,
    check_number,
    check_optional_weight,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    same_float_tensors,
    shape_str,
)
from losskit._reduce import REDUCTIONS, Reduction, compute_dtype, safe_divide, upcast
from losskit.losses.classification.functional import (
    check_class_target,
    check_integer,
    check_pos_weight,
    cross_entropy,
)
from losskit.losses.imbalance.autograd import (
    AsymmetricFunction,
    SigmoidFocalFunction,
    SoftmaxFocalFunction,
    SparseClassFunction,
    asymmetric_elementwise,
    smoothed_targets,
)
from losskit.losses.imbalance.options import (
    CLASS_ALPHA,
    CLIP,
    EPSILON,
    GAMMA,
    GAMMA_NEG,
    GAMMA_POS,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    SIGMOID_ALPHA,
    WEIGHT,
)

__all__ = ["asymmetric_loss", "focal_loss", "poly1_cross_entropy", "sigmoid_focal_loss"]

ClassAlpha = float | Sequence[float] | Tensor | None


# ----------------------------------------------------------------------------------- checks


def _check_binary_pair(
    loss: str, input: Tensor, target: Tensor, weight: Tensor | None, reduction: str
) -> None:
    # the common call passes every check below: answer it from the metadata in one go (at
    # the smallest sizes the checks cost as much as a few kernels)
    if weight is None and same_float_tensors(input, target) and reduction in REDUCTIONS:
        return
    check_floating(loss, "input", input)
    check_floating(loss, "target", target)
    check_same_shape(loss, "target", target, input, "input")
    check_same_dtype(loss, "target", target, input, "input")
    check_same_device(loss, "target", target, input, "input")
    check_optional_weight(loss, weight, input)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    check_in_unit_interval(loss, "target", target)
    if weight is not None:
        check_nonnegative(loss, "weight", weight)


def check_alpha_values(loss: str, alpha: Sequence[object]) -> list[float]:
    """Per-class ``alpha`` numbers, each held to ``CLASS_ALPHA``'s bounds under its own name
    (``alpha[i]``), so that the error points at the bad class."""
    p = CLASS_ALPHA
    return [
        check_number(
            loss, f"alpha[{i}]", a, gt=p.gt, ge=p.ge, lt=p.lt, le=p.le, allow_inf=p.allow_inf
        )
        for i, a in enumerate(alpha)
    ]


def _check_class_alpha(loss: str, alpha: object, classes: int, input: Tensor) -> ClassAlpha:
    """``alpha`` of the softmax focal loss: None, a number >= 0, or ``classes`` numbers >= 0."""
    if alpha is None or (isinstance(alpha, Real) and not isinstance(alpha, bool)):
        return None if alpha is None else CLASS_ALPHA.check(loss, alpha)
    if not isinstance(alpha, Tensor):
        if not isinstance(alpha, Sequence) or isinstance(alpha, str):
            fail(loss, "alpha", f"is {alpha!r}", f"a number or {classes} per-class numbers")
        values = check_alpha_values(loss, alpha)
        alpha = torch.tensor(values, dtype=compute_dtype(input.dtype), device=input.device)
    check_floating(loss, "alpha", alpha)
    if alpha.shape != (classes,):
        fail(
            loss,
            "alpha",
            f"has shape {shape_str(alpha.shape)}",
            f"a number or ({classes},), one per class of input {shape_str(input.shape)}",
        )
    check_same_device(loss, "alpha", alpha, input, "input")
    check_nonnegative(loss, "alpha", alpha)
    return alpha


def _check_scores(
    loss: str,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> tuple[bool, int, Tensor | None, float, bool]:
    """Checks shared by the softmax losses; returns (class-index targets?, C, weight, eps,
    whether no target is ``ignore_index``: known when the indices' range was read)."""
    label_smoothing = LABEL_SMOOTHING.check(loss, label_smoothing)
    is_index = check_class_target(loss, input, target)
    classes = input.shape[1] if input.dim() > 1 else input.shape[0]
    weight = check_class_weight(loss, weight, classes, input)
    check_integer(loss, "ignore_index", ignore_index)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    all_valid = False
    if is_index:
        bounds = check_class_indices(loss, target, classes, ignore_index)
        all_valid = bounds is not None and not bounds[0] <= ignore_index <= bounds[1]
    else:
        check_in_unit_interval(loss, "target", target)
    if weight is not None:
        check_nonnegative(loss, "weight", weight)
    return is_index, classes, weight, label_smoothing, all_valid


def _reduce_scores(
    per_sample: Tensor,
    target: Tensor,
    is_index: bool,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    out_dtype: torch.dtype,
) -> Tensor:
    """cross_entropy's reduction rule for per-sample losses: ``"mean"`` over class indices
    divides by the summed class weight of the targets that count, over probabilities by the
    number of samples; a mean over nothing is 0."""
    if reduction == "none":
        return per_sample.to(out_dtype)
    total = per_sample.sum()
    if reduction == "sum":
        return total.to(out_dtype)
    if is_index:
        counted = target != ignore_index
        if weight is None:
            # a count, 0 or at least 1: where nothing counts every term is 0, and 0 / 1 is the
            # empty mean's 0 (safe_divide's rule in two operations instead of six)
            return (total / counted.sum().clamp_min(1)).to(out_dtype)
        denominator = (weight[torch.where(counted, target, 0)] * counted).sum()
        return safe_divide(total, denominator).to(out_dtype)
    return (total / max(per_sample.numel(), 1)).to(out_dtype)


#: up to this many logits, ``(N, C)`` class-index targets without smoothing or class weights
#: take :class:`SparseClassFunction` (value and gradient in one pass, log-softmax from ``amax``,
#: ``exp`` and ``sum``; see its notes in :mod:`losskit.losses.imbalance.autograd`). It keeps
#: the ``(N, C)`` gradient from the forward pass to the backward where SoftmaxFocalFunction
#: keeps one number per sample, so it stops at 64K elements (256 KiB in float32) although it
#: is faster well beyond. Sweep, forward+backward, SparseClassFunction / the previous path
#: (SoftmaxFocalFunction for focal, the eager formula for poly-1), 1 thread thread_time and 2
#: threads wall clock on 2 shared cores (load average 2-3), interleaved, median of 9 blocks:
#:
#:   (N, C)          (64,10) (256,10) (1024,10) (16,1000) (4096,10) (64,1000) (256,1000)
#:   focal  1 thr      0.50     0.41      0.25      0.58      0.19      0.75       0.95
#:          2 thr      0.55     0.52      0.42      0.58      0.30      0.79       0.77
#:   poly1  1 thr      0.72     0.57      0.34      0.67      0.25      0.76       1.02
#:          2 thr      0.71     0.64      0.54      0.73      0.39      0.81       0.70
SPARSE_SMALL_MAX = 1 << 16

_SPARSE_APPLY, _SPARSE_UNWRAP = c_apply(SparseClassFunction)
_SPARSE_DTYPES = (torch.float32, torch.float64)


def _small_sparse(
    input: Tensor,
    target: Tensor,
    kind: str,
    param: float,
    scale: float | None,
    ignore_index: int,
    reduction: str,
    all_valid: bool,
) -> Tensor | None:
    """The loss through :class:`SparseClassFunction` where it applies (small 2-d float32 or
    float64 logits, int64 targets, outside ``torch.compile`` and functorch transforms); else
    None."""
    if (
        input.dim() != 2
        or not 0 < input.numel() <= SPARSE_SMALL_MAX
        or input.dtype not in _SPARSE_DTYPES
        or target.dtype is not torch.int64
        or torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
    ):
        return None
    need_grad = input.requires_grad and torch.is_grad_enabled()
    unwrap = _SPARSE_UNWRAP
    options = (kind, param, scale, ignore_index, reduction, all_valid)
    return _SPARSE_APPLY(unwrap(input), unwrap(target), options, need_grad)


def _batched(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Unbatched ``(C,)`` scores as a batch of one."""
    if input.dim() > 1:
        return input, target
    return input.unsqueeze(0), target.unsqueeze(0)


# ----------------------------------------------------------------------------------- losses


@autocast_float32
def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | None = SIGMOID_ALPHA.default,
    gamma: float = GAMMA.default,
    pos_weight: Tensor | float | None = POS_WEIGHT.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Focal loss on logits for binary and multi-label classification (Lin et al., 2017):

    .. math:: \ell_i = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{ce}_i,\qquad
              p_t = p\,y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y)

    with ``p = sigmoid(input)`` and ``ce`` the binary cross-entropy with logits (with
    ``pos_weight`` on its positive term, as :func:`binary_cross_entropy_with_logits`). The value
    is torchvision's ``sigmoid_focal_loss`` formula for the same options; ``alpha=None`` disables
    the alpha term (torchvision: ``alpha=-1``). Targets may be soft (in [0, 1]).

    Shapes: ``input`` and ``target`` identical, any shape; ``weight`` the same shape (the
    ``"mean"`` is then ``sum(w l) / sum(w)``); ``pos_weight`` a number or ``(C,)`` with
    ``C = input.shape[-1]``.

    Computed in log-space by a custom autograd Function with an analytic gradient: finite for
    logits of +-1e4 and for any ``gamma >= 0`` (also fractional ones, where the textbook
    gradient is ``inf * 0`` at ``p_t = 1``); it saves only its inputs and uses a fraction of the
    eager formula's memory and time (above 65,536 elements, when only ``input`` needs a
    gradient, that gradient is computed with the loss in one pass and held until backward).
    float16/bfloat16 are computed in float32. Second
    derivatives (``create_graph=True``: gradient penalties, MAML) are exact: they are taken
    through the eager formula, in log-space.

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([3.0, -1.0, 0.5, -4.0]); y = torch.tensor([1.0, 0.0, 1.0, 1.0])
    >>> round(LF.sigmoid_focal_loss(x, y).item(), 4)
    0.2507
    """
    loss = "sigmoid_focal_loss"
    _check_binary_pair(loss, input, target, weight, reduction)
    if alpha is not None:
        alpha = SIGMOID_ALPHA.check(loss, alpha)
    gamma = GAMMA.check(loss, gamma)
    pos_weight = check_pos_weight(loss, pos_weight, input)
    mode = "none" if reduction == "none" else "sum"
    # the unweighted mean folds 1 / n into the Function's own products (no division node)
    scale = 1.0 / max(input.numel(), 1) if reduction == "mean" and weight is None else 1.0
    out = SigmoidFocalFunction.apply(
        input, target, weight, pos_weight, alpha, gamma, mode, scale, torch.is_grad_enabled()
    )
    if reduction == "mean" and weight is not None:
        out = safe_divide(out, upcast(weight).sum())
    return out if out.dtype == input.dtype else out.to(input.dtype)


@autocast_float32
def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = GAMMA.default,
    alpha: ClassAlpha = CLASS_ALPHA.default,
    weight: Tensor | None = WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Softmax focal loss for multi-class classification on logits (Lin et al., 2017):

    .. math:: \ell_i = -\sum_c \alpha_c\, w_c\, q_{ic}\,(1 - p_{ic})^\gamma \log p_{ic},\qquad
              p_i = \operatorname{softmax}(x_i),\quad q_i = (1-\varepsilon)\,y_i + \varepsilon/C

    For class-index targets without smoothing this is ``-alpha_t w_t (1 - p_t)**gamma log p_t``.
    With ``gamma=0`` and ``alpha=None`` it is exactly :func:`cross_entropy` (and calls it).

    Shapes and options as :func:`cross_entropy`: ``input`` ``(N, C)``, ``(N, C, d1, ...)`` or
    ``(C,)``; ``target`` class indices ``(N, d1, ...)`` or probabilities shaped like ``input``;
    ``weight`` ``(C,)``; ``ignore_index``; ``label_smoothing``. ``alpha`` is a number (scales
    every term) or one number per class (a sequence or ``(C,)`` tensor, e.g. from
    :func:`losskit.class_balanced_weights`).

    ``weight`` and ``alpha`` differ only in the ``"mean"``: like cross-entropy's, it divides by
    the summed ``weight`` of the targets that count (by the number of samples for
    probabilities); ``alpha`` is part of the loss value and never divides. If no target counts,
    the mean is 0.0 (torch's cross-entropy gives NaN).

    Computed in log-space by a custom autograd Function with an analytic gradient, finite for
    logits of +-1e4 and any ``gamma >= 0``; with class-index targets it keeps one number per
    sample for the backward pass, and its gradient needs one softmax. Small ``(N, C)`` inputs
    with class indices (up to 64K logits, no smoothing or class weights) compute the gradient
    with the value instead, in one pass. Second derivatives (``create_graph=True``) are
    exact: they are taken through the eager formula.

    ``ignore_index`` applies to class indices only; with probability targets it is accepted
    and means nothing (torch's cross-entropy refuses it), and every integer dtype of class
    indices gives the int64 result.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(LF.focal_loss(logits, torch.tensor([0, 1])).item(), 4)
    1.3061
    """
    loss = "focal_loss"
    gamma = GAMMA.check(loss, gamma)
    is_index, classes, weight, label_smoothing, all_valid = _check_scores(
        loss, input, target, weight, ignore_index, label_smoothing, reduction
    )
    alpha = _check_class_alpha(loss, alpha, classes, input)
    if is_index:
        target = target.long()  # any integer dtype; torch's kernels index with int64
    else:
        ignore_index = -100  # means nothing for probabilities (torch refuses any other value)
    if gamma == 0.0 and alpha is None:
        return cross_entropy(
            input,
            target,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )
    if is_index and weight is None and label_smoothing == 0.0 and not isinstance(alpha, Tensor):
        out = _small_sparse(
            input, target, "focal", gamma, alpha, ignore_index, reduction, all_valid
        )
        if out is not None:
            return out
    cdt = compute_dtype(input.dtype)
    class_scale = None if weight is None else weight.to(cdt)
    if isinstance(alpha, Tensor):
        alpha = alpha.to(cdt)
        class_scale = alpha if class_scale is None else class_scale * alpha
    x, t = _batched(input, target)
    per_sample = SoftmaxFocalFunction.apply(x, t, class_scale, gamma, label_smoothing, ignore_index)
    if isinstance(alpha, float):
        per_sample = per_sample * alpha
    if input.dim() == 1:
        per_sample = per_sample.squeeze(0)
    w = None if weight is None else weight.to(cdt)
    return _reduce_scores(per_sample, target, is_index, w, ignore_index, reduction, input.dtype)


@autocast_float32
def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = EPSILON.default,
    weight: Tensor | None = WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Poly-1 cross-entropy (Leng et al., PolyLoss, ICLR 2022): cross-entropy plus
    ``epsilon`` times the first polynomial term of its expansion in ``1 - p_t``:

    .. math:: \ell_i = \sum_c w_c\,q_{ic}\,\bigl[-\log p_{ic} + \epsilon\,(1 - p_{ic})\bigr]

    which for class indices without smoothing is ``w_t (-log p_t + epsilon (1 - p_t))``. With
    smoothing it equals the paper's ``CE + epsilon (1 - sum_c q_c p_c)`` (unweighted).
    ``epsilon >= -1`` (the paper: 1 for ImageNet classification, -1 removes the leading term);
    ``epsilon=0`` is exactly :func:`cross_entropy` (and calls it).

    Shapes, options and the ``"mean"`` rule as :func:`cross_entropy` (``ignore_index`` means
    nothing for probability targets). Small ``(N, C)`` inputs with class indices (up to 64K
    logits, no smoothing or class weights) run as one autograd Function that computes the
    gradient with the value; second derivatives go through the eager formula.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(LF.poly1_cross_entropy(logits, torch.tensor([0, 2])).item(), 4)
    0.3346
    """
    loss = "poly1_cross_entropy"
    epsilon = EPSILON.check(loss, epsilon)
    is_index, _, weight, label_smoothing, all_valid = _check_scores(
        loss, input, target, weight, ignore_index, label_smoothing, reduction
    )
    if is_index:
        target = target.long()  # any integer dtype; torch's kernels index with int64
    else:
        ignore_index = -100  # means nothing for probabilities (torch refuses any other value)
    if epsilon == 0.0:
        return cross_entropy(
            input,
            target,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )
    if is_index and weight is None and label_smoothing == 0.0:
        out = _small_sparse(
            input, target, "poly1", epsilon, None, ignore_index, reduction, all_valid
        )
        if out is not None:
            return out
    cdt = compute_dtype(input.dtype)
    w = None if weight is None else weight.to(cdt)
    x, t = _batched(input, target)
    log_p = torch.log_softmax(x, 1, dtype=cdt)
    counted = t != ignore_index if is_index else None
    if counted is not None and label_smoothing == 0.0:
        index = torch.where(counted, t, 0)
        log_pt = log_p.gather(1, index.unsqueeze(1)).squeeze(1)
        per_sample = -log_pt - epsilon * torch.expm1(log_pt)
        if w is not None:
            per_sample = per_sample * w[index]
    else:
        q = smoothed_targets(log_p, t, is_index, ignore_index, label_smoothing)
        if w is not None:
            q = q * w.view((1, -1) + (1,) * (x.dim() - 2))
        per_sample = (q * (-log_p - epsilon * torch.expm1(log_p))).sum(1)
    if counted is not None:
        # where, not a product with the mask: an ignored row's NaN must not leak (NaN * 0);
        # cross-entropy gives these rows 0 whatever they hold
        per_sample = torch.where(counted, per_sample, 0.0)
    if input.dim() == 1:
        per_sample = per_sample.squeeze(0)
    return _reduce_scores(per_sample, target, is_index, w, ignore_index, reduction, input.dtype)


_ASYMMETRIC_APPLY, _ASYMMETRIC_UNWRAP = c_apply(AsymmetricFunction)


def _asymmetric_eager(x: Tensor, y: Tensor, w: Tensor | None, clip: float) -> bool:
    """Whether the asymmetric loss takes its eager formula rather than
    :class:`AsymmetricFunction`: under ``torch.compile`` (which fuses the formula) and
    functorch transforms (the Function defines no ``setup_context``), for a target or weight
    that needs a gradient (the Function differentiates the logits only), and for a clip that
    the compute dtype rounds to 0 or a subnormal (the formula's log-space branch)."""
    return (
        torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
        or y.requires_grad
        or (w is not None and w.requires_grad)
        or (clip != 0.0 and clip < torch.finfo(x.dtype).tiny)
    )


@autocast_float32
def asymmetric_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma_neg: float = GAMMA_NEG.default,
    gamma_pos: float = GAMMA_POS.default,
    clip: float = CLIP.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021):

    .. math:: \ell_i = -y\,(1 - p)^{\gamma_+}\log p
              - (1 - y)\,p_m^{\gamma_-}\log(1 - p_m),\qquad p_m = \max(p - m, 0)

    with ``p = sigmoid(input)`` and ``m = clip`` the probability margin that discards easy
    negatives (``p <= clip``) and lowers the weight of likely mislabelled ones. The defaults are
    the paper's (gamma_neg=4, gamma_pos=1, clip=0.05). Targets may be soft.

    Shapes: ``input``, ``target`` and ``weight`` identical.

    Differences from the authors' code, on purpose: it works in log-space (their ``log`` of a
    probability clamped at 1e-8 caps each term at 18.4, so it differs for logits beyond about
    -18 with a positive label, or +18 with a negative one when ``clip=0``); the focusing weights
    are differentiated (their default ``disable_torch_grad_focal_loss=True`` detaches them, which
    changes the gradient); and ``reduction`` defaults to ``"mean"`` (their loss is the sum:
    use ``reduction="sum"``).

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([[2.0, -1.0, 0.5]]); y = torch.tensor([[1.0, 0.0, 1.0]])
    >>> round(LF.asymmetric_loss(x, y, reduction="sum").item(), 4)
    0.1947
    """
    loss = "asymmetric_loss"
    _check_binary_pair(loss, input, target, weight, reduction)
    gamma_neg = GAMMA_NEG.check(loss, gamma_neg)
    gamma_pos = GAMMA_POS.check(loss, gamma_pos)
    clip = CLIP.check(loss, clip)
    x, y, w = upcast(input), upcast(target), upcast(weight)
    if _asymmetric_eager(x, y, w, clip):
        elementwise = asymmetric_elementwise(x, y, gamma_neg, gamma_pos, clip)
        if reduction == "none":
            out = elementwise if w is None else elementwise * w
        elif w is not None:
            weighted = (elementwise * w).sum()
            out = weighted if reduction == "sum" else safe_divide(weighted, w.sum())
        elif reduction == "sum" or elementwise.numel() == 0:
            out = elementwise.sum()
        else:
            out = elementwise.mean()
        return out.to(input.dtype)
    mode = "none" if reduction == "none" else "sum"
    # the unweighted mean folds 1 / n into the Function's own products (no division node)
    scale = 1.0 / max(x.numel(), 1) if reduction == "mean" and w is None else 1.0
    need_grad = x.requires_grad and torch.is_grad_enabled()
    unwrap = _ASYMMETRIC_UNWRAP
    out = _ASYMMETRIC_APPLY(
        unwrap(x),
        unwrap(y),
        None if w is None else unwrap(w),
        (gamma_neg, gamma_pos, clip, mode, scale),
        need_grad,
    )
    if reduction == "mean" and w is not None:
        out = safe_divide(out, w.sum())
    return out.to(input.dtype)
