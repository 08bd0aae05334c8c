"""Hyper-parameters, declared once.

A :class:`HyperParam` holds everything about one option of a loss: its name, default, meaning,
the values it may take (``gt``/``ge``/``lt``/``le`` bounds, finiteness) and the range ``tune``
searches. Each family declares its options in ``losskit/losses/<family>/options.py``; the
functional validates with :meth:`HyperParam.check`, the generated module's constructor does the
same, the Keras twin reads the same object, and ``losskit show``, ``losskit tune`` and the docs
print :meth:`HyperParam.describe`. ``tests/test_options.py`` proves that defaults and bounds agree
everywhere. Torch-free, like :mod:`losskit._errors`, so the Keras adapter can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from losskit._errors import check_number


@dataclass(frozen=True)
class HyperParam:
    """An option of a loss: its default, what it means, the values it may take and the range
    ``losskit tune`` searches (``low``..``high``, on a log scale if ``log``)."""

    name: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    #: the valid values in words, for constraints the bounds below cannot state (choices,
    #: integers, "or None"); derived from the bounds when they are given
    valid: str = ""
    gt: float | None = field(default=None, kw_only=True)
    ge: float | None = field(default=None, kw_only=True)
    lt: float | None = field(default=None, kw_only=True)
    le: float | None = field(default=None, kw_only=True)
    allow_inf: bool = field(default=False, kw_only=True)

    @property
    def bounded(self) -> bool:
        """Whether the option is a real number with bounds that :meth:`check` enforces."""
        return any(b is not None for b in (self.gt, self.ge, self.lt, self.le))

    def check(self, loss: str, value: object) -> float:
        """``value`` as a float if it lies inside the bounds, else :class:`LossInputError`
        naming ``loss`` and the option."""
        return check_number(
            loss,
            self.name,
            value,
            gt=self.gt,
            ge=self.ge,
            lt=self.lt,
            le=self.le,
            allow_inf=self.allow_inf,
        )

    def describe(self) -> str:
        """The valid values in words: ``"> 0"``, ``"0 < q < 1"``, or ``valid`` as written."""
        if self.valid or not self.bounded:
            return self.valid
        lower = [f"{b:g} {op}" for b, op in ((self.gt, "<"), (self.ge, "<=")) if b is not None]
        upper = [f"{op} {b:g}" for b, op in ((self.lt, "<"), (self.le, "<=")) if b is not None]
        if lower and upper:
            return f"{lower[0]} {self.name} {upper[0]}"
        if lower:  # "0 <" reads as "> 0" alone
            bound, op = lower[0].split(" ")
            return f"{'>' if op == '<' else '>='} {bound}"
        return upper[0]
