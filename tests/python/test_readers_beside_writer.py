"""Readers beside a writer (issue 6): while an h5ml writer appends to a file (SWMR mode,
checkpoints), reader processes follow it and never see a structure that is partial or wrong.

Structure i is a function of (i, seed) alone (`expected`), so a reader knows what every
structure it finds must hold. Two readers run beside each writer, each in its own process,
polling until the writer is done:

- h5py in SWMR mode, as a naive client: File(path, "r", libver="latest", swmr=True),
  dataset.refresh(). The number of complete structures is what the splits and the
  per-structure datasets say (the shortest of them); the per-atom datasets, refreshed after
  them, must hold every atom those structures reference. /labels/info must cover them too;
  its strings (HDF5 variable-length data) are read after reopening the file, as HDF5 1.10's
  SWMR readers cannot read those written after they opened it.
- h5ml's reader (h5ml._h5ml.Reader, HDF5DatasetReader's engine): Reader.refresh(). A
  refresh that fails (a checkpoint half-written) is allowed and counted: the reader must
  keep its previous state.

Each poll reads the structures that appeared since the previous one and compares every
value (numbers, positions, forces as float32, cells, pbc, energy, stress and its mask,
structure_indices, splits, the JSON of /labels/info); counts must never decrease, and the
last poll, after the writer finished, must see every structure.

Writers: `h5ml convert -` fed a generated XYZ at a steady rate with a small --checkpoint;
the same with every pwrite of the writer slowed down (an LD_PRELOAD shim), which stretches
each checkpoint's writes over tens of milliseconds so that a reader lands in the middle of
them (before the writer wrote the per-atom datasets first, h5py saw structures whose atoms
were not in the file yet); the Python HDF5DatasetWriter appending batches with explicit
checkpoints, then a second session appending to the finalized file (its readers start once
it has the file open: a reader's HDF5 file lock keeps an append session from opening it).
Each reader must see the file grow at least three times (it followed the writer).

Signal caches: `h5ml signals generate` does not write in SWMR mode: it builds the cache
under a temporary name and renames it into place when complete. An h5py reader polling the
path sees no file, then the whole cache, never a partial one.

The seed (printed; H5ML_TEST_SEED replays) picks the compression, chunk sizes and the
values of the structures.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import h5ml_helpers as H

HERE = Path(__file__).resolve().parent
PY = sys.executable

SYMBOLS = ["H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar"]

PER_STRUCTURE = ["structures/atomic_numbers_splits", "labels/forces_splits", "structures/cells", "structures/pbc",
                 "labels/energy", "labels/stress", "labels/stress_mask", "labels/structure_indices"]
PER_ATOM = ["structures/atomic_numbers", "structures/positions", "labels/forces"]


# ---- what structure i holds ---------------------------------------------------------------


def _h(i, seed, k):
    """A deterministic integer in [0, 1000003) from (i, seed, k)."""
    return (i * 2654435761 + seed * 40503 + k * 97 + 12345) % 1000003


def expected(i, seed):
    """Structure i: 1..11 atoms; periodic (cell, pbc T T T) one time in three, with a stress
    one time in six; every value exactly representable, read back bit for bit."""
    n = 1 + (i * 7 + seed) % 11
    k = np.arange(n)
    z = 1 + (i + seed + 3 * k) % len(SYMBOLS)
    pos = np.stack([k * 1.25 + _h(i, seed, 0) % 997 / 64.0, _h(i, seed, 1) % 499 / 32.0 - k * 0.5,
                    (i % 5) + k * 0.125], 1).astype(np.float64)
    frc = np.stack([k * 0.5 - _h(i, seed, 2) % 7, _h(i, seed, 3) % 89 / 16.0 + k, -k * 0.75 + 1 / 3], 1)
    periodic = (i + seed) % 3 == 0
    cell = np.array([[10.0 + i % 4, 0.0, 0.0], [0.5, 11.0, 0.0], [0.25, -0.5, 12.5]]) if periodic else np.zeros((3, 3))
    stress = (np.array([0.5, 0.25, -0.125, 0.0, 1.5, (i % 8) * 0.25]) if periodic and (i + seed) % 6 == 0 else None)
    energy = -0.25 * i - _h(i, seed, 4) / 1024.0
    return dict(n=n, numbers=z.astype(np.int64), positions=pos, forces=frc, cell=cell, pbc=periodic, stress=stress,
                energy=energy, info={"idx": int(i), "tag": "s%d" % (i % 7)})


def xyz_frame(i, seed):
    s = expected(i, seed)
    comment = []
    if s["pbc"]:
        comment.append('Lattice="%s"' % " ".join(repr(float(v)) for v in s["cell"].ravel()))
    comment.append("Properties=species:S:1:pos:R:3:forces:R:3")
    comment.append("energy=%r" % s["energy"])
    if s["stress"] is not None:
        comment.append('stress="%s"' % " ".join(repr(float(v)) for v in s["stress"]))
    comment.append('pbc="%s"' % ("T T T" if s["pbc"] else "F F F"))
    comment.append("idx=%d tag=%s" % (i, s["info"]["tag"]))
    lines = ["%d" % s["n"], " ".join(comment)]
    for a in range(s["n"]):
        vals = [float(v) for v in s["positions"][a]] + [float(v) for v in s["forces"][a]]
        lines.append(SYMBOLS[s["numbers"][a] - 1] + " " + " ".join(repr(v) for v in vals))
    return "\n".join(lines) + "\n"


class Checker:
    """Compares structures [start, stop) read from a file with `expected`; collects the
    first few problems instead of stopping at the first."""

    def __init__(self, seed):
        self.seed = seed
        self.problems = []
        self.verified = 0

    def problem(self, text):
        if len(self.problems) < 20:
            self.problems.append(text)

    def structures(self, start, stop, splits, numbers, positions, forces, cells, pbc, energy, stress, mask,
                   indices=None, infos=None, where=""):
        """splits: stop - start + 1 entries (absolute atom offsets); per-atom arrays start at
        splits[0]; per-structure arrays at `start`."""
        a0 = splits[0]
        for j, i in enumerate(range(start, stop)):
            e = expected(i, self.seed)
            lo, hi = splits[j] - a0, splits[j + 1] - a0
            bad = []
            if hi - lo != e["n"]:
                bad.append("natoms %d != %d" % (hi - lo, e["n"]))
            else:
                if not np.array_equal(numbers[lo:hi], e["numbers"]):
                    bad.append("numbers %s" % numbers[lo:hi])
                if not np.array_equal(positions[lo:hi], e["positions"]):
                    bad.append("positions")
                if not np.array_equal(forces[lo:hi], e["forces"].astype(np.float32)):
                    bad.append("forces")
            if not np.array_equal(np.asarray(cells[j]).reshape(3, 3), e["cell"]):
                bad.append("cell")
            if not np.array_equal(np.asarray(pbc[j], dtype=bool), np.array([e["pbc"]] * 3)):
                bad.append("pbc %s" % (pbc[j],))
            if energy[j] != e["energy"]:
                bad.append("energy %r != %r" % (energy[j], e["energy"]))
            want_stress = e["stress"] if e["stress"] is not None else np.zeros(6)
            if not np.array_equal(stress[j], want_stress) or bool(mask[j]) != (e["stress"] is not None):
                bad.append("stress %s mask %s" % (stress[j], mask[j]))
            if indices is not None and indices[j] != i:
                bad.append("structure_indices %d" % indices[j])
            if infos is not None:
                text = infos[j].decode() if isinstance(infos[j], bytes) else infos[j]
                if not text or json.loads(text) != e["info"]:
                    bad.append("info %r" % (text,))
            if bad:
                self.problem("%sstructure %d: %s" % (where, i, "; ".join(bad)))
            else:
                self.verified += 1


# ---- the reader processes -----------------------------------------------------------------


def open_swmr(path, failures):
    """h5py.File in SWMR mode, tried again when the open meets a checkpoint half-written."""
    import h5py

    for attempt in range(100):
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except OSError:
            failures.append(attempt)
            time.sleep(0.01)
    return h5py.File(path, "r", libver="latest", swmr=True)


def follow_h5py(path, done_marker, seed, timeout):
    """h5py in SWMR mode, a naive client (see the module's docstring)."""
    c = Checker(seed)
    failed_opens = []
    t_end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > t_end:
            return dict(reader="h5py", polls=0, steps=0, count=0, verified=0, problems=["the file never appeared"])
        time.sleep(0.005)
    f = open_swmr(path, failed_opens)
    seen, polls, last_poll, reopens, steps = 0, 0, False, 0, 0
    while True:
        finished = os.path.exists(done_marker)  # read before polling: then this poll sees the end
        polls += 1
        where = "poll %d: " % polls
        for k in PER_STRUCTURE:
            f[k].refresh()
        lens = [f[k].shape[0] - (1 if k.endswith("splits") else 0) for k in PER_STRUCTURE]
        n = min(lens)
        if "labels/info" not in f and n > seen:
            f.close()  # a dataset created after the file was opened: reopen to see its link
            f = open_swmr(path, failed_opens)
            reopens += 1
            if "labels/info" not in f:
                c.problem(where + "%d structures but no /labels/info" % n)
        if n < seen:
            c.problem(where + "count decreased from %d to %d" % (seen, n))
        splits = f["structures/atomic_numbers_splits"][seen:n + 1]
        fsplits = f["labels/forces_splits"][seen:n + 1]
        if not np.array_equal(splits, fsplits):
            c.problem(where + "forces_splits differ from atomic_numbers_splits")
        for k in PER_ATOM:
            f[k].refresh()
        atoms = min(f[k].shape[0] for k in PER_ATOM)
        infos = None
        if n > seen:
            if splits[-1] > atoms:
                c.problem(where + "%d structures reference %d atoms, the per-atom datasets hold %s"
                          % (n, splits[-1], [f[k].shape[0] for k in PER_ATOM]))
            else:
                a0, a1 = splits[0], splits[-1]
                try:
                    d = f["labels/info"]
                    d.refresh()
                    if d.shape[0] < n:
                        c.problem(where + "/labels/info has %d rows for %d structures" % (d.shape[0], n))
                    else:
                        for attempt in range(20):
                            try:
                                infos = d[seen:n]
                                break
                            except OSError:
                                # HDF5 1.10: a SWMR reader cannot read variable-length strings
                                # written after it opened the file ("address of object past
                                # end of allocation": their global heap lies past the end of
                                # allocation it read at open, or the writer has since grown
                                # it there, "actual len exceeds EOA"). A reopened file reads
                                # them, unless the writer grows that heap again meanwhile.
                                if attempt == 19:
                                    raise
                                f.close()
                                f = open_swmr(path, failed_opens)
                                d = f["labels/info"]
                                reopens += 1
                                if attempt:
                                    time.sleep(0.01)
                except (KeyError, OSError) as err:
                    c.problem(where + "cannot read /labels/info of structures %d..%d: %s" % (seen, n - 1, err))
                steps += 1
                c.structures(seen, n, splits, f["structures/atomic_numbers"][a0:a1], f["structures/positions"][a0:a1],
                             f["labels/forces"][a0:a1], f["structures/cells"][seen:n], f["structures/pbc"][seen:n],
                             f["labels/energy"][seen:n], f["labels/stress"][seen:n], f["labels/stress_mask"][seen:n],
                             f["labels/structure_indices"][seen:n], infos, where)
                seen = n
        if last_poll or time.time() > t_end:
            break
        last_poll = finished
        if not finished:
            time.sleep(0.002)
    f.close()
    return dict(reader="h5py", polls=polls, steps=steps, count=seen, verified=c.verified, reopens=reopens,
                failed_opens=len(failed_opens), problems=c.problems)


def follow_h5ml(path, done_marker, seed, timeout):
    """h5ml's reader: Reader.refresh() before each poll."""
    from h5ml import _h5ml

    c = Checker(seed)
    t_end = time.time() + timeout
    r = None
    while r is None:
        try:
            r = _h5ml.Reader(path)
        except Exception as err:  # the file not there yet (or not yet a dataset)
            if time.time() > t_end:
                return dict(reader="h5ml", polls=0, steps=0, count=0, verified=0, problems=["cannot open: %s" % err])
            time.sleep(0.005)
    seen, polls, last_poll, refresh_errors, steps = 0, 0, False, [], 0
    while True:
        finished = os.path.exists(done_marker)
        polls += 1
        where = "poll %d: " % polls
        before = r.count
        try:
            n = r.refresh()
        except OSError as err:  # met a checkpoint half-written: the reader keeps its state
            refresh_errors.append(str(err))
            n = r.count
            if n != before:
                c.problem(where + "a failed refresh changed the count from %d to %d" % (before, n))
        if n < seen:
            c.problem(where + "count decreased from %d to %d" % (seen, n))
        if n > seen:
            steps += 1
            d = r.read(seen, n - seen)
            splits = np.concatenate([[0], np.cumsum(d["natoms"])])  # read()'s atoms start at structure `seen`
            infos = []
            for i in range(seen, n):
                g = r.get(i)
                infos.append(g["info"])
                if i == n - 1 and g["energy"] != d["energies"][-1]:
                    c.problem(where + "get(%d) and read() disagree" % i)
            c.structures(seen, n, splits, d["numbers"], d["positions"], d["forces"], d["cells"], d["pbc"],
                         d["energies"], d["stress"], d["stress_mask"], None, infos, where)
            seen = n
        if last_poll or time.time() > t_end:
            break
        last_poll = finished
        if not finished:
            time.sleep(0.002)
    r.close()
    return dict(reader="h5ml", polls=polls, steps=steps, count=seen, verified=c.verified,
                refresh_errors=len(refresh_errors), first_refresh_error=refresh_errors[0] if refresh_errors else None,
                problems=c.problems)


def reader_process(kind, path, done_marker, seed, timeout=60.0):
    """Starts a reader of `kind` ("h5py" or "h5ml") in its own process; its report comes back
    as one JSON line on stdout."""
    code = ("import json, sys; sys.path.insert(0, %r); import test_readers_beside_writer as T; "
            "print(json.dumps(T.follow_%s(%r, %r, %d, %r)))" % (str(HERE), kind, str(path), str(done_marker), seed,
                                                                timeout))
    return subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def collect(procs, timeout=90):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, "reader failed (%d): %s" % (p.returncode, stderr.decode()[-3000:])
        out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    return out


def check_reports(reports, total, label):
    for rep in reports:
        print("%s: %s reader: %d polls (%d saw new structures), %d structures verified, final count %d%s%s" % (
            label, rep["reader"], rep["polls"], rep["steps"], rep["verified"], rep["count"],
            ", reopened %d times to read new /labels/info strings (%d opens tried again)"
            % (rep["reopens"], rep["failed_opens"]) if "reopens" in rep else "",
            ", %d failed refreshes (kept the previous state; first: %s)" % (rep["refresh_errors"],
                                                                            rep["first_refresh_error"])
            if rep.get("refresh_errors") else ""))
        assert not rep["problems"], "%s reader: %s" % (rep["reader"], "\n".join(rep["problems"]))
        assert rep["count"] == total, "%s reader ended at %d of %d structures" % (rep["reader"], rep["count"], total)
        assert rep["verified"] == total
        # followed the writer: saw the file grow several times, not just its final state
        assert rep["steps"] >= 3, "the %s reader saw the file grow only %d times" % (rep["reader"], rep["steps"])


def layout_options(seed):
    """Compression and chunking picked by the seed (small chunks: many chunk boundaries)."""
    rng = np.random.default_rng(seed)
    comp = ["gzip", "lzf", "none"][int(rng.integers(0, 3))]
    chunk_atoms = int(rng.choice([512, 1024, 4096]))
    chunk_structures = int(rng.choice([64, 256, 1024]))
    return comp, chunk_atoms, chunk_structures


# ---- writers ------------------------------------------------------------------------------


def feed_convert(path, seed, total, rate, checkpoint, env=None):
    """Runs `h5ml convert -` writing `path`, fed `total` structures at `rate` per second."""
    comp, ca, cs = layout_options(seed)
    frames = [xyz_frame(i, seed).encode() for i in range(total)]
    args = [H.h5ml_bin(), "convert", "-", "-o", str(path), "-q", "-c", comp, "--checkpoint", str(checkpoint),
            "--chunk-atoms", str(ca), "--chunk-structures", str(cs)]
    print("writer: %s (%d structures at %d/s)" % (" ".join(args[1:]), total, rate))
    w = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env or os.environ.copy())

    def feed():
        t0, i = time.time(), 0
        try:
            while i < total:
                target = min(total, int((time.time() - t0) * rate) + 1)
                if target > i:
                    w.stdin.write(b"".join(frames[i:target]))
                    w.stdin.flush()
                    i = target
                time.sleep(0.003)
        finally:
            w.stdin.close()

    t = threading.Thread(target=feed)
    t.start()
    return w, t


