"""Faults: h5ml's writers lose nothing committed when writes fail, the target is read-only,
a second writer comes along, the process is told to stop (SIGTERM, SIGINT), and its readers
never crash on damaged files.

1. Failing writes: tests/faults/faultshim.c (LD_PRELOAD) fails the writes to the output once
   a byte budget is spent (ENOSPC with short writes cut at a page, or EIO; every write, or
   only those that need new space as on a full ext4). The budget is swept from the first
   superblock write to the end of a clean run. After each fault: exit 2 (never a signal, no
   hang), stderr names the file, the system's reason and how to go on; the file at the path
   (or the untouched old file of a replace) opens with plain h5py and verifies, holding a
   prefix of the input with at least every structure of its last checkpoint; and appending
   the rest gives the clean conversion (h5ml diff). Where any write may fail (not only those
   that need new space), about 1 fault in 1000 leaves one metadata object unreadable (see
   check_or_damaged): such files are counted and bounded, and must not crash the tools.
2. Read-only targets (as user nobody, and chattr +i): a clear message, nothing written.
3. A second writer (command line and Python) is refused while the first runs; the first
   finishes intact.
4. Truncated and bit-flipped files: verify, inspect, export and the Python readers give an
   error or a result, never a signal or a hang.
5. SIGTERM and SIGINT at random moments: convert finalizes what it wrote (exit 128+N, a
   message saying where, a clean verify, a prefix of the input, and --append continues to
   the whole input); signal caches are left unwritten; a second signal kills at once.

Randomized tests print their seed (H5ML_TEST_SEED replays one). H5ML_FAULT_SWEEP=N multiplies
the number of faults, truncations, flips and signals (default 1, about a minute in all).
"""
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5ml_helpers as H

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
import faultlib as F  # noqa: E402

SWEEP = max(1, int(os.environ.get("H5ML_FAULT_SWEEP") or 1))
# small chunks and a checkpoint every millisecond: many chunk writes and flushes to cut into
CONVERT_OPTS = ["--checkpoint", "0.001", "--chunk-structures", "64", "--chunk-atoms", "1024", "-q"]
COMPRESSIONS = [[], ["-c", "none"], ["-p", "fast"]]
KINDS = [("ENOSPC", "all"), ("ENOSPC", "grow"), ("EIO", "all")]
COUNTS = {}  # faults injected per kind, printed by the tests


def count(kind, n=1):
    COUNTS[kind] = COUNTS.get(kind, 0) + n


def no_noise(err):
    """What must never appear: HDF5's own printing, crashes."""
    for bad in ("HDF5-DIAG", "infinite loop", "Segmentation", "Aborted", "double free"):
        assert bad not in err, err


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fx(h5ml, tmp_path_factory, sample_frame_texts):
    """The shim, an input of 4 x the sample (1200 distinct frames), its clean conversion and
    the bytes a clean run writes with each compression."""
    class Fx:
        pass
    x = Fx()
    x.dir = tmp_path_factory.mktemp("faults")
    x.shim = F.shim_path(h5ml, x.dir)
    x.inp = F.XyzInput(x.dir / "in.xyz", sample_frame_texts, 4)
    x.clean_path = x.dir / "clean.h5"
    H.convert(x.inp.path, x.clean_path)
    x.clean = H.load_h5(x.clean_path)
    assert len(x.clean["labels/energy"]) == x.inp.n == 1200
    x.totals = {}
    for comp in COMPRESSIONS:
        r = F.run_faulty(h5ml, ["convert", x.inp.path, "-o", x.dir / "measure.h5", *CONVERT_OPTS, *comp],
                         x.shim, "measure.h5", 10 ** 15, logdir=x.dir)
        assert r.code == 0 and r.faults == 0 and r.written and r.written > 100000, r
        x.totals[tuple(comp)] = r.written
        os.remove(x.dir / "measure.h5")
    print(f"\nclean runs write {x.totals} bytes")
    return x


def budgets(rnd, total, n):
    """n budgets from 0 (before the superblock) to the end of a clean run: a few fixed small
    ones, then half uniform and half log-uniform (dense where the file is being made)."""
    fixed = [0, 47, 48, 4096]
    out = fixed[:min(n, len(fixed))]
    while len(out) < n:
        if len(out) % 2:
            out.append(rnd.randrange(0, total))
        else:
            out.append(int(np.exp(rnd.uniform(np.log(48), np.log(total)))))
    return out


def fault_args(rnd):
    errno, mode = rnd.choice(KINDS)
    return errno, mode, rnd.choice(COMPRESSIONS)


def check_message(r, name, errno):
    assert r.code == 2, r
    no_noise(r.err)
    assert name in r.err, r
    assert F.ERRNO_TEXT[errno] in r.err, r


def finish_with_append(h5ml, fx, out, n, workdir):
    """Appends the frames after the first n to `out` and compares with the clean file."""
    rest = fx.inp.write_rest(n, workdir / "rest.xyz")
    code, o, e = H.run("convert", rest, "-o", out, "--append", "-q")
    assert code == 0, e
    code, o, e = H.run("diff", out, fx.clean_path)
    assert code == 0, f"after a fault at N={n} and an append of the rest: {o}{e}"


KEEPS = re.compile(r"keeps its first (\d+) structures \((\d+) at its last checkpoint\)")


