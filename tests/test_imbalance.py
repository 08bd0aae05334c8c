"""Focal losses, Poly-1, the asymmetric loss and class-balanced weights, beyond the catalog
matrix: parity with torchvision's formula and with cross-entropy, the analytic gradients of the
custom autograd Functions against the eager formulas, numerics where the eager formulas fail,
chunking, what the Functions keep for the backward pass, and properties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.losses.imbalance import autograd as _focal_autograd
from losskit.losses.imbalance import functional as _imbalance_functional
from losskit.losses.imbalance.cases import (
    asymmetric_authors_formula,
    asymmetric_formula,
    softmax_focal_formula,
    torchvision_sigmoid_focal_loss,
)

settings.register_profile("imbalance", max_examples=30, deadline=None)

F64 = torch.float64


def _grads(fn, *leaves):
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few elements, so that every test input spans many of them (and no input
    takes the small-size SparseClassFunction: the chunked Functions are under test)."""
    monkeypatch.setattr(_focal_autograd, "CPU_CHUNK", 7)
    monkeypatch.setattr(_focal_autograd, "CPU_SOFTMAX_CHUNK", 13)
    monkeypatch.setattr(_imbalance_functional, "SPARSE_SMALL_MAX", 0)


# ------------------------------------------------------------------ sigmoid focal loss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.8])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_equals_torchvision_formula_value_and_gradient(
    gamma, alpha, reduction, small_chunks
):
    g = torch.Generator().manual_seed(int(gamma * 10) + 7)
    x = (torch.randn(500, generator=g, dtype=F64) * 3).requires_grad_()
    y = torch.randint(0, 2, x.shape, generator=g).to(F64)
    opts = {"alpha": alpha, "gamma": gamma, "reduction": reduction}

    def ours(x):
        out = LF.sigmoid_focal_loss(x, y, **opts)
        return out if out.dim() == 0 else out.sum()

    def eager(x):
        out = torchvision_sigmoid_focal_loss(x, y, **opts)
        return out if out.dim() == 0 else out.sum()

    value, (grad,) = _grads(ours, x)
    expected, (expected_grad,) = _grads(eager, x)
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-8, atol=1e-12)


def test_sigmoid_focal_float32_matches_the_formula_in_float32():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 80, generator=g) * 4, torch.randint(0, 2, (64, 80), generator=g).float()
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y), torchvision_sigmoid_focal_loss(x, y))


