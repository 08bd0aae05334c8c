"""Catalog entries for the hinge losses: binary (SVM) hinge and torch's multi-class margin."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, HyperParam, LossSpec, SampleInput, WorkedExample
from losskit._fixtures import TensorMaker
from losskit.losses.margin import functional as LF
from losskit.losses.margin import modules as LN

#: CS231n's multiclass SVM example: class scores of three images (cat, car, frog), true classes
#: 0, 1, 2; hinge losses 2.9, 0 and 12.9 (torch divides each by C = 3)
_CS231N_SCORES = ((3.2, 5.1, -1.7), (1.3, 4.9, 2.0), (2.2, 2.5, -3.1))


def hinge_reference(input, target, *, margin=1.0, squared=False, reduction="mean"):
    """The hinge written out in float64, labels 0/1 and bool mapped to -1/+1."""
    x = input.double()
    y = target.double()
    y = torch.where(y == 0, -1.0, y)
    loss = (margin - y * x).clamp_min(0.0)
    if squared:
        loss = loss**2
    out = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return out.to(input.dtype)


def torch_multi_margin(input, target, *, p=1, margin=1.0, weight=None, reduction="mean"):
    """torch's kernel; with a weight, ``"mean"`` is losskit's weighted mean."""
    target = target.long()  # torch's kernel takes int64 targets only
    if reduction == "mean" and weight is not None:
        total = F.multi_margin_loss(
            input, target, p=p, margin=margin, weight=weight, reduction="sum"
        )
        return total / weight[target].sum()
    return F.multi_margin_loss(
        input, target, p=p, margin=margin, weight=weight, reduction=reduction
    )


def _hinge_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for shape in ((7,), (4, 5), ()):
        signs = make.randint(2, shape) * 2 - 1
        encodings = {
            "+-1 floats": signs.to(dtype),
            "0/1 floats": (signs > 0).to(dtype),
            "+-1 ints": signs,
            "0/1 ints": (signs > 0).long(),
            "bools": signs > 0,
        }
        for name, target in encodings.items():
            yield SampleInput((make.randn(*shape, scale=1.5), target), {}, f"{shape} {name}")
    options = (
        {"margin": 0.5},
        {"margin": 0.0},
        {"squared": True},
        {"margin": 2.0, "squared": True},
    )
    for opts in options:
        target = make.randint(2, (4, 5)).to(dtype)
        yield SampleInput((make.randn(4, 5, scale=1.5), target), opts, f"0/1 labels {opts}")
        yield SampleInput((make.randn(4, 5, scale=1.5), target * 2 - 1), opts, f"+-1 {opts}")
    yield SampleInput((make.randn(0), make.randn(0)), {}, "empty", reference=False)
    yield SampleInput(
        (make.randn(8, scale=1e4), make.randint(2, (8,)) * 2 - 1),
        {"squared": True},
        "scores of +-1e4",
        tags=frozenset({"extreme"}),
    )


def _hinge_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(6), make.randint(2, (6,)) * 2 - 1
    yield ErrorInput(
        SampleInput((x, y[:5])),
        r"hinge_loss: target has shape \(5,\); expected \(6,\) \(losskit never broadcasts",
    )
    yield ErrorInput(
        SampleInput((x, y.double())),
        r"hinge_loss: target has dtype torch.float64; expected the dtype of input",
    )
    yield ErrorInput(
        SampleInput((y, y)), r"hinge_loss: input has dtype torch.int64; expected a floating"
    )
    yield ErrorInput(
        SampleInput((x, y), {"margin": -1.0}), r"hinge_loss: margin is -1.0; expected a number >= 0"
    )
    yield ErrorInput(
        SampleInput((x, y), {"squared": 1}), r"hinge_loss: squared is 1; expected True or False"
    )
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "batchmean"}),
        r"hinge_loss: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((x, torch.tensor([1, 0, -1, 1, 0, -1]))),
        r"hinge_loss: target mixes -1 and 0 labels; expected labels all in \{-1, 1\} or all "
        r"in \{0, 1\}",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((x, make.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.0]))),
        r"hinge_loss: target has a value 0.5 that is not a label; expected labels -1/1 or 0/1",
        checks="full",
    )


def _multi_margin_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for p, margin, weighted in itertools.product((1, 2), (1.0, 0.5), (False, True)):
        kwargs: dict = {}
        if p != 1:
            kwargs["p"] = p
        if margin != 1.0:
            kwargs["margin"] = margin
        if weighted:
            kwargs["weight"] = make.uniform(4, low=0.2, high=2.0)
        yield SampleInput((make.randn(6, 4), make.randint(4, (6,))), kwargs, f"(6, 4) {kwargs}")
    yield SampleInput(
        (make.randn(5), make.randint(5, ())),
        {"p": 2, "weight": make.uniform(5, low=0.2, high=2.0)},
        "unbatched (C,)",
    )
    yield SampleInput(
        (make.randn(3, 4), make.randint(4, (3,)).int()), {"margin": 2.0}, "int32 targets"
    )
    yield SampleInput((make.randn(0, 4), make.randint(4, (0,))), {}, "empty batch", reference=False)
    yield SampleInput(
        (make.randn(0, 4), make.randint(4, (0,))),
        {"weight": make.uniform(4)},
        "empty weighted batch",
        reference=False,
    )
    yield SampleInput(
        (make.randn(6, 5, scale=1e4), make.randint(5, (6,))),
        {"p": 2},
        "scores of +-1e4",
        tags=frozenset({"extreme"}),
    )


def _multi_margin_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(4, 3), make.randint(3, (4,))
    loss = "multi_margin_loss"
    yield ErrorInput(
        SampleInput((x, y.float())),
        rf"{loss}: target has dtype torch.float32; expected integer class indices",
    )
    yield ErrorInput(
        SampleInput((x, y[:3])),
        rf"{loss}: target has shape \(3,\); expected \(4,\) class indices for input \(4, 3\)",
    )
    yield ErrorInput(
        SampleInput((make.randn(2, 3, 4), y)),
        rf"{loss}: input has shape \(2, 3, 4\); expected \(N, C\) class scores or unbatched",
    )
    yield ErrorInput(SampleInput((x, y), {"p": 3}), rf"{loss}: p is 3; expected 1 or 2")
    yield ErrorInput(SampleInput((x, y), {"p": 1.0}), rf"{loss}: p is 1.0; expected an int")
    yield ErrorInput(
        SampleInput((x, y), {"margin": -0.5}), rf"{loss}: margin is -0.5; expected a number >= 0"
    )
    yield ErrorInput(
        SampleInput((x, y), {"weight": make.uniform(4)}),
        rf"{loss}: weight has shape \(4,\); expected \(3,\), one weight per class",
    )
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "avg"}),
        rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((x, torch.tensor([0, 1, 3, 2]))),
        rf"{loss}: target has class indices in \[0, 3\]; expected indices in \[0, 2\]",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((x, y), {"weight": make.tensor([1.0, -1.0, 1.0])}),
        rf"{loss}: weight has a minimum of -1; expected non-negative values",
        checks="full",
    )


def _multi_margin_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` scores as (size / C, C), C = 32 (small) or 1000 (large)."""
    make = TensorMaker(dtype, device, seed=size)
    classes = 32 if size < 32_000 else 1000
    n = max(size // classes, 1)
    return SampleInput(
        (make.randn(n, classes), make.randint(classes, (n,))), {}, f"({n}, {classes})"
    )


SPECS = [
    LossSpec(
        name="hinge",
        aliases=("hinge_loss", "svm_loss", "binary_hinge"),
        functional=LF.hinge_loss,
        module=LN.HingeLoss,
        task="classification",
        summary="SVM hinge on scores for +-1 or 0/1 labels; squared=True gives the L2-SVM loss.",
        formula=r"\ell_i = \max(0,\ m - y_i x_i)^{k},\ y_i\in\{-1,+1\},\ k\in\{1,2\}",
        params=(
            HyperParam(
                "margin", 1.0, "score margin a correct sample must clear", 0.1, 5.0, True, ">= 0"
            ),
            HyperParam("squared", False, "square the hinge (smooth at the margin)"),
        ),
        reference=hinge_reference,
        reference_name="max(0, margin - y x)^(1 or 2) in float64",
        papers=(
            "Cortes & Vapnik, Support-Vector Networks, 1995",
            "Rosasco et al., Are Loss Functions All the Same?, Neural Computation 2004",
        ),
        sample_inputs=_hinge_samples,
        error_inputs=_hinge_errors,
        examples=(
            WorkedExample(
                "scores (0.3, 0.5, 2.0, -1.5) for labels (+1, -1, +1, -1): 0.7, 1.5, 0, 0",
                (torch.tensor([0.3, 0.5, 2.0, -1.5]), torch.tensor([1, -1, 1, -1])),
                {},
                0.55,
            ),
            WorkedExample(
                "the same, squared: (0.49 + 2.25) / 4",
                (torch.tensor([0.3, 0.5, 2.0, -1.5]), torch.tensor([1, 0, 1, 0])),
                {"squared": True},
                0.685,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        notes="Labels +-1 or 0/1 (or bool); a mix of -1 and 0 is an error under checks='full'.",
    ),
    LossSpec(
        name="multi_margin",
        aliases=("multi_margin_loss", "multiclass_hinge", "multi_class_hinge", "weston_watkins"),
        functional=LF.multi_margin_loss,
        module=LN.MultiMarginLoss,
        task="classification",
        summary="Multi-class hinge (Weston-Watkins): every wrong class within margin of the true one.",
        formula=r"\ell_n = \frac{w_{y_n}}{C}\sum_{c\ne y_n}\max(0,\ m - x_{n,y_n} + x_{n,c})^p",
        params=(
            HyperParam("p", 1, "power of each hinge term", valid="1 or 2"),
            HyperParam("margin", 1.0, "score margin of the true class", 0.1, 5.0, True, ">= 0"),
            HyperParam("weight", None, "(C,) class weights"),
        ),
        reference=torch_multi_margin,
        reference_name="torch.nn.functional.multi_margin_loss",
        papers=(
            "Weston & Watkins, Support Vector Machines for Multi-Class Pattern Recognition, 1999",
        ),
        sample_inputs=_multi_margin_samples,
        error_inputs=_multi_margin_errors,
        examples=(
            WorkedExample(
                "CS231n cat/car/frog scores: hinge 2.9, 0, 12.9, each divided by C = 3",
                (torch.tensor(_CS231N_SCORES), torch.tensor([0, 1, 2])),
                {},
                1.756,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="With a class weight, 'mean' is the weighted mean (torch divides by N).",
        bench_inputs=_multi_margin_bench,
    ),
]
