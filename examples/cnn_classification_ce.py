"""A small CNN on the 8x8 digit images, trained with losskit's cross-entropy.

``losskit.CrossEntropyLoss`` is a drop-in for ``torch.nn.CrossEntropyLoss`` (same arguments, same
numbers), here with label smoothing. Data: scikit-learn's bundled digits (1797 images, no
download). Run:

    python examples/cnn_classification_ce.py [--epochs 8]
"""

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import losskit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.set_num_threads(1)  # a model this small trains faster on one thread than on several
torch.manual_seed(args.seed)

images, labels = load_digits(return_X_y=True)
images = images.reshape(-1, 1, 8, 8) / 16.0  # pixel values are 0..16
x_train, x_test, y_train, y_test = train_test_split(
    images, labels, test_size=0.25, random_state=args.seed, stratify=labels
)
x_train, x_test = (torch.tensor(a, dtype=torch.float32) for a in (x_train, x_test))
y_train, y_test = (torch.tensor(a) for a in (y_train, y_test))

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1),
    nn.ReLU(),
    nn.Conv2d(8, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),  # 16 x 4 x 4
    nn.Flatten(),
    nn.Linear(16 * 4 * 4, 64),
    nn.ReLU(),
    nn.Linear(64, 10),
)
criterion = losskit.CrossEntropyLoss(label_smoothing=0.05)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

for epoch in range(args.epochs):
    model.train()
    order = torch.randperm(len(y_train))
    total = 0.0
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        optimizer.zero_grad()
        loss = criterion(model(x_train[rows]), y_train[rows])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(rows)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(
        f"epoch {epoch + 1:2d}  training loss {total / len(y_train):.4f}  "
        f"held-out accuracy {accuracy:.3f}"
    )

with torch.no_grad():
    predicted = model(x_test).argmax(1).numpy()
errors = np.flatnonzero(predicted != y_test.numpy())
print(
    f"held-out accuracy {1 - len(errors) / len(y_test):.3f} ({len(errors)} of {len(y_test)} wrong)"
)
