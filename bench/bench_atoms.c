/* bench_atoms: the h5ml side of bench/run.py's write and read cases.
 *
 *   bench_atoms --version
 *   bench_atoms write DIR OUT.h5 [options]    batch or one-structure-at-a-time write
 *   bench_atoms read FILE.h5 [--chunk N]      read every structure with h5ml_reader_read
 *   bench_atoms rawwrite DIR OUT               write() the bytes an h5ml file stores, plainly
 *
 * DIR holds the arrays run.py wrote with numpy's tofile() (native byte order):
 *   natoms.i64 (N), numbers.i64 (M), positions.f64 (M x 3), cells.f64 (N x 9), pbc.u8 (N x 3),
 *   energy.f64 (N), forces.f64 (M x 3), stress.f64 (N x 6), stress_mask.u8 (N)
 *
 * write options:
 *   --mode batch|single   one h5ml_writer_add_batch call (default) or h5ml_writer_add per structure
 *   --count N             use the first N structures (default: all)
 *   --compression none|gzip|lzf, --level L, --no-shuffle, --no-validate
 *   --threads N           compression threads (H5ML_OPT_THREADS; default: the library's)
 *
 * Loading the arrays is not timed; the time runs from h5ml_writer_new/open to the return of
 * h5ml_writer_close (finalize included). Prints one JSON object on stdout. */
#define BENCH_NAME "bench_atoms"
#include "bench_util.h"
#include "h5ml.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Reads DIR/name entirely; checks that it holds `expect` bytes (if >= 0). */
static void *load(const char *dir, const char *name, long long expect, long long *got)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return load_path(path, expect, got);
}

static int cmd_write(int argc, char **argv)
{
    if (argc < 2) die("usage: bench_atoms write DIR OUT.h5 [options]%s%s", "", "");
    const char *dir = argv[0], *out = argv[1];
    const char *mode = "batch";
    long long count = -1;
    int comp = H5ML_COMPRESS_GZIP, level = 4, shuffle = 1, validate = 1, threads = 0;
    long long chunk_atoms = 0, chunk_structs = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--mode") == 0 && v) mode = v, i++;
        else if (strcmp(a, "--count") == 0 && v) count = atoll(v), i++;
        else if (strcmp(a, "--level") == 0 && v) level = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0 && v) threads = atoi(v), i++;
        else if (strcmp(a, "--chunk-atoms") == 0 && v) chunk_atoms = atoll(v), i++;
        else if (strcmp(a, "--chunk-structures") == 0 && v) chunk_structs = atoll(v), i++;
        else if (strcmp(a, "--no-shuffle") == 0) shuffle = 0;
        else if (strcmp(a, "--no-validate") == 0) validate = 0;
        else if (strcmp(a, "--compression") == 0 && v) {
            i++;
            if (strcmp(v, "none") == 0) comp = H5ML_COMPRESS_NONE;
            else if (strcmp(v, "gzip") == 0) comp = H5ML_COMPRESS_GZIP;
            else if (strcmp(v, "lzf") == 0) comp = H5ML_COMPRESS_LZF;
            else die("unknown compression %s%s", v, "");
        } else die("unknown option %s%s", a, "");
    }

    long long nbytes;
    int64_t *natoms = load(dir, "natoms.i64", -1, &nbytes);
    long long n = nbytes / 8;
    if (count >= 0 && count < n) n = count;
    long long m = 0;
    for (long long k = 0; k < n; k++) m += natoms[k];
    int64_t *numbers = load(dir, "numbers.i64", m * 8, NULL);
    double *positions = load(dir, "positions.f64", m * 24, NULL);
    double *cells = load(dir, "cells.f64", n * 72, NULL);
    uint8_t *pbc = load(dir, "pbc.u8", n * 3, NULL);
    double *energy = load(dir, "energy.f64", n * 8, NULL);
    double *forces = load(dir, "forces.f64", m * 24, NULL);
    double *stress = load(dir, "stress.f64", n * 48, NULL);
    uint8_t *mask = load(dir, "stress_mask.u8", n, NULL);

    double u0, s0, u1, s1;
    cpu(&u0, &s0);
    double t0 = now();
    h5ml_writer *w = h5ml_writer_new();
    if (w == NULL) die("out of memory%s%s", "", "");
    h5ml_writer_set(w, H5ML_OPT_COMPRESSION, comp);
    if (comp == H5ML_COMPRESS_GZIP) h5ml_writer_set(w, H5ML_OPT_LEVEL, level);
    h5ml_writer_set(w, H5ML_OPT_SHUFFLE, shuffle ? 1 : -1);
    h5ml_writer_set(w, H5ML_OPT_VALIDATE, validate ? 1 : -1);
    if (threads > 0 && h5ml_writer_set(w, H5ML_OPT_THREADS, threads)) die("%s%s", h5ml_errmsg(w), "");
    if (chunk_atoms > 0) h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, chunk_atoms);
    if (chunk_structs > 0) h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, chunk_structs);
    int rc = h5ml_writer_open(w, out, H5ML_CREATE);
    if (rc) die("%s%s", h5ml_errmsg(w), "");
    double t_open = now();
    if (strcmp(mode, "batch") == 0) {
        h5ml_batch b = {
            .count = n, .natoms = natoms, .numbers = numbers, .positions = positions, .cells = cells,
            .pbc = pbc, .energies = energy, .forces = forces, .stress = stress, .stress_mask = mask,
        };
        rc = h5ml_writer_add_batch(w, &b);
    } else if (strcmp(mode, "single") == 0) {
        long long atom = 0;
        for (long long k = 0; k < n && rc == H5ML_OK; k++) {
            h5ml_structure s = {
                .natoms = natoms[k],
                .numbers = numbers + atom,
                .positions = positions + 3 * atom,
                .cell = cells + 9 * k,
                .pbc = pbc + 3 * k,
                .energy = energy[k],
                .forces = forces + 3 * atom,
                .stress = mask[k] ? stress + 6 * k : NULL,
            };
            rc = h5ml_writer_add(w, &s);
            atom += natoms[k];
        }
    } else {
        die("unknown mode %s%s", mode, "");
    }
    if (rc) die("%s%s", h5ml_errmsg(w), "");
    double t_added = now();
    int64_t warnings = h5ml_warning_count(w);
    h5ml_writer_stats st;
    h5ml_writer_get_stats(w, &st);
    rc = h5ml_writer_close(w);
    if (rc) die("close failed: %s%s", h5ml_strerror(rc), "");
    double t1 = now();
    cpu(&u1, &s1);
    printf("{\"seconds\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"open_s\": %.6f, \"add_s\": %.6f, \"close_s\": %.6f, \"structures\": %lld, "
           "\"atoms\": %lld, \"warnings\": %lld, \"checkpoints\": %lld, \"file_bytes\": %lld}\n",
           t1 - t0, u1 - u0, s1 - s0, t_open - t0, t_added - t_open, t1 - t_added, n, m, (long long)warnings,
           (long long)st.checkpoints, file_size(out));
    free(natoms);
    free(numbers);
    free(positions);
    free(cells);
    free(pbc);
    free(energy);
    free(forces);
    free(stress);
    free(mask);
    return 0;
}

