"""Shuffled batch reads: the extension's Reader.read_indices (one library call per batch:
chunks read by address, decoded on threads, kept in a chunk LRU), atoms_of, set_threads and
set_cache, and the Python layer on them (HDF5DatasetReader.read_batch, AtomsDataset.get_batch
and dataset[list]). Judged against per-index get(), against h5py reading the files, and
against the Python gather read_batch used before read_indices existed (same keys, order,
dtypes, values). Files of h5ml (gzip with and without shuffle, lzf, none) and of h5py
(chunked with shuffle + gzip, chunked lzf, contiguous: the library's HDF5 fallback), each of
many chunks; threads sharing one reader; a reader inherited across fork.

Run with /usr/bin/python3 and PYTHONPATH=build/python (build/python is tried when h5ml is not
importable). Randomized tests print their seed (H5ML_TEST_SEED replays one).
"""
import hashlib
import multiprocessing
import os
import pickle
import random
import re
import sys
import threading
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
try:
    import h5ml
except ImportError:  # not installed: the build tree
    sys.path.insert(0, str(REPO / "build" / "python"))
    import h5ml

from h5ml import _h5ml  # noqa: E402
from h5ml.atoms import HDF5DatasetReader, read_batch  # noqa: E402

import h5ml_helpers as H  # noqa: E402

MODULE_SEED = int(os.environ.get("H5ML_TEST_SEED") or random.SystemRandom().randrange(1, 2**31))
N = 700           # structures per file
CHUNK_ATOMS = 64  # rows per chunk of the per-atom datasets (about 70 chunks)
CHUNK_STRUCT = 32  # rows per chunk of the per-structure datasets (22 chunks)
FLAT_KEYS = ["natoms", "numbers", "positions", "cells", "pbc", "energies", "forces", "stress", "stress_mask"]
PER_ATOM = ("numbers", "positions", "forces")


@pytest.fixture(autouse=True)
def _print_seed(request):
    print(f"\n[{request.node.name}] module seed = {MODULE_SEED} (replay: H5ML_TEST_SEED={MODULE_SEED})")


def rng_for(name):
    """A generator per test, derived from the module seed and the test's name."""
    return np.random.default_rng([MODULE_SEED, int(hashlib.md5(name.encode()).hexdigest()[:8], 16)])


# ---- files ----------------------------------------------------------------------------------


def make_arrays(rng, n):
    """The SCHEMA datasets of n random structures (1..12 atoms, some periodic with stress)."""
    natoms = rng.integers(1, 13, n)
    m = int(natoms.sum())
    periodic = rng.random(n) < 0.6
    pbc = np.zeros((n, 3), bool)
    pbc[periodic] = True
    pbc[rng.random(n) < 0.1, 2] = False  # a few slabs
    cells = np.zeros((n, 3, 3))
    cells[periodic] = rng.uniform(5, 15, (int(periodic.sum()), 3, 3)) * np.eye(3)
    mask = periodic & (rng.random(n) < 0.7)
    stress = np.zeros((n, 6))
    stress[mask] = rng.normal(0, 0.05, (int(mask.sum()), 6))
    splits = np.concatenate(([0], np.cumsum(natoms))).astype(np.int64)
    return {
        "structures/atomic_numbers": rng.integers(1, 90, m).astype(np.int64),
        "structures/atomic_numbers_splits": splits,
        "structures/positions": rng.uniform(0, 10, (m, 3)),
        "structures/cells": cells,
        "structures/pbc": pbc,
        "labels/energy": rng.normal(-50, 10, n),
        "labels/forces": rng.normal(0, 2, (m, 3)).astype(np.float32),
        "labels/forces_splits": splits.copy(),
        "labels/stress": stress,
        "labels/stress_mask": mask,
        "labels/structure_indices": np.arange(n, dtype=np.int64),
    }


