"""h5py reads what `h5ml convert` writes, and it agrees value for value with ASE's parse of
the same extended XYZ file (SPEC section 1 schema: names, dtypes, shapes, values)."""
import datetime
import re

import ase.io
import h5py
import numpy as np
import pytest

import h5ml_helpers as H

ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def parse_iso(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_schema(path, n, m):
    """Exact dataset set, dtypes and shapes of SPEC section 1 with N=n, M=m."""
    dims = {"N": n, "M": m, "N+1": n + 1}
    with h5py.File(path, "r") as f:
        assert set(f.keys()) >= {"structures", "labels", "metadata"}
        assert set(f["structures"].keys()) == H.STRUCTURES
        assert set(f["labels"].keys()) >= H.LABELS
        assert set(f["labels"].keys()) <= H.LABELS | {"info"}
        assert isinstance(f["metadata"], h5py.Group)
        assert len(f["metadata"].keys()) == 0, "/metadata holds attributes only"
        for name, (dtype, shape) in H.SCHEMA.items():
            ds = f[name]
            want = tuple(dims.get(s, s) for s in shape)
            assert ds.dtype == dtype, f"{name}: dtype {ds.dtype}, expected {dtype}"
            assert ds.shape == want, f"{name}: shape {ds.shape}, expected {want}"
        for name in ("structures/pbc", "labels/stress_mask"):
            # h5py's bool: an HDF5 enum FALSE=0/TRUE=1 on a 1-byte integer
            tid = f[name].id.get_type()
            assert isinstance(tid, h5py.h5t.TypeEnumID), name
            assert tid.get_super().get_size() == 1, name
            members = {tid.get_member_name(i): tid.get_member_value(i)
                       for i in range(tid.get_nmembers())}
            assert members == {b"FALSE": 0, b"TRUE": 1}, (name, members)
        if "info" in f["labels"]:
            ds = f["labels/info"]
            assert ds.shape == (n,)
            si = h5py.check_string_dtype(ds.dtype)
            assert si is not None and si.encoding == "utf-8" and si.length is None


def check_against_ase(data, frames, what=""):
    exp = H.expected_arrays(frames)
    for name in H.SCHEMA:
        H.assert_same_bits(data[name], exp[name], f"{what}{name}")
    # the explicit statements of the brief, on top of the bitwise comparison above
    n = len(frames)
    for i, a in enumerate(frames):
        if H.ase_has_stress(a):
            assert data["labels/stress_mask"][i]
            assert np.array_equal(data["labels/stress"][i], a.get_stress())
        else:
            assert not data["labels/stress_mask"][i]
            assert np.all(data["labels/stress"][i] == 0.0)
    assert np.array_equal(data["labels/structure_indices"], np.arange(n))
    sp = data["structures/atomic_numbers_splits"]
    assert sp[0] == 0 and sp[-1] == len(data["structures/atomic_numbers"])
    assert np.array_equal(sp, data["labels/forces_splits"])
    assert data["structures/pbc"].dtype == np.bool_
    assert data["labels/stress_mask"].dtype == np.bool_


def check_info(data, frames, what=""):
    assert "labels/info" in data, "per-structure metadata was not stored"
    got = H.info_objects(data["labels/info"])
    for i, a in enumerate(frames):
        want = H.expected_info(a)
        assert H.strict_equal(got[i], want), f"{what}structure {i}: {got[i]!r} != {want!r}"


# ---------------------------------------------------------------------------- sample


def test_sample_schema(sample_h5, sample_atoms):
    m = sum(len(a) for a in sample_atoms)
    check_schema(sample_h5, 300, m)


def test_sample_values_equal_ase(sample_data, sample_atoms):
    check_against_ase(sample_data, sample_atoms)
    # the sample's known composition: 200 periodic cells with stress, 100 molecules without
    assert int(sample_data["labels/stress_mask"].sum()) == 200
    assert int(sample_data["structures/pbc"].all(axis=1).sum()) == 200
    assert int((~sample_data["structures/pbc"]).all(axis=1).sum()) == 100


def test_sample_positions_bit_exact_and_not_flattened(sample_data, sample_atoms):
    pos = sample_data["structures/positions"]
    assert pos.ndim == 2 and pos.shape[1] == 3
    sp = sample_data["structures/atomic_numbers_splits"]
    for i in (0, 1, 150, 299):
        a = sample_atoms[i]
        H.assert_same_bits(pos[sp[i]:sp[i + 1]], a.positions, f"positions of {i}")
        assert np.array_equal(sample_data["structures/atomic_numbers"][sp[i]:sp[i + 1]],
                              a.numbers)


def test_sample_energy_exact_forces_float32(sample_data, sample_atoms):
    e = sample_data["labels/energy"]
    f = sample_data["labels/forces"]
    sp = sample_data["structures/atomic_numbers_splits"]
    for i, a in enumerate(sample_atoms):
        assert e[i] == a.get_potential_energy()
        assert f.dtype == np.float32
        assert np.array_equal(f[sp[i]:sp[i + 1]], a.get_forces().astype(np.float32))


def test_sample_info(sample_data, sample_atoms):
    check_info(sample_data, sample_atoms)
    got = H.info_objects(sample_data["labels/info"])
    assert {g["config_type"] for g in got} == {a.info["config_type"] for a in sample_atoms}
    assert all("energy" not in g and "stress" not in g for g in got)


def test_sample_metadata(sample_h5, sample_data):
    meta = H.load_meta(sample_h5)
    n = 300
    assert meta["num_structures"] == n
    assert isinstance(meta["num_structures"], (int, np.integer))
    assert meta["format"] == "h5ml-atoms"
    assert meta["format_version"] == "1.0"
    now = datetime.datetime.now(datetime.timezone.utc)
    for key in ("created", "updated"):
        assert isinstance(meta[key], str), key
        assert ISO8601.match(meta[key]), meta[key]
        t = parse_iso(meta[key])
        assert t.tzinfo is not None
        assert abs((now - t).total_seconds()) < 3600, (key, meta[key], now)
    assert parse_iso(meta["created"]) <= parse_iso(meta["updated"])

    nums = sample_data["structures/atomic_numbers"]
    assert meta["num_atoms"] == len(nums)
    z, counts = np.unique(nums, return_counts=True)
    assert np.array_equal(meta["elements"], z)
    assert np.array_equal(meta["element_counts"], counts)

    e = sample_data["labels/energy"]
    nat = np.diff(sample_data["structures/atomic_numbers_splits"])
    f64 = sample_data["labels/forces"].astype(np.float64)
    assert meta["energy_min"] == e.min()
    assert meta["energy_max"] == e.max()
    assert meta["energy_mean"] == pytest.approx(e.mean(), rel=1e-12, abs=1e-14)
    assert meta["energy_std"] == pytest.approx(e.std(), rel=1e-12, abs=1e-14)
    assert meta["energy_per_atom_mean"] == pytest.approx((e / nat).mean(), rel=1e-12)
    assert meta["energy_per_atom_std"] == pytest.approx((e / nat).std(), rel=1e-12)
    assert meta["force_max"] == pytest.approx(np.linalg.norm(f64, axis=1).max(), rel=1e-12)
    assert meta["force_rms"] == pytest.approx(np.sqrt(np.mean(f64 ** 2)), rel=1e-12)
    assert meta["num_with_stress"] == int(sample_data["labels/stress_mask"].sum())
    assert meta["num_periodic"] == int(sample_data["structures/pbc"].any(axis=1).sum())


def test_metadata_key_values_are_strings(tmp_path, sample_path):
    out = tmp_path / "m.h5"
    pairs = {"source": "mattergen", "version": "1.0", "teacher_model": "orb-v2",
             "note": "two words = and more", "count": "42", "empty": "",
             "config": '{"batch_size": 32, "device": "cuda"}', "unicode": "Å ü ∂"}
    args = []
    for k, v in pairs.items():
        args += ["-m", f"{k}={v}"]
    H.convert(sample_path, out, *args)
    meta = H.load_meta(out)
    for k, v in pairs.items():
        assert k in meta, k
        assert isinstance(meta[k], str), (k, type(meta[k]))
        assert meta[k] == v, (k, meta[k], v)
    assert meta["num_structures"] == 300


# ---------------------------------------------------------------- ASE-generated files


@pytest.mark.parametrize("fixed_seed", [None, 12345])
def test_ase_generated_files(tmp_path, seed, fixed_seed):
    s = seed if fixed_seed is None else fixed_seed
    print(f"frames from seed {s}")
    rng = np.random.default_rng(s)
    frames = H.random_atoms_list(rng, 40)
    src = tmp_path / "gen.xyz"
    ase.io.write(str(src), frames, format="extxyz")
    back = ase.io.read(str(src), index=":", format="extxyz")  # the values of the text
    out = tmp_path / "gen.h5"
    H.convert(src, out)
    m = sum(len(a) for a in back)
    check_schema(out, len(back), m)
    data = H.load_h5(out)
    check_against_ase(data, back, f"seed {s}: ")
    check_info(data, back, f"seed {s}: ")
    # the generator's own intent survives: triclinic cells, mixed pbc
    cells = data["structures/cells"]
    assert np.any(cells[:, 1, 0] != 0) and np.any(cells[:, 0, 1] != 0)
    pbc = data["structures/pbc"]
    assert pbc.any(axis=1).sum() > 0 and (~pbc.all(axis=1) & pbc.any(axis=1)).sum() > 0
    code, out_, err = H.run("verify", out)
    assert code == 0, out_ + err


def test_stress_given_as_nine_values(tmp_path, sample_frame_texts):
    """ASE writes stress as 9 numbers (Fortran order of a 3x3); a non-symmetric tensor shows
    which elements become yz, xz, xy -- the ones ASE itself picks."""
    fr = sample_frame_texts[0]
    lines = fr.splitlines(True)
    lines[1] = re.sub(r'stress="[^"]*"', 'stress="1 2 3 4 5 6 7 8 9"', lines[1])
    src = tmp_path / "s9.xyz"
    src.write_text("".join(lines) + fr)
    out = tmp_path / "s9.h5"
    H.convert(src, out)
    data = H.load_h5(out)
    a = ase.io.read(str(src), index=0)
    assert np.array_equal(data["labels/stress"][0], a.get_stress())
    assert np.array_equal(data["labels/stress"][0], [1, 5, 9, 8, 7, 4])
    assert np.array_equal(data["labels/stress"][1], ase.io.read(str(src), index=1).get_stress())
    assert data["labels/stress_mask"].tolist() == [True, True]


def test_stress_given_as_six_values(tmp_path, sample_frame_texts):
    """6 values are Voigt xx yy zz yz xz xy as they stand (ASE 3.22 refuses them)."""
    fr = sample_frame_texts[0]
    lines = fr.splitlines(True)
    lines[1] = re.sub(r'stress="[^"]*"', 'stress="0.5 -1.25 2 3.5e-3 -4 6"', lines[1])
    src = tmp_path / "s6.xyz"
    src.write_text("".join(lines))
    out = tmp_path / "s6.h5"
    H.convert(src, out)
    data = H.load_h5(out)
    assert np.array_equal(data["labels/stress"][0], [0.5, -1.25, 2, 3.5e-3, -4, 6])
    assert data["labels/stress_mask"].tolist() == [True]


def test_lattice_without_pbc_is_periodic_and_pbc_mixed(tmp_path):
    text = (
        "1\n"
        'Lattice="3 0 0 0.5 4 0 0.25 0.125 5" Properties=species:S:1:pos:R:3:forces:R:3 '
        "energy=-1.5\n"
        "Cu 0.1 0.2 0.3 1 2 3\n"
        "1\n"
        'Lattice="3 0 0 0.5 4 0 0.25 0.125 5" Properties=species:S:1:pos:R:3:forces:R:3 '
        'energy=-2.5 pbc="T T F"\n'
        "Cu 0.1 0.2 0.3 1 2 3\n"
    )
    src = tmp_path / "l.xyz"
    src.write_text(text)
    out = tmp_path / "l.h5"
    H.convert(src, out)
    data = H.load_h5(out)
    frames = ase.io.read(str(src), index=":")
    assert data["structures/pbc"].tolist() == [[True, True, True], [True, True, False]]
    assert data["structures/pbc"].tolist() == [a.pbc.tolist() for a in frames]
    for i in range(2):
        assert np.array_equal(data["structures/cells"][i], frames[i].cell[:])
    assert np.array_equal(data["structures/cells"][0],
                          [[3, 0, 0], [0.5, 4, 0], [0.25, 0.125, 5]])


# ---------------------------------------------------------------------- compression

COMPRESSIONS = {
    "default": [],
    "gzip1": ["-c", "gzip", "--level", "1"],
    "gzip9": ["-c", "gzip", "--level", "9"],
    "lzf": ["-c", "lzf"],
    "none": ["-c", "none"],
    "gzip-noshuffle": ["--no-shuffle"],
    "lzf-noshuffle": ["-c", "lzf", "--no-shuffle"],
}


@pytest.fixture(scope="module")
def compressed_files(sample_path, tmp_path_factory, h5ml):
    d = tmp_path_factory.mktemp("compression")
    out = {}
    for name, opts in COMPRESSIONS.items():
        p = d / f"{name}.h5"
        H.convert(sample_path, p, *opts)
        out[name] = p
    return out


def filter_ids(ds):
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
def test_compression_values_identical(compressed_files, sample_data, name):
    data = H.load_h5(compressed_files[name])
    H.assert_files_equal(data, sample_data)
    code, out, err = H.run("diff", compressed_files[name], compressed_files["default"])
    assert code == 0, out + err


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
def test_compression_settings_seen_by_h5py(compressed_files, name):
    want = {
        "default": ("gzip", 4, True), "gzip1": ("gzip", 1, True), "gzip9": ("gzip", 9, True),
        "lzf": ("lzf", None, True), "none": (None, None, False),
        "gzip-noshuffle": ("gzip", 4, False), "lzf-noshuffle": ("lzf", None, False),
    }[name]
    with h5py.File(compressed_files[name], "r") as f:
        if "labels/info" in f:
            # vlen strings: h5ml compresses their heap references with gzip only; with
            # another setting they may stay unfiltered, but never get a different filter
            ids = filter_ids(f["labels/info"])
            assert f["labels/info"].compression in (want[0], None), ids
        for dsname in H.SCHEMA:
            ds = f[dsname]
            assert ds.chunks is not None, dsname
            assert ds.maxshape[0] is None, dsname
            assert ds.compression == want[0], (dsname, ds.compression)
            if want[0] == "gzip":
                assert ds.compression_opts == want[1], (dsname, ds.compression_opts)
            assert bool(ds.shuffle) == want[2], (dsname, ds.shuffle)
            ids = filter_ids(ds)
            if want[0] == "lzf":
                assert 32000 in ids, (dsname, ids)
            if want[0] == "gzip":
                assert h5py.h5z.FILTER_DEFLATE in ids, (dsname, ids)
            if want[0] is None:
                assert ids == [], (dsname, ids)
            assert (h5py.h5z.FILTER_SHUFFLE in ids) == want[2], (dsname, ids)
        meta = dict(f["metadata"].attrs)
    assert meta["compression"] == (want[0] or "none")
    assert bool(meta["shuffle"]) == want[2]


def test_compression_sizes_ordered(compressed_files):
    size = {k: p.stat().st_size for k, p in compressed_files.items()}
    assert size["none"] > size["lzf"] > size["default"], size
    assert size["gzip9"] <= size["gzip1"], size
