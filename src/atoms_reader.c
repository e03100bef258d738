/* The atomistic dataset reader: schema checks at open (so no later read can go out of
 * bounds), structure and range reads, per-structure and file metadata. */
#define _GNU_SOURCE
#include "atoms_priv.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Lengths that disagree are what an interrupted writer can leave: say how to fix it. */
#define REPAIR_HINT "; if a writer was interrupted, 'h5ml repair FILE' cuts the file back to its last consistent state"

struct h5ml_reader {
    h5ml_base base;
    char *path;
    hid_t file;
    hid_t dset[COL_COUNT];
    hid_t info;
    hid_t mt_pbc, mt_mask; /* memory types of the bool datasets (enum or integer in the file) */
    int64_t n, m;
    int64_t tail;    /* structures of an unfinished tail ignored at open (see open_impl) */
    int64_t cache_bytes; /* decompressed-chunk memory budget (h5ml_reader_set_cache) */
    h5ml_direct *direct; /* direct chunk reads, or NULL */
    int threads;
    bool apart;      /* open the file apart from other opens of it in the process (refresh) */
    int64_t *splits; /* n+1 */
    /* storage of h5ml_reader_get */
    int64_t cap;
    int64_t *numbers;
    double *positions;
    float *forces;
    char *info_json;
};

h5ml_reader *h5ml_reader_new(void)
{
    h5ml_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    h5ml__base_init(&r->base);
    r->file = r->info = r->mt_pbc = r->mt_mask = H5I_INVALID_HID;
    for (int c = 0; c < COL_COUNT; c++) r->dset[c] = H5I_INVALID_HID;
    r->cache_bytes = INT64_C(256) << 20;
    return r;
}

int h5ml_reader_set_cache(h5ml_reader *r, int64_t bytes)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (bytes < 0) return h5ml__fail(&r->base, H5ML_ERR_ARG, "cache size must be >= 0 (got %lld)", (long long)bytes);
    r->cache_bytes = bytes;
    return h5ml__ok(&r->base);
}

static void close_file(h5ml_reader *r)
{
    for (int c = 0; c < COL_COUNT; c++)
        if (r->dset[c] >= 0) H5Dclose(r->dset[c]);
    if (r->info >= 0) H5Dclose(r->info);
    if (r->file >= 0) H5Fclose(r->file);
    if (r->mt_pbc >= 0) H5Tclose(r->mt_pbc);
    if (r->mt_mask >= 0) H5Tclose(r->mt_mask);
    for (int c = 0; c < COL_COUNT; c++) r->dset[c] = H5I_INVALID_HID;
    r->file = r->info = r->mt_pbc = r->mt_mask = H5I_INVALID_HID;
    free(r->splits);
    r->splits = NULL;
    h5ml__direct_close(r->direct);
    r->direct = NULL;
    r->n = r->m = r->tail = 0;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case 'i': return "int64";
    case 'd': return "float64";
    case 'f': return "float32";
    default: return "bool";
    }
}

static bool type_ok(hid_t t, int kind)
{
    H5T_class_t c = H5Tget_class(t);
    switch (kind) {
    case 'i': return h5ml__plain_number(t, H5T_INTEGER);
    case 'd':
    case 'f': return h5ml__plain_number(t, H5T_FLOAT);
    default: return c == H5T_ENUM ? H5Tget_size(t) <= 8 : h5ml__plain_number(t, H5T_INTEGER);
    }
}

static void shape_text(const h5ml_coldef *d, char *out, size_t len)
{
    const char *row = d->per_atom == 1 ? "M" : d->per_atom == 2 ? "N+1" : "N";
    if (d->rank == 1) snprintf(out, len, "(%s,)", row);
    else if (d->rank == 2) snprintf(out, len, "(%s, %d)", row, d->ncols);
    else snprintf(out, len, "(%s, 3, 3)", row);
}

