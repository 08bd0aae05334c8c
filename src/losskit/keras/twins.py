"""Which catalog entries have a Keras twin, and the PyTorch and Keras calls that must give the
same number: each family's ``twins`` module, merged in the order of
:data:`losskit.losses.FAMILIES` (the catalog's). The vocabulary is :mod:`losskit._twins`, which,
like the families' tables, needs neither Keras nor torch."""

from losskit._twins import Array, Case, Twin, gather
from losskit.losses import FAMILIES

__all__ = ["TWINS", "Array", "Case", "Twin"]

TWINS: dict[str, Twin] = gather(FAMILIES)
