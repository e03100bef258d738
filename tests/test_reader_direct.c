/* h5ml_reader_read_indices: structures in any order with repeats, through the direct chunk
 * path (every compression, shuffle on and off, chunk caches of every size, 1 and 2 threads,
 * several threads on one reader at once) and through HDF5 (a contiguous file), each value
 * checked against the function that made it. */
#include "check.h"
#include "h5ml.h"

#include <hdf5.h>
#include <pthread.h>

/* Structure i: 1 + i % 7 atoms; every value a function of (i, atom, component). */
static int64_t natoms_of(int64_t i) { return 1 + i % 7; }
static int64_t number_of(int64_t i, int64_t a) { return 1 + (i * 3 + a) % 90; }
static double pos_of(int64_t i, int64_t a, int k) { return (double)i * 0.5 + (double)a * 1.25 + k * 0.1; }
static double force_of(int64_t i, int64_t a, int k) { return (double)((i * 11 + a * 5 + k) % 200) / 16.0 - 6.0; }
static double energy_of(int64_t i) { return -0.25 * (double)i; }

static void write_file(const char *path, int64_t n, int compression, int shuffle, int64_t chunk_atoms, int64_t chunk_structs)
{
    h5ml_writer *w = h5ml_writer_new();
    h5ml_writer_set(w, H5ML_OPT_COMPRESSION, compression);
    h5ml_writer_set(w, H5ML_OPT_SHUFFLE, shuffle ? 1 : -1);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, chunk_atoms);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, chunk_structs);
    CHECK_MSG(h5ml_writer_open(w, path, H5ML_CREATE) == H5ML_OK, "%s", h5ml_errmsg(w));
    int64_t z[8];
    double pos[24], f[24], cell[9] = { 0 }, stress[6];
    uint8_t pbc[3];
    for (int64_t i = 0; i < n; i++) {
        int64_t na = natoms_of(i);
        for (int64_t a = 0; a < na; a++) {
            z[a] = number_of(i, a);
            for (int k = 0; k < 3; k++) {
                pos[3 * a + k] = pos_of(i, a, k);
                f[3 * a + k] = force_of(i, a, k);
            }
        }
        cell[0] = cell[4] = cell[8] = 50.0 + (double)(i % 5);
        pbc[0] = pbc[1] = pbc[2] = (uint8_t)(i % 2);
        for (int k = 0; k < 6; k++) stress[k] = 0.001 * (double)(i + k);
        h5ml_structure s = { .natoms = na, .numbers = z, .positions = pos, .cell = cell, .pbc = pbc, .energy = energy_of(i),
                             .forces = f, .stress = i % 3 ? stress : NULL };
        CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
    }
    CHECK(h5ml_writer_close(w) == H5ML_OK);
}

typedef struct bufs {
    int64_t natoms[512], numbers[512 * 8];
    double positions[512 * 24], cells[512 * 9], energies[512], stress[512 * 6];
    float forces[512 * 24];
    uint8_t pbc[512 * 3], mask[512];
} bufs;

/* Reads idx[0..n) and checks every value; returns the number of wrong structures. */
static int64_t read_and_check(h5ml_reader *r, const int64_t *idx, int64_t n, bufs *b)
{
    h5ml_frames o = { b->natoms, b->numbers, b->positions, b->cells, b->pbc, b->energies, b->forces, b->stress, b->mask };
    int64_t atoms = -1;
    if (h5ml_reader_atoms_of(r, idx, n, &atoms) != H5ML_OK || atoms > 512 * 8) return n;
    if (h5ml_reader_read_indices(r, idx, n, &o) != H5ML_OK) {
        fprintf(stderr, "read_indices: %s\n", h5ml_errmsg(r));
        return n;
    }
    int64_t bad = 0, a0 = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx[k], na = natoms_of(i);
        bool ok = b->natoms[k] == na && b->energies[k] == energy_of(i) && b->cells[9 * k] == 50.0 + (double)(i % 5) &&
                  b->pbc[3 * k] == (uint8_t)(i % 2) && b->mask[k] == (i % 3 != 0) &&
                  b->stress[6 * k + 5] == (i % 3 ? 0.001 * (double)(i + 5) : 0.0);
        for (int64_t a = 0; ok && a < na; a++) {
            ok = b->numbers[a0 + a] == number_of(i, a);
            for (int c = 0; ok && c < 3; c++)
                ok = b->positions[3 * (a0 + a) + c] == pos_of(i, a, c) && b->forces[3 * (a0 + a) + c] == (float)force_of(i, a, c);
        }
        if (!ok && bad++ < 3) fprintf(stderr, "structure %lld (position %lld) read wrong\n", (long long)i, (long long)k);
        a0 += na;
    }
    return bad;
}