/* A permutation of 0..n-1 from a fixed seed (the same on every run). */
static int64_t *shuffled(long long n, unsigned long long seed)
{
    int64_t *p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
    if (p == NULL) die("out of memory%s%s", "", "");
    for (long long i = 0; i < n; i++) p[i] = i;
    for (long long i = n - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        long long j = (long long)((seed >> 33) % (unsigned long long)(i + 1));
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* read FILE [--chunk N] [--shuffle] [--count K] [--threads T] [--cache BYTES]:
 * sequential ranges of N structures (h5ml_reader_read), or with --shuffle the first K of a
 * fixed shuffled order in batches of N (h5ml_reader_read_indices). */
static int cmd_read(int argc, char **argv)
{
    if (argc < 1) die("usage: bench_atoms read FILE.h5 [--chunk N] [--shuffle] [--count K] [--threads T] [--cache B]%s%s", "", "");
    const char *path = argv[0];
    long long chunk = 0, count = -1, threads = 0, cache = -1; /* chunk 0: the whole file in one call */
    bool shuffle = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) chunk = atoll(argv[++i]);
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) count = atoll(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoll(argv[++i]);
        else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) cache = atoll(argv[++i]);
        else if (strcmp(argv[i], "--shuffle") == 0) shuffle = true;
        else die("unknown option %s%s", argv[i], "");
    }
    double t0 = now();
    h5ml_reader *r = h5ml_reader_new();
    if (cache >= 0) h5ml_reader_set_cache(r, cache);
    h5ml_reader_set_threads(r, (int)threads);
    if (h5ml_reader_open(r, path)) die("%s%s", h5ml_errmsg(r), "");
    long long n = h5ml_reader_count(r), m = h5ml_reader_total_atoms(r);
    if (count < 0 || count > n) count = n;
    if (chunk <= 0 || chunk > count) chunk = count > 0 ? count : 1;
    int64_t *order = shuffle ? shuffled(n, 20261123) : NULL;
    int64_t amax = 0;
    for (long long s = 0; s < count; s += chunk) {
        long long k = count - s < chunk ? count - s : chunk;
        int64_t a;
        if (order ? h5ml_reader_atoms_of(r, order + s, k, &a) : h5ml_reader_range_atoms(r, s, k, &a)) die("%s%s", h5ml_errmsg(r), "");
        if (a > amax) amax = a;
    }
    size_t ca = (size_t)(amax > 0 ? amax : 1), cs = (size_t)chunk;
    h5ml_frames f = {
        .natoms = malloc(cs * 8), .numbers = malloc(ca * 8), .positions = malloc(ca * 24),
        .cells = malloc(cs * 72), .pbc = malloc(cs * 3), .energies = malloc(cs * 8),
        .forces = malloc(ca * 12), .stress = malloc(cs * 48), .stress_mask = malloc(cs),
    };
    if (!f.natoms || !f.numbers || !f.positions || !f.cells || !f.pbc || !f.energies || !f.forces || !f.stress ||
        !f.stress_mask)
        die("out of memory%s%s", "", "");
    double t1 = now(), check = 0;
    for (long long s = 0; s < count; s += chunk) {
        long long k = count - s < chunk ? count - s : chunk;
        int rc = order ? h5ml_reader_read_indices(r, order + s, k, &f) : h5ml_reader_read(r, s, k, &f);
        if (rc) die("%s%s", h5ml_errmsg(r), "");
        check += f.energies[0] + f.forces[0];
    }
    double t2 = now();
    h5ml_reader_close(r);
    double t3 = now();
    printf("{\"seconds\": %.6f, \"read_s\": %.6f, \"open_s\": %.6f, \"structures\": %lld, \"read\": %lld, \"atoms\": %lld, "
           "\"check\": %.6g}\n",
           t3 - t0, t2 - t1, t1 - t0, n, count, m, check);
    free(order);
    free(f.natoms);
    free(f.numbers);
    free(f.positions);
    free(f.cells);
    free(f.pbc);
    free(f.energies);
    free(f.forces);
    free(f.stress);
    free(f.stress_mask);
    return 0;
}

