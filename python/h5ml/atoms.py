"""Atomistic datasets: the MLFF_Distiller HDF5DatasetWriter API on libh5ml, plus readers.

Writing (the original tool's calls, defaults, exceptions and messages):

    with HDF5DatasetWriter("dataset.h5", compression="gzip", compression_opts=4) as writer:
        writer.add_structure(atoms, energy, forces, stress=None, metadata={"source": "md"})
        writer.add_batch(atoms_list, energies, forces_list, stresses=None)
        writer.finalize(extra_metadata={"teacher_model": "orb-v2"})  # or at the end of `with`

    convert_pickle_to_hdf5("structures.pkl", "dataset.h5")

Differences from the original, all deliberate:
- `compression="lzf"` or None works (the original passed compression_opts along and crashed);
  `mode="a"` and `mode="append"` both append.
- `compression` also takes h5ml's profiles: "fast" (lzf + shuffle), "balanced" (shuffle +
  gzip 4, what "gzip" gives by default) and "small" (shuffle + gzip 9).
- `dedup=True` skips structures identical to one already in the file (numbers, positions,
  cell and pbc, bit for bit), counted in `stats()["deduplicated"]`.
- Leaving a `with` block by an exception still finalizes, so everything added before it is
  kept in a valid file; the exception propagates unchanged.
- A writer killed mid-run leaves a file holding everything up to its last checkpoint.
- Warnings (atoms closer than 0.5 A, |F| above 50 eV/A, a second finalize()) go to the
  `logging` logger "h5ml".

Reading:
- `HDF5DatasetReader(path)`: len(), `get(i)` (dict of numpy arrays), `get_atoms(i)`
  (ase.Atoms with a SinglePointCalculator), iteration, `read_batch(indices)` (flat arrays of
  any set of structures, in the order asked), `metadata`.
- `AtomsDataset(path, transform=None)`: a torch Dataset for DataLoader workers (fork and
  spawn); `collate_atoms` batches its samples into concatenated atoms plus a `batch` vector.

torch is imported only when AtomsDataset or collate_atoms is used; ase only by get_atoms and
convert_pickle_to_hdf5.
"""
import math
import os
import pickle
import re
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from . import _h5ml
from ._common import (PerProcessHandle, compression_args, fspath, index_of, json_object_text, log_callback, logger,
                      to_json)

__all__ = ["HDF5DatasetWriter", "HDF5DatasetReader", "AtomsDataset", "collate_atoms", "convert_pickle_to_hdf5"]

_APPEND_MODES = ("a", "append", "r+")
_PROGRESS_MIN = 1000  # structures: below this add_batch shows no progress bar
_BLOCK = 8192  # structures per library call of add_batch
_VOIGT = (0, 4, 8, 5, 2, 1)  # xx yy zz yz xz xy in a flattened 3x3 tensor


class _BatchItemError(Exception):
    """A structure of a batch rejected on the Python side (before reaching the library)."""

    def __init__(self, exc_type, message):
        super().__init__(message)
        self.exc_type = exc_type


def _stress_row(stress, validate):
    """A stress (6 Voigt or 3x3) as a Voigt row; the checks of the library on the values."""
    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (6,):
        return s
    if s.shape in ((3, 3), (9,)):
        flat = s.reshape(9)
        if validate and not np.isfinite(flat).all():
            raise _BatchItemError(ValueError, "Stress contains " + ("NaN" if np.isnan(flat).any() else "Inf"))
        return flat[list(_VOIGT)]
    raise _BatchItemError(ValueError, f"Stress shape {s.shape} doesn't match (6,) or (3, 3)")


def _forces_array(forces, natoms, validate):
    f = np.asarray(forces, dtype=np.float64)
    if f.shape == (natoms, 3):
        return f
    if not validate and f.size == 3 * natoms:
        return f.reshape(natoms, 3)
    raise _BatchItemError(ValueError, f"Forces shape {f.shape} doesn't match atoms ({natoms}, 3)")


def _energy_value(energy):
    try:
        return float(energy)
    except (TypeError, ValueError):
        raise _BatchItemError(ValueError, f"Invalid energy: {energy}") from None


def _atoms_arrays(atoms):
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    return (numbers, np.asarray(atoms.positions, dtype=np.float64).reshape(len(numbers), 3),
            np.asarray(atoms.cell, dtype=np.float64).reshape(3, 3), np.asarray(atoms.pbc, dtype=bool).reshape(3))


