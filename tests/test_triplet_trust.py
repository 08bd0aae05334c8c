"""Issue 14 for the triplet family: exact second derivatives (every miner, every distance,
the distance Functions and the distributed gather), NaN in is NaN out, and float32 precision
for embeddings with a large common offset."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import losskit
import losskit.functional as LF
import losskit.losses.triplet.distances as distances
from losskit import LossInputError, mining
from losskit._collective import _GatherWithGrad
from losskit.losses.triplet.cases import loop_triplet_loss
from losskit.losses.triplet.functional import TRIPLET_REDUCTIONS

MINERS = ("batch_all", "batch_hard", "semi_hard")
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def batch(n: int = 9, dim: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3][:n])
    return x, labels


def plain_matrix(kind: str):
    """The distance as a plain-autograd formula from exact differences (a "user" distance,
    so the loss takes the dense path with no custom Function); zero derivatives at d = 0 as
    the analytic backwards."""

    def matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if kind == "cosine":
            an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
            return 1.0 - an @ bn.T
        squared = (a[:, None] - b[None]).square().sum(-1)
        if kind == "squared_euclidean":
            return squared
        positive = squared > 0
        return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)

    return matrix


def second_order(loss_fn, x: torch.Tensor, cubic: bool) -> torch.Tensor:
    """The issue's reproducer: the gradient of |dL/dx|^2 through a create_graph gradient."""
    x = x.detach().clone().requires_grad_()
    loss = loss_fn(x)
    if cubic:
        loss = loss + (x**3).sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    g.square().sum().backward()
    return x.grad


# ------------------------------------------------------------------------ double backward


@pytest.mark.parametrize("cubic", [False, True], ids=["alone", "plus_x3"])
@pytest.mark.parametrize("soft_margin", [False, True])
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", [*MINERS, "callable"])
def test_second_derivatives_equal_the_plain_autograd_formula(miner, distance, soft_margin, cubic):
    """Before: batch-all silently dropped the distance Hessian (wrong by up to 5 with the x^3
    term) and batch-hard, semi-hard and callable miners raised, because the streamed distance
    Functions were only once differentiable."""
    x, labels = batch()
    chosen = mining.batch_hard_triplets if miner == "callable" else miner
    for reduction in ("mean", "none"):

        def ours(e, chosen=chosen, reduction=reduction):
            out = LF.triplet_loss(
                e,
                labels,
                miner=chosen,
                distance=distance,
                soft_margin=soft_margin,
                reduction=reduction,
            )
            return out.sum()

        def plain(e, chosen=chosen, reduction=reduction):
            out = LF.triplet_loss(
                e,
                labels,
                miner=chosen,
                distance=plain_matrix(distance),
                soft_margin=soft_margin,
                reduction=reduction,
            )
            return out.sum()

        torch.testing.assert_close(second_order(ours, x, cubic), second_order(plain, x, cubic))


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", MINERS)
def test_gradgradcheck_every_miner_and_distance(miner, distance):
    x, labels = batch(seed=1)
    x.requires_grad_()
    for reduction in ("mean", "none"):
        assert torch.autograd.gradgradcheck(
            lambda e, r=reduction: LF.triplet_loss(
                e, labels, miner=miner, distance=distance, soft_margin=True, reduction=r
            ),
            (x,),
        )


@pytest.mark.parametrize("distance", DISTANCES)
def test_gradgradcheck_distances(distance):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda a, b: LF.pairwise_distances(a, b, distance=distance), (x, y)
    )
    assert torch.autograd.gradgradcheck(lambda a: LF.pairwise_distances(a, distance=distance), (x,))
    assert torch.autograd.gradgradcheck(
        lambda a, b: LF.paired_distances(a, b, distance=distance), (x[:4], y)
    )


