r"""Triplet losses: the explicit form on ``(anchor, positive, negative)`` rows, and the label form
that mines its triplets from a batch of embeddings and class labels.

Both compute the hinge :math:`\max(0,\ d(a, p) - d(a, n) + m)`: an anchor should be closer to a
positive (same class) than to a negative (another class) by at least the margin :math:`m`.

The label form (:func:`triplet_loss`) never builds an ``N x N x N`` tensor: batch-hard mining
streams blocks of anchor rows of the distance matrix (no host synchronisation on
accelerators), and the distances of the chosen pairs are recomputed from the embeddings, so the
backward pass costs O(N D) instead of a dense ``N x N`` gradient. Batch-all streams blocks of
anchors through a custom autograd function that recomputes each block in the backward pass, so
its memory is bounded by the block size whatever the number of triplets. Semi-hard mining works on
``block x K x N`` comparisons (``K`` the largest class size).

Second derivatives (``create_graph=True``: gradient penalties, MAML) are exact for every miner
and distance: the mining selection is piecewise constant, and the streamed distance Functions
recompute their gradient through a dense differentiable formula when a graph of it is asked for
(the first-order backward stays streamed). A NaN distance is the hardest candidate of every
choice the miners make, so the triplets that use it, and only those, are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autocast import autocast_float32
from losskit._autograd import LossFunction, c_apply, differentiable_backward, number
from losskit._checks import (
    check_finite,
    check_floating,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    check_tensor,
    fail,
    full_checks,
    shape_str,
    values_checked,
)
from losskit._reduce import REDUCTIONS, Reduction, reduce_loss, safe_divide, upcast
from losskit.losses.triplet.distances import (
    DistanceName,
    DistanceRows,
    check_distance_name,
    distance_matrix,
    pair_distances,
    paired,
    paired_distances,
    pairwise_distances,
    rows_per_block,
)
from losskit.losses.triplet.mining import (
    all_triplets,
    check_miner,
    hardest,
    positive_table,
    semi_hard,
)
from losskit.losses.triplet.options import (
    DISTANCE,
    EPS,
    EXPLICIT_DISTANCE,
    EXPLICIT_MARGIN,
    MARGIN,
    MINER,
    SOFT_MARGIN,
    SWAP,
    P,
)

# the distances are public through this module, so losskit.functional (generated from
# __all__) keeps exporting them
__all__ = [
    "TRIPLET_REDUCTIONS",
    "TripletStats",
    "paired_distances",
    "pairwise_distances",
    "triplet_loss",
    "triplet_margin_loss",
]

#: reductions of :func:`triplet_loss`; ``"mean_positive"`` averages over the triplets whose loss
#: is positive (pytorch-metric-learning's ``AvgNonZeroReducer``)
TRIPLET_REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none", "mean_positive")
TripletReduction = Literal["mean", "sum", "none", "mean_positive"]
Miner = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


def check_bool(loss: str, name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False``: an int or a string would pass ``if value``."""
    if not isinstance(value, bool):
        fail(loss, name, f"is {value!r}", "True or False")
    return value


# ------------------------------------------------------------------------- the explicit form

_triplet_margin_kernel = torch.triplet_margin_loss
#: the fast path's tests, bound once (module attributes cost a lookup each on every call);
#: float32 and float64 inputs only (half precision is upcast on the general path)
_FLOAT32, _FLOAT64 = torch.float32, torch.float64
_INF = math.inf
#: torch's reduction enum (torch.nn._reduction.get_enum)
_ENUM_OF = {"none": 0, "mean": 1, "sum": 2}.get
_any_autocast = torch._C._is_any_autocast_enabled
_is_compiling = torch.compiler.is_compiling


_CPU = torch.device("cpu")


def _number(value: float, dtype: torch.dtype) -> Tensor:
    """The margins and batch sizes of the Function below as cached 0-dim CPU tensors (a
    Python number meeting a tensor is wrapped in a new one on every call)."""
    return number(value, dtype, _CPU)


