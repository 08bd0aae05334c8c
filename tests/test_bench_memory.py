"""The memory meter's limits: a size that needs too much memory fails to allocate in the
measuring process, and one that runs too long is stopped, each reported as over its limit."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from losskit.bench.memory import measure_memory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's"
)
PML = "pytorch-metric-learning BatchHardMiner+TripletMarginLoss"


def test_within_the_limits_gives_the_peak_and_the_run_time():
    got = measure_memory("mse", "losskit", 1 << 20, "float32", "cpu", max_memory=64 << 20)
    assert got.get("limit") is None and got["peak_bytes"] >= 4 << 20, got
    assert got["run_s"] > 0 and got["method"] == "rss"


def test_over_the_memory_limit():
    """1M floats need a 4 MiB gradient: over a 1 MiB limit (seen after the run)."""
    got = measure_memory("mse", "losskit", 1 << 20, "float32", "cpu", max_memory=1 << 20)
    assert got["limit"] == "memory" and "limit 1 MiB" in got["error"], got


@pytest.mark.skipif(
    importlib.util.find_spec("pytorch_metric_learning") is None, reason="needs the bench extra"
)
def test_an_allocation_beyond_the_cap_fails_instead_of_happening():
    """pytorch-metric-learning's batch-hard miner at B=8192 allocates 1 GiB at once: with a
    64 MiB limit the address-space cap makes that allocation fail in the child."""
    got = measure_memory("triplet", PML, 8192, "float32", "cpu", max_memory=64 << 20)
    assert got["limit"] == "memory" and "allocate" in got["error"], got


def test_over_the_time_limit():
    """A CTC batch of 256 takes milliseconds: over a limit of 0.1 ms."""
    got = measure_memory("ctc", "losskit", 256, "float32", "cpu", max_run_time=1e-4)
    assert got["limit"] == "time" and "limit 0.0001 s" in got["error"], got


@pytest.mark.skipif(
    importlib.util.find_spec("pytorch_metric_learning") is None, reason="needs the bench extra"
)
def test_a_run_far_over_the_time_limit_is_stopped():
    """B=8192 takes seconds in pytorch-metric-learning: an alarm ends it after 1 s (the least
    the alarm waits) instead of letting it finish."""
    got = measure_memory("triplet", PML, 8192, "float32", "cpu", max_run_time=0.01)
    assert got["limit"] == "time" and "stopped: a run went on far past" in got["error"], got
