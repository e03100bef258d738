/* The library's PRNG: xoshiro256** (Blackman & Vigna) seeded through splitmix64. Seeds,
 * splits and generated signals depend only on these integer streams, so they are written
 * out here exactly enough for another implementation (e.g. Python with explicit 64-bit
 * masking) to reproduce them bit for bit. All arithmetic is modulo 2^64.
 *
 *   mix64(z):   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *               z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *               return z ^ (z >> 31)
 *   splitmix64 stream from state x: x += G (G = 0x9E3779B97F4A7C15); output mix64(x)
 *
 *   rng_seed(seed):    s[0..3] = the first four splitmix64 outputs from state x = seed,
 *                      i.e. s[i] = mix64(seed + (i + 1) * G)
 *   rng_derive(seed, k) = mix64(mix64(seed + G) ^ mix64(k + 2 * G))
 *                      (distinct k give distinct seeds, since mix64 is a bijection)
 *   rng_next:          xoshiro256**: result = rotl(s[1] * 5, 7) * 9;
 *                      t = s[1] << 17; s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2];
 *                      s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
 *   rng_uniform:       (next >> 11) * 2^-53
 *   rng_range(lo, hi): lo + (hi - lo) * uniform
 *   rng_below(n):      Lemire: m = next * n (128-bit product); if low64(m) < n, with
 *                      t = (2^64 - n) mod n, draw again while low64(m) < t; return m >> 64
 *   rng_normal:        Box-Muller, cosine branch only (two draws per value, no cached spare):
 *                      u1 = uniform, u2 = uniform; sqrt(-2 ln(1 - u1)) * cos(2 pi u2)
 *   rng_shuffle:       Fisher-Yates from the end: for i = n-1 down to 1,
 *                      j = below(i + 1), swap v[i] and v[j] */
#include "signals_priv.h"

#include <math.h>

/* lo + (hi - lo) * u must round the product on its own on every machine. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void h5ml__rng_seed(h5ml_rng *r, uint64_t seed)
{
    /* mix64 is a bijection, so four distinct inputs never give the all-zero state that
     * xoshiro cannot leave. */
    for (int i = 0; i < 4; i++) r->s[i] = mix64(seed + (uint64_t)(i + 1) * GOLDEN);
}

uint64_t h5ml__rng_derive(uint64_t seed, uint64_t k)
{
    return mix64(mix64(seed + GOLDEN) ^ mix64(k + 2 * GOLDEN));
}

uint64_t h5ml__rng_next(h5ml_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double h5ml__rng_uniform(h5ml_rng *r)
{
    return (double)(h5ml__rng_next(r) >> 11) * 0x1.0p-53;
}

double h5ml__rng_range(h5ml_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * h5ml__rng_uniform(r);
}

/* 64 x 64 -> 128-bit product without relying on a 128-bit integer type. */
static void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

uint64_t h5ml__rng_below(h5ml_rng *r, uint64_t n)
{
    uint64_t hi, lo;
    mul128(h5ml__rng_next(r), n, &hi, &lo);
    if (lo < n) {
        /* Products whose low half falls below 2^64 mod n would over-represent some
         * results: reject them. */
        uint64_t threshold = (0 - n) % n;
        while (lo < threshold) mul128(h5ml__rng_next(r), n, &hi, &lo);
    }
    return hi;
}

double h5ml__rng_normal(h5ml_rng *r)
{
    /* 1 - u1 lies in (0, 1], so the logarithm is finite. */
    double u1 = h5ml__rng_uniform(r), u2 = h5ml__rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

void h5ml__rng_shuffle_i64(h5ml_rng *r, int64_t *v, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)h5ml__rng_below(r, (uint64_t)i + 1);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}
