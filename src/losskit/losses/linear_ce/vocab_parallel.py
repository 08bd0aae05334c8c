"""Vocab-parallel cross-entropy for tensor parallelism (Megatron-style).

Each process of ``group`` holds the same tokens and a slice of the vocabulary: the logits
``(N, V_r)`` of its classes, or the rows ``(V_r, d)`` of the LM head that produce them. The
softmax normaliser is combined across processes without gathering any logits: all-reduce the
row maxima, then the sums of exponentials (as Megatron-LM does), then the target logit (only the
process that owns a target's class contributes it). Every process gets the same loss, and the
gradient of its own logits (or weight rows).

Label smoothing spreads its mass over the **global** vocabulary, ``eps / V`` with ``V`` the sum
of the slices: the uniform term is an all-reduced sum of logits, not a per-slice mean (Megatron's
local-vocabulary version was wrong, NVIDIA/Megatron-LM #737, #7464).

Slices may differ in size (a vocabulary that does not divide by the world size): the sizes are
exchanged once per call and slice ``r`` starts after those of ranks ``0 .. r-1``. Outside
``torch.distributed`` (not initialised, or one process) both functions are the single-process
losses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor

from losskit._autograd import DoubleBackwardError, LossFunction, differentiable_backward
from losskit._checks import (
    check_class_indices,
    check_finite,
    check_floating,
    check_tensor,
    fail,
    shape_str,
)
from losskit._reduce import Reduction, compute_dtype, safe_divide
from losskit.losses.linear_ce.functional import (
    VocabShard,
    apply_linear_cross_entropy,
    check_linear_inputs,
    check_options,
)
from losskit.losses.linear_ce.options import (
    CHUNK_SIZE,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    SOFTCAP,
    Z_LOSS,
)

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]


def _shard(group: ProcessGroup | None, local_size: int, device: torch.device) -> VocabShard | None:
    """This process's slice of the vocabulary, or ``None`` outside ``torch.distributed``. One
    small all-gather (and a host read of its result)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return None
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    mine = torch.tensor([local_size], dtype=torch.long, device=device)
    parts = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine, group=group)
    sizes = [int(p) for p in parts]
    return VocabShard(group, sum(sizes[:rank]), sum(sizes))


