"""The catalog: one registry of every loss, iterated by the tests, the benchmarks, the CLI and
the adapters, so that adding a loss is one file of math plus one entry here.

This module defines what an entry is; the entries live in the families
(``losskit/losses/<family>/spec.py``) and :mod:`losskit._registry` builds ``losskit.catalog``
from them, plus whatever users register with :func:`losskit.elementwise_loss`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from losskit._autocast import AUTOCAST_POLICIES, AutocastPolicy
from losskit._checks import LossInputError
from losskit._options import HyperParam

Task = Literal[
    "regression",
    "classification",
    "multilabel",
    "segmentation",
    "embedding",
    "ranking",
    "sequence",
    "distribution",
]
TASKS: tuple[str, ...] = (
    "regression",
    "classification",
    "multilabel",
    "segmentation",
    "embedding",
    "ranking",
    "sequence",
    "distribution",
)
#: ``fullgraph``: ``torch.compile(fullgraph=True)`` traces the loss without a break;
#: ``graph_break``: compiles with a documented break (e.g. data-dependent mining).
CompileStatus = Literal["fullgraph", "graph_break"]
InputSpace = Literal["raw", "probabilities", "log_probabilities"]


@dataclass(frozen=True)
class SampleInput:
    """One valid call: ``functional(*args, **kwargs)``.

    ``grad_args`` are the positions of ``args`` that are differentiable (gradcheck runs on
    them); ``reference`` is ``False`` when the reference implementation deliberately disagrees
    (e.g. torch's NaN for an all-ignored mean), in which case the value must be 0.
    """

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    desc: str = ""
    grad_args: tuple[int, ...] = (0,)
    reference: bool = True
    #: "extreme": huge logits or residuals, or probabilities at exactly 0 and 1: the result must
    #: be finite, but gradcheck and half-precision comparisons skip it.
    tags: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        shapes = [tuple(a.shape) if isinstance(a, Tensor) else a for a in self.args]
        opts = {k: (tuple(v.shape) if isinstance(v, Tensor) else v) for k, v in self.kwargs.items()}
        return f"SampleInput({self.desc or ''} args={shapes} kwargs={opts})"


@dataclass(frozen=True)
class ErrorInput:
    """A bad call and a regular expression its :class:`LossInputError` message must match.
    ``checks="full"`` cases need the value checks (``losskit.set_checks("full")``)."""

    sample: SampleInput
    match: str
    checks: Literal["fast", "full"] = "fast"


@dataclass(frozen=True)
class WorkedExample:
    """A textbook number the loss must reproduce; shown by ``losskit show`` and the tour."""

    title: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    expected: float
    decimals: int = 3


SampleFn = Callable[[torch.dtype, torch.device], Iterable[SampleInput]]
ErrorFn = Callable[[], Iterable[ErrorInput]]


def _no_samples(dtype: torch.dtype, device: torch.device) -> Iterable[SampleInput]:
    return ()


def _no_errors() -> Iterable[ErrorInput]:
    return ()


BenchFn = Callable[[int, torch.dtype, torch.device], "SampleInput"]


@dataclass(frozen=True)
class LossCases:
    """The fixtures of one catalog entry, kept apart from its metadata: tests, the benchmark
    harness and ``losskit tour`` load them on demand (``losses/<family>/cases.py``)."""

    #: same signature as the functional; the value it must match (torch.nn where torch has the
    #: loss, otherwise an explicit float64 formula)
    reference: Callable[..., Tensor] | None = None
    #: valid argument sets, by dtype and device
    sample_inputs: SampleFn = _no_samples
    #: bad calls and the message each must raise
    error_inputs: ErrorFn = _no_errors
    #: benchmark inputs of a given size; ``None``: the loss is not benchmarked
    bench_inputs: BenchFn | None = None
    #: what the benchmark compares against, by name; defaults to ``{reference_name: reference}``
    bench_references: Mapping[str, Callable[..., Tensor]] | None = None
    #: for a reference that takes its inputs in another form (one-hot targets, a miner's
    #: output, a logits matrix instead of hidden states and weights): reference name -> a
    #: function from the benchmark's ``SampleInput`` to that reference's, applied outside the
    #: timed region
    bench_reference_inputs: Mapping[str, Callable[[SampleInput], SampleInput]] | None = None
    #: names among the benchmark references that compute less than the loss (plain
    #: cross-entropy for focal loss): reported for scale, never a goal, so a ratio over 1
    #: against them is not "slower than the reference"
    bench_baselines: frozenset[str] = frozenset()


_NO_CASES = LossCases()


@functools.cache
def _cases_of(module: str) -> Mapping[str, LossCases]:
    return importlib.import_module(module).CASES


@dataclass(frozen=True)
class LossSpec:
    """Everything losskit knows about one loss."""

    name: str
    functional: Callable[..., Tensor]
    module: type[torch.nn.Module]
    task: Task
    summary: str
    formula: str
    aliases: tuple[str, ...] = ()
    params: tuple[HyperParam, ...] = ()
    #: what the reference is, in words (the callable itself is in ``cases``)
    reference_name: str = ""
    papers: tuple[str, ...] = ()
    examples: tuple[WorkedExample, ...] = ()
    #: the names of the functional's positional tensor arguments, in order
    inputs: tuple[str, ...] = ("input", "target")
    #: what the inputs are, for the CLI: "real" targets, "class_index", "binary"
    target_kind: Literal["real", "class_index", "binary"] = "real"
    #: what the first input is, for the CLI (``show --plot``, ``compare``): raw model outputs
    #: ("raw": values, logits, scores, embeddings), "probabilities" (after a sigmoid) or
    #: "log_probabilities" (after a log-softmax)
    input_space: InputSpace = "raw"
    #: properties the hypothesis tests check, e.g. "nonnegative", "zero_at_perfect", "symmetric"
    properties: frozenset[str] = frozenset()
    compile: CompileStatus = "fullgraph"
    #: for ``graph_break`` entries: where and why the graph breaks
    compile_note: str = ""
    #: what the loss does under ``torch.autocast``: its functional's decorator in
    #: :mod:`losskit._autocast` (the autocast tests check that the two agree)
    autocast: AutocastPolicy = "float32"
    #: second derivatives (``create_graph=True``): "exact" (``gradgradcheck`` passes in float64)
    #: or "refused" (a clear error, e.g. a fused Function whose eager form would defeat it)
    double_backward: Literal["exact", "refused"] = "exact"
    notes: str = ""
    #: benchmark sizes: elements for elementwise losses, the batch size otherwise
    bench_sizes: tuple[int, ...] = (32, 1024, 1_048_576)
    #: the test and benchmark fixtures: a :class:`LossCases`, or the name of the module whose
    #: ``CASES[name]`` holds them, imported on first use (``import losskit`` never loads them)
    cases: LossCases | str | None = None

    def fixtures(self) -> LossCases:
        """The entry's :class:`LossCases` (loaded now if ``cases`` names a module)."""
        if isinstance(self.cases, LossCases):
            return self.cases
        if self.cases is None:
            return _NO_CASES
        return _cases_of(self.cases)[self.name]

    @property
    def reference(self) -> Callable[..., Tensor] | None:
        return self.fixtures().reference

    @property
    def sample_inputs(self) -> SampleFn:
        return self.fixtures().sample_inputs

    @property
    def error_inputs(self) -> ErrorFn:
        return self.fixtures().error_inputs

    @property
    def bench_inputs(self) -> BenchFn | None:
        return self.fixtures().bench_inputs

    @property
    def bench_references(self) -> Mapping[str, Callable[..., Tensor]] | None:
        return self.fixtures().bench_references

    @property
    def bench_reference_inputs(self) -> Mapping[str, Callable[[SampleInput], SampleInput]] | None:
        return self.fixtures().bench_reference_inputs

    @property
    def bench_baselines(self) -> frozenset[str]:
        return self.fixtures().bench_baselines

    def benchmark_references(self) -> dict[str, Callable[..., Tensor]]:
        if self.bench_references is not None:
            return dict(self.bench_references)
        return {} if self.reference is None else {self.reference_name: self.reference}

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise LossInputError(f"catalog: task of {self.name} is {self.task!r}; expected {TASKS}")
        if self.double_backward not in ("exact", "refused"):
            raise LossInputError(
                f"catalog: double_backward of {self.name} is {self.double_backward!r}; "
                "expected 'exact' or 'refused'"
            )

    def param(self, name: str) -> HyperParam:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise LossInputError(
            f"{self.name}: hyper-parameter {name!r} is unknown; expected one of: {known}"
        )

    def compile_summary(self) -> str:
        """One line for ``losskit show``: the torch.compile status and, if any, why it breaks."""
        return f"{self.compile} ({self.compile_note})" if self.compile_note else self.compile

    def autocast_summary(self) -> str:
        """One line for ``losskit show``: the autocast policy and what it means."""
        return f"{self.autocast}: {AUTOCAST_POLICIES[self.autocast]}"

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def torch_snippet(self) -> str:
        """A runnable PyTorch snippet for ``losskit show``."""
        opts = ", ".join(f"{p.name}={p.default!r}" for p in self.params if p.default is not None)
        args = ", ".join(self.inputs)
        cls = self.module.__name__
        fn = self.functional.__name__
        return (
            "import losskit\nimport losskit.functional as LF\n\n"
            f"criterion = losskit.{cls}({opts})\n"
            f"loss = criterion({args})\n"
            f"loss = LF.{fn}({args}{', ' + opts if opts else ''})"
        )


class Catalog(Mapping[str, LossSpec]):
    """Name (or alias) -> :class:`LossSpec`. Iterating yields canonical names once each."""

    def __init__(self) -> None:
        self._specs: dict[str, LossSpec] = {}
        self._aliases: dict[str, str] = {}
        self._replaceable: set[str] = set()

    def register(self, spec: LossSpec, *, replaceable: bool = False) -> LossSpec:
        names = (spec.name, *spec.aliases)
        for n in names:
            owner = self._aliases.get(n)
            if owner is not None and owner not in self._replaceable:
                raise LossInputError(
                    f"catalog: name {n!r} is taken by {owner!r}; expected a new name for "
                    f"{spec.name!r}"
                )
        old = self._specs.pop(spec.name, None)
        if old is not None:
            for n in (old.name, *old.aliases):
                self._aliases.pop(n, None)
        self._specs[spec.name] = spec
        for n in names:
            self._aliases[n] = spec.name
        if replaceable:
            self._replaceable.add(spec.name)
        return spec

    def unregister(self, name: str) -> None:
        """Remove a user-registered entry (built-in losses cannot be removed)."""
        spec = self[name]
        if spec.name not in self._replaceable:
            raise LossInputError(
                f"catalog: {spec.name!r} is built in; expected a loss registered by the user"
            )
        del self._specs[spec.name]
        for n in (spec.name, *spec.aliases):
            self._aliases.pop(n, None)
        self._replaceable.discard(spec.name)

    def __getitem__(self, name: str) -> LossSpec:
        key = name.strip().lower().replace("-", "_")
        canonical = self._aliases.get(key) or self._aliases.get(name)
        if canonical is None:
            import difflib

            close = difflib.get_close_matches(key, list(self._aliases), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise KeyError(f"losskit has no loss named {name!r}{hint}; see `losskit list`")
        return self._specs[canonical]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def specs(self, task: str | None = None) -> list[LossSpec]:
        """All entries, optionally those of one task, in registration order."""
        return [s for s in self._specs.values() if task is None or s.task == task]
