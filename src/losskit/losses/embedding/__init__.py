"""The embedding family: functional, modules, catalog entries."""
