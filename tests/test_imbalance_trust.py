"""Issue 14 for the class-imbalance losses: exact second derivatives through the focal
Functions, zero-weight means, zero-class and empty inputs, every integer target dtype,
probability targets with ``ignore_index``, and class indices out of range under the default
checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.losses.imbalance import autograd as _focal_autograd
from losskit.losses.imbalance.cases import (
    asymmetric_formula,
    poly1_formula,
    softmax_focal_formula,
    torchvision_sigmoid_focal_loss,
)

F64 = torch.float64


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few elements, so that the analytic backward walks several of them."""
    monkeypatch.setattr(_focal_autograd, "CPU_CHUNK", 7)
    monkeypatch.setattr(_focal_autograd, "CPU_SOFTMAX_CHUNK", 13)


def _penalty_grad(fn, x, *args, **kwargs):
    """The issue's reproducer: d/dx of |d/dx (loss + sum x**3)|**2, through create_graph."""
    x = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x, *args, **kwargs) + (x**3).sum(), x, create_graph=True)
    g.square().sum().backward()
    return x.grad


# ------------------------------------------------------------------ double backward


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"alpha": None, "gamma": 0.5},
        {"gamma": 0.0},
        {"alpha": 0.7, "gamma": 3.0, "reduction": "sum"},
        {"gamma": 1.5, "pos_weight": 2.5, "reduction": "none"},
    ],
)
def test_sigmoid_focal_second_derivative_matches_the_eager_formula(opts, small_chunks):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=F64) * 2
    y = torch.randint(0, 2, (6, 4), generator=g).to(F64)

    def summed(fn):
        return lambda x, y: fn(x, y, **opts).sum()

    got = _penalty_grad(summed(LF.sigmoid_focal_loss), x, y)
    want = _penalty_grad(summed(torchvision_sigmoid_focal_loss), x, y)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"gamma": 0.5, "alpha": 0.5},
        {"gamma": 3.0, "label_smoothing": 0.2, "ignore_index": 1, "reduction": "sum"},
        {"gamma": 1.0, "alpha": [0.3, 1.0, 2.0, 0.5], "reduction": "none"},
    ],
)
def test_focal_second_derivative_matches_the_eager_formula(opts, small_chunks):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=F64) * 2
    t = torch.randint(0, 4, (6,), generator=g)
    t[::3] = opts.get("ignore_index", -100)

    def summed(fn):
        return lambda x, t: fn(x, t, **opts).sum()

    got = _penalty_grad(summed(LF.focal_loss), x, t)
    want = _penalty_grad(summed(softmax_focal_formula), x, t)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().to(F64).requires_grad_()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_gradgradcheck_every_input(gamma, alpha, reduction):
    """Logits, soft targets, elementwise weight and per-label pos_weight: all differentiable twice."""
    g = torch.Generator().manual_seed(2)
    x = _leaf(torch.randn(3, 4, generator=g))
    y = _leaf(torch.rand(3, 4, generator=g) * 0.8 + 0.1)
    w = _leaf(torch.rand(3, 4, generator=g) + 0.1)
    pw = _leaf(torch.rand(4, generator=g) + 0.5)

    def fn(x, y, w, pw):
        return LF.sigmoid_focal_loss(
            x, y, alpha=alpha, gamma=gamma, weight=w, pos_weight=pw, reduction=reduction
        )

    assert gradgradcheck(fn, (x, y, w, pw))


def test_sigmoid_focal_gradgradcheck_hard_labels_scalar_pos_weight():
    g = torch.Generator().manual_seed(3)
    x = _leaf(torch.randn(5, 3, generator=g) * 3)
    y = torch.randint(0, 2, (5, 3), generator=g).to(F64)
    for opts in ({"pos_weight": 3.0, "gamma": 0.5}, {"pos_weight": torch.tensor(0.5, dtype=F64)}):
        assert gradgradcheck(lambda x, o=opts: LF.sigmoid_focal_loss(x, y, **o), (x,))


