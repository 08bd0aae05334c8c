"""The segmentation family: functional, modules, catalog entries."""
