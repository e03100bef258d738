/* The atomistic writer and reader: round trips through every compression and chunking,
 * validation messages, batch semantics, append, rollback, metadata, locking, verify. */
#include "check.h"
#include "h5ml.h"

#include <hdf5.h>

typedef struct data {
    int64_t n, m;
    int64_t *natoms, *numbers;
    double *pos, *cells, *energy, *forces, *stress;
    uint8_t *pbc, *mask;
    char **info;
} data;

static data make_data(int64_t n, int64_t max_atoms)
{
    data d = { .n = n };
    d.natoms = calloc((size_t)n + 1, sizeof *d.natoms);
    for (int64_t i = 0; i < n; i++) d.m += d.natoms[i] = rng_int(0, max_atoms);
    d.numbers = malloc(sizeof *d.numbers * (size_t)(d.m + 1));
    d.pos = malloc(sizeof *d.pos * 3 * (size_t)(d.m + 1));
    d.forces = malloc(sizeof *d.forces * 3 * (size_t)(d.m + 1));
    d.cells = calloc(9 * (size_t)n + 1, sizeof *d.cells);
    d.energy = malloc(sizeof *d.energy * (size_t)(n + 1));
    d.stress = calloc(6 * (size_t)n + 1, sizeof *d.stress);
    d.pbc = calloc(3 * (size_t)n + 1, 1);
    d.mask = calloc((size_t)n + 1, 1);
    d.info = calloc((size_t)n + 1, sizeof *d.info);
    int64_t a = 0;
    for (int64_t i = 0; i < n; i++) {
        bool periodic = rng_int(0, 1);
        double L = 4 + 0.5 * (double)d.natoms[i];
        for (int64_t k = 0; k < d.natoms[i]; k++, a++) {
            d.numbers[a] = rng_int(1, 118);
            /* atoms on a coarse grid: never closer than 0.5 A, so no warnings */
            for (int j = 0; j < 3; j++) {
                d.pos[3 * a + j] = (double)((a * 7 + j * 3) % 97) * 1.3 + 0.01 * rng_uniform();
                d.forces[3 * a + j] = rng_normal();
            }
            d.pos[3 * a] += 130.0 * (double)(k / 97);
        }
        if (periodic) {
            for (int j = 0; j < 3; j++) d.cells[9 * i + 4 * j] = L + 200;
            d.pbc[3 * i] = d.pbc[3 * i + 1] = 1;
            d.pbc[3 * i + 2] = (uint8_t)rng_int(0, 1);
            d.mask[i] = 1;
            for (int j = 0; j < 6; j++) d.stress[6 * i + j] = rng_normal() * 0.01;
        }
        d.energy[i] = -3.0 * (double)d.natoms[i] + rng_normal();
        if (rng_int(0, 2) == 0) {
            d.info[i] = malloc(64);
            snprintf(d.info[i], 64, "{\"k\":%lld,\"s\":\"x y\"}", (long long)i);
        }
    }
    return d;
}

static void free_data(data *d)
{
    for (int64_t i = 0; i < d->n; i++) free(d->info[i]);
    free(d->info);
    free(d->natoms);
    free(d->numbers);
    free(d->pos);
    free(d->forces);
    free(d->cells);
    free(d->energy);
    free(d->stress);
    free(d->pbc);
    free(d->mask);
}

static h5ml_batch batch_of(const data *d, int64_t s, int64_t k, int64_t atom0)
{
    h5ml_batch b = { k, d->natoms + s, d->numbers + atom0, d->pos + 3 * atom0, d->cells + 9 * s, d->pbc + 3 * s,
                     d->energy + s, d->forces + 3 * atom0, d->stress + 6 * s, d->mask + s, (const char *const *)d->info + s };
    return b;
}

/* Writes d[from:to) with a mix of batch and single adds. */
static int write_range(h5ml_writer *w, const data *d, int64_t from, int64_t to)
{
    int64_t atom = 0;
    for (int64_t i = 0; i < from; i++) atom += d->natoms[i];
    int64_t i = from;
    while (i < to) {
        if (rng_int(0, 1)) {
            int64_t k = rng_int(1, 9);
            if (i + k > to) k = to - i;
            h5ml_batch b = batch_of(d, i, k, atom);
            int rc = h5ml_writer_add_batch(w, &b);
            if (rc) return rc;
            for (int64_t j = 0; j < k; j++) atom += d->natoms[i + j];
            i += k;
        } else {
            h5ml_structure s = { .natoms = d->natoms[i], .numbers = d->numbers + atom, .positions = d->pos + 3 * atom,
                                 .cell = d->cells + 9 * i, .pbc = d->pbc + 3 * i, .energy = d->energy[i],
                                 .forces = d->forces + 3 * atom, .stress = d->mask[i] ? d->stress + 6 * i : NULL,
                                 .info_json = d->info[i] };
            int rc = h5ml_writer_add(w, &s);
            if (rc) return rc;
            atom += d->natoms[i];
            i++;
        }
    }
    return H5ML_OK;
}

