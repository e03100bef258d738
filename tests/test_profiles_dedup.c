/* Compression profiles (H5ML_OPT_PROFILE, H5ML_SIG_PROFILE) and deduplication (H5ML_OPT_DEDUP):
 *
 * - round trips through every profile (fast, balanced, small, none) and thread count (1, 2,
 *   default) of batch writes, one-at-a-time adds and signal caches, read back bit for bit
 *   (whole ranges, shuffled indices through the direct chunk path, single structures), the
 *   stored filter pipeline of every dataset checked, with data that compresses and data that
 *   does not (chunks stored unfiltered), many small chunks and a partial edge chunk;
 * - the precedence of a profile over the explicit compression, level and shuffle, set in
 *   both orders; appending with another profile keeps the file's filters;
 * - duplicates inside a batch (several checking blocks and threads), across batches, one at
 *   a time, in append mode against an earlier session, under forced hash collisions
 *   (h5ml__dedup_hash_mask), and the edge cases of h5ml.h; each time the file holds the
 *   unique structures in first-seen order with the first one's labels, warnings are issued
 *   for written structures only, numbered as written, and h5ml_verify passes.
 *
 * Random data print their seed; H5ML_TEST_SEED replays one. */
#include "check.h"
#include "dedup.h" /* h5ml__dedup_hash_mask: the tests link the static library */
#include "h5ml.h"

#include <hdf5.h>
#include <jansson.h>
#include <stdbool.h>

#define LZF_FILTER_ID 32000

static const int all_profiles[4] = { H5ML_PROFILE_FAST, H5ML_PROFILE_BALANCED, H5ML_PROFILE_SMALL, H5ML_PROFILE_NONE };
static const int all_threads[3] = { 1, 2, 0 }; /* 0: the default (one per core) */

static const char *const schema_paths[] = {
    "structures/atomic_numbers", "structures/atomic_numbers_splits", "structures/positions", "structures/cells",
    "structures/pbc", "labels/energy", "labels/forces", "labels/forces_splits", "labels/stress",
    "labels/stress_mask", "labels/structure_indices",
};
enum { NSCHEMA = sizeof schema_paths / sizeof *schema_paths };

/* ---- structures in memory ---------------------------------------------------------------- */

typedef struct data {
    int64_t n, m, cap_n, cap_m;
    int64_t *natoms, *off, *numbers; /* off: n+1 atom offsets */
    double *pos, *cells, *energy, *forces, *stress;
    uint8_t *pbc, *mask;
    uint8_t *alt;  /* single adds: bit 0 pass a NULL cell (cell all +0.0), bit 1 a NULL pbc (all 0) */
    uint8_t *flag; /* per structure: bit 0 has a close pair (a warning), bit 1 |F| = 60 (a warning) */
    char **info;
} data;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void data_init(data *d, int64_t cap_n, int64_t cap_m)
{
    memset(d, 0, sizeof *d);
    d->cap_n = cap_n;
    d->cap_m = cap_m;
    size_t n = (size_t)cap_n + 1, m = (size_t)cap_m + 1;
    d->natoms = xcalloc(n, sizeof *d->natoms);
    d->off = xcalloc(n, sizeof *d->off);
    d->numbers = xcalloc(m, sizeof *d->numbers);
    d->pos = xcalloc(3 * m, sizeof *d->pos);
    d->forces = xcalloc(3 * m, sizeof *d->forces);
    d->cells = xcalloc(9 * n, sizeof *d->cells);
    d->energy = xcalloc(n, sizeof *d->energy);
    d->stress = xcalloc(6 * n, sizeof *d->stress);
    d->pbc = xcalloc(3 * n, 1);
    d->mask = xcalloc(n, 1);
    d->alt = xcalloc(n, 1);
    d->flag = xcalloc(n, 1);
    d->info = xcalloc(n, sizeof *d->info);
}

static void data_free(data *d)
{
    for (int64_t i = 0; i < d->n; i++) free(d->info[i]);
    free(d->natoms);
    free(d->off);
    free(d->numbers);
    free(d->pos);
    free(d->forces);
    free(d->cells);
    free(d->energy);
    free(d->stress);
    free(d->pbc);
    free(d->mask);
    free(d->alt);
    free(d->flag);
    free(d->info);
    memset(d, 0, sizeof *d);
}

/* A new structure of na atoms (every value zero); returns its index. */
static int64_t data_push(data *d, int64_t na)
{
    if (d->n >= d->cap_n || d->m + na > d->cap_m) {
        fprintf(stderr, "test data capacity exceeded\n");
        exit(2);
    }
    int64_t i = d->n++;
    d->natoms[i] = na;
    d->off[i] = d->m;
    d->m += na;
    d->off[i + 1] = d->m;
    return i;
}

/* Structure j of src, every field, as a new structure of dst. */
static int64_t data_copy(data *dst, const data *src, int64_t j)
{
    int64_t na = src->natoms[j], i = data_push(dst, na), a = dst->off[i], b = src->off[j];
    memcpy(dst->numbers + a, src->numbers + b, sizeof(int64_t) * (size_t)na);
    memcpy(dst->pos + 3 * a, src->pos + 3 * b, sizeof(double) * 3 * (size_t)na);
    memcpy(dst->forces + 3 * a, src->forces + 3 * b, sizeof(double) * 3 * (size_t)na);
    memcpy(dst->cells + 9 * i, src->cells + 9 * j, sizeof(double) * 9);
    memcpy(dst->stress + 6 * i, src->stress + 6 * j, sizeof(double) * 6);
    memcpy(dst->pbc + 3 * i, src->pbc + 3 * j, 3);
    dst->energy[i] = src->energy[j];
    dst->mask[i] = src->mask[j];
    dst->alt[i] = src->alt[j];
    dst->flag[i] = src->flag[j];
    dst->info[i] = src->info[j] ? strdup(src->info[j]) : NULL;
    return i;
}

/* The structures of src whose keep[] is set, in order. */
static void data_select(data *dst, const data *src, const bool *keep)
{
    data_init(dst, src->n, src->m);
    for (int64_t i = 0; i < src->n; i++)
        if (keep[i]) data_copy(dst, src, i);
}

static void set_info(data *d, int64_t i, const char *fmt, long long v)
{
    d->info[i] = malloc(64);
    snprintf(d->info[i], 64, fmt, v);
}

/* A finite double of random bits: any sign, mantissa and exponent (subnormals included). */
static double bits_double(void)
{
    uint64_t u = (rng_u64() & ~(UINT64_C(0x7ff) << 52)) | ((uint64_t)rng_int(0, 2046) << 52);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* A finite float of random bits with a binary exponent in [emin, emax] (as a double). */
static double bits_float(int emin, int emax)
{
    uint32_t u = (uint32_t)(rng_u64() & 0x807fffffu) | ((uint32_t)(127 + rng_int(emin, emax)) << 23);
    float f;
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

static bool all_zero_bits(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t k = 0; k < n; k++)
        if (c[k]) return false;
    return true;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct logcap {
    int n, cap;
    char **msg;
} logcap;

static void capture(void *user, int level, const char *msg)
{
    logcap *c = user;
    if (level != H5ML_LOG_WARNING) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->msg = realloc(c->msg, sizeof *c->msg * (size_t)c->cap);
    }
    c->msg[c->n++] = strdup(msg);
}

static void logcap_clear(logcap *c)
{
    for (int k = 0; k < c->n; k++) free(c->msg[k]);
    free(c->msg);
    memset(c, 0, sizeof *c);
}

/* Messages that contain `needle`. */
static int logcap_count(const logcap *c, const char *needle)
{
    int hits = 0;
    for (int k = 0; k < c->n; k++) hits += strstr(c->msg[k], needle) != NULL;
    return hits;
}

typedef struct wopts {
    int profile, comp, level, shuffle, threads, dedup, validate;
    int64_t chunk_atoms, chunk_structs;
} wopts;

static h5ml_writer *open_writer(const char *path, h5ml_mode mode, const wopts *o, logcap *cap)
{
    h5ml_writer *w = h5ml_writer_new();
    if (cap) h5ml_set_log(w, capture, cap);
    CHECK(h5ml_writer_set(w, H5ML_OPT_CHECKPOINT_MS, -1) == H5ML_OK); /* checkpoints where the test says */
    if (o->profile) CHECK(h5ml_writer_set(w, H5ML_OPT_PROFILE, o->profile) == H5ML_OK);
    if (o->comp) CHECK(h5ml_writer_set(w, H5ML_OPT_COMPRESSION, o->comp) == H5ML_OK);
    if (o->level) CHECK(h5ml_writer_set(w, H5ML_OPT_LEVEL, o->level) == H5ML_OK);
    if (o->shuffle) CHECK(h5ml_writer_set(w, H5ML_OPT_SHUFFLE, o->shuffle) == H5ML_OK);
    if (o->threads) CHECK(h5ml_writer_set(w, H5ML_OPT_THREADS, o->threads) == H5ML_OK);
    if (o->dedup) CHECK(h5ml_writer_set(w, H5ML_OPT_DEDUP, o->dedup) == H5ML_OK);
    if (o->validate) CHECK(h5ml_writer_set(w, H5ML_OPT_VALIDATE, o->validate) == H5ML_OK);
    if (o->chunk_atoms) CHECK(h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, o->chunk_atoms) == H5ML_OK);
    if (o->chunk_structs) CHECK(h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, o->chunk_structs) == H5ML_OK);
    int rc = h5ml_writer_open(w, path, mode);
    CHECK_MSG(rc == H5ML_OK, "open %s: %s", path, h5ml_errmsg(w));
    return w;
}

static h5ml_structure structure_of(const data *d, int64_t i, bool use_alt)
{
    int64_t a = d->off[i];
    h5ml_structure s = { .natoms = d->natoms[i],
                         .numbers = d->numbers + a,
                         .positions = d->pos + 3 * a,
                         .cell = d->cells + 9 * i,
                         .pbc = d->pbc + 3 * i,
                         .energy = d->energy[i],
                         .forces = d->forces + 3 * a,
                         .stress = d->mask[i] ? d->stress + 6 * i : NULL,
                         .info_json = d->info[i] };
    if (use_alt && (d->alt[i] & 1)) s.cell = NULL;
    if (use_alt && (d->alt[i] & 2)) s.pbc = NULL;
    return s;
}

static h5ml_batch batch_of(const data *d, int64_t s, int64_t e)
{
    int64_t a = d->off[s];
    h5ml_batch b = { e - s,          d->natoms + s,     d->numbers + a, d->pos + 3 * a,
                     d->cells + 9 * s, d->pbc + 3 * s,  d->energy + s,  d->forces + 3 * a,
                     d->stress + 6 * s, d->mask + s,   (const char *const *)d->info + s };
    return b;
}

enum { WRITE_ONE_BATCH, WRITE_BATCHES, WRITE_SINGLE, WRITE_MIXED };

/* Writes structures [from, to) of d: one batch, random batches (with checkpoints between
 * some), one at a time (NULL cell / pbc where d->alt says, a checkpoint every 300), or a mix.
 * Returns the first failure. */
