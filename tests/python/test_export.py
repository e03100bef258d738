"""`h5ml export` writes extended XYZ that ASE reads back bit for bit; converting the export
again gives the same file (h5ml diff)."""
import ase.io
import numpy as np
import pytest

import h5ml_helpers as H


def export(h5, xyz, *opts):
    code, out, err = H.run("export", h5, "-o", xyz, "-q", *opts)
    assert code == 0, out + err
    return ase.io.read(str(xyz), index=":", format="extxyz")


def check_frames_equal_stored(frames, data, start, what=""):
    """ASE frames equal structures start.. of a load_h5 dict exactly."""
    sp = data["structures/atomic_numbers_splits"]
    info = H.info_objects(data["labels/info"]) if "labels/info" in data else None
    for k, a in enumerate(frames):
        i = start + k
        lo, hi = sp[i], sp[i + 1]
        w = f"{what}structure {i}"
        assert len(a) == hi - lo, w
        assert np.array_equal(a.numbers, data["structures/atomic_numbers"][lo:hi]), w
        H.assert_same_bits(a.positions, data["structures/positions"][lo:hi], w + " positions")
        H.assert_same_bits(np.array(a.cell[:]), data["structures/cells"][i], w + " cell")
        assert a.pbc.tolist() == data["structures/pbc"][i].tolist(), w
        e = a.get_potential_energy()
        H.assert_same_bits(np.float64(e), data["labels/energy"][i], w + " energy")
        stored_f = data["labels/forces"][lo:hi]
        f = a.get_forces()
        H.assert_same_bits(f, stored_f.astype(np.float64), w + " forces as float64")
        H.assert_same_bits(f.astype(np.float32), stored_f, w + " forces as float32")
        if data["labels/stress_mask"][i]:
            assert H.ase_has_stress(a), w + ": stress lost"
            H.assert_same_bits(a.get_stress(), data["labels/stress"][i], w + " stress")
        else:
            assert not H.ase_has_stress(a), w + ": stress appeared"
        if info is not None:
            assert H.strict_equal(H.expected_info(a), info[i] or {}), \
                f"{w} info: {H.expected_info(a)!r} != {info[i]!r}"


def test_export_all_roundtrip(tmp_path, sample_h5, sample_data):
    frames = export(sample_h5, tmp_path / "all.xyz")
    assert len(frames) == 300
    check_frames_equal_stored(frames, sample_data, 0)


def test_export_info_keys_roundtrip(tmp_path, sample_h5, sample_atoms):
    frames = export(sample_h5, tmp_path / "all.xyz")
    for a, b in zip(frames, sample_atoms):
        assert a.info["config_type"] == b.info["config_type"]
        assert set(a.info) == set(b.info)


@pytest.mark.parametrize("rng_spec,start,stop", [
    ("10:20", 10, 20), ("-5:", 295, 300), (":3", 0, 3), ("299:", 299, 300),
    ("-300:-298", 0, 2)])
def test_export_range(tmp_path, sample_h5, sample_data, rng_spec, start, stop):
    frames = export(sample_h5, tmp_path / "r.xyz", "--range", rng_spec)
    assert len(frames) == stop - start
    check_frames_equal_stored(frames, sample_data, start, f"--range {rng_spec}: ")


def test_export_range_long_option_and_empty(tmp_path, sample_h5):
    code, out, err = H.run("export", sample_h5, "-o", tmp_path / "e.xyz", "-q", "-r", "5:5")
    assert code == 0, err
    assert (tmp_path / "e.xyz").read_text() == ""


def test_export_reconvert_identical(tmp_path, sample_h5):
    export(sample_h5, tmp_path / "all.xyz")
    again = tmp_path / "again.h5"
    H.convert(tmp_path / "all.xyz", again)
    code, out, err = H.run("diff", sample_h5, again)
    assert code == 0, out + err
    H.assert_files_equal(H.load_h5(sample_h5), H.load_h5(again))


def test_export_range_reconvert_equals_slice(tmp_path, sample_h5, sample_data):
    export(sample_h5, tmp_path / "r.xyz", "--range", "10:20")
    H.convert(tmp_path / "r.xyz", tmp_path / "r.h5")
    d = H.load_h5(tmp_path / "r.h5")
    sp = sample_data["structures/atomic_numbers_splits"]
    lo, hi = sp[10], sp[20]
    for name in ("structures/atomic_numbers", "structures/positions", "labels/forces"):
        H.assert_same_bits(d[name], sample_data[name][lo:hi], name)
    for name in ("structures/cells", "structures/pbc", "labels/energy", "labels/stress",
                 "labels/stress_mask", "labels/info"):
        H.assert_same_bits(d[name], sample_data[name][10:20], name)
    H.assert_same_bits(d["structures/atomic_numbers_splits"], sp[10:21] - sp[10], "splits")
    assert np.array_equal(d["labels/structure_indices"], np.arange(10))


def test_export_to_stdout_equals_file(tmp_path, sample_h5):
    code, out, err = H.run("export", sample_h5, "-o", "-", "--range", "0:7")
    assert code == 0, err
    H.run("export", sample_h5, "-o", tmp_path / "f.xyz", "-q", "--range", "0:7")
    assert out == (tmp_path / "f.xyz").read_text()


def test_export_generated_extras_roundtrip(tmp_path, seed):
    """Extra info keys and per-atom columns survive convert -> export -> ASE."""
    rng = np.random.default_rng(seed)
    src = tmp_path / "gen.xyz"
    ase.io.write(str(src), H.random_atoms_list(rng, 30), format="extxyz")
    orig = ase.io.read(str(src), index=":")
    h5 = tmp_path / "gen.h5"
    H.convert(src, h5)
    data = H.load_h5(h5)
    frames = export(h5, tmp_path / "back.xyz")
    assert len(frames) == len(orig)
    check_frames_equal_stored(frames, data, 0, f"seed {seed}: ")
    for i, (a, b) in enumerate(zip(frames, orig)):
        assert set(a.arrays) == set(b.arrays), (seed, i)
        for k in set(b.arrays) - {"forces"}:  # forces: float32 precision, checked above
            assert np.array_equal(a.arrays[k], b.arrays[k]), (seed, i, k)
            assert a.arrays[k].dtype == b.arrays[k].dtype, (seed, i, k)
        assert H.strict_equal(H.expected_info(a), H.expected_info(b)), (seed, i)
    H.convert(tmp_path / "back.xyz", tmp_path / "back.h5")
    code, out, err = H.run("diff", h5, tmp_path / "back.h5")
    assert code == 0, f"seed {seed}: " + out + err
