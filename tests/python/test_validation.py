"""Validation through the CLI on extended XYZ input: each rejected structure gives exit 2,
an error line naming file, frame and line with the SPEC message, and nothing written (a
new output does not exist, an --append target is unchanged). Plausibility problems only
warn."""
import re
import shutil

import numpy as np
import pytest

import h5ml_helpers as H


def set_key(frame, key, value):
    """Replaces key=... (quoted or not) on the comment line of a frame text."""
    lines = frame.splitlines(True)
    new, n = re.subn(rf'(?<=\s){key}=("[^"]*"|\S+)', f"{key}={value}", " " + lines[1])
    assert n == 1, (key, lines[1])
    lines[1] = new[1:]
    return "".join(lines)


def set_atom_column(frame, atom, col, value):
    lines = frame.splitlines(True)
    parts = lines[2 + atom].split()
    parts[col] = value
    lines[2 + atom] = " ".join(parts) + "\n"
    return "".join(lines)


# (id, mutation of the second frame, message that must appear)
CASES = [
    ("energy-nan", lambda f: set_key(f, "energy", "nan"), "Invalid energy: nan"),
    ("energy-inf", lambda f: set_key(f, "energy", "inf"), "Invalid energy: inf"),
    ("energy-minus-inf", lambda f: set_key(f, "energy", "-inf"), "Invalid energy: -inf"),
    ("force-nan", lambda f: set_atom_column(f, 5, 5, "nan"), "Forces contain NaN"),
    ("force-inf", lambda f: set_atom_column(f, 7, 4, "inf"), "Forces contain Inf"),
    ("force-minus-inf", lambda f: set_atom_column(f, 0, 6, "-inf"), "Forces contain Inf"),
    ("stress-nan", lambda f: set_key(f, "stress", '"0.1 0 0 0 nan 0 0 0 0.1"'),
     "Stress contains NaN"),
    ("stress-inf", lambda f: set_key(f, "stress", '"0.1 0 0 0 0.1 0 0 0 inf"'),
     "Stress contains Inf"),
    ("stress-5-values", lambda f: set_key(f, "stress", '"1 2 3 4 5"'), "stress"),
]


@pytest.fixture
def bad_input(tmp_path, sample_frame_texts, request):
    """Two frames: a good periodic one and a copy with the case's defect."""
    name, mutate, msg = request.param
    good = sample_frame_texts[0]
    bad = mutate(good)
    assert bad != good
    path = tmp_path / f"{name}.xyz"
    path.write_text(good + bad)
    first, last = 35, 34 + bad.count("\n")
    return path, msg, (first, last)


def check_error(err, path, msg, lines, frame=1):
    located = H.error_lines(err)
    assert len(located) == 1, f"expected one located error line, got:\n{err}"
    line = located[0]
    assert str(path) in line, line
    m = H.ERROR_LINE.search(line)
    assert int(m.group(1)) == frame, line
    assert lines[0] <= int(m.group(2)) <= lines[1], (line, lines)
    if msg == "stress":
        assert "stress" in line.lower(), line
    else:
        assert msg in line, line
        # the message is followed by nothing that changes its meaning ("nan" vs "nanx")
        assert re.search(re.escape(msg) + r"(\b|$)", line), line


@pytest.mark.parametrize("bad_input", CASES, indirect=True, ids=[c[0] for c in CASES])
def test_rejected_new_output(tmp_path, bad_input):
    path, msg, lines = bad_input
    out = tmp_path / "new.h5"
    code, stdout, err = H.run("convert", path, "-o", out)
    assert code == 2, (code, err)
    check_error(err, path, msg, lines)
    assert not out.exists(), "a rejected input left an output file"


@pytest.mark.parametrize("bad_input", CASES, indirect=True, ids=[c[0] for c in CASES])
def test_rejected_append_leaves_target(tmp_path, bad_input, sample_h5):
    path, msg, lines = bad_input
    target = tmp_path / "target.h5"
    shutil.copy(sample_h5, target)
    before = tmp_path / "before.h5"
    shutil.copy(sample_h5, before)
    meta_before = H.load_meta(target)
    code, stdout, err = H.run("convert", path, "-o", target, "--append")
    assert code == 2, (code, err)
    check_error(err, path, msg, lines)
    code, o, e = H.run("diff", before, target)
    assert code == 0, o + e
    H.assert_files_equal(H.load_h5(target), H.load_h5(before))
    meta = H.load_meta(target)
    assert meta["num_structures"] == meta_before["num_structures"] == 300
    code, o, e = H.run("verify", target)
    assert code == 0, o + e


