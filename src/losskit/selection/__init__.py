"""Choosing and tuning a loss with evidence: the machinery behind ``losskit compare`` and
``losskit tune``.

>>> from losskit.selection import demo, parse_candidates, default_settings, compare_losses
>>> data = demo("diabetes_outliers")
>>> settings = default_settings(data.task, quick=True, epochs=1, folds=2)
>>> result = compare_losses(data, parse_candidates("mse,huber", data.task), settings)
>>> [r.label for r in result.ranked()] in (["mse", "huber"], ["huber", "mse"])
True
"""

from losskit.selection.candidates import (
    ADAPTIVE_ROBUST,
    Candidate,
    CandidateLoss,
    adapter_for,
    build_loss,
    compatible_losses,
    parse_candidate,
    parse_candidates,
)
from losskit.selection.data import (
    DEMOS,
    SELECTION_TASKS,
    DataError,
    Dataset,
    Split,
    demo,
    demo_for_task,
    infer_task,
    load_csv,
    make_splits,
)
from losskit.selection.metrics import (
    METRICS,
    Metric,
    embedding_metrics,
    metric,
    primary_metric,
    task_metrics,
)
from losskit.selection.training import (
    CandidateResult,
    Comparison,
    FoldResult,
    TrainSettings,
    class_batches,
    compare_losses,
    default_settings,
    train_fold,
)

__all__ = [
    "ADAPTIVE_ROBUST",
    "DEMOS",
    "METRICS",
    "SELECTION_TASKS",
    "Candidate",
    "CandidateLoss",
    "CandidateResult",
    "Comparison",
    "DataError",
    "Dataset",
    "FoldResult",
    "Metric",
    "Split",
    "TrainSettings",
    "adapter_for",
    "build_loss",
    "class_batches",
    "compare_losses",
    "compatible_losses",
    "default_settings",
    "demo",
    "demo_for_task",
    "embedding_metrics",
    "infer_task",
    "load_csv",
    "make_splits",
    "metric",
    "parse_candidate",
    "parse_candidates",
    "primary_metric",
    "task_metrics",
    "train_fold",
]
