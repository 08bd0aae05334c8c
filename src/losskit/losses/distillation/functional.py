r"""Knowledge distillation for large vocabularies, without the ``N x V`` logits.

A language-model student learns from a teacher's next-token distributions: both heads map ``N``
hidden states to ``N x V`` logits, and the dense loss holds two such matrices, their softmaxes
and the student's gradient (at ``N = 4096`` and ``V = 32k`` each is 512 MB in float32).
:func:`linear_distillation_loss` takes the hidden states and the two heads' weights instead and
processes the tokens in chunks of rows: for each chunk it computes the student's and the
teacher's logits (the teacher's under ``no_grad``), their log-probabilities, the divergence per
token and the gradient of the student's logits, in buffers reused from chunk to chunk, and folds
that gradient into ``grad_input``, ``grad_weight`` and ``grad_bias`` (accumulated in float32)
with two matrix products. No more than one chunk of either head's logits ever exists; the flops
are the dense loss's four matrix products (two forward, two for the student's gradients).

The per-token loss, with ``s`` and ``t`` the student's and the teacher's logits, ``T`` the
temperature, ``q = softmax(s / T)`` and ``p = softmax(t / T)``:

.. math:: \ell_i = T^2 D(p_i, q_i) + w_h\,\mathrm{CE}(s_i, y_i) + \lambda\,\mathrm{lse}(s_i)^2

where ``D`` is ``KL(p || q)`` (``"forward_kl"``), ``KL(q || p)`` (``"reverse_kl"``) or the
generalised Jensen-Shannon divergence (``"jsd"``) of Agarwal et al. (GKD),

.. math:: \mathrm{JSD}_\beta(p, q) = \beta\,\mathrm{KL}(p \,\|\, m) + (1-\beta)\,\mathrm{KL}(q
          \,\|\, m),\qquad m = \beta p + (1-\beta) q

with ``beta = 0`` taken as ``KL(p || q)`` and ``beta = 1`` as ``KL(q || p)`` (the convention of
Liger-Kernel's ``LigerFusedLinearJSDLoss`` and TRL's ``GKDTrainer.generalized_jsd_loss``: the
divergence itself tends to 0 at both ends, ``JSD_beta / beta -> KL(p || q)`` as ``beta -> 0`` and
``JSD_beta / (1 - beta) -> KL(q || p)`` as ``beta -> 1``). The factor ``T^2`` (Hinton et al.)
keeps the gradient's scale independent of ``T``; the hard-label term ``CE`` and the z-loss are
computed on the student's logits at temperature 1.

Memory traffic, not flops, is where the dense loss loses its time; here the products write the
logits straight into the reused buffers, every step afterwards works in place, the per-row
factors (``1/n``, ``T``, ``grad_output``) scale the small ``chunk x d`` operands, and the
gradients of ``"mean"`` and ``"sum"`` are computed during the forward pass and only scaled in
backward, as in :func:`losskit.functional.linear_cross_entropy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from losskit._autocast import autocast_float32, autocast_lower_precision
from losskit._autograd import LossFunction, refuse_double_backward, scale_early_grads
from losskit._checks import (
    check_class_indices,
    check_finite,
    check_floating,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_tensor,
    fail,
    full_checks,
    shape_str,
)
from losskit._reduce import REDUCTIONS, Reduction, compute_dtype
from losskit.losses.distillation.options import (
    BETA,
    CHUNK_SIZE,
    DIVERGENCE,
    DIVERGENCES,
    HARD_WEIGHT,
    IGNORE_INDEX,
    SOFTCAP,
    TEMPERATURE,
    Z_LOSS,
)
from losskit.losses.linear_ce.functional import (
    VocabShard,
    _drops_ignored_rows,
    _half_matmuls,
    auto_chunk_size,
    check_chunk_size,
    parallel_chunk_rows,
)

__all__ = ["distillation_loss", "linear_distillation_loss"]

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]

_LINEAR = "linear_distillation_loss"
_LOGITS = "distillation_loss"

#: elements per chunk buffer of :func:`distillation_loss` (its logits exist already, so no
#: matrix product wants many rows; a small chunk stays in cache): 2M floats, 8 MB
_LOGITS_CHUNK_ELEMENTS = 1 << 21


#: with more than one CPU thread, the fewest logits an automatic chunk of
#: :func:`linear_distillation_loss` holds where there are tokens enough (32 MiB in float32).
#: Every kernel of a chunk is a parallel region, and while other processes keep the cores busy
#: a region can wait a scheduler slice for its second thread (about 8 ms a region, with two busy
#: processes on two cores, in episodes lasting seconds), so the time grows with the count of
#: regions: 128-row chunks run 56 kernels on 32k+ elements at (N, d, V) = (1024, 128, 8192) with
#: the four products of each of 8 chunks on top, the dense loss 8 and its 4 products. Measured
#: forward+backward in those episodes (float32, 2 threads, 2 busy processes, median of 4-6
#: calls): at (1024, 128, 8192) 780 ms with 128-row chunks, 445 with 256, 300 with 512, 212 with
#: one chunk, the dense loss 277; at (2048, 256, 16384) 2050 ms with 128 rows, 800-950 with
#: 512, the dense loss 1200-2500. Idle, 512 rows cost up to 15% more than 128, one chunk 45%
#: more, still about half the dense loss's time. The memory then grows with the chunk, to at
#: most 32 MiB a buffer; from a vocabulary of 64k up (128 rows hold 2**23 logits) the rows of
#: one thread stay.
#: (`python benchmarks/chunks_under_load.py` repeats the sweep.)
PARALLEL_CHUNK_LOGITS = 1 << 23


def logits_chunk_rows(vocab: int) -> int:
    """Token rows per chunk that :func:`distillation_loss` uses by default: ``2**21 // V``."""
    return max(1, _LOGITS_CHUNK_ELEMENTS // max(vocab, 1))


# --------------------------------------------------------------------------- options and rows


@dataclass(frozen=True)
class Options:
    """The validated options of one call (shared with the vocab-parallel variants)."""

    #: "forward_kl" | "reverse_kl" | "jsd"; a jsd with beta 0 or 1 is stored as the KL it is
    divergence: str
    beta: float
    temperature: float
    hard_weight: float
    ignore_index: int
    z_loss: float
    softcap: float | None
    reduction: str
    chunk_size: int | None
    shard: VocabShard | None = None
    #: grad mode at the call (inside forward it is always off)
    grad_enabled: bool = True


def check_options(
    loss: str,
    *,
    divergence: object,
    beta: object,
    temperature: object,
    hard_weight: object,
    ignore_index: object,
    z_loss: object,
    softcap: object,
    reduction: object,
    chunk_size: object,
) -> Options:
    """Every option checked against its declaration; ``jsd`` at ``beta`` 0 or 1 becomes the KL
    it reduces to."""
    if divergence not in DIVERGENCES:
        fail(loss, "divergence", f"is {divergence!r}", DIVERGENCE.valid)
    b = BETA.check(loss, beta)
    t = TEMPERATURE.check(loss, temperature)
    hw = HARD_WEIGHT.check(loss, hard_weight)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        fail(loss, "ignore_index", f"is {ignore_index!r}", "an int")
    zl = Z_LOSS.check(loss, z_loss)
    cap = None if softcap is None else SOFTCAP.check(loss, softcap)
    check_reduction(loss, reduction, REDUCTIONS)
    chunk = check_chunk_size(loss, chunk_size)
    kind = str(divergence)
    if kind == "jsd" and b == 0.0:
        kind = "forward_kl"
    elif kind == "jsd" and b == 1.0:
        kind = "reverse_kl"
    return Options(kind, b, t, hw, ignore_index, zl, cap, str(reduction), chunk)


@dataclass
class Tokens:
    """Which tokens count. On CPU the ignored ones are dropped (``kept``: the indices of the
    counted rows, None when all count); on accelerators they are kept and masked (``counted``),
    so that no call synchronises with the host. Without a target every token counts."""

    total: int  # N
    count: int  # rows processed: counted ones (CPU) or all (accelerators)
    target: Tensor | None  # (count,) int64 targets of the processed rows (0 where masked)
    device: torch.device
    kept: Tensor | None = None
    counted: Tensor | None = None

    @classmethod
    def build(
        cls, target: Tensor | None, total: int, ignore_index: int, device: torch.device
    ) -> Tokens:
        if target is None:
            return cls(total, total, None, device)
        counted = target != ignore_index
        if not _drops_ignored_rows(device):
            return cls(total, total, torch.where(counted, target, 0), device, None, counted)
        # on CPU, dropping the ignored rows saves their work; their count is read on the host
        kept = counted.nonzero().squeeze(1)
        if kept.numel() == total:
            return cls(total, total, target, device)
        return cls(total, kept.numel(), target.index_select(0, kept), device, kept)

    def rows(self, x: Tensor) -> Tensor:
        """The processed rows of an ``(N, ...)`` tensor (masked rows read as 0)."""
        if self.kept is not None:
            return x.index_select(0, self.kept)
        if self.counted is not None:
            return torch.where(self.counted.view(-1, *([1] * (x.dim() - 1))), x, 0)
        return x

    def scatter(self, values: Tensor) -> Tensor:
        """Per-row ``values`` of the processed rows placed among all ``N`` (0 elsewhere)."""
        if self.kept is None:
            return values
        out = values.new_zeros((self.total, *values.shape[1:]))
        return out.index_copy_(0, self.kept, values)

    def row_scale(self, reduction: str, grad_output: Tensor | None, ct: torch.dtype) -> Tensor:
        """``d out / d loss_i`` for every processed row (0 for the masked ones)."""
        if reduction == "none":
            assert grad_output is not None
            g = grad_output.reshape(-1).to(ct)
            if self.counted is not None:
                return torch.where(self.counted, g, 0.0)
            return g if self.kept is None else g.index_select(0, self.kept)
        if self.counted is not None:
            scale = self.counted.to(ct)
            if reduction == "mean":
                scale = scale / scale.sum().clamp_min(1.0)
        else:
            per_row = 1.0 / max(self.count, 1) if reduction == "mean" else 1.0
            scale = torch.full((self.count,), per_row, dtype=ct, device=self.device)
        return scale if grad_output is None else scale * grad_output.to(ct)

    def reduce(self, reduction: str, losses: Tensor) -> Tensor:
        if self.counted is not None:
            losses = torch.where(self.counted, losses, 0.0)
        if reduction == "none":
            return self.scatter(losses)
        total = losses.sum()
        if reduction == "mean":
            if self.counted is not None:
                total = total / self.counted.sum().clamp_min(1)
            elif self.count > 0:
                total = total / self.count
        return total


# --------------------------------------------------------------------------- logits sources


class _Head:
    """A linear head applied chunk by chunk: ``hidden`` rows ``(n, d)`` and ``weight`` ``(V, d)``
    in the products' dtype, ``bias`` ``(V,)`` in the compute dtype."""

    def __init__(self, hidden: Tensor, weight: Tensor, bias: Tensor | None, ct: torch.dtype):
        self.hidden, self.weight, self.bias = hidden, weight, bias
        self.native = hidden.dtype == ct  # the products write the float buffer directly

    def logits(self, start: int, stop: int, out: Tensor) -> None:
        hc = self.hidden[start:stop]
        if self.native:
            if self.bias is None:
                torch.mm(hc, self.weight.t(), out=out)
            else:
                torch.addmm(self.bias, hc, self.weight.t(), out=out)
        else:
            out.copy_(hc @ self.weight.t())
            if self.bias is not None:
                out.add_(self.bias)


class _Ready:
    """Ready logits ``(N, V)`` read chunk by chunk: the processed rows of ``tokens``."""

    def __init__(self, logits: Tensor, tokens: Tokens):
        self.x, self.tokens = logits, tokens

    def logits(self, start: int, stop: int, out: Tensor) -> None:
        kept, counted = self.tokens.kept, self.tokens.counted
        if kept is not None:
            if self.x.dtype == out.dtype:
                torch.index_select(self.x, 0, kept[start:stop], out=out)
            else:
                out.copy_(self.x.index_select(0, kept[start:stop]))
            return
        out.copy_(self.x[start:stop])
        if counted is not None:  # masked rows read as 0: finite, whatever the padding holds
            out.masked_fill_(~counted[start:stop, None], 0.0)


# --------------------------------------------------------------------------- gradient sinks


class _HeadGrads:
    """Folds each chunk's gradient of the student's logits into the gradients of its hidden
    states, weight and bias (float32 for half inputs)."""

    def __init__(self, head: _Head, need: tuple[bool, bool, bool], ct: torch.dtype):
        h, w = head.hidden, head.weight
        n, d = h.shape
        vocab, dev = w.shape[0], h.device
        self.head, self.need = head, need
        self.grad_h = torch.empty(n, d, dtype=ct, device=dev) if need[0] else None
        self.grad_w = torch.empty(vocab, d, dtype=ct, device=dev) if need[1] else None
        self.grad_b = torch.zeros(vocab, dtype=ct, device=dev) if need[2] else None
        self.written = False
        if self.grad_w is not None and n == 0:
            self.grad_w.zero_()

    def add(self, start: int, stop: int, grad: Tensor, scale: Tensor) -> None:
        """``grad`` ``(r, V)``: d loss_i / d logits of rows ``start:stop``, each to be
        multiplied by ``scale[i]``."""
        head = self.head
        hc, w = head.hidden[start:stop], head.weight
        g = grad if head.native else grad.to(hc.dtype)
        if self.grad_h is not None:
            gh = self.grad_h[start:stop]
            if head.native:
                torch.mm(g, w, out=gh)
            else:
                gh.copy_(g @ w)
            gh.mul_(scale[:, None])
        if self.grad_w is not None:
            scaled = hc * scale[:, None].to(hc.dtype)
            if head.native:
                self.grad_w.addmm_(g.t(), scaled, beta=1 if self.written else 0)
            elif self.written:
                self.grad_w.add_(g.t() @ scaled)
            else:
                self.grad_w.copy_(g.t() @ scaled)
            self.written = True
        if self.grad_b is not None:
            self.grad_b.addmv_(grad.t(), scale)


class _LogitsGrads:
    """Writes each chunk's gradient into the ``(N, V)`` gradient of ready logits."""

    def __init__(self, tokens: Tokens, vocab: int, ct: torch.dtype, device: torch.device):
        self.tokens = tokens
        make = torch.empty if tokens.kept is None else torch.zeros
        self.grad = make(tokens.total, vocab, dtype=ct, device=device)

    def add(self, start: int, stop: int, grad: Tensor, scale: Tensor) -> None:
        kept = self.tokens.kept
        if kept is None:
            torch.mul(grad, scale[:, None], out=self.grad[start:stop])
        else:
            self.grad.index_copy_(0, kept[start:stop], grad.mul_(scale[:, None]))


# --------------------------------------------------------------------------- the chunk loop


def _global_lse(shard: VocabShard, local: Tensor) -> Tensor:
    """Row-wise ``log sum_r exp(local_r)`` over the ranks for a stack of local log-sum-exps:
    two all-reduces whatever the stack holds."""
    top = shard.all_reduce(local.clone(), "MAX")
    total = shard.all_reduce((local - top).exp_(), "SUM")
    return top + total.log_()


def sweep(
    student: _Head | _Ready,
    teacher: _Head | _Ready,
    tokens: Tokens,
    vocab: int,
    opts: Options,
    chunk_size: int,
    ct: torch.dtype,
    device: torch.device,
    row_scale: Tensor | None = None,
    sink: _HeadGrads | _LogitsGrads | None = None,
    clamp: bool = False,
) -> Tensor:
    """One pass over the processed rows, chunk by chunk: the loss of each row and, when
    ``row_scale`` and ``sink`` are given, the gradient of the student's logits times
    ``row_scale`` handed to ``sink``. With ``opts.shard``, ``vocab`` is this rank's slice and
    the softmax statistics and row sums are combined over the ranks per chunk. ``clamp``:
    log-probabilities are clamped at the lowest finite value, so that a logit of -inf (a class
    ruled out) is a probability of 0 with finite terms."""
    n = tokens.count
    shard = opts.shard
    temp, beta = opts.temperature, opts.beta
    kind, cap = opts.divergence, opts.softcap
    hw, zl = opts.hard_weight, opts.z_loss
    grads = row_scale is not None and sink is not None
    raw = hw > 0 or zl > 0  # terms of the student's logits at temperature 1
    tempered = temp != 1.0
    jsd = kind == "jsd"
    g_scale = 1.0 - beta if jsd else 1.0  # factored out of jsd's gradient
    lowest = torch.finfo(ct).min

    chunk = max(1, min(chunk_size, n))
    rows = chunk if n else 0

    def buffer() -> Tensor:
        return torch.empty(rows, vocab, dtype=ct, device=device)

    buf_s, buf_t = buffer(), buffer()
    buf_c = buffer() if kind == "forward_kl" or jsd else None
    buf_w = buffer() if jsd else None
    buf_r = buffer() if raw and tempered else None
    buf_k = buffer() if cap is not None and grads else None
    losses = torch.empty(n, dtype=ct, device=device)
    target = tokens.target
    if jsd:
        log_beta, log_ratio = math.log(beta), math.log1p(-beta) - math.log(beta)

    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        r = stop - start
        a, b = buf_s[:r], buf_t[:r]
        student.logits(start, stop, a)
        teacher.logits(start, stop, b)
        k = None
        if cap is not None:
            # z = c tanh(x / c) on both heads; the student's tanh is kept for 1 - tanh^2
            if buf_k is not None:
                k = buf_k[:r]
                torch.div(a, cap, out=k).tanh_()
                torch.mul(k, cap, out=a)
            else:
                a.div_(cap).tanh_().mul_(cap)
            b.div_(cap).tanh_().mul_(cap)

        # the column each row reads: its target (or, on another rank's slice, any local one)
        local = None
        if target is None:
            column = torch.zeros(r, 1, dtype=torch.long, device=device)
        elif shard is None:
            column = target[start:stop, None]
        else:
            shifted = target[start:stop] - shard.start
            local = (shifted >= 0) & (shifted < vocab)
            column = torch.where(local, shifted, 0)[:, None]

        raw_logit = a.gather(1, column).squeeze(1) if raw else None
        raw_local_lse = None
        if raw and tempered:
            assert buf_r is not None and raw_logit is not None
            log_r = buf_r[:r]
            torch.log_softmax(a, 1, out=log_r)
            raw_local_lse = raw_logit - log_r.gather(1, column).squeeze(1)
        if tempered:
            a.div_(temp)
            b.div_(temp)
        if shard is not None:
            s_col, t_col = a.gather(1, column).squeeze(1), b.gather(1, column).squeeze(1)
        torch.log_softmax(a, 1, out=a)
        torch.log_softmax(b, 1, out=b)
        lse_raw = None
        if shard is not None:
            parts = [s_col - a.gather(1, column).squeeze(1), t_col - b.gather(1, column).squeeze(1)]
            if raw_local_lse is not None:
                parts.append(raw_local_lse)
            local_lse = torch.stack(parts)
            shift = local_lse - _global_lse(shard, local_lse)  # local softmax -> global one
            a.add_(shift[0][:, None])
            b.add_(shift[1][:, None])
            if raw_local_lse is not None:
                assert buf_r is not None
                buf_r[:r].add_(shift[2][:, None])
                lse_raw = raw_local_lse - shift[2]
        elif raw_local_lse is not None:
            lse_raw = raw_local_lse
        if raw and not tempered:
            assert raw_logit is not None
            lse_raw = raw_logit - a.gather(1, column).squeeze(1)  # exact for any column
        if raw and tempered and grads:
            assert buf_r is not None
            buf_r[:r].exp_()  # softmax of the raw logits
        if clamp and kind != "reverse_kl":
            # a teacher's -inf (a class ruled out): p = 0 with finite terms (reverse KL stays
            # infinite where the student puts mass on it, as it should)
            b.clamp_min_(lowest)

        # the divergence per row (this rank's part of each sum when sharded)
        if kind == "forward_kl":
            assert buf_c is not None
            c = buf_c[:r]
            torch.sub(b, a, out=c)  # log p - log q
            b.exp_()  # p
            sums = [c.mul_(b).sum(1)]
        elif kind == "reverse_kl":
            torch.sub(a, b, out=b)  # log q - log p
            a.exp_()  # q
            sums = [b.mul_(a).sum(1)]
        else:
            assert buf_c is not None and buf_w is not None
            c, w = buf_c[:r], buf_w[:r]
            torch.add(a, log_ratio, out=c)
            torch.logaddexp(c, b, out=c)
            c.add_(log_beta)  # log m = log(beta p + (1 - beta) q)
            torch.sub(b, c, out=w)  # log p - log m
            b.exp_()  # p
            kl_teacher = w.mul_(b).sum(1)
            torch.sub(a, c, out=w)  # log q - log m
            a.exp_()  # q
            sums = [kl_teacher, w.mul_(a).sum(1)]
        if hw > 0:
            assert raw_logit is not None
            sums.append(raw_logit if local is None else torch.where(local, raw_logit, 0))
        if shard is not None:
            sums = list(shard.all_reduce(torch.stack(sums), "SUM"))
        if jsd:
            kl_student = sums[1]
            div = beta * sums[0] + (1 - beta) * kl_student
        else:
            div = sums[0]
        loss = div * temp * temp  # (multiplied twice: T^2 overflows float32 first)
        if hw > 0:
            assert lse_raw is not None
            loss = loss + hw * (lse_raw - sums[-1])
        if zl > 0:
            assert lse_raw is not None
            loss = loss + zl * lse_raw.square()
        losses[start:stop] = loss

        if not grads:
            continue
        assert row_scale is not None and sink is not None
        # d loss_i / d s_i = T g [G_D / g + coef_i softmax(s_i) - hw / (T g) e_y], with G_D
        # d D / d (s / T), g the factor taken out of jsd's G_D and
        # coef_i = (hw + 2 zl lse_i) / (T g) (the hard label's and z-loss's softmax terms)
        coef = None
        if raw:
            assert lse_raw is not None
            coef = (hw + 2 * zl * lse_raw) / (temp * g_scale)
        folded = coef if (coef is not None and not tempered) else None  # softmax(s) = q
        if kind == "forward_kl":
            a.exp_()  # q
            if folded is not None:
                a.mul_((1 + folded)[:, None])
            grad = a.sub_(b)  # q - p
        elif kind == "reverse_kl":
            # q (log q - log p - D) = b - D q
            step = -div if folded is None else folded - div
            grad = b.addcmul_(a, step[:, None])
        else:
            # q (log q - log m - KL(q || m)): (1 - beta) taken out
            step = -kl_student if folded is None else folded - kl_student
            grad = w.addcmul_(a, step[:, None])
        if coef is not None and tempered:
            assert buf_r is not None
            grad.addcmul_(buf_r[:r], coef[:, None])
        if hw > 0:
            hit = torch.full((r, 1), -hw / (temp * g_scale), dtype=ct, device=device)
            if local is not None:
                hit.mul_(local[:, None])
            grad.scatter_add_(1, column, hit)
        scale = row_scale[start:stop] * (temp * g_scale)
        if k is not None:
            # times 1 - tanh^2: multiply by tanh^2 - 1, flip the sign in the row scale
            grad.mul_(k.square_().sub_(1))
            scale = -scale
        sink.add(start, stop, grad, scale)
    return losses


# --------------------------------------------------------------------------- autograd Functions


def _head_rows(
    tokens: Tokens, hidden: Tensor, weight: Tensor, bias: Tensor | None, ct: torch.dtype
) -> _Head:
    matmul = hidden.dtype if _half_matmuls(hidden.device) else ct
    rows = tokens.rows(hidden).to(matmul).contiguous()
    return _Head(rows, weight.to(matmul), None if bias is None else bias.to(ct), ct)


def _linear_pass(
    saved: tuple[Tensor | None, ...],
    opts: Options,
    chunk_size: int,
    grad_output: Tensor | None,
    need: tuple[bool, bool, bool],
    early: bool,
) -> tuple[Tensor, tuple[Tensor | None, Tensor | None, Tensor | None]]:
    """The losses (reduced) and, when asked, the student's gradients, in the compute dtype."""
    s_h, s_w, s_b, t_h, t_w, t_b, target = saved
    assert s_h is not None and s_w is not None and t_h is not None and t_w is not None
    ct = compute_dtype(s_h.dtype)
    tokens = Tokens.build(target, s_h.shape[0], opts.ignore_index, s_h.device)
    student = _head_rows(tokens, s_h, s_w, s_b, ct)
    teacher = _head_rows(tokens, t_h, t_w, t_b, ct)
    scale = sink = None
    if early or grad_output is not None:
        scale = tokens.row_scale(opts.reduction, grad_output, ct)
        sink = _HeadGrads(student, need, ct)
    losses = sweep(
        student, teacher, tokens, s_w.shape[0], opts, chunk_size, ct, s_h.device, scale, sink
    )
    out = tokens.reduce(opts.reduction, losses)
    if sink is None:
        return out, (None, None, None)
    gh = sink.grad_h
    if gh is not None:
        if opts.shard is not None:
            opts.shard.all_reduce(gh, "SUM")
        gh = tokens.scatter(gh)
    return out, (gh, sink.grad_w, sink.grad_b)


class _LinearDistillation(LossFunction):
    @staticmethod
    def forward(
        ctx: Any,
        student_hidden: Tensor,
        student_weight: Tensor,
        student_bias: Tensor | None,
        teacher_hidden: Tensor,
        teacher_weight: Tensor,
        teacher_bias: Tensor | None,
        target: Tensor | None,
        opts: Options,
        chunk_size: int,
    ) -> Tensor:
        need = tuple(ctx.needs_input_grad[:3])
        early = opts.reduction != "none" and opts.grad_enabled and any(need)
        saved = (
            student_hidden,
            student_weight,
            student_bias,
            teacher_hidden,
            teacher_weight,
            teacher_bias,
            target,
        )
        out, grads = _linear_pass(saved, opts, chunk_size, None, need, early)
        ctx.opts, ctx.chunk_size = opts, chunk_size
        ctx.early = grads if early else None
        ctx.save_for_backward(*saved)
        return out.to(student_hidden.dtype)

    @staticmethod
    # an exact second derivative would hold the N x V logits this loss avoids
    @refuse_double_backward(_LINEAR)
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        need = tuple(ctx.needs_input_grad[:3])
        saved = ctx.saved_tensors
        s_h, s_w, s_b = saved[:3]
        ct = compute_dtype(s_h.dtype)
        if ctx.early is not None:
            # computed in forward for grad_output = 1; dropped from ctx so that autograd can
            # take the tensors over as .grad without a copy (a second backward recomputes)
            grads, ctx.early = ctx.early, None
            gh, gw, gb = scale_early_grads(grads, grad_output, ct)
        else:
            _, (gh, gw, gb) = _linear_pass(
                saved, ctx.opts, ctx.chunk_size, grad_output, need, False
            )
        return (
            None if gh is None or not need[0] else gh.to(s_h.dtype),
            None if gw is None or not need[1] else gw.to(s_w.dtype),
            None if gb is None or not need[2] else gb.to(s_b.dtype),
            None,
            None,
            None,
            None,
            None,
            None,
        )


def _logits_pass(
    student: Tensor,
    teacher: Tensor,
    target: Tensor | None,
    opts: Options,
    chunk_size: int,
    grad_output: Tensor | None,
    early: bool,
) -> tuple[Tensor, Tensor | None]:
    ct = compute_dtype(student.dtype)
    vocab = student.shape[1]
    tokens = Tokens.build(target, student.shape[0], opts.ignore_index, student.device)
    scale = sink = None
    if early or grad_output is not None:
        scale = tokens.row_scale(opts.reduction, grad_output, ct)
        sink = _LogitsGrads(tokens, vocab, ct, student.device)
    losses = sweep(
        _Ready(student, tokens),
        _Ready(teacher, tokens),
        tokens,
        vocab,
        opts,
        chunk_size,
        ct,
        student.device,
        scale,
        sink,
        clamp=True,
    )
    return tokens.reduce(opts.reduction, losses), None if sink is None else sink.grad


class _Distillation(LossFunction):
    @staticmethod
    def forward(
        ctx: Any,
        student: Tensor,
        teacher: Tensor,
        target: Tensor | None,
        opts: Options,
        chunk_size: int,
    ) -> Tensor:
        early = opts.reduction != "none" and opts.grad_enabled and ctx.needs_input_grad[0]
        out, grad = _logits_pass(student, teacher, target, opts, chunk_size, None, early)
        ctx.opts, ctx.chunk_size = opts, chunk_size
        ctx.early = grad
        ctx.save_for_backward(student, teacher, target)
        return out.to(student.dtype)

    @staticmethod
    # an exact second derivative needs the Hessian of the softmax: the dense formula's job
    @refuse_double_backward(_LOGITS)
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        student, teacher, target = ctx.saved_tensors
        if ctx.early is not None:
            grad, ctx.early = ctx.early, None
            (grad,) = scale_early_grads((grad,), grad_output, grad.dtype)
        else:
            _, grad = _logits_pass(
                student, teacher, target, ctx.opts, ctx.chunk_size, grad_output, False
            )
        assert grad is not None
        return grad.to(student.dtype), None, None, None, None


# The chunk loop's sizes depend on the targets' values (dropped rows), so torch.compile breaks
# the graph here anyway; run outside the graph, the Functions always see the call's own options
# (as linear_cross_entropy does).
def apply_linear(*args: Any) -> Tensor:
    if torch.compiler.is_compiling():
        # (torch._dynamo is imported whenever this runs: disable costs nothing here)
        return torch.compiler.disable(_LinearDistillation.apply)(*args)
    return _LinearDistillation.apply(*args)


def apply_logits(*args: Any) -> Tensor:
    if torch.compiler.is_compiling():
        return torch.compiler.disable(_Distillation.apply)(*args)
    return _Distillation.apply(*args)


# --------------------------------------------------------------------------- validation


def _check_target(loss: str, target: object, rows: tuple[int, ...], like: str, device) -> Tensor:
    target = check_tensor(loss, "target", target)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail(loss, "target", f"has dtype {target.dtype}", "integer class indices")
    if tuple(target.shape) != rows:
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)}",
            f"{shape_str(rows)}, one class index per row of {like}",
        )
    if target.device != device:
        fail(loss, "target", f"is on {target.device}", f"the device of {like.split()[0]}, {device}")
    return target


