#!/usr/bin/python3
"""h5ml's compression profiles (fast, balanced, small, none) on the bundled data: file size,
write time and full-read time of each, printed as a markdown table (README, "Compression
profiles").

    /usr/bin/python3 bench/profiles.py --h5ml build/h5ml [--runs 5] [--out FILE.md] [--json FILE.json]
    /usr/bin/python3 bench/profiles.py --combine run1.json run2.json run3.json

Data (each written by the CLI with --profile P):

  sample.xyz      data/sample.xyz (300 structures, 10,740 atoms): `h5ml convert`.
  sample.xyz x50  50 copies of sample.xyz (~61 MB of XYZ), every copy after the first with
                  its positions, forces and energies perturbed (positions +- 0.01 A, forces
                  and energies by ~1 %), so that no copy repeats another byte for byte (a
                  repeat within deflate's window would flatter gzip): `h5ml convert`.
  mat             the bundled MATLAB rig sample data/mat (16 signals of 4,096 samples):
                  `h5ml signals import`.
  generated       `h5ml signals generate --per-class 20` (220 signals of 102,400 samples,
                  90 MB raw); its write time includes simulating the signals, so the time of
                  `h5ml signals split` of the same signals from a flat uncompressed cache
                  (read + split + write, no simulation) is shown too.

Measured per profile: the file's size (MB = 10^6 bytes; % of the none profile's file and %
of the raw bytes: the uncompressed size of every dataset's values, which is what the seed's
"none" file holds), the write time (wall clock of the CLI, median of --runs runs, the
profiles alternating within each run), and the full read time, median of --runs reads
after one warm-up read (the file is in the page cache), each reader in its own process:
  h5ml   the Python module (PYTHONPATH = the python directory next to --h5ml):
         HDF5DatasetReader(path).read() for atomistic files (every array; the per-structure
         info strings are not part of read()), h5ml.signals.load_signal_file(path) for
         signal caches (signals, labels and parsed metadata of every split).
  h5py   every dataset read whole (dataset[()]), the info/metadata strings included.
MB/s is raw bytes per second. Read times include opening and closing the file.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROFILES = ("none", "fast", "balanced", "small")
SEED_TABLE = (  # the seed document's sizes: 930 structures, 68K atoms
    ("none", "3.10 MB", "100 %"),
    ("LZF", "2.10 MB", "67.8 %"),
    ("GZIP-4", "1.93 MB", "62.3 %"),
    ("GZIP-9", "1.90 MB", "61.2 %"),
)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- read workers (run as `profiles.py --read-worker READER KIND PATH RUNS`) --------------------


def read_worker(reader, kind, path, runs):
    if reader == "h5ml":
        import h5ml
        from h5ml.signals import load_signal_file

        def once():
            if kind == "atoms":
                r = h5ml.HDF5DatasetReader(path)
                d = r.read()
                r.close()
                return sum(v.nbytes for v in d.values() if hasattr(v, "nbytes"))
            s, lab, meta = load_signal_file(path)
            return s.nbytes + lab.nbytes
    else:
        import h5py

        def once():
            out = []
            with h5py.File(path, "r") as f:
                f.visititems(lambda name, obj: out.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
            return sum(getattr(v, "nbytes", 0) for v in out)

    once()  # warm-up: page cache, lazy imports
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    result = {"time": statistics.median(times), "times": times}
    if reader == "h5py":
        result["raw"] = raw_bytes(path)
    print(json.dumps(result))


def raw_bytes(path):
    """The uncompressed size of every dataset's values (strings: their bytes)."""
    import h5py

    total = [0]

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.dtype.kind == "O":
            total[0] += sum(len(v) for v in obj[()])
        else:
            total[0] += obj.dtype.itemsize * obj.size

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return int(total[0])


def run_reader(reader, kind, path, runs, pythonpath):
    env = dict(os.environ)
    if reader == "h5ml":
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--read-worker", reader, kind, path, str(runs)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- data -----------------------------------------------------------------------------------


