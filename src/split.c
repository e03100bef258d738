/* Train/val/test assignment. Integer-exact given the seed (the only floating-point values
 * are products n * ratio and their differences with integers, each exactly rounded), so a
 * seed gives the same assignment on every machine. The algorithm, step by step:
 *
 * 1. Ratios: each finite and >= 0, sum within 1e-6 of 1; then divided by their sum.
 * 2. Global sizes G[s]: largest remainder of n * r[s] (floors, then one more sample to the
 *    largest fractional parts among splits with r > 0; ties to the lower split index).
 *    So |G[s] - n * r[s]| < 1.
 * Not stratified:
 * 3. v = 0..n-1 shuffled (rng_seed(seed), rng_shuffle); train = the first G[0], val the
 *    next G[1], test the rest, in that shuffled order.
 * Stratified:
 * 3. Classes are the distinct labels in ascending order; class c has n_c samples.
 *    The minimum l[c][s] is 1 when n_c >= 3 and r[s] > 0, else 0; m[s] = sum_c l[c][s].
 * 4. If some G[s] < m[s] (many small classes and a small ratio: then "within one sample"
 *    and "one sample per class" cannot both hold, and the minimum wins), G[s] is raised to
 *    m[s] one sample at a time, each taken from the split t != s with G[t] > m[t] whose
 *    G[t] - n * r[t] is largest (ties: lower t).
 * 5. Per-class counts a[c][s], split by split in index order; the last split with r > 0
 *    takes what remains of each class. For the others: x_c = n_c * r[s], bounds
 *    lo = l[c][s] and hi = (samples of c not yet assigned) - sum_{t>s} l[c][t];
 *    start at a = clamp(floor(x_c), lo, hi), then while the column sum is below G[s] add
 *    one to the class with a < hi and the largest x_c - a (ties: lower label), and while
 *    above, remove one from the class with a > lo and the smallest x_c - a (ties: lower
 *    label). The bounds always leave a feasible choice, so every column hits G[s] exactly.
 * 6. Each class's indices, ascending, are shuffled with rng_seed(rng_derive(seed, label));
 *    the first a[c][0] go to train, the next a[c][1] to val, the rest to test.
 * 7. Each split concatenates its classes' picks in ascending label order, then is shuffled
 *    with rng_seed(rng_derive(seed, 1000 + s)), so classes are interleaved. */
#include "signals_priv.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every product n * ratio must be rounded on its own, or fused multiply-adds on some
 * machines (compilers may fuse a * b + c by default) could change a comparison and with
 * it the assignment. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static const char *const split_names[3] = {"train", "val", "test"};

static int check_ratios(const double ratios[3], double r[3], char *msg, size_t msglen)
{
    for (int s = 0; s < 3; s++) {
        if (!isfinite(ratios[s])) {
            snprintf(msg, msglen, "split ratio for %s is not a finite number (got %g)", split_names[s], ratios[s]);
            return H5ML_ERR_VALUE;
        }
        if (ratios[s] < 0) {
            snprintf(msg, msglen, "split ratio for %s must be >= 0 (got %g)", split_names[s], ratios[s]);
            return H5ML_ERR_VALUE;
        }
    }
    double sum = ratios[0] + ratios[1] + ratios[2];
    if (fabs(sum - 1.0) > 1e-6) {
        snprintf(msg, msglen, "split ratios must sum to 1 (got %g + %g + %g = %g)", ratios[0], ratios[1],
                 ratios[2], sum);
        return H5ML_ERR_VALUE;
    }
    for (int s = 0; s < 3; s++) r[s] = ratios[s] / sum;
    return H5ML_OK;
}