def _check_len(name, seq, n):
    if seq is not None and len(seq) != n:
        raise ValueError(f"Number of {name} ({len(seq)}) doesn't match number of structures ({n})")


class HDF5DatasetWriter:
    """Writes structures with energies, forces and optional stress to an HDF5 file (SPEC
    section 1 layout), one at a time or in batches, compressed, validated, appendable.

    Args:
        output_path: the file to write.
        compression: "gzip" (default), "lzf", "none" or None, or a compression profile:
            "fast" (lzf + shuffle), "balanced" (shuffle + gzip 4), "small" (shuffle + gzip 9).
        compression_opts: gzip level 1-9 (default 4) of compression="gzip"; ignored by the
            other compressions and by the profiles (they set their own level).
        mode: "w" (create or replace; an existing file is replaced only once the new one is
            finalized) or "a" / "append" (add to an existing file, created if missing). The
            output directory is created if needed.
        validate: check every structure (NaN/Inf, shapes); False turns every check off.
        dedup: skip a structure identical to one already in the file (same atomic numbers,
            positions, cell and pbc, bit for bit; energy, forces, stress and metadata are not
            compared, the first one written is kept), including the structures the file held
            before an append and earlier ones of the same batch. Skipped structures are
            counted in stats()["deduplicated"]. Costs 32-64 bytes of memory per structure.
        **options: passed to the extension's Writer: shuffle, chunk_atoms, chunk_structures,
            checkpoint_ms, threads, access ("sequential" or "shuffled": how the file will be
            read; "shuffled" makes smaller compressed chunks for random-order training reads).
    """

    def __init__(self, output_path, compression="gzip", compression_opts=4, mode="w", validate=True, dedup=False,
                 **options):
        if mode not in ("w",) + _APPEND_MODES:
            raise ValueError(f"Invalid mode: {mode!r} (expected 'w', 'a' or 'append')")
        self.output_path = Path(output_path)
        self.compression = compression
        self.compression_opts = compression_opts
        self.mode = mode
        self.validate = bool(validate)
        self.dedup = bool(dedup)
        name, level = compression_args(compression, compression_opts)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _h5ml.Writer(fspath(self.output_path), mode="a" if mode in _APPEND_MODES else "w",
                                    compression=name, level=level, validate=self.validate, log=log_callback,
                                    dedup=self.dedup, **options)
        self._finalized = False
        self._final_stats = None

    # ---- state ----

    @property
    def finalized(self):
        return self._finalized

    def stats(self):
        """dict(structures, atoms, added, added_atoms, checkpoints, warnings, dropped,
        deduplicated): `added` counts the structures written through this writer, and
        `deduplicated` those skipped as duplicates (dedup=True)."""
        return dict(self._final_stats) if self._final_stats is not None else self._writer.stats()

    @property
    def n_structures(self):
        """Structures in the file (including those there before an append)."""
        return self.stats()["structures"]

    num_structures = n_structures

    @property
    def n_atoms(self):
        return self.stats()["atoms"]

    def __len__(self):
        return self.n_structures

    def _check_open(self):
        if self._finalized:
            raise RuntimeError("Cannot add structures after finalize() has been called")

    # ---- adding ----

    def add_structure(self, atoms, energy, forces, stress=None, metadata=None):
        """Adds one structure (an ase.Atoms) with its energy (eV), forces (natoms x 3, eV/A),
        optional stress (6 Voigt xx,yy,zz,yz,xz,xy or 3x3) and optional metadata (a dict,
        stored as JSON in /labels/info). Raises ValueError for rejected data (nothing written)
        and RuntimeError after finalize()."""
        self._check_open()
        numbers, positions, cell, pbc = _atoms_arrays(atoms)
        try:
            e = _energy_value(energy)
            f = _forces_array(forces, len(numbers), self.validate)
            s = None
            if stress is not None:
                s = np.asarray(stress, dtype=np.float64)
                if s.shape == (9,):
                    s = s.reshape(3, 3)
                elif s.shape not in ((6,), (3, 3)):
                    raise _BatchItemError(ValueError, f"Stress shape {s.shape} doesn't match (6,) or (3, 3)")
        except _BatchItemError as err:
            raise err.exc_type(str(err)) from None
        self._writer.add(numbers, positions, e, f, cell=cell, pbc=pbc, stress=s,
                         info=json_object_text(metadata))

    def add_batch(self, structures, energies, forces, stresses=None, show_progress=True, metadata=None):
        """Adds many structures at once: the lists are turned into flat arrays and written by
        the library's batch path, in blocks of up to 8192 structures (memory stays bounded;
        a block is gathered while the previous one is written). `stresses` and `metadata`
        may hold None entries. If structure k is rejected, structures 0..k-1 are written and
        the error names k ("Invalid energy: nan (structure 12 of the batch)"). A progress bar
        (tqdm) is shown for batches of 1000 structures or more when show_progress is true."""
        self._check_open()
        n = len(structures)
        _check_len("energies", energies, n)
        _check_len("forces", forces, n)
        _check_len("stresses", stresses, n)
        _check_len("metadata entries", metadata, n)
        if n == 0:
            return
        bar = _progress_bar(n, show_progress)
        block = _BLOCK if bar is None else max(256, min(_BLOCK, math.ceil(n / 50)))
        pool = ThreadPoolExecutor(1, thread_name_prefix="h5ml-add-batch") if n > block else None
        pending = None  # (future writing the previous block, its size)
        try:
            for start in range(0, n, block):
                stop = min(n, start + block)
                arrays, error = self._gather(structures, energies, forces, stresses, metadata, start, stop)
                if pending is not None:
                    (future, done), pending = pending, None
                    future.result()  # an error of the previous block comes first
                    _advance(bar, done)
                if arrays is not None and error is None and stop < n and pool is not None:
                    pending = (pool.submit(self._write_batch, arrays, start), stop - start)
                    continue
                if arrays is not None:
                    self._write_batch(arrays, start)
                if error is not None:
                    k, err = error
                    raise err.exc_type(f"{err} (structure {k} of the batch)")
                _advance(bar, stop - start)
        finally:
            if pending is not None:  # leaving by an exception: let the write in flight finish
                wait([pending[0]])
            if pool is not None:
                pool.shutdown()
            if bar is not None:
                bar.close()

    def _gather(self, structures, energies, forces, stresses, metadata, start, stop):
        """Flat arrays of structures [start, stop) and the first error, as (k, error): the
        arrays then hold the structures before k (None if there are none)."""
        items = [structures[k] for k in range(start, stop)]
        counts = [len(a) for a in items]
        m, total = len(items), sum(counts)
        numbers = np.empty(total, dtype=np.int64)
        positions = np.empty((total, 3))
        force = np.empty((total, 3))
        cells = np.empty((m, 3, 3))
        pbc = np.empty((m, 3), dtype=bool)
        stress = np.zeros((m, 6)) if stresses is not None else None
        mask = np.zeros(m, dtype=bool)
        infos = [] if metadata is not None else None
        energy, error = _energies(energies, start, stop)
        limit = m if error is None else error[0] - start
        o = 0
        for j in range(limit):
            k, a, n = start + j, items[j], counts[j]
            try:
                f = forces[k]
                if getattr(f, "shape", None) != (n, 3):
                    f = _forces_array(f, n, self.validate)
                if stress is not None and stresses[k] is not None:
                    stress[j] = _stress_row(stresses[k], self.validate)
                    mask[j] = True
                if infos is not None:
                    infos.append(json_object_text(metadata[k]))
                numbers[o:o + n] = a.numbers
                positions[o:o + n] = a.positions
                force[o:o + n] = f
                cells[j] = getattr(a.cell, "array", a.cell)
                pbc[j] = a.pbc
            except _BatchItemError as err:
                error, limit = (k, err), j
                break
            except (TypeError, ValueError) as err:
                error, limit = (k, _BatchItemError(type(err), str(err))), j
                break
            o += n
        if limit == 0:
            return None, error
        arrays = dict(natoms=np.asarray(counts[:limit], dtype=np.int64), numbers=numbers[:o], positions=positions[:o],
                      energies=energy[:limit], forces=force[:o], cells=cells[:limit], pbc=pbc[:limit],
                      info=infos[:limit] if infos is not None else None)
        if stress is not None:
            arrays["stress"] = stress[:limit]
            arrays["stress_mask"] = mask[:limit]
        return arrays, error

    def _write_batch(self, arrays, offset):
        try:
            self._writer.add_batch(**arrays)
        except ValueError as err:  # renumber "(structure k of the batch)" for the whole call
            msg = re.sub(r"\(structure (\d+) of the batch\)",
                         lambda m: f"(structure {int(m.group(1)) + offset} of the batch)", str(err))
            raise type(err)(msg) from None

    # ---- finishing ----

    def checkpoint(self):
        """Makes everything added so far durable against a killed process."""
        self._check_open()
        self._writer.checkpoint()

    def finalize(self, extra_metadata=None):
        """Writes the /metadata attributes (counts, statistics, format, timestamps, and
        `extra_metadata`: strings, numbers, booleans and lists of numbers as attributes,
        dicts and anything else JSON-serializable as JSON strings) and closes the file.
        A second call only logs a warning."""
        if self._finalized:
            logger.warning("finalize() has already been called on %s", self.output_path)
            return
        for key, value in (extra_metadata or {}).items():
            _set_meta(self._writer, str(key), value)
        self._writer.finalize()
        self._final_stats = self._writer.stats()
        self._writer.close()
        self._finalized = True
        logger.info("Finalized %s: %d structures, %d atoms", self.output_path,
                    self._final_stats["structures"], self._final_stats["atoms"])

    def close(self):
        """Finalizes (if not done yet) and closes."""
        if not self._finalized:
            self.finalize()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._finalized:
            return False
        if exc_type is None:
            self.finalize()
            return False
        try:  # keep what was written before the exception, never mask it
            self.finalize()
        except Exception as err:  # noqa: BLE001 - the block's exception is the one to report
            logger.error("could not finalize %s after an exception: %s", self.output_path, err)
        return False

    def __repr__(self):
        state = "finalized" if self._finalized else "open"
        return f"HDF5DatasetWriter({str(self.output_path)!r}, mode={self.mode!r}, {state})"


