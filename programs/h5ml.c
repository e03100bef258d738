/* h5ml: the command line. Parses arguments, calls the library, prints. No format logic.
 *
 * Exit codes: 0 ok, 1 a check or comparison failed, 2 usage or input error, 128 + N when
 * a writing command stopped on signal N (SIGTERM, SIGINT) after finalizing what it wrote. */
#define _GNU_SOURCE
#include "h5ml.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <jansson.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2 };

static const char *prog = "h5ml";

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

/* getopt's own messages are off (opterr = 0): a bad option is one line naming it. */
static void bad_option(const char *cmd, int c, char **argv)
{
    char opt[64];
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0 || optopt == 0) snprintf(opt, sizeof opt, "%s", arg);
    else snprintf(opt, sizeof opt, "-%c", optopt);
    char *eq = strchr(opt, '=');
    if (eq) *eq = 0;
    if (c == ':') die_usage("%s: option %s needs a value (see h5ml %s --help)", cmd, opt, cmd);
    die_usage("%s: unknown option %s (see h5ml %s --help)", cmd, opt, cmd);
}

static int fail(const void *handle)
{
    fprintf(stderr, "%s: error: %s\n", prog, h5ml_errmsg(handle));
    return EXIT_USAGE;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- SIGTERM and SIGINT -------------------------------------------------------------------
 * The writing commands (convert, merge, signals generate/import/split) catch them: the
 * handler only notes the signal, and the library's progress callback, called between whole
 * structures or batches, asks the operation to stop there (H5ML_PROGRESS_STOP). The command
 * then finalizes what it wrote, says what and where, and exits 128 + the signal. A second
 * signal ends the program at once, as the default action would (the file is then what a
 * killed writer leaves: crash-consistent up to its last checkpoint). */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signo)
{
    if (stop_signal) {
        signal(signo, SIG_DFL);
        raise(signo);
        return;
    }
    stop_signal = signo;
}

static void catch_stop_signals(void)
{
    const int sigs[] = { SIGTERM, SIGINT };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa, old;
        /* a signal ignored by whoever started us (nohup, a background job) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}

static const char *signal_name(int signo) { return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "a signal"; }

static int exit_interrupted(void) { return 128 + (int)stop_signal; }

/* ---- warnings and progress -------------------------------------------------------------- */

typedef struct logstate { int shown, max; bool quiet; } logstate;

static void on_log(void *user, int level, const char *msg)
{
    logstate *ls = user;
    if (level != H5ML_LOG_WARNING || ls->quiet) return;
    if (ls->shown < ls->max) fprintf(stderr, "%s: warning: %s\n", prog, msg);
    else if (ls->shown == ls->max) fprintf(stderr, "%s: warning: (further warnings are counted, not shown)\n", prog);
    ls->shown++;
}

typedef struct progress {
    bool on;
    double t0, last;
    const char *what, *unit;
    int64_t items;
    h5ml_writer *w;
} progress;

static void human_bytes(double b, char *out, size_t len)
{
    const char *u[] = { "B", "KB", "MB", "GB", "TB" };
    int k = 0;
    while (b >= 1000 && k < 4) b /= 1000, k++;
    snprintf(out, len, k ? "%.2f %s" : "%.0f %s", b, u[k]);
}

static int on_progress(void *user, int64_t done, int64_t total)
{
    progress *p = user;
    if (stop_signal) return H5ML_PROGRESS_STOP;
    if (!p->on) return 0;
    double t = now();
    if (t - p->last < 0.1 && done < total) return 0;
    p->last = t;
    double frac = total > 0 ? (double)done / (double)total : 0, el = t - p->t0;
    int width = 30, fill = (int)(frac * width + 0.5);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = 0;
    int64_t items = done;
    if (p->w) {
        h5ml_writer_stats st;
        h5ml_writer_get_stats(p->w, &st);
        items = st.added;
    }
    double eta = frac > 0.001 ? el * (1 - frac) / frac : 0;
    fprintf(stderr, "\r%s [%s] %5.1f%% %10" PRId64 " %s %9.0f/s  ETA %3.0fs ", p->what, bar, 100 * frac, items, p->unit,
            el > 0 ? (double)items / el : 0.0, eta);
    if (done >= total && total >= 0) fprintf(stderr, "\r%*s\r", 100, "");
    return 0;
}

static progress progress_start(const char *what, bool quiet)
{
    progress p = { isatty(2) && !quiet, now(), 0, what, "structures", 0, NULL };
    return p;
}

static void progress_clear(const progress *p)
{
    if (p->on) fprintf(stderr, "\r%*s\r", 100, "");
}

/* ---- option helpers ---------------------------------------------------------------------- */

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s || v < lo || v > hi) die_usage("%s must be an integer in %ld..%ld (got '%s')", what, lo, hi, s);
    return v;
}

static int parse_compression(const char *s)
{
    if (strcmp(s, "gzip") == 0) return H5ML_COMPRESS_GZIP;
    if (strcmp(s, "lzf") == 0) return H5ML_COMPRESS_LZF;
    if (strcmp(s, "none") == 0) return H5ML_COMPRESS_NONE;
    die_usage("unknown compression '%s' (choose gzip, lzf or none)", s);
}

static int parse_profile(const char *s)
{
    int p = h5ml_profile_from_name(s);
    if (p < 0) die_usage("unknown profile '%s' (choose fast, balanced, small or none)", s);
    return p;
}

/* Whether a gzip level applies: gzip given by -c, or by the profile when -c is not given. */
static bool gzip_chosen(int compression, int profile)
{
    if (compression) return compression == H5ML_COMPRESS_GZIP;
    return profile != H5ML_PROFILE_FAST && profile != H5ML_PROFILE_NONE;
}

static int64_t parse_positive(const char *s, const char *what)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || *e || e == s || v < 1) die_usage("%s must be a positive integer (got '%s')", what, s);
    return (int64_t)v;
}

static double parse_rate(const char *s, const char *what)
{
    char *e;
    double v = strtod(s, &e);
    if (*e || e == s || !(v > 0) || !isfinite(v)) die_usage("%s must be a positive number of Hz (got '%s')", what, s);
    return v;
}

static uint64_t parse_seed(const char *s)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e || e == s || strchr(s, '-')) die_usage("--seed must be an integer in 0..%llu (got '%s')", ULLONG_MAX, s);
    return (uint64_t)v;
}

/* "A,B,C": train, val and test ratios, each >= 0, summing to 1. */
static void parse_ratios(const char *s, const char *what, double out[3])
{
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        char *e;
        out[k] = strtod(p, &e);
        if (e == p || (k < 2 && *e != ',') || (k == 2 && *e))
            die_usage("%s expects three ratios A,B,C for train, val and test (got '%s')", what, s);
        if (!(out[k] >= 0) || !isfinite(out[k])) die_usage("%s: ratios must be numbers >= 0 (got '%s')", what, s);
        p = e + 1;
    }
    double sum = out[0] + out[1] + out[2];
    if (fabs(sum - 1) > 1e-6) die_usage("%s: ratios must sum to 1 (got '%s', sum %.9g)", what, s, sum);
}

/* ---- convert ------------------------------------------------------------------------------ */

static const char convert_help[] =
    "usage: h5ml convert IN.xyz -o OUT.h5 [options]\n"
    "\n"
    "Convert an extended XYZ file (as written by ASE and MLFF codes) into the atomistic HDF5\n"
    "schema: structures, energies, forces (float32), stress with mask, per-structure metadata.\n"
    "\n"
    "options:\n"
    "  -i, --input IN              input file (instead of the positional IN; '-' = stdin)\n"
    "  -o, --output OUT            output HDF5 file (required)\n"
    "  -f, --format FMT            auto, xyz or extxyz (auto: from the extension)\n"
    "  -p, --profile P             fast (lzf + shuffle), balanced (shuffle + gzip 4, the\n"
    "                              default), small (shuffle + gzip 9) or none; -c, --level\n"
    "                              and --no-shuffle override its parts\n"
    "  -c, --compression C         gzip (default), lzf or none\n"
    "      --level N, --compression-level N\n"
    "                              gzip level 1-9 (default 4)\n"
    "      --no-shuffle            do not byte-shuffle before compressing\n"
    "      --dedup                 skip structures identical to one already in OUT (same\n"
    "                              numbers, positions, cell and pbc, bit for bit)\n"
    "  -m, --metadata KEY=VALUE    extra /metadata attribute (repeatable; stored as a string)\n"
    "  -a, --append                append to OUT instead of overwriting it\n"
    "      --no-validate           skip NaN/Inf/shape checks and plausibility warnings\n"
    "      --checkpoint SECONDS    make written data crash-safe this often (default 2)\n"
    "      --access A              how OUT will be read: sequential (default) or shuffled\n"
    "                              (training in random order from a file bigger than the\n"
    "                              reader's cache: smaller compressed chunks, 1.4-1.6x\n"
    "                              faster shuffled reads, 1.2-2.2x slower in order)\n"
    "      --chunk-atoms N         rows per chunk of per-atom datasets (default 16384, or\n"
    "                              4096 with --access shuffled and compression)\n"
    "      --chunk-structures N    rows per chunk of per-structure datasets (default 4096)\n"
    "  -q, --quiet                 no progress bar, warnings or summary\n"
    "  -v, --verbose               show every warning\n"
    "\n"
    "On malformed input or a rejected structure nothing of this input is kept: a new OUT is\n"
    "removed, an appended OUT is cut back to what it held before. On SIGTERM or SIGINT what\n"
    "was converted is finalized (beside OUT when it would replace a file) and the message\n"
    "says from which frame --append continues; after a failed write (a full disk) OUT keeps\n"
    "what it held at its last checkpoint, and the message says the same.\n";

