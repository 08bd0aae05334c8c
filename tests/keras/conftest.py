"""The Keras adapter's tests. They import Keras only inside fixtures and tests (never at
collection), carry the ``keras`` marker, and run once per backend, each in its own process:
``KERAS_BACKEND=jax pytest -m keras tests/keras`` and the same with ``tensorflow`` (``make test``
does both). Without Keras installed they skip."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest


@pytest.fixture(scope="session")
def keras() -> Any:
    """Keras, with whichever backend ``KERAS_BACKEND`` names; skips if Keras is absent."""
    # find_spec, not importorskip: with tests/ on sys.path, this very directory would import
    # as a namespace package named keras
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        pytest.skip("Keras is not installed: pip install 'losskit[keras]'")
    import keras as module

    module.utils.set_random_seed(0)
    return module


@pytest.fixture(scope="session")
def LK(keras: Any) -> Any:
    import losskit.keras

    return losskit.keras


@pytest.fixture(scope="session")
def value_and_grad(keras: Any) -> Any:
    """``f(loss, y_true, y_pred, sample_weight=None, mask=None) -> (value, grad)``: the loss on
    the current backend and the gradient of its sum in ``y_pred`` (``mask`` is attached to
    ``y_pred`` as its Keras mask, as a ``Masking`` layer would), both as numpy arrays."""
    from keras.src.backend import set_keras_mask  # tests only: Keras has no public setter

    backend = keras.backend.backend()

    def call(loss: Any, y_true: Any, y_pred: Any, sample_weight: Any, mask: Any) -> Any:
        if mask is not None:
            set_keras_mask(y_pred, keras.ops.convert_to_tensor(mask))
        return loss(y_true, y_pred, sample_weight)

    def run(loss, y_true, y_pred, sample_weight=None, mask=None):
        if backend == "jax":
            import jax

            def total(x):
                out = call(loss, y_true, x, sample_weight, mask)
                return jax.numpy.sum(out), out

            (_, out), grad = jax.value_and_grad(total, has_aux=True)(jax.numpy.asarray(y_pred))
        elif backend == "tensorflow":
            import tensorflow as tf

            x = tf.constant(y_pred)
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = call(loss, y_true, x, sample_weight, mask)
                summed = tf.reduce_sum(out)
            grad = tape.gradient(summed, x)
            grad = tf.zeros_like(x) if grad is None else grad
        elif backend == "torch":
            import torch

            x = torch.tensor(y_pred, requires_grad=True)
            out = call(loss, y_true, x, sample_weight, mask)
            (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
            grad = torch.zeros_like(x) if grad is None else grad
            out = out.detach()
        else:  # pragma: no cover
            pytest.skip(f"no gradient helper for the {backend} backend")
        return keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(grad)

    return run