def check_kept_file(h5ml, fx, out, r, what, workdir, k=0):
    """The file a failed write left: the message's counts, a prefix of the input with every
    structure of its last checkpoint, a clean verify, and --append continuing to the clean
    conversion. k: structures it held before the run (an append)."""
    m = KEEPS.search(r.err)
    assert m, what
    n_msg, committed = int(m.group(1)), int(m.group(2))
    assert committed >= k, what
    assert f"continue with --append from frame {n_msg - k} of" in r.err, what
    n = F.check_prefix(out, fx.clean, at_least=committed)
    assert n == n_msg, what
    code, o, e = H.run("verify", out)
    assert code == 0, f"{what}\nverify: {o}{e}"
    finish_with_append(h5ml, fx, out, n, workdir)


def check_or_damaged(h5ml, fx, out, r, what, workdir, mode, damaged, k=0):
    """check_kept_file, which must hold where a full disk fails only what needs new space
    (mode "grow", ext4 and xfs). Where any write can fail (mode "all": a failing device, a
    full copy-on-write filesystem), a write that rewrites a metadata block in place, or that
    HDF5 orders outside SWMR's rules (an object created while SWMR writing, such as
    /labels/info at its first use), can fail after blocks that depend on it reached the
    disk: rarely (about 1 fault in 1000 here), one object of the file is then unreadable.
    Such a file is counted, and must still open and be checked without a crash or a hang."""
    try:
        check_kept_file(h5ml, fx, out, r, what, workdir, k)
    except Exception as exc:
        if mode != "all":
            raise
        damaged.append(f"{what}: {str(exc).splitlines()[0][:300]}")
        with h5py.File(out, "r"):
            pass
        for cmd in (["verify", out], ["inspect", out]):
            code, o, e = H.run(*cmd, timeout=60)
            assert 0 <= code <= 2, f"{what}: h5ml {cmd[0]}: {code} {e}"
            no_noise(e)


