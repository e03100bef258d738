/* Fuzz target: the .mat importer (src/matimport.c, through h5ml__mat_read_signal) on mutated
 * MATLAB files (v4, v5 and v7.3, read with libmatio; v7.3 through HDF5).
 *
 * The input is written to a file and read twice: once choosing the largest real numeric
 * vector, then, if that worked, by the variable's name, which must give the same signal.
 * A name that is not in the file must be NOTFOUND. Errors must come with a message naming
 * the file; crashes, hangs and leaks (memory or HDF5 ids) are findings. */
#include "fuzz_util.h"
#include "signals_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fuzz_path(path, sizeof path, "in.mat");
    fuzz_write_file(path, data, size);
    double *sig = NULL;
    int64_t len = -1;
    char name[600], msg[1024];
    msg[0] = 0;
    int rc = h5ml__mat_read_signal(path, NULL, &sig, &len, name, sizeof name, msg, sizeof msg);
    if (rc == H5ML_OK) {
        FUZZ_CHECK(sig != NULL && len >= 2, "read OK with %lld samples", (long long)len);
        FUZZ_CHECK(name[0] != 0, "read OK without the variable's name");
        double *again = NULL;
        int64_t len2 = -1;
        char name2[600], msg2[1024];
        msg2[0] = 0;
        int rc2 = h5ml__mat_read_signal(path, name, &again, &len2, name2, sizeof name2, msg2, sizeof msg2);
        FUZZ_CHECK(rc2 == H5ML_OK, "'%s' was chosen, but reading it by name fails: %s", name, msg2);
        FUZZ_CHECK(len2 == len && strcmp(name, name2) == 0, "'%s' by name: %lld samples of '%s', chosen: %lld", name, (long long)len2,
                   name2, (long long)len);
        for (int64_t i = 0; i < len; i++)
            FUZZ_CHECK(fuzz_same_double(sig[i], again[i]), "'%s'[%lld]: %.17g chosen, %.17g by name", name, (long long)i, sig[i],
                       again[i]);
        free(again);
    } else {
        FUZZ_CHECK(rc > 0 && rc < H5ML_NUM_CODES, "h5ml__mat_read_signal returned %d", rc);
        FUZZ_CHECK(sig == NULL, "a failed read returned data");
        FUZZ_CHECK(msg[0] != 0 && strstr(msg, path) != NULL, "error %s without a message naming the file: '%s'", h5ml_strerror(rc), msg);
    }
    free(sig);
    sig = NULL;
    msg[0] = 0;
    rc = h5ml__mat_read_signal(path, "no_such_variable_h5ml", &sig, &len, NULL, 0, msg, sizeof msg);
    FUZZ_CHECK(rc != H5ML_OK, "a variable that is not in the file was read");
    FUZZ_CHECK(msg[0] != 0, "error %s without a message", h5ml_strerror(rc));
    free(sig);
    fuzz_check_no_hdf5_ids("after h5ml__mat_read_signal");
    unlink(path);
    return 0;
}
