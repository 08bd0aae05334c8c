"""The margin family: functional, modules, catalog entries."""