def test_rejected_overwrite_keeps_existing_file(tmp_path, sample_frame_texts, sample_h5):
    """convert BAD -o EXISTING (no --append) fails; the user's existing file must not be
    destroyed by a command that reports "nothing ... was written"."""
    target = tmp_path / "existing.h5"
    shutil.copy(sample_h5, target)
    src = tmp_path / "bad.xyz"
    src.write_text(sample_frame_texts[0] + set_key(sample_frame_texts[0], "energy", "nan"))
    code, o, err = H.run("convert", src, "-o", target)
    assert code == 2, err
    check_error(err, src, "Invalid energy: nan", (35, 68))
    assert target.exists(), "the failed conversion deleted the existing output file"
    code, o, e = H.run("diff", sample_h5, target)
    assert code == 0, o + e


def test_rejected_in_large_append_leaves_target(tmp_path, sample_text, sample_frame_texts,
                                                sample_h5):
    """The bad frame comes after many good ones (several chunks' worth); still nothing."""
    target = tmp_path / "t.h5"
    shutil.copy(sample_h5, target)
    bad = set_key(sample_frame_texts[3], "energy", "nan")
    src = tmp_path / "late.xyz"
    src.write_text(sample_text * 20 + bad)
    code, o, err = H.run("convert", src, "-o", target, "--append", "--chunk-atoms", "1024",
                         "--checkpoint", "0.01")
    assert code == 2, err
    check_error(err, src, "Invalid energy: nan", (1, 10**9), frame=6000)
    code, o, e = H.run("diff", sample_h5, target)
    assert code == 0, o + e
    code, o, e = H.run("verify", target)
    assert code == 0, o + e
    new = tmp_path / "n.h5"
    code, o, err = H.run("convert", src, "-o", new, "--checkpoint", "0.01")
    assert code == 2 and not new.exists()


def test_no_validate_accepts_nan_force(tmp_path, sample_frame_texts):
    good = sample_frame_texts[0]
    bad = set_atom_column(good, 5, 5, "nan")
    src = tmp_path / "fnan.xyz"
    src.write_text(good + bad)
    out = tmp_path / "fnan.h5"
    code, o, err = H.run("convert", src, "-o", out, "--no-validate")
    assert code == 0, err
    data = H.load_h5(out)
    n0 = good.count("\n") - 2
    f = data["labels/forces"]
    assert np.isnan(f[n0 + 5, 1])  # column 5 of the atom line = f_y
    assert np.isfinite(np.delete(f.ravel(), (n0 + 5) * 3 + 1)).all()
    assert len(data["labels/energy"]) == 2
    # the file is readable; verify flags the non-finite force (exit 1, not a crash)
    code, o, e = H.run("verify", out)
    assert code == 1, o + e
    assert "forces" in (o + e)


def test_verify_nan_energy_reports_consistent_problems(tmp_path, sample_frame_texts):
    """A lone NaN energy accepted with --no-validate: verify flags it; every statistics
    problem it reports must be a real disagreement (not "X is A but the data gives A")."""
    src = tmp_path / "enan.xyz"
    src.write_text(set_key(sample_frame_texts[1], "energy", "nan"))
    out = tmp_path / "enan.h5"
    code, o, err = H.run("convert", src, "-o", out, "--no-validate", "-q")
    assert code == 0, err
    code, o, e = H.run("verify", out)
    assert code == 1, o + e
    assert "labels/energy[0]" in o + e
    for m in re.finditer(r"(\S+) is (\S+) but the data gives (\S+)", o + e):
        assert m.group(2) != m.group(3), f"contradictory verify report: {m.group(0)!r}"


# ----------------------------------------------------------------- plausibility warnings

CELL = '"5 0 0 0 5 0 0 0 5"'
SKEWED = '"5 0 0 2.5 4.330127018922193 0 0 0 5"'


def one_structure(tmp_path, name, lattice, pbc, atoms, energy="1.0"):
    lat = f"Lattice={lattice} " if lattice else ""
    lines = [str(len(atoms)),
             f"{lat}Properties=species:S:1:pos:R:3:forces:R:3 energy={energy} pbc=\"{pbc}\""]
    for sym, pos, force in atoms:
        lines.append(f"{sym} {pos[0]} {pos[1]} {pos[2]} {force[0]} {force[1]} {force[2]}")
    p = tmp_path / f"{name}.xyz"
    p.write_text("\n".join(lines) + "\n")
    return p


def warnings_of(err):
    return [l for l in err.splitlines() if "warning" in l.lower()]


def convert_ok(src, out, *opts):
    code, o, err = H.run("convert", src, "-o", out, *opts)
    assert code == 0, err
    assert len(H.load_h5(out)["labels/energy"]) == 1
    return err