/* Opens and checks one dataset's type and trailing shape; returns its length or -1. */
static int64_t open_column(h5ml_reader *r, int c)
{
    const h5ml_coldef *d = &h5ml__cols[c];
    char want[32];
    shape_text(d, want, sizeof want);
    if (H5Lexists(r->file, d->path, H5P_DEFAULT) <= 0) {
        h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: missing dataset /%s (expected %s %s); not an atomistic dataset of this schema",
                   r->path, d->path, kind_name(d->kind), want);
        return -1;
    }
    r->dset[c] = H5Dopen2(r->file, d->path, H5P_DEFAULT);
    if (r->dset[c] < 0) {
        h5ml__fail_h5(&r->base, H5ML_ERR_SCHEMA, "%s: cannot open /%s", r->path, d->path);
        return -1;
    }
    hid_t t = H5Dget_type(r->dset[c]);
    bool tok = type_ok(t, d->kind);
    if (tok && d->kind == 'b') {
        /* Enums are read with their own values (0/1), integers converted to uint8. */
        hid_t mt = H5Tget_class(t) == H5T_ENUM ? H5Tget_native_type(t, H5T_DIR_ASCEND) : H5Tcopy(H5T_NATIVE_UINT8);
        if (c == COL_PBC) r->mt_pbc = mt;
        else r->mt_mask = mt;
    }
    H5Tclose(t);
    hsize_t dims[3] = { 0, 0, 0 };
    int rank = h5ml__dims(r->dset[c], dims);
    bool sok = rank == d->rank;
    if (sok && d->rank == 2) sok = dims[1] == (hsize_t)d->ncols;
    if (sok && d->rank == 3) sok = dims[1] == 3 && dims[2] == 3;
    size_t row_bytes = (size_t)d->ncols * (d->kind == 'f' ? 4 : d->kind == 'b' ? 1 : 8);
    hsize_t file_size = 0;
    if (tok && sok &&
        (H5Fget_filesize(r->file, &file_size) < 0 || !h5ml__rows_plausible(r->dset[c], (int64_t)dims[0], row_bytes, (int64_t)file_size))) {
        h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s claims %llu rows, more than the file's %llu bytes can hold (corrupt file?)",
                   r->path, d->path, (unsigned long long)dims[0], (unsigned long long)file_size);
        return -1;
    }
    if (tok && sok && !h5ml__lzf_params_ok(r->dset[c])) {
        h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s: the chunk size its LZF filter records is not its chunks' (corrupt file?)",
                   r->path, d->path);
        return -1;
    }
    if (!tok || !sok) {
        char got[64];
        if (rank == 1) snprintf(got, sizeof got, "(%llu,)", (unsigned long long)dims[0]);
        else if (rank == 2) snprintf(got, sizeof got, "(%llu, %llu)", (unsigned long long)dims[0], (unsigned long long)dims[1]);
        else if (rank == 3)
            snprintf(got, sizeof got, "(%llu, %llu, %llu)", (unsigned long long)dims[0], (unsigned long long)dims[1],
                     (unsigned long long)dims[2]);
        else snprintf(got, sizeof got, "rank %d", rank);
        h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s has the wrong %s: expected %s %s, found shape %s%s", r->path, d->path,
                   tok ? "shape" : "dtype", kind_name(d->kind), want, got, tok ? "" : " of another type class");
        return -1;
    }
    return (int64_t)dims[0];
}

/* Checks splits[0..n]: start 0, never decrease, end at m. */
static int check_splits(h5ml_reader *r, const int64_t *s, int64_t n, int64_t m, const char *name)
{
    if (s[0] != 0)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s starts at %lld, expected 0", r->path, name, (long long)s[0]);
    for (int64_t i = 1; i <= n; i++)
        if (s[i] < s[i - 1])
            return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s decreases at index %lld (%lld after %lld); splits must never decrease",
                              r->path, name, (long long)i, (long long)s[i], (long long)s[i - 1]);
    if (s[n] != m)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s ends at %lld but the per-atom datasets have %lld rows" REPAIR_HINT,
                          r->path, name, (long long)s[n], (long long)m);
    return H5ML_OK;
}

