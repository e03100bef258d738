/* The signal-cache writer: flat and split layouts (h5ml.h, section 6). Signals go through
 * the chunk pipeline of the atomistic writer (chunkcol.c: whole chunks filtered on the
 * pool's threads and handed to HDF5 directly); a new file is made under a temporary name
 * and moved into place when finalized, so nothing half-written is ever at the path. */
#define _GNU_SOURCE
#include "chunkcol.h"
#include "pool.h"
#include "signals_priv.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One part of the file: the root of a flat file, or one split group. */
typedef struct part {
    hid_t group;
    column signals, labels, indices;
    bool has_indices;
    hid_t meta;          /* metadata dataset or -1 (made at the first non-empty entry) */
    char **pending;      /* metadata of rows [meta_written, n) */
    int64_t meta_written, pending_cap;
    bool meta_any;
    int64_t n, n0;       /* rows now and at open */
} part;

struct h5ml_sigwriter {
    h5ml_base base;
    int64_t opt[H5ML_SIG__COUNT];
    char *path, *tmp_path, *cache_name;
    bool is_open, finalized, appending, replacing;
    int layout;
    int64_t length, chunk_rows;
    int64_t expect[3];   /* signals each part will hold (h5ml_sigwriter_expect) */
    bool expect_any;     /* some were given: the others are 0, not unknown */
    hid_t file;
    part parts[3];
    int nparts;
    pipeline pipe;
    colsink sink;
    h5ml_attrlist attrs;
    char **class_names;
    int nclasses;
    float *f32;          /* add_f64's conversion buffer */
    size_t f32_cap;
    const int *ioerr;    /* the driver's failed-write errno while the file is open (safefile.c) */
    bool broken;         /* a write failed: the file is never finalized */
};

static const char *const split_names[3] = { "train", "val", "test" };

/* Attributes h5ml writes itself; the ones a caller may set are listed in h5ml.h. */
static const char *const own_attrs[] = { "num_signals", "signal_length", "cached_at", "compression", "compression_level",
                                         "format", "format_version", "h5ml_version", "class_names", NULL };

typedef struct opt_bounds { int64_t lo, hi, def; const char *name; } opt_bounds;

static const opt_bounds bounds[H5ML_SIG__COUNT] = {
    [H5ML_SIG_COMPRESSION] = { 0, 3, H5ML_COMPRESS_GZIP, "compression" },
    [H5ML_SIG_LEVEL] = { 0, 9, 4, "level" },
    [H5ML_SIG_SHUFFLE] = { -1, 1, 1, "shuffle" },
    [H5ML_SIG_CHUNK_ROWS] = { 0, 1 << 24, 0, "chunk_rows" },
    [H5ML_SIG_THREADS] = { 0, 256, 0, "threads" },
    [H5ML_SIG_ALLOW_NONFINITE] = { -1, 1, -1, "allow_nonfinite" },
    [H5ML_SIG_NUM_CLASSES] = { 0, INT64_C(1) << 40, 0, "num_classes" },
    [H5ML_SIG_PROFILE] = { 0, H5ML_PROFILE_NONE, H5ML_PROFILE_DEFAULT, "profile" },
};

static int64_t opt(const h5ml_sigwriter *w, h5ml_sig_option o) { return w->opt[o] ? w->opt[o] : bounds[o].def; }

/* After a call that may have written (safefile.c stops writing at the first failed write and
 * lets HDF5 believe in success): rc, or ERR_IO naming the file and the system's reason. */
static int io_check(h5ml_sigwriter *w, int rc, int e)
{
    if (e == 0 && w->ioerr) e = __atomic_load_n(w->ioerr, __ATOMIC_RELAXED);
    if (e == 0 && !w->broken) return rc;
    if (!w->broken && e) h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot write: %s", w->path, strerror(e));
    w->broken = true;
    return w->base.code ? w->base.code : H5ML_ERR_IO;
}

h5ml_sigwriter *h5ml_sigwriter_new(void)
{
    h5ml_sigwriter *w = calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    h5ml__base_init(&w->base);
    w->file = H5I_INVALID_HID;
    for (int k = 0; k < 3; k++) w->parts[k].group = w->parts[k].meta = H5I_INVALID_HID;
    return w;
}

int h5ml_sigwriter_set(h5ml_sigwriter *w, h5ml_sig_option o, int64_t value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "options must be set before the writer is opened");
    if (o <= 0 || o >= H5ML_SIG__COUNT) return h5ml__fail(&w->base, H5ML_ERR_ARG, "unknown signal writer option %d", (int)o);
    const opt_bounds *b = &bounds[o];
    if (value < b->lo || value > b->hi)
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "%s must be between %lld and %lld (got %lld)", b->name, (long long)b->lo,
                          (long long)b->hi, (long long)value);
    w->opt[o] = value;
    return h5ml__ok(&w->base);
}

