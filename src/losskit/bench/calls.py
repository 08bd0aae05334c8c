"""What one benchmark case calls: losskit's implementation and the references of a catalog
entry, on the entry's benchmark inputs, forward and backward. Shared by the timing harness and
the memory meter's child processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from losskit._catalog import LossSpec, SampleInput
from losskit._checks import LossInputError

#: the name losskit's own implementation goes by in the results
OURS = "losskit"

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def implementations(spec: LossSpec) -> dict[str, Callable[..., Any]]:
    """losskit's functional first, then the references, by name."""
    refs = spec.benchmark_references()
    if OURS in refs:
        raise LossInputError(f"catalog: {spec.name} has a reference named {OURS!r}; rename it")
    return {OURS: spec.functional, **refs}


def bench_sample(
    spec: LossSpec, impl: str, size: int, dtype: torch.dtype, device: torch.device
) -> SampleInput:
    """The inputs ``impl`` runs on: the spec's benchmark inputs, passed through the reference's
    ``bench_reference_inputs`` adapter when it has one (outside the timed region)."""
    assert spec.bench_inputs is not None
    sample = spec.bench_inputs(size, dtype, device)
    return adapt_sample(spec, impl, sample)


def adapt_sample(spec: LossSpec, impl: str, sample: SampleInput) -> SampleInput:
    adapters = spec.bench_reference_inputs or {}
    adapt = adapters.get(impl) if impl != OURS else None
    return sample if adapt is None else adapt(sample)


class Call:
    """One forward+backward of ``fn`` on a sample: ``call()`` runs it, gradients are dropped
    first (as ``zero_grad(set_to_none=True)`` does), so every run allocates them afresh."""

    def __init__(self, fn: Callable[..., Any], sample: SampleInput) -> None:
        args = list(sample.args)
        self.leaves: list[Tensor] = []
        for i in sample.grad_args:
            arg = args[i]
            if not isinstance(arg, Tensor) or not (arg.is_floating_point() or arg.is_complex()):
                raise LossInputError(
                    f"bench: argument {i} of {sample!r} is listed in grad_args; expected a "
                    "floating-point tensor"
                )
            args[i] = arg.detach().requires_grad_(True)
            self.leaves.append(args[i])
        self.fn, self.args, self.kwargs = fn, tuple(args), dict(sample.kwargs)

    def clear(self) -> None:
        for leaf in self.leaves:
            leaf.grad = None

    def __call__(self) -> None:
        for leaf in self.leaves:
            leaf.grad = None
        out = self.fn(*self.args, **self.kwargs)
        if self.leaves:
            (out if out.dim() == 0 else out.sum()).backward()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"not installed: {exc.name} (pip install 'losskit[bench]')"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
