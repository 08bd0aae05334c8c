"""The experiment behind ``losskit compare`` and ``losskit tune``: the same small model (an
MLP; for segmentation a small fully convolutional network), trained with each candidate loss on
the same folds, from the same initial weights, on the same batches, and scored on held-out rows.

Per fold: features are standardised with the training rows' mean and deviation (images: with
the training pixels' mean and deviation, one number each); regression targets are centred on
the training median and scaled by the training MAD (a robust scale, so that outliers in the
targets do not change what a loss's ``delta`` or ``scale`` of 1 means) and predictions are
mapped back to the target's units before scoring; embeddings are L2-normalised. Two-view losses
(:func:`~losskit.selection.candidates.make_views`) see two augmented copies of each training
row; held-out rows are never augmented. Everything is seeded from ``seed`` and the fold number,
so a run is repeatable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losskit.selection.candidates import Candidate, build_loss, make_views
from losskit.selection.data import Dataset, Split, make_splits
from losskit.selection.metrics import (
    METRICS,
    Metric,
    curve_metric,
    metric,
    primary_metric,
    task_metrics,
)

__all__ = [
    "CandidateResult",
    "Comparison",
    "FoldResult",
    "TrainSettings",
    "class_batches",
    "compare_losses",
    "default_settings",
    "train_fold",
]

#: the labels of the embedding baselines: the input features, standardised and normalised,
#: and the model at its initial weights (where every candidate starts)
BASELINE = "(input features, untrained)"
UNTRAINED = "(untrained model)"

#: (units of work done, description) -> None; one unit is one epoch of one fold
Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class TrainSettings:
    """How every candidate is trained (the same for all of them). For segmentation,
    ``hidden`` are the widths of the 3x3 convolutions and ``batch_size`` counts images."""

    epochs: int
    folds: int = 5
    holdout: float | None = None
    batch_size: int = 64
    lr: float = 3e-3
    hidden: tuple[int, ...] = (64,)
    embedding_dim: int = 32
    #: embedding batches hold ``batch_size // samples_per_class`` groups of this many rows of
    #: one class (see :func:`class_batches`), so that every anchor has positives to mine
    samples_per_class: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        from losskit.selection.data import DataError

        for name in ("epochs", "batch_size", "embedding_dim", "samples_per_class"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(
                    f"--{name.replace('_', '-')} is {value!r}; expected an integer >= 1"
                )
        if not (isinstance(self.lr, float | int) and math.isfinite(self.lr) and self.lr > 0):
            raise DataError(f"--lr is {self.lr!r}; expected a positive number")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise DataError(f"--hidden is {self.hidden!r}; expected layer widths >= 1, e.g. 128,64")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden)}


#: per task and mode: enough for the MLP to fit each demo without memorising its outliers;
#: "quick" is what ``make run`` uses. Embedding folds hold out whole classes: 3 folds leave 3-4
#: unseen digits per fold. The embedding model is wider than the others and its embedding has
#: 64 dimensions: on the shifted digits that retrieved unseen digits a little better than
#: 128 hidden units and 32 dimensions (MAP@R about +0.01); 10 quick epochs did as well as 15.
#: Segmentation: 3 folds of the 144 images (96 to train on); see docs/selection.md for how the
#: ranking moves with the epochs (the overlap losses learn the small foreground far sooner
#: than cross-entropy, which catches up with several times more training).
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "regression": {"epochs": 100, "folds": 5},
        "classification": {"epochs": 30, "folds": 5},
        "embedding": {"epochs": 30, "folds": 3},
        "segmentation": {"epochs": 40, "folds": 3},
    },
    "quick": {
        "regression": {"epochs": 40, "folds": 3},
        "classification": {"epochs": 15, "folds": 3},
        "embedding": {"epochs": 10, "folds": 3},
        "segmentation": {"epochs": 15, "folds": 3},
    },
}
MODEL: dict[str, dict[str, Any]] = {
    "regression": {"hidden": (32,), "batch_size": 32},
    "classification": {"hidden": (64,), "batch_size": 64},
    "embedding": {"hidden": (256,), "batch_size": 128, "embedding_dim": 64},
    "segmentation": {"hidden": (16, 16, 16), "batch_size": 16},
}


def default_settings(task: str, *, quick: bool = False, **overrides: Any) -> TrainSettings:
    """The settings for ``task``; ``overrides`` that are ``None`` keep the default."""
    mode = "quick" if quick else "full"
    values: dict[str, Any] = {**DEFAULTS[mode][task], **MODEL[task]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings(**values)


@dataclass
class FoldResult:
    metrics: dict[str, float]
    #: mean training loss per epoch
    train_loss: list[float]
    #: the primary metric on the held-out rows after each epoch
    held_out: list[float]
    seconds: float
    diverged: bool = False
    #: what the loss learned, e.g. adaptive_robust's alpha and scale
    learned: dict[str, float] = field(default_factory=dict)


@dataclass
class CandidateResult:
    candidate: Candidate
    folds: list[FoldResult]

    @property
    def label(self) -> str:
        return self.candidate.label

    @property
    def diverged(self) -> bool:
        return any(f.diverged for f in self.folds)

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.folds)

    def values(self, key: str) -> np.ndarray:
        return np.array([f.metrics[key] for f in self.folds], dtype=np.float64)

    def mean(self, key: str) -> float:
        return float(self.values(key).mean())

    def std(self, key: str) -> float:
        values = self.values(key)
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0


@dataclass
class Comparison:
    """Every candidate's results on one data set, and how they were obtained."""

    dataset: Dataset
    settings: TrainSettings
    results: list[CandidateResult]
    rank_by: Metric
    splits: list[Split]
    #: for embeddings: retrieval on the standardised input features themselves, no training
    #: (what a learned embedding has to beat on classes it never saw)
    baseline: CandidateResult | None = None
    #: for embeddings: retrieval with the model at its initial weights (what training adds)
    untrained: CandidateResult | None = None

    @property
    def baselines(self) -> list[CandidateResult]:
        return [b for b in (self.baseline, self.untrained) if b is not None]

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return METRICS[self.dataset.task]

    def ranked(self) -> list[CandidateResult]:
        """Best first by the mean of ``rank_by``; diverged candidates last."""

        def key(result: CandidateResult) -> tuple[bool, float, str]:
            value = result.mean(self.rank_by.key)
            bad = result.diverged or not math.isfinite(value)
            return (bad, -value if self.rank_by.higher_is_better else value, result.label)

        return sorted(self.results, key=key)

    def as_dict(self) -> dict[str, Any]:
        data = self.dataset
        return {
            "dataset": {
                "name": data.name,
                "task": data.task,
                "description": data.description,
                "rows": len(data),
                "features": len(data.feature_names),
                "classes": list(data.classes),
                "target": data.target_name,
                **(
                    {"image_shape": list(data.features.shape[1:])} if data.features.ndim > 2 else {}
                ),
            },
            "settings": self.settings.as_dict(),
            "folds": [{"train_rows": len(s.train), "test_rows": len(s.test)} for s in self.splits],
            "rank_by": self.rank_by.key,
            "metrics": [
                {"key": m.key, "label": m.label, "higher_is_better": m.higher_is_better}
                for m in self.metrics
            ],
            "baseline": self._baseline_dict(self.baseline),
            "untrained_model": self._baseline_dict(self.untrained),
            "ranking": [
                {
                    "rank": rank,
                    "loss": r.candidate.loss,
                    "label": r.label,
                    "options": r.candidate.json_options(),
                    "diverged": r.diverged,
                    "seconds": r.seconds,
                    "mean": {m.key: _json_number(r.mean(m.key)) for m in self.metrics},
                    "std": {m.key: _json_number(r.std(m.key)) for m in self.metrics},
                    "folds": [
                        {
                            "metrics": {k: _json_number(v) for k, v in f.metrics.items()},
                            "train_loss": [_json_number(v) for v in f.train_loss],
                            "held_out": [_json_number(v) for v in f.held_out],
                            "seconds": f.seconds,
                            "diverged": f.diverged,
                            **({"learned": f.learned} if f.learned else {}),
                        }
                        for f in r.folds
                    ],
                }
                for rank, r in enumerate(self.ranked(), start=1)
            ],
        }

    def _baseline_dict(self, baseline: CandidateResult | None) -> dict[str, Any] | None:
        if baseline is None:
            return None
        return {
            "label": baseline.label,
            "mean": {m.key: _json_number(baseline.mean(m.key)) for m in self.metrics},
            "std": {m.key: _json_number(baseline.std(m.key)) for m in self.metrics},
            "folds": [{k: _json_number(v) for k, v in f.metrics.items()} for f in baseline.folds],
        }


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


