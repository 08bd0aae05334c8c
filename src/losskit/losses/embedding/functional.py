"""Embedding losses: pull matching pairs together and push others apart.

``cosine_embedding_loss`` is torch's kernel with losskit's checks around it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_finite,
    check_floating,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    shape_str,
)
from losskit._labels import as_signs, check_label_tensor, check_sign_values
from losskit._reduce import REDUCTIONS, Reduction, upcast
from losskit.losses.embedding.options import MARGIN

__all__ = ["cosine_embedding_loss"]


@autocast_float32
def cosine_embedding_loss(
    x1: Tensor,
    x2: Tensor,
    target: Tensor,
    *,
    margin: float = MARGIN.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cosine embedding loss, torch's ``cosine_embedding_loss`` kernel.

    .. math:: \ell_i = \begin{cases} 1 - \cos(x_{1,i}, x_{2,i}) & y_i = 1 \\
              \max\big(0,\ \cos(x_{1,i}, x_{2,i}) - m\big) & y_i = -1 \end{cases}

    Similar pairs (:math:`y = 1`) are pulled to cosine 1; dissimilar pairs (:math:`y = -1`) are
    pushed below cosine ``margin``. The cosine is that of torch
    (:math:`x_1 \cdot x_2 / \sqrt{(\|x_1\|^2 + \epsilon)(\|x_2\|^2 + \epsilon)}`,
    :math:`\epsilon = 10^{-12}`), so a zero vector gives cosine 0 and a finite gradient.

    Shapes: ``x1`` and ``x2`` ``(N, D)`` or unbatched ``(D,)``, identical; ``target`` ``(N,)`` or
    ``()``: integer, bool (True is +1) or floating in ``x1``'s dtype. ``margin`` in [-1, 1]
    (0 to 0.5 is usual). Labels other than +-1 are an error under ``checks="full"`` (under fast
    checks a positive label counts as +1, anything else as -1; torch would silently give such a
    pair loss 0). Same numbers as torch; an empty batch's mean is 0.0 (torch: NaN).

    >>> import torch, losskit.functional as LF
    >>> x1, x2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    >>> round(LF.cosine_embedding_loss(x1, x2, torch.tensor([1])).item(), 4)   # 1 - cos 45deg
    0.2929
    """
    loss = "cosine_embedding_loss"
    x1 = check_floating(loss, "x1", x1)
    x2 = check_floating(loss, "x2", x2)
    if x1.dim() not in (1, 2):
        fail(loss, "x1", f"has shape {shape_str(x1.shape)}", "(N, D) embeddings or unbatched (D,)")
    check_same_shape(loss, "x2", x2, x1, "x1")
    check_same_dtype(loss, "x2", x2, x1, "x1")
    check_same_device(loss, "x2", x2, x1, "x1")
    label_shape = x1.shape[:1] if x1.dim() == 2 else torch.Size([])
    target = check_label_tensor(
        loss,
        target,
        label_shape,
        x1,
        "x1",
        f"{shape_str(label_shape)}, one label per pair of x1 {shape_str(x1.shape)}",
    )
    m = MARGIN.check(loss, margin)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "x1", x1)
    check_finite(loss, "x2", x2)
    check_sign_values(loss, target)
    out_dtype = x1.dtype
    a, b = upcast(x1), upcast(x2)
    y = as_signs(target, a.dtype)
    if reduction == "mean" and y.numel() == 0:
        out = F.cosine_embedding_loss(a, b, y, margin=m, reduction="sum")
    else:
        out = F.cosine_embedding_loss(a, b, y, margin=m, reduction=reduction)
    return out.to(out_dtype)
