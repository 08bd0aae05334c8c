"""Fixture builders shared by every family's ``cases.py``: deterministic tensors (each call
seeds its own generator, so the test matrix sees the same numbers in every process), references
that apply losskit's weighted-mean rule, the standard sample and error inputs of an
elementwise ``(input, target)`` loss and the error inputs of a loss on binary labels, so that a
new loss gets them by one call. Imported only by fixtures (tests, benchmarks, the tour), never
by ``import losskit``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from losskit._catalog import ErrorInput, SampleInput


class TensorMaker:
    """Makes tensors of one dtype and device from a private seeded generator."""

    def __init__(self, dtype: torch.dtype, device: torch.device | str, seed: int = 0) -> None:
        self.dtype = dtype
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int, scale: float = 1.0) -> Tensor:
        x = torch.randn(shape, generator=self.gen, dtype=torch.float64) * scale
        return x.to(self.dtype).to(self.device)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        x = torch.rand(shape, generator=self.gen, dtype=torch.float64) * (high - low) + low
        return x.to(self.dtype).to(self.device)

    def randint(self, high: int, shape: Sequence[int], low: int = 0) -> Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.gen).to(self.device)

    def tensor(self, values: object) -> Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device)

    def probabilities(self, *shape: int, dim: int = 1) -> Tensor:
        logits = torch.randn(shape, generator=self.gen, dtype=torch.float64)
        return logits.softmax(dim).to(self.dtype).to(self.device)


_SHAPES = ((7,), (4, 5), (2, 3, 4), ())


def _reduce_reference(elementwise: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    """The weighted-mean rule written out, for references built from elementwise values."""
    if weight is not None:
        elementwise = elementwise * weight
    if reduction == "none":
        return elementwise
    if reduction == "sum" or weight is None:
        return elementwise.sum() if reduction == "sum" else elementwise.mean()
    return elementwise.sum() / weight.sum()


def torch_reference(torch_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """torch's loss, with losskit's weighted-mean rule applied to its elementwise values."""

    def reference(input, target, *, weight=None, reduction="mean", **options):
        if weight is None:
            return torch_fn(input, target, reduction=reduction, **options)
        return _reduce_reference(
            torch_fn(input, target, reduction="none", **options), reduction, weight
        )

    return reference


def formula_reference(elementwise: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """An explicit formula evaluated in float64, for losses torch does not have."""

    def reference(input, target, *, weight=None, reduction="mean", **options):
        x, y = input.double(), target.double()
        w = None if weight is None else weight.double()
        return _reduce_reference(elementwise(x, y, **options), reduction, w).to(input.dtype)

    return reference


def elementwise_samples(params: dict[str, tuple]) -> Callable[..., Iterator[SampleInput]]:
    """Shapes x reductions-independent options x weights, plus an empty and an extreme case."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        option_sets = [{}]
        for name, values in params.items():
            option_sets += [{name: v} for v in values]
        for shape in _SHAPES:
            for opts in option_sets:
                yield SampleInput(
                    (make.randn(*shape), make.randn(*shape)), opts, f"{shape}", grad_args=(0, 1)
                )
        for opts in option_sets:
            yield SampleInput(
                (make.randn(3, 4), make.randn(3, 4)),
                {**opts, "weight": make.uniform(3, 4, low=0.1, high=2.0)},
                "weighted",
                grad_args=(0, 1),
            )
        yield SampleInput(
            (make.randn(6), make.randn(6)),
            {"weight": make.tensor([0.0, 1.0, 0.0, 2.0, 0.0, 0.5])},
            "some weights zero",
            grad_args=(0, 1),
        )
        yield SampleInput(
            (make.randn(4), make.randn(4)),
            {"weight": torch.zeros(4, dtype=dtype, device=device)},
            "all weights zero",
            reference=False,
        )
        yield SampleInput((make.randn(0), make.randn(0)), {}, "empty", reference=False)
        yield SampleInput(
            (make.randn(16, scale=1e4), make.randn(16, scale=1e4)),
            {},
            "extreme residuals",
            tags=frozenset({"extreme"}),
        )

    return samples


