"""The robust losses' options, declared once: the functionals validate with them, the modules
and the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the docs
print them. Torch-free.

``alpha`` and ``scale`` may also be tensors (per element or per dimension); the bounds here are
those of a Python number, and the functionals apply the same ranges to a tensor's values."""

import math

from losskit._options import HyperParam

#: the largest alpha whose log Z the quadrature rules of :mod:`losskit.losses.robust.partition`
#: are verified for: the distribution's alpha ends there
ALPHA_MAX = 4.0

_TENSOR = "a float or a tensor broadcasting to input"

ALPHA = HyperParam(
    "alpha",
    1.0,
    "shape: lower is more robust (2 L2, 1 Charbonnier, 0 Cauchy, -inf Welsch)",
    -10.0,
    2.0,
    valid=f"real, < inf (-inf allowed); {_TENSOR}",
    lt=math.inf,
    allow_inf=True,
)
SCALE = HyperParam(
    "scale",
    1.0,
    "residual size where the loss turns robust",
    0.01,
    100.0,
    log=True,
    valid=f"> 0; {_TENSOR}",
    gt=0.0,
)

# the negative log-likelihood's: a density exists only for 0 <= alpha (and the quadrature
# stops at ALPHA_MAX), and its scale is the distribution's
NLL_ALPHA = HyperParam(
    "alpha",
    1.0,
    "shape of the distribution: 2 Gaussian, 0 Cauchy",
    0.0,
    2.0,
    valid=f"0 <= alpha <= {ALPHA_MAX:g}; {_TENSOR}",
    ge=0.0,
    le=ALPHA_MAX,
)
NLL_SCALE = HyperParam(
    "scale",
    1.0,
    "scale of the distribution (the standard deviation at alpha=2)",
    0.01,
    100.0,
    log=True,
    valid=f"> 0; {_TENSOR}",
    gt=0.0,
)

# AdaptiveRobustLoss's constructor options (it learns alpha and scale; no catalog entry)
ALPHA_RANGE = HyperParam(
    "alpha_range",
    (0.001, 1.999),
    "(low, high) range of the learned alpha; low == high fixes it",
    valid=f"a pair with 0 <= low <= high <= {ALPHA_MAX:g}",
)
SCALE_INIT = HyperParam(
    "scale_init",
    1.0,
    "initial scale; equal to scale_min fixes the scale there",
    valid="> 0 and >= scale_min",
    gt=0.0,
)
ALPHA_INIT = HyperParam(
    "alpha_init",
    None,
    "initial alpha; None: the middle of alpha_range",
    valid="inside alpha_range, or None",
)
SCALE_MIN = HyperParam(
    "scale_min", 1e-5, "the learned scale's lower bound (keeps log c finite)", ge=0.0
)