static int write_data(h5ml_writer *w, const data *d, int64_t from, int64_t to, int how)
{
    int64_t i = from;
    int64_t since_ckpt = 0;
    while (i < to) {
        bool batch = how == WRITE_ONE_BATCH || how == WRITE_BATCHES || (how == WRITE_MIXED && rng_int(0, 1));
        int64_t k = 1;
        if (how == WRITE_ONE_BATCH) k = to - i;
        else if (batch) k = rng_int(1, rng_int(0, 3) ? 40 : 600);
        if (i + k > to) k = to - i;
        int rc;
        if (batch) {
            h5ml_batch b = batch_of(d, i, i + k);
            rc = h5ml_writer_add_batch(w, &b);
        } else {
            h5ml_structure s = structure_of(d, i, true);
            rc = h5ml_writer_add(w, &s);
        }
        if (rc) {
            fprintf(stderr, "writing structure %lld (%lld): %s\n", (long long)i, (long long)k, h5ml_errmsg(w));
            return rc;
        }
        i += k;
        since_ckpt += k;
        if (how != WRITE_ONE_BATCH && since_ckpt >= 300) {
            since_ckpt = 0;
            if ((rc = h5ml_writer_checkpoint(w)) != H5ML_OK) return rc;
        }
    }
    return H5ML_OK;
}

/* ---- reading back -------------------------------------------------------------------------- */

typedef struct frames_buf {
    int64_t *natoms, *numbers;
    double *pos, *cells, *energy, *stress;
    float *forces;
    uint8_t *pbc, *mask;
    h5ml_frames f;
} frames_buf;

static void frames_alloc(frames_buf *b, int64_t n, int64_t m)
{
    size_t sn = (size_t)n + 1, sm = (size_t)m + 1;
    b->natoms = xcalloc(sn, sizeof *b->natoms);
    b->numbers = xcalloc(sm, sizeof *b->numbers);
    b->pos = xcalloc(3 * sm, sizeof *b->pos);
    b->cells = xcalloc(9 * sn, sizeof *b->cells);
    b->energy = xcalloc(sn, sizeof *b->energy);
    b->stress = xcalloc(6 * sn, sizeof *b->stress);
    b->forces = xcalloc(3 * sm, sizeof *b->forces);
    b->pbc = xcalloc(3 * sn, 1);
    b->mask = xcalloc(sn, 1);
    b->f = (h5ml_frames){ b->natoms, b->numbers, b->pos, b->cells, b->pbc, b->energy, b->forces, b->stress, b->mask };
}

static void frames_free(frames_buf *b)
{
    free(b->natoms);
    free(b->numbers);
    free(b->pos);
    free(b->cells);
    free(b->energy);
    free(b->stress);
    free(b->forces);
    free(b->pbc);
    free(b->mask);
}

/* Structures idx[0..count) of e (k itself when idx is NULL) against what was read into o;
 * returns the number of wrong structures (the first few are printed). */
static int64_t compare_frames(const data *e, const int64_t *idx, int64_t count, const h5ml_frames *o, const char *what)
{
    static const double zero6[6];
    int64_t bad = 0, at = 0;
    for (int64_t k = 0; k < count; k++) {
        int64_t i = idx ? idx[k] : k, na = e->natoms[i], a = e->off[i];
        const char *field = NULL;
        if (o->natoms[k] != na) field = "natoms";
        else if (memcmp(o->numbers + at, e->numbers + a, sizeof(int64_t) * (size_t)na)) field = "numbers";
        else if (memcmp(o->positions + 3 * at, e->pos + 3 * a, sizeof(double) * 3 * (size_t)na)) field = "positions";
        else if (memcmp(o->cells + 9 * k, e->cells + 9 * i, sizeof(double) * 9)) field = "cell";
        else if (memcmp(&o->energies[k], &e->energy[i], sizeof(double))) field = "energy";
        else if (o->stress_mask[k] != e->mask[i]) field = "stress_mask";
        else if (memcmp(o->stress + 6 * k, e->mask[i] ? e->stress + 6 * i : zero6, sizeof zero6)) field = "stress";
        for (int c = 0; c < 3 && !field; c++)
            if (o->pbc[3 * k + c] != (e->pbc[3 * i + c] != 0)) field = "pbc";
        for (int64_t c = 0; c < 3 * na && !field; c++) {
            float want = (float)e->forces[3 * a + c];
            if (memcmp(&o->forces[3 * at + c], &want, sizeof want)) field = "forces";
        }
        if (field && bad++ < 3) fprintf(stderr, "%s: structure %lld (entry %lld): %s differs\n", what, (long long)i, (long long)k, field);
        at += na;
    }
    return bad;
}

/* The file at `path` holds exactly the structures of e (bit for bit, labels and metadata
 * included): read whole, read at shuffled indices with repeats (1 and 2 reader threads),
 * metadata one by one; and h5ml_verify passes. */
static void expect_file(const char *path, const data *e, const char *what)
{
    h5ml_reader *r = h5ml_reader_new();
    int rc = h5ml_reader_open(r, path);
    CHECK_MSG(rc == H5ML_OK, "%s: %s", what, h5ml_errmsg(r));
    if (rc != H5ML_OK) {
        h5ml_reader_close(r);
        return;
    }
    int64_t n = h5ml_reader_count(r), m = h5ml_reader_total_atoms(r);
    CHECK_MSG(n == e->n && m == e->m, "%s: %lld structures (%lld atoms), expected %lld (%lld)", what, (long long)n,
              (long long)m, (long long)e->n, (long long)e->m);
    if (n != e->n || m != e->m) {
        h5ml_reader_close(r);
        return;
    }
    frames_buf b;
    frames_alloc(&b, n, m);
    rc = h5ml_reader_read(r, 0, n, &b.f);
    CHECK_MSG(rc == H5ML_OK, "%s: read: %s", what, h5ml_errmsg(r));
    if (rc == H5ML_OK) CHECK_MSG(compare_frames(e, NULL, n, &b.f, what) == 0, "%s: whole read differs", what);
    frames_free(&b);

    /* shuffled, with repeats, through the direct chunk path */
    int64_t cnt = n + n / 4;
    int64_t *idx = xcalloc((size_t)cnt, sizeof *idx);
    for (int64_t k = 0; k < cnt; k++) idx[k] = n ? rng_int(0, n - 1) : 0;
    if (n == 0) cnt = 0;
    for (int t = 1; t <= 2; t++) {
        int64_t atoms = -1;
        CHECK(h5ml_reader_set_threads(r, t) == H5ML_OK);
        CHECK(h5ml_reader_atoms_of(r, idx, cnt, &atoms) == H5ML_OK);
        frames_alloc(&b, cnt, atoms);
        rc = h5ml_reader_read_indices(r, idx, cnt, &b.f);
        CHECK_MSG(rc == H5ML_OK, "%s: read_indices: %s", what, h5ml_errmsg(r));
        if (rc == H5ML_OK)
            CHECK_MSG(compare_frames(e, idx, cnt, &b.f, what) == 0, "%s: read_indices (%d threads) differs", what, t);
        frames_free(&b);
    }
    free(idx);

    /* per-structure metadata: all of it in one read through HDF5, some through the reader */
    int64_t bad_info = 0;
    char **all = xcalloc((size_t)n, sizeof *all);
    hid_t f5 = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t di = f5 >= 0 && H5Lexists(f5, "labels/info", H5P_DEFAULT) > 0 ? H5Dopen2(f5, "labels/info", H5P_DEFAULT) : -1;
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    CHECK_MSG(di >= 0 || f5 < 0 || n == 0 || H5Lexists(f5, "labels/info", H5P_DEFAULT) <= 0, "%s: labels/info", what);
    hsize_t ninfo = 0;
    if (di >= 0) {
        hid_t sp = H5Dget_space(di);
        H5Sget_simple_extent_dims(sp, &ninfo, NULL);
        H5Sclose(sp);
        CHECK_MSG(ninfo == (hsize_t)n, "%s: labels/info holds %llu strings, expected %lld", what, (unsigned long long)ninfo,
                  (long long)n);
    }
    if (di >= 0 && n > 0 && ninfo == (hsize_t)n)
        CHECK_MSG(H5Dread(di, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0, "%s: cannot read labels/info", what);
    for (int64_t i = 0; i < n; i++) {
        const char *got = all[i] && *all[i] ? all[i] : NULL;
        bool ok = got == NULL ? e->info[i] == NULL : e->info[i] != NULL && strcmp(got, e->info[i]) == 0;
        if (!ok && bad_info++ < 3)
            fprintf(stderr, "%s: info of %lld is %s, expected %s\n", what, (long long)i, got ? got : "NULL",
                    e->info[i] ? e->info[i] : "NULL");
    }
    if (di >= 0 && n > 0 && ninfo == (hsize_t)n) {
        hid_t sp = H5Dget_space(di);
        H5Dvlen_reclaim(st, sp, H5P_DEFAULT, all);
        H5Sclose(sp);
    }
    free(all);
    H5Tclose(st);
    if (di >= 0) H5Dclose(di);
    if (f5 >= 0) H5Fclose(f5);
    CHECK_MSG(bad_info == 0, "%s: %lld metadata differ", what, (long long)bad_info);
    for (int k = 0; k < 5 && n > 0; k++) {
        int64_t i = rng_int(0, n - 1);
        char *json = NULL;
        CHECK(h5ml_reader_info(r, i, &json) == H5ML_OK);
        CHECK((json == NULL) == (e->info[i] == NULL));
        if (json && e->info[i]) CHECK_STR(json, e->info[i]);
        h5ml_free(json);
    }
    /* a few structures one by one */
    for (int k = 0; k < 5 && n > 0; k++) {
        int64_t i = rng_int(0, n - 1);
        h5ml_frame f;
        CHECK(h5ml_reader_get(r, i, &f) == H5ML_OK);
        CHECK_EQ_I(f.natoms, e->natoms[i]);
        if (f.natoms > 0) CHECK(memcmp(f.positions, e->pos + 3 * e->off[i], sizeof(double) * 3 * (size_t)f.natoms) == 0);
        CHECK(memcmp(&f.energy, &e->energy[i], sizeof f.energy) == 0);
    }
    rc = h5ml_verify(r, NULL, NULL);
    CHECK_MSG(rc == H5ML_OK, "%s: verify: %s", what, h5ml_errmsg(r));
    h5ml_reader_close(r);
}

/* ---- filters ------------------------------------------------------------------------------- */

typedef struct pipe_want {
    int codec; /* h5ml_compression (NONE, GZIP, LZF) */
    int level; /* gzip level; 0 otherwise */
    int shuffle;
} pipe_want;

static pipe_want profile_pipe(int profile)
{
    switch (profile) {
    case H5ML_PROFILE_FAST: return (pipe_want){ H5ML_COMPRESS_LZF, 0, 1 };
    case H5ML_PROFILE_SMALL: return (pipe_want){ H5ML_COMPRESS_GZIP, 9, 1 };
    case H5ML_PROFILE_NONE: return (pipe_want){ H5ML_COMPRESS_NONE, 0, 0 };
    default: return (pipe_want){ H5ML_COMPRESS_GZIP, 4, 1 };
    }
}

static const char *codec_str(int c) { return c == H5ML_COMPRESS_GZIP ? "gzip" : c == H5ML_COMPRESS_LZF ? "lzf" : "none"; }

/* The filter pipeline of dataset `dpath` is exactly `want` (shuffle, then the codec). */
static void expect_dset_filters(hid_t f, const char *dpath, pipe_want want, const char *what)
{
    hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
    CHECK_MSG(d >= 0, "%s: no dataset %s", what, dpath);
    if (d < 0) return;
    hid_t p = H5Dget_create_plist(d);
    int nf = H5Pget_nfilters(p);
    int expect = (want.shuffle ? 1 : 0) + (want.codec != H5ML_COMPRESS_NONE ? 1 : 0);
    CHECK_MSG(nf == expect, "%s: %s has %d filters, expected %d", what, dpath, nf, expect);
    if (nf == expect) {
        int k = 0;
        unsigned flags, cd[8];
        if (want.shuffle) {
            size_t ncd = 8;
            H5Z_filter_t id = H5Pget_filter2(p, (unsigned)k++, &flags, &ncd, cd, 0, NULL, NULL);
            CHECK_MSG(id == H5Z_FILTER_SHUFFLE, "%s: %s filter 0 is %d, expected shuffle", what, dpath, (int)id);
        }
        if (want.codec != H5ML_COMPRESS_NONE) {
            size_t ncd = 8;
            H5Z_filter_t id = H5Pget_filter2(p, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL);
            if (want.codec == H5ML_COMPRESS_GZIP) {
                CHECK_MSG(id == H5Z_FILTER_DEFLATE, "%s: %s filter %d is %d, expected deflate", what, dpath, k, (int)id);
                CHECK_MSG(ncd >= 1 && cd[0] == (unsigned)want.level, "%s: %s gzip level %u, expected %d", what, dpath,
                          ncd ? cd[0] : 0u, want.level);
            } else {
                CHECK_MSG(id == LZF_FILTER_ID, "%s: %s filter %d is %d, expected lzf", what, dpath, k, (int)id);
            }
        }
    }
    H5Pclose(p);
    H5Dclose(d);
}

static json_t *json_parse(const char *text)
{
    json_error_t err;
    json_t *j = text ? json_loads(text, 0, &err) : NULL;
    CHECK_MSG(j != NULL, "JSON does not parse: %s", text ? text : "NULL");
    return j;
}

static int64_t json_int(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    return -999;
}

static const char *json_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "(missing)";
}

