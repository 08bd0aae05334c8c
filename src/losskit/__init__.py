"""losskit: the loss functions of deep learning, checked, stable and fast.

>>> import torch, losskit
>>> import losskit.functional as LF
>>> LF.huber_loss(torch.tensor([0.2, 0.3, -0.5, 0.1, 1.5]), torch.zeros(5), delta=1.0)
tensor(0.2390)
>>> print(losskit.catalog["huber"].summary)
Quadratic for small residuals, linear beyond delta: MSE's efficiency, MAE's robustness.

Errors: :class:`LossInputError` (a ``ValueError``) for an argument a loss cannot use, and
:class:`DoubleBackwardError` (a ``RuntimeError``) when a loss whose catalog entry says
``double_backward="refused"`` is differentiated twice (``create_graph=True``); every other loss
gives exact second derivatives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names load on first use (PEP 562), so `import losskit` stays light and
# `import losskit.keras` never imports torch. Each name is listed once, with where it lives.
_LAZY: dict[str, tuple[str, str | None]] = {
    "AdaptiveRobustLoss": ("losskit.nn", "AdaptiveRobustLoss"),
    "AsymmetricLoss": ("losskit.nn", "AsymmetricLoss"),
    "BCELoss": ("losskit.nn", "BCELoss"),
    "BCEWithLogitsLoss": ("losskit.nn", "BCEWithLogitsLoss"),
    "BPRLoss": ("losskit.nn", "BPRLoss"),
    "CTCLoss": ("losskit.nn", "CTCLoss"),
    "Catalog": ("losskit._catalog", "Catalog"),
    "CauchyLoss": ("losskit.nn", "CauchyLoss"),
    "CharbonnierLoss": ("losskit.nn", "CharbonnierLoss"),
    "CombinedLoss": ("losskit.custom", "CombinedLoss"),
    "CosineEmbeddingLoss": ("losskit.nn", "CosineEmbeddingLoss"),
    "CosineMargin": ("losskit.losses.triplet.schedules", "CosineMargin"),
    "CrossEntropyLoss": ("losskit.nn", "CrossEntropyLoss"),
    "DoubleBackwardError": ("losskit._autograd", "DoubleBackwardError"),
    "ErrorInput": ("losskit._catalog", "ErrorInput"),
    "FocalLoss": ("losskit.nn", "FocalLoss"),
    "GemanMcClureLoss": ("losskit.nn", "GemanMcClureLoss"),
    "GeneralRobustLoss": ("losskit.nn", "GeneralRobustLoss"),
    "GeneralRobustNLLLoss": ("losskit.nn", "GeneralRobustNLLLoss"),
    "HingeLoss": ("losskit.nn", "HingeLoss"),
    "HuberLoss": ("losskit.nn", "HuberLoss"),
    "HyperParam": ("losskit._catalog", "HyperParam"),
    "KLDivLoss": ("losskit.nn", "KLDivLoss"),
    "KLDivWithLogitsLoss": ("losskit.nn", "KLDivWithLogitsLoss"),
    "L1Loss": ("losskit.nn", "L1Loss"),
    "LinearCrossEntropyLoss": ("losskit.nn", "LinearCrossEntropyLoss"),
    "LinearMargin": ("losskit.losses.triplet.schedules", "LinearMargin"),
    "LogCoshLoss": ("losskit.nn", "LogCoshLoss"),
    "LossCases": ("losskit._catalog", "LossCases"),
    "LossInputError": ("losskit._checks", "LossInputError"),
    "LossModule": ("losskit.nn", "LossModule"),
    "LossParts": ("losskit.custom", "LossParts"),
    "LossSpec": ("losskit._catalog", "LossSpec"),
    "MSELoss": ("losskit.nn", "MSELoss"),
    "MarginRankingLoss": ("losskit.nn", "MarginRankingLoss"),
    "MultiMarginLoss": ("losskit.nn", "MultiMarginLoss"),
    "NLLLoss": ("losskit.nn", "NLLLoss"),
    "Poly1CrossEntropyLoss": ("losskit.nn", "Poly1CrossEntropyLoss"),
    "QuantileLoss": ("losskit.nn", "QuantileLoss"),
    "SampleInput": ("losskit._catalog", "SampleInput"),
    "SigmoidFocalLoss": ("losskit.nn", "SigmoidFocalLoss"),
    "SmoothL1Loss": ("losskit.nn", "SmoothL1Loss"),
    "TripletLoss": ("losskit.nn", "TripletLoss"),
    "TripletMarginLoss": ("losskit.nn", "TripletMarginLoss"),
    "WelschLoss": ("losskit.nn", "WelschLoss"),
    "WorkedExample": ("losskit._catalog", "WorkedExample"),
    "checks": ("losskit._checks", "checks"),
    "class_balanced_weights": ("losskit.losses.imbalance.weights", "class_balanced_weights"),
    "elementwise_loss": ("losskit.custom", "elementwise_loss"),
    "functional": ("losskit.functional", None),
    "get_catalog": ("losskit._registry", "get_catalog"),
    "get_checks": ("losskit._checks", "get_checks"),
    "multitask": ("losskit.multitask", None),
    "set_checks": ("losskit._checks", "set_checks"),
}

if TYPE_CHECKING:  # type checkers and IDEs see the same names, imported eagerly
    from losskit import functional, multitask
    from losskit._catalog import (
        Catalog,
        ErrorInput,
        HyperParam,
        LossCases,
        LossSpec,
        SampleInput,
        WorkedExample,
    )
    from losskit._catalog import Catalog as _Catalog
    from losskit._checks import (
        LossInputError,
        checks,
        get_checks,
        set_checks,
    )
    from losskit._registry import (
        get_catalog,
    )
    from losskit.custom import (
        CombinedLoss,
        LossParts,
        elementwise_loss,
    )
    from losskit.losses.imbalance.weights import (
        class_balanced_weights,
    )
    from losskit.losses.triplet.schedules import (
        CosineMargin,
        LinearMargin,
    )
    from losskit.nn import (
        AdaptiveRobustLoss,
        AsymmetricLoss,
        BCELoss,
        BCEWithLogitsLoss,
        BPRLoss,
        CauchyLoss,
        CharbonnierLoss,
        CosineEmbeddingLoss,
        CrossEntropyLoss,
        CTCLoss,
        FocalLoss,
        GemanMcClureLoss,
        GeneralRobustLoss,
        GeneralRobustNLLLoss,
        HingeLoss,
        HuberLoss,
        KLDivLoss,
        KLDivWithLogitsLoss,
        L1Loss,
        LinearCrossEntropyLoss,
        LogCoshLoss,
        LossModule,
        MarginRankingLoss,
        MSELoss,
        MultiMarginLoss,
        NLLLoss,
        Poly1CrossEntropyLoss,
        QuantileLoss,
        SigmoidFocalLoss,
        SmoothL1Loss,
        TripletLoss,
        TripletMarginLoss,
        WelschLoss,
    )

    catalog: _Catalog


def __getattr__(name: str) -> Any:
    if name == "catalog":
        from losskit._registry import get_catalog

        value: Any = get_catalog()
    elif name in _LAZY:
        module, attribute = _LAZY[name]
        value = importlib.import_module(module)
        if attribute is not None:
            value = getattr(value, attribute)
    else:
        raise AttributeError(f"module 'losskit' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AdaptiveRobustLoss",
    "AsymmetricLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BPRLoss",
    "CTCLoss",
    "Catalog",
    "CauchyLoss",
    "CharbonnierLoss",
    "CombinedLoss",
    "CosineEmbeddingLoss",
    "CosineMargin",
    "CrossEntropyLoss",
    "DoubleBackwardError",
    "ErrorInput",
    "FocalLoss",
    "GemanMcClureLoss",
    "GeneralRobustLoss",
    "GeneralRobustNLLLoss",
    "HingeLoss",
    "HuberLoss",
    "HyperParam",
    "KLDivLoss",
    "KLDivWithLogitsLoss",
    "L1Loss",
    "LinearCrossEntropyLoss",
    "LinearMargin",
    "LogCoshLoss",
    "LossCases",
    "LossInputError",
    "LossModule",
    "LossParts",
    "LossSpec",
    "MSELoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "Poly1CrossEntropyLoss",
    "QuantileLoss",
    "SampleInput",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "TripletLoss",
    "TripletMarginLoss",
    "WelschLoss",
    "WorkedExample",
    "catalog",
    "checks",
    "class_balanced_weights",
    "elementwise_loss",
    "functional",
    "get_catalog",
    "get_checks",
    "multitask",
    "set_checks",
]
