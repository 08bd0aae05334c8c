"""``losskit tune``: an Optuna study over a loss's hyper-parameters, whose objective is the
cross-validated held-out metric of :mod:`losskit.selection.training`.

Search spaces come from the catalog (each :class:`~losskit.HyperParam`'s ``low``/``high``/
``log``) unless given as ``name=low:high[:log]``, ``name=a,b,c`` (a choice) or ``name=value``
(fixed). Every end of a range and every choice is checked against the loss itself (the
functional is called with it), so a value outside the valid range fails before any training.
Studies live in an Optuna storage (SQLite file by default), so they resume, and several
machines can share one through a server database URL (``postgresql://``, with the
``losskit[postgres]`` extra): each worker then passes its own ``worker`` number, which keeps the
samplers of the workers apart, and reports the best trial of the whole study.
"""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from losskit._catalog import HyperParam, LossSpec
from losskit._checks import LossInputError
from losskit.selection.candidates import CLASS_WEIGHTINGS, Candidate, adapter_for, parse_value
from losskit.selection.data import DataError, Dataset, make_splits
from losskit.selection.metrics import Metric
from losskit.selection.training import FoldData, TrainSettings, one_thread, prepare_fold, train_fold

if TYPE_CHECKING:
    import optuna

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_STORAGE",
    "MAX_WORKERS",
    "WAIT_FOR_OTHERS",
    "SearchParam",
    "StudyResult",
    "default_search_space",
    "pair_distances_at",
    "parse_param",
    "run_study",
    "sampler_seed",
    "search_space",
    "storage_label",
    "study_for",
]

#: a SQLite file in the working directory: a study can be resumed by running the same command
DEFAULT_STORAGE = "sqlite:///losskit-tune.db"

#: seconds to wait for a database server to answer before giving up with a clear error, instead
#: of the driver's default (no limit with libpq): a typo in a host name must not hang the CLI
CONNECT_TIMEOUT = 5

#: worker numbers are 0 .. MAX_WORKERS - 1; each owns a block of _WORKER_STRIDE sampler seeds
MAX_WORKERS = 1000
_WORKER_STRIDE = 1_000_003

#: the least time a worker that has finished waits for the trials other workers are running;
#: more when the study's trials are slow (a few times the longest)
WAIT_FOR_OTHERS = 30.0

_OPEN_ATTEMPTS = 4


@dataclass(frozen=True)
class SearchParam:
    """One hyper-parameter's search: a float or int range, a choice, or a fixed value."""

    name: str
    kind: Literal["float", "int", "choice", "fixed"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    value: Any = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value

    def describe(self) -> str:
        if self.kind in ("float", "int"):
            return f"{self.name} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"
        if self.kind == "choice":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.name} = {self.value}"

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind in ("float", "int"):
            data |= {"low": self.low, "high": self.high, "log": self.log}
        elif self.kind == "choice":
            data["choices"] = [
                c if isinstance(c, int | float | str | bool) else str(c) for c in self.choices
            ]
        else:
            data["value"] = (
                self.value if isinstance(self.value, int | float | str | bool) else str(self.value)
            )
        return data


def _check_value(spec: LossSpec, param: HyperParam, value: Any, text: str) -> None:
    """Call the loss with ``value`` on one of its catalog samples: its own validation decides
    whether the value is allowed."""
    if isinstance(value, str) and value in CLASS_WEIGHTINGS:
        return
    sample = next(iter(spec.sample_inputs(torch.float32, torch.device("cpu"))), None)
    if sample is None:
        return
    try:
        spec.functional(*sample.args, **{**sample.kwargs, param.name: value})
    except LossInputError as exc:
        valid = f" (valid: {param.valid})" if param.valid else ""
        raise DataError(
            f"--param {text} is outside {spec.name}'s {param.name}{valid}: {exc}"
        ) from None


