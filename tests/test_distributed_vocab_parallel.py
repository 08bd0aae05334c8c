"""Vocab-parallel cross-entropy on 2 gloo CPU processes against the single-process result:
loss on every rank, gradient of each rank's logits / weight rows, full gradient of the input."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import losskit.functional as LF
from losskit.distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy

WORLD = 2
N, D, V = 7, 5, 11  # V = 6 + 5: the slices differ in size
SPLIT = (6, 5)
ALL_OPTIONS = {"label_smoothing": 0.3, "z_loss": 0.01, "ignore": True}
OPTIONS = [
    {"reduction": reduction, **extra}
    for reduction, extra in itertools.product(("mean", "sum", "none"), ({}, ALL_OPTIONS))
] + [{"reduction": "mean", k: v} for k, v in ALL_OPTIONS.items()]


def _inputs(ignore: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(N, D, generator=g, dtype=dtype)
    w = torch.randn(V, D, generator=g, dtype=dtype)
    b = torch.randn(V, generator=g, dtype=dtype)
    y = torch.randint(0, V, (N,), generator=g)
    if ignore:
        y[::3] = -100
    grad_out = torch.randn(N, generator=g, dtype=dtype)
    return h, w, b, y, grad_out


def _backward(out, grad_out):
    (out * grad_out).sum().backward() if out.dim() else out.backward()


def _check_rank(rank: int) -> None:
    start = sum(SPLIT[:rank])
    rows = slice(start, start + SPLIT[rank])
    for opts in OPTIONS:
        kw = {k: v for k, v in opts.items() if k != "ignore"}
        h, w, b, y, grad_out = _inputs(opts.get("ignore", False))
        msg = f"rank {rank} {opts}"

        # single-process result on the full vocabulary
        x_full = (h @ w.T + b).requires_grad_()
        h1, w1, b1 = (t.clone().requires_grad_() for t in (h, w, b))
        expected_plain = LF.linear_cross_entropy(x_full, torch.eye(V, dtype=h.dtype), y, **kw)
        _backward(expected_plain, grad_out)
        expected = LF.linear_cross_entropy(h1, w1, y, bias=b1, chunk_size=3, **kw)
        _backward(expected, grad_out)

        # plain variant: this rank's logits
        x_shard = (h @ w[rows].T + b[rows]).requires_grad_()
        got = vocab_parallel_cross_entropy(x_shard, y, **kw)
        torch.testing.assert_close(got, expected_plain.detach(), msg=msg)
        _backward(got, grad_out)
        torch.testing.assert_close(x_shard.grad, x_full.grad[:, rows], msg=msg)

        # linear variant: this rank's weight rows, chunked, with soft-cap too
        for cap in (None, 2.5) if len(kw) > 1 else (None,):
            h2 = h.clone().requires_grad_()
            w2, b2 = w[rows].clone().requires_grad_(), b[rows].clone().requires_grad_()
            h3, w3, b3 = (t.clone().requires_grad_() for t in (h, w, b))
            ref = LF.linear_cross_entropy(h3, w3, y, bias=b3, softcap=cap, **kw)
            _backward(ref, grad_out)
            got = vocab_parallel_linear_cross_entropy(
                h2, w2, y, bias_shard=b2, softcap=cap, chunk_size=3, **kw
            )
            torch.testing.assert_close(got, ref.detach(), msg=msg)
            _backward(got, grad_out)
            torch.testing.assert_close(h2.grad, h3.grad, msg=msg)
            torch.testing.assert_close(w2.grad, w3.grad[rows], msg=msg)
            torch.testing.assert_close(b2.grad, b3.grad[rows], msg=msg)
        del expected

    # every target ignored: 0 on every rank, backward works
    h, w, _, _, _ = _inputs(False)
    y = torch.full((N,), -100)
    x_shard = (h @ w[rows].T).requires_grad_()
    out = vocab_parallel_cross_entropy(x_shard, y)
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(x_shard.grad, torch.zeros_like(x_shard))

    # float32 and (batch, seq) shapes
    h, w, b, y, _ = _inputs(True, torch.float32)
    h = h[:6].reshape(2, 3, D)
    y = y[:6].reshape(2, 3)
    got = vocab_parallel_linear_cross_entropy(h, w[rows], y, label_smoothing=0.1)
    ref = LF.linear_cross_entropy(h, w, y, label_smoothing=0.1)
    torch.testing.assert_close(got, ref)

    # a class index beyond the global vocabulary (but inside no rank's slice) is refused on
    # every rank under the default checks (CPU), and double backward is refused on every rank
    from losskit import LossInputError
    from losskit._autograd import DoubleBackwardError

    bad = y.reshape(-1).clone()
    bad[1] = V
    with pytest.raises(LossInputError, match=rf"target has class indices in \[\d+, {V}\]"):
        vocab_parallel_cross_entropy(h.reshape(-1, D) @ w[rows].T, bad)
    with pytest.raises(LossInputError, match=rf"expected indices in \[0, {V - 1}\]"):
        vocab_parallel_linear_cross_entropy(h.reshape(-1, D), w[rows], bad)
    x_shard = (h.reshape(-1, D) @ w[rows].T).requires_grad_()
    out = vocab_parallel_cross_entropy(x_shard, y.reshape(-1))
    with pytest.raises(DoubleBackwardError, match=r"vocab_parallel_cross_entropy: double"):
        torch.autograd.grad(out, x_shard, create_graph=True)
    h2 = h.reshape(-1, D).clone().requires_grad_()
    out = vocab_parallel_linear_cross_entropy(h2, w[rows], y.reshape(-1))
    with pytest.raises(DoubleBackwardError, match=r"^vocab_parallel_linear_cross_entropy: double"):
        torch.autograd.grad(out, h2, create_graph=True)


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
def test_vocab_parallel_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"),), nprocs=WORLD, join=True)


def test_single_process_is_the_plain_loss():
    h, w, b, y, _ = _inputs(True)
    x = h @ w.T + b
    torch.testing.assert_close(
        vocab_parallel_cross_entropy(x, y, label_smoothing=0.2),
        torch.nn.functional.cross_entropy(x, y, label_smoothing=0.2),
    )
    torch.testing.assert_close(
        vocab_parallel_linear_cross_entropy(h, w, y, bias_shard=b, label_smoothing=0.2),
        torch.nn.functional.cross_entropy(x, y, label_smoothing=0.2),
    )


def test_errors_name_the_function():
    from losskit import LossInputError

    with pytest.raises(LossInputError, match=r"vocab_parallel_cross_entropy: target has shape"):
        vocab_parallel_cross_entropy(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(LossInputError, match=r"vocab_parallel_linear_cross_entropy: weight has"):
        vocab_parallel_linear_cross_entropy(
            torch.randn(4, 3), torch.randn(5, 2), torch.zeros(4, dtype=torch.long)
        )
