r"""Weighting several task losses into one: uncertainty weighting (Kendall et al. 2018), dynamic
weight average (Liu et al. 2019) and GradNorm (Chen et al. 2018).

Each weighter is an ``nn.Module`` called with the task losses by name and returns a
:class:`MultiTaskOutput`: the ``total`` to call ``backward()`` on and the current ``weights``
per task (detached, for logging)::

    weighting = losskit.multitask.UncertaintyWeighting(["depth", "segmentation"],
                                                       task_types={"segmentation": "classification"})
    optimizer = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()))
    out = weighting({"depth": depth_loss, "segmentation": seg_loss})
    out.total.backward()

Uncertainty weighting and GradNorm learn parameters: hand them to the optimizer, as above (both
warn once if their parameters never change). Dynamic weight average learns nothing; call its
:meth:`~DynamicWeightAverage.end_epoch` once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from losskit._checks import check_number, fail
from losskit._learnable import StepWatch

__all__ = ["DynamicWeightAverage", "GradNorm", "MultiTaskOutput", "UncertaintyWeighting"]

TaskType = Literal["regression", "classification"]


class MultiTaskOutput(NamedTuple):
    """What a weighter returns: the loss to minimise and the weight each task got."""

    total: Tensor
    weights: dict[str, Tensor]


def _task_names(owner: str, task_names: object) -> tuple[str, ...]:
    if isinstance(task_names, str) or not isinstance(task_names, Iterable):
        fail(owner, "task_names", f"is {task_names!r}", "a sequence of task names")
    names = tuple(task_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        fail(owner, "task_names", f"is {names!r}", "one or more non-empty strings")
    if len(set(names)) != len(names):
        fail(owner, "task_names", f"is {names!r}", "distinct names")
    return names


class _TaskWeighting(nn.Module):
    """Shared plumbing: the task names, validation of the losses and the stale-parameter
    warning."""

    #: training calls after which unchanged parameters trigger the "not in the optimizer" warning
    stale_check_calls: ClassVar[int] = 100

    def __init__(self, task_names: Sequence[str]) -> None:
        super().__init__()
        self.task_names = _task_names(type(self).__name__, task_names)
        self._watch = StepWatch(
            type(self).__name__,
            "torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()))",
            self.stale_check_calls,
        )

    def _stack(self, losses: object) -> Tensor:
        """The task losses as one vector in ``task_names`` order."""
        owner = type(self).__name__
        if not isinstance(losses, Mapping):
            fail(owner, "losses", f"is a {type(losses).__name__}", "a mapping task name -> loss")
        if set(losses) != set(self.task_names):
            missing = sorted(set(self.task_names) - set(losses))
            extra = sorted(set(losses) - set(self.task_names))
            fail(
                owner,
                "losses",
                f"has missing tasks {missing} and unknown tasks {extra}",
                f"exactly the tasks {list(self.task_names)}",
            )
        values = []
        for name in self.task_names:
            loss = losses[name]
            if not isinstance(loss, Tensor) or not loss.is_floating_point() or loss.dim() != 0:
                got = f"shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss)
                fail(owner, f"losses[{name!r}]", f"is {got}", "a scalar floating tensor")
            values.append(loss)
        first = values[0]
        for name, loss in zip(self.task_names, values, strict=True):
            if loss.device != first.device:
                fail(owner, f"losses[{name!r}]", f"is on {loss.device}", f"{first.device}")
        dtype = torch.promote_types(first.dtype, torch.float32)
        for loss in values:
            dtype = torch.promote_types(dtype, loss.dtype)
        return torch.stack([loss.to(dtype) for loss in values])

    def _output(self, total: Tensor, weights: Tensor) -> MultiTaskOutput:
        detached = weights.detach().clone()  # a snapshot: the weighter updates its buffers
        return MultiTaskOutput(total, dict(zip(self.task_names, detached.unbind(), strict=True)))

    def _observe(self) -> None:
        self._watch.after = self.stale_check_calls
        self._watch.observe(self.parameters())


class UncertaintyWeighting(_TaskWeighting):
    r"""Weights each task by its learned homoscedastic uncertainty (Kendall, Gal & Cipolla,
    "Multi-Task Learning Using Uncertainty to Weigh Losses", CVPR 2018).

    With a learnable log-variance :math:`s_i = \log\sigma_i^2` per task:

    .. math:: L = \sum_i c_i\, e^{-s_i} L_i + \tfrac12 s_i,
              \qquad c_i = \tfrac12 \text{ (regression, eq. 7)},\ 1 \text{ (classification, eq. 10)}

    so a task whose loss stays high (a noisy task) gets a large :math:`\sigma_i^2` and a small
    weight :math:`c_i e^{-s_i}`, while :math:`\tfrac12 s_i` keeps :math:`\sigma_i` from growing
    without bound. For a regression task with MSE loss the optimum is
    :math:`\sigma_i^2 = L_i`. (The log-variance form, :math:`s_i` unconstrained, is the paper's
    own recommendation for stability.)

    Args:
        task_names: the tasks, in a fixed order.
        task_types: ``{name: "regression" | "classification"}``; tasks not named are
            regression.
        init_log_variance: the initial :math:`s_i` (0: every weight starts at
            :math:`c_i`).

    >>> import torch, losskit
    >>> weighting = losskit.multitask.UncertaintyWeighting(["a", "b"])
    >>> out = weighting({"a": torch.tensor(2.0), "b": torch.tensor(0.5)})
    >>> out.total.item(), out.weights["a"].item()
    (1.25, 0.5)
    """

    def __init__(
        self,
        task_names: Sequence[str],
        *,
        task_types: Mapping[str, TaskType] | None = None,
        init_log_variance: float = 0.0,
    ) -> None:
        super().__init__(task_names)
        types = dict(task_types or {})
        for name, kind in types.items():
            if name not in self.task_names:
                fail("UncertaintyWeighting", "task_types", f"names {name!r}", "a known task")
            if kind not in ("regression", "classification"):
                fail(
                    "UncertaintyWeighting",
                    f"task_types[{name!r}]",
                    f"is {kind!r}",
                    "'regression' or 'classification'",
                )
        self.task_types = tuple(types.get(n, "regression") for n in self.task_names)
        init = check_number("UncertaintyWeighting", "init_log_variance", init_log_variance)
        self.log_variance = nn.Parameter(torch.full((len(self.task_names),), init))
        factors = [0.5 if kind == "regression" else 1.0 for kind in self.task_types]
        self.register_buffer("factors", torch.tensor(factors))

    def forward(self, losses: Mapping[str, Tensor]) -> MultiTaskOutput:
        values = self._stack(losses)
        self._observe()
        s = self.log_variance.to(values.dtype)
        weights = self.factors.to(values.dtype) * torch.exp(-s)
        total = (weights * values).sum() + 0.5 * s.sum()
        return self._output(total, weights)

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: {k}" for n, k in zip(self.task_names, self.task_types, strict=True))


class DynamicWeightAverage(_TaskWeighting):
    r"""Dynamic weight average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with
    Attention", CVPR 2019, eq. 7): a task whose loss falls slowly gets more weight.

    .. math:: \lambda_k(t) = \frac{K \exp(w_k(t-1)/T)}{\sum_i \exp(w_i(t-1)/T)},\qquad
              w_k(t-1) = \frac{L_k(t-1)}{L_k(t-2)}

    where :math:`L_k(t)` is task :math:`k`'s mean loss over epoch :math:`t`, :math:`K` the
    number of tasks and :math:`T` the temperature (large :math:`T`: equal weights). The weights
    are 1 for the first two epochs. Nothing is learned: call :meth:`end_epoch` after each epoch
    (or after any fixed number of steps); the module accumulates the losses it sees, without a
    host sync.

    >>> import torch, losskit
    >>> dwa = losskit.multitask.DynamicWeightAverage(["a", "b"])
    >>> for a, b in [(1.0, 1.0), (0.5, 0.9)]:          # task a improves faster
    ...     _ = dwa({"a": torch.tensor(a), "b": torch.tensor(b)})
    ...     dwa.end_epoch()
    >>> {k: round(v.item(), 3) for k, v in dwa.weights.items()}
    {'a': 0.9, 'b': 1.1}
    """

    def __init__(self, task_names: Sequence[str], *, temperature: float = 2.0) -> None:
        super().__init__(task_names)
        self.temperature = check_number("DynamicWeightAverage", "temperature", temperature, gt=0.0)
        k = len(self.task_names)
        self.register_buffer("lambdas", torch.ones(k))
        #: mean losses of the last two epochs, most recent last
        self.register_buffer("epoch_means", torch.zeros(2, k, dtype=torch.float64))
        self.register_buffer("running_sum", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("running_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.int64))

    @property
    def weights(self) -> dict[str, Tensor]:
        """The weights the next call will use."""
        return dict(zip(self.task_names, self.lambdas.clone().unbind(), strict=True))

    def forward(self, losses: Mapping[str, Tensor]) -> MultiTaskOutput:
        values = self._stack(losses)
        if torch.is_grad_enabled():  # validation passes do not move the weights
            self.running_sum += values.detach().to(self.running_sum.dtype)
            self.running_count += 1
        weights = self.lambdas.to(values.dtype)
        return self._output((weights * values).sum(), weights)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Close the epoch: its mean losses become :math:`L_k(t-1)` and the weights update."""
        means = self.running_sum / self.running_count.clamp(min=1)
        self.epoch_means.copy_(torch.stack([self.epoch_means[1], means]))
        self.epochs += 1
        self.running_sum.zero_()
        self.running_count.zero_()
        previous, before = self.epoch_means[1], self.epoch_means[0]
        ratio = previous / torch.where(before > 0, before, 1.0)
        updated = len(self.task_names) * torch.softmax(ratio / self.temperature, dim=0)
        # w_k = 1 (equal weights) until two epochs are complete
        self.lambdas.copy_(torch.where(self.epochs >= 2, updated, 1.0).to(self.lambdas.dtype))

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}, temperature={self.temperature:g}"


