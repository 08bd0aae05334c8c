"""The segmentation losses' options, declared once: the functionals validate with them, the
modules are built from them, the catalog, ``losskit show``/``tune`` and the docs print them.
Torch-free."""

from losskit._options import HyperParam

__all__ = [
    "ABSENT",
    "CLASSES",
    "CLASS_WEIGHT",
    "FROM_LOGITS",
    "FT_ALPHA",
    "FT_BETA",
    "FT_GAMMA",
    "GDL_SMOOTH",
    "IGNORE_INDEX",
    "INCLUDE_BACKGROUND",
    "LOG_LOSS",
    "MODE",
    "MODES",
    "PER_IMAGE",
    "SMOOTH",
    "SMOOTH_DENOMINATOR",
    "SQUARED",
    "TVERSKY_ALPHA",
    "TVERSKY_BETA",
    "WEIGHT_TYPE",
]

MODES = ("multiclass", "multilabel", "binary")

MODE = HyperParam(
    "mode",
    "multiclass",
    "multiclass: softmax over C classes; multilabel: a sigmoid per channel; binary: one channel",
    valid="'multiclass', 'multilabel' or 'binary'",
)
FROM_LOGITS = HyperParam(
    "from_logits",
    True,
    "input holds logits (softmax or sigmoid applied here); False: probabilities",
    valid="True or False",
)
SMOOTH = HyperParam(
    "smooth",
    1.0,
    "added to the numerator and (unless smooth_denominator) the denominator of each score",
    1e-3,
    10.0,
    log=True,
    ge=0.0,
)
#: the generalized Dice weights are 1/volume**2: a smoothing of 1 would swamp them
GDL_SMOOTH = HyperParam(
    "smooth",
    1e-5,
    "added to the numerator and (unless smooth_denominator) the denominator",
    1e-7,
    1e-2,
    log=True,
    ge=0.0,
)
#: the bound applies when it is not None (checked by the functionals)
SMOOTH_DENOMINATOR = HyperParam(
    "smooth_denominator",
    None,
    "added to the denominator instead of smooth (MONAI's smooth_dr)",
    valid="None (the same as smooth) or a number >= 0",
)
SQUARED = HyperParam(
    "squared",
    False,
    "sum squared probabilities and targets in the denominator (V-Net)",
    valid="True or False",
)
PER_IMAGE = HyperParam(
    "per_image",
    False,
    "a score per image and class, averaged; False: one score per class over the batch",
    valid="True or False",
)
INCLUDE_BACKGROUND = HyperParam(
    "include_background",
    True,
    "count class (channel) 0; False drops it after the softmax",
    valid="True or False",
)
CLASS_WEIGHT = HyperParam(
    "class_weight",
    None,
    "one weight per counted class (without the background when it is dropped)",
    valid="None or a (C,) tensor of weights >= 0",
)
IGNORE_INDEX = HyperParam(
    "ignore_index",
    None,
    "target value whose pixels count nowhere",
    valid="None or an int",
)
ABSENT = HyperParam(
    "absent",
    "smooth",
    "a class absent from the target: the smoothing rule decides (MONAI), or its loss is 0 (smp)",
    valid="'smooth' or 'zero'",
)
LOG_LOSS = HyperParam(
    "log_loss",
    False,
    "-log(score) instead of 1 - score (smp's log_loss)",
    valid="True or False",
)
TVERSKY_ALPHA = HyperParam("alpha", 0.5, "weight of the false positives", 0.1, 0.9, ge=0.0)
TVERSKY_BETA = HyperParam("beta", 0.5, "weight of the false negatives", 0.1, 0.9, ge=0.0)
#: Abraham & Khan's values: false negatives weigh 0.7, and their 1/gamma = 1/(4/3)
FT_ALPHA = HyperParam("alpha", 0.3, "weight of the false positives", 0.1, 0.9, ge=0.0)
FT_BETA = HyperParam("beta", 0.7, "weight of the false negatives", 0.1, 0.9, ge=0.0)
FT_GAMMA = HyperParam(
    "gamma", 0.75, "exponent of (1 - Tversky index); < 1 focuses on hard classes", 0.5, 3.0, gt=0.0
)
WEIGHT_TYPE = HyperParam(
    "weight_type",
    "square",
    "class weights from the target volume v: 1/v**2 (Sudre et al.), 1/v, or uniform",
    valid="'square', 'simple' or 'uniform'",
)
CLASSES = HyperParam(
    "classes",
    "present",
    "which classes are averaged: those present in the target, or all",
    valid="'present' or 'all'",
)