typedef struct kvlist { char **v; int n; } kvlist;

static const char *input_name(const char *in) { return strcmp(in, "-") == 0 ? "standard input" : in; }

/* After a failed write (the writer broken, h5ml.h): what `out` holds now, a file as a crash
 * leaves it, and how to go on. n0: structures it held before this run (-1: the run failed
 * as it opened the file, so what it holds is what it held). */
static void report_kept(const char *in, const char *out, bool replacing, bool dedup, int64_t n0, int64_t committed)
{
    if (replacing) {
        fprintf(stderr, "%s: %s is unchanged (the new file was not completed and is removed)\n", prog, out);
        return;
    }
    h5ml_reader *r = h5ml_reader_new();
    if (r == NULL || h5ml_reader_open(r, out) != H5ML_OK) {
        fprintf(stderr, "%s: %s cannot be read back: %s\n", prog, out, h5ml_errmsg(r));
        h5ml_reader_close(r);
        return;
    }
    int64_t n = h5ml_reader_count(r);
    h5ml_reader_close(r);
    if (n0 < 0) n0 = committed = n; /* failed at open: nothing of the input went in */
    fprintf(stderr, "%s: %s keeps its first %" PRId64 " structures (%" PRId64 " at its last checkpoint), as after a crash; ",
            prog, out, n, committed);
    if (in == NULL) fprintf(stderr, "fix the cause and run the command again\n");
    else if (dedup) fprintf(stderr, "fix the cause, then continue with --append --dedup on all of %s\n", input_name(in));
    else fprintf(stderr, "fix the cause, then continue with --append from frame %" PRId64 " of %s\n", n - n0, input_name(in));
}

/* convert stopped by a signal (ERR_INTERRUPTED): finalizes what was written, where it is (a
 * file meant to replace an existing one stays beside it, so a complete file is never
 * replaced by a part), says where, and returns the exit status. */
static int convert_stopped(h5ml_writer *w, const char *in, const char *out, bool replacing, bool dedup, int64_t n0)
{
    h5ml_writer_stats st;
    h5ml_writer_get_stats(w, &st);
    const char *where = NULL;
    if (h5ml_writer_finalize_aside(w, &where) != H5ML_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, h5ml_errmsg(w));
        h5ml_writer_stats now_st;
        h5ml_writer_get_stats(w, &now_st);
        h5ml_writer_close(w);
        if (now_st.failed) report_kept(in, out, replacing, dedup, n0, now_st.committed);
        return EXIT_USAGE;
    }
    int64_t frames = st.added + st.deduplicated; /* stopped after a whole frame */
    const char *sig = signal_name(stop_signal), *src = input_name(in);
    if (strcmp(where, out) != 0)
        fprintf(stderr,
                "%s: interrupted by %s: %s is unchanged; the %" PRId64 " structures converted so far are in %s (finalized): "
                "move it over %s and continue with --append from frame %" PRId64 " of %s\n",
                prog, sig, out, st.added, where, out, frames, src);
    else if (n0 > 0)
        fprintf(stderr,
                "%s: interrupted by %s: %" PRId64 " structures appended to %s (%" PRId64 " in all, finalized); continue with "
                "--append from frame %" PRId64 " of %s\n",
                prog, sig, st.added, out, st.structures, frames, src);
    else
        fprintf(stderr,
                "%s: interrupted by %s: %" PRId64 " structures written to %s (finalized); continue with --append from frame "
                "%" PRId64 " of %s\n",
                prog, sig, st.added, out, frames, src);
    h5ml_writer_close(w);
    return exit_interrupted();
}

static int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        { "input", required_argument, 0, 'i' },       { "output", required_argument, 0, 'o' },
        { "format", required_argument, 0, 'f' },      { "compression", required_argument, 0, 'c' },
        { "level", required_argument, 0, 'L' },       { "compression-level", required_argument, 0, 'L' },
        { "no-shuffle", no_argument, 0, 'S' },        { "metadata", required_argument, 0, 'm' },
        { "append", no_argument, 0, 'a' },            { "no-validate", no_argument, 0, 'V' },
        { "checkpoint", required_argument, 0, 'k' },  { "chunk-atoms", required_argument, 0, 'A' },
        { "chunk-structures", required_argument, 0, 'N' }, { "labels", required_argument, 0, 'l' },
        { "quiet", no_argument, 0, 'q' },             { "verbose", no_argument, 0, 'v' },
        { "profile", required_argument, 0, 'p' },     { "dedup", no_argument, 0, 'D' },
        { "access", required_argument, 0, 'X' },      { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *in = NULL, *out = NULL, *format = "auto";
    int compression = 0, level = 0, checkpoint_ms = 0, profile = 0;
    long chunk_atoms = 0, chunk_structs = 0;
    bool no_shuffle = false, append = false, no_validate = false, quiet = false, verbose = false, level_set = false;
    bool dedup = false;
    int access = 0;
    kvlist meta = { calloc((size_t)argc, sizeof(char *)), 0 };
    int c;
    while ((c = getopt_long(argc, argv, ":i:o:f:c:m:al:p:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'f': format = optarg; break;
        case 'p': profile = parse_profile(optarg); break;
        case 'D': dedup = true; break;
        case 'X':
            if (strcmp(optarg, "sequential") == 0) access = H5ML_ACCESS_SEQUENTIAL;
            else if (strcmp(optarg, "shuffled") == 0) access = H5ML_ACCESS_SHUFFLED;
            else die_usage("unknown access '%s' (choose sequential or shuffled)", optarg);
            break;
        case 'c': compression = parse_compression(optarg); break;
        case 'L': level = (int)parse_long(optarg, "--level", 1, 9); level_set = true; break;
        case 'S': no_shuffle = true; break;
        case 'm': meta.v[meta.n++] = optarg; break;
        case 'a': append = true; break;
        case 'V': no_validate = true; break;
        case 'k': {
            char *e;
            double s = strtod(optarg, &e);
            if (*e || !(s > 0) || s > 86400) die_usage("--checkpoint must be a number of seconds in (0, 86400]");
            checkpoint_ms = (int)ceil(s * 1000);
            break;
        }
        case 'A': chunk_atoms = parse_long(optarg, "--chunk-atoms", 1, 1 << 24); break;
        case 'N': chunk_structs = parse_long(optarg, "--chunk-structures", 1, 1 << 24); break;
        case 'l': die_usage("--labels applies to pickle input, which the Python module reads: h5ml.convert_pickle_to_hdf5()");
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'h': free(meta.v); fputs(convert_help, stdout); return EXIT_OK;
        default: bad_option("convert", c, argv);
        }
    }
    if (optind < argc && in == NULL) in = argv[optind++];
    if (optind < argc) die_usage("unexpected argument '%s' (see h5ml convert --help)", argv[optind]);
    if (in == NULL) die_usage("no input file (h5ml convert IN.xyz -o OUT.h5)");
    if (out == NULL) die_usage("no output file: give -o OUT.h5");
    if (level_set && !gzip_chosen(compression, profile)) die_usage("--level applies to gzip compression only");
    const char *ext = strrchr(in, '.');
    bool is_pickle = strcmp(format, "pickle") == 0 ||
                     (strcmp(format, "auto") == 0 && ext && (strcmp(ext, ".pkl") == 0 || strcmp(ext, ".pickle") == 0));
    if (is_pickle)
        die_usage("%s: pickle input is read by the Python module: python3 -c \"import h5ml; "
                  "h5ml.convert_pickle_to_hdf5('%s', '%s')\"",
                  in, in, out);
    if (strcmp(format, "auto") != 0 && strcmp(format, "xyz") != 0 && strcmp(format, "extxyz") != 0)
        die_usage("unknown format '%s' (choose auto, xyz, extxyz or pickle)", format);

    h5ml_writer *w = h5ml_writer_new();
    if (w == NULL) die_usage("out of memory");
    logstate ls = { 0, verbose ? 1 << 30 : 10, quiet };
    h5ml_set_log(w, on_log, &ls);
    if (profile) h5ml_writer_set(w, H5ML_OPT_PROFILE, profile);
    if (compression) h5ml_writer_set(w, H5ML_OPT_COMPRESSION, compression);
    if (level) h5ml_writer_set(w, H5ML_OPT_LEVEL, level);
    if (no_shuffle) h5ml_writer_set(w, H5ML_OPT_SHUFFLE, -1);
    if (dedup) h5ml_writer_set(w, H5ML_OPT_DEDUP, 1);
    if (access) h5ml_writer_set(w, H5ML_OPT_ACCESS, access);
    if (no_validate) h5ml_writer_set(w, H5ML_OPT_VALIDATE, -1);
    if (checkpoint_ms) h5ml_writer_set(w, H5ML_OPT_CHECKPOINT_MS, checkpoint_ms);
    if (chunk_atoms) h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, chunk_atoms);
    if (chunk_structs) h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, chunk_structs);
    for (int i = 0; i < meta.n; i++) {
        char *eq = strchr(meta.v[i], '=');
        if (eq == NULL || eq == meta.v[i]) die_usage("-m expects KEY=VALUE (got '%s')", meta.v[i]);
        *eq = 0;
        if (h5ml_writer_meta_string(w, meta.v[i], eq + 1) != H5ML_OK) {
            int rc = fail(w);
            h5ml_writer_close(w);
            return rc;
        }
    }
    if (strcmp(in, "-") != 0 && h5ml_writer_meta_string(w, "source_file", in) != H5ML_OK) return fail(w);
    free(meta.v);
    double t0 = now();
    struct stat sb0;
    bool replacing = !append && stat(out, &sb0) == 0;
    catch_stop_signals();
    h5ml_writer_stats st;
    if (h5ml_writer_open(w, out, append ? H5ML_APPEND : H5ML_CREATE) != H5ML_OK) {
        int rc = fail(w);
        h5ml_writer_get_stats(w, &st);
        h5ml_writer_close(w);
        struct stat sb;
        if (st.failed && append && stat(out, &sb) == 0)
            report_kept(in, out, false, dedup, -1, 0);
        else if (st.failed && replacing)
            report_kept(in, out, true, dedup, 0, 0);
        else if (st.failed)
            fprintf(stderr, "%s: nothing written to %s; fix the cause and run the command again\n", prog, out);
        return rc;
    }
    h5ml_writer_get_stats(w, &st);
    int64_t n0 = st.structures;
    progress p = progress_start("converting", quiet);
    p.w = w;
    int rc = h5ml_convert_xyz(w, in, on_progress, &p);
    if (rc == H5ML_ERR_INTERRUPTED) {
        progress_clear(&p);
        return convert_stopped(w, in, out, replacing, dedup, n0);
    }
    if (rc != H5ML_OK) {
        if (p.on) fprintf(stderr, "\n");
        fprintf(stderr, "%s: error: %s\n", prog, h5ml_errmsg(w));
        h5ml_writer_get_stats(w, &st);
        h5ml_writer_close(w);
        if (st.failed) report_kept(in, out, replacing, dedup, n0, st.committed);
        else fprintf(stderr, "%s: nothing of %s was written to %s\n", prog, in, out);
        return EXIT_USAGE;
    }
    h5ml_writer_get_stats(w, &st);
    rc = h5ml_writer_finalize(w);
    if (rc != H5ML_OK) {
        rc = fail(w);
        h5ml_writer_stats fst;
        h5ml_writer_get_stats(w, &fst);
        h5ml_writer_close(w);
        if (fst.failed) report_kept(in, out, replacing, dedup, n0, fst.committed);
        return rc;
    }
    h5ml_writer_close(w);
    double el = now() - t0;
    if (!quiet) {
        struct stat sb;
        char size[32] = "?";
        if (stat(out, &sb) == 0) human_bytes((double)sb.st_size, size, sizeof size);
        printf("%s %" PRId64 " structures (%" PRId64 " atoms) %s %s in %.2f s (%.0f structures/s); %s; %" PRId64 " warning%s",
               append ? "appended" : "wrote", st.added, st.added_atoms, "to", out, el,
               el > 0 ? (double)st.added / el : 0.0, size, st.warnings, st.warnings == 1 ? "" : "s");
        if (dedup) printf("; %" PRId64 " duplicate%s skipped", st.deduplicated, st.deduplicated == 1 ? "" : "s");
        printf("\n");
    }
    return EXIT_OK;
}

