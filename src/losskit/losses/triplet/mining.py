"""Online triplet mining: choose ``(anchor, positive, negative)`` index triplets from a batch.

Every miner takes a distance matrix ``dist`` of shape ``(N, N)`` (smaller is closer; pass
``1 - similarity`` or ``-similarity`` for similarities) and integer ``labels`` of shape ``(N,)``,
and returns three ``int64`` index tensors ``(anchor, positive, negative)`` of equal length, so
the triplets can feed any loss:

>>> import torch, losskit.functional as LF
>>> from losskit import mining
>>> emb = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]])
>>> labels = torch.tensor([0, 0, 1, 1])
>>> a, p, n = mining.batch_hard_triplets(LF.pairwise_distances(emb), labels)
>>> a.tolist(), p.tolist(), n.tolist()
([0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1])
>>> loss = LF.triplet_margin_loss(emb[a], emb[p], emb[n], margin=0.5)

A positive shares the anchor's label (and is not the anchor itself); a negative has another
label. Anchors without a positive or without a negative produce no triplet. A NaN distance is
the hardest candidate, as for ``torch.argmax``/``argmin``: the miners choose it (and so the
loss of that triplet is NaN) rather than pass over it.

* :func:`batch_all_triplets`: every valid triplet (optionally only those violating a margin);
* :func:`batch_hard_triplets`: per anchor, the farthest positive and the closest negative
  (Hermans, Beyer & Leibe, *In Defense of the Triplet Loss*, 2017);
* :func:`semi_hard_triplets`: per anchor-positive pair, the closest negative that is farther
  than the positive (FaceNet); where no negative is farther, the farthest negative, as
  TensorFlow's ``triplet_semihard_loss`` does.

Memory: all three work on blocks of anchor rows, so their temporaries stay within a fixed
budget (4 Mi elements, or ``block_size`` rows); nothing ``N x N x N`` is ever built. The results
themselves are as long as the number of triplets, which for :func:`batch_all_triplets` can be
large. The miners read the number of triplets (and the largest class size) on the host: their
output shapes depend on the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from losskit._checks import (
    check_floating,
    check_number,
    check_same_device,
    check_tensor,
    fail,
    shape_str,
)
from losskit.losses.triplet.distances import DistanceRows, rows_per_block

__all__ = ["MINERS", "batch_all_triplets", "batch_hard_triplets", "semi_hard_triplets"]

#: the miners known by name to :func:`losskit.functional.triplet_loss`
MINERS: tuple[str, ...] = ("batch_all", "batch_hard", "semi_hard")

Triplets = tuple[Tensor, Tensor, Tensor]


def check_miner(loss: str, miner: object) -> None:
    """``miner`` names one of :data:`MINERS` or is a callable."""
    if not callable(miner) and miner not in MINERS:
        fail(
            loss,
            "miner",
            f"is {miner!r}",
            f"one of {', '.join(map(repr, MINERS))} or a "
            "callable (dist, labels) -> (anchor, positive, negative)",
        )


def _check_miner_inputs(miner: str, dist: object, labels: object, block_size: object) -> Tensor:
    dist = check_floating(miner, "dist", dist)
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1]:
        fail(miner, "dist", f"has shape {shape_str(dist.shape)}", "a square (N, N) matrix")
    labels = check_tensor(miner, "labels", labels)
    if labels.is_floating_point() or labels.is_complex():
        fail(miner, "labels", f"has dtype {labels.dtype}", "integer class labels")
    if labels.shape != dist.shape[:1]:
        fail(
            miner,
            "labels",
            f"has shape {shape_str(labels.shape)}",
            f"({dist.shape[0]},), one label per row of dist",
        )
    check_same_device(miner, "labels", labels, dist, "dist")
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        fail(miner, "block_size", f"is {block_size!r}", "a positive int or None")
    return labels


# ------------------------------------------------------------------------- the mining kernels


#: from this many elements on, :func:`_arg_extreme` reads values and indices from one
#: ``max(dim)``/``min(dim)`` on CPU. Measured on (N, N) float32 rows, one thread: N=512 takes
#: argmin + gather 700 us, min(dim) 215 us; N=4096 (1024 rows) 33 ms against 11 ms. Below it
#: (N=32: 3.8 against 3.3 us) min(dim) enters an OpenMP region even for a few elements, which
#: costs a context switch per call on a loaded machine (8.6 us with two threads on one core),
#: where argmin runs inline. At and above it every kernel of the block is parallel anyway.
_VALUES_AND_INDICES_MIN = 1 << 15


def _arg_extreme(x: Tensor, dim: int, *, largest: bool) -> tuple[Tensor, Tensor]:
    """Index (the first on ties) and value of the largest or smallest entry along ``dim``; a
    NaN is the extreme (its first occurrence), as for ``argmax``/``argmin``.

    ``argmax`` + ``gather`` by default: ``max(dim)`` does not promise the first index on ties
    on every device. On CPU, large inputs take ``max(dim)``/``min(dim)``, whose kernel returns
    the first index on ties and the first NaN exactly as ``argmax``/``argmin`` do (checked in
    tests/test_mining.py) at a third of their time (see ``_VALUES_AND_INDICES_MIN``)."""
    if x.device.type == "cpu" and x.numel() >= _VALUES_AND_INDICES_MIN:
        value, index = x.max(dim) if largest else x.min(dim)
        return index, value
    index = x.argmax(dim) if largest else x.argmin(dim)
    return index, x.gather(dim, index.unsqueeze(dim)).squeeze(dim)


def hardest(
    source: DistanceRows, labels: Tensor, block_size: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per anchor: index of the farthest positive, of the closest negative, and whether both
    exist. Static shapes, and no host synchronisation on accelerators.

    On CPU, where reading a number costs no synchronisation, batches of at least
    ``_TABLE_MIN_ROWS`` rows whose classes are small take :func:`_hardest_by_table`, which
    passes over each block of distances twice (the product and one ``min``) instead of seven
    times; both give the same indices."""
    n = source.size
    if labels.device.type == "cpu" and n >= _TABLE_MIN_ROWS:
        layout = _ClassLayout(labels)
        if layout.width * _TABLE_MAX_CLASS_FRACTION <= n:
            return _hardest_by_table(source, layout, block_size)
    return _hardest_by_mask(source, labels, block_size)


