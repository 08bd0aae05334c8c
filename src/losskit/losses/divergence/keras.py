"""The KL divergence for Keras, in Keras's argument order: ``(y_true, y_pred)``, both
probabilities (``from_logits=True``: ``y_pred`` holds logits)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._keras import LosskitLoss, align_ranks, check_bool, log_probability

__all__ = ["KLDivLoss"]


@keras.saving.register_keras_serializable(package="losskit")
class KLDivLoss(LosskitLoss):
    r"""Kullback-Leibler divergence :math:`D_{KL}(P \| Q) = \sum_c p_c (\log p_c - \log q_c)`
    per sample, ``y_true`` :math:`P` and ``y_pred`` :math:`Q` (classes on the last axis).

    Keras's argument order and inputs: both are probabilities (torch's ``kl_div`` takes
    ``log Q`` first). ``from_logits=True``: ``y_pred`` holds logits (``log_softmax`` applied).
    Terms with :math:`p = 0` are 0; :math:`\log q` is clamped at -100. The default
    ``"sum_over_batch_size"`` of these per-sample values is torch's ``"batchmean"``.
    """

    _options = ("from_logits",)

    def __init__(self, from_logits: bool = False, **kwargs: Any) -> None:
        self.from_logits = check_bool("losskit.keras.KLDivLoss", "from_logits", from_logits)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        p, q = align_ranks(self.loss_name, y_true, y_pred)
        log_q = ops.log_softmax(q, axis=-1) if self.from_logits else log_probability(q)
        positive = p > 0
        log_p = ops.log(ops.where(positive, p, ops.ones_like(p)))
        terms = ops.where(positive, p * (log_p - log_q), ops.zeros_like(p))
        return ops.sum(terms, axis=-1), None
