"""The Keras adapter's base: what every losskit Keras loss shares (Keras's call convention, masks
and sample weights, one reduction rule that gives the numbers of the PyTorch losses) and knows
no loss. Each family's Keras twin lives in ``losskit/losses/<family>/keras.py``; the face
``losskit.keras`` re-exports them. Imports Keras, :mod:`losskit._errors` and nothing of torch.

A loss's ``_losses(y_true, y_pred)`` returns its unreduced values (elementwise for the pointwise
losses, as the PyTorch ``reduction="none"`` does) and, optionally, a mask of the entries that
count (``ignore_class``). :meth:`LosskitLoss.__call__` merges that mask with the Keras mask of
``y_pred`` and with ``sample_weight``, broadcast to the loss's shape, and reduces:

* ``"sum_over_batch_size"`` (Keras's default) and ``"mean"``: ``sum(w * l) / n``, ``n`` the
  number of loss entries that are not masked (Keras's rule; PyTorch's ``"mean"`` when there are
  no weights);
* ``"mean_with_sample_weight"``: ``sum(w * l) / sum(w)``, PyTorch's weighted mean;
* ``"sum"``: ``sum(w * l)``;
* ``None`` / ``"none"``: ``w * l``, unreduced (masked entries 0).

A mean over nothing (every entry masked or weighted 0) is 0.0 with a finite gradient, never
NaN.
"""

from __future__ import annotations

import math
from typing import Any

try:
    import keras
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "losskit.keras needs Keras 3 and a backend: pip install 'losskit[keras]'"
    ) from error

_KERAS_VERSION = getattr(keras, "__version__", None)  # None: a stray directory named keras
if _KERAS_VERSION is None or not _KERAS_VERSION.startswith("3."):  # pragma: no cover
    raise ImportError(
        f"losskit.keras needs Keras 3 (found {_KERAS_VERSION or 'no Keras'}): "
        "pip install 'losskit[keras]'"
    )

from keras import ops  # noqa: E402

from losskit._errors import fail, shape_str  # noqa: E402

try:  # Keras 3 keeps masks of JAX arrays outside the array; it has no public accessor
    from keras.src.backend import get_keras_mask
except ImportError:  # pragma: no cover - older layouts keep the mask on the tensor

    def get_keras_mask(x: Any) -> Any:
        return getattr(x, "_keras_mask", None)


try:  # tf.distribute divides a replica's mean by the number of replicas, as Keras does
    from keras.src.losses.loss import scale_loss_for_distribution as _scale_for_replicas
except ImportError:  # pragma: no cover

    def _scale_for_replicas(value: Any) -> Any:
        return value


KERAS_REDUCTIONS: tuple[str | None, ...] = (
    "sum_over_batch_size",
    "mean",
    "mean_with_sample_weight",
    "sum",
    "none",
    None,
)

#: logs of probabilities are clamped here, as torch's ``binary_cross_entropy`` does, so that a
#: probability of exactly 0 gives a finite loss and gradient
LOG_CLAMP = -100.0


def known_shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def is_floating(x: Any) -> bool:
    return "float" in str(keras.backend.standardize_dtype(x.dtype))


def align_ranks(loss: str, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Keras's rule for targets that differ from the predictions by a trailing axis of size 1
    (``(N,)`` labels for an ``(N, 1)`` output): squeeze that axis. Then the static shapes must
    agree: nothing else is broadcast (an ``(N, 1)`` against an ``(N,)`` never becomes ``N x N``)."""
    t, p = len(y_true.shape), len(y_pred.shape)
    if t == p + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    elif p == t + 1 and y_pred.shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, axis=-1)
    check_same_shape(loss, "y_true", y_true, y_pred, "y_pred")
    return y_true, y_pred


def shapes_agree(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    """Whether two static shapes can be the same (an unknown axis agrees with anything)."""
    return len(a) == len(b) and all(
        i is None or j is None or i == j for i, j in zip(a, b, strict=True)
    )


def check_same_shape(loss: str, name: str, x: Any, like: Any, like_name: str) -> None:
    a, b = known_shape(x), known_shape(like)
    if not shapes_agree(a, b):
        fail(
            loss,
            name,
            f"has shape {shape_str(a)}",
            f"the shape of {like_name}, {shape_str(b)} (losskit never broadcasts)",
        )


def log_probability(p: Any) -> Any:
    """``log(p)`` clamped at :data:`LOG_CLAMP`."""
    return ops.maximum(ops.log(p), LOG_CLAMP)


def log_one_minus(p: Any) -> Any:
    """``log(1 - p)`` clamped at :data:`LOG_CLAMP`."""
    return ops.maximum(ops.log1p(-p), LOG_CLAMP)


def safe_divide(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, or ``numerator`` (then 0) where the denominator is 0; the
    gradient stays finite (``divide_no_nan`` sends ``0 * inf`` into it on JAX)."""
    return numerator / ops.where(denominator == 0, ops.ones_like(denominator), denominator)


def _to_rank(loss: str, name: str, weight: Any, like: Any) -> Any:
    """``sample_weight`` or a mask brought to the loss's rank: a trailing axis of size 1
    squeezed, missing trailing axes added, then broadcast to the loss's shape."""
    while len(weight.shape) > len(like.shape) and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, axis=-1)
    while len(weight.shape) < len(like.shape):
        weight = ops.expand_dims(weight, axis=-1)
    shape, target = known_shape(weight), known_shape(like)
    if len(shape) != len(target) or any(
        i not in (1, None) and j is not None and i != j for i, j in zip(shape, target, strict=True)
    ):
        fail(
            loss,
            name,
            f"has shape {shape_str(shape)} after alignment",
            f"a shape that broadcasts to the loss's {shape_str(target)}: one value per sample "
            "(leading axes) or per loss entry",
        )
    return ops.broadcast_to(weight, ops.shape(like))