static void random_indices(int64_t *idx, int64_t n, int64_t count)
{
    for (int64_t k = 0; k < n; k++) idx[k] = rng_int(0, count - 1);
    if (n > 3) idx[n - 1] = idx[0]; /* a repeat */
    if (n > 5) idx[2] = idx[1] + 1 < count ? idx[1] + 1 : idx[1]; /* a run of two */
}

static void test_layouts(void)
{
    const char *path = tmpname("direct");
    int64_t n = 3000;
    int comps[3] = { H5ML_COMPRESS_NONE, H5ML_COMPRESS_GZIP, H5ML_COMPRESS_LZF };
    int64_t chunk_atoms[3] = { 64, 1000, 16384 }, budgets[3] = { 0, 32 * 1024, 64 << 20 };
    bufs *b = malloc(sizeof *b);
    int64_t idx[512];
    for (int ci = 0; ci < 3; ci++)
        for (int shuffle = 0; shuffle < 2; shuffle++)
            for (int ca = 0; ca < 3; ca++) {
                unlink(path);
                write_file(path, n, comps[ci], shuffle, chunk_atoms[ca], chunk_atoms[ca] / 4 + 1);
                for (int bi = 0; bi < 3; bi++)
                    for (int threads = 1; threads <= 2; threads++) {
                        h5ml_reader *r = h5ml_reader_new();
                        CHECK(h5ml_reader_set_cache(r, budgets[bi]) == H5ML_OK);
                        CHECK(h5ml_reader_set_threads(r, threads) == H5ML_OK);
                        CHECK(h5ml_reader_open(r, path) == H5ML_OK);
                        for (int rep = 0; rep < 4; rep++) {
                            int64_t k = rng_int(1, 512);
                            random_indices(idx, k, n);
                            CHECK_MSG(read_and_check(r, idx, k, b) == 0, "compression %d shuffle %d chunk %lld budget %lld threads %d",
                                      comps[ci], shuffle, (long long)chunk_atoms[ca], (long long)budgets[bi], threads);
                        }
                        /* get() goes the same way */
                        h5ml_frame f;
                        int64_t i = rng_int(0, n - 1);
                        CHECK(h5ml_reader_get(r, i, &f) == H5ML_OK && f.natoms == natoms_of(i) && f.positions[0] == pos_of(i, 0, 0) &&
                              f.energy == energy_of(i));
                        int64_t out_of_range = n;
                        CHECK_EQ_I(h5ml_reader_read_indices(r, &out_of_range, 1, &(h5ml_frames){ .energies = b->energies }), H5ML_ERR_RANGE);
                        CHECK_CONTAINS(h5ml_errmsg(r), "Index 3000 out of range [0, 3000)");
                        h5ml_reader_close(r);
                    }
            }
    free(b);
    unlink(path);
}

/* A long run of single reads through a cache that holds a few chunks: every insert evicts,
 * so the cache's hash map fills with tombstones and must be rebuilt (it once looped forever
 * looking up a missing chunk once no empty slot was left). */
static void test_cache_churn(void)
{
    const char *path = tmpname("churn");
    int64_t n = 6000;
    unlink(path);
    write_file(path, n, H5ML_COMPRESS_GZIP, 1, 32, 16); /* about 750 per-atom chunks each */
    bufs *b = malloc(sizeof *b);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_set_cache(r, 96 * 1024) == H5ML_OK); /* about a hundred small chunks */
    CHECK(h5ml_reader_set_threads(r, 1) == H5ML_OK);
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    int64_t bad = 0, idx;
    for (int64_t k = 0; k < 40000; k++) {
        idx = rng_int(0, n - 1);
        bad += read_and_check(r, &idx, 1, b);
    }
    CHECK_MSG(bad == 0, "%lld of 40000 single reads wrong", (long long)bad);
    h5ml_reader_close(r);
    free(b);
    unlink(path);
}

