"""The loss and its gradient along one variable, for ``losskit show NAME --plot``.

The variable is the one that fits the loss's inputs, read from the catalog:

* regression losses: the residual ``input - target``;
* class-index losses: the probability ``p_t`` of the true class (two classes, logits
  ``[z, 0]``), with the gradient taken with respect to the true-class logit ``z``;
* binary losses: the logit ``z``, for a positive (solid) and a negative (dashed) target;
* segmentation losses (Dice, Tversky, Lovász ...: one value per image or batch, not per
  pixel): one image of 100 pixels, 10 of them foreground, whose 90 background pixels predict
  the foreground with probability 0.1; the curve is the loss as the predicted foreground
  probability ``p`` of the 10 foreground pixels goes from 0 to 1, with the gradient taken with
  respect to their (shared) foreground logit;
* embedding losses: the gap ``d(a, n) - d(a, p)`` of one triplet (``d(a, p) = 1``), or the
  cosine similarity of a pair (similar: solid, dissimilar: dashed);
* ranking losses: the score difference ``s_pos - s_neg``;
* distillation losses: the predicted probability of the first of two classes, against the
  target distribution ``(0.7, 0.3)``.
"""

from __future__ import annotations

import inspect
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from losskit._catalog import HyperParam, LossSpec

__all__ = [
    "LossView",
    "NoView",
    "check_plot_request",
    "check_value",
    "hyper_values",
    "plot_loss",
    "view_for",
]

_POINTS = 241
#: the segmentation picture: an image of _PIXELS pixels, the first _FOREGROUND of them
#: foreground, the background pixels at foreground probability _BACKGROUND_P
_PIXELS = 100
_FOREGROUND = 10
_BACKGROUND_P = 0.1


class NoView(ValueError):
    """The loss has no one-dimensional picture (e.g. CTC)."""


@dataclass(frozen=True)
class LossView:
    """``curves(options) -> [(label suffix, loss, gradient)]`` over ``x``."""

    xlabel: str
    grad_label: str
    x: np.ndarray
    curves: Callable[[dict[str, Any]], list[tuple[str, np.ndarray, np.ndarray]]]