def _set_meta(writer, key, value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (str, bool, int, float)):
        writer.meta(key, value)
        return
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
        arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if arr.ndim == 1 and arr.dtype.kind in "iuf":
            writer.meta(key, arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float64).tolist())
            return
    writer.meta_json(key, to_json(value))


def _energies(energies, start, stop):
    """Energies [start, stop) as float64 and the first one that is not a number, as (k, error)."""
    part = energies[start:stop]
    try:
        values = np.asarray(part, dtype=np.float64)
        if values.shape == (stop - start,):
            return values, None
    except (TypeError, ValueError):
        pass
    values = []
    for k in range(start, stop):
        try:
            values.append(_energy_value(energies[k]))
        except _BatchItemError as err:
            return np.asarray(values, dtype=np.float64), (k, err)
    return np.asarray(values, dtype=np.float64), None


def _advance(bar, count):
    if bar is not None:
        bar.update(count)


def _progress_bar(n, show_progress):
    if not show_progress or n < _PROGRESS_MIN:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=n, desc="Writing structures", unit="struct")


# ---- reading ------------------------------------------------------------------------------


class HDF5DatasetReader:
    """Reads an atomistic dataset (written by h5ml or by the original h5py tools).

    `reader[i]` / `reader.get(i)` -> dict: numbers int64 (n,), positions float64 (n, 3),
    cell float64 (3, 3), pbc bool (3,), energy float, forces float32 (n, 3), stress float64
    (6,) or None, info (JSON text or None), metadata (info parsed, or None), index.
    Negative indices count from the end. Iterating yields these dicts in order.

    `threads` (0: one per core) decode the chunks of read_batch; `cache` is the memory in bytes
    for decompressed chunks kept between reads (None: the library's 256 MiB).

    Not for use across fork(): give DataLoader workers an AtomsDataset instead (this object
    pickles by path, so spawn works).
    """

    def __init__(self, path, threads=0, cache=None):
        self.path = Path(path)
        self.threads = threads
        self.cache = cache
        self._reader = _h5ml.Reader(fspath(self.path), cache=cache, threads=threads)

    def __len__(self):
        return self._reader.count

    @property
    def num_structures(self):
        return self._reader.count

    @property
    def num_atoms(self):
        return self._reader.total_atoms

    @property
    def metadata(self):
        """The /metadata attributes as a dict."""
        return self._reader.metadata()

    def layout(self):
        return self._reader.layout()

    def refresh(self):
        """Follows a file a writer is appending to: takes the file's state as it is now and
        returns the new number of structures. While an h5ml writer appends, structures appear
        at its checkpoints, whole, and the number never decreases. On error (OSError) the
        reader keeps its previous state."""
        return self._reader.refresh()

    def _index(self, idx):
        i = index_of(idx)
        n = self._reader.count
        return i + n if -n <= i < 0 else i

    def get(self, idx):
        i = self._index(idx)
        d = self._reader.get(i)
        d["index"] = i
        d["metadata"] = _loads(d.get("info"))
        return d

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return [self.get(i) for i in range(*idx.indices(len(self)))]
        return self.get(idx)

    def __iter__(self):
        for i in range(len(self)):
            yield self.get(i)

    def get_atoms(self, idx):
        """Structure idx as an ase.Atoms with a SinglePointCalculator holding energy, forces
        (and stress when stored); its metadata goes to atoms.info (per-atom columns kept under
        "__arrays__" go back to atoms.arrays)."""
        return _to_atoms(self.get(idx))

    def iter_atoms(self):
        for i in range(len(self)):
            yield self.get_atoms(i)

    def read(self, start=0, count=None):
        """Structures [start, start+count) as flat arrays (the extension's Reader.read)."""
        n = len(self)
        count = n - start if count is None else count
        return self._reader.read(start, count)

    def read_batch(self, indices):
        """Structures `indices` (any order, repeats allowed) as flat arrays in that order:
        natoms (B,), numbers (A,), positions (A, 3), cells (B, 3, 3), pbc (B, 3), energies
        (B,), forces float32 (A, 3), stress (B, 6), stress_mask (B,), plus indices (B,),
        batch (A,) (each atom's position in the batch) and ptr (B+1,) (atom offsets).
        Negative indices count from the end. One library call reads the whole batch (each
        chunk involved read and decoded once)."""
        return read_batch(self._reader, indices)

    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __reduce__(self):
        if self.threads == 0 and self.cache is None:
            return (HDF5DatasetReader, (fspath(self.path),))
        return (HDF5DatasetReader, (fspath(self.path), self.threads, self.cache))

    def __repr__(self):
        return f"HDF5DatasetReader({str(self.path)!r}, {len(self)} structures)"