_FOCAL_CASES = [
    pytest.param((5, 4), {}, id="indices"),
    pytest.param((5, 4), {"weight": True, "ignore_index": 1}, id="weight-ignore"),
    pytest.param((5, 4), {"label_smoothing": 0.15, "weight": True}, id="smoothing"),
    pytest.param((2, 3, 2, 2), {"label_smoothing": 0.1, "ignore_index": 2}, id="spatial"),
    pytest.param((4, 3), {"probabilities": True, "weight": True}, id="probabilities"),
    pytest.param((4,), {}, id="unbatched"),
]


def _focal_case(shape, opts, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = shape[1] if len(shape) > 1 else shape[0]
    leaves = [_leaf(torch.randn(shape, generator=g) * 2), _leaf(torch.rand(c, generator=g) + 0.3)]
    kwargs = {k: v for k, v in opts.items() if k not in ("weight", "probabilities")}
    if opts.get("weight"):
        leaves.append(_leaf(torch.rand(c, generator=g) + 0.2))
    if opts.get("probabilities"):
        target = _leaf(torch.randn(shape, generator=g).softmax(1))
        leaves.append(target)
    else:
        index_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        target = torch.randint(0, c, index_shape, generator=g)
        if "ignore_index" in kwargs:
            target.view(-1)[::3] = kwargs["ignore_index"]
    return leaves, target, kwargs


@pytest.mark.parametrize(("shape", "opts"), _FOCAL_CASES)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_focal_gradgradcheck_every_input(shape, opts, gamma, reduction):
    """Logits, per-class alpha, class weight and probability targets: differentiable twice."""
    leaves, target, kwargs = _focal_case(shape, opts)

    def fn(x, alpha, *rest):
        w = rest[0] if opts.get("weight") else None
        t = rest[-1] if opts.get("probabilities") else target
        return LF.focal_loss(
            x, t, gamma=gamma, alpha=alpha, weight=w, reduction=reduction, **kwargs
        )

    assert gradgradcheck(fn, tuple(leaves))


@pytest.mark.parametrize(("shape", "opts"), _FOCAL_CASES)
def test_poly1_gradgradcheck(shape, opts):
    leaves, target, kwargs = _focal_case(shape, opts, seed=4)
    x = leaves[0]
    w = leaves[2] if opts.get("weight") else None
    t = leaves[-1] if opts.get("probabilities") else target
    assert gradgradcheck(lambda x: LF.poly1_cross_entropy(x, t, weight=w, **kwargs), (x,))
    got = _penalty_grad(lambda x: LF.poly1_cross_entropy(x, t, weight=w, **kwargs), x)
    ref_w = None if w is None else w.detach()
    want = _penalty_grad(lambda x: poly1_formula(x, t.detach(), weight=ref_w, **kwargs), x)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_asymmetric_gradgradcheck(clip):
    g = torch.Generator().manual_seed(5)
    x = _leaf(torch.randn(4, 3, generator=g) * 2)
    y = torch.randint(0, 2, (4, 3), generator=g).to(F64)
    w = _leaf(torch.rand(4, 3, generator=g) + 0.1)
    assert gradgradcheck(
        lambda x, w: LF.asymmetric_loss(x, y, gamma_neg=2.0, gamma_pos=0.5, clip=clip, weight=w),
        (x, w),
    )
    got = _penalty_grad(lambda x: LF.asymmetric_loss(x, y, clip=clip), x)
    want = _penalty_grad(lambda x: asymmetric_formula(x, y, clip=clip), x)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [F64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_second_derivatives_are_finite_at_extreme_logits(dtype, gamma):
    """Confident predictions (1 - p_t far below 1e-100 in float64) and logits of +-1e4."""
    x = torch.tensor([1e4, -1e4, 700.0, -300.0, 80.0, 40.0, -20.0, 0.0], dtype=dtype)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.5], dtype=dtype)
    got = _penalty_grad(lambda x: LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction="sum"), x)
    assert torch.isfinite(got).all()
    scores = torch.stack([x, -x, torch.zeros_like(x)], 1)
    t = torch.zeros(8, dtype=torch.long)
    for kwargs in ({}, {"label_smoothing": 0.1}):
        got = _penalty_grad(
            lambda s, k=kwargs: LF.focal_loss(s, t, gamma=gamma, alpha=0.5, **k), scores
        )
        assert torch.isfinite(got).all()


