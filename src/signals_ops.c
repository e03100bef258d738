/* Whole-file operations on signal caches: generate, import, split, verify, summarize,
 * diff. They use the writer and reader of signals_writer.c and signals_reader.c; every one
 * that makes a file rolls it back on failure, so bad input leaves nothing behind. */
#define _GNU_SOURCE
#include "pool.h"
#include "signals_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const split_names[3] = { "train", "val", "test" };
static const double default_ratios[3] = { 0.7, 0.15, 0.15 };

/* The caller's ratios, or the default when all are zero. */
static void pick_ratios(const double *in, double out[3])
{
    bool given = in && (in[0] != 0 || in[1] != 0 || in[2] != 0);
    memcpy(out, given ? in : default_ratios, 3 * sizeof *out);
}

/* Fails on `w` (copying the message of the operation) and discards its file. */
static int abandon(h5ml_sigwriter *w, int rc)
{
    h5ml_base *b = (h5ml_base *)w;
    h5ml_base saved = *b;
    h5ml_sigwriter_rollback(w); /* fails harmlessly when the file was never made */
    *b = saved;
    return rc;
}

static int fail_w(h5ml_sigwriter *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail_w(h5ml_sigwriter *w, int code, const char *fmt, ...)
{
    h5ml_base *b = (h5ml_base *)w;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    b->code = code;
    return code;
}

/* What a progress callback's return value asks for (h5ml.h, h5ml_progress_fn): a signal
 * file is discarded either way (abandon), so a stop only changes the code. */
static int stop_asked(h5ml_sigwriter *w, int answer)
{
    if (answer == 0) return H5ML_OK;
    if (answer == H5ML_PROGRESS_STOP) return fail_w(w, H5ML_ERR_INTERRUPTED, "interrupted");
    return fail_w(w, H5ML_ERR_STATE, "cancelled");
}

/* Chunks sized to the splits (h5ml_sigwriter_expect). */
static void expect_splits(h5ml_sigwriter *w, const int64_t count[3])
{
    for (int k = 0; k < 3; k++) h5ml_sigwriter_expect(w, k, count[k]);
}

static void free_order(int64_t *order[3])
{
    for (int s = 0; s < 3; s++) free(order[s]);
}

/* ---- generate ------------------------------------------------------------------------------ */

typedef struct gen_job {
    const h5ml_siggen_params *p;
    const int64_t *index;    /* the signals of this batch, as original indices */
    int64_t count, per_class;
    float *out;              /* count x length */
    char (*meta)[256];
    int64_t next;
    bool failed;
} gen_job;

static void *gen_worker(void *arg)
{
    gen_job *j = arg;
    for (;;) {
        int64_t k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->count) break;
        int64_t g = j->index[k];
        int label = (int)(g / j->per_class);
        h5ml_siggen_info info;
        if (h5ml__siggen_sample(j->p, label, g % j->per_class, j->out + (size_t)k * (size_t)j->p->length, &info) < 0) {
            __atomic_store_n(&j->failed, true, __ATOMIC_RELAXED);
            break;
        }
        h5ml__siggen_info_json(&info, g, j->meta[k], sizeof j->meta[k]);
    }
    return NULL;
}

/* Generates the signals index[0..count) on `threads` threads. */
static bool generate_batch(gen_job *j, int threads)
{
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64 && (int64_t)t < j->count; t++)
        if (pthread_create(&tid[started], NULL, gen_worker, j) == 0) started++;
    gen_worker(j);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    return !j->failed;
}

static int check_generate(h5ml_sigwriter *w, const char *path, const h5ml_siggen_options *o)
{
    if (path == NULL || !*path) return fail_w(w, H5ML_ERR_ARG, "no output path given");
    if (o->per_class < 1) return fail_w(w, H5ML_ERR_ARG, "%s: per-class must be at least 1 (got %lld)", path, (long long)o->per_class);
    if (o->length < 1) return fail_w(w, H5ML_ERR_ARG, "%s: length must be at least 1 (got %lld)", path, (long long)o->length);
    if (!(o->rate > 0) || !isfinite(o->rate)) return fail_w(w, H5ML_ERR_ARG, "%s: rate must be positive (got %g)", path, o->rate);
    if (!(o->speed_hz > 0) || !isfinite(o->speed_hz))
        return fail_w(w, H5ML_ERR_ARG, "%s: speed must be positive (got %g)", path, o->speed_hz);
    return H5ML_OK;
}

