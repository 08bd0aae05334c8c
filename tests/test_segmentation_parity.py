"""Every row of the segmentation mapping table (losskit.losses.segmentation.functional): losskit's
options give MONAI's and segmentation_models_pytorch's numbers, exactly in float64. The two
libraries' formulas are written out from their documentation in
``losskit.losses.segmentation.cases`` (neither library is a dependency)."""

from __future__ import annotations

import pytest
import torch

import losskit
import losskit.functional as LF
from losskit.losses.segmentation import cases as C

EXACT = {"rtol": 1e-11, "atol": 1e-12}


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _indices(classes: int, *shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(seed))


def _masks(*shape: int, seed: int = 2) -> torch.Tensor:
    return _indices(2, *shape, seed=seed).double()


X2 = _logits(2, 4, 5, 6)  # (N, C, H, W)
Y2 = _indices(4, 2, 5, 6)
X3 = _logits(2, 3, 3, 4, 5, seed=3)  # (N, C, D, H, W)
Y3 = _indices(3, 2, 3, 4, 5, seed=4)
LABELS = _masks(2, 4, 5, 6)


# ------------------------------------------------------------------------------------ MONAI

MONAI_DICE_ROWS = [
    # (losskit options, MONAI options)
    ({"per_image": True}, {}),
    (
        {"per_image": True, "smooth": 0.3, "smooth_denominator": 0.7},
        {"smooth_nr": 0.3, "smooth_dr": 0.7},
    ),
    ({"per_image": True, "squared": True}, {"squared_pred": True}),
    ({"per_image": False}, {"batch": True}),
    ({"per_image": True, "include_background": False}, {"include_background": False}),
    (
        {"per_image": False, "include_background": False},
        {"batch": True, "include_background": False},
    ),
]


@pytest.mark.parametrize(("x", "y"), [(X2, Y2), (X3, Y3)], ids=["2-D", "3-D"])
@pytest.mark.parametrize(("ours", "theirs"), MONAI_DICE_ROWS)
def test_monai_dice_multiclass(x, y, ours, theirs):
    opts = {"smooth": 1e-5, **ours}
    monai = {"softmax": True, "to_onehot_y": True, **theirs}
    for reduction in ("mean", "sum", "none"):
        got = LF.dice_loss(x, y, reduction=reduction, **opts)
        want = C.monai_dice_loss(x, y[:, None], reduction=reduction, **monai)
        torch.testing.assert_close(got, want.reshape(got.shape), **EXACT)


@pytest.mark.parametrize(("ours", "theirs"), MONAI_DICE_ROWS)
def test_monai_dice_multilabel_binary_and_probabilities(ours, theirs):
    opts = {"smooth": 1e-5, **ours}
    got = LF.dice_loss(X2, LABELS, mode="multilabel", **opts)
    torch.testing.assert_close(got, C.monai_dice_loss(X2, LABELS, sigmoid=True, **theirs), **EXACT)
    x, y = X2[:, :1], LABELS[:, :1]
    got = LF.dice_loss(x, y, mode="binary", **opts)
    torch.testing.assert_close(got, C.monai_dice_loss(x, y, sigmoid=True, **theirs), **EXACT)
    probs = X2.softmax(1)
    got = LF.dice_loss(probs, Y2, from_logits=False, **opts)
    want = C.monai_dice_loss(probs, Y2[:, None], to_onehot_y=True, **theirs)
    torch.testing.assert_close(got, want, **EXACT)


def test_monai_dice_class_weight_is_none_then_mean():
    w = torch.tensor([0.5, 2.0, 1.0, 0.25], dtype=torch.float64)
    for per_image in (True, False):
        got = LF.dice_loss(
            X2, Y2, smooth=1e-5, per_image=per_image, class_weight=w, reduction="none"
        )
        want = C.monai_dice_loss(
            X2, Y2[:, None], softmax=True, to_onehot_y=True, batch=not per_image, weight=w
        )
        torch.testing.assert_close(got.mean(), want, **EXACT)
    # without the background, one weight per remaining class (MONAI's rule too)
    got = LF.dice_loss(
        X2,
        Y2,
        smooth=1e-5,
        per_image=True,
        include_background=False,
        class_weight=w[1:],
        reduction="none",
    )
    want = C.monai_dice_loss(
        X2, Y2[:, None], softmax=True, to_onehot_y=True, include_background=False, weight=w[1:]
    )
    torch.testing.assert_close(got.mean(), want, **EXACT)


