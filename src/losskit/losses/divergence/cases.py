"""Fixtures of the divergence entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

_SHAPES = ((6, 5), (2, 4, 3), (5,))


def _class_dim(x: Tensor) -> int:
    return 1 if x.dim() > 1 else 0


def torch_kl_div(input, target, *, log_target=False, reduction="batchmean"):
    """torch's ``kl_div``; a 1-D input is one distribution, so its ``batchmean`` is the sum.
    A log-target of -inf (probability 0) is passed as the probability, where torch's formula
    counts it as 0 (its log-target formula gives NaN there)."""
    if reduction == "batchmean" and input.dim() == 1:
        reduction = "sum"
    if log_target and bool((target == -math.inf).any()):
        target, log_target = target.exp(), False
    with warnings.catch_warnings():  # torch warns that its "mean" is not a KL divergence
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(input, target, reduction=reduction, log_target=log_target)


def torch_distillation(input, target, *, temperature=1.0, reduction="batchmean"):
    """Hinton et al.'s loss written with torch: ``T**2 * kl_div(log_softmax(s/T), softmax(t/T))``."""
    dim = _class_dim(input)
    log_q = F.log_softmax(input / temperature, dim)
    p = F.softmax(target / temperature, dim)
    return torch_kl_div(log_q, p, reduction=reduction) * temperature**2


def _kl_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for shape in _SHAPES:
        dim = 1 if len(shape) > 1 else 0
        for log_target in (False, True):
            log_q = make.randn(*shape).log_softmax(dim)
            p = make.probabilities(*shape, dim=dim)
            kwargs = {"log_target": True} if log_target else {}
            yield SampleInput(
                (log_q, p.log() if log_target else p), kwargs, f"{shape} {kwargs}", grad_args=(0, 1)
            )
    p = make.probabilities(4, 6)
    p[:, :2] = 0.0
    yield SampleInput(
        (make.randn(4, 6).log_softmax(1), p / p.sum(1, keepdim=True)),
        {},
        "target with exact zeros",
    )
    log_p = make.randn(4, 6).log_softmax(1)
    log_p[:, 1] = -math.inf
    log_p[0, 4] = -math.inf
    yield SampleInput(
        (make.randn(4, 6).log_softmax(1), log_p.log_softmax(1)),
        {"log_target": True},
        "log-target -inf: classes the target rules out count 0",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(0, 5).log_softmax(1), make.probabilities(0, 5)),
        {},
        "empty batch",
        reference=False,
    )
    sharp = make.probabilities(6, 4)
    sharp[:, 0] = 0.0
    yield SampleInput(
        (make.randn(6, 4, scale=1e4).log_softmax(1), sharp / sharp.sum(1, keepdim=True)),
        {},
        "log-probabilities down to -1e4, target zeros",
        tags=frozenset({"extreme"}),
    )
    yield SampleInput(
        (make.randn(6, 4, scale=1e4).log_softmax(1), make.randn(6, 4, scale=1e4).log_softmax(1)),
        {"log_target": True},
        "log-probabilities down to -1e4 on both sides",
        tags=frozenset({"extreme"}),
    )


