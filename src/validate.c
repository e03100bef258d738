/* Validation of one structure (the SPEC's messages) and the close-atoms search used by the
 * plausibility warnings. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *nonfinite_name(double v) { return isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"); }

/* 0 = all finite, 1 = some NaN, 2 = some Inf (NaN reported first, as numpy checks would). */
static int scan_finite(const double *v, size_t n)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += v[i] * 0.0; /* NaN for NaN and Inf, 0 otherwise */
    if (acc == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i])) return 1;
    return 2;
}

int h5ml__validate(const h5ml_structure *s, char *msg, size_t len)
{
    int64_t n = s->natoms;
    if (n < 0) return snprintf(msg, len, "Invalid number of atoms: %lld", (long long)n), H5ML_ERR_VALUE;
    if (!isfinite(s->energy)) return snprintf(msg, len, "Invalid energy: %s", nonfinite_name(s->energy)), H5ML_ERR_VALUE;
    int64_t rows = s->forces_rows ? s->forces_rows : n;
    if (rows != n)
        return snprintf(msg, len, "Forces shape (%lld, 3) doesn't match atoms (%lld, 3)", (long long)rows, (long long)n),
               H5ML_ERR_VALUE;
    int bad = scan_finite(s->forces, (size_t)n * 3);
    if (bad) return snprintf(msg, len, "Forces contain %s", bad == 1 ? "NaN" : "Inf"), H5ML_ERR_VALUE;
    if (s->stress) {
        int64_t sl = s->stress_len ? s->stress_len : 6;
        if (sl != 6 && sl != 9)
            return snprintf(msg, len, "Stress shape (%lld,) doesn't match (6,) or (3, 3)", (long long)sl), H5ML_ERR_VALUE;
        bad = scan_finite(s->stress, (size_t)sl);
        if (bad) return snprintf(msg, len, "Stress contains %s", bad == 1 ? "NaN" : "Inf"), H5ML_ERR_VALUE;
    }
    bad = scan_finite(s->positions, (size_t)n * 3);
    if (bad) return snprintf(msg, len, "Positions contain %s", bad == 1 ? "NaN" : "Inf"), H5ML_ERR_VALUE;
    if (s->cell && (bad = scan_finite(s->cell, 9)) != 0)
        return snprintf(msg, len, "Cell contains %s", bad == 1 ? "NaN" : "Inf"), H5ML_ERR_VALUE;
    for (int64_t i = 0; i < n; i++)
        if (s->numbers[i] < 0 || s->numbers[i] > 118)
            return snprintf(msg, len, "Invalid atomic number %lld for atom %lld (expected 0..118)",
                            (long long)s->numbers[i], (long long)i),
                   H5ML_ERR_VALUE;
    return H5ML_OK;
}

/* ---- closest pair below a threshold ------------------------------------------------ */

typedef struct point { double x[3]; int64_t atom; } point;

typedef struct best { double d2; int64_t i, j; } best;

static void consider(best *b, const point *p, const point *q)
{
    double dx = p->x[0] - q->x[0], dy = p->x[1] - q->x[1], dz = p->x[2] - q->x[2];
    double d2 = dx * dx + dy * dy + dz * dz;
    if (d2 < b->d2) {
        b->d2 = d2;
        b->i = p->atom < q->atom ? p->atom : q->atom;
        b->j = p->atom < q->atom ? q->atom : p->atom;
    }
}

static int cmp_x(const void *a, const void *b)
{
    double u = ((const point *)a)->x[0], v = ((const point *)b)->x[0];
    return (u > v) - (u < v);
}

/* Whether any pair is closer than sqrt(thr2): a branch-free loop the compiler vectorizes,
 * so the common case (no close atoms) costs a few nanoseconds per pair. */
static bool any_close(const point *pts, int64_t n, double thr2)
{
    enum { MAXN = 128 };
    double x[MAXN], y[MAXN], z[MAXN];
    for (int64_t i = 0; i < n; i++) {
        x[i] = pts[i].x[0];
        y[i] = pts[i].x[1];
        z[i] = pts[i].x[2];
    }
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i], yi = y[i], zi = z[i];
        for (int64_t j = i + 1; j < n; j++) {
            double dx = x[j] - xi, dy = y[j] - yi, dz = z[j] - zi;
            count += dx * dx + dy * dy + dz * dz < thr2;
        }
    }
    return count > 0;
}

/* All pairs of `pts` (brute force when few, sort-and-sweep on x otherwise). Every point is
 * an image of a real atom, so every pair distance is a true (image) distance. */
static void search(point *pts, int64_t n, double thr, best *b)
{
    if (n <= 96) {
        if (!any_close(pts, n, b->d2)) return;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++) consider(b, &pts[i], &pts[j]);
        return;
    }
    qsort(pts, (size_t)n, sizeof *pts, cmp_x);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n && pts[j].x[0] - pts[i].x[0] < thr; j++) consider(b, &pts[i], &pts[j]);
}

static double det3(const double m[9])
{
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

static void cross(const double *a, const double *b, double *out)
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static double norm(const double *a) { return sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]); }

/* A cell usable for periodic images: a zero vector along one non-periodic direction (ASE
 * slabs) is replaced by the unit normal of the other two. Returns 0 if none is usable. */
