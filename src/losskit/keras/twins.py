"""Which catalog entries have a Keras twin, and the PyTorch and Keras calls that must give the
same number: the table lives in :mod:`losskit._keras_twins`, which needs no Keras."""

from losskit._keras_twins import TWINS, Array, Case, Twin

__all__ = ["TWINS", "Array", "Case", "Twin"]
