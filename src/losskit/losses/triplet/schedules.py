"""Margin schedules: start with a small margin and grow it as the embedding learns.

A schedule is any callable ``step -> margin``; :class:`LinearMargin` and :class:`CosineMargin`
are the usual ramps. Give one as ``margin`` to :class:`losskit.TripletLoss` or
:class:`losskit.TripletMarginLoss` and advance it with ``criterion.step()`` (once per epoch or
per optimiser step, as you like):

>>> import losskit
>>> criterion = losskit.TripletLoss(margin=losskit.LinearMargin(0.1, 0.5, steps=4))
>>> [round(criterion.step(), 2) for _ in range(5)]
[0.2, 0.3, 0.4, 0.5, 0.5]
>>> criterion = losskit.TripletLoss(margin=lambda step: 0.1 * 2 ** min(step, 3))
>>> criterion.current_margin
0.1
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from losskit._checks import check_number, fail
from losskit.losses.triplet.options import MARGIN

__all__ = ["CosineMargin", "LinearMargin", "MarginSchedule", "margin_at"]

#: a margin schedule: the margin to use after ``step`` calls of ``criterion.step()``
MarginSchedule = Callable[[int], float]


def _check_steps(name: str, steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        fail(name, "steps", f"is {steps!r}", "a positive int")
    return steps


@dataclass(frozen=True)
class LinearMargin:
    """From ``start`` to ``end`` in a straight line over ``steps`` steps, then ``end``.

    >>> from losskit import LinearMargin
    >>> schedule = LinearMargin(0.1, 0.3, steps=2)
    >>> [round(schedule(s), 2) for s in range(4)]
    [0.1, 0.2, 0.3, 0.3]
    """

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        check_number("LinearMargin", "start", self.start, ge=0.0)
        check_number("LinearMargin", "end", self.end, ge=0.0)
        _check_steps("LinearMargin", self.steps)

    def __call__(self, step: int) -> float:
        progress = min(max(step, 0), self.steps) / self.steps
        return self.start + (self.end - self.start) * progress


@dataclass(frozen=True)
class CosineMargin:
    """From ``start`` to ``end`` along half a cosine over ``steps`` steps, then ``end``: slow at
    both ends, fastest in the middle.

    >>> from losskit import CosineMargin
    >>> schedule = CosineMargin(0.0, 1.0, steps=4)
    >>> [round(schedule(s), 3) for s in range(5)]
    [0.0, 0.146, 0.5, 0.854, 1.0]
    """

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        check_number("CosineMargin", "start", self.start, ge=0.0)
        check_number("CosineMargin", "end", self.end, ge=0.0)
        _check_steps("CosineMargin", self.steps)

    def __call__(self, step: int) -> float:
        progress = min(max(step, 0), self.steps) / self.steps
        return self.start + (self.end - self.start) * (1.0 - math.cos(math.pi * progress)) / 2.0


def margin_at(loss: str, margin: float | MarginSchedule, step: int) -> float:
    """The margin at ``step``: a number as it is, a schedule evaluated. The result must be a
    finite number >= 0."""
    value = margin(step) if callable(margin) else margin
    # the label form's bounds, the looser of the two margins'; TripletMarginLoss adds its own
    return MARGIN.check(loss, value)