/* ---- signal files ------------------------------------------------------------------------- */

static const char *const split_names[3] = { "train", "val", "test" };

/* Opens `path` on its flat data or, for a split file, on its first split. */
static int sig_open_any(h5ml_sigreader *r, const char *path)
{
    int rc = h5ml_sigreader_open(r, path, NULL);
    for (int s = 0; s < 3 && rc == H5ML_ERR_ARG; s++) {
        rc = h5ml_sigreader_open(r, path, split_names[s]);
        if (rc == H5ML_ERR_NOTFOUND) rc = H5ML_ERR_ARG;
    }
    return rc;
}

/* Signals in the whole file of the open reader (all splits). */
static int64_t sig_total(const h5ml_sigreader *r)
{
    int64_t c[3];
    if (h5ml_sigreader_layout(r, c) == H5ML_SIG_FLAT) return h5ml_sigreader_count(r);
    int64_t n = 0;
    for (int s = 0; s < 3; s++) n += c[s] > 0 ? c[s] : 0;
    return n;
}

/* The count and length of `path`'s signals (0, 0 if it cannot be opened). */
static void sig_size(h5ml_sigreader *r, const char *path, int64_t *count, int64_t *length)
{
    *count = *length = 0;
    if (sig_open_any(r, path) != H5ML_OK) return;
    *count = sig_total(r);
    *length = h5ml_sigreader_length(r);
}

/* ---- inspect ------------------------------------------------------------------------------ */

static const char inspect_help[] =
    "usage: h5ml inspect FILE.h5 [--json]\n"
    "\n"
    "Summarize an atomistic dataset: counts, elements, label statistics, storage and\n"
    "compression ratio, and the /metadata attributes. For a signal cache (flat or split into\n"
    "train, val, test): signal length and count, per split the count and the signals per\n"
    "class, sample statistics, storage, the root attributes and two metadata examples.\n"
    "Statistics are computed from the data.\n"
    "\n"
    "options:\n"
    "      --json    print the summary as one JSON object\n";

static void print_elements(const h5ml_summary *s)
{
    int shown = 0;
    for (int z = 0; z <= 118; z++) {
        if (!s->element_counts[z]) continue;
        printf("%s%s %" PRId64, shown ? ", " : "", h5ml_symbol(z), s->element_counts[z]);
        shown++;
    }
    printf("%s\n", shown ? "" : "-");
}

static void print_object(json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        /* 15 digits for display: 0.7, not 0.69999999999999996 (--json keeps every digit) */
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        printf("    %-24s %s\n", key, text ? text : json_string_value(v));
        free(text);
    }
}

static void print_metadata(const char *json)
{
    json_t *obj = json_loads(json, 0, NULL);
    print_object(obj);
    json_decref(obj);
}

/* "  storage        gzip, level 4, shuffle on; file 1.20 MB; signals 300 KB stored for ..." */
static void print_storage(const char *compression, int level, int shuffle, int64_t file, int64_t raw, int64_t stored,
                          const char *what)
{
    char fsz[32], rsz[32], ssz[32];
    human_bytes((double)file, fsz, sizeof fsz);
    human_bytes((double)raw, rsz, sizeof rsz);
    human_bytes((double)stored, ssz, sizeof ssz);
    printf("  storage        %s, ", compression);
    if (level) printf("level %d, ", level);
    printf("shuffle %s; file %s; %s %s stored for %s raw (%.1f %%)\n", shuffle ? "on" : "off", fsz, what, ssz, rsz,
           raw ? 100.0 * (double)stored / (double)raw : 100.0);
}

/* ---- inspect: signal files ---- */

/* "0 sain: 4, 3 jeu: 2" (names from the class_names attribute when it has them). */
static void print_class_counts(const int64_t *counts, int64_t other, const json_t *names)
{
    int shown = 0;
    for (int k = 0; k < 256; k++) {
        if (!counts[k]) continue;
        const char *name = json_string_value(json_array_get(names, (size_t)k));
        printf("%s%d%s%s: %" PRId64, shown++ ? ", " : "", k, name ? " " : "", name ? name : "", counts[k]);
    }
    if (other) printf("%sother labels: %" PRId64, shown++ ? ", " : "", other);
    printf("%s\n", shown ? "" : "-");
}

static json_t *class_counts_json(const int64_t *counts)
{
    json_t *o = json_object();
    for (int k = 0; k < 256; k++) {
        char key[8];
        snprintf(key, sizeof key, "%d", k);
        if (counts[k]) json_object_set_new(o, key, json_integer(counts[k]));
    }
    return o;
}

static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Up to two metadata objects of the first split (or the flat file) that has metadata;
 * *where names that split. */
static json_t *metadata_examples(h5ml_sigreader *r, const char *path, const h5ml_sigsummary *s, const char **where)
{
    json_t *ex = json_array();
    bool flat = s->layout == H5ML_SIG_FLAT;
    *where = NULL;
    for (int k = 0; k < (flat ? 1 : 3) && s->has_metadata && *where == NULL; k++) {
        if (s->count[k] <= 0 || h5ml_sigreader_open(r, path, flat ? NULL : split_names[k]) != H5ML_OK ||
            !h5ml_sigreader_has_metadata(r))
            continue;
        for (int64_t i = 0; i < 2 && i < s->count[k]; i++) {
            char *text = NULL;
            json_t *obj = h5ml_sigreader_metadata(r, i, &text) == H5ML_OK && text ? json_loads(text, 0, NULL) : NULL;
            h5ml_free(text);
            if (obj) json_array_append_new(ex, obj);
        }
        if (json_array_size(ex)) *where = flat ? "the file" : split_names[k];
    }
    return ex;
}

