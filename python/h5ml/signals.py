"""Signal caches: the LSTM_PFD CacheManager API on libh5ml.

    cache = CacheManager(cache_dir="./cache")
    cache.cache_dataset(signals, labels, metadata, cache_name="train")          # flat file
    cache.cache_dataset_with_splits(signals, labels, cache_name="ds")           # train/val/test
    signals, labels, metadata = cache.load_cached_dataset("ds")

Files are `cache_dir/{cache_name}.h5` in the layouts of SPEC section 2 (README "Signal
caches"): signals float32 (N, L) compressed, labels int64, metadata one JSON object per
signal. Differences from the original, all deliberate:
- compression "lzf" and None work (the original passed compression_opts=4 along and crashed);
  h5ml's profiles "fast" (lzf + shuffle), "balanced" (shuffle + gzip 4) and "small" (shuffle
  + gzip 9) are accepted as compressions too.
- Splits come from the library's seeded split (`_h5ml.split_assign`), the same as
  `h5ml signals split` for the same labels, ratios and seed; metadata is kept per split, in
  the split's order, with every sample's original index (`indices`). sklearn is not needed.
  `random_seed=None` draws a seed and records it in the file (`random_seed` attribute).
- `load_cached_dataset` reads flat files, split files (the splits put back into the
  original order by their indices; a split file of the original tool, which has none, comes
  back as train + val + test) and files without attributes. Signals come back as float32.
- Signals are written in pieces of about 32 MiB, so any array-like with `.shape` and
  slicing (a numpy memmap, an h5py dataset) is cached without loading it whole.
- NaN/Inf samples are rejected (`allow_nonfinite=True` accepts them).
- A cache is written under a temporary name and moved into place when complete: a failed
  call leaves no half-written file and an existing cache stays as it was.

`compute_cache_key(config)` is the original's: the SHA-256 hex digest of
`json.dumps(config, sort_keys=True)`, so keys of plain JSON configs are unchanged; numpy
values, paths, dates, dataclasses and objects with `to_dict()` are accepted too.
"""
import hashlib
import json
import os
import secrets
from pathlib import Path

import numpy as np

from . import _h5ml
from ._common import FAULT_TYPES, SPLITS, compression_args, fspath, json_object_text, log_callback, logger, to_json

__all__ = ["CacheManager", "cache_dataset_simple", "load_cached_dataset_simple", "load_signal_file",
           "write_signal_cache", "FAULT_TYPES", "NUM_CLASSES", "SAMPLING_RATE"]

NUM_CLASSES = len(FAULT_TYPES)
SAMPLING_RATE = 20480
_PIECE_BYTES = 32 << 20  # signals handed to the library per call


# ---- writing --------------------------------------------------------------------------------

def _as_signals(signals):
    """signals as an array-like with a 2-D shape (lists become numpy arrays; numpy arrays,
    memmaps, h5py datasets and tensors are used as they are, read piece by piece)."""
    if not hasattr(signals, "shape"):
        signals = np.asarray(signals)
    shape = tuple(signals.shape)
    if len(shape) != 2:
        raise ValueError(f"signals must have shape (num_signals, signal_length), got {shape}")
    return signals


def _int_labels(labels, n):
    lab = np.asarray(labels).reshape(-1) if np.ndim(labels) else np.asarray([labels])
    if lab.size != n:
        raise ValueError(f"labels has {lab.size} entries for {n} signals")
    if lab.dtype.kind in "iub":
        return lab.astype(np.int64)
    if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
        return lab.astype(np.int64)
    raise ValueError(f"labels must be integers (got dtype {lab.dtype}); map class names to integers first")


def _take(signals, rows):
    """signals[rows] as float32 or float64 numpy, for numpy arrays and array-likes such as
    h5py datasets (which want increasing indices)."""
    if isinstance(rows, slice) or isinstance(signals, np.ndarray):
        out = np.asarray(signals[rows])
    else:
        order = np.argsort(rows, kind="stable")
        data = np.asarray(signals[rows[order]])
        out = np.empty_like(data)
        out[order] = data
    return out if out.dtype in (np.float32, np.float64) else out.astype(np.float32)