def _triplet_p2_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> Tensor:
    anchor, positive, negative = saved
    margin, eps, enum = ctx.options  # type: ignore[attr-defined]
    return _triplet_margin_kernel(anchor, positive, negative, margin, 2.0, eps, False, enum)


class _TripletP2(LossFunction):
    """torch's ``triplet_margin_loss`` with ``p = 2`` and no swap on CPU ``(N, D)`` rows, N >= 1,
    as one autograd node: the same operations in the forward (``norm(a - x + eps)`` per pair,
    ``clamp_min(margin + d_pos - d_neg, 0)``, then torch's reduction), and in the backward the
    numbers autograd's chain of eleven nodes computes, with fewer passes over the rows.

    That chain gives each row the gradient ``r = [u >= 0] g'`` (``g' = g / N`` for the mean,
    ``clamp_min``'s rule: 0 at NaN), each pair's difference ``(+-r) q`` with
    ``q = (diff / d)`` set to 0 where ``d = 0`` (``norm_backward`` for p = 2), and the anchor
    the sum of its two parts. With ``A = r q_pos`` and ``B = r q_neg``: ``positive`` gets
    ``-A``, ``negative`` ``B``, ``anchor`` ``A - B``, all exactly as autograd rounds them
    (negation is exact and a sum of two terms does not depend on their order). ``q`` is made in
    the forward, in place of the differences. Double backward goes through torch's kernel."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        anchor: Tensor,
        positive: Tensor,
        negative: Tensor,
        options: tuple[float, float, int],
    ) -> Tensor:
        ctx.save_for_backward(anchor, positive, negative)
        ctx.options = options  # type: ignore[attr-defined]
        margin, eps, enum = options
        dtype = anchor.dtype
        eps_t = _number(eps, dtype)  # the wrapped number torch's "+ eps" makes, once
        q_pos = torch.sub(anchor, positive).add_(eps_t)
        q_neg = torch.sub(anchor, negative).add_(eps_t)
        # (N, 1) distances: they divide the rows without a view (keepdim reduces the same way)
        d_pos = _vector_norm(q_pos, 2.0, -1, True)
        d_neg = _vector_norm(q_neg, 2.0, -1, True)
        u = torch.add(d_pos, _number(margin, dtype)).sub_(d_neg)
        ctx.active = torch.ge(u, _number(0.0, dtype))  # type: ignore[attr-defined]
        q_pos.div_(d_pos)
        q_neg.div_(d_neg)
        if not torch.logical_and(d_pos, d_neg).all():
            # a zero distance (NaN counts as nonzero): norm_backward's gradient there is 0
            q_pos.masked_fill_(d_pos.eq(0.0), 0.0)
            q_neg.masked_fill_(d_neg.eq(0.0), 0.0)
        ctx.q = (q_pos, q_neg)  # type: ignore[attr-defined]
        out = u.relu_()
        if enum == 1:
            return out.mean()
        return out.sum() if enum == 2 else out.squeeze(1)

    @staticmethod
    @differentiable_backward(_triplet_p2_eager)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        q_pos, q_neg = ctx.q  # type: ignore[attr-defined]
        enum = ctx.options[2]  # type: ignore[attr-defined]
        if enum == 1:
            grad = grad / _number(q_pos.shape[0], grad.dtype)
        if enum == 0:
            grad = grad.unsqueeze(1)
        # (N, 1): the active rows' gradient
        rows = torch.where(ctx.active, grad, _number(0.0, grad.dtype))  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad
        a = q_pos * rows if needs[0] or needs[1] else None
        b = q_neg * rows if needs[0] or needs[2] else None
        grad_anchor = torch.sub(a, b) if needs[0] else None
        return (
            grad_anchor,
            a.neg_() if needs[1] else None,  # type: ignore[union-attr]
            b if needs[2] else None,
            None,
        )


_vector_norm = torch.linalg.vector_norm
_TRIPLET_APPLY, _TRIPLET_UNWRAP = c_apply(_TripletP2)
_transforms_active = torch._C._are_functorch_transforms_active


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = EXPLICIT_MARGIN.default,
    p: float = P.default,
    eps: float = EPS.default,
    swap: bool = SWAP.default,
    distance: DistanceName | Callable[[Tensor, Tensor], Tensor] | None = EXPLICIT_DISTANCE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Triplet margin loss on explicit triplets, :math:`\ell_i = \max(0,\ d(a_i, p_i) -
    d(a_i, n_i) + m)`.

    Shapes: ``anchor``, ``positive``, ``negative`` identical, ``(N, D)`` or ``(D,)`` (any
    ``(..., D)``); the distance runs over the last dimension and ``reduction="none"`` returns
    ``(...)``. With ``distance=None`` the distance is torch's ``pairwise_distance`` with ``p``
    and ``eps`` (:math:`\lVert a - p + \epsilon \rVert_p`), so the result equals
    ``torch.nn.functional.triplet_margin_loss``; ``distance`` may instead name ``"euclidean"``,
    ``"squared_euclidean"`` or ``"cosine"`` (no ``eps``; see
    :mod:`losskit.functional.distances`) or be a callable ``(x1, x2) -> (...)`` as in
    ``torch.nn.TripletMarginWithDistanceLoss`` (``p`` and ``eps`` are then unused). ``swap``
    uses :math:`\min(d(a, n), d(p, n))` as the negative distance (Balntas et al., 2016).
    ``margin > 0`` as in torch. Unlike torch, the mean over an empty batch is 0.0 (with a
    graph), not NaN.

    >>> import torch, losskit.functional as LF
    >>> a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([[6.0, 8.0]])
    >>> LF.triplet_margin_loss(a, p, n, margin=1.0, eps=0.0).item()
    0.0
    >>> LF.triplet_margin_loss(a, n, p, margin=1.0, eps=0.0).item()
    6.0
    """
    if (
        distance is None
        and isinstance(anchor, Tensor)
        and isinstance(positive, Tensor)
        and isinstance(negative, Tensor)
        and anchor.dim() == 2
        and anchor.shape[0]
        and positive.shape == anchor.shape == negative.shape
        and ((dtype := anchor.dtype) is _FLOAT32 or dtype is _FLOAT64)
        and positive.dtype is dtype
        and negative.dtype is dtype
        and (
            (anchor.is_cpu and positive.is_cpu and negative.is_cpu)
            or positive.device == anchor.device == negative.device
        )
        and (type(margin) is float or type(margin) is int)
        and 0.0 < margin < _INF
        and (type(p) is float or type(p) is int)
        and 0.0 < p < _INF
        and (type(eps) is float or type(eps) is int)
        and 0.0 <= eps < _INF
        and type(swap) is bool
        and type(reduction) is str
        and (enum := _ENUM_OF(reduction)) is not None
        and not _any_autocast()
        and not full_checks()
        and not _is_compiling()
    ):
        # the common call, answered from its metadata and options (issue 16: the per-tensor
        # checks cost a third of torch's kernel at B=32, and the options' checks, written out
        # here, another 5%): every check of the general path passes, and torch's binding gives
        # its number and backward without F's argument handling. No decorator on this
        # function: the general path carries the autocast policy.
        if p == 2.0 and not swap and anchor.is_cpu and not _transforms_active():
            # the default distance on the CPU: one autograd node (_TripletP2), same numbers
            unwrap = _TRIPLET_UNWRAP
            return _TRIPLET_APPLY(
                unwrap(anchor),
                unwrap(positive),
                unwrap(negative),
                (float(margin), float(eps), enum),
            )
        return _triplet_margin_kernel(anchor, positive, negative, margin, p, eps, swap, enum)
    return _triplet_margin_loss(
        anchor,
        positive,
        negative,
        margin=margin,
        p=p,
        eps=eps,
        swap=swap,
        distance=distance,
        reduction=reduction,
    )