/* Several threads reading through one reader at once, with a cache smaller than the file. */
typedef struct shared { h5ml_reader *r; int64_t n; unsigned seed; int64_t bad; } shared;

static void *reader_thread(void *arg)
{
    shared *s = arg;
    bufs *b = malloc(sizeof *b);
    uint64_t st = s->seed * 2654435761u + 7;
    int64_t idx[256], bad = 0;
    for (int rep = 0; rep < 60; rep++) {
        for (int k = 0; k < 256; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            idx[k] = (int64_t)((st >> 33) % (uint64_t)s->n);
        }
        bad += read_and_check(s->r, idx, 256, b);
    }
    free(b);
    __atomic_add_fetch(&s->bad, bad, __ATOMIC_RELAXED);
    return NULL;
}

static void test_concurrent(void)
{
    const char *path = tmpname("concurrent");
    int64_t n = 6000;
    unlink(path);
    write_file(path, n, H5ML_COMPRESS_GZIP, 1, 512, 128);
    h5ml_reader *r = h5ml_reader_new();
    CHECK(h5ml_reader_set_cache(r, 256 * 1024) == H5ML_OK); /* far smaller than the file: evictions */
    CHECK(h5ml_reader_open(r, path) == H5ML_OK);
    shared s[4];
    pthread_t t[4];
    for (int k = 0; k < 4; k++) {
        s[k] = (shared){ r, n, (unsigned)(k + 1), 0 };
        pthread_create(&t[k], NULL, reader_thread, &s[k]);
    }
    int64_t bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        bad += s[k].bad;
    }
    CHECK_MSG(bad == 0, "%lld structures read wrong by concurrent readers", (long long)bad);
    h5ml_reader_close(r);
    unlink(path);
}

/* A file the direct path does not cover (contiguous datasets, as a simple h5py script
 * writes them) reads the same through HDF5. */
static void test_contiguous_file(void)
{
    const char *src = tmpname("src"), *path = tmpname("contig");
    int64_t n = 200;
    unlink(src);
    write_file(src, n, H5ML_COMPRESS_NONE, 0, 4096, 1024);
    hid_t fs = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT), fd = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[] = { "structures/atomic_numbers", "structures/atomic_numbers_splits", "structures/positions", "structures/cells",
                            "structures/pbc", "labels/energy", "labels/forces", "labels/forces_splits", "labels/stress",
                            "labels/stress_mask", "labels/structure_indices" };
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        hid_t d = H5Dopen2(fs, names[k], H5P_DEFAULT), t = H5Dget_type(d), sp = H5Dget_space(d);
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        void *buf = malloc((size_t)np * H5Tget_size(t) + 1);
        H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        hsize_t dims[3];
        int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
        hid_t sp2 = H5Screate_simple(rank, dims, NULL);
        hid_t d2 = H5Dcreate2(fd, names[k], t, sp2, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d2, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Dclose(d2);
        H5Sclose(sp2);
        free(buf);
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
    }
    H5Pclose(lcpl);
    H5Fclose(fd);
    H5Fclose(fs);
    h5ml_reader *r = h5ml_reader_new();
    CHECK_MSG(h5ml_reader_open(r, path) == H5ML_OK, "%s", h5ml_errmsg(r));
    bufs *b = malloc(sizeof *b);
    int64_t idx[100];
    random_indices(idx, 100, n);
    CHECK(read_and_check(r, idx, 100, b) == 0);
    free(b);
    h5ml_reader_close(r);
    unlink(src);
    unlink(path);
}

int main(void)
{
    rng_seed(test_seed());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_layouts();
    test_cache_churn();
    test_concurrent();
    test_contiguous_file();
    return check_report("test_reader_direct");
}
