"""Regenerate ``benchmarks/RESULTS.md`` and the plots beside it (``benchmarks/<family>.png``), and
save the run's JSON in ``benchmarks/results/``.

``make bench`` runs this. By default every benchmarked loss is measured at one thread and at
torch's default thread count, on the idle machine and again with two busy background processes
(``--threads 1,default --background-load 0,2``). Extra arguments go to ``losskit bench`` after
those defaults, so they override them (the harness lives in ``losskit.bench``, so an installed
losskit can run it too), e.g.::

    python benchmarks/run.py --quick                  # every loss, sizes within quick's limits
    python benchmarks/run.py mse cross_entropy        # some losses only
    make bench BENCH_ARGS="--background-load 0"       # no run under load
    make bench BENCH_ARGS="--max-run-time 2 --max-memory 2G"   # every size within those limits
    # every size within --quick's limits, short timings: RESULTS.md as committed (7 min here)
    make bench BENCH_ARGS="--min-time 0.1 --max-run-time 0.3 --max-memory 512M --max-inputs 32M"

Without limits the full run measures every catalog size four times over, the largest ones (linear
cross-entropy at N=8192: a 2 GiB logits matrix in the naive reference, minutes per run on two
cores) included: hours on a small machine.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from losskit.cli import app

HERE = Path(__file__).resolve().parent

DEFAULTS = ["--threads", "1,default", "--background-load", "0,2"]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    outputs = [
        "--json",
        str(HERE / "results" / f"bench-{stamp}.json"),
        "--markdown",
        str(HERE / "RESULTS.md"),
        "--plots",
        str(HERE),
    ]
    app(["bench", *DEFAULTS, *outputs, *args], prog_name="losskit")


if __name__ == "__main__":
    main()