#: fewest rows for which :func:`hardest` builds the positive table on CPU: below, the table's
#: dozen small kernels (a sort, a unique, index arithmetic on N x K) cost more than the mask
#: passes they save. Measured (mining alone, table time / mask time, 8 per class, D=128, one
#: thread): N=64 2.28, 128 1.45, 256 1.00, 512 0.44, 1024 0.32
_TABLE_MIN_ROWS = 512
#: the table path needs the largest class to hold at most this fraction of the batch (a
#: ``(N, K)`` table of a few large classes is as big as the distances it saves passes over)
_TABLE_MAX_CLASS_FRACTION = 16


def _hardest_by_table(
    source: DistanceRows, layout: _ClassLayout, block_size: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`hardest` from the positive table: per block, the positives' distances are
    gathered (``block x K``) for the farthest, and the columns of the anchor's own class are
    overwritten with ``+inf`` by one scatter of ``K`` elements per row before the closest
    negative is read, so no ``block x N`` mask is built, applied or kept.

    Ties and NaN go as in :func:`_hardest_by_mask`: the table lists each row's positives in
    ascending column order, so the first of equal (or NaN) positives is the lowest column, and
    ``+inf`` replaces the own class's values (a NaN among them too) exactly as the mask does."""
    n = source.size
    device = layout.labels.device
    positives, slot_valid = layout.table()
    row = torch.arange(n, device=device)[:, None]
    # the columns that cannot be negatives: the row itself and its class (padded slots point
    # at the row itself, so every index written holds the same +inf and no write races)
    own_class = torch.cat([row, torch.where(slot_valid, positives, row)], 1)
    positive = torch.zeros(n, dtype=torch.long, device=device)
    negative = torch.zeros(n, dtype=torch.long, device=device)
    valid = torch.zeros(n, dtype=torch.bool, device=device)
    block = rows_per_block(n, n, block_size)
    buffer = torch.empty(min(block, n), n, dtype=source.source.dtype, device=device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = source.rows(start, stop, exact=False, out=buffer[: stop - start])
        if positives.shape[1] > 0:
            candidates = d.gather(1, positives[start:stop])
            candidates.masked_fill_(~slot_valid[start:stop], -torch.inf)
            far_slot, far_value = _arg_extreme(candidates, 1, largest=True)
            positive[start:stop] = positives[start:stop].gather(1, far_slot[:, None])[:, 0]
        else:  # every class a singleton: no positive anywhere
            far_value = torch.full((stop - start,), -torch.inf, device=device)
        d.scatter_(1, own_class[start:stop], torch.inf)
        near, near_value = _arg_extreme(d, 1, largest=False)
        negative[start:stop] = near
        valid[start:stop] = (far_value != -torch.inf) & (near_value != torch.inf)
    return positive, negative, valid


def _hardest_by_mask(
    source: DistanceRows, labels: Tensor, block_size: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`hardest` from a same-class mask per block: no host synchronisation at all."""
    n = source.size
    device = labels.device
    block = rows_per_block(n, n, block_size)
    found: list[tuple[Tensor, Tensor, Tensor]] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = source.rows(start, stop, exact=False)
        same = labels[start:stop, None] == labels[None, :]
        candidates = torch.where(same, d, -torch.inf)
        # the anchors themselves: entries (r, start + r) of the block
        candidates.diagonal(start).fill_(-torch.inf)
        far, far_value = _arg_extreme(candidates, 1, largest=True)
        # the last use of d: overwrite it when it is ours
        candidates = (
            d.masked_fill_(same, torch.inf) if source.fresh else d.masked_fill(same, torch.inf)
        )
        near, near_value = _arg_extreme(candidates, 1, largest=False)
        # != rather than > and <: a NaN distance wins argmax and argmin, and its triplet stays
        # (NaN in, NaN out)
        found.append((far, near, (far_value != -torch.inf) & (near_value != torch.inf)))
    if len(found) == 1:  # one block (small batches): no copies
        return found[0]
    if not found:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, empty.bool()
    return tuple(torch.cat(parts) for parts in zip(*found, strict=True))  # type: ignore[return-value]


class _ClassLayout:
    """The classes of a batch from one sort of the labels: the order that groups them, each
    class's size and start in that order. Reads the largest class size on the host."""

    def __init__(self, labels: Tensor) -> None:
        self.labels = labels
        n = labels.shape[0]
        self.order = torch.argsort(labels, stable=True)
        _, self.group, self.counts = torch.unique_consecutive(
            labels[self.order], return_inverse=True, return_counts=True
        )
        #: positives per row at most (the largest class size less one)
        self.width = int(self.counts.max()) - 1 if n > 0 else 0

    def table(self) -> tuple[Tensor, Tensor]:
        """See :func:`positive_table`."""
        order, group, counts, width = self.order, self.group, self.counts, self.width
        n = order.shape[0]
        device = order.device
        if n == 0:
            empty = torch.zeros(0, 0, dtype=torch.long, device=device)
            return empty, empty.bool()
        starts = counts.cumsum(0) - counts
        # each row's class and its rank within the class, in the original order
        group_of = torch.empty_like(group)
        group_of[order] = group
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=device) - starts[group]
        slot = torch.arange(width, device=device)
        member = slot + (slot >= rank[:, None])  # skip the row itself
        valid = member < counts[group_of][:, None]
        index = order[(starts[group_of][:, None] + member).clamp(max=n - 1)]
        return index, valid


def positive_table(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's positives, padded: ``(N, K - 1)`` indices (ascending) and a validity mask,
    with ``K`` the largest class size. Built from one sort of the labels, O(N K); reads ``K``
    on the host."""
    return _ClassLayout(labels).table()


def semi_hard(
    source: DistanceRows,
    labels: Tensor,
    positives: Tensor,
    positive_valid: Tensor,
    block_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """For every (anchor, positive) slot of :func:`positive_table`: the semi-hard negative (or
    the farthest negative where none is farther than the positive) and whether the slot is a
    triplet. Temporaries: one ``block x K x N`` comparison per block."""
    n, width = positives.shape
    device = labels.device
    negative = torch.zeros(n, width, dtype=torch.long, device=device)
    valid = torch.zeros(n, width, dtype=torch.bool, device=device)
    block = rows_per_block(n, max(1, 2 * width) * n, block_size)
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = source.rows(start, stop, exact=False)
        same = labels[start:stop, None] == labels[None, :]
        farthest, far_value = _arg_extreme(torch.where(same, -torch.inf, d), 1, largest=True)
        negatives = torch.where(same, torch.inf, d)
        d_pos = d.gather(1, positives[start:stop])
        beyond = torch.where(
            negatives[:, None, :] > d_pos[:, :, None], negatives[:, None, :], torch.inf
        )
        nearest, near_value = _arg_extreme(beyond, 2, largest=False)
        # a NaN distance is never "farther than the positive", but it wins the farthest
        # negative (argmax), and then it is the choice: NaN in, NaN out, as in batch_hard
        semi = (near_value < torch.inf) & ~far_value.isnan()[:, None]
        negative[start:stop] = torch.where(semi, nearest, farthest[:, None])
        valid[start:stop] = positive_valid[start:stop] & (far_value != -torch.inf)[:, None]
    return negative, valid


def all_triplets(
    source: DistanceRows,
    labels: Tensor,
    positives: Tensor,
    positive_valid: Tensor,
    margin: float | None = None,
    block_size: int | None = None,
) -> Triplets:
    """Every valid triplet, anchor-major, positives then negatives ascending; with ``margin``,
    only those with ``d(a, p) - d(a, n) + margin > 0``."""
    n, width = positives.shape
    device = labels.device
    found: list[Triplets] = []
    block = rows_per_block(n, max(1, width) * n, block_size)
    for start in range(0, n, block):
        stop = min(n, start + block)
        negative = labels[start:stop, None] != labels[None, :]
        keep = positive_valid[start:stop, :, None] & negative[:, None, :]
        if margin is not None:
            d = source.rows(start, stop)
            d_pos = d.gather(1, positives[start:stop])
            # "not <= 0" keeps a NaN violation: NaN is the hardest (see the module docs)
            keep &= ~(d_pos[:, :, None] - d[:, None, :] + margin <= 0)
        a, slot, neg = keep.nonzero(as_tuple=True)
        a = a + start
        found.append((a, positives[a, slot], neg))
    if not found:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, empty
    return tuple(torch.cat(parts) for parts in zip(*found, strict=True))  # type: ignore[return-value]


# ------------------------------------------------------------------------------ public miners


def batch_hard_triplets(dist: Tensor, labels: Tensor, *, block_size: int | None = None) -> Triplets:
    """Per anchor, its farthest positive and its closest negative (batch-hard mining).

    ``dist``: ``(N, N)`` distances; ``labels``: ``(N,)`` integers. Returns ``(anchor, positive,
    negative)``, one triplet per anchor that has both a positive and a negative, anchors
    ascending. ``block_size`` rows of ``dist`` are processed at a time (default: a 4 Mi-element
    budget). Ties go to the lowest index.

    >>> import torch
    >>> from losskit.mining import batch_hard_triplets
    >>> dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 5.0], [2.0, 5.0, 0.0]])
    >>> [t.tolist() for t in batch_hard_triplets(dist, torch.tensor([0, 0, 1]))]
    [[0, 1], [1, 0], [2, 2]]
    """
    labels = _check_miner_inputs("batch_hard_triplets", dist, labels, block_size)
    positive, negative, valid = hardest(DistanceRows("matrix", dist.detach()), labels, block_size)
    anchor = valid.nonzero().squeeze(1)
    return anchor, positive[anchor], negative[anchor]


def semi_hard_triplets(dist: Tensor, labels: Tensor, *, block_size: int | None = None) -> Triplets:
    """Per (anchor, positive) pair, the closest negative farther than the positive (FaceNet's
    semi-hard negative); if every negative is closer than the positive, the farthest negative.

    ``dist``: ``(N, N)`` distances; ``labels``: ``(N,)`` integers. Returns ``(anchor, positive,
    negative)``, one triplet per positive pair whose anchor has a negative, ordered by anchor
    then positive. Memory per block: ``block_size x K x N`` with ``K`` the largest class size.

    >>> import torch
    >>> from losskit.mining import semi_hard_triplets
    >>> dist = torch.tensor([[0.0, 2.0, 1.0, 3.0], [2.0, 0.0, 4.0, 1.0],
    ...                      [1.0, 4.0, 0.0, 2.0], [3.0, 1.0, 2.0, 0.0]])
    >>> [t.tolist() for t in semi_hard_triplets(dist, torch.tensor([0, 0, 1, 1]))]
    [[0, 1, 2, 3], [1, 0, 3, 2], [3, 2, 1, 0]]
    """
    labels = _check_miner_inputs("semi_hard_triplets", dist, labels, block_size)
    source = DistanceRows("matrix", dist.detach())
    positives, positive_valid = positive_table(labels)
    negative, valid = semi_hard(source, labels, positives, positive_valid, block_size)
    anchor, slot = valid.nonzero(as_tuple=True)
    return anchor, positives[anchor, slot], negative[anchor, slot]


def batch_all_triplets(
    dist: Tensor,
    labels: Tensor,
    *,
    margin: float | None = None,
    block_size: int | None = None,
) -> Triplets:
    """Every valid triplet, or with ``margin`` only those that violate it
    (``dist[a, p] - dist[a, n] + margin > 0``, the triplets with a positive hinge loss).

    ``dist``: ``(N, N)`` distances; ``labels``: ``(N,)`` integers. Returns ``(anchor, positive,
    negative)`` ordered by anchor, positive, negative. Streamed over blocks of anchors, so the
    temporaries stay within ``block_size x K x N`` (``K`` the largest class size) instead of
    the ``N x N x N`` mask a vectorised enumeration builds; only the output grows with the
    number of triplets.

    >>> import torch
    >>> from losskit.mining import batch_all_triplets
    >>> dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 5.0], [2.0, 5.0, 0.0]])
    >>> [t.tolist() for t in batch_all_triplets(dist, torch.tensor([0, 0, 1]))]
    [[0, 1], [1, 0], [2, 2]]
    >>> [t.tolist() for t in batch_all_triplets(dist, torch.tensor([0, 0, 1]), margin=0.5)]
    [[], [], []]
    """
    labels = _check_miner_inputs("batch_all_triplets", dist, labels, block_size)
    if margin is not None:
        margin = check_number("batch_all_triplets", "margin", margin)
    source = DistanceRows("matrix", dist.detach())
    positives, positive_valid = positive_table(labels)
    return all_triplets(source, labels, positives, positive_valid, margin, block_size)
