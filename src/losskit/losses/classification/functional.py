"""Classification losses: cross-entropy, NLL, binary cross-entropy on probabilities and logits.

These delegate to torch's fused kernels and add only O(1) Python around them: validation of
metadata, float32 compute for half precision, and the empty-mean rule (a batch whose targets
are all ``ignore_index`` has loss 0.0, not NaN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._C import _nn

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_class_indices,
    check_class_weight,
    check_finite,
    check_floating,
    check_in_unit_interval,
    check_nonnegative,
    check_optional_weight,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    check_tensor,
    fail,
    full_checks,
    same_float_tensors,
    shape_str,
)
from losskit._reduce import REDUCTION_ENUM, REDUCTIONS, Reduction, reduce_loss, safe_divide, upcast
from losskit.losses.classification.options import (
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    WEIGHT,
)

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
]


def check_integer(loss: str, name: str, value: object) -> int:
    """An int option such as ``ignore_index``; a bool is refused although Python counts it as
    an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(loss, name, f"is {value!r}", "an int")
    return value


_SCALAR = torch.Size([])
_NOT_INDEX_DTYPES = frozenset({torch.bool, torch.complex64, torch.complex128})


def check_class_target(loss: str, input: Tensor, target: Tensor) -> bool:
    """Validate ``target`` against ``(N, C, d1, ...)`` or ``(C,)`` scores; return whether it
    holds class indices (``True``) or class probabilities (``False``)."""
    check_floating(loss, "input", input)
    check_tensor(loss, "target", target)
    check_same_device(loss, "target", target, input, "input")
    if input.dim() == 0:
        fail(loss, "input", "is a scalar", "(N, C), (N, C, d1, ...) or (C,) class scores")
    dims = input.dim()
    index_shape = (
        input.shape[:1] if dims == 2 else input.shape[:1] + input.shape[2:] if dims > 1 else _SCALAR
    )
    if (input.shape[1] if dims > 1 else input.shape[0]) == 0:
        fail(loss, "input", f"has shape {shape_str(input.shape)}", "at least one class (C >= 1)")
    is_index = not target.is_floating_point()
    if is_index:
        if target.dtype in _NOT_INDEX_DTYPES:
            # torch rejects bool class indices too: a bool target is more likely a mask or a
            # binary label (binary_cross_entropy_with_logits) than the classes 0 and 1
            fail(loss, "target", f"has dtype {target.dtype}", "integer class indices or floats")
        if target.shape == index_shape:
            return True
    elif target.shape == input.shape:
        check_same_dtype(loss, "target", target, input, "input")
        return False
    fail(
        loss,
        "target",
        f"has shape {shape_str(target.shape)} and dtype {target.dtype}",
        f"{shape_str(index_shape)} integer class indices or {shape_str(input.shape)} "
        f"floating probabilities for input {shape_str(input.shape)}",
    )


def check_constant_class_weight(loss: str, weight: Tensor | None) -> None:
    """torch's class-weighted kernels do not differentiate the weight: say so clearly."""
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        fail(
            loss,
            "weight",
            "requires grad",
            "a constant class weight (torch's kernel has no gradient for it; detach it)",
        )


def _index_mean_denominator(target: Tensor, weight: Tensor | None, ignore_index: int) -> Tensor:
    """What torch's ``mean`` divides by for class-index targets: the (weighted) count of the
    targets that are not ignored. Computed without a host sync."""
    counted = target != ignore_index
    if weight is None:
        return counted.sum()
    return (weight[torch.where(counted, target, 0)] * counted).sum()


# ``nll_loss_forward`` returns the total weight for ``reduction="sum"`` as well as for "mean" in
# torch's CPU and CUDA kernels and in its decomposition (torch.compile); other devices take the
# general path.
_SUM = 2  # torch's reduction enum: 0 none, 1 mean, 2 sum


def _index_mean(log_probs: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int):
    """The mean NLL of ``(N, C)`` or ``(C,)`` log-probabilities from one kernel call:
    ``nll_loss_forward`` returns the sum and the total weight of the counted targets together,
    so the mean costs one division more than torch's, and a total weight of 0 divides by 1
    (every target ignored: 0.0, not NaN). The numbers of the sum divided by
    :func:`_index_mean_denominator` (the same bits without weights; with weights, the total
    weight is summed as torch's own mean sums it), without its four extra operations."""
    total, total_weight = torch.ops.aten.nll_loss_forward.default(
        log_probs, target, weight, _SUM, ignore_index
    )
    if weight is None:  # a count: 0 or at least 1
        return total / total_weight.clamp_min(1)
    return total / (total_weight + (total_weight == 0))


