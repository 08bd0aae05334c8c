"""The data that ``losskit compare`` and ``losskit tune`` train on: a user's CSV file or one of
the bundled demos, and its split into folds.

A CSV file holds rows (regression, classification, embedding); segmentation trains on images
with a mask per image, which only the bundled demo (synthetic shapes, made by
:mod:`losskit.selection.segmentation`) provides: ``features`` ``(images, 1, H, W)`` and
``target`` ``(images, H, W)``.

A demo is clean data plus a *training-fold transform* (outliers added to the targets, classes
thinned out): the transform is applied to each training fold only, so every model is always
evaluated on clean, untouched held-out rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "DEMOS",
    "SELECTION_TASKS",
    "DataError",
    "Dataset",
    "Split",
    "demo",
    "demo_for_task",
    "infer_task",
    "load_csv",
    "make_splits",
]

SelectionTask = Literal["regression", "classification", "embedding", "segmentation"]
SELECTION_TASKS: tuple[str, ...] = ("regression", "classification", "embedding", "segmentation")

#: (features, target, rng) -> (features, target): applied to a training fold only
TrainingTransform = Callable[
    [np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]
]


class DataError(ValueError):
    """Data the CLI cannot train on; the message is one line that says what to change."""


@dataclass(frozen=True)
class Dataset:
    """Features, a target and what the target means.

    ``target`` is float64 for regression and int64 class indices ``0..C-1`` otherwise, with
    ``classes[i]`` the original label of index ``i``; for segmentation, one mask of class
    indices per image (``features`` holds the images).
    """

    name: str
    task: SelectionTask
    features: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    description: str
    classes: tuple[str, ...] = ()
    #: applied to each training fold, never to held-out rows (see the module docstring)
    training_transform: TrainingTransform | None = None
    #: the candidates ``losskit compare`` runs when ``--losses`` is not given
    default_candidates: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.target)


@dataclass(frozen=True)
class Split:
    """Row indices of one fold: train on ``train``, evaluate on ``test``."""

    train: np.ndarray
    test: np.ndarray


# ------------------------------------------------------------------------------------- CSV


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: is not a file; expected a CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(65536)
            if "\0" in sample:
                raise DataError(f"cannot read {path} as CSV: it holds binary data")
            handle.seek(0)
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                    sample, delimiters=",;\t"
                )
            except csv.Error:
                dialect = csv.excel
            rows = [row for row in csv.reader(handle, dialect) if any(c.strip() for c in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {path} as CSV: it is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(rows) < 2:
        raise DataError(f"cannot read {path} as CSV: expected a header line and data lines")
    header = [h.strip() for h in rows[0]]
    for i, name in enumerate(header):
        if not name:
            raise DataError(
                f"cannot read {path} as CSV: column {i + 1} of the header has no name; expected "
                "a name for every column"
            )
        if name in header[:i]:
            raise DataError(
                f"cannot read {path} as CSV: the header names column {name!r} twice (columns "
                f"{header.index(name) + 1} and {i + 1}); expected each name once"
            )
    if len(header) < 2:
        raise DataError(
            f"cannot read {path} as CSV: the header has {len(header)} column; expected a target "
            "column and at least one feature, separated by ',', ';' or tabs"
        )
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(
                f"cannot read {path} as CSV: line {number} has {len(row)} fields; expected "
                f"{len(header)} like the header"
            )
    return header, [[c.strip() for c in row] for row in rows[1:]]


def _number(text: str) -> float:
    """A float, with the empty cell and NA spellings as NaN; ValueError if not a number."""
    if text.lower() in {"", "na", "nan", "n/a", "null", "none"}:
        return math.nan
    return float(text)


def _column_index(header: list[str], name: str, path: Path, option: str) -> int:
    if name not in header:
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        raise DataError(f"{option} {name!r} is not a column of {path}; columns: {shown}")
    return header.index(name)


def infer_task(values: list[str]) -> SelectionTask:
    """Classification for text labels or a few whole numbers, regression otherwise."""
    try:
        numbers = [_number(v) for v in values]
    except ValueError:
        return "classification"
    finite = [v for v in numbers if math.isfinite(v)]
    if finite and all(v.is_integer() for v in finite) and len(set(finite)) <= 20:
        return "classification"
    return "regression"


def load_csv(
    path: Path | str,
    *,
    target: str,
    task: SelectionTask | None = None,
    features: list[str] | None = None,
) -> Dataset:
    """A CSV file with a header line: ``target`` is one column, the features are ``features``
    (default: every other column), all numeric. ``task`` is inferred from the target when not
    given (see :func:`infer_task`). Raises :class:`DataError` with one line for anything it
    cannot train on."""
    path = Path(path)
    header, rows = _read_rows(path)
    target_at = _column_index(header, target, path, "--target")
    if features:
        duplicate = next((f for i, f in enumerate(features) if f in features[:i]), None)
        if duplicate is not None:
            raise DataError(f"--features names {duplicate!r} twice; expected each column once")
        feature_at = [_column_index(header, f, path, "--features") for f in features]
        if target_at in feature_at:
            raise DataError(f"--features names the target {target!r}; expected other columns")
    else:
        feature_at = [i for i in range(len(header)) if i != target_at]
    raw_target = [row[target_at] for row in rows]
    if task is None:
        _check_stray_text(raw_target, target, path)
        task = infer_task(raw_target)
    elif task not in SELECTION_TASKS:
        raise DataError(f"--task is {task!r}; expected one of {', '.join(SELECTION_TASKS)}")
    elif task == "segmentation":
        raise DataError(
            f"--task segmentation trains on images and masks, not on the rows of {path}; "
            "the bundled demo has them: losskit compare --task segmentation"
        )

    matrix = np.empty((len(rows), len(feature_at)), dtype=np.float64)
    for j, col in enumerate(feature_at):
        for i, row in enumerate(rows):
            try:
                matrix[i, j] = _number(row[col])
            except ValueError:
                raise DataError(
                    f"column {header[col]!r} of {path} holds a non-numeric value "
                    f"({row[col]!r} on line {i + 2}); expected numeric features: encode it or "
                    "leave it out with --features"
                ) from None
            if not math.isfinite(matrix[i, j]):
                raise DataError(
                    f"column {header[col]!r} of {path} has a missing or non-finite value on "
                    f"line {i + 2}; expected numbers in every feature cell"
                )

    for i, value in enumerate(raw_target):
        if value.lower() in {"", "na", "nan", "n/a", "null", "none"}:
            raise DataError(
                f"target {target!r} of {path} is missing or NaN on line {i + 2}; expected a "
                "value in every row (drop or fill those rows)"
            )
    name = path.stem
    feature_names = tuple(header[c] for c in feature_at)
    if task == "regression":
        try:
            y = np.array([float(v) for v in raw_target], dtype=np.float64)
        except ValueError:
            bad = next(v for v in raw_target if not _is_float(v))
            raise DataError(
                f"target {target!r} of {path} holds {bad!r}; regression expects numbers "
                "(use --task classification for labels)"
            ) from None
        if not np.isfinite(y).all():
            line = int(np.flatnonzero(~np.isfinite(y))[0]) + 2
            raise DataError(
                f"target {target!r} of {path} is not finite on line {line}; expected numbers"
            )
        if np.ptp(y) == 0:
            raise DataError(f"target {target!r} of {path} is constant; expected values that vary")
        return Dataset(
            name=name,
            task="regression",
            features=matrix,
            target=y,
            feature_names=feature_names,
            target_name=target,
            description=f"{path.name}: {len(rows)} rows, {len(feature_at)} features",
        )
    if task == "embedding":
        _check_embedding_labels(raw_target, target, path)
    labels, indices = np.unique(
        np.array([_label_text(v) for v in raw_target], dtype=object), return_inverse=True
    )
    classes = tuple(str(v) for v in labels)
    if len(classes) < 2:
        raise DataError(
            f"target {target!r} of {path} has a single class ({classes[0]!r}); "
            f"{task} needs at least two"
        )
    return Dataset(
        name=name,
        task=task,
        features=matrix,
        target=indices.astype(np.int64),
        feature_names=feature_names,
        target_name=target,
        description=f"{path.name}: {len(rows)} rows, {len(feature_at)} features, "
        f"{len(classes)} classes",
        classes=classes,
    )


def _check_stray_text(values: list[str], target: str, path: Path) -> None:
    """A numeric column with a few text cells is a typo, not a column of labels: name the
    first one instead of inferring classification and failing later on its class count."""
    text = [i for i, v in enumerate(values) if not _is_float(v)]
    if text and len(text) <= max(2, 0.05 * len(values)) and len(text) < len(values):
        i = text[0]
        raise DataError(
            f"target {target!r} of {path} holds {values[i]!r} on line {i + 2} among numbers; "
            "expected a number (fix the cell, or give --task classification if the column "
            "holds labels)"
        )


#: an embedding's labels name groups of rows: retrieval needs at least two rows per label
_MIN_ROWS_PER_LABEL = 2


def _check_embedding_labels(values: list[str], target: str, path: Path) -> None:
    """Labels of an embedding task: text or whole numbers, each on at least two rows (a label
    seen once has no other row to retrieve; a continuous target is no labelling at all)."""
    for i, value in enumerate(values):
        if _is_float(value) and not float(value).is_integer():
            raise DataError(
                f"target {target!r} of {path} holds {value!r} on line {i + 2}; the embedding "
                "task expects class labels (whole numbers or names), each on several rows"
            )
    counts: dict[str, int] = {}
    for value in values:
        counts[_label_text(value)] = counts.get(_label_text(value), 0) + 1
    single = [label for label, n in counts.items() if n < _MIN_ROWS_PER_LABEL]
    if single:
        shown = ", ".join(repr(s) for s in single[:3]) + (", ..." if len(single) > 3 else "")
        raise DataError(
            f"target {target!r} of {path} has {len(single)} of {len(counts)} labels on a single "
            f"row ({shown}); the embedding task expects every label on at least "
            f"{_MIN_ROWS_PER_LABEL} rows (drop those rows, or use --task regression for a "
            "continuous target)"
        )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_text(value: object) -> str:
    """Class labels as written, with ``1.0`` shown as ``1``."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


