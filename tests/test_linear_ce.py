"""The chunked linear cross-entropy against the naive path F.cross_entropy(F.linear(h, W, b), y):
values and gradients for every option combination and reduction, chunk sizes that do not divide
the batch, ignored targets, z-loss and soft-cap gradients, gradcheck, half precision, and no
tensor of N x V elements anywhere."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.losses.linear_ce import functional as linear_ce
from losskit.losses.linear_ce.cases import linear_cross_entropy_reference as reference
from losskit.losses.linear_ce.functional import auto_chunk_size

N, D, V = 11, 6, 13
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-7, "atol": 1e-9}}


def make(
    dtype=torch.float64, *, n=N, d=D, v=V, bias=False, ignored=False, seed=0, ignore_index=-100
):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype) * 0.8
    b = torch.randn(v, generator=g, dtype=dtype) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    if ignored:
        y[1::3] = ignore_index
    return h, w, b, y


def values_and_grads(fn, h, w, b, y, grad_out_seed: int | None = 1, **kwargs):
    """``fn``'s value and the gradients of <value, random grad_output> (ones when the seed is
    None) with respect to h, w and b."""
    leaves = [t.detach().clone().requires_grad_() for t in (h, w) + ((b,) if b is not None else ())]
    bias = leaves[2] if b is not None else None
    out = fn(leaves[0], leaves[1], y, bias=bias, **kwargs)
    if grad_out_seed is None:
        grad_out = torch.ones_like(out)
    else:
        g = torch.Generator().manual_seed(grad_out_seed)
        # bfloat16-representable numbers, so every dtype (half ones too) sees the same values
        grad_out = torch.randn(out.shape, generator=g).bfloat16().to(out.dtype)
    grads = torch.autograd.grad(out, leaves, grad_out)
    return out.detach(), grads


OPTION_GRID = list(
    itertools.product(
        (False, True),  # bias
        (False, True),  # ignored targets
        (0.0, 0.25),  # label smoothing
        (0.0, 0.02),  # z-loss
        (None, 2.0),  # soft-cap
    )
)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [4, None], ids=["c4", "auto"])
def test_every_option_combination_matches_naive(reduction, chunk_size, dtype=torch.float32):
    """32 option combinations x 3 reductions, in chunks of 4 (which do not divide 11 tokens)
    and in the automatic size (one chunk here), to float32 tolerance."""
    for bias, ignored, eps, zl, cap in OPTION_GRID:
        h, w, b, y = make(dtype, bias=bias, ignored=ignored, seed=len(str((bias, eps, zl))))
        kw = {"label_smoothing": eps, "z_loss": zl, "softcap": cap, "reduction": reduction}
        got, got_grads = values_and_grads(
            LF.linear_cross_entropy, h, w, b, y, chunk_size=chunk_size, **kw
        )
        want, want_grads = values_and_grads(reference, h, w, b, y, **kw)
        msg = f"{kw} bias={bias} ignored={ignored} chunk={chunk_size}"
        torch.testing.assert_close(got, want, **TOL[dtype], msg=msg)
        for got_g, want_g in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(got_g, want_g, **TOL[dtype], msg=msg)


def test_one_row_chunks_with_every_option():
    h, w, b, y = make(torch.float32, bias=True, ignored=True)
    kw = {"label_smoothing": 0.1, "z_loss": 0.01, "softcap": 3.0}
    for reduction in ("mean", "none"):
        got, got_g = values_and_grads(
            LF.linear_cross_entropy, h, w, b, y, chunk_size=1, reduction=reduction, **kw
        )
        want, want_g = values_and_grads(reference, h, w, b, y, reduction=reduction, **kw)
        torch.testing.assert_close(got, want)
        for a, e in zip(got_g, want_g, strict=True):
            torch.testing.assert_close(a, e)


def test_defaults_equal_torch_cross_entropy_of_linear():
    h, w, b, y = make(torch.float32, bias=True, ignored=True)
    expected = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w, b), y)
    torch.testing.assert_close(LF.linear_cross_entropy(h, w, y, bias=b, chunk_size=3), expected)
    for eps in (0.1, 1.0):
        torch.testing.assert_close(
            LF.linear_cross_entropy(h, w, y, bias=b, label_smoothing=eps, chunk_size=4),
            torch.nn.functional.cross_entropy(h @ w.T + b, y, label_smoothing=eps),
        )


def test_custom_ignore_index_and_none_has_zeros_there():
    h, w, _, y = make(ignored=True, ignore_index=3)
    out = LF.linear_cross_entropy(h, w, y, ignore_index=3, reduction="none", chunk_size=2)
    assert out.shape == (N,)
    assert torch.all(out[y == 3] == 0) and torch.all(out[y != 3] > 0)
    torch.testing.assert_close(out, reference(h, w, y, ignore_index=3, reduction="none"))


def test_batch_and_sequence_dimensions():
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, 4, D, generator=g, dtype=torch.float64)
    w = torch.randn(V, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, V, (2, 4), generator=g)
    y[0, -1] = -100
    for reduction in ("mean", "sum", "none"):
        got, got_g = values_and_grads(
            LF.linear_cross_entropy, h, w, None, y, chunk_size=3, reduction=reduction
        )
        want, want_g = values_and_grads(reference, h, w, None, y, reduction=reduction)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
        for a, e in zip(got_g, want_g, strict=True):
            assert a.shape == e.shape
            torch.testing.assert_close(a, e)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_is_zero_and_backward_gives_zero_gradients(reduction):
    h, w, b, _ = make(torch.float32, bias=True)
    y = torch.full((N,), -100)
    leaves = [t.clone().requires_grad_() for t in (h, w, b)]
    out = LF.linear_cross_entropy(leaves[0], leaves[1], y, bias=leaves[2], reduction=reduction)
    assert torch.all(out == 0) and out.requires_grad
    out.sum().backward()
    for leaf in leaves:
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))


def test_no_tokens():
    h, w, _, _ = make(n=0)
    out = LF.linear_cross_entropy(h.requires_grad_(), w, torch.zeros(0, dtype=torch.long))
    assert out.item() == 0.0
    out.backward()
    assert h.grad.shape == (0, D)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"z_loss": 0.05},
        {"softcap": 1.5},
        {"label_smoothing": 0.3},
        {"z_loss": 0.05, "softcap": 1.5, "label_smoothing": 0.2},
    ],
    ids=["plain", "z_loss", "softcap", "smoothing", "all"],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_float64_including_bias(options, reduction):
    h, w, b, y = make(n=4, d=3, v=5, bias=True, ignored=True, seed=2)
    leaves = tuple(t.clone().requires_grad_() for t in (h, w, b))

    def fn(h, w, b):
        return LF.linear_cross_entropy(
            h, w, y, bias=b, chunk_size=2, reduction=reduction, **options
        )

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)


def test_z_loss_adds_lse_squared_and_its_gradient():
    h, w, _, y = make()
    logits = h @ w.T
    lse = logits.logsumexp(1)
    plain = LF.linear_cross_entropy(h, w, y, reduction="none", chunk_size=4)
    with_z = LF.linear_cross_entropy(h, w, y, z_loss=0.1, reduction="none", chunk_size=4)
    torch.testing.assert_close(with_z - plain, 0.1 * lse.square())
    # d/dz of 0.1 lse^2 is 0.2 lse softmax(z): checked through the hidden states
    hh = h.clone().requires_grad_()
    diff = LF.linear_cross_entropy(hh, w, y, z_loss=0.1, reduction="sum", chunk_size=4)
    (g_with,) = torch.autograd.grad(diff, hh)
    hh2 = h.clone().requires_grad_()
    (g_plain,) = torch.autograd.grad(
        LF.linear_cross_entropy(hh2, w, y, reduction="sum", chunk_size=4), hh2
    )
    expected = (0.2 * lse[:, None] * logits.softmax(1)) @ w
    torch.testing.assert_close(g_with - g_plain, expected)


def test_softcap_bounds_the_logits_and_matches_explicit_capping():
    h, w, _, y = make()
    h = h * 50  # logits far beyond the cap
    cap = 5.0
    capped = cap * torch.tanh(h @ w.T / cap)
    torch.testing.assert_close(
        LF.linear_cross_entropy(h, w, y, softcap=cap, reduction="none", chunk_size=3),
        torch.nn.functional.cross_entropy(capped, y, reduction="none"),
    )
    # every loss is at most log(V) + 2 cap when |z| <= cap
    out = LF.linear_cross_entropy(h, w, y, softcap=cap, reduction="none")
    assert torch.all(out <= torch.log(torch.tensor(float(V))) + 2 * cap)


def test_second_backward_recomputes_the_same_gradients():
    """mean/sum gradients are made in forward and consumed by the first backward; a second
    backward through the retained graph recomputes them."""
    h, w, b, y = make(bias=True, ignored=True)
    leaves = [t.clone().requires_grad_() for t in (h, w, b)]
    out = LF.linear_cross_entropy(
        leaves[0], leaves[1], y, bias=leaves[2], label_smoothing=0.1, chunk_size=4
    )
    first = torch.autograd.grad(out, leaves, torch.tensor(2.0, dtype=out.dtype), retain_graph=True)
    second = torch.autograd.grad(out, leaves, torch.tensor(-0.5, dtype=out.dtype))
    for a, c in zip(first, second, strict=True):
        torch.testing.assert_close(c, -0.25 * a)


def test_gradients_accumulate_over_calls_and_frozen_weight_is_left_alone():
    h, w, _, y = make()
    hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
    for _ in range(2):
        LF.linear_cross_entropy(hh, ww, y, chunk_size=4).backward()
    hr, wr = h.clone().requires_grad_(), w.clone().requires_grad_()
    reference(hr, wr, y).backward()
    torch.testing.assert_close(hh.grad, 2 * hr.grad)
    torch.testing.assert_close(ww.grad, 2 * wr.grad)

    frozen = w.clone()
    hh = h.clone().requires_grad_()
    LF.linear_cross_entropy(hh, frozen, y).backward()
    assert frozen.grad is None
    torch.testing.assert_close(hh.grad, hr.grad)


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
    h, w, _, y = make()
    h, w = h.requires_grad_(), w.requires_grad_()
    with torch.no_grad(), _Products() as products:
        out = LF.linear_cross_entropy(h, w, y, chunk_size=4)
    assert not out.requires_grad
    assert products.count == 3  # one product per chunk of 4 of the 11 tokens
    torch.testing.assert_close(out, reference(h.detach(), w.detach(), y))
    with _Products() as products:
        LF.linear_cross_entropy(h, w, y, chunk_size=4).backward()
    assert products.count == 9  # and three per chunk with gradients


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


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_never_holds_more_than_a_chunk_of_logits(reduction):
    n, d, vocab, chunk = 96, 4, 500, 16
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=g, requires_grad=True)
    w = torch.randn(vocab, d, generator=g, requires_grad=True)
    y = torch.randint(0, vocab, (n,), generator=g)
    with _Sizes() as sizes:
        out = LF.linear_cross_entropy(
            h, w, y, chunk_size=chunk, label_smoothing=0.1, z_loss=1e-4, reduction=reduction
        )
        out.sum().backward()
    assert sizes.largest <= chunk * vocab < n * vocab


def test_extreme_logits_are_finite():
    h, w, b, y = make(torch.float32, bias=True)
    h = (h * 3e3).requires_grad_()
    out = LF.linear_cross_entropy(h, w, y, bias=b, z_loss=1e-4, label_smoothing=0.1, softcap=None)
    assert torch.isfinite(out)
    out.backward()
    assert torch.isfinite(h.grad).all()


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_half_inputs_give_half_results_computed_in_float32(half):
    h, w, b, y = make(torch.float32, bias=True, ignored=True)
    low = [t.to(half) for t in (h, w, b)]
    got, got_g = values_and_grads(
        LF.linear_cross_entropy, *low[:2], low[2], y, grad_out_seed=None, z_loss=1e-3
    )
    assert got.dtype == half and all(g.dtype == half for g in got_g)
    back = [t.float() for t in low]
    want, want_g = values_and_grads(
        LF.linear_cross_entropy, *back[:2], back[2], y, grad_out_seed=None, z_loss=1e-3
    )
    assert torch.equal(got, want.to(half))
    for a, e in zip(got_g, want_g, strict=True):
        assert torch.equal(a, e.to(half))


def test_accelerator_half_path_multiplies_in_half_and_accumulates_in_float32(monkeypatch):
    """On accelerators the products run in the input dtype; exercised here on CPU in bfloat16."""
    monkeypatch.setattr(linear_ce, "_half_matmuls", lambda device: True)
    h, w, b, y = make(torch.float32, n=40, bias=True, ignored=True)
    low = [t.to(torch.bfloat16) for t in (h, w, b)]
    for reduction in ("mean", "none"):
        got, got_g = values_and_grads(
            LF.linear_cross_entropy,
            *low[:2],
            low[2],
            y,
            chunk_size=7,
            reduction=reduction,
            label_smoothing=0.1,
            softcap=3.0,
        )
        want, want_g = values_and_grads(
            reference,
            *(t.float() for t in low[:2]),
            low[2].float(),
            y,
            reduction=reduction,
            label_smoothing=0.1,
            softcap=3.0,
        )
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
        for a, e in zip(got_g, want_g, strict=True):
            assert a.dtype == torch.bfloat16
            torch.testing.assert_close(a.float(), e, rtol=5e-2, atol=2e-2)


def test_auto_chunk_size():
    for n, d, v in [(1, 8, 10), (4096, 512, 32768), (8192, 1024, 65536), (100, 64, 256_000)]:
        c = auto_chunk_size(n, d, v)
        assert 1 <= c <= n
        assert c == n or c & (c - 1) == 0


def test_more_threads_take_chunks_of_at_least_their_share_of_logits(monkeypatch):
    """With two CPU threads an automatic chunk holds at least 2**19 logits (fewer, larger
    parallel regions), the same numbers as one thread's 128-row chunks; an explicit
    chunk_size and a large vocabulary keep their rows."""
    chunks: list[int] = []
    apply = linear_ce._LinearCrossEntropy.apply

    def spy(*args):
        chunks.append(args[-1].chunk_size)
        return apply(*args)

    monkeypatch.setattr(linear_ce._LinearCrossEntropy, "apply", spy)
    h, w, _, y = make(torch.float32, n=600, d=16, v=1024, ignored=True)
    cpu = torch.empty(0)
    before = torch.get_num_threads()
    got = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got[threads] = values_and_grads(LF.linear_cross_entropy, h, w, None, y)
            LF.linear_cross_entropy(h, w, y, chunk_size=64)
        torch.set_num_threads(2)
        rows = linear_ce.parallel_chunk_rows
        per_thread = 2 * linear_ce.PARALLEL_CHUNK_LOGITS_PER_THREAD
        assert rows(128, 256, 2048, cpu, per_thread) == 256  # the benchmark's (256, 32, 2048)
        assert rows(128, 4096, 8192, cpu, per_thread) == 128  # a large vocabulary: unchanged
        assert rows(128, 4096, 8192, torch.empty(0, device="meta"), per_thread) == 128
    finally:
        torch.set_num_threads(before)
    assert chunks == [128, 64, 512, 64]  # 1 thread, explicit; 2 threads: 2**19 / 1024 rows
    for a, b in zip(got[1], got[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_module_matches_functional_and_validates_options():
    h, w, b, y = make(torch.float32, bias=True, ignored=True)
    criterion = losskit.LinearCrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3, chunk_size=4)
    assert "z_loss=0.001" in repr(criterion)
    torch.testing.assert_close(
        criterion(h, w, y, bias=b),
        LF.linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.1, z_loss=1e-3, chunk_size=4),
    )
    assert losskit.catalog["linear_ce"].module is losskit.LinearCrossEntropyLoss
    for bad, match in [
        ({"softcap": -1.0}, "softcap is -1.0"),
        ({"chunk_size": 0}, "chunk_size is 0"),
        ({"z_loss": -1.0}, "z_loss is -1.0"),
        ({"reduction": "avg"}, "reduction is 'avg'"),
    ]:
        with pytest.raises(LossInputError, match=f"linear_cross_entropy: {match}"):
            losskit.LinearCrossEntropyLoss(**bad)


def test_matches_torch_linear_cross_entropy():
    h, w, b, y = make(torch.float32, bias=True, ignored=True)
    torch.testing.assert_close(
        LF.linear_cross_entropy(h, w, y, bias=b, chunk_size=4),
        torch.nn.functional.linear_cross_entropy(h, w, y, linear_bias=b),
    )


class _Syncs(TorchDispatchMode):
    """Records nonzero, the host read (a synchronisation on an accelerator) that finding the
    ignored rows costs. (The item reads of the class-index check and of backward's
    grad_output run on CPU only.)"""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] == "nonzero":
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTION_GRID[::3])
def test_accelerator_path_keeps_ignored_rows_masked_without_nonzero(
    monkeypatch, options, reduction
):
    """On accelerators the ignored rows are kept and masked (finding them would synchronise):
    forced here on CPU, the same values and gradients, and no nonzero/item on the way."""
    monkeypatch.setattr(linear_ce, "_drops_ignored_rows", lambda device: False)
    bias, ignored, eps, zl, cap = options
    h, w, b, y = make(bias=bias, ignored=ignored)
    h[1] = torch.nan  # an ignored row's padding must not reach any gradient
    kwargs = {"label_smoothing": eps, "z_loss": zl, "softcap": cap, "reduction": reduction}
    h_ref = h.clone()
    h_ref[1] = 0.0
    want, want_g = values_and_grads(reference, h_ref, w, b, y, **kwargs)
    if not ignored:
        h = h_ref
    for chunk_size in (4, None):
        with _Syncs() as syncs:
            got, got_g = values_and_grads(
                LF.linear_cross_entropy, h, w, b, y, chunk_size=chunk_size, **kwargs
            )
        assert syncs.seen == [], syncs.seen
        torch.testing.assert_close(got, want, **TOL[torch.float64])
        for a, e in zip(got_g, want_g, strict=True):
            torch.testing.assert_close(a, e, **TOL[torch.float64])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_accelerator_path_every_target_ignored_is_zero(monkeypatch, reduction):
    monkeypatch.setattr(linear_ce, "_drops_ignored_rows", lambda device: False)
    h, w, _, y = make()
    y[:] = -100
    for chunk_size in (4, None):
        out, grads = values_and_grads(
            LF.linear_cross_entropy, h, w, None, y, chunk_size=chunk_size, reduction=reduction
        )
        assert torch.equal(out, torch.zeros_like(out))
        assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


@pytest.mark.parametrize("options", OPTION_GRID)
def test_plain_formula_for_small_inputs_equals_the_chunks(options):
    """Small inputs with the automatic chunk size take the plain formula (faster there): the
    same values and gradients as the chunked Function."""
    bias, ignored, eps, zl, cap = options
    h, w, b, y = make(bias=bias, ignored=ignored)
    assert h.shape[0] * w.shape[0] <= linear_ce._PLAIN_MAX
    for reduction in ("mean", "sum", "none"):
        kwargs = {"label_smoothing": eps, "z_loss": zl, "softcap": cap, "reduction": reduction}
        plain = values_and_grads(LF.linear_cross_entropy, h, w, b, y, **kwargs)
        chunks = values_and_grads(LF.linear_cross_entropy, h, w, b, y, chunk_size=N, **kwargs)
        torch.testing.assert_close(plain, chunks, **TOL[torch.float64])
