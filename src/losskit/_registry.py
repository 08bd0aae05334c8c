"""The process-wide catalog: every family's entries (``losskit/losses/<family>/spec.py``,
families listed in :data:`losskit.losses.FAMILIES`), built on first use."""

from __future__ import annotations

import importlib

from losskit._catalog import Catalog
from losskit.losses import FAMILIES


def build_catalog() -> Catalog:
    cat = Catalog()
    for family in FAMILIES:
        module = importlib.import_module(f"losskit.losses.{family}.spec")
        for spec in module.SPECS:
            cat.register(spec)
    return cat


_CATALOG: Catalog | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog (``losskit.catalog``), built on first use."""
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = build_catalog()
    return _CATALOG