def test_single_backward_never_builds_the_eager_graph():
    """Without create_graph the analytic backward runs: the gradient has no graph."""
    x = torch.randn(4, 3, requires_grad=True)
    (g,) = torch.autograd.grad(LF.focal_loss(x, torch.tensor([0, 1, 2, 0])), x)
    assert not g.requires_grad
    (g,) = torch.autograd.grad(LF.sigmoid_focal_loss(x, torch.ones(4, 3)), x)
    assert not g.requires_grad


# ------------------------------------------------------------------ zero weights, NaN


@pytest.mark.parametrize("fn", [LF.sigmoid_focal_loss, LF.asymmetric_loss])
def test_zero_weight_mean_gives_zero_gradients_to_everything(fn):
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    y = torch.randint(0, 2, (3, 4)).to(F64)
    w = torch.zeros(3, 4, dtype=F64, requires_grad=True)
    loss = fn(x, y, weight=w)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(x.grad, torch.zeros_like(x))
    assert gradcheck(lambda x, w: fn(x, y, weight=w), (x, w))


@pytest.mark.parametrize("fn", [LF.sigmoid_focal_loss, LF.asymmetric_loss])
@pytest.mark.parametrize("zero_weight", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sigmoid_family_nan_in_is_nan_out(fn, zero_weight, reduction):
    x = torch.randn(3, 4)
    x[1, 2] = float("nan")
    y = torch.randint(0, 2, (3, 4)).float()
    w = torch.zeros(3, 4) if zero_weight else torch.rand(3, 4)
    assert torch.isnan(fn(x, y, weight=w, reduction=reduction))


@pytest.mark.parametrize("fn", [LF.focal_loss, LF.poly1_cross_entropy])
def test_softmax_family_nan_in_is_nan_out(fn):
    x = torch.randn(3, 4)
    x[1, 2] = float("nan")
    assert torch.isnan(fn(x, torch.tensor([0, 1, 3])))
    assert torch.isnan(fn(x, torch.tensor([0, 1, 3]), label_smoothing=0.1))


# ------------------------------------------------------------------ empty and zero-class


@pytest.mark.parametrize("fn", [LF.focal_loss, LF.poly1_cross_entropy])
@pytest.mark.parametrize(
    ("input", "target"),
    [
        (torch.randn(3, 0), torch.zeros(3, dtype=torch.long)),
        (torch.randn(3, 0), torch.zeros(3, 0)),
        (torch.randn(2, 0, 4), torch.zeros(2, 4, dtype=torch.long)),
        (torch.randn(0), torch.zeros((), dtype=torch.long)),
    ],
)
def test_zero_classes_are_refused(fn, input, target):
    with pytest.raises(LossInputError, match=rf"{fn.__name__}: input has shape .*; expected at"):
        fn(input, target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_empty_labels_with_empty_pos_weight(reduction):
    """An input with no labels and its (0,) pos_weight: the empty loss, not a raw error."""
    x = torch.randn(3, 0, requires_grad=True)
    loss = LF.sigmoid_focal_loss(
        x, torch.zeros(3, 0), pos_weight=torch.ones(0), reduction=reduction
    )
    assert loss.shape == (() if reduction != "none" else (3, 0))
    loss.sum().backward()
    assert loss.sum().item() == 0.0 and x.grad.shape == (3, 0)


def test_sigmoid_focal_empty_pos_weight_for_labels_is_refused():
    with pytest.raises(LossInputError, match=r"pos_weight has shape \(0,\); expected a number"):
        LF.sigmoid_focal_loss(torch.randn(3, 4), torch.zeros(3, 4), pos_weight=torch.ones(0))


# ------------------------------------------------------------------ targets


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
@pytest.mark.parametrize(
    ("fn", "opts"),
    [
        (LF.focal_loss, {}),
        (LF.focal_loss, {"gamma": 0.0}),
        (LF.focal_loss, {"gamma": 0.5, "alpha": [1.0, 2.0, 0.5]}),
        (LF.poly1_cross_entropy, {}),
        (LF.poly1_cross_entropy, {"epsilon": 0.0}),
    ],
)
def test_every_integer_target_dtype_gives_the_int64_number(dtype, fn, opts):
    x, w = torch.randn(6, 3, 2), torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([[0, 2], [1, 1], [2, 0], [1, 0], [2, 2], [0, 1]])
    for extra in ({}, {"label_smoothing": 0.1}, {"ignore_index": 1}):
        kwargs = {**opts, **extra, "weight": w}
        torch.testing.assert_close(
            fn(x, target.to(dtype), **kwargs), fn(x, target, **kwargs), rtol=0, atol=0
        )


@pytest.mark.parametrize(
    ("fn", "opts"),
    [
        (LF.focal_loss, {"gamma": 0.0}),
        (LF.focal_loss, {"gamma": 2.0}),
        (LF.focal_loss, {"gamma": 0.0, "alpha": 0.5}),
        (LF.poly1_cross_entropy, {"epsilon": 0.0}),
        (LF.poly1_cross_entropy, {"epsilon": 1.0}),
    ],
)
def test_probability_targets_take_any_ignore_index(fn, opts):
    """ignore_index means nothing for probabilities: any value gives the default's number."""
    g = torch.Generator().manual_seed(6)
    x, p = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g).softmax(1)
    w = torch.rand(4, generator=g) + 0.5
    expected = fn(x, p, weight=w, label_smoothing=0.1, **opts)
    for ignore_index in (0, 3, 7):
        got = fn(x, p, weight=w, label_smoothing=0.1, ignore_index=ignore_index, **opts)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_probability_targets_with_ignore_index_in_the_modules():
    x, p = torch.randn(5, 4), torch.randn(5, 4).softmax(1)
    torch.testing.assert_close(
        losskit.FocalLoss(gamma=0.0, ignore_index=1)(x, p), LF.focal_loss(x, p, gamma=0.0)
    )
    torch.testing.assert_close(losskit.FocalLoss(ignore_index=2)(x, p), LF.focal_loss(x, p))
    torch.testing.assert_close(
        losskit.Poly1CrossEntropyLoss(ignore_index=0)(x, p), LF.poly1_cross_entropy(x, p)
    )


@pytest.mark.parametrize("fn", [LF.focal_loss, LF.poly1_cross_entropy])
@pytest.mark.parametrize(
    "target", [torch.tensor([0, 1, 4]), torch.tensor([0, -1, 2]), torch.tensor([0, 1, 200])]
)
@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.1}, {"ignore_index": 1}])
def test_out_of_range_class_indices_are_refused_on_cpu_by_default(fn, target, opts):
    """Also where the loss delegates to cross_entropy (gamma=0, epsilon=0)."""
    assert losskit.get_checks() == "fast"
    delegate = {"gamma": 0.0} if fn is LF.focal_loss else {"epsilon": 0.0}
    for kwargs in (opts, {**opts, **delegate}):
        with pytest.raises(LossInputError, match=rf"{fn.__name__}: target has class indices in"):
            fn(torch.randn(3, 4), target.to(torch.int32), **kwargs)


