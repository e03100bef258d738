"""Compression profiles and deduplication from Python and the command line.

- Profiles ("fast", "balanced", "small", "none") through the extension's Writer and SigWriter
  at 1, 2 and the default number of threads, HDF5DatasetWriter and CacheManager: the files
  read back by h5py bit for bit, with the filter pipeline h5py reports (.compression,
  .compression_opts, .shuffle) on every dataset; data that compresses and data that does
  not, small chunks and a partial edge chunk.
- Precedence of a profile and explicit options (Python and `h5ml convert/merge/signals
  --profile`), usage errors, unknown names; appending with another profile keeps the file's
  filters and warns.
- Deduplication: stats()["deduplicated"], `h5ml convert --dedup` and `h5ml merge --dedup`
  summaries, duplicates in one batch, across batches, one at a time, against an earlier
  session (append), the edge cases of h5ml.h (NULL cell = zero cell, pbc 2 = 1, -0.0 != 0.0,
  one ulp apart, other labels keep the first), validation errors and warnings; the file
  always holds the unique structures in first-seen order and `h5ml verify` passes.

Run with /usr/bin/python3, PYTHONPATH=build/python and H5ML_BIN=build/h5ml. Randomized data
print their seed (H5ML_TEST_SEED replays one).
"""
import logging
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5ml_helpers as H

REPO = Path(__file__).resolve().parents[2]
try:
    import h5ml
    from h5ml import _h5ml as ext
except ModuleNotFoundError:  # not on PYTHONPATH: the build tree
    sys.path.insert(0, str(REPO / "build" / "python"))
    sys.modules.pop("h5ml", None)
    try:
        import h5ml
        from h5ml import _h5ml as ext
    except ModuleNotFoundError:
        pytest.skip("the h5ml Python module is not built (run `make build`)", allow_module_level=True)

PROFILES = ["fast", "balanced", "small", "none"]
THREADS = [1, 2, 0]  # 0: the default, one per core
# what h5py reports for each profile: (.compression, .compression_opts, .shuffle)
PIPELINE = {
    "fast": ("lzf", None, True),
    "balanced": ("gzip", 4, True),
    "small": ("gzip", 9, True),
    "none": (None, None, False),
}
ATOM_DATASETS = sorted(H.SCHEMA)


# ---- helpers ----------------------------------------------------------------------------

def pipeline(dset):
    return (dset.compression, dset.compression_opts, dset.shuffle)


def assert_atoms_pipeline(path, want):
    with h5py.File(path, "r") as f:
        for name in ATOM_DATASETS:
            assert pipeline(f[name]) == want, f"{path}: {name} is stored {pipeline(f[name])}, expected {want}"
        meta = dict(f["metadata"].attrs)
    comp, level, shuffle = want
    assert meta["compression"] == (comp or "none")
    assert int(meta["compression_level"]) == (level if comp == "gzip" else 0)
    assert bool(meta["shuffle"]) == shuffle


def chunk_masks(path, name):
    """(filtered, unfiltered) chunk counts of a dataset (a nonzero filter mask: filters skipped)."""
    with h5py.File(path, "r") as f:
        d = f[name]
        masks = [d.id.get_chunk_info(k).filter_mask for k in range(d.id.get_num_chunks())]
    return sum(m == 0 for m in masks), sum(m != 0 for m in masks)


def random_bits(rng, shape, dtype):
    """Finite values of random bits (incompressible)."""
    if dtype == np.float64:
        u = rng.integers(0, 2**63, size=shape, dtype=np.uint64)
        exp = rng.integers(0, 2047, size=shape, dtype=np.uint64)  # never 2047: finite
        u = (u & np.uint64(0x800FFFFFFFFFFFFF)) | (exp << np.uint64(52))
        return u.view(np.float64)
    u = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
    exp = rng.integers(100, 150, size=shape).astype(np.uint32)  # |f| within 2^-27 .. 2^22
    return ((u & np.uint32(0x807FFFFF)) | (exp << np.uint32(23))).view(np.float32)


def make_batch(rng, n, noisy=(1 / 3, 2 / 3)):
    """n structures as flat arrays: regular values, with a middle stretch of random bits."""
    natoms = rng.integers(1, 6, n).astype(np.int64)
    natoms[::11] = 0
    m = int(natoms.sum())
    first = np.concatenate([[0], np.cumsum(natoms)])
    lo, hi = int(n * noisy[0]), int(n * noisy[1])
    a_lo, a_hi = first[lo], first[hi]
    atom_in = np.concatenate([np.arange(k) for k in natoms]) if m else np.zeros(0, int)
    owner = np.repeat(np.arange(n), natoms)
    numbers = (1 + (atom_in % 3) * 7).astype(np.int64)
    positions = np.stack([1.5 * atom_in, 0.25 * (owner % 8) + 1, 0.25 * (owner % 8) + 2], axis=1).astype(np.float64)
    forces = ((owner[:, None] + atom_in[:, None] + np.arange(3)) % 16 / 8.0 - 1.0).astype(np.float64)
    numbers[a_lo:a_hi] = rng.integers(0, 119, a_hi - a_lo)
    positions[a_lo:a_hi] = random_bits(rng, (a_hi - a_lo, 3), np.float64)
    forces[a_lo:a_hi] = random_bits(rng, (a_hi - a_lo, 3), np.float32).astype(np.float64)
    cells = np.zeros((n, 3, 3))
    pbc = np.zeros((n, 3), dtype=bool)
    periodic = np.arange(n) % 2 == 1
    cells[periodic] = np.eye(3) * 20.0
    pbc[periodic] = [True, True, False]
    cells[lo:hi] = random_bits(rng, (hi - lo, 3, 3), np.float64)
    pbc[lo:hi] = False
    energies = -1.5 * natoms + 0.25 * (np.arange(n) % 4)
    energies[lo:hi] = rng.normal(size=hi - lo) * 100
    stress = np.zeros((n, 6))
    mask = np.arange(n) % 3 == 0
    stress[mask] = rng.normal(size=(int(mask.sum()), 6))
    info = [f'{{"i":{i}}}' if i % 5 == 0 else None for i in range(n)]
    return dict(natoms=natoms, numbers=numbers, positions=positions, energies=energies, forces=forces, cells=cells,
                pbc=pbc, stress=stress, stress_mask=mask, info=info)


