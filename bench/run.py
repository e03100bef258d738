#!/usr/bin/python3
"""h5ml benchmarks: h5ml against its peers (h5py, ASE) on the same data, in one run.

    /usr/bin/python3 bench/run.py --h5ml build/h5ml --bench-dir build/bench [--quick]

Cases (each prints its progress to stderr; the table goes to stdout and to
<bench-dir>/results.md):

  1. Batch write: h5ml_writer_add_batch (bench_atoms, C) vs h5py writing whole numpy arrays,
     the same values (run.py writes them as raw files that bench_atoms loads), the same
     schema and chunk shapes; no compression and gzip-4 + shuffle; validation on (h5ml's
     default, the target) and off (shown for context).
  2. One structure at a time: h5ml_writer_add vs the original writer's h5py loop (resize
     every dataset by one and assign the new rows), gzip-4; per-structure rates.
  3. `h5ml convert` (default gzip-4) vs ASE's extxyz reader alone, on a file ASE wrote.
  4. Peak memory and throughput of `h5ml convert` on a million small molecules.
  5. Context: reading back (h5ml export, h5ml_reader_read, h5py), and file sizes of each
     compression on data/sample.xyz next to the seed document's figures.
  6. Signal cache write (bench_signals, C) vs the original CacheManager.cache_dataset call
     (h5py: create_dataset('signals', data=..., compression=...), h5py's chunks, no shuffle):
     N signals of 102400 float32 samples (vibration-like: sines plus noise), int64 labels and
     per-signal JSON metadata, the same values on both sides (run.py writes them as raw files
     that bench_signals loads); gzip-4, lzf and none. h5ml's default (byte shuffle on) is the
     target; h5ml without shuffle and h5py with shuffle=True are shown for context, and for
     none h5ml without its check that every sample is finite (H5ML_SIG_ALLOW_NONFINITE).
  7. Random-index reads of K signals from the gzip-4 files of case 6, each side its own file:
     h5ml_sigreader_get per index (the target) and one h5ml_sigreader_read of the whole batch,
     vs the original StreamingHDF5Dataset.__getitem__ loop `for i in idx: f['signals'][i]`;
     each reader on the other's file for context. The files are read once first (page cache).
  8. Streaming the train split of an uncompressed generated split file in order with
     h5ml_sigreader_read_range (blocks of 4 signals) vs plain read() into a buffer of the same size (C) of
     the same number of bytes from the same file; the file is read once first, so both read
     from the page cache.
  9. The Python module, one structure at a time: HDF5DatasetWriter.add_structure(atoms, energy,
     forces, stress) in a Python loop vs the original writer's h5py loop of case 2 taking the
     same ase.Atoms (built before timing); gzip-4 (the writer's default, the target) and none;
     rates compared (h5ml writes more structures than the slow loop). Where add_structure's
     time goes (Atoms access, the extension's Writer.add, the library alone) is in the notes.
 10. HDF5DatasetWriter.add_batch(structures, energies, forces, stresses) vs h5py writing whole
     arrays (case 1's h5py_batch_write) that it builds from the same ase.Atoms inside its timed
     region; none and gzip-4.
 11. Shuffled reads through the torch datasets: (a) AtomsDataset[i] over a permutation of a
     case-1-style file (uncompressed and gzip-4) vs a naive h5py Dataset (splits[i:i+2], then a
     slice of every dataset); (b) StreamingHDF5Dataset(split='train')[i] on a generated gzip-4
     split file vs the original StreamingHDF5Dataset.__getitem__ with h5py on the file the
     original CacheManager writes, and each on the other's file for context.
     Cases 9-11 run each side of each repetition in its own /usr/bin/python3 process
     (bench/pycases.py, PYTHONPATH = the python directory next to --h5ml): an h5ml side never
     loads h5py, nor an h5py side h5ml.
 12. The speed targets of parallel compression and direct reads, on case 1's data (64-atom
     structures): gzip-4 and lzf batch writes with the default threads (one per core) vs one
     thread; the uncompressed batch write vs write() of the same bytes into a new file (C);
     shuffled reads from uncompressed and gzip-4 files, h5ml_reader_read_indices in batches of
     256 (and one index per call) vs h5py one index at a time; sequential reads of the
     uncompressed file (h5ml_reader_read, 4096 per call) vs h5py reading every dataset whole.

Times are medians of repeated runs; h5ml and its peer alternate within each repetition.
Write times include creating and closing (finalizing) the file; loading the input arrays
into memory is not timed on either side. Read times include opening and closing the file.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Bytes per atom and per structure of the 11 datasets, uncompressed: atomic_numbers 8,
# positions 24, forces 12; splits 2x8, cells 72, pbc 3, energy 8, stress 48, stress_mask 1,
# structure_indices 8. Throughput in MB/s is this raw size (or the XYZ text size) per second.
ATOM_BYTES = 44
STRUCT_BYTES = 156

ARRAYS = {  # name: (file extension, dtype)
    "natoms": ("i64", np.int64),
    "numbers": ("i64", np.int64),
    "positions": ("f64", np.float64),
    "cells": ("f64", np.float64),
    "pbc": ("u8", np.uint8),
    "energy": ("f64", np.float64),
    "forces": ("f64", np.float64),
    "stress": ("f64", np.float64),
    "stress_mask": ("u8", np.uint8),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raw_bytes(n, m):
    return ATOM_BYTES * m + STRUCT_BYTES * n + 16


def unlink(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


class Quiet:
    """Waits, before each timed measurement, until no other process is running on the
    machine (procs_running in /proc/stat counts this one), for at most `each` seconds per
    measurement and `budget` seconds in all; counts the measurements that started busy."""

    def __init__(self, each=1.0, budget=20.0):
        self.each, self.budget = each, budget
        self.waited = 0.0
        self.measurements = 0
        self.busy = 0

    @staticmethod
    def running():
        try:
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("procs_running"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 1

    def wait(self):
        self.measurements += 1
        t0 = time.perf_counter()
        while True:
            if self.running() <= 1:
                time.sleep(0.05)
                if self.running() <= 1:
                    break
            spent = time.perf_counter() - t0
            if spent >= self.each or self.waited + spent >= self.budget:
                self.busy += 1
                break
            time.sleep(0.2)
        self.waited += time.perf_counter() - t0


GUARD = Quiet()  # short waits: on a machine that stays busy they only add run time


def run_child(cmd, check=True, timed=True):
    """Runs cmd; returns (wall seconds, its rusage, stdout, stderr). The rusage's ru_maxrss
    is not the child's own: it carries this (large) process's high-water mark across exec;
    peak_rss() measures through bench_rss instead."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if timed:
            GUARD.wait()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(), err.read().decode()
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, etext.strip()[-2000:]))
    return wall, ru, text, etext


def median(xs):
    return statistics.median(xs)


def spread(xs):
    return "median %.3f s (min %.3f, max %.3f, n=%d)" % (median(xs), min(xs), max(xs), len(xs))


# ---- data ---------------------------------------------------------------------------------


def make_atoms_data(n, natoms, seed):
    """n periodic 12 A cubic cells of `natoms` atoms. Positions are a jittered 4x4x4 grid
    (random, but no two atoms closer than 1.8 A, as in real structures: uniform random
    positions would put pairs below 0.5 A in most structures and make h5ml warn), atomic
    numbers 1..8, forces ~ N(0, 1), energies ~ N(-300, 5), stress on every other structure."""
    rng = np.random.default_rng(seed)
    m = n * natoms
    side = int(round(natoms ** (1 / 3)))
    assert side ** 3 == natoms
    spacing = 12.0 / side
    g = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing + spacing / 2
    pos = (g[None] + rng.uniform(-0.6, 0.6, (n, natoms, 3))).reshape(m, 3)
    mask = (np.arange(n) % 2 == 0).astype(np.uint8)
    stress = rng.normal(0, 0.01, (n, 6))
    stress[mask == 0] = 0
    return {
        "natoms": np.full(n, natoms, np.int64),
        "numbers": rng.integers(1, 9, m).astype(np.int64),
        "positions": pos,
        "cells": np.tile((np.eye(3) * 12.0).ravel(), (n, 1)),
        "pbc": np.ones((n, 3), np.uint8),
        "energy": rng.normal(-300, 5, n),
        "forces": rng.normal(0, 1, (m, 3)),
        "stress": stress,
        "stress_mask": mask,
    }


def save_arrays(d, arrays):
    os.makedirs(d, exist_ok=True)
    for name, (ext, dt) in ARRAYS.items():
        np.ascontiguousarray(arrays[name], dtype=dt).tofile(os.path.join(d, "%s.%s" % (name, ext)))


def load_arrays(d):
    """The arrays as the h5py side uses them (read back from the files bench_atoms reads)."""
    a = {name: np.fromfile(os.path.join(d, "%s.%s" % (name, ext)), dtype=dt) for name, (ext, dt) in ARRAYS.items()}
    n, m = len(a["natoms"]), len(a["numbers"])
    a["positions"] = a["positions"].reshape(m, 3)
    a["forces"] = a["forces"].reshape(m, 3)
    a["cells"] = a["cells"].reshape(n, 3, 3)
    a["pbc"] = a["pbc"].reshape(n, 3).astype(bool)
    a["stress"] = a["stress"].reshape(n, 6)
    a["stress_mask"] = a["stress_mask"].astype(bool)
    return a


# ---- h5py peers -----------------------------------------------------------------------------


def h5py_batch_write(path, a, compression, shuffle, chunk_atoms=16384, chunk_structs=4096):
    """Whole numpy arrays, the schema of SPEC section 1, chunks as h5ml's defaults."""
    t0 = time.perf_counter()
    kw = {} if compression is None else dict(compression=compression, compression_opts=4, shuffle=shuffle)
    natoms = a["natoms"]
    n = len(natoms)
    splits = np.zeros(n + 1, np.int64)
    np.cumsum(natoms, out=splits[1:])
    with h5py.File(path, "w") as f:
        s, l = f.create_group("structures"), f.create_group("labels")

        def ds(g, name, arr, chunk):
            g.create_dataset(name, data=arr, maxshape=(None,) + arr.shape[1:], chunks=(chunk,) + arr.shape[1:], **kw)

        ds(s, "atomic_numbers", a["numbers"], chunk_atoms)
        ds(s, "atomic_numbers_splits", splits, chunk_structs)
        ds(s, "positions", a["positions"], chunk_atoms)
        ds(s, "cells", a["cells"], chunk_structs)
        ds(s, "pbc", a["pbc"], chunk_structs)
        ds(l, "energy", a["energy"], chunk_structs)
        ds(l, "forces", a["forces"].astype(np.float32), chunk_atoms)
        ds(l, "forces_splits", splits, chunk_structs)
        ds(l, "stress", a["stress"], chunk_structs)
        ds(l, "stress_mask", a["stress_mask"], chunk_structs)
        ds(l, "structure_indices", np.arange(n, dtype=np.int64), chunk_structs)
        f.create_group("metadata").attrs["num_structures"] = n
    return time.perf_counter() - t0