static int check_forces_splits(h5ml_reader *r)
{
    enum { BLOCK = 65536 };
    int64_t *buf = malloc(sizeof *buf * BLOCK);
    if (buf == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    int rc = H5ML_OK;
    for (int64_t at = 0; at <= r->n && rc == H5ML_OK; at += BLOCK) {
        int64_t k = r->n + 1 - at < BLOCK ? r->n + 1 - at : BLOCK;
        if (h5ml__read_rows(r->dset[COL_FORCES_SPLITS], H5T_NATIVE_INT64, at, k, buf) < 0) {
            rc = h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read /labels/forces_splits", r->path);
            break;
        }
        for (int64_t i = 0; i < k; i++)
            if (buf[i] != r->splits[at + i]) {
                rc = h5ml__fail(&r->base, H5ML_ERR_SCHEMA,
                                "%s: /labels/forces_splits differs from /structures/atomic_numbers_splits at index %lld (%lld vs %lld)",
                                r->path, (long long)(at + i), (long long)buf[i], (long long)r->splits[at + i]);
                break;
            }
    }
    free(buf);
    return rc;
}

/* Whether /metadata says an h5ml writer has the file open or was killed before finalizing. */
static bool unfinished(hid_t file)
{
    int64_t fin = 1;
    if (H5Lexists(file, "metadata", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(file, "metadata", H5P_DEFAULT);
        if (g >= 0 && h5ml__attr_get_i64(g, "finalized", &fin) < 0) fin = 1;
        if (g >= 0) H5Gclose(g);
    }
    H5Eclear2(H5E_DEFAULT);
    return fin == 0;
}

static int open_impl(h5ml_reader *r, const char *path, int64_t *dropped)
{
    struct stat st;
    if (stat(path, &st) < 0) return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: is a directory", path);
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: not an HDF5 file", path);
    }
    hid_t fapl = h5ml__fapl_read();
    /* A quarter of the budget per dataset: the three per-atom datasets hold nearly all the
     * bytes, the others cannot use more than their size. */
    if (r->cache_bytes > 0) H5Pset_cache(fapl, 0, 10007, (size_t)(r->cache_bytes / 4), 0.75);
    else H5Pset_cache(fapl, 0, 521, 1 << 20, 0.75);
    if (r->apart) h5ml__safe_open_apart(true);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    bool live = r->file >= 0 && unfinished(r->file);
    if (live) {
        /* A writer may have it open: read it in SWMR mode, where HDF5 reads a metadata block
         * again when its checksum fails (the writer's checkpoint caught half-way) instead of
         * failing at once. Files of the older format cannot: plain again. */
        H5Fclose(r->file);
        r->file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        if (r->file < 0) {
            H5Eclear2(H5E_DEFAULT);
            r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        }
    }
    if (r->file < 0) h5ml__h5_save(); /* the reason, before H5Pclose clears HDF5's error stack */
    if (r->apart) h5ml__safe_open_apart(false);
    H5Pclose(fapl);
    if (r->file < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_IO, "%s: cannot open", path);
    /* A file an h5ml writer has not finalized (still writing, or killed) may hold datasets of
     * unequal length: each grows a chunk at a time and reaches the disk on its own. Its
     * content is the consistent prefix; the tail beyond it is not part of the dataset yet. */
    int64_t tail = 0;
    if (dropped == NULL && live) dropped = &tail;
    int64_t len[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++)
        if ((len[c] = open_column(r, c)) < 0) return r->base.code;
    /* Per-structure lengths: strictly equal, or (recovering) the shortest. */
    const int per_struct[] = { COL_CELLS, COL_PBC, COL_ENERGY, COL_STRESS, COL_STRESS_MASK, COL_INDICES };
    int64_t n = len[COL_NUMBERS_SPLITS] - 1, longest = n;
    if (n < 0)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /structures/atomic_numbers_splits is empty (it must start with 0)", path);
    if (len[COL_FORCES_SPLITS] - 1 < n) n = len[COL_FORCES_SPLITS] - 1;
    for (size_t k = 0; k < sizeof per_struct / sizeof *per_struct; k++) {
        int c = per_struct[k];
        if (len[c] > longest) longest = len[c];
        if (dropped == NULL && len[c] != n)
            return h5ml__fail(&r->base, H5ML_ERR_SCHEMA,
                              "%s: lengths disagree: /%s has %lld rows but /structures/atomic_numbers_splits describes %lld structures" REPAIR_HINT,
                              path, h5ml__cols[c].path, (long long)len[c], (long long)n);
        if (len[c] < n) n = len[c];
    }
    if (dropped == NULL && len[COL_FORCES_SPLITS] != len[COL_NUMBERS_SPLITS])
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: lengths disagree: /labels/forces_splits has %lld rows, /structures/atomic_numbers_splits %lld" REPAIR_HINT,
                          path, (long long)len[COL_FORCES_SPLITS], (long long)len[COL_NUMBERS_SPLITS]);
    int64_t m = len[COL_NUMBERS];
    if (dropped == NULL && (len[COL_POSITIONS] != m || len[COL_FORCES] != m))
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA,
                          "%s: lengths disagree: /structures/atomic_numbers has %lld rows, /structures/positions %lld, /labels/forces %lld" REPAIR_HINT,
                          path, (long long)m, (long long)len[COL_POSITIONS], (long long)len[COL_FORCES]);
    if (len[COL_POSITIONS] < m) m = len[COL_POSITIONS];
    if (len[COL_FORCES] < m) m = len[COL_FORCES];
    r->splits = malloc(sizeof *r->splits * (size_t)(n + 1));
    if (r->splits == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "%s: out of memory for %lld splits", path, (long long)n);
    if (h5ml__read_rows(r->dset[COL_NUMBERS_SPLITS], H5T_NATIVE_INT64, 0, n + 1, r->splits) < 0)
        return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read /structures/atomic_numbers_splits", path);
    if (dropped) {
        /* The consistent prefix: structures whose atoms are all present. */
        while (n > 0 && (r->splits[n] > m || r->splits[n] < r->splits[n - 1])) n--;
        m = r->splits[n];
        *dropped = longest - n;
        r->tail = *dropped;
    }
    r->n = n;
    r->m = m;
    int rc = check_splits(r, r->splits, n, m, "structures/atomic_numbers_splits");
    if (rc == H5ML_OK) rc = check_forces_splits(r);
    if (rc) return rc;
    if (H5Lexists(r->file, H5ML_INFO_PATH, H5P_DEFAULT) > 0) {
        r->info = H5Dopen2(r->file, H5ML_INFO_PATH, H5P_DEFAULT);
        hid_t t = r->info >= 0 ? H5Dget_type(r->info) : -1;
        hsize_t d[3];
        bool ok = t >= 0 && H5Tget_class(t) == H5T_STRING && h5ml__dims(r->info, d) == 1 && h5ml__lzf_params_ok(r->info) &&
                  (d[0] == (hsize_t)n || (dropped && d[0] >= (hsize_t)n));
        if (t >= 0) H5Tclose(t);
        if (!ok) return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s must be %lld strings", path, H5ML_INFO_PATH, (long long)n);
    }
    return H5ML_OK;
}

