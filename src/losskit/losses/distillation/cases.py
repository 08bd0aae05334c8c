"""Fixtures of the distillation entries: the dense formulas (float64 references), sample, error
and benchmark inputs. Loaded on demand by the tests, the benchmark harness and ``losskit
tour``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker

#: tokens, student and teacher features, classes (V differs from N: the fuzz tests resample
#: every tensor whose first dimension is the batch's)
_N, _D, _DT, _V = 7, 4, 5, 9


def _kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``sum_j p_j (log p_j - log q_j)`` over the last dimension, 0 where ``p_j = 0``."""
    p = log_p.exp()
    terms = p * (log_p - log_q)
    return torch.where(p == 0, 0.0, terms).sum(-1)


def divergence_reference(
    log_p: Tensor, log_q: Tensor, divergence: str = "forward_kl", beta: float = 0.5
) -> Tensor:
    """The divergence of the teacher's ``log p`` and the student's ``log q`` per row, as the
    definitions read (Liger-Kernel's and TRL's: jsd at beta 0 is KL(p || q), at 1 KL(q || p))."""
    if divergence == "forward_kl" or (divergence == "jsd" and beta == 0):
        return _kl(log_p, log_q)
    if divergence == "reverse_kl" or (divergence == "jsd" and beta == 1):
        return _kl(log_q, log_p)
    if divergence != "jsd":
        raise ValueError(f"unknown divergence {divergence!r}")
    log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
    return beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)