def check_linear_inputs(
    loss: str,
    student_hidden: object,
    student_weight: object,
    teacher_hidden: object,
    teacher_weight: object,
    target: object,
    student_bias: object,
    teacher_bias: object,
    hard_weight: float,
    suffix: str = "",
) -> None:
    """Shapes, dtypes and devices of the two heads' arguments and the target (``suffix``: of
    the weights' and biases' names, ``"_shard"`` for the vocab-parallel variant)."""
    w_name, tw_name = f"student_weight{suffix}", f"teacher_weight{suffix}"
    h = check_floating(loss, "student_hidden", student_hidden)
    w = check_floating(loss, w_name, student_weight)
    th = check_floating(loss, "teacher_hidden", teacher_hidden)
    tw = check_floating(loss, tw_name, teacher_weight)
    if h.dim() == 0:
        fail(loss, "student_hidden", "is a scalar", "(*, d) hidden states")
    d = h.shape[-1]
    if w.dim() != 2 or w.shape[1] != d or w.shape[0] == 0:
        fail(
            loss,
            w_name,
            f"has shape {shape_str(w.shape)}",
            f"(V, {d}) with V >= 1, one row of d={d} features per class for "
            f"student_hidden {shape_str(h.shape)}",
        )
    vocab = w.shape[0]
    if th.dim() != h.dim() or th.shape[:-1] != h.shape[:-1]:
        fail(
            loss,
            "teacher_hidden",
            f"has shape {shape_str(th.shape)}",
            f"({''.join(f'{n}, ' for n in h.shape[:-1])}d_t), one row per token of student_hidden "
            f"{shape_str(h.shape)}",
        )
    dt = th.shape[-1]
    if tw.dim() != 2 or tuple(tw.shape) != (vocab, dt):
        fail(
            loss,
            tw_name,
            f"has shape {shape_str(tw.shape)}",
            f"({vocab}, {dt}): the student's {vocab} classes, d_t={dt} features of "
            f"teacher_hidden {shape_str(th.shape)}",
        )
    for name, x in ((w_name, w), ("teacher_hidden", th), (tw_name, tw)):
        check_same_dtype(loss, name, x, h, "student_hidden")
        check_same_device(loss, name, x, h, "student_hidden")
    biases = ((f"student_bias{suffix}", student_bias), (f"teacher_bias{suffix}", teacher_bias))
    for name, bias in biases:
        if bias is None:
            continue
        bias = check_floating(loss, name, bias)
        if tuple(bias.shape) != (vocab,):
            fail(loss, name, f"has shape {shape_str(bias.shape)}", f"({vocab},), one per class")
        check_same_dtype(loss, name, bias, h, "student_hidden")
        check_same_device(loss, name, bias, h, "student_hidden")
    if target is None:
        if hard_weight > 0:
            fail(
                loss,
                "target",
                "is None",
                f"class indices {shape_str(h.shape[:-1])} for hard_weight={hard_weight:g} > 0",
            )
    else:
        _check_target(
            loss, target, tuple(h.shape[:-1]), f"student_hidden {shape_str(h.shape)}", h.device
        )
    for name, x in (("student_hidden", h), (w_name, w), ("teacher_hidden", th), (tw_name, tw)):
        check_finite(loss, name, x)


