"""Fixtures of the linear ce entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

_N, _D, _V = 7, 4, 9


def linear_cross_entropy_reference(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    """The naive path: ``F.cross_entropy(F.linear(input, weight, bias), target, ...)`` on the
    full logits, plus soft-capping and z-loss written out, under losskit's mean rule (a mean
    over no counted target is 0)."""
    del chunk_size  # the naive path has no chunks
    logits = F.linear(input, weight, bias)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    flat = logits.reshape(-1, weight.shape[0])
    labels = target.reshape(-1)
    losses = F.cross_entropy(
        flat,
        labels,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    counted = labels != ignore_index
    if z_loss:
        losses = losses + z_loss * torch.where(counted, flat.logsumexp(1), 0).square()
    if reduction == "none":
        return losses.reshape(target.shape)
    total = losses.sum()
    if reduction == "sum":
        return total
    return total / counted.sum().clamp(min=1)


def naive_linear_cross_entropy(input: Tensor, weight: Tensor, target: Tensor, **_: object):
    """What a language model does without a fused loss: ``F.cross_entropy(h @ W.T, y)``."""
    return F.cross_entropy(input @ weight.T, target)


def torch_chunked_linear_cross_entropy(
    input: Tensor, weight: Tensor, target: Tensor, **_: object
) -> Tensor:
    """torch's own chunked path (``F.linear_cross_entropy`` with default
    ``LinearCrossEntropyOptions()``, torch >= 2.13)."""
    return F.linear_cross_entropy(
        input, weight, target, options=torch.nn.LinearCrossEntropyOptions()
    )


def _samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=7)

    def case(desc: str, *, ignored: bool = False, n: int = _N, **kwargs: object) -> SampleInput:
        target = make.randint(_V, (n,))
        if ignored:
            target[::3] = kwargs.get("ignore_index", -100)  # type: ignore[call-overload]
        return SampleInput(
            (make.randn(n, _D), make.randn(_V, _D, scale=0.7), target),
            kwargs,
            desc,
            grad_args=(0, 1),
        )

    yield case("plain, one chunk")
    yield case("chunks of 3 rows (7 tokens: the last chunk is short)", chunk_size=3)
    yield case("every third target ignored, chunks of 2", ignored=True, chunk_size=2)
    yield case("ignore_index=4", ignored=True, ignore_index=4, chunk_size=3)
    yield case("bias", bias=make.randn(_V), chunk_size=3)
    yield case("label smoothing 0.2", label_smoothing=0.2, chunk_size=3)
    yield case("z-loss 0.01", z_loss=0.01, chunk_size=4)
    yield case("soft-cap 1.5", softcap=1.5, chunk_size=3)
    yield case(
        "every option at once",
        ignored=True,
        bias=make.randn(_V),
        label_smoothing=0.1,
        z_loss=0.02,
        softcap=2.0,
        chunk_size=2,
    )
    yield case("smoothing and bias, no chunking", bias=make.randn(_V), label_smoothing=0.3)
    hidden = make.randn(2, 3, _D)
    yield SampleInput(
        (hidden, make.randn(_V, _D), make.randint(_V, (2, 3))),
        {"chunk_size": 4},
        "(batch, seq, d) hidden states",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(_D), make.randn(_V, _D), make.randint(_V, ())),
        {},
        "one token (d,)",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(4, _D), make.randn(_V, _D), torch.full((4,), -100, device=device)),
        {"chunk_size": 3},
        "every target ignored",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(0, _D), make.randn(_V, _D), torch.zeros(0, dtype=torch.long, device=device)),
        {},
        "no tokens",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(6, _D, scale=3e3), make.randn(_V, _D), make.randint(_V, (6,))),
        {"chunk_size": 4, "z_loss": 1e-4, "label_smoothing": 0.1},
        "logits of about +-1e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _errors() -> Iterator[ErrorInput]:
    loss = "linear_cross_entropy"
    make = TensorMaker(torch.float32, "cpu")
    h, w, y = make.randn(6, 4), make.randn(10, 4), make.randint(10, (6,))
    yield ErrorInput(
        SampleInput((h, make.randn(10, 5), y)),
        rf"{loss}: weight has shape \(10, 5\); expected \(V, 4\) with V >= 1, one row of d=4 "
        "features",
    )
    yield ErrorInput(
        SampleInput((h, make.randn(0, 4), y)),
        rf"{loss}: weight has shape \(0, 4\); expected \(V, 4\) with V >= 1",
    )
    yield ErrorInput(
        SampleInput((h, w, y.float())),
        rf"{loss}: target has dtype torch.float32; expected integer class indices",
    )
    yield ErrorInput(
        SampleInput((h, w, make.randint(10, (6, 1)))),
        rf"{loss}: target has shape \(6, 1\); expected \(6,\), one class index per row",
    )
    yield ErrorInput(
        SampleInput((h, w.double(), y)),
        rf"{loss}: weight has dtype torch.float64; expected the dtype of input, torch.float32",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"bias": make.randn(9)}),
        rf"{loss}: bias has shape \(9,\); expected \(10,\), one per class",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"reduction": "batchmean"}),
        rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"label_smoothing": 1.5}),
        rf"{loss}: label_smoothing is 1.5; expected a number >= 0 and <= 1",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"z_loss": -1e-4}),
        rf"{loss}: z_loss is -0.0001; expected a number >= 0",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"softcap": 0.0}),
        rf"{loss}: softcap is 0.0; expected a number > 0",
    )
    yield ErrorInput(
        SampleInput((h, w, y), {"chunk_size": 0}),
        rf"{loss}: chunk_size is 0; expected an int >= 1 or None",
    )
    yield ErrorInput(
        SampleInput((h, w, torch.tensor([0, 1, 2, 10, 4, 5]))),
        rf"{loss}: target has class indices in \[0, 10\]; expected indices in \[0, 9\]",
        checks="full",
    )
    yield ErrorInput(  # on CPU the range check costs no sync, so it runs under "fast" too
        SampleInput((h, w, torch.tensor([0, 1, -100, -3, 4, 5]))),
        rf"{loss}: target has class indices in \[-3, 5\]; expected indices in \[0, 9\]",
    )
    yield ErrorInput(
        SampleInput((h.clone().fill_(float("nan")), w, y)),
        rf"{loss}: input has 24 non-finite value\(s\)",
        checks="full",
    )


def _bench_inputs(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` tokens with an LM head of ``d = size / 8`` features and ``V = 8 size`` classes:
    4096 is (N, d, V) = (4096, 512, 32768) and 8192 is (8192, 1024, 65536), the sizes of the
    performance goal; 32 is (32, 4, 256), a head small enough that only per-call costs count."""
    make = TensorMaker(dtype, device, seed=size)
    d, vocab = max(size // 8, 1), size * 8
    return SampleInput(
        (make.randn(size, d), make.randn(vocab, d, scale=d**-0.5), make.randint(vocab, (size,))),
        {},
        f"N={size}, d={d}, V={vocab}",
        grad_args=(0, 1),
    )


CASES: dict[str, LossCases] = {
    "linear_cross_entropy": LossCases(
        reference=linear_cross_entropy_reference,
        sample_inputs=_samples,
        error_inputs=_errors,
        bench_inputs=_bench_inputs,
        bench_references={
            "naive F.cross_entropy(h @ W.T, y)": naive_linear_cross_entropy,
            "torch F.linear_cross_entropy (chunked)": torch_chunked_linear_cross_entropy,
        },
    ),
}
