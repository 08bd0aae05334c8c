"""User-defined losses (losskit.elementwise_loss) and CombinedLoss."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import losskit
from losskit import LossInputError


@losskit.elementwise_loss(
    name="test_squared_log_error", summary="Squared error of log1p values", register=False
)
def squared_log_error(input, target, *, eps=0.0):
    return (torch.log1p(input + eps) - torch.log1p(target + eps)).square()


@pytest.fixture
def registered():
    losskit.catalog.register(squared_log_error.spec, replaceable=True)
    yield squared_log_error.spec
    losskit.catalog.unregister(squared_log_error.spec.name)


def test_custom_loss_is_checked_weighted_reduced_and_registered(registered):
    x, y = torch.rand(5), torch.rand(5)
    expected = (torch.log1p(x) - torch.log1p(y)).square()
    torch.testing.assert_close(squared_log_error(x, y, reduction="none"), expected)
    torch.testing.assert_close(squared_log_error(x, y), expected.mean())
    w = torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0])
    torch.testing.assert_close(squared_log_error(x, y, weight=w), (expected * w).sum() / w.sum())
    with pytest.raises(LossInputError, match=r"test_squared_log_error: target has shape \(5, 1\)"):
        squared_log_error(x, y[:, None])
    spec = losskit.catalog["test_squared_log_error"]
    assert spec.summary == "Squared error of log1p values" and spec.functional is squared_log_error


def test_custom_loss_passes_error_inputs_and_module_form():
    spec = squared_log_error.spec
    for error in spec.error_inputs():
        with losskit.checks(error.checks), pytest.raises(LossInputError, match=error.match):
            spec.functional(*error.sample.args, **error.sample.kwargs)
    x, y = torch.rand(4), torch.rand(4)
    module = squared_log_error.module(eps=0.5, reduction="sum")
    torch.testing.assert_close(module(x, y), squared_log_error(x, y, eps=0.5, reduction="sum"))
    assert "eps=0.5" in repr(module)


def test_custom_loss_half_precision_and_gradcheck():
    x = torch.rand(6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: squared_log_error(a, y), (x,))
    assert squared_log_error(x.detach().bfloat16(), y.bfloat16()).dtype == torch.bfloat16


def test_custom_loss_must_return_elementwise_values():
    @losskit.elementwise_loss(register=False)
    def reduced_too_early(input, target):
        return (input - target).mean()

    with pytest.raises(
        LossInputError, match=r"reduced_too_early: the elementwise function's result has shape \(\)"
    ):
        reduced_too_early(torch.ones(3), torch.zeros(3))


def test_decorator_registers_by_default():
    @losskit.elementwise_loss(summary="absolute cube")
    def test_abs_cube(input, target):
        return (input - target).abs().pow(3)

    try:
        assert losskit.catalog["test_abs_cube"].functional is test_abs_cube
    finally:
        losskit.catalog.unregister("test_abs_cube")
    assert "test_abs_cube" not in losskit.catalog


def test_builtin_names_cannot_be_taken():
    with pytest.raises(LossInputError, match="name 'mse' is taken"):
        losskit.elementwise_loss(name="mse")(lambda x, y: x - y)
    with pytest.raises(LossInputError, match="'mse' is built in"):
        losskit.catalog.unregister("mse")


def test_combined_loss_total_and_parts():
    criterion = losskit.CombinedLoss(
        {"mse": losskit.MSELoss(), "l1": losskit.functional.l1_loss}, weights={"l1": 0.5}
    )
    x = torch.tensor([1.0, 3.0], requires_grad=True)
    out = criterion(x, torch.zeros(2))
    assert out.total.item() == pytest.approx(5.0 + 0.5 * 2.0)
    assert {k: v.item() for k, v in out.parts.items()} == {"mse": 5.0, "l1": 2.0}
    out.total.backward()
    assert x.grad is not None
    heads = criterion(mse=(x, torch.zeros(2)), l1=(x * 2, torch.zeros(2)))
    assert heads.parts["l1"].item() == pytest.approx(4.0)


def test_combined_loss_errors():
    with pytest.raises(LossInputError, match="CombinedLoss: weights name ce"):
        losskit.CombinedLoss({"mse": losskit.MSELoss()}, weights={"ce": 1.0})
    with pytest.raises(LossInputError, match=r"CombinedLoss: weights\['mse'\] is -1"):
        losskit.CombinedLoss({"mse": losskit.MSELoss()}, weights={"mse": -1})
    criterion = losskit.CombinedLoss({"mse": losskit.MSELoss()})
    with pytest.raises(LossInputError, match="per-loss inputs name bce"):
        criterion(bce=(torch.ones(1), torch.ones(1)))


def _saved_and_loaded(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_custom_loss_module_pickles_and_saves():
    """Issue 14, defect 12: the generated module class lived nowhere pickle could find it
    (``losskit.custom.SquaredLogErrorLoss``), so pickle and torch.save raised PicklingError."""
    x, y = torch.rand(5), torch.rand(5)
    module = squared_log_error.module(eps=0.25, reduction="sum")
    for restored in (
        pickle.loads(pickle.dumps(module)),
        copy.deepcopy(module),
        _saved_and_loaded(module),
    ):
        assert type(restored) is type(module) and repr(restored) == repr(module)
        torch.testing.assert_close(restored(x, y), module(x, y), rtol=0, atol=0)
    assert pickle.loads(pickle.dumps(squared_log_error)) is squared_log_error
    assert pickle.loads(pickle.dumps(type(module))) is type(module)
    # a state_dict through a checkpoint, as training loops store it
    fresh = squared_log_error.module(eps=0.25, reduction="sum")
    fresh.load_state_dict(_saved_and_loaded(module.state_dict()))
    torch.testing.assert_close(fresh(x, y), module(x, y), rtol=0, atol=0)


def test_combined_loss_of_a_custom_module_saves():
    criterion = losskit.CombinedLoss({"sle": squared_log_error.module(), "mse": losskit.MSELoss()})
    restored = _saved_and_loaded(criterion)
    x, y = torch.rand(3), torch.rand(3)
    torch.testing.assert_close(restored(x, y).total, criterion(x, y).total, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("losses", "match"),
    [
        ({"a.b": losskit.MSELoss()}, r"losses has a part named 'a\.b'; expected .*without '\.'"),
        ({"a.b": losskit.functional.mse_loss}, r"losses has a part named 'a\.b'"),
        ({"training": losskit.MSELoss()}, r"losses has a part named 'training'; expected"),
        ({"state_dict": losskit.functional.l1_loss}, r"losses has a part named 'state_dict'"),
        ({"": losskit.MSELoss()}, r"losses has a part named ''"),
        ({1: losskit.MSELoss()}, r"losses has a part named 1;"),
        ({"mse": 3.0}, r"losses\['mse'\] has type float; expected a loss: an nn.Module or a func"),
        ({"mse": "mse"}, r"losses\['mse'\] has type str"),
        ([losskit.MSELoss()], r"losses is a list; expected a mapping name -> loss"),
    ],
    ids=["dot", "dot-function", "training", "state_dict", "empty", "int", "float", "str", "list"],
)
def test_combined_loss_refuses_bad_parts_at_construction(losses, match):
    """Issue 14, defect 14: these failed only at call time (a non-callable part), with a raw
    KeyError ('.' or a name ModuleDict already has), or not at all (a function named 'a.b')."""
    with pytest.raises(LossInputError, match=rf"^CombinedLoss: {match}"):
        losskit.CombinedLoss(losses)