# ------------------------------------------------- the fuzzer's findings (issue 14, last part)

# valid options that float32 rounds to 0 (a gamma or clip of 1e-50 is not 0 in float64)
TINY = (1e-300, 1e-50, 1e-40)


@pytest.mark.parametrize("gamma", TINY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_tiny_gamma_is_gamma_zero_not_nan(gamma, dtype):
    """Before: NaN, from -inf * 0 in exp(gamma log(1 - p_t)) where p_t rounds to 1."""
    x = torch.tensor([[100.0, -100.0, 0.0], [3.0, -200.0, 1.0]], dtype=dtype, requires_grad=True)
    t = torch.tensor([0, 1])
    out = LF.focal_loss(x, t, gamma=gamma)
    torch.testing.assert_close(out, LF.focal_loss(x, t, gamma=0.0))
    out.backward()
    assert x.grad.isfinite().all()
    ignored = LF.focal_loss(x, torch.tensor([-100, -100]), gamma=gamma)
    assert ignored.item() == 0.0  # every target ignored: 0, not 0 * NaN


@pytest.mark.parametrize("gamma", TINY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_focal_tiny_gamma_is_gamma_zero_not_nan(gamma, dtype):
    x = torch.tensor([100.0, -100.0, 3.0, 1e4, -1e4], dtype=dtype, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=dtype)
    out = LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction="none")
    torch.testing.assert_close(out, LF.sigmoid_focal_loss(x, y, gamma=0.0, reduction="none"))
    out.sum().backward()
    assert x.grad.isfinite().all()


@pytest.mark.parametrize("clip", TINY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asymmetric_tiny_clip_at_huge_logits_is_finite(clip, dtype):
    """Before: NaN at a logit of 1e4 with a positive label (1 - p_m rounded to 0: log = -inf,
    times the label's 1 - y = 0); with a negative label the loss is -log(clip), not inf."""
    x = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.5, 1e4, 3.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0], dtype=dtype)
    out = LF.asymmetric_loss(x, y, clip=clip, reduction="none")
    expected = asymmetric_formula(x.detach().double(), y.double(), clip=clip, reduction="none")
    torch.testing.assert_close(out.double(), expected)
    assert abs(out[5].item() + math.log(clip)) < 1e-4 * abs(math.log(clip))
    out.sum().backward()
    assert x.grad.isfinite().all()


