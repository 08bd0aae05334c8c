r"""Linear cross-entropy for large vocabularies, without the ``N x V`` logits.

The last layer of a language model maps ``N`` hidden states ``h`` (``N x d``) through a weight
``W`` (``V x d``) to ``N x V`` logits; at ``N = 8192`` and ``V = 128k`` that is 4 GB in float32,
and the naive ``F.cross_entropy(h @ W.T, y)`` keeps two or three such tensors alive between
forward and backward. :func:`linear_cross_entropy` processes the tokens in chunks of rows, and for
each chunk computes the logits, their log-sum-exp, the loss and the gradient of the logits in one
buffer that is reused from chunk to chunk, then folds that gradient into ``grad_input``,
``grad_weight`` and ``grad_bias`` (accumulated across chunks in float32) with two more matrix
products. No more than one chunk of logits ever exists, and the flops are the naive path's three
matrix products.

How the memory traffic is kept to the minimum (this, not the flops, is where the naive path loses
its time):

* the chunk's logits are written by the matrix product straight into the reused buffer
  (``out=``), turned into log-probabilities and then probabilities in place, and the one-hot
  target is subtracted with a scatter of one element per row;
* the per-row factors of the gradient (``1/n`` for the mean, ``grad_output``) scale the small
  ``chunk x d`` operands, not the ``chunk x V`` buffer (only z-loss and soft-capping, whose
  factors multiply the probabilities before the one-hot target is subtracted, cost extra passes
  over the buffer);
* label smoothing's uniform part is a rank-one term, ``-(eps/V) 1 (sum_i h_i)^T`` for the weight
  and ``-(eps/V) sum_j W_j`` for each hidden state, added outside the buffer.

Gradients of ``"mean"`` and ``"sum"`` are computed during the forward pass (assuming the loss is
what gets differentiated) and only scaled, in place, by ``grad_output`` in backward. A second
backward through the same graph (``retain_graph=True``, gradcheck) recomputes them chunk by chunk.
``"none"`` cannot know its per-token ``grad_output`` during forward, so its backward recomputes
the chunk logits: one extra matrix product.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_lower_precision
from losskit._autograd import (
    DoubleBackwardError,
    LossFunction,
    differentiable_backward,
    scale_early_grads,
)
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
from losskit._reduce import REDUCTION_ENUM, REDUCTIONS, Reduction, compute_dtype
from losskit.losses.linear_ce.options import (
    CHUNK_SIZE,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    SOFTCAP,
    Z_LOSS,
)

__all__ = ["VocabShard", "auto_chunk_size", "linear_cross_entropy"]

_LOSS = "linear_cross_entropy"
#: whether a torch.func transform (grad, vmap, ...) is active
_transforms_active = torch._C._are_functorch_transforms_active

#: most rows per chunk. Measured on CPU (float32, N=4096, d=512, V=32768, one thread), the
#: whole loss takes this much of the time of the three unchunked matrix products alone: 64 rows
#: 1.46x, 128 rows 1.12x, 256 rows 1.05x, 512 rows 1.03x, 1024 rows 1.03x; memory keeps growing
_MAX_CHUNK_ROWS = 512
#: fewest rows per chunk (see above: fewer rows make the products slow)
_MIN_CHUNK_ROWS = 128


def auto_chunk_size(num_tokens: int, hidden: int, vocab: int) -> int:
    """The number of token rows per chunk that :func:`linear_cross_entropy` uses by default on
    one CPU thread and on accelerators (with more CPU threads, a chunk holds at least 2**18
    logits a thread: a small vocabulary then runs fewer, larger chunks).

    ``hidden / 2`` rows rounded down to a power of two, within [128, 512], and no more than the
    tokens there are. The chunk's ``rows x vocab`` logits are then at most half the size of the
    weight (for ``hidden >= 256``), whose gradient has to exist anyway, so the loss needs about
    1.5 times the weight's size beyond its inputs; 512 rows is where the matrix products stop
    getting faster (see ``_MAX_CHUNK_ROWS``). The vocabulary does not change the row count: the
    buffer grows with it exactly as the weight does.

    >>> from losskit.functional import auto_chunk_size
    >>> auto_chunk_size(4096, 512, 32768)
    256
    """
    del vocab
    rows = min(max(hidden // 2, _MIN_CHUNK_ROWS), _MAX_CHUNK_ROWS)
    rows = 1 << (rows.bit_length() - 1)
    return max(1, min(rows, num_tokens))


#: with more than one CPU thread, the fewest logits per thread that an automatic chunk of
#: :func:`linear_cross_entropy` holds where there are tokens enough (1 MiB of float32 a
#: thread). Every kernel of a chunk is a parallel region, and while other processes keep the
#: cores busy a region can wait a scheduler slice for its second thread, so at a small
#: vocabulary, where ``auto_chunk_size``'s rows make small chunks, their count decides the time.
#: Measured forward+backward against the naive formula (float32, 2 threads, interleaved blocks
#: of 50 ms, median ratio over 21 rounds): at (N, d, V) = (256, 32, 2048), with two busy
#: processes on the two cores, in three runs, 128-row chunks 1.07, 0.90, 1.26 and one chunk of
#: 256 rows 0.74, 0.78, 0.75; idle 0.87 against 0.86 (`python benchmarks/chunks_under_load.py
#: --losses linear_ce --sizes 256 --rows 128,all --block 0.05 --repeats 21`, and `--load 0`).
#: At smaller vocabularies the floor's larger chunks were faster idle too (timed by hand at
#: (2048, 64, 512) and (4096, 256, 1024), which are not benchmark sizes). From a vocabulary of
#: 4096 up (128 rows hold 2**19 logits) two threads keep ``auto_chunk_size``'s rows, and with
#: them the memory of the large vocabularies: where the rows grow, the chunk's buffer is at
#: most this many logits a thread.
PARALLEL_CHUNK_LOGITS_PER_THREAD = 1 << 18


def parallel_chunk_rows(rows: int, tokens: int, vocab: int, like: Tensor, logits: int) -> int:
    """``rows``, raised to ``logits / vocab`` (to at most ``tokens``) on the CPU with more than
    one torch thread, outside torch.compile (its graph cannot ask for the thread count).
    ``like``: a tensor on the call's device."""
    if like.device.type != "cpu" or torch.compiler.is_compiling() or torch.get_num_threads() < 2:
        return rows
    return min(tokens, max(rows, logits // max(vocab, 1)))


def _half_matmuls(device: torch.device) -> bool:
    """Whether float16/bfloat16 matrix products run natively here. On CPU they are computed in
    float32 instead (torch's CPU half products round the logits to the half type before the
    softmax, and are emulated, hence slow, on most CPUs)."""
    return device.type != "cpu"


def _drops_ignored_rows(device: torch.device) -> bool:
    """Whether the rows of ignored targets are dropped before the products (CPU), which saves
    their flops but needs their count on the host; on accelerators that read would
    synchronise every call, so all rows are kept there and the ignored ones masked."""
    return device.type == "cpu"


@dataclass(frozen=True)
class VocabShard:
    """This process's slice ``[start, start + V_local)`` of a vocabulary of ``total`` classes
    split over the ranks of ``group`` (tensor parallelism); see
    :mod:`losskit.distributed.vocab_parallel`."""

    group: Any
    start: int
    total: int

    def all_reduce(self, tensor: Tensor, op: str) -> Tensor:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op), group=self.group)
        return tensor

    def global_lse(self, local_lse: Tensor) -> Tensor:
        """``log sum_r exp(lse_r)`` over the ranks: all-reduce the max, then the sum of exps."""
        top = self.all_reduce(local_lse.clone(), "MAX")
        total = self.all_reduce((local_lse - top).exp_(), "SUM")
        return top + total.log_()


