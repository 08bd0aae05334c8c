"""Class imbalance: cross-entropy against focal loss with class-balanced weights.

Digits 5-9 are cut to 10% of their training images (about 1:10); the test set keeps every
class at its natural size, so macro-F1 and balanced accuracy show whether the rare digits are
recognised. ``losskit.class_balanced_weights`` turns the class counts into per-class weights
(Cui et al., 2019) that ``losskit.FocalLoss`` takes as ``alpha``. Data: scikit-learn's bundled
digits (no download). Run:

    python examples/focal_imbalanced.py [--epochs 20] [--gamma 2]
"""

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from torch import nn

import losskit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--gamma", type=float, default=2.0)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.set_num_threads(1)  # a model this small trains faster on one thread than on several

pixels, digits = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(
    pixels, digits, test_size=0.3, random_state=args.seed, stratify=digits
)
rng = np.random.default_rng(args.seed)
keep = np.ones(len(y_train), dtype=bool)
for digit in range(5, 10):
    rows = np.flatnonzero(y_train == digit)
    keep[rng.choice(rows, size=len(rows) - len(rows) // 10, replace=False)] = False
x_train, y_train = x_train[keep], y_train[keep]
counts = np.bincount(y_train, minlength=10)
print("training images per digit:", " ".join(f"{d}:{c}" for d, c in enumerate(counts)))

mean, std = x_train.mean(0), x_train.std(0) + 1e-6
xt = torch.tensor((x_train - mean) / std, dtype=torch.float32)
xs = torch.tensor((x_test - mean) / std, dtype=torch.float32)
yt = torch.tensor(y_train)


def train(criterion: nn.Module) -> np.ndarray:
    torch.manual_seed(args.seed)  # the same initial weights and batches for every loss
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(args.epochs):
        order = torch.randperm(len(yt))
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            optimizer.zero_grad()
            criterion(model(xt[rows]), yt[rows]).backward()
            optimizer.step()
    with torch.no_grad():
        return model(xs).argmax(1).numpy()


alpha = losskit.class_balanced_weights(counts, beta=0.999)
candidates = {
    "cross-entropy": losskit.CrossEntropyLoss(),
    f"focal (gamma={args.gamma:g})": losskit.FocalLoss(gamma=args.gamma),
    f"focal (gamma={args.gamma:g}) + class-balanced alpha": losskit.FocalLoss(
        gamma=args.gamma, alpha=alpha
    ),
}
print(f"{'loss':45s} {'macro-F1':>9s} {'balanced acc.':>14s} {'F1 of digits 5-9':>17s}")
for name, criterion in candidates.items():
    predicted = train(criterion)
    per_class = f1_score(y_test, predicted, average=None)
    print(
        f"{name:45s} {f1_score(y_test, predicted, average='macro'):9.3f} "
        f"{balanced_accuracy_score(y_test, predicted):14.3f} {per_class[5:].mean():17.3f}"
    )
