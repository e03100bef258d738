/* Small HDF5 helpers: the schema's dataset table, types, attributes, row reads. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const h5ml_coldef h5ml__cols[COL_COUNT] = {
    [COL_NUMBERS] = { "structures/atomic_numbers", 1, 1, 'i', 1 },
    [COL_NUMBERS_SPLITS] = { "structures/atomic_numbers_splits", 2, 1, 'i', 1 },
    [COL_POSITIONS] = { "structures/positions", 1, 3, 'd', 2 },
    [COL_CELLS] = { "structures/cells", 0, 9, 'd', 3 },
    [COL_PBC] = { "structures/pbc", 0, 3, 'b', 2 },
    [COL_ENERGY] = { "labels/energy", 0, 1, 'd', 1 },
    [COL_FORCES] = { "labels/forces", 1, 3, 'f', 2 },
    [COL_FORCES_SPLITS] = { "labels/forces_splits", 2, 1, 'i', 1 },
    [COL_STRESS] = { "labels/stress", 0, 6, 'd', 2 },
    [COL_STRESS_MASK] = { "labels/stress_mask", 0, 1, 'b', 1 },
    [COL_INDICES] = { "labels/structure_indices", 0, 1, 'i', 1 },
};

hid_t h5ml__bool_type(void)
{
    /* Exactly what h5py makes for numpy bool, so h5py reads it back as bool. */
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v = 0;
    H5Tenum_insert(t, "FALSE", &v);
    v = 1;
    H5Tenum_insert(t, "TRUE", &v);
    return t;
}

hid_t h5ml__vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

bool h5ml__is_bool_type(hid_t t)
{
    if (H5Tget_class(t) != H5T_ENUM || H5Tget_size(t) != 1 || H5Tget_nmembers(t) != 2) return false;
    char name[8];
    int8_t v;
    if (H5Tget_member_value(t, 0, &v) < 0 || H5Tenum_nameof(t, &v, name, sizeof name) < 0) return false;
    return true;
}

int h5ml__attr_write(hid_t loc, const char *name, hid_t type, hid_t space, const void *buf)
{
    /* Rewrite in place when the attribute exists with the same type and shape (the usual
     * case at checkpoints); otherwise replace it. */
    if (H5Aexists(loc, name) > 0) {
        hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
        if (a < 0) return -1;
        hid_t at = H5Aget_type(a), as = H5Aget_space(a);
        bool same = H5Tequal(at, type) > 0 && H5Sextent_equal(as, space) > 0;
        H5Tclose(at);
        H5Sclose(as);
        if (same) {
            herr_t rc = H5Awrite(a, type, buf);
            H5Aclose(a);
            return rc < 0 ? -1 : 0;
        }
        H5Aclose(a);
        if (H5Adelete(loc, name) < 0) return -1;
    }
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return h5ml__h5_save(), -1;
    herr_t rc = H5Awrite(a, type, buf);
    if (rc < 0) h5ml__h5_save();
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int attr_scalar(hid_t loc, const char *name, hid_t type, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = h5ml__attr_write(loc, name, type, s, v);
    H5Sclose(s);
    return rc;
}

static int attr_vector(hid_t loc, const char *name, hid_t type, const void *v, size_t n)
{
    hsize_t d = n;
    hid_t s = n ? H5Screate_simple(1, &d, NULL) : H5Screate(H5S_NULL);
    int rc = h5ml__attr_write(loc, name, type, s, v);
    H5Sclose(s);
    return rc;
}

int h5ml__attr_i64(hid_t loc, const char *name, int64_t v) { return attr_scalar(loc, name, H5T_STD_I64LE, &v); }
int h5ml__attr_f64(hid_t loc, const char *name, double v) { return attr_scalar(loc, name, H5T_IEEE_F64LE, &v); }

int h5ml__attr_bool(hid_t loc, const char *name, int v)
{
    int8_t b = v ? 1 : 0;
    hid_t t = h5ml__bool_type();
    int rc = attr_scalar(loc, name, t, &b);
    H5Tclose(t);
    return rc;
}

int h5ml__attr_str(hid_t loc, const char *name, const char *v)
{
    hid_t t = h5ml__vlen_str_type();
    int rc = attr_scalar(loc, name, t, &v);
    H5Tclose(t);
    return rc;
}

int h5ml__attr_strs(hid_t loc, const char *name, const char *const *v, size_t n)
{
    hid_t t = h5ml__vlen_str_type();
    int rc = attr_vector(loc, name, t, v, n);
    H5Tclose(t);
    return rc;
}

int h5ml__attr_i64s(hid_t loc, const char *name, const int64_t *v, size_t n)
{
    return attr_vector(loc, name, H5T_STD_I64LE, v, n);
}

int h5ml__attr_f64s(hid_t loc, const char *name, const double *v, size_t n)
{
    return attr_vector(loc, name, H5T_IEEE_F64LE, v, n);
}

static hid_t open_attr(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0) return H5I_INVALID_HID;
    return H5Aopen(loc, name, H5P_DEFAULT);
}

