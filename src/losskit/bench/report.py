"""Rendering a benchmark report: number formats and the Markdown table.

Everything here reads the JSON form (``Report.to_dict()``), so a saved results file renders the
same as a fresh run.
"""

from __future__ import annotations

from typing import Any


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


def _machine_line(machine: dict[str, Any], settings: dict[str, Any]) -> str:
    cores = machine.get("logical_cores")
    physical = machine.get("physical_cores")
    core_text = f"{cores} logical cores" + (f" ({physical} physical)" if physical else "")
    device = machine.get("device", "cpu")
    on = machine.get("cpu_model") or "unknown CPU"
    if device != "cpu":
        on = f"{machine.get('device_name')} ({device}); host CPU {on}"
    return (
        f"{on}, {core_text}, {machine.get('os')}; Python {machine.get('python')}, "
        f"torch {machine.get('torch')}, losskit {machine.get('losskit')}; "
        f"{settings.get('threads')} torch thread(s), {settings.get('dtype')}"
    )


def render_markdown(report: Any, *, title: str = "losskit benchmarks") -> str:
    """The report as Markdown: how it was measured, then one row per loss, size and reference.
    ``report`` is a :class:`~losskit.bench.Report` or its ``to_dict()``."""
    data = report.to_dict() if hasattr(report, "to_dict") else report
    machine, settings = data["machine"], data["settings"]
    load = machine.get("load_average")
    lines = [
        f"# {title}",
        "",
        f"Generated {data['created']} by `losskit bench"
        + (" --quick" if settings.get("quick") else "")
        + "`.",
        "",
        f"- **Machine**: {_machine_line(machine, settings)}."
        + (f" Load average at the start: {', '.join(map(str, load))}." if load else ""),
        "- **Time**: median of one forward+backward, measured with `torch.utils.benchmark` in "
        f"blocks of about {settings.get('block_time_s', 0) * 1000:g} ms, losskit's and the "
        f"reference's interleaved, about {settings.get('min_run_time_s')} s each; clock: "
        f"{settings.get('clock_meaning', 'elapsed time')}"
        + (
            f"; a run over {settings['timed_once_over_s']:g} s is timed once (--quick)."
            if settings.get("timed_once_over_s")
            else "."
        ),
    ]
    if settings.get("memory"):
        floor = settings.get("memory_noise_floor_bytes", 0)
        lines.append(
            f"- **Memory**: {settings['memory']}."
            + (
                f" Below {format_bytes(floor)} both figures are noise and no ratio is given."
                if floor
                else ""
            )
        )
    else:
        lines.append("- **Memory**: not measured in this run.")
    lines += [
        "- **Ratio**: losskit / reference, from the same run: below 1.00 is faster or leaner.",
        "",
        "| loss | size | inputs | reference | time losskit | time ref. | time ratio "
        "| peak mem. losskit | peak mem. ref. | mem. ratio |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for case in data["results"]:
        ours = case["ours"]
        refs = case["references"] or [None]
        for ref in refs:
            ref = ref or {}
            lines.append(
                "| "
                + " | ".join(
                    [
                        case["loss"],
                        format_size(case["size"]),
                        f"`{case['inputs']}`",
                        ref.get("name", "(none)"),
                        format_time(ours.get("time_s")),
                        format_time(ref.get("time_s")),
                        f"**{format_ratio(ref.get('time_ratio'))}**",
                        format_bytes(ours.get("peak_bytes")),
                        format_bytes(ref.get("peak_bytes")),
                        format_ratio(ref.get("memory_ratio")),
                    ]
                )
                + " |"
            )
        for impl in (ours, *case["references"]):
            if impl.get("error"):
                notes.append(
                    f"- {case['loss']} at {format_size(case['size'])}, {impl['name']}: "
                    f"{impl['error']}"
                )
    if notes:
        lines += ["", "Not measured:", "", *notes]
    return "\n".join(lines) + "\n"