@dataclass(frozen=True)
class _Options:
    ignore_index: int
    label_smoothing: float
    z_loss: float
    softcap: float | None
    reduction: str
    chunk_size: int
    shard: VocabShard | None = None
    #: grad mode at the call (inside forward it is always off, and needs_input_grad ignores it)
    grad_enabled: bool = True
    #: a factor per class applied to the logits right after the product, ``c_j (W h_i + b)_j``;
    #: a constant here: a caller whose ``c`` depends on the weight adds that gradient itself
    column_scale: Tensor | None = None
    #: replaces each row's target logit ``z`` by ``f(z)``: returns ``f(z)`` and ``f'(z)`` (None
    #: for 1), e.g. an angular margin; not combined with a shard
    target_logit: Callable[[Tensor], tuple[Tensor, Tensor | None]] | None = None


@dataclass
class _Rows:
    """The rows that count (targets not ignored), in the dtypes the products run in."""

    hidden: Tensor  # (n, d), matmul dtype
    weight: Tensor  # (V, d), matmul dtype
    bias: Tensor | None  # (V,), compute dtype
    target: Tensor  # (n,), int64
    kept: Tensor | None  # (n,) indices of the counted rows, None when all count
    total: int  # N, rows before dropping the ignored ones
    compute: torch.dtype  # float32 for half inputs
    #: where ignored rows are kept (accelerators): the (N,) mask of the counted rows. Those
    #: rows then have target 0 and zero hidden states (finite logits whatever the padding
    #: holds), a loss masked to 0 and a row scale of 0, so they add nothing to any gradient.
    counted: Tensor | None = None

    @classmethod
    def build(
        cls, input: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, ignore_index: int
    ) -> _Rows:
        compute = compute_dtype(input.dtype)
        matmul = input.dtype if _half_matmuls(input.device) else compute
        counted = target != ignore_index
        if not _drops_ignored_rows(input.device):
            return cls(
                hidden=torch.where(counted[:, None], input, 0).to(matmul).contiguous(),
                weight=weight.to(matmul),
                bias=None if bias is None else bias.to(compute),
                target=torch.where(counted, target, 0),
                kept=None,
                total=target.numel(),
                compute=compute,
                counted=counted,
            )
        # On CPU, dropping the ignored rows before the products saves their flops; finding
        # them reads their count on the host, which costs nothing there.
        kept: Tensor | None = counted.nonzero().squeeze(1)
        if kept.numel() == target.numel():
            kept = None
        hidden = input if kept is None else input.index_select(0, kept)
        labels = target if kept is None else target.index_select(0, kept)
        return cls(
            hidden=hidden.to(matmul).contiguous(),
            weight=weight.to(matmul),
            bias=None if bias is None else bias.to(compute),
            target=labels,
            kept=kept,
            total=target.numel(),
            compute=compute,
        )

    @property
    def count(self) -> int:
        return self.hidden.shape[0]

    def scatter(self, values: Tensor) -> Tensor:
        """``values`` of the counted rows placed in a zero tensor of all ``total`` rows."""
        if self.kept is None:
            return values
        out = values.new_zeros((self.total, *values.shape[1:]))
        return out.index_copy_(0, self.kept, values)


