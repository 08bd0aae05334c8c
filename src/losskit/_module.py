"""The base class of losskit's modules: a thin ``nn.Module`` over a pure function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from losskit._checks import check_reduction


class LossModule(nn.Module):
    """Stores a loss's hyper-parameters and calls its functional form.

    Tensor options (class weights, ``pos_weight``) are registered as buffers, so they move with
    ``.to(device)`` and round-trip through ``state_dict``. Per-call arguments (e.g. an elementwise
    ``weight``) are passed to ``forward`` as keywords and override stored options.
    """

    functional: ClassVar[Callable[..., Tensor]]
    reductions: ClassVar[tuple[str, ...]] = ("mean", "sum", "none")

    def __init__(self, *, reduction: str = "mean", **options: Any) -> None:
        super().__init__()
        check_reduction(self._loss_name(), reduction, self.reductions)
        self.reduction = reduction
        self._option_names = tuple(options)
        for name, value in options.items():
            if isinstance(value, Tensor):
                self.register_buffer(name, value)
            else:
                setattr(self, name, value)

    @classmethod
    def _loss_name(cls) -> str:
        return cls.functional.__name__

    def options(self) -> dict[str, Any]:
        """The stored hyper-parameters, as keyword arguments of the functional form."""
        return {name: getattr(self, name) for name in self._option_names}

    def forward(self, *inputs: Tensor, **per_call: Any) -> Tensor:
        kwargs = self.options()
        kwargs.update(per_call)
        return type(self).functional(*inputs, reduction=self.reduction, **kwargs)

    def extra_repr(self) -> str:
        parts = []
        for name, value in self.options().items():
            if isinstance(value, Tensor):
                value = f"Tensor{tuple(value.shape)}"
            parts.append(f"{name}={value}")
        parts.append(f"reduction={self.reduction!r}")
        return ", ".join(parts)
