r"""Contrastive losses: InfoNCE, NT-Xent (SimCLR), supervised contrastive (SupCon), CLIP and
SigLIP, at any batch size.

Each one is a function of the similarities of a batch, an ``N x M`` matrix whose memory the
usual implementations pay in full (open_clip's ``ClipLoss`` at B=16,384 holds several 1 GiB
matrices). Here the matrix is held only while it is small: up to 2048 x 2048 similarities
(16 MiB) it is computed once and kept for the backward, above that the losses stream blocks of
its rows through :mod:`losskit.losses.contrastive.tiled` and recompute them in backward, in
float32, with the same numbers as the dense formula to float32 rounding (see
:data:`~losskit.losses.contrastive.tiled.KEEP_MAX_ELEMENTS` for the measured crossover).
``block_size`` forces the tiled path with that many rows per block.

``gather=True`` (CLIP, SigLIP, NT-Xent, SupCon) computes the loss of the global batch under
``torch.distributed``: the embeddings are all-gathered with
:func:`losskit.distributed.gather_with_grad`, so every rank gets the loss of the concatenated
batch and the gradient of its own rows. SigLIP's ``gather="ring"`` passes text blocks from rank
to rank instead (the SigLIP paper's chunked implementation) and never holds the global batch.
"""

from __future__ import annotations

from typing import Literal

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
    check_tensor,
    fail,
    shape_str,
    values_checked,
)
from losskit._collective import gather as gather_labels
from losskit._collective import gather_with_grad, is_distributed
from losskit._options import HyperParam
from losskit._reduce import REDUCTIONS, Reduction, reduce_loss, upcast
from losskit.losses.contrastive.options import (
    BLOCK_SIZE,
    CLIP_LOGIT_SCALE,
    GATHER,
    LOGIT_BIAS,
    NEGATIVE_MODE,
    SIGLIP_GATHER,
    SIGLIP_LOGIT_SCALE,
    TEMPERATURE,
)
from losskit.losses.contrastive.ring import siglip_ring
from losskit.losses.contrastive.tiled import DENSE_MAX_TWO_TOWERS, Pairwise, pairwise, unit_rows

__all__ = ["clip_loss", "info_nce_loss", "nt_xent_loss", "siglip_loss", "supcon_loss"]

#: each row's cross-entropy of its own column (in-batch negatives); the paths by size are in
#: losskit.losses.contrastive.tiled (DENSE_MAX_ELEMENTS, KEEP_MAX_ELEMENTS)
_ROWS = Pairwise("softmax", minus_diagonal=True)
#: ... and of each column too (CLIP)
_ROWS_AND_COLS = Pairwise("softmax", cols=True, minus_diagonal=True, dense_max=DENSE_MAX_TWO_TOWERS)
#: each row's log-sum-exp (over explicit negatives)
_LSE = Pairwise("softmax")
_SUPCON = Pairwise("softmax", exclude_self=True, minus_positive_mean=True)
_SIGMOID_PAIRS = Pairwise("softplus", positive_diagonal=True, dense_max=DENSE_MAX_TWO_TOWERS)
_NT_XENT = Pairwise("nt_xent")

Scalar = float | Tensor


# ------------------------------------------------------------------------------ checks


def check_block_size(loss: str, block_size: object) -> int | None:
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        fail(loss, "block_size", f"is {block_size!r}", f"an int {BLOCK_SIZE.valid}")
    return block_size


def check_gather(loss: str, gather: object, param: HyperParam = GATHER) -> bool | str:
    allowed = (True, False, "ring") if param is SIGLIP_GATHER else (True, False)
    if not any(gather is a or (isinstance(a, str) and gather == a) for a in allowed):
        fail(loss, "gather", f"is {gather!r}", param.valid)
    return gather  # type: ignore[return-value]


def _check_matrix(loss: str, name: str, x: object) -> Tensor:
    x = check_floating(loss, name, x)
    if x.dim() != 2:
        fail(loss, name, f"has shape {shape_str(x.shape)}", "(N, D): one embedding per row")
    return x


def _check_towers(loss: str, names: tuple[str, str], x: object, y: object) -> tuple[Tensor, Tensor]:
    """Two ``(N, D)`` towers of one shape, dtype and device (row ``i`` of each is a pair)."""
    x = _check_matrix(loss, names[0], x)
    y = check_floating(loss, names[1], y)
    check_same_shape(loss, names[1], y, x, names[0])
    check_same_dtype(loss, names[1], y, x, names[0])
    check_same_device(loss, names[1], y, x, names[0])
    return x, y


