r"""The engine of the contrastive losses: per-row (and per-column) statistics of the logits
:math:`z = s\,x y^\top + b` without the ``N x M`` matrix.

Every contrastive loss here is a sum of per-row terms, each a function of one row of ``z`` (and,
for CLIP's text side, of one column). :func:`pairwise` returns them:

* ``"softmax"``: the log-sum-exp of each row (optionally of each column too: CLIP), minus the
  logit of the pair ``(i, i)`` (CLIP, in-batch InfoNCE) or the mean logit of the row's positives
  (SupCon, without the pair ``(i, i)``), both read from the same block as the log-sum-exp;
* ``"softplus"``: :math:`\sum_j \operatorname{softplus}(-y_{ij} z_{ij})`, :math:`y_{ii} = 1` and
  :math:`y_{ij} = -1` otherwise (SigLIP);
* ``"nt_xent"``: :math:`\sum_{p \in P(i)} \operatorname{softplus}(\operatorname{lse}_{n \in
  N(i)} z_{in} - z_{ip})` over the positives ``P(i)`` and negatives ``N(i)`` that ``labels``
  define.

Up to :data:`KEEP_MAX_ELEMENTS` similarities, one custom autograd Function (:class:`_Kept`)
computes the whole matrix once and keeps it (or, for the row softmaxes, ``exp(z - row max)``)
for its backward, which then needs no product to recompute it, one pass over it for ``d/dz``
and, for the pairs of a batch with itself (NT-Xent, SupCon), one product for both sides of every
pair: fewer passes and products than the dense formula it replaces. Above, a custom autograd
Function streams blocks of rows of ``z`` (Inf-CL, arXiv 2410.17243): its forward keeps only the
inputs and O(N + M) statistics, its backward recomputes each block, turns it into that block's
gradient of ``z`` and folds it into the gradients of ``x``, ``y``, ``scale`` and ``bias`` with two
matrix products. Peak extra memory: a few ``block x M`` buffers. The positives of NT-Xent and
SupCon are taken by index on the CPU (:func:`_pair_index`), with masks elsewhere; NT-Xent with
every label twice (SimCLR's two views) is each row's cross-entropy of its partner. Second
derivatives (``create_graph=True``) are taken through the dense formula (exact; O(N M) memory),
which an empty matrix also takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autograd import LossFunction, differentiable_backward

__all__ = [
    "Grads",
    "Pairwise",
    "Sweep",
    "dense",
    "kept",
    "pairwise",
    "positive_counts",
    "rows_per_block",
    "scalar_tensor",
    "sweep_backward",
    "sweep_forward",
    "tiled",
    "unit_rows",
]

#: similarities per block of the tiled path and intra-op thread on CPU (16 MiB in float32), up
#: to :data:`MAX_BLOCK_ELEMENTS`. Measured with CLIP and SigLIP at B=16,384, D=256, forward and
#: backward: one thread (CPU time) 256 rows per block 5.9 s and 5.0 s, 512 rows 6.2 s and 5.8 s,
#: 1024 rows 7.9 s and 6.0 s (the blocks stop fitting in cache); two threads on a loaded machine
#: (wall time) 256 rows 21-25 s and 15-16 s, 512 rows 16-22 s and 15 s, 1024 rows 16-20 s and
#: 12-15 s (fewer, longer parallel regions wait less for a descheduled thread). Four matrix
#: products are about 70% of the time. About three blocks are alive at once
BLOCK_ELEMENTS = 1 << 22
#: the most similarities per block (64 MiB in float32): on an accelerator, and with 4+ threads
MAX_BLOCK_ELEMENTS = 1 << 24
#: the dense formula (plain autograd) up to this many similarities (N x M), :class:`_Kept`
#: above: only for an empty matrix, and CLIP and SigLIP up to :data:`DENSE_MAX_TWO_TOWERS`.
#: Measured (D=256, one thread, CPU time, forward+backward, kept / dense formula, each over the
#: benchmark's reference, median of 9 interleaved blocks, at N = 8, 32, 64, 128, 256):
#: InfoNCE 1.16 / 1.22, 1.10 / 1.13, 0.99 / 1.01, 0.93 / 0.94, 0.90 / 0.93; NT-Xent (two views)
#: 1.81 / 1.95, 1.74 / 1.78, 1.30 / 1.67, 1.13 / 1.49, 0.93 / 1.44; CLIP 1.48 / 1.37,
#: 1.42 / 1.35, 1.29 / 1.24, 1.10 / 1.15, 0.94 / 1.06; SigLIP 1.39 / 1.32, 1.35 / 1.30,
#: 1.28 / 1.18, 1.11 / 1.10, 1.00 / 1.02 (at these smallest sizes the fixed cost of the
#: argument checks and of a custom Function outweighs the passes saved, and both paths are
#: slower than the reference: from 256 rows they are not)
DENSE_MAX_ELEMENTS = 0
#: ... for CLIP and SigLIP (see :data:`DENSE_MAX_ELEMENTS`)
DENSE_MAX_TWO_TOWERS = 1 << 12
#: one block of all the rows, its logits kept from forward to backward (:class:`_Kept`), up to
#: this many similarities (16 MiB in float32), the tiled path above: the kept block is the
#: faster to 2048 x 2048, the tiled path about as fast from 4096 x 4096 at a fraction of the
#: memory. Measured (D=256, one thread, CPU time, forward+backward, kept / tiled, each over the
#: benchmark's dense formula, median of 5 interleaved blocks, at N = 1024, 2048, 4096): CLIP
#: 0.62 / 0.71, 0.58 / 0.64, 0.61 / 0.56; SigLIP 0.77 / 0.96, 0.62 / 0.76, 0.59 / 0.56; InfoNCE
#: 0.74 / 0.97, 0.66 / 0.88, 0.74 / 0.85; NT-Xent (two views) 0.66 / 0.93, 0.69 / 0.87,
#: 0.69 / 0.75
KEEP_MAX_ELEMENTS = 1 << 22

Kind = Literal["softmax", "softplus", "nt_xent"]
_NEG_INF = -math.inf


@dataclass(frozen=True)
class Pairwise:
    """What :func:`pairwise` computes from the logits (see the module docstring)."""

    kind: Kind
    #: ``"softmax"``: also the log-sum-exp of each column
    cols: bool = False
    #: ``"softmax"`` with ``x`` and ``y`` the same rows: the pair ``(i, i)`` is left out
    exclude_self: bool = False
    #: ``"softmax"``: minus the logit of the pair ``(i, i)`` (the row's cross-entropy of class
    #: ``i``, and the column's of class ``j``), taken from the same block of logits, so a
    #: dominant diagonal gives a loss near 0 without cancellation
    minus_diagonal: bool = False
    #: ``"softmax"``: minus the mean logit of the row's positives (the other rows of its label;
    #: SupCon), 0 for a row without one; from the same block of logits, as ``minus_diagonal``
    minus_positive_mean: bool = False
    #: ``"softplus"``: the pairs ``(i, i)`` are positives (``softplus(-z)``), the rest negatives
    positive_diagonal: bool = False
    #: the dense formula up to this many similarities (see :data:`DENSE_MAX_ELEMENTS`)
    dense_max: int = DENSE_MAX_ELEMENTS

    @property
    def labelled(self) -> bool:
        """Positives from labels (NT-Xent, SupCon): the second output is the denominator of
        their mean (no gradient, at least 1): the number of positive pairs (NT-Xent) or of
        rows with a positive (SupCon)."""
        return self.kind == "nt_xent" or self.minus_positive_mean


def rows_per_block(
    rows: int, cols: int, block_size: int | None = None, device: torch.device | None = None
) -> int:
    """Rows per block: ``block_size`` if given, else as many as hold :data:`BLOCK_ELEMENTS`
    logits per CPU thread, or :data:`MAX_BLOCK_ELEMENTS` on an accelerator (at least one)."""
    if block_size is not None:
        return max(1, min(block_size, max(rows, 1)))
    if device is not None and device.type != "cpu":
        elements = MAX_BLOCK_ELEMENTS
    elif torch.compiler.is_compiling():  # a traced graph cannot ask for the thread count
        elements = BLOCK_ELEMENTS
    else:
        elements = min(MAX_BLOCK_ELEMENTS, BLOCK_ELEMENTS * torch.get_num_threads())
    return max(1, min(max(rows, 1), elements // max(cols, 1)))


def _class_bounds(labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(order, first, size)``: the stable order that sorts ``labels``, and for each row the
    position of its class's first member in that order and the class's size. Static shapes,
    no host synchronisation (``torch.unique`` has neither)."""
    labels = labels.long()
    ordered, order = labels.sort(stable=True)
    first = torch.searchsorted(ordered, labels)
    return order, first, torch.searchsorted(ordered, labels, right=True) - first


