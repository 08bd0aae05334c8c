"""Fixtures of the contrastive entries: references, sample, error and benchmark inputs. Loaded
on demand by the tests, the benchmark harness and ``losskit tour``.

The references are the papers' formulas written out in float64, pair by pair where the paper
counts pairs (NT-Xent, SupCon), and the dense formulas of open_clip (``ClipLoss``,
``SigLipLoss``) as their documentation states them; the benchmarks compare against those dense
formulas and against pytorch-metric-learning.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

_D = 3
#: logits of about +-1e4: finite loss and gradients required
_HUGE_SCALE = 1e4


def _t(x: Tensor) -> Tensor:
    """``x`` transposed, as ``x.T`` was for 1-D and 2-D tensors (torch deprecates ``.T`` on
    tensors that are not 2-D, which the fuzz tests feed the references)."""
    return x.mT if x.dim() > 1 else x


def _reduce(losses: Tensor, reduction: str, count: Tensor | float | None = None) -> Tensor:
    """``none``/``sum``, or the mean over ``count`` (default: the number of losses); a mean over
    nothing is 0."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    n = losses.numel() if count is None else float(count)
    return losses.sum() / n if n else losses.sum() * 0.0


def _value(x: Tensor | float) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64).detach().reshape(())


# ------------------------------------------------------------------------------ references


def info_nce_reference(
    query: Tensor,
    positive_key: Tensor,
    negative_keys: Tensor | None = None,
    *,
    temperature: float = 0.1,
    negative_mode: str = "unpaired",
    reduction: str = "mean",
    **_: Any,
) -> Tensor:
    """info-nce-pytorch's ``InfoNCE``: normalise every vector, put the positive logit first and
    take the cross-entropy of class 0 (in-batch: the logits ``q k^T`` and class ``i``)."""
    q = F.normalize(query.double(), dim=-1)
    k = F.normalize(positive_key.double(), dim=-1)
    if negative_keys is None:
        logits = q @ _t(k)
        target = torch.arange(q.shape[0])
    else:
        n = F.normalize(negative_keys.double(), dim=-1)
        positive = (q * k).sum(1, keepdim=True)
        if negative_mode == "unpaired":
            negative = q @ _t(n)
        else:
            negative = (q[:, None, :] @ n.transpose(1, 2)).squeeze(1)
        logits = torch.cat([positive, negative], 1)
        target = torch.zeros(q.shape[0], dtype=torch.long)
    log_p = (logits / temperature).log_softmax(1)
    losses = -log_p[torch.arange(q.shape[0]), target]
    return _reduce(losses, reduction).to(query.dtype)


def _cosines(x: Tensor) -> Tensor:
    u = F.normalize(x.double(), dim=1)
    return u @ _t(u)


def nt_xent_reference(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    **_: Any,
) -> Tensor:
    """SimCLR's NT-Xent with labels, pair by pair, as pytorch-metric-learning's
    ``NTXentLoss`` defines it: for each positive pair (a, p), the negatives of a only."""
    s = _cosines(embeddings) / temperature
    n = s.shape[0]
    y = labels.tolist()
    per_row, pairs = [], 0
    for a in range(n):
        negatives = [s[a, j] for j in range(n) if y[j] != y[a]]
        row = s.new_zeros(())
        for p in range(n):
            if p != a and y[p] == y[a]:
                pairs += 1
                denominator = torch.stack([s[a, p], *negatives]).logsumexp(0)
                row = row + denominator - s[a, p]
        per_row.append(row)
    losses = torch.stack(per_row) if per_row else s.new_zeros(0)
    return _reduce(losses, reduction, pairs).to(embeddings.dtype)


def supcon_reference(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    **_: Any,
) -> Tensor:
    """Khosla et al.'s L_out, anchor by anchor: minus the mean over the positives of the
    log-softmax over every other sample; anchors without a positive have loss 0 and do not count
    in the mean (pytorch-metric-learning's ``SupConLoss`` with ``AvgNonZeroReducer``)."""
    s = _cosines(embeddings) / temperature
    n = s.shape[0]
    y = labels.tolist()
    per_row, anchors = [], 0
    for i in range(n):
        positives = [p for p in range(n) if p != i and y[p] == y[i]]
        if not positives:
            per_row.append(s.new_zeros(()))
            continue
        anchors += 1
        others = torch.stack([s[i, a] for a in range(n) if a != i]).logsumexp(0)
        per_row.append(torch.stack([others - s[i, p] for p in positives]).mean())
    losses = torch.stack(per_row) if per_row else s.new_zeros(0)
    return _reduce(losses, reduction, anchors).to(embeddings.dtype)


