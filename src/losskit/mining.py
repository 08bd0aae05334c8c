"""Online triplet miners: the public face of the triplet family's mining."""

from losskit.losses.triplet.mining import (
    MINERS,
    batch_all_triplets,
    batch_hard_triplets,
    semi_hard_triplets,
)

__all__ = ["MINERS", "batch_all_triplets", "batch_hard_triplets", "semi_hard_triplets"]