def take(b, idx):
    """The structures idx of batch b, in that order."""
    idx = np.asarray(idx, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(b["natoms"])])
    atoms = np.concatenate([np.arange(first[i], first[i + 1]) for i in idx]) if len(idx) else np.zeros(0, int)
    out = {k: b[k][idx] for k in ("natoms", "energies", "cells", "pbc", "stress", "stress_mask")}
    out.update(numbers=b["numbers"][atoms], positions=b["positions"][atoms], forces=b["forces"][atoms],
               info=[b["info"][i] for i in idx])
    return out


def expected_datasets(b):
    n = len(b["natoms"])
    splits = np.concatenate([[0], np.cumsum(b["natoms"])]).astype(np.int64)
    return {
        "structures/atomic_numbers": b["numbers"].astype(np.int64),
        "structures/atomic_numbers_splits": splits,
        "structures/positions": b["positions"].astype(np.float64).reshape(-1, 3),
        "structures/cells": b["cells"].astype(np.float64).reshape(n, 3, 3),
        "structures/pbc": b["pbc"].astype(bool).reshape(n, 3),
        "labels/energy": b["energies"].astype(np.float64),
        "labels/forces": b["forces"].astype(np.float32).reshape(-1, 3),
        "labels/forces_splits": splits.copy(),
        "labels/stress": np.where(b["stress_mask"][:, None], b["stress"], 0.0),
        "labels/stress_mask": b["stress_mask"].astype(bool),
        "labels/structure_indices": np.arange(n, dtype=np.int64),
    }


def assert_file_holds(path, b):
    """The file read by h5py holds exactly the structures of b (bit for bit)."""
    got = H.load_h5(path)
    for name, want in expected_datasets(b).items():
        H.assert_same_bits(got[name], want, f"{path}: {name}")
    if any(x is not None for x in b["info"]):
        info = [x.decode() if isinstance(x, bytes) else x for x in got["labels/info"]]
        assert [x or None for x in info] == b["info"]


def write_batch(path, b, mode="w", **options):
    with ext.Writer(str(path), mode=mode, **options) as w:
        w.add_batch(b["natoms"], b["numbers"], b["positions"], b["energies"], b["forces"], cells=b["cells"],
                    pbc=b["pbc"], stress=b["stress"], stress_mask=b["stress_mask"], info=b["info"])
        return w.stats()


def add_one_by_one(w, b, lo=0, hi=None):
    first = np.concatenate([[0], np.cumsum(b["natoms"])])
    for i in range(lo, len(b["natoms"]) if hi is None else hi):
        a, z = first[i], first[i + 1]
        w.add(b["numbers"][a:z], b["positions"][a:z], float(b["energies"][i]), b["forces"][a:z], cell=b["cells"][i],
              pbc=b["pbc"][i], stress=b["stress"][i] if b["stress_mask"][i] else None, info=b["info"][i])


def verify(cli, path):
    code, out, err = cli("verify", path)
    assert code == 0, f"h5ml verify {path}: {out}{err}"


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


# ---- 1. round trips through every profile and thread count ---------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("profile", PROFILES)
def test_atoms_roundtrip(tmp_path, rng, cli, profile, threads):
    b = make_batch(rng, 9001)
    path = tmp_path / "a.h5"
    opts = dict(compression=profile, threads=threads, chunk_atoms=97, chunk_structures=61)
    # one batch of 8500 (three checking blocks), then one structure at a time
    with ext.Writer(str(path), **opts) as w:
        head = take(b, range(8500))
        w.add_batch(head["natoms"], head["numbers"], head["positions"], head["energies"], head["forces"],
                    cells=head["cells"], pbc=head["pbc"], stress=head["stress"], stress_mask=head["stress_mask"],
                    info=head["info"])
        add_one_by_one(w, b, 8500)
        st = w.stats()
    assert st["added"] == 9001 and st["deduplicated"] == 0
    assert_file_holds(path, b)
    assert_atoms_pipeline(path, PIPELINE[profile])
    with h5py.File(path, "r") as f:
        assert f["structures/positions"].chunks == (97, 3)
        assert f["labels/energy"].chunks == (61,)
    filtered, raw = chunk_masks(path, "structures/positions")
    if profile == "none":
        assert raw == 0
    else:  # random bits stay unfiltered, regular values are compressed
        assert raw >= 30 and filtered >= 30, (filtered, raw)
    # the library's reader agrees (shuffled indices, direct chunk path)
    with h5ml.HDF5DatasetReader(str(path)) as r:
        idx = rng.integers(0, 9001, 500)
        got = r.read_batch(idx)
    sub = take(b, idx)
    for key, want in (("numbers", sub["numbers"]), ("positions", sub["positions"]), ("cells", sub["cells"]),
                      ("energies", sub["energies"]), ("forces", sub["forces"].astype(np.float32)),
                      ("pbc", sub["pbc"]), ("stress_mask", sub["stress_mask"])):
        H.assert_same_bits(got[key], want, f"read_batch {key}")
    verify(cli, path)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("profile", PROFILES)