def positive_counts(labels: Tensor) -> Tensor:
    """Each row's number of positives: the other rows with its label."""
    return _class_bounds(labels)[2] - 1


def _mean_denominator(spec: Pairwise, count: Tensor, dtype: torch.dtype) -> Tensor:
    """The denominator of a labelled spec's mean from each row's number of positives (see
    :attr:`Pairwise.labelled`)."""
    total = count.sum() if spec.kind == "nt_xent" else (count > 0).sum()
    return total.clamp_min(1).to(dtype)


#: the positives of up to this many label pairs (N x N) are found with the nonzero entries of
#: the N x N mask of equal labels, above from the sorted labels. Measured (one thread, every
#: label twice): N=8 9 us against 54, N=256 103 against 75, N=4096 28.7 ms against 0.63 ms
_MASK_PAIRS_MAX = 1 << 14


@dataclass
class _PairIndex:
    """Every same-label pair ``(i, j)``, ``i != j``, as index vectors, ``i`` ascending (``j``
    ascending within a row), and each row's number of them. ``i`` is None when every row has
    exactly one pair (every label twice: SimCLR's two views), ``j[r]`` the partner of row
    ``r``."""

    i: Tensor | None
    j: Tensor
    #: each row's number of pairs; None: one each
    count: Tensor | None
    _offsets: list[int] | None = None

    def rows(self, start: int, stop: int) -> tuple[Tensor | None, Tensor]:
        """The pairs of rows ``start:stop``, their ``i`` counted from ``start``."""
        if self.i is None or self.count is None:
            return None, self.j[start:stop]
        if start == 0 and stop >= self.count.shape[0]:
            return self.i, self.j
        if self._offsets is None:  # where each row's pairs start in i (host integers)
            self._offsets = [0, *self.count.cumsum(0).tolist()]
        a, b = self._offsets[start], self._offsets[stop]
        return self.i[a:b] - start, self.j[a:b]

    def denominator(self, spec: Pairwise, dtype: torch.dtype) -> Tensor:
        """The denominator of ``spec``'s mean (see :attr:`Pairwise.labelled`)."""
        if self.count is None:  # one pair per row: as many pairs as rows, each an anchor
            return torch.tensor(max(self.j.shape[0], 1), dtype=dtype, device=self.j.device)
        if spec.kind == "nt_xent" and self.i is not None:  # the pairs, counted on the host
            return torch.tensor(max(self.i.shape[0], 1), dtype=dtype, device=self.j.device)
        return _mean_denominator(spec, self.count, dtype)


