"""Issue 14 for linear and vocab-parallel cross-entropy: double backward exact (linear
cross-entropy, on every path) or refused clearly (vocab-parallel), never silently wrong;
zero-class heads refused, and class indices out of range refused under the default checks on
CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy

F64 = torch.float64


def _inputs(dtype=F64):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(6, 4, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(10, 4, generator=g, dtype=dtype, requires_grad=True)
    y = torch.tensor([1, 9, -100, 0, 3, 2])
    return h, w, y


# ------------------------------------------------------------------------- double backward


def _penalty_gradient(loss, h, w, cube=True):
    """The gradient, by double backward, of the gradient penalty ``|grad (loss + sum h^3)|^2``
    with respect to both arguments (the issue's reproducer: the loss's incoming gradient is
    the constant 1, where a Function's backward used to count as a constant)."""
    h, w = (t.detach().clone().requires_grad_(True) for t in (h, w))
    extra = (h**3).sum() if cube else 0
    gh, gw = torch.autograd.grad(loss(h, w).sum() + extra, (h, w), create_graph=True)
    return torch.autograd.grad(gh.square().sum() + gw.square().sum(), (h, w))


#: the three paths of one process: the common call (no ignored target, defaults), the plain
#: formula (small head, ignored targets) and the chunked Function (an explicit chunk_size)
PATHS = {
    "common": ({}, False),
    "plain": ({}, True),
    "chunks": ({"chunk_size": 4}, True),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1, "z_loss": 1e-2, "softcap": 3.0}],
    ids=["defaults", "smoothing-zloss-softcap"],
)
def test_linear_double_backward_is_exact(path, reduction, options):
    """Before: the gradient came back as a constant and the gradient penalty's second
    derivative was silently dropped; then it was refused. Now every path differentiates twice
    as the dense formula does (the chunks rebuild the loss by it when a graph of the gradient
    is asked for)."""
    from losskit.losses.linear_ce.cases import linear_cross_entropy_reference

    extra, ignored = PATHS[path]
    h, w, y = _inputs()
    if not ignored:
        y = torch.tensor([1, 9, 7, 0, 3, 2])
    kwargs = {"reduction": reduction, **options}
    got = _penalty_gradient(lambda h, w: LF.linear_cross_entropy(h, w, y, **extra, **kwargs), h, w)
    want = _penalty_gradient(lambda h, w: linear_cross_entropy_reference(h, w, y, **kwargs), h, w)
    torch.testing.assert_close(got, want)


def test_linear_double_backward_passes_gradgradcheck_on_the_chunks():
    h, w, y = _inputs()
    b = torch.randn(10, dtype=F64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda h, w, b: LF.linear_cross_entropy(h, w, y, bias=b, chunk_size=4, z_loss=1e-2),
        (h, w, b),
    )


def test_linear_double_backward_with_ignored_padding_stays_finite():
    """An ignored row's NaN padding reaches no second derivative either."""
    h, w, y = _inputs()
    with torch.no_grad():
        h[2] = float("nan")
    for extra in ({}, {"chunk_size": 4}):
        loss = lambda h, w: LF.linear_cross_entropy(h, w, y, **extra)  # noqa: B023, E731
        gh, gw = _penalty_gradient(loss, h, w, cube=False)
        assert torch.isfinite(gw).all() and (gh[2] == 0).all()
        assert torch.isfinite(gh[[0, 1, 3, 4, 5]]).all()


