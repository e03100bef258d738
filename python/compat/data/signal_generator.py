"""LSTM_PFD's data.signal_generator, served by h5ml (see h5ml.generator)."""
from h5ml.generator import GeneratedDataset, SignalGenerator  # noqa: F401

__all__ = ["SignalGenerator", "GeneratedDataset"]
