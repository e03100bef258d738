/* bench_validate: the cost per structure of the writer's validation, in isolation.
 *
 *   bench_validate DIR [--count N]
 *
 * DIR holds the arrays of bench_atoms (see bench_atoms.c). Times h5ml__validate (finite
 * values, shapes, atomic numbers) and h5ml__close_pair (the atoms-closer-than-0.5-A warning,
 * periodic images counted) over every structure, each the best of 3 passes, and prints JSON
 * with nanoseconds per structure. run.py uses it to explain the validation share of the
 * batch-write time. */
#include "h5ml.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *load(const char *dir, const char *name, long long *bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_validate: cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p == NULL || (n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "bench_validate: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    if (bytes) *bytes = n;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_validate DIR [--count N]\n");
        return 2;
    }
    const char *dir = argv[1];
    long long count = -1;
    if (argc >= 4 && strcmp(argv[2], "--count") == 0) count = atoll(argv[3]);
    long long nb;
    int64_t *natoms = load(dir, "natoms.i64", &nb);
    long long n = nb / 8;
    if (count >= 0 && count < n) n = count;
    int64_t *numbers = load(dir, "numbers.i64", NULL);
    double *positions = load(dir, "positions.f64", NULL);
    double *cells = load(dir, "cells.f64", NULL);
    uint8_t *pbc = load(dir, "pbc.u8", NULL);
    double *energy = load(dir, "energy.f64", NULL);
    double *forces = load(dir, "forces.f64", NULL);
    double *stress = load(dir, "stress.f64", NULL);
    uint8_t *mask = load(dir, "stress_mask.u8", NULL);

    double best_v = 1e30, best_c = 1e30;
    long long close = 0, bad = 0;
    for (int pass = 0; pass < 3; pass++) {
        char msg[256];
        long long atom = 0;
        double t0 = now();
        for (long long k = 0; k < n; k++) {
            h5ml_structure s = {
                .natoms = natoms[k], .numbers = numbers + atom, .positions = positions + 3 * atom,
                .cell = cells + 9 * k, .pbc = pbc + 3 * k, .energy = energy[k], .forces = forces + 3 * atom,
                .stress = mask[k] ? stress + 6 * k : NULL,
            };
            bad += h5ml__validate(&s, msg, sizeof msg) != 0;
            atom += natoms[k];
        }
        double t1 = now();
        atom = 0;
        for (long long k = 0; k < n; k++) {
            int64_t i, j;
            double d;
            close += h5ml__close_pair(natoms[k], positions + 3 * atom, cells + 9 * k, pbc + 3 * k, 0.5, &i, &j, &d);
            atom += natoms[k];
        }
        double t2 = now();
        if (t1 - t0 < best_v) best_v = t1 - t0;
        if (t2 - t1 < best_c) best_c = t2 - t1;
    }
    printf("{\"structures\": %lld, \"validate_ns\": %.1f, \"close_pair_ns\": %.1f, \"rejected\": %lld, "
           "\"close\": %lld}\n",
           n, best_v / (double)n * 1e9, best_c / (double)n * 1e9, bad / 3, close / 3);
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
