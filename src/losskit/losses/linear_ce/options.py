"""The linear cross-entropy's options, declared once: the functionals (the chunked loss and the
vocab-parallel ones) validate with them, the module and the Keras twin read them, the catalog,
``losskit show``/``tune`` and the docs print them. Torch-free.

``ignore_index`` and ``label_smoothing`` are cross-entropy's (classification's) options: their
defaults and valid values come from there. Label smoothing over a vocabulary of ~100k tokens is
searched over a narrower range than over a handful of classes.
"""

from dataclasses import replace

from losskit._options import HyperParam
from losskit.losses.classification.options import IGNORE_INDEX as _CLASS_IGNORE_INDEX
from losskit.losses.classification.options import LABEL_SMOOTHING as _CLASS_LABEL_SMOOTHING

IGNORE_INDEX = replace(_CLASS_IGNORE_INDEX, doc="target value that does not count (padding)")
LABEL_SMOOTHING = replace(
    _CLASS_LABEL_SMOOTHING, doc="mass spread uniformly over the vocabulary", high=0.2
)
Z_LOSS = HyperParam(
    "z_loss",
    0.0,
    "weight of lse(z)^2, keeps the softmax normaliser near 1 (PaLM: 1e-4)",
    1e-5,
    1e-3,
    log=True,
    ge=0.0,
)
#: the bound applies to a number; None (no cap) is valid too, so callers check only numbers
SOFTCAP = HyperParam(
    "softcap",
    None,
    "logit soft-cap c: z = c tanh(z / c) (Gemma 2: 30); None disables it",
    10.0,
    50.0,
    valid="> 0 or None",
    gt=0.0,
)
CHUNK_SIZE = HyperParam(
    "chunk_size",
    None,
    "token rows per chunk; None picks d / 2 rows within [128, 512]",
    valid=">= 1 or None",
)
