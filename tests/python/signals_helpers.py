"""Helpers of the signal-dataset tests (test_signals.py): writers of files in the original
Python tools' layouts (h5py, as CacheManager did), readers and schema checks of h5ml's
signal files, and the usual assertions on the command line's exits.

Only h5py, numpy and scipy are used to read and write files; h5ml is driven through its
command line (h5ml_helpers.run).
"""
import datetime
import json
import sys
from pathlib import Path

import h5py
import numpy as np

import h5ml_helpers as H

REPO = H.REPO
MAT_FIXTURES = REPO / "tests" / "data" / "mat"

# SPEC section 2: labels 0..10
FAULTS = ["sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation",
          "usure", "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu"]
SPLITS = ("train", "val", "test")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)
GEN_META_KEYS = {"fault", "label", "severity", "speed_hz", "speed_rpm", "load", "seed", "index"}


# ---- the command line -----------------------------------------------------------------------

def run_ok(*args):
    code, out, err = H.run(*args)
    assert code == 0, f"h5ml {' '.join(map(str, args))} exited {code}:\n{out}\n{err}"
    return out, err


def listing(directory):
    """Every name under `directory` (recursively), to show a failed run left nothing."""
    directory = Path(directory)
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def usage_error(args, directory=None, mention=()):
    """Runs h5ml `args`, expects exit 2 with one non-empty line on stderr (returned) that
    contains every string of `mention`, and (when `directory` is given) that the run
    created nothing there: no output file, no temporary file."""
    before = listing(directory) if directory is not None else None
    code, out, err = H.run(*args)
    cmd = "h5ml " + " ".join(map(str, args))
    assert code == 2, f"{cmd}: exit {code}, expected 2\nstdout: {out}\nstderr: {err}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"{cmd}: stderr has {len(lines)} lines, expected one:\n{err}"
    for m in ([mention] if isinstance(mention, str) else mention):
        assert m.lower() in lines[0].lower(), f"{cmd}: error does not mention {m!r}: {lines[0]}"
    if directory is not None:
        after = listing(directory)
        assert after == before, f"{cmd} left files behind: {sorted(set(after) - set(before))}"
    return lines[0]


def inspect_json(path):
    code, out, err = H.run("inspect", path, "--json")
    assert code == 0, f"h5ml inspect --json {path} exited {code}: {err}"
    try:
        return json.loads(out)
    except ValueError as e:
        raise AssertionError(f"h5ml inspect --json printed no JSON object ({e}):\n{out}")


# ---- values ---------------------------------------------------------------------------------

def as_str(v, what="attribute"):
    """A string attribute as h5py reads it: str (variable-length string)."""
    assert isinstance(v, str), f"{what}: expected a str (variable-length string), got " \
                               f"{type(v).__name__} {v!r}"
    return v


def strings(arr):
    """An array of strings (vlen: str objects; fixed-length: bytes) as a list of str."""
    return [s.decode("utf-8") if isinstance(s, (bytes, np.bytes_)) else str(s)
            for s in np.asarray(arr).ravel()]


def assert_iso8601(v, what):
    v = as_str(v, what)
    assert "T" in v, f"{what}: not an ISO 8601 date-time: {v!r}"
    try:
        t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise AssertionError(f"{what}: not an ISO 8601 date-time: {v!r}")
    assert t.year >= 2020, f"{what}: implausible date {v!r}"


def assert_int_attr(attrs, key, value=None):
    assert key in attrs, f"root attribute {key} missing (has {sorted(attrs)})"
    v = attrs[key]
    assert isinstance(v, (np.integer, int)) and not isinstance(v, (bool, np.bool_)), \
        f"attribute {key}: expected an integer, got {type(v).__name__} {v!r}"
    if value is not None:
        assert int(v) == value, f"attribute {key} = {v}, expected {value}"
    return int(v)


def class_counts(labels):
    """{"label": count} as inspect --json spells it (labels with a count of 0 left out)."""
    u, c = np.unique(np.asarray(labels), return_counts=True)
    return {str(int(k)): int(n) for k, n in zip(u, c)}


def nonzero_counts(d):
    return {str(k): int(v) for k, v in d.items() if int(v) != 0}


def decode_metadata(ds_values):
    out = []
    for s in strings(ds_values):
        obj = json.loads(s)
        assert isinstance(obj, dict), f"metadata entry is not a JSON object: {s!r}"
        out.append(obj)
    return out


def assert_vlen_utf8(ds, what):
    info = h5py.check_string_dtype(ds.dtype)
    assert info is not None and info.length is None, \
        f"{what}: expected variable-length strings, got {ds.dtype}"
    assert info.encoding == "utf-8", f"{what}: expected UTF-8 strings, got {info.encoding}"


def row_key(row):
    return np.ascontiguousarray(row, dtype=np.float32).tobytes()