@pytest.mark.parametrize("distance", [None, *DISTANCES])
def test_explicit_form_double_backward(distance):
    """Before: the Euclidean distance of the explicit form (torch's vector_norm) had a NaN
    second derivative where anchor == positive."""
    g = torch.Generator().manual_seed(5)
    a, p, n = torch.randn(3, 6, 4, generator=g, dtype=torch.float64).unbind(0)
    leaves = [t.clone().requires_grad_() for t in (a, p, n)]
    assert torch.autograd.gradgradcheck(
        lambda *t: LF.triplet_margin_loss(*t, distance=distance, margin=3.0), leaves
    )
    if distance is None:
        return
    p = p.clone()
    p[:2] = a[:2]  # zero anchor-positive distances

    def ours(e):
        return LF.triplet_margin_loss(e, p, n, distance=distance, margin=3.0)

    def plain(e):
        return (
            (
                plain_matrix(distance)(e, p).diagonal()
                - plain_matrix(distance)(e, n).diagonal()
                + 3.0
            )
            .clamp_min(0.0)
            .mean()
        )

    got = second_order(ours, a, cubic=True)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, second_order(plain, a, cubic=True))


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
def test_second_derivative_at_zero_distance_follows_the_first_order_gradient(distance):
    """Self pairs and duplicates: the Euclidean distance's second derivative is infinite at 0;
    like its gradient (0 there) it counts as 0, so double backward stays finite and equals the
    plain formula with the safe square root."""
    x = torch.randn(3, 4, dtype=torch.float64).repeat(2, 1)
    y = x[:4].clone()
    weight = torch.randn(6, 6, dtype=torch.float64)

    def penalty(fn):
        leaf = x.clone().requires_grad_()
        out = fn(leaf)
        w = weight[tuple(slice(0, size) for size in out.shape)]
        (g,) = torch.autograd.grad((out * w).sum(), leaf, create_graph=True)
        g.square().sum().backward()
        return leaf.grad

    for ours, plain in (
        (
            lambda a: LF.pairwise_distances(a, distance=distance),
            lambda a: plain_matrix(distance)(a, a),
        ),
        (
            lambda a: LF.pairwise_distances(a, y, distance=distance),
            lambda a: plain_matrix(distance)(a, y),
        ),
        (
            lambda a: LF.paired_distances(a, x.flip(0), distance=distance),
            lambda a: plain_matrix(distance)(a, x.flip(0)).diagonal(),
        ),
    ):
        got = penalty(ours)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, penalty(plain))


def test_the_first_order_backward_stays_streamed(monkeypatch):
    """The dense eager formula runs only when a graph of the gradient is asked for."""
    x, labels = batch(seed=3)

    def refuse(*args, **kwargs):
        raise AssertionError("dense eager formula used in a first-order backward")

    monkeypatch.setattr(distances.DistanceRows, "matrix", refuse)
    monkeypatch.setattr(distances, "_gram_distances", refuse)
    for miner in MINERS:
        for distance in DISTANCES:
            leaf = x.clone().requires_grad_()
            LF.triplet_loss(leaf, labels, miner=miner, distance=distance).backward()
            assert torch.isfinite(leaf.grad).all()
    leaf = x.clone().requires_grad_()
    LF.pairwise_distances(leaf).sum().backward()


