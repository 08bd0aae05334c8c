"""Bounded hypothesis fuzzing of every catalog entry against its reference (DESIGN.md section 5).

Every case is *derived* from one of the entry's own ``sample_inputs`` (so no per-loss list of
shapes or value ranges lives here), by transforms drawn by hypothesis:

* batch: keep the sample, or resample its batch dimension (dim 0 of the first argument, applied
  to every tensor argument or option whose dim 0 has that size) to 0..N+2 rows;
* rank: append 0-2 trailing dimensions of size 1..3 to those same batch-shaped tensors, up to
  rank 5 (spatial ``(N, C, d1, ...)`` layouts for the class-index losses, any shape for the
  elementwise ones);
* options: every hyper-parameter independently keeps the sample's value, takes its default, a
  value another sample of the same entry uses (bools, strings, callables, ints) or a random value
  inside its tuning range ``[low, high]`` (log-uniform where ``log``);
* values: the first argument scaled by 1, 1e2 or 1e4 (huge logits, scores and residuals), and
  the catalog's own ``extreme`` samples; one element set to NaN (NaN test);
* layout: contiguous, strided (every other element of a wider buffer) or transposed copies;
* dtype float32 / float64 against the reference, float16 / bfloat16 against losskit's own float32
  computation rounded once; every reduction the module lists.

Which derived cases are valid is decided by the reference, never by losskit: a case the reference
(torch.nn or the float64 formula) rejects is not compared, but then losskit, under the ``full``
checks, must either accept it or raise ``LossInputError`` -- never a raw torch error. A case the
reference accepts must be accepted by losskit too, except when the rank transform produced a
shape outside the loss's documented shapes (losskit forbids implicit broadcasting where torch
allows it), which losskit may refuse with ``LossInputError``.

Rules, each from DESIGN.md or the catalog:

* ``SampleInput.reference=False`` samples (empty batch, every weight zero, every target ignored,
  no triplet) stay degenerate under every transform and must give 0 for every reduction.
* A mean-type reduction the reference leaves NaN while its inputs are finite and its ``none``
  values have no NaN is a mean over zero counted elements: losskit gives 0.0, still attached to
  the graph (``backward()`` works and gives finite gradients).
* float32 compared with the float64 reference of the same (rounded) values, at the catalog
  tolerance; for inputs scaled by ``s`` the absolute tolerance is multiplied by ``s`` (float32
  rounding of numbers of size ``s`` is ``s * 6e-8``; what is fuzzed there is finiteness and
  gross errors).
* scaled and ``extreme`` cases follow the catalog's ``extreme`` tag: finite values and gradients
  wherever the reference is finite; no half-precision comparison (``extreme`` tag semantics).
* Gradients are compared with the reference's in float64 only for cases without duplicated rows
  (resampling with replacement creates ties, where max/argmin subgradients legitimately differ)
  and without scaling.

``test_fuzz_option_edges`` adds, deterministically, every ranged option at its edges and at
+-1e-300 / +-1e-40 inside them (valid values that float32 rounds to 0), one at a time, on every
sample: random draws reach those only by luck.

Bounded for CI: ``derandomize=True`` (the same cases on every run) and ``max_examples`` sized so
the file runs in about two minutes on one core; set ``LOSSKIT_FUZZ_EXAMPLES`` to fuzz longer.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from torch import Tensor

import losskit
from catalog_helpers import REDUCTIONS, float_to, map_tensors, noncontiguous, tolerance
from losskit import LossInputError

NAMES = list(losskit.catalog)
EXAMPLES = int(os.environ.get("LOSSKIT_FUZZ_EXAMPLES", "0"))


def fuzz_settings(max_examples: int):
    return settings(
        max_examples=EXAMPLES or max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# --------------------------------------------------------------------------------------------
# catalog-derived pieces
# --------------------------------------------------------------------------------------------


@functools.cache
def _samples(name: str) -> tuple:
    spec = losskit.catalog[name]
    return tuple(spec.sample_inputs(torch.float64, torch.device("cpu")))


def _reductions(spec) -> tuple[str, ...]:
    return tuple(getattr(spec.module, "reductions", REDUCTIONS))


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or (bool(a == b) and type(a) is type(b))
    except Exception:
        return False


@functools.cache
def _harvested(name: str) -> dict[str, list]:
    """Non-tensor option values the entry's samples use, per option name. Not those of the
    ``extreme`` samples: an option at the edge of the contract (a temperature of 1e-4 makes logits
    of 1e4) is finite but not float32-precise on other inputs, and the extreme samples themselves
    check it."""
    spec = losskit.catalog[name]
    seen: dict[str, list] = {p.name: [] for p in spec.params}
    for s in _samples(name):
        if "extreme" in s.tags:
            continue
        for k, v in s.kwargs.items():
            if k in seen and not isinstance(v, Tensor) and not any(_same(v, o) for o in seen[k]):
                seen[k].append(v)
    return seen


def _is_float(t: Any) -> bool:
    return isinstance(t, Tensor) and t.is_floating_point()


@dataclass
class Case:
    name: str
    args: tuple
    kwargs: dict
    reference: bool  # SampleInput.reference
    extreme: bool
    grad_args: tuple[int, ...]
    scale: float = 1.0
    rank_changed: bool = False
    options_changed: bool = False
    #: an option without a tuning range now differs from the sample's own value
    retied: bool = False
    duplicates: bool = False
    desc: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        shapes = [
            (tuple(a.shape), str(a.dtype)[6:]) if isinstance(a, Tensor) else a for a in self.args
        ]
        opts = {
            k: (f"tensor{tuple(v.shape)}" if isinstance(v, Tensor) else v)
            for k, v in self.kwargs.items()
        }
        return f"{self.name}: {'; '.join(self.desc)} -> args={shapes} kwargs={opts}"


def _batch_size(args: tuple) -> int | None:
    first = args[0]
    if isinstance(first, Tensor) and first.dim() >= 1:
        return first.shape[0]
    return None


def _map_batch(case: Case, n: int, fn) -> None:
    """Apply ``fn`` to every tensor (argument or option) whose dim 0 has the batch size ``n``."""

    def g(t: Tensor) -> Tensor:
        return fn(t) if t.dim() >= 1 and t.shape[0] == n else t

    case.args = tuple(g(a) if isinstance(a, Tensor) else a for a in case.args)
    case.kwargs = {k: g(v) if isinstance(v, Tensor) else v for k, v in case.kwargs.items()}


def _draw_option(data, p, sample_value: Any, has_value: bool, harvested: list) -> tuple[bool, Any]:
    kinds = ["keep", "default"]
    if harvested:
        kinds.append("harvested")
    numeric = p.low is not None and p.high is not None
    if numeric:
        kinds.append("range")
    kind = data.draw(st.sampled_from(kinds), label=f"{p.name} kind")
    if kind == "keep":
        return has_value, sample_value
    if kind == "default":
        return True, p.default
    if kind == "harvested":
        return True, data.draw(st.sampled_from(harvested), label=p.name)
    low, high = float(p.low), float(p.high)
    # the edges of the range, and the numbers next to 0 inside it (a gamma, clip or alpha of
    # 1e-300 is valid, and 0 in float32): hypothesis's own float draws reach them only by luck
    edges = [low, high] + [v for v in (1e-300, -1e-300, 1e-40, -1e-40) if low < v < high]
    if data.draw(st.integers(0, 3), label=f"{p.name} at an edge") == 0:
        return True, data.draw(st.sampled_from(edges), label=p.name)
    if p.log and low > 0:
        u = data.draw(st.floats(0.0, 1.0), label=f"{p.name} (log-uniform)")
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        value = min(max(value, low), high)
    else:
        value = data.draw(st.floats(low, high), label=p.name)
    return True, value


def draw_case(data, name: str, *, allow_scale: bool = True) -> Case:
    spec = losskit.catalog[name]
    samples = _samples(name)
    index = data.draw(st.integers(0, len(samples) - 1), label="sample index")
    s = samples[index]
    case = Case(
        name,
        tuple(map_tensors(s.args, lambda t: t.clone())),
        dict(map_tensors(dict(s.kwargs), lambda t: t.clone())),
        s.reference,
        "extreme" in s.tags,
        tuple(s.grad_args),
        desc=[f"sample {index} {s.desc!r}"],
    )

    # options
    harvested = _harvested(name)
    for p in spec.params:
        has, value = _draw_option(
            data, p, case.kwargs.get(p.name), p.name in case.kwargs, harvested[p.name]
        )
        had, old = p.name in case.kwargs, case.kwargs.get(p.name)
        if has:
            case.kwargs[p.name] = value
        else:
            case.kwargs.pop(p.name, None)
        unchanged = has == had and (value is old or _same(value, old))
        if not unchanged:
            case.options_changed = True
            if p.low is None or p.high is None:
                case.retied = True
    case.desc.append(
        "options "
        + ", ".join(
            f"{k}={'tensor' if isinstance(v, Tensor) else v!r}" for k, v in case.kwargs.items()
        )
    )

    # batch
    n = _batch_size(case.args)
    if n is not None and data.draw(st.booleans(), label="resample batch"):
        # a degenerate sample (reference=False) only loses rows: a duplicated row could
        # create what it lacks (a positive pair for "every label distinct")
        most = n + 2 if case.reference else n
        k = data.draw(st.integers(0, most) if n else st.just(0), label="rows")
        perm = data.draw(st.permutations(range(n)), label="row order") if n else []
        rows = list(perm[:k])
        if k > n:
            rows += data.draw(
                st.lists(st.integers(0, n - 1), min_size=k - n, max_size=k - n), label="extra"
            )
            case.duplicates = True
        index_t = torch.tensor(rows, dtype=torch.long)
        _map_batch(case, n, lambda t: t.index_select(0, index_t))
        case.desc.append(f"batch {n} -> rows {rows}")
        n = k

    # rank (trailing dims on the batch-shaped tensors), up to rank 5
    if n is not None:
        extra = data.draw(st.integers(0, 2), label="trailing dims")
        for _ in range(extra):
            if max(a.dim() for a in case.args if isinstance(a, Tensor)) >= 5:
                break
            m = data.draw(st.integers(1, 3), label="trailing size")
            _map_batch(case, n, lambda t, m=m: t.unsqueeze(-1).expand(*t.shape, m).clone())
            case.rank_changed = True
            # copied pixels are exact ties, where sort-based losses (Lovasz) have a kink
            case.duplicates = case.duplicates or m > 1
            case.desc.append(f"trailing dim of {m}")

    # extreme values: scale the first argument
    # not the catalog's extreme samples: they sit at the edge of the contract already (e.g. the
    # robust losses' documented saturation beyond |d / c| = 5.8e17 in float32)
    if allow_scale and not case.extreme and _is_float(case.args[0]):
        scale = data.draw(st.sampled_from([1.0, 1.0, 1e2, 1e4]), label="scale")
        if scale != 1.0:
            case.args = (case.args[0] * scale, *case.args[1:])
            case.scale = scale
            case.extreme = True
            case.desc.append(f"input scaled by {scale:g}")
    return case


LAYOUTS = ("contiguous", "strided", "transposed")


def _transposed(t: Tensor) -> Tensor:
    if t.dim() < 2 or t.numel() == 0:
        return noncontiguous(t)
    return t.transpose(0, -1).contiguous().transpose(0, -1)


def materialise(case: Case, dtype: torch.dtype, layout: str) -> tuple[tuple, dict]:
    """The case's arguments in ``dtype`` (floating tensors only) and ``layout``."""
    lay = {
        "contiguous": lambda t: t.contiguous(),
        "strided": noncontiguous,
        "transposed": _transposed,
    }[layout]

    def f(t: Tensor) -> Tensor:
        t = t.to(dtype) if t.is_floating_point() else t
        return lay(t)

    return map_tensors(case.args, f), map_tensors(dict(case.kwargs), f)


