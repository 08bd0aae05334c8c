"""The linear ce family: functional, modules, catalog entries."""
