"""Malformed inputs: extended XYZ errors (exit 2, file/frame/line named, nothing written)
and malformed HDF5 files (verify/inspect/export fail with a message, never crash)."""
import re
import shutil
import struct

import h5py
import numpy as np
import pytest

import h5ml_helpers as H

# ------------------------------------------------------------------- extended XYZ


def edit_line(frame, idx, fn):
    lines = frame.splitlines(True)
    lines[idx] = fn(lines[idx])
    return "".join(lines)


def atom_field(frame, atom, field, value):
    def fn(line):
        parts = line.split()
        parts[field] = value
        return " ".join(parts) + "\n"
    return edit_line(frame, 2 + atom, fn)


# The good frame 0 (sample frame 0: 32 atoms, lines 1-34) is followed by a bad frame 1 at
# line 35.  Each case: (id, bad text after the good frame, expected line or (lo, hi)).
def xyz_cases(f0):
    n = int(f0.splitlines()[0])
    end = 34 + n + 2  # last line of a complete frame 1
    return [
        ("count-not-integer", edit_line(f0, 0, lambda l: "3x\n"), 35),
        ("count-float", edit_line(f0, 0, lambda l: "32.5\n"), 35),
        ("count-negative", edit_line(f0, 0, lambda l: "-4\n"), 35),
        ("truncated-at-eof", "".join(f0.splitlines(True)[:20]), (35, end + 1)),
        ("truncated-then-frame", "".join(f0.splitlines(True)[:20]) + f0, (35, end + 40)),
        ("bad-number-position", atom_field(f0, 7, 1, "1.2.3"), 44),
        ("bad-number-position-z", atom_field(f0, 3, 3, "abc"), 40),
        ("bad-number-force", atom_field(f0, 9, 5, "0x1p3q"), 46),
        ("unknown-element", atom_field(f0, 7, 0, "Qq"), 44),
        ("too-few-columns", edit_line(f0, 2 + 4, lambda l: " ".join(l.split()[:5]) + "\n"),
         41),
        ("lattice-8-numbers",
         edit_line(f0, 1, lambda l: re.sub(r'Lattice="[^"]*"', 'Lattice="1 0 0 0 1 0 0 0"', l)),
         36),
        ("lattice-not-numbers",
         edit_line(f0, 1, lambda l: re.sub(r'Lattice="[^"]*"',
                                           'Lattice="1 0 0 0 1 0 0 0 x"', l)), 36),
        ("properties-without-pos",
         edit_line(f0, 1, lambda l: l.replace("species:S:1:pos:R:3:", "species:S:1:")), 36),
        ("unterminated-quote",
         edit_line(f0, 1, lambda l: l.replace("config_type=bulk", 'config_type="bulk')), 36),
    ]


CASE_IDS = [c[0] for c in xyz_cases("32\nc\n" + "H 0 0 0 0 0 0\n" * 32)]


@pytest.fixture(params=CASE_IDS)
def xyz_case(request, sample_frame_texts, tmp_path):
    f0 = sample_frame_texts[0]
    name, bad, where = {c[0]: c for c in xyz_cases(f0)}[request.param]
    path = tmp_path / f"{name}.xyz"
    path.write_text(f0 + bad)
    lo, hi = (where, where) if isinstance(where, int) else where
    return path, lo, hi


def check_located_error(err, path, lo, hi, frame=1):
    located = H.error_lines(err)
    assert len(located) == 1, f"expected one located error line:\n{err}"
    line = located[0]
    assert str(path) in line, line
    m = H.ERROR_LINE.search(line)
    assert int(m.group(1)) == frame, line
    assert lo <= int(m.group(2)) <= hi, (line, lo, hi)


def test_malformed_xyz_new_output(xyz_case, tmp_path):
    path, lo, hi = xyz_case
    out = tmp_path / "out.h5"
    code, o, err = H.run("convert", path, "-o", out)
    assert code == 2, (code, err)
    check_located_error(err, path, lo, hi)
    assert not out.exists()


