r"""Angular-margin softmax losses for face and speaker recognition: CosFace and ArcFace.

The embeddings ``h_i`` and the class centres ``W_j`` are both normalised, so every logit is a
cosine, ``cos theta_ij = h_i . W_j / (|h_i| |W_j|)``, scaled by ``s``; the true class's logit
carries a margin, taken off its cosine (CosFace) or added to its angle (ArcFace), and the loss is
the cross-entropy of those logits.

Built on the chunked linear cross-entropy (:mod:`losskit.losses.linear_ce.functional`), so a
million identities fit: the ``N x C`` logits never exist beyond one chunk of rows, and the class
centres are never normalised into a ``C x d`` copy. The engine multiplies each chunk's column
``j`` by ``s / |W_j|`` (its ``column_scale``) and replaces each row's target logit by the margin's
(its ``target_logit``); it treats the column factor as a constant, and the part of the gradient
that goes through ``|W_j|`` is the component of the engine's gradient ``A_j`` along ``W_j``,
taken off in place, row by row:

.. math:: \frac{\partial L}{\partial W_j} = A_j - \frac{A_j \cdot W_j}{|W_j|^2} W_j

The embeddings (``N x d``, small) are normalised by autograd before the engine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_lower_precision
from losskit._autograd import (
    LossFunction,
    differentiable_backward,
    refuse_double_backward,
    scale_early_grads,
)
from losskit._checks import (
    check_finite,
    check_floating,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_tensor,
    fail,
    shape_str,
    values_checked,
)
from losskit._reduce import REDUCTIONS, Reduction, compute_dtype
from losskit.losses.angular_margin.options import (
    ARC_MARGIN,
    CHUNK_SIZE,
    COS_MARGIN,
    EASY_MARGIN,
    IGNORE_INDEX,
    SCALE,
)
from losskit.losses.linear_ce.functional import (
    _half_matmuls,
    _Options,
    _reduce,
    _row_scale,
    _Rows,
    _sweep,
    auto_chunk_size,
    check_chunk_size,
    parallel_chunk_rows,
)

__all__ = ["arcface_loss", "cosface_loss"]

#: with more than one CPU thread, the fewest logits an automatic chunk holds where there are
#: embeddings enough (32 MiB in float32; ``linear_distillation_loss``'s floor). Every kernel of
#: a chunk is a parallel region, and while other processes keep the cores busy a region can
#: wait a scheduler slice for its second thread, so at a classifier's class count, where
#: ``auto_chunk_size``'s rows make many chunks, their count decides the time. Measured at
#: N = 4096 embeddings of d = 512 and C = 1024 classes, forward+backward, 2 threads, against
#: the dense formula (median ratio over 15 rounds of interleaved 0.1 s blocks), CosFace: with
#: two busy processes on the two cores 3.16 with 256-row chunks (``auto_chunk_size``'s), 1.84
#: with 512, 0.88 with 2048, 0.76 with one chunk of 4096 rows; idle 0.84, 0.80, 0.74, 0.76
#: (`python benchmarks/chunks_under_load.py --losses cosface --sizes 1024 --rows
#: 256,512,2048,all --block 0.1 --repeats 15`, and `--load 0`, 2026-12-04). From 32,768
#: classes up (256 rows hold 2**23 logits) the rows, and the memory of a million classes, stay
#: ``auto_chunk_size``'s.
PARALLEL_CHUNK_LOGITS = 1 << 23

_COSFACE = "cosface_loss"
_ARCFACE = "arcface_loss"
#: the floor under a norm, as ``F.normalize`` (and pytorch-metric-learning) use: a zero
#: embedding or class centre has cosine 0 with everything
_NORM_EPS = 1e-12
#: class rows per block when the weight's gradient is projected: bounds the temporary
_PROJECT_ROWS = 1 << 15


@dataclass(frozen=True)
class _Margin:
    """The validated options of one call."""

    arc: bool
    scale: float
    margin: float
    easy_margin: bool
    ignore_index: int
    reduction: str
    chunk_size: int
    #: grad mode at the call (inside forward it is always off)
    grad_enabled: bool

    def target_logit(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """The true class's logit with the margin, from ``z = s cos theta``, and its slope."""
        s, m = self.scale, self.margin
        if not self.arc:
            return z - s * m, None
        cos = z / s
        # cos(theta + m) = cos theta cos m - sin theta sin m, with a cosine rounded past +-1
        # clamped (as acos's argument would be). Its slope in cos theta,
        # cos m + sin m cos theta / sin theta, grows without bound as theta -> 0, where the
        # loss has a cone in the embedding (no derivative); below sqrt(eps) sin theta is the
        # cosine's rounding noise, so the slope takes that floor and stays finite.
        c = cos.clamp(-1.0, 1.0)
        sin = ((1.0 - c) * (1.0 + c)).sqrt()
        cos_m, sin_m = math.cos(m), math.sin(m)
        arc = c * cos_m - sin * sin_m
        arc_slope = cos_m + c * sin_m / sin.clamp_min(math.sqrt(torch.finfo(c.dtype).eps))
        if self.easy_margin:
            on, fallback = cos > 0, cos
        else:
            # past theta = pi - m, cos(theta + m) would rise again as theta grows: the paper's
            # code and pytorch-metric-learning continue with cos theta - m sin m there
            on, fallback = cos >= -cos_m, cos - m * sin_m
        return torch.where(on, arc, fallback) * s, torch.where(on, arc_slope, 1.0)


