"""``torch.distributed`` support: global-batch reductions, cross-rank gathering with gradients,
vocab-parallel cross-entropy. Tested with the gloo backend on CPU processes."""
