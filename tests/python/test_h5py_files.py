"""h5ml reads files written by h5py with the schema of SPEC section 1 (chunked gzip and
contiguous uncompressed): verify, inspect and export agree with the arrays written."""
import json
import re

import ase.io
import numpy as np
import pytest

import h5ml_helpers as H

LAYOUTS = {
    "chunked-gzip": dict(chunked=True, compression="gzip"),
    "chunked-lzf": dict(chunked=True, compression="lzf"),
    "contiguous": dict(chunked=False),
}


@pytest.fixture(scope="module")
def sample_arrays(sample_atoms):
    return H.expected_arrays(sample_atoms)


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def h5py_file(request, sample_arrays, sample_atoms, tmp_path_factory):
    path = tmp_path_factory.mktemp("h5py") / f"{request.param}.h5"
    info = [json.dumps(H.expected_info(a)) for a in sample_atoms]
    H.write_h5py_dataset(path, sample_arrays, info=info, **LAYOUTS[request.param])
    return path


def test_verify_clean(h5py_file):
    code, out, err = H.run("verify", h5py_file)
    assert code == 0, out + err
    assert "300" in out


def test_inspect_counts(h5py_file, sample_arrays):
    code, out, err = H.run("inspect", h5py_file, "--json")
    assert code == 0, err
    s = json.loads(out)
    nat = np.diff(sample_arrays["structures/atomic_numbers_splits"])
    assert s["structures"] == 300
    assert s["atoms"] == int(nat.sum())
    assert s["atoms_min"] == int(nat.min()) and s["atoms_max"] == int(nat.max())
    assert s["periodic"] == int(sample_arrays["structures/pbc"].any(axis=1).sum()) == 200
    assert s["with_stress"] == int(sample_arrays["labels/stress_mask"].sum()) == 200
    assert s["with_info"] == 300
    z, counts = np.unique(sample_arrays["structures/atomic_numbers"], return_counts=True)
    from ase.data import chemical_symbols
    assert s["elements"] == {chemical_symbols[a]: int(c) for a, c in zip(z, counts)}
    e = sample_arrays["labels/energy"]
    assert s["energy_min"] == e.min() and s["energy_max"] == e.max()
    assert s["energy_mean"] == pytest.approx(e.mean(), rel=1e-12)
    # the text form shows the same counts
    code, out, err = H.run("inspect", h5py_file)
    assert code == 0, err
    assert re.search(r"structures\s+300\b", out), out
    assert re.search(rf"atoms\s+{int(nat.sum())}\b", out), out
    assert "200 periodic" in out and "200 with stress" in out


def test_export_agrees_with_arrays(h5py_file, sample_arrays, sample_atoms, tmp_path):
    xyz = tmp_path / "out.xyz"
    code, out, err = H.run("export", h5py_file, "-o", xyz, "-q")
    assert code == 0, out + err
    frames = ase.io.read(str(xyz), index=":")
    assert len(frames) == 300
    back = H.expected_arrays(frames)
    for name in H.SCHEMA:
        H.assert_same_bits(back[name], sample_arrays[name], name)
    for a, b in zip(frames, sample_atoms):
        assert H.strict_equal(H.expected_info(a), H.expected_info(b))


def test_export_range_of_h5py_file(h5py_file, sample_arrays, tmp_path):
    xyz = tmp_path / "r.xyz"
    code, out, err = H.run("export", h5py_file, "-o", xyz, "-q", "--range", "195:205")
    assert code == 0, out + err
    frames = ase.io.read(str(xyz), index=":")
    assert len(frames) == 10
    assert [a.get_potential_energy() for a in frames] == \
        sample_arrays["labels/energy"][195:205].tolist()


def test_h5py_file_without_info(tmp_path, sample_arrays):
    path = tmp_path / "noinfo.h5"
    H.write_h5py_dataset(path, sample_arrays, chunked=True)
    code, out, err = H.run("verify", path)
    assert code == 0, out + err
    code, out, err = H.run("export", path, "-o", tmp_path / "x.xyz", "-q")
    assert code == 0, out + err
    frames = ase.io.read(str(tmp_path / "x.xyz"), index=":")
    back = H.expected_arrays(frames)
    for name in H.SCHEMA:
        H.assert_same_bits(back[name], sample_arrays[name], name)


def test_h5py_empty_dataset(tmp_path):
    arrays = H.expected_arrays([])
    path = tmp_path / "empty.h5"
    H.write_h5py_dataset(path, arrays, chunked=True)
    code, out, err = H.run("verify", path)
    assert code == 0, out + err
    code, out, err = H.run("inspect", path, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["structures"] == 0 and s["atoms"] == 0
    code, out, err = H.run("export", path, "-o", tmp_path / "e.xyz", "-q")
    assert code == 0, err
    assert (tmp_path / "e.xyz").read_text() == ""


def test_h5py_written_with_random_structures(tmp_path, seed):
    rng = np.random.default_rng(seed)
    src = tmp_path / "g.xyz"
    ase.io.write(str(src), H.random_atoms_list(rng, 25))
    frames = ase.io.read(str(src), index=":")
    arrays = H.expected_arrays(frames)
    path = tmp_path / "g.h5"
    H.write_h5py_dataset(path, arrays, chunked=False,
                         info=[json.dumps(H.expected_info(a)) for a in frames])
    code, out, err = H.run("verify", path)
    assert code == 0, f"seed {seed}: " + out + err
    code, out, err = H.run("export", path, "-o", tmp_path / "x.xyz", "-q")
    assert code == 0, err
    back = ase.io.read(str(tmp_path / "x.xyz"), index=":")
    got = H.expected_arrays(back)
    for name in H.SCHEMA:
        H.assert_same_bits(got[name], arrays[name], f"seed {seed}: {name}")
    for i, (a, b) in enumerate(zip(back, frames)):
        assert H.strict_equal(H.expected_info(a), H.expected_info(b)), (seed, i)
    # and h5ml's own conversion of the same text holds the same arrays as h5py's file
    # (labels/info compared as JSON objects: the two writers space JSON differently)
    H.convert(src, tmp_path / "h.h5")
    mine = H.load_h5(tmp_path / "h.h5")
    theirs = H.load_h5(path)
    H.assert_files_equal(mine, theirs, skip=("labels/info",))
    assert H.info_objects(mine["labels/info"]) == H.info_objects(theirs["labels/info"])
