"""Linear regression with losskit's MSE, checked against the closed-form least-squares fit.

Minimising the mean squared error of a linear model with a PyTorch optimizer (L-BFGS, full
batch) reaches the coefficients of ``numpy.linalg.lstsq``: MSE's minimiser is the ordinary
least-squares solution. Data: scikit-learn's bundled diabetes set (no download). Run:

    python examples/linear_regression_mse.py [--epochs 10]
"""

import argparse

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import losskit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10, help="L-BFGS steps of 20 iterations")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

x, y = load_diabetes(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed)
mean, std = x_train.mean(0), x_train.std(0)
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

# closed form: least squares with an intercept column
design = np.hstack([x_train, np.ones((len(x_train), 1))])
solution, *_ = np.linalg.lstsq(design, y_train, rcond=None)

# the same model by gradient descent on losskit's MSE
xt = torch.tensor(x_train, dtype=torch.float32)
yt = torch.tensor(y_train, dtype=torch.float32)
model = torch.nn.Linear(x.shape[1], 1)
criterion = losskit.MSELoss()
optimizer = torch.optim.LBFGS(model.parameters(), max_iter=20, line_search_fn="strong_wolfe")


def closure() -> torch.Tensor:
    optimizer.zero_grad()
    loss = criterion(model(xt).squeeze(1), yt)
    loss.backward()
    return loss


for step in range(args.epochs):
    loss = optimizer.step(closure)
    print(f"step {step + 1:3d}  training MSE {loss.item():10.2f}")

learned = np.append(model.weight.detach().numpy()[0], model.bias.item())
rmse_gd = np.sqrt(np.mean((x_test @ learned[:-1] + learned[-1] - y_test) ** 2))
rmse_ls = np.sqrt(np.mean((x_test @ solution[:-1] + solution[-1] - y_test) ** 2))
difference = np.abs(learned - solution).max()
print(
    f"coefficients: largest difference from least squares {difference:.4f} "
    f"(largest coefficient {np.abs(solution).max():.1f})"
)
print(f"held-out RMSE: MSE minimised by L-BFGS {rmse_gd:.2f}, least squares {rmse_ls:.2f}")
