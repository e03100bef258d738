"""`h5ml convert --append`: a file written in parts equals the file written in one go,
dataset by dataset; indices, splits and /metadata cover the whole file; appending to a file
written with h5py by the original writer's layout works."""
import time

import h5py
import numpy as np
import pytest

import h5ml_helpers as H


def check_whole_file_metadata(path, data):
    meta = H.load_meta(path)
    n = len(data["labels/energy"])
    assert meta["num_structures"] == n
    assert meta["num_atoms"] == len(data["structures/atomic_numbers"])
    z, counts = np.unique(data["structures/atomic_numbers"], return_counts=True)
    assert np.array_equal(meta["elements"], z)
    assert np.array_equal(meta["element_counts"], counts)
    e = data["labels/energy"]
    nat = np.diff(data["structures/atomic_numbers_splits"])
    f64 = data["labels/forces"].astype(np.float64)
    assert meta["energy_min"] == e.min() and meta["energy_max"] == e.max()
    assert meta["energy_mean"] == pytest.approx(e.mean(), rel=1e-12)
    assert meta["energy_std"] == pytest.approx(e.std(), rel=1e-12)
    assert meta["energy_per_atom_mean"] == pytest.approx((e / nat).mean(), rel=1e-12)
    assert meta["energy_per_atom_std"] == pytest.approx((e / nat).std(), rel=1e-12)
    assert meta["force_max"] == pytest.approx(np.linalg.norm(f64, axis=1).max(), rel=1e-12)
    assert meta["force_rms"] == pytest.approx(np.sqrt(np.mean(f64 ** 2)), rel=1e-12)
    assert meta["num_with_stress"] == int(data["labels/stress_mask"].sum())
    assert meta["num_periodic"] == int(data["structures/pbc"].any(axis=1).sum())


@pytest.mark.parametrize("n1", [1, 137, 200, 299])
def test_two_part_equals_one_shot(tmp_path, sample_frame_texts, sample_h5, sample_data, n1):
    a = tmp_path / "a.xyz"
    b = tmp_path / "b.xyz"
    a.write_text("".join(sample_frame_texts[:n1]))
    b.write_text("".join(sample_frame_texts[n1:]))
    out = tmp_path / "parts.h5"
    H.convert(a, out)
    H.convert(b, out, "--append")
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e
    data = H.load_h5(out)
    H.assert_files_equal(data, sample_data)
    assert np.array_equal(data["labels/structure_indices"], np.arange(300))
    sp = data["structures/atomic_numbers_splits"]
    assert sp[0] == 0 and sp[-1] == len(data["structures/atomic_numbers"])
    assert np.all(np.diff(sp) > 0)
    assert np.array_equal(sp, data["labels/forces_splits"])
    check_whole_file_metadata(out, data)
    code, o, e = H.run("verify", out)
    assert code == 0, o + e


def test_many_appends_and_created_kept(tmp_path, sample_frame_texts, sample_h5, sample_data):
    out = tmp_path / "many.h5"
    cuts = [0, 3, 50, 51, 180, 300]
    for k in range(len(cuts) - 1):
        part = tmp_path / f"p{k}.xyz"
        part.write_text("".join(sample_frame_texts[cuts[k]:cuts[k + 1]]))
        H.convert(part, out, *(["--append"] if k else []), "-m", f"part{k}=yes")
        if k == 0:
            created = H.load_meta(out)["created"]
            time.sleep(1.1)
        data = H.load_h5(out)
        assert len(data["labels/energy"]) == cuts[k + 1]
        assert np.array_equal(data["labels/structure_indices"], np.arange(cuts[k + 1]))
        check_whole_file_metadata(out, data)
    H.assert_files_equal(H.load_h5(out), sample_data)
    meta = H.load_meta(out)
    assert meta["created"] == created, "append must keep the creation time"
    assert meta["updated"] > created
    assert all(meta.get(f"part{k}") == "yes" for k in range(len(cuts) - 1)), meta


def test_append_empty_input_changes_nothing(tmp_path, sample_path, sample_data):
    out = tmp_path / "s.h5"
    H.convert(sample_path, out)
    (tmp_path / "empty.xyz").write_text("")
    H.convert(tmp_path / "empty.xyz", out, "--append")
    H.assert_files_equal(H.load_h5(out), sample_data)
    assert H.load_meta(out)["num_structures"] == 300


def test_append_to_missing_file_creates_it(tmp_path, sample_path, sample_h5):
    out = tmp_path / "new.h5"
    H.convert(sample_path, out, "--append")
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e


def test_append_keeps_file_compression(tmp_path, sample_frame_texts, sample_data):
    a = tmp_path / "a.xyz"
    b = tmp_path / "b.xyz"
    a.write_text("".join(sample_frame_texts[:100]))
    b.write_text("".join(sample_frame_texts[100:]))
    out = tmp_path / "lzf.h5"
    H.convert(a, out, "-c", "lzf")
    H.convert(b, out, "--append")
    with h5py.File(out, "r") as f:
        assert f["labels/forces"].compression == "lzf"
        assert f["structures/positions"].compression == "lzf"
    H.assert_files_equal(H.load_h5(out), sample_data)


def test_append_to_h5py_original_writer_file(tmp_path, sample_atoms, sample_frame_texts,
                                             sample_data):
    """A file written by an h5py implementation of the original HDF5DatasetWriter: gzip,
    chunks=True, maxshape=(None, ...), numpy bool, no labels/info."""
    n1 = 120
    arrays = H.expected_arrays(sample_atoms[:n1])
    orig = tmp_path / "orig.h5"
    H.write_h5py_dataset(orig, arrays, chunked=True, compression="gzip",
                         meta={"created_at": "2025-11-23T10:00:00", "teacher_model": "orb-v2",
                               "compression": "gzip"})
    code, o, e = H.run("verify", orig)
    assert code == 0, o + e
    rest = tmp_path / "rest.xyz"
    rest.write_text("".join(sample_frame_texts[n1:]))
    H.convert(rest, orig, "--append")
    code, o, e = H.run("verify", orig)
    assert code == 0, o + e
    data = H.load_h5(orig)
    # every schema dataset equals the one-shot h5ml conversion of the whole sample
    for name in H.SCHEMA:
        H.assert_same_bits(data[name], sample_data[name], name)
    assert np.array_equal(data["labels/structure_indices"], np.arange(300))
    sp = data["structures/atomic_numbers_splits"]
    assert np.array_equal(sp[:n1 + 1], arrays["structures/atomic_numbers_splits"])
    check_whole_file_metadata(orig, data)
    meta = H.load_meta(orig)
    assert meta["teacher_model"] == "orb-v2"
    # per-structure metadata: none for the h5py part, the appended part's as usual
    if "labels/info" in data:
        info = H.info_objects(data["labels/info"])
        assert info[:n1] == [None] * n1
        assert info[n1:] == H.info_objects(sample_data["labels/info"])[n1:]
    else:
        pytest.fail("the appended structures' info keys (config_type) were dropped")
    # the datasets kept their h5py layout (gzip, chunked, resizable, bool enum)
    with h5py.File(orig, "r") as f:
        assert f["labels/forces"].compression == "gzip"
        assert f["structures/pbc"].dtype == np.bool_
