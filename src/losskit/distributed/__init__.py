"""``torch.distributed`` support: global-batch reductions, cross-rank gathering with gradients,
vocab-parallel cross-entropy and distillation. Tested with the gloo backend on CPU processes."""

from losskit._collective import gather, gather_with_grad, is_distributed
from losskit._global_mean import global_count, global_mean
from losskit.losses.distillation.vocab_parallel import (
    vocab_parallel_distillation_loss,
    vocab_parallel_linear_distillation_loss,
)
from losskit.losses.linear_ce.vocab_parallel import (
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)

__all__ = [
    "gather",
    "gather_with_grad",
    "global_count",
    "global_mean",
    "is_distributed",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_distillation_loss",
    "vocab_parallel_linear_cross_entropy",
    "vocab_parallel_linear_distillation_loss",
]