@pytest.mark.parametrize("per_image", [True, False])
def test_monai_jaccard_halves_the_smoothing(per_image):
    got = LF.jaccard_loss(X2, Y2, smooth=0.2, smooth_denominator=0.05, per_image=per_image)
    want = C.monai_dice_loss(
        X2, Y2[:, None], softmax=True, to_onehot_y=True, jaccard=True, smooth_nr=0.4,
        smooth_dr=0.1, batch=not per_image,
    )  # fmt: skip
    torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7), (0.9, 0.2)])
@pytest.mark.parametrize("per_image", [True, False])
def test_monai_tversky(alpha, beta, per_image):
    opts = {"alpha": alpha, "beta": beta, "smooth": 1e-5, "per_image": per_image}
    got = LF.tversky_loss(X3, Y3, **opts)
    want = C.monai_tversky_loss(
        X3, Y3[:, None], softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, batch=not per_image
    )
    torch.testing.assert_close(got, want, **EXACT)
    got = LF.tversky_loss(X2, LABELS, mode="multilabel", include_background=False, **opts)
    want = C.monai_tversky_loss(
        X2, LABELS, sigmoid=True, include_background=False, alpha=alpha, beta=beta,
        batch=not per_image,
    )  # fmt: skip
    torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
def test_monai_generalized_dice(weight_type, per_image, include_background):
    y = torch.where(Y2 == 2, 1, Y2)  # class 2 absent: its weight is the largest finite one
    y[0] = torch.where(y[0] == 3, 0, y[0])  # and class 3 absent from image 0
    opts = {"weight_type": weight_type, "per_image": per_image}
    theirs = {"w_type": weight_type, "batch": not per_image}
    for reduction in ("mean", "none"):
        got = LF.generalized_dice_loss(
            X2, y, include_background=include_background, reduction=reduction, **opts
        )
        want = C.monai_generalized_dice_loss(
            X2, y[:, None], softmax=True, to_onehot_y=True, include_background=include_background,
            reduction=reduction, **theirs,
        )  # fmt: skip
        torch.testing.assert_close(got, want.reshape(got.shape), **EXACT)


@pytest.mark.parametrize(("lambda_dice", "lambda_ce"), [(1.0, 1.0), (0.3, 2.0)])
def test_monai_dice_ce_through_combined_loss(lambda_dice, lambda_ce):
    criterion = losskit.CombinedLoss(
        {"dice": losskit.DiceLoss(smooth=1e-5, per_image=True), "ce": losskit.CrossEntropyLoss()},
        weights={"dice": lambda_dice, "ce": lambda_ce},
    )
    got = criterion(X3, Y3).total
    want = C.monai_dice_ce_loss(X3, Y3[:, None], lambda_dice=lambda_dice, lambda_ce=lambda_ce)
    torch.testing.assert_close(got, want, **EXACT)


# -------------------------------------------------------------------------------------- smp

SMP_OPTIONS = [
    # (losskit options, smp options)
    ({"smooth": 0.0}, {}),
    ({"smooth": 0.7}, {"smooth": 0.7}),
    ({"smooth": 0.0, "log_loss": True}, {"log_loss": True}),
    ({"smooth": 0.2, "include_background": False}, {"smooth": 0.2, "classes": [1, 2, 3]}),
]


def _smp_target(y: torch.Tensor, absent: int = 2) -> torch.Tensor:
    """A class absent from the batch, which smp scores 0 (losskit: absent="zero")."""
    return torch.where(y == absent, 0, y)


@pytest.mark.parametrize(("ours", "theirs"), SMP_OPTIONS)
def test_smp_dice(ours, theirs):
    opts = {"per_image": False, "absent": "zero", **ours}
    y = _smp_target(Y2)
    got = LF.dice_loss(X2, y, **opts)
    torch.testing.assert_close(got, C.smp_dice_loss(X2, y, mode="multiclass", **theirs), **EXACT)
    labels = LABELS.clone()
    labels[:, 1] = 0  # an empty channel
    got = LF.dice_loss(X2, labels, mode="multilabel", **opts)
    want = C.smp_dice_loss(X2, labels, mode="multilabel", **theirs)
    torch.testing.assert_close(got, want, **EXACT)
    if "classes" not in theirs:
        x, y1 = X2[:, :1], LABELS[:, 0]
        got = LF.dice_loss(x, y1, mode="binary", **opts)
        torch.testing.assert_close(got, C.smp_dice_loss(x, y1, mode="binary", **theirs), **EXACT)
        probs = X2.softmax(1)
        got = LF.dice_loss(probs, y, from_logits=False, **opts)
        want = C.smp_dice_loss(probs, y, mode="multiclass", from_logits=False, **theirs)
        torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize(("ours", "theirs"), SMP_OPTIONS[:3])