def test_close_atoms_across_periodic_boundary_warns(tmp_path):
    # 4.7 A apart directly, 0.3 A through the x boundary
    src = one_structure(tmp_path, "pbc", CELL, "T T T",
                        [("Cu", (0.1, 2.5, 2.5), (0, 0, 0)), ("Cu", (4.8, 2.5, 2.5), (0, 0, 0))])
    err = convert_ok(src, tmp_path / "pbc.h5")
    w = warnings_of(err)
    assert len(w) >= 1, err
    assert any("0.5" in l and "0.3" in l for l in w), w


def test_close_atoms_only_through_nonperiodic_direction_no_warning(tmp_path):
    # same atoms but x is not periodic: 4.7 A apart, nothing to warn about
    src = one_structure(tmp_path, "nopbc", CELL, "F T T",
                        [("Cu", (0.1, 2.5, 2.5), (0, 0, 0)), ("Cu", (4.8, 2.5, 2.5), (0, 0, 0))])
    err = convert_ok(src, tmp_path / "nopbc.h5")
    assert warnings_of(err) == [], err


def test_close_atoms_through_skewed_cell_image_warns(tmp_path):
    # triclinic cell a=(5,0,0), b=(2.5,4.33,0): fractional (0.02,0.02) and (0.98,0.98) are
    # 0.35 A apart through the image shifted by a+b, far apart directly
    a = np.array([5, 0, 0])
    b = np.array([2.5, 4.330127018922193, 0])
    p1 = 0.02 * a + 0.02 * b + [0, 0, 2.5]
    p2 = 0.98 * a + 0.98 * b + [0, 0, 2.5]
    src = one_structure(tmp_path, "skew", SKEWED, "T T T",
                        [("Cu", p1, (0, 0, 0)), ("Cu", p2, (0, 0, 0))])
    err = convert_ok(src, tmp_path / "skew.h5")
    assert len(warnings_of(err)) >= 1, err
    # without pbc the same atoms are 7.6 A apart: no warning
    src = one_structure(tmp_path, "skew0", SKEWED, "F F F",
                        [("Cu", p1, (0, 0, 0)), ("Cu", p2, (0, 0, 0))])
    err = convert_ok(src, tmp_path / "skew0.h5")
    assert warnings_of(err) == [], err


def test_close_atoms_direct_warns(tmp_path):
    src = one_structure(tmp_path, "mol", None, "F F F",
                        [("H", (0, 0, 0), (0, 0, 0)), ("H", (0, 0, 0.3), (0, 0, 0)),
                         ("O", (0, 2, 0), (0, 0, 0))])
    err = convert_ok(src, tmp_path / "mol.h5")
    w = warnings_of(err)
    assert len(w) == 1, err
    assert "0.300" in w[0] or "0.3 " in w[0], w


def test_normal_distances_no_warning(tmp_path):
    src = one_structure(tmp_path, "h2", None, "F F F",
                        [("H", (0, 0, 0), (1, 0, 0)), ("H", (0, 0, 0.74), (-1, 0, 0))])
    err = convert_ok(src, tmp_path / "h2.h5")
    assert warnings_of(err) == [], err


def test_large_force_warns_and_is_stored(tmp_path):
    src = one_structure(tmp_path, "bigf", None, "F F F",
                        [("H", (0, 0, 0), (60, 0, 0)), ("H", (0, 0, 0.74), (-30, -40, 0.5))])
    out = tmp_path / "bigf.h5"
    err = convert_ok(src, out)
    w = warnings_of(err)
    assert len(w) >= 1, err
    assert any("50" in l for l in w), w
    f = H.load_h5(out)["labels/forces"]
    assert f[0, 0] == np.float32(60.0) and f[1, 1] == np.float32(-40.0)


def test_force_of_exactly_50_no_warning(tmp_path):
    src = one_structure(tmp_path, "f50", None, "F F F",
                        [("H", (0, 0, 0), (30, 40, 0)), ("H", (0, 0, 0.74), (0, 0, -49.9))])
    err = convert_ok(src, tmp_path / "f50.h5")
    assert warnings_of(err) == [], err


def test_quiet_and_no_validate_silence_warnings(tmp_path):
    src = one_structure(tmp_path, "w", None, "F F F",
                        [("H", (0, 0, 0), (60, 0, 0)), ("H", (0, 0, 0.2), (0, 0, 0))])
    err = convert_ok(src, tmp_path / "a.h5")
    assert len(warnings_of(err)) >= 2, err
    err = convert_ok(src, tmp_path / "b.h5", "-q")
    assert err.strip() == "", err
    err = convert_ok(src, tmp_path / "c.h5", "--no-validate")
    assert warnings_of(err) == [], err
