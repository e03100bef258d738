"""MLFF_Distiller's hdf5_writer, served by h5ml (see h5ml.atoms)."""
from h5ml.atoms import HDF5DatasetReader, HDF5DatasetWriter, collate_atoms, convert_pickle_to_hdf5  # noqa: F401

__all__ = ["HDF5DatasetWriter", "convert_pickle_to_hdf5", "HDF5DatasetReader", "collate_atoms"]