def test_vocab_parallel_linear_in_one_process_differentiates_twice():
    """Without a process group it is the single-process loss, second derivatives included
    (across processes it refuses them: tests/test_distributed_vocab_parallel.py)."""
    h, w, y = _inputs()
    got = _penalty_gradient(lambda h, w: vocab_parallel_linear_cross_entropy(h, w, y), h, w)
    want = _penalty_gradient(lambda h, w: F.cross_entropy(h @ w.T, y), h, w)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_vocab_parallel_in_one_process_differentiates_twice(reduction):
    """Without a process group the logits form is cross-entropy, second derivatives included
    (with label smoothing, z-loss and an ignored target); across processes it refuses them
    (tests/test_distributed_vocab_parallel.py)."""
    from losskit.losses.linear_ce.cases import linear_cross_entropy_reference

    h, w, y = _inputs()
    logits = (h @ w.T).detach()
    eye = torch.eye(10, dtype=F64)
    kwargs = {"reduction": reduction, "label_smoothing": 0.1, "z_loss": 1e-2}

    def penalty_gradient(loss):
        x = logits.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(x).sum() + (x**3).sum(), x, create_graph=True)
        return torch.autograd.grad(g.square().sum(), x)[0]

    got = penalty_gradient(lambda x: vocab_parallel_cross_entropy(x, y, **kwargs))
    want = penalty_gradient(lambda x: linear_cross_entropy_reference(x, eye, y, **kwargs))
    torch.testing.assert_close(got, want)
    logits.requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        lambda x: vocab_parallel_cross_entropy(x, y, **kwargs), (logits,)
    )


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_first_order_gradients_unchanged(reduction):
    h, w, y = _inputs()
    out = LF.linear_cross_entropy(h, w, y, reduction=reduction, chunk_size=4)
    grads = torch.autograd.grad(out.sum(), (h, w))
    h2, w2 = (t.detach().clone().requires_grad_(True) for t in (h, w))
    ref = F.cross_entropy(h2 @ w2.T, y, reduction=reduction)
    torch.testing.assert_close(grads, torch.autograd.grad(ref.sum(), (h2, w2)))
    logits = (h @ w.T).detach().requires_grad_(True)
    vocab_parallel_cross_entropy(logits, y, reduction=reduction).sum().backward()
    logits2 = logits.detach().clone().requires_grad_(True)
    F.cross_entropy(logits2, y, reduction=reduction).sum().backward()
    torch.testing.assert_close(logits.grad, logits2.grad)


def test_catalog_says_exact():
    assert losskit.catalog["linear_cross_entropy"].double_backward == "exact"


# ------------------------------------------------------------------------- zero classes


@pytest.mark.parametrize(
    ("fn", "name"),
    [
        (LF.linear_cross_entropy, "linear_cross_entropy"),
        (vocab_parallel_linear_cross_entropy, "vocab_parallel_linear_cross_entropy"),
    ],
)
def test_zero_class_weight_is_refused(fn, name):
    h = torch.randn(6, 4)
    for y in (torch.full((6,), -100), torch.zeros(6, dtype=torch.long)):
        with pytest.raises(
            LossInputError,
            match=rf"{name}: weight has shape \(0, 4\); expected \(V, 4\) with V >= 1",
        ):
            fn(h, torch.randn(0, 4), y)


# ------------------------------------------------------------------------- class ranges


def test_vocab_parallel_out_of_range_is_refused_under_default_checks():
    """The issue's example returned 2.33 where torch raises."""
    assert losskit.get_checks() == "fast"
    with pytest.raises(
        LossInputError,
        match=r"vocab_parallel_cross_entropy: target has class indices in \[1, 20\]; "
        r"expected indices in \[0, 7\] or ignore_index=-100",
    ):
        vocab_parallel_cross_entropy(torch.randn(6, 8), torch.tensor([1, 9, 20, -100, 3, 2]))


@pytest.mark.parametrize(
    ("fn", "name"),
    [
        (LF.linear_cross_entropy, "linear_cross_entropy"),
        (vocab_parallel_linear_cross_entropy, "vocab_parallel_linear_cross_entropy"),
    ],
)
@pytest.mark.parametrize("bad", [10, -1, -101])
def test_linear_out_of_range_is_refused_under_default_checks(fn, name, bad):
    h, w, _ = _inputs(torch.float32)
    y = torch.tensor([1, 9, -100, 0, bad, 2])
    with pytest.raises(LossInputError, match=rf"{name}: target has class indices in"):
        fn(h, w, y)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_in_range_and_ignored_targets_still_work(dtype):
    h, w, _ = _inputs(torch.float32)
    y = torch.tensor([1, 9, 7, 0, 3, 2], dtype=dtype)
    expected = F.cross_entropy(h @ w.T, y.long())
    torch.testing.assert_close(LF.linear_cross_entropy(h, w, y), expected)
    torch.testing.assert_close(vocab_parallel_linear_cross_entropy(h, w, y), expected)
    torch.testing.assert_close(vocab_parallel_cross_entropy(h @ w.T, y), expected)
    ignored = torch.tensor([1, 9, -100, 0, 3, 2])
    torch.testing.assert_close(
        LF.linear_cross_entropy(h, w, ignored, reduction="sum"),
        F.cross_entropy(h @ w.T, ignored, reduction="sum"),
    )


