"""The Python package h5ml (python/h5ml): the original tools' classes and functions on the
extension module, judged by h5py reading the files they write (names, dtypes, shapes,
attributes, values), by the SPEC's messages, and by torch DataLoaders under fork and spawn.

Run with Debian's /usr/bin/python3 and PYTHONPATH=build/python (build/python is added to
sys.path when h5ml is not importable otherwise). Randomized tests print their seed
(H5ML_TEST_SEED replays one).
"""
import hashlib
import json
import logging
import os
import pickle
import random
import re
import subprocess
import sys
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

from ase import Atoms  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from h5ml import _h5ml  # noqa: E402

MODULE_SEED = int(os.environ.get("H5ML_TEST_SEED") or random.SystemRandom().randrange(1, 2**31))
FAULTS = ["sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation", "usure",
          "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu"]
VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
CONTEXTS = ["fork", "spawn"]


@pytest.fixture(autouse=True)
def _print_seed(request):
    print(f"\n[{request.node.name}] module seed = {MODULE_SEED} (replay: H5ML_TEST_SEED={MODULE_SEED})")


def rng_for(name):
    """A generator per test, derived from the module seed and the test's name."""
    return np.random.default_rng([MODULE_SEED, int(hashlib.md5(name.encode()).hexdigest()[:8], 16)])


# ---- atomistic data ---------------------------------------------------------------------------

class Data:
    """Structures with labels, and what the file must hold for them."""

    def __init__(self, rng, n, stress_3x3_every=3):
        self.atoms, self.energies, self.forces, self.stresses, self.meta = [], [], [], [], []
        grid = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(3)], float) * 2.2
        for s in range(n):
            na = int(rng.integers(1, 10))
            periodic = s % 2 == 0
            pos = grid[:na] + rng.uniform(-0.1, 0.1, (na, 3)) + 0.5
            cell = np.diag(rng.uniform(9.0, 11.0, 3)) if periodic else np.zeros((3, 3))
            self.atoms.append(Atoms(numbers=rng.integers(1, 80, na), positions=pos, cell=cell, pbc=periodic))
            self.energies.append(float(rng.normal(-10, 3)))
            self.forces.append(rng.normal(0, 1.5, (na, 3)))
            stress = None
            if periodic:
                stress = rng.normal(0, 0.05, 6)
                if s % stress_3x3_every == 0:  # as a 3x3 tensor (symmetric)
                    t = np.zeros((3, 3))
                    for v, (i, j) in zip(stress, VOIGT):
                        t[i, j] = t[j, i] = v
                    stress = t
            self.stresses.append(stress)
            self.meta.append({"source": "test", "k": s, "tags": [s, s + 1]})

    def __len__(self):
        return len(self.atoms)

    def expected(self, start=0, stop=None):
        sl = slice(start, stop)
        atoms = self.atoms[sl]
        natoms = np.array([len(a) for a in atoms], dtype=np.int64)
        splits = np.concatenate(([0], np.cumsum(natoms))).astype(np.int64)
        stress = np.zeros((len(atoms), 6))
        mask = np.zeros(len(atoms), bool)
        for k, s in enumerate(self.stresses[sl]):
            if s is not None:
                s = np.asarray(s)
                stress[k] = s if s.shape == (6,) else [s[i, j] for i, j in VOIGT]
                mask[k] = True
        return {
            "structures/atomic_numbers": np.concatenate([a.numbers for a in atoms]).astype(np.int64),
            "structures/atomic_numbers_splits": splits,
            "structures/positions": np.concatenate([a.positions for a in atoms]),
            "structures/cells": np.stack([np.asarray(a.cell) for a in atoms]),
            "structures/pbc": np.stack([a.pbc for a in atoms]),
            "labels/energy": np.array(self.energies[sl]),
            "labels/forces": np.concatenate(self.forces[sl]).astype(np.float32),
            "labels/forces_splits": splits,
            "labels/stress": stress,
            "labels/stress_mask": mask,
            "labels/structure_indices": np.arange(len(atoms), dtype=np.int64),
        }


DTYPES = {"structures/atomic_numbers": np.int64, "structures/atomic_numbers_splits": np.int64,
          "structures/positions": np.float64, "structures/cells": np.float64, "structures/pbc": np.bool_,
          "labels/energy": np.float64, "labels/forces": np.float32, "labels/forces_splits": np.int64,
          "labels/stress": np.float64, "labels/stress_mask": np.bool_, "labels/structure_indices": np.int64}


