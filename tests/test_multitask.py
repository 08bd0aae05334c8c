"""Multi-task weighting: uncertainty weighting, dynamic weight average and GradNorm, each checked
against its paper on a tiny problem."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from losskit import LossInputError
from losskit.multitask import DynamicWeightAverage, GradNorm, UncertaintyWeighting


@pytest.fixture
def one_thread():
    """Tiny matmuls are slowest with several threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_regression_tasks(noise_a: float, noise_b: float, n: int = 512):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    w = torch.randn(4, 2, generator=g)
    clean = x @ w
    noise = torch.randn(n, 2, generator=g) * torch.tensor([noise_a, noise_b])
    return x, clean + noise


# ------------------------------------------------------------------------- uncertainty


def test_uncertainty_formula_regression_and_classification():
    weighting = UncertaintyWeighting(["r", "c"], task_types={"c": "classification"})
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([math.log(4.0), math.log(0.5)]))
    out = weighting({"r": torch.tensor(2.0), "c": torch.tensor(3.0)})
    # regression: L / (2 sigma^2) + log sigma; classification: L / sigma^2 + log sigma
    expected = 2.0 / 8.0 + 0.5 * math.log(4.0) + 3.0 / 0.5 + 0.5 * math.log(0.5)
    assert out.total.item() == pytest.approx(expected)
    assert out.weights["r"].item() == pytest.approx(1 / 8)
    assert out.weights["c"].item() == pytest.approx(2.0)


def test_uncertainty_weighting_learns_a_lower_weight_for_the_noisier_task(one_thread):
    x, y = two_regression_tasks(noise_a=0.1, noise_b=1.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    weighting = UncertaintyWeighting(["clean", "noisy"])
    optimizer = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=0.05)
    for _ in range(250):
        optimizer.zero_grad()
        pred = model(x)
        mse = (pred - y).square().mean(0)
        out = weighting({"clean": mse[0], "noisy": mse[1]})
        out.total.backward()
        optimizer.step()
    assert out.weights["noisy"] < 0.1 * out.weights["clean"]
    # at the optimum sigma_i^2 = MSE_i: the noise variances 0.01 and 1
    variances = weighting.log_variance.detach().exp()
    torch.testing.assert_close(variances, mse.detach(), rtol=0.15, atol=0)
    assert variances[1].item() == pytest.approx(1.0, rel=0.2)


def test_uncertainty_validation():
    weighting = UncertaintyWeighting(["a", "b"])
    with pytest.raises(LossInputError, match=r"losses has missing tasks \['b'\]"):
        weighting({"a": torch.tensor(1.0)})
    with pytest.raises(LossInputError, match=r"losses\['b'\] is shape \(2,\)"):
        weighting({"a": torch.tensor(1.0), "b": torch.ones(2)})
    with pytest.raises(LossInputError, match=r"task_names is .*distinct names"):
        UncertaintyWeighting(["a", "a"])
    with pytest.raises(LossInputError, match=r"task_types\['a'\] is 'ranking'"):
        UncertaintyWeighting(["a"], task_types={"a": "ranking"})


# ------------------------------------------------------------------------- DWA


def test_dwa_follows_eq_7():
    dwa = DynamicWeightAverage(["fast", "slow"], temperature=2.0)
    history = [(1.0, 1.0), (0.5, 0.9), (0.2, 0.85)]
    seen = []
    for fast, slow in history:
        for scale in (0.9, 1.1):  # two steps per epoch: the epoch mean is the value
            out = dwa({"fast": torch.tensor(fast * scale), "slow": torch.tensor(slow * scale)})
        seen.append(out.weights)
        dwa.end_epoch()
    # the first two epochs use equal weights
    assert all(w.item() == 1.0 for weights in seen[:2] for w in weights.values())
    ratios = torch.tensor([0.2 / 0.5, 0.85 / 0.9], dtype=torch.float64)
    expected = 2 * torch.softmax(ratios / 2.0, 0)
    got = torch.stack([dwa.weights["fast"], dwa.weights["slow"]]).double()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert got[1] > got[0]  # the task that improves slowly gets more weight
    assert got.sum().item() == pytest.approx(2.0)


def test_dwa_temperature_and_state():
    hot = DynamicWeightAverage(["a", "b"], temperature=1e6)
    for a, b in [(1.0, 1.0), (0.1, 1.0)]:
        hot({"a": torch.tensor(a), "b": torch.tensor(b)})
        hot.end_epoch()
    assert hot.weights["a"].item() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():  # evaluation calls do not count toward the epoch mean
        hot({"a": torch.tensor(100.0), "b": torch.tensor(100.0)})
    assert hot.running_count.item() == 0
    clone = DynamicWeightAverage(["a", "b"], temperature=1e6)
    clone.load_state_dict(hot.state_dict())
    assert clone.weights == hot.weights


def test_dwa_total_is_the_weighted_sum():
    dwa = DynamicWeightAverage(["a", "b"])
    a = torch.tensor(2.0, requires_grad=True)
    out = dwa({"a": a, "b": torch.tensor(3.0)})
    assert out.total.item() == 5.0
    out.total.backward()
    assert a.grad.item() == 1.0


