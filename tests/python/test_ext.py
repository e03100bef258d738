"""The extension module h5ml._h5ml (python/h5ml/_h5ml.c) on its own, against its contract
(python/EXTENSION.md): every function and method, judged by h5py reading the files (bit for
bit where the format is exact), the exception mapping with the library's messages, argument
checking, the GIL released during long calls, callbacks, pickling and fork safety.

Run with /usr/bin/python3 and PYTHONPATH=build/python (build/python is tried when h5ml is not
importable). Skipped with the reason when the extension is not built. Randomized data print
their seed (H5ML_TEST_SEED replays one).
"""
import gc
import json
import os
import pickle
import re
import sys
import threading
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import h5ml_helpers as H  # noqa: E402


def _import_extension():
    try:
        from h5ml import _h5ml
        return _h5ml
    except ModuleNotFoundError as e:
        if e.name not in ("h5ml", "h5ml._h5ml"):
            raise
    build = REPO / "build" / "python"
    if not list((build / "h5ml").glob("_h5ml*.so")):
        pytest.skip(f"the extension h5ml._h5ml is not built (no {build}/h5ml/_h5ml*.so: run `make build`)",
                    allow_module_level=True)
    sys.path.insert(0, str(build))
    sys.modules.pop("h5ml", None)
    from h5ml import _h5ml
    return _h5ml


ext = _import_extension()

SAMPLE = REPO / "data" / "sample.xyz"
MAT_DIR = REPO / "data" / "mat"
SEED = int(os.environ.get("H5ML_TEST_SEED") or np.random.SeedSequence().entropy % 2**32)


@pytest.fixture
def rng(request):
    print(f"\n[{request.node.name}] random seed = {SEED} (replay: H5ML_TEST_SEED={SEED})")
    return np.random.default_rng(SEED)


def voigt(s):
    """3x3 stress to Voigt xx, yy, zz, yz, xz, xy."""
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def make_structures(rng, count=7):
    """Structures with atoms at least 1 A apart (no plausibility warnings)."""
    out = []
    for k in range(count):
        n = int(rng.integers(1, 7))
        grid = np.array([(i, j, l) for i in range(2) for j in range(2) for l in range(2)], float)[:n]
        s = {
            "numbers": rng.integers(1, 90, n).astype(np.int64),
            "positions": grid * 1.7 + rng.uniform(-0.1, 0.1, (n, 3)) + 0.5,
            "energy": float(rng.normal() * 10),
            "forces": rng.normal(size=(n, 3)),
            "cell": np.diag(rng.uniform(8, 9, 3)) if k % 3 else np.zeros((3, 3)),
            "pbc": np.array([k % 3 != 0, k % 3 != 0, k % 2 == 0]),
            "stress": None if k % 2 else rng.normal(size=6),
            "info": None if k % 4 == 1 else f'{{"k":{k},"tag":"s{k}"}}',
        }
        out.append(s)
    return out


def write_structures(path, structs, **options):
    with ext.Writer(str(path), **options) as w:
        for s in structs:
            w.add(s["numbers"], s["positions"], s["energy"], s["forces"], cell=s["cell"], pbc=s["pbc"],
                  stress=s["stress"], info=s["info"])
    return path


def as_batch(structs):
    return dict(
        natoms=np.array([len(s["numbers"]) for s in structs]),
        numbers=np.concatenate([s["numbers"] for s in structs]),
        positions=np.concatenate([s["positions"] for s in structs]),
        energies=np.array([s["energy"] for s in structs]),
        forces=np.concatenate([s["forces"] for s in structs]),
        cells=np.stack([s["cell"] for s in structs]),
        pbc=np.stack([s["pbc"] for s in structs]),
        stress=np.stack([s["stress"] if s["stress"] is not None else np.zeros(6) for s in structs]),
        stress_mask=np.array([s["stress"] is not None for s in structs]),
        info=[s["info"] for s in structs],
    )


def check_atoms_file(path, structs):
    """The file read by h5py holds exactly `structs` (forces as float32)."""
    b = as_batch(structs)
    with h5py.File(path, "r") as f:
        st, lab = f["structures"], f["labels"]
        splits = np.concatenate([[0], np.cumsum(b["natoms"])])
        np.testing.assert_array_equal(st["atomic_numbers"][()], b["numbers"])
        np.testing.assert_array_equal(st["atomic_numbers_splits"][()], splits)
        assert st["positions"].dtype == np.float64
        np.testing.assert_array_equal(st["positions"][()], b["positions"])
        np.testing.assert_array_equal(st["cells"][()], b["cells"])
        assert st["pbc"].dtype == np.bool_
        np.testing.assert_array_equal(st["pbc"][()], b["pbc"])
        np.testing.assert_array_equal(lab["energy"][()], b["energies"])
        assert lab["forces"].dtype == np.float32
        np.testing.assert_array_equal(lab["forces"][()], b["forces"].astype(np.float32))
        np.testing.assert_array_equal(lab["forces_splits"][()], splits)
        np.testing.assert_array_equal(lab["stress"][()], b["stress"])
        np.testing.assert_array_equal(lab["stress_mask"][()], b["stress_mask"])
        np.testing.assert_array_equal(lab["structure_indices"][()], np.arange(len(structs)))
        info = [x.decode() if isinstance(x, bytes) else x for x in lab["info"][()]]
        assert info == [s["info"] or "" for s in structs]
        assert f["metadata"].attrs["num_structures"] == len(structs)


@pytest.fixture
def structs(rng):
    return make_structures(rng)


@pytest.fixture
def atoms_file(tmp_path, structs):
    return write_structures(tmp_path / "atoms.h5", structs)


def make_signals(rng, n=40, length=64):
    t = np.arange(length)
    sig = np.sin(np.outer(rng.uniform(0.05, 0.5, n), t)) + rng.normal(0, 0.1, (n, length))
    return sig, rng.integers(0, 4, n).astype(np.int64)


@pytest.fixture
def flat_file(tmp_path, rng):
    sig, lab = make_signals(rng)
    meta = [f'{{"i":{i}}}' for i in range(len(lab))]
    path = tmp_path / "flat.h5"
    with ext.SigWriter(str(path), length=sig.shape[1], chunk_rows=8) as w:
        w.add(sig[:25], lab[:25], meta=meta[:25])
        w.add(sig[25:].astype(np.float32), lab[25:], meta=meta[25:])
        w.class_names(["a", "b", "c", "d"])
        w.attr("source", "test")
    return path, sig.astype(np.float32), lab, meta


