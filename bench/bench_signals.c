/* bench_signals: the h5ml side of bench/run.py's signal-cache cases (6, 7, 8).
 *
 *   bench_signals --version
 *   bench_signals write RAW.f32 N L OUT.h5 [options]      write a flat cache (case 6)
 *   bench_signals generate OUT.h5 [options]               write a generated split file (case 8 input)
 *   bench_signals read FILE.h5 --indices IDX.i64 [options] random-index reads (case 7)
 *   bench_signals stream FILE.h5 [options]                read a split in order (case 8)
 *   bench_signals rawread FILE --bytes N [options]        plain read() of the same bytes (case 8 peer)
 *
 * RAW.f32 holds N x L float32 samples (numpy's tofile(), native byte order); IDX.i64 int64
 * indices. Loading inputs is not timed; each command times its h5ml (or read()) calls from
 * making the handle to closing it, and prints one JSON object on stdout.
 *
 * write options:
 *   --labels LAB.i64      N int64 labels (default: all 0)
 *   --meta META.jsonl     N lines, one JSON object each: the per-signal metadata (default none)
 *   --compression none|gzip|lzf, --level L, --no-shuffle
 *   --threads T           compression threads (H5ML_SIG_THREADS; default: the library's)
 *   --chunk-rows R        signals per chunk (default: the library's)
 *   --allow-nonfinite     H5ML_SIG_ALLOW_NONFINITE: skip the writer's check that every
 *                         sample is finite (to measure what that check costs)
 * generate options: --per-class N (default 100), --length L, --compression C, --seed S (default 42)
 * read options:
 *   --split S             train, val or test (default: a flat file)
 *   --mode get|batch      h5ml_sigreader_get per index (default) or one h5ml_sigreader_read
 *   --threads T, --cache C   reader options (default: the library's; cache off)
 * stream options: --split S (default train), --block B signals per read_range (default 32),
 *   --threads T
 * rawread options: --offset O (default 0), --piece P bytes per read() (default 1 MiB)
 *
 * Every read command reports "sum": the sum of the samples' 32-bit patterns (as unsigned
 * integers, mod 2^64) of everything it read, which run.py compares with the peer's. The
 * stream and rawread commands reuse one buffer, so for them it covers the first word of
 * every 4 KiB only (enough to catch a wrong offset without costing time). */
#define _GNU_SOURCE
#define BENCH_NAME "bench_signals"
#include "bench_util.h"
#include "h5ml.h"

#include <fcntl.h>
#include <stdbool.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int parse_compression(const char *v)
{
    if (strcmp(v, "none") == 0) return H5ML_COMPRESS_NONE;
    if (strcmp(v, "gzip") == 0) return H5ML_COMPRESS_GZIP;
    if (strcmp(v, "lzf") == 0) return H5ML_COMPRESS_LZF;
    die("unknown compression %s%s", v, "");
    return 0;
}

/* Splits the text of a .jsonl file into n lines (in place); NULL entries for empty lines. */
static char **split_lines(char *text, long long len, long long n, const char *path)
{
    char **lines = calloc((size_t)(n > 0 ? n : 1), sizeof *lines);
    if (lines == NULL) die("out of memory%s%s", "", "");
    text[len] = 0;
    char *p = text;
    for (long long k = 0; k < n; k++) {
        if (p >= text + len) die("%s has fewer lines than signals%s", path, "");
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        lines[k] = *p ? p : NULL;
        p = e ? e + 1 : text + len;
    }
    return lines;
}

static uint64_t sum_words(const float *x, size_t n)
{
    const uint32_t *w = (const uint32_t *)x;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += w[i];
    return s;
}

