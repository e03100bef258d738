/* The atomistic dataset writer: schema creation, append and recovery, per-structure and
 * batch adds, checkpoints, finalize and rollback. */
#define _GNU_SOURCE
#include "atoms_priv.h"
#include "chunkcol.h"
#include "dedup.h"
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct h5ml_writer {
    h5ml_base base;
    int64_t opt[H5ML_OPT__COUNT];
    char *path;
    char *tmp_path;       /* created files are set up under this name, then renamed */
    int lock_fd;
    int old_lock_fd;      /* lock on the file a created file replaces at finalize */
    bool replacing;       /* created under tmp_path, renamed over path at finalize */
    hid_t file, g_meta;
    hid_t mt_bool;        /* memory type of bool columns */
    column col[COL_COUNT];
    hid_t info;           /* labels/info or -1 */
    char **info_pending;  /* JSON of structures [info_written, n) */
    int64_t info_written, info_cap;
    bool info_any;
    int64_t n, m, n0, m0; /* structures and atoms now, and at open */
    bool info_existed;
    h5ml_stats stats, stats0;
    pipeline pipe;        /* of new datasets */
    int64_t chunk_atoms, chunk_structs;
    colsink sink;
    bool is_open, finalized, created, swmr, rolled_back;
    double last_ckpt;
    int64_t added, checkpoints, dropped;
    int64_t committed;    /* structures durable in the file (at open, last checkpoint, finalize) */
    const int *ioerr;     /* the driver's failed-write errno while the file is open (safefile.c) */
    int64_t broken;       /* a write failed: errno (or -1); nothing more is written or finalized */
    char *kept_path;      /* the file h5ml_writer_finalize_aside finalized under tmp_path */
    h5ml_attrlist meta;   /* the caller's extra /metadata attributes */
    /* per-add scratch */
    float *f32;
    int64_t f32_cap;
    /* deduplication (H5ML_OPT_DEDUP) */
    bool dedup;
    dedup_table seen;      /* hashes of the structures in the file */
    int64_t deduplicated;
    int64_t *dd_numbers;   /* a stored structure read back for comparison */
    double *dd_pos;
    int64_t dd_cap;
};

static const char *const reserved_keys[] = {
    "num_structures", "num_atoms", "format", "format_version", "created", "updated", "h5ml_version",
    "compression", "compression_level", "shuffle", "chunk_atoms", "chunk_structures", "elements",
    "element_counts", "energy_min", "energy_max", "energy_mean", "energy_std", "energy_per_atom_mean",
    "energy_per_atom_std", "force_max", "force_rms", "num_with_stress", "num_periodic", "finalized", NULL,
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

h5ml_writer *h5ml_writer_new(void)
{
    h5ml_writer *w = calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    h5ml__base_init(&w->base);
    w->lock_fd = w->old_lock_fd = -1;
    w->file = w->g_meta = w->info = H5I_INVALID_HID;
    w->mt_bool = H5I_INVALID_HID;
    return w;
}

typedef struct opt_bounds { int64_t lo, hi, def; const char *name; } opt_bounds;

static const opt_bounds bounds[H5ML_OPT__COUNT] = {
    [H5ML_OPT_COMPRESSION] = { 0, 3, H5ML_COMPRESS_GZIP, "compression" },
    [H5ML_OPT_LEVEL] = { 0, 9, 4, "level" },
    [H5ML_OPT_SHUFFLE] = { -1, 1, 1, "shuffle" },
    [H5ML_OPT_VALIDATE] = { -1, 1, 1, "validate" },
    [H5ML_OPT_CHUNK_ATOMS] = { 0, 1 << 24, 16384, "chunk_atoms" },
    [H5ML_OPT_CHUNK_STRUCTURES] = { 0, 1 << 24, 4096, "chunk_structures" },
    [H5ML_OPT_CHECKPOINT_MS] = { -1, INT64_C(86400000), 2000, "checkpoint_ms" },
    [H5ML_OPT_THREADS] = { 0, 256, 0, "threads" },
    [H5ML_OPT_PROFILE] = { 0, H5ML_PROFILE_NONE, H5ML_PROFILE_DEFAULT, "profile" },
    [H5ML_OPT_DEDUP] = { -1, 1, -1, "dedup" },
    [H5ML_OPT_ACCESS] = { 0, H5ML_ACCESS_SHUFFLED, H5ML_ACCESS_SEQUENTIAL, "access" },
};

int h5ml_writer_set(h5ml_writer *w, h5ml_option opt, int64_t value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "options must be set before the writer is opened");
    if (opt <= 0 || opt >= H5ML_OPT__COUNT) return h5ml__fail(&w->base, H5ML_ERR_ARG, "unknown writer option %d", (int)opt);
    const opt_bounds *b = &bounds[opt];
    if (value < b->lo || value > b->hi)
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "%s must be between %lld and %lld (got %lld)", b->name,
                          (long long)b->lo, (long long)b->hi, (long long)value);
    if (opt == H5ML_OPT_LEVEL && value != 0 && value < 1)
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "level must be 1..9");
    w->opt[opt] = value;
    return h5ml__ok(&w->base);
}

static int64_t opt(const h5ml_writer *w, h5ml_option o) { return w->opt[o] ? w->opt[o] : bounds[o].def; }

/* ---- write failures ----------------------------------------------------------------------
 * (h5ml.h, h5ml_writer_checkpoint) The driver stops writing at the first failed write and
 * lets HDF5 believe in success (safefile.c), so the writer asks after each call that can
 * write, and a writer whose write failed writes nothing more. */

/* The file being written: the temporary one until it is moved into place. */
static const char *file_path(const h5ml_writer *w) { return w->tmp_path ? w->tmp_path : w->path; }

/* Marks the writer broken with errno e (0: not a write failure, e.g. an HDF5 error) and
 * fails with ERR_IO; keeps an earlier message naming the same failure. */
static int broke(h5ml_writer *w, int e)
{
    if (w->broken) return w->base.code ? w->base.code : H5ML_ERR_IO;
    w->broken = e ? e : -1;
    if (e) return h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot write: %s", w->path, strerror(e));
    return w->base.code ? w->base.code : h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot write", w->path);
}

/* After a call that may have written: rc, or ERR_IO if a write failed. An ERR_IO or
 * ERR_HDF5 of the writing itself breaks the writer too: what it left half-appended must not
 * be finalized. */
static int io_check(h5ml_writer *w, int rc)
{
    int e = w->ioerr ? __atomic_load_n(w->ioerr, __ATOMIC_RELAXED) : 0;
    if (e || w->broken) return broke(w, e);
    if (rc == H5ML_ERR_IO || rc == H5ML_ERR_HDF5) return broke(w, 0);
    return rc;
}

bool h5ml__writer_broken(const h5ml_writer *w) { return w && w->broken; }

/* ---- locking -------------------------------------------------------------------------- */

/* An OFD lock (independent of the flock HDF5 takes and drops in SWMR mode) marks the one
 * h5ml writer of a file; the kernel releases it when the writer dies. */
static int lock_path(h5ml_writer *w, const char *path, bool create)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0666);
    if (fd < 0) {
        if (!create && errno == ENOENT) return 0;
        return h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int e = errno;
        close(fd);
        if (e == EAGAIN || e == EACCES)
            return h5ml__fail(&w->base, H5ML_ERR_BUSY,
                              "%s: another h5ml writer has this file open; wait for it to finish", path);
        return h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    }
    if (w->lock_fd >= 0) close(w->lock_fd);
    w->lock_fd = fd;
    return H5ML_OK;
}

static void unlock(h5ml_writer *w)
{
    if (w->lock_fd >= 0) close(w->lock_fd);
    if (w->old_lock_fd >= 0) close(w->old_lock_fd);
    w->lock_fd = w->old_lock_fd = -1;
}

/* ---- schema creation ------------------------------------------------------------------ */

static hid_t file_type(int kind, hid_t bool_t)
{
    switch (kind) {
    case 'i': return H5T_STD_I64LE;
    case 'd': return H5T_IEEE_F64LE;
    case 'f': return H5T_IEEE_F32LE;
    default: return bool_t;
    }
}

static hid_t mem_type(const h5ml_writer *w, int kind)
{
    switch (kind) {
    case 'i': return H5T_NATIVE_INT64;
    case 'd': return H5T_NATIVE_DOUBLE;
    case 'f': return H5T_NATIVE_FLOAT;
    default: return w->mt_bool;
    }
}

static void set_filters(hid_t dcpl, const pipeline *p)
{
    if (p->shuffle) H5Pset_shuffle(dcpl);
    if (p->codec == PIPE_GZIP) H5Pset_deflate(dcpl, (unsigned)p->level);
    if (p->codec == PIPE_LZF) H5Pset_filter(dcpl, H5ML_FILTER_LZF, H5Z_FLAG_OPTIONAL, 0, NULL);
}