def _call(fn, args, kwargs, reduction):
    return fn(*args, **kwargs, reduction=reduction)


def _reference_all(spec, case: Case, args, kwargs) -> dict[str, Tensor] | None:
    """The reference's value for every reduction, in float64; None if it rejects the case."""
    args64 = map_tensors(args, float_to(torch.float64))
    kwargs64 = map_tensors(kwargs, float_to(torch.float64))
    try:
        return {
            r: _call(spec.reference, args64, kwargs64, r).detach().double()
            for r in _reductions(spec)
        }
    except Exception as e:  # the reference decides validity
        note(f"reference rejects: {type(e).__name__}: {e}")
        return None


def _ours_or_reject(spec, case: Case, args, kwargs, reductions) -> dict[str, Tensor] | None:
    """losskit's values; None when it raised LossInputError; raw errors propagate."""
    try:
        return {r: _call(spec.functional, args, kwargs, r) for r in reductions}
    except LossInputError as e:
        note(f"losskit rejects: {e}")
        return None


def within_contract(spec, args, kwargs) -> bool:
    """Finite inputs that the ``full`` value checks accept (probabilities in [0, 1], indices in
    range, ...): the catalog's ``extreme`` contract says the loss is finite there."""
    for t in [*args, *kwargs.values()]:
        if _is_float(t) and not torch.isfinite(t).all():
            return False
    try:
        with losskit.checks("full"):
            spec.functional(*args, **kwargs)
    except LossInputError:
        return False
    return True


