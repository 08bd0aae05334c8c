"""The distillation losses' options, declared once: the functionals (the fused linear loss, the
one on ready logits and the vocab-parallel ones) validate with them, the modules read them, the
catalog, ``losskit show``/``tune`` and the docs print them. Torch-free.

``temperature`` is the divergence family's (knowledge distillation with a temperature,
``kl_div_with_logits``); ``ignore_index``, ``z_loss``, ``softcap`` and ``chunk_size`` are linear
cross-entropy's, with the same meaning on the student's logits.
"""

from dataclasses import replace

from losskit._options import HyperParam
from losskit.losses.divergence.options import TEMPERATURE as _KD_TEMPERATURE
from losskit.losses.linear_ce.options import CHUNK_SIZE as _LINEAR_CHUNK_SIZE
from losskit.losses.linear_ce.options import IGNORE_INDEX as _LINEAR_IGNORE_INDEX
from losskit.losses.linear_ce.options import SOFTCAP as _LINEAR_SOFTCAP
from losskit.losses.linear_ce.options import Z_LOSS as _LINEAR_Z_LOSS

#: the divergences, by name
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")

DIVERGENCE = HyperParam(
    "divergence",
    "forward_kl",
    "'forward_kl' KL(teacher || student) (Hinton et al.), 'reverse_kl' KL(student || teacher), "
    "'jsd' the generalised Jensen-Shannon divergence with beta",
    valid="'forward_kl', 'reverse_kl' or 'jsd'",
)
BETA = HyperParam(
    "beta",
    0.5,
    "jsd's weight of the teacher in the mixture M = beta P + (1 - beta) Q; beta = 0 is "
    "forward KL, 1 reverse KL (Liger-Kernel's and TRL's convention)",
    0.1,
    0.9,
    ge=0.0,
    le=1.0,
)
#: searched over [1, 4], the range used for language models (GKD, MiniLLM: 1; DistilBERT: 2).
#: In float32 the soft loss is as accurate as the dense formula's, an absolute error of about
#: T^2 times the rounding of a log-softmax (3e-7 at V = 9, 1e-6 at V = 32k): 1e-4 at T = 10,
#: beyond the catalog's float32 tolerance; kl_div_with_logits is exact at high T (a series).
TEMPERATURE = replace(
    _KD_TEMPERATURE, doc="softens both distributions; the divergence is multiplied by T^2", high=4.0
)
HARD_WEIGHT = HyperParam(
    "hard_weight",
    0.0,
    "weight of the student's cross-entropy on target (at temperature 1), added to the soft loss",
    0.0,
    1.0,
    ge=0.0,
)
IGNORE_INDEX = replace(_LINEAR_IGNORE_INDEX, doc="target value whose token counts nowhere")
Z_LOSS = replace(_LINEAR_Z_LOSS, doc="weight of lse(z)^2 on the student's logits (PaLM: 1e-4)")
SOFTCAP = replace(
    _LINEAR_SOFTCAP,
    doc="logit soft-cap c on both heads: z = c tanh(z / c) (Gemma 2: 30); None disables it",
)
CHUNK_SIZE = replace(
    _LINEAR_CHUNK_SIZE, doc="token rows per chunk; None picks d / 2 rows within [128, 512]"
)
