"""The classification losses' options, declared once: the functionals validate with them, the
modules are built from them, the catalog, ``losskit show``/``tune``, the docs and the Keras twins
print them. Shared with the families that take the same options (imbalance, margin). Torch-free."""

from losskit._options import HyperParam

WEIGHT = HyperParam(
    "weight",
    None,
    "(C,) class weights (they divide the mean); see class_balanced_weights",
    valid="None or a (C,) tensor of weights >= 0",
)
IGNORE_INDEX = HyperParam("ignore_index", -100, "target value that does not count", valid="any int")
LABEL_SMOOTHING = HyperParam(
    "label_smoothing", 0.0, "mass spread uniformly over classes", 0.0, 0.3, ge=0.0, le=1.0
)
#: the bound applies to a number; a tensor is checked elementwise (>= 0) by the functional
POS_WEIGHT = HyperParam(
    "pos_weight",
    None,
    "weight of the positive term of the cross-entropy, per label",
    valid="None, a number >= 0, or a (C,) tensor >= 0 (one per label)",
    ge=0.0,
)