def run_beside(tmp_path, seed, total, rate, checkpoint, env=None, label="convert"):
    out = tmp_path / "followed.h5"
    done = tmp_path / "writer.done"
    readers = [reader_process("h5py", out, done, seed), reader_process("h5ml", out, done, seed)]
    w, feeder = feed_convert(out, seed, total, rate, checkpoint, env)
    feeder.join()
    w.stdin = None  # closed by the feeder
    _, err = w.communicate(timeout=120)
    assert w.returncode == 0, err.decode()
    done.touch()
    reports = collect(readers)
    check_reports(reports, total, label)
    code, text, err = H.run("verify", out)
    assert code == 0, text + err
    return reports


def test_readers_follow_convert(tmp_path, seed):
    """h5py (SWMR) and h5ml's reader beside `h5ml convert`, checkpoints every 20 ms."""
    run_beside(tmp_path, seed, total=12000, rate=3500, checkpoint=0.02)


SLOW_PWRITE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
/* Every pwrite of the process, then a pause: a checkpoint's writes spread over tens of ms. */
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static long pause_ns = -1;
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!real_pwrite) real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (pause_ns < 0) {
        const char *e = getenv("SLOW_PWRITE_US");
        pause_ns = e ? atol(e) * 1000 : 0;
    }
    ssize_t r = real_pwrite(fd, buf, n, off);
    if (pause_ns > 0) {
        struct timespec ts = { pause_ns / 1000000000, pause_ns % 1000000000 };
        nanosleep(&ts, NULL);
    }
    return r;
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }
"""


def test_readers_follow_convert_with_slow_writes(tmp_path, seed):
    """The same with each pwrite of the writer followed by a 1.5 ms pause: every checkpoint's
    metadata writes take tens of milliseconds and the readers poll in the middle of them.
    This is what caught the writer exposing splits and energies before positions and forces
    (HDF5 flushes in file-address order); the writer now flushes the per-atom datasets and
    /labels/info first."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the pwrite shim")
    src = tmp_path / "slow_pwrite.c"
    lib = tmp_path / "slow_pwrite.so"
    src.write_text(SLOW_PWRITE_C)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-ldl"], check=True)
    env = dict(os.environ, LD_PRELOAD=str(lib), SLOW_PWRITE_US="1500")
    run_beside(tmp_path, seed + 1, total=5000, rate=1500, checkpoint=0.03, env=env, label="slow writes")


