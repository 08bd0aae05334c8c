"""losskit modules as skorch criteria: ``criterion=losskit.FocalLoss`` in a
``NeuralNetClassifier`` on imbalanced digits, ``criterion=losskit.HuberLoss`` in a
``NeuralNetRegressor`` on diabetes, and ``criterion__gamma`` tuned by scikit-learn's
``GridSearchCV``. Each trains for a few epochs and must beat a trivial baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import losskit

skorch = pytest.importorskip("skorch")
sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.dummy import DummyClassifier, DummyRegressor  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 32), nn.ReLU(), nn.Linear(32, outputs))


def _imbalanced_digits() -> tuple[np.ndarray, ...]:
    """Digits with a long tail: class k keeps 0.7**k of its images (0: all, 9: 4%)."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = rng.random(len(y)) < 0.7 ** y.astype(float)
    x = (x[keep] / 16.0).astype(np.float32)
    y = y[keep].astype(np.int64)
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)


def _classifier(**overrides) -> skorch.NeuralNetClassifier:
    torch.manual_seed(0)
    options = {
        "module": _mlp,
        "module__inputs": 64,
        "module__outputs": 10,
        "criterion": losskit.FocalLoss,
        "criterion__gamma": 2.0,
        "optimizer": torch.optim.Adam,
        "lr": 0.01,
        "max_epochs": 15,
        "batch_size": 64,
        "train_split": None,
        "verbose": 0,
        # the module returns logits: predict_proba should return probabilities
        "predict_nonlinearity": lambda logits: torch.softmax(logits, dim=-1),
    }
    return skorch.NeuralNetClassifier(**{**options, **overrides})


def test_focal_loss_classifier_on_imbalanced_digits():
    x_train, x_test, y_train, y_test = _imbalanced_digits()
    net = _classifier().fit(x_train, y_train)
    assert isinstance(net.criterion_, losskit.FocalLoss) and net.criterion_.gamma == 2.0
    proba = net.predict_proba(x_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    score = balanced_accuracy_score(y_test, net.predict(x_test))
    baseline = balanced_accuracy_score(
        y_test, DummyClassifier(strategy="most_frequent").fit(x_train, y_train).predict(x_test)
    )
    assert score > 0.8 > baseline + 0.5, (score, baseline)


def test_criterion_gamma_in_grid_search():
    x_train, x_test, y_train, y_test = _imbalanced_digits()
    search = GridSearchCV(
        _classifier(max_epochs=8),
        {"criterion__gamma": [0.0, 2.0]},
        cv=2,
        scoring="balanced_accuracy",
        refit=True,
    )
    search.fit(x_train, y_train)
    assert search.best_params_["criterion__gamma"] in (0.0, 2.0)
    assert {p["criterion__gamma"] for p in search.cv_results_["params"]} == {0.0, 2.0}
    assert search.best_estimator_.criterion_.gamma == search.best_params_["criterion__gamma"]
    assert balanced_accuracy_score(y_test, search.predict(x_test)) > 0.5


def test_huber_loss_regressor_on_diabetes():
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    scale_x, scale_y = StandardScaler().fit(x_train), StandardScaler().fit(y_train[:, None])
    # losskit never broadcasts: the (N, 1) output needs (N, 1) targets, as skorch advises
    fx = lambda a: scale_x.transform(a).astype(np.float32)  # noqa: E731
    fy = lambda a: scale_y.transform(a[:, None]).astype(np.float32)  # noqa: E731
    torch.manual_seed(0)
    net = skorch.NeuralNetRegressor(
        _mlp,
        module__inputs=10,
        module__outputs=1,
        criterion=losskit.HuberLoss,
        criterion__delta=1.0,
        optimizer=torch.optim.Adam,
        lr=0.003,
        max_epochs=15,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    net.fit(fx(x_train), fy(y_train))
    assert isinstance(net.criterion_, losskit.HuberLoss) and net.criterion_.delta == 1.0
    score = r2_score(fy(y_test), net.predict(fx(x_test)))
    baseline = r2_score(
        fy(y_test), DummyRegressor().fit(fx(x_train), fy(y_train)).predict(fx(x_test))
    )
    assert score > 0.25 > baseline, (score, baseline)

    with pytest.raises(losskit.LossInputError, match=r"target has shape"):
        net.partial_fit(fx(x_train), fy(y_train)[:, 0])  # (N,) targets: refused, not broadcast