@pytest.fixture
def split_file(tmp_path, flat_file):
    path = tmp_path / "split.h5"
    summary = ext.split(str(flat_file[0]), str(path), ratios=(0.5, 0.25, 0.25), seed=7)
    return path, summary


# ---- module -------------------------------------------------------------------------------


def test_version_is_the_header_version():
    text = (REPO / "include" / "h5ml.h").read_text()
    parts = [re.search(rf"#define H5ML_VERSION_{k} +(\d+)", text).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    assert ext.version() == ".".join(parts)


def test_exports_exactly_the_contract():
    public = {n for n in dir(ext) if not n.startswith("_")}
    assert public == {"Writer", "Reader", "SigWriter", "SigReader", "convert_xyz", "export_xyz", "generate",
                      "import_mat", "split", "verify", "summarize_signals", "diff", "is_signal_file",
                      "split_assign", "version"}


# ---- atomistic writer ------------------------------------------------------------------------


def test_writer_add_is_read_back_by_h5py_bit_for_bit(atoms_file, structs):
    check_atoms_file(atoms_file, structs)


def test_writer_add_takes_lists_and_other_dtypes(tmp_path):
    path = tmp_path / "lists.h5"
    with ext.Writer(str(path)) as w:
        w.add([8, 1], [[0, 0, 0], [0.96, 0, 0]], -14, [[0, 0, 1], [0, 0, -1]], pbc=[1, 0, 0],
              stress=np.eye(3, dtype=np.float32), cell=np.eye(3, dtype=np.int32) * 10)
        w.add(np.array([8], dtype=np.int32), np.zeros((1, 3), np.float32), np.float32(2.5), np.zeros((1, 3)),
              info='{"a": 1}')
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["structures/atomic_numbers"][()], [8, 1, 8])
        np.testing.assert_array_equal(f["structures/pbc"][0], [True, False, False])
        np.testing.assert_array_equal(f["labels/stress"][0], [1, 1, 1, 0, 0, 0])
        np.testing.assert_array_equal(f["labels/stress_mask"][()], [True, False])
        np.testing.assert_array_equal(f["structures/cells"][0], np.eye(3) * 10)
        np.testing.assert_array_equal(f["labels/energy"][()], [-14.0, 2.5])


def test_writer_add_full_stress_is_stored_as_voigt(tmp_path, rng):
    s = rng.normal(size=(3, 3))
    s = s + s.T
    path = tmp_path / "stress.h5"
    with ext.Writer(str(path)) as w:
        w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], stress=s)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["labels/stress"][0], voigt(s))


def test_add_batch_writes_the_same_file_as_add(tmp_path, structs, atoms_file):
    path = tmp_path / "batch.h5"
    with ext.Writer(str(path)) as w:
        w.add_batch(**as_batch(structs))
    check_atoms_file(path, structs)
    assert ext.diff(str(atoms_file), str(path)) is None


def test_add_batch_optional_arrays(tmp_path, structs):
    b = as_batch(structs)
    path = tmp_path / "minimal.h5"
    with ext.Writer(str(path)) as w:
        w.add_batch(b["natoms"], b["numbers"], b["positions"], b["energies"], b["forces"])
        w.add_batch(b["natoms"], b["numbers"], b["positions"], b["energies"], b["forces"], stress=b["stress"])
        assert w.stats()["structures"] == 2 * len(structs)
    with h5py.File(path, "r") as f:
        n = len(structs)
        np.testing.assert_array_equal(f["labels/stress_mask"][()], [False] * n + [True] * n)
        np.testing.assert_array_equal(f["structures/cells"][:n], np.zeros((n, 3, 3)))
        assert "info" not in f["labels"]


def test_writer_append_continues_the_file(tmp_path, structs):
    path = tmp_path / "append.h5"
    write_structures(path, structs[:3])
    with ext.Writer(str(path), mode="a") as w:
        for s in structs[3:]:
            w.add(s["numbers"], s["positions"], s["energy"], s["forces"], cell=s["cell"], pbc=s["pbc"],
                  stress=s["stress"], info=s["info"])
        st = w.stats()
    assert st["structures"] == len(structs) and st["added"] == len(structs) - 3
    assert st["atoms"] == sum(len(s["numbers"]) for s in structs)
    check_atoms_file(path, structs)


def test_writer_options_reach_the_file(tmp_path, structs):
    for comp, level, shuffle in (("lzf", 9, False), (None, 0, True), ("gzip", 7, True)):
        path = tmp_path / f"opt_{comp}.h5"
        write_structures(path, structs, compression=comp, level=level, shuffle=shuffle, chunk_atoms=64,
                         chunk_structures=16, checkpoint_ms=-1, threads=1, validate=False)
        with ext.Reader(str(path)) as r:
            lay = r.layout()
        assert lay == {"compression": comp or "none", "level": level if comp == "gzip" else 0,
                       "shuffle": shuffle and comp is not None, "chunk_atoms": 64, "chunk_structures": 16}
        check_atoms_file(path, structs)


def test_writer_meta_values_and_stats(tmp_path):
    path = tmp_path / "meta.h5"
    w = ext.Writer(str(path))
    w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    w.meta("text", "hello")
    w.meta("flag", True)
    w.meta("count", 12)
    w.meta("npint", np.int64(5))
    w.meta("temperature", 300.5)
    w.meta("ints", [1, 2, 3])
    w.meta("floats", np.array([0.5, 1.5]))
    w.meta_json("config", '{"lr": 0.001, "layers": [64, 64]}')
    w.checkpoint()
    st = w.stats()
    assert st == {"structures": 1, "atoms": 1, "added": 1, "added_atoms": 1, "checkpoints": st["checkpoints"],
                  "warnings": 0, "dropped": 0, "deduplicated": 0}
    assert st["checkpoints"] >= 1
    w.close()
    with h5py.File(path, "r") as f:
        a = f["metadata"].attrs
        assert a["text"] in ("hello", b"hello")
        assert bool(a["flag"]) is True
        assert a["count"] == 12 and a["npint"] == 5 and a["temperature"] == 300.5
        np.testing.assert_array_equal(a["ints"], [1, 2, 3])
        assert a["ints"].dtype.kind == "i"
        np.testing.assert_array_equal(a["floats"], [0.5, 1.5])
    with ext.Reader(str(path)) as r:
        meta = r.metadata()
    assert meta["text"] == "hello" and meta["ints"] == [1, 2, 3]
    assert json.loads(meta["config"]) == {"lr": 0.001, "layers": [64, 64]}
    assert meta["num_structures"] == 1


