"""CTC: against torch, against a brute-force sum over every alignment (values and gradients),
and the validation torch does not do."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError


def collapse(path: tuple[int, ...], blank: int) -> list[int]:
    """CTC's many-to-one map: merge repeated symbols, then drop blanks."""
    merged = [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]
    return [s for s in merged if s != blank]


def brute_force_nll(log_probs: torch.Tensor, target: list[int], blank: int) -> torch.Tensor:
    """-log of the summed probability of every alignment of ``target`` (log_probs ``(T, C)``),
    by enumerating all C**T paths; differentiable, so autograd gives the exact gradient."""
    t_len, classes = log_probs.shape
    scores = [
        log_probs[torch.arange(t_len), torch.tensor(path)].sum()
        for path in itertools.product(range(classes), repeat=t_len)
        if collapse(path, blank) == target
    ]
    if not scores:
        return torch.tensor(float("inf"), dtype=log_probs.dtype)
    return -torch.logsumexp(torch.stack(scores), 0)


def _tiny_batch(seed: int, blank: int = 0, normalised: bool = True):
    """T <= 5, C = 3: at most 243 paths per sample."""
    g = torch.Generator().manual_seed(seed)
    t_max, n, c, s = 5, 3, 3, 3
    raw = torch.randn(t_max, n, c, generator=g, dtype=torch.float64)
    log_probs = raw.log_softmax(2) if normalised else raw - 1.0
    labels = [k for k in range(c) if k != blank]
    targets = torch.tensor(labels)[torch.randint(0, len(labels), (n, s), generator=g)]
    input_lengths = torch.tensor([5, 4, 3])
    target_lengths = torch.tensor([3, 2, 1])
    targets[0] = torch.tensor([labels[0], labels[1], labels[0]])  # feasible in 5 steps
    return log_probs, targets, input_lengths, target_lengths


@pytest.mark.parametrize("blank", [0, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctc_matches_brute_force_enumeration(seed, blank):
    log_probs, targets, il, tl = _tiny_batch(seed, blank)
    expected = torch.stack(
        [
            brute_force_nll(log_probs[: il[i], i], targets[i, : tl[i]].tolist(), blank)
            for i in range(3)
        ]
    )
    got = LF.ctc_loss(log_probs, targets, il, tl, blank=blank, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        LF.ctc_loss(log_probs, targets, il, tl, blank=blank),
        (expected / tl.double()).mean(),
        rtol=1e-10,
        atol=1e-10,
    )


@pytest.mark.parametrize("normalised", [True, False], ids=["log_softmax", "unnormalised"])
def test_ctc_gradient_is_exact_against_brute_force(normalised):
    """The gradient with respect to log_probs is the true one, even for log_probs that are not
    normalised (where torch's kernel returns exp(log_probs) - posterior)."""
    log_probs, targets, il, tl = _tiny_batch(3, normalised=normalised)
    mine = log_probs.clone().requires_grad_(True)
    LF.ctc_loss(mine, targets, il, tl, reduction="sum").backward()
    reference = log_probs.clone().requires_grad_(True)
    total = sum(
        brute_force_nll(reference[: il[i], i], targets[i, : tl[i]].tolist(), 0) for i in range(3)
    )
    total.backward()
    torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-9, atol=1e-10)


def test_torch_ctc_gradient_convention():
    """What ``_exact_gradient`` corrects: torch's gradient is exp(log_probs) - posterior, so each
    time step's gradient sums to 0 (pytorch/pytorch#52241). If a torch upgrade changes this, the
    correction must go."""
    log_probs, targets, il, tl = _tiny_batch(7)
    x = log_probs.clone().requires_grad_(True)
    F.ctc_loss(x, targets, il, tl, reduction="sum").backward()
    in_time = torch.arange(5)[:, None] < il
    torch.testing.assert_close(x.grad.sum(2), torch.zeros(5, 3, dtype=torch.float64))
    reference = log_probs.clone().requires_grad_(True)
    sum(
        brute_force_nll(reference[: il[i], i], targets[i, : tl[i]].tolist(), 0) for i in range(3)
    ).backward()
    torch.testing.assert_close(x.grad, reference.grad + log_probs.exp() * in_time[..., None])


def test_ctc_gradient_through_log_softmax_equals_torchs():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(20, 4, 6, generator=g, dtype=torch.float64)
    targets = torch.randint(1, 6, (4, 7), generator=g)
    il, tl = torch.tensor([20, 18, 15, 20]), torch.tensor([7, 5, 6, 0])
    grads = []
    for fn in (LF.ctc_loss, F.ctc_loss):
        x = logits.clone().requires_grad_(True)
        fn(x.log_softmax(2), targets, il, tl).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    x = logits.log_softmax(2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda lp: LF.ctc_loss(lp, targets, il, tl), (x,))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["padded", "concatenated", "int32", "lists"])