# ------------------------------------------------------------------------- GradNorm


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = torch.nn.Linear(4, 8)
        self.heads = torch.nn.ModuleList([torch.nn.Linear(8, 1) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = torch.tanh(self.shared(x))
        return [head(h).squeeze(1) for head in self.heads]


def weighted_gradient_norms(model, gradnorm, losses) -> torch.Tensor:
    """G_i = w_i ||grad_W L_i|| at the shared layer, as GradNorm defines them."""
    norms = [
        torch.autograd.grad(losses[n], list(model.shared.parameters()), retain_graph=True)
        for n in gradnorm.task_names
    ]
    norms = torch.stack([torch.cat([g.flatten() for g in grads]).norm() for grads in norms])
    return gradnorm.task_weights.detach() * norms


def test_gradnorm_balances_gradient_norms(one_thread):
    """Two copies of one regression task, the second's loss 100x larger, so are its gradients
    at the shared layer. With alpha = 0 GradNorm equalises the weighted gradient norms (eq. 2):
    the imbalance falls from about 100x to under 2x, by lowering the large task's weight."""
    x, y = two_regression_tasks(0.05, 0.05, n=256)
    torch.manual_seed(0)
    model = TwoHeads()
    gradnorm = GradNorm(["small", "large"], model.shared.parameters(), alpha=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    weight_optimizer = torch.optim.Adam(gradnorm.parameters(), lr=0.01)

    def losses():
        pred = model(x)
        mse = [(pred[i] - y[:, i]).square().mean() for i in range(2)]
        return {"small": mse[0], "large": 100 * mse[1]}

    def imbalance():
        g = weighted_gradient_norms(model, gradnorm, losses())
        return (g.max() / g.min()).item()

    first = imbalance()
    for _ in range(100):
        optimizer.zero_grad()
        weight_optimizer.zero_grad()
        gradnorm(losses()).total.backward()
        optimizer.step()
        weight_optimizer.step()
    weights = gradnorm(losses()).weights  # renormalised
    assert first > 50
    assert imbalance() < 2
    assert weights["large"] < 0.3 * weights["small"]
    assert (weights["small"] + weights["large"]).item() == pytest.approx(2.0, rel=1e-5)


def test_gradnorm_total_is_the_weighted_sum_and_the_network_sees_fixed_weights():
    torch.manual_seed(1)
    model = TwoHeads()
    gradnorm = GradNorm(["a", "b"], model.shared.parameters())
    with torch.no_grad():
        gradnorm.task_weights.copy_(torch.tensor([0.5, 1.5]))
    x = torch.randn(16, 4)
    pred = model(x)
    losses = {"a": pred[0].square().mean(), "b": (pred[1] - 1).square().mean()}
    out = gradnorm(losses)
    weighted = 0.5 * losses["a"] + 1.5 * losses["b"]
    assert out.total.item() == pytest.approx(weighted.item())
    out.total.backward(retain_graph=True)
    expected = torch.autograd.grad(weighted, model.shared.weight, retain_graph=True)[0]
    torch.testing.assert_close(model.shared.weight.grad, expected)
    # the weights' gradient comes from L_grad alone: sign(G_i - target_i) * ||grad L_i||
    assert gradnorm.task_weights.grad is not None
    assert gradnorm.gradnorm_loss is not None and gradnorm.gradnorm_loss > 0


def test_gradnorm_validation_and_eval():
    with pytest.raises(LossInputError, match=r"GradNorm: shared_parameters is empty"):
        GradNorm(["a"], [])
    model = TwoHeads()
    gradnorm = GradNorm(["a", "b"], model.shared.parameters())
    with torch.no_grad():
        pred = model(torch.randn(3, 4))
        out = gradnorm({"a": pred[0].sum(), "b": pred[1].sum()})
    assert out.total.grad_fn is None


# ------------------------------------------------------------------------- stale parameters


def test_learnable_weighters_warn_once_if_never_optimised():
    for make in (
        lambda model: UncertaintyWeighting(["a", "b"]),
        lambda model: GradNorm(["a", "b"], model.shared.parameters()),
    ):
        model = TwoHeads()
        weighting = make(model)
        weighting.stale_check_calls = 4
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # weighting left out
        x = torch.randn(8, 4)
        with pytest.warns(UserWarning, match="its parameters have not changed"):
            for _ in range(4):
                optimizer.zero_grad()
                pred = model(x)
                weighting(
                    {"a": pred[0].square().mean(), "b": pred[1].square().mean()}
                ).total.backward()
                optimizer.step()


def test_no_warning_when_weighters_are_optimised():
    model = TwoHeads()
    weighting = GradNorm(["a", "b"], model.shared.parameters())
    weighting.stale_check_calls = 4
    optimizer = torch.optim.SGD(list(model.parameters()) + list(weighting.parameters()), lr=0.01)
    x = torch.randn(8, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(6):
            optimizer.zero_grad()
            pred = model(x)
            weighting(
                {"a": pred[0].square().mean(), "b": (pred[1] - 3).square().mean()}
            ).total.backward()
            optimizer.step()
