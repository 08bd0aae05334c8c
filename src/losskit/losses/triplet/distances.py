"""Distances for metric learning: whole matrices from one Gram matmul, and row-by-row pairs.

Three built-in distances, by name:

* ``"euclidean"``: :math:`\\lVert x - y \\rVert_2`;
* ``"squared_euclidean"``: :math:`\\lVert x - y \\rVert_2^2`;
* ``"cosine"``: :math:`1 - \\cos(x, y)` (embeddings are L2-normalised first; a zero vector
  normalises to zero, so its distance to anything is 1).

Matrices come from ``|x|^2 + |y|^2 - 2 x y^T`` with a single matmul; values within its
rounding error of zero (duplicate rows) are exactly zero. The rows are centred first (the batch
mean, a constant, is subtracted): Euclidean distances do not change, but the Gram form then
cancels only the spread of the batch, not a common offset, so embeddings around 1000 with a
spread of 0.1 keep float32 precision (clusters far apart from each other still lose digits within
each cluster). The square root of the Euclidean distance is safe: its gradient at zero distance
(duplicate embeddings, the diagonal) is 0 instead of ``inf``/``NaN``, and so is its second
derivative.

Double backward (``create_graph=True``) is exact: the custom autograd Functions here recompute
their gradient through an eager, dense formula of the same distances when a graph of the
gradient is asked for (:func:`losskit._autograd.differentiable_backward`).

The private helpers at the bottom (``DistanceRows``, ``pair_distances``) are what the triplet loss
and the miners stream over: blocks of rows of the matrix, and distances of selected pairs with
memory bounded by a chunk size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autograd import LossFunction, differentiable_backward
from losskit._checks import (
    check_floating,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    shape_str,
)
from losskit._reduce import upcast

__all__ = ["DISTANCES", "DistanceName", "paired_distances", "pairwise_distances"]

DistanceName = Literal["euclidean", "squared_euclidean", "cosine"]
#: the distances known by name
DISTANCES: tuple[str, ...] = ("euclidean", "squared_euclidean", "cosine")
#: a user distance: ``(x, y) -> (N, M)`` matrix for the label form, or ``(x1, x2) -> (...)``
#: row-wise distances for the explicit form
DistanceFn = Callable[[Tensor, Tensor], Tensor]

#: elements per temporary block (4 Mi: 16 MiB in float32); bounds the memory of every streamed
#: computation in this module and in the miners
BLOCK_ELEMENTS = 1 << 22


def check_distance_name(loss: str, distance: object, *, allow_callable: bool = True) -> None:
    if callable(distance) and allow_callable:
        return
    if distance not in DISTANCES:
        names = ", ".join(map(repr, DISTANCES))
        expected = f"one of {names}" + (" or a callable" if allow_callable else "")
        fail(loss, "distance", f"is {distance!r}", expected)


def _squared_norms(x: Tensor) -> Tensor:
    return x.square().sum(1)


def centre(x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """``x`` and ``y`` minus the mean of all their rows, a detached constant.

    Euclidean distances are translation invariant, values and derivatives alike, but the Gram
    form ``|x|^2 + |y|^2 - 2 x.y`` loses the digits of a common offset (embeddings near 1000
    with a spread of 0.1 lose every digit in float32). A feature whose mean is not finite (a
    NaN or infinite row) is left uncentred, so that row alone stays non-finite.
    """
    rows = x.shape[0] + (0 if y is None else y.shape[0])
    total = x.detach().sum(0) if y is None else x.detach().sum(0) + y.detach().sum(0)
    mean = total / max(1, rows)
    mean = torch.where(mean.isfinite(), mean, 0.0)
    return x - mean, None if y is None else y - mean


def _rounding_zero(d2: Tensor, sq_rows: Tensor, sq_cols: Tensor) -> Tensor:
    """Where ``d2 = |x|^2 + |y|^2 - 2 x.y`` is no larger than its rounding error (a few eps of
    ``|x|^2 + |y|^2``; 16 eps is above what float32/float64 matmuls leave for duplicate rows):
    those distances are 0. Without this, duplicates get a distance of pure rounding noise, and
    the Euclidean second derivative ``1 / d`` there is huge instead of the 0 of a zero distance."""
    noise = sq_rows.detach()[:, None] + sq_cols.detach()
    return d2 <= noise.mul_(16 * torch.finfo(d2.dtype).eps)


def _zero_rounding(d2: Tensor, sq_rows: Tensor, sq_cols: Tensor, kind: str) -> Tensor:
    """Differentiable form of the distances from the Gram expression ``d2``: 0 where it is
    rounding noise (see :func:`_rounding_zero`). The squared distance keeps its derivatives
    there (its Hessian is 2 I everywhere, even at 0); the Euclidean one has 0 derivatives."""
    zero = _rounding_zero(d2, sq_rows, sq_cols)
    if kind == "euclidean":
        return safe_sqrt(torch.where(zero, 0.0, d2))
    return d2 - torch.where(zero, d2, 0.0).detach()


def safe_sqrt(squared: Tensor) -> Tensor:
    """``sqrt`` whose first and second derivatives are 0 at 0 (instead of ``inf``/``NaN``),
    as the analytic backwards treat a zero distance. A NaN stays NaN."""
    # not "squared > 0", which is False for NaN and would turn it into a distance of 0
    zero = squared <= 0
    return torch.where(zero, 0.0, torch.where(zero, 1.0, squared).sqrt())


def _gram_distances(x: Tensor, y: Tensor | None, kind: str) -> Tensor:
    """Differentiable (squared) Euclidean distance matrix of centred ``x`` and ``y`` (``x``
    itself when ``None``, with an exactly zero diagonal): the eager formula of the Functions."""
    xc, yc = centre(x, y)
    other = xc if yc is None else yc
    sq_rows, sq_cols = _squared_norms(xc), _squared_norms(other)
    d = _zero_rounding(sq_rows[:, None] + sq_cols - 2.0 * xc @ other.T, sq_rows, sq_cols, kind)
    if y is None:
        d = torch.where(torch.eye(d.shape[0], dtype=torch.bool, device=d.device), 0.0, d)
    return d


def _euclidean_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> Tensor:
    x, y = saved[0], saved[1]
    return _gram_distances(x, y, "euclidean")


class _EuclideanMatrix(LossFunction):
    """``D[i, j] = |x_i - y_j|`` (``y`` is ``x`` when ``None``) from one Gram matmul of the
    centred rows, with an analytic backward that saves only the inputs and ``D`` (autograd
    through the expression would keep three more ``N x M`` tensors)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, y: Tensor | None) -> Tensor:
        xc, yc = centre(x, y)
        other = xc if yc is None else yc
        sq_rows, sq_cols = _squared_norms(xc), _squared_norms(other)
        d = torch.addmm(sq_rows[:, None], xc, other.T, alpha=-2.0).add_(sq_cols)
        d.masked_fill_(_rounding_zero(d, sq_rows, sq_cols), 0.0).sqrt_()
        if y is None:
            # rounding leaves ~sqrt(eps)*|x| on the diagonal of the Gram form; it is exactly 0
            d.fill_diagonal_(0.0)
        ctx.save_for_backward(x, y, d)
        return d

    @staticmethod
    @differentiable_backward(_euclidean_eager)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor | None]:
        x, y, d = ctx.saved_tensors
        xc, yc = centre(x, y)
        other = xc if yc is None else yc
        # dD_ij/dx_i = (x_i - y_j) / D_ij; at D_ij = 0 the subgradient 0 keeps it finite
        v = torch.where(d > 0, grad / torch.where(d > 0, d, 1.0), 0.0)
        grad_x = xc * v.sum(1, keepdim=True) - v @ other
        grad_y = other * v.sum(0)[:, None] - v.T @ xc
        if y is None:
            return grad_x + grad_y, None
        return grad_x, grad_y


