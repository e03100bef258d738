"""Shared helpers of the h5ml Python interop tests (imported by conftest.py and the tests).

Nothing here depends on h5ml's own Python module: the files are read with h5py and ASE
only, the program is driven through its command line.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample.xyz"

# The schema of SPEC section 1: name -> (dtype, shape with "N"/"M" placeholders).
SCHEMA = {
    "structures/atomic_numbers": (np.dtype(np.int64), ("M",)),
    "structures/atomic_numbers_splits": (np.dtype(np.int64), ("N+1",)),
    "structures/positions": (np.dtype(np.float64), ("M", 3)),
    "structures/cells": (np.dtype(np.float64), ("N", 3, 3)),
    "structures/pbc": (np.dtype(np.bool_), ("N", 3)),
    "labels/energy": (np.dtype(np.float64), ("N",)),
    "labels/forces": (np.dtype(np.float32), ("M", 3)),
    "labels/forces_splits": (np.dtype(np.int64), ("N+1",)),
    "labels/stress": (np.dtype(np.float64), ("N", 6)),
    "labels/stress_mask": (np.dtype(np.bool_), ("N",)),
    "labels/structure_indices": (np.dtype(np.int64), ("N",)),
}
STRUCTURES = {k.split("/")[1] for k in SCHEMA if k.startswith("structures/")}
LABELS = {k.split("/")[1] for k in SCHEMA if k.startswith("labels/")}

# info keys that ASE 3.22 leaves in atoms.info although they are labels
LABEL_INFO_KEYS = ("energy", "stress", "free_energy", "virial")
# per-atom arrays that are not "extra" columns
STD_ARRAYS = ("numbers", "positions", "forces")


def h5ml_bin():
    """The program under test: $H5ML_BIN, else build/h5ml of this repository."""
    return os.environ.get("H5ML_BIN") or str(REPO / "build" / "h5ml")


def run(*args, input=None, timeout=180, cwd=None):
    """Runs h5ml with `args`; returns (exit code, stdout, stderr) as text.

    A negative exit code means the program died from a signal (a crash)."""
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run([h5ml_bin(), *map(str, args)], input=input, capture_output=True,
                       timeout=timeout, cwd=cwd)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def convert(src, dst, *opts, check=True):
    code, out, err = run("convert", src, "-o", dst, "-q", *opts)
    if check:
        assert code == 0, f"h5ml convert {src} failed ({code}): {err}"
    return code, out, err


def load_h5(path):
    """Every dataset of an HDF5 file as {name: numpy array} (names without leading /)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def load_meta(path):
    with h5py.File(path, "r") as f:
        return dict(f["metadata"].attrs)