def _second_order(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    """The loss of one process holding the whole vocabulary, as differentiable operations, for
    a graph of the gradient (``create_graph=True``, torch.func transforms). Across processes
    no rank holds the loss to rebuild: refused there."""
    if ctx.shard is not None:
        raise DoubleBackwardError(
            "vocab_parallel_cross_entropy: double backward (create_graph=True) is not "
            "supported across processes: each rank holds a slice of the vocabulary, so no rank "
            "can rebuild the loss. Use the dense formula where second derivatives are needed."
        )
    logits, target = saved[0], saved[1]
    x = logits.to(compute_dtype(logits.dtype))
    counted = target != ctx.ignore_index
    target_logit = x.gather(1, torch.where(counted, target, 0)[:, None]).squeeze(1)
    logit_sum = x.sum(1) if ctx.options[0] > 0 else None  # label smoothing's term
    out = _reduced_loss(x.logsumexp(1), target_logit, logit_sum, counted, *ctx.options)
    return out.to(logits.dtype)


def _reduced_loss(
    lse: Tensor,
    target_logit: Tensor,
    logit_sum: Tensor | None,
    counted: Tensor,
    eps: float,
    zl: float,
    classes: int,
    reduction: str,
) -> Tensor:
    """The loss from each row's log-sum-exp, target logit and (for label smoothing) sum of
    logits, over the whole vocabulary: shared by the forward and its eager formula."""
    loss = lse - target_logit
    if eps > 0:
        assert logit_sum is not None
        loss = (1 - eps) * loss + eps * (lse - logit_sum / classes)
    if zl > 0:
        loss = loss + zl * lse.square()
    loss = torch.where(counted, loss, 0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return safe_divide(loss.sum(), counted.sum().to(loss.dtype))


class _VocabParallelCrossEntropy(LossFunction):
    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        target: Tensor,
        shard: VocabShard | None,
        ignore_index: int,
        eps: float,
        zl: float,
        reduction: str,
    ) -> Tensor:
        x = logits.to(compute_dtype(logits.dtype))
        vocab = x.shape[1]
        start, classes = (0, vocab) if shard is None else (shard.start, shard.total)
        counted = target != ignore_index
        shifted = target - start
        local = counted & (shifted >= 0) & (shifted < vocab)
        column = torch.where(local, shifted, 0)

        top = x.amax(1)
        if shard is not None:
            shard.all_reduce(top, "MAX")
        exps = (x - top[:, None]).exp_()
        sums = [exps.sum(1), torch.where(local, x.gather(1, column[:, None]).squeeze(1), 0)]
        del exps
        if eps > 0:
            sums.append(x.sum(1))
        stacked = torch.stack(sums)
        if shard is not None:
            shard.all_reduce(stacked, "SUM")
        lse = top + stacked[0].log()
        ctx.options = (eps, zl, classes, reduction)
        out = _reduced_loss(lse, stacked[1], stacked[2] if eps > 0 else None, counted, *ctx.options)
        # the forward's tensor arguments first, in order: the eager formula reads them
        ctx.save_for_backward(logits, target, lse, column, local, counted)
        ctx.shard, ctx.ignore_index = shard, ignore_index
        return out.to(logits.dtype)

    @staticmethod
    @differentiable_backward(_second_order)
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        logits, _, lse, column, local, counted = ctx.saved_tensors
        eps, zl, classes, reduction = ctx.options
        ct = lse.dtype
        g = grad_output.to(ct)
        if reduction == "mean":
            g = safe_divide(g, counted.sum().to(ct))
        coef = torch.where(counted, g.expand(counted.shape), 0)
        factor = coef * (1 + 2 * zl * lse) if zl > 0 else coef
        # d loss_i / d z_ij = s_i p_ij - (1 - eps) [j = y_i] - eps / V, times the row's factor
        grad = logits.to(ct).sub(lse[:, None]).exp_().mul_(factor[:, None])
        grad.scatter_add_(1, column[:, None], ((eps - 1) * coef * local)[:, None])
        if eps > 0:
            grad.sub_((eps / classes) * coef[:, None])
        return grad.to(logits.dtype), None, None, None, None, None, None


def vocab_parallel_cross_entropy(
    logits_shard: Tensor,
    target: Tensor,
    *,
    group: ProcessGroup | None = None,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    z_loss: float = Z_LOSS.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy of logits whose classes are split over the processes of ``group``.

    .. math:: \ell_i = (1-\varepsilon)(\operatorname{lse}_i - z_{i,y_i})
              + \varepsilon(\operatorname{lse}_i - \tfrac1V\textstyle\sum_j z_{ij})
              + \lambda \operatorname{lse}_i^2,\quad
              \operatorname{lse}_i = \log\sum_r\sum_{j\in r} e^{z_{ij}}

    ``logits_shard`` ``(*, V_r)``: this process's classes (slice ``r`` of the vocabulary, after
    those of ranks ``0 .. r-1``); ``target`` ``(*)``: global class indices, identical on every
    process. Returns the same value on every process; the gradient flows to this process's
    logits only. Options and the ``"mean"`` rule are those of
    :func:`losskit.functional.cross_entropy` (a mean over no counted target is 0), plus
    ``z_loss`` as in :func:`losskit.functional.linear_cross_entropy`. Three all-reduces of
    ``N`` numbers (max, then sums) per call, and one all-gather of the slice sizes. Across
    processes double backward (``create_graph=True``) raises ``DoubleBackwardError`` (a
    ``RuntimeError``); in one process (no group) it is exact.

    >>> import torch
    >>> from losskit.distributed import vocab_parallel_cross_entropy
    >>> logits, y = torch.randn(4, 10), torch.tensor([1, 9, 0, 3])
    >>> loss = vocab_parallel_cross_entropy(logits, y)  # one process: the plain loss
    >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, y))
    True
    """
    loss = "vocab_parallel_cross_entropy"
    check_floating(loss, "logits_shard", logits_shard)
    check_tensor(loss, "target", target)
    if logits_shard.dim() == 0 or logits_shard.shape[-1] == 0:
        fail(
            loss, "logits_shard", f"has shape {shape_str(logits_shard.shape)}", "(*, V_r), V_r >= 1"
        )
    options = check_options(
        loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=None,
        reduction=reduction,
        chunk_size=None,
    )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail(loss, "target", f"has dtype {target.dtype}", "integer class indices")
    if target.shape != logits_shard.shape[:-1]:
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)}",
            f"{shape_str(logits_shard.shape[:-1])}, one class index per row of logits_shard "
            f"{shape_str(logits_shard.shape)}",
        )
    check_finite(loss, "logits_shard", logits_shard)
    ignore, eps, zl, _, reduction, _ = options
    vocab = logits_shard.shape[-1]
    shard = _shard(group, vocab, logits_shard.device)
    check_class_indices(loss, target, vocab if shard is None else shard.total, ignore)
    out = _VocabParallelCrossEntropy.apply(
        logits_shard.reshape(-1, vocab),
        target.reshape(-1).long(),
        shard,
        ignore,
        eps,
        zl,
        reduction,
    )
    return out.reshape(target.shape) if reduction == "none" else out


def vocab_parallel_linear_cross_entropy(
    input: Tensor,
    weight_shard: Tensor,
    target: Tensor,
    *,
    bias_shard: Tensor | None = None,
    group: ProcessGroup | None = None,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    z_loss: float = Z_LOSS.default,
    softcap: float | None = SOFTCAP.default,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    """:func:`losskit.functional.linear_cross_entropy` with the LM head split by vocabulary rows
    over the processes of ``group``: chunked, no logits held beyond one chunk of this
    process's classes, and the softmax combined across processes chunk by chunk.

    ``input`` ``(*, d)`` and ``target`` ``(*)`` are identical on every process (tensor
    parallelism); ``weight_shard`` ``(V_r, d)`` and ``bias_shard`` ``(V_r,)`` are this
    process's rows of the head. The loss is the same on every process; ``weight_shard`` and
    ``bias_shard`` get their own gradient, and ``input`` the full gradient (this process's share
    all-reduced over the group, as a column-parallel linear layer's backward does). Each chunk
    costs three all-reduces of ``chunk_size`` numbers. Across processes double backward
    (``create_graph=True``) raises ``DoubleBackwardError`` (a ``RuntimeError``): no process holds
    the whole vocabulary to rebuild the loss. In one process (no group) this is the
    single-process loss, second derivatives included.

    >>> import torch
    >>> from losskit.distributed import vocab_parallel_linear_cross_entropy
    >>> h, W, y = torch.randn(6, 8), torch.randn(20, 8), torch.randint(0, 20, (6,))
    >>> loss = vocab_parallel_linear_cross_entropy(h, W, y)  # one process: the plain loss
    >>> torch.allclose(loss, torch.nn.functional.cross_entropy(h @ W.T, y))
    True
    """
    loss = "vocab_parallel_linear_cross_entropy"
    check_linear_inputs(loss, input, weight_shard, target, bias_shard)
    options = check_options(
        loss,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    shard = _shard(group, weight_shard.shape[0], input.device)
    total = weight_shard.shape[0] if shard is None else shard.total
    check_class_indices(loss, target, total, options[0])
    return apply_linear_cross_entropy(input, weight_shard, target, bias_shard, options, shard=shard)