static void compare_file(const char *path, const data *d)
{
    h5ml_reader *r = h5ml_reader_new();
    CHECK_MSG(h5ml_reader_open(r, path) == H5ML_OK, "%s", h5ml_errmsg(r));
    CHECK_EQ_I(h5ml_reader_count(r), d->n);
    CHECK_EQ_I(h5ml_reader_total_atoms(r), d->m);
    int64_t atom = 0;
    for (int64_t i = 0; i < d->n; i++) {
        h5ml_frame f;
        CHECK(h5ml_reader_get(r, i, &f) == H5ML_OK);
        CHECK_EQ_I(f.natoms, d->natoms[i]);
        if (f.natoms > 0) { /* an empty structure's arrays may be NULL */
            CHECK(memcmp(f.numbers, d->numbers + atom, sizeof(int64_t) * (size_t)f.natoms) == 0);
            CHECK(memcmp(f.positions, d->pos + 3 * atom, sizeof(double) * 3 * (size_t)f.natoms) == 0);
        }
        for (int64_t k = 0; k < 3 * f.natoms; k++) CHECK(f.forces[k] == (float)d->forces[3 * atom + k]);
        CHECK(memcmp(f.cell, d->cells + 9 * i, sizeof f.cell) == 0);
        for (int k = 0; k < 3; k++) CHECK(f.pbc[k] == d->pbc[3 * i + k]);
        CHECK(f.energy == d->energy[i]);
        CHECK(f.has_stress == d->mask[i]);
        if (d->mask[i]) CHECK(memcmp(f.stress, d->stress + 6 * i, sizeof f.stress) == 0);
        else for (int k = 0; k < 6; k++) CHECK(f.stress[k] == 0);
        CHECK((f.info_json == NULL) == (d->info[i] == NULL));
        if (f.info_json && d->info[i]) CHECK_STR(f.info_json, d->info[i]);
        atom += d->natoms[i];
    }
    CHECK_MSG(h5ml_verify(r, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    h5ml_reader_close(r);
}

static void test_roundtrips(void)
{
    struct { int comp, level, shuffle; int64_t ca, cs; } cfg[] = {
        { H5ML_COMPRESS_NONE, 0, 1, 0, 0 },  { H5ML_COMPRESS_GZIP, 4, 1, 0, 0 }, { H5ML_COMPRESS_GZIP, 1, -1, 7, 3 },
        { H5ML_COMPRESS_GZIP, 9, 1, 13, 5 }, { H5ML_COMPRESS_LZF, 0, 1, 64, 8 }, { H5ML_COMPRESS_LZF, 0, -1, 1, 1 },
        { H5ML_COMPRESS_NONE, 0, 1, 5, 2 },
    };
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        data d = make_data(rng_int(0, 120), 40);
        const char *path = tmpname("rt");
        h5ml_writer *w = h5ml_writer_new();
        CHECK(h5ml_writer_set(w, H5ML_OPT_COMPRESSION, cfg[c].comp) == H5ML_OK);
        if (cfg[c].level) CHECK(h5ml_writer_set(w, H5ML_OPT_LEVEL, cfg[c].level) == H5ML_OK);
        CHECK(h5ml_writer_set(w, H5ML_OPT_SHUFFLE, cfg[c].shuffle) == H5ML_OK);
        if (cfg[c].ca) CHECK(h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, cfg[c].ca) == H5ML_OK);
        if (cfg[c].cs) CHECK(h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, cfg[c].cs) == H5ML_OK);
        CHECK_MSG(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK, "%s", h5ml_errmsg(w));
        /* interleave checkpoints, so partial chunks are written and then completed */
        int64_t half = d.n / 2;
        CHECK_MSG(write_range(w, &d, 0, half) == H5ML_OK, "%s", h5ml_errmsg(w));
        CHECK(h5ml_writer_checkpoint(w) == H5ML_OK);
        CHECK(h5ml_writer_checkpoint(w) == H5ML_OK);
        CHECK_MSG(write_range(w, &d, half, d.n) == H5ML_OK, "%s", h5ml_errmsg(w));
        CHECK_EQ_I(h5ml_writer_close(w), H5ML_OK);
        compare_file(path, &d);
        /* HDF5 itself (not h5ml's reader) sees the data through its own filters */
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds = H5Dopen2(f, "labels/energy", H5P_DEFAULT);
        double *e = malloc(sizeof *e * (size_t)(d.n + 1));
        CHECK(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, e) >= 0);
        CHECK(d.n == 0 || memcmp(e, d.energy, sizeof *e * (size_t)d.n) == 0);
        hid_t dcpl = H5Dget_create_plist(ds);
        int nf = H5Pget_nfilters(dcpl);
        CHECK_EQ_I(nf, cfg[c].comp == H5ML_COMPRESS_NONE ? 0 : (cfg[c].shuffle > 0 ? 2 : 1));
        if (nf > 0) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)nf - 1, &flags, &ncd, cd, 0, NULL, NULL);
            CHECK_EQ_I(id, cfg[c].comp == H5ML_COMPRESS_LZF ? 32000 : H5Z_FILTER_DEFLATE);
            if (id == H5Z_FILTER_DEFLATE) CHECK_EQ_I(cd[0], cfg[c].level);
        }
        H5Pclose(dcpl);
        free(e);
        H5Dclose(ds);
        H5Fclose(f);
        unlink(path);
        free_data(&d);
    }
}