def _check_labels(loss: str, labels: object, x: Tensor) -> Tensor:
    labels = check_tensor(loss, "labels", labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        fail(loss, "labels", f"has dtype {labels.dtype}", "integer class labels")
    n = x.shape[0]
    if labels.shape != (n,):
        fail(
            loss,
            "labels",
            f"has shape {shape_str(labels.shape)}",
            f"({n},), one label per row of embeddings",
        )
    check_same_device(loss, "labels", labels, x, "embeddings")
    return labels


def check_scalar(loss: str, param: HyperParam, value: object, like: Tensor) -> Scalar:
    """A number inside ``param``'s bounds, or a one-element floating tensor on ``like``'s
    device (a learnable scale or bias) whose value is checked where that costs no host
    synchronisation (see :func:`losskit._checks.values_checked`)."""
    if not isinstance(value, Tensor):
        return param.check(loss, value)
    if not value.is_floating_point() or value.numel() != 1:
        fail(
            loss,
            param.name,
            f"is a tensor of shape {shape_str(value.shape)} and dtype {value.dtype}",
            "a number or a one-element floating tensor",
        )
    check_same_device(loss, param.name, value, like, "the embeddings")
    if values_checked(value):
        param.check(loss, float(value.detach().reshape(())))
    return value


def _as_compute(value: Scalar, dtype: torch.dtype) -> Scalar:
    return value.to(dtype).reshape(()) if isinstance(value, Tensor) else value


def _normalize(*xs: Tensor) -> tuple[Tensor, ...]:
    """Unit rows, as ``F.normalize(x, dim=1)`` gives them (a zero row stays zero)."""
    return unit_rows(*xs)


def _gather(gather: bool | str, *xs: Tensor) -> tuple[Tensor, ...]:
    if gather is True and is_distributed():
        return tuple(gather_with_grad(x) for x in xs)
    return xs


# ------------------------------------------------------------------------------ InfoNCE


@autocast_float32
def info_nce_loss(
    query: Tensor,
    positive_key: Tensor,
    negative_keys: Tensor | None = None,
    *,
    temperature: float = TEMPERATURE.default,
    negative_mode: Literal["unpaired", "paired"] = NEGATIVE_MODE.default,
    block_size: int | None = BLOCK_SIZE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""InfoNCE (van den Oord et al., 2018): each query must pick its positive key out of the
    negatives, by a softmax over cosine similarities divided by ``temperature``.

    .. math:: \ell_i = -\log \frac{e^{\cos(q_i, k^+_i)/\tau}}
              {e^{\cos(q_i, k^+_i)/\tau} + \sum_{k^-} e^{\cos(q_i, k^-)/\tau}}

    Shapes: ``query`` and ``positive_key`` ``(N, D)``, row ``i`` a pair. The negatives are
    the other rows' positive keys when ``negative_keys`` is None (in-batch negatives), else
    ``negative_keys`` ``(M, D)`` shared by every query (``negative_mode="unpaired"``) or
    ``(N, M, D)``, ``M`` of its own for each query (``"paired"``). Every vector is
    L2-normalised first. The numbers of the ``info-nce-pytorch`` package (``InfoNCE``), with
    its defaults (``temperature=0.1``, unpaired negatives).

    In-batch and unpaired negatives never hold the ``N x N`` (``N x M``) similarities above
    2048 x 2048 of them: blocks of ``block_size`` rows are streamed (see the module docstring).
    Paired negatives are one ``N x M`` product, the size of ``negative_keys`` itself.

    >>> import torch, losskit.functional as LF
    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(LF.info_nce_loss(q, q, temperature=1.0).item(), 4)   # log(1 + e^-1)
    0.3133
    """
    loss = "info_nce_loss"
    q, k = _check_towers(loss, ("query", "positive_key"), query, positive_key)
    t = TEMPERATURE.check(loss, temperature)
    if negative_mode not in ("unpaired", "paired"):
        fail(loss, "negative_mode", f"is {negative_mode!r}", NEGATIVE_MODE.valid)
    block = check_block_size(loss, block_size)
    check_reduction(loss, reduction, REDUCTIONS)
    negatives = None
    if negative_keys is not None:
        negatives = check_floating(loss, "negative_keys", negative_keys)
        n, d = q.shape
        want = (n, None, d) if negative_mode == "paired" else (None, d)
        ok = negatives.dim() == len(want) and all(
            w is None or s == w for s, w in zip(negatives.shape, want, strict=False)
        )
        if not ok:
            shape = f"({n}, M, {d})" if negative_mode == "paired" else f"(M, {d})"
            fail(
                loss,
                "negative_keys",
                f"has shape {shape_str(negatives.shape)}",
                f"{shape} for negative_mode={negative_mode!r} and query {shape_str(q.shape)}",
            )
        check_same_dtype(loss, "negative_keys", negatives, q, "query")
        check_same_device(loss, "negative_keys", negatives, q, "query")
        check_finite(loss, "negative_keys", negatives)
    check_finite(loss, "query", q)
    check_finite(loss, "positive_key", k)
    out_dtype = q.dtype
    scale = 1.0 / t
    q, k = upcast(q), upcast(k)
    if negatives is None:
        losses, _ = pairwise(_ROWS, q, k, scale, block_size=block, normalize=True)
        return reduce_loss(losses, reduction).to(out_dtype)
    q, k = _normalize(q, k)
    if negative_mode == "unpaired":
        (keys,) = _normalize(upcast(negatives))
        negative, _ = pairwise(_LSE, q, keys, scale, block_size=block)
    else:
        keys = F.normalize(upcast(negatives), dim=2)
        negative = torch.logsumexp(torch.einsum("nd,nmd->nm", q, keys) * scale, 1)
    # -log(e^p / (e^p + e^lse_n)) = softplus(lse_n - p), without cancellation
    losses = F.softplus(negative - (q * k).sum(1) * scale)
    return reduce_loss(losses, reduction).to(out_dtype)


# ------------------------------------------------------------------- NT-Xent and SupCon


def _check_label_form(
    loss: str,
    embeddings: object,
    labels: object,
    temperature: object,
    gather: object,
    block_size: object,
    reduction: object,
) -> tuple[Tensor, Tensor, float, int | None]:
    x = _check_matrix(loss, "embeddings", embeddings)
    labels = _check_labels(loss, labels, x)
    t = TEMPERATURE.check(loss, temperature)
    check_gather(loss, gather)
    block = check_block_size(loss, block_size)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "embeddings", x)
    return x, labels, t, block


@autocast_float32
def nt_xent_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = TEMPERATURE.default,
    gather: bool = GATHER.default,
    block_size: int | None = BLOCK_SIZE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020),
    with labels: every pair of rows with the same label is a positive pair ``(a, p)``, every
    row with another label a negative of ``a``.

    .. math:: \ell_{ap} = -\log \frac{e^{s_{ap}/\tau}}{e^{s_{ap}/\tau}
              + \sum_{n:\,y_n \ne y_a} e^{s_{an}/\tau}},\qquad s = \cos

    SimCLR's two views of ``N`` images are ``embeddings = cat([view1, view2])`` with
    ``labels = arange(N).repeat(2)``. ``reduction``: ``"mean"`` over the positive pairs (both
    orders), ``"sum"``, or ``"none"``: per row ``a``, the sum of its pairs' losses (so
    ``"sum"`` is ``"none"`` summed). The numbers of pytorch-metric-learning's ``NTXentLoss``
    (cosine similarity, ``MeanReducer``), whose ``temperature`` defaults to 0.07 (here 0.1). A
    batch without a positive pair gives 0.0 with a graph; a row without a negative has loss 0.

    Shapes: ``embeddings`` ``(N, D)`` floating (normalised inside), ``labels`` ``(N,)``
    integers. No ``N x N`` matrix above 2048 x 2048 similarities (see the module docstring).

    >>> import torch, losskit.functional as LF
    >>> emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> round(LF.nt_xent_loss(emb, labels, temperature=1.0).item(), 4)   # log(1 + 2/e)
    0.5514
    """
    loss = "nt_xent_loss"
    x, labels, t, block = _check_label_form(
        loss, embeddings, labels, temperature, gather, block_size, reduction
    )
    out_dtype = x.dtype
    if gather is True and is_distributed():
        x, labels = gather_with_grad(x), gather_labels(labels)
    x = upcast(x)
    # pairs: the number of positive pairs (at least 1; with none every loss is a 0 on the graph)
    losses, pairs = pairwise(
        _NT_XENT, x, x, 1.0 / t, labels=labels, block_size=block, normalize=True
    )
    if reduction != "mean":
        return reduce_loss(losses, reduction).to(out_dtype)
    return (losses.sum() / pairs).to(out_dtype)


@autocast_float32
def supcon_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = TEMPERATURE.default,
    gather: bool = GATHER.default,
    block_size: int | None = BLOCK_SIZE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Supervised contrastive loss (Khosla et al., 2020), the :math:`\mathcal{L}^{sup}_{out}`
    form: per anchor, the mean over its positives of the log-softmax over every other row.

    .. math:: \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)} \log
              \frac{e^{s_{ip}/\tau}}{\sum_{a \ne i} e^{s_{ia}/\tau}},\qquad s = \cos

    ``P(i)``: the other rows with the label of ``i``. An anchor without a positive (a label
    with a single member) has loss 0 and does not count in the mean; it still serves as a
    negative of the others. ``reduction``: ``"mean"`` over the anchors that have a positive,
    ``"sum"``, ``"none"`` (one loss per row). The numbers of pytorch-metric-learning's
    ``SupConLoss`` (cosine similarity, ``AvgNonZeroReducer``; ``temperature=0.1``), except
    that a batch with a single label keeps the paper's loss where pytorch-metric-learning
    returns 0.

    Shapes: ``embeddings`` ``(N, D)`` floating (normalised inside), ``labels`` ``(N,)``
    integers. No ``N x N`` matrix above 2048 x 2048 similarities (see the module docstring).

    >>> import torch, losskit.functional as LF
    >>> emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> round(LF.supcon_loss(emb, labels, temperature=1.0).item(), 4)   # log(1 + 2/e)
    0.5514
    """
    loss = "supcon_loss"
    x, labels, t, block = _check_label_form(
        loss, embeddings, labels, temperature, gather, block_size, reduction
    )
    out_dtype = x.dtype
    if gather is True and is_distributed():
        x, labels = gather_with_grad(x), gather_labels(labels)
    x = upcast(x)
    if x.shape[0] <= 1:  # no other row: no positive, and no log-sum-exp to take
        losses = x[:, :0].sum(1)  # zeros on the graph, whatever x holds (NaN included)
        anchors = 1.0
    else:
        # anchors: the rows with a positive (at least 1; with none every loss is a 0 on the graph)
        losses, anchors = pairwise(
            _SUPCON, x, x, 1.0 / t, labels=labels, block_size=block, normalize=True
        )
    if reduction != "mean":
        return reduce_loss(losses, reduction).to(out_dtype)
    return (losses.sum() / anchors).to(out_dtype)


# ------------------------------------------------------------------------ CLIP and SigLIP


@autocast_float32
def clip_loss(
    image_embeds: Tensor,
    text_embeds: Tensor,
    *,
    logit_scale: float | Tensor = CLIP_LOGIT_SCALE.default,
    gather: bool = GATHER.default,
    block_size: int | None = BLOCK_SIZE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""CLIP's symmetric InfoNCE (Radford et al., 2021): image ``i`` must pick text ``i`` among
    the batch's texts, and text ``i`` image ``i``.

    .. math:: z = s\, X Y^\top,\qquad
              \ell_i = \tfrac12\big(\operatorname{lse}_j z_{ij} - z_{ii}\big)
              + \tfrac12\big(\operatorname{lse}_j z_{ji} - z_{ii}\big)

    Shapes: ``image_embeds`` and ``text_embeds`` ``(N, D)``, row ``i`` a pair, used as given
    (CLIP normalises them in the model). ``logit_scale`` :math:`s > 0`: a number, or a
    one-element tensor that gets a gradient (pass ``model.logit_scale.exp()``, as open_clip
    does). ``reduction="mean"`` gives the number of open_clip's ``ClipLoss``
    (``(CE(z, arange) + CE(z.T, arange)) / 2``); ``"none"`` one loss per pair.

    Above 2048 x 2048 similarities, blocks of ``block_size`` rows are streamed: the forward
    keeps each row's and each column's log-sum-exp, the backward recomputes the blocks, so the
    extra memory is a few ``block x N`` buffers instead of several ``N x N`` matrices, with the
    same numbers to float32 rounding. ``gather=True``: the loss of the global batch under
    ``torch.distributed`` (every rank computes it; each gets the gradient of its own rows).

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(LF.clip_loss(x, x, logit_scale=1.0).item(), 4)   # log(1 + e^-1)
    0.3133
    """
    loss = "clip_loss"
    x, y = _check_towers(loss, ("image_embeds", "text_embeds"), image_embeds, text_embeds)
    scale = check_scalar(loss, CLIP_LOGIT_SCALE, logit_scale, x)
    check_gather(loss, gather)
    block = check_block_size(loss, block_size)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "image_embeds", x)
    check_finite(loss, "text_embeds", y)
    out_dtype = x.dtype
    x, y = _gather(gather, x, y)
    x, y = upcast(x), upcast(y)
    scale = _as_compute(scale, x.dtype)
    rows, cols = pairwise(_ROWS_AND_COLS, x, y, scale, block_size=block)
    losses = 0.5 * (rows + cols)
    return reduce_loss(losses, reduction).to(out_dtype)


