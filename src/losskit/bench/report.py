"""Rendering a benchmark report: number formats, the Markdown tables and the list of cases where
losskit is slower than a reference.

Everything here reads the JSON form (``Report.to_dict()``), so a saved results file renders the
same as a fresh run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from losskit.bench.settings import command_line, condition_label


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}"
    raise AssertionError("unreachable")


def format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}"


def format_size(n: int) -> str:
    """32, 1,024, 1,048,576: exact, with thousands separators."""
    return f"{n:,}"


#: a ratio over 1.00 is printed bold when losskit was slower in so many of the pairs of blocks
#: that chance would do it less often than this if both took the same time (each pair then
#: equally likely to go either way): a one-sided sign test. 5 of 5 pairs, 7 of 8, 8 of 9 pass;
#: 3 of 3 (p = 0.125) does not
SLOWER_P = 0.05


def sign_test_p(slower: int, pairs: int) -> float:
    """The chance that at least ``slower`` of ``pairs`` fair coin tosses come up heads.

    >>> sign_test_p(5, 5), sign_test_p(8, 9), sign_test_p(3, 3)
    (0.03125, 0.01953125, 0.125)
    """
    return sum(math.comb(pairs, k) for k in range(slower, pairs + 1)) / 2**pairs


def clearly_slower(entry: dict[str, Any]) -> bool:
    """Whether a reference entry's pairs of blocks show losskit slower beyond the run's noise
    (``SLOWER_P``). Reports saved before the pairs were counted: slower in every pair."""
    pairs, slower = entry.get("time_ratio_pairs"), entry.get("time_ratio_slower_pairs")
    if pairs is None or slower is None:
        low = entry.get("time_ratio_min")
        return low is not None and low > 1.0
    return pairs > 0 and sign_test_p(slower, pairs) < SLOWER_P


def _data(report: Any) -> dict[str, Any]:
    return report.to_dict() if hasattr(report, "to_dict") else report


def condition_key(case: dict[str, Any]) -> tuple[int, int]:
    return int(case.get("threads", 1)), int(case.get("load", 0))


def _conditions(data: dict[str, Any]) -> list[tuple[int, int]]:
    """The conditions in the order they were run (idle machine first)."""
    out: dict[tuple[int, int], None] = {}
    for case in data["results"]:
        out.setdefault(condition_key(case), None)
    return list(out)


def slower_than_reference(report: Any, above: float = 1.0) -> list[dict[str, Any]]:
    """Every (loss, reference, condition, size) whose median time ratio is over ``above``:
    the list the losses' owners work from. Each entry has the ratio and its block range.
    Baselines (references that compute less than the loss) are not goals and are left out."""
    data = _data(report)
    out = []
    for case in data["results"]:
        for ref in case["references"]:
            if ref.get("baseline"):
                continue
            ratio = ref.get("time_ratio")
            if ratio is not None and ratio > above:
                out.append(
                    {
                        "loss": case["loss"],
                        "reference": ref["name"],
                        "threads": case.get("threads", 1),
                        "load": case.get("load", 0),
                        "size": case["size"],
                        "time_ratio": ratio,
                        "time_ratio_min": ref.get("time_ratio_min"),
                        "time_ratio_max": ref.get("time_ratio_max"),
                        "clearly_slower": clearly_slower(ref),
                        "in_episode": bool(case.get("in_episode")),
                    }
                )
    return out


def _machine_line(machine: dict[str, Any], settings: dict[str, Any]) -> str:
    cores = machine.get("logical_cores")
    physical = machine.get("physical_cores")
    core_text = f"{cores} logical cores" + (f" ({physical} physical)" if physical else "")
    device = machine.get("device", "cpu")
    on = machine.get("cpu_model") or "unknown CPU"
    if device != "cpu":
        on = f"{machine.get('device_name')} ({device}); host CPU {on}"
    default = settings.get("default_threads") or machine.get("default_threads")
    return (
        f"{on}, {core_text}, {machine.get('os')}; Python {machine.get('python')}, "
        f"torch {machine.get('torch')}, losskit {machine.get('losskit')}; "
        f"{settings.get('dtype')}"
        + (f"; torch's default thread count here: {default}" if default else "")
    )


def _time_cell(impl: dict[str, Any]) -> str:
    text = format_time(impl.get("time_s"))
    low, high = impl.get("time_min_s"), impl.get("time_max_s")
    if low is not None and high is not None and impl.get("time_s") is not None:
        text += f" ({format_time(low)}–{format_time(high)})"
    return text


#: marks a ratio timed while a parallel region took over the settings' ``episode_region_s``
#: (the header says what that means)
EPISODE_MARK = "‡"


def _ratio_cell(ref: dict[str, Any], episode: bool = False) -> str:
    text = f"**{format_ratio(ref.get('time_ratio'))}**"
    low, high = ref.get("time_ratio_min"), ref.get("time_ratio_max")
    if low is not None and high is not None:
        text += f" ({low:.2f}–{high:.2f})"
    return text + (f" {EPISODE_MARK}" if episode else "")


def _header(data: dict[str, Any], title: str) -> list[str]:
    machine, settings = data["machine"], data["settings"]
    run = data.get("run") or {}
    load = machine.get("load_average")
    load_end = machine.get("load_average_end")
    command = command_line(settings)
    took = f" in {run['wall_s']:g} s" if run.get("wall_s") is not None else ""
    if run.get("cpu_s") is not None:
        took += f" ({run['cpu_s']:g} CPU-seconds, background load excluded)"
    default = settings.get("default_threads")
    lines = [
        f"# {title}",
        "",
        f"Generated {data['created']} by `{command}`{took}.",
        "",
        f"- **Machine**: {_machine_line(machine, settings)}."
        + (f" Load average at the start: {', '.join(map(str, load))}" if load else "")
        + (f"; at the end: {', '.join(map(str, load_end))}." if load_end else "."),
    ]
    conditions = settings.get("conditions") or [
        {"threads": settings.get("threads", 1), "load": 0, "clock": settings.get("clock")}
    ]
    lines.append("- **Conditions**, one table each:")
    for c in conditions:
        label = c.get("label") or condition_label(c["threads"], c["load"], default)
        lines.append(f"  - {label} — clock: {c.get('clock_meaning', c.get('clock'))}")
    blocks = f"{settings.get('min_blocks', 3)} blocks"
    if any(c.get("load") for c in conditions) and "min_blocks_under_load" in settings:
        blocks += f" ({settings['min_blocks_under_load']} under a background load)"
    lines.append(
        f"- **Time**: one forward+backward; the median over at least {blocks} of about "
        f"{settings.get('block_time_s', 0) * 1000:g} ms (one run when a run is longer), "
        "min–max in brackets; losskit's and the reference's blocks interleaved, about "
        f"{settings.get('min_run_time_s')} s each. The ratio is the median over pairs of blocks "
        "run back to back (each pair under the same load), its range in brackets."
    )
    if settings.get("memory"):
        floor = settings.get("memory_noise_floor_bytes", 0)
        lines.append(
            f"- **Memory**: {settings['memory']}; once per thread count, without background "
            "load (the load does not change it)."
            + (
                f" Below {format_bytes(floor)} both figures are noise and no ratio is given."
                if floor
                else ""
            )
        )
    else:
        lines.append("- **Memory**: not measured in this run.")
    for entry in data.get("background_load") or []:
        n, wall, cpu = entry.get("processes"), entry.get("wall_s"), entry.get("cpu_s")
        busy = (
            f"; they used {cpu:.0f} CPU-seconds in {wall:.0f} s, {cpu / (wall * n):.0%} of "
            f"{n} core(s)"
            if cpu is not None and wall and n
            else ""
        )
        lines.append(
            f"- **Background load**: {n} pure-Python busy processes while those cases were "
            f"timed{busy}."
        )
    lines += _episode_lines(data)
    limits = []
    if settings.get("max_input_bytes"):
        limits.append(f"inputs over {format_bytes(settings['max_input_bytes'])}")
    if settings.get("max_run_time_s"):
        limits.append(f"a run over {settings['max_run_time_s']:g} s")
    if settings.get("max_memory_bytes"):
        limits.append(f"a run needing over {format_bytes(settings['max_memory_bytes'])}")
    if limits:
        lines.append(
            "- **Limits**: sizes with "
            + ", ".join(limits)
            + " (any implementation) are left out; the list is at the end."
        )
    if run.get("peak_rss_bytes") is not None:
        lines.append(
            f"- **This run**: largest resident set {format_bytes(run['peak_rss_bytes'])} "
            f"(harness), {format_bytes(run.get('children_peak_rss_bytes'))} (largest "
            "measuring subprocess, shared torch pages included)."
        )
    lines.append(
        "- **Ratio**: losskit / reference, from the same run and condition: below 1.00 is "
        "faster or leaner."
    )
    return lines


def _episode_lines(data: dict[str, Any]) -> list[str]:
    """What the parallel-region probe saw, per condition with more than one thread."""
    probed: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for case in data["results"]:
        if case.get("region_s"):
            probed.setdefault(condition_key(case), []).append(case)
    if not probed:
        return []
    default = data["settings"].get("default_threads")
    threshold = format_time(data["settings"].get("episode_region_s", 1e-3))
    parts = []
    for key, cases in probed.items():
        times = [t for c in cases for t in c["region_s"]]
        marked = sum(1 for c in cases if c.get("in_episode"))
        parts.append(
            f"{condition_label(*key, default)}: median {format_time(statistics.median(times))}, "
            f"up to {format_time(max(times))}; {marked} of {len(cases)} cases marked"
        )
    return [
        "- **Parallel regions**: before and after each case with more than one thread, one "
        "in-place multiply of 1M floats (one OpenMP region) was timed. "
        + "; ".join(parts)
        + f". {EPISODE_MARK} marks a case where it took over {threshold}: an episode in which the "
        "cores are shared and every parallel kernel waits a scheduler slice for its second "
        "thread, so that a ratio is about the ratio of the two implementations' counts of "
        "parallel kernels (`python benchmarks/parallel_kernels.py`; docs/benchmarks)."
    ]


_TABLE_HEAD = [
    "| loss | size | inputs | reference | time losskit | time ref. | time ratio "
    "| peak mem. losskit | peak mem. ref. | mem. ratio |",
    "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
]


def _table(cases: list[dict[str, Any]]) -> list[str]:
    lines = list(_TABLE_HEAD)
    for case in cases:
        ours = case["ours"]
        for ref in case["references"] or [{}]:
            lines.append(
                "| "
                + " | ".join(
                    [
                        case["loss"],
                        format_size(case["size"]),
                        f"`{case['inputs']}`",
                        ref.get("name", "(none)") + (" (baseline)" if ref.get("baseline") else ""),
                        _time_cell(ours),
                        _time_cell(ref),
                        _ratio_cell(ref, bool(case.get("in_episode"))),
                        format_bytes(ours.get("peak_bytes")),
                        format_bytes(ref.get("peak_bytes")),
                        format_ratio(ref.get("memory_ratio")),
                    ]
                )
                + " |"
            )
    return lines


def render_slower(report: Any, default: int | None = None) -> list[str]:
    """The cases slower than their reference, one row per loss, reference and condition."""
    data = _data(report)
    if default is None:
        default = data["settings"].get("default_threads")
    rows: dict[tuple[str, str, int, int], list[str]] = {}
    entries = slower_than_reference(data)
    # one block per loss (in the run's order), its conditions in the run's order
    losses = list(dict.fromkeys(c["loss"] for c in data["results"]))
    order = {key: i for i, key in enumerate(_conditions(data))}
    entries.sort(
        key=lambda e: (losses.index(e["loss"]), order[(e["threads"], e["load"])], e["size"])
    )
    for entry in entries:
        key = (entry["loss"], entry["reference"], entry["threads"], entry["load"])
        spread, ratio = "", f"{entry['time_ratio']:.2f}"
        low, high = entry["time_ratio_min"], entry["time_ratio_max"]
        if low is not None and high is not None:
            spread = f" ({low:.2f}–{high:.2f})"
        if entry["clearly_slower"]:
            ratio = f"**{ratio}**"
        mark = f" {EPISODE_MARK}" if entry["in_episode"] else ""
        rows.setdefault(key, []).append(f"{format_size(entry['size'])}: {ratio}{spread}{mark}")
    if not rows:
        return ["None: every time ratio is at most 1.00."]
    lines = [
        "Every median time ratio over 1.00. **Bold**: slower in so many of the pairs of blocks "
        "run back to back that chance would do it less than once in "
        f"{round(1 / SLOWER_P)} (a sign test: 5 of 5 pairs, 7 of 8, 8 of 9, ...); plain: within "
        "the noise of this run; "
        f"{EPISODE_MARK}: timed in an episode of slow parallel regions (see above).",
        "",
        "| loss | reference | condition | sizes: time ratio (range over paired blocks) |",
        "|---|---|---|---|",
    ]
    for (loss, ref, threads, load), cells in rows.items():
        label = condition_label(threads, load, default)
        lines.append(f"| {loss} | {ref} | {label} | {'; '.join(cells)} |")
    return lines


def render_markdown(
    report: Any, *, title: str = "losskit benchmarks", plots: Sequence[str] = ()
) -> str:
    """The report as Markdown: how it was measured, the cases slower than their reference,
    then one table per condition (one row per loss, size and reference), the plots (paths
    relative to the Markdown file) and what was left out or could not be measured. ``report``
    is a :class:`~losskit.bench.Report` or its ``to_dict()``."""
    data = _data(report)
    default = data["settings"].get("default_threads")
    lines = _header(data, title)
    lines += ["", "## Where losskit is slower than the reference", "", *render_slower(data)]
    for key in _conditions(data):
        cases = [c for c in data["results"] if condition_key(c) == key]
        clock = cases[0].get("clock", data["settings"].get("clock"))
        lines += ["", f"## {condition_label(*key, default)} ({clock} clock)", "", *_table(cases)]
    if plots:
        lines += [
            "",
            "## Plots",
            "",
            "Time and memory ratio against size, one line per reference and condition "
            "(log scales; the dashed line is 1.0).",
            "",
        ]
        lines += [f"![{path}]({path})" for path in plots]
    skipped = data.get("skipped") or []
    if skipped:
        lines += ["", "## Left out by the limits", ""]
        lines += [f"- {s['loss']} at {format_size(s['size'])}: {s['reason']}" for s in skipped]
    notes: dict[str, None] = {}
    for case in data["results"]:
        for impl in (case["ours"], *case["references"]):
            if impl.get("error"):
                notes.setdefault(
                    f"- {case['loss']} at {format_size(case['size'])}, {impl['name']}: "
                    f"{impl['error']}",
                    None,
                )
    if notes:
        lines += ["", "## Not measured", "", *notes]
    return "\n".join(lines) + "\n"
