"""Signal datasets (SPEC section 2): `h5ml signals generate|import|split`, and inspect,
verify and diff on signal files, judged through h5py, scipy and the command line.

Randomized tests print their seed (H5ML_TEST_SEED replays one)."""
import os
import random
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

import h5ml_helpers as H
import signals_helpers as S
from signals_helpers import FAULTS, SPLITS

MODULE_SEED = int(os.environ.get("H5ML_TEST_SEED") or random.SystemRandom().randrange(1, 2**31))
GEN_ARGS = ("--per-class", 5, "--length", 2048, "--rate", 20480)


@pytest.fixture(autouse=True)
def _program_and_seed(h5ml, request):
    print(f"\n[{request.node.name}] module seed = {MODULE_SEED} "
          f"(replay: H5ML_TEST_SEED={MODULE_SEED})")


def generate(path, seed, *opts, args=GEN_ARGS):
    S.run_ok("signals", "generate", "-o", path, *args, "--seed", seed, *opts)
    return path


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory):
    """55 generated signals (5 per class) of 2048 samples at 20480 Hz, gzip (default)."""
    return generate(tmp_path_factory.mktemp("gen") / "gen.h5", MODULE_SEED)


@pytest.fixture(scope="module")
def gen_data(gen_file):
    return S.check_split_schema(gen_file, 2048, 55, metadata=True, compression="gzip",
                                ratios=S.DEFAULT_RATIOS, seed=MODULE_SEED, stratified=True)


def all_labels(d):
    return np.concatenate([d[s]["labels"] for s in SPLITS])


# ---- 1. generate ----------------------------------------------------------------------------

def test_generate_schema_and_attributes(gen_file, gen_data):
    a = gen_data["attrs"]
    S.assert_int_attr(a, "num_classes", 11)
    assert "sampling_rate" in a and float(a["sampling_rate"]) == 20480.0, a.get("sampling_rate")
    S.assert_iso8601(a.get("generation_date"), "generation_date")
    S.assert_int_attr(a, "rng_seed", MODULE_SEED)
    assert "class_names" in a, "class_names attribute missing"
    assert S.strings(a["class_names"]) == FAULTS
    assert np.asarray(a["class_names"]).shape == (11,)
    with h5py.File(gen_file, "r") as f:
        assert sorted(f.keys()) == ["test", "train", "val"], sorted(f.keys())
        for s in SPLITS:
            assert sorted(f[s].keys()) == ["indices", "labels", "metadata", "signals"], \
                (s, sorted(f[s].keys()))
            assert f[s]["signals"].compression_opts == 4, "gzip level 4 by default"
    # every class 5 times
    assert S.class_counts(all_labels(gen_data)) == {str(c): 5 for c in range(11)}


def test_generate_split_sizes_and_stratification(gen_data):
    labels = all_labels(gen_data)
    sizes = [len(gen_data[s]["labels"]) for s in SPLITS]
    # 5 per class and 11 classes: val and test cannot be both ~8 and hold every class
    S.check_split_sizes(sizes, 55, S.DEFAULT_RATIOS, labels=labels)
    for s in SPLITS:
        present = set(np.unique(gen_data[s]["labels"]).tolist())
        assert present == set(range(11)), f"{s} lacks classes {set(range(11)) - present}"
    S.check_stratified({s: gen_data[s]["labels"] for s in SPLITS}, S.DEFAULT_RATIOS)


def test_generate_sizes_within_one(tmp_path):
    """8 per class: every class in every split and sizes within one of 88 * ratio."""
    p = generate(tmp_path / "g88.h5", MODULE_SEED, args=("--per-class", 8, "--length", 256))
    d = S.check_split_schema(p, 256, 88, metadata=True, seed=MODULE_SEED, stratified=True)
    sizes = [len(d[s]["labels"]) for s in SPLITS]
    for s, n, r in zip(SPLITS, sizes, S.DEFAULT_RATIOS):
        assert abs(n - 88 * r) <= 1, f"{s}: {n} signals, expected {88 * r:g} +- 1 ({sizes})"
    S.check_stratified({s: d[s]["labels"] for s in SPLITS}, S.DEFAULT_RATIOS)