def _prepare(
    unit: Tensor, weight: Tensor, labels: Tensor, opts: _Margin
) -> tuple[_Rows, _Options, Tensor]:
    """The engine's rows and options for one pass, and the class centres' norms."""
    rows = _Rows.build(unit, weight, None, labels, opts.ignore_index)
    norms = torch.linalg.vector_norm(rows.weight, dim=1, dtype=rows.compute)
    norms = norms.clamp_min_(_NORM_EPS)
    engine = _Options(
        ignore_index=opts.ignore_index,
        label_smoothing=0.0,
        z_loss=0.0,
        softcap=None,
        reduction=opts.reduction,
        chunk_size=opts.chunk_size,
        grad_enabled=opts.grad_enabled,
        column_scale=opts.scale / norms,
        target_logit=opts.target_logit,
    )
    return rows, engine, norms


def _project_out_rows(grad: Tensor, weight: Tensor, norms: Tensor) -> None:
    """``grad_j -= (grad_j . W_j) W_j / |W_j|^2`` in place, block by block (no ``C x d``
    temporary): moving ``W_j`` along itself changes no cosine."""
    for start in range(0, grad.shape[0], _PROJECT_ROWS):
        stop = start + _PROJECT_ROWS
        g, w = grad[start:stop], weight[start:stop].to(grad.dtype)
        along = (g * w).sum(1).div_(norms[start:stop].square())
        g.addcmul_(w, along[:, None], value=-1.0)


def _sweep_and_project(
    rows: _Rows,
    engine: _Options,
    norms: Tensor,
    row_scale: Tensor | None,
    need: tuple[bool, bool],
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    losses, grad_unit, grad_weight, _ = _sweep(rows, engine, row_scale, (*need, False))
    if grad_weight is not None:
        _project_out_rows(grad_weight, rows.weight, norms)
    return losses, grad_unit, grad_weight


def _forward(ctx: Any, unit: Tensor, weight: Tensor, labels: Tensor, opts: _Margin) -> Tensor:
    need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1])
    rows, engine, norms = _prepare(unit, weight, labels, opts)
    early = opts.reduction != "none" and opts.grad_enabled and any(need)
    scale = _row_scale(engine, rows, None) if early else None
    losses, gu, gw = _sweep_and_project(rows, engine, norms, scale, need)
    ctx.opts = opts
    ctx.early = (None if gu is None else rows.scatter(gu), gw) if early else None
    ctx.save_for_backward(unit, weight, labels)
    return _reduce(engine, rows, losses)


def _backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
    need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1])
    unit, weight, labels = ctx.saved_tensors
    if ctx.early is not None:
        # computed in forward for grad_output = 1 (as linear cross-entropy does): scaled in
        # place, and handed over to autograd without a copy
        grads, ctx.early = ctx.early, None
        gu, gw = scale_early_grads(grads, grad_output, compute_dtype(unit.dtype))
    else:
        rows, engine, norms = _prepare(unit, weight, labels, ctx.opts)
        scale = _row_scale(engine, rows, grad_output)
        _, gu, gw = _sweep_and_project(rows, engine, norms, scale, need)
        gu = None if gu is None else rows.scatter(gu)
    return (
        None if gu is None or not need[0] else gu.to(unit.dtype),
        None if gw is None or not need[1] else gw.to(weight.dtype),
        None,
        None,
    )


