"""A griffe extension: losskit's docstrings are written in reStructuredText's few constructs
(``.. math::``, ``:math:``, ``:func:`` and friends, doctest examples, one simple table); this
turns them into the Markdown mkdocstrings renders, so the API reference shows formulas as math,
cross-references as links and examples as code.

* ``.. math:: X`` (and its indented continuation) -> a ``$$ X $$`` block (pymdownx.arithmatex);
* ``:math:`x``` -> ``$x$``;
* ``:func:`name``` (``:class:``, ``:meth:``, ``:mod:``, ``:attr:``, ``:data:``; ``~`` shows the
  last part) -> an optional cross-reference: a link where the object is documented, code
  otherwise;
* doctest lines (``>>>``, ``...`` and their output) -> a ``pycon`` code block (they run as
  doctests in ``make test``);
* a simple table (``=====  =====`` borders) -> a preformatted block, as written;
* a paragraph ending in ``::`` (a literal block follows) -> ``:``.
"""

from __future__ import annotations

import functools
import html
import inspect
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|attr|data|exc|obj):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_TABLE_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")
_DOCTEST_SKIP = re.compile(r"\s*#\s*doctest:\s*\+\w+")


@functools.cache
def _functional() -> frozenset[str]:
    import losskit.functional

    return frozenset(losskit.functional.__all__)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _role(match: re.Match[str], module: str) -> str:
    _kind, tilde, target, explicit = match.groups()
    title = target.strip()
    target = (explicit or target).strip().lstrip("~")
    if tilde:
        title = target.rsplit(".", 1)[-1]
    if not target.startswith("losskit"):
        # a name relative to the docstring's module (``:func:`cross_entropy```): the public
        # face's page documents it where the face exports it
        head = target.split(".", 1)[0]
        target = f"losskit.functional.{target}" if head in _functional() else f"{module}.{target}"
    return (
        f'<autoref identifier="{html.escape(target)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _blocks(lines: list[str]) -> list[str]:
    """Math directives, doctests, simple tables and literal-block markers, line by line."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: _indent(line)]
        if stripped.startswith(".. math::"):
            body = [stripped.removeprefix(".. math::").strip()]
            base = _indent(line)
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                if not lines[i].strip() and (i + 1 >= len(lines) or _indent(lines[i + 1]) <= base):
                    break
                body.append(lines[i].strip())
                i += 1
            formula = "\n".join(b for b in body if b)
            out += [f"{indent}$$", *(f"{indent}{b}" for b in formula.splitlines()), f"{indent}$$"]
            continue
        if stripped.startswith(">>>"):
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(_DOCTEST_SKIP.sub("", lines[i]).rstrip())
                i += 1
            out.append(f"{indent}```")
            continue
        if _TABLE_BORDER.match(line):
            borders, table = 0, []
            while i < len(lines) and borders < 3:
                borders += bool(_TABLE_BORDER.match(lines[i]))
                table.append(lines[i])
                i += 1
            out += [f"{indent}```text", *table, f"{indent}```"]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            line = line[: line.rstrip().rfind("::")] + ":"
        out.append(line)
        i += 1
    return out


def rst_to_markdown(text: str, module: str = "losskit") -> str:
    """``text`` (a docstring) as Markdown; names in roles are resolved against ``module``."""
    text = "\n".join(_blocks(text.splitlines()))
    # inline roles outside the code blocks made above
    parts = re.split(r"(^\s*```.*?^\s*```)", text, flags=re.S | re.M)
    for k in range(0, len(parts), 2):
        parts[k] = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", parts[k])
        parts[k] = _ROLE.sub(lambda m: _role(m, module), parts[k])
    return "".join(parts)


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _function(name: str, runtime: Any) -> griffe.Function:
    """A griffe function with ``runtime``'s signature (its ``__signature__`` if it has one)."""
    parameters = []
    for p in inspect.signature(runtime).parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        parameters.append(griffe.Parameter(p.name, kind=_KINDS[p.kind], default=default))
    return griffe.Function(name, parameters=griffe.Parameters(*parameters))


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring griffe loads (see the module docstring), and gives the classes
    that :func:`losskit._module.loss_module` generates their constructor's signature (griffe
    cannot follow the function defined inside ``loss_module``)."""

    def on_class_members(self, *, node: Any, cls: Any, agent: Any, **kwargs: Any) -> None:
        runtime = getattr(node, "obj", None)
        for name, member in list(cls.members.items()):
            if member.is_alias and "<locals>" in member.target_path:
                cls.del_member(name)
                function = getattr(runtime, name, None)
                if name == "__init__" and function is not None:
                    cls.set_member(name, _function(name, function))

    def on_instance(self, *, node: Any, obj: Any, agent: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is None or getattr(docstring, "_losskit_markdown", False):
            return
        module = obj.module.path
        docstring.value = rst_to_markdown(docstring.value, module)
        docstring._losskit_markdown = True
