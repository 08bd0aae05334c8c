"""The classification family: functional, modules, catalog entries."""