/* Every dataset of the atomistic file at `path` is stored through `want`; the reader's layout
 * and the /metadata attributes say so too. */
static void expect_atoms_pipeline(const char *path, pipe_want want, int64_t chunk_atoms, int64_t chunk_structs,
                                  const char *what)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK_MSG(f >= 0, "%s: cannot open %s", what, path);
    if (f < 0) return;
    for (int c = 0; c < NSCHEMA; c++) expect_dset_filters(f, schema_paths[c], want, what);
    if (H5Lexists(f, "labels/info", H5P_DEFAULT) > 0) {
        /* per-structure metadata (strings) is compressed by gzip only */
        if (want.codec == H5ML_COMPRESS_GZIP) expect_dset_filters(f, "labels/info", want, what);
        else expect_dset_filters(f, "labels/info", (pipe_want){ H5ML_COMPRESS_NONE, 0, 0 }, what);
    }
    H5Fclose(f);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    h5ml_layout lay;
    CHECK(h5ml_reader_layout(r, &lay) == H5ML_OK);
    CHECK_MSG(lay.compression == want.codec && lay.level == want.level && lay.shuffle == want.shuffle,
              "%s: layout %d/%d/%d, expected %d/%d/%d", what, lay.compression, lay.level, lay.shuffle, want.codec, want.level,
              want.shuffle);
    if (chunk_atoms) CHECK_EQ_I(lay.chunk_atoms, chunk_atoms);
    if (chunk_structs) CHECK_EQ_I(lay.chunk_structures, chunk_structs);
    char *meta = NULL;
    CHECK(h5ml_reader_metadata(r, &meta) == H5ML_OK);
    json_t *j = json_parse(meta);
    if (j) {
        CHECK_MSG(strcmp(json_str(j, "compression"), codec_str(want.codec)) == 0, "%s: /metadata compression %s, expected %s",
                  what, json_str(j, "compression"), codec_str(want.codec));
        CHECK_MSG(json_int(j, "compression_level") == want.level, "%s: /metadata compression_level %lld, expected %d", what,
                  (long long)json_int(j, "compression_level"), want.level);
        CHECK_MSG(json_int(j, "shuffle") == want.shuffle, "%s: /metadata shuffle %lld", what, (long long)json_int(j, "shuffle"));
        json_decref(j);
    }
    h5ml_free(meta);
    h5ml_reader_close(r);
}

/* Chunks of dataset `dpath` stored with every filter applied, and stored with some skipped
 * (the writer keeps a chunk unfiltered when filtering does not make it smaller). */
static void count_chunks(const char *path, const char *dpath, int64_t *filtered, int64_t *raw)
{
    *filtered = *raw = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, dpath, H5P_DEFAULT) : -1;
    hid_t space = d >= 0 ? H5Dget_space(d) : -1; /* HDF5 1.10 refuses H5S_ALL here */
    hsize_t nchunks = 0;
    if (space >= 0 && H5Dget_num_chunks(d, space, &nchunks) >= 0) {
        for (hsize_t k = 0; k < nchunks; k++) {
            hsize_t off[3];
            unsigned mask = 0;
            haddr_t addr;
            hsize_t size;
            if (H5Dget_chunk_info(d, space, k, off, &mask, &addr, &size) < 0) continue;
            if (mask) ++*raw;
            else ++*filtered;
        }
    }
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
}

/* ---- 1. round trips through every profile and thread count ---------------------------------- */

/* n structures of 0..5 atoms: the middle third random bits (incompressible), the rest
 * regular values that compress well; every field set somewhere (cells, pbc, stress, info). */
static void make_roundtrip(data *d, int64_t n)
{
    data_init(d, n, 5 * n);
    for (int64_t i = 0; i < n; i++) {
        bool noisy = i >= n / 3 && i < 2 * n / 3;
        int64_t na = i % 11 == 4 ? 0 : rng_int(1, 5), s = data_push(d, na), a0 = d->off[s];
        for (int64_t a = 0; a < na; a++) {
            int64_t at = a0 + a;
            d->numbers[at] = noisy ? rng_int(0, 118) : 1 + (a % 3) * 7;
            for (int c = 0; c < 3; c++) {
                d->pos[3 * at + c] = noisy ? bits_double() : c == 0 ? 1.5 * (double)a : 0.25 * (double)(i % 8) + c;
                d->forces[3 * at + c] = noisy ? bits_float(-20, 5) : (double)((i + a + c) % 16) / 8.0 - 1.0;
            }
        }
        if (noisy) {
            for (int c = 0; c < 9; c++) d->cells[9 * s + c] = bits_double();
        } else if (i % 2) {
            d->cells[9 * s] = d->cells[9 * s + 4] = d->cells[9 * s + 8] = 20.0;
            d->pbc[3 * s] = d->pbc[3 * s + 1] = 1;
            d->pbc[3 * s + 2] = (uint8_t)(i % 3 != 0);
        }
        d->energy[s] = noisy ? rng_normal() * 100 : -1.5 * (double)na + 0.25 * (double)(i % 4);
        if (i % 3 == 0) {
            d->mask[s] = 1;
            for (int c = 0; c < 6; c++) d->stress[6 * s + c] = noisy ? rng_normal() : 0.125 * (c + 1);
        }
        if (i % 5 == 0) set_info(d, s, "{\"i\":%lld,\"tag\":\"x\"}", (long long)i);
    }
}

static void test_roundtrips(void)
{
    data big, small;
    make_roundtrip(&big, 9001);  /* one batch of 8500: three checking blocks of 4096 */
    make_roundtrip(&small, 1500);
    const char *path = tmpname("rt");
    for (int p = 0; p < 4; p++) {
        for (int t = 0; t < 3; t++) {
            int profile = all_profiles[p];
            pipe_want want = profile_pipe(profile);
            wopts o = { .profile = profile, .threads = all_threads[t], .chunk_atoms = 97, .chunk_structs = 61 };
            char what[128];
            /* batches: one of 8500 structures, then random ones */
            snprintf(what, sizeof what, "batch %s threads %d", h5ml_profile_name(profile), all_threads[t]);
            h5ml_writer *w = open_writer(path, H5ML_CREATE, &o, NULL);
            h5ml_batch b = batch_of(&big, 0, 8500);
            CHECK_MSG(h5ml_writer_add_batch(w, &b) == H5ML_OK, "%s: %s", what, h5ml_errmsg(w));
            CHECK(write_data(w, &big, 8500, big.n, WRITE_BATCHES) == H5ML_OK);
            h5ml_writer_stats st;
            h5ml_writer_get_stats(w, &st);
            CHECK_EQ_I(st.added, big.n);
            CHECK_EQ_I(st.deduplicated, 0);
            CHECK_MSG(h5ml_writer_close(w) == H5ML_OK, "%s: close", what);
            expect_file(path, &big, what);
            expect_atoms_pipeline(path, want, 97, 61, what);
            int64_t filtered, raw;
            count_chunks(path, "structures/positions", &filtered, &raw);
            if (want.codec == H5ML_COMPRESS_NONE) {
                CHECK_MSG(raw == 0 && filtered > 30, "%s: %lld filtered / %lld raw chunks", what, (long long)filtered, (long long)raw);
            } else {
                /* random bits stay unfiltered, regular values are compressed */
                CHECK_MSG(raw >= 30 && filtered >= 30, "%s: %lld filtered / %lld raw chunks", what, (long long)filtered,
                          (long long)raw);
            }
            /* one at a time, with checkpoints: partial chunks written and rewritten */
            snprintf(what, sizeof what, "single %s threads %d", h5ml_profile_name(profile), all_threads[t]);
            w = open_writer(path, H5ML_CREATE, &o, NULL);
            CHECK(write_data(w, &small, 0, small.n, WRITE_SINGLE) == H5ML_OK);
            CHECK_MSG(h5ml_writer_close(w) == H5ML_OK, "%s: close", what);
            expect_file(path, &small, what);
            expect_atoms_pipeline(path, want, 97, 61, what);
        }
    }
    unlink(path);
    data_free(&big);
    data_free(&small);
}

/* The writer is done with the caller's rows when add_batch returns, accepted or not, while
 * chunks are still being compressed: the caller's arrays are overwritten at once, and the
 * file must still hold what they held. */
static void scribble(data *d)
{
    memset(d->numbers, 0xA5, sizeof *d->numbers * (size_t)d->m);
    memset(d->pos, 0xA5, sizeof *d->pos * 3 * (size_t)d->m);
    memset(d->forces, 0xA5, sizeof *d->forces * 3 * (size_t)d->m);
}

