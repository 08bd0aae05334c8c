"""Fixtures of the classification entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker, binary_errors, torch_reference


def with_ignored(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Every third target ignored."""
    target = target.clone()
    target.view(-1)[::3] = ignore_index
    return target


def _score_samples(log_probs: bool, smoothing: bool):
    """Samples for cross-entropy (logits) or NLL (log-probabilities)."""

    def scores(make: TensorMaker, *shape: int, scale: float = 1.0) -> torch.Tensor:
        x = make.randn(*shape, scale=scale)
        return x.log_softmax(1 if x.dim() > 1 else 0) if log_probs else x

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        smooth_values = (0.0, 0.2) if smoothing else (0.0,)
        for shape, use_weight, ignore, eps in itertools.product(
            ((6, 4), (2, 3, 4, 5)), (False, True), (None, -100, 1), smooth_values
        ):
            n, c, spatial = shape[0], shape[1], shape[2:]
            target = make.randint(c, (n, *spatial))
            kwargs: dict = {}
            if ignore is not None:
                target = with_ignored(target, ignore)
                if ignore != -100:
                    kwargs["ignore_index"] = ignore
            if use_weight:
                kwargs["weight"] = make.uniform(c, low=0.2, high=2.0)
            if eps:
                kwargs["label_smoothing"] = eps
            yield SampleInput((scores(make, *shape), target), kwargs, f"{shape} {kwargs}")
        for shape, index_dtype in itertools.product(
            ((6, 4), (2, 3, 4, 5)), (torch.uint8, torch.int8, torch.int16, torch.int32)
        ):
            # every integer dtype gives the int64 number (uint8 is indices, not a mask)
            kwargs = {"weight": make.uniform(shape[1], low=0.2, high=2.0)}
            if smoothing:
                kwargs["label_smoothing"] = 0.1
            target = make.randint(shape[1], (shape[0], *shape[2:])).to(index_dtype)
            yield SampleInput((scores(make, *shape), target), kwargs, f"{index_dtype} targets")
        yield SampleInput((scores(make, 5), make.randint(5, ())), {}, "unbatched (C,)")
        yield SampleInput(
            (scores(make, 4, 3), torch.full((4,), -100, device=device)),
            {},
            "every target ignored",
            reference=False,
        )
        yield SampleInput(
            (scores(make, 0, 3), torch.zeros(0, dtype=torch.long, device=device)),
            {},
            "empty batch",
            reference=False,
        )
        yield SampleInput(
            (scores(make, 8, 5, scale=1e4), make.randint(5, (8,))),
            {},
            "logits of +-1e4",
            tags=frozenset({"extreme"}),
        )
        if not log_probs:
            for shape, use_weight, eps in itertools.product(
                ((5, 3), (2, 3, 4)), (False, True), smooth_values
            ):
                kwargs = {"weight": make.uniform(3, low=0.2, high=2.0)} if use_weight else {}
                if eps:
                    kwargs["label_smoothing"] = eps
                yield SampleInput(
                    (make.randn(*shape), make.probabilities(*shape)),
                    kwargs,
                    f"probabilities {shape} {kwargs}",
                )
            yield SampleInput(
                (make.randn(0, 3), make.probabilities(0, 3)),
                {},
                "empty probabilities",
                reference=False,
            )
            for ignore in (1, -100):
                # no index to ignore in probabilities: ignore_index does not apply
                yield SampleInput(
                    (make.randn(2, 3, 4), make.probabilities(2, 3, 4)),
                    {"ignore_index": ignore, "label_smoothing": 0.1},
                    f"probabilities, ignore_index={ignore}",
                )

    return samples


