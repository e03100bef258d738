/* MATLAB import: h5ml__mat_list and h5ml__mat_read_signal against the fixtures made by
 * scripts/make_mat_fixtures.py (v4, v5 by scipy, v7.3 by h5py), against v5 and v7.3 files
 * written here by libmatio itself, and against directory trees made here.
 *
 * Fixture directory: argv[1], else $H5ML_SOURCE_DIR, else ../../tests/data/mat (ctest runs
 * tests in build/tests); either may also name the source root, which holds
 * tests/data/mat. */
#include "check.h"
#include "signals_priv.h"

#include <errno.h>
#include <matio.h>
#include <sys/stat.h>

static char fixtures[1100];

/* The fixture script's formulas; exact in binary, so values compare with ==. */
static double g(int64_t i, int64_t k)
{
    return (double)((i * k) % 97 - 48) * 0.25 + (double)i / 1024.0;
}
static double h(int64_t i) { return (double)((i * 37) % 2001 - 1000); }

static const char *fixture(const char *rel)
{
    static char buf[8][1200];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", fixtures, rel);
    return buf[k];
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void find_fixtures(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : getenv("H5ML_SOURCE_DIR");
    if (!base)
        base = "../../tests/data/mat";
    char root[1100];
    snprintf(root, sizeof root, "%s/tests/data/mat", base);
    snprintf(fixtures, sizeof fixtures, "%s", is_dir(root) ? root : base);
    printf("fixtures: %s\n", fixtures);
}

/* ---- reading ---------------------------------------------------------------------------- */

typedef double (*formula)(int64_t i);
static int64_t g_k; /* the k of the formula under test */
static double g_k_double(int64_t i) { return g(i, g_k); }
static double g_k_float(int64_t i) { return (double)(float)g(i, g_k); }
static double h_value(int64_t i) { return h(i); }

/* Reads `var` (NULL: automatic) and compares name, length and every value. */
static void expect_signal(const char *path, const char *var, const char *name, int64_t n,
                          formula f)
{
    double *v = NULL;
    int64_t len = -1;
    char got[64], msg[1024] = "";
    int rc = h5ml__mat_read_signal(path, var, &v, &len, got, sizeof got, msg, sizeof msg);
    CHECK_MSG(rc == H5ML_OK, "%s [%s]: rc %d: %s", path, var ? var : "auto", rc, msg);
    if (rc != H5ML_OK)
        return;
    CHECK_STR(got, name);
    CHECK_EQ_I(len, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < len && i < n; i++)
        if (v[i] != f(i) && bad++ == 0)
            fprintf(stderr, "%s [%s]: value %" PRId64 " is %.17g, expected %.17g\n", path,
                    name, i, v[i], f(i));
    CHECK_MSG(bad == 0, "%s [%s]: %" PRId64 " values differ", path, name, bad);
    free(v);
}

/* Reads `var` (NULL: automatic) expecting failure `code` with exactly `expected` (where
 * "@" stands for the path) as the message. */
static void expect_error(const char *path, const char *var, int code, const char *expected)
{
    double *v = (double *)&v; /* must come back NULL */
    int64_t len = -1;
    char name[64] = "junk", msg[1024] = "", want[1400];
    const char *at = strchr(expected, '@');
    if (at)
        snprintf(want, sizeof want, "%.*s%s%s", (int)(at - expected), expected, path, at + 1);
    else
        snprintf(want, sizeof want, "%s", expected);
    int rc = h5ml__mat_read_signal(path, var, &v, &len, name, sizeof name, msg, sizeof msg);
    CHECK_MSG(rc == code, "%s [%s]: rc %d, expected %d (%s)", path, var ? var : "auto", rc, code,
              msg);
    CHECK_STR(msg, want);
    CHECK(v == NULL);
    CHECK_EQ_I(len, 0);
    CHECK_STR(name, "");
    if (rc == H5ML_OK)
        free(v);
}

static void test_v5(void)
{
    g_k = 3;
    expect_signal(fixture("v5/double_row.mat"), NULL, "sig", 500, g_k_double);
    expect_signal(fixture("v5/double_row.mat"), "sig", "sig", 500, g_k_double);
    g_k = 5;
    expect_signal(fixture("v5/single_col.mat"), NULL, "x", 400, g_k_float);
    expect_signal(fixture("v5/int16.mat"), NULL, "counts", 300, h_value);

    const char *st = fixture("v5/struct.mat");
    g_k = 7;
    expect_signal(st, NULL, "s.data", 300, g_k_double);
    expect_signal(st, "s.data", "s.data", 300, g_k_double);
    expect_error(st, "note", H5ML_ERR_VALUE, "@: variable 'note' is not numeric (char)");
    expect_error(st, "s", H5ML_ERR_VALUE, "@: variable 's' is not numeric (struct)");
    expect_error(st, "s.name", H5ML_ERR_VALUE, "@: variable 's.name' is not numeric (char)");
    expect_error(st, "s.nope", H5ML_ERR_NOTFOUND,
                 "@: variable 's.nope' not found (variables: note (char), s (struct))");
    expect_error(st, "note.x", H5ML_ERR_NOTFOUND,
                 "@: variable 'note.x' not found (variables: note (char), s (struct))");
    double *v = NULL;
    int64_t len = 0;
    char msg[512];
    CHECK(h5ml__mat_read_signal(st, "s.fs", &v, &len, NULL, 0, msg, sizeof msg) == H5ML_OK);
    CHECK(len == 1 && v && v[0] == 20480.0);
    free(v);
}

static void test_several(void)
{
    const char *p = fixture("v5/several.mat");
    g_k = 2;
    expect_signal(p, NULL, "b", 800, g_k_float);
    g_k = 1;
    expect_signal(p, "a", "a", 100, g_k_double);
    expect_signal(p, "c", "c", 200, h_value);
    expect_error(p, "m", H5ML_ERR_VALUE, "@: variable 'm' is not a vector (shape 40x40)");
    expect_error(p, "z", H5ML_ERR_VALUE, "@: variable 'z' is complex");
    expect_error(p, "flag", H5ML_ERR_VALUE, "@: variable 'flag' is logical, not numeric");
    expect_error(p, "cl", H5ML_ERR_VALUE, "@: variable 'cl' is not numeric (cell)");
    expect_error(p, "label", H5ML_ERR_VALUE, "@: variable 'label' is not numeric (char)");
    expect_error(p, "arr.data", H5ML_ERR_VALUE,
                 "@: variable 'arr' is a 1x2 struct array (fields are read from 1x1 structs only)");
    expect_error(p, "sig", H5ML_ERR_NOTFOUND,
                 "@: variable 'sig' not found (variables: a (double 1x100), b (single 1x800), "
                 "c (int32 1x200), fs (double 1x1), label (char), m (double 40x40), "
                 "z (complex double 1x1000), flag (logical 1x2000), cl (cell), arr (struct))");
}

static void test_v5_errors(void)
{
    const char *p = fixture("v5/charonly.mat");
    expect_error(p, NULL, H5ML_ERR_NOTFOUND,
                 "@: no real numeric vector found (variables: a (char), s (struct))");
    expect_error(p, "sig", H5ML_ERR_NOTFOUND,
                 "@: variable 'sig' not found (variables: a (char), s (struct))");

    p = fixture("v5/complex.mat");
    expect_error(p, "sig", H5ML_ERR_VALUE, "@: variable 'sig' is complex");
    expect_error(p, NULL, H5ML_ERR_NOTFOUND,
                 "@: no real numeric vector found (variables: sig (complex double 1x100))");

    p = fixture("v5/matrix.mat");
    expect_error(p, "sig", H5ML_ERR_VALUE, "@: variable 'sig' is not a vector (shape 3x4)");
    expect_error(p, NULL, H5ML_ERR_NOTFOUND,
                 "@: no real numeric vector found (variables: sig (double 3x4))");

    p = fixture("v5/empty.mat");
    expect_error(p, "sig", H5ML_ERR_VALUE, "@: variable 'sig' is empty (shape 1x0)");
    expect_error(p, NULL, H5ML_ERR_NOTFOUND,
                 "@: no real numeric vector found (variables: sig (double 1x0))");
}

static int h5_handler_calls = 0;
static herr_t count_h5_errors(hid_t stack, void *data)
{
    (void)stack;
    (void)data;
    h5_handler_calls++;
    return 0;
}

/* The library never prints: HDF5's error stack (under libmatio, for v7.3) and libmatio's
 * messages stay quiet, and the caller's HDF5 error handler is left as it was (and is not
 * called for errors inside the read). stderr is captured to check. */
static void test_quiet(void)
{
    H5E_auto2_t fn0;
    void *data0;
    H5Eget_auto2(H5E_DEFAULT, &fn0, &data0);
    H5Eset_auto2(H5E_DEFAULT, count_h5_errors, &h5_handler_calls);

    fflush(stderr);
    const char *cap = tmpname("stderr");
    int saved = dup(2);
    FILE *f = fopen(cap, "w+");
    CHECK(saved >= 0 && f && dup2(fileno(f), 2) == 2);
    static const char *const files[] = {"bad/truncated73.mat", "bad/truncated4.mat",
                                        "bad/truncated_z.mat", "bad/notmat.mat", "bad",
                                        "v73/h5py.mat", "v5/several.mat", "v5/novars.mat"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        double *v = NULL;
        int64_t len;
        char msg[512];
        h5ml__mat_read_signal(fixture(files[i]), NULL, &v, &len, NULL, 0, msg, sizeof msg);
        free(v);
        h5ml__mat_read_signal(fixture(files[i]), "nope.x", &v, &len, NULL, 0, msg, sizeof msg);
        free(v);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long printed = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    CHECK_MSG(printed == 0, "%ld bytes printed on stderr (see %s)", printed, cap);
    if (f)
        fclose(f);
    if (printed == 0)
        remove(cap);

    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    CHECK(fn == count_h5_errors && data == &h5_handler_calls);
    CHECK_EQ_I(h5_handler_calls, 0);
    H5Eset_auto2(H5E_DEFAULT, fn0, data0);
}

static void test_bad_files(void)
{
    expect_error(fixture("v5/novars.mat"), NULL, H5ML_ERR_NOTFOUND, "@: no variables in the file");
    expect_error(fixture("bad/notmat.mat"), NULL, H5ML_ERR_PARSE,
                 "@: not a MATLAB file (or unreadable)");
    /* libmatio alone would return zeros or garbage for the two truncated v5 files */
    expect_error(fixture("bad/truncated.mat"), NULL, H5ML_ERR_PARSE,
                 "@: truncated file (a variable runs past its end)");
    expect_error(fixture("bad/truncated_z.mat"), "a", H5ML_ERR_PARSE,
                 "@: truncated file (a variable runs past its end)");
    expect_error(fixture("bad/truncated4.mat"), NULL, H5ML_ERR_PARSE,
                 "@: cannot read variable 'sig' (truncated or corrupt file?)");
    expect_error(fixture("bad/truncated73.mat"), NULL, H5ML_ERR_PARSE,
                 "@: MAT-file header found, but the file cannot be opened (truncated or "
                 "corrupt?)");
    expect_error(fixture("bad/missing.mat"), NULL, H5ML_ERR_NOTFOUND,
                 "@: No such file or directory");
    expect_error(fixture("bad"), NULL, H5ML_ERR_IO, "@: is a directory");
}

static void test_v4(void)
{
    g_k = 11;
    expect_signal(fixture("v4/double.mat"), NULL, "sig", 256, g_k_double);
}

/* The h5py-made v7.3 file: MATLAB's layout, written without MATLAB or libmatio. */
static void test_v73_h5py(void)
{
    const char *p = fixture("v73/h5py.mat");
    g_k = 13;
    expect_signal(p, NULL, "sig", 600, g_k_double);
    g_k = 17;
    expect_signal(p, "x", "x", 400, g_k_float);
    expect_signal(p, "st.data", "st.data", 250, h_value);
    expect_error(p, "m", H5ML_ERR_VALUE, "@: variable 'm' is not a vector (shape 3x4)");
    expect_error(p, "label", H5ML_ERR_VALUE, "@: variable 'label' is not numeric (char)");
    expect_error(p, "nope", H5ML_ERR_NOTFOUND,
                 "@: variable 'nope' not found (variables: label (char), m (double 3x4), "
                 "sig (double 1x600), st (struct), x (single 400x1))");
}

/* ---- files written by libmatio: every numeric class, v5 (plain and compressed) and v7.3 */

#define NW 257 /* elements per written vector */

typedef struct written {
    const char *name;
    enum matio_classes cls;
    enum matio_types type;
    size_t esize;
    int64_t n;
    double (*value)(int64_t i);
} written;

static double w_double(int64_t i) { return g(i, 19); }
static double w_single(int64_t i) { return (double)(float)g(i, 23); }
static double w_i8(int64_t i) { return (double)(i % 251 - 125); }
static double w_u8(int64_t i) { return (double)(i % 251); }
static double w_i16(int64_t i) { return h(i); }
static double w_u16(int64_t i) { return h(i) + 60000.0; }
static double w_i32(int64_t i) { return h(i) * 1000003.0; }
static double w_u32(int64_t i) { return 4000000000.0 + (double)i; }
static double w_i64(int64_t i) { return -1099511627776.0 + (double)i; }    /* -2^40 + i */
static double w_u64(int64_t i) { return 4503599627370496.0 + (double)i; }  /* 2^52 + i */

static const written written_vars[] = {
    {"d", MAT_C_DOUBLE, MAT_T_DOUBLE, 8, NW, w_double},
    {"f", MAT_C_SINGLE, MAT_T_SINGLE, 4, NW, w_single},
    {"i8", MAT_C_INT8, MAT_T_INT8, 1, NW, w_i8},
    {"u8", MAT_C_UINT8, MAT_T_UINT8, 1, NW, w_u8},
    {"i16", MAT_C_INT16, MAT_T_INT16, 2, NW, w_i16},
    {"u16", MAT_C_UINT16, MAT_T_UINT16, 2, NW + 100, w_u16}, /* the largest: picked */
    {"i32", MAT_C_INT32, MAT_T_INT32, 4, NW, w_i32},
    {"u32", MAT_C_UINT32, MAT_T_UINT32, 4, NW, w_u32},
    {"i64", MAT_C_INT64, MAT_T_INT64, 8, NW, w_i64},
    {"u64", MAT_C_UINT64, MAT_T_UINT64, 8, NW, w_u64},
};
#define NWRITTEN (sizeof written_vars / sizeof *written_vars)

static void store(const written *w, int64_t i, void *buf)
{
    double x = w->value(i);
    switch (w->type) {
    case MAT_T_DOUBLE: ((double *)buf)[i] = x; break;
    case MAT_T_SINGLE: ((float *)buf)[i] = (float)x; break;
    case MAT_T_INT8: ((int8_t *)buf)[i] = (int8_t)x; break;
    case MAT_T_UINT8: ((uint8_t *)buf)[i] = (uint8_t)x; break;
    case MAT_T_INT16: ((int16_t *)buf)[i] = (int16_t)x; break;
    case MAT_T_UINT16: ((uint16_t *)buf)[i] = (uint16_t)x; break;
    case MAT_T_INT32: ((int32_t *)buf)[i] = (int32_t)x; break;
    case MAT_T_UINT32: ((uint32_t *)buf)[i] = (uint32_t)x; break;
    case MAT_T_INT64: ((int64_t *)buf)[i] = (int64_t)x; break;
    default: ((uint64_t *)buf)[i] = (uint64_t)x; break;
    }
}

static int write_var(mat_t *mat, matvar_t *v, enum matio_compression z)
{
    int rc = v ? Mat_VarWrite(mat, v, z) : -1;
    Mat_VarFree(v);
    return rc;
}

static int write_vector(mat_t *mat, const written *w, int column, enum matio_compression z)
{
    void *buf = malloc((size_t)w->n * w->esize);
    if (!buf)
        return -1;
    for (int64_t i = 0; i < w->n; i++)
        store(w, i, buf);
    size_t dims[2] = {1, (size_t)w->n};
    if (column)
        dims[0] = (size_t)w->n, dims[1] = 1;
    int rc = write_var(mat, Mat_VarCreate(w->name, w->cls, w->type, 2, dims, buf, 0), z);
    free(buf);
    return rc;
}

/* A 1x1 struct "rec" with a vector field and a scalar field, a complex vector "zc" and a
 * logical vector "lg" (both larger than any real vector, so both must be passed over). */
static int write_extras(mat_t *mat, enum matio_compression z)
{
    static double sig[NW + 50], fs = 1000.0, re[2000], im[2000];
    static uint8_t lg[3000];
    for (int64_t i = 0; i < NW + 50; i++)
        sig[i] = g(i, 29);
    for (int i = 0; i < 2000; i++)
        re[i] = i, im[i] = -i;
    for (int i = 0; i < 3000; i++)
        lg[i] = (uint8_t)(i & 1);
    size_t one[2] = {1, 1}, dsig[2] = {1, NW + 50}, dz[2] = {1, 2000}, dl[2] = {1, 3000};
    const char *fields[] = {"fs", "sig", NULL};
    matvar_t *rec = Mat_VarCreateStruct2("rec", 2, one, fields);
    if (!rec)
        return -1;
    Mat_VarSetStructFieldByName(rec, "fs", 0,
                                Mat_VarCreate("fs", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, one, &fs, 0));
    Mat_VarSetStructFieldByName(rec, "sig", 0,
                                Mat_VarCreate("sig", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dsig, sig, 0));
    mat_complex_split_t zc = {re, im};
    int rc = write_var(mat, rec, z);
    rc |= write_var(mat, Mat_VarCreate("zc", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dz, &zc,
                                       MAT_F_COMPLEX), z);
    rc |= write_var(mat, Mat_VarCreate("lg", MAT_C_UINT8, MAT_T_UINT8, 2, dl, lg, MAT_F_LOGICAL),
                    z);
    return rc;
}

static int write_matio_file(const char *path, enum mat_ft ver, enum matio_compression z)
{
    mat_t *mat = Mat_CreateVer(path, NULL, ver);
    if (!mat)
        return -1;
    int rc = 0;
    for (size_t k = 0; k < NWRITTEN; k++)
        rc |= write_vector(mat, &written_vars[k], (int)(k & 1), z);
    rc |= write_extras(mat, z);
    Mat_Close(mat);
    return rc;
}

static double w_rec_sig(int64_t i) { return g(i, 29); }

static void check_matio_file(const char *path)
{
    for (size_t k = 0; k < NWRITTEN; k++)
        expect_signal(path, written_vars[k].name, written_vars[k].name, written_vars[k].n,
                      written_vars[k].value);
    /* u16 (357) is the largest real vector: rec.sig (307) is smaller, zc and lg are larger
     * but complex and logical. */
    expect_signal(path, NULL, "u16", NW + 100, w_u16);
    expect_signal(path, "rec.sig", "rec.sig", NW + 50, w_rec_sig);
    expect_error(path, "zc", H5ML_ERR_VALUE, "@: variable 'zc' is complex");
    expect_error(path, "lg", H5ML_ERR_VALUE, "@: variable 'lg' is logical, not numeric");
}

static void test_matio_written(void)
{
    static const struct { enum mat_ft ver; enum matio_compression z; const char *what; } kinds[] = {
        {MAT_FT_MAT5, MAT_COMPRESSION_NONE, "v5"},
        {MAT_FT_MAT5, MAT_COMPRESSION_ZLIB, "v5 compressed"},
        {MAT_FT_MAT73, MAT_COMPRESSION_NONE, "v7.3"},
        {MAT_FT_MAT73, MAT_COMPRESSION_ZLIB, "v7.3 compressed"},
    };
    const char *empty73 = tmpname("matio_empty73.mat");
    mat_t *mat = Mat_CreateVer(empty73, NULL, MAT_FT_MAT73);
    CHECK(mat != NULL);
    if (mat) {
        Mat_Close(mat);
        expect_error(empty73, NULL, H5ML_ERR_NOTFOUND, "@: no variables in the file");
        remove(empty73);
    }
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        const char *path = tmpname("matio_written.mat");
        int rc = write_matio_file(path, kinds[i].ver, kinds[i].z);
        CHECK_MSG(rc == 0, "libmatio could not write a %s file", kinds[i].what);
        if (rc == 0)
            check_matio_file(path);
        remove(path);
    }
}

/* ---- listing --------------------------------------------------------------------------- */

static const char *const spec_faults[H5ML_NUM_FAULTS] = {
    "sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation",
    "usure", "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu",
};

/* Compares the listing with `n` expected (path relative to `base`, label) pairs. */
static void expect_files(const h5ml_mat_listing *l, const char *base, const char *const *rel,
                         const int *labels, int64_t n)
{
    CHECK_EQ_I(l->nfiles, n);
    for (int64_t i = 0; i < n && i < l->nfiles; i++) {
        char want[1400];
        snprintf(want, sizeof want, "%s/%s", base, rel[i]);
        CHECK_STR(l->files[i].path, want);
        CHECK_EQ_I(l->files[i].label, labels[i]);
    }
}

static void test_list_named(void)
{
    h5ml_mat_listing l;
    char msg[1024] = "";
    const char *dir = fixture("tree");
    int rc = h5ml__mat_list(dir, &l, msg, sizeof msg);
    CHECK_MSG(rc == H5ML_OK, "%s", msg);
    if (rc != H5ML_OK)
        return;
    CHECK_EQ_I(l.named, 1);
    CHECK_EQ_I(l.nclasses, H5ML_NUM_FAULTS);
    for (int k = 0; k < l.nclasses && k < H5ML_NUM_FAULTS; k++)
        CHECK_STR(l.class_names[k], spec_faults[k]);
#ifdef H5ML_TEST_WITH_SIGGEN /* built with siggen.c: the two copies of the names agree */
    for (int k = 0; k < H5ML_NUM_FAULTS; k++)
        CHECK_STR(h5ml__fault_names[k], spec_faults[k]);
#endif
    static const char *const rel[] = {"sain/s1.mat", "sain/s2.mat", "jeu/j1.mat",
                                      "jeu/j2.MAT", "cavitation/c1.mat", "cavitation/c2.mat"};
    static const int labels[] = {0, 0, 3, 3, 5, 5};
    expect_files(&l, dir, rel, labels, 6);
    /* k = 10 * (sain 1, jeu 2, cavitation 3) + file index, as the fixture script made them */
    for (int64_t i = 0; i < l.nfiles && i < 6; i++) {
        g_k = 10 * (i / 2 + 1) + i % 2;
        expect_signal(l.files[i].path, NULL, "sig", 64, g_k_double);
    }
    h5ml__mat_listing_free(&l);
    CHECK(l.files == NULL && l.nfiles == 0 && l.class_names == NULL);
    h5ml__mat_listing_free(&l); /* twice is harmless */
}

static void test_list_custom(void)
{
    h5ml_mat_listing l;
    char msg[1024] = "";
    const char *dir = fixture("tree_custom/"); /* a trailing slash adds no second one */
    int rc = h5ml__mat_list(dir, &l, msg, sizeof msg);
    CHECK_MSG(rc == H5ML_OK, "%s", msg);
    if (rc != H5ML_OK)
        return;
    CHECK_EQ_I(l.named, 0);
    CHECK_EQ_I(l.nclasses, 2);
    if (l.nclasses == 2) {
        CHECK_STR(l.class_names[0], "healthy");
        CHECK_STR(l.class_names[1], "inner_race");
    }
    static const char *const rel[] = {"healthy/h1.mat", "healthy/h2.mat", "inner_race/r1.mat",
                                      "inner_race/r2.mat"};
    static const int labels[] = {0, 0, 1, 1};
    expect_files(&l, fixture("tree_custom"), rel, labels, 4);
    h5ml__mat_listing_free(&l);
}

/* Trees made at run time (git keeps no empty directories); removed in reverse order. */
static char made[32][512];
static int nmade = 0;

static void make(const char *base, const char *rel, int dir)
{
    if (nmade == 32)
        return;
    snprintf(made[nmade], sizeof made[nmade], "%s%s%s", base, rel[0] ? "/" : "", rel);
    int ok = dir ? mkdir(made[nmade], 0755) == 0 : 0;
    if (!dir) {
        FILE *f = fopen(made[nmade], "w");
        ok = f && fclose(f) == 0;
    }
    CHECK_MSG(ok, "cannot create %s: %s", made[nmade], strerror(errno));
    nmade++;
}

static void unmake_all(void)
{
    while (nmade > 0)
        remove(made[--nmade]);
}

static void test_list_made(void)
{
    const char *base = tmpname("matlist");
    make(base, "", 1);
    make(base, "Sain", 1);           /* case-insensitive fault names          */
    make(base, "Sain/b.mat", 0);
    make(base, "Sain/a.MAT", 0);
    make(base, "Sain/notes.txt", 0);
    make(base, "Sain/._b.mat", 0);   /* hidden: skipped                        */
    make(base, "Sain/fake.mat", 1);  /* a directory named .mat: skipped        */
    make(base, "Sain/deeper", 1);    /* not recursive                          */
    make(base, "Sain/deeper/x.mat", 0);
    make(base, "JEU", 1);
    make(base, "JEU/c.mat", 0);
    make(base, "empty", 1);          /* no .mat files: skipped, not a class    */
    make(base, ".hidden", 1);
    make(base, ".hidden/h.mat", 0);
    make(base, "top.mat", 0);        /* files at the top level are not listed  */

    h5ml_mat_listing l;
    char msg[1024] = "";
    int rc = h5ml__mat_list(base, &l, msg, sizeof msg);
    CHECK_MSG(rc == H5ML_OK, "%s", msg);
    static const char *const rel[] = {"Sain/a.MAT", "Sain/b.mat", "JEU/c.mat"};
    static const int labels[] = {0, 0, 3};
    if (rc == H5ML_OK) {
        CHECK_EQ_I(l.named, 1);
        CHECK_EQ_I(l.nclasses, H5ML_NUM_FAULTS);
        CHECK_STR(l.class_names[3], "jeu"); /* the SPEC's spelling, not the directory's */
        expect_files(&l, base, rel, labels, 3);
        h5ml__mat_listing_free(&l);
    }

    /* One sub-directory that is no fault name: all of them are classes in name order. */
    make(base, "extra", 1);
    make(base, "extra/e.mat", 0);
    rc = h5ml__mat_list(base, &l, msg, sizeof msg);
    CHECK_MSG(rc == H5ML_OK, "%s", msg);
    if (rc == H5ML_OK) {
        CHECK_EQ_I(l.named, 0);
        CHECK_EQ_I(l.nclasses, 3);
        if (l.nclasses == 3) { /* strcmp order: upper case first */
            CHECK_STR(l.class_names[0], "JEU");
            CHECK_STR(l.class_names[1], "Sain");
            CHECK_STR(l.class_names[2], "extra");
        }
        static const char *const rel2[] = {"JEU/c.mat", "Sain/a.MAT", "Sain/b.mat",
                                           "extra/e.mat"};
        static const int labels2[] = {0, 1, 1, 2};
        expect_files(&l, base, rel2, labels2, 4);
        h5ml__mat_listing_free(&l);
    }
    unmake_all();
}

static void expect_list_error(const char *dir, int code, const char *expected)
{
    h5ml_mat_listing l;
    memset(&l, 0x5a, sizeof l); /* must come back zeroed */
    char msg[1024] = "";
    int rc = h5ml__mat_list(dir, &l, msg, sizeof msg);
    CHECK_MSG(rc == code, "%s: rc %d, expected %d (%s)", dir, rc, code, msg);
    CHECK_STR(msg, expected);
    CHECK(l.files == NULL && l.nfiles == 0 && l.class_names == NULL && l.nclasses == 0);
    if (rc == H5ML_OK)
        h5ml__mat_listing_free(&l);
}

static void test_list_errors(void)
{
    char want[1400];
    const char *missing = fixture("no/such/dir");
    snprintf(want, sizeof want, "%s: No such file or directory", missing);
    expect_list_error(missing, H5ML_ERR_NOTFOUND, want);

    const char *file = fixture("v5/double_row.mat");
    snprintf(want, sizeof want, "%s: not a directory", file);
    expect_list_error(file, H5ML_ERR_IO, want);

    const char *base = tmpname("matlist_empty");
    make(base, "", 1);
    make(base, "sain", 1);
    make(base, "top.mat", 0);
    snprintf(want, sizeof want,
             "%s: no sub-directories with .mat files (expected one sub-directory per fault "
             "type, e.g. %s/sain/*.mat)", base, base);
    expect_list_error(base, H5ML_ERR_NOTFOUND, want);
    unmake_all();

    /* a tree of .mat files read as a signal directory: v5/ has no sub-directories */
    const char *flat = fixture("v5");
    snprintf(want, sizeof want,
             "%s: no sub-directories with .mat files (expected one sub-directory per fault "
             "type, e.g. %s/sain/*.mat)", flat, flat);
    expect_list_error(flat, H5ML_ERR_NOTFOUND, want);
}

int main(int argc, char **argv)
{
    find_fixtures(argc, argv);
    if (!is_dir(fixtures)) {
        fprintf(stderr, "test_matimport: fixture directory %s not found (pass it as argv[1] "
                        "or H5ML_SOURCE_DIR)\n", fixtures);
        return 1;
    }
    test_v5();
    test_several();
    test_v5_errors();
    test_bad_files();
    test_quiet();
    test_v4();
    test_v73_h5py();
    test_matio_written();
    test_list_named();
    test_list_custom();
    test_list_made();
    test_list_errors();
    return check_report("test_matimport");
}