def test_ctc_matches_torch(reduction, layout):
    g = torch.Generator().manual_seed(5)
    lp = torch.randn(30, 4, 8, generator=g).log_softmax(2)
    targets = torch.randint(1, 8, (4, 9), generator=g)
    il, tl = torch.tensor([30, 25, 28, 12]), torch.tensor([9, 4, 7, 3])
    if layout == "concatenated":
        targets = torch.cat([targets[i, : tl[i]] for i in range(4)])
    elif layout == "int32":
        targets, il, tl = targets.int(), il.int(), tl.int()
    elif layout == "lists":
        il, tl = il.tolist(), tuple(tl.tolist())
    torch.testing.assert_close(
        LF.ctc_loss(lp, targets, il, tl, reduction=reduction),
        F.ctc_loss(lp, targets, il, tl, reduction=reduction),
    )


def test_unbatched_and_padded_unbatched_targets():
    lp = torch.randn(9, 5).log_softmax(1)
    target = torch.tensor([1, 3, 2, 0, 0])  # padded beyond target_length=3
    expected = F.ctc_loss(lp, target[:3], torch.tensor(9), torch.tensor(3), reduction="none")
    got = LF.ctc_loss(lp, target, 9, torch.tensor(3), reduction="none")
    assert got.shape == ()
    torch.testing.assert_close(got, expected)
    batched = LF.ctc_loss(lp[:, None], target[None], [9], [3], reduction="none")
    torch.testing.assert_close(batched[0], got)


def test_blank_in_targets_is_an_error_but_blank_padding_is_not():
    lp = torch.randn(8, 2, 4).log_softmax(2)
    il, tl = torch.tensor([8, 8]), torch.tensor([3, 1])
    with_blank = torch.tensor([[1, 0, 2], [3, 0, 0]])
    assert torch.isfinite(F.ctc_loss(lp, with_blank, il, tl))  # torch: a meaningless number
    with pytest.raises(LossInputError, match="targets contains the blank index 0 1 time"):
        LF.ctc_loss(lp, with_blank, il, tl)
    LF.ctc_loss(lp, torch.tensor([[1, 2, 2], [3, 0, 0]]), il, tl)  # padding past the lengths
    with pytest.raises(LossInputError, match="contains the blank index 3 1 time"):
        LF.ctc_loss(lp, torch.tensor([[1, 2, 2], [3, 0, 0]]), il, tl, blank=3)


def test_input_too_short_is_an_error_unless_zero_infinity():
    lp = torch.randn(6, 2, 4).log_softmax(2)
    targets = torch.tensor([[1, 1, 2, 2], [3, 2, 1, 0]])
    il, tl = torch.tensor([6, 2]), torch.tensor([4, 3])  # needs 4 + 2 = 6; and 3 > 2
    assert torch.isinf(F.ctc_loss(lp, targets, il, tl, reduction="none")[1])
    with pytest.raises(
        LossInputError, match=r"input_lengths\[1\] is 2; expected at least 3: target_lengths\[1\]"
    ):
        LF.ctc_loss(lp, targets, il, tl)
    with pytest.raises(LossInputError, match=r"input_lengths\[0\] is 5; expected at least 6"):
        LF.ctc_loss(lp, targets, torch.tensor([5, 6]), tl)
    x = lp.clone().requires_grad_(True)
    loss = LF.ctc_loss(x, targets, il, tl, zero_infinity=True, reduction="none")
    torch.testing.assert_close(
        loss, F.ctc_loss(lp, targets, il, tl, zero_infinity=True, reduction="none")
    )
    assert loss[1].item() == 0.0
    loss.sum().backward()
    assert torch.equal(x.grad[:, 1], torch.zeros(6, 4))  # the zeroed sample has no gradient


@pytest.mark.parametrize(
    ("targets", "il", "tl", "match"),
    [
        ([[1, 2, 7], [3, 1, 0]], [6, 5], [3, 2], r"targets has 1 label\(s\) outside \[0, 3\]"),
        ([[1, 2, 3], [3, 1, 0]], [7, 5], [3, 2], r"input_lengths has values in \[5, 7\]"),
        ([[1, 2, 3], [3, 1, 0]], [6, -2], [3, 2], r"input_lengths has values in \[-2, 6\]"),
        ([[1, 2, 3], [3, 1, 0]], [6, 5], [3, 4], r"target_lengths has values in \[3, 4\]"),
        ([[1, 2, 3], [3, 1, 0]], [6, 5], [-1, 2], r"target_lengths has values in \[-1, 2\]"),
        ([1, 2, 3, 3], [6, 5], [3, 2], r"target_lengths sum to 5; expected 4"),
        ([[1, 2, 3], [3, 1, 0]], [6], [3, 2], r"input_lengths has 1 entries; expected \(2,\)"),
    ],
)
def test_ctc_validation(targets, il, tl, match):
    lp = torch.randn(6, 2, 4).log_softmax(2)
    with pytest.raises(LossInputError, match="ctc_loss: " + match):
        LF.ctc_loss(lp, torch.tensor(targets), il, tl)