def _add_rows(writer, signals, labels, metadata, rows, split=None):
    """Adds the signals `rows` (an index array, or None for all) in pieces."""
    n = signals.shape[0] if rows is None else len(rows)
    step = max(1, _PIECE_BYTES // (4 * max(1, signals.shape[1])))
    for a in range(0, n, step):
        b = min(n, a + step)
        sel = slice(a, b) if rows is None else rows[a:b]
        idx = range(a, b) if rows is None else sel
        meta = [json_object_text(metadata[int(i)]) for i in idx] if metadata is not None else None
        writer.add(_take(signals, sel), labels[sel], split=split, meta=meta,
                   indices=None if rows is None else np.asarray(sel, dtype=np.int64))


def write_signal_cache(path, signals, labels, metadata=None, cache_name=None, compression="gzip",
                       compression_opts=4, splits=None, attrs=None, class_names=None, allow_nonfinite=False,
                       **options):
    """Writes a flat cache (splits=None) or a split cache (splits = (train, val, test) index
    arrays in storage order) through the extension's SigWriter; `attrs` are extra root
    attributes. Returns the path. Nothing is left behind on error."""
    signals = _as_signals(signals)
    n, length = signals.shape
    labels = _int_labels(labels, n)
    if metadata is not None and len(metadata) != n:
        raise ValueError(f"metadata has {len(metadata)} entries for {n} signals")
    name, level = compression_args(compression, compression_opts)
    writer = _h5ml.SigWriter(fspath(path), length=length, layout="flat" if splits is None else "split",
                             cache_name=cache_name, mode="w", compression=name, level=level,
                             allow_nonfinite=allow_nonfinite, log=log_callback,
                             expect=n if splits is None else [len(r) for r in splits], **options)
    try:
        if splits is None:
            _add_rows(writer, signals, labels, metadata, None)
        else:
            for split, rows in zip(SPLITS, splits):
                _add_rows(writer, signals, labels, metadata, np.asarray(rows, dtype=np.int64), split=split)
        if class_names is not None:
            writer.class_names([str(c) for c in class_names])
        for key, value in (attrs or {}).items():
            writer.attr(key, value)
        writer.finalize()
    except BaseException:
        writer.rollback()
        writer.close()
        raise
    writer.close()
    return Path(path)


def split_indices(labels, split_ratios=(0.7, 0.15, 0.15), stratify=True, random_seed=42):
    """The library's reproducible split of labels in memory: (train, val, test) arrays of
    original indices, in the order a split file stores them (= `h5ml signals split`)."""
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    return _h5ml.split_assign(lab, ratios=tuple(float(r) for r in split_ratios), stratify=bool(stratify),
                              seed=int(random_seed))


# ---- reading --------------------------------------------------------------------------------

def open_signal_reader(path, **options):
    """A SigReader of a flat file, or of the first split present in a split file."""
    p = fspath(path)
    try:
        return _h5ml.SigReader(p, None, **options)
    except ValueError as first:
        for split in SPLITS:
            try:
                return _h5ml.SigReader(p, split, **options)
            except ValueError:
                continue
        raise first


def _read_all(reader):
    sig, lab = reader.read_range(0, reader.count)
    meta = None
    if reader.has_metadata:
        meta = [_loads(reader.metadata(i)) for i in range(reader.count)]
    return sig, lab, meta


def _loads(text):
    return json.loads(text) if text is not None else None


def load_signal_file(path):
    """(signals float32 (N, L), labels int64 (N,), metadata list or None) of a flat or split
    signal file; a split file's signals in their original order when its splits record it."""
    p = fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"Cache not found: {path}")
    first = open_signal_reader(p)
    try:
        if first.layout == "flat":
            return _read_all(first)
        present = list(first.split_counts)
        length = first.length
    finally:
        first.close()
    parts = []
    for split in SPLITS:
        if split in present:
            r = _h5ml.SigReader(p, split)
            try:
                parts.append(_read_all(r) + (r.indices(),))
            finally:
                r.close()
    return _merge_splits(parts, length, path)


