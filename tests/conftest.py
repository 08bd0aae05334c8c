"""Test-session settings."""

import torch

# One intra-op thread per test process: pytest-xdist already runs one process per core, and
# oversubscribed threads make small-tensor tests (gradcheck above all) many times slower.
torch.set_num_threads(1)
