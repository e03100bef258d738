"""Shim package: the original LSTM_PFD data.* import paths, served by h5ml."""