# ----------------------------------------------------------- the common call (plain, fast)


def _common(dtype=torch.float32):
    h, w, _ = _inputs(dtype)
    return h, w, torch.tensor([1, 9, 7, 0, 3, 2])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_common_call_takes_the_fast_path_and_matches_the_general_one(dtype):
    """The common call is answered by the plain formula after metadata tests; its value and
    gradients are the general path's (same formula, options spelled out)."""
    from losskit.losses.linear_ce.functional import _plain_common_call

    h, w, y = _common(dtype)
    assert _plain_common_call(h, w, y) is not None
    fast = LF.linear_cross_entropy(h, w, y)
    fast_grads = torch.autograd.grad(fast, (h, w))
    with losskit.checks("full"):  # not the common call
        general = LF.linear_cross_entropy(h, w, y)
    general_grads = torch.autograd.grad(general, (h, w))
    ref = F.cross_entropy(h @ w.T, y)
    torch.testing.assert_close(fast, ref, rtol=0, atol=0)
    torch.testing.assert_close(general, ref)
    for a, b in zip(fast_grads, general_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_common_call_departures_take_the_general_path():
    from losskit.losses.linear_ce.functional import _PLAIN_MAX, _plain_common_call

    h, w, y = _common()
    ignored = y.clone()
    ignored[2] = -100
    assert _plain_common_call(h, w, ignored) is None  # ignored rows are masked there
    assert _plain_common_call(h, w, torch.tensor([1, 9, 10, 0, 3, 2])) is None  # out of range
    assert _plain_common_call(h.half(), w.half(), y) is None
    assert _plain_common_call(h, w.double(), y) is None
    assert _plain_common_call(h[None], w, y[None]) is None
    assert _plain_common_call(h, w, y.int()) is None
    assert _plain_common_call(h[:0], w, y[:0]) is None
    big = torch.zeros(_PLAIN_MAX // 10 + 1, 4)
    assert _plain_common_call(big, w, torch.zeros(len(big), dtype=torch.long)) is None
    with losskit.checks("full"):
        assert _plain_common_call(h, w, y) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the general path casts
        assert _plain_common_call(h, w, y) is None
        assert LF.linear_cross_entropy(h, w, y).dtype == torch.float32


def test_common_call_refuses_bad_indices():
    """Above the classes torch's kernel raises first; the general path names the problem."""
    h, w, _ = _common()
    with pytest.raises(LossInputError, match=r"class indices in \[0, 10\]"):
        LF.linear_cross_entropy(h, w, torch.tensor([1, 9, 10, 0, 3, 2]))
    with pytest.raises(LossInputError, match=r"class indices in \[-5, 9\]"):
        LF.linear_cross_entropy(h, w, torch.tensor([1, 9, -5, 0, 3, 2]))


def test_common_call_ignored_padding_gets_zero_gradient():
    """An ignored row's hidden state never reaches a gradient, whatever it holds (the fast path
    leaves such batches to the general one, which masks them)."""
    h, w, y = _common()
    y[2] = -100
    with torch.no_grad():
        h[2] = float("nan")
    out = LF.linear_cross_entropy(h, w, y)
    gh, gw = torch.autograd.grad(out, (h, w))
    assert torch.isfinite(out) and torch.isfinite(gw).all()
    assert (gh[2] == 0).all()
