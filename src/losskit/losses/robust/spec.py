"""Catalog entries for Barron's general robust loss, its named members and the negative
log-likelihood of the general distribution."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.robust import functional as LF
from losskit.losses.robust import modules as LN
from losskit.losses.robust.options import ALPHA, NLL_ALPHA, NLL_SCALE, SCALE

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.robust.cases"

_BARRON = "Barron, A General and Adaptive Robust Loss Function, CVPR 2019"
_RESIDUALS = (0.2, 0.3, -0.5, 0.1, 1.5)
_COMMON = frozenset({"nonnegative", "zero_at_perfect", "symmetric"})


def _example(expected: float, title: str, residuals=_RESIDUALS, **kwargs) -> WorkedExample:
    r = torch.tensor(residuals)
    return WorkedExample(title, (r, torch.zeros_like(r)), kwargs, expected, 4)


def _member(
    name: str,
    aliases: tuple[str, ...],
    functional: Callable[..., Tensor],
    module: type,
    alpha: float,
    summary: str,
    formula: str,
    papers: tuple[str, ...],
    example: WorkedExample,
    notes: str = "",
) -> LossSpec:
    return LossSpec(
        name=name,
        aliases=aliases,
        functional=functional,
        module=module,
        task="regression",
        summary=summary,
        formula=formula,
        params=(SCALE,),
        reference_name=f"eq. 1 of Barron (2019) at alpha={alpha:g}, float64",
        papers=(*papers, _BARRON),
        examples=(example,),
        properties=_COMMON,
        notes=notes,
        bench_sizes=(1024, 1_048_576),
        cases=_CASES,
    )


SPECS = [
    LossSpec(
        name="general_robust",
        aliases=("general_robust_loss", "barron", "barron_loss", "robust"),
        functional=LF.general_robust_loss,
        module=LN.GeneralRobustLoss,
        task="regression",
        summary="Barron's one-parameter family: alpha=2 L2, 1 Charbonnier, 0 Cauchy, -2 "
        "Geman-McClure, -inf Welsch.",
        formula=(
            r"\rho(d,\alpha,c) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(d/c)^2}{|\alpha-2|}"
            r"+1\right)^{\alpha/2}-1\right)"
        ),
        params=(ALPHA, SCALE),
        reference_name="eq. 1 of Barron (2019) with its limits, float64",
        papers=(_BARRON,),
        examples=(
            _example(0.1979, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), alpha=1 (Charbonnier)"),
            _example(0.264, "alpha=2 is half the MSE (0.528)", alpha=2.0),
            _example(0.1881, "alpha=0 (Cauchy)", alpha=0.0),
        ),
        properties=_COMMON,
        notes=(
            "alpha and scale may be tensors (per element or per dimension) and then get "
            "gradients; second derivatives are exact (an eager formula is differentiated "
            "when a graph of the gradient is asked for). "
            "For a learned alpha use AdaptiveRobustLoss, which minimises the NLL instead: "
            "minimising this loss over alpha just drives alpha to -inf."
        ),
        bench_sizes=(1024, 1_048_576),
        cases=_CASES,
    ),
    _member(
        "cauchy",
        ("cauchy_loss", "lorentzian"),
        LF.cauchy_loss,
        LN.CauchyLoss,
        0.0,
        "log(1 + (d/c)^2 / 2): the Cauchy NLL; an outlier's pull decays like 1/d.",
        r"\rho(d) = \log\left(\tfrac12 (d/c)^2 + 1\right)",
        ("Black & Anandan, The robust estimation of multiple motions, CVIU 1996",),
        _example(1.0986, "residual 2, scale 1: log 3", residuals=(2.0,)),
    ),
    _member(
        "geman_mcclure",
        ("geman_mcclure_loss", "gm"),
        LF.geman_mcclure_loss,
        LN.GemanMcClureLoss,
        -2.0,
        "2 (d/c)^2 / ((d/c)^2 + 4): bounded by 2, outliers' pull vanishes like 1/d^3.",
        r"\rho(d) = \frac{2 (d/c)^2}{(d/c)^2 + 4}",
        (
            "Geman & McClure, Bayesian image analysis: an application to single photon emission "
            "tomography, 1985",
        ),
        _example(1.0, "residual 2, scale 1: 8 / 8", residuals=(2.0,)),
        notes="Barron's normalisation; d^2/(d^2 + s^2) is this loss at scale s/2, halved.",
    ),
    _member(
        "welsch",
        ("welsch_loss", "leclerc"),
        LF.welsch_loss,
        LN.WelschLoss,
        -math.inf,
        "1 - exp(-(d/c)^2 / 2): bounded by 1, a Gaussian-shaped influence; alpha -> -inf.",
        r"\rho(d) = 1 - \exp\left(-\tfrac12 (d/c)^2\right)",
        ("Dennis & Welsch, Techniques for nonlinear least squares and robust regression, 1978",),
        _example(0.8647, "residual 2, scale 1: 1 - e^-2", residuals=(2.0,)),
    ),
    _member(
        "charbonnier",
        ("charbonnier_loss", "pseudo_huber", "pseudo_huber_loss", "l1_l2"),
        LF.charbonnier_loss,
        LN.CharbonnierLoss,
        1.0,
        "sqrt((d/c)^2 + 1) - 1: pseudo-Huber; quadratic near 0, then |d|/c, smooth everywhere.",
        r"\rho(d) = \sqrt{(d/c)^2 + 1} - 1",
        (
            "Charbonnier et al., Two deterministic half-quadratic regularization algorithms for "
            "computed imaging, ICIP 1994",
        ),
        _example(2.1623, "residual 3, scale 1: sqrt(10) - 1", residuals=(3.0,)),
        notes=(
            "sqrt(d^2 + eps^2) (super-resolution) is eps * charbonnier(scale=eps) + eps; "
            "pseudo-Huber with delta is delta^2 * charbonnier(scale=delta)."
        ),
    ),
    LossSpec(
        name="general_robust_nll",
        aliases=("general_robust_nll_loss", "robust_nll", "barron_nll"),
        functional=LF.general_robust_nll_loss,
        module=LN.GeneralRobustNLLLoss,
        task="regression",
        summary="NLL of Barron's general distribution: rho + log c + log Z(alpha); lets alpha "
        "and scale be learned (AdaptiveRobustLoss).",
        formula=r"\ell_i = \rho(x_i - y_i, \alpha, c) + \log c + \log Z(\alpha)",
        params=(NLL_ALPHA, NLL_SCALE),
        reference_name="eq. 1 + log c + log Z by a 2561-node trapezoid in log x, float64",
        papers=(_BARRON,),
        examples=(
            _example(
                1.2314,
                "alpha=2, scale=1 is the Gaussian NLL: (0.125 + 0.5)/2 + log sqrt(2 pi)",
                residuals=(0.5, -1.0),
                alpha=2.0,
            ),
        ),
        properties=frozenset({"symmetric"}),
        notes=(
            "log Z(alpha) by exp-sinh quadrature on the fly (see losskit.losses.robust.partition); "
            "at alpha=2 equals torch.nn.functional.gaussian_nll_loss(full=True) with "
            "var=scale**2."
        ),
        bench_sizes=(1024, 1_048_576),
        cases=_CASES,
    ),
]
