"""How many parallel kernels one forward+backward runs: each loss against its references.

On the CPU with more than one thread, a kernel over enough elements is an OpenMP parallel
region, and so is every call of some kernels at any size (MKL's vector ``exp``, ``log``,
``sqrt``, ``tanh`` ...; softmax and log-softmax). While other processes keep the cores busy a
region can wait a scheduler slice for its second thread (on the 2-core machine of the
benchmarks, about 8 ms, in episodes that last seconds: ``losskit bench --background-load 2``
then shows ratios of 2-3 for an implementation whose region count is that many times its
reference's). The count is a property of the code, not of the machine's mood, so this script
prints it for every benchmarked loss: the kernels (aten operators that run no other operator,
views left out) whose largest input holds at least 32768 elements (torch's grain size for
splitting elementwise work; matrix products included; for gather, scatter and the NLL
forward, whose work runs over an index, the largest input after the first), plus the kernels
that this machine's torch runs on several threads at 1000 elements already (measured first:
process CPU time over wall time above 1.3 while one runs in a loop)::

    python benchmarks/parallel_kernels.py                    # each loss's largest size
    python benchmarks/parallel_kernels.py sigmoid_focal ctc --all-sizes

Each call runs once under ``torch.profiler``, at ``--threads`` (default 2: chunk sizes may
depend on the thread count).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch.profiler import profile

from losskit._autograd import SERIAL_MAX as GRAIN  # torch's grain size for elementwise work
from losskit.bench.calls import OURS, Call, bench_sample, implementations
from losskit.bench.harness import input_bytes, select_specs
from losskit.bench.settings import QUICK_MAX_INPUT_BYTES

#: operators that only make views, allocate or read metadata: no kernel of their own
NOT_KERNELS = frozenset(
    "aten::" + name
    for name in [
        "view",
        "as_strided",
        "t",
        "transpose",
        "expand",
        "select",
        "unsqueeze",
        "squeeze",
        "reshape",
        "split",
        "narrow",
        "detach",
        "alias",
        "permute",
        "_reshape_alias",
        "empty",
        "empty_like",
        "empty_strided",
        "resolve_conj",
        "resolve_neg",
        "result_type",
        "to",
        "lift_fresh",
        "numpy_T",
        "contiguous",
        "chunk",
        "unbind",
        "item",
        "_local_scalar_dense",
        "is_nonzero",
        "slice",
        "split_with_sizes",
        "view_as",
        "expand_as",
        "unflatten",
        "flatten",
        "squeeze_",
        "unsqueeze_",
        "_unsafe_view",
    ]
)
#: kernels whose work runs over an index (gather's and scatter's, the target of the NLL
#: forward), not over the tensor they read from or write into: a gather of 128 indices from a
#: (128, 8192) tensor is one thread's work (the process's CPU time over wall time is 1.0 while
#: one runs in a loop with two threads). Their size is their largest input after the first.
INDEXED = frozenset(
    "aten::" + name
    for name in [
        "gather",
        "scatter",
        "scatter_",
        "scatter_add",
        "scatter_add_",
        "scatter_reduce",
        "scatter_reduce_",
        "nll_loss_forward",
        "nll_loss2d_forward",
    ]
)
#: kernels that may open a parallel region at any size, by the profiler's name, each with a
#: call on 1000 elements (in place where the name says so)
_CANDIDATES: dict[str, Callable[[torch.Tensor], object]] = {
    **{
        f"aten::{name}": (lambda t, name=name: getattr(torch, name)(t))
        for name in [
            "exp",
            "log",
            "log2",
            "log10",
            "log1p",
            "expm1",
            "exp2",
            "sqrt",
            "rsqrt",
            "tanh",
            "sigmoid",
            "sin",
            "cos",
            "erf",
            "erfc",
            "erfinv",
            "trunc",
            "atan",
            "asin",
            "acos",
            "logit",
            "abs",
            "neg",
            "reciprocal",
        ]
    },
    **{
        f"aten::{name}_": (lambda t, name=name: getattr(t.clone(), f"{name}_")())
        for name in ["exp", "log", "sqrt", "tanh", "sigmoid"]
    },
    "aten::_softmax": lambda t: t.view(10, 100).softmax(1),
    "aten::_log_softmax": lambda t: t.view(10, 100).log_softmax(1),
    "aten::log_sigmoid_forward": torch.nn.functional.logsigmoid,
    "aten::sum": lambda t: t.view(10, 100).sum(1),
    "aten::amax": lambda t: t.view(10, 100).amax(1),
    "aten::mul": lambda t: t * t,
    "aten::add": lambda t: t + t,
}


def always_parallel(seconds: float = 0.1) -> frozenset[str]:
    """The kernels of :data:`_CANDIDATES` that keep more than one thread busy at 1000
    elements: the process's CPU time over the wall time, while one runs in a loop, above 1.3."""
    x = torch.rand(1000) * 0.5 + 0.25
    found = set()
    for name, call in _CANDIDATES.items():
        call(x)
        time.sleep(0.02)  # the threads of the previous kernel go back to sleep
        wall, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall < seconds:
            for _ in range(20):
                call(x)
        if (time.process_time() - cpu) / (time.perf_counter() - wall) > 1.3:
            found.add(name)
    return frozenset(found)


