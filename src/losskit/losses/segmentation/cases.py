"""Fixtures of the segmentation entries: reference formulas, sample, error and benchmark inputs.
Loaded on demand by the tests, the benchmark harness and ``losskit tour``.

Three kinds of reference, all written from the papers and the libraries' documentation:

* the catalog's references, in losskit's own options: the overlap losses over a dense one-hot
  target (the formula losskit avoids), the Lovász losses by Berman et al.'s per-class sort;
* MONAI's and segmentation_models_pytorch's published formulas, in their own arguments
  (``monai_*``, ``smp_*``), for the parity tests of the mapping table;
* the benchmark baselines: the one-hot Dice a user would write, and the sort-based
  Lovász-softmax of the paper, one class at a time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

_EXTREME = frozenset({"extreme"})
_IGNORE = 255

# ------------------------------------------------------------------------------ references


def _dense(
    input: Tensor, target: Tensor, mode: str, from_logits: bool, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(p, y, mask)``, each ``(N, C, S)``: probabilities, the dense (one-hot) target with
    ignored elements zeroed, and which elements count."""
    n, c = input.shape[:2]
    s = math.prod(input.shape[2:])
    x = input.reshape(n, c, s)
    if mode == "multiclass":
        p = torch.softmax(x, 1) if from_logits else x
        if target.is_floating_point():
            assert target.shape == input.shape
            return p, target.reshape(n, c, s), torch.ones_like(p, dtype=torch.bool)
        assert target.shape == input.shape[:1] + input.shape[2:]
        t = target.reshape(n, s).long()
        mask = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        y = F.one_hot(torch.where(mask, t, 0), c).transpose(1, 2).to(p.dtype)
        mask = mask[:, None, :].expand(n, c, s)
    else:
        assert mode != "binary" or c == 1
        assert target.shape == input.shape or (
            mode == "binary" and target.shape == input.shape[:1] + input.shape[2:]
        )
        p = torch.sigmoid(x) if from_logits else x
        y = target.reshape(n, c, s)
        mask = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
        y = y.to(p.dtype)
    return torch.where(mask, p, 0), torch.where(mask, y, 0), mask


def _reduce(
    entries: Tensor, counted: Tensor, weight: Tensor | None, per_image: bool, reduction: str
) -> Tensor:
    """losskit's rule written out: weighted entries; the weighted class mean per image, then
    the mean over the images that count; 0 when nothing counts."""
    w = torch.ones(entries.shape[-1:], dtype=entries.dtype) if weight is None else weight
    assert w.shape == entries.shape[-1:]
    values = torch.where(counted, entries * w, 0)
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    assert reduction == "mean"
    weights = counted * w
    if not per_image:
        total = weights.sum()
        return values.sum() / total if total != 0 else torch.zeros((), dtype=values.dtype)
    acc, images = torch.zeros((), dtype=values.dtype), 0
    for v, wn in zip(values, weights, strict=True):
        if wn.sum() > 0:
            acc = acc + v.sum() / wn.sum()
            images += 1
    return acc / images if images else acc


def _overlap_reference(
    score: Callable[[Tensor, Tensor, Tensor, Tensor, dict], Tensor],
) -> Callable[..., Tensor]:
    """A catalog reference for the per-class overlap losses: sums over the one-hot target, then
    ``score(I, P, G, counts_present, options)`` per entry, in float64."""

    def reference(
        input: Tensor,
        target: Tensor,
        *,
        mode: str = "multiclass",
        from_logits: bool = True,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        class_weight: Tensor | None = None,
        ignore_index: int | None = None,
        absent: str = "smooth",
        reduction: str = "mean",
        **options,
    ) -> Tensor:
        assert reduction in ("mean", "sum", "none") and absent in ("smooth", "zero")
        assert mode in ("multiclass", "multilabel", "binary")
        x = input.double()
        y = target.double() if target.is_floating_point() else target
        p, y, mask = _dense(x, y, mode, from_logits, ignore_index)
        inter = (p * y).sum(-1)
        volume = (p * p if squared else p).sum(-1)
        counts = (y * y if squared else y).sum(-1)
        counted = mask.any(-1)
        if not include_background and x.shape[1] > 1:
            inter, volume, counts, counted = (t[:, 1:] for t in (inter, volume, counts, counted))
        if not per_image:
            inter, volume, counts = (t.sum(0) for t in (inter, volume, counts))
            counted = counted.any(0)
        # squared sums of non-negative targets are 0 exactly where the plain sums are
        present = counts > 0
        entries = score(inter, volume, counts, present, options)
        if absent == "zero":
            entries = torch.where(present, entries, 0)
        w = None if class_weight is None else class_weight.double()
        return _reduce(entries, counted, w, per_image, reduction).to(input.dtype)

    return reference