/* g[s]: largest-remainder rounding of x[s] = n * r[s] (both out). */
static void global_sizes(int64_t n, const double r[3], double x[3], int64_t g[3])
{
    double frac[3];
    int64_t total = 0;
    for (int s = 0; s < 3; s++) {
        x[s] = (double)n * r[s];
        g[s] = (int64_t)floor(x[s]);
        frac[s] = x[s] - (double)g[s];
        total += g[s];
    }
    /* The floors fall short of n by the sum of the fractional parts: at most two. */
    while (total < n) {
        int best = -1;
        for (int s = 0; s < 3; s++)
            if (r[s] > 0 && frac[s] >= 0 && (best < 0 || frac[s] > frac[best])) best = s;
        if (best < 0) break;
        g[best]++;
        frac[best] = -1; /* one extra per split */
        total++;
    }
    for (int s = 0; total != n; s = (s + 1) % 3)
        if (r[s] > 0) { /* only reachable through extreme rounding: keep the sum exact */
            int64_t d = total < n ? 1 : -1;
            if (g[s] + d >= 0) { g[s] += d; total += d; }
        }
}

static int64_t *alloc_i64(int64_t n)
{
    return malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
}

static int shuffled_plain(int64_t n, uint64_t seed, const int64_t g[3], int64_t *order[3])
{
    int64_t *v = alloc_i64(n);
    if (!v) return H5ML_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) v[i] = i;
    h5ml_rng rng;
    h5ml__rng_seed(&rng, seed);
    h5ml__rng_shuffle_i64(&rng, v, n);
    int64_t at = 0;
    for (int s = 0; s < 3; s++) {
        order[s] = alloc_i64(g[s]);
        if (!order[s]) { free(v); return H5ML_ERR_NOMEM; }
        memcpy(order[s], v + at, (size_t)g[s] * sizeof *v);
        at += g[s];
    }
    free(v);
    return H5ML_OK;
}

/* ---- stratified ---- */

typedef struct labeled { int64_t label, index; } labeled;

static int cmp_labeled(const void *a, const void *b)
{
    const labeled *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct strata {
    labeled *items;     /* sorted by (label, index)                  */
    int64_t nclasses;
    int64_t *start;     /* class c: items[start[c] .. start[c + 1]) */
    int64_t (*alloc)[3];/* a[c][s]                                   */
} strata;

static void strata_free(strata *st)
{
    free(st->items);
    free(st->start);
    free(st->alloc);
}

static int64_t class_size(const strata *st, int64_t c) { return st->start[c + 1] - st->start[c]; }

static int64_t class_min(const strata *st, int64_t c, const double r[3], int s)
{
    return class_size(st, c) >= 3 && r[s] > 0 ? 1 : 0;
}

static int group_by_label(const int64_t *labels, int64_t n, strata *st, char *msg, size_t msglen)
{
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0) {
            snprintf(msg, msglen, "label of sample %" PRId64 " is negative (%" PRId64 "); stratified splits need labels >= 0",
                     i, labels[i]);
            return H5ML_ERR_VALUE;
        }
    st->items = malloc((size_t)n * sizeof *st->items);
    if (!st->items) return H5ML_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) st->items[i] = (labeled){labels[i], i};
    qsort(st->items, (size_t)n, sizeof *st->items, cmp_labeled);
    int64_t nc = 0;
    for (int64_t i = 0; i < n; i++) nc += i == 0 || st->items[i].label != st->items[i - 1].label;
    st->nclasses = nc;
    st->start = malloc((size_t)(nc + 1) * sizeof *st->start);
    st->alloc = calloc((size_t)nc, sizeof *st->alloc);
    if (!st->start || !st->alloc) return H5ML_ERR_NOMEM;
    for (int64_t i = 0, c = 0; i < n; i++)
        if (i == 0 || st->items[i].label != st->items[i - 1].label) st->start[c++] = i;
    st->start[nc] = n;
    return H5ML_OK;
}

/* Step 4: the minimums win over "within one sample" when both cannot hold. */
static void raise_to_minimums(const strata *st, const double r[3], const double x[3], int64_t g[3])
{
    int64_t m[3] = {0, 0, 0};
    for (int64_t c = 0; c < st->nclasses; c++)
        for (int s = 0; s < 3; s++) m[s] += class_min(st, c, r, s);
    for (int s = 0; s < 3; s++)
        while (g[s] < m[s]) {
            int donor = -1;
            double over = 0;
            for (int t = 0; t < 3; t++) {
                if (t == s || g[t] <= m[t]) continue;
                double o = (double)g[t] - x[t];
                if (donor < 0 || o > over) { donor = t; over = o; }
            }
            if (donor < 0) return; /* impossible: sum of m <= n since classes with mins have >= 3 */
            g[donor]--;
            g[s]++;
        }
}

