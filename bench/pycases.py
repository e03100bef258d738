#!/usr/bin/python3
"""Child program of bench/run.py for the Python-module cases 9-11: one side of one repetition.

    PYTHONPATH=build/python /usr/bin/python3 bench/pycases.py '{"op": ..., ...}'

Prints one JSON object on stdout (seconds and checks). run.py starts one process per side and
repetition, h5ml and its peer alternating, so that neither side inherits the other's state:
an h5ml side never imports h5py and an h5py side never imports h5ml (both would load the same
libhdf5, whose filters and caches they would then share). Inputs are built before the clock
starts and are not timed:

  h5ml_add_structure   HDF5DatasetWriter.add_structure(atoms, energy, forces, stress) per
                       structure, from writer creation to finalize() (case 9)
  h5py_loop            the original writer's h5py pattern on the same inputs (run.py's
                       h5py_loop_write with the Atoms objects) (case 9)
  h5ml_add_batch       HDF5DatasetWriter.add_batch(structures, energies, forces, stresses,
                       show_progress=False), creation to finalize() (case 10)
  h5py_batch           whole arrays built from the same Atoms objects, then run.py's
                       h5py_batch_write, both timed (case 10)
  h5ml_atoms_read      AtomsDataset(path)[i] over the given indices (case 11a)
  h5py_atoms_read      a naive h5py Dataset: splits[i:i+2], then a slice of every dataset (11a)
  h5ml_sig_read        StreamingHDF5Dataset(path, split)[i] over the given indices (case 11b)
  h5py_sig_read        the original StreamingHDF5Dataset.__getitem__ with h5py (case 11b)
  h5ml_*_parts         where h5ml's time goes, each part timed alone (the notes of 9, 10, 11a)

Every structure input comes from an .npz of run.make_atoms_data's arrays; indices from .npy.
"""
import json
import os
import resource
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- inputs (not timed) ----------------------------------------------------------------------


def load_npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def atoms_inputs(npz, count):
    """The first `count` structures as the original writer's callers hold them: a list of
    ase.Atoms, a list of float energies, a list of (n, 3) float64 force arrays and a list of
    Voigt stress rows (None where the structure has no stress)."""
    from ase import Atoms

    a = load_npz(npz)
    natoms, numbers, pos, frc = a["natoms"], a["numbers"], a["positions"], a["forces"]
    cells, pbc, energy, stress, mask = a["cells"], a["pbc"], a["energy"], a["stress"], a["stress_mask"]
    structures, energies, forces, stresses = [], [], [], []
    o = 0
    for i in range(count):
        k = int(natoms[i])
        structures.append(Atoms(numbers=numbers[o:o + k], positions=pos[o:o + k], cell=cells[i].reshape(3, 3),
                                pbc=pbc[i].astype(bool)))
        energies.append(float(energy[i]))
        forces.append(np.array(frc[o:o + k], dtype=np.float64))
        stresses.append(np.array(stress[i], dtype=np.float64) if mask[i] else None)
        o += k
    return structures, energies, forces, stresses