def write_h5ml(path, a, compression, level=4, shuffle=True):
    with _h5ml.Writer(str(path), compression=compression, level=level, shuffle=shuffle,
                      chunk_atoms=CHUNK_ATOMS, chunk_structures=CHUNK_STRUCT) as w:
        w.add_batch(np.diff(a["structures/atomic_numbers_splits"]), a["structures/atomic_numbers"],
                    a["structures/positions"], a["labels/energy"], a["labels/forces"].astype(np.float64),
                    cells=a["structures/cells"], pbc=a["structures/pbc"], stress=a["labels/stress"],
                    stress_mask=a["labels/stress_mask"])


def write_h5py(path, a, compression=None, shuffle=False, chunked=True):
    """The SCHEMA with h5py: chunked (small chunks, so many of them) or contiguous."""
    with h5py.File(path, "w") as f:
        for name in H.SCHEMA:
            v = a[name]
            if not chunked:
                f.create_dataset(name, data=v)
                continue
            rows = CHUNK_ATOMS if len(v) == len(a["structures/atomic_numbers"]) else CHUNK_STRUCT
            f.create_dataset(name, data=v, maxshape=(None,) + v.shape[1:], chunks=(rows,) + v.shape[1:],
                             compression=compression, shuffle=shuffle)
        f.create_group("metadata").attrs["num_structures"] = len(a["labels/energy"])


LAYOUTS = {
    "gzip": lambda p, a: write_h5ml(p, a, "gzip", 4, True),
    "gzip1-noshuffle": lambda p, a: write_h5ml(p, a, "gzip", 1, False),
    "lzf": lambda p, a: write_h5ml(p, a, "lzf"),
    "none": lambda p, a: write_h5ml(p, a, "none"),
    "h5py-shuffle-gzip": lambda p, a: write_h5py(p, a, "gzip", True),
    "h5py-lzf": lambda p, a: write_h5py(p, a, "lzf"),
    "h5py-contiguous": lambda p, a: write_h5py(p, a, chunked=False),
}


@pytest.fixture(scope="module")
def arrays():
    return make_arrays(rng_for("arrays"), N)


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
    d = tmp_path_factory.mktemp("read_indices")
    out = {}
    for name, write in LAYOUTS.items():
        path = d / f"{name}.h5"
        write(path, arrays)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def on_disk(files):
    """What h5py reads from every file."""
    out = {}
    for name, path in files.items():
        with h5py.File(path, "r") as f:
            out[name] = {k: f[k][()] for k in H.SCHEMA}
    return out


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request):
    return request.param


def expected(a, idx):
    """read_indices' dict for `idx` gathered from the SCHEMA arrays `a`."""
    idx = np.asarray(idx, dtype=np.int64)
    splits = a["structures/atomic_numbers_splits"]
    rows = np.concatenate([np.arange(splits[i], splits[i + 1]) for i in idx]).astype(np.int64) \
        if idx.size else np.zeros(0, np.int64)
    return {
        "natoms": np.diff(splits)[idx], "numbers": a["structures/atomic_numbers"][rows],
        "positions": a["structures/positions"][rows], "cells": a["structures/cells"][idx],
        "pbc": a["structures/pbc"][idx], "energies": a["labels/energy"][idx], "forces": a["labels/forces"][rows],
        "stress": a["labels/stress"][idx], "stress_mask": a["labels/stress_mask"][idx],
    }


def from_gets(r, idx):
    """read_indices' dict for `idx` made of per-index Reader.get calls."""
    gets = [r.get(int(i)) for i in idx]
    cat = lambda key, shape: np.concatenate([g[key] for g in gets]) if gets else np.zeros(shape)  # noqa: E731
    return {
        "natoms": np.array([len(g["numbers"]) for g in gets], dtype=np.int64),
        "numbers": cat("numbers", 0).astype(np.int64), "positions": cat("positions", (0, 3)),
        "cells": np.array([g["cell"] for g in gets]).reshape(-1, 3, 3), "pbc": np.array([g["pbc"] for g in gets],
                                                                                        bool).reshape(-1, 3),
        "energies": np.array([g["energy"] for g in gets], dtype=np.float64),
        "forces": cat("forces", (0, 3)).astype(np.float32),
        "stress": np.array([g["stress"] if g["stress"] is not None else np.zeros(6) for g in gets]).reshape(-1, 6),
        "stress_mask": np.array([g["stress"] is not None for g in gets], dtype=bool),
    }