def test_malformed_xyz_append_unchanged(xyz_case, tmp_path, sample_h5):
    path, lo, hi = xyz_case
    target = tmp_path / "t.h5"
    shutil.copy(sample_h5, target)
    code, o, err = H.run("convert", path, "-o", target, "--append")
    assert code == 2, (code, err)
    check_located_error(err, path, lo, hi)
    code, o, e = H.run("diff", sample_h5, target)
    assert code == 0, o + e
    assert H.load_meta(target)["num_structures"] == 300


def test_malformed_first_frame_names_frame_0(tmp_path):
    p = tmp_path / "f0.xyz"
    p.write_text("2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=1\nH 0 0 0 0 0 0\n"
                 "H 0 0 zz 0 0 0\n")
    code, o, err = H.run("convert", p, "-o", tmp_path / "o.h5")
    assert code == 2
    check_located_error(err, p, 4, 4, frame=0)
    assert not (tmp_path / "o.h5").exists()


def test_missing_input_file(tmp_path):
    code, o, err = H.run("convert", tmp_path / "nope.xyz", "-o", tmp_path / "o.h5")
    assert code == 2
    assert "nope.xyz" in err
    assert not (tmp_path / "o.h5").exists()


def test_empty_input_gives_empty_valid_dataset(tmp_path):
    """Decision: an empty XYZ file is a dataset of 0 structures (like the original writer's
    empty `with` block), not an error."""
    p = tmp_path / "empty.xyz"
    p.write_text("")
    out = tmp_path / "empty.h5"
    code, o, err = H.run("convert", p, "-o", out)
    assert code == 0, err
    code, o, e = H.run("verify", out)
    assert code == 0, o + e
    data = H.load_h5(out)
    for name, (dtype, shape) in H.SCHEMA.items():
        dims = {"N": 0, "M": 0, "N+1": 1}
        assert data[name].dtype == dtype, name
        assert data[name].shape == tuple(dims.get(s, s) for s in shape), name
    assert data["structures/atomic_numbers_splits"].tolist() == [0]
    assert data["labels/forces_splits"].tolist() == [0]
    assert H.load_meta(out)["num_structures"] == 0
    code, o, e = H.run("inspect", out, "--json")
    assert code == 0 and '"structures":0' in o.replace(" ", ""), o + e


def test_blank_lines_only_and_trailing_blank_lines(tmp_path, sample_frame_texts):
    p = tmp_path / "blank.xyz"
    p.write_text("\n\n")
    code, o, err = H.run("convert", p, "-o", tmp_path / "b.h5", "-q")
    assert code == 0, err
    assert H.load_meta(tmp_path / "b.h5")["num_structures"] == 0
    p = tmp_path / "trail.xyz"
    p.write_text(sample_frame_texts[0] + "\n\n")
    code, o, err = H.run("convert", p, "-o", tmp_path / "t.h5", "-q")
    assert code == 0, err
    assert H.load_meta(tmp_path / "t.h5")["num_structures"] == 1


# ---------------------------------------------------------------------- HDF5 inputs


@pytest.fixture(scope="module")
def good_arrays(sample_atoms):
    return H.expected_arrays(sample_atoms[:20])


SPLITS = ["structures/atomic_numbers_splits", "labels/forces_splits"]


def with_splits(d, fn):
    x = dict(d)
    s = fn(x["structures/atomic_numbers_splits"].copy())
    x["structures/atomic_numbers_splits"] = s
    x["labels/forces_splits"] = s.copy()
    return x


def changed(d, name, value):
    x = dict(d)
    x[name] = value
    return x


def swap56(s):
    s[5], s[6] = s[6], s[5]
    return s


def plus_end(s):
    s[-1] += 10
    return s


def start1(s):
    s[0] = 1
    return s


def neg(s):
    s[3] = -5
    return s


