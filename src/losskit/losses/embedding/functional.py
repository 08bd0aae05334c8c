"""Embedding losses: pull matching pairs together and push others apart.

``cosine_embedding_loss`` is torch's, bit for bit, with losskit's checks around it, computed
in one autograd node (:mod:`losskit.losses.embedding.autograd`).
"""

from __future__ import annotations

import torch
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
    full_checks,
    shape_str,
)
from losskit._labels import check_label_tensor, check_sign_values
from losskit._reduce import REDUCTIONS, Reduction, upcast
from losskit.losses.embedding.autograd import cosine_embedding
from losskit.losses.embedding.options import MARGIN
from losskit.losses.margin.functional import FAST_DTYPES, INTEGER_LABELS

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
    r"""Cosine embedding loss: torch's ``cosine_embedding_loss``, bit for bit.

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
    pair loss 0). Same numbers as torch, values and gradients (in one autograd node, see
    :mod:`losskit.losses.embedding.autograd`); an empty batch's mean is 0.0 (torch: NaN).

    >>> import torch, losskit.functional as LF
    >>> x1, x2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    >>> round(LF.cosine_embedding_loss(x1, x2, torch.tensor([1])).item(), 4)   # 1 - cos 45deg
    0.2929
    """
    if (
        isinstance(x1, Tensor)
        and isinstance(x2, Tensor)
        and isinstance(target, Tensor)
        and x1.dtype in FAST_DTYPES
        and x2.dtype is x1.dtype
        and (target.dtype is x1.dtype or target.dtype in INTEGER_LABELS)
        and x2.shape == x1.shape
        and (
            (x1.dim() == 2 and target.dim() == 1 and target.shape[0] == x1.shape[0])
            or (x1.dim() == 1 and target.dim() == 0)
        )
        and x2.device == x1.device
        and target.device == x1.device
        and type(margin) in (float, int)
        and -1.0 <= margin <= 1.0
        and reduction in REDUCTIONS
        and not full_checks()
    ):
        # the common call, answered from its metadata: (N, D) or (D,) embeddings with (N,) or
        # () labels; every check below passes and, under the default checks, none reads a value
        return cosine_embedding(x1, x2, target, float(margin), reduction)
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
    out = cosine_embedding(upcast(x1), upcast(x2), target, m, reduction)
    return out if out.dtype == x1.dtype else out.to(x1.dtype)
