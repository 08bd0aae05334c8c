"""Vocab-parallel distillation for tensor parallelism (Megatron-style).

Each process of ``group`` holds the same tokens and a slice of the vocabulary: the rows of the
student's and the teacher's LM heads that produce its classes (the same slice for both), or
those classes' logits. The softmax normalisers of both heads (and of the student's logits at
temperature 1, for ``hard_weight`` and ``z_loss``) are combined across processes without
gathering any logits: per chunk of tokens, one all-reduce of the row maxima and one of the sums
of exponentials, as in vocab-parallel cross-entropy, then one all-reduce of the divergence's
per-row sums (and the target logit, which only the owning process contributes). Every process
gets the same loss and the gradient of its own slice; the linear variant also all-reduces the
student's hidden states' gradient, as a column-parallel layer's backward does.

Slices may differ in size (the sizes are exchanged once per call; slice ``r`` starts after
those of ranks ``0 .. r-1``). Outside ``torch.distributed`` (not initialised, or one process)
both functions are the single-process losses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from torch import Tensor

from losskit._checks import check_class_indices
from losskit._reduce import Reduction
from losskit.losses.distillation.functional import (
    Divergence,
    apply_distillation,
    apply_linear_distillation,
    check_linear_inputs,
    check_logits_inputs,
    check_options,
)
from losskit.losses.distillation.options import (
    BETA,
    CHUNK_SIZE,
    DIVERGENCE,
    HARD_WEIGHT,
    IGNORE_INDEX,
    SOFTCAP,
    TEMPERATURE,
    Z_LOSS,
)
from losskit.losses.linear_ce.vocab_parallel import _shard

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["vocab_parallel_distillation_loss", "vocab_parallel_linear_distillation_loss"]


def vocab_parallel_linear_distillation_loss(
    student_hidden: Tensor,
    student_weight_shard: Tensor,
    teacher_hidden: Tensor,
    teacher_weight_shard: Tensor,
    target: Tensor | None = None,
    *,
    group: ProcessGroup | None = None,
    divergence: Divergence = DIVERGENCE.default,
    beta: float = BETA.default,
    temperature: float = TEMPERATURE.default,
    hard_weight: float = HARD_WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    z_loss: float = Z_LOSS.default,
    softcap: float | None = SOFTCAP.default,
    student_bias_shard: Tensor | None = None,
    teacher_bias_shard: Tensor | None = None,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r""":func:`losskit.functional.linear_distillation_loss` with both LM heads split by
    vocabulary rows over the processes of ``group``: chunked, no logits held beyond one chunk
    of this process's classes, the softmax statistics combined across processes chunk by
    chunk.

    .. math:: \ell_i = T^2 D(p_i, q_i) + w_h\,\mathrm{CE}(s_i, y_i) + \lambda\,\mathrm{lse}(s_i)^2,
              \quad \mathrm{lse}(x_i) = \log\sum_r\sum_{j\in r} e^{x_{ij}}

    ``student_hidden`` ``(*, d)``, ``teacher_hidden`` ``(*, d_t)`` and ``target`` ``(*)``
    (global class ids) are identical on every process; ``student_weight_shard`` ``(V_r, d)``,
    ``teacher_weight_shard`` ``(V_r, d_t)`` and the biases ``(V_r,)`` are this process's rows
    of the two heads (the same classes for both). The loss is the same on every process; the
    student's weight and bias shards get their own gradient and ``student_hidden`` the full
    one (all-reduced); the teacher gets none. Each chunk costs three all-reduces of a few
    numbers per row. Double backward raises ``DoubleBackwardError``.

    >>> import torch
    >>> import losskit.functional as LF
    >>> from losskit.distributed import vocab_parallel_linear_distillation_loss
    >>> h_s, W_s = torch.randn(6, 8), torch.randn(20, 8)      # student head
    >>> h_t, W_t = torch.randn(6, 4), torch.randn(20, 4)      # teacher head
    >>> loss = vocab_parallel_linear_distillation_loss(h_s, W_s, h_t, W_t, divergence="jsd")
    >>> torch.allclose(loss, LF.linear_distillation_loss(h_s, W_s, h_t, W_t, divergence="jsd"))
    True
    """
    loss = "vocab_parallel_linear_distillation_loss"
    opts = check_options(
        loss,
        divergence=divergence,
        beta=beta,
        temperature=temperature,
        hard_weight=hard_weight,
        ignore_index=ignore_index,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    check_linear_inputs(
        loss,
        student_hidden,
        student_weight_shard,
        teacher_hidden,
        teacher_weight_shard,
        target,
        student_bias_shard,
        teacher_bias_shard,
        opts.hard_weight,
        suffix="_shard",
    )
    local = student_weight_shard.shape[0]
    shard = _shard(group, local, student_hidden.device)
    if target is not None:
        total = local if shard is None else shard.total
        check_class_indices(loss, target, total, opts.ignore_index)
    return apply_linear_distillation(
        student_hidden,
        student_weight_shard,
        student_bias_shard,
        teacher_hidden,
        teacher_weight_shard,
        teacher_bias_shard,
        target,
        replace(opts, shard=shard),
    )


def vocab_parallel_distillation_loss(
    student_logits_shard: Tensor,
    teacher_logits_shard: Tensor,
    target: Tensor | None = None,
    *,
    group: ProcessGroup | None = None,
    divergence: Divergence = DIVERGENCE.default,
    beta: float = BETA.default,
    temperature: float = TEMPERATURE.default,
    hard_weight: float = HARD_WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    z_loss: float = Z_LOSS.default,
    softcap: float | None = SOFTCAP.default,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r""":func:`losskit.functional.distillation_loss` on logits whose classes are split over
    the processes of ``group``.

    .. math:: \ell_i = T^2 D\big(\mathrm{softmax}(t_i/T), \mathrm{softmax}(s_i/T)\big)
              + w_h\,\mathrm{CE}(s_i, y_i) + \lambda\,\mathrm{lse}(s_i)^2

    ``student_logits_shard`` and ``teacher_logits_shard`` ``(*, V_r)``: this process's classes
    (slice ``r`` of the vocabulary, after those of ranks ``0 .. r-1``, the same for both);
    ``target`` ``(*)``: global class ids, identical on every process, or None. Returns the same
    value on every process; the gradient flows to this process's student logits only. Options
    and the ``"mean"`` rule are those of ``distillation_loss``. Double backward raises
    ``DoubleBackwardError``.

    >>> import torch
    >>> import losskit.functional as LF
    >>> from losskit.distributed import vocab_parallel_distillation_loss
    >>> s, t = torch.randn(4, 10), torch.randn(4, 10)
    >>> loss = vocab_parallel_distillation_loss(s, t, temperature=2.0)  # one process
    >>> torch.allclose(loss, LF.distillation_loss(s, t, temperature=2.0))
    True
    """
    loss = "vocab_parallel_distillation_loss"
    opts = check_options(
        loss,
        divergence=divergence,
        beta=beta,
        temperature=temperature,
        hard_weight=hard_weight,
        ignore_index=ignore_index,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    check_logits_inputs(
        loss,
        student_logits_shard,
        teacher_logits_shard,
        target,
        opts.hard_weight,
        suffix="_shard",
    )
    local = student_logits_shard.shape[-1]
    shard = _shard(group, local, student_logits_shard.device)
    if target is not None:
        total = local if shard is None else shard.total
        check_class_indices(loss, target, total, opts.ignore_index)
    return apply_distillation(
        student_logits_shard, teacher_logits_shard, target, replace(opts, shard=shard)
    )