/* `warn`: warn about an ignored unfinished tail (not on refreshes, which would repeat it). */
static int open_common(h5ml_reader *r, const char *path, int64_t *dropped, bool warn)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (path == NULL) return h5ml__fail(&r->base, H5ML_ERR_ARG, "no input path given");
    if (h5ml__init() < 0) return h5ml__fail(&r->base, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    close_file(r);
    free(r->path);
    r->path = strdup(path);
    int rc = open_impl(r, path, dropped);
    if (rc == H5ML_OK) {
        /* The direct path keeps the decoded chunks itself: HDF5's own cache then only needs
         * to serve the files (and columns) it does not cover. */
        r->direct = h5ml__direct_open(r->file, r->dset, r->cache_bytes);
        h5ml__direct_set_threads(r->direct, r->threads);
    }
    if (rc) close_file(r);
    else h5ml__ok(&r->base);
    if (rc == H5ML_OK && dropped == NULL && warn && r->tail > 0)
        h5ml__warn(&r->base,
                   "%s: not finalized by its writer (still writing, or interrupted): reading the %lld structures "
                   "up to its last consistent point and ignoring an unfinished tail of %lld; appending or "
                   "'h5ml repair' cuts the tail",
                   path, (long long)r->n, (long long)r->tail);
    h5ml__h5_restore(&q);
    return rc;
}