def elementwise_errors(
    loss: str, bad_params: dict[str, object]
) -> Callable[[], Iterator[ErrorInput]]:
    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x = make.randn(4)
        yield ErrorInput(
            SampleInput((make.randn(4, 1), make.randn(4))),
            rf"{loss}: target has shape \(4,\); expected the shape of input, \(4, 1\)",
        )
        yield ErrorInput(
            SampleInput((torch.arange(4), make.randn(4))),
            rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, x.double())),
            rf"{loss}: target has dtype torch.float64; expected the dtype of input",
        )
        yield ErrorInput(
            SampleInput((x, [0.0, 1.0, 2.0, 3.0])),
            rf"{loss}: target is a list; expected a torch.Tensor",
        )
        yield ErrorInput(
            SampleInput((x, x), {"reduction": "avg"}),
            rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((make.randn(4, 3), make.randn(4, 3)), {"weight": make.uniform(3)}),
            rf"{loss}: weight has shape \(3,\); expected the shape of input, \(4, 3\)",
        )
        yield ErrorInput(
            SampleInput((make.tensor([1.0, float("nan")]), make.randn(2))),
            rf"{loss}: input has 1 non-finite value\(s\); expected finite values",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((x, x), {"weight": make.tensor([1.0, -1.0, 1.0, 1.0])}),
            rf"{loss}: weight has a minimum of -1; expected non-negative values",
            checks="full",
        )
        for name, value in bad_params.items():
            yield ErrorInput(
                SampleInput((x, x), {name: value}),
                rf"{loss}: {name} is {value!r}; expected a number",
            )

    return errors


def binary_errors(
    loss: str,
    bad_params: dict[str, tuple[object, str]] | None = None,
    *,
    probabilities: bool = False,
    pos_weight: bool = False,
) -> Callable[[], Iterator[ErrorInput]]:
    """The standard error inputs of a loss on ``(input, target)`` of one shape with labels in
    [0, 1] (hard or soft) and an elementwise ``weight``: binary cross-entropy, the sigmoid focal
    and asymmetric losses. ``probabilities``: ``input`` holds probabilities, else logits;
    ``pos_weight``: the loss takes a per-label ``pos_weight``. ``bad_params`` maps an option to
    a bad value and the end of its message (after ``"<loss>: <option> "``)."""

    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x = make.uniform(4, 3) if probabilities else make.randn(4, 3)
        y = make.randint(2, (4, 3)).float()
        yield ErrorInput(
            SampleInput((make.uniform(4, 1), make.uniform(4))),
            rf"{loss}: target has shape \(4,\); expected the shape of input, \(4, 1\)",
        )
        yield ErrorInput(
            SampleInput((x, y.long())),
            rf"{loss}: target has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, y.double())),
            rf"{loss}: target has dtype torch.float64; expected the dtype of input",
        )
        yield ErrorInput(
            SampleInput((x, y), {"weight": make.uniform(3)}),
            rf"{loss}: weight has shape \(3,\); expected the shape of input, \(4, 3\)",
        )
        yield ErrorInput(
            SampleInput((x, y), {"reduction": "batchmean"}),
            rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((x, y * 3)),
            rf"{loss}: target has values in \[0, 3\]; expected values in \[0, 1\]",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((make.tensor([0.0, float("inf")]), make.tensor([0.0, 1.0]))),
            rf"{loss}: input has 1 non-finite value\(s\); expected finite values",
            checks="full",
        )
        if probabilities:
            yield ErrorInput(
                SampleInput((x * 4 - 2, y)),
                rf"{loss}: input has values in \[.*\]; expected values in \[0, 1\]",
                checks="full",
            )
        if pos_weight:
            for bad in (make.uniform(4), make.uniform(0)):
                yield ErrorInput(
                    SampleInput((x, y), {"pos_weight": bad}),
                    rf"{loss}: pos_weight has shape \({bad.numel()},\); expected a number or "
                    r"shape \(3,\)",
                )
            yield ErrorInput(
                SampleInput((x, y), {"pos_weight": -1.0}),
                rf"{loss}: pos_weight is -1.0; expected a number >= 0",
            )
        for name, (value, match) in (bad_params or {}).items():
            yield ErrorInput(SampleInput((x, y), {name: value}), rf"{loss}: {name} {match}")

    return errors
