"""Pairwise ranking losses: the margin ranking (pairwise hinge) loss, torch's numbers in one
autograd node (:mod:`losskit.losses.margin.autograd`), and Bayesian Personalised Ranking (BPR)
for implicit-feedback recommendation."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_finite,
    check_floating,
    check_nonnegative,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    fail,
    full_checks,
    shape_str,
)
from losskit._labels import check_label_tensor, check_sign_values
from losskit._reduce import REDUCTIONS, Reduction, reduce_loss, upcast
from losskit.losses.margin.autograd import signed_hinge
from losskit.losses.margin.functional import FAST_DTYPES, INTEGER_LABELS
from losskit.losses.ranking.options import MARGIN

__all__ = ["bpr_loss", "margin_ranking_loss"]


@autocast_float32
def margin_ranking_loss(
    x1: Tensor,
    x2: Tensor,
    target: Tensor,
    *,
    margin: float = MARGIN.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Pairwise hinge on score differences: torch's ``margin_ranking_loss``, bit for bit.

    .. math:: \ell_i = \max\big(0,\ -y_i\,(x_{1,i} - x_{2,i}) + m\big)

    ``target`` :math:`y_i = 1` means ``x1[i]`` should rank above ``x2[i]`` by at least
    ``margin``, :math:`-1` the reverse. Shapes: ``x1``, ``x2`` and ``target`` identical (any
    shape; torch would broadcast them, losskit does not). ``target`` is integer, bool (True is
    +1) or floating in ``x1``'s dtype; values other than +-1 are an error under
    ``checks="full"`` (under fast checks a positive label counts as +1, anything else as -1).
    ``margin >= 0``. Same numbers as torch, values and gradients (computed in one autograd
    node, see :mod:`losskit.losses.margin.autograd`); an empty batch's mean is 0.0 (torch: NaN).

    >>> import torch, losskit.functional as LF
    >>> x1, x2 = torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.6])
    >>> LF.margin_ranking_loss(x1, x2, torch.tensor([1, 1]), margin=0.1, reduction="none")
    tensor([0.0000, 0.5000])
    """
    if (
        isinstance(x1, Tensor)
        and isinstance(x2, Tensor)
        and isinstance(target, Tensor)
        and x1.dtype in FAST_DTYPES
        and x2.dtype is x1.dtype
        and (target.dtype is x1.dtype or target.dtype in INTEGER_LABELS)
        and x2.shape == x1.shape
        and target.shape == x1.shape
        and x2.device == x1.device
        and target.device == x1.device
        and type(margin) in (float, int)
        and 0.0 <= margin < math.inf
        and reduction in REDUCTIONS
        and not full_checks()
    ):
        # the common call, answered from its metadata (every check below passes, none reads a
        # value under the default checks); torch's numbers through one autograd node
        # (losskit.losses.margin.autograd)
        return signed_hinge(x1, x2, target, float(margin), False, reduction)
    loss = "margin_ranking_loss"
    x1 = check_floating(loss, "x1", x1)
    x2 = check_floating(loss, "x2", x2)
    check_same_shape(loss, "x2", x2, x1, "x1")
    check_same_dtype(loss, "x2", x2, x1, "x1")
    check_same_device(loss, "x2", x2, x1, "x1")
    target = check_label_tensor(loss, target, x1.shape, x1, "x1")
    m = MARGIN.check(loss, margin)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "x1", x1)
    check_finite(loss, "x2", x2)
    check_sign_values(loss, target)
    out = signed_hinge(upcast(x1), upcast(x2), target, m, False, reduction)
    return out if out.dtype == x1.dtype else out.to(x1.dtype)


@autocast_float32
def bpr_loss(
    positive_scores: Tensor,
    negative_scores: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Bayesian Personalised Ranking (Rendle et al., 2009): the negative log-likelihood that each
    positive item outranks its sampled negative.

    .. math:: \ell_{i} = -\log\sigma\big(s^+_{i} - s^-_{i}\big)
              = \log\big(1 + e^{-(s^+_i - s^-_i)}\big)

    Computed with ``logsigmoid``, so score differences of any size give finite values and
    gradients.

    Shapes: ``negative_scores`` either has the shape of ``positive_scores`` (one negative per
    positive), or that shape plus a trailing ``K`` (``(N,)`` positives with ``(N, K)`` negatives:
    K negatives per positive, and each of the N*K pairs counts as one term). ``"none"`` returns
    the shape of ``negative_scores``. ``weight`` is per pair (the shape of ``negative_scores``) or
    per positive (the shape of ``positive_scores``, shared by its K pairs), cast to the scores'
    dtype; with it, ``"mean"`` is the weighted mean over pairs,
    :math:`\sum w_i \ell_i / \sum w_i`.

    >>> import torch, losskit.functional as LF
    >>> LF.bpr_loss(torch.tensor([2.0, 0.5]), torch.tensor([2.0, 0.5]))      # ties: log 2
    tensor(0.6931)
    >>> pos, neg = torch.tensor([3.0, 1.0]), torch.tensor([[1.0, 0.0, 4.0], [1.0, 2.0, -1.0]])
    >>> LF.bpr_loss(pos, neg, reduction="none").shape                         # N x K pairs
    torch.Size([2, 3])
    """
    loss = "bpr_loss"
    pos = check_floating(loss, "positive_scores", positive_scores)
    neg = check_floating(loss, "negative_scores", negative_scores)
    check_same_dtype(loss, "negative_scores", neg, pos, "positive_scores")
    check_same_device(loss, "negative_scores", neg, pos, "positive_scores")
    per_negative = neg.shape == pos.shape + neg.shape[-1:] and neg.dim() == pos.dim() + 1
    if neg.shape != pos.shape and not per_negative:
        fail(
            loss,
            "negative_scores",
            f"has shape {shape_str(neg.shape)}",
            f"the shape of positive_scores, {shape_str(pos.shape)}, or that shape plus K "
            f"negatives per positive, e.g. {shape_str((*pos.shape, 5))}",
        )
    if weight is not None:
        w = check_floating(loss, "weight", weight)
        if w.shape not in (neg.shape, pos.shape):
            fail(
                loss,
                "weight",
                f"has shape {shape_str(w.shape)}",
                f"{shape_str(neg.shape)} (one weight per pair) or {shape_str(pos.shape)} "
                "(one per positive)",
            )
        check_same_device(loss, "weight", w, pos, "positive_scores")
        check_finite(loss, "weight", w)
        check_nonnegative(loss, "weight", w)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "positive_scores", pos)
    check_finite(loss, "negative_scores", neg)

    out_dtype = pos.dtype
    s_pos, s_neg = upcast(pos), upcast(neg)
    w = None if weight is None else weight.to(s_pos.dtype)
    if per_negative:
        s_pos = s_pos.unsqueeze(-1)
        if w is not None and w.shape != neg.shape:
            w = w.unsqueeze(-1).expand(neg.shape)
    elementwise = -F.logsigmoid(s_pos - s_neg)
    return reduce_loss(elementwise, reduction, w).to(out_dtype)