def may_refuse(case: Case, ref: dict[str, Tensor]) -> bool:
    """Whether losskit may raise LossInputError on a case the reference accepts: the rank
    transform left the documented shapes (losskit never broadcasts implicitly); an option
    without a tuning range (an index, a flag, a name) was changed from the sample's value,
    which may be tied to the sample's data (CTC's blank must not occur in the targets: torch
    does not check, losskit does); or
    the reference accepts it only to return an infinite loss (a CTC target longer than its
    input without ``zero_infinity``: losskit refuses it with a message saying so). Values
    inside an option's tuning range [low, high] are never a reason to refuse."""
    if case.rank_changed or case.retied:
        return True
    return any(bool(torch.isinf(v).any()) for v in ref.values())


MEAN_LIKE = ("mean", "batchmean", "mean_positive")


def empty_mean(ref: dict[str, Tensor], r: str) -> bool:
    """Whether the reference's ``r`` is a mean over zero counted elements (DESIGN.md: losskit
    gives 0.0 there): the reference's elementwise values are empty, or carry no NaN while their
    mean-type reduction is NaN (0 / 0: every weight zero, every target ignored, no triplet)."""
    if r not in MEAN_LIKE or "none" not in ref:
        return False
    none = ref["none"]
    if none.numel() == 0:
        return True
    return bool(torch.isnan(ref[r]).all()) and not bool(torch.isnan(none).any())