def report_damaged(damaged, points):
    for d in damaged:
        print("DAMAGED (one object unreadable after a failed in-place write):", d)
    assert len(damaged) <= max(1, points // 10), f"{len(damaged)} damaged files of {points} faults"

# ------------------------------------------------------- 1. disk full, failing writes


def test_faults_convert_new_file(h5ml, fx, tmp_path, seed):
    rnd = random.Random(seed)
    n_points = 34 * SWEEP
    outcomes = {"no file": 0, "kept": 0, "not reached": 0}
    damaged = []
    for i in range(n_points):
        errno, mode, comp = fault_args(rnd)
        budget = budgets(random.Random(seed + i), fx.totals[tuple(comp)], n_points)[i]
        out = tmp_path / "out.h5"
        for p in tmp_path.glob("out.h5*"):
            p.unlink()
        r = F.run_faulty(h5ml, ["convert", fx.inp.path, "-o", out, *CONVERT_OPTS, *comp], fx.shim,
                         "out.h5", budget, errno, mode, logdir=tmp_path)
        what = f"point {i}: {errno} {mode} {comp} after {budget} bytes (seed {seed}): {r}"
        assert r.code >= 0, what
        if r.faults == 0:  # grow mode: everything after the budget overwrote blocks in place
            assert r.code == 0, what
            outcomes["not reached"] += 1
            assert H.run("diff", out, fx.clean_path)[0] == 0, what
            continue
        count(f"convert new {errno} {mode}")
        check_message(r, "out.h5", errno)
        assert F.tmp_files(tmp_path, "out.h5") == [], what
        if not out.exists():
            # failed while the file was made: it never appeared
            assert "nothing written to" in r.err and "run the command again" in r.err, what
            outcomes["no file"] += 1
            continue
        check_or_damaged(h5ml, fx, out, r, what, tmp_path, mode, damaged)
        outcomes["kept"] += 1
    print(f"convert of a new file: {n_points} budgets: {outcomes}, {len(damaged)} damaged; faults by kind {COUNTS}")
    report_damaged(damaged, n_points)
    assert outcomes["kept"] >= n_points // 3


def test_faults_convert_replacing_keeps_old_file(h5ml, fx, tmp_path, seed):
    rnd = random.Random(seed)
    out = tmp_path / "out.h5"
    H.convert(fx.inp.write_head(100, tmp_path / "old.xyz"), out)
    old = out.read_bytes()
    n_points = 12 * SWEEP
    for i in range(n_points):
        errno, mode, comp = fault_args(rnd)
        budget = budgets(random.Random(seed + i), fx.totals[tuple(comp)], n_points)[i]
        r = F.run_faulty(h5ml, ["convert", fx.inp.path, "-o", out, *CONVERT_OPTS, *comp], fx.shim,
                         "out.h5", budget, errno, mode, logdir=tmp_path)
        what = f"point {i}: {errno} {mode} {comp} after {budget} bytes (seed {seed}): {r}"
        if r.faults == 0:
            assert r.code == 0 and H.run("diff", out, fx.clean_path)[0] == 0, what
            out.write_bytes(old)
            continue
        count(f"convert replace {errno} {mode}")
        check_message(r, "out.h5", errno)
        assert "out.h5 is unchanged" in r.err, what
        assert out.read_bytes() == old, what
        assert F.tmp_files(tmp_path, "out.h5") == [], what
    code, o, e = H.run("verify", out)
    assert code == 0 and "OK (100 structures" in o, o + e
    print(f"convert replacing a file: {n_points} budgets; faults by kind {COUNTS}")


def test_faults_convert_append(h5ml, fx, tmp_path, seed):
    rnd = random.Random(seed)
    k = 300
    base = tmp_path / "base.h5"
    H.convert(fx.inp.write_head(k, tmp_path / "head.xyz"), base, *CONVERT_OPTS)
    rest = fx.inp.write_rest(k, tmp_path / "rest0.xyz")
    n_points = 12 * SWEEP
    total = fx.totals[()]
    damaged = []
    for i in range(n_points):
        errno, mode, _ = fault_args(rnd)
        out = tmp_path / "out.h5"
        shutil.copyfile(base, out)
        budget = budgets(random.Random(seed + i), total, n_points)[i]
        r = F.run_faulty(h5ml, ["convert", rest, "-o", out, "--append", *CONVERT_OPTS], fx.shim,
                         "out.h5", budget, errno, mode, logdir=tmp_path)
        what = f"point {i}: {errno} {mode} after {budget} bytes (seed {seed}): {r}"
        if r.faults == 0:
            assert r.code == 0 and H.run("diff", out, fx.clean_path)[0] == 0, what
            continue
        count(f"convert append {errno} {mode}")
        check_message(r, "out.h5", errno)
        check_or_damaged(h5ml, fx, out, r, what, tmp_path, mode, damaged, k)
    print(f"convert --append: {n_points} budgets, {len(damaged)} damaged; faults by kind {COUNTS}")
    report_damaged(damaged, n_points)


@pytest.fixture(scope="module")
def gen_total(h5ml, fx):
    r = F.run_faulty(h5ml, ["signals", "generate", "-o", fx.dir / "gmeasure.h5", "--per-class", "3",
                            "--length", "8192", "-q"], fx.shim, "gmeasure.h5", 10 ** 15, logdir=fx.dir)
    assert r.code == 0 and r.written > 100000, r
    return r.written


@pytest.mark.parametrize("existing", [False, True])
def test_faults_signals_generate(h5ml, fx, gen_total, tmp_path, seed, existing):
    rnd = random.Random(seed)
    out = tmp_path / "sig.h5"
    old = None
    if existing:
        code, o, e = H.run("signals", "generate", "-o", out, "--per-class", "1", "--length", "64", "-q")
        assert code == 0, e
        old = out.read_bytes()
    n_points = 8 * SWEEP
    for i in range(n_points):
        errno, mode, _ = fault_args(rnd)
        budget = budgets(random.Random(seed + i), gen_total, n_points)[i]
        r = F.run_faulty(h5ml, ["signals", "generate", "-o", out, "--per-class", "3", "--length", "8192",
                                "-q", "-c", rnd.choice(["gzip", "lzf", "none"])],
                         fx.shim, "sig.h5", budget, errno, mode, logdir=tmp_path)
        what = f"point {i}: {errno} {mode} after {budget} bytes (seed {seed}): {r}"
        if r.faults == 0:
            assert r.code == 0, what
            assert H.run("verify", out)[0] == 0, what
            if old is not None:
                out.write_bytes(old)
            else:
                out.unlink()
            continue
        count(f"signals generate {errno} {mode}")
        check_message(r, "sig.h5", errno)
        assert "nothing written to" in r.err, what
        assert F.tmp_files(tmp_path, "sig.h5") == [], what
        if old is None:
            assert not out.exists(), what
        else:
            assert out.read_bytes() == old, what
    print(f"signals generate{' over a file' if existing else ''}: {n_points} budgets; faults {COUNTS}")


def test_faults_signals_import(h5ml, fx, tmp_path, seed):
    mat = H.REPO / "data" / "mat"
    out = tmp_path / "imp.h5"
    r = F.run_faulty(h5ml, ["signals", "import", mat, "-o", out, "-q"], fx.shim, "imp.h5", 10 ** 15,
                     logdir=tmp_path)
    assert r.code == 0, r
    clean = out.read_bytes()
    total = r.written
    out.unlink()
    rnd = random.Random(seed)
    n_points = 6 * SWEEP
    for i in range(n_points):
        errno, mode, _ = fault_args(rnd)
        budget = budgets(random.Random(seed + i), total, n_points)[i]
        r = F.run_faulty(h5ml, ["signals", "import", mat, "-o", out, "-q"], fx.shim, "imp.h5", budget,
                         errno, mode, logdir=tmp_path)
        what = f"point {i}: {errno} {mode} after {budget} bytes (seed {seed}): {r}"
        if r.faults == 0:
            assert r.code == 0 and len(out.read_bytes()) == len(clean), what
            out.unlink()
            continue
        count(f"signals import {errno} {mode}")
        check_message(r, "imp.h5", errno)
        assert not out.exists() and F.tmp_files(tmp_path, "imp.h5") == [], what
    print(f"signals import: {n_points} budgets; faults {COUNTS}")


# ------------------------------------------------------------- 2. read-only targets


@pytest.fixture
def shared_dir():
    """A directory user nobody can enter (pytest's own are private to root)."""
    d = Path(tempfile.mkdtemp(prefix="h5ml-ro-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    subprocess.run(["chattr", "-R", "-i", str(d)], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(*args):
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", H.h5ml_bin(),
                        *map(str, args)], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def nobody_can_run():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    try:
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", H.h5ml_bin(),
                               "version"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not nobody_can_run(), reason="needs root, setpriv, and a program user nobody can run")
def test_read_only_targets_as_nobody(h5ml, sample_path, shared_dir):
    inp = shared_dir / "in.xyz"
    shutil.copyfile(sample_path, inp)
    inp.chmod(0o644)
    ro = shared_dir / "ro"
    ro.mkdir(mode=0o555)
    ro.chmod(0o555)
    existing = shared_dir / "existing.h5"
    H.convert(sample_path, existing)
    existing.chmod(0o444)
    before = existing.read_bytes()
    cases = [
        (["convert", inp, "-o", ro / "out.h5"], "ro/out.h5"),
        (["convert", inp, "-o", existing, "--append"], "existing.h5"),
        (["convert", inp, "-o", existing], "existing.h5"),
        (["merge", existing, existing.parent / "in.xyz", "-o", ro / "m.h5"], "in.xyz"),
        (["signals", "generate", "-o", ro / "sig.h5", "--per-class", "1", "--length", "64"], "ro/sig.h5"),
        (["signals", "import", H.REPO / "data" / "mat", "-o", ro / "imp.h5"], "ro/imp.h5"),
        (["repair", existing], "existing.h5"),
    ]
    for args, name in cases:
        code, o, e = as_nobody(*args)
        assert code == 2, (args, code, o, e)
        no_noise(e)
        assert name in e, (args, e)
        if name != "in.xyz":
            assert "Permission denied" in e, (args, e)
    assert sorted(os.listdir(ro)) == []
    assert existing.read_bytes() == before
    assert sorted(os.listdir(shared_dir)) == ["existing.h5", "in.xyz", "ro"]


def chattr_works(d):
    probe = d / "probe"
    probe.write_bytes(b"x")
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    probe.unlink()
    return ok


def test_immutable_targets(h5ml, sample_path, shared_dir):
    """chattr +i holds even for root: an immutable file refuses --append and a replace, an
    immutable directory refuses new files."""
    if shutil.which("chattr") is None or not chattr_works(shared_dir):
        pytest.skip("chattr +i is not supported here")
    existing = shared_dir / "existing.h5"
    H.convert(sample_path, existing)
    before = existing.read_bytes()
    d = shared_dir / "frozen"
    d.mkdir()
    subprocess.run(["chattr", "+i", str(existing), str(d)], check=True)
    try:
        for args, name in [(["convert", sample_path, "-o", existing, "--append", "-q"], "existing.h5"),
                           (["convert", sample_path, "-o", d / "out.h5", "-q"], "frozen/out.h5"),
                           (["signals", "generate", "-o", d / "s.h5", "--per-class", "1", "--length", "64"],
                            "frozen/s.h5")]:
            code, o, e = H.run(*args)
            assert code == 2, (args, code, o, e)
            no_noise(e)
            assert name in e and "Operation not permitted" in e, (args, e)
        assert existing.read_bytes() == before
        assert os.listdir(d) == []
    finally:
        subprocess.run(["chattr", "-i", str(existing), str(d)], capture_output=True)


# --------------------------------------------------------------- 3. a second writer


@pytest.fixture(scope="module")
def big(h5ml, tmp_path_factory, sample_frame_texts):
    """An input whose conversion takes about 0.7 s here (calibrated), and its clean file."""
    class Big:
        pass
    b = Big()
    b.dir = tmp_path_factory.mktemp("signals")
    probe = F.XyzInput(b.dir / "probe.xyz", sample_frame_texts, 10)
    t = time.monotonic()
    H.convert(probe.path, b.dir / "probe.h5", "--checkpoint", "0.05")
    dt = max(time.monotonic() - t, 0.05)
    copies = int(min(max(10 * 0.7 / dt, 12), 400))
    b.inp = F.XyzInput(b.dir / "big.xyz", sample_frame_texts, copies)
    b.clean_path = b.dir / "clean.h5"
    t = time.monotonic()
    H.convert(b.inp.path, b.clean_path, "--checkpoint", "0.05")
    b.seconds = time.monotonic() - t
    b.clean = H.load_h5(b.clean_path)
    print(f"\nbig.xyz: {copies} copies, {b.inp.n} structures; conversion {b.seconds:.2f} s")
    return b


def test_second_writer_refused_cli_and_python(h5ml, big, tmp_path, sample_path):
    import h5ml as pyh5ml

    out = tmp_path / "out.h5"
    p = F.start(h5ml, ["convert", big.inp.path, "-o", out, "--checkpoint", "0.05", "-q"])
    assert F.wait_for(out.exists), "the first writer made no file"
    refused = 0
    for args in (["convert", sample_path, "-o", out, "--append", "-q"], ["convert", sample_path, "-o", out, "-q"],
                 ["repair", out]):
        if p.poll() is not None:
            break
        code, o, e = H.run(*args)
        assert code == 2, (args, code, o, e)
        assert "out.h5" in e and "another h5ml writer has this file open" in e, (args, e)
        refused += 1
    if p.poll() is None:
        with pytest.raises(Exception, match="another h5ml writer has this file open"):
            pyh5ml.HDF5DatasetWriter(out, mode="a")
        refused += 1
    assert refused >= 2, f"the first writer finished too soon ({big.seconds:.2f} s)"
    o, e = p.communicate(timeout=120)
    assert p.returncode == 0, e
    code, o, e = H.run("diff", out, big.clean_path)
    assert code == 0, o + e
    assert not list(tmp_path.glob("*.tmp"))


def test_python_writer_holds_the_lock(h5ml, tmp_path, sample_path, sample_data):
    import h5ml as pyh5ml

    out = tmp_path / "py.h5"
    w = pyh5ml.HDF5DatasetWriter(out)
    try:
        code, o, e = H.run("convert", sample_path, "-o", out, "--append", "-q")
        assert code == 2 and "another h5ml writer has this file open" in e, (code, e)
        with pytest.raises(Exception, match="another h5ml writer"):
            pyh5ml.HDF5DatasetWriter(out, mode="a")
    finally:
        w.finalize()
    code, o, e = H.run("convert", sample_path, "-o", out, "--append", "-q")
    assert code == 0, e
    code, o, e = H.run("verify", out)
    assert code == 0 and "OK (300 structures" in o, o + e


# ------------------------------------------------------- 4. truncated and flipped files

PY_READ = r"""
import sys, json
import numpy as np
import h5ml
from h5ml.signals import load_signal_file
kind = sys.argv[1]
for path in sys.argv[2:]:
    try:
        if kind == "atoms":
            r = h5ml.HDF5DatasetReader(path)
            n = len(r)
            for i in range(n):
                r.get(i)
            if n:
                r.read_batch(list(range(n))[::-1])
            r.metadata
        else:
            load_signal_file(path)
        print("ok", path, flush=True)
    except Exception as e:
        msg = str(e).replace("\n", " ")
        print("error", path, type(e).__name__, msg[:200], flush=True)
"""


@pytest.fixture(scope="module")
def damage_sources(h5ml, tmp_path_factory, sample_path):
    d = tmp_path_factory.mktemp("damage")
    files = {}
    H.convert(sample_path, d / "atoms_gzip.h5")
    H.convert(sample_path, d / "atoms_none.h5", "-c", "none", "--chunk-atoms", "2048")
    files["atoms_gzip"] = (d / "atoms_gzip.h5", "atoms")
    files["atoms_none"] = (d / "atoms_none.h5", "atoms")
    code, o, e = H.run("signals", "generate", "-o", d / "sig.h5", "--per-class", "2", "--length", "2048", "-q")
    assert code == 0, e
    files["signals_split"] = (d / "sig.h5", "signals")
    code, o, e = H.run("signals", "import", H.REPO / "data" / "mat", "-o", d / "flat.h5", "--flat", "-q")
    assert code == 0, e
    files["signals_flat"] = (d / "flat.h5", "signals")
    return files


def damaged_variants(src, rnd, n_trunc, n_flip, d):
    raw = src.read_bytes()
    size = len(raw)
    cuts = sorted(set([0, 1, 8, 47, 48, 96, 512, 2048, size // 2, size - 1, size - 4096]
                      + [rnd.randrange(1, size) for _ in range(n_trunc)]))
    out = []
    for c in cuts:
        if 0 <= c < size:
            p = d / f"{src.stem}.cut{c}.h5"
            p.write_bytes(raw[:c])
            out.append((p, f"truncated at {c} of {size}"))
    for k in range(n_flip):
        b = bytearray(raw)
        # most flips land where the metadata is (the first pages and the end), some anywhere
        region = rnd.random()
        if region < 0.5:
            at = rnd.randrange(0, min(size, 8192))
        elif region < 0.7:
            at = rnd.randrange(max(0, size - 16384), size)
        else:
            at = rnd.randrange(0, size)
        bits = [(at, rnd.randrange(8))] + [(rnd.randrange(0, size), rnd.randrange(8))
                                           for _ in range(rnd.randrange(0, 3))]
        for a, bit in bits:
            b[a] ^= 1 << bit
        p = d / f"{src.stem}.flip{k}.h5"
        p.write_bytes(bytes(b))
        out.append((p, f"bits flipped at {bits}"))
    return out


# Crashes inside libhdf5 that h5ml cannot prevent by checking before its call (fuzz/known-hdf5/:
# KNOWN lists a pattern of each one's stack). A damaged file that meets one of these is reported
# and counted, not failed; any other crash fails the test.
KNOWN_HDF5 = [ln.split(None, 1)[1].strip() for ln in (H.REPO / "fuzz" / "known-hdf5" / "KNOWN").read_text().splitlines()
              if ln.strip() and not ln.startswith("#") and len(ln.split(None, 1)) == 2]
RUNTIME_FRAME = re.compile(r"sanitizer|__interceptor|libc\.so|libc-|nptl|raise|abort|asan|ubsan|"
                           r"in (malloc|calloc|realloc|free|memcpy|memmove|memset) ")


def known_hdf5_crash(argv, env, report):
    """The KNOWN pattern the crash of `argv` matches (its first four frames outside the
    runtimes: ASan's report when the run was sanitized, else gdb's backtrace of a rerun), or
    None."""
    frames = re.findall(r"^\s*#\d+\s.*$", report, re.M)
    if not frames and shutil.which("gdb"):
        g = subprocess.run(["gdb", "-q", "-batch", "-ex", "run", "-ex", "bt", "--args", *map(str, argv)],
                           capture_output=True, timeout=300, env=env)
        frames = re.findall(r"^#\d+\s.*$", g.stdout.decode("utf-8", "replace"), re.M)
    top = [f for f in frames if not RUNTIME_FRAME.search(f)][:4]
    return next((k for k in KNOWN_HDF5 if any(k in f for f in top)), None)


@pytest.mark.parametrize("which", ["atoms_gzip", "atoms_none", "signals_split", "signals_flat"])
def test_damaged_files_never_crash(h5ml, damage_sources, which, tmp_path, seed):
    src, kind = damage_sources[which]
    rnd = random.Random(seed)
    variants = damaged_variants(src, rnd, 10 * SWEEP, 14 * SWEEP, tmp_path)
    results = {}
    for path, how in variants:
        cmds = [["verify", path], ["inspect", path]]
        if kind == "atoms":
            cmds.append(["export", path, "-o", tmp_path / "x.xyz", "-q"])
        for cmd in cmds:
            try:
                code, o, e = H.run(*cmd, timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"h5ml {cmd[0]} hangs on {src.name} {how} (seed {seed})")
            # a crash: killed by a signal, or (sanitized command line) a sanitizer's report
            if not 0 <= code <= 2 or "ERROR: AddressSanitizer" in e or "ERROR: LeakSanitizer" in e:
                known = known_hdf5_crash([H.h5ml_bin(), *cmd], dict(os.environ), e)
                assert known, f"h5ml {cmd[0]} died (signal {-code}) on {src.name} {how} (seed {seed}): {e}"
                print(f"known libhdf5 crash ({known}): h5ml {cmd[0]} on {src.name} {how} (seed {seed})")
                count("known libhdf5 crashes")
                results[(cmd[0], "known libhdf5 crash")] = results.get((cmd[0], "known libhdf5 crash"), 0) + 1
                continue
            no_noise(e)
            if code == 2:
                assert path.name in e, (cmd, how, e)
            results[(cmd[0], code)] = results.get((cmd[0], code), 0) + 1
    # the Python readers, all variants in one process (a crash there is found per file below)
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-c", PY_READ, kind, *[str(v[0]) for v in variants]],
                       capture_output=True, timeout=300, env=env)
    crashed = set()
    lines = p.stdout.decode().splitlines()
    if p.returncode != 0:
        lines = []  # the file-by-file runs' lines instead
        for path, how in variants:
            argv = [sys.executable, "-c", PY_READ, kind, str(path)]
            q = subprocess.run(argv, capture_output=True, timeout=120, env=env)
            if q.returncode == 0:
                lines += q.stdout.decode().splitlines()
                continue
            report = q.stderr.decode("utf-8", "replace")
            known = known_hdf5_crash(argv, env, report)
            assert known, (f"Python reader died ({q.returncode}) on {src.name} {how} (seed {seed}): "
                           f"{report[-2000:]}")
            print(f"known libhdf5 crash ({known}): Python reader on {src.name} {how} (seed {seed})")
            count("known libhdf5 crashes")
            crashed.add(str(path))
        assert crashed, f"Python reader failed as a batch only: {p.stderr.decode()[-2000:]}"
    assert len(lines) == len(variants) - len(crashed), lines
    py = {"ok": 0, "error": 0}
    for line in lines:
        py[line.split()[0]] += 1
    count("damaged files", len(variants))
    py["known libhdf5 crash"] = len(crashed)
    print(f"{src.name}: {len(variants)} damaged copies; h5ml exit codes {results}; Python {py}")


# --------------------------------------------------------------- 5. SIGTERM, SIGINT

INTERRUPTED = re.compile(r"interrupted by (SIGTERM|SIGINT): (\d+) structures written to (\S+) \(finalized\); "
                         r"continue with --append from frame (\d+) of (\S+)")


def check_finalized_prefix(path, clean, n):
    """A finalized file of exactly n structures of the clean file, all lengths equal."""
    data, meta = F.read_all(path)
    assert bool(meta["finalized"]), meta
    assert int(meta["num_structures"]) == n, (meta["num_structures"], n)
    assert len(data["labels/energy"]) == n
    assert F.check_prefix(path, clean, at_least=n) == n
    m = int(data["structures/atomic_numbers_splits"][-1])
    for name in F.PER_ATOM:
        assert len(data[name]) == m, name
    code, o, e = H.run("verify", path)
    assert code == 0 and f"OK ({n} structures" in o and "warning" not in (o + e), o + e


def test_sigterm_sigint_during_convert(h5ml, big, tmp_path, seed):
    rnd = random.Random(seed)
    runs = 20 * SWEEP
    out = tmp_path / "out.h5"
    stopped = finished = early = 0
    for i in range(runs):
        signo = rnd.choice([signal.SIGTERM, signal.SIGINT])
        delay = round(rnd.uniform(0.02, 0.9 * big.seconds), 3)
        for p in tmp_path.glob("out.h5*"):
            p.unlink()
        proc = F.start(h5ml, ["convert", big.inp.path, "-o", out, "--checkpoint", "0.05", "-q"])
        code, o, e, running = F.signal_after(proc, delay, signo)
        what = f"run {i}: {signo.name} after {delay} s (seed {seed}): exit {code}: {e}"
        no_noise(e)
        if code == 0:  # finished before the signal was seen
            finished += 1
            assert H.run("diff", out, big.clean_path)[0] == 0, what
            continue
        if code == -signo:  # came before the program set its handler: it had written nothing
            assert not out.exists() and F.tmp_files(tmp_path, "out.h5") == [], what
            early += 1
            continue
        assert code == 128 + signo, what
        m = INTERRUPTED.search(e)
        assert m and m.group(1) == signo.name and m.group(3) == str(out), what
        n, frames = int(m.group(2)), int(m.group(4))
        assert n == frames, what
        assert F.tmp_files(tmp_path, "out.h5") == [], what
        check_finalized_prefix(out, big.clean, n)
        rest = big.inp.write_rest(n, tmp_path / "rest.xyz")
        code, o, e = H.run("convert", rest, "-o", out, "--append", "-q")
        assert code == 0, e
        assert H.run("diff", out, big.clean_path)[0] == 0, what
        stopped += 1
    count("SIGTERM/SIGINT convert", runs)
    print(f"convert: {runs} signals, {stopped} stopped and finalized, {finished} finished first, {early} came before "
          f"the program was ready")
    assert stopped >= runs // 2


def test_sigterm_convert_replacing_keeps_old_file(h5ml, big, tmp_path, seed):
    rnd = random.Random(seed)
    out = tmp_path / "out.h5"
    H.convert(big.inp.write_head(50, tmp_path / "old.xyz"), out)
    old = out.read_bytes()
    aside_re = re.compile(r"interrupted by (SIGTERM|SIGINT): (\S+) is unchanged; the (\d+) structures converted so "
                          r"far are in (\S+) \(finalized\): move it over \S+ and continue with --append from frame "
                          r"(\d+) of")
    for i in range(3 * SWEEP):
        signo = rnd.choice([signal.SIGTERM, signal.SIGINT])
        delay = round(rnd.uniform(0.1, 0.8 * big.seconds), 3)
        proc = F.start(h5ml, ["convert", big.inp.path, "-o", out, "--checkpoint", "0.05", "-q"])
        code, o, e, running = F.signal_after(proc, delay, signo)
        what = f"run {i}: {signo.name} after {delay} s (seed {seed}): exit {code}: {e}"
        if code == 0:
            out.write_bytes(old)
            continue
        if code == -signo:  # before the program set its handler
            assert out.read_bytes() == old and F.tmp_files(tmp_path, "out.h5") == [], what
            continue
        assert code == 128 + signo, what
        m = aside_re.search(e)
        assert m and m.group(2) == str(out), what
        n, kept = int(m.group(3)), Path(m.group(4))
        assert out.read_bytes() == old, what
        assert F.tmp_files(tmp_path, "out.h5") == [kept.name], what
        check_finalized_prefix(kept, big.clean, n)
        # what the message says to do
        os.replace(kept, out)
        rest = big.inp.write_rest(n, tmp_path / "rest.xyz")
        assert H.run("convert", rest, "-o", out, "--append", "-q")[0] == 0
        assert H.run("diff", out, big.clean_path)[0] == 0, what
        out.write_bytes(old)
    count("SIGTERM/SIGINT convert replace", 3 * SWEEP)


def test_sigterm_convert_append(h5ml, big, tmp_path, seed):
    rnd = random.Random(seed)
    k = big.inp.n // 5
    base = tmp_path / "base.h5"
    H.convert(big.inp.write_head(k, tmp_path / "head.xyz"), base)
    rest = big.inp.write_rest(k, tmp_path / "rest0.xyz")
    app_re = re.compile(r"interrupted by (SIGTERM|SIGINT): (\d+) structures appended to (\S+) \((\d+) in all, "
                        r"finalized\); continue with --append from frame (\d+) of (\S+)")
    for i in range(3 * SWEEP):
        out = tmp_path / "out.h5"
        shutil.copyfile(base, out)
        signo = rnd.choice([signal.SIGTERM, signal.SIGINT])
        delay = round(rnd.uniform(0.05, 0.6 * big.seconds), 3)
        proc = F.start(h5ml, ["convert", rest, "-o", out, "--append", "--checkpoint", "0.05", "-q"])
        code, o, e, running = F.signal_after(proc, delay, signo)
        what = f"run {i}: {signo.name} after {delay} s (seed {seed}): exit {code}: {e}"
        if code == 0:
            continue
        if code == -signo:  # before the program set its handler
            assert out.read_bytes() == base.read_bytes(), what
            continue
        assert code == 128 + signo, what
        m = app_re.search(e)
        assert m, what
        added, total, frame = int(m.group(2)), int(m.group(4)), int(m.group(5))
        assert total == k + added and frame == added and m.group(6) == str(rest), what
        check_finalized_prefix(out, big.clean, total)
        assert H.run("convert", big.inp.write_rest(total, tmp_path / "rest.xyz"), "-o", out, "--append",
                     "-q")[0] == 0
        assert H.run("diff", out, big.clean_path)[0] == 0, what
    count("SIGTERM/SIGINT convert append", 3 * SWEEP)


def test_second_signal_kills_at_once(h5ml, big, tmp_path, seed):
    """Two signals in a row: the second may end the program at once (exit by the signal);
    the file is then what a killed writer leaves, and it verifies."""
    rnd = random.Random(seed)
    outcomes = {}
    for i in range(3 * SWEEP):
        out = tmp_path / f"out{i}.h5"
        proc = F.start(h5ml, ["convert", big.inp.path, "-o", out, "--checkpoint", "0.05", "-q"])
        delay = round(rnd.uniform(0.1, 0.6 * big.seconds), 3)
        code, o, e, running = F.signal_after(proc, delay, signal.SIGTERM, second=0.0005)
        what = f"run {i}: after {delay} s (seed {seed}): exit {code}: {e}"
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), what
        outcomes[code] = outcomes.get(code, 0) + 1
        if out.exists():
            n = F.check_prefix(out, big.clean)
            code, o, e = H.run("verify", out)
            assert code == 0, what + o + e
            rest = big.inp.write_rest(n, tmp_path / "rest.xyz")
            assert H.run("convert", rest, "-o", out, "--append", "-q")[0] == 0
            assert H.run("diff", out, big.clean_path)[0] == 0, what
    print(f"two SIGTERMs: exit codes {outcomes}")


