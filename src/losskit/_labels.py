"""Checks shared by the losses whose targets are signs (+1/-1) or binary labels: hinge, cosine
embedding, margin ranking. Metadata checks are fast; the checks of the label values read the
values on the host, so they run only under ``checks="full"``."""

from __future__ import annotations

import torch
from torch import Tensor

from losskit._checks import (
    check_same_device,
    check_same_dtype,
    check_tensor,
    fail,
    full_checks,
    shape_str,
)

_BAD_DTYPES = (torch.complex64, torch.complex128)


def check_label_tensor(
    loss: str,
    target: object,
    shape: torch.Size,
    like: Tensor,
    like_name: str = "input",
    shape_doc: str = "",
) -> Tensor:
    """``target`` holds labels: bool, integer, or floating in ``like``'s dtype, of ``shape``,
    on ``like``'s device."""
    target = check_tensor(loss, "target", target)
    if target.dtype in _BAD_DTYPES:
        fail(loss, "target", f"has dtype {target.dtype}", "labels as floats, integers or bools")
    if target.shape != shape:
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)}",
            shape_doc or f"{shape_str(shape)} (losskit never broadcasts target)",
        )
    if target.is_floating_point():
        check_same_dtype(loss, "target", target, like, like_name)
    check_same_device(loss, "target", target, like, like_name)
    return target


def as_signs(target: Tensor, dtype: torch.dtype) -> Tensor:
    """Labels as +1/-1 in ``dtype``: positive values are +1, the rest -1. Exact for +-1, 0/1
    and bool labels; what other values mean is checked under ``checks="full"``."""
    positive = target if target.dtype == torch.bool else target > 0
    one = torch.ones((), dtype=dtype, device=target.device)
    return torch.where(positive, one, -one)


def check_sign_values(loss: str, target: Tensor) -> None:
    """Under full checks: every label is -1 or +1."""
    if not full_checks() or target.numel() == 0 or target.dtype == torch.bool:
        return
    bad = (target != 1) & (target != -1)
    if bool(bad.any()):
        example = target[bad][0].item()
        fail(
            loss,
            "target",
            f"has {int(bad.sum())} value(s) other than -1 and 1 (e.g. {example:g})",
            "labels -1 or 1 (checks='full')",
        )


def check_binary_values(loss: str, target: Tensor) -> None:
    """Under full checks: the labels are all in {-1, 1} or all in {0, 1}, not a mix."""
    if not full_checks() or target.numel() == 0 or target.dtype == torch.bool:
        return
    flags = torch.stack(
        [
            (target == -1).any(),
            (target == 0).any(),
            ((target != 1) & (target != 0) & (target != -1)).any(),
        ]
    ).tolist()
    has_minus, has_zero, has_other = flags
    if has_other:
        example = target[(target != 1) & (target != 0) & (target != -1)][0].item()
        fail(
            loss,
            "target",
            f"has a value {example:g} that is not a label",
            "labels -1/1 or 0/1 (checks='full')",
        )
    if has_minus and has_zero:
        fail(
            loss,
            "target",
            "mixes -1 and 0 labels",
            "labels all in {-1, 1} or all in {0, 1} (checks='full')",
        )
