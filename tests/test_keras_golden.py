"""The Keras adapter's golden files (``tests/golden``) are those ``scripts/make_golden.py`` would
write today: one per catalog entry with a Keras twin, the twin table's cases, and the PyTorch
implementations' current numbers. When this fails, rerun ``python scripts/make_golden.py``.
Torch only: this runs in the main pass and never imports Keras (the Keras side of the golden
vectors is tested in ``tests/keras``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = {
    p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "golden").glob("*.json"))
}
RERUN = "out of date: run `python scripts/make_golden.py`"


@pytest.fixture(scope="module")
def make_golden() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_golden", ROOT / "scripts" / "make_golden.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_file_per_twin(make_golden: Any) -> None:
    assert sorted(DOCUMENTS) == sorted(make_golden.twin_names()), RERUN


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_file_matches_twin_table_and_pytorch(make_golden: Any, name: str) -> None:
    twin = make_golden.TWINS[name]
    doc = DOCUMENTS[name]
    assert doc["keras"] == f"losskit.keras.{twin.keras}", RERUN
    assert [c["name"] for c in doc["cases"]] == [c.name for c in twin.cases], RERUN
    for stored, case in zip(doc["cases"], twin.cases, strict=True):
        assert stored["torch"] == case.torch, RERUN
        assert stored["config"] == dict(case.config), RERUN
        inputs = {key: make_golden.decode(value) for key, value in stored["inputs"].items()}
        result = make_golden.torch_result(name, case, inputs)
        rtol = 10.0 ** (1 - make_golden.DIGITS)
        np.testing.assert_allclose(
            make_golden.decode(stored["expected"]),
            result["expected"],
            rtol=rtol,
            atol=1e-12,
            err_msg=RERUN,
        )
        assert ("grad_y_pred" in stored) == ("grad" in result), RERUN
        if "grad" in result:
            np.testing.assert_allclose(
                make_golden.decode(stored["grad_y_pred"]),
                result["grad"],
                rtol=rtol,
                atol=1e-12,
                err_msg=RERUN,
            )


def test_importing_losskit_does_not_import_keras() -> None:
    code = (
        "import sys, losskit, losskit.functional, losskit._twins, losskit.losses as L;"
        "losskit._twins.gather(L.FAMILIES); losskit.catalog['focal'];"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('keras', 'tensorflow', 'jax')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
