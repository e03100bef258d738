/* Validation of one structure (the SPEC's messages) and the close-atoms search used by the
 * plausibility warnings. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *nonfinite_name(double v) { return isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"); }

/* Clang 14 names the ifunc that target_clones makes "NAME.ifunc", which callers in other
 * files do not find (undefined reference at link time; the clang build of `make fuzz`): the
 * clones are GCC's. */
#if defined(__clang__)
#define H5ML_CLONED
#else
#define H5ML_CLONED __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
#endif

/* An all-ones exponent, tested on the bits so the loop vectorizes (a floating-point
 * reduction would not, without reassociation). */
H5ML_CLONED
bool h5ml__any_nonfinite(const double *v, int64_t n)
{
    uint64_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], sizeof u);
        hit |= (~u & UINT64_C(0x7ff0000000000000)) == 0;
    }
    return hit != 0;
}

H5ML_CLONED
bool h5ml__any_nonfinite_f32(const float *v, int64_t n)
{
    uint32_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        hit |= (~u & UINT32_C(0x7f800000)) == 0;
    }
    return hit != 0;
}

/* 0 = all finite, 1 = some NaN, 2 = some Inf (NaN reported first, as numpy checks would). */
static int scan_finite(const double *v, size_t n)
{
    if (!h5ml__any_nonfinite(v, (int64_t)n)) return 0;
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

/* All pairs of `pts` (brute force when few, sort-and-sweep on x otherwise). Every point is
 * an image of a real atom, so every pair distance is a true (image) distance. */
static void search(point *pts, int64_t n, double thr, best *b)
{
    if (n <= 256) {
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

/* Largest integer not above v, without a libm call (v is a fractional coordinate). */
static inline double floor_fast(double v)
{
    double t = (double)(int64_t)v;
    return t > v ? t - 1 : t;
}

/* The periodic geometry of one structure: cell, inverse, face-to-face widths. */
typedef struct geometry {
    bool periodic, small;
    double c[9], inv[9], edge[3];
    int reach[3];
    uint8_t pbc[3];
} geometry;

static void geometry_of(const double *cell, const uint8_t *pbc, double thr, geometry *g)
{
    memset(g, 0, sizeof *g);
    g->periodic = cell && pbc && (pbc[0] || pbc[1] || pbc[2]) && usable_cell(cell, pbc, g->c);
    if (!g->periodic) return;
    memcpy(g->pbc, pbc, 3);
    double vol = fabs(det3(g->c));
    for (int k = 0; k < 3; k++) {
        double t[3];
        cross(g->c + 3 * ((k + 1) % 3), g->c + 3 * ((k + 2) % 3), t);
        double width = vol / norm(t);
        g->edge[k] = thr / width;
        if (pbc[k]) {
            g->reach[k] = (int)ceil(thr / width);
            if (width < 2 * thr) g->small = true;
        }
    }
    inverse3(g->c, g->inv);
}

/* Atom i's position, wrapped into the cell along periodic directions, and its images across
 * every face it lies within `thr` of (all combinations at edges and corners): up to 8
 * points, written to out; returns how many. */
static int images_of(const geometry *g, const double *r, int64_t i, point *out)
{
    if (!g->periodic) {
        out[0] = (point){ { r[0], r[1], r[2] }, i };
        return 1;
    }
    double f[3];
    int shift[3][2], ns[3];
    for (int k = 0; k < 3; k++) {
        f[k] = r[0] * g->inv[k] + r[1] * g->inv[3 + k] + r[2] * g->inv[6 + k];
        ns[k] = 1;
        shift[k][0] = 0;
        if (!g->pbc[k]) continue;
        f[k] -= floor_fast(f[k]);
        if (f[k] < g->edge[k]) shift[k][ns[k]++] = 1;
        else if (f[k] > 1 - g->edge[k]) shift[k][ns[k]++] = -1;
    }
    int m = 0;
    for (int a = 0; a < ns[0]; a++)
        for (int b = 0; b < ns[1]; b++)
            for (int c = 0; c < ns[2]; c++) {
                double u[3] = { f[0] + shift[0][a], f[1] + shift[1][b], f[2] + shift[2][c] };
                point p = { { 0, 0, 0 }, i };
                for (int k = 0; k < 3; k++) p.x[k] = u[0] * g->c[k] + u[1] * g->c[3 + k] + u[2] * g->c[6 + k];
                out[m++] = p;
            }
    return m;
}

/* ---- the screen: single precision, no pair below the threshold in the common case ------ */

typedef struct fpoints {
    float *x, *y, *z;
    int64_t m, cap;
} fpoints;

/* Wrapped fractional coordinate (periodic directions) of r along axis k. */
static inline double frac_of(const geometry *g, const double *r, int k)
{
    return r[0] * g->inv[k] + r[1] * g->inv[3 + k] + r[2] * g->inv[6 + k];
}

/* Positions of atoms [0, n) in single precision: wrapped into the cell along periodic
 * directions (or relative to `origin` without a cell), plus whether each lies within the
 * threshold of a periodic face and so needs images. The floor is a truncation to int32,
 * valid for fractional coordinates below 2^31 in size (fractions_small checks). */
__attribute__((target_clones("arch=x86-64-v3", "default")))
static void wrap_all(const geometry *g, const double *pos, int64_t n, const double *origin, float *x, float *y, float *z,
                     uint8_t *edge)
{
    double p0 = g->pbc[0] ? 1 : 0, p1 = g->pbc[1] ? 1 : 0, p2 = g->pbc[2] ? 1 : 0;
    double e0 = g->pbc[0] ? g->edge[0] : -1, e1 = g->pbc[1] ? g->edge[1] : -1, e2 = g->pbc[2] ? g->edge[2] : -1;
    const double *c = g->c, *v = g->inv;
    if (!g->periodic) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)(pos[3 * i] - origin[0]);
            y[i] = (float)(pos[3 * i + 1] - origin[1]);
            z[i] = (float)(pos[3 * i + 2] - origin[2]);
            edge[i] = 0;
        }
        return;
    }
    /* Four atoms at a time in GCC's vector types (AVX2 where there, SSE2 pairs elsewhere). */
    typedef double v4d __attribute__((vector_size(32)));
    typedef int64_t v4l __attribute__((vector_size(32)));
    typedef int32_t v4i __attribute__((vector_size(16)));
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double *q = pos + 3 * i;
        v4d r0 = { q[0], q[3], q[6], q[9] }, r1 = { q[1], q[4], q[7], q[10] }, r2 = { q[2], q[5], q[8], q[11] };
        v4d f0 = r0 * v[0] + r1 * v[3] + r2 * v[6];
        v4d f1 = r0 * v[1] + r1 * v[4] + r2 * v[7];
        v4d f2 = r0 * v[2] + r1 * v[5] + r2 * v[8];
        v4d t0 = __builtin_convertvector(__builtin_convertvector(f0, v4i), v4d);
        v4d t1 = __builtin_convertvector(__builtin_convertvector(f1, v4i), v4d);
        v4d t2 = __builtin_convertvector(__builtin_convertvector(f2, v4i), v4d);
        t0 += __builtin_convertvector(t0 > f0, v4d); /* a mask is -1 where true: floor */
        t1 += __builtin_convertvector(t1 > f1, v4d);
        t2 += __builtin_convertvector(t2 > f2, v4d);
        f0 -= p0 * t0;
        f1 -= p1 * t1;
        f2 -= p2 * t2;
        v4d cx = f0 * c[0] + f1 * c[3] + f2 * c[6], cy = f0 * c[1] + f1 * c[4] + f2 * c[7], cz = f0 * c[2] + f1 * c[5] + f2 * c[8];
        v4l near = (f0 < e0) | (f0 > 1 - e0) | (f1 < e1) | (f1 > 1 - e1) | (f2 < e2) | (f2 > 1 - e2);
        for (int k = 0; k < 4; k++) {
            x[i + k] = (float)cx[k];
            y[i + k] = (float)cy[k];
            z[i + k] = (float)cz[k];
            edge[i + k] = near[k] != 0;
        }
    }
    for (; i < n; i++) {
        double r0 = pos[3 * i], r1 = pos[3 * i + 1], r2 = pos[3 * i + 2];
        double f0 = r0 * v[0] + r1 * v[3] + r2 * v[6];
        double f1 = r0 * v[1] + r1 * v[4] + r2 * v[7];
        double f2 = r0 * v[2] + r1 * v[5] + r2 * v[8];
        f0 -= p0 * floor_fast(f0);
        f1 -= p1 * floor_fast(f1);
        f2 -= p2 * floor_fast(f2);
        x[i] = (float)(f0 * c[0] + f1 * c[3] + f2 * c[6]);
        y[i] = (float)(f0 * c[1] + f1 * c[4] + f2 * c[7]);
        z[i] = (float)(f0 * c[2] + f1 * c[5] + f2 * c[8]);
        edge[i] = (uint8_t)((f0 < e0) | (f0 > 1 - e0) | (f1 < e1) | (f1 > 1 - e1) | (f2 < e2) | (f2 > 1 - e2));
    }
}

