"""Write the golden vectors the Keras adapter is tested against: ``tests/golden/<name>.json``.

For every catalog entry with a Keras twin (``losskit.keras.twins.TWINS``), each case's inputs
are drawn (deterministically, in float32), the PyTorch call is evaluated in float64 on exactly
those values, and the result and its gradient in ``y_pred`` are stored beside the inputs and
the Keras class and config. The Keras tests (``tests/keras/``) load the files and must reproduce
them on every backend.

    python scripts/make_golden.py            # (re)write every file
    python scripts/make_golden.py --check    # exit 1 if a file is missing or out of date

Rerun it after changing a loss's PyTorch implementation or its twin's cases.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

import losskit
from losskit._twins import Array, Case, gather
from losskit.losses import FAMILIES

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"

#: expected values are stored to this many significant digits (float32 needs 9)
DIGITS = 10

# losskit.keras.twins.TWINS, built the same way without importing Keras (losskit.keras does)
TWINS = gather(FAMILIES)


# ------------------------------------------------------------------------------ the inputs


def draw(array: Array, rng: np.random.Generator) -> np.ndarray:
    """The values of one input, float32, int32 or bool."""
    shape = array.shape
    kind = array.kind
    if kind == "normal":
        return (rng.standard_normal(shape) * array.scale).astype(np.float32)
    if kind == "unit":
        return (array.scale * rng.uniform(0.02, 0.98, shape)).astype(np.float32)
    if kind == "probabilities":
        z = rng.standard_normal(shape) * array.scale
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    if kind == "one_hot":
        index = rng.integers(0, shape[-1], shape[:-1])
        return np.eye(shape[-1], dtype=np.float32)[index]
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float32)
    if kind == "signs":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.float32)
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "mask":
        mask = rng.uniform(size=shape) < 0.7
        mask.flat[0] = True
        return mask
    if kind == "classes":
        index = rng.integers(0, array.classes, shape).astype(np.int32)
        if array.ignored:
            ignored = rng.uniform(size=shape) < array.ignored
            ignored.flat[0] = True
            index[ignored] = array.ignore
        return index
    if kind == "labels":
        labels = np.arange(int(np.prod(shape))) % array.classes
        return rng.permutation(labels).reshape(shape).astype(np.int32)
    raise ValueError(f"make_golden: input kind {kind!r} is unknown")


def draw_inputs(name: str, case: Case) -> dict[str, np.ndarray]:
    return {
        key: draw(array, np.random.default_rng(zlib.crc32(f"{name}/{case.name}/{key}".encode())))
        for key, array in case.inputs.items()
    }


# ------------------------------------------------------------------------- the PyTorch side


def _as_torch(values: np.ndarray) -> torch.Tensor:
    if values.dtype == np.bool_:
        return torch.from_numpy(values.copy())
    if np.issubdtype(values.dtype, np.integer):
        return torch.from_numpy(values.astype(np.int64))
    return torch.from_numpy(values.astype(np.float64))


def torch_result(name: str, case: Case, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The PyTorch call of ``case`` in float64 on ``inputs``: ``{"expected": ..., "grad": ...}``
    (the gradient of the sum of the result in ``y_pred``, when the case compares it)."""
    spec = losskit.catalog[name]
    tensors = {key: _as_torch(values) for key, values in inputs.items()}
    y_pred = tensors["y_pred"].requires_grad_(case.grad)
    scope = {"loss": spec.functional, "torch": torch, "F": torch.nn.functional, **tensors}
    out = eval(case.torch, {"__builtins__": {}}, scope)  # the twin table's own expressions
    result = {"expected": out.detach().numpy()}
    if case.grad:
        grad = None
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), y_pred, allow_unused=True)
        result["grad"] = np.zeros(y_pred.shape) if grad is None else grad.numpy()
    return result


# ------------------------------------------------------------------------------ the files


def _floats32(values: np.ndarray) -> list[float]:
    # the shortest decimal that rounds back to the same float32
    return [float(str(v)) for v in values.astype(np.float32).ravel()]


def _encode_input(values: np.ndarray) -> dict[str, Any]:
    if values.dtype == np.bool_:
        data: list[Any] = values.ravel().tolist()
        dtype = "bool"
    elif np.issubdtype(values.dtype, np.integer):
        data, dtype = values.ravel().tolist(), "int32"
    else:
        data, dtype = _floats32(values), "float32"
    return {"dtype": dtype, "shape": list(values.shape), "data": data}


def _encode_result(values: np.ndarray) -> dict[str, Any]:
    data = [float(f"{v:.{DIGITS}g}") for v in np.asarray(values, np.float64).ravel()]
    return {"shape": list(np.shape(values)), "data": data}


def decode(entry: dict[str, Any]) -> np.ndarray:
    """An encoded input or result back as an array (inputs in their dtype, results float64)."""
    dtype = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}.get(
        entry.get("dtype", "float64"), np.float64
    )
    return np.asarray(entry["data"], dtype=dtype).reshape(entry["shape"])


def golden(name: str) -> dict[str, Any]:
    """The golden document of one catalog entry."""
    twin = TWINS[name]
    spec = losskit.catalog[name]
    cases = []
    for case in twin.cases:
        inputs = draw_inputs(name, case)
        result = torch_result(name, case, inputs)
        entry = {
            "name": case.name,
            "config": dict(case.config),
            "torch": case.torch,
            "inputs": {key: _encode_input(v) for key, v in inputs.items()},
            "expected": _encode_result(result["expected"]),
        }
        if "grad" in result:
            entry["grad_y_pred"] = _encode_result(result["grad"])
        cases.append(entry)
    return {
        "catalog": spec.name,
        "functional": f"losskit.functional.{spec.functional.__name__}",
        "keras": f"losskit.keras.{twin.keras}",
        "generated_by": "scripts/make_golden.py",
        "cases": cases,
    }


def render(doc: dict[str, Any]) -> str:
    """Readable and small: the header fields one per line, each case on one line."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    cases = ",\n".join(f"    {json.dumps(c, separators=(',', ':'))}" for c in doc["cases"])
    return "{\n" + "\n".join(lines) + '\n  "cases": [\n' + cases + "\n  ]\n}\n"


def twin_names() -> list[str]:
    """The catalog entries with a Keras twin, in catalog order; every twin must name one."""
    unknown = sorted(set(TWINS) - set(losskit.catalog))
    if unknown:
        raise SystemExit(f"make_golden: twins of unknown catalog entries: {', '.join(unknown)}")
    return [spec.name for spec in losskit.catalog.specs() if spec.name in TWINS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = twin_names()
    stale = sorted(p.name for p in GOLDEN.glob("*.json") if p.stem not in names)
    outdated = []
    for name in names:
        path = GOLDEN / f"{name}.json"
        text = render(golden(name))
        if path.exists() and path.read_text() == text:
            continue
        outdated.append(path.name)
        if not args.check:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if not args.check:
        for file in stale:
            (GOLDEN / file).unlink()
    changed = outdated + stale
    verb = "out of date" if args.check else "written or removed"
    print(f"{len(names)} golden files; {verb}: {', '.join(changed) or 'none'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