def check_logits_inputs(
    loss: str,
    student_logits: object,
    teacher_logits: object,
    target: object,
    hard_weight: float,
    suffix: str = "",
) -> None:
    """Shapes, dtypes and devices of ``(student_logits (*, V), teacher_logits (*, V), target
    (*))``. Under full checks: no NaN, no +inf, and no -inf in the student's logits."""
    s_name, t_name = f"student_logits{suffix}", f"teacher_logits{suffix}"
    s = check_floating(loss, s_name, student_logits)
    t = check_floating(loss, t_name, teacher_logits)
    if s.dim() == 0 or s.shape[-1] == 0:
        fail(loss, s_name, f"has shape {shape_str(s.shape)}", "(*, V) logits with V >= 1")
    if t.shape != s.shape:
        fail(
            loss,
            t_name,
            f"has shape {shape_str(t.shape)}",
            f"the shape of {s_name}, {shape_str(s.shape)} (losskit never broadcasts)",
        )
    check_same_dtype(loss, t_name, t, s, s_name)
    check_same_device(loss, t_name, t, s, s_name)
    if target is None:
        if hard_weight > 0:
            fail(
                loss,
                "target",
                "is None",
                f"class indices {shape_str(s.shape[:-1])} for hard_weight={hard_weight:g} > 0",
            )
    else:
        _check_target(loss, target, tuple(s.shape[:-1]), f"{s_name} {shape_str(s.shape)}", s.device)
    check_finite(loss, s_name, s)
    if full_checks() and t.numel():
        bad = int((t.isnan() | (t == math.inf)).sum())
        if bad:
            fail(
                loss,
                t_name,
                f"has {bad} NaN or +inf value(s)",
                "finite logits, or -inf for a class ruled out (checks='full')",
            )