def test_generate_metadata_lines_up(gen_data):
    seeds = set()
    for s in SPLITS:
        g = gen_data[s]
        for i, (lab, m) in enumerate(zip(g["labels"], g["metadata"])):
            assert set(m) == S.GEN_META_KEYS, f"{s}[{i}] metadata keys {sorted(m)}"
            assert m["label"] == int(lab), f"{s}[{i}]: label {lab}, metadata {m}"
            assert isinstance(m["label"], int)
            assert m["fault"] == FAULTS[int(lab)], f"{s}[{i}]: label {lab}, metadata {m}"
            assert abs(m["speed_hz"] - 60.0) <= 6.0 + 1e-9, f"speed outside 60 Hz +- 10 %: {m}"
            assert m["speed_rpm"] == pytest.approx(m["speed_hz"] * 60, rel=1e-9), m
            for k in ("severity", "load"):
                assert isinstance(m[k], (int, float)) and np.isfinite(m[k]), m
            assert isinstance(m["seed"], int) and isinstance(m["index"], int), m
            seeds.add(m["seed"])
    assert len(seeds) == 55, "the per-signal seeds of metadata are not distinct"


def test_generate_values(gen_data):
    rows = np.concatenate([gen_data[s]["signals"] for s in SPLITS])
    assert rows.dtype == np.float32
    assert np.all(np.isfinite(rows))
    assert len({S.row_key(r) for r in rows}) == 55, "two generated signals are identical"
    rms = np.sqrt(np.mean(rows.astype(np.float64) ** 2, axis=1))
    assert np.all(rms > 1e-3), "a generated signal is (almost) silent"
    assert np.all(rms < 1e3), f"implausible amplitudes: rms up to {rms.max()}"
    # the classes are not the same process: per-class mean RMS takes many values
    labels = all_labels(gen_data)
    class_rms = [float(np.mean(rms[labels == c])) for c in range(11)]
    assert len({round(v, 6) for v in class_rms}) >= 6, class_rms


def test_generate_reproducible(tmp_path, gen_file):
    again = generate(tmp_path / "again.h5", MODULE_SEED)
    H.assert_files_equal(H.load_h5(gen_file), H.load_h5(again))
    code, out, err = H.run("diff", gen_file, again)
    assert code == 0, f"diff of two same-seed files: exit {code}\n{out}{err}"

    other_seed = MODULE_SEED + 1
    print(f"other seed = {other_seed}")
    other = generate(tmp_path / "other.h5", other_seed)
    a, b = S.read_split_file(gen_file), S.read_split_file(other)
    for s in SPLITS:
        assert not np.array_equal(a[s]["signals"], b[s]["signals"]) or \
            a[s]["signals"].size == 0, f"{s}: different seeds gave the same signals"
    all_a = sorted(S.row_key(r) for s in SPLITS for r in a[s]["signals"])
    all_b = sorted(S.row_key(r) for s in SPLITS for r in b[s]["signals"])
    assert not set(all_a) & set(all_b), "different seeds share a signal"
    code, out, err = H.run("diff", gen_file, other)
    assert code == 1, f"diff of different-seed files: exit {code}\n{out}{err}"
    assert re.search(r"(train|val|test)/(signals|labels|indices|metadata)", out + err), \
        f"diff does not name the differing dataset:\n{out}{err}"


def test_generate_speed_and_rate_options(tmp_path):
    p = generate(tmp_path / "s.h5", MODULE_SEED,
                 args=("--per-class", 3, "--length", 1000, "--rate", 8000, "--speed", 37))
    d = S.check_split_schema(p, 1000, 33, metadata=True, seed=MODULE_SEED)
    assert float(d["attrs"]["sampling_rate"]) == 8000.0
    for s in SPLITS:
        for m in d[s]["metadata"]:
            assert abs(m["speed_hz"] - 37.0) <= 3.7 + 1e-9, f"speed outside 37 Hz +- 10 %: {m}"


def dft_amp(x, f, rate):
    """Amplitude of the sinusoid of frequency f in x (projection at exactly f)."""
    t = np.arange(len(x)) / rate
    return 2.0 / len(x) * abs(np.dot(x.astype(np.float64), np.exp(-2j * np.pi * f * t)))


