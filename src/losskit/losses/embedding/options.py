"""The embedding losses' options, declared once: the functionals validate with them, the
modules and the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the
docs print them. Torch-free."""

from losskit._options import HyperParam

# a cosine, so unlike the ranking margin (a score gap) it lives in [-1, 1]
MARGIN = HyperParam(
    "margin",
    0.0,
    "cosine below which dissimilar pairs cost nothing",
    -0.5,
    0.9,
    ge=-1.0,
    le=1.0,
)
