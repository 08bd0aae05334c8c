"""Sequence losses: Connectionist Temporal Classification (CTC), torch's kernel with the
validation it lacks and a gradient that is exact with respect to ``log_probs``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._autograd import number
from losskit._checks import (
    check_floating,
    check_reduction,
    check_tensor,
    fail,
    full_checks,
    shape_str,
)
from losskit._reduce import REDUCTIONS, Reduction, upcast
from losskit.losses.sequence.options import BLANK, ZERO_INFINITY

__all__ = ["ctc_loss"]

_NOT_INDICES = (torch.bool, torch.complex64, torch.complex128)

Lengths = Tensor | Sequence[int] | int


def _lengths(loss: str, name: str, value: object, n: int, batched: bool, shape: str) -> Tensor:
    """``value`` as a 1-D integer tensor of ``n`` lengths (a view of the caller's tensor, so it
    keeps its device and dtype)."""
    expected = f"({n},), one length per batch element of log_probs {shape}"
    if not batched:
        expected = f"an int or a () tensor for unbatched log_probs {shape}"
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.dtype in _NOT_INDICES:
            fail(loss, name, f"has dtype {value.dtype}", "integer lengths")
        if (batched and value.shape != (n,)) or (not batched and value.numel() != 1):
            fail(loss, name, f"has shape {shape_str(value.shape)}", expected)
        return value.reshape(n)
    if isinstance(value, int) and not isinstance(value, bool) and not batched:
        return torch.tensor([value])
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        if len(value) != n:
            fail(loss, name, f"has {len(value)} entries", expected)
        return torch.tensor(value, dtype=torch.long).reshape(n)
    fail(loss, name, f"is a {type(value).__name__}", "an integer tensor or a sequence of ints")


def _check_range(loss: str, name: str, values: Tensor, high: int, what: str) -> None:
    """Host-side: every length in [0, high]."""
    lo, hi = (int(v) for v in torch.aminmax(values))
    if lo < 0 or hi > high:
        fail(loss, name, f"has values in [{lo}, {hi}]", f"lengths in [0, {high}], {what}")


def _repeats(targets: Tensor, target_lengths: Tensor, counted: Tensor | None) -> Tensor:
    """Per sample, how many neighbouring labels repeat (each needs a blank between them)."""
    n, device = target_lengths.numel(), targets.device
    if targets.dim() == 2:  # padded (N, S)
        same = targets[:, 1:] == targets[:, :-1]
        if counted is not None:
            same &= counted[:, 1:]
        return same.sum(1)
    sample = torch.repeat_interleave(torch.arange(n), target_lengths).to(device)
    same = (targets[1:] == targets[:-1]) & (sample[1:] == sample[:-1])
    return torch.zeros(n, dtype=torch.long, device=device).index_add_(0, sample[1:], same.long())


def _check_targets(
    loss: str,
    targets: Tensor,
    target_lengths: Tensor,
    input_lengths: Tensor,
    num_classes: int,
    blank: int,
    feasibility: bool,
) -> None:
    """Value checks of the targets: labels are class indices other than the blank, and (unless
    ``zero_infinity``) every target fits its input. The lengths are host tensors; the targets
    are read in one small transfer, and only the failing case does more work."""
    device = targets.device
    counted = None  # which entries of padded targets are labels, not padding
    if targets.dim() == 2 and targets.numel() and int(target_lengths.min()) < targets.shape[1]:
        positions = torch.arange(targets.shape[1], device=device)
        counted = positions < target_lengths.to(device)[:, None]
    if blank == 0:
        bad = (targets <= 0) | (targets >= num_classes)
    else:
        bad = (targets < 0) | (targets >= num_classes) | (targets == blank)
    if counted is not None:
        bad &= counted
    flags = [bad.any()]
    # a target of L labels needs at most 2L - 1 steps: only shorter inputs need the repeats
    maybe_short = feasibility and bool((input_lengths < 2 * target_lengths - 1).any())
    if maybe_short:
        needed = target_lengths.to(device) + _repeats(targets, target_lengths, counted)
        short = input_lengths.to(device) < needed
        flags.append(short.any())
    failed = torch.stack(flags).cpu().tolist()
    if not any(failed):
        return

    in_target = torch.ones_like(bad) if counted is None else counted
    out_of_range = ((targets < 0) | (targets >= num_classes)) & in_target
    if bool(out_of_range.any()):
        values = targets[out_of_range]
        fail(
            loss,
            "targets",
            f"has {values.numel()} label(s) outside [0, {num_classes - 1}] "
            f"(in [{int(values.min())}, {int(values.max())}])",
            f"class indices in [0, {num_classes - 1}] for log_probs with C={num_classes}",
        )
    blanks = int(((targets == blank) & in_target).sum())
    if blanks:
        fail(
            loss,
            "targets",
            f"contains the blank index {blank} {blanks} time(s) within target_lengths",
            f"labels other than blank={blank}: the blank separates labels and is never a "
            "target (pad targets beyond target_lengths, or choose another blank)",
        )
    i = int(short.nonzero()[0, 0])
    il, tl = int(input_lengths[i]), int(target_lengths[i])
    fail(
        loss,
        f"input_lengths[{i}]",
        f"is {il}",
        f"at least {int(needed[i])}: target_lengths[{i}] = {tl} labels plus "
        f"{int(needed[i]) - tl} blank(s) between repeated labels; a shorter input has no "
        "alignment and an infinite loss (pass zero_infinity=True to count such samples as 0)",
    )


def _check_log_probs_values(loss: str, x: Tensor) -> None:
    if not full_checks() or x.numel() == 0:
        return
    nan = int(torch.isnan(x).sum())
    if nan:
        fail(loss, "log_probs", f"has {nan} NaN value(s)", "log-probabilities (checks='full')")
    hi = float(x.detach().max())
    if hi > 0.0:
        fail(
            loss,
            "log_probs",
            f"has a maximum of {hi:g}",
            "log-probabilities, values <= 0 (e.g. log_softmax output) (checks='full')",
        )


def _exact_gradient(x: Tensor, input_lengths: Tensor, zeroed: Tensor | None) -> Tensor:
    """A term whose value is exactly 0 and whose gradient makes that of ``nll`` exact with
    respect to ``x``.

    torch's CTC backward returns ``exp(x) - gamma`` (``gamma`` the alignment posteriors): the
    gradient with respect to the logits under a ``log_softmax``, not with respect to ``x``,
    which is ``-gamma``. The term ``sum exp(x).detach() * (x - x.detach())`` over the counted
    time steps has gradient ``exp(x)`` and value 0, so subtracting it leaves ``-gamma``. After a
    ``log_softmax`` both gradients are the same, since ``exp(x)`` lies in the null space of its
    backward. Entries whose ``exp`` is 0 or overflows are left to torch's gradient.
    """
    weight = x.detach().exp()
    in_time = torch.arange(x.shape[0], device=x.device)[:, None] < input_lengths.to(x.device)
    use = in_time[..., None] & (weight > 0) & (weight < float("inf"))
    delta = torch.where(use, x - x.detach(), 0.0)
    correction = (weight * delta).sum((0, 2))
    if zeroed is not None:  # torch gives the samples it zeroed no gradient at all
        correction = torch.where(zeroed, 0.0, correction)
    return correction


_FAST_DTYPES = frozenset({torch.float32, torch.float64})
_INDEX_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def _host_lengths(value: object, n: int) -> tuple[list[int], Tensor | None] | None:
    """The lengths of the fast path: an (n,) integer tensor on the CPU, or a list or tuple of n
    ints, as a list (and the tensor, if one came); None for anything else."""
    if isinstance(value, Tensor):
        if value.dtype in _INDEX_DTYPES and value.is_cpu and value.shape == (n,):
            return value.tolist(), value
        return None
    if isinstance(value, (list, tuple)) and len(value) == n:
        values = list(value)
        if all(type(v) is int for v in values):
            return values, None
    return None


def _fast_ctc(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: object,
    target_lengths: object,
    blank: int,
    zero_infinity: bool,
) -> tuple | None:
    """The metadata and value checks of ``ctc_loss`` for the common call, batched float32 or
    float64 log-probabilities and integer targets on the CPU, read from Python lists of the
    lengths and one ``aminmax`` of the targets: ``_ctc``'s leading arguments when every check
    passes, None when one would fail or is not covered here (the checked path then runs, for
    its message)."""
    t_max, n, num_classes = log_probs.shape
    if not (t_max and n and 0 <= blank < num_classes):
        return None
    padded = targets.dim() == 2
    if not (padded and targets.shape[0] == n) and targets.dim() != 1:
        return None
    lengths = _host_lengths(input_lengths, n)
    target = _host_lengths(target_lengths, n)
    if lengths is None or target is None:
        return None
    (il_list, il), (tl_list, tl) = lengths, target
    il_lo, il_hi, tl_lo, tl_hi = min(il_list), max(il_list), min(tl_list), max(tl_list)
    width = targets.shape[1] if padded else targets.numel()
    if il_lo < 0 or il_hi > t_max or tl_lo < 0 or tl_hi > width:
        return None
    if not padded and sum(tl_list) != width:
        return None
    if il is None:
        il = torch.tensor(il_list)
    if tl is None:
        tl = torch.tensor(tl_list)
    tg = targets.contiguous()
    feasible = zero_infinity or il_lo >= 2 * tl_hi - 1
    if tg.numel() and (not padded or tl_lo == width) and feasible:
        # every entry of the targets is a label: one aminmax says whether any is out of range
        # or the blank (for blank 0 or C - 1; other blanks are looked for)
        lo, hi = (int(v) for v in torch.aminmax(tg))
        if lo < 0 or hi >= num_classes:
            return None
        if lo <= blank <= hi and (blank in (lo, hi) or bool((tg == blank).any())):
            return None
    elif tg.numel():
        _check_targets("ctc_loss", tg, tl, il, num_classes, blank, not zero_infinity)
    return log_probs, tg.long(), il_list, tl_list, il, tl


#: below this largest log-probability exp() is finite in float32 and float64 (exp(88.7) is
#: float32's largest): the exact gradient's correction then has the value 0 everywhere
_EXP_FINITE = 64.0
#: elements of the (T, N, C) gradient corrected per chunk on the CPU: the chunk's exp() is the
#: only temporary, so the peak memory stays that of torch's own backward. Also the fastest
#: measured (forward+backward over torch's, one thread, T=50, C=20): chunks of 16K, 64K, 256K
#: and 1M elements gave 1.099, 1.074, 1.077, 1.085 at N=64 and 1.068, 1.041, 1.060, 1.073 at
#: N=256 (smaller chunks pay per operation, larger ones leave the caches to the temporary)
_CHUNK = 1 << 16


class _ExactGradient:
    """A post-hook on the node of torch's CTC kernel that adds the exact gradient's correction
    (see :func:`_exact_gradient`) to the kernel's gradient: ``exp(x) * -g`` for each sample's
    gradient ``g``, wherever ``0 < exp(x) < inf``, the time step counts and (under
    ``zero_infinity``) the sample was not zeroed. The gradient of the reduction (and of the
    ``zero_infinity`` mask) is autograd's own, so every number is the eager form's: the same
    operations on the same operands, in an order that only the sign of a zero can tell.

    Where every ``exp(x)`` is finite (``finite``, read in the forward on the CPU) the term is
    computed without ``where`` (a scalar loop on the CPU), in chunks: a zero ``exp(x)`` or a
    time step past the input's length contributes ``exp(x) * 0`` there, and a zeroed sample's
    gradient is 0 already. The kernel's node is torch's own, so its cost per call is torch's;
    the hook adds one Python call and the pass over ``exp(x)``. No second derivative: under
    ``create_graph=True`` the kernel's backward ``_ctc_loss_backward`` is recorded, whose
    derivative torch does not implement, so a second backward ends in torch's own "not
    implemented" error, as the eager form does."""

    __slots__ = ("finite", "il", "il_list", "states", "x", "zeroed")

    def __init__(
        self,
        x: Tensor,
        il: Tensor,
        il_list: list[int],
        finite: bool,
        zeroed: Tensor | None,
        states: int,
    ) -> None:
        self.x, self.il, self.il_list = x, il, il_list
        self.finite, self.zeroed, self.states = finite, zeroed, states

    def __call__(
        self, grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]
    ) -> tuple[Tensor | None, ...] | None:
        out, per_sample = grad_inputs[0], grad_outputs[0]
        if out is None or per_sample is None:
            return None
        x, t_max = self.x, self.x.shape[0]
        scale = -per_sample.view(1, -1, 1)
        if not self.finite:
            weight = x.exp()
            in_time = torch.arange(t_max, device=x.device)[:, None] < self.il.to(x.device)
            use = in_time[..., None] & (weight > 0) & (weight < math.inf)
            if self.zeroed is not None:  # torch gives the samples it zeroed no gradient at all
                use = use & ~self.zeroed.view(1, -1, 1)
            return (out + torch.where(use, scale * weight, 0.0), *grad_inputs[1:])
        if min(self.il_list) < t_max:
            counted = torch.arange(t_max, device=x.device)[:, None] < self.il.to(x.device)
            scale = counted.to(scale.dtype).unsqueeze(-1) * scale
        if torch.is_grad_enabled():  # a graph of the gradient: nothing in place
            return (out + x.exp() * scale, *grad_inputs[1:])
        chunk = _CHUNK
        if torch.get_num_threads() > 1:
            # each chunk is three parallel regions, and on a busy machine each region waits for
            # a descheduled thread (2 threads, 2 busy processes, N=256: 4.3x torch's time in 5
            # chunks): as few chunks as memory allows. A temporary the size of the kernel's
            # log_beta (``states`` elements, freed by now) leaves the peak where it was
            chunk = max(chunk, self.states)
        step = max(1, chunk // max(x.shape[1] * x.shape[2], 1))
        if step >= t_max:
            out.add_(x.exp().mul_(scale))
        else:
            per_row = scale.shape[0] > 1
            for start in range(0, t_max, step):
                rows = slice(start, start + step)
                out[rows].add_(x[rows].exp().mul_(scale[rows] if per_row else scale))
        return (out, *grad_inputs[1:])


@autocast_float32
def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    *,
    blank: int = BLANK.default,
    zero_infinity: bool = ZERO_INFINITY.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Connectionist Temporal Classification loss (Graves et al., 2006), torch's kernel.

    .. math:: \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t=1}^{T_n}
              p_t(\pi_t \mid x_n)

    summed over every alignment :math:`\pi` (a label or the blank per time step) that collapses
    to the target :math:`y_n` once repeats are merged and blanks removed.

    Shapes: ``log_probs`` ``(T, N, C)`` log-probabilities (e.g. ``log_softmax(2)``) or unbatched
    ``(T, C)``; ``targets`` padded ``(N, S)`` or the targets concatenated, ``(sum(target_lengths),)``
    (unbatched: ``(S,)``); ``input_lengths`` and ``target_lengths`` integer tensors ``(N,)`` or
    sequences of N ints (unbatched: an int or a ``()`` tensor). ``"mean"`` divides each loss by
    its target length, then averages over the batch (torch's rule); an empty batch gives 0.0.

    Checks torch does not make, each a :class:`losskit.LossInputError` instead of a silent
    wrong number, an infinite loss or a crash:

    * a target label equal to ``blank`` or outside ``[0, C)`` (positions beyond
      ``target_lengths``, i.e. padding, are not read);
    * an input too short for its target: ``input_lengths[n]`` must be at least
      ``target_lengths[n]`` plus the number of repeated neighbouring labels (each needs a blank
      between them). With ``zero_infinity=True`` such samples count as 0 instead, as in torch;
    * lengths out of range (negative, beyond ``T`` or ``S``, the wrong count, or
      concatenated targets whose length is not ``sum(target_lengths)``).

    These read the lengths on the host, as torch's kernel does, and the targets' check costs
    one small transfer (on an accelerator, one synchronisation).

    The gradient with respect to ``log_probs`` is exact. torch returns ``exp(log_probs) -
    posterior``, the gradient with respect to the logits of a ``log_softmax``
    (pytorch/pytorch#52241); after a ``log_softmax`` (or any normalised parametrisation) the two
    agree, so training is unchanged, and ``gradcheck`` on ``log_probs`` passes. Half precision
    is computed in float32. Under ``zero_infinity=True`` exactly the samples torch zeroed (an
    infinite loss) get no gradient; a feasible sample keeps its exact gradient, even at a loss
    of 0. torch's kernel has no second derivative: ``create_graph=True`` through it ends in
    torch's "derivative for aten::_ctc_loss_backward is not implemented".

    >>> import torch, losskit.functional as LF
    >>> uniform = torch.full((2, 1, 2), 0.5).log()        # T=2, N=1, C=2 (blank and "a")
    >>> # "a" has 3 alignments of 2 steps (aa, a-, -a), each of probability 1/4: -log(3/4)
    >>> round(LF.ctc_loss(uniform, torch.tensor([[1]]), [2], [1]).item(), 4)
    0.2877
    """
    if (
        isinstance(log_probs, Tensor)
        and isinstance(targets, Tensor)
        and log_probs.dtype in _FAST_DTYPES
        and log_probs.dim() == 3
        and log_probs.is_cpu
        and targets.is_cpu
        and targets.dtype in _INDEX_DTYPES
        and type(blank) is int
        and type(zero_infinity) is bool
        and reduction in REDUCTIONS
        and not full_checks()
        and not torch.compiler.is_compiling()
    ):
        out = _fast_ctc(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity)
        if out is not None:
            return _ctc(*out, blank, zero_infinity, reduction, True)
    loss = "ctc_loss"
    log_probs = check_floating(loss, "log_probs", log_probs)
    shape = shape_str(log_probs.shape)
    if log_probs.dim() not in (2, 3):
        fail(
            loss,
            "log_probs",
            f"has shape {shape}",
            "(T, N, C) log-probabilities or unbatched (T, C)",
        )
    batched = log_probs.dim() == 3
    lp = log_probs if batched else log_probs.unsqueeze(1)
    t_max, n, num_classes = lp.shape
    if num_classes == 0:
        fail(loss, "log_probs", f"has shape {shape}", "at least one class (the blank)")
    if t_max == 0 and n > 0:
        fail(loss, "log_probs", f"has shape {shape}", "at least one time step")
    targets = check_tensor(loss, "targets", targets)
    if targets.is_floating_point() or targets.dtype in _NOT_INDICES:
        fail(loss, "targets", f"has dtype {targets.dtype}", "integer class indices")
    if batched and not (targets.dim() == 1 or (targets.dim() == 2 and targets.shape[0] == n)):
        fail(
            loss,
            "targets",
            f"has shape {shape_str(targets.shape)}",
            f"padded ({n}, S) or concatenated (sum(target_lengths),) for log_probs {shape}",
        )
    if not batched and targets.dim() != 1:
        fail(
            loss,
            "targets",
            f"has shape {shape_str(targets.shape)}",
            f"(S,) for unbatched log_probs {shape}",
        )
    il = _lengths(loss, "input_lengths", input_lengths, n, batched, shape)
    tl = _lengths(loss, "target_lengths", target_lengths, n, batched, shape)
    if isinstance(blank, bool) or not isinstance(blank, int):
        fail(loss, "blank", f"is {blank!r}", "an int")
    if not 0 <= blank < num_classes:
        fail(
            loss,
            "blank",
            f"is {blank}",
            f"a class index in [0, {num_classes - 1}] (C={num_classes})",
        )
    if not isinstance(zero_infinity, bool):
        fail(loss, "zero_infinity", f"is {zero_infinity!r}", "True or False")
    check_reduction(loss, reduction, REDUCTIONS)
    _check_log_probs_values(loss, log_probs)

    out_dtype = log_probs.dtype
    x = upcast(lp)
    if n == 0:
        per_sample = x.sum((0, 2)) * 0.0
        return (per_sample if reduction == "none" else per_sample.sum()).to(out_dtype)

    # contiguous: torch's kernel misreads strided concatenated (1-D) targets
    tg = (targets if batched else targets.unsqueeze(0)).contiguous()
    il_host, tl_host = il.cpu(), tl.cpu()
    _check_range(loss, "input_lengths", il_host, t_max, f"the time steps of log_probs {shape}")
    if tg.dim() == 2:
        _check_range(
            loss,
            "target_lengths",
            tl_host,
            tg.shape[1],
            f"the columns of the padded targets {shape_str(targets.shape)}",
        )
    else:
        _check_range(loss, "target_lengths", tl_host, tg.numel(), "the concatenated targets")
        total = int(tl_host.sum())
        if total != tg.numel():
            fail(
                loss,
                "target_lengths",
                f"sum to {total}",
                f"{tg.numel()}, the length of the concatenated targets",
            )
    _check_targets(loss, tg, tl_host, il_host, num_classes, blank, not zero_infinity)

    out = _ctc(
        x,
        tg.to(x.device, torch.long),
        il_host.tolist(),
        tl_host.tolist(),
        il,
        tl,
        blank,
        zero_infinity,
        reduction,
        batched,
    )
    return out if out.dtype == out_dtype else out.to(out_dtype)


def _ctc(
    x: Tensor,
    targets: Tensor,
    il_list: list[int],
    tl_list: list[int],
    il: Tensor,
    tl: Tensor,
    blank: int,
    zero_infinity: bool,
    reduction: str,
    batched: bool,
) -> Tensor:
    """The loss of checked inputs: ``x`` (T, N, C) in its compute dtype with N >= 1, int64
    ``targets`` on its device, the lengths as lists and as tensors."""
    grad = torch.is_grad_enabled() and x.requires_grad
    # eagerly, the correction is a hook on the kernel's node; traced (torch.compile) or under
    # torch.func transforms, it is the eager term of _exact_gradient
    hooked = grad and not (
        torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
    )
    # torch's native kernel, as F.ctc_loss calls it, but before F.ctc_loss replaces an infinite
    # loss by 0 under zero_infinity: which samples it zeroed is then known exactly (a feasible
    # sample can have a loss of exactly 0, and keeps its gradient correction)
    nll, log_alpha = torch._ctc_loss(x, targets, il_list, tl_list, blank, zero_infinity)
    zeroed = nll == math.inf if zero_infinity else None
    finite = True
    if hooked:
        # exp(x) is finite everywhere (one host read of the largest log-probability, on the
        # CPU only: elsewhere it would be a synchronisation): the correction's value is 0
        finite = x.is_cpu and float(x.detach().amax()) < _EXP_FINITE
        hook = _ExactGradient(x.detach(), il, il_list, finite, zeroed, log_alpha.numel())
        nll.grad_fn.register_hook(hook)
    if zeroed is not None:
        nll = torch.where(zeroed, 0.0, nll)
    if hooked and not finite:
        with torch.no_grad():  # the correction's value: 0, or NaN where an exp(x) is not
            correction = (x.exp() * 0.0).sum((0, 2))
            if zeroed is not None:
                correction = torch.where(zeroed, 0.0, correction)
        nll = nll - correction
    elif grad and not hooked:
        nll = nll - _exact_gradient(x, il, zeroed)
    if reduction == "none":
        return nll if batched else nll.squeeze(0)
    if reduction == "sum":
        return nll.sum()
    if hooked and min(tl_list) == max(tl_list):
        # one length for all: a cached 0-dim divisor divides to the same bits as the (N,)
        # tensor, and saves making that tensor (2 us of a 300 us loss at N=4)
        return (nll / number(max(tl_list[0], 1), x.dtype, x.device)).mean()
    return (nll / tl.to(nll.device).clamp_min(1).to(nll.dtype)).mean()
