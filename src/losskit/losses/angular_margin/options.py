"""The angular-margin losses' options, declared once: the functionals validate with them, the
modules read them, the catalog, ``losskit show``/``tune`` and the docs print them. Torch-free.

``ignore_index`` and ``chunk_size`` are the chunked linear cross-entropy's, which these losses
run on. ArcFace's margin is an angle in radians, as in the paper (pytorch-metric-learning takes
degrees: its default 28.6 is 0.499 rad); the bound below it keeps the easy margin's branch,
``theta + m`` for ``theta < pi/2``, inside ``[0, pi]``, and refuses a margin given in degrees.
"""

import math
from dataclasses import replace

from losskit._options import HyperParam
from losskit.losses.linear_ce.options import CHUNK_SIZE as _LINEAR_CHUNK_SIZE
from losskit.losses.linear_ce.options import IGNORE_INDEX as _LINEAR_IGNORE_INDEX

__all__ = ["ARC_MARGIN", "CHUNK_SIZE", "COS_MARGIN", "EASY_MARGIN", "IGNORE_INDEX", "SCALE"]

SCALE = HyperParam(
    "scale",
    64.0,
    "s, the logits' scale: s cos(theta) (the radius of the hypersphere)",
    8.0,
    128.0,
    log=True,
    gt=0.0,
)
COS_MARGIN = HyperParam(
    "margin", 0.35, "m taken off the true class's cosine: s (cos theta_y - m)", 0.1, 0.5, ge=0.0
)
ARC_MARGIN = HyperParam(
    "margin",
    0.5,
    "m added to the true class's angle, in radians: s cos(theta_y + m)",
    0.2,
    0.8,
    ge=0.0,
    lt=math.pi / 2,
)
EASY_MARGIN = HyperParam(
    "easy_margin",
    False,
    "add the margin only where theta_y < pi/2 (insightface); else cos(theta_y + m) up to "
    "pi - m, then cos theta_y - m sin m (the paper's code, pytorch-metric-learning)",
    valid="True or False",
)
IGNORE_INDEX = replace(_LINEAR_IGNORE_INDEX, doc="label that does not count")
CHUNK_SIZE = replace(
    _LINEAR_CHUNK_SIZE, doc="embedding rows per chunk; None picks d / 2 rows within [128, 512]"
)
