"""Module forms of the distillation losses, generated from their options: they store the
options and call the functionals, which document every one of them."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.distillation.functional import distillation_loss, linear_distillation_loss
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

__all__ = ["DistillationLoss", "LinearDistillationLoss"]

_OPTIONS = (DIVERGENCE, BETA, TEMPERATURE, HARD_WEIGHT, IGNORE_INDEX, Z_LOSS, SOFTCAP, CHUNK_SIZE)

LinearDistillationLoss = loss_module(
    "LinearDistillationLoss",
    linear_distillation_loss,
    _OPTIONS,
    summary="Knowledge distillation between two linear heads without their N x V logits",
    example="""
    The weights are arguments of each call (``student.lm_head.weight``,
    ``teacher.lm_head.weight``), so the module holds only the options; biases are per-call
    keywords (``student_bias=``, ``teacher_bias=``).

    >>> import torch, losskit
    >>> student_head = torch.nn.Linear(16, 100, bias=False)
    >>> teacher_head = torch.nn.Linear(32, 100, bias=False).requires_grad_(False)
    >>> h_s, h_t = torch.randn(2, 5, 16), torch.randn(2, 5, 32)
    >>> tokens = torch.randint(0, 100, (2, 5))
    >>> criterion = losskit.LinearDistillationLoss(divergence="jsd", temperature=2.0,
    ...                                            hard_weight=0.5)
    >>> loss = criterion(h_s, student_head.weight, h_t, teacher_head.weight, tokens)
    >>> loss.backward()
    >>> teacher_head.weight.grad is None
    True
    """,
)

DistillationLoss = loss_module(
    "DistillationLoss",
    distillation_loss,
    _OPTIONS,
    summary="Knowledge distillation (forward/reverse KL, generalised JSD) on ready logits",
    example="""
    >>> import torch, losskit
    >>> criterion = losskit.DistillationLoss(divergence="reverse_kl", temperature=2.0)
    >>> student = torch.randn(2, 5, 100, requires_grad=True)
    >>> criterion(student, torch.randn(2, 5, 100)).backward()
    """,
)
