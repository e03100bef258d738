/* Helpers shared by the C sides of the benchmarks (bench_atoms.c, bench_signals.c): clocks,
 * CPU time, fatal errors, whole-file loads, the --version line. Each program defines
 * BENCH_NAME first. */
#ifndef H5ML_BENCH_UTIL_H
#define H5ML_BENCH_UTIL_H

#include "h5ml.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds (user, system) used by this process so far. */
static inline void cpu(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", BENCH_NAME);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

/* Reads `path` entirely; checks that it holds at least `expect` bytes (if >= 0). */
static inline void *load_path(const char *path, long long expect, long long *got)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) die("cannot open %s%s", path, "");
    fseek(f, 0, SEEK_END);
    long long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (expect >= 0 && n < expect) die("%s is too short%s", path, "");
    void *p = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (p == NULL) die("out of memory loading %s%s", path, "");
    if (n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) die("cannot read %s%s", path, "");
    fclose(f);
    if (got) *got = n;
    return p;
}

static inline long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* --version: the library versions, as one JSON object. */
static inline int print_versions(void)
{
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    printf("{\"h5ml\": \"%s\", \"hdf5\": \"%u.%u.%u\"}\n", h5ml_version(), maj, min, rel);
    return 0;
}

#endif