static h5ml_writer *open_new(const char *path)
{
    h5ml_writer *w = h5ml_writer_new();
    CHECK_MSG(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK, "%s", h5ml_errmsg(w));
    return w;
}

static void test_validation(void)
{
    const char *path = tmpname("val");
    h5ml_writer *w = open_new(path);
    int64_t z[5] = { 1, 1, 8, 6, 1 };
    double pos[15] = { 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1 }, f[30] = { 0 }, st[9] = { 0 };
    h5ml_structure s = { .natoms = 5, .numbers = z, .positions = pos, .energy = -1, .forces = f };
    s.energy = NAN;
    CHECK_EQ_I(h5ml_writer_add(w, &s), H5ML_ERR_VALUE);
    CHECK_STR(h5ml_errmsg(w), "Invalid energy: nan");
    s.energy = INFINITY;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Invalid energy: inf");
    s.energy = -INFINITY;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Invalid energy: -inf");
    s.energy = -1;
    s.forces_rows = 10;
    CHECK_EQ_I(h5ml_writer_add(w, &s), H5ML_ERR_VALUE);
    CHECK_STR(h5ml_errmsg(w), "Forces shape (10, 3) doesn't match atoms (5, 3)");
    s.forces_rows = 0;
    f[4] = NAN;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Forces contain NaN");
    f[4] = -INFINITY;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Forces contain Inf");
    f[4] = 0;
    s.stress = st;
    st[2] = NAN;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Stress contains NaN");
    st[2] = INFINITY;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Stress contains Inf");
    st[2] = 0;
    s.stress_len = 5;
    h5ml_writer_add(w, &s);
    CHECK_STR(h5ml_errmsg(w), "Stress shape (5,) doesn't match (6,) or (3, 3)");
    s.stress_len = 9;
    st[8] = 0.5;
    st[5] = 0.25; /* yz from a 3x3 */
    CHECK_MSG(h5ml_writer_add(w, &s) == H5ML_OK, "%s", h5ml_errmsg(w));
    s.stress = NULL;
    z[2] = 200;
    h5ml_writer_add(w, &s);
    CHECK_CONTAINS(h5ml_errmsg(w), "Invalid atomic number 200");
    z[2] = 8;
    s.info_json = "[1,2]";
    CHECK_EQ_I(h5ml_writer_add(w, &s), H5ML_ERR_VALUE);
    s.info_json = NULL;
    h5ml_writer_stats ws;
    h5ml_writer_get_stats(w, &ws);
    CHECK_EQ_I(ws.structures, 1); /* only the valid one */
    CHECK(h5ml_writer_finalize(w) == H5ML_OK);
    CHECK(h5ml_writer_finalize(w) == H5ML_OK); /* second finalize only warns */
    CHECK_EQ_I(h5ml_warning_count(w), 1);
    CHECK_EQ_I(h5ml_writer_add(w, &s), H5ML_ERR_STATE);
    CHECK_STR(h5ml_errmsg(w), "Cannot add structures after finalize() has been called");
    h5ml_writer_close(w);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    h5ml_frame fr;
    CHECK(h5ml_reader_get(r, 0, &fr) == H5ML_OK);
    CHECK(fr.has_stress && fr.stress[2] == 0.5 && fr.stress[3] == 0.25);
    CHECK_EQ_I(h5ml_reader_get(r, 1, &fr), H5ML_ERR_RANGE);
    CHECK_STR(h5ml_errmsg(r), "Index 1 out of range [0, 1)");
    h5ml_reader_close(r);
    /* validation off: NaN accepted, shapes still enforced */
    h5ml_writer *w2 = h5ml_writer_new();
    h5ml_writer_set(w2, H5ML_OPT_VALIDATE, -1);
    CHECK(h5ml_writer_open(w2, path, H5ML_CREATE) == H5ML_OK);
    f[0] = INFINITY;
    s.energy = NAN;
    CHECK(h5ml_writer_add(w2, &s) == H5ML_OK);
    s.forces_rows = 4;
    CHECK_EQ_I(h5ml_writer_add(w2, &s), H5ML_ERR_VALUE);
    h5ml_writer_close(w2);
    f[0] = 0;
    unlink(path);
}

