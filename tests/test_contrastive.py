"""The contrastive family beyond the catalog matrix: parity with the peers' published semantics
(pytorch-metric-learning's NTXentLoss and SupConLoss run here when installed; open_clip's
ClipLoss and SigLipLoss and info-nce-pytorch's InfoNCE as their documentation defines them,
written out below), the tiled path against the dense formula above the dispatch size, gradients
of learnable ``logit_scale`` and ``logit_bias``, no ``B x B`` tensor kept for backward, edge
batches and huge scales."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import losskit
import losskit.functional as LF
from losskit.losses.contrastive import functional as contrastive_functional
from losskit.losses.contrastive import tiled

LOSSES = ("info_nce", "nt_xent", "supcon", "clip", "siglip")


def _unit(n: int, d: int = 8, seed: int = 0, dtype=torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def _labels(n: int, classes: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n,), generator=g)


# ------------------------------------------------------- the peers, from their documentation


def open_clip_clip_loss(image: Tensor, text: Tensor, logit_scale: Tensor | float) -> Tensor:
    """open_clip ``ClipLoss`` on one process: ``logits_per_image = scale * image @ text.T``,
    ``logits_per_text`` its transpose, the mean of the two cross-entropies with labels
    ``arange(N)``."""
    logits_per_image = logit_scale * image @ text.T
    logits_per_text = logit_scale * text @ image.T
    labels = torch.arange(image.shape[0])
    return (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2


def open_clip_siglip_loss(
    image: Tensor, text: Tensor, logit_scale: Tensor | float, logit_bias: Tensor | float
) -> Tensor:
    """open_clip ``SigLipLoss`` on one process: labels ``2 * eye(N) - 1``, logits
    ``scale * image @ text.T + bias``, ``-logsigmoid(labels * logits).sum() / N``."""
    logits = logit_scale * image @ text.T + logit_bias
    labels = 2 * torch.eye(image.shape[0], dtype=image.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / image.shape[0]


def info_nce_pytorch(query, positive_key, negative_keys=None, temperature=0.1, mode="unpaired"):
    """info-nce-pytorch's ``info_nce``: normalise everything; without negatives the logits are
    ``query @ positive_key.T`` with labels ``arange(N)``; with negatives the positive logit
    comes first (label 0) before ``query @ negatives.T`` (unpaired) or the per-query products
    (paired); cross-entropy of the logits divided by the temperature."""
    q, p = F.normalize(query, dim=-1), F.normalize(positive_key, dim=-1)
    if negative_keys is None:
        logits, labels = q @ p.T, torch.arange(len(q))
    else:
        n = F.normalize(negative_keys, dim=-1)
        positive = (q * p).sum(1, keepdim=True)
        negative = (
            q @ n.T if mode == "unpaired" else (q.unsqueeze(1) @ n.transpose(-2, -1)).squeeze(1)
        )
        logits, labels = torch.cat([positive, negative], 1), torch.zeros(len(q), dtype=torch.long)
    return F.cross_entropy(logits / temperature, labels)


def _grads(fn, *tensors: Tensor) -> tuple[Tensor, list[Tensor]]:
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    return out.detach(), list(torch.autograd.grad(out, leaves))


@pytest.mark.parametrize("block_size", [None, 3])
def test_clip_matches_open_clip_with_a_learnable_scale(block_size):
    image, text = _unit(10, seed=1), _unit(10, seed=2)
    scale = torch.tensor(7.5, dtype=torch.float64)
    ours, ours_grads = _grads(
        lambda i, t, s: LF.clip_loss(i, t, logit_scale=s, block_size=block_size), image, text, scale
    )
    theirs, their_grads = _grads(open_clip_clip_loss, image, text, scale)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("block_size", [None, 4])
def test_siglip_matches_open_clip_with_learnable_scale_and_bias(block_size):
    image, text = _unit(9, seed=3), _unit(9, seed=4)
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)

    def ours(i, t, s, b):
        return LF.siglip_loss(i, t, logit_scale=s, logit_bias=b, block_size=block_size)

    value, grads = _grads(ours, image, text, scale, bias)
    expected, expected_grads = _grads(open_clip_siglip_loss, image, text, scale, bias)
    torch.testing.assert_close(value, expected)
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("negatives", "mode"), [(None, "unpaired"), ((7, 8), "unpaired"), ((6, 4, 8), "paired")]
)
@pytest.mark.parametrize("block_size", [None, 2])
def test_info_nce_matches_info_nce_pytorch(negatives, mode, block_size):
    g = torch.Generator().manual_seed(5)
    q, p = (
        torch.randn(6, 8, generator=g, dtype=torch.float64),
        torch.randn(6, 8, generator=g, dtype=torch.float64),
    )
    args = (
        (q, p)
        if negatives is None
        else (q, p, torch.randn(*negatives, generator=g, dtype=torch.float64))
    )

    def ours(*xs):
        return LF.info_nce_loss(*xs, temperature=0.2, negative_mode=mode, block_size=block_size)

    value, grads = _grads(ours, *args)
    expected, expected_grads = _grads(
        lambda *xs: info_nce_pytorch(*xs, temperature=0.2, mode=mode), *args
    )
    torch.testing.assert_close(value, expected)
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("classes", [2, 5, 12, 40])
@pytest.mark.parametrize("block_size", [None, 5])
def test_nt_xent_and_supcon_match_pytorch_metric_learning(classes, block_size):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x = torch.randn(24, 6, generator=torch.Generator().manual_seed(classes), dtype=torch.float64)
    labels = _labels(24, classes, seed=classes)
    for ours, theirs in (
        (LF.nt_xent_loss, pml.NTXentLoss(temperature=0.3)),
        (LF.supcon_loss, pml.SupConLoss(temperature=0.3)),
    ):
        value, grads = _grads(
            lambda e, f=ours: f(e, labels, temperature=0.3, block_size=block_size), x
        )
        expected, expected_grads = _grads(lambda e, f=theirs: f(e, labels), x)
        torch.testing.assert_close(value, expected, msg=ours.__name__)
        torch.testing.assert_close(grads[0], expected_grads[0], msg=ours.__name__)


def test_simclr_two_views_are_the_symmetric_infonce_of_the_views():
    """SimCLR's NT-Xent of two views: per view, a cross-entropy over the other 2N - 1 samples."""
    a, b = _unit(5, seed=6), _unit(5, seed=7)
    x = torch.cat([a, b])
    s = x @ x.T / 0.5
    s.fill_diagonal_(float("-inf"))
    target = torch.arange(10).roll(5)
    expected = F.cross_entropy(s, target)
    got = LF.nt_xent_loss(x, torch.arange(5).repeat(2), temperature=0.5)
    torch.testing.assert_close(got, expected)