def _loads(text):
    import json
    return json.loads(text) if text else None


def _to_atoms(d):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])
    info = dict(d["metadata"] or {})
    arrays = info.pop("__arrays__", None) or {}
    atoms.info.update(info)
    for name, values in arrays.items():
        values = np.asarray(values)
        if len(values) == len(atoms) and name not in atoms.arrays:
            atoms.new_array(name, values)
    labels = dict(energy=float(d["energy"]), forces=np.asarray(d["forces"], dtype=np.float64))
    if d.get("stress") is not None:
        labels["stress"] = np.asarray(d["stress"], dtype=np.float64)
    atoms.calc = SinglePointCalculator(atoms, **labels)
    return atoms


def read_batch(reader, indices):
    """read_batch of an extension Reader (see HDF5DatasetReader.read_batch): negative indices
    counted from the end, then one Reader.read_indices call for the whole batch."""
    n = reader.count
    asked = np.asarray(indices, dtype=np.int64).reshape(-1)
    idx = np.where(asked < 0, asked + n, asked)
    bad = np.nonzero((idx < 0) | (idx >= n))[0]
    if bad.size:
        raise IndexError(f"Index {asked[bad[0]]} out of range [0, {n})")
    out = reader.read_indices(idx)
    natoms = out["natoms"]
    out["indices"] = idx
    out["ptr"] = np.concatenate(([0], np.cumsum(natoms))).astype(np.int64)
    out["batch"] = np.repeat(np.arange(len(natoms), dtype=np.int64), natoms)
    return out


