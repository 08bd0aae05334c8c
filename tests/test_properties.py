"""Hypothesis properties of the regression and classification families."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import losskit
import losskit.functional as LF

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
vectors = st.lists(finite, min_size=1, max_size=12)
REGRESSION = [s.name for s in losskit.catalog.specs("regression")]


def pair(values: list[float], shift: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(values, dtype=torch.float64)
    y = torch.tensor((shift * len(values))[: len(values)], dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("name", REGRESSION)
@given(values=vectors, shift=vectors)
def test_regression_nonnegative_zero_at_perfect_and_symmetric(name, values, shift):
    spec = losskit.catalog[name]
    x, y = pair(values, shift)
    loss = spec.functional(x, y, reduction="none")
    if "nonnegative" in spec.properties:
        assert (loss >= 0).all()
    if "zero_at_perfect" in spec.properties:
        assert spec.functional(y, y).item() == 0.0
    if "symmetric" in spec.properties:
        torch.testing.assert_close(loss, spec.functional(y, x, reduction="none"))


@given(values=vectors)
def test_huber_tends_to_half_mse_as_delta_grows(values):
    x = torch.tensor(values, dtype=torch.float64)
    y = torch.zeros_like(x)
    big = 10 * x.abs().max().item() + 1
    torch.testing.assert_close(LF.huber_loss(x, y, delta=big), LF.mse_loss(x, y) / 2)


@given(values=vectors, beta=st.floats(0.01, 10))
def test_huber_is_beta_times_smooth_l1(values, beta):
    x = torch.tensor(values, dtype=torch.float64)
    y = torch.zeros_like(x)
    torch.testing.assert_close(
        LF.huber_loss(x, y, delta=beta), beta * LF.smooth_l1_loss(x, y, beta=beta)
    )


@given(values=vectors)
def test_median_quantile_is_half_l1(values):
    x = torch.tensor(values, dtype=torch.float64)
    y = torch.zeros_like(x)
    torch.testing.assert_close(LF.quantile_loss(x, y, q=0.5), LF.l1_loss(x, y) / 2)


@given(values=vectors)
def test_log_cosh_between_quadratic_and_linear_bounds(values):
    d = torch.tensor(values, dtype=torch.float64)
    loss = LF.log_cosh_loss(d, torch.zeros_like(d), reduction="none")
    assert (loss <= d.square() / 2 + 1e-12).all()
    assert (loss >= d.abs() - torch.log(torch.tensor(2.0, dtype=torch.float64)) - 1e-12).all()


@given(
    n=st.integers(1, 6),
    c=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    eps=st.floats(0.0, 1.0),
)
def test_cross_entropy_properties(n, c, seed, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 5
    t = torch.randint(0, c, (n,), generator=g)
    loss = LF.cross_entropy(x, t, label_smoothing=eps, reduction="none")
    assert (loss >= 0).all()
    # indices equal their one-hot probabilities; CE equals NLL of log_softmax
    onehot = F.one_hot(t, c).double()
    torch.testing.assert_close(
        LF.cross_entropy(x, t, reduction="none"), LF.cross_entropy(x, onehot, reduction="none")
    )
    torch.testing.assert_close(LF.cross_entropy(x, t), LF.nll_loss(x.log_softmax(1), t))
    # invariant to adding a constant to every logit of a row
    torch.testing.assert_close(LF.cross_entropy(x + 7.0, t), LF.cross_entropy(x, t))


@given(logits=st.lists(st.floats(-15, 15), min_size=1, max_size=10), seed=st.integers(0, 99))
def test_bce_with_logits_equals_bce_of_sigmoid(logits, seed):
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).double()
    torch.testing.assert_close(
        LF.binary_cross_entropy_with_logits(x, y),
        LF.binary_cross_entropy(torch.sigmoid(x), y),
        rtol=1e-6,
        atol=1e-9,
    )
