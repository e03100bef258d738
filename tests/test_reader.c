/* The reader on files written by other tools (plain HDF5, as h5py writes them) and on
 * malformed files: every defect is a clear ERR_SCHEMA naming the dataset, never a crash or
 * an out-of-bounds read. */
#include "check.h"
#include "h5ml.h"

#include <hdf5.h>

/* A 3-structure file (2, 1 and 3 atoms) in HDF5's default (earliest) format with contiguous
 * datasets, like a simple h5py script writes; `defect` selects one thing to break. */
enum { OK_FILE, SPLITS_DECREASE, SPLITS_PAST_END, SPLITS_START, ENERGY_SHORT, FSPLITS_DIFFER, POS_FLAT, ENERGY_STRING,
       NO_FORCES, PBC_UINT8, CHUNKED_GZIP };

static void put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims_in, const void *buf, bool chunked)
{
    hsize_t dims[3] = { 0, 0, 0 };
    for (int k = 0; k < rank; k++) dims[k] = dims_in[k];
    hid_t s = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        hsize_t maxd[3] = { H5S_UNLIMITED, dims[1], dims[2] }, ch[3] = { 2, dims[1], dims[2] };
        H5Sclose(s);
        s = H5Screate_simple(rank, dims, maxd);
        H5Pset_chunk(dcpl, rank, ch);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, name, type, s, lcpl, dcpl, H5P_DEFAULT);
    if (buf) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(s);
}

