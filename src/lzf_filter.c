/* h5py's LZF filter (HDF5 filter id 32000) on top of Debian's liblzf, so that files
 * compressed with "lzf" are the ones h5py writes and reads without a plugin.
 *
 * Same contract as h5py's lzf_filter.c: cd_values[0] = filter version (4),
 * cd_values[1] = LZF API version, cd_values[2] = chunk size in bytes (set_local);
 * compression returns 0 (HDF5 then stores the chunk unfiltered, the filter being optional)
 * when the output would not be smaller than the input. */
#include "internal.h"

#include <errno.h>
#include <liblzf/lzf.h>
#include <stdlib.h>

#define LZF_FILTER_VERSION 4
#define LZF_MAX_BUF (100L * 1024L * 1024L)

static herr_t lzf_set_local(hid_t dcpl, hid_t type, hid_t space)
{
    (void)space;
    unsigned flags;
    size_t nelements = 8;
    unsigned values[8] = { 0 };
    if (H5Pget_filter_by_id2(dcpl, H5ML_FILTER_LZF, &flags, &nelements, values, 0, NULL, NULL) < 0)
        return -1;
    if (nelements < 3) nelements = 3;
    if (values[0] == 0) values[0] = LZF_FILTER_VERSION;
    if (values[1] == 0) values[1] = LZF_VERSION;
    hsize_t chunk[32];
    int ndims = H5Pget_chunk(dcpl, 32, chunk);
    if (ndims < 0) return -1;
    size_t bytes = H5Tget_size(type);
    if (bytes == 0) return -1;
    for (int i = 0; i < ndims; i++) bytes *= chunk[i];
    values[2] = (unsigned)bytes;
    return H5Pmodify_filter(dcpl, H5ML_FILTER_LZF, flags, nelements, values);
}

static size_t lzf_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                         size_t *buf_size, void **buf)
{
    void *out = NULL;
    size_t out_size, want = 0;
    unsigned status = 0;
    if (!(flags & H5Z_FLAG_REVERSE)) {
        out_size = nbytes;
        out = malloc(out_size);
        if (out == NULL) return 0;
        status = lzf_compress(*buf, (unsigned)nbytes, out, (unsigned)out_size);
    } else {
        /* HDF5 takes what a filter returns as the whole chunk and copies a chunk's worth out
         * of it: a corrupt chunk that decodes to fewer bytes than the chunk (fuzz: 125 of 128)
         * made it read past the end. The chunk size is cd_values[2] (checked against the
         * dataset's chunk shape where h5ml opens datasets, h5ml__lzf_params_ok). */
        want = (cd_nelmts >= 3 && cd_values[2] != 0) ? cd_values[2] : 0;
        out_size = want ? want : *buf_size;
        while (status == 0) {
            free(out);
            out = malloc(out_size);
            if (out == NULL) return 0;
            status = lzf_decompress(*buf, (unsigned)nbytes, out, (unsigned)out_size);
            if (status == 0) {
                if (errno != E2BIG) goto failed; /* corrupt input */
                out_size += *buf_size;
                if (out_size > LZF_MAX_BUF) goto failed;
            }
        }
    }
    if (status == 0) goto failed;
    if ((flags & H5Z_FLAG_REVERSE) && want && status != want) goto failed;
    free(*buf);
    *buf = out;
    *buf_size = out_size;
    return status;
failed:
    free(out);
    return 0;
}

bool h5ml__lzf_params_ok(hid_t dset)
{
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    unsigned flags, values[8] = { 0 };
    size_t n = 8;
    hsize_t chunk[32];
    bool ok = true;
    if (dcpl >= 0 && type >= 0 && H5Pget_filter_by_id2(dcpl, H5ML_FILTER_LZF, &flags, &n, values, 0, NULL, NULL) >= 0 && n >= 3 &&
        values[2] != 0) {
        int rank = H5Pget_chunk(dcpl, 32, chunk);
        uint64_t bytes = H5Tget_size(type);
        for (int i = 0; i < rank && bytes <= UINT32_MAX; i++) bytes *= chunk[i];
        ok = rank > 0 && bytes == values[2];
    }
    H5Eclear2(H5E_DEFAULT);
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return ok;
}

int h5ml__lzf_register(void)
{
    if (H5Zfilter_avail(H5ML_FILTER_LZF) > 0) return 0; /* h5py (or we) registered it */
    const H5Z_class2_t cls = {
        H5Z_CLASS_T_VERS, (H5Z_filter_t)H5ML_FILTER_LZF, 1, 1, "lzf", NULL, lzf_set_local, lzf_filter,
    };
    return H5Zregister(&cls) < 0 ? -1 : 0;
}