# ---- torch ------------------------------------------------------------------------------

# Keys of AtomsDataset batches (collate_atoms' names) for the reader's flat arrays.
_BATCH_KEYS = {"numbers": "atomic_numbers", "positions": "positions", "forces": "forces", "cells": "cell",
               "pbc": "pbc", "energies": "energy", "stress": "stress", "stress_mask": "stress_mask",
               "natoms": "natoms", "indices": "index", "batch": "batch", "ptr": "ptr"}
_ATOM_KEYS = ("atomic_numbers", "positions", "forces")
_FLOAT_KEYS = ("positions", "forces", "cell", "energy", "stress")


class _AtomsDatasetImpl(PerProcessHandle):
    """A map-style dataset of the structures of an atomistic HDF5 file, for torch DataLoaders.

    dataset[i] -> dict of torch tensors: atomic_numbers int64 (n,), positions float64 (n, 3),
    forces float32 (n, 3), cell float64 (3, 3), pbc bool (3,), energy float64 (), stress
    float64 (6,) (zeros when absent), stress_mask bool (), natoms int64 (), index int64 ();
    with `transform`, transform(that dict) instead. `float_dtype` (e.g. torch.float32)
    converts every floating tensor. Negative indices count from the end.

    dataset[list_of_indices] -> one batch in collate_atoms' format, read with one library
    call (no transform): with
    `DataLoader(ds, sampler=BatchSampler(RandomSampler(ds), 64, False), batch_size=None)`
    shuffled batches cost one read each.

    `threads` (0: one per core) decode the chunks of a batch read; with several DataLoader
    workers, threads=1 keeps each worker on one core. `cache`: bytes of decompressed chunks
    each process keeps between reads (None: the library's 256 MiB).

    The file is opened lazily in each process (on first access there) and never shared
    across fork; pickling drops the handle, so DataLoader workers work under fork and spawn.
    """

    threads = 0  # defaults of datasets pickled before these settings existed
    cache = None

    def __init__(self, path, transform=None, float_dtype=None, threads=0, cache=None):
        self.path = fspath(path)
        self.transform = transform
        self.float_dtype = float_dtype
        self.threads = threads
        self.cache = cache
        r = _h5ml.Reader(self.path, cache=cache, threads=threads)  # also checks the settings
        try:
            self._len = r.count
            self.num_atoms = r.total_atoms
        finally:
            r.close()

    def __len__(self):
        return self._len

    def _open_handle(self):
        return _h5ml.Reader(self.path, cache=self.cache, threads=self.threads)

    def refresh(self):
        """Follows a file a writer is appending to: takes the file's state as it is now (this
        process's handle, if open, is refreshed) and returns the new length. DataLoader
        workers copy the dataset when an epoch starts (unless persistent_workers=True), so
        they see the new length from the next epoch."""
        r = self._reader if self._reader is not None and self._pid == os.getpid() else None
        if r is not None:
            n = r.refresh()
            self._len, self.num_atoms = n, r.total_atoms
            return n
        r = _h5ml.Reader(self.path, cache=self.cache, threads=self.threads)
        try:
            self._len, self.num_atoms = r.count, r.total_atoms
        finally:
            r.close()
        return self._len

    def __getitem__(self, idx):
        import torch

        if isinstance(idx, (list, tuple, np.ndarray)) or (isinstance(idx, torch.Tensor) and idx.ndim == 1):
            return self.get_batch(idx)
        i = index_of(idx)
        i = i + self._len if -self._len <= i < 0 else i
        d = self._get_reader().get(i)
        stress = d["stress"]
        tensor = torch.from_numpy
        sample = {
            "atomic_numbers": tensor(d["numbers"]), "positions": tensor(d["positions"]),
            "forces": tensor(d["forces"]), "cell": tensor(d["cell"]), "pbc": tensor(d["pbc"]),
            "energy": tensor(np.array(d["energy"], dtype=np.float64)),
            "stress": tensor(stress if stress is not None else np.zeros(6)),
            "stress_mask": tensor(np.array(stress is not None)),
            "natoms": tensor(np.array(len(d["numbers"]), dtype=np.int64)),
            "index": tensor(np.array(i, dtype=np.int64)),
        }
        sample = self._cast(sample)
        return self.transform(sample) if self.transform is not None else sample

    def get_batch(self, indices):
        """Structures `indices` (any order, repeats allowed; negative ones count from the
        end) as one batch in collate_atoms' format, read with one library call."""
        import torch

        if isinstance(indices, torch.Tensor):
            indices = indices.numpy()
        flat = read_batch(self._get_reader(), indices)
        return self._cast({_BATCH_KEYS.get(k, k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in flat.items()})

    def _cast(self, d):
        if self.float_dtype is not None:
            for k in _FLOAT_KEYS:
                d[k] = d[k].to(self.float_dtype)
        return d

    def __repr__(self):
        return f"AtomsDataset({self.path!r}, {self._len} structures)"


def collate_atoms(samples):
    """Batches AtomsDataset samples for a DataLoader (collate_fn=collate_atoms): per-atom
    tensors (atomic_numbers, positions, forces) concatenated, per-structure ones stacked, plus
    batch (each atom's structure position in the batch, int64) and ptr (B+1 atom offsets).
    Keys other than the dataset's are stacked when they are tensors of equal shape, else
    returned as lists."""
    import torch

    if not samples:
        return {}
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in _ATOM_KEYS:
            out[key] = torch.cat(values)
        elif all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        else:
            out[key] = values
    if "natoms" in out and isinstance(out["natoms"], torch.Tensor):
        natoms = out["natoms"]
    else:
        natoms = torch.tensor([len(s["atomic_numbers"]) for s in samples], dtype=torch.int64)
    out["batch"] = torch.repeat_interleave(torch.arange(len(samples), dtype=torch.int64), natoms)
    out["ptr"] = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(natoms, 0)])
    return out