def _pair_index(spec: Pairwise, labels: Tensor | None, device: torch.device) -> _PairIndex | None:
    """The positives of NT-Xent and SupCon by index, on the CPU outside ``torch.compile``: one
    partner per row when every label appears twice; else from the ``N x N`` mask of equal
    labels while it is small (see :data:`_MASK_PAIRS_MAX`), or from the sorted labels (O(N log
    N) and the pairs). None elsewhere, where the masks of :func:`_rows` are used: the pairs'
    number is data-dependent, a host synchronisation on an accelerator and a graph break in a
    compiled graph."""
    if not spec.labelled or labels is None:
        return None
    if device.type != "cpu" or torch.compiler.is_compiling():
        return None
    n = labels.shape[0]
    labels = labels.long()
    ordered, order = labels.sort(stable=True)
    # every label exactly twice (SimCLR's two views, the common case): the sorted labels come
    # in equal pairs, each pair's label above the last one's; each row's one positive is its
    # neighbour in the sorted order
    if (
        n % 2 == 0
        and n > 0
        and torch.equal(ordered[0::2], ordered[1::2])
        and bool((ordered[2::2] > ordered[1:-1:2]).all())
    ):
        partner = torch.empty_like(order)
        partner[order] = order.view(-1, 2).flip(1).reshape(-1)
        return _PairIndex(None, partner, None)
    if n * n <= _MASK_PAIRS_MAX:
        same = labels[:, None] == labels[None, :]
        same.diagonal().fill_(False)
        i, j = same.nonzero().unbind(1)
        return _PairIndex(i, j, same.sum(1))
    first = torch.searchsorted(ordered, labels)
    size = torch.searchsorted(ordered, labels, right=True) - first
    # each row once per member of its class (itself included), then those members in order
    i = torch.repeat_interleave(torch.arange(n, device=device), size)
    shift = (first - size.cumsum(0)).add_(size)  # first member's place minus the row's start
    j = order[torch.arange(i.shape[0], device=device).add_(shift[i])]
    other = j != i
    return _PairIndex(i[other], j[other], size - 1)


# ------------------------------------------------------------------------ unit rows

#: ``F.normalize``'s floor under a norm
_NORM_EPS = 1e-12