static void print_signal_summary(const char *path, const h5ml_sigsummary *s, json_t *attrs, const json_t *examples,
                                 const char *where)
{
    const json_t *names = json_object_get(attrs, "class_names");
    bool flat = s->layout == H5ML_SIG_FLAT;
    printf("%s: signal cache, %s", path, flat ? "flat\n" : "split into");
    for (int k = 0, n = 0; k < 3 && !flat; k++)
        if (s->count[k] >= 0) printf("%s %s", n++ ? "," : "", split_names[k]);
    printf("%s", flat ? "" : "\n");
    printf("  signals        %" PRId64 " of length %" PRId64 " (%" PRId64 " classes)\n", s->total, s->length, s->num_classes);
    for (int k = 0; k < 3; k++) {
        if (flat ? k > 0 : s->count[k] < 0) continue;
        if (flat) printf("  %-14s ", "by label");
        else printf("  %-14s %" PRId64 " signals; by label ", split_names[k], s->count[k]);
        print_class_counts(s->class_counts[k], s->other_labels[k], names);
    }
    if (s->total)
        printf("  samples        min %.6g  max %.6g  mean %.6g  std %.6g  rms %.6g; %" PRId64 " non-finite\n", s->min, s->max,
               s->mean, s->std, s->rms, s->nonfinite);
    print_storage(s->compression, s->compression_level, s->shuffle, s->bytes_file, s->bytes_raw, s->bytes_stored, "signals");
    printf("  attributes%s\n", json_object_size(attrs) ? "" : "     none");
    print_object(attrs);
    if (where == NULL) return;
    printf("  metadata       first %zu signals of %s\n", json_array_size(examples), where);
    size_t i;
    json_t *v;
    json_array_foreach(examples, i, v)
    {
        char *text = json_dumps(v, JSON_COMPACT);
        printf("    [%zu] %s\n", i, text ? text : "");
        free(text);
    }
}

static void print_signal_json(const char *path, const h5ml_sigsummary *s, json_t *attrs, json_t *examples)
{
    json_t *o = json_object(), *names = json_object_get(attrs, "class_names");
    bool flat = s->layout == H5ML_SIG_FLAT;
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "layout", json_string(flat ? "flat" : "split"));
    json_object_set_new(o, "signal_length", json_integer(s->length));
    json_object_set_new(o, "num_signals", json_integer(s->total));
    json_object_set_new(o, "num_classes", json_integer(s->num_classes));
    if (names) json_object_set(o, "class_names", names);
    json_t *st = json_object();
    json_object_set_new(st, "min", real_or_null(s->min));
    json_object_set_new(st, "max", real_or_null(s->max));
    json_object_set_new(st, "mean", real_or_null(s->mean));
    json_object_set_new(st, "std", real_or_null(s->std));
    json_object_set_new(st, "rms", real_or_null(s->rms));
    json_object_set_new(st, "nonfinite", json_integer(s->nonfinite));
    json_object_set_new(o, "stats", st);
    json_object_set_new(o, "compression", json_string(s->compression));
    json_object_set_new(o, "compression_level", json_integer(s->compression_level));
    json_object_set_new(o, "shuffle", json_boolean(s->shuffle));
    json_object_set_new(o, "bytes_file", json_integer(s->bytes_file));
    json_object_set_new(o, "bytes_raw", json_integer(s->bytes_raw));
    json_object_set_new(o, "bytes_stored", json_integer(s->bytes_stored));
    json_t *splits = flat ? o : json_object();
    for (int k = 0; k < 3; k++) {
        if (flat ? k > 0 : s->count[k] < 0) continue;
        json_t *sp = flat ? o : json_object();
        json_object_set_new(sp, "count", json_integer(s->count[k]));
        json_object_set_new(sp, "class_counts", class_counts_json(s->class_counts[k]));
        if (s->other_labels[k]) json_object_set_new(sp, "other_labels", json_integer(s->other_labels[k]));
        if (!flat) json_object_set_new(splits, split_names[k], sp);
    }
    if (!flat) json_object_set_new(o, "splits", splits);
    json_object_set_new(o, "has_metadata", json_boolean(s->has_metadata));
    json_object_set(o, "metadata_examples", examples);
    json_object_set(o, "attributes", attrs);
    char *text = json_dumps(o, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
}

static int inspect_signals(const char *path, bool as_json)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    h5ml_sigsummary s;
    progress p = progress_start("reading", false);
    p.unit = "signals";
    if (h5ml_signals_summarize(r, path, &s, on_progress, &p) != H5ML_OK) {
        progress_clear(&p);
        int rc = fail(r);
        h5ml_sigreader_close(r);
        return rc;
    }
    char *text = NULL;
    json_t *attrs = NULL;
    if (sig_open_any(r, path) == H5ML_OK && h5ml_sigreader_attrs(r, &text) == H5ML_OK) attrs = json_loads(text, 0, NULL);
    h5ml_free(text);
    if (!json_is_object(attrs)) {
        json_decref(attrs);
        attrs = json_object();
    }
    const char *where;
    json_t *examples = metadata_examples(r, path, &s, &where);
    if (as_json) print_signal_json(path, &s, attrs, examples);
    else print_signal_summary(path, &s, attrs, examples, where);
    json_decref(examples);
    json_decref(attrs);
    h5ml_sigreader_close(r);
    return EXIT_OK;
}

/* ---- inspect: atomistic files ---- */

static int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = { { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    bool as_json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'j') as_json = true;
        else if (c == 'h') return fputs(inspect_help, stdout), EXIT_OK;
        else bad_option("inspect", c, argv);
    }
    if (optind + 1 != argc) die_usage("inspect takes one file (h5ml inspect FILE.h5)");
    const char *path = argv[optind];
    if (h5ml_is_signal_file(path)) return inspect_signals(path, as_json);
    h5ml_reader *r = h5ml_reader_new();
    if (h5ml_reader_open(r, path) != H5ML_OK) {
        int rc = fail(r);
        h5ml_reader_close(r);
        return rc;
    }
    h5ml_summary s;
    progress p = progress_start("reading", false);
    if (h5ml_summarize(r, &s, on_progress, &p) != H5ML_OK) {
        int rc = fail(r);
        h5ml_reader_close(r);
        return rc;
    }
    char *meta = NULL;
    h5ml_reader_metadata(r, &meta);
    if (as_json) {
        printf("{\"file\":\"%s\",\"structures\":%" PRId64 ",\"atoms\":%" PRId64 ",\"atoms_min\":%" PRId64
               ",\"atoms_max\":%" PRId64 ",\"periodic\":%" PRId64 ",\"with_stress\":%" PRId64 ",\"with_info\":%" PRId64
               ",\"elements\":{",
               path, s.structures, s.atoms, s.atoms_min, s.atoms_max, s.periodic, s.with_stress, s.with_info);
        int k = 0;
        for (int z = 0; z <= 118; z++)
            if (s.element_counts[z]) printf("%s\"%s\":%" PRId64, k++ ? "," : "", h5ml_symbol(z), s.element_counts[z]);
        printf("},\"energy_min\":%.17g,\"energy_max\":%.17g,\"energy_mean\":%.17g,\"energy_std\":%.17g,"
               "\"force_max\":%.9g,\"force_rms\":%.9g,\"bytes_file\":%" PRId64 ",\"bytes_raw\":%" PRId64
               ",\"bytes_stored\":%" PRId64 ",\"compression\":\"%s\",\"compression_level\":%d,\"shuffle\":%s,\"metadata\":%s}\n",
               s.structures ? s.energy_min : 0, s.structures ? s.energy_max : 0, s.structures ? s.energy_mean : 0,
               s.structures ? s.energy_std : 0, s.atoms ? s.force_max : 0, s.atoms ? s.force_rms : 0, s.bytes_file,
               s.bytes_raw, s.bytes_stored, s.compression, s.compression_level, s.shuffle ? "true" : "false",
               meta ? meta : "{}");
    } else {
        printf("%s: atomistic dataset\n", path);
        printf("  structures     %" PRId64 " (%" PRId64 " periodic, %" PRId64 " with stress, %" PRId64 " with metadata)\n",
               s.structures, s.periodic, s.with_stress, s.with_info);
        printf("  atoms          %" PRId64 " (%" PRId64 "..%" PRId64 " per structure, mean %.1f)\n", s.atoms, s.atoms_min,
               s.atoms_max, s.structures ? (double)s.atoms / (double)s.structures : 0.0);
        printf("  elements       ");
        print_elements(&s);
        if (s.structures) {
            printf("  energy (eV)    min %.6g  max %.6g  mean %.6g  std %.6g\n", s.energy_min, s.energy_max, s.energy_mean,
                   s.energy_std);
            printf("  energy/atom    mean %.6g  std %.6g\n", s.energy_per_atom_mean, s.energy_per_atom_std);
        }
        if (s.atoms) printf("  forces (eV/A)  max |F| %.6g  rms %.6g\n", s.force_max, s.force_rms);
        print_storage(s.compression, s.compression_level, s.shuffle, s.bytes_file, s.bytes_raw, s.bytes_stored, "datasets");
        printf("  metadata\n");
        if (meta) print_metadata(meta);
    }
    h5ml_free(meta);
    h5ml_reader_close(r);
    return EXIT_OK;
}

/* ---- verify -------------------------------------------------------------------------------- */