@pytest.fixture
def one_process_group():
    """A gloo group of one process: ``_GatherWithGrad`` runs for real (gather_with_grad itself
    is the identity outside a group of several processes)."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_gather_with_grad_double_backward_is_exact(one_process_group):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def gathered(t):
        return (_GatherWithGrad.apply(t, None) ** 3).sum(1)

    assert torch.autograd.gradcheck(gathered, (x,))
    assert torch.autograd.gradgradcheck(gathered, (x,))


# -------------------------------------------------------------------------- NaN in, NaN out


@pytest.mark.parametrize("row", [0, 3, 8])
@pytest.mark.parametrize("distance", [*DISTANCES, "callable"])
@pytest.mark.parametrize("miner", MINERS)
def test_a_nan_embedding_gives_a_nan_loss(miner, distance, row):
    """Before: batch-hard returned 0.0 (the NaN row made every anchor that saw it look
    invalid) while every gradient was NaN; semi-hard and the reductions of batch-all hid it
    too. Then a global NaN term made every "none" value NaN (the fuzzer's finding): now a NaN
    distance is the hardest candidate of every choice, "none" is NaN exactly in the triplets
    that use the NaN row (the loop reference's), and every other reduction is NaN."""
    x, labels = batch(dtype=torch.float32)
    x[row, 1] = torch.nan
    dist_fn = (lambda a, b: torch.cdist(a, b)) if distance == "callable" else distance
    expected = loop_triplet_loss(x, labels, miner=miner, distance=dist_fn, reduction="none")
    assert expected.isnan().any()
    for reduction in TRIPLET_REDUCTIONS:
        out = LF.triplet_loss(x, labels, miner=miner, distance=dist_fn, reduction=reduction)
        if reduction == "none":
            assert torch.equal(out.isnan(), expected.isnan()), (out, expected)
        else:
            assert out.isnan(), (reduction, out)


def test_a_non_finite_row_does_not_spoil_the_centring_of_the_others():
    x, _ = batch(dtype=torch.float32)
    x[2, 0] = torch.inf  # an infinite feature mean is not centred; other rows stay exact
    d = LF.pairwise_distances(x)
    finite = torch.tensor([i for i in range(9) if i != 2])
    torch.testing.assert_close(
        d[finite][:, finite], LF.pairwise_distances(x[finite]), rtol=1e-5, atol=1e-5
    )


# -------------------------------------------------------------------- float32 precision


def offset_batch(offset: float = 1000.0, spread: float = 0.1):
    g = torch.Generator().manual_seed(4)
    x = (offset + spread * torch.randn(32, 16, generator=g)).float()
    labels = torch.randint(0, 4, (32,), generator=g)
    return x, labels


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", MINERS)
def test_float32_mining_with_a_large_common_offset_matches_float64(miner, distance):
    """Before: the Gram form cancelled the offset (0.25 where float64 gives 0.51 for batch-hard;
    batch-all off by 150 %). The reference is float64 on the same float32 numbers."""
    x, labels = offset_batch()
    leaf, leaf64 = x.clone().requires_grad_(), x.double().requires_grad_()
    out = LF.triplet_loss(leaf, labels, miner=miner, distance=distance)
    expected = LF.triplet_loss(leaf64, labels, miner=miner, distance=distance)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    out.backward()
    expected.backward()
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
def test_float32_pairwise_distances_with_a_large_common_offset(distance):
    x, _ = offset_batch()
    y = x[:5] + 0.05
    for args in ((x,), (x, y)):
        leaf = [a.clone().requires_grad_() for a in args]
        leaf64 = [a.double().requires_grad_() for a in args]
        out = LF.pairwise_distances(*leaf, distance=distance)
        expected = LF.pairwise_distances(*leaf64, distance=distance)
        torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
        weight = torch.randn(out.shape, dtype=torch.float64)
        (out.double() * weight).sum().backward()
        (expected * weight).sum().backward()
        for a, b in zip(leaf, leaf64, strict=True):
            torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------- CPU range-check rule


def test_a_callable_miner_out_of_range_is_refused_under_fast_checks_on_cpu():
    """Before: a raw IndexError under the default checks (the range check ran only under
    "full"); on CPU tensors the check costs no device synchronisation, so it runs under "fast"."""
    x, labels = batch()

    def miner(dist, labels):
        a, p, n = mining.batch_hard_triplets(dist, labels)
        return a, p, n + 100

    with pytest.raises(
        LossInputError,
        match=r"triplet_loss: miner returned indices in \[102, 108\]; expected indices in \[0, 8\]",
    ):
        LF.triplet_loss(x, labels, miner=miner)


@pytest.mark.parametrize("distance", DISTANCES)
def test_explicit_form_nan_in_is_nan_out(distance):
    """Before: 1.0 for a NaN anchor with the Euclidean distance (safe_sqrt's ``squared > 0`` is
    False for NaN, so the distance was 0); torch gives NaN."""
    a, p, n = torch.randn(3, 4, 5, dtype=torch.float64).unbind(0)
    a = a.clone()
    a[0, 0] = torch.nan
    out = LF.triplet_margin_loss(a, p, n, distance=distance, reduction="none")
    assert torch.equal(out.isnan(), torch.tensor([True, False, False, False]))
    assert LF.triplet_margin_loss(a, p, n, distance=distance).isnan()
    assert LF.paired_distances(a, p, distance=distance).isnan()[0]


def test_catalog_reproducer_nan_only_where_the_nan_row_is_used():
    """The fuzzer's reproducer: batch-hard kept no anchor with "none" (shape (0,)), batch-all
    made all 72 triplets NaN instead of the 28 that involve the NaN row."""
    spec = losskit.catalog["triplet"]
    x, y = next(iter(spec.sample_inputs(torch.float64, "cpu"))).args
    x = x.clone()
    x[0, 0] = torch.nan
    hard = spec.functional(x, y, miner="batch_hard", reduction="none")
    assert hard.shape == (8,) and hard.isnan().all()  # every anchor picks the NaN row
    every = spec.functional(x, y, miner="batch_all", reduction="none")
    assert every.shape == (72,) and int(every.isnan().sum()) == 28
    for miner in MINERS:
        assert spec.functional(x, y, miner=miner).isnan()


def test_batch_all_sum_has_no_nan_without_a_triplet():
    """Every label equal: no negative, no triplet, so no NaN from the NaN row's distances
    (the streamed sum masks slots and negatives it does not use)."""
    x, _ = batch()
    x[2, 0] = torch.nan
    for labels in (torch.zeros(9, dtype=torch.long), torch.arange(9)):
        for reduction in TRIPLET_REDUCTIONS:
            out = LF.triplet_loss(x, labels, miner="batch_all", reduction=reduction)
            assert out.numel() == 0 or out.item() == 0.0, (labels, reduction, out)


def test_margin_miner_keeps_a_nan_violation():
    """A NaN distance is the hardest candidate for the margin filter too (it was dropped)."""
    dist = torch.tensor([[0.0, 1.0, torch.nan], [1.0, 0.0, 5.0], [torch.nan, 5.0, 0.0]])
    triplets = mining.batch_all_triplets(dist, torch.tensor([0, 0, 1]), margin=0.5)
    assert [t.tolist() for t in triplets] == [[0], [1], [2]]