def test_generate_fault_signatures(tmp_path):
    """Spectral sanity (1 s at 20480 Hz, shaft at 37 Hz so no harmonic meets 50/60 Hz mains):
    imbalance raises 1X, misalignment 2X, clearance a 0.43-0.48X line, cavitation the
    1.5-2.5 kHz band, each far above the healthy class."""
    rate = 20480
    p = generate(tmp_path / "spec.h5", MODULE_SEED,
                 args=("--per-class", 3, "--length", rate, "--rate", rate, "--speed", 37))
    d = S.read_split_file(p)
    by_class = {c: [] for c in range(11)}
    for s in SPLITS:
        for x, lab, m in zip(d[s]["signals"], d[s]["labels"], d[s]["metadata"]):
            by_class[int(lab)].append((x, m["speed_hz"]))

    def mean_of(c, fn):
        return float(np.mean([fn(x, sp) for x, sp in by_class[c]]))

    def one_x(x, sp):
        return dft_amp(x, sp, rate)

    def two_x(x, sp):
        return dft_amp(x, 2 * sp, rate)

    def subsync(x, sp):
        return max(dft_amp(x, k * sp, rate) for k in np.arange(0.42, 0.4901, 0.0025))

    def band(x, sp):
        spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        fr = np.fft.rfftfreq(len(x), 1 / rate)
        return float(spec[(fr >= 1500) & (fr <= 2500)].sum())

    sain = FAULTS.index("sain")
    for name, fn, factor in (("desequilibre", one_x, 1.5), ("desalignement", two_x, 1.5),
                             ("jeu", subsync, 3.0), ("cavitation", band, 2.0)):
        c = FAULTS.index(name)
        v, ref = mean_of(c, fn), mean_of(sain, fn)
        assert v > factor * ref, f"{name}: {fn.__name__} = {v:.4g}, sain {ref:.4g}"