def distillation_reference(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None = None,
    *,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    hard_weight: float = 0.0,
    ignore_index: int = -100,
    z_loss: float = 0.0,
    softcap: float | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    """The dense formula in float64: both sets of logits whole, ``log_softmax`` at the
    temperature, the divergence per token times ``T^2``, plus the student's cross-entropy and
    z-loss at temperature 1, ignored tokens masked, losskit's mean rule (0 over no token)."""
    del chunk_size
    if student_logits.shape != teacher_logits.shape or student_logits.dim() == 0:
        raise ValueError("student and teacher logits differ in shape")
    rows = student_logits.shape[:-1]
    if target is not None and target.shape != rows:
        raise ValueError("target does not have one index per row")
    vocab = student_logits.shape[-1]
    s = student_logits.double().reshape(-1, vocab)
    t = teacher_logits.double().reshape(-1, vocab)
    if softcap is not None:
        s, t = softcap * torch.tanh(s / softcap), softcap * torch.tanh(t / softcap)
    log_q = torch.log_softmax(s / temperature, -1)
    log_p = torch.log_softmax(t / temperature, -1)
    losses = temperature**2 * divergence_reference(log_p, log_q, divergence, beta)
    labels = None if target is None else target.reshape(-1)
    if hard_weight:
        assert labels is not None, "hard_weight needs a target"
        ce = F.cross_entropy(s, labels, ignore_index=ignore_index, reduction="none")
        losses = losses + hard_weight * ce
    if z_loss:
        losses = losses + z_loss * s.logsumexp(-1).square()
    counted = (
        torch.ones_like(losses, dtype=torch.bool) if labels is None else labels != ignore_index
    )
    losses = torch.where(counted, losses, 0.0)
    if reduction == "none":
        out = losses.reshape(rows)
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses.sum() / counted.sum().clamp(min=1)
    return out.to(student_logits.dtype)


def linear_distillation_reference(
    student_hidden: Tensor,
    student_weight: Tensor,
    teacher_hidden: Tensor,
    teacher_weight: Tensor,
    target: Tensor | None = None,
    *,
    student_bias: Tensor | None = None,
    teacher_bias: Tensor | None = None,
    **options: object,
) -> Tensor:
    """The dense path: both heads' whole logits, then :func:`distillation_reference`."""
    s = F.linear(student_hidden.double(), student_weight.double(), _double(student_bias))
    t = F.linear(teacher_hidden.double(), teacher_weight.double(), _double(teacher_bias))
    return distillation_reference(s, t.detach(), target, **options).to(student_hidden.dtype)  # type: ignore[arg-type]


def _double(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.double()


def dense_distillation(
    student_hidden: Tensor,
    student_weight: Tensor,
    teacher_hidden: Tensor,
    teacher_weight: Tensor,
    target: Tensor | None = None,
    **_: object,
) -> Tensor:
    """What a training loop does without a fused loss: both heads' ``(N, V)`` logits (the
    teacher's under ``no_grad``), ``log_softmax`` and ``F.kl_div`` (forward KL per token)."""
    with torch.no_grad():
        teacher = torch.log_softmax(teacher_hidden @ teacher_weight.T, -1)
    student = torch.log_softmax(student_hidden @ student_weight.T, -1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


# --------------------------------------------------------------------------- samples


def _linear_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=20)

    def case(desc: str, *, ignored: bool = False, n: int = _N, **kwargs: object) -> SampleInput:
        target = make.randint(_V, (n,))
        if ignored:
            target[::3] = kwargs.get("ignore_index", -100)  # type: ignore[call-overload]
        args = (
            make.randn(n, _D),
            make.randn(_V, _D, scale=0.7),
            make.randn(n, _DT),
            make.randn(_V, _DT, scale=0.8),
            target,
        )
        return SampleInput(args, kwargs, desc, grad_args=(0, 1))

    yield case("forward KL, one chunk")
    yield case("forward KL, chunks of 3 rows (7 tokens)", chunk_size=3)
    yield case("reverse KL, every third target ignored", divergence="reverse_kl", ignored=True)
    yield case("jsd beta 0.5, chunks of 2", divergence="jsd", chunk_size=2)
    yield case("jsd beta 0.2, T=2", divergence="jsd", beta=0.2, temperature=2.0, chunk_size=3)
    yield case("jsd beta 0 (forward KL)", divergence="jsd", beta=0.0, chunk_size=4)
    yield case("jsd beta 1 (reverse KL)", divergence="jsd", beta=1.0, chunk_size=4)
    yield case("temperature 3", temperature=3.0, chunk_size=4)
    yield case("biases", student_bias=make.randn(_V), teacher_bias=make.randn(_V), chunk_size=3)
    yield case("hard_weight 0.5, T=2", hard_weight=0.5, temperature=2.0, ignored=True)
    yield case("hard_weight 0.7, T=1, reverse KL", hard_weight=0.7, divergence="reverse_kl")
    yield case("z-loss 0.01, T=1.5", z_loss=0.01, temperature=1.5, chunk_size=3)
    yield case("soft-cap 2", softcap=2.0, divergence="jsd", chunk_size=3)
    yield case("ignore_index=4", ignored=True, ignore_index=4, chunk_size=3)
    yield case(
        "every option at once",
        ignored=True,
        divergence="jsd",
        beta=0.3,
        temperature=2.0,
        hard_weight=0.4,
        z_loss=0.02,
        softcap=3.0,
        student_bias=make.randn(_V),
        teacher_bias=make.randn(_V),
        chunk_size=2,
    )
    yield SampleInput(
        (
            make.randn(2, 3, _D),
            make.randn(_V, _D),
            make.randn(2, 3, _DT),
            make.randn(_V, _DT),
            make.randint(_V, (2, 3)),
        ),
        {"chunk_size": 4, "divergence": "reverse_kl"},
        "(batch, seq, d) hidden states",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (
            make.randn(4, _D),
            make.randn(_V, _D),
            make.randn(4, _DT),
            make.randn(_V, _DT),
            torch.full((4,), -100, device=device),
        ),
        {"chunk_size": 3},
        "every target ignored",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (
            make.randn(0, _D),
            make.randn(_V, _D),
            make.randn(0, _DT),
            make.randn(_V, _DT),
            torch.zeros(0, dtype=torch.long, device=device),
        ),
        {},
        "no tokens",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (
            make.randn(6, _D, scale=3e3),
            make.randn(_V, _D),
            make.randn(6, _DT, scale=3e3),
            make.randn(_V, _DT),
            make.randint(_V, (6,)),
        ),
        {"chunk_size": 4, "divergence": "jsd", "hard_weight": 0.5},
        "logits of about +-1e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _logits_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=21)

    def case(desc: str, *, ignored: bool = False, n: int = _N, **kwargs: object) -> SampleInput:
        target = make.randint(_V, (n,))
        if ignored:
            target[1::3] = kwargs.get("ignore_index", -100)  # type: ignore[call-overload]
        args = (make.randn(n, _V, scale=1.5), make.randn(n, _V, scale=2.0), target)
        return SampleInput(args, kwargs, desc, grad_args=(0,))

    yield case("forward KL")
    yield case("forward KL, chunks of 3 rows, ignored targets", chunk_size=3, ignored=True)
    yield case("reverse KL, T=2", divergence="reverse_kl", temperature=2.0, chunk_size=2)
    yield case("jsd beta 0.5", divergence="jsd")
    yield case("jsd beta 0.8, T=3", divergence="jsd", beta=0.8, temperature=3.0, chunk_size=4)
    yield case("jsd beta 0", divergence="jsd", beta=0.0)
    yield case("jsd beta 1", divergence="jsd", beta=1.0, chunk_size=5)
    yield case("hard_weight 0.5, T=2, z-loss", hard_weight=0.5, temperature=2.0, z_loss=0.01)
    yield case("soft-cap 2.5, ignore_index=2", softcap=2.5, ignored=True, ignore_index=2)
    yield SampleInput(
        (make.randn(2, 3, _V), make.randn(2, 3, _V), make.randint(_V, (2, 3))),
        {"divergence": "jsd", "chunk_size": 4},
        "(batch, seq, V) logits",
        grad_args=(0,),
    )
    yield SampleInput(
        (make.randn(3, _V), make.randn(3, _V), torch.full((3,), -100, device=device)),
        {},
        "every target ignored",
        grad_args=(0,),
    )
    yield SampleInput(
        (make.randn(5, _V, scale=1e4), make.randn(5, _V, scale=1e4), make.randint(_V, (5,))),
        {"divergence": "jsd", "hard_weight": 0.3, "chunk_size": 2},
        "logits of about +-1e4",
        grad_args=(0,),
        tags=frozenset({"extreme"}),
    )


# --------------------------------------------------------------------------- errors


def _linear_errors() -> Iterator[ErrorInput]:
    loss = "linear_distillation_loss"
    make = TensorMaker(torch.float32, "cpu")
    h, w, th, tw = make.randn(6, 4), make.randn(10, 4), make.randn(6, 5), make.randn(10, 5)
    y = make.randint(10, (6,))

    def bad(args: tuple, kwargs: dict | str, checks: str = "fast", match: str = "") -> ErrorInput:
        """A bad call: ``bad(args, match)`` or ``bad(args, kwargs, match=...)``."""
        if isinstance(kwargs, str):
            kwargs, match = {}, kwargs
        return ErrorInput(SampleInput(args, kwargs), match, checks)  # type: ignore[arg-type]

    yield bad(
        (h, make.randn(10, 3), th, tw, y),
        rf"{loss}: student_weight has shape \(10, 3\); expected \(V, 4\) with V >= 1",
    )
    yield bad(
        (h, w, make.randn(5, 5), tw, y),
        rf"{loss}: teacher_hidden has shape \(5, 5\); expected \(6, d_t\), one row per token",
    )
    yield bad(
        (h, w, th, make.randn(11, 5), y),
        rf"{loss}: teacher_weight has shape \(11, 5\); expected \(10, 5\): the student's 10 "
        "classes",
    )
    yield bad(
        (h, w, th.double(), tw, y),
        rf"{loss}: teacher_hidden has dtype torch.float64; expected the dtype of student_hidden",
    )
    yield bad((h, w, th, tw, y.float()), rf"{loss}: target has dtype torch.float32")
    yield bad(
        (h, w, th, tw, make.randint(10, (6, 1))),
        rf"{loss}: target has shape \(6, 1\); expected \(6,\), one class index per row",
    )
    yield bad(
        (h, w, th, tw),
        {"hard_weight": 0.5},
        match=rf"{loss}: target is None; expected class indices \(6,\) for hard_weight=0.5",
    )
    yield bad(
        (h, w, th, tw, y),
        {"divergence": "kl"},
        match=rf"{loss}: divergence is 'kl'; expected 'forward_kl', 'reverse_kl' or 'jsd'",
    )
    yield bad((h, w, th, tw, y), {"beta": 1.5}, match=rf"{loss}: beta is 1.5; expected a number")
    yield bad(
        (h, w, th, tw, y),
        {"temperature": 0.0},
        match=rf"{loss}: temperature is 0.0; expected a number > 0",
    )
    yield bad(
        (h, w, th, tw, y),
        {"student_bias": make.randn(9)},
        match=rf"{loss}: student_bias has shape \(9,\); expected \(10,\), one per class",
    )
    yield bad(
        (h, w, th, tw, y),
        {"reduction": "batchmean"},
        match=rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield bad(
        (h, w, th, tw, y), {"chunk_size": 0}, match=rf"{loss}: chunk_size is 0; expected an int"
    )
    yield bad(
        (h, w, th, tw, torch.tensor([0, 1, 2, 10, 4, 5])),
        rf"{loss}: target has class indices in \[0, 10\]; expected indices in \[0, 9\]",
    )
    yield bad(
        (h, w, th.clone().fill_(float("nan")), tw, y),
        {},
        checks="full",
        match=rf"{loss}: teacher_hidden has 30 non-finite value\(s\)",
    )


def _logits_errors() -> Iterator[ErrorInput]:
    loss = "distillation_loss"
    make = TensorMaker(torch.float32, "cpu")
    s, t, y = make.randn(6, 10), make.randn(6, 10), make.randint(10, (6,))

    def bad(args: tuple, kwargs: dict | str, checks: str = "fast", match: str = "") -> ErrorInput:
        """A bad call: ``bad(args, match)`` or ``bad(args, kwargs, match=...)``."""
        if isinstance(kwargs, str):
            kwargs, match = {}, kwargs
        return ErrorInput(SampleInput(args, kwargs), match, checks)  # type: ignore[arg-type]

    yield bad(
        (s, make.randn(6, 11), y),
        rf"{loss}: teacher_logits has shape \(6, 11\); expected the shape of student_logits",
    )
    yield bad((s, t.double(), y), rf"{loss}: teacher_logits has dtype torch.float64")
    yield bad((s, t, y[:5]), rf"{loss}: target has shape \(5,\); expected \(6,\)")
    yield bad((s, t), {"hard_weight": 1.0}, match=rf"{loss}: target is None; expected class")
    yield bad(
        (s, t, y), {"divergence": "js"}, match=rf"{loss}: divergence is 'js'; expected 'forward_kl'"
    )
    yield bad((s, t, y), {"beta": -0.1}, match=rf"{loss}: beta is -0.1; expected a number >= 0")
    yield bad((s, t, y), {"z_loss": -1.0}, match=rf"{loss}: z_loss is -1.0; expected a number")
    yield bad(
        (s, t, torch.tensor([0, 1, 2, 3, 4, 12])),
        rf"{loss}: target has class indices in \[0, 12\]; expected indices in \[0, 9\]",
    )
    yield bad(
        (s, t.clone().fill_(float("nan")), y),
        {},
        checks="full",
        match=rf"{loss}: teacher_logits has 60 NaN or \+inf value\(s\)",
    )


# --------------------------------------------------------------------------- benchmarks


def _bench_inputs(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` tokens, student and teacher heads of ``d = size / 8`` features and ``V = 8 size``
    classes: 4096 is (N, d, V) = (4096, 512, 32768), the size of the performance goal."""
    make = TensorMaker(dtype, device, seed=size)
    d, vocab = max(size // 8, 1), size * 8
    return SampleInput(
        (
            make.randn(size, d),
            make.randn(vocab, d, scale=d**-0.5),
            make.randn(size, d),
            make.randn(vocab, d, scale=2 * d**-0.5),
        ),
        {},
        f"N={size}, d={d}, V={vocab}",
        grad_args=(0, 1),
    )


CASES: dict[str, LossCases] = {
    "linear_distillation": LossCases(
        reference=linear_distillation_reference,
        sample_inputs=_linear_samples,
        error_inputs=_linear_errors,
        bench_inputs=_bench_inputs,
        bench_references={"dense logits, log_softmax, F.kl_div": dense_distillation},
    ),
    "logit_distillation": LossCases(
        reference=distillation_reference,
        sample_inputs=_logits_samples,
        error_inputs=_logits_errors,
    ),
}