def test_strided_concatenated_targets_are_read_correctly():
    lp = torch.randn(10, 2, 5).log_softmax(2)
    flat = torch.tensor([1, 2, 3, 4, 2])
    strided = torch.stack([flat, flat], 1)[:, 1]  # same values, stride 2
    assert not strided.is_contiguous()
    torch.testing.assert_close(
        LF.ctc_loss(lp, strided, [10, 9], [3, 2]), LF.ctc_loss(lp, flat, [10, 9], [3, 2])
    )


def test_empty_batch_is_zero_and_half_precision_is_computed_in_float32():
    lp = torch.randn(5, 0, 4).log_softmax(2).requires_grad_(True)
    empty = torch.zeros(0, dtype=torch.long)
    loss = LF.ctc_loss(lp, torch.zeros(0, 3, dtype=torch.long), empty, empty)
    assert loss.item() == 0.0
    loss.backward()
    half = torch.randn(8, 2, 4).log_softmax(2).half()
    targets, il, tl = torch.tensor([[1, 2], [3, 3]]), [8, 8], [2, 2]
    out = LF.ctc_loss(half, targets, il, tl)
    assert out.dtype == torch.float16
    assert out == LF.ctc_loss(half.float(), targets, il, tl).half()


def test_module():
    criterion = losskit.CTCLoss(blank=4, zero_infinity=True, reduction="sum")
    lp = torch.randn(7, 2, 5).log_softmax(2)
    targets, il, tl = torch.tensor([[0, 1], [2, 3]]), [7, 6], [2, 2]
    torch.testing.assert_close(
        criterion(lp, targets, il, tl),
        F.ctc_loss(lp, targets, il, tl, blank=4, zero_infinity=True, reduction="sum"),
    )
    assert "blank=4" in repr(criterion)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    t_len=st.integers(1, 4),
    target=st.lists(st.integers(1, 2), min_size=0, max_size=3),
)
def test_ctc_brute_force_property(seed, t_len, target):
    """Any feasible tiny case: value equals the enumeration; infeasible ones are errors."""
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(t_len, 1, 3, generator=g, dtype=torch.float64).log_softmax(2)
    repeats = sum(a == b for a, b in itertools.pairwise(target))
    padded = torch.tensor([target + [0] * (3 - len(target))])
    if t_len < len(target) + repeats:
        with pytest.raises(LossInputError, match="expected at least"):
            LF.ctc_loss(lp, padded, [t_len], [len(target)])
        return
    got = LF.ctc_loss(lp, padded, [t_len], [len(target)], reduction="sum")
    assert got.item() >= 0
    torch.testing.assert_close(got, brute_force_nll(lp[:, 0], target, 0), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- issue 14


def test_zero_infinity_keeps_the_exact_gradient_of_a_feasible_sample_with_zero_loss():
    """A feasible sample whose loss is exactly 0 keeps the exact-gradient correction under
    zero_infinity (it was dropped for every sample with nll == 0, not only the zeroed ones);
    an infeasible sample in the same batch still gets no gradient."""
    # sample 0: T=2, target "a", every step certain of "a" (log 1 = 0, blank exp(-1e4) = 0 in
    # float64): nll = 0 exactly. Sample 1: target "aa" needs 3 steps, has 2: infeasible, zeroed
    lp = torch.tensor([[[-1e4, 0.0], [-0.5, -0.9]], [[-1e4, 0.0], [-0.7, -0.7]]])
    lp = lp.double().requires_grad_()
    targets, il, tl = torch.tensor([[1, 0], [1, 1]]), [2, 2], [1, 2]
    loss = LF.ctc_loss(lp, targets, il, tl, zero_infinity=True, reduction="none")
    assert loss.tolist() == [0.0, 0.0]
    loss.sum().backward()
    alone = lp.detach()[:, :1].clone().requires_grad_()
    LF.ctc_loss(alone, targets[:1], il[:1], tl[:1], reduction="sum").backward()
    assert alone.grad[:, 0, 1].tolist() == [-1.0, -1.0]  # d(-log p)/d log p along the path
    torch.testing.assert_close(lp.grad[:, :1], alone.grad)
    assert lp.grad[:, 1].abs().sum().item() == 0.0
    # the blank-only case: C = 1, empty targets, loss exactly 0 and gradient -1 per step
    only_blank = torch.zeros(3, 2, 1, dtype=torch.float64, requires_grad=True)
    empty = torch.zeros(2, 0, dtype=torch.long)
    LF.ctc_loss(only_blank, empty, [3, 3], [0, 0], zero_infinity=True, reduction="sum").backward()
    assert only_blank.grad.flatten().tolist() == [-1.0] * 6


def test_zero_infinity_gradient_equals_the_default_on_feasible_samples():
    lp, targets, il, tl = _tiny_batch(3)
    grads = []
    for zero_infinity in (False, True):
        x = lp.clone().requires_grad_()
        LF.ctc_loss(x, targets, il, tl, zero_infinity=zero_infinity).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_double_backward_is_refused_clearly():
    """torch's CTC kernel has no double backward: create_graph is refused by torch's own
    'not implemented' error, never a silently wrong second derivative."""
    assert losskit.catalog["ctc"].double_backward == "refused"
    lp, targets, il, tl = _tiny_batch(4)
    x = lp.clone().requires_grad_()
    (g,) = torch.autograd.grad(LF.ctc_loss(x, targets, il, tl), x, create_graph=True)
    with pytest.raises(
        RuntimeError, match="derivative for aten::_ctc_loss_backward is not implemented"
    ):
        g.square().sum().backward()


def _eager_ctc(x, targets, il, tl, blank, zero_infinity, reduction):
    """The loss as autograd records it without the hook on the kernel's node: torch's kernel,
    the zero_infinity mask, the exact-gradient correction, the reduction (what ctc_loss computed
    before issue 16, and still computes under torch.compile)."""
    from losskit.losses.sequence.functional import _exact_gradient

    nll = torch._ctc_loss(x, targets.long(), il.tolist(), tl.tolist(), blank, zero_infinity)[0]
    zeroed = None
    if zero_infinity:
        zeroed = nll == float("inf")
        nll = torch.where(zeroed, 0.0, nll)
    nll = nll - _exact_gradient(x, il, zeroed)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    return (nll / tl.clamp_min(1).to(nll.dtype)).mean()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("lengths", ["mixed", "equal", "all zero"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("poison", ["none", "nan", "exp overflow", "-inf", "short inputs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ctc_hook_is_the_eager_graph_bit_for_bit(reduction, zero_infinity, poison, dtype, lengths):
    """The exact gradient as a hook on torch's kernel node (after the fast checks) gives the
    eager graph's values and gradients exactly: padded and concatenated targets, inputs shorter than T (the correction
    is masked there), NaN and log-probabilities whose exp overflows (the slow, masked form),
    and target lengths that are all equal (one 0-dim divisor and per-sample gradient)."""
    g = torch.Generator().manual_seed(7)
    t_max, n, c, s = 12, 5, 6, 3
    x = torch.randn(t_max, n, c, generator=g, dtype=torch.float64).log_softmax(2).to(dtype)
    targets = torch.randint(1, c, (n, s), generator=g)
    il = torch.full((n,), t_max)
    tl = {"mixed": [3, 3, 2, 3, 0], "equal": [3] * n, "all zero": [0] * n}[lengths]
    tl = torch.tensor(tl)
    if poison == "nan":
        x[3, 1, 2] = float("nan")
    elif poison == "exp overflow":
        x[t_max - 1, 2, 0] = 100.0
    elif poison == "-inf":
        x[2, 0, 1] = -float("inf")
    elif poison == "short inputs":
        # long enough for 3 labels with up to 2 repeats where a sample has 3 labels
        il = torch.tensor([12, 9, 6, 12, 6] if lengths == "equal" else [12, 9, 4, 12, 1])
        x[10, 2] = float("nan")  # beyond input_lengths[2]: the eager graph's NaN too
    if zero_infinity:
        targets[3] = torch.tensor([2, 2, 2])
        il[3] = 4  # infeasible: zeroed
    concatenated = torch.cat([targets[k, : int(tl[k])] for k in range(n)])
    for tg in (targets, concatenated):
        leaves = [x.clone().requires_grad_(True) for _ in range(2)]
        got = LF.ctc_loss(leaves[0], tg, il, tl, zero_infinity=zero_infinity, reduction=reduction)
        expected = _eager_ctc(leaves[1], tg, il, tl, 0, zero_infinity, reduction)
        weights = torch.linspace(0.5, 1.5, got.numel(), dtype=got.dtype).reshape(got.shape)
        (g_got,) = torch.autograd.grad((got * weights).sum(), leaves[0])
        (g_exp,) = torch.autograd.grad((expected * weights).sum(), leaves[1])
        assert _same(got.detach(), expected.detach()), (got, expected)
        assert _same(g_got, g_exp)
