"""Size sweeps as pictures: the time and memory ratio against size, one figure per family.

A ratio at one size can hide how the cost grows; a line over the sizes shows where losskit
crosses its reference. Each figure is one family (``losses/<family>/``): a row per loss, the
time ratio on the left and the memory ratio on the right, one line per reference and condition
(thread count, background load), both axes logarithmic, a dashed line at 1.0. Reads the JSON form
of a report, like the Markdown renderer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from losskit.bench.settings import condition_label

_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")
#: y ticks of the (logarithmic) ratio axes: plain numbers, not powers of ten
_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
#: the same for a wide range, where the fine ones would overlap
_COARSE_TICKS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def _ratio_axis(ax: Any, values: list[float]) -> None:
    """Log scale from at most 0.5 to at least 2 (so 1.0 sits in a readable range), plain ticks."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    low = min([0.5, *(v / 1.3 for v in values)])
    high = max([2.0, *(v * 1.3 for v in values)])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = _COARSE_TICKS if high / low > 20 else _TICKS
    ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if low <= t <= high]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(ScalarFormatter())


def _series(
    cases: Iterable[dict[str, Any]],
) -> dict[tuple[str, int, int], dict[str, list[tuple[int, float]]]]:
    """(reference, threads, load) -> {"time": [(size, ratio)], "memory": [...]}"""
    out: dict[tuple[str, int, int], dict[str, list[tuple[int, float]]]] = {}
    for case in cases:
        for ref in case["references"]:
            key = (ref["name"], int(case.get("threads", 1)), int(case.get("load", 0)))
            entry = out.setdefault(key, {"time": [], "memory": []})
            if ref.get("time_ratio") is not None:
                entry["time"].append((case["size"], ref["time_ratio"]))
            # memory does not depend on the load: drawn for the idle machine only
            if ref.get("memory_ratio") is not None and key[2] == 0:
                entry["memory"].append((case["size"], ref["memory_ratio"]))
    for entry in out.values():
        for points in entry.values():
            points.sort()
    return out


def write_plots(report: Any, directory: str | os.PathLike[str]) -> list[Path]:
    """One PNG per family, ``<directory>/<family>.png``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    data = report.to_dict() if hasattr(report, "to_dict") else report
    default = data["settings"].get("default_threads")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    families: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for case in data["results"]:
        family = case.get("family") or "other"
        families.setdefault(family, {}).setdefault(case["loss"], []).append(case)
    written = []
    for family, losses in families.items():
        # constrained layout leaves room for the legends beside the rows
        fig, axes = plt.subplots(
            len(losses), 2, figsize=(13, 2.6 * len(losses)), squeeze=False, layout="constrained"
        )
        for row, (loss, cases) in zip(axes, losses.items(), strict=True):
            series = _series(cases)
            refs = list(dict.fromkeys(k[0] for k in series))
            conditions = list(dict.fromkeys(k[1:] for k in series))
            values: dict[str, list[float]] = {"time": [], "memory": []}
            for (ref, threads, load), points in series.items():
                # colour and marker: the reference; line style: the condition
                style = _STYLES[conditions.index((threads, load)) % len(_STYLES)]
                marker = _MARKERS[refs.index(ref) % len(_MARKERS)]
                colour = f"C{refs.index(ref) % 10}"
                short = ref if len(ref) <= 40 else ref[:39] + "…"
                label = f"{short} · {condition_label(threads, load, default)}"
                for ax, kind in zip(row, ("time", "memory"), strict=True):
                    if points[kind]:
                        xs, ys = zip(*points[kind], strict=True)
                        values[kind] += ys
                        ax.plot(xs, ys, linestyle=style, marker=marker, color=colour, label=label)
            for ax, kind in zip(row, ("time", "memory"), strict=True):
                if not ax.lines:
                    ax.text(0.5, 0.5, "no ratio", transform=ax.transAxes, ha="center")
                ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
                ax.set_xscale("log", base=2)
                _ratio_axis(ax, values[kind])
                ax.set_xlabel("size")
                ax.set_ylabel(f"{kind} ratio (losskit / ref.)")
                ax.set_title(f"{loss}: {kind}", fontsize=10)
            handles, labels = row[0].get_legend_handles_labels()
            if handles:
                # beside the row, not over the lines
                row[1].legend(
                    handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
                )
        fig.suptitle(f"losskit {family}: ratio to the reference against size")
        path = directory / f"{family}.png"
        fig.savefig(path, dpi=72, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