static int cmd_write(int argc, char **argv)
{
    if (argc < 4) die("usage: bench_signals write RAW.f32 N L OUT.h5 [options]%s%s", "", "");
    const char *raw = argv[0], *out = argv[3];
    long long n = atoll(argv[1]), len = atoll(argv[2]);
    const char *labels_path = NULL, *meta_path = NULL;
    int comp = H5ML_COMPRESS_GZIP, level = 4, shuffle = 1, threads = 0, nonfinite = 0;
    long long chunk_rows = 0;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--labels") == 0 && v) labels_path = v, i++;
        else if (strcmp(a, "--meta") == 0 && v) meta_path = v, i++;
        else if (strcmp(a, "--level") == 0 && v) level = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0 && v) threads = atoi(v), i++;
        else if (strcmp(a, "--chunk-rows") == 0 && v) chunk_rows = atoll(v), i++;
        else if (strcmp(a, "--no-shuffle") == 0) shuffle = 0;
        else if (strcmp(a, "--allow-nonfinite") == 0) nonfinite = 1;
        else if (strcmp(a, "--compression") == 0 && v) comp = parse_compression(v), i++;
        else die("unknown option %s%s", a, "");
    }
    if (n < 1 || len < 1) die("N and L must be positive%s%s", "", "");

    float *signals = load_path(raw, n * len * 4, NULL);
    int64_t *labels = labels_path ? load_path(labels_path, n * 8, NULL) : calloc((size_t)n, sizeof *labels);
    if (labels == NULL) die("out of memory%s%s", "", "");
    char *meta_text = NULL, **meta = NULL;
    if (meta_path) {
        long long mlen;
        meta_text = load_path(meta_path, -1, &mlen);
        meta = split_lines(meta_text, mlen, n, meta_path);
    }

    double u0, s0, u1, s1;
    cpu(&u0, &s0);
    double t0 = now();
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) die("out of memory%s%s", "", "");
    h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, comp);
    if (comp == H5ML_COMPRESS_GZIP) h5ml_sigwriter_set(w, H5ML_SIG_LEVEL, level);
    h5ml_sigwriter_set(w, H5ML_SIG_SHUFFLE, shuffle ? 1 : -1);
    if (threads > 0 && h5ml_sigwriter_set(w, H5ML_SIG_THREADS, threads)) die("%s%s", h5ml_errmsg(w), "");
    if (chunk_rows > 0 && h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, chunk_rows)) die("%s%s", h5ml_errmsg(w), "");
    if (nonfinite) h5ml_sigwriter_set(w, H5ML_SIG_ALLOW_NONFINITE, 1);
    if (h5ml_sigwriter_create(w, out, H5ML_SIG_FLAT, len, NULL)) die("%s%s", h5ml_errmsg(w), "");
    double t_open = now();
    if (h5ml_sigwriter_add(w, H5ML_NO_SPLIT, n, signals, labels, (const char *const *)meta, NULL))
        die("%s%s", h5ml_errmsg(w), "");
    double t_added = now();
    int rc = h5ml_sigwriter_close(w);
    if (rc) die("close failed: %s%s", h5ml_strerror(rc), "");
    double t1 = now();
    cpu(&u1, &s1);
    printf("{\"seconds\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"open_s\": %.6f, \"add_s\": %.6f, "
           "\"close_s\": %.6f, \"signals\": %lld, \"length\": %lld, \"file_bytes\": %lld}\n",
           t1 - t0, u1 - u0, s1 - s0, t_open - t0, t_added - t_open, t1 - t_added, n, len, file_size(out));
    free(signals);
    free(labels);
    free(meta);
    free(meta_text);
    return 0;
}

static int cmd_generate(int argc, char **argv)
{
    if (argc < 1) die("usage: bench_signals generate OUT.h5 [options]%s%s", "", "");
    const char *out = argv[0];
    h5ml_siggen_options o = { .seed = 42 }; /* the command line's default seed */
    int comp = H5ML_COMPRESS_GZIP;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--per-class") == 0 && v) o.per_class = atoll(v), i++;
        else if (strcmp(a, "--length") == 0 && v) o.length = atoll(v), i++;
        else if (strcmp(a, "--seed") == 0 && v) o.seed = strtoull(v, NULL, 10), i++;
        else if (strcmp(a, "--compression") == 0 && v) comp = parse_compression(v), i++;
        else die("unknown option %s%s", a, "");
    }
    double t0 = now();
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) die("out of memory%s%s", "", "");
    h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, comp);
    if (h5ml_signals_generate(w, out, &o, NULL, NULL)) die("%s%s", h5ml_errmsg(w), "");
    h5ml_sigwriter_stats st;
    h5ml_sigwriter_get_stats(w, &st);
    int rc = h5ml_sigwriter_close(w);
    if (rc) die("close failed: %s%s", h5ml_strerror(rc), "");
    printf("{\"seconds\": %.6f, \"train\": %lld, \"val\": %lld, \"test\": %lld, \"length\": %lld, \"file_bytes\": %lld}\n",
           now() - t0, (long long)st.count[0], (long long)st.count[1], (long long)st.count[2], (long long)st.length,
           file_size(out));
    return 0;
}

