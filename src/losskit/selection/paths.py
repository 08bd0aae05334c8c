"""Checks of the places a command will write to, made before any work starts: a report
directory (``--out``) or a single file (``bench --json``). An hour of training must not end in
"cannot write": every check here fails at once, with one line that names the option.

Permissions alone do not tell (root passes every ``os.access`` test, and ``/proc`` refuses new
files whatever its mode says), so writability is proved by creating a temporary entry where
the real one will go and removing it again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from losskit.selection.data import DataError

__all__ = ["check_output_dir", "check_output_file", "existing_ancestor"]


def existing_ancestor(path: Path, option: str) -> Path:
    """The nearest existing directory above ``path`` (what ``mkdir -p`` would start from);
    a :class:`DataError` if that nearest existing entry is a file (``report.csv/out``,
    ``/dev/null/x``)."""
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:  # pragma: no cover - the root always exists
            break
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(
            f"{option} {path}: {parent} is a file, not a directory; expected a path whose "
            "parents are directories"
        )
    return parent


def _probe_dir(directory: Path, path: Path, option: str) -> None:
    """Create and remove a temporary directory in ``directory``: the proof that ``path`` can
    be made there."""
    try:
        probe = tempfile.mkdtemp(prefix=".losskit-probe-", dir=directory)
    except OSError as exc:
        raise DataError(
            f"{option} {path}: cannot write in {directory} ({exc.strerror or exc})"
        ) from None
    os.rmdir(probe)


def check_output_dir(out: Path, *, force: bool = False, option: str = "--out") -> Path:
    """``out`` as an absolute path if it can become the report directory: a new directory
    (its missing parents are made later), or an empty one; a non-empty one only with
    ``force``. Nothing is left behind."""
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise DataError(f"{option} {out} is a file; expected a directory (new or empty)")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries and not force:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise DataError(
                f"{option} {out} is not empty ({len(entries)} "
                f"{'entry' if len(entries) == 1 else 'entries'}: {shown}); choose a new "
                "directory, or give --force to write this report into it (files of the same "
                "name are replaced)"
            )
        # an existing directory holds the report's staging directory itself
        _probe_dir(out, out, option)
    else:
        # a new one is staged beside where it will be, and renamed into place
        _probe_dir(existing_ancestor(out, option), out, option)
    return out


def check_output_file(path: Path, option: str) -> Path:
    """``path`` as an absolute path if a file can be written there: an existing file that
    can be opened for writing (it is not changed here), or a new name in a directory that
    takes new files (missing parents are made later)."""
    path = path.expanduser().absolute()
    if path.is_dir():
        raise DataError(f"{option} {path} is a directory; expected a file name")
    if path.exists():
        try:
            with path.open("ab"):  # appending nothing: the file stays as it is
                pass
        except OSError as exc:
            raise DataError(f"{option} {path}: cannot write it ({exc.strerror or exc})") from None
        return path
    _probe_dir(existing_ancestor(path, option), path, option)
    return path