static void test_batch_failure(void)
{
    data d = make_data(20, 6);
    d.energy[12] = INFINITY;
    const char *path = tmpname("batch");
    h5ml_writer *w = open_new(path);
    h5ml_batch b = batch_of(&d, 0, 20, 0);
    CHECK_EQ_I(h5ml_writer_add_batch(w, &b), H5ML_ERR_VALUE);
    CHECK_STR(h5ml_errmsg(w), "Invalid energy: inf (structure 12 of the batch)");
    h5ml_writer_stats ws;
    h5ml_writer_get_stats(w, &ws);
    CHECK_EQ_I(ws.structures, 12);
    h5ml_writer_close(w);
    d.n = 12;
    d.m = 0;
    for (int i = 0; i < 12; i++) d.m += d.natoms[i];
    compare_file(path, &d);
    d.n = 20;
    unlink(path);
    free_data(&d);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

static int diff_files(const char *x, const char *y, char *msg, size_t len)
{
    h5ml_reader *a = h5ml_reader_new(), *b = h5ml_reader_new();
    int rc = h5ml_reader_open(a, x);
    if (rc == 0) rc = h5ml_reader_open(b, y);
    if (rc == 0) rc = h5ml_diff(a, b);
    snprintf(msg, len, "%s / %s", h5ml_errmsg(a), h5ml_errmsg(b));
    h5ml_reader_close(a);
    h5ml_reader_close(b);
    return rc;
}

static void test_append_and_rollback(void)
{
    data d = make_data(90, 30);
    const char *one = tmpname("one"), *two = tmpname("two"), *saved = tmpname("saved");
    char msg[2048];
    for (int comp = H5ML_COMPRESS_NONE; comp <= H5ML_COMPRESS_LZF; comp++) {
        h5ml_writer *w = h5ml_writer_new();
        h5ml_writer_set(w, H5ML_OPT_COMPRESSION, comp);
        h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, 50);
        h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, 8);
        CHECK(h5ml_writer_open(w, one, H5ML_CREATE) == H5ML_OK);
        CHECK(write_range(w, &d, 0, d.n) == H5ML_OK);
        h5ml_writer_close(w);
        int64_t cut[3] = { 0, 37, 90 };
        for (int part = 0; part < 2; part++) {
            w = h5ml_writer_new();
            h5ml_writer_set(w, H5ML_OPT_COMPRESSION, comp);
            h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, 50);
            h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, 8);
            CHECK_MSG(h5ml_writer_open(w, two, part ? H5ML_APPEND : H5ML_CREATE) == H5ML_OK, "%s", h5ml_errmsg(w));
            CHECK(write_range(w, &d, cut[part], cut[part + 1]) == H5ML_OK);
            h5ml_writer_close(w);
        }
        CHECK_MSG(diff_files(one, two, msg, sizeof msg) == H5ML_OK, "comp %d: %s", comp, msg);
        compare_file(two, &d);
        /* rollback of an append leaves the file as it was */
        copy_file(two, saved);
        w = h5ml_writer_new();
        CHECK(h5ml_writer_open(w, two, H5ML_APPEND) == H5ML_OK);
        CHECK(write_range(w, &d, 0, 60) == H5ML_OK);
        CHECK(h5ml_writer_checkpoint(w) == H5ML_OK); /* some of it reached the file */
        CHECK(write_range(w, &d, 60, 70) == H5ML_OK);
        CHECK_MSG(h5ml_writer_rollback(w) == H5ML_OK, "%s", h5ml_errmsg(w));
        CHECK_EQ_I(h5ml_writer_add(w, NULL), H5ML_ERR_STATE);
        h5ml_writer_close(w);
        CHECK_MSG(diff_files(saved, two, msg, sizeof msg) == H5ML_OK, "comp %d, after rollback: %s", comp, msg);
        compare_file(two, &d);
    }
    /* rollback of a file created over an existing one leaves that file as it was */
    copy_file(one, saved);
    h5ml_writer *w = open_new(one);
    CHECK(write_range(w, &d, 0, 10) == H5ML_OK);
    CHECK(h5ml_writer_checkpoint(w) == H5ML_OK);
    CHECK_MSG(diff_files(saved, one, msg, sizeof msg) == H5ML_OK, "replaced before finalize: %s", msg);
    CHECK(h5ml_writer_rollback(w) == H5ML_OK);
    h5ml_writer_close(w);
    CHECK_MSG(diff_files(saved, one, msg, sizeof msg) == H5ML_OK, "after rollback of a replacement: %s", msg);
    /* ... and it is replaced when the new file is finalized */
    w = open_new(one);
    CHECK(write_range(w, &d, 0, 10) == H5ML_OK);
    CHECK(h5ml_writer_close(w) == H5ML_OK);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, one) == H5ML_OK);
    CHECK_EQ_I(h5ml_reader_count(r), 10);
    h5ml_reader_close(r);
    /* rollback of a new file removes it */
    unlink(one);
    w = open_new(one);
    CHECK(access(one, F_OK) == 0); /* a new file is there from the start (crash safety) */
    CHECK(write_range(w, &d, 0, 10) == H5ML_OK);
    CHECK(h5ml_writer_rollback(w) == H5ML_OK);
    h5ml_writer_close(w);
    CHECK(access(one, F_OK) != 0);
    unlink(two);
    unlink(saved);
    free_data(&d);
}

