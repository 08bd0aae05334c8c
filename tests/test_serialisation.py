"""Every loss module survives ``copy.deepcopy``, ``pickle`` and ``state_dict`` round trips (also
through ``torch.save``/``torch.load(weights_only=True)``, as checkpoints are stored), and its
``repr`` shows its hyper-parameters. Modules are built from each catalog entry's defaults and from
the options of each of its samples; the learnable and stateful modules (adaptive robust loss,
multi-task weighting, margin schedules) must restore their parameters, buffers and step counts."""

from __future__ import annotations

import copy
import io
import pickle
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import losskit
from catalog_helpers import catalog_params
from losskit import LossSpec, SampleInput
from losskit.multitask import DynamicWeightAverage, GradNorm, UncertaintyWeighting

ALL = catalog_params()
CPU = torch.device("cpu")


def _constructions(spec: LossSpec) -> list[tuple[dict[str, Any], SampleInput, dict[str, Any]]]:
    """(constructor options, a sample to call with, per-call options): the entry's defaults
    with its first sample, then every distinct set of options its samples use."""
    samples = list(spec.sample_inputs(torch.float32, CPU))
    param_names = {p.name for p in spec.params}
    plain = next((s for s in samples if not s.kwargs), samples[0])
    built = [({**spec.defaults(), **plain.kwargs}, plain, {})]
    seen = set()
    for sample in samples:
        kwargs = dict(sample.kwargs)
        init = {k: v for k, v in kwargs.items() if k in param_names or k == "reduction"}
        per_call = {k: v for k, v in kwargs.items() if k not in init}
        key = repr(sorted((k, repr(v)) for k, v in init.items()))
        if key not in seen:
            seen.add(key)
            built.append((init, sample, per_call))
    return built


def _tensors_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, Tensor):
            assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


def _same_module(original: nn.Module, restored: nn.Module, sample, per_call) -> None:
    assert type(restored) is type(original)
    assert repr(restored) == repr(original)
    _tensors_equal(original.state_dict(), restored.state_dict())
    torch.testing.assert_close(
        restored(*sample.args, **per_call),
        original(*sample.args, **per_call),
        rtol=0,
        atol=0,
        equal_nan=True,  # the values are compared elsewhere; here only their sameness
    )


def _checkpoint(module: nn.Module) -> dict[str, Any]:
    """``state_dict`` through ``torch.save`` and a ``weights_only`` load, as checkpoints go."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _perturbed(module: nn.Module) -> nn.Module:
    """``module`` with every floating parameter and buffer changed, so a load must restore it."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.add_(1.0)
    return module


@pytest.mark.parametrize("name", ALL)
def test_round_trips(name):
    spec = losskit.catalog[name]
    for init, sample, per_call in _constructions(spec):
        module = spec.module(**init)
        if hasattr(module, "step"):  # margin schedules count steps; the count must survive
            module.step()
        _same_module(module, copy.deepcopy(module), sample, per_call)
        _same_module(module, pickle.loads(pickle.dumps(module)), sample, per_call)

        fresh = _perturbed(spec.module(**init))
        fresh.load_state_dict(_checkpoint(module))
        _same_module(module, fresh, sample, per_call)


@pytest.mark.parametrize("name", ALL)
def test_repr_shows_hyper_parameters(name):
    spec = losskit.catalog[name]
    for init, _, _ in _constructions(spec):
        text = repr(spec.module(**init))
        assert text.startswith(spec.module.__name__), text
        for key, value in init.items():
            if isinstance(value, Tensor):
                shown = f"{key}=Tensor{tuple(value.shape)}"
            elif key == "reduction":
                shown = f"reduction={value!r}"
            elif callable(value):
                shown = f"{key}="
            else:
                shown = f"{key}={value}"
            assert shown in text, (init, text)


def _sgd_step(module: nn.Module, loss: Tensor) -> None:
    loss.backward()
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p.sub_(0.1 * p.grad)


