"""h5ml: machine-learning datasets in plain HDF5, written and read by libh5ml.

The classes and functions of the original Python tools, with their names, calls, defaults,
exceptions and messages, on the C library (the extension module `h5ml._h5ml`):

Atomistic datasets (MLFF_Distiller, `h5ml.atoms`)
    HDF5DatasetWriter, convert_pickle_to_hdf5 - the original writer API.
    HDF5DatasetReader - len(), get(i), get_atoms(i) (ase.Atoms), iteration, read_batch(indices).
    AtomsDataset, collate_atoms - a torch Dataset safe in DataLoader workers, and its collate.

Signal caches (LSTM_PFD)
    CacheManager, cache_dataset_simple, load_cached_dataset_simple  (`h5ml.signals`)
    StreamingHDF5Dataset, ChunkedStreamingDataset, create_streaming_dataloaders  (`h5ml.streaming`)
    SignalGenerator  (`h5ml.generator`)
    MatlabImporter, load_mat_dataset  (`h5ml.matlab`)

Warnings go to the `logging` logger "h5ml". torch is imported only when a torch dataset is
first used (AtomsDataset, collate_atoms, the streaming names), ase only when Atoms are made.

Old import paths (`mlff_distiller.data.hdf5_writer`, `data.cache_manager`, ...) work
unchanged with `python/compat` on sys.path.
"""
from . import _h5ml
from .atoms import HDF5DatasetReader, HDF5DatasetWriter, collate_atoms, convert_pickle_to_hdf5
from .generator import GeneratedDataset, SignalGenerator
from .matlab import MatlabImporter, MatlabSignalData, load_mat_dataset
from .signals import (FAULT_TYPES, NUM_CLASSES, SAMPLING_RATE, CacheManager, cache_dataset_simple,
                      compute_cache_key, load_cached_dataset_simple)

__version__ = _h5ml.version()

_LAZY = {
    "AtomsDataset": "atoms",
    "StreamingHDF5Dataset": "streaming",
    "ChunkedStreamingDataset": "streaming",
    "create_streaming_dataloaders": "streaming",
}

__all__ = [
    "HDF5DatasetWriter", "HDF5DatasetReader", "AtomsDataset", "collate_atoms", "convert_pickle_to_hdf5",
    "CacheManager", "cache_dataset_simple", "load_cached_dataset_simple", "compute_cache_key",
    "StreamingHDF5Dataset", "ChunkedStreamingDataset", "create_streaming_dataloaders",
    "SignalGenerator", "GeneratedDataset", "MatlabImporter", "MatlabSignalData", "load_mat_dataset",
    "FAULT_TYPES", "NUM_CLASSES", "SAMPLING_RATE", "__version__",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
