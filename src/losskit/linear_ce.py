"""Chunked linear cross-entropy (public face of the linear_ce family)."""

from losskit.losses.linear_ce.functional import VocabShard, auto_chunk_size, linear_cross_entropy

__all__ = ["VocabShard", "auto_chunk_size", "linear_cross_entropy"]