def _positional(spec: LossSpec) -> list[str]:
    return [
        p.name
        for p in inspect.signature(spec.functional).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def _grad(fn: Callable[[Tensor], Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise loss values and d loss / d x, with ``fn`` mapping a vector of x to a vector
    of per-point losses."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    values = fn(t)
    (grad,) = torch.autograd.grad(values.sum(), t)
    return values.detach().numpy(), grad.numpy()


def _pointwise(fn: Callable[[Tensor], Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For losses that only reduce (one call per point)."""
    values, grads = [], []
    for v in x:
        t = torch.tensor(float(v), dtype=torch.float64, requires_grad=True)
        value = fn(t)
        (g,) = torch.autograd.grad(value, t, allow_unused=True)
        values.append(float(value.detach()))
        grads.append(0.0 if g is None else float(g))
    return np.array(values), np.array(grads)


def view_for(spec: LossSpec) -> LossView:
    fn = spec.functional
    inputs = _positional(spec)
    kind = spec.input_space

    if spec.task == "regression" and len(inputs) == 2:
        x = np.linspace(-4.0, 4.0, _POINTS)

        def regression(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            return [("", *_grad(lambda r: fn(r, torch.zeros_like(r), reduction="none", **opts), x))]

        return LossView("residual (input - target)", "d loss / d input", x, regression)

    if spec.target_kind == "class_index" and spec.task == "classification":
        p = np.linspace(0.005, 0.995, _POINTS)
        z = np.log(p) - np.log1p(-p)

        def logits_of(t: Tensor) -> Tensor:
            return torch.stack([t, torch.zeros_like(t)], dim=1)

        def classification(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            def per_point(t: Tensor) -> Tensor:
                logits = logits_of(t)
                target = torch.zeros(len(t), dtype=torch.long)
                if inputs == ["input", "weight", "target"]:  # hidden states and an output layer
                    weight = torch.tensor([[1.0], [0.0]], dtype=t.dtype)
                    return fn(t[:, None], weight, target, reduction="none", **opts)
                if kind == "log_probabilities":
                    logits = torch.log_softmax(logits, dim=1)
                return fn(logits, target, reduction="none", **opts)

            return [("", *_grad(per_point, z))]

        view = LossView(
            "p_t (probability of the true class)",
            "d loss / d z (true-class logit)",
            p,
            classification,
        )
        two_class = (torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
        if inputs == ["input", "weight", "target"] or (
            len(inputs) == 2 and _one_loss_per_row(fn, *two_class)
        ):
            return view

    if spec.task == "segmentation" and len(inputs) == 2:
        return _segmentation_view(spec)

    if spec.target_kind == "binary" and len(inputs) == 2:
        z = np.linspace(-6.0, 6.0, _POINTS)

        def binary(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            curves = []
            for label, y in (("target 1", 1.0), ("target 0", 0.0)):

                def per_point(t: Tensor, y: float = y) -> Tensor:
                    x = torch.sigmoid(t) if kind == "probabilities" else t
                    return fn(x, torch.full_like(t, y), reduction="none", **opts)

                curves.append((label, *_grad(per_point, z)))
            return curves

        view = LossView("logit z", "d loss / d z", z, binary)
        if _one_loss_per_row(fn, torch.zeros(3), torch.ones(3)):
            return view

    if spec.task == "embedding":
        # one triplet: losses of three points, or of a labelled batch that a miner turns into
        # triplets (the picture picks the one triplet with a miner of its own)
        mined = len(inputs) == 2 and spec.target_kind == "class_index" and _has_param(spec, "miner")
        if inputs == ["anchor", "positive", "negative"] or mined:
            # from -0.75: at -1 the negative would sit on the anchor, where the distance's
            # gradient is set to 0
            gap = np.linspace(-0.75, 2.5, _POINTS)

            def triplet(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
                # anchor at 0, positive at 1, negative at -(1 + gap): d(a,p) = 1, d(a,n) = 1 + gap
                def per_point(g: Tensor) -> Tensor:
                    anchor = torch.zeros(len(g), 1, dtype=g.dtype)
                    positive = torch.ones(len(g), 1, dtype=g.dtype)
                    negative = -(1.0 + g)[:, None]
                    if len(inputs) == 3:
                        return fn(anchor, positive, negative, reduction="none", **opts)
                    return torch.stack(
                        [
                            fn(
                                torch.stack([anchor[i], positive[i], negative[i]]),
                                torch.tensor([0, 0, 1]),
                                miner=_one_triplet,
                                reduction="sum",
                                **opts,
                            )
                            for i in range(len(g))
                        ]
                    )

                return [("", *_grad(per_point, gap))]

            return LossView(
                "distance gap d(a,n) - d(a,p)  (d(a,p) = 1)", "d loss / d gap", gap, triplet
            )
        if len(inputs) == 3 and inputs[2] == "target":  # a pair and whether it is similar
            s = np.linspace(-0.999, 0.999, _POINTS)

            def pairs(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
                curves = []
                for label, y in (("similar", 1.0), ("dissimilar", -1.0)):

                    def per_point(t: Tensor, y: float = y) -> Tensor:
                        x1 = torch.stack([torch.ones_like(t), torch.zeros_like(t)], dim=1)
                        x2 = torch.stack([t, torch.sqrt(1 - t**2)], dim=1)
                        return fn(x1, x2, torch.full_like(t, y), reduction="none", **opts)

                    curves.append((label, *_grad(per_point, s)))
                return curves

            return LossView("cosine similarity", "d loss / d cosine", s, pairs)

    if spec.task == "ranking":
        d = np.linspace(-4.0, 4.0, _POINTS)

        def ranking(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            def per_point(t: Tensor) -> Tensor:
                zero = torch.zeros_like(t)
                if len(inputs) == 3:
                    return fn(t, zero, torch.ones_like(t), reduction="none", **opts)
                return fn(t, zero, reduction="none", **opts)

            return [("", *_grad(per_point, d))]

        return LossView("score difference s_pos - s_neg", "d loss / d difference", d, ranking)

    if spec.task == "distribution" and len(inputs) == 2:
        q = np.linspace(0.005, 0.995, _POINTS)
        target = torch.tensor([[0.7, 0.3]], dtype=torch.float64)

        def distribution(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            def one(t: Tensor) -> Tensor:
                probs = torch.stack([t, 1 - t])[None, :]
                if kind == "log_probabilities":
                    return fn(torch.log(probs), target, **opts)
                # logit losses (distillation) take the teacher's logits as the target
                return fn(torch.log(probs), torch.log(target), **opts)

            return [("", *_pointwise(one, q))]

        return LossView(
            "predicted probability of class 1 (target 0.7)",
            "d loss / d probability",
            q,
            distribution,
        )

    raise NoView(
        f"{spec.name} ({spec.task}) has no one-dimensional picture: its value depends on whole "
        "sequences, images or batches of inputs"
    )


def _segmentation_view(spec: LossSpec) -> LossView:
    """One image (see the module docstring): 2-class logits ``(1, 2, 100)`` against a mask
    ``(1, 100)``, or for binary losses one channel of logits ``(1, 1, 100)`` against a 0/1
    mask of that shape."""
    fn = spec.functional
    p = np.linspace(0.005, 0.995, _POINTS)
    z = np.log(p) - np.log1p(-p)
    background = math.log(_BACKGROUND_P) - math.log1p(-_BACKGROUND_P)

    def segmentation(opts: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        def one(t: Tensor) -> Tensor:
            mask = torch.arange(_PIXELS) < _FOREGROUND
            foreground = torch.where(mask, t, torch.tensor(background, dtype=t.dtype))
            if spec.target_kind == "binary":
                return fn(foreground[None, None], mask[None, None].to(t.dtype), **opts)
            logits = torch.stack([torch.zeros_like(foreground), foreground])[None]
            return fn(logits, mask.long()[None], **opts)

        return [("", *_pointwise(one, z))]

    return LossView(
        f"p_fg of the {_FOREGROUND} foreground pixels "
        f"({_PIXELS - _FOREGROUND} background ones at {_BACKGROUND_P:g})",
        "d loss / d z (their foreground logit)",
        p,
        segmentation,
    )


def _one_loss_per_row(fn: Callable[..., Tensor], input: Tensor, target: Tensor) -> bool:
    """Whether ``fn(input, target, reduction="none")`` gives one loss per row, which the
    curves need: losses of whole images (Dice, Lovász) give one per class or refuse rows."""
    from losskit._checks import LossInputError

    try:
        values = fn(input, target, reduction="none")
    except (LossInputError, TypeError):
        return False
    return tuple(values.shape) == (len(input),)


def _has_param(spec: LossSpec, name: str) -> bool:
    return any(p.name == name for p in spec.params)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _one_triplet(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A miner that picks the one triplet (0, 1, 2) of the plotted three points."""
    return torch.tensor([0]), torch.tensor([1]), torch.tensor([2])


def _round(value: float) -> float:
    return float(f"{value:.2g}")


def varied_param(spec: LossSpec, name: str | None = None) -> HyperParam | None:
    """The hyper-parameter the plot varies: ``name``, else the first with a numeric default
    and a tuning range."""
    if name is not None:
        return spec.param(name)
    for p in spec.params:
        numeric = isinstance(p.default, int | float) and not isinstance(p.default, bool)
        if numeric and p.low is not None and p.high is not None:
            return p
    return None


def hyper_values(param: HyperParam) -> list[float]:
    """The default and the ends and quarter points of the tuning range (log-spaced for a log
    range), rounded to two significant digits."""
    low, high = float(param.low), float(param.high)  # type: ignore[arg-type]
    if param.log:
        points = [
            math.exp(math.log(low) + f * (math.log(high) - math.log(low)))
            for f in (0.0, 0.25, 0.5, 1.0)
        ]
    else:
        points = [low + f * (high - low) for f in (0.0, 0.25, 0.5, 1.0)]
    values = {_round(v) for v in points} | {float(param.default)}
    return sorted(values)


def check_plot_request(
    spec: LossSpec, path: Path, param_name: str | None, values: list[float] | None
) -> tuple[LossView, HyperParam | None]:
    """The view and the varied hyper-parameter, or a ``ValueError`` (``NoView`` included) that
    says why the plot cannot be drawn; nothing is computed or written."""
    view = view_for(spec)
    parent = path.expanduser().parent
    if not parent.is_dir():
        what = "is a file, not a directory" if parent.exists() else "does not exist"
        raise ValueError(f"--plot {path}: the directory {path.parent} {what}")
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in formats:
        raise ValueError(
            f"--plot {path}: format {suffix or '(none)'!r} is not supported; expected a file "
            f"name ending in one of {', '.join('.' + f for f in sorted(formats))}"
        )
    param = varied_param(spec, param_name)
    if param is not None:
        if isinstance(param.default, bool) or not isinstance(param.default, int | float):
            raise ValueError(
                f"--vary {param.name}: the plot varies numeric hyper-parameters; "
                f"{param.name} defaults to {param.default!r}"
            )
        if values is None and (param.low is None or param.high is None):
            raise ValueError(f"--vary {param.name} has no tuning range; give its --values")
        for value in values or []:
            check_value(spec, param, value)
    return view, param


def check_value(spec: LossSpec, param: HyperParam, value: float) -> None:
    """A ``LossInputError`` (a ``ValueError``) if the loss refuses ``value`` for ``param``:
    the loss is called with it on one of its catalog samples, so its own validation decides."""
    integer = isinstance(param.default, int) and not isinstance(param.default, bool)
    if integer and not float(value).is_integer():
        raise ValueError(f"--values: {param.name} is an integer; {value:g} is not")
    option = int(value) if integer else value
    import torch

    sample = next(iter(spec.sample_inputs(torch.float64, torch.device("cpu"))), None)
    if sample is not None:
        try:
            spec.functional(*sample.args, **{**sample.kwargs, param.name: option})
        except ValueError as exc:
            raise ValueError(f"--values {value:g}: {exc}") from None


def plot_loss(
    spec: LossSpec,
    path: Path,
    *,
    param_name: str | None = None,
    values: list[float] | None = None,
) -> tuple[str | None, list[float]]:
    """Draw the loss and its gradient for the default and a few values of one hyper-parameter
    into ``path`` (written whole or not at all); returns that parameter and its values."""
    view, param = check_plot_request(spec, path, param_name, values)
    if param is None:
        settings: list[tuple[str, dict[str, Any]]] = [("", {})]
        drawn: list[float] = []
    else:
        drawn = values if values is not None else hyper_values(param)
        settings = [
            (
                f"{param.name}={v:g}" + (" (default)" if v == param.default else ""),
                {param.name: int(v) if isinstance(param.default, int) else v},
            )
            for v in drawn
        ]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(10.0, 3.9))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, opts) in enumerate(settings):
        colour = colours[i % len(colours)]
        is_default = param is not None and opts.get(param.name) == param.default
        for j, (suffix, loss, grad) in enumerate(view.curves(opts)):
            style = "-" if j == 0 else "--"
            name = ", ".join(x for x in (label, suffix) if x) or spec.name
            width = 2.2 if is_default else 1.4
            ax_loss.plot(view.x, loss, style, color=colour, linewidth=width, label=name)
            ax_grad.plot(view.x, grad, style, color=colour, linewidth=width)
    for ax, ylabel in ((ax_loss, "loss"), (ax_grad, view.grad_label)):
        ax.set_xlabel(view.xlabel)
        ax.set_ylabel(ylabel)
        ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
        ax.grid(alpha=0.25)
    ax_loss.set_title(f"{spec.name}: loss", fontsize=10)
    ax_grad.set_title(f"{spec.name}: gradient", fontsize=10)
    ax_loss.legend(fontsize=7)
    fig.tight_layout()
    path = path.expanduser()
    handle, staging = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        fig.savefig(staging, dpi=110)
        os.chmod(staging, 0o666 & ~_umask())  # mkstemp makes it private; the plot is not
        os.replace(staging, path)
    finally:
        plt.close(fig)
        if os.path.exists(staging):
            os.remove(staging)
    return (param.name if param is not None else None), drawn