def assert_same(got, want, what=""):
    """Same keys in the same order, same dtypes and shapes, same values bit for bit."""
    assert list(got) == list(want), what
    for k in want:
        g, w = got[k], np.asarray(want[k])
        assert isinstance(g, np.ndarray), (what, k, type(g))
        assert g.dtype == w.dtype and g.shape == w.shape, (what, k, g.dtype, g.shape, w.dtype, w.shape)
        assert g.tobytes() == w.tobytes(), (what, k)


def batches(rng, n):
    """Index batches of every kind: shuffled with repeats, permutations, a sorted run, a
    reversed run, strided, single, every index, duplicates of one."""
    out = [rng.integers(0, n, 64), rng.integers(0, n, 257), rng.permutation(n)[:100], rng.permutation(n),
           np.arange(40, 90), np.arange(n - 1, n - 60, -1), np.arange(3, n, 7), np.array([n - 1]), np.array([0]),
           np.full(9, int(rng.integers(0, n))), np.repeat(rng.permutation(n)[:20], 3)]
    return [np.asarray(b, dtype=np.int64) for b in out]


# ---- the extension ----------------------------------------------------------------------------


def test_files_have_many_chunks(files, on_disk, arrays):
    for name, path in files.items():
        for k in H.SCHEMA:  # h5py reads back what was written
            assert on_disk[name][k].tobytes() == np.asarray(arrays[k]).astype(on_disk[name][k].dtype).tobytes(), (name, k)
        with h5py.File(path, "r") as f:
            c = f["structures/positions"].chunks
            if name == "h5py-contiguous":
                assert c is None
            else:
                assert c == (CHUNK_ATOMS, 3) and f["structures/positions"].id.get_num_chunks() > 50, (name, c)
                assert f["labels/energy"].id.get_num_chunks() > 20


def test_read_indices_matches_h5py_and_get(files, on_disk, layout):
    rng = rng_for("matches/" + layout)
    with _h5ml.Reader(str(files[layout])) as r:
        assert r.count == N
        for k, idx in enumerate(batches(rng, N)):
            got = r.read_indices(idx)
            assert_same(got, expected(on_disk[layout], idx), f"{layout} batch {k}")
            if k < 4:
                assert_same(got, from_gets(r, idx), f"{layout} batch {k} vs get")
            assert r.atoms_of(idx) == int(got["natoms"].sum()) == len(got["numbers"])
            # read() of the same structures when they are one ascending run
            if idx.size > 1 and (np.diff(idx) == 1).all():
                assert_same(got, r.read(int(idx[0]), int(idx.size)))


def test_read_indices_empty(files, layout):
    with _h5ml.Reader(str(files[layout])) as r:
        for empty in ([], (), np.array([], np.int64), np.array([], np.int32), np.zeros(0)):
            got = r.read_indices(empty)
            assert_same(got, r.read(0, 0))
            assert got["positions"].shape == (0, 3) and got["cells"].shape == (0, 3, 3)
            assert r.atoms_of(empty) == 0


def test_read_indices_index_types(files, on_disk):
    rng = rng_for("index types")
    want_idx = rng.integers(0, N, 50)
    want = expected(on_disk["lzf"], want_idx)
    big = np.zeros(100, np.int64)
    big[::2] = want_idx
    with _h5ml.Reader(str(files["lzf"])) as r:
        for idx in (want_idx, want_idx.astype(np.int32), want_idx.astype(np.uint16), want_idx.astype(np.int16),
                    want_idx.tolist(), tuple(want_idx.tolist()), big[::2], want_idx.astype(np.float64),
                    [np.int64(i) for i in want_idx]):
            assert_same(r.read_indices(idx), want, type(idx).__name__ + str(getattr(idx, "dtype", "")))
        assert_same(r.read_indices(range(5, 9)), expected(on_disk["lzf"], np.arange(5, 9)))