def _sweep(
    rows: _Rows,
    opts: _Options,
    row_scale: Tensor | None,
    need: tuple[bool, bool, bool],
    shard: VocabShard | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """One pass over the counted rows, chunk by chunk.

    Returns the loss of every counted row and, when ``row_scale`` (``(n,)``, the factor
    ``d out / d loss_i``) is given, the gradients with respect to the hidden states of those
    rows, the weight and the bias (those asked for in ``need``), in the compute dtype. With a
    ``shard``, ``weight`` and ``bias`` are this rank's rows of the vocabulary, the log-sum-exp,
    target logit and logit sum are combined over the ranks per chunk, and the hidden states'
    gradient is this rank's share (the caller sums it over the ranks).
    """
    h, w, b, y = rows.hidden, rows.weight, rows.bias, rows.target
    n, d = h.shape
    vocab = w.shape[0]
    classes = vocab if shard is None else shard.total
    ct = rows.compute
    eps, zl, cap = opts.label_smoothing, opts.z_loss, opts.softcap
    column_scale, target_logit = opts.column_scale, opts.target_logit
    assert shard is None or target_logit is None
    need_h, need_w, need_b = need if row_scale is not None else (False, False, False)
    native = h.dtype == ct  # products write the float32 buffer directly
    dev = h.device

    chunk = max(1, min(opts.chunk_size, n))
    buf = torch.empty(chunk, vocab, dtype=ct, device=dev)
    tanh_buf = torch.empty(chunk, vocab, dtype=ct, device=dev) if cap is not None else None
    losses = torch.empty(n, dtype=ct, device=dev)

    # Label smoothing's uniform part, sum_j z_ij, is h_i . sum_j W_j + sum_j b_j for the plain
    # logits (no softcap, column scale or target transform).
    uniform = eps > 0 and cap is None and column_scale is None and target_logit is None
    w_colsum = w.sum(0, dtype=ct) if eps > 0 else None
    b_total = b.sum() if (b is not None and eps > 0) else None

    grad_h = torch.empty(n, d, dtype=ct, device=dev) if need_h else None
    grad_w = grad_b = None
    # grad_w starts as the uniform term, or as the first chunk's product (beta=0: not read)
    grad_w_written = uniform or n == 0
    if need_w:
        grad_w = torch.empty(vocab, d, dtype=ct, device=dev)
        if uniform:
            assert row_scale is not None
            weighted_sum = (h.to(ct) * row_scale[:, None]).sum(0)
            grad_w.copy_((weighted_sum * (-eps / classes)).expand(vocab, d))
        elif n == 0:
            grad_w.zero_()
    if need_b:
        assert row_scale is not None
        fill = (
            -eps / classes * row_scale.sum() if uniform else torch.zeros((), dtype=ct, device=dev)
        )
        grad_b = fill.expand(vocab).clone()

    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        hc, yc = h[start:stop], y[start:stop]
        logits = buf[: stop - start]
        if native:
            if b is None:
                torch.mm(hc, w.t(), out=logits)
            else:
                torch.addmm(b, hc, w.t(), out=logits)
        else:
            product = hc @ w.t()
            logits.copy_(product)
            del product
            if b is not None:
                logits.add_(b)
        if column_scale is not None:
            logits.mul_(column_scale)
        tanh = None
        if cap is not None:
            # z = cap * tanh(x / cap); tanh is kept for the derivative 1 - tanh^2
            assert tanh_buf is not None
            tanh = tanh_buf[: stop - start]
            torch.div(logits, cap, out=tanh).tanh_()
            torch.mul(tanh, cap, out=logits)
        if shard is None:
            column, local = yc[:, None], None
        else:
            # Rows whose target lives on another rank read any local column (the first) for
            # the local log-sum-exp and contribute 0 to the target logit.
            shifted = yc - shard.start
            local = (shifted >= 0) & (shifted < vocab)
            column = torch.where(local, shifted, 0)[:, None]
        column_logit = logits.gather(1, column).squeeze(1)
        slope = None
        if target_logit is not None:
            column_logit, slope = target_logit(column_logit)
            logits.scatter_(1, column, column_logit[:, None])
        if eps > 0:
            logit_sum = (hc.to(ct) @ w_colsum) if uniform else logits.sum(1)
            if b_total is not None and uniform:
                logit_sum = logit_sum + b_total
        torch.log_softmax(logits, 1, out=logits)
        column_logp = logits.gather(1, column).squeeze(1)
        lse = column_logit - column_logp  # exact for any column; this rank's own lse
        rescale = None
        if shard is None:
            ce = -column_logp
        else:
            local_lse = lse
            lse = shard.global_lse(local_lse)
            rescale = (local_lse - lse).exp_()  # local softmax -> global softmax, per row
            sums = [torch.where(local, column_logit, 0)] + ([logit_sum] if eps > 0 else [])
            reduced = shard.all_reduce(torch.stack(sums), "SUM")
            ce = lse - reduced[0]
            if eps > 0:
                logit_sum = reduced[1]
        loss = ce
        if eps > 0:
            # -(1-eps) log p_y - eps/V sum_j log p_j, with sum_j log p_j = sum_j z_j - V lse
            loss = (1 - eps) * ce + eps * lse - (eps / classes) * logit_sum
        if zl > 0:
            loss = loss + zl * lse.square()
        losses[start:stop] = loss

        if row_scale is None:
            continue
        # The gradient of loss_i with respect to its logits z_i is
        #   s_i p_i - (1 - eps) e_{y_i} - eps/V,  s_i = 1 + 2 zl lse_i,
        # times dz/dx = 1 - tanh^2 under softcap, the target transform's slope and the column
        # scale (applied in the reverse order of the forward).
        probs = logits.exp_()
        factor = 1 + 2 * zl * lse if zl > 0 else None
        if rescale is not None:
            factor = rescale if factor is None else factor * rescale
        if factor is not None:
            probs.mul_(factor[:, None])
        hit = torch.full((stop - start, 1), eps - 1, dtype=ct, device=dev)
        if local is not None:
            hit.mul_(local[:, None])
        probs.scatter_add_(1, column, hit)
        scale = row_scale[start:stop]
        if eps > 0 and not uniform:
            probs.sub_(eps / classes)
        if slope is not None:
            probs.scatter_(1, column, probs.gather(1, column).mul_(slope[:, None]))
        if tanh is not None:
            # multiply by tanh^2 - 1 and flip the sign in the per-row scale
            probs.mul_(tanh.square_().sub_(1))
            scale = -scale
        if column_scale is not None:
            probs.mul_(column_scale)
        grad_logits = probs if native else probs.to(h.dtype)
        if need_h:
            assert grad_h is not None
            gh = grad_h[start:stop]
            if native:
                torch.mm(grad_logits, w, out=gh)
            else:
                gh.copy_(grad_logits @ w)
            gh.mul_(scale[:, None])
            if uniform:
                assert w_colsum is not None
                gh.addr_(scale, w_colsum, alpha=-eps / classes)
        if need_w:
            assert grad_w is not None
            scaled_h = hc * scale[:, None].to(hc.dtype)
            if native:
                grad_w.addmm_(grad_logits.t(), scaled_h, beta=1 if grad_w_written else 0)
            elif grad_w_written:
                grad_w.add_(grad_logits.t() @ scaled_h)
            else:
                grad_w.copy_(grad_logits.t() @ scaled_h)
            grad_w_written = True
        if need_b:
            assert grad_b is not None
            grad_b.addmv_(probs.t(), scale)
    return losses, grad_h, grad_w, grad_b


def _row_scale(opts: _Options, rows: _Rows, grad_output: Tensor | None) -> Tensor:
    """``d out / d loss_i`` for every counted row (0 for the masked rows)."""
    n, ct, dev = rows.count, rows.compute, rows.hidden.device
    if opts.reduction == "none":
        assert grad_output is not None
        g = grad_output.reshape(-1).to(ct)
        if rows.counted is not None:
            return torch.where(rows.counted, g, 0.0)
        return g if rows.kept is None else g.index_select(0, rows.kept)
    if rows.counted is not None:
        scale = rows.counted.to(ct)
        if opts.reduction == "mean":
            scale = scale / scale.sum().clamp_min(1.0)
    else:
        per_row = 1.0 / max(n, 1) if opts.reduction == "mean" else 1.0
        scale = torch.full((n,), per_row, dtype=ct, device=dev)
    return scale if grad_output is None else scale * grad_output.to(ct)


def _reduce(opts: _Options, rows: _Rows, losses: Tensor) -> Tensor:
    if rows.counted is not None:
        losses = torch.where(rows.counted, losses, 0.0)
    if opts.reduction == "none":
        return rows.scatter(losses)
    total = losses.sum()
    if opts.reduction == "mean":
        if rows.counted is not None:
            total = total / rows.counted.sum().clamp_min(1)
        elif rows.count > 0:
            total = total / rows.count
    return total


def _second_order(ctx: Any, saved: tuple[Tensor | None, ...]) -> Tensor:
    """The chunks' loss rebuilt by the plain formula, for a graph of the gradient
    (``create_graph=True``, torch.func transforms): exact second derivatives, at the cost of the
    ``(n, V)`` logits that the chunks avoid, paid only by a call that asks for them."""
    opts: _Options = ctx.opts
    if opts.shard is not None:
        # the plain formula of one rank's slice of the vocabulary is not the loss
        raise DoubleBackwardError(
            "vocab_parallel_linear_cross_entropy: double backward (create_graph=True) is not "
            "supported: each rank holds a slice of the vocabulary, so no rank can rebuild the "
            "loss. Use the dense formula where second derivatives are needed."
        )
    hidden, weight, bias, labels = saved
    assert hidden is not None and weight is not None and labels is not None
    options = (
        opts.ignore_index,
        opts.label_smoothing,
        opts.z_loss,
        opts.softcap,
        opts.reduction,
        None,
    )
    return _plain(hidden, weight, bias, labels, options, every=False)


class _LinearCrossEntropy(LossFunction):
    @staticmethod
    def forward(
        ctx: Any,
        input: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        opts: _Options,
    ) -> Tensor:
        need = tuple(ctx.needs_input_grad[:3])
        rows = _Rows.build(input, weight, bias, target, opts.ignore_index)
        early = opts.reduction != "none" and opts.grad_enabled and any(need)
        scale = _row_scale(opts, rows, None) if early else None
        losses, gh, gw, gb = _sweep(rows, opts, scale, need, opts.shard)
        if gh is not None and opts.shard is not None:
            opts.shard.all_reduce(gh, "SUM")
        ctx.opts = opts
        ctx.early = (rows.scatter(gh) if gh is not None else None, gw, gb) if early else None
        ctx.save_for_backward(input, weight, bias, target)
        return _reduce(opts, rows, losses).to(input.dtype)

    @staticmethod
    @differentiable_backward(_second_order)
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        need = tuple(ctx.needs_input_grad[:3])
        input, weight, bias, target = ctx.saved_tensors
        opts: _Options = ctx.opts
        if ctx.early is not None:
            # Gradients computed in forward for grad_output = 1: scale them in place. Dropping
            # them from ctx lets autograd take the tensors over as .grad without a copy.
            grads, ctx.early = ctx.early, None
            gh, gw, gb = scale_early_grads(grads, grad_output, compute_dtype(input.dtype))
        else:
            rows = _Rows.build(input, weight, bias, target, opts.ignore_index)
            scale = _row_scale(opts, rows, grad_output)
            _, gh, gw, gb = _sweep(rows, opts, scale, need, opts.shard)
            if gh is not None and opts.shard is not None:
                opts.shard.all_reduce(gh, "SUM")
            gh = None if gh is None else rows.scatter(gh)
        return (
            None if gh is None or not need[0] else gh.to(input.dtype),
            None if gw is None or not need[1] else gw.to(weight.dtype),
            None if gb is None or not need[2] else gb.to(bias.dtype),
            None,
            None,
        )


def _check_int(loss: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(loss, name, f"is {value!r}", "an int")
    return value


def check_chunk_size(loss: str, chunk_size: object) -> int | None:
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        fail(loss, "chunk_size", f"is {chunk_size!r}", "an int >= 1 or None (automatic)")
    return chunk_size


def check_linear_inputs(
    loss: str, input: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None
) -> None:
    """Shapes, dtypes and devices of ``(input (*, d), weight (V, d), target (*), bias (V,))``."""
    check_floating(loss, "input", input)
    check_floating(loss, "weight", weight)
    check_tensor(loss, "target", target)
    if input.dim() == 0:
        fail(loss, "input", "is a scalar", "(*, d) hidden states")
    if weight.dim() != 2 or weight.shape[1] != input.shape[-1] or weight.shape[0] == 0:
        fail(
            loss,
            "weight",
            f"has shape {shape_str(weight.shape)}",
            f"(V, {input.shape[-1]}) with V >= 1, one row of d={input.shape[-1]} features per "
            f"class for input {shape_str(input.shape)}",
        )
    check_same_dtype(loss, "weight", weight, input, "input")
    check_same_device(loss, "weight", weight, input, "input")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail(loss, "target", f"has dtype {target.dtype}", "integer class indices")
    if target.shape != input.shape[:-1]:
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)}",
            f"{shape_str(input.shape[:-1])}, one class index per row of input "
            f"{shape_str(input.shape)}",
        )
    check_same_device(loss, "target", target, input, "input")
    if bias is not None:
        vocab = weight.shape[0]
        check_floating(loss, "bias", bias)
        if bias.shape != (vocab,):
            fail(loss, "bias", f"has shape {shape_str(bias.shape)}", f"({vocab},), one per class")
        check_same_dtype(loss, "bias", bias, input, "input")
        check_same_device(loss, "bias", bias, input, "input")
    check_finite(loss, "input", input)
    check_finite(loss, "weight", weight)