static int attr_get_scalar(hid_t loc, const char *name, hid_t memtype, void *v)
{
    hid_t a = open_attr(loc, name);
    if (a < 0) return -1;
    hid_t s = H5Aget_space(a), t = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(t);
    int rc = -1;
    if (H5Sget_simple_extent_npoints(s) == 1 && (c == H5T_INTEGER || c == H5T_FLOAT || c == H5T_ENUM))
        rc = H5Aread(a, memtype, v) < 0 ? -1 : 0;
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    return rc;
}

int h5ml__attr_get_i64(hid_t loc, const char *name, int64_t *v)
{
    return attr_get_scalar(loc, name, H5T_NATIVE_INT64, v);
}

int h5ml__attr_get_f64(hid_t loc, const char *name, double *v)
{
    return attr_get_scalar(loc, name, H5T_NATIVE_DOUBLE, v);
}

char *h5ml__attr_get_str(hid_t loc, const char *name)
{
    hid_t a = open_attr(loc, name);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    char *out = NULL;
    if (H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(s) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            hid_t mt = h5ml__vlen_str_type();
            if (H5Aread(a, mt, &v) >= 0 && v) {
                out = strdup(v);
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            out = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(t);
            if (out && H5Aread(a, mt, out) < 0) {
                free(out);
                out = NULL;
            }
            H5Tclose(mt);
        }
    }
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    return out;
}

int64_t h5ml__attr_get_i64s(hid_t loc, const char *name, int64_t **out)
{
    *out = NULL;
    hid_t a = open_attr(loc, name);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int64_t n = -1;
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (H5Tget_class(t) == H5T_INTEGER && np >= 0) {
        *out = malloc(sizeof(int64_t) * (size_t)(np ? np : 1));
        if (*out && (np == 0 || H5Aread(a, H5T_NATIVE_INT64, *out) >= 0)) n = np;
    }
    if (n < 0) {
        free(*out);
        *out = NULL;
    }
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    return n;
}

int h5ml__dims(hid_t dset, hsize_t dims[3])
{
    hid_t s = H5Dget_space(dset);
    if (s < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank > 3 || rank < 0) rank = -1;
    else H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    return rank;
}

int h5ml__read_rows(hid_t dset, hid_t memtype, int64_t start, int64_t count, void *buf)
{
    if (count == 0) return 0;
    hsize_t dims[3] = { 0, 0, 0 };
    int rank = h5ml__dims(dset, dims);
    if (rank < 1) return -1;
    hsize_t off[3] = { (hsize_t)start, 0, 0 }, cnt[3] = { (hsize_t)count, dims[1], dims[2] };
    hid_t fs = H5Dget_space(dset);
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (rc >= 0) rc = H5Dread(dset, memtype, ms, fs, H5P_DEFAULT, buf);
    if (rc < 0) h5ml__h5_save();
    H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? -1 : 0;
}

int h5ml__move_into_place(const char *tmp, const char *path, bool replacing)
{
    if (replacing && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
        unlink(tmp); /* now the old file */
        return 0;
    }
    return rename(tmp, path) < 0 ? -1 : 0;
}

char *h5ml__tmp_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%s.h5ml-%d.tmp", path, (int)getpid());
    return t;
}
