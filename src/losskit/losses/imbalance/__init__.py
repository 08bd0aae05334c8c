"""The imbalance family: functional, modules, catalog entries."""