def huge(s):
    s[3] = 2 ** 62
    return s


def fsplit(d):
    x = dict(d)
    s = x["labels/forces_splits"].copy()
    s[3] += 1
    x["labels/forces_splits"] = s
    return x


# (id, builder of the arrays or a post-processing of the file, words the message names)
SCHEMA_CASES = {
    "splits-not-monotonic": (lambda d: with_splits(d, swap56), ["atomic_numbers_splits"]),
    "splits-past-end": (lambda d: with_splits(d, plus_end), ["atomic_numbers_splits"]),
    "splits-not-from-0": (lambda d: with_splits(d, start1), ["atomic_numbers_splits"]),
    "splits-negative": (lambda d: with_splits(d, neg), ["atomic_numbers_splits"]),
    "splits-huge": (lambda d: with_splits(d, huge), ["atomic_numbers_splits"]),
    "energy-shorter": (lambda d: changed(d, "labels/energy", d["labels/energy"][:-1]),
                       ["energy"]),
    "cells-shorter": (lambda d: changed(d, "structures/cells", d["structures/cells"][:-2]),
                      ["cells"]),
    "forces-shorter": (lambda d: changed(d, "labels/forces", d["labels/forces"][:-1]),
                       ["forces"]),
    "forces-splits-differ": (fsplit, ["forces_splits"]),
    "positions-flattened": (lambda d: changed(d, "structures/positions",
                                              d["structures/positions"].reshape(-1)),
                            ["positions"]),
    "positions-strings": (lambda d: changed(d, "structures/positions",
                                            d["structures/positions"].astype("S8")),
                          ["positions"]),
    "cells-9-columns": (lambda d: changed(d, "structures/cells",
                                          d["structures/cells"].reshape(-1, 9)), ["cells"]),
    "stress-3-columns": (lambda d: changed(d, "labels/stress", d["labels/stress"][:, :3]),
                         ["stress"]),
    "pbc-2-columns": (lambda d: changed(d, "structures/pbc", d["structures/pbc"][:, :2]),
                      ["pbc"]),
    "pbc-float": (lambda d: changed(d, "structures/pbc",
                                    d["structures/pbc"].astype(np.float64)), ["pbc"]),
}


def write_case(path, arrays):
    """write_h5py_dataset, tolerating missing/odd datasets."""
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, maxshape=(None,) + v.shape[1:], chunks=True,
                             compression="gzip")
        f.create_group("metadata").attrs["num_structures"] = len(arrays.get(
            "labels/energy", []))


POST_CASES = {
    # (id): (function(path) making the file, words the message names)
    "missing-forces": (lambda p, d: (write_case(p, {k: v for k, v in d.items()
                                                     if k != "labels/forces"})), ["forces"]),
    "missing-structures-group": (lambda p, d: write_case(
        p, {k: v for k, v in d.items() if not k.startswith("structures/")}),
        ["structures"]),
    "energy-is-a-group": (lambda p, d: _replace_energy(p, d, "group"), ["energy"]),
    "energy-scalar": (lambda p, d: _replace_energy(p, d, "scalar"), ["energy"]),
    "not-hdf5": (lambda p, d: p.write_text("this is not an HDF5 file\n" * 20), ["hdf5"]),
    "zero-bytes": (lambda p, d: p.write_bytes(b""), [""]),
    "truncated-hdf5": (lambda p, d: _truncated(p, d), [""]),
    "nonexistent": (lambda p, d: None, ["no such file"]),
}


def _replace_energy(p, d, how):
    write_case(p, {k: v for k, v in d.items() if k != "labels/energy"})
    with h5py.File(p, "a") as f:
        if how == "group":
            f.create_group("labels/energy")
        else:
            f["labels/energy"] = 1.0


