"""Regression tests for cross-entropy, NLL and binary cross-entropy (issue 14: no silently wrong
number, no raw torch error), and the multi-class hinge's class indices."""

from __future__ import annotations

import doctest
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
from losskit import LossInputError

INDEX_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ defect 3: integer dtypes


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(4, 4), (6, 5), (2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_integer_target_dtype_gives_the_int64_number(index_dtype, shape, reduction):
    # (4, 4): a uint8 target as long as the weight was read as a boolean mask of it
    g = _gen()
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    w = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.1
    for fn, opts in (
        (LF.cross_entropy, {"weight": w, "label_smoothing": 0.1}),
        (LF.cross_entropy, {}),
        (LF.nll_loss, {"weight": w}),
    ):
        expected = fn(x, t, reduction=reduction, **opts)
        out = fn(x, t.to(index_dtype), reduction=reduction, **opts)
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(
        LF.cross_entropy(x, t.to(index_dtype), weight=w, label_smoothing=0.1, reduction=reduction),
        F.cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction=reduction),
    )


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES, ids=str)
def test_integer_targets_of_margin_losses(index_dtype):
    g = _gen(1)
    x = torch.randn(6, 4, generator=g)
    t = torch.randint(0, 4, (6,), generator=g)
    w = torch.rand(4, generator=g) + 0.1
    torch.testing.assert_close(
        LF.multi_margin_loss(x, t.to(index_dtype), weight=w, p=2),
        LF.multi_margin_loss(x, t, weight=w, p=2),
        rtol=0,
        atol=0,
    )
    labels = torch.randint(0, 2, (6, 4), generator=g)
    for target in (labels, labels * 2 - 1):
        if index_dtype == torch.uint8 and target.min() < 0:
            continue
        torch.testing.assert_close(
            LF.hinge_loss(x, target.to(index_dtype), reduction="none"),
            LF.hinge_loss(x, target, reduction="none"),
            rtol=0,
            atol=0,
        )


def test_bool_class_indices_are_refused_as_torch_does():
    # a bool target is more likely a mask or a binary label than classes 0 and 1
    x, t = torch.randn(4, 3), torch.tensor([True, False, True, True])
    with pytest.raises(RuntimeError):
        F.cross_entropy(x, t)
    for fn in (LF.cross_entropy, LF.nll_loss, LF.multi_margin_loss):
        with pytest.raises(LossInputError, match=rf"{fn.__name__}: target has dtype torch.bool"):
            fn(x, t)
    # binary labels may be bool
    assert LF.hinge_loss(torch.randn(4), t).isfinite()


# ------------------------------------------------- defect 7: probabilities and ignore_index


