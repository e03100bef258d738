"""The vibration signal generator: the LSTM_PFD SignalGenerator calls on libh5ml's simulator.

    generator = SignalGenerator(DataConfig(num_signals_per_fault=130))
    dataset = generator.generate_dataset()
    paths = generator.save_dataset(dataset, output_dir='data/processed', format='hdf5')

The simulator runs in C (every signal a function of (seed, class, index), on every core) and
writes files directly, so:

- `generate_dataset()` returns a GeneratedDataset: a read-only mapping with the original's
  keys 'signals', 'labels', 'metadata', 'config', 'statistics'. 'config' and 'statistics'
  are there at once; 'signals' (float32 array (N, L)), 'labels' (fault names, as the
  original) and 'metadata' (one dict per signal: fault, label, severity, speed_hz,
  speed_rpm, load, seed, index; attribute access works too) are generated on first access,
  through a temporary file, in the original's order (class by class). Nothing is generated
  if the dataset only goes to save_dataset(format='hdf5').
- `save_dataset(dataset, output_dir, format='hdf5')` writes `output_dir/dataset.h5` (the
  generator schema: train/val/test groups with indices and metadata, attributes num_classes,
  sampling_rate, signal_length, generation_date, split_ratios, rng_seed) straight from the
  simulator, stratified and split from the seed. A plain dict dataset (signals and labels,
  as the original's generate_dataset made) is written in the same schema through the
  library's writer. format='mat' (the original's default) writes one .mat file per signal
  with scipy ('x', 'fs', 'fault', 'metadata'), 'both' does both (the .mat files then go to
  output_dir/mat_files).

The config may be None (defaults: 100 signals per fault, 102400 samples at 20480 Hz, 60 Hz,
seed 42), an object like the original DataConfig (num_signals_per_fault, rng_seed,
signal.fs, signal.N or signal.T, signal.Omega_base, output_dir), or a dict with those keys
(nested or flat: fs, N, T, Omega_base). rng_seed None draws a seed (recorded in the file).
"""
import secrets
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np

from . import _h5ml
from ._common import FAULT_TYPES, compression_args, logger
from .signals import SAMPLING_RATE, load_signal_file, split_indices, write_signal_cache

__all__ = ["SignalGenerator", "GeneratedDataset", "FAULT_TYPES"]


def _lookup(config, dotted, default=None):
    """config.a.b (attribute or key access at every level); default when absent or None."""
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if isinstance(node, Mapping) else getattr(node, part, None)
    return default if node is None else node


def _first(config, names, default=None):
    for name in names:
        value = _lookup(config, name)
        if value is not None:
            return value
    return default