int h5ml_reader_open(h5ml_reader *r, const char *path) { return open_common(r, path, NULL, true); }

int h5ml__reader_open_recover(h5ml_reader *r, const char *path, int64_t *dropped)
{
    *dropped = 0;
    return open_common(r, path, dropped, true);
}

/* Exchanges what two readers hold of their open files. */
static void swap_files(h5ml_reader *a, h5ml_reader *b)
{
#define SWAP(x)                      \
    do {                             \
        __typeof__(a->x) t_ = a->x;  \
        a->x = b->x;                 \
        b->x = t_;                   \
    } while (0)
    SWAP(file);
    for (int c = 0; c < COL_COUNT; c++) SWAP(dset[c]);
    SWAP(info);
    SWAP(mt_pbc);
    SWAP(mt_mask);
    SWAP(n);
    SWAP(m);
    SWAP(tail);
    SWAP(direct);
    SWAP(splits);
#undef SWAP
}

int h5ml_reader_refresh(h5ml_reader *r, int64_t *count)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (count) *count = r->n;
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    /* The file is opened afresh (its metadata as it is now on disk, datasets created since
     * included) beside the open one, which stays in use if that fails. Apart: HDF5 would
     * otherwise give the new open the state of the old one. */
    h5ml_reader *t = h5ml_reader_new();
    if (t == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    t->cache_bytes = r->cache_bytes;
    t->threads = r->threads;
    t->apart = true;
    int rc = open_common(t, r->path, NULL, false);
    if (rc == H5ML_OK) swap_files(r, t);
    else h5ml__copy_error(&r->base, &t->base);
    h5ml_reader_close(t);
    if (count) *count = r->n;
    return rc ? rc : h5ml__ok(&r->base);
}

void h5ml_reader_close(h5ml_reader *r)
{
    if (r == NULL) return;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    close_file(r);
    h5ml__h5_restore(&q);
    free(r->numbers);
    free(r->positions);
    free(r->forces);
    free(r->info_json);
    free(r->path);
    free(r);
}

int64_t h5ml_reader_count(const h5ml_reader *r) { return r ? r->n : 0; }
int64_t h5ml_reader_total_atoms(const h5ml_reader *r) { return r ? r->m : 0; }
const char *h5ml_reader_path(const h5ml_reader *r) { return r && r->path ? r->path : ""; }
hid_t h5ml__reader_file(const h5ml_reader *r) { return r->file; }
hid_t h5ml__reader_dset(const h5ml_reader *r, int col) { return r->dset[col]; }
hid_t h5ml__reader_info_dset(const h5ml_reader *r) { return r->info; }
const int64_t *h5ml__reader_splits(const h5ml_reader *r) { return r->splits; }
int64_t h5ml__reader_tail(const h5ml_reader *r) { return r->tail; }

static int check_range(h5ml_reader *r, int64_t start, int64_t count)
{
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    if (start < 0 || count < 0 || start > r->n || count > r->n - start)
        return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Range [%lld, %lld) out of range [0, %lld)", (long long)start,
                          (long long)(start + count), (long long)r->n);
    return H5ML_OK;
}

