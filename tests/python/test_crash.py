"""SIGKILL during `h5ml convert` (real processes): the file opens with plain h5py, holds a
consistent prefix of the input equal to a clean conversion, verifies, and appending the
rest gives a file identical to a one-shot conversion. Same for a killed --append."""
import math
import os
import random
import re
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

import h5ml_helpers as H

TARGET_SECONDS = 4.0      # how long the one-shot conversion of big.xyz should take
FIXED_DELAYS = [0.5, 1.0, 2.0]
PER_STRUCTURE = ["structures/cells", "structures/pbc", "labels/energy", "labels/stress",
                 "labels/stress_mask", "labels/structure_indices", "labels/info"]
PER_ATOM = ["structures/atomic_numbers", "structures/positions", "labels/forces"]
SPLITS = ["structures/atomic_numbers_splits", "labels/forces_splits"]


class BigInput:
    """big.xyz: copies of the sample, every frame with its own energy (sample energy +
    copy number), so that a prefix can only match when it is the right prefix."""

    def __init__(self, directory, frame_texts, copies):
        self.path = directory / "big.xyz"
        parts = []
        for fr in frame_texts:
            head, tail = fr.split("\n", 2)[:2], fr.split("\n", 2)[2]
            comment = head[1]
            m = re.search(r"(?<=\s)energy=(\S+)|^energy=(\S+)", comment)
            assert m, comment
            start, end = m.span(1) if m.group(1) else m.span(2)
            parts.append(((head[0] + "\n" + comment[:start]).encode(),
                          float(comment[start:end]),
                          (comment[end:] + "\n" + tail).encode()))
        self.frames_per_copy = len(parts)
        self.n = copies * len(parts)
        self.energies = np.empty(self.n)
        self.offsets = np.empty(self.n + 1, dtype=np.int64)
        pos = 0
        k = 0
        with open(self.path, "wb") as f:
            for c in range(copies):
                chunk = []
                for head, e, tail in parts:
                    s = repr(e + c).encode()
                    self.energies[k] = float(s)
                    self.offsets[k] = pos
                    pos += len(head) + len(s) + len(tail)
                    chunk += (head, s, tail)
                    k += 1
                f.write(b"".join(chunk))
        self.offsets[self.n] = pos

    def write_rest(self, n_done, dest):
        """The frames after the first n_done, byte for byte."""
        with open(self.path, "rb") as src, open(dest, "wb") as out:
            src.seek(int(self.offsets[n_done]))
            shutil.copyfileobj(src, out, 16 << 20)

    def write_head(self, n, dest):
        with open(self.path, "rb") as src, open(dest, "wb") as out:
            out.write(src.read(int(self.offsets[n])))


def timed_convert(src, dst, *opts):
    t = time.monotonic()
    H.convert(src, dst, "--checkpoint", "0.2", *opts)
    return time.monotonic() - t


@pytest.fixture(scope="module")
def big(tmp_path_factory, sample_frame_texts, sample_data, h5ml):
    d = tmp_path_factory.mktemp("crash")
    # calibrate: how fast does this machine convert?
    calib = BigInput(d, sample_frame_texts, 60)
    dt = timed_convert(calib.path, d / "calib.h5")
    bytes_per_copy = calib.offsets[-1] / 60
    rate = calib.offsets[-1] / max(dt, 1e-3)
    copies = int(min(max(math.ceil(TARGET_SECONDS * rate / bytes_per_copy), 40), 1500))
    os.remove(calib.path)
    os.remove(d / "calib.h5")
    for attempt in range(3):
        b = BigInput(d, sample_frame_texts, copies)
        b.clean = d / "clean.h5"
        b.seconds = timed_convert(b.path, b.clean)
        if b.seconds >= 1.5 * max(FIXED_DELAYS) or copies >= 1500:
            break
        # the calibration ran on a busy machine: make the input bigger
        copies = int(min(copies * TARGET_SECONDS / b.seconds + 1, 1500))
    print(f"\nbig.xyz: {copies} copies, {b.n} structures, {b.offsets[-1] / 1e6:.0f} MB; "
          f"one-shot conversion {b.seconds:.2f} s (calibration rate {rate / 1e6:.0f} MB/s)")
    b.data = H.load_h5(b.clean)
    # the clean conversion is what the input says: sample arrays repeated, own energies
    assert np.array_equal(b.data["labels/energy"], b.energies)
    m0 = len(sample_data["structures/atomic_numbers"])
    assert len(b.data["structures/positions"]) == copies * m0
    for name in PER_ATOM:
        c = np.random.default_rng(0).integers(0, copies)
        H.assert_same_bits(b.data[name][c * m0:(c + 1) * m0], sample_data[name], name)
    assert np.array_equal(b.data["labels/structure_indices"], np.arange(b.n))
    yield b
    shutil.rmtree(d, ignore_errors=True)