def test_signals_roundtrip(tmp_path, rng, profile, threads):
    n, length = 41, 130
    t = np.arange(length)
    sig = np.floor(np.sin(0.05 * t[None, :] * (1 + np.arange(n)[:, None] % 5)) * 64) / 64
    sig = sig.astype(np.float32)
    sig[16:32] = random_bits(rng, (16, length), np.float32)
    labels = np.arange(n, dtype=np.int64) % 7
    meta = [f'{{"i":{i}}}' if i % 3 == 0 else None for i in range(n)]
    path = tmp_path / "s.h5"
    with ext.SigWriter(str(path), length=length, compression=profile, threads=threads, chunk_rows=4) as w:
        w.add(sig[:10], labels[:10], meta=meta[:10])
        w.add(sig[10:23].astype(np.float64), labels[10:23], meta=meta[10:23])  # converted to float32
        w.add(sig[23:], labels[23:], meta=meta[23:])
    with h5py.File(path, "r") as f:
        H.assert_same_bits(f["signals"][()], sig, "signals")
        H.assert_same_bits(f["labels"][()], labels, "labels")
        assert pipeline(f["signals"]) == PIPELINE[profile]
        assert pipeline(f["labels"]) == (None, None, False)
        assert f["signals"].chunks == (4, length)
        comp, level, _ = PIPELINE[profile]
        assert f.attrs["compression"] == (comp or "none")
        assert int(f.attrs["compression_level"]) == (level or 0)
    filtered, raw = chunk_masks(path, "signals")
    assert filtered + raw == 11  # the last chunk holds one signal
    if profile != "none":
        assert raw >= 3 and filtered >= 6, (filtered, raw)
    r = ext.SigReader(str(path), threads=threads)
    idx = rng.integers(0, n, 60)
    got, lab = r.read(idx)
    H.assert_same_bits(got, sig[idx], "SigReader.read")
    H.assert_same_bits(lab, labels[idx], "SigReader labels")


@pytest.mark.parametrize("profile", ["fast", "balanced", "small"])
def test_cache_manager_profiles(tmp_path, rng, profile):
    signals = rng.normal(size=(60, 256)).astype(np.float32)
    labels = np.arange(60) % 4
    cm = h5ml.CacheManager(cache_dir=tmp_path)
    flat = cm.cache_dataset(signals, labels, cache_name="flat", compression=profile, compression_opts=1)
    split = cm.cache_dataset_with_splits(signals, labels, cache_name="split", compression=profile)
    with h5py.File(flat, "r") as f:
        assert pipeline(f["signals"]) == PIPELINE[profile]  # compression_opts ignored by a profile
    with h5py.File(split, "r") as f:
        for s in ("train", "val", "test"):
            assert pipeline(f[s]["signals"]) == PIPELINE[profile]
    for name in ("flat", "split"):
        got, lab, _ = cm.load_cached_dataset(name)
        H.assert_same_bits(got, signals, name)
        np.testing.assert_array_equal(lab, labels)


# ---- 2. precedence ------------------------------------------------------------------------

def one_structure(path, **options):
    b = make_batch(np.random.default_rng(0), 5, noisy=(0, 0))
    write_batch(path, b, **options)
    return b


@pytest.mark.parametrize("options, want", [
    (dict(compression="fast"), ("lzf", None, True)),
    (dict(compression="fast", level=5), ("lzf", None, True)),          # a level is gzip's only
    (dict(compression="fast", shuffle=False), ("lzf", None, False)),
    (dict(compression="small"), ("gzip", 9, True)),
    (dict(compression="small", level=3), ("gzip", 3, True)),           # an explicit level wins
    (dict(compression="small", shuffle=False), ("gzip", 9, False)),
    (dict(compression="balanced"), ("gzip", 4, True)),
    (dict(compression="balanced", level=1), ("gzip", 1, True)),
    (dict(compression="none"), (None, None, False)),
    (dict(compression=None), (None, None, False)),
    (dict(compression="lzf"), ("lzf", None, True)),
    (dict(compression="gzip", level=9, shuffle=False), ("gzip", 9, False)),
    (dict(), ("gzip", 4, True)),
])
def test_extension_precedence(tmp_path, options, want):
    path = tmp_path / "p.h5"
    b = one_structure(path, **options)
    assert_atoms_pipeline(path, want)
    assert_file_holds(path, b)


