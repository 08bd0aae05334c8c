"""SigLIP across processes without the global batch: the ring exchange of the SigLIP paper.

Each rank holds ``n_r`` (image, text) pairs. It computes its images against its own texts (the
positives are there), then passes its current block of texts to the next rank and receives the
previous rank's, ``world - 1`` times, so every image meets every text of the global batch while
a rank holds its own pairs and one block of another rank's texts. The backward runs the same
ring: each text block travels with the sum of its gradients so far, and one last pass hands every
sum back to the rank that owns the texts. Local batches may differ in size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autograd import LossFunction, refuse_double_backward
from losskit._checks import fail
from losskit.losses.contrastive.tiled import (
    Grads,
    Pairwise,
    Sweep,
    rows_per_block,
    scalar_tensor,
    sweep_backward,
    sweep_forward,
)

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["siglip_ring"]

_OWN = Pairwise("softplus", positive_diagonal=True)
_OTHERS = Pairwise("softplus")


def _shapes(x: Tensor, group: ProcessGroup | None) -> list[int]:
    """Every rank's number of pairs; the embedding widths must agree."""
    world = dist.get_world_size(group)
    local = torch.tensor([x.shape[0], x.shape[1]], dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(shapes, local, group=group)
    widths = {int(s[1]) for s in shapes}
    if len(widths) > 1:
        fail(
            "siglip_loss",
            "image_embeds",
            f"have {sorted(widths)} features on different ranks",
            "the same embedding width on every rank",
        )
    return [int(s[0]) for s in shapes]


def _peers(group: ProcessGroup | None) -> tuple[int, int, int]:
    """This rank's position in ``group`` and the global ranks of its right and left peers."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)

    def global_rank(r: int) -> int:
        return r if group is None else dist.get_global_rank(group, r)

    return rank, global_rank((rank + 1) % world), global_rank((rank - 1) % world)


def _exchange(send: Tensor, rows: int, right: int, left: int, group: ProcessGroup | None) -> Tensor:
    """Send ``send`` to the right peer and receive ``rows`` rows from the left one."""
    received = send.new_empty((rows, *send.shape[1:]))
    ops = [
        dist.P2POp(dist.isend, send.contiguous(), right, group),
        dist.P2POp(dist.irecv, received, left, group),
    ]
    for work in dist.batch_isend_irecv(ops):
        work.wait()
    return received


class _Ring(LossFunction):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        y: Tensor,
        scale: Tensor,
        bias: Tensor,
        group: ProcessGroup | None,
        sizes: list[int],
        block: int | None,
    ) -> Tensor:
        rank, right, left = _peers(group)
        world = len(sizes)
        n = x.shape[0]
        rows = sweep_forward(
            _OWN, x, y, scale, bias, None, rows_per_block(n, n, block, x.device)
        ).rows
        current = y
        for step in range(1, world):
            size = sizes[(rank - step) % world]
            current = _exchange(current, size, right, left, group)
            block_rows = rows_per_block(n, size, block, x.device)
            rows += sweep_forward(_OTHERS, x, current, scale, bias, None, block_rows).rows
        ctx.save_for_backward(x, y, scale, bias)
        ctx.group, ctx.sizes, ctx.block = group, sizes, block  # type: ignore[attr-defined]
        return rows

    @staticmethod
    @refuse_double_backward("siglip_loss")
    def backward(ctx: FunctionCtx, grad_rows: Tensor) -> tuple[Tensor | None, ...]:
        x, y, scale, bias = ctx.saved_tensors
        group, sizes, block = ctx.group, ctx.sizes, ctx.block  # type: ignore[attr-defined]
        need_x, need_y, need_scale, need_bias = ctx.needs_input_grad[:4]
        rank, right, left = _peers(group)
        world, (n, d) = len(sizes), x.shape
        # every rank takes part in every exchange, whatever its own inputs need
        needs = (need_x or need_scale, True, need_scale, need_bias)
        # the softplus sweeps need no statistics of the forward
        stats = Sweep(grad_rows, grad_rows.new_zeros(0), None, grad_rows.new_zeros(0))

        def sweep(spec: Pairwise, texts: Tensor) -> Grads:
            block_rows = rows_per_block(n, texts.shape[0], block, x.device)
            return sweep_backward(
                spec, x, texts, scale, bias, None, block_rows, stats, grad_rows, None, needs
            )

        first = sweep(_OWN, y)
        dx, carried, dscale, dbias = first.x_unscaled, first.y, first.scale, first.bias
        current = y
        for step in range(1, world):
            size = sizes[(rank - step) % world]
            packed = _exchange(torch.cat([current, carried], 1), size, right, left, group)
            current, carried = packed[:, :d], packed[:, d:].clone()
            more = sweep(_OTHERS, current)
            assert more.y is not None
            carried += more.y
            dx = None if dx is None or more.x_unscaled is None else dx + more.x_unscaled
            dscale = None if dscale is None or more.scale is None else dscale + more.scale
            dbias = None if dbias is None or more.bias is None else dbias + more.bias
        if world > 1:  # the block this rank carries belongs to its right peer
            carried = _exchange(carried, n, right, left, group)
        return (
            dx * scale if need_x and dx is not None else None,
            carried if need_y else None,
            dscale.reshape(scale.shape) if need_scale and dscale is not None else None,
            dbias.reshape(bias.shape) if need_bias and dbias is not None else None,
            None,
            None,
            None,
        )


def siglip_ring(
    x: Tensor,
    y: Tensor,
    scale: Tensor | float,
    bias: Tensor | float,
    block: int | None,
    group: ProcessGroup | None = None,
) -> tuple[Tensor, int]:
    """Each local image's SigLIP loss against every text of the global batch (its own text the
    positive), and the global batch size. Every rank of ``group`` must call it."""
    sizes = _shapes(x, group)
    rows = _Ring.apply(x, y, scalar_tensor(scale, x), scalar_tensor(bias, x), group, sizes, block)
    return rows, sum(sizes)