def kill_after(args, delay):
    p = subprocess.Popen([H.h5ml_bin(), *map(str, args)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    time.sleep(max(0.0, delay - (time.monotonic() - t0)))
    running = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    return running, p.returncode, time.monotonic() - t0


def check_killed_file(path, big, min_structures=0):
    """Plain h5py open, full reads, consistent lengths, content == clean prefix."""
    with h5py.File(path, "r") as f:  # plain mode: no swmr flag
        assert f.swmr_mode is False
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        data = {n: f[n][()] for n in names}
        meta = dict(f["metadata"].attrs)
    for name in H.SCHEMA:
        assert name in data, f"{name} missing from the killed file"
    n = len(data["labels/energy"])
    sp = data["structures/atomic_numbers_splits"]
    assert len(sp) == n + 1
    assert sp[0] == 0
    m = int(sp[-1])
    for name in PER_STRUCTURE:
        if name in data:
            assert len(data[name]) == n, (name, len(data[name]), n)
    for name in PER_ATOM:
        assert len(data[name]) == m, (name, len(data[name]), m)
    assert min_structures <= n <= big.n
    for name in PER_STRUCTURE:
        if name in data:
            H.assert_same_bits(data[name], big.data[name][:n], f"{name} (N={n})")
        else:
            assert name == "labels/info" and n == 0, f"{name} missing with N={n}"
    for name in PER_ATOM:
        H.assert_same_bits(data[name], big.data[name][:m], f"{name} (M={m})")
    for name in SPLITS:
        H.assert_same_bits(data[name], big.data[name][:n + 1], name)
    # an unfinalized file's /metadata may lag behind its data (h5ml.h, h5ml_verify), but
    # it must be there and never claim structures that are not in the file
    ns = meta.get("num_structures")
    assert isinstance(ns, (int, np.integer)), meta
    assert 0 <= ns <= n, f"/metadata num_structures {ns} but the datasets hold {n}"
    return n


def finish_and_compare(path, big, n, tmp_path):
    rest = tmp_path / "rest.xyz"
    big.write_rest(n, rest)
    code, o, e = H.run("convert", rest, "-o", path, "--append", "-q")
    assert code == 0, e
    os.remove(rest)
    code, o, e = H.run("diff", path, big.clean)
    assert code == 0, f"after kill at N={n} and append of the rest: {o}{e}"
    code, o, e = H.run("verify", path)
    assert code == 0, o + e
    os.remove(path)  # passed: do not keep 100 MB per test in pytest's temp directories


def random_delay(seed):
    return round(random.Random(seed).uniform(0.15, 2.2), 3)


@pytest.mark.parametrize("delay", FIXED_DELAYS + ["random"])
def test_sigkill_during_convert(big, tmp_path, delay, seed):
    if delay == "random":
        delay = random_delay(seed)
        print(f"random kill delay {delay} s (seed {seed})")
    out = tmp_path / "out.h5"
    running, rc, when = kill_after(["convert", big.path, "-o", out, "--checkpoint", "0.2",
                                    "-q"], delay)
    assert running, (f"conversion finished before the kill at {delay} s "
                     f"(one-shot took {big.seconds:.2f} s): calibration too small")
    assert rc == -signal.SIGKILL
    assert out.exists(), f"no output file after {when:.2f} s"
    # checkpoints every 0.2 s: after a second something must be on disk
    n = check_killed_file(out, big, min_structures=1 if delay >= 1.0 else 0)
    print(f"killed at {when:.2f} s: {n} of {big.n} structures on disk")
    code, o, e = H.run("verify", out)
    assert code == 0, f"verify of the file killed at {when:.2f} s (N={n}): {o}{e}"
    finish_and_compare(out, big, n, tmp_path)


def test_sigkill_during_append(big, tmp_path):
    k = big.n // 4
    head = tmp_path / "head.xyz"
    big.write_head(k, head)
    out = tmp_path / "app.h5"
    H.convert(head, out)
    before = H.load_h5(out)
    rest = tmp_path / "rest0.xyz"
    big.write_rest(k, rest)
    running, rc, when = kill_after(["convert", rest, "-o", out, "--append", "--checkpoint",
                                    "0.2", "-q"], 1.0)
    assert running and rc == -signal.SIGKILL, (running, rc, when)
    n = check_killed_file(out, big, min_structures=k)
    print(f"append killed at {when:.2f} s: {n - k} structures appended to {k}")
    # the earlier content is intact
    after = H.load_h5(out)
    for name in PER_STRUCTURE:
        H.assert_same_bits(after[name][:k], before[name], name)
    m = before["structures/atomic_numbers_splits"][-1]
    for name in PER_ATOM:
        H.assert_same_bits(after[name][:m], before[name], name)
    code, o, e = H.run("verify", out)
    assert code == 0, o + e
    os.remove(rest)
    finish_and_compare(out, big, n, tmp_path)


def test_sigkill_twice_then_finish(big, tmp_path, seed):
    """Killed, appended-and-killed again, then finished: still the one-shot file."""
    out = tmp_path / "twice.h5"
    d1, d2 = 0.6, random_delay(seed) / 2 + 0.3
    print(f"delays {d1} s and {d2} s (seed {seed})")
    running, rc, _ = kill_after(["convert", big.path, "-o", out, "--checkpoint", "0.2", "-q"],
                                d1)
    assert running and rc == -signal.SIGKILL, (running, rc)
    n1 = check_killed_file(out, big)
    rest = tmp_path / "r1.xyz"
    big.write_rest(n1, rest)
    running, rc, _ = kill_after(["convert", rest, "-o", out, "--append", "--checkpoint", "0.2",
                                 "-q"], d2)
    assert running and rc == -signal.SIGKILL, (running, rc)
    os.remove(rest)
    n2 = check_killed_file(out, big, min_structures=n1)
    finish_and_compare(out, big, n2, tmp_path)


def test_many_random_kills_leave_consistent_files(big, tmp_path, seed):
    """Kills at many random moments (some land inside a checkpoint): every file opens
    with plain h5py with consistent lengths, equals the clean prefix, and verifies."""
    rnd = random.Random(seed)
    delays = sorted(round(rnd.uniform(0.05, 0.9), 3) for _ in range(10))
    print(f"kill delays {delays} (seed {seed})")
    out = tmp_path / "many.h5"
    for delay in delays:
        running, rc, when = kill_after(["convert", big.path, "-o", out, "--checkpoint",
                                        "0.05", "-q"], delay)
        assert running and rc == -signal.SIGKILL, (delay, running, rc)
        n = check_killed_file(out, big)
        code, o, e = H.run("verify", out, "-q")
        assert code == 0, f"verify after a kill at {when:.3f} s (N={n}) failed: {o}{e}"
        code, o, e = H.run("repair", out)
        assert code == 0 and "nothing to cut" in o + e, f"kill at {when:.3f} s: {o}{e}"
        os.remove(out)