int h5ml_reader_range_atoms(h5ml_reader *r, int64_t start, int64_t count, int64_t *atoms)
{
    if (r == NULL) return H5ML_ERR_ARG;
    int rc = check_range(r, start, count);
    if (rc) return rc;
    *atoms = r->splits[start + count] - r->splits[start];
    return h5ml__ok(&r->base);
}

static int read_h5(h5ml_reader *r, int64_t start, int64_t count, const h5ml_frames *o);

/* Structures idx[0..n) (valid), directly when the file allows, else through HDF5. */
static int read_list(h5ml_reader *r, const int64_t *idx, int64_t n, const h5ml_frames *o)
{
    if (h5ml__direct_covers(r->direct, o)) {
        char why[256];
        if (h5ml__direct_read(r->direct, r->dset, r->splits, idx, n, o, why, sizeof why) < 0)
            return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: cannot read structures: %s", r->path, why);
        return H5ML_OK;
    }
    int64_t atom = 0;
    for (int64_t k = 0; k < n; k++) { /* one structure at a time into its place */
        int64_t i = idx[k], na = r->splits[i + 1] - r->splits[i];
        h5ml_frames one = {
            .natoms = o->natoms ? o->natoms + k : NULL,
            .numbers = o->numbers ? o->numbers + atom : NULL,
            .positions = o->positions ? o->positions + 3 * atom : NULL,
            .cells = o->cells ? o->cells + 9 * k : NULL,
            .pbc = o->pbc ? o->pbc + 3 * k : NULL,
            .energies = o->energies ? o->energies + k : NULL,
            .forces = o->forces ? o->forces + 3 * atom : NULL,
            .stress = o->stress ? o->stress + 6 * k : NULL,
            .stress_mask = o->stress_mask ? o->stress_mask + k : NULL,
        };
        int rc = read_h5(r, i, 1, &one);
        if (rc) return rc;
        atom += na;
    }
    return H5ML_OK;
}

static int read_impl(h5ml_reader *r, int64_t start, int64_t count, const h5ml_frames *o)
{
    if (h5ml__direct_covers(r->direct, o) && count > 0) {
        int64_t *idx = malloc(sizeof *idx * (size_t)count);
        if (idx == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; k < count; k++) idx[k] = start + k;
        int rc = read_list(r, idx, count, o);
        free(idx);
        return rc;
    }
    return read_h5(r, start, count, o);
}

static int read_h5(h5ml_reader *r, int64_t start, int64_t count, const h5ml_frames *o)
{
    int64_t a0 = r->splits[start], na = r->splits[start + count] - a0;
    struct { int col; hid_t mt; void *buf; int64_t at, n; } jobs[] = {
        { COL_NUMBERS, H5T_NATIVE_INT64, o->numbers, a0, na },
        { COL_POSITIONS, H5T_NATIVE_DOUBLE, o->positions, a0, na },
        { COL_FORCES, H5T_NATIVE_FLOAT, o->forces, a0, na },
        { COL_CELLS, H5T_NATIVE_DOUBLE, o->cells, start, count },
        { COL_PBC, r->mt_pbc, o->pbc, start, count },
        { COL_ENERGY, H5T_NATIVE_DOUBLE, o->energies, start, count },
        { COL_STRESS, H5T_NATIVE_DOUBLE, o->stress, start, count },
        { COL_STRESS_MASK, r->mt_mask, o->stress_mask, start, count },
    };
    for (size_t k = 0; k < sizeof jobs / sizeof *jobs; k++) {
        if (jobs[k].buf == NULL) continue;
        if (h5ml__read_rows(r->dset[jobs[k].col], jobs[k].mt, jobs[k].at, jobs[k].n, jobs[k].buf) < 0)
            return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read /%s", r->path, h5ml__cols[jobs[k].col].path);
    }
    if (o->natoms)
        for (int64_t i = 0; i < count; i++) o->natoms[i] = r->splits[start + i + 1] - r->splits[start + i];
    return H5ML_OK;
}

