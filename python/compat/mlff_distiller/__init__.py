"""Shim package: the original MLFF_Distiller import paths, served by h5ml."""