static h5ml_sigreader *open_reader(const char *path, const char *split, int threads, long long cache)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    if (r == NULL) die("out of memory%s%s", "", "");
    if (threads > 0 && h5ml_sigreader_set(r, H5ML_SIGR_THREADS, threads)) die("%s%s", h5ml_errmsg(r), "");
    if (cache > 0 && h5ml_sigreader_set(r, H5ML_SIGR_CACHE, cache)) die("%s%s", h5ml_errmsg(r), "");
    if (h5ml_sigreader_open(r, path, split)) die("%s%s", h5ml_errmsg(r), "");
    return r;
}

static int cmd_read(int argc, char **argv)
{
    if (argc < 1) die("usage: bench_signals read FILE.h5 --indices IDX.i64 [options]%s%s", "", "");
    const char *path = argv[0], *split = NULL, *idx_path = NULL, *mode = "get";
    int threads = 0;
    long long cache = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--split") == 0 && v) split = v, i++;
        else if (strcmp(a, "--indices") == 0 && v) idx_path = v, i++;
        else if (strcmp(a, "--mode") == 0 && v) mode = v, i++;
        else if (strcmp(a, "--threads") == 0 && v) threads = atoi(v), i++;
        else if (strcmp(a, "--cache") == 0 && v) cache = atoll(v), i++;
        else die("unknown option %s%s", a, "");
    }
    if (idx_path == NULL) die("--indices is required%s%s", "", "");
    bool batch = strcmp(mode, "batch") == 0;
    if (!batch && strcmp(mode, "get") != 0) die("unknown mode %s%s", mode, "");
    long long nbytes;
    int64_t *idx = load_path(idx_path, -1, &nbytes);
    long long k = nbytes / 8;

    h5ml_sigreader *r = open_reader(path, split, threads, cache);
    long long len = h5ml_sigreader_length(r);
    h5ml_sigreader_close(r);
    /* The output is allocated and touched before timing, as a caller's reused batch buffer
     * would be: page faults of fresh memory are not what is measured. */
    float *out = malloc(sizeof *out * (size_t)(k * len) + 1);
    int64_t *labels = malloc(sizeof *labels * (size_t)(k ? k : 1));
    if (out == NULL || labels == NULL) die("out of memory%s%s", "", "");
    memset(out, 0, sizeof *out * (size_t)(k * len));

    double t0 = now();
    r = open_reader(path, split, threads, cache);
    double t_open = now();
    if (batch) {
        if (h5ml_sigreader_read(r, idx, k, out, labels)) die("%s%s", h5ml_errmsg(r), "");
    } else {
        for (long long j = 0; j < k; j++)
            if (h5ml_sigreader_get(r, idx[j], out + (size_t)j * (size_t)len, &labels[j])) die("%s%s", h5ml_errmsg(r), "");
    }
    double t_read = now() - t_open;
    h5ml_sigreader_stats st;
    h5ml_sigreader_get_stats(r, &st);
    h5ml_sigreader_close(r);
    double t1 = now();
    printf("{\"seconds\": %.6f, \"open_s\": %.6f, \"read_s\": %.6f, \"signals\": %lld, \"length\": %lld, "
           "\"chunks_read\": %lld, \"hits\": %lld, \"misses\": %lld, \"sum\": %llu}\n",
           t1 - t0, t_open - t0, t_read, k, len, (long long)st.chunks_read, (long long)st.hits,
           (long long)st.misses, (unsigned long long)sum_words(out, (size_t)(k * len)));
    free(out);
    free(labels);
    free(idx);
    return 0;
}

/* The first word of every 4 KiB of buf[0..n). */
static uint64_t sample_words(const unsigned char *buf, size_t n)
{
    uint64_t s = 0;
    for (size_t at = 0; at + 4 <= n; at += 4096) {
        uint32_t w;
        memcpy(&w, buf + at, 4);
        s += w;
    }
    return s;
}

