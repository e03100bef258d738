/* Fuzz target: the JSON metadata paths of the writers.
 *
 * Input: a flags byte, then up to 16 strings separated by NUL bytes. The strings go, as
 * flags select, to
 *   - the atomistic writer as per-structure info_json: one h5ml_writer_add per string
 *     (flags & 1 = 0) or one h5ml_writer_add_batch of them all (flags & 1);
 *   - the signal writer as per-signal metadata, one signal per string, in a flat cache
 *     (flags & 2) or spread over train/val/test (flags & 6 == 6);
 *   - h5ml_writer_meta_json (flags & 8) under keys j0, j1, ... and h5ml_writer_meta_string
 *     with the string as key and value (flags & 16).
 * Oracle: a string is accepted exactly when it is empty or a JSON object (any JSON for
 * meta_json); accepted JSON written and read back equals, as parsed JSON, what was accepted;
 * a rejected string leaves nothing written (the structure or signal count does not move,
 * and in a batch the structures before it are written, none from it on). */
#include "fuzz_util.h"

#include <jansson.h>

enum { MAX_STRINGS = 16, LEN = 4 };

static bool is_object(const char *s)
{
    if (s == NULL || !*s) return true;
    json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
    bool ok = v && json_is_object(v);
    json_decref(v);
    return ok;
}

/* The stored text `got` is what was given (`want`), as JSON; empty or NULL means none. */
static void check_same_json(const char *want, const char *got, const char *what, int k)
{
    if (want == NULL || !*want) {
        FUZZ_CHECK(got == NULL || !*got, "%s %d: none given, '%s' read back", what, k, got);
        return;
    }
    FUZZ_CHECK(got != NULL, "%s %d: '%s' given, none read back", what, k, want);
    json_t *a = json_loads(want, JSON_DECODE_ANY, NULL), *b = json_loads(got, JSON_DECODE_ANY, NULL);
    FUZZ_CHECK(a && b && json_equal(a, b), "%s %d: '%s' given, '%s' read back", what, k, want, got);
    json_decref(a);
    json_decref(b);
}