def _scores_loss(
    loss: str,
    kernel,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    logits: bool = False,
    **options: float,
) -> Tensor:
    """Shared body of cross-entropy and NLL: ``kernel`` is ``F.cross_entropy`` (``logits``) or
    ``F.nll_loss``."""
    is_index = check_class_target(loss, input, target)
    num_classes = input.shape[1] if input.dim() > 1 else input.shape[0]
    weight = check_class_weight(loss, weight, num_classes, input)
    check_constant_class_weight(loss, weight)
    ignore_index = check_integer(loss, "ignore_index", ignore_index)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    bounds = None
    if is_index:
        if target.dtype != torch.int64:
            # torch's kernels take int64 (and uint8, which indexing would read as a mask), and
            # ignore_index=-100 compared with a uint8 target would wrap to 156
            target = target.long()
        bounds = check_class_indices(loss, target, num_classes, ignore_index)
    else:
        check_in_unit_interval(loss, "target", target)
    if weight is not None:
        check_nonnegative(loss, "weight", weight)

    out_dtype = input.dtype
    x = upcast(input)
    w = None if weight is None else weight.to(x.dtype)
    y = target if is_index else upcast(target)
    if x.dim() == 4:
        # torch's 2-d NLL backward refuses a non-contiguous input ("grad_input must be
        # contiguous"); a no-op for a contiguous one
        x = x.contiguous()
    if not is_index:
        # probabilities have no class index to ignore: ignore_index does not apply (torch
        # raises for any value but its default)
        if reduction == "mean" and x.numel() == 0:
            reduction = "sum"
        out = kernel(x, y, weight=w, reduction=reduction, **options)
        return out if out.dtype == out_dtype else out.to(out_dtype)
    if (
        reduction == "mean"
        and w is None
        and bounds is not None
        and not bounds[0] <= ignore_index <= bounds[1]
    ):
        # the CPU range check read the smallest and largest index: no target is ignored, so
        # torch's own mean divides by the batch (>= 1) and is already the number we want, in
        # one call with torch's own backward (the per-call overhead at 32 logits, issue 16)
        out = kernel(x, y, ignore_index=ignore_index, reduction="mean", **options)
    elif (
        reduction == "mean"
        and x.dim() <= 2
        and (x.is_cpu or x.is_cuda)
        and not options.get("label_smoothing")
    ):
        # torch's cross_entropy is log_softmax then nll_loss: the same kernels, in one call less
        out = _index_mean(x.log_softmax(x.dim() - 1) if logits else x, y, w, ignore_index)
    elif reduction == "mean":
        total = kernel(x, y, weight=w, ignore_index=ignore_index, reduction="sum", **options)
        out = safe_divide(total, _index_mean_denominator(y, w, ignore_index))
    else:
        out = kernel(x, y, weight=w, ignore_index=ignore_index, reduction=reduction, **options)
    return out if out.dtype == out_dtype else out.to(out_dtype)