static void test_caller_rows(void)
{
    data orig;
    make_roundtrip(&orig, 9001);
    /* positions of random bits from structure 4500 on: their chunks are stored unfiltered */
    for (int64_t a = orig.off[4500]; a < orig.m; a++)
        for (int c = 0; c < 3; c++) orig.pos[3 * a + c] = bits_double();
    const char *path = tmpname("rows");
    for (int p = 0; p < 3; p++) {
        for (int reject = 0; reject < 2; reject++) {
            int profile = all_profiles[p];
            int64_t bad = reject ? 6007 : orig.n; /* a NaN position: the batch stops there */
            char what[128];
            snprintf(what, sizeof what, "caller rows %s%s", h5ml_profile_name(profile), reject ? ", rejected structure" : "");
            bool *keep = xcalloc((size_t)orig.n, sizeof *keep);
            for (int64_t i = 0; i < orig.n; i++) keep[i] = true;
            data copy, want;
            data_select(&copy, &orig, keep);
            for (int64_t i = 0; i < orig.n; i++) keep[i] = i < bad;
            data_select(&want, &orig, keep);
            if (reject) copy.pos[3 * copy.off[bad] + 1] = NAN;
            wopts o = { .profile = profile, .threads = 2, .chunk_atoms = 97, .chunk_structs = 61 };
            h5ml_writer *w = open_writer(path, H5ML_CREATE, &o, NULL);
            CHECK(write_data(w, &copy, 0, 17, WRITE_BATCHES) == H5ML_OK); /* rows already in the buffers */
            h5ml_batch b = batch_of(&copy, 17, copy.n);
            int rc = h5ml_writer_add_batch(w, &b);
            scribble(&copy);
            CHECK_MSG(rc == (reject ? H5ML_ERR_VALUE : H5ML_OK), "%s: %d %s", what, rc, h5ml_errmsg(w));
            CHECK_MSG(h5ml_writer_close(w) == H5ML_OK, "%s: close", what);
            expect_file(path, &want, what);
            data_free(&copy);
            data_free(&want);
            free(keep);
        }
    }
    unlink(path);
    data_free(&orig);
}

/* ---- signal caches ------------------------------------------------------------------------ */

/* Signal i of length L: a quantized sine (compresses) or, for i in [lo, hi), random bits. */
static void make_signal(float *out, int64_t i, int64_t L, int64_t lo, int64_t hi)
{
    for (int64_t t = 0; t < L; t++) {
        if (i >= lo && i < hi) {
            uint32_t u = (uint32_t)(rng_u64() & 0x807fffffu) | ((uint32_t)rng_int(0, 254) << 23);
            memcpy(&out[t], &u, sizeof u);
        } else {
            out[t] = (float)(floor(sin(0.05 * (double)(t * (1 + i % 5))) * 64.0) / 64.0);
        }
    }
}

static void expect_sig_filters(const char *path, const char *group, pipe_want want, const char *what)
{
    char sp[64], lp[64];
    snprintf(sp, sizeof sp, "%s%ssignals", group, *group ? "/" : "");
    snprintf(lp, sizeof lp, "%s%slabels", group, *group ? "/" : "");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK_MSG(f >= 0, "%s: cannot open %s", what, path);
    if (f < 0) return;
    expect_dset_filters(f, sp, want, what);
    expect_dset_filters(f, lp, (pipe_want){ H5ML_COMPRESS_NONE, 0, 0 }, what); /* labels unfiltered */
    H5Fclose(f);
    h5ml_sigreader *r = h5ml_sigreader_new();
    char *attrs = NULL;
    CHECK(h5ml_sigreader_open(r, path, *group ? group : NULL) == H5ML_OK);
    CHECK(h5ml_sigreader_attrs(r, &attrs) == H5ML_OK);
    json_t *j = json_parse(attrs);
    if (j) {
        CHECK_MSG(strcmp(json_str(j, "compression"), codec_str(want.codec)) == 0, "%s: compression attribute %s", what,
                  json_str(j, "compression"));
        CHECK_MSG(json_int(j, "compression_level") == want.level, "%s: compression_level attribute %lld", what,
                  (long long)json_int(j, "compression_level"));
        json_decref(j);
    }
    h5ml_free(attrs);
    h5ml_sigreader_close(r);
}

/* Signals [0, n) of `split` (NULL: flat) are sig (n x L) with labels lab. */
static void expect_signals(const char *path, const char *split, const float *sig, const int64_t *lab, int64_t n,
                           int64_t L, const char *what)
{
    h5ml_sigreader *r = h5ml_sigreader_new();
    CHECK(h5ml_sigreader_set(r, H5ML_SIGR_THREADS, 2) == H5ML_OK);
    int rc = h5ml_sigreader_open(r, path, split);
    CHECK_MSG(rc == H5ML_OK, "%s: %s", what, h5ml_errmsg(r));
    if (rc) {
        h5ml_sigreader_close(r);
        return;
    }
    CHECK_EQ_I(h5ml_sigreader_count(r), n);
    CHECK_EQ_I(h5ml_sigreader_length(r), L);
    float *out = xcalloc((size_t)(2 * n * L), sizeof *out);
    int64_t *lo = xcalloc((size_t)(2 * n), sizeof *lo);
    CHECK(h5ml_sigreader_read_range(r, 0, n, out, lo) == H5ML_OK);
    CHECK_MSG(memcmp(out, sig, sizeof(float) * (size_t)(n * L)) == 0, "%s: read_range differs", what);
    CHECK_MSG(memcmp(lo, lab, sizeof(int64_t) * (size_t)n) == 0, "%s: labels differ", what);
    int64_t cnt = 2 * n, *idx = xcalloc((size_t)cnt, sizeof *idx), bad = 0;
    for (int64_t k = 0; k < cnt; k++) idx[k] = rng_int(0, n - 1);
    CHECK(h5ml_sigreader_read(r, idx, cnt, out, lo) == H5ML_OK);
    for (int64_t k = 0; k < cnt; k++)
        bad += memcmp(out + k * L, sig + idx[k] * L, sizeof(float) * (size_t)L) != 0 || lo[k] != lab[idx[k]];
    CHECK_MSG(bad == 0, "%s: %lld signals read at random differ", what, (long long)bad);
    int64_t i = rng_int(0, n - 1), label = -1;
    CHECK(h5ml_sigreader_get(r, i, out, &label) == H5ML_OK);
    CHECK(memcmp(out, sig + i * L, sizeof(float) * (size_t)L) == 0 && label == lab[i]);
    free(idx);
    free(out);
    free(lo);
    h5ml_sigreader_close(r);
    h5ml_sigreader *v = h5ml_sigreader_new();
    CHECK_MSG(h5ml_signals_verify(v, path, NULL, NULL) == H5ML_OK, "%s: signals verify: %s", what, h5ml_errmsg(v));
    h5ml_sigreader_close(v);
}

