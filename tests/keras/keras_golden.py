"""Reading the golden files of ``tests/golden`` (plain JSON and numpy: no Keras, no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def golden_documents() -> dict[str, dict[str, Any]]:
    """Every golden file, by catalog name (read at collection: plain JSON, no Keras)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(GOLDEN.glob("*.json"))}


def decode(entry: dict[str, Any]) -> np.ndarray:
    dtype = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}.get(
        entry.get("dtype", "float64"), np.float64
    )
    return np.asarray(entry["data"], dtype=dtype).reshape(entry["shape"])
