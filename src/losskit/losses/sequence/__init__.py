"""The sequence family: functional, modules, catalog entries."""