@autocast_float32
def _triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float,
    p: float,
    eps: float,
    swap: bool,
    distance: DistanceName | Callable[[Tensor, Tensor], Tensor] | None,
    reduction: Reduction,
) -> Tensor:
    """:func:`triplet_margin_loss`, every check and option (the general path)."""
    loss = "triplet_margin_loss"
    check_floating(loss, "anchor", anchor)
    for name, x in (("positive", positive), ("negative", negative)):
        check_floating(loss, name, x)
        check_same_shape(loss, name, x, anchor, "anchor")
        check_same_dtype(loss, name, x, anchor, "anchor")
        check_same_device(loss, name, x, anchor, "anchor")
    if anchor.dim() == 0:
        fail(loss, "anchor", "is a scalar", "(N, D) or (D,): the last dimension holds features")
    margin = EXPLICIT_MARGIN.check(loss, margin)
    p = P.check(loss, p)
    eps = EPS.check(loss, eps)
    swap = check_bool(loss, "swap", swap)
    if distance is not None:
        check_distance_name(loss, distance)
    check_reduction(loss, reduction, REDUCTIONS)
    for name, x in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        check_finite(loss, name, x)

    out_dtype = anchor.dtype
    a, pos, neg = upcast(anchor), upcast(positive), upcast(negative)
    empty = math.prod(a.shape[:-1]) == 0
    if distance is None:
        kernel_reduction = "sum" if reduction == "mean" and empty else reduction
        out = F.triplet_margin_loss(
            a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=kernel_reduction
        )
        return out.to(out_dtype)

    def dist(x1: Tensor, x2: Tensor) -> Tensor:
        d = distance(x1, x2) if callable(distance) else paired(x1, x2, distance)
        if not isinstance(d, Tensor) or d.shape != a.shape[:-1]:
            got = shape_str(d.shape) if isinstance(d, Tensor) else type(d).__name__
            expected = f"row-wise distances of shape {shape_str(a.shape[:-1])}"
            fail(loss, "distance", f"returned {got}", expected)
        return d

    d_pos, d_neg = dist(a, pos), dist(a, neg)
    if swap:
        d_neg = torch.minimum(d_neg, dist(pos, neg))
    return reduce_loss((d_pos - d_neg + margin).clamp_min(0.0), reduction).to(out_dtype)