def _make_atoms_dataset():
    from torch.utils.data import Dataset

    cls = type("AtomsDataset", (_AtomsDatasetImpl, Dataset),
               {"__module__": __name__, "__qualname__": "AtomsDataset", "__doc__": _AtomsDatasetImpl.__doc__})
    globals()["AtomsDataset"] = cls
    return cls


def __getattr__(name):
    # AtomsDataset subclasses torch's Dataset; it is made on first use so that the writer
    # and the reader never import torch. Pickle finds it here too (spawned workers).
    if name == "AtomsDataset":
        return _make_atoms_dataset()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- conversion ---------------------------------------------------------------------------

def _load_structures(pickle_path):
    with open(pickle_path, "rb") as fh:
        data = pickle.load(fh)
    labels = {}
    if isinstance(data, dict):
        for key in ("energies", "forces", "stresses"):
            if key in data:
                labels[key] = data[key]
        for key in ("structures", "atoms", "frames"):
            if key in data:
                data = data[key]
                break
        else:
            raise ValueError(f"{pickle_path}: a dict pickle needs a 'structures' or 'atoms' entry")
    if hasattr(data, "positions") and hasattr(data, "numbers"):  # a single Atoms
        data = [data]
    return list(data), labels


def _calc_label(atoms, k, what):
    if atoms.calc is None:
        raise ValueError(f"Structure {k} has no {what}: pass {what}= or attach a calculator to the Atoms")
    return atoms.get_potential_energy() if what == "energies" else atoms.get_forces()