def _distill_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for shape in _SHAPES:
        for temperature in (1.0, 2.5, 0.5):
            kwargs = {} if temperature == 1.0 else {"temperature": temperature}
            yield SampleInput(
                (make.randn(*shape, scale=2.0), make.randn(*shape, scale=2.0)),
                kwargs,
                f"{shape} {kwargs}",
                grad_args=(0, 1),
            )
    teacher = make.randn(4, 5, scale=2.0)
    teacher[:, 2] = -math.inf  # a class the teacher rules out (a masked vocabulary)
    for kwargs in ({}, {"temperature": 2.5}):
        yield SampleInput(
            (make.randn(4, 5, scale=2.0), teacher),
            kwargs,
            f"teacher logits of -inf {kwargs}",
            grad_args=(0, 1),
        )
    yield SampleInput((make.randn(0, 5), make.randn(0, 5)), {}, "empty batch", reference=False)
    yield SampleInput(
        (make.randn(5, 4, scale=1e4), make.randn(5, 4, scale=1e4)),
        {"temperature": 4.0},
        "logits of +-1e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _pair_errors(loss: str, make: TensorMaker, x: Tensor, y: Tensor) -> Iterator[ErrorInput]:
    yield ErrorInput(
        SampleInput((x[:, :1], y)),
        rf"{loss}: target has shape \(4, 3\); expected the shape of input, \(4, 1\)",
    )
    yield ErrorInput(
        SampleInput((x, y.double())),
        rf"{loss}: target has dtype torch.float64; expected the dtype of input, torch.float32",
    )
    yield ErrorInput(
        SampleInput((torch.zeros(4, 3, dtype=torch.long), y)),
        rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "elementwise_mean"}),
        rf"{loss}: reduction is 'elementwise_mean'; expected one of 'batchmean', 'mean', "
        r"'sum', 'none'",
    )


def _kl_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    log_q, p = make.randn(4, 3).log_softmax(1), make.probabilities(4, 3)
    yield from _pair_errors("kl_div", make, log_q, p)
    yield ErrorInput(
        SampleInput((log_q, p), {"log_target": 1}),
        r"kl_div: log_target is 1; expected True or False",
    )
    yield ErrorInput(
        SampleInput((log_q.exp(), p)),
        r"kl_div: input has a maximum of [0-9.]+; expected log-probabilities, values <= 0",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((log_q, p * 3)),
        r"kl_div: target has values in \[.*\]; expected values in \[0, 1\]",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((log_q, p), {"log_target": True}),
        r"kl_div: target has a maximum of [0-9.]+; expected log-probabilities",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((make.tensor([[float("nan"), 0.0]]), make.tensor([[0.5, 0.5]]))),
        r"kl_div: input has 1 NaN or \+inf value\(s\); expected log-probabilities",
        checks="full",
    )


def _distill_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    s, t = make.randn(4, 3), make.randn(4, 3)
    yield from _pair_errors("kl_div_with_logits", make, s, t)
    yield ErrorInput(  # kl_div takes a 0-dim input, as torch does; logits need a class axis
        SampleInput((torch.tensor(-1.0), torch.tensor(0.5))),
        r"kl_div_with_logits: input is a scalar; expected \(N, C\), \(N, C, d1, ...\) or an "
        "unbatched",
    )
    for bad in (0.0, -2.0, float("inf")):
        yield ErrorInput(
            SampleInput((s, t), {"temperature": bad}),
            rf"kl_div_with_logits: temperature is {bad!r}; expected a (finite )?number > 0",
        )
    yield ErrorInput(
        SampleInput((s, make.tensor([[1.0, float("inf"), 0.0]] * 4))),
        r"kl_div_with_logits: target has 4 NaN or \+inf value\(s\); expected finite logits",
        checks="full",
    )


def _kl_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` elements as (size / C, C) distributions, C = 32 (small) or 1000 (large)."""
    make = TensorMaker(dtype, device, seed=size)
    classes = 32 if size < 32_000 else 1000
    n = max(size // classes, 1)
    return SampleInput(
        (make.randn(n, classes).log_softmax(1), make.probabilities(n, classes)),
        {},
        f"({n}, {classes})",
    )


def _distill_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    classes = 32 if size < 32_000 else 1000
    n = max(size // classes, 1)
    return SampleInput(
        (make.randn(n, classes), make.randn(n, classes)),
        {"temperature": 2.0},
        f"({n}, {classes}) T=2",
        grad_args=(0,),
    )


CASES: dict[str, LossCases] = {
    "kl_div": LossCases(
        reference=torch_kl_div,
        sample_inputs=_kl_samples,
        error_inputs=_kl_errors,
        bench_inputs=_kl_bench,
    ),
    "kl_div_with_logits": LossCases(
        reference=torch_distillation,
        sample_inputs=_distill_samples,
        error_inputs=_distill_errors,
        bench_inputs=_distill_bench,
    ),
}