int h5ml_sigwriter_expect(h5ml_sigwriter *w, int split, int64_t count)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "expected counts must be given before the writer is opened");
    if (split < H5ML_NO_SPLIT || split > H5ML_TEST || count < 0)
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "expected count %lld of split %d is not valid", (long long)count, split);
    w->expect[split < 0 ? 0 : split] = count;
    w->expect_any = true;
    return h5ml__ok(&w->base);
}

static const char *codec_name(pipe_codec c) { return c == PIPE_GZIP ? "gzip" : c == PIPE_LZF ? "lzf" : "none"; }

static void pipeline_from_options(h5ml_sigwriter *w)
{
    h5ml__pipeline_resolve(&w->pipe, w->opt[H5ML_SIG_PROFILE], w->opt[H5ML_SIG_COMPRESSION], w->opt[H5ML_SIG_LEVEL],
                           w->opt[H5ML_SIG_SHUFFLE]);
}

/* Signals per chunk. Compressed: about 256 KiB of them (a whole signal at least), so one
 * random read decompresses little more than the signal it wants. Uncompressed: about 4 MiB,
 * since a reader takes just the rows it wants from an unfiltered chunk, and big chunks make
 * big writes. */
static int64_t default_chunk_rows(int64_t length, bool filtered)
{
    int64_t rows = (filtered ? 256 * 1024 : 4 * 1024 * 1024) / (4 * length);
    return rows < 1 ? 1 : rows;
}

/* ---- creating the layout --------------------------------------------------------------- */

