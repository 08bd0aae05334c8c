"""The distillation family against the dense formulas in float64: values and gradients of the
student's hidden states, weight and bias (linear) or logits for every divergence x beta in
{0, 0.5, 1} x temperature x ignore_index x reduction; beta 0 and 1 are the two KLs; the teacher
gets no gradient; chunk sizes; the hard-label term is linear_cross_entropy (z-loss and soft-cap
included); gradcheck; bad inputs; empty means; NaN; -inf teacher logits; half precision and
autocast; double backward refused; no tensor of N x V elements anywhere."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import losskit
import losskit.functional as LF
from losskit import DoubleBackwardError, LossInputError
from losskit.losses.distillation import functional as distillation
from losskit.losses.distillation.cases import (
    distillation_reference,
    linear_distillation_reference,
)

N, D, DT, V = 11, 6, 4, 13
F64 = {"rtol": 1e-9, "atol": 1e-11}
F32 = {"rtol": 1e-5, "atol": 1e-5}
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
BETAS = (0.0, 0.5, 1.0)
TEMPERATURES = (1.0, 2.5)
#: None: no ignored token; otherwise every third token takes this ignore_index
IGNORES = (None, -100, 3)
REDUCTIONS = ("mean", "sum", "none")


def make(dtype=torch.float64, *, n=N, d=D, dt=DT, v=V, bias=True, ignore=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype) * 0.8
    th = torch.randn(n, dt, generator=g, dtype=dtype)
    tw = torch.randn(v, dt, generator=g, dtype=dtype) * 1.2
    b = torch.randn(v, generator=g, dtype=dtype) if bias else None
    tb = torch.randn(v, generator=g, dtype=dtype) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    if ignore is not None:
        y[y == ignore] = (ignore + 1) % v  # only the chosen tokens are ignored
        y[1::3] = ignore
    return h, w, b, th, tw, tb, y


def linear_values_and_grads(fn, h, w, b, th, tw, tb, y, seed=1, **kwargs):
    """``fn``'s value and the gradients of <value, random grad_output> with respect to the
    student's hidden states, weight and bias."""
    leaves = [t.detach().clone().requires_grad_() for t in (h, w, *(() if b is None else (b,)))]
    bias = leaves[2] if b is not None else None
    out = fn(leaves[0], leaves[1], th, tw, y, student_bias=bias, teacher_bias=tb, **kwargs)
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g).bfloat16().to(out.dtype)
    return out.detach(), torch.autograd.grad(out, leaves, grad_out)


def logits_values_and_grads(fn, s, t, y, seed=1, **kwargs):
    leaf = s.detach().clone().requires_grad_()
    out = fn(leaf, t, y, **kwargs)
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g).bfloat16().to(out.dtype)
    return out.detach(), torch.autograd.grad(out, leaf, grad_out)


def assert_same(got, want, tol, msg=""):
    (value, grads), (ref_value, ref_grads) = got, want
    torch.testing.assert_close(value, ref_value, **tol, msg=lambda m: f"{msg}: value: {m}")
    for i, (a, b) in enumerate(zip(grads, ref_grads, strict=True)):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, i=i: f"{msg}: grad {i}: {m}")