@pytest.fixture(scope="module")
def gen_big(h5ml, tmp_path_factory):
    """A generate run of about half a second here (calibrated) and its clean file."""
    d = tmp_path_factory.mktemp("gensig")
    t = time.monotonic()
    assert H.run("signals", "generate", "-o", d / "probe.h5", "--per-class", "4", "--length", "20480", "-q")[0] == 0
    dt = max(time.monotonic() - t, 0.02)
    per_class = int(min(max(4 * 0.5 / dt, 4), 200))
    for attempt in range(3):
        args = ["--per-class", str(per_class), "--length", "20480", "-q"]
        t = time.monotonic()
        assert H.run("signals", "generate", "-o", d / "clean.h5", *args)[0] == 0
        seconds = time.monotonic() - t
        if seconds >= 0.35 or per_class >= 400:
            break
        per_class = int(min(per_class * 0.5 / seconds + 1, 400))  # the probe's start-up time misled
    print(f"\ngenerate: {per_class} per class, {seconds:.2f} s")
    return d / "clean.h5", args, seconds


def test_sigterm_sigint_during_generate(h5ml, gen_big, tmp_path, seed):
    clean, args, seconds = gen_big
    rnd = random.Random(seed)
    runs = 20 * SWEEP
    out = tmp_path / "sig.h5"
    stopped = 0
    for i in range(runs):
        existing = i % 2 == 1
        if existing:
            assert H.run("signals", "generate", "-o", out, "--per-class", "1", "--length", "64", "-q")[0] == 0
            old = out.read_bytes()
        elif out.exists():
            out.unlink()
        signo = rnd.choice([signal.SIGTERM, signal.SIGINT])
        delay = round(rnd.uniform(0.01, 0.9 * seconds), 3)
        proc = F.start(h5ml, ["signals", "generate", "-o", out, *args])
        code, o, e, running = F.signal_after(proc, delay, signo)
        what = f"run {i}: {signo.name} after {delay} s (seed {seed}): exit {code}: {e}"
        no_noise(e)
        assert F.tmp_files(tmp_path, "sig.h5") == [], what
        if code == 0:
            assert H.run("diff", out, clean)[0] == 0, what
            continue
        if code != -signo:  # else it came before the program set its handler
            assert code == 128 + signo, what
            assert f"interrupted by {signo.name}: nothing written to {out}" in e, what
        if existing:
            assert out.read_bytes() == old, what
            assert H.run("verify", out)[0] == 0
        else:
            assert not out.exists(), what
        stopped += code > 0
    count("SIGTERM/SIGINT generate", runs)
    print(f"generate: {runs} signals, {stopped} stopped")
    assert stopped >= runs // 2
    # the run that is let finish gives the clean file
    assert H.run("signals", "generate", "-o", out, *args)[0] == 0
    assert H.run("diff", out, clean)[0] == 0