def score_errors(loss: str, log_probs: bool):
    """The error inputs of a loss on class scores and class-index (or, unless ``log_probs``,
    probability) targets, as cross-entropy validates them."""

    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x, y = make.randn(8, 5), make.randint(5, (8,))
        yield ErrorInput(
            SampleInput((x, make.randint(5, (8, 3)))),
            rf"{loss}: target has shape \(8, 3\) and dtype torch.int64; expected \(8,\) integer "
            r"class indices or \(8, 5\) floating probabilities for input \(8, 5\)",
        )
        yield ErrorInput(
            SampleInput((torch.zeros(8, 5, dtype=torch.long), y)),
            rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, y), {"weight": make.uniform(4)}),
            rf"{loss}: weight has shape \(4,\); expected \(5,\), one weight per class",
        )
        yield ErrorInput(
            SampleInput((x, y), {"reduction": "batchmean"}),
            rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((x, y), {"ignore_index": 1.5}),
            rf"{loss}: ignore_index is 1.5; expected an int",
        )
        yield ErrorInput(
            SampleInput((torch.tensor(1.0), torch.tensor(0))),
            rf"{loss}: input is a scalar; expected \(N, C\)",
        )
        yield ErrorInput(
            SampleInput((x, torch.tensor([0, 1, 2, 3, 4, 5, 0, 1]))),
            rf"{loss}: target has class indices in \[0, 5\]; expected indices in \[0, 4\] or "
            r"ignore_index=-100",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((x, torch.tensor([0, 1, 2, 3, 4, -3, 0, 1]))),
            rf"{loss}: target has class indices in \[-3, 4\]; expected indices in \[0, 4\] or "
            r"ignore_index=-100",
        )
        yield ErrorInput(
            SampleInput((make.randn(8, 0), torch.zeros(8, dtype=torch.long))),
            rf"{loss}: input has shape \(8, 0\); expected at least one class",
        )
        yield ErrorInput(
            SampleInput((make.randn(2, 0, 3), torch.zeros(2, 3, dtype=torch.long))),
            rf"{loss}: input has shape \(2, 0, 3\); expected at least one class",
        )
        yield ErrorInput(
            SampleInput((x, y > 2)),
            rf"{loss}: target has dtype torch.bool; expected integer class indices or floats",
        )
        if loss in ("cross_entropy", "nll_loss"):  # torch's kernels; the focal family shares
            # these errors but differentiates its class weight
            yield ErrorInput(
                SampleInput((x, y), {"weight": make.uniform(5).requires_grad_()}),
                rf"{loss}: weight requires grad; expected a constant class weight",
            )
        if log_probs:
            yield ErrorInput(
                SampleInput((x, make.probabilities(8, 5))),
                rf"{loss}: target has dtype torch.float32; expected integer class indices",
            )
        else:
            yield ErrorInput(
                SampleInput((x, y), {"label_smoothing": 1.5}),
                rf"{loss}: label_smoothing is 1.5; expected a number >= 0 and <= 1",
            )
            yield ErrorInput(
                SampleInput((x, make.probabilities(8, 5).double())),
                rf"{loss}: target has dtype torch.float64; expected the dtype of input",
            )
            yield ErrorInput(
                SampleInput((x, make.probabilities(8, 5) * 2)),
                rf"{loss}: target has values in \[.*\]; expected values in \[0, 1\]",
                checks="full",
            )

    return errors