# ---- reading h5ml's signal files ------------------------------------------------------------

def read_split_file(path):
    """{"attrs": root attributes, "train": {...}, "val": ..., "test": ...}; each split:
    signals, labels, indices (None when absent), metadata (list of dicts or None),
    num_samples (attribute, None when absent), and the signals dataset's filter."""
    out = {}
    with h5py.File(path, "r") as f:
        out["attrs"] = dict(f.attrs)
        out["root_names"] = sorted(f.keys())
        for s in SPLITS:
            if s not in f:
                continue
            g = f[s]
            d = {"names": sorted(g.keys()), "num_samples": g.attrs.get("num_samples")}
            d["signals"] = g["signals"][()]
            d["signals_dtype"] = g["signals"].dtype
            d["compression"] = g["signals"].compression
            d["compression_opts"] = g["signals"].compression_opts
            d["labels"] = g["labels"][()]
            d["indices"] = g["indices"][()] if "indices" in g else None
            if "metadata" in g:
                assert_vlen_utf8(g["metadata"], f"{s}/metadata")
                d["metadata"] = decode_metadata(g["metadata"][()])
            else:
                d["metadata"] = None
            out[s] = d
    return out


def check_split_schema(path, length, total, metadata=None, compression="gzip",
                       ratios=None, seed=None, stratified=None):
    """Asserts the split layout (names, dtypes, shapes, attributes) of an h5ml split file
    and returns read_split_file(path). `metadata`: True / False / None (either)."""
    d = read_split_file(path)
    a = d["attrs"]
    for s in SPLITS:
        assert s in d, f"{path}: no /{s} group (root has {d['root_names']})"
    assert "metadata" not in d["root_names"], \
        f"{path}: a split file must not have a root /metadata (it lines up with no split)"
    n_sum = 0
    for s in SPLITS:
        g = d[s]
        n = g["labels"].shape[0] if g["labels"].ndim == 1 else -1
        assert g["signals_dtype"] == np.float32, f"{s}/signals dtype {g['signals_dtype']}"
        assert g["signals"].shape == (n, length), \
            f"{s}/signals shape {g['signals'].shape}, expected ({n}, {length})"
        assert g["labels"].dtype == np.int64, f"{s}/labels dtype {g['labels'].dtype}"
        assert g["indices"] is not None, f"{s}/indices missing"
        assert g["indices"].dtype == np.int64, f"{s}/indices dtype {g['indices'].dtype}"
        assert g["indices"].shape == (n,), f"{s}/indices shape {g['indices'].shape}"
        assert g["num_samples"] is not None, f"{s}: attribute num_samples missing"
        assert isinstance(g["num_samples"], np.integer), \
            f"{s}.num_samples: {type(g['num_samples']).__name__}"
        assert int(g["num_samples"]) == n, f"{s}.num_samples = {g['num_samples']}, has {n}"
        if metadata is True:
            assert g["metadata"] is not None, f"{s}/metadata missing"
        if metadata is False:
            assert g["metadata"] is None, f"{s}/metadata present in a file without metadata"
        if g["metadata"] is not None:
            assert len(g["metadata"]) == n, f"{s}/metadata has {len(g['metadata'])} entries, {n} signals"
        assert np.all(np.isfinite(g["signals"])), f"{s}/signals has non-finite samples"
        if compression == "none":
            assert g["compression"] is None, f"{s}/signals compression {g['compression']}"
        else:
            assert g["compression"] == compression, \
                f"{s}/signals compression {g['compression']}, expected {compression}"
        n_sum += n
    assert n_sum == total, f"splits hold {n_sum} signals, expected {total}"
    idx = np.concatenate([d[s]["indices"] for s in SPLITS])
    assert np.array_equal(np.sort(idx), np.arange(total)), \
        "indices across the splits are not a permutation of 0..N-1"

    as_str(a.get("cache_name"), "cache_name")
    assert a["cache_name"], "cache_name is empty"
    assert_int_attr(a, "num_signals", total)
    assert_int_attr(a, "signal_length", length)
    assert "cached_at" in a, "root attribute cached_at missing"
    assert_iso8601(a["cached_at"], "cached_at")
    assert as_str(a.get("compression"), "compression") == compression
    r = a.get("split_ratios")
    assert isinstance(r, np.ndarray) and r.shape == (3,) and r.dtype.kind == "f", \
        f"split_ratios: expected a float array of 3, got {r!r}"
    if ratios is not None:
        assert np.allclose(r, ratios, rtol=0, atol=1e-12), f"split_ratios {r}, expected {ratios}"
    st = a.get("stratified")
    assert isinstance(st, np.bool_), f"stratified: expected a bool, got {type(st).__name__} {st!r}"
    if stratified is not None:
        assert bool(st) == stratified, f"stratified = {st}, expected {stratified}"
    assert_int_attr(a, "random_seed", seed)
    return d


