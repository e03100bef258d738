"""The h5ml command line: help, usage errors, diff, merge, the original converter's
option spellings."""
import json
import re
import shutil

import h5py
import numpy as np
import pytest

import h5ml_helpers as H

COMMANDS = ["convert", "inspect", "verify", "diff", "export", "merge", "repair", "version"]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_main_help(flag):
    code, out, err = H.run(flag)
    assert code == 0, err
    assert out.lower().startswith("usage: h5ml")
    for c in COMMANDS:
        assert re.search(rf"^\s+{c}\b", out, re.M), c


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_help(cmd):
    code, out, err = H.run(cmd, "--help")
    assert code == 0, (code, err)
    assert re.match(rf"usage: h5ml {cmd}\b", out), f"h5ml {cmd} --help printed:\n{out}"
    assert err == ""


def test_version_matches_metadata(sample_h5):
    code, out, err = H.run("version")
    assert code == 0
    m = re.fullmatch(r"h5ml (\d+\.\d+\.\d+)\n", out)
    assert m, out
    assert H.load_meta(sample_h5)["h5ml_version"] == m.group(1)


def one_line_usage_error(args, cwd=None):
    code, out, err = H.run(*args, cwd=cwd)
    assert code == 2, (args, code, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"h5ml {' '.join(map(str, args))}: stderr has {len(lines)} " \
                            f"lines, expected one:\n{err}"
    assert out == "", out
    return lines[0]


def test_no_command():
    code, out, err = H.run()
    assert code == 2
    assert "usage" in (out + err).lower()


def test_unknown_command(tmp_path):
    line = one_line_usage_error(["bogus"], cwd=tmp_path)
    assert "bogus" in line


BAD_OPTIONS = [
    ["convert", "--bogus"],
    ["convert", "IN.xyz"],                      # no -o
    ["convert", "IN.xyz", "-o"],                # -o without argument
    ["convert", "IN.xyz", "-o", "x.h5", "--level", "0"],
    ["convert", "IN.xyz", "-o", "x.h5", "--level", "ten"],
    ["convert", "IN.xyz", "-o", "x.h5", "-c", "zstd"],
    ["convert", "IN.xyz", "-o", "x.h5", "-f", "pdb"],
    ["convert", "IN.xyz", "-o", "x.h5", "-m", "novalue"],
    ["convert", "IN.xyz", "-o", "x.h5", "--checkpoint", "soon"],
    ["inspect"],
    ["inspect", "a.h5", "b.h5"],
    ["verify", "--xx", "a.h5"],
    ["diff", "a.h5"],
    ["export", "a.h5"],                         # no -o
    ["export", "a.h5", "-o", "x.xyz", "--range", "abc"],
    ["merge", "a.h5", "-o", "c.h5"],
    ["merge", "a.h5", "b.h5"],                  # no -o
    ["repair"],
    ["repair", "a.h5", "b.h5"],
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=[" ".join(a) for a in BAD_OPTIONS])
def test_bad_options(args, tmp_path):
    line = one_line_usage_error(args, cwd=tmp_path)
    assert not any(tmp_path.iterdir())
    assert len(line) < 300


def test_bad_option_writes_nothing(tmp_path, sample_path):
    out = tmp_path / "x.h5"
    code, o, e = H.run("convert", sample_path, "-o", out, "--level", "0")
    assert code == 2 and not out.exists()


def test_diff_one_energy(tmp_path, sample_h5):
    other = tmp_path / "other.h5"
    shutil.copy(sample_h5, other)
    with h5py.File(other, "r+") as f:
        f["labels/energy"][17] = f["labels/energy"][17] + 0.25
    code, out, err = H.run("diff", sample_h5, other)
    assert code == 1, (code, out, err)
    text = out + err
    assert "labels/energy" in text, text
    assert re.search(r"labels/energy\[17\]", text), text
    code, out, err = H.run("diff", sample_h5, sample_h5)
    assert code == 0, out + err


def test_diff_one_force_bit(tmp_path, sample_h5):
    other = tmp_path / "other.h5"
    shutil.copy(sample_h5, other)
    with h5py.File(other, "r+") as f:
        v = f["labels/forces"][1234]
        v[2] = np.nextafter(v[2], np.float32(np.inf))
        f["labels/forces"][1234] = v
    code, out, err = H.run("diff", sample_h5, other)
    assert code == 1, (code, out, err)
    assert "labels/forces" in out + err


def test_diff_different_lengths(tmp_path, sample_frame_texts, sample_h5):
    p = tmp_path / "part.xyz"
    p.write_text("".join(sample_frame_texts[:299]))
    H.convert(p, tmp_path / "part.h5")
    code, out, err = H.run("diff", sample_h5, tmp_path / "part.h5")
    assert code == 1, (code, out, err)


def test_diff_missing_file(tmp_path, sample_h5):
    code, out, err = H.run("diff", sample_h5, tmp_path / "nope.h5")
    assert code == 2
    assert "nope.h5" in err


@pytest.mark.parametrize("cuts", [[0, 100, 300], [0, 1, 150, 300]])
def test_merge_equals_concatenated_convert(tmp_path, sample_frame_texts, sample_h5, cuts):
    parts = []
    for k in range(len(cuts) - 1):
        p = tmp_path / f"p{k}.xyz"
        p.write_text("".join(sample_frame_texts[cuts[k]:cuts[k + 1]]))
        H.convert(p, tmp_path / f"p{k}.h5")
        parts.append(tmp_path / f"p{k}.h5")
    out = tmp_path / "merged.h5"
    code, o, e = H.run("merge", *parts, "-o", out)
    assert code == 0, o + e
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e
    H.assert_files_equal(H.load_h5(out), H.load_h5(sample_h5))
    code, o, e = H.run("verify", out)
    assert code == 0, o + e
    assert H.load_meta(out)["num_structures"] == 300


def test_merge_output_must_not_be_input(tmp_path, sample_h5):
    a = tmp_path / "a.h5"
    shutil.copy(sample_h5, a)
    code, o, e = H.run("merge", a, sample_h5, "-o", a)
    assert code == 2
    code, o, e = H.run("diff", a, sample_h5)
    assert code == 0, "merge damaged its input"


def test_merge_compression_option(tmp_path, sample_frame_texts, sample_h5):
    (tmp_path / "a.xyz").write_text("".join(sample_frame_texts[:50]))
    (tmp_path / "b.xyz").write_text("".join(sample_frame_texts[50:]))
    H.convert(tmp_path / "a.xyz", tmp_path / "a.h5")
    H.convert(tmp_path / "b.xyz", tmp_path / "b.h5", "-c", "lzf")
    code, o, e = H.run("merge", tmp_path / "a.h5", tmp_path / "b.h5", "-o",
                       tmp_path / "c.h5", "-c", "lzf", "-q")
    assert code == 0, e
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["labels/forces"].compression == "lzf"
    code, o, e = H.run("diff", tmp_path / "c.h5", sample_h5)
    assert code == 0, o + e


def test_original_spellings(tmp_path, sample_path, sample_h5):
    out = tmp_path / "orig.h5"
    code, o, e = H.run("convert", "-i", sample_path, "-o", out, "-f", "xyz",
                       "--compression-level", "5", "-m", "source=mattergen",
                       "-m", "version=1.0")
    assert code == 0, e
    with h5py.File(out, "r") as f:
        assert f["labels/forces"].compression == "gzip"
        assert f["labels/forces"].compression_opts == 5
        assert f["metadata"].attrs["source"] == "mattergen"
        assert f["metadata"].attrs["version"] == "1.0"
        assert f["metadata"].attrs["compression_level"] == 5
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e


@pytest.mark.parametrize("opts", [["-f", "extxyz"], ["-f", "auto"], ["--format", "xyz"],
                                  ["-c", "lzf", "-v"], ["--compression", "none"],
                                  ["--input"], ["--output"], ["-a"]])
def test_original_spellings_variants(tmp_path, sample_path, sample_h5, opts):
    out = tmp_path / "v.h5"
    if opts == ["--input"]:
        args = ["convert", "--input", sample_path, "-o", out]
    elif opts == ["--output"]:
        args = ["convert", sample_path, "--output", out]
    else:
        args = ["convert", sample_path, "-o", out, *opts]
    code, o, e = H.run(*args)
    assert code == 0, e
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e


def test_convert_from_stdin(tmp_path, sample_text, sample_h5):
    out = tmp_path / "stdin.h5"
    code, o, e = H.run("convert", "-i", "-", "-o", out, "-q", input=sample_text)
    assert code == 0, e
    code, o, e = H.run("diff", out, sample_h5)
    assert code == 0, o + e


def test_inspect_json_is_json(sample_h5, sample_data):
    code, out, err = H.run("inspect", sample_h5, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["structures"] == 300
    assert s["atoms"] == len(sample_data["structures/atomic_numbers"])
    assert s["metadata"]["num_structures"] == 300


def test_verify_quiet(sample_h5, tmp_path):
    code, out, err = H.run("verify", sample_h5, "-q")
    assert code == 0 and out == "" and err == ""
    bad = tmp_path / "bad.h5"
    shutil.copy(sample_h5, bad)
    with h5py.File(bad, "r+") as f:
        f["labels/structure_indices"][5] = 77
    code, out, err = H.run("verify", bad, "-q")
    assert code == 1 and out == "" and err == ""
    code, out, err = H.run("verify", bad)
    assert code == 1 and "structure_indices" in out + err