static void test_signals(void)
{
    enum { N = 41, L = 130, ROWS = 4 }; /* 11 chunks, the last holding one signal */
    float *sig = xcalloc(N * L, sizeof *sig);
    double *sig64 = xcalloc(N * L, sizeof *sig64);
    int64_t lab[N];
    char *meta[N];
    for (int64_t i = 0; i < N; i++) {
        make_signal(sig + i * L, i, L, 16, 32);
        lab[i] = i % 7;
        meta[i] = NULL;
        if (i % 3 == 0) {
            meta[i] = malloc(32);
            snprintf(meta[i], 32, "{\"i\":%lld}", (long long)i);
        }
    }
    for (int64_t k = 0; k < N * L; k++) sig64[k] = sig[k];
    const char *path = tmpname("sig");
    for (int p = 0; p < 4; p++) {
        for (int t = 0; t < 3; t++) {
            int profile = all_profiles[p];
            pipe_want want = profile_pipe(profile);
            char what[96];
            snprintf(what, sizeof what, "signals %s threads %d", h5ml_profile_name(profile), all_threads[t]);
            h5ml_sigwriter *w = h5ml_sigwriter_new();
            CHECK(h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, profile) == H5ML_OK);
            if (all_threads[t]) CHECK(h5ml_sigwriter_set(w, H5ML_SIG_THREADS, all_threads[t]) == H5ML_OK);
            CHECK(h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, ROWS) == H5ML_OK);
            CHECK_MSG(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, L, "t") == H5ML_OK, "%s: %s", what, h5ml_errmsg(w));
            /* float32, float64 (converted), float32 again: 10 + 13 + 18 */
            CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 10, sig, lab, (const char *const *)meta, NULL) == H5ML_OK);
            CHECK(h5ml_sigwriter_add_f64(w, H5ML_NO_SPLIT, 13, sig64 + 10 * L, lab + 10, (const char *const *)meta + 10, NULL) ==
                  H5ML_OK);
            CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, N - 23, sig + 23 * L, lab + 23, (const char *const *)meta + 23, NULL) ==
                  H5ML_OK);
            CHECK_MSG(h5ml_sigwriter_close(w) == H5ML_OK, "%s: close", what);
            expect_signals(path, NULL, sig, lab, N, L, what);
            expect_sig_filters(path, "", want, what);
            int64_t filtered, raw;
            count_chunks(path, "signals", &filtered, &raw);
            if (want.codec == H5ML_COMPRESS_NONE) CHECK_MSG(raw == 0 && filtered == 11, "%s: %lld/%lld", what, (long long)filtered, (long long)raw);
            else CHECK_MSG(raw >= 3 && filtered >= 6, "%s: %lld filtered / %lld raw chunks", what, (long long)filtered, (long long)raw);
            /* metadata kept */
            h5ml_sigreader *r = h5ml_sigreader_new();
            CHECK(h5ml_sigreader_open(r, path, NULL) == H5ML_OK);
            for (int64_t i = 0; i < N; i += 5) {
                char *j = NULL;
                CHECK(h5ml_sigreader_metadata(r, i, &j) == H5ML_OK);
                CHECK((j == NULL) == (meta[i] == NULL));
                if (j && meta[i]) CHECK_STR(j, meta[i]);
                h5ml_free(j);
            }
            h5ml_sigreader_close(r);
        }
        /* a split cache through the same profile */
        int profile = all_profiles[p];
        char what[96];
        snprintf(what, sizeof what, "split signals %s", h5ml_profile_name(profile));
        h5ml_sigwriter *w = h5ml_sigwriter_new();
        CHECK(h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, profile) == H5ML_OK);
        CHECK(h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, 3) == H5ML_OK);
        CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_SPLIT, L, NULL) == H5ML_OK);
        int64_t ind[N];
        for (int64_t i = 0; i < N; i++) ind[i] = i;
        CHECK(h5ml_sigwriter_add(w, H5ML_TRAIN, 25, sig, lab, NULL, ind) == H5ML_OK);
        CHECK(h5ml_sigwriter_add(w, H5ML_VAL, 9, sig + 25 * L, lab + 25, NULL, ind + 25) == H5ML_OK);
        CHECK(h5ml_sigwriter_add(w, H5ML_TEST, 7, sig + 34 * L, lab + 34, NULL, ind + 34) == H5ML_OK);
        CHECK_MSG(h5ml_sigwriter_close(w) == H5ML_OK, "%s: close", what);
        expect_signals(path, "train", sig, lab, 25, L, what);
        expect_signals(path, "val", sig + 25 * L, lab + 25, 9, L, what);
        expect_signals(path, "test", sig + 34 * L, lab + 34, 7, L, what);
        expect_sig_filters(path, "train", profile_pipe(profile), what);
        expect_sig_filters(path, "test", profile_pipe(profile), what);
    }
    /* appending with another profile keeps the file's filters */
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, H5ML_PROFILE_FAST) == H5ML_OK);
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, ROWS) == H5ML_OK);
    CHECK(h5ml_sigwriter_create(w, path, H5ML_SIG_FLAT, L, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, 20, sig, lab, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    w = h5ml_sigwriter_new();
    CHECK(h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, H5ML_PROFILE_SMALL) == H5ML_OK);
    CHECK_MSG(h5ml_sigwriter_append(w, path) == H5ML_OK, "%s", h5ml_errmsg(w));
    CHECK(h5ml_sigwriter_add(w, H5ML_NO_SPLIT, N - 20, sig + 20 * L, lab + 20, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_sigwriter_close(w) == H5ML_OK);
    expect_signals(path, NULL, sig, lab, N, L, "signals appended with another profile");
    expect_sig_filters(path, "", profile_pipe(H5ML_PROFILE_FAST), "signals appended with another profile");
    unlink(path);
    for (int64_t i = 0; i < N; i++) free(meta[i]);
    free(sig);
    free(sig64);
}

/* ---- 2. precedence ---------------------------------------------------------------------- */

/* Writes a one-structure file with the options set profile first (or last) and returns what
 * was stored (checked against the HDF5 pipeline too). */
static pipe_want resolved(int profile, int comp, int level, int shuffle, bool profile_last, const char *what)
{
    const char *path = tmpname("prec");
    h5ml_writer *w = h5ml_writer_new();
    if (profile && !profile_last) CHECK(h5ml_writer_set(w, H5ML_OPT_PROFILE, profile) == H5ML_OK);
    if (comp) CHECK(h5ml_writer_set(w, H5ML_OPT_COMPRESSION, comp) == H5ML_OK);
    if (level) CHECK(h5ml_writer_set(w, H5ML_OPT_LEVEL, level) == H5ML_OK);
    if (shuffle) CHECK(h5ml_writer_set(w, H5ML_OPT_SHUFFLE, shuffle) == H5ML_OK);
    if (profile && profile_last) CHECK(h5ml_writer_set(w, H5ML_OPT_PROFILE, profile) == H5ML_OK);
    CHECK(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK);
    int64_t z[2] = { 1, 8 };
    double pos[6] = { 0, 0, 0, 1, 0, 0 }, f[6] = { 0.5, 0, 0, -0.5, 0, 0 };
    h5ml_structure s = { .natoms = 2, .numbers = z, .positions = pos, .energy = -1, .forces = f, .info_json = "{\"a\":1}" };
    CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
    CHECK(h5ml_writer_close(w) == H5ML_OK);
    h5ml_reader *r = h5ml_reader_new();
    h5ml_layout lay = { -1, -1, -1, 0, 0 };
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    CHECK(h5ml_reader_layout(r, &lay) == H5ML_OK);
    h5ml_reader_close(r);
    pipe_want got = { lay.compression, lay.level, lay.shuffle };
    expect_atoms_pipeline(path, got, 0, 0, what);
    unlink(path);
    return got;
}

static void test_precedence(void)
{
    enum { G = H5ML_COMPRESS_GZIP, Z = H5ML_COMPRESS_LZF, N0 = H5ML_COMPRESS_NONE };
    enum { FAST = H5ML_PROFILE_FAST, BAL = H5ML_PROFILE_BALANCED, SMALL = H5ML_PROFILE_SMALL, NONE = H5ML_PROFILE_NONE };
    static const struct {
        int profile, comp, level, shuffle; /* what is set (0: not set) */
        pipe_want want;
    } cases[] = {
        { FAST, 0, 0, 0, { Z, 0, 1 } },
        { BAL, 0, 0, 0, { G, 4, 1 } },
        { SMALL, 0, 0, 0, { G, 9, 1 } },
        { NONE, 0, 0, 0, { N0, 0, 0 } },
        { 0, 0, 0, 0, { G, 4, 1 } },              /* no profile: the defaults, balanced */
        { FAST, G, 0, 0, { G, 4, 1 } },           /* made gzip by an explicit compression: level 4 */
        { FAST, G, 6, 0, { G, 6, 1 } },
        { FAST, 0, 7, 0, { Z, 0, 1 } },           /* a level applies to gzip only */
        { FAST, 0, 0, -1, { Z, 0, 0 } },
        { FAST, 0, 0, 1, { Z, 0, 1 } },
        { BAL, Z, 0, -1, { Z, 0, 0 } },
        { BAL, 0, 1, 0, { G, 1, 1 } },
        { SMALL, 0, 2, 0, { G, 2, 1 } },
        { SMALL, 0, 0, -1, { G, 9, 0 } },
        { SMALL, 0, 0, 1, { G, 9, 1 } },
        { SMALL, Z, 0, 0, { Z, 0, 1 } },
        { SMALL, N0, 0, 0, { N0, 0, 0 } },
        { SMALL, G, 0, 0, { G, 9, 1 } },          /* gzip was the profile's already: its level */
        { NONE, G, 0, 0, { G, 4, 1 } },           /* every profile shuffles what it compresses */
        { NONE, Z, 0, 0, { Z, 0, 1 } },
        { NONE, G, 9, -1, { G, 9, 0 } },
        { NONE, 0, 5, 0, { N0, 0, 0 } },
        { NONE, 0, 0, 1, { N0, 0, 0 } },          /* shuffle precedes compression: none, no filter */
        { 0, Z, 0, 0, { Z, 0, 1 } },
        { 0, 0, 9, 0, { G, 9, 1 } },
        { 0, N0, 0, 0, { N0, 0, 0 } },
        { 0, G, 3, -1, { G, 3, 0 } },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (int last = 0; last < 2; last++) {
            char what[128];
            snprintf(what, sizeof what, "precedence case %zu (profile %s, set %s)", k,
                     cases[k].profile ? h5ml_profile_name(cases[k].profile) : "-", last ? "last" : "first");
            pipe_want got = resolved(cases[k].profile, cases[k].comp, cases[k].level, cases[k].shuffle, last, what);
            pipe_want w = cases[k].want;
            CHECK_MSG(got.codec == w.codec && got.level == w.level && got.shuffle == w.shuffle,
                      "%s: got %s level %d shuffle %d, expected %s level %d shuffle %d", what, codec_str(got.codec), got.level,
                      got.shuffle, codec_str(w.codec), w.level, w.shuffle);
        }
    }

    /* names */
    CHECK_EQ_I(h5ml_profile_from_name("fast"), H5ML_PROFILE_FAST);
    CHECK_EQ_I(h5ml_profile_from_name("balanced"), H5ML_PROFILE_BALANCED);
    CHECK_EQ_I(h5ml_profile_from_name("small"), H5ML_PROFILE_SMALL);
    CHECK_EQ_I(h5ml_profile_from_name("none"), H5ML_PROFILE_NONE);
    const char *bad_names[] = { "Fast", "FAST", "default", "", "fast ", "gzip", "smal", "balanced2" };
    for (size_t k = 0; k < sizeof bad_names / sizeof *bad_names; k++)
        CHECK_MSG(h5ml_profile_from_name(bad_names[k]) == -1, "'%s' is a profile name", bad_names[k]);
    CHECK_EQ_I(h5ml_profile_from_name(NULL), -1);
    CHECK(h5ml_profile_name(H5ML_PROFILE_DEFAULT) && strcmp(h5ml_profile_name(H5ML_PROFILE_DEFAULT), "balanced") == 0);
    for (int p = 1; p <= 4; p++) CHECK_EQ_I(h5ml_profile_from_name(h5ml_profile_name(p)), p);
    CHECK(h5ml_profile_name(5) == NULL);
    CHECK(h5ml_profile_name(-1) == NULL);

    /* option bounds */
    h5ml_writer *w = h5ml_writer_new();
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_PROFILE, 5), H5ML_ERR_ARG);
    CHECK_CONTAINS(h5ml_errmsg(w), "profile");
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_PROFILE, -1), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_DEDUP, 2), H5ML_ERR_ARG);
    CHECK_CONTAINS(h5ml_errmsg(w), "dedup");
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_DEDUP, -2), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_PROFILE, H5ML_PROFILE_SMALL), H5ML_OK);
    const char *path = tmpname("bounds");
    CHECK(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_PROFILE, H5ML_PROFILE_FAST), H5ML_ERR_STATE);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_DEDUP, 1), H5ML_ERR_STATE);
    CHECK(h5ml_writer_close(w) == H5ML_OK);
    expect_atoms_pipeline(path, profile_pipe(H5ML_PROFILE_SMALL), 0, 0, "profile set before open only");
    unlink(path);

    /* the signal writer: the same rule */
    static const struct {
        int profile, comp, level, shuffle;
        pipe_want want;
    } sc[] = {
        { FAST, G, 0, 0, { G, 4, 1 } },   { SMALL, 0, 0, -1, { G, 9, 0 } }, { NONE, 0, 0, 0, { N0, 0, 0 } },
        { FAST, 0, 8, 0, { Z, 0, 1 } },   { SMALL, 0, 3, 0, { G, 3, 1 } },  { 0, 0, 0, 0, { G, 4, 1 } },
        { BAL, Z, 0, -1, { Z, 0, 0 } },
    };
    for (size_t k = 0; k < sizeof sc / sizeof *sc; k++) {
        for (int last = 0; last < 2; last++) {
            char what[96];
            snprintf(what, sizeof what, "signal precedence case %zu (%s)", k, last ? "last" : "first");
            h5ml_sigwriter *sw = h5ml_sigwriter_new();
            if (sc[k].profile && !last) CHECK(h5ml_sigwriter_set(sw, H5ML_SIG_PROFILE, sc[k].profile) == H5ML_OK);
            if (sc[k].comp) CHECK(h5ml_sigwriter_set(sw, H5ML_SIG_COMPRESSION, sc[k].comp) == H5ML_OK);
            if (sc[k].level) CHECK(h5ml_sigwriter_set(sw, H5ML_SIG_LEVEL, sc[k].level) == H5ML_OK);
            if (sc[k].shuffle) CHECK(h5ml_sigwriter_set(sw, H5ML_SIG_SHUFFLE, sc[k].shuffle) == H5ML_OK);
            if (sc[k].profile && last) CHECK(h5ml_sigwriter_set(sw, H5ML_SIG_PROFILE, sc[k].profile) == H5ML_OK);
            CHECK(h5ml_sigwriter_create(sw, path, H5ML_SIG_FLAT, 8, NULL) == H5ML_OK);
            float x[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1 };
            int64_t l[2] = { 0, 1 };
            CHECK(h5ml_sigwriter_add(sw, H5ML_NO_SPLIT, 2, x, l, NULL, NULL) == H5ML_OK);
            CHECK(h5ml_sigwriter_close(sw) == H5ML_OK);
            expect_sig_filters(path, "", sc[k].want, what);
            expect_signals(path, NULL, x, l, 2, 8, what);
        }
    }
    h5ml_sigwriter *sw = h5ml_sigwriter_new();
    CHECK_EQ_I(h5ml_sigwriter_set(sw, H5ML_SIG_PROFILE, 5), H5ML_ERR_ARG);
    CHECK_CONTAINS(h5ml_errmsg(sw), "profile");
    h5ml_sigwriter_close(sw);
    unlink(path);
}

/* Appending with another profile keeps the file's filters (and says so when the codec or gzip
 * level asked for differs from the file's). */
