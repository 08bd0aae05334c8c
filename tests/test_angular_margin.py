"""CosFace and ArcFace (issue 18): the chunked losses against the dense formulas written from the
papers (values and gradients, every option, reduction and chunk size), against
pytorch-metric-learning's published semantics, ArcFace's branches in closed form, the angle's
edges, memory (never more than a chunk of logits) and the modules that own their class centres.
The catalog matrix (tests/test_catalog_matrix.py) adds gradcheck, half precision, error inputs
and the rest."""

from __future__ import annotations

import copy
import itertools
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

import losskit
import losskit.functional as LF
from losskit import DoubleBackwardError, LossInputError
from losskit.losses.angular_margin import functional as angular
from losskit.losses.angular_margin.cases import arcface_reference, cosface_reference
from losskit.losses.linear_ce import functional as linear_ce

LOSSES = {
    "cosface": (LF.cosface_loss, cosface_reference),
    "arcface": (LF.arcface_loss, arcface_reference),
}


def make(dtype=torch.float64, n=23, d=6, classes=31, seed=0, ignored=False):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(classes, d, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    if ignored:
        y[::4] = -100
    return h, y, w


def values_and_grads(fn, h, y, w, grad_seed=None, **options):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    out = fn(h, y, w, **options)
    if grad_seed is None:
        out.sum().backward()
    else:
        g = torch.Generator().manual_seed(grad_seed)
        out.backward(torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype))
    return out.detach(), h.grad, w.grad


def assert_same(got, want, **tolerance):
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, **tolerance)