@autocast_float32
def siglip_loss(
    image_embeds: Tensor,
    text_embeds: Tensor,
    *,
    logit_scale: float | Tensor = SIGLIP_LOGIT_SCALE.default,
    logit_bias: float | Tensor = LOGIT_BIAS.default,
    gather: bool | Literal["ring"] = SIGLIP_GATHER.default,
    block_size: int | None = BLOCK_SIZE.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""SigLIP's pairwise sigmoid loss (Zhai et al., 2023): every (image, text) pair of the batch
    is a binary classification, positive for the matching pair and negative otherwise.

    .. math:: z = s\, X Y^\top + b,\qquad
              \ell_i = \sum_j \log\big(1 + e^{-y_{ij} z_{ij}}\big),\quad
              y_{ij} = \begin{cases} 1 & i = j \\ -1 & i \ne j\end{cases}

    Shapes: ``image_embeds`` and ``text_embeds`` ``(N, D)``, row ``i`` a pair, used as given.
    ``logit_scale`` :math:`s > 0` and ``logit_bias`` :math:`b`: numbers, or one-element tensors
    that get gradients (SigLIP learns both, from 10 and -10). ``reduction="mean"`` is the
    sum over all pairs divided by ``N``: the number of open_clip's ``SigLipLoss``; ``"none"``
    gives each image's sum over the texts.

    Above 2048 x 2048 similarities the pairs are streamed in blocks of ``block_size`` rows (no
    ``N x N`` matrix). ``gather=True``: the loss of the global batch under
    ``torch.distributed``, every rank computing it. ``gather="ring"``: each rank computes the
    loss of its own images against every text, the text blocks passed from rank to rank (the
    SigLIP paper's chunked implementation), so no rank ever holds the global batch; each rank's
    value is its share (``"mean"`` divides by the global batch: the shares sum to the loss) and
    its gradients are those of the global loss for its rows. Double backward through the ring
    is refused.

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(LF.siglip_loss(x, x, logit_scale=1.0, logit_bias=0.0).item(), 4)
    1.0064
    """
    loss = "siglip_loss"
    x, y = _check_towers(loss, ("image_embeds", "text_embeds"), image_embeds, text_embeds)
    scale = check_scalar(loss, SIGLIP_LOGIT_SCALE, logit_scale, x)
    bias = check_scalar(loss, LOGIT_BIAS, logit_bias, x)
    check_gather(loss, gather, SIGLIP_GATHER)
    block = check_block_size(loss, block_size)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "image_embeds", x)
    check_finite(loss, "text_embeds", y)
    out_dtype = x.dtype
    ring = gather == "ring" and is_distributed()
    if not ring:
        x, y = _gather(gather, x, y)
    x, y = upcast(x), upcast(y)
    scale, bias = _as_compute(scale, x.dtype), _as_compute(bias, x.dtype)
    if not ring:
        losses, _ = pairwise(_SIGMOID_PAIRS, x, y, scale, bias, block_size=block)
        return reduce_loss(losses, reduction).to(out_dtype)
    losses, total = siglip_ring(x, y, scale, bias, block)
    if reduction == "mean":
        return (losses.sum() / max(total, 1)).to(out_dtype)
    return reduce_loss(losses, reduction).to(out_dtype)