@pytest.mark.parametrize("ignore_index", [0, 1, 7, -1])
def test_ignore_index_does_not_apply_to_probabilities(ignore_index):
    g = _gen(2)
    x = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    q = torch.softmax(torch.randn(5, 3, 2, generator=g, dtype=torch.float64), 1)
    w = torch.rand(3, generator=g, dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        opts = {"weight": w, "label_smoothing": 0.2, "reduction": reduction}
        expected = F.cross_entropy(x, q, **opts)
        out = LF.cross_entropy(x, q, ignore_index=ignore_index, **opts)
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        module = losskit.CrossEntropyLoss(
            w, ignore_index=ignore_index, **{k: v for k, v in opts.items() if k != "weight"}
        )
        torch.testing.assert_close(module(x, q), expected, rtol=0, atol=0)


def test_ignore_index_must_still_be_an_int_with_probabilities():
    x = torch.randn(2, 3)
    with pytest.raises(
        LossInputError, match=r"cross_entropy: ignore_index is 1.5; expected an int"
    ):
        LF.cross_entropy(x, x.softmax(1), ignore_index=1.5)


# --------------------------------------------------- defect 8: non-contiguous 4-D input


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("fn", [LF.nll_loss, LF.cross_entropy], ids=lambda f: f.__name__)
def test_noncontiguous_4d_input_value_and_gradient(fn, reduction):
    g = _gen(3)
    b = torch.randn(5, 3, 4, 2, generator=g, dtype=torch.float64).log_softmax(1)
    t = torch.randint(0, 3, (5, 4, 2), generator=g)
    t[0, 0, 0] = -100
    strided = b.transpose(0, -1).contiguous().transpose(0, -1).requires_grad_()
    dense = b.clone().requires_grad_()
    assert not strided.is_contiguous()
    out, expected = fn(strided, t, reduction=reduction), fn(dense, t, reduction=reduction)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(strided.grad, dense.grad)


# ------------------------------------------------- defect 10: a BCE weight that requires grad


@pytest.mark.parametrize(
    "fn", [LF.binary_cross_entropy, LF.binary_cross_entropy_with_logits], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_weight_gradient(fn, reduction):
    g = _gen(4)
    x = torch.rand(3, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05
    y = torch.randint(0, 2, (3, 4), generator=g).double()
    w = (torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    out = fn(x, y, weight=w, reduction=reduction)
    torch.testing.assert_close(out, fn(x, y, weight=w.detach(), reduction=reduction))
    assert torch.autograd.gradcheck(lambda w: fn(x, y, weight=w, reduction=reduction), (w,))


@pytest.mark.parametrize(
    "fn", [LF.binary_cross_entropy, LF.binary_cross_entropy_with_logits], ids=lambda f: f.__name__
)
def test_bce_all_zero_weight_gets_zero_gradients(fn):
    x = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
    w = torch.zeros(3, requires_grad=True)
    out = fn(x, torch.tensor([1.0, 0.0, 1.0]), weight=w)
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(w.grad, torch.zeros(3))
    assert torch.equal(x.grad, torch.zeros(3))


def test_bce_nan_in_is_nan_out_with_a_weight():
    x = torch.tensor([0.2, float("nan")])
    out = LF.binary_cross_entropy_with_logits(x, torch.ones(2), weight=torch.ones(2))
    assert out.isnan()


# ------------------------------------------------- defect 11: half-precision BCE at 0 and 1


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_half_bce_gradient_is_finite_at_zero_and_one(half, reduction):
    p = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.25], dtype=half, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0], dtype=half, requires_grad=True)
    out = LF.binary_cross_entropy(p, y, reduction=reduction)
    # the value is torch's float32 kernel on the same inputs, rounded once
    expected = F.binary_cross_entropy(p.float(), y.float(), reduction=reduction).to(half)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(y.grad).all()
    # the slope of the clamped loss: 1 - y at p = 0, -y at p = 1; torch's elsewhere
    scale = 1 / 7 if reduction == "mean" else 1.0
    slope = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.5, -0.5, -4.0]) * scale
    torch.testing.assert_close(p.grad.float(), slope.to(half).float())
    # log(1 - p) - log(p), each log clamped at -100; log(0.75 / 0.25) at p = 0.25
    log_ratio = torch.tensor([100.0, -100.0, 100.0, -100.0, 100.0, -100.0, 3.0]) * scale
    log_ratio[-1] = torch.tensor(3.0).log() * scale
    torch.testing.assert_close(y.grad.float(), log_ratio.to(half).float())


def test_bce_target_gradient_is_finite_at_zero_and_one():
    p = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.5, 0.5, 0.2], dtype=torch.float64, requires_grad=True)
    out = LF.binary_cross_entropy(p, y, reduction="sum")
    torch.testing.assert_close(out, F.binary_cross_entropy(p, y, reduction="sum"))
    out.backward()
    expected = torch.tensor([100.0, -100.0, torch.tensor(0.7 / 0.3).log().item()])
    torch.testing.assert_close(y.grad, expected.double())
    # the input's gradient off the edges is torch's
    torch.testing.assert_close(p.grad[2], torch.tensor((0.3 - 0.2) / (0.3 * 0.7)).double())


