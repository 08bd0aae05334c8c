"""Fixtures of the angular-margin entries: the dense references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

_N, _D, _C = 7, 4, 9
#: the benchmark's embeddings and features; its size is the number of classes
BENCH_ROWS, BENCH_FEATURES = 4096, 512


def _dense(
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    target: Callable[[Tensor], Tensor],
    scale: float,
    ignore_index: int,
    reduction: str,
) -> Tensor:
    """The full ``N x C`` cosine matrix, ``target`` applied to the true class's cosines,
    ``F.cross_entropy`` of ``scale`` times that, under losskit's mean rule."""
    cosine = F.normalize(embeddings, dim=1) @ F.normalize(class_weight, dim=1).mT
    counted = labels != ignore_index
    safe = torch.where(counted, labels, 0)[:, None]
    true = cosine.gather(1, safe)
    logits = scale * cosine.scatter(1, safe, target(true))
    losses = F.cross_entropy(logits, safe.squeeze(1), reduction="none")
    losses = torch.where(counted, losses, 0.0)
    if reduction == "none":
        return losses
    total = losses.sum()
    return total if reduction == "sum" else total / counted.sum().clamp(min=1)


def cosface_reference(
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    *,
    scale: float = 64.0,
    margin: float = 0.35,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    """CosFace as the paper writes it: ``s (cos theta_y - m)`` at the true class."""
    del chunk_size  # the dense formula has no chunks
    return _dense(
        embeddings, labels, class_weight, lambda c: c - margin, scale, ignore_index, reduction
    )


def arcface_reference(
    embeddings: Tensor,
    labels: Tensor,
    class_weight: Tensor,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    easy_margin: bool = False,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    """ArcFace as the paper writes it, in angles: ``cos(theta_y + m)`` from ``acos``, with the
    easy margin (``theta < pi/2``) or the fallback ``cos theta - m sin m`` past ``pi - m``."""
    del chunk_size

    def target(cosine: Tensor) -> Tensor:
        theta = torch.acos(cosine.clamp(-1.0, 1.0))
        if easy_margin:
            return torch.where(theta < math.pi / 2, torch.cos(theta + margin), cosine)
        fallback = cosine - margin * math.sin(margin)
        return torch.where(theta <= math.pi - margin, torch.cos(theta + margin), fallback)

    return _dense(embeddings, labels, class_weight, target, scale, ignore_index, reduction)


def _pml(kind: str) -> Callable[..., Tensor]:
    """pytorch-metric-learning's loss on the same centres (its ``W`` is ``class_weight.T``, its
    ArcFace margin in degrees), for the benchmark."""

    def reference(
        embeddings: Tensor, labels: Tensor, class_weight: Tensor, **options: object
    ) -> Tensor:
        from pytorch_metric_learning import losses

        classes, features = class_weight.shape
        if kind == "arcface":
            pml = losses.ArcFaceLoss(
                classes, features, margin=math.degrees(0.5), scale=options.get("scale", 64.0)
            )
        else:
            pml = losses.CosFaceLoss(classes, features, scale=options.get("scale", 64.0))
        del pml.W  # the benchmark's centres, with their gradient, instead of its own
        pml.W = class_weight.T
        return pml(embeddings, labels)

    return reference


def _samples(arc: bool) -> Callable[[torch.dtype, torch.device], Iterator[SampleInput]]:
    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device, seed=18)

        def case(desc: str, *, n: int = _N, ignored: bool = False, **kwargs: object) -> SampleInput:
            labels = make.randint(_C, (n,))
            if ignored:
                labels[::3] = kwargs.get("ignore_index", -100)  # type: ignore[call-overload]
            return SampleInput(
                (make.randn(n, _D), labels, make.randn(_C, _D, scale=0.7)),
                kwargs,
                desc,
                grad_args=(0, 2),
            )

        yield case("defaults (s=64), one chunk")
        yield case("chunks of 3 rows (7 embeddings: the last chunk is short)", chunk_size=3)
        yield case("s=16, a small margin", scale=16.0, margin=0.2, chunk_size=4)
        yield case("every third label ignored, chunks of 2", ignored=True, chunk_size=2)
        yield case("ignore_index=4", ignored=True, ignore_index=4, chunk_size=3)
        yield case("no margin: normalised softmax", scale=8.0, margin=0.0)
        yield case("one embedding", n=1, scale=8.0)
        if arc:
            yield case("easy margin", easy_margin=True, scale=8.0, chunk_size=3)
            yield case("a large margin, 1.2 rad", margin=1.2, scale=8.0)
        # each embedding near the opposite of its class centre: ArcFace's fallback past
        # theta = pi - m (and the easy margin's cos theta past pi/2)
        labels = make.randint(_C, (5,))
        weight = make.randn(_C, _D)
        opposite = -weight[labels] + make.randn(5, _D, scale=0.05)
        for options in ({"scale": 8.0}, {"scale": 8.0, "easy_margin": True}) if arc else ({},):
            yield SampleInput(
                (opposite, labels, weight),
                options,
                "embeddings opposite their class centres",
                grad_args=(0, 2),
            )
        yield SampleInput(
            (make.randn(4, _D), torch.full((4,), -100, device=device), make.randn(_C, _D)),
            {"chunk_size": 3},
            "every label ignored",
            grad_args=(0, 2),
        )
        yield SampleInput(
            (
                make.randn(0, _D),
                torch.zeros(0, dtype=torch.long, device=device),
                make.randn(_C, _D),
            ),
            {},
            "no embeddings",
            grad_args=(0, 2),
        )
        yield SampleInput(
            (make.randn(6, _D, scale=1e4), make.randint(_C, (6,)), make.randn(_C, _D, scale=1e-4)),
            {"scale": 1e4, "chunk_size": 4},
            "s=1e4, embeddings of norm 1e4, centres of norm 1e-4",
            grad_args=(0, 2),
            tags=frozenset({"extreme"}),
        )

    return samples


def _errors(arc: bool) -> Callable[[], Iterator[ErrorInput]]:
    loss = "arcface_loss" if arc else "cosface_loss"

    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        h, y, w = make.randn(6, 4), make.randint(10, (6,)), make.randn(10, 4)
        yield ErrorInput(
            SampleInput((make.randn(6, 2, 2), y, w)),
            rf"{loss}: embeddings has shape \(6, 2, 2\); expected \(N, d\), one embedding per row",
        )
        yield ErrorInput(
            SampleInput((h, y, make.randn(10, 5))),
            rf"{loss}: class_weight has shape \(10, 5\); expected \(C, 4\) with C >= 1, one "
            "centre of d=4 features per class",
        )
        yield ErrorInput(
            SampleInput((h, y, make.randn(0, 4))),
            rf"{loss}: class_weight has shape \(0, 4\); expected \(C, 4\) with C >= 1",
        )
        yield ErrorInput(
            SampleInput((h, y.float(), w)),
            rf"{loss}: labels has dtype torch.float32; expected integer class indices",
        )
        yield ErrorInput(
            SampleInput((h, make.randint(10, (6, 1)), w)),
            rf"{loss}: labels has shape \(6, 1\); expected \(6,\), one class index per embedding",
        )
        yield ErrorInput(
            SampleInput((h, y, w.double())),
            rf"{loss}: class_weight has dtype torch.float64; expected the dtype of embeddings",
        )
        yield ErrorInput(
            SampleInput((h.long(), y, w)),
            rf"{loss}: embeddings has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((h, y, w), {"reduction": "batchmean"}),
            rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((h, y, w), {"scale": 0.0}),
            rf"{loss}: scale is 0.0; expected a number > 0",
        )
        yield ErrorInput(
            SampleInput((h, y, w), {"margin": -0.1}),
            rf"{loss}: margin is -0.1; expected a number >= 0",
        )
        if arc:
            yield ErrorInput(
                SampleInput((h, y, w), {"margin": 28.6}),
                rf"{loss}: margin is 28.6; expected a number >= 0 and < 1.5708",
            )
            yield ErrorInput(
                SampleInput((h, y, w), {"easy_margin": 1}),
                rf"{loss}: easy_margin is 1; expected True or False",
            )
        yield ErrorInput(
            SampleInput((h, y, w), {"chunk_size": 0}),
            rf"{loss}: chunk_size is 0; expected an int >= 1 or None",
        )
        yield ErrorInput(  # on CPU the range check costs no sync, so it runs under "fast" too
            SampleInput((h, torch.tensor([0, 1, 2, 10, 4, 5]), w)),
            rf"{loss}: labels has class indices in \[0, 10\]; expected indices in \[0, 9\] or "
            "ignore_index=-100",
        )
        yield ErrorInput(
            SampleInput((h, torch.tensor([0, 1, -100, -3, 4, 5]), w)),
            rf"{loss}: labels has class indices in \[-3, 5\]; expected indices in \[0, 9\]",
        )
        yield ErrorInput(
            SampleInput((h.clone().fill_(float("nan")), y, w)),
            rf"{loss}: embeddings has 24 non-finite value\(s\)",
            checks="full",
        )

    return errors


def _bench_inputs(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """4096 embeddings of 512 features against ``size`` classes: 1,048,576 is the issue's
    face-recognition goal (the dense logits alone would be 16 GiB in float32)."""
    make = TensorMaker(dtype, device, seed=size)
    return SampleInput(
        (
            make.randn(BENCH_ROWS, BENCH_FEATURES),
            make.randint(size, (BENCH_ROWS,)),
            make.randn(size, BENCH_FEATURES),
        ),
        {},
        f"N={BENCH_ROWS}, d={BENCH_FEATURES}, C={size}",
        grad_args=(0, 2),
    )


CASES: dict[str, LossCases] = {
    "cosface": LossCases(
        reference=cosface_reference,
        sample_inputs=_samples(arc=False),
        error_inputs=_errors(arc=False),
        bench_inputs=_bench_inputs,
        bench_references={
            "dense formula (N x C logits)": cosface_reference,
            "pytorch-metric-learning CosFaceLoss": _pml("cosface"),
        },
    ),
    "arcface": LossCases(
        reference=arcface_reference,
        sample_inputs=_samples(arc=True),
        error_inputs=_errors(arc=True),
        bench_inputs=_bench_inputs,
        bench_references={
            "dense formula (N x C logits)": arcface_reference,
            "pytorch-metric-learning ArcFaceLoss": _pml("arcface"),
        },
    ),
}
