"""The generated parts of losskit's documentation site, and the include directive of its pages.

Nothing here is written by hand into ``docs/``: the mkdocs hooks (``hooks.py`` beside this file)
call these functions on every build, so the pages cannot drift from the code.

* :func:`catalog_page`: every entry of ``losskit.catalog`` (formula, task, options with their
  bounds and tuning ranges, references, papers, double backward, torch.compile, autocast, the
  plot of loss and gradient);
* :func:`family_entries`: the same entries for one family, spliced into its page where the page
  says ``<!-- catalog: FAMILY -->``;
* :func:`cli_page`: every command of the typer app with its ``--help`` texts;
* :func:`make_plots`: ``losskit show NAME --plot`` for every entry (cached by a hash of the
  source, so ``mkdocs serve`` redraws only after a change);
* :func:`expand_includes`: ``<!-- include: PATH [shift=N] -->`` on a line of its own is
  replaced by the file (a path from the repository root), its headings moved ``N`` levels down.
  The docs code test (``tests/test_docs_code.py``) expands includes with the same function.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: where the plots are drawn (gitignored: ``build/``), one folder per source hash
PLOT_CACHE = ROOT / "build" / "docs-cache"

INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+?)(?: shift=(?P<shift>\d))? -->[ \t]*$", re.M)
CATALOG = re.compile(r"^<!-- catalog: (?P<family>\w+) -->[ \t]*$", re.M)
_FENCE = re.compile(r"^(```|~~~)")

#: families written by hand (prose moved from the README) and the title of each page
FAMILY_TITLES: dict[str, str] = {
    "regression": "Regression",
    "classification": "Classification",
    "divergence": "Divergences and distillation",
    "margin": "Margin (hinge) losses",
    "embedding": "Embedding pairs",
    "ranking": "Ranking",
    "sequence": "Sequences (CTC)",
    "imbalance": "Class imbalance",
    "robust": "Robust and adaptive losses",
    "triplet": "Metric learning: triplets",
    "contrastive": "Contrastive learning",
    "linear_ce": "Linear cross-entropy",
    "angular_margin": "Angular margin (face recognition)",
    "segmentation": "Segmentation",
}


# ------------------------------------------------------------------------------ includes


def shift_headings(markdown: str, shift: int) -> str:
    """``markdown`` with every ATX heading outside code fences moved ``shift`` levels down."""
    if not shift:
        return markdown
    out, fence = [], ""
    for line in markdown.splitlines():
        match = _FENCE.match(line.lstrip())
        if match and (not fence or match.group(1) == fence):
            fence = "" if fence else match.group(1)
        elif not fence and re.match(r"#{1,6} ", line):
            line = "#" * shift + line
        out.append(line)
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def expand_includes(markdown: str, *, skip: frozenset[str] = frozenset()) -> str:
    """Replace each ``<!-- include: PATH [shift=N] -->`` line by the file at ``PATH`` (from the
    repository root), recursively; paths in ``skip`` are replaced by nothing (the docs code test
    checks those files as documents of their own)."""

    def replace(match: re.Match[str]) -> str:
        path = match.group("path")
        if path in skip:
            return ""
        file = (ROOT / path).resolve()
        if not file.is_file() or ROOT not in file.parents:
            raise FileNotFoundError(f"docs include: {path} is not a file of the repository")
        text = expand_includes(file.read_text(encoding="utf-8"), skip=skip)
        return shift_headings(text, int(match.group("shift") or 0)).rstrip("\n")

    return INCLUDE.sub(replace, markdown)


# ------------------------------------------------------------------------------- catalog


def families() -> dict[str, list[Any]]:
    """Family -> its catalog entries, in catalog order."""
    from losskit.losses import FAMILIES

    return {
        family: list(importlib.import_module(f"losskit.losses.{family}.spec").SPECS)
        for family in FAMILIES
    }


def _keras_twins() -> dict[str, str]:
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    return {name: twin.keras for name, twin in gather(FAMILIES).items()}


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = repr(value)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _range(p: Any) -> str:
    if p.low is None:
        return "–"
    return f"[{p.low:g}, {p.high:g}]{' (log)' if p.log else ''}"


@dataclass(frozen=True)
class Plot:
    """``losskit show NAME --plot``'s result: the image (``None`` if the loss has none) and what
    the command said (the curves drawn, or why there is no picture)."""

    name: str
    path: Path | None
    message: str


_TARGET_KIND = {
    "real": "real values",
    "class_index": "class indices",
    "binary": "binary (0/1) labels",
}
_INPUT_SPACE = {
    "raw": "raw model outputs (values, logits, scores or embeddings)",
    "probabilities": "probabilities",
    "log_probabilities": "log-probabilities",
}


def entry_markdown(
    spec: Any,
    family: str,
    *,
    level: int,
    plots: Mapping[str, Plot],
    root: str,
    keras: Mapping[str, str],
) -> str:
    """One catalog entry as Markdown: a heading at ``level`` (anchor: the entry's name), then
    its summary, formula, facts, options, papers, worked examples, notes and plot. ``root`` is
    the relative path from the page to the site's root (``""`` or ``"../"``)."""
    h = "#" * level
    fn, mod = spec.functional.__name__, spec.module.__name__
    lines = [f"{h} `{spec.name}` {{ #{spec.name} }}", "", _cell(spec.summary), ""]
    lines += ["$$", spec.formula, "$$", ""]
    keras_twin = ""
    if spec.name in keras:
        cls = keras[spec.name]
        # optional: a twin being written may not be exported by losskit.keras yet
        keras_twin = (
            f' · Keras twin <autoref identifier="losskit.keras.{cls}" optional>'
            f"<code>losskit.keras.{cls}</code></autoref>"
        )
    family_link = f"[{FAMILY_TITLES.get(family, family)}]({root}families/{family}.md)"
    lines += [
        f"- **Call:** [`losskit.functional.{fn}({', '.join(spec.inputs)}, ...)`]"
        f"[losskit.functional.{fn}] · module [`losskit.{mod}`][losskit.nn.{mod}]{keras_twin}",
        f"- **Task:** `{spec.task}` ({family_link}); first input: "
        f"{_INPUT_SPACE.get(spec.input_space, spec.input_space)}; target: "
        f"{_TARGET_KIND.get(spec.target_kind, spec.target_kind)}",
        f"- **Aliases:** {', '.join(f'`{a}`' for a in spec.aliases) or 'none'}",
        f"- **Reference** (the tests compare against it): "
        f"{f'`{spec.reference_name}`' if spec.reference_name else 'none'}",
        f"- **Double backward:** `{spec.double_backward}` · **torch.compile:** "
        f"{_cell(spec.compile_summary())} · **torch.autocast:** {_cell(spec.autocast_summary())}",
        "",
    ]
    if spec.params:
        lines += [
            "| option | default | meaning | valid values | tuning range |",
            "|---|---|---|---|---|",
        ]
        for p in spec.params:
            lines.append(
                f"| `{p.name}` | {_code(p.default)} | {_cell(p.doc)} | "
                f"{_cell(p.describe()) or '–'} | {_range(p)} |"
            )
        lines.append("")
    if spec.papers:
        lines += ["**Papers**", ""] + [f"- {_cell(p)}" for p in spec.papers] + [""]
    if spec.examples:
        lines += ["**Worked examples** (tested: the catalog matrix checks each number)", ""]
        lines += [f"- {_cell(ex.title)}: **{ex.expected:.{ex.decimals}f}**" for ex in spec.examples]
        lines.append("")
    if spec.notes:
        lines += [f"**Notes.** {_cell(spec.notes)}", ""]
    plot = plots.get(spec.name)
    if plot is not None and plot.path is not None:
        lines += [
            f"![{spec.name}: the loss and its gradient]({root}plots/{spec.name}.png)"
            "{ loading=lazy }",
            "",
            f"*`losskit show {spec.name} --plot {spec.name}.png`*: {_cell(plot.message)}",
            "",
        ]
    elif plot is not None:
        lines += [f"*No plot*: `losskit show {spec.name} --plot` says: {_cell(plot.message)}", ""]
    return "\n".join(lines)


def family_entries(family: str, plots: Mapping[str, Plot], *, level: int = 3) -> str:
    """The catalog entries of ``family``, for its page (``docs/families/FAMILY.md``)."""
    specs = families()[family]
    keras = _keras_twins()
    return "\n".join(
        entry_markdown(s, family, level=level, plots=plots, root="../", keras=keras) for s in specs
    )


def catalog_page(plots: Mapping[str, Plot]) -> str:
    """``catalog.md``: a table of every entry, then every entry in full, family by family."""
    import losskit

    by_family = families()
    keras = _keras_twins()
    count = sum(len(v) for v in by_family.values())
    lines = [
        "# The catalog",
        "",
        f"`losskit.catalog` holds {count} losses in {len(by_family)} families. This page is "
        "generated from it on every build of the site (`make docs`), so it says what the code "
        "says: the formula, the task, each option with its valid values "
        "(`HyperParam.describe()`) and the range `losskit tune` searches, the reference "
        "implementation the tests compare against, the papers, whether second derivatives are "
        "exact, how the loss compiles and what it does under autocast. The plots are drawn by "
        "`losskit show NAME --plot` during the build. From Python:",
        "",
        "```python",
        "import losskit",
        "",
        'spec = losskit.catalog["huber"]          # aliases work too: catalog["huber_loss"]',
        "print(spec.formula, spec.task, [p.describe() for p in spec.params])",
        "```",
        "",
        "| loss | family | task | summary |",
        "|---|---|---|---|",
    ]
    for family, specs in by_family.items():
        for s in specs:
            lines.append(
                f"| [`{s.name}`](#{s.name}) | [{family}](families/{family}.md) | {s.task} | "
                f"{_cell(s.summary)} |"
            )
    lines.append("")
    for family, specs in by_family.items():
        lines += [f"## {FAMILY_TITLES.get(family, family)}", ""]
        lines += [
            entry_markdown(s, family, level=3, plots=plots, root="", keras=keras) for s in specs
        ]
    assert count == len(losskit.catalog), "every catalog entry belongs to a family"
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- plots


def source_hash() -> str:
    """A hash of losskit's source: the plots are redrawn when it changes."""
    digest = hashlib.sha256()
    src = ROOT / "src" / "losskit"
    for file in sorted(src.rglob("*.py")):
        digest.update(str(file.relative_to(src)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def make_plots(names: list[str] | None = None) -> dict[str, Plot]:
    """``losskit show NAME --plot PNG`` for every catalog entry (or ``names``), run in this
    process through the typer app, into ``build/docs-cache/plots-<source hash>/``. A loss
    without a one-dimensional picture (the command exits 2 and says why) gets no image."""
    import torch
    from typer.testing import CliRunner

    import losskit
    from losskit.cli import app

    torch.set_num_threads(1)  # small curves: threads only contend on a shared machine
    folder = PLOT_CACHE / f"plots-{source_hash()}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in PLOT_CACHE.glob("plots-*"):
        # older sources' plots; not one a build running beside this one may still be using
        if old != folder and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)
    runner = CliRunner()
    plots = {}
    for name in names if names is not None else list(losskit.catalog):
        # the .txt (what the command said) is written last: it marks a finished plot, so two
        # builds at once (make docs beside the tests) never read a half-written image
        png, said = folder / f"{name}.png", folder / f"{name}.txt"
        if not said.exists():
            drawing = folder / f"{name}.{os.getpid()}.png"
            result = runner.invoke(app, ["show", name, "--plot", str(drawing)])
            lines = [ln.strip() for ln in result.output.strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else ""
            if result.exit_code == 0 and drawing.is_file() and drawing.stat().st_size > 0:
                message = last.split("(", 1)[-1].rstrip(")") if last.startswith("plot:") else last
                os.replace(drawing, png)
            elif result.exit_code == 2:
                message = last.removeprefix("error: ")
                drawing.unlink(missing_ok=True)
            else:
                raise RuntimeError(
                    f"losskit show {name} --plot failed (exit {result.exit_code}):\n"
                    f"{result.output}\n{result.exception!r}"
                )
            temporary = folder / f"{name}.{os.getpid()}.txt"
            temporary.write_text(message, encoding="utf-8")
            os.replace(temporary, said)
        plots[name] = Plot(name, png if png.is_file() else None, said.read_text(encoding="utf-8"))
    return plots


# ------------------------------------------------------------------------------ the CLI


def _cli_command_markdown(command: Any, ctx: Any, path: str) -> list[str]:
    lines = [f"## `{path}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [" ".join(par.split()) + "\n" for par in help_text.split("\n\n")]
    usage = command.get_usage(ctx).strip().removeprefix("Usage: ")
    lines += ["```console", f"$ {usage}", "```", ""]
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        rows.append(f"| `{_cell(names)}` | {_cell(text)} |")
    if rows:
        lines += ["| argument or option | what it does |", "|---|---|", *rows, ""]
    return lines


#: how every command behaves in a terminal, in a pipe and on bad input (the reference follows)
CLI_BEHAVIOUR = """\
## In a terminal, in a pipe, and on bad input

* **Readable at 80 columns** (the width rich assumes in a pipe): `list` and `tour` print one
  line per loss and per worked example (summaries shortened with `…`; `show` has them whole);
  `compare` prints names whole and drops the time column before it would wrap a row.
* **Copyable**: `show` prints its snippets as plain text, whole, wrapped as Python (one argument
  per line) where a call is wider than the terminal; LaTeX formulas are printed as written
  (`\\ell_i = -[y_i\\log p_i + ...]`, never read as markup). Every entry with a Keras twin gets a
  Keras snippet, taken from its golden cases (`from_logits=True` where the PyTorch loss takes
  logits), with the PyTorch call that gives the same number.
* **Bad input** to any command (a value a loss refuses, an unknown name or option, duplicates,
  options that contradict each other, a file or folder that cannot be used, a missing extra,
  an unknown flag): exit code 2 and one line on stderr (`error: ...`), no traceback, checked
  before anything is printed, trained or written. `eval` checks the numbers it is given as
  values (`losskit.checks("full")`): `eval ce --input "2,1,0.1;0,0,5" --target 0,7` says the
  class index is out of range, `eval bce --input 1.2,0.3 --target 1,0` that probabilities lie
  in [0, 1], and NaN, infinity and numbers beyond float32 are refused.
* **Output places** (`compare`/`tune --out`, `show --plot`) are checked before any work, by
  creating and removing a temporary entry where the output will go (permission bits do not
  tell, for root or in `/proc`): `/proc/x`, a path under a file, `/dev/null/x` all fail at
  once. `--out` must be new or empty; `--force` writes into a non-empty one (files of the same
  name are replaced, and the files an earlier losskit report listed in its `results.json` are
  removed, so two runs never mix; anything else is left alone).
"""


def cli_page() -> str:
    """``cli.md``: every command of the ``losskit`` typer app, with its ``--help`` texts."""
    import typer.main

    from losskit.cli import app

    group = typer.main.get_command(app)
    root = group.make_context("losskit", [], resilient_parsing=True)
    lines = [
        "# Command line",
        "",
        "Generated from the typer app (`losskit.cli.app`) on every build of the site: each "
        "command's help and its options are what `losskit COMMAND --help` prints. "
        "`list`, `show`, `eval` and `tour` need only losskit; `compare`, `tune`, `bench` and "
        "`show --plot` need the `cli` extra (`pip install 'losskit[cli]'`) and say so. "
        "A mistake a user can make (a bad number, an unknown loss, a path that cannot be "
        "written) ends with exit code 2 and one line on stderr, before anything is written.",
        "",
        "Guides: [choosing and tuning a loss](selection.md), "
        "[tuning on several machines](tuning-several-machines.md), "
        "[benchmarks](benchmarks/index.md).",
        "",
    ]
    lines += [CLI_BEHAVIOUR, ""]
    lines += _cli_command_markdown(group, root, "losskit")
    for name, command in group.commands.items():
        ctx = command.make_context(name, [], parent=root, resilient_parsing=True)
        lines += _cli_command_markdown(command, ctx, f"losskit {name}")
    return "\n".join(lines) + "\n"


KERAS_CASES = re.compile(r"^<!-- keras-golden-cases -->[ \t]*$", re.M)


def _python(value: Any) -> str:
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return f'float("{value}")'
    return repr(value)


def keras_cases_table() -> str:
    """Every golden case of the Keras twins: the Keras call and the PyTorch call whose float64
    value (and gradient) the Keras loss must reproduce."""
    import losskit
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    lines = [
        "| loss | case | Keras (`LK` = `losskit.keras`) | PyTorch (`LF` = `losskit.functional`) |",
        "|---|---|---|---|",
    ]
    for name, twin in gather(FAMILIES).items():
        fn = losskit.catalog[name].functional.__name__
        for case in twin.cases:
            config = ", ".join(f"{k}={_python(v)}" for k, v in case.config.items())
            args = ["y_true", "y_pred"] + (
                ["sample_weight"] if "sample_weight" in case.inputs else []
            )
            keras_call = f"LK.{twin.keras}({config})({', '.join(args)})"
            if "mask" in case.inputs:
                keras_call += " with y_pred's Keras mask"
            torch_call = re.sub(r"\bloss\(", f"LF.{fn}(", case.torch)
            lines.append(
                f"| [`{name}`](catalog.md#{name}) | {_cell(case.name)} | `{_cell(keras_call)}` | "
                f"`{_cell(torch_call)}` |"
            )
    return "\n".join(lines) + "\n"


def expand_catalog_markers(markdown: str, plots: Mapping[str, Plot]) -> str:
    """Replace ``<!-- catalog: FAMILY -->`` by that family's generated entries, and
    ``<!-- keras-golden-cases -->`` by the table of the Keras twins' golden cases."""
    if KERAS_CASES.search(markdown):
        markdown = KERAS_CASES.sub(lambda _: keras_cases_table(), markdown)
    known = families()

    def replace(match: re.Match[str]) -> str:
        family = match.group("family")
        if family not in known:
            raise KeyError(f"docs: <!-- catalog: {family} --> names no family of the catalog")
        return family_entries(family, plots)

    return CATALOG.sub(replace, markdown)
