"""torch.func transforms over the catalog: ``torch.func.grad`` gives autograd's gradient for
every entry whose custom Functions have an eager formula (losskit._autograd.LossFunction runs it
under the transforms), and a loss whose fused backward has none says so with a
DoubleBackwardError naming it; never torch's "must override setup_context"."""

from __future__ import annotations

import pytest
import torch

import losskit
import losskit.functional as LF
from catalog_helpers import call, catalog_params, samples, with_grad
from losskit import DoubleBackwardError


def _graded_samples(spec):
    found = [s for s in samples(spec, torch.float64) if s.grad_args and s.args[0].numel()]
    return found[:3]


@pytest.mark.parametrize("name", catalog_params())
def test_func_grad_matches_autograd(name):
    spec = losskit.catalog[name]
    for sample in _graded_samples(spec):
        args, leaves = with_grad(sample)
        (expected,) = torch.autograd.grad(call(spec, sample, None, args).sum(), leaves[0])
        first = sample.grad_args[0]
        fixed = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]

        def loss(value, fixed=fixed, first=first, sample=sample):
            full = list(fixed)
            full[first] = value
            return call(spec, sample, None, tuple(full)).sum()

        try:
            got = torch.func.grad(loss)(fixed[first])
        except DoubleBackwardError as exc:
            assert spec.double_backward == "refused", exc
            assert "torch.func transforms" in str(exc) and str(exc).startswith(
                spec.functional.__name__
            ), exc
            return
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9, equal_nan=True)


def test_per_sample_gradients_hessians_and_forward_mode():
    """vmap over grad (per-sample gradients), hessian and jacfwd (forward mode) through
    Functions that define no setup_context (the robust and focal losses) and through
    cross-entropy's common call."""
    g = torch.Generator().manual_seed(0)
    x, t = (
        torch.randn(4, 6, generator=g, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
    )
    per_sample = torch.func.vmap(torch.func.grad(lambda a, b: LF.welsch_loss(a, b)))(x, t)
    for i in range(4):
        row = x[i].clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(LF.welsch_loss(row, t[i]), row)
        torch.testing.assert_close(per_sample[i], expected)
    logits, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    # cross-entropy's common call reads its mean back on the host: not under a transform
    per_sample = torch.func.vmap(torch.func.grad(lambda z, c: LF.cross_entropy(z, c)))(logits, y)
    leaf = logits.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(LF.cross_entropy(leaf, y, reduction="sum"), leaf)
    torch.testing.assert_close(per_sample, expected)
    hess = torch.func.hessian(lambda z: LF.focal_loss(z, y))(logits)
    leaf = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(LF.focal_loss(leaf, y), leaf, create_graph=True)
    expected = torch.stack(
        [torch.autograd.grad(grad.flatten()[k], leaf, retain_graph=True)[0] for k in range(15)]
    )
    torch.testing.assert_close(hess.reshape(15, 15), expected.reshape(15, 15))
    jacobian = torch.func.jacfwd(lambda z: LF.focal_loss(z, y, reduction="none"))(logits)
    leaf = logits.clone().requires_grad_(True)
    per_row = LF.focal_loss(leaf, y, reduction="none")
    rows = [torch.autograd.grad(per_row[k], leaf, retain_graph=True)[0] for k in range(5)]
    torch.testing.assert_close(jacobian, torch.stack(rows))


def test_linear_cross_entropy_under_func_grad_at_every_size():
    """Under torch.func the plain formula runs, chunked or not (the chunks have no graph of the
    gradient); outside them nothing changes."""
    g = torch.Generator().manual_seed(1)
    h, w = torch.randn(6, 8, generator=g), torch.randn(50, 8, generator=g)
    y = torch.tensor([3, 7, -100, 49, 0, 1])
    expected = torch.func.grad(lambda a: torch.nn.functional.cross_entropy(a @ w.T, y))(h)
    for chunk_size in (None, 2):
        got = torch.func.grad(
            lambda a, c=chunk_size: LF.linear_cross_entropy(a, w, y, chunk_size=c)
        )(h)
        torch.testing.assert_close(got, expected)
    # per-sample gradients: hidden states and targets batched (no class-index read under vmap)
    hs, ys = h.reshape(2, 3, 8), torch.tensor([[3, 7, 1], [49, 0, 1]])
    per_sample = torch.func.vmap(torch.func.grad(lambda a, b: LF.linear_cross_entropy(a, w, b)))(
        hs, ys
    )
    for k in range(2):
        leaf = hs[k].clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(leaf @ w.T, ys[k])
        torch.testing.assert_close(per_sample[k], torch.autograd.grad(loss, leaf)[0])


def test_fast_checks_read_no_values_under_transforms():
    """As in compiled code: vmap cannot read a value on the host, so under a transform the
    default checks keep to metadata (checks("full") still reads, and vmap then says it cannot)."""
    from losskit._checks import values_checked

    seen = []
    torch.func.vmap(lambda t: seen.append(values_checked(t)) or t)(torch.zeros(2, 3))
    assert seen == [False]
    assert values_checked(torch.zeros(3))


def test_cosface_under_func_transforms_and_arcface_refusal():
    """CosFace's dense formula under a transform gives the chunked Function's gradients for
    both arguments and every reduction; ArcFace refuses, naming itself."""
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(8, 4, generator=g, dtype=torch.float64)
    centres = torch.randn(5, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, -100])
    for reduction in ("mean", "sum", "none"):
        jac = torch.func.jacrev(
            lambda e, w, r=reduction: LF.cosface_loss(e, labels, w, reduction=r), argnums=(0, 1)
        )(emb, centres)
        leaves = (emb.clone().requires_grad_(True), centres.clone().requires_grad_(True))
        out = LF.cosface_loss(leaves[0], labels, leaves[1], reduction=reduction).reshape(-1)
        for k, leaf in enumerate(leaves):
            rows = [torch.autograd.grad(o, leaf, retain_graph=True)[0] for o in out]
            torch.testing.assert_close(jac[k].reshape(len(rows), -1), torch.stack(rows).flatten(1))
    with pytest.raises(DoubleBackwardError, match=r"^arcface_loss: torch.func transforms"):
        torch.func.grad(lambda e: LF.arcface_loss(e, labels, centres))(emb)
