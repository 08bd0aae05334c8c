"""Class weights for imbalanced data (public face)."""

from losskit.losses.imbalance.weights import class_balanced_weights

__all__ = ["class_balanced_weights"]
