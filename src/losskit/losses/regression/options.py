"""The regression losses' options, declared once: the functionals validate with them, the
modules and the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the
docs print them. Torch-free."""

from losskit._options import HyperParam

DELTA = HyperParam(
    "delta", 1.0, "residual where quadratic turns linear", 0.01, 10.0, log=True, gt=0.0
)
BETA = HyperParam(
    "beta", 1.0, "residual where quadratic turns linear", 0.01, 10.0, log=True, ge=0.0
)
Q = HyperParam("q", 0.5, "the quantile to estimate", 0.05, 0.95, gt=0.0, lt=1.0)