def _truncated(p, d):
    write_case(p, d)
    b = p.read_bytes()
    p.write_bytes(b[:len(b) // 2])


def all_cases():
    return sorted(SCHEMA_CASES) + sorted(POST_CASES)


def make_bad_h5(name, good_arrays, tmp_path):
    path = tmp_path / f"{name}.h5"
    if name in SCHEMA_CASES:
        build, words = SCHEMA_CASES[name]
        write_case(path, build(good_arrays))
    else:
        make, words = POST_CASES[name]
        make(path, good_arrays)
    return path, words


@pytest.fixture(params=all_cases())
def bad_h5(request, good_arrays, tmp_path):
    return make_bad_h5(request.param, good_arrays, tmp_path)


def check_message(text, path, words):
    assert path.name in text, text
    for w in words:
        assert w.lower() in text.lower(), (w, text)


def test_bad_h5_verify(bad_h5):
    path, words = bad_h5
    code, o, e = H.run("verify", path)
    assert code in (1, 2), (code, o, e)
    check_message(o + e, path, words)


def test_bad_h5_inspect(bad_h5):
    path, words = bad_h5
    code, o, e = H.run("inspect", path)
    assert code == 2, (code, o, e)
    check_message(e, path, words)
    code, o, e = H.run("inspect", path, "--json")
    assert code == 2, (code, o, e)


def test_bad_h5_export(bad_h5, tmp_path):
    path, words = bad_h5
    out = tmp_path / "out.xyz"
    code, o, e = H.run("export", path, "-o", out)
    assert code == 2, (code, o, e)
    check_message(e, path, words)
    assert not out.exists() or out.read_text() == "", "export of a bad file left output"


# lengths that disagree are what an interrupted writer (or another tool) can leave: append
# refuses such a file like any other malformed one; `h5ml repair` cuts it back to the
# longest consistent prefix of structures (K kept), after which append works
TAIL_CASES = {"energy-shorter": 19, "cells-shorter": 18, "forces-shorter": 19,
              "splits-past-end": 19}


@pytest.mark.parametrize("name", [c for c in all_cases() if c != "nonexistent"])
def test_bad_h5_append_target_refused(name, good_arrays, tmp_path, sample_frame_texts):
    """Appending to a malformed file fails (exit 2) and leaves the file as it was (a
    missing target is created instead)."""
    path, words = make_bad_h5(name, good_arrays, tmp_path)
    src = tmp_path / "one.xyz"
    src.write_text(sample_frame_texts[0])
    before = path.read_bytes()
    code, o, e = H.run("convert", src, "-o", path, "--append")
    assert code == 2, (code, o, e)
    check_message(e, path, words)
    if name in TAIL_CASES:
        assert "repair" in e, e
    assert path.read_bytes() == before, "a refused append modified the file"


@pytest.mark.parametrize("name", [c for c in all_cases()
                                  if c not in TAIL_CASES and c != "nonexistent"])
def test_repair_refuses_other_damage(name, good_arrays, tmp_path):
    """repair only cuts unequal lengths; any other damage: exit 2, file untouched."""
    path, words = make_bad_h5(name, good_arrays, tmp_path)
    before = path.read_bytes()
    code, o, e = H.run("repair", path)
    assert code == 2, (code, o, e)
    check_message(e, path, words)
    assert path.read_bytes() == before, "a refused repair modified the file"


@pytest.mark.parametrize("name", sorted(TAIL_CASES))
def test_repair_then_append(name, good_arrays, tmp_path, sample_frame_texts, sample_data):
    path = tmp_path / f"{name}.h5"
    write_case(path, SCHEMA_CASES[name][0](good_arrays))
    k = TAIL_CASES[name]
    code, o, e = H.run("repair", path)
    assert code == 0, o + e
    assert re.search(rf"\b{k} structures\b", o + e), o + e
    code, o, e = H.run("verify", path)
    assert code == 0, o + e
    d = H.load_h5(path)
    assert len(d["labels/energy"]) == k
    assert H.load_meta(path)["num_structures"] == k
    m = good_arrays["structures/atomic_numbers_splits"][k]
    for ds in ("structures/cells", "labels/energy", "labels/stress", "structures/pbc",
               "labels/stress_mask", "labels/structure_indices"):
        H.assert_same_bits(d[ds], good_arrays[ds][:k], ds)
    for ds in ("structures/positions", "labels/forces", "structures/atomic_numbers"):
        H.assert_same_bits(d[ds], good_arrays[ds][:m], ds)
    for ds in SPLITS:
        H.assert_same_bits(d[ds], good_arrays[ds][:k + 1], ds)
    # now the file takes an append, continuing indices and splits
    src = tmp_path / "one.xyz"
    src.write_text(sample_frame_texts[0])
    code, o, e = H.run("convert", src, "-o", path, "--append", "-q")
    assert code == 0, e
    code, o, e = H.run("verify", path)
    assert code == 0, o + e
    d = H.load_h5(path)
    n0 = sample_data["structures/atomic_numbers_splits"][1]
    assert np.array_equal(d["labels/structure_indices"], np.arange(k + 1))
    H.assert_same_bits(d["labels/energy"][k:], sample_data["labels/energy"][:1], "energy")
    H.assert_same_bits(d["structures/positions"][m:], sample_data["structures/positions"][:n0],
                       "positions")
    assert d["structures/atomic_numbers_splits"][-1] == m + n0


def test_repair_consistent_files_changes_no_data(tmp_path, sample_h5, good_arrays):
    """A consistent file (h5ml's or h5py's) keeps every dataset; nothing is reported cut."""
    mine = tmp_path / "mine.h5"
    shutil.copy(sample_h5, mine)
    theirs = tmp_path / "theirs.h5"
    H.write_h5py_dataset(theirs, good_arrays)
    for path, ref in ((mine, H.load_h5(sample_h5)), (theirs, H.load_h5(theirs))):
        code, o, e = H.run("repair", path)
        assert code == 0, o + e
        H.assert_files_equal(H.load_h5(path), ref)
        code, o2, e2 = H.run("verify", path)
        assert code == 0, o2 + e2
        assert "nothing to cut" in o + e, f"{path.name}: repair of a consistent file " \
                                          f"printed:\n{o}{e}"


def test_repair_missing_file(tmp_path):
    code, o, e = H.run("repair", tmp_path / "nope.h5")
    assert code == 2 and "nope.h5" in e
    assert not (tmp_path / "nope.h5").exists()


@pytest.mark.parametrize("name", ["energy-shorter", "not-hdf5", "nonexistent"])
def test_merge_with_bad_second_input_leaves_no_output(name, good_arrays, tmp_path,
                                                      sample_h5):
    """merge GOOD BAD -o C fails (exit 2) and leaves no C behind (nothing half-written)."""
    path = tmp_path / f"{name}.h5"
    if name in SCHEMA_CASES:
        write_case(path, SCHEMA_CASES[name][0](good_arrays))
    else:
        POST_CASES[name][0](path, good_arrays)
    out = tmp_path / "m.h5"
    code, o, e = H.run("merge", sample_h5, path, "-o", out)
    assert code == 2, (code, o, e)
    assert path.name in e, e
    assert not out.exists(), "a failed merge left its output file"


def test_merge_with_bad_first_input_leaves_no_output(good_arrays, tmp_path, sample_h5):
    path = tmp_path / "bad.h5"
    write_case(path, SCHEMA_CASES["positions-flattened"][0](good_arrays))
    out = tmp_path / "m.h5"
    code, o, e = H.run("merge", path, sample_h5, "-o", out)
    assert code == 2, (code, o, e)
    assert "positions" in e
    assert not out.exists()


# content errors: the schema holds, verify finds the problem (exit 1); inspect/export
# may work but never crash
CONTENT_CASES = {
    "atomic-number-200": (lambda d: changed(d, "structures/atomic_numbers", np.where(
        np.arange(len(d["structures/atomic_numbers"])) == 4, 200,
        d["structures/atomic_numbers"])), ["atomic_numbers"]),
    "structure-indices-wrong": (lambda d: changed(d, "labels/structure_indices", np.where(
        np.arange(len(d["labels/energy"])) == 4, 99, d["labels/structure_indices"])),
        ["structure_indices"]),
    "stress-where-masked": (lambda d: changed(d, "labels/stress", np.where(
        ~d["labels/stress_mask"][:, None], 1.0, d["labels/stress"])), ["stress"]),
    "energy-nan": (lambda d: changed(d, "labels/energy", np.where(
        np.arange(len(d["labels/energy"])) == 2, np.nan, d["labels/energy"])), ["energy"]),
    "forces-inf": (lambda d: changed(d, "labels/forces", np.where(
        np.arange(len(d["labels/forces"]))[:, None] == 7, np.float32(np.inf),
        d["labels/forces"])), ["forces"]),
}


@pytest.mark.parametrize("name", sorted(CONTENT_CASES) + ["num-structures-wrong"])
def test_content_errors_found_by_verify(name, good_arrays, tmp_path):
    path = tmp_path / f"{name}.h5"
    if name == "num-structures-wrong":
        H.write_h5py_dataset(path, good_arrays)
        with h5py.File(path, "a") as f:
            f["metadata"].attrs["num_structures"] = 7
        words = ["num_structures"]
    else:
        build, words = CONTENT_CASES[name]
        H.write_h5py_dataset(path, build(good_arrays))
    code, o, e = H.run("verify", path)
    assert code == 1, (code, o, e)
    check_message(o + e, path, words)
    for cmd in (["inspect", path], ["export", path, "-o", tmp_path / "x.xyz", "-q"]):
        code, o, e = H.run(*cmd)
        assert 0 <= code <= 2, (cmd, code, e)


# corrupted bytes inside an otherwise valid h5ml file


def test_corrupted_compressed_chunk(tmp_path, sample_h5):
    with h5py.File(sample_h5, "r") as f:
        chunks = {n: f[n].id.get_chunk_info(0) for n in ("labels/forces", "labels/energy",
                                                           "structures/positions")}
    raw = sample_h5.read_bytes()
    for name, ci in chunks.items():
        bad = bytearray(raw)
        mid = ci.byte_offset + ci.size // 2
        bad[mid:mid + 64] = bytes(range(64))
        p = tmp_path / (name.replace("/", "_") + ".h5")
        p.write_bytes(bytes(bad))
        for cmd in (["verify", p], ["export", p, "-o", tmp_path / "x.xyz"]):
            code, o, e = H.run(*cmd)
            assert code in (1, 2), (name, cmd, code, o, e)
            assert name in (o + e), (name, cmd, o, e)
        # inspect reads only what its summary needs (not positions): no crash either way
        code, o, e = H.run("inspect", p)
        assert 0 <= code <= 2, (name, code, e)
        if name != "structures/positions":
            assert code == 2 and name in e, (name, code, e)


@pytest.mark.parametrize("size", [300, 2 ** 40])
def test_corrupted_info_heap_object_size(tmp_path, sample_h5, size):
    """The size field of one /labels/info string in the HDF5 global heap is overwritten.
    h5ml must report an error or read on; it must never die from a signal."""
    raw = bytearray(sample_h5.read_bytes())
    first = raw.find(b'{"config_type"')
    assert first > 8
    assert struct.unpack("<Q", raw[first - 8:first])[0] == len(b'{"config_type":"bulk"}')
    raw[first - 8:first] = struct.pack("<Q", size)
    p = tmp_path / "heap.h5"
    p.write_bytes(bytes(raw))
    for cmd in (["verify", p], ["inspect", p], ["export", p, "-o", tmp_path / "x.xyz"]):
        code, o, e = H.run(*cmd)
        assert 0 <= code <= 2, f"h5ml {cmd[0]} died with signal {-code}" if code < 0 else code