static int generate_attrs(h5ml_sigwriter *w, const h5ml_siggen_options *o, const double ratios[3])
{
    char ts[32];
    h5ml__iso8601(ts);
    int rc = h5ml_sigwriter_class_names(w, h5ml__fault_names, H5ML_NUM_FAULTS);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_doubles(w, "split_ratios", ratios, 3);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_bool(w, "stratified", 1);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_int(w, "random_seed", (int64_t)o->seed);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_int(w, "rng_seed", (int64_t)o->seed);
    if (rc == H5ML_OK && o->rate == floor(o->rate)) rc = h5ml_sigwriter_attr_int(w, "sampling_rate", (int64_t)o->rate);
    else if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_double(w, "sampling_rate", o->rate);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_double(w, "speed_hz", o->speed_hz);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_int(w, "num_signals_per_fault", o->per_class);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_string(w, "generation_date", ts);
    return rc;
}

static int generate_split(h5ml_sigwriter *w, int s, const int64_t *order, int64_t n, gen_job *j, int threads, int64_t *done,
                          int64_t total, h5ml_progress_fn progress, void *user)
{
    enum { BATCH = 16 };
    int64_t labels[BATCH];
    const char *meta[BATCH];
    for (int64_t at = 0; at < n; at += BATCH) {
        j->index = order + at;
        j->count = n - at < BATCH ? n - at : BATCH;
        j->next = 0;
        if (!generate_batch(j, threads)) return fail_w(w, H5ML_ERR_ARG, "signal generator: invalid parameters");
        for (int64_t k = 0; k < j->count; k++) {
            labels[k] = j->index[k] / j->per_class;
            meta[k] = j->meta[k];
        }
        int rc = h5ml_sigwriter_add(w, s, j->count, j->out, labels, meta, j->index);
        if (rc) return rc;
        *done += j->count;
        if (progress && (rc = stop_asked(w, progress(user, *done, total))) != H5ML_OK) return rc;
    }
    return H5ML_OK;
}

int h5ml_signals_generate(h5ml_sigwriter *w, const char *path, const h5ml_siggen_options *opts, h5ml_progress_fn progress,
                          void *user)
{
    if (w == NULL) return H5ML_ERR_ARG;
    h5ml_siggen_options o = { 100, 102400, 20480, 60, 42, { 0, 0, 0 } };
    if (opts) {
        o = *opts;
        if (o.per_class == 0) o.per_class = 100;
        if (o.length == 0) o.length = 102400;
        if (o.rate == 0) o.rate = 20480;
        if (o.speed_hz == 0) o.speed_hz = 60;
    }
    double ratios[3];
    pick_ratios(o.ratios, ratios);
    int rc = check_generate(w, path, &o);
    if (rc) return rc;
    int64_t n = o.per_class * H5ML_NUM_FAULTS;
    int64_t *labels = malloc(sizeof *labels * (size_t)n), *order[3] = { NULL, NULL, NULL }, count[3];
    if (labels == NULL) return fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    for (int64_t g = 0; g < n; g++) labels[g] = g / o.per_class;
    char msg[256];
    rc = h5ml__split_assign(labels, n, ratios, 1, o.seed, order, count, msg, sizeof msg);
    free(labels);
    if (rc) return fail_w(w, rc, "%s: %s", path, msg);
    h5ml_sigwriter_set(w, H5ML_SIG_NUM_CLASSES, H5ML_NUM_FAULTS);
    expect_splits(w, count);
    rc = h5ml_sigwriter_create(w, path, H5ML_SIG_SPLIT, o.length, NULL);
    if (rc == H5ML_OK) rc = generate_attrs(w, &o, ratios);
    h5ml_siggen_params p = { o.rate, o.length, o.speed_hz, 0.10, o.seed };
    enum { BATCH = 16 };
    gen_job j = { .p = &p, .per_class = o.per_class };
    j.out = malloc(sizeof *j.out * (size_t)(BATCH * o.length));
    j.meta = malloc(sizeof *j.meta * BATCH);
    if (rc == H5ML_OK && (j.out == NULL || j.meta == NULL)) rc = fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    int threads = h5ml__default_threads();
    int64_t done = 0;
    for (int s = 0; s < 3 && rc == H5ML_OK; s++) rc = generate_split(w, s, order[s], count[s], &j, threads, &done, n, progress, user);
    free(j.out);
    free(j.meta);
    free_order(order);
    if (rc != H5ML_OK) return abandon(w, rc);
    return h5ml_sigwriter_finalize(w);
}

