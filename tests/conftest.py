"""Test-session settings."""

import os

import torch
from hypothesis import settings

# Property tests search at random while developing; in CI (CI=true) they replay the same
# examples every run, so a run's result depends on the change alone.
settings.register_profile("losskit", max_examples=40, deadline=None)
settings.register_profile("ci", parent=settings.get_profile("losskit"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "losskit")

# One intra-op thread per test process: pytest-xdist already runs one process per core, and
# oversubscribed threads make small-tensor tests (gradcheck above all) many times slower.
torch.set_num_threads(1)