PY_WRITER = r"""
import sys, time
from pathlib import Path
import numpy as np
from ase import Atoms
sys.path.insert(0, %(here)r)
import test_readers_beside_writer as T
from h5ml import HDF5DatasetWriter

path, seed, comp, ca, cs = %(path)r, %(seed)d, %(comp)r, %(ca)d, %(cs)d
mode, first, batches, size = %(session)r
with HDF5DatasetWriter(path, compression=comp, mode=mode, chunk_atoms=ca, chunk_structures=cs,
                       checkpoint_ms=3600000) as w:
    assert w.n_structures == first
    Path(path + ".opened").touch()
    start = first
    for b in range(batches):
        idx = range(start, start + size)
        ex = [T.expected(i, seed) for i in idx]
        atoms = [Atoms(numbers=e["numbers"], positions=e["positions"], cell=e["cell"], pbc=e["pbc"]) for e in ex]
        w.add_batch(atoms, [e["energy"] for e in ex], [e["forces"] for e in ex],
                    stresses=[e["stress"] for e in ex], metadata=[e["info"] for e in ex], show_progress=False)
        w.checkpoint()
        start += size
        time.sleep(0.05)
print(start)
"""


def python_writer_session(out, done, seed, comp, ca, cs, mode, first, batches, size):
    """One HDF5DatasetWriter session in another process (batches of `size` structures, a
    checkpoint after each) with the two readers following it; the readers start once the
    writer has the file open."""
    opened = Path(str(out) + ".opened")
    code = PY_WRITER % dict(here=str(HERE), path=str(out), seed=seed, comp=comp, ca=ca, cs=cs,
                            session=(mode, first, batches, size))
    w = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    t_end = time.time() + 60
    while not opened.exists() and w.poll() is None and time.time() < t_end:
        time.sleep(0.005)
    readers = [reader_process("h5py", out, done, seed), reader_process("h5ml", out, done, seed)]
    stdout, stderr = w.communicate(timeout=120)
    assert w.returncode == 0, stderr.decode()[-3000:]
    total = first + batches * size
    assert int(stdout.decode().split()[-1]) == total
    done.touch()
    check_reports(collect(readers), total, "python writer, mode %r" % mode)
    done.unlink()
    opened.unlink()
    return total


