"""The regression losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import Array, Twin, pointwise_cases

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "mse": Twin("MSELoss", pointwise_cases()),
    "l1": Twin("L1Loss", pointwise_cases()),
    "huber": Twin(
        "HuberLoss",
        (
            *pointwise_cases(cases="reductions"),
            *pointwise_cases("delta=0.5", {"delta": 0.5}, prefix="delta_", cases="mean"),
            *pointwise_cases(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "smooth_l1": Twin(
        "SmoothL1Loss",
        (
            *pointwise_cases(cases="reductions"),
            *pointwise_cases("beta=0.5", {"beta": 0.5}, prefix="beta_", cases="mean"),
            *pointwise_cases("beta=0.0", {"beta": 0.0}, prefix="beta0_", cases="mean"),
        ),
    ),
    "log_cosh": Twin(
        "LogCoshLoss",
        (
            *pointwise_cases(cases="reductions"),
            *pointwise_cases(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "quantile": Twin(
        "QuantileLoss",
        (
            *pointwise_cases(cases="reductions"),
            *pointwise_cases("q=0.9", {"q": 0.9}, prefix="q09_", cases="mean"),
        ),
    ),
}