def _check_against_reference(spec, case, out, ref, dtype):
    tol = dict(tolerance(dtype))
    tol["atol"] *= case.scale
    for r, value in out.items():
        expected = torch.zeros_like(ref[r]) if empty_mean(ref, r) else ref[r]
        if r == "mean_positive" and dtype != torch.float64:
            # "mean over the losses > 0": which losses underflow to 0 depends on the dtype
            # (a soft-margin loss of 1e-72 is 0 in float32), so below float64 the count is
            # losskit's own: the mean of its positive "none" values
            none = out["none"].detach().double()
            positive = none[none > 0]
            expected = positive.mean() if positive.numel() else torch.zeros((), dtype=none.dtype)
        torch.testing.assert_close(
            value.detach().double(),
            expected,
            **tol,
            equal_nan=True,
            msg=lambda m, r=r: f"{case!r}, {dtype}, reduction={r}: {m}",
        )


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@fuzz_settings(max_examples=150)
@given(data=st.data())
def test_fuzz_matches_reference(name, data):
    """Value parity with the reference at every reduction, sum == none.sum(), the empty-mean
    rule, finite results at extremes, the dtype of the result, float64 gradients."""
    spec = losskit.catalog[name]
    case = draw_case(data, name)
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    note(repr(case))
    args, kwargs = materialise(case, dtype, layout)
    reductions = _reductions(spec)

    # the reference on contiguous copies (the same values): torch's own ctc_loss misreads
    # non-contiguous 1-D concatenated targets; layouts are losskit's property under test
    ref = _reference_all(spec, case, *materialise(case, dtype, "contiguous"))
    if ref is None:
        # invalid derivation: losskit must refuse it with LossInputError (full checks) or accept
        with losskit.checks("full"):
            _ours_or_reject(spec, case, args, kwargs, reductions)
        assume(False)

    out = _ours_or_reject(spec, case, args, kwargs, reductions)
    if out is None:
        assert may_refuse(case, ref), (
            f"{case!r}: losskit raises LossInputError on a case the reference accepts"
        )
        assume(False)

    for r, value in out.items():
        assert value.dtype == dtype, (case, r, value.dtype)
        if r != "none":
            assert value.dim() == 0, (case, r, value.shape)
    if "none" in out and "sum" in out:
        tol = dict(tolerance(dtype))
        tol["atol"] *= case.scale
        torch.testing.assert_close(
            out["sum"],
            out["none"].sum(),
            **tol,
            equal_nan=True,
            msg=lambda m: f"{case!r}, {dtype}: sum != none.sum(): {m}",
        )

    if not case.reference:  # degenerate by construction: 0 for every reduction
        for r, value in out.items():
            assert torch.all(value == 0), (case, r, value)
    else:
        if not (case.extreme and case.options_changed):
            # an extreme sample with other options may leave the documented range (e.g. the
            # robust losses saturate beyond |d / c| = 5.8e17 in float32): finiteness only
            _check_against_reference(spec, case, out, ref, dtype)
        if case.extreme and within_contract(spec, args, kwargs):
            for r, value in out.items():
                assert torch.isfinite(value).all(), (
                    f"{case!r}, {dtype}, reduction={r}: non-finite loss {value} at finite "
                    "extreme inputs that the full checks accept"
                )

    _check_gradients(spec, case, dtype, layout, ref)