GRID = list(itertools.product(DIVERGENCES, BETAS, TEMPERATURES, IGNORES))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("divergence,beta,temperature,ignore", GRID)
def test_linear_matches_the_dense_formula_in_float64(
    divergence, beta, temperature, ignore, reduction
):
    """Every divergence x beta x temperature x ignore_index x reduction: value and gradients
    of the student's hidden states, weight and bias, in chunks of 4 (which do not divide 11
    tokens) and in the automatic size."""
    h, w, b, th, tw, tb, y = make(ignore=ignore, seed=DIVERGENCES.index(divergence))
    kw = {
        "divergence": divergence,
        "beta": beta,
        "temperature": temperature,
        "reduction": reduction,
        "ignore_index": -100 if ignore is None else ignore,
    }
    want = linear_values_and_grads(linear_distillation_reference, h, w, b, th, tw, tb, y, **kw)
    for chunk in (4, None):
        got = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, chunk_size=chunk, **kw
        )
        assert_same(got, want, F64, f"{kw} chunk={chunk}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("divergence,beta,temperature,ignore", GRID)
def test_logits_match_the_dense_formula_in_float64(
    divergence, beta, temperature, ignore, reduction
):
    h, w, b, th, tw, tb, y = make(ignore=ignore, seed=3)
    s, t = h @ w.T + b, (th @ tw.T + tb) * 1.5
    kw = {
        "divergence": divergence,
        "beta": beta,
        "temperature": temperature,
        "reduction": reduction,
        "ignore_index": -100 if ignore is None else ignore,
    }
    want = logits_values_and_grads(distillation_reference, s, t, y, **kw)
    for chunk in (3, None):
        got = logits_values_and_grads(LF.distillation_loss, s, t, y, chunk_size=chunk, **kw)
        assert_same(got, want, F64, f"{kw} chunk={chunk}")


OPTION_GRID = list(
    itertools.product(
        DIVERGENCES,
        (0.0, 0.6),  # hard_weight
        (0.0, 0.02),  # z_loss
        (None, 2.0),  # softcap
        (1.0, 1.7),  # temperature
    )
)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_option_combination_matches_in_float32(reduction):
    """hard_weight, z_loss, softcap and temperature in every combination, every divergence,
    ignored targets and biases, float32 against the float64 formula."""
    for divergence, hw, zl, cap, temp in OPTION_GRID:
        h, w, b, th, tw, tb, y = make(torch.float32, ignore=-100, seed=int(100 * (hw + zl)))
        kw = {
            "divergence": divergence,
            "beta": 0.3,
            "hard_weight": hw,
            "z_loss": zl,
            "softcap": cap,
            "temperature": temp,
            "reduction": reduction,
        }
        want = linear_values_and_grads(linear_distillation_reference, h, w, b, th, tw, tb, y, **kw)
        got = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, chunk_size=5, **kw
        )
        assert_same(got, want, F32, f"{kw}")
        s, t = h @ w.T, th @ tw.T
        want = logits_values_and_grads(distillation_reference, s, t, y, **kw)
        got = logits_values_and_grads(LF.distillation_loss, s, t, y, chunk_size=4, **kw)
        assert_same(got, want, F32, f"logits {kw}")


def _kl(log_p, log_q):
    return F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_beta_0_is_forward_kl_and_beta_1_is_reverse_kl(temperature):
    """Liger-Kernel's and TRL's convention: jsd at beta = 0 is KL(teacher || student), at
    beta = 1 KL(student || teacher); each equals the named divergence, values and gradients,
    and the torch formula written out."""
    h, w, b, th, tw, tb, y = make(ignore=-100)
    kw = {"temperature": temperature, "reduction": "none", "chunk_size": 4}
    for beta, kind in ((0.0, "forward_kl"), (1.0, "reverse_kl")):
        jsd = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, divergence="jsd", beta=beta, **kw
        )
        kl = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, divergence=kind, **kw
        )
        assert_same(jsd, kl, F64, f"beta={beta}")
    log_q = torch.log_softmax((h @ w.T + b) / temperature, -1)
    log_p = torch.log_softmax((th @ tw.T + tb) / temperature, -1)
    counted = y != -100
    for kind, expected in (("forward_kl", _kl(log_p, log_q)), ("reverse_kl", _kl(log_q, log_p))):
        got = LF.linear_distillation_loss(
            h, w, th, tw, y, student_bias=b, teacher_bias=tb, divergence=kind, **kw
        )
        torch.testing.assert_close(got, torch.where(counted, temperature**2 * expected, 0.0))