@pytest.mark.parametrize("compression, opts, want", [
    ("fast", 4, ("lzf", None, True)),
    ("fast", 9, ("lzf", None, True)),
    ("balanced", 4, ("gzip", 4, True)),
    ("small", 4, ("gzip", 9, True)),
    ("small", 2, ("gzip", 9, True)),  # the profile sets its own level
    ("gzip", 9, ("gzip", 9, True)),
    ("none", 4, (None, None, False)),
])
def test_dataset_writer_profiles(tmp_path, rng, compression, opts, want):
    from ase import Atoms
    path = tmp_path / "w.h5"
    frames = []
    with h5ml.HDF5DatasetWriter(path, compression=compression, compression_opts=opts) as w:
        for k in range(12):
            a = Atoms("CuO", positions=[[0, 0, 0], [1.5 + 0.01 * k, 0, 0]], cell=np.eye(3) * 8, pbc=k % 2 == 0)
            e, f = float(rng.normal()), rng.normal(size=(2, 3))
            w.add_structure(a, e, f)
            frames.append((a, e, f))
    assert_atoms_pipeline(path, want)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["labels/energy"][()], [e for _, e, _ in frames])
        H.assert_same_bits(f["labels/forces"][()], np.concatenate([x for _, _, x in frames]).astype(np.float32), "forces")


@pytest.mark.parametrize("name", ["tiny", "default", "gzip9", "", "fast ", "Fast", "SMALL"])
def test_unknown_profile(tmp_path, name):
    if name.lower() in PROFILES:
        # the original tool's names were case-insensitive ("GZIP"): so are the profiles there
        with h5ml.HDF5DatasetWriter(tmp_path / "x.h5", compression=name):
            pass
        assert_atoms_pipeline(tmp_path / "x.h5", PIPELINE[name.lower()])
    else:
        with pytest.raises(ValueError, match="Unsupported compression.*'fast', 'balanced', 'small'"):
            h5ml.HDF5DatasetWriter(tmp_path / "x.h5", compression=name)
        assert not (tmp_path / "x.h5").exists()
    # the extension takes the exact names only
    with pytest.raises(ValueError, match="a profile \\('fast', 'balanced', 'small'\\)"):
        ext.Writer(str(tmp_path / "y.h5"), compression=name)
    with pytest.raises(ValueError, match="profile"):
        ext.SigWriter(str(tmp_path / "z.h5"), length=8, compression=name)
    assert not (tmp_path / "y.h5").exists() and not (tmp_path / "z.h5").exists()


@pytest.mark.parametrize("first, second, kept", [
    ("fast", "small", "lzf"),
    ("small", "fast", "gzip 9"),
    ("none", "balanced", "none"),
    ("balanced", "small", "gzip 4"),
])
def test_append_with_another_profile(tmp_path, rng, caplog, first, second, kept):
    b = make_batch(rng, 120, noisy=(0.5, 0.6))
    path = tmp_path / "a.h5"
    write_batch(path, take(b, range(70)), compression=first, chunk_atoms=50, chunk_structures=20)
    logged = []
    rest = take(b, range(70, 120))
    with ext.Writer(str(path), mode="a", compression=second, chunk_atoms=7, log=lambda lv, msg: logged.append(msg)) as w:
        w.add_batch(**rest)
    assert any(f"appending keeps the file's compression ({kept})" in m for m in logged), logged
    assert_atoms_pipeline(path, PIPELINE[first])
    with h5py.File(path, "r") as f:
        assert f["structures/positions"].chunks == (50, 3)  # the file's chunking kept too
    assert_file_holds(path, b)
    # HDF5DatasetWriter routes the warning to the "h5ml" logger
    with caplog.at_level(logging.WARNING, logger="h5ml"):
        h5ml.HDF5DatasetWriter(path, mode="a", compression=second).finalize()
    assert any(f"appending keeps the file's compression ({kept})" in r.getMessage() for r in caplog.records)
    assert_atoms_pipeline(path, PIPELINE[first])
    assert_file_holds(path, b)


# ---- the command line: --profile --------------------------------------------------------

def test_cli_profiles(tmp_path, cli, sample_path, sample_data):
    cases = [
        (["--profile", "small"], ("gzip", 9, True)),
        (["--profile", "fast"], ("lzf", None, True)),
        (["--profile", "fast", "--no-shuffle"], ("lzf", None, False)),
        (["--profile", "balanced"], ("gzip", 4, True)),
        (["--profile", "none"], (None, None, False)),
        (["-p", "fast", "-c", "gzip"], ("gzip", 4, True)),
        (["--profile", "fast", "-c", "gzip", "--level", "6"], ("gzip", 6, True)),
        (["--profile", "small", "--level", "2"], ("gzip", 2, True)),
        (["--profile", "small", "-c", "lzf"], ("lzf", None, True)),
        (["--profile", "none", "-c", "gzip"], ("gzip", 4, True)),
    ]
    for k, (opts, want) in enumerate(cases):
        out = tmp_path / f"c{k}.h5"
        H.convert(sample_path, out, *opts)
        assert_atoms_pipeline(out, want)
        H.assert_files_equal(H.load_h5(out), sample_data)
    # merge: the profile over A's filters
    merged = tmp_path / "m.h5"
    code, out, err = cli("merge", tmp_path / "c1.h5", tmp_path / "c4.h5", "-o", merged, "--profile", "small", "-q")
    assert code == 0, err
    assert_atoms_pipeline(merged, ("gzip", 9, True))
    code, out, err = cli("merge", tmp_path / "c1.h5", tmp_path / "c4.h5", "-o", tmp_path / "m2.h5", "-q")
    assert code == 0, err
    assert_atoms_pipeline(tmp_path / "m2.h5", ("lzf", None, True))  # A's filters without a profile


