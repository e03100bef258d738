"""MATLAB .mat import: the LSTM_PFD MatlabImporter calls on libh5ml's importer (libmatio).

    signals, labels, label_names = load_mat_dataset('data/raw/bearing_data')
    importer = MatlabImporter()
    batch = importer.load_batch(Path('data/raw/bearing_data'))
    signals, labels = importer.extract_signals_and_labels(batch)

A dataset directory has one sub-directory per class (fault type) holding .mat files (v4,
v5, v7.3), one signal each. `load_mat_dataset` and `load_batch` on such a directory run the
library's importer into a temporary flat cache and read it back: signals float32 (N, L) in
file order, labels from the sub-directory names (the 11 fault names give labels 0-10, other
names are numbered in sorted order), `label_names[label]` the class names. Each signal's
metadata is {file, fault, label, variable}. Signals of unequal length are an error unless
truncate=True (cut to the shortest) or pad=True (zeros up to the longest).

`load_batch` on a directory holding .mat files directly (the original tool's layout, or a
`pattern` other than '*.mat') and `load_mat_file` keep the original's scipy-based parsing:
the signal is the variable 'signal', 'x', 'data' or 'y', else the largest array; the label
comes from a 'label'/'fault_type'/'class'/'fault' variable or metadata field, else the file
name. Files that fail are logged and skipped, as before.
"""
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from . import _h5ml
from ._common import FAULT_TYPES, logger
from .signals import load_signal_file, open_signal_reader

__all__ = ["MatlabImporter", "MatlabSignalData", "load_mat_dataset", "load_matlab_reference"]


@dataclass
class MatlabSignalData:
    """A signal read from a .mat file with its metadata and (string) label."""
    signal: np.ndarray
    metadata: Dict[str, Any]
    label: str
    severity: Optional[str] = None
    config: Optional[Dict[str, Any]] = None


def _import_flat(directory, var=None, truncate=False, pad=False):
    """(signals, labels, metadata, class names) of a class-per-sub-directory .mat tree."""
    with tempfile.TemporaryDirectory(prefix="h5ml-mat-") as tmp:
        path = Path(tmp) / "import.h5"
        _h5ml.import_mat(str(directory), str(path), var=var, truncate=truncate, pad=pad, flat=True,
                         compression="none")
        signals, labels, metadata = load_signal_file(path)
        reader = open_signal_reader(path)
        try:
            names = reader.attrs().get("class_names")
        finally:
            reader.close()
    names = [str(n) for n in names] if names is not None else list(FAULT_TYPES)
    return signals, labels, metadata, names