/* The images of atom r (wrapped position (x, y, z)) across the periodic faces it is near. */
static void push_images(const geometry *g, const double *r, float x, float y, float z, fpoints *p)
{
    int lo[3], hi[3];
    for (int k = 0; k < 3; k++) {
        lo[k] = hi[k] = 0;
        if (!g->pbc[k]) continue;
        double f = frac_of(g, r, k);
        f -= floor(f);
        if (f < g->edge[k]) hi[k] = 1;
        else if (f > 1 - g->edge[k]) lo[k] = -1;
    }
    for (int a = lo[0]; a <= hi[0]; a++)
        for (int b = lo[1]; b <= hi[1]; b++)
            for (int c = lo[2]; c <= hi[2]; c++) {
                if (a == 0 && b == 0 && c == 0) continue;
                p->x[p->m] = x + (float)(a * g->c[0] + b * g->c[3] + c * g->c[6]);
                p->y[p->m] = y + (float)(a * g->c[1] + b * g->c[4] + c * g->c[7]);
                p->z[p->m] = z + (float)(a * g->c[2] + b * g->c[5] + c * g->c[8]);
                p->m++;
            }
}

/* How many pairs i < j are closer than sqrt(thr2); n is a multiple of 8 (padding points far
 * from everything fill the arrays up), so the inner loop is whole blocks of 8, written with
 * GCC's vector types: one AVX2 operation per block where the CPU has it, two SSE ones
 * elsewhere. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

__attribute__((target_clones("arch=x86-64-v3", "default")))
static int count_close_blocks(const float *x, const float *y, const float *z, int n, float thr2)
{
    const v8i lane = { 0, 1, 2, 3, 4, 5, 6, 7 };
    v8i acc = { 0 };
    v8f t2 = (v8f){ 0 } + thr2;
    for (int i = 0; i < n; i++) {
        v8f xi = (v8f){ 0 } + x[i], yi = (v8f){ 0 } + y[i], zi = (v8f){ 0 } + z[i];
        v8i mine = (v8i){ 0 } + i;
        for (int jb = (i + 1) & ~7; jb < n; jb += 8) {
            v8f dx, dy, dz;
            memcpy(&dx, x + jb, sizeof dx);
            memcpy(&dy, y + jb, sizeof dy);
            memcpy(&dz, z + jb, sizeof dz);
            dx -= xi;
            dy -= yi;
            dz -= zi;
            v8f d2 = dx * dx + dy * dy + dz * dz;
            acc += (d2 < t2) & (lane + jb > mine); /* -1 per close pair with j > i */
        }
    }
    int count = 0;
    for (int k = 0; k < 8; k++) count -= acc[k];
    return count;
}