/* ---- import -------------------------------------------------------------------------------- */

typedef struct import_state {
    const h5ml_mat_listing *list;
    const h5ml_import_options *o;
    int64_t length;          /* of the file (0 until the first signal decides it) */
    const char *first;       /* the file that decided it */
    float *buf;
} import_state;

/* Reads file k as a signal of the file's length (truncated or padded as asked). */
static int import_one(h5ml_sigwriter *w, import_state *st, int64_t k, char *var, size_t varlen)
{
    const char *path = st->list->files[k].path;
    double *v = NULL;
    int64_t len = 0;
    char msg[512];
    int rc = h5ml__mat_read_signal(path, st->o->var, &v, &len, var, varlen, msg, sizeof msg);
    if (rc) return fail_w(w, rc, "%s", msg);
    if (st->length == 0) {
        st->length = len;
        st->first = path;
    }
    if (len != st->length && !st->o->truncate && !st->o->pad) {
        free(v);
        return fail_w(w, H5ML_ERR_VALUE,
                      "%s: signal of %lld samples, but %s has %lld; all signals must have one length (use --truncate "
                      "or --pad)",
                      path, (long long)len, st->first, (long long)st->length);
    }
    for (int64_t i = 0; i < st->length; i++) st->buf[i] = i < len ? (float)v[i] : 0.0f;
    free(v);
    return H5ML_OK;
}

/* With --truncate or --pad every file is read once first for its length. */
static int import_length(h5ml_sigwriter *w, import_state *st)
{
    int64_t best = -1;
    for (int64_t k = 0; k < st->list->nfiles; k++) {
        double *v = NULL;
        int64_t len = 0;
        char msg[512];
        int rc = h5ml__mat_read_signal(st->list->files[k].path, st->o->var, &v, &len, NULL, 0, msg, sizeof msg);
        free(v);
        if (rc) return fail_w(w, rc, "%s", msg);
        if (best < 0 || (st->o->truncate ? len < best : len > best)) {
            best = len;
            st->first = st->list->files[k].path;
        }
    }
    st->length = best;
    return H5ML_OK;
}

static int import_attrs(h5ml_sigwriter *w, const h5ml_mat_listing *l, const char *dir)
{
    int rc = h5ml_sigwriter_class_names(w, (const char *const *)l->class_names, l->nclasses);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_string(w, "source_dir", dir);
    return rc;
}

static int import_add(h5ml_sigwriter *w, import_state *st, int split, int64_t k, int64_t index, const char *dir)
{
    char var[128] = "";
    int rc = import_one(w, st, k, var, sizeof var);
    if (rc) return rc;
    const h5ml_mat_entry *e = &st->list->files[k];
    json_t *m = json_object();
    size_t dl = strlen(dir);
    const char *rel = strncmp(e->path, dir, dl) == 0 && e->path[dl] == '/' ? e->path + dl + 1 : e->path;
    json_object_set_new(m, "file", json_string(rel));
    json_object_set_new(m, "fault", json_string(st->list->class_names[e->label]));
    json_object_set_new(m, "label", json_integer(e->label));
    json_object_set_new(m, "variable", json_string(var));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    int64_t label = e->label;
    const char *meta[1] = { text };
    rc = text ? h5ml_sigwriter_add(w, split, 1, st->buf, &label, meta, &index) : fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    free(text);
    return rc;
}