# ------------------------------------------------------------------------------ the demos


def _diabetes_outliers() -> Dataset:
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)

    def corrupt(
        x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        # gross errors: 10% of the training targets moved 5 to 10 standard deviations away,
        # up or down at random; the held-out targets stay as measured
        y = y.copy()
        count = round(0.1 * len(y))
        rows = rng.choice(len(y), size=count, replace=False)
        offset = rng.uniform(5.0, 10.0, size=count) * rng.choice([-1.0, 1.0], size=count)
        y[rows] += offset * y.std()
        return x, y

    return Dataset(
        name="diabetes_outliers",
        task="regression",
        features=features,
        target=target.astype(np.float64),
        feature_names=tuple(f"x{i}" for i in range(features.shape[1])),
        target_name="disease progression",
        description=(
            "scikit-learn's diabetes data (442 patients, 10 features); 10% of each training "
            "fold's targets moved 5-10 standard deviations away; held-out targets clean"
        ),
        training_transform=corrupt,
        default_candidates=(
            "mse",
            "l1",
            "huber",
            "log_cosh",
            "charbonnier",
            "cauchy",
            "geman_mcclure",
            "welsch",
            "adaptive_robust",
        ),
    )


#: the classes kept at 10% of their training rows in the imbalanced digits demo
RARE_DIGITS: tuple[int, ...] = (5, 6, 7, 8, 9)


def _digits_imbalanced() -> Dataset:
    from sklearn.datasets import load_digits

    features, target = load_digits(return_X_y=True)

    def thin_out(
        x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        keep = np.ones(len(y), dtype=bool)
        for digit in RARE_DIGITS:
            rows = np.flatnonzero(y == digit)
            dropped = rng.choice(
                rows, size=len(rows) - max(1, round(0.1 * len(rows))), replace=False
            )
            keep[dropped] = False
        return x[keep], y[keep]

    return Dataset(
        name="digits_imbalanced",
        task="classification",
        features=features.astype(np.float64),
        target=target.astype(np.int64),
        feature_names=tuple(f"px{i}" for i in range(features.shape[1])),
        target_name="digit",
        description=(
            "scikit-learn's 8x8 digits (1797 images); digits 5-9 cut to 10% of each training "
            "fold (about 1:10 imbalance); held-out rows keep every class"
        ),
        classes=tuple(str(d) for d in range(10)),
        training_transform=thin_out,
        default_candidates=(
            "cross_entropy",
            "cross_entropy:weight=balanced",
            "focal",
            "focal:alpha=class_balanced",
            "poly1_cross_entropy",
        ),
    )


#: the shifted digits demo: each 8x8 digit at a random place of a FRAME x FRAME image
FRAME = 10


def _digits_shifted() -> Dataset:
    """The 8x8 digits, each at a random position of a 10x10 frame.

    Pixel distance is a poor metric for images that are not aligned: the same stroke one
    pixel to the right matches nothing. What ignores position can be learned from the digits
    seen in training and carries over to digits never seen: what metric learning is for. (On
    the aligned 8x8 digits themselves, the pixels are hard to beat with six or seven training
    classes: every loss we tried retrieved unseen digits worse than the pixels did.)"""
    from sklearn.datasets import load_digits

    features, target = load_digits(return_X_y=True)
    # a fixed draw, independent of --seed: the data set is the same in every run
    offsets = np.random.default_rng(0).integers(0, FRAME - 8 + 1, size=(len(target), 2))
    frames = np.zeros((len(target), FRAME, FRAME))
    for i, (dy, dx) in enumerate(offsets):
        frames[i, dy : dy + 8, dx : dx + 8] = features[i].reshape(8, 8)
    return Dataset(
        name="digits_shifted",
        task="embedding",
        features=frames.reshape(len(target), FRAME * FRAME),
        target=target.astype(np.int64),
        feature_names=tuple(f"px{i}" for i in range(FRAME * FRAME)),
        target_name="digit",
        description=(
            f"scikit-learn's 8x8 digits (1797 images), each at a random position of a "
            f"{FRAME}x{FRAME} frame (0-{FRAME - 8} pixels off in each direction); embeddings "
            "trained on some digits and evaluated by retrieval among digits never seen in "
            "training, against the pixels and the untrained model"
        ),
        classes=tuple(str(d) for d in range(10)),
        # the mining losses against the pair loss and the contrastive ones: NT-Xent and SupCon
        # take the labels, InfoNCE, CLIP and SigLIP two augmented views of each image (their
        # catalog defaults: temperature 0.1, CLIP's logit_scale 1/0.07, SigLIP's 10 and -10)
        default_candidates=(
            "triplet:miner=batch_all",
            "triplet:miner=batch_hard",
            "triplet:miner=semi_hard",
            "cosine_embedding:margin=0.5",
            "nt_xent",
            "supcon",
            "info_nce",
            "clip",
            "siglip",
        ),
    )


def shapes_dataset(images: int = 144, size: int = 32, *, seed: int = 0) -> Dataset:
    """The demo's data: ``images`` of :func:`~losskit.selection.shapes.synthetic_shapes` (``seed`` 0 in every run, so
    ``--seed`` changes the folds, the weights and the batches, not the data) as a
    :class:`Dataset` of task ``segmentation``."""
    from losskit.selection.shapes import DEMO_LOSSES, synthetic_shapes  # torch: only here

    x, masks = synthetic_shapes(images, size, seed=seed)
    foreground = float((masks > 0).float().mean())
    return Dataset(
        name="shapes_segmentation",
        task="segmentation",
        features=x.numpy().astype(np.float64),
        target=masks.numpy().astype(np.int64),
        feature_names=("grey",),
        target_name="mask",
        description=(
            f"{images} synthetic {size}x{size} grey images with small discs and squares on a "
            f"noisy, uneven background ({foreground:.1%} of the pixels foreground); a fully "
            "convolutional network per loss, scored by the Dice and IoU of the foreground "
            "classes on held-out images"
        ),
        classes=("background", "disc", "square"),
        default_candidates=DEMO_LOSSES,
    )


def _shapes_segmentation() -> Dataset:
    """Synthetic grey images with small discs and squares (about 5% of the pixels), made by
    :func:`losskit.selection.segmentation.synthetic_shapes`: the setting where the overlap
    losses are said to beat cross-entropy."""
    return shapes_dataset()


#: the bundled demos, built from scikit-learn's bundled data sets or by the code (no download)
DEMOS: dict[str, Callable[[], Dataset]] = {
    "diabetes_outliers": _diabetes_outliers,
    "digits_imbalanced": _digits_imbalanced,
    "digits_shifted": _digits_shifted,
    "shapes_segmentation": _shapes_segmentation,
}
_DEMO_FOR_TASK = {
    "regression": "diabetes_outliers",
    "classification": "digits_imbalanced",
    "embedding": "digits_shifted",
    "segmentation": "shapes_segmentation",
}


def demo(name: str) -> Dataset:
    """A bundled demo by name (see :data:`DEMOS`)."""
    if name not in DEMOS:
        raise DataError(f"no demo named {name!r}; expected one of {', '.join(DEMOS)}")
    return DEMOS[name]()


def demo_for_task(task: str) -> Dataset:
    """The bundled demo of a task."""
    if task not in _DEMO_FOR_TASK:
        raise DataError(f"--task is {task!r}; expected one of {', '.join(SELECTION_TASKS)}")
    return demo(_DEMO_FOR_TASK[task])


# -------------------------------------------------------------------------------- splits


def make_splits(
    dataset: Dataset, *, folds: int = 5, holdout: float | None = None, seed: int = 0
) -> list[Split]:
    """``folds`` cross-validation folds, or one split holding out the fraction ``holdout``.

    Regression and segmentation shuffle rows (images); classification keeps each class's
    share in every fold (stratified); embedding holds out whole *classes*, so retrieval is
    measured on classes the model never saw.
    """
    if holdout is not None:
        if not 0.0 < holdout < 1.0:
            raise DataError(f"--holdout is {holdout:g}; expected a fraction in (0, 1)")
    elif isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DataError(f"--folds is {folds!r}; expected an integer >= 2")
    n = len(dataset)
    if dataset.task == "embedding":
        return _class_splits(dataset, folds, holdout, seed)
    if dataset.task == "classification":
        return _stratified_splits(dataset, folds, holdout, seed)
    parts = 2 if holdout is not None else folds
    if n < 2 * parts:
        raise DataError(f"{dataset.name} has {n} rows; expected at least {2 * parts} to split")
    from sklearn.model_selection import KFold, train_test_split

    if holdout is not None:
        train, test = train_test_split(np.arange(n), test_size=holdout, random_state=seed)
        return [Split(np.sort(train), np.sort(test))]
    return [
        Split(train, test)
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(n))
    ]


def _stratified_splits(
    dataset: Dataset, folds: int, holdout: float | None, seed: int
) -> list[Split]:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    counts = np.bincount(dataset.target, minlength=dataset.num_classes)
    needed = 2 if holdout is not None else folds
    rare = int(np.argmin(counts))
    if counts[rare] < needed:
        how = "a held-out split" if holdout is not None else f"{folds} folds"
        raise DataError(
            f"class {dataset.classes[rare]!r} of {dataset.name} has {counts[rare]} row(s); "
            f"expected at least {needed} for {how} (use fewer --folds or drop the class)"
        )
    rows = np.arange(len(dataset))
    if holdout is not None:
        train, test = train_test_split(
            rows, test_size=holdout, random_state=seed, stratify=dataset.target
        )
        return [Split(np.sort(train), np.sort(test))]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [Split(train, test) for train, test in splitter.split(rows, dataset.target)]


def _class_splits(dataset: Dataset, folds: int, holdout: float | None, seed: int) -> list[Split]:
    classes = dataset.num_classes
    groups_needed = 2 if holdout is not None else folds
    if classes < 4 or classes < 2 * groups_needed:
        raise DataError(
            f"{dataset.name} has {classes} classes; embedding evaluation holds out whole "
            f"classes and needs at least {max(4, 2 * groups_needed)} for "
            + ("a held-out split" if holdout is not None else f"{folds} folds")
        )
    order = np.random.default_rng(seed).permutation(classes)
    if holdout is not None:
        held = max(2, round(holdout * classes))
        groups = [order[:held]]
    else:
        groups = np.array_split(order, folds)
    splits = []
    for group in groups:
        test = np.isin(dataset.target, group)
        splits.append(Split(np.flatnonzero(~test), np.flatnonzero(test)))
    return splits