int h5ml_reader_read(h5ml_reader *r, int64_t start, int64_t count, const h5ml_frames *out)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    int rc = check_range(r, start, count);
    if (rc) return rc;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    rc = read_impl(r, start, count, out);
    if (rc == H5ML_OK) h5ml__ok(&r->base);
    h5ml__h5_restore(&q);
    return rc;
}

static int check_indices(h5ml_reader *r, const int64_t *idx, int64_t n)
{
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    if (n < 0 || (n > 0 && idx == NULL)) return h5ml__fail(&r->base, H5ML_ERR_ARG, "no indices given");
    for (int64_t k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= r->n)
            return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Index %lld out of range [0, %lld)", (long long)idx[k], (long long)r->n);
    return H5ML_OK;
}

int h5ml_reader_atoms_of(h5ml_reader *r, const int64_t *idx, int64_t n, int64_t *atoms)
{
    if (r == NULL || atoms == NULL) return H5ML_ERR_ARG;
    int rc = check_indices(r, idx, n);
    if (rc) return rc;
    int64_t a = 0;
    for (int64_t k = 0; k < n; k++) a += r->splits[idx[k] + 1] - r->splits[idx[k]];
    *atoms = a;
    return H5ML_OK; /* no message change: callable from several threads */
}

int h5ml_reader_read_indices(h5ml_reader *r, const int64_t *idx, int64_t n, const h5ml_frames *out)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    int rc = check_indices(r, idx, n);
    if (rc || n == 0) return rc;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    rc = read_list(r, idx, n, out);
    h5ml__h5_restore(&q);
    return rc;
}

int h5ml_reader_set_threads(h5ml_reader *r, int threads)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (threads < 0 || threads > 256) return h5ml__fail(&r->base, H5ML_ERR_ARG, "threads must be 0..256 (got %d)", threads);
    r->threads = threads;
    h5ml__direct_set_threads(r->direct, threads);
    return h5ml__ok(&r->base);
}

