/* Signal caches: writer and reader round trips (flat, split, every compression), the LRU and
 * prefetch, batch reads in any order, errors, rollback, append, fork, and the whole-file
 * operations generate, split, verify, summarize and diff. */
#include "check.h"
#include "h5ml.h"

#include <hdf5.h>
#include <sys/wait.h>

/* Signal i: a function of (i, length, tag), so any read can be checked. */
static float value(int64_t i, int64_t k, int tag) { return (float)(sin(0.01 * (double)k * (double)(i % 7 + 1)) * (double)(i + 1) + tag); }

static void fill(float *out, int64_t first, int64_t count, int64_t len, int tag)
{
    for (int64_t i = 0; i < count; i++)
        for (int64_t k = 0; k < len; k++) out[i * len + k] = value(first + i, k, tag);
}

static bool signal_ok(const float *s, int64_t i, int64_t len, int tag)
{
    for (int64_t k = 0; k < len; k++)
        if (s[k] != value(i, k, tag)) return false;
    return true;
}

static int64_t label_of(int64_t i) { return (i * 7) % 5; }

/* A flat cache of n signals written in pieces of `piece`, with metadata. */
static void write_flat(const char *path, int64_t n, int64_t len, int compression, int64_t piece)
{
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, compression) == H5ML_OK);
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, 3) == H5ML_OK); /* several signals per chunk */
    CHECK_MSG(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, len, "unit") == H5ML_OK, "%s", h5ml_errmsg(w));
    float *buf = malloc(sizeof *buf * (size_t)(piece * len));
    int64_t labels[64];
    char metas[64][64];
    const char *meta[64];
    for (int64_t at = 0; at < n; at += piece) {
        int64_t k = n - at < piece ? n - at : piece;
        fill(buf, at, k, len, 0);
        for (int64_t i = 0; i < k; i++) {
            labels[i] = label_of(at + i);
            snprintf(metas[i], sizeof metas[i], "{\"i\":%lld}", (long long)(at + i));
            meta[i] = metas[i];
        }
        CHECK_MSG(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, k, buf, labels, meta, NULL) == H5ML_OK, "%s", h5ml_errmsg(w));
    }
    CHECK(access(path, F_OK) != 0 || compression < 0); /* nothing at the path before finalize */
    CHECK_MSG(h5ml_sigwriter_close(w) == H5ML_OK, "close");
    free(buf);
}

