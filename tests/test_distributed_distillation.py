"""Vocab-parallel distillation on 2 gloo CPU processes against the single-process losses: the
loss on every rank, the gradient of each rank's student weight and bias rows (or logits), the
full gradient of the student's hidden states, for every divergence, beta at 0, 0.5 and 1, a
temperature, the hard-label and z-loss terms, soft-capping, ignored targets and every
reduction, with slices of different sizes."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import losskit.functional as LF
from losskit.distributed import (
    vocab_parallel_distillation_loss,
    vocab_parallel_linear_distillation_loss,
)

WORLD = 2
N, D, DT, V = 7, 5, 3, 11  # V = 6 + 5: the slices differ in size
SPLIT = (6, 5)
DIVERGENCES = [("forward_kl", 0.5), ("reverse_kl", 0.5)] + [("jsd", b) for b in (0.0, 0.5, 1.0)]
EXTRAS = [
    {},
    {"temperature": 2.0, "hard_weight": 0.4, "z_loss": 0.01, "ignore": True},
    {"hard_weight": 0.7, "softcap": 2.5, "ignore": True},
    {"temperature": 0.7, "z_loss": 0.02, "softcap": 3.0},
]
OPTIONS = [
    {"divergence": div, "beta": beta, "reduction": reduction, **extra}
    for (div, beta), reduction, extra in itertools.product(
        DIVERGENCES, ("mean", "sum", "none"), EXTRAS
    )
]


def _inputs(ignore: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    h = torch.randn(N, D, generator=g, dtype=dtype)
    w = torch.randn(V, D, generator=g, dtype=dtype)
    b = torch.randn(V, generator=g, dtype=dtype)
    th = torch.randn(N, DT, generator=g, dtype=dtype)
    tw = torch.randn(V, DT, generator=g, dtype=dtype) * 1.5
    tb = torch.randn(V, generator=g, dtype=dtype)
    y = torch.randint(0, V, (N,), generator=g)
    if ignore:
        y[::3] = -100
    grad_out = torch.randn(N, generator=g, dtype=dtype)
    return h, w, b, th, tw, tb, y, grad_out


def _backward(out, grad_out):
    (out * grad_out).sum().backward() if out.dim() else out.backward()


def _leaf(t):
    return t.detach().clone().requires_grad_()


def _check_rank(rank: int) -> None:
    start = sum(SPLIT[:rank])
    rows = slice(start, start + SPLIT[rank])
    for opts in OPTIONS:
        kw = {k: v for k, v in opts.items() if k != "ignore"}
        h, w, b, th, tw, tb, y, grad_out = _inputs(opts.get("ignore", False))
        msg = f"rank {rank} {opts}"

        # linear variant: this rank's rows of both heads, chunks of 3 tokens
        h1, w1, b1 = _leaf(h), _leaf(w), _leaf(b)
        ref = LF.linear_distillation_loss(
            h1, w1, th, tw, y, student_bias=b1, teacher_bias=tb, chunk_size=3, **kw
        )
        _backward(ref, grad_out)
        h2, w2, b2 = _leaf(h), _leaf(w[rows]), _leaf(b[rows])
        tw2 = _leaf(tw[rows])  # requires grad, gets none
        got = vocab_parallel_linear_distillation_loss(
            h2, w2, th, tw2, y, student_bias_shard=b2, teacher_bias_shard=tb[rows], chunk_size=3,
            **kw,
        )  # fmt: skip
        torch.testing.assert_close(got, ref.detach(), msg=msg)
        _backward(got, grad_out)
        torch.testing.assert_close(h2.grad, h1.grad, msg=msg)
        torch.testing.assert_close(w2.grad, w1.grad[rows], msg=msg)
        torch.testing.assert_close(b2.grad, b1.grad[rows], msg=msg)
        assert tw2.grad is None, msg

        # logits variant: this rank's classes of both sets of logits
        s_full = _leaf(h @ w.T + b)
        t_full = th @ tw.T + tb
        ref = LF.distillation_loss(s_full, t_full, y, chunk_size=2, **kw)
        _backward(ref, grad_out)
        s_shard = _leaf((h @ w.T + b)[:, rows])
        got = vocab_parallel_distillation_loss(s_shard, t_full[:, rows], y, chunk_size=2, **kw)
        torch.testing.assert_close(got, ref.detach(), msg=msg)
        _backward(got, grad_out)
        torch.testing.assert_close(s_shard.grad, s_full.grad[:, rows], msg=msg)

    # no target, default chunks (the same number of chunks on both ranks), float32, (B, S, d)
    h, w, _, th, tw, _, _, _ = _inputs(False, torch.float32)
    h3, th3 = h[:6].reshape(2, 3, D), th[:6].reshape(2, 3, DT)
    got = vocab_parallel_linear_distillation_loss(h3, w[rows], th3, tw[rows], divergence="jsd")
    torch.testing.assert_close(got, LF.linear_distillation_loss(h3, w, th3, tw, divergence="jsd"))
    s, t = h3 @ w.T, th3 @ tw.T
    got = vocab_parallel_distillation_loss(s[..., rows], t[..., rows], temperature=1.5)
    torch.testing.assert_close(got, LF.distillation_loss(s, t, temperature=1.5))

    # every target ignored: 0 on every rank, backward works and gives zeros
    y = torch.full((N,), -100)
    w4 = _leaf(w[rows])
    out = vocab_parallel_linear_distillation_loss(h, w4, th, tw[rows], y, hard_weight=0.5)
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(w4.grad, torch.zeros_like(w4))

    # a class index beyond the global vocabulary is refused on every rank (CPU, fast checks);
    # double backward is refused on every rank
    from losskit import DoubleBackwardError, LossInputError

    bad = torch.zeros(N, dtype=torch.long)
    bad[1] = V
    with pytest.raises(LossInputError, match=rf"expected indices in \[0, {V - 1}\]"):
        vocab_parallel_linear_distillation_loss(h, w[rows], th, tw[rows], bad)
    with pytest.raises(LossInputError, match=rf"expected indices in \[0, {V - 1}\]"):
        vocab_parallel_distillation_loss(
            s.reshape(6, V)[:, rows], t.reshape(6, V)[:, rows], bad[:6]
        )
    w5 = _leaf(w[rows])
    out = vocab_parallel_linear_distillation_loss(h, w5, th, tw[rows])
    with pytest.raises(DoubleBackwardError, match=r"linear_distillation_loss: double"):
        torch.autograd.grad(out, w5, create_graph=True)


def _worker(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        _check_rank(rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_vocab_parallel_distillation_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"),), nprocs=WORLD, join=True)


def test_single_process_is_the_plain_loss():
    h, w, b, th, tw, tb, y, _ = _inputs(True)
    kw = {"divergence": "jsd", "beta": 0.3, "temperature": 2.0, "hard_weight": 0.5}
    torch.testing.assert_close(
        vocab_parallel_linear_distillation_loss(
            h, w, th, tw, y, student_bias_shard=b, teacher_bias_shard=tb, **kw
        ),
        LF.linear_distillation_loss(h, w, th, tw, y, student_bias=b, teacher_bias=tb, **kw),
    )
    s, t = h @ w.T + b, th @ tw.T + tb
    torch.testing.assert_close(
        vocab_parallel_distillation_loss(s, t, y, **kw), LF.distillation_loss(s, t, y, **kw)
    )


def test_errors_name_the_function_and_the_shard():
    from losskit import LossInputError

    h, w, _, th, tw, _, y, _ = _inputs(False)
    with pytest.raises(
        LossInputError,
        match=r"vocab_parallel_linear_distillation_loss: teacher_weight_shard has shape \(10, 3\)",
    ):
        vocab_parallel_linear_distillation_loss(h, w, th, tw[:10], y)
    with pytest.raises(
        LossInputError, match=r"vocab_parallel_distillation_loss: teacher_logits_shard has shape"
    ):
        vocab_parallel_distillation_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(LossInputError, match=r"vocab_parallel_distillation_loss: divergence is"):
        vocab_parallel_distillation_loss(torch.randn(4, 3), torch.randn(4, 3), divergence="kl")