def clip_reference(
    image_embeds: Tensor,
    text_embeds: Tensor,
    *,
    logit_scale: Tensor | float = 1 / 0.07,
    reduction: str = "mean",
    **_: Any,
) -> Tensor:
    """open_clip's ``ClipLoss``: ``(CE(s I T^T, arange) + CE(s T I^T, arange)) / 2``, per pair
    for ``"none"``."""
    logits = _value(logit_scale) * image_embeds.double() @ _t(text_embeds.double())
    target = torch.arange(logits.shape[0])
    per_image = F.cross_entropy(logits, target, reduction="none")
    per_text = F.cross_entropy(_t(logits), target, reduction="none")
    return _reduce((per_image + per_text) / 2, reduction).to(image_embeds.dtype)


def siglip_reference(
    image_embeds: Tensor,
    text_embeds: Tensor,
    *,
    logit_scale: Tensor | float = 10.0,
    logit_bias: Tensor | float = -10.0,
    reduction: str = "mean",
    **_: Any,
) -> Tensor:
    """open_clip's ``SigLipLoss``: labels ``2 I - 1``, ``-logsigmoid(labels * (s I T^T + b))``
    summed over the texts; ``"mean"`` divides the sum over all pairs by the batch."""
    logits = _value(logit_scale) * image_embeds.double() @ _t(text_embeds.double())
    logits = logits + _value(logit_bias)
    labels = 2 * torch.eye(logits.shape[0], dtype=torch.float64) - 1
    losses = -F.logsigmoid(labels * logits).sum(1)
    return _reduce(losses, reduction).to(image_embeds.dtype)


# ------------------------------------------------------------------- dense bench references


def dense_clip(
    image_embeds: Tensor, text_embeds: Tensor, *, logit_scale: Tensor | float, **_: Any
) -> Tensor:
    """What open_clip's ``ClipLoss`` computes on one process: the full logits, both ways."""
    logits = logit_scale * image_embeds @ _t(text_embeds)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(_t(logits), target)) / 2


def dense_siglip(
    image_embeds: Tensor,
    text_embeds: Tensor,
    *,
    logit_scale: Tensor | float,
    logit_bias: Tensor | float,
    **_: Any,
) -> Tensor:
    """What open_clip's ``SigLipLoss`` computes on one process: the full logits and labels."""
    logits = logit_scale * image_embeds @ _t(text_embeds) + logit_bias
    n = logits.shape[0]
    labels = 2 * torch.eye(n, dtype=logits.dtype, device=logits.device) - 1
    return -F.logsigmoid(labels * logits).sum() / n


