"""The class-imbalance losses' options, declared once: the functionals validate with them, the
modules are built from them, the catalog, ``losskit show``/``tune``, the docs and the Keras twins
print them. The softmax losses share cross-entropy's options. Torch-free."""

from losskit._options import HyperParam
from losskit.losses.classification.options import (
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    WEIGHT,
)

__all__ = [
    "CLASS_ALPHA",
    "CLIP",
    "EPSILON",
    "GAMMA",
    "GAMMA_NEG",
    "GAMMA_POS",
    "IGNORE_INDEX",
    "LABEL_SMOOTHING",
    "POS_WEIGHT",
    "SIGMOID_ALPHA",
    "WEIGHT",
]

GAMMA = HyperParam(
    "gamma", 2.0, "focusing: how much easy examples are down-weighted", 0.0, 5.0, ge=0.0
)
#: sigmoid_focal_loss's alpha; the bounds apply when it is not None
SIGMOID_ALPHA = HyperParam(
    "alpha",
    0.25,
    "weight of the positive class (None: off)",
    0.1,
    0.9,
    valid="[0, 1] or None",
    ge=0.0,
    le=1.0,
)
#: focal_loss's alpha; the bound applies to the number and to each per-class value
CLASS_ALPHA = HyperParam(
    "alpha",
    None,
    "scale, or one per class (e.g. class_balanced_weights)",
    valid="None, a number >= 0, or one number >= 0 per class (a sequence or (C,) tensor)",
    ge=0.0,
)
EPSILON = HyperParam("epsilon", 1.0, "weight of the (1 - p_t) term", -1.0, 4.0, ge=-1.0)
GAMMA_NEG = HyperParam("gamma_neg", 4.0, "focusing of the negatives", 0.0, 6.0, ge=0.0)
GAMMA_POS = HyperParam("gamma_pos", 1.0, "focusing of the positives", 0.0, 3.0, ge=0.0)
CLIP = HyperParam(
    "clip", 0.05, "probability margin m that discards easy negatives", 0.0, 0.2, ge=0.0, lt=1.0
)