def h5py_loop_write(path, a, count, compression, atoms=None):
    """The original HDF5DatasetWriter's way: datasets created empty (chunks=True, maxshape
    None), then per structure its checks and, for every dataset, resize by one structure
    and assign the new rows. The rows come from the arrays `a` (case 2) or, with
    atoms=(structures, energies, forces, stresses) (case 9: lists of ase.Atoms, floats,
    (n, 3) arrays and Voigt rows or None), from each Atoms the way the original's
    add_structure took them (get_atomic_numbers, get_positions, get_cell, get_pbc)."""
    kw = {} if compression is None else dict(compression=compression, compression_opts=4)
    if atoms is None:
        natoms, numbers, pos, forces = a["natoms"], a["numbers"], a["positions"], a["forces"]
        cells, pbc, energy, stress, mask = a["cells"], a["pbc"], a["energy"], a["stress"], a["stress_mask"]
    else:
        structures, energies, forces_list, stresses = atoms
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        s, l = f.create_group("structures"), f.create_group("labels")

        def mk(g, name, shape, dt):
            return g.create_dataset(name, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dt, chunks=True, **kw)

        an = mk(s, "atomic_numbers", (), np.int64)
        ans = mk(s, "atomic_numbers_splits", (), np.int64)
        ps = mk(s, "positions", (3,), np.float64)
        ce = mk(s, "cells", (3, 3), np.float64)
        pb = mk(s, "pbc", (3,), bool)
        en = mk(l, "energy", (), np.float64)
        fo = mk(l, "forces", (3,), np.float32)
        fs = mk(l, "forces_splits", (), np.int64)
        st = mk(l, "stress", (6,), np.float64)
        sm = mk(l, "stress_mask", (), bool)
        si = mk(l, "structure_indices", (), np.int64)
        for d in (ans, fs):
            d.resize((1,))
            d[0] = 0
        m = 0
        for i in range(count):
            if atoms is None:
                k = int(natoms[i])
                z, p, fr = numbers[m:m + k], pos[m:m + k], forces[m:m + k]
                e, cell, pb_i, s_i, has = energy[i], cells[i], pbc[i], stress[i], mask[i]
            else:
                at = structures[i]
                k = len(at)
                z, p, cell, pb_i = at.get_atomic_numbers(), at.get_positions(), at.get_cell().array, at.get_pbc()
                fr, e, s_i = np.asarray(forces_list[i]), energies[i], stresses[i]
                has = s_i is not None
            if not np.isfinite(e):
                raise ValueError("Invalid energy: %s" % e)
            if fr.shape != p.shape:
                raise ValueError("Forces shape %s doesn't match atoms %s" % (fr.shape, p.shape))
            if np.isnan(fr).any() or np.isinf(fr).any():
                raise ValueError("Forces contain NaN or Inf")
            if has and not np.isfinite(s_i).all():
                raise ValueError("Stress contains NaN or Inf")
            an.resize((m + k,))
            an[m:] = z
            ps.resize((m + k, 3))
            ps[m:] = p
            fo.resize((m + k, 3))
            fo[m:] = fr.astype(np.float32)
            ans.resize((i + 2,))
            ans[i + 1] = m + k
            fs.resize((i + 2,))
            fs[i + 1] = m + k
            ce.resize((i + 1, 3, 3))
            ce[i] = cell
            pb.resize((i + 1, 3))
            pb[i] = pb_i
            en.resize((i + 1,))
            en[i] = e
            st.resize((i + 1, 6))
            st[i] = s_i if has else 0
            sm.resize((i + 1,))
            sm[i] = has
            si.resize((i + 1,))
            si[i] = i
            m += k
        f.create_group("metadata").attrs["num_structures"] = count
    return time.perf_counter() - t0


def h5py_read_all(path):
    t0 = time.perf_counter()
    total = 0
    with h5py.File(path, "r") as f:
        for g in ("structures", "labels"):
            for name, d in f[g].items():
                if isinstance(d, h5py.Dataset):
                    total += d[()].nbytes
    return time.perf_counter() - t0, total


def storage(path):
    """(raw bytes, stored bytes) of every dataset of the file."""
    raw = stored = 0
    with h5py.File(path, "r") as f:

        def visit(_, o):
            nonlocal raw, stored
            if isinstance(o, h5py.Dataset):
                raw += o.size * o.dtype.itemsize
                stored += o.id.get_storage_size()

        f.visititems(visit)
    return raw, stored


# ---- signal caches (cases 6-8) ---------------------------------------------------------------

FAULTS = ["sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation", "usure", "oilwhirl",
          "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu"]
SIG_RATE = 20480.0


