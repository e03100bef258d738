/* Fuzz target: the signal-cache reader on mutated HDF5 files (flat and split layouts).
 *
 * The input is written to a file and opened with h5ml_sigreader_open (flat, or each of
 * train/val/test of a split file); then every read path runs: count, length and layout,
 * labels and indices, a range read of every signal, h5ml_sigreader_get of each signal,
 * h5ml_sigreader_read of a shuffled list with repeats (on two threads), the same through
 * the LRU cache and the prefetch block, per-signal metadata and the root attributes as JSON;
 * then h5ml_signals_verify, h5ml_signals_summarize and h5ml_diff_files of the file with
 * itself. Errors are fine; crashes, hangs and leaks (memory or HDF5 ids) are not, nor are
 * read paths that disagree with each other. */
#include "fuzz_util.h"

#include <jansson.h>

/* Bounds of this harness's own buffers (the library bounds its own). */
enum { MAX_SIGNALS = 1 << 16, MAX_SAMPLES = 1 << 22, MAX_GET = 128, MAX_IDX = 256 };

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) abort();
    return p;
}

static int same_floats(const float *a, const float *b, int64_t n) { return n == 0 || memcmp(a, b, sizeof *a * (size_t)n) == 0; }

/* get and read of the signals in `idx` agree with the range read `all` (labels too). The
 * samples are compared when h5ml decodes the chunks itself (`strict`): through HDF5 (files
 * whose chunks are not read directly), a corrupt chunk can come back different for different
 * selections (fuzz/known-hdf5/README.md), which is HDF5's doing. */
static void check_reads(h5ml_sigreader *r, const float *all, const int64_t *labels, int64_t n, int64_t len, uint64_t seed,
                        const char *how, bool strict)
{
    float *one = xcalloc((size_t)len, sizeof *one);
    for (int64_t i = 0; i < n && i < MAX_GET; i++) {
        int64_t lab = -1;
        int rc = h5ml_sigreader_get(r, (i * 7) % n, one, &lab); /* out of order, through the caches */
        if (rc != H5ML_OK) {
            fuzz_check_message(r, rc, "h5ml_sigreader_get");
            continue;
        }
        int64_t k = (i * 7) % n;
        FUZZ_CHECK(lab == labels[k], "%s: get(%lld): label %lld, labels() says %lld", how, (long long)k, (long long)lab,
                   (long long)labels[k]);
        FUZZ_CHECK(!strict || same_floats(one, all + k * len, len), "%s: get(%lld) differs from the range read", how, (long long)k);
    }
    free(one);
    int64_t m = n < MAX_IDX / 2 ? 2 * n : MAX_IDX;
    int64_t *idx = xcalloc((size_t)m, sizeof *idx), *lab = xcalloc((size_t)m, sizeof *lab);
    for (int64_t q = 0; q < m; q++) idx[q] = (int64_t)(fuzz_mix(&seed) % (uint64_t)n);
    float *out = xcalloc((size_t)(m * len), sizeof *out);
    int rc = h5ml_sigreader_read(r, idx, m, out, lab);
    if (rc == H5ML_OK) {
        for (int64_t q = 0; q < m; q++) {
            FUZZ_CHECK(lab[q] == labels[idx[q]], "%s: read: label of %lld differs", how, (long long)idx[q]);
            FUZZ_CHECK(!strict || same_floats(out + q * len, all + idx[q] * len, len),
                       "%s: read: signal %lld (entry %lld) differs from the range read",
                       how, (long long)idx[q], (long long)q);
        }
    } else {
        fuzz_check_message(r, rc, "h5ml_sigreader_read");
    }
    free(out);
    free(idx);
    free(lab);
}