def load_mat_dataset(directory, var=None, truncate=False, pad=False):
    """(signals float32 (N, L), labels int64 (N,), label_names) of a directory with one
    sub-directory of .mat files per class; label_names[k] is the name of label k."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Directory not found: {directory}")
    signals, labels, _, names = _import_flat(directory, var, truncate, pad)
    logger.info("Loaded %d signals of %d classes from %s", len(labels), len(set(labels.tolist())), directory)
    return signals, labels, names


def _has_class_dirs(directory):
    return any(sub.is_dir() and any(sub.glob("*.mat")) for sub in directory.iterdir())


class MatlabImporter:
    """Imports .mat files (see the module documentation). squeeze_me and struct_as_record
    are scipy.io.loadmat's options for the per-file path; var, truncate and pad the
    library importer's."""

    def __init__(self, squeeze_me=True, struct_as_record=False, var=None, truncate=False, pad=False):
        self.squeeze_me = squeeze_me
        self.struct_as_record = struct_as_record
        self.var = var
        self.truncate = truncate
        self.pad = pad

    def load_batch(self, mat_dir, pattern="*.mat"):
        """A list of MatlabSignalData, one per .mat file of mat_dir."""
        mat_dir = Path(mat_dir)
        if not mat_dir.exists():
            raise FileNotFoundError(f"Directory not found: {mat_dir}")
        if pattern == "*.mat" and _has_class_dirs(mat_dir):
            signals, _, metadata, _ = _import_flat(mat_dir, self.var, self.truncate, self.pad)
            return [MatlabSignalData(signal=signals[i], metadata=dict(metadata[i] or {}),
                                     label=str((metadata[i] or {}).get("fault", "unknown")))
                    for i in range(len(signals))]
        files = sorted(mat_dir.glob(pattern))
        if not files:
            raise ValueError(f"No .mat files found in {mat_dir} with pattern {pattern}")
        batch = []
        for path in files:
            try:
                batch.append(self.load_mat_file(path))
            except Exception as err:  # noqa: BLE001 - skipped and logged, as the original did
                logger.error("Failed to load %s: %s", path.name, err)
        logger.info("Successfully loaded %d/%d files", len(batch), len(files))
        return batch

    def extract_signals_and_labels(self, batch):
        """(signals (num_signals, signal_length), list of labels) of a batch."""
        signals = np.array([data.signal for data in batch])
        return signals, [data.label for data in batch]

    def get_statistics(self, batch):
        signals, labels = self.extract_signals_and_labels(batch)
        names, counts = np.unique(labels, return_counts=True)
        rms = np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1))
        return {"num_signals": len(signals), "signal_length": signals.shape[1],
                "global_mean": float(np.mean(signals)), "global_std": float(np.std(signals)),
                "global_min": float(np.min(signals)), "global_max": float(np.max(signals)),
                "global_rms": float(np.sqrt(np.mean(np.square(signals, dtype=np.float64)))),
                "per_signal_rms": rms, "labels": names.tolist(),
                "label_counts": {str(n): int(c) for n, c in zip(names, counts)}}

    # ---- one file, parsed as the original did (scipy) ----

    def load_mat_file(self, path):
        from scipy.io import loadmat

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"MATLAB file not found: {path}")
        data = {k: v for k, v in loadmat(path, squeeze_me=self.squeeze_me,
                                         struct_as_record=self.struct_as_record).items() if not k.startswith("__")}
        metadata = _mat_metadata(data)
        return MatlabSignalData(signal=_mat_signal(data, self.var), metadata=metadata,
                                label=_mat_label(data, metadata, path.name),
                                severity=_mat_field(data, metadata, ("severity", "severity_level", "sev")),
                                config=_mat_struct(data, ("config", "CONFIG", "params")))


def _mat_signal(data, var=None):
    for name in ([var] if var else []) + ["signal", "x", "data", "y"]:
        if name in data:
            return np.asarray(data[name]).flatten()
    arrays = [(k, v) for k, v in data.items() if isinstance(v, np.ndarray) and v.size > 100]
    if not arrays:
        raise ValueError("No signal array found in .mat file")
    key, value = max(arrays, key=lambda kv: kv[1].size)
    logger.warning("Using field '%s' as signal (no standard name found)", key)
    return value.flatten()


def _mat_struct(data, names):
    for name in names:
        if name in data:
            value = data[name]
            if isinstance(value, dict):
                return value
            if hasattr(value, "_fieldnames"):
                return {f: getattr(value, f) for f in value._fieldnames}
    return None


def _mat_metadata(data):
    metadata = dict(_mat_struct(data, ("metadata", "info", "params")) or {})
    for key, value in data.items():
        if isinstance(value, (int, float, str, np.number)):
            metadata[key] = value
        elif isinstance(value, np.ndarray) and value.size == 1:
            metadata[key] = value.item()
    return metadata


def _mat_field(data, metadata, names):
    for name in names:
        for source in (metadata, data):
            if name in source:
                value = source[name]
                return str(value.item() if isinstance(value, np.ndarray) else value)
    return None


def _mat_label(data, metadata, filename):
    label = _mat_field(data, metadata, ("label", "fault_type", "class", "fault"))
    if label is not None:
        return label
    parts = Path(filename).stem.split("_")
    if len(parts) >= 2:
        return "_".join(parts[1:-1]) if len(parts) > 2 else parts[1]
    logger.warning("Could not extract label from %s, using 'unknown'", filename)
    return "unknown"


def load_matlab_reference(mat_path, verbose=True):
    """One .mat file as MatlabSignalData (scipy)."""
    data = MatlabImporter().load_mat_file(mat_path)
    if verbose:
        logger.info("Loaded reference: %s (shape=%s)", data.label, data.signal.shape)
    return data