def test_sigmoid_focal_all_gradients_against_the_eager_formula(small_chunks):
    """Soft targets, elementwise weight and a per-label pos_weight all get their gradients."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, generator=g, dtype=F64, requires_grad=True)
    y = torch.rand(6, 4, generator=g, dtype=F64, requires_grad=True)
    w = torch.rand(6, 4, generator=g, dtype=F64).add(0.1).requires_grad_()
    pw = torch.rand(4, generator=g, dtype=F64).add(0.5).requires_grad_()

    def eager(x, y, w, pw):
        # torch's BCE is not differentiable in pos_weight: the cross-entropy written out
        p = torch.sigmoid(x)
        ce = pw * y * F.softplus(-x) + (1 - y) * F.softplus(x)
        m = 1 - (p * y + (1 - p) * (1 - y))
        a = 0.3 * y + 0.7 * (1 - y)
        return (a * ce * m**1.5 * w).sum() / w.sum()

    def ours(x, y, w, pw):
        return LF.sigmoid_focal_loss(x, y, alpha=0.3, gamma=1.5, weight=w, pos_weight=pw)

    value, grads = _grads(ours, x, y, w, pw)
    expected, expected_grads = _grads(eager, x, y, w, pw)
    torch.testing.assert_close(value, expected)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(ours, (x, y, w, pw))


def test_sigmoid_focal_fractional_gamma_is_finite_where_the_eager_gradient_is_nan():
    x = torch.tensor([40.0, -40.0, 1e4, -1e4, 17.0, -17.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    torchvision_sigmoid_focal_loss(x, y, gamma=0.5).backward()
    assert torch.isnan(x.grad).any()  # the 0**(gamma - 1) * 0 of the textbook gradient
    x.grad = None
    loss = LF.sigmoid_focal_loss(x, y, gamma=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert x.grad.abs().max() < 1e-8  # every prediction here is confidently right


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_sigmoid_focal_half_precision_extremes_are_finite(half):
    x = torch.tensor([1e4, -1e4, 1e4, -1e4, 30.0, 0.0], dtype=half, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.5], dtype=half)
    for gamma in (0.5, 2.0):
        loss = LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction="sum")
        assert loss.dtype == half and torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, x)
        assert grad.dtype == half and torch.isfinite(grad).all()
        assert loss.item() == pytest.approx(0.75e4 + 0.25e4, rel=1e-2)


def test_sigmoid_focal_chunking_does_not_change_the_result(monkeypatch):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(37, 9, generator=g, dtype=F64, requires_grad=True)
    y = torch.rand(37, 9, generator=g, dtype=F64)
    pw = torch.rand(9, generator=g, dtype=F64) + 0.5
    results = []
    for chunk in (1 << 16, 10, 1):
        monkeypatch.setattr(_focal_autograd, "CPU_CHUNK", chunk)
        for opts in ({"reduction": "none"}, {"pos_weight": pw}, {"alpha": None, "gamma": 0.5}):
            results.append(_grads(lambda x, o=opts: LF.sigmoid_focal_loss(x, y, **o).sum(), x))
    per_chunk = len(results) // 3
    for i in range(per_chunk):
        for other in (results[i + per_chunk], results[i + 2 * per_chunk]):
            torch.testing.assert_close(other[0], results[i][0], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(other[1], results[i][1], rtol=1e-12, atol=1e-14)


@pytest.fixture
def forward_walk_grads(monkeypatch):
    """Counts the chunks whose gradient the forward walk computed."""
    calls = []
    walk = _focal_autograd._sigmoid_focal_chunk_and_grad

    def counted(*args, **kwargs):
        calls.append(1)
        return walk(*args, **kwargs)

    monkeypatch.setattr(_focal_autograd, "_sigmoid_focal_chunk_and_grad", counted)
    return calls


@pytest.mark.parametrize("gamma", [0.0, 1e-4, 0.5, 1.0, 2.0, 3.0, 3.5])
@pytest.mark.parametrize("alpha", [None, 0.0, 0.25, 1.0])
@pytest.mark.parametrize("extra", ["none", "pos_weight", "weight", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sigmoid_focal_forward_walk_gradient_equals_the_backward_walk(
    gamma, alpha, extra, reduction, small_chunks, forward_walk_grads
):
    """With only the input needing a gradient, the chunked forward computes it in the same
    walk (18 kernels a chunk instead of 27); a target that needs one too sends the call
    through the backward's own walk: the same gradient for the input."""
    g = torch.Generator().manual_seed(int(gamma * 10) + 3)
    x = (torch.randn(9, 11, generator=g, dtype=F64) * 4).requires_grad_()
    y = torch.randint(0, 2, x.shape, generator=g).to(F64)
    opts = {"gamma": gamma, "alpha": alpha, "reduction": reduction}
    if extra == "pos_weight":
        opts["pos_weight"] = torch.rand(11, generator=g, dtype=F64) + 0.5
    elif extra == "weight":
        opts["weight"] = torch.rand(x.shape, generator=g, dtype=F64)
    elif extra == "soft":
        y = torch.rand(x.shape, generator=g, dtype=F64)
    value, (grad,) = _grads(lambda x: LF.sigmoid_focal_loss(x, y, **opts), x)
    walked = len(forward_walk_grads)
    assert walked == (9 if extra == "pos_weight" else 15)  # rows of 11 / 99 elements by 7
    y_leaf = y.clone().requires_grad_()
    expected, (expected_grad, _) = _grads(
        lambda x, y: LF.sigmoid_focal_loss(x, y, **opts), x, y_leaf
    )
    assert len(forward_walk_grads) == walked
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_sigmoid_focal_forward_walk_gradient_scaled_and_taken_again(
    small_chunks, forward_walk_grads
):
    """An incoming gradient other than 1 scales the forward's gradient; a second backward
    through the same graph walks again and gives the same; without a graph (no_grad, or no
    input that needs a gradient) the forward computes none."""
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(40, generator=g, dtype=F64) * 3).requires_grad_()
    y = torch.randint(0, 2, x.shape, generator=g).to(F64)
    (once,) = torch.autograd.grad(LF.sigmoid_focal_loss(x, y), x)
    loss = LF.sigmoid_focal_loss(x, y)
    outer = torch.tensor(-2.5, dtype=F64)
    (first,) = torch.autograd.grad(loss, x, outer, retain_graph=True)
    (second,) = torch.autograd.grad(loss, x, outer)
    torch.testing.assert_close(first, -2.5 * once, rtol=1e-14, atol=0)
    torch.testing.assert_close(second, first, rtol=1e-12, atol=1e-15)
    walked = len(forward_walk_grads)
    with torch.no_grad():
        LF.sigmoid_focal_loss(x, y)
    LF.sigmoid_focal_loss(x.detach(), y)
    assert walked == 12 and len(forward_walk_grads) == walked  # 2 x 6 chunks, then none


