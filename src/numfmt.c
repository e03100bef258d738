/* Number parsing and printing for the extended XYZ reader and writer.
 *
 * Parsing takes the exact fast path (Clinger): at most 19 significant digits whose value
 * fits in 53 bits and a power of ten up to 1e22 give a correctly rounded double with one
 * multiplication or division. ASE writes positions as %16.8f, which always takes this path.
 * Anything else falls back to strtod, which is correctly rounded in glibc.
 *
 * Printing gives the shortest of %.15g, %.16g, %.17g that reads back to the same double. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static int lower(int c) { return c | 0x20; }

static bool word_at(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(end - p) < n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != w[i]) return false;
    return true;
}

static const char *parse_special(const char *p, const char *end, bool neg, double *out)
{
    if (word_at(p, end, "nan")) {
        *out = neg ? -NAN : NAN;
        return p + 3;
    }
    if (word_at(p, end, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return p + 8;
    }
    if (word_at(p, end, "inf")) {
        *out = neg ? -INFINITY : INFINITY;
        return p + 3;
    }
    return NULL;
}

static const char *parse_slow(const char *start, const char *stop, double *out)
{
    char small[64];
    size_t n = (size_t)(stop - start);
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (buf == NULL) return NULL;
    memcpy(buf, start, n);
    buf[n] = 0;
    char *e;
    *out = strtod(buf, &e);
    const char *r = (e == buf + n) ? stop : NULL;
    if (buf != small) free(buf);
    return r;
}

const char *h5ml__parse_double(const char *p, const char *end, double *out)
{
    const char *start = p;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    if (p < end && (*p == 'n' || *p == 'N' || *p == 'i' || *p == 'I')) return parse_special(p, end, neg, out);
    uint64_t w = 0;
    int sig = 0, drop = 0, exp10 = 0;
    bool any = false;
    while (p < end && (unsigned)(*p - '0') < 10) {
        any = true;
        if (sig < 19) {
            if (w || *p != '0') sig++;
            w = w * 10 + (uint64_t)(*p - '0');
        } else {
            drop++;
        }
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && (unsigned)(*p - '0') < 10) {
            any = true;
            if (sig < 19) {
                if (w || *p != '0') sig++;
                w = w * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else if (*p != '0') {
                drop++; /* nonzero digit beyond 19: needs the slow path */
            }
            p++;
        }
    }
    if (!any) return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        bool eneg = false;
        if (q < end && (*q == '-' || *q == '+')) eneg = *q++ == '-';
        if (q >= end || (unsigned)(*q - '0') >= 10) return NULL;
        int e = 0;
        while (q < end && (unsigned)(*q - '0') < 10) {
            if (e < 100000) e = e * 10 + (*q - '0');
            q++;
        }
        exp10 += eneg ? -e : e;
        p = q;
    }
    if (drop == 0 && w <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)w;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        *out = neg ? -v : v;
        return p;
    }
    return parse_slow(start, p, out);
}

const char *h5ml__parse_int(const char *p, const char *end, int64_t *out)
{
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    if (p >= end || (unsigned)(*p - '0') >= 10) return NULL;
    uint64_t v = 0;
    while (p < end && (unsigned)(*p - '0') < 10) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_C(9223372036854775808) - d) / 10) return NULL; /* overflow */
        v = v * 10 + d;
        p++;
    }
    if (!neg && v > INT64_MAX) return NULL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return p;
}

int h5ml__fmt_double(char *out, double v)
{
    if (isnan(v)) return (int)(strcpy(out, "nan"), 3);
    if (isinf(v)) return v < 0 ? (int)(strcpy(out, "-inf"), 4) : (int)(strcpy(out, "inf"), 3);
    int n = 0;
    /* Up to 15 digits, %.15g already drops what is not needed; subnormals have fewer. */
    for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v) break;
    }
    if (strpbrk(out, ".en") == NULL) { /* "3" -> "3.0": stays a float for readers */
        out[n++] = '.';
        out[n++] = '0';
        out[n] = 0;
    }
    return n;
}

int h5ml__fmt_float(char *out, float v) { return h5ml__fmt_double(out, (double)v); }
