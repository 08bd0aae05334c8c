"""Module forms of the regression losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.regression.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.regression import functional as LF
from losskit.losses.regression.options import BETA, DELTA, Q

__all__ = ["HuberLoss", "L1Loss", "LogCoshLoss", "MSELoss", "QuantileLoss", "SmoothL1Loss"]

MSELoss = loss_module("MSELoss", LF.mse_loss, summary="Mean squared error")
L1Loss = loss_module("L1Loss", LF.l1_loss, summary="Mean absolute error")
HuberLoss = loss_module("HuberLoss", LF.huber_loss, (DELTA,), summary="Huber loss")
SmoothL1Loss = loss_module("SmoothL1Loss", LF.smooth_l1_loss, (BETA,), summary="Smooth L1 loss")
LogCoshLoss = loss_module("LogCoshLoss", LF.log_cosh_loss, summary="Log-cosh loss")
QuantileLoss = loss_module("QuantileLoss", LF.quantile_loss, (Q,), summary="Pinball loss")