def _leaves(case: Case, dtype, layout):
    args, kwargs = materialise(case, dtype, layout)
    args = list(args)
    leaves, where = [], []
    for i in case.grad_args:
        if i < len(args) and _is_float(args[i]):
            args[i] = args[i].detach().clone().requires_grad_(True)
            leaves.append(args[i])
            where.append(i)
    return tuple(args), kwargs, leaves, where


def _check_gradients(spec, case: Case, dtype, layout, ref) -> None:
    reduction = "mean" if "mean" in _reductions(spec) else _reductions(spec)[0]
    args, kwargs, leaves, where = _leaves(case, dtype, layout)
    if not leaves:
        return
    out = _call(spec.functional, args, kwargs, reduction)
    is_empty = case.reference and ref is not None and empty_mean(ref, reduction)
    if not case.reference or is_empty or out.numel() == 0:
        # the empty mean: 0.0 attached to the graph, so backward() works
        assert out.requires_grad, f"{case!r}: empty result is detached from the graph"
        out.sum().backward()
        for leaf in leaves:
            assert leaf.grad is None or torch.isfinite(leaf.grad).all(), case
        return
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)]
    if case.extreme:
        if within_contract(spec, args, kwargs):
            for g in grads:
                assert torch.isfinite(g).all(), f"{case!r}: non-finite gradient"
        return
    if dtype != torch.float64 or case.duplicates:
        return
    if not all(torch.isfinite(t).all() for t in [*args, *kwargs.values()] if _is_float(t)):
        return  # a derivative at an infinite input (e.g. -inf teacher logits) means nothing
    # The analytic gradient against a central difference of losskit itself along a random
    # direction (a fuzzed gradcheck). Not against the reference's autograd: torch's ctc_loss
    # backward is not the derivative with respect to its log_probs argument (it assumes they
    # come from log_softmax), and torch's nll_loss2d backward refuses non-contiguous inputs.
    gen = torch.Generator().manual_seed(len(case.desc))
    directions = [torch.randn(x.shape, generator=gen, dtype=x.dtype) for x in leaves]
    h = 1e-6

    def at(step: float) -> float:
        moved = list(args)
        for i, x, v in zip(where, leaves, directions, strict=True):
            moved[i] = (x.detach() + step * v).requires_grad_(False)
        with torch.no_grad():
            return float(_call(spec.functional, tuple(moved), kwargs, reduction).sum())

    f0, up, down = float(out.detach().sum()), at(h), at(-h)
    if not all(math.isfinite(v) for v in (f0, up, down)):
        return  # outside the contract (e.g. log_target flipped on probabilities): no derivative
    numeric = (up - down) / (2 * h)
    analytic = float(sum((g * v).sum() for g, v in zip(grads, directions, strict=True)))
    assert math.isclose(numeric, analytic, rel_tol=1e-5, abs_tol=1e-6 * (1 + abs(f0))), (
        f"{case!r}: directional derivative ({reduction}) {analytic!r} by autograd, "
        f"{numeric!r} by central differences"
    )


