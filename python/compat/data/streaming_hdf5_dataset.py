"""LSTM_PFD's data.streaming_hdf5_dataset, served by h5ml (see h5ml.streaming)."""
from h5ml.streaming import ChunkedStreamingDataset, StreamingHDF5Dataset, create_streaming_dataloaders  # noqa: F401

__all__ = ["StreamingHDF5Dataset", "ChunkedStreamingDataset", "create_streaming_dataloaders"]