def test_half_bce_double_backward_at_the_edges():
    p = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float16, requires_grad=True)
    y = torch.tensor([0.3, 0.6, 1.0], dtype=torch.float16, requires_grad=True)
    (gp,) = torch.autograd.grad(
        LF.binary_cross_entropy(p, y, reduction="sum"), p, create_graph=True
    )
    (gy,) = torch.autograd.grad(gp.sum(), y)
    # d/dy of the slopes (1 - y, -y) is -1 at both edges; torch's (p - y) / (p (1 - p)) at 0.5
    torch.testing.assert_close(gy.float(), torch.tensor([-1.0, -1.0, -4.0]))


# ------------------------------------------------------------ defect 14: zero classes


@pytest.mark.parametrize("shape", [(3, 0), (2, 0, 4), (0, 0), (0,)], ids=str)
@pytest.mark.parametrize("fn", [LF.cross_entropy, LF.nll_loss], ids=lambda f: f.__name__)
def test_zero_classes_are_refused(fn, shape):
    x = torch.randn(*shape)
    index_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    with pytest.raises(
        LossInputError, match=rf"{fn.__name__}: input has shape .*; expected at least one class"
    ):
        fn(x, torch.zeros(index_shape, dtype=torch.long))


# ------------------------------------------- defect 16: class indices out of range (CPU, fast)


@pytest.mark.parametrize("bad", [4, -3, 200])
@pytest.mark.parametrize(
    "fn", [LF.cross_entropy, LF.nll_loss, LF.multi_margin_loss], ids=lambda f: f.__name__
)
def test_out_of_range_indices_under_default_checks(fn, bad):
    assert losskit.get_checks() == "fast"
    x = torch.randn(6, 4)
    t = torch.tensor([0, 1, 2, 3, bad, 0])
    with pytest.raises(LossInputError, match=rf"{fn.__name__}: target has class indices in"):
        fn(x, t)
    with pytest.raises(LossInputError):
        fn(x, t.to(torch.int32))
    if bad == 200:
        with pytest.raises(LossInputError):  # 200 fits uint8: an index, not a mask
            fn(x, t.to(torch.uint8))


def test_ignore_index_is_not_out_of_range():
    x = torch.randn(6, 4)
    t = torch.tensor([0, 1, -100, 3, 2, -100])
    torch.testing.assert_close(LF.cross_entropy(x, t), F.cross_entropy(x, t))
    t = torch.where(t == -100, 7, t)
    torch.testing.assert_close(
        LF.cross_entropy(x, t, ignore_index=7), F.cross_entropy(x, t, ignore_index=7)
    )
    with pytest.raises(LossInputError, match=r"class indices in \[0, 7\]"):
        LF.cross_entropy(x, t)


@pytest.mark.parametrize(
    "fn", [LF.cross_entropy, LF.nll_loss, LF.multi_margin_loss], ids=lambda f: f.__name__
)
def test_class_weight_that_requires_grad_is_a_clear_error(fn):
    # torch's kernels have no gradient for the class weight (torch raises a raw error)
    w = torch.rand(4, requires_grad=True)
    x, t = torch.randn(3, 4), torch.tensor([0, 1, 3])
    with pytest.raises(LossInputError, match=rf"{fn.__name__}: weight requires grad"):
        fn(x, t, weight=w)
    with torch.no_grad():
        assert fn(x, t, weight=w).isfinite()


# --------------------------------------------------------- defect 17: torch.nn compatibility


@pytest.mark.parametrize(
    ("module", "torch_module", "logits"),
    [
        (losskit.BCELoss, torch.nn.BCELoss, False),
        (losskit.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, True),
    ],
    ids=["bce", "bce_with_logits"],
)
@pytest.mark.parametrize("weight_shape", [(4,), (3, 4), (3, 1), (1, 4)], ids=str)
def test_bce_modules_take_torchs_constructor_weight(module, torch_module, logits, weight_shape):
    g = _gen(5)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    x = x if logits else x.sigmoid()
    y = torch.randint(0, 2, (3, 4), generator=g).double()
    w = torch.rand(*weight_shape, generator=g, dtype=torch.float64) + 0.1
    for reduction in ("sum", "none"):
        torch.testing.assert_close(
            module(w, reduction=reduction)(x, y), torch_module(w, reduction=reduction)(x, y)
        )
    # "mean" is losskit's weighted mean over the broadcast weight (torch divides by N)
    expected = torch_module(w, reduction="sum")(x, y) / w.expand(3, 4).sum()
    criterion = module(weight=w)
    torch.testing.assert_close(criterion(x, y), expected)
    restored = pickle.loads(pickle.dumps(criterion))
    torch.testing.assert_close(restored(x, y), expected)
    assert "weight" in criterion.state_dict()


