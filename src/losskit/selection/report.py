"""What ``compare`` and ``tune`` leave behind: results.json, results.md and plots, written into
a temporary directory beside ``--out`` and moved into place only when everything is written,
so an error or Ctrl-C never leaves a half-written report."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from losskit.selection.paths import check_output_dir
from losskit.selection.training import CandidateResult, Comparison
from losskit.selection.tuning import StudyResult

__all__ = [
    "check_output_dir",
    "comparison_markdown",
    "format_number",
    "plot_curves",
    "plot_metric_bars",
    "staged_output",
    "table_header",
    "table_rows",
    "write_comparisons",
    "write_study",
]


#: the key of results.json that lists the report's files: what ``--force`` may replace later
FILES_KEY = "files"


def _previous_report_files(out: Path) -> set[str]:
    """The files an earlier report in ``out`` wrote (its results.json says), or none."""
    try:
        listed = json.loads((out / "results.json").read_text()).get(FILES_KEY, [])
    except (OSError, ValueError, AttributeError):
        return set()
    # plain names only: a results.json written by hand must not reach outside ``out``
    return {f for f in listed if isinstance(f, str) and f == Path(f).name and f != ""}


@contextmanager
def staged_output(out: Path, *, force: bool = False) -> Iterator[Path]:
    """A temporary directory to write the report into; on success its files move into
    ``out`` (created if needed), on any exception it is removed.

    A new ``out`` appears whole, by one rename. An existing one must be empty unless
    ``force``: then files of the same name are replaced, and the files an earlier losskit
    report listed that this one does not write are removed, so two runs' plots never mix;
    other files are left alone."""
    out = check_output_dir(out, force=force)
    existed = out.is_dir()
    if not existed:
        out.parent.mkdir(parents=True, exist_ok=True)
    stale = _previous_report_files(out) if existed else set()
    staging = Path(tempfile.mkdtemp(prefix=".losskit-partial-", dir=out if existed else out.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(staging, 0o777 & ~mask)  # mkdtemp makes it private; the report is not
    try:
        yield staging
        if not existed:
            os.replace(staging, out)  # one rename: the report appears whole
        else:
            written = {item.name for item in staging.iterdir()}
            for item in sorted(staging.iterdir()):
                os.replace(item, out / item.name)
            for name in sorted(stale - written):
                (out / name).unlink(missing_ok=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------- tables


def format_number(value: float, decimals: int) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{decimals}f}"


def _decimals(values: Sequence[float]) -> int:
    finite = [abs(v) for v in values if math.isfinite(v)]
    top = max(finite, default=1.0)
    return 1 if top >= 100 else 2 if top >= 1 else 3


def table_header(comparison: Comparison) -> list[str]:
    marks = {True: "↑", False: "↓"}
    return [
        "#",
        "loss",
        *(f"{m.label} {marks[m.higher_is_better]}" for m in comparison.metrics),
        "time",
    ]


def table_rows(comparison: Comparison) -> list[list[str]]:
    """Ranked rows: rank, loss, ``mean ± std`` per metric, seconds (all folds)."""
    ranked = comparison.ranked()
    decimals = {m.key: _decimals([r.mean(m.key) for r in ranked]) for m in comparison.metrics}
    rows = []
    for rank, result in enumerate(ranked, start=1):
        cells = []
        for m in comparison.metrics:
            mean, std = result.mean(m.key), result.std(m.key)
            d = decimals[m.key]
            cells.append(
                f"{format_number(mean, d)} ± {format_number(std, d)}"
                if math.isfinite(mean)
                else "diverged"
            )
        rows.append([str(rank), result.label, *cells, f"{result.seconds:.1f} s"])
    for base in comparison.baselines:
        cells = [
            f"{format_number(base.mean(m.key), decimals[m.key])} ± "
            f"{format_number(base.std(m.key), decimals[m.key])}"
            for m in comparison.metrics
        ]
        rows.append(["–", base.label, *cells, "–"])
    return rows


def learned_notes(comparison: Comparison) -> list[str]:
    """One line per candidate that learned something (adaptive_robust's alpha and scale)."""
    notes = []
    for result in comparison.ranked():
        learned = [f.learned for f in result.folds if f.learned]
        if learned:
            keys = learned[0].keys()
            text = ", ".join(f"{k} {np.mean([d[k] for d in learned]):.3g}" for k in keys)
            notes.append(f"{result.label} learned {text} (mean over folds)")
    return notes


def describe_settings(comparison: Comparison) -> str:
    s = comparison.settings
    split = (
        f"one held-out split ({s.holdout:.0%})"
        if s.holdout is not None
        else f"{s.folds}-fold cross-validation"
    )
    hidden = "-".join(str(h) for h in s.hidden)
    batch = f"batch {s.batch_size}"
    model = f"MLP {hidden}"
    if comparison.dataset.task == "embedding":
        batch += f" ({s.samples_per_class} rows per class)"
        model += f" -> {s.embedding_dim}-d unit vectors"
    elif comparison.dataset.task == "segmentation":
        batch += " images"
        model = f"convolutions 3x3 {hidden} -> a logit per class and pixel"
    epochs = f"{s.epochs} epoch{'s' * (s.epochs != 1)}"
    return (
        f"{model}, Adam lr {s.lr:g}, {batch}, {epochs}, {split}, seed {s.seed}; mean ± std "
        f"over folds, ranked by {comparison.rank_by.label}"
    )


def comparison_markdown(comparison: Comparison) -> str:
    data = comparison.dataset
    header = table_header(comparison)
    lines = [
        f"## {data.name} ({data.task})",
        "",
        data.description + ".",
        "",
        describe_settings(comparison) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i != 1 else "---" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in table_rows(comparison)),
        "",
    ]
    lines += [f"- {note}" for note in learned_notes(comparison)]
    lines += [
        "",
        f"![training curves]({data.name}-curves.png)",
        f"![metrics]({data.name}-metrics.png)",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """The mean over folds, epoch by epoch (a fold that diverged stops early)."""
    length = max((len(c) for c in curves), default=0)
    table = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        table[i, : len(curve)] = curve
    with np.errstate(all="ignore"):
        return np.nanmean(table, axis=0) if len(curves) else table


def plot_curves(comparison: Comparison, path: Path) -> None:
    """One panel per candidate: training loss (left axis) and the ranking metric on the
    held-out rows (right axis) per epoch, averaged over folds."""
    plt = _pyplot()
    ranked = comparison.ranked()
    cols = min(3, len(ranked))
    rows = math.ceil(len(ranked) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    metric = comparison.rank_by
    for ax, result in zip(axes.flat, ranked, strict=False):
        loss = _mean_curve([f.train_loss for f in result.folds])
        held = _mean_curve([f.held_out for f in result.folds])
        epochs = np.arange(1, len(loss) + 1)
        ax.plot(epochs, loss, color="tab:blue")
        ax.set_title(result.label, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("training loss", color="tab:blue", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(held):
            twin = ax.twinx()
            twin.plot(np.arange(1, len(held) + 1), held, color="tab:orange")
            twin.set_ylabel(f"held-out {metric.label}", color="tab:orange", fontsize=8)
            twin.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ranked) :]:
        ax.set_visible(False)
    fig.suptitle(f"{comparison.dataset.name}: training curves (mean over folds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_metric_bars(comparison: Comparison, path: Path) -> None:
    """One panel per metric: a bar per candidate (ranked order), fold std as error bars."""
    plt = _pyplot()
    ranked: list[CandidateResult] = comparison.ranked()
    metrics = comparison.metrics
    height = 0.9 + 0.32 * len(ranked)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), height), squeeze=False)
    labels = [r.label for r in ranked][::-1]
    for ax, m in zip(axes.flat, metrics, strict=True):
        means = np.array([r.mean(m.key) for r in ranked][::-1])
        stds = np.array([r.std(m.key) for r in ranked][::-1])
        finite = np.isfinite(means)
        colours = ["tab:green" if i == len(ranked) - 1 else "tab:gray" for i in range(len(means))]
        ax.barh(
            np.arange(len(means))[finite],
            means[finite],
            xerr=stds[finite],
            color=[c for c, f in zip(colours, finite, strict=True) if f],
            capsize=2,
        )
        ax.set_yticks(
            np.arange(len(labels)), labels if ax is axes.flat[0] else [""] * len(labels), fontsize=7
        )
        for base, colour, style in zip(
            comparison.baselines, ("tab:red", "tab:purple"), ("--", ":"), strict=False
        ):
            ax.axvline(
                base.mean(m.key),
                color=colour,
                linestyle=style,
                linewidth=1,
                label=base.label.strip("()"),
            )
        if comparison.baselines:
            ax.legend(fontsize=6, loc="lower right")
        arrow = "higher is better" if m.higher_is_better else "lower is better"
        ax.set_title(f"{m.label} ({arrow})", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        if finite.any() and m.higher_is_better:
            low = float(np.min(means[finite] - stds[finite]))
            for base in comparison.baselines:
                low = min(low, base.mean(m.key))
            ax.set_xlim(max(0.0, low - 0.05 * abs(low)), None)
    fig.suptitle(
        f"{comparison.dataset.name}: held-out metrics (mean ± std over folds)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------- writing


def _environment() -> dict[str, Any]:
    import platform

    import torch

    from losskit import __version__

    return {
        "losskit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_comparisons(
    out: Path, comparisons: Sequence[Comparison], *, force: bool = False
) -> list[str]:
    """Write results.json, results.md and two plots per data set into ``out`` (staged, see
    :func:`staged_output`); returns the file names."""
    with staged_output(out, force=force) as staging:
        files = ["results.json", "results.md"]
        for comparison in comparisons:
            name = comparison.dataset.name
            plot_curves(comparison, staging / f"{name}-curves.png")
            plot_metric_bars(comparison, staging / f"{name}-metrics.png")
            files += [f"{name}-curves.png", f"{name}-metrics.png"]
        document = {
            **_environment(),
            FILES_KEY: files,
            "experiments": [c.as_dict() for c in comparisons],
        }
        (staging / "results.json").write_text(json.dumps(document, indent=2) + "\n")
        markdown = ["# losskit compare", ""]
        markdown += [comparison_markdown(c) for c in comparisons]
        (staging / "results.md").write_text("\n".join(markdown))
    return files


# ------------------------------------------------------------------------------------ tune


def _trial_points(result: StudyResult) -> tuple[np.ndarray, np.ndarray]:
    done = [t for t in result.trials if t["value"] is not None]
    return (
        np.array([t["number"] for t in done], dtype=float),
        np.array([t["value"] for t in done], dtype=float),
    )


def plot_history(result: StudyResult, path: Path) -> None:
    """The objective of every trial and the best so far."""
    plt = _pyplot()
    numbers, values = _trial_points(result)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.scatter(numbers, values, s=14, color="tab:gray", label="trial")
    if len(values):
        best = (np.maximum if result.metric.higher_is_better else np.minimum).accumulate(values)
        ax.step(numbers, best, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{result.metric.label} (cross-validated)")
    ax.set_title(f"{result.study_name}: optimisation history", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_params(result: StudyResult, path: Path) -> None:
    """The objective against each searched hyper-parameter."""
    plt = _pyplot()
    searched = [p for p in result.space if p.kind != "fixed"]
    fig, axes = plt.subplots(1, len(searched), figsize=(4.0 * len(searched), 3.2), squeeze=False)
    done = [t for t in result.trials if t["value"] is not None]
    best = result.best["params"] if result.best else {}
    for ax, param in zip(axes.flat, searched, strict=True):
        points = [(t["params"][param.name], t["value"]) for t in done if param.name in t["params"]]
        if param.kind == "choice":
            labels = [str(c) for c in param.choices]
            xs = [labels.index(str(x)) for x, _ in points]
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        else:
            xs = [float(x) for x, _ in points]
            if param.log:
                ax.set_xscale("log")
        ax.scatter(xs, [v for _, v in points], s=14, color="tab:blue")
        if param.name in best and param.kind != "choice":
            ax.axvline(float(best[param.name]), color="tab:green", linestyle="--", label="best")
            ax.legend(fontsize=7)
        ax.set_xlabel(param.name)
        ax.set_ylabel(result.metric.label)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{result.study_name}: objective per hyper-parameter", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distances(result: StudyResult, path: Path) -> None:
    """Histograms of same-class and different-class pair distances on held-out classes at the
    best hyper-parameters: the margin should sit in the gap between them."""
    plt = _pyplot()
    positive, negative = result.distances["positive"], result.distances["negative"]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    top = float(max(positive.max(initial=0.0), negative.max(initial=0.0))) or 1.0
    bins = np.linspace(0.0, top, 60)
    ax.hist(
        negative,
        bins=bins,
        density=True,
        alpha=0.55,
        color="tab:red",
        label=f"different class ({len(negative):,} pairs)",
    )
    ax.hist(
        positive,
        bins=bins,
        density=True,
        alpha=0.55,
        color="tab:blue",
        label=f"same class ({len(positive):,} pairs)",
    )
    params = result.best["params"] if result.best else {}
    margin = params.get("margin")
    gap = float(np.median(negative) - np.median(positive)) if len(positive) and len(negative) else 0
    title = f"held-out pair distances at the best parameters ({result.metric.label})"
    ax.set_title(title, fontsize=9)
    text = f"median gap {gap:.3f}"
    if isinstance(margin, int | float):
        text = f"best margin {margin:.3f}; " + text
    ax.text(0.98, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.set_xlabel("distance")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def study_markdown(result: StudyResult, top: int = 10) -> str:
    metric = result.metric
    lines = [
        f"# losskit tune: {result.study_name}",
        "",
        f"Storage `{result.storage}`; objective: {metric.label} "
        f"({metric.direction}), cross-validated; {len(result.trials)} trials "
        f"({result.new_trials} in this run).",
        "",
        "Search space: " + "; ".join(p.describe() for p in result.space) + ".",
        "",
    ]
    if result.best:
        params = ", ".join(f"{k}={_short(v)}" for k, v in result.best["params"].items())
        lines += [
            f"**Best** (trial {result.best['number']}): {params} -> {metric.label} "
            f"{result.best['value']:.4f} ± {result.best.get('std', 0.0):.4f}",
            "",
        ]
    ranked = sorted(
        (t for t in result.trials if t["value"] is not None),
        key=lambda t: -t["value"] if metric.higher_is_better else t["value"],
    )[:top]
    names = [p.name for p in result.space if p.kind != "fixed"]
    lines += [
        "| trial | " + " | ".join(names) + f" | {metric.label} |",
        "|---:|" + "---:|" * len(names) + "---:|",
    ]
    for t in ranked:
        cells = [_short(t["params"].get(n, "")) for n in names]
        lines.append(f"| {t['number']} | " + " | ".join(cells) + f" | {t['value']:.4f} |")
    lines += ["", "![history](history.png)", "![parameters](params.png)"]
    if result.distances:
        lines.append("![distances](distances.png)")
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_study(out: Path, result: StudyResult, *, force: bool = False) -> list[str]:
    """results.json, results.md, history.png, params.png and, for embedding losses,
    distances.png (staged, see :func:`staged_output`)."""
    with staged_output(out, force=force) as staging:
        files = ["results.json", "results.md", "history.png", "params.png"]
        plot_history(result, staging / "history.png")
        plot_params(result, staging / "params.png")
        if result.distances:
            plot_distances(result, staging / "distances.png")
            files.append("distances.png")
        document = {**_environment(), FILES_KEY: files, **result.as_dict()}
        if result.distances:
            document["distances"] = {
                k: {
                    "pairs": len(v),
                    "mean": float(v.mean()) if len(v) else None,
                    "quantiles": {
                        q: float(np.quantile(v, float(q))) for q in ("0.05", "0.5", "0.95")
                    }
                    if len(v)
                    else None,
                }
                for k, v in result.distances.items()
            }
        (staging / "results.json").write_text(json.dumps(document, indent=2) + "\n")
        (staging / "results.md").write_text(study_markdown(result))
    return files
