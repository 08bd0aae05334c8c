"""Fixtures of the regression entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from losskit._catalog import LossCases, SampleInput
from losskit._fixtures import (
    TensorMaker,
    elementwise_errors,
    elementwise_samples,
    formula_reference,
    torch_reference,
)


def regression_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    return SampleInput((make.randn(size), make.randn(size)), {}, f"{size} elements", (0,))


CASES: dict[str, LossCases] = {
    "mse": LossCases(
        reference=torch_reference(F.mse_loss),
        bench_inputs=regression_bench,
        sample_inputs=elementwise_samples({}),
        error_inputs=elementwise_errors("mse_loss", {}),
    ),
    "l1": LossCases(
        reference=torch_reference(F.l1_loss),
        bench_inputs=regression_bench,
        sample_inputs=elementwise_samples({}),
        error_inputs=elementwise_errors("l1_loss", {}),
    ),
    "huber": LossCases(
        reference=torch_reference(F.huber_loss),
        bench_inputs=regression_bench,
        sample_inputs=elementwise_samples({"delta": (0.3, 2.5)}),
        error_inputs=elementwise_errors("huber_loss", {"delta": 0.0}),
    ),
    "smooth_l1": LossCases(
        reference=torch_reference(F.smooth_l1_loss),
        bench_inputs=regression_bench,
        sample_inputs=elementwise_samples({"beta": (0.0, 0.4, 3.0)}),
        error_inputs=elementwise_errors("smooth_l1_loss", {"beta": -1.0}),
    ),
    "log_cosh": LossCases(
        reference=formula_reference(lambda x, y: torch.logaddexp(x - y, y - x) - math.log(2.0)),
        sample_inputs=elementwise_samples({}),
        error_inputs=elementwise_errors("log_cosh_loss", {}),
    ),
    "quantile": LossCases(
        reference=formula_reference(
            lambda x, y, q=0.5: torch.where(y >= x, q * (y - x), (1 - q) * (x - y))
        ),
        sample_inputs=elementwise_samples({"q": (0.1, 0.9)}),
        error_inputs=elementwise_errors("quantile_loss", {"q": 1.0}),
    ),
}
