"""The regression family: functional, modules, catalog entries."""
