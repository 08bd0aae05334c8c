"""The contrastive losses across processes on the gloo backend: two and three CPU processes,
each holding part of a batch (of different sizes), against one process on the whole batch.

``gather=True``: every rank gets the loss of the concatenated batch and the gradients of its own
rows (and the whole gradient of a learnable scale or bias, which every rank uses). SigLIP's
``gather="ring"``: every rank gets its share of the loss (the shares sum to it), the gradients of
its own rows, and its share of the scale's and bias's gradients; no rank holds the global batch.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import losskit.functional as LF

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed (gloo)"
)

#: rows per process, unequal (a last, smaller batch), for each world size
SIZES = {2: (5, 7), 3: (4, 6, 3)}
REDUCTIONS = ("mean", "sum", "none")


def _global_batch(world: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(world)
    n = sum(SIZES[world])
    image = torch.randn(n, 4, generator=g, dtype=torch.float64)
    text = torch.randn(n, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (n,), generator=g)
    return image, text, labels


def _leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


def _summed(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().clone()
    dist.all_reduce(t)
    return t


def _check_towers(world: int, rank: int, start: int, stop: int) -> None:
    image, text, _ = _global_batch(world)
    cases = [("clip", True, block) for block in (None, 3)]
    cases += [("siglip", gather, block) for gather in (True, "ring") for block in (None, 2)]
    for name, gather, block in cases:
        fn = LF.clip_loss if name == "clip" else LF.siglip_loss
        for reduction in REDUCTIONS:
            where = f"{name} gather={gather} block={block} {reduction}"
            scalars = {"logit_scale": torch.tensor(3.0, dtype=torch.float64)}
            if name == "siglip":
                scalars["logit_bias"] = torch.tensor(-2.0, dtype=torch.float64)

            whole_image, whole_text, *whole_scalars = _leaves(image, text, *scalars.values())
            expected = fn(
                whole_image,
                whole_text,
                **dict(zip(scalars, whole_scalars, strict=True)),
                reduction=reduction,
            )
            expected.sum().backward()

            local_image, local_text, *local_scalars = _leaves(
                image[start:stop], text[start:stop], *scalars.values()
            )
            out = fn(
                local_image,
                local_text,
                **dict(zip(scalars, local_scalars, strict=True)),
                gather=gather,
                block_size=block,
                reduction=reduction,
            )
            out.sum().backward()
            ring = gather == "ring"
            if ring and reduction == "none":
                torch.testing.assert_close(out, expected[start:stop], msg=where)
            elif ring:
                torch.testing.assert_close(_summed(out), expected, msg=where)
            else:
                torch.testing.assert_close(out, expected, msg=where)
            torch.testing.assert_close(local_image.grad, whole_image.grad[start:stop], msg=where)
            torch.testing.assert_close(local_text.grad, whole_text.grad[start:stop], msg=where)
            for local, whole in zip(local_scalars, whole_scalars, strict=True):
                got = _summed(local.grad) if ring else local.grad
                torch.testing.assert_close(got, whole.grad, msg=where)


def _check_labels(world: int, rank: int, start: int, stop: int) -> None:
    image, _, labels = _global_batch(world)
    for fn in (LF.nt_xent_loss, LF.supcon_loss):
        for block in (None, 4):
            for reduction in REDUCTIONS:
                where = f"{fn.__name__} block={block} {reduction}"
                (whole,) = _leaves(image)
                expected = fn(whole, labels, temperature=0.5, reduction=reduction)
                expected.sum().backward()
                (local,) = _leaves(image[start:stop])
                out = fn(
                    local,
                    labels[start:stop],
                    temperature=0.5,
                    gather=True,
                    block_size=block,
                    reduction=reduction,
                )
                out.sum().backward()
                torch.testing.assert_close(out, expected, msg=where)
                torch.testing.assert_close(local.grad, whole.grad[start:stop], msg=where)


def _worker(rank: int, world: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        start = sum(SIZES[world][:rank])
        stop = start + SIZES[world][rank]
        _check_towers(world, rank, start, stop)
        _check_labels(world, rank, start, stop)
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.parametrize("world", [2, 3])
def test_gloo_processes_equal_one_process_on_the_concatenated_batch(tmp_path, world):
    mp.spawn(_worker, args=(world, str(tmp_path / "rendezvous")), nprocs=world, join=True)
