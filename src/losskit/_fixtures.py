"""Deterministic tensors for sample inputs (each call seeds its own generator, so the test
matrix sees the same numbers in every process)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class TensorMaker:
    """Makes tensors of one dtype and device from a private seeded generator."""

    def __init__(self, dtype: torch.dtype, device: torch.device | str, seed: int = 0) -> None:
        self.dtype = dtype
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int, scale: float = 1.0) -> Tensor:
        x = torch.randn(shape, generator=self.gen, dtype=torch.float64) * scale
        return x.to(self.dtype).to(self.device)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        x = torch.rand(shape, generator=self.gen, dtype=torch.float64) * (high - low) + low
        return x.to(self.dtype).to(self.device)

    def randint(self, high: int, shape: Sequence[int], low: int = 0) -> Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.gen).to(self.device)

    def tensor(self, values: object) -> Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device)

    def probabilities(self, *shape: int, dim: int = 1) -> Tensor:
        logits = torch.randn(shape, generator=self.gen, dtype=torch.float64)
        return logits.softmax(dim).to(self.dtype).to(self.device)
