"""The triplet losses' options, declared once: the functionals validate with them, the modules
and the Keras twins read them, the catalog, ``losskit show``/``tune`` and the docs print them.
Torch-free.

The explicit form (``triplet_margin_loss``) keeps torch's defaults and bounds (``margin=1.0``,
``> 0``); the label form (``triplet_loss``) follows FaceNet and pytorch-metric-learning
(``margin=0.2``, ``>= 0``: zero with ``soft_margin`` is the soft-margin loss), so the two
margins and the two distances are separate options.
"""

from losskit._options import HyperParam

_DISTANCES = "'euclidean', 'squared_euclidean', 'cosine'"

# ------------------------------------------------------------------------- the explicit form

EXPLICIT_MARGIN = HyperParam(
    "margin", 1.0, "required gap between the two distances", 0.05, 2.0, log=True, gt=0.0
)
P = HyperParam("p", 2.0, "norm degree of the default distance", gt=0.0)
EPS = HyperParam("eps", 1e-6, "added to the difference before the norm", ge=0.0)
SWAP = HyperParam(
    "swap", False, "use min(d(a, n), d(p, n)) as the negative distance", valid="True or False"
)
EXPLICIT_DISTANCE = HyperParam(
    "distance",
    None,
    "None (torch's p-norm), 'euclidean', 'squared_euclidean', 'cosine' or a callable",
    valid=f"None, {_DISTANCES} or a callable (x1, x2) -> (...)",
)

# ---------------------------------------------------------------------------- the label form

MARGIN = HyperParam(
    "margin", 0.2, "required gap between the two distances", 0.05, 2.0, log=True, ge=0.0
)
DISTANCE = HyperParam(
    "distance",
    "euclidean",
    "'euclidean', 'squared_euclidean', 'cosine' or a callable (x, y) -> (N, M)",
    valid=f"{_DISTANCES} or a callable (x, y) -> (N, M)",
)
MINER = HyperParam(
    "miner",
    "batch_hard",
    "'batch_hard', 'batch_all', 'semi_hard' or a callable (dist, labels) -> (a, p, n)",
    valid="'batch_hard', 'batch_all', 'semi_hard' or a callable (dist, labels) -> (a, p, n)",
)
SOFT_MARGIN = HyperParam(
    "soft_margin", False, "softplus instead of the hinge", valid="True or False"
)
