"""Losses with learnable parameters share one failure mode: the parameters are never handed to
an optimizer, so they silently stay at their initial values (robust_loss_pytorch issue #7).
:class:`StepWatch` notices and warns once."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import Tensor


class StepWatch:
    """Warn once if parameters are unchanged after ``after`` calls made with grad enabled.

    Costs nothing per call except a counter; at the ``after``-th call it compares version
    counters (optimizers bump them) and, only if those did not move (fused optimizers do not
    bump them), the values, which is one host sync in the module's lifetime.
    """

    def __init__(self, owner: str, hint: str, after: int = 100) -> None:
        self.owner = owner
        self.hint = hint
        self.after = after
        self._calls = 0
        self._snapshot: list[tuple[Tensor, int, Tensor]] | None = None
        self.done = False

    def rebase(self) -> None:
        """Forget version bumps made by the owner itself (e.g. an in-place renormalisation that
        leaves never-stepped parameters at their values)."""
        if self._snapshot is not None:
            self._snapshot = [(p, p._version, old) for p, _, old in self._snapshot]

    def observe(self, parameters: Iterable[Tensor]) -> None:
        if self.done or not torch.is_grad_enabled():
            return
        learnable = [p for p in parameters if p.requires_grad]
        if not learnable:
            return
        if self._snapshot is None:
            self._snapshot = [(p, p._version, p.detach().clone()) for p in learnable]
        self._calls += 1
        if self._calls < self.after:
            return
        self.done = True
        snapshot, self._snapshot = self._snapshot, None
        if any(p._version != version for p, version, _ in snapshot):
            return
        if any(p.device != old.device or not torch.equal(p, old) for p, _, old in snapshot):
            return
        warnings.warn(
            f"{self.owner}: its parameters have not changed after {self.after} calls with "
            f"gradients enabled; expected them in the optimizer, e.g. {self.hint}",
            UserWarning,
            stacklevel=3,
        )