/* rawwrite DIR OUT: the floor of an uncompressed write. The bytes an h5ml file stores for
 * DIR's structures (per atom: numbers 8, positions 24, forces as float32 12; per structure:
 * two splits 16, cell 72, pbc 3, energy 8, stress 48, mask 1, index 8), laid out in memory
 * first (not timed), then written with write() in 4 MiB pieces into a new file, which is
 * closed: the time runs from open() to close(). */
static int cmd_rawwrite(int argc, char **argv)
{
    if (argc < 2) die("usage: bench_atoms rawwrite DIR OUT%s%s", "", "");
    long long nbytes;
    int64_t *natoms = load(argv[0], "natoms.i64", -1, &nbytes);
    long long n = nbytes / 8, m = 0;
    for (long long k = 0; k < n; k++) m += natoms[k];
    size_t total = (size_t)(44 * m + 156 * n + 16);
    unsigned char *buf = malloc(total);
    if (buf == NULL) die("out of memory%s%s", "", "");
    size_t at = 0;
    const struct { const char *name; long long bytes; } parts[] = {
        { "numbers.i64", m * 8 }, { "positions.f64", m * 24 }, { "cells.f64", n * 72 }, { "pbc.u8", n * 3 },
        { "energy.f64", n * 8 }, { "stress.f64", n * 48 }, { "stress_mask.u8", n },
    };
    for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
        void *a = load(argv[0], parts[p].name, parts[p].bytes, NULL);
        memcpy(buf + at, a, (size_t)parts[p].bytes);
        at += (size_t)parts[p].bytes;
        free(a);
    }
    double *forces = load(argv[0], "forces.f64", m * 24, NULL);
    float *f32 = (float *)(buf + at);
    for (long long i = 0; i < 3 * m; i++) f32[i] = (float)forces[i];
    at += (size_t)(12 * m);
    free(forces);
    memset(buf + at, 1, total - at); /* splits and indices: any bytes, the count is what matters */
    unlink(argv[1]);
    double t0 = now();
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) die("cannot create %s%s", argv[1], "");
    for (size_t off = 0; off < total;) {
        size_t k = total - off < ((size_t)4 << 20) ? total - off : (size_t)4 << 20;
        ssize_t w = write(fd, buf + off, k);
        if (w <= 0) die("write failed%s%s", "", "");
        off += (size_t)w;
    }
    if (close(fd) != 0) die("close failed%s%s", "", "");
    double t1 = now();
    printf("{\"seconds\": %.6f, \"bytes\": %zu}\n", t1 - t0, total);
    free(buf);
    free(natoms);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) return print_versions();
    if (argc >= 2 && strcmp(argv[1], "write") == 0) return cmd_write(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "read") == 0) return cmd_read(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "rawwrite") == 0) return cmd_rawwrite(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench_atoms --version | write DIR OUT.h5 [options] | read FILE.h5 [options] | rawwrite DIR OUT\n");
    return 2;
}