# -------------------------------------------------------------------------------- the model


class MLP(nn.Sequential):
    """Linear-ReLU layers; the embedding variant L2-normalises its output."""

    def __init__(self, inputs: int, hidden: Sequence[int], outputs: int, *, normalise: bool):
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, outputs))
        super().__init__(*layers)
        self.normalise = normalise

    def forward(self, x: Tensor) -> Tensor:
        out = super().forward(x)
        return F.normalize(out, dim=1) if self.normalise else out


@dataclass(frozen=True)
class FoldData:
    """One fold, ready for training: standardised tensors and how to undo the target scale."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: np.ndarray
    train_target: np.ndarray
    center: float = 0.0
    scale: float = 1.0


def prepare_fold(dataset: Dataset, split: Split, seed: int, fold: int) -> FoldData:
    x_train = dataset.features[split.train]
    y_train = dataset.target[split.train]
    if dataset.training_transform is not None:
        rng = np.random.default_rng([seed, fold])
        x_train, y_train = dataset.training_transform(x_train, y_train, rng)
    if dataset.task == "segmentation":  # images: one mean and deviation for every pixel
        mean, std = x_train.mean(), x_train.std() or 1.0
    else:
        mean = x_train.mean(0)
        std = x_train.std(0)
        std[std == 0] = 1.0  # a constant column carries nothing; leave it at zero
    x_test = (dataset.features[split.test] - mean) / std
    x_train = (x_train - mean) / std
    center, scale = 0.0, 1.0
    if dataset.task == "regression":
        center = float(np.median(y_train))
        scale = float(1.4826 * np.median(np.abs(y_train - center))) or float(y_train.std()) or 1.0
        y = torch.tensor((y_train - center) / scale, dtype=torch.float32)
    else:
        y = torch.tensor(y_train, dtype=torch.int64)
    return FoldData(
        x_train=torch.tensor(x_train, dtype=torch.float32),
        y_train=y,
        x_test=torch.tensor(x_test, dtype=torch.float32),
        y_test=dataset.target[split.test],
        train_target=y_train,
        center=center,
        scale=scale,
    )


def _predict(model: nn.Module, data: FoldData, task: str) -> np.ndarray:
    with torch.no_grad():
        out = model(data.x_test)
    if task == "regression":
        return out.squeeze(1).double().numpy() * data.scale + data.center
    if task in ("classification", "segmentation"):
        return out.argmax(1).numpy()
    return out.double().numpy()


def evaluate(model: nn.Module, data: FoldData, task: str) -> dict[str, float]:
    return task_metrics(task, data.y_test, _predict(model, data, task))


@contextmanager
def one_thread() -> Iterator[None]:
    """Small models train several times faster on one intra-op thread than on many (and
    far faster on a busy machine, where threads wait for each other)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def class_batches(
    labels: Tensor, per_class: int, batch_size: int, generator: torch.Generator
) -> list[Tensor]:
    """One epoch of row indices in batches of ``batch_size // per_class`` groups of
    ``per_class`` rows of one class ("m per class" sampling).

    Random batches of data with many classes hold few rows of each, so batch-hard and
    semi-hard mining find no positive for most anchors; these batches always have some. Every
    row is used once per epoch: each class's rows are shuffled and cut into groups (the last,
    smaller group of a class keeps its remainder), and the groups are shuffled and packed into
    batches. Deterministic for a given ``generator`` state."""
    groups: list[Tensor] = []
    for c in torch.unique(labels):
        rows = (labels == c).nonzero().squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        groups += list(rows.split(per_class))
    order = torch.randperm(len(groups), generator=generator).tolist()
    per_batch = max(1, batch_size // per_class)
    return [
        torch.cat([groups[i] for i in order[start : start + per_batch]])
        for start in range(0, len(order), per_batch)
    ]


def _initial_model(
    dataset: Dataset, data: FoldData, settings: TrainSettings, fold: int
) -> nn.Module:
    """The model every candidate of a fold starts from: the same initial weights for all;
    the caller's global generator is left as it was."""
    task = dataset.task
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed * 1_000 + fold)
        if task == "segmentation":
            from losskit.selection.shapes import segmentation_network

            channels = data.x_train.shape[1]
            return segmentation_network(settings.hidden, dataset.num_classes, channels)
        outputs = {"regression": 1, "classification": dataset.num_classes}.get(
            task, settings.embedding_dim
        )
        return MLP(data.x_train.shape[1], settings.hidden, outputs, normalise=task == "embedding")