static void test_metadata_and_empty(void)
{
    const char *path = tmpname("meta");
    h5ml_writer *w = h5ml_writer_new();
    CHECK(h5ml_writer_meta_string(w, "teacher_model", "orb-v2") == H5ML_OK);
    CHECK(h5ml_writer_meta_int(w, "seed", -42) == H5ML_OK);
    CHECK(h5ml_writer_meta_double(w, "cutoff", 5.5) == H5ML_OK);
    CHECK(h5ml_writer_meta_bool(w, "relaxed", 1) == H5ML_OK);
    CHECK(h5ml_writer_meta_json(w, "generation_config", "{\"batch_size\": 32, \"device\": \"cuda\"}") == H5ML_OK);
    double v[3] = { 1.5, 2.5, 3.5 };
    CHECK(h5ml_writer_meta_doubles(w, "weights", v, 3) == H5ML_OK);
    CHECK_EQ_I(h5ml_writer_meta_string(w, "num_structures", "7"), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_writer_meta_string(w, "a/b", "7"), H5ML_ERR_ARG);
    CHECK_EQ_I(h5ml_writer_meta_json(w, "bad", "{oops"), H5ML_ERR_VALUE);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_LEVEL, 12), H5ML_ERR_ARG);
    CHECK_CONTAINS(h5ml_errmsg(w), "level must be between");
    CHECK(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK);
    CHECK_EQ_I(h5ml_writer_set(w, H5ML_OPT_LEVEL, 2), H5ML_ERR_STATE);
    CHECK(h5ml_writer_close(w) == H5ML_OK); /* empty: close finalizes */
    h5ml_reader *r = h5ml_reader_new();
    CHECK_MSG(h5ml_reader_open(r, path) == H5ML_OK, "%s", h5ml_errmsg(r));
    CHECK_EQ_I(h5ml_reader_count(r), 0);
    CHECK(h5ml_verify(r, NULL, NULL) == H5ML_OK);
    char *json = NULL;
    CHECK(h5ml_reader_metadata(r, &json) == H5ML_OK);
    CHECK_CONTAINS(json, "\"num_structures\":0");
    CHECK_CONTAINS(json, "\"teacher_model\":\"orb-v2\"");
    CHECK_CONTAINS(json, "\"seed\":-42");
    CHECK_CONTAINS(json, "\"cutoff\":5.5");
    CHECK_CONTAINS(json, "\"relaxed\":true");
    CHECK_CONTAINS(json, "\"generation_config\":\"{\\\"batch_size\\\":32,\\\"device\\\":\\\"cuda\\\"}\"");
    CHECK_CONTAINS(json, "\"weights\":[1.5,2.5,3.5]");
    CHECK_CONTAINS(json, "\"format\":\"h5ml-atoms\"");
    CHECK_CONTAINS(json, "\"finalized\":true");
    h5ml_free(json);
    h5ml_reader_close(r);
    unlink(path);
}