static hid_t make_dataset(h5ml_sigwriter *w, hid_t loc, const char *name, hid_t type, int rank, int64_t cols,
                          int64_t chunk_rows, bool filtered)
{
    hsize_t dims[2] = { 0, (hsize_t)cols }, maxd[2] = { H5S_UNLIMITED, (hsize_t)cols }, chunk[2] = { (hsize_t)chunk_rows, (hsize_t)cols };
    hid_t space = H5Screate_simple(rank, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (H5Tis_variable_str(type) <= 0) H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
    if (filtered && w->pipe.shuffle) H5Pset_shuffle(dcpl);
    if (filtered && w->pipe.codec == PIPE_GZIP) H5Pset_deflate(dcpl, (unsigned)w->pipe.level);
    if (filtered && w->pipe.codec == PIPE_LZF) H5Pset_filter(dcpl, H5ML_FILTER_LZF, H5Z_FLAG_OPTIONAL, 0, NULL);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) h5ml__h5_save();
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

static int attach(h5ml_sigwriter *w, column *c, hid_t d, hid_t memtype, int64_t rows, const char *name)
{
    char why[256];
    if (d < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot make %s", w->path, name);
    if (h5ml__col_attach(c, d, memtype, rows, why, sizeof why) < 0) {
        H5Dclose(d);
        return h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: cannot append to %s: %s", w->path, name, why);
    }
    return H5ML_OK;
}

static int create_part(h5ml_sigwriter *w, int k, part *p, hid_t loc, bool indices)
{
    /* A part known to hold fewer signals than a chunk gets a chunk of just those (at least
     * one): an unfiltered chunk is stored whole, so 16 signals would otherwise take 4 MiB. */
    int64_t want = w->expect_any ? (w->expect[k] > 0 ? w->expect[k] : 1) : INT64_MAX; /* signals, at least 1 */
    int64_t rows = w->chunk_rows;
    if (!w->opt[H5ML_SIG_CHUNK_ROWS] && want < rows) rows = want;
    /* labels and indices are unfiltered, so every chunk is stored whole: small ones */
    int64_t idx_rows = rows > 1024 ? rows : 1024;
    if (want < idx_rows) idx_rows = want;
    int rc = attach(w, &p->signals, make_dataset(w, loc, "signals", H5T_IEEE_F32LE, 2, w->length, rows, true),
                    H5T_NATIVE_FLOAT, 0, "signals");
    if (rc == 0)
        rc = attach(w, &p->labels, make_dataset(w, loc, "labels", H5T_STD_I64LE, 1, 1, idx_rows, false), H5T_NATIVE_INT64, 0,
                    "labels");
    if (rc == 0 && indices)
        rc = attach(w, &p->indices, make_dataset(w, loc, "indices", H5T_STD_I64LE, 1, 1, idx_rows, false), H5T_NATIVE_INT64,
                    0, "indices");
    p->has_indices = indices;
    return rc;
}

static int create_layout(h5ml_sigwriter *w)
{
    w->nparts = w->layout == H5ML_SIG_SPLIT ? 3 : 1;
    for (int k = 0; k < w->nparts; k++) {
        part *p = &w->parts[k];
        if (w->layout == H5ML_SIG_SPLIT) {
            p->group = H5Gcreate2(w->file, split_names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (p->group < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot make /%s", w->path, split_names[k]);
        }
        int rc = create_part(w, k, p, w->layout == H5ML_SIG_SPLIT ? p->group : w->file, w->layout == H5ML_SIG_SPLIT);
        if (rc) return rc;
    }
    return H5ML_OK;
}

static void start_pool(h5ml_sigwriter *w)
{
    int64_t threads = opt(w, H5ML_SIG_THREADS);
    if (threads == 0) threads = h5ml__default_threads();
    if (threads > 1 && w->pipe.codec != PIPE_NONE) w->sink.pool = h5ml__pool_new((int)threads);
}

static char *name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && dot != name) *dot = 0;
    return name;
}

static void reset(h5ml_sigwriter *w);

int h5ml_sigwriter_create(h5ml_sigwriter *w, const char *path, h5ml_sig_layout layout, int64_t length,
                          const char *cache_name)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (path == NULL || !*path) return h5ml__fail(&w->base, H5ML_ERR_ARG, "no output path given");
    if (w->is_open || w->path) return h5ml__fail(&w->base, H5ML_ERR_STATE, "this writer was already opened");
    if (layout != H5ML_SIG_FLAT && layout != H5ML_SIG_SPLIT) return h5ml__fail(&w->base, H5ML_ERR_ARG, "unknown layout %d", (int)layout);
    if (length < 1) return h5ml__fail(&w->base, H5ML_ERR_ARG, "%s: signal length must be at least 1 (got %lld)", path, (long long)length);
    if (h5ml__init() < 0) return h5ml__fail(&w->base, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    w->path = strdup(path);
    w->tmp_path = h5ml__tmp_name(path);
    w->cache_name = cache_name ? strdup(cache_name) : name_from_path(path);
    w->layout = layout;
    w->length = length;
    pipeline_from_options(w);
    int64_t rows = opt(w, H5ML_SIG_CHUNK_ROWS);
    w->chunk_rows = rows ? rows : default_chunk_rows(length, w->pipe.codec != PIPE_NONE);
    struct stat st;
    w->replacing = stat(path, &st) == 0;
    int rc = H5ML_OK;
    if (!w->path || !w->tmp_path || !w->cache_name) rc = h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    if (rc == H5ML_OK && w->replacing && S_ISDIR(st.st_mode)) rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: is a directory", path);
    if (rc == H5ML_OK) {
        hid_t fapl = h5ml__fapl_write();
        w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        H5Pclose(fapl);
        if (w->file < 0) rc = h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
        else w->ioerr = h5ml__safe_error_flag(w->file);
    }
    if (rc == H5ML_OK) rc = io_check(w, create_layout(w), 0);
    if (rc == H5ML_OK) {
        start_pool(w);
        w->is_open = true;
        h5ml__ok(&w->base);
    } else {
        reset(w);
        if (w->tmp_path) unlink(w->tmp_path);
    }
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- appending to a flat cache ----------------------------------------------------------- */

static int64_t dataset_rows(hid_t d)
{
    hsize_t dims[3] = { 0, 0, 0 };
    return h5ml__dims(d, dims) < 1 ? -1 : (int64_t)dims[0];
}

static int open_flat(h5ml_sigwriter *w)
{
    part *p = &w->parts[0];
    if (H5Lexists(w->file, "train", H5P_DEFAULT) > 0)
        return h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: a split cache cannot be appended to (only flat caches)", w->path);
    if (H5Lexists(w->file, "signals", H5P_DEFAULT) <= 0 || H5Lexists(w->file, "labels", H5P_DEFAULT) <= 0)
        return h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: not a signal cache (no /signals and /labels)", w->path);
    hid_t ds = H5Dopen2(w->file, "signals", H5P_DEFAULT), dl = H5Dopen2(w->file, "labels", H5P_DEFAULT);
    hsize_t dims[3] = { 0, 0, 0 };
    int rank = ds >= 0 ? h5ml__dims(ds, dims) : -1;
    int64_t n = rank == 2 ? (int64_t)dims[0] : -1, nl = dl >= 0 ? dataset_rows(dl) : -1;
    if (rank != 2 || n != nl) {
        if (ds >= 0) H5Dclose(ds);
        if (dl >= 0) H5Dclose(dl);
        return h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: /signals and /labels do not line up (%lld and %lld rows)", w->path,
                          (long long)n, (long long)nl);
    }
    w->length = (int64_t)dims[1];
    int rc = attach(w, &p->signals, ds, H5T_NATIVE_FLOAT, n, "signals");
    if (rc == 0) rc = attach(w, &p->labels, dl, H5T_NATIVE_INT64, n, "labels");
    if (rc) return rc;
    if (H5Lexists(w->file, "metadata", H5P_DEFAULT) > 0) {
        p->meta = H5Dopen2(w->file, "metadata", H5P_DEFAULT);
        p->meta_any = true;
    }
    p->n = p->n0 = p->meta_written = n;
    w->pipe = p->signals.pipe;
    w->chunk_rows = p->signals.chunk_rows;
    w->nparts = 1;
    return H5ML_OK;
}

int h5ml_sigwriter_append(h5ml_sigwriter *w, const char *path)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (path == NULL || !*path) return h5ml__fail(&w->base, H5ML_ERR_ARG, "no path given");
    if (w->is_open || w->path) return h5ml__fail(&w->base, H5ML_ERR_STATE, "this writer was already opened");
    if (h5ml__init() < 0) return h5ml__fail(&w->base, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    w->path = strdup(path);
    w->appending = true;
    w->layout = H5ML_SIG_FLAT;
    int rc = H5ML_OK;
    if (access(path, F_OK) != 0) rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: %s", path, strerror(errno));
    else if (H5Fis_hdf5(path) <= 0) rc = h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: not an HDF5 file", path);
    hid_t fapl = h5ml__fapl_write();
    if (rc == H5ML_OK && (w->file = H5Fopen(path, H5F_ACC_RDWR, fapl)) < 0)
        rc = h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot open for appending", path);
    H5Pclose(fapl);
    if (rc == H5ML_OK) w->ioerr = h5ml__safe_error_flag(w->file);
    if (rc == H5ML_OK) rc = open_flat(w);
    if (rc == H5ML_OK) {
        char *name = h5ml__attr_get_str(w->file, "cache_name");
        w->cache_name = name ? name : name_from_path(path);
        start_pool(w);
        w->is_open = true;
        h5ml__ok(&w->base);
    } else {
        reset(w);
    }
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- adding ---------------------------------------------------------------------------------- */

static bool json_object_ok(const char *json)
{
    if (json == NULL || !*json) return true;
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    bool ok = v && json_is_object(v);
    json_decref(v);
    return ok;
}

/* The finite check of a big add runs on several threads: it is a pass over memory that
 * the write (straight from the caller's array) makes again. */
typedef struct scan {
    const float *sig;
    const double *sig64;
    int64_t count, length, next, first;
} scan;

static bool signal_nonfinite(const scan *s, int64_t k)
{
    return s->sig64 ? h5ml__any_nonfinite(s->sig64 + k * s->length, s->length)
                    : h5ml__any_nonfinite_f32(s->sig + k * s->length, s->length);
}

static void *scan_worker(void *arg)
{
    enum { STEP = 8 };
    scan *s = arg;
    for (;;) {
        int64_t at = __atomic_fetch_add(&s->next, STEP, __ATOMIC_RELAXED);
        if (at >= s->count || at >= __atomic_load_n(&s->first, __ATOMIC_RELAXED)) break;
        for (int64_t k = at; k < at + STEP && k < s->count; k++)
            if (signal_nonfinite(s, k)) {
                int64_t cur = __atomic_load_n(&s->first, __ATOMIC_RELAXED);
                while (k < cur && !__atomic_compare_exchange_n(&s->first, &cur, k, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                }
                break;
            }
    }
    return NULL;
}

/* The first signal with a NaN or Inf sample, or count. */
static int64_t first_nonfinite_signal(const float *sig, const double *sig64, int64_t count, int64_t length, int threads)
{
    scan s = { sig, sig64, count, length, 0, count };
    if (threads <= 0) threads = h5ml__default_threads();
    if (count * length < (1 << 22)) threads = 1; /* under 16 MiB: not worth a thread */
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++)
        if (pthread_create(&tid[started], NULL, scan_worker, &s) == 0) started++;
    scan_worker(&s);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    return s.first;
}

/* Everything an add is checked for, before anything is written. */
static int check_add(h5ml_sigwriter *w, int split, int64_t count, const float *sig, const double *sig64, const int64_t *labels,
                     const char *const *meta)
{
    if (!w->is_open)
        return h5ml__fail(&w->base, H5ML_ERR_STATE, w->finalized ? "Cannot add signals after finalize() has been called"
                                                                  : "the writer is not open");
    if (count < 0 || (count > 0 && ((!sig && !sig64) || !labels)))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "signals and labels are required (count %lld)", (long long)count);
    if (w->layout == H5ML_SIG_FLAT && split != H5ML_NO_SPLIT)
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "%s: a flat cache has no splits (got split %d)", w->path, split);
    if (w->layout == H5ML_SIG_SPLIT && (split < 0 || split > 2))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "%s: split must be train (0), val (1) or test (2) (got %d)", w->path, split);
    int64_t classes = opt(w, H5ML_SIG_NUM_CLASSES);
    bool finite_only = opt(w, H5ML_SIG_ALLOW_NONFINITE) < 0;
    for (int64_t k = 0; k < count; k++) {
        if (labels[k] < 0 && classes > 0)
            return h5ml__fail(&w->base, H5ML_ERR_VALUE, "label %lld of signal %lld is outside the %lld classes [0, %lld)",
                              (long long)labels[k], (long long)k, (long long)classes, (long long)classes);
        if (classes > 0 && labels[k] >= classes)
            return h5ml__fail(&w->base, H5ML_ERR_VALUE, "label %lld of signal %lld is outside the %lld classes [0, %lld)",
                              (long long)labels[k], (long long)k, (long long)classes, (long long)classes);
        if (meta && !json_object_ok(meta[k]))
            return h5ml__fail(&w->base, H5ML_ERR_VALUE, "metadata of signal %lld is not a JSON object", (long long)k);
    }
    if (finite_only) {
        int64_t k = first_nonfinite_signal(sig, sig64, count, w->length, (int)opt(w, H5ML_SIG_THREADS));
        if (k < count) {
            int64_t bad = 0;
            for (int64_t i = 0; i < w->length; i++) {
                double v = sig64 ? sig64[k * w->length + i] : (double)sig[k * w->length + i];
                if (!isfinite(v)) {
                    bad = i;
                    break;
                }
            }
            double v = sig64 ? sig64[k * w->length + bad] : (double)sig[k * w->length + bad];
            return h5ml__fail(&w->base, H5ML_ERR_VALUE, "signal %lld of the batch: sample %lld is %s", (long long)k,
                              (long long)bad, isnan(v) ? "NaN" : "Inf");
        }
    }
    return H5ML_OK;
}

