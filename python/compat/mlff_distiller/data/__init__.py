"""Shim package: mlff_distiller.data.hdf5_writer, served by h5ml."""