def _unit(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x / max(|x|, eps), |x|)`` per row: ``F.normalize(x, dim=1)``'s numbers, and the
    norms its backward needs."""
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / norm.clamp_min(_NORM_EPS), norm


def _unit_grad(grad: Tensor, unit: Tensor, norm: Tensor) -> Tensor:
    """The gradient of ``x`` from that of ``unit = x / max(|x|, eps)``:
    ``(g - u (u . g)) / |x|``, and ``g / eps`` where the floor holds (the norm is a constant
    there). Autograd's backward of ``F.normalize`` is about ten passes over ``x`` (the
    division's two gradients, their sum over the broadcast, the clamp's and the norm's);
    measured at 256 x 256 (one thread, forward and backward) 325 us per tensor, a fifth of an
    in-batch InfoNCE."""
    dot = torch.where(norm >= _NORM_EPS, (unit * grad).sum(1, keepdim=True), 0.0)
    return torch.addcmul(grad, unit, dot, value=-1.0).div_(norm.clamp_min(_NORM_EPS))


def _unit_rows_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return tuple(F.normalize(x, dim=1, eps=_NORM_EPS) for x in saved[: ctx.count])  # type: ignore[attr-defined]


class _UnitRows(LossFunction):
    """Rows scaled to unit length, ``F.normalize(x, dim=1)``'s numbers, with the one-pass
    backward of :func:`_unit_grad`."""

    @staticmethod
    def forward(ctx: FunctionCtx, *xs: Tensor) -> tuple[Tensor, ...]:
        units, norms = zip(*(_unit(x) for x in xs), strict=True)
        ctx.count = len(xs)  # type: ignore[attr-defined]
        # saved tensor i is forward argument i (differentiable_backward's rule)
        ctx.save_for_backward(*xs, *norms, *units)
        return tuple(units)

    @staticmethod
    @differentiable_backward(_unit_rows_eager)
    def backward(ctx: FunctionCtx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        count = ctx.count  # type: ignore[attr-defined]
        saved = ctx.saved_tensors
        norms, units = saved[count : 2 * count], saved[2 * count :]
        return tuple(
            None if not need or g is None else _unit_grad(g, u, norm)
            for need, g, norm, u in zip(ctx.needs_input_grad, grads, norms, units, strict=True)
        )


def unit_rows(*xs: Tensor) -> tuple[Tensor, ...]:
    """Each tensor's rows scaled to unit length, as ``F.normalize(x, dim=1)`` gives them (a zero
    row stays zero), with a fused backward (see :func:`_unit_grad`)."""
    return _UnitRows.apply(*xs)


# ----------------------------------------------------------------- the math of one block


def _diagonal(z: Tensor, start: int) -> Tensor:
    """The block's entries ``(i, start + i)``, the pairs ``(i, i)`` of the whole matrix: a
    view (no index tensors)."""
    return z.diagonal(start)


def _prepare(spec: Pairwise, z: Tensor, start: int, inplace: bool) -> Tensor:
    """The block's logits as the row outputs read them: ``-inf`` on the pairs ``(i, i)`` that
    are no pair (``exclude_self``), or those pairs negated (SigLIP's positives, whose loss is
    ``softplus(-z)``, so every entry's loss is then ``softplus`` of the entry)."""
    if not (spec.exclude_self or spec.positive_diagonal):
        return z
    if not inplace:  # autograd's copy, then the same change
        z = z.clone()
    diagonal = z.diagonal(start)
    if spec.exclude_self:
        diagonal.fill_(_NEG_INF)
    else:
        diagonal.neg_()
    return z


def _same_label(row_labels: Tensor, labels: Tensor, start: int) -> tuple[Tensor, Tensor]:
    """``(same, positive)``: same label, and same label but not the pair ``(i, i)``."""
    same = row_labels[:, None] == labels[None, :]
    positive = same.clone()
    positive.diagonal(start).fill_(False)
    return same, positive


def _rows(
    spec: Pairwise,
    z: Tensor,
    start: int,
    row_labels: Tensor | None,
    labels: Tensor | None,
) -> tuple[Tensor, Tensor | None]:
    """The rows' outputs from a block of logits (after :func:`_prepare`), and the statistic
    the backward needs: the rows' log-sum-exp (``"softmax"``) or their log-sum-exp over the
    negatives (``"nt_xent"``). Out of place and with masks, so autograd can differentiate it
    (the dense formula and double backward)."""
    if spec.kind == "softmax":
        lse = torch.logsumexp(z, 1)
        if spec.minus_positive_mean:
            assert row_labels is not None and labels is not None
            _, positive = _same_label(row_labels, labels, start)
            count = positive.sum(1)
            mean = torch.where(positive, z, 0.0).sum(1) / count.clamp(min=1)
            return torch.where(count > 0, lse - mean, 0.0), lse
        if not spec.minus_diagonal:
            return lse, lse
        return lse - z.diagonal(start), lse
    if spec.kind == "softplus":
        return F.softplus(z).sum(1), None
    assert row_labels is not None and labels is not None
    same, positive = _same_label(row_labels, labels, start)
    # the same-label entries floored, not -inf: a row without a negative then has a finite
    # log-sum-exp near the floor (its terms softplus(floor - z) are 0) and finite gradients
    negative_lse = torch.logsumexp(z.masked_fill(same, torch.finfo(z.dtype).min), 1)
    terms = torch.where(positive, F.softplus(negative_lse[:, None] - z), 0.0)
    return terms.sum(1), negative_lse


def _logits(x: Tensor, y: Tensor, scale: Tensor | float, bias: Tensor | float | None) -> Tensor:
    z = x @ y.T
    z = z * scale
    return z if bias is None else z + bias


def dense(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor | float,
    bias: Tensor | float | None = None,
    labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The dense formula: ``(rows, cols)`` from the whole ``N x M`` matrix, differentiable by
    autograd (any order). ``cols`` is empty unless ``spec.cols``."""
    z = _prepare(spec, _logits(x, y, scale, bias), 0, inplace=False)
    if spec.kind == "softmax" and spec.minus_diagonal and z.shape[0] == z.shape[1]:
        # each row's (and column's) cross-entropy of its own index: torch's fused kernel, the
        # cost of the formula the tiled path replaces
        target = torch.arange(z.shape[0], device=z.device)
        rows = F.cross_entropy(z, target, reduction="none")
        if not spec.cols:
            return rows, x.new_zeros(0)
        return rows, F.cross_entropy(z.T, target, reduction="none")
    rows, _ = _rows(spec, z, 0, labels, labels)
    if spec.labelled:
        assert labels is not None
        return rows, _mean_denominator(spec, positive_counts(labels), rows.dtype)
    if not spec.cols:
        return rows, x.new_zeros(0)
    cols = torch.logsumexp(z, 0)
    if spec.minus_diagonal:
        cols = cols - F.pad(z.diagonal(), (0, cols.shape[0] - min(z.shape)))
    return rows, cols


# --------------------------------------------- the blocks of the Functions (no graph, in place)


@dataclass
class _Positives:
    """The positive pairs of a block as index vectors (row ``i``, column ``j``; ``i`` None: one
    pair per row, ``j[r]`` that of row ``r``) and their logits: NT-Xent and SupCon touch them
    alone, not an ``N x M`` mask (see :func:`_pair_index`)."""

    i: Tensor | None
    j: Tensor
    logits: Tensor

    @staticmethod
    def of(i: Tensor | None, j: Tensor, z: Tensor) -> _Positives:
        logits = z[i, j] if i is not None else z.gather(1, j[:, None]).squeeze(1)
        return _Positives(i, j, logits)

    def per_row(self, values: Tensor, rows: int) -> Tensor:
        """``values`` (one per pair) summed per row."""
        if self.i is None:
            return values
        return values.new_zeros(rows).index_add_(0, self.i, values)

    def of_rows(self, values: Tensor) -> Tensor:
        """The value of each pair's row, from one value per row."""
        return values if self.i is None else values[self.i]

    def put_(self, z: Tensor, values: Tensor, accumulate: bool = False) -> Tensor:
        """``z`` with ``values`` written (or added) at the pairs, in place."""
        if self.i is not None:
            return z.index_put_((self.i, self.j), values, accumulate=accumulate)
        if values.dim() == 0:
            values = values.expand(self.j.shape)
        put = z.scatter_add_ if accumulate else z.scatter_
        return put(1, self.j[:, None], values[:, None])


def _positives(
    spec: Pairwise, z: Tensor, start: int, pairs: _PairIndex | None
) -> _Positives | None:
    """The block's positives (rows ``start:``) by index, and their logits; None without a pair
    index (the masks of :func:`_rows`). NT-Xent's same-label entries are floored in ``z`` (in
    place): the log-sum-exp over the negatives is then the row's, and ``exp(z - lse)`` is 0
    there."""
    if pairs is None:
        return None
    i, j = pairs.rows(start, start + z.shape[0])
    found = _Positives.of(i, j, z)
    if spec.kind == "nt_xent":
        floor = torch.finfo(z.dtype).min
        found.put_(z, z.new_tensor(floor)).diagonal(start).fill_(floor)
    return found


def _block_rows(
    spec: Pairwise,
    z: Tensor,
    start: int,
    row_labels: Tensor | None,
    labels: Tensor | None,
    positives: _Positives | None,
) -> tuple[Tensor, Tensor | None]:
    """:func:`_rows` of a block after :func:`_prepare` and :func:`_positives`, without a
    graph."""
    if positives is None:
        return _rows(spec, z, start, row_labels, labels)
    rows = z.shape[0]
    lse = torch.logsumexp(z, 1)
    if spec.kind == "nt_xent":  # z floored on the same-label entries: lse is the negatives'
        terms = F.softplus(positives.of_rows(lse) - positives.logits)
        return positives.per_row(terms, rows), lse
    count = positives.per_row(torch.ones_like(positives.logits), rows)
    mean = positives.per_row(positives.logits, rows) / count.clamp(min=1)
    return torch.where(count > 0, lse - mean, 0.0), lse


def _block_grad(
    spec: Pairwise,
    z: Tensor,
    start: int,
    grad_rows: Tensor,
    grad_cols: Tensor | None,
    row_stat: Tensor | None,
    col_stat: Tensor | None,
    row_labels: Tensor | None,
    labels: Tensor | None,
    positives: _Positives | None,
    inplace: bool,
) -> Tensor:
    """``d out / d z`` of one block (see :class:`Sweep` for the statistics), in place over
    ``z`` where it can (``inplace``; the kept logits of :class:`_Kept` are not)."""
    if spec.kind == "softmax":
        assert row_stat is not None
        if spec.minus_positive_mean and positives is not None:
            count = positives.per_row(torch.ones_like(positives.logits), z.shape[0])
            grad = torch.where(count > 0, grad_rows, 0.0)  # no positive: loss 0 whatever z is
            dz = (z - row_stat[:, None]).exp_().mul_(grad[:, None])
            share = positives.of_rows(grad / count.clamp(min=1))
            return positives.put_(dz, -share, accumulate=True)
        if spec.minus_positive_mean:
            assert row_labels is not None and labels is not None
            _, positive = _same_label(row_labels, labels, start)
            count = positive.sum(1, keepdim=True)
            # a row without a positive has loss 0 whatever z is
            grad = torch.where(count > 0, grad_rows[:, None], 0.0)
            dz = (z - row_stat[:, None]).exp_().mul_(grad)
            return dz.sub_(positive * (grad / count.clamp(min=1)))
        dz = (z - row_stat[:, None]).exp_().mul_(grad_rows[:, None])
        if spec.cols and col_stat is not None and grad_cols is not None:
            by_col = z.sub_(col_stat[None, :]) if inplace else z - col_stat[None, :]
            dz.add_(by_col.exp_().mul_(grad_cols[None, :]))
        if spec.minus_diagonal:
            diagonal = dz.diagonal(start)
            count = diagonal.shape[0]
            diagonal.sub_(grad_rows[:count])
            if spec.cols and grad_cols is not None:
                diagonal.sub_(grad_cols[start : start + count])
        return dz
    if spec.kind == "softplus":
        dz = z.sigmoid_() if inplace else torch.sigmoid(z)
        if spec.positive_diagonal:  # z holds -z there: d softplus(-z) / dz = -sigmoid(-z)
            dz.diagonal(start).neg_()
        return dz.mul_(grad_rows[:, None])
    assert row_stat is not None
    if positives is not None:
        # d/dz_ip of softplus(lse_n - z_ip) is -sigmoid(lse_n - z_ip); every positive term also
        # moves lse_n, whose derivative in z_in is the softmax over the negatives (z is floored
        # on the same-label entries, where exp(z - lse_n) is 0; in a row without a negative
        # every slope, so the row's total, is 0)
        slope = torch.sigmoid(positives.of_rows(row_stat) - positives.logits)
        slope = slope.mul_(positives.of_rows(grad_rows))
        total = positives.per_row(slope, z.shape[0])
        dz = (z.sub_(row_stat[:, None]) if inplace else z - row_stat[:, None]).exp_()
        dz.mul_(total[:, None])
        return positives.put_(dz, -slope, accumulate=True)
    assert row_labels is not None and labels is not None
    same, positive = _same_label(row_labels, labels, start)
    slope = torch.sigmoid(row_stat[:, None] - z).masked_fill_(~positive, 0.0)
    total = slope.sum(1, keepdim=True)
    # a row without a negative has lse_n at the floor: exp(z - floor) overflows there, and is
    # masked out with `same`
    shifted = z.sub_(row_stat[:, None]) if inplace else z - row_stat[:, None]
    dz = shifted.exp_().masked_fill_(same, 0.0).mul_(total).sub_(slope)
    return dz.mul_(grad_rows[:, None])


def _block_logits(
    spec: Pairwise, scaled_x: Tensor, y: Tensor, bias: Tensor | None, start: int
) -> Tensor:
    """One block of logits from rows of ``scale * x``: one product (and the bias added by it),
    not two more passes over the block."""
    z = torch.mm(scaled_x, y.T) if bias is None else torch.addmm(bias, scaled_x, y.T)
    return _prepare(spec, z, start, inplace=True)


def _column_outputs(spec: Pairwise, z: Tensor, col_stat: Tensor) -> Tensor:
    """The columns' outputs from their log-sum-exp: minus the pair ``(j, j)`` (CLIP)."""
    if not spec.minus_diagonal:
        return col_stat
    diagonal = z.diagonal()
    return torch.cat([col_stat[: diagonal.shape[0]] - diagonal, col_stat[diagonal.shape[0] :]])


def _counts(spec: Pairwise, labels: Tensor | None, pairs: _PairIndex | None, x: Tensor) -> Tensor:
    """The second output of a spec without columns: the denominator of the mean for the
    labelled ones (see :attr:`Pairwise.labelled`), else empty."""
    if not spec.labelled or labels is None:
        return x.new_zeros(0)
    if pairs is not None:
        return pairs.denominator(spec, x.dtype)
    return _mean_denominator(spec, positive_counts(labels), x.dtype)


# ---------------------------------------------------------------------- one kept block


def _keeps_log_softmax(spec: Pairwise, z: Tensor) -> bool:
    """Whether :class:`_Kept` holds the log-softmax of the rows (and of the columns) instead of
    ``z``: for the cross-entropies of the pairs ``(i, i)`` (in-batch InfoNCE, CLIP), whose
    values are minus its diagonal and whose gradient is its exponential times a row (and a
    column) factor. One fused operation each way instead of a log-sum-exp's four: measured on
    CLIP at 1024 x 1024 (two loaded threads, wall time, forward and backward) 49 ms against the
    dense formula's 63 ms, where the log-sum-exps took 182 ms against 125 ms (each operation a
    parallel region that waits on a descheduled thread); one thread 0.64x the dense formula's
    time."""
    return spec.kind == "softmax" and spec.minus_diagonal and z.shape[0] == z.shape[1]


def _keeps_exp(spec: Pairwise, positives: _Positives | None) -> bool:
    """Whether :class:`_Kept` holds ``exp(z - row max)`` instead of ``z``: for the other row
    softmaxes (InfoNCE's explicit negatives, SupCon) and NT-Xent, whose gradient is that times
    a row factor (a pass over the block, not three), with their positives by index where they
    have them."""
    if spec.kind == "nt_xent":
        return positives is not None
    return spec.kind == "softmax" and not spec.cols and (not spec.labelled or bool(positives))


def _rows_from_exp(
    spec: Pairwise, z: Tensor, positives: _Positives | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, lse, sums)`` of a block (see :func:`_keeps_exp`), ``z`` turned in place into
    ``exp(z - row max)``, whose row sums ``sums`` are."""
    diagonal = z.diagonal().clone() if spec.minus_diagonal else None
    top = z.amax(1, keepdim=True)
    sums = z.sub_(top).exp_().sum(1)
    lse = sums.log().add_(top.squeeze(1))
    n = z.shape[0]
    if spec.kind == "nt_xent":
        assert positives is not None
        terms = F.softplus(positives.of_rows(lse) - positives.logits)
        return positives.per_row(terms, n), lse, sums
    if spec.minus_positive_mean:
        assert positives is not None
        count = positives.per_row(torch.ones_like(positives.logits), n)
        mean = positives.per_row(positives.logits, n) / count.clamp(min=1)
        return torch.where(count > 0, lse - mean, 0.0), lse, sums
    return (lse if diagonal is None else lse - diagonal), lse, sums


def _grad_from_exp(
    spec: Pairwise,
    exps: Tensor,
    sums: Tensor,
    lse: Tensor,
    grad_rows: Tensor,
    positives: _Positives | None,
) -> Tensor:
    """``d out / d z`` from what :func:`_rows_from_exp` left: ``exps / sums`` is the softmax of
    each row (over the negatives for NT-Xent), scaled by a factor per row, and the positives'
    own terms (or the diagonal's) taken off."""
    n = exps.shape[0]
    if spec.kind == "nt_xent":
        assert positives is not None
        # see _block_grad: -sigmoid(lse_n - z_ip) at each positive, and the softmax over the
        # negatives times the row's total of those
        slope = torch.sigmoid(positives.of_rows(lse) - positives.logits)
        slope = slope.mul_(positives.of_rows(grad_rows))
        dz = exps * (positives.per_row(slope, n) / sums)[:, None]
        return positives.put_(dz, -slope, accumulate=True)
    if spec.minus_positive_mean:
        assert positives is not None
        count = positives.per_row(torch.ones_like(positives.logits), n)
        grad = torch.where(count > 0, grad_rows, 0.0)  # no positive: loss 0 whatever z is
        dz = exps * (grad / sums)[:, None]
        share = positives.of_rows(grad / count.clamp(min=1))
        return positives.put_(dz, -share, accumulate=True)
    dz = exps * (grad_rows / sums)[:, None]
    if spec.minus_diagonal:
        dz.diagonal().sub_(grad_rows)
    return dz


def _eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    x, y, scale, bias, labels = saved[:5]
    if getattr(ctx, "normalize", False):
        x = F.normalize(x, dim=1, eps=_NORM_EPS)
        y = None if y is None else F.normalize(y, dim=1, eps=_NORM_EPS)
    return dense(ctx.spec, x, x if y is None else y, scale, bias, labels)  # type: ignore[attr-defined]


class _Kept(LossFunction):
    """The whole matrix as one block, its logits kept from forward to backward: the backward
    needs no product to recompute them, and with self-pairs (``y`` None) one product gives the
    gradient of both sides. For matrices up to :data:`KEEP_MAX_ELEMENTS` (see there).
    ``normalize``: the pairs are those of the unit rows of ``x`` and ``y`` (:func:`unit_rows`
    fused in, one Function fewer)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        y: Tensor | None,
        scale: Tensor,
        bias: Tensor | None,
        labels: Tensor | None,
        spec: Pairwise,
        normalize: bool,
    ) -> tuple[Tensor, Tensor]:
        units: tuple[Tensor | None, ...] = (None,) * 4  # unit x, its norms, unit y, its norms
        inputs = (x, y)
        if normalize:
            ux, nx = _unit(x)
            uy, ny = (None, None) if y is None else _unit(y)
            units, x, y = (ux, nx, uy, ny), ux, uy
        other = x if y is None else y
        scaled_x = x * scale
        z = _block_logits(spec, scaled_x, other, bias, 0)
        pairs = _pair_index(spec, labels, x.device)
        sums = row_stat = col_stat = positives = None
        # NT-Xent with one positive per row (every label twice: SimCLR's two views) is each
        # row's cross-entropy of its partner among the other rows: a log-softmax, as below
        partner = spec.kind == "nt_xent" and pairs is not None and pairs.i is None
        ctx.log_softmax = partner or _keeps_log_softmax(spec, z)  # type: ignore[attr-defined]
        if partner:
            assert pairs is not None
            positives = _Positives(None, pairs.j, z.new_zeros(0))
            z = torch.log_softmax(z.fill_diagonal_(_NEG_INF), 1)
            rows = z.gather(1, pairs.j[:, None]).squeeze(1).neg_()
        elif ctx.log_softmax:  # type: ignore[attr-defined]
            if spec.cols:
                col_stat = torch.log_softmax(z, 0)
                cols = col_stat.diagonal().neg()
            z = torch.log_softmax(z, 1)
            rows = z.diagonal().neg()
        else:
            positives = _positives(spec, z, 0, pairs)
            if _keeps_exp(spec, positives):  # z becomes exp(z - row max)
                rows, row_stat, sums = _rows_from_exp(spec, z, positives)
            else:
                rows, row_stat = _block_rows(spec, z, 0, labels, labels, positives)
        if spec.cols and col_stat is None:
            col_stat = torch.logsumexp(z, 0)
            cols = _column_outputs(spec, z, col_stat)
        elif not spec.cols:
            cols = _counts(spec, labels, pairs, x)
            ctx.mark_non_differentiable(cols)
        ctx.spec, ctx.normalize = spec, normalize  # type: ignore[attr-defined]
        # saved tensor i is forward argument i (differentiable_backward's rule), then the rest
        found = (positives.i, positives.j, positives.logits) if positives else (None,) * 3
        ctx.save_for_backward(
            *inputs, scale, bias, labels, row_stat, col_stat, z, sums, scaled_x, *found, *units
        )
        return rows, cols

    @staticmethod
    @differentiable_backward(_eager)
    def backward(
        ctx: FunctionCtx, grad_rows: Tensor, grad_cols: Tensor
    ) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        x, y, scale, bias, labels, row_stat, col_stat, z, sums, scaled_x, i, j, zp = saved[:13]
        ux, nx, uy, ny = saved[13:]
        if ux is not None:  # the pairs of the unit rows
            x, y = ux, uy
        spec: Pairwise = ctx.spec  # type: ignore[attr-defined]
        need_x, need_y, need_scale, need_bias = ctx.needs_input_grad[:4]
        positives = None if j is None else _Positives(i, j, zp)
        if ctx.log_softmax:  # type: ignore[attr-defined]
            # z and col_stat hold the log-softmax of the rows and of the columns
            dz = torch.exp(z).mul_(grad_rows[:, None])
            if positives is not None:  # NT-Xent's partners: minus the row's gradient there
                dz.scatter_add_(1, positives.j[:, None], grad_rows[:, None].neg())
            else:
                total = grad_rows
                if spec.cols:
                    dz.addcmul_(torch.exp(col_stat), grad_cols[None, :])
                    total = grad_rows + grad_cols
                dz.diagonal().sub_(total)
        elif sums is not None:  # z holds exp(z - row max)
            dz = _grad_from_exp(spec, z, sums, row_stat, grad_rows, positives)
        else:
            dz = _block_grad(
                spec,
                z,
                0,
                grad_rows,
                grad_cols if spec.cols else None,
                row_stat,
                col_stat,
                labels,
                labels,
                positives,
                inplace=False,
            )
        dx = dy = dscale = dbias = None
        if y is None:  # z = s x x^T: d/dx = s (dz + dz^T) x, one product
            if need_x or need_scale:
                # dz + dz^T as a blocked transposed copy and a contiguous add (an add of the
                # transposed view is 5x slower)
                unscaled = torch.mm(dz.T.contiguous().add_(dz), x)
                if need_scale:
                    dscale = (unscaled * x).sum().mul_(0.5)
                dx = unscaled.mul_(scale) if need_x else None
        else:
            if need_x or need_scale:
                unscaled = torch.mm(dz, y)
                if need_scale:
                    dscale = (unscaled * x).sum()
                dx = unscaled.mul_(scale) if need_x else None
            if need_y:
                dy = torch.mm(dz.T, scaled_x)
        if need_bias:
            dbias = dz.sum()
        if ux is not None:
            dx = None if dx is None else _unit_grad(dx, ux, nx)
            dy = None if dy is None else _unit_grad(dy, uy, ny)
        return (
            dx,
            dy,
            None if dscale is None else dscale.reshape(scale.shape),
            None if dbias is None or bias is None else dbias.reshape(bias.shape),
            None,
            None,
            None,
        )


# ------------------------------------------------------------------------ the tiled sweep


def _blocks(rows: int, block: int) -> range:
    return range(0, rows, block)


@dataclass
class Sweep:
    """What a forward sweep leaves: the outputs and the statistics its backward needs."""

    rows: Tensor
    cols: Tensor
    #: the rows' log-sum-exp (``"softmax"``), over their negatives (``"nt_xent"``), or None
    row_stat: Tensor | None
    #: the columns' log-sum-exp (``"softmax"`` with ``cols``), else empty
    col_stat: Tensor


def sweep_forward(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor,
    bias: Tensor | None,
    labels: Tensor | None,
    block: int,
) -> Sweep:
    """The outputs of :func:`dense`, block by block, without a graph."""
    n, m = x.shape[0], y.shape[0]
    rows = x.new_empty(n)
    row_stat = x.new_empty(n) if spec.kind != "softplus" else None
    col_stat = x.new_full((m,), _NEG_INF) if spec.cols else x.new_zeros(0)
    diagonal = x.new_zeros(m) if spec.cols and spec.minus_diagonal else None
    with torch.no_grad():
        pairs = _pair_index(spec, labels, x.device)
        scaled_x = x * scale
        for start in _blocks(n, block):
            stop = min(n, start + block)
            z = _block_logits(spec, scaled_x[start:stop], y, bias, start)
            row_labels = None if labels is None else labels[start:stop]
            positives = _positives(spec, z, start, pairs)
            out, stat = _block_rows(spec, z, start, row_labels, labels, positives)
            rows[start:stop] = out
            if row_stat is not None and stat is not None:
                row_stat[start:stop] = stat
            if spec.cols:
                torch.logaddexp(col_stat, torch.logsumexp(z, 0), out=col_stat)
            if diagonal is not None:
                on = z.diagonal(start)
                diagonal[start : start + on.shape[0]] = on
    if spec.cols:
        cols = col_stat if diagonal is None else col_stat - diagonal
    else:
        cols = _counts(spec, labels, pairs, x)
    return Sweep(rows, cols, row_stat, col_stat)


@dataclass
class Grads:
    """Gradients of one sweep: ``d/dx = scale * x_unscaled``; the others complete."""

    x_unscaled: Tensor | None
    y: Tensor | None
    scale: Tensor | None
    bias: Tensor | None


def sweep_backward(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor,
    bias: Tensor | None,
    labels: Tensor | None,
    block: int,
    forward: Sweep,
    grad_rows: Tensor,
    grad_cols: Tensor | None,
    needs: tuple[bool, bool, bool, bool],
) -> Grads:
    """The gradients of ``<grad_rows, rows> + <grad_cols, cols>`` for the inputs ``needs``
    marks (``x``, ``y``, ``scale``, ``bias``), block by block; ``forward``: the statistics of
    :func:`sweep_forward`."""
    need_x, need_y, need_scale, need_bias = needs
    n = x.shape[0]
    dx = x.new_empty(x.shape) if need_x or need_scale else None  # every row is written
    dy = torch.zeros_like(y) if need_y else None
    dbias = x.new_zeros(()) if need_bias else None
    col_stat = forward.col_stat if spec.cols else None
    # a backward run inside an autocast region (torch advises against it) would run these
    # products in the autocast dtype: the loss was computed in float32, and so is its gradient
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        pairs = _pair_index(spec, labels, x.device)
        scaled_x = x * scale
        for start in _blocks(n, block):
            stop = min(n, start + block)
            z = _block_logits(spec, scaled_x[start:stop], y, bias, start)
            row_labels = None if labels is None else labels[start:stop]
            positives = _positives(spec, z, start, pairs)
            dz = _block_grad(
                spec,
                z,
                start,
                grad_rows[start:stop],
                grad_cols,
                None if forward.row_stat is None else forward.row_stat[start:stop],
                col_stat,
                row_labels,
                labels,
                positives,
                inplace=True,
            )
            if dx is not None:
                torch.mm(dz, y, out=dx[start:stop])
            if dy is not None:  # d/dy = dz^T (scale x)
                dy.addmm_(dz.T, scaled_x[start:stop])
            if dbias is not None:
                dbias += dz.sum()
    # z = scale * x y^T + b: d/dscale = sum(dz * x y^T) = sum over rows of (dz y) . x
    dscale = (dx * x).sum() if need_scale and dx is not None else None
    return Grads(dx if need_x else None, dy, dscale, dbias)


class _Tiled(LossFunction):
    """The tiled path. ``y`` None: the pairs of the rows of ``x`` with each other (one input,
    not the same tensor twice, which ``torch.compile`` cannot trace)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        y: Tensor | None,
        scale: Tensor,
        bias: Tensor | None,
        labels: Tensor | None,
        spec: Pairwise,
        block: int,
    ) -> tuple[Tensor, Tensor]:
        sweep = sweep_forward(spec, x, x if y is None else y, scale, bias, labels, block)
        ctx.spec, ctx.block = spec, block  # type: ignore[attr-defined]
        # saved tensor i is forward argument i (differentiable_backward's rule), then the stats
        ctx.save_for_backward(x, y, scale, bias, labels, sweep.row_stat, sweep.col_stat)
        if spec.labelled:
            ctx.mark_non_differentiable(sweep.cols)
        return sweep.rows, sweep.cols

    @staticmethod
    @differentiable_backward(_eager)
    def backward(
        ctx: FunctionCtx, grad_rows: Tensor, grad_cols: Tensor
    ) -> tuple[Tensor | None, ...]:
        x, y, scale, bias, labels, row_stat, col_stat = ctx.saved_tensors
        spec: Pairwise = ctx.spec  # type: ignore[attr-defined]
        need = ctx.needs_input_grad
        self_pairs = y is None
        # with self-pairs x is both sides of every pair: its gradient is the sum of both
        needs = (need[0], need[1] or (self_pairs and need[0]), need[2], bool(need[3]))
        grads = sweep_backward(
            spec,
            x,
            x if y is None else y,
            scale,
            bias,
            labels,
            ctx.block,  # type: ignore[attr-defined]
            Sweep(grad_rows, grad_cols, row_stat, col_stat),
            grad_rows,
            grad_cols if spec.cols else None,
            needs,
        )
        dx, dy = grads.x_unscaled, grads.y
        dx = None if dx is None else dx.mul_(scale)
        if self_pairs and dx is not None and dy is not None:
            dx, dy = dx.add_(dy), None
        dscale = None if grads.scale is None else grads.scale.reshape(scale.shape)
        dbias = None if grads.bias is None or bias is None else grads.bias.reshape(bias.shape)
        return dx, dy, dscale, dbias, None, None, None


def tiled(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor | float,
    bias: Tensor | float | None = None,
    labels: Tensor | None = None,
    block: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The tiled path: ``(rows, cols)`` as :func:`dense` gives them, in blocks of ``block`` rows
    (default: :func:`rows_per_block`)."""
    rows = rows_per_block(x.shape[0], y.shape[0], block, x.device)
    scale_t = scalar_tensor(scale, x)
    bias_t = None if bias is None else scalar_tensor(bias, x)
    return _Tiled.apply(x, None if y is x else y, scale_t, bias_t, labels, spec, rows)


def kept(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor | float,
    bias: Tensor | float | None = None,
    labels: Tensor | None = None,
    normalize: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(rows, cols)`` as :func:`dense` gives them, from one block of logits that the backward
    reuses (:class:`_Kept`); ``normalize``: of the unit rows of ``x`` and ``y``."""
    scale_t = scalar_tensor(scale, x)
    bias_t = None if bias is None else scalar_tensor(bias, x)
    return _Kept.apply(x, None if y is x else y, scale_t, bias_t, labels, spec, normalize)


def scalar_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype and device (a tensor keeps its graph)."""
    if isinstance(value, Tensor):
        return value.to(like.dtype).reshape(())
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def pairwise(
    spec: Pairwise,
    x: Tensor,
    y: Tensor,
    scale: Tensor | float,
    bias: Tensor | float | None = None,
    labels: Tensor | None = None,
    block_size: int | None = None,
    normalize: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(rows, cols)`` of ``spec`` for the logits ``scale * x @ y.T + bias``: with
    ``block_size`` None, the dense formula for the smallest matrices (``spec.dense_max``), one
    kept block up to :data:`KEEP_MAX_ELEMENTS`, the tiled path above; with ``block_size``, the
    tiled path in blocks of that many rows. ``normalize``: ``x`` and ``y`` are first scaled to
    unit rows (as ``F.normalize``; ``y`` may be ``x``)."""
    if block_size is None:
        elements = x.shape[0] * y.shape[0]
        if elements > spec.dense_max and elements <= KEEP_MAX_ELEMENTS:
            return kept(spec, x, y, scale, bias, labels, normalize)
    if normalize:
        x, y = unit_rows(x) * 2 if y is x else unit_rows(x, y)
    if block_size is None and x.shape[0] * y.shape[0] <= spec.dense_max:
        return dense(spec, x, y, scale, bias, labels)
    return tiled(spec, x, y, scale, bias, labels, block_size)
