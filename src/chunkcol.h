/* A column: one resizable dataset written a whole chunk at a time. Rows are appended into a
 * chunk-sized buffer; a full buffer is filtered (shuffle, deflate or LZF, exactly as HDF5's
 * and h5py's filters would) and handed to HDF5 with H5Dwrite_chunk. A partial last chunk is
 * written at checkpoints and rewritten when it fills. In SWMR mode HDF5 never frees the old
 * space of a rewritten chunk whose size changed, so after its first partial write a chunk is
 * stored unfiltered at full size until it fills (same size, so HDF5 rewrites it in place)
 * once the filtered versions written so far add up to a raw chunk: the space lost per chunk
 * stays below two raw chunks however often checkpoints come, and is just the small filtered
 * versions when they are few. Datasets whose filters or types h5ml
 * does not produce itself (files from other tools) go through H5Dwrite instead. */
#ifndef H5ML_CHUNKCOL_H
#define H5ML_CHUNKCOL_H

#include "internal.h"

typedef enum { PIPE_NONE, PIPE_GZIP, PIPE_LZF } pipe_codec;

typedef struct pipeline {
    pipe_codec codec;
    int level;      /* gzip level */
    bool shuffle;
    int nfilters;   /* filters in the dataset's pipeline (for the skip mask) */
} pipeline;

/* The pipeline of a compression profile (h5ml_profile, 0 = default) with the explicitly set
 * parts over it: compression (h5ml_compression), gzip level, shuffle (1 on, -1 off); 0
 * leaves a part to the profile (profile.c; the precedence rule of h5ml.h, section 2). */
void h5ml__pipeline_resolve(pipeline *p, int64_t profile, int64_t compression, int64_t level, int64_t shuffle);

typedef struct column {
    hid_t dset;
    hid_t memtype;         /* type of the rows in `buf` */
    size_t elem;           /* bytes per element */
    size_t row_bytes;
    int rank;
    hsize_t row_shape[2];  /* trailing dims */
    int64_t chunk_rows;
    unsigned char *buf;    /* one chunk */
    size_t buf_cap;
    int64_t base;          /* first row held in buf (multiple of chunk_rows) */
    int64_t nbuf;          /* rows in buf */
    int64_t nbuf_on_disk;  /* rows of buf already in the file (partial chunk written) */
    int64_t extent;        /* current dataset extent */
    size_t partial_bytes;  /* filtered bytes written for incomplete versions of this chunk */
    bool partial_raw;      /* the incomplete chunk is stored unfiltered (rewritten in place) */
    bool disk_known;       /* the chunk at `base` exists in the file with this size and mask */
    size_t disk_size;
    uint32_t disk_mask;
    bool direct;           /* H5Dwrite_chunk with h5ml's own filtering */
    pipeline pipe;
} column;

typedef struct scratch {
    unsigned char *a, *b;
    size_t cap_a, cap_b;
    struct libdeflate_compressor *deflate; /* for deflate_level */
    struct libdeflate_compressor *probe;   /* level 1, for the noise test */
    int deflate_level;
} scratch;

struct h5ml_pool;

/* Where full chunks go: filtered on the pool's threads when there is a pool, else here. */
typedef struct colsink {
    scratch s;
    struct h5ml_pool *pool;
} colsink;

/* HDF5's shuffle filter and its inverse (n bytes of elem-byte elements). */
void h5ml__shuffle(const unsigned char *src, unsigned char *dst, size_t n, size_t elem);
void h5ml__unshuffle(const unsigned char *src, unsigned char *dst, size_t n, size_t elem);

/* Reads the dataset's layout and filters; returns 0 or -1 (not chunked / not resizable). */
int h5ml__col_attach(column *c, hid_t dset, hid_t memtype, int64_t rows, char *why, size_t whylen);
/* Appends `n` rows from `src` (row_bytes each). */
int h5ml__col_append(column *c, colsink *k, const void *src, int64_t n);
/* Appends `n` rows that fill(ctx, first, count, dst) writes straight into the column's
 * buffer, `count` rows from row `first` of the n at a time. */
typedef void (*h5ml_col_fill)(const void *ctx, int64_t first, int64_t count, void *dst);
int h5ml__col_append_fill(column *c, colsink *k, int64_t n, h5ml_col_fill fill, const void *ctx);
/* Writes every chunk handed to the pool (waiting for the ones still being filtered). */
int h5ml__sink_drain(colsink *k);
void h5ml__sink_free(colsink *k);
/* Writes the partial chunk (if any rows are not yet in the file; with a pool, hands it over:
 * h5ml__sink_drain then completes the write). `final`: the last write of this session,
 * always filtered. */
int h5ml__col_flush(column *c, colsink *k, bool final);
/* Reads rows [start, start+count) as appended so far into dst (row_bytes each, memtype):
 * rows from `base` on from the buffer, earlier ones from the file after the chunks the pool
 * still holds are written (those chunks are complete, never rewritten, so HDF5's chunk
 * cache cannot hold a stale copy of them). Returns 0 or -1. */
int h5ml__col_read(column *c, colsink *k, int64_t start, int64_t count, void *dst);
/* Cuts dataset d back to dims (first dimension smaller), keeping its new edge chunk intact
 * (see chunkcol.c on HDF5 1.10's filter mask). Returns 0 or -1. */
int h5ml__shrink_dataset(hid_t d, const hsize_t *dims);
/* Sets the extent to exactly `rows` (growing only; callers shrink with h5ml__shrink_dataset). */
int h5ml__col_set_extent(column *c, int64_t rows);
void h5ml__col_free(column *c);
void h5ml__scratch_free(scratch *s);
/* Filters `n` bytes of `src` as `p` describes; returns the bytes to store (in s or src),
 * the size and the HDF5 filter mask. Output that is not smaller than the input is replaced
 * by the input with every filter marked skipped, unless `keep` asks for the filtered bytes. */
const void *h5ml__pipe_encode(const pipeline *p, size_t elem, const void *src, size_t n, scratch *s,
                              size_t *out_n, uint32_t *mask, bool keep);

#endif