def test_jsd_is_continuous_in_beta_scaled_to_the_kls_at_the_ends():
    """JSD_beta -> 0 at both ends, JSD_beta / beta -> KL(p || q) as beta -> 0 and
    JSD_beta / (1 - beta) -> KL(q || p) as beta -> 1: the endpoints are those limits."""
    h, w, b, th, tw, tb, _y = make()
    s, t = h @ w.T + b, th @ tw.T + tb

    def loss(**kw):
        return LF.distillation_loss(s, t, reduction="none", **kw)

    eps = 1e-9
    forward, reverse = loss(divergence="forward_kl"), loss(divergence="reverse_kl")
    torch.testing.assert_close(loss(divergence="jsd", beta=eps) / eps, forward, rtol=1e-4, atol=0)
    near_one = loss(divergence="jsd", beta=1 - eps) / eps
    torch.testing.assert_close(near_one, reverse, rtol=1e-4, atol=0)
    half = loss(divergence="jsd", beta=0.5)
    swapped = LF.distillation_loss(t, s, divergence="jsd", beta=0.5, reduction="none")
    torch.testing.assert_close(half, swapped)  # the Jensen-Shannon divergence is symmetric
    assert (half <= math.log(2) + 1e-12).all() and (half >= 0).all()


def test_the_teacher_gets_no_gradient():
    h, w, _b, th, tw, tb, y = make()
    th, tw, tb = th.requires_grad_(), tw.requires_grad_(), tb.requires_grad_()
    hs, ws = h.requires_grad_(), w.requires_grad_()
    for kind in DIVERGENCES:
        loss = LF.linear_distillation_loss(
            hs, ws, th, tw, y, teacher_bias=tb, divergence=kind, hard_weight=0.5
        )
        loss.backward()
        assert th.grad is None and tw.grad is None and tb.grad is None, kind
        assert hs.grad is not None and ws.grad is not None
    # a teacher alone requiring grad leaves the loss out of the graph
    alone = LF.linear_distillation_loss(h.detach(), w.detach(), th, tw, y)
    assert not alone.requires_grad
    t = (th @ tw.T).detach().requires_grad_()
    s = (h @ w.T).detach().requires_grad_()
    LF.distillation_loss(s, t, y, divergence="jsd").backward()
    assert t.grad is None and s.grad is not None


def test_chunk_sizes_agree():
    h, w, b, th, tw, tb, y = make(ignore=-100)
    kw = {"divergence": "jsd", "temperature": 2.0, "hard_weight": 0.3, "reduction": "none"}
    want = linear_values_and_grads(linear_distillation_reference, h, w, b, th, tw, tb, y, **kw)
    for chunk in (1, 2, 3, 5, 7, N, N + 5, None):
        got = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, chunk_size=chunk, **kw
        )
        assert_same(got, want, F64, f"chunk={chunk}")


def test_hard_term_is_linear_cross_entropy_with_its_z_loss_and_soft_cap():
    """hard_weight x linear_cross_entropy on the same logits: the soft part plus the hard one
    is the whole loss, for any temperature, with z_loss and softcap meaning the same thing."""
    h, w, b, th, tw, tb, y = make(ignore=-100)
    for temp, zl, cap in itertools.product((1.0, 2.0), (0.0, 0.01), (None, 3.0)):
        common = {"temperature": temp, "softcap": cap, "student_bias": b, "teacher_bias": tb}
        whole = LF.linear_distillation_loss(
            h, w, th, tw, y, hard_weight=0.7, z_loss=zl, chunk_size=4, **common
        )
        soft = LF.linear_distillation_loss(h, w, th, tw, y, chunk_size=4, **common)
        ce = LF.linear_cross_entropy(h, w, y, bias=b, z_loss=zl / 0.7, softcap=cap)
        torch.testing.assert_close(whole, soft + 0.7 * ce, **F64)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_gradcheck_float64(divergence):
    h, w, b, th, tw, tb, y = make(n=5, d=3, dt=2, v=6, ignore=-100)
    for opts in (
        {},
        {"temperature": 2.0, "hard_weight": 0.5, "z_loss": 0.05, "softcap": 1.5},
        {"reduction": "none", "beta": 0.3, "temperature": 0.7},
    ):

        def linear(h, w, b, opts=opts):
            return LF.linear_distillation_loss(
                h, w, th, tw, y, student_bias=b, teacher_bias=tb, divergence=divergence,
                chunk_size=2, **opts,
            )  # fmt: skip

        leaves = [x.clone().requires_grad_() for x in (h, w, b)]
        assert torch.autograd.gradcheck(linear, leaves), opts

        def logits(s, opts=opts):
            return LF.distillation_loss(s, th @ tw.T, y, divergence=divergence, **opts)

        assert torch.autograd.gradcheck(logits, ((h @ w.T).requires_grad_(),)), opts


