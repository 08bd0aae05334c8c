r"""Segmentation losses: Dice, generalized Dice, Jaccard (soft IoU), Tversky, focal Tversky,
Lovász-softmax and Lovász-hinge, for 2-D, 3-D (or any number of) spatial dimensions.

Shapes: ``input`` is ``(N, C, *spatial)`` logits (``from_logits=True``) or probabilities.
``target`` is, by ``mode``:

* ``"multiclass"`` (softmax over the C classes): class indices ``(N, *spatial)`` of any integer
  dtype, or probabilities / one-hot ``(N, C, *spatial)`` of ``input``'s dtype;
* ``"multilabel"`` (a sigmoid per channel): ``(N, C, *spatial)`` 0/1 (or soft) labels, floating,
  integer or bool;
* ``"binary"``: ``input`` ``(N, 1, *spatial)``; ``target`` of that shape or ``(N, *spatial)``.

Index targets never become a one-hot tensor: the overlap losses reduce the softmax to per-image,
per-class sums (intersection ``I``, prediction volume ``P``, target volume ``G``) in chunks of
pixels, by a custom autograd Function whose backward recomputes the softmax chunk by chunk; so
forward and backward hold one chunk of temporaries beside the gradient itself. Double backward
(``create_graph=True``) is exact: it goes through an eager formula of the same sums.

Scores, per image and class (``per_image=True``) or per class over the whole batch (default):

.. math:: \text{Dice} = \frac{2I + s}{P + G + s'},\quad
          \text{Jaccard} = \frac{I + s}{P + G - I + s'},\quad
          \text{Tversky} = \frac{I + s}{I + \alpha(P - I) + \beta(G - I) + s'}

with ``s = smooth`` and ``s' = smooth_denominator`` (``None``: ``s``). ``squared=True`` sums
:math:`p^2` and :math:`y^2` into ``P`` and ``G`` (V-Net). The loss of an entry is
``1 - score`` (``log_loss``: ``-log(max(score, 1e-7))``).

**Empty foreground (the smoothing rule decides).** A class absent from the target (``G = 0``)
scores ``s / (P + s')``: with the default ``s = s' = 1`` its Dice loss is ``P / (P + 1)``,
about 0 while the prediction is empty too and rising to 1 as the predicted volume grows. With
``s = s' = 0`` a class absent from both target and prediction scores 1 (loss 0: nothing to
find, nothing found), and any false positive costs the whole loss. ``absent="zero"`` gives
every class absent from the target a loss of 0 (smp's rule).

**Ignored pixels count nowhere**: pixels whose target is ``ignore_index`` enter no sum (not
``I``, ``P``, ``G``, the Lovász sorting, nor the gradient), whatever the input holds there
(NaN included). In ``"multilabel"`` and ``"binary"`` mode the test is elementwise
(``target == ignore_index``); for probability targets in ``"multiclass"`` mode ``ignore_index``
means nothing, as in :func:`losskit.functional.cross_entropy`. Class indices out of range and
labels outside [0, 1] (``ignore_index`` aside) are refused on the CPU under the default checks
(reading them costs no synchronisation there), everywhere under ``losskit.checks("full")``; so
are probabilities outside [0, 1] with ``from_logits=False``.

**Reductions.** ``"none"`` returns the entries: ``(N, C')`` per image and class when
``per_image``, else ``(C',)`` (``C'``: the classes counted, without the background when
``include_background=False``), each multiplied by its ``class_weight``; ``"sum"`` is their sum;
``"mean"`` is the ``class_weight``-weighted mean over classes, per image, then the mean over
images. An entry counts when its image (or the batch) has a pixel that is not ignored; the
Lovász-softmax with ``classes="present"`` counts only the classes present in the target. A mean
over nothing (empty batch, every pixel ignored) is 0, attached to the graph.

**Mapping to MONAI and segmentation_models_pytorch (smp).** Each row gives the same number
(float64, exact; ``tests/test_segmentation_parity.py`` checks every row):

================================  ===================================  ==================================
losskit                           MONAI (``monai.losses``)             smp (``segmentation_models_pytorch.losses``)
================================  ===================================  ==================================
``mode="multiclass"``,            ``softmax=True, to_onehot_y=True``   ``mode="multiclass"``
index targets                     (target ``(N, 1, *spatial)``)
``mode="multilabel"``             ``sigmoid=True``                     ``mode="multilabel"``
``mode="binary"``                 ``sigmoid=True`` (one channel)       ``mode="binary"``
``from_logits=False``             no ``softmax``/``sigmoid``           ``from_logits=False``
``smooth=s``                      ``smooth_nr=s``                      ``smooth=s``
``smooth_denominator=d``          ``smooth_dr=d``                      (always ``smooth``)
``squared=True``                  ``squared_pred=True``                --
``per_image=True``                ``batch=False`` (MONAI's default)    -- (smp: always the batch)
``per_image=False``               ``batch=True``                       (default)
``include_background=False``      ``include_background=False``         ``classes=range(1, C)``
``class_weight=w``,               ``weight=w``, ``reduction="mean"``   --
``reduction="none"``, ``.mean()``
``reduction="none"``              ``reduction="none"`` (flattened)     --
``ignore_index=i``                --                                   ``ignore_index=i``
``absent="zero"``                 --                                   (always)
``log_loss=True``                 --                                   ``log_loss=True``
``jaccard_loss(smooth=s,          ``DiceLoss(jaccard=True,             ``JaccardLoss(smooth=s)``
smooth_denominator=d)``           smooth_nr=2s, smooth_dr=2d)``
``tversky_loss(alpha=a, beta=b)`` ``TverskyLoss(alpha=a, beta=b)``     ``TverskyLoss(alpha=a, beta=b)``
``focal_tversky_loss(gamma=g)``   --                                   ``TverskyLoss(gamma=g)``, binary
                                                                       mode (smp raises the class mean
                                                                       to ``g``; losskit each class)
``generalized_dice_loss``         ``GeneralizedDiceLoss``,             --
(``weight_type``)                 (``w_type``), smooth 1e-5 both
``lovasz_softmax_loss``           --                                   ``LovaszLoss(mode="multiclass")``
(``classes="present"``)
``lovasz_hinge_loss``             --                                   ``LovaszLoss(mode="binary")``
Dice + CE: ``CombinedLoss``       ``DiceCELoss(lambda_dice=a,          --
``weights={"dice": a, "ce": b}``  lambda_ce=b)``
================================  ===================================  ==================================

smp clamps each score's denominator at ``eps=1e-7``; with hard targets that changes nothing (a
present class has ``G >= 1`` and an absent one scores 0 under its rule). Differences on purpose:
an image whose pixels are all ignored is left out of the mean over images (Berman et al.'s
reference counts it as 0); smp's multilabel Lovász hinges all channels of an image together,
losskit each channel.

A combined loss, Dice plus cross-entropy (MONAI's ``DiceCELoss``), through
:class:`losskit.CombinedLoss`:

>>> import torch, losskit
>>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
>>> masks = torch.tensor([[[0, 1], [0, 1]]])
>>> criterion = losskit.CombinedLoss(
...     {"dice": losskit.DiceLoss(smooth=1e-5, per_image=True), "ce": losskit.CrossEntropyLoss()},
...     weights={"dice": 1.0, "ce": 1.0})
>>> out = criterion(logits, masks)
>>> round(out.total.item(), 4), {k: round(v.item(), 4) for k, v in out.parts.items()}
(0.3376, {'dice': 0.1555, 'ce': 0.1821})

and Dice plus focal loss the same way, with ``losskit.FocalLoss(gamma=2.0)`` as the second part.

References: Milletari et al., V-Net, 3DV 2016; Sudre et al., Generalised Dice overlap as a deep
learning loss function for highly unbalanced segmentations, DLMIA 2017; Salehi et al., Tversky
loss function for image segmentation, MLMI 2017; Abraham & Khan, A novel focal Tversky loss
function with improved attention U-Net for lesion segmentation, ISBI 2019; Berman et al., The
Lovász-Softmax loss, CVPR 2018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._autograd import LossFunction, differentiable_backward
from losskit._checks import (
    check_finite,
    check_floating,
    check_in_unit_interval,
    check_nonnegative,
    check_number,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_tensor,
    fail,
    full_checks,
    shape_str,
    values_checked,
)
from losskit._options import HyperParam
from losskit._reduce import REDUCTIONS, Reduction, compute_dtype, safe_divide
from losskit.losses.segmentation.options import (
    ABSENT,
    CLASSES,
    FROM_LOGITS,
    FT_ALPHA,
    FT_BETA,
    FT_GAMMA,
    GDL_SMOOTH,
    INCLUDE_BACKGROUND,
    LOG_LOSS,
    MODE,
    MODES,
    PER_IMAGE,
    SMOOTH,
    SQUARED,
    TVERSKY_ALPHA,
    TVERSKY_BETA,
    WEIGHT_TYPE,
)

__all__ = [
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "tversky_loss",
]

#: elements (batch x classes x pixels) of one chunk of the fused sums on one thread: small
#: enough to stay in cache, large enough that the Python loop costs nothing (see _chunk_pixels)
_CHUNK_ELEMENTS = 1 << 16
#: the same on several threads: a few large chunks (see _chunk_pixels)
_PARALLEL_CHUNK_ELEMENTS = 1 << 22
#: the least elements of a chunk of the backward over a kept softmax (see _kept_softmax_grad):
#: its temporary is one such chunk, a few large ones cost fewer operations
_KEPT_CHUNK_ELEMENTS = 1 << 20
#: smp's clamp of the score before the log
_LOG_EPS = 1e-7
_COMPLEX = (torch.complex64, torch.complex128)


# ----------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Pixels:
    """The inputs of one call, flattened to pixels."""

    #: ``(N, C, S)``, the input's dtype
    x: Tensor
    #: multiclass class indices ``(N, S)``, int64, ignored pixels set to 0; else None
    index: Tensor | None
    #: dense targets ``(N, C, S)`` in the compute dtype, ignored elements set to 0; else None
    dense: Tensor | None
    #: which pixels count: ``(N, S)`` for index targets, ``(N, C, S)`` for dense ones; None: all
    valid: Tensor | None
    mode: str
    from_logits: bool

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self.x.dtype)


def _check_flag(loss: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(loss, name, f"is {value!r}", "True or False")
    return value


def _check_choice(loss: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        fail(loss, name, f"is {value!r}", "one of " + ", ".join(map(repr, choices)))
    return value


def _check_ignore_index(loss: str, ignore_index: object) -> int | None:
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        fail(loss, "ignore_index", f"is {ignore_index!r}", "None or an int")
    return ignore_index


def _check_smoothing(
    loss: str, smooth: object, smooth_denominator: object, declared: HyperParam = SMOOTH
) -> tuple[float, float]:
    s = declared.check(loss, smooth)
    if smooth_denominator is None:
        return s, s
    return s, check_number(loss, "smooth_denominator", smooth_denominator, ge=0.0)


def _check_indices(loss: str, target: Tensor, classes: int, ignore_index: int | None) -> None:
    """Class indices in ``[0, classes)`` or ``ignore_index``: under the full checks, and under the
    fast ones on the CPU, where reading them costs no synchronisation."""
    if not values_checked(target):
        return
    lo, hi = (int(v) for v in torch.aminmax(target))
    if lo >= 0 and hi < classes:
        return
    if ignore_index is not None:
        counted = target[target != ignore_index]
        if counted.numel() == 0:
            return
        lo, hi = (int(v) for v in torch.aminmax(counted))
        if lo >= 0 and hi < classes:
            return
    also = "" if ignore_index is None else f" or ignore_index={ignore_index}"
    fail(
        loss,
        "target",
        f"has class indices in [{lo}, {hi}]",
        f"indices in [0, {classes - 1}]{also}",
    )


def _check_labels(loss: str, target: Tensor, ignore_index: int | None, hard: bool) -> None:
    """Labels in [0, 1] (0 or 1 exactly when ``hard``), ``ignore_index`` aside: under the full
    checks, and under the fast ones on the CPU, as class indices are (a mask of 0/255 without
    ``ignore_index`` would otherwise give a silently wrong number)."""
    if not values_checked(target) or target.dtype == torch.bool:
        return
    if target.is_floating_point() and full_checks():
        check_finite(loss, "target", target)
    counted = target if ignore_index is None else target[target != ignore_index]
    if counted.numel() == 0:
        return
    also = "" if ignore_index is None else f" or ignore_index={ignore_index}"
    if hard:
        if not bool(((counted == 0) | (counted == 1)).all()):
            fail(loss, "target", "has values other than 0 and 1", f"0/1 labels{also}")
        return
    lo, hi = (float(v) for v in torch.aminmax(counted.detach()))
    if lo < 0.0 or hi > 1.0:
        fail(loss, "target", f"has values in [{lo:g}, {hi:g}]", f"values in [0, 1]{also}")


def _pixels(
    loss: str,
    input: object,
    target: object,
    mode: object,
    from_logits: object,
    ignore_index: object,
    *,
    dense_multiclass: bool = True,
    hard_labels: bool = False,
) -> _Pixels:
    """Validate the inputs of a segmentation loss and flatten them to pixels."""
    mode = _check_choice(loss, "mode", mode, MODES)
    from_logits = _check_flag(loss, "from_logits", from_logits)
    ignore_index = _check_ignore_index(loss, ignore_index)
    input = check_floating(loss, "input", input)
    target = check_tensor(loss, "target", target)
    check_same_device(loss, "target", target, input, "input")
    if input.dim() < 2:
        fail(loss, "input", f"has shape {shape_str(input.shape)}", "(N, C, *spatial) scores")
    n, c = input.shape[0], input.shape[1]
    if c == 0:
        fail(loss, "input", f"has shape {shape_str(input.shape)}", "at least one class (C >= 1)")
    if mode == "binary" and c != 1:
        fail(
            loss,
            "input",
            f"has shape {shape_str(input.shape)}",
            "one channel, (N, 1, *spatial), in mode='binary' (several: mode='multilabel')",
        )
    check_finite(loss, "input", input)
    if not from_logits and values_checked(input):
        lo, hi = (float(v) for v in torch.aminmax(input.detach()))
        if lo < 0.0 or hi > 1.0:
            fail(
                loss,
                "input",
                f"has values in [{lo:g}, {hi:g}]",
                "probabilities in [0, 1] (from_logits=False)",
            )
    spatial = input.shape[2:]
    index_shape = input.shape[:1] + spatial
    pixels = math.prod(spatial)
    x = input.reshape(n, c, pixels)

    if mode == "multiclass":
        # a bool target is a mask, not the classes 0 and 1 (torch's cross-entropy agrees)
        if not target.is_floating_point() and target.dtype not in (torch.bool, *_COMPLEX):
            if target.shape == index_shape:
                _check_indices(loss, target, c, ignore_index)
                index = target.reshape(n, pixels).long()
                valid = None
                if ignore_index is not None:
                    valid = index != ignore_index
                    index = torch.where(valid, index, 0)
                return _Pixels(x, index, None, valid, mode, from_logits)
        elif dense_multiclass and target.is_floating_point() and target.shape == input.shape:
            check_same_dtype(loss, "target", target, input, "input")
            check_finite(loss, "target", target)
            check_in_unit_interval(loss, "target", target)
            dense = target.reshape(n, c, pixels).to(compute_dtype(input.dtype))
            return _Pixels(x, None, dense, None, mode, from_logits)
        probabilities = (
            f" or {shape_str(input.shape)} floating probabilities" if dense_multiclass else ""
        )
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)} and dtype {target.dtype}",
            f"{shape_str(index_shape)} integer class indices{probabilities} for input "
            f"{shape_str(input.shape)}",
        )

    shapes = (input.shape, index_shape) if mode == "binary" else (input.shape,)
    if target.shape not in shapes or target.dtype in _COMPLEX:
        allowed = " or ".join(shape_str(s) for s in shapes)
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)} and dtype {target.dtype}",
            f"{allowed} labels for input {shape_str(input.shape)} in mode={mode!r}",
        )
    if target.is_floating_point():
        check_same_dtype(loss, "target", target, input, "input")
    _check_labels(loss, target, ignore_index, hard_labels)
    y = target.reshape(n, c, pixels)
    valid = None if ignore_index is None else y != ignore_index
    dense = y.to(compute_dtype(input.dtype))
    if valid is not None:
        dense = torch.where(valid, dense, 0)
    return _Pixels(x, None, dense, valid, mode, from_logits)


def _check_class_weight(
    loss: str, class_weight: object, classes: int, input: Tensor
) -> Tensor | None:
    if class_weight is None:
        return None
    w = check_floating(loss, "class_weight", class_weight)
    if w.shape != (classes,):
        fail(
            loss,
            "class_weight",
            f"has shape {shape_str(w.shape)}",
            f"({classes},), one weight per counted class of input {shape_str(input.shape)}",
        )
    check_same_device(loss, "class_weight", w, input, "input")
    check_nonnegative(loss, "class_weight", w)
    return w.to(compute_dtype(input.dtype))


# ----------------------------------------------------------------------------------- sums


def _probabilities(x: Tensor, mode: str, from_logits: bool, dtype: torch.dtype) -> Tensor:
    if not from_logits:
        return x.to(dtype)
    if mode == "multiclass":
        return torch.softmax(x, 1, dtype=dtype)
    return torch.sigmoid(x.to(dtype))


def _index_sums_eager(
    x: Tensor, index: Tensor, valid: Tensor | None, from_logits: bool, squared: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``(I, P, G)`` of class-index targets by differentiable torch operations (the whole
    softmax at once): the double-backward path of :class:`_IndexSums`."""
    dtype = compute_dtype(x.dtype)
    p = _probabilities(x, "multiclass", from_logits, dtype)
    if valid is not None:
        p = torch.where(valid[:, None], p, 0)
    volume = (p * p if squared else p).sum(-1)
    p_target = p.gather(1, index[:, None]).squeeze(1)
    zeros = torch.zeros(x.shape[:2], dtype=dtype, device=x.device)
    counts = torch.ones_like(p_target) if valid is None else valid.to(dtype)
    return zeros.scatter_add(1, index, p_target), volume, zeros.scatter_add(1, index, counts)