def test_supcon_with_one_positive_per_anchor_is_nt_xent_over_all_others():
    x = _unit(8, seed=8)
    labels = torch.arange(4).repeat(2)
    torch.testing.assert_close(
        LF.supcon_loss(x, labels, temperature=0.4), LF.nt_xent_loss(x, labels, temperature=0.4)
    )


# ---------------------------------------------------------------- tiled against dense


def _dense_only(spec, x, y, scale, bias=None, labels=None, block_size=None, normalize=False):
    if normalize:
        x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    return tiled.dense(spec, x, y, scale, bias, labels)


@pytest.mark.parametrize("name", LOSSES)
def test_tiled_path_equals_the_dense_formula_in_float32(name, monkeypatch):
    """The tiled path (the automatic one, above the dispatch size, and in blocks of 200 rows)
    gives the dense formula's loss and gradients to float32 rounding."""
    n = 600
    assert n * n > tiled.DENSE_MAX_TWO_TOWERS, "the automatic path must be a Function's"
    x, y = _unit(n, 32, seed=9, dtype=torch.float32), _unit(n, 32, seed=10, dtype=torch.float32)
    labels = _labels(n, 40, seed=11)
    spec = losskit.catalog[name]
    args = (x, labels) if spec.target_kind == "class_index" else (x, y)
    grad_args = (0,) if spec.target_kind == "class_index" else (0, 1)

    def run(block_size):
        leaves = [a.clone().requires_grad_() if i in grad_args else a for i, a in enumerate(args)]
        options = {"block_size": block_size}
        if name in ("clip", "siglip"):
            options["logit_scale"] = torch.tensor(20.0, requires_grad=True)
        out = spec.functional(*leaves, **options)
        out.backward()
        grads = [leaves[i].grad for i in grad_args]
        if "logit_scale" in options:
            grads.append(options["logit_scale"].grad)
        return out.detach(), grads

    automatic, blocks = run(None), run(200)
    monkeypatch.setattr(contrastive_functional, "pairwise", _dense_only)
    dense_value, dense_grads = run(None)
    for value, grads in (automatic, blocks):
        torch.testing.assert_close(value, dense_value, rtol=2e-6, atol=1e-6)
        for a, b in zip(grads, dense_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-7)


