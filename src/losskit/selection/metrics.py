"""Held-out metrics of each task: scikit-learn's for regression and classification, the
retrieval metrics of metric learning (recall@1, MAP@R) for embeddings, and the overlap of
predicted and true masks (Dice, IoU of the foreground classes) for segmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "METRICS",
    "Metric",
    "curve_metric",
    "embedding_metrics",
    "metric",
    "primary_metric",
    "segmentation_metrics",
    "task_metrics",
]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        """Optuna's name for the direction."""
        return "maximize" if self.higher_is_better else "minimize"


#: per task, the metrics in display order; the first named in ``PRIMARY`` ranks the table
METRICS: dict[str, tuple[Metric, ...]] = {
    "regression": (
        Metric("mae", "MAE", False),
        Metric("rmse", "RMSE", False),
        Metric("median_ae", "median AE", False),
    ),
    "classification": (
        Metric("accuracy", "accuracy", True),
        Metric("macro_f1", "macro-F1", True),
        Metric("balanced_accuracy", "balanced acc.", True),
    ),
    "embedding": (
        Metric("recall_at_1", "recall@1", True),
        Metric("map_at_r", "MAP@R", True),
    ),
    "segmentation": (
        Metric("dice", "Dice", True),
        Metric("iou", "IoU", True),
    ),
}
#: what ranks a task's candidates by default: MAE is what a robust loss should improve, macro-F1
#: is not fooled by an imbalanced test set, MAP@R rewards the whole ranking, not one neighbour,
#: Dice is what the overlap losses are named after and what segmentation papers report
PRIMARY: dict[str, str] = {
    "regression": "mae",
    "classification": "macro_f1",
    "embedding": "map_at_r",
    "segmentation": "dice",
}


def metric(task: str, key: str) -> Metric:
    for m in METRICS[task]:
        if m.key == key or m.label == key:
            return m
    known = ", ".join(m.key for m in METRICS[task])
    raise ValueError(f"--rank-by is {key!r}; expected one of {known} for {task}")


def primary_metric(task: str) -> Metric:
    return metric(task, PRIMARY[task])


def task_metrics(task: str, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The task's metrics of ``prediction`` (regression values or class indices; for
    embeddings, the embedding matrix; for segmentation, the predicted masks) against
    ``target``."""
    if task == "embedding":
        return embedding_metrics(prediction, target)
    if task == "segmentation":
        return segmentation_metrics(target, prediction)
    if task == "regression":
        from sklearn.metrics import (
            mean_absolute_error,
            median_absolute_error,
            root_mean_squared_error,
        )

        if not np.isfinite(prediction).all():
            return {m.key: float("nan") for m in METRICS[task]}
        return {
            "mae": float(mean_absolute_error(target, prediction)),
            "rmse": float(root_mean_squared_error(target, prediction)),
            "median_ae": float(median_absolute_error(target, prediction)),
        }
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(target, prediction)),
        "macro_f1": float(f1_score(target, prediction, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(target, prediction)),
    }


def curve_metric(task: str, key: str, target: np.ndarray, prediction: np.ndarray) -> float:
    """One metric, computed directly with numpy: the per-epoch held-out curves call this
    (scikit-learn's input validation costs more than a small model's epoch); it agrees with
    :func:`task_metrics` (tested)."""
    if task == "embedding":
        return embedding_metrics(prediction, target)[key]
    if task == "segmentation":
        return segmentation_metrics(target, prediction)[key]
    if task == "regression":
        error = np.abs(prediction - target)
        if key == "mae":
            return float(error.mean())
        if key == "rmse":
            return float(np.sqrt((error**2).mean()))
        return float(np.median(error))
    if key == "accuracy":
        return float((prediction == target).mean())
    classes = np.union1d(target, prediction)
    hits = np.array([((prediction == c) & (target == c)).sum() for c in classes], dtype=float)
    actual = np.array([(target == c).sum() for c in classes], dtype=float)
    if key == "balanced_accuracy":
        present = actual > 0
        return float((hits[present] / actual[present]).mean())
    predicted = np.array([(prediction == c).sum() for c in classes], dtype=float)
    denominator = actual + predicted
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    return float(f1.mean())


def embedding_metrics(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out retrieval among the given rows, by Euclidean distance (ties in distance
    are broken arbitrarily but repeatably).

    recall@1: the share of queries whose nearest other row has their class. MAP@R (Musgrave et
    al., "A Metric Learning Reality Check", 2020): for a query with ``R`` other rows of its
    class, the mean over ``i = 1..R`` of the precision at ``i`` counted only where the ``i``-th
    neighbour has the class; 1 when the ``R`` nearest rows are exactly its class.
    """
    if not np.isfinite(embeddings).all():
        return {"recall_at_1": float("nan"), "map_at_r": float("nan")}
    import torch

    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels))
    n = len(y)
    relevant = (y[:, None] == y[None, :]).sum(1) - 1
    # only the R nearest neighbours of each query count: a top-k of the largest R, not a sort
    k = max(1, min(int(relevant.max()), n - 1))
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(math.inf)
    nearest = dist.topk(k, dim=1, largest=False, sorted=True).indices
    same = y[nearest] == y[:, None]
    recall_at_1 = float(same[:, 0].double().mean())
    rank = torch.arange(1, k + 1)
    counted = same & (rank[None, :] <= relevant[:, None])
    precision = counted.double().cumsum(1) / rank
    queries = relevant > 0  # a class of one row has nothing to retrieve
    if not bool(queries.any()):
        return {"recall_at_1": recall_at_1, "map_at_r": 0.0}
    average = (precision * counted).sum(1)[queries] / relevant[queries]
    return {"recall_at_1": recall_at_1, "map_at_r": float(average.mean())}


def segmentation_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Dice ``2|A & B| / (|A| + |B|)`` and IoU ``|A & B| / |A | B|`` of the predicted and the
    true masks of each foreground class (every label but 0, the background), counted over all
    the held-out pixels together and averaged over the classes present in the target or the
    prediction (a class in neither has nothing to score). Both are 0 for a model that predicts
    background everywhere, however few the foreground pixels: pixel accuracy would not be.

    >>> import numpy as np
    >>> segmentation_metrics(np.array([[0, 1, 1, 2]]), np.array([[0, 1, 2, 2]]))
    {'dice': 0.6666666666666666, 'iou': 0.5}
    """
    target, prediction = np.asarray(target).ravel(), np.asarray(prediction).ravel()
    classes = np.union1d(target, prediction)
    classes = classes[classes != 0]
    if len(classes) == 0:
        return {"dice": 1.0, "iou": 1.0}  # background only, and predicted so
    # one bincount of (class, predicted) pairs instead of a pass per class
    size = int(max(target.max(), prediction.max())) + 1
    joint = np.bincount(target * size + prediction, minlength=size * size).reshape(size, size)
    hits = np.diag(joint)[classes].astype(np.float64)
    actual = joint.sum(1)[classes].astype(np.float64)
    predicted = joint.sum(0)[classes].astype(np.float64)
    dice = 2 * hits / (actual + predicted)
    iou = hits / (actual + predicted - hits)
    return {"dice": float(dice.mean()), "iou": float(iou.mean())}
