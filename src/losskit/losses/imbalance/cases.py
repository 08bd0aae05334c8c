"""Fixtures of the class-imbalance entries (sigmoid and softmax focal loss, Poly-1
cross-entropy, the asymmetric loss): references, sample, error and benchmark inputs. Loaded on
demand by the tests, the benchmark harness and ``losskit tour``.

The references are explicit formulas (torchvision cannot be a dependency): the
``*_formula`` functions below are the eager textbook computations, in the input's dtype. The
test matrix evaluates them in float64; the benchmarks run them as they are, in float32, as
the implementation a user would otherwise write (torchvision's ``sigmoid_focal_loss`` is this
formula line for line).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker, binary_errors
from losskit.losses.classification.cases import score_errors, with_ignored

_EXTREME = frozenset({"extreme"})


# ------------------------------------------------------------------------------ references


def _reduce(loss: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean() if loss.numel() else loss.sum()
    total = weight.sum()
    return loss.sum() / total if total != 0 else loss.sum()


def torchvision_sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    pos_weight: Tensor | float | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss's formula (``alpha=None`` for its ``alpha=-1``),
    plus ``pos_weight`` in the cross-entropy and losskit's weighted mean."""
    if pos_weight is not None and not isinstance(pos_weight, Tensor):
        pos_weight = torch.tensor(pos_weight, dtype=input.dtype, device=input.device)
    p = torch.sigmoid(input)
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none", pos_weight=pos_weight)
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha is not None:
        alpha_t = alpha * target + (1 - alpha) * (1 - target)
        loss = alpha_t * loss
    return _reduce(loss, reduction, weight)