# the public function runs the general path under losskit's float32 autocast policy
triplet_margin_loss.autocast_policy = _triplet_margin_loss.autocast_policy  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the label form


@dataclass(frozen=True)
class TripletStats:
    """What one call of the label form mined, for diagnosis (``TripletLoss.last_stats``).

    All fields are detached 0-dim tensors, so recording them costs no host synchronisation;
    :meth:`as_dict` reads them. A loss stuck at the margin with ``active_fraction`` near 1 and
    positive and negative distances nearly equal is the signature of collapsed embeddings.
    """

    #: number of triplets mined (the denominator of ``reduction="mean"``)
    num_triplets: Tensor
    #: fraction of them with a positive loss (the denominator of ``"mean_positive"``, divided
    #: by ``num_triplets``)
    active_fraction: Tensor
    #: mean anchor-positive distance over the mined triplets
    mean_positive_distance: Tensor
    #: mean anchor-negative distance over the mined triplets
    mean_negative_distance: Tensor
    #: the margin used
    margin: float

    def as_dict(self) -> dict[str, float]:
        """The statistics as Python numbers (reads them on the host)."""
        return {
            "num_triplets": int(self.num_triplets),
            "active_fraction": float(self.active_fraction),
            "mean_positive_distance": float(self.mean_positive_distance),
            "mean_negative_distance": float(self.mean_negative_distance),
            "margin": self.margin,
        }