def train_fold(
    candidate: Candidate,
    dataset: Dataset,
    data: FoldData,
    settings: TrainSettings,
    fold: int,
    *,
    rank_by: Metric | None = None,
    curves: bool = True,
    progress: Progress | None = None,
) -> tuple[FoldResult, nn.Module]:
    """Train one model with ``candidate`` on one fold; returns its result and the model."""
    task = dataset.task
    rank_by = rank_by or primary_metric(task)
    fold_seed = settings.seed * 1_000 + fold
    started = time.perf_counter()
    # the same initial weights and batches for every candidate of a fold
    model = _initial_model(dataset, data, settings, fold)
    loss_fn = build_loss(candidate, task, data.train_target, dataset.num_classes, seed=fold_seed)
    optimizer = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=settings.lr)
    batches = torch.Generator().manual_seed(fold_seed)
    # the two-view losses' augmentations: a generator of their own, so that the batches are
    # the same as every other candidate's
    augment = torch.Generator().manual_seed(fold_seed + 1)
    n = len(data.y_train)
    train_loss: list[float] = []
    held_out: list[float] = []
    diverged = False
    for epoch in range(settings.epochs):
        model.train()
        if task == "embedding":
            epoch_batches = class_batches(
                data.y_train, settings.samples_per_class, settings.batch_size, batches
            )
        else:
            order = torch.randperm(n, generator=batches)
            epoch_batches = list(order.split(settings.batch_size))
        total = torch.zeros(())
        for rows in epoch_batches:
            if len(rows) < 2 and n >= 2:
                continue  # a batch of one has no pairs to mine and no spread to fit
            x = data.x_train[rows]
            out = model(make_views(x, augment) if loss_fn.views else x)
            loss = loss_fn(out.squeeze(1) if task == "regression" else out, data.y_train[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(rows)
        mean_loss = float(total) / n
        train_loss.append(mean_loss)
        if not math.isfinite(mean_loss):
            diverged = True
        model.eval()
        if curves:
            prediction = _predict(model, data, task)
            held_out.append(curve_metric(task, rank_by.key, data.y_test, prediction))
        if progress is not None:
            progress(1, f"{candidate.label} · fold {fold + 1}")
        if diverged:
            if progress is not None:
                progress(settings.epochs - epoch - 1, f"{candidate.label} diverged")
            break
    metrics = evaluate(model, data, task)
    if any(not math.isfinite(v) for v in metrics.values()):
        diverged = True
    return (
        FoldResult(
            metrics=metrics,
            train_loss=train_loss,
            held_out=held_out,
            seconds=time.perf_counter() - started,
            diverged=diverged,
            learned=loss_fn.learned(),
        ),
        model,
    )


def check_candidates(candidates: Sequence[Candidate], dataset: Dataset, data: FoldData) -> None:
    """Evaluate each candidate once on a few training rows, so that a bad option fails
    before any training (with the loss's own message)."""
    task = dataset.task
    outputs = {"regression": 1, "classification": dataset.num_classes}.get(task, 8)
    rows = min(len(data.y_train), 4 if task == "segmentation" else 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if task == "segmentation":  # logits of the images' size
            fake = torch.randn(rows, dataset.num_classes, *data.x_train.shape[2:])
        else:
            fake = torch.randn(rows, outputs)
    if task == "regression":
        fake = fake.squeeze(1)
    elif task == "embedding":
        fake = F.normalize(fake, dim=1)
    for candidate in candidates:
        loss_fn = build_loss(candidate, task, data.train_target, dataset.num_classes)
        loss_fn(torch.cat([fake, fake]) if loss_fn.views else fake, data.y_train[:rows])


def validate(dataset: Dataset, candidates: Sequence[Candidate], settings: TrainSettings) -> None:
    """Raise the error :func:`compare_losses` would raise for bad folds or bad options,
    without training anything."""
    splits = make_splits(
        dataset, folds=settings.folds, holdout=settings.holdout, seed=settings.seed
    )
    check_candidates(candidates, dataset, prepare_fold(dataset, splits[0], settings.seed, 0))


def compare_losses(
    dataset: Dataset,
    candidates: Sequence[Candidate],
    settings: TrainSettings,
    *,
    rank_by: str | None = None,
    curves: bool = True,
    progress: Progress | None = None,
) -> Comparison:
    """Train and score every candidate on every fold of ``dataset``."""
    splits = make_splits(
        dataset, folds=settings.folds, holdout=settings.holdout, seed=settings.seed
    )
    ranking = metric(dataset.task, rank_by) if rank_by else primary_metric(dataset.task)
    folds = [prepare_fold(dataset, s, settings.seed, i) for i, s in enumerate(splits)]
    check_candidates(candidates, dataset, folds[0])
    import sklearn.metrics  # noqa: F401  (imported now, not inside the first candidate's time)

    results = []
    with one_thread():
        for candidate in candidates:
            fold_results = [
                train_fold(
                    candidate,
                    dataset,
                    data,
                    settings,
                    i,
                    rank_by=ranking,
                    curves=curves,
                    progress=progress,
                )[0]
                for i, data in enumerate(folds)
            ]
            results.append(CandidateResult(candidate, fold_results))
    baseline = untrained = None
    if dataset.task == "embedding":
        baseline = CandidateResult(
            Candidate(BASELINE),
            [
                _fixed_result(data.y_test, F.normalize(data.x_test, dim=1).double().numpy())
                for data in folds
            ],
        )
        untrained_folds = []
        for i, data in enumerate(folds):
            model = _initial_model(dataset, data, settings, i).eval()
            untrained_folds.append(_fixed_result(data.y_test, _predict(model, data, "embedding")))
        untrained = CandidateResult(Candidate(UNTRAINED), untrained_folds)
    return Comparison(dataset, settings, results, ranking, splits, baseline, untrained)


def _fixed_result(labels: np.ndarray, embeddings: np.ndarray) -> FoldResult:
    """The retrieval of embeddings that nothing trained (a baseline row)."""
    return FoldResult(
        metrics=task_metrics("embedding", labels, embeddings),
        train_loss=[],
        held_out=[],
        seconds=0.0,
    )