@pytest.mark.parametrize("name", NAMES)
@fuzz_settings(max_examples=100)
@given(data=st.data())
def test_fuzz_half_module_and_layout(name, data):
    """float16/bfloat16 == float32 computation rounded once; module(**opts) == functional;
    non-contiguous layouts == contiguous."""
    spec = losskit.catalog[name]
    case = draw_case(data, name, allow_scale=False)
    note(repr(case))
    reductions = _reductions(spec)
    reduction = data.draw(st.sampled_from(reductions), label="reduction")
    layout = data.draw(st.sampled_from(LAYOUTS[1:]), label="layout")

    args, kwargs = materialise(case, torch.float32, "contiguous")
    ref = _reference_all(spec, case, args, kwargs)
    assume(ref is not None)
    try:
        out = _call(spec.functional, args, kwargs, reduction)
    except LossInputError:
        assert may_refuse(case, ref), f"{case!r}: LossInputError on a case the reference accepts"
        assume(False)

    # layout
    sargs, skwargs = materialise(case, torch.float32, layout)
    torch.testing.assert_close(
        _call(spec.functional, sargs, skwargs, reduction),
        out,
        equal_nan=True,
        msg=lambda m: f"{case!r} {layout} vs contiguous ({reduction}): {m}",
    )

    # module == functional
    params = {p.name for p in spec.params}
    init = {k: v for k, v in kwargs.items() if k in params}
    per_call = {k: v for k, v in kwargs.items() if k not in params}
    module = spec.module(**init, reduction=reduction)
    torch.testing.assert_close(
        module(*args, **per_call),
        out,
        equal_nan=True,
        msg=lambda m: f"{case!r}: module != functional ({reduction}): {m}",
    )

    # half precision (not for extremes: the catalog's "extreme" tag semantics)
    if case.extreme:
        return
    half = data.draw(st.sampled_from([torch.float16, torch.bfloat16]), label="half")
    low_args, low_kwargs = materialise(case, half, layout)
    back_args = map_tensors(low_args, float_to(torch.float32))
    back_kwargs = map_tensors(low_kwargs, float_to(torch.float32))
    low = _call(spec.functional, low_args, low_kwargs, reduction)
    assert low.dtype == half, (case, low.dtype)
    expected = _call(spec.functional, back_args, back_kwargs, reduction).to(half)
    torch.testing.assert_close(
        low,
        expected,
        rtol=0,
        atol=0,
        equal_nan=True,
        msg=lambda m: f"{case!r} {half}: not the float32 result rounded once ({reduction}): {m}",
    )


