"""The robust family: functional, modules, catalog entries."""