def parse_param(text: str, spec: LossSpec) -> SearchParam:
    """``name=low:high``, ``name=low:high:log``, ``name=a,b,c`` or ``name=value``."""
    name, sep, body = text.partition("=")
    name, body = name.strip(), body.strip()
    if not sep or not name or not body:
        raise DataError(
            f"--param is {text!r}; expected NAME=LOW:HIGH[:log], NAME=A,B,C or NAME=VALUE"
        )
    param = spec.param(name)
    default = param.default
    if ":" in body:
        parts = [p.strip() for p in body.split(":")]
        log = len(parts) == 3 and parts[2].lower() == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise DataError(f"--param {text}: expected NAME=LOW:HIGH or NAME=LOW:HIGH:log")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise DataError(f"--param {text}: LOW and HIGH must be numbers") from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise DataError(f"--param {text}: LOW and HIGH must be finite")
        if not low < high:
            raise DataError(f"--param {text} is an empty range; expected LOW < HIGH")
        if log and low <= 0:
            raise DataError(f"--param {text}: a log range needs LOW > 0")
        integer = isinstance(default, int) and not isinstance(default, bool)
        if integer and not (low.is_integer() and high.is_integer()):
            raise DataError(f"--param {text}: {name} is an integer; expected whole LOW and HIGH")
        for end in (int(low) if integer else low, int(high) if integer else high):
            _check_value(spec, param, end, text)
        return SearchParam(name, "int" if integer else "float", low, high, log)
    if "," in body:
        choices = tuple(parse_value(c, default) for c in body.split(",") if c.strip())
        if len(set(map(repr, choices))) < 2:
            raise DataError(f"--param {text}: a choice needs at least two different values")
        for choice in choices:
            _check_value(spec, param, choice, text)
        return SearchParam(name, "choice", choices=choices)
    value = parse_value(body, default)
    _check_value(spec, param, value, text)
    return SearchParam(name, "fixed", value=value)


def default_search_space(spec: LossSpec) -> list[SearchParam]:
    """The catalog's tuning ranges of ``spec``."""
    space = []
    for p in spec.params:
        if p.low is None or p.high is None:
            continue
        integer = isinstance(p.default, int) and not isinstance(p.default, bool)
        space.append(SearchParam(p.name, "int" if integer else "float", p.low, p.high, p.log))
    return space


def search_space(spec: LossSpec, texts: Sequence[str]) -> list[SearchParam]:
    """The ``--param`` values; when none of them is a range or a choice, the catalog's ranges
    of the other hyper-parameters are searched too."""
    given = [parse_param(t, spec) for t in texts]
    names = [p.name for p in given]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise DataError(f"--param names {duplicate} twice")
    if not any(p.kind != "fixed" for p in given):
        given += [p for p in default_search_space(spec) if p.name not in names]
    if not any(p.kind != "fixed" for p in given):
        tunable = ", ".join(p.name for p in spec.params) or "none"
        raise DataError(
            f"{spec.name} has no hyper-parameter with a tuning range; give one with --param "
            f"NAME=LOW:HIGH (its options: {tunable})"
        )
    return given


# -------------------------------------------------------------------------------- the study


@dataclass
class StudyResult:
    loss: str
    study_name: str
    storage: str
    metric: Metric
    space: list[SearchParam]
    #: one dict per trial of the study (earlier runs included): number, state, value, params
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    #: trials this run ran
    new_trials: int
    #: for embedding losses: distances of same-class and different-class pairs of held-out
    #: rows, with the best parameters
    distances: dict[str, np.ndarray] = field(default_factory=dict)
    #: this run's ``--worker`` number
    worker: int = 0
    #: finished trials of earlier runs of this worker number (or of a losskit before workers)
    earlier: int = 0
    #: finished trials of other worker numbers (they are in ``trials`` and ``best``)
    other_workers: int = 0
    #: trials still running elsewhere when the report was read: not in ``best`` yet
    running_elsewhere: int = 0
    #: trials that another process ran under this run's worker number while this one ran: the
    #: same sampler seed twice, so they may have repeated this run's proposals
    same_worker: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "study": self.study_name,
            "storage": self.storage,
            "metric": self.metric.key,
            "direction": self.metric.direction,
            "space": [p.as_dict() for p in self.space],
            "best": self.best,
            "trials": self.trials,
            "new_trials": self.new_trials,
            "worker": self.worker,
            "earlier_trials": self.earlier,
            "other_workers_trials": self.other_workers,
            "running_elsewhere": self.running_elsewhere,
        }