def same_bits(a, b):
    """True when two arrays have the same dtype, shape and bytes (NaN-safe, -0.0-exact)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return list(a.ravel()) == list(b.ravel())
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def describe(a):
    a = np.asarray(a)
    return f"{a.dtype}{a.shape}"


def first_difference(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{describe(a)} vs {describe(b)}"
    if a.dtype == object:
        for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
            if x != y:
                return f"flat index {i}: {x!r} != {y!r}"
        return "no difference"
    flat_a = a.reshape(-1) if a.ndim else a.reshape(1)
    flat_b = b.reshape(-1) if b.ndim else b.reshape(1)
    for i in range(flat_a.size):
        if flat_a[i:i + 1].tobytes() != flat_b[i:i + 1].tobytes():
            return f"flat index {i}: {flat_a[i]!r} != {flat_b[i]!r}"
    return "no difference"


def assert_same_bits(a, b, what=""):
    assert same_bits(a, b), f"{what}: {first_difference(a, b)}"


def assert_files_equal(d1, d2, skip=()):
    """Two load_h5 dicts hold the same datasets with the same dtypes, shapes and bits."""
    k1 = set(d1) - set(skip)
    k2 = set(d2) - set(skip)
    assert k1 == k2, f"dataset names differ: {sorted(k1 ^ k2)}"
    for k in sorted(k1):
        assert_same_bits(d1[k], d2[k], k)


def split_frames(text):
    """Splits extended XYZ text into a list of frame texts (each ending with a newline)."""
    lines = text.splitlines(True)
    frames = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        frames.append("".join(lines[i:i + n + 2]))
        i += n + 2
    return frames


def frame_line_numbers(frames):
    """1-based line number of the count line of each frame of a concatenation."""
    out = []
    line = 1
    for fr in frames:
        out.append(line)
        line += fr.count("\n")
    return out


def to_jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def ase_has_stress(atoms):
    return atoms.calc is not None and "stress" in atoms.calc.results


def expected_info(atoms):
    """The /labels/info JSON object h5ml should store for an ASE-read Atoms: the info keys
    that are not labels, and the extra per-atom columns under "__arrays__"."""
    info = {k: to_jsonable(v) for k, v in atoms.info.items() if k not in LABEL_INFO_KEYS}
    arrays = {k: to_jsonable(v) for k, v in atoms.arrays.items() if k not in STD_ARRAYS}
    if arrays:
        info["__arrays__"] = arrays
    return info


def expected_arrays(frames):
    """The datasets of SPEC section 1 computed from ASE Atoms (calculator labels)."""
    nat = np.array([len(a) for a in frames], dtype=np.int64)
    splits = np.concatenate([[0], np.cumsum(nat)]).astype(np.int64)
    n = len(frames)
    d = {
        "structures/atomic_numbers": np.concatenate(
            [a.numbers for a in frames]).astype(np.int64) if n else np.zeros(0, np.int64),
        "structures/atomic_numbers_splits": splits,
        "structures/positions": np.concatenate(
            [a.positions for a in frames]).astype(np.float64) if n else np.zeros((0, 3)),
        "structures/cells": np.array([np.array(a.cell[:], dtype=np.float64) for a in frames]
                                     ).reshape(n, 3, 3),
        "structures/pbc": np.array([a.pbc for a in frames], dtype=bool).reshape(n, 3),
        "labels/energy": np.array([a.get_potential_energy() for a in frames], dtype=np.float64),
        "labels/forces": np.concatenate([a.get_forces() for a in frames]).astype(np.float32)
        if n else np.zeros((0, 3), np.float32),
        "labels/forces_splits": splits.copy(),
        "labels/structure_indices": np.arange(n, dtype=np.int64),
    }
    stress = np.zeros((n, 6))
    mask = np.zeros(n, dtype=bool)
    for i, a in enumerate(frames):
        if ase_has_stress(a):
            stress[i] = a.get_stress()
            mask[i] = True
    d["labels/stress"] = stress
    d["labels/stress_mask"] = mask
    return d


def write_h5py_dataset(path, arrays, chunked=True, compression="gzip", info=None, meta=None):
    """Writes `arrays` (expected_arrays layout) the way the original Python writer did:
    h5py, maxshape=(None, ...), chunks=True, gzip, numpy bool -- or contiguous when
    chunked is False."""
    with h5py.File(path, "w") as f:
        for name in SCHEMA:
            v = arrays[name]
            if chunked:
                f.create_dataset(name, data=v, maxshape=(None,) + v.shape[1:], chunks=True,
                                 compression=compression)
            else:
                f.create_dataset(name, data=v)
        if info is not None:
            dt = h5py.string_dtype("utf-8")
            kw = dict(maxshape=(None,), chunks=True, compression=compression) if chunked else {}
            f.create_dataset("labels/info", data=np.array(info, dtype=object), dtype=dt, **kw)
        g = f.create_group("metadata")
        g.attrs["num_structures"] = len(arrays["labels/energy"])
        for k, v in (meta or {}).items():
            g.attrs[k] = v


def info_objects(arr):
    """Decodes a /labels/info dataset (bytes or str per entry) into dicts (None if empty)."""
    out = []
    for s in arr:
        if isinstance(s, bytes):
            s = s.decode("utf-8")
        out.append(json.loads(s) if s else None)
    return out


ERROR_LINE = re.compile(r"frame (\d+) \(line (\d+)\)")


def error_lines(stderr):
    """The lines of stderr that locate an input error ("frame K (line L)")."""
    return [l for l in stderr.splitlines() if ERROR_LINE.search(l)]


def strict_equal(a, b):
    """Equality that also requires the same JSON-level types (int vs float vs bool)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return a == b


