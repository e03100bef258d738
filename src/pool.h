/* Encoder thread pool (pool.c). */
#ifndef H5ML_POOL_H
#define H5ML_POOL_H

#include "chunkcol.h"

typedef struct h5ml_pool h5ml_pool;

/* One chunk to filter. The slot's buffers (raw, out) stay with the slot and are reused; the
 * compressors and the shuffle buffer belong to the thread that runs the job (`s`). */
typedef struct h5ml_job {
    void (*run)(struct h5ml_job *, scratch *s);
    column *col;
    int64_t base;            /* first row of the chunk */
    unsigned char *raw;      /* chunk bytes (swapped with the column's buffer) */
    size_t raw_cap;
    size_t full;             /* chunk size in bytes */
    unsigned char *kept;     /* the filtered bytes, traded for the thread's buffer (s->b) */
    size_t kept_cap;
    const void *out;         /* result: bytes to store, their size and filter mask */
    size_t out_n;
    uint32_t mask;
    bool failed;
    bool disk_known;         /* what the file holds at `base` before this write */
    size_t disk_size;
    uint32_t disk_mask;
} h5ml_job;

int h5ml__default_threads(void);
/* A pool for `threads` encoding threads, the caller among them (it encodes while it waits):
 * threads - 1 workers, at least one. */
h5ml_pool *h5ml__pool_new(int threads);
void h5ml__pool_free(h5ml_pool *p);
/* The next free slot, or NULL when every slot is in flight (retire finished jobs first). */
h5ml_job *h5ml__pool_slot(h5ml_pool *p);
/* Queues the job filled into the slot returned by h5ml__pool_slot. */
void h5ml__pool_submit(h5ml_pool *p);
/* The oldest job if it is done (waiting for it if `wait`), else NULL; retire it after use. */
h5ml_job *h5ml__pool_next(h5ml_pool *p, bool wait);
void h5ml__pool_retire(h5ml_pool *p);
int64_t h5ml__pool_pending(h5ml_pool *p);
void h5ml__job_release(h5ml_job *j);

#endif