def test_writer_meta_errors(tmp_path):
    with ext.Writer(str(tmp_path / "m.h5")) as w:
        with pytest.raises(TypeError, match="value must be"):
            w.meta("k", None)
        with pytest.raises(TypeError, match="value must be"):
            w.meta("k", {"a": 1})
        with pytest.raises(ValueError):
            w.meta("num_structures", 3)  # reserved
        with pytest.raises(ValueError):
            w.meta("a/b", 3)
        with pytest.raises(ValueError):
            w.meta_json("k", "{not json")


def test_rollback_discards_a_created_file(tmp_path, structs):
    path = tmp_path / "rb.h5"
    w = ext.Writer(str(path))
    w.add(structs[0]["numbers"], structs[0]["positions"], 1.0, structs[0]["forces"])
    w.rollback()
    w.close()
    assert not path.exists()


# ---- validation and errors ---------------------------------------------------------------------


def test_library_validation_messages(tmp_path):
    with ext.Writer(str(tmp_path / "v.h5")) as w:
        with pytest.raises(ValueError, match=r"^Invalid energy: nan$"):
            w.add([1], [[0, 0, 0]], float("nan"), [[0, 0, 0]])
        with pytest.raises(ValueError, match=r"^Invalid energy: inf$"):
            w.add([1], [[0, 0, 0]], float("inf"), [[0, 0, 0]])
        with pytest.raises(ValueError, match=re.escape("Forces shape (10, 3) doesn't match atoms (5, 3)")):
            w.add([1] * 5, np.arange(15.0).reshape(5, 3) * 2, 0.0, np.zeros((10, 3)))
        with pytest.raises(ValueError, match=re.escape("Forces shape (0, 3) doesn't match atoms (2, 3)")):
            w.add([1, 1], [[0, 0, 0], [2, 0, 0]], 0.0, np.zeros((0, 3)))
        with pytest.raises(ValueError, match="Forces contain NaN"):
            w.add([1], [[0, 0, 0]], 0.0, [[0, np.nan, 0]])
        with pytest.raises(ValueError, match="Stress contains Inf"):
            w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], stress=[0, 0, np.inf, 0, 0, 0])
        with pytest.raises(ValueError, match="atomic number"):
            w.add([200], [[0, 0, 0]], 0.0, [[0, 0, 0]])
        with pytest.raises(ValueError):
            w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], info="[1, 2]")  # not a JSON object
        assert w.stats()["structures"] == 0


def test_batch_error_names_the_structure_and_keeps_those_before(tmp_path, structs):
    b = as_batch(structs)
    b["energies"] = b["energies"].copy()
    b["energies"][2] = np.nan
    with ext.Writer(str(tmp_path / "b.h5")) as w:
        with pytest.raises(ValueError) as e:
            w.add_batch(**b)
        assert "structure 2 of the batch" in str(e.value) and "Invalid energy: nan" in str(e.value)
        assert w.stats()["structures"] == 2


@pytest.mark.parametrize("call, exc, message", [
    (lambda w: w.add([1], [0, 0, 0], 0.0, [[0, 0, 0]]), ValueError, r"positions must have shape \(n, 3\), got \(3,\)"),
    (lambda w: w.add([1, 2], [[0, 0, 0]], 0.0, [[0, 0, 0]]), ValueError,
     r"positions must have shape \(n, 3\), got \(1, 3\) \(n = 2 from numbers\)"),
    (lambda w: w.add(None, [[0, 0, 0]], 0.0, [[0, 0, 0]]), TypeError, r"numbers must be an array of shape \(n,\), got None"),
    (lambda w: w.add([1], None, 0.0, [[0, 0, 0]]), TypeError, "positions must be an array"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, None), TypeError, "forces must be an array"),
    (lambda w: w.add([1], [[0, 0, 0]], None, [[0, 0, 0]]), TypeError, "must be real number"),
    (lambda w: w.add([[1]], [[0, 0, 0]], 0.0, [[0, 0, 0]]), ValueError, r"numbers must have shape \(n,\), got \(1, 1\)"),
    (lambda w: w.add([1.5], [[0, 0, 0]], 0.0, [[0, 0, 0]]), ValueError, "numbers must hold integers"),
    (lambda w: w.add(["H"], [[0, 0, 0]], 0.0, [[0, 0, 0]]), TypeError, "numbers must be a numeric array"),
    (lambda w: w.add([1], [[0j, 0, 0]], 0.0, [[0, 0, 0]]), TypeError, "positions must be a numeric array, got dtype complex128"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0]]), ValueError, r"forces must have shape \(n, 3\), got \(1, 2\)"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], cell=np.eye(2)), ValueError, r"cell must have shape \(3, 3\)"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], pbc=[1, 1]), ValueError, r"pbc must have shape \(3,\), got \(2,\)"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], stress=np.zeros(4)), ValueError,
     r"stress must have shape \(6,\) or \(3, 3\), got \(4,\)"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], info=3), TypeError, "info must be a str"),
    (lambda w: w.add([1], [[0, 0, 0]], 0.0, [[0, 0, 0]], info="{}\0"), ValueError, "info contains a NUL"),
    (lambda w: w.add_batch([1, 1], [1], [[0, 0, 0]], [0, 0], [[0, 0, 0]]), ValueError,
     "natoms adds up to more than the 1 atoms of numbers"),
    (lambda w: w.add_batch([1, -1], [1], [[0, 0, 0]], [0, 0], [[0, 0, 0]]), ValueError, r"natoms\[1\] is negative"),
    (lambda w: w.add_batch([1], [1, 2], [[0, 0, 0]] * 2, [0], [[0, 0, 0]] * 2), ValueError,
     "natoms adds up to 1 atoms but numbers has 2"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0, 1], [[0, 0, 0]]), ValueError,
     r"energies must have shape \(N,\), got \(2,\) \(N = 1 from natoms\)"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0], [[0, 0, 0]], cells=np.zeros((1, 9))), ValueError,
     r"cells must have shape \(N, 3, 3\), got \(1, 9\)"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0], [[0, 0, 0]], stress_mask=[True]), ValueError,
     "stress_mask given without stress"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0], [[0, 0, 0]], info=["{}", "{}"]), ValueError,
     r"info must have 1 entries \(one per structure\), got 2"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0], [[0, 0, 0]], info=[3]), TypeError, r"info\[0\] must be a str or None"),
    (lambda w: w.add_batch([1], [1], [[0, 0, 0]], [0], [[0, 0, 0]], info="{}"), TypeError, "info must be a list of str"),
])
def test_bad_arguments_raise_before_the_library(tmp_path, call, exc, message):
    with ext.Writer(str(tmp_path / "bad.h5")) as w:
        with pytest.raises(exc, match=message):
            call(w)
        assert w.stats()["structures"] == 0