def _class_scores(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if input.dim() > 1:
        return input, target
    return input.unsqueeze(0), target.unsqueeze(0)


def _target_distribution(
    log_p: Tensor, target: Tensor, ignore_index: int, label_smoothing: float
) -> tuple[Tensor, Tensor | None]:
    """(q, counted): the smoothed one-hot or probability targets, and the counted mask for
    class indices (None for probabilities)."""
    classes = log_p.shape[1]
    if target.is_floating_point():
        return target * (1 - label_smoothing) + label_smoothing / classes, None
    counted = target != ignore_index
    one_hot = F.one_hot(torch.where(counted, target, 0), classes).movedim(-1, 1).to(log_p.dtype)
    q = (one_hot * (1 - label_smoothing) + label_smoothing / classes) * counted.unsqueeze(1)
    return q, counted


def _class_reduce(
    per_sample: Tensor,
    target: Tensor,
    counted: Tensor | None,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "sum" or per_sample.numel() == 0:
        return per_sample.sum()
    if counted is None:
        return per_sample.mean()
    w = counted.to(per_sample.dtype)
    if weight is not None:
        w = w * weight[torch.where(counted, target, 0)]
    return per_sample.sum() / w.sum() if w.sum() != 0 else per_sample.sum()


def softmax_focal_formula(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | list[float] | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """The softmax focal loss written out: ``-sum_c alpha_c w_c q_c (1 - p_c)**gamma log p_c``
    over the dense target distribution, with cross-entropy's reduction rule."""
    if not target.is_floating_point():
        target = target.long()  # any integer dtype, as losskit takes them
    x, t = _class_scores(input, target)
    log_p = torch.log_softmax(x, 1)
    q, counted = _target_distribution(log_p, t, ignore_index, label_smoothing)
    scale = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    if weight is not None:
        scale = scale * weight
    if alpha is not None:
        scale = scale * torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    scale = scale.view((1, -1) + (1,) * (x.dim() - 2))
    per_sample = -(q * scale * (1 - log_p.exp()) ** gamma * log_p).sum(1)
    if counted is not None:
        # torch's cross-entropy gives an ignored row 0 whatever it holds (q = 0 there, but a
        # NaN logit would make it NaN * 0)
        per_sample = torch.where(counted, per_sample, 0.0)
    if input.dim() == 1:
        per_sample = per_sample.squeeze(0)
        counted = None if counted is None else counted.squeeze(0)
    return _class_reduce(per_sample, target, counted, weight, reduction)


def poly1_formula(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """torch's cross-entropy plus ``epsilon * sum_c w_c q_c (1 - p_c)``."""
    if not target.is_floating_point():
        target = target.long()  # any integer dtype, as losskit takes them
    if target.is_floating_point():
        ignore_index = -100  # torch refuses any other value for probabilities; it means nothing
    ce = F.cross_entropy(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    x, t = _class_scores(input, target)
    log_p = torch.log_softmax(x, 1)
    q, counted = _target_distribution(log_p, t, ignore_index, label_smoothing)
    if weight is not None:
        q = q * weight.view((1, -1) + (1,) * (x.dim() - 2))
    poly = (q * (1 - log_p.exp())).sum(1)
    if counted is not None:
        poly = torch.where(counted, poly, 0.0)  # as cross-entropy: no NaN * 0 from ignored rows
    if input.dim() == 1:
        poly = poly.squeeze(0)
        counted = None if counted is None else counted.squeeze(0)
    return _class_reduce(ce + epsilon * poly, target, counted, weight, reduction)


def poly1_authors_formula(input: Tensor, target: Tensor, *, epsilon: float = 1.0) -> Tensor:
    """Poly-1 as the paper's listing writes it (Leng et al. 2022): cross-entropy plus
    ``epsilon * (1 - p_t)`` with ``p_t`` from a one-hot target and the softmax; the benchmark's
    like-for-like reference (hard labels, the mean)."""
    ce = F.cross_entropy(input, target, reduction="none")
    pt = (F.one_hot(target, input.shape[1]).to(input.dtype) * input.softmax(1)).sum(1)
    return (ce + epsilon * (1 - pt)).mean()


def asymmetric_formula(
    input: Tensor,
    target: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The asymmetric loss of the paper, with log-sigmoid for the logs."""
    p = torch.sigmoid(input)
    positive = target * (1 - p) ** gamma_pos * F.logsigmoid(input)
    p_m = (p - clip).clamp(min=0)
    if clip == 0:
        log_kept = F.logsigmoid(-input)
    else:
        # log(1 - p_m) = log(1 - p + clip) where p > clip (0 elsewhere); not log1p(-p_m): at a
        # logit of 1e4 p rounds to 1, and a clip of 1e-50 to nothing next to it (-inf, not
        # log(1e-50))
        log_kept = torch.where(p > clip, torch.log(torch.sigmoid(-input) + clip), 0.0)
    negative = (1 - target) * p_m**gamma_neg * log_kept
    return _reduce(-(positive + negative), reduction, weight)


def asymmetric_authors_formula(
    input: Tensor,
    target: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The authors' (Alibaba-MIIL/ASL) computation: probabilities clamped at 1e-8 before the
    log, the focusing weight differentiated. Agrees with losskit where ``p`` is above 1e-8."""
    xs_pos = torch.sigmoid(input)
    xs_neg = (1 - xs_pos + clip).clamp(max=1) if clip > 0 else 1 - xs_pos
    loss = target * torch.log(xs_pos.clamp(min=1e-8))
    loss = loss + (1 - target) * torch.log(xs_neg.clamp(min=1e-8))
    pt = xs_pos * target + xs_neg * (1 - target)
    loss = loss * torch.pow(1 - pt, gamma_pos * target + gamma_neg * (1 - target))
    return _reduce(-loss, reduction, weight)


def in_float64(formula: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``formula`` evaluated in float64 (its floating tensors upcast), returned in the input's
    dtype: the reference the test matrix compares against."""

    def upcast(value):
        if isinstance(value, Tensor) and value.is_floating_point():
            return value.double()
        return value

    def reference(input: Tensor, target: Tensor, **kwargs) -> Tensor:
        out = formula(upcast(input), upcast(target), **{k: upcast(v) for k, v in kwargs.items()})
        return out.to(input.dtype)

    reference.__name__ = formula.__name__
    return reference


# ------------------------------------------------------------------------------ samples


def _sigmoid_focal_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    options = [
        {},
        {"alpha": None},
        {"alpha": 0.6, "gamma": 0.5},
        {"gamma": 0.0},
        {"gamma": 1.0, "alpha": 0.9},
        {"gamma": 3.0},
    ]
    for shape, opts in itertools.product(((7,), (4, 5), (2, 3, 4)), options):
        hard = make.randint(2, shape).to(dtype)
        yield SampleInput((make.randn(*shape), hard), opts, f"{shape} hard labels {opts}")
    for opts in options:
        yield SampleInput(
            (make.randn(3, 4), make.uniform(3, 4)), opts, f"soft labels {opts}", grad_args=(0, 1)
        )
        yield SampleInput(
            (make.randn(3, 4), make.randint(2, (3, 4)).to(dtype)),
            {**opts, "weight": make.uniform(3, 4, low=0.1, high=2.0)},
            f"weighted {opts}",
        )
    for pw in (make.uniform(5, low=0.5, high=3.0), 2.0, make.tensor(0.5)):
        yield SampleInput(
            (make.randn(4, 5), make.randint(2, (4, 5)).to(dtype)),
            {"pos_weight": pw, "gamma": 1.5},
            "pos_weight",
        )
    yield SampleInput(
        (make.randn(2, 5), make.uniform(2, 5)),
        {"pos_weight": make.uniform(5, low=0.5, high=3.0), "alpha": None},
        "pos_weight, soft labels",
        grad_args=(0, 1),
    )
    yield SampleInput((make.randn(), make.tensor(1.0)), {}, "scalar")
    yield SampleInput(
        (make.randn(3, 4), make.randint(2, (3, 4)).to(dtype)),
        {"weight": torch.zeros(3, 4, dtype=dtype, device=device)},
        "all weights zero",
        reference=False,
    )
    yield SampleInput((make.randn(0), make.uniform(0)), {}, "empty", reference=False)
    yield SampleInput((make.randn(0, 3), make.uniform(0, 3)), {}, "empty rows", reference=False)
    yield SampleInput(
        (make.randn(2, 0), make.uniform(2, 0)),
        {"pos_weight": make.uniform(0)},
        "no labels, (0,) pos_weight",
        reference=False,
    )
    logits = make.tensor([1e4, -1e4, 1e4, -1e4, 0.0, 40.0, -40.0, 20.0])
    labels = make.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.3])
    for gamma in (2.0, 0.5, 0.0):
        yield SampleInput(
            (logits, labels),
            {"gamma": gamma},
            f"logits of +-1e4 and p_t -> 1, gamma {gamma}",
            tags=_EXTREME,
        )


def _class_samples(options: list[dict], extra: dict | None = None):
    """Samples for the softmax losses: class indices (with weight, ignore_index, smoothing)
    and probabilities, the option sets of ``options`` cycled through them; plus unbatched,
    all-ignored, empty and extreme cases. ``extra`` options go into the extreme samples."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        cycle = itertools.cycle(options)
        for shape, use_weight, ignore, eps in itertools.product(
            ((6, 4), (2, 3, 4, 5)), (False, True), (None, -100, 1), (0.0, 0.2)
        ):
            n, c, spatial = shape[0], shape[1], shape[2:]
            target = make.randint(c, (n, *spatial))
            kwargs: dict = dict(next(cycle))
            if "alpha" in kwargs and kwargs["alpha"] == "per-class":
                kwargs["alpha"] = make.uniform(c, low=0.2, high=1.0)
            if ignore is not None:
                target = with_ignored(target, ignore)
                if ignore != -100:
                    kwargs["ignore_index"] = ignore
            if use_weight:
                kwargs["weight"] = make.uniform(c, low=0.2, high=2.0)
            if eps:
                kwargs["label_smoothing"] = eps
            yield SampleInput((make.randn(*shape), target), kwargs, f"{shape} {kwargs}")
        for shape, use_weight, eps in itertools.product(
            ((5, 3), (2, 3, 4)), (False, True), (0.0, 0.2)
        ):
            kwargs = dict(next(cycle))
            if "alpha" in kwargs and kwargs["alpha"] == "per-class":
                kwargs["alpha"] = make.uniform(3, low=0.2, high=1.0)
            if use_weight:
                kwargs["weight"] = make.uniform(3, low=0.2, high=2.0)
            if eps:
                kwargs["label_smoothing"] = eps
            yield SampleInput(
                (make.randn(*shape), make.probabilities(*shape)),
                kwargs,
                f"probabilities {shape} {kwargs}",
                grad_args=(0, 1),
            )
        yield SampleInput((make.randn(5), make.randint(5, ())), {}, "unbatched (C,)")
        kwargs = dict(options[-1])
        yield SampleInput(
            (make.randn(4, 3), make.probabilities(4, 3)),
            {**kwargs, "ignore_index": 1, "label_smoothing": 0.1},
            f"probabilities with ignore_index=1 (means nothing) {kwargs}",
            grad_args=(0, 1),
        )
        for index_dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
            yield SampleInput(
                (make.randn(6, 4), make.randint(4, (6,)).to(index_dtype)),
                {**kwargs, "weight": make.uniform(4, low=0.2, high=2.0), "label_smoothing": 0.1},
                f"{index_dtype} class indices {kwargs}",
            )
        yield SampleInput(
            (make.randn(4, 3), torch.full((4,), -100, device=device)),
            {},
            "every target ignored",
            reference=False,
        )
        yield SampleInput(
            (make.randn(0, 3), torch.zeros(0, dtype=torch.long, device=device)),
            {},
            "empty batch",
            reference=False,
        )
        yield SampleInput(
            (make.randn(0, 3), make.probabilities(0, 3)), {}, "empty probabilities", reference=False
        )
        logits = make.randn(8, 5, scale=1e4)
        for opts in ({}, *(extra or {}).values()):
            yield SampleInput(
                (logits, make.randint(5, (8,))), opts, f"logits of +-1e4 {opts}", tags=_EXTREME
            )
            yield SampleInput(
                (logits, make.probabilities(8, 5)),
                {**opts, "label_smoothing": 0.1},
                f"logits of +-1e4, probabilities {opts}",
                tags=_EXTREME,
            )
        # a confident, correct prediction: p_t -> 1, where (1 - p_t)**gamma has no derivative
        confident = make.tensor([[60.0, 0.0, -5.0], [0.0, 30.0, 1.0], [-3.0, 2.0, 90.0]])
        for opts in ({}, *(extra or {}).values()):
            yield SampleInput(
                (confident, torch.tensor([0, 1, 2], device=device)),
                opts,
                f"p_t -> 1 {opts}",
                tags=_EXTREME,
            )

    return samples


def _class_errors(loss: str, bad_params: dict[str, tuple[object, str]]):
    """Cross-entropy's error inputs (these losses validate as it does), plus their own options."""
    shared = score_errors(loss, log_probs=False)

    def errors() -> Iterator[ErrorInput]:
        yield from shared()
        make = TensorMaker(torch.float32, "cpu")
        x, y = make.randn(8, 5), make.randint(5, (8,))
        for name, (value, match) in bad_params.items():
            yield ErrorInput(SampleInput((x, y), {name: value}), rf"{loss}: {name} {match}")
        for scores, target in (
            (make.randn(8, 0), y),
            (make.randn(8, 0), make.uniform(8, 0)),
            (make.randn(0), torch.tensor(0)),
        ):
            yield ErrorInput(
                SampleInput((scores, target)),
                rf"{loss}: input has shape .*; expected at least one class \(C >= 1\)",
            )
        # on the CPU the range check costs no sync: it runs under the default checks
        for bad, options in (
            (torch.tensor([0, 1, 2, 3, 4, 5, 0, 1]), {}),
            (torch.tensor([0, 1, -1, 3, 4, 2, 0, 1], dtype=torch.int32), {"label_smoothing": 0.1}),
            (torch.tensor([0, 1, 9, 3, 4, 2, 0, 1], dtype=torch.uint8), {"ignore_index": 1}),
        ):
            yield ErrorInput(
                SampleInput((x, bad), options),
                rf"{loss}: target has class indices in \[-?\d, \d\]; expected indices in \[0, 4\]",
            )

    return errors


def _binary_pair_samples(options: list[dict]):
    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        for shape, opts in itertools.product(((7,), (4, 5), (2, 3, 4)), options):
            hard = make.randint(2, shape).to(dtype)
            yield SampleInput((make.randn(*shape, scale=2.0), hard), opts, f"{shape} {opts}")
        for opts in options:
            yield SampleInput(
                (make.randn(3, 4), make.uniform(3, 4)), opts, f"soft {opts}", grad_args=(0, 1)
            )
            yield SampleInput(
                (make.randn(3, 4), make.randint(2, (3, 4)).to(dtype)),
                {**opts, "weight": make.uniform(3, 4, low=0.1, high=2.0)},
                f"weighted {opts}",
            )
        yield SampleInput(
            (make.randn(3, 4), make.randint(2, (3, 4)).to(dtype)),
            {"weight": torch.zeros(3, 4, dtype=dtype, device=device)},
            "all weights zero",
            reference=False,
        )
        yield SampleInput((make.randn(0), make.uniform(0)), {}, "empty", reference=False)
        logits = make.tensor([1e4, -1e4, 1e4, -1e4, 0.0, 40.0, -40.0])
        labels = make.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
        for opts in options:
            yield SampleInput((logits, labels), opts, f"logits of +-1e4 {opts}", tags=_EXTREME)

    return samples


# ------------------------------------------------------------------------------ benchmarks


def _sigmoid_focal_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    return SampleInput(
        (make.randn(size), make.randint(2, (size,)).to(dtype)), {}, f"{size} elements"
    )


#: classes of the softmax benchmarks; their size is the batch
BENCH_CLASSES = 1000
#: ... and below 256 rows: a small classifier's head, (64, 10) at the smallest size, where only
#: per-call costs count
SMALL_BENCH_CLASSES = 10


def _softmax_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    classes = BENCH_CLASSES if size >= 256 else SMALL_BENCH_CLASSES
    x = make.randn(size, classes)
    return SampleInput((x, make.randint(classes, (size,))), {}, f"{tuple(x.shape)}")


def _asymmetric_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    rows = max(size // 80, 1)
    x = make.randn(rows, 80)
    return SampleInput((x, make.randint(2, (rows, 80)).to(dtype)), {}, f"{tuple(x.shape)}")


CASES: dict[str, LossCases] = {
    "sigmoid_focal": LossCases(
        reference=in_float64(torchvision_sigmoid_focal_loss),
        sample_inputs=_sigmoid_focal_samples,
        error_inputs=binary_errors(
            "sigmoid_focal_loss",
            {
                "alpha": (1.5, r"is 1.5; expected a number >= 0 and <= 1"),
                "gamma": (-1.0, r"is -1.0; expected a number >= 0"),
            },
            pos_weight=True,
        ),
        bench_inputs=_sigmoid_focal_bench,
        bench_references={"torchvision formula": torchvision_sigmoid_focal_loss},
    ),
    "focal": LossCases(
        reference=in_float64(softmax_focal_formula),
        sample_inputs=_class_samples(
            [
                {},
                {"gamma": 0.5, "alpha": 0.5},
                {"gamma": 1.0, "alpha": "per-class"},
                {"gamma": 3.0},
                {"gamma": 0.0, "alpha": "per-class"},
                {"gamma": 0.0},
            ],
            extra={"fractional": {"gamma": 0.5}, "zero": {"gamma": 0.0, "alpha": 0.5}},
        ),
        error_inputs=_class_errors(
            "focal_loss",
            {
                "gamma": (-0.5, r"is -0.5; expected a number >= 0"),
                "alpha": ([0.5, 0.5], r"has shape \(2,\); expected a number or \(5,\)"),
            },
        ),
        bench_inputs=_softmax_bench,
        bench_references={
            "eager focal formula": softmax_focal_formula,
            "torch.nn.functional.cross_entropy": F.cross_entropy,
        },
        bench_baselines=frozenset({"torch.nn.functional.cross_entropy"}),
    ),
    "poly1_cross_entropy": LossCases(
        reference=in_float64(poly1_formula),
        sample_inputs=_class_samples(
            [{}, {"epsilon": -1.0}, {"epsilon": 2.5}, {"epsilon": 0.0}],
            extra={"negative": {"epsilon": -1.0}},
        ),
        error_inputs=_class_errors(
            "poly1_cross_entropy", {"epsilon": (-2.0, r"is -2.0; expected a number >= -1")}
        ),
        bench_inputs=_softmax_bench,
        bench_references={
            "authors' formula": poly1_authors_formula,
            "torch.nn.functional.cross_entropy": F.cross_entropy,
        },
        bench_baselines=frozenset({"torch.nn.functional.cross_entropy"}),
    ),
    "asymmetric": LossCases(
        reference=in_float64(asymmetric_formula),
        sample_inputs=_binary_pair_samples(
            [
                {},
                {"clip": 0.0},
                {"gamma_neg": 0.5, "gamma_pos": 0.0, "clip": 0.2},
                {"gamma_neg": 0.0, "gamma_pos": 0.0, "clip": 0.0},
                {"gamma_neg": 2.0, "gamma_pos": 0.5, "clip": 0.0},
            ]
        ),
        error_inputs=binary_errors(
            "asymmetric_loss",
            {
                "clip": (1.0, r"is 1.0; expected a number >= 0 and < 1"),
                "gamma_neg": (-2.0, r"is -2.0; expected a number >= 0"),
                "gamma_pos": ("1", r"is '1'; expected a real"),
            },
        ),
        bench_inputs=_asymmetric_bench,
        bench_references={"authors' formula": asymmetric_authors_formula},
    ),
}