def make_big_xyz(src, dst, copies, seed=20261123):
    """`copies` copies of the extended XYZ file src; copy k >= 1 perturbed (see the doc)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(src) as f:
        lines = f.read().splitlines()
    frames = []  # (count line, comment, species, values (n, 6))
    i = 0
    while i < len(lines):
        n = int(lines[i])
        body = [ln.split() for ln in lines[i + 2:i + 2 + n]]
        frames.append((lines[i], lines[i + 1], [b[0] for b in body], np.array([b[1:] for b in body], dtype=np.float64)))
        i += 2 + n
    with open(dst, "w") as out:
        out.write("\n".join(lines) + "\n")
        for _ in range(1, copies):
            parts = []
            for count, comment, species, v in frames:
                v = v.copy()
                v[:, :3] += rng.normal(0, 0.01, (len(v), 3))
                v[:, 3:] *= 1 + rng.normal(0, 0.01, (len(v), 3))
                key = " energy="
                a = comment.index(key) + len(key)
                b = comment.find(" ", a)
                b = len(comment) if b < 0 else b
                energy = float(comment[a:b]) * (1 + rng.normal(0, 0.01))
                parts.append(count)
                parts.append(comment[:a] + repr(energy) + comment[b:])
                parts.extend("%-2s %15.8f %15.8f %15.8f %15.8f %15.8f %15.8f" % ((s,) + tuple(row))
                             for s, row in zip(species, v.tolist()))
            out.write("\n".join(parts) + "\n")


def make_flat_cache(h5ml_cli, pythonpath, src, dst):
    """A flat, uncompressed signal cache of the signals of the split cache src (input of
    `h5ml signals split`), written by the Python module."""
    code = ("import sys; from h5ml.signals import load_signal_file, write_signal_cache\n"
            "s, l, m = load_signal_file(sys.argv[1])\n"
            "write_signal_cache(sys.argv[2], s, l, m, compression='none')\n")
    env = dict(os.environ, PYTHONPATH=pythonpath)
    subprocess.run([sys.executable, "-c", code, src, dst], env=env, check=True)


# ---- the table ------------------------------------------------------------------------------


def render(rows, header):
    """The markdown text: header lines, the table of rows (label, {profile: results}, raw
    bytes, with reads), the seed's table."""
    machine = "machine: %s, %d cores, Linux %s, Python %s" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.release(), platform.python_version())
    raws = ["%s: %s MB raw" % (label.split(" (")[0], fmt_mb(raw)) for label, _, raw, reads in rows if reads]
    lines = header + [machine, "raw bytes (the uncompressed values of every dataset): " + "; ".join(raws), ""]
    lines.append("| data | profile | file MB | % of none | % of raw | write s | write MB/s | "
                 "read h5ml s | h5ml MB/s | read h5py s | h5py MB/s |")
    lines.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, res, raw, with_reads in rows:
        none_size = res["none"]["size"]
        for p in PROFILES:
            r = res[p]
            cells = [label if p == "none" else "", p, fmt_mb(r["size"]), "%.1f" % (100.0 * r["size"] / none_size),
                     "%.1f" % (100.0 * r["size"] / raw), fmt_time(r["write"]), "%.0f" % (raw / 1e6 / r["write"])]
            if with_reads:
                for reader in ("h5ml", "h5py"):
                    t = r[reader]["time"]
                    cells += [fmt_time(t), "%.0f" % (raw / 1e6 / t)]
            else:
                cells += ["(as above)", "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Seed document (930 structures, 68K atoms; the original h5py writer, no shuffle):", "",
              "| compression | file | % of none |", "|---|--:|--:|"]
    lines += ["| %s | %s | %s |" % row for row in SEED_TABLE]
    return "\n".join(lines) + "\n"