def test_bad_constructor_arguments(tmp_path):
    p = str(tmp_path / "c.h5")
    with pytest.raises(ValueError, match="mode must be 'w' or 'a', got 'x'"):
        ext.Writer(p, mode="x")
    with pytest.raises(ValueError, match=r"compression must be 'gzip', 'lzf', 'none', None or a profile \('fast', 'balanced', "
                                         r"'small'\), got 'zstd'"):
        ext.Writer(p, compression="zstd")
    with pytest.raises(ValueError):
        ext.Writer(p, level=12)  # the library's bounds
    with pytest.raises(TypeError, match="log must be callable or None"):
        ext.Writer(p, log=3)
    with pytest.raises(TypeError):
        ext.Writer(None)
    with pytest.raises(ValueError, match="layout must be 'flat' or 'split'"):
        ext.SigWriter(p, length=4, layout="tree")
    with pytest.raises(ValueError):
        ext.SigWriter(p, length=0)  # the library: length < 1
    with pytest.raises(ValueError, match="seed must be an integer in"):
        ext.generate(p, seed=-1)
    with pytest.raises(ValueError, match=r"ratios must have shape \(3,\), got \(2,\)"):
        ext.split_assign([0, 1], ratios=(0.5, 0.5))
    with pytest.raises(TypeError, match="progress must be callable or None"):
        ext.generate(p, progress="yes")
    assert not Path(p).exists()


def test_closed_and_finalized_handles(tmp_path, flat_file):
    path = tmp_path / "c.h5"
    w = ext.Writer(str(path))
    assert (w.closed, w.finalized, w.path) == (False, False, str(path))
    w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    w.finalize()
    assert w.finalized
    w.finalize()  # a second call only warns
    assert w.stats()["warnings"] == 1
    with pytest.raises(RuntimeError, match=r"^Cannot add structures after finalize\(\) has been called$"):
        w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    w.close()
    w.close()  # idempotent
    assert w.closed
    with pytest.raises(RuntimeError, match=r"^Cannot add structures after finalize\(\) has been called$"):
        w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    with pytest.raises(RuntimeError, match="Writer is closed"):
        w.stats()
    r = ext.Reader(str(path))
    r.close()
    r.close()
    assert r.closed
    with pytest.raises(RuntimeError, match="Reader is closed"):
        r.get(0)
    with pytest.raises(RuntimeError, match="Reader is closed"):
        r.count
    sr = ext.SigReader(str(flat_file[0]))
    sr.close()
    with pytest.raises(RuntimeError, match="SigReader is closed"):
        sr.read_range(0, 1)
    sw = ext.SigWriter(str(tmp_path / "s.h5"), length=4)
    sw.close()
    with pytest.raises(RuntimeError, match="SigWriter is closed"):
        sw.add(np.zeros((1, 4)), [0])


def test_context_manager_finalizes_an_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    with ext.Writer(str(path)) as w:
        pass
    assert w.closed and w.finalized
    with h5py.File(path, "r") as f:
        assert f["metadata"].attrs["num_structures"] == 0
    with ext.Reader(str(path)) as r:
        assert (r.count, r.total_atoms) == (0, 0)
        assert {k: v.shape for k, v in r.read(0, 0).items()}["positions"] == (0, 3)


def test_missing_files_and_other_io_errors(tmp_path):
    missing = str(tmp_path / "missing.h5")
    for call in (lambda: ext.Reader(missing), lambda: ext.SigReader(missing), lambda: ext.verify(missing),
                 lambda: ext.summarize_signals(missing), lambda: ext.diff(missing, missing),
                 lambda: ext.Writer(str(tmp_path / "no" / "dir.h5"))):
        with pytest.raises(FileNotFoundError, match="No such file or directory$"):
            call()
    with pytest.raises(OSError) as e:
        ext.Reader(str(tmp_path))
    assert not isinstance(e.value, FileNotFoundError) and "is a directory" in str(e.value)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5" * 100)
    with pytest.raises(ValueError, match="not an HDF5 file"):
        ext.Reader(str(junk))
    with pytest.raises(ValueError, match="not an HDF5 file"):
        ext.verify(str(junk))
    assert ext.is_signal_file(missing) is False


# ---- atomistic reader --------------------------------------------------------------------------


def test_reader_get_matches_the_data(atoms_file, structs):
    with ext.Reader(Path(atoms_file)) as r:  # os.PathLike accepted
        assert r.count == len(structs) and r.path == str(atoms_file)
        assert r.total_atoms == sum(len(s["numbers"]) for s in structs)
        for i, s in enumerate(structs):
            d = r.get(i)
            assert set(d) == {"numbers", "positions", "cell", "pbc", "energy", "forces", "stress", "info"}
            assert d["numbers"].dtype == np.int64 and d["positions"].dtype == np.float64
            assert d["forces"].dtype == np.float32 and d["pbc"].dtype == np.bool_ and d["cell"].shape == (3, 3)
            np.testing.assert_array_equal(d["numbers"], s["numbers"])
            np.testing.assert_array_equal(d["positions"], s["positions"])
            np.testing.assert_array_equal(d["forces"], s["forces"].astype(np.float32))
            np.testing.assert_array_equal(d["cell"], s["cell"])
            np.testing.assert_array_equal(d["pbc"], s["pbc"])
            assert d["energy"] == s["energy"]
            assert d["info"] == s["info"]
            if s["stress"] is None:
                assert d["stress"] is None
            else:
                np.testing.assert_array_equal(d["stress"], s["stress"])


def test_reader_get_returns_copies(atoms_file, structs):
    with ext.Reader(str(atoms_file)) as r:
        first = r.get(0)
        kept = {k: v.copy() for k, v in first.items() if isinstance(v, np.ndarray)}
        for i in range(1, r.count):
            r.get(i)
        for k, v in kept.items():
            np.testing.assert_array_equal(first[k], v)
        first["positions"][:] = 0  # writable, and not the library's storage
        np.testing.assert_array_equal(r.get(0)["positions"], structs[0]["positions"])


