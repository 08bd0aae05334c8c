r"""Means over the global batch when each process counts a different number of elements.

DistributedDataParallel (and FSDP) *average* the parameter gradients over the processes. If each
process returns the mean of its own elements, ``sum_r / n_r``, the update follows

.. math:: \frac1W \sum_r \frac{1}{n_r}\nabla \textstyle\sum_{i \in r} \ell_i

which is the gradient of the global mean :math:`\sum_r \sum_{i\in r}\ell_i / \sum_r n_r` only when
every :math:`n_r` is the same. With padding or ``ignore_index`` (tokens of different lengths), class
weights, or an uneven last batch, tokens on a process with few of them weigh more than tokens on a
busy one. Gradient accumulation has the same flaw one level down: averaging the means of the
micro-batches is not the mean over the step's tokens.

:func:`global_mean` fixes both: give it this process's *sum* (``reduction="sum"``) and its
*count*, and it returns :math:`\sum_r \text{sum}_r / \sum_r \text{count}_r` (one all-reduce of two
numbers) whose gradient, once DDP has averaged it, is exactly the gradient of the global mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor

from losskit._checks import check_floating, check_same_device, fail, shape_str
from losskit._collective import is_distributed
from losskit._reduce import compute_dtype, safe_divide

__all__ = ["global_count", "global_mean"]

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


def _scalar(loss: str, name: str, value: Tensor) -> Tensor:
    if value.dim() != 0:
        fail(loss, name, f"has shape {shape_str(value.shape)}", "a scalar (0-dim) tensor")
    return value


def _count(loss: str, count: object, like: Tensor, dtype: torch.dtype) -> Tensor:
    if isinstance(count, bool) or not isinstance(count, Tensor | int | float):
        fail(loss, "count", f"is {count!r}", "a number or a scalar tensor")
    if isinstance(count, Tensor):
        _scalar(loss, "count", count)
        check_same_device(loss, "count", count, like, "loss_sum")
        return count.detach().to(dtype)
    return torch.tensor(float(count), dtype=dtype, device=like.device)


def global_count(count: Tensor | int, *, group: ProcessGroup | None = None) -> Tensor:
    """``count`` summed over the processes of ``group`` (one all-reduce), without a gradient.

    ``count`` is a scalar tensor (e.g. ``(target != -100).sum()``) on the device the backend
    uses, or a Python number (then a CPU tensor is reduced: fine for gloo). Outside
    ``torch.distributed`` it is ``count`` itself.

    >>> import torch
    >>> from losskit.distributed import global_count
    >>> global_count(torch.tensor(7))  # not distributed: the local count
    tensor(7)
    """
    if isinstance(count, bool) or not isinstance(count, Tensor | int | float):
        fail("global_count", "count", f"is {count!r}", "a number or a scalar tensor")
    total = count if isinstance(count, Tensor) else torch.tensor(count)
    _scalar("global_count", "count", total)
    total = total.detach().clone()
    if is_distributed(group):
        dist.all_reduce(total, group=group)
    return total


def global_mean(
    loss_sum: Tensor,
    count: Tensor | int | float,
    *,
    group: ProcessGroup | None = None,
    gradients_averaged: bool = True,
) -> Tensor:
    r"""The mean over the global batch, :math:`\sum_r \text{loss\_sum}_r / \sum_r \text{count}_r`,
    from this process's ``loss_sum`` and ``count``, with the gradient DDP needs.

    Args:
        loss_sum: this process's summed loss, a scalar (a losskit loss with
            ``reduction="sum"``).
        count: the denominator of this process's mean: the number of elements that count
            (``(target != ignore_index).sum()``), or the sum of their weights for a weighted mean.
            Under gradient accumulation pass the count of the *whole step* on this process (all
            its micro-batches); the values returned for the micro-batches then add up to the
            step's global mean, and so do their gradients.
        group: the process group (default: the world).
        gradients_averaged: ``True`` (DDP, FSDP) if the gradients are averaged over the
            processes: the local gradient is then scaled by the world size so that the average
            is the global mean's gradient. ``False`` if they are summed.

    The value is the same on every process. A global count of 0 gives 0.0, attached to the
    graph (losskit's rule for a mean over nothing). Outside ``torch.distributed`` this is
    ``loss_sum / count``. Cost: one all-reduce of two numbers.

    >>> import torch, losskit
    >>> from losskit.distributed import global_mean
    >>> logits, target = torch.randn(6, 4), torch.tensor([0, 3, -100, 1, -100, 2])
    >>> loss_sum = losskit.functional.cross_entropy(logits, target, reduction="sum")
    >>> loss = global_mean(loss_sum, (target != -100).sum())
    >>> torch.allclose(loss, losskit.functional.cross_entropy(logits, target))
    True
    """
    name = "global_mean"
    loss_sum = _scalar(name, "loss_sum", check_floating(name, "loss_sum", loss_sum))
    if not isinstance(gradients_averaged, bool):
        fail(name, "gradients_averaged", f"is {gradients_averaged!r}", "True or False")
    dtype = compute_dtype(loss_sum.dtype)
    local_count = _count(name, count, loss_sum, dtype)
    local_sum = loss_sum.to(dtype)
    if not is_distributed(group):
        return safe_divide(local_sum, local_count).to(loss_sum.dtype)
    totals = torch.stack([local_sum.detach(), local_count])
    dist.all_reduce(totals, group=group)
    global_sum, total_count = totals.unbind()
    scaled = local_sum * (dist.get_world_size(group) if gradients_averaged else 1)
    # value: the global sum; gradient: this process's (scaled) sum
    numerator = scaled + (global_sum - scaled).detach()
    return safe_divide(numerator, total_count).to(loss_sum.dtype)