def check_options(
    loss: str,
    *,
    ignore_index: object,
    label_smoothing: object,
    z_loss: object,
    softcap: object,
    reduction: object,
    chunk_size: object,
) -> tuple[int, float, float, float | None, str, int | None]:
    """The validated options, in that order."""
    ignore = _check_int(loss, "ignore_index", ignore_index)
    eps = LABEL_SMOOTHING.check(loss, label_smoothing)
    zl = Z_LOSS.check(loss, z_loss)
    cap = None if softcap is None else SOFTCAP.check(loss, softcap)
    check_reduction(loss, reduction, REDUCTIONS)
    return ignore, eps, zl, cap, str(reduction), check_chunk_size(loss, chunk_size)


def apply_linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    options: tuple[int, float, float, float | None, str, int | None],
    shard: VocabShard | None = None,
    bounds: tuple[int, int] | None = None,
) -> Tensor:
    """Run the chunked loss on validated arguments (every rank of a shard group gets the same
    automatic chunk size: it depends on the tokens and ``d`` only). ``bounds``: the smallest
    and largest target when the class-index check read them."""
    ignore_index, eps, zl, cap, reduction, chunk_size = options
    d = input.shape[-1]
    # (a reshape that changes nothing still adds a node to the graph: a few us per call)
    hidden = input if input.dim() == 2 else input.reshape(-1, d)
    labels = target if target.dim() == 1 else target.reshape(-1)
    labels = labels if labels.dtype == torch.long else labels.long()
    small = chunk_size is None and hidden.shape[0] * weight.shape[0] <= _PLAIN_MAX
    if shard is None and (small or _transforms_active()):
        # (and under torch.func transforms at every size: they need a graph of the gradient)
        # targets read by the index check that leave out ignore_index: every one counts
        every = bounds is not None and not bounds[0] <= ignore_index <= bounds[1]
        out = _plain(hidden, weight, bias, labels, options, every)
        return out.reshape(target.shape) if reduction == "none" else out
    if chunk_size is None:
        chunk_size = auto_chunk_size(hidden.shape[0], d, weight.shape[0])
        if shard is None:  # (a shard group's ranks need one count, whatever their threads)
            per_thread = PARALLEL_CHUNK_LOGITS_PER_THREAD * torch.get_num_threads()
            chunk_size = parallel_chunk_rows(
                chunk_size, hidden.shape[0], weight.shape[0], hidden, per_thread
            )
    opts = _Options(
        ignore_index, eps, zl, cap, reduction, chunk_size, shard, torch.is_grad_enabled()
    )
    out = _apply_eagerly(hidden, weight, bias, labels, opts)
    return out.reshape(target.shape) if reduction == "none" else out