static const char verify_help[] =
    "usage: h5ml verify FILE.h5 [-q]\n"
    "\n"
    "Run every integrity check. An atomistic dataset: schema (names, dtypes, shapes), splits\n"
    "(start at 0, never decrease, end at the atom count, equal in structures/ and labels/),\n"
    "lengths, structure_indices, atomic numbers, finite labels, zero stress where masked, and\n"
    "the /metadata counts and statistics against the data. A signal cache: schema, lengths\n"
    "that agree, num_signals and num_samples, finite samples, labels within num_classes,\n"
    "metadata that parses, indices forming a permutation across the splits.\n"
    "Exit 0 only when clean, 1 when a check fails.\n"
    "\n"
    "options:\n"
    "  -q, --quiet   print nothing, only set the exit code\n";

typedef struct vstate { bool quiet; int shown; } vstate;

static void on_problem(void *user, const char *msg)
{
    vstate *v = user;
    if (!v->quiet && v->shown++ < 50) fprintf(stderr, "  problem: %s\n", msg);
}

/* Prints a failed verification of `path` (the message on `handle`); returns the exit code. */
static int verify_failed(int rc, const char *path, const void *handle, bool quiet)
{
    if (quiet) return rc == H5ML_ERR_CHECK ? EXIT_CHECK : EXIT_USAGE;
    if (rc == H5ML_ERR_CHECK) fprintf(stderr, "%s: FAILED: %s\n", path, h5ml_errmsg(handle));
    else fprintf(stderr, "%s: error: %s\n", prog, h5ml_errmsg(handle));
    return rc == H5ML_ERR_CHECK ? EXIT_CHECK : EXIT_USAGE;
}

static int verify_signals(const char *path, vstate *vs)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    logstate ls = { 0, 50, vs->quiet };
    h5ml_set_log(r, on_log, &ls);
    int rc = h5ml_signals_verify(r, path, on_problem, vs);
    if (rc == H5ML_OK && !vs->quiet) {
        int64_t n, len;
        sig_size(r, path, &n, &len);
        printf("%s: OK (signal cache, %" PRId64 " signals of length %" PRId64 ")\n", path, n, len);
    }
    int code = rc == H5ML_OK ? EXIT_OK : verify_failed(rc, path, r, vs->quiet);
    h5ml_sigreader_close(r);
    return code;
}

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = { { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    vstate vs = { false, 0 };
    int c;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        if (c == 'q') vs.quiet = true;
        else if (c == 'h') return fputs(verify_help, stdout), EXIT_OK;
        else bad_option("verify", c, argv);
    }
    if (optind + 1 != argc) die_usage("verify takes one file (h5ml verify FILE.h5)");
    const char *path = argv[optind];
    if (h5ml_is_signal_file(path)) return verify_signals(path, &vs);
    h5ml_reader *r = h5ml_reader_new();
    logstate ls = { 0, 50, vs.quiet };
    h5ml_set_log(r, on_log, &ls);
    int rc = h5ml_reader_open(r, path);
    if (rc != H5ML_OK) {
        if (!vs.quiet) fprintf(stderr, "%s: FAILED: %s\n", prog, h5ml_errmsg(r));
        h5ml_reader_close(r);
        return rc == H5ML_ERR_SCHEMA ? EXIT_CHECK : EXIT_USAGE;
    }
    rc = h5ml_verify(r, on_problem, &vs);
    if (rc == H5ML_OK && !vs.quiet)
        printf("%s: OK (%" PRId64 " structures, %" PRId64 " atoms)\n", path, h5ml_reader_count(r), h5ml_reader_total_atoms(r));
    int code = rc == H5ML_OK ? EXIT_OK : verify_failed(rc, path, r, vs.quiet);
    h5ml_reader_close(r);
    return code;
}

/* ---- diff ---------------------------------------------------------------------------------- */

static const char diff_help[] =
    "usage: h5ml diff A.h5 B.h5\n"
    "\n"
    "Compare every dataset of two files exactly (names, dtypes, shapes, values bit for bit)\n"
    "and the counts: /metadata num_structures of atomistic datasets, num_signals and\n"
    "num_samples of signal caches. Exit 0 if identical, 1 at the first difference (named).\n";

/* Prints the outcome of comparing A and B (`d`: OK, ERR_DIFFER or an error on `handle`). */
static int diff_report(int d, const char *a, const char *b, const void *handle, int64_t n, const char *unit)
{
    if (d == H5ML_OK) {
        printf("%s and %s are identical (%" PRId64 " %s)\n", a, b, n, unit);
        return EXIT_OK;
    }
    if (d == H5ML_ERR_DIFFER) {
        printf("%s and %s differ: %s\n", a, b, h5ml_errmsg(handle));
        return EXIT_CHECK;
    }
    return fail(handle);
}

static int diff_signals(const char *a, const char *b)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    int d = h5ml_diff_files(r, a, b);
    int64_t n = 0, len;
    if (d == H5ML_OK) sig_size(r, a, &n, &len);
    int rc = diff_report(d, a, b, r, n, "signals");
    h5ml_sigreader_close(r);
    return rc;
}

static int cmd_diff(int argc, char **argv)
{
    static const struct option opts[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') return fputs(diff_help, stdout), EXIT_OK;
        bad_option("diff", c, argv);
    }
    if (optind + 2 != argc) die_usage("diff takes two files (h5ml diff A.h5 B.h5)");
    const char *pa = argv[optind], *pb = argv[optind + 1];
    if (h5ml_is_signal_file(pa) || h5ml_is_signal_file(pb)) return diff_signals(pa, pb);
    h5ml_reader *a = h5ml_reader_new(), *b = h5ml_reader_new();
    int rc = EXIT_USAGE;
    if (h5ml_reader_open(a, pa) != H5ML_OK) fail(a);
    else if (h5ml_reader_open(b, pb) != H5ML_OK) fail(b);
    else rc = diff_report(h5ml_diff(a, b), pa, pb, a, h5ml_reader_count(a), "structures");
    h5ml_reader_close(a);
    h5ml_reader_close(b);
    return rc;
}

/* ---- export -------------------------------------------------------------------------------- */

static const char export_help[] =
    "usage: h5ml export FILE.h5 -o OUT.xyz [--range A:B]\n"
    "\n"
    "Write structures to extended XYZ in ASE's layout, numbers in their shortest exact form\n"
    "(ASE reads positions, cells, energies and stresses back bit for bit).\n"
    "\n"
    "options:\n"
    "  -o, --output OUT.xyz   output file ('-' = stdout)\n"
    "  -r, --range A:B        structures A..B-1, Python slice style (A:, :B, -10:)\n"
    "  -q, --quiet            no progress bar or summary\n";

static void parse_range(const char *s, int64_t n, int64_t *a, int64_t *b)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL) die_usage("--range expects A:B (got '%s')", s);
    char *e;
    *a = 0;
    *b = n;
    if (colon != s) {
        *a = strtoll(s, &e, 10);
        if (e != colon) die_usage("--range expects integers (got '%s')", s);
    }
    if (colon[1]) {
        *b = strtoll(colon + 1, &e, 10);
        if (*e) die_usage("--range expects integers (got '%s')", s);
    }
    if (*a < 0) *a += n;
    if (*b < 0) *b += n;
    if (*a < 0) *a = 0;
    if (*b > n) *b = n;
    if (*a > *b) *a = *b;
}

static int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = { { "output", required_argument, 0, 'o' }, { "range", required_argument, 0, 'r' },
                                          { "quiet", no_argument, 0, 'q' },        { "help", no_argument, 0, 'h' },
                                          { 0, 0, 0, 0 } };
    const char *out = NULL, *range = NULL;
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:r:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': range = optarg; break;
        case 'q': quiet = true; break;
        case 'h': return fputs(export_help, stdout), EXIT_OK;
        default: bad_option("export", c, argv);
        }
    }
    if (optind + 1 != argc) die_usage("export takes one file (h5ml export FILE.h5 -o OUT.xyz)");
    if (out == NULL) die_usage("no output file: give -o OUT.xyz");
    h5ml_reader *r = h5ml_reader_new();
    if (h5ml_reader_open(r, argv[optind]) != H5ML_OK) {
        int rc = fail(r);
        h5ml_reader_close(r);
        return rc;
    }
    int64_t a = 0, b = h5ml_reader_count(r);
    if (range) parse_range(range, b, &a, &b);
    double t0 = now();
    progress p = progress_start("exporting", quiet || strcmp(out, "-") == 0);
    int rc = h5ml_export_xyz(r, out, a, b, on_progress, &p);
    if (rc != H5ML_OK) {
        rc = fail(r);
    } else {
        if (!quiet && strcmp(out, "-") != 0)
            printf("exported %" PRId64 " structures to %s in %.2f s\n", b - a, out, now() - t0);
        rc = EXIT_OK;
    }
    h5ml_reader_close(r);
    return rc;
}

/* ---- merge -------------------------------------------------------------------------------- */

static const char merge_help[] =
    "usage: h5ml merge A.h5 B.h5 [MORE.h5 ...] -o C.h5 [options]\n"
    "\n"
    "Write the structures of A, then B (and more) into a new file C, with splits and\n"
    "structure_indices continued. C takes A's compression and chunking unless given.\n"
    "\n"
    "options:\n"
    "  -o, --output C.h5     output file (required; must not be an input)\n"
    "  -p, --profile P       fast, balanced, small or none (see h5ml convert --help);\n"
    "                        -c, --level and --no-shuffle override its parts\n"
    "  -c, --compression C   gzip, lzf or none\n"
    "      --level N         gzip level 1-9\n"
    "      --no-shuffle      do not byte-shuffle before compressing\n"
    "      --dedup           skip structures identical to one written before (from any\n"
    "                        input: same numbers, positions, cell and pbc, bit for bit)\n"
    "      --no-validate     skip validation of the copied structures\n"
    "  -q, --quiet           no progress bar or summary\n";

