"""Fixtures of the sequence entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker


def torch_ctc(log_probs, targets, input_lengths, target_lengths, **kwargs):
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, **kwargs)


def _ctc_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)

    def log_probs(t: int, n: int, c: int, scale: float = 1.0) -> torch.Tensor:
        return make.randn(t, n, c, scale=scale).log_softmax(2)

    def lengths(*values: int) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    def labels(n: int, s: int, c: int, blank: int = 0) -> torch.Tensor:
        """Random labels that avoid ``blank``, padded with the blank index."""
        y = make.randint(c - 1, (n, s))
        return torch.where(y >= blank, y + 1, y)

    il, tl = lengths(8, 7, 6), lengths(4, 2, 3)
    padded = labels(3, 4, 4)
    padded[1, 2:] = 0  # padding beyond target_lengths may hold anything, the blank included
    padded[2, 3:] = 0
    yield SampleInput((log_probs(8, 3, 4), padded, il, tl), {}, "padded targets")
    concatenated = torch.cat([padded[0, :4], padded[1, :2], padded[2, :3]])
    yield SampleInput((log_probs(8, 3, 4), concatenated, il, tl), {}, "concatenated targets")
    yield SampleInput(
        (log_probs(8, 3, 4), padded, [8, 7, 6], (4, 2, 3)), {}, "lengths as a list and a tuple"
    )
    yield SampleInput(
        (log_probs(8, 3, 4), padded.int(), il.int(), tl.int()), {}, "int32 targets and lengths"
    )
    yield SampleInput(
        (log_probs(7, 2, 5), labels(2, 3, 5, blank=4), lengths(7, 6), lengths(3, 3)),
        {"blank": 4},
        "blank = C - 1",
    )
    repeats = torch.tensor([[1, 1, 2, 2, 2], [3, 3, 3, 3, 1]], device=device)
    yield SampleInput(
        (log_probs(9, 2, 4), repeats, lengths(8, 9), lengths(5, 5)),
        {},
        "repeated labels (need blanks between them)",
    )
    yield SampleInput(
        (log_probs(8, 3, 4), labels(3, 3, 4), lengths(8, 5, 2), lengths(3, 0, 3)),
        {"zero_infinity": True},
        "zero_infinity: a target longer than its input counts as 0",
    )
    yield SampleInput(
        (log_probs(6, 2, 4), labels(2, 2, 4), lengths(6, 4), lengths(0, 2)),
        {},
        "an empty target (only blanks)",
    )
    yield SampleInput(
        (make.randn(7, 4).log_softmax(1), labels(1, 3, 4)[0], torch.tensor(7), torch.tensor(3)),
        {},
        "unbatched (T, C)",
    )
    yield SampleInput(
        (log_probs(7, 0, 5), labels(0, 3, 5), lengths(), lengths()),
        {},
        "empty batch",
        reference=False,
    )
    yield SampleInput(
        (log_probs(10, 2, 5, scale=1e4), labels(2, 3, 5), lengths(10, 9), lengths(3, 3)),
        {},
        "log-probabilities down to -1e4",
        tags=frozenset({"extreme"}),
    )


def _ctc_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    lp = make.randn(6, 2, 4).log_softmax(2)
    y = torch.tensor([[1, 2, 3], [3, 1, 0]])
    il, tl = torch.tensor([6, 5]), torch.tensor([3, 2])
    loss = "ctc_loss"
    yield ErrorInput(
        SampleInput((lp, torch.tensor([[1, 0, 3], [3, 1, 0]]), il, tl)),
        rf"{loss}: targets contains the blank index 0 1 time\(s\) within target_lengths; "
        r"expected labels other than blank=0",
    )
    yield ErrorInput(
        SampleInput((lp, torch.tensor([[1, 1, 1], [3, 1, 0]]), torch.tensor([4, 5]), tl)),
        rf"{loss}: input_lengths\[0\] is 4; expected at least 5: target_lengths\[0\] = 3 labels "
        r"plus 2 blank\(s\) between repeated labels",
    )
    yield ErrorInput(
        SampleInput((lp, y, torch.tensor([7, 5]), tl)),
        rf"{loss}: input_lengths has values in \[5, 7\]; expected lengths in \[0, 6\], the time "
        r"steps of log_probs \(6, 2, 4\)",
    )
    yield ErrorInput(
        SampleInput((lp, y, torch.tensor([-1, 5]), tl)),
        rf"{loss}: input_lengths has values in \[-1, 5\]; expected lengths in \[0, 6\]",
    )
    yield ErrorInput(
        SampleInput((lp, y, il, torch.tensor([4, 2]))),
        rf"{loss}: target_lengths has values in \[2, 4\]; expected lengths in \[0, 3\], the "
        r"columns of the padded targets \(2, 3\)",
    )
    yield ErrorInput(
        SampleInput((lp, torch.tensor([[1, 2, 9], [3, 1, 0]]), il, tl)),
        rf"{loss}: targets has 1 label\(s\) outside \[0, 3\] \(in \[9, 9\]\); expected class "
        r"indices in \[0, 3\] for log_probs with C=4",
    )
    yield ErrorInput(
        SampleInput((lp, torch.tensor([1, 2, 3, 3]), il, tl)),
        rf"{loss}: target_lengths sum to 5; expected 4, the length of the concatenated targets",
    )
    yield ErrorInput(
        SampleInput((lp, y, torch.tensor([6, 5, 4]), tl)),
        rf"{loss}: input_lengths has shape \(3,\); expected \(2,\), one length per batch element",
    )
    yield ErrorInput(
        SampleInput((lp, y, il, tl), {"blank": 4}),
        rf"{loss}: blank is 4; expected a class index in \[0, 3\] \(C=4\)",
    )
    yield ErrorInput(
        SampleInput((lp, y.float(), il, tl)),
        rf"{loss}: targets has dtype torch.float32; expected integer class indices",
    )
    yield ErrorInput(
        SampleInput((lp, y, [6.0, 5.0], tl)),
        rf"{loss}: input_lengths is a list; expected an integer tensor or a sequence of ints",
    )
    yield ErrorInput(
        SampleInput((lp.unsqueeze(0), y, il, tl)),
        rf"{loss}: log_probs has shape \(1, 6, 2, 4\); expected \(T, N, C\) log-probabilities",
    )
    yield ErrorInput(
        SampleInput((lp, y, il, tl), {"reduction": "batchmean"}),
        rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((lp.exp(), y, il, tl)),
        rf"{loss}: log_probs has a maximum of [0-9.]+; expected log-probabilities, values <= 0",
        checks="full",
    )


def _ctc_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """A batch of ``size`` sequences: T = 50 frames, C = 20 classes, targets of 10 labels."""
    make = TensorMaker(dtype, device, seed=size)
    log_probs = make.randn(50, size, 20).log_softmax(2)
    targets = make.randint(20, (size, 10), low=1)
    lengths = torch.full((size,), 50, device=device)
    return SampleInput(
        (log_probs, targets, lengths, torch.full((size,), 10, device=device)),
        {},
        f"T=50, N={size}, C=20, S=10",
    )


CASES: dict[str, LossCases] = {
    "ctc": LossCases(
        reference=torch_ctc,
        sample_inputs=_ctc_samples,
        error_inputs=_ctc_errors,
        bench_inputs=_ctc_bench,
    ),
}
