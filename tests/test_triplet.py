"""Triplet losses beyond the catalog matrix: torch.nn and pytorch-metric-learning parity,
explicit-loop references for every miner, streaming in blocks, statistics, margin schedules,
distances."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
import losskit.losses.triplet.distances as distances
from losskit import LossInputError, mining
from losskit.losses.triplet.cases import loop_triplet_loss, pml_triplet_loss
from losskit.losses.triplet.functional import TRIPLET_REDUCTIONS, triplet_loss_and_stats

MINERS = ("batch_all", "batch_hard", "semi_hard")
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def batch(n: int, classes: int, seed: int, dim: int = 8, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    return x, labels


def value_and_grad(fn, x, *args, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    (out if out.dim() == 0 else out.sum()).backward()
    return out.detach(), x.grad


# ---------------------------------------------------------------- explicit form: torch.nn


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options", [{}, {"margin": 0.3, "p": 1.0, "swap": True}, {"eps": 0.0, "p": 3.0}]
)
def test_explicit_form_matches_torch_triplet_margin_loss(options, reduction):
    a, p, n = torch.randn(3, 10, 6, dtype=torch.float64).unbind(0)
    ours = losskit.TripletMarginLoss(**options, reduction=reduction)
    theirs = torch.nn.TripletMarginLoss(**options, reduction=reduction)
    for args in ((a, p, n), (a[0], p[0], n[0])):
        leaves = [t.clone().requires_grad_() for t in args]
        twins = [t.clone().requires_grad_() for t in args]
        out, expected = ours(*leaves), theirs(*twins)
        torch.testing.assert_close(out, expected)
        out.sum().backward()
        expected.sum().backward()
        for mine, other in zip(leaves, twins, strict=True):
            torch.testing.assert_close(mine.grad, other.grad)


@pytest.mark.parametrize("swap", [False, True])
def test_explicit_form_with_a_distance_matches_torch_with_distance_loss(swap):
    a, p, n = torch.randn(3, 7, 5, dtype=torch.float64).unbind(0)

    def cosine(x, y):
        return 1.0 - F.cosine_similarity(x, y)

    theirs = torch.nn.TripletMarginWithDistanceLoss(distance_function=cosine, margin=0.4, swap=swap)
    for distance in (cosine, "cosine"):
        ours = losskit.TripletMarginLoss(margin=0.4, swap=swap, distance=distance)
        torch.testing.assert_close(ours(a, p, n), theirs(a, p, n))


def test_explicit_form_empty_mean_is_zero_with_graph_unlike_torch():
    a = torch.randn(0, 4, requires_grad=True)
    assert torch.isnan(F.triplet_margin_loss(a, a, a))
    loss = LF.triplet_margin_loss(a, a, a)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()


# --------------------------------------------------- label form: pytorch-metric-learning


@pytest.mark.parametrize("miner", ["batch_hard", "batch_all"])
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("reduction", TRIPLET_REDUCTIONS)
def test_label_form_matches_pytorch_metric_learning(miner, distance, reduction):
    pytest.importorskip("pytorch_metric_learning")
    x, labels = batch(40, 6, 11)
    options = {"margin": 0.3, "distance": distance, "miner": miner, "reduction": reduction}
    out, grad = value_and_grad(LF.triplet_loss, x, labels, **options)
    expected, expected_grad = value_and_grad(pml_triplet_loss, x, labels, **options)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("miner", ["batch_hard", "batch_all"])
def test_soft_margin_matches_pytorch_metric_learning_smooth_loss(miner):
    pytest.importorskip("pytorch_metric_learning")
    x, labels = batch(30, 4, 12)
    options = {"margin": 0.1, "miner": miner, "soft_margin": True}
    out, grad = value_and_grad(LF.triplet_loss, x, labels, **options)
    expected, expected_grad = value_and_grad(pml_triplet_loss, x, labels, **options)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_semi_hard_matches_pytorch_metric_learning_on_our_triplets():
    """pytorch-metric-learning has no FaceNet semi-hard miner (test_mining checks our choice of
    negatives against its semihard set); its loss on our triplets equals ours."""
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances as pml_distances
    from pytorch_metric_learning import losses, reducers

    x, labels = batch(32, 5, 13)
    triplets = mining.semi_hard_triplets(LF.pairwise_distances(x), labels)
    criterion = losses.TripletMarginLoss(
        margin=0.5,
        distance=pml_distances.LpDistance(normalize_embeddings=False),
        reducer=reducers.MeanReducer(),
    )
    out, grad = value_and_grad(LF.triplet_loss, x, labels, margin=0.5, miner="semi_hard")
    expected, expected_grad = value_and_grad(criterion, x, labels, triplets)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_batch_hard_float32_within_1e_5_of_pytorch_metric_learning_at_scale():
    pytest.importorskip("pytorch_metric_learning")
    x, labels = batch(1024, 128, 14, dim=128, dtype=torch.float32)
    out = LF.triplet_loss(x, labels)
    expected = pml_triplet_loss(x, labels)
    assert abs(out.item() - expected.item()) < 1e-5


# ------------------------------------------------------- label form: explicit-loop reference


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 12),
    classes=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    miner=st.sampled_from(MINERS),
    distance=st.sampled_from(DISTANCES),
    soft_margin=st.booleans(),
    margin=st.floats(0.0, 2.0),
)
def test_label_form_matches_explicit_loops(n, classes, seed, miner, distance, soft_margin, margin):
    x, labels = batch(n, classes, seed, dim=3)
    for reduction in TRIPLET_REDUCTIONS:
        options = {
            "margin": margin,
            "distance": distance,
            "miner": miner,
            "soft_margin": soft_margin,
            "reduction": reduction,
        }
        torch.testing.assert_close(
            LF.triplet_loss(x, labels, **options), loop_triplet_loss(x, labels, **options)
        )


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("distance", [*DISTANCES, "callable"])
def test_streaming_in_tiny_blocks_changes_nothing(monkeypatch, miner, distance):
    """Blocks of a row or two (and pair chunks of a few pairs) give the same values and
    gradients as one block: the multi-block paths of every miner and backward are exercised."""
    x, labels = batch(13, 3, 15)
    dist = (lambda a, b: torch.cdist(a, b, p=1.0)) if distance == "callable" else distance
    soft = distance == "cosine"
    results = []
    for budget in (distances.BLOCK_ELEMENTS, 20):
        monkeypatch.setattr(distances, "BLOCK_ELEMENTS", budget)
        for reduction in ("mean", "none"):
            results.append(
                value_and_grad(
                    LF.triplet_loss,
                    x,
                    labels,
                    miner=miner,
                    distance=dist,
                    soft_margin=soft,
                    reduction=reduction,
                )
            )
    for (v1, g1), (v2, g2) in zip(results[:2], results[2:], strict=True):
        torch.testing.assert_close(v1, v2)
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("miner", MINERS)
def test_batch_all_streamed_sum_equals_the_sum_of_every_triplet(miner):
    x, labels = batch(96, 7, 16)
    for soft in (False, True):
        total, grad = value_and_grad(
            LF.triplet_loss, x, labels, miner=miner, soft_margin=soft, reduction="sum"
        )
        each, each_grad = value_and_grad(
            LF.triplet_loss, x, labels, miner=miner, soft_margin=soft, reduction="none"
        )
        torch.testing.assert_close(total, each.sum())
        torch.testing.assert_close(grad, each_grad)


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("reduction", TRIPLET_REDUCTIONS)
@pytest.mark.parametrize(
    "labels", [torch.zeros(6, dtype=torch.long), torch.arange(6)], ids=["one class", "distinct"]
)
def test_no_valid_triplet_is_zero_with_a_graph(miner, reduction, labels):
    x = torch.randn(6, 4, requires_grad=True)
    loss = LF.triplet_loss(x, labels, miner=miner, reduction=reduction)
    assert torch.all(loss == 0) and loss.requires_grad
    loss.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("distance", DISTANCES)
def test_duplicate_embeddings_give_finite_gradients(miner, distance):
    x = torch.randn(6, 5).repeat(3, 1).requires_grad_()
    labels = torch.arange(3).repeat_interleave(6)
    LF.triplet_loss(x, labels, miner=miner, distance=distance, margin=0.5).backward()
    assert torch.isfinite(x.grad).all()


def test_batch_hard_in_float16_is_computed_in_float32():
    x, labels = batch(64, 8, 17, dtype=torch.float16)
    out = LF.triplet_loss(x, labels)
    assert out.dtype == torch.float16
    assert out == LF.triplet_loss(x.float(), labels).half()


# -------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_statistics_describe_the_mined_triplets(miner, distance):
    x, labels = batch(30, 4, 18)
    losses, stats = triplet_loss_and_stats(
        x, labels, miner=miner, distance=distance, reduction="none"
    )
    a, p, n = getattr(mining, f"{miner}_triplets")(
        LF.pairwise_distances(x, distance=distance), labels
    )
    dist = LF.pairwise_distances(x, distance=distance)
    assert int(stats.num_triplets) == a.numel() == losses.numel()
    torch.testing.assert_close(stats.active_fraction, (losses > 0).double().mean())
    torch.testing.assert_close(stats.mean_positive_distance, dist[a, p].mean())
    torch.testing.assert_close(stats.mean_negative_distance, dist[a, n].mean())
    # the streamed batch-all path reports the same figures
    _, streamed = triplet_loss_and_stats(x, labels, miner=miner, distance=distance)
    for field in ("num_triplets", "active_fraction", "mean_positive_distance"):
        torch.testing.assert_close(getattr(streamed, field), getattr(stats, field))
    assert streamed.as_dict()["num_triplets"] == a.numel()


def test_module_records_last_stats_without_grad():
    criterion = losskit.TripletLoss(margin=0.3)
    assert criterion.last_stats is None
    x, labels = batch(20, 4, 19)
    criterion(x.requires_grad_(), labels)
    stats = criterion.last_stats
    assert stats is not None and stats.margin == 0.3
    assert not stats.mean_positive_distance.requires_grad
    assert 0.0 <= stats.as_dict()["active_fraction"] <= 1.0


def test_collapsed_embeddings_show_in_the_statistics():
    """Every embedding equal: the loss sits at the margin, every triplet is active and the
    positive and negative distances are equal."""
    x = torch.ones(12, 4)
    labels = torch.arange(3).repeat(4)
    loss, stats = triplet_loss_and_stats(x, labels, margin=0.2)
    assert loss.item() == pytest.approx(0.2)
    assert stats.as_dict()["active_fraction"] == 1.0
    assert stats.mean_positive_distance == stats.mean_negative_distance


# ---------------------------------------------------------------------- margin schedules


def test_linear_and_cosine_schedules():
    linear = losskit.LinearMargin(0.1, 0.5, steps=4)
    assert [round(linear(s), 6) for s in (-1, 0, 2, 4, 9)] == [0.1, 0.1, 0.3, 0.5, 0.5]
    cosine = losskit.CosineMargin(1.0, 0.0, steps=2)
    assert [round(cosine(s), 6) for s in range(4)] == [1.0, 0.5, 0.0, 0.0]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: losskit.LinearMargin(0.1, 0.5, steps=0), r"LinearMargin: steps is 0"),
        (lambda: losskit.CosineMargin(-0.1, 0.5, steps=3), r"CosineMargin: start is -0.1"),
        (lambda: losskit.TripletLoss(margin=lambda s: -1.0), r"triplet_loss: margin is -1.0"),
        (lambda: losskit.TripletMarginLoss(margin=0.0), r"triplet_margin_loss: margin is 0.0"),
        (lambda: losskit.TripletLoss(miner="hardest"), r"triplet_loss: miner is 'hardest'"),
        (lambda: losskit.TripletLoss(gather=1), r"triplet_loss: gather is 1; expected True"),
        (lambda: losskit.TripletLoss(reduction="avg"), r"triplet_loss: reduction is 'avg'"),
    ],
)
def test_module_and_schedule_errors(make, match):
    with pytest.raises(LossInputError, match=match):
        make()


def test_step_advances_the_margin_the_loss_uses():
    x, labels = batch(24, 4, 20)
    criterion = losskit.TripletLoss(margin=losskit.LinearMargin(0.0, 1.0, steps=2))
    for step, margin in enumerate((0.0, 0.5, 1.0, 1.0)):
        assert criterion.current_margin == margin
        torch.testing.assert_close(criterion(x, labels), LF.triplet_loss(x, labels, margin=margin))
        assert criterion.last_stats.margin == margin
        assert criterion.step() == [0.5, 1.0, 1.0, 1.0][step]
    explicit = losskit.TripletMarginLoss(margin=lambda step: 1.0 + step)
    a, p, n = torch.randn(3, 5, 4).unbind(0)
    explicit.step()
    torch.testing.assert_close(explicit(a, p, n), F.triplet_margin_loss(a, p, n, margin=2.0))


def test_schedule_state_round_trips():
    criterion = losskit.TripletLoss(
        margin=losskit.CosineMargin(0.1, 0.9, steps=10), miner="semi_hard"
    )
    for _ in range(3):
        criterion.step()
    state = criterion.state_dict()
    fresh = losskit.TripletLoss(margin=losskit.CosineMargin(0.1, 0.9, steps=10), miner="semi_hard")
    fresh.load_state_dict(state)
    assert fresh.steps_taken == 3 and fresh.current_margin == criterion.current_margin
    for clone in (copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
        assert clone.current_margin == criterion.current_margin
    assert "CosineMargin(start=0.1" in repr(criterion)


def test_gather_without_torch_distributed_is_the_local_loss():
    x, labels = batch(16, 4, 21)
    torch.testing.assert_close(
        losskit.TripletLoss(gather=True)(x, labels), losskit.TripletLoss()(x, labels)
    )
    assert "gather=True" in repr(losskit.TripletLoss(gather=True))


# ----------------------------------------------------------------------------- distances


def test_pairwise_distances_match_torch():
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(LF.pairwise_distances(x, y), torch.cdist(x, y))
    torch.testing.assert_close(
        LF.pairwise_distances(x, y, distance="squared_euclidean"), torch.cdist(x, y).square()
    )
    torch.testing.assert_close(
        LF.pairwise_distances(x, y, distance="cosine"),
        1.0 - F.cosine_similarity(x[:, None], y[None], dim=-1),
    )
    for name in DISTANCES:
        own = LF.pairwise_distances(x, distance=name)
        assert torch.equal(own.diagonal(), torch.zeros(7, dtype=torch.float64))
        torch.testing.assert_close(
            own, LF.pairwise_distances(x, x.clone(), distance=name).fill_diagonal_(0)
        )
        torch.testing.assert_close(
            LF.paired_distances(x[:4], y, distance=name),
            LF.pairwise_distances(x[:4], y, distance=name).diagonal(),
        )


@pytest.mark.parametrize("distance", DISTANCES)
def test_distances_gradcheck_and_are_finite_at_zero_distance(distance):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: LF.pairwise_distances(a, b, distance=distance), (x, y)
    )
    assert torch.autograd.gradcheck(lambda a: LF.pairwise_distances(a, distance=distance), (x,))
    dup = torch.randn(3, 4).repeat(2, 1).requires_grad_()
    LF.pairwise_distances(dup, distance=distance).sum().backward()
    assert torch.isfinite(dup.grad).all()
    same = torch.randn(4, 3, requires_grad=True)
    LF.paired_distances(same, same.detach(), distance=distance).sum().backward()
    assert torch.isfinite(same.grad).all()


def test_pairwise_distances_half_precision_and_errors():
    x = torch.randn(6, 4).half()
    assert LF.pairwise_distances(x).dtype == torch.float16
    with pytest.raises(
        LossInputError, match=r"pairwise_distances: x has shape \(6,\); expected \(N, D\)"
    ):
        LF.pairwise_distances(torch.randn(6))
    with pytest.raises(
        LossInputError, match=r"pairwise_distances: y has shape \(2, 3\); expected \(M, 4\)"
    ):
        LF.pairwise_distances(torch.randn(6, 4), torch.randn(2, 3))
    with pytest.raises(LossInputError, match=r"pairwise_distances: distance is 'l1'"):
        LF.pairwise_distances(torch.randn(6, 4), distance="l1")
    with pytest.raises(LossInputError, match=r"paired_distances: x2 has shape \(3,\)"):
        LF.paired_distances(torch.randn(4), torch.randn(3))


# ----------------------------------------------------------------------------- compile


@pytest.mark.compile
def test_batch_hard_and_the_explicit_form_compile_without_graph_breaks():
    torch._dynamo.reset()
    x, labels = batch(32, 4, 22, dtype=torch.float32)
    compiled = torch.compile(LF.triplet_loss, fullgraph=True, dynamic=False)
    out, grad = value_and_grad(compiled, x, labels, margin=0.2)
    expected, expected_grad = value_and_grad(LF.triplet_loss, x, labels, margin=0.2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)
    # data-dependent mining compiles with graph breaks
    breaking = torch.compile(LF.triplet_loss, dynamic=False)
    torch.testing.assert_close(
        breaking(x, labels, miner="batch_all"), LF.triplet_loss(x, labels, miner="batch_all")
    )
    a, p, n = torch.randn(3, 8, 5).unbind(0)
    explicit = torch.compile(LF.triplet_margin_loss, fullgraph=True, dynamic=False)
    torch.testing.assert_close(explicit(a, p, n), LF.triplet_margin_loss(a, p, n))


def _same_numbers(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("n", [1, 32, 1025])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("margin", "eps"), [(1.0, 1e-6), (0.3, 0.0)])
def test_triplet_margin_function_is_torchs_kernel_bit_for_bit(n, dtype, reduction, margin, eps):
    """The p = 2 fast path (one autograd node, _TripletP2) gives torch's values and gradients
    exactly: zero distances (norm_backward's 0), NaN rows, rows at the margin, and inputs that
    do not all require grad."""
    g = torch.Generator().manual_seed(n)
    a, p, q = (torch.randn(n, 5, generator=g, dtype=dtype) for _ in range(3))
    p[0] = a[0] - eps  # a zero distance
    q[-1] = a[-1]
    if n > 2:
        a[1, 2] = float("nan")
    opts = {"margin": margin, "eps": eps, "reduction": reduction}
    for grads in ((0, 1, 2), (0,), (1, 2)):
        ours = [t.clone().requires_grad_(i in grads) for i, t in enumerate((a, p, q))]
        ref = [t.clone().requires_grad_(i in grads) for i, t in enumerate((a, p, q))]
        out = LF.triplet_margin_loss(*ours, **opts)
        expected = F.triplet_margin_loss(*ref, **opts)
        weights = torch.linspace(0.5, 1.5, out.numel(), dtype=dtype).reshape(out.shape)
        got = torch.autograd.grad((out * weights).sum(), [ours[i] for i in grads])
        want = torch.autograd.grad((expected * weights).sum(), [ref[i] for i in grads])
        assert _same_numbers(out.detach(), expected.detach())
        assert all(_same_numbers(x, y) for x, y in zip(got, want, strict=True)), grads


def test_triplet_margin_function_double_backward_and_retained_graph():
    """Second derivatives through the fast path are torch's (gradgradcheck), and a retained
    graph gives the same gradient twice."""
    g = torch.Generator().manual_seed(0)
    a, p, q = (
        torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in "apq"
    )
    for reduction in ("mean", "sum", "none"):
        assert torch.autograd.gradgradcheck(
            lambda a, p, q, r=reduction: LF.triplet_margin_loss(a, p, q, margin=2.0, reduction=r),
            (a, p, q),
        )
    out = LF.triplet_margin_loss(a, p, q, margin=2.0)
    first = torch.autograd.grad(out, (a, p, q), retain_graph=True)
    second = torch.autograd.grad(out, (a, p, q))
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))
