"""The Keras losses as Keras uses them: serialisation, training in ``model.compile``, masks
from layers, and clear errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from keras_golden import golden_documents

pytestmark = pytest.mark.keras

CONFIGS = sorted(
    {
        (doc["keras"].rsplit(".", 1)[1], json.dumps(case["config"], sort_keys=True))
        for doc in golden_documents().values()
        for case in doc["cases"]
    }
)


@pytest.mark.parametrize(("cls_name", "config"), CONFIGS)
def test_config_round_trip(keras: Any, LK: Any, cls_name: str, config: str) -> None:
    cls = getattr(LK, cls_name)
    options = json.loads(config)
    loss = cls(**options, name="my_loss")
    saved = loss.get_config()
    assert {k: saved[k] for k in options} == options
    assert cls.from_config(saved).get_config() == saved
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls
    assert restored.get_config() == saved
    assert keras.saving.get_registered_name(cls) == f"losskit>{cls_name}"


def test_every_loss_is_exported_and_has_golden_vectors(LK: Any) -> None:
    from losskit.keras.twins import TWINS

    twinned = {twin.keras for twin in TWINS.values()}
    exported = set(LK.__all__) - {"LosskitLoss"}
    assert twinned == exported


def _three_classes(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.8).astype("int32")
    return x, y


def test_model_trains_with_focal_loss_and_saves(keras: Any, LK: Any, tmp_path: Any) -> None:
    x, y = _three_classes(256)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    loss = LK.FocalLoss(gamma=2.0, alpha=[0.25, 0.5, 1.0], from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] > 0.85

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, LK.FocalLoss)
    assert loaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5
    )


def test_model_trains_with_sigmoid_focal_loss_on_probabilities(keras: Any, LK: Any) -> None:
    x, y = _three_classes(256)
    y = (y > 0).astype("float32")[:, None]
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.add(keras.layers.Activation("sigmoid"))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=LK.SigmoidFocalLoss())
    losses = model.fit(x, y, epochs=8, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_mask_of_a_masking_layer_excludes_timesteps(keras: Any, LK: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    x[0, 3:] = 0.0  # padding: masked by the Masking layer
    x[2, 1:] = 0.0
    y = rng.integers(0, 4, size=(3, 5)).astype("int32")
    inputs = keras.Input((5, 2))
    outputs = keras.layers.Dense(4)(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(loss=LK.CrossEntropyLoss(from_logits=True))
    got = model.evaluate(x, y, batch_size=3, verbose=0)

    logits = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    kept = np.any(x != 0, axis=-1)
    np.testing.assert_allclose(got, nll[kept].mean(), rtol=1e-5)


def test_reductions_agree_with_keras_own_losses(keras: Any, LK: Any) -> None:
    """The default reduction gives Keras's numbers too, with or without sample weights."""
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=(6, 3)).astype("float32")
    y_pred = rng.normal(size=(6, 3)).astype("float32")
    weight = rng.uniform(size=(6,)).astype("float32")
    pairs = [
        (LK.MSELoss(), keras.losses.MeanSquaredError()),
        (LK.HuberLoss(delta=0.7), keras.losses.Huber(delta=0.7)),
        (LK.LogCoshLoss(), keras.losses.LogCosh()),
        (LK.L1Loss(), keras.losses.MeanAbsoluteError()),
    ]
    for ours, theirs in pairs:
        for sw in (None, weight):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(ours(y_true, y_pred, sw)),
                keras.ops.convert_to_numpy(theirs(y_true, y_pred, sw)),
                rtol=1e-5,
            )
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(y_pred))
    labels = rng.integers(0, 3, size=(6,))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(LK.CrossEntropyLoss()(labels, probs, weight)),
        keras.ops.convert_to_numpy(
            keras.losses.SparseCategoricalCrossentropy()(labels, probs, weight)
        ),
        rtol=1e-5,
    )


def test_mean_over_nothing_is_zero_with_finite_gradient(LK: Any, value_and_grad: Any) -> None:
    y_pred = np.ones((2, 3), np.float32)
    value, grad = value_and_grad(
        LK.MSELoss(reduction="mean_with_sample_weight"),
        np.zeros((2, 3), np.float32),
        y_pred,
        np.zeros((2,), np.float32),
    )
    assert value == 0.0
    assert np.all(grad == 0.0)
    value, grad = value_and_grad(
        LK.CrossEntropyLoss(), np.zeros(2, np.int32), y_pred, None, np.zeros(2, bool)
    )
    assert value == 0.0
    assert np.all(np.isfinite(grad))


