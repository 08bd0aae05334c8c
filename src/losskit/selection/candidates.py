"""Candidates: a catalog loss with options, written ``name[:option=value[:option=value]]`` (e.g.
``huber:delta=0.5``, ``focal:gamma=1:alpha=class_balanced``, ``triplet:miner=semi_hard``), and
how each one is fitted to the outputs of the model that ``compare`` trains.

Which losses can train which task is read from the catalog (task, target kind and the
functional's positional inputs), not listed here:

* regression: the model predicts one number; regression losses of ``(input, target)``.
* classification: the model predicts one logit per class; class-index losses take the
  logits and the labels, binary losses (``bce_with_logits``, ``sigmoid_focal``, ``hinge``,
  ``asymmetric``) take them one-vs-rest against one-hot targets.
* embedding: the model predicts an L2-normalised embedding; label-form losses (``triplet``)
  take embeddings and labels and mine the batch, pair losses (``cosine_embedding``) take every
  pair of the batch, and ``triplet_margin`` takes one random (positive, negative) per anchor.

Option values beyond numbers, booleans and names: ``weight=balanced`` (inverse class frequency
of the training fold, scikit-learn's "balanced") and ``weight=class_balanced`` /
``alpha=class_balanced`` (:func:`losskit.class_balanced_weights` of the training fold's class
counts, with ``beta`` from ``cb_beta``, default 0.999) for per-class options.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losskit._catalog import LossSpec
from losskit._registry import get_catalog
from losskit.losses.imbalance.weights import class_balanced_weights
from losskit.selection.data import DataError

__all__ = [
    "ADAPTIVE_ROBUST",
    "Candidate",
    "CandidateLoss",
    "adapter_for",
    "build_loss",
    "compatible_losses",
    "parse_candidate",
    "parse_candidates",
]

#: ``losskit.AdaptiveRobustLoss``: not a catalog entry (its shape and scale are learned), but a
#: regression candidate; its parameters train with the model's
ADAPTIVE_ROBUST = "adaptive_robust"

#: what turns the model's logits into a loss's input, by the catalog's ``input_space``
_INPUT_TRANSFORMS: dict[str, str] = {"log_probabilities": "log_softmax", "probabilities": "sigmoid"}
#: per-class options that take ``balanced`` / ``class_balanced``
_CLASS_OPTIONS = ("weight", "alpha")
CLASS_WEIGHTINGS = ("balanced", "class_balanced")


@dataclass(frozen=True)
class Candidate:
    """One loss with its options, as ``compare`` trains it."""

    loss: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The candidate as it would be typed back into ``--losses``."""
        parts = [self.loss, *(f"{k}={_format_value(v)}" for k, v in self.options.items())]
        return ":".join(parts)

    def json_options(self) -> dict[str, Any]:
        return {
            k: v if isinstance(v, int | float | str | bool) or v is None else str(v)
            for k, v in self.options.items()
        }


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _positional_inputs(spec: LossSpec) -> list[str]:
    return [
        p.name
        for p in inspect.signature(spec.functional).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def adapter_for(spec: LossSpec, task: str) -> str | None:
    """How ``spec`` fits a model trained for ``task``, or ``None`` if it cannot train one:
    ``"values"``, ``"logits"``, ``"one_vs_rest"``, ``"labels"``, ``"pairs"``, ``"triplets"``."""
    inputs = _positional_inputs(spec)
    if task == "regression":
        ok = spec.task == "regression" and len(inputs) == 2 and spec.target_kind == "real"
        return "values" if ok else None
    if task == "classification":
        if len(inputs) != 2 or spec.task not in ("classification", "multilabel"):
            return None
        if spec.target_kind == "class_index":
            return "logits"
        return "one_vs_rest" if spec.target_kind == "binary" else None
    if task == "embedding" and spec.task == "embedding":
        if len(inputs) == 2 and spec.target_kind == "class_index":
            return "labels"
        if len(inputs) == 3 and inputs[2] == "target":
            return "pairs"
        if inputs == ["anchor", "positive", "negative"]:
            return "triplets"
    return None


def compatible_losses(task: str) -> list[str]:
    """Every catalog loss (and ``adaptive_robust`` for regression) that can train ``task``."""
    names = [s.name for s in get_catalog().specs() if adapter_for(s, task) is not None]
    return [*names, ADAPTIVE_ROBUST] if task == "regression" else names


def parse_value(text: str, default: Any) -> Any:
    low = text.strip().lower()
    if isinstance(default, bool) or low in ("true", "false"):
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise DataError(f"option value {text!r} is not a boolean; expected true or false")
    if low == "none":
        return None
    if low in ("inf", "+inf", "-inf"):
        return float(low)
    try:
        number = float(text)
    except ValueError:
        return text.strip()
    if isinstance(default, int) and number.is_integer():
        return int(number)
    return number


def parse_candidate(text: str, task: str | None = None) -> Candidate:
    """``name[:option=value...]`` -> :class:`Candidate`, checked against the catalog (an
    unknown loss or option is a ``KeyError``/``LossInputError`` that names the alternatives)
    and, given ``task``, against what can train it."""
    name, *parts = [p.strip() for p in text.strip().split(":")]
    if not name:
        raise DataError(f"--losses holds an empty name in {text!r}; expected name[:option=value]")
    options: dict[str, Any] = {}
    if name.lower().replace("-", "_") == ADAPTIVE_ROBUST:
        if parts:
            raise DataError(f"{ADAPTIVE_ROBUST} takes no options; it learns its shape and scale")
        if task is not None and task != "regression":
            raise DataError(f"{ADAPTIVE_ROBUST} is a regression loss; the task is {task}")
        return Candidate(ADAPTIVE_ROBUST)
    spec = get_catalog()[name]
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataError(f"--losses option {part!r} of {name}; expected option=value")
        if key == "cb_beta":
            options[key] = parse_value(value, 0.0)
            continue
        default = spec.param(key).default
        parsed = parse_value(value, default)
        if isinstance(parsed, str) and parsed in CLASS_WEIGHTINGS and key not in _CLASS_OPTIONS:
            raise DataError(f"{spec.name}: {key}={parsed} applies to the per-class options only")
        options[key] = parsed
    if task is not None and adapter_for(spec, task) is None:
        fits = ", ".join(compatible_losses(task))
        raise DataError(
            f"{spec.name} ({spec.task}) cannot train a {task} model here; losses that can: {fits}"
        )
    if "cb_beta" in options and "class_balanced" not in options.values():
        raise DataError(f"{spec.name}: cb_beta applies with weight= or alpha=class_balanced only")
    return Candidate(spec.name, options)


def parse_candidates(text: str, task: str | None = None) -> list[Candidate]:
    """A comma-separated ``--losses`` list; duplicates are an error."""
    candidates = [parse_candidate(part, task) for part in text.split(",") if part.strip()]
    if not candidates:
        raise DataError("--losses is empty; expected loss names, e.g. mse,l1,huber")
    labels = [c.label for c in candidates]
    duplicate = next((label for label in labels if labels.count(label) > 1), None)
    if duplicate is not None:
        raise DataError(f"--losses names {duplicate} twice")
    return candidates


# ----------------------------------------------------------------------- the training loss


class CandidateLoss(nn.Module):
    """A candidate fitted to the model's outputs: ``forward(outputs, target) -> scalar``.

    A module so that a loss with parameters (``adaptive_robust``) hands them to the optimizer
    with the model's."""

    def __init__(
        self,
        candidate: Candidate,
        task: str,
        *,
        num_classes: int = 0,
        options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.candidate = candidate
        self.task = task
        self.num_classes = num_classes
        if candidate.loss == ADAPTIVE_ROBUST:
            from losskit.nn import AdaptiveRobustLoss

            self.adaptive: nn.Module | None = AdaptiveRobustLoss(num_dims=1)
            self.spec: LossSpec | None = None
            self.adapter = "values"
        else:
            self.adaptive = None
            self.spec = get_catalog()[candidate.loss]
            adapter = adapter_for(self.spec, task)
            if adapter is None:
                raise DataError(f"{candidate.loss} cannot train a {task} model")
            self.adapter = adapter
        self.options = dict(options if options is not None else candidate.options)
        self.transform = _INPUT_TRANSFORMS.get(self.spec.input_space) if self.spec else None
        # triplet_margin's random triplets: their own generator, so every run draws the same
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        if self.adaptive is not None:
            return self.adaptive(outputs, target)
        assert self.spec is not None
        fn, opts = self.spec.functional, self.options
        if self.transform == "log_softmax":
            outputs = F.log_softmax(outputs, dim=1)
        elif self.transform == "sigmoid":
            outputs = torch.sigmoid(outputs)
        if self.adapter in ("values", "logits", "labels"):
            return fn(outputs, target, **opts)
        if self.adapter == "one_vs_rest":
            one_hot = F.one_hot(target, self.num_classes).to(outputs.dtype)
            return fn(outputs, one_hot, **opts)
        if self.adapter == "pairs":
            i, j = torch.triu_indices(len(target), len(target), offset=1)
            sign = (target[i] == target[j]).to(outputs.dtype) * 2 - 1
            return fn(outputs[i], outputs[j], sign, **opts)
        anchor, positive, negative = self._random_triplets(target)
        return fn(outputs[anchor], outputs[positive], outputs[negative], **opts)

    def _random_triplets(self, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        same = labels[:, None] == labels[None, :]
        same.fill_diagonal_(False)
        different = labels[:, None] != labels[None, :]
        anchors = (same.any(1) & different.any(1)).nonzero().squeeze(1)
        if len(anchors) == 0:
            return anchors, anchors, anchors
        positive = torch.multinomial(same[anchors].float(), 1, generator=self.generator)
        negative = torch.multinomial(different[anchors].float(), 1, generator=self.generator)
        return anchors, positive.squeeze(1), negative.squeeze(1)

    def learned(self) -> dict[str, float]:
        """What the loss learned (adaptive_robust's alpha and scale), for the report."""
        if self.adaptive is None:
            return {}
        return {
            "alpha": float(self.adaptive.alpha.detach().squeeze()),  # type: ignore[union-attr]
            "scale": float(self.adaptive.scale.detach().squeeze()),  # type: ignore[union-attr]
        }


def resolve_options(candidate: Candidate, train_target: np.ndarray, num_classes: int) -> dict:
    """The candidate's options with ``balanced``/``class_balanced`` turned into per-class
    tensors from the training fold's class counts."""
    options = dict(candidate.options)
    beta = float(options.pop("cb_beta", 0.999))
    if not any(v in CLASS_WEIGHTINGS for v in options.values() if isinstance(v, str)):
        return options
    counts = np.bincount(train_target, minlength=num_classes).astype(np.float64)
    present = np.maximum(counts, 1.0)  # a class absent from the fold still gets a finite weight
    for key, value in options.items():
        if value == "balanced":
            options[key] = torch.tensor(counts.sum() / (num_classes * present), dtype=torch.float32)
        elif value == "class_balanced":
            options[key] = class_balanced_weights(torch.tensor(present), beta=beta).float()
    return options


def build_loss(
    candidate: Candidate,
    task: str,
    train_target: np.ndarray,
    num_classes: int = 0,
    seed: int = 0,
) -> CandidateLoss:
    """The training loss of ``candidate`` for one training fold."""
    options = resolve_options(candidate, train_target, num_classes) if num_classes else None
    if options is None:
        options = {k: v for k, v in candidate.options.items() if k != "cb_beta"}
    return CandidateLoss(candidate, task, num_classes=num_classes, options=options, seed=seed)