def test_sigmoid_focal_forward_walk_not_under_func_transforms(small_chunks, forward_walk_grads):
    """torch.func differentiates the eager formula (LossFunction.apply): the forward that
    runs for its attributes computes no gradient of its own."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(30, generator=g, dtype=F64) * 3
    y = torch.randint(0, 2, x.shape, generator=g).to(F64)
    transformed = torch.func.grad(lambda x: LF.sigmoid_focal_loss(x, y))(x)
    assert not forward_walk_grads
    (expected,) = torch.autograd.grad(LF.sigmoid_focal_loss(x.requires_grad_(), y), x)
    assert forward_walk_grads
    torch.testing.assert_close(transformed, expected, rtol=1e-12, atol=1e-15)


def test_sigmoid_focal_forward_walk_in_bfloat16(small_chunks, forward_walk_grads):
    g = torch.Generator().manual_seed(6)
    x = (torch.randn(60, generator=g) * 3).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, 2, x.shape, generator=g).to(torch.bfloat16)
    value, (grad,) = _grads(lambda x: LF.sigmoid_focal_loss(x, y), x)
    assert forward_walk_grads and grad.dtype == torch.bfloat16
    expected, (expected_grad,) = _grads(lambda x: LF.sigmoid_focal_loss(x.double(), y.double()), x)
    torch.testing.assert_close(value, expected.to(value.dtype))
    torch.testing.assert_close(grad, expected_grad.to(grad.dtype))


def test_sigmoid_focal_chunks_with_more_threads():
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _focal_autograd._rows_per_chunk(1024, 4096, cpu) == 16  # CPU_CHUNK / 4096
        torch.set_num_threads(2)
        assert _focal_autograd._rows_per_chunk(1024, 4096, cpu) == 512  # PARALLEL_CHUNKS: 2
        assert _focal_autograd._rows_per_chunk(8, 4096, cpu) == 16  # never below one thread's
    finally:
        torch.set_num_threads(before)


def test_sigmoid_focal_function_saves_only_its_inputs():
    x = torch.randn(1000, requires_grad=True)
    y = torch.randint(0, 2, (1000,)).float()
    loss = LF.sigmoid_focal_loss(x, y)
    node = loss.grad_fn
    while type(node).__name__ != "SigmoidFocalFunctionBackward":
        node = node.next_functions[0][0]
    saved = [t for t in node.saved_tensors if t is not None]
    assert len(saved) == 2
    assert {t.data_ptr() for t in saved} == {x.data_ptr(), y.data_ptr()}


def test_sigmoid_focal_empty_and_zero_weight_means_are_zero_with_graph():
    x = torch.randn(0, requires_grad=True)
    loss = LF.sigmoid_focal_loss(x, torch.zeros(0))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    x = torch.randn(3, requires_grad=True)
    loss = LF.sigmoid_focal_loss(x, torch.ones(3), weight=torch.zeros(3))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros(3))


def test_sigmoid_focal_gamma_zero_no_alpha_is_bce_with_logits():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, generator=g, dtype=F64) * 5, torch.rand(50, generator=g, dtype=F64)
    torch.testing.assert_close(
        LF.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0),
        LF.binary_cross_entropy_with_logits(x, y),
    )


# ------------------------------------------------------------------ softmax focal loss

_CE_CASES = [
    pytest.param((8, 5), {}, id="indices"),
    pytest.param((8, 5), {"weight": True, "ignore_index": 1}, id="weight-ignore"),
    pytest.param((8, 5), {"label_smoothing": 0.15, "weight": True}, id="smoothing"),
    pytest.param((2, 5, 3, 4), {"label_smoothing": 0.1, "ignore_index": 2}, id="spatial"),
    pytest.param((8, 5), {"probabilities": True, "weight": True}, id="probabilities"),
    pytest.param((5,), {}, id="unbatched"),
]


def _ce_case(shape, opts, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = shape[1] if len(shape) > 1 else shape[0]
    x = (torch.randn(shape, generator=g, dtype=dtype) * 3).requires_grad_()
    kwargs = {k: v for k, v in opts.items() if k not in ("weight", "probabilities")}
    if opts.get("weight"):
        kwargs["weight"] = torch.rand(c, generator=g, dtype=dtype) + 0.2
    if opts.get("probabilities"):
        target = torch.randn(shape, generator=g, dtype=dtype).softmax(1)
    else:
        index_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        target = torch.randint(0, c, index_shape, generator=g)
        if "ignore_index" in kwargs and target.dim():
            target.view(-1)[::3] = kwargs["ignore_index"]
    return x, target, kwargs


@pytest.mark.parametrize(("shape", "opts"), _CE_CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_gamma_zero_is_cross_entropy_exactly(shape, opts, reduction):
    x, target, kwargs = _ce_case(shape, opts, torch.float32)
    kwargs["reduction"] = reduction
    ce, (ce_grad,) = _grads(lambda x: LF.cross_entropy(x, target, **kwargs).sum(), x)
    focal, (focal_grad,) = _grads(lambda x: LF.focal_loss(x, target, gamma=0.0, **kwargs).sum(), x)
    assert torch.equal(focal, ce) and torch.equal(focal_grad, ce_grad)


@pytest.mark.parametrize(("shape", "opts"), _CE_CASES)
def test_focal_function_at_gamma_zero_matches_cross_entropy(shape, opts, small_chunks):
    """alpha=1.0 forces the focal Function (gamma=0 alone delegates to cross_entropy)."""
    x, target, kwargs = _ce_case(shape, opts)
    ce, (ce_grad,) = _grads(lambda x: LF.cross_entropy(x, target, **kwargs), x)
    focal, (focal_grad,) = _grads(
        lambda x: LF.focal_loss(x, target, gamma=0.0, alpha=1.0, **kwargs), x
    )
    torch.testing.assert_close(focal, ce, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(focal_grad, ce_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "opts"), _CE_CASES)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradients_match_the_eager_formula(shape, opts, gamma, small_chunks):
    """Every differentiable argument: logits, probability targets, weight and per-class alpha."""
    x, target, kwargs = _ce_case(shape, opts, seed=int(gamma * 2))
    c = x.shape[1] if x.dim() > 1 else x.shape[0]
    alpha = (torch.rand(c, dtype=F64) + 0.3).requires_grad_()
    leaves = [x, alpha]
    if "weight" in kwargs:
        leaves.append(kwargs.pop("weight").requires_grad_())
    if target.is_floating_point():
        leaves.append(target.requires_grad_())

    def call(fn):
        def run(x, alpha, *rest):
            w = rest[0] if opts.get("weight") else None
            t = rest[-1] if target.is_floating_point() else target
            return fn(x, t, gamma=gamma, alpha=alpha, weight=w, **kwargs)

        return run

    value, grads = _grads(call(LF.focal_loss), *leaves)
    expected, expected_grads = _grads(call(softmax_focal_formula), *leaves)
    torch.testing.assert_close(value, expected)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_focal_fractional_gamma_at_confident_predictions_is_finite():
    logits = torch.tensor([[60.0, 0.0, -5.0], [0.0, 30.0, 1.0], [-3.0, 2.0, 200.0]])
    target = torch.tensor([0, 1, 2])
    x = logits.clone().requires_grad_()
    softmax_focal_formula(x, target, gamma=0.5).backward()
    assert torch.isnan(x.grad).any()
    x.grad = None
    loss = LF.focal_loss(x, target, gamma=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert x.grad.abs().max() < 1e-6


def test_focal_is_finite_for_huge_logits_in_half_precision():
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=torch.float16, requires_grad=True)
    for target in (torch.tensor([1, 1]), torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]).half()):
        loss = LF.focal_loss(x, target, gamma=0.5, label_smoothing=0.1)
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_focal_function_keeps_one_number_per_sample(monkeypatch):
    # above the small-size path's limit (which keeps the (N, C) gradient instead)
    monkeypatch.setattr(_imbalance_functional, "SPARSE_SMALL_MAX", 0)
    x = torch.randn(32, 10, requires_grad=True)
    t = torch.randint(0, 10, (32,))
    node = LF.focal_loss(x, t, reduction="sum").grad_fn
    while type(node).__name__ != "SoftmaxFocalFunctionBackward":
        node = node.next_functions[0][0]
    saved = [s for s in node.saved_tensors if s is not None]
    extra = [s for s in saved if s.data_ptr() not in (x.data_ptr(), t.data_ptr())]
    assert [tuple(s.shape) for s in extra] == [(32,)]


def test_focal_all_ignored_is_zero_and_backward_works():
    x = torch.randn(4, 3, requires_grad=True)
    loss = LF.focal_loss(x, torch.full((4,), -100), alpha=[1.0, 2.0, 3.0])
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(4, 3))


def test_focal_alpha_scales_but_weight_divides_the_mean():
    g = torch.Generator().manual_seed(4)
    x, t = torch.randn(6, 3, generator=g, dtype=F64), torch.randint(0, 3, (6,), generator=g)
    w = torch.tensor([0.5, 2.0, 1.5], dtype=F64)
    plain = LF.focal_loss(x, t, reduction="none")
    torch.testing.assert_close(LF.focal_loss(x, t, alpha=w, reduction="none"), plain * w[t])
    torch.testing.assert_close(LF.focal_loss(x, t, alpha=w), (plain * w[t]).mean())
    torch.testing.assert_close(LF.focal_loss(x, t, weight=w), (plain * w[t]).sum() / w[t].sum())
    torch.testing.assert_close(LF.focal_loss(x, t, alpha=0.5), plain.mean() * 0.5)


# ------------------------------------------------------------------ Poly-1 and asymmetric


@pytest.mark.parametrize(("shape", "opts"), _CE_CASES)
def test_poly1_epsilon_zero_is_cross_entropy_exactly(shape, opts):
    x, target, kwargs = _ce_case(shape, opts, torch.float32)
    assert torch.equal(
        LF.poly1_cross_entropy(x, target, epsilon=0.0, **kwargs),
        LF.cross_entropy(x, target, **kwargs),
    )


def test_poly1_is_the_papers_formula_with_smoothed_labels():
    g = torch.Generator().manual_seed(8)
    x, t = torch.randn(7, 4, generator=g, dtype=F64), torch.randint(0, 4, (7,), generator=g)
    eps, smooth = 2.0, 0.1
    q = F.one_hot(t, 4).to(F64) * (1 - smooth) + smooth / 4
    pt = (q * x.softmax(1)).sum(1)
    paper = F.cross_entropy(x, t, label_smoothing=smooth, reduction="none") + eps * (1 - pt)
    torch.testing.assert_close(
        LF.poly1_cross_entropy(x, t, epsilon=eps, label_smoothing=smooth, reduction="none"), paper
    )


def test_asymmetric_matches_the_authors_formula_and_its_gradient():
    g = torch.Generator().manual_seed(9)
    x = (torch.randn(8, 6, generator=g, dtype=F64) * 3).requires_grad_()
    y = torch.randint(0, 2, (8, 6), generator=g).to(F64)
    for opts in ({}, {"clip": 0.0}, {"gamma_neg": 2.0, "gamma_pos": 0.0, "clip": 0.1}):
        ours, (grad,) = _grads(lambda x, o=opts: LF.asymmetric_loss(x, y, reduction="sum", **o), x)
        theirs, (their_grad,) = _grads(
            lambda x, o=opts: asymmetric_authors_formula(x, y, reduction="sum", **o), x
        )
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(grad, their_grad)


def test_asymmetric_without_focusing_or_clip_is_bce_with_logits():
    g = torch.Generator().manual_seed(10)
    x, y = torch.randn(30, generator=g, dtype=F64) * 4, torch.rand(30, generator=g, dtype=F64)
    torch.testing.assert_close(
        LF.asymmetric_loss(x, y, gamma_neg=0.0, gamma_pos=0.0, clip=0.0),
        LF.binary_cross_entropy_with_logits(x, y),
    )


def test_asymmetric_clip_discards_easy_negatives():
    x = torch.logit(torch.tensor([0.01, 0.04, 0.2], dtype=F64)).requires_grad_()
    loss = LF.asymmetric_loss(x, torch.zeros(3, dtype=F64), clip=0.05, reduction="none")
    loss.sum().backward()
    assert loss[:2].tolist() == [0.0, 0.0] and loss[2] > 0
    assert x.grad[:2].tolist() == [0.0, 0.0]


def test_asymmetric_is_finite_at_extremes_with_fractional_gammas():
    x = torch.tensor([1e4, -1e4, 1e4, -1e4, 40.0, -40.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    for clip in (0.0, 0.05):
        loss = LF.asymmetric_loss(x, y, gamma_neg=0.5, gamma_pos=0.3, clip=clip)
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(
        LF.asymmetric_loss(x.double(), y.double(), reduction="sum"),
        asymmetric_formula(x.double(), y.double(), reduction="sum"),
    )


# ------------------------------------------------------------------ class-balanced weights


def test_class_balanced_weights_follow_the_effective_number():
    counts = [5000, 500, 50, 5]
    beta = 0.999
    w = losskit.class_balanced_weights(counts, beta=beta)
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in counts], dtype=F64)
    torch.testing.assert_close(w, (raw * 4 / raw.sum()).float())
    assert w.dtype == torch.float32 and w.sum().item() == pytest.approx(4.0)
    assert (w[1:] > w[:-1]).all()


def test_class_balanced_weights_limits_and_precision():
    counts = torch.tensor([10, 1000, 10_000_000])
    torch.testing.assert_close(losskit.class_balanced_weights(counts, beta=0.0), torch.ones(3))
    inverse = 1.0 / counts.double()
    torch.testing.assert_close(
        losskit.class_balanced_weights(counts.double(), beta=1.0), inverse * 3 / inverse.sum()
    )
    # 1 - beta**n for beta = 0.9999 is computed without cancellation; huge n saturate
    w = losskit.class_balanced_weights([1, 10_000_000, 20_000_000], beta=0.9999)
    assert torch.isfinite(w).all() and w[1] == w[2]


@pytest.mark.parametrize(
    ("counts", "beta", "match"),
    [
        ([10, 0, 5], 0.99, r"samples_per_class has a count of 0; expected positive finite counts"),
        ([10, -2], 0.99, r"samples_per_class has a count of -2"),
        ([], 0.99, r"samples_per_class is empty; expected at least one class"),
        ([[1, 2], [3, 4]], 0.99, r"samples_per_class has shape \(2, 2\); expected a flat"),
        ([10, 5], 1.5, r"beta is 1.5; expected a number >= 0 and <= 1"),
        ("abc", 0.9, r"samples_per_class is 'abc'; expected a sequence of counts"),
        (torch.ones(2, 2), 0.9, r"samples_per_class has shape \(2, 2\) and dtype torch.float32"),
    ],
)
def test_class_balanced_weights_errors(counts, beta, match):
    with pytest.raises(LossInputError, match=match):
        losskit.class_balanced_weights(counts, beta=beta)


def test_class_balanced_weights_plug_into_ce_focal_and_bce():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2])
    w = losskit.class_balanced_weights(torch.bincount(labels, minlength=3), beta=0.99)
    x = torch.randn(100, 3)
    for loss in (
        LF.cross_entropy(x, labels, weight=w),
        LF.focal_loss(x, labels, weight=w),
        LF.focal_loss(x, labels, alpha=w),
        losskit.FocalLoss(alpha=w)(x, labels),
        LF.binary_cross_entropy_with_logits(x, F.one_hot(labels, 3).float(), pos_weight=w),
        LF.sigmoid_focal_loss(x, F.one_hot(labels, 3).float(), weight=w.expand_as(x)),
    ):
        assert torch.isfinite(loss)


# ------------------------------------------------------------------ modules


def test_focal_module_stores_per_class_alpha_as_a_buffer():
    criterion = losskit.FocalLoss(gamma=1.0, alpha=[0.25, 0.5, 0.25], ignore_index=-1)
    assert "alpha" in dict(criterion.named_buffers())
    criterion = criterion.double()
    x, t = torch.randn(4, 3, dtype=F64), torch.tensor([0, 2, -1, 1])
    torch.testing.assert_close(
        criterion(x, t),
        LF.focal_loss(x, t, gamma=1.0, alpha=[0.25, 0.5, 0.25], ignore_index=-1),
    )
    assert "alpha=Tensor(3,)" in repr(criterion)
    with pytest.raises(LossInputError, match=r"focal_loss: alpha\[1\] is -0.5; expected"):
        losskit.FocalLoss(alpha=[0.5, -0.5])


def test_sigmoid_focal_module_takes_weight_per_call():
    criterion = losskit.SigmoidFocalLoss(alpha=None, gamma=1.0, pos_weight=2.0, reduction="sum")
    x, y, w = torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float(), torch.rand(4, 3)
    torch.testing.assert_close(
        criterion(x, y, weight=w),
        LF.sigmoid_focal_loss(
            x, y, alpha=None, gamma=1.0, pos_weight=2.0, weight=w, reduction="sum"
        ),
    )
    with pytest.raises(LossInputError, match="sigmoid_focal_loss: gamma is -1"):
        losskit.SigmoidFocalLoss(gamma=-1)


# ------------------------------------------------------------------ properties

scores = st.tuples(st.integers(1, 6), st.integers(2, 6), st.integers(0, 2**16))


@settings(settings.get_profile("imbalance"))
@given(case=scores, gammas=st.tuples(st.floats(0.0, 4.0), st.floats(0.0, 4.0)))
def test_focal_is_below_cross_entropy_and_decreases_with_gamma(case, gammas):
    n, c, seed = case
    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(n, c, generator=g, dtype=F64) * 4, torch.randint(0, c, (n,), generator=g)
    low, high = sorted(gammas)
    ce = LF.cross_entropy(x, t, reduction="none")
    focal_low = LF.focal_loss(x, t, gamma=low, reduction="none")
    focal_high = LF.focal_loss(x, t, gamma=high, reduction="none")
    assert (focal_high >= 0).all()
    assert (focal_high <= focal_low + 1e-12).all() and (focal_low <= ce + 1e-12).all()


@settings(settings.get_profile("imbalance"))
@given(
    logits=st.lists(st.floats(-30, 30), min_size=1, max_size=12),
    seed=st.integers(0, 99),
    gamma=st.floats(0.0, 4.0),
    alpha=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_sigmoid_focal_is_bounded_by_weighted_bce(logits, seed, gamma, alpha):
    x = torch.tensor(logits, dtype=F64)
    y = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).to(F64)
    focal = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    bce = LF.binary_cross_entropy_with_logits(x, y, reduction="none")
    a = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    assert (focal >= 0).all() and (focal <= a * bce + 1e-12).all()
    torch.testing.assert_close(
        focal, torchvision_sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    )


@pytest.mark.compile
@pytest.mark.parametrize("name", ["sigmoid_focal", "focal"])
def test_focal_functions_compile_fullgraph(name):
    """Under torch.compile the Functions trace whole (one chunk) and agree with eager."""
    spec = losskit.catalog[name]
    torch._dynamo.reset()
    compiled = torch.compile(spec.functional, fullgraph=True, dynamic=False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=g, requires_grad=True)
    target = (
        torch.randint(0, 2, (16, 5), generator=g).float()
        if name == "sigmoid_focal"
        else torch.randint(0, 5, (16,), generator=g)
    )
    value, (grad,) = _grads(lambda x: compiled(x, target, gamma=0.5), x)
    expected, (expected_grad,) = _grads(lambda x: spec.functional(x, target, gamma=0.5), x)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_softmax_losses_take_any_integer_class_indices(dtype):
    x, w = torch.randn(5, 3), torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([0, 2, 1, 1, 2])
    for fn in (LF.focal_loss, LF.poly1_cross_entropy):
        torch.testing.assert_close(
            fn(x, target.to(dtype), weight=w), fn(x, target, weight=w), rtol=0, atol=0
        )


# ------------------------------------------------------- small sizes: SparseClassFunction


def _sparse_case(dtype=F64, ignore=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(9, 4, generator=g, dtype=dtype) * 3).requires_grad_()
    t = torch.randint(0, 4, (9,), generator=g)
    if ignore:
        t[[1, 4]] = -100
    return x, t


_SPARSE_LOSSES = [
    pytest.param(LF.focal_loss, {"gamma": 2.0}, id="focal"),
    pytest.param(LF.focal_loss, {"gamma": 0.5, "alpha": 0.25}, id="focal-half-alpha"),
    pytest.param(LF.focal_loss, {"gamma": 0.0, "alpha": 2.0}, id="focal-zero"),
    pytest.param(LF.focal_loss, {"gamma": 1.0}, id="focal-one"),
    pytest.param(LF.focal_loss, {"gamma": 3.0}, id="focal-three"),
    pytest.param(LF.poly1_cross_entropy, {}, id="poly1"),
    pytest.param(LF.poly1_cross_entropy, {"epsilon": -1.0}, id="poly1-minus-one"),
    pytest.param(LF.poly1_cross_entropy, {"epsilon": 2.5}, id="poly1-2.5"),
]


def _both_paths(monkeypatch, fn, x, t, kwargs):
    """(value, gradient) through the small path and through the general one."""

    def run():
        out = fn(x, t, **kwargs)
        return out, torch.autograd.grad(out, x, torch.ones_like(out))

    small = run()
    monkeypatch.setattr(_imbalance_functional, "SPARSE_SMALL_MAX", 0)
    general = run()
    monkeypatch.setattr(_imbalance_functional, "SPARSE_SMALL_MAX", 1 << 16)
    return small, general


@pytest.mark.parametrize(("fn", "kwargs"), _SPARSE_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_small_path_matches_the_general_path(monkeypatch, fn, kwargs, reduction, ignore, dtype):
    x, t = _sparse_case(dtype, ignore)
    kwargs = {**kwargs, "reduction": reduction}
    (value, (grad,)), (expected, (expected_grad,)) = _both_paths(monkeypatch, fn, x, t, kwargs)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 2e-6, "atol": 1e-6}
    torch.testing.assert_close(value, expected, **tol)
    torch.testing.assert_close(grad, expected_grad, **tol)


@pytest.mark.parametrize(("fn", "kwargs"), _SPARSE_LOSSES)
@pytest.mark.parametrize("ignore", [False, True])
def test_small_path_gradcheck_and_gradgradcheck(fn, kwargs, ignore):
    x, t = _sparse_case(F64, ignore, seed=3)
    x = (x.detach() / 3).requires_grad_()  # away from p_t = 1, where the focal factor is flat
    for reduction in ("mean", "none"):
        f = lambda x, r=reduction: fn(x, t, reduction=r, **kwargs)  # noqa: E731
        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize(("fn", "kwargs"), _SPARSE_LOSSES)
def test_small_path_extremes_nan_and_all_ignored(monkeypatch, fn, kwargs):
    x = torch.tensor(
        [[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [float("nan"), 0.0, 1.0], [2.0, 0.0, 1.0]],
        requires_grad=True,
    )
    t = torch.tensor([0, 0, 1, -100])
    (value, (grad,)), (expected, (expected_grad,)) = _both_paths(
        monkeypatch, fn, x, t, {**kwargs, "reduction": "none"}
    )
    torch.testing.assert_close(value, expected, equal_nan=True)
    torch.testing.assert_close(grad, expected_grad, equal_nan=True)
    assert torch.isfinite(value[[0, 1, 3]]).all() and torch.isfinite(grad[[0, 1, 3]]).all()
    assert value[2].isnan() and value[3] == 0.0  # NaN in, NaN out; ignored rows are 0
    nothing = torch.randn(3, 4, requires_grad=True)
    loss = fn(nothing, torch.full((3,), -100), **kwargs)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(nothing.grad, torch.zeros(3, 4))


def test_small_path_is_one_node():
    x = torch.randn(64, 10, requires_grad=True)
    t = torch.randint(0, 10, (64,))
    for loss in (LF.focal_loss(x, t), LF.poly1_cross_entropy(x, t)):
        assert type(loss.grad_fn).__name__ == "SparseClassFunctionBackward"