def _two_views(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.arange(n // 2).repeat(2)[torch.randperm(n, generator=g)]


@pytest.mark.parametrize("name", ["nt_xent", "supcon"])
@pytest.mark.parametrize(
    "labels",
    [
        _two_views(150, 1),  # one positive each: partners, no index of pairs
        _labels(150, 30, seed=2),  # the pairs from the sorted labels
        _labels(100, 40, seed=3),  # ... from the mask (N x N at most 1 << 14)
        torch.cat([_two_views(148, 4), torch.tensor([1000, 1001])]),  # two rows alone
        torch.zeros(150, dtype=torch.long),  # no negatives
        torch.arange(150),  # no positives
    ],
    ids=["two views", "sorted", "mask", "two alone", "one label", "all distinct"],
)
@pytest.mark.parametrize("path", ["kept", "tiled", "kept, masks", "tiled, masks"])
def test_every_path_of_the_labelled_losses_equals_the_dense_formula(
    name, labels, path, monkeypatch
):
    """NT-Xent and SupCon through the kept block and the tiled path, with the positives by index
    (the CPU's way, in each of its forms) or by masks (the accelerators' and torch.compile's):
    the dense formula's values and gradients, in float64."""
    if "masks" in path:
        monkeypatch.setattr(tiled, "_pair_index", lambda *args: None)
    n = labels.shape[0]
    x = torch.randn(n, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    fn = losskit.catalog[name].functional
    block = 32 if path.startswith("tiled") else None

    def run(pairwise=None):
        if pairwise is not None:
            monkeypatch.setattr(contrastive_functional, "pairwise", pairwise)
        leaf = x.clone().requires_grad_()
        values = [
            fn(leaf, labels, temperature=0.3, block_size=block, reduction=r)
            for r in ("none", "mean")
        ]
        (values[0].sum() + values[1]).backward()
        return values, leaf.grad

    (got, got_grad), (want, want_grad) = run(), run(_dense_only)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(got_grad, want_grad)


_SPECS = {
    "rows": contrastive_functional._ROWS,
    "rows and cols": contrastive_functional._ROWS_AND_COLS,
    "lse": contrastive_functional._LSE,
    "supcon": contrastive_functional._SUPCON,
    "sigmoid": contrastive_functional._SIGMOID_PAIRS,
    "nt_xent": contrastive_functional._NT_XENT,
}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("spec", list(_SPECS))
def test_gradcheck_of_the_kept_block(spec, normalize):
    """The kept block (its own backward, and the dense formula for double backward), with and
    without the unit rows fused in, for inputs, scale and bias."""
    spec = _SPECS[spec]
    g = torch.Generator().manual_seed(21)
    x = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    scale = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2]) if spec.labelled else None
    weights = torch.linspace(0.5, 1.5, 6, dtype=torch.float64)

    def fn(a, b, s, c):
        other = a if spec.labelled or spec.exclude_self else b
        rows, cols = tiled.kept(
            spec, a, other, s, c if spec.kind == "softplus" else None, labels, normalize
        )
        return (rows * weights).sum() + (cols.sum() if spec.cols else 0.0)

    leaves = (x, y, scale, bias)
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(fn, leaves, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["clip", "siglip"])
@pytest.mark.parametrize("block_size", [None, 2])
def test_gradcheck_of_learnable_scale_and_bias(name, block_size):
    x, y = _unit(5, 3, seed=12), _unit(5, 3, seed=13)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    for reduction in ("mean", "sum", "none"):

        def fn(a, b, s, c, reduction=reduction):
            options = {"logit_scale": s, "block_size": block_size, "reduction": reduction}
            if name == "siglip":
                options["logit_bias"] = c
            return losskit.catalog[name].functional(a, b, **options)

        leaves = (x.requires_grad_(), y.requires_grad_(), scale, bias)
        assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)
        assert torch.autograd.gradgradcheck(fn, leaves, eps=1e-6, atol=1e-5)


