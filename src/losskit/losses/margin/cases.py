"""Fixtures of the margin entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker


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


def plain_hinge(input, target, *, margin=1.0, squared=False, reduction="mean"):
    """The benchmark's reference: the hinge as a plain formula on +-1 labels, in the inputs'
    dtype, ``max(0, margin - y x)^(1 or 2)`` reduced (what an SVM loss is usually written as)."""
    loss = (margin - target * input).clamp_min(0.0)
    if squared:
        loss = loss.square()
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


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
            "+-1 int8": signs.to(torch.int8),
            "0/1 uint8": (signs > 0).to(torch.uint8),
            "+-1 int16": signs.to(torch.int16),
            "0/1 int32": (signs > 0).int(),
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


def _hinge_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` scores with +-1 labels in the scores' dtype."""
    make = TensorMaker(dtype, device, seed=size)
    target = (make.randint(2, (size,)) * 2 - 1).to(dtype)
    return SampleInput((make.randn(size, scale=1.5), target), {}, f"{size} scores")


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
    for index_dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        yield SampleInput(
            (make.randn(3, 4), make.randint(4, (3,)).to(index_dtype)),
            {"margin": 2.0, "weight": make.uniform(4, low=0.2, high=2.0)},
            f"{index_dtype} targets",
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
        SampleInput((x, torch.tensor([0, -1, 2, 1]))),
        rf"{loss}: target has class indices in \[-1, 2\]; expected indices in \[0, 2\]",
    )
    yield ErrorInput(
        SampleInput((x, y > 0)),
        rf"{loss}: target has dtype torch.bool; expected integer class indices",
    )
    yield ErrorInput(
        SampleInput((make.randn(4, 0), y)),
        rf"{loss}: input has shape \(4, 0\); expected at least one class",
    )
    yield ErrorInput(
        SampleInput((x, y), {"weight": make.uniform(3).requires_grad_()}),
        rf"{loss}: weight requires grad; expected a constant class weight",
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


CASES: dict[str, LossCases] = {
    "hinge": LossCases(
        reference=hinge_reference,
        sample_inputs=_hinge_samples,
        error_inputs=_hinge_errors,
        bench_inputs=_hinge_bench,
        bench_references={"plain formula max(0, margin - y x)": plain_hinge},
    ),
    "multi_margin": LossCases(
        reference=torch_multi_margin,
        sample_inputs=_multi_margin_samples,
        error_inputs=_multi_margin_errors,
        bench_inputs=_multi_margin_bench,
    ),
}