@pytest.mark.parametrize("codec", ["lzf", "none", "gzip9"])
def test_generate_compression(tmp_path, gen_file, gen_data, codec):
    opts = ("-c", "gzip", "--level", 9) if codec == "gzip9" else ("-c", codec)
    p = generate(tmp_path / f"{codec}.h5", MODULE_SEED, *opts)
    attr = "gzip" if codec == "gzip9" else codec
    d = S.check_split_schema(p, 2048, 55, metadata=True, compression=attr, seed=MODULE_SEED)
    if codec == "gzip9":
        assert all(d[s]["compression_opts"] == 9 for s in SPLITS)
    H.assert_files_equal(H.load_h5(gen_file), H.load_h5(p))
    for s in SPLITS:
        assert d[s]["metadata"] == gen_data[s]["metadata"]
    # plain HDF5: h5dump opens it without any plugin
    r = subprocess.run(["h5dump", "-H", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "signals" in r.stdout


def test_generate_inspect(gen_file, gen_data):
    j = S.inspect_json(gen_file)
    assert j.get("layout") == "split", j
    assert j.get("signal_length") == 2048
    assert j.get("num_signals") == 55
    assert set(j.get("splits", {})) == set(SPLITS), j.get("splits")
    for s in SPLITS:
        sj = j["splits"][s]
        assert sj.get("count") == len(gen_data[s]["labels"]), (s, sj)
        assert S.nonzero_counts(sj.get("class_counts", {})) == \
            S.class_counts(gen_data[s]["labels"]), (s, sj)
    code, out, err = H.run("inspect", gen_file)
    assert code == 0, err
    for word in ("train", "val", "test", "55", "2048", "fault"):
        assert word in out, f"inspect output lacks {word!r}:\n{out}"


def test_generate_verify_clean(gen_file):
    code, out, err = H.run("verify", gen_file)
    assert code == 0, f"verify of a generated file: exit {code}\n{out}{err}"


# ---- 3. split -------------------------------------------------------------------------------

COUNTS = (100, 55, 30, 15)
SPLIT_L = 512


@pytest.fixture(scope="module")
def flat_cache(tmp_path_factory):
    rng = np.random.default_rng(MODULE_SEED)
    signals, labels, metadata = S.imbalanced_dataset(rng, COUNTS, SPLIT_L)
    p = tmp_path_factory.mktemp("flat") / "flat.h5"
    S.write_flat_cache(p, signals, labels, metadata, cache_name="imbalanced")
    return p, signals, labels, metadata


def split(src, out, *opts):
    S.run_ok("signals", "split", src, "-o", out, *opts)
    return out


def check_split_content(d, signals, labels, metadata):
    for s in SPLITS:
        idx = d[s]["indices"]
        H.assert_same_bits(d[s]["signals"], signals[idx], f"{s}/signals vs flat[indices]")
        H.assert_same_bits(d[s]["labels"], labels[idx], f"{s}/labels vs flat[indices]")
        if metadata is not None:
            assert d[s]["metadata"] == [metadata[i] for i in idx], f"{s}/metadata vs flat[indices]"


def test_split_flat_cache(tmp_path, flat_cache):
    src, signals, labels, metadata = flat_cache
    out = split(src, tmp_path / "split.h5", "--seed", MODULE_SEED)
    d = S.check_split_schema(out, SPLIT_L, len(labels), metadata=True, ratios=S.DEFAULT_RATIOS,
                             seed=MODULE_SEED, stratified=True)
    check_split_content(d, signals, labels, metadata)
    sizes = [len(d[s]["labels"]) for s in SPLITS]
    S.check_split_sizes(sizes, len(labels), S.DEFAULT_RATIOS, labels=labels)
    S.check_stratified({s: d[s]["labels"] for s in SPLITS}, S.DEFAULT_RATIOS)
    code, o, e = H.run("verify", out)
    assert code == 0, o + e
    j = S.inspect_json(out)
    assert j.get("layout") == "split" and j.get("num_signals") == len(labels), j
    for s in SPLITS:
        assert j["splits"][s]["count"] == sizes[SPLITS.index(s)]
        assert S.nonzero_counts(j["splits"][s]["class_counts"]) == S.class_counts(d[s]["labels"])


def test_split_reproducible(tmp_path, flat_cache):
    src = flat_cache[0]
    a = S.read_split_file(split(src, tmp_path / "a.h5", "--seed", MODULE_SEED))
    b = S.read_split_file(split(src, tmp_path / "b.h5", "--seed", MODULE_SEED))
    c = S.read_split_file(split(src, tmp_path / "c.h5", "--seed", MODULE_SEED + 7))
    for s in SPLITS:
        H.assert_same_bits(a[s]["indices"], b[s]["indices"], f"{s}/indices, same seed")
    assert any(not np.array_equal(a[s]["indices"], c[s]["indices"]) for s in SPLITS), \
        "seeds differing gave the same split"
    code, out, err = H.run("diff", tmp_path / "a.h5", tmp_path / "b.h5")
    assert code == 0, out + err


def test_split_no_stratify(tmp_path, flat_cache):
    src, signals, labels, metadata = flat_cache
    out = split(src, tmp_path / "ns.h5", "--seed", MODULE_SEED, "--no-stratify",
                "--ratios", "0.6,0.3,0.1")
    d = S.check_split_schema(out, SPLIT_L, len(labels), metadata=True, ratios=(0.6, 0.3, 0.1),
                             seed=MODULE_SEED, stratified=False)
    check_split_content(d, signals, labels, metadata)
    sizes = [len(d[s]["labels"]) for s in SPLITS]
    S.check_split_sizes(sizes, len(labels), (0.6, 0.3, 0.1), stratified=False)


def test_split_empty_test(tmp_path, flat_cache):
    src, signals, labels, metadata = flat_cache
    out = split(src, tmp_path / "e.h5", "--seed", MODULE_SEED, "--ratios", "0.8,0.2,0")
    d = S.check_split_schema(out, SPLIT_L, len(labels), ratios=(0.8, 0.2, 0.0),
                             seed=MODULE_SEED, stratified=True)
    assert d["test"]["signals"].shape == (0, SPLIT_L)
    assert d["test"]["labels"].shape == (0,)
    assert int(d["test"]["num_samples"]) == 0
    assert [len(d[s]["labels"]) for s in SPLITS] == [160, 40, 0]
    check_split_content(d, signals, labels, metadata)
    S.check_stratified({s: d[s]["labels"] for s in SPLITS}, (0.8, 0.2, 0.0))
    code, o, e = H.run("verify", out)
    assert code == 0, o + e


def test_split_uncompressed(tmp_path, flat_cache):
    src, signals, labels, metadata = flat_cache
    out = split(src, tmp_path / "n.h5", "--seed", MODULE_SEED, "-c", "none")
    d = S.check_split_schema(out, SPLIT_L, len(labels), metadata=True, compression="none",
                             seed=MODULE_SEED)
    check_split_content(d, signals, labels, metadata)


@pytest.mark.parametrize("ratios", ["0.5,0.3,0.3", "0.7,0.15", "0.7,-0.1,0.4", "a,b,c"])
def test_split_bad_ratios(tmp_path, flat_cache, ratios):
    work = tmp_path / "w"
    work.mkdir()
    line = S.usage_error(["signals", "split", flat_cache[0], "-o", work / "out.h5",
                          "--ratios", ratios], work)
    assert "ratio" in line.lower(), line


# ---- 4. flat file without attributes -------------------------------------------------------

def test_flat_without_attributes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    signals, labels, _ = S.imbalanced_dataset(rng, (20, 12, 8), 300)
    src = tmp_path / "bare.h5"
    S.write_flat_cache(src, signals, labels, attrs=False)
    j = S.inspect_json(src)
    assert j.get("layout") == "flat", j
    assert j.get("signal_length") == 300, j
    assert j.get("num_signals") == 40 and j.get("count") == 40, j
    assert S.nonzero_counts(j.get("class_counts", {})) == S.class_counts(labels), j
    out = split(src, tmp_path / "s.h5", "--seed", seed)
    d = S.check_split_schema(out, 300, 40, metadata=False, seed=seed, stratified=True)
    check_split_content(d, signals, labels, None)


def test_inspect_flat_cache(flat_cache):
    src, signals, labels, metadata = flat_cache
    j = S.inspect_json(src)
    assert j.get("layout") == "flat" and j.get("signal_length") == SPLIT_L, j
    assert j.get("count") == len(labels) and j.get("num_signals") == len(labels), j
    assert S.nonzero_counts(j["class_counts"]) == S.class_counts(labels)
    code, out, err = H.run("verify", src)
    assert code == 0, out + err


# ---- 5. split file in the original layout ---------------------------------------------------

def test_original_split_file(tmp_path, seed):
    rng = np.random.default_rng(seed)
    signals, labels, metadata = S.imbalanced_dataset(rng, (30, 20, 10), 128)
    order = rng.permutation(len(labels))
    cut = [0, 42, 51, 60]
    parts = {s: (signals[order[cut[k]:cut[k + 1]]], labels[order[cut[k]:cut[k + 1]]])
             for k, s in enumerate(SPLITS)}
    p = tmp_path / "orig.h5"
    S.write_original_split(p, parts, metadata=metadata, seed=seed % 1000)
    j = S.inspect_json(p)
    assert j.get("layout") == "split", j
    assert j.get("signal_length") == 128 and j.get("num_signals") == 60, j
    for s in SPLITS:
        assert j["splits"][s]["count"] == len(parts[s][1]), (s, j["splits"][s])
        assert S.nonzero_counts(j["splits"][s]["class_counts"]) == S.class_counts(parts[s][1])
    code, out, err = H.run("verify", p)
    assert code == 0, f"verify of an original split file: exit {code}\n{out}{err}"


# ---- 6. import ------------------------------------------------------------------------------

def imported_rows(d):
    rows = np.concatenate([d[s]["signals"] for s in SPLITS])
    labels = np.concatenate([d[s]["labels"] for s in SPLITS])
    return rows, labels


def test_import_spec_names(tmp_path, seed):
    rng = np.random.default_rng(seed)
    src = S.make_mat_tree(tmp_path / "data", {"sain": 4, "jeu": 3, "cavitation": 4}, 256, rng)
    out = tmp_path / "out.h5"
    S.run_ok("signals", "import", tmp_path / "data", "-o", out, "--split", "0.5,0.25,0.25",
             "--seed", 1)
    d = S.check_split_schema(out, 256, 11, ratios=(0.5, 0.25, 0.25), seed=1, stratified=True)
    rows, labels = imported_rows(d)
    files = S.match_rows(rows, src)
    assert sorted(map(str, files)) == sorted(map(str, src)), "not every file imported once"
    for f, lab in zip(files, labels):
        assert FAULTS[int(lab)] == f.parent.name, f"{f}: label {lab}"
    assert sorted(set(labels.tolist())) == [0, 3, 5]
    for s in SPLITS:
        assert set(np.unique(d[s]["labels"]).tolist()) == {0, 3, 5}, f"{s}: not every class"
    code, o, e = H.run("verify", out)
    assert code == 0, o + e


def test_import_flat(tmp_path, seed):
    rng = np.random.default_rng(seed)
    src = S.make_mat_tree(tmp_path / "data", {"usure": 2, "oilwhirl": 3, "sain": 1}, 100, rng)
    out = tmp_path / "flat.h5"
    S.run_ok("signals", "import", tmp_path / "data", "-o", out, "--flat")
    d = S.check_flat_schema(out, 100, 6)
    files = S.match_rows(d["signals"], src)
    assert sorted(map(str, files)) == sorted(map(str, src))
    for f, lab in zip(files, d["labels"]):
        assert FAULTS[int(lab)] == f.parent.name, f"{f}: label {lab}"


def test_import_fixture_tree(tmp_path):
    """tests/data/mat/tree: sain, jeu (one file named .MAT), cavitation; a notes.txt that
    is not a MAT-file. Values: make_mat_fixtures.g(64, 10 * (class position + 1) + j)."""
    m = S.mat_fixtures_module()
    out = tmp_path / "tree.h5"
    S.run_ok("signals", "import", S.MAT_FIXTURES / "tree", "-o", out, "--flat")
    d = S.check_flat_schema(out, 64, 6)
    expect = {}
    for pos, name in enumerate(["sain", "jeu", "cavitation"]):
        for j in range(2):
            expect[(name, j)] = m.g(64, 10 * (pos + 1) + j)
    files = S.match_rows(d["signals"], expect)
    assert sorted(files) == sorted(expect)
    for (name, _), lab in zip(files, d["labels"]):
        assert FAULTS[int(lab)] == name


def test_import_custom_names(tmp_path, seed):
    rng = np.random.default_rng(seed)
    names = {"outer_race": 3, "healthy": 3, "inner_race": 4}
    src = S.make_mat_tree(tmp_path / "data", names, 128, rng)
    out = tmp_path / "custom.h5"
    S.run_ok("signals", "import", tmp_path / "data", "-o", out, "--seed", seed)
    d = S.check_split_schema(out, 128, 10, seed=seed)
    order = sorted(names)
    assert "class_names" in d["attrs"], "class_names attribute missing"
    assert S.strings(d["attrs"]["class_names"]) == order
    if "num_classes" in d["attrs"]:
        assert int(d["attrs"]["num_classes"]) == 3
    rows, labels = imported_rows(d)
    files = S.match_rows(rows, src)
    for f, lab in zip(files, labels):
        assert order[int(lab)] == f.parent.name, f"{f}: label {lab}"
    # and the fixture tree with custom names
    out2 = tmp_path / "custom2.h5"
    S.run_ok("signals", "import", S.MAT_FIXTURES / "tree_custom", "-o", out2, "--flat")
    d2 = S.check_flat_schema(out2, 64, 4)
    assert S.strings(d2["attrs"]["class_names"]) == ["healthy", "inner_race"]
    assert sorted(d2["labels"].tolist()) == [0, 0, 1, 1]


UNEQUAL = {("sain", 1): 200, ("jeu", 0): 300}


def unequal_tree(tmp_path, seed):
    rng = np.random.default_rng(seed)
    return S.make_mat_tree(tmp_path / "data", {"sain": 3, "jeu": 3}, 256, rng, sizes=UNEQUAL)


def test_import_unequal_lengths(tmp_path, seed):
    src = unequal_tree(tmp_path, seed)
    line = S.usage_error(["signals", "import", tmp_path / "data", "-o", tmp_path / "o.h5"],
                         tmp_path)
    assert any(p.name in line for p in src), f"error names no .mat file: {line}"


@pytest.mark.parametrize("mode", ["--truncate", "--pad"])
def test_import_truncate_pad(tmp_path, seed, mode):
    src = unequal_tree(tmp_path, seed)
    out = tmp_path / "o.h5"
    S.run_ok("signals", "import", tmp_path / "data", "-o", out, "--flat", mode)
    length = 200 if mode == "--truncate" else 300
    d = S.check_flat_schema(out, length, 6)
    files = S.match_rows(d["signals"], src, length=length)
    assert sorted(map(str, files)) == sorted(map(str, src))
    if mode == "--pad":
        for f, row in zip(files, d["signals"]):
            n = len(src[f])
            assert np.all(row[n:] == 0), f"{f}: padding is not zeros"


def test_import_var(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = tmp_path / "data"
    src_a, src_b = {}, {}
    for name in ("sain", "usure"):
        (data / name).mkdir(parents=True)
        for j in range(2):
            a, b = rng.normal(size=300), rng.normal(size=160)
            p = data / name / f"{j}.mat"
            S.save_v5(p, {"a": a, "b": b, "fs": 12000.0, "note": "two vectors"})
            src_a[p], src_b[p] = a, b
    out = tmp_path / "b.h5"
    S.run_ok("signals", "import", data, "-o", out, "--flat", "--var", "b")
    d = S.check_flat_schema(out, 160, 4)
    assert sorted(map(str, S.match_rows(d["signals"], src_b))) == sorted(map(str, src_b))
    out = tmp_path / "auto.h5"
    S.run_ok("signals", "import", data, "-o", out, "--flat")
    d = S.check_flat_schema(out, 300, 4)
    assert sorted(map(str, S.match_rows(d["signals"], src_a))) == sorted(map(str, src_a))
    S.usage_error(["signals", "import", data, "-o", tmp_path / "none.h5", "--var", "nosuch"],
                  tmp_path, mention="nosuch")


def test_import_v73(tmp_path, seed):
    rng = np.random.default_rng(seed)
    src = S.make_mat_tree(tmp_path / "data", {"sain": 2, "jeu": 2}, 180, rng)
    v = rng.normal(size=180)
    p = tmp_path / "data" / "jeu" / "v73.mat"
    S.save_v73(p, {"sig": v, "fs": 20480.0})
    src[p] = v
    out = tmp_path / "o.h5"
    S.run_ok("signals", "import", tmp_path / "data", "-o", out, "--flat")
    d = S.check_flat_schema(out, 180, 5)
    files = S.match_rows(d["signals"], src)
    assert sorted(map(str, files)) == sorted(map(str, src))
    for f, lab in zip(files, d["labels"]):
        assert FAULTS[int(lab)] == f.parent.name


def test_import_no_subdirectories(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = tmp_path / "flatdir"
    data.mkdir()
    for j in range(3):
        S.save_v5(data / f"{j}.mat", {"sig": rng.normal(size=64)})
    S.usage_error(["signals", "import", data, "-o", tmp_path / "o.h5"], tmp_path,
                  mention="flatdir")
    S.usage_error(["signals", "import", tmp_path / "missing", "-o", tmp_path / "o.h5"],
                  tmp_path, mention="missing")


def test_import_no_numeric_vector(tmp_path, seed):
    rng = np.random.default_rng(seed)
    S.make_mat_tree(tmp_path / "data", {"sain": 2, "jeu": 2}, 64, rng)
    S.save_v5(tmp_path / "data" / "jeu" / "textonly.mat",
              {"note": "no signal here", "who": "operator"})
    S.usage_error(["signals", "import", tmp_path / "data", "-o", tmp_path / "o.h5"],
                  tmp_path, mention="textonly.mat")


# ---- 7. bad input leaves nothing ------------------------------------------------------------

def test_generate_bad_input(tmp_path):
    S.usage_error(["signals", "generate", "-o", tmp_path / "g.h5", "--per-class", 0], tmp_path,
                  mention="per-class")
    S.usage_error(["signals", "generate", "-o", tmp_path / "g.h5", "--per-class", 2,
                   "--length", 64, "-c", "zstd"], tmp_path, mention="zstd")
    S.usage_error(["signals", "generate", "-o", tmp_path / "g.h5", "--per-class", 2,
                   "--length", 64, "--ratios", "0.5,0.5,0.5"], tmp_path, mention="ratio")
    S.usage_error(["signals", "generate", "-o", tmp_path / "nodir" / "g.h5", "--per-class", 2,
                   "--length", 64], tmp_path, mention="nodir")


def test_split_bad_input(tmp_path, seed):
    rng = np.random.default_rng(seed)
    signals, labels, _ = S.imbalanced_dataset(rng, (10, 10), 32)
    bad = tmp_path / "short_labels.h5"
    S.write_flat_cache(bad, signals, labels[:-3])
    S.usage_error(["signals", "split", bad, "-o", tmp_path / "o.h5"], tmp_path,
                  mention="short_labels.h5")
    S.usage_error(["signals", "split", tmp_path / "nothere.h5", "-o", tmp_path / "o.h5"],
                  tmp_path, mention="nothere.h5")
    good = tmp_path / "good.h5"
    S.write_flat_cache(good, signals, labels)
    S.usage_error(["signals", "split", good, "-o", tmp_path / "nodir" / "o.h5"], tmp_path,
                  mention="nodir")


def test_split_nonfinite_samples(tmp_path, seed):
    """NaN/Inf samples are refused (naming the signal and sample) unless --allow-nonfinite."""
    rng = np.random.default_rng(seed)
    signals, labels, _ = S.imbalanced_dataset(rng, (10, 10), 32)
    signals[7, 3] = np.nan
    src = tmp_path / "nan.h5"
    S.write_flat_cache(src, signals, labels)
    out = tmp_path / "o.h5"
    line = S.usage_error(["signals", "split", src, "-o", out], tmp_path, mention="NaN")
    assert "sample 3" in line, line
    assert not out.exists()
    S.run_ok("signals", "split", src, "-o", out, "--allow-nonfinite")
    parts = S.read_split_file(out)
    got = np.concatenate([parts[s]["signals"] for s in S.SPLITS if s in parts])
    assert np.isnan(got).sum() == 1


def test_failed_run_keeps_existing_output(tmp_path, flat_cache):
    """A failed run does not touch a file already at the output path."""
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")
    S.usage_error(["signals", "split", flat_cache[0], "-o", out, "--ratios", "0.9,0.9,0.9"],
                  tmp_path, mention="ratio")
    assert out.read_bytes() == b"precious"


# ---- 8. verify catches ----------------------------------------------------------------------

def damaged_copy(gen_file, tmp_path, name):
    p = tmp_path / name
    shutil.copyfile(gen_file, p)
    return p


def verify_fails(path, *words):
    code, out, err = H.run("verify", path)
    assert code == 1, f"verify {path}: exit {code}, expected 1\n{out}{err}"
    for w in words:
        assert w.lower() in (out + err).lower(), f"verify does not name {w!r}:\n{out}{err}"


def test_verify_nan(tmp_path, gen_file):
    p = damaged_copy(gen_file, tmp_path, "nan.h5")
    with h5py.File(p, "r+") as f:
        row = f["train/signals"][1]
        row[17] = np.nan
        f["train/signals"][1] = row
    verify_fails(p, "train/signals")
    code, out, err = H.run("diff", gen_file, p)
    assert code == 1 and "train/signals" in out + err, out + err


def test_verify_num_samples(tmp_path, gen_file):
    p = damaged_copy(gen_file, tmp_path, "ns.h5")
    with h5py.File(p, "r+") as f:
        f["val"].attrs["num_samples"] = int(f["val"].attrs["num_samples"]) + 1
    verify_fails(p, "num_samples")


def test_verify_label_range(tmp_path, gen_file):
    p = damaged_copy(gen_file, tmp_path, "lab.h5")
    with h5py.File(p, "r+") as f:
        lab = f["test/labels"][()]
        lab[0] = 11
        f["test/labels"][...] = lab
    verify_fails(p, "label")


# ---- 9. help --------------------------------------------------------------------------------

HELP = {
    "": ["generate", "import", "split"],
    "generate": ["--per-class", "--length", "--rate", "--speed", "--seed", "--ratios", "-c",
                 "--level"],
    "import": ["--var", "--split", "--seed", "--no-stratify", "--flat", "--truncate", "--pad"],
    "split": ["--ratios", "--seed", "--no-stratify", "-c"],
}


@pytest.mark.parametrize("sub", sorted(HELP))
def test_help(sub):
    args = ["signals"] + ([sub] if sub else []) + ["--help"]
    code, out, err = H.run(*args)
    assert code == 0, (code, err)
    head = "usage: h5ml signals" + (f" {sub}" if sub else "")
    assert out.startswith(head), f"h5ml {' '.join(args)} printed:\n{out}"
    for word in HELP[sub]:
        assert word in out, f"h5ml {' '.join(args)} does not mention {word}"


def test_main_help_lists_signals():
    code, out, err = H.run("--help")
    assert code == 0
    assert re.search(r"^\s+signals\b", out, re.M), out


def test_signals_usage_errors(tmp_path):
    code, out, err = H.run("signals")
    assert code == 2, (code, out, err)
    assert "usage" in (out + err).lower() and "generate" in out + err, out + err
    S.usage_error(["signals", "bogus"], tmp_path, mention="bogus")
    S.usage_error(["signals", "generate", "-o", tmp_path / "g.h5", "--frobnicate"], tmp_path,
                  mention="--frobnicate")
