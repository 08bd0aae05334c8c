"""The segmentation family beyond the catalog matrix: the chunked sums and the grouped Lovász
sorts against their eager forms across many chunks, 2-D and 3-D, the empty-foreground rule,
ignored pixels counting nowhere, autocast, combined losses, modules, and the properties that tie
the losses together."""

from __future__ import annotations

import pickle

import pytest
import torch

import losskit
import losskit.functional as LF
from losskit.losses.segmentation import cases as C
from losskit.losses.segmentation import functional as SF

OVERLAP = [LF.dice_loss, LF.jaccard_loss, LF.tversky_loss, LF.focal_tversky_loss]
ALL = [*OVERLAP, LF.generalized_dice_loss, LF.lovasz_softmax_loss]
REFERENCES = {
    LF.dice_loss: C.dice_reference,
    LF.jaccard_loss: C.jaccard_reference,
    LF.tversky_loss: C.tversky_reference,
    LF.focal_tversky_loss: C.focal_tversky_reference,
    LF.generalized_dice_loss: C.generalized_dice_reference,
    LF.lovasz_softmax_loss: C.lovasz_softmax_reference,
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(*shape, dtype=torch.float64, seed=0):
    return torch.randn(shape, generator=_gen(seed), dtype=dtype)


def _indices(classes, *shape, seed=1):
    return torch.randint(0, classes, shape, generator=_gen(seed))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks and sort groups of a few pixels, so that small inputs span many of them."""
    monkeypatch.setattr(SF, "_CHUNK_ELEMENTS", 16)
    monkeypatch.setattr(SF, "_PARALLEL_CHUNK_ELEMENTS", 16)
    monkeypatch.setattr(SF, "_LOVASZ_GROUP_ELEMENTS", 24)


# ------------------------------------------------------------------------- chunks and groups


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_chunked_sums_match_the_eager_sums(small_chunks, from_logits, squared, ignore):
    x = _logits(2, 3, 7, 5)
    x = x.reshape(2, 3, -1) if from_logits else x.softmax(1).reshape(2, 3, -1)
    index = _indices(3, 2, 35)
    valid = index % 4 != 0 if ignore else None
    if valid is not None:
        index = torch.where(valid, index, 0)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    fused = SF._IndexSums.apply(a, index, valid, from_logits, squared)
    eager = SF._index_sums_eager(b, index, valid, from_logits, squared)
    weights = [torch.randn(2, 3, generator=_gen(k), dtype=x.dtype) for k in range(3)]
    for f, e in zip(fused, eager, strict=True):
        torch.testing.assert_close(f, e)
    sum(w * f for w, f in zip(weights[:2], fused[:2], strict=True)).sum().backward()
    sum(w * e for w, e in zip(weights[:2], eager[:2], strict=True)).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    if valid is not None:  # ignored pixels get no gradient
        assert (a.grad.transpose(0, 1)[:, ~valid] == 0).all()


@pytest.mark.parametrize("loss", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("per_image", [False, True])
def test_many_chunks_match_the_reference_and_gradcheck(small_chunks, loss, per_image):
    x = _logits(2, 3, 4, 3, 2)
    y = C._with_ignored(_indices(3, 2, 4, 3, 2), 5)
    opts = {"per_image": per_image, "ignore_index": 255}
    for dtype in (torch.float32, torch.float64):
        got = loss(x.to(dtype), y, **opts, reduction="none")
        want = REFERENCES[loss](x.to(dtype), y, **opts, reduction="none")
        torch.testing.assert_close(got, want.to(dtype), rtol=1e-5, atol=1e-6)
    leaf = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loss(t, y, **opts), (leaf,))
    if loss in (LF.dice_loss, LF.lovasz_softmax_loss):
        assert torch.autograd.gradgradcheck(lambda t: loss(t, y, **opts), (leaf,))


@pytest.mark.parametrize("several", [False, True], ids=["1 thread", "threads"])
@pytest.mark.parametrize("shape", [(5, 40), (1, 40), (2, 1 << 15), (1, 1 << 15)])
def test_lovasz_radix_order_matches_the_float_sort(shape, several, monkeypatch):
    """float32 errors sort as integer keys, in each of the ways the row length and the thread
    count pick: the order of a stable float sort, NaN first and ignored pixels last."""
    monkeypatch.setattr(SF, "_several_threads", lambda: several)
    rows, length = shape
    errors = torch.rand(rows, length, generator=_gen(3))
    errors[:, :4] = torch.tensor([float("nan"), 0.0, -0.0, 0.5])
    errors[:, 4:6] = 0.5  # ties: in the pixels' order
    valid = torch.rand(rows, length, generator=_gen(4)) > 0.2
    valid[:, :6] = True
    order = SF._descending_order(errors, valid, -1.0)
    key = torch.where(valid, errors, -1.0)
    want = torch.where(key.isnan(), 2.0, key).sort(dim=-1, descending=True, stable=True)
    torch.testing.assert_close(order, want.indices)


# ---------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("loss", ALL, ids=lambda f: f.__name__)
def test_2d_and_3d_are_the_same_pixels(loss):
    """A 3-D volume and the same pixels laid out in 2-D or 1-D give the same loss."""
    x = _logits(2, 3, 4, 3, 5)
    y = _indices(3, 2, 4, 3, 5)
    volume = loss(x, y, per_image=True, reduction="none")
    plane = loss(x.reshape(2, 3, 12, 5), y.reshape(2, 12, 5), per_image=True, reduction="none")
    line = loss(x.reshape(2, 3, -1), y.reshape(2, -1), per_image=True, reduction="none")
    torch.testing.assert_close(volume, plane)
    torch.testing.assert_close(volume, line)


def test_no_one_hot_and_nothing_but_the_inputs_saved(monkeypatch):
    """Index targets never pass through one_hot, and the autograd graph keeps only the inputs
    (Dice's fused sums keep their softmax on the CPU as the buffer of the gradient, outside the
    saved tensors; the Lovász-softmax recomputes it in the backward)."""

    def refuse(*args, **kwargs):
        raise AssertionError("one_hot called")

    monkeypatch.setattr(torch.nn.functional, "one_hot", refuse)
    x = _logits(2, 4, 6, 6, 6, dtype=torch.float32).requires_grad_(True)
    y = _indices(4, 2, 6, 6, 6)
    big: list[tuple[int, ...]] = []

    def pack(t):
        if t.numel() >= x.numel() and t.data_ptr() != x.data_ptr():
            big.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        for loss in (LF.dice_loss, LF.lovasz_softmax_loss):
            loss(x, y).backward()
    # the Lovász weights (times the sign of p - y), one per pixel and class, are the one
    # tensor of that size kept
    assert big == [(2, 4, 6 * 6 * 6)], big


# --------------------------------------------------------------------- empty foreground, ignore


def test_empty_foreground_follows_the_smoothing_rule():
    # class 1 absent from the target; its probability 0.1 at every one of 10 pixels: P = 1
    p = torch.tensor([[[0.9] * 10, [0.1] * 10]], dtype=torch.float64)
    y = torch.zeros(1, 10, dtype=torch.long)
    none = LF.dice_loss(p, y, from_logits=False, reduction="none")
    torch.testing.assert_close(none[1], torch.tensor(1.0 / (1.0 + 1.0), dtype=torch.float64))
    none = LF.dice_loss(p, y, from_logits=False, smooth=4.0, reduction="none")
    torch.testing.assert_close(none[1], torch.tensor(1.0 / (1.0 + 4.0), dtype=torch.float64))
    # no smoothing: any false positive costs the whole loss; nothing against nothing costs 0
    assert LF.dice_loss(p, y, from_logits=False, smooth=0.0, reduction="none")[1] == 1.0
    empty = torch.tensor([[[1.0] * 10, [0.0] * 10]], dtype=torch.float64)
    for loss in OVERLAP:
        out = loss(empty, y, from_logits=False, smooth=0.0, reduction="none")
        assert out[1] == 0.0, loss.__name__
        assert loss(p, y, from_logits=False, absent="zero", reduction="none")[1] == 0.0


@pytest.mark.parametrize("loss", [*ALL, LF.lovasz_hinge_loss], ids=lambda f: f.__name__)
@pytest.mark.parametrize("per_image", [False, True])
def test_ignored_pixels_count_nowhere(loss, per_image):
    """Whatever the input holds at ignored pixels (NaN included), the loss and the gradient
    elsewhere are unchanged, and the ignored pixels get no gradient."""
    hinge = loss is LF.lovasz_hinge_loss
    x = _logits(3, 1 if hinge else 3, 4, 5)
    y = _indices(2 if hinge else 3, 3, 4, 5)
    y = C._with_ignored(y, 3)
    ignored = (y == 255)[:, None].expand_as(x)
    other = x.clone()
    other[ignored] = torch.nan
    outs, grads = [], []
    for t in (x, other):
        leaf = t.clone().requires_grad_(True)
        out = loss(leaf, y, per_image=per_image, ignore_index=255)
        out.backward()
        outs.append(out)
        grads.append(leaf.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])
    assert (grads[1][ignored] == 0).all()


def test_every_pixel_ignored_is_zero_and_attached():
    x = _logits(2, 3, 4, 4).requires_grad_(True)
    y = torch.full((2, 4, 4), 255)
    for loss in ALL:
        out = loss(x, y, ignore_index=255, per_image=True)
        assert out == 0.0 and out.requires_grad, loss.__name__
        out.backward()


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("loss", [*ALL, LF.lovasz_hinge_loss], ids=lambda f: f.__name__)
def test_bf16_logits_under_autocast_accumulate_in_float32(loss):
    hinge = loss is LF.lovasz_hinge_loss
    x = _logits(2, 1 if hinge else 4, 6, 5, 4, dtype=torch.float32)
    y = _indices(2 if hinge else 4, 2, 6, 5, 4)
    low = x.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(low, y)
    out.backward()
    rounded = low.detach().float().requires_grad_(True)
    want = loss(rounded, y)
    want.backward()
    assert out.dtype == torch.float32 and low.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    torch.testing.assert_close(low.grad, rounded.grad.to(torch.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize("loss", [LF.dice_loss, LF.lovasz_softmax_loss], ids=lambda f: f.__name__)
def test_half_inputs_get_the_float32_gradient_rounded_once(small_chunks, loss):
    x = _logits(2, 3, 5, 4, dtype=torch.bfloat16)
    y = C._with_ignored(_indices(3, 2, 5, 4), 3)
    low = x.clone().requires_grad_(True)
    high = x.float().requires_grad_(True)
    loss(low, y, ignore_index=255).backward()
    loss(high, y, ignore_index=255).backward()
    torch.testing.assert_close(low.grad, high.grad.to(torch.bfloat16), rtol=0, atol=0)


def test_large_volume_in_float32_matches_float64():
    """Sums over a 3-D volume accumulate in float32 without losing the answer."""
    x = _logits(2, 4, 24, 24, 24, dtype=torch.float32)
    y = _indices(4, 2, 24, 24, 24)
    for loss in (LF.dice_loss, LF.lovasz_softmax_loss):
        torch.testing.assert_close(loss(x, y).double(), loss(x.double(), y), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ properties


def test_the_losses_tie_together():
    x, y = _logits(2, 3, 5, 4), _indices(3, 2, 5, 4)
    plain = {"smooth": 0.0}
    torch.testing.assert_close(
        LF.tversky_loss(x, y, alpha=0.5, beta=0.5, **plain), LF.dice_loss(x, y, **plain)
    )
    torch.testing.assert_close(
        LF.tversky_loss(x, y, alpha=1.0, beta=1.0, **plain), LF.jaccard_loss(x, y, **plain)
    )
    torch.testing.assert_close(
        LF.focal_tversky_loss(x, y, alpha=0.2, beta=0.6, gamma=1.0),
        LF.tversky_loss(x, y, alpha=0.2, beta=0.6),
    )
    one = x[:, :1]
    masks = (y == 1).double()
    torch.testing.assert_close(
        LF.generalized_dice_loss(one, masks, mode="binary", smooth=0.0),
        LF.dice_loss(one, masks, mode="binary", smooth=0.0),
    )
    torch.testing.assert_close(
        LF.dice_loss(x, y, log_loss=True, reduction="none"),
        -torch.log(1 - LF.dice_loss(x, y, reduction="none")),
    )


@pytest.mark.parametrize("loss", ALL, ids=lambda f: f.__name__)
def test_nonnegative_and_zero_at_a_perfect_prediction(loss):
    y = _indices(3, 2, 4, 5)
    perfect = torch.nn.functional.one_hot(y, 3).movedim(-1, 1).double()
    assert loss(perfect, y, from_logits=False) == 0.0
    for seed in range(3):
        assert loss(_logits(2, 3, 4, 5, seed=seed), y) >= 0.0


def test_lovasz_hinge_is_zero_beyond_the_margin():
    masks = _indices(2, 2, 1, 4, 5)
    assert LF.lovasz_hinge_loss(1.5 * (2.0 * masks - 1.0), masks) == 0.0
    assert LF.lovasz_hinge_loss(0.5 * (2.0 * masks - 1.0), masks) > 0.0


# ------------------------------------------------------------------------- combined, modules


def test_dice_plus_focal_through_combined_loss():
    x, y = _logits(2, 3, 4, 5), _indices(3, 2, 4, 5)
    criterion = losskit.CombinedLoss(
        {"dice": losskit.DiceLoss(), "focal": losskit.FocalLoss(gamma=2.0)},
        weights={"dice": 1.0, "focal": 0.5},
    )
    out = criterion(x, y)
    want = LF.dice_loss(x, y) + 0.5 * LF.focal_loss(x, y, gamma=2.0)
    torch.testing.assert_close(out.total, want)
    assert set(out.parts) == {"dice", "focal"}


def test_modules_store_options_as_buffers_and_pickle():
    w = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    module = losskit.DiceLoss(smooth=0.5, class_weight=w, ignore_index=255, per_image=True)
    assert "class_weight" in dict(module.named_buffers())
    assert module.state_dict()["class_weight"].equal(w)
    x, y = _logits(2, 3, 4, 5), C._with_ignored(_indices(3, 2, 4, 5))
    expected = LF.dice_loss(x, y, smooth=0.5, class_weight=w, ignore_index=255, per_image=True)
    torch.testing.assert_close(module(x, y), expected)
    torch.testing.assert_close(pickle.loads(pickle.dumps(module))(x, y), expected)
    assert repr(module).startswith("DiceLoss(mode=multiclass")
    with pytest.raises(losskit.LossInputError, match=r"dice_loss: smooth is -1"):
        losskit.DiceLoss(smooth=-1.0)
    for cls in (losskit.GeneralizedDiceLoss, losskit.LovaszSoftmaxLoss, losskit.TverskyLoss):
        assert cls()(x, y.clamp(max=2)).dim() == 0