@pytest.mark.parametrize("cmd", [
    ["convert", "{xyz}", "-o", "{out}", "--profile", "fast", "--level", "5"],
    ["convert", "{xyz}", "-o", "{out}", "--profile", "none", "--level", "5"],
    ["convert", "{xyz}", "-o", "{out}", "-c", "lzf", "--level", "5"],
    ["merge", "{h5}", "{h5}", "-o", "{out}", "--profile", "fast", "--level", "5"],
    ["signals", "generate", "-o", "{out}", "--profile", "fast", "--level", "3"],
])
def test_cli_level_without_gzip(tmp_path, cli, sample_path, sample_h5, cmd):
    out = tmp_path / "o.h5"
    args = [a.format(xyz=sample_path, out=out, h5=sample_h5) for a in cmd]
    code, stdout, err = cli(*args)
    assert code == 2, (code, stdout, err)
    assert "gzip" in err and "--level" in err, err
    assert not out.exists()


def test_cli_unknown_profile(tmp_path, cli, sample_path, sample_h5):
    for args in (["convert", sample_path, "-o", tmp_path / "o.h5", "--profile", "bogus"],
                 ["merge", sample_h5, sample_h5, "-o", tmp_path / "o.h5", "--profile", "Fast"],
                 ["signals", "generate", "-o", tmp_path / "o.h5", "--profile", "tiny"]):
        code, out, err = cli(*args)
        assert code == 2, (args, code, err)
        assert re.search(r"unknown profile '(bogus|Fast|tiny)' \(choose fast, balanced, small or none\)", err), err
        assert not (tmp_path / "o.h5").exists()


def test_cli_signals_profiles(tmp_path, cli):
    for profile, want in PIPELINE.items():
        out = tmp_path / f"g-{profile}.h5"
        code, stdout, err = cli("signals", "generate", "-o", out, "--per-class", "2", "--length", "512",
                                "--profile", profile, "-q")
        assert code == 0, err
        with h5py.File(out, "r") as f:
            for s in ("train", "val", "test"):
                assert pipeline(f[s]["signals"]) == want, (profile, s)
                assert pipeline(f[s]["labels"]) == (None, None, False)
        code, stdout, err = cli("verify", out)
        assert code == 0, stdout + err
    # the same generator through every profile: the same samples
    ref = H.load_h5(tmp_path / "g-balanced.h5")
    H.assert_files_equal(H.load_h5(tmp_path / "g-small.h5"), ref)
    H.assert_files_equal(H.load_h5(tmp_path / "g-fast.h5"), ref)
    # split of a flat cache with a profile
    flat = tmp_path / "flat.h5"
    sig = np.random.default_rng(1).normal(size=(40, 64)).astype(np.float32)
    with ext.SigWriter(str(flat), length=64, compression="none") as w:
        w.add(sig, np.arange(40, dtype=np.int64) % 4)
    code, stdout, err = cli("signals", "split", flat, "-o", tmp_path / "split.h5", "--profile", "fast",
                            "--no-shuffle", "-q")
    assert code == 0, err
    with h5py.File(tmp_path / "split.h5", "r") as f:
        for s in ("train", "val", "test"):
            assert pipeline(f[s]["signals"]) == ("lzf", None, False)


# ---- 3. deduplication ------------------------------------------------------------------------

def distinct_batch(rng, n):
    """n structures with distinct geometries (atoms >= 1.2 A apart: no warnings), labels
    that differ per structure, metadata on some."""
    natoms = rng.integers(1, 5, n).astype(np.int64)
    m = int(natoms.sum())
    atom_in = np.concatenate([np.arange(k) for k in natoms])
    owner = np.repeat(np.arange(n), natoms)
    positions = np.stack([1.5 * atom_in + 0.1 * rng.random(m), 0.001 * owner, 2 * rng.random(m)], axis=1)
    cells = np.zeros((n, 3, 3))
    pbc = np.zeros((n, 3), dtype=bool)
    periodic = np.arange(n) % 3 != 0
    cells[periodic] = np.eye(3) * 30
    pbc[periodic] = [True, False, True]
    return dict(natoms=natoms, numbers=rng.integers(1, 90, m).astype(np.int64), positions=positions,
                energies=-np.arange(n, dtype=np.float64) - 1, forces=rng.normal(size=(m, 3)), cells=cells, pbc=pbc,
                stress=rng.normal(size=(n, 6)), stress_mask=np.arange(n) % 2 == 0,
                info=[f'{{"n":{i}}}' if i % 3 == 0 else None for i in range(n)])