# torch.compile cannot trace get_num_threads: read when the loss is traced, a constant after
@torch.compiler.assume_constant_result
def _several_threads() -> bool:
    return torch.get_num_threads() > 1


def _chunk_pixels(n: int, c: int) -> int:
    """Pixels per chunk of the fused sums: ``_CHUNK_ELEMENTS`` elements on one thread (cache
    sized), ``_PARALLEL_CHUNK_ELEMENTS`` on several. Each large operation is a parallel region
    whose end waits for every thread: when other processes hold the cores, many small regions
    spend their time waiting (measured on 2 loaded cores: 3 s against 0.5 s per step at
    (2, 8, 96, 96, 96)), so several threads take a few large chunks. Fixed in elements, never
    in bytes, so half-precision inputs take the chunks of float32 ones."""
    elements = _PARALLEL_CHUNK_ELEMENTS if _several_threads() else _CHUNK_ELEMENTS
    return max(1, elements // max(n * c, 1))


class _IndexSums(LossFunction):
    """Per-image, per-class intersection ``I``, prediction volume ``P`` and target volume ``G``
    of the softmax (or the probabilities) against class-index targets: no one-hot target is
    ever held.

    From logits (not ``squared``), the forward computes the softmax of the whole volume in a
    few operations and keeps it; the backward turns it in place, a chunk of pixels at a time,
    into the gradient (no second softmax, no second full-size tensor: the softmax held from
    forward to backward is the gradient's memory, which the backward would allocate anyway).
    Measured with ``losskit bench dice`` at (2, 8, 96, 96, 96), forward and backward: one thread
    116 ms against 153 ms recomputing the softmax chunk by chunk (the one-hot formula: 450 ms),
    two loaded threads 386 ms against 878 ms (1.03 s), where every chunked operation is a
    parallel region that waits for a descheduled thread; peak memory 78 MiB against 55 MiB
    (216 MiB). A second backward of the same graph (``retain_graph``) computes the softmax
    again. On an accelerator (memory dearer than a second softmax), for probabilities
    (``from_logits=False``: the caller's tensor) and ``squared``, both passes go chunk by
    chunk."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        index: Tensor,
        valid: Tensor | None,
        from_logits: bool,
        squared: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        n, c, s = x.shape
        dtype = compute_dtype(x.dtype)
        ctx.save_for_backward(x, index, valid)
        ctx.from_logits, ctx.squared = from_logits, squared
        ctx.kept = None
        counts = torch.zeros(n, c, dtype=dtype, device=x.device)
        ones = valid.to(dtype) if valid is not None else torch.ones(1, dtype=dtype, device=x.device)
        counts.scatter_add_(1, index, ones.expand(index.shape))
        ctx.mark_non_differentiable(counts)
        # on the CPU; an accelerator's memory is dearer than a second softmax
        ctx.whole = (
            from_logits
            and not squared
            and x.device.type == "cpu"
            and not torch.compiler.is_compiling()
        )
        if ctx.whole:
            p, target = _masked_softmax(x, index, valid)
            inter = torch.zeros(n, c, dtype=dtype, device=x.device).scatter_add_(1, index, target)
            if ctx.needs_input_grad[0]:
                ctx.kept = (p, target)
            return inter, p.sum(-1), counts
        sums = torch.zeros(2, n, c, dtype=dtype, device=x.device)
        inter, volume = sums.unbind(0)
        step = _chunk_pixels(n, c)
        for start in range(0, s, step):
            stop = min(start + step, s)
            p = _probabilities(x[:, :, start:stop], "multiclass", from_logits, dtype)
            idx = index[:, start:stop]
            if valid is not None:
                keep = valid[:, None, start:stop]
                # the softmax is ours to change; probabilities may be the caller's input
                p = p.masked_fill_(~keep, 0) if from_logits else torch.where(keep, p, 0)
            volume += (p * p if squared else p).sum(-1)
            inter.scatter_add_(1, idx, p.gather(1, idx[:, None]).squeeze(1))
        return inter, volume, counts

    @staticmethod
    @differentiable_backward(
        lambda ctx, saved: _index_sums_eager(*saved, ctx.from_logits, ctx.squared)
    )
    def backward(ctx, grad_inter: Tensor, grad_volume: Tensor, _grad_counts: Tensor):
        x, index, valid = ctx.saved_tensors
        if ctx.whole:
            # the kept softmax, once; a second backward (retain_graph) computes it again
            kept, ctx.kept = ctx.kept, None
            p, target = kept if kept is not None else _masked_softmax(x, index, valid)
            grad = _kept_softmax_grad(x, index, valid, p, target, grad_inter, grad_volume)
            return grad, None, None, None, None
        n, c, s = x.shape
        dtype = compute_dtype(x.dtype)
        grad = torch.empty((n, c, s), dtype=x.dtype, device=x.device)
        g_inter = grad_inter.to(dtype)
        g_volume = grad_volume.to(dtype)[:, :, None]
        step = _chunk_pixels(n, c)
        for start in range(0, s, step):
            stop = min(start + step, s)
            p = _probabilities(x[:, :, start:stop], "multiclass", ctx.from_logits, dtype)
            idx = index[:, start:stop]
            # half inputs: the chunk in float32, rounded once into the gradient
            out = grad[:, :, start:stop] if x.dtype == dtype else torch.empty_like(p)
            # d loss / d p_k = g_volume_k (2 p_k g_volume_k if squared) + g_inter_k [k = target]
            g_target = g_inter.gather(1, idx)[:, None]
            g = 2.0 * p * g_volume if ctx.squared else g_volume
            if ctx.from_logits:
                # softmax: d loss / d x_k = p_k (g_k - sum_j p_j g_j)
                p_target = p.gather(1, idx[:, None])
                if ctx.squared:
                    dot = (p * g).sum(1, keepdim=True)
                else:
                    dot = torch.bmm(g_volume.transpose(1, 2), p)
                target_term = p_target * g_target
                torch.sub(g, dot + target_term, out=out)
                out.mul_(p).scatter_add_(1, idx[:, None], target_term)
            else:
                out.copy_(g.expand_as(p)).scatter_add_(1, idx[:, None], g_target)
            if valid is not None:
                out.masked_fill_(~valid[:, None, start:stop], 0)
            if x.dtype != dtype:
                grad[:, :, start:stop] = out
        return grad, None, None, None, None


def _masked_softmax(x: Tensor, index: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """The softmax over the classes in the compute dtype, 0 at ignored pixels, and its value
    at each pixel's class."""
    p = torch.softmax(x, 1, dtype=compute_dtype(x.dtype))
    if valid is not None:
        p.masked_fill_(~valid[:, None], 0)
    return p, p.gather(1, index[:, None]).squeeze(1)


def _kept_softmax_grad(
    x: Tensor,
    index: Tensor,
    valid: Tensor | None,
    p: Tensor,
    target: Tensor,
    grad_inter: Tensor,
    grad_volume: Tensor,
) -> Tensor:
    """The gradient of :class:`_IndexSums` from the softmax ``p`` its forward kept (and
    ``target``, its value at each pixel's class), written over ``p``: with ``g_k`` the
    gradient of class ``k``'s volume and ``h`` that of the pixel's class's intersection,
    ``d/dx_k = p_k (g_k - s) + [k = target] p_t h``, ``s = sum_j p_j g_j + p_t h``."""
    n, c, _ = p.shape
    g_volume = grad_volume.to(p.dtype)
    target_term = target * grad_inter.to(p.dtype).gather(1, index)
    # s per pixel: one batched product over the classes, and the target's term
    shift = torch.bmm(g_volume[:, None, :], p).squeeze(1).add_(target_term)
    step = max(_chunk_pixels(n, c), _KEPT_CHUNK_ELEMENTS // max(n * c, 1))
    for start in range(0, p.shape[2], step):  # p_k (g_k - s): a chunk-sized temporary
        chunk = p[:, :, start : start + step]
        chunk.mul_(g_volume[:, :, None] - shift[:, None, start : start + step])
    p.scatter_add_(1, index[:, None], target_term[:, None])
    if valid is not None:  # ignored pixels: no gradient (p is 0 there; NaN inputs stay out)
        p.masked_fill_(~valid[:, None], 0)
    return p if p.dtype == x.dtype else p.to(x.dtype)


def _overlap_sums(px: _Pixels, squared: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(I, P, G)``, each ``(N, C)`` in the compute dtype."""
    if px.index is not None:
        return _IndexSums.apply(px.x, px.index, px.valid, px.from_logits, squared)
    assert px.dense is not None
    p = _probabilities(px.x, px.mode, px.from_logits, px.dtype)
    y = px.dense
    if px.valid is not None:
        p = torch.where(px.valid, p, 0)
    inter = (p * y).sum(-1)
    if squared:
        return inter, (p * p).sum(-1), (y * y).sum(-1)
    return inter, p.sum(-1), y.sum(-1)


def _counted(px: _Pixels) -> Tensor:
    """``(N, C)``: whether image n has a pixel of channel c that is not ignored."""
    n, c, s = px.x.shape
    if px.valid is None:
        return torch.full((n, c), s > 0, dtype=torch.bool, device=px.x.device)
    counted = px.valid.any(-1)
    return counted[:, None].expand(n, c) if counted.dim() == 1 else counted


def _entries(
    px: _Pixels,
    sums: tuple[Tensor, ...],
    include_background: bool,
    per_image: bool,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """The sums of the counted classes, per image or over the batch, and which entries count."""
    counted = _counted(px)
    if not include_background and px.x.shape[1] > 1:
        sums = tuple(t[:, 1:] for t in sums)
        counted = counted[:, 1:]
    if per_image:
        return sums, counted
    return tuple(t.sum(0) for t in sums), counted.any(0)


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, and 1 where the denominator is 0 (nothing to find and
    nothing found: only when both smoothing terms are 0); a NaN stays NaN."""
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, 1), 1.0)


def _score_loss(score: Tensor, log_loss: bool) -> Tensor:
    return -torch.log(score.clamp_min(_LOG_EPS)) if log_loss else 1.0 - score


def _reduce_entries(
    entries: Tensor,
    counted: Tensor,
    weight: Tensor | None,
    per_image: bool,
    reduction: str,
    dtype: torch.dtype,
) -> Tensor:
    """The reduction rule of the module docstring, over ``(N, K)`` or ``(K,)`` entries."""
    values = entries if weight is None else entries * weight
    values = torch.where(counted, values, 0)
    if reduction == "none":
        return values.to(dtype)
    if reduction == "sum":
        return values.sum().to(dtype)
    w = counted.to(entries.dtype)
    if weight is not None:
        w = w * weight
    if not per_image:
        return safe_divide(values.sum(), w.sum()).to(dtype)
    totals = w.sum(-1)
    per_image_mean = safe_divide(values.sum(-1), totals)
    return safe_divide(per_image_mean.sum(), (totals > 0).sum().to(entries.dtype)).to(dtype)


def _overlap_loss(
    loss: str,
    input: Tensor,
    target: Tensor,
    *,
    score,
    mode: object,
    from_logits: object,
    squared: object,
    per_image: object,
    include_background: object,
    class_weight: object,
    ignore_index: object,
    absent: object,
    reduction: object,
) -> Tensor:
    """The shared body of the per-class overlap losses; ``score(I, P, G)`` gives each entry's
    loss."""
    check_reduction(loss, reduction, REDUCTIONS)
    squared = _check_flag(loss, "squared", squared)
    per_image = _check_flag(loss, "per_image", per_image)
    include_background = _check_flag(loss, "include_background", include_background)
    absent = _check_choice(loss, "absent", absent, ("smooth", "zero"))
    px = _pixels(loss, input, target, mode, from_logits, ignore_index)
    classes = px.x.shape[1] - (0 if include_background or px.x.shape[1] == 1 else 1)
    weight = _check_class_weight(loss, class_weight, classes, input)
    (inter, volume, counts), counted = _entries(
        px, _overlap_sums(px, squared), include_background, per_image
    )
    entries = score(inter, volume, counts)
    if absent == "zero":
        entries = torch.where(counts > 0, entries, 0)
    return _reduce_entries(entries, counted, weight, per_image, reduction, input.dtype)


# ----------------------------------------------------------------------------------- losses


@autocast_float32
def dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = MODE.default,
    from_logits: bool = FROM_LOGITS.default,
    smooth: float = SMOOTH.default,
    smooth_denominator: float | None = None,
    squared: bool = SQUARED.default,
    per_image: bool = PER_IMAGE.default,
    include_background: bool = INCLUDE_BACKGROUND.default,
    class_weight: Tensor | None = None,
    ignore_index: int | None = None,
    absent: str = ABSENT.default,
    log_loss: bool = LOG_LOSS.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Soft Dice loss (Milletari et al., V-Net, 2016), one minus

    .. math:: \text{Dice}_c = \frac{2 \sum_i p_{ic} y_{ic} + s}{\sum_i p_{ic} + \sum_i y_{ic} + s'}

    per class ``c`` over the pixels ``i`` of the batch (or of each image, ``per_image``), with
    ``p`` the softmax (``mode="multiclass"``) or sigmoid of ``input``, ``s = smooth`` and
    ``s' = smooth_denominator`` (``None``: ``s``). ``squared`` sums :math:`p^2` and :math:`y^2`
    in the denominator. Shapes, modes, the empty-foreground rule, ``ignore_index``,
    ``absent``, ``class_weight``, the reductions and the option-by-option mapping to MONAI's
    ``DiceLoss`` and smp's ``DiceLoss`` are in :mod:`losskit.losses.segmentation.functional`.

    Class-index targets are never one-hot encoded: the softmax is reduced to per-class sums
    chunk by chunk, forward and backward, so a ``(2, 8, 96, 96, 96)`` volume needs about the
    memory of its gradient. float16/bfloat16 are computed in float32; under autocast the
    loss runs in float32.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])                    # (N, H, W) class indices
    >>> round(LF.dice_loss(logits, masks).item(), 4)
    0.1243
    >>> round(LF.dice_loss(logits, masks, smooth=0.0).item(), 4)
    0.1555
    """
    loss = "dice_loss"
    s, d = _check_smoothing(loss, smooth, smooth_denominator)
    log_loss = _check_flag(loss, "log_loss", log_loss)

    def score(inter: Tensor, volume: Tensor, counts: Tensor) -> Tensor:
        return _score_loss(_ratio(2.0 * inter + s, volume + counts + d), log_loss)

    return _overlap_loss(
        loss,
        input,
        target,
        score=score,
        mode=mode,
        from_logits=from_logits,
        squared=squared,
        per_image=per_image,
        include_background=include_background,
        class_weight=class_weight,
        ignore_index=ignore_index,
        absent=absent,
        reduction=reduction,
    )


@autocast_float32
def jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = MODE.default,
    from_logits: bool = FROM_LOGITS.default,
    smooth: float = SMOOTH.default,
    smooth_denominator: float | None = None,
    squared: bool = SQUARED.default,
    per_image: bool = PER_IMAGE.default,
    include_background: bool = INCLUDE_BACKGROUND.default,
    class_weight: Tensor | None = None,
    ignore_index: int | None = None,
    absent: str = ABSENT.default,
    log_loss: bool = LOG_LOSS.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Soft Jaccard (IoU) loss, one minus

    .. math:: \text{IoU}_c = \frac{\sum_i p_{ic} y_{ic} + s}
              {\sum_i p_{ic} + \sum_i y_{ic} - \sum_i p_{ic} y_{ic} + s'}

    Options, shapes and reductions as :func:`dice_loss`; MONAI's ``DiceLoss(jaccard=True)``
    is this loss with ``smooth`` and ``smooth_denominator`` halved (see the mapping table in
    :mod:`losskit.losses.segmentation.functional`).

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])
    >>> round(LF.jaccard_loss(logits, masks).item(), 4)
    0.1875
    """
    loss = "jaccard_loss"
    s, d = _check_smoothing(loss, smooth, smooth_denominator)
    log_loss = _check_flag(loss, "log_loss", log_loss)

    def score(inter: Tensor, volume: Tensor, counts: Tensor) -> Tensor:
        return _score_loss(_ratio(inter + s, volume + counts - inter + d), log_loss)

    return _overlap_loss(
        loss,
        input,
        target,
        score=score,
        mode=mode,
        from_logits=from_logits,
        squared=squared,
        per_image=per_image,
        include_background=include_background,
        class_weight=class_weight,
        ignore_index=ignore_index,
        absent=absent,
        reduction=reduction,
    )