static int cmd_stream(int argc, char **argv)
{
    if (argc < 1) die("usage: bench_signals stream FILE.h5 [--split S] [--block B]%s%s", "", "");
    const char *path = argv[0], *split = "train";
    long long block = 32;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--split") == 0 && v) split = v, i++;
        else if (strcmp(a, "--block") == 0 && v) block = atoll(v), i++;
        else if (strcmp(a, "--threads") == 0 && v) threads = atoi(v), i++;
        else die("unknown option %s%s", a, "");
    }
    if (block < 1) die("--block must be positive%s%s", "", "");
    h5ml_sigreader *r = open_reader(path, *split ? split : NULL, threads, 0);
    long long n = h5ml_sigreader_count(r), len = h5ml_sigreader_length(r);
    h5ml_sigreader_close(r);
    size_t bytes = sizeof(float) * (size_t)(block * len);
    float *buf = malloc(bytes);
    int64_t *labels = malloc(sizeof *labels * (size_t)block);
    if (buf == NULL || labels == NULL) die("out of memory%s%s", "", "");
    memset(buf, 0, bytes); /* a reused batch buffer: faulted in before timing */

    double u0, s0, u1, s1;
    cpu(&u0, &s0);
    double t0 = now();
    r = open_reader(path, *split ? split : NULL, threads, 0);
    uint64_t sum = 0;
    long long calls = 0;
    for (long long s = 0; s < n; s += block) {
        long long k = n - s < block ? n - s : block;
        if (h5ml_sigreader_read_range(r, s, k, buf, labels)) die("%s%s", h5ml_errmsg(r), "");
        sum += sample_words((const unsigned char *)buf, sizeof(float) * (size_t)(k * len));
        calls++;
    }
    h5ml_sigreader_close(r);
    double t1 = now();
    cpu(&u1, &s1);
    printf("{\"seconds\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"signals\": %lld, \"length\": %lld, "
           "\"bytes\": %lld, \"calls\": %lld, \"sum\": %llu}\n",
           t1 - t0, u1 - u0, s1 - s0, n, len, n * len * 4, calls, (unsigned long long)sum);
    free(buf);
    free(labels);
    return 0;
}

static int cmd_rawread(int argc, char **argv)
{
    if (argc < 1) die("usage: bench_signals rawread FILE --bytes N [--offset O] [--piece P]%s%s", "", "");
    const char *path = argv[0];
    long long want = -1, offset = 0, piece = 1 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--bytes") == 0 && v) want = atoll(v), i++;
        else if (strcmp(a, "--offset") == 0 && v) offset = atoll(v), i++;
        else if (strcmp(a, "--piece") == 0 && v) piece = atoll(v), i++;
        else die("unknown option %s%s", a, "");
    }
    if (want < 0 || piece < 1) die("--bytes N (>= 0) is required, --piece must be positive%s%s", "", "");
    unsigned char *buf = malloc((size_t)piece);
    if (buf == NULL) die("out of memory%s%s", "", "");
    memset(buf, 0, (size_t)piece);

    double u0, s0, u1, s1;
    cpu(&u0, &s0);
    double t0 = now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("cannot open %s%s", path, "");
    if (lseek(fd, (off_t)offset, SEEK_SET) != (off_t)offset) die("cannot seek in %s%s", path, "");
    long long done = 0, calls = 0;
    uint64_t sum = 0;
    while (done < want) {
        size_t k = (size_t)(want - done < piece ? want - done : piece);
        ssize_t got = read(fd, buf, k);
        if (got <= 0) die("%s: short read%s", path, "");
        sum += sample_words(buf, (size_t)got);
        done += got;
        calls++;
    }
    close(fd);
    double t1 = now();
    cpu(&u1, &s1);
    printf("{\"seconds\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"bytes\": %lld, \"calls\": %lld, \"sum\": %llu}\n",
           t1 - t0, u1 - u0, s1 - s0, done, calls, (unsigned long long)sum);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) return print_versions();
    if (argc >= 2 && strcmp(argv[1], "write") == 0) return cmd_write(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "generate") == 0) return cmd_generate(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "read") == 0) return cmd_read(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "stream") == 0) return cmd_stream(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "rawread") == 0) return cmd_rawread(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench_signals --version | write RAW.f32 N L OUT.h5 [options] | generate OUT.h5 [options]\n"
                    "       | read FILE.h5 --indices IDX.i64 [options] | stream FILE.h5 [options]\n"
                    "       | rawread FILE --bytes N [options]\n");
    return 2;
}
