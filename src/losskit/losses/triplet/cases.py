"""Fixtures of the triplet entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker
from losskit.losses.triplet.distances import DISTANCES
from losskit.losses.triplet.mining import MINERS, batch_hard_triplets

Triplet = tuple[int, int, int]


def manhattan_distances(x: Tensor, y: Tensor) -> Tensor:
    """A user distance for the samples: the L1 distance matrix (not ``torch.cdist``, which
    has no double backward)."""
    return (x[:, None] - y[None]).abs().sum(-1)


def manhattan_pairs(x1: Tensor, x2: Tensor) -> Tensor:
    """A user distance for the explicit form: row-wise L1 distances."""
    return (x1 - x2).abs().sum(-1)


# ------------------------------------------------------------------- the explicit form


def _explicit_reference_distance(distance: object) -> Callable[[Tensor, Tensor], Tensor]:
    if callable(distance):
        return distance
    return {
        "euclidean": lambda x, y: torch.linalg.vector_norm(x - y, dim=-1),
        "squared_euclidean": lambda x, y: (x - y).square().sum(-1),
        "cosine": lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1),
    }[distance]


def torch_triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    distance: object = None,
    reduction: str = "mean",
) -> Tensor:
    """torch.nn.functional.triplet_margin_loss, or triplet_margin_with_distance_loss when a
    distance is given."""
    if distance is None:
        return F.triplet_margin_loss(
            anchor, positive, negative, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction
        )
    return F.triplet_margin_with_distance_loss(
        anchor,
        positive,
        negative,
        distance_function=_explicit_reference_distance(distance),
        margin=margin,
        swap=swap,
        reduction=reduction,
    )


_EXPLICIT_OPTIONS: tuple[dict, ...] = (
    {},
    {"margin": 0.5},
    {"p": 1.0},
    {"p": 3.0, "eps": 0.0},
    {"swap": True},
    {"distance": "euclidean"},
    {"distance": "squared_euclidean", "margin": 2.0},
    {"distance": "cosine", "swap": True},
    {"distance": manhattan_pairs},
)


def _explicit_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for shape in ((8, 5), (5,), (2, 3, 4)):
        for opts in _EXPLICIT_OPTIONS:
            yield SampleInput(
                (make.randn(*shape), make.randn(*shape), make.randn(*shape)),
                opts,
                f"{shape} {opts}",
                grad_args=(0, 1, 2),
            )
    yield SampleInput(
        (make.randn(0, 5), make.randn(0, 5), make.randn(0, 5)), {}, "empty batch", reference=False
    )
    anchor = make.randn(6, 4, scale=1e4)
    for opts in ({}, {"distance": "euclidean"}, {"distance": "cosine"}):
        yield SampleInput(
            (anchor, anchor.clone(), make.randn(6, 4, scale=1e4)),
            opts,
            f"scale 1e4, positive == anchor {opts}",
            grad_args=(0, 1, 2),
            tags=frozenset({"extreme"}),
        )


def _explicit_errors() -> Iterator[ErrorInput]:
    loss = "triplet_margin_loss"
    make = TensorMaker(torch.float32, "cpu")
    x = make.randn(4, 3)
    yield ErrorInput(
        SampleInput((x, make.randn(4, 2), x)),
        rf"{loss}: positive has shape \(4, 2\); expected the shape of anchor, \(4, 3\)",
    )
    yield ErrorInput(
        SampleInput((x, x, x.double())),
        rf"{loss}: negative has dtype torch.float64; expected the dtype of anchor",
    )
    yield ErrorInput(
        SampleInput((torch.ones(4, 3, dtype=torch.long), x, x)),
        rf"{loss}: anchor has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0))),
        rf"{loss}: anchor is a scalar; expected \(N, D\) or \(D,\)",
    )
    yield ErrorInput(
        SampleInput((x, x, x), {"margin": 0.0}),
        rf"{loss}: margin is 0.0; expected a number > 0",
    )
    yield ErrorInput(SampleInput((x, x, x), {"p": 0}), rf"{loss}: p is 0; expected a number > 0")
    yield ErrorInput(
        SampleInput((x, x, x), {"eps": -1e-6}), rf"{loss}: eps is -1e-06; expected a number >= 0"
    )
    yield ErrorInput(
        SampleInput((x, x, x), {"distance": "manhattan"}),
        rf"{loss}: distance is 'manhattan'; expected one of 'euclidean', 'squared_euclidean', "
        r"'cosine' or a callable",
    )
    yield ErrorInput(
        SampleInput((x, x, x), {"distance": lambda a, b: (a - b).abs()}),
        rf"{loss}: distance returned \(4, 3\); expected row-wise distances of shape \(4,\)",
    )
    yield ErrorInput(
        SampleInput((x, x, x), {"swap": 1}), rf"{loss}: swap is 1; expected True or False"
    )
    yield ErrorInput(
        SampleInput((x, x, x), {"reduction": "batchmean"}),
        rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((make.tensor([[0.0, float("inf")]]), make.randn(1, 2), make.randn(1, 2))),
        rf"{loss}: anchor has 1 non-finite value\(s\); expected finite values",
        checks="full",
    )


def _explicit_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    return SampleInput(
        (make.randn(size, 128), make.randn(size, 128), make.randn(size, 128)),
        {},
        f"{size} triplets, D=128",
        grad_args=(0, 1, 2),
    )


# ---------------------------------------------------------------------- the label form


def loop_distances(x: Tensor, distance: object) -> list[list[float]]:
    """Every pairwise distance of the rows of ``x`` (float64), one pair at a time."""
    if callable(distance):
        return distance(x.double(), x.double()).tolist()
    rows = x.double().tolist()
    norms = [max(math.sqrt(sum(v * v for v in r)), 1e-12) for r in rows]
    out = []
    for i, u in enumerate(rows):
        line = []
        for j, v in enumerate(rows):
            if i == j:
                line.append(0.0)
            elif distance == "cosine":
                line.append(
                    1.0 - sum(a * b for a, b in zip(u, v, strict=True)) / norms[i] / norms[j]
                )
            else:
                squared = sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
                line.append(squared if distance == "squared_euclidean" else math.sqrt(squared))
        out.append(line)
    return out


def loop_triplets(
    dist: Sequence[Sequence[float]], labels: Sequence[int], miner: str
) -> list[Triplet]:
    """The triplets a miner selects, by explicit loops (the slow reference for
    :mod:`losskit.mining`). Ties go to the lowest index; a NaN distance is the hardest
    candidate (the farthest positive, the closest or semi-hard negative), as ``torch.argmax``
    and ``argmin`` treat NaN. Python's ``max``/``min`` would instead keep or skip a NaN
    depending on where it stands in the list."""
    n = len(labels)
    out: list[Triplet] = []
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [q for q in range(n) if labels[q] != labels[a]]
        if not pos or not neg:
            continue
        nan_pos = [j for j in pos if math.isnan(dist[a][j])]
        nan_neg = [j for j in neg if math.isnan(dist[a][j])]
        if miner == "batch_all":
            out += [(a, p, q) for p in pos for q in neg]
        elif miner == "batch_hard":
            p = nan_pos[0] if nan_pos else max(pos, key=lambda j: (dist[a][j], -j))
            q = nan_neg[0] if nan_neg else min(neg, key=lambda j: (dist[a][j], j))
            out.append((a, p, q))
        else:
            for p in pos:
                farther = [q for q in neg if dist[a][q] > dist[a][p]]
                if nan_neg:
                    q = nan_neg[0]
                elif farther:
                    q = min(farther, key=lambda j: (dist[a][j], j))
                else:
                    q = max(neg, key=lambda j: (dist[a][j], -j))
                out.append((a, p, q))
    return out


def _softplus(z: float) -> float:
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def loop_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: object = "euclidean",
    miner: object = "batch_hard",
    soft_margin: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """The label form by explicit loops over anchors, positives and negatives, in float64."""
    dist = loop_distances(embeddings.detach(), distance)
    if callable(miner):
        a, p, n = miner(torch.tensor(dist, dtype=torch.float64), labels)
        triplets = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    else:
        triplets = loop_triplets(dist, labels.tolist(), str(miner))
    hinge = _softplus if soft_margin else (lambda z: max(z, 0.0))
    losses = [hinge(dist[a][p] - dist[a][n] + margin) for a, p, n in triplets]
    if reduction == "none":
        value: object = losses
    elif reduction == "sum":
        value = math.fsum(losses)
    else:
        # "not <= 0" counts a NaN loss: it is not known to be 0, and the mean is NaN
        counted = [v for v in losses if not v <= 0] if reduction == "mean_positive" else losses
        value = math.fsum(counted) / len(counted) if counted else 0.0
    return torch.tensor(value, dtype=torch.float64).to(embeddings.dtype)


def _label_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    balanced = torch.arange(4, device=device).repeat(4)
    three_classes = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], device=device)
    for miner in MINERS:
        for distance in (*DISTANCES, manhattan_distances):
            name = getattr(distance, "__name__", distance)
            yield SampleInput(
                (make.randn(8, 3), three_classes),
                {"miner": miner, "distance": distance},
                f"{miner} {name}",
            )
        yield SampleInput(
            (make.randn(8, 3), three_classes),
            {"miner": miner, "soft_margin": True, "margin": 0.0},
            f"{miner} soft margin",
        )
        yield SampleInput(
            (make.randn(10, 3), torch.tensor([3, 3, 3, 3, 3, 7, 7, -1, 5, 5], device=device)),
            {"miner": miner, "margin": 1.0},
            f"{miner} unbalanced classes and a singleton",
        )
    yield SampleInput(
        (make.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2], dtype=torch.int32).to(device)),
        {"miner": "semi_hard", "distance": "squared_euclidean", "soft_margin": True},
        "int32 labels",
    )
    yield SampleInput(
        (make.randn(8, 4), balanced[:8]),
        {"miner": batch_hard_triplets},
        "a callable miner",
    )
    for labels, desc in (
        (torch.zeros(6, dtype=torch.long, device=device), "every label equal"),
        (torch.arange(6, device=device), "every label distinct"),
    ):
        yield SampleInput((make.randn(6, 3), labels), {}, f"{desc}: no triplet", reference=False)
    yield SampleInput(
        (make.randn(1, 3), torch.zeros(1, dtype=torch.long, device=device)),
        {"miner": "batch_all"},
        "one row",
        reference=False,
    )
    yield SampleInput(
        (make.randn(0, 3), torch.zeros(0, dtype=torch.long, device=device)),
        {"miner": "semi_hard"},
        "empty batch",
        reference=False,
    )
    spread = make.randn(8, 4, scale=1e4)
    for miner in MINERS:
        yield SampleInput(
            (spread, balanced[:8]),
            {"miner": miner},
            f"{miner} scale 1e4",
            tags=frozenset({"extreme"}),
        )
    duplicated = make.randn(8, 4).repeat(2, 1)
    for miner in MINERS:
        yield SampleInput(
            (duplicated, torch.arange(4, device=device).repeat(4)),
            {"miner": miner},
            f"{miner} every embedding duplicated (zero distances)",
            tags=frozenset({"extreme"}),
        )


def _label_errors() -> Iterator[ErrorInput]:
    loss = "triplet_loss"
    make = TensorMaker(torch.float32, "cpu")
    x, y = make.randn(8, 3), torch.arange(4).repeat(2)
    yield ErrorInput(
        SampleInput((make.randn(8), y)),
        rf"{loss}: embeddings has shape \(8,\); expected \(N, D\)",
    )
    yield ErrorInput(
        SampleInput((x, y[:7])),
        rf"{loss}: labels has shape \(7,\); expected \(8,\), one label per row of embeddings",
    )
    yield ErrorInput(
        SampleInput((x, y.float())),
        rf"{loss}: labels has dtype torch.float32; expected integer class labels",
    )
    yield ErrorInput(
        SampleInput((x.long(), y)),
        rf"{loss}: embeddings has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((x, y.tolist())), rf"{loss}: labels is a list; expected a torch.Tensor"
    )
    yield ErrorInput(
        SampleInput((x, y), {"miner": "hardest"}),
        rf"{loss}: miner is 'hardest'; expected one of 'batch_all', 'batch_hard', 'semi_hard' "
        r"or a callable",
    )
    yield ErrorInput(
        SampleInput((x, y), {"distance": "manhattan"}),
        rf"{loss}: distance is 'manhattan'; expected one of 'euclidean', 'squared_euclidean', "
        r"'cosine' or a callable",
    )
    yield ErrorInput(
        SampleInput((x, y), {"margin": -0.1}), rf"{loss}: margin is -0.1; expected a number >= 0"
    )
    yield ErrorInput(
        SampleInput((x, y), {"soft_margin": "yes"}),
        rf"{loss}: soft_margin is 'yes'; expected True or False",
    )
    yield ErrorInput(
        SampleInput((x, y), {"reduction": "avg"}),
        rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none', 'mean_positive'",
    )
    yield ErrorInput(
        SampleInput((x, y), {"distance": lambda a, b: (a - b).abs()}),
        rf"{loss}: distance returned \(8, 3\); expected a floating \(8, 8\) matrix",
    )
    yield ErrorInput(
        SampleInput((x, y), {"miner": lambda d, labels: (labels, labels)}),
        rf"{loss}: miner returned tuple; expected a tuple \(anchor, positive, negative\)",
    )
    yield ErrorInput(
        SampleInput((x, y), {"miner": lambda d, labels: (y, y + 1, y + 8)}),
        rf"{loss}: miner returned indices in \[8, 11\]; expected indices in \[0, 7\]",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((make.tensor([[0.0, float("nan")], [1.0, 2.0]]), torch.tensor([0, 1]))),
        rf"{loss}: embeddings has 1 non-finite value\(s\); expected finite values",
        checks="full",
    )


_SAMPLES_PER_CLASS = 8


def _label_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(size))
    labels = (order % max(1, size // _SAMPLES_PER_CLASS)).to(device)
    return SampleInput(
        (make.randn(size, 128), labels),
        {"margin": 0.2, "miner": "batch_hard", "distance": "euclidean"},
        f"B={size}, D=128, {_SAMPLES_PER_CLASS} per class, batch_hard euclidean",
        grad_args=(0,),
    )


def pml_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    miner: str = "batch_hard",
    soft_margin: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """pytorch-metric-learning configured as :func:`losskit.functional.triplet_loss`:
    ``BatchHardMiner`` (or no miner, i.e. all triplets, for ``batch_all``) and
    ``TripletMarginLoss`` with the same distance, no normalisation (except cosine), and the
    reducer of ``reduction`` (``MeanReducer``, ``SumReducer``, ``AvgNonZeroReducer``,
    ``DoNothingReducer``). pytorch-metric-learning has no FaceNet semi-hard miner with its
    fallback, so ``semi_hard`` is not covered."""
    from pytorch_metric_learning import distances, losses, miners, reducers

    dist = {
        "euclidean": lambda: distances.LpDistance(normalize_embeddings=False),
        "squared_euclidean": lambda: distances.LpDistance(normalize_embeddings=False, power=2),
        "cosine": distances.CosineSimilarity,
    }[distance]()
    reducer = {
        "mean": reducers.MeanReducer,
        "sum": reducers.SumReducer,
        "mean_positive": reducers.AvgNonZeroReducer,
        "none": reducers.DoNothingReducer,
    }[reduction]()
    criterion = losses.TripletMarginLoss(
        margin=margin, distance=dist, reducer=reducer, smooth_loss=soft_margin
    )
    if miner == "batch_all":
        out = criterion(embeddings, labels)
    elif miner == "batch_hard":
        out = criterion(
            embeddings, labels, miners.BatchHardMiner(distance=dist)(embeddings, labels)
        )
    else:
        raise ValueError(f"pytorch-metric-learning has no equivalent of miner={miner!r}")
    if reduction == "none":
        return out["loss"]["losses"]
    return out


def _label_references() -> dict[str, Callable[..., Tensor]]:
    if importlib.util.find_spec("pytorch_metric_learning") is None:
        return {}
    return {"pytorch-metric-learning BatchHardMiner+TripletMarginLoss": pml_triplet_loss}


CASES: dict[str, LossCases] = {
    "triplet_margin": LossCases(
        reference=torch_triplet_margin,
        sample_inputs=_explicit_samples,
        error_inputs=_explicit_errors,
        bench_inputs=_explicit_bench,
        bench_references={"torch F.triplet_margin_loss": torch_triplet_margin},
    ),
    "triplet": LossCases(
        reference=loop_triplet_loss,
        sample_inputs=_label_samples,
        error_inputs=_label_errors,
        bench_inputs=_label_bench,
        bench_references=_label_references(),
    ),
}