def _second_order(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    """CosFace rebuilt by its dense formula for a graph of the gradient (``create_graph=True``):
    exact second derivatives, at the cost of the ``N x C`` logits the chunks avoid, paid only
    by a call that asks for them (as linear cross-entropy does)."""
    unit, weight, labels = saved
    return _dense(unit, weight, labels, ctx.opts)


# One Function per loss: CosFace differentiates twice through its dense formula; ArcFace
# refuses, naming itself, since autograd through sqrt(1 - cos^2) is NaN on the loss's cone,
# where the fused gradient is finite (see _dense).
class _CosFace(LossFunction):
    forward = staticmethod(_forward)
    backward = staticmethod(differentiable_backward(_second_order)(_backward))


class _ArcFace(LossFunction):
    forward = staticmethod(_forward)
    backward = staticmethod(refuse_double_backward(_ARCFACE)(_backward))


def _dense(unit: Tensor, weight: Tensor, labels: Tensor, opts: _Margin) -> Tensor:
    """The loss through the ``N x C`` logits, by autograd: the Function's logits (the centres'
    norms, the margin of ``opts.target_logit``) and mean rule, for torch.func transforms, which
    differentiate a graph of the gradient that the chunks do not have. CosFace only: ArcFace's
    Function floors its slope where an embedding lies on its centre (the loss's cone), which
    autograd through ``sqrt(1 - cos^2)`` would turn into NaN; under a transform ArcFace's
    Function refuses instead (:class:`losskit._autograd.LossFunction`)."""
    ct = compute_dtype(weight.dtype)  # float32 softmax for half inputs, as the Function's
    unit, weight = unit.to(ct), weight.to(ct)
    norms = torch.linalg.vector_norm(weight, dim=1).clamp_min(_NORM_EPS)
    z = (unit @ weight.mT) * (opts.scale / norms)
    counted = labels != opts.ignore_index
    safe = torch.where(counted, labels, 0)[:, None]
    target, _ = opts.target_logit(z.gather(1, safe))
    losses = F.cross_entropy(z.scatter(1, safe, target), safe.squeeze(1), reduction="none")
    losses = torch.where(counted, losses, 0.0)
    if opts.reduction == "none":
        return losses
    total = losses.sum()
    return total if opts.reduction == "sum" else total / counted.sum().clamp_min(1)


# As in linear cross-entropy: the chunk loop's sizes depend on the labels' values, so the
# Function runs outside a compiled graph and always sees the call's own options.
def _apply_eagerly(
    function: type[torch.autograd.Function],
    unit: Tensor,
    weight: Tensor,
    labels: Tensor,
    opts: _Margin,
) -> Tensor:
    if torch.compiler.is_compiling():
        return _outside_the_graph(function)(unit, weight, labels, opts)
    if not opts.arc and torch._C._are_functorch_transforms_active():
        return _dense(unit, weight, labels, opts)
    return function.apply(unit, weight, labels, opts)


@functools.cache
def _outside_the_graph(function: type[torch.autograd.Function]) -> Callable[..., Tensor]:
    # made on first use: torch.compiler.disable imports torch._dynamo (over a second)
    return torch.compiler.disable(function.apply)


def _check_inputs(loss: str, embeddings: Tensor, labels: Tensor, class_weight: Tensor) -> None:
    check_floating(loss, "embeddings", embeddings)
    check_tensor(loss, "labels", labels)
    check_floating(loss, "class_weight", class_weight)
    if embeddings.dim() != 2:
        fail(
            loss,
            "embeddings",
            f"has shape {shape_str(embeddings.shape)}",
            "(N, d), one embedding per row",
        )
    n, d = embeddings.shape
    if class_weight.dim() != 2 or class_weight.shape[1] != d or class_weight.shape[0] == 0:
        fail(
            loss,
            "class_weight",
            f"has shape {shape_str(class_weight.shape)}",
            f"(C, {d}) with C >= 1, one centre of d={d} features per class for embeddings "
            f"{shape_str(embeddings.shape)}",
        )
    check_same_dtype(loss, "class_weight", class_weight, embeddings, "embeddings")
    check_same_device(loss, "class_weight", class_weight, embeddings, "embeddings")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        fail(loss, "labels", f"has dtype {labels.dtype}", "integer class indices")
    if labels.shape != (n,):
        fail(
            loss,
            "labels",
            f"has shape {shape_str(labels.shape)}",
            f"({n},), one class index per embedding",
        )
    check_same_device(loss, "labels", labels, embeddings, "embeddings")
    check_finite(loss, "embeddings", embeddings)
    check_finite(loss, "class_weight", class_weight)


def _check_labels(loss: str, labels: Tensor, classes: int, ignore_index: int) -> None:
    """Labels in ``[0, classes)`` or ``ignore_index``, checked where a value check costs no
    synchronisation (see :func:`losskit._checks.values_checked`), as cross-entropy's are."""
    if not values_checked(labels):
        return
    counted = labels[labels != ignore_index]
    if counted.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(counted))
    if lo < 0 or hi >= classes:
        fail(
            loss,
            "labels",
            f"has class indices in [{lo}, {hi}]",
            f"indices in [0, {classes - 1}] or ignore_index={ignore_index}",
        )