static void test_flat_round_trip(int compression, unsigned seed)
{
    const char *path = tmpname("flat");
    unlink(path);
    int64_t n = 40, len = 257;
    write_flat(path, n, len, compression, 7);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK_MSG(h5ml_sigreader_open(r, path, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    CHECK_EQ_I(h5ml_sigreader_count(r), n);
    CHECK_EQ_I(h5ml_sigreader_length(r), len);
    float *s = malloc(sizeof *s * (size_t)(n * len));
    int64_t lab = -1, labels[64];
    for (int64_t i = 0; i < n; i++) {
        CHECK(h5ml_sigreader_get(r, i, s, &lab) == H5ML_OK);
        CHECK_MSG(signal_ok(s, i, len, 0) && lab == label_of(i), "signal %lld (compression %d)", (long long)i, compression);
    }
    /* a batch in random order with repeats */
    int64_t idx[64];
    rng_seed(seed);
    for (int k = 0; k < 30; k++) idx[k] = rng_int(0, n - 1);
    CHECK(h5ml_sigreader_read(r, idx, 30, s, labels) == H5ML_OK);
    for (int k = 0; k < 30; k++) CHECK_MSG(signal_ok(s + k * len, idx[k], len, 0) && labels[k] == label_of(idx[k]), "batch %d", k);
    CHECK(h5ml_sigreader_read_range(r, 5, 20, s, labels) == H5ML_OK);
    for (int k = 0; k < 20; k++) CHECK(signal_ok(s + k * len, 5 + k, len, 0) && labels[k] == label_of(5 + k));
    char *m = NULL;
    CHECK(h5ml_sigreader_metadata(r, 13, &m) == H5ML_OK && m && strcmp(m, "{\"i\":13}") == 0);
    h5ml_free(m);
    CHECK_EQ_I(h5ml_sigreader_get(r, n, s, NULL), H5ML_ERR_RANGE);
    CHECK_STR(h5ml_errmsg(r), "Index 40 out of range [0, 40)");
    CHECK_EQ_I(h5ml_sigreader_open(r, path, "train"), H5ML_ERR_NOTFOUND);
    CHECK_STR(h5ml_errmsg(r), "Split 'train' not found. Available: ['labels', 'metadata', 'signals']");
    char *attrs = NULL;
    CHECK(h5ml_sigreader_open(r, path, "") == H5ML_OK && h5ml_sigreader_attrs(r, &attrs) == H5ML_OK);
    CHECK_CONTAINS(attrs, "\"cache_name\":\"unit\"");
    CHECK_CONTAINS(attrs, "\"num_signals\":40");
    CHECK_CONTAINS(attrs, "\"signal_length\":257");
    CHECK_CONTAINS(attrs, compression == H5ML_COMPRESS_LZF ? "\"compression\":\"lzf\"" : compression == H5ML_COMPRESS_NONE ? "\"compression\":\"none\"" : "\"compression\":\"gzip\"");
    h5ml_free(attrs);
    h5ml_sigreader_close(r);
    free(s);
    h5ml_sigreader *v = h5ml_sigreader_new();
    CHECK_MSG(h5ml_signals_verify(v, path, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(v));
    h5ml_sigreader_close(v);
    unlink(path);
}

static void test_cache_and_prefetch(void)
{
    const char *path = tmpname("lru");
    unlink(path);
    int64_t n = 30, len = 64;
    write_flat(path, n, len, H5ML_COMPRESS_GZIP, 30);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK(h5ml_sigreader_set(r, H5ML_SIGR_CACHE, 3) == H5ML_OK);
    CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK);
    float s[64];
    h5ml_sigreader_stats st;
    /* a true LRU: 0 1 2, touch 0, add 3 (evicts 1, the least recently used) */
    int64_t seq[] = { 0, 1, 2, 0, 3, 0, 2, 1 };
    bool hit_expected[] = { false, false, false, true, false, true, true, false };
    for (size_t k = 0; k < sizeof seq / sizeof *seq; k++) {
        h5ml_sigreader_get_stats(r, &st);
        int64_t hits = st.hits;
        CHECK(h5ml_sigreader_get(r, seq[k], s, NULL) == H5ML_OK && signal_ok(s, seq[k], len, 0));
        h5ml_sigreader_get_stats(r, &st);
        CHECK_MSG((st.hits > hits) == hit_expected[k], "LRU step %zu (signal %lld)", k, (long long)seq[k]);
    }
    /* prefetch: blocks of 8 consecutive signals */
    CHECK(h5ml_sigreader_set(r, H5ML_SIGR_CACHE, 0) == H5ML_OK);
    CHECK(h5ml_sigreader_set(r, H5ML_SIGR_PREFETCH, 8) == H5ML_OK);
    h5ml_sigreader_get_stats(r, &st);
    int64_t misses = st.misses;
    for (int64_t i = 0; i < n; i++) CHECK(h5ml_sigreader_get(r, i, s, NULL) == H5ML_OK && signal_ok(s, i, len, 0));
    h5ml_sigreader_get_stats(r, &st);
    CHECK_EQ_I(st.misses - misses, 4); /* blocks 0-7, 8-15, 16-23, 24-29 */
    h5ml_sigreader_close(r);
    unlink(path);
}

static void test_errors_and_rollback(void)
{
    const char *path = tmpname("bad");
    unlink(path);
    int64_t len = 16;
    float s[32];
    int64_t labels[2] = { 0, 1 };
    fill(s, 0, 2, len, 0);
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_NUM_CLASSES, 2) == H5ML_OK);
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, len, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 2, s, labels, NULL, NULL) == H5ML_OK);
    s[16 + 5] = NAN;
    CHECK_EQ_I(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 2, s, labels, NULL, NULL), H5ML_ERR_VALUE);
    CHECK_STR(h5ml_errmsg(w), "signal 1 of the batch: sample 5 is NaN");
    s[16 + 5] = 1;
    labels[1] = 2;
    CHECK_EQ_I(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 2, s, labels, NULL, NULL), H5ML_ERR_VALUE);
    CHECK_CONTAINS(h5ml_errmsg(w), "outside the 2 classes [0, 2)");
    const char *badmeta[2] = { "{}", "[1,2]" };
    labels[1] = 1;
    CHECK_EQ_I(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 2, s, labels, badmeta, NULL), H5ML_ERR_VALUE);
    CHECK_EQ_I(h5ml_sigwriter_add(w, H5ML_TRAIN + 1, 2, s, labels, NULL, NULL), H5ML_ERR_ARG);
    CHECK(h5ml_sigwriter_rollback(w) == H5ML_OK);
    h5ml_sigwriter_close(w);
    CHECK(access(path, F_OK) != 0);
    /* a file already at the path survives a failed replacement */
    write_flat(path, 5, len, H5ML_COMPRESS_GZIP, 5);
    w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, 99, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_rollback(w) == H5ML_OK);
    h5ml_sigwriter_close(w);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK && h5ml_sigreader_count(r) == 5 && h5ml_sigreader_length(r) == len);
    h5ml_sigreader_close(r); /* HDF5 locks a file a writer opens against open readers */
    r = h5ml_sigreader_new();
    /* append, then an append rolled back */
    w = h5ml_sigwriter_new();
    CHECK_MSG(h5ml_sigwriter_append(w, path) == H5ML_OK, "%s", h5ml_errmsg(w));
    float more[16 * 3];
    int64_t ml[3] = { 4, 4, 4 };
    fill(more, 5, 3, len, 0);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 3, more, ml, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK && h5ml_sigreader_count(r) == 8);
    float one[16];
    CHECK(h5ml_sigreader_get(r, 6, one, NULL) == H5ML_OK && signal_ok(one, 6, len, 0));
    h5ml_sigreader_close(r);
    r = h5ml_sigreader_new();
    w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_append(w, path) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 3, more, ml, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_rollback(w) == H5ML_OK);
    h5ml_sigwriter_close(w);
    CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK && h5ml_sigreader_count(r) == 8);
    h5ml_sigreader_close(r);
    unlink(path);
}

