"""Helpers of tests/python/test_faults.py: the fault shim (faultshim.c, an LD_PRELOAD library
that fails writes), an extended XYZ input whose frames are all distinct, and checks of what
a writer left behind (a consistent prefix of the input, read with plain h5py).

Nothing here uses h5ml's Python module: files are read with h5py, the program is driven
through its command line.
"""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
SHIM_SOURCE = HERE / "faultshim.c"

PER_STRUCTURE = ["structures/cells", "structures/pbc", "labels/energy", "labels/stress",
                 "labels/stress_mask", "labels/structure_indices", "labels/info"]
PER_ATOM = ["structures/atomic_numbers", "structures/positions", "labels/forces"]
SPLITS = ["structures/atomic_numbers_splits", "labels/forces_splits"]

ERRNO_TEXT = {"ENOSPC": "No space left on device", "EIO": "Input/output error",
              "EDQUOT": "Disk quota exceeded"}


def shim_path(h5ml_bin, workdir):
    """The shim: $H5ML_FAULTSHIM, else faultshim.so beside the program (the CMake build makes
    it) when newer than its source, else compiled here with cc."""
    env = os.environ.get("H5ML_FAULTSHIM")
    if env:
        return Path(env)
    built = Path(h5ml_bin).resolve().parent / "faultshim.so"
    if built.is_file() and built.stat().st_mtime >= SHIM_SOURCE.stat().st_mtime:
        return built
    out = Path(workdir) / "faultshim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-Wall", "-o", str(out), str(SHIM_SOURCE),
                    "-ldl", "-lpthread"], check=True, capture_output=True)
    return out


class FaultRun:
    """One run of the program under the shim; .code, .out, .err, .log (the shim's lines),
    .written (bytes written to the matching files) and .faults (faults injected)."""

    def __init__(self, code, out, err, log):
        self.code, self.out, self.err, self.log = code, out, err, log
        m = re.findall(r"exit: (\d+) bytes written, (\d+) faults", log)
        self.written = sum(int(w) for w, _ in m) if m else None
        self.faults = sum(int(f) for _, f in m) if m else 0

    def __repr__(self):
        return (f"exit {self.code}, {self.faults} fault(s), {self.written} bytes written\n"
                f"stderr: {self.err}\nshim log: {self.log}")


def run_faulty(h5ml_bin, args, shim, match, budget, errno="ENOSPC", mode="all", short=None,
               logdir=None, timeout=60, cwd=None):
    """Runs h5ml under the shim: writes to paths containing `match` fail once `budget` bytes
    were written to them."""
    log = Path(logdir) / "shim.log"
    if log.exists():
        log.unlink()
    env = dict(os.environ, LD_PRELOAD=str(shim), H5ML_FAULT_PATH=str(match),
               H5ML_FAULT_AFTER=str(int(budget)), H5ML_FAULT_ERRNO=errno, H5ML_FAULT_MODE=mode,
               H5ML_FAULT_LOG=str(log))
    if short is not None:
        env["H5ML_FAULT_SHORT"] = "1" if short else "0"
    p = subprocess.run([str(h5ml_bin), *map(str, args)], capture_output=True, env=env,
                       timeout=timeout, cwd=cwd)
    text = log.read_text() if log.exists() else ""
    return FaultRun(p.returncode, p.stdout.decode("utf-8", "replace"),
                    p.stderr.decode("utf-8", "replace"), text)