class GradNorm(_TaskWeighting):
    r"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): learns task weights
    :math:`w_i` so that the tasks' gradient norms at a shared layer train at balanced rates.

    At each call, with :math:`G_i = \lVert\nabla_W w_i L_i\rVert_2` at the shared parameters
    :math:`W`, :math:`\bar G` their mean, :math:`\tilde L_i = L_i / L_i(0)` and
    :math:`r_i = \tilde L_i / \operatorname{mean}(\tilde L)`:

    .. math:: L_\text{grad} = \sum_i \big|G_i - \bar G\, r_i^{\alpha}\big|_1

    with the target :math:`\bar G r_i^\alpha` held constant (eq. 1-2). ``total`` equals
    :math:`\sum_i w_i L_i` in value; its backward sends :math:`\sum_i w_i L_i` (weights held
    fixed) to the network and :math:`\nabla_w L_\text{grad}` to the weights, as in Algorithm 1.
    The weights are renormalised to sum to the number of tasks at the start of each call (the
    paper renormalises after each step) and kept positive. :math:`L_i(0)` is the first call's
    loss; call :meth:`reset_initial_losses` to restart it.

    Cost: one extra backward pass per task, through the part of the graph between the losses and
    ``shared_parameters`` only; choose the last shared layer, as the paper does.

    Args:
        task_names: the tasks, in a fixed order.
        shared_parameters: the parameters of the last shared layer (:math:`W`).
        alpha: the restoring force; 0 equalises gradient norms, larger values push tasks that
            lag in training harder (the paper uses 0.06 to 3, 1.5 most often).

    The latest :math:`L_\text{grad}` is kept in ``gradnorm_loss`` for logging.
    """

    def __init__(
        self,
        task_names: Sequence[str],
        shared_parameters: Iterable[Tensor],
        *,
        alpha: float = 1.5,
    ) -> None:
        super().__init__(task_names)
        shared = list(shared_parameters)
        if not shared or not all(isinstance(p, Tensor) and p.requires_grad for p in shared):
            fail(
                "GradNorm",
                "shared_parameters",
                "is empty or holds tensors that do not require grad",
                "the parameters of the last shared layer",
            )
        self._shared = shared
        self.alpha = check_number("GradNorm", "alpha", alpha, ge=0.0)
        self.task_weights = nn.Parameter(torch.ones(len(self.task_names)))
        self.register_buffer("initial_losses", torch.zeros(len(self.task_names)))
        self._has_initial = False
        self.gradnorm_loss: Tensor | None = None

    def reset_initial_losses(self) -> None:
        """Take the next call's losses as :math:`L_i(0)`."""
        self._has_initial = False

    def get_extra_state(self) -> dict[str, bool]:
        # a run resumed from a checkpoint keeps the restored L_i(0) instead of re-recording it
        return {"has_initial": self._has_initial}

    def set_extra_state(self, state: dict[str, bool]) -> None:
        self._has_initial = bool(state["has_initial"])

    def forward(self, losses: Mapping[str, Tensor]) -> MultiTaskOutput:
        values = self._stack(losses)
        self._observe()
        count = len(self.task_names)
        with torch.no_grad():
            w = self.task_weights
            w.clamp_(min=1e-3 * w.sum().clamp(min=1e-12) / count)
            w.mul_(count / w.sum())
        self._watch.rebase()
        weights = self.task_weights.to(values.dtype)
        weighted = (weights.detach() * values).sum()
        if not torch.is_grad_enabled() or not values.requires_grad:
            return self._output(weighted, weights)
        if not self._has_initial:
            self.initial_losses.copy_(values.detach())
            self._has_initial = True
        norms = []
        for loss in values.unbind():
            grads = torch.autograd.grad(loss, self._shared, retain_graph=True, allow_unused=True)
            squares = [g.square().sum() for g in grads if g is not None]
            norms.append(torch.stack(squares).sum().sqrt() if squares else loss.new_zeros(()))
        gradient_norms = weights * torch.stack(norms).to(values.dtype)
        with torch.no_grad():
            relative = values.detach() / self.initial_losses.to(values.dtype).clamp(min=1e-12)
            rate = relative / relative.mean()
            target = gradient_norms.mean() * rate.pow(self.alpha)
        gradnorm_loss = (gradient_norms - target).abs().sum()
        self.gradnorm_loss = gradnorm_loss.detach()
        # value: sum w_i L_i; gradient: the network sees fixed weights, the weights see L_grad
        total = weighted + (gradnorm_loss - gradnorm_loss.detach())
        return self._output(total, weights)

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}, alpha={self.alpha:g}"