def test_every_target_ignored_gives_zero_with_zero_gradients():
    h, w, b, th, tw, _tb, _ = make()
    y = torch.full((N,), -100)
    for reduction in REDUCTIONS:
        hs, ws, bs = (x.clone().requires_grad_() for x in (h, w, b))
        out = LF.linear_distillation_loss(
            hs, ws, th, tw, y, student_bias=bs, hard_weight=0.5, reduction=reduction
        )
        assert torch.all(out == 0) and out.requires_grad, reduction
        out.sum().backward()
        for x in (hs, ws, bs):
            assert torch.equal(x.grad, torch.zeros_like(x)), reduction
        s = (h @ w.T).requires_grad_()
        out = LF.distillation_loss(s, th @ tw.T, y, reduction=reduction)
        assert torch.all(out == 0)
        out.sum().backward()
        assert torch.equal(s.grad, torch.zeros_like(s))
    empty = LF.linear_distillation_loss(h[:0], w, th[:0], tw, y[:0])
    assert empty.item() == 0.0


def test_no_target_counts_every_token():
    h, w, _b, th, tw, _tb, _ = make()
    got = LF.linear_distillation_loss(h, w, th, tw, divergence="reverse_kl")
    want = linear_distillation_reference(h, w, th, tw, divergence="reverse_kl")
    torch.testing.assert_close(got, want, **F64)
    assert LF.linear_distillation_loss(h, w, th, tw, reduction="none").shape == (N,)


def test_nan_in_nan_out_and_ignored_rows_stay_out():
    h, w, _b, th, tw, _tb, y = make(ignore=-100)
    counted_row, ignored_row = 0, 1
    assert y[counted_row] != -100 and y[ignored_row] == -100
    for kind in DIVERGENCES:
        for row, expect_nan in ((counted_row, True), (ignored_row, False)):
            bad = h.clone()
            bad[row, 0] = math.nan
            out = LF.linear_distillation_loss(bad, w, th, tw, y, divergence=kind)
            assert out.isnan().item() == expect_nan, (kind, row)
            s = bad @ w.T
            out = LF.distillation_loss(s, th @ tw.T, y, divergence=kind)
            assert out.isnan().item() == expect_nan, (kind, row)
        bad_w = w.clone()
        bad_w[2, 1] = math.nan
        assert LF.linear_distillation_loss(h, bad_w, th, tw, y, divergence=kind).isnan()


def test_teacher_logits_of_minus_inf_are_probabilities_of_zero():
    """A class the teacher rules out (-inf) contributes 0 to forward KL and jsd (finite loss
    and gradients); the student's reverse KL on it is infinite, as the definition says."""
    h, w, _b, th, tw, _tb, y = make()
    s, t = h @ w.T, th @ tw.T
    t[:, :3] = -math.inf
    for kind in ("forward_kl", "jsd"):
        leaf = s.clone().requires_grad_()
        out = LF.distillation_loss(leaf, t, y, divergence=kind, reduction="none")
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(leaf.grad).all(), kind
        log_q, log_p = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
        p = log_p.exp()
        if kind == "forward_kl":
            want = torch.where(p > 0, p * (log_p - log_q), 0.0).sum(-1)
        else:
            m = 0.5 * (p + log_q.exp())
            want = 0.5 * torch.where(p > 0, p * (log_p - m.log()), 0.0).sum(-1)
            want = want + 0.5 * (log_q.exp() * (log_q - m.log())).sum(-1)
        torch.testing.assert_close(out.detach(), want, **F64)
        if kind == "forward_kl":  # d/ds of a ruled-out class: the student's probability
            torch.testing.assert_close(leaf.grad[:, :3], log_q.exp()[:, :3], **F64)
    reverse = LF.distillation_loss(s, t, y, divergence="reverse_kl", reduction="none")
    assert torch.isinf(reverse).all()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_inputs_give_the_float32_result_rounded_once(half):
    h, w, b, th, tw, tb, y = make(torch.float32, ignore=-100)
    kw = {"divergence": "jsd", "temperature": 2.0, "hard_weight": 0.5, "chunk_size": 4}
    low = [x.to(half) for x in (h, w, b, th, tw, tb)]
    leaves = [x.clone().requires_grad_() for x in low[:3]]
    out = LF.linear_distillation_loss(
        leaves[0], leaves[1], low[3], low[4], y, student_bias=leaves[2], teacher_bias=low[5], **kw
    )
    assert out.dtype == half
    out.backward()
    back = [x.float().requires_grad_() for x in low]
    ref = LF.linear_distillation_loss(
        back[0], back[1], back[3], back[4], y, student_bias=back[2], teacher_bias=back[5], **kw
    )
    ref.backward()
    assert torch.equal(out, ref.to(half))
    for leaf, ref_leaf in zip(leaves, back[:3], strict=True):
        assert leaf.grad.dtype == half
        assert torch.equal(leaf.grad, ref_leaf.grad.to(half))