def _numel(shape: object) -> int:
    if not (isinstance(shape, list) and shape and all(isinstance(x, int) for x in shape)):
        return 0
    return math.prod(shape)


def parallel_kernels(call: Callable[[], None], always: frozenset[str] = frozenset()) -> int:
    """Kernels over at least :data:`GRAIN` elements (for :data:`INDEXED` kernels, index
    elements), or named in ``always``, in one run of ``call`` (after a warm-up)."""
    call()
    with profile(record_shapes=True) as prof:
        call()
    count = 0
    for event in prof.events():
        if not event.name.startswith("aten::") or event.name in NOT_KERNELS:
            continue
        if any(
            c.name.startswith("aten::") and c.name not in NOT_KERNELS for c in event.cpu_children
        ):
            continue  # a composite: its children are counted
        shapes = event.input_shapes or []
        if event.name in INDEXED:
            shapes = shapes[1:]
        largest = max((_numel(s) for s in shapes), default=0)
        if largest >= GRAIN or event.name in always:
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="losses (default: every benchmarked one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--all-sizes", action="store_true", help="every size, not the largest")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    always = always_parallel() if args.threads > 1 else frozenset()
    print(f"parallel kernels per forward+backward, {args.threads} thread(s)")
    print("parallel at 1000 elements:", ", ".join(sorted(n[6:] for n in always)) or "none")
    print("| loss | size | losskit | reference | its kernels | ratio |")
    print("|---|---|---|---|---|---|")
    for spec in select_specs(args.names):
        impls = implementations(spec)
        # the sizes `losskit bench --quick` keeps by their inputs (known without allocating)
        sizes = [
            s
            for s in spec.bench_sizes
            if (input_bytes(spec, s, torch.float32) or 0) <= QUICK_MAX_INPUT_BYTES
        ]
        for size in sizes if args.all_sizes else sizes[-1:]:
            ours = parallel_kernels(
                Call(impls[OURS], bench_sample(spec, OURS, size, torch.float32, cpu)), always
            )
            for name, fn in impls.items():
                if name == OURS:
                    continue
                try:
                    theirs = parallel_kernels(
                        Call(fn, bench_sample(spec, name, size, torch.float32, cpu)), always
                    )
                except RuntimeError:  # a reference that refuses this size (pml's O(B^3) memory)
                    print(f"| {spec.name} | {size:,} | {ours} | {name} | not run | |")
                    continue
                ratio = f"{ours / theirs:.2f}" if theirs else "–"
                print(f"| {spec.name} | {size:,} | {ours} | {name} | {theirs} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
