/* The close-atoms search against a brute force over many periodic images, on random
 * triclinic cells, mixed periodicity, slabs with a zero vector, and large structures. */
#include "check.h"
#include "internal.h"

/* Smallest distance over all pairs and images within +-R cells (R large enough here). */
static double brute_min(int64_t n, const double *pos, const double *cell, const uint8_t *pbc, int R)
{
    double best = INFINITY;
    int r[3];
    for (int k = 0; k < 3; k++) r[k] = (pbc && pbc[k] && cell) ? R : 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++)
            for (int u = -r[0]; u <= r[0]; u++)
                for (int v = -r[1]; v <= r[1]; v++)
                    for (int w = -r[2]; w <= r[2]; w++) {
                        if (i == j && !u && !v && !w) continue;
                        double d2 = 0;
                        for (int k = 0; k < 3; k++) {
                            double t = pos[3 * j + k] - pos[3 * i + k];
                            if (cell) t += u * cell[k] + v * cell[3 + k] + w * cell[6 + k];
                            d2 += t * t;
                        }
                        if (d2 < best) best = d2;
                    }
    return sqrt(best);
}

static void one_case(int64_t n, bool periodic, double thr)
{
    double cell[9] = { 0 }, *pos = malloc(sizeof *pos * 3 * (size_t)n);
    uint8_t pbc[3] = { 0, 0, 0 };
    double L = 3.0 + 1.2 * cbrt((double)n) * rng_uniform() + 0.5;
    for (int k = 0; k < 3; k++) cell[4 * k] = L * (0.8 + 0.4 * rng_uniform());
    cell[3] = (rng_uniform() - 0.5) * L * 0.6; /* skew */
    cell[6] = (rng_uniform() - 0.5) * L * 0.6;
    cell[7] = (rng_uniform() - 0.5) * L * 0.6;
    if (periodic)
        for (int k = 0; k < 3; k++) pbc[k] = (uint8_t)rng_int(0, 1);
    if (periodic && rng_int(0, 3) == 0) { /* slab: no third vector, not periodic along it */
        memset(cell + 6, 0, 3 * sizeof *cell);
        pbc[2] = 0;
    }
    for (int64_t i = 0; i < n; i++) {
        double f[3] = { rng_uniform() * 1.2 - 0.1, rng_uniform() * 1.2 - 0.1, rng_uniform() * 1.2 - 0.1 };
        for (int k = 0; k < 3; k++) pos[3 * i + k] = f[0] * cell[k] + f[1] * cell[3 + k] + f[2] * cell[6 + k] + (cell[8] == 0 && k == 2 ? f[2] * L : 0);
    }
    double want = brute_min(n, pos, cell, periodic ? pbc : NULL, 3);
    int64_t i, j;
    double d;
    int found = h5ml__close_pair(n, pos, cell, periodic ? pbc : NULL, thr, &i, &j, &d);
    CHECK_MSG(found == (want < thr), "n=%lld pbc=%d%d%d: found %d, true minimum %.6f (threshold %.2f)", (long long)n, pbc[0],
              pbc[1], pbc[2], found, want, thr);
    if (found) CHECK_MSG(fabs(d - want) < 1e-9, "reported %.9f, true minimum %.9f", d, want);
    free(pos);
}

int main(void)
{
    unsigned seed = test_seed();
    rng_seed(seed);
    for (int t = 0; t < 400; t++) one_case(rng_int(1, 40), t % 2, 0.5);
    for (int t = 0; t < 60; t++) one_case(rng_int(100, 300), t % 2, 0.5); /* sort-and-sweep path */
    for (int t = 0; t < 40; t++) one_case(rng_int(2, 12), true, 2.5);     /* threshold beyond half a small cell */
    /* a tiny cell: an atom near its own image */
    double cell[9] = { 0.4, 0, 0, 0, 5, 0, 0, 0, 5 }, pos[3] = { 0, 0, 0 };
    uint8_t pbc[3] = { 1, 0, 0 };
    int64_t i, j;
    double d;
    CHECK(h5ml__close_pair(1, pos, cell, pbc, 0.5, &i, &j, &d) == 1 && fabs(d - 0.4) < 1e-12 && i == 0 && j == 0);
    /* molecules without a cell */
    double water[9] = { 0, 0, 0, 0.96, 0, 0, 0.24, 0.93, 0 };
    CHECK(h5ml__close_pair(3, water, NULL, NULL, 0.5, &i, &j, &d) == 0);
    water[3] = 0.3;
    CHECK(h5ml__close_pair(3, water, NULL, NULL, 0.5, &i, &j, &d) == 1 && i == 0 && j == 1 && fabs(d - 0.3) < 1e-12);
    return check_report("test_validate");
}
