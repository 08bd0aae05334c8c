"""The API reference is generated from the docstrings, so the docstrings are the documentation:
every loss function says its formula, the shapes it takes, an example (a doctest, run by
`make test`) and its references (in the docstring, or the catalog entry's papers and reference
implementation, which the catalog page shows); every other public function shows an example;
every module class names the functional that documents it; every public module has a docstring.

The places that fall short are listed in :data:`KNOWN_GAPS`, each by name. The list may only
shrink: a new gap fails, and so does a listed gap that has been closed (remove it from the list).
"""

from __future__ import annotations

import importlib
import inspect
import re

import losskit
from losskit.losses import FAMILIES

#: public faces whose functions and classes the API reference documents
FACES = [
    "losskit.functional",
    "losskit.distributed",
    "losskit.mining",
    "losskit.schedules",
    "losskit.weights",
    "losskit.linear_ce",
    "losskit.multitask",
    "losskit.custom",
]

#: name -> what its docstring lacks; may only shrink
KNOWN_GAPS: dict[str, set[str]] = {
    # the elementwise regression losses (and focal Tversky) do not say which shapes they take
    # ("input and target of the same shape, any shape; weight of that shape")
    "huber_loss": {"shapes"},
    "l1_loss": {"shapes"},
    "log_cosh_loss": {"shapes"},
    "quantile_loss": {"shapes"},
    "smooth_l1_loss": {"shapes"},
    "focal_tversky_loss": {"shapes"},
    # helpers without a doctest example
    "losskit.distributed.gather": {"example"},
    "losskit.distributed.is_distributed": {"example"},
    "losskit.schedules.margin_at": {"example"},
    "losskit.multitask.GradNorm": {"example"},
}

_FORMULA = re.compile(r"\.\. math::|:math:`")
_SHAPES = re.compile(r"\((?:N|B|T|C|D|\*|\.\.\.)\b|\bshapes?\b|elementwise", re.I)
_REFERENCES = re.compile(r"\b(?:19|20)\d\d\b|et al|\btorch\.|arXiv|paper", re.I)


def _doc(obj: object) -> str:
    if inspect.isclass(obj) and obj.__doc__ is None:
        return ""
    return inspect.getdoc(obj) or ""


def loss_gaps() -> dict[str, set[str]]:
    """What each catalog entry's functional docstring lacks."""
    gaps: dict[str, set[str]] = {}
    for name in losskit.catalog:
        spec = losskit.catalog[name]
        doc = _doc(spec.functional)
        missing = set()
        if ">>>" not in doc:
            missing.add("example")
        if not _FORMULA.search(doc):
            missing.add("formula")
        if not _SHAPES.search(doc):
            missing.add("shapes")
        if not (_REFERENCES.search(doc) or spec.papers or spec.reference_name):
            missing.add("references")
        if missing:
            gaps[spec.functional.__name__] = missing
    return gaps


def helper_gaps() -> dict[str, set[str]]:
    """Public functions and classes of the faces (not the losses, not plain records) without an
    example or without a docstring."""
    losses = {losskit.catalog[name].functional for name in losskit.catalog}
    gaps: dict[str, set[str]] = {}
    seen: set[int] = set()
    for face in FACES:
        module = importlib.import_module(face)
        for name in module.__all__:
            obj = getattr(module, name)
            if obj in losses or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if id(obj) in seen:  # exported by two faces: reported under the first
                continue
            seen.add(id(obj))
            record = inspect.isclass(obj) and (
                issubclass(obj, tuple) or hasattr(obj, "__dataclass_fields__")
            )
            doc = _doc(obj)
            if not doc:
                gaps[f"{face}.{name}"] = {"docstring"}
            elif ">>>" not in doc and not record:
                gaps[f"{face}.{name}"] = {"example"}
    return gaps


def test_docstrings_have_formula_shapes_example_and_references():
    found = {**loss_gaps(), **helper_gaps()}
    new = {k: v - KNOWN_GAPS.get(k, set()) for k, v in found.items()}
    new = {k: v for k, v in new.items() if v}
    closed = {k: v - found.get(k, set()) for k, v in KNOWN_GAPS.items()}
    closed = {k: v for k, v in closed.items() if v}
    assert not new, f"docstrings lacking (add what is missing): {new}"
    assert not closed, f"closed gaps: remove them from KNOWN_GAPS: {closed}"


def test_modules_name_their_functional():
    import losskit.nn

    for name in losskit.nn.__all__:
        cls = getattr(losskit.nn, name)
        doc = _doc(cls)
        assert doc, f"losskit.nn.{name} has no docstring"
        functional = getattr(cls, "functional", None)
        if functional is not None and name != "LossModule":
            assert functional.__name__ in doc, (
                f"losskit.nn.{name}: its docstring does not name {functional.__name__}"
            )


def test_public_modules_have_docstrings():
    modules = [*FACES, "losskit", "losskit.nn"]  # (losskit.keras: the Keras passes import it)
    for family in FAMILIES:
        modules += [f"losskit.losses.{family}.{part}" for part in ("functional", "modules", "spec")]
    for name in modules:
        module = importlib.import_module(name)
        assert (module.__doc__ or "").strip(), f"{name} has no module docstring"