/* A split file of 3 parts with known indices; one child process reads it through a handle
 * opened before the fork. */
static void test_split_layout_and_fork(void)
{
    const char *path = tmpname("split");
    unlink(path);
    int64_t len = 32;
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_SPLIT, len, NULL) == H5ML_OK);
    int64_t counts[3] = { 10, 4, 3 }, first = 0;
    for (int s = 0; s < 3; s++) {
        float buf[32 * 10];
        int64_t labels[10], idx[10];
        fill(buf, first, counts[s], len, s);
        for (int64_t i = 0; i < counts[s]; i++) {
            labels[i] = label_of(first + i);
            idx[i] = 100 + first + i;
        }
        CHECK(h5ml_sigwriter_add(w, s, counts[s], buf, labels, NULL, idx) == H5ML_OK);
        first += counts[s];
    }
    double ratios[3] = { 0.6, 0.2, 0.2 };
    CHECK(h5ml_sigwriter_attr_doubles(w, "split_ratios", ratios, 3) == H5ML_OK);
    CHECK_EQ_I(h5ml_sigwriter_attr_int(w, "num_signals", 3), H5ML_ERR_ARG);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK_EQ_I(h5ml_sigreader_open(r, path, NULL), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_sigreader_open(r, path, "dev"), H5ML_ERR_NOTFOUND);
    CHECK_STR(h5ml_errmsg(r), "Split 'dev' not found. Available: ['test', 'train', 'val']");
    CHECK(h5ml_sigreader_open(r, path, "val") == H5ML_OK);
    int64_t sc[3];
    CHECK_EQ_I(h5ml_sigreader_layout(r, sc), H5ML_SIG_SPLIT);
    CHECK(sc[0] == 10 && sc[1] == 4 && sc[2] == 3);
    int64_t idx[4];
    CHECK(h5ml_sigreader_indices(r, idx) == H5ML_OK && idx[0] == 110 && idx[3] == 113);
    float s[32];
    CHECK(h5ml_sigreader_get(r, 2, s, NULL) == H5ML_OK && signal_ok(s, 12, len, 1));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* the child reads through the parent's handle: it must reopen, not share */
        float t[32];
        int ok = h5ml_sigreader_get(r, 3, t, NULL) == H5ML_OK && signal_ok(t, 13, len, 1);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child read through a forked handle failed (status %d)", st);
    CHECK(h5ml_sigreader_get(r, 1, s, NULL) == H5ML_OK && signal_ok(s, 11, len, 1)); /* the parent's handle still works */
    h5ml_sigreader_close(r);
    unlink(path);
}