def _study_tag(
    spec: LossSpec,
    dataset: Dataset,
    metric: Metric,
    settings: TrainSettings,
    space: Sequence[SearchParam],
) -> dict[str, Any]:
    """What makes trials of one study comparable: they must share all of it, the search space
    included (a fixed ``miner=batch_all`` in one run and the default miner in the next would
    otherwise mix in one study, and its best trial would be reported without its miner)."""
    return {
        "loss": spec.name,
        "dataset": dataset.name,
        "rows": len(dataset),
        "task": dataset.task,
        "metric": metric.key,
        "settings": settings.as_dict(),
        "space": sorted(p.describe() for p in space),
    }


def storage_label(storage: str) -> str:
    """``storage`` with its password hidden: what messages and reports show."""
    try:
        from sqlalchemy.engine import make_url

        url = make_url(storage)
    except Exception:  # not a URL SQLAlchemy can parse: nothing to hide in it
        return storage
    return url.render_as_string(hide_password=True) if url.password else storage


def sampler_seed(seed: int, worker: int, done: int) -> int:
    """The sampler seed of ``worker`` opening a study that already has ``done`` trials.

    Worker 0 keeps ``seed + done`` (one machine: a resumed study continues the sequence instead
    of repeating its first draws); every other worker gets its own block of seeds, so workers
    that share a study, even ones started at the same moment, never propose the same trials."""
    return (seed + done + _WORKER_STRIDE * worker) % 2**32


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _storage_error(
    storage: str, exc: BaseException, doing: str = "cannot open", then: str = ""
) -> DataError:
    """One line for the user, with the password hidden; a missing driver names the extra."""
    shown = storage_label(storage)
    missing = [e for e in _causes(exc) if isinstance(e, ImportError)]
    if missing:
        # optuna re-raises the driver's ImportError without the module's name
        module = next((e.name for e in missing if e.name), "its database driver")
        if storage.split("://", 1)[0] in ("postgresql", "postgresql+psycopg", "postgres"):
            return DataError(
                f"{doing} --storage {shown}: the PostgreSQL driver ({module}) is not installed; "
                "pip install 'losskit[postgres]'"
            )
        return DataError(f"{doing} --storage {shown}: {module} is not installed")
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    # SQLAlchemy prefixes the driver's exception class: "(psycopg.OperationalError) ..."
    reason = re.sub(r"^\([\w.]+\)\s*", "", reason).replace(storage, shown)
    return DataError(f"{doing} --storage {shown}: {reason}{then}")


def _storage(storage: str) -> Any:
    """What ``optuna.create_study`` gets: the URL, or for a server database an ``RDBStorage``
    whose connections give up after :data:`CONNECT_TIMEOUT` seconds."""
    import optuna

    scheme = storage.split("://", 1)[0]
    if scheme.startswith(("postgresql", "mysql")) and "connect_timeout" not in storage:
        return optuna.storages.RDBStorage(
            storage, engine_kwargs={"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
        )
    return storage


def open_study(
    storage: str,
    name: str,
    metric: Metric,
    tag: dict[str, Any],
    seed: int,
    worker: int = 0,
) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if isinstance(worker, bool) or not isinstance(worker, int) or not 0 <= worker < MAX_WORKERS:
        raise DataError(f"--worker is {worker!r}; expected an integer from 0 to {MAX_WORKERS - 1}")
    if storage.startswith("sqlite:///"):
        from pathlib import Path

        path = Path(storage.removeprefix("sqlite:///"))
        if path.name and not path.expanduser().resolve().parent.is_dir():
            raise DataError(f"--storage {storage}: the directory {path.parent} does not exist")
    import sqlalchemy.exc

    for attempt in range(_OPEN_ATTEMPTS):
        try:
            study = optuna.create_study(
                storage=_storage(storage),
                study_name=name,
                direction=metric.direction,
                load_if_exists=True,
            )
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # workers started together on an empty database race to create Optuna's tables
            # (PostgreSQL: duplicate key in pg_type): the loser finds them made if it retries
            if attempt == _OPEN_ATTEMPTS - 1:
                raise _storage_error(storage, exc) from None
            time.sleep(0.5 * (attempt + 1))
        except Exception as exc:  # a missing driver, a bad URL, no server: one line
            raise _storage_error(storage, exc) from None
    stored = study.user_attrs.get("losskit")
    if stored is None:
        study.set_user_attr("losskit", tag)
    elif stored != tag:
        differ = sorted(k for k in tag if stored.get(k) != tag[k])
        raise DataError(
            f"study {name!r} in {storage_label(storage)} was run with other {', '.join(differ)}; "
            "resume it with the same command, or start another with --study NEW_NAME"
        )
    if study.direction.name.lower() != metric.direction:
        raise DataError(
            f"study {name!r} {study.direction.name.lower()}s; {metric.key} needs {metric.direction}"
        )
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, worker, len(study.trials)))
    return study


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": value,
        "params": dict(trial.params),
        **{
            k: v
            for k, v in trial.user_attrs.items()
            if k in ("std", "fold_values", "seconds", "worker", "host")
        },
    }