static void test_append_other_profile(void)
{
    static const struct {
        int first;           /* profile of the file */
        wopts second;        /* options of the append */
        const char *warning; /* expected warning, or NULL */
    } cases[] = {
        { H5ML_PROFILE_FAST, { .profile = H5ML_PROFILE_SMALL }, "appending keeps the file's compression (lzf)" },
        { H5ML_PROFILE_BALANCED, { .comp = H5ML_COMPRESS_NONE }, "appending keeps the file's compression (gzip 4)" },
        { H5ML_PROFILE_NONE, { .profile = H5ML_PROFILE_FAST }, "appending keeps the file's compression (none)" },
        { H5ML_PROFILE_SMALL, { .profile = H5ML_PROFILE_FAST, .shuffle = -1 }, "appending keeps the file's compression (gzip 9)" },
        /* the same codec at another level: gzip 4 kept, and said */
        { H5ML_PROFILE_BALANCED, { .profile = H5ML_PROFILE_SMALL }, "appending keeps the file's compression (gzip 4)" },
    };
    data d;
    make_roundtrip(&d, 400);
    const char *path = tmpname("app");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char what[96];
        snprintf(what, sizeof what, "append case %zu", k);
        wopts o = { .profile = cases[k].first, .chunk_atoms = 50, .chunk_structs = 30 };
        h5ml_writer *w = open_writer(path, H5ML_CREATE, &o, NULL);
        CHECK(write_data(w, &d, 0, 250, WRITE_BATCHES) == H5ML_OK);
        CHECK(h5ml_writer_close(w) == H5ML_OK);
        logcap cap = { 0 };
        wopts o2 = cases[k].second;
        o2.chunk_atoms = 7; /* ignored: the file's chunking is kept */
        w = open_writer(path, H5ML_APPEND, &o2, &cap);
        if (cases[k].warning) {
            CHECK_MSG(logcap_count(&cap, cases[k].warning) == 1, "%s: no warning '%s' (%d warnings)", what, cases[k].warning,
                      cap.n);
        }
        CHECK(write_data(w, &d, 250, d.n, WRITE_MIXED) == H5ML_OK);
        CHECK(h5ml_writer_close(w) == H5ML_OK);
        expect_file(path, &d, what);
        expect_atoms_pipeline(path, profile_pipe(cases[k].first), 50, 30, what);
        logcap_clear(&cap);
    }
    unlink(path);
    data_free(&d);
}

/* ---- 3. deduplication -------------------------------------------------------------------- */

enum { POOL_MAXA = 5 };

/* u distinct geometries (natoms, numbers, positions, cell, pbc). Every 50th is a near
 * duplicate of the one before it: one ulp away, -0.0 for +0.0, a cell one ulp away (or -0.0
 * in a zero cell), another pbc flag, another atomic number, one atom more. Structures with
 * flag bit 0 have atoms 0 and 1 0.3 A apart (a warning when written). */
static void make_pool(data *p, int64_t u)
{
    data_init(p, u, u * (POOL_MAXA + 1));
    for (int64_t id = 0; id < u; id++) {
        if (id % 50 == 1 && p->natoms[id - 1] > 0) {
            int64_t base = id - 1, variant = (id / 50) % 6;
            int64_t i = data_copy(p, p, base);
            if (variant == 5) { /* one atom more: extend this copy in place (it is the last) */
                p->natoms[i]++;
                p->m++;
                p->off[i + 1] = p->m;
            }
            int64_t a0 = p->off[i], na = p->natoms[i];
            switch (variant) {
            case 0: p->pos[3 * a0] = nextafter(p->pos[3 * a0], INFINITY); break;
            case 1: p->pos[3 * a0 + 2] = -0.0; break; /* the base has +0.0 there */
            case 2:
                if (p->cells[9 * i + 4] != 0) p->cells[9 * i + 4] = nextafter(p->cells[9 * i + 4], 0);
                else p->cells[9 * i + 8] = -0.0;
                break;
            case 3: p->pbc[3 * i + 1] ^= 1; break;
            case 4: p->numbers[a0] = p->numbers[a0] % 90 + 1; break;
            case 5:
                p->numbers[a0 + na - 1] = 6;
                p->pos[3 * (a0 + na - 1)] = 1.5 * (double)(na - 1) + 0.05;
                p->pos[3 * (a0 + na - 1) + 1] = 0.001 * (double)id;
                p->pos[3 * (a0 + na - 1) + 2] = 1.0;
                break;
            }
            continue;
        }
        bool close = id % 97 == 13;
        int64_t na = id % 23 == 7 && !close ? 0 : rng_int(close ? 2 : 1, POOL_MAXA), i = data_push(p, na), a0 = p->off[i];
        for (int64_t a = 0; a < na; a++) {
            p->numbers[a0 + a] = rng_int(1, 90);
            p->pos[3 * (a0 + a)] = 1.5 * (double)a + 0.1 * rng_uniform();
            p->pos[3 * (a0 + a) + 1] = 0.001 * (double)id; /* distinct geometries */
            p->pos[3 * (a0 + a) + 2] = id % 50 == 0 && a == 0 ? 0.0 : 2 * rng_uniform();
        }
        if (close) {
            memcpy(p->pos + 3 * (a0 + 1), p->pos + 3 * a0, 3 * sizeof(double));
            p->pos[3 * (a0 + 1)] += 0.3;
            p->flag[i] = 1;
        }
        bool periodic = id % 3 != 0;
        if (periodic) {
            for (int c = 0; c < 3; c++) p->cells[9 * i + 4 * c] = 30 + 0.5 * rng_uniform();
            p->pbc[3 * i] = p->pbc[3 * i + 2] = 1;
            p->pbc[3 * i + 1] = (uint8_t)rng_int(0, 1);
        }
        if (na == 0)
            for (int c = 0; c < 3; c++) p->cells[9 * i + 4 * c] = 10 + 0.01 * (double)id;
    }
}

/* A sequence of s structures drawn from the pool: new geometries in pool order, and with
 * probability pdup one seen before. Labels differ at every position (energy, forces, stress,
 * metadata); nonzero pbc flags are sometimes 2..255; some duplicates carry |F| = 60 (which
 * would warn if written). (*idp)[k]: the pool index of position k. */
static void make_seq(data *s, int64_t **idp, const data *pool, int64_t n, double pdup)
{
    data_init(s, n, n * (POOL_MAXA + 1));
    int64_t *id = xcalloc((size_t)n, sizeof *id), next = 0;
    static const double zero9[9];
    for (int64_t k = 0; k < n; k++) {
        bool dup = next > 0 && (next == pool->n || rng_uniform() < pdup);
        id[k] = dup ? rng_int(0, next - 1) : next++;
        int64_t i = data_copy(s, pool, id[k]), a0 = s->off[i], na = s->natoms[i];
        for (int c = 0; c < 3; c++)
            if (s->pbc[3 * i + c] && rng_int(0, 2) == 0) s->pbc[3 * i + c] = (uint8_t)rng_int(2, 255);
        if (memcmp(s->cells + 9 * i, zero9, sizeof zero9) == 0 && rng_int(0, 1)) s->alt[i] |= 1;
        if (all_zero_bits(s->pbc + 3 * i, 3) && rng_int(0, 1)) s->alt[i] |= 2;
        s->energy[i] = -0.5 * (double)k - 1.0;
        for (int64_t c = 0; c < 3 * na; c++) s->forces[3 * a0 + c] = (double)((k * 7 + c * 3) % 33) / 16.0 - 1.0;
        if (dup && na > 0 && rng_uniform() < 0.1) {
            s->forces[3 * a0] = 60;
            s->forces[3 * a0 + 1] = s->forces[3 * a0 + 2] = 0;
            s->flag[i] |= 2;
        }
        if (k % 3) {
            s->mask[i] = 1;
            for (int c = 0; c < 6; c++) s->stress[6 * i + c] = 0.01 * (double)(k % 17) + c;
        }
        if (k % 4 == 0) set_info(s, i, "{\"k\":%lld}", (long long)k);
    }
    *idp = id;
}

/* The warnings of the expected file e (structures from index first_index on): one for each
 * close pair and each |F| = 60, numbered as written, and no other. */
static void expect_warnings(const logcap *cap, const data *e, int64_t first_index, const char *what)
{
    int expected = 0;
    for (int64_t i = 0; i < e->n; i++) {
        char needle[96];
        if (e->flag[i] & 1) {
            expected++;
            snprintf(needle, sizeof needle, "structure %lld: atoms 0 and 1 are 0.300", (long long)(first_index + i));
            CHECK_MSG(logcap_count(cap, needle) == 1, "%s: no warning '%s'", what, needle);
        }
        if (e->flag[i] & 2) {
            expected++;
            snprintf(needle, sizeof needle, "structure %lld: |F| = 60.00", (long long)(first_index + i));
            CHECK_MSG(logcap_count(cap, needle) == 1, "%s: no warning '%s'", what, needle);
        }
    }
    CHECK_MSG(cap->n == expected, "%s: %d warnings, expected %d%s%s", what, cap->n, expected, cap->n ? "; first: " : "",
              cap->n ? cap->msg[0] : "");
}

static void expect_stats(h5ml_writer *w, int64_t structures, int64_t added, int64_t dups, const char *what)
{
    h5ml_writer_stats st;
    h5ml_writer_get_stats(w, &st);
    CHECK_MSG(st.structures == structures && st.added == added && st.deduplicated == dups,
              "%s: structures %lld added %lld deduplicated %lld, expected %lld %lld %lld", what, (long long)st.structures,
              (long long)st.added, (long long)st.deduplicated, (long long)structures, (long long)added, (long long)dups);
}

/* One dedup run of seq [0, n) in sessions: session k writes [cut[k], cut[k+1]) with `how[k]`,
 * dedup[k] on or off, the first creating the file, the others appending. Checks the stats of
 * every session, its warnings, and the file against the structures that must remain. */
static void dedup_run_with(const data *seq, const int64_t *id, int nsess, const int64_t *cut, const int *how,
                           const int *dedup, int threads, const wopts *base, const char *what)
{
    const char *path = tmpname("dd");
    int64_t n = seq->n, in_file = 0, max_id = 0;
    for (int64_t k = 0; k < n; k++) max_id = id[k] > max_id ? id[k] : max_id;
    bool *keep = xcalloc((size_t)n, sizeof *keep);
    bool *seen = xcalloc((size_t)max_id + 1, sizeof *seen); /* geometries in the file */
    for (int s = 0; s < nsess; s++) {
        char sw[160];
        snprintf(sw, sizeof sw, "%s, session %d", what, s);
        bool *keep_s = xcalloc((size_t)n, sizeof *keep_s);
        int64_t added = 0;
        for (int64_t k = cut[s]; k < cut[s + 1]; k++) {
            keep_s[k] = !dedup[s] || !seen[id[k]];
            seen[id[k]] = true;
            added += keep_s[k];
            keep[k] = keep_s[k];
        }
        logcap cap = { 0 };
        wopts o = *base;
        o.dedup = dedup[s] ? 1 : -1;
        o.threads = threads;
        h5ml_writer *w = open_writer(path, s ? H5ML_APPEND : H5ML_CREATE, &o, &cap);
        int rc = write_data(w, seq, cut[s], cut[s + 1], how[s]);
        CHECK_MSG(rc == H5ML_OK, "%s: %s", sw, h5ml_errmsg(w));
        expect_stats(w, in_file + added, added, cut[s + 1] - cut[s] - added, sw);
        CHECK_EQ_I(h5ml_warning_count(w), cap.n);
        CHECK_MSG(h5ml_writer_close(w) == H5ML_OK, "%s: close", sw);
        data written;
        data_select(&written, seq, keep_s);
        expect_warnings(&cap, &written, in_file, sw);
        data_free(&written);
        logcap_clear(&cap);
        in_file += added;
        free(keep_s);
    }
    data e;
    data_select(&e, seq, keep);
    expect_file(path, &e, what);
    data_free(&e);
    free(keep);
    free(seen);
    unlink(path);
}