def check_flat_schema(path, length, count, metadata=None, compression="gzip"):
    with h5py.File(path, "r") as f:
        names = sorted(f.keys())
        for s in SPLITS:
            assert s not in f, f"{path}: a flat file has a /{s} group"
        sig = f["signals"]
        assert sig.dtype == np.float32 and sig.shape == (count, length), \
            f"/signals {sig.dtype}{sig.shape}, expected float32({count}, {length})"
        if compression == "none":
            assert sig.compression is None
        else:
            assert sig.compression == compression, sig.compression
        lab = f["labels"]
        assert lab.dtype == np.int64 and lab.shape == (count,), f"/labels {lab.dtype}{lab.shape}"
        if metadata is True:
            assert "metadata" in f, f"/metadata missing (root has {names})"
        if metadata is False:
            assert "metadata" not in f, "/metadata present"
        meta = None
        if "metadata" in f:
            assert f["metadata"].shape == (count,)
            assert_vlen_utf8(f["metadata"], "/metadata")
            meta = decode_metadata(f["metadata"][()])
        a = dict(f.attrs)
        out = {"signals": sig[()], "labels": lab[()], "metadata": meta, "attrs": a}
    assert a.get("cache_name") and isinstance(a.get("cache_name"), str), a.get("cache_name")
    assert_int_attr(a, "num_signals", count)
    assert_int_attr(a, "signal_length", length)
    assert_iso8601(a.get("cached_at"), "cached_at")
    assert as_str(a.get("compression"), "compression") == compression
    assert np.all(np.isfinite(out["signals"]))
    return out


# ---- split sizes ----------------------------------------------------------------------------

def check_split_sizes(sizes, n, ratios, labels=None, stratified=True):
    """Global sizes within one of n * ratio; when stratified, every class with >= 3 samples
    in every split of nonzero ratio -- that minimum wins where both cannot hold."""
    minimum = [0, 0, 0]
    if stratified and labels is not None:
        counts = np.unique(labels, return_counts=True)[1]
        big = int(np.sum(counts >= 3))
        minimum = [big if r > 0 else 0 for r in ratios]
    assert sum(sizes) == n, f"split sizes {sizes} do not add up to {n}"
    if all(n * r >= m + 1 for r, m in zip(ratios, minimum)):
        for s, size, r in zip(SPLITS, sizes, ratios):
            assert abs(size - n * r) <= 1, f"{s}: {size} signals, expected {n * r:g} +- 1 " \
                                           f"(sizes {sizes}, ratios {ratios})"
    else:
        for s, size, m in zip(SPLITS, sizes, minimum):
            assert size >= m, f"{s}: {size} signals, fewer than the {m} classes with >= 3 samples"
    for s, size, r in zip(SPLITS, sizes, ratios):
        if r == 0:
            assert size == 0, f"{s}: ratio 0 but {size} signals"


def check_stratified(split_labels, ratios):
    """Per class and split, the count is within one of (class count) * ratio, and every
    class with >= 3 samples is in every split of nonzero ratio."""
    all_labels = np.concatenate([split_labels[s] for s in SPLITS])
    for c, nc in zip(*np.unique(all_labels, return_counts=True)):
        for s, r in zip(SPLITS, ratios):
            k = int(np.sum(split_labels[s] == c))
            assert abs(k - nc * r) <= 1, \
                f"class {c} ({nc} samples): {k} in {s}, expected {nc * r:g} +- 1"
            if nc >= 3 and r > 0:
                assert k >= 1, f"class {c} ({nc} samples) missing from {s}"


# ---- files in the original tools' layouts ---------------------------------------------------

def write_flat_cache(path, signals, labels, metadata=None, cache_name="experiment",
                     compression="gzip", compression_opts=4, attrs=True):
    """CacheManager.cache_dataset: signals float32 compressed, labels np.int64, metadata as
    UTF-8 JSON strings, the five root attributes (or none when attrs is False)."""
    with h5py.File(path, "w") as f:
        kw = {}
        if compression is not None:
            kw["compression"] = compression
            if compression == "gzip":
                kw["compression_opts"] = compression_opts
        f.create_dataset("signals", data=np.asarray(signals, dtype=np.float32), **kw)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        if metadata is not None:
            f.create_dataset("metadata", data=[json.dumps(m) for m in metadata],
                             dtype=h5py.string_dtype("utf-8"))
        if attrs:
            f.attrs["cache_name"] = cache_name
            f.attrs["num_signals"] = len(signals)
            f.attrs["signal_length"] = np.asarray(signals).shape[1]
            f.attrs["cached_at"] = datetime.datetime.now().isoformat()
            f.attrs["compression"] = compression or "none"


