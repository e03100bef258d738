/* Fuzz target: the atomistic reader on mutated HDF5 files.
 *
 * The input is written to a file and opened with h5ml_reader_open; then every read path
 * runs: count and layout, range reads of every structure (all fields, and a few fields
 * only), h5ml_reader_get and h5ml_reader_info of each structure, h5ml_reader_read_indices
 * with a shuffled list (repeats included) on two threads, atoms_of, the /metadata JSON,
 * h5ml_verify, h5ml_summarize, h5ml_export_xyz of the first structures, and h5ml_diff of the
 * file with itself. Errors are fine; crashes, hangs, leaks (memory or HDF5 ids) are not, nor
 * are answers that disagree with each other: the atoms of a range must be the sum of its
 * structures' natoms, get/read/read_indices must return the same values, metadata must be
 * JSON, and a file must not differ from itself. */
#include "fuzz_util.h"

#include <jansson.h>

/* Bounds of this harness's own buffers (the library bounds its own). */
enum { MAX_STRUCTS = 1 << 16, MAX_ATOMS = 1 << 18, MAX_GET = 256, MAX_IDX = 512 };

typedef struct all {
    int64_t n, m;
    int64_t *natoms, *numbers, *start;
    double *positions, *cells, *energies, *stress;
    float *forces;
    uint8_t *pbc, *mask;
} all;

static void all_free(all *a)
{
    free(a->natoms);
    free(a->numbers);
    free(a->start);
    free(a->positions);
    free(a->cells);
    free(a->energies);
    free(a->stress);
    free(a->forces);
    free(a->pbc);
    free(a->mask);
    memset(a, 0, sizeof *a);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) abort();
    return p;
}

static int same_bytes(const void *a, const void *b, size_t n) { return n == 0 || memcmp(a, b, n) == 0; }

/* Every structure in one range read (the file is small enough), plus a read of a few fields. */
static int read_everything(h5ml_reader *r, all *a)
{
    a->n = h5ml_reader_count(r);
    a->m = h5ml_reader_total_atoms(r);
    size_t n = (size_t)a->n, m = (size_t)a->m;
    a->natoms = xcalloc(n, sizeof *a->natoms);
    a->start = xcalloc(n + 1, sizeof *a->start);
    a->numbers = xcalloc(m, sizeof *a->numbers);
    a->positions = xcalloc(3 * m, sizeof *a->positions);
    a->forces = xcalloc(3 * m, sizeof *a->forces);
    a->cells = xcalloc(9 * n, sizeof *a->cells);
    a->energies = xcalloc(n, sizeof *a->energies);
    a->stress = xcalloc(6 * n, sizeof *a->stress);
    a->pbc = xcalloc(3 * n, 1);
    a->mask = xcalloc(n, 1);
    h5ml_frames o = { a->natoms, a->numbers, a->positions, a->cells, a->pbc, a->energies, a->forces, a->stress, a->mask };
    int rc = h5ml_reader_read(r, 0, a->n, &o);
    if (rc != H5ML_OK) {
        fuzz_check_message(r, rc, "h5ml_reader_read");
        return rc;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(a->natoms[i] >= 0, "structure %zu has %lld atoms", i, (long long)a->natoms[i]);
        a->start[i] = sum;
        sum += a->natoms[i];
    }
    a->start[n] = sum;
    FUZZ_CHECK(sum == a->m, "natoms sum to %lld, total_atoms is %lld", (long long)sum, (long long)a->m);
    /* Per-structure fields only, then per-atom ones only: other column sets, same values. */
    double *e = xcalloc(n, sizeof *e);
    h5ml_frames o2 = { .energies = e, .pbc = xcalloc(3 * n, 1) };
    rc = h5ml_reader_read(r, 0, a->n, &o2);
    if (rc == H5ML_OK) {
        FUZZ_CHECK(same_bytes(e, a->energies, n * sizeof *e), "energies differ between two range reads");
        FUZZ_CHECK(same_bytes(o2.pbc, a->pbc, 3 * n), "pbc differ between two range reads");
    }
    free(o2.pbc);
    free(e);
    float *f = xcalloc(3 * m, sizeof *f);
    h5ml_frames o3 = { .forces = f };
    if (h5ml_reader_read(r, 0, a->n, &o3) == H5ML_OK)
        FUZZ_CHECK(same_bytes(f, a->forces, 3 * m * sizeof *f), "forces differ between two range reads");
    free(f);
    return H5ML_OK;
}