# ---------------------------------------------------------------- the common call, fast
#
# At (1, 32) logits torch's forward+backward takes about 28 us (cross-entropy) and 20 us (NLL) at
# one thread, and losskit's general path (_scores_loss) added 6-9 us to it (1.26-1.33x): the
# range check of the class indices, torch.aminmax and two int() (~3.5 us, more than torch's
# whole NLL forward), metadata checks through the shared helpers (~2.5 us), the autocast
# decorator and a call with keyword options (~1 us). The common call, (N, C) float32/float64
# scores and int64 class indices on the CPU, no class weight, under the default checks, outside
# autocast and torch.compile, is answered by torch's kernel itself instead (the binding under
# F.cross_entropy/F.nll_loss, without F's argument handling), after ~0.8 us of metadata tests:
#
# * the range check is torch's: its CPU kernels raise IndexError for an index outside [0, C)
#   that is not ignore_index (every reduction, label smoothing too), in the forward, so nothing
#   is returned. The general path then runs, and its own check raises LossInputError naming the
#   loss and the range.
# * losskit's mean and torch's agree except where no target counts (an empty batch, every target
#   ignore_index): torch returns 0/0 = NaN there. So a "mean" is read back (a 0-dim CPU tensor:
#   .item(), ~0.3 us, no device sync) and a NaN sends the call to the general path, which
#   returns 0.0 on the graph. A NaN input gives NaN there too (NaN in, NaN out), computed twice:
#   the price of a NaN, not of the common call. "sum" and "none" are torch's numbers as they come.
#
# Anything else (class weights, half precision, other integer targets, (N, C, d1, ...), other
# devices, checks("full"), autocast, torch.compile) takes the general path, as before.
#
# Measured at (1, 32), forward+backward against F.cross_entropy / F.nll_loss, old and new code in
# one run (2 busy CPUs, torch 2.13, median of 41 interleaved blocks of 2000 calls): 1 thread
# (thread_time) cross-entropy 1.30-1.32x -> 1.07-1.08x, NLL 1.32x -> 1.10x; 2 threads (wall)
# cross-entropy 1.33-1.37x -> 1.08-1.13x, NLL 1.22-1.31x -> 1.05-1.10x. What is left is the
# tests below (~0.8 us alone, ~1.3 us inside the loop) and the .item(), less F's own Python.
# At 1,048,576 logits both are at parity with torch (0.99-1.03x), as before.

_cross_entropy_kernel = torch._C._nn.cross_entropy_loss
_nll_kernel = torch._C._nn.nll_loss_nd
_any_autocast = torch._C._is_any_autocast_enabled
_is_compiling = torch.compiler.is_compiling
_transforms_active = torch._C._are_functorch_transforms_active
_FLOAT32, _FLOAT64, _INT64 = torch.float32, torch.float64, torch.int64
_bce_with_logits_kernel = torch.binary_cross_entropy_with_logits
_MEAN = REDUCTION_ENUM["mean"]


def _plain_index_call(input: object, target: object, ignore_index: object, reduction: object):
    """torch's reduction enum if ``(input, target)`` is the common call that torch's CPU kernel
    answers as losskit would (see above), else None. Metadata only; each test in its cheapest
    form (one ``shape`` read and a tuple compare: ~0.25 us, against ~0.4 us for ``dim()`` twice
    and three indexings)."""
    if (
        # first: under torch.compile nothing below is read, so it adds no guard to the graph
        not _is_compiling()
        and isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and type(ignore_index) is int
        and not _transforms_active()  # vmap cannot read the mean back
        and input.is_cpu
        and target.is_cpu
        and target.dtype is _INT64
        and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64)
        and len(shape := input.shape) == 2
        and target.shape == (shape[0],)
        and shape[1]  # C = 0 is refused by the general path (torch may return 0 for it)
        and not _any_autocast()
        and not full_checks()
    ):
        if reduction == "mean":
            return _MEAN
        if reduction == "sum" or reduction == "none":
            return REDUCTION_ENUM[reduction]
    return None


