/* Deduplication helpers (see dedup.h): XXH64 and the table. */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

uint64_t h5ml__dedup_hash_mask = ~UINT64_C(0);

/* ---- XXH64 (Yann Collet's xxHash, 64-bit variant): fast, and good enough that equal
 * hashes of different structures are rare; the writer compares bytes anyway. ---- */

static const uint64_t P1 = UINT64_C(0x9E3779B185EBCA87), P2 = UINT64_C(0xC2B2AE3D27D4EB4F),
                      P3 = UINT64_C(0x165667B19E3779F9), P4 = UINT64_C(0x85EBCA77C2B2AE63),
                      P5 = UINT64_C(0x27D4EB2F165667C5);

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t read32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }

static inline uint64_t xmerge(uint64_t acc, uint64_t v) { return (acc ^ xround(0, v)) * P1 + P4; }

static uint64_t xxh64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; p + 32 <= end; p += 32) {
            v1 = xround(v1, read64(p));
            v2 = xround(v2, read64(p + 8));
            v3 = xround(v3, read64(p + 16));
            v4 = xround(v4, read64(p + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) h = rotl(h ^ xround(0, read64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ read32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) h = rotl(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

uint64_t h5ml__dedup_hash(const dedup_key *k)
{
    size_t n = (size_t)k->natoms;
    uint64_t h = xxh64(k->numbers, n * sizeof *k->numbers, (uint64_t)k->natoms);
    h = xxh64(k->positions, 3 * n * sizeof *k->positions, h);
    h = xxh64(k->cell, 9 * sizeof *k->cell, h);
    return xxh64(k->pbc, 3, h) & h5ml__dedup_hash_mask;
}

bool h5ml__dedup_equal(const dedup_key *a, const dedup_key *b)
{
    size_t n = (size_t)a->natoms;
    return a->natoms == b->natoms && memcmp(a->pbc, b->pbc, 3) == 0 && memcmp(a->cell, b->cell, 9 * sizeof *a->cell) == 0 &&
           (n == 0 || (memcmp(a->numbers, b->numbers, n * sizeof *a->numbers) == 0 &&
                       memcmp(a->positions, b->positions, 3 * n * sizeof *a->positions) == 0));
}

/* ---- the table: linear probing, at most half full ---- */

int h5ml__dedup_reserve(dedup_table *t, int64_t count)
{
    if ((uint64_t)count * 2 <= t->cap) return 0;
    uint64_t cap = t->cap ? t->cap : 1024;
    while (cap < (uint64_t)count * 2) cap *= 2;
    dedup_slot *slot = calloc((size_t)cap, sizeof *slot);
    if (slot == NULL) return -1;
    for (uint64_t i = 0; i < t->cap; i++) {
        if (t->slot[i].index1 == 0) continue;
        uint64_t at = t->slot[i].hash & (cap - 1);
        while (slot[at].index1) at = (at + 1) & (cap - 1);
        slot[at] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

void h5ml__dedup_insert(dedup_table *t, uint64_t hash, int64_t index)
{
    uint64_t at = hash & (t->cap - 1);
    while (t->slot[at].index1) at = (at + 1) & (t->cap - 1);
    t->slot[at] = (dedup_slot){ hash, index + 1 };
    t->count++;
}

int64_t h5ml__dedup_next(const dedup_table *t, uint64_t hash, uint64_t *pos)
{
    if (t->cap == 0) return -1;
    for (;;) {
        const dedup_slot *s = &t->slot[(hash + (*pos)++) & (t->cap - 1)];
        if (s->index1 == 0) return -1;
        if (s->hash == hash) return s->index1 - 1;
    }
}

void h5ml__dedup_free(dedup_table *t)
{
    free(t->slot);
    memset(t, 0, sizeof *t);
}