def read_h5(path):
    """Every dataset of an atomistic file (h5py), plus the /metadata attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        for group in ("structures", "labels"):
            for name, ds in f[group].items():
                out[f"{group}/{name}"] = ds[()]
        out["attrs"] = dict(f["metadata"].attrs)
        out["dtypes"] = {k: f[k].dtype for k in DTYPES}
    return out


def check_atoms_file(path, data, meta=True):
    got = read_h5(path)
    for key, dtype in DTYPES.items():
        assert got["dtypes"][key] == np.dtype(dtype), (key, got["dtypes"][key])
    with h5py.File(path, "r") as f:
        assert set(f["structures"].keys()) == {k.split("/")[1] for k in DTYPES if k.startswith("structures/")}
    for key, want in data.expected().items():
        assert got[key].shape == want.shape, (key, got[key].shape, want.shape)
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    assert int(got["attrs"]["num_structures"]) == len(data)
    if meta:
        assert [json.loads(x) for x in got["labels/info"]] == data.meta
    return got


@pytest.fixture(scope="module")
def atoms_data():
    return Data(rng_for("atoms_data"), 24)


def write_atoms(path, data, split=10, **kw):
    """add_structure for the first `split` structures, add_batch for the rest."""
    with h5ml.HDF5DatasetWriter(path, **kw) as w:
        for k in range(split):
            w.add_structure(data.atoms[k], data.energies[k], data.forces[k], stress=data.stresses[k],
                            metadata=data.meta[k])
        w.add_batch(data.atoms[split:], data.energies[split:], data.forces[split:],
                    stresses=data.stresses[split:], metadata=data.meta[split:], show_progress=False)
    return path


@pytest.fixture(scope="module")
def atoms_file(tmp_path_factory, atoms_data):
    return write_atoms(tmp_path_factory.mktemp("atoms") / "atoms.h5", atoms_data)


# ---- 1. HDF5DatasetWriter --------------------------------------------------------------------

def test_writer_schema_and_values(atoms_file, atoms_data):
    check_atoms_file(atoms_file, atoms_data)


def test_writer_attributes_and_extra_metadata(tmp_path, atoms_data):
    path = tmp_path / "meta.h5"
    w = h5ml.HDF5DatasetWriter(str(path))
    assert w.output_path == path and isinstance(w.output_path, Path)
    assert (w.compression, w.compression_opts, w.mode, w.validate) == ("gzip", 4, "w", True)
    w.add_batch(atoms_data.atoms[:3], atoms_data.energies[:3], atoms_data.forces[:3], show_progress=False)
    assert w.n_structures == 3 and w.num_structures == 3 and len(w) == 3
    extra = {"teacher_model": "orb-v2", "version": 1.5, "epochs": 7, "flag": True, "ids": [1, 2, 3],
             "weights": [0.5, 1.5], "generation_config": {"batch_size": 32, "device": "cuda"},
             "runs": [{"a": 1}, {"b": [1, 2]}], "np_int": np.int32(4)}
    w.finalize(extra_metadata=extra)
    assert w.finalized and w.n_structures == 3
    with h5py.File(path, "r") as f:
        a = f["metadata"].attrs
        assert a["teacher_model"] == "orb-v2"
        assert a["version"] == 1.5 and a["epochs"] == 7 and a["np_int"] == 4
        assert bool(a["flag"]) is True and np.asarray(a["flag"]).dtype == np.bool_
        assert np.asarray(a["ids"]).dtype.kind == "i"
        np.testing.assert_array_equal(a["ids"], [1, 2, 3])
        np.testing.assert_array_equal(a["weights"], [0.5, 1.5])
        assert json.loads(a["generation_config"]) == extra["generation_config"]
        assert json.loads(a["runs"]) == extra["runs"]
        assert int(a["num_structures"]) == 3


@pytest.mark.parametrize("compression,opts,want", [
    ("gzip", 9, ("gzip", 9)), ("lzf", 4, ("lzf", None)), ("lzf", None, ("lzf", None)),
    (None, 4, (None, None)), ("none", None, (None, None))])
def test_writer_compression(tmp_path, atoms_data, compression, opts, want):
    path = write_atoms(tmp_path / "c.h5", atoms_data, compression=compression, compression_opts=opts)
    check_atoms_file(path, atoms_data)
    with h5py.File(path, "r") as f:
        ds = f["labels/forces"]
        assert (ds.compression, ds.compression_opts) == want


@pytest.mark.parametrize("mode", ["a", "append"])
def test_append_in_two_parts_equals_one_write(tmp_path, atoms_data, atoms_file, mode):
    path = tmp_path / "two.h5"
    half = len(atoms_data) // 2
    with h5ml.HDF5DatasetWriter(path, mode="w") as w:
        for k in range(half):
            w.add_structure(atoms_data.atoms[k], atoms_data.energies[k], atoms_data.forces[k],
                            stress=atoms_data.stresses[k], metadata=atoms_data.meta[k])
    with h5ml.HDF5DatasetWriter(path, mode=mode) as w:
        assert w.n_structures == half
        w.add_batch(atoms_data.atoms[half:], atoms_data.energies[half:], atoms_data.forces[half:],
                    stresses=atoms_data.stresses[half:], metadata=atoms_data.meta[half:], show_progress=False)
    one, two = read_h5(atoms_file), read_h5(path)
    keys = sorted(k for k in one if "/" in k)
    assert keys == sorted(k for k in two if "/" in k)
    for key in keys:
        assert one[key].dtype == two[key].dtype, key
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert int(two["attrs"]["num_structures"]) == len(atoms_data)


def test_add_batch_in_blocks_and_progress(tmp_path, atoms_data, atoms_file, monkeypatch, capfd):
    import h5ml.atoms as A

    monkeypatch.setattr(A, "_BLOCK", 5)  # 24 structures: 5 blocks, each gathered while the last is written
    monkeypatch.setattr(A, "_PROGRESS_MIN", 10)
    one = read_h5(atoms_file)
    for show, tqdm_present in ((False, True), (True, True), (True, False)):
        if not tqdm_present:
            monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` fails: no bar, no error
        path = tmp_path / f"blocks-{show}-{tqdm_present}.h5"
        capfd.readouterr()
        with h5ml.HDF5DatasetWriter(path) as w:
            w.add_batch(atoms_data.atoms, atoms_data.energies, atoms_data.forces, stresses=atoms_data.stresses,
                        metadata=atoms_data.meta, show_progress=show)
        assert ("Writing structures" in capfd.readouterr().err) == (show and tqdm_present)
        got = read_h5(path)
        for key in (k for k in one if "/" in k):
            np.testing.assert_array_equal(got[key], one[key], err_msg=key)


def test_invalid_mode_and_compression(tmp_path):
    with pytest.raises(ValueError, match="Invalid mode"):
        h5ml.HDF5DatasetWriter(tmp_path / "x.h5", mode="r")
    with pytest.raises(ValueError, match="Unsupported compression"):
        h5ml.HDF5DatasetWriter(tmp_path / "x.h5", compression="zstd")


def _five():
    return Atoms("H5", positions=[(i * 1.5, 0, 0) for i in range(5)])


@pytest.mark.parametrize("kwargs,message", [
    (dict(energy=np.nan), "Invalid energy: nan"),
    (dict(energy=np.inf), "Invalid energy: inf"),
    (dict(forces=np.zeros((10, 3))), "Forces shape (10, 3) doesn't match atoms (5, 3)"),
    (dict(forces=np.full((5, 3), np.nan)), "Forces contain NaN"),
    (dict(forces=np.full((5, 3), np.inf)), "Forces contain Inf"),
    (dict(stress=[0, 0, np.nan, 0, 0, 0]), "Stress contains NaN"),
    (dict(stress=np.full((3, 3), -np.inf)), "Stress contains Inf"),
    (dict(stress=np.zeros(5)), "Stress shape (5,) doesn't match (6,) or (3, 3)"),
])
def test_validation_messages(tmp_path, kwargs, message):
    path = tmp_path / "v.h5"
    args = dict(atoms=_five(), energy=1.0, forces=np.zeros((5, 3)))
    args.update(kwargs)
    with h5ml.HDF5DatasetWriter(path) as w:
        w.add_structure(**dict(args, energy=2.0, forces=np.zeros((5, 3)), stress=None))
        with pytest.raises(ValueError) as err:
            w.add_structure(**args)
        assert str(err.value) == message
        assert w.n_structures == 1  # nothing written for the rejected structure
    with h5py.File(path, "r") as f:
        assert f["labels/energy"][()].tolist() == [2.0]


def test_validate_false_accepts_nan(tmp_path):
    path = tmp_path / "nv.h5"
    with h5ml.HDF5DatasetWriter(path, validate=False) as w:
        w.add_structure(_five(), np.nan, np.full((5, 3), np.nan))
    with h5py.File(path, "r") as f:
        assert np.isnan(f["labels/energy"][0]) and np.isnan(f["labels/forces"][()]).all()


def test_plausibility_warns_through_logging(tmp_path, caplog):
    close = Atoms("H2", positions=[(0, 0, 0), (0.2, 0, 0)])
    with caplog.at_level(logging.WARNING, logger="h5ml"):
        with h5ml.HDF5DatasetWriter(tmp_path / "w.h5") as w:
            w.add_structure(close, 1.0, np.zeros((2, 3)))
            w.add_structure(_five(), 1.0, np.full((5, 3), 60.0))
    records = [r for r in caplog.records if r.name == "h5ml" and r.levelno == logging.WARNING]
    assert len(records) >= 2, [r.getMessage() for r in caplog.records]


def test_finalize_rules(tmp_path, caplog):
    w = h5ml.HDF5DatasetWriter(tmp_path / "f.h5")
    w.add_structure(_five(), 1.0, np.zeros((5, 3)))
    w.finalize()
    with caplog.at_level(logging.WARNING, logger="h5ml"):
        w.finalize()
    assert any("finalize" in r.getMessage() for r in caplog.records if r.name == "h5ml")
    with pytest.raises(RuntimeError) as err:
        w.add_structure(_five(), 1.0, np.zeros((5, 3)))
    assert str(err.value) == "Cannot add structures after finalize() has been called"
    with pytest.raises(RuntimeError, match=re.escape("Cannot add structures after finalize()")):
        w.add_batch([_five()], [1.0], [np.zeros((5, 3))])


def test_context_manager_empty_and_exception(tmp_path):
    empty = tmp_path / "empty.h5"
    with h5ml.HDF5DatasetWriter(empty):
        pass
    with h5py.File(empty, "r") as f:
        assert int(f["metadata"].attrs["num_structures"]) == 0
        assert f["labels/energy"].shape == (0,) and f["structures/positions"].shape == (0, 3)
    kept = tmp_path / "kept.h5"
    with pytest.raises(KeyError, match="boom"):
        with h5ml.HDF5DatasetWriter(kept) as w:
            w.add_structure(_five(), 3.0, np.zeros((5, 3)))
            raise KeyError("boom")
    assert w.finalized
    with h5py.File(kept, "r") as f:
        assert f["labels/energy"][()].tolist() == [3.0]
        assert int(f["metadata"].attrs["num_structures"]) == 1


@pytest.mark.parametrize("n,bad,show", [(12, 7, False), (1300, 1111, True)])
def test_batch_error_keeps_the_structures_before(tmp_path, n, bad, show):
    atoms = [Atoms("H", positions=[(0, 0, 0)]) for _ in range(n)]
    energies = list(np.arange(n, dtype=float))
    forces = [np.zeros((1, 3)) for _ in range(n)]
    cases = [("energy", ValueError, f"Invalid energy: nan (structure {bad} of the batch)"),
             ("forces", ValueError, f"Forces shape (2, 3) doesn't match atoms (1, 3) (structure {bad} of the batch)"),
             ("count", ValueError, f"Number of energies ({n - 1}) doesn't match number of structures ({n})")]
    for what, exc, message in cases:
        e, f = list(energies), list(forces)
        if what == "energy":
            e[bad] = np.nan
        elif what == "forces":
            f[bad] = np.zeros((2, 3))
        else:
            e = e[:-1]
        path = tmp_path / f"{what}.h5"
        with h5ml.HDF5DatasetWriter(path) as w:
            with pytest.raises(exc) as err:
                w.add_batch(atoms, e, f, show_progress=show)
            assert str(err.value) == message
        with h5py.File(path, "r") as fh:
            want = 0 if what == "count" else bad
            assert fh["labels/energy"].shape == (want,), what
            np.testing.assert_array_equal(fh["labels/energy"][()], energies[:want])


# ---- 2. convert_pickle_to_hdf5 ----------------------------------------------------------------

def _with_calc(data):
    out = []
    for a, e, f, s in zip(data.atoms, data.energies, data.forces, data.stresses):
        b = a.copy()
        labels = dict(energy=e, forces=f)
        if s is not None:
            labels["stress"] = s if np.shape(s) == (6,) else [np.asarray(s)[i, j] for i, j in VOIGT]
        b.calc = SinglePointCalculator(b, **labels)
        out.append(b)
    return out


def test_convert_pickle_labels_from_calculators(tmp_path, atoms_data):
    src = tmp_path / "s.pkl"
    src.write_bytes(pickle.dumps(_with_calc(atoms_data)))
    out = h5ml.convert_pickle_to_hdf5(src, tmp_path / "s.h5", show_progress=False)
    assert Path(out) == tmp_path / "s.h5"
    got = read_h5(out)
    want = atoms_data.expected()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-12, err_msg=key)
    assert got["attrs"]["source_file"] == str(src)


def test_convert_pickle_dict_and_explicit_labels(tmp_path, atoms_data):
    bare = [a.copy() for a in atoms_data.atoms[:5]]
    src = tmp_path / "d.pkl"
    src.write_bytes(pickle.dumps({"structures": bare}))
    with pytest.raises(ValueError, match="Structure 0 has no energies"):
        h5ml.convert_pickle_to_hdf5(src, tmp_path / "no.h5", show_progress=False)
    out = h5ml.convert_pickle_to_hdf5(src, tmp_path / "d.h5", energies=atoms_data.energies[:5],
                                      forces=atoms_data.forces[:5], compression="lzf", show_progress=False)
    got = read_h5(out)
    np.testing.assert_array_equal(got["labels/energy"], atoms_data.energies[:5])
    assert not got["labels/stress_mask"].any()
    with h5py.File(out, "r") as f:
        assert f["labels/forces"].compression == "lzf"


# ---- 3. readers -------------------------------------------------------------------------------

def test_reader_get_atoms_iteration(atoms_file, atoms_data):
    want = atoms_data.expected()
    splits = want["structures/atomic_numbers_splits"]
    with h5ml.HDF5DatasetReader(atoms_file) as r:
        assert len(r) == len(atoms_data) and r.num_atoms == splits[-1]
        assert int(r.metadata["num_structures"]) == len(atoms_data)
        for i, d in enumerate(r):
            a, b = splits[i], splits[i + 1]
            np.testing.assert_array_equal(d["numbers"], want["structures/atomic_numbers"][a:b])
            np.testing.assert_array_equal(d["positions"], want["structures/positions"][a:b])
            assert d["forces"].dtype == np.float32
            np.testing.assert_array_equal(d["forces"], want["labels/forces"][a:b])
            assert d["energy"] == atoms_data.energies[i]
            assert d["metadata"] == atoms_data.meta[i]
            if want["labels/stress_mask"][i]:
                np.testing.assert_array_equal(d["stress"], want["labels/stress"][i])
            else:
                assert d["stress"] is None
        last = r[-1]
        assert last["index"] == len(atoms_data) - 1
        with pytest.raises(IndexError) as err:
            r.get(len(atoms_data))
        assert str(err.value) == f"Index {len(atoms_data)} out of range [0, {len(atoms_data)})"
        for i in (0, 1):
            atoms = r.get_atoms(i)
            src = atoms_data.atoms[i]
            np.testing.assert_array_equal(atoms.numbers, src.numbers)
            np.testing.assert_array_equal(atoms.positions, src.positions)
            np.testing.assert_array_equal(atoms.cell[:], src.cell[:])
            assert list(atoms.pbc) == list(src.pbc)
            assert atoms.get_potential_energy() == atoms_data.energies[i]
            np.testing.assert_array_equal(atoms.get_forces(), atoms_data.forces[i].astype(np.float32))
            if want["labels/stress_mask"][i]:
                np.testing.assert_array_equal(atoms.get_stress(), want["labels/stress"][i])
            assert atoms.info["source"] == "test" and atoms.info["k"] == i
    r2 = pickle.loads(pickle.dumps(h5ml.HDF5DatasetReader(atoms_file)))
    assert len(r2) == len(atoms_data)


def test_read_batch_shuffled(atoms_file, atoms_data):
    rng = rng_for("read_batch")
    want = atoms_data.expected()
    splits = want["structures/atomic_numbers_splits"]
    n = len(atoms_data)
    with h5ml.HDF5DatasetReader(atoms_file) as r:
        for idx in (rng.permutation(n)[:9], np.array([3, 3, 0, n - 1, -1]), np.arange(4, 11), np.array([], int)):
            b = r.read_batch(idx)
            idx = np.where(idx < 0, idx + n, idx)
            np.testing.assert_array_equal(b["indices"], idx)
            np.testing.assert_array_equal(b["natoms"], np.diff(splits)[idx])
            np.testing.assert_array_equal(b["energies"], want["labels/energy"][idx])
            np.testing.assert_array_equal(b["stress"], want["labels/stress"][idx])
            np.testing.assert_array_equal(b["stress_mask"], want["labels/stress_mask"][idx])
            np.testing.assert_array_equal(b["cells"], want["structures/cells"][idx])
            rows = np.concatenate([np.arange(splits[i], splits[i + 1]) for i in idx]).astype(int) \
                if len(idx) else np.zeros(0, int)
            np.testing.assert_array_equal(b["positions"], want["structures/positions"][rows])
            np.testing.assert_array_equal(b["forces"], want["labels/forces"][rows])
            np.testing.assert_array_equal(b["numbers"], want["structures/atomic_numbers"][rows])
            np.testing.assert_array_equal(b["batch"], np.repeat(np.arange(len(idx)), np.diff(splits)[idx]))
        with pytest.raises(IndexError, match=re.escape(f"Index {n + 2} out of range [0, {n})")):
            r.read_batch([0, n + 2])


def _check_atoms_batch(batch, atoms_data):
    want = atoms_data.expected()
    splits = want["structures/atomic_numbers_splits"]
    idx = batch["index"].numpy()
    ptr = batch["ptr"].numpy()
    assert batch["positions"].dtype.is_floating_point and batch["atomic_numbers"].dtype.__str__() == "torch.int64"
    for j, i in enumerate(idx):
        a, b = splits[i], splits[i + 1]
        np.testing.assert_array_equal(batch["positions"][ptr[j]:ptr[j + 1]].numpy(), want["structures/positions"][a:b])
        np.testing.assert_array_equal(batch["forces"][ptr[j]:ptr[j + 1]].numpy(), want["labels/forces"][a:b])
        assert (batch["batch"][ptr[j]:ptr[j + 1]] == j).all()
        assert batch["energy"][j].item() == atoms_data.energies[i]
        np.testing.assert_array_equal(batch["stress"][j].numpy(), want["labels/stress"][i])
    return idx.tolist()


def test_atoms_dataset_items_pickle_and_collate(atoms_file, atoms_data):
    import torch

    ds = h5ml.AtomsDataset(atoms_file)
    assert isinstance(ds, torch.utils.data.Dataset) and len(ds) == len(atoms_data)
    s = ds[2]
    assert s["atomic_numbers"].dtype == torch.int64 and s["forces"].dtype == torch.float32
    assert s["pbc"].dtype == torch.bool and s["natoms"].item() == len(atoms_data.atoms[2])
    assert ds[-1]["index"].item() == len(atoms_data) - 1
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader is None
    batch = h5ml.collate_atoms([clone[i] for i in (5, 1, 2)])
    assert _check_atoms_batch(batch, atoms_data) == [5, 1, 2]
    direct = ds[[5, 1, 2]]
    for key in batch:
        assert torch.equal(batch[key], direct[key]), key
    f32 = h5ml.AtomsDataset(atoms_file, float_dtype=torch.float32, transform=lambda d: d["positions"])
    assert f32[0].dtype == torch.float32


@pytest.mark.parametrize("context", CONTEXTS)
def test_atoms_dataset_dataloader_workers(atoms_file, atoms_data, context):
    import torch

    ds = h5ml.AtomsDataset(atoms_file)
    ds[0]  # the parent holds an open handle before the workers start
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, num_workers=2,
                                         collate_fn=h5ml.collate_atoms, multiprocessing_context=context)
    seen = []
    for batch in loader:
        seen += _check_atoms_batch(batch, atoms_data)
    assert sorted(seen) == list(range(len(atoms_data)))
    # whole batches read by the dataset itself (one read per contiguous stretch)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(ds), 5, drop_last=False)
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2,
                                         multiprocessing_context=context)
    seen = []
    for batch in loader:
        seen += _check_atoms_batch(batch, atoms_data)
    assert sorted(seen) == list(range(len(atoms_data)))


# ---- 4. signal caches --------------------------------------------------------------------------

N_SIG, LEN = 40, 64


def make_signals(n=N_SIG, length=LEN):
    """Signal i holds i in its first sample, so every sample says where it came from."""
    rng = rng_for(f"signals{n}x{length}")
    signals = rng.normal(0, 1, (n, length)).astype(np.float32)
    signals[:, 0] = np.arange(n)
    labels = np.arange(n) % 4
    meta = [{"fault": FAULTS[int(k)], "i": i} for i, k in enumerate(labels)]
    return signals, labels, meta


@pytest.fixture(scope="module")
def split_file(tmp_path_factory):
    signals, labels, meta = make_signals()
    cm = h5ml.CacheManager(tmp_path_factory.mktemp("cache"))
    return cm.cache_dataset_with_splits(signals, labels, meta, cache_name="sp", random_seed=MODULE_SEED)


@pytest.mark.parametrize("compression,opts,want", [
    ("gzip", 4, ("gzip", 4, "gzip")), ("gzip", 9, ("gzip", 9, "gzip")), ("lzf", 4, ("lzf", None, "lzf")),
    (None, 4, (None, None, "none")), ("none", None, (None, None, "none"))])
def test_cache_dataset_flat(tmp_path, compression, opts, want):
    signals, labels, meta = make_signals()
    cm = h5ml.CacheManager(tmp_path / "c")
    path = cm.cache_dataset(signals.astype(np.float64), labels, meta, cache_name="flat", compression=compression,
                            compression_opts=opts)
    assert path == tmp_path / "c" / "flat.h5"
    with h5py.File(path, "r") as f:
        assert {"signals", "labels", "metadata"} <= set(f.keys())
        assert f["signals"].dtype == np.float32 and f["signals"].shape == (N_SIG, LEN)
        assert (f["signals"].compression, f["signals"].compression_opts) == want[:2]
        assert f["labels"].dtype == np.int64 and f["labels"].compression is None
        np.testing.assert_array_equal(f["signals"][()], signals)
        np.testing.assert_array_equal(f["labels"][()], labels)
        assert [json.loads(m) for m in f["metadata"][()]] == meta
        a = f.attrs
        assert a["cache_name"] == "flat" and a["num_signals"] == N_SIG and a["signal_length"] == LEN
        assert a["compression"] == want[2]
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", a["cached_at"])
    s2, l2, m2 = cm.load_cached_dataset("flat")
    assert s2.dtype == np.float32 and l2.dtype == np.int64
    np.testing.assert_array_equal(s2, signals)
    np.testing.assert_array_equal(l2, labels)
    assert m2 == meta


def test_cache_dataset_with_splits_schema(split_file):
    signals, labels, meta = make_signals()
    train, val, test = _h5ml.split_assign(labels, ratios=(0.7, 0.15, 0.15), stratify=True, seed=MODULE_SEED)
    with h5py.File(split_file, "r") as f:
        assert sorted(f.keys()) == ["test", "train", "val"]
        a = f.attrs
        assert a["cache_name"] == "sp" and a["num_signals"] == N_SIG and a["signal_length"] == LEN
        np.testing.assert_allclose(a["split_ratios"], [0.7, 0.15, 0.15])
        assert bool(a["stratified"]) is True and int(a["random_seed"]) == MODULE_SEED
        for name, order in zip(("train", "val", "test"), (train, val, test)):
            g = f[name]
            assert int(g.attrs["num_samples"]) == len(order)
            np.testing.assert_array_equal(g["indices"][()], order)
            np.testing.assert_array_equal(g["signals"][()], signals[order])
            assert g["signals"].dtype == np.float32 and g["labels"].dtype == np.int64
            np.testing.assert_array_equal(g["labels"][()], labels[order])
            assert [json.loads(m) for m in g["metadata"][()]] == [meta[i] for i in order]
            assert set(g["labels"][()].tolist()) == {0, 1, 2, 3}  # stratified: every class everywhere


def test_split_is_reproducible_and_matches_the_cli(tmp_path, split_file):
    signals, labels, meta = make_signals()
    cm = h5ml.CacheManager(tmp_path)
    again = cm.cache_dataset_with_splits(signals, labels, meta, cache_name="again", random_seed=MODULE_SEED)
    flat = cm.cache_dataset(signals, labels, meta, cache_name="flat")
    cli_out = tmp_path / "cli.h5"
    h5ml_bin = os.environ.get("H5ML_BIN", str(REPO / "build" / "h5ml"))
    subprocess.run([h5ml_bin, "signals", "split", str(flat), "-o", str(cli_out), "--seed", str(MODULE_SEED)],
                   check=True, capture_output=True)
    with h5py.File(split_file, "r") as a, h5py.File(again, "r") as b, h5py.File(cli_out, "r") as c:
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(a[name]["indices"][()], b[name]["indices"][()])
            np.testing.assert_array_equal(a[name]["indices"][()], c[name]["indices"][()])
            np.testing.assert_array_equal(a[name]["signals"][()], c[name]["signals"][()])
    other = cm.cache_dataset_with_splits(signals, labels, cache_name="other", random_seed=MODULE_SEED + 1,
                                         stratify=False)
    with h5py.File(other, "r") as f:
        assert bool(f.attrs["stratified"]) is False
        got = np.sort(np.concatenate([f[s]["indices"][()] for s in ("train", "val", "test")]))
        np.testing.assert_array_equal(got, np.arange(N_SIG))


def test_load_cached_dataset_split_restores_order(split_file):
    signals, labels, meta = make_signals()
    cm = h5ml.CacheManager(split_file.parent)
    s, l, m = cm.load_cached_dataset("sp")
    np.testing.assert_array_equal(s, signals)
    np.testing.assert_array_equal(l, labels)
    assert m == meta


def test_load_files_of_the_original_tools(tmp_path):
    signals, labels, meta = make_signals(12, 16)
    cm = h5ml.CacheManager(tmp_path)
    with h5py.File(tmp_path / "orig.h5", "w") as f:  # the original cache_dataset, float64 signals
        f.create_dataset("signals", data=signals.astype(np.float64), compression="gzip", compression_opts=4)
        f.create_dataset("labels", data=labels.astype(np.int32))
        f.create_dataset("metadata", data=[json.dumps(x) for x in meta], dtype=h5py.string_dtype("utf-8"))
        f.attrs.update(cache_name="orig", num_signals=12, signal_length=16, compression="gzip",
                       cached_at="2025-11-19T10:00:00")
    with h5py.File(tmp_path / "bare.h5", "w") as f:  # no attributes, no metadata
        f.create_dataset("signals", data=signals)
        f.create_dataset("labels", data=labels)
    order = {"train": [0, 5, 2, 9, 11, 7, 3, 8], "val": [1, 10], "test": [4, 6]}
    with h5py.File(tmp_path / "osplit.h5", "w") as f:  # the original split file: no indices
        for name, rows in order.items():
            g = f.create_group(name)
            g.create_dataset("signals", data=signals[rows], compression="gzip", compression_opts=4)
            g.create_dataset("labels", data=labels[rows])
            g.attrs["num_samples"] = len(rows)
        f.create_dataset("metadata", data=[json.dumps(x) for x in meta], dtype=h5py.string_dtype("utf-8"))
        f.attrs.update(split_ratios=(0.7, 0.15, 0.15), stratified=True, random_seed=42)
    s, l, m = cm.load_cached_dataset("orig")
    np.testing.assert_array_equal(s, signals)
    np.testing.assert_array_equal(l, labels)
    assert m == meta
    s, l, m = cm.load_cached_dataset("bare")
    np.testing.assert_array_equal(s, signals)
    np.testing.assert_array_equal(l, labels)
    assert m is None
    s, l, m = h5ml.load_cached_dataset_simple(tmp_path / "osplit.h5")
    rows = order["train"] + order["val"] + order["test"]
    np.testing.assert_array_equal(s, signals[rows])
    np.testing.assert_array_equal(l, labels[rows])
    assert m is None  # the original's root metadata is in the pre-split order: it matches nothing
    info = cm.get_cache_info("bare")
    assert info["num_signals"] == 12 and info["signal_length"] == 16 and info["cached_at"] == "unknown"
    assert info["compression"] == "none" and info["datasets"] == ["labels", "signals"]


def test_cache_manager_housekeeping(tmp_path, caplog):
    signals, labels, meta = make_signals(8, 16)
    cm = h5ml.CacheManager(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()
    assert not cm.cache_exists("a")
    with pytest.raises(FileNotFoundError) as err:
        cm.load_cached_dataset("a")
    assert str(err.value) == f"Cache not found: {tmp_path / 'new' / 'dir' / 'a.h5'}"
    with pytest.raises(FileNotFoundError, match="Cache not found: "):
        cm.get_cache_info("a")
    cm.cache_dataset(signals, labels, cache_name="a", compression="lzf")
    cm.cache_dataset_with_splits(signals, labels, cache_name="b", split_ratios=(0.5, 0.25, 0.25))
    assert cm.cache_exists("a") and cm.cache_exists("b")
    listed = cm.list_caches()
    assert [c["name"] for c in listed] == ["a", "b"]
    assert [c["num_signals"] for c in listed] == [8, 8] and listed[0]["signal_length"] == 16
    assert all(c["size_mb"] > 0 for c in listed)
    info = cm.get_cache_info("b")
    assert info["layout"] == "split" and sum(info["splits"].values()) == 8
    assert info["datasets"] == ["test", "train", "val"] and info["compression"] == "gzip"
    assert cm.get_cache_info("a")["compression"] == "lzf"
    cm.invalidate_cache("a")
    assert not cm.cache_exists("a")
    with caplog.at_level(logging.WARNING, logger="h5ml"):
        cm.invalidate_cache("a")
    assert any("Cache not found: a" in r.getMessage() for r in caplog.records)
    config = {"b": [1, 2], "a": {"x": 1.5}, "name": "cfg"}
    want = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    assert cm.compute_cache_key(config) == want == h5ml.compute_cache_key(dict(reversed(list(config.items()))))
    assert cm.compute_cache_key({"a": np.int64(3)}) == cm.compute_cache_key({"a": 3})


def test_simple_functions_and_errors(tmp_path):
    signals, labels, meta = make_signals(6, 8)
    path = tmp_path / "deep" / "quick.h5"
    h5ml.cache_dataset_simple(signals, labels, path, metadata=meta)
    s, l, m = h5ml.load_cached_dataset_simple(path)
    np.testing.assert_array_equal(s, signals)
    np.testing.assert_array_equal(l, labels)
    assert m == meta
    with h5py.File(path, "r") as f:
        assert f["signals"].compression == "gzip" and f.attrs["cache_name"] == "quick"
    h5ml.cache_dataset_simple(signals.tolist(), labels.tolist(), tmp_path / "lists.h5")  # plain lists
    s, l, m = h5ml.load_cached_dataset_simple(tmp_path / "lists.h5")
    np.testing.assert_array_equal(s, signals)
    np.testing.assert_array_equal(l, labels)
    assert m is None
    with pytest.raises(FileNotFoundError, match=re.escape(f"Cache not found: {tmp_path / 'nope.h5'}")):
        h5ml.load_cached_dataset_simple(tmp_path / "nope.h5")
    cm = h5ml.CacheManager(tmp_path)
    with pytest.raises(ValueError, match="labels must be integers"):
        cm.cache_dataset(signals, ["a"] * 6, cache_name="strlab")
    bad = signals.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cm.cache_dataset(bad, labels, cache_name="nan")
    assert not cm.cache_exists("nan") and list(tmp_path.glob("nan*")) == []


def test_cache_from_h5py_dataset_in_pieces(tmp_path, monkeypatch):
    """Array-likes (an h5py dataset) are cached piece by piece, shuffled rows included."""
    import h5ml.signals as sig

    signals, labels, _ = make_signals()
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["x"] = signals
    monkeypatch.setattr(sig, "_PIECE_BYTES", 7 * LEN * 4)  # 7 signals per call
    cm = h5ml.CacheManager(tmp_path)
    with h5py.File(tmp_path / "src.h5", "r") as f:
        cm.cache_dataset_with_splits(f["x"], labels, cache_name="pieces", random_seed=3)
        cm.cache_dataset(f["x"], labels, cache_name="flatpieces")
    for name in ("pieces", "flatpieces"):
        s, l, _ = cm.load_cached_dataset(name)
        np.testing.assert_array_equal(s, signals)
        np.testing.assert_array_equal(l, labels)


# ---- 5. streaming datasets -------------------------------------------------------------------

def _split_rows(path, split):
    with h5py.File(path, "r") as f:
        return f[split]["indices"][()], f[split]["signals"][()], f[split]["labels"][()]


def double(x):
    """A module-level transform (picklable under spawn)."""
    return x * 2


def test_streaming_dataset_items_and_errors(split_file, tmp_path):
    import torch

    idx, sig, lab = _split_rows(split_file, "train")
    ds = h5ml.StreamingHDF5Dataset(split_file, split="train", cache_size=4)
    assert len(ds) == len(idx) and ds.num_samples == len(idx) and ds.signal_length == LEN
    x, y = ds[3]
    assert x.shape == (1, LEN) and x.dtype == torch.float32 and isinstance(y, int)
    np.testing.assert_array_equal(x[0].numpy(), sig[3])
    assert y == lab[3]
    np.testing.assert_array_equal(ds.labels, lab)
    np.testing.assert_array_equal(ds.get_labels(), lab)
    assert ds.get_class_distribution() == {int(k): int(c) for k, c in zip(*np.unique(lab, return_counts=True))}
    np.testing.assert_array_equal(ds.get_original_indices(), idx)
    assert ds.get_sample_metadata(3)["i"] == idx[3]
    for i in (3, 3, 3):
        ds[i]
    assert ds.cache_stats()["hits"] >= 2
    with pytest.raises(IndexError) as err:
        ds[len(idx)]
    assert str(err.value) == f"Index {len(idx)} out of range [0, {len(idx)})"
    with pytest.raises(IndexError, match=re.escape(f"Index -1 out of range [0, {len(idx)})")):
        ds[-1]
    with pytest.raises(ValueError) as err:
        h5ml.StreamingHDF5Dataset(split_file, split="X")
    assert str(err.value) == "Split 'X' not found. Available: ['test', 'train', 'val']"
    with pytest.raises(FileNotFoundError):
        h5ml.StreamingHDF5Dataset(tmp_path / "missing.h5")
    t = h5ml.StreamingHDF5Dataset(split_file, split="val", transform=double)
    _, vsig, _ = _split_rows(split_file, "val")
    x, _ = t[0]
    assert isinstance(x, torch.Tensor) and x.shape == (LEN,)
    np.testing.assert_array_equal(x.numpy(), vsig[0] * 2)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader is None and torch.equal(clone[5][0], ds[5][0])
    chunked = h5ml.ChunkedStreamingDataset(split_file, split="test", chunk_size=4)
    _, tsig, tlab = _split_rows(split_file, "test")
    for i in range(len(chunked)):
        x, y = chunked[i]
        np.testing.assert_array_equal(x[0].numpy(), tsig[i])
        assert y == tlab[i]
    xb, yb = chunked.get_batch([2, 0, 2])
    assert xb.shape == (3, 1, LEN)
    np.testing.assert_array_equal(yb.numpy(), tlab[[2, 0, 2]])


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("chunked", [False, True])
def test_streaming_dataloader_workers(split_file, context, chunked):
    import torch

    idx, sig, lab = _split_rows(split_file, "train")
    if chunked:
        ds = h5ml.ChunkedStreamingDataset(split_file, split="train", chunk_size=5)
    else:
        ds = h5ml.StreamingHDF5Dataset(split_file, split="train", cache_size=8)
    ds[0]  # the parent holds an open reader before the workers start
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2,
                                         multiprocessing_context=context)
    seen = []
    for x, y in loader:
        assert x.shape[1:] == (1, LEN) and x.dtype == torch.float32 and y.dtype == torch.int64
        for row, label in zip(x[:, 0].numpy(), y.numpy()):
            k = int(np.nonzero(idx == int(row[0]))[0][0])  # signal i holds i in sample 0
            np.testing.assert_array_equal(row, sig[k])
            assert label == lab[k]
            seen.append(k)
    assert sorted(seen) == list(range(len(idx)))


def test_create_streaming_dataloaders(split_file, tmp_path):
    import torch

    loaders = h5ml.create_streaming_dataloaders(split_file, batch_size=4, num_workers=0)
    assert sorted(loaders) == ["test", "train", "val"]
    assert isinstance(loaders["train"].sampler, torch.utils.data.RandomSampler)
    assert isinstance(loaders["val"].sampler, torch.utils.data.SequentialSampler)
    x, y = next(iter(loaders["train"]))
    assert x.shape == (4, 1, LEN) and y.shape == (4,)
    chunked = h5ml.create_streaming_dataloaders(split_file, batch_size=2, num_workers=0, use_chunked=True,
                                                chunk_size=3)
    assert type(chunked["val"].dataset).__name__ == "ChunkedStreamingDataset"
    signals, labels, _ = make_signals(8, 16)
    flat = h5ml.CacheManager(tmp_path).cache_dataset(signals, labels, cache_name="flat")
    assert h5ml.create_streaming_dataloaders(flat, num_workers=0) == {}
    assert len(h5ml.StreamingHDF5Dataset(flat, split=None)) == 8


# ---- 6. generator and MATLAB import -----------------------------------------------------------

GEN_CONFIG = {"num_signals_per_fault": 3, "rng_seed": 7, "signal": {"fs": 20480, "N": 1024}}


def test_generator_saves_the_generator_schema(tmp_path):
    gen = h5ml.SignalGenerator(GEN_CONFIG)
    dataset = gen.generate_dataset()
    assert not dataset.generated and dataset["statistics"]["total_signals"] == 33
    paths = gen.save_dataset(dataset, output_dir=tmp_path, format="hdf5")
    assert paths == {"hdf5": tmp_path / "dataset.h5"}
    with h5py.File(paths["hdf5"], "r") as f:
        a = f.attrs
        assert int(a["num_classes"]) == 11 and int(a["sampling_rate"]) == 20480
        assert int(a["signal_length"]) == 1024 and int(a["rng_seed"]) == 7
        assert re.match(r"\d{4}-\d\d-\d\dT", a["generation_date"])
        np.testing.assert_allclose(a["split_ratios"], [0.7, 0.15, 0.15])
        parts = {s: (f[s]["indices"][()], f[s]["signals"][()], f[s]["labels"][()]) for s in ("train", "val", "test")}
        for s in parts:
            assert int(f[s].attrs["num_samples"]) == len(parts[s][0])
    assert not dataset.generated
    signals = dataset["signals"]  # generated now, in the original's order
    assert dataset.generated and signals.shape == (33, 1024) and signals.dtype == np.float32
    assert dataset["labels"] == [FAULTS[i // 3] for i in range(33)]
    assert dataset["metadata"][4]["fault"] == FAULTS[1] and dataset["metadata"][4].fault == FAULTS[1]
    for s, (idx, sig, lab) in parts.items():
        np.testing.assert_array_equal(signals[idx], sig)
        np.testing.assert_array_equal(lab, idx // 3)


def test_generator_plain_dict_and_mat(tmp_path):
    rng = rng_for("gen_dict")
    signals = [rng.normal(0, 1, 32) for _ in range(22)]
    names = [FAULTS[i % 11] for i in range(22)]
    gen = h5ml.SignalGenerator({"num_signals_per_fault": 2, "rng_seed": 5, "signal": {"fs": 1000, "N": 32}})
    paths = gen.save_dataset({"signals": signals, "labels": names, "metadata": [{"i": i} for i in range(22)]},
                             output_dir=tmp_path, format="both")
    assert paths == {"mat_dir": tmp_path / "mat_files", "hdf5": tmp_path / "dataset.h5"}
    s, l, m = h5ml.load_cached_dataset_simple(paths["hdf5"])
    np.testing.assert_array_equal(s, np.asarray(signals, dtype=np.float32))
    np.testing.assert_array_equal(l, [i % 11 for i in range(22)])
    assert m == [{"i": i} for i in range(22)]
    with h5py.File(paths["hdf5"], "r") as f:
        assert int(f.attrs["rng_seed"]) == 5 and int(f.attrs["num_classes"]) == 11
    from scipy.io import loadmat
    mats = sorted((tmp_path / "mat_files").glob("*.mat"))
    assert len(mats) == 22
    first = loadmat(tmp_path / "mat_files" / "sain_001.mat", squeeze_me=True)
    np.testing.assert_array_equal(first["x"], signals[0])
    assert first["fault"] == "sain"


def test_matlab_import(tmp_path):
    from scipy.io import loadmat, savemat

    signals, labels, names = h5ml.load_mat_dataset(REPO / "data" / "mat")
    assert signals.shape == (16, 4096) and signals.dtype == np.float32
    assert names[:4] == FAULTS[:4]
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3]
    batch = h5ml.MatlabImporter().load_batch(REPO / "data" / "mat")
    sig2, lab2 = h5ml.MatlabImporter().extract_signals_and_labels(batch)
    np.testing.assert_array_equal(sig2, signals)
    assert lab2 == [names[k] for k in labels]
    for item in batch:
        src = loadmat(REPO / "data" / "mat" / item.metadata["file"], squeeze_me=True)
        np.testing.assert_array_equal(item.signal, src["vibration"].astype(np.float32))
        assert item.label == Path(item.metadata["file"]).parent.name
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        savemat(flat / f"jeu_{k:03d}.mat", {"x": np.arange(200.0) + k, "fault": "jeu", "fs": 20480.0})
    items = h5ml.MatlabImporter().load_batch(flat)
    assert [i.label for i in items] == ["jeu"] * 3
    np.testing.assert_array_equal(items[2].signal, np.arange(200.0) + 2)
    with pytest.raises(FileNotFoundError):
        h5ml.MatlabImporter().load_batch(tmp_path / "missing")


# ---- 7. packaging ------------------------------------------------------------------------------

def test_version_and_names():
    assert re.fullmatch(r"\d+\.\d+\.\d+", h5ml.__version__) and h5ml.__version__ == _h5ml.version()
    for name in h5ml.__all__:
        assert getattr(h5ml, name) is not None, name


def test_compat_import_paths():
    code = """