#: most logits (tokens x classes) for which an automatic chunk size computes the plain formula
#: instead of the chunks, whose fixed work per call (buffers, per-row factors, a dozen small
#: kernels) dominates there. Measured (float32, forward + backward, time / naive formula's,
#: min of 5 blocks, one thread, loaded 2-core machine): (N, d, V) = (64, 8, 512) plain 1.41
#: chunks 2.21; (64, 128, 1000) 1.08 / 1.37; (128, 128, 1000) 1.13 / 1.21; (256, 64, 1000)
#: 1.09 / 0.92; (256, 32, 2048) 1.00 / 0.79; (512, 64, 4096) 1.03 / 0.61.
_PLAIN_MAX = 1 << 17


def _plain(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    labels: Tensor,
    options: tuple[int, float, float, float | None, str, int | None],
    every: bool,
) -> Tensor:
    """The loss through the ``(n, V)`` logits, by autograd: the same value, mean rule, dtypes
    and gradients as the chunks, without a host synchronisation. ``every``: every target
    is known to count (no mask needed, and torch's own mean is the 0-not-NaN rule's value)."""
    ignore_index, eps, zl, cap, reduction, _ = options
    dtype = hidden.dtype
    compute = compute_dtype(dtype)
    counted = None if every else labels != ignore_index
    if counted is not None:
        # ignored rows read as zeros, as the chunks drop or zero them: whatever their
        # padding holds (NaN included), their gradients are 0
        hidden = torch.where(counted[:, None], hidden, 0)
    if compute == dtype:
        logits = F.linear(hidden, weight, bias)
    elif _half_matmuls(hidden.device):
        logits = F.linear(hidden, weight, bias).to(compute)
    else:
        b = None if bias is None else bias.to(compute)
        logits = F.linear(hidden.to(compute), weight.to(compute), b)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    fused = zl == 0 and (reduction == "sum" or (reduction == "mean" and every))
    losses = F.cross_entropy(
        logits,
        labels,
        ignore_index=ignore_index,
        label_smoothing=eps,
        reduction=reduction if fused else "none",
    )
    if zl > 0:
        lse = logits.logsumexp(1)
        losses = losses + zl * (lse if counted is None else torch.where(counted, lse, 0.0)).square()
    if not fused and reduction != "none":
        losses = losses.sum()
        if reduction == "mean":  # 0, not NaN, when no target counts
            count = labels.numel() if counted is None else counted.sum().clamp_min(1)
            losses = losses / count
    return losses if losses.dtype == dtype else losses.to(dtype)