def _option_sets(name):
    base = [{}, {"scale": 8.0, "margin": 0.2}, {"scale": 30.0, "margin": 0.0}]
    if name == "arcface":
        base += [{"scale": 8.0, "easy_margin": True}, {"scale": 16.0, "margin": 1.0}]
    return base


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [None, 1, 5, 64])
def test_every_option_matches_the_dense_formula(name, reduction, chunk_size):
    fn, reference = LOSSES[name]
    for options, ignored in itertools.product(_option_sets(name), (False, True)):
        h, y, w = make(ignored=ignored)
        grad_seed = 1 if reduction == "none" else None
        got = values_and_grads(
            fn, h, y, w, grad_seed, reduction=reduction, chunk_size=chunk_size, **options
        )
        want = values_and_grads(reference, h, y, w, grad_seed, reduction=reduction, **options)
        assert_same(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", LOSSES)
def test_float32_matches_the_dense_formula_in_float64(name):
    fn, reference = LOSSES[name]
    h, y, w = make(torch.float32, n=64, d=32, classes=300)
    got = values_and_grads(fn, h, y, w, chunk_size=16)
    want = values_and_grads(reference, h.double(), y, w.double())
    assert_same(got, [t.float() for t in want], rtol=1e-4, atol=1e-5)


def _pml(name, h, y, w):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    classes, features = w.shape
    if name == "arcface":
        pml = losses.ArcFaceLoss(classes, features)  # margin 28.6 degrees, scale 64
    else:
        pml = losses.CosFaceLoss(classes, features)  # margin 0.35, scale 64
    pml = pml.to(h.dtype)
    with torch.no_grad():
        pml.W.copy_(w.T)
    h = h.clone().requires_grad_()
    out = pml(h, y)
    out.backward()
    return out.detach(), h.grad, pml.W.grad.T


@pytest.mark.parametrize("name", LOSSES)
def test_pytorch_metric_learning_semantics(name):
    """PML's CosFaceLoss and ArcFaceLoss with W = class_weight.T: the same value and gradients,
    ArcFace's margin converted from PML's degrees. A third of the embeddings sit near the
    opposite of their class centre, where ArcFace takes its fallback branch."""
    fn, _ = LOSSES[name]
    h, y, w = make(n=30, classes=12, seed=3)
    h[:10] = -w[y[:10]] + 0.05 * torch.randn(10, w.shape[1], dtype=w.dtype)
    options = {"margin": math.radians(28.6)} if name == "arcface" else {}
    got = values_and_grads(fn, h, y, w, chunk_size=7, **options)
    assert_same(got, _pml(name, h, y, w), rtol=1e-9, atol=1e-11)


def _at_angle(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Embeddings at angle ``theta`` from class 0's centre and at 90 degrees from class 1's:
    the loss is ``softplus(-s psi(theta))``."""
    h = torch.stack([theta.cos(), theta.sin(), torch.zeros_like(theta)], dim=1)
    w = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.5]], dtype=theta.dtype)
    return h, torch.zeros(len(theta), dtype=torch.long), w


def test_arcface_branches_in_closed_form():
    s, m = 4.0, 0.5
    theta = torch.linspace(0.01, math.pi - 0.01, 300, dtype=torch.float64)  # not pi/2 itself
    h, y, w = _at_angle(theta)
    paper = torch.where(theta <= math.pi - m, (theta + m).cos(), theta.cos() - m * math.sin(m))
    easy = torch.where(theta < math.pi / 2, (theta + m).cos(), theta.cos())
    for psi, options in ((paper, {}), (easy, {"easy_margin": True})):
        got = LF.arcface_loss(h, y, w, scale=s, margin=m, reduction="none", **options)
        torch.testing.assert_close(got, F.softplus(-s * psi), rtol=1e-12, atol=1e-12)
    # the paper's fallback keeps the true logit decreasing in its angle all the way to pi
    got = LF.arcface_loss(h, y, w, scale=s, margin=m, reduction="none")
    assert (got.diff() > 0).all()
    cosface = LF.cosface_loss(h, y, w, scale=s, margin=0.35, reduction="none")
    torch.testing.assert_close(cosface, F.softplus(-s * (theta.cos() - 0.35)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("easy_margin", [False, True])
def test_arcface_on_and_opposite_the_centre_is_finite(dtype, easy_margin):
    """theta = 0 (an embedding on its centre) is a cone of the loss and acos has no derivative
    at +-1: the value is the closed form and the gradients are finite and bounded."""
    s, m = 8.0, 0.5
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, generator=g, dtype=dtype)
    h = torch.cat([w[:3] * 2.5, -w[3:]])
    y = torch.arange(5)
    out, gh, gw = values_and_grads(
        LF.arcface_loss, h, y, w, scale=s, margin=m, easy_margin=easy_margin, reduction="none"
    )
    assert torch.isfinite(out).all() and torch.isfinite(gh).all() and torch.isfinite(gw).all()
    assert gh.abs().max() < 10 * s and gw.abs().max() < 10 * s
    cosine = F.normalize(h) @ F.normalize(w).T
    others = cosine.masked_fill(torch.eye(5, dtype=torch.bool), -math.inf)
    true = torch.tensor(
        [math.cos(m)] * 3 + ([-1.0] * 2 if easy_margin else [-1 - m * math.sin(m)] * 2)
    )
    want = torch.logsumexp(
        torch.cat([s * true[:, None].to(dtype), s * others], 1), 1
    ) - s * true.to(dtype)
    tolerance = 1e-3 if dtype == torch.float32 else 1e-6  # the cosine near +-1 is ill-conditioned
    torch.testing.assert_close(out, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", LOSSES)
def test_huge_scale_and_norms_are_finite(name):
    fn, reference = LOSSES[name]
    h, y, w = make(torch.float32, n=40, classes=50)
    out, gh, gw = values_and_grads(fn, h * 1e6, y, w * 1e-6, scale=1e4, chunk_size=8)
    assert torch.isfinite(out) and torch.isfinite(gh).all() and torch.isfinite(gw).all()
    want = reference(h.double(), y, w.double(), scale=1e4)
    torch.testing.assert_close(out.double(), want, rtol=1e-4, atol=1e-2)


class _Sizes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_never_holds_more_than_a_chunk_of_logits(name, reduction):
    fn, _ = LOSSES[name]
    n, d, classes, chunk = 96, 4, 500, 16
    h, y, w = make(torch.float32, n=n, d=d, classes=classes)
    h.requires_grad_()
    w.requires_grad_()
    with _Sizes() as sizes:
        fn(h, y, w, chunk_size=chunk, reduction=reduction).sum().backward()
    assert sizes.largest <= chunk * classes < n * classes


@pytest.mark.parametrize("name", LOSSES)
def test_more_threads_take_chunks_of_at_least_their_share_of_logits(name, monkeypatch):
    """With two CPU threads an automatic chunk holds at least 2**23 logits (fewer, larger
    parallel regions), with the same numbers as one thread's chunks."""
    fn, _ = LOSSES[name]
    chunks: list[int] = []
    apply = angular._apply_eagerly

    def spy(function, unit, class_weight, labels, opts):
        chunks.append(opts.chunk_size)
        return apply(function, unit, class_weight, labels, opts)

    monkeypatch.setattr(angular, "_apply_eagerly", spy)
    h, y, w = make(torch.float32, n=600, d=16, classes=1 << 14, ignored=True)
    before = torch.get_num_threads()
    got = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got[threads] = values_and_grads(fn, h, y, w, grad_seed=0)
    finally:
        torch.set_num_threads(before)
    assert chunks == [128, 512]  # auto_chunk_size's 128 rows, then 2**23 / 2**14
    assert_same(got[1], got[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_labels_none_has_zeros_and_all_ignored_is_zero(name):
    fn, _ = LOSSES[name]
    h, y, w = make(ignored=True)
    out = fn(h, y, w, reduction="none")
    assert (out[y == -100] == 0).all() and (out[y != -100] > 0).all()
    everything = torch.full_like(y, 7)
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    out = fn(h, everything, w, ignore_index=7)
    assert out.item() == 0.0
    out.backward()
    assert (h.grad == 0).all() and (w.grad == 0).all()


@pytest.mark.parametrize("name", LOSSES)
def test_empty_and_one_sample_batches(name):
    fn, reference = LOSSES[name]
    h, y, w = make(n=0)
    for reduction in ("mean", "sum"):
        out, gh, gw = values_and_grads(fn, h, y, w, reduction=reduction)
        assert out.item() == 0.0 and gh.shape == (0, 6) and (gw == 0).all()
    assert fn(h, y, w, reduction="none").shape == (0,)
    h, y, w = make(n=1)
    assert_same(values_and_grads(fn, h, y, w), values_and_grads(reference, h, y, w))


@pytest.mark.parametrize("name", LOSSES)
def test_second_backward_and_frozen_weight_and_no_grad(name):
    fn, _ = LOSSES[name]
    h, y, w = make()
    h.requires_grad_()
    w.requires_grad_()
    out = fn(h, y, w, chunk_size=4)
    first = torch.autograd.grad(out, (h, w), retain_graph=True)
    again = torch.autograd.grad(out, (h, w))
    assert_same(again, first)
    frozen = w.detach()
    fn(h, y, frozen).backward()
    assert frozen.grad is None and h.grad is not None
    with torch.no_grad():
        value = fn(h, y, w)
    assert not value.requires_grad
    torch.testing.assert_close(value, out.detach())


def test_arcface_double_backward_is_refused_by_name():
    fn, _ = LOSSES["arcface"]
    h, y, w = make()
    h.requires_grad_()
    with pytest.raises(DoubleBackwardError, match=r"^arcface_loss: double backward"):
        torch.autograd.grad(fn(h, y, w), h, create_graph=True)
    torch.autograd.grad(fn(h, y, w), h)  # first order is unaffected


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cosface_double_backward_is_the_dense_formulas(reduction):
    """A gradient penalty through CosFace (the chunks rebuild the loss by its dense formula
    when a graph of the gradient is asked for) against the same penalty through the
    reference formula, for both arguments, ignored labels included."""
    fn, ref = LOSSES["cosface"]
    h, y, w = make(dtype=torch.float64)
    y[1] = -100

    def penalty_gradient(loss):
        hh, ww = (t.detach().clone().requires_grad_() for t in (h, w))
        gh, gw = torch.autograd.grad(loss(hh, y, ww).sum(), (hh, ww), create_graph=True)
        return torch.autograd.grad(gh.square().sum() + gw.square().sum(), (hh, ww))

    got = penalty_gradient(lambda h, y, w: fn(h, y, w, reduction=reduction, chunk_size=2))
    want = penalty_gradient(lambda h, y, w: ref(h, y, w, reduction=reduction))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", LOSSES)
def test_labels_out_of_range_are_refused_under_default_checks(name):
    fn, _ = LOSSES[name]
    h, _, w = make(n=4, classes=5)
    for bad in ([0, 1, 5, 2], [0, -1, 1, 2]):
        with pytest.raises(LossInputError, match=rf"{name}_loss: labels has class indices"):
            fn(h, torch.tensor(bad), w)
    fn(h, torch.tensor([0, -100, 4, 2]), w)  # ignore_index is not out of range


def test_accelerator_half_path_multiplies_in_half_and_accumulates_in_float32(monkeypatch):
    """On accelerators the products run in the input dtype; exercised here on CPU in bfloat16."""
    for module in (linear_ce, angular):
        monkeypatch.setattr(module, "_half_matmuls", lambda device: True)
    h, y, w = make(torch.float32, n=40, classes=60, ignored=True)
    low_h, low_w = h.bfloat16(), w.bfloat16()
    for name, (fn, reference) in LOSSES.items():
        for reduction in ("mean", "none"):
            got = values_and_grads(fn, low_h, y, low_w, 2, scale=16.0, reduction=reduction)
            want = values_and_grads(
                reference, low_h.float(), y, low_w.float(), 2, scale=16.0, reduction=reduction
            )
            assert all(t.dtype == torch.bfloat16 for t in got), name
            for a, e in zip(got, want, strict=True):
                # unit vectors rounded to bfloat16, then scaled by s: relative to the largest
                atol = 2e-2 * max(1.0, e.abs().max().item())
                torch.testing.assert_close(a.float(), e, rtol=0, atol=atol)


@pytest.mark.parametrize("cls", [losskit.CosFaceLoss, losskit.ArcFaceLoss])
def test_module_that_owns_its_class_centres(cls):
    torch.manual_seed(0)
    criterion = cls(num_classes=12, embedding_size=5, scale=16.0)
    assert [name for name, _ in criterion.named_parameters()] == ["weight"]
    assert criterion.weight.shape == (12, 5)
    h = torch.randn(8, 5, requires_grad=True)
    y = torch.randint(0, 12, (8,))
    out = criterion(h, y)
    torch.testing.assert_close(out, cls.functional(h, y, criterion.weight, scale=16.0))
    out.backward()
    assert criterion.weight.grad is not None and h.grad is not None
    assert repr(criterion).startswith(
        f"{cls.__name__}(num_classes=12, embedding_size=5, scale=16.0"
    )
    for restored in (copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
        torch.testing.assert_close(restored(h, y), out)
    fresh = cls(num_classes=12, embedding_size=5, scale=16.0)
    fresh.load_state_dict(criterion.state_dict())
    torch.testing.assert_close(fresh(h, y), out)
    with pytest.raises(LossInputError, match="class_weight is given to a module that owns"):
        criterion(h, y, torch.randn(12, 5))


@pytest.mark.parametrize("cls", [losskit.CosFaceLoss, losskit.ArcFaceLoss])
def test_module_without_class_centres_and_bad_constructions(cls):
    criterion = cls(reduction="sum")
    assert list(criterion.parameters()) == [] and "weight" not in criterion.state_dict()
    h, y, w = make(torch.float32)
    torch.testing.assert_close(criterion(h, y, w), cls.functional(h, y, w, reduction="sum"))
    loss = cls.functional.__name__
    with pytest.raises(LossInputError, match=rf"{loss}: class_weight is missing"):
        criterion(h, y)
    with pytest.raises(LossInputError, match=rf"{loss}: num_classes is 10 with embedding_size"):
        cls(num_classes=10)
    with pytest.raises(LossInputError, match=rf"{loss}: num_classes is 0; expected an int >= 1"):
        cls(num_classes=0, embedding_size=4)
    with pytest.raises(LossInputError, match=rf"{loss}: scale is -1.0"):
        cls(scale=-1.0)
    with pytest.raises(LossInputError, match=rf"{loss}: chunk_size is 0"):
        cls(chunk_size=0)


def test_arcface_module_refuses_a_margin_in_degrees_and_a_non_bool_easy_margin():
    with pytest.raises(LossInputError, match=r"arcface_loss: margin is 28.6; expected a number"):
        losskit.ArcFaceLoss(num_classes=10, embedding_size=4, margin=28.6)
    with pytest.raises(LossInputError, match="arcface_loss: easy_margin is 'yes'"):
        losskit.ArcFaceLoss(easy_margin="yes")