def dense_info_nce(query: Tensor, positive_key: Tensor, *, temperature: float, **_: Any) -> Tensor:
    """info-nce-pytorch's in-batch ``InfoNCE``: normalised logits and a cross-entropy."""
    q, k = F.normalize(query, dim=-1), F.normalize(positive_key, dim=-1)
    logits = q @ _t(k) / temperature
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def dense_nt_xent(embeddings: Tensor, labels: Tensor, *, temperature: float, **_: Any) -> Tensor:
    """SimCLR's NT-Xent as its paper writes it, for the benchmark's two views (rows ``i`` and
    ``i + B/2`` a pair): the cross-entropy of each row against the other ``B - 1`` rows."""
    x = F.normalize(embeddings, dim=1)
    logits = (x @ _t(x) / temperature).fill_diagonal_(float("-inf"))
    n = logits.shape[0]
    return F.cross_entropy(logits, torch.arange(n, device=logits.device).roll(n // 2))


#: pytorch-metric-learning's NTXentLoss holds a (positive pairs x negative pairs) matrix, O(B^3):
#: 17 GiB at B=1024 with two views, so the benchmark runs it no further than this
_PML_NT_XENT_MAX_ROWS = 512


def pml_nt_xent(embeddings: Tensor, labels: Tensor, *, temperature: float, **_: Any) -> Tensor:
    if embeddings.shape[0] > _PML_NT_XENT_MAX_ROWS:
        raise RuntimeError(
            f"not run at B={embeddings.shape[0]}: its (positive pairs x negative pairs) matrix "
            f"needs O(B^3) memory (17 GiB at B=1024); run up to B={_PML_NT_XENT_MAX_ROWS}"
        )
    from pytorch_metric_learning import losses

    return losses.NTXentLoss(temperature=temperature)(embeddings, labels)


def pml_supcon(embeddings: Tensor, labels: Tensor, *, temperature: float, **_: Any) -> Tensor:
    from pytorch_metric_learning import losses

    return losses.SupConLoss(temperature=temperature)(embeddings, labels)


def _pml(name: str, fn: Callable[..., Tensor]) -> dict[str, Callable[..., Tensor]]:
    if importlib.util.find_spec("pytorch_metric_learning") is None:
        return {}
    return {f"pytorch-metric-learning {name}": fn}


# ------------------------------------------------------------------------------ samples


def _unit(make: TensorMaker, n: int, d: int = _D) -> Tensor:
    return F.normalize(make.randn(n, d), dim=1)


def _info_nce_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=18)
    two = (0, 1)
    yield SampleInput((make.randn(5, _D), make.randn(5, _D)), {}, "in-batch negatives", two)
    yield SampleInput(
        (make.randn(5, _D), make.randn(5, _D)), {"temperature": 0.5}, "temperature 0.5", two
    )
    yield SampleInput(
        (make.randn(5, _D), make.randn(5, _D)), {"block_size": 2}, "in-batch, tiled by 2", two
    )
    three = (0, 1, 2)
    q, k, negatives = make.randn(4, _D), make.randn(4, _D), make.randn(6, _D)
    yield SampleInput((q, k, negatives), {}, "6 unpaired negatives", three)
    yield SampleInput(
        (q, k, negatives), {"block_size": 3, "temperature": 0.3}, "unpaired, tiled by 3", three
    )
    yield SampleInput(
        (q, k, make.randn(4, 3, _D)), {"negative_mode": "paired"}, "3 paired negatives", three
    )
    yield SampleInput((make.randn(1, _D), make.randn(1, _D)), {}, "one pair", two)
    yield SampleInput((make.randn(0, _D), make.randn(0, _D)), {}, "no pairs", two)
    yield SampleInput(
        (make.randn(5, _D), make.randn(5, _D)),
        {"temperature": 1 / _HUGE_SCALE, "block_size": 2},
        "temperature 1e-4: logits of +-1e4",
        two,
        tags=frozenset({"extreme"}),
    )


def _label_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=18)

    def labels(*values: int) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    yield SampleInput((make.randn(6, _D), labels(0, 0, 1, 1, 2, 2)), {}, "three pairs")
    yield SampleInput(
        (make.randn(6, _D), labels(0, 0, 0, 1, 2, 2)),
        {"temperature": 0.5},
        "a label with a single member, temperature 0.5",
    )
    yield SampleInput(
        (make.randn(7, _D), labels(3, 1, 3, 1, 3, 0, 1)), {"block_size": 2}, "tiled by 2"
    )
    yield SampleInput(
        (make.randn(6, _D), labels(0, 1, 2, 0, 1, 2)),
        {"block_size": 4, "temperature": 0.2},
        "SimCLR's two views, tiled by 4",
    )
    yield SampleInput((make.randn(4, _D), labels(5, 5, 5, 5)), {}, "one label: no negatives")
    yield SampleInput((make.randn(4, _D), labels(0, 1, 2, 3)), {}, "distinct labels")
    yield SampleInput((make.randn(1, _D), labels(0)), {}, "one sample")
    yield SampleInput((make.randn(0, _D), labels()), {}, "no samples")
    yield SampleInput(
        (make.randn(6, _D), labels(0, 0, 1, 1, 2, 2)),
        {"temperature": 1 / _HUGE_SCALE, "block_size": 4},
        "temperature 1e-4: logits of +-1e4",
        tags=frozenset({"extreme"}),
    )