static void check_get(h5ml_reader *r, const all *a, int64_t i)
{
    h5ml_frame f;
    int rc = h5ml_reader_get(r, i, &f);
    if (rc != H5ML_OK) {
        fuzz_check_message(r, rc, "h5ml_reader_get");
        return;
    }
    FUZZ_CHECK(f.index == i, "get(%lld) returned index %lld", (long long)i, (long long)f.index);
    if (a->natoms == NULL) return;
    int64_t s = a->start[i], na = a->natoms[i];
    FUZZ_CHECK(f.natoms == na, "get(%lld): %lld atoms, read: %lld", (long long)i, (long long)f.natoms, (long long)na);
    FUZZ_CHECK(same_bytes(f.numbers, a->numbers + s, (size_t)na * sizeof *f.numbers), "get(%lld): numbers differ from read", (long long)i);
    FUZZ_CHECK(same_bytes(f.positions, a->positions + 3 * s, (size_t)na * 3 * sizeof *f.positions), "get(%lld): positions differ",
               (long long)i);
    FUZZ_CHECK(same_bytes(f.forces, a->forces + 3 * s, (size_t)na * 3 * sizeof *f.forces), "get(%lld): forces differ", (long long)i);
    FUZZ_CHECK(same_bytes(f.cell, a->cells + 9 * i, sizeof f.cell), "get(%lld): cell differs", (long long)i);
    FUZZ_CHECK(same_bytes(f.pbc, a->pbc + 3 * i, 3), "get(%lld): pbc differs", (long long)i);
    FUZZ_CHECK(same_bytes(&f.energy, a->energies + i, sizeof f.energy), "get(%lld): energy differs", (long long)i);
    FUZZ_CHECK(!f.has_stress == !a->mask[i], "get(%lld): has_stress differs", (long long)i);
    FUZZ_CHECK(same_bytes(f.stress, a->stress + 6 * i, sizeof f.stress), "get(%lld): stress differs", (long long)i);
    char *json = NULL;
    rc = h5ml_reader_info(r, i, &json);
    if (rc == H5ML_OK) {
        FUZZ_CHECK(!json == !f.info_json && (!json || strcmp(json, f.info_json) == 0), "info(%lld) differs from get", (long long)i);
        h5ml_free(json);
    } else {
        fuzz_check_message(r, rc, "h5ml_reader_info");
    }
}

static void check_indices(h5ml_reader *r, const all *a, uint64_t seed)
{
    int64_t n = a->n, k = n < MAX_IDX ? 2 * n : MAX_IDX;
    int64_t *idx = xcalloc((size_t)k, sizeof *idx), atoms = 0;
    for (int64_t q = 0; q < k; q++) idx[q] = (int64_t)(fuzz_mix(&seed) % (uint64_t)n);
    int rc = h5ml_reader_atoms_of(r, idx, k, &atoms);
    FUZZ_CHECK(rc == H5ML_OK, "atoms_of failed: %s", h5ml_errmsg(r));
    int64_t want = 0;
    for (int64_t q = 0; q < k; q++) want += a->natoms[idx[q]];
    FUZZ_CHECK(atoms == want, "atoms_of: %lld, sum of natoms %lld", (long long)atoms, (long long)want);
    size_t m = (size_t)atoms;
    h5ml_frames o = { xcalloc((size_t)k, 8), xcalloc(m, 8), xcalloc(3 * m, 8), xcalloc(9 * (size_t)k, 8), xcalloc(3 * (size_t)k, 1),
                      xcalloc((size_t)k, 8), xcalloc(3 * m, 4), xcalloc(6 * (size_t)k, 8), xcalloc((size_t)k, 1) };
    h5ml_reader_set_threads(r, 2);
    rc = h5ml_reader_read_indices(r, idx, k, &o);
    h5ml_reader_set_threads(r, 1);
    if (rc == H5ML_OK) {
        int64_t at = 0;
        for (int64_t q = 0; q < k; q++) {
            int64_t i = idx[q], s = a->start[i], na = a->natoms[i];
            FUZZ_CHECK(o.natoms[q] == na, "read_indices: natoms of %lld differ", (long long)i);
            FUZZ_CHECK(same_bytes(o.numbers + at, a->numbers + s, (size_t)na * 8) &&
                           same_bytes(o.positions + 3 * at, a->positions + 3 * s, (size_t)na * 24) &&
                           same_bytes(o.forces + 3 * at, a->forces + 3 * s, (size_t)na * 12),
                       "read_indices: atoms of structure %lld (entry %lld) differ from the range read", (long long)i, (long long)q);
            FUZZ_CHECK(same_bytes(o.cells + 9 * q, a->cells + 9 * i, 72) && same_bytes(o.pbc + 3 * q, a->pbc + 3 * i, 3) &&
                           same_bytes(o.energies + q, a->energies + i, 8) && same_bytes(o.stress + 6 * q, a->stress + 6 * i, 48) &&
                           o.stress_mask[q] == a->mask[i],
                       "read_indices: structure %lld (entry %lld) differs from the range read", (long long)i, (long long)q);
            at += na;
        }
    } else {
        fuzz_check_message(r, rc, "h5ml_reader_read_indices");
    }
    free(o.natoms);
    free(o.numbers);
    free(o.positions);
    free(o.cells);
    free(o.pbc);
    free(o.energies);
    free(o.forces);
    free(o.stress);
    free(o.stress_mask);
    free(idx);
}

