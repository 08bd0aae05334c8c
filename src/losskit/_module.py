"""The base class of losskit's modules: a thin ``nn.Module`` over a pure function."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from inspect import Parameter
from typing import Any, ClassVar

from torch import Tensor, nn

from losskit._checks import check_reduction
from losskit._options import HyperParam

KEYWORD_ONLY = Parameter.KEYWORD_ONLY
POSITIONAL_OR_KEYWORD = Parameter.POSITIONAL_OR_KEYWORD


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


def loss_module(
    name: str,
    functional: Callable[..., Tensor],
    options: Sequence[HyperParam] = (),
    *,
    summary: str = "",
    example: str = "",
    reductions: tuple[str, ...] = ("mean", "sum", "none"),
    module: str | None = None,
) -> type[LossModule]:
    """A :class:`LossModule` subclass that only stores ``options`` and calls ``functional``.

    Its constructor is ``Name(<options, with their declared defaults>, *, reduction=...)`` (the
    signature ``help()`` shows, with the functional's annotations) and checks each bounded
    option given as a number with :meth:`HyperParam.check`, as the functional does; tensor
    options become buffers (the functional checks them). ``reductions`` are the ones the
    functional takes, the first the default. ``example`` (doctest lines) ends the docstring. The
    class gets the caller's module as ``__module__``, so assigning it to ``name`` there makes it
    picklable like a hand-written class.

    >>> import torch
    >>> from losskit._options import HyperParam
    >>> from losskit.functional import huber_loss
    >>> Huber = loss_module("Huber", huber_loss, (HyperParam("delta", 1.0, "", gt=0.0),))
    >>> Huber(delta=2.0)
    Huber(delta=2.0, reduction='mean')
    """
    loss = functional.__name__
    annotations = {n: p.annotation for n, p in inspect.signature(functional).parameters.items()}
    reduction = inspect.Parameter(
        "reduction",
        KEYWORD_ONLY,
        default=reductions[0],
        annotation=annotations.get("reduction", inspect.Parameter.empty),
    )
    parameters = [inspect.Parameter("self", POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(
            p.name,
            POSITIONAL_OR_KEYWORD,
            default=p.default,
            annotation=annotations.get(p.name, inspect.Parameter.empty),
        )
        for p in options
    ]
    signature = inspect.Signature([*parameters, reduction])

    def __init__(self: LossModule, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        reduction_value = values.pop("reduction")
        for p in options:
            if p.bounded and values[p.name] is not None and not isinstance(values[p.name], Tensor):
                values[p.name] = p.check(loss, values[p.name])
        LossModule.__init__(self, reduction=reduction_value, **values)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    first_line = (functional.__doc__ or "").strip().split("\n")[0].rstrip(".")
    doc = (
        f"{summary or first_line}; the module form of "
        f":func:`losskit.functional.{loss}`, which documents every option."
    )
    if example:
        doc += "\n\n" + inspect.cleandoc(example)
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", __name__)
    return type(
        name,
        (LossModule,),
        {
            "functional": staticmethod(functional),
            "reductions": tuple(reductions),
            "__init__": __init__,
            "__doc__": doc,
            "__module__": module,
            "__qualname__": name,
        },
    )
