"""DistributedDataParallel with losskit losses: two gloo CPU processes training a tiny model for a
few SGD steps reach the parameters of one process trained on the whole batch.

* Equal shards and a plain ``reduction="mean"``: DDP's gradient averaging is the global mean.
* Uneven counts (an uneven last batch, padding marked with ``ignore_index``): the per-process
  mean is *not* the global mean, and training drifts from one process's; ``global_mean`` of the
  per-process sums and counts gives one process's parameters again.
* Gradient accumulation over micro-batches of uneven counts (``no_sync`` on all but the last):
  ``global_mean`` with the step's count gives the same.
"""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

import losskit
from losskit.distributed import global_count, global_mean, is_distributed

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed (gloo)"
)

WORLD = 2
STEPS = 3
LR = 0.5
IGNORE = -100


def _data() -> tuple[Tensor, Tensor, Tensor]:
    """12 rows of 4 features, 3 classes; ``padded`` marks 5 targets as ignored, 4 of them in
    the first 5 rows (rank 0's shard of sizes 5 and 7): the two processes count 1 and 6."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    padded = y.clone()
    padded[[0, 1, 2, 4, 9]] = IGNORE
    return x, y, padded


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _train(model: nn.Module, step_fn) -> list[Tensor]:
    """``STEPS`` SGD steps; ``step_fn(model)`` runs the backward passes of one step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        optimizer.zero_grad()
        step_fn(model)
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _one_process(x: Tensor, y: Tensor) -> list[Tensor]:
    criterion = losskit.CrossEntropyLoss(ignore_index=IGNORE)
    return _train(_model(), lambda m: criterion(m(x), y).backward())


def _assert_same(got: list[Tensor], expected: list[Tensor], what: str) -> None:
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, msg=lambda m: f"{what}: {m}")


def _equal_shards_plain_mean(rank: int) -> None:
    x, y, _ = _data()
    rows = slice(6 * rank, 6 * rank + 6)
    criterion = losskit.CrossEntropyLoss()
    ddp = DistributedDataParallel(_model())
    got = _train(ddp, lambda m: criterion(m(x[rows]), y[rows]).backward())
    _assert_same(got, _one_process(x, y), "equal shards, reduction='mean'")


def _uneven_counts(rank: int) -> None:
    x, _, padded = _data()
    rows = slice(0, 5) if rank == 0 else slice(5, 12)
    expected = _one_process(x, padded)

    per_process_mean = losskit.CrossEntropyLoss(ignore_index=IGNORE)
    naive = _train(
        DistributedDataParallel(_model()),
        lambda m: per_process_mean(m(x[rows]), padded[rows]).backward(),
    )
    drift = max((a - b).abs().max().item() for a, b in zip(naive, expected, strict=True))
    assert drift > 1e-2, "the per-process mean should differ from the global mean here"

    criterion_sum = losskit.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    single = losskit.CrossEntropyLoss(ignore_index=IGNORE)

    def step(m: nn.Module) -> None:
        loss = global_mean(criterion_sum(m(x[rows]), padded[rows]), (padded[rows] != IGNORE).sum())
        with torch.no_grad():  # the value is the global mean too, the same on every process
            torch.testing.assert_close(loss, single(m.module(x), padded))
        loss.backward()

    _assert_same(_train(DistributedDataParallel(_model()), step), expected, "global_mean")


def _gradient_accumulation(rank: int) -> None:
    x, _, padded = _data()
    rows = range(0, 5) if rank == 0 else range(5, 12)
    micro = [list(rows)[:2], list(rows)[2:]]  # two micro-batches of uneven counts
    criterion_sum = losskit.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")

    def step(m: DistributedDataParallel) -> None:
        step_count = (padded[list(rows)] != IGNORE).sum()
        for i, batch in enumerate(micro):
            last = i == len(micro) - 1
            # gradients are all-reduced once per step, after its last micro-batch
            context = contextlib.nullcontext() if last else m.no_sync()
            with context:
                loss_sum = criterion_sum(m(x[batch]), padded[batch])
                global_mean(loss_sum, step_count).backward()

    got = _train(DistributedDataParallel(_model()), step)
    _assert_same(got, _one_process(x, padded), "gradient accumulation with global_mean")
    assert int(global_count(torch.tensor(len(micro)))) == WORLD * len(micro)


def _worker(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        assert is_distributed()
        _equal_shards_plain_mean(rank)
        _uneven_counts(rank)
        _gradient_accumulation(rank)
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_ddp_matches_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD, join=True)


def test_global_mean_outside_torch_distributed():
    """Without a process group it is the plain (weighted) mean, 0.0 with a graph when nothing
    counts, and its arguments are checked."""
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 2, IGNORE, 1, IGNORE, 2])
    loss_sum = losskit.functional.cross_entropy(logits, target, reduction="sum")
    expected = losskit.functional.cross_entropy(logits, target)
    torch.testing.assert_close(global_mean(loss_sum, (target != IGNORE).sum()), expected)
    torch.testing.assert_close(global_mean(loss_sum, 4), expected)

    nothing = global_mean(logits.sum() * 0.0, torch.tensor(0))
    nothing.backward()
    assert nothing.item() == 0.0 and torch.isfinite(logits.grad).all()

    half = global_mean(loss_sum.detach().to(torch.bfloat16), 4)
    assert half.dtype == torch.bfloat16
    assert int(global_count(torch.tensor(7))) == 7 and int(global_count(3)) == 3

    with pytest.raises(losskit.LossInputError, match=r"global_mean: loss_sum has shape \(6, 3\)"):
        global_mean(logits, 4)
    with pytest.raises(losskit.LossInputError, match=r"global_mean: count is True"):
        global_mean(loss_sum, True)
    with pytest.raises(losskit.LossInputError, match=r"global_mean: count has shape \(2,\)"):
        global_mean(loss_sum, torch.tensor([1, 2]))
    with pytest.raises(losskit.LossInputError, match=r"global_mean: loss_sum has dtype"):
        global_mean(torch.tensor(3), 4)
    with pytest.raises(losskit.LossInputError, match=r"global_count: count is 'x'"):
        global_count("x")