/* Reads the first file for the length (without --truncate/--pad) before the output exists. */
static int import_prepare(h5ml_sigwriter *w, import_state *st, int64_t first)
{
    if (st->o->truncate || st->o->pad) return import_length(w, st);
    double *v = NULL;
    int64_t len = 0;
    char msg[512];
    int rc = h5ml__mat_read_signal(st->list->files[first].path, st->o->var, &v, &len, NULL, 0, msg, sizeof msg);
    free(v);
    if (rc) return fail_w(w, rc, "%s", msg);
    st->length = len;
    st->first = st->list->files[first].path;
    return H5ML_OK;
}

static int import_impl(h5ml_sigwriter *w, const char *dir, const char *path, const h5ml_import_options *o,
                       const h5ml_mat_listing *l, h5ml_progress_fn progress, void *user)
{
    int64_t n = l->nfiles, *order[3] = { NULL, NULL, NULL }, count[3] = { n, 0, 0 };
    double ratios[3];
    pick_ratios(o->ratios, ratios);
    int rc = H5ML_OK;
    if (!o->flat) {
        int64_t *labels = malloc(sizeof *labels * (size_t)n);
        if (labels == NULL) return fail_w(w, H5ML_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; k < n; k++) labels[k] = l->files[k].label;
        char msg[256];
        rc = h5ml__split_assign(labels, n, ratios, !o->no_stratify, o->seed, order, count, msg, sizeof msg);
        free(labels);
        if (rc) return fail_w(w, rc, "%s: %s", path, msg);
    }
    import_state st = { .list = l, .o = o };
    int64_t first = o->flat ? 0 : (count[0] ? order[0][0] : count[1] ? order[1][0] : order[2][0]);
    rc = import_prepare(w, &st, first);
    if (rc == H5ML_OK && (st.buf = malloc(sizeof *st.buf * (size_t)st.length)) == NULL) rc = fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    if (rc == H5ML_OK) {
        h5ml_sigwriter_set(w, H5ML_SIG_NUM_CLASSES, l->nclasses);
        if (o->flat) h5ml_sigwriter_expect(w, H5ML_NO_SPLIT, n);
        else expect_splits(w, count);
        rc = h5ml_sigwriter_create(w, path, o->flat ? H5ML_SIG_FLAT : H5ML_SIG_SPLIT, st.length, NULL);
        if (rc == H5ML_OK) rc = import_attrs(w, l, dir);
        if (rc == H5ML_OK && !o->flat) {
            rc = h5ml_sigwriter_attr_doubles(w, "split_ratios", ratios, 3);
            if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_bool(w, "stratified", !o->no_stratify);
            if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_int(w, "random_seed", (int64_t)o->seed);
        }
        int64_t done = 0;
        for (int s = 0; s < (o->flat ? 1 : 3) && rc == H5ML_OK; s++)
            for (int64_t i = 0; i < count[s] && rc == H5ML_OK; i++) {
                int64_t k = o->flat ? i : order[s][i];
                rc = import_add(w, &st, o->flat ? H5ML_NO_SPLIT : s, k, k, dir);
                done++;
                if (rc == H5ML_OK && progress) rc = stop_asked(w, progress(user, done, n));
            }
        if (rc != H5ML_OK) abandon(w, rc);
        else rc = h5ml_sigwriter_finalize(w);
    }
    free(st.buf);
    free_order(order);
    return rc;
}

int h5ml_signals_import(h5ml_sigwriter *w, const char *dir, const char *path, const h5ml_import_options *opts,
                        h5ml_progress_fn progress, void *user)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (dir == NULL || path == NULL || !*path) return fail_w(w, H5ML_ERR_ARG, "an input directory and an output path are needed");
    h5ml_import_options o = { 0 };
    if (opts) o = *opts;
    if (o.truncate && o.pad) return fail_w(w, H5ML_ERR_ARG, "truncate and pad exclude each other");
    h5ml_mat_listing l;
    char msg[512];
    int rc = h5ml__mat_list(dir, &l, msg, sizeof msg);
    if (rc) return fail_w(w, rc, "%s", msg);
    rc = import_impl(w, dir, path, &o, &l, progress, user);
    h5ml__mat_listing_free(&l);
    return rc;
}