ELEMENTS = ["H", "He", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "S", "Cl", "K",
            "Fe", "Ni", "Cu", "Zn", "Ag", "Pt", "Au", "Pb", "U"]
WORDS = ["alpha", "beta", "gamma", "relaxed", "md step", "bulk", "surface", "x_y"]


def random_atoms_list(rng, nframes):
    """ASE Atoms with everything extended XYZ can carry: triclinic cells, mixed pbc, extra
    per-atom arrays (float, int, bool, vector), extra info keys (int, float, string with
    spaces, bool, arrays), energy, forces and (for some periodic frames) stress."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    pbc_choices = [(True, True, True), (True, True, False), (False, True, True),
                   (True, False, True), (False, False, False)]
    out = []
    for i in range(nframes):
        n = int(rng.integers(1, 13))
        symbols = [ELEMENTS[j] for j in rng.integers(0, len(ELEMENTS), n)]
        pbc = pbc_choices[int(rng.integers(0, len(pbc_choices)))]
        kind = i % 4
        if any(pbc) or kind == 3:
            # triclinic: lower-triangular with random tilts, plus noise everywhere
            cell = np.diag(rng.uniform(4.0, 9.0, 3))
            cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-2.5, 2.5, 3)
            cell += rng.normal(scale=0.05, size=(3, 3))
        else:
            cell = np.zeros((3, 3))
        frac = rng.uniform(0, 1, (n, 3))
        pos = frac @ cell if cell.any() else rng.uniform(-4, 4, (n, 3))
        a = Atoms(symbols=symbols, positions=pos, cell=cell, pbc=pbc)
        if rng.random() < 0.6:
            a.set_initial_magnetic_moments(rng.normal(size=n))
        if rng.random() < 0.6:
            a.new_array("tag_int", rng.integers(-5, 100, n).astype(np.int64))
        if rng.random() < 0.6:
            a.new_array("flag", rng.integers(0, 2, n).astype(bool))
        if rng.random() < 0.5:
            a.new_array("vec3", rng.normal(size=(n, 3)))
        if rng.random() < 0.8:
            a.info["step"] = int(rng.integers(-1000, 10**9))
        if rng.random() < 0.8:
            a.info["temperature"] = float(rng.uniform(1, 3000))
        if rng.random() < 0.8:
            a.info["comment"] = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 3))
        if rng.random() < 0.8:
            a.info["converged"] = bool(rng.integers(0, 2))
        if rng.random() < 0.6:
            a.info["kpts"] = rng.integers(1, 9, 3).astype(np.int64)
        if rng.random() < 0.6:
            a.info["dipole_guess"] = rng.normal(size=3)
        results = dict(energy=float(rng.normal() * 20.0),
                       forces=rng.normal(scale=2.0, size=(n, 3)))
        if any(pbc) and rng.random() < 0.75:
            results["stress"] = rng.normal(scale=0.1, size=6)
        a.calc = SinglePointCalculator(a, **results)
        out.append(a)
    return out


def runs_without_gil(call):
    """How much a pure-Python thread counts while `call` runs. With a long switch interval the
    main thread is never forced to hand the GIL over: the counter moves only if `call`
    releases it (the counter thread yields on its own, so the main thread is not delayed)."""
    count, stop = [0], threading.Event()

    def counter():
        n = 0
        while not stop.is_set():
            n += 1
            count[0] = n
            if n % 500 == 0:
                time.sleep(0)

    old = sys.getswitchinterval()
    t = threading.Thread(target=counter)
    t.start()
    try:
        while count[0] == 0:
            time.sleep(0.001)
        sys.setswitchinterval(5.0)
        time.sleep(0.005)
        before = count[0]
        call()
        after = count[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        t.join()
    return after - before
