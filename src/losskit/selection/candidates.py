"""Candidates: a catalog loss with options, written ``name[:option=value[:option=value]]`` (e.g.
``huber:delta=0.5``, ``focal:gamma=1:alpha=class_balanced``, ``triplet:miner=semi_hard``), or
the equally weighted sum of several, ``a+b`` (``dice+cross_entropy``, each part with its own
options), and how each one is fitted to the outputs of the model that ``compare`` trains.

Which losses can train which task is read from the catalog (task, target kind and the
functional's positional inputs), not listed here:

* regression: the model predicts one number; regression losses of ``(input, target)``.
* classification: the model predicts one logit per class; class-index losses take the
  logits and the labels, binary losses (``bce_with_logits``, ``sigmoid_focal``, ``hinge``,
  ``asymmetric``) take them one-vs-rest against one-hot targets.
* embedding: the model predicts an L2-normalised embedding; label-form losses (``triplet``,
  ``nt_xent``, ``supcon``) take embeddings and labels and mine the batch, pair losses
  (``cosine_embedding``) take every pair of the batch, ``triplet_margin`` takes one random
  (positive, negative) per anchor, and two-view losses (``info_nce``, ``clip``, ``siglip``:
  two embedding inputs and no target) take the embeddings of two augmented views of each row
  (:func:`make_views`: Gaussian noise and feature dropout), each row's other view its positive
  and the batch's other rows its negatives: self-supervised, the labels are not used. CLIP's
  ``logit_scale`` and SigLIP's ``logit_scale``/``logit_bias`` are fixed at the catalog's
  values (the papers' initial ones: 1/0.07; 10 and -10), not learned, so that every candidate
  trains only the model's weights; ``--losses clip:logit_scale=30`` sets them and ``losskit
  tune clip`` searches them (log scale), as it searches the cosine losses' ``temperature``.
* segmentation: the model predicts one logit per class and pixel, ``(N, C, H, W)``; the
  segmentation losses with class-index targets take the logits and the masks ``(N, H, W)``,
  and so does every classification loss of class indices that accepts images
  (``cross_entropy``, ``focal``: the per-pixel baselines the overlap losses are measured
  against); binary losses (``lovasz_hinge``, ``bce_with_logits``) take them one-vs-rest
  against one-hot masks ``(N, C, H, W)``. Which losses accept images is found by calling each
  on a tiny batch of images, not listed.

Option values beyond numbers, booleans and names: ``weight=balanced`` (inverse class frequency
of the training fold, scikit-learn's "balanced") and ``weight=class_balanced`` /
``alpha=class_balanced`` (:func:`losskit.class_balanced_weights` of the training fold's class
counts, with ``beta`` from ``cb_beta``, default 0.999) for per-class options.
"""

from __future__ import annotations

import inspect
import re
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
    "make_views",
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
#: ``a+b``: the sum of two candidates; a ``+`` before a digit stays in a number (``1e+3``)
_PLUS = re.compile(r"\+(?=\s*[A-Za-z_])")
#: the two views of a row (two-view losses): noise in units of the standardised features, and
#: the share of features zeroed, drawn independently for each view
VIEW_NOISE = 0.5
VIEW_DROPOUT = 0.2