def _tversky_index(
    inter: Tensor, volume: Tensor, counts: Tensor, alpha: float, beta: float, s: float, d: float
) -> Tensor:
    false_positives = volume - inter
    false_negatives = counts - inter
    return _ratio(inter + s, inter + alpha * false_positives + beta * false_negatives + d)


@autocast_float32
def tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = MODE.default,
    from_logits: bool = FROM_LOGITS.default,
    alpha: float = TVERSKY_ALPHA.default,
    beta: float = TVERSKY_BETA.default,
    smooth: float = SMOOTH.default,
    smooth_denominator: float | None = None,
    per_image: bool = PER_IMAGE.default,
    include_background: bool = INCLUDE_BACKGROUND.default,
    class_weight: Tensor | None = None,
    ignore_index: int | None = None,
    absent: str = ABSENT.default,
    log_loss: bool = LOG_LOSS.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Tversky loss (Salehi et al., 2017), one minus the Tversky index

    .. math:: \text{TI}_c = \frac{TP_c + s}{TP_c + \alpha\, FP_c + \beta\, FN_c + s'},\quad
              TP = \sum_i p y,\ FP = \sum_i p (1 - y),\ FN = \sum_i (1 - p) y

    ``alpha`` weighs the false positives and ``beta`` the false negatives (both >= 0; the
    names as in MONAI and smp). Without smoothing, ``alpha = beta = 0.5`` is the Dice loss and
    ``alpha = beta = 1`` the Jaccard loss; ``beta > alpha`` favours recall, for small structures. Other options,
    shapes and reductions as :func:`dice_loss`.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])
    >>> round(LF.tversky_loss(logits, masks, alpha=0.3, beta=0.7).item(), 4)
    0.1037
    """
    loss = "tversky_loss"
    alpha = TVERSKY_ALPHA.check(loss, alpha)
    beta = TVERSKY_BETA.check(loss, beta)
    s, d = _check_smoothing(loss, smooth, smooth_denominator)
    log_loss = _check_flag(loss, "log_loss", log_loss)

    def score(inter: Tensor, volume: Tensor, counts: Tensor) -> Tensor:
        return _score_loss(_tversky_index(inter, volume, counts, alpha, beta, s, d), log_loss)

    return _overlap_loss(
        loss,
        input,
        target,
        score=score,
        mode=mode,
        from_logits=from_logits,
        squared=False,
        per_image=per_image,
        include_background=include_background,
        class_weight=class_weight,
        ignore_index=ignore_index,
        absent=absent,
        reduction=reduction,
    )


@autocast_float32
def focal_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = MODE.default,
    from_logits: bool = FROM_LOGITS.default,
    alpha: float = FT_ALPHA.default,
    beta: float = FT_BETA.default,
    gamma: float = FT_GAMMA.default,
    smooth: float = SMOOTH.default,
    smooth_denominator: float | None = None,
    per_image: bool = PER_IMAGE.default,
    include_background: bool = INCLUDE_BACKGROUND.default,
    class_weight: Tensor | None = None,
    ignore_index: int | None = None,
    absent: str = ABSENT.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Focal Tversky loss (Abraham & Khan, 2019): :math:`(1 - \text{TI}_c)^\gamma` per class,
    with the Tversky index of :func:`tversky_loss`.

    The defaults are the paper's: false negatives weigh ``beta = 0.7``, false positives
    ``alpha = 0.3``, and ``gamma = 0.75`` (the paper writes the exponent as ``1/gamma`` with
    ``gamma = 4/3``); ``gamma < 1`` raises the loss of classes that are already well segmented
    less than of the hard ones. ``gamma = 1`` is :func:`tversky_loss`. smp's ``TverskyLoss``
    raises the mean over classes to ``gamma``; this loss raises each class's term (the
    paper's form): the two agree for one class (``mode="binary"``). The power has a zero
    gradient at a perfect score (where its derivative is infinite for ``gamma < 1``).

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])
    >>> round(LF.focal_tversky_loss(logits, masks).item(), 4)
    0.1823
    """
    loss = "focal_tversky_loss"
    alpha = FT_ALPHA.check(loss, alpha)
    beta = FT_BETA.check(loss, beta)
    gamma = FT_GAMMA.check(loss, gamma)
    s, d = _check_smoothing(loss, smooth, smooth_denominator)

    def score(inter: Tensor, volume: Tensor, counts: Tensor) -> Tensor:
        base = 1.0 - _tversky_index(inter, volume, counts, alpha, beta, s, d)
        # the power's derivative at 0 is infinite for gamma < 1: 0 there, NaN stays NaN
        flat = base <= 0
        return torch.where(flat, 0.0, torch.where(flat, 1.0, base) ** gamma)

    return _overlap_loss(
        loss,
        input,
        target,
        score=score,
        mode=mode,
        from_logits=from_logits,
        squared=False,
        per_image=per_image,
        include_background=include_background,
        class_weight=class_weight,
        ignore_index=ignore_index,
        absent=absent,
        reduction=reduction,
    )


