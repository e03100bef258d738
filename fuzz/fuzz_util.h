/* Helpers shared by the fuzz targets: a scratch directory per process (inputs are written
 * to files, since every h5ml reader takes a path), and the checks that make a finding an
 * abort() whatever the build (libFuzzer with sanitizers, or the plain replay of ctest).
 *
 * The scratch directory is $H5ML_FUZZ_TMP if set, else /dev/shm (a tmpfs: no disk writes
 * per input), else /tmp; inside it each process makes h5ml-fuzz-PID and removes it at exit. */
#ifndef H5ML_FUZZ_UTIL_H
#define H5ML_FUZZ_UTIL_H

#define _GNU_SOURCE
#include "h5ml.h"

#include <dirent.h>
#include <stdbool.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A finding: prints what is wrong and aborts (libFuzzer then keeps the input). */
static inline void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FUZZ FINDING: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) fuzz_fail(__VA_ARGS__);                                                       \
    } while (0)

static char fuzz_dir_path[512];

static inline void fuzz_cleanup(void)
{
    if (!fuzz_dir_path[0]) return;
    DIR *d = opendir(fuzz_dir_path);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fuzz_dir_path);
}

static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *base = getenv("H5ML_FUZZ_TMP");
    struct stat st;
    if (base == NULL || !*base) base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/h5ml-fuzz-%d", base, (int)getpid());
    if (mkdir(fuzz_dir_path, 0700) != 0 && (stat(fuzz_dir_path, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "fuzz: cannot make %s\n", fuzz_dir_path);
        exit(2);
    }
    atexit(fuzz_cleanup);
    return fuzz_dir_path;
}

/* A fresh file name in the scratch directory: a new name per input, so that nothing of a
 * previous input (a file HDF5 still holds open, say) can be mistaken for this one. */
static inline void fuzz_path(char *out, size_t len, const char *tag)
{
    static unsigned long counter;
    snprintf(out, len, "%s/%lu-%s", fuzz_dir(), counter++, tag);
}

static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        exit(2);
    }
}

/* Every HDF5 object h5ml opened must be closed again once its handles are closed: a leaked
 * file id would also keep serving a later input from the old file's cached state. */
static inline void fuzz_check_no_hdf5_ids(const char *where)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    FUZZ_CHECK(n == 0, "%s: %zd HDF5 objects left open (files %zd, datasets %zd, groups %zd, types %zd, attributes %zd)",
               where, n, H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATASET),
               H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_GROUP), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATATYPE),
               H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ATTR));
}

/* A failed call leaves a message naming what is wrong. */
static inline void fuzz_check_message(const void *handle, int rc, const char *call)
{
    const char *m = h5ml_errmsg(handle);
    FUZZ_CHECK(rc > 0 && rc < H5ML_NUM_CODES, "%s returned %d, not an h5ml code", call, rc);
    FUZZ_CHECK(m != NULL && m[0] != 0, "%s failed (%s) without a message", call, h5ml_strerror(rc));
}

/* The same double: bit for bit, or both NaN (the text form keeps no NaN payload or sign). */
static inline int fuzz_same_double(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Deterministic pseudo-random numbers from the input (so a finding replays). */
static inline uint64_t fuzz_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ull;
    return h;
}

#endif