@dataclass(frozen=True)
class Candidate:
    """One loss with its options, as ``compare`` trains it."""

    loss: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: a sum of losses (``dice+cross_entropy``): its parts, each with its options; ``loss``
    #: is then the parts' names joined by ``+`` and ``options`` is empty
    parts: tuple[Candidate, ...] = ()

    @property
    def label(self) -> str:
        """The candidate as it would be typed back into ``--losses``."""
        if self.parts:
            return "+".join(p.label for p in self.parts)
        parts = [self.loss, *(f"{k}={_format_value(v)}" for k, v in self.options.items())]
        return ":".join(parts)

    def json_options(self) -> dict[str, Any]:
        if self.parts:  # "dice.smooth": the part's name before each of its options
            return {f"{p.loss}.{k}": v for p in self.parts for k, v in p.json_options().items()}
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
    ``"values"``, ``"logits"``, ``"one_vs_rest"``, ``"labels"``, ``"pairs"``, ``"triplets"``,
    ``"views"``."""
    inputs = _positional_inputs(spec)
    if task == "segmentation":
        if len(inputs) != 2 or spec.task not in ("segmentation", "classification", "multilabel"):
            return None
        adapter = {"class_index": "logits", "binary": "one_vs_rest"}.get(spec.target_kind)
        return adapter if adapter is not None and _accepts_images(spec, adapter) else None
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
        if len(inputs) == 2 and spec.target_kind != "class_index":
            return "views"  # two embeddings and no target: (query, positive key) pairs
    return None


#: (name, functional) -> whether it takes images; the probe runs once per loss
_IMAGES: dict[tuple[str, Any], bool] = {}


def _accepts_images(spec: LossSpec, adapter: str) -> bool:
    """Whether ``spec`` computes a finite scalar from logits ``(2, 3, 4, 4)`` (through its
    input transform) and masks ``(2, 4, 4)`` (one-hot ``(2, 3, 4, 4)`` for binary losses):
    losses of one row of class scores (``multi_margin``) refuse images."""
    key = (spec.name, spec.functional)
    if key not in _IMAGES:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            logits = torch.randn(2, 3, 4, 4)
        masks = torch.arange(32).reshape(2, 4, 4) % 3
        outputs = _transform(logits, _INPUT_TRANSFORMS.get(spec.input_space))
        target: Tensor = masks
        if adapter == "one_vs_rest":
            target = F.one_hot(masks, 3).movedim(-1, 1).float()
        try:
            value = spec.functional(outputs, target)
        except (ValueError, TypeError, RuntimeError, IndexError):  # LossInputError included
            _IMAGES[key] = False
        else:
            _IMAGES[key] = value.dim() == 0 and bool(torch.isfinite(value))
    return _IMAGES[key]


def _transform(outputs: Tensor, transform: str | None) -> Tensor:
    if transform == "log_softmax":
        return F.log_softmax(outputs, dim=1)
    if transform == "sigmoid":
        return torch.sigmoid(outputs)
    return outputs


def make_views(x: Tensor, generator: torch.Generator) -> Tensor:
    """Two augmented views of each row of ``x`` (standardised features), stacked: rows
    ``0..n-1`` the first views, ``n..2n-1`` the second. Each view adds Gaussian noise
    (``VIEW_NOISE`` standard deviations) and zeroes a random ``VIEW_DROPOUT`` of the features,
    drawn independently; deterministic for a given ``generator`` state."""
    both = x.repeat(2, *([1] * (x.dim() - 1)))
    noise = torch.randn(both.shape, generator=generator, dtype=x.dtype) * VIEW_NOISE
    keep = torch.rand(both.shape, generator=generator, dtype=x.dtype) >= VIEW_DROPOUT
    return (both + noise) * keep


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
    """``name[:option=value...]`` (or ``a+b``, a sum of such) -> :class:`Candidate`, checked
    against the catalog (an unknown loss or option is a ``KeyError``/``LossInputError`` that
    names the alternatives) and, given ``task``, against what can train it."""
    terms = _PLUS.split(text)
    if len(terms) > 1:
        if any(not t.strip() for t in terms):
            raise DataError(f"--losses holds an empty term in {text!r}; expected a+b")
        summed = tuple(parse_candidate(t, task) for t in terms)
        labels = [_effective(p) for p in summed]
        if len(set(labels)) < len(labels):
            raise DataError(f"--losses {text.strip()} adds a loss to itself; expected a+b")
        return Candidate("+".join(p.loss for p in summed), parts=summed)
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
    # the same loss with the same options, however written (an alias, a default spelled
    # out): training it twice would only add a row that ties with itself
    seen: dict[str, Candidate] = {}
    for candidate in candidates:
        key = _effective(candidate)
        if key in seen:
            first = seen[key]
            same = (
                "" if first.label == candidate.label else f" ({first.label} and {candidate.label})"
            )
            raise DataError(f"--losses names {first.label} twice{same}; expected each loss once")
        seen[key] = candidate
    return candidates


def _effective(candidate: Candidate) -> str:
    """The candidate with every option at its value, defaults filled in, as text."""
    if candidate.parts:
        return " + ".join(_effective(p) for p in candidate.parts)
    if candidate.loss == ADAPTIVE_ROBUST:
        return ADAPTIVE_ROBUST
    options = {**get_catalog()[candidate.loss].defaults(), **candidate.options}
    return repr((candidate.loss, sorted((k, repr(v)) for k, v in options.items())))


# ----------------------------------------------------------------------- the training loss


class CandidateLoss(nn.Module):
    """A candidate fitted to the model's outputs: ``forward(outputs, target) -> scalar``.

    A module so that a loss with parameters (``adaptive_robust``) hands them to the optimizer
    with the model's. A sum of candidates holds one per part and adds their losses."""

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
        self.terms = nn.ModuleList()
        self.adaptive: nn.Module | None = None
        self.spec: LossSpec | None = None
        # triplet_margin's random triplets: their own generator, so every run draws the same
        self.generator = torch.Generator().manual_seed(seed)
        if candidate.parts:
            part_options = options if options is not None else {}
            for part in candidate.parts:
                self.terms.append(
                    CandidateLoss(
                        part,
                        task,
                        num_classes=num_classes,
                        options=part_options.get(part.label, part.options),
                        seed=seed,
                    )
                )
            adapters = {t.adapter for t in self.terms}  # type: ignore[union-attr]
            if "views" in adapters and len(adapters) > 1:
                raise DataError(
                    f"{candidate.label}: a two-view loss adds only to other two-view losses"
                )
            self.adapter = adapters.pop() if len(adapters) == 1 else "sum"
            self.options: dict[str, Any] = {}
            self.transform: str | None = None
            return
        if candidate.loss == ADAPTIVE_ROBUST:
            from losskit.nn import AdaptiveRobustLoss

            self.adaptive = AdaptiveRobustLoss(num_dims=1)
            self.adapter = "values"
        else:
            self.spec = get_catalog()[candidate.loss]
            adapter = adapter_for(self.spec, task)
            if adapter is None:
                raise DataError(f"{candidate.loss} cannot train a {task} model")
            self.adapter = adapter
        self.options = dict(options if options is not None else candidate.options)
        self.transform = _INPUT_TRANSFORMS.get(self.spec.input_space) if self.spec else None

    @property
    def views(self) -> bool:
        """Whether the model's outputs must be those of :func:`make_views`'s two views."""
        return self.adapter == "views"

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        if len(self.terms):
            total = self.terms[0](outputs, target)
            for term in list(self.terms)[1:]:
                total = total + term(outputs, target)
            return total
        if self.adaptive is not None:
            return self.adaptive(outputs, target)
        assert self.spec is not None
        fn, opts = self.spec.functional, self.options
        outputs = _transform(outputs, self.transform)
        if self.adapter in ("values", "logits", "labels"):
            return fn(outputs, target, **opts)
        if self.adapter == "views":
            first, second = outputs.chunk(2)
            return fn(first, second, **opts)
        if self.adapter == "one_vs_rest":
            one_hot = F.one_hot(target, self.num_classes).to(outputs.dtype)
            if outputs.dim() > 2:  # images: the class axis after the batch's
                one_hot = one_hot.movedim(-1, 1)
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
        if len(self.terms):
            return {k: v for term in self.terms for k, v in term.learned().items()}  # type: ignore[operator]
        if self.adaptive is None:
            return {}
        return {
            "alpha": float(self.adaptive.alpha.detach().squeeze()),  # type: ignore[union-attr]
            "scale": float(self.adaptive.scale.detach().squeeze()),  # type: ignore[union-attr]
        }


def resolve_options(candidate: Candidate, train_target: np.ndarray, num_classes: int) -> dict:
    """The candidate's options with ``balanced``/``class_balanced`` turned into per-class
    tensors from the training fold's class counts (of pixels, for masks); for a sum, each
    part's, by its label."""
    if candidate.parts:
        return {p.label: resolve_options(p, train_target, num_classes) for p in candidate.parts}
    options = dict(candidate.options)
    beta = float(options.pop("cb_beta", 0.999))
    if not any(v in CLASS_WEIGHTINGS for v in options.values() if isinstance(v, str)):
        return options
    counts = np.bincount(np.ravel(train_target), minlength=num_classes).astype(np.float64)
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
    if options is None and candidate.parts:
        options = {
            p.label: {k: v for k, v in p.options.items() if k != "cb_beta"} for p in candidate.parts
        }
    elif options is None:
        options = {k: v for k, v in candidate.options.items() if k != "cb_beta"}
    return CandidateLoss(candidate, task, num_classes=num_classes, options=options, seed=seed)