@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.2}, {"weight": "w"}])
@pytest.mark.parametrize("fn", [LF.focal_loss, LF.poly1_cross_entropy])
def test_an_ignored_nan_row_gives_zero_as_in_cross_entropy(fn, opts):
    """Before: NaN * 0 from the 0/1 mask of the ignored rows."""
    x = torch.randn(4, 3, dtype=F64)
    x[0, 0] = float("nan")
    t = torch.tensor([-100, 1, 2, 0])
    if opts.get("weight") == "w":
        opts = {"weight": torch.tensor([0.5, 1.0, 2.0], dtype=F64)}
    out = fn(x, t, reduction="none", **opts)
    assert out[0].item() == 0.0 and out[1:].isfinite().all()
    assert LF.cross_entropy(x, t, reduction="none", **opts)[0].item() == 0.0  # torch's rule
    assert fn(x, t, **opts).isfinite()
    reference = (softmax_focal_formula if fn is LF.focal_loss else poly1_formula)(
        x, t, reduction="none", **opts
    )
    torch.testing.assert_close(out, reference)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("options", [{}, {"pos_weight": 3.0, "weight": True, "alpha": 0.25}])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_straight_path_kept_terms_give_the_recomputed_gradient(
    gamma, options, reduction
):
    """The one-chunk path's backward reads the terms its forward kept (p, ce, 1 - 2y, 1 - p_t):
    the same gradient as recomputing them, unchanged by the backward (a second backward
    through the same graph gives the same gradient again), and the eager formula's."""
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(6, 7, generator=g, dtype=torch.float64) * 4).requires_grad_()
    y = torch.randint(0, 2, (6, 7), generator=g).double()
    kwargs = {"gamma": gamma, "reduction": reduction, "alpha": options.get("alpha")}
    if options:
        kwargs["pos_weight"] = options["pos_weight"]
        kwargs["weight"] = torch.rand(6, 7, generator=g, dtype=torch.float64)
    assert _focal_autograd._one_chunk(x, kwargs.get("pos_weight"))
    out = LF.sigmoid_focal_loss(x, y, **kwargs)
    outer = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (first,) = torch.autograd.grad(out, x, outer, retain_graph=True)
    (second,) = torch.autograd.grad(out, x, outer)
    assert torch.equal(first, second)
    _, kept = _focal_autograd._small_sigmoid_focal(
        x.detach(),
        y,
        kwargs.get("weight"),
        kwargs.get("pos_weight"),
        kwargs["alpha"],
        gamma,
        reduction,
        1.0,
        keep=True,
    )
    assert (kept is None) == (gamma == 0.0)
    args = (x.detach(), y, kwargs.get("weight"), kwargs.get("pos_weight"), kwargs["alpha"], gamma)
    factor = 0.5 if kwargs["alpha"] is not None else 1.0
    recomputed = _focal_autograd._small_sigmoid_focal_grad(*args, outer, factor)
    from_kept = _focal_autograd._small_sigmoid_focal_grad(*args, outer, factor, kept)
    torch.testing.assert_close(from_kept, recomputed, rtol=1e-12, atol=1e-15)
    x2 = x.detach().clone().requires_grad_()
    ref = torchvision_sigmoid_focal_loss(x2, y, **kwargs)
    (want,) = torch.autograd.grad(ref, x2, outer)
    torch.testing.assert_close(first, want)