def test_no_b_by_b_tensor_is_kept_for_backward():
    """What autograd keeps between forward and backward is O(B D): the embeddings and O(B)
    statistics, never the B x B logits (the dense formula keeps several)."""
    n = 2304
    assert n * n > 1 << 22, "every loss must take its tiled path"
    x = _unit(n, 16, seed=14, dtype=torch.float32).requires_grad_()
    y = _unit(n, 16, seed=15, dtype=torch.float32).requires_grad_()
    labels = _labels(n, 100)

    def largest_saved(out: Tensor) -> int:
        seen, stack, largest = set(), [out.grad_fn], 0
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            saved = [getattr(node, a) for a in dir(node) if a.startswith("_saved_")]
            saved += list(getattr(node, "saved_tensors", ()) or ())
            for t in saved:
                if isinstance(t, Tensor):
                    largest = max(largest, t.numel())
            stack.extend(f for f, _ in node.next_functions)
        return largest

    for out in (
        LF.clip_loss(x, y),
        LF.siglip_loss(x, y),
        LF.info_nce_loss(x, y),
        LF.nt_xent_loss(x, labels),
        LF.supcon_loss(x, labels),
    ):
        assert largest_saved(out) <= n * 16, out.grad_fn
    dense = open_clip_clip_loss(x, y, 10.0)
    assert largest_saved(dense) >= n * n  # the check sees the matrices where they are kept


# ------------------------------------------------------------------------ edge batches


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("block_size", [None, 1])
def test_empty_and_one_sample_batches(name, n, block_size):
    spec = losskit.catalog[name]
    x = _unit(n, 4, seed=16).requires_grad_()
    labels = torch.zeros(n, dtype=torch.long)
    # the towers: each image's text equal to it
    other = labels if spec.target_kind == "class_index" else x.detach().clone()
    for reduction in ("mean", "sum", "none"):
        out = spec.functional(x, other, block_size=block_size, reduction=reduction)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None
    value = spec.functional(x, other, block_size=block_size).item()
    if name == "siglip" and n == 1:  # one positive pair: softplus(-(10 * 1 - 10))
        assert value == pytest.approx(0.6931, abs=1e-4)
    else:  # nothing to contrast, or nothing at all
        assert value == 0.0


@pytest.mark.parametrize("name", ["nt_xent", "supcon"])
def test_labels_with_a_single_member(name):
    """An anchor alone with its label has no positive: loss 0, left out of the mean, but still a
    negative of the others."""
    fn = losskit.catalog[name].functional
    x = _unit(7, 4, seed=17)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    per_row = fn(x, labels, reduction="none")
    assert per_row[5] == 0 and per_row[6] == 0 and (per_row[:5] > 0).all()
    counted = 5 if name == "supcon" else 2 + 6  # anchors with a positive, or positive pairs
    torch.testing.assert_close(fn(x, labels), per_row.sum() / counted)
    without = fn(x[:5], labels[:5], reduction="none")
    assert not torch.allclose(per_row[:5], without)  # the lone rows were negatives