/* A max-heap of class indices by (sign * (x_c - a_c), then lower c). */
typedef struct apportion {
    const double *x;
    int64_t *a;
    double sign;
    int64_t *heap;
    int64_t size;
} apportion;

static int better(const apportion *ap, int64_t i, int64_t j)
{
    double ki = ap->sign * (ap->x[i] - (double)ap->a[i]), kj = ap->sign * (ap->x[j] - (double)ap->a[j]);
    return ki > kj || (ki == kj && i < j);
}

static void heap_sift_down(apportion *ap, int64_t k)
{
    for (;;) {
        int64_t l = 2 * k + 1, r = l + 1, top = k;
        if (l < ap->size && better(ap, ap->heap[l], ap->heap[top])) top = l;
        if (r < ap->size && better(ap, ap->heap[r], ap->heap[top])) top = r;
        if (top == k) return;
        int64_t t = ap->heap[k];
        ap->heap[k] = ap->heap[top];
        ap->heap[top] = t;
        k = top;
    }
}

/* Moves `steps` samples one at a time (step 5): each to (sign > 0) or from (sign < 0) the
 * eligible class that is furthest below (above) its target x_c. */
static void apportion_steps(apportion *ap, const int64_t *lo, const int64_t *hi, int64_t nc, int64_t steps)
{
    ap->size = 0;
    for (int64_t c = 0; c < nc; c++)
        if (ap->sign > 0 ? ap->a[c] < hi[c] : ap->a[c] > lo[c]) ap->heap[ap->size++] = c;
    for (int64_t k = ap->size / 2 - 1; k >= 0; k--) heap_sift_down(ap, k);
    while (steps-- > 0 && ap->size > 0) {
        int64_t c = ap->heap[0];
        ap->a[c] += ap->sign > 0 ? 1 : -1;
        if (ap->sign > 0 ? ap->a[c] >= hi[c] : ap->a[c] <= lo[c]) ap->heap[0] = ap->heap[--ap->size];
        heap_sift_down(ap, 0);
    }
}

static int allocate_column(strata *st, const double r[3], int s, int64_t target, int64_t *avail)
{
    int64_t nc = st->nclasses;
    double *x = malloc((size_t)nc * sizeof *x);
    int64_t *a = malloc((size_t)nc * sizeof *a), *lo = malloc((size_t)nc * sizeof *lo);
    int64_t *hi = malloc((size_t)nc * sizeof *hi), *heap = malloc((size_t)nc * sizeof *heap);
    int rc = H5ML_ERR_NOMEM;
    if (!x || !a || !lo || !hi || !heap) goto done;
    int64_t sum = 0;
    for (int64_t c = 0; c < nc; c++) {
        x[c] = (double)class_size(st, c) * r[s];
        lo[c] = class_min(st, c, r, s);
        hi[c] = avail[c];
        for (int t = s + 1; t < 3; t++) hi[c] -= class_min(st, c, r, t);
        int64_t f = (int64_t)floor(x[c]);
        a[c] = f < lo[c] ? lo[c] : f > hi[c] ? hi[c] : f;
        sum += a[c];
    }
    apportion ap = {x, a, sum < target ? 1.0 : -1.0, heap, 0};
    apportion_steps(&ap, lo, hi, nc, sum < target ? target - sum : sum - target);
    for (int64_t c = 0; c < nc; c++) {
        st->alloc[c][s] = a[c];
        avail[c] -= a[c];
    }
    rc = H5ML_OK;
done:
    free(x);
    free(a);
    free(lo);
    free(hi);
    free(heap);
    return rc;
}