def study_for(
    spec: LossSpec,
    dataset: Dataset,
    settings: TrainSettings,
    metric: Metric,
    space: Sequence[SearchParam],
    *,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    worker: int = 0,
) -> optuna.Study:
    """The study of ``spec`` on ``dataset`` (default name ``LOSS-DATASET``), created or
    resumed; an error if the stored one was run with other settings. Workers that share the
    study each pass their own ``worker`` number (its sampler seed)."""
    if adapter_for(spec, dataset.task) is None:
        raise DataError(f"{spec.name} ({spec.task}) cannot train a {dataset.task} model")
    make_splits(dataset, folds=settings.folds, holdout=settings.holdout, seed=settings.seed)
    name = study_name or f"{spec.name}-{dataset.name}"
    tag = _study_tag(spec, dataset, metric, settings, space)
    return open_study(storage, name, metric, tag, settings.seed, worker)


def run_study(
    spec: LossSpec,
    dataset: Dataset,
    space: Sequence[SearchParam],
    settings: TrainSettings,
    metric: Metric,
    *,
    trials: int,
    study: optuna.Study | None = None,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    worker: int = 0,
    progress: Callable[[int, str], None] | None = None,
    on_trial: Callable[[int, float | None], None] | None = None,
    on_wait: Callable[[int], None] | None = None,
) -> StudyResult:
    """Run ``trials`` more trials of the study (``study``, or the one :func:`study_for` opens)
    and return all of its trials, other workers' included. ``storage`` is the study's URL
    (what the report shows) when ``study`` is given.

    Trials that other workers are running when this run's last one ends are waited for
    (``on_wait`` gets their count), up to a few times the study's longest trial, so that
    workers finishing together report the same best trial."""
    import optuna
    import sqlalchemy.exc

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise DataError(f"--trials is {trials!r}; expected an integer >= 1")
    if study is None:
        study = study_for(
            spec,
            dataset,
            settings,
            metric,
            space,
            storage=storage,
            study_name=study_name,
            worker=worker,
        )
    name = study.study_name
    splits = make_splits(
        dataset, folds=settings.folds, holdout=settings.holdout, seed=settings.seed
    )
    folds = [prepare_fold(dataset, s, settings.seed, i) for i, s in enumerate(splits)]
    host = socket.gethostname()
    mine: set[int] = set()

    def objective(trial: optuna.Trial) -> float:
        mine.add(trial.number)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("host", host)
        options = {p.name: p.suggest(trial) for p in space}
        candidate = Candidate(spec.name, options)
        started = time.perf_counter()
        values = []
        for i, data in enumerate(folds):
            result, _ = train_fold(
                candidate,
                dataset,
                data,
                settings,
                i,
                rank_by=metric,
                curves=False,
                progress=progress,
            )
            values.append(result.metrics[metric.key])
        trial.set_user_attr("fold_values", values)
        trial.set_user_attr("std", float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        value = float(np.mean(values))
        if on_trial is not None:
            on_trial(trial.number, value if math.isfinite(value) else None)
        return value  # NaN (a diverged fold) makes Optuna record the trial as failed

    try:
        finished_before = {
            t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()
        }
        with one_thread():
            study.optimize(objective, n_trials=trials, catch=(LossInputError,))
        _wait_for_other_workers(study, mine, on_wait)
        snapshot = study.get_trials(deepcopy=False)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        # the server went away mid-study: finished trials are in the database already
        raise _storage_error(
            storage, exc, doing="lost", then="; its finished trials are kept there"
        ) from None
    records = [_trial_record(t) for t in snapshot]
    result = StudyResult(
        spec.name, name, storage_label(storage), metric, list(space), records, None, len(mine)
    )
    # by who ran them, not when: a trial of another worker number is another worker's even if
    # it finished before this run started; this worker's own earlier trials are earlier runs
    running = optuna.trial.TrialState.RUNNING
    others = [t for t in snapshot if t.number not in mine]
    finished = [t for t in others if t.state != running]
    result.worker = worker
    result.running_elsewhere = len(others) - len(finished)
    result.other_workers = sum(t.user_attrs.get("worker", worker) != worker for t in finished)
    result.earlier = len(finished) - result.other_workers
    result.same_worker = sum(
        t.user_attrs.get("worker") == worker and t.number not in finished_before for t in others
    )
    best_trial = _best(snapshot, metric)
    if best_trial is not None:
        result.best = _trial_record(best_trial)
        fixed = {p.name: p.value for p in space if p.kind == "fixed"}
        if dataset.task == "embedding":
            options = {**fixed, **best_trial.params}
            with one_thread():
                result.distances = pair_distances_at(
                    Candidate(spec.name, options), dataset, folds[0], settings, metric
                )
    return result


def _best(
    trials: Sequence[optuna.trial.FrozenTrial], metric: Metric
) -> optuna.trial.FrozenTrial | None:
    """The best finished trial of ``trials`` (the earliest of equal ones), read from the same
    snapshot as the rest of the report so that the two agree."""
    import optuna

    done = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
    ]
    if not done:
        return None
    sign = -1.0 if metric.higher_is_better else 1.0
    return min(done, key=lambda t: (sign * float(t.value), t.number))