import h5ml, h5ml.atoms, h5ml.signals, h5ml.streaming, h5ml.generator, h5ml.matlab
from mlff_distiller.data.hdf5_writer import HDF5DatasetWriter, convert_pickle_to_hdf5
from data.cache_manager import CacheManager, cache_dataset_simple, load_cached_dataset_simple
from data.streaming_hdf5_dataset import StreamingHDF5Dataset, ChunkedStreamingDataset, create_streaming_dataloaders
from data.signal_generator import SignalGenerator
from data.matlab_importer import MatlabImporter, load_mat_dataset
assert HDF5DatasetWriter is h5ml.HDF5DatasetWriter and convert_pickle_to_hdf5 is h5ml.convert_pickle_to_hdf5
assert CacheManager is h5ml.CacheManager and cache_dataset_simple is h5ml.cache_dataset_simple
assert load_cached_dataset_simple is h5ml.load_cached_dataset_simple
assert StreamingHDF5Dataset is h5ml.StreamingHDF5Dataset and ChunkedStreamingDataset is h5ml.ChunkedStreamingDataset
assert create_streaming_dataloaders is h5ml.create_streaming_dataloaders
assert SignalGenerator is h5ml.SignalGenerator and MatlabImporter is h5ml.MatlabImporter
assert load_mat_dataset is h5ml.load_mat_dataset
print("ok")
"""
    h5ml_dir = str(Path(h5ml.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python" / "compat"), h5ml_dir]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(REPO))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