def _calc_stress(atoms):
    if atoms.calc is None or not np.any(atoms.pbc):
        return None
    try:
        return atoms.get_stress(voigt=True)
    except Exception:  # noqa: BLE001 - no stress from this calculator (ASE raises several types)
        return None


def convert_pickle_to_hdf5(pickle_path, hdf5_path, energies=None, forces=None, stresses=None,
                           compression="gzip", show_progress=True, compression_opts=4, extra_metadata=None):
    """Converts a pickle of ase.Atoms (a list, or a dict with "structures"/"atoms" and
    optionally "energies"/"forces"/"stresses") to an HDF5 dataset. Labels not given fall back
    to each Atoms' calculator (energy, forces; stress for periodic structures when the
    calculator has it). Returns the output path."""
    structures, stored = _load_structures(pickle_path)
    energies = energies if energies is not None else stored.get("energies")
    forces = forces if forces is not None else stored.get("forces")
    stresses = stresses if stresses is not None else stored.get("stresses")
    if energies is None:
        energies = [_calc_label(a, k, "energies") for k, a in enumerate(structures)]
    if forces is None:
        forces = [_calc_label(a, k, "forces") for k, a in enumerate(structures)]
    if stresses is None:
        stresses = [_calc_stress(a) for a in structures]
    meta = {"source_file": str(pickle_path)}
    meta.update(extra_metadata or {})
    with HDF5DatasetWriter(hdf5_path, compression=compression, compression_opts=compression_opts) as writer:
        writer.add_batch(structures, energies, forces, stresses=stresses, show_progress=show_progress)
        writer.finalize(extra_metadata=meta)
    logger.info("Converted %d structures from %s to %s", len(structures), pickle_path, hdf5_path)
    return Path(hdf5_path)