# ---------------------------------------------------------------- the common call, fast
#
# At a head small enough for the plain formula, a call costs a handful of ~1 us kernels, and the
# general path's Python (metadata checks through the shared helpers, the options' bounds, the
# class-index check, the chunk decision) added ~12 us to the naive formula's ~50 us forward and
# backward at (N, d, V) = (32, 4, 256), one thread. The common call: (N, d) float32/float64
# hidden states, a (V, d) weight of that dtype, (N,) int64 targets, all on the CPU, no bias,
# every option at its default, under the default checks, outside torch.compile and autocast,
# at most _PLAIN_MAX logits. It is recognised from the metadata alone, before the autocast
# decorator that only the general path needs; then one read of the smallest class index (on the
# CPU it costs no synchronisation) tells that no target is ignore_index or negative, so no row
# needs masking, and torch's kernel itself refuses an index above the classes. Anything else
# takes the general path, whose checks name the problem.
#
# Measured at (32, 4, 256), forward+backward against F.cross_entropy(h @ W.T, y) (quiet 2-core
# machine, torch 2.13, median of 11-15 interleaved blocks of 2000 calls, each code with the
# reference in its own run): 1 thread (thread_time) general path 1.42x; this call with an
# aminmax read and a pre-hook refusing double backward 1.17-1.20x; with one min read and double
# backward exact (no hook) 1.08x, 2 threads (wall) 1.07x; tested before the decorator, with the
# defaults compared to module constants, 0.99x of that (1.05-1.06x the naive formula at 1 and
# 2 threads). What is left (~3 us of ~52): the metadata tests (~1 us), the read (~1 us, kernel
# and item) and the calls (~0.5 us); calling torch's bindings directly saves ~1.5 us of the
# naive formula's Python (`python benchmarks/linear_ce_small_head.py` times these pieces).

