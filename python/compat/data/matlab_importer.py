"""LSTM_PFD's data.matlab_importer, served by h5ml (see h5ml.matlab)."""
from h5ml.matlab import MatlabImporter, MatlabSignalData, load_mat_dataset, load_matlab_reference  # noqa: F401

__all__ = ["MatlabImporter", "MatlabSignalData", "load_mat_dataset", "load_matlab_reference"]
