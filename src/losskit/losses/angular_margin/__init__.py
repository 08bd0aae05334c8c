"""The angular-margin family (CosFace, ArcFace): functional, modules, catalog entries."""