def test_read_indices_errors(files):
    with _h5ml.Reader(str(files["gzip"])) as r:
        for bad in ([N], [0, 5, N + 3], [-1], [2**40]):
            first = next(i for i in bad if not 0 <= i < N)
            with pytest.raises(IndexError, match=re.escape(f"Index {first} out of range [0, {N})")):
                r.read_indices(bad)
            with pytest.raises(IndexError, match=re.escape(f"Index {first} out of range [0, {N})")):
                r.atoms_of(bad)
        with pytest.raises(TypeError, match="bool"):
            r.read_indices(np.ones(3, bool))
        with pytest.raises(ValueError, match=re.escape("indices must have shape (n,), got (2, 2)")):
            r.read_indices([[0, 1], [2, 3]])
        with pytest.raises(ValueError, match=re.escape("indices must have shape (n,), got ()")):
            r.read_indices(3)
        with pytest.raises(TypeError, match="indices must be"):
            r.read_indices(None)
        with pytest.raises(TypeError, match="numeric"):
            r.read_indices(["a"])
        with pytest.raises(ValueError, match="integers"):
            r.read_indices([0.5])
        # the reader is fine after the errors
        assert_same(r.read_indices([1, 0]), from_gets(r, [1, 0]))
    with pytest.raises(RuntimeError, match="closed"):
        r.read_indices([0])
    with pytest.raises(RuntimeError, match="closed"):
        r.set_threads(1)


def test_threads_and_cache_settings(files, on_disk):
    rng = rng_for("settings")
    idx = rng.integers(0, N, 300)
    want = expected(on_disk["gzip"], idx)
    path = str(files["gzip"])
    with _h5ml.Reader(path) as r:
        assert r.__reduce__() == (_h5ml.Reader, (path,))
        for t in (1, 2, 4, 0, 256):
            r.set_threads(t)
            assert_same(r.read_indices(idx), want, f"threads={t}")
        r.set_threads(3)
        assert r.__reduce__() == (_h5ml.Reader, (path, None, None, 3))
        for cache in (0, 1 << 16, 64 << 20):  # 0: no chunk cache of its own; 64 KiB: evictions
            r.set_cache(cache)
            assert r.count == N
            for _ in range(2):
                assert_same(r.read_indices(idx), want, f"cache={cache}")
        assert r.__reduce__() == (_h5ml.Reader, (path, None, 64 << 20, 3))
        r2 = pickle.loads(pickle.dumps(r))
        assert r2.__reduce__() == r.__reduce__()
        assert_same(r2.read_indices(idx), want)
        r2.close()
        for bad in (-1, 257, 2**40):
            with pytest.raises(ValueError, match=re.escape(f"threads must be 0..256 (got {bad})")):
                r.set_threads(bad)
        with pytest.raises(ValueError, match=re.escape("cache size must be >= 0 (got -5)")):
            r.set_cache(-5)
        with pytest.raises(TypeError):
            r.set_cache(None)
        with pytest.raises(TypeError):
            r.set_cache(1.5)
        assert r.__reduce__() == (_h5ml.Reader, (path, None, 64 << 20, 3))  # failed calls change nothing
        assert_same(r.read_indices(idx), want)
    for kw in (dict(cache=0), dict(threads=1), dict(cache=1 << 20, threads=2)):
        with _h5ml.Reader(path, **kw) as r:
            assert_same(r.read_indices(idx), want, str(kw))
            assert r.__reduce__() == (_h5ml.Reader, (path, None, kw.get("cache"), kw.get("threads", 0)))
    with pytest.raises(ValueError, match="threads must be"):
        _h5ml.Reader(path, threads=-2)
    with pytest.raises(ValueError, match="cache size must be"):
        _h5ml.Reader(path, cache=-2)