static int cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = { { "output", required_argument, 0, 'o' }, { "compression", required_argument, 0, 'c' },
                                          { "level", required_argument, 0, 'L' },  { "no-validate", no_argument, 0, 'V' },
                                          { "quiet", no_argument, 0, 'q' },        { "help", no_argument, 0, 'h' },
                                          { "profile", required_argument, 0, 'p' }, { "dedup", no_argument, 0, 'D' },
                                          { "no-shuffle", no_argument, 0, 'S' },   { 0, 0, 0, 0 } };
    const char *out = NULL;
    int compression = 0, level = 0, profile = 0;
    bool quiet = false, no_validate = false, dedup = false, no_shuffle = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:c:p:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'c': compression = parse_compression(optarg); break;
        case 'p': profile = parse_profile(optarg); break;
        case 'D': dedup = true; break;
        case 'S': no_shuffle = true; break;
        case 'L': level = (int)parse_long(optarg, "--level", 1, 9); break;
        case 'V': no_validate = true; break;
        case 'q': quiet = true; break;
        case 'h': return fputs(merge_help, stdout), EXIT_OK;
        default: bad_option("merge", c, argv);
        }
    }
    if (argc - optind < 2) die_usage("merge takes at least two files (h5ml merge A.h5 B.h5 -o C.h5)");
    if (out == NULL) die_usage("no output file: give -o C.h5");
    if (level && (compression || profile) && !gzip_chosen(compression, profile)) die_usage("--level applies to gzip compression only");
    struct stat so;
    for (int i = optind; i < argc; i++) {
        struct stat si;
        if (stat(out, &so) == 0 && stat(argv[i], &si) == 0 && so.st_ino == si.st_ino && so.st_dev == si.st_dev)
            die_usage("the output %s is also an input", out);
    }
    double t0 = now();
    bool replacing = stat(out, &so) == 0;
    catch_stop_signals();
    /* Every input is opened (and its schema checked) before the output is created, so a bad
     * input leaves nothing behind; a failure while copying rolls the output back (a failed
     * write leaves it as a crash would). */
    int nin = argc - optind, rc = EXIT_OK;
    h5ml_reader **in = calloc((size_t)nin, sizeof *in);
    for (int i = 0; i < nin && rc == EXIT_OK; i++) {
        in[i] = h5ml_reader_new();
        if (h5ml_reader_open(in[i], argv[optind + i]) != H5ML_OK) rc = fail(in[i]);
    }
    h5ml_writer *w = h5ml_writer_new();
    logstate ls = { 0, 10, quiet };
    h5ml_set_log(w, on_log, &ls);
    if (rc == EXIT_OK) {
        h5ml_layout lay;
        h5ml_reader_layout(in[0], &lay);
        if (profile) { /* the profile and what is given over it; otherwise A's filters */
            h5ml_writer_set(w, H5ML_OPT_PROFILE, profile);
            if (compression) h5ml_writer_set(w, H5ML_OPT_COMPRESSION, compression);
            if (level) h5ml_writer_set(w, H5ML_OPT_LEVEL, level);
        } else {
            h5ml_writer_set(w, H5ML_OPT_COMPRESSION, compression ? compression : lay.compression);
            if (level || lay.level) h5ml_writer_set(w, H5ML_OPT_LEVEL, level ? level : lay.level);
            if (!lay.shuffle) h5ml_writer_set(w, H5ML_OPT_SHUFFLE, -1);
        }
        if (no_shuffle) h5ml_writer_set(w, H5ML_OPT_SHUFFLE, -1);
        if (dedup) h5ml_writer_set(w, H5ML_OPT_DEDUP, 1);
        if (lay.chunk_atoms) h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, lay.chunk_atoms);
        if (lay.chunk_structures) h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, lay.chunk_structures);
        if (no_validate) h5ml_writer_set(w, H5ML_OPT_VALIDATE, -1);
        if (h5ml_writer_open(w, out, H5ML_CREATE) != H5ML_OK) rc = fail(w);
    }
    int64_t total = 0;
    for (int i = 0; i < nin; i++) total += in[i] ? h5ml_reader_count(in[i]) : 0;
    bool stopped = false;
    for (int i = 0; i < nin && rc == EXIT_OK && !stopped; i++) {
        progress p = progress_start("merging", quiet);
        int e = h5ml_writer_add_file(w, in[i], on_progress, &p);
        h5ml_writer_stats fst;
        h5ml_writer_get_stats(w, &fst);
        if (e == H5ML_ERR_INTERRUPTED) {
            stopped = true;
        } else if (e != H5ML_OK) {
            fprintf(stderr, "%s: error: %s\n", prog, h5ml_errmsg(w));
            if (!fst.failed) h5ml_writer_rollback(w);
            h5ml_writer_close(w);
            w = NULL;
            if (fst.failed) report_kept(NULL, out, replacing, false, 0, fst.committed);
            rc = EXIT_USAGE;
        }
    }
    for (int i = 0; i < nin; i++) h5ml_reader_close(in[i]);
    free(in);
    h5ml_writer_stats st;
    h5ml_writer_get_stats(w, &st);
    const char *where = out;
    if (rc == EXIT_OK && (stopped ? h5ml_writer_finalize_aside(w, &where) : h5ml_writer_finalize(w)) != H5ML_OK) {
        rc = fail(w);
        h5ml_writer_stats fst;
        h5ml_writer_get_stats(w, &fst);
        if (fst.failed) {
            h5ml_writer_close(w);
            w = NULL;
            report_kept(NULL, out, replacing, false, 0, fst.committed);
        }
    }
    if (rc == EXIT_OK && stopped) {
        if (strcmp(where, out) != 0)
            fprintf(stderr, "%s: interrupted by %s: %s is unchanged; the %" PRId64 " of %" PRId64
                    " structures merged so far are in %s (finalized); run the merge again for all of them\n",
                    prog, signal_name(stop_signal), out, st.structures, total, where);
        else
            fprintf(stderr, "%s: interrupted by %s: %" PRId64 " of %" PRId64
                    " structures merged into %s (finalized); run the merge again for all of them\n",
                    prog, signal_name(stop_signal), st.structures, total, out);
        rc = exit_interrupted();
    }
    h5ml_writer_close(w);
    if (rc == EXIT_OK && !stopped && !quiet) {
        printf("merged %d files into %s: %" PRId64 " structures (%" PRId64 " atoms) in %.2f s", nin, out, st.structures,
               st.atoms, now() - t0);
        if (dedup) printf("; %" PRId64 " duplicate%s skipped", st.deduplicated, st.deduplicated == 1 ? "" : "s");
        printf("\n");
    }
    return rc;
}

/* ---- repair ------------------------------------------------------------------------------- */

static const char repair_help[] =
    "usage: h5ml repair FILE.h5\n"
    "\n"
    "Cut a file whose datasets have unequal lengths (what a writer interrupted inside a\n"
    "checkpoint, or another tool, can leave) back to its longest consistent prefix of\n"
    "structures, recompute /metadata, and mark it finalized. A consistent file is left as\n"
    "it is apart from /metadata. Prints how many structures were kept and dropped.\n";

static int cmd_repair(int argc, char **argv)
{
    static const struct option opts[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') return fputs(repair_help, stdout), EXIT_OK;
        bad_option("repair", c, argv);
    }
    if (optind + 1 != argc) die_usage("repair takes one file (h5ml repair FILE.h5)");
    const char *path = argv[optind];
    if (access(path, F_OK) != 0) die_usage("%s: %s", path, strerror(errno));
    h5ml_writer *w = h5ml_writer_new();
    logstate ls = { 0, 1 << 30, false };
    h5ml_set_log(w, on_log, &ls);
    if (h5ml_writer_open(w, path, H5ML_REPAIR) != H5ML_OK) {
        int rc = fail(w);
        h5ml_writer_close(w);
        return rc;
    }
    h5ml_writer_stats st;
    h5ml_writer_get_stats(w, &st);
    int rc = h5ml_writer_close(w) == H5ML_OK ? EXIT_OK : EXIT_USAGE;
    if (rc == EXIT_OK && st.dropped)
        printf("%s: %" PRId64 " structures (%" PRId64 " atoms) kept; cut %" PRId64 " structure(s) of an inconsistent tail\n", path,
               st.structures, st.atoms, st.dropped);
    else if (rc == EXIT_OK)
        printf("%s: %" PRId64 " structures (%" PRId64 " atoms); nothing to cut\n", path, st.structures, st.atoms);
    return rc;
}

/* ---- signals ------------------------------------------------------------------------------- */

static const char signals_help[] =
    "usage: h5ml signals SUBCOMMAND [options]\n"
    "\n"
    "Caches of fixed-length signals (vibration records, say) with integer labels and\n"
    "per-signal JSON metadata, flat or split into train, val and test groups.\n"
    "\n"
    "subcommands:\n"
    "  generate -o OUT.h5            simulate the 11 fault classes of a rotating machine\n"
    "  import DIR -o OUT.h5          MATLAB files, one sub-directory per class\n"
    "  split IN.h5 -o OUT.h5         split a flat cache into train, val and test\n"
    "\n"
    "Run 'h5ml signals SUBCOMMAND --help' for the options of a subcommand. 'h5ml inspect',\n"
    "'h5ml verify' and 'h5ml diff' read signal caches too.\n";