typedef struct logcap { int n; char last[512]; } logcap;

static void capture(void *user, int level, const char *msg)
{
    logcap *c = user;
    if (level == H5ML_LOG_WARNING) {
        c->n++;
        snprintf(c->last, sizeof c->last, "%s", msg);
    }
}

static void test_warnings_and_lock(void)
{
    const char *path = tmpname("warn");
    h5ml_writer *w = h5ml_writer_new();
    logcap cap = { 0, "" };
    h5ml_set_log(w, capture, &cap);
    CHECK(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK);
    /* two atoms 0.3 A apart only through the periodic boundary along x */
    int64_t z[2] = { 29, 29 };
    double pos[6] = { 0.1, 1, 1, 9.8, 1, 1 }, f[6] = { 0 }, cell[9] = { 10, 0, 0, 0, 10, 0, 0, 0, 10 };
    uint8_t pbc[3] = { 1, 0, 0 }, nopbc[3] = { 0, 0, 0 };
    h5ml_structure s = { .natoms = 2, .numbers = z, .positions = pos, .cell = cell, .pbc = pbc, .energy = -1, .forces = f };
    CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
    CHECK_EQ_I(cap.n, 1);
    CHECK_CONTAINS(cap.last, "atoms 0 and 1 are 0.300");
    s.pbc = nopbc;
    CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
    CHECK_EQ_I(cap.n, 1); /* 9.7 A apart without periodicity */
    f[3] = 60;
    CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
    CHECK_EQ_I(cap.n, 2);
    CHECK_CONTAINS(cap.last, "|F| = 60.00");
    /* a second writer on the same file is refused while the first is open */
    h5ml_writer *w2 = h5ml_writer_new();
    CHECK_EQ_I(h5ml_writer_open(w2, path, H5ML_APPEND), H5ML_ERR_BUSY);
    CHECK_CONTAINS(h5ml_errmsg(w2), "another h5ml writer");
    h5ml_writer_close(w2);
    h5ml_writer_close(w);
    w2 = h5ml_writer_new();
    CHECK_MSG(h5ml_writer_open(w2, path, H5ML_APPEND) == H5ML_OK, "%s", h5ml_errmsg(w2));
    h5ml_writer_close(w2);
    unlink(path);
}

static void test_verify_detects(void)
{
    data d = make_data(30, 10);
    const char *path = tmpname("tamper");
    h5ml_writer *w = open_new(path);
    CHECK(write_range(w, &d, 0, d.n) == H5ML_OK);
    h5ml_writer_close(w);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "labels/structure_indices", H5P_DEFAULT);
    hsize_t one = 1, at = 5;
    int64_t bad = 77;
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    CHECK(H5Dwrite(ds, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, &bad) >= 0);
    H5Sclose(fs);
    H5Sclose(ms);
    H5Dclose(ds);
    H5Fclose(f);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    CHECK_EQ_I(h5ml_verify(r, NULL, NULL), H5ML_ERR_CHECK);
    CHECK_CONTAINS(h5ml_errmsg(r), "labels/structure_indices[5] is 77, expected 5");
    h5ml_reader_close(r);
    unlink(path);
    free_data(&d);
}

int main(void)
{
    unsigned seed = test_seed();
    rng_seed(seed);
    test_roundtrips();
    test_validation();
    test_batch_failure();
    test_append_and_rollback();
    test_metadata_and_empty();
    test_warnings_and_lock();
    test_verify_detects();
    return check_report("test_writer");
}