def test_readers_follow_python_writer_and_append(tmp_path, seed):
    """HDF5DatasetWriter in another process: batches of 97 structures, a checkpoint after
    each, finalized; then a second session appends to the finalized file (mode "a"), followed
    by new readers from its start. (Readers open before an append session starts would keep
    it from opening the file: HDF5's file lock, see the README.)"""
    comp, ca, cs = layout_options(seed + 2)
    comp = None if comp == "none" else comp
    out, done = tmp_path / "followed.h5", tmp_path / "writer.done"
    print("writer: HDF5DatasetWriter(compression=%r, chunk_atoms=%d, chunk_structures=%d)" % (comp, ca, cs))
    n = python_writer_session(out, done, seed + 2, comp, ca, cs, "w", 0, 40, 97)
    python_writer_session(out, done, seed + 2, comp, ca, cs, "a", n, 40, 97)
    code, text, err = H.run("verify", out)
    assert code == 0, text + err


# ---- refresh() on its own -----------------------------------------------------------------


def test_refresh_semantics(tmp_path, seed):
    """refresh() of a finished file returns its count; a file replaced at the path is read
    as it now is; a failed refresh (the file gone) raises and leaves the reader as it was,
    still reading; a closed reader refuses. HDF5DatasetReader.refresh() is the same call."""
    from h5ml import HDF5DatasetReader, _h5ml

    src, more = tmp_path / "a.xyz", tmp_path / "b.xyz"
    src.write_text("".join(xyz_frame(i, seed) for i in range(50)))
    more.write_text("".join(xyz_frame(i, seed) for i in range(80)))
    out = tmp_path / "r.h5"
    H.convert(src, out)
    r = _h5ml.Reader(str(out))
    assert r.count == 50 and r.refresh() == 50
    H.convert(more, out)  # replaces the file (a new one renamed over it when finalized)
    assert r.count == 50 and r.get(49)["energy"] == expected(49, seed)["energy"]  # the old file, until refresh()
    assert r.refresh() == 80 and r.count == 80 and r.total_atoms == sum(expected(i, seed)["n"] for i in range(80))
    c = Checker(seed)
    d = r.read(0, 80)
    c.structures(0, 80, np.concatenate([[0], np.cumsum(d["natoms"])]), d["numbers"], d["positions"], d["forces"],
                 d["cells"], d["pbc"], d["energies"], d["stress"], d["stress_mask"],
                 infos=[r.get(i)["info"] for i in range(80)])
    assert not c.problems and c.verified == 80, c.problems
    H.convert(src, out)
    assert r.refresh() == 50  # a file replaced by a smaller one reads as it is
    moved = tmp_path / "moved.h5"
    out.rename(moved)
    with pytest.raises(OSError, match="r.h5"):
        r.refresh()
    assert r.count == 50 and r.get(49)["energy"] == expected(49, seed)["energy"]  # still usable
    r.close()
    with pytest.raises(RuntimeError):
        r.refresh()
    hr = HDF5DatasetReader(moved)
    assert hr.refresh() == 50 and len(hr) == 50
    hr.close()
    # AtomsDataset's refresh (its torch-free part): with and without this process's handle
    from h5ml.atoms import _AtomsDatasetImpl
    ds = _AtomsDatasetImpl(moved)
    assert len(ds) == 50 and ds.refresh() == 50
    H.convert(more, moved)
    assert ds.refresh() == 80 and len(ds) == 80 and ds.num_atoms == sum(expected(i, seed)["n"] for i in range(80))
    ds._get_reader()
    H.convert(src, moved)
    assert ds.refresh() == 50 and len(ds) == 50 and ds._get_reader().count == 50
    ds.close()