static void dedup_run(const data *seq, const int64_t *id, int nsess, const int64_t *cut, const int *how,
                      const int *dedup, int threads, const char *what)
{
    wopts base = { .chunk_atoms = 101, .chunk_structs = 37 };
    dedup_run_with(seq, id, nsess, cut, how, dedup, threads, &base, what);
}

static void test_dedup_sequences(void)
{
    data pool, seq;
    int64_t *id;
    make_pool(&pool, 7000);
    make_seq(&seq, &id, &pool, 10000, 0.35); /* ~6500 unique, in three checking blocks */
    int64_t n = seq.n, all[2] = { 0, n };
    int on[3] = { 1, 1, 1 };
    char what[128];
    /* inside one batch (three checking blocks: duplicates across blocks too) */
    for (int t = 0; t < 3; t++) {
        int how[1] = { WRITE_ONE_BATCH };
        snprintf(what, sizeof what, "dedup one batch, threads %d", all_threads[t]);
        dedup_run(&seq, id, 1, all, how, on, all_threads[t], what);
    }
    /* across batches, one at a time, mixed (checkpoints between: read back from the file) */
    int hows[3] = { WRITE_BATCHES, WRITE_SINGLE, WRITE_MIXED };
    const char *names[3] = { "batches", "single", "mixed" };
    for (int h = 0; h < 3; h++) {
        snprintf(what, sizeof what, "dedup %s", names[h]);
        dedup_run(&seq, id, 1, all, &hows[h], on, 2, what);
    }
    /* append: against the structures an earlier session wrote */
    int64_t half[3] = { 0, n / 2, n };
    int how2[2] = { WRITE_MIXED, WRITE_BATCHES };
    dedup_run(&seq, id, 2, half, how2, on, 0, "dedup append");
    int off_on[2] = { 0, 1 }; /* the first session keeps its duplicates */
    dedup_run(&seq, id, 2, half, how2, off_on, 0, "dedup append after a session without dedup");
    int64_t thirds[4] = { 0, n / 3, 2 * n / 3, n };
    int how3[3] = { WRITE_SINGLE, WRITE_ONE_BATCH, WRITE_SINGLE };
    dedup_run(&seq, id, 3, thirds, how3, on, 1, "dedup three sessions");
    int on_off[2] = { 1, 0 }; /* dedup off: every duplicate written */
    dedup_run(&seq, id, 2, half, how2, on_off, 2, "dedup then a session without it");
    data_free(&seq);
    free(id);

    /* chunks too small to compress: every one stored unfiltered, and read back right after
     * it was written (an HDF5 defect made that fail, see read_stored in atoms_writer.c) */
    make_seq(&seq, &id, &pool, 1200, 0.4);
    int64_t tcut[3] = { 0, 600, 1200 };
    for (int p = 0; p < 3; p++) {
        wopts tiny = { .profile = all_profiles[p], .chunk_atoms = 3, .chunk_structs = 2 };
        int mixed[2] = { WRITE_MIXED, WRITE_SINGLE };
        snprintf(what, sizeof what, "dedup with tiny chunks, %s", h5ml_profile_name(all_profiles[p]));
        dedup_run_with(&seq, id, 2, tcut, mixed, on, 0, &tiny, what);
    }
    data_free(&seq);
    free(id);

    /* forced hash collisions: few hash values, so every lookup meets other structures with
     * the same hash and only the byte comparison tells them apart */
    uint64_t masks[2] = { 0x7, 0 };
    int64_t sizes[2] = { 900, 300 };
    for (int k = 0; k < 2; k++) {
        make_seq(&seq, &id, &pool, sizes[k], 0.4);
        n = seq.n;
        int64_t whole[2] = { 0, n }, halves[3] = { 0, n / 2, n };
        h5ml__dedup_hash_mask = masks[k];
        for (int h = 0; h < 3; h++) {
            snprintf(what, sizeof what, "dedup collisions (mask %#llx) %s", (unsigned long long)masks[k], names[h]);
            dedup_run(&seq, id, 1, whole, &hows[h], on, 2, what);
        }
        int how1[1] = { WRITE_ONE_BATCH };
        snprintf(what, sizeof what, "dedup collisions (mask %#llx) one batch", (unsigned long long)masks[k]);
        dedup_run(&seq, id, 1, whole, how1, on, 1, what);
        snprintf(what, sizeof what, "dedup collisions (mask %#llx) append", (unsigned long long)masks[k]);
        dedup_run(&seq, id, 2, halves, how2, on, 0, what);
        h5ml__dedup_hash_mask = ~UINT64_C(0);
        data_free(&seq);
        free(id);
    }
    data_free(&pool);
}

/* The edge cases of h5ml.h, one by one. */
typedef struct edge {
    h5ml_writer *w;
    int64_t expect_n, expect_dups;
} edge;

static void edge_add(edge *e, const h5ml_structure *s, bool dup, const char *what)
{
    int rc = h5ml_writer_add(e->w, s);
    CHECK_MSG(rc == H5ML_OK, "%s: %s", what, h5ml_errmsg(e->w));
    if (dup) e->expect_dups++;
    else e->expect_n++;
    h5ml_writer_stats st;
    h5ml_writer_get_stats(e->w, &st);
    CHECK_MSG(st.structures == e->expect_n && st.deduplicated == e->expect_dups,
              "%s: %lld structures, %lld duplicates; expected %lld, %lld", what, (long long)st.structures,
              (long long)st.deduplicated, (long long)e->expect_n, (long long)e->expect_dups);
}

static void edge_reject(edge *e, const h5ml_structure *s, const char *msg, const char *what)
{
    CHECK_EQ_I(h5ml_writer_add(e->w, s), H5ML_ERR_VALUE);
    CHECK_MSG(strstr(h5ml_errmsg(e->w), msg) != NULL, "%s: message '%s' lacks '%s'", what, h5ml_errmsg(e->w), msg);
    h5ml_writer_stats st;
    h5ml_writer_get_stats(e->w, &st);
    CHECK_MSG(st.structures == e->expect_n && st.deduplicated == e->expect_dups, "%s: counts changed by a rejection", what);
}

