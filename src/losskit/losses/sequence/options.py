"""The sequence losses' options, declared once: the functionals validate with them, the modules
are built from them, the catalog, ``losskit show``/``tune`` and the docs print them.
Torch-free."""

from losskit._options import HyperParam

BLANK = HyperParam("blank", 0, "index of the blank class", valid="an int in [0, C)")
ZERO_INFINITY = HyperParam(
    "zero_infinity",
    False,
    "count targets longer than their input as 0, not an error",
    valid="True or False",
)