def distance_matrix(x: Tensor, y: Tensor | None, distance: str) -> Tensor:
    """The distance matrix in the compute dtype of ``x`` (and ``y``)."""
    if distance == "euclidean":
        return _EuclideanMatrix.apply(x, y)
    if distance == "squared_euclidean":
        return _gram_distances(x, y, distance)
    xn = F.normalize(x, dim=1)
    yn = xn if y is None else F.normalize(y, dim=1)
    d = 1.0 - xn @ yn.T
    if y is None:
        d.fill_diagonal_(0.0)
    return d


def pairwise_distances(
    x: Tensor, y: Tensor | None = None, *, distance: DistanceName = "euclidean"
) -> Tensor:
    r"""Every distance between the rows of ``x`` and the rows of ``y`` (``x`` itself if ``None``).

    Shapes: ``x`` is ``(N, D)``, ``y`` is ``(M, D)``; the result is ``(N, M)`` (``(N, N)`` with an
    exactly zero diagonal when ``y`` is ``None``). One Gram matmul, ``|x|^2 + |y|^2 - 2 x y^T``
    of the centred rows (exactly 0 within its rounding error); the Euclidean square root has
    first and second derivatives 0 at zero distance, so duplicate embeddings give finite
    gradients. float16/bfloat16 are computed in float32 and returned in the input dtype.
    Differentiable twice (``create_graph=True``).

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> LF.pairwise_distances(x)
    tensor([[0., 5.],
            [5., 0.]])
    >>> LF.pairwise_distances(x, distance="squared_euclidean")[0, 1].item()
    25.0
    """
    loss = "pairwise_distances"
    check_floating(loss, "x", x)
    check_distance_name(loss, distance, allow_callable=False)
    if x.dim() != 2:
        fail(loss, "x", f"has shape {shape_str(x.shape)}", "(N, D)")
    if y is not None:
        check_floating(loss, "y", y)
        check_same_dtype(loss, "y", y, x, "x")
        check_same_device(loss, "y", y, x, "x")
        if y.dim() != 2 or y.shape[1] != x.shape[1]:
            fail(loss, "y", f"has shape {shape_str(y.shape)}", f"(M, {x.shape[1]}) like x")
    return distance_matrix(upcast(x), upcast(y), distance).to(x.dtype)