static hid_t create_dataset(h5ml_writer *w, const char *path, hid_t type, int rank, const hsize_t *row_shape,
                            int64_t chunk_rows, bool filtered)
{
    hsize_t dims[3] = { 0, 0, 0 }, maxd[3] = { H5S_UNLIMITED, 0, 0 }, chunk[3] = { (hsize_t)chunk_rows, 0, 0 };
    for (int k = 1; k < rank; k++) dims[k] = maxd[k] = chunk[k] = row_shape[k - 1];
    hid_t space = H5Screate_simple(rank, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (H5Tis_variable_str(type) <= 0) H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER); /* not allowed for strings */
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
    if (filtered) set_filters(dcpl, &w->pipe);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(w->file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0) h5ml__h5_save();
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

static const char *codec_name(pipe_codec c) { return c == PIPE_GZIP ? "gzip" : c == PIPE_LZF ? "lzf" : "none"; }

static int write_static_attrs(h5ml_writer *w)
{
    char ts[32];
    h5ml__iso8601(ts);
    hid_t g = w->g_meta;
    int rc = 0;
    rc |= h5ml__attr_str(g, "format", H5ML_FORMAT_NAME);
    rc |= h5ml__attr_str(g, "format_version", H5ML_FORMAT_VERSION);
    rc |= h5ml__attr_str(g, "created", ts);
    rc |= h5ml__attr_str(g, "updated", ts);
    rc |= h5ml__attr_str(g, "h5ml_version", h5ml_version());
    rc |= h5ml__attr_str(g, "compression", codec_name(w->pipe.codec));
    rc |= h5ml__attr_i64(g, "compression_level", w->pipe.codec == PIPE_GZIP ? w->pipe.level : 0);
    rc |= h5ml__attr_bool(g, "shuffle", w->pipe.shuffle);
    rc |= h5ml__attr_i64(g, "chunk_atoms", w->chunk_atoms);
    rc |= h5ml__attr_i64(g, "chunk_structures", w->chunk_structs);
    rc |= h5ml__attr_bool(g, "finalized", 0);
    return rc;
}

static hsize_t row_shape_of(int c, int k)
{
    const h5ml_coldef *d = &h5ml__cols[c];
    if (d->rank == 3) return 3;
    return k == 0 ? (hsize_t)d->ncols : 0;
}

/* Whether deduplication reads column c back (the geometry of a structure). */
static bool dedup_reads(int c)
{
    return c == COL_NUMBERS || c == COL_NUMBERS_SPLITS || c == COL_POSITIONS || c == COL_CELLS || c == COL_PBC;
}

static int attach_columns(h5ml_writer *w, const int64_t rows[COL_COUNT])
{
    char why[256];
    /* Deduplication reads stored structures back at random: HDF5 keeps more decoded chunks. */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 1009, (size_t)8 << 20, 0.75);
    for (int c = 0; c < COL_COUNT; c++) {
        hid_t d = H5Dopen2(w->file, h5ml__cols[c].path, w->dedup && dedup_reads(c) ? dapl : H5P_DEFAULT);
        int rc = H5ML_OK;
        if (d < 0) {
            rc = h5ml__fail_h5(&w->base, H5ML_ERR_SCHEMA, "%s: cannot open %s", w->path, h5ml__cols[c].path);
        } else if (h5ml__col_attach(&w->col[c], d, mem_type(w, h5ml__cols[c].kind), rows[c], why, sizeof why) < 0) {
            H5Dclose(d);
            rc = h5ml__fail_h5(&w->base, H5ML_ERR_SCHEMA, "%s: cannot append to %s: %s", w->path, h5ml__cols[c].path, why);
        }
        if (rc) {
            H5Pclose(dapl);
            return rc;
        }
    }
    H5Pclose(dapl);
    return H5ML_OK;
}

