"""Cross-process mining on the gloo backend: two CPU processes, each holding part of a batch
(of different sizes), give the loss and the gradients of one process on the whole batch."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import losskit
from losskit.distributed import gather, gather_with_grad, is_distributed

WORLD = 2
#: rows per process: unequal, as with a last, smaller batch
SIZES = (5, 7)

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed (gloo)"
)


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SIZES), 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0])
    return x, labels


def _check_gather(rank: int, start: int, stop: int) -> None:
    x, labels = _global_batch()
    local = x[start:stop].clone().requires_grad_()
    gathered = gather_with_grad(local)
    torch.testing.assert_close(gathered, x)
    weight = torch.arange(x.numel(), dtype=x.dtype).reshape(x.shape)
    (gathered * weight).sum().backward()
    torch.testing.assert_close(local.grad, weight[start:stop])
    assert torch.equal(gather(labels[start:stop]), labels)
    flags = labels == 0
    assert torch.equal(gather(flags[start:stop]), flags)


def _check_triplet_loss(rank: int, start: int, stop: int) -> None:
    x, labels = _global_batch()
    for miner in ("batch_hard", "batch_all", "semi_hard"):
        for reduction in ("mean", "sum", "none", "mean_positive"):
            options = {"margin": 0.5, "miner": miner, "reduction": reduction}
            whole = x.clone().requires_grad_()
            single = losskit.TripletLoss(**options)
            expected = single(whole, labels)
            expected.sum().backward()

            local = x[start:stop].clone().requires_grad_()
            criterion = losskit.TripletLoss(**options, gather=True)
            out = criterion(local, labels[start:stop])
            out.sum().backward()
            torch.testing.assert_close(out, expected, msg=f"{miner} {reduction}")
            torch.testing.assert_close(
                local.grad, whole.grad[start:stop], msg=f"{miner} {reduction}"
            )
            torch.testing.assert_close(
                criterion.last_stats.num_triplets, single.last_stats.num_triplets
            )


def _worker(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        assert is_distributed()
        start = sum(SIZES[:rank])
        stop = start + SIZES[rank]
        _check_gather(rank, start, stop)
        _check_triplet_loss(rank, start, stop)
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD, join=True)


def test_outside_torch_distributed_gathers_are_the_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert not is_distributed()
    assert gather_with_grad(x) is x and gather(x) is x
    with pytest.raises(losskit.LossInputError, match=r"gather_with_grad: x is a scalar"):
        gather_with_grad(torch.tensor(1.0))