static void test_generate_split_verify(void)
{
    const char *gen = tmpname("gen"), *gen2 = tmpname("gen2"), *flat = tmpname("flatsrc"), *split = tmpname("splitout");
    h5ml_siggen_options o = { .per_class = 6, .length = 512, .rate = 4096, .seed = 7 };
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK_MSG(h5ml_signals_generate(w, gen, &o, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(w));
    h5ml_sigwriter_close(w);
    w = h5ml_sigwriter_new();
    h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, H5ML_COMPRESS_LZF);
    CHECK(h5ml_signals_generate(w, gen2, &o, NULL, NULL) == H5ML_OK);
    h5ml_sigwriter_close(w);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK_MSG(h5ml_diff_files(r, gen, gen2) == H5ML_OK, "same seed, other compression: %s", h5ml_errmsg(r));
    CHECK_MSG(h5ml_signals_verify(r, gen, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    h5ml_sigsummary sum;
    CHECK(h5ml_signals_summarize(r, gen, &sum, NULL, NULL) == H5ML_OK);
    CHECK_EQ_I(sum.total, 66);
    CHECK_EQ_I(sum.count[0] + sum.count[1] + sum.count[2], 66);
    CHECK_EQ_I(sum.num_classes, 11);
    for (int c = 0; c < 11; c++)
        CHECK_MSG(sum.class_counts[0][c] >= 1 && sum.class_counts[1][c] >= 1 && sum.class_counts[2][c] >= 1, "class %d in every split", c);
    CHECK(sum.has_metadata && sum.nonfinite == 0 && sum.max > sum.min && sum.std > 0);
    /* a flat cache of the generated signals, split again: each split equals the source rows */
    int64_t n = 66, len = 512;
    float *all = malloc(sizeof *all * (size_t)(n * len));
    int64_t *labels = malloc(sizeof *labels * (size_t)n);
    CHECK(h5ml_sigreader_open(r, gen, "train") == H5ML_OK);
    int64_t ntrain = h5ml_sigreader_count(r);
    CHECK(h5ml_sigreader_read_range(r, 0, ntrain, all, labels) == H5ML_OK);
    w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_create(w, flat, H5ML_SIG_FLAT, len, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, ntrain, all, labels, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    double ratios[3] = { 0.5, 0.25, 0.25 };
    w = h5ml_sigwriter_new();
    CHECK_MSG(h5ml_signals_split(w, flat, split, ratios, 1, 3, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(w));
    h5ml_sigwriter_close(w);
    CHECK_MSG(h5ml_signals_verify(r, split, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    int64_t total = 0;
    float *one = malloc(sizeof *one * (size_t)len);
    for (int s = 0; s < 3; s++) {
        const char *names[3] = { "train", "val", "test" };
        CHECK(h5ml_sigreader_open(r, split, names[s]) == H5ML_OK);
        int64_t k = h5ml_sigreader_count(r), *idx = malloc(sizeof *idx * (size_t)(k + 1)), lab;
        CHECK(h5ml_sigreader_indices(r, idx) == H5ML_OK);
        for (int64_t i = 0; i < k; i++) {
            CHECK(h5ml_sigreader_get(r, i, one, &lab) == H5ML_OK);
            CHECK_MSG(memcmp(one, all + idx[i] * len, sizeof *one * (size_t)len) == 0 && lab == labels[idx[i]], "%s[%lld]", names[s], (long long)i);
        }
        total += k;
        free(idx);
    }
    CHECK_EQ_I(total, ntrain);
    /* bad ratios: nothing made */
    double bad[3] = { 0.7, 0.2, 0.2 };
    unlink(split);
    w = h5ml_sigwriter_new();
    CHECK_EQ_I(h5ml_signals_split(w, flat, split, bad, 1, 3, NULL, NULL), H5ML_ERR_VALUE);
    CHECK_CONTAINS(h5ml_errmsg(w), "ratios");
    h5ml_sigwriter_close(w);
    CHECK(access(split, F_OK) != 0);
    h5ml_sigreader_close(r);
    free(all);
    free(labels);
    free(one);
    unlink(gen);
    unlink(gen2);
    unlink(flat);
}

/* The first dimension of the chunks of `name` in `path`. */
static int64_t chunk_rows_of(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT), dcpl = H5Dget_create_plist(d);
    hsize_t chunk[2] = { 0, 0 };
    H5Pget_chunk(dcpl, 2, chunk);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    return (int64_t)chunk[0];
}

/* Expected counts size the chunks of a small cache; more than expected still round-trips;
 * generate and split size their splits' chunks from the assignment. */
static void test_expected_counts(void)
{
    const char *path = tmpname("expect"), *gen = tmpname("expect_gen");
    int64_t len = 64, n = 5;
    float buf[5 * 64];
    int64_t labels[5] = { 0, 1, 2, 3, 4 };
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, H5ML_COMPRESS_NONE) == H5ML_OK);
    CHECK(h5ml_sigwriter_expect(w, H5ML_NO_SPLIT, 3) == H5ML_OK);
    CHECK_EQ_I(h5ml_sigwriter_expect(w, 7, 3), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_sigwriter_expect(w, H5ML_TRAIN, -1), H5ML_ERR_ARG);
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, len, NULL) == H5ML_OK);
    CHECK_EQ_I(h5ml_sigwriter_expect(w, H5ML_NO_SPLIT, 3), H5ML_ERR_STATE);
    fill(buf, 0, n, len, 0);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, n, buf, labels, NULL, NULL) == H5ML_OK); /* 5 > 3 expected */
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    CHECK_EQ_I(chunk_rows_of(path, "signals"), 3);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK);
    CHECK_EQ_I(h5ml_sigreader_count(r), n);
    float one[64];
    int64_t lab;
    for (int64_t i = 0; i < n; i++) {
        CHECK(h5ml_sigreader_get(r, i, one, &lab) == H5ML_OK);
        CHECK_MSG(signal_ok(one, i, len, 0) && lab == labels[i], "signal %lld", (long long)i);
    }
    /* an uncompressed generated file: each split's chunk holds that split at most */
    h5ml_siggen_options o = { .per_class = 2, .length = 256, .rate = 4096, .seed = 3 };
    w = h5ml_sigwriter_new();
    h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, H5ML_COMPRESS_NONE);
    CHECK_MSG(h5ml_signals_generate(w, gen, &o, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(w));
    h5ml_sigwriter_close(w);
    const char *names[3] = { "train", "val", "test" }, *paths[3] = { "train/signals", "val/signals", "test/signals" };
    int64_t total = 0;
    for (int s = 0; s < 3; s++) {
        CHECK(h5ml_sigreader_open(r, gen, names[s]) == H5ML_OK);
        int64_t k = h5ml_sigreader_count(r);
        total += k;
        CHECK_MSG(chunk_rows_of(gen, paths[s]) == (k > 0 ? k : 1), "%s: chunk of %lld rows for %lld signals", names[s],
                  (long long)chunk_rows_of(gen, paths[s]), (long long)k);
    }
    CHECK_EQ_I(total, 22);
    CHECK_MSG(h5ml_signals_verify(r, gen, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    h5ml_sigreader_close(r);
    unlink(path);
    unlink(gen);
}

static void test_verify_finds_problems(void)
{
    const char *path = tmpname("broken");
    unlink(path);
    write_flat(path, 12, 20, H5ML_COMPRESS_NONE, 12);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "signals", H5P_DEFAULT), fs = H5Dget_space(d);
    hsize_t off[2] = { 4, 7 }, one[2] = { 1, 1 };
    float nan = NAN;
    hid_t ms = H5Screate_simple(2, one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, one, NULL);
    H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &nan);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    int64_t wrong = 99;
    hid_t a = H5Aopen(f, "num_signals", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &wrong);
    H5Aclose(a);
    H5Fclose(f);
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK_EQ_I(h5ml_signals_verify(r, path, NULL, NULL), H5ML_ERR_CHECK);
    CHECK_CONTAINS(h5ml_errmsg(r), "2 problem(s)");
    CHECK_CONTAINS(h5ml_errmsg(r), "/signals[4, 7] is NaN");
    h5ml_sigreader_close(r);
    unlink(path);
}

