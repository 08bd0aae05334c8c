"""Every ```python block of the documentation runs as written.

The blocks of one document run in order in one namespace (a block may use the names an earlier
block of the same page defined), in a temporary working directory. ``<!-- include: PATH -->``
lines are expanded as the site build expands them, and the generated pages (the catalog, the
CLI) are checked too. ``console`` blocks are commands for a shell and are not run.

A page whose blocks import Keras runs in a fresh interpreter with ``KERAS_BACKEND=jax``: this
pass never imports Keras (its tests run in their own passes, once per backend).

The documents are the pages under ``docs/`` plus :data:`EXTRA_DOCUMENTS`; a document in
:data:`KNOWN_FAILING` is expected to fail (strict xfail: once it runs, the test says so, and it
must leave the list).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: documents outside docs/ whose blocks must run too
EXTRA_DOCUMENTS = ["README.md", "CONTRIBUTING.md"]
#: documents whose blocks do not run yet, and why (each must fail: strict xfail)
KNOWN_FAILING: dict[str, str] = {}

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.S | re.M,
)


@functools.cache
def _gen():
    spec = importlib.util.spec_from_file_location("losskit_docs_gen", DOCS / "_build" / "gen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```python (or ```py) blocks of ``markdown``: (line number, dedented code)."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        if match.group("lang") in ("python", "py"):
            line = markdown.count("\n", 0, match.start()) + 2
            blocks.append((line, textwrap.dedent(match.group("body"))))
    return blocks


def document_markdown(name: str) -> str:
    """A document's Markdown as the site renders it: includes expanded (files that are
    documents of their own are left out: they are checked by themselves)."""
    gen = _gen()
    if name == "<generated>/catalog.md":
        return gen.catalog_page({})
    if name == "<generated>/cli.md":
        return gen.cli_page()
    text = (ROOT / name).read_text(encoding="utf-8")
    return gen.expand_includes(text, skip=frozenset(EXTRA_DOCUMENTS))


def documents() -> list[str]:
    pages = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    return [*pages, "<generated>/catalog.md", "<generated>/cli.md", *EXTRA_DOCUMENTS]


def _params():
    for name in documents():
        marks = []
        if any("torch.compile(" in code for _, code in python_blocks(document_markdown(name))):
            # compiling takes tens of seconds: the compile pass of `make test` runs these pages
            marks.append(pytest.mark.compile)
        if name in KNOWN_FAILING:
            marks.append(pytest.mark.xfail(reason=KNOWN_FAILING[name], strict=True))
        yield pytest.param(name, marks=marks, id=name)


def _needs_keras(blocks: list[tuple[int, str]]) -> bool:
    return any(
        re.search(r"^\s*(import keras|import losskit\.keras|from keras)", code, re.M)
        for _, code in blocks
    )


def run_blocks(name: str, blocks: list[tuple[int, str]]) -> None:
    """Run ``blocks`` in order in one namespace; a failure names the block's line."""
    import torch

    import losskit

    namespace: dict[str, object] = {"__name__": "__docs__"}
    level = losskit.get_checks()
    threads = torch.get_num_threads()  # a page may set them (the training guide does)
    try:
        for line, code in blocks:
            compiled = compile("\n" * (line - 1) + code, f"{name}", "exec")
            try:
                exec(compiled, namespace)
            except Exception as error:
                raise AssertionError(
                    f"{name}: the block at line {line} raises {type(error).__name__}: {error}"
                ) from error
    finally:
        losskit.set_checks(level)
        torch.set_num_threads(threads)
        with contextlib.suppress(Exception):
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


@pytest.mark.parametrize("name", list(_params()))
def test_code_blocks_run(name, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(document_markdown(name))
    if not blocks:
        return  # a page without Python: nothing to run
    monkeypatch.chdir(tmp_path)
    if _needs_keras(blocks):
        script = tmp_path / "blocks.py"
        script.write_text(
            "import sys\n"
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from test_docs_code import run_blocks\n"
            f"run_blocks({name!r}, {blocks!r})\n",
            encoding="utf-8",
        )
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    else:
        run_blocks(name, blocks)


def test_blocks_are_found():
    """The extractor sees the blocks (a page with Python and none found would pass vacuously)."""
    sample = "text\n\n```python\nx = 1\n```\n\n```console\n$ ls\n```\n\n  ```py\n  y = x\n  ```\n"
    assert python_blocks(sample) == [(4, "x = 1\n"), (12, "y = x\n")]
    assert python_blocks(document_markdown("docs/index.md"))
    assert python_blocks(document_markdown("README.md"))
    assert python_blocks(document_markdown("<generated>/catalog.md"))


def test_a_page_that_sets_torch_threads_leaves_them_as_they_were():
    import torch

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    run_blocks("page.md", [(1, f"import torch\ntorch.set_num_threads({other})\n")])
    assert torch.get_num_threads() == before