# --------------------------------------------------------------------------- public functions


@autocast_lower_precision
def linear_distillation_loss(
    student_hidden: Tensor,
    student_weight: Tensor,
    teacher_hidden: Tensor,
    teacher_weight: Tensor,
    target: Tensor | None = None,
    *,
    divergence: Divergence = DIVERGENCE.default,
    beta: float = BETA.default,
    temperature: float = TEMPERATURE.default,
    hard_weight: float = HARD_WEIGHT.default,
    ignore_index: int = IGNORE_INDEX.default,
    z_loss: float = Z_LOSS.default,
    softcap: float | None = SOFTCAP.default,
    student_bias: Tensor | None = None,
    teacher_bias: Tensor | None = None,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r"""Knowledge distillation between two linear heads over a large vocabulary, chunked:
    neither head's ``N x V`` logits ever exist beyond one chunk of rows.

    With :math:`s_i = W_s h^s_i + b_s` and :math:`t_i = W_t h^t_i + b_t` (each soft-capped,
    :math:`c\tanh(\cdot/c)`, when ``softcap`` is given), :math:`q_i = \mathrm{softmax}(s_i/T)`
    (student) and :math:`p_i = \mathrm{softmax}(t_i/T)` (teacher):

    .. math:: \ell_i = T^2\, D(p_i, q_i) + w_h \big(\mathrm{lse}(s_i) - s_{i,y_i}\big)
              + \lambda\, \mathrm{lse}(s_i)^2

    ``divergence`` chooses :math:`D`: ``"forward_kl"`` :math:`\mathrm{KL}(p\|q)` (Hinton et
    al., 2015; mode-covering), ``"reverse_kl"`` :math:`\mathrm{KL}(q\|p)` (mode-seeking, MiniLLM)
    or ``"jsd"``, the generalised Jensen-Shannon divergence of GKD (Agarwal et al., 2024),
    :math:`\beta\,\mathrm{KL}(p\|m) + (1-\beta)\,\mathrm{KL}(q\|m)`,
    :math:`m = \beta p + (1-\beta) q`. As in Liger-Kernel's ``LigerFusedLinearJSDLoss`` and
    TRL's ``generalized_jsd_loss``, ``beta=0`` is exactly forward KL :math:`\mathrm{KL}(p\|q)`
    and ``beta=1`` exactly reverse KL :math:`\mathrm{KL}(q\|p)` (the limits of
    :math:`\mathrm{JSD}_\beta/\beta` and :math:`\mathrm{JSD}_\beta/(1-\beta)`; the divergence
    itself tends to 0 at both ends). The factor :math:`T^2` keeps the soft gradient's scale
    independent of the temperature, so ``hard_weight`` (:math:`w_h`, the student's
    cross-entropy on ``target`` at temperature 1, the value of
    :func:`losskit.functional.linear_cross_entropy`) needs no retuning when ``T`` changes.
    ``z_loss`` (:math:`\lambda`) and ``softcap`` mean what they mean for
    ``linear_cross_entropy``: the z-loss is on the student's logits at temperature 1, the
    soft-cap applies to both heads before the temperature.

    Shapes: ``student_hidden`` ``(*, d)`` (e.g. ``(batch, seq, d)``), ``student_weight``
    ``(V, d)``, ``teacher_hidden`` ``(*, d_t)`` (the same tokens; ``d_t`` may differ),
    ``teacher_weight`` ``(V, d_t)``, ``target`` ``(*)`` integer token ids or None, biases
    ``(V,)``. The result is a scalar, or for ``reduction="none"`` the shape of ``*`` with 0 at
    ignored tokens. Tokens whose target is ``ignore_index`` count nowhere; ``"mean"`` averages
    over the others (over every token without a target) and is 0.0 when none counts.

    The teacher gets no gradient: its logits are computed under ``no_grad`` chunk by chunk
    (its weight may be frozen or not). ``student_hidden``, ``student_weight`` and
    ``student_bias`` get theirs, computed during the forward pass for ``"mean"`` and ``"sum"``
    (backward only scales them; ``"none"`` recomputes each chunk in backward). Chunks of
    ``chunk_size`` token rows (default: :func:`losskit.functional.auto_chunk_size` of the
    student's ``d``, raised to ``2**23`` logits a chunk with more than one CPU thread); a
    chunk needs two buffers of ``rows x V`` floats for ``"reverse_kl"``,
    three for ``"forward_kl"``, four for ``"jsd"``, one more with a temperature and
    ``hard_weight`` or ``z_loss``, one more with ``softcap``.
    float16/bfloat16 inputs give a result and gradients in that dtype; softmax statistics and
    gradient accumulation are float32, the products run in the input dtype on accelerators and
    in float32 on CPU; under ``torch.autocast`` the products take the autocast dtype.
    Double backward (``create_graph=True``) raises ``DoubleBackwardError``; use the dense
    formula where second derivatives are needed.

    >>> import torch, losskit.functional as LF
    >>> h_s, W_s = torch.randn(6, 8), torch.randn(50, 8)      # student: d = 8
    >>> h_t, W_t = torch.randn(6, 16), torch.randn(50, 16)    # teacher: d_t = 16
    >>> loss = LF.linear_distillation_loss(h_s, W_s, h_t, W_t, temperature=2.0, chunk_size=4)
    >>> q = torch.log_softmax(h_s @ W_s.T / 2, -1)
    >>> p = torch.log_softmax(h_t @ W_t.T / 2, -1)
    >>> dense = 4 * torch.nn.functional.kl_div(q, p, log_target=True, reduction="batchmean")
    >>> torch.allclose(loss, dense, atol=1e-5)
    True
    """
    opts = check_options(
        _LINEAR,
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
        _LINEAR,
        student_hidden,
        student_weight,
        teacher_hidden,
        teacher_weight,
        target,
        student_bias,
        teacher_bias,
        opts.hard_weight,
    )
    if target is not None:
        check_class_indices(_LINEAR, target, student_weight.shape[0], opts.ignore_index)
    return apply_linear_distillation(
        student_hidden,
        student_weight,
        student_bias,
        teacher_hidden,
        teacher_weight,
        teacher_bias,
        target,
        opts,
    )


def apply_linear_distillation(
    student_hidden: Tensor,
    student_weight: Tensor,
    student_bias: Tensor | None,
    teacher_hidden: Tensor,
    teacher_weight: Tensor,
    teacher_bias: Tensor | None,
    target: Tensor | None,
    opts: Options,
) -> Tensor:
    """Run the chunked loss on validated arguments (every rank of a shard group gets the same
    automatic chunk size: there it depends on the tokens and ``d`` only, not on the
    threads)."""
    d, dt = student_hidden.shape[-1], teacher_hidden.shape[-1]
    rows = student_hidden.shape[:-1]
    hidden = student_hidden.reshape(-1, d)
    t_hidden = teacher_hidden.detach().reshape(-1, dt)
    labels = None if target is None else target.reshape(-1).long()
    chunk = opts.chunk_size
    if chunk is None:
        chunk = auto_chunk_size(hidden.shape[0], d, student_weight.shape[0])
        if opts.shard is None:  # (a shard group's ranks need one count, whatever their threads)
            chunk = parallel_chunk_rows(
                chunk, hidden.shape[0], student_weight.shape[0], hidden, PARALLEL_CHUNK_LOGITS
            )
    opts = _with_grad_mode(opts)
    out = apply_linear(
        hidden,
        student_weight,
        student_bias,
        t_hidden,
        teacher_weight.detach(),
        None if teacher_bias is None else teacher_bias.detach(),
        labels,
        opts,
        chunk,
    )
    return out.reshape(rows) if opts.reduction == "none" else out


def _with_grad_mode(opts: Options) -> Options:
    grad = torch.is_grad_enabled()
    return opts if opts.grad_enabled == grad else replace(opts, grad_enabled=grad)


@autocast_float32
def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None = None,
    *,
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
    r"""The divergences of :func:`losskit.functional.linear_distillation_loss` on ready logits
    (for a head that is not a plain linear layer), chunked so that no ``N x V`` temporary
    exists besides the logits and the student's gradient.

    .. math:: \ell_i = T^2\, D\big(\mathrm{softmax}(t_i/T), \mathrm{softmax}(s_i/T)\big)
              + w_h \big(\mathrm{lse}(s_i) - s_{i,y_i}\big) + \lambda\, \mathrm{lse}(s_i)^2

    ``D``, ``beta`` (0: forward KL, 1: reverse KL), the :math:`T^2` factor, ``hard_weight``,
    ``z_loss``, ``softcap`` (on both sets of logits), ``ignore_index`` and the reductions are
    those of ``linear_distillation_loss``. Shapes: ``student_logits`` and ``teacher_logits``
    ``(*, V)`` with the classes on the **last** dimension (language-model logits ``(batch,
    seq, V)``; :func:`losskit.functional.kl_div_with_logits` takes them on dimension 1),
    ``target`` ``(*)`` or None. A teacher logit of -inf (a class ruled out) is a probability of
    0 and counts as such; under ``checks="full"`` NaN and +inf are refused. The teacher's
    logits get no gradient (detach them or not). Chunks of ``chunk_size`` rows (default:
    ``2**21 // V``, about 8 MB per buffer). float16/bfloat16 logits are computed in float32
    and the result returned in their dtype; under autocast the result is float32. Double
    backward raises ``DoubleBackwardError``.

    >>> import torch, losskit.functional as LF
    >>> student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    >>> y = torch.tensor([1, -100, 3, 9])
    >>> loss = LF.distillation_loss(student, teacher, y, divergence="jsd", beta=0.0)
    >>> kl = torch.nn.functional.kl_div(
    ...     student.log_softmax(-1), teacher.log_softmax(-1), log_target=True, reduction="none"
    ... ).sum(-1)
    >>> torch.allclose(loss, kl[y != -100].mean())   # beta = 0: forward KL(teacher || student)
    True
    """
    opts = check_options(
        _LOGITS,
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
    check_logits_inputs(_LOGITS, student_logits, teacher_logits, target, opts.hard_weight)
    vocab = student_logits.shape[-1]
    if target is not None:
        check_class_indices(_LOGITS, target, vocab, opts.ignore_index)
    return apply_distillation(student_logits, teacher_logits, target, opts)


def apply_distillation(
    student_logits: Tensor, teacher_logits: Tensor, target: Tensor | None, opts: Options
) -> Tensor:
    """Run the chunked loss on validated ready logits."""
    vocab = student_logits.shape[-1]
    rows = student_logits.shape[:-1]
    # the same number of chunks on every rank of a shard group (collectives per chunk)
    total = vocab if opts.shard is None else opts.shard.total
    chunk = opts.chunk_size or logits_chunk_rows(total)
    out = apply_logits(
        student_logits.reshape(-1, vocab),
        teacher_logits.detach().reshape(-1, vocab),
        None if target is None else target.reshape(-1).long(),
        _with_grad_mode(opts),
        chunk,
    )
    return out.reshape(rows) if opts.reduction == "none" else out