static int create_schema(h5ml_writer *w)
{
    hid_t bool_t = h5ml__bool_type();
    for (int c = 0; c < COL_COUNT; c++) {
        const h5ml_coldef *d = &h5ml__cols[c];
        hsize_t shape[2] = { row_shape_of(c, 0), row_shape_of(c, 1) };
        int64_t chunk = d->per_atom == 1 ? w->chunk_atoms : w->chunk_structs;
        hid_t ds = create_dataset(w, d->path, file_type(d->kind, bool_t), d->rank, shape, chunk, true);
        if (ds < 0) {
            H5Tclose(bool_t);
            return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot create %s", w->path, d->path);
        }
        H5Dclose(ds);
    }
    H5Tclose(bool_t);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_attr_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED); /* inspect lists them in order */
    /* Attributes stay in the group's object header (HDF5 moves them to "dense" storage, a
     * fractal heap and two B-trees, past 8 by default). SWMR orders the writes of object
     * headers, not those of dense storage: a writer stopped inside a checkpoint (killed, or
     * its disk full) could leave the B-trees counting attributes whose heap blocks never
     * reached the disk, and /metadata unreadable. */
    H5Pset_attr_phase_change(gcpl, 1000, 1000);
    w->g_meta = H5Gcreate2(w->file, "metadata", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (w->g_meta < 0 || write_static_attrs(w) < 0 || h5ml__stats_write(w->g_meta, &w->stats) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write /metadata", w->path);
    int64_t rows[COL_COUNT] = { 0 };
    int rc = attach_columns(w, rows);
    if (rc) return rc;
    /* The splits start with 0, so even an empty file is a valid dataset. */
    int64_t zero = 0;
    if (h5ml__col_append(&w->col[COL_NUMBERS_SPLITS], &w->sink, &zero, 1) < 0 ||
        h5ml__col_append(&w->col[COL_FORCES_SPLITS], &w->sink, &zero, 1) < 0 ||
        h5ml__col_flush(&w->col[COL_NUMBERS_SPLITS], &w->sink, false) < 0 ||
        h5ml__col_flush(&w->col[COL_FORCES_SPLITS], &w->sink, false) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write the splits", w->path);
    return H5ML_OK;
}

static void pipeline_from_options(h5ml_writer *w)
{
    h5ml__pipeline_resolve(&w->pipe, w->opt[H5ML_OPT_PROFILE], w->opt[H5ML_OPT_COMPRESSION], w->opt[H5ML_OPT_LEVEL],
                           w->opt[H5ML_OPT_SHUFFLE]);
    w->dedup = opt(w, H5ML_OPT_DEDUP) > 0;
    w->chunk_atoms = opt(w, H5ML_OPT_CHUNK_ATOMS);
    /* Shuffled reads of a compressed file decode a chunk per structure (h5ml_access). */
    if (!w->opt[H5ML_OPT_CHUNK_ATOMS] && opt(w, H5ML_OPT_ACCESS) == H5ML_ACCESS_SHUFFLED && w->pipe.codec != PIPE_NONE)
        w->chunk_atoms = 4096;
    w->chunk_structs = opt(w, H5ML_OPT_CHUNK_STRUCTURES);
}

static int start_swmr(h5ml_writer *w)
{
    /* SWMR needs every object closed or refreshed; datasets stay open, HDF5 handles them. */
    if (H5Fstart_swmr_write(w->file) < 0) {
        char h5[256];
        h5ml__h5_error_text(h5, sizeof h5);
        w->swmr = false;
        h5ml__warn(&w->base,
                   "%s: the file's format does not allow crash-safe (SWMR) writing, probably written by another "
                   "tool; appending without checkpoints protection",
                   w->path);
        return H5ML_OK;
    }
    w->swmr = true;
    return H5ML_OK;
}

/* Moves the file built under tmp_path to path (see h5ml__move_into_place). */
static int move_into_place(h5ml_writer *w)
{
    if (h5ml__move_into_place(w->tmp_path, w->path, w->replacing) < 0)
        return h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot create: %s", w->path, strerror(errno));
    free(w->tmp_path);
    w->tmp_path = NULL;
    return H5ML_OK;
}

static int open_create(h5ml_writer *w)
{
    /* The new file is built under a temporary name and renamed into place once it is a
     * complete, SWMR-safe file: at once when `path` is new, so that a killed writer leaves
     * its checkpoints there; at finalize when it replaces an existing file, so that a failed
     * or killed run leaves that file as it was. A file another writer is using is refused. */
    int rc = lock_path(w, w->path, false);
    if (rc) return rc;
    w->replacing = w->lock_fd >= 0;
    w->old_lock_fd = w->lock_fd;
    w->lock_fd = -1;
    w->tmp_path = h5ml__tmp_name(w->path);
    if (w->tmp_path == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    rc = lock_path(w, w->tmp_path, true);
    if (rc) return rc;
    hid_t fapl = h5ml__fapl_safe();
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w->file < 0) {
        unlink(w->tmp_path);
        return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot create", w->path);
    }
    w->ioerr = h5ml__safe_error_flag(w->file);
    w->created = true;
    h5ml__stats_init(&w->stats);
    rc = create_schema(w);
    if (rc == 0) rc = start_swmr(w);
    if (rc == 0 && h5ml__safe_flush(w->file) < 0)
        rc = h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write", w->path);
    rc = io_check(w, rc); /* a file whose making failed never appears at the path */
    if (rc == 0 && !w->replacing) rc = move_into_place(w);
    if (rc) {
        unlink(w->tmp_path);
        return rc;
    }
    w->n = w->m = 0;
    return H5ML_OK;
}

/* ---- deduplication ----------------------------------------------------------------------
 * (h5ml.h, H5ML_OPT_DEDUP) w->seen holds the hash of every structure in the file. A hash
 * match is only a candidate: the stored structure is read back (h5ml__col_read: from the
 * column buffers, or from the file) and compared byte for byte. */

static const double zero_cell[9];

/* The key of a structure as it will be stored; pbc8 receives its flags as 0/1. */
static dedup_key key_of(int64_t natoms, const int64_t *numbers, const double *positions, const double *cell,
                        const uint8_t *pbc, int8_t pbc8[3])
{
    for (int k = 0; k < 3; k++) pbc8[k] = pbc && pbc[k] ? 1 : 0;
    return (dedup_key){ natoms, numbers, positions, cell ? cell : zero_cell, pbc8 };
}

static int reserve_scratch(h5ml_writer *w, int64_t natoms)
{
    if (natoms <= w->dd_cap) return 0;
    int64_t *nb = realloc(w->dd_numbers, sizeof *nb * (size_t)natoms);
    if (nb == NULL) return -1;
    w->dd_numbers = nb;
    double *p = realloc(w->dd_pos, sizeof *p * 3 * (size_t)natoms);
    if (p == NULL) return -1;
    w->dd_pos = p;
    w->dd_cap = natoms;
    return 0;
}

static void free_scratch(h5ml_writer *w)
{
    free(w->dd_numbers);
    free(w->dd_pos);
    w->dd_numbers = NULL;
    w->dd_pos = NULL;
    w->dd_cap = 0;
}

static int read_back_failed(h5ml_writer *w, int64_t j)
{
    return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot read structure %lld back to compare", w->path, (long long)j);
}

/* *same: whether stored structure j has key k (cheap parts first). */
static int same_as_stored(h5ml_writer *w, const dedup_key *k, int64_t j, bool *same)
{
    colsink *sk = &w->sink;
    int64_t sp[2];
    double cell[9];
    int8_t pbc[3];
    *same = false;
    if (h5ml__col_read(&w->col[COL_NUMBERS_SPLITS], sk, j, 2, sp) < 0) return read_back_failed(w, j);
    if (sp[1] - sp[0] != k->natoms) return H5ML_OK;
    if (h5ml__col_read(&w->col[COL_CELLS], sk, j, 1, cell) < 0 || h5ml__col_read(&w->col[COL_PBC], sk, j, 1, pbc) < 0)
        return read_back_failed(w, j);
    if (memcmp(cell, k->cell, sizeof cell) != 0 || memcmp(pbc, k->pbc, sizeof pbc) != 0) return H5ML_OK;
    if (reserve_scratch(w, k->natoms) < 0) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    if (h5ml__col_read(&w->col[COL_NUMBERS], sk, sp[0], k->natoms, w->dd_numbers) < 0 ||
        h5ml__col_read(&w->col[COL_POSITIONS], sk, sp[0], k->natoms, w->dd_pos) < 0)
        return read_back_failed(w, j);
    dedup_key stored = { k->natoms, w->dd_numbers, w->dd_pos, cell, pbc };
    *same = h5ml__dedup_equal(k, &stored);
    return H5ML_OK;
}

/* Structures of a batch that are accepted but not appended yet (indices from w->n on): the
 * batch path compares them in memory. */
typedef bool (*pending_same)(const void *ctx, const dedup_key *k, int64_t index);

/* *dup: whether a structure with key k (hash h) is in the file or pending. Makes room in
 * the table for one more entry, so that remembering k cannot fail afterwards. */
static int find_duplicate(h5ml_writer *w, const dedup_key *k, uint64_t h, pending_same pending, const void *ctx,
                          bool *dup)
{
    *dup = false;
    if (h5ml__dedup_reserve(&w->seen, w->seen.count + 1) < 0) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    uint64_t pos = 0;
    int64_t j;
    while ((j = h5ml__dedup_next(&w->seen, h, &pos)) >= 0) {
        if (j >= w->n) {
            *dup = pending && pending(ctx, k, j);
        } else {
            int rc = same_as_stored(w, k, j, dup);
            if (rc) return rc;
        }
        if (*dup) return H5ML_OK;
    }
    return H5ML_OK;
}

/* Hashes the structures the file holds at open (append), reading them in blocks. */
static int hash_stored(h5ml_writer *w)
{
    enum { BLOCK = 4096, MAX_ATOMS = 1 << 20 };
    colsink *sk = &w->sink;
    int64_t *sp = malloc(sizeof *sp * (BLOCK + 1));
    double *cells = malloc(sizeof *cells * 9 * BLOCK);
    int8_t *pbc = malloc(3 * BLOCK);
    int rc = H5ML_OK;
    if (!sp || !cells || !pbc || h5ml__dedup_reserve(&w->seen, w->n) < 0) rc = h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    for (int64_t s = 0; rc == H5ML_OK && s < w->n;) {
        int64_t k = w->n - s < BLOCK ? w->n - s : BLOCK;
        if (h5ml__col_read(&w->col[COL_NUMBERS_SPLITS], sk, s, k + 1, sp) < 0) {
            rc = read_back_failed(w, s);
            break;
        }
        while (k > 1 && sp[k] - sp[0] > MAX_ATOMS) k /= 2;
        int64_t a0 = sp[0], atoms = sp[k] - a0;
        if (reserve_scratch(w, atoms) < 0) {
            rc = h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
            break;
        }
        if (h5ml__col_read(&w->col[COL_NUMBERS], sk, a0, atoms, w->dd_numbers) < 0 ||
            h5ml__col_read(&w->col[COL_POSITIONS], sk, a0, atoms, w->dd_pos) < 0 ||
            h5ml__col_read(&w->col[COL_CELLS], sk, s, k, cells) < 0 || h5ml__col_read(&w->col[COL_PBC], sk, s, k, pbc) < 0) {
            rc = read_back_failed(w, s);
            break;
        }
        for (int64_t i = 0; i < k; i++) {
            int64_t a = sp[i] - a0;
            dedup_key key = { sp[i + 1] - sp[i], w->dd_numbers + a, w->dd_pos + 3 * a, cells + 9 * i, pbc + 3 * i };
            h5ml__dedup_insert(&w->seen, h5ml__dedup_hash(&key), s + i);
        }
        s += k;
    }
    free(sp);
    free(cells);
    free(pbc);
    free_scratch(w); /* a block's worth: compared structures need far less */
    return rc;
}

/* ---- append ---------------------------------------------------------------------------- */

static int shrink(h5ml_writer *w, hid_t file, int64_t n, int64_t m)
{
    for (int c = 0; c < COL_COUNT; c++) {
        const h5ml_coldef *d = &h5ml__cols[c];
        hid_t ds = H5Dopen2(file, d->path, H5P_DEFAULT);
        hsize_t dims[3];
        int rank = ds < 0 ? -1 : h5ml__dims(ds, dims);
        dims[0] = (hsize_t)(d->per_atom == 1 ? m : d->per_atom == 2 ? n + 1 : n);
        herr_t rc = rank < 0 ? -1 : h5ml__shrink_dataset(ds, dims);
        if (ds >= 0) H5Dclose(ds);
        if (rc < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot cut %s back", w->path, d->path);
    }
    if (H5Lexists(file, H5ML_INFO_PATH, H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(file, H5ML_INFO_PATH, H5P_DEFAULT);
        hsize_t d = (hsize_t)n;
        herr_t rc = ds < 0 ? -1 : h5ml__shrink_dataset(ds, &d);
        if (ds >= 0) H5Dclose(ds);
        if (rc < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot cut %s back", w->path, H5ML_INFO_PATH);
    }
    return H5ML_OK;
}

/* Whether /metadata says an h5ml writer had the file open and never finalized it. */
static bool left_unfinished(const char *path)
{
    hid_t fapl = h5ml__fapl_read(), f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    int64_t fin = 1;
    if (f >= 0 && H5Lexists(f, "metadata", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "metadata", H5P_DEFAULT);
        if (g >= 0 && h5ml__attr_get_i64(g, "finalized", &fin) < 0) fin = 1;
        if (g >= 0) H5Gclose(g);
    }
    if (f >= 0) H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    return fin == 0;
}

static int open_append(h5ml_writer *w, bool repair)
{
    int rc = lock_path(w, w->path, false);
    if (rc) return rc;
    if (w->lock_fd < 0) return open_create(w); /* missing file: append creates it */
    /* Check the file with the reader (tolerating an unfinished tail left by a killed
     * writer) and get the consistent lengths and statistics. */
    h5ml_reader *r = h5ml_reader_new();
    if (r == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    int64_t dropped = 0;
    rc = h5ml__reader_open_recover(r, w->path, &dropped);
    if (rc == H5ML_OK) {
        w->n = h5ml_reader_count(r);
        w->m = h5ml_reader_total_atoms(r);
        rc = h5ml__reader_stats(r, &w->stats, dropped == 0);
    }
    if (rc) h5ml__copy_error(&w->base, (h5ml_base *)r);
    h5ml_reader_close(r);
    if (rc) return rc;
    if (dropped > 0 && !repair && !left_unfinished(w->path)) {
        /* Not a tail an interrupted h5ml writer left: say what is wrong, do not cut. */
        r = h5ml_reader_new();
        h5ml_reader_open(r, w->path);
        h5ml__copy_error(&w->base, (h5ml_base *)r);
        h5ml_reader_close(r);
        return w->base.code ? w->base.code : h5ml__fail(&w->base, H5ML_ERR_SCHEMA, "%s: inconsistent lengths", w->path);
    }
    hid_t fapl = h5ml__fapl_safe();
    w->file = H5Fopen(w->path, H5F_ACC_RDWR, fapl);
    if (w->file < 0) h5ml__h5_save(); /* the reason (a reader's file lock...), before H5Pclose clears it */
    H5Pclose(fapl);
    if (w->file < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot open for appending", w->path);
    w->ioerr = h5ml__safe_error_flag(w->file);
    w->dropped = dropped;
    if (dropped > 0) {
        h5ml__warn(&w->base, "%s: dropped an unfinished tail of %lld structure(s) left by an interrupted writer",
                   w->path, (long long)dropped);
        if ((rc = shrink(w, w->file, w->n, w->m)) != 0) return rc;
    }
    int64_t rows[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++) {
        int pa = h5ml__cols[c].per_atom;
        rows[c] = pa == 1 ? w->m : pa == 2 ? w->n + 1 : w->n;
    }
    if ((rc = attach_columns(w, rows)) != 0) return rc;
    const column *fc = &w->col[COL_FORCES];
    pipeline asked = w->pipe; /* of the options (the profile's, or the explicit ones) */
    w->pipe = fc->pipe;
    w->chunk_atoms = w->col[COL_NUMBERS].chunk_rows;
    w->chunk_structs = w->col[COL_ENERGY].chunk_rows;
    bool other = asked.codec != w->pipe.codec || (asked.codec == PIPE_GZIP && asked.level != w->pipe.level);
    if ((w->opt[H5ML_OPT_COMPRESSION] || w->opt[H5ML_OPT_PROFILE] || w->opt[H5ML_OPT_LEVEL]) && other) {
        if (w->pipe.codec == PIPE_GZIP)
            h5ml__warn(&w->base, "%s: appending keeps the file's compression (gzip %d)", w->path, w->pipe.level);
        else
            h5ml__warn(&w->base, "%s: appending keeps the file's compression (%s)", w->path, codec_name(w->pipe.codec));
    }
    if (w->dedup && (rc = hash_stored(w)) != 0) return rc;
    w->g_meta = H5Lexists(w->file, "metadata", H5P_DEFAULT) > 0
                    ? H5Gopen2(w->file, "metadata", H5P_DEFAULT)
                    : H5Gcreate2(w->file, "metadata", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (w->g_meta < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot open /metadata", w->path);
    if (H5Aexists(w->g_meta, "format") <= 0 && write_static_attrs(w) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write /metadata", w->path);
    if (h5ml__attr_bool(w->g_meta, "finalized", 0) < 0 || h5ml__stats_write(w->g_meta, &w->stats) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write /metadata", w->path);
    if (H5Lexists(w->file, H5ML_INFO_PATH, H5P_DEFAULT) > 0) {
        w->info = H5Dopen2(w->file, H5ML_INFO_PATH, H5P_DEFAULT);
        w->info_existed = true;
    }
    w->info_written = w->n;
    return io_check(w, start_swmr(w));
}

static void reset(h5ml_writer *w)
{
    h5ml__sink_free(&w->sink); /* before the datasets close: pending chunks are dropped */
    for (int c = 0; c < COL_COUNT; c++) h5ml__col_free(&w->col[c]);
    if (w->info >= 0) H5Dclose(w->info);
    if (w->g_meta >= 0) H5Gclose(w->g_meta);
    if (w->file >= 0) H5Fclose(w->file);
    w->info = w->g_meta = w->file = H5I_INVALID_HID;
    w->ioerr = NULL;
    for (int64_t k = w->info_written; k < w->n && w->info_pending; k++) free(w->info_pending[k - w->info_written]);
    free(w->info_pending);
    w->info_pending = NULL;
    w->info_cap = 0;
    h5ml__dedup_free(&w->seen);
    free_scratch(w);
    w->is_open = false;
}

int h5ml_writer_open(h5ml_writer *w, const char *path, h5ml_mode mode)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (path == NULL || !*path) return h5ml__fail(&w->base, H5ML_ERR_ARG, "no output path given");
    if (w->is_open || w->path) return h5ml__fail(&w->base, H5ML_ERR_STATE, "this writer was already opened");
    if (h5ml__init() < 0) return h5ml__fail(&w->base, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    w->path = strdup(path);
    w->mt_bool = h5ml__bool_type();
    pipeline_from_options(w);
    int rc = mode == H5ML_CREATE ? open_create(w) : open_append(w, mode == H5ML_REPAIR);
    int64_t threads = opt(w, H5ML_OPT_THREADS);
    if (threads == 0) threads = h5ml__default_threads();
    if (rc == H5ML_OK && threads > 1 && w->pipe.codec != PIPE_NONE) w->sink.pool = h5ml__pool_new((int)threads);
    if (rc == H5ML_OK) {
        w->n0 = w->committed = w->n;
        w->m0 = w->m;
        w->stats0 = w->stats;
        w->is_open = true;
        w->last_ckpt = now_ms();
        h5ml__ok(&w->base);
    } else {
        reset(w);
        unlock(w);
    }
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- per-structure metadata ------------------------------------------------------------ */

static int create_info(h5ml_writer *w)
{
    hid_t t = h5ml__vlen_str_type();
    hsize_t none[2] = { 0, 0 };
    w->info = create_dataset(w, H5ML_INFO_PATH, t, 1, none, w->chunk_structs, w->pipe.codec == PIPE_GZIP);
    H5Tclose(t);
    if (w->info < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot create %s", w->path, H5ML_INFO_PATH);
    return H5ML_OK;
}

/* Writes the pending JSON strings of structures [info_written, n). */
static int flush_info(h5ml_writer *w)
{
    int64_t k = w->n - w->info_written;
    if (k == 0) return H5ML_OK;
    int rc = H5ML_OK;
    /* Once the dataset exists (made now, or by an earlier session) it covers every structure. */
    if (w->info_any || w->info >= 0) {
        if (w->info < 0 && (rc = create_info(w)) != 0) return rc;
        hsize_t dim = (hsize_t)w->n, off = (hsize_t)w->info_written, cnt = (hsize_t)k;
        hid_t t = h5ml__vlen_str_type();
        herr_t e = H5Dset_extent(w->info, &dim);
        hid_t fs = H5Dget_space(w->info), ms = H5Screate_simple(1, &cnt, NULL);
        if (e >= 0) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
        if (e >= 0) e = H5Dwrite(w->info, t, ms, fs, H5P_DEFAULT, w->info_pending);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Tclose(t);
        if (e < 0) rc = h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write %s", w->path, H5ML_INFO_PATH);
    }
    for (int64_t i = 0; i < k; i++) free(w->info_pending[i]);
    w->info_written = w->n;
    return rc;
}

static int push_info(h5ml_writer *w, const char *json)
{
    int64_t k = w->n - w->info_written;
    if (k >= w->info_cap) {
        int64_t cap = w->info_cap ? w->info_cap * 2 : 256;
        char **p = realloc(w->info_pending, sizeof *p * (size_t)cap);
        if (p == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        w->info_pending = p;
        w->info_cap = cap;
    }
    char *copy = NULL;
    if (json && *json) {
        copy = strdup(json);
        if (copy == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        w->info_any = true;
    }
    w->info_pending[k] = copy;
    return H5ML_OK;
}

/* Whether json is NULL, empty or a JSON object (thread-safe). */
static bool info_json_ok(const char *json)
{
    if (json == NULL || !*json) return true;
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    bool ok = v && json_is_object(v);
    json_decref(v);
    return ok;
}

static int check_info_json(h5ml_writer *w, const char *json)
{
    if (json == NULL || !*json) return H5ML_OK;
    json_error_t err;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &err);
    bool ok = v && json_is_object(v);
    json_decref(v);
    if (!ok) return h5ml__fail(&w->base, H5ML_ERR_VALUE, "Invalid structure metadata: not a JSON object (%s)", err.text);
    return H5ML_OK;
}

/* ---- adding ---------------------------------------------------------------------------- */

static int checkpoint(h5ml_writer *w);

/* The plausibility warnings of one structure, handed to `emit` without their "structure N: "
 * (structure order and numbering are the caller's business: the batch path checks on
 * several threads, sorts, and numbers what it wrote). */
typedef void (*warn_emit)(void *ctx, int64_t index, int order, const char *msg);

static void plausibility(const h5ml_structure *s, int64_t index, warn_emit emit, void *ctx)
{
    char msg[160];
    int64_t i, j;
    double d;
    if (h5ml__close_pair(s->natoms, s->positions, s->cell, s->pbc, 0.5, &i, &j, &d)) {
        snprintf(msg, sizeof msg, "atoms %lld and %lld are %.3f \xc3\x85 apart (below 0.5 \xc3\x85)", (long long)i,
                 (long long)j, d);
        emit(ctx, index, 0, msg);
    }
    double fmax2 = 0;
    int64_t at = -1;
    for (int64_t k = 0; k < s->natoms; k++) {
        const double *f = s->forces + 3 * k;
        double f2 = f[0] * f[0] + f[1] * f[1] + f[2] * f[2];
        if (f2 > fmax2) {
            fmax2 = f2;
            at = k;
        }
    }
    if (fmax2 > 50.0 * 50.0) {
        snprintf(msg, sizeof msg, "|F| = %.2f eV/\xc3\x85 on atom %lld (above 50 eV/\xc3\x85)", sqrt(fmax2), (long long)at);
        emit(ctx, index, 1, msg);
    }
}

static void warn_now(void *ctx, int64_t index, int order, const char *msg)
{
    (void)order;
    h5ml__warn(ctx, "structure %lld: %s", (long long)index, msg);
}

static void voigt(const h5ml_structure *s, double out[6], uint8_t *mask)
{
    memset(out, 0, 6 * sizeof *out);
    *mask = s->stress != NULL;
    if (!s->stress) return;
    const double *t = s->stress;
    if ((s->stress_len ? s->stress_len : 6) == 9) {
        out[0] = t[0];
        out[1] = t[4];
        out[2] = t[8];
        out[3] = t[5];
        out[4] = t[2];
        out[5] = t[1];
    } else {
        memcpy(out, t, 6 * sizeof *out);
    }
}

static int append_structure(h5ml_writer *w, const h5ml_structure *s)
{
    int64_t na = s->natoms;
    if (na > w->f32_cap) {
        float *p = realloc(w->f32, sizeof *p * 3 * (size_t)na);
        if (p == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
        w->f32 = p;
        w->f32_cap = na;
    }
    for (int64_t k = 0; k < 3 * na; k++) w->f32[k] = (float)s->forces[k];
    static const double zero9[9] = { 0 };
    int8_t pbc[3] = { 0, 0, 0 };
    if (s->pbc)
        for (int k = 0; k < 3; k++) pbc[k] = s->pbc[k] ? 1 : 0;
    double st[6];
    uint8_t mask;
    voigt(s, st, &mask);
    int8_t mask8 = (int8_t)mask;
    int64_t split = w->m + na, index = w->n;
    colsink *sc = &w->sink;
    column *c = w->col;
    int e = 0;
    e |= h5ml__col_append(&c[COL_NUMBERS], sc, s->numbers, na);
    e |= h5ml__col_append(&c[COL_POSITIONS], sc, s->positions, na);
    e |= h5ml__col_append(&c[COL_FORCES], sc, w->f32, na);
    e |= h5ml__col_append(&c[COL_NUMBERS_SPLITS], sc, &split, 1);
    e |= h5ml__col_append(&c[COL_FORCES_SPLITS], sc, &split, 1);
    e |= h5ml__col_append(&c[COL_CELLS], sc, s->cell ? s->cell : zero9, 1);
    e |= h5ml__col_append(&c[COL_PBC], sc, pbc, 1);
    e |= h5ml__col_append(&c[COL_ENERGY], sc, &s->energy, 1);
    e |= h5ml__col_append(&c[COL_STRESS], sc, st, 1);
    e |= h5ml__col_append(&c[COL_STRESS_MASK], sc, &mask8, 1);
    e |= h5ml__col_append(&c[COL_INDICES], sc, &index, 1);
    if (e) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write structure %lld", w->path, (long long)index);
    int rc = push_info(w, s->info_json);
    if (rc) return rc;
    h5ml__stats_add(&w->stats, na, s->numbers, s->energy, NULL, w->f32, mask, (const uint8_t *)pbc);
    w->n++;
    w->m += na;
    w->added++;
    if (w->n - w->info_written >= w->chunk_structs && (rc = flush_info(w)) != 0) return rc;
    return H5ML_OK;
}

static int not_open(h5ml_writer *w)
{
    if (w->rolled_back) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer was rolled back: open a new one to write again");
    if (w->finalized) return h5ml__fail(&w->base, H5ML_ERR_STATE, "Cannot add structures after finalize() has been called");
    return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
}

static int add_one(h5ml_writer *w, const h5ml_structure *s)
{
    if (!w->is_open) return not_open(w);
    if (s == NULL) return h5ml__fail(&w->base, H5ML_ERR_ARG, "no structure given");
    if (s->natoms < 0 || (s->natoms > 0 && (!s->numbers || !s->positions || !s->forces)))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "structure arrays missing (numbers, positions and forces are required)");
    bool validate = opt(w, H5ML_OPT_VALIDATE) > 0;
    if (validate) {
        char msg[256];
        if (h5ml__validate(s, msg, sizeof msg)) return h5ml__fail(&w->base, H5ML_ERR_VALUE, "%s", msg);
        int rc = check_info_json(w, s->info_json);
        if (rc) return rc;
    } else if ((s->forces_rows ? s->forces_rows : s->natoms) != s->natoms) {
        /* Even unvalidated, the arrays must line up or the file would be corrupt. */
        return h5ml__fail(&w->base, H5ML_ERR_VALUE, "Forces shape (%lld, 3) doesn't match atoms (%lld, 3)",
                          (long long)s->forces_rows, (long long)s->natoms);
    }
    uint64_t hash = 0;
    if (w->dedup) {
        int8_t pbc8[3];
        dedup_key k = key_of(s->natoms, s->numbers, s->positions, s->cell, s->pbc, pbc8);
        hash = h5ml__dedup_hash(&k);
        bool dup;
        int rc = find_duplicate(w, &k, hash, NULL, NULL, &dup);
        if (rc) return rc;
        if (dup) {
            w->deduplicated++;
            return H5ML_OK;
        }
    }
    if (validate) plausibility(s, w->n, warn_now, &w->base);
    int rc = append_structure(w, s);
    if (rc) return rc;
    if (w->dedup) h5ml__dedup_insert(&w->seen, hash, w->n - 1); /* room made by find_duplicate */
    int64_t every = opt(w, H5ML_OPT_CHECKPOINT_MS);
    if (every > 0 && now_ms() - w->last_ckpt >= (double)every) return checkpoint(w);
    return H5ML_OK;
}

int h5ml_writer_add(h5ml_writer *w, const h5ml_structure *s)
{
    if (w == NULL) return H5ML_ERR_ARG;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = io_check(w, w->broken ? H5ML_OK : add_one(w, s));
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- batches ----------------------------------------------------------------------------
 * A batch is checked and written a column at a time rather than a structure at a time: the
 * hard checks (the ones that reject) scan each array once to find the first structure that
 * fails, everything before it is appended column by column, and the plausibility checks
 * (which only warn) run meanwhile on other threads; their warnings are issued in structure
 * order when the batch is done. The result is what adding the structures one by one gives. */

/* The batch's structure k as the per-structure API sees it. */
static h5ml_structure batch_structure(const h5ml_batch *b, const int64_t *off, int64_t k)
{
    int64_t a = off[k];
    return (h5ml_structure){
        .natoms = b->natoms[k],
        .numbers = b->numbers ? b->numbers + a : NULL,
        .positions = b->positions ? b->positions + 3 * a : NULL,
        .cell = b->cells ? b->cells + 9 * k : NULL,
        .pbc = b->pbc ? b->pbc + 3 * k : NULL,
        .energy = b->energies[k],
        .forces = b->forces ? b->forces + 3 * a : NULL,
        .stress = (b->stress && (!b->stress_mask || b->stress_mask[k])) ? b->stress + 6 * k : NULL,
        .stress_len = 6,
        .info_json = b->info_json ? b->info_json[k] : NULL,
    };
}

/* The structure that atom `a` belongs to (off: count+1 prefix sums). */
static int64_t structure_of_atom(const int64_t *off, int64_t count, int64_t a)
{
    int64_t lo = 0, hi = count; /* off[lo] <= a < off[hi] */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (off[mid] <= a) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* Index of the first non-finite value of v[0..n), or n. */
static int64_t first_nonfinite(const double *v, int64_t n)
{
    enum { STEP = 4096 };
    for (int64_t at = 0; at < n; at += STEP) {
        int64_t e = n - at < STEP ? n - at : STEP;
        if (h5ml__any_nonfinite(v + at, e))
            for (int64_t i = 0; i < e; i++)
                if (!isfinite(v[at + i])) return at + i;
    }
    return n;
}

/* The first structure of [s, e) that a hard check rejects, or e. Each check finds the first
 * failing structure of its own array; the earliest of them is the answer (the per-structure
 * validator then words its message). Thread-safe. */
static int64_t first_rejected(const h5ml_batch *b, const int64_t *off, int64_t s, int64_t e)
{
    int64_t bad = e, k, a0 = off[s], na = off[e] - a0;
    for (k = s; k < e; k++)
        if (!isfinite(b->energies[k])) break;
    bad = k;
    if (b->forces && (k = first_nonfinite(b->forces + 3 * a0, 3 * na)) < 3 * na) {
        k = structure_of_atom(off, e, a0 + k / 3);
        if (k < bad) bad = k;
    }
    if (b->positions && (k = first_nonfinite(b->positions + 3 * a0, 3 * na)) < 3 * na) {
        k = structure_of_atom(off, e, a0 + k / 3);
        if (k < bad) bad = k;
    }
    if (b->cells && (k = first_nonfinite(b->cells + 9 * s, 9 * (e - s))) < 9 * (e - s) && s + k / 9 < bad) bad = s + k / 9;
    if (b->stress)
        for (k = s; k < bad; k++)
            if ((!b->stress_mask || b->stress_mask[k]) && first_nonfinite(b->stress + 6 * k, 6) < 6) {
                bad = k;
                break;
            }
    if (b->numbers)
        for (int64_t a = a0; a < off[bad]; a++)
            if ((uint64_t)b->numbers[a] > 118) {
                bad = structure_of_atom(off, e, a);
                break;
            }
    if (b->info_json)
        for (k = s; k < bad; k++)
            if (!info_json_ok(b->info_json[k])) {
                bad = k;
                break;
            }
    return bad;
}

/* Checking runs ahead of writing: worker threads take blocks of structures in order, find
 * the first rejected structure of each block and collect the plausibility warnings of the
 * ones before it, while the calling thread writes each block as soon as it is checked. */
typedef struct held_warning {
    int64_t index;
    int order;
    char *msg;
} held_warning;

typedef struct warn_list {
    held_warning *v;
    size_t n, cap;
} warn_list;

typedef struct checker {
    const h5ml_batch *b;
    const int64_t *off;
    int64_t n, first_index, block, nblocks;
    bool validate;
    int64_t *good;       /* per block: end of its accepted structures, published under mu */
    uint64_t *hashes;    /* per structure: its dedup hash (accepted ones; NULL without dedup) */
    int64_t next;        /* next block to take (atomic) */
    bool stop;           /* the writer stopped: take no more blocks (atomic) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    warn_list *lists;    /* one per worker */
} checker;

typedef struct warn_ctx { warn_list *list; } warn_ctx;

static void hold_warning(void *ctx, int64_t index, int order, const char *msg)
{
    warn_list *l = ((warn_ctx *)ctx)->list;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        held_warning *p = realloc(l->v, sizeof *p * cap);
        if (p == NULL) return; /* out of memory: the warning is lost, the data is not */
        l->v = p;
        l->cap = cap;
    }
    char *copy = strdup(msg);
    if (copy) l->v[l->n++] = (held_warning){ index, order, copy };
}

static void check_block(checker *c, int64_t blk, warn_list *list)
{
    int64_t s = blk * c->block, e = s + c->block < c->n ? s + c->block : c->n;
    int64_t good = c->validate ? first_rejected(c->b, c->off, s, e) : e;
    warn_ctx ctx = { list };
    for (int64_t k = s; k < good && c->validate; k++) {
        h5ml_structure st = batch_structure(c->b, c->off, k);
        plausibility(&st, k, hold_warning, &ctx); /* numbered when issued */
    }
    for (int64_t k = s; k < good && c->hashes; k++) {
        h5ml_structure st = batch_structure(c->b, c->off, k);
        int8_t pbc8[3];
        dedup_key key = key_of(st.natoms, st.numbers, st.positions, st.cell, st.pbc, pbc8);
        c->hashes[k] = h5ml__dedup_hash(&key);
    }
    pthread_mutex_lock(&c->mu);
    c->good[blk] = good;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

typedef struct worker_arg { checker *c; int id; } worker_arg;

static void *check_worker(void *arg)
{
    worker_arg *wa = arg;
    checker *c = wa->c;
    for (;;) {
        if (__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) break;
        int64_t blk = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (blk >= c->nblocks) break;
        check_block(c, blk, &c->lists[wa->id]);
    }
    return NULL;
}

/* Waits for block blk to be checked (checking it here if no worker runs, and helping the
 * workers meanwhile) and returns the end of its accepted structures. */
static int64_t wait_block(checker *c, int64_t blk, int workers)
{
    if (workers == 0) {
        check_block(c, blk, &c->lists[0]);
        return c->good[blk];
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int64_t g = c->good[blk];
        pthread_mutex_unlock(&c->mu);
        if (g >= 0) return g;
        /* Rather than sleep, check the next block no worker has taken (warnings in the
         * caller's own list, lists[workers]); blocks are taken in order, so blk itself is
         * either taken already or checked here. */
        if (__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) break;
        int64_t nb = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (nb >= c->nblocks) break;
        check_block(c, nb, &c->lists[workers]);
    }
    pthread_mutex_lock(&c->mu);
    while (c->good[blk] < 0) pthread_cond_wait(&c->cv, &c->mu);
    int64_t g = c->good[blk];
    pthread_mutex_unlock(&c->mu);
    return g;
}

static int cmp_warning(const void *x, const void *y)
{
    const held_warning *a = x, *b = y;
    if (a->index != b->index) return a->index < b->index ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

/* Issues the warnings of batch structures before `end` in structure order, numbered as
 * written: first_index + k, or where[k] (-1: not written, no warning) when where is given. */
static void issue_warnings(h5ml_writer *w, warn_list *lists, int nlists, int64_t end, int64_t first_index,
                           const int64_t *where)
{
    size_t total = 0;
    for (int t = 0; t < nlists; t++) total += lists[t].n;
    held_warning *all = total ? malloc(sizeof *all * total) : NULL;
    size_t k = 0;
    for (int t = 0; t < nlists; t++) {
        for (size_t i = 0; i < lists[t].n; i++) {
            if (all) all[k++] = lists[t].v[i];
            else free(lists[t].v[i].msg);
        }
        free(lists[t].v);
    }
    if (all == NULL) return;
    qsort(all, k, sizeof *all, cmp_warning);
    for (size_t i = 0; i < k; i++) {
        int64_t at = all[i].index >= end ? -1 : where ? where[all[i].index] : first_index + all[i].index;
        if (at >= 0) h5ml__warn(&w->base, "structure %lld: %s", (long long)at, all[i].msg);
        free(all[i].msg);
    }
    free(all);
}

/* Per-structure rows written straight into the columns' buffers (h5ml__col_append_fill). */
typedef struct gen_ctx {
    const h5ml_batch *b;
    const int64_t *off;
    int64_t m0, n0;
} gen_ctx;

static void fill_splits(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    int64_t *out = buf;
    for (int64_t i = 0; i < count; i++) out[i] = g->m0 + g->off[first + i + 1] - g->off[0];
}

static void fill_cells(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    if (g->b->cells) memcpy(buf, g->b->cells + 9 * first, sizeof(double) * 9 * (size_t)count);
    else memset(buf, 0, sizeof(double) * 9 * (size_t)count);
}

static void fill_pbc(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    int8_t *out = buf;
    for (int64_t i = 0; i < 3 * count; i++) out[i] = g->b->pbc ? g->b->pbc[3 * first + i] != 0 : 0;
}

static void fill_stress(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    double *out = buf;
    for (int64_t i = 0; i < count; i++) {
        int64_t k = first + i;
        if (g->b->stress && (!g->b->stress_mask || g->b->stress_mask[k])) memcpy(out + 6 * i, g->b->stress + 6 * k, 6 * sizeof *out);
        else memset(out + 6 * i, 0, 6 * sizeof *out);
    }
}

static void fill_mask(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    int8_t *out = buf;
    for (int64_t i = 0; i < count; i++) out[i] = g->b->stress && (!g->b->stress_mask || g->b->stress_mask[first + i]);
}

static void fill_indices(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const gen_ctx *g = ctx;
    int64_t *out = buf;
    for (int64_t i = 0; i < count; i++) out[i] = g->n0 + first + i;
}

/* Forces as float32, converted straight into the column's buffer. */
static void fill_forces(const void *ctx, int64_t first, int64_t count, void *buf)
{
    const double *f = ctx;
    float *out = buf;
    for (int64_t i = 0; i < 3 * count; i++) out[i] = (float)f[3 * first + i];
}

static int append_forces_and_stats(h5ml_writer *w, const h5ml_batch *b, const int64_t *off, int64_t n)
{
    if (h5ml__col_append_fill(&w->col[COL_FORCES], &w->sink, off[n] - off[0], fill_forces, b->forces) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write %s", w->path, h5ml__cols[COL_FORCES].path);
    for (int64_t s = 0; s < n; s++) {
        uint8_t pbc[3] = { 0, 0, 0 };
        if (b->pbc) memcpy(pbc, b->pbc + 3 * s, 3);
        int has_stress = b->stress && (!b->stress_mask || b->stress_mask[s]);
        int64_t a = off[s] - off[0];
        if (b->natoms[s] > 0)
            h5ml__stats_add(&w->stats, b->natoms[s], b->numbers + a, b->energies[s], b->forces + 3 * a, NULL, has_stress, pbc);
        else
            h5ml__stats_add(&w->stats, 0, NULL, b->energies[s], NULL, NULL, has_stress, pbc);
    }
    return H5ML_OK;
}

/* Appends structures [0, n) of the batch (all checked) column by column; `off` holds their
 * atom offsets (off[0] need not be 0: b may be a view into a larger batch). */
static int append_batch(h5ml_writer *w, const h5ml_batch *b, const int64_t *off, int64_t n)
{
    int64_t atoms = off[n] - off[0];
    gen_ctx g = { b, off, w->m, w->n };
    colsink *sk = &w->sink;
    int e = 0;
    if (atoms > 0) {
        e |= h5ml__col_append(&w->col[COL_NUMBERS], sk, b->numbers, atoms);
        e |= h5ml__col_append(&w->col[COL_POSITIONS], sk, b->positions, atoms);
    }
    e |= h5ml__col_append_fill(&w->col[COL_NUMBERS_SPLITS], sk, n, fill_splits, &g);
    e |= h5ml__col_append_fill(&w->col[COL_FORCES_SPLITS], sk, n, fill_splits, &g);
    e |= h5ml__col_append_fill(&w->col[COL_CELLS], sk, n, fill_cells, &g);
    e |= h5ml__col_append_fill(&w->col[COL_PBC], sk, n, fill_pbc, &g);
    e |= h5ml__col_append(&w->col[COL_ENERGY], sk, b->energies, n);
    e |= h5ml__col_append_fill(&w->col[COL_STRESS], sk, n, fill_stress, &g);
    e |= h5ml__col_append_fill(&w->col[COL_STRESS_MASK], sk, n, fill_mask, &g);
    e |= h5ml__col_append_fill(&w->col[COL_INDICES], sk, n, fill_indices, &g);
    if (e) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write structures %lld..%lld", w->path, (long long)w->n,
                                (long long)(w->n + n - 1));
    int rc = append_forces_and_stats(w, b, off, n);
    for (int64_t k = 0; k < n && rc == H5ML_OK; k++) {
        rc = push_info(w, b->info_json ? b->info_json[k] : NULL);
        if (rc == H5ML_OK) w->n++;
        if (rc == H5ML_OK && w->n - w->info_written >= w->chunk_structs) rc = flush_info(w);
    }
    if (rc) return rc;
    w->m += atoms;
    w->added += n;
    return H5ML_OK;
}

/* Structures [s, e) of b as a batch of their own (off stays the caller's). */
static h5ml_batch batch_view(const h5ml_batch *b, const int64_t *off, int64_t s, int64_t e)
{
    int64_t a = off[s];
    return (h5ml_batch){
        .count = e - s,
        .natoms = b->natoms + s,
        .numbers = b->numbers ? b->numbers + a : NULL,
        .positions = b->positions ? b->positions + 3 * a : NULL,
        .cells = b->cells ? b->cells + 9 * s : NULL,
        .pbc = b->pbc ? b->pbc + 3 * s : NULL,
        .energies = b->energies + s,
        .forces = b->forces ? b->forces + 3 * a : NULL,
        .stress = b->stress ? b->stress + 6 * s : NULL,
        .stress_mask = b->stress_mask ? b->stress_mask + s : NULL,
        .info_json = b->info_json ? b->info_json + s : NULL,
    };
}

static int append_run(h5ml_writer *w, const h5ml_batch *b, const int64_t *off, int64_t s, int64_t e)
{
    if (e == s) return H5ML_OK;
    h5ml_batch view = batch_view(b, off, s, e);
    return append_batch(w, &view, off + s, e - s);
}

/* The accepted structures of the batch not appended yet: [first, k) as indices [n0, ...). */
typedef struct pending_run {
    const h5ml_batch *b;
    const int64_t *off;
    int64_t first, n0;
} pending_run;

static bool pending_equal(const void *ctx, const dedup_key *k, int64_t index)
{
    const pending_run *r = ctx;
    h5ml_structure st = batch_structure(r->b, r->off, r->first + (index - r->n0));
    int8_t pbc8[3];
    dedup_key other = key_of(st.natoms, st.numbers, st.positions, st.cell, st.pbc, pbc8);
    return h5ml__dedup_equal(k, &other);
}

/* Appends the structures of [s, e) that duplicate nothing in the file or before them in the
 * batch, in runs between the duplicates; where[k] receives the index structure k was
 * written at, -1 for a duplicate. */
static int append_unique(h5ml_writer *w, const h5ml_batch *b, const int64_t *off, int64_t s, int64_t e,
                         const uint64_t *hashes, int64_t *where)
{
    pending_run run = { b, off, s, w->n };
    for (int64_t k = s; k < e; k++) {
        h5ml_structure st = batch_structure(b, off, k);
        int8_t pbc8[3];
        dedup_key key = key_of(st.natoms, st.numbers, st.positions, st.cell, st.pbc, pbc8);
        bool dup;
        int rc = find_duplicate(w, &key, hashes[k], pending_equal, &run, &dup);
        if (rc) return rc;
        if (!dup) {
            where[k] = run.n0 + (k - run.first);
            h5ml__dedup_insert(&w->seen, hashes[k], where[k]);
            continue;
        }
        w->deduplicated++;
        if ((rc = append_run(w, b, off, run.first, k)) != H5ML_OK) return rc;
        run.first = k + 1;
        run.n0 = w->n;
    }
    return append_run(w, b, off, run.first, e);
}

/* Checks (on workers) and writes (here) structures [0, n); returns the end of the accepted
 * ones through *good. */
static int check_and_write(h5ml_writer *w, const h5ml_batch *b, const int64_t *off, int64_t n, int64_t *good)
{
    enum { BLOCK = 4096 };
    checker c = { .b = b, .off = off, .n = n, .first_index = w->n, .block = BLOCK, .validate = opt(w, H5ML_OPT_VALIDATE) > 0 };
    c.nblocks = (n + BLOCK - 1) / BLOCK;
    int64_t threads = opt(w, H5ML_OPT_THREADS);
    /* Checking runs on one thread fewer than the cores, so that the writing thread keeps a
     * core of its own (measured: 0.14 s instead of 0.16-0.21 s for 100,000 64-atom
     * structures uncompressed on 2 cores). One thread (H5ML_OPT_THREADS = 1) checks
     * inline: the whole write on the caller's thread. */
    int total = (int)(threads ? threads : h5ml__default_threads());
    int workers = total > 2 ? total - 1 : 1;
    if ((!c.validate && !w->dedup) || c.nblocks < 2 || total < 2) workers = 0; /* nothing to overlap */
    c.good = malloc(sizeof *c.good * (size_t)(c.nblocks ? c.nblocks : 1));
    c.lists = calloc((size_t)workers + 1, sizeof *c.lists); /* the workers', and the caller's */
    worker_arg *args = calloc((size_t)(workers ? workers : 1), sizeof *args);
    pthread_t *tid = calloc((size_t)(workers ? workers : 1), sizeof *tid);
    int64_t *where = NULL;
    if (w->dedup) {
        c.hashes = malloc(sizeof *c.hashes * (size_t)(n ? n : 1));
        where = malloc(sizeof *where * (size_t)(n ? n : 1));
    }
    if (!c.good || !c.lists || !args || !tid || (w->dedup && (!c.hashes || !where))) {
        free(c.good);
        free(c.lists);
        free(args);
        free(tid);
        free(c.hashes);
        free(where);
        return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    }
    for (int64_t k = 0; k < n && where; k++) where[k] = -1;
    for (int64_t k = 0; k < c.nblocks; k++) c.good[k] = -1;
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    int started = 0;
    for (int t = 0; t < workers; t++) {
        args[t] = (worker_arg){ &c, t };
        if (pthread_create(&tid[t], NULL, check_worker, &args[t]) != 0) break;
        started++;
    }
    int rc = H5ML_OK;
    *good = 0;
    for (int64_t blk = 0; blk < c.nblocks && rc == H5ML_OK; blk++) {
        int64_t s = blk * BLOCK, end = wait_block(&c, blk, started);
        rc = w->dedup ? append_unique(w, b, off, s, end, c.hashes, where) : append_run(w, b, off, s, end);
        if (rc == H5ML_OK) *good = end;
        if (end < (s + BLOCK < n ? s + BLOCK : n)) break; /* a structure of this block was rejected */
    }
    __atomic_store_n(&c.stop, true, __ATOMIC_RELAXED);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    issue_warnings(w, c.lists, started + 1, *good, c.first_index, where);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    free(c.hashes);
    free(where);
    free(c.good);
    free(c.lists);
    free(args);
    free(tid);
    return rc;
}

static int add_batch(h5ml_writer *w, const h5ml_batch *b)
{
    if (!w->is_open) return not_open(w);
    int64_t n = b->count;
    int64_t *off = malloc(sizeof *off * (size_t)(n + 1));
    if (off == NULL) return h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
    int64_t neg = n; /* the first structure with a negative atom count */
    off[0] = 0;
    for (int64_t k = 0; k < n; k++) {
        if (b->natoms[k] < 0 && neg == n) neg = k;
        off[k + 1] = off[k] + (k < neg ? b->natoms[k] : 0);
    }
    int rc = H5ML_OK;
    int64_t good = 0;
    if (off[neg] > 0 && (!b->numbers || !b->positions || !b->forces))
        rc = h5ml__fail(&w->base, H5ML_ERR_ARG, "batch arrays missing (numbers, positions and forces are required)");
    if (rc == H5ML_OK) rc = check_and_write(w, b, off, neg, &good);
    if (rc == H5ML_OK && good < n) {
        char msg[256] = "";
        if (good == neg) {
            snprintf(msg, sizeof msg, "Invalid number of atoms: %lld", (long long)b->natoms[good]);
        } else {
            h5ml_structure st = batch_structure(b, off, good);
            if (h5ml__validate(&st, msg, sizeof msg) == H5ML_OK && check_info_json(w, st.info_json) != H5ML_OK)
                snprintf(msg, sizeof msg, "%.200s", w->base.msg);
        }
        rc = h5ml__fail(&w->base, H5ML_ERR_VALUE, "%s (structure %lld of the batch)", msg, (long long)good);
    }
    free(off);
    int64_t every = opt(w, H5ML_OPT_CHECKPOINT_MS);
    if (rc == H5ML_OK && every > 0 && now_ms() - w->last_ckpt >= (double)every) rc = checkpoint(w);
    return rc;
}

int h5ml_writer_add_batch(h5ml_writer *w, const h5ml_batch *b)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (b == NULL || b->count < 0 || (b->count > 0 && (!b->natoms || !b->energies)))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "batch arrays missing (natoms and energies are required)");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = io_check(w, w->broken ? H5ML_OK : add_batch(w, b));
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- checkpoints, metadata, finalize ---------------------------------------------------- */

static int flush_all(h5ml_writer *w, bool final)
{
    for (int c = 0; c < COL_COUNT; c++)
        if (h5ml__col_flush(&w->col[c], &w->sink, final) < 0)
            return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write %s", w->path, h5ml__cols[c].path);
    if (h5ml__sink_drain(&w->sink) < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot write chunks", w->path);
    return flush_info(w);
}

/* Writes the file's metadata with that of the per-atom datasets and /labels/info (with the
 * global heap of its strings, and the /labels group that links it) first, then the splits
 * and the other per-structure datasets. An HDF5 flush alone writes in file-address order,
 * which put /structures/atomic_numbers_splits and /labels/energy before /labels/forces: a
 * reader beside the writer (h5py in SWMR mode, h5ml_reader_refresh) could count a
 * structure whose atoms had not reached the file. The chunks themselves are written before
 * (flush_all), and SWMR writes a dataset's chunk index before its extent. */
static int flush_file(h5ml_writer *w)
{
    hid_t labels = w->info >= 0 ? H5Gopen2(w->file, "labels", H5P_DEFAULT) : H5I_INVALID_HID;
    const hid_t first[] = { w->col[COL_NUMBERS].dset, w->col[COL_POSITIONS].dset, w->col[COL_FORCES].dset, w->info, labels };
    int e = h5ml__safe_flush_first(w->file, first, (int)(sizeof first / sizeof *first));
    if (labels >= 0) H5Gclose(labels);
    if (e < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot flush", w->path);
    return H5ML_OK;
}

static int checkpoint(h5ml_writer *w)
{
    /* Two flushes: the data and extents reach the disk before the /metadata that counts them,
     * so after a kill the attributes describe at most what the datasets hold. */
    int rc = flush_all(w, false);
    if (rc == H5ML_OK) rc = flush_file(w);
    if (rc) return rc;
    if (h5ml__stats_write(w->g_meta, &w->stats) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write /metadata", w->path);
    if (h5ml__safe_flush(w->file) < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot flush", w->path);
    if ((rc = io_check(w, H5ML_OK)) != H5ML_OK) return rc;
    w->checkpoints++;
    w->committed = w->n;
    w->last_ckpt = now_ms();
    return H5ML_OK;
}

int h5ml_writer_checkpoint(h5ml_writer *w)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (!w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = io_check(w, w->broken ? H5ML_OK : checkpoint(w));
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

/* Checks a caller's /metadata key: not empty, no '/', not one of h5ml's own. */
static int meta_key_ok(h5ml_writer *w, const char *key)
{
    h5ml__ok(&w->base);
    if (key == NULL || !*key || strchr(key, '/'))
        return h5ml__fail(&w->base, H5ML_ERR_ARG, "invalid metadata key '%s' (empty or contains '/')", key ? key : "");
    /* Keys and strings that are not UTF-8 vanished from h5ml_reader_metadata (fuzz_json_meta). */
    if (!h5ml__utf8_ok(key)) return h5ml__fail(&w->base, H5ML_ERR_ARG, "metadata key '%s' is not valid UTF-8", key);
    for (const char *const *r = reserved_keys; *r; r++)
        if (strcmp(*r, key) == 0)
            return h5ml__fail(&w->base, H5ML_ERR_ARG, "metadata key '%s' is reserved for h5ml's own attributes", key);
    if (w->finalized) return h5ml__fail(&w->base, H5ML_ERR_STATE, "metadata must be set before finalize()");
    return H5ML_OK;
}

static int meta_stored(h5ml_writer *w, int stored)
{
    return stored == 0 ? h5ml__ok(&w->base) : h5ml__fail(&w->base, H5ML_ERR_NOMEM, "out of memory");
}

int h5ml_writer_meta_string(h5ml_writer *w, const char *key, const char *value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    if (rc == H5ML_OK && value && !h5ml__utf8_ok(value))
        rc = h5ml__fail(&w->base, H5ML_ERR_ARG, "metadata '%s': the value is not valid UTF-8", key);
    return rc ? rc : meta_stored(w, h5ml__attrs_str(&w->meta, key, value));
}

int h5ml_writer_meta_int(h5ml_writer *w, const char *key, int64_t value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    return rc ? rc : meta_stored(w, h5ml__attrs_int(&w->meta, key, value));
}

int h5ml_writer_meta_double(h5ml_writer *w, const char *key, double value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    return rc ? rc : meta_stored(w, h5ml__attrs_double(&w->meta, key, value));
}

int h5ml_writer_meta_bool(h5ml_writer *w, const char *key, int value)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    return rc ? rc : meta_stored(w, h5ml__attrs_bool(&w->meta, key, value));
}

int h5ml_writer_meta_json(h5ml_writer *w, const char *key, const char *json)
{
    if (w == NULL) return H5ML_ERR_ARG;
    json_error_t err;
    json_t *v = json ? json_loads(json, JSON_DECODE_ANY, &err) : NULL;
    if (v == NULL)
        return h5ml__fail(&w->base, H5ML_ERR_VALUE, "metadata '%s': not valid JSON (%s)", key ? key : "",
                          json ? err.text : "NULL");
    char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    int rc = meta_key_ok(w, key);
    if (rc == H5ML_OK) rc = compact ? meta_stored(w, h5ml__attrs_str(&w->meta, key, compact)) : meta_stored(w, -1);
    free(compact);
    return rc;
}

int h5ml_writer_meta_doubles(h5ml_writer *w, const char *key, const double *v, size_t n)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    return rc ? rc : meta_stored(w, h5ml__attrs_doubles(&w->meta, key, v, n));
}

int h5ml_writer_meta_ints(h5ml_writer *w, const char *key, const int64_t *v, size_t n)
{
    if (w == NULL) return H5ML_ERR_ARG;
    int rc = meta_key_ok(w, key);
    return rc ? rc : meta_stored(w, h5ml__attrs_ints(&w->meta, key, v, n));
}

static int finalize(h5ml_writer *w)
{
    int rc = flush_all(w, true);
    if (rc == H5ML_OK) rc = flush_file(w);
    if (rc) return rc;
    char ts[32];
    h5ml__iso8601(ts);
    if (h5ml__stats_write(w->g_meta, &w->stats) < 0 || h5ml__attr_str(w->g_meta, "updated", ts) < 0 ||
        h5ml__attrs_write(w->g_meta, &w->meta) < 0 || h5ml__attr_bool(w->g_meta, "finalized", 1) < 0)
        return h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot write /metadata", w->path);
    if (h5ml__safe_flush(w->file) < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot flush", w->path);
    return H5ML_OK;
}

/* Finalizes and closes; `move`: a file made to replace another takes its place. A broken
 * writer only closes: its file keeps its last checkpoint, unfinalized. */
static int finalize_close(h5ml_writer *w, bool move)
{
    int rc = io_check(w, w->broken ? H5ML_OK : finalize(w));
    reset(w);
    /* The file's last writes happen as it closes. */
    int e = w->broken ? 0 : h5ml__safe_path_error(file_path(w));
    if (e) rc = broke(w, e);
    if (rc == H5ML_OK && move && w->replacing && w->tmp_path) rc = move_into_place(w);
    if (rc == H5ML_OK) w->committed = w->n;
    unlock(w);
    w->finalized = true;
    return rc;
}

int h5ml_writer_finalize(h5ml_writer *w)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->finalized) {
        h5ml__warn(&w->base, "%s: finalize() was already called", w->path ? w->path : "writer");
        return h5ml__ok(&w->base);
    }
    if (!w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = finalize_close(w, true);
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    h5ml__h5_restore(&q);
    return rc;
}

int h5ml_writer_finalize_aside(h5ml_writer *w, const char **where)
{
    if (where) *where = NULL;
    if (w == NULL) return H5ML_ERR_ARG;
    if (w->finalized || !w->is_open) {
        int rc = h5ml_writer_finalize(w);
        if (where && rc == H5ML_OK) *where = w->kept_path ? w->kept_path : w->path;
        return rc;
    }
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = finalize_close(w, false);
    if (rc == H5ML_OK && w->tmp_path) { /* kept beside the file it was to replace */
        w->kept_path = w->tmp_path;
        w->tmp_path = NULL;
    }
    if (rc == H5ML_OK) h5ml__ok(&w->base);
    if (where && rc == H5ML_OK) *where = w->kept_path ? w->kept_path : w->path;
    h5ml__h5_restore(&q);
    return rc;
}

static int rollback(h5ml_writer *w)
{
    bool created = w->created;
    int rc = H5ML_OK;
    if (w->broken && !created) {
        /* Cutting the file back means writing to it: leave it as a crash would. */
        reset(w);
        return h5ml__fail(&w->base, H5ML_ERR_IO,
                          "%s: not rolled back after a failed write; it holds what it had at its last checkpoint (%lld "
                          "structures) and an append continues it",
                          w->path, (long long)w->committed);
    }
    /* Drop the buffers without writing them, then undo what reached the file. */
    w->info_any = false;
    reset(w);
    if (created) {
        const char *made = w->tmp_path ? w->tmp_path : w->path; /* a replaced file stays as it was */
        if (unlink(made) < 0 && errno != ENOENT)
            rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot remove: %s", made, strerror(errno));
        return rc;
    }
    hid_t fapl = h5ml__fapl_safe();
    hid_t f = H5Fopen(w->path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0) return h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot reopen to roll back", w->path);
    rc = shrink(w, f, w->n0, w->m0);
    if (rc == H5ML_OK && !w->info_existed && H5Lexists(f, H5ML_INFO_PATH, H5P_DEFAULT) > 0)
        H5Ldelete(f, H5ML_INFO_PATH, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "metadata", H5P_DEFAULT);
    if (rc == H5ML_OK && (g < 0 || h5ml__stats_write(g, &w->stats0) < 0 || h5ml__attr_bool(g, "finalized", 1) < 0))
        rc = h5ml__fail_h5(&w->base, H5ML_ERR_HDF5, "%s: cannot restore /metadata", w->path);
    if (g >= 0) H5Gclose(g);
    if (H5Fclose(f) < 0 && rc == H5ML_OK) rc = h5ml__fail_h5(&w->base, H5ML_ERR_IO, "%s: cannot close", w->path);
    int e = h5ml__safe_path_error(w->path);
    if (e && rc == H5ML_OK) rc = h5ml__fail(&w->base, H5ML_ERR_IO, "%s: cannot roll back: %s", w->path, strerror(e));
    return rc;
}

int h5ml_writer_rollback(h5ml_writer *w)
{
    if (w == NULL) return H5ML_ERR_ARG;
    if (!w->is_open) return h5ml__fail(&w->base, H5ML_ERR_STATE, "the writer is not open");
    /* Keep the caller's message (the reason for the rollback) unless the rollback fails. */
    h5ml_base saved = w->base;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = rollback(w);
    unlock(w);
    w->finalized = true;
    w->rolled_back = true;
    w->n = w->n0;
    w->m = w->m0;
    w->stats = w->stats0;
    h5ml__h5_restore(&q);
    if (rc == H5ML_OK) w->base = saved;
    return rc;
}

int h5ml_writer_close(h5ml_writer *w)
{
    if (w == NULL) return H5ML_OK;
    int rc = H5ML_OK;
    if (w->is_open) rc = h5ml_writer_finalize(w);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    reset(w);
    if (w->mt_bool >= 0) H5Tclose(w->mt_bool);
    h5ml__h5_restore(&q);
    unlock(w);
    if (w->tmp_path) unlink(w->tmp_path);
    h5ml__attrs_free(&w->meta);
    free(w->f32);
    h5ml__sink_free(&w->sink);
    free(w->tmp_path);
    free(w->kept_path);
    free(w->path);
    free(w);
    return rc;
}

void h5ml_writer_get_stats(const h5ml_writer *w, h5ml_writer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (w == NULL) return;
    out->structures = w->n;
    out->atoms = w->m;
    out->added = w->added;
    out->added_atoms = w->m - w->m0;
    out->checkpoints = w->checkpoints;
    out->warnings = w->base.warnings;
    out->dropped = w->dropped;
    out->deduplicated = w->deduplicated;
    out->committed = w->committed;
    out->failed = w->broken;
}
