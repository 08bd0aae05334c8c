"""Second derivatives over the whole catalog (issue 14, defect 1).

Every entry either differentiates twice exactly (``double_backward == "exact"``:
``torch.autograd.gradgradcheck`` passes in float64, and so does the pattern of a gradient penalty
or MAML step, where the loss's incoming gradient is the constant 1 and
``once_differentiable`` used to drop every second-order term silently) or refuses it with a clear
error (``"refused"``: :class:`losskit.DoubleBackwardError`, or torch's own "not implemented" for a
torch kernel without a double backward). Each distinct set of options of an entry's ordinary
(not "extreme") float64 samples is checked once, on its smallest sample.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import losskit
from catalog_helpers import catalog_params, samples, with_grad
from losskit import DoubleBackwardError, LossSpec, SampleInput

ALL = catalog_params()
#: float64 central differences of a gradient: tolerances as gradcheck's
EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3


def _option_key(sample: SampleInput) -> str:
    return repr(
        sorted(
            (k, f"Tensor{tuple(v.shape)}" if isinstance(v, Tensor) else repr(v))
            for k, v in sample.kwargs.items()
        )
    )


def _cases(spec: LossSpec) -> list[SampleInput]:
    """The smallest ordinary sample of each distinct set of options."""
    best: dict[str, SampleInput] = {}
    for s in samples(spec, torch.float64):
        grads = [s.args[i] for i in s.grad_args]
        if "extreme" in s.tags or not all(isinstance(g, Tensor) and g.numel() for g in grads):
            continue
        size = sum(g.numel() for g in grads)
        key = _option_key(s)
        if key not in best or size < sum(best[key].args[i].numel() for i in best[key].grad_args):
            best[key] = s
    assert best, f"{spec.name} has no ordinary float64 sample to differentiate"
    return list(best.values())


def _loss_of(spec: LossSpec, sample: SampleInput) -> tuple[Callable[..., Tensor], list[Tensor]]:
    """The loss as a function of the sample's differentiable arguments, and their values."""
    args, leaves = with_grad(sample)

    def loss(*xs: Tensor) -> Tensor:
        full = list(args)
        for i, x in zip(sample.grad_args, xs, strict=True):
            full[i] = x
        return spec.functional(*full, **sample.kwargs)

    return loss, leaves


def _penalty(loss: Callable[..., Tensor], xs: list[Tensor], create_graph: bool) -> Tensor:
    """``sum |grad (loss + sum x^3)|^2``, the issue's reproducer (a gradient penalty)."""
    total = loss(*xs).sum() + sum((x**3).sum() for x in xs)
    grads = torch.autograd.grad(total, xs, create_graph=create_graph, allow_unused=True)
    return sum(g.square().sum() for g in grads if g is not None)


def _check_penalty_gradient(loss: Callable[..., Tensor], leaves: list[Tensor], sample) -> None:
    """The gradient of the penalty by double backward against central differences of it (each
    difference needs only first derivatives)."""
    xs = [x.detach().clone().requires_grad_(True) for x in leaves]
    analytic = torch.autograd.grad(_penalty(loss, xs, create_graph=True), xs, allow_unused=True)
    for k, x in enumerate(xs):
        numeric = torch.zeros_like(x)
        flat = numeric.view(-1)
        for j in range(x.numel()):
            values = []
            for step in (EPS, -EPS):
                shifted = [y.detach().clone().requires_grad_(True) for y in xs]
                with torch.no_grad():
                    shifted[k].view(-1)[j] += step
                values.append(_penalty(loss, shifted, create_graph=False).detach())
            flat[j] = (values[0] - values[1]) / (2 * EPS)
        got = torch.zeros_like(x) if analytic[k] is None else analytic[k]
        torch.testing.assert_close(
            got,
            numeric,
            atol=ATOL,
            rtol=RTOL,
            msg=lambda m, k=k: f"{sample}: gradient of the gradient penalty, argument {k}: {m}",
        )


@pytest.mark.parametrize("name", ALL)
def test_double_backward_is_exact_or_refused(name):
    spec = losskit.catalog[name]
    assert spec.double_backward in ("exact", "refused"), name
    for sample in _cases(spec):
        loss, leaves = _loss_of(spec, sample)
        if spec.double_backward == "exact":
            assert torch.autograd.gradgradcheck(
                loss, tuple(leaves), eps=EPS, atol=ATOL, rtol=RTOL
            ), sample
            _check_penalty_gradient(loss, leaves, sample)
        else:
            with pytest.raises(RuntimeError) as info:
                _penalty(loss, leaves, create_graph=True).backward()
            error = info.value
            assert isinstance(error, DoubleBackwardError) or "not implemented" in str(error), (
                f"{sample}: {type(error).__name__}: {error}"
            )
            if isinstance(error, DoubleBackwardError):
                assert str(error).startswith(f"{spec.functional.__name__}:"), str(error)


def test_double_backward_error_is_public():
    assert issubclass(losskit.DoubleBackwardError, RuntimeError)
    assert "DoubleBackwardError" in losskit.__all__