static void atoms_path(char **s, int ns, int flags)
{
    char path[600];
    fuzz_path(path, sizeof path, "meta.h5");
    h5ml_writer *w = h5ml_writer_new();
    if (w == NULL) abort();
    h5ml_writer_set(w, H5ML_OPT_PROFILE, H5ML_PROFILE_NONE);
    h5ml_writer_set(w, H5ML_OPT_THREADS, 1);
    h5ml_writer_set(w, H5ML_OPT_CHECKPOINT_MS, -1);
    FUZZ_CHECK(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK, "cannot create %s: %s", path, h5ml_errmsg(w));
    const char *kept[MAX_STRINGS];
    int nkept = 0;
    int64_t numbers[MAX_STRINGS];
    double pos[3 * MAX_STRINGS] = { 0 }, forces[3 * MAX_STRINGS] = { 0 }, energies[MAX_STRINGS];
    for (int k = 0; k < ns; k++) {
        numbers[k] = 1 + k;
        pos[3 * k] = k;
        energies[k] = -k;
    }
    if (flags & 1) {
        int64_t natoms[MAX_STRINGS];
        for (int k = 0; k < ns; k++) natoms[k] = 1;
        h5ml_batch b = { .count = ns, .natoms = natoms, .numbers = numbers, .positions = pos, .energies = energies, .forces = forces,
                         .info_json = (const char *const *)s };
        int first_bad = ns;
        for (int k = 0; k < ns && first_bad == ns; k++)
            if (!is_object(s[k])) first_bad = k;
        int rc = h5ml_writer_add_batch(w, &b);
        FUZZ_CHECK((rc == H5ML_OK) == (first_bad == ns), "batch: add_batch returned %d (%s), first non-object %d", rc, h5ml_errmsg(w),
                   first_bad);
        if (rc != H5ML_OK) FUZZ_CHECK(rc == H5ML_ERR_VALUE, "batch: error %d for a bad info_json: %s", rc, h5ml_errmsg(w));
        for (int k = 0; k < first_bad; k++) kept[nkept++] = s[k];
    } else {
        for (int k = 0; k < ns; k++) {
            h5ml_structure st = { .natoms = 1, .numbers = numbers + k, .positions = pos + 3 * k, .energy = energies[k],
                                  .forces = forces, .info_json = s[k] };
            int rc = h5ml_writer_add(w, &st);
            FUZZ_CHECK((rc == H5ML_OK) == is_object(s[k]), "add: returned %d (%s) for info_json '%s'", rc, h5ml_errmsg(w), s[k]);
            if (rc == H5ML_OK) kept[nkept++] = s[k];
            h5ml_writer_stats st2;
            h5ml_writer_get_stats(w, &st2);
            FUZZ_CHECK(st2.structures == nkept, "add: %lld structures in the writer after %d accepted", (long long)st2.structures, nkept);
        }
    }
    bool meta_ok[MAX_STRINGS] = { false }, key_ok[MAX_STRINGS] = { false };
    for (int k = 0; (flags & 8) && k < ns; k++) {
        char key[16];
        snprintf(key, sizeof key, "j%d", k);
        int rc = h5ml_writer_meta_json(w, key, s[k]);
        json_t *v = json_loads(s[k], JSON_DECODE_ANY, NULL);
        FUZZ_CHECK((rc == H5ML_OK) == (v != NULL), "meta_json: returned %d (%s) for '%s'", rc, h5ml_errmsg(w), s[k]);
        json_decref(v);
        meta_ok[k] = rc == H5ML_OK;
    }
    for (int k = 0; (flags & 16) && k < ns; k++) {
        int rc = h5ml_writer_meta_string(w, s[k], s[k]);
        if (rc != H5ML_OK) FUZZ_CHECK(rc == H5ML_ERR_ARG, "meta_string: error %d: %s", rc, h5ml_errmsg(w));
        key_ok[k] = rc == H5ML_OK;
    }
    int rc = h5ml_writer_close(w);
    FUZZ_CHECK(rc == H5ML_OK, "closing the writer failed (%d)", rc);
    fuzz_check_no_hdf5_ids("after h5ml_writer_close");

    h5ml_reader *r = h5ml_reader_new();
    if (r == NULL) abort();
    FUZZ_CHECK(h5ml_reader_open(r, path) == H5ML_OK, "cannot read back %s: %s", path, h5ml_errmsg(r));
    FUZZ_CHECK(h5ml_reader_count(r) == nkept, "%lld structures read back, %d accepted", (long long)h5ml_reader_count(r), nkept);
    for (int k = 0; k < nkept; k++) {
        char *json = NULL;
        FUZZ_CHECK(h5ml_reader_info(r, k, &json) == H5ML_OK, "info(%d): %s", k, h5ml_errmsg(r));
        check_same_json(kept[k], json, "structure", k);
        h5ml_free(json);
    }
    char *meta = NULL;
    FUZZ_CHECK(h5ml_reader_metadata(r, &meta) == H5ML_OK, "metadata: %s", h5ml_errmsg(r));
    json_t *m = json_loads(meta, 0, NULL);
    FUZZ_CHECK(m && json_is_object(m), "metadata is not a JSON object: %s", meta);
    for (int k = 0; k < ns; k++) {
        char key[16];
        snprintf(key, sizeof key, "j%d", k);
        bool overwritten = false; /* a meta_string key "jK" set after meta_json's */
        for (int q = 0; q < ns; q++) overwritten |= key_ok[q] && strcmp(s[q], key) == 0;
        if (meta_ok[k] && !overwritten) {
            json_t *v = json_object_get(m, key);
            FUZZ_CHECK(json_is_string(v), "meta_json %s: not read back as a string", key);
            check_same_json(s[k], json_string_value(v), "meta_json", k);
        }
        if (key_ok[k]) { /* the last value of a key set twice: the same string here */
            json_t *v = json_object_get(m, s[k]);
            FUZZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), s[k]) == 0, "meta_string '%s': read back as %s", s[k],
                       v ? (json_is_string(v) ? json_string_value(v) : "a non-string") : "nothing");
        }
    }
    json_decref(m);
    h5ml_free(meta);
    h5ml_reader_close(r);
    fuzz_check_no_hdf5_ids("after h5ml_reader_close");
    unlink(path);
}