typedef struct keyed { float key; int32_t index; } keyed;

static int cmp_keyed(const void *a, const void *b)
{
    float u = ((const keyed *)a)->key, v = ((const keyed *)b)->key;
    return (u > v) - (u < v);
}

/* Any pair of the points closer than sqrt(thr2)? Up to a few hundred points: all pairs,
 * vectorized. More: sorted on x, each point compared with those less than thr further on. */
static bool screen_points(fpoints *p, float thr, float thr2)
{
    int64_t m = p->m;
    if (m < 2) return false;
    if (p->cap % 8 == 0 && m <= 256) {
        int n = (int)((m + 7) & ~INT64_C(7));
        for (int64_t i = m; i < n; i++) { /* padding: far apart, far from everything */
            p->x[i] = 1e7f * (float)(i - m + 1);
            p->y[i] = p->z[i] = -1e7f;
        }
        return count_close_blocks(p->x, p->y, p->z, n, thr2) > 0;
    }
    keyed *k = malloc(sizeof *k * (size_t)m);
    if (k == NULL) return true; /* the exact search decides */
    for (int64_t i = 0; i < m; i++) k[i] = (keyed){ p->x[i], (int32_t)i };
    qsort(k, (size_t)m, sizeof *k, cmp_keyed);
    bool found = false;
    for (int64_t a = 0; a < m && !found; a++) {
        int64_t i = k[a].index;
        for (int64_t c = a + 1; c < m && k[c].key - k[a].key < thr && !found; c++) {
            int64_t j = k[c].index;
            float dx = p->x[j] - p->x[i], dy = p->y[j] - p->y[i], dz = p->z[j] - p->z[i];
            found = dx * dx + dy * dy + dz * dz < thr2;
        }
    }
    free(k);
    return found;
}

