"""The margin (hinge) losses' options, declared once: the functionals validate with them, the
modules are built from them, the catalog, ``losskit show``/``tune``, the docs and the Keras twins
print them. Class weights are cross-entropy's. Torch-free."""

from losskit._options import HyperParam
from losskit.losses.classification.options import WEIGHT

__all__ = ["MARGIN", "SQUARED", "WEIGHT", "P"]

MARGIN = HyperParam(
    "margin", 1.0, "score margin a correct prediction must clear", 0.1, 5.0, log=True, ge=0.0
)
SQUARED = HyperParam(
    "squared", False, "square the hinge (smooth at the margin)", valid="True or False"
)
P = HyperParam("p", 1, "power of each hinge term", valid="1 or 2")