def test_smp_dice_ignore_index(ours, theirs):
    opts = {"per_image": False, "absent": "zero", **ours}
    y = C._with_ignored(Y3, 3)
    got = LF.dice_loss(X3, y, ignore_index=255, **opts)
    want = C.smp_dice_loss(X3, y, mode="multiclass", ignore_index=255, **theirs)
    torch.testing.assert_close(got, want, **EXACT)
    labels = C._with_ignored(LABELS, 5)
    got = LF.dice_loss(X2, labels, mode="multilabel", ignore_index=255, **opts)
    want = C.smp_dice_loss(X2, labels, mode="multilabel", ignore_index=255, **theirs)
    torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize(("ours", "theirs"), SMP_OPTIONS)
def test_smp_jaccard(ours, theirs):
    opts = {"per_image": False, "absent": "zero", **ours}
    y = _smp_target(Y2)
    got = LF.jaccard_loss(X2, y, **opts)
    torch.testing.assert_close(got, C.smp_jaccard_loss(X2, y, mode="multiclass", **theirs), **EXACT)


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7)])
@pytest.mark.parametrize(("ours", "theirs"), SMP_OPTIONS)
def test_smp_tversky(alpha, beta, ours, theirs):
    opts = {"per_image": False, "absent": "zero", "alpha": alpha, "beta": beta, **ours}
    y = C._with_ignored(_smp_target(Y2), 7)
    got = LF.tversky_loss(X2, y, ignore_index=255, **opts)
    want = C.smp_tversky_loss(
        X2, y, mode="multiclass", ignore_index=255, alpha=alpha, beta=beta, **theirs
    )
    torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize("gamma", [0.75, 1.0, 2.0])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_smp_focal_tversky_binary(gamma, smooth):
    x, y = X2[:, :1], LABELS[:, 0]
    got = LF.focal_tversky_loss(
        x, y, mode="binary", alpha=0.3, beta=0.7, gamma=gamma, smooth=smooth, absent="zero"
    )
    want = C.smp_tversky_loss(x, y, mode="binary", alpha=0.3, beta=0.7, gamma=gamma, smooth=smooth)
    torch.testing.assert_close(got, want, **EXACT)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_smp_lovasz(per_image, ignore):
    ignore_index = 255 if ignore else None
    y = C._with_ignored(Y2, 3) if ignore else Y2
    got = LF.lovasz_softmax_loss(X2, y, per_image=per_image, ignore_index=ignore_index)
    want = C.smp_lovasz_loss(
        X2, y, mode="multiclass", per_image=per_image, ignore_index=ignore_index
    )
    torch.testing.assert_close(got, want, **EXACT)
    x, labels = X2[:, :1], LABELS[:, 0]
    labels = C._with_ignored(labels, 3) if ignore else labels
    got = LF.lovasz_hinge_loss(x, labels, per_image=per_image, ignore_index=ignore_index)
    want = C.smp_lovasz_loss(
        x, labels, mode="binary", per_image=per_image, ignore_index=ignore_index
    )
    torch.testing.assert_close(got, want, **EXACT)


def test_documented_differences():
    """Where losskit differs on purpose, it differs as documented."""
    # an image whose pixels are all ignored: left out of losskit's per-image mean, a 0 in smp's
    y = Y2.clone()
    y[1] = 255
    ours = LF.lovasz_softmax_loss(X2, y, per_image=True, ignore_index=255)
    smp = C.smp_lovasz_loss(X2, y, mode="multiclass", per_image=True, ignore_index=255)
    torch.testing.assert_close(ours, 2 * smp, **EXACT)
    # smp's multi-class focal Tversky raises the class mean to gamma; losskit each class
    y = Y2
    per_class = LF.focal_tversky_loss(
        X2, y, alpha=0.5, beta=0.5, gamma=2.0, smooth=0.0, reduction="none"
    )
    smp = C.smp_tversky_loss(X2, y, mode="multiclass", gamma=2.0)
    torch.testing.assert_close(per_class.sqrt().mean() ** 2, smp, **EXACT)