def _wait_for_other_workers(
    study: optuna.Study, mine: set[int], on_wait: Callable[[int], None] | None
) -> None:
    """Wait until the trials other workers are running now have finished.

    Only those: a worker with many more trials to go is not waited for. A trial older than a
    few times the study's longest one is taken for an abandoned one (a worker killed
    mid-trial leaves it RUNNING for ever) and not waited for either."""
    import optuna

    running = optuna.trial.TrialState.RUNNING
    trials = study.get_trials(deepcopy=False)
    # the trials' own timings (every worker measures its own), not start and end stamps that
    # different machines' clocks wrote
    longest = max(
        (float(t.user_attrs["seconds"]) for t in trials if "seconds" in t.user_attrs),
        default=0.0,
    )
    patience = max(WAIT_FOR_OTHERS, 5 * longest)
    now = datetime.now()
    waiting = {
        t.number
        for t in trials
        if t.state == running
        and t.number not in mine
        and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() < patience
    }
    deadline = time.monotonic() + patience
    while waiting and time.monotonic() < deadline:
        if on_wait is not None:
            on_wait(len(waiting))
        time.sleep(0.2)
        still = {t.number for t in study.get_trials(deepcopy=False, states=(running,))}
        waiting &= still


def pair_distances_at(
    candidate: Candidate,
    dataset: Dataset,
    data: FoldData,
    settings: TrainSettings,
    metric: Metric,
) -> dict[str, np.ndarray]:
    """Train with ``candidate`` on the first fold and return the distances of same-class
    (``positive``) and different-class (``negative``) pairs of its held-out rows, measured
    as the loss measures them: what the margin has to separate."""
    from losskit.functional import pairwise_distances

    _, model = train_fold(candidate, dataset, data, settings, 0, rank_by=metric, curves=False)
    with torch.no_grad():
        embeddings = model(data.x_test).double()
    distance = candidate.options.get("distance", "euclidean")
    if not isinstance(distance, str) or distance not in (
        "euclidean",
        "squared_euclidean",
        "cosine",
    ):
        distance = "euclidean"
    d = pairwise_distances(embeddings, distance=distance)  # type: ignore[arg-type]
    labels = torch.as_tensor(data.y_test)
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    same = labels[i] == labels[j]
    pairs = d[i, j]
    return {"positive": pairs[same].numpy(), "negative": pairs[~same].numpy()}
