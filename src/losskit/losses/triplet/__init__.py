"""The triplet family: functional, modules, catalog entries."""
