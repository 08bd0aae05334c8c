"""Class weights from label counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from losskit._checks import check_number, fail, shape_str

__all__ = ["class_balanced_weights"]


def class_balanced_weights(
    samples_per_class: Sequence[int | float] | Tensor, beta: float = 0.9999
) -> Tensor:
    r"""Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019).

    .. math:: w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}},\qquad \sum_c w_c = C

    ``n_c`` is the number of training samples of class ``c``; ``(1 - beta**n) / (1 - beta)`` is
    the "effective number" of samples, which grows like ``n`` for few samples and saturates at
    ``1 / (1 - beta)``. The weights are normalised to sum to ``C``, as in the paper, so that
    the overall scale of the loss stays that of the unweighted loss. ``beta = 0`` gives equal
    weights, ``beta -> 1`` inverse class frequency (``beta = 1`` is accepted and means exactly
    that). The paper tries ``beta`` in {0.9, 0.99, 0.999, 0.9999}.

    Use the result as ``weight`` of :func:`~losskit.functional.cross_entropy` or
    :func:`~losskit.functional.focal_loss`, as per-class ``alpha`` of ``focal_loss``, as
    ``pos_weight`` of :func:`~losskit.functional.binary_cross_entropy_with_logits`, or expanded
    to the input's shape as the elementwise ``weight`` of the binary losses.

    ``samples_per_class``: a sequence or 1-d tensor of positive counts, one per class. Returns a
    float32 tensor (the counts' dtype if it is a floating tensor), on the counts' device.

    >>> import losskit
    >>> losskit.class_balanced_weights([1000, 100, 10], beta=0.99)
    tensor([0.2301, 0.3630, 2.4068])
    """
    name = "class_balanced_weights"
    beta = check_number(name, "beta", beta, ge=0.0, le=1.0)
    if isinstance(samples_per_class, Tensor):
        counts = samples_per_class
        dtype = counts.dtype if counts.is_floating_point() else torch.float32
        if counts.dim() != 1 or counts.is_complex() or counts.dtype == torch.bool:
            fail(
                name,
                "samples_per_class",
                f"has shape {shape_str(counts.shape)} and dtype {counts.dtype}",
                "a 1-d tensor of counts, one per class",
            )
    else:
        try:
            counts = torch.tensor(samples_per_class, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            fail(name, "samples_per_class", f"is {samples_per_class!r}", "a sequence of counts")
        dtype = torch.float32
        if counts.dim() != 1:
            fail(
                name,
                "samples_per_class",
                f"has shape {shape_str(counts.shape)}",
                "a flat sequence of counts, one per class",
            )
    if counts.numel() == 0:
        fail(name, "samples_per_class", "is empty", "at least one class")
    n = counts.to(torch.float64)
    low = float(n.min())
    if not low > 0 or not math.isfinite(float(n.max())):
        fail(
            name,
            "samples_per_class",
            f"has a count of {low:g}" if math.isfinite(low) else "has a non-finite count",
            "positive finite counts (a class without samples has no effective number: drop it "
            "from the weights or count it as 1)",
        )
    if beta == 1.0:
        effective = n
    else:
        # 1 - beta**n without cancellation: -expm1(n log(beta)); beta = 0 gives 1 for every class
        effective = (
            -torch.expm1(n * math.log(beta)) / (1.0 - beta) if beta > 0 else torch.ones_like(n)
        )
    weights = 1.0 / effective
    weights = weights * (len(weights) / weights.sum())
    return weights.to(dtype)