def test_errors_name_the_loss_and_argument(LK: Any) -> None:
    from losskit import LossInputError

    x = np.zeros((4, 3), np.float32)
    cases = [
        (lambda: LK.HuberLoss(delta=0.0), r"HuberLoss: delta is 0.0; expected a number > 0"),
        (lambda: LK.MSELoss(reduction="avg"), r"MSELoss: reduction is 'avg'; expected one of"),
        (lambda: LK.MSELoss()(x, x[:, :2]), r"MSELoss: y_true has shape \(4, 3\); expected"),
        (lambda: LK.CrossEntropyLoss()(x[:2], x), r"CrossEntropyLoss: y_true has shape"),
        (lambda: LK.FocalLoss(alpha=[1.0, 2.0])(np.zeros(4, np.int32), x), r"alpha has 2 values"),
        (lambda: LK.FocalLoss(alpha="x"), r"FocalLoss: alpha is 'x'"),
        (lambda: LK.TripletLoss(reduction=None), r"TripletLoss: reduction is None"),
        (lambda: LK.TripletLoss(miner="semi_hard"), r"TripletLoss: miner is 'semi_hard'"),
        (lambda: LK.TripletLoss()(np.zeros(4), x, np.ones(4)), r"sample_weight was given"),
        (lambda: LK.CosineEmbeddingLoss()(np.ones(4), x), r"y_pred has shape \(4, 3\)"),
        (lambda: LK.BPRLoss()(x, x[:, :1]), r"BPRLoss: y_pred has shape \(4, 1\)"),
        (lambda: LK.QuantileLoss(q=1.0), r"QuantileLoss: q is 1.0; expected a number > 0"),
        (
            lambda: LK.CrossEntropyLoss()(np.zeros(4, np.int32), x, sample_weight=x),
            r"CrossEntropyLoss: sample_weight has shape \(4, 3\) after alignment; expected",
        ),
    ]
    for call, message in cases:
        with pytest.raises(LossInputError, match=message):
            call()


def test_class_weights_are_sample_weights(keras: Any, LK: Any) -> None:
    """torch's per-class ``weight`` is Keras's ``sample_weight = weight[y]`` with the
    ``"mean_with_sample_weight"`` reduction (the migration table's recipe)."""
    import torch

    import losskit.functional as LF

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(6,))
    weight = np.array([0.5, 1.0, 2.0, 0.25], "float32")
    expected = LF.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), weight=torch.from_numpy(weight)
    )
    ours = LK.CrossEntropyLoss(from_logits=True, reduction="mean_with_sample_weight")
    got = keras.ops.convert_to_numpy(ours(labels, logits, sample_weight=weight[labels]))
    np.testing.assert_allclose(got, expected.item(), rtol=1e-5)
    focal = LF.focal_loss(
        torch.from_numpy(logits), torch.from_numpy(labels), weight=torch.from_numpy(weight)
    )
    ours = LK.FocalLoss(from_logits=True, reduction="mean_with_sample_weight")
    got = keras.ops.convert_to_numpy(ours(labels, logits, sample_weight=weight[labels]))
    np.testing.assert_allclose(got, focal.item(), rtol=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_bce_label_smoothing_is_kerass(
    keras: Any, LK: Any, from_logits: bool, label_smoothing: float
) -> None:
    """``BCELoss(label_smoothing=eps)`` gives Keras's ``BinaryCrossentropy`` numbers
    (targets ``y (1 - eps) + eps / 2``), with and without sample weights."""
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 2, size=(6, 3)).astype("float32")
    logits = rng.normal(size=(6, 3)).astype("float32") * 2
    y_pred = logits if from_logits else 1 / (1 + np.exp(-logits))
    weight = rng.uniform(size=(6,)).astype("float32")
    ours = LK.BCELoss(from_logits=from_logits, label_smoothing=label_smoothing)
    theirs = keras.losses.BinaryCrossentropy(
        from_logits=from_logits, label_smoothing=label_smoothing
    )
    for sw in (None, weight):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(y_true, y_pred, sw)),
            keras.ops.convert_to_numpy(theirs(y_true, y_pred, sw)),
            rtol=1e-5,
        )
    restored = LK.BCELoss.from_config(ours.get_config())
    assert restored.label_smoothing == label_smoothing


def test_bce_label_smoothing_is_checked(LK: Any) -> None:
    from losskit import LossInputError

    with pytest.raises(LossInputError, match=r"BCELoss: label_smoothing is 1.5; expected"):
        LK.BCELoss(label_smoothing=1.5)