def _binary_samples(logits: bool):
    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)

        def inputs(*shape: int) -> torch.Tensor:
            return make.randn(*shape) if logits else make.uniform(*shape, low=0.05, high=0.95)

        for shape in ((7,), (4, 5), (2, 3, 4)):
            hard = make.randint(2, shape).to(dtype)
            yield SampleInput((inputs(*shape), hard), {}, f"{shape} hard labels")
            yield SampleInput(
                (inputs(*shape), make.uniform(*shape)), {}, f"{shape} soft labels", grad_args=(0, 1)
            )
            yield SampleInput(
                (inputs(*shape), hard),
                {"weight": make.uniform(*shape, low=0.1, high=2.0)},
                "weighted",
            )
        yield SampleInput(
            (inputs(3, 4), make.randint(2, (3, 4)).to(dtype)),
            {"weight": torch.zeros(3, 4, dtype=dtype, device=device)},
            "all weights zero",
            reference=False,
        )
        yield SampleInput((inputs(0), make.uniform(0)), {}, "empty", reference=False)
        if logits:
            for pw in (make.uniform(5, low=0.5, high=3.0), 2.0):
                yield SampleInput(
                    (inputs(4, 5), make.randint(2, (4, 5)).to(dtype)),
                    {"pos_weight": pw},
                    "pos_weight",
                )
            yield SampleInput(
                (
                    make.tensor([1e4, -1e4, 1e4, -1e4, 0.0]),
                    make.tensor([1.0, 0.0, 0.0, 1.0, 1.0]),
                ),
                {},
                "logits of +-1e4",
                tags=frozenset({"extreme"}),
            )
        else:
            yield SampleInput(
                (make.tensor([0.0, 1.0, 0.0, 1.0, 0.5]), make.tensor([1.0, 0.0, 0.0, 1.0, 1.0])),
                {},
                "probabilities at exactly 0 and 1",
                tags=frozenset({"extreme"}),
            )

    return samples


def _torch_scores(torch_fn):
    """torch's cross-entropy or NLL, called as losskit reads its arguments: integer targets of
    any dtype as int64 indices, and no ignore_index with probability targets (torch refuses
    any but its default there)."""

    def reference(input, target, **kwargs):
        if target.is_floating_point():
            kwargs.pop("ignore_index", None)
        else:
            target = target.long()
        return torch_fn(input, target, **kwargs)

    return reference


def _torch_bce_with_logits(input, target, *, pos_weight=None, **kwargs):
    if pos_weight is not None and not isinstance(pos_weight, torch.Tensor):
        pos_weight = torch.tensor(pos_weight, dtype=input.dtype)
    return F.binary_cross_entropy_with_logits(input, target, pos_weight=pos_weight, **kwargs)


def _class_bench(log_probs: bool):
    def inputs(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
        """``size`` logits: (size / 32, 32) for small sizes, (size / 1000, 1000) for large."""
        make = TensorMaker(dtype, device, seed=size)
        classes = 32 if size < 32_000 else 1000
        x = make.randn(max(size // classes, 1), classes)
        if log_probs:
            x = x.log_softmax(1)
        return SampleInput((x, make.randint(classes, (x.shape[0],))), {}, f"{tuple(x.shape)}")

    return inputs


def _binary_bench(logits: bool):
    def inputs(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
        make = TensorMaker(dtype, device, seed=size)
        x = make.randn(size) if logits else make.uniform(size, low=0.01, high=0.99)
        return SampleInput((x, make.randint(2, (size,)).to(dtype)), {}, f"{size} elements")

    return inputs


CASES: dict[str, LossCases] = {
    "cross_entropy": LossCases(
        reference=_torch_scores(F.cross_entropy),
        bench_references={"torch.nn.functional.cross_entropy": F.cross_entropy},
        bench_inputs=_class_bench(log_probs=False),
        sample_inputs=_score_samples(log_probs=False, smoothing=True),
        error_inputs=score_errors("cross_entropy", log_probs=False),
    ),
    "nll": LossCases(
        reference=_torch_scores(F.nll_loss),
        bench_references={"torch.nn.functional.nll_loss": F.nll_loss},
        bench_inputs=_class_bench(log_probs=True),
        sample_inputs=_score_samples(log_probs=True, smoothing=False),
        error_inputs=score_errors("nll_loss", log_probs=True),
    ),
    "bce": LossCases(
        reference=torch_reference(F.binary_cross_entropy),
        bench_inputs=_binary_bench(logits=False),
        sample_inputs=_binary_samples(logits=False),
        error_inputs=binary_errors("binary_cross_entropy", probabilities=True),
    ),
    "bce_with_logits": LossCases(
        reference=torch_reference(_torch_bce_with_logits),
        bench_inputs=_binary_bench(logits=True),
        sample_inputs=_binary_samples(logits=True),
        error_inputs=binary_errors("binary_cross_entropy_with_logits", pos_weight=True),
    ),
}