/* One reader handle reopened on splits of different chunk sizes (train: chunks of 2 signals,
 * val: 40, then train again): the decode buffers follow the file, for single and batch
 * reads, on one and on two threads. */
static void test_reopen_other_chunks(void)
{
    const char *path = "reopen_chunks.h5.tmp";
    enum { L = 64, NV = 40 };
    static float sig[NV * L], out[NV * L];
    int64_t lab[NV], got[NV], idx[NV];
    for (int i = 0; i < NV * L; i++) sig[i] = (float)i * 0.5f;
    for (int i = 0; i < NV; i++) lab[i] = i % 3, idx[i] = NV - 1 - i;
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, H5ML_PROFILE_BALANCED) == H5ML_OK);
    CHECK(h5ml_sigwriter_expect(w, H5ML_TRAIN, 2) == H5ML_OK);
    CHECK(h5ml_sigwriter_expect(w, H5ML_VAL, NV) == H5ML_OK);
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_SPLIT, L, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_TRAIN, 2, sig, lab, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_VAL, NV, sig, lab, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    for (int threads = 1; threads <= 2; threads++) {
        h5ml_sigreader *r = h5ml_sigreader_new();
        CHECK(h5ml_sigreader_set(r, H5ML_SIGR_THREADS, threads) == H5ML_OK);
        CHECK(h5ml_sigreader_set(r, H5ML_SIGR_CACHE, 0) == H5ML_OK);
        const char *order[3] = { "train", "val", "train" };
        for (int k = 0; k < 3; k++) {
            int64_t n = strcmp(order[k], "val") == 0 ? NV : 2;
            CHECK_MSG(h5ml_sigreader_open(r, path, order[k]) == H5ML_OK, "%s: %s", order[k], h5ml_errmsg(r));
            CHECK_EQ_I(h5ml_sigreader_count(r), n);
            for (int64_t i = 0; i < n; i++) {
                int64_t l = -1;
                CHECK(h5ml_sigreader_get(r, i, out, &l) == H5ML_OK);
                CHECK_MSG(memcmp(out, sig + i * L, sizeof *out * L) == 0, "%s[%lld], %d threads", order[k], (long long)i, threads);
                CHECK_EQ_I(l, lab[i]);
            }
            const int64_t *ix = n == NV ? idx : idx + NV - 2;
            CHECK(h5ml_sigreader_read(r, ix, n, out, got) == H5ML_OK);
            for (int64_t i = 0; i < n; i++) {
                CHECK_MSG(memcmp(out + i * L, sig + ix[i] * L, sizeof *out * L) == 0, "%s batch %lld", order[k], (long long)i);
                CHECK_EQ_I(got[i], lab[ix[i]]);
            }
        }
        h5ml_sigreader_close(r);
    }
    unlink(path);
}

int main(void)
{
    unsigned seed = test_seed();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_flat_round_trip(H5ML_COMPRESS_GZIP, seed);
    test_flat_round_trip(H5ML_COMPRESS_LZF, seed);
    test_flat_round_trip(H5ML_COMPRESS_NONE, seed);
    test_cache_and_prefetch();
    test_errors_and_rollback();
    test_split_layout_and_fork();
    test_generate_split_verify();
    test_expected_counts();
    test_reopen_other_chunks();
    test_verify_finds_problems();
    return check_report("test_signals");
}