/* The output options every subcommand takes, listed in each one's help. */
#define SIG_WRITER_HELP                                                                          \
    "  -p, --profile P         fast (lzf + shuffle), balanced (shuffle + gzip 4, the default),\n" \
    "                          small (shuffle + gzip 9) or none; -c, --level and --no-shuffle\n"  \
    "                          override its parts\n"                                              \
    "  -c, --compression C     gzip (default), lzf or none\n"                                    \
    "      --level N           gzip level 1-9 (default 4)\n"                                     \
    "      --no-shuffle        do not byte-shuffle before compressing\n"                         \
    "      --threads N         compression threads (default one per core)\n"                     \
    "      --allow-nonfinite   accept NaN and Inf samples (rejected by default)\n"                \
    "  -q, --quiet             no progress bar, warnings or summary\n"

#define SIG_WRITER_OPTIONS                                                                           \
    { "output", required_argument, 0, 'o' }, { "compression", required_argument, 0, 'c' },          \
        { "level", required_argument, 0, 'L' }, { "compression-level", required_argument, 0, 'L' }, \
        { "no-shuffle", no_argument, 0, 'S' }, { "threads", required_argument, 0, 'T' },            \
        { "allow-nonfinite", no_argument, 0, 1001 }, { "quiet", no_argument, 0, 'q' },               \
        { "profile", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' }

typedef struct sigopts {
    const char *out;
    int compression, level, threads, profile;
    bool no_shuffle, quiet, allow_nonfinite;
} sigopts;

/* Handles an option of SIG_WRITER_OPTIONS (not --help); false if `c` is none of them. */
static bool sig_writer_option(int c, sigopts *o)
{
    switch (c) {
    case 'o': o->out = optarg; return true;
    case 'c': o->compression = parse_compression(optarg); return true;
    case 'p': o->profile = parse_profile(optarg); return true;
    case 'L': o->level = (int)parse_long(optarg, "--level", 1, 9); return true;
    case 'S': o->no_shuffle = true; return true;
    case 'T': o->threads = (int)parse_long(optarg, "--threads", 1, 1024); return true;
    case 1001: o->allow_nonfinite = true; return true;
    case 'q': o->quiet = true; return true;
    default: return false;
    }
}

/* One run of a subcommand: the writer configured by the options, its warnings, its
 * progress bar, and what it wrote. */
typedef struct sigrun {
    h5ml_sigwriter *w;
    logstate ls;
    progress p;
    double t0;
    h5ml_sigwriter_stats st;
} sigrun;

static void sig_begin(sigrun *run, const sigopts *o, const char *what)
{
    if (o->out == NULL) die_usage("no output file: give -o OUT.h5");
    if (o->level && !gzip_chosen(o->compression, o->profile)) die_usage("--level applies to gzip compression only");
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) die_usage("out of memory");
    run->w = w;
    run->ls = (logstate){ 0, 10, o->quiet };
    h5ml_set_log(w, on_log, &run->ls);
    if (o->profile) h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, o->profile);
    if (o->compression) h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, o->compression);
    if (o->level) h5ml_sigwriter_set(w, H5ML_SIG_LEVEL, o->level);
    if (o->no_shuffle) h5ml_sigwriter_set(w, H5ML_SIG_SHUFFLE, -1);
    if (o->threads) h5ml_sigwriter_set(w, H5ML_SIG_THREADS, o->threads);
    if (o->allow_nonfinite) h5ml_sigwriter_set(w, H5ML_SIG_ALLOW_NONFINITE, 1);
    run->p = progress_start(what, o->quiet);
    run->p.unit = "signals";
    run->t0 = now();
    catch_stop_signals();
}

/* Closes the writer after the operation returned `rc`; on failure prints the library's
 * message and returns the exit status (the library has left no output file: a signal cache
 * is written whole or not at all, an interrupted one included), else -1. */
static int sig_end(sigrun *run, const char *out, int rc)
{
    progress_clear(&run->p);
    if (rc == H5ML_ERR_INTERRUPTED) {
        fprintf(stderr, "%s: interrupted by %s: nothing written to %s (a signal cache is written whole or not at all; an "
                "existing file is left as it was); run the command again\n", prog, signal_name(stop_signal), out);
    } else if (rc != H5ML_OK) {
        fail(run->w);
        h5ml_sigwriter_get_stats(run->w, &run->st);
        if (run->st.failed)
            fprintf(stderr, "%s: nothing written to %s (an existing file is left as it was); fix the cause and run the command "
                    "again\n", prog, out);
    }
    if (rc != H5ML_OK) {
        h5ml_set_log(run->w, NULL, NULL); /* the error is the one line printed */
        h5ml_sigwriter_rollback(run->w);
        h5ml_sigwriter_close(run->w);
        return rc == H5ML_ERR_INTERRUPTED ? exit_interrupted() : EXIT_USAGE;
    }
    h5ml_sigwriter_get_stats(run->w, &run->st);
    h5ml_sigwriter_close(run->w);
    return -1;
}

/* The end of a summary line: ": train 770, val 165, test 165; 451.20 MB in 3.21 s". */
static void print_written(const char *out, const sigrun *run, bool split)
{
    struct stat sb;
    char size[32] = "?";
    if (stat(out, &sb) == 0) human_bytes((double)sb.st_size, size, sizeof size);
    if (split)
        printf(": train %" PRId64 ", val %" PRId64 ", test %" PRId64, run->st.count[H5ML_TRAIN], run->st.count[H5ML_VAL],
               run->st.count[H5ML_TEST]);
    printf("; %s in %.2f s\n", size, now() - run->t0);
}

static const char generate_help[] =
    "usage: h5ml signals generate -o OUT.h5 [options]\n"
    "\n"
    "Simulate vibration signals of a rotating machine at a nominal speed (+-10 % per signal)\n"
    "for the 11 fault classes (labels 0..10: sain, desalignement, desequilibre, jeu,\n"
    "lubrification, cavitation, usure, oilwhirl, mixed_misalign_imbalance, mixed_wear_lube,\n"
    "mixed_cavit_jeu), with noise, and write them split (stratified) into train, val and\n"
    "test, with per-signal metadata. Every signal is a function of (seed, class, index).\n"
    "\n"
    "options:\n"
    "  -o, --output OUT.h5     output file (required)\n"
    "      --per-class N       signals per class (default 100)\n"
    "      --length L          samples per signal (default 102400)\n"
    "      --rate HZ           sampling rate (default 20480)\n"
    "      --speed HZ          nominal shaft speed (default 60)\n"
    "      --seed S            generator and split seed (default 42)\n"
    "      --ratios A,B,C      train, val, test fractions summing to 1 (default 0.7,0.15,0.15)\n"
    SIG_WRITER_HELP;

