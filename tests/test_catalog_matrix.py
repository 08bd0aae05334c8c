"""The test matrix every catalog entry passes (DESIGN.md section 5): reference parity over every
sample and reduction, reduction consistency, gradcheck in float64, non-contiguous inputs,
extremes, half precision, module/functional agreement, error inputs and worked examples."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import losskit
from catalog_helpers import (
    REDUCTIONS,
    call,
    catalog_params,
    float_to,
    map_tensors,
    noncontiguous,
    samples,
    tolerance,
    with_grad,
)
from losskit import LossInputError

ALL = catalog_params()


def _reductions(spec, sample):
    if "reduction" in sample.kwargs:
        return (None,)
    return getattr(spec.module, "reductions", REDUCTIONS)


def test_catalog_is_complete():
    assert len(losskit.catalog) >= 10
    for name, spec in losskit.catalog.items():
        assert spec.name == name
        assert spec.summary and spec.formula, name
        assert spec.reference is not None and spec.reference_name, name
        assert issubclass(spec.module, losskit.LossModule), name
        assert list(spec.sample_inputs(torch.float32, torch.device("cpu"))), name
        for alias in spec.aliases:
            assert losskit.catalog[alias] is spec
        for p in spec.params:
            if p.low is not None:
                assert p.low <= p.high, (name, p)


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean huber"):
        losskit.catalog["hubber"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_matches_reference(name, dtype):
    spec = losskit.catalog[name]
    for sample in samples(spec, dtype):
        for reduction in _reductions(spec, sample):
            out = call(spec, sample, reduction)
            assert out.dtype == dtype, sample
            if sample.reference:
                expected = call(
                    dataclasses.replace(spec, functional=spec.reference),
                    sample,
                    reduction,
                )
                torch.testing.assert_close(
                    out, expected, **tolerance(dtype), msg=lambda m, s=sample: f"{s}: {m}"
                )
            else:
                assert torch.all(out == 0), (sample, reduction, out)


@pytest.mark.parametrize("name", ALL)
def test_sum_is_sum_of_none(name):
    spec = losskit.catalog[name]
    for sample in samples(spec):
        if "reduction" in sample.kwargs:
            continue
        total = call(spec, sample, "sum")
        per_element = call(spec, sample, "none")
        torch.testing.assert_close(total, per_element.sum(), msg=lambda m, s=sample: f"{s}: {m}")


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_float64(name):
    spec = losskit.catalog[name]
    for sample in samples(spec, torch.float64):
        if "extreme" in sample.tags or sample.args[0].numel() == 0:
            continue
        for reduction in _reductions(spec, sample):
            args, leaves = with_grad(sample)

            def fn(*leaf_values, args=args, sample=sample, reduction=reduction):
                full = list(args)
                for i, v in zip(sample.grad_args, leaf_values, strict=True):
                    full[i] = v
                return call(spec, sample, reduction, tuple(full))

            assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-5), sample


@pytest.mark.parametrize("name", ALL)
def test_finite_loss_and_gradient(name):
    """Every sample, extremes included, gives finite values and finite gradients."""
    spec = losskit.catalog[name]
    for sample in samples(spec, torch.float32):
        for reduction in _reductions(spec, sample):
            args, leaves = with_grad(sample)
            out = call(spec, sample, reduction, args)
            assert torch.isfinite(out).all(), (sample, reduction)
            out.sum().backward()
            for leaf in leaves:
                assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), sample


@pytest.mark.parametrize("name", ALL)
def test_noncontiguous_inputs_agree(name):
    spec = losskit.catalog[name]
    for sample in samples(spec, torch.float32):
        strided = type(sample)(
            map_tensors(sample.args, noncontiguous),
            map_tensors(dict(sample.kwargs), noncontiguous),
            sample.desc,
            sample.grad_args,
        )
        for reduction in _reductions(spec, sample):
            torch.testing.assert_close(
                call(spec, strided, reduction), call(spec, sample, reduction)
            )


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_precision_computes_in_float32(name, half):
    """Half inputs give a half result equal to the float32 computation on the same (rounded)
    inputs, rounded once: losskit upcasts internally instead of accumulating in half."""
    spec = losskit.catalog[name]
    for sample in samples(spec, torch.float32):
        if "extreme" in sample.tags:
            continue
        low = map_tensors(sample.args, float_to(half))
        low_kwargs = map_tensors(dict(sample.kwargs), float_to(half))
        back = map_tensors(low, float_to(torch.float32))
        back_kwargs = map_tensors(low_kwargs, float_to(torch.float32))
        for reduction in _reductions(spec, sample):
            opts = {} if reduction is None else {"reduction": reduction}
            out = spec.functional(*low, **low_kwargs, **opts)
            assert out.dtype == half, sample
            expected = spec.functional(*back, **back_kwargs, **opts).to(half)
            torch.testing.assert_close(
                out, expected, rtol=0, atol=0, msg=lambda m, s=sample: f"{s}: {m}"
            )


@pytest.mark.parametrize("name", ALL)
def test_module_matches_functional(name):
    spec = losskit.catalog[name]
    param_names = {p.name for p in spec.params}
    for sample in samples(spec, torch.float32):
        kwargs = dict(sample.kwargs)
        reduction = kwargs.pop("reduction", "mean")
        init = {k: v for k, v in kwargs.items() if k in param_names}
        per_call = {k: v for k, v in kwargs.items() if k not in param_names}
        module = spec.module(**init, reduction=reduction)
        torch.testing.assert_close(module(*sample.args, **per_call), call(spec, sample, reduction))
        assert repr(module).startswith(spec.module.__name__)


@pytest.mark.parametrize("name", ALL)
def test_error_inputs(name):
    spec = losskit.catalog[name]
    errors = list(spec.error_inputs())
    assert len(errors) >= 5, f"{name} has {len(errors)} error inputs; the matrix wants >= 5"
    for error in errors:
        with losskit.checks(error.checks), pytest.raises(LossInputError, match=error.match):
            spec.functional(*error.sample.args, **error.sample.kwargs)


@pytest.mark.parametrize("name", ALL)
def test_full_checks_accept_valid_samples(name):
    spec = losskit.catalog[name]
    with losskit.checks("full"):
        for sample in samples(spec, torch.float32):
            call(spec, sample)


@pytest.mark.parametrize("name", ALL)
def test_worked_examples(name):
    spec = losskit.catalog[name]
    for example in spec.examples:
        value = spec.functional(*example.args, **example.kwargs).item()
        assert round(value, example.decimals) == pytest.approx(example.expected), example.title