def sequence(rng, pool, length, pdup):
    """Indices into the pool: new ones in pool order, and with probability pdup one seen before."""
    seq, nxt = [], 0
    n = len(pool["natoms"])
    for _ in range(length):
        if nxt and (nxt == n or rng.random() < pdup):
            seq.append(int(rng.integers(0, nxt)))
        else:
            seq.append(nxt)
            nxt += 1
    return np.array(seq), nxt


def relabel(b, rng):
    """Other labels for the same geometries (energies, forces, stress, metadata)."""
    n = len(b["natoms"])
    c = dict(b)
    c["energies"] = rng.normal(size=n) * 10
    c["forces"] = rng.normal(size=b["forces"].shape)
    c["stress_mask"] = ~b["stress_mask"]
    c["info"] = [f'{{"other":{i}}}' for i in range(n)]
    return c


def test_dedup_batches_and_singles(tmp_path, rng, cli):
    pool = distinct_batch(rng, 7000)
    seq, unique = sequence(rng, pool, 10000, 0.35)
    data = relabel(take(pool, seq), rng)  # every position its own labels
    first = np.unique(seq, return_index=True)[1]  # first position of each geometry, in pool order
    want = take(data, np.sort(first))
    assert len(first) == unique
    # one batch (three checking blocks) at every thread count
    for threads in THREADS:
        path = tmp_path / f"one-{threads}.h5"
        st = write_batch(path, data, dedup=True, threads=threads, chunk_atoms=101, chunk_structures=37)
        assert (st["structures"], st["added"], st["deduplicated"]) == (unique, unique, 10000 - unique)
        assert_file_holds(path, want)
    # across batches, and one at a time
    path = tmp_path / "many.h5"
    with ext.Writer(str(path), dedup=True, chunk_structures=37) as w:
        at = 0
        while at < 10000:
            k = min(10000 - at, int(rng.integers(1, 500)))
            part = take(data, range(at, at + k))
            if rng.random() < 0.3:
                add_one_by_one(w, part)
            else:
                w.add_batch(part["natoms"], part["numbers"], part["positions"], part["energies"], part["forces"],
                            cells=part["cells"], pbc=part["pbc"], stress=part["stress"],
                            stress_mask=part["stress_mask"], info=part["info"])
            at += k
            if rng.random() < 0.2:
                w.checkpoint()
        st = w.stats()
    assert (st["structures"], st["deduplicated"]) == (unique, 10000 - unique)
    assert_file_holds(path, want)
    verify(cli, path)
    # dedup off: everything written
    st = write_batch(tmp_path / "all.h5", data, dedup=False)
    assert (st["structures"], st["deduplicated"]) == (10000, 0)


def test_dedup_append(tmp_path, rng, cli):
    pool = distinct_batch(rng, 600)
    seq, unique = sequence(rng, pool, 900, 0.4)
    data = relabel(take(pool, seq), rng)
    first = np.sort(np.unique(seq, return_index=True)[1])
    path = tmp_path / "a.h5"
    st1 = write_batch(path, take(data, range(450)), dedup=True, chunk_structures=16, chunk_atoms=40)
    n1 = int((first < 450).sum())
    assert (st1["structures"], st1["deduplicated"]) == (n1, 450 - n1)
    # a later session: duplicates of what the file holds are skipped too
    with ext.Writer(str(path), mode="a", dedup=True) as w:
        add_one_by_one(w, take(data, range(450, 900)))
        st2 = w.stats()
    assert (st2["structures"], st2["added"], st2["deduplicated"]) == (unique, unique - n1, 450 - (unique - n1))
    want = take(data, first)
    assert_file_holds(path, want)
    verify(cli, path)
    # the first session without dedup keeps its duplicates; the second skips against all
    path2 = tmp_path / "b.h5"
    write_batch(path2, take(data, range(450)), dedup=False)
    seen = set(seq[:450].tolist())
    keep = list(range(450)) + [k for k in range(450, 900) if seq[k] not in seen and k in set(first.tolist())]
    st = write_batch(path2, take(data, range(450, 900)), mode="a", dedup=True)
    assert st["structures"] == len(keep)
    assert_file_holds(path2, take(data, keep))