def test_bce_constructor_weight_errors():
    p, y = torch.rand(3, 4), torch.ones(3, 4)
    with pytest.raises(
        LossInputError, match=r"weight \(given to the constructor\) has shape \(3,\)"
    ):
        losskit.BCELoss(torch.ones(3))(p, y)
    with pytest.raises(LossInputError, match="given both to the constructor and to the call"):
        losskit.BCEWithLogitsLoss(torch.ones(4))(p, y, weight=torch.ones(3, 4))
    # no constructor weight: the per-call weight, of the input's shape, as before
    torch.testing.assert_close(
        losskit.BCELoss()(p, y, weight=torch.full((3, 4), 2.0)), LF.binary_cross_entropy(p, y)
    )


# ----------------------------------------------------------------- defect 18: the doctests


def test_cross_entropy_docstring_value_is_torchs():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    assert round(F.cross_entropy(logits, torch.tensor([0, 2])).item(), 4) == 0.1755


@pytest.mark.parametrize(
    "module",
    [
        "losskit.losses.classification.functional",
        "losskit.losses.margin.functional",
        "losskit.losses.classification.modules",
        "losskit.losses.margin.modules",
    ],
)
def test_docstring_examples_are_correct(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


# ------------------------------- per-call overhead: the common call answered by torch's kernel

SCORE_FNS = {
    "cross_entropy": (LF.cross_entropy, F.cross_entropy),
    "nll_loss": (LF.nll_loss, F.nll_loss),
}


def _scores(name: str, dtype: torch.dtype, n: int = 5, c: int = 4, seed: int = 0):
    x = torch.randn(n, c, dtype=dtype, generator=_gen(seed))
    if name == "nll_loss":
        x = x.log_softmax(1)
    return x.requires_grad_()


@pytest.fixture
def fast_checks():
    """The fast path is the default checks' (``checks("full")`` takes the general path): pin
    them, so these tests mean the same under ``LOSSKIT_CHECKS=full``."""
    with losskit.checks("fast"):
        yield


def _general_path_only(monkeypatch):
    """Make the general path raise: a call that still answers took the fast path."""
    from losskit.losses.classification import functional as CF

    def refuse(*args, **kwargs):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(CF, "_scores_loss", refuse)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy", {}),
        ("cross_entropy", {"ignore_index": 2}),
        ("cross_entropy", {"label_smoothing": 0.2}),
        ("cross_entropy", {"ignore_index": 2, "label_smoothing": 0.2}),
        ("nll_loss", {}),
        ("nll_loss", {"ignore_index": 2}),
    ],
    ids=str,
)
def test_common_call_is_torchs_kernel_bit_for_bit(
    monkeypatch, fast_checks, name, options, reduction, dtype
):
    """(N, C) float32/float64 and int64 indices on the CPU: torch's number and gradient, exactly,
    without the general path (the per-call overhead at 32 logits)."""
    ours, theirs = SCORE_FNS[name]
    x = _scores(name, dtype)
    t = torch.tensor([0, 2, 3, 2, 1])
    expected = theirs(x, t, reduction=reduction, **options)
    (g_expected,) = torch.autograd.grad(expected.sum(), x)
    _general_path_only(monkeypatch)
    out = ours(x, t, reduction=reduction, **options)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(out, expected) and torch.equal(g, g_expected)