def test_adaptive_robust_loss_restores_learned_parameters():
    x, y = torch.randn(16, 3), torch.randn(16, 3)
    for alpha_range in ((0.001, 1.999), (1.0, 1.0)):  # learned alpha, and alpha fixed in a buffer
        trained = losskit.AdaptiveRobustLoss(num_dims=3, alpha_range=alpha_range)
        _sgd_step(trained, trained(x, y))
        sample = SampleInput((x, y))
        _same_module(trained, copy.deepcopy(trained), sample, {})
        _same_module(trained, pickle.loads(pickle.dumps(trained)), sample, {})
        fresh = losskit.AdaptiveRobustLoss(num_dims=3, alpha_range=alpha_range)
        fresh.load_state_dict(_checkpoint(trained))
        _same_module(trained, fresh, sample, {})
        torch.testing.assert_close(fresh.alpha, trained.alpha, rtol=0, atol=0)
        torch.testing.assert_close(fresh.scale, trained.scale, rtol=0, atol=0)
        assert "num_dims=3" in repr(trained) and f"alpha_range={alpha_range}" in repr(trained)


def test_scheduled_margin_restores_its_step():
    for criterion in (
        losskit.TripletLoss(margin=losskit.LinearMargin(0.1, 0.5, steps=10)),
        losskit.TripletMarginLoss(margin=losskit.CosineMargin(0.2, 1.0, steps=10)),
    ):
        for _ in range(3):
            criterion.step()
        for restored in (copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
            assert restored.steps_taken == 3
            assert restored.current_margin == criterion.current_margin
        fresh = type(criterion)(margin=criterion.margin)
        fresh.load_state_dict(_checkpoint(criterion))
        assert fresh.steps_taken == 3 and fresh.current_margin == criterion.current_margin
        assert "LinearMargin" in repr(criterion) or "CosineMargin" in repr(criterion)


def _task_losses(shared: nn.Linear, x: Tensor) -> dict[str, Tensor]:
    h = shared(x)
    return {"a": h[:, 0].square().mean(), "b": (h[:, 1] - 1.0).abs().mean()}


def test_multitask_weightings_restore_their_state():
    torch.manual_seed(0)
    shared, x = nn.Linear(4, 2), torch.randn(8, 4)

    uncertainty = UncertaintyWeighting(["a", "b"], task_types={"b": "classification"})
    _sgd_step(uncertainty, uncertainty(_task_losses(shared, x)).total)
    dwa = DynamicWeightAverage(["a", "b"], temperature=2.0)
    for _ in range(3):
        with torch.no_grad():
            dwa(_task_losses(shared, x))
        dwa.end_epoch()
    for module in (uncertainty, dwa):
        for restored in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            _tensors_equal(module.state_dict(), restored.state_dict())
        fresh = _perturbed(type(module)(["a", "b"]))
        fresh.load_state_dict(_checkpoint(module))
        _tensors_equal(module.state_dict(), fresh.state_dict())
        torch.testing.assert_close(
            fresh(_task_losses(shared, x)).total, module(_task_losses(shared, x)).total
        )
    assert "b: classification" in repr(uncertainty)


def test_gradnorm_resumes_with_its_initial_losses():
    """GradNorm's rates are relative to the first call's losses L(0); a resumed run must keep
    them instead of taking the first losses after the restart as L(0)."""
    torch.manual_seed(0)
    shared, x = nn.Linear(4, 2), torch.randn(8, 4)
    gradnorm = GradNorm(["a", "b"], shared.parameters(), alpha=1.5)
    _sgd_step(gradnorm, gradnorm(_task_losses(shared, x)).total)
    initial = gradnorm.initial_losses.clone()

    resumed = GradNorm(["a", "b"], shared.parameters(), alpha=1.5)
    resumed.load_state_dict(_checkpoint(gradnorm))
    torch.testing.assert_close(resumed.task_weights, gradnorm.task_weights, rtol=0, atol=0)
    with torch.no_grad():
        shared.weight.mul_(0.5)  # training went on: the losses are no longer L(0)
    resumed(_task_losses(shared, x))
    torch.testing.assert_close(resumed.initial_losses, initial, rtol=0, atol=0)
    assert "alpha=1.5" in repr(gradnorm)