@autocast_float32
def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = MODE.default,
    from_logits: bool = FROM_LOGITS.default,
    weight_type: str = WEIGHT_TYPE.default,
    smooth: float = GDL_SMOOTH.default,
    smooth_denominator: float | None = None,
    per_image: bool = PER_IMAGE.default,
    include_background: bool = INCLUDE_BACKGROUND.default,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Generalized Dice loss (Sudre et al., 2017): one Dice over all classes, each weighted
    by the inverse of its squared target volume,

    .. math:: 1 - \frac{2 \sum_c w_c I_c + s}{\sum_c w_c (P_c + G_c) + s'},\qquad
              w_c = 1 / G_c^2

    over the batch (or per image, ``per_image``). ``weight_type``: ``"square"`` (the paper's
    ``1/G**2``), ``"simple"`` (``1/G``) or ``"uniform"`` (1). A class absent from the target
    (``G = 0``, an infinite weight) takes the largest weight of the present classes, as MONAI's
    ``GeneralizedDiceLoss`` does; with no class present every weight is 0 and the loss is
    ``1 - s/s'``. The smoothing defaults to MONAI's ``1e-5`` (the weights are small: a
    smoothing of 1 would swamp them).

    ``"none"`` returns one loss per image ``(N,)`` (``per_image``) or a 0-dim loss for the
    batch. Modes, shapes and ``ignore_index`` as :func:`dice_loss`.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])
    >>> round(LF.generalized_dice_loss(logits, masks).item(), 4)
    0.155
    """
    loss = "generalized_dice_loss"
    check_reduction(loss, reduction, REDUCTIONS)
    weight_type = _check_choice(loss, "weight_type", weight_type, ("square", "simple", "uniform"))
    s, d = _check_smoothing(loss, smooth, smooth_denominator, GDL_SMOOTH)
    per_image = _check_flag(loss, "per_image", per_image)
    include_background = _check_flag(loss, "include_background", include_background)
    px = _pixels(loss, input, target, mode, from_logits, ignore_index)
    (inter, volume, counts), counted = _entries(
        px, _overlap_sums(px, False), include_background, per_image
    )
    present = counts > 0
    if weight_type == "uniform":
        w = torch.ones_like(counts)
    else:
        safe = torch.where(present, counts, 1)
        w = torch.where(present, 1.0 / (safe * safe if weight_type == "square" else safe), 0)
        # an absent class's infinite weight becomes the largest weight of the present ones
        w = torch.where(present, w, w.amax(-1, keepdim=True))
    numerator = 2.0 * (w * inter).sum(-1) + s
    denominator = (w * (volume + counts)).sum(-1) + d
    entries = 1.0 - _ratio(numerator, denominator)
    # one entry per image (or for the batch): counted when any of its pixels is
    out = _reduce_entries(
        entries[..., None], counted.any(-1, keepdim=True), None, per_image, reduction, input.dtype
    )
    return out.squeeze(-1) if reduction == "none" else out


# ----------------------------------------------------------------------------------- Lovász

#: elements of one group of rows (classes) sorted together: a few MiB of temporaries at a time
_LOVASZ_GROUP_ELEMENTS = 1 << 19
#: float32 bit patterns of the errors, read as integers: +inf is the largest non-NaN one
_INF_BITS = 0x7F800000
#: the sort key of an ignored pixel: after every error, NaN and inf included (fits in int32)
_IGNORED_RANK = _INF_BITS + 2
#: torch sorts a 1-D integer tensor by radix from this many elements (its grain size)
_RADIX_MIN = 1 << 15


def _descending_order(errors: Tensor, valid: Tensor | None, fill: float) -> Tensor:
    """``(R, L)`` indices that sort each row of ``errors`` (``(R, L)``) by decreasing error,
    the pixels of ``valid=False`` last in their row, ties in the pixels' order (stable).

    Non-negative float32 errors on the CPU are sorted as integers: their bit patterns order like
    the values, so ``inf - bits`` sorts ascending with the largest error first (NaN errors
    first, as in a float sort: their loss is NaN wherever they go). torch sorts 1-D integer
    tensors of at least 32768 elements by radix (shorter ones and 2-D rows by comparisons),
    and each radix pass is a parallel region. So, measured on one thread (ms, (rows, length)):
    rows of 32768 pixels or more one at a time as int32 (9.5 at (16, 32768) against 23.5 for
    one radix sort of ``row << 31 | key`` as int64, twice the passes over twice the bytes, and
    36 for a sort of the rows), shorter rows as that one int64 sort (6.7 at (21, 8192) against
    10.9 and 10.3); on two loaded threads, where radix passes wait on each other (276 ms for
    the int64 sort at (21, 8192)), shorter rows one at a time (20) and longer ones as a sort of
    the rows (72 at (16, 32768) against 104 and 152). Other errors (float64, the hinge's
    signed ones, accelerators) take the float sort of the rows, ignored ones set to
    ``fill``."""
    rows, length = errors.shape
    if errors.dtype == torch.float32 and fill == -1.0 and errors.device.type == "cpu":
        bits = errors.view(torch.int32).clamp(0, _INF_BITS + 1)
        rank = torch.sub(_INF_BITS + 1, bits)
        if valid is not None:
            rank = rank.masked_fill_(~valid, _IGNORED_RANK)
        radix, several = length >= _RADIX_MIN, _several_threads()
        if rows > 1 and not radix and not several:  # one radix sort of the rows' keys together
            offsets = torch.arange(rows, device=rank.device)[:, None]
            keys = rank.to(torch.int64).add_(offsets << 31)
            flat = torch.sort(keys.reshape(-1), stable=True).indices.view(rows, length)
            return flat.sub_(offsets * length)
        if radix and several:
            return torch.sort(rank, dim=-1, stable=True).indices
        return torch.stack([torch.sort(row, stable=True).indices for row in rank.unbind(0)])
    key = errors if valid is None else torch.where(valid, errors, fill)
    return key.sort(dim=-1, descending=True, stable=True).indices


def _lovasz_weights(errors: Tensor, labels: Tensor, valid: Tensor | None, fill: float) -> Tensor:
    """The gradient of the Lovász extension of the Jaccard loss (Berman et al.'s Algorithm 1)
    for each row of ``errors``, in the pixels' own order.

    With the errors of a row sorted in decreasing order and ``labels`` (0/1) in that order, the
    Jaccard loss of the top-k pixels is :math:`1 - (G - F_k)/(G + B_k)` (``F_k``, ``B_k``:
    foreground and background pixels among them); its increments, put back in place, weigh the
    errors. Ignored pixels sort last, where the increments are 0."""
    with torch.no_grad():
        order = _descending_order(errors, valid, fill)
        fg = labels.gather(1, order).to(errors.dtype)
        background = 1.0 - fg
        if valid is not None:
            background = background.mul_(valid.gather(1, order))
        total = fg.sum(-1, keepdim=True)
        intersection = total - fg.cumsum(-1)
        union = background.cumsum(-1).add_(total)
        # union counts pixels: >= 1 wherever a pixel counts, 0 only in an all-ignored row
        jaccard = intersection.div_(union.clamp_min_(1.0)).neg_().add_(1.0)
        steps = torch.diff(jaccard, dim=-1, prepend=torch.zeros_like(jaccard[:, :1]))
        return torch.empty_like(steps).scatter_(1, order, steps)


class _RowGroups:
    """The rows the Lovász losses sort, taken a group at a time from ``(N, C, S)`` tensors: one
    row per image and class (``per_image``), else one per class over the batch."""

    def __init__(self, n: int, c: int, s: int, per_image: bool) -> None:
        self.n, self.c, self.s, self.per_image = n, c, s, per_image
        self.rows, self.length = (n * c, s) if per_image else (c, n * s)
        self.step = max(1, _LOVASZ_GROUP_ELEMENTS // max(self.length, 1))

    def __iter__(self):
        return ((r, min(r + self.step, self.rows)) for r in range(0, self.rows, self.step))

    def take(self, t: Tensor, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of an ``(N, C, S)`` (or broadcastable ``(N, 1, S)``) tensor."""
        if self.per_image:
            images = torch.arange(start, stop, device=t.device) // self.c
            if t.shape[1] == 1:
                return t[images, 0]
            return t.expand(self.n, self.c, self.s).reshape(self.rows, self.s)[start:stop]
        t = t.expand(self.n, self.c, self.s) if t.shape[1] == 1 else t
        return t[:, start:stop].transpose(0, 1).reshape(stop - start, self.length)

    def put(self, out: Tensor, start: int, stop: int, rows: Tensor) -> None:
        """Write rows ``start:stop`` back into an ``(N, C, S)`` tensor."""
        if self.per_image:
            out.view(self.rows, self.s)[start:stop] = rows
        else:
            out[:, start:stop] = rows.reshape(stop - start, self.n, self.s).transpose(0, 1)


def _class_labels(index: Tensor, valid: Tensor | None, groups: _RowGroups, start: int, stop: int):
    """The 0/1 foreground of rows ``start:stop`` (class ``c`` against the class indices),
    without the ignored pixels."""
    if groups.per_image:
        rows = torch.arange(start, stop, device=index.device)
        labels = index[rows // groups.c] == (rows % groups.c)[:, None]
    else:
        classes = torch.arange(start, stop, device=index.device)
        labels = (index[None] == classes[:, None, None]).reshape(stop - start, groups.length)
    if valid is not None:
        labels &= groups.take(valid[:, None], start, stop)
    return labels


def _lovasz_softmax_eager(
    x: Tensor, index: Tensor, valid: Tensor | None, from_logits: bool, per_image: bool
) -> Tensor:
    """The Lovász-softmax entries by differentiable torch operations: the double-backward path
    of :class:`_LovaszSoftmax` (the weights are constants: the sort order is piecewise
    constant)."""
    n, c, s = x.shape
    groups = _RowGroups(n, c, s, per_image)
    p = _probabilities(x, "multiclass", from_logits, compute_dtype(x.dtype))
    entries = []
    for start, stop in groups:
        labels = _class_labels(index, valid, groups, start, stop)
        errors = (labels.to(p.dtype) - groups.take(p, start, stop)).abs()
        row_valid = None if valid is None else groups.take(valid[:, None], start, stop)
        weights = _lovasz_weights(errors.detach(), labels, row_valid, -1.0)
        if row_valid is not None:
            errors = torch.where(row_valid, errors, 0)
        entries.append((errors * weights).sum(-1))
    return torch.cat(entries) if entries else p.new_zeros(0)


class _LovaszSoftmax(LossFunction):
    """The Lovász-softmax entries, one per row, sorted a group of rows at a time. Keeps, for
    each pixel and row, the Lovász weight times the sign of ``p - y`` (the derivative of the
    error ``|y - p|``): the backward is then the softmax and four passes over the pixels, no
    sort and no loop over the groups."""

    @staticmethod
    def forward(
        ctx, x: Tensor, index: Tensor, valid: Tensor | None, from_logits: bool, per_image: bool
    ) -> Tensor:
        n, c, s = x.shape
        groups = _RowGroups(n, c, s, per_image)
        dtype = compute_dtype(x.dtype)
        p = _probabilities(x, "multiclass", from_logits, dtype)
        entries = torch.zeros(groups.rows, dtype=dtype, device=x.device)
        # d entry / d p, in the pixels' layout (N, C, S)
        slopes = torch.empty(n, c, s, dtype=dtype, device=x.device)
        for start, stop in groups:
            labels = _class_labels(index, valid, groups, start, stop)
            errors = groups.take(p, start, stop) - labels.to(dtype)
            sign = torch.sign(errors)  # d |y - p| / d p
            errors = errors.abs_()
            row_valid = None if valid is None else groups.take(valid[:, None], start, stop)
            weights = _lovasz_weights(errors, labels, row_valid, -1.0)
            if row_valid is not None:
                errors = errors.masked_fill_(~row_valid, 0)
            entries[start:stop] = (errors * weights).sum(-1)
            # the weights are 0 at ignored pixels
            groups.put(slopes, start, stop, weights.mul_(sign))
        ctx.save_for_backward(x, index, valid, slopes)
        ctx.from_logits, ctx.per_image = from_logits, per_image
        return entries

    @staticmethod
    @differentiable_backward(
        lambda ctx, saved: _lovasz_softmax_eager(*saved[:3], ctx.from_logits, ctx.per_image)
    )
    def backward(ctx, grad_entries: Tensor):
        x, _, valid, slopes = ctx.saved_tensors
        n, c, _ = x.shape
        g = grad_entries.to(slopes.dtype)
        grad = slopes * (g.view(n, c, 1) if ctx.per_image else g.view(1, c, 1))
        if ctx.from_logits:  # softmax: p (g - sum_k p_k g_k), as p g - p (sum_k p_k g_k)
            p = torch.softmax(x, 1, dtype=slopes.dtype)
            grad = grad.mul_(p)
            grad.addcmul_(p, grad.sum(1, keepdim=True), value=-1.0)
        if valid is not None:
            # a NaN at an ignored pixel stays out of the gradient as out of the loss
            grad = grad.masked_fill_(~valid[:, None], 0)
        return grad.to(x.dtype), None, None, None, None


@autocast_float32
def lovasz_softmax_loss(
    input: Tensor,
    target: Tensor,
    *,
    from_logits: bool = FROM_LOGITS.default,
    classes: str = CLASSES.default,
    per_image: bool = PER_IMAGE.default,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Lovász-softmax loss (Berman et al., CVPR 2018): the Lovász extension of the Jaccard
    loss of each class, a convex surrogate that optimises the mean IoU directly,

    .. math:: \ell_c = \sum_k e_{(k)}\, \big(J_c(k) - J_c(k-1)\big),\qquad
              e_i = |y_{ic} - p_{ic}|

    with the errors sorted in decreasing order and :math:`J_c(k)` the Jaccard loss of
    predicting class ``c`` at the ``k`` pixels of largest error. ``classes="present"`` (the
    paper's default) averages the classes present in the target, ``"all"`` every class.
    ``per_image`` computes it per image and averages the images (an image whose pixels are all
    ignored is left out); otherwise over the whole batch.

    Shapes: ``input`` ``(N, C, *spatial)`` logits (``from_logits``) or probabilities; ``target``
    class indices ``(N, *spatial)``. ``"none"`` returns ``(N, C)`` (``per_image``) or ``(C,)``,
    0 for the classes not counted.

    A custom autograd Function: a few classes are sorted at a time (float32 errors as integer
    keys, which torch sorts by radix), it keeps only its inputs and the Lovász weights for the
    backward, which needs no sort. The gradient flows through the errors only (the sort order
    is piecewise constant), so second derivatives are exact (through an eager formula).

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [0.0, 2.0]]]])
    >>> masks = torch.tensor([[[0, 1], [0, 1]]])
    >>> round(LF.lovasz_softmax_loss(logits, masks).item(), 4)
    0.2088
    """
    loss = "lovasz_softmax_loss"
    check_reduction(loss, reduction, REDUCTIONS)
    classes = _check_choice(loss, "classes", classes, ("present", "all"))
    per_image = _check_flag(loss, "per_image", per_image)
    px = _pixels(
        loss, input, target, "multiclass", from_logits, ignore_index, dense_multiclass=False
    )
    assert px.index is not None
    n, c = px.x.shape[:2]
    entries = _LovaszSoftmax.apply(px.x, px.index, px.valid, px.from_logits, per_image)
    if classes == "present":
        volumes = torch.zeros(n, c, dtype=torch.int64, device=px.x.device)
        ones = torch.ones_like(px.index) if px.valid is None else px.valid.to(torch.int64)
        counted = volumes.scatter_add_(1, px.index, ones) > 0
    else:
        counted = _counted(px)
    if per_image:
        entries = entries.reshape(n, c)
    else:
        counted = counted.any(0)
    return _reduce_entries(entries, counted, None, per_image, reduction, input.dtype)


@autocast_float32
def lovasz_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    per_image: bool = PER_IMAGE.default,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Lovász hinge loss (Berman et al., CVPR 2018) for binary and multi-label masks: the
    Lovász extension of the Jaccard loss applied to the hinge errors of the logits,

    .. math:: \ell_c = \sum_k \max(e_{(k)}, 0)\,\big(J_c(k) - J_c(k-1)\big),\qquad
              e_i = 1 - x_{ic}\,(2 y_{ic} - 1)

    with the errors sorted in decreasing order, per channel ``c`` (each channel is its own
    binary problem) over the batch, or per image and channel (``per_image``; an image whose
    pixels are all ignored is left out of the mean).

    Shapes: ``input`` ``(N, C, *spatial)`` logits; ``target`` 0/1 labels of the same shape (or
    ``(N, *spatial)`` for one channel), floating, integer or bool; elements equal to
    ``ignore_index`` count nowhere. ``"none"`` returns ``(N, C)`` (``per_image``) or ``(C,)``.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[[[2.0, -1.0], [0.5, -0.5]]]])
    >>> masks = torch.tensor([[[1, 0], [0, 0]]])
    >>> round(LF.lovasz_hinge_loss(logits, masks).item(), 4)
    0.8333
    """
    loss = "lovasz_hinge_loss"
    check_reduction(loss, reduction, REDUCTIONS)
    per_image = _check_flag(loss, "per_image", per_image)
    input = check_floating(loss, "input", input)
    mode = "binary" if input.dim() >= 2 and input.shape[1] == 1 else "multilabel"
    px = _pixels(loss, input, target, mode, True, ignore_index, hard_labels=True)
    assert px.dense is not None
    n, c, s = px.x.shape
    groups = _RowGroups(n, c, s, per_image)
    errors = 1.0 - px.x.to(px.dtype) * (2.0 * px.dense - 1.0)
    entries = []
    for start, stop in groups:
        rows = groups.take(errors, start, stop)
        labels = groups.take(px.dense, start, stop)
        valid = None if px.valid is None else groups.take(px.valid, start, stop)
        weights = _lovasz_weights(rows.detach(), labels, valid, -torch.inf)
        if valid is not None:
            rows = torch.where(valid, rows, 0)
        entries.append((torch.relu(rows) * weights).sum(-1))
    entries = torch.cat(entries) if entries else errors.new_zeros(0)
    counted = _counted(px)
    if per_image:
        entries = entries.reshape(n, c)
    else:
        counted = counted.any(0)
    return _reduce_entries(entries, counted, None, per_image, reduction, input.dtype)