static void read_split(h5ml_sigreader *r, uint64_t seed)
{
    int64_t n = h5ml_sigreader_count(r), len = h5ml_sigreader_length(r), counts[3];
    FUZZ_CHECK(n >= 0 && len >= 0, "count %lld, length %lld", (long long)n, (long long)len);
    int layout = h5ml_sigreader_layout(r, counts);
    FUZZ_CHECK(layout == H5ML_SIG_FLAT || layout == H5ML_SIG_SPLIT, "layout %d", layout);
    char *attrs = NULL;
    int rc = h5ml_sigreader_attrs(r, &attrs);
    FUZZ_CHECK(rc == H5ML_OK, "attrs failed: %s", h5ml_errmsg(r));
    json_error_t e;
    json_t *j = json_loads(attrs, 0, &e);
    FUZZ_CHECK(j != NULL && json_is_object(j), "attributes are not a JSON object: %s (%s)", e.text, attrs);
    json_decref(j);
    h5ml_free(attrs);
    if (n > MAX_SIGNALS) return;
    int64_t *labels = xcalloc((size_t)n, sizeof *labels), *indices = xcalloc((size_t)n, sizeof *indices);
    FUZZ_CHECK(h5ml_sigreader_labels(r, labels) == H5ML_OK, "labels failed: %s", h5ml_errmsg(r));
    rc = h5ml_sigreader_indices(r, indices);
    if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_sigreader_indices");
    for (int64_t i = 0; i < n && i < MAX_GET; i++) {
        char *json = NULL;
        rc = h5ml_sigreader_metadata(r, i, &json);
        if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_sigreader_metadata");
        FUZZ_CHECK(json == NULL || h5ml_sigreader_has_metadata(r), "metadata without a metadata dataset");
        h5ml_free(json);
    }
    float *one = xcalloc(1, sizeof *one);
    FUZZ_CHECK(h5ml_sigreader_get(r, n, one, NULL) == H5ML_ERR_RANGE, "get(N) accepted");
    free(one);
    if (n > 0 && len > 0 && n * len <= MAX_SAMPLES) {
        float *all = xcalloc((size_t)(n * len), sizeof *all);
        int64_t *lab = xcalloc((size_t)n, sizeof *lab);
        h5ml_sigreader_stats before, after;
        h5ml_sigreader_get_stats(r, &before);
        rc = h5ml_sigreader_read_range(r, 0, n, all, lab);
        h5ml_sigreader_get_stats(r, &after);
        bool strict = after.chunks_read > before.chunks_read; /* h5ml decoded the chunks itself */
        if (rc == H5ML_OK) {
            FUZZ_CHECK(memcmp(lab, labels, sizeof *lab * (size_t)n) == 0, "read_range: labels differ from labels()");
            h5ml_sigreader_set(r, H5ML_SIGR_THREADS, 2);
            check_reads(r, all, labels, n, len, seed, "direct", strict);
            h5ml_sigreader_set(r, H5ML_SIGR_THREADS, 1);
            FUZZ_CHECK(h5ml_sigreader_set(r, H5ML_SIGR_CACHE, 3) == H5ML_OK, "cache: %s", h5ml_errmsg(r));
            check_reads(r, all, labels, n, len, seed + 1, "LRU cache", strict);
            h5ml_sigreader_set(r, H5ML_SIGR_CACHE, 0);
            h5ml_sigreader_set(r, H5ML_SIGR_PREFETCH, 3);
            check_reads(r, all, labels, n, len, seed + 2, "prefetch", strict);
            h5ml_sigreader_set(r, H5ML_SIGR_PREFETCH, 0);
        } else {
            fuzz_check_message(r, rc, "h5ml_sigreader_read_range");
        }
        free(all);
        free(lab);
    }
    free(labels);
    free(indices);
}

static void count_problem(void *user, const char *problem)
{
    FUZZ_CHECK(problem && *problem, "verify reported an empty problem");
    ++*(int *)user;
}

static void whole_file_ops(const char *path)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    if (r == NULL) abort();
    h5ml_sigreader_set(r, H5ML_SIGR_THREADS, 1);
    int problems = 0;
    int rc = h5ml_signals_verify(r, path, count_problem, &problems);
    FUZZ_CHECK(rc != H5ML_OK || problems == 0, "verify: OK with %d problems reported", problems);
    FUZZ_CHECK(rc != H5ML_ERR_CHECK || problems > 0, "verify: ERR_CHECK without a problem reported");
    if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_signals_verify");
    h5ml_sigsummary *s = xcalloc(1, sizeof *s);
    rc = h5ml_signals_summarize(r, path, s, NULL, NULL);
    if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_signals_summarize");
    free(s);
    rc = h5ml_diff_files(r, path, path);
    FUZZ_CHECK(rc != H5ML_ERR_DIFFER, "the file differs from itself: %s", h5ml_errmsg(r));
    h5ml_sigreader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fuzz_path(path, sizeof path, "in.h5");
    fuzz_write_file(path, data, size);
    uint64_t seed = fuzz_hash(data, size);
    h5ml_is_signal_file(path);
    fuzz_check_no_hdf5_ids("after h5ml_is_signal_file");
    h5ml_sigreader *r = h5ml_sigreader_new();
    if (r == NULL) abort();
    h5ml_sigreader_set(r, H5ML_SIGR_THREADS, 1);
    int rc = h5ml_sigreader_open(r, path, NULL);
    bool opened = rc == H5ML_OK;
    if (rc == H5ML_OK) {
        read_split(r, seed);
    } else {
        fuzz_check_message(r, rc, "h5ml_sigreader_open");
        static const char *const splits[3] = { "train", "val", "test" };
        for (int k = 0; k < 3; k++) {
            rc = h5ml_sigreader_open(r, path, splits[k]);
            if (rc == H5ML_OK) {
                opened = true;
                read_split(r, seed + (uint64_t)k);
            } else {
                fuzz_check_message(r, rc, "h5ml_sigreader_open");
            }
        }
    }
    h5ml_sigreader_close(r);
    fuzz_check_no_hdf5_ids("after h5ml_sigreader_close");
    if (opened) {
        whole_file_ops(path);
        fuzz_check_no_hdf5_ids("after the whole-file operations");
    }
    unlink(path);
    return 0;
}