static const char *make_file(int defect)
{
    const char *path = tmpname("foreign");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    bool ch = defect == CHUNKED_GZIP;
    int64_t numbers[6] = { 1, 8, 29, 6, 1, 1 }, splits[4] = { 0, 2, 3, 6 }, fsplits[4] = { 0, 2, 3, 6 }, idx[3] = { 0, 1, 2 };
    double pos[18], cells[27] = { 0 }, energy[3] = { -1.5, -2.5, -3.5 }, stress[18] = { 0 };
    float forces[18];
    int8_t pbc[9] = { 0, 0, 0, 1, 1, 1, 0, 0, 0 }, mask[3] = { 0, 1, 0 };
    for (int i = 0; i < 18; i++) {
        pos[i] = i * 0.75;
        forces[i] = (float)(i - 9) * 0.125f;
    }
    cells[9] = cells[13] = cells[17] = 3.6;
    for (int k = 0; k < 6; k++) stress[6 + k] = 0.01 * (k + 1);
    if (defect == SPLITS_DECREASE) splits[2] = 1, fsplits[2] = 1;
    if (defect == SPLITS_PAST_END) splits[3] = 7, fsplits[3] = 7;
    if (defect == SPLITS_START) splits[0] = 1, fsplits[0] = 1;
    if (defect == FSPLITS_DIFFER) fsplits[1] = 1;
    hsize_t m = 6, n = 3, n1 = 4, m3[2] = { 6, 3 }, n3[2] = { 3, 3 }, n33[3] = { 3, 3, 3 }, n6[2] = { 3, 6 }, m18 = 18;
    hid_t b = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v = 0;
    H5Tenum_insert(b, "FALSE", &v);
    v = 1;
    H5Tenum_insert(b, "TRUE", &v);
    put(f, "structures/atomic_numbers", H5T_NATIVE_INT64, 1, &m, numbers, ch);
    put(f, "structures/atomic_numbers_splits", H5T_NATIVE_INT64, 1, &n1, splits, ch);
    if (defect == POS_FLAT) put(f, "structures/positions", H5T_NATIVE_DOUBLE, 1, &m18, pos, ch);
    else put(f, "structures/positions", H5T_NATIVE_DOUBLE, 2, m3, pos, ch);
    put(f, "structures/cells", H5T_NATIVE_DOUBLE, 3, n33, cells, ch);
    put(f, "structures/pbc", defect == PBC_UINT8 ? H5T_NATIVE_UINT8 : b, 2, n3, pbc, ch);
    hsize_t ne = defect == ENERGY_SHORT ? 2 : n;
    if (defect == ENERGY_STRING) {
        hid_t s = H5Tcopy(H5T_C_S1);
        H5Tset_size(s, 8);
        put(f, "labels/energy", s, 1, &n, "-1.5    -2.5    -3.5    ", ch);
        H5Tclose(s);
    } else {
        put(f, "labels/energy", H5T_NATIVE_DOUBLE, 1, &ne, energy, ch);
    }
    if (defect != NO_FORCES) put(f, "labels/forces", H5T_NATIVE_FLOAT, 2, m3, forces, ch);
    put(f, "labels/forces_splits", H5T_NATIVE_INT64, 1, &n1, fsplits, ch);
    put(f, "labels/stress", H5T_NATIVE_DOUBLE, 2, n6, stress, ch);
    put(f, "labels/stress_mask", b, 1, &n, mask, ch);
    put(f, "labels/structure_indices", H5T_NATIVE_INT64, 1, &n, idx, ch);
    hid_t g = H5Gcreate2(f, "metadata", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t as = H5Screate(H5S_SCALAR), a = H5Acreate2(g, "num_structures", H5T_NATIVE_INT64, as, H5P_DEFAULT, H5P_DEFAULT);
    int64_t three = 3;
    H5Awrite(a, H5T_NATIVE_INT64, &three);
    H5Aclose(a);
    H5Sclose(as);
    H5Gclose(g);
    H5Tclose(b);
    H5Fclose(f);
    return path;
}

static void expect_schema_error(int defect, const char *needle)
{
    const char *path = make_file(defect);
    h5ml_reader *r = h5ml_reader_new();
    CHECK_EQ_I(h5ml_reader_open(r, path), H5ML_ERR_SCHEMA);
    CHECK_CONTAINS(h5ml_errmsg(r), needle);
    CHECK_CONTAINS(h5ml_errmsg(r), path);
    CHECK_EQ_I(h5ml_reader_count(r), 0);
    h5ml_frame f;
    CHECK_EQ_I(h5ml_reader_get(r, 0, &f), H5ML_ERR_STATE); /* unusable, not out of bounds */
    h5ml_reader_close(r);
    unlink(path);
}

static void check_foreign(int kind)
{
    const char *path = make_file(kind);
    h5ml_reader *r = h5ml_reader_new();
    CHECK_MSG(h5ml_reader_open(r, path) == H5ML_OK, "%s", h5ml_errmsg(r));
    CHECK_EQ_I(h5ml_reader_count(r), 3);
    CHECK_EQ_I(h5ml_reader_total_atoms(r), 6);
    h5ml_frame f;
    CHECK(h5ml_reader_get(r, 2, &f) == H5ML_OK);
    CHECK(f.natoms == 3 && f.numbers[0] == 6 && f.positions[0] == 9 * 0.75 && f.forces[8] == (float)(17 - 9) * 0.125f);
    CHECK(f.energy == -3.5 && !f.has_stress && !f.pbc[0]);
    CHECK(h5ml_reader_get(r, 1, &f) == H5ML_OK);
    CHECK(f.has_stress && f.stress[5] == 0.06 && f.pbc[0] && f.pbc[2] && f.cell[8] == 3.6);
    CHECK_MSG(h5ml_verify(r, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
    h5ml_reader_close(r);
    /* appending: chunked files continue, contiguous ones are refused with the reason */
    h5ml_writer *w = h5ml_writer_new();
    int rc = h5ml_writer_open(w, path, H5ML_APPEND);
    if (kind == CHUNKED_GZIP) {
        CHECK_MSG(rc == H5ML_OK, "%s", h5ml_errmsg(w));
        int64_t z[1] = { 2 };
        double p[3] = { 0, 0, 0 }, fo[3] = { 0.5, 0, 0 };
        h5ml_structure s = { .natoms = 1, .numbers = z, .positions = p, .energy = -9, .forces = fo };
        CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
        CHECK(h5ml_writer_close(w) == H5ML_OK);
        r = h5ml_reader_new();
        CHECK(h5ml_reader_open(r, path) == H5ML_OK);
        CHECK_EQ_I(h5ml_reader_count(r), 4);
        CHECK(h5ml_reader_get(r, 3, &f) == H5ML_OK && f.energy == -9 && f.numbers[0] == 2 && f.forces[0] == 0.5f);
        CHECK_MSG(h5ml_verify(r, NULL, NULL) == H5ML_OK, "%s", h5ml_errmsg(r));
        h5ml_reader_close(r);
    } else {
        CHECK_EQ_I(rc, H5ML_ERR_SCHEMA);
        CHECK_CONTAINS(h5ml_errmsg(w), "not chunked, so it cannot grow");
        h5ml_writer_close(w);
    }
    unlink(path);
}

/* A chunked file with one dataset longer than the rest: append refuses (no h5ml writer left
 * it unfinished), repair cuts it back. */
static void test_repair(void)
{
    const char *path = make_file(CHUNKED_GZIP);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "labels/energy", H5P_DEFAULT);
    hsize_t four = 4;
    CHECK(H5Dset_extent(d, &four) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    h5ml_writer *w = h5ml_writer_new();
    CHECK_EQ_I(h5ml_writer_open(w, path, H5ML_APPEND), H5ML_ERR_SCHEMA);
    CHECK_CONTAINS(h5ml_errmsg(w), "lengths disagree: /labels/energy has 4 rows");
    CHECK_CONTAINS(h5ml_errmsg(w), "h5ml repair");
    h5ml_writer_close(w);
    w = h5ml_writer_new();
    CHECK_MSG(h5ml_writer_open(w, path, H5ML_REPAIR) == H5ML_OK, "%s", h5ml_errmsg(w));
    CHECK_EQ_I(h5ml_warning_count(w), 2); /* the cut tail, and no SWMR for HDF5's older format */
    CHECK(h5ml_writer_close(w) == H5ML_OK);
    h5ml_reader *r = h5ml_reader_new();
    CHECK_MSG(h5ml_reader_open(r, path) == H5ML_OK, "%s", h5ml_errmsg(r));
    CHECK_EQ_I(h5ml_reader_count(r), 3);
    CHECK(h5ml_verify(r, NULL, NULL) == H5ML_OK);
    h5ml_reader_close(r);
    unlink(path);
}

int main(void)
{
    test_seed();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    check_foreign(OK_FILE);
    check_foreign(PBC_UINT8);
    check_foreign(CHUNKED_GZIP);
    test_repair();
    expect_schema_error(SPLITS_DECREASE, "/structures/atomic_numbers_splits decreases at index 2 (1 after 2)");
    expect_schema_error(SPLITS_PAST_END, "/structures/atomic_numbers_splits ends at 7 but the per-atom datasets have 6 rows");
    expect_schema_error(SPLITS_START, "/structures/atomic_numbers_splits starts at 1, expected 0");
    expect_schema_error(ENERGY_SHORT, "lengths disagree: /labels/energy has 2 rows");
    expect_schema_error(FSPLITS_DIFFER, "/labels/forces_splits differs from /structures/atomic_numbers_splits at index 1");
    expect_schema_error(POS_FLAT, "/structures/positions has the wrong shape: expected float64 (M, 3), found shape (18,)");
    expect_schema_error(ENERGY_STRING, "/labels/energy has the wrong dtype");
    expect_schema_error(NO_FORCES, "missing dataset /labels/forces");
    const char *junk = tmpname("junk");
    FILE *fp = fopen(junk, "w");
    fputs("this is not HDF5\n", fp);
    fclose(fp);
    h5ml_reader *r = h5ml_reader_new();
    CHECK_EQ_I(h5ml_reader_open(r, junk), H5ML_ERR_SCHEMA);
    CHECK_CONTAINS(h5ml_errmsg(r), "not an HDF5 file");
    CHECK_EQ_I(h5ml_reader_open(r, "/nonexistent/x.h5"), H5ML_ERR_IO);
    CHECK_CONTAINS(h5ml_errmsg(r), "/nonexistent/x.h5: No such file or directory");
    h5ml_reader_close(r);
    unlink(junk);
    return check_report("test_reader");
}