def test_autocast_runs_the_products_in_the_autocast_dtype_and_returns_float32():
    h, w, _b, th, tw, _tb, y = make(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LF.linear_distillation_loss(h, w, th, tw, y, divergence="jsd")
        logits = LF.distillation_loss(h @ w.T, th @ tw.T, y)
    assert out.dtype == torch.float32 and logits.dtype == torch.float32
    rounded = [x.bfloat16().float() for x in (h, w, th, tw)]
    want = LF.linear_distillation_loss(*rounded, y, divergence="jsd")
    torch.testing.assert_close(out, want, rtol=1e-2, atol=0)  # returned through bfloat16


def test_double_backward_is_refused_clearly():
    h, w, _b, th, tw, _tb, y = make()
    hs = h.clone().requires_grad_()
    loss = LF.linear_distillation_loss(hs, w, th, tw, y)
    with pytest.raises(DoubleBackwardError, match=r"^linear_distillation_loss: double backward"):
        torch.autograd.grad(loss, hs, create_graph=True)
    s = (h @ w.T).requires_grad_()
    loss = LF.distillation_loss(s, th @ tw.T, y, reduction="none").sum()
    with pytest.raises(DoubleBackwardError, match=r"^distillation_loss: double backward"):
        torch.autograd.grad(loss, s, create_graph=True)


def test_a_second_backward_recomputes_the_same_gradients():
    h, w, _b, th, tw, _tb, y = make(ignore=-100)
    hs = h.clone().requires_grad_()
    loss = LF.linear_distillation_loss(hs, w, th, tw, y, divergence="jsd", chunk_size=4)
    (first,) = torch.autograd.grad(loss, hs, retain_graph=True)
    (second,) = torch.autograd.grad(loss, hs, torch.tensor(2.0, dtype=loss.dtype))
    torch.testing.assert_close(second, 2 * first, **F64)


def test_masked_rows_as_on_accelerators_give_the_same_numbers(monkeypatch):
    """On accelerators ignored rows are masked, not dropped (no host synchronisation): the
    same values and gradients, checked here on CPU with that path forced."""
    h, w, b, th, tw, tb, y = make(ignore=-100)
    kw = {"divergence": "jsd", "temperature": 2.0, "hard_weight": 0.4, "z_loss": 0.01}
    for reduction in REDUCTIONS:
        dropped = linear_values_and_grads(
            LF.linear_distillation_loss, h, w, b, th, tw, tb, y, reduction=reduction, **kw
        )
        s = h @ w.T
        dropped_logits = logits_values_and_grads(
            LF.distillation_loss, s, th @ tw.T, y, reduction=reduction, **kw
        )
        with monkeypatch.context() as m:
            m.setattr(distillation, "_drops_ignored_rows", lambda device: False)
            masked = linear_values_and_grads(
                LF.linear_distillation_loss, h, w, b, th, tw, tb, y, reduction=reduction, **kw
            )
            bad = s.clone()
            bad[y == -100] = math.nan  # whatever the padding holds
            masked_logits = logits_values_and_grads(
                LF.distillation_loss, bad, th @ tw.T, y, reduction=reduction, **kw
            )
        assert_same(masked, dropped, F64, reduction)
        assert_same(masked_logits, dropped_logits, F64, reduction)


class _Products(TorchDispatchMode):
    """Counts the matrix products."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_without_grad_only_the_value_is_computed():
    h, w, _b, th, tw, _tb, y = make()
    hs, ws = h.clone().requires_grad_(), w.clone().requires_grad_()
    with torch.no_grad(), _Products() as products:
        out = LF.linear_distillation_loss(hs, ws, th, tw, y, chunk_size=4)
    assert not out.requires_grad
    assert products.count == 6  # two products (student, teacher) per chunk of 4 of 11 tokens
    with _Products() as products:
        LF.linear_distillation_loss(hs, ws, th, tw, y, chunk_size=4).backward()
    assert products.count == 12  # and two more per chunk for the student's gradients
    with _Products() as products:
        LF.linear_distillation_loss(hs, w, th, tw, y, chunk_size=4).backward()
    assert products.count == 9  # a frozen student weight: no product for its gradient


class _Sizes(TorchDispatchMode):
    """Records the number of elements of every tensor an operator returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_no_tensor_holds_the_logits(divergence):
    """With 64 tokens, d = 8 and V = 512, in chunks of 8 rows, nothing larger than the weight
    (V x d = 4096 elements) or one chunk of logits (8 x V = 4096) is ever made, forward and
    backward, whatever the options (the N x V logits would be 32768)."""
    n, d, v = 64, 8, 512
    h, w, b, th, tw, tb, y = make(torch.float32, n=n, d=d, dt=d, v=v, ignore=-100)
    hs, ws, bs = (x.requires_grad_() for x in (h, w, b))
    with _Sizes() as sizes:
        loss = LF.linear_distillation_loss(
            hs, ws, th, tw, y, student_bias=bs, teacher_bias=tb, divergence=divergence,
            temperature=2.0, hard_weight=0.5, z_loss=1e-3, softcap=5.0, chunk_size=8,
        )  # fmt: skip
        loss.backward()
    assert sizes.largest <= max(v * d, 8 * v), sizes.largest


def test_bad_inputs_raise_loss_input_errors():
    h, w, b, th, tw, _tb, y = make(torch.float32)
    cases = [
        ((h, w, th, tw.T, y), {}, r"teacher_weight has shape \(4, 13\); expected \(13, 4\)"),
        ((h, w, th[:5], tw, y), {}, r"teacher_hidden has shape \(5, 4\); expected \(11, d_t\)"),
        ((h, w.double(), th, tw, y), {}, r"student_weight has dtype torch.float64"),
        ((h, w, th, tw, y[:3]), {}, r"target has shape \(3,\); expected \(11,\)"),
        ((h, w, th, tw), {"hard_weight": 0.1}, r"target is None; expected class indices"),
        ((h, w, th, tw, y), {"divergence": "KL"}, r"divergence is 'KL'; expected 'forward_kl'"),
        ((h, w, th, tw, y), {"beta": math.nan}, r"beta is nan; expected a number >= 0"),
        ((h, w, th, tw, y), {"temperature": -1.0}, r"temperature is -1.0; expected a number > 0"),
        ((h, w, th, tw, y), {"hard_weight": -0.5}, r"hard_weight is -0.5; expected a number >= 0"),
        ((h, w, th, tw, y), {"ignore_index": 1.5}, r"ignore_index is 1.5; expected an int"),
        ((h, w, th, tw, y), {"softcap": 0.0}, r"softcap is 0.0; expected a number > 0"),
        ((h, w, th, tw, y), {"teacher_bias": b[:4]}, r"teacher_bias has shape \(4,\)"),
        ((h, w, th, tw, y + V), {}, r"target has class indices in \[\d+, \d+\]"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises(LossInputError, match=rf"^linear_distillation_loss: {match}"):
            LF.linear_distillation_loss(*args, **kwargs)
    s, t = h @ w.T, th @ tw.T
    with pytest.raises(LossInputError, match=r"^distillation_loss: student_logits has shape"):
        LF.distillation_loss(s[0, 0], t[0, 0])
    with pytest.raises(LossInputError, match=r"^distillation_loss: teacher_logits has shape"):
        LF.distillation_loss(s, t.T)
    with losskit.checks("full"), pytest.raises(LossInputError, match=r"student_logits has 1"):
        bad = s.clone()
        bad[0, 0] = math.inf
        LF.distillation_loss(bad, t)
    with pytest.raises(LossInputError, match=r"linear_distillation_loss: beta is 2.0"):
        losskit.LinearDistillationLoss(beta=2.0)


def test_modules_call_the_functionals():
    h, w, b, th, tw, tb, y = make(torch.float32, ignore=-100)
    criterion = losskit.LinearDistillationLoss(divergence="jsd", beta=0.3, temperature=2.0)
    got = criterion(h, w, th, tw, y, student_bias=b, teacher_bias=tb)
    want = LF.linear_distillation_loss(
        h, w, th, tw, y, student_bias=b, teacher_bias=tb, divergence="jsd", beta=0.3,
        temperature=2.0,
    )  # fmt: skip
    torch.testing.assert_close(got, want)
    assert "divergence=jsd, beta=0.3, temperature=2.0" in repr(criterion)
    module = losskit.DistillationLoss(divergence="reverse_kl", reduction="none")
    torch.testing.assert_close(
        module(h @ w.T, th @ tw.T, y),
        LF.distillation_loss(h @ w.T, th @ tw.T, y, divergence="reverse_kl", reduction="none"),
    )


def test_batch_sequence_shapes():
    h, w, _b, th, tw, _tb, y = make(n=12)
    h3, th3, y3 = h.reshape(3, 4, D), th.reshape(3, 4, DT), y.reshape(3, 4)
    out = LF.linear_distillation_loss(h3, w, th3, tw, y3, reduction="none")
    assert out.shape == (3, 4)
    torch.testing.assert_close(
        out.reshape(-1), LF.linear_distillation_loss(h, w, th, tw, y, reduction="none")
    )
    s3, t3 = h3 @ w.T, th3 @ tw.T
    torch.testing.assert_close(
        LF.distillation_loss(s3, t3, y3),
        LF.distillation_loss(s3.reshape(12, V), t3.reshape(12, V), y),
    )


def test_more_threads_take_larger_chunks_with_the_same_result():
    from losskit.losses.distillation.functional import PARALLEL_CHUNK_LOGITS
    from losskit.losses.linear_ce.functional import parallel_chunk_rows

    def rows(rows: int, tokens: int, vocab: int, like: torch.Tensor) -> int:
        return parallel_chunk_rows(rows, tokens, vocab, like, PARALLEL_CHUNK_LOGITS)

    cpu, meta = torch.empty(0), torch.empty(0, device="meta")
    before = torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(300, 16, generator=g), torch.randn(64, 16, generator=g)
    ht, wt = torch.randn(300, 8, generator=g), torch.randn(64, 8, generator=g)
    got = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            s, sw = h.clone().requires_grad_(), w.clone().requires_grad_()
            loss = LF.linear_distillation_loss(s, sw, ht, wt, temperature=2.0)
            loss.backward()
            got[threads] = (loss, s.grad, sw.grad)
        torch.set_num_threads(2)
        assert rows(128, 1024, 8192, cpu) == 1024  # 2**23 logits: one chunk
        assert rows(128, 4096, 16384, cpu) == 512
        assert rows(256, 4096, 131072, cpu) == 256  # a large vocabulary
        assert rows(128, 100, 8192, cpu) == 100  # never more rows than tokens
        assert rows(128, 1024, 8192, meta) == 128  # accelerators: unchanged
        torch.set_num_threads(1)
        assert rows(128, 1024, 8192, cpu) == 128
    finally:
        torch.set_num_threads(before)
    for a, b in zip(got[1], got[2], strict=True):  # 128-row chunks against one of 300 rows
        torch.testing.assert_close(a, b)
