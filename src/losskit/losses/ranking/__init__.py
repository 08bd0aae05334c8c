"""The ranking family: functional, modules, catalog entries."""
