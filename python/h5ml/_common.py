"""Helpers shared by the Python modules of h5ml (not public).

- `logger`: the "h5ml" logger every warning of the package goes to, and `log_callback`, the
  `log(level, message)` callable the extension's writers take (1 = warning, 2 = info).
- `compression_args`: the original tools' (compression, compression_opts) turned into the
  extension's (compression, level), without their defect (a level passed along with lzf or
  no compression made h5py raise); h5ml's compression profiles ("fast", "balanced",
  "small") are accepted as compressions too.
- `to_json`: json.dumps that also takes numpy scalars and arrays, paths, dates and
  dataclasses (what metadata dicts of ML pipelines hold).
- `index_of`: an index as an int, for `__getitem__`.
"""
import dataclasses
import datetime
import json
import logging
import operator
import os
from pathlib import PurePath

import numpy as np

logger = logging.getLogger("h5ml")

FAULT_TYPES = [
    "sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation", "usure",
    "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu",
]
SPLITS = ("train", "val", "test")


def log_callback(level, message):
    logger.log(logging.WARNING if level <= 1 else logging.INFO, message)


PROFILES = ("fast", "balanced", "small")  # and "none": h5ml.h, section 2


def compression_args(compression, compression_opts, default_level=4):
    """(compression, compression_opts) of h5py's create_dataset -> (name, level) for the
    extension. None and "none" mean no compression; the level only matters for gzip. A
    profile ("fast": lzf + shuffle, "balanced": shuffle + gzip 4, "small": shuffle + gzip 9)
    sets its own level: compression_opts is ignored with it (level 0 = the profile's)."""
    if compression is None:
        return "none", default_level
    name = str(compression).lower()
    if name == "none":
        return "none", default_level
    if name == "lzf":
        return "lzf", default_level
    if name == "gzip":
        return "gzip", default_level if compression_opts is None else int(compression_opts)
    if name in PROFILES:
        return name, 0
    raise ValueError(f"Unsupported compression: {compression!r} (expected 'gzip', 'lzf', 'none', None or a profile: "
                     "'fast', 'balanced', 'small')")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def to_json(value, **kwargs):
    return json.dumps(value, default=_json_default, **kwargs)


def json_object_text(value, what="metadata"):
    """A per-item metadata value (dict, JSON object text or None) as JSON text or None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    if isinstance(value, dict) or dataclasses.is_dataclass(value):
        return to_json(value)
    raise TypeError(f"{what} must be a dict (or None), got {type(value).__name__}")


def index_of(idx):
    try:
        return operator.index(idx)
    except TypeError:
        if getattr(idx, "ndim", None) == 0 or getattr(idx, "shape", None) == ():
            return operator.index(idx.item())
        raise


def fspath(path):
    return os.fspath(path)


# Handles a forked child inherited from its parent: kept alive, never closed, so that the
# child never acts on HDF5 state it shares with the parent.
_INHERITED_HANDLES = []


class PerProcessHandle:
    """Mixin of the torch datasets: a file handle opened lazily in each process (by the
    class's `_open_handle()`), never used across fork, dropped when pickled (so the dataset
    travels to DataLoader workers under fork and spawn without handles or locks)."""

    _reader = None
    _pid = None

    def _get_reader(self):
        pid = os.getpid()
        if self._reader is None or self._pid != pid:
            if self._reader is not None:
                _INHERITED_HANDLES.append(self._reader)
            self._reader = self._open_handle()
            self._pid = pid
        return self._reader

    def close(self):
        """Closes this process's handle (a later access reopens it)."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_pid"] = None
        return state
