"""The divergence family: functional, modules, catalog entries."""
