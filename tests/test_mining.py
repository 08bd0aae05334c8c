"""The public miners: against explicit loops, against pytorch-metric-learning, streamed in blocks
of any size, usable with other losses, and their errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
from losskit import LossInputError, mining
from losskit.losses.triplet.cases import loop_triplets

MINERS = {
    "batch_all": mining.batch_all_triplets,
    "batch_hard": mining.batch_hard_triplets,
    "semi_hard": mining.semi_hard_triplets,
}


def batch(n: int, classes: int, seed: int, dim: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    return x, labels


def as_list(triplets) -> list[tuple[int, int, int]]:
    a, p, n = triplets
    assert a.dtype == p.dtype == n.dtype == torch.long
    return list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 14),
    classes=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    miner=st.sampled_from(sorted(MINERS)),
    distance=st.sampled_from(["euclidean", "squared_euclidean", "cosine"]),
    block=st.sampled_from([None, 1, 3]),
)
def test_miners_match_explicit_loops(n, classes, seed, miner, distance, block):
    x, labels = batch(n, classes, seed)
    dist = LF.pairwise_distances(x, distance=distance)
    got = as_list(MINERS[miner](dist, labels, block_size=block))
    assert got == loop_triplets(dist.tolist(), labels.tolist(), miner)


@pytest.mark.parametrize("block", [None, 1, 2, 5])
def test_batch_all_with_margin_keeps_the_violating_triplets(block):
    x, labels = batch(12, 3, 1)
    dist = LF.pairwise_distances(x)
    d = dist.tolist()
    expected = [
        t
        for t in loop_triplets(d, labels.tolist(), "batch_all")
        if d[t[0]][t[1]] - d[t[0]][t[2]] + 0.3 > 0
    ]
    assert (
        as_list(mining.batch_all_triplets(dist, labels, margin=0.3, block_size=block)) == expected
    )


def test_ties_go_to_the_lowest_index():
    dist = torch.tensor(
        [
            [0.0, 2.0, 2.0, 1.0, 1.0],
            [2.0, 0.0, 1.0, 3.0, 3.0],
            [2.0, 1.0, 0.0, 3.0, 3.0],
            [1.0, 3.0, 3.0, 0.0, 1.0],
            [1.0, 3.0, 3.0, 1.0, 0.0],
        ]
    )
    labels = torch.tensor([0, 0, 0, 1, 1])
    a, p, n = mining.batch_hard_triplets(dist, labels)
    assert (a[0].item(), p[0].item(), n[0].item()) == (0, 1, 3)
    assert as_list((a, p, n)) == loop_triplets(dist.tolist(), labels.tolist(), "batch_hard")


def test_semi_hard_falls_back_to_the_farthest_negative():
    # anchor 0: positive at 5, negatives at 1 and 2 (both closer): no semi-hard negative
    dist = torch.tensor(
        [[0.0, 5.0, 1.0, 2.0], [5.0, 0.0, 6.0, 7.0], [1.0, 6.0, 0.0, 1.0], [2.0, 7.0, 1.0, 0.0]]
    )
    a, p, n = mining.semi_hard_triplets(dist, torch.tensor([0, 0, 1, 1]))
    assert as_list((a, p, n))[0] == (0, 1, 3)
    # anchor 1: positive at 5, negatives at 6 and 7: the closest farther one
    assert as_list((a, p, n))[1] == (1, 0, 2)


@pytest.mark.parametrize("miner", sorted(MINERS))
@pytest.mark.parametrize(
    "labels", [torch.zeros(5, dtype=torch.long), torch.arange(5), torch.zeros(0, dtype=torch.long)]
)
def test_no_valid_triplet_gives_empty_index_tensors(miner, labels):
    dist = LF.pairwise_distances(torch.randn(labels.shape[0], 3))
    a, p, n = MINERS[miner](dist, labels)
    assert a.shape == p.shape == n.shape == (0,)
    assert a.dtype == torch.long


def test_mined_triplets_feed_another_loss():
    """The same batch-hard loss, once fused and once as miner + explicit triplet loss."""
    x, labels = batch(16, 4, 3)
    a, p, n = mining.batch_hard_triplets(LF.pairwise_distances(x), labels)
    explicit = LF.triplet_margin_loss(x[a], x[p], x[n], margin=0.2, distance="euclidean")
    torch.testing.assert_close(explicit, LF.triplet_loss(x, labels, margin=0.2))
    # and a similarity-based loss on the same triplets
    sim = LF.pairwise_distances(x, distance="cosine").neg().add(1.0)
    assert torch.isfinite(torch.relu(sim[a, n] - sim[a, p] + 0.1).mean())


def test_miners_accept_int32_labels_and_a_callable_distance_matrix():
    x, labels = batch(10, 3, 5)
    dist = torch.cdist(x, x, p=1.0)
    for name, miner in MINERS.items():
        got = as_list(miner(dist, labels.int()))
        assert got == loop_triplets(dist.tolist(), labels.tolist(), name)


# ------------------------------------------------------------------ pytorch-metric-learning


def test_batch_hard_indices_match_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, miners

    x, labels = batch(64, 9, 7, dim=8)
    x = x.float()
    expected = miners.BatchHardMiner(distance=distances.LpDistance(normalize_embeddings=False))(
        x, labels
    )
    got = mining.batch_hard_triplets(LF.pairwise_distances(x), labels)
    assert pml.__version__
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)


def test_batch_all_indices_match_pytorch_metric_learning():
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    x, labels = batch(40, 5, 8)
    for g, e in zip(
        mining.batch_all_triplets(LF.pairwise_distances(x), labels, block_size=7),
        lmu.get_all_triplets_indices(labels),
        strict=True,
    ):
        assert torch.equal(g, e)


def test_semi_hard_negatives_are_the_closest_of_pytorch_metric_learnings_semihard_set():
    """pytorch-metric-learning's TripletMarginMiner("semihard") returns every negative farther
    than the positive (within a margin; an infinite one here). FaceNet's semi-hard negative is the
    closest of them, which must be ours wherever that set is not empty."""
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, miners

    x, labels = batch(48, 6, 9, dim=8)
    x = x.float()
    miner = miners.TripletMarginMiner(
        margin=float("inf"),
        type_of_triplets="semihard",
        distance=distances.LpDistance(normalize_embeddings=False),
    )
    dist = LF.pairwise_distances(x)
    closest: dict[tuple[int, int], int] = {}
    for a, p, n in as_list(miner(x, labels)):
        if (a, p) not in closest or dist[a, n] < dist[a, closest[(a, p)]]:
            closest[(a, p)] = n
    ours = {(a, p): n for a, p, n in as_list(mining.semi_hard_triplets(dist, labels))}
    assert closest and all(ours[pair] == n for pair, n in closest.items())
    # the pairs without a semi-hard negative got the farthest negative instead
    for (a, p), n in ours.items():
        if (a, p) not in closest:
            negatives = (labels != labels[a]).nonzero().squeeze(1)
            assert n == negatives[dist[a, negatives].argmax()].item()


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: mining.batch_hard_triplets(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long)),
            r"batch_hard_triplets: dist has shape \(3, 4\); expected a square \(N, N\) matrix",
        ),
        (
            lambda: mining.semi_hard_triplets(torch.zeros(3, 3), torch.zeros(4, dtype=torch.long)),
            r"semi_hard_triplets: labels has shape \(4,\); expected \(3,\), one label per row",
        ),
        (
            lambda: mining.batch_all_triplets(torch.zeros(3, 3), torch.zeros(3)),
            r"batch_all_triplets: labels has dtype torch.float32; expected integer class labels",
        ),
        (
            lambda: mining.batch_all_triplets(
                torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), block_size=0
            ),
            r"batch_all_triplets: block_size is 0; expected a positive int or None",
        ),
        (
            lambda: mining.batch_all_triplets(
                torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), margin=float("nan")
            ),
            r"batch_all_triplets: margin is nan; expected a( finite)? number",
        ),
        (
            lambda: mining.batch_hard_triplets(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3)),
            r"batch_hard_triplets: dist has dtype torch.int64; expected a floating-point tensor",
        ),
    ],
)
def test_miner_errors(call, match):
    with pytest.raises(LossInputError, match=match):
        call()


# ------------------------------------------------ the CPU fast paths choose what the mask does


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("shape", [(1, 4096), (7, 333), (64, 1024)])
def test_values_and_indices_path_picks_the_first_extreme_and_the_first_nan(
    monkeypatch, largest, shape
):
    """_arg_extreme's min/max(dim) path on large CPU inputs gives argmin/argmax's index: the
    first of equal values, and the first NaN (checked over the parallel split of long rows)."""
    from losskit.losses.triplet import mining as kernels

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, shape, generator=g).float()
    x[torch.rand(shape, generator=g) < 0.002] = torch.nan
    monkeypatch.setattr(kernels, "_VALUES_AND_INDICES_MIN", 0)
    index, value = kernels._arg_extreme(x, 1, largest=largest)
    expected = x.argmax(1) if largest else x.argmin(1)
    assert torch.equal(index, expected)
    torch.testing.assert_close(value, x.gather(1, expected[:, None])[:, 0], equal_nan=True)


@pytest.mark.parametrize("kind", ["euclidean", "squared_euclidean", "cosine", "matrix"])
@pytest.mark.parametrize("block_size", [None, 3])
def test_batch_hard_table_path_equals_the_mask_path(kind, block_size):
    """On CPU large batches mine batch-hard from the positive table (two passes per block):
    the same anchors, positives and negatives as the mask path, with ties (duplicated rows),
    a NaN row, singletons and one large class; a matrix given by the caller is left intact."""
    from losskit.losses.triplet import mining as kernels
    from losskit.losses.triplet.distances import DistanceRows

    g = torch.Generator().manual_seed(1)
    for n, classes in ((13, 4), (40, 40), (40, 1), (60, 7)):
        labels = torch.randint(0, classes, (n,), generator=g)
        x = torch.randn(n, 4, generator=g)[torch.randint(0, n // 2, (n,), generator=g)]
        x[5, 1] = torch.nan
        source = {
            "cosine": torch.nn.functional.normalize(x, dim=1),
            "matrix": torch.cdist(x, x),
        }.get(kind, x)
        before = source.clone()
        rows = DistanceRows(kind, source)
        want = kernels._hardest_by_mask(rows, labels, block_size)
        got = kernels._hardest_by_table(rows, kernels._ClassLayout(labels), block_size)
        assert torch.equal(got[2], want[2])
        for a, e in zip(got[:2], want[:2], strict=True):
            assert torch.equal(a[want[2]], e[want[2]])
        assert torch.equal(source.isnan(), before.isnan())
        assert torch.equal(source.nan_to_num(), before.nan_to_num())
