"""losskit's losses for Keras 3: the same numbers as the PyTorch losses, on the TensorFlow, JAX
and PyTorch backends, with Keras's conventions.

>>> import losskit.keras as LK                                         # doctest: +SKIP
>>> model.compile(optimizer="adam", loss=LK.FocalLoss(gamma=2.0, from_logits=True))  # doctest: +SKIP

* arguments are ``(y_true, y_pred)`` (PyTorch: ``(input, target)``);
* ``from_logits=False`` (probabilities) by default wherever Keras has the option;
* classes on the last axis;
* reductions by Keras's names: ``"sum_over_batch_size"`` (default; PyTorch's ``"mean"``),
  ``"sum"``, ``None``/``"none"``, and ``"mean_with_sample_weight"`` (PyTorch's weighted mean
  ``sum(w l) / sum(w)``);
* ``sample_weight`` and Keras masks on ``y_pred`` (from ``Masking`` or ``mask_zero``) weight
  and exclude loss entries; a mean over nothing is 0.0, never NaN;
* every loss serialises (``get_config``/``from_config``, registered as ``losskit>Name``), so
  models compiled with them save and load.

Pointwise losses return the loss of every element (PyTorch's ``"none"`` shape), where Keras's
own losses average over the last axis first: the default reduction gives the same number
either way. ``losskit.keras.twins.TWINS`` says which catalog entry each loss mirrors; the tests
check every pair against golden vectors computed by the PyTorch losses.

Each loss lives with its family (``losskit/losses/<family>/keras.py``) and takes its options'
defaults and bounds from the family's ``options.py``, the declarations the PyTorch losses use.
Importing ``losskit`` never imports Keras; only ``losskit.keras`` does, and it never imports
torch.
"""

from __future__ import annotations

# the base first: it checks that Keras 3 is installed, with a message that says how to install it
from losskit._keras import LosskitLoss
from losskit.losses.classification.keras import BCELoss, CrossEntropyLoss
from losskit.losses.contrastive.keras import (
    ClipLoss,
    InfoNCELoss,
    NTXentLoss,
    SigLipLoss,
    SupConLoss,
)
from losskit.losses.divergence.keras import KLDivLoss
from losskit.losses.embedding.keras import CosineEmbeddingLoss
from losskit.losses.imbalance.keras import FocalLoss, SigmoidFocalLoss
from losskit.losses.margin.keras import HingeLoss
from losskit.losses.ranking.keras import BPRLoss
from losskit.losses.regression.keras import (
    HuberLoss,
    L1Loss,
    LogCoshLoss,
    MSELoss,
    QuantileLoss,
    SmoothL1Loss,
)
from losskit.losses.robust.keras import GeneralRobustLoss
from losskit.losses.segmentation.keras import DiceLoss, JaccardLoss, TverskyLoss
from losskit.losses.triplet.keras import TripletLoss

__all__ = [
    "BCELoss",
    "BPRLoss",
    "ClipLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralRobustLoss",
    "HingeLoss",
    "HuberLoss",
    "InfoNCELoss",
    "JaccardLoss",
    "KLDivLoss",
    "L1Loss",
    "LogCoshLoss",
    "LosskitLoss",
    "MSELoss",
    "NTXentLoss",
    "QuantileLoss",
    "SigLipLoss",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "SupConLoss",
    "TripletLoss",
    "TverskyLoss",
]
