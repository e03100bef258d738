#!/usr/bin/python3
"""h5ml soak runs: long writes at constant memory.

    /usr/bin/python3 bench/soak.py --h5ml build/h5ml --bench-dir build/bench
        [--structures 1000000] [--signals 100000] [--signal-length 4096] [--margin-mib 16]
        [--workdir DIR]

Runs (run by `make soak`, not by `make test`):

  a. `h5ml convert` of N 8-atom molecules (default a million), from an extended XYZ file
     written first to a scratch directory by bench case 4's generator (run.py's
     write_molecules), with the default compression (gzip-4) and checkpoints (every 2 s).
  b. `h5ml signals generate` of about S signals (default 100000: 11 classes x ceil(S/11)) of
     L samples (default 4096), split into train/val/test, gzip-4.

While each runs, its resident memory (VmRSS of /proc/PID/status) is sampled every 0.2 s.
Reported: wall time, rate, output size, peak RSS (the kernel's high-water mark, VmHWM, as
last sampled), and
RSS at 10 %, 50 % and 100 % of the run (the sample nearest that fraction of the wall time;
100 % is the last sample before the process exited). "Constant memory" means the RSS at
100 % is within --margin-mib (default 16 MiB) of the RSS at 10 %: memory bounded by the
buffers, not growing with what was written.

The table goes to stdout and to <bench-dir>/soak.md; progress to stderr.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import write_molecules  # noqa: E402  (bench case 4's generator)

SAMPLE_SECONDS = 0.2
MIB = 1024 * 1024


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def memory_kib(pid, name):
    """(VmRSS, VmHWM) of a live process in KiB, or None when it is gone or not yet running
    `name` (between fork and exec its memory is the parent's)."""
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
    except OSError:
        return None
    if fields.get("Name", [""])[0] != name[:15] or "VmRSS" not in fields:
        return None
    return int(fields["VmRSS"][0]), int(fields["VmHWM"][0])


def sampled_run(cmd):
    """Runs cmd, sampling its memory every SAMPLE_SECONDS. Returns (wall seconds, samples as
    (seconds since start, RSS KiB), peak RSS KiB (the last VmHWM seen: the high-water mark
    since exec), exit status, stderr text)."""
    name = os.path.basename(cmd[0])
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        samples, peak = [], 0
        while True:
            mem = memory_kib(p.pid, name)
            t = time.perf_counter() - t0
            if p.poll() is not None:
                wall = time.perf_counter() - t0
                break
            if mem is not None:
                samples.append((t, mem[0]))
                peak = max(peak, mem[1])
            time.sleep(SAMPLE_SECONDS)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return wall, samples, peak, p.returncode, text


def at_fraction(samples, wall, frac):
    """RSS (KiB) of the sample nearest frac * wall (the last sample for 1.0)."""
    if not samples:
        return None
    if frac >= 1.0:
        return samples[-1][1]
    target = frac * wall
    return min(samples, key=lambda s: abs(s[0] - target))[1]


class Result:
    def __init__(self, name, items, unit, wall, samples, peak_kib, size, margin_mib):
        self.name, self.items, self.unit, self.wall = name, items, unit, wall
        self.samples, self.peak = samples, peak_kib / 1024.0
        self.size = size
        self.r10, self.r50, self.r100 = (at_fraction(samples, wall, f) for f in (0.1, 0.5, 1.0))
        self.r10, self.r50, self.r100 = (None if v is None else v / 1024.0 for v in (self.r10, self.r50, self.r100))
        self.margin = margin_mib
        self.growth = None if self.r10 is None or self.r100 is None else self.r100 - self.r10
        self.constant = self.growth is not None and self.growth <= margin_mib


def run_convert(h5ml, work, n, margin):
    xyz = os.path.join(work, "soak_molecules.xyz")
    out = os.path.join(work, "soak_molecules.h5")
    log("[a] writing %d molecules of 8 atoms to %s (bench case 4's generator)" % (n, xyz))
    t = time.perf_counter()
    write_molecules(xyz, n)
    log("    %.1f MB in %.1f s; converting" % (os.path.getsize(xyz) / 1e6, time.perf_counter() - t))
    cmd = [h5ml, "convert", xyz, "-o", out, "-q"]
    wall, samples, peak, code, err = sampled_run(cmd)
    if code != 0:
        raise SystemExit("h5ml convert failed (%d): %s" % (code, err))
    size = os.path.getsize(out)
    with h5py.File(out, "r") as f:
        count = f["labels/energy"].shape[0]
        atoms = f["structures/atomic_numbers"].shape[0]
    if count != n or atoms != 8 * n:
        raise SystemExit("convert wrote %r structures of %d" % (count, n))
    os.unlink(xyz)
    os.unlink(out)
    return Result("a. convert %s x 8 atoms (gzip-4)" % "{:,}".format(n), n, "structures", wall, samples, peak, size,
                  margin)


def run_signals(h5ml, work, n, length, margin):
    per_class = -(-n // 11)
    total = 11 * per_class
    out = os.path.join(work, "soak_signals.h5")
    log("[b] h5ml signals generate: %d signals (11 x %d) of %d samples" % (total, per_class, length))
    cmd = [h5ml, "signals", "generate", "-o", out, "--per-class", str(per_class), "--length", str(length), "-q"]
    wall, samples, peak, code, err = sampled_run(cmd)
    if code != 0:
        raise SystemExit("h5ml signals generate failed (%d): %s" % (code, err))
    size = os.path.getsize(out)
    with h5py.File(out, "r") as f:
        got = int(f.attrs["num_signals"])
        held = sum(f[s]["signals"].shape[0] for s in ("train", "val", "test"))
    if got != total or held != total:
        raise SystemExit("signals generate wrote %d (%d held) of %d signals" % (got, held, total))
    os.unlink(out)
    return Result("b. signals generate %s x %d samples" % ("{:,}".format(total), length), total, "signals", wall,
                  samples, peak, size, margin)


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def table(results, margin):
    head = ["run", "wall", "rate", "file", "peak RSS", "RSS 10 %", "RSS 50 %", "RSS 100 %", "100 % - 10 %",
            "constant memory (<= +%d MiB)" % margin]
    rows = []
    for r in results:
        rows.append([r.name, "%.1f s" % r.wall, "%s %s/s" % ("{:,.0f}".format(r.items / r.wall), r.unit),
                     "%.1f MB" % (r.size / 1e6), fmt(r.peak) + " MiB", fmt(r.r10) + " MiB", fmt(r.r50) + " MiB",
                     fmt(r.r100) + " MiB", fmt(r.growth, "%+.1f") + " MiB", "yes" if r.constant else "NO"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["| " + " | ".join(str(x).ljust(w) for x, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h5ml", required=True, help="the h5ml program")
    ap.add_argument("--bench-dir", required=True, help="soak.md goes here")
    ap.add_argument("--structures", type=int, default=1000000, help="molecules to convert (default 1000000)")
    ap.add_argument("--signals", type=int, default=100000, help="signals to generate (default 100000)")
    ap.add_argument("--signal-length", type=int, default=4096, help="samples per signal (default 4096)")
    ap.add_argument("--margin-mib", type=float, default=16.0, help="allowed RSS growth from 10 %% to 100 %% (MiB)")
    ap.add_argument("--workdir", help="directory for the scratch files (default: a new one under /tmp)")
    args = ap.parse_args()
    h5ml = os.path.abspath(args.h5ml)
    os.makedirs(args.bench_dir, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="h5ml-soak-", dir=args.workdir or "/tmp") as work:
        if args.structures > 0:
            results.append(run_convert(h5ml, work, args.structures, args.margin_mib))
        if args.signals > 0:
            results.append(run_signals(h5ml, work, args.signals, args.signal_length, args.margin_mib))
    version = subprocess.run([h5ml, "version"], capture_output=True, text=True).stdout.strip()
    text = ["# h5ml soak runs", "",
            "%s; Linux %s, %d cores; load average %.2f %.2f %.2f at the end" % (
                version, platform.release(), os.cpu_count() or 0, *os.getloadavg()), "",
            table(results, int(args.margin_mib)), "",
            "RSS sampled every %.1f s from /proc/PID/status (VmRSS); peak RSS is its high-water mark (VmHWM, last sample). "
            "RSS at 10/50/100 %% is the sample nearest that fraction of the wall time (100 %%: the last sample before "
            "exit). Constant memory: RSS at 100 %% within %g MiB of RSS at 10 %%." % (SAMPLE_SECONDS, args.margin_mib)]
    for r in results:
        text.append("")
        text.append("%s: %d RSS samples, min %.1f MiB, max %.1f MiB" % (
            r.name, len(r.samples), min(s[1] for s in r.samples) / 1024.0 if r.samples else 0,
            max(s[1] for s in r.samples) / 1024.0 if r.samples else 0))
    report = "\n".join(text) + "\n"
    print(report)
    path = os.path.join(args.bench_dir, "soak.md")
    with open(path, "w") as f:
        f.write(report)
    log("wrote %s" % path)
    return 0 if all(r.constant for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