class XyzInput:
    """Copies of the sample's frames, every frame with its own energy (sample energy + copy
    number), so that a prefix only matches when it is the right prefix; offsets[k] is where
    frame k starts."""

    def __init__(self, path, frame_texts, copies):
        self.path = Path(path)
        parts = []
        for fr in frame_texts:
            count, comment, tail = fr.split("\n", 2)
            m = re.search(r"(?<=\s)energy=(\S+)|^energy=(\S+)", comment)
            assert m, comment
            start, end = m.span(1) if m.group(1) else m.span(2)
            parts.append(((count + "\n" + comment[:start]).encode(), float(comment[start:end]),
                          (comment[end:] + "\n" + tail).encode()))
        self.n = copies * len(parts)
        self.offsets = np.empty(self.n + 1, dtype=np.int64)
        pos, k, chunks = 0, 0, []
        for c in range(copies):
            for head, e, tail in parts:
                s = repr(e + c).encode()
                self.offsets[k] = pos
                pos += len(head) + len(s) + len(tail)
                chunks += (head, s, tail)
                k += 1
        self.offsets[self.n] = pos
        self.path.write_bytes(b"".join(chunks))

    def write_rest(self, n_done, dest):
        """The frames after the first n_done, byte for byte."""
        with open(self.path, "rb") as src, open(dest, "wb") as out:
            src.seek(int(self.offsets[n_done]))
            shutil.copyfileobj(src, out, 16 << 20)
        return dest

    def write_head(self, n, dest):
        with open(self.path, "rb") as src, open(dest, "wb") as out:
            out.write(src.read(int(self.offsets[n])))
        return dest


def read_all(path):
    """Every dataset of `path` opened with plain h5py (no SWMR flag), and /metadata."""
    data = {}
    with h5py.File(path, "r") as f:
        assert f.swmr_mode is False
        f.visititems(lambda n, o: data.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     else None)
        meta = dict(f["metadata"].attrs) if "metadata" in f else {}
    return data, meta


def consistent_prefix(data):
    """(n, m): the structures every dataset holds whole, as h5ml's reader counts them for a
    file its writer did not finalize."""
    n = min(len(data[k]) for k in PER_STRUCTURE if k in data)
    n = min([n] + [len(data[k]) - 1 for k in SPLITS])
    atoms = min(len(data[k]) for k in PER_ATOM)
    sp = data["structures/atomic_numbers_splits"]
    while n > 0 and sp[n] > atoms:
        n -= 1
    return n, int(sp[n])


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return list(a.ravel()) == list(b.ravel())
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def check_prefix(path, clean, at_least=0):
    """The file at `path` opens with plain h5py and holds a consistent prefix of the clean
    conversion `clean` (load of every dataset) of at least `at_least` structures, with
    /metadata never counting more than the datasets hold. Returns the prefix length."""
    data, meta = read_all(path)
    for name in PER_ATOM + SPLITS + [k for k in PER_STRUCTURE if k != "labels/info"]:
        assert name in data, f"{path}: {name} missing"
    n, m = consistent_prefix(data)
    assert at_least <= n <= len(clean["labels/energy"]), (path, n, at_least)
    for name in PER_STRUCTURE:
        if name in data:
            assert same_bits(data[name][:n], clean[name][:n]), f"{path}: {name}[:{n}] differs"
        else:
            assert name == "labels/info" and n == 0, f"{path}: {name} missing with {n} structures"
    for name in PER_ATOM:
        assert same_bits(data[name][:m], clean[name][:m]), f"{path}: {name}[:{m}] differs"
    for name in SPLITS:
        assert same_bits(data[name][:n + 1], clean[name][:n + 1]), f"{path}: {name} differs"
    ns = meta.get("num_structures")
    assert ns is not None and 0 <= int(ns) <= n, f"{path}: /metadata num_structures {ns}, datasets {n}"
    return n


def tmp_files(directory, name):
    """The temporary files a writer of `name` left in `directory` (NAME.h5ml-PID.tmp)."""
    return sorted(p.name for p in Path(directory).glob(name + ".h5ml-*.tmp"))


def start(h5ml_bin, args, **kw):
    return subprocess.Popen([str(h5ml_bin), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def wait_for(cond, timeout=30.0, step=0.005):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if cond():
            return True
        time.sleep(step)
    return False


def signal_after(proc, delay, signo, second=None):
    """Sends signo to proc after `delay` seconds (and again after `second` more seconds if
    given); returns (exit code, stdout, stderr, whether it was still running at the signal)."""
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signo)
    if second is not None:
        time.sleep(second)
        if proc.poll() is None:
            proc.send_signal(signo)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"no exit within 60 s of {signal.Signals(signo).name}: {err!r}")
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), running