def _angular_margin(
    loss: str,
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    *,
    arc: bool,
    scale: float,
    margin: float,
    easy_margin: bool,
    ignore_index: int,
    reduction: str,
    chunk_size: int | None,
) -> Tensor:
    _check_inputs(loss, embeddings, labels, class_weight)
    s = SCALE.check(loss, scale)
    m = (ARC_MARGIN if arc else COS_MARGIN).check(loss, margin)
    if not isinstance(easy_margin, bool):
        fail(loss, "easy_margin", f"is {easy_margin!r}", "True or False")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        fail(loss, "ignore_index", f"is {ignore_index!r}", "an int")
    check_reduction(loss, reduction, REDUCTIONS)
    check_chunk_size(loss, chunk_size)
    n, d = embeddings.shape
    classes = class_weight.shape[0]
    _check_labels(loss, labels, classes, ignore_index)
    if chunk_size is None:
        chunk_size = auto_chunk_size(n, d, classes)
        chunk_size = parallel_chunk_rows(chunk_size, n, classes, embeddings, PARALLEL_CHUNK_LOGITS)
    opts = _Margin(
        arc, s, m, easy_margin, ignore_index, reduction, chunk_size, torch.is_grad_enabled()
    )
    unit = F.normalize(embeddings.to(compute_dtype(embeddings.dtype)), dim=1, eps=_NORM_EPS)
    if _half_matmuls(embeddings.device):
        unit = unit.to(embeddings.dtype)
    function = _ArcFace if arc else _CosFace
    return _apply_eagerly(function, unit, class_weight, labels.long(), opts).to(embeddings.dtype)


