"""Bayesian Personalised Ranking for Keras. Its PyTorch form takes the positive's and the
negatives' scores apart; in Keras everything the model predicts is ``y_pred``: ``(N, 1 + K)``,
the positive item's score then ``K`` negatives' scores. ``y_true`` is not used (pass zeros:
Keras's ``fit`` wants a target).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import fail, shape_str
from losskit._keras import LosskitLoss, known_shape

__all__ = ["BPRLoss"]


@keras.saving.register_keras_serializable(package="losskit")
class BPRLoss(LosskitLoss):
    r"""Bayesian Personalised Ranking, :math:`-\log\sigma(s^+ - s^-_k)` for each of the ``K``
    negatives of each positive, computed with ``softplus`` (finite for any score gap).

    ``y_pred`` ``(..., 1 + K)``: the positive's score, then the negatives'; the losses have shape
    ``(..., K)`` (torch's ``(N,)`` for ``K = 1`` is ``[..., 0]`` of these). ``y_true`` is ignored.
    A ``sample_weight`` of shape ``(N,)`` weights the ``K`` pairs of a positive alike.
    """

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        shape = known_shape(y_pred)
        if not shape or (shape[-1] is not None and shape[-1] < 2):
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(shape)}",
                "(..., 1 + K): a positive score then K >= 1 negative scores",
            )
        return ops.softplus(y_pred[..., 1:] - y_pred[..., :1]), None
