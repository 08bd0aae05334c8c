"""Fit a line to data where a fifth of the points are gross outliers.

MSE follows the outliers; losskit.AdaptiveRobustLoss learns from the residuals that their tails
are heavy (alpha falls toward 0, Cauchy-like) and recovers the true slope, with no robustness
parameter to tune. Run: python examples/robust_line_fit.py
"""

import torch

import losskit

torch.manual_seed(0)
n = 500
x = torch.rand(n, 1) * 4 - 2
y = 3.0 * x + 1.0 + 0.2 * torch.randn(n, 1)  # true slope 3, intercept 1
# a fifth of the points, all on the right half, are junk readings far below the line
outliers = (torch.rand(n) < 0.4) & (x[:, 0] > 0)
y[outliers] = -8.0 + torch.randn(int(outliers.sum()), 1)


def fit(loss_fn: torch.nn.Module, steps: int = 300) -> torch.nn.Linear:
    model = torch.nn.Linear(1, 1)
    # the adaptive loss has parameters (alpha, scale): they go to the optimizer too
    optimizer = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return model


mse_model = fit(torch.nn.MSELoss())
adaptive = losskit.AdaptiveRobustLoss(num_dims=1)
robust_model = fit(adaptive)

print(f"MSE:      slope {mse_model.weight.item():.3f}  intercept {mse_model.bias.item():.3f}")
print(
    f"adaptive: slope {robust_model.weight.item():.3f}  intercept {robust_model.bias.item():.3f}"
    f"  (learned alpha {adaptive.alpha.item():.3f}, scale {adaptive.scale.item():.3f})"
)
print("true:     slope 3.000  intercept 1.000")