@autocast_lower_precision
def cosface_loss(
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    *,
    scale: float = SCALE.default,
    margin: float = COS_MARGIN.default,
    ignore_index: int = IGNORE_INDEX.default,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r"""CosFace (large margin cosine loss): softmax cross-entropy over the cosines between
    normalised embeddings and normalised class centres, scaled by ``s``, with the margin ``m``
    taken off the true class's cosine:

    .. math:: \ell_i = -\log\frac{e^{s(\cos\theta_{i y_i} - m)}}
              {e^{s(\cos\theta_{i y_i} - m)} + \sum_{j \ne y_i} e^{s\cos\theta_{ij}}},\qquad
              \cos\theta_{ij} = \frac{h_i \cdot W_j}{\lVert h_i\rVert\,\lVert W_j\rVert}

    Shapes: ``embeddings`` ``(N, d)``, ``labels`` ``(N,)`` class indices, ``class_weight``
    ``(C, d)``, one centre per class (pytorch-metric-learning keeps its ``W`` as ``(d, C)``:
    pass ``W.T``). The result is a scalar, or ``(N,)`` for ``reduction="none"`` with 0 where the
    label is ``ignore_index``; a mean over no counted label is 0.0.

    Runs on the chunked linear cross-entropy: ``chunk_size`` embeddings at a time (default
    :func:`losskit.functional.auto_chunk_size`), so the ``N x C`` logits never exist and the
    class centres are never copied to normalise them; a million classes cost the gradient of
    ``class_weight`` and one chunk of logits. As there, the gradients of ``"mean"`` and
    ``"sum"`` are computed during the forward pass, float16/bfloat16 inputs are multiplied in
    their dtype on accelerators (float32 on CPU) with the softmax in float32. Double backward
    (``create_graph=True``) is exact: that call rebuilds the loss through the ``N x C`` logits.
    With the defaults (``s = 64``, ``m = 0.35``, the
    paper's) the value is pytorch-metric-learning's ``CosFaceLoss`` with ``W = class_weight.T``.

    >>> import torch, torch.nn.functional as F, losskit.functional as LF
    >>> h, W, y = torch.randn(6, 8), torch.randn(50, 8), torch.tensor([3, 7, 0, 49, 0, 1])
    >>> cos = F.normalize(h) @ F.normalize(W).T
    >>> dense = F.cross_entropy(64.0 * (cos - 0.35 * F.one_hot(y, 50)), y)
    >>> torch.allclose(LF.cosface_loss(h, y, W), dense)
    True

    Reference: Wang et al., CosFace: Large Margin Cosine Loss for Deep Face Recognition,
    CVPR 2018.
    """
    return _angular_margin(
        _COSFACE,
        embeddings,
        labels,
        class_weight,
        arc=False,
        scale=scale,
        margin=margin,
        easy_margin=False,
        ignore_index=ignore_index,
        reduction=reduction,
        chunk_size=chunk_size,
    )


@autocast_lower_precision
def arcface_loss(
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    *,
    scale: float = SCALE.default,
    margin: float = ARC_MARGIN.default,
    easy_margin: bool = EASY_MARGIN.default,
    ignore_index: int = IGNORE_INDEX.default,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r"""ArcFace (additive angular margin loss): softmax cross-entropy over the cosines between
    normalised embeddings and normalised class centres, scaled by ``s``, with the margin ``m``
    (radians) added to the true class's angle:

    .. math:: \ell_i = -\log\frac{e^{s\,\psi(\theta_{i y_i})}}
              {e^{s\,\psi(\theta_{i y_i})} + \sum_{j \ne y_i} e^{s\cos\theta_{ij}}},\qquad
              \psi(\theta) = \begin{cases}\cos(\theta + m) & \theta \le \pi - m\\
              \cos\theta - m\sin m & \text{otherwise}\end{cases}

    The second branch keeps the true class's logit decreasing in its angle where
    ``cos(theta + m)`` would turn up again (the paper's code, pytorch-metric-learning). With
    ``easy_margin=True`` (insightface's option) the margin applies only where
    ``theta < pi/2`` and the logit is ``cos theta`` beyond. ``cos(theta + m)`` is computed as
    ``cos theta cos m - sin theta sin m`` from the cosine (no ``acos``); the angle's cone at
    ``theta = 0`` gets a finite gradient.

    Shapes, reductions, chunking and precision are those of :func:`cosface_loss`. Double
    backward raises ``DoubleBackwardError``: autograd through ``sqrt(1 - cos^2)`` would be
    NaN on the cone, where this gradient is finite. With ``margin=math.radians(28.6)`` the value is
    pytorch-metric-learning's ``ArcFaceLoss`` (whose margin is in degrees, default 28.6) with
    ``W = class_weight.T``.

    >>> import torch, losskit.functional as LF
    >>> h = torch.tensor([[0.5, 0.75**0.5]])  # 60 degrees from class 0, 30 from class 1
    >>> W = torch.eye(2)
    >>> round(LF.arcface_loss(h, torch.tensor([0]), W, scale=4.0).item(), 4)
    3.4035

    Reference: Deng et al., ArcFace: Additive Angular Margin Loss for Deep Face Recognition,
    CVPR 2019.
    """
    return _angular_margin(
        _ARCFACE,
        embeddings,
        labels,
        class_weight,
        arc=True,
        scale=scale,
        margin=margin,
        easy_margin=easy_margin,
        ignore_index=ignore_index,
        reduction=reduction,
        chunk_size=chunk_size,
    )