@pytest.mark.parametrize("name", ["clip", "siglip"])
@pytest.mark.parametrize("scale", [1e4, 1e6])
def test_huge_logit_scale_is_finite(name, scale):
    n = 600
    x = _unit(n, 16, seed=18, dtype=torch.float32).requires_grad_()
    y = _unit(n, 16, seed=19, dtype=torch.float32).requires_grad_()
    s = torch.tensor(scale, requires_grad=True)
    out = losskit.catalog[name].functional(x, y, logit_scale=s)
    out.backward()
    assert torch.isfinite(out)
    for t in (x.grad, y.grad, s.grad):
        assert torch.isfinite(t).all()


def test_half_precision_is_accumulated_in_float32():
    x, y = (
        _unit(600, 32, seed=20, dtype=torch.float32),
        _unit(600, 32, seed=21, dtype=torch.float32),
    )
    half = LF.clip_loss(x.bfloat16(), y.bfloat16())
    assert half.dtype == torch.bfloat16
    expected = LF.clip_loss(x.bfloat16().float(), y.bfloat16().float())
    assert half.float().item() == pytest.approx(expected.item(), rel=2**-8)


# ------------------------------------------------------------------------------ modules


def test_modules_take_a_learnable_scale_per_call_and_round_trip():
    model_scale = torch.nn.Parameter(torch.tensor(2.0))
    criterion = losskit.ClipLoss()
    x, y = _unit(6, seed=22, dtype=torch.float32), _unit(6, seed=23, dtype=torch.float32)
    loss = criterion(x, y, logit_scale=model_scale.exp())
    loss.backward()
    assert model_scale.grad is not None and model_scale.grad != 0
    torch.testing.assert_close(loss, LF.clip_loss(x, y, logit_scale=model_scale.exp()))
    assert repr(losskit.SigLipLoss(logit_scale=5.0, gather="ring")) == (
        "SigLipLoss(logit_scale=5.0, logit_bias=-10.0, gather=ring, block_size=None, "
        "reduction='mean')"
    )
    with pytest.raises(losskit.LossInputError, match=r"supcon_loss: temperature is 0.0"):
        losskit.SupConLoss(temperature=0.0)


def test_gather_outside_torch_distributed_changes_nothing():
    x, y = _unit(6, seed=24), _unit(6, seed=25)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert LF.clip_loss(x, y, gather=True) == LF.clip_loss(x, y)
    for gather in (True, "ring"):
        assert LF.siglip_loss(x, y, gather=gather) == LF.siglip_loss(x, y)
    assert LF.nt_xent_loss(x, labels, gather=True) == LF.nt_xent_loss(x, labels)
    assert LF.supcon_loss(x, labels, gather=True) == LF.supcon_loss(x, labels)


@pytest.mark.compile
@pytest.mark.parametrize("name", LOSSES)
def test_tiled_path_compiles_without_a_graph_break(name):
    spec = losskit.catalog[name]
    x, y = _unit(6, 4, seed=26, dtype=torch.float32), _unit(6, 4, seed=27, dtype=torch.float32)
    args = (x, torch.tensor([0, 0, 1, 1, 2, 2])) if spec.target_kind == "class_index" else (x, y)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(spec.functional, fullgraph=True)
        for block_size in (2, 4):
            a = x.clone().requires_grad_()
            out = compiled(a, *args[1:], block_size=block_size)
            out.backward()
            b = x.clone().requires_grad_()
            expected = spec.functional(b, *args[1:], block_size=block_size)
            expected.backward()
            torch.testing.assert_close(out, expected)
            torch.testing.assert_close(a.grad, b.grad)
    finally:
        torch._dynamo.reset()
