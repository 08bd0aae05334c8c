"""Which time ratio is steady on a busy machine: the ratio of the medians, or the median of
the ratios of paired blocks?

The harness interleaves losskit's and the reference's blocks (A B, B A, ...), so block ``i`` of
each runs back to back, under whatever load the machine has then. This script times a few
cases repeatedly with the harness's own timing (``losskit.bench.timing.time_calls``), under
``--load`` busy processes, and prints for each estimator its range over the repeats and its
median. A steadier estimator has a narrower range; on a quiet machine (``--load 0``) the two
should agree. The last columns count the repeats where losskit was slower in every pair, and
those whose pairs a sign test calls slower (the report's bold,
``losskit.bench.report.clearly_slower``): for a parity case, chance's share.
docs/benchmarks/index.md quotes this script's output::

    python benchmarks/ratio_estimators.py --threads 1 --load 2    # 6 repeats of 0.1 s
    python benchmarks/ratio_estimators.py --threads 1 --load 0
    # the harness's blocks under load: 3 (the least without load) against 9
    python benchmarks/ratio_estimators.py --threads 2 --load 2 --repeats 20 \
        --cases cross_entropy:1048576,mse:1048576 --min-blocks 3
    python benchmarks/ratio_estimators.py --threads 2 --load 2 --repeats 20 \
        --cases cross_entropy:1048576,mse:1048576 --min-blocks 9
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch

import losskit
from losskit.bench.calls import OURS, Call, bench_sample, implementations
from losskit.bench.harness import _paired_ratios
from losskit.bench.load import BackgroundLoad
from losskit.bench.report import SLOWER_P, sign_test_p
from losskit.bench.timing import MIN_BLOCKS, time_calls

#: parity or near-parity cases at small sizes, where load noise is largest against the loss
CASES = (
    ("mse", 32),
    ("cross_entropy", 32),
    ("sigmoid_focal", 1024),
    ("triplet_margin", 32),
    ("linear_cross_entropy", 32),
)


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} (median {statistics.median(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--load", type=int, default=2, help="busy processes meanwhile")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--budget", type=float, default=0.1, help="seconds per implementation")
    parser.add_argument(
        "--cases",
        default=",".join(name for name, _ in CASES),
        help="losses, each NAME (its size above) or NAME:SIZE",
    )
    parser.add_argument("--min-blocks", type=int, default=MIN_BLOCKS, help="pairs at least")
    args = parser.parse_args(argv)

    sizes = dict(CASES)
    chosen = []
    for item in args.cases.split(","):
        name, _, size = item.partition(":")
        chosen.append((name, int(size) if size else sizes[name]))
    device = torch.device("cpu")
    print(
        f"{args.threads} thread(s), {args.load} busy process(es), {args.repeats} repeats of "
        f"{args.budget} s, wall clock; range over the repeats (median)"
    )
    print(
        f"{'loss':22s} {'size':>8s}  {'ratio of medians':28s}  {'median of paired ratios':28s}"
        "  slower: every pair / sign test"
    )
    load = BackgroundLoad(args.load) if args.load else contextlib.nullcontext()
    with load:
        for name, size in chosen:
            spec = losskit.catalog[name]
            impls = implementations(spec)
            ref = next(n for n in impls if n != OURS)
            calls = {
                n: Call(impls[n], bench_sample(spec, n, size, torch.float32, device))
                for n in (OURS, ref)
            }
            of_medians, of_pairs, every, slower = [], [], 0, 0
            for _ in range(args.repeats):
                timed = time_calls(
                    calls, args.budget, args.threads, "wall", min_blocks=args.min_blocks
                )
                ours = timed.blocks[OURS][timed.seeded.get(OURS, 0) :]
                theirs = timed.blocks[ref][timed.seeded.get(ref, 0) :]
                of_medians.append(statistics.median(ours) / statistics.median(theirs))
                paired = _paired_ratios(ours, theirs)  # what the harness reports
                assert paired is not None
                of_pairs.append(paired.median)
                every += paired.slower == paired.pairs
                slower += sign_test_p(paired.slower, paired.pairs) < SLOWER_P
            print(
                f"{name:22s} {size:8d}  {_span(of_medians):28s}  {_span(of_pairs):28s}"
                f"  {every}/{args.repeats} / {slower}/{args.repeats}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