static void test_dedup_edges(void)
{
    const char *path = tmpname("edge");
    logcap cap = { 0 };
    wopts o = { .dedup = 1, .chunk_atoms = 3, .chunk_structs = 2 };
    edge e = { open_writer(path, H5ML_CREATE, &o, &cap), 0, 0 };
    static const double zero9[9], negzero9[9] = { -0.0, -0.0, -0.0, -0.0, -0.0, -0.0, -0.0, -0.0, -0.0 };
    static const uint8_t pbc000[3] = { 0, 0, 0 };
    int64_t za[2] = { 8, 1 };
    double pa[6] = { 0.0, 0.0, 0.0, 1.5, 0.0, 0.0 }, fa[6] = { 0.1, 0, 0, -0.1, 0, 0 };
    /* 0: A, NULL cell and pbc */
    h5ml_structure a = { .natoms = 2, .numbers = za, .positions = pa, .energy = -1, .forces = fa };
    edge_add(&e, &a, false, "A");
    /* a zero cell and {0,0,0} pbc equal NULL ones */
    h5ml_structure a2 = a;
    a2.cell = zero9;
    a2.pbc = pbc000;
    a2.energy = -2;
    edge_add(&e, &a2, true, "A with a zero cell and pbc");
    a2.cell = NULL;
    a2.energy = -3;
    edge_add(&e, &a2, true, "A with {0,0,0} pbc");
    /* 1: a cell of -0.0 differs from the zero cell */
    a2 = a;
    a2.cell = negzero9;
    a2.energy = -4;
    edge_add(&e, &a2, false, "A with a -0.0 cell");
    edge_add(&e, &a2, true, "A with a -0.0 cell again");
    /* 2: a position -0.0 instead of 0.0 */
    double pneg[6];
    memcpy(pneg, pa, sizeof pneg);
    pneg[0] = -0.0;
    a2 = a;
    a2.positions = pneg;
    a2.energy = -5;
    edge_add(&e, &a2, false, "A with -0.0 in a position");
    /* 3, 4: a position one ulp away either side */
    double pulp[6];
    memcpy(pulp, pa, sizeof pulp);
    pulp[3] = nextafter(1.5, 2.0);
    a2.positions = pulp;
    a2.energy = -6;
    edge_add(&e, &a2, false, "A one ulp up");
    double pulp2[6];
    memcpy(pulp2, pa, sizeof pulp2);
    pulp2[3] = nextafter(1.5, 1.0);
    a2.positions = pulp2;
    a2.energy = -7;
    edge_add(&e, &a2, false, "A one ulp down");
    a2.energy = -7.5;
    edge_add(&e, &a2, true, "A one ulp down again");
    /* 5: B periodic; nonzero pbc flags all mean 1 */
    double cb[9] = { 10, 0, 0, 0, 10, 0, 0, 0, 10 };
    uint8_t pb[3] = { 1, 0, 1 }, pb2[3] = { 2, 0, 255 }, pb3[3] = { 1, 0, 0 }, pb4[3] = { 7, 0, 0 };
    h5ml_structure b = { .natoms = 2, .numbers = za, .positions = pa, .cell = cb, .pbc = pb, .energy = -8, .forces = fa };
    edge_add(&e, &b, false, "B");
    h5ml_structure b2 = b;
    b2.pbc = pb2;
    b2.energy = -9;
    edge_add(&e, &b2, true, "B with pbc {2,0,255}");
    b2.pbc = pb3;
    b2.energy = -10;
    edge_add(&e, &b2, false, "B with pbc {1,0,0}"); /* 6 */
    b2.pbc = pb4;
    b2.energy = -11;
    edge_add(&e, &b2, true, "B with pbc {7,0,0}");
    /* 7: C with labels; the same geometry with other labels is a duplicate, the first kept */
    int64_t zc[3] = { 26, 26, 8 };
    double pc[9] = { 0, 0, 0, 2, 0, 0, 0, 2, 0 }, fc[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, sc[6] = { 1, 2, 3, 4, 5, 6 };
    double fc2[9] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
    h5ml_structure c = { .natoms = 3, .numbers = zc, .positions = pc, .energy = -12, .forces = fc, .stress = sc,
                         .info_json = "{\"first\":true}" };
    edge_add(&e, &c, false, "C");
    h5ml_structure c2 = c;
    c2.energy = -13;
    c2.forces = fc2;
    c2.stress = NULL;
    c2.info_json = "{\"first\":false}";
    edge_add(&e, &c2, true, "C with other labels");
    /* validation comes first: a rejected duplicate is an error, not a skipped structure */
    c2.energy = NAN;
    edge_reject(&e, &c2, "Invalid energy: nan", "C with a NaN energy");
    c2.energy = -14;
    double finf[9] = { 1, 2, INFINITY, 4, 5, 6, 7, 8, 9 };
    c2.forces = finf;
    edge_reject(&e, &c2, "Forces contain Inf", "C with Inf forces");
    c2.forces = fc2;
    c2.forces_rows = 2;
    edge_reject(&e, &c2, "Forces shape (2, 3) doesn't match atoms (3, 3)", "C with forces of another shape");
    c2.forces_rows = 0;
    double snan[6] = { 1, NAN, 3, 4, 5, 6 };
    c2.stress = snan;
    edge_reject(&e, &c2, "Stress contains NaN", "C with a NaN stress");
    c2.stress = NULL;
    c2.info_json = "[1, 2]";
    CHECK(h5ml_writer_add(e.w, &c2) != H5ML_OK); /* metadata that is not a JSON object */
    c2.info_json = NULL;
    /* 8, 9: empty structures */
    h5ml_structure e0 = { .natoms = 0, .energy = 0.5 };
    edge_add(&e, &e0, false, "empty");
    e0.energy = 0.25;
    edge_add(&e, &e0, true, "empty again");
    double c5[9] = { 5, 0, 0, 0, 5, 0, 0, 0, 5 };
    e0.cell = c5;
    edge_add(&e, &e0, false, "empty with a cell");
    /* 10: A's first atom only */
    a2 = a;
    a2.natoms = 1;
    a2.energy = -15;
    edge_add(&e, &a2, false, "A's first atom");
    /* a batch: a duplicate of A (zero cell), D new, D again (pbc 3), then C rejected */
    {
        int64_t nat[4] = { 2, 2, 2, 3 }, zz[9] = { 8, 1, 6, 6, 6, 6, 26, 26, 8 };
        double pp[27] = { 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0 };
        double cc[36] = { 0 }, en[4] = { -16, -17, -18, NAN }, ff[27] = { 0 };
        uint8_t pbc[12] = { 0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0 };
        h5ml_batch bt = { 4, nat, zz, pp, cc, pbc, en, ff, NULL, NULL, NULL };
        CHECK_EQ_I(h5ml_writer_add_batch(e.w, &bt), H5ML_ERR_VALUE);
        CHECK_CONTAINS(h5ml_errmsg(e.w), "Invalid energy: nan");
        CHECK_CONTAINS(h5ml_errmsg(e.w), "structure 3 of the batch");
        e.expect_n += 1; /* 11: D */
        e.expect_dups += 2;
        expect_stats(e.w, e.expect_n, e.expect_n, e.expect_dups, "batch with a rejected structure");
        /* NULL cells and pbc in a batch: zeros; both duplicates (A and the empty structure) */
        int64_t nat2[2] = { 2, 0 };
        double en2[2] = { -19, -20 };
        h5ml_batch bt2 = { 2, nat2, za, pa, NULL, NULL, en2, fa, NULL, NULL, NULL };
        CHECK_MSG(h5ml_writer_add_batch(e.w, &bt2) == H5ML_OK, "%s", h5ml_errmsg(e.w));
        e.expect_dups += 2;
        expect_stats(e.w, e.expect_n, e.expect_n, e.expect_dups, "batch of NULL cells and pbc");
    }
    /* warnings: for written structures only, numbered as written */
    CHECK_EQ_I(cap.n, 0);
    int64_t zf[2] = { 1, 1 };
    double pf[6] = { 0, 0, 5, 0.3, 0, 5 }, ff[6] = { 0 }, fbig[6] = { 60, 0, 0, 0, 0, 0 };
    h5ml_structure fs = { .natoms = 2, .numbers = zf, .positions = pf, .energy = -21, .forces = ff };
    edge_add(&e, &fs, false, "F (atoms 0.3 A apart)"); /* 12 */
    CHECK_EQ_I(cap.n, 1);
    if (cap.n >= 1) CHECK_CONTAINS(cap.msg[0], "structure 12: atoms 0 and 1 are 0.300");
    fs.forces = fbig;
    edge_add(&e, &fs, true, "F again with |F| = 60");
    CHECK_EQ_I(cap.n, 1); /* a skipped structure issues no warning */
    {
        /* F (duplicate, |F| = 60), G new and close (written as 13), A duplicate */
        int64_t nat[3] = { 2, 2, 2 }, zz[6] = { 1, 1, 1, 1, 8, 1 };
        double pp[18] = { 0, 0, 5, 0.3, 0, 5, 0, 7, 5, 0.3, 7, 5, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0 };
        double en[3] = { -22, -23, -24 }, fr[18] = { 60, 0, 0 };
        h5ml_batch bt = { 3, nat, zz, pp, NULL, NULL, en, fr, NULL, NULL, NULL };
        CHECK_MSG(h5ml_writer_add_batch(e.w, &bt) == H5ML_OK, "%s", h5ml_errmsg(e.w));
        e.expect_n += 1;
        e.expect_dups += 2;
        expect_stats(e.w, e.expect_n, e.expect_n, e.expect_dups, "batch of warnings");
        CHECK_EQ_I(cap.n, 2);
        if (cap.n >= 2) CHECK_CONTAINS(cap.msg[1], "structure 13: atoms 0 and 1 are 0.300");
    }
    CHECK_EQ_I(h5ml_warning_count(e.w), 2);
    CHECK(h5ml_writer_close(e.w) == H5ML_OK);
    logcap_clear(&cap);

    /* what the file holds */
    static const double energies[14] = { -1, -4, -5, -6, -7, -8, -10, -12, 0.5, 0.25, -15, -17, -21, -23 };
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    CHECK_EQ_I(h5ml_reader_count(r), 14);
    for (int64_t i = 0; i < 14 && i < h5ml_reader_count(r); i++) {
        h5ml_frame f;
        CHECK(h5ml_reader_get(r, i, &f) == H5ML_OK);
        CHECK_MSG(f.energy == energies[i], "structure %lld: energy %g, expected %g", (long long)i, f.energy, energies[i]);
        if (i == 1) CHECK(memcmp(f.cell, negzero9, sizeof negzero9) == 0); /* -0.0 kept bit for bit */
        if (i == 2) CHECK(signbit(f.positions[0]) && f.positions[0] == 0);
        if (i == 3) CHECK(f.positions[3] == nextafter(1.5, 2.0));
        if (i == 4) CHECK(f.positions[3] == nextafter(1.5, 1.0));
        if (i == 5) CHECK(f.pbc[0] == 1 && f.pbc[1] == 0 && f.pbc[2] == 1);
        if (i == 6) CHECK(f.pbc[0] == 1 && f.pbc[1] == 0 && f.pbc[2] == 0);
        if (i == 7) {
            CHECK(f.has_stress && memcmp(f.stress, sc, sizeof sc) == 0);
            CHECK(f.forces[0] == 1 && f.forces[8] == 9);
            CHECK(f.info_json && strcmp(f.info_json, "{\"first\":true}") == 0);
        }
        if (i == 9) CHECK(f.natoms == 0 && f.cell[0] == 5);
        if (i == 10) CHECK(f.natoms == 1);
        if (i == 11) CHECK(f.natoms == 2 && f.numbers[0] == 6 && f.pbc[1] == 1);
    }
    CHECK_MSG(h5ml_verify(r, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));

    /* merging the file twice with dedup (h5ml_writer_add_file): the second copy is skipped */
    const char *merged = tmpname("edge-merged");
    wopts om = { .dedup = 1 };
    h5ml_writer *w = open_writer(merged, H5ML_CREATE, &om, NULL);
    CHECK(h5ml_writer_add_file(w, r, NULL, NULL) == H5ML_OK);
    CHECK(h5ml_writer_add_file(w, r, NULL, NULL) == H5ML_OK);
    expect_stats(w, 14, 14, 14, "add_file twice");
    CHECK(h5ml_writer_close(w) == H5ML_OK);
    h5ml_reader_close(r);
    r = h5ml_reader_new();
    h5ml_reader *r2 = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK && h5ml_reader_open(r2, merged) == H5ML_OK);
    CHECK_MSG(h5ml_diff(r, r2) == H5ML_OK, "merged file differs: %s", h5ml_errmsg(r));
    h5ml_reader_close(r2);
    h5ml_reader_close(r);
    unlink(merged);

    /* append with dedup: against what the earlier session stored */
    e.w = open_writer(path, H5ML_APPEND, &o, &cap);
    e.expect_dups = 0;
    edge_add(&e, &a, true, "A after reopening");
    a2 = a;
    a2.cell = negzero9;
    edge_add(&e, &a2, true, "A with a -0.0 cell after reopening");
    edge_add(&e, &b2, true, "B {7,0,0} after reopening");
    c2 = c;
    c2.energy = INFINITY;
    edge_reject(&e, &c2, "Invalid energy: inf", "C with an Inf energy after reopening");
    double ph[6] = { 0, 0, 0, 0, 0, 2 };
    /* (with metadata: appending structures without any to a file that has /labels/info
     * leaves it short, a defect of the append path outside deduplication) */
    h5ml_structure hs = { .natoms = 2, .numbers = za, .positions = ph, .energy = -30, .forces = fa, .info_json = "{\"h\":1}" };
    edge_add(&e, &hs, false, "H after reopening"); /* 14 */
    fs.forces = fbig;
    edge_add(&e, &fs, true, "F with |F| = 60 after reopening");
    expect_stats(e.w, 15, 1, 4, "append with dedup");
    CHECK_EQ_I(cap.n, 0);
    CHECK(h5ml_writer_close(e.w) == H5ML_OK);
    logcap_clear(&cap);

    /* without validation a duplicate is skipped whatever its labels */
    wopts ov = { .dedup = 1, .validate = -1 };
    e.w = open_writer(path, H5ML_APPEND, &ov, &cap);
    e.expect_dups = 0;
    c2 = c;
    c2.energy = NAN;
    edge_add(&e, &c2, true, "C with a NaN energy, unvalidated");
    expect_stats(e.w, 15, 0, 1, "append without validation");
    CHECK(h5ml_writer_close(e.w) == H5ML_OK);
    logcap_clear(&cap);

    /* dedup off (the default, and -1): every copy written */
    wopts off = { .dedup = 0 };
    h5ml_writer *w2 = open_writer(path, H5ML_APPEND, &off, NULL);
    a.info_json = "{\"copy\":1}";
    CHECK(h5ml_writer_add(w2, &a) == H5ML_OK);
    CHECK(h5ml_writer_add(w2, &a) == H5ML_OK);
    expect_stats(w2, 17, 2, 0, "dedup off by default");
    CHECK(h5ml_writer_close(w2) == H5ML_OK);
    wopts off2 = { .dedup = -1 };
    w2 = open_writer(path, H5ML_APPEND, &off2, NULL);
    CHECK(h5ml_writer_add(w2, &a) == H5ML_OK);
    expect_stats(w2, 18, 1, 0, "dedup -1");
    CHECK(h5ml_writer_close(w2) == H5ML_OK);
    r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    CHECK_EQ_I(h5ml_reader_count(r), 18);
    CHECK_MSG(h5ml_verify(r, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    h5ml_reader_close(r);
    unlink(path);
}

int main(void)
{
    unsigned seed = test_seed();
    rng_seed(seed);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_precedence();
    test_roundtrips();
    test_caller_rows();
    test_signals();
    test_append_other_profile();
    test_dedup_edges();
    test_dedup_sequences();
    return check_report("test_profiles_dedup");
}