def reduce_losses(
    loss: str, losses: Any, sample_weight: Any, mask: Any, reduction: str | None, dtype: str
) -> Any:
    """The reduction rule of the module docstring."""
    losses = ops.cast(losses, dtype)
    weight = None
    if sample_weight is not None:
        sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
        weight = _to_rank(loss, "sample_weight", sample_weight, losses)
    counted = None
    if mask is not None:
        counted = _to_rank(loss, "mask", ops.cast(mask, dtype), losses)
        weight = counted if weight is None else weight * counted
    if weight is not None:
        # where, not a product: a masked entry may hold inf or NaN (e.g. an ignored class)
        losses = ops.where(weight != 0, losses * weight, ops.zeros_like(losses))
    if reduction in (None, "none") or len(losses.shape) == 0:
        return losses
    total = ops.sum(losses)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weight is not None:
        denominator = ops.sum(weight)
    elif counted is not None:
        denominator = ops.sum(counted)
    else:
        denominator = _element_count(losses, dtype)
    return _scale_for_replicas(safe_divide(total, denominator))


def _element_count(x: Any, dtype: str) -> Any:
    shape = known_shape(x)
    if None not in shape:
        return ops.convert_to_tensor(float(math.prod(shape)), dtype=dtype)
    return ops.sum(ops.ones_like(x))  # a dynamic shape (a TensorFlow graph with unknown axes)


class LosskitLoss(keras.losses.Loss):
    """Base of the losskit Keras losses: ``loss(y_true, y_pred, sample_weight=None)``.

    Subclasses implement ``_losses(y_true, y_pred) -> (losses, counted_mask_or_None)`` and list
    their options in ``_options`` (names of attributes, saved by :meth:`get_config`).
    ``call`` is Keras's hook and returns the unreduced losses (zero where not counted).
    """

    _options: tuple[str, ...] = ()
    #: whether ``y_true`` holds integers (class indices, labels) that must not be cast to float
    _integer_target: bool = False

    def __init__(
        self,
        *,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        if reduction not in KERAS_REDUCTIONS:
            fail(
                f"losskit.keras.{type(self).__name__}",
                "reduction",
                f"is {reduction!r}",
                f"one of {', '.join(map(repr, KERAS_REDUCTIONS))}",
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    @property
    def loss_name(self) -> str:
        return f"losskit.keras.{type(self).__name__}"

    def _convert(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true)
        if not (self._integer_target and not is_floating(y_true)):
            y_true = ops.cast(y_true, self.dtype)
        return y_true, y_pred

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        in_mask = get_keras_mask(y_pred)
        with keras.name_scope(self.name):
            y_true, y_pred = self._convert(y_true, y_pred)
            losses, counted = self._losses(y_true, y_pred)
            if in_mask is not None:
                in_mask = ops.cast(in_mask, "bool")
                if counted is None:
                    counted = in_mask
                else:
                    in_mask = _to_rank(self.loss_name, "mask", ops.cast(in_mask, "int32"), counted)
                    counted = ops.logical_and(counted, ops.cast(in_mask, "bool"))
            return reduce_losses(
                self.loss_name, losses, sample_weight, counted, self.reduction, self.dtype
            )

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = self._convert(y_true, y_pred)
        losses, counted = self._losses(y_true, y_pred)
        if counted is None:
            return losses
        return ops.where(counted, losses, ops.zeros_like(losses))

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for option in self._options:
            value = getattr(self, option)
            config[option] = list(value) if isinstance(value, tuple) else value
        return config


class PointwiseLoss(LosskitLoss):
    """An elementwise loss: ``y_true`` and ``y_pred`` of one shape (after :func:`align_ranks`),
    one loss per element. Subclasses implement ``_elementwise(y_true, y_pred)``."""

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y_true, y_pred = align_ranks(self.loss_name, y_true, y_pred)
        return self._elementwise(y_true, y_pred), None

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        raise NotImplementedError


def check_bool(loss: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(loss, name, f"is {value!r}", "True or False")
    return value