def test_dedup_dataset_writer(tmp_path, rng, caplog):
    from ase import Atoms
    path = tmp_path / "w.h5"

    def atoms(k, close=False):
        pos = [[0, 0.01 * k, 0], [0.3 if close else 1.5, 0.01 * k, 0], [3.0, 0.01 * k, 1]]
        return Atoms("CuOH2", positions=pos + [[4.5, 0, 0]], cell=np.eye(3) * 20, pbc=[True, True, False])

    frames = [atoms(k, close=k == 3) for k in range(6)]
    forces = [rng.normal(size=(4, 3)) for _ in range(6)]
    with caplog.at_level(logging.WARNING, logger="h5ml"):
        w = h5ml.HDF5DatasetWriter(path, dedup=True)
        w.add_structure(frames[0], -1.0, forces[0], metadata={"first": True})
        w.add_structure(frames[0].copy(), -2.0, forces[1], metadata={"first": False})  # duplicate: skipped
        assert w.stats()["deduplicated"] == 1
        big = np.zeros((4, 3))
        big[0, 0] = 60  # |F| = 60 would warn, but a skipped duplicate issues no warning
        w.add_batch([frames[1], frames[0], frames[2], frames[1], frames[3], frames[3]],
                    [-3.0, -4.0, -5.0, -6.0, -7.0, -8.0], [forces[2], big, forces[3], big, forces[4], big])
        assert w.stats()["deduplicated"] == 4
        with pytest.raises(ValueError, match="Invalid energy: nan"):  # validation first
            w.add_structure(frames[2], float("nan"), forces[0])
        assert w.stats()["deduplicated"] == 4
        w.finalize()
    stats = w.stats()
    assert (stats["structures"], stats["added"], stats["deduplicated"]) == (4, 4, 4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("structure 3: atoms 0 and 1 are 0.300"), warnings
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["labels/energy"][()], [-1.0, -3.0, -5.0, -7.0])
        np.testing.assert_array_equal(f["labels/forces"][0], forces[0][0].astype(np.float32))
        assert f["labels/info"][0] in (b'{"first": true}', '{"first": true}', b'{"first":true}', '{"first":true}')
    # a later session: against the stored structures
    with h5ml.HDF5DatasetWriter(path, mode="a", dedup=True) as w:
        w.add_batch([frames[3], frames[4], frames[0]], [-9.0, -10.0, -11.0], [forces[5]] * 3,
                    metadata=[{"x": 1}, {"x": 2}, {"x": 3}])
    assert (w.stats()["structures"], w.stats()["added"], w.stats()["deduplicated"]) == (5, 1, 2)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["labels/energy"][()], [-1.0, -3.0, -5.0, -7.0, -10.0])


def test_dedup_edge_cases(tmp_path, cli):
    path = tmp_path / "e.h5"
    z = np.array([8, 1], dtype=np.int64)
    p = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])
    f = np.zeros((2, 3))
    cell = np.eye(3) * 10
    with ext.Writer(str(path), dedup=True, chunk_atoms=3, chunk_structures=2) as w:
        def add(pos=p, energy=-1.0, cell=None, pbc=None, info=None, dup=False):
            before = w.stats()
            w.add(z, pos, energy, f, cell=cell, pbc=pbc, info=info)
            after = w.stats()
            assert after["deduplicated"] - before["deduplicated"] == int(dup), (energy, before, after)
            assert after["structures"] - before["structures"] == int(not dup), (energy, before, after)

        add(energy=-1.0)                                          # 0: no cell, no pbc
        add(energy=-2.0, cell=np.zeros((3, 3)), pbc=[0, 0, 0], dup=True)
        add(energy=-3.0, cell=np.full((3, 3), -0.0))              # 1: -0.0 is not 0.0
        q = p.copy()
        q[0, 2] = -0.0
        add(q, energy=-4.0)                                       # 2
        q = p.copy()
        q[1, 0] = np.nextafter(1.5, 2.0)
        add(q, energy=-5.0)                                       # 3: one ulp away
        add(q, energy=-5.5, dup=True)
        add(energy=-6.0, cell=cell, pbc=[1, 0, 1])                # 4
        add(energy=-7.0, cell=cell, pbc=np.array([2, 0, 255], dtype=np.uint8), dup=True)
        add(energy=-8.0, cell=cell, pbc=[True, False, False])     # 5
        with pytest.raises(ValueError, match="Invalid energy: inf"):
            w.add(z, p, float("inf"), f)
        with pytest.raises(ValueError, match=r"Forces shape \(1, 3\) doesn't match atoms \(2, 3\)"):
            w.add(z, p, -1.0, f[:1])
        # a batch: duplicates of stored ones and of each other, zeros for cells
        st = w.stats()
        w.add_batch(np.array([2, 2, 2]), np.concatenate([z, z, z]), np.concatenate([p, p + 5, p + 5]),
                    np.array([-9.0, -10.0, -11.0]), np.zeros((6, 3)), cells=np.zeros((3, 3, 3)),
                    pbc=np.zeros((3, 3), dtype=bool))
        assert w.stats()["deduplicated"] - st["deduplicated"] == 2
        assert w.stats()["structures"] == 7
    with h5py.File(path, "r") as fh:
        np.testing.assert_array_equal(fh["labels/energy"][()], [-1.0, -3.0, -4.0, -5.0, -6.0, -8.0, -10.0])
        assert np.signbit(fh["structures/cells"][1]).all()
        assert np.signbit(fh["structures/positions"][4, 2])
        assert fh["structures/positions"][7, 0] == np.nextafter(1.5, 2.0)
        np.testing.assert_array_equal(fh["structures/pbc"][4], [True, False, True])
    verify(cli, path)
    # without validation a duplicate is skipped whatever its labels
    with ext.Writer(str(path), mode="a", dedup=True, validate=False) as w:
        w.add(z, p, float("nan"), f)
        assert (w.stats()["structures"], w.stats()["deduplicated"]) == (7, 1)


# ---- the command line: --dedup -----------------------------------------------------------

def write_xyz(path, frames):
    path.write_text("".join(frames))
    return path


