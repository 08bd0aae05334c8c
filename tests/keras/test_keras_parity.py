"""Every Keras twin reproduces its PyTorch loss: the golden vectors of ``tests/golden`` (written
by ``scripts/make_golden.py`` from the PyTorch implementations) on the current Keras backend,
values and gradients in ``y_pred``, to float32 precision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from keras_golden import decode, golden_documents

pytestmark = pytest.mark.keras

DOCUMENTS = golden_documents()
CASES = [
    pytest.param(doc, case, id=f"{name}-{case['name']}")
    for name, doc in DOCUMENTS.items()
    for case in doc["cases"]
]

# float32 against float64 references: a few units in the last place of float32, scaled by the
# size of the values a case produces
RTOL, ATOL = 2e-5, 2e-6


def _close(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def test_golden_files_exist() -> None:
    assert len(DOCUMENTS) >= 17, "run scripts/make_golden.py to write tests/golden/*.json"


@pytest.mark.parametrize(("doc", "case"), CASES)
def test_matches_pytorch(LK: Any, value_and_grad: Any, doc: dict, case: dict) -> None:
    cls = getattr(LK, doc["keras"].rsplit(".", 1)[1])
    loss = cls(**case["config"])
    inputs = {key: decode(value) for key, value in case["inputs"].items()}
    value, grad = value_and_grad(
        loss,
        inputs["y_true"],
        inputs["y_pred"],
        inputs.get("sample_weight"),
        inputs.get("mask"),
    )
    expected = decode(case["expected"])
    assert value.shape == expected.shape, f"{case['torch']}: shape"
    _close(value, expected, f"value of {doc['keras']}({case['config']}) vs {case['torch']}")
    if "grad_y_pred" in case:
        _close(grad, decode(case["grad_y_pred"]), f"gradient vs {case['torch']}")
        assert np.all(np.isfinite(grad))
