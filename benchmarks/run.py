"""Regenerate ``benchmarks/RESULTS.md`` and save the run's JSON in ``benchmarks/results/``.

``make bench`` runs this. Extra arguments go to ``losskit bench`` (the harness lives in
``losskit.bench``, so an installed losskit can run it too), e.g.::

    python benchmarks/run.py --quick            # a one-minute check
    python benchmarks/run.py mse cross_entropy  # some losses only
    make bench BENCH_ARGS="--threads 2"
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from losskit.cli import app

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    outputs = [
        "--json",
        str(HERE / "results" / f"bench-{stamp}.json"),
        "--markdown",
        str(HERE / "RESULTS.md"),
    ]
    app(["bench", *args, *outputs], prog_name="losskit")


if __name__ == "__main__":
    main()