def test_reader_read_matches_h5py(atoms_file, structs):
    with ext.Reader(str(atoms_file)) as r, h5py.File(atoms_file, "r") as f:
        splits = f["structures/atomic_numbers_splits"][()]
        for start, count in ((0, len(structs)), (2, 3), (len(structs), 0)):
            d = r.read(start, count)
            a, b = splits[start], splits[start + count]
            np.testing.assert_array_equal(d["natoms"], np.diff(splits)[start:start + count])
            np.testing.assert_array_equal(d["numbers"], f["structures/atomic_numbers"][a:b])
            np.testing.assert_array_equal(d["positions"], f["structures/positions"][a:b])
            np.testing.assert_array_equal(d["forces"], f["labels/forces"][a:b])
            assert d["forces"].dtype == np.float32
            np.testing.assert_array_equal(d["cells"], f["structures/cells"][start:start + count])
            np.testing.assert_array_equal(d["pbc"], f["structures/pbc"][start:start + count])
            assert d["pbc"].dtype == np.bool_ and d["stress_mask"].dtype == np.bool_
            np.testing.assert_array_equal(d["energies"], f["labels/energy"][start:start + count])
            np.testing.assert_array_equal(d["stress"], f["labels/stress"][start:start + count])
            np.testing.assert_array_equal(d["stress_mask"], f["labels/stress_mask"][start:start + count])


def test_reader_index_errors(tmp_path, structs):
    path = write_structures(tmp_path / "five.h5", structs[:5])
    with ext.Reader(str(path)) as r:
        with pytest.raises(IndexError, match=re.escape("Index 5 out of range [0, 5)")):
            r.get(5)
        with pytest.raises(IndexError, match=re.escape("Index -1 out of range [0, 5)")):
            r.get(-1)
        with pytest.raises(IndexError, match=re.escape("Range [3, 7) out of range [0, 5)")):
            r.read(3, 4)
        with pytest.raises(IndexError):
            r.read(0, -1)
        with pytest.raises(OverflowError):
            r.get(2**70)


def test_reader_pickles_by_path(atoms_file):
    with ext.Reader(str(atoms_file)) as r:
        r2 = pickle.loads(pickle.dumps(r))
        np.testing.assert_array_equal(r2.get(1)["positions"], r.get(1)["positions"])
        r2.close()


# ---- XYZ, callbacks ----------------------------------------------------------------------------