static int allocate_classes(strata *st, const double r[3], const int64_t g[3])
{
    int last = -1;
    for (int s = 0; s < 3; s++)
        if (r[s] > 0) last = s;
    int64_t *avail = malloc((size_t)st->nclasses * sizeof *avail);
    if (!avail) return H5ML_ERR_NOMEM;
    for (int64_t c = 0; c < st->nclasses; c++) avail[c] = class_size(st, c);
    for (int s = 0; s < last; s++) {
        if (r[s] == 0) continue; /* calloc'd zeros */
        int rc = allocate_column(st, r, s, g[s], avail);
        if (rc) { free(avail); return rc; }
    }
    for (int64_t c = 0; c < st->nclasses; c++) st->alloc[c][last] = avail[c];
    free(avail);
    return H5ML_OK;
}

static int distribute(const strata *st, uint64_t seed, const int64_t g[3], int64_t *order[3])
{
    int64_t fill[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++)
        if (!(order[s] = alloc_i64(g[s]))) return H5ML_ERR_NOMEM;
    int64_t maxc = 0;
    for (int64_t c = 0; c < st->nclasses; c++)
        if (class_size(st, c) > maxc) maxc = class_size(st, c);
    int64_t *v = alloc_i64(maxc);
    if (!v) return H5ML_ERR_NOMEM;
    for (int64_t c = 0; c < st->nclasses; c++) {
        int64_t nc = class_size(st, c), at = 0;
        for (int64_t i = 0; i < nc; i++) v[i] = st->items[st->start[c] + i].index;
        h5ml_rng rng;
        h5ml__rng_seed(&rng, h5ml__rng_derive(seed, (uint64_t)st->items[st->start[c]].label));
        h5ml__rng_shuffle_i64(&rng, v, nc);
        for (int s = 0; s < 3; s++) {
            memcpy(order[s] + fill[s], v + at, (size_t)st->alloc[c][s] * sizeof *v);
            fill[s] += st->alloc[c][s];
            at += st->alloc[c][s];
        }
    }
    free(v);
    for (int s = 0; s < 3; s++) {
        h5ml_rng rng;
        h5ml__rng_seed(&rng, h5ml__rng_derive(seed, 1000 + (uint64_t)s));
        h5ml__rng_shuffle_i64(&rng, order[s], g[s]);
    }
    return H5ML_OK;
}

static int stratified(const int64_t *labels, int64_t n, const double r[3], const double x[3], uint64_t seed,
                      int64_t g[3], int64_t *order[3], char *msg, size_t msglen)
{
    strata st = {0};
    int rc = group_by_label(labels, n, &st, msg, msglen);
    if (rc == H5ML_OK) {
        raise_to_minimums(&st, r, x, g);
        rc = allocate_classes(&st, r, g);
    }
    if (rc == H5ML_OK) rc = distribute(&st, seed, g, order);
    strata_free(&st);
    return rc;
}

int h5ml__split_assign(const int64_t *labels, int64_t n, const double ratios[3], int stratify, uint64_t seed,
                       int64_t *order[3], int64_t count[3], char *msg, size_t msglen)
{
    for (int s = 0; s < 3; s++) { order[s] = NULL; count[s] = 0; }
    if (msglen) msg[0] = 0;
    double r[3];
    int rc = check_ratios(ratios, r, msg, msglen);
    if (rc) return rc;
    if (n == 0) {
        snprintf(msg, msglen, "no samples to split");
        return H5ML_ERR_VALUE;
    }
    if (n < 0) {
        snprintf(msg, msglen, "negative number of samples (%" PRId64 ")", n);
        return H5ML_ERR_VALUE;
    }
    if (stratify && !labels) {
        snprintf(msg, msglen, "a stratified split needs labels");
        return H5ML_ERR_ARG;
    }
    int64_t g[3];
    double x[3];
    global_sizes(n, r, x, g);
    rc = stratify ? stratified(labels, n, r, x, seed, g, order, msg, msglen) : shuffled_plain(n, seed, g, order);
    if (rc) {
        if (rc == H5ML_ERR_NOMEM) snprintf(msg, msglen, "out of memory assigning %" PRId64 " samples to splits", n);
        for (int s = 0; s < 3; s++) { free(order[s]); order[s] = NULL; }
        return rc;
    }
    for (int s = 0; s < 3; s++) count[s] = g[s];
    return H5ML_OK;
}
