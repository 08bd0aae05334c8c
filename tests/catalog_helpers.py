"""Helpers shared by the tests that iterate the catalog (a plain module, not conftest.py, so that
its name cannot collide with another directory's conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

import losskit
from losskit import LossSpec, SampleInput

REDUCTIONS = ("mean", "sum", "none")


def map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor in a (nested) tuple/list/dict."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(map_tensors(o, fn) for o in obj)
    if isinstance(obj, list):
        return [map_tensors(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    return obj


def float_to(dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
    return lambda t: t.to(dtype) if t.is_floating_point() else t


def noncontiguous(t: Tensor) -> Tensor:
    """The same values in a strided (non-contiguous) view."""
    if t.dim() == 0 or t.numel() == 0:
        return t.clone()
    holder = torch.empty(*t.shape, 2, dtype=t.dtype, device=t.device)
    holder[..., 1] = t
    view = holder[..., 1]
    assert not view.is_contiguous() or t.numel() == 1
    return view


def with_grad(sample: SampleInput) -> tuple[tuple[Any, ...], list[Tensor]]:
    """A copy of the sample's args whose ``grad_args`` require grad; returns (args, leaves)."""
    args = list(map_tensors(sample.args, lambda t: t.detach().clone()))
    leaves = []
    for i in sample.grad_args:
        args[i] = args[i].requires_grad_(True)
        leaves.append(args[i])
    return tuple(args), leaves


def call(spec: LossSpec, sample: SampleInput, reduction: str | None = None, args=None) -> Tensor:
    kwargs = dict(sample.kwargs)
    if reduction is not None:
        kwargs["reduction"] = reduction
    return spec.functional(*(sample.args if args is None else args), **kwargs)


def catalog_params(predicate: Callable[[LossSpec], bool] = lambda s: True) -> list:
    return [pytest.param(name, id=name) for name, s in losskit.catalog.items() if predicate(s)]


def samples(spec: LossSpec, dtype: torch.dtype = torch.float64) -> list[SampleInput]:
    return list(spec.sample_inputs(dtype, torch.device("cpu")))


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {
        torch.float64: {"rtol": 1e-7, "atol": 1e-9},
        torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    }[dtype]