/* ---- split ------------------------------------------------------------------------------- */

/* Copies the class_names attribute of the source file, if it has one. */
static int copy_class_names(h5ml_sigwriter *w, hid_t src)
{
    if (H5Aexists(src, "class_names") <= 0) return H5ML_OK;
    hid_t a = H5Aopen(src, "class_names", H5P_DEFAULT), sp = H5Aget_space(a), ft = H5Aget_type(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int rc = H5ML_OK;
    if (H5Tget_class(ft) == H5T_STRING && n > 0 && n < 1 << 20) {
        hid_t t = h5ml__vlen_str_type();
        char **v = calloc((size_t)n, sizeof *v);
        if (v && H5Tis_variable_str(ft) > 0 && H5Aread(a, t, v) >= 0) {
            rc = h5ml_sigwriter_class_names(w, (const char *const *)v, (int)n);
            H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
        }
        free(v);
        H5Tclose(t);
    }
    H5Tclose(ft);
    H5Sclose(sp);
    H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

static int split_copy(h5ml_sigwriter *w, h5ml_sigreader *r, int s, const int64_t *order, int64_t n, int64_t *done, int64_t total,
                      h5ml_progress_fn progress, void *user)
{
    int64_t len = h5ml_sigreader_length(r);
    int64_t batch = (16 << 20) / (4 * len) > 1 ? (16 << 20) / (4 * len) : 1; /* about 16 MiB at a time */
    if (batch > 4096) batch = 4096;
    float *buf = malloc(sizeof *buf * (size_t)(batch * len));
    int64_t *labels = malloc(sizeof *labels * (size_t)batch);
    char **meta = calloc((size_t)batch, sizeof *meta);
    int rc = buf && labels && meta ? H5ML_OK : fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    bool with_meta = h5ml_sigreader_has_metadata(r);
    for (int64_t at = 0; at < n && rc == H5ML_OK; at += batch) {
        int64_t k = n - at < batch ? n - at : batch;
        if (h5ml_sigreader_read(r, order + at, k, buf, labels) != H5ML_OK) {
            rc = fail_w(w, h5ml_errcode(r), "%s", h5ml_errmsg(r));
            break;
        }
        for (int64_t i = 0; i < k && with_meta && rc == H5ML_OK; i++)
            if (h5ml_sigreader_metadata(r, order[at + i], &meta[i]) != H5ML_OK) rc = fail_w(w, h5ml_errcode(r), "%s", h5ml_errmsg(r));
        if (rc == H5ML_OK) rc = h5ml_sigwriter_add(w, s, k, buf, labels, with_meta ? (const char *const *)meta : NULL, order + at);
        for (int64_t i = 0; i < k; i++) {
            free(meta[i]);
            meta[i] = NULL;
        }
        *done += k;
        if (rc == H5ML_OK && progress) rc = stop_asked(w, progress(user, *done, total));
    }
    free(buf);
    free(labels);
    free(meta);
    return rc;
}

static int split_impl(h5ml_sigwriter *w, h5ml_sigreader *r, const char *in, const char *out, const double ratios[3], int stratify,
                      uint64_t seed, h5ml_progress_fn progress, void *user)
{
    int64_t n = h5ml_sigreader_count(r), *order[3] = { NULL, NULL, NULL }, count[3];
    int64_t *labels = malloc(sizeof *labels * (size_t)(n > 0 ? n : 1));
    if (labels == NULL) return fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    int rc = h5ml_sigreader_labels(r, labels);
    char msg[256];
    if (rc == H5ML_OK && (rc = h5ml__split_assign(labels, n, ratios, stratify, seed, order, count, msg, sizeof msg)) != 0)
        fail_w(w, rc, "%s: %s", in, msg);
    free(labels);
    if (rc == H5ML_OK) expect_splits(w, count);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_create(w, out, H5ML_SIG_SPLIT, h5ml_sigreader_length(r), NULL);
    if (rc == H5ML_OK) rc = copy_class_names(w, h5ml__sigreader_file(r));
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_doubles(w, "split_ratios", ratios, 3);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_bool(w, "stratified", stratify != 0);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_int(w, "random_seed", (int64_t)seed);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_attr_string(w, "source_file", in);
    int64_t done = 0;
    for (int s = 0; s < 3 && rc == H5ML_OK; s++) rc = split_copy(w, r, s, order[s], count[s], &done, n, progress, user);
    free_order(order);
    if (rc != H5ML_OK) {
        if (((h5ml_base *)w)->code == H5ML_OK) fail_w(w, rc, "%s: cannot split", in);
        return abandon(w, rc);
    }
    return h5ml_sigwriter_finalize(w);
}

int h5ml_signals_split(h5ml_sigwriter *w, const char *in, const char *out, const double ratios_in[3], int stratify, uint64_t seed,
                       h5ml_progress_fn progress, void *user)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (in == NULL || out == NULL || !*out) return fail_w(w, H5ML_ERR_ARG, "an input and an output path are needed");
    double ratios[3];
    pick_ratios(ratios_in, ratios);
    h5ml_sigreader *r = h5ml_sigreader_new();
    if (r == NULL) return fail_w(w, H5ML_ERR_NOMEM, "out of memory");
    int rc = h5ml_sigreader_open(r, in, NULL);
    if (rc == H5ML_ERR_ARG) rc = fail_w(w, H5ML_ERR_ARG, "%s is already split (train/val/test); split takes a flat cache", in);
    else if (rc) fail_w(w, rc, "%s", h5ml_errmsg(r));
    h5ml_h5quiet q; /* the source's attributes are read here (copy_class_names) */
    h5ml__h5_quiet(&q);
    if (rc == H5ML_OK) rc = split_impl(w, r, in, out, ratios, stratify, seed, progress, user);
    h5ml__h5_restore(&q);
    h5ml_sigreader_close(r);
    return rc;
}

/* ---- kind of file -------------------------------------------------------------------------- */

int h5ml_is_signal_file(const char *path)
{
    if (path == NULL || h5ml__init() < 0) return 0;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int yes = 0;
    if (H5Fis_hdf5(path) > 0) {
        hid_t fapl = h5ml__fapl_read(), f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        H5Pclose(fapl);
        if (f >= 0) {
            bool atoms = H5Lexists(f, "structures", H5P_DEFAULT) > 0;
            bool flat = H5Lexists(f, "signals", H5P_DEFAULT) > 0;
            bool split = false;
            for (int s = 0; s < 3 && !split; s++) {
                if (H5Lexists(f, split_names[s], H5P_DEFAULT) <= 0) continue;
                hid_t g = H5Gopen2(f, split_names[s], H5P_DEFAULT);
                split = g >= 0 && H5Lexists(g, "signals", H5P_DEFAULT) > 0;
                if (g >= 0) H5Gclose(g);
            }
            yes = !atoms && (flat || split);
            H5Fclose(f);
        }
    }
    H5Eclear2(H5E_DEFAULT);
    h5ml__h5_restore(&q);
    return yes;
}

int h5ml_split_indices(const int64_t *labels, int64_t n, const double ratios[3], int stratify, uint64_t seed, int64_t *order[3],
                       int64_t count[3], char *msg, size_t msglen)
{
    char local[256];
    if (order == NULL || count == NULL || (n > 0 && labels == NULL)) return H5ML_ERR_ARG;
    for (int s = 0; s < 3; s++) order[s] = NULL;
    double r[3];
    pick_ratios(ratios, r);
    int rc = h5ml__split_assign(labels, n, r, stratify, seed, order, count, msg ? msg : local, msg ? msglen : sizeof local);
    return rc;
}