def test_sigint_during_merge(h5ml, big, tmp_path, seed):
    rnd = random.Random(seed)
    out = tmp_path / "m.h5"
    merge_re = re.compile(r"interrupted by SIGINT: (\d+) of (\d+) structures merged into (\S+) \(finalized\)")
    for i in range(2 * SWEEP):
        if out.exists():
            out.unlink()
        proc = F.start(h5ml, ["merge", big.clean_path, big.clean_path, "-o", out, "-q"])
        delay = round(rnd.uniform(0.05, 0.5 * big.seconds), 3)
        code, o, e, running = F.signal_after(proc, delay, signal.SIGINT)
        if code == 0 or (code == -signal.SIGINT and not out.exists()):
            continue  # finished first, or the signal came before the program set its handler
        assert code == 128 + signal.SIGINT, e
        m = merge_re.search(e)
        assert m and int(m.group(2)) == 2 * big.inp.n, e
        n = int(m.group(1))
        data, meta = F.read_all(out)
        assert len(data["labels/energy"]) == n and bool(meta["finalized"])
        both = {k: np.concatenate([v, v]) for k, v in big.clean.items() if k in F.PER_STRUCTURE}
        for k in F.PER_STRUCTURE:
            if k != "labels/structure_indices":
                assert F.same_bits(data[k], both[k][:n]), k
        assert H.run("verify", out)[0] == 0
    count("SIGINT merge", 2 * SWEEP)


def test_counts_of_faults(capsys):
    """Prints the faults injected by this module's tests (run with -s to see them)."""
    print(f"\nfaults injected by kind: {dict(sorted(COUNTS.items()))}")