_FLOAT32, _FLOAT64, _INT64 = torch.float32, torch.float64, torch.int64
_is_compiling = torch.compiler.is_compiling
_any_autocast = torch._C._is_any_autocast_enabled
_linear = torch._C._nn.linear
_cross_entropy_kernel = torch._C._nn.cross_entropy_loss
_MEAN = REDUCTION_ENUM["mean"]
_IGNORE, _NO_SMOOTHING, _NO_Z_LOSS = IGNORE_INDEX.default, LABEL_SMOOTHING.default, Z_LOSS.default
_NO_SOFTCAP, _AUTO_CHUNKS = SOFTCAP.default, CHUNK_SIZE.default
_min = torch._C._VariableFunctions.min


def _plain_common_call(input: object, weight: object, target: object) -> Tensor | None:
    """The loss of the common call by the plain formula (see above), or None for any other."""
    if not (
        # first: under torch.compile nothing below is read, so it adds no guard to the graph
        not _is_compiling()
        and isinstance(input, Tensor)
        and isinstance(weight, Tensor)
        and isinstance(target, Tensor)
        and not _transforms_active()  # vmap cannot read the class indices
        and input.is_cpu
        and weight.is_cpu
        and target.is_cpu
        and target.dtype is _INT64
        and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64)
        and weight.dtype is input.dtype
        and len(shape := input.shape) == 2
        and len(vocab_shape := weight.shape) == 2
        and vocab_shape[1] == shape[1]
        and target.shape == (shape[0],)
        and 0 < shape[0] * vocab_shape[0] <= _PLAIN_MAX
        and not _any_autocast()  # (an autocast region takes the general path's casts)
        and not full_checks()
    ):
        return None
    if int(_min(target)) < 0:  # ignore_index (or a bad index): the general path masks or names it
        return None
    # _plain's formula for these options, through the bindings under F.linear/F.cross_entropy
    try:
        return _cross_entropy_kernel(
            _linear(input, weight), target, None, _MEAN, _IGNORE, _NO_SMOOTHING
        )
    except IndexError:  # torch's "Target 300 is out of bounds.": the general path names it
        return None


