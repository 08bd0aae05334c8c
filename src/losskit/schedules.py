"""Margin schedules for the triplet losses (public face)."""

from losskit.losses.triplet.schedules import CosineMargin, LinearMargin, MarginSchedule, margin_at

__all__ = ["CosineMargin", "LinearMargin", "MarginSchedule", "margin_at"]