def write_original_split(path, parts, metadata=None, ratios=DEFAULT_RATIOS, seed=42,
                         cache_name="original"):
    """CacheManager.cache_dataset_with_splits: /train, /val, /test with signals (gzip) and
    labels and num_samples, root /metadata in the original order (the defect), root
    attributes. `parts`: {split: (signals, labels)}."""
    total = sum(len(parts[s][1]) for s in SPLITS)
    length = parts["train"][0].shape[1]
    with h5py.File(path, "w") as f:
        for s in SPLITS:
            sig, lab = parts[s]
            g = f.create_group(s)
            g.create_dataset("signals", data=np.asarray(sig, np.float32), compression="gzip",
                             compression_opts=4)
            g.create_dataset("labels", data=np.asarray(lab))
            g.attrs["num_samples"] = len(lab)
        if metadata is not None:
            f.create_dataset("metadata", data=[json.dumps(m) for m in metadata],
                             dtype=h5py.string_dtype("utf-8"))
        f.attrs["cache_name"] = cache_name
        f.attrs["num_signals"] = total
        f.attrs["signal_length"] = length
        f.attrs["cached_at"] = datetime.datetime.now().isoformat()
        f.attrs["split_ratios"] = ratios
        f.attrs["stratified"] = True
        f.attrs["random_seed"] = seed


def imbalanced_dataset(rng, counts, length):
    """Signals (float32, distinct rows), labels (int64, shuffled) and metadata with
    non-ASCII text, for len(counts) classes of counts[c] samples."""
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(counts)])
    rng.shuffle(labels)
    n = len(labels)
    t = np.arange(length) / length
    signals = (rng.normal(size=(n, length)) * 0.1
               + np.sin(2 * np.pi * (3 + labels[:, None]) * t)).astype(np.float32)
    metadata = [{"fault": f"classe-{int(l)} désalignée", "index": i,
                 "rms": float(np.sqrt(np.mean(signals[i].astype(np.float64) ** 2)))}
                for i, l in enumerate(labels)]
    return signals, labels, metadata


# ---- MATLAB files ---------------------------------------------------------------------------

def save_v5(path, variables):
    import scipy.io
    scipy.io.savemat(str(path), variables, format="5", oned_as="row")


def mat_fixtures_module():
    """scripts/make_mat_fixtures.py (its v7.3 writer and the fixture value formulas)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import make_mat_fixtures
    return make_mat_fixtures


def save_v73(path, variables):
    """A MATLAB 7.3 file written with h5py as MATLAB lays it out: 512-byte user block with
    the MAT-file header, MATLAB_class attributes (fixed-length, exactly as long as the
    text), dimensions reversed. `variables`: {name: 1-D float64 array (a 1 x n row) or a
    scalar}."""
    m = mat_fixtures_module()
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for name, v in variables.items():
            v = np.atleast_1d(np.asarray(v, dtype=np.float64))
            m.h5_var(f, name, (1, v.size), v, "double")
    with open(path, "r+b") as f:
        f.write(m.mat73_header())
    with open(path, "rb") as f:
        assert f.read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        for name in variables:
            tid = f[name].attrs.get_id("MATLAB_class").get_type()
            assert tid.get_size() == 6 and not tid.is_variable_str(), "MATLAB_class layout"


def make_mat_tree(root, classes, length, rng, extra=True, sizes=None):
    """One sub-directory per class name, classes[name] files each holding a random vector
    'sig' (float64, `length` samples unless sizes[(name, j)] says otherwise) and, with
    `extra`, other variables an importer must not pick: fs (scalar), a char string, a
    short int vector. Returns {file path: float64 vector}."""
    root = Path(root)
    out = {}
    for name, nfiles in classes.items():
        d = root / name
        d.mkdir(parents=True)
        for j in range(nfiles):
            n = (sizes or {}).get((name, j), length)
            v = rng.normal(size=n)
            p = d / f"{name}_{j}.mat"
            variables = {"sig": v}
            if j % 3 == 1:
                variables = {"sig": v.reshape(n, 1)}  # a column vector is a vector too
            if extra:
                variables.update({"fs": 20480.0, "location": f"rig {name} #{j}",
                                  "rpm": np.array([1790, 1797, 1801], dtype=np.int32)})
            save_v5(p, variables)
            out[p] = v
    return out


def match_rows(signals, sources, length=None):
    """Matches each stored signal to the source vector it came from (by value, as float32:
    cut or padded with zeros to `length`); returns the list of source paths per row."""
    table = {}
    for p, v in sources.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        if length is not None:
            v = v[:length] if len(v) >= length else np.concatenate([v, np.zeros(length - len(v))])
        key = row_key(v.astype(np.float32))
        assert key not in table, "two source vectors are equal"
        table[key] = p
    out = []
    for i, row in enumerate(signals):
        key = row_key(row)
        assert key in table, f"stored signal {i} equals no source vector (as float32)"
        out.append(table[key])
    return out
