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

Times are medians of repeated runs; h5ml and its peer alternate within each repetition.
Write times include creating and closing (finalizing) the file; loading the input arrays
into memory is not timed on either side.
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


def h5py_loop_write(path, a, count, compression):
    """The original HDF5DatasetWriter's way: datasets created empty (chunks=True, maxshape
    None), then per structure its checks and, for every dataset, resize by one structure
    and assign the new rows."""
    kw = {} if compression is None else dict(compression=compression, compression_opts=4)
    natoms, numbers, pos, forces = a["natoms"], a["numbers"], a["positions"], a["forces"]
    cells, pbc, energy, stress, mask = a["cells"], a["pbc"], a["energy"], a["stress"], a["stress_mask"]
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
            k = int(natoms[i])
            z, p, fr = numbers[m:m + k], pos[m:m + k], forces[m:m + k]
            if not np.isfinite(energy[i]):
                raise ValueError("Invalid energy: %s" % energy[i])
            if fr.shape != p.shape:
                raise ValueError("Forces shape %s doesn't match atoms %s" % (fr.shape, p.shape))
            if np.isnan(fr).any() or np.isinf(fr).any():
                raise ValueError("Forces contain NaN or Inf")
            if mask[i] and not np.isfinite(stress[i]).all():
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
            ce[i] = cells[i]
            pb.resize((i + 1, 3))
            pb[i] = pbc[i]
            en.resize((i + 1,))
            en[i] = energy[i]
            st.resize((i + 1, 6))
            st[i] = stress[i] if mask[i] else 0
            sm.resize((i + 1,))
            sm[i] = mask[i]
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
    ap.add_argument("--cases", default="1,3,4,5", help="comma-separated cases to run (1 includes 2; default all)")
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
