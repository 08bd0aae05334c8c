"""The cosine embedding loss for Keras, with the options of
:mod:`losskit.losses.embedding.options` (the same defaults and bounds as the PyTorch loss).

Its PyTorch form takes two embeddings; in Keras everything the model predicts is ``y_pred``:
``(N, 2, D)``, the two embeddings of each pair stacked on axis -2, and ``y_true`` ``(N,)``
labels +1 (similar) / -1 (dissimilar).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import fail, shape_str
from losskit._keras import LosskitLoss, known_shape, shapes_agree
from losskit.losses.embedding.options import MARGIN

__all__ = ["CosineEmbeddingLoss"]

#: torch's ``cosine_embedding_loss`` adds this to both squared norms
_COSINE_EPS = 1e-12


@keras.saving.register_keras_serializable(package="losskit")
class CosineEmbeddingLoss(LosskitLoss):
    r"""Cosine embedding loss per pair: :math:`1 - \cos(x_1, x_2)` for ``y_true = 1``,
    :math:`\max(0, \cos(x_1, x_2) - m)` otherwise, with torch's cosine
    :math:`x_1 \cdot x_2 / \sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}`.

    ``y_pred`` ``(N, 2, D)`` (``x1 = y_pred[:, 0]``, ``x2 = y_pred[:, 1]``), ``y_true``
    ``(N,)``: a positive label is +1, anything else -1. ``margin`` in [-1, 1].
    """

    _options = ("margin",)

    def __init__(self, margin: float = MARGIN.default, **kwargs: Any) -> None:
        self.margin = MARGIN.check("losskit.keras.CosineEmbeddingLoss", margin)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        shape = known_shape(y_pred)
        if len(shape) < 2 or shape[-2] not in (2, None):
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(shape)}",
                "(N, 2, D): the two embeddings of each pair on axis -2",
            )
        if len(y_true.shape) == len(shape) - 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        if not shapes_agree(known_shape(y_true), shape[:-2]):
            fail(
                self.loss_name,
                "y_true",
                f"has shape {shape_str(known_shape(y_true))}",
                f"{shape_str(shape[:-2])}, one label per pair of y_pred {shape_str(shape)}",
            )
        x1, x2 = y_pred[..., 0, :], y_pred[..., 1, :]
        dot = ops.sum(x1 * x2, axis=-1)
        norms = (ops.sum(ops.square(x1), axis=-1) + _COSINE_EPS) * (
            ops.sum(ops.square(x2), axis=-1) + _COSINE_EPS
        )
        cos = dot / ops.sqrt(norms)
        return ops.where(y_true > 0, 1.0 - cos, ops.relu(cos - self.margin)), None
