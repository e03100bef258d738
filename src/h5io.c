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

/* Deflate packs at most 1032 bytes into one (LZF and shuffle less): more data than that from
 * a file's bytes is a corrupt or hostile file, whose dimensions h5ml would otherwise believe
 * when it allocates (fuzz/regressions/atoms_reader/splits-2e61-rows-overflow.h5: a 6 KB file
 * declaring 2^61 structures made the reader's splits allocation wrap to 0 bytes and HDF5
 * write past it). Datasets of a few MiB pass whatever their storage (never-written chunks
 * read as the fill value). */
bool h5ml__rows_plausible(hid_t dset, int64_t rows, size_t row_bytes, int64_t file_size)
{
    const uint64_t small = (uint64_t)16 << 20, ratio = 1100;
    if (rows < 0) return false;
    if (rows == 0 || row_bytes == 0) return true;
    if ((uint64_t)rows > UINT64_MAX / row_bytes) return false;
    uint64_t bytes = (uint64_t)rows * row_bytes;
    if (bytes <= small) return true;
    uint64_t stored = H5Dget_storage_size(dset);
    if (file_size >= 0 && stored > (uint64_t)file_size) stored = (uint64_t)file_size;
    return stored <= UINT64_MAX / ratio && bytes <= stored * ratio;
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

/* HDF5 1.10.8 converts from a type whose size and precision disagree (a float of 20 bytes
 * with 32 bits of precision, fuzz) by reading elements of the stored size out of a chunk
 * decoded at the filters' element size: past the buffer. */
bool h5ml__plain_number(hid_t t, H5T_class_t cls)
{
    if (t < 0 || H5Tget_class(t) != cls) return false;
    size_t size = H5Tget_size(t);
    bool size_ok = cls == H5T_INTEGER ? (size == 1 || size == 2 || size == 4 || size == 8)
                                      : cls == H5T_FLOAT && (size == 2 || size == 4 || size == 8);
    return size_ok && H5Tget_precision(t) == 8 * size && H5Tget_offset(t) == 0;
}

/* Numbers HDF5 can convert without reading past a decoded chunk: a plain type, and a shuffle
 * filter (which records the element size it was set up with) of the type's size (fuzz: a
 * float32 dataset's type made 20 bytes wide read 640 bytes out of a 128-byte chunk). */
static bool numbers_decodable(hid_t dcpl, hid_t type)
{
    H5T_class_t c = H5Tget_class(type);
    if (c != H5T_INTEGER && c != H5T_FLOAT) return true;
    if (!h5ml__plain_number(type, c)) return false;
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[4] = { 0, 0, 0, 0 };
        size_t ncd = 4;
        if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_SHUFFLE && ncd >= 1 &&
            cd[0] != H5Tget_size(type))
            return false;
    }
    return true;
}

/* HDF5 1.10 reads a stored chunk into a buffer of the size its chunk index records and,
 * without filters, copies a whole chunk out of it: a chunk recorded shorter than its shape
 * overran that buffer (fuzz: a signal dataset whose filters were gone kept its 43-byte
 * compressed chunks, read as 128). So the chunks holding rows [start, start+count) of an
 * unfiltered chunked dataset must be recorded whole (or not at all: fill value). They are
 * looked up in the index (no data read) with H5Dget_chunk_info_by_coord, which walks the
 * whole index in HDF5 1.10 (H5Dget_chunk_storage_size reports the shape's size instead):
 * datasets of more than 4096 chunks are not checked, to keep reads linear. Filtered datasets
 * and other layouts pass, if their numbers are decodable (numbers_decodable). */
bool h5ml__chunks_whole(hid_t dset, int64_t start, int64_t count)
{
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset), space = H5Dget_space(dset);
    hsize_t chunk[H5S_MAX_RANK], dims[H5S_MAX_RANK], off[H5S_MAX_RANK];
    bool ok = true;
    bool check = dcpl >= 0 && type >= 0 && space >= 0 && count > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
                 H5Pget_nfilters(dcpl) == 0;
    hsize_t nchunks = 0;
    if (dcpl >= 0 && type >= 0 && !numbers_decodable(dcpl, type)) ok = check = false;
    if (check && H5Dget_num_chunks(dset, space, &nchunks) < 0) ok = check = false; /* an index HDF5 cannot walk */
    if (check && nchunks > 4096) check = false;
    if (check) {
        int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
        uint64_t bytes = H5Tget_size(type), trail = 1;
        if (H5Tget_class(type) == H5T_VLEN || H5Tis_variable_str(type) > 0) {
            /* stored as a 4-byte length, a global heap address and a 4-byte index */
            hid_t file = H5Iget_file_id(dset), fcpl = file >= 0 ? H5Fget_create_plist(file) : H5I_INVALID_HID;
            size_t addr = 8, sz = 8;
            if (fcpl >= 0) H5Pget_sizes(fcpl, &addr, &sz);
            bytes = 4 + addr + 4;
            if (fcpl >= 0) H5Pclose(fcpl);
            if (file >= 0) H5Fclose(file);
        }
        ok = rank >= 1 && H5Sget_simple_extent_dims(space, dims, NULL) == rank;
        for (int k = 0; ok && k < rank; k++) {
            ok = chunk[k] > 0 && bytes <= UINT32_MAX;
            bytes *= chunk[k];
            if (k > 0 && ok) trail *= (dims[k] + chunk[k] - 1) / chunk[k];
        }
        hsize_t first = ok ? (hsize_t)start / chunk[0] : 1, last = ok ? ((hsize_t)start + (hsize_t)count - 1) / chunk[0] : 0;
        for (hsize_t c = first; ok && trail <= (1u << 20) && c <= last; c++) {
            for (uint64_t t = 0; ok && t < trail; t++) {
                uint64_t rest = t;
                off[0] = c * chunk[0];
                for (int k = rank - 1; k > 0; k--) {
                    hsize_t nk = (dims[k] + chunk[k] - 1) / chunk[k];
                    off[k] = (rest % nk) * chunk[k];
                    rest /= nk;
                }
                unsigned mask = 0;
                haddr_t addr = HADDR_UNDEF;
                hsize_t size = 0;
                if (H5Dget_chunk_info_by_coord(dset, off, &mask, &addr, &size) >= 0)
                    ok = addr == HADDR_UNDEF || size == bytes; /* (an address with size 0 too: fuzz) */
            }
        }
    }
    H5Eclear2(H5E_DEFAULT);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return ok;
}

int h5ml__read_rows(hid_t dset, hid_t memtype, int64_t start, int64_t count, void *buf)
{
    if (count == 0) return 0;
    hsize_t dims[3] = { 0, 0, 0 };
    int rank = h5ml__dims(dset, dims);
    if (rank < 1 || !h5ml__chunks_whole(dset, start, count)) return -1;
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