def unlink(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ---- case 9: one structure at a time ---------------------------------------------------------


def h5ml_add_structure(npz, count, out, compression):
    from h5ml import HDF5DatasetWriter

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    unlink(out)
    t0 = time.perf_counter()
    w = HDF5DatasetWriter(out, compression=compression, compression_opts=4)
    for i in range(count):
        w.add_structure(structures[i], energies[i], forces[i], stresses[i])
    w.finalize()
    seconds = time.perf_counter() - t0
    r = {"seconds": seconds, "structures": w.stats()["structures"], "warnings": w.stats()["warnings"]}
    unlink(out)
    return r


def clocks():
    return time.perf_counter(), time.thread_time()


def since(c):
    """(wall seconds, CPU seconds of this thread) since clocks() returned c."""
    return time.perf_counter() - c[0], time.thread_time() - c[1]


def h5ml_add_structure_parts(npz, count, out, compression, rounds=3):
    """Where add_structure's time goes, in `rounds` interleaved rounds (the minimum of each
    part is kept: per-call times on this machine vary by a third from run to run):
      total  the timed loop again (HDF5DatasetWriter creation, add_structure per structure,
             finalize), wall time and the calling thread's CPU time (the library compresses
             and writes on its own threads too);
      ase    getting the arrays out of the Atoms as the writer does (h5ml.atoms._atoms_arrays:
             atoms.numbers/.positions/.cell/.pbc and np.asarray), alone;
      ext    the extension's Writer.add with those arrays ready (argument conversion, the
             library's checks and write), from creation to finalize; wall and thread CPU.
    The rest of the total is the Python layer's own work (energy/forces/stress checks and
    conversions, the calls); run.py splits `ext` further with the library alone (bench_atoms
    --mode single, C)."""
    from h5ml import HDF5DatasetWriter, _h5ml
    from h5ml._common import compression_args, log_callback
    from h5ml.atoms import _atoms_arrays

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    ready = [_atoms_arrays(at) for at in structures]
    name, level = compression_args(compression, 4)
    best = {}

    def keep(key, value):
        best[key] = min(best.get(key, value), value)

    for _ in range(rounds):
        unlink(out)
        c = clocks()
        w = HDF5DatasetWriter(out, compression=compression, compression_opts=4)
        for i in range(count):
            w.add_structure(structures[i], energies[i], forces[i], stresses[i])
        w.finalize()
        wall, cpu = since(c)
        keep("total_s", wall)
        keep("total_cpu_s", cpu)
        c = clocks()
        for at in structures:
            _atoms_arrays(at)
        keep("ase_s", since(c)[0])
        unlink(out)
        c = clocks()
        w = _h5ml.Writer(out, mode="w", compression=name, level=level, validate=True, log=log_callback)
        for i in range(count):
            z, p, cell, pbc = ready[i]
            w.add(z, p, energies[i], forces[i], cell=cell, pbc=pbc, stress=stresses[i], info=None)
        w.finalize()
        w.close()
        wall, cpu = since(c)
        keep("ext_s", wall)
        keep("ext_cpu_s", cpu)
    unlink(out)
    best["rounds"] = rounds
    return best


def h5py_loop(npz, count, out, compression):
    import run  # h5py's side only: run.py imports h5py

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    unlink(out)
    seconds = run.h5py_loop_write(out, None, count, compression, atoms=(structures, energies, forces, stresses))
    import h5py

    with h5py.File(out, "r") as f:
        got = f["labels/energy"].shape[0]
    unlink(out)
    return {"seconds": seconds, "structures": got}


# ---- case 10: a batch of Atoms -------------------------------------------------------------


def h5ml_add_batch(npz, count, out, compression, keep=False):
    from h5ml import HDF5DatasetWriter

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    unlink(out)
    t0 = time.perf_counter()
    w = HDF5DatasetWriter(out, compression=compression, compression_opts=4)
    w.add_batch(structures, energies, forces, stresses, show_progress=False)
    w.finalize()
    seconds = time.perf_counter() - t0
    r = {"seconds": seconds, "structures": w.stats()["structures"], "warnings": w.stats()["warnings"]}
    if not keep:
        unlink(out)
    return r


def h5ml_add_batch_parts(npz, count, out, compression, rounds=3):
    """add_batch's two halves, each alone, in `rounds` interleaved rounds (minimum kept):
    gathering the flat arrays from the Atoms and lists (HDF5DatasetWriter._gather, 8192
    structures at a time), and the extension's Writer.add_batch of those arrays plus
    finalize (the library's batch path). add_batch itself overlaps the two (a block is
    gathered while the previous one is written); the total is timed again in each round."""
    from h5ml import HDF5DatasetWriter
    from h5ml.atoms import _BLOCK

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    best = {}

    def keep(key, value):
        best[key] = min(best.get(key, value), value)

    for _ in range(rounds):
        unlink(out)
        c = clocks()
        w = HDF5DatasetWriter(out, compression=compression, compression_opts=4)
        w.add_batch(structures, energies, forces, stresses, show_progress=False)
        w.finalize()
        keep("total_s", since(c)[0])
        unlink(out)
        w = HDF5DatasetWriter(out, compression=compression, compression_opts=4)
        c = clocks()
        blocks = []
        for start in range(0, count, _BLOCK):
            arrays, error = w._gather(structures, energies, forces, stresses, None, start, min(count, start + _BLOCK))
            assert error is None, error
            blocks.append(arrays)
        keep("gather_s", since(c)[0])
        c = clocks()
        for arrays in blocks:
            w._writer.add_batch(**arrays)
        w.finalize()
        keep("write_s", since(c)[0])
        del blocks
    unlink(out)
    best["rounds"] = rounds
    return best


def arrays_from_atoms(structures, energies, forces, stresses):
    """The h5py side's own gathering: whole arrays of the schema from the Atoms objects and
    the lists (run.h5py_batch_write's input)."""
    n = len(structures)
    mask = np.fromiter((s is not None for s in stresses), dtype=bool, count=n)
    stress = np.zeros((n, 6))
    if mask.any():
        stress[mask] = np.stack([s for s in stresses if s is not None])
    return {
        "natoms": np.fromiter((len(at) for at in structures), dtype=np.int64, count=n),
        "numbers": np.concatenate([at.numbers for at in structures]).astype(np.int64, copy=False),
        "positions": np.concatenate([at.positions for at in structures]),
        "cells": np.stack([at.cell.array for at in structures]),
        "pbc": np.stack([at.pbc for at in structures]),
        "energy": np.asarray(energies, dtype=np.float64),
        "forces": np.concatenate(forces),
        "stress": stress,
        "stress_mask": mask,
    }


def h5py_batch(npz, count, out, compression, keep=False):
    import run

    structures, energies, forces, stresses = atoms_inputs(npz, count)
    unlink(out)
    t0 = time.perf_counter()
    a = arrays_from_atoms(structures, energies, forces, stresses)
    t_build = time.perf_counter() - t0
    run.h5py_batch_write(out, a, compression, compression is not None)
    seconds = time.perf_counter() - t0
    if not keep:
        unlink(out)
    return {"seconds": seconds, "build_s": t_build, "structures": len(a["natoms"])}


# ---- case 11: shuffled reads ------------------------------------------------------------------
#
# The timed loop keeps only the last sample, as a training loop does once it has collated a
# batch (keeping them all would time the allocator's growth and the garbage collector's walks
# over them instead). The values are checked afterwards, on the first CHECK indices read again
# through a new dataset (not timed). Before the first timed run, WARMUP reads go through a
# throwaway dataset (the first calls into torch and the first allocations otherwise land in
# whichever run comes first).

WARMUP = 64
CHECK = 32


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_reads(make, path, idx, checker):
    """(seconds to make the dataset, read dataset[i] for every i of idx and close it, the
    checker's result on the first CHECK indices, the minor page faults of the timed part:
    memory the process had to get fresh from the kernel)."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    ds = make(path)
    for i in idx:
        sample = ds[i]
    ds.close()
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    del sample
    ds = make(path)
    check = checker([ds[i] for i in idx[:CHECK]])
    ds.close()
    return {"path": path, "seconds": seconds, "count": len(idx), "check": check, "check_count": len(idx[:CHECK]),
            "minor_faults": faults}


def read_runs(make, paths, indices, counts, checker, warmup=WARMUP):
    allidx = [int(i) for i in np.load(indices)]
    ds = make(paths[0])
    for i in allidx[-warmup:]:
        ds[i]
    ds.close()
    return [timed_reads(make, path, allidx[:count], checker) for path, count in zip(paths, counts)]


def atoms_check(samples):
    """[sum of energies, sum of atomic numbers, sum of positions] of what was read."""
    e = sum(float(s["energy"]) for s in samples)
    z = sum(int(s["atomic_numbers"].sum()) for s in samples)
    p = sum(float(s["positions"].sum()) for s in samples)
    return [e, z, p]


def h5ml_atoms_read(paths, indices, counts):
    import torch  # noqa: F401 - first, as a training script does (the same on both sides)
    from h5ml import AtomsDataset

    return {"runs": read_runs(AtomsDataset, paths, indices, counts, atoms_check)}


def h5ml_atoms_parts(paths, indices, count, rounds=3):
    """Where AtomsDataset.__getitem__'s time goes, per file, in `rounds` interleaved rounds
    over the first `count` indices (minimum kept): the extension's Reader.get alone (the
    library's reads of the 8 datasets and the info string, and the dict of new numpy arrays
    it returns), and the whole __getitem__ through a new dataset; the difference is the
    Python layer (index checks, the tensors). First, in this fresh process, what one reader
    per file holds after reading every index once: the growth of resident memory (the
    readers stay open until all are measured, so none reuses another's freed memory)."""
    import torch  # noqa: F401
    from h5ml import AtomsDataset, _h5ml

    allidx = [int(i) for i in np.load(indices)]
    held, readers = [], []
    for path in paths:
        r0 = rss_bytes()
        r = _h5ml.Reader(path)
        for i in allidx:
            r.get(i)
        held.append(rss_bytes() - r0)
        readers.append(r)
    for r in readers:
        r.close()
    idx = allidx[:count]
    out = []
    for path, h in zip(paths, held):
        best = {}
        for _ in range(rounds):
            r = _h5ml.Reader(path)
            t0 = time.perf_counter()
            for i in idx:
                d = r.get(i)
            best["get_s"] = min(best.get("get_s", 1e9), time.perf_counter() - t0)
            r.close()
            ds = AtomsDataset(path)
            t0 = time.perf_counter()
            for i in idx:
                d = ds[i]
            best["item_s"] = min(best.get("item_s", 1e9), time.perf_counter() - t0)
            ds.close()
            del d
        best.update(path=path, count=len(idx), rounds=rounds, held_bytes=h, held_count=len(allidx))
        out.append(best)
    return {"runs": out}


class NaiveAtomsDataset:
    """What a torch Dataset over the SPEC layout written with plain h5py looks like: one open
    file, and per index the structure's atom range from the splits, then a slice (or row) of
    every dataset, each turned into a tensor (the keys and dtypes of AtomsDataset's samples)."""

    def __init__(self, path):
        import h5py

        self.f = h5py.File(path, "r")
        self.n = self.f["labels/energy"].shape[0]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        f = self.f
        a, b = f["structures/atomic_numbers_splits"][i:i + 2]
        mask = bool(f["labels/stress_mask"][i])
        return {
            "atomic_numbers": torch.from_numpy(f["structures/atomic_numbers"][a:b]),
            "positions": torch.from_numpy(f["structures/positions"][a:b]),
            "forces": torch.from_numpy(f["labels/forces"][a:b]),
            "cell": torch.from_numpy(f["structures/cells"][i]),
            "pbc": torch.from_numpy(f["structures/pbc"][i]),
            "energy": torch.tensor(f["labels/energy"][i], dtype=torch.float64),
            "stress": torch.from_numpy(f["labels/stress"][i]),
            "stress_mask": torch.tensor(mask),
            "natoms": torch.tensor(int(b - a), dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }

    def close(self):
        self.f.close()


def h5py_atoms_read(paths, indices, counts):
    import torch  # noqa: F401 - first, as a training script does (the same on both sides)

    return {"runs": read_runs(NaiveAtomsDataset, paths, indices, counts, atoms_check)}


def sig_check(samples):
    """[sum of the 32-bit patterns of every signal read, sum of the labels, the first
    signal's shape]."""
    w = sum(int(np.sum(s.numpy().view(np.uint32), dtype=np.uint64)) for s, _ in samples)
    return [w, sum(lab for _, lab in samples), list(samples[0][0].shape)]


def h5ml_sig_read(paths, indices, counts, split="train"):
    import torch  # noqa: F401 - first, as a training script does (the same on both sides)
    from h5ml import StreamingHDF5Dataset

    return {"runs": read_runs(lambda p: StreamingHDF5Dataset(p, split=split), paths, indices, counts, sig_check,
                              warmup=4)}


class OrigStreamingHDF5Dataset:
    """LSTM_PFD's StreamingHDF5Dataset (data/streaming_hdf5_dataset.py) as far as reading
    goes: the constructor reads the shape and the labels, the file is opened per thread with
    swmr=True, __getitem__ checks the index, looks in its (empty) cache under a lock, reads
    f[split]['signals'][idx] and returns (torch.from_numpy(signal.astype(np.float32))
    .unsqueeze(0), int(label)). cache_size 0 (the default), as on h5ml's side."""

    def __init__(self, hdf5_path, split="train", transform=None, cache_size=0):
        import h5py

        self.hdf5_path = str(hdf5_path)
        self.split = split
        self.transform = transform
        self.cache_size = cache_size
        self._local = threading.local()
        with h5py.File(self.hdf5_path, "r") as f:
            if split not in f:
                raise ValueError(f"Split '{split}' not found. Available: {list(f.keys())}")
            self.num_samples = f[split]["signals"].shape[0]
            self.signal_length = f[split]["signals"].shape[1]
            self.sampling_rate = f.attrs.get("sampling_rate", 20480)
            self.num_classes = f.attrs.get("num_classes", 11)
            self.labels = f[split]["labels"][:]
        self._cache = {}
        self._cache_order = []
        self._cache_lock = threading.Lock()

    def _get_file_handle(self):
        import h5py

        if not hasattr(self._local, "file") or self._local.file is None:
            self._local.file = h5py.File(self.hdf5_path, "r", swmr=True)
        return self._local.file

    def __len__(self):
        return self.num_samples

    def __getitem__(self, idx):
        import torch

        if idx < 0 or idx >= self.num_samples:
            raise IndexError(f"Index {idx} out of range [0, {self.num_samples})")
        with self._cache_lock:
            cached = self._cache.get(idx)
        if cached is not None:
            signal = cached
        else:
            f = self._get_file_handle()
            signal = f[self.split]["signals"][idx]
            if self.cache_size > 0:
                with self._cache_lock:
                    self._cache[idx] = signal
                    self._cache_order.append(idx)
                    if len(self._cache) > self.cache_size:
                        oldest = self._cache_order.pop(0)
                        self._cache.pop(oldest, None)
        label = self.labels[idx]
        if self.transform:
            signal = self.transform(signal)
        else:
            signal = torch.from_numpy(signal.astype(np.float32)).unsqueeze(0)
        return signal, int(label)

    def close(self):
        if getattr(self._local, "file", None) is not None:
            self._local.file.close()
            self._local.file = None


def h5py_sig_read(paths, indices, counts, split="train"):
    import torch  # noqa: F401 - first, as a training script does (the same on both sides)

    return {"runs": read_runs(lambda p: OrigStreamingHDF5Dataset(p, split=split), paths, indices, counts, sig_check,
                              warmup=4)}


OPS = {f.__name__: f for f in (h5ml_add_structure, h5ml_add_structure_parts, h5py_loop, h5ml_add_batch,
                                h5ml_add_batch_parts, h5py_batch, h5ml_atoms_read, h5ml_atoms_parts, h5py_atoms_read,
                                h5ml_sig_read, h5py_sig_read)}


def main():
    spec = json.loads(sys.argv[1])
    op = spec.pop("op")
    if op.startswith("h5ml"):
        assert "h5py" not in sys.modules
    result = OPS[op](**spec)
    if op.startswith("h5ml"):
        result["h5py_loaded"] = "h5py" in sys.modules  # must stay False: see the docstring
    else:
        result["h5ml_loaded"] = "h5ml" in sys.modules
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