def combine(paths):
    """The table of several --json files: per cell, the median of their medians."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    rows = []
    for k, row in enumerate(runs[0]["rows"]):
        res = {}
        for p in PROFILES:
            cells = [r["rows"][k]["profiles"][p] for r in runs]
            res[p] = {"size": cells[0]["size"], "write": statistics.median(c["write"] for c in cells)}
            if row["reads"]:
                for reader in ("h5ml", "h5py"):
                    res[p][reader] = {"time": statistics.median(c[reader]["time"] for c in cells)}
        rows.append((row["data"], res, row["raw"], row["reads"]))
    loads = ", ".join("%.2f" % r["load"][0] for r in runs)
    header = ["median of %d runs of bench/profiles.py (%d timed runs each; 1-minute load average at their starts: %s)"
              % (len(runs), runs[0]["runs"], loads)]
    return render(rows, header)


# ---- main -----------------------------------------------------------------------------------


def time_cli(cmd_of, out_of, runs):
    """{profile: [seconds]} of the commands cmd_of(profile), the profiles alternating (and
    rotating their order) within each run; the output is removed before each run."""
    times = {p: [] for p in PROFILES}
    for r in range(runs):
        for k in range(len(PROFILES)):
            p = PROFILES[(k + r) % len(PROFILES)]
            out = out_of(p)
            if os.path.exists(out):
                os.unlink(out)
            t = time.perf_counter()
            subprocess.run(cmd_of(p), check=True, stdout=subprocess.DEVNULL)
            times[p].append(time.perf_counter() - t)
    return times


def fmt_mb(n):
    return "%.2f" % (n / 1e6) if n >= 1e5 else "%.3f" % (n / 1e6)


def fmt_time(t):
    return "%.3f" % t if t < 10 else "%.1f" % t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--h5ml", default=os.path.join(REPO, "build", "h5ml"), help="the h5ml CLI (default build/h5ml)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per measurement (default 5)")
    ap.add_argument("--copies", type=int, default=50, help="copies of sample.xyz in the larger set (default 50)")
    ap.add_argument("--per-class", type=int, default=20, help="signals per class of the generated cache (default 20)")
    ap.add_argument("--work-dir", help="where the files go (default: a temporary directory, removed)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    ap.add_argument("--json", help="also write the measurements to this file")
    ap.add_argument("--combine", nargs="+", metavar="JSON", help="print the table of several --json files "
                    "(the median of their medians) and exit")
    ap.add_argument("--read-worker", nargs=4, metavar=("READER", "KIND", "PATH", "RUNS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read_worker:
        reader, kind, path, runs = args.read_worker
        read_worker(reader, kind, path, int(runs))
        return
    if args.combine:
        print(combine(args.combine), end="")
        return

    h5ml_cli = os.path.abspath(args.h5ml)
    pythonpath = os.path.join(os.path.dirname(h5ml_cli), "python")
    if not os.access(h5ml_cli, os.X_OK):
        sys.exit("no h5ml CLI at %s (make build)" % h5ml_cli)
    work = args.work_dir or tempfile.mkdtemp(prefix="h5ml-profiles-")
    os.makedirs(work, exist_ok=True)
    t_start = time.perf_counter()
    load = os.getloadavg()
    try:
        sample = os.path.join(REPO, "data", "sample.xyz")
        big = os.path.join(work, "sample_x%d.xyz" % args.copies)
        log("making %s" % big)
        make_big_xyz(sample, big, args.copies)
        matdir = os.path.join(REPO, "data", "mat")

        def out(case, p):
            return os.path.join(work, "%s_%s.h5" % (case, p))

        cases = [  # (case id, label, kind, command of profile, input note)
            ("sample", "sample.xyz (%.2f MB XYZ)" % (os.path.getsize(sample) / 1e6), "atoms",
             lambda p: [h5ml_cli, "convert", sample, "-o", out("sample", p), "--profile", p, "-q"]),
            ("big", "sample.xyz x%d (%.1f MB XYZ)" % (args.copies, os.path.getsize(big) / 1e6), "atoms",
             lambda p: [h5ml_cli, "convert", big, "-o", out("big", p), "--profile", p, "-q"]),
            ("mat", "data/mat (signals import)", "signals",
             lambda p: [h5ml_cli, "signals", "import", matdir, "-o", out("mat", p), "--profile", p, "-q"]),
            ("gen", "generated, %d per class (signals generate)" % args.per_class, "signals",
             lambda p: [h5ml_cli, "signals", "generate", "-o", out("gen", p), "--per-class", str(args.per_class),
                        "--profile", p, "-q"]),
        ]
        rows = []
        for case, label, kind, cmd in cases:
            log("writing %s" % label)
            wt = time_cli(cmd, lambda p, case=case: out(case, p), args.runs)
            res = {p: {"write": statistics.median(wt[p]), "size": os.path.getsize(out(case, p))} for p in PROFILES}
            log("reading %s" % label)
            for p in PROFILES:
                for reader in ("h5ml", "h5py"):
                    res[p][reader] = run_reader(reader, kind, out(case, p), args.runs, pythonpath)
            raw = res["none"]["h5py"]["raw"]
            rows.append((label, res, raw, True))
            if case == "gen":
                flat = os.path.join(work, "gen_flat_none.h5")
                make_flat_cache(h5ml_cli, pythonpath, out("gen", "none"), flat)
                log("writing generated (signals split)")
                st = time_cli(lambda p: [h5ml_cli, "signals", "split", flat, "-o", out("split", p), "--profile", p, "-q"],
                              lambda p: out("split", p), args.runs)
                sres = {p: {"write": statistics.median(st[p]), "size": os.path.getsize(out("split", p))}
                        for p in PROFILES}
                rows.append(("generated, the same signals (signals split of a flat none cache)", sres, raw, False))

        header = [
            "h5ml %s, CLI %s" % (subprocess.run([h5ml_cli, "--version"], capture_output=True, text=True).stdout.strip(),
                                 h5ml_cli),
            "load average at start: %.2f %.2f %.2f; %d runs per median" % (load + (args.runs,)),
        ]
        text = render(rows, header)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"load": load, "runs": args.runs,
                           "rows": [{"data": label, "raw": raw, "reads": reads, "profiles": res}
                                    for label, res, raw, reads in rows]}, f, indent=1)
        log("done in %.0f s" % (time.perf_counter() - t_start))
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