static void count_problem(void *user, const char *problem)
{
    FUZZ_CHECK(problem && *problem, "verify reported an empty problem");
    ++*(int *)user;
}

static void whole_file_ops(h5ml_reader *r, const char *path)
{
    char *meta = NULL;
    int rc = h5ml_reader_metadata(r, &meta);
    FUZZ_CHECK(rc == H5ML_OK, "metadata failed: %s", h5ml_errmsg(r));
    json_error_t e;
    json_t *j = json_loads(meta, 0, &e);
    FUZZ_CHECK(j != NULL && json_is_object(j), "metadata is not a JSON object: %s (%s)", e.text, meta);
    json_decref(j);
    h5ml_free(meta);

    int problems = 0;
    rc = h5ml_verify(r, count_problem, &problems);
    FUZZ_CHECK(rc == H5ML_OK || problems > 0 || rc != H5ML_ERR_CHECK, "verify: ERR_CHECK without a problem reported");
    FUZZ_CHECK(rc != H5ML_OK || problems == 0, "verify: OK with %d problems reported", problems);
    if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_verify");

    h5ml_summary s;
    rc = h5ml_summarize(r, &s, NULL, NULL);
    if (rc == H5ML_OK) {
        FUZZ_CHECK(s.structures == h5ml_reader_count(r) && s.atoms == h5ml_reader_total_atoms(r),
                   "summary: %lld structures, %lld atoms; reader: %lld, %lld", (long long)s.structures, (long long)s.atoms,
                   (long long)h5ml_reader_count(r), (long long)h5ml_reader_total_atoms(r));
    } else {
        fuzz_check_message(r, rc, "h5ml_summarize");
    }

    char xyz[600];
    fuzz_path(xyz, sizeof xyz, "export.xyz");
    int64_t end = h5ml_reader_count(r) < 8 ? -1 : 8;
    rc = h5ml_export_xyz(r, xyz, 0, end, NULL, NULL);
    if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_export_xyz");
    unlink(xyz);

    h5ml_reader *b = h5ml_reader_new();
    if (b == NULL) abort();
    if (h5ml_reader_open(b, path) == H5ML_OK) {
        rc = h5ml_diff(r, b);
        FUZZ_CHECK(rc != H5ML_ERR_DIFFER, "the file differs from itself: %s", h5ml_errmsg(r));
    }
    h5ml_reader_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fuzz_path(path, sizeof path, "in.h5");
    fuzz_write_file(path, data, size);
    h5ml_reader *r = h5ml_reader_new();
    if (r == NULL) abort();
    h5ml_reader_set_cache(r, 64 << 10); /* small: reads evict decoded chunks */
    h5ml_reader_set_threads(r, 1);
    int rc = h5ml_reader_open(r, path);
    if (rc != H5ML_OK) {
        fuzz_check_message(r, rc, "h5ml_reader_open");
    } else {
        int64_t n = h5ml_reader_count(r), m = h5ml_reader_total_atoms(r), atoms = -1;
        FUZZ_CHECK(n >= 0 && m >= 0, "count %lld, total atoms %lld", (long long)n, (long long)m);
        FUZZ_CHECK(h5ml_reader_range_atoms(r, 0, n, &atoms) == H5ML_OK && atoms == m, "range_atoms(0, N) = %lld, M = %lld",
                   (long long)atoms, (long long)m);
        FUZZ_CHECK(h5ml_reader_range_atoms(r, n, 1, &atoms) == H5ML_ERR_RANGE, "range_atoms past the end accepted");
        h5ml_layout lay;
        rc = h5ml_reader_layout(r, &lay);
        if (rc != H5ML_OK) fuzz_check_message(r, rc, "h5ml_reader_layout");
        all a = { 0 };
        bool small = n <= MAX_STRUCTS && m <= MAX_ATOMS;
        if (small && read_everything(r, &a) != H5ML_OK) all_free(&a);
        for (int64_t i = 0; i < n && i < MAX_GET; i++) check_get(r, &a, i);
        h5ml_frame f;
        FUZZ_CHECK(h5ml_reader_get(r, n, &f) == H5ML_ERR_RANGE, "get(N) accepted");
        if (a.natoms && n > 0) check_indices(r, &a, fuzz_hash(data, size));
        all_free(&a);
        if (small) whole_file_ops(r, path);
    }
    h5ml_reader_close(r);
    fuzz_check_no_hdf5_ids("after h5ml_reader_close");
    unlink(path);
    return 0;
}
