"""The ranking losses' options, declared once: the functionals validate with them, the modules
and the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the docs
print them. Torch-free."""

from losskit._options import HyperParam

MARGIN = HyperParam("margin", 0.0, "score gap a correct pair must clear", 0.0, 2.0, ge=0.0)