def _violations(
    d: Tensor,
    labels: Tensor,
    start: int,
    stop: int,
    positives: Tensor,
    positive_valid: Tensor,
    margin: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For the anchors ``start:stop`` (distance rows ``d``): ``z = d(a, p) - d(a, n) + margin``
    over ``(anchor, positive slot, negative)``, ``-inf`` wherever that is not a triplet (so the
    hinge, the softplus and their slopes are 0 there without a mask); also the positive
    distances, the negative mask and the positive-slot mask.

    A NaN distance makes the triplets that use it NaN, and no sum without one: the slots of an
    anchor without a negative and the negatives of an anchor without a positive are masked
    (``-inf - NaN`` would be NaN), at a cost of ``block x (K + N)``, not ``block x K x N``. (A
    padded slot of an anchor that has a real one still meets its NaN negative, beside the real
    NaN triplet of that negative.)"""
    negative = labels[start:stop, None] != labels[None, :]
    valid = positive_valid[start:stop] & negative.any(1, keepdim=True)
    d_pos = d.gather(1, positives[start:stop])
    reach = torch.where(valid, d_pos + margin, -torch.inf)
    # an anchor with a valid slot turns a NaN negative distance into a NaN triplet of its own
    used = negative & valid.any(1, keepdim=True)
    z = reach[:, :, None] - torch.where(used, d, torch.inf)[:, None, :]
    return z, d_pos, negative, valid


def _softplus_slope(z: Tensor) -> Tensor:
    # F.softplus is linear above its threshold of 20; match its derivative exactly
    return torch.where(z > 20.0, 1.0, torch.sigmoid(z))


def _batch_all_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> tuple[Tensor | None, ...]:
    # dense (N x K x N at once): it runs only when a graph of the gradient is asked for
    source, labels, positives, positive_valid = saved
    d = DistanceRows(ctx.kind, source).matrix()
    z = _violations(d, labels, 0, d.shape[0], positives, positive_valid, ctx.margin)[0]
    losses = F.softplus(z) if ctx.soft else z.clamp_min(0.0)
    return losses.sum(), None, None, None, None


class _BatchAllSum(LossFunction):
    """Sum of the hinge (or softplus) over every valid triplet, streamed over anchor blocks.

    The forward keeps nothing per block; the backward recomputes each block's distances and
    violations and turns them into that block's rows of dL/dD, then into the embeddings'
    gradient. Memory: O(block x K x N) temporaries, never the whole set of triplets. Double
    backward goes through the same sum computed densely by autograd.
    Also returns (not differentiable) the triplet count, the active count and the sums of
    anchor-positive and anchor-negative distances over triplets, for the statistics.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        source: Tensor,
        labels: Tensor,
        positives: Tensor,
        positive_valid: Tensor,
        kind: str,
        margin: float,
        soft: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        rows = DistanceRows(kind, source)
        n, width = positives.shape
        totals = torch.zeros(5, dtype=torch.float64, device=source.device)
        block = rows_per_block(n, max(1, 3 * width) * n)
        for start in range(0, n, block):
            stop = min(n, start + block)
            d = rows.rows(start, stop)
            z, d_pos, negative, valid = _violations(
                d, labels, start, stop, positives, positive_valid, margin
            )
            losses = F.softplus(z) if soft else z.clamp_min_(0.0)
            negatives, positives_per_anchor = negative.sum(1), valid.sum(1)
            totals += torch.stack(
                [
                    losses.sum(dtype=torch.float64),
                    (positives_per_anchor * negatives).sum(dtype=torch.float64),
                    torch.count_nonzero(losses).to(torch.float64),
                    # where, not a product with the mask: no NaN * 0 from unused distances
                    (torch.where(valid, d_pos, 0.0).sum(1) * negatives).sum(dtype=torch.float64),
                    (torch.where(negative, d, 0.0).sum(1) * positives_per_anchor).sum(
                        dtype=torch.float64
                    ),
                ]
            )
        ctx.save_for_backward(source, labels, positives, positive_valid)
        ctx.kind, ctx.margin, ctx.soft = kind, margin, soft
        total = totals[0].to(source.dtype)
        count, active = totals[1].long(), totals[2].long()
        sum_pos, sum_neg = totals[3].to(source.dtype), totals[4].to(source.dtype)
        ctx.mark_non_differentiable(count, active, sum_pos, sum_neg)
        return total, count, active, sum_pos, sum_neg

    @staticmethod
    @differentiable_backward(_batch_all_eager)
    def backward(ctx: FunctionCtx, grad_total: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        source, labels, positives, positive_valid = ctx.saved_tensors
        rows = DistanceRows(ctx.kind, source)
        grad = torch.zeros_like(source)
        n, width = positives.shape
        block = rows_per_block(n, max(1, 3 * width) * n)
        for start in range(0, n, block):
            stop = min(n, start + block)
            d = rows.rows(start, stop)
            z = _violations(d, labels, start, stop, positives, positive_valid, ctx.margin)[0]
            slope = _softplus_slope(z) if ctx.soft else z > 0
            weight = slope.sum(1, dtype=d.dtype).mul_(-grad_total)
            weight.scatter_add_(1, positives[start:stop], slope.sum(2, dtype=d.dtype) * grad_total)
            rows.backward_rows(grad, weight, start, stop, d)
        return grad, None, None, None, None, None, None


def _check_triplets(triplets: object, n: int, device: torch.device) -> tuple[Tensor, ...]:
    loss = "triplet_loss"
    if not (isinstance(triplets, tuple | list) and len(triplets) == 3):
        fail(
            loss,
            "miner",
            f"returned {type(triplets).__name__}",
            "a tuple (anchor, positive, negative) of index tensors",
        )
    out = []
    for t in triplets:
        if (
            not isinstance(t, Tensor)
            or t.dim() != 1
            or t.is_floating_point()
            or t.shape != triplets[0].shape
        ):
            fail(
                loss,
                "miner",
                "returned something other than three 1-D integer tensors of equal length",
                "(anchor, positive, negative) index tensors",
            )
        if values_checked(t):
            low, high = (int(v) for v in torch.aminmax(t))
            if low < 0 or high >= n:
                fail(
                    loss,
                    "miner",
                    f"returned indices in [{low}, {high}]",
                    f"indices in [0, {n - 1}]",
                )
        out.append(t.to(device=device, dtype=torch.long))
    return tuple(out)


def _check_label_form(
    embeddings: object,
    labels: object,
    margin: object,
    distance: object,
    miner: object,
    soft_margin: object,
    reduction: object,
) -> tuple[Tensor, Tensor, float]:
    loss = "triplet_loss"
    embeddings = check_floating(loss, "embeddings", embeddings)
    if embeddings.dim() != 2:
        fail(loss, "embeddings", f"has shape {shape_str(embeddings.shape)}", "(N, D)")
    labels = check_tensor(loss, "labels", labels)
    if labels.is_floating_point() or labels.is_complex():
        fail(loss, "labels", f"has dtype {labels.dtype}", "integer class labels")
    n = embeddings.shape[0]
    if labels.shape != (n,):
        fail(
            loss,
            "labels",
            f"has shape {shape_str(labels.shape)}",
            f"({n},), one label per row of embeddings",
        )
    check_same_device(loss, "labels", labels, embeddings, "embeddings")
    margin = MARGIN.check(loss, margin)
    check_distance_name(loss, distance)
    check_miner(loss, miner)
    check_bool(loss, "soft_margin", soft_margin)
    check_reduction(loss, reduction, TRIPLET_REDUCTIONS)
    check_finite(loss, "embeddings", embeddings)
    return embeddings, labels, margin


def _source(x: Tensor, distance: object) -> tuple[str, Tensor]:
    """What distances are computed from: the embeddings (normalised for cosine) or, for a
    user distance, the whole matrix."""
    if not callable(distance):
        return str(distance), F.normalize(x, dim=1) if distance == "cosine" else x
    n = x.shape[0]
    d = distance(x, x)
    if not isinstance(d, Tensor) or d.shape != (n, n) or not d.is_floating_point():
        got = shape_str(d.shape) if isinstance(d, Tensor) else type(d).__name__
        fail("triplet_loss", "distance", f"returned {got}", f"a floating ({n}, {n}) matrix")
    return "matrix", d.to(x.dtype)


@autocast_float32
def triplet_loss_and_stats(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = MARGIN.default,
    distance: DistanceName | Callable[[Tensor, Tensor], Tensor] = DISTANCE.default,
    miner: Literal["batch_all", "batch_hard", "semi_hard"] | Miner = MINER.default,
    soft_margin: bool = SOFT_MARGIN.default,
    reduction: TripletReduction = "mean",
) -> tuple[Tensor, TripletStats]:
    """:func:`triplet_loss` and the :class:`TripletStats` of the call."""
    out, stats = _label_form(
        embeddings, labels, margin, distance, miner, soft_margin, reduction, with_stats=True
    )
    assert stats is not None
    return out, stats


def _label_form(
    embeddings: Tensor,
    labels: Tensor,
    margin: float,
    distance: DistanceName | Callable[[Tensor, Tensor], Tensor],
    miner: Literal["batch_all", "batch_hard", "semi_hard"] | Miner,
    soft_margin: bool,
    reduction: TripletReduction,
    *,
    with_stats: bool,
) -> tuple[Tensor, TripletStats | None]:
    """The label form; the statistics (a dozen small kernels, a third of the work at B=32)
    only ``with_stats``."""
    embeddings, labels, margin = _check_label_form(
        embeddings, labels, margin, distance, miner, soft_margin, reduction
    )
    out_dtype = embeddings.dtype
    x = upcast(embeddings)
    n = x.shape[0]
    kind, source = _source(x, distance)
    rows = DistanceRows(kind, source.detach())
    hinge = F.softplus if soft_margin else F.relu

    if miner == "batch_hard":
        positive, negative, valid = hardest(rows, labels)
        # i=None: every anchor in turn, once for its positive and once for its negative
        d = pair_distances(kind, source, None, torch.cat([positive, negative]))
        d_pos, d_neg = d[:n], d[n:]
        per_anchor = torch.where(valid, hinge(d_pos - d_neg + margin), 0.0)
        losses = per_anchor[valid.nonzero().squeeze(1)] if reduction == "none" else per_anchor
        total, count = per_anchor.sum(), valid.sum()
        if with_stats or reduction == "mean_positive":
            active = (per_anchor > 0).sum()
        if with_stats:
            sum_pos, sum_neg = torch.where(valid, d.detach().view(2, n), 0.0).sum(1)
    elif miner == "batch_all" and reduction != "none":
        positives, positive_valid = positive_table(labels)
        total, count, active, sum_pos, sum_neg = _BatchAllSum.apply(
            source, labels, positives, positive_valid, kind, margin, soft_margin
        )
        losses = total
    else:
        if miner == "semi_hard":
            positives, positive_valid = positive_table(labels)
            negatives, valid = semi_hard(rows, labels, positives, positive_valid)
            a, slot = valid.nonzero(as_tuple=True)
            triplets = (a, positives[a, slot], negatives[a, slot])
        elif miner == "batch_all":
            positives, positive_valid = positive_table(labels)
            triplets = all_triplets(rows, labels, positives, positive_valid)
        else:
            dist = rows.source if kind == "matrix" else distance_matrix(rows.source, None, kind)
            triplets = _check_triplets(miner(dist, labels), n, x.device)
        a, p, neg = triplets
        size = a.shape[0]
        d = pair_distances(kind, source, a.repeat(2), torch.cat([p, neg]))
        losses = hinge(d[:size] - d[size:] + margin)
        total, count = losses.sum(), torch.tensor(size, device=x.device)
        active = (losses > 0).sum()
        sum_pos, sum_neg = d[:size].sum(), d[size:].sum()

    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = total
    elif reduction == "mean":
        # no triplet counted means a total of exactly 0 without gradient: dividing by 1 then
        # is safe_divide's result in two kernels instead of six
        out = total / count.clamp_min(1)
    else:
        out = safe_divide(total, active)
    if not with_stats:
        return out.to(out_dtype), None
    stats = TripletStats(
        num_triplets=count.detach(),
        active_fraction=safe_divide(active.detach().to(x.dtype), count.detach()),
        mean_positive_distance=safe_divide(sum_pos.detach(), count.detach()),
        mean_negative_distance=safe_divide(sum_neg.detach(), count.detach()),
        margin=margin,
    )
    return out.to(out_dtype), stats


@autocast_float32
def triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = MARGIN.default,
    distance: DistanceName | Callable[[Tensor, Tensor], Tensor] = DISTANCE.default,
    miner: Literal["batch_all", "batch_hard", "semi_hard"] | Miner = MINER.default,
    soft_margin: bool = SOFT_MARGIN.default,
    reduction: TripletReduction = "mean",
) -> Tensor:
    r"""Triplet loss with online mining: triplets are chosen from a batch of embeddings and
    their class labels.

    .. math:: \ell_{apn} = h\big(d(x_a, x_p) - d(x_a, x_n) + m\big),\quad
              h = \max(0, \cdot)\ \text{or, with soft\_margin, } \log(1 + e^{\cdot})

    over the triplets the miner selects (positive: same label, not the anchor; negative: another
    label):

    * ``"batch_hard"`` (default): per anchor, its farthest positive and closest negative
      (Hermans et al., 2017); no host synchronisation on accelerators.
    * ``"batch_all"``: every valid triplet, streamed over anchor blocks in bounded memory.
    * ``"semi_hard"``: per (anchor, positive), the closest negative farther than the positive,
      else the farthest negative (FaceNet; TensorFlow's ``triplet_semihard_loss``).
    * a callable ``(dist, labels) -> (anchor, positive, negative)`` such as
      :func:`losskit.mining.batch_hard_triplets`, given the detached ``(N, N)`` distances.

    ``distance``: ``"euclidean"``, ``"squared_euclidean"``, ``"cosine"`` (``1 - cos``) or a
    callable ``(x, y) -> (N, M)`` matrix. ``margin >= 0`` (``0`` with ``soft_margin=True`` is
    the soft-margin loss of Hermans et al.).

    ``reduction``: ``"mean"`` over mined triplets, ``"sum"``, ``"none"`` (one loss per mined
    triplet, in the miner's order: anchors ascending, then positives, then negatives), or
    ``"mean_positive"``: the mean over triplets with a positive loss, which is
    pytorch-metric-learning's default (``AvgNonZeroReducer``). With no valid triplet (every
    label equal, or all distinct) every reduction gives 0.0 attached to the graph, never NaN.

    Shapes: ``embeddings`` ``(N, D)`` floating, ``labels`` ``(N,)`` integers. float16/bfloat16
    are computed in float32 and returned in the input dtype. ``batch_all`` (except with
    ``"none"``) and ``semi_hard`` read one number on the host (the largest class size), and
    ``"none"``, ``semi_hard`` and callable miners the number of triplets: their shapes depend
    on the data, which is also where ``torch.compile`` breaks the graph.

    Double backward is exact for every miner and distance (the Euclidean distance counts its
    derivatives as 0 at zero distance, as its gradient does). NaN in, NaN out: a NaN distance
    (from a NaN in ``embeddings`` or in a callable distance's matrix) is the hardest candidate
    of every choice, as for ``torch.argmax``/``argmin`` (the farthest positive, the closest or
    semi-hard negative), and every triplet that uses it is NaN: ``"none"`` is NaN exactly there,
    the other reductions wherever one of them counts. A loss over no triplet stays 0.
    Distances are computed from the centred batch, so float32 keeps its precision for
    embeddings with a large common offset.

    >>> import torch, losskit.functional as LF
    >>> emb = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.5, 0.0], [3.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> LF.triplet_loss(emb, labels, margin=0.2, reduction="none")
    tensor([0.7000, 0.0820, 2.3926, 0.0000])
    >>> round(LF.triplet_loss(emb, labels, margin=0.2, miner="batch_all").item(), 4)
    0.6186
    """
    return _label_form(
        embeddings, labels, margin, distance, miner, soft_margin, reduction, with_stats=False
    )[0]