def _tower_samples(
    extra: dict[str, Any],
) -> Callable[[torch.dtype, torch.device], Iterator[SampleInput]]:
    """Samples of a two-tower loss (CLIP, SigLIP); ``extra``: the options of the second and the
    tiled samples (SigLIP's bias)."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device, seed=18)
        two = (0, 1)

        def towers(n: int) -> tuple[Tensor, Tensor]:
            return _unit(make, n), _unit(make, n)

        yield SampleInput(towers(5), {}, "five pairs, default options", two)
        yield SampleInput(towers(5), {"logit_scale": 2.0, **extra}, "logit_scale 2", two)
        yield SampleInput(
            towers(5), {"logit_scale": 3.0, "block_size": 2, **extra}, "tiled by 2", two
        )
        yield SampleInput(
            towers(4),
            {
                "logit_scale": make.tensor(2.5),
                **{name: make.tensor(value) for name, value in extra.items()},
                "block_size": 3,
            },
            "logit_scale (and bias) 0-dim tensors, tiled by 3",
            two,
        )
        yield SampleInput(
            (make.randn(4, _D), make.randn(4, _D)),
            {"logit_scale": 1.5, **extra},
            "embeddings not normalised",
            two,
        )
        yield SampleInput(towers(1), {}, "one pair", two)
        yield SampleInput(towers(0), {}, "no pairs", two)
        yield SampleInput(
            towers(5),
            {"logit_scale": _HUGE_SCALE, "block_size": 2},
            "logit_scale 1e4: logits of +-1e4",
            two,
            tags=frozenset({"extreme"}),
        )

    return samples


# ------------------------------------------------------------------------------ errors


def _tower_errors(loss: str, first: str, second: str) -> Callable[[], Iterator[ErrorInput]]:
    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x, y = make.randn(4, _D), make.randn(4, _D)
        yield ErrorInput(
            SampleInput((make.randn(4), y)),
            rf"{loss}: {first} has shape \(4,\); expected \(N, D\): one embedding per row",
        )
        yield ErrorInput(
            SampleInput((x, make.randn(5, _D))),
            rf"{loss}: {second} has shape \(5, 3\); expected the shape of {first}, \(4, 3\)",
        )
        yield ErrorInput(
            SampleInput((x, y.double())),
            rf"{loss}: {second} has dtype torch.float64; expected the dtype of {first}",
        )
        yield ErrorInput(
            SampleInput((x, torch.ones(4, _D, dtype=torch.long))),
            rf"{loss}: {second} has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, y), {"reduction": "batchmean"}),
            rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((x, y), {"block_size": 0}),
            rf"{loss}: block_size is 0; expected an int >= 1 or None",
        )
        yield ErrorInput(
            SampleInput((x, y), {"block_size": 2.0}),
            rf"{loss}: block_size is 2.0; expected an int >= 1 or None",
        )
        yield ErrorInput(
            SampleInput((make.tensor([[float("nan")] * _D] * 4), y)),
            rf"{loss}: {first} has 12 non-finite value\(s\); expected finite values",
            checks="full",
        )
        if loss == "info_nce_loss":
            yield from _info_nce_errors(x, y)
        else:
            yield from _scale_errors(loss, x, y)

    return errors


def _scale_errors(loss: str, x: Tensor, y: Tensor) -> Iterator[ErrorInput]:
    yield ErrorInput(
        SampleInput((x, y), {"logit_scale": 0.0}),
        rf"{loss}: logit_scale is 0.0; expected a number > 0",
    )
    yield ErrorInput(
        SampleInput((x, y), {"logit_scale": torch.ones(2)}),
        rf"{loss}: logit_scale is a tensor of shape \(2,\) and dtype torch.float32; expected a "
        "number or a one-element floating tensor",
    )
    yield ErrorInput(  # a CPU tensor's value costs no synchronisation to read: checked
        SampleInput((x, y), {"logit_scale": torch.tensor(-1.0)}),
        rf"{loss}: logit_scale is -1.0; expected a number > 0",
    )
    gathers = "True, False or 'ring'" if loss == "siglip_loss" else "True or False"
    yield ErrorInput(
        SampleInput((x, y), {"gather": "all"}),
        rf"{loss}: gather is 'all'; expected {gathers}",
    )
    if loss == "siglip_loss":
        yield ErrorInput(
            SampleInput((x, y), {"logit_bias": float("inf")}),
            rf"{loss}: logit_bias is inf; expected a finite number",
        )


def _info_nce_errors(q: Tensor, k: Tensor) -> Iterator[ErrorInput]:
    loss = "info_nce_loss"
    make = TensorMaker(torch.float32, "cpu")
    yield ErrorInput(
        SampleInput((q, k), {"temperature": 0.0}),
        rf"{loss}: temperature is 0.0; expected a number > 0",
    )
    yield ErrorInput(
        SampleInput((q, k), {"negative_mode": "shared"}),
        rf"{loss}: negative_mode is 'shared'; expected 'unpaired' or 'paired'",
    )
    yield ErrorInput(
        SampleInput((q, k, make.randn(4, 2, _D))),
        rf"{loss}: negative_keys has shape \(4, 2, 3\); expected \(M, 3\) for "
        r"negative_mode='unpaired'",
    )
    yield ErrorInput(
        SampleInput((q, k, make.randn(5, 2, _D)), {"negative_mode": "paired"}),
        rf"{loss}: negative_keys has shape \(5, 2, 3\); expected \(4, M, 3\) for "
        r"negative_mode='paired'",
    )
    yield ErrorInput(
        SampleInput((q, k, make.randn(6, _D).double())),
        rf"{loss}: negative_keys has dtype torch.float64; expected the dtype of query",
    )


def _label_errors(loss: str) -> Callable[[], Iterator[ErrorInput]]:
    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x, labels = make.randn(4, _D), torch.tensor([0, 0, 1, 1])
        yield ErrorInput(
            SampleInput((make.randn(4), labels)),
            rf"{loss}: embeddings has shape \(4,\); expected \(N, D\): one embedding per row",
        )
        yield ErrorInput(
            SampleInput((x, labels.float())),
            rf"{loss}: labels has dtype torch.float32; expected integer class labels",
        )
        yield ErrorInput(
            SampleInput((x, labels[:3])),
            rf"{loss}: labels has shape \(3,\); expected \(4,\), one label per row of embeddings",
        )
        yield ErrorInput(
            SampleInput((x, labels), {"temperature": -0.1}),
            rf"{loss}: temperature is -0.1; expected a number > 0",
        )
        yield ErrorInput(
            SampleInput((x, labels), {"reduction": "mean_positive"}),
            rf"{loss}: reduction is 'mean_positive'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((x, labels), {"gather": 1}),
            rf"{loss}: gather is 1; expected True or False",
        )
        yield ErrorInput(
            SampleInput((x, labels), {"block_size": -2}),
            rf"{loss}: block_size is -2; expected an int >= 1 or None",
        )
        yield ErrorInput(
            SampleInput((make.tensor([[float("inf")] * _D] * 4), labels)),
            rf"{loss}: embeddings has 12 non-finite value\(s\)",
            checks="full",
        )

    return errors


# ------------------------------------------------------------------------------ benchmarks

_BENCH_D = 256


def _tower_bench(options: dict[str, Any]) -> Callable[[int, torch.dtype, torch.device], Any]:
    def bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
        make = TensorMaker(dtype, device, seed=size)
        x = F.normalize(make.randn(size, _BENCH_D), dim=1)
        y = F.normalize(make.randn(size, _BENCH_D), dim=1)
        return SampleInput((x, y), dict(options), f"B={size}, D={_BENCH_D}", (0, 1))

    return bench


def _info_nce_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    x, y = make.randn(size, _BENCH_D), make.randn(size, _BENCH_D)
    return SampleInput((x, y), {"temperature": 0.1}, f"B={size}, D={_BENCH_D}", (0, 1))


def _label_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """SimCLR's batches: two views of ``size / 2`` images."""
    make = TensorMaker(dtype, device, seed=size)
    labels = torch.arange(max(size // 2, 1), device=device).repeat(2)[:size]
    return SampleInput(
        (make.randn(size, _BENCH_D), labels),
        {"temperature": 0.1},
        f"B={size}, D={_BENCH_D}, two views per label",
    )


CASES: dict[str, LossCases] = {
    "info_nce": LossCases(
        reference=info_nce_reference,
        sample_inputs=_info_nce_samples,
        error_inputs=_tower_errors("info_nce_loss", "query", "positive_key"),
        bench_inputs=_info_nce_bench,
        bench_references={"dense formula (info-nce-pytorch InfoNCE)": dense_info_nce},
    ),
    "nt_xent": LossCases(
        reference=nt_xent_reference,
        sample_inputs=_label_samples,
        error_inputs=_label_errors("nt_xent_loss"),
        bench_inputs=_label_bench,
        bench_references={
            "dense formula (SimCLR, two views)": dense_nt_xent,
            **_pml("NTXentLoss", pml_nt_xent),
        },
    ),
    "supcon": LossCases(
        reference=supcon_reference,
        sample_inputs=_label_samples,
        error_inputs=_label_errors("supcon_loss"),
        bench_inputs=_label_bench,
        bench_references=_pml("SupConLoss", pml_supcon),
    ),
    "clip": LossCases(
        reference=clip_reference,
        sample_inputs=_tower_samples({}),
        error_inputs=_tower_errors("clip_loss", "image_embeds", "text_embeds"),
        bench_inputs=_tower_bench({"logit_scale": 1 / 0.07}),
        bench_references={"dense formula (open_clip ClipLoss)": dense_clip},
    ),
    "siglip": LossCases(
        reference=siglip_reference,
        sample_inputs=_tower_samples({"logit_bias": -1.0}),
        error_inputs=_tower_errors("siglip_loss", "image_embeds", "text_embeds"),
        bench_inputs=_tower_bench({"logit_scale": 10.0, "logit_bias": -10.0}),
        bench_references={"dense formula (open_clip SigLipLoss)": dense_siglip},
    ),
}