def paired(x1: Tensor, x2: Tensor, distance: str) -> Tensor:
    """Row-wise distances over the last dimension, in the compute dtype."""
    if distance == "cosine":
        return 1.0 - (F.normalize(x1, dim=-1) * F.normalize(x2, dim=-1)).sum(-1)
    squared = (x1 - x2).square().sum(-1)
    # not vector_norm: its second derivative at a zero vector is NaN
    return squared if distance == "squared_euclidean" else safe_sqrt(squared)


def paired_distances(x1: Tensor, x2: Tensor, *, distance: DistanceName = "euclidean") -> Tensor:
    r"""Distances between corresponding rows: ``x1`` and ``x2`` of shape ``(..., D)`` give
    ``(...)``. The Euclidean distance has first and second derivatives 0 (not NaN) where
    ``x1 == x2``.

    >>> import torch, losskit.functional as LF
    >>> LF.paired_distances(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2))
    tensor([5.])
    >>> LF.paired_distances(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), distance="cosine")
    tensor([1.])
    """
    loss = "paired_distances"
    check_floating(loss, "x1", x1)
    check_floating(loss, "x2", x2)
    check_same_shape(loss, "x2", x2, x1, "x1")
    check_same_dtype(loss, "x2", x2, x1, "x1")
    check_same_device(loss, "x2", x2, x1, "x1")
    check_distance_name(loss, distance, allow_callable=False)
    if x1.dim() == 0:
        fail(loss, "x1", "is a scalar", "(..., D) with a last dimension of features")
    return paired(upcast(x1), upcast(x2), distance).to(x1.dtype)


# ------------------------------------------------------------------ streaming helpers (private)