static int cmd_signals_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        SIG_WRITER_OPTIONS,
        { "per-class", required_argument, 0, 'P' }, { "length", required_argument, 0, 'n' },
        { "rate", required_argument, 0, 'r' },      { "speed", required_argument, 0, 's' },
        { "seed", required_argument, 0, 'e' },      { "ratios", required_argument, 0, 'R' },
        { 0, 0, 0, 0 },
    };
    sigopts so = { 0 };
    h5ml_siggen_options g = { 100, 102400, 20480, 60, 42, { 0.7, 0.15, 0.15 } };
    int c;
    while ((c = getopt_long(argc, argv, ":o:c:p:qh", opts, NULL)) != -1) {
        if (sig_writer_option(c, &so)) continue;
        switch (c) {
        case 'P': g.per_class = parse_positive(optarg, "--per-class"); break;
        case 'n': g.length = parse_positive(optarg, "--length"); break;
        case 'r': g.rate = parse_rate(optarg, "--rate"); break;
        case 's': g.speed_hz = parse_rate(optarg, "--speed"); break;
        case 'e': g.seed = parse_seed(optarg); break;
        case 'R': parse_ratios(optarg, "--ratios", g.ratios); break;
        case 'h': return fputs(generate_help, stdout), EXIT_OK;
        default: bad_option("signals generate", c, argv);
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s' (see h5ml signals generate --help)", argv[optind]);
    sigrun run;
    sig_begin(&run, &so, "generating");
    int ec = sig_end(&run, so.out, h5ml_signals_generate(run.w, so.out, &g, on_progress, &run.p));
    if (ec >= 0) return ec;
    if (!so.quiet) {
        printf("generated %" PRId64 " signals (%" PRId64 " classes x %" PRId64 ", %" PRId64 " samples at %g Hz) into %s",
               run.st.total, run.st.total / g.per_class, g.per_class, run.st.length, g.rate, so.out);
        print_written(so.out, &run, true);
    }
    return EXIT_OK;
}

static const char import_help[] =
    "usage: h5ml signals import DIR -o OUT.h5 [options]\n"
    "\n"
    "Import a directory of MATLAB files (.mat v4, v5 or v7.3), one sub-directory per class:\n"
    "the fault names of 'h5ml signals generate --help' get their labels, other names are\n"
    "numbered in sorted order (and stored as class_names). Each file gives one signal.\n"
    "Unequal lengths are an error naming both files unless --truncate or --pad.\n"
    "\n"
    "options:\n"
    "  -o, --output OUT.h5     output file (required)\n"
    "      --var NAME          the variable holding the signal (default: the largest real\n"
    "                          numeric vector of each file)\n"
    "      --split A,B,C       train, val, test fractions summing to 1 (default 0.7,0.15,0.15)\n"
    "      --ratios A,B,C      the same as --split\n"
    "      --seed S            split seed (default 42)\n"
    "      --no-stratify       split without keeping the class proportions\n"
    "      --flat              write one flat cache instead of train, val and test\n"
    "      --truncate          cut every signal to the shortest\n"
    "      --pad               pad every signal with zeros to the longest\n"
    SIG_WRITER_HELP;

static int cmd_signals_import(int argc, char **argv)
{
    static const struct option opts[] = {
        SIG_WRITER_OPTIONS,
        { "var", required_argument, 0, 'v' },    { "split", required_argument, 0, 'R' },
        { "ratios", required_argument, 0, 'R' }, { "seed", required_argument, 0, 'e' },
        { "no-stratify", no_argument, 0, 'N' },  { "flat", no_argument, 0, 'F' },
        { "truncate", no_argument, 0, 't' },     { "pad", no_argument, 0, 1003 },
        { 0, 0, 0, 0 },
    };
    sigopts so = { 0 };
    h5ml_import_options io = { .seed = 42 };
    const char *split_opt = NULL;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, ":o:c:p:qh", opts, &li)) != -1) {
        if (sig_writer_option(c, &so)) continue;
        switch (c) {
        case 'v': io.var = optarg; break;
        case 'R':
            split_opt = strcmp(opts[li].name, "ratios") == 0 ? "--ratios" : "--split";
            parse_ratios(optarg, split_opt, io.ratios);
            break;
        case 'e': io.seed = parse_seed(optarg); break;
        case 'N': io.no_stratify = 1; break;
        case 'F': io.flat = 1; break;
        case 't': io.truncate = 1; break;
        case 1003: io.pad = 1; break;
        case 'h': return fputs(import_help, stdout), EXIT_OK;
        default: bad_option("signals import", c, argv);
        }
    }
    if (optind == argc) die_usage("no input directory (h5ml signals import DIR -o OUT.h5)");
    const char *dir = argv[optind++];
    if (optind < argc) die_usage("unexpected argument '%s' (see h5ml signals import --help)", argv[optind]);
    if (io.truncate && io.pad) die_usage("--truncate and --pad exclude each other: choose one");
    if (io.flat && (split_opt || io.no_stratify))
        die_usage("--flat writes no splits: %s does not apply", split_opt ? split_opt : "--no-stratify");
    sigrun run;
    sig_begin(&run, &so, "importing");
    int ec = sig_end(&run, so.out, h5ml_signals_import(run.w, dir, so.out, &io, on_progress, &run.p));
    if (ec >= 0) return ec;
    if (!so.quiet) {
        printf("imported %" PRId64 " signals of %" PRId64 " samples from %s into %s%s", run.st.total, run.st.length, dir,
               so.out, io.flat ? " (flat)" : "");
        print_written(so.out, &run, !io.flat);
    }
    return EXIT_OK;
}

static const char split_help[] =
    "usage: h5ml signals split IN.h5 -o OUT.h5 [options]\n"
    "\n"
    "Split the flat cache IN into train, val and test groups of a new file OUT, stratified by\n"
    "label unless --no-stratify, reproducible from the seed on every machine. Each split\n"
    "keeps its signals' metadata and their indices in IN.\n"
    "\n"
    "options:\n"
    "  -o, --output OUT.h5     output file (required)\n"
    "      --ratios A,B,C      train, val, test fractions summing to 1 (default 0.7,0.15,0.15)\n"
    "      --seed S            split seed (default 42)\n"
    "      --no-stratify       split without keeping the class proportions\n"
    SIG_WRITER_HELP;

static int cmd_signals_split(int argc, char **argv)
{
    static const struct option opts[] = {
        SIG_WRITER_OPTIONS,
        { "ratios", required_argument, 0, 'R' },
        { "seed", required_argument, 0, 'e' },
        { "no-stratify", no_argument, 0, 'N' },
        { 0, 0, 0, 0 },
    };
    sigopts so = { 0 };
    double ratios[3] = { 0.7, 0.15, 0.15 };
    uint64_t seed = 42;
    bool stratify = true;
    int c;
    while ((c = getopt_long(argc, argv, ":o:c:p:qh", opts, NULL)) != -1) {
        if (sig_writer_option(c, &so)) continue;
        switch (c) {
        case 'R': parse_ratios(optarg, "--ratios", ratios); break;
        case 'e': seed = parse_seed(optarg); break;
        case 'N': stratify = false; break;
        case 'h': return fputs(split_help, stdout), EXIT_OK;
        default: bad_option("signals split", c, argv);
        }
    }
    if (optind == argc) die_usage("no input file (h5ml signals split IN.h5 -o OUT.h5)");
    const char *in = argv[optind++];
    if (optind < argc) die_usage("unexpected argument '%s' (see h5ml signals split --help)", argv[optind]);
    sigrun run;
    sig_begin(&run, &so, "splitting");
    int ec = sig_end(&run, so.out, h5ml_signals_split(run.w, in, so.out, ratios, stratify, seed, on_progress, &run.p));
    if (ec >= 0) return ec;
    if (!so.quiet) {
        printf("split %" PRId64 " signals of %s into %s (%s, seed %" PRIu64 ")", run.st.total, in, so.out,
               stratify ? "stratified" : "not stratified", seed);
        print_written(so.out, &run, true);
    }
    return EXIT_OK;
}

static int cmd_signals(int argc, char **argv)
{
    if (argc < 2) {
        fputs(signals_help, stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0)
        return fputs(signals_help, stdout), EXIT_OK;
    argv++;
    argc--;
    if (strcmp(sub, "generate") == 0) return cmd_signals_generate(argc, argv);
    if (strcmp(sub, "import") == 0) return cmd_signals_import(argc, argv);
    if (strcmp(sub, "split") == 0) return cmd_signals_split(argc, argv);
    die_usage("signals: unknown subcommand '%s' (choose generate, import or split; see h5ml signals --help)", sub);
}

/* ---- main ----------------------------------------------------------------------------------- */

static const char main_help[] =
    "usage: h5ml COMMAND [options]\n"
    "\n"
    "Machine-learning datasets in plain HDF5 (h5py, h5dump and HDFView read the files).\n"
    "\n"
    "commands:\n"
    "  convert IN.xyz -o OUT.h5    extended XYZ -> HDF5 (create or --append)\n"
    "  inspect FILE.h5             summary: counts, elements or classes, labels, storage\n"
    "  verify FILE.h5              every integrity check; exit 0 only when clean\n"
    "  diff A.h5 B.h5              exact comparison of every dataset\n"
    "  export FILE.h5 -o OUT.xyz   HDF5 -> extended XYZ (--range A:B)\n"
    "  merge A.h5 B.h5 -o C.h5     concatenate datasets\n"
    "  repair FILE.h5              cut unequal datasets back to their consistent prefix\n"
    "  signals generate|import|split\n"
    "                              signal caches: simulate, import MATLAB files, split\n"
    "  version                     print the version\n"
    "\n"
    "inspect, verify and diff take atomistic datasets and signal caches alike.\n"
    "Run 'h5ml COMMAND --help' for the options of a command.\n"
    "Exit codes: 0 ok, 1 a check or comparison failed, 2 usage or input error, 128+N when\n"
    "SIGTERM or SIGINT (N) stopped a writing command, which first finalized what it wrote.\n";

static const char version_help[] =
    "usage: h5ml version\n"
    "\n"
    "Print the version of h5ml (the library's; files record it in /metadata h5ml_version).\n";

int main(int argc, char **argv)
{
    opterr = 0;
    /* HDF5's exit handler only closes what h5ml has closed already, and after errors on a
     * damaged file (a failed checksum, say) it prints "HDF5: infinite loop closing library"
     * about objects HDF5 itself leaked: the program owns the process, so it goes without. */
    H5dont_atexit();
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(cmd, "help") == 0) {
            static char help_flag[] = "--help";
            argv[1] = argv[2];
            argv[2] = help_flag;
            cmd = argv[1];
            argv++;
            argc = 2;
            goto dispatch;
        }
        fputs(main_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) return fputs(version_help, stdout), EXIT_OK;
        if (argc > 2) die_usage("version takes no arguments (got '%s')", argv[2]);
        printf("h5ml %s\n", h5ml_version());
        return EXIT_OK;
    }
    argv++;
    argc--;
dispatch:
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc, argv);
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc, argv);
    if (strcmp(cmd, "verify") == 0) return cmd_verify(argc, argv);
    if (strcmp(cmd, "diff") == 0) return cmd_diff(argc, argv);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc, argv);
    if (strcmp(cmd, "merge") == 0) return cmd_merge(argc, argv);
    if (strcmp(cmd, "repair") == 0) return cmd_repair(argc, argv);
    if (strcmp(cmd, "signals") == 0) return cmd_signals(argc, argv);
    die_usage("unknown command '%s' (commands: convert, inspect, verify, diff, export, merge, repair, signals, version; "
              "see h5ml --help)", cmd);
}
