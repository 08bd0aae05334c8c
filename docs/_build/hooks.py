"""mkdocs hooks of losskit's documentation site (``mkdocs.yml``: ``hooks:``).

On every build they add the generated pages and images to the site (nothing is written into
``docs/``):

* ``catalog.md`` from ``losskit.catalog``; ``cli.md`` from the typer app;
* ``plots/NAME.png``: ``losskit show NAME --plot`` for every catalog entry;
* ``benchmarks/*.png`` beside ``benchmarks/RESULTS.md``, which ``benchmarks.md`` includes;

and expand, in every page, ``<!-- include: PATH [shift=N] -->`` (a file of the repository) and
``<!-- catalog: FAMILY -->`` (that family's generated entries). See ``gen.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the API reference imports losskit.keras to document it: the backend that imports fastest here
os.environ.setdefault("KERAS_BACKEND", "torch")
# griffe imports every submodule of losskit to inspect it; losskit/cli/__main__.py runs the CLI
# on import (no `if __name__ == "__main__"` guard), which would parse mkdocs's own arguments.
# It documents nothing, so a stand-in is inspected instead.
sys.modules.setdefault("losskit.cli.__main__", types.ModuleType("losskit.cli.__main__"))

import gen  # noqa: E402

log = logging.getLogger("mkdocs.plugins.losskit")
_PLOTS: dict[str, gen.Plot] = {}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    start = time.perf_counter()
    _PLOTS.clear()
    _PLOTS.update(gen.make_plots())
    drawn = sum(p.path is not None for p in _PLOTS.values())
    log.info(
        f"losskit: {drawn} plots of {len(_PLOTS)} entries in {time.perf_counter() - start:.1f} s"
    )
    for plot in _PLOTS.values():
        if plot.path is not None:
            files.append(
                File.generated(config, f"plots/{plot.name}.png", abs_src_path=str(plot.path))
            )
    for png in sorted((gen.ROOT / "benchmarks").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    files.append(File.generated(config, "catalog.md", content=gen.catalog_page(_PLOTS)))
    files.append(File.generated(config, "cli.md", content=gen.cli_page()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = gen.expand_includes(markdown)
    return gen.expand_catalog_markers(markdown, _PLOTS)
