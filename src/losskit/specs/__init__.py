"""Catalog entries, one module per family. Each module defines ``SPECS``, a list of
:class:`losskit.LossSpec`; :data:`losskit._catalog.SPEC_MODULES` lists the modules."""