def test_cli_convert_dedup(tmp_path, cli, sample_frame_texts, sample_data):
    fr = sample_frame_texts
    # duplicates inside the input, one with another energy (the first is kept)
    other = re.sub(r"energy=([-0-9.eE+]+)", "energy=123.5", fr[60], count=1)
    assert other != fr[60]
    xyz = write_xyz(tmp_path / "d.xyz", fr[:200] + fr[50:120] + [other] + fr[200:] + fr[:9])
    out = tmp_path / "d.h5"
    code, stdout, err = cli("convert", xyz, "-o", out, "--dedup")
    assert code == 0, err
    assert "; 80 duplicates skipped" in stdout, stdout
    assert stdout.startswith("wrote 300 structures"), stdout
    H.assert_files_equal(H.load_h5(out), sample_data)
    verify(cli, out)
    # without --dedup: every frame written, no duplicate count
    code, stdout, err = cli("convert", xyz, "-o", tmp_path / "all.h5")
    assert code == 0 and "duplicate" not in stdout and "wrote 380 structures" in stdout, stdout
    # appending with --dedup: against the structures already in the file
    part = tmp_path / "p.h5"
    H.convert(write_xyz(tmp_path / "a.xyz", fr[:150]), part)
    code, stdout, err = cli("convert", write_xyz(tmp_path / "b.xyz", fr[100:] + [fr[7]]), "-o", part, "--append",
                            "--dedup")
    assert code == 0, err
    assert stdout.startswith("appended 150 structures") and "; 51 duplicates skipped" in stdout, stdout
    H.assert_files_equal(H.load_h5(part), sample_data)
    verify(cli, part)
    # singular
    code, stdout, err = cli("convert", write_xyz(tmp_path / "c.xyz", [fr[3]]), "-o", part, "--append", "--dedup")
    assert code == 0 and "; 1 duplicate skipped" in stdout, stdout


def test_cli_merge_dedup(tmp_path, cli, sample_frame_texts, sample_data):
    fr = sample_frame_texts
    a = tmp_path / "a.h5"
    b = tmp_path / "b.h5"
    H.convert(write_xyz(tmp_path / "a.xyz", fr[:200]), a)
    H.convert(write_xyz(tmp_path / "b.xyz", fr[100:]), b, "--profile", "fast")
    out = tmp_path / "m.h5"
    code, stdout, err = cli("merge", a, b, a, "-o", out, "--dedup")
    assert code == 0, err
    assert "merged 3 files" in stdout and ": 300 structures" in stdout, stdout
    assert "; 300 duplicates skipped" in stdout, stdout
    H.assert_files_equal(H.load_h5(out), sample_data)
    verify(cli, out)
    code, stdout, err = cli("merge", a, b, "-o", tmp_path / "n.h5")
    assert code == 0 and "duplicate" not in stdout and ": 400 structures" in stdout, stdout


def test_append_without_metadata_to_file_with_metadata(tmp_path):
    b = distinct_batch(np.random.default_rng(3), 6)
    path = tmp_path / "i.h5"
    write_batch(path, take(b, range(4)))  # structure 0 and 3 have metadata
    rest = take(b, [4])
    rest["info"] = [None]
    write_batch(path, rest, mode="a")
    with h5py.File(path, "r") as f:
        assert f["labels/info"].shape == f["labels/energy"].shape == (5,)
    ext.Reader(str(path))


# ---- chunk shapes from the expected access (H5ML_OPT_ACCESS) ----


@pytest.mark.parametrize("access, compression, chunk_atoms, expect", [
    (None, "gzip", 0, 16384),
    ("sequential", "gzip", 0, 16384),
    ("shuffled", "gzip", 0, 4096),
    ("shuffled", "fast", 0, 4096),
    ("shuffled", "none", 0, 16384),  # uncompressed chunks are read row by row
    ("shuffled", "gzip", 1000, 1000),  # an explicit size wins
])
def test_access_sizes_chunks(tmp_path, rng, access, compression, chunk_atoms, expect):
    b = make_batch(rng, 40)
    path = tmp_path / "c.h5"
    opts = {"access": access} if access else {}
    if chunk_atoms:
        opts["chunk_atoms"] = chunk_atoms
    with ext.Writer(str(path), compression=compression, **opts) as w:
        w.add_batch(**b)
    with h5py.File(path, "r") as f:
        assert f["structures/positions"].chunks == (expect, 3)
        assert f["labels/forces"].chunks == (expect, 3)
        assert f["labels/energy"].chunks == (4096,)
    assert_file_holds(path, b)


def test_access_errors_and_cli(tmp_path, cli, sample_path):
    with pytest.raises(ValueError, match="access must be 'sequential' or 'shuffled'"):
        ext.Writer(str(tmp_path / "x.h5"), access="random")
    assert not (tmp_path / "x.h5").exists()
    out = tmp_path / "s.h5"
    code, stdout, err = cli("convert", sample_path, "-o", out, "--access", "shuffled", "-q")
    assert code == 0, err
    with h5py.File(out, "r") as f:
        assert f["structures/positions"].chunks == (4096, 3)
    code, stdout, err = cli("convert", sample_path, "-o", tmp_path / "t.h5", "--access", "random")
    assert code == 2 and "unknown access 'random'" in err, err