class SignalMeta(dict):
    """A signal's metadata: a dict whose keys also read as attributes (metadata.fault)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class GeneratedDataset(Mapping):
    """What SignalGenerator.generate_dataset() returns (see the module documentation)."""

    _LAZY = ("signals", "labels", "metadata")

    def __init__(self, generator):
        self._generator = generator
        self._data = {"config": generator.config, "statistics": generator._statistics(None)}

    def _materialize(self):
        if "signals" in self._data:
            return
        g = self._generator
        with tempfile.TemporaryDirectory(prefix="h5ml-gen-") as tmp:
            path = Path(tmp) / "generated.h5"
            t0 = time.perf_counter()
            g._generate(path, (0.7, 0.15, 0.15), compression="none")
            elapsed = time.perf_counter() - t0
            signals, labels, metadata = load_signal_file(path)
        self._data["signals"] = signals
        self._data["labels"] = [FAULT_TYPES[k] if 0 <= k < len(FAULT_TYPES) else str(k) for k in labels.tolist()]
        self._data["label_ids"] = labels
        self._data["metadata"] = [SignalMeta(m or {}) for m in (metadata or [None] * len(labels))]
        self._data["statistics"] = g._statistics(elapsed)

    def __getitem__(self, key):
        if key in self._LAZY or key == "label_ids":
            self._materialize()
        return self._data[key]

    def __iter__(self):
        return iter(("signals", "metadata", "labels", "config", "statistics"))

    def __len__(self):
        return 5

    @property
    def generated(self):
        """Whether the signals are in memory already."""
        return "signals" in self._data

    def __repr__(self):
        s = self._data["statistics"]
        state = "in memory" if self.generated else "not generated yet"
        return f"GeneratedDataset({s['total_signals']} signals of {s['signal_length']} samples, {state})"


class SignalGenerator:
    """Generates vibration signals of the 11 fault classes (see the module documentation)."""

    def __init__(self, config=None, compression="gzip", compression_opts=4, threads=0):
        self.config = config
        self.num_signals_per_fault = int(_first(config, ("num_signals_per_fault", "per_class"), 100))
        self.fs = float(_first(config, ("signal.fs", "fs", "sampling_rate"), SAMPLING_RATE))
        n = _first(config, ("signal.N", "N", "signal_length"))
        duration = _first(config, ("signal.T", "T"))
        if n is None:
            n = round(float(duration) * self.fs) if duration else 102400
        self.signal_length = int(n)
        self.speed_hz = float(_first(config, ("signal.Omega_base", "Omega_base", "speed_hz"), 60.0))
        seed = 42
        if config is not None and _has(config, "rng_seed"):
            seed = _lookup(config, "rng_seed")
            seed = secrets.randbits(63) if seed is None else seed
        self.rng_seed = int(seed)
        self.output_dir = _lookup(config, "output_dir", "data/processed")
        self.compression, self.level = compression_args(compression, compression_opts)
        self.threads = threads
        self.fault_types = list(FAULT_TYPES)
        logger.info("Signal Generator initialized: %d Hz, %d samples per signal, %d signals per fault",
                    self.fs, self.signal_length, self.num_signals_per_fault)

    def _statistics(self, elapsed):
        total = self.num_signals_per_fault * len(FAULT_TYPES)
        return {"total_signals": total, "num_faults": len(FAULT_TYPES), "signal_length": self.signal_length,
                "sampling_rate": self.fs, "generation_time_s": elapsed,
                "signals_per_second": (total / elapsed) if elapsed else None}

    def _generate(self, path, ratios, compression=None, progress=None):
        return _h5ml.generate(str(path), per_class=self.num_signals_per_fault, length=self.signal_length,
                              rate=self.fs, speed=self.speed_hz, seed=self.rng_seed,
                              ratios=tuple(float(r) for r in ratios), compression=compression or self.compression,
                              level=self.level, threads=self.threads, progress=progress)

    def generate_dataset(self):
        """A GeneratedDataset: signals, labels and metadata are generated on first access."""
        return GeneratedDataset(self)

    def save_dataset(self, dataset, output_dir=None, format="mat", train_val_test_split=(0.7, 0.15, 0.15)):
        """Saves the dataset as 'hdf5' (output_dir/dataset.h5), 'mat' (one .mat file per
        signal) or 'both'. Returns {'hdf5': path} and/or {'mat_dir': path}."""
        if format not in ("mat", "hdf5", "both"):
            raise ValueError(f"Unknown format: {format!r} (expected 'mat', 'hdf5' or 'both')")
        output_dir = Path(output_dir if output_dir is not None else self.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        if format in ("mat", "both"):
            mat_dir = output_dir if format == "mat" else output_dir / "mat_files"
            mat_dir.mkdir(exist_ok=True)
            self._save_mat(dataset, mat_dir)
            paths["mat_dir"] = mat_dir
        if format in ("hdf5", "both"):
            path = output_dir / "dataset.h5"
            logger.info("Saving HDF5 file to: %s", path)
            paths["hdf5"] = self._save_hdf5(dataset, path, train_val_test_split)
        return paths

    def _save_hdf5(self, dataset, path, ratios):
        if isinstance(dataset, GeneratedDataset) and dataset._generator is self and not dataset.generated:
            t0 = time.perf_counter()
            self._generate(path, ratios)
            dataset._data["statistics"] = self._statistics(time.perf_counter() - t0)
            return path
        signals, labels, metadata = _dataset_arrays(dataset)
        splits = split_indices(labels, ratios, True, self.rng_seed)
        attrs = {"sampling_rate": int(self.fs) if self.fs == int(self.fs) else self.fs,
                 "generation_date": datetime.now().isoformat(), "split_ratios": [float(r) for r in ratios],
                 "stratified": True, "random_seed": self.rng_seed, "rng_seed": self.rng_seed}
        write_signal_cache(path, signals, labels, metadata, compression=self.compression, compression_opts=self.level,
                           splits=splits, attrs=attrs, class_names=FAULT_TYPES)
        return path

    def _save_mat(self, dataset, mat_dir):
        from scipy.io import savemat

        signals, labels, metadata = _dataset_arrays(dataset)
        per_fault = self.num_signals_per_fault
        for i, (signal, label) in enumerate(zip(signals, labels)):
            name = FAULT_TYPES[label] if 0 <= label < len(FAULT_TYPES) else str(label)
            meta = dict(metadata[i]) if metadata is not None and metadata[i] is not None else {}
            suffix = "_aug" if meta.get("is_augmented") else ""
            savemat(mat_dir / f"{name}_{i % per_fault + 1:03d}{suffix}.mat",
                    {"x": np.asarray(signal, dtype=np.float64), "fs": self.fs, "fault": name, "metadata": meta},
                    do_compression=True)
        logger.info("Saved %d .mat files to %s", len(labels), mat_dir)


def _has(config, name):
    return name in config if isinstance(config, Mapping) else hasattr(config, name)


def _dataset_arrays(dataset):
    """(signals, integer labels, metadata dicts or None) of a generated or user dataset."""
    if isinstance(dataset, GeneratedDataset):
        return dataset["signals"], dataset["label_ids"], dataset["metadata"]
    signals = dataset["signals"]
    signals = np.asarray(signals) if isinstance(signals, list) else signals
    if len(signals) == 0:
        raise ValueError("Cannot save empty dataset - no signals generated")
    raw = list(dataset["labels"])
    if raw and isinstance(raw[0], str):
        unknown = set(raw) - set(FAULT_TYPES)
        if unknown:
            raise ValueError(f"Unknown fault types in dataset: {unknown}. Valid types: {FAULT_TYPES}")
        labels = np.array([FAULT_TYPES.index(x) for x in raw], dtype=np.int64)
    else:
        labels = np.asarray(raw, dtype=np.int64)
    metadata = dataset.get("metadata")
    if metadata is not None:
        metadata = [_meta_dict(m) for m in metadata]
    return signals, labels, metadata or None


def _meta_dict(m):
    import dataclasses

    if m is None or isinstance(m, dict):
        return m
    if dataclasses.is_dataclass(m):
        return dataclasses.asdict(m)
    return dict(vars(m))