def make_signal_data(d, n, length, seed, block=32):
    """n vibration-like signals into d/signals.f32 (n x length float32), d/labels.i64 and
    d/meta.jsonl (one JSON object per line): a shaft at 60 Hz +- 10 % with its 1X, 2X and 3X
    harmonics, a fault component whose frequency depends on the label, 50 Hz mains and
    gaussian noise whose level follows the load. Written a block at a time (bounded memory)."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64) / SIG_RATE
    labels = np.arange(n, dtype=np.int64) % len(FAULTS)
    rng.shuffle(labels)
    lines = []
    with open(os.path.join(d, "signals.f32"), "wb") as fh:
        for start in range(0, n, block):
            k = min(block, n - start)
            lab = labels[start:start + k]
            f0 = 60.0 * rng.uniform(0.9, 1.1, k)[:, None]
            sev = rng.uniform(0.2, 1.0, k)[:, None]
            load = rng.uniform(0.0, 1.0, k)[:, None]
            ph = rng.uniform(0, 2 * np.pi, (k, 5, 1))
            w = 2 * np.pi * f0 * t[None]
            x = np.sin(w + ph[:, 0]) + 0.35 * np.sin(2 * w + ph[:, 1]) + 0.12 * np.sin(3 * w + ph[:, 2])
            x += 0.6 * sev * np.sin((0.45 + 0.55 * lab[:, None]) * w + ph[:, 3])
            x += 0.05 * np.sin(2 * np.pi * 50.0 * t[None] + ph[:, 4])
            x += rng.normal(0.0, 1.0, (k, length)) * (0.15 + 0.2 * load)
            x.astype(np.float32).tofile(fh)
            for j in range(k):
                lines.append(json.dumps({"fault": FAULTS[lab[j]], "label": int(lab[j]), "severity": round(float(sev[j, 0]), 4),
                                         "speed_hz": round(float(f0[j, 0]), 4), "speed_rpm": round(float(f0[j, 0]) * 60, 1),
                                         "load": round(float(load[j, 0]), 4), "sampling_rate": SIG_RATE, "index": start + j}))
    labels.tofile(os.path.join(d, "labels.i64"))
    with open(os.path.join(d, "meta.jsonl"), "w") as fh:
        fh.write("".join(line + "\n" for line in lines))


def load_signal_data(d, n, length):
    sig = np.fromfile(os.path.join(d, "signals.f32"), dtype=np.float32).reshape(n, length)
    labels = np.fromfile(os.path.join(d, "labels.i64"), dtype=np.int64)
    with open(os.path.join(d, "meta.jsonl")) as fh:
        meta = fh.read().splitlines()
    assert len(labels) == n and len(meta) == n
    return sig, labels, meta


def h5py_cache_write(path, signals, labels, meta, compression, shuffle=False):
    """CacheManager.cache_dataset as the original wrote it: signals in one create_dataset
    call (h5py picks the chunks), labels uncompressed, metadata as UTF-8 strings, the root
    attributes. The metadata arrive as JSON strings (the original json.dumps'ed dicts inside
    the call; the C side gets the same strings, so that is left out on both sides).
    shuffle=True is not the original's call (context only)."""
    kw = {}
    if compression == "gzip":
        kw = dict(compression="gzip", compression_opts=4)
    elif compression == "lzf":
        kw = dict(compression="lzf")
    if shuffle:
        kw["shuffle"] = True
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.create_dataset("signals", data=np.asarray(signals, dtype=np.float32), **kw)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        f.create_dataset("metadata", data=meta, dtype=h5py.string_dtype("utf-8"))
        f.attrs["cache_name"] = os.path.splitext(os.path.basename(path))[0]
        f.attrs["num_signals"] = len(signals)
        f.attrs["signal_length"] = signals.shape[1]
        f.attrs["cached_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        f.attrs["compression"] = compression or "none"
    return time.perf_counter() - t0


def h5py_split_write(path, parts, num_signals):
    """LSTM_PFD's CacheManager.cache_dataset_with_splits as the original wrote it: the root
    attributes, then per split a group with signals (create_dataset(data=...,
    compression='gzip', compression_opts=4): h5py's chunks, no shuffle), labels and the
    num_samples attribute. parts: {split: (signals, labels)} in storage order."""
    with h5py.File(path, "w") as f:
        f.attrs["cache_name"] = os.path.splitext(os.path.basename(path))[0]
        f.attrs["num_signals"] = num_signals
        f.attrs["signal_length"] = next(iter(parts.values()))[0].shape[1]
        f.attrs["cached_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        f.attrs["split_ratios"] = (0.7, 0.15, 0.15)
        f.attrs["stratified"] = True
        f.attrs["random_seed"] = 42
        for name, (sig, lab) in parts.items():
            g = f.create_group(name)
            g.create_dataset("signals", data=sig, compression="gzip", compression_opts=4)
            g.create_dataset("labels", data=lab)
            g.attrs["num_samples"] = len(sig)


def word_sum(a):
    """Sum of the 32-bit patterns of a float32 array (bench_signals' "sum")."""
    return int(np.sum(np.ascontiguousarray(a, dtype=np.float32).view(np.uint32), dtype=np.uint64))


def h5py_random_reads(path, idx):
    """The original StreamingHDF5Dataset.__getitem__ pattern, one index at a time on one open
    file; returns (seconds, word sum of what was read)."""
    got = []
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        for i in idx:
            x = f["signals"][i]
            got.append(x)
    t = time.perf_counter() - t0
    return t, sum(word_sum(x) for x in got)


def h5py_atoms_reads(path, idx):
    """Structures one index at a time with h5py, the datasets opened once: the splits row,
    then that structure's slice of every dataset. Returns (seconds, checksum)."""
    check = 0.0
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        sp, z, pos = f["structures/atomic_numbers_splits"], f["structures/atomic_numbers"], f["structures/positions"]
        cells, pbc = f["structures/cells"], f["structures/pbc"]
        e, frc, st, sm = f["labels/energy"], f["labels/forces"], f["labels/stress"], f["labels/stress_mask"]
        for i in idx:
            a, b = sp[i:i + 2]
            x = (z[a:b], pos[a:b], frc[a:b], cells[i], pbc[i], e[i], st[i], sm[i])
            check += float(x[5]) + float(x[2][0, 0])
    return time.perf_counter() - t0, check


def py_rawread(path, offset, nbytes, piece=1 << 20):
    """os.read in pieces of `piece` bytes; returns seconds."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        done = 0
        while done < nbytes:
            b = os.read(fd, min(piece, nbytes - done))
            if not b:
                raise RuntimeError("%s: short read" % path)
            done += len(b)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def warm(*paths):
    """Reads files once so that the measurements after it all find them in the page cache."""
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.read(8 << 20):
                pass


# ---- results ---------------------------------------------------------------------------------


class Table:
    COLS = ["case", "h5ml", "peer", "ratio", "target", "result", "h5ml st/s", "peer st/s", "h5ml MB/s", "peer MB/s"]

    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, case, h5ml, peer, ratio=None, target=None, ok=None, h5ml_sps=None, peer_sps=None,
            h5ml_mbs=None, peer_mbs=None):
        """ok: True/False for a target row, None for context rows."""
        result = "info" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append([case, h5ml, peer, "" if ratio is None else "%.2f" % ratio, target or "-", result,
                          rate(h5ml_sps), rate(peer_sps), mbs(h5ml_mbs), mbs(peer_mbs)])

    def text(self):
        rows = [self.COLS] + self.rows
        w = [max(len(r[i]) for r in rows) for i in range(len(self.COLS))]
        lines = []
        for k, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w[i]) if i < 3 else c.rjust(w[i]) for i, c in enumerate(r)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * x for x in w))
        return "\n".join(lines)

    def markdown(self):
        out = ["| " + " | ".join(self.COLS) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(self.COLS) - 3)) + "|"]
        for r in self.rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        return "\n".join(out)


def rate(x):
    if x is None:
        return ""
    return "{:,.0f}".format(x)


def mbs(x):
    return "" if x is None else "%.1f" % x


def secs(x):
    return "%.3f s" % x


# ---- cases --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.h5ml = os.path.abspath(args.h5ml)
        self.bench_atoms = os.path.join(os.path.abspath(args.bench_dir), "bench_atoms")
        self.bench_signals = os.path.join(os.path.abspath(args.bench_dir), "bench_signals")
        self.table = Table()
        self.quick = args.quick
        self.keep = {}  # files later cases reuse

    def atoms(self, data_dir, out, *opts):
        unlink(out)
        _, _, text, _ = run_child([self.bench_atoms, "write", data_dir, out] + list(opts))
        return json.loads(text)

    # 1 + 2 share the data set
    def case_write(self):
        q = self.quick
        n, natoms = (20000 if q else 100000), 64
        log("[1] batch write: generating %d structures of %d atoms" % (n, natoms))
        d = os.path.join(self.work, "atoms")
        save_arrays(d, make_atoms_data(n, natoms, seed=20261121))
        a = load_arrays(d)
        m = len(a["numbers"])
        raw = raw_bytes(n, m)
        log("    %d atoms, %.1f MB raw" % (m, raw / 1e6))
        out_c, out_p = os.path.join(self.work, "h5ml.h5"), os.path.join(self.work, "h5py.h5")

        variants = [  # label, h5ml options, (h5py compression, shuffle)
            ("none", ["--compression", "none"], (None, False)),
            ("gzip-4 + shuffle", ["--compression", "gzip", "--level", "4"], ("gzip", True)),
        ]
        sizes = {}
        for label, opts, (comp, shuf) in variants:
            reps = (5 if comp is None else 3)
            tv, tn, tp, t1, parts = [], [], [], [], []
            for rep in range(reps):
                r = self.atoms(d, out_c, *opts)
                tv.append(r["seconds"])
                parts.append((r["open_s"], r["add_s"], r["close_s"], r["user_s"], r["sys_s"]))
                r2 = self.atoms(d, out_c + ".nv", *opts, "--no-validate")
                tn.append(r2["seconds"])
                if comp:
                    r3 = self.atoms(d, out_c + ".t1", *opts, "--threads", "1")
                    t1.append(r3["seconds"])
                unlink(out_p)
                GUARD.wait()
                tp.append(h5py_batch_write(out_p, a, comp, shuf))
                log("    %s rep %d/%d: h5ml %.3f s (user %.2f, sys %.2f; open %.3f, add %.3f, close %.3f), "
                    "no-validate %.3f s,%s h5py %.3f s"
                    % (label, rep + 1, reps, r["seconds"], r["user_s"], r["sys_s"], r["open_s"], r["add_s"],
                       r["close_s"], r2["seconds"], " 1 thread %.3f s," % t1[-1] if t1 else "", tp[-1]))
                if r["warnings"]:
                    self.table.notes.append("1 %s: h5ml issued %d warnings" % (label, r["warnings"]))
            sizes[label] = (os.path.getsize(out_c), os.path.getsize(out_p))
            log("    %s: h5ml %s; no-validate %s; h5py %s" % (label, spread(tv), spread(tn), spread(tp)))
            mv, mn, mp = median(tv), median(tn), median(tp)
            self.table.add("1 batch write, %s" % label, secs(mv), secs(mp), mp / mv, ">= 1.0", mp / mv >= 1.0,
                           n / mv, n / mp, raw / mv / 1e6, raw / mp / 1e6)
            self.table.add("1 batch write, %s, validate off" % label, secs(mn), secs(mp), mp / mn, "(>= 1.0)", None,
                           n / mn, n / mp, raw / mn / 1e6, raw / mp / 1e6)
            if t1:
                m1 = median(t1)
                self.table.add("1 batch write, %s, 1 thread" % label, secs(m1), secs(mp), mp / m1, "(>= 1.0)", None,
                               n / m1, n / mp, raw / m1 / 1e6, raw / mp / 1e6)
            o, ad, cl, us, sy = (median(x) for x in zip(*parts))
            self.table.notes.append("1 %s: h5ml (validate on) medians: open %.3f s, add %.3f s, close %.3f s; "
                                    "CPU user %.3f s, system %.3f s" % (label, o, ad, cl, us, sy))
            # Same values in both files?
            self.table.notes.append("1 %s: `h5ml diff` of the h5ml and h5py files: %s; sizes h5ml %.1f MB, h5py %.1f MB"
                                    % (label, self.diff(out_c, out_p), sizes[label][0] / 1e6, sizes[label][1] / 1e6))
            unlink(out_c, out_c + ".nv", out_c + ".t1", out_p)
        self.validation_cost(d, n)
        self.case_single(d, a)

    def validation_cost(self, d, n):
        """Nanoseconds per structure of validation's parts (bench_validate), for the notes."""
        exe = os.path.join(os.path.dirname(self.bench_atoms), "bench_validate")
        if not os.path.exists(exe):
            return
        r = json.loads(run_child([exe, d])[2])
        self.table.notes.append(
            "1: validation on this data, measured alone: checks %.0f ns + close-atoms search %.0f ns per structure "
            "= %.3f s for %d structures" % (r["validate_ns"], r["close_pair_ns"],
                                             (r["validate_ns"] + r["close_pair_ns"]) * n * 1e-9, n))

    def peak_rss(self, cmd):
        """(wall seconds, peak RSS in KiB) of cmd, measured by bench_rss."""
        _, _, _, err = run_child([os.path.join(os.path.dirname(self.bench_atoms), "bench_rss")] + cmd)
        r = json.loads(err.strip().splitlines()[-1])["bench_rss"]
        return r["seconds"], r["maxrss_kib"]

    def diff(self, x, y):
        p = subprocess.run([self.h5ml, "diff", x, y], capture_output=True, text=True)
        if p.returncode == 0:
            return "no difference"
        return "DIFFERENT (exit %d): %s" % (p.returncode, (p.stdout + p.stderr).strip().splitlines()[0][:200])

    def case_single(self, d, a):
        q = self.quick
        n_c = 20000 if q else 100000
        n_p = 500 if q else 2000
        n_c = min(n_c, len(a["natoms"]))
        m_c = int(a["natoms"][:n_c].sum())
        m_p = int(a["natoms"][:n_p].sum())
        log("[2] one structure at a time: h5ml %d structures, h5py loop %d" % (n_c, n_p))
        out_c, out_p = os.path.join(self.work, "single_h5ml.h5"), os.path.join(self.work, "single_h5py.h5")
        for label, opts, comp, target in (("gzip-4", [], "gzip", True), ("none", ["--compression", "none"], None, False)):
            reps = 3
            tc, tp = [], []
            for rep in range(reps):
                r = self.atoms(d, out_c, "--mode", "single", "--count", str(n_c), *opts)
                tc.append(r["seconds"])
                unlink(out_p)
                GUARD.wait()
                tp.append(h5py_loop_write(out_p, a, n_p, comp))
                log("    %s rep %d/%d: h5ml %.3f s (%.0f st/s, user %.2f s), h5py loop %.3f s (%.0f st/s)"
                    % (label, rep + 1, reps, tc[-1], n_c / tc[-1], r["user_s"], tp[-1], n_p / tp[-1]))
            sc, sp = n_c / median(tc), n_p / median(tp)
            rc, rp = raw_bytes(n_c, m_c), raw_bytes(n_p, m_p)
            name = "2 one at a time, %s" % label + ("" if target else " (context)")
            self.table.add(name, "%s for %s" % (secs(median(tc)), "{:,}".format(n_c)),
                           "%s for %s" % (secs(median(tp)), "{:,}".format(n_p)),
                           sc / sp, ">= 50" if target else "-", (sc / sp >= 50) if target else None,
                           sc, sp, rc / median(tc) / 1e6, rp / median(tp) / 1e6)
            unlink(out_c, out_p)

    def case_convert(self):
        import ase.io
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        q = self.quick
        n = 2000 if q else 20000
        log("[3] convert vs ASE: writing %d structures of 64 atoms with ase.io.write(format='extxyz')" % n)
        rng = np.random.default_rng(7)
        g = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) * 3.0 + 1.5
        frames = []
        for _ in range(n):
            at = Atoms(numbers=rng.integers(1, 9, 64), positions=g + rng.uniform(-0.6, 0.6, (64, 3)),
                       cell=np.eye(3) * 12.0, pbc=True)
            at.calc = SinglePointCalculator(at, energy=float(rng.normal(-300, 5)), forces=rng.normal(0, 1, (64, 3)),
                                            stress=rng.normal(0, 0.01, 6))
            frames.append(at)
        xyz = os.path.join(self.work, "ase.xyz")
        ase.io.write(xyz, frames, format="extxyz")
        del frames
        size = os.path.getsize(xyz)
        log("    %s: %.1f MB" % (xyz, size / 1e6))
        out = os.path.join(self.work, "convert.h5")
        out_none = os.path.join(self.work, "convert_none.h5")
        ta, tc, tn = [], [], []
        reps = 3
        for rep in range(reps):
            unlink(out)
            w, _, _, _ = run_child([self.h5ml, "convert", xyz, "-o", out, "-q"])
            tc.append(w)
            unlink(out_none)
            w, _, _, _ = run_child([self.h5ml, "convert", xyz, "-o", out_none, "-q", "-c", "none"])
            tn.append(w)
            GUARD.wait()
            t0 = time.perf_counter()
            got = ase.io.read(xyz, ":", format="extxyz")
            ta.append(time.perf_counter() - t0)
            assert len(got) == n
            del got
            log("    rep %d/%d: h5ml convert %.3f s, convert -c none %.3f s, ASE read %.3f s"
                % (rep + 1, reps, tc[-1], tn[-1], ta[-1]))
        with h5py.File(out, "r") as f:
            assert f["labels/energy"].shape == (n,), "convert wrote %s structures" % (f["labels/energy"].shape,)
        mc, mn, ma = median(tc), median(tn), median(ta)
        self.table.add("3 convert extxyz (gzip-4) vs ASE read", secs(mc), secs(ma), ma / mc, ">= 5", ma / mc >= 5,
                       n / mc, n / ma, size / mc / 1e6, size / ma / 1e6)
        self.table.add("3 convert extxyz, -c none (context)", secs(mn), secs(ma), ma / mn, "-", None,
                       n / mn, n / ma, size / mn / 1e6, size / ma / 1e6)
        unlink(xyz, out_none)
        self.keep["readback"] = out

    def case_memory(self):
        q = self.quick
        n = 100000 if q else 1000000
        log("[4] peak memory: generating %d molecules of 8 atoms" % n)
        path = os.path.join(self.work, "molecules.xyz")
        out = os.path.join(self.work, "molecules.h5")
        try:
            write_molecules(path, n)
            size = os.path.getsize(path)
            log("    %s: %.1f MB; converting" % (path, size / 1e6))
            unlink(out)
            w, rss = self.peak_rss([self.h5ml, "convert", path, "-o", out, "-q"])
            with h5py.File(out, "r") as f:
                got = f["labels/energy"].shape[0]
            assert got == n, "convert wrote %d structures of %d" % (got, n)
            mib = rss / 1024
            log("    %.2f s, peak RSS %.1f MiB" % (w, mib))
            self.table.add("4 convert %s x 8 atoms: peak RSS" % ("{:,}".format(n)), "%.1f MiB" % mib, "-", None,
                           "< 64 MiB", mib < 64, n / w, None, size / w / 1e6, None)
        finally:
            unlink(path, out)

    def case_read(self):
        q = self.quick
        path = self.keep.get("readback")
        if path and os.path.exists(path):
            with h5py.File(path, "r") as f:
                n = f["labels/energy"].shape[0]
                m = f["structures/atomic_numbers"].shape[0]
            raw = raw_bytes(n, m)
            log("[5] read back %s (%d structures, gzip-4)" % (path, n))
            te, tr, tp = [], [], []
            for rep in range(3):
                w, _, _, _ = run_child([self.h5ml, "export", path, "-o", "/dev/null", "-q"])
                te.append(w)
                _, _, text, _ = run_child([self.bench_atoms, "read", path, "--chunk", "4096"])
                tr.append(json.loads(text)["seconds"])
                GUARD.wait()
                t, nbytes = h5py_read_all(path)
                tp.append(t)
                log("    rep %d/3: h5ml export %.3f s, h5ml_reader_read %.3f s, h5py read all %.3f s"
                    % (rep + 1, te[-1], tr[-1], tp[-1]))
            me, mr, mp = median(te), median(tr), median(tp)
            self.table.add("5 export to /dev/null vs h5py read all", secs(me), secs(mp), mp / me, "-", None,
                           n / me, n / mp, raw / me / 1e6, raw / mp / 1e6)
            self.table.add("5 h5ml_reader_read (4096/call) vs h5py read all", secs(mr), secs(mp), mp / mr, "-", None,
                           n / mr, n / mp, raw / mr / 1e6, raw / mp / 1e6)
            unlink(path)
        self.case_sizes()

    def case_sizes(self):
        sample = os.path.join(REPO, "data", "sample.xyz")
        if not os.path.exists(sample):
            log("[5] %s missing: no size comparison" % sample)
            return
        log("[5] file sizes on %s" % sample)
        seed = {"none": "3.10 MB", "lzf": "67.8 %", "gzip-4": "62.3 %", "gzip-9": "61.2 %"}
        out = os.path.join(self.work, "sample.h5")
        none_size = None
        for label, opts in (("none", ["-c", "none"]), ("lzf", ["-c", "lzf"]), ("gzip-4", ["-c", "gzip", "--level", "4"]),
                            ("gzip-9", ["-c", "gzip", "--level", "9"])):
            unlink(out)
            run_child([self.h5ml, "convert", sample, "-o", out, "-q"] + opts, timed=False)
            size = os.path.getsize(out)
            raw, stored = storage(out)
            if none_size is None:
                none_size = size
            # The seed's "none" (3.10 MB for 930 structures, 68K atoms) is the raw data size
            # (68K x 44 + 930 x 156 bytes), so sizes are compared as stored / raw bytes.
            if label == "none":
                cell = "raw %.1f kB, file %.1f kB" % (raw / 1e3, size / 1e3)
            else:
                cell = "%.1f %% (file %.1f kB)" % (100.0 * stored / raw, size / 1e3)
            self.table.add("5 size, sample.xyz, %s" % label, cell, "seed " + seed[label], None, "-", None)
            self.table.notes.append("5 sample.xyz %s: file %d bytes (%.1f %% of the uncompressed file), datasets "
                                    "stored %d of %d raw bytes (%.1f %%)"
                                    % (label, size, 100.0 * size / none_size, stored, raw, 100.0 * stored / raw))
        unlink(out)

    # ---- 12: the issue-5 targets (threads, the write() floor, shuffled and sequential reads) ----

    def case_speed(self):
        q = self.quick
        n, natoms = (20000 if q else 100000), 64
        d = os.path.join(self.work, "atoms")
        if not os.path.exists(os.path.join(d, "natoms.i64")):
            log("[12] generating %d structures of %d atoms (case 1's generator and seed)" % (n, natoms))
            save_arrays(d, make_atoms_data(n, natoms, seed=20261121))
        n = int(os.path.getsize(os.path.join(d, "natoms.i64")) // 8)
        m = n * natoms
        raw = raw_bytes(n, m)
        out = os.path.join(self.work, "speed.h5")
        self.table.notes.append("12: %d structures of %d atoms (case 1's data), %.0f MB raw; h5ml validates (its "
                                "default) in every write row" % (n, natoms, raw / 1e6))
        # 12a/b: compression threads, default (one per core) vs 1
        for label, opts in (("gzip-4", ["--compression", "gzip", "--level", "4"]), ("lzf", ["--compression", "lzf"])):
            td, t1 = [], []
            for rep in range(3):
                td.append(self.atoms(d, out, *opts)["seconds"])
                t1.append(self.atoms(d, out, *opts, "--threads", "1")["seconds"])
                log("[12] %s write rep %d/3: default threads %.3f s, 1 thread %.3f s" % (label, rep + 1, td[-1], t1[-1]))
            md, m1 = median(td), median(t1)
            self.table.add("12 %s write: %d threads vs 1 thread" % (label, os.cpu_count() or 0), secs(md), secs(m1),
                           m1 / md, ">= 1.7", m1 / md >= 1.7, n / md, n / m1, raw / md / 1e6, raw / m1 / 1e6)
        # 12c: uncompressed batch write vs write() of the same bytes
        tw, tr = [], []
        for rep in range(5):
            # Each side writes a new file with no dirty pages of the other's in the way:
            # the previous file is removed and everything flushed (os.sync) before timing.
            unlink(out, out + ".raw")
            os.sync()
            tw.append(self.atoms(d, out, "--compression", "none")["seconds"])
            unlink(out)
            os.sync()
            r = json.loads(run_child([self.bench_atoms, "rawwrite", d, out + ".raw"])[2])
            tr.append(r["seconds"])
            unlink(out + ".raw")
            log("[12] none write rep %d/5: h5ml %.3f s, write() %.3f s" % (rep + 1, tw[-1], tr[-1]))
        mw, mr = median(tw), median(tr)
        # write()'s times are bimodal (about 0.06 s, or 0.3-0.9 s when the kernel stalls to
        # find pages), so the row is judged on the fastest run of each side.
        bw, br = min(tw), min(tr)
        self.table.add("12 write, none vs plain write() (fastest of 5)", secs(bw), secs(br), br / bw, ">= 0.5",
                       br / bw >= 0.5, n / bw, n / br, raw / bw / 1e6, raw / br / 1e6)
        self.table.notes.append("12 write, none: medians h5ml %.3f s, write() %.3f s (ratio %.2f); all runs h5ml %s, "
                                "write() %s" % (mw, mr, mr / mw, " ".join("%.3f" % x for x in tw),
                                                " ".join("%.3f" % x for x in tr)))
        # reads: an uncompressed and a gzip-4 file written by h5ml from the same data
        files = {"none": out, "gzip-4": out + ".gz"}
        self.atoms(d, files["none"], "--compression", "none")
        self.atoms(d, files["gzip-4"], "--compression", "gzip", "--level", "4")
        for p in files.values():
            warm(p)
        k_c = min(n, 100000)
        k_p = 2000 if q else 5000
        perm = np.random.default_rng(20261123).permutation(n)
        self.table.notes.append("12 reads: h5ml reads the first %d of a fixed permutation in batches of 256 "
                                "(h5ml_reader_read_indices, the batch of a training step) or one index per call; "
                                "h5py reads the first %d of a permutation one index at a time (splits row, then "
                                "the slice of every dataset); files read once before timing (page cache warm)"
                                % (k_c, k_p))
        for label, target in (("none", 20.0), ("gzip-4", 10.0)):
            path = files[label]
            tb, t1, tp = [], [], []
            for rep in range(3):
                r = json.loads(run_child([self.bench_atoms, "read", path, "--shuffle", "--chunk", "256",
                                          "--count", str(k_c)])[2])
                tb.append(r["read"] / r["seconds"])
                r = json.loads(run_child([self.bench_atoms, "read", path, "--shuffle", "--chunk", "1",
                                          "--count", str(k_c)])[2])
                t1.append(r["read"] / r["seconds"])
                GUARD.wait()
                t, _ = h5py_atoms_reads(path, perm[:k_p])
                tp.append(k_p / t)
                log("[12] shuffled %s rep %d/3: h5ml batches %.0f st/s, one per call %.0f st/s, h5py %.0f st/s"
                    % (label, rep + 1, tb[-1], t1[-1], tp[-1]))
            sb, s1, sp = median(tb), median(t1), median(tp)
            bar = ">= %g%s" % (target, ", >= 446k st/s" if label == "none" else "")
            ok = sb / sp >= target and (label != "none" or sb >= 446000)
            per = (raw / n) / 1e6
            self.table.add("12 shuffled reads, %s, batches of 256 vs h5py per index" % label, "%.0f st/s" % sb,
                           "%.0f st/s" % sp, sb / sp, bar, ok, sb, sp, sb * per, sp * per)
            self.table.add("12 shuffled reads, %s, one per call vs h5py per index" % label, "%.0f st/s" % s1,
                           "%.0f st/s" % sp, s1 / sp, "-", None, s1, sp, s1 * per, sp * per)
        # 12g: sequential, uncompressed
        ts, tp = [], []
        for rep in range(3):
            r = json.loads(run_child([self.bench_atoms, "read", files["none"], "--chunk", "4096"])[2])
            ts.append(r["seconds"])
            GUARD.wait()
            tp.append(h5py_read_all(files["none"])[0])
            log("[12] sequential none rep %d/3: h5ml %.3f s, h5py read all %.3f s" % (rep + 1, ts[-1], tp[-1]))
        ms, mp = median(ts), median(tp)
        self.table.add("12 sequential reads, none (4096/call) vs h5py read all", secs(ms), secs(mp), mp / ms,
                       ">= 1M st/s", n / ms >= 1e6, n / ms, n / mp, raw / ms / 1e6, raw / mp / 1e6)
        unlink(out, *files.values())

    # ---- signal caches: 6 write, 7 random reads, 8 streaming ----

    SIG_LENGTH = 102400

    def sig_legend(self):
        if not self.keep.get("sig_legend"):
            self.keep["sig_legend"] = True
            self.table.notes.append("6-8: the st/s columns are signals/s and MB/s is raw float32 signal bytes (N x L x 4) "
                                    "per second; ratio = h5ml rate / peer rate (peer time / h5ml time)")

    def signal_data(self):
        """(directory, N, L) of the raw signal files, generated once for cases 6 and 7."""
        if "sigdata" not in self.keep:
            n, length = (220 if self.quick else 1100), self.SIG_LENGTH
            d = os.path.join(self.work, "signals")
            log("[6] generating %d vibration-like signals of %d samples (%.0f MB raw)" % (n, length, n * length * 4 / 1e6))
            make_signal_data(d, n, length, seed=20261122)
            self.keep["sigdata"] = (d, n, length)
        return self.keep["sigdata"]

    def sig(self, *args, timed=True):
        _, _, text, _ = run_child([self.bench_signals] + [str(a) for a in args], timed=timed)
        return json.loads(text)

    def sig_write(self, d, n, length, out, *opts, timed=True):
        unlink(out)
        return self.sig("write", os.path.join(d, "signals.f32"), n, length, out, "--labels", os.path.join(d, "labels.i64"),
                        "--meta", os.path.join(d, "meta.jsonl"), *opts, timed=timed)

    def case_sigwrite(self):
        d, n, length = self.signal_data()
        sig, labels, meta = load_signal_data(d, n, length)
        raw = n * length * 4
        self.sig_legend()
        out_c, out_n = os.path.join(self.work, "sig_h5ml.h5"), os.path.join(self.work, "sig_h5ml_variant.h5")
        out_p, out_s = os.path.join(self.work, "sig_h5py.h5"), os.path.join(self.work, "sig_h5py_shuffle.h5")
        for label, comp in (("gzip-4", "gzip"), ("lzf", "lzf"), ("none", "none")):
            opts = ["--compression", comp] + (["--level", "4"] if comp == "gzip" else [])
            peer_comp = None if comp == "none" else comp
            filtered = comp != "none"
            reps = 3 if filtered else 5
            tc, tn, tp, ts, parts = [], [], [], [], []
            for rep in range(reps):
                # Every timed write starts with no dirty pages in the way (the previous files
                # removed, everything flushed): a 450 MB write otherwise runs at page-cache
                # speed or stalls while the kernel writes back, whichever side comes second.
                unlink(out_c, out_n, out_p, out_s)
                os.sync()
                r = self.sig_write(d, n, length, out_c, *opts)
                tc.append(r["seconds"])
                os.sync()
                parts.append((r["open_s"], r["add_s"], r["close_s"], r["user_s"], r["sys_s"]))
                if filtered:
                    tn.append(self.sig_write(d, n, length, out_n, *opts, "--no-shuffle")["seconds"])
                else:  # what the check for finite samples costs, where nothing else takes CPU time
                    tn.append(self.sig_write(d, n, length, out_n, *opts, "--allow-nonfinite")["seconds"])
                os.sync()
                GUARD.wait()
                tp.append(h5py_cache_write(out_p, sig, labels, meta, peer_comp))
                if filtered:
                    os.sync()
                    GUARD.wait()
                    ts.append(h5py_cache_write(out_s, sig, labels, meta, peer_comp, shuffle=True))
                log("    %s rep %d/%d: h5ml %.3f s (user %.2f, sys %.2f; open %.3f, add %.3f, close %.3f), %s %.3f s, "
                    "h5py %.3f s%s"
                    % (label, rep + 1, reps, r["seconds"], r["user_s"], r["sys_s"], r["open_s"], r["add_s"], r["close_s"],
                       "no shuffle" if filtered else "finite check off", tn[-1], tp[-1],
                       ", h5py shuffle=True %.3f s" % ts[-1] if ts else ""))
            log("    %s: h5ml %s; h5py %s" % (label, spread(tc), spread(tp)))
            mc, mp = median(tc), median(tp)
            self.table.add("6 signal cache write, %s" % label, secs(mc), secs(mp), mp / mc, ">= 1.0", mp / mc >= 1.0,
                           n / mc, n / mp, raw / mc / 1e6, raw / mp / 1e6)
            mn = median(tn)
            self.table.add("6 signal cache write, %s, h5ml %s (context)" % (label, "no shuffle" if filtered else
                                                                            "finite check off"),
                           secs(mn), secs(mp), mp / mn, "-", None, n / mn, n / mp, raw / mn / 1e6, raw / mp / 1e6)
            if filtered:
                ms = median(ts)
                self.table.add("6 signal cache write, %s, h5py shuffle=True (context)" % label, secs(mc), secs(ms),
                               ms / mc, "-", None, n / mc, n / ms, raw / mc / 1e6, raw / ms / 1e6)
            o, ad, cl, us, sy = (median(x) for x in zip(*parts))
            with h5py.File(out_p, "r") as f:
                pchunks = f["signals"].chunks
            sizes = "h5ml %.1f MB" % (os.path.getsize(out_c) / 1e6)
            if filtered:
                sizes += ", h5ml no shuffle %.1f MB" % (os.path.getsize(out_n) / 1e6)
            sizes += ", h5py %.1f MB (chunks %s)" % (os.path.getsize(out_p) / 1e6, pchunks)
            if filtered:
                sizes += ", h5py shuffle=True %.1f MB" % (os.path.getsize(out_s) / 1e6)
            self.table.notes.append("6 %s: %d signals x %d, raw %.1f MB; file sizes %s" % (label, n, length, raw / 1e6, sizes))
            self.table.notes.append("6 %s: h5ml medians: open %.3f s, add %.3f s, close %.3f s; CPU user %.3f s, "
                                    "system %.3f s; `h5ml diff` of the h5ml and h5py files: %s"
                                    % (label, o, ad, cl, us, sy, self.diff(out_c, out_p)))
            if comp == "gzip":  # case 7 reads these
                keep_c, keep_p = os.path.join(self.work, "sig7_h5ml.h5"), os.path.join(self.work, "sig7_h5py.h5")
                os.replace(out_c, keep_c)
                os.replace(out_p, keep_p)
                self.keep["sig_gzip"] = (keep_c, keep_p)
            unlink(out_c, out_n, out_p, out_s)

    def case_sigread(self):
        d, n, length = self.signal_data()
        self.sig_legend()
        files = self.keep.get("sig_gzip")
        if not files or not all(os.path.exists(p) for p in files):
            log("[7] writing the gzip-4 caches (untimed)")
            files = os.path.join(self.work, "sig7_h5ml.h5"), os.path.join(self.work, "sig7_h5py.h5")
            self.sig_write(d, n, length, files[0], "--compression", "gzip", "--level", "4", timed=False)
            sig, labels, meta = load_signal_data(d, n, length)
            h5py_cache_write(files[1], sig, labels, meta, "gzip")
            del sig, labels, meta
        c_file, p_file = files
        k = 256
        idx = np.random.default_rng(20261123).choice(n, k, replace=k > n).astype(np.int64)
        idx_path = os.path.join(self.work, "indices.i64")
        idx.tofile(idx_path)
        raw = np.memmap(os.path.join(d, "signals.f32"), dtype=np.float32, mode="r", shape=(n, length))
        expect = sum(word_sum(raw[i]) for i in idx)
        del raw
        with h5py.File(p_file, "r") as f:
            pchunks = f["signals"].chunks
        log("[7] random reads: %d indices of %d (seed 20261123), gzip-4 files; h5py's chunks %s" % (k, n, pchunks))
        warm(c_file, p_file)
        nbytes = k * length * 4
        reps = 3
        tg, tb, tx, tp, tq, parts = [], [], [], [], [], []
        bad = set()
        for rep in range(reps):
            rg = self.sig("read", c_file, "--indices", idx_path, "--mode", "get")
            rb = self.sig("read", c_file, "--indices", idx_path, "--mode", "batch")
            rx = self.sig("read", p_file, "--indices", idx_path, "--mode", "get")
            GUARD.wait()
            t_p, s_p = h5py_random_reads(p_file, idx)
            GUARD.wait()
            t_q, s_q = h5py_random_reads(c_file, idx)
            for name, got in (("h5ml get", rg["sum"]), ("h5ml batch", rb["sum"]), ("h5ml get on h5py's file", rx["sum"]),
                              ("h5py", s_p), ("h5py on h5ml's file", s_q)):
                if got != expect:
                    bad.add(name)
            tg.append(rg["seconds"])
            tb.append(rb["seconds"])
            tx.append(rx["seconds"])
            tp.append(t_p)
            tq.append(t_q)
            parts.append((rg["open_s"], rg["read_s"], rb["read_s"], rg["chunks_read"], rb["chunks_read"]))
            log("    rep %d/%d: h5ml get %.3f s, batch %.3f s, get on h5py's file %.3f s; h5py %.3f s, h5py on h5ml's "
                "file %.3f s" % (rep + 1, reps, tg[-1], tb[-1], tx[-1], tp[-1], tq[-1]))
        mg, mb, mx, mp, mq = (median(x) for x in (tg, tb, tx, tp, tq))
        self.table.add("7 random reads %d-sample signals (per index)" % length, secs(mg), secs(mp), mp / mg, ">= 3",
                       mp / mg >= 3, k / mg, k / mp, nbytes / mg / 1e6, nbytes / mp / 1e6)
        self.table.add("7 random reads, one batch read of %d (context)" % k, secs(mb), secs(mp), mp / mb, "(>= 3)", None,
                       k / mb, k / mp, nbytes / mb / 1e6, nbytes / mp / 1e6)
        self.table.add("7 random reads per index, h5ml on h5py's file (context)", secs(mx), secs(mp), mp / mx, "-", None,
                       k / mx, k / mp, nbytes / mx / 1e6, nbytes / mp / 1e6)
        self.table.add("7 random reads per index, h5py on h5ml's file (context)", secs(mg), secs(mq), mq / mg, "-", None,
                       k / mg, k / mq, nbytes / mg / 1e6, nbytes / mq / 1e6)
        o, rd, rdb, cg, cb = (median(x) for x in zip(*parts))
        self.table.notes.append("7: %d random indices of %d (numpy default_rng(20261123), %s replacement), the same on both "
                                "sides; gzip-4 files of case 6, read once before timing (page cache warm); times include "
                                "open and close. h5ml get: open %.4f s, reads %.3f s, %d chunks decoded; batch: reads %.3f s, "
                                "%d chunks. Chunks: h5ml's file (1, %d), h5py's file %s"
                                % (k, n, "with" if k > n else "without", o, rd, cg, rdb, cb, length, pchunks))
        self.table.notes.append("7: values read (sum of the 32-bit patterns) equal the written signals: %s"
                                % ("yes, on every side" if not bad else "NO for " + ", ".join(sorted(bad))))
        unlink(c_file, p_file, idx_path)

    def case_sigstream(self):
        self.sig_legend()
        per_class = 20 if self.quick else 100
        path = os.path.join(self.work, "stream_none.h5")
        log("[8] streaming: generating a split file of %d x 11 signals, uncompressed (bench_signals generate)" % per_class)
        g = self.sig("generate", path, "--per-class", per_class, "--compression", "none", timed=False)
        block = 4  # signals per read_range call; read() uses a buffer of the same size
        with h5py.File(path, "r") as f:
            ds = f["train/signals"]
            n, length = ds.shape
            chunks = ds.chunks
            offsets = [ds.id.get_chunk_info(i).byte_offset for i in range(ds.id.get_num_chunks())]
            expect = 0
            for s in range(0, n, block):  # bench_signals' check: the first word of every 4 KiB of each block
                expect += int(np.sum(ds[s:s + block].view(np.uint32).ravel()[::1024], dtype=np.uint64))
        assert n == g["train"], "generate wrote %d train signals, the file has %d" % (g["train"], n)
        nbytes = n * length * 4
        size = os.path.getsize(path)
        chunk_bytes = chunks[0] * length * 4
        in_order = all(b > a for a, b in zip(offsets, offsets[1:]))
        gaps = sum(b - a - chunk_bytes for a, b in zip(offsets, offsets[1:]))
        layout = "%s, spanning %d bytes from byte %d (%d bytes of other objects between them)" % (
            "in file order" if in_order else "NOT in file order", max(offsets) + chunk_bytes - min(offsets), min(offsets),
            gaps)
        offset = min(min(offsets), size - nbytes)
        log("    %s: %.1f MB; train %d signals (%.1f MB), chunks %s %s" % (path, size / 1e6, n, nbytes / 1e6, chunks, layout))
        warm(path)
        reps = 5
        th, t1, tr, ty, cpu_h, cpu_r = [], [], [], [], [], []
        bad = False
        for rep in range(reps):
            r = self.sig("stream", path, "--split", "train", "--block", block)
            r1 = self.sig("stream", path, "--split", "train", "--block", block, "--threads", 1)
            rr = self.sig("rawread", path, "--bytes", nbytes, "--offset", offset, "--piece", block * length * 4)
            GUARD.wait()
            ty.append(py_rawread(path, offset, nbytes, block * length * 4))
            bad = bad or r["sum"] != expect or r1["sum"] != expect or rr["bytes"] != nbytes
            th.append(r["seconds"])
            t1.append(r1["seconds"])
            tr.append(rr["seconds"])
            cpu_h.append((r["user_s"], r["sys_s"]))
            cpu_r.append((rr["user_s"], rr["sys_s"]))
            log("    rep %d/%d: h5ml read_range %.3f s (user %.3f, sys %.3f), 1 thread %.3f s; read() %.3f s (sys %.3f); "
                "os.read %.3f s" % (rep + 1, reps, th[-1], r["user_s"], r["sys_s"], t1[-1], tr[-1], rr["sys_s"], ty[-1]))
        mh, m1, mr, my = (median(x) for x in (th, t1, tr, ty))
        self.table.add("8 stream train split vs read()", secs(mh), secs(mr), mr / mh, ">= 0.8", mr / mh >= 0.8,
                       n / mh, n / mr, nbytes / mh / 1e6, nbytes / mr / 1e6)
        self.table.add("8 stream train split, 1 thread (context)", secs(m1), secs(mr), mr / m1, "-", None,
                       n / m1, n / mr, nbytes / m1 / 1e6, nbytes / mr / 1e6)
        self.table.add("8 stream train split vs Python os.read (context)", secs(mh), secs(my), my / mh, "-", None,
                       n / mh, n / my, nbytes / mh / 1e6, nbytes / my / 1e6)
        hu, hs = (median(x) for x in zip(*cpu_h))
        ru, rs = (median(x) for x in zip(*cpu_r))
        self.table.notes.append("8: train split of a generated uncompressed split file (%d signals of %d, %.1f MB of "
                                "%.1f MB; chunks %s %s), h5ml_sigreader_read_range in blocks of %d signals (one "
                                "reused buffer) vs read() of the same %d bytes from byte %d into a buffer of the same size; the file "
                                "was read once before timing, so every run reads from the page cache"
                                % (n, length, nbytes / 1e6, size / 1e6, chunks, layout, block, nbytes, offset))
        self.table.notes.append("8: CPU medians: h5ml user %.3f s + system %.3f s; read() user %.3f s + system %.3f s; "
                                "values streamed match h5py's: %s" % (hu, hs, ru, rs, "no" if bad else "yes"))
        unlink(path)

    # ---- the Python module: 9 add_structure, 10 add_batch, 11 shuffled reads through the datasets ----

    def pyenv(self):
        """The environment of the Python-module children: PYTHONPATH = the build's python
        directory (next to the h5ml program), or None when the module is not built there."""
        if "pyenv" not in self.keep:
            pydir = os.path.join(os.path.dirname(self.h5ml), "python")
            env = None
            if os.path.isdir(os.path.join(pydir, "h5ml")):
                env = dict(os.environ)
                env["PYTHONPATH"] = pydir
            else:
                log("[9-11] %s/h5ml missing (make build): the Python-module cases are skipped" % pydir)
                self.table.notes.append("9-11: skipped: no Python module in %s (make build)" % pydir)
            self.keep["pyenv"] = env
        return self.keep["pyenv"]

    def py(self, op, timed=True, **spec):
        """Runs one side of one repetition in a child /usr/bin/python3 (bench/pycases.py);
        returns its JSON result."""
        spec["op"] = op
        cmd = [sys.executable, os.path.join(HERE, "pycases.py"), json.dumps(spec)]
        if timed:
            GUARD.wait()
        p = subprocess.run(cmd, env=self.pyenv(), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("pycases %s failed (exit %d): %s" % (op, p.returncode, p.stderr.strip()[-2000:]))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if r.get("h5py_loaded") or r.get("h5ml_loaded"):
            raise RuntimeError("pycases %s: the child loaded the other side's module" % op)
        return r

    def py_atoms_data(self):
        """(raw-array directory, .npz, arrays, N) of the 64-atom structures of cases 9-11:
        case 1's generator and seed, generated once."""
        if "pyatoms" not in self.keep:
            n = 5000 if self.quick else 20000
            d = os.path.join(self.work, "pyatoms")
            log("[9] generating %d structures of 64 atoms (case 1's generator and seed)" % n)
            a = make_atoms_data(n, 64, seed=20261121)
            save_arrays(d, a)
            npz = os.path.join(self.work, "pyatoms.npz")
            np.savez(npz, **a)
            self.keep["pyatoms"] = (d, npz, a, n)
        return self.keep["pyatoms"]

    def case_py_single(self):
        if self.pyenv() is None:
            return
        d, npz, a, n = self.py_atoms_data()
        q = self.quick
        n_c, n_p = n, (500 if q else 2000)
        m_c, m_p = int(a["natoms"][:n_c].sum()), int(a["natoms"][:n_p].sum())
        log("[9] HDF5DatasetWriter.add_structure loop: h5ml %d structures, h5py loop %d (ase.Atoms built before "
            "timing, one child process per measurement)" % (n_c, n_p))
        out_c, out_p = os.path.join(self.work, "py9_h5ml.h5"), os.path.join(self.work, "py9_h5py.h5")
        lib = os.path.join(self.work, "py9_lib.h5")
        for label, comp, target in (("gzip-4", "gzip", True), ("none", None, False)):
            reps = 5 if target else 3  # the h5py loop's rate varies by a third from run to run
            tc, tp, tl = [], [], []
            for rep in range(reps):
                r = self.py("h5ml_add_structure", npz=npz, count=n_c, out=out_c, compression=comp)
                assert r["structures"] == n_c, r
                tc.append(r["seconds"])
                p = self.py("h5py_loop", npz=npz, count=n_p, out=out_p, compression=comp)
                assert p["structures"] == n_p, p
                tp.append(p["seconds"])
                log("    %s rep %d/%d: h5ml add_structure %.3f s (%.0f st/s), h5py loop %.3f s (%.0f st/s)"
                    % (label, rep + 1, reps, tc[-1], n_c / tc[-1], tp[-1], n_p / tp[-1]))
                if r["warnings"]:
                    self.table.notes.append("9 %s: h5ml issued %d warnings" % (label, r["warnings"]))
            # Where the time goes: the parts alone (minimum of 3 interleaved rounds each), and the
            # library alone from C (bench_atoms single mode: h5ml_writer_add per structure).
            pr = self.py("h5ml_add_structure_parts", npz=npz, count=n_c, out=out_c, compression=comp)
            for _ in range(3):
                lr = self.atoms(d, lib, "--mode", "single", "--count", str(n_c), "--compression", comp or "none",
                                *(["--level", "4"] if comp else []))
                tl.append(lr["seconds"])
            log("    %s parts (min of %d rounds): add_structure loop %.3f s (calling thread CPU %.3f s); Atoms access "
                "alone %.3f s; extension Writer.add with arrays ready %.3f s (thread CPU %.3f s); library alone (C) "
                "%.3f s" % (label, pr["rounds"], pr["total_s"], pr["total_cpu_s"], pr["ase_s"], pr["ext_s"],
                            pr["ext_cpu_s"], min(tl)))
            mc, mp = median(tc), median(tp)
            sc, sp = n_c / mc, n_p / mp
            name = "9 py add_structure loop, %s" % label + ("" if target else " (context)")
            self.table.add(name, "%s for %s" % (secs(mc), "{:,}".format(n_c)),
                           "%s for %s" % (secs(mp), "{:,}".format(n_p)), sc / sp, ">= 50" if target else "-",
                           (sc / sp >= 50) if target else None, sc, sp, raw_bytes(n_c, m_c) / mc / 1e6,
                           raw_bytes(n_p, m_p) / mp / 1e6)
            us = 1e6 / n_c
            tot, ase_s, ext_s, ml = pr["total_s"], pr["ase_s"], pr["ext_s"], min(tl)
            head = ("9 %s: where add_structure's time goes (each part alone, from writer creation to finalize, "
                    "fastest of %d rounds; per structure): " % (label, pr["rounds"]))
            if comp is None:
                self.table.notes.append(head + (
                    "the loop %.1f us = Atoms access as the writer does it (_atoms_arrays: .numbers/.positions/.cell/"
                    ".pbc + np.asarray) %.1f us + the extension's Writer.add with the arrays ready %.1f us (of which "
                    "the library alone, h5ml_writer_add from C, %.1f us) + the rest of the Python layer (energy/"
                    "forces/stress checks, the calls) %s"
                    % (tot * us, ase_s * us, ext_s * us, ml * us,
                       "%.1f us" % ((tot - ase_s - ext_s) * us) if (tot - ase_s - ext_s) * us >= 0.5 else
                       "under 0.5 us (the parts, each timed alone, add up to the loop within the noise)")))
            else:
                self.table.notes.append(head + (
                    "the loop %.1f us, of which the calling thread is busy %.1f us (it waits the rest for the "
                    "library's compression threads: 2 cores for Python and the compressors); Atoms access as the "
                    "writer does it (_atoms_arrays) %.1f us; the extension's Writer.add with the arrays ready %.1f us "
                    "(calling thread busy %.1f us); the library alone, h5ml_writer_add from C, %.1f us: compressing "
                    "bounds the rate, the parts overlap"
                    % (tot * us, pr["total_cpu_s"] * us, ase_s * us, ext_s * us, pr["ext_cpu_s"] * us, ml * us)))
        self.table.notes.append(
            "9: the same %d-atom periodic structures on both sides, as lists of ase.Atoms, float energies, (64, 3) "
            "force arrays and Voigt stresses (None on every other structure), built before timing in each child; "
            "h5ml: HDF5DatasetWriter(compression=..., compression_opts=4).add_structure per structure, then "
            "finalize(); h5py: the original writer's loop (case 2's, taking each Atoms' get_atomic_numbers/"
            "get_positions/get_cell/get_pbc); rates compared, h5ml on %d structures, h5py on the first %d; medians "
            "of 5 (gzip-4) and 3 (none) repetitions, one child process per side and repetition" % (64, n_c, n_p))
        unlink(out_c, out_p, lib)

    def case_py_batch(self):
        if self.pyenv() is None:
            return
        d, npz, a, n = self.py_atoms_data()
        m = int(a["natoms"].sum())
        raw = raw_bytes(n, m)
        log("[10] HDF5DatasetWriter.add_batch of %d ase.Atoms vs h5py whole arrays built from the same Atoms" % n)
        out_c, out_p = os.path.join(self.work, "py10_h5ml.h5"), os.path.join(self.work, "py10_h5py.h5")
        for label, comp in (("none", None), ("gzip-4 + shuffle", "gzip")):
            reps = 5 if comp is None else 3
            tc, tp, pp = [], [], []
            for rep in range(reps):
                last = rep == reps - 1
                r = self.py("h5ml_add_batch", npz=npz, count=n, out=out_c, compression=comp, keep=last)
                assert r["structures"] == n, r
                tc.append(r["seconds"])
                p = self.py("h5py_batch", npz=npz, count=n, out=out_p, compression=comp, keep=last)
                assert p["structures"] == n, p
                tp.append(p["seconds"])
                pp.append(p["build_s"])
                log("    %s rep %d/%d: h5ml add_batch %.3f s, h5py %.3f s (of which arrays from the Atoms %.3f s)"
                    % (label, rep + 1, reps, tc[-1], tp[-1], pp[-1]))
                if r["warnings"]:
                    self.table.notes.append("10 %s: h5ml issued %d warnings" % (label, r["warnings"]))
            pr = self.py("h5ml_add_batch_parts", npz=npz, count=n, out=out_c + ".parts", compression=comp)
            log("    %s parts (min of %d rounds): add_batch %.3f s; alone: _gather %.3f s, extension add_batch + "
                "finalize %.3f s" % (label, pr["rounds"], pr["total_s"], pr["gather_s"], pr["write_s"]))
            mc, mp = median(tc), median(tp)
            self.table.add("10 py add_batch of Atoms, %s" % label, secs(mc), secs(mp), mp / mc, ">= 1.0",
                           mp / mc >= 1.0, n / mc, n / mp, raw / mc / 1e6, raw / mp / 1e6)
            self.table.notes.append(
                "10 %s: medians of %d: h5ml %.3f s, h5py %.3f s (of which building the arrays from the Atoms %.3f s). "
                "h5ml's parts, each alone (fastest of %d rounds): add_batch %.3f s = HDF5DatasetWriter._gather of the "
                "Atoms and lists %.3f s (%.1f us per structure) + the extension's add_batch of the gathered arrays "
                "and finalize %.3f s, overlapped (a block is gathered while the previous one is written). "
                "`h5ml diff` of the two files: %s; sizes h5ml %.1f MB, h5py %.1f MB"
                % (label, reps, mc, mp, median(pp), pr["rounds"], pr["total_s"], pr["gather_s"],
                   pr["gather_s"] / n * 1e6, pr["write_s"], self.diff(out_c, out_p), os.path.getsize(out_c) / 1e6,
                   os.path.getsize(out_p) / 1e6))
            unlink(out_c, out_p)
        self.table.notes.append(
            "10: %d structures of 64 atoms as lists (ase.Atoms, float energies, (64, 3) forces, Voigt stresses or "
            "None), built before timing; h5ml: HDF5DatasetWriter(...).add_batch(structures, energies, forces, "
            "stresses, show_progress=False) + finalize(); h5py: numbers/positions/forces concatenated and "
            "cells/pbc/stresses stacked from the same objects inside the timed region, then case 1's "
            "h5py_batch_write (h5ml's schema and chunks; gzip with shuffle, h5ml's default)" % n)

    def case_py_read(self):
        if self.pyenv() is None:
            return
        self.case_py_atoms_read()
        self.case_py_sig_read()

    def case_py_atoms_read(self):
        d, npz, a, n = self.py_atoms_data()
        q = self.quick
        files = []
        for label, opts in (("none", ["--compression", "none"]), ("gzip-4", ["--compression", "gzip", "--level", "4"])):
            path = os.path.join(self.work, "py11_%s.h5" % label.split("-")[0])
            self.atoms(d, path, *opts)
            files.append((label, path))
        perm = np.random.default_rng(20261124).permutation(n).astype(np.int64)
        idx_path = os.path.join(self.work, "py11_perm.npy")
        np.save(idx_path, perm)
        k_p = {"none": 500 if q else 1000, "gzip-4": 200 if q else 400}
        natoms = a["natoms"]
        off = np.concatenate(([0], np.cumsum(natoms)))

        def expect(k):  # (energy sum, atomic number sum, position sum) of the first k indices
            sel = perm[:k]
            at = np.concatenate([np.arange(off[i], off[i + 1]) for i in sel])
            return [float(a["energy"][sel].sum()), int(a["numbers"][at].sum()), float(a["positions"][at].sum())]

        def same(got, want):  # the float sums are summed in another order on each side
            close = all(abs(g - w) <= 1e-9 * max(1.0, abs(w)) for g, w in ((got[0], want[0]), (got[2], want[2])))
            return got[1] == want[1] and close

        log("[11a] AtomsDataset[i] over a shuffled permutation of %d structures (h5ml, all) vs a naive h5py Dataset "
            "(the first %d / %d of the same permutation, none / gzip-4)" % (n, k_p["none"], k_p["gzip-4"]))
        warm(*(p for _, p in files))
        paths = [p for _, p in files]
        reps = 3
        tc = {l: [] for l, _ in files}
        tp = {l: [] for l, _ in files}
        flt = {l: [] for l, _ in files}
        bad = set()
        for rep in range(reps):
            r = self.py("h5ml_atoms_read", paths=paths, indices=idx_path, counts=[n, n])
            p = self.py("h5py_atoms_read", paths=paths, indices=idx_path, counts=[k_p[l] for l, _ in files])
            for (label, _), rc, rp in zip(files, r["runs"], p["runs"]):
                tc[label].append(rc["seconds"])
                tp[label].append(rp["seconds"])
                flt[label].append((rc["minor_faults"] / rc["count"], rp["minor_faults"] / rp["count"]))
                if not same(rc["check"], expect(rc["check_count"])):
                    bad.add("h5ml " + label)
                if not same(rp["check"], expect(rp["check_count"])):
                    bad.add("h5py " + label)
            log("    rep %d/%d: " % (rep + 1, reps) + "; ".join(
                "%s: h5ml %.3f s (%.0f st/s), h5py %.3f s (%.0f st/s)" % (l, tc[l][-1], n / tc[l][-1], tp[l][-1],
                                                                         k_p[l] / tp[l][-1]) for l, _ in files))
        k_parts = min(n, 5000)
        parts = self.py("h5ml_atoms_parts", paths=paths, indices=idx_path, count=k_parts)["runs"]
        for (label, path), pt in zip(files, parts):
            mc, mp = median(tc[label]), median(tp[label])
            sc, sp = n / mc, k_p[label] / mp
            m_c = int(natoms.sum())
            m_p = int(natoms[perm[:k_p[label]]].sum())
            target = label == "gzip-4"
            self.table.add("11a py AtomsDataset[i] shuffled, %s%s" % (label, "" if target else " (context)"),
                           "%s for %s" % (secs(mc), "{:,}".format(n)),
                           "%s for %s" % (secs(mp), "{:,}".format(k_p[label])), sc / sp,
                           ">= 10" if target else "(>= 10)", (sc / sp >= 10) if target else None, sc, sp,
                           raw_bytes(n, m_c) / mc / 1e6, raw_bytes(k_p[label], m_p) / mp / 1e6)
            g, it = pt["get_s"] / pt["count"], pt["item_s"] / pt["count"]
            fc, fp = (median(x) for x in zip(*flt[label]))
            self.table.notes.append(
                "11a %s: per index: h5ml dataset[i] %.1f us in the timed runs (median), h5py %.0f us. h5ml's parts on "
                "the first %d indices (fastest of %d rounds): the extension's Reader.get alone %.1f us (the library's "
                "8 dataset reads and the info lookup, the dict of new numpy arrays), the whole __getitem__ %.1f us, "
                "so the tensors and the rest of the Python layer %.1f us. Memory: one h5ml reader holds %.1f MB more "
                "after reading each of the %d structures once (resident memory of a fresh process; the raw size of "
                "the file's datasets is %.1f MB); minor page faults per index in the timed runs: h5ml %.2f, h5py %.2f"
                % (label, mc / n * 1e6, mp / k_p[label] * 1e6, pt["count"], pt["rounds"], g * 1e6, it * 1e6,
                   (it - g) * 1e6, pt["held_bytes"] / 1e6, pt["held_count"], raw_bytes(n, int(natoms.sum())) / 1e6,
                   fc, fp))
        with h5py.File(files[1][1], "r") as f:
            chunks = "atoms %s, structures %s" % (f["structures/positions"].chunks[0], f["structures/cells"].chunks[0])
        self.table.notes.append(
            "11a: case-1-style files of %d structures of 64 atoms written by bench_atoms (chunks of %s rows; gzip-4 "
            "with shuffle), read once before timing; numpy default_rng(20261124).permutation(%d): h5ml's "
            "AtomsDataset(path)[i] over all of it, the h5py Dataset (one open file; per index "
            "f['structures/atomic_numbers_splits'][i:i+2], then a slice or row of each of the 8 datasets) over its "
            "first %d (none) / %d (gzip-4); torch is imported first on both sides (as a training script does); "
            "both sides return the same dict of torch tensors and include "
            "creating and closing the dataset and keep only the last sample (a training loop drops each batch); "
            "one child process per side and repetition; values read (first 32 indices, read again after "
            "timing) equal the written ones: %s" % (n, chunks, n, k_p["none"], k_p["gzip-4"],
                                   "yes, on every side" if not bad else "NO for " + ", ".join(sorted(bad))))
        unlink(idx_path, *(p for _, p in files))

    def case_py_sig_read(self):
        q = self.quick
        per_class = 20 if q else 40
        c_file, p_file = os.path.join(self.work, "py11_sig_h5ml.h5"), os.path.join(self.work, "py11_sig_h5py.h5")
        log("[11b] StreamingHDF5Dataset[i] shuffled: `h5ml signals generate --per-class %d` (gzip-4), and the same "
            "splits written the original CacheManager.cache_dataset_with_splits way with h5py" % per_class)
        unlink(c_file)
        run_child([self.h5ml, "signals", "generate", "-o", c_file, "--per-class", str(per_class), "-q"], timed=False)
        with h5py.File(c_file, "r") as f:
            parts = {s: (f[s]["signals"][:], f[s]["labels"][:]) for s in ("train", "val", "test")}
            n_all = int(f.attrs["num_signals"])
        sig, lab = parts["train"]
        n, length = sig.shape
        sums = sig.view(np.uint32).sum(axis=1, dtype=np.uint64)
        h5py_split_write(p_file, parts, n_all)
        del parts, sig
        with h5py.File(p_file, "r") as f:
            pchunks = f["train/signals"].chunks
        with h5py.File(c_file, "r") as f:
            cchunks = f["train/signals"].chunks
        perm = np.random.default_rng(20261125).permutation(n).astype(np.int64)
        idx_path = os.path.join(self.work, "py11_sigperm.npy")
        np.save(idx_path, perm)
        k_p = 24 if q else 64  # indices read from h5py's file: each decodes a row of chunks several signals high

        def expect(k):
            return [int(sums[perm[:k]].sum(dtype=np.uint64)), int(lab[perm[:k]].sum())]

        warm(c_file, p_file)
        log("    train split %d x %d; chunks h5ml %s, h5py %s; h5ml reads all %d, h5py the first %d on its own file"
            % (n, length, cchunks, pchunks, n, k_p))
        reps = 3
        tc, tx, tp, tq, flt = [], [], [], [], []
        bad = set()
        for rep in range(reps):
            r = self.py("h5ml_sig_read", paths=[c_file, p_file], indices=idx_path, counts=[n, k_p])
            p = self.py("h5py_sig_read", paths=[p_file, c_file], indices=idx_path, counts=[k_p, n])
            (rc, rx), (rp, rq) = r["runs"], p["runs"]
            for name, run_ in (("h5ml", rc), ("h5ml on h5py's file", rx), ("h5py", rp), ("h5py on h5ml's file", rq)):
                if run_["check"] != expect(run_["check_count"]) + [[1, length]]:
                    bad.add(name)
            tc.append(rc["seconds"])
            tx.append(rx["seconds"])
            tp.append(rp["seconds"])
            tq.append(rq["seconds"])
            flt.append(tuple(x["minor_faults"] / x["count"] for x in (rc, rx, rp, rq)))
            log("    rep %d/%d: h5ml %.3f s (%.0f sig/s), on h5py's file %.3f s (%.0f sig/s); h5py %.3f s "
                "(%.0f sig/s), on h5ml's file %.3f s (%.0f sig/s)"
                % (rep + 1, reps, tc[-1], n / tc[-1], tx[-1], k_p / tx[-1], tp[-1], k_p / tp[-1], tq[-1], n / tq[-1]))
        mc, mx, mp, mq = (median(x) for x in (tc, tx, tp, tq))
        sb = length * 4
        self.table.add("11b py StreamingHDF5Dataset[i] shuffled, gzip-4", "%s for %d" % (secs(mc), n),
                       "%s for %d" % (secs(mp), k_p), (n / mc) / (k_p / mp), ">= 10", (n / mc) / (k_p / mp) >= 10,
                       n / mc, k_p / mp, n * sb / mc / 1e6, k_p * sb / mp / 1e6)
        self.table.add("11b py StreamingHDF5Dataset[i], h5ml on h5py's file (context)", "%s for %d" % (secs(mx), k_p),
                       "%s for %d" % (secs(mp), k_p), mp / mx, "-", None, k_p / mx, k_p / mp, k_p * sb / mx / 1e6,
                       k_p * sb / mp / 1e6)
        self.table.add("11b py StreamingHDF5Dataset[i], h5py on h5ml's file (context)", "%s for %d" % (secs(mc), n),
                       "%s for %d" % (secs(mq), n), mq / mc, "-", None, n / mc, n / mq, n * sb / mc / 1e6,
                       n * sb / mq / 1e6)
        self.table.notes.append(
            "11b: st/s = signals/s, MB/s = float32 signal bytes per second. Train split (%d signals of %d) of `h5ml "
            "signals generate --per-class %d` (gzip-4 + shuffle, chunks %s) and the same splits written as the "
            "original CacheManager.cache_dataset_with_splits does (h5py create_dataset(data=..., compression='gzip', "
            "compression_opts=4): chunks %s, no shuffle); both read once before timing. numpy "
            "default_rng(20261125).permutation(%d): h5ml's StreamingHDF5Dataset(path, split='train')[i] over all of "
            "it, the original StreamingHDF5Dataset (h5py, swmr=True, f['train']['signals'][idx], "
            "torch.from_numpy(signal.astype(np.float32)).unsqueeze(0), int(label)) over its first %d on h5py's file; "
            "cache_size 0 on both sides; torch imported first on both sides (as a training script does); times "
            "include creating the dataset, only the last sample is kept; one child process per side and "
            "repetition; values and labels read (first 32 indices, read again after timing) equal the written "
            "ones: %s" % (n, length, per_class, cchunks, pchunks, n, k_p,
                          "yes, on every side" if not bad else "NO for " + ", ".join(sorted(bad))))
        self.table.notes.append(
            "11b: minor page faults per index (medians; %d per signal would mean a fresh signal-sized buffer every "
            "time): h5ml %.0f on its file, %.0f on h5py's; h5py %.0f on its file, %.0f on h5ml's"
            % ((length * 4 // 4096,) + tuple(median(x) for x in zip(*flt))))
        unlink(c_file, p_file, idx_path)


def write_molecules(path, n, block=10000, distinct=4):
    """n 8-atom molecules in extended XYZ (no cell, energy, forces). `distinct` blocks of
    `block` random molecules are formatted once with numpy and written cyclically."""
    rng = np.random.default_rng(11)
    sym = np.array(["H", "C", "N", "O"])
    base = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [0, 0, 1.1], [1.1, 1.1, 0], [1.1, 0, 1.1], [0, 1.1, 1.1],
                     [1.1, 1.1, 1.1]])
    head = '8\nProperties=species:S:1:pos:R:3:forces:R:3 energy=%.8f pbc="F F F"\n'
    atom = "%s %.6f %.6f %.6f %.6f %.6f %.6f\n" * 8
    blocks = []
    for _ in range(distinct):
        z = sym[rng.integers(0, 4, (block, 8))]
        rows = np.concatenate([base[None] + rng.uniform(-0.2, 0.2, (block, 8, 3)), rng.normal(0, 1, (block, 8, 3))],
                              axis=2)
        e = rng.normal(-50, 2, block)
        parts = []
        for i in range(block):
            vals = []
            for k in range(8):
                vals.append(z[i, k])
                vals.extend(rows[i, k].tolist())
            parts.append(head % e[i] + atom % tuple(vals))
        blocks.append("".join(parts).encode())
    with open(path, "wb") as fh:
        full, rest = divmod(n, block)
        for k in range(full):
            fh.write(blocks[k % distinct])
        if rest:
            lines = blocks[full % distinct].split(b"\n")
            fh.write(b"\n".join(lines[:rest * 10]) + b"\n")


# ---- main ---------------------------------------------------------------------------------


def machine(bench):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    v = run_child([bench.h5ml, "version"], timed=False)[2]
    lib = run_child([bench.bench_atoms, "--version"], timed=False)[2]
    lib = json.loads(lib)
    try:
        import ase
        ase_v = ase.__version__
    except ImportError:
        ase_v = "missing"
    return [
        ("CPU", "%s, %d cores" % (cpu, os.cpu_count() or 0)),
        ("system", "Linux %s, Python %s" % (platform.release(), platform.python_version())),
        ("h5ml", "%s (%s), linked HDF5 %s" % (v.strip(), bench.h5ml, lib["hdf5"])),
        ("peers", "h5py %s (HDF5 %s), numpy %s, ASE %s" % (h5py.version.version, h5py.version.hdf5_version,
                                                          np.__version__, ase_v)),
        ("load", "load average %.2f %.2f %.2f at start (other work on the machine adds noise)" % os.getloadavg()),
        ("workdir", bench.work),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h5ml", required=True, help="the h5ml program")
    ap.add_argument("--bench-dir", required=True, help="directory of the built bench programs; results.md goes here")
    ap.add_argument("--quick", action="store_true", help="smaller data sets, 100k molecules for the memory case")
    ap.add_argument("--workdir", help="directory for temporary files (default: a new one under /tmp)")
    ap.add_argument("--cases", default="1,3,4,5,6,7,8,9,10,11,12",
                    help="comma-separated cases to run (1 includes 2; default all)")
    args = ap.parse_args()
    if args.quick:
        GUARD.budget = 5.0
    cases = set(args.cases.split(","))
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="h5ml-bench-", dir=args.workdir or "/tmp") as work:
        b = Bench(args, work)
        info = machine(b)
        for k, v in info:
            log("%-8s %s" % (k + ":", v))
        if "1" in cases or "2" in cases:
            b.case_write()
        if "3" in cases:
            b.case_convert()
        if "4" in cases:
            b.case_memory()
        if "5" in cases:
            b.case_read()
        if "6" in cases:
            b.case_sigwrite()
        if "7" in cases:
            b.case_sigread()
        if "8" in cases:
            b.case_sigstream()
        if "9" in cases:
            b.case_py_single()
        if "10" in cases:
            b.case_py_batch()
        if "11" in cases:
            b.case_py_read()
        if "12" in cases:
            b.case_speed()
    total = time.perf_counter() - t_start
    t = b.table
    head = "\n".join("%-8s %s" % (k + ":", v) for k, v in info if k != "workdir")
    print("h5ml benchmark%s\n%s\n" % (" (--quick)" if args.quick else "", head))
    print(t.text())
    print("\nratio = h5ml structures/s / peer structures/s (higher is better for h5ml); times are medians.")
    for note in t.notes:
        print("note: " + note)
    quiet = ("%d of %d measurements started while other processes were running (waited %.0f s for quiet)"
             % (GUARD.busy, GUARD.measurements, GUARD.waited))
    print("total %.0f s; load average at the end %.2f %.2f %.2f; %s" % ((total,) + os.getloadavg() + (quiet,)))
    md = ["# h5ml benchmark results%s" % (" (--quick)" if args.quick else ""), ""]
    md += ["- **%s**: %s" % (k, v) for k, v in info if k != "workdir"]
    md += ["", t.markdown(), "",
           "ratio = h5ml structures/s / peer structures/s (higher is better for h5ml); times are medians of "
           "repeated runs with h5ml and the peer alternating. MB/s: raw size of the 11 datasets "
           "(cases 1, 2, 5) or of the XYZ text (3, 4) per second. Write times include creating and "
           "finalizing the file; loading the input arrays is not timed.", ""]
    md += ["- " + n for n in t.notes]
    md += ["", "Total run time %.0f s; %s." % (total, quiet), ""]
    path = os.path.join(args.bench_dir, "results.md")
    with open(path, "w") as f:
        f.write("\n".join(md))
    log("wrote %s" % path)
    return 0  # a missed target is a result, not an error


if __name__ == "__main__":
    sys.exit(main())
