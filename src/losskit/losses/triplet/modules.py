"""Module forms of the triplet losses, with margin schedules, statistics and cross-process
mining."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from torch import Tensor

from losskit._collective import gather, gather_with_grad
from losskit._module import LossModule
from losskit._options import HyperParam
from losskit._reduce import Reduction
from losskit.losses.triplet import functional as LF
from losskit.losses.triplet.distances import DistanceName, check_distance_name
from losskit.losses.triplet.functional import (
    TRIPLET_REDUCTIONS,
    Miner,
    TripletReduction,
    TripletStats,
    check_bool,
    triplet_loss_and_stats,
)
from losskit.losses.triplet.mining import check_miner
from losskit.losses.triplet.options import (
    DISTANCE,
    EPS,
    EXPLICIT_DISTANCE,
    EXPLICIT_MARGIN,
    MARGIN,
    MINER,
    SOFT_MARGIN,
    SWAP,
    P,
)
from losskit.losses.triplet.schedules import MarginSchedule, margin_at

__all__ = ["TripletLoss", "TripletMarginLoss"]


class _ScheduledMargin(LossModule):
    """A loss module whose ``margin`` is a number or a schedule ``step -> margin``, advanced by
    :meth:`step`. The step count round-trips through ``state_dict``."""

    #: the loss's margin option, whose bounds every value of a schedule must keep
    _margin: ClassVar[HyperParam]

    def __init__(self, margin: float | MarginSchedule, **options: Any) -> None:
        loss = self._loss_name()
        self._margin.check(loss, margin_at(loss, margin, 0))
        super().__init__(margin=margin, **options)
        self.steps_taken = 0

    @property
    def current_margin(self) -> float:
        """The margin the next call uses."""
        value = margin_at(self._loss_name(), self.margin, self.steps_taken)
        return self._margin.check(self._loss_name(), value)

    def step(self) -> float:
        """Advance the margin schedule by one step; returns the new margin."""
        self.steps_taken += 1
        return self.current_margin

    def _call_options(self, per_call: dict[str, Any]) -> dict[str, Any]:
        kwargs = self.options()
        kwargs["margin"] = self.current_margin
        kwargs.update(per_call)
        return kwargs

    def get_extra_state(self) -> dict[str, int]:
        return {"steps_taken": self.steps_taken}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.steps_taken = int(state["steps_taken"])


class TripletMarginLoss(_ScheduledMargin):
    """Triplet margin loss on explicit ``(anchor, positive, negative)`` rows; see
    :func:`losskit.functional.triplet_margin_loss`. ``margin`` may be a schedule.

    >>> import torch, losskit
    >>> criterion = losskit.TripletMarginLoss(margin=0.5)
    >>> a, p, n = torch.randn(3, 8, 16).unbind(0)
    >>> loss = criterion(a, p, n)
    """

    functional = staticmethod(LF.triplet_margin_loss)
    _margin = EXPLICIT_MARGIN

    def __init__(
        self,
        margin: float | MarginSchedule = EXPLICIT_MARGIN.default,
        *,
        p: float = P.default,
        eps: float = EPS.default,
        swap: bool = SWAP.default,
        distance: DistanceName
        | Callable[[Tensor, Tensor], Tensor]
        | None = EXPLICIT_DISTANCE.default,
        reduction: Reduction = "mean",
    ) -> None:
        loss = self._loss_name()
        P.check(loss, p)
        EPS.check(loss, eps)
        if distance is not None:
            check_distance_name(loss, distance)
        super().__init__(margin, p=p, eps=eps, swap=swap, distance=distance, reduction=reduction)

    def forward(
        self, anchor: Tensor, positive: Tensor, negative: Tensor, **per_call: Any
    ) -> Tensor:
        kwargs = self._call_options(per_call)
        return LF.triplet_margin_loss(
            anchor, positive, negative, reduction=self.reduction, **kwargs
        )


class TripletLoss(_ScheduledMargin):
    """Triplet loss with online mining on ``(embeddings, labels)``; see
    :func:`losskit.functional.triplet_loss` for the options.

    Beyond the functional form:

    * ``margin`` may be a schedule (:class:`losskit.LinearMargin`, :class:`losskit.CosineMargin`
      or any callable of the step), advanced by :meth:`step`;
    * :attr:`last_stats` holds the :class:`~losskit.functional.triplet.TripletStats` of the last
      call (number of triplets, active fraction, mean positive and negative distances), as
      detached tensors: recording them costs no host synchronisation;
    * ``gather=True`` mines over the global batch under ``torch.distributed``: embeddings are
      all-gathered with :func:`losskit.distributed.gather_with_grad` and labels with
      :func:`losskit.distributed.gather`, every process computes the loss of the concatenated
      batch, and each process's gradient is that of its own rows. Outside
      ``torch.distributed`` it does nothing.

    >>> import torch, losskit
    >>> criterion = losskit.TripletLoss(margin=0.2, miner="batch_hard")
    >>> emb, labels = torch.randn(16, 8), torch.arange(4).repeat(4)
    >>> loss = criterion(emb, labels)
    >>> sorted(criterion.last_stats.as_dict())
    ['active_fraction', 'margin', 'mean_negative_distance', 'mean_positive_distance', 'num_triplets']
    """

    functional = staticmethod(LF.triplet_loss)
    reductions: ClassVar[tuple[str, ...]] = TRIPLET_REDUCTIONS
    _margin = MARGIN

    def __init__(
        self,
        margin: float | MarginSchedule = MARGIN.default,
        *,
        distance: DistanceName | Callable[[Tensor, Tensor], Tensor] = DISTANCE.default,
        miner: Literal["batch_all", "batch_hard", "semi_hard"] | Miner = MINER.default,
        soft_margin: bool = SOFT_MARGIN.default,
        gather: bool = False,
        reduction: TripletReduction = "mean",
    ) -> None:
        loss = self._loss_name()
        check_distance_name(loss, distance)
        check_miner(loss, miner)
        check_bool(loss, "soft_margin", soft_margin)
        check_bool(loss, "gather", gather)
        super().__init__(
            margin, distance=distance, miner=miner, soft_margin=soft_margin, reduction=reduction
        )
        self.gather = gather
        self.last_stats: TripletStats | None = None

    def forward(self, embeddings: Tensor, labels: Tensor, **per_call: Any) -> Tensor:
        kwargs = self._call_options(per_call)
        if self.gather:
            embeddings, labels = gather_with_grad(embeddings), gather(labels)
        loss, self.last_stats = triplet_loss_and_stats(
            embeddings, labels, reduction=self.reduction, **kwargs
        )
        return loss

    def extra_repr(self) -> str:
        return super().extra_repr() + (", gather=True" if self.gather else "")