static int make_meta(h5ml_sigwriter *w, part *p)
{
    hid_t t = h5ml__vlen_str_type();
    hid_t loc = p->group >= 0 ? p->group : w->file;
    int64_t rows = w->chunk_rows > 256 ? w->chunk_rows : 256;
    p->meta = make_dataset(w, loc, "metadata", t, 1, 1, rows, w->pipe.codec == PIPE_GZIP);
    H5Tclose(t);
    if (p->meta < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot make a metadata dataset", w->path);
    return H5ML_OK;
}

/* Writes the pending metadata of rows [meta_written, n). */
static int flush_meta(h5ml_sigwriter *w, part *p)
{
    int64_t k = p->n - p->meta_written;
    if (k == 0) return H5ML_OK;
    int rc = H5ML_OK;
    if (p->meta_any) {
        if (p->meta < 0 && (rc = make_meta(w, p)) != 0) return rc;
        hsize_t dim = (hsize_t)p->n, off = (hsize_t)p->meta_written, cnt = (hsize_t)k;
        hid_t t = h5ml__vlen_str_type();
        herr_t e = H5Dset_extent(p->meta, &dim);
        hid_t fs = H5Dget_space(p->meta), ms = H5Screate_simple(1, &cnt, NULL);
        if (e >= 0) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
        if (e >= 0) e = H5Dwrite(p->meta, t, ms, fs, H5P_DEFAULT, p->pending);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Tclose(t);
        if (e < 0) rc = h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write metadata", w->path);
    }
    for (int64_t i = 0; i < k; i++) free(p->pending[i]);
    p->meta_written = p->n;
    return rc;
}

static int push_meta(h5ml_sigwriter *w, part *p, const char *const *meta, int64_t count)
{
    int64_t have = p->n - p->meta_written;
    if (have + count > p->pending_cap) {
        int64_t cap = p->pending_cap ? p->pending_cap : 256;
        while (cap < have + count) cap *= 2;
        char **q = realloc(p->pending, sizeof *q * (size_t)cap);
        if (q == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        p->pending = q;
        p->pending_cap = cap;
    }
    for (int64_t k = 0; k < count; k++) {
        const char *m = meta ? meta[k] : NULL;
        char *copy = m && *m ? strdup(m) : NULL;
        if (m && *m && copy == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        if (copy) p->meta_any = true;
        p->pending[have + k] = copy;
    }
    return H5ML_OK;
}

static int add_impl(h5ml_sigwriter *w, int split, int64_t count, const float *sig, const double *sig64, const int64_t *labels,
                    const char *const *meta, const int64_t *indices)
{
    int rc = check_add(w, split, count, sig, sig64, labels, meta);
    if (rc || count == 0) return rc;
    part *p = &w->parts[split < 0 ? 0 : split];
    if (sig64) { /* converted in pieces, so memory stays bounded whatever the count */
        enum { PIECE = 1 << 20 };
        int64_t rows = PIECE / w->length > 0 ? PIECE / w->length : 1;
        size_t need = (size_t)((rows < count ? rows : count) * w->length);
        if (need > w->f32_cap) {
            float *f = realloc(w->f32, sizeof *f * need);
            if (f == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
            w->f32 = f;
            w->f32_cap = need;
        }
        for (int64_t at = 0; at < count; at += rows) {
            int64_t k = count - at < rows ? count - at : rows;
            for (int64_t i = 0; i < k * w->length; i++) w->f32[i] = (float)sig64[at * w->length + i];
            if (h5ml__col_append(&p->signals, &w->sink, w->f32, k) < 0)
                return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write signals", w->path);
        }
    } else if (h5ml__col_append(&p->signals, &w->sink, sig, count) < 0) {
        return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write signals", w->path);
    }
    if (h5ml__col_append(&p->labels, &w->sink, labels, count) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write labels", w->path);
    if (p->has_indices) {
        enum { ROWS = 1024 };
        int64_t run[ROWS];
        for (int64_t at = 0; at < count; at += ROWS) {
            int64_t k = count - at < ROWS ? count - at : ROWS;
            for (int64_t i = 0; i < k; i++) run[i] = indices ? indices[at + i] : p->n + at + i;
            if (h5ml__col_append(&p->indices, &w->sink, run, k) < 0)
                return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write indices", w->path);
        }
    }
    if ((rc = push_meta(w, p, meta, count)) != 0) return rc;
    p->n += count;
    if (p->n - p->meta_written >= 4096) rc = flush_meta(w, p);
    return rc;
}

static int add_entry(h5ml_sigwriter *w, int split, int64_t count, const float *sig, const double *sig64, const int64_t *labels,
                     const char *const *meta, const int64_t *indices)
{
    if (w == NULL) return H5ML_ERR_ARG;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = io_check(w, w->broken ? H5ML_OK : add_impl(w, split, count, sig, sig64, labels, meta, indices), 0);
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

int h5ml_sigwriter_add(h5ml_sigwriter *w, int split, int64_t count, const float *signals, const int64_t *labels,
                       const char *const *meta, const int64_t *indices)
{
    return add_entry(w, split, count, signals, NULL, labels, meta, indices);
}

int h5ml_sigwriter_add_f64(h5ml_sigwriter *w, int split, int64_t count, const double *signals, const int64_t *labels,
                           const char *const *meta, const int64_t *indices)
{
    return add_entry(w, split, count, NULL, signals, labels, meta, indices);
}

/* ---- attributes ---------------------------------------------------------------------------- */

static int attr_key_ok(h5ml_sigwriter *w, const char *key)
{
    h5ml__ok(&w->base);
    if (key == NULL || !*key || strchr(key, '/'))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "invalid attribute name '%s' (empty or contains '/')", key ? key : "");
    /* As for the atomistic writer's metadata: what is not UTF-8 vanishes from h5ml_sigreader_attrs. */
    if (!h5ml__utf8_ok(key)) return h5ml__fail(&w->base, H5ML_ERR_ARG, "attribute name '%s' is not valid UTF-8", key);
    for (const char *const *r = own_attrs; *r; r++)
        if (strcmp(*r, key) == 0) return h5ml__fail(&w->base, H5ML_ERR_ARG, "attribute '%s' is written by h5ml itself", key);
    if (w->finalized) return h5ml__fail(&w->base, H5ML_ERR_STATE, "attributes must be set before finalize()");
    return H5ML_OK;
}

static int attr_stored(h5ml_sigwriter *w, int stored)
{
    return stored == 0 ? h5ml__ok(&w->base) : h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
}

int h5ml_sigwriter_attr_string(h5ml_sigwriter *w, const char *key, const char *value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (value && !h5ml__utf8_ok(value))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "attribute '%s': the value is not valid UTF-8", key ? key : "");
    if (key && strcmp(key, "cache_name") == 0) { /* the one root attribute h5ml writes but the caller names */
        char *name = strdup(value ? value : "");
        if (name == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        free(w->cache_name);
        w->cache_name = name;
        return h5ml__ok(&w->base);
    }
    int rc = attr_key_ok(w, key);
    return rc ? rc : attr_stored(w, h5ml__attrs_str(&w->attrs, key, value));
}

int h5ml_sigwriter_attr_int(h5ml_sigwriter *w, const char *key, int64_t value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = attr_key_ok(w, key);
    return rc ? rc : attr_stored(w, h5ml__attrs_int(&w->attrs, key, value));
}

int h5ml_sigwriter_attr_double(h5ml_sigwriter *w, const char *key, double value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = attr_key_ok(w, key);
    return rc ? rc : attr_stored(w, h5ml__attrs_double(&w->attrs, key, value));
}

int h5ml_sigwriter_attr_bool(h5ml_sigwriter *w, const char *key, int value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = attr_key_ok(w, key);
    return rc ? rc : attr_stored(w, h5ml__attrs_bool(&w->attrs, key, value));
}

int h5ml_sigwriter_attr_doubles(h5ml_sigwriter *w, const char *key, const double *v, size_t n)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = attr_key_ok(w, key);
    return rc ? rc : attr_stored(w, h5ml__attrs_doubles(&w->attrs, key, v, n));
}

int h5ml_sigwriter_class_names(h5ml_sigwriter *w, const char *const *names, int n)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (n < 1 || names == NULL) return h5ml__fail(&w->base, H5ML_ERR_ARG, "class names: at least one name is needed");
    for (int k = 0; k < n; k++)
        if (names[k] && !h5ml__utf8_ok(names[k])) return h5ml__fail(&w->base, H5ML_ERR_ARG, "class name %d is not valid UTF-8", k);
    char **copy = calloc((size_t)n, sizeof *copy);
    for (int k = 0; copy && k < n; k++)
        if ((copy[k] = strdup(names[k] ? names[k] : "")) == NULL) {
            for (int j = 0; j < k; j++) free(copy[j]);
            free(copy);
            copy = NULL;
        }
    if (copy == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    for (int k = 0; k < w->nclasses; k++) free(w->class_names[k]);
    free(w->class_names);
    w->class_names = copy;
    w->nclasses = n;
    return h5ml__ok(&w->base);
}

/* ---- finalize, rollback, close ----------------------------------------------------------------- */

static int write_root_attrs(h5ml_sigwriter *w)
{
    hid_t f = w->file;
    int64_t total = 0;
    for (int k = 0; k < w->nparts; k++) total += w->parts[k].n;
    char ts[32];
    h5ml__iso8601(ts);
    int rc = 0;
    rc |= h5ml__attr_str(f, "cache_name", w->cache_name ? w->cache_name : "");
    rc |= h5ml__attr_i64(f, "num_signals", total);
    rc |= h5ml__attr_i64(f, "signal_length", w->length);
    rc |= h5ml__attr_str(f, "cached_at", ts);
    rc |= h5ml__attr_str(f, "compression", codec_name(w->pipe.codec));
    rc |= h5ml__attr_i64(f, "compression_level", w->pipe.codec == PIPE_GZIP ? w->pipe.level : 0);
    rc |= h5ml__attr_str(f, "format", "h5ml-signals");
    rc |= h5ml__attr_str(f, "format_version", "1.0");
    rc |= h5ml__attr_str(f, "h5ml_version", h5ml_version());
    if (w->nclasses > 0) {
        rc |= h5ml__attr_strs(f, "class_names", (const char *const *)w->class_names, (size_t)w->nclasses);
        rc |= h5ml__attr_i64(f, "num_classes", w->nclasses);
    }
    rc |= h5ml__attrs_write(f, &w->attrs);
    for (int k = 0; k < w->nparts && w->layout == H5ML_SIG_SPLIT; k++)
        rc |= h5ml__attr_i64(w->parts[k].group, "num_samples", w->parts[k].n);
    return rc;
}

static int finalize_impl(h5ml_sigwriter *w)
{
    /* Metadata in one split means a metadata dataset in every split, empty ones included,
     * so readers find the same names in each. */
    bool any_meta = false;
    for (int k = 0; k < w->nparts; k++) any_meta |= w->parts[k].meta_any;
    for (int k = 0; k < w->nparts && any_meta; k++) {
        part *p = &w->parts[k];
        p->meta_any = true;
        if (p->meta < 0 && p->n == p->meta_written) {
            int rc = make_meta(w, p);
            hsize_t dim = (hsize_t)p->n;
            if (rc == H5ML_OK && H5Dset_extent(p->meta, &dim) < 0) rc = h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot size metadata", w->path);
            if (rc) return rc;
        }
    }
    for (int k = 0; k < w->nparts; k++) {
        part *p = &w->parts[k];
        if (h5ml__col_flush(&p->signals, &w->sink, true) < 0 || h5ml__col_flush(&p->labels, &w->sink, true) < 0 ||
            (p->has_indices && h5ml__col_flush(&p->indices, &w->sink, true) < 0))
            return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write", w->path);
    }
    if (h5ml__sink_drain(&w->sink) < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write chunks", w->path);
    for (int k = 0; k < w->nparts; k++) {
        int rc = flush_meta(w, &w->parts[k]);
        if (rc) return rc;
    }
    if (write_root_attrs(w) < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write attributes", w->path);
    return H5ML_OK;
}

static void free_part(part *p)
{
    h5ml__col_free(&p->signals);
    h5ml__col_free(&p->labels);
    h5ml__col_free(&p->indices);
    if (p->meta >= 0) H5Dclose(p->meta);
    if (p->group >= 0) H5Gclose(p->group);
    for (int64_t i = p->meta_written; i < p->n && p->pending; i++) free(p->pending[i - p->meta_written]);
    free(p->pending);
    int64_t n = p->n, n0 = p->n0;
    memset(p, 0, sizeof *p);
    p->meta = p->group = H5I_INVALID_HID;
    p->n = n;
    p->n0 = n0;
}

/* Closes everything HDF5 holds (buffers not yet written are dropped). */
static void reset(h5ml_sigwriter *w)
{
    h5ml__sink_free(&w->sink);
    for (int k = 0; k < 3; k++) free_part(&w->parts[k]);
    if (w->file >= 0) H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    w->ioerr = NULL;
    w->is_open = false;
}

int h5ml_sigwriter_finalize(h5ml_sigwriter *w)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->finalized) {
        h5ml__warn(&w->base, "%s: finalize() was already called", w->path ? w->path : "writer");
        return h5ml__ok(&w->base);
    }
    if (!w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = io_check(w, w->broken ? H5ML_OK : finalize_impl(w), 0);
    reset(w);
    /* The file's last writes happen as it closes; a file whose writing failed never takes
     * the place of another. */
    if (!w->broken) rc = io_check(w, rc, h5ml__safe_path_error(w->appending ? w->path : w->tmp_path));
    if (rc == H5ML_OK && !w->appending && h5ml__move_into_place(w->tmp_path, w->path, w->replacing) < 0)
        rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot create: %s", w->path, strerror(errno));
    if (rc != H5ML_OK && !w->appending) unlink(w->tmp_path);
    w->finalized = true;
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

static int rollback_append(h5ml_sigwriter *w)
{
    hid_t fapl = h5ml__fapl_write();
    hid_t f = H5Fopen(w->path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot reopen to roll back", w->path);
    int64_t n0 = w->parts[0].n0;
    const char *names[] = { "signals", "labels", "metadata" };
    int rc = H5ML_OK;
    for (int k = 0; k < 3; k++) {
        if (H5Lexists(f, names[k], H5P_DEFAULT) <= 0) continue;
        hid_t d = H5Dopen2(f, names[k], H5P_DEFAULT);
        hsize_t dims[3] = { 0, 0, 0 };
        int rank = d >= 0 ? h5ml__dims(d, dims) : -1;
        dims[0] = (hsize_t)n0;
        if (rank < 1 || h5ml__shrink_dataset(d, dims) < 0) rc = h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot cut /%s back", w->path, names[k]);
        if (d >= 0) H5Dclose(d);
    }
    if (H5Fclose(f) < 0 && rc == H5ML_OK) rc = h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot close", w->path);
    int e = h5ml__safe_path_error(w->path);
    if (e && rc == H5ML_OK) rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot roll back: %s", w->path, strerror(e));
    return rc;
}

int h5ml_sigwriter_rollback(h5ml_sigwriter *w)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (!w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
    h5ml_base saved = w->base;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    for (int k = 0; k < 3; k++) w->parts[k].meta_any = false; /* drop pending metadata unwritten */
    reset(w);
    int rc = w->appending ? rollback_append(w) : H5ML_OK;
    if (!w->appending) unlink(w->tmp_path);
    w->finalized = true;
    h5ml__h5_restore(&q);
    if (rc == H5ML_OK) w->base = saved;
    return rc;
}

int h5ml_sigwriter_close(h5ml_sigwriter *w)
{
    if (w == NULL) return H5ML_OK;
    int rc = w->is_open ? h5ml_sigwriter_finalize(w) : H5ML_OK;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    reset(w);
    h5ml__h5_restore(&q);
    h5ml__attrs_free(&w->attrs);
    for (int k = 0; k < w->nclasses; k++) free(w->class_names[k]);
    free(w->class_names);
    free(w->f32);
    free(w->cache_name);
    free(w->tmp_path);
    free(w->path);
    free(w);
    return rc;
}

void h5ml_sigwriter_get_stats(const h5ml_sigwriter *w, h5ml_sigwriter_stats *out)
{
    memset(out, 0, sizeof *out);
    if (w == NULL) return;
    for (int k = 0; k < 3; k++) {
        out->count[k] = w->parts[k].n;
        out->total += w->parts[k].n;
    }
    out->length = w->length;
    out->failed = w->broken;
}