def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy between logits and class indices or class probabilities.

    .. math:: \ell_i = -\sum_c w_c\, q_{ic} \log \operatorname{softmax}(x_i)_c,\qquad
              q_i = (1-\varepsilon)\, y_i + \varepsilon / C

    Shapes: ``input`` ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; ``target`` either integer
    class indices of shape ``(N,)`` / ``(N, d1, ...)`` / ``()``, or probabilities of the same
    shape as ``input``. Class indices may have any integer dtype (uint8 included: it is read as
    indices, never as a mask); bool is refused, as torch does. ``weight`` ``(C,)``, a constant
    (torch's kernel does not differentiate it). Every option combines with every other;
    ``ignore_index`` applies to class indices only: probabilities have no index to ignore, so it
    is not used with them (torch raises for any value but its default).

    Out-of-range class indices raise :class:`~losskit.LossInputError` under the default checks on
    CPU tensors (torch's CPU kernel finds them, or one min/max over the target; no device sync
    there); on accelerators only under ``checks("full")``, since reading the range would
    synchronise.

    ``"mean"`` over class indices is ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` over the targets that
    are not ``ignore_index`` (torch's rule); if none counts, the result is 0.0 (torch: NaN).
    Over probabilities it divides by the number of samples, as torch does.

    >>> import torch, losskit.functional as LF
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(LF.cross_entropy(logits, torch.tensor([0, 2])).item(), 4)
    0.1755
    """
    if (
        weight is None
        and (enum := _plain_index_call(input, target, ignore_index, reduction)) is not None
        and type(label_smoothing) is float
        and 0.0 <= label_smoothing <= 1.0
    ):
        try:
            out = _cross_entropy_kernel(input, target, None, enum, ignore_index, label_smoothing)
        except (IndexError, RuntimeError):
            pass  # a class index out of range: the general path raises LossInputError for it
        else:
            # "mean": torch's NaN where no target counts is not losskit's 0.0 (see above);
            # .item() does not warn for a tensor that requires grad (float() does)
            if enum != _MEAN or (value := out.item()) == value:
                return out
    return _cross_entropy(input, target, weight, ignore_index, label_smoothing, reduction)


@autocast_float32
def _cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: Reduction,
) -> Tensor:
    """:func:`cross_entropy`, every check and option (the general path)."""
    label_smoothing = LABEL_SMOOTHING.check("cross_entropy", label_smoothing)
    return _scores_loss(
        "cross_entropy",
        F.cross_entropy,
        input,
        target,
        weight,
        ignore_index,
        reduction,
        logits=True,
        label_smoothing=label_smoothing,
    )


def nll_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Negative log-likelihood of class indices given log-probabilities,
    :math:`\ell_i = -w_{y_i}\, x_{i, y_i}`.

    Shapes as :func:`cross_entropy` with class-index targets; ``input`` holds log-probabilities
    (e.g. from ``log_softmax``). Same ``"mean"`` rule and empty-mean behaviour.

    >>> import torch, losskit.functional as LF
    >>> logp = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    >>> round(LF.nll_loss(logp, torch.tensor([0])).item(), 4)
    0.3567
    """
    if (
        weight is None
        and (enum := _plain_index_call(input, target, ignore_index, reduction)) is not None
    ):
        try:
            out = _nll_kernel(input, target, None, enum, ignore_index)
        except (IndexError, RuntimeError):
            pass  # a class index out of range: the general path raises LossInputError for it
        else:
            # "mean": torch's NaN where no target counts is not losskit's 0.0 (see above);
            # .item() does not warn for a tensor that requires grad (float() does)
            if enum != _MEAN or (value := out.item()) == value:
                return out
    return _nll_loss(input, target, weight, ignore_index, reduction)


@autocast_float32
def _nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: Reduction,
) -> Tensor:
    """:func:`nll_loss`, every check and option (the general path)."""
    if isinstance(target, Tensor) and target.is_floating_point():
        fail(
            "nll_loss",
            "target",
            f"has dtype {target.dtype}",
            "integer class indices (use cross_entropy for class probabilities)",
        )
    return _scores_loss("nll_loss", F.nll_loss, input, target, weight, ignore_index, reduction)


# the public functions run the general path under losskit's float32 autocast policy
cross_entropy.autocast_policy = _cross_entropy.autocast_policy  # type: ignore[attr-defined]
nll_loss.autocast_policy = _nll_loss.autocast_policy  # type: ignore[attr-defined]


def check_pos_weight(loss: str, pos_weight: object, input: Tensor) -> Tensor | float | None:
    """``pos_weight`` of the binary logit losses: None, a number >= 0, or a tensor >= 0 that is
    a scalar or holds one weight per label (``input.shape[-1]``)."""
    if pos_weight is None:
        return None
    if not isinstance(pos_weight, Tensor):
        return POS_WEIGHT.check(loss, pos_weight)
    check_floating(loss, "pos_weight", pos_weight)
    check_same_device(loss, "pos_weight", pos_weight, input, "input")
    last = input.shape[-1:] if input.dim() else torch.Size([])
    if pos_weight.dim() != 0 and pos_weight.shape != last:
        fail(
            loss,
            "pos_weight",
            f"has shape {shape_str(pos_weight.shape)}",
            f"a number or shape {shape_str(last)} (one per label of input "
            f"{shape_str(input.shape)})",
        )
    check_nonnegative(loss, "pos_weight", pos_weight)
    return pos_weight


def _check_binary(
    loss: str, input: Tensor, target: Tensor, weight: Tensor | None, reduction: str
) -> None:
    # the common call passes every check below: answer it from the metadata in one go
    if weight is None and same_float_tensors(input, target) and reduction in REDUCTIONS:
        return
    check_floating(loss, "input", input)
    check_floating(loss, "target", target)
    check_same_shape(loss, "target", target, input, "input")
    check_same_dtype(loss, "target", target, input, "input")
    check_same_device(loss, "target", target, input, "input")
    check_optional_weight(loss, weight, input)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    check_in_unit_interval(loss, "target", target)
    if weight is not None:
        check_nonnegative(loss, "weight", weight)


def _kernel_alone(input: object, target: object, weight: object, reduction: object) -> bool:
    """Whether the binary losses' common call, float32/float64 ``input`` and ``target`` of one
    shape and device, no weight, under the default checks, goes to torch's kernel with nothing
    around it: every metadata check passes, no upcast, and the kernel's reduction is losskit's
    (not a mean over nothing). At 32 elements the general path's Python around the kernel was
    ~1 us of a ~23 us forward and backward (1.04-1.05x torch's)."""
    return (
        weight is None
        and same_float_tensors(input, target)
        and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64)  # type: ignore[union-attr]
        and reduction in REDUCTIONS
        and (reduction != "mean" or input.numel() > 0)  # type: ignore[union-attr]
    )


def _binary_reduce(loss_fn, x: Tensor, w: Tensor | None, reduction: str) -> Tensor:
    """Call ``loss_fn(reduction=...)`` (a fused torch kernel) under losskit's weighted-mean rule.
    A weight is applied here, not by the kernel: torch's kernels have no gradient for it."""
    if w is not None:
        return reduce_loss(loss_fn(reduction="none"), reduction, w)
    if reduction == "mean" and x.numel() == 0:
        return loss_fn(reduction="sum")
    return loss_fn(reduction=reduction)


def _bce_finite_at_edges(x: Tensor, y: Tensor, reduction: str) -> Tensor:
    """torch's BCE value (its kernel, bit for bit), with the slopes of the clamped loss at ``x``
    in {0, 1}. There torch's gradient is ``(x - y) / 1e-12`` for ``x``, which overflows the half
    types, and ``log(1 - x) - log(x) = +-inf`` for ``y``. Where a log is clamped at -100 it is
    flat, so the slope in ``x`` is the other term's, ``1 - y`` at 0 and ``-y`` at 1, and the
    slope in ``y`` is the difference of the clamped logs, +100 at 0 and -100 at 1."""
    edge = (x == 0) | (x == 1)
    loss = F.binary_cross_entropy(
        torch.where(edge, x.detach(), x), torch.where(edge, y.detach(), y), reduction=reduction
    )
    # zero in value: (x - x.detach()) and (y - y.detach()) carry the edge slopes to autograd,
    # and slope_x keeps its y-derivative for double backward
    at_zero = x == 0
    slope_x = torch.where(at_zero, 1 - y, -y)
    slope_y = torch.where(at_zero, 100.0, -100.0)
    step = (x - x.detach()) * slope_x + (y - y.detach()) * slope_y
    return loss + reduce_loss(torch.where(edge, step, 0), reduction)


def _bce_kernel(x: Tensor, y: Tensor, reduction: str) -> Tensor:
    """torch's BCE kernel without ``F.binary_cross_entropy``'s argument handling (done here
    already; a third of the call at 32 elements)."""
    return _nn.binary_cross_entropy(x, y, None, REDUCTION_ENUM[reduction])


def _bce_passing_nan(kernel, x: Tensor, y: Tensor, reduction: str) -> Tensor:
    """``kernel(x, y, reduction=...)``, NaN in, NaN out. torch's CPU kernel raises on a NaN
    probability or target (its [0, 1] range check, which NaN fails), and the fast checks read
    no values: so only once it has raised, the NaN elements are computed at 0.5 and then set
    to NaN. Nothing is added where the kernel accepts its inputs. (torch's CUDA kernel asserts
    on the device instead: that cannot be caught.)"""
    try:
        return kernel(x, y, reduction=reduction)
    except RuntimeError:
        nan = x.isnan() | y.isnan()
        if not bool(nan.any()):
            raise
    out = kernel(torch.where(nan, 0.5, x), torch.where(nan, 0.5, y), reduction=reduction)
    poison = torch.zeros_like(out if reduction == "none" else x).masked_fill_(nan, torch.nan)
    return out + (poison if reduction == "none" else poison.sum())


@autocast_float32
def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Binary cross-entropy on probabilities,
    :math:`\ell_i = -[y_i \log p_i + (1 - y_i)\log(1 - p_i)]`.

    ``input`` holds probabilities in [0, 1], ``target`` the same shape with values in [0, 1].
    Finite at exactly 0 and 1: the logs are clamped at -100 as in torch, and the gradient is
    finite there too. For ``input`` in float32/float64 it is torch's,
    ``(p - y) / max(p (1 - p), 1e-12)``; in float16 and bfloat16 (computed in float32), where
    torch's bound of 1e12 overflows, and for a ``target`` that requires grad (torch's is
    infinite there), it is the slope of the clamped loss: ``1 - y`` at 0 and ``-y`` at 1 for
    ``input``, +100 at 0 and -100 at 1 for ``target``. Prefer :func:`binary_cross_entropy_with_logits` when you have logits: it is
    exact in log-space.

    ``weight`` (same shape) gives the weighted mean ``sum(w l) / sum(w)``; torch instead divides
    by the number of elements (a deliberate difference, see the "Deliberate differences" page of
    the documentation).

    >>> import torch, losskit.functional as LF
    >>> p, y = torch.tensor([0.8, 0.3, 0.1, 0.6]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    >>> round(LF.binary_cross_entropy(p, y).item(), 3)
    0.299
    """
    if _kernel_alone(input, target, weight, reduction) and not (
        target.requires_grad and torch.is_grad_enabled()
    ):
        return _bce_passing_nan(_bce_kernel, input, target, reduction)  # type: ignore[arg-type]
    _check_binary("binary_cross_entropy", input, target, weight, reduction)
    check_in_unit_interval("binary_cross_entropy", "input", input)
    out_dtype = input.dtype
    x, y = upcast(input), upcast(target)
    w = None if weight is None else weight.to(x.dtype)
    # the fused kernel alone where its gradient is finite: for the input in float32/float64
    kernel = _bce_kernel
    if x.dtype != out_dtype or (y.requires_grad and torch.is_grad_enabled()):
        kernel = _bce_finite_at_edges
    out = _binary_reduce(
        lambda reduction: _bce_passing_nan(kernel, x, y, reduction), x, w, reduction
    )
    return out if out.dtype == out_dtype else out.to(out_dtype)


@autocast_float32
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | float | None = POS_WEIGHT.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Binary cross-entropy on logits, computed in log-space (finite for logits of any size):

    .. math:: \ell_i = -[\,p\,y_i \log\sigma(x_i) + (1 - y_i)\log(1 - \sigma(x_i))\,]

    where :math:`p` is ``pos_weight`` (1 by default) for the positive term. Shapes: ``input`` and
    ``target`` identical (binary or multi-label), ``weight`` the same shape, ``pos_weight`` a
    number, or a ``(C,)`` tensor with ``C = input.shape[-1]`` (one weight per label).

    >>> import torch, losskit.functional as LF
    >>> x = torch.tensor([1e4, -1e4]); y = torch.tensor([0.0, 1.0])
    >>> LF.binary_cross_entropy_with_logits(x, y).item()
    10000.0
    """
    if pos_weight is None and _kernel_alone(input, target, weight, reduction):
        return _bce_with_logits_kernel(input, target, None, None, REDUCTION_ENUM[reduction])
    loss = "binary_cross_entropy_with_logits"
    _check_binary(loss, input, target, weight, reduction)
    pos_weight = check_pos_weight(loss, pos_weight, input)
    if pos_weight is not None and not isinstance(pos_weight, Tensor):
        pos_weight = torch.tensor(pos_weight, dtype=input.dtype, device=input.device)
    out_dtype = input.dtype
    x, y = upcast(input), upcast(target)
    w = None if weight is None else weight.to(x.dtype)
    pw = None if pos_weight is None else pos_weight.to(x.dtype)
    out = _binary_reduce(
        # torch's kernel without F's argument handling (done above)
        lambda reduction: _bce_with_logits_kernel(x, y, None, pw, REDUCTION_ENUM[reduction]),
        x,
        w,
        reduction,
    )
    return out if out.dtype == out_dtype else out.to(out_dtype)