# ---- signal caches ------------------------------------------------------------------------


def test_signal_cache_appears_whole(tmp_path, seed):
    """`h5ml signals generate` writes no SWMR file: the cache is built under a temporary name
    and renamed into place complete. An h5py reader polling the path throughout never finds
    a partial cache: no file, then every signal, label and metadata entry."""
    import h5py

    out = tmp_path / "sig.h5"
    per_class, length = 30, 8192
    total = 11 * per_class
    args = [H.h5ml_bin(), "signals", "generate", "-o", str(out), "--per-class", str(per_class), "--length",
            str(length), "--seed", str(seed % 100000), "-q"]
    w = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    polls = absent = complete = 0
    while True:
        finished = w.poll() is not None
        polls += 1
        if not out.exists():
            absent += 1
        else:
            with h5py.File(out, "r") as f:
                assert int(f.attrs["num_signals"]) == total
                labels, indices = [], []
                for split in ("train", "val", "test"):
                    g = f[split]
                    k = int(g.attrs["num_samples"])
                    assert g["signals"].shape == (k, length) and g["labels"].shape == (k,)
                    assert g["metadata"].shape == (k,) and g["indices"].shape == (k,)
                    assert np.isfinite(g["signals"][::7]).all()
                    labels.append(g["labels"][:])
                    indices.append(g["indices"][:])
                labels = np.concatenate(labels)
                assert np.bincount(labels, minlength=11).tolist() == [per_class] * 11
                assert sorted(np.concatenate(indices).tolist()) == list(range(total))
                complete += 1
        if finished:
            break
        time.sleep(0.005)
    assert w.returncode == 0, w.stderr.read().decode()
    print("signals generate: %d polls, %d before the file appeared, %d saw the whole cache (%d signals)"
          % (polls, absent, complete, total))
    assert absent >= 1 and complete >= 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
