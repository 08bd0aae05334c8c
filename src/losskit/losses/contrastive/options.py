"""The contrastive losses' options, declared once: the functionals validate with them, the
modules and the Keras twins are built from them, the catalog, ``losskit show``/``tune`` and the
docs print them. Torch-free.

``logit_scale`` multiplies the similarities where ``temperature`` divides them
(``logit_scale = 1 / temperature``): the cosine losses (InfoNCE, NT-Xent, SupCon) follow their
papers and peers with a temperature, CLIP and SigLIP with the scale their models learn. CLIP and
SigLIP start from different scales, so each has its own declaration.
"""

from losskit._options import HyperParam

TEMPERATURE = HyperParam(
    "temperature",
    0.1,
    "divides the cosine similarities: lower is sharper",
    0.02,
    1.0,
    log=True,
    gt=0.0,
)
NEGATIVE_MODE = HyperParam(
    "negative_mode",
    "unpaired",
    "negative_keys (M, D) shared by every query, or (N, M, D) per query",
    valid="'unpaired' or 'paired'",
)

#: CLIP's initial temperature is 0.07; open_clip learns log(scale) and caps the scale at 100
CLIP_LOGIT_SCALE = HyperParam(
    "logit_scale",
    1 / 0.07,
    "multiplies the similarities (a float, or a tensor that learns; CLIP starts at 1/0.07)",
    1.0,
    100.0,
    log=True,
    gt=0.0,
)
#: SigLIP's initialisation: t' = log 10 and b = -10, so every pair starts as a likely negative
SIGLIP_LOGIT_SCALE = HyperParam(
    "logit_scale",
    10.0,
    "multiplies the similarities (a float, or a tensor that learns; SigLIP starts at 10)",
    1.0,
    100.0,
    log=True,
    gt=0.0,
)
LOGIT_BIAS = HyperParam(
    "logit_bias",
    -10.0,
    "added to every logit (a float, or a tensor that learns; SigLIP starts at -10)",
    -20.0,
    0.0,
    valid="a finite number or a one-element tensor",
)

#: the bound applies to a number; None (automatic) is valid too, so callers check only numbers
BLOCK_SIZE = HyperParam(
    "block_size",
    None,
    "rows of the similarity matrix per block; None: the dense formula for small batches, "
    "blocks of about 4 Mi similarities above",
    valid=">= 1 or None",
)
GATHER = HyperParam(
    "gather",
    False,
    "under torch.distributed, the loss of the global batch (gradients flow back to every rank)",
    valid="True or False",
)
SIGLIP_GATHER = HyperParam(
    "gather",
    False,
    "under torch.distributed, the loss of the global batch: True all-gathers it, 'ring' passes "
    "text blocks around the ranks and never holds it",
    valid="True, False or 'ring'",
)