def test_set_cache_on_a_vanished_file_closes_the_reader(files, tmp_path):
    path = tmp_path / "gone.h5"
    path.write_bytes(files["none"].read_bytes())
    r = _h5ml.Reader(str(path))
    r.read_indices([1, 2])
    path.unlink()
    with pytest.raises(FileNotFoundError):
        r.set_cache(1 << 20)
    with pytest.raises(RuntimeError, match="not open"):
        r.read_indices([1])
    r.close()


runs_without_gil = H.runs_without_gil


def test_read_indices_releases_the_gil(tmp_path):
    rng = rng_for("gil")
    a = make_arrays(rng, 10000)
    path = tmp_path / "big.h5"
    write_h5ml(path, a, "gzip", 6, True)
    idx = rng.permutation(10000)
    out = []
    with _h5ml.Reader(str(path), cache=0, threads=1) as r:
        assert runs_without_gil(lambda: out.append(r.read_indices(idx))) > 0
    assert_same(out[0], expected(a, idx))


# ---- threads and fork ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gzip", "none", "h5py-contiguous"])
def test_one_reader_shared_by_threads(files, on_disk, name):
    want_all = on_disk[name]
    r = _h5ml.Reader(str(files[name]), cache=1 << 18)  # small: evictions while others read
    ds = HDF5DatasetReader(files[name])
    errors = []
    seeds = rng_for("threads/" + name).integers(0, 2**31, 6)
    start = threading.Barrier(len(seeds))

    def work(k, seed):
        g = np.random.default_rng(seed)
        try:
            start.wait()
            for it in range(30):
                idx = g.integers(0, N, int(g.integers(0, 200)))
                assert_same(r.read_indices(idx), expected(want_all, idx), f"thread {k} it {it}")
                if it % 5 == 0:
                    b = read_batch(r, idx)
                    assert_same({key: b[key] for key in FLAT_KEYS}, expected(want_all, idx))
                    i = int(g.integers(0, N))
                    assert r.get(i)["numbers"].tobytes() == expected(want_all, [i])["numbers"].tobytes()
                    assert_same(r.read(i, 1), expected(want_all, [i]))
                    b = ds.read_batch(idx[:9])
                    assert_same({key: b[key] for key in FLAT_KEYS}, expected(want_all, idx[:9]))
                if k == 0 and it % 3 == 0:
                    r.set_threads(it % 4)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(k, int(s))) for k, s in enumerate(seeds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    ds.close()
    assert errors == [], errors[0]


def _assert_same_in_child(report, check):
    """Runs check() in a forked child; fails here with its traceback if it raised."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            check()
            code = 0
        except BaseException:
            report.write_text(traceback.format_exc())
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, report.read_text() if report.exists() else f"child exit code {code}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("name", ["gzip", "lzf", "none"])
def test_reader_inherited_across_fork(files, on_disk, name, tmp_path):
    rng = rng_for("fork/" + name)
    idx = [rng.integers(0, N, 100) for _ in range(4)]
    want = [expected(on_disk[name], i) for i in idx]
    r = _h5ml.Reader(str(files[name]), threads=2)
    ds = HDF5DatasetReader(files[name])
    assert_same(r.read_indices(idx[0]), want[0])  # the parent's cache and mapping are in use
    assert_same({k: v for k, v in ds.read_batch(idx[1]).items() if k in FLAT_KEYS}, want[1])

    def child():
        for i, w in zip(idx, want):
            assert_same(r.read_indices(i), w)
            b = ds.read_batch(i)
            assert_same({k: b[k] for k in FLAT_KEYS}, w)
        assert r.count == N and r.atoms_of(idx[0]) == int(want[0]["natoms"].sum())
        r.set_threads(1)
        assert_same(r.read_indices(idx[3]), want[3])
        r.close()
        ds.close()

    _assert_same_in_child(tmp_path / "child.txt", child)
    for i, w in zip(idx, want):  # the parent's reader is untouched by the child
        assert_same(r.read_indices(i), w)
    r.close()
    ds.close()


_INHERITED = {}  # what the workers of a 'fork' pool inherit


def _pool_read(job):
    kind, idx = job
    if kind == "dataset":
        return {k: v.numpy() for k, v in _INHERITED["dataset"].get_batch(idx).items()}
    if kind == "reader":
        return _INHERITED["reader"].read_batch(idx)
    return _INHERITED["ext"].read_indices(idx)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
def test_fork_pool_workers_read_batches(files, on_disk):
    pytest.importorskip("torch")
    rng = rng_for("fork pool")
    path = files["gzip"]
    ds = h5ml.AtomsDataset(path)
    _INHERITED.update(dataset=ds, reader=HDF5DatasetReader(path), ext=_h5ml.Reader(str(path)))
    jobs = [(kind, rng.integers(0, N, 50)) for kind in ("dataset", "reader", "ext") for _ in range(3)]
    for kind, idx in jobs[:: 3]:  # the parent reads first: its handles are open when the pool forks
        _pool_read((kind, idx))
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(_pool_read, jobs)
    finally:
        for k in ("reader", "ext"):
            _INHERITED[k].close()
        ds.close()
        _INHERITED.clear()
    for (kind, idx), got in zip(jobs, results):
        w = expected(on_disk["gzip"], idx)
        if kind == "ext":
            assert_same(got, w)
        elif kind == "reader":
            assert_same({k: got[k] for k in FLAT_KEYS}, w)
        else:
            assert got["energy"].tobytes() == w["energies"].tobytes()
            assert got["positions"].tobytes() == w["positions"].tobytes()
            np.testing.assert_array_equal(got["index"], idx)


# ---- the Python layer ----------------------------------------------------------------------------


def old_read_batch(reader, indices, gap=32):
    """read_batch as it was before read_indices: negative indices from the end, then Reader.read
    of contiguous stretches (gaps of up to `gap` included) gathered with numpy."""
    n = reader.count
    asked = np.asarray(indices, dtype=np.int64).reshape(-1)
    idx = np.where(asked < 0, asked + n, asked)
    bad = np.nonzero((idx < 0) | (idx >= n))[0]
    if bad.size:
        raise IndexError(f"Index {asked[bad[0]]} out of range [0, {n})")
    if idx.size == 0:
        out = reader.read(0, 0)
    elif idx[-1] - idx[0] + 1 == idx.size and (idx.size == 1 or (np.diff(idx) == 1).all()):
        out = reader.read(int(idx[0]), int(idx.size))
    else:
        uniq = np.unique(idx)
        cut = np.nonzero(np.diff(uniq) > gap)[0] + 1
        starts = uniq[np.concatenate(([0], cut))]
        stops = uniq[np.concatenate((cut - 1, [uniq.size - 1]))] + 1
        parts = [reader.read(int(a), int(b - a)) for a, b in zip(starts, stops)]
        window = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
        pos = np.searchsorted(window, idx)
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        wn = merged["natoms"]
        woff = np.cumsum(wn) - wn
        cnt = wn[pos]
        ooff = np.cumsum(cnt) - cnt
        atoms = np.arange(int(cnt.sum()), dtype=np.int64) + np.repeat(woff[pos] - ooff, cnt)
        out = {k: (v[atoms] if k in PER_ATOM else v[pos]) for k, v in merged.items()}
    natoms = out["natoms"]
    out["indices"] = idx
    out["ptr"] = np.concatenate(([0], np.cumsum(natoms))).astype(np.int64)
    out["batch"] = np.repeat(np.arange(len(natoms), dtype=np.int64), natoms)
    return out


def test_read_batch_is_what_it_was(files, on_disk, layout):
    rng = rng_for("read_batch/" + layout)
    with HDF5DatasetReader(files[layout]) as ds:
        extra = [np.array([3, 3, 0, N - 1, -1, -N]), rng.integers(-N, N, 80), np.array([], np.int64),
                 np.array([[1, 2], [3, 4]])]  # old read_batch flattened any shape
        for k, idx in enumerate(batches(rng, N) + extra):
            got = ds.read_batch(idx)
            want = old_read_batch(ds._reader, idx)
            assert_same(got, want, f"{layout} batch {k}")
            flat_idx = np.asarray(idx).reshape(-1)
            norm = np.where(flat_idx < 0, flat_idx + N, flat_idx)
            assert_same({key: got[key] for key in FLAT_KEYS}, expected(on_disk[layout], norm))
            assert got["ptr"][-1] == len(got["numbers"]) and len(got["batch"]) == len(got["numbers"])
        for idx in (list(range(5)), [np.int32(4), 2], np.array([7, 1], np.uint8)):
            assert_same(ds.read_batch(idx), old_read_batch(ds._reader, idx))
        for bad in ([0, N], [-N - 1], [N + 7, 0]):
            first = next(i for i in bad if not -N <= i < N)
            with pytest.raises(IndexError, match=re.escape(f"Index {first} out of range [0, {N})")):
                ds.read_batch(bad)
        assert_same(read_batch(ds._reader, [5, 1]), old_read_batch(ds._reader, [5, 1]))


def test_read_batch_settings_and_pickle(files, on_disk):
    idx = rng_for("read_batch settings").integers(0, N, 40)
    want = expected(on_disk["lzf"], idx)
    with HDF5DatasetReader(files["lzf"], threads=1, cache=1 << 20) as ds:
        assert_same({k: v for k, v in ds.read_batch(idx).items() if k in FLAT_KEYS}, want)
        assert ds.__reduce__() == (HDF5DatasetReader, (str(files["lzf"]), 1, 1 << 20))
        ds2 = pickle.loads(pickle.dumps(ds))
        assert (ds2.threads, ds2.cache) == (1, 1 << 20)
        assert ds2._reader.__reduce__() == (_h5ml.Reader, (str(files["lzf"]), None, 1 << 20, 1))
        assert_same({k: v for k, v in ds2.read_batch(idx).items() if k in FLAT_KEYS}, want)
        ds2.close()
    with HDF5DatasetReader(files["lzf"]) as ds:
        assert ds.__reduce__() == (HDF5DatasetReader, (str(files["lzf"]),))


def test_atoms_dataset_batches(files, on_disk, layout):
    torch = pytest.importorskip("torch")
    from h5ml import collate_atoms

    rng = rng_for("get_batch/" + layout)
    ds = h5ml.AtomsDataset(files[layout], threads=2)
    try:
        for k, idx in enumerate(batches(rng, N)[:6] + [np.array([-1, 0, -2])]):
            norm = np.where(idx < 0, idx + N, idx)
            samples = [ds[int(i)] for i in idx]
            want = collate_atoms(samples)
            for got in (ds.get_batch(idx), ds[list(idx)], ds[idx], ds[torch.from_numpy(idx)],
                        ds.get_batch(idx.astype(np.int32))):
                assert set(got) == set(want), (layout, k)
                for key in want:
                    assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, (layout, k, key)
                    assert torch.equal(got[key], want[key]), (layout, k, key)
            flat = expected(on_disk[layout], norm)
            assert got["forces"].numpy().tobytes() == flat["forces"].tobytes()
            assert got["cell"].numpy().tobytes() == flat["cells"].tobytes()
            np.testing.assert_array_equal(got["index"].numpy(), norm)
        empty = ds.get_batch([])
        assert empty["positions"].shape == (0, 3) and empty["ptr"].tolist() == [0]
        with pytest.raises(IndexError, match=re.escape(f"Index {N} out of range [0, {N})")):
            ds.get_batch([1, N])
        f32 = h5ml.AtomsDataset(files[layout], float_dtype=torch.float32, threads=1, cache=0)
        b = f32.get_batch(idx)
        assert b["positions"].dtype == torch.float32 and torch.equal(b["positions"], want["positions"].float())
        assert f32._get_reader().__reduce__() == (_h5ml.Reader, (str(files[layout]), None, 0, 1))
        f32b = pickle.loads(pickle.dumps(f32))
        assert (f32b.threads, f32b.cache) == (1, 0) and torch.equal(f32b.get_batch(idx)["forces"], b["forces"])
        f32.close()
        f32b.close()
    finally:
        ds.close()