static int read_info(h5ml_reader *r, int64_t i, char **json)
{
    *json = NULL;
    if (r->info < 0) return H5ML_OK;
    hid_t t = h5ml__vlen_str_type();
    char *v = NULL;
    herr_t e = h5ml__read_rows(r->info, t, i, 1, &v);
    H5Tclose(t);
    if (e < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read /%s", r->path, H5ML_INFO_PATH);
    if (v && *v) *json = strdup(v);
    if (v) H5free_memory(v);
    return H5ML_OK;
}

int h5ml_reader_info(h5ml_reader *r, int64_t i, char **json)
{
    if (r == NULL || json == NULL) return H5ML_ERR_ARG;
    *json = NULL;
    if (r->file >= 0 && (i < 0 || i >= r->n))
        return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Index %lld out of range [0, %lld)", (long long)i, (long long)r->n);
    int rc = check_range(r, i, 1);
    if (rc) return rc;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    rc = read_info(r, i, json);
    if (rc == H5ML_OK) h5ml__ok(&r->base);
    h5ml__h5_restore(&q);
    return rc;
}

static int grow(h5ml_reader *r, int64_t natoms)
{
    if (natoms <= r->cap) return 0;
    size_t cap = (size_t)(natoms < 64 ? 64 : natoms);
    if (h5ml__resize(&r->numbers, cap, sizeof *r->numbers) || h5ml__resize(&r->positions, 3 * cap, sizeof *r->positions) ||
        h5ml__resize(&r->forces, 3 * cap, sizeof *r->forces))
        return -1;
    r->cap = (int64_t)cap;
    return 0;
}

int h5ml_reader_get(h5ml_reader *r, int64_t i, h5ml_frame *f)
{
    if (r == NULL || f == NULL) return H5ML_ERR_ARG;
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    if (i < 0 || i >= r->n)
        return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Index %lld out of range [0, %lld)", (long long)i, (long long)r->n);
    int64_t na = r->splits[i + 1] - r->splits[i];
    if (grow(r, na) < 0) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    memset(f, 0, sizeof *f);
    uint8_t mask = 0;
    h5ml_frames o = { .numbers = r->numbers, .positions = r->positions, .forces = r->forces, .cells = f->cell,
                      .pbc = f->pbc, .energies = &f->energy, .stress = f->stress, .stress_mask = &mask };
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = read_list(r, &i, 1, &o);
    free(r->info_json);
    r->info_json = NULL;
    if (rc == H5ML_OK) rc = read_info(r, i, &r->info_json);
    h5ml__h5_restore(&q);
    if (rc) return rc;
    f->index = i;
    f->natoms = na;
    f->numbers = r->numbers;
    f->positions = r->positions;
    f->forces = r->forces;
    f->has_stress = mask != 0;
    f->info_json = r->info_json;
    return h5ml__ok(&r->base);
}

/* ---- /metadata as JSON ------------------------------------------------------------------ */

int h5ml_reader_metadata(h5ml_reader *r, char **json)
{
    if (r == NULL || json == NULL) return H5ML_ERR_ARG;
    *json = NULL;
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    hid_t g = H5Lexists(r->file, "metadata", H5P_DEFAULT) > 0 ? H5Gopen2(r->file, "metadata", H5P_DEFAULT) : H5I_INVALID_HID;
    *json = g >= 0 ? h5ml__attrs_json(g) : strdup("{}");
    if (g >= 0) H5Gclose(g);
    H5Eclear2(H5E_DEFAULT);
    h5ml__h5_restore(&q);
    if (*json == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    return h5ml__ok(&r->base);
}

/* ---- statistics ------------------------------------------------------------------------- */

int h5ml__reader_scan(h5ml_reader *r, h5ml_stats *st, h5ml_progress_fn progress, void *user)
{
    enum { BLOCK = 8192 };
    h5ml__stats_init(st);
    int rc = H5ML_OK;
    int64_t cap = 0;
    int64_t *numbers = NULL;
    float *forces = NULL;
    double *energies = malloc(sizeof *energies * BLOCK);
    uint8_t *mask = malloc(BLOCK), *pbc = malloc(3 * BLOCK);
    for (int64_t s = 0; s < r->n && rc == H5ML_OK; s += BLOCK) {
        int64_t k = r->n - s < BLOCK ? r->n - s : BLOCK, na = r->splits[s + k] - r->splits[s];
        if (na > cap) {
            cap = na;
            free(numbers);
            free(forces);
            numbers = malloc(sizeof *numbers * (size_t)cap);
            forces = malloc(sizeof *forces * 3 * (size_t)cap);
        }
        if (!energies || !mask || !pbc || (na > 0 && (!numbers || !forces))) {
            rc = h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
            break;
        }
        h5ml_frames o = { .numbers = numbers, .forces = forces, .energies = energies, .stress_mask = mask, .pbc = pbc };
        if ((rc = h5ml_reader_read(r, s, k, &o)) != H5ML_OK) break;
        int64_t a = 0;
        for (int64_t i = 0; i < k; i++) {
            int64_t ni = r->splits[s + i + 1] - r->splits[s + i];
            h5ml__stats_add(st, ni, numbers + a, energies[i], NULL, forces + 3 * a, mask[i], pbc + 3 * i);
            a += ni;
        }
        if (progress && progress(user, s + k, r->n)) rc = h5ml__fail(&r->base, H5ML_ERR_STATE, "cancelled");
    }
    free(numbers);
    free(forces);
    free(energies);
    free(mask);
    free(pbc);
    return rc;
}

int h5ml__reader_stats(h5ml_reader *r, h5ml_stats *st, bool trust_attrs)
{
    if (trust_attrs && H5Lexists(r->file, "metadata", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(r->file, "metadata", H5P_DEFAULT);
        int ok = g >= 0 && h5ml__stats_read(g, st) == 0 && st->n == r->n && st->atoms == r->m;
        if (g >= 0) H5Gclose(g);
        H5Eclear2(H5E_DEFAULT);
        if (ok) return H5ML_OK;
    }
    return h5ml__reader_scan(r, st, NULL, NULL);
}
