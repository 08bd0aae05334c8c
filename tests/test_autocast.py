"""Every catalog entry under ``torch.autocast`` (CPU bfloat16 here; CUDA float16 where a GPU is
present): finite forward and backward, float32 results, and agreement with float32.

The stated tolerances:

* ``float32`` policy (every loss but linear cross-entropy): the loss adds no error of its own.
  float32 inputs give exactly the float32 result and gradients; model outputs in the autocast dtype
  give exactly the float32 computation on those (rounded) values, and gradients equal to the
  float32 gradients rounded once to that dtype.
* ``lower_precision_matmul`` (linear cross-entropy): hidden states and weight are rounded to the
  autocast dtype for the matrix product, as ``nn.Linear`` under autocast rounds them; loss and
  gradients are within ``LOWER_TOL`` (relative to the largest magnitude) of float32.
* A backward pass run *inside* the autocast region (torch advises against it) runs the backward
  matrix products in the autocast dtype; its gradients are within ``LOWER_TOL`` of float32.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import losskit
from catalog_helpers import catalog_params, map_tensors, with_grad
from losskit import SampleInput

ALL = catalog_params()

#: relative error allowed where values pass through the autocast dtype (8 significand bits for
#: bfloat16, 11 for float16): a few roundings of 2**-8 each, accumulated over short sums
LOWER_TOL = 2e-2

DEVICES = [pytest.param("cpu", torch.bfloat16, id="cpu-bf16")]
if torch.cuda.is_available():
    DEVICES.append(pytest.param("cuda", torch.float16, id="cuda-f16"))


def _samples(name: str, device: str) -> list[SampleInput]:
    return list(losskit.catalog[name].sample_inputs(torch.float32, torch.device(device)))


def _forward(spec, sample, args, device, dtype, *, backward_inside=False):
    """The loss of ``args`` computed inside autocast; ``.backward()`` inside or after it."""
    with torch.autocast(device, dtype=dtype):
        out = spec.functional(*args, **sample.kwargs)
        if backward_inside and out.requires_grad:
            out.sum().backward()
    if not backward_inside and out.requires_grad:
        out.sum().backward()
    return out


def _eager(spec, sample, args):
    out = spec.functional(*args, **sample.kwargs)
    if out.requires_grad:
        out.sum().backward()
    return out


def _grads(leaves: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(x) if x.grad is None else x.grad for x in leaves]


def _assert_near(actual: Tensor, expected: Tensor, tol: float, what: str) -> None:
    """``actual`` within ``tol`` of ``expected``, relative to the largest magnitude (>= 1)."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.to(expected.dtype), expected, rtol=0, atol=tol * scale, msg=lambda m: f"{what}: {m}"
    )


def _assert_finite(out: Tensor, leaves: list[Tensor], what: str) -> None:
    assert torch.isfinite(out).all(), what
    for leaf in leaves:
        assert leaf.grad is None or torch.isfinite(leaf.grad).all(), what


@pytest.mark.parametrize("name", ALL)
def test_catalog_autocast_status_is_the_code(name):
    """The catalog's ``autocast`` field is the policy the functional actually applies."""
    spec = losskit.catalog[name]
    assert getattr(spec.functional, "autocast_policy", None) == spec.autocast, (
        f"{name}: decorate {spec.functional.__name__} with the losskit._autocast decorator of "
        f"policy {spec.autocast!r}"
    )


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("device", "dtype"), DEVICES)
def test_float32_inputs_under_autocast(name, device, dtype):
    """float32 inputs inside autocast: float32 result, finite, equal (or within LOWER_TOL) to
    eager float32 in value and gradient, with backward after and inside the region."""
    spec = losskit.catalog[name]
    exact = spec.autocast == "float32"
    for sample in _samples(name, device):
        args, leaves = with_grad(sample)
        out = _forward(spec, sample, args, device, dtype)
        assert out.dtype == torch.float32, sample
        _assert_finite(out, leaves, f"{sample}")
        ref_args, ref_leaves = with_grad(sample)
        ref = _eager(spec, sample, ref_args)
        if "extreme" in sample.tags:
            continue
        got, want = [out, *_grads(leaves)], [ref, *_grads(ref_leaves)]
        for a, e in zip(got, want, strict=True):
            if exact:
                torch.testing.assert_close(
                    a, e, rtol=0, atol=0, msg=lambda m, s=sample: f"{s}: {m}"
                )
            else:
                _assert_near(a, e, LOWER_TOL, f"{sample}")

        inside_args, inside_leaves = with_grad(sample)
        inside = _forward(spec, sample, inside_args, device, dtype, backward_inside=True)
        _assert_finite(inside, inside_leaves, f"{sample} (backward inside autocast)")
        for a, e in zip(_grads(inside_leaves), want[1:], strict=True):
            _assert_near(a, e, LOWER_TOL, f"{sample} (backward inside autocast)")