def rows_per_block(rows: int, elements_per_row: int, block_size: int | None = None) -> int:
    """How many rows a block holds: ``block_size`` if given, else as many as fit in
    :data:`BLOCK_ELEMENTS` (at least one)."""
    if block_size is not None:
        return max(1, block_size)
    return max(1, min(rows, BLOCK_ELEMENTS // max(1, elements_per_row)))


class DistanceRows:
    """Blocks of rows of a distance matrix, without holding the matrix.

    ``kind`` is a distance name (``source`` holds the embeddings, L2-normalised already for
    ``"cosine"``) or ``"matrix"`` (``source`` is the matrix itself, e.g. from a user distance).
    ``source`` must not require grad: these blocks are for mining and for analytic backwards.
    For the Euclidean distances it is centred first (see :func:`centre`).
    """

    def __init__(self, kind: str, source: Tensor) -> None:
        self.kind = kind
        self.size = source.shape[0]
        if kind in ("euclidean", "squared_euclidean"):
            source = centre(source)[0]
            self.sq = _squared_norms(source)
        self.source = source

    def matrix(self) -> Tensor:
        """The whole matrix as a differentiable function of ``source`` (which may require grad
        here): the eager formula behind the double backward of the streamed Functions."""
        if self.kind == "matrix":
            return self.source
        if self.kind == "cosine":
            return 1.0 - self.source @ self.source.T
        d = self.sq[:, None] + self.sq - 2.0 * self.source @ self.source.T
        return _zero_rounding(d, self.sq, self.sq, self.kind)

    @property
    def fresh(self) -> bool:
        """Whether :meth:`rows` returns new tensors (free to modify in place) rather than
        views of the matrix."""
        return self.kind != "matrix"

    def rows(
        self, start: int, stop: int, *, exact: bool = True, out: Tensor | None = None
    ) -> Tensor:
        """Rows ``start:stop`` of the distance matrix. ``exact=False`` returns, per row, an
        increasing function of the distance (``|y|^2 - 2 x.y`` for the Euclidean distances,
        ``-x.y`` for cosine): the same order within each row, which is all that mining
        compares, from one fused matmul. With ``exact=False`` and ``out`` (a
        ``(stop - start, N)`` buffer, reused by the caller from block to block) the rows are
        written there, a copy even for a matrix, so the caller may overwrite them."""
        src = self.source
        if self.kind == "matrix":
            return src[start:stop] if out is None else out.copy_(src[start:stop])
        if self.kind == "cosine":
            if out is not None and not exact:
                return torch.mm(src[start:stop], src.T, out=out).neg_()
            d = torch.mm(src[start:stop], src.T).neg_()
            return d.add_(1.0) if exact else d
        if not exact:
            return torch.addmm(self.sq[None, :], src[start:stop], src.T, alpha=-2.0, out=out)
        d = torch.addmm(self.sq[start:stop, None], src[start:stop], src.T, alpha=-2.0)
        d.add_(self.sq).masked_fill_(_rounding_zero(d, self.sq[start:stop], self.sq), 0.0)
        return d.sqrt_() if self.kind == "euclidean" else d

    def backward_rows(
        self, grad: Tensor, weight: Tensor, start: int, stop: int, block: Tensor
    ) -> None:
        """Add to ``grad`` (shaped like ``source``) the gradient of ``sum(weight * D[start:stop])``,
        where ``block`` holds those exact rows of ``D``."""
        if self.kind == "matrix":
            grad[start:stop] += weight
            return
        src = self.source
        part = src[start:stop]
        if self.kind == "cosine":
            grad[start:stop] -= weight @ src
            grad -= weight.T @ part
            return
        if self.kind == "euclidean":
            v = torch.where(block > 0, weight / torch.where(block > 0, block, 1.0), 0.0)
        else:
            v = 2.0 * weight
        grad[start:stop] += part * v.sum(1, keepdim=True) - v @ src
        grad += src * v.sum(0)[:, None] - v.T @ part


def _anchor_index(i: Tensor | None, j: Tensor, n: int) -> Tensor:
    """The first rows of the pairs: ``i``, or for ``None`` every row in turn, repeated."""
    if i is not None:
        return i
    return torch.arange(n, device=j.device).repeat(j.shape[0] // max(n, 1))


def _pair_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> Tensor:
    source, i, j = saved[:3]
    return _paired_rows(source, _anchor_index(i, j, source.shape[0]), j, ctx.kind)


class _PairDistances(LossFunction):
    """Distances of the pairs ``(i[k], j[k])`` of rows of ``source``, computed and
    differentiated in chunks: memory stays O(pairs + chunk * D) however many pairs there are
    (autograd would keep two gathered ``pairs x D`` copies). Double backward goes through the
    unchunked formula.

    ``i=None`` stands for every row of ``source`` in turn, repeated along ``j`` (the anchors
    of batch-hard mining): those rows are read in place by broadcasting, and their gradient is
    a sum, not a scatter. Every kernel over ``pairs x D`` elements is a parallel region, which
    costs a context switch on a loaded machine, so there are few of them: rows gathered with
    ``index_select`` (advanced indexing enters a parallel region even for a few rows), one
    ``vector_norm`` kernel per distance, and, when the pairs fit in one chunk, the differences
    kept from forward to backward (``pairs x D``, at most a chunk) instead of gathered again."""

    @staticmethod
    def forward(ctx: FunctionCtx, source: Tensor, i: Tensor | None, j: Tensor, kind: str) -> Tensor:
        pairs, (n, features) = j.shape[0], source.shape
        chunk = rows_per_block(pairs, features)
        if i is None and chunk < pairs:
            i = _anchor_index(None, j, n)
        out = torch.empty(pairs, dtype=source.dtype, device=source.device)
        kept = None
        for start in range(0, pairs, chunk):
            stop = start + chunk
            first, second = _pair_rows(source, i, j, start, stop)
            if kind == "cosine":  # source is normalised already
                out[start:stop] = torch.linalg.vecdot(first, second).reshape(-1).neg_().add_(1.0)
                continue
            diff = (first - second).reshape(-1, features)
            norm = torch.linalg.vector_norm(diff, dim=1)
            out[start:stop] = norm if kind == "euclidean" else norm.square_()
            kept = diff if chunk >= pairs else None
        ctx.save_for_backward(source, i, j, out, kept)
        ctx.kind = kind
        return out

    @staticmethod
    @differentiable_backward(_pair_eager)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        source, i, j, dist, kept = ctx.saved_tensors
        pairs, (n, features) = j.shape[0], source.shape
        chunk = rows_per_block(pairs, features)
        out = torch.zeros_like(source) if i is not None else None
        for start in range(0, pairs, chunk):
            stop = start + chunk
            g = grad[start:stop, None]
            # on CPU index_add_ with alpha=-1 takes a path without a parallel region, where
            # alpha=1 (scatter_add) enters one for any size: the terms are scattered negated
            if ctx.kind == "cosine":
                # d(1 - x_i . x_j)/dx_i = -x_j: the first rows get -g x_j, the second -g x_i
                first, second = _pair_rows(source, i, j, start, stop)
                g = g.view(*second.shape[:-1], 1)
                neg_first = (second * g).reshape(-1, features)
                neg_second = (first * g).reshape(-1, features)
                if i is None:
                    out = neg_first.view(-1, n, features).sum(0).neg_()
                else:
                    assert out is not None
                    out.index_add_(0, i[start:stop], neg_first, alpha=-1)
                out.index_add_(0, j[start:stop], neg_second, alpha=-1)
                continue
            if ctx.kind == "euclidean":
                d = dist[start:stop, None]
                apart = d > 0
                g = torch.where(apart, g / torch.where(apart, d, 1.0), 0.0)
            else:
                g = 2.0 * g
            if kept is None:
                first, second = _pair_rows(source, i, j, start, stop)
                diff = (first - second).reshape(-1, features)
            else:
                diff = kept
            to_first = diff * g  # and -to_first to the second rows
            if i is None:  # one chunk, every row in turn
                out = to_first.view(-1, n, features).sum(0)
            else:
                assert out is not None
                out.index_add_(0, i[start:stop], to_first)
            out.index_add_(0, j[start:stop], to_first, alpha=-1)
        return torch.zeros_like(source) if out is None else out, None, None, None


def _pair_rows(
    source: Tensor, i: Tensor | None, j: Tensor, start: int, stop: int
) -> tuple[Tensor, Tensor]:
    """The rows of pairs ``start:stop``: gathered for ``i``, or with ``i=None`` (one chunk of
    every row in turn) ``source`` itself broadcast against ``(repeats, N, D)`` second rows."""
    second = source.index_select(0, j[start:stop])
    if i is None:
        return source, second.view(-1, *source.shape)
    return source.index_select(0, i[start:stop]), second


def _paired_rows(source: Tensor, i: Tensor, j: Tensor, kind: str) -> Tensor:
    if kind == "cosine":  # source is normalised already
        return 1.0 - (source[i] * source[j]).sum(1)
    squared = (source[i] - source[j]).square().sum(1)
    return squared if kind == "squared_euclidean" else safe_sqrt(squared)


def pair_distances(kind: str, source: Tensor, i: Tensor | None, j: Tensor) -> Tensor:
    """Differentiable distances of the pairs ``(i[k], j[k])``: gathered from ``source`` when it
    is a matrix (``kind == "matrix"``), else computed from its rows in bounded memory.
    ``i=None``: every row in turn, repeated along ``j`` (``len(j)`` a multiple of ``N``)."""
    if kind == "matrix":
        return source[_anchor_index(i, j, source.shape[0]), j]
    return _PairDistances.apply(source, i, j, kind)