static int usable_cell(const double *cell, const uint8_t *pbc, double c[9])
{
    memcpy(c, cell, 9 * sizeof *c);
    int zero = -1, nzero = 0;
    for (int k = 0; k < 3; k++)
        if (norm(c + 3 * k) == 0) {
            zero = k;
            nzero++;
        }
    if (nzero == 1 && !pbc[zero]) {
        double *v = c + 3 * zero, t[3];
        cross(c + 3 * ((zero + 1) % 3), c + 3 * ((zero + 2) % 3), t);
        double l = norm(t);
        if (l == 0) return 0;
        for (int i = 0; i < 3; i++) v[i] = t[i] / l;
    }
    return fabs(det3(c)) > 1e-9;
}

static void inverse3(const double m[9], double inv[9])
{
    double d = det3(m);
    inv[0] = (m[4] * m[8] - m[5] * m[7]) / d;
    inv[1] = (m[2] * m[7] - m[1] * m[8]) / d;
    inv[2] = (m[1] * m[5] - m[2] * m[4]) / d;
    inv[3] = (m[5] * m[6] - m[3] * m[8]) / d;
    inv[4] = (m[0] * m[8] - m[2] * m[6]) / d;
    inv[5] = (m[2] * m[3] - m[0] * m[5]) / d;
    inv[6] = (m[3] * m[7] - m[4] * m[6]) / d;
    inv[7] = (m[1] * m[6] - m[0] * m[7]) / d;
    inv[8] = (m[0] * m[4] - m[1] * m[3]) / d;
}

/* Tiny periodic cells (a width below twice the threshold): every image within reach. */
static void search_small_cell(int64_t n, const double *pos, const double c[9], const int reach[3], best *b)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++)
            for (int u = -reach[0]; u <= reach[0]; u++)
                for (int v = -reach[1]; v <= reach[1]; v++)
                    for (int w = -reach[2]; w <= reach[2]; w++) {
                        if (i == j && u == 0 && v == 0 && w == 0) continue;
                        point p = { { pos[3 * i], pos[3 * i + 1], pos[3 * i + 2] }, i }, q = { { 0, 0, 0 }, j };
                        for (int k = 0; k < 3; k++) q.x[k] = pos[3 * j + k] + u * c[k] + v * c[3 + k] + w * c[6 + k];
                        consider(b, &p, &q);
                    }
}

int h5ml__close_pair(int64_t n, const double *pos, const double *cell, const uint8_t *pbc, double thr,
                     int64_t *oi, int64_t *oj, double *od)
{
    best b = { thr * thr, -1, -1 };
    double c[9], inv[9], width[3] = { 0, 0, 0 };
    bool periodic = cell && pbc && (pbc[0] || pbc[1] || pbc[2]) && usable_cell(cell, pbc, c);
    int reach[3] = { 0, 0, 0 };
    bool small = false;
    if (periodic) {
        double vol = fabs(det3(c));
        for (int k = 0; k < 3; k++) {
            double t[3];
            cross(c + 3 * ((k + 1) % 3), c + 3 * ((k + 2) % 3), t);
            width[k] = vol / norm(t);
            if (pbc[k]) {
                reach[k] = (int)ceil(thr / width[k]);
                if (width[k] < 2 * thr) small = true;
            }
        }
    }
    if (periodic && small) {
        search_small_cell(n, pos, c, reach, &b);
    } else {
        /* Wrap periodic directions into the cell, then add the images of atoms lying within
         * `thr` of a face (all combinations at edges and corners). */
        int64_t cap = periodic ? 8 * n : n, m = 0;
        point *pts = malloc(sizeof *pts * (size_t)(cap ? cap : 1));
        if (pts == NULL) return 0;
        if (periodic) inverse3(c, inv);
        for (int64_t i = 0; i < n; i++) {
            const double *r = pos + 3 * i;
            if (!periodic) {
                pts[m++] = (point){ { r[0], r[1], r[2] }, i };
                continue;
            }
            double f[3];
            int shift[3][2], ns[3];
            for (int k = 0; k < 3; k++) {
                f[k] = r[0] * inv[k] + r[1] * inv[3 + k] + r[2] * inv[6 + k];
                ns[k] = 1;
                shift[k][0] = 0;
                if (!pbc[k]) continue;
                f[k] -= floor(f[k]);
                double edge = thr / width[k];
                if (f[k] < edge) shift[k][ns[k]++] = 1;
                else if (f[k] > 1 - edge) shift[k][ns[k]++] = -1;
            }
            for (int a = 0; a < ns[0]; a++)
                for (int bb = 0; bb < ns[1]; bb++)
                    for (int cc = 0; cc < ns[2]; cc++) {
                        double g[3] = { f[0] + shift[0][a], f[1] + shift[1][bb], f[2] + shift[2][cc] };
                        point p = { { 0, 0, 0 }, i };
                        for (int k = 0; k < 3; k++) p.x[k] = g[0] * c[k] + g[1] * c[3 + k] + g[2] * c[6 + k];
                        pts[m++] = p;
                    }
        }
        search(pts, m, thr, &b);
        free(pts);
    }
    if (b.i < 0) return 0;
    *oi = b.i;
    *oj = b.j;
    *od = sqrt(b.d2);
    return 1;
}