def _smoothing(options: dict, default: float = 1.0) -> tuple[float, float]:
    s = options.get("smooth", default)
    d = options.get("smooth_denominator")
    return s, s if d is None else d


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` and 1 where ``den`` is 0 (losskit's rule for empty against empty)."""
    out = num / den
    return torch.where(den == 0, 1.0, out)


def _finish(score: Tensor, options: dict) -> Tensor:
    return -torch.log(score.clamp_min(1e-7)) if options.get("log_loss") else 1 - score


def _dice_entries(inter, volume, counts, present, options):
    s, d = _smoothing(options)
    return _finish(_ratio(2 * inter + s, volume + counts + d), options)


def _jaccard_entries(inter, volume, counts, present, options):
    s, d = _smoothing(options)
    return _finish(_ratio(inter + s, volume + counts - inter + d), options)


def _tversky(inter, volume, counts, options, alpha, beta):
    s, d = _smoothing(options)
    a, b = options.get("alpha", alpha), options.get("beta", beta)
    return _ratio(inter + s, inter + a * (volume - inter) + b * (counts - inter) + d)


def _tversky_entries(inter, volume, counts, present, options):
    return _finish(_tversky(inter, volume, counts, options, 0.5, 0.5), options)


def _focal_tversky_entries(inter, volume, counts, present, options):
    base = 1 - _tversky(inter, volume, counts, options, 0.3, 0.7)
    return base.clamp_min(0) ** options.get("gamma", 0.75)


dice_reference = _overlap_reference(_dice_entries)
jaccard_reference = _overlap_reference(_jaccard_entries)
tversky_reference = _overlap_reference(_tversky_entries)
focal_tversky_reference = _overlap_reference(_focal_tversky_entries)


def generalized_dice_reference(
    input: Tensor,
    target: Tensor,
    *,
    mode: str = "multiclass",
    from_logits: bool = True,
    weight_type: str = "square",
    smooth: float = 1e-5,
    smooth_denominator: float | None = None,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Sudre et al.'s generalized Dice with MONAI's rule for absent classes (an infinite weight
    becomes the largest finite one of its image, or of the batch)."""
    assert weight_type in ("square", "simple", "uniform")
    x = input.double()
    y = target.double() if target.is_floating_point() else target
    p, y, mask = _dense(x, y, mode, from_logits, ignore_index)
    inter, volume, counts, counted = (p * y).sum(-1), p.sum(-1), y.sum(-1), mask.any(-1)
    if not include_background and x.shape[1] > 1:
        inter, volume, counts, counted = (t[:, 1:] for t in (inter, volume, counts, counted))
    if not per_image:
        inter, volume, counts = (t.sum(0)[None] for t in (inter, volume, counts))
        counted = counted.any(0)[None]
    power = {"square": 2, "simple": 1, "uniform": 0}[weight_type]
    w = 1 / counts**power
    finite = torch.where(torch.isinf(w), 0, w)
    w = torch.where(torch.isinf(w), finite.amax(-1, keepdim=True), w)
    s = smooth
    d = s if smooth_denominator is None else smooth_denominator
    numerator = 2 * (w * inter).sum(-1) + s
    denominator = (w * (volume + counts)).sum(-1) + d
    entries = 1 - _ratio(numerator, denominator)
    out = _reduce(entries[:, None], counted.any(-1)[:, None], None, per_image, reduction)
    if reduction == "none":
        out = out[:, 0] if per_image else out[0, 0]
    return out.to(input.dtype)


def lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """Berman et al.'s gradient of the Lovász extension w.r.t. sorted errors (their
    Algorithm 1): increments of the Jaccard loss of the top-k set."""
    total = fg_sorted.sum()
    intersection = total - fg_sorted.cumsum(0)
    union = total + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    if len(fg_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def _lovasz_flat(errors: Tensor, fg: Tensor) -> Tensor:
    sorted_errors, order = torch.sort(errors, descending=True)
    return torch.dot(sorted_errors, lovasz_grad(fg[order]))


def lovasz_softmax_reference(
    input: Tensor,
    target: Tensor,
    *,
    from_logits: bool = True,
    classes: str = "present",
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Berman et al.'s Lovász-softmax: ignored pixels removed, then one sort per class (and per
    image with ``per_image``); the entries reduced by losskit's rule."""
    assert classes in ("present", "all") and not target.is_floating_point()
    assert target.shape == input.shape[:1] + input.shape[2:]
    n, c = input.shape[:2]
    s = math.prod(input.shape[2:])
    x = input.double().reshape(n, c, s)
    probs = torch.softmax(x, 1) if from_logits else x
    labels = target.reshape(n, s).long()
    if ignore_index is None:
        assert labels.numel() == 0 or (labels.min() >= 0 and labels.max() < c)
    if per_image:
        groups = [(probs[i : i + 1], labels[i : i + 1]) for i in range(n)]
    else:
        groups = [(probs, labels)]
    zero = torch.zeros((), dtype=torch.float64)
    entries, counted = [], []
    for prob, lab in groups:
        flat_p = prob.transpose(1, 2).reshape(-1, c)
        flat_l = lab.reshape(-1)
        if ignore_index is not None:
            keep = flat_l != ignore_index
            flat_p, flat_l = flat_p[keep], flat_l[keep]
        assert flat_l.numel() == 0 or (flat_l.min() >= 0 and flat_l.max() < c)
        row, row_counted = [], []
        for k in range(c):
            fg = (flat_l == k).double()
            present = bool(fg.sum() > 0)
            counts = present if classes == "present" else flat_l.numel() > 0
            row.append(_lovasz_flat((fg - flat_p[:, k]).abs(), fg) if counts else zero)
            row_counted.append(counts)
        entries.append(torch.stack(row))
        counted.append(torch.tensor(row_counted))
    e, k = torch.stack(entries), torch.stack(counted)
    if not per_image:
        e, k = e[0], k[0]
    return _reduce(e, k, None, per_image, reduction).to(input.dtype)


def lovasz_hinge_reference(
    input: Tensor,
    target: Tensor,
    *,
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Berman et al.'s Lovász hinge, one sort per channel (and per image with ``per_image``),
    ignored elements removed; the entries reduced by losskit's rule."""
    n, c = input.shape[:2]
    assert target.shape == input.shape or (
        c == 1 and target.shape == input.shape[:1] + input.shape[2:]
    )
    s = math.prod(input.shape[2:])
    x = input.double().reshape(n, c, s)
    y = target.reshape(n, c, s)
    images = [slice(i, i + 1) for i in range(n)] if per_image else [slice(None)]
    entries, counted = [], []
    for rows in images:
        row, row_counted = [], []
        for k in range(c):
            logits, labels = x[rows, k].reshape(-1), y[rows, k].reshape(-1)
            if ignore_index is not None:
                keep = labels != ignore_index
                logits, labels = logits[keep], labels[keep]
            labels = labels.double()
            signs = 2 * labels - 1
            errors = 1 - logits * signs
            sorted_errors, order = torch.sort(errors, descending=True)
            value = torch.dot(F.relu(sorted_errors), lovasz_grad(labels[order]))
            row.append(value if labels.numel() else torch.zeros((), dtype=torch.float64))
            row_counted.append(labels.numel() > 0)
        entries.append(torch.stack(row))
        counted.append(torch.tensor(row_counted))
    e, k = torch.stack(entries), torch.stack(counted)
    if not per_image:
        e, k = e[0], k[0]
    return _reduce(e, k, None, per_image, reduction).to(input.dtype)


def in_float64(reference: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``reference`` on float64 copies of every floating tensor, returned in the input's dtype."""

    def upcast(value):
        return value.double() if isinstance(value, Tensor) and value.is_floating_point() else value

    def wrapped(input: Tensor, target: Tensor, **kwargs) -> Tensor:
        out = reference(upcast(input), upcast(target), **{k: upcast(v) for k, v in kwargs.items()})
        return out.to(input.dtype)

    wrapped.__name__ = reference.__name__
    return wrapped


# ------------------------------------------------------------- MONAI's and smp's formulas


def _monai_prepare(input, target, sigmoid, softmax, to_onehot_y, include_background):
    """MONAI's preprocessing: activation, one-hot of a ``(N, 1, *spatial)`` index target,
    background channel dropped from both."""
    if sigmoid:
        input = torch.sigmoid(input)
    if softmax:
        input = torch.softmax(input, 1)
    if to_onehot_y:
        target = F.one_hot(target[:, 0].long(), input.shape[1]).movedim(-1, 1).to(input.dtype)
    if not include_background and input.shape[1] > 1:
        input, target = input[:, 1:], target[:, 1:]
    return input, target.to(input.dtype)


def _monai_reduce(f: Tensor, reduction: str) -> Tensor:
    return {"mean": f.mean, "sum": f.sum}.get(reduction, lambda: f)()


def monai_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    squared_pred: bool = False,
    jaccard: bool = False,
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    weight: Tensor | None = None,
) -> Tensor:
    """monai.losses.DiceLoss as its documentation states it: per image and class (``batch``:
    per class over the batch), ``f = 1 - (2 I + smooth_nr) / (P + G + smooth_dr)`` with the
    denominator ``2 (P + G - I)`` for ``jaccard``; ``weight`` multiplies each class's ``f``
    before the reduction. ``"none"`` is returned flattened, ``(N, C)`` or ``(C,)``."""
    p, y = _monai_prepare(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0, *axes]
    inter = (p * y).sum(axes)
    ground = (y * y if squared_pred else y).sum(axes)
    pred = (p * p if squared_pred else p).sum(axes)
    denominator = ground + pred
    if jaccard:
        denominator = 2.0 * (denominator - inter)
    f = 1.0 - (2.0 * inter + smooth_nr) / (denominator + smooth_dr)
    if weight is not None:
        f = f * weight
    return _monai_reduce(f, reduction)


def monai_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    alpha: float = 0.5,
    beta: float = 0.5,
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
) -> Tensor:
    """monai.losses.TverskyLoss: ``1 - (TP + smooth_nr) / (TP + alpha FP + beta FN +
    smooth_dr)`` with ``FP = sum p (1 - y)`` and ``FN = sum (1 - p) y``."""
    p, y = _monai_prepare(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0, *axes]
    tp = (p * y).sum(axes)
    fp = alpha * (p * (1 - y)).sum(axes)
    fn = beta * ((1 - p) * y).sum(axes)
    f = 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)
    return _monai_reduce(f, reduction)


def monai_generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    include_background: bool = True,
    to_onehot_y: bool = False,
    sigmoid: bool = False,
    softmax: bool = False,
    w_type: str = "square",
    reduction: str = "mean",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
) -> Tensor:
    """monai.losses.GeneralizedDiceLoss: class weights ``1/G**2`` (``w_type``), infinite ones
    replaced by the largest weight of the image (of the batch with ``batch``)."""
    p, y = _monai_prepare(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0, *axes]
    inter = (p * y).sum(axes)
    ground, pred = y.sum(axes), p.sum(axes)
    w = {"square": 1 / ground**2, "simple": 1 / ground, "uniform": torch.ones_like(ground)}[w_type]
    infinite = torch.isinf(w)
    w = torch.where(infinite, 0, w)
    w = w + infinite * w.amax(-1, keepdim=True)
    numerator = 2.0 * (inter * w).sum(-1) + smooth_nr
    denominator = ((ground + pred) * w).sum(-1) + smooth_dr
    return _monai_reduce(1.0 - numerator / denominator, reduction)


def monai_dice_ce_loss(
    input: Tensor,
    target: Tensor,
    *,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    **dice_options,
) -> Tensor:
    """monai.losses.DiceCELoss with softmax and a ``(N, 1, *spatial)`` index target:
    ``lambda_dice * DiceLoss + lambda_ce * CrossEntropyLoss(input, target[:, 0])``."""
    dice = monai_dice_loss(input, target, softmax=True, to_onehot_y=True, **dice_options)
    ce = F.cross_entropy(input, target[:, 0].long())
    return lambda_dice * dice + lambda_ce * ce


def _smp_flatten(input, target, mode, from_logits, ignore_index):
    """smp's preparation: activation, ``(N, C, HW)`` views, one-hot of multiclass targets,
    ignored pixels zeroed in both prediction and target."""
    n, c = input.shape[:2]
    if from_logits:
        input = input.log_softmax(1).exp() if mode == "multiclass" else F.logsigmoid(input).exp()
    p = input.reshape(n, c, -1)
    if mode == "multiclass":
        t = target.reshape(n, -1)
        mask = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        y = F.one_hot((t * mask).long(), c).transpose(1, 2) * mask[:, None]
        p = p * mask[:, None]
    else:
        y = target.reshape(n, c, -1)
        if ignore_index is not None:
            mask = y != ignore_index
            p, y = p * mask, y * mask
    return p, y.to(p.dtype)


def _smp_finish(scores, y, log_loss, eps, classes):
    loss = -torch.log(scores.clamp_min(eps)) if log_loss else 1.0 - scores
    loss = loss * (y.sum((0, 2)) > 0).to(loss.dtype)
    if classes is not None:
        loss = loss[list(classes)]
    return loss


def smp_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    classes: Sequence[int] | None = None,
    log_loss: bool = False,
    from_logits: bool = True,
    smooth: float = 0.0,
    ignore_index: int | None = None,
    eps: float = 1e-7,
) -> Tensor:
    """segmentation_models_pytorch.losses.DiceLoss: per class over the whole batch,
    ``(2 I + smooth) / max(P + G + smooth, eps)``; classes absent from the target score 0; the
    mean over the selected classes."""
    p, y = _smp_flatten(input, target, mode, from_logits, ignore_index)
    inter, cardinality = (p * y).sum((0, 2)), (p + y).sum((0, 2))
    scores = (2.0 * inter + smooth) / (cardinality + smooth).clamp_min(eps)
    return _smp_finish(scores, y, log_loss, eps, classes).mean()


def smp_jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    classes: Sequence[int] | None = None,
    log_loss: bool = False,
    from_logits: bool = True,
    smooth: float = 0.0,
    eps: float = 1e-7,
) -> Tensor:
    """segmentation_models_pytorch.losses.JaccardLoss: ``(I + smooth) / max(P + G - I +
    smooth, eps)``, otherwise as DiceLoss."""
    p, y = _smp_flatten(input, target, mode, from_logits, None)
    inter, cardinality = (p * y).sum((0, 2)), (p + y).sum((0, 2))
    scores = (inter + smooth) / (cardinality - inter + smooth).clamp_min(eps)
    return _smp_finish(scores, y, log_loss, eps, classes).mean()


def smp_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    classes: Sequence[int] | None = None,
    log_loss: bool = False,
    from_logits: bool = True,
    smooth: float = 0.0,
    ignore_index: int | None = None,
    eps: float = 1e-7,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
) -> Tensor:
    """segmentation_models_pytorch.losses.TverskyLoss: ``(I + smooth) / max(I + alpha FP +
    beta FN + smooth, eps)``; the mean over classes raised to ``gamma``."""
    p, y = _smp_flatten(input, target, mode, from_logits, ignore_index)
    inter = (p * y).sum((0, 2))
    fp, fn = (p * (1.0 - y)).sum((0, 2)), ((1 - p) * y).sum((0, 2))
    scores = (inter + smooth) / (inter + alpha * fp + beta * fn + smooth).clamp_min(eps)
    return _smp_finish(scores, y, log_loss, eps, classes).mean() ** gamma


def smp_lovasz_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    per_image: bool = False,
    ignore_index: int | None = None,
    from_logits: bool = True,
) -> Tensor:
    """segmentation_models_pytorch.losses.LovaszLoss: the Lovász hinge for ``"binary"`` (all
    pixels of an image, or of the batch, in one sort), the Lovász-softmax over the classes
    present for ``"multiclass"``; per image, the mean over images (an image with nothing to
    count adds 0)."""
    n = input.shape[0]
    groups = [slice(i, i + 1) for i in range(n)] if per_image else [slice(None)]
    losses = []
    for g in groups:
        if mode == "binary":
            logits, labels = input[g].reshape(-1), target[g].reshape(-1)
            if ignore_index is not None:
                keep = labels != ignore_index
                logits, labels = logits[keep], labels[keep]
            if labels.numel() == 0:
                losses.append(logits.sum() * 0)
                continue
            labels = labels.to(logits.dtype)
            errors = 1.0 - logits * (2.0 * labels - 1.0)
            sorted_errors, order = torch.sort(errors, descending=True)
            losses.append(torch.dot(F.relu(sorted_errors), lovasz_grad(labels[order])))
        else:
            probs = input[g].softmax(1) if from_logits else input[g]
            c = probs.shape[1]
            flat_p = probs.movedim(1, -1).reshape(-1, c)
            flat_l = target[g].reshape(-1)
            if ignore_index is not None:
                keep = flat_l != ignore_index
                flat_p, flat_l = flat_p[keep], flat_l[keep]
            per_class = []
            for k in range(c):
                fg = (flat_l == k).to(flat_p.dtype)
                if fg.sum() == 0:
                    continue
                per_class.append(_lovasz_flat((fg - flat_p[:, k]).abs(), fg))
            losses.append(torch.stack(per_class).mean() if per_class else flat_p.sum() * 0)
    return torch.stack(losses).mean()


# ------------------------------------------------------------------------------ samples


def _with_ignored(target: Tensor, every: int = 4) -> Tensor:
    target = target.clone()
    target.reshape(-1)[::every] = _IGNORE
    return target


def _index_target(make: TensorMaker, c: int, shape: Sequence[int], absent: int | None = None):
    """Class indices over ``shape``; class ``absent`` (if any) replaced by its neighbour."""
    t = make.randint(c, shape)
    if absent is not None:
        t = torch.where(t == absent, (absent + 1) % c, t)
    return t


def _overlap_samples(params: Sequence[dict], *, squared: bool = True, log_loss: bool = True):
    """Samples of the per-class overlap losses: 2-D and 3-D index targets (the loss's own
    ``params`` cycled through them), every counting option, probability and multi-label
    targets, binary masks, an absent class, all-ignored and empty batches, extreme logits."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        yield SampleInput((make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))), {}, "2-D")
        cycle = itertools.cycle(params)
        counting: list[dict] = [
            {"per_image": True},
            {"smooth": 0.5, "smooth_denominator": 2.0},
            {"smooth": 0.0},
            {"include_background": False},
            {"class_weight": make.uniform(3, low=0.2, high=2.0)},
            {"per_image": True, "class_weight": make.uniform(3, low=0.2, high=2.0)},
            {"ignore_index": _IGNORE},
            {"ignore_index": _IGNORE, "per_image": True},
            {"include_background": False, "class_weight": make.uniform(2, low=0.2, high=2.0)},
        ]
        if squared:
            counting.append({"squared": True})
        counting.append({"absent": "zero"})
        if log_loss:
            counting += [
                {"absent": "zero", "log_loss": True},
                {"log_loss": True, "per_image": True},
            ]
        for shape, opts in itertools.product(((2, 3, 4, 5), (2, 3, 3, 2, 4)), counting):
            kwargs = {**next(cycle), **opts}
            target = make.randint(3, (shape[0], *shape[2:]))
            if "ignore_index" in kwargs:
                target = _with_ignored(target)
            yield SampleInput((make.randn(*shape), target), kwargs, f"{shape} {sorted(kwargs)}")
        # a class absent from the target (class 2): the smoothing rule, or absent="zero"
        for opts in ({}, {"per_image": True}, {"absent": "zero"}, {"smooth": 0.0}):
            kwargs = {**next(cycle), **opts}
            target = _index_target(make, 3, (2, 4, 5), absent=2)
            yield SampleInput((make.randn(2, 3, 4, 5), target), kwargs, f"class 2 absent {opts}")
        # probabilities in, probability (soft) targets, differentiable
        kwargs = {**next(cycle), "from_logits": False}
        yield SampleInput(
            (make.probabilities(2, 3, 4, 5), make.randint(3, (2, 4, 5))), kwargs, "probabilities"
        )
        for opts in ({}, {"per_image": True, "include_background": False}):
            kwargs = {**next(cycle), **opts}
            yield SampleInput(
                (make.randn(2, 3, 4, 5), make.probabilities(2, 3, 4, 5)),
                kwargs,
                f"soft targets {opts}",
                grad_args=(0, 1),
            )
        # multi-label and binary masks
        for opts in ({}, {"per_image": True}, {"ignore_index": _IGNORE}):
            kwargs = {**next(cycle), "mode": "multilabel", **opts}
            y = make.randint(2, (2, 3, 4, 5)).to(dtype)
            if "ignore_index" in opts:
                y = _with_ignored(y, 5)
            yield SampleInput((make.randn(2, 3, 4, 5), y), kwargs, f"multilabel {opts}")
        kwargs = {**next(cycle), "mode": "multilabel"}
        yield SampleInput(
            (make.randn(2, 3, 4, 5), make.uniform(2, 3, 4, 5)),
            kwargs,
            "multilabel soft labels",
            grad_args=(0, 1),
        )
        for target in (make.randint(2, (3, 4, 5)), make.randint(2, (3, 1, 4, 5)).bool()):
            kwargs = {**next(cycle), "mode": "binary"}
            yield SampleInput(
                (make.randn(3, 1, 4, 5), target), kwargs, f"binary {tuple(target.shape)}"
            )
        kwargs = {**next(cycle), "mode": "binary", "ignore_index": -1, "per_image": True}
        target = make.randint(2, (3, 1, 4, 5)).to(dtype)
        target.reshape(-1)[::3] = -1
        yield SampleInput((make.randn(3, 1, 4, 5), target), kwargs, "binary, ignore_index=-1")
        for index_dtype in (torch.uint8, torch.int32):
            yield SampleInput(
                (make.randn(2, 3, 6), make.randint(3, (2, 6)).to(index_dtype)),
                dict(next(cycle)),
                f"1-D, {index_dtype} indices",
            )
        yield SampleInput((make.randn(2, 3), make.randint(3, (2,))), {}, "no spatial dims")
        # degenerate: nothing counts
        everything = torch.full((2, 4, 5), _IGNORE, device=device)
        for opts in ({}, {"per_image": True}):
            yield SampleInput(
                (make.randn(2, 3, 4, 5), everything),
                {**opts, "ignore_index": _IGNORE},
                f"every pixel ignored {opts}",
                reference=False,
            )
        yield SampleInput(
            (make.randn(0, 3, 4, 5), make.randint(3, (0, 4, 5))), {}, "empty batch", reference=False
        )
        logits = make.randn(2, 3, 4, 5, scale=1e4)
        for opts in ({}, {"per_image": True}, *params):
            yield SampleInput(
                (logits, make.randint(3, (2, 4, 5))), dict(opts), "logits of +-1e4", tags=_EXTREME
            )
        perfect = make.randint(3, (2, 4, 5))
        confident = F.one_hot(perfect, 3).movedim(-1, 1).to(dtype).contiguous() * 60.0
        for opts in ({}, *params):
            yield SampleInput((confident, perfect), dict(opts), "perfect prediction", tags=_EXTREME)

    return samples


def _gdl_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    yield SampleInput((make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))), {}, "2-D")
    options = [
        {"per_image": True},
        {"weight_type": "simple"},
        {"weight_type": "uniform", "per_image": True},
        {"smooth": 0.01, "smooth_denominator": 0.001},
        {"include_background": False},
        {"ignore_index": _IGNORE},
        {"ignore_index": _IGNORE, "per_image": True},
    ]
    for shape, opts in itertools.product(((2, 3, 4, 5), (2, 3, 3, 2, 4)), options):
        target = make.randint(3, (shape[0], *shape[2:]))
        if "ignore_index" in opts:
            target = _with_ignored(target)
        yield SampleInput((make.randn(*shape), target), opts, f"{shape} {opts}")
    for opts in ({}, {"per_image": True}, {"weight_type": "simple"}):
        target = _index_target(make, 3, (2, 4, 5), absent=1)
        yield SampleInput((make.randn(2, 3, 4, 5), target), opts, f"class 1 absent {opts}")
    yield SampleInput(
        (make.randn(2, 3, 4, 5), make.probabilities(2, 3, 4, 5)),
        {"per_image": True},
        "soft targets",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(2, 3, 4, 5), make.randint(2, (2, 3, 4, 5)).to(dtype)),
        {"mode": "multilabel"},
        "multilabel",
    )
    yield SampleInput(
        (make.randn(3, 1, 4, 5), make.randint(2, (3, 4, 5))),
        {"mode": "binary", "per_image": True},
        "binary",
    )
    yield SampleInput(
        (make.randn(2, 3, 4, 5), torch.full((2, 4, 5), _IGNORE, device=device)),
        {"ignore_index": _IGNORE},
        "every pixel ignored",
        reference=False,
    )
    yield SampleInput(
        (make.randn(0, 3, 4, 5), make.randint(3, (0, 4, 5))), {}, "empty batch", reference=False
    )
    yield SampleInput(
        (make.randn(2, 3, 4, 5, scale=1e4), make.randint(3, (2, 4, 5))),
        {},
        "logits of +-1e4",
        tags=_EXTREME,
    )


def _lovasz_softmax_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    yield SampleInput((make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))), {}, "2-D")
    options = [
        {"per_image": True},
        {"classes": "all"},
        {"classes": "all", "per_image": True},
        {"ignore_index": _IGNORE},
        {"ignore_index": _IGNORE, "per_image": True},
    ]
    for shape, opts in itertools.product(((2, 3, 4, 5), (2, 3, 3, 2, 4)), options):
        target = make.randint(3, (shape[0], *shape[2:]))
        if "ignore_index" in opts:
            target = _with_ignored(target)
        yield SampleInput((make.randn(*shape), target), opts, f"{shape} {opts}")
    for opts in ({}, {"per_image": True}, {"classes": "all"}):
        target = _index_target(make, 4, (2, 4, 5), absent=1)
        yield SampleInput((make.randn(2, 4, 4, 5), target), opts, f"class 1 absent {opts}")
    # image 0 has only class 0: per image, it averages one class
    target = make.randint(3, (2, 4, 5))
    target[0] = 0
    yield SampleInput((make.randn(2, 3, 4, 5), target), {"per_image": True}, "one class in image 0")
    yield SampleInput(
        (make.probabilities(2, 3, 4, 5), make.randint(3, (2, 4, 5))),
        {"from_logits": False},
        "probabilities",
    )
    yield SampleInput(
        (make.randn(2, 3, 6), make.randint(3, (2, 6)).to(torch.int32)), {}, "1-D, int32 indices"
    )
    # image 1 entirely ignored: left out of the per-image mean
    target = make.randint(3, (2, 4, 5))
    target[1] = _IGNORE
    yield SampleInput(
        (make.randn(2, 3, 4, 5), target),
        {"ignore_index": _IGNORE, "per_image": True},
        "image 1 ignored",
    )
    everything = torch.full((2, 4, 5), _IGNORE, device=device)
    for opts in ({}, {"per_image": True}, {"classes": "all"}):
        yield SampleInput(
            (make.randn(2, 3, 4, 5), everything),
            {**opts, "ignore_index": _IGNORE},
            f"every pixel ignored {opts}",
            reference=False,
        )
    yield SampleInput(
        (make.randn(0, 3, 4, 5), make.randint(3, (0, 4, 5))), {}, "empty batch", reference=False
    )
    yield SampleInput(
        (make.randn(2, 3, 4, 5, scale=1e4), make.randint(3, (2, 4, 5))),
        {},
        "logits of +-1e4",
        tags=_EXTREME,
    )


def _lovasz_hinge_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    yield SampleInput((make.randn(3, 1, 4, 5), make.randint(2, (3, 4, 5))), {}, "binary 2-D")
    for shape, opts in itertools.product(
        ((3, 1, 4, 5), (2, 3, 4, 5), (3, 1, 3, 2, 4)),
        (
            {},
            {"per_image": True},
            {"ignore_index": _IGNORE},
            {"ignore_index": _IGNORE, "per_image": True},
        ),
    ):
        target = make.randint(2, shape).to(dtype)
        if "ignore_index" in opts:
            target = _with_ignored(target, 3)
        yield SampleInput((make.randn(*shape), target), opts, f"{shape} {opts}")
    yield SampleInput(
        (make.randn(3, 1, 4, 5), make.randint(2, (3, 1, 4, 5)).bool()), {}, "bool masks"
    )
    empty = make.randint(2, (3, 4, 5))
    empty[1] = 0
    yield SampleInput(
        (make.randn(3, 1, 4, 5), empty), {"per_image": True}, "image 1 without foreground"
    )
    yield SampleInput(
        (make.randn(3, 1, 4, 5), torch.full((3, 4, 5), _IGNORE, device=device)),
        {"ignore_index": _IGNORE},
        "every pixel ignored",
        reference=False,
    )
    yield SampleInput(
        (make.randn(0, 1, 4, 5), make.randint(2, (0, 4, 5))), {}, "empty batch", reference=False
    )
    yield SampleInput(
        (make.randn(3, 1, 4, 5, scale=1e4), make.randint(2, (3, 4, 5))),
        {},
        "logits of +-1e4",
        tags=_EXTREME,
    )


# ------------------------------------------------------------------------------ errors


def _shared_errors(loss: str, *, modes: bool = True) -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "avg"}),
        rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((x.long(), y)),
        rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((make.randn(6), make.randint(3, (6,)))),
        rf"{loss}: input has shape \(6,\); expected \(N, C, \*spatial\) scores",
    )
    yield ErrorInput(
        SampleInput((x, make.randint(3, (2, 4)))),
        rf"{loss}: target has shape \(2, 4\) and dtype torch.int64; expected \(2, 4, 5\) integer "
        r"class indices",
    )
    yield ErrorInput(
        SampleInput((x, y.bool())),
        rf"{loss}: target has shape \(2, 4, 5\) and dtype torch.bool; expected",
    )
    out_of_range = y.clone()
    out_of_range[0, 0, :2] = torch.tensor([3, 0])
    yield ErrorInput(
        SampleInput((x, out_of_range)),
        rf"{loss}: target has class indices in \[0, 3\]; expected indices in \[0, 2\]",
    )
    yield ErrorInput(
        SampleInput((x, _with_ignored(y)), {"ignore_index": -1}),
        rf"{loss}: target has class indices in \[0, 255\]; expected indices in \[0, 2\] or "
        r"ignore_index=-1",
    )
    yield ErrorInput(
        SampleInput((x, y), {"ignore_index": 1.5}),
        rf"{loss}: ignore_index is 1.5; expected None or an int",
    )
    yield ErrorInput(
        SampleInput((x, y), {"from_logits": "yes"}),
        rf"{loss}: from_logits is 'yes'; expected True or False",
    )
    yield ErrorInput(
        SampleInput((x, y), {"from_logits": False}),
        rf"{loss}: input has values in \[.*\]; expected probabilities in \[0, 1\] "
        r"\(from_logits=False\)",
    )
    yield ErrorInput(
        SampleInput((make.tensor([[[0.0, float("nan")]]]), make.randint(1, (1, 2)))),
        rf"{loss}: input has 1 non-finite value\(s\); expected finite values",
        checks="full",
    )
    if modes:
        yield ErrorInput(
            SampleInput((x, y), {"mode": "softmax"}),
            rf"{loss}: mode is 'softmax'; expected one of 'multiclass', 'multilabel', 'binary'",
        )
        yield ErrorInput(
            SampleInput((x, y.float()), {"mode": "binary"}),
            rf"{loss}: input has shape \(2, 3, 4, 5\); expected one channel",
        )
        yield ErrorInput(
            SampleInput((x, y), {"mode": "multilabel"}),
            rf"{loss}: target has shape \(2, 4, 5\) and dtype torch.int64; expected \(2, 3, 4, 5\) "
            r"labels for input \(2, 3, 4, 5\) in mode='multilabel'",
        )
        yield ErrorInput(
            SampleInput((x, x.double().sigmoid())),
            rf"{loss}: target has dtype torch.float64; expected the dtype of input",
        )
        yield ErrorInput(
            SampleInput((x, make.uniform(2, 3, 4, 5) * 2), {"mode": "multilabel"}),
            rf"{loss}: target has values in \[.*\]; expected values in \[0, 1\]",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((x, y), {"smooth": -1.0}),
            rf"{loss}: smooth is -1.0; expected a number >= 0",
        )
        yield ErrorInput(
            SampleInput((x, y), {"smooth_denominator": float("nan")}),
            rf"{loss}: smooth_denominator is nan; expected a number >= 0",
        )


def _overlap_errors(loss: str, extra: Sequence[tuple[dict, str]] = ()):
    def errors() -> Iterator[ErrorInput]:
        yield from _shared_errors(loss)
        make = TensorMaker(torch.float32, "cpu")
        x, y = make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))
        yield ErrorInput(
            SampleInput((x, y), {"class_weight": make.uniform(2)}),
            rf"{loss}: class_weight has shape \(2,\); expected \(3,\), one weight per counted "
            r"class",
        )
        yield ErrorInput(
            SampleInput((x, y), {"class_weight": make.uniform(3), "include_background": False}),
            rf"{loss}: class_weight has shape \(3,\); expected \(2,\)",
        )
        yield ErrorInput(
            SampleInput((x, y), {"class_weight": make.tensor([1.0, -1.0, 1.0])}),
            rf"{loss}: class_weight has a minimum of -1; expected non-negative values",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((x, y), {"absent": "skip"}),
            rf"{loss}: absent is 'skip'; expected one of 'smooth', 'zero'",
        )
        yield ErrorInput(
            SampleInput((x, y), {"per_image": 1}),
            rf"{loss}: per_image is 1; expected True or False",
        )
        for options, match in extra:
            yield ErrorInput(SampleInput((x, y), options), rf"{loss}: {match}")

    return errors


def _gdl_errors() -> Iterator[ErrorInput]:
    loss = "generalized_dice_loss"
    yield from _shared_errors(loss)
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))
    yield ErrorInput(
        SampleInput((x, y), {"weight_type": "cube"}),
        rf"{loss}: weight_type is 'cube'; expected one of 'square', 'simple', 'uniform'",
    )


def _lovasz_softmax_errors() -> Iterator[ErrorInput]:
    loss = "lovasz_softmax_loss"
    yield from _shared_errors(loss, modes=False)
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(2, 3, 4, 5), make.randint(3, (2, 4, 5))
    yield ErrorInput(
        SampleInput((x, make.probabilities(2, 3, 4, 5))),
        rf"{loss}: target has shape \(2, 3, 4, 5\) and dtype torch.float32; expected \(2, 4, 5\) "
        r"integer class indices for input",
    )
    yield ErrorInput(
        SampleInput((x, y), {"classes": "some"}),
        rf"{loss}: classes is 'some'; expected one of 'present', 'all'",
    )


def _lovasz_hinge_errors() -> Iterator[ErrorInput]:
    loss = "lovasz_hinge_loss"
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(2, 1, 4, 5), make.randint(2, (2, 4, 5))
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "avg"}),
        rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((x.long(), y)),
        rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((make.randn(2, 3, 4, 5), make.randint(2, (2, 4, 5)))),
        rf"{loss}: target has shape \(2, 4, 5\) and dtype torch.int64; expected \(2, 3, 4, 5\) "
        r"labels",
    )
    yield ErrorInput(
        SampleInput((x, y.double())),
        rf"{loss}: target has dtype torch.float64; expected the dtype of input",
    )
    yield ErrorInput(
        SampleInput((x, y), {"per_image": "yes"}),
        rf"{loss}: per_image is 'yes'; expected True or False",
    )
    yield ErrorInput(
        SampleInput((x, y * 2)),
        rf"{loss}: target has values other than 0 and 1; expected 0/1 labels",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((x, _with_ignored(y * 2)), {"ignore_index": _IGNORE}),
        rf"{loss}: target has values other than 0 and 1; expected 0/1 labels or "
        rf"ignore_index={_IGNORE}",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((make.tensor([[[float("inf"), 0.0]]]), make.randint(2, (1, 2)))),
        rf"{loss}: input has 1 non-finite value\(s\); expected finite values",
        checks="full",
    )


# ------------------------------------------------------------------------------ benchmarks

#: classes of the Dice benchmark (its size is the edge of a (2, 8, size, size, size) volume)
DICE_BENCH_CLASSES = 8
#: classes of the Lovász-softmax benchmark (its size is the edge of (8, 21, size, size))
LOVASZ_BENCH_CLASSES = 21


def _dice_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    x = make.randn(2, DICE_BENCH_CLASSES, size, size, size)
    target = make.randint(DICE_BENCH_CLASSES, (2, size, size, size))
    return SampleInput((x, target), {}, f"{tuple(x.shape)}, class indices")


def _lovasz_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    x = make.randn(8, LOVASZ_BENCH_CLASSES, size, size)
    target = make.randint(LOVASZ_BENCH_CLASSES, (8, size, size))
    return SampleInput((x, target), {}, f"{tuple(x.shape)}, class indices")


def one_hot_dice(input: Tensor, target: Tensor, *, smooth: float = 1.0, **_: object) -> Tensor:
    """The Dice loss as usually written: softmax, a one-hot target, per-class sums over the
    batch (the benchmark's baseline; losskit's defaults, no ignored pixels)."""
    p = torch.softmax(input, 1)
    y = F.one_hot(target, input.shape[1]).movedim(-1, 1).to(p.dtype)
    dims = (0, *range(2, input.dim()))
    inter, volume, counts = (p * y).sum(dims), p.sum(dims), y.sum(dims)
    return (1.0 - (2.0 * inter + smooth) / (volume + counts + smooth)).mean()


def sort_based_lovasz_softmax(input: Tensor, target: Tensor, **_: object) -> Tensor:
    """The Lovász-softmax of the paper's reference code: probabilities flattened to
    ``(pixels, C)``, then one sort per class present (the benchmark's baseline)."""
    c = input.shape[1]
    probs = torch.softmax(input, 1).movedim(1, -1).reshape(-1, c)
    labels = target.reshape(-1)
    losses = []
    for k in range(c):
        fg = (labels == k).to(probs.dtype)
        if fg.sum() == 0:
            continue
        losses.append(_lovasz_flat((fg - probs[:, k]).abs(), fg))
    return torch.stack(losses).mean()


CASES: dict[str, LossCases] = {
    "dice": LossCases(
        reference=in_float64(dice_reference),
        sample_inputs=_overlap_samples([{}, {"smooth": 2.0}, {"per_image": True}]),
        error_inputs=_overlap_errors("dice_loss"),
        bench_inputs=_dice_bench,
        bench_references={"one-hot formula": one_hot_dice},
    ),
    "generalized_dice": LossCases(
        reference=in_float64(generalized_dice_reference),
        sample_inputs=_gdl_samples,
        error_inputs=_gdl_errors,
    ),
    "jaccard": LossCases(
        reference=in_float64(jaccard_reference),
        sample_inputs=_overlap_samples([{}, {"smooth": 0.3}]),
        error_inputs=_overlap_errors("jaccard_loss"),
    ),
    "tversky": LossCases(
        reference=in_float64(tversky_reference),
        sample_inputs=_overlap_samples(
            [{}, {"alpha": 0.3, "beta": 0.7}, {"alpha": 0.9, "beta": 0.1}, {"alpha": 0.0}],
            squared=False,
        ),
        error_inputs=_overlap_errors(
            "tversky_loss", [({"alpha": -0.5}, r"alpha is -0.5; expected a number >= 0")]
        ),
    ),
    "focal_tversky": LossCases(
        reference=in_float64(focal_tversky_reference),
        sample_inputs=_overlap_samples(
            [{}, {"gamma": 1.0}, {"gamma": 2.0, "alpha": 0.5, "beta": 0.5}, {"gamma": 0.5}],
            squared=False,
            log_loss=False,
        ),
        error_inputs=_overlap_errors(
            "focal_tversky_loss", [({"gamma": 0.0}, r"gamma is 0.0; expected a number > 0")]
        ),
    ),
    "lovasz_softmax": LossCases(
        reference=in_float64(lovasz_softmax_reference),
        sample_inputs=_lovasz_softmax_samples,
        error_inputs=_lovasz_softmax_errors,
        bench_inputs=_lovasz_bench,
        bench_references={"sort-based reference (Berman et al.)": sort_based_lovasz_softmax},
    ),
    "lovasz_hinge": LossCases(
        reference=in_float64(lovasz_hinge_reference),
        sample_inputs=_lovasz_hinge_samples,
        error_inputs=_lovasz_hinge_errors,
    ),
}