/* Whether the structure may have a pair closer than thr (false: certainly none). */
/* Whether every fractional coordinate is far below 2^31 in size (and finite), as wrap_all
 * needs: |f| <= |r|_max * sum |inv| bounds them all. */
static bool fractions_small(const geometry *g, const double *pos, int64_t n)
{
    if (!g->periodic) return true;
    double rmax = 0, inv = 0;
    for (int64_t i = 0; i < 3 * n; i++) rmax = fabs(pos[i]) > rmax ? fabs(pos[i]) : rmax;
    for (int k = 0; k < 9; k++) inv += fabs(g->inv[k]);
    return rmax * inv < 1e9; /* false for NaN too */
}

static bool screen(int64_t n, const double *pos, const geometry *g, double thr)
{
    enum { STACK = 512 };
    float sx[STACK], sy[STACK], sz[STACK];
    uint8_t sedge[STACK];
    int64_t cap = ((g->periodic ? 8 * n : n) + 7) & ~INT64_C(7); /* room for images and padding to 8 */
    fpoints p = { sx, sy, sz, 0, cap };
    uint8_t *edge = sedge;
    if (cap > STACK) {
        p.x = malloc(sizeof(float) * (size_t)cap);
        p.y = malloc(sizeof(float) * (size_t)cap);
        p.z = malloc(sizeof(float) * (size_t)cap);
        edge = malloc((size_t)cap);
    }
    bool maybe = true;
    if (p.x && p.y && p.z && edge && fractions_small(g, pos, n)) {
        wrap_all(g, pos, n, pos, p.x, p.y, p.z, edge);
        p.m = n;
        for (int64_t i = 0; i < n; i++)
            if (edge[i]) push_images(g, pos + 3 * i, p.x[i], p.y[i], p.z[i], &p);
        /* 1 % slack on the distance covers single-precision rounding many times over. */
        maybe = screen_points(&p, (float)(thr * 1.01), (float)(thr * thr * 1.0201));
    }
    if (cap > STACK) {
        free(p.x);
        free(p.y);
        free(p.z);
        free(edge);
    }
    return maybe;
}

int h5ml__close_pair(int64_t n, const double *pos, const double *cell, const uint8_t *pbc, double thr,
                     int64_t *oi, int64_t *oj, double *od)
{
    best b = { thr * thr, -1, -1 };
    geometry g;
    geometry_of(cell, pbc, thr, &g);
    if (g.periodic && g.small) {
        search_small_cell(n, pos, g.c, g.reach, &b);
    } else if (screen(n, pos, &g, thr)) {
        int64_t cap = g.periodic ? 8 * n : n, m = 0;
        point *pts = malloc(sizeof *pts * (size_t)(cap ? cap : 1));
        if (pts == NULL) return 0;
        for (int64_t i = 0; i < n; i++) m += images_of(&g, pos + 3 * i, i, pts + m);
        search(pts, m, thr, &b);
        free(pts);
    }
    if (b.i < 0) return 0;
    *oi = b.i;
    *oj = b.j;
    *od = sqrt(b.d2);
    return 1;
}