static void signals_path(char **s, int ns, int flags)
{
    char path[600];
    fuzz_path(path, sizeof path, "sig.h5");
    bool split = (flags & 6) == 6;
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) abort();
    h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, H5ML_PROFILE_NONE);
    h5ml_sigwriter_set(w, H5ML_SIG_THREADS, 1);
    FUZZ_CHECK(h5ml_sigwriter_create(w, path, split ? H5ML_SIG_SPLIT : H5ML_SIG_FLAT, LEN, "fuzz") == H5ML_OK, "cannot create %s: %s",
               path, h5ml_errmsg(w));
    const char *kept[3][MAX_STRINGS];
    int nkept[3] = { 0, 0, 0 };
    for (int k = 0; k < ns; k++) {
        float sig[LEN] = { (float)k, 1, 2, 3 };
        int64_t label = k % 3, index = k;
        int part = split ? k % 3 : 0;
        const char *meta[1] = { s[k] };
        h5ml_sigwriter_stats before, after;
        h5ml_sigwriter_get_stats(w, &before);
        int rc = h5ml_sigwriter_add(w, split ? part : H5ML_NO_SPLIT, 1, sig, &label, meta, split ? &index : NULL);
        h5ml_sigwriter_get_stats(w, &after);
        FUZZ_CHECK((rc == H5ML_OK) == is_object(s[k]), "sigwriter_add: returned %d (%s) for metadata '%s'", rc, h5ml_errmsg(w), s[k]);
        FUZZ_CHECK(after.total == before.total + (rc == H5ML_OK), "sigwriter_add: %lld signals before, %lld after (rc %d)",
                   (long long)before.total, (long long)after.total, rc);
        if (rc == H5ML_OK) kept[part][nkept[part]++] = s[k];
    }
    FUZZ_CHECK(h5ml_sigwriter_close(w) == H5ML_OK, "closing the signal writer failed");
    fuzz_check_no_hdf5_ids("after h5ml_sigwriter_close");
    h5ml_sigreader *r = h5ml_sigreader_new();
    if (r == NULL) abort();
    static const char *const names[3] = { "train", "val", "test" };
    for (int part = 0; part < (split ? 3 : 1); part++) {
        FUZZ_CHECK(h5ml_sigreader_open(r, path, split ? names[part] : NULL) == H5ML_OK, "cannot read back %s: %s", path, h5ml_errmsg(r));
        FUZZ_CHECK(h5ml_sigreader_count(r) == nkept[part], "%lld signals read back, %d accepted", (long long)h5ml_sigreader_count(r),
                   nkept[part]);
        for (int k = 0; k < nkept[part]; k++) {
            char *json = NULL;
            FUZZ_CHECK(h5ml_sigreader_metadata(r, k, &json) == H5ML_OK, "metadata(%d): %s", k, h5ml_errmsg(r));
            check_same_json(kept[part][k], json, "signal", k);
            h5ml_free(json);
        }
    }
    h5ml_sigreader_close(r);
    fuzz_check_no_hdf5_ids("after h5ml_sigreader_close");
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    int flags = data[0];
    char *copy = malloc(size); /* the strings, NUL-terminated */
    if (copy == NULL) abort();
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = 0;
    char *s[MAX_STRINGS];
    int ns = 0;
    for (char *p = copy; ns < MAX_STRINGS && p <= copy + size - 1; p += strlen(p) + 1) s[ns++] = p;
    atoms_path(s, ns, flags);
    if (flags & 2) signals_path(s, ns, flags);
    free(copy);
    return 0;
}
