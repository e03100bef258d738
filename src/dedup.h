/* Deduplication of the atomistic writer (h5ml.h, section 2, H5ML_OPT_DEDUP): the hash of a
 * structure's geometry and an open-addressing table of (hash, structure index). The table
 * only proposes candidates; the writer compares their bytes before skipping anything. */
#ifndef H5ML_DEDUP_H
#define H5ML_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A structure's geometry as stored: cell never NULL (zeros), pbc flags 0 or 1. */
typedef struct dedup_key {
    int64_t natoms;
    const int64_t *numbers;
    const double *positions;
    const double *cell;
    const int8_t *pbc;
} dedup_key;

typedef struct dedup_slot {
    uint64_t hash;
    int64_t index1; /* structure index + 1; 0 = empty */
} dedup_slot;

typedef struct dedup_table {
    dedup_slot *slot;
    uint64_t cap;   /* a power of two, or 0 */
    int64_t count;
} dedup_table;

/* Test hook: the hash is ANDed with this (all ones normally; tests force collisions by
 * setting it to a few bits). Set it only while no writer runs. */
extern uint64_t h5ml__dedup_hash_mask;

/* 64-bit hash (XXH64 of the parts in turn) of the key. Thread-safe. */
uint64_t h5ml__dedup_hash(const dedup_key *k);
/* Whether the two keys are equal byte for byte. */
bool h5ml__dedup_equal(const dedup_key *a, const dedup_key *b);
/* Room for `count` entries in all (the table stays at most half full). Returns 0 or -1. */
int h5ml__dedup_reserve(dedup_table *t, int64_t count);
/* Adds (hash, index); h5ml__dedup_reserve(t, t->count + 1) first. */
void h5ml__dedup_insert(dedup_table *t, uint64_t hash, int64_t index);
/* The candidates of `hash` one by one: *pos starts at 0; returns the next structure index
 * whose hash is `hash`, or -1 when there are no more. */
int64_t h5ml__dedup_next(const dedup_table *t, uint64_t hash, uint64_t *pos);
void h5ml__dedup_free(dedup_table *t);

#endif