@pytest.mark.parametrize("n", [0, 3], ids=lambda n: f"n={n}")
@pytest.mark.parametrize(
    ("name", "options"),
    [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}), ("nll_loss", {})],
    ids=str,
)
def test_common_call_keeps_the_empty_mean(fast_checks, name, options, n):
    """torch's kernel gives NaN for a mean over no counted target (empty batch, or every target
    ignore_index); the fast path hands that call to the general path: 0.0 on the graph."""
    ours, _ = SCORE_FNS[name]
    x = _scores(name, torch.float32, n=n)
    out = ours(x, torch.full((n,), -100), **options)
    assert out.item() == 0.0 and out.requires_grad
    (g,) = torch.autograd.grad(out, x)
    assert torch.equal(g, torch.zeros_like(x))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", SCORE_FNS)
def test_common_call_nan_in_is_nan_out(fast_checks, name, reduction):
    ours, theirs = SCORE_FNS[name]
    x = _scores(name, torch.float32).detach()
    x[1, 2] = float("nan")
    t = torch.tensor([0, 2, 3, 2, 1])
    torch.testing.assert_close(
        ours(x, t, reduction=reduction), theirs(x, t, reduction=reduction), equal_nan=True
    )
    assert ours(x, t, reduction=reduction).isnan().any()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bad", [4, -1, -101])
@pytest.mark.parametrize("name", SCORE_FNS)
def test_common_call_out_of_range_index_is_a_loss_input_error(fast_checks, name, bad, reduction):
    """torch's kernel raises IndexError on the fast path; the general path names the loss."""
    ours, _ = SCORE_FNS[name]
    x = _scores(name, torch.float32)
    t = torch.tensor([0, 1, -100, bad, 3])
    with pytest.raises(LossInputError, match=rf"{name}: target has class indices in"):
        ours(x, t, reduction=reduction)
    if name == "cross_entropy":
        with pytest.raises(LossInputError, match=r"cross_entropy: target has class indices"):
            ours(x, t, reduction=reduction, label_smoothing=0.1)


@pytest.mark.parametrize("name", SCORE_FNS)
def test_common_call_reads_its_mean_without_warning(fast_checks, name):
    """The fast path reads a "mean" back (.item()) on a tensor that requires grad: no warning."""
    ours, _ = SCORE_FNS[name]
    x = _scores(name, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(x, torch.tensor([0, 2, 3, 2, 1])).backward()


@pytest.mark.parametrize("name", SCORE_FNS)
def test_common_call_double_backward(fast_checks, name):
    ours, theirs = SCORE_FNS[name]
    x, t = _scores(name, torch.float64), torch.tensor([0, 2, 3, 2, 1])
    assert torch.autograd.gradgradcheck(lambda x: ours(x, t), (x,))
    (g,) = torch.autograd.grad(ours(x, t), x, create_graph=True)
    (g_ref,) = torch.autograd.grad(theirs(x, t), x, create_graph=True)
    torch.testing.assert_close(g, g_ref)


def test_common_call_keeps_the_full_checks_and_the_options_messages():
    x, t = _scores("cross_entropy", torch.float32), torch.tensor([0, 2, 3, 2, 1])
    with losskit.checks("full"), pytest.raises(LossInputError, match=r"1 non-finite"):
        LF.cross_entropy(
            x.detach().index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(torch.inf)), t
        )
    with pytest.raises(LossInputError, match=r"cross_entropy: label_smoothing"):
        LF.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(LossInputError, match=r"cross_entropy: label_smoothing"):
        LF.cross_entropy(x, t, label_smoothing=float("nan"))
    with pytest.raises(LossInputError, match=r"nll_loss: reduction is 'avg'"):
        LF.nll_loss(x, t, reduction="avg")
    with pytest.raises(LossInputError, match=r"nll_loss: ignore_index is True"):
        LF.nll_loss(x, t, ignore_index=True)
    with pytest.raises(LossInputError, match=r"cross_entropy: target has shape \(4,\)"):
        LF.cross_entropy(x, t[:4])