def _as_model_outputs(sample: SampleInput, dtype: torch.dtype) -> tuple[tuple, list[Tensor]]:
    """The sample as an autocast model would hand it over: its differentiable arguments (the
    model's outputs) in the autocast dtype, targets and options as they are."""
    args = list(map_tensors(sample.args, lambda t: t.detach().clone()))
    leaves = []
    for i in sample.grad_args:
        args[i] = args[i].to(dtype).requires_grad_(True)
        leaves.append(args[i])
    return tuple(args), leaves


def _rounded(sample: SampleInput, dtype: torch.dtype) -> tuple[tuple, list[Tensor]]:
    """The sample in float32, its differentiable arguments holding values rounded to ``dtype``."""
    args = list(map_tensors(sample.args, lambda t: t.detach().clone()))
    leaves = []
    for i in sample.grad_args:
        args[i] = args[i].to(dtype).float().requires_grad_(True)
        leaves.append(args[i])
    return tuple(args), leaves


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("device", "dtype"), DEVICES)
def test_model_outputs_in_autocast_dtype(name, device, dtype):
    """The common case: the model's outputs come out of autocast in its dtype while targets and
    class weights stay float32. The loss accepts the mix (losskit's same-dtype rule is for
    explicit dtypes, not autocast's), returns float32, and adds no error beyond the rounding of
    the outputs; gradients reach the outputs in their own dtype."""
    spec = losskit.catalog[name]
    for sample in _samples(name, device):
        args, leaves = _as_model_outputs(sample, dtype)
        out = _forward(spec, sample, args, device, dtype)
        assert out.dtype == torch.float32, sample
        _assert_finite(out, leaves, f"{sample}")
        for leaf in leaves:
            assert leaf.grad is None or leaf.grad.dtype == dtype, sample
        if "extreme" in sample.tags:
            continue
        if spec.autocast == "float32":
            ref_args, ref_leaves = _rounded(sample, dtype)
            ref = _eager(spec, sample, ref_args)
            torch.testing.assert_close(
                out, ref, rtol=0, atol=0, msg=lambda m, s=sample: f"{s}: {m}"
            )
            for a, e in zip(_grads(leaves), _grads(ref_leaves), strict=True):
                torch.testing.assert_close(a, e.to(dtype), rtol=0, atol=0)
        else:
            ref_args, ref_leaves = with_grad(sample)
            ref = _eager(spec, sample, ref_args)
            _assert_near(out, ref, LOWER_TOL, f"{sample}")
            for a, e in zip(_grads(leaves), _grads(ref_leaves), strict=True):
                _assert_near(a, e, LOWER_TOL, f"{sample} gradient")


@pytest.mark.parametrize(("device", "dtype"), DEVICES)
def test_modules_under_autocast(device, dtype):
    """Modules go through the same policy: a module built from each entry's defaults accepts the
    model outputs of the first sample that its defaults fit, and so does the learnable
    :class:`losskit.AdaptiveRobustLoss`, whose float32 parameters meet a bfloat16 input."""
    for name, spec in losskit.catalog.items():
        module = spec.module(**spec.defaults())
        sample = next(s for s in _samples(name, device) if not s.kwargs)
        args, _ = _as_model_outputs(sample, dtype)
        with torch.autocast(device, dtype=dtype):
            out = module(*args)
        assert out.dtype == torch.float32 and torch.isfinite(out).all(), name

    loss_fn = losskit.AdaptiveRobustLoss(num_dims=3).to(device)
    prediction = torch.randn(8, 3, device=device, dtype=dtype, requires_grad=True)
    with torch.autocast(device, dtype=dtype):
        loss = loss_fn(prediction, torch.randn(8, 3, device=device))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in loss_fn.parameters())