@pytest.mark.parametrize("name", NAMES)
@fuzz_settings(max_examples=100)
@given(data=st.data())
def test_fuzz_nan_propagates(name, data):
    """One NaN in a differentiable input: losskit's NaNs are exactly the reference's, for every
    reduction (a NaN is never hidden by a finite value, nor invented), except that a mean over
    zero counted elements is 0."""
    spec = losskit.catalog[name]
    case = draw_case(data, name, allow_scale=False)
    assume(case.reference)
    candidates = [
        i
        for i in case.grad_args
        if i < len(case.args) and _is_float(case.args[i]) and case.args[i].numel()
    ]
    assume(candidates)
    i = data.draw(st.sampled_from(candidates), label="NaN argument")
    pos = data.draw(st.integers(0, case.args[i].numel() - 1), label="NaN position")
    clean_value = case.args[i]
    poisoned = case.args[i].clone()
    poisoned.view(-1)[pos] = float("nan")
    case.args = (*case.args[:i], poisoned, *case.args[i + 1 :])
    case.desc.append(f"NaN at flat index {pos} of argument {i}")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    note(repr(case))
    args, kwargs = materialise(case, dtype, "contiguous")
    # DESIGN.md: the full checks refuse non-finite inputs
    with losskit.checks("full"), pytest.raises(LossInputError):
        spec.functional(*args, **kwargs)
    ref = _reference_all(spec, case, args, kwargs)
    if ref is None:
        # torch refuses NaN for some losses (binary_cross_entropy checks its input range):
        # if it accepts the same case without the NaN, losskit (fast checks, which do not look
        # at values) must let the NaN through to the summed loss
        clean = list(args)
        clean[i] = clean_value.to(dtype)
        assume(_reference_all(spec, case, tuple(clean), kwargs) is not None)
        total = _call(spec.functional, args, kwargs, "sum")
        assert torch.isnan(total), f"{case!r}, {dtype}: a NaN input gives a finite sum {total}"
        return
    out = _ours_or_reject(spec, case, args, kwargs, _reductions(spec))
    if out is None:
        assert may_refuse(case, ref), f"{case!r}: LossInputError on a case the reference accepts"
        assume(False)
    for r, value in out.items():
        expected = torch.zeros_like(ref[r]) if empty_mean(ref, r) else ref[r]
        got = value.detach().double()
        assert got.shape == expected.shape, (case, r, got.shape, expected.shape)
        assert torch.equal(torch.isnan(got), torch.isnan(expected)), (
            f"{case!r}, {dtype}, reduction={r}: NaN where the reference has "
            f"{expected.tolist() if expected.numel() < 50 else 'other values'}, "
            f"got {got.tolist() if got.numel() < 50 else '...'}"
        )


def _edges(p) -> list:
    low, high = float(p.low), float(p.high)
    return [low, high] + [v for v in (1e-300, -1e-300, 1e-40, -1e-40) if low < v < high]


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_option_edges(name):
    """Deterministic complement of the hypothesis tests: every option with a tuning range at
    its edges and at the numbers next to 0 inside it (one option at a time), on every sample,
    in float32 and float64: the reference's value where the sample is not extreme, a finite
    loss and gradient where it is (and the full checks accept it), never a raw torch error."""
    spec = losskit.catalog[name]
    ranged = [p for p in spec.params if p.low is not None and p.high is not None]
    failures = []
    for index, s in enumerate(_samples(name)):
        if not s.reference:
            continue
        for p in ranged:
            for value in _edges(p):
                case = Case(
                    name,
                    s.args,
                    {**s.kwargs, p.name: value},
                    True,
                    "extreme" in s.tags,
                    tuple(s.grad_args),
                    desc=[f"sample {index} {s.desc!r}", f"{p.name}={value!r}"],
                )
                for dtype in (torch.float32, torch.float64):
                    args, kwargs = materialise(case, dtype, "contiguous")
                    try:
                        ref = _reference_all(spec, case, args, kwargs)
                        out = {
                            r: _call(spec.functional, args, kwargs, r) for r in _reductions(spec)
                        }
                        if case.extreme:
                            if within_contract(spec, args, kwargs):
                                for r, v in out.items():
                                    assert torch.isfinite(v).all(), f"{r}: non-finite {v}"
                        elif ref is not None:
                            _check_against_reference(spec, case, out, ref, dtype)
                    except AssertionError as e:
                        failures.append(f"{case!r} {dtype}: {str(e).splitlines()[0]}")
                    except Exception as e:  # LossInputError included: the value is in range
                        failures.append(f"{case!r} {dtype}: {type(e).__name__}: {e}")
    assert not failures, f"{len(failures)} failing cases, e.g.:\n" + "\n".join(failures[:8])