# The chunk loop's sizes depend on the targets' values, so torch.compile breaks the graph here
# anyway; tracing the Function's forward and backward separately let a recompiled graph (float
# options made symbolic after they changed) pair a new forward with gradients scaled for the old
# options. Run outside the compiled graph, the Function always sees the call's own options.
def _apply_eagerly(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor, opts: _Options
) -> Tensor:
    if torch.compiler.is_compiling():
        return _outside_the_graph()(hidden, weight, bias, labels, opts)
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, opts)


@functools.cache
def _outside_the_graph() -> Callable[..., Tensor]:
    # made on first use: torch.compiler.disable imports torch._dynamo (over a second), which a
    # program that never compiles should not pay for at import
    return torch.compiler.disable(_LinearCrossEntropy.apply)


def linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    ignore_index: int = IGNORE_INDEX.default,
    label_smoothing: float = LABEL_SMOOTHING.default,
    z_loss: float = Z_LOSS.default,
    softcap: float | None = SOFTCAP.default,
    reduction: Reduction = "mean",
    chunk_size: int | None = CHUNK_SIZE.default,
) -> Tensor:
    r"""Cross-entropy of the logits ``input @ weight.T + bias``, computed chunk by chunk without
    ever holding all of them:

    .. math:: z_i = c \tanh\!\big((W h_i + b)/c\big),\qquad
              \ell_i = -(1-\varepsilon)\log\operatorname{softmax}(z_i)_{y_i}
                       - \tfrac{\varepsilon}{V}\textstyle\sum_j \log\operatorname{softmax}(z_i)_j
                       + \lambda \operatorname{lse}(z_i)^2

    where the soft-cap ``c`` (Gemma 2) is applied only when ``softcap`` is given, ``eps`` is
    ``label_smoothing`` and ``lambda`` is ``z_loss`` (PaLM uses ``1e-4``). Without soft-cap and
    z-loss the value is ``F.cross_entropy(F.linear(input, weight, bias), target, ...)``.

    Shapes: ``input`` ``(*, d)`` (e.g. ``(batch, seq, d)`` hidden states), ``weight`` ``(V, d)``
    (e.g. ``lm_head.weight``), ``target`` ``(*)`` integer token ids, ``bias`` ``(V,)``. The
    result is a scalar, or for ``reduction="none"`` the shape of ``target`` with 0 at ignored
    positions. ``"mean"`` averages over the targets that are not ``ignore_index``; if none counts
    it is 0.0 (torch: NaN).

    ``chunk_size`` token rows are processed at a time (default: :func:`auto_chunk_size`, and
    with several CPU threads at least 2**18 logits a thread; with the default, inputs of at
    most ``_PLAIN_MAX`` logits take the plain formula, which is faster there, with the same
    results). On CPU
    ignored targets are dropped before the matrix products; on accelerators their rows are
    masked instead, so the call never synchronises with the host. float16/bfloat16 inputs
    give a result and gradients in that dtype; the softmax and the accumulation of the
    gradients across chunks are float32, and the matrix
    products run in the input dtype on accelerators and in float32 on CPU. The gradients of
    ``"mean"`` and ``"sum"`` are computed during the forward pass (when an argument requires
    grad), so backward costs almost nothing; a second backward through the same graph
    recomputes them. Double backward (``create_graph=True``) is exact: the loss is rebuilt
    through the full logits for it, so that call, and only that call, pays the naive formula's
    memory.

    >>> import torch, losskit.functional as LF
    >>> h, W = torch.randn(6, 8), torch.randn(50, 8)
    >>> y = torch.tensor([3, 7, -100, 49, 0, 1])
    >>> reference = torch.nn.functional.cross_entropy(h @ W.T, y)
    >>> torch.allclose(LF.linear_cross_entropy(h, W, y, chunk_size=4), reference)
    True
    """
    if (
        bias is None
        and ignore_index is _IGNORE
        and label_smoothing is _NO_SMOOTHING
        and z_loss is _NO_Z_LOSS
        and softcap is _NO_SOFTCAP
        and reduction == "mean"
        and chunk_size is _AUTO_CHUNKS
        and (loss := _plain_common_call(input, weight, target)) is not None
    ):
        return loss
    return _linear_cross_entropy(
        input,
        weight,
        target,
        bias,
        ignore_index,
        label_smoothing,
        z_loss,
        softcap,
        reduction,
        chunk_size,
    )


@autocast_lower_precision
def _linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    reduction: Reduction,
    chunk_size: int | None,
) -> Tensor:
    """:func:`linear_cross_entropy`, every check and option (the general path)."""
    check_linear_inputs(_LOSS, input, weight, target, bias)
    options = check_options(
        _LOSS,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    bounds = check_class_indices(_LOSS, target, weight.shape[0], options[0])
    return apply_linear_cross_entropy(input, weight, target, bias, options, bounds=bounds)


# the public function runs the general path under losskit's lower-precision autocast policy
linear_cross_entropy.autocast_policy = _linear_cross_entropy.autocast_policy  # type: ignore[attr-defined]