def _merge_splits(parts, length, path):
    n = sum(len(p[1]) for p in parts)
    indices = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64)
    in_order = np.array_equal(np.sort(indices), np.arange(n))
    if not in_order:
        logger.info("%s: splits without original indices; returned as train + val + test", path)
        indices = np.arange(n)
    signals = np.empty((n, length), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    signals[indices] = np.concatenate([p[0] for p in parts]) if parts else signals
    labels[indices] = np.concatenate([p[1] for p in parts]) if parts else labels
    metadata = None
    if any(p[2] is not None for p in parts):
        flat = [m for p in parts for m in (p[2] if p[2] is not None else [None] * len(p[1]))]
        metadata = [None] * n
        for i, m in zip(indices.tolist(), flat):
            metadata[i] = m
    return signals, labels, metadata


def signal_file_info(path):
    """Root attributes and shape facts of a signal file, without reading its signals."""
    r = open_signal_reader(path)
    try:
        attrs = r.attrs()
        info = {"layout": r.layout, "signal_length": r.length, "attrs": attrs, "has_metadata": r.has_metadata}
        if r.layout == "flat":
            info["num_signals"] = r.count
            info["datasets"] = sorted(["signals", "labels"] + (["metadata"] if r.has_metadata else []))
        else:
            info["splits"] = dict(r.split_counts)
            info["num_signals"] = sum(r.split_counts.values())
            info["datasets"] = sorted(r.split_counts)
    finally:
        r.close()
    return info


# ---- the original API -----------------------------------------------------------------------

def _format_size(path):
    size = Path(path).stat().st_size
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


class CacheManager:
    """Manage dataset caching with HDF5 (files `cache_dir/{cache_name}.h5`).

    Example:
        >>> cache = CacheManager(cache_dir='./cache')
        >>> cache.cache_dataset(signals, labels, metadata, cache_name='train')
        >>> signals, labels, metadata = cache.load_cached_dataset('train')
    """

    def __init__(self, cache_dir=Path("./cache")):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, cache_name):
        return self.cache_dir / f"{cache_name}.h5"

    def cache_dataset(self, signals, labels, metadata=None, cache_name="dataset", compression="gzip",
                      compression_opts=4, **options):
        """Caches signals (N, L), labels (N,) and optional metadata dicts as a flat file.
        compression: "gzip" (level compression_opts, 1-9), "lzf" or None, or a compression
        profile: "fast" (lzf + shuffle), "balanced" (shuffle + gzip 4), "small" (shuffle +
        gzip 9), which sets its own level (compression_opts is ignored). Returns the path.
        Extra options go to the extension's SigWriter (shuffle, chunk_rows, threads,
        num_classes, allow_nonfinite)."""
        path = self._path(cache_name)
        logger.info("Caching dataset to %s", path)
        write_signal_cache(path, signals, labels, metadata, cache_name=cache_name, compression=compression,
                           compression_opts=compression_opts, **options)
        logger.info("Cached %d signals (%s)", len(signals), _format_size(path))
        return path

    def cache_dataset_with_splits(self, signals, labels, metadata=None, cache_name="dataset",
                                  split_ratios=(0.7, 0.15, 0.15), stratify=True, random_seed=42,
                                  compression="gzip", compression_opts=4, **options):
        """Caches the data split into train/val/test groups (the layout StreamingHDF5Dataset
        reads), stratified by label unless stratify=False, reproducible from random_seed.
        Each split keeps its metadata and its samples' original indices. compression as for
        cache_dataset (profiles included). Returns the path."""
        signals = _as_signals(signals)
        labels = _int_labels(labels, signals.shape[0])
        seed = secrets.randbits(63) if random_seed is None else int(random_seed)
        ratios = tuple(float(r) for r in split_ratios)
        splits = split_indices(labels, ratios, stratify, seed)
        path = self._path(cache_name)
        logger.info("Caching dataset with splits to %s", path)
        attrs = {"split_ratios": list(ratios), "stratified": bool(stratify), "random_seed": seed}
        write_signal_cache(path, signals, labels, metadata, cache_name=cache_name, compression=compression,
                           compression_opts=compression_opts, splits=splits, attrs=attrs, **options)
        logger.info("Cached with splits - Train: %d, Val: %d, Test: %d (%s)", len(splits[0]), len(splits[1]),
                    len(splits[2]), _format_size(path))
        return path

    def load_cached_dataset(self, cache_name):
        """(signals float32 (N, L), labels int64 (N,), metadata list of dicts or None) of a
        cache, flat or split (splits put back in the original order)."""
        path = self._path(cache_name)
        if not path.exists():
            raise FileNotFoundError(f"Cache not found: {path}")
        logger.info("Loading dataset from cache: %s", path)
        signals, labels, metadata = load_signal_file(path)
        logger.info("Loaded %d signals", len(labels))
        return signals, labels, metadata

    def cache_exists(self, cache_name):
        return self._path(cache_name).exists()

    def invalidate_cache(self, cache_name):
        """Deletes a cache file (a warning if there is none)."""
        path = self._path(cache_name)
        if path.exists():
            path.unlink()
            logger.info("Invalidated cache: %s", cache_name)
        else:
            logger.warning("Cache not found: %s", cache_name)

    def list_caches(self):
        """Info dicts (name, path, num_signals, signal_length, cached_at, size_mb) of every
        signal cache in cache_dir, sorted by name."""
        caches = []
        for path in sorted(self.cache_dir.glob("*.h5")):
            try:
                if not _h5ml.is_signal_file(fspath(path)):
                    continue
                caches.append(self._info(path.stem, path, brief=True))
            except Exception as err:  # noqa: BLE001 - an unreadable file is skipped, as the original did
                logger.warning("Could not read cache info from %s: %s", path, err)
        return sorted(caches, key=lambda c: c["name"])

    def get_cache_info(self, cache_name):
        """name, path, num_signals, signal_length, cached_at, compression, size_mb, datasets
        (top-level names), plus layout, splits (name -> count), compression_level,
        num_classes, class_names where the file has them, and attrs (every root attribute)."""
        path = self._path(cache_name)
        if not path.exists():
            raise FileNotFoundError(f"Cache not found: {path}")
        return self._info(cache_name, path, brief=False)

    def _info(self, name, path, brief):
        facts = signal_file_info(path)
        attrs = facts["attrs"]
        info = {"name": name, "path": str(path), "num_signals": attrs.get("num_signals", facts["num_signals"]),
                "signal_length": attrs.get("signal_length", facts["signal_length"]),
                "cached_at": attrs.get("cached_at", attrs.get("generation_date", "unknown")),
                "size_mb": path.stat().st_size / (1024 ** 2)}
        if brief:
            return info
        info["compression"] = attrs.get("compression", "none")
        info["datasets"] = facts["datasets"]
        info["layout"] = facts["layout"]
        if "splits" in facts:
            info["splits"] = facts["splits"]
        for key in ("compression_level", "num_classes", "class_names", "split_ratios", "stratified", "random_seed"):
            if key in attrs:
                info[key] = attrs[key]
        info["attrs"] = attrs
        return info

    def compute_cache_key(self, config):
        """SHA-256 hex digest of the canonical JSON of `config` (the original's key)."""
        return compute_cache_key(config)

    @staticmethod
    def _format_size(path):
        return _format_size(path)


def compute_cache_key(config):
    """SHA-256 hex digest of json.dumps(config, sort_keys=True) (the original algorithm)."""
    return hashlib.sha256(to_json(config, sort_keys=True).encode()).hexdigest()


def cache_dataset_simple(signals, labels, cache_path, metadata=None, compression="gzip", compression_opts=4):
    """Caches signals and labels (and optional metadata) as a flat file at cache_path,
    creating its directory. Returns the path."""
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    write_signal_cache(cache_path, signals, labels, metadata, compression=compression,
                       compression_opts=compression_opts)
    logger.info("Cached %d signals to %s", len(signals), cache_path)
    return cache_path


def load_cached_dataset_simple(cache_path):
    """(signals, labels, metadata or None) of a cache file, flat or split."""
    cache_path = Path(cache_path)
    if not cache_path.exists():
        raise FileNotFoundError(f"Cache not found: {cache_path}")
    return load_signal_file(cache_path)
