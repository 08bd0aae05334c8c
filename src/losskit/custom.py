"""Writing your own loss: an elementwise function becomes a checked losskit loss, and named
losses combine into a weighted sum that reports its parts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from losskit._autocast import autocast_float32
from losskit._catalog import ErrorInput, HyperParam, LossCases, LossSpec, SampleInput, Task
from losskit._checks import LossInputError, check_number, fail, shape_str
from losskit._module import LossModule
from losskit._pointwise import pointwise_loss
from losskit._registry import get_catalog

__all__ = ["CombinedLoss", "LossParts", "elementwise_loss"]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _elementwise_samples(dtype: torch.dtype, device: torch.device) -> Iterable[SampleInput]:
    # the fixture builders load only when a test or the tour asks for a user loss's samples
    from losskit._fixtures import elementwise_samples

    return elementwise_samples({})(dtype, device)


def _elementwise_errors(loss: str) -> Callable[[], Iterable[ErrorInput]]:
    def errors() -> Iterable[ErrorInput]:
        from losskit._fixtures import elementwise_errors

        return elementwise_errors(loss, {})()

    return errors


def elementwise_loss(
    fn: Callable[..., Tensor] | None = None,
    *,
    name: str | None = None,
    task: Task = "regression",
    summary: str = "",
    formula: str = "",
    params: tuple[HyperParam, ...] = (),
    register: bool = True,
) -> Any:
    r"""Turn ``fn(input, target, **options) -> elementwise loss`` into a losskit loss.

    The result validates its inputs like the built-in regression losses (same shape and dtype,
    no broadcasting), accepts an elementwise ``weight`` and ``reduction``, computes half
    precision in float32, and carries ``.module`` (an ``nn.Module`` class) and ``.spec`` (its
    catalog entry, registered under ``name`` unless ``register=False``). The module pickles and
    ``torch.save``s like the built-in ones wherever the decorated function itself pickles: used
    as a decorator on a module-level function, as below.

    >>> import torch, losskit
    >>> @losskit.elementwise_loss(summary="Squared error of log1p values", register=False)
    ... def squared_log_error(input, target):
    ...     return (torch.log1p(input) - torch.log1p(target)).square()
    >>> squared_log_error(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])).item()
    0.0
    >>> criterion = squared_log_error.module(reduction="sum")
    """

    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        loss_name = name or fn.__name__

        def elementwise(x: Tensor, y: Tensor, options: dict[str, Any]) -> Tensor:
            out = fn(x, y, **options)
            if not isinstance(out, Tensor) or out.shape != x.shape:
                got = shape_str(out.shape) if isinstance(out, Tensor) else type(out).__name__
                fail(
                    loss_name,
                    "the elementwise function's result",
                    f"has shape {got}",
                    f"the shape of input, {shape_str(x.shape)} (return the loss per element; "
                    "losskit applies the reduction)",
                )
            return out

        @functools.wraps(fn)
        @autocast_float32
        def loss(
            input: Tensor,
            target: Tensor,
            *,
            weight: Tensor | None = None,
            reduction: str = "mean",
            **options: Any,
        ) -> Tensor:
            return pointwise_loss(
                loss_name,
                input,
                target,
                weight,
                reduction,
                lambda x, y: elementwise(x, y, options),
            )

        loss.__name__ = loss_name
        module = type(
            f"{_camel(loss_name)}Loss",
            (LossModule,),
            {
                "functional": staticmethod(loss),
                "__doc__": f"Module form of ``{loss_name}``.",
                # pickle (and torch.save) find a class by module and qualified name: the class
                # lives on the decorated function, ``<fn>.module``, in the user's module
                "__module__": loss.__module__,
                "__qualname__": f"{loss.__qualname__}.module",
            },
        )
        spec = LossSpec(
            name=loss_name,
            functional=loss,
            module=module,
            task=task,
            summary=summary or (fn.__doc__ or "").strip().split("\n")[0] or "user-defined loss",
            formula=formula,
            params=params,
            notes="user-defined with losskit.elementwise_loss",
            cases=LossCases(
                sample_inputs=_elementwise_samples, error_inputs=_elementwise_errors(loss_name)
            ),
        )
        if register:
            get_catalog().register(spec, replaceable=True)
        loss.module = module  # type: ignore[attr-defined]
        loss.spec = spec  # type: ignore[attr-defined]
        return loss

    return wrap(fn) if fn is not None else wrap


class LossParts(NamedTuple):
    """What :class:`CombinedLoss` returns: the weighted total (call ``.backward()`` on it) and
    each named part, unweighted and detached, for logging."""

    total: Tensor
    parts: dict[str, Tensor]


#: names a part cannot take: the attributes of the ModuleDict that holds the module parts
_RESERVED_NAMES = frozenset(dir(nn.ModuleDict()))


def _check_part(name: object, part: object) -> None:
    """One named part, checked when the CombinedLoss is built rather than at its first call."""
    if not isinstance(name, str) or not name or "." in name or name in _RESERVED_NAMES:
        # the names key an nn.ModuleDict (and the state_dict): the same rule for every part,
        # so turning a function into a module never makes its name invalid
        fail(
            "CombinedLoss",
            "losses",
            f"has a part named {name!r}",
            "non-empty string names without '.' that are not attributes of nn.ModuleDict "
            "(such as 'training', 'forward', 'keys', 'state_dict')",
        )
    if not callable(part):
        fail(
            "CombinedLoss",
            f"losses[{name!r}]",
            f"has type {type(part).__name__}",
            "a loss: an nn.Module or a function (input, target) -> loss",
        )


class CombinedLoss(nn.Module):
    r"""A weighted sum of named losses, :math:`L = \sum_k w_k L_k`, that also reports each part.

    Every loss is called on the same inputs, unless the call names per-loss inputs:

    >>> import torch, losskit
    >>> criterion = losskit.CombinedLoss(
    ...     {"mse": losskit.MSELoss(), "l1": losskit.L1Loss()}, weights={"l1": 0.5})
    >>> out = criterion(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    >>> out.total.item(), {k: v.item() for k, v in out.parts.items()}
    (6.0, {'mse': 5.0, 'l1': 2.0})
    >>> # different heads: criterion(mse=(pred, y), l1=(pred2, y2))
    """

    def __init__(
        self,
        losses: Mapping[str, Callable[..., Tensor]],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(losses, Mapping):
            fail(
                "CombinedLoss", "losses", f"is a {type(losses).__name__}", "a mapping name -> loss"
            )
        if not losses:
            raise LossInputError("CombinedLoss: losses is empty; expected at least one named loss")
        for key, part in losses.items():
            _check_part(key, part)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            fail(
                "CombinedLoss",
                "weights",
                f"name {', '.join(unknown)}",
                f"names among the losses: {', '.join(losses)}",
            )
        self.names = tuple(losses)
        self.weights = {
            k: check_number("CombinedLoss", f"weights[{k!r}]", weights.get(k, 1.0), ge=0.0)
            for k in self.names
        }
        # modules go in a ModuleDict so .to(), state_dict and parameters() reach them
        self.modules_ = nn.ModuleDict({k: v for k, v in losses.items() if isinstance(v, nn.Module)})
        self._functions = {k: v for k, v in losses.items() if not isinstance(v, nn.Module)}

    def _loss(self, name: str) -> Callable[..., Tensor]:
        return self.modules_[name] if name in self.modules_ else self._functions[name]

    def forward(self, *inputs: Tensor, **per_loss: tuple[Tensor, ...]) -> LossParts:
        unknown = sorted(set(per_loss) - set(self.names))
        if unknown:
            fail(
                "CombinedLoss",
                "per-loss inputs",
                f"name {', '.join(unknown)}",
                f"names among the losses: {', '.join(self.names)}",
            )
        parts: dict[str, Tensor] = {}
        total: Tensor | None = None
        for name in self.names:
            args = per_loss.get(name, inputs)
            if not args:
                fail(
                    "CombinedLoss",
                    f"inputs of {name!r}",
                    "are missing",
                    f"positional inputs or {name}=(input, target)",
                )
            value = self._loss(name)(*args)
            term = value * self.weights[name]
            total = term if total is None else total + term
            parts[name] = value.detach()
        assert total is not None
        return LossParts(total, parts)

    def extra_repr(self) -> str:
        return f"weights={self.weights}, functions={list(self._functions)}"