def test_convert_export_roundtrip_with_progress(tmp_path):
    a, xyz, b = tmp_path / "a.h5", tmp_path / "a.xyz", tmp_path / "b.h5"
    seen = []
    with ext.Writer(str(a)) as w:
        assert ext.convert_xyz(w, str(SAMPLE), progress=lambda d, t: seen.append((d, t))) is None
    size = SAMPLE.stat().st_size
    assert seen and seen[-1] == (size, size) and all(t == size for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    exported = []
    with ext.Reader(str(a)) as r:
        assert r.count == 300
        ext.export_xyz(r, str(xyz), progress=lambda d, t: exported.append((d, t)))
        assert exported[-1] == (300, 300)
        ext.export_xyz(r, str(tmp_path / "part.xyz"), start=10, end=20)
    with ext.Writer(str(b)) as w:
        ext.convert_xyz(w, str(xyz))
    assert ext.diff(str(a), str(b)) is None
    with ext.Writer(str(tmp_path / "part.h5")) as w:
        ext.convert_xyz(w, str(tmp_path / "part.xyz"))
    with ext.Reader(str(tmp_path / "part.h5")) as p, ext.Reader(str(a)) as r:
        assert p.count == 10
        np.testing.assert_array_equal(p.get(0)["positions"], r.get(10)["positions"])


def test_convert_errors_roll_back(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\nenergy=1.0 Properties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0 0 0 0\n")
    out = tmp_path / "out.h5"
    w = ext.Writer(str(out))
    with pytest.raises(ValueError, match="bad.xyz"):
        ext.convert_xyz(w, str(bad))
    w.close()
    assert not out.exists()
    with pytest.raises(TypeError):
        ext.convert_xyz("not a writer", str(bad))


class Stop(Exception):
    pass


def test_raising_progress_cancels_convert_and_leaves_no_file(tmp_path):
    out = tmp_path / "cancel.h5"
    calls = []

    def progress(done, total):
        calls.append(done)
        raise Stop(f"stop at {done}")

    w = ext.Writer(str(out))
    with pytest.raises(Stop, match="stop at"):
        ext.convert_xyz(w, str(SAMPLE), progress=progress)
    assert len(calls) == 1  # the library stopped at the first call
    w.close()
    assert not out.exists()


def test_generate_progress_and_cancel(tmp_path):
    out = tmp_path / "gen.h5"
    seen = []
    summary = ext.generate(str(out), per_class=6, length=128, seed=3, progress=lambda d, t: seen.append((d, t)))
    assert summary["total"] == 66 and summary["length"] == 128 and sum(summary["count"]) == 66
    dones = [d for d, _ in seen]
    assert dones == sorted(set(dones)) and seen[-1] == (66, 66)
    with h5py.File(out, "r") as f:
        assert [f[s]["signals"].shape[0] for s in ("train", "val", "test")] == summary["count"]
        assert f["train/signals"].shape[1] == 128 and f["train/signals"].dtype == np.float32
    # a raising callback cancels: its exception propagates, nothing is left behind
    out2 = tmp_path / "gen2.h5"
    with pytest.raises(Stop):
        ext.generate(str(out2), per_class=6, length=128, progress=lambda d, t: (_ for _ in ()).throw(Stop()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.h5"]
    # the same seed gives the same file
    ext.generate(str(out2), per_class=6, length=128, seed=3, compression="lzf")
    with h5py.File(out, "r") as f, h5py.File(out2, "r") as g:
        np.testing.assert_array_equal(f["val/signals"][()], g["val/signals"][()])


def test_log_callback_receives_warnings(tmp_path):
    logs = []
    with ext.Writer(str(tmp_path / "log.h5"), log=lambda level, msg: logs.append((level, msg))) as w:
        w.add([1, 1], [[0, 0, 0], [0.3, 0, 0]], 0.0, [[0, 0, 0], [0, 0, 0]])
        assert len(logs) == 1
        level, msg = logs[0]
        assert level == 1 and "0.300" in msg and "0.5" in msg and msg.startswith("structure 0")
        w.add([1], [[0, 0, 0]], 0.0, [[60, 0, 0]])  # |F| above 50 eV/A
        assert len(logs) == 2 and "50" in logs[1][1]
        assert w.stats()["warnings"] == 2
        w.finalize()
        w.finalize()
        assert "finalize() was already called" in logs[-1][1]


def test_a_raising_log_callback_propagates_after_the_call(tmp_path):
    def log(level, msg):
        raise Stop(msg)

    with ext.Writer(str(tmp_path / "log.h5"), log=log) as w:
        with pytest.raises(Stop, match="apart"):
            w.add([1, 1], [[0, 0, 0], [0.3, 0, 0]], 0.0, [[0, 0, 0], [0, 0, 0]])
        assert w.stats()["structures"] == 1  # the warning does not undo the add
        with pytest.raises(ValueError, match="Invalid energy") as e:  # the library's error wins...
            w.add([1, 1], [[0, 0, 0], [0.3, 0, 0]], np.nan, [[0, 0, 0], [0, 0, 0]])
        assert e.value.__context__ is None  # ...and invalid structures are not screened


def test_callbacks_cannot_reenter_their_handle(tmp_path):
    w = ext.Writer(str(tmp_path / "re.h5"), log=lambda level, msg: w.stats())
    with pytest.raises(RuntimeError, match="Writer used from one of its own callbacks"):
        w.add([1, 1], [[0, 0, 0], [0.3, 0, 0]], 0.0, [[0, 0, 0], [0, 0, 0]])
    w.close()


def test_garbage_collected_writer_is_finalized(tmp_path):
    path = tmp_path / "gc.h5"

    class Owner:  # a reference cycle through the log callback
        def __init__(self):
            self.messages = []
            self.w = ext.Writer(str(path), log=self.on_log)

        def on_log(self, level, msg):
            self.messages.append(msg)

    o = Owner()
    o.w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    del o
    gc.collect()
    with h5py.File(path, "r") as f:
        assert f["metadata"].attrs["num_structures"] == 1 and bool(f["metadata"].attrs["finalized"])


# ---- signals: writer and reader ---------------------------------------------------------------


def test_sigwriter_flat_file_read_by_h5py(flat_file):
    path, sig, lab, meta = flat_file
    with h5py.File(path, "r") as f:
        assert f["signals"].dtype == np.float32
        np.testing.assert_array_equal(f["signals"][()], sig)  # float64 input rounded to float32
        np.testing.assert_array_equal(f["labels"][()], lab)
        got = [x.decode() if isinstance(x, bytes) else x for x in f["metadata"][()]]
        assert got == meta
        assert f.attrs["num_signals"] == len(lab) and f.attrs["signal_length"] == sig.shape[1]
        assert [x.decode() if isinstance(x, bytes) else x for x in f.attrs["class_names"]] == ["a", "b", "c", "d"]
        assert f.attrs["source"] in ("test", b"test")


def test_sigwriter_stats_attrs_and_append(tmp_path, rng):
    sig, lab = make_signals(rng, n=10, length=16)
    path = tmp_path / "app.h5"
    with ext.SigWriter(str(path), length=16, cache_name="cache", compression="lzf", num_classes=4) as w:
        w.add(sig, lab)
        w.attr("flag", True)
        w.attr("n", 3)
        w.attr("x", 0.25)
        w.attr("v", [1, 2, 3])
        assert w.stats() == {"count": [10, 0, 0], "total": 10, "length": 16}
        with pytest.raises(ValueError, match="outside the 4 classes"):
            w.add(sig[:1], [7])
        with pytest.raises(ValueError, match="NaN"):
            w.add(np.full((1, 16), np.nan), [0])
        with pytest.raises(ValueError, match=r"signals must have shape \(k, 16\), got \(2, 15\)"):
            w.add(np.zeros((2, 15)), [0, 0])
        with pytest.raises(ValueError, match=r"labels must have shape \(k,\), got \(3,\) \(k = 2 from signals\)"):
            w.add(np.zeros((2, 16)), [0, 0, 0])
        with pytest.raises(ValueError, match="split must be None"):
            w.add(np.zeros((2, 16)), [0, 0], split="dev")
        with pytest.raises(ValueError, match=r"meta must have 2 entries \(one per signal\), got 1"):
            w.add(np.zeros((2, 16)), [0, 0], meta=["{}"])
    with ext.SigWriter(str(path), mode="a") as w:
        assert w.stats()["length"] == 16
        w.add(sig[:3].astype(np.float32), lab[:3])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["signals"][()], np.concatenate([sig, sig[:3]]).astype(np.float32))
        assert f.attrs["cache_name"] in ("cache", b"cache") and f.attrs["compression"] in ("lzf", b"lzf")
        assert bool(f.attrs["flag"]) and f.attrs["n"] == 3 and f.attrs["x"] == 0.25
        np.testing.assert_array_equal(f.attrs["v"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="layout must be 'flat'"):
        ext.SigWriter(str(path), mode="a", layout="split")


def test_sigwriter_split_layout(tmp_path, rng):
    sig, lab = make_signals(rng, n=12, length=8)
    path = tmp_path / "split.h5"
    with ext.SigWriter(str(path), length=8, layout="split") as w:
        w.add(sig[:6], lab[:6], split="train", indices=np.arange(6) + 100)
        w.add(sig[6:9], lab[6:9], split=1)
        w.add(sig[9:], lab[9:], split="test", meta=[None, '{"x":1}', None])
        assert w.stats()["count"] == [6, 3, 3]
    with ext.SigReader(str(path), "test") as r:
        assert r.layout == "split" and r.split == "test"
        assert r.split_counts == {"train": 6, "val": 3, "test": 3}
        assert [r.metadata(i) for i in range(3)] == [None, '{"x":1}', None]
    with ext.SigReader(str(path), "train") as r:
        np.testing.assert_array_equal(r.indices(), np.arange(6) + 100)
    with pytest.raises(ValueError, match="name the split"):
        ext.SigReader(str(path))


def test_sigwriter_file_appears_at_finalize(tmp_path, rng):
    sig, lab = make_signals(rng, n=4, length=8)
    path = tmp_path / "fin.h5"
    logs = []
    w = ext.SigWriter(str(path), length=8, log=lambda level, msg: logs.append((level, msg)))
    w.add(sig, lab)
    assert not path.exists() and len(list(tmp_path.iterdir())) == 1  # built under a temporary name
    assert (w.finalized, w.closed, w.path) == (False, False, str(path))
    w.finalize()
    assert w.finalized and sorted(tmp_path.iterdir()) == [path]
    w.finalize()  # a second call only warns
    assert logs == [(1, f"{path}: finalize() was already called")]
    with pytest.raises(RuntimeError, match="after finalize"):
        w.add(sig, lab)
    w.close()
    assert w.closed
    with ext.SigReader(str(path)) as r:
        np.testing.assert_array_equal(r.read_range(0, 4)[0], sig.astype(np.float32))


def test_sigwriter_rollback_leaves_nothing(tmp_path, rng):
    sig, lab = make_signals(rng, n=4, length=8)
    path = tmp_path / "rb.h5"
    w = ext.SigWriter(str(path), length=8)
    w.add(sig, lab)
    w.rollback()
    w.close()
    assert list(tmp_path.iterdir()) == []


def test_sigreader_reads_match_h5py(flat_file, rng):
    path, sig, lab, meta = flat_file
    with ext.SigReader(str(path), cache=4, threads=2) as r:
        assert (r.count, r.length, r.layout, r.split, r.split_counts) == (len(lab), sig.shape[1], "flat", None, {})
        assert r.has_metadata and r.path == str(path)
        x, y = r.get(3)
        assert x.dtype == np.float32 and x.shape == (sig.shape[1],) and isinstance(y, int)
        np.testing.assert_array_equal(x, sig[3])
        assert y == lab[3]
        idx = rng.integers(0, len(lab), 30)
        s, l = r.read(idx)
        np.testing.assert_array_equal(s, sig[idx])
        np.testing.assert_array_equal(l, lab[idx])
        assert s.dtype == np.float32 and l.dtype == np.int64
        s, l = r.read([])
        assert s.shape == (0, sig.shape[1]) and l.shape == (0,)
        s, l = r.read_range(5, 20)
        np.testing.assert_array_equal(s, sig[5:25])
        np.testing.assert_array_equal(l, lab[5:25])
        np.testing.assert_array_equal(r.labels(), lab)
        np.testing.assert_array_equal(r.indices(), np.arange(len(lab)))
        assert [r.metadata(i) for i in range(len(lab))] == meta
        attrs = r.attrs()
        assert attrs["num_signals"] == len(lab) and attrs["class_names"] == ["a", "b", "c", "d"]
        r.get(3)
        before = r.stats()
        r.get(3)
        assert r.stats()["hits"] == before["hits"] + 1
        r.set_cache(0)
        r.set_prefetch(16)
        for i in range(10):
            np.testing.assert_array_equal(r.get(i)[0], sig[i])
        st = r.stats()
        assert set(st) == {"hits", "misses", "chunks_read"} and st["hits"] >= before["hits"] + 9
        with pytest.raises(ValueError, match="option value out of range"):
            r.set_cache(-1)


def test_sigreader_errors(tmp_path, rng):
    sig, lab = make_signals(rng, n=5, length=8)
    path = tmp_path / "five.h5"
    with ext.SigWriter(str(path), length=8) as w:
        w.add(sig, lab)
    with ext.SigReader(str(path)) as r:
        with pytest.raises(IndexError, match=re.escape("Index 5 out of range [0, 5)")):
            r.get(5)
        with pytest.raises(IndexError, match=re.escape("Index 9 out of range [0, 5)")):
            r.read([0, 9])
        with pytest.raises(IndexError, match=re.escape("Range [2, 8) out of range [0, 5)")):
            r.read_range(2, 6)
        with pytest.raises(IndexError):
            r.read_range(0, -1)
        with pytest.raises(ValueError, match=r"indices must have shape \(n,\), got \(1, 2\)"):
            r.read([[0, 1]])
        with pytest.raises(IndexError):
            r.metadata(7)
        assert r.metadata(0) is None and not r.has_metadata
    with pytest.raises(ValueError, match=re.escape("Split 'bogus' not found. Available: [")):
        ext.SigReader(str(path), "bogus")
    with pytest.raises(TypeError, match="split must be a str"):
        ext.SigReader(str(path), 1)


def test_sigreader_pickle_round_trip(split_file):
    path, _ = split_file
    r = ext.SigReader(str(path), "val", cache=3)
    r.set_prefetch(4)
    assert r.__reduce__() == (ext.SigReader, (str(path), "val", 3, 4, 0))
    r2 = pickle.loads(pickle.dumps(r))
    assert (r2.path, r2.split, r2.count) == (r.path, "val", r.count)
    np.testing.assert_array_equal(r2.read_range(0, r.count)[0], r.read_range(0, r.count)[0])
    r.close()
    r3 = pickle.loads(pickle.dumps(r))  # a closed reader pickles too: it reopens
    assert r3.count == r2.count
    r2.close()
    r3.close()


# ---- whole-file operations ---------------------------------------------------------------------


def test_split_matches_split_assign(flat_file, split_file):
    path, sig, lab, meta = flat_file
    out, summary = split_file
    parts = ext.split_assign(lab, ratios=(0.5, 0.25, 0.25), seed=7)
    assert summary == {"count": [len(p) for p in parts], "total": len(lab), "length": sig.shape[1]}
    assert all(p.dtype == np.int64 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(lab)))
    with h5py.File(out, "r") as f:
        for name, p in zip(("train", "val", "test"), parts):
            np.testing.assert_array_equal(f[name]["indices"][()], p)
            np.testing.assert_array_equal(f[name]["signals"][()], sig[p])
            np.testing.assert_array_equal(f[name]["labels"][()], lab[p])
    assert [len(p) for p in ext.split_assign(lab, stratify=False, seed=7)] == [28, 6, 6]
    with pytest.raises(ValueError):
        ext.split_assign(lab, ratios=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="already split"):
        ext.split(str(out), str(out) + ".2")


def test_verify_clean_and_broken_files(atoms_file, flat_file, split_file, tmp_path):
    assert ext.verify(str(atoms_file)) == []
    assert ext.verify(str(flat_file[0])) == []
    assert ext.verify(str(split_file[0])) == []
    with h5py.File(atoms_file, "r+") as f:
        f["labels/energy"][1] = np.nan
    problems = ext.verify(str(atoms_file))
    assert problems and all(isinstance(p, str) for p in problems) and any("energ" in p for p in problems)
    with h5py.File(flat_file[0], "r+") as f:
        f["signals"][2, 3] = np.inf
        f["labels"][0] = -5
    problems = ext.verify(str(flat_file[0]))
    assert len(problems) >= 1 and any("finite" in p or "Inf" in p or "inf" in p for p in problems)


def test_summarize_signals(flat_file, split_file):
    path, sig, lab, _ = flat_file
    s = ext.summarize_signals(str(path))
    assert s["layout"] == "flat" and s["total"] == len(lab) and s["length"] == sig.shape[1]
    assert s["count"] == [len(lab), -1, -1]
    assert s["class_counts"] == {"all": {int(k): int(v) for k, v in zip(*np.unique(lab, return_counts=True))}}
    assert s["min"] == sig.min() and s["max"] == sig.max()
    assert abs(s["mean"] - sig.astype(np.float64).mean()) < 1e-9
    assert s["nonfinite"] == 0 and s["has_metadata"] is True and s["compression"] == "gzip"
    assert s["num_classes"] == 4 and s["other_labels"] == [0, 0, 0] and s["bytes_file"] == path.stat().st_size
    t = ext.summarize_signals(str(split_file[0]))
    assert t["layout"] == "split" and t["count"] == split_file[1]["count"]
    assert set(t["class_counts"]) == {"train", "val", "test"}
    assert sum(sum(c.values()) for c in t["class_counts"].values()) == len(lab)


def test_diff_and_is_signal_file(tmp_path, structs, flat_file, atoms_file):
    other = write_structures(tmp_path / "other.h5", structs)
    assert ext.diff(str(atoms_file), str(other)) is None
    changed = list(structs)
    changed[3] = dict(changed[3], energy=changed[3]["energy"] + 1)
    third = write_structures(tmp_path / "third.h5", changed)
    d = ext.diff(str(atoms_file), str(third))
    assert isinstance(d, str) and "labels/energy[3]" in d
    assert ext.diff(str(flat_file[0]), str(flat_file[0])) is None
    assert isinstance(ext.diff(str(flat_file[0]), str(atoms_file)), str)
    assert ext.is_signal_file(str(flat_file[0])) is True
    assert ext.is_signal_file(Path(atoms_file)) is False


def test_import_mat(tmp_path):
    out = tmp_path / "mat.h5"
    seen = []
    s = ext.import_mat(str(MAT_DIR), str(out), flat=True, progress=lambda d, t: seen.append((d, t)))
    assert s["total"] == 16 and s["count"] == [16, 0, 0] and seen[-1] == (16, 16)
    with ext.SigReader(str(out)) as r:
        assert r.count == 16 and r.length == s["length"]
        assert sorted(set(r.labels().tolist())) == [0, 1, 2, 3]
    split = ext.import_mat(str(MAT_DIR), str(tmp_path / "mats.h5"), seed=1, compression=None)
    assert sum(split["count"]) == 16
    with pytest.raises(FileNotFoundError):
        ext.import_mat(str(tmp_path / "nodir"), str(tmp_path / "x.h5"))
    assert not (tmp_path / "x.h5").exists()


# ---- threads and processes ----------------------------------------------------------------------


runs_without_gil = H.runs_without_gil


def test_long_calls_release_the_gil(tmp_path):
    n, length = 2000, 4096
    sig = np.sin(np.outer(np.arange(n) % 50 + 1, np.arange(length)) * 0.01).astype(np.float32)
    path = tmp_path / "big.h5"
    with ext.SigWriter(str(path), length=length, level=1) as w:
        w.add(sig, np.arange(n) % 7)
    with ext.SigReader(str(path), threads=1) as r:
        out = []
        assert runs_without_gil(lambda: out.append(r.read_range(0, n))) > 0
        np.testing.assert_array_equal(out[0][0], sig)
    m = 200_000
    with ext.Writer(str(tmp_path / "big_atoms.h5"), threads=1) as w:
        args = (np.full(m // 100, 100), np.full(m, 6), np.random.default_rng(0).random((m, 3)) * 100,
                np.zeros(m // 100), np.zeros((m, 3)))
        assert runs_without_gil(lambda: w.add_batch(*args)) > 0


def test_one_handle_shared_by_threads(flat_file):
    path, sig, lab, _ = flat_file
    errors = []
    r = ext.SigReader(str(path), cache=8)

    def work(seed):
        g = np.random.default_rng(seed)
        try:
            for _ in range(50):
                idx = g.integers(0, len(lab), 7)
                s, l = r.read(idx)
                assert np.array_equal(s, sig[idx]) and np.array_equal(l, lab[idx])
                x, y = r.get(int(idx[0]))
                assert np.array_equal(x, sig[idx[0]])
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_handles_survive_fork(tmp_path, atoms_file, structs, split_file):
    sr = ext.SigReader(str(split_file[0]), "train", cache=4)
    r = ext.Reader(str(atoms_file))
    expect_sig = sr.read_range(0, sr.count)
    expect_atoms = r.read(0, r.count)
    w = ext.Writer(str(tmp_path / "parent.h5"), threads=1)
    w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # the child: inherited handles
        code = 1
        try:
            s, l = sr.read_range(0, sr.count)
            ok = np.array_equal(s, expect_sig[0]) and np.array_equal(l, expect_sig[1])
            ok = ok and np.array_equal(sr.get(2)[0], expect_sig[0][2])
            a = r.read(0, r.count)
            ok = ok and all(np.array_equal(a[k], expect_atoms[k]) for k in a)
            ok = ok and np.array_equal(r.get(1)["positions"], structs[1]["positions"])
            try:
                w.add([1], [[0, 0, 0]], 1.0, [[0, 0, 0]])
                ok = False
            except RuntimeError as e:
                ok = ok and "forked child" in str(e)
            w.close()  # must leave the parent's writer alone
            sr.close()
            r.close()
            code = 0 if ok else 3
        except BaseException:
            report.write_text(traceback.format_exc())
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, report.read_text() if report.exists() else f"child exit code {code}"
    # the parent's handles are untouched by the child
    np.testing.assert_array_equal(sr.read_range(0, sr.count)[0], expect_sig[0])
    np.testing.assert_array_equal(r.get(1)["positions"], structs[1]["positions"])
    w.add([2], [[0, 0, 0]], 2.0, [[0, 0, 0]])
    w.close()
    with h5py.File(tmp_path / "parent.h5", "r") as f:
        np.testing.assert_array_equal(f["structures/atomic_numbers"][()], [1, 2])
    sr.close()
    r.close()
