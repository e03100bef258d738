/* The chunk pipeline of the writer (see chunkcol.h). */
#include "chunkcol.h"
#include "pool.h"

#include <libdeflate.h>
#include <liblzf/lzf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(unsigned char **p, size_t *cap, size_t n)
{
    if (*cap >= n) return 0;
    unsigned char *q = realloc(*p, n);
    if (q == NULL) return -1;
    *p = q;
    *cap = n;
    return 0;
}

void h5ml__scratch_free(scratch *s)
{
    free(s->a);
    free(s->b);
    if (s->deflate) libdeflate_free_compressor(s->deflate);
    if (s->probe) libdeflate_free_compressor(s->probe);
    memset(s, 0, sizeof *s);
}

/* HDF5's shuffle: byte k of every element, then byte k+1, ... Four- and eight-byte elements
 * (float32, float64, int64: nearly everything written) go through one pass that reads each
 * element once and writes every plane, which the compiler vectorizes. */
__attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
static void shuffle4(const unsigned char *restrict s, unsigned char *restrict d, size_t count)
{
    unsigned char *d0 = d, *d1 = d + count, *d2 = d + 2 * count, *d3 = d + 3 * count;
    for (size_t i = 0; i < count; i++) {
        d0[i] = s[4 * i];
        d1[i] = s[4 * i + 1];
        d2[i] = s[4 * i + 2];
        d3[i] = s[4 * i + 3];
    }
}

__attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
static void shuffle8(const unsigned char *restrict s, unsigned char *restrict d, size_t count)
{
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < 8; k++) d[k * count + i] = s[8 * i + k];
}

__attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
static void unshuffle4(const unsigned char *restrict s, unsigned char *restrict d, size_t count)
{
    const unsigned char *s0 = s, *s1 = s + count, *s2 = s + 2 * count, *s3 = s + 3 * count;
    for (size_t i = 0; i < count; i++) {
        d[4 * i] = s0[i];
        d[4 * i + 1] = s1[i];
        d[4 * i + 2] = s2[i];
        d[4 * i + 3] = s3[i];
    }
}

__attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
static void unshuffle8(const unsigned char *restrict s, unsigned char *restrict d, size_t count)
{
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < 8; k++) d[8 * i + k] = s[k * count + i];
}

void h5ml__shuffle(const unsigned char *src, unsigned char *dst, size_t n, size_t elem)
{
    size_t count = n / elem;
    if (elem == 4) shuffle4(src, dst, count);
    else if (elem == 8) shuffle8(src, dst, count);
    else
        for (size_t k = 0; k < elem; k++) {
            unsigned char *d = dst + k * count;
            const unsigned char *s = src + k;
            for (size_t i = 0; i < count; i++) d[i] = s[i * elem];
        }
    memcpy(dst + count * elem, src + count * elem, n - count * elem);
}

void h5ml__unshuffle(const unsigned char *src, unsigned char *dst, size_t n, size_t elem)
{
    size_t count = n / elem;
    if (elem == 4) unshuffle4(src, dst, count);
    else if (elem == 8) unshuffle8(src, dst, count);
    else
        for (size_t k = 0; k < elem; k++) {
            const unsigned char *s = src + k * count;
            for (size_t i = 0; i < count; i++) dst[i * elem + k] = s[i];
        }
    memcpy(dst + count * elem, src + count * elem, n - count * elem);
}

/* ---- deflate ----------------------------------------------------------------------------
 * libdeflate writes the zlib format of HDF5's deflate filter (any inflater reads it) at about
 * twice zlib's speed for the same level and size. After the shuffle filter a chunk is byte
 * planes, and in floating-point data the low-order planes come first and are noise that
 * deflate cannot shrink but spends most of its time on. Such a leading run of planes is put
 * in deflate's stored blocks (a standard part of the format) and only the rest compressed:
 * the same zlib stream in meaning, within a fraction of a percent in size, in half the time.
 * A plane counts as noise when libdeflate's fastest level cannot shrink any of four 2 KiB
 * windows of it (first, last, and evenly between) by 1 %: that sees a flat byte histogram,
 * repeats within a window, and the zero tail of a partial chunk. */

static struct libdeflate_compressor *compressor(scratch *s, int level)
{
    if (s->deflate == NULL || s->deflate_level != level) {
        if (s->deflate) libdeflate_free_compressor(s->deflate);
        s->deflate = libdeflate_alloc_compressor(level);
        s->deflate_level = level;
    }
    return s->deflate;
}

static bool plane_is_noise(scratch *s, const unsigned char *p, size_t len)
{
    enum { WINDOW = 2048, WINDOWS = 4 };
    if (len < 16 * WINDOW) return false; /* small planes: not worth the test */
    if (s->probe == NULL) s->probe = libdeflate_alloc_compressor(1);
    if (s->probe == NULL) return false;
    unsigned char out[WINDOW];
    for (int k = 0; k < WINDOWS; k++) { /* first, last and evenly between: a zero tail (a partial chunk) shows */
        size_t at = (len - WINDOW) / (WINDOWS - 1) * (size_t)k;
        size_t got = libdeflate_deflate_compress(s->probe, p + at, WINDOW, out, sizeof out);
        if (got != 0 && got <= WINDOW - WINDOW / 100) return false;
    }
    return true;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Stored blocks (not final) holding `len` bytes, at out; returns the bytes written. */
static size_t stored_blocks(unsigned char *out, const unsigned char *p, size_t len)
{
    size_t w = 0;
    while (len > 0) {
        size_t k = len < 65535 ? len : 65535;
        out[w++] = 0; /* BFINAL 0, BTYPE 00 (stored), padding to the byte */
        out[w++] = (unsigned char)k;
        out[w++] = (unsigned char)(k >> 8);
        out[w++] = (unsigned char)~k;
        out[w++] = (unsigned char)(~k >> 8);
        memcpy(out + w, p, k);
        w += k;
        p += k;
        len -= k;
    }
    return w;
}

/* Deflates n bytes (byte planes of `plane` bytes each if plane > 0) into s->b as a zlib
 * stream; returns its size, 0 if it would not fit in n bytes plus overhead, -1 on no memory. */
static size_t deflate_chunk(scratch *s, int level, const unsigned char *data, size_t n, size_t plane)
{
    struct libdeflate_compressor *c = compressor(s, level);
    if (c == NULL) return (size_t)-1;
    size_t noise = 0;
    if (plane > 0)
        while (noise + 2 * plane <= n && plane_is_noise(s, data + noise, plane)) noise += plane; /* keep one plane */
    size_t cap = 2 + noise + 5 * (noise / 65535 + 1) + libdeflate_deflate_compress_bound(c, n - noise) + 4;
    if (reserve(&s->b, &s->cap_b, cap) < 0) return (size_t)-1;
    if (noise == 0) return libdeflate_zlib_compress(c, data, n, s->b, cap);
    unsigned char *out = s->b;
    out[0] = 0x78; /* deflate, 32 KiB window */
    out[1] = 0x5e; /* "fast" level class, as libdeflate marks levels 2 to 5; header check bits */
    size_t w = 2 + stored_blocks(out + 2, data, noise);
    size_t got = libdeflate_deflate_compress(c, data + noise, n - noise, out + w, cap - w - 4);
    if (got == 0) return 0;
    w += got;
    put_be32(out + w, libdeflate_adler32(1, data, n));
    return w + 4;
}

/* ---- LZF --------------------------------------------------------------------------------
 * The same idea for h5py's LZF filter: a leading run of noise planes becomes LZF literal runs
 * (a control byte k < 32, then k + 1 bytes), which is what LZF's matcher would emit for them
 * anyway, and only the rest goes through lzf_compress. LZF streams concatenate (a back
 * reference is relative to the output so far), so the decoder sees one stream. */
static size_t lzf_chunk(scratch *s, const unsigned char *data, size_t n, size_t plane, bool keep)
{
    size_t noise = 0;
    if (plane > 0)
        while (noise + 2 * plane <= n && plane_is_noise(s, data + noise, plane)) noise += plane;
    if (n - noise < 4) noise = n; /* lzf_compress reads two bytes even of one; a few bytes never shrink */
    size_t cap = keep ? n + n / 16 + 64 : n; /* LZF's worst case fits in n + n/16 + 64 */
    if (reserve(&s->b, &s->cap_b, cap) < 0) return (size_t)-1;
    size_t w = 0;
    for (size_t at = 0; at < noise; at += 32) {
        size_t k = noise - at < 32 ? noise - at : 32;
        if (w + 1 + k > cap) return 0; /* would not shrink */
        s->b[w++] = (unsigned char)(k - 1);
        memcpy(s->b + w, data + at, k);
        w += k;
    }
    if (noise == n) return w;
    unsigned got = lzf_compress(data + noise, (unsigned)(n - noise), s->b + w, (unsigned)(cap - w));
    return got == 0 ? 0 : w + got;
}

const void *h5ml__pipe_encode(const pipeline *p, size_t elem, const void *src, size_t n, scratch *s, size_t *out_n,
                              uint32_t *mask, bool keep)
{
    const unsigned char *data = src;
    *mask = 0;
    *out_n = n;
    if (p->shuffle && elem > 1) {
        if (reserve(&s->a, &s->cap_a, n) < 0) return NULL;
        h5ml__shuffle(data, s->a, n, elem);
        data = s->a;
    }
    if (p->codec == PIPE_NONE) return data;
    size_t got = 0;
    if (p->codec == PIPE_GZIP) {
        size_t plane = p->shuffle && elem > 1 ? n / elem : 0;
        got = deflate_chunk(s, p->level, data, n, plane);
        if (got == (size_t)-1) return NULL;
    } else {
        size_t plane = p->shuffle && elem > 1 ? n / elem : 0;
        got = lzf_chunk(s, data, n, plane, keep);
        if (got == (size_t)-1) return NULL;
    }
    if (got == 0 || (got >= n && !keep)) {
        /* Not smaller: stored as HDF5 stores a chunk whose optional filters were skipped. */
        *mask = (1u << p->nfilters) - 1;
        return src;
    }
    *out_n = got;
    return s->b;
}

/* Classifies the dataset's filter pipeline; false if h5ml cannot produce it itself. */
static bool read_pipeline(hid_t dcpl, pipeline *p)
{
    memset(p, 0, sizeof *p);
    int nf = H5Pget_nfilters(dcpl);
    if (nf < 0 || nf > 2) return false;
    p->nfilters = nf;
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char name[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name, NULL);
        if (id == H5Z_FILTER_SHUFFLE && i == 0 && nf >= 1) {
            p->shuffle = true;
        } else if (id == H5Z_FILTER_DEFLATE && i == nf - 1) {
            p->codec = PIPE_GZIP;
            p->level = ncd >= 1 ? (int)cd[0] : 4;
        } else if (id == H5ML_FILTER_LZF && i == nf - 1) {
            p->codec = PIPE_LZF;
        } else {
            return false;
        }
    }
    return !(nf == 2 && !p->shuffle);
}

int h5ml__col_attach(column *c, hid_t dset, hid_t memtype, int64_t rows, char *why, size_t whylen)
{
    memset(c, 0, sizeof *c);
    c->dset = dset;
    c->memtype = memtype;
    c->elem = H5Tget_size(memtype);
    hid_t dcpl = H5Dget_create_plist(dset), space = H5Dget_space(dset), ftype = H5Dget_type(dset);
    hsize_t dims[3] = { 0, 0, 0 }, maxd[3] = { 0, 0, 0 }, chunk[3] = { 0, 0, 0 };
    int rc = -1;
    c->rank = H5Sget_simple_extent_dims(space, dims, maxd);
    if (c->rank < 1 || c->rank > 3) {
        snprintf(why, whylen, "unexpected rank %d", c->rank);
    } else if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 3, chunk) != c->rank) {
        snprintf(why, whylen, "not chunked, so it cannot grow (write it with maxshape=(None, ...))");
    } else if (maxd[0] != H5S_UNLIMITED) {
        snprintf(why, whylen, "not resizable (maximum length %llu)", (unsigned long long)maxd[0]);
    } else {
        c->row_bytes = c->elem;
        bool rows_whole = true;
        for (int k = 1; k < c->rank; k++) {
            c->row_shape[k - 1] = dims[k];
            c->row_bytes *= dims[k];
            if (chunk[k] != dims[k]) rows_whole = false;
        }
        c->chunk_rows = (int64_t)chunk[0];
        c->buf_cap = (size_t)c->chunk_rows * c->row_bytes;
        c->buf = calloc(c->buf_cap, 1);
        c->direct = rows_whole && read_pipeline(dcpl, &c->pipe) && H5Tequal(ftype, memtype) > 0;
        c->extent = rows;
        c->base = rows / c->chunk_rows * c->chunk_rows;
        c->nbuf = c->nbuf_on_disk = rows - c->base;
        if (c->nbuf > 0) {
            hsize_t off[3] = { (hsize_t)c->base, 0, 0 };
            hsize_t size = 0;
            haddr_t addr;
            unsigned mask = 0;
            if (H5Dget_chunk_info_by_coord(dset, off, &mask, &addr, &size) >= 0 && size > 0) {
                c->disk_known = true;
                c->disk_size = (size_t)size;
                c->disk_mask = mask;
            }
        }

        rc = c->buf ? 0 : -1;
        if (rc == 0 && c->nbuf > 0) rc = h5ml__read_rows(dset, memtype, c->base, c->nbuf, c->buf);
        if (rc < 0) snprintf(why, whylen, "cannot read its last chunk");
    }
    H5Tclose(ftype);
    H5Sclose(space);
    H5Pclose(dcpl);
    return rc;
}

int h5ml__col_set_extent(column *c, int64_t rows)
{
    if (rows <= c->extent) return 0;
    hsize_t d[3] = { (hsize_t)rows, c->row_shape[0], c->row_shape[1] };
    if (H5Dset_extent(c->dset, d) < 0) return -1;
    c->extent = rows;
    return 0;
}

/* Writes buf's rows through HDF5's own pipeline. */
static int write_rows(column *c)
{
    hsize_t off[3] = { (hsize_t)c->base, 0, 0 }, cnt[3] = { (hsize_t)c->nbuf, c->row_shape[0], c->row_shape[1] };
    hid_t fs = H5Dget_space(c->dset), ms = H5Screate_simple(c->rank, cnt, NULL);
    herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (rc >= 0) rc = H5Dwrite(c->dset, c->memtype, ms, fs, H5P_DEFAULT, c->buf);
    if (rc < 0) h5ml__h5_save();
    H5Sclose(ms);
    H5Sclose(fs);
    c->disk_known = false;
    return rc < 0 ? -1 : 0;
}

/* Hands filtered bytes to HDF5 as the chunk at `base`. HDF5 1.10 keeps the old filter mask
 * when a chunk is overwritten by one of the same size: never overwrite with the same size and
 * another mask. That only happens over a filtered chunk of exactly raw size, which other
 * writers' deflate can produce; the chunk is then stored filtered whatever its size. */
static int store(column *c, int64_t base, const void *raw, size_t full, scratch *s, const void *data, size_t n,
                 uint32_t mask, bool known, size_t disk_size, uint32_t disk_mask)
{
    if (known && disk_size == n && disk_mask != mask) {
        data = h5ml__pipe_encode(&c->pipe, c->elem, raw, full, s, &n, &mask, true);
        if (data == NULL) return -1;
        if (disk_size == n && disk_mask != mask) return -1; /* cannot happen: filtered mask is 0 */
    }
    hsize_t off[3] = { (hsize_t)base, 0, 0 };
    if (H5Dwrite_chunk(c->dset, H5P_DEFAULT, mask, off, n, data) < 0) return h5ml__h5_save(), -1;
    if (base == c->base) { /* still the column's current chunk: remember what is on disk */
        c->disk_known = true;
        c->disk_size = n;
        c->disk_mask = mask;
        if (mask == 0 && c->nbuf < c->chunk_rows) c->partial_bytes += n;
    }
    return 0;
}

/* Writes buf (rows [base, base+nbuf)) to the file as the chunk at `base`. */
static int write_buffer(column *c, scratch *s, bool final)
{
    if (h5ml__col_set_extent(c, c->base + c->nbuf) < 0) return -1;
    if (!c->direct) return write_rows(c);
    size_t full = (size_t)c->chunk_rows * c->row_bytes, used = (size_t)c->nbuf * c->row_bytes;
    memset(c->buf + used, 0, full - used); /* edge chunks are stored whole, as HDF5 does */
    size_t n = full;
    uint32_t mask = (1u << c->pipe.nfilters) - 1;
    const void *data = c->buf;
    bool partial = c->nbuf < c->chunk_rows;
    if (partial && !final && c->partial_bytes >= full) c->partial_raw = true;
    if (!partial || final || !c->partial_raw) {
        data = h5ml__pipe_encode(&c->pipe, c->elem, c->buf, full, s, &n, &mask, false);
        if (data == NULL) return -1;
    }
    return store(c, c->base, c->buf, full, s, data, n, mask, c->disk_known, c->disk_size, c->disk_mask);
}

/* ---- the pool path ---- */

/* The job keeps the buffer holding its filtered bytes; the thread takes the job's old one. */
static void keep_buffer(h5ml_job *j, unsigned char **buf, size_t *cap)
{
    unsigned char *t = j->kept;
    size_t tc = j->kept_cap;
    j->kept = *buf;
    j->kept_cap = *cap;
    *buf = t;
    *cap = tc;
    j->out = j->kept;
}

static void encode_job(h5ml_job *j, scratch *s)
{
    j->out = h5ml__pipe_encode(&j->col->pipe, j->col->elem, j->raw, j->full, s, &j->out_n, &j->mask, false);
    j->failed = j->out == NULL;
    if (j->out && j->out == s->b) keep_buffer(j, &s->b, &s->cap_b);
    else if (j->out && j->out == s->a) keep_buffer(j, &s->a, &s->cap_a);
}

/* Writes finished jobs in submission order; waits for them if `wait`. */
static int drain(colsink *k, bool wait)
{
    h5ml_job *j;
    while ((j = h5ml__pool_next(k->pool, wait)) != NULL) {
        int rc = j->failed ? -1
                           : store(j->col, j->base, j->raw, j->full, &k->s, j->out, j->out_n, j->mask, j->disk_known,
                                   j->disk_size, j->disk_mask);
        h5ml__pool_retire(k->pool);
        if (rc < 0) return -1;
    }
    return 0;
}

int h5ml__sink_drain(colsink *k)
{
    if (k->pool == NULL) return 0;
    return drain(k, true);
}

void h5ml__sink_free(colsink *k)
{
    if (k->pool) {
        h5ml__pool_free(k->pool); /* unwritten jobs are dropped */
        k->pool = NULL;
    }
    h5ml__scratch_free(&k->s);
}

/* A free slot of the pool (writing finished chunks to make room), described as the chunk
 * at the column's base; NULL on failure. */
static h5ml_job *take_slot(column *c, colsink *k, int64_t rows)
{
    if (h5ml__col_set_extent(c, c->base + rows) < 0) return NULL;
    h5ml_job *j;
    while ((j = h5ml__pool_slot(k->pool)) == NULL)
        if (drain(k, true) < 0) return NULL;
    j->run = encode_job;
    j->col = c;
    j->base = c->base;
    j->full = (size_t)c->chunk_rows * c->row_bytes;
    j->disk_known = c->disk_known;
    j->disk_size = c->disk_size;
    j->disk_mask = c->disk_mask;
    return j;
}

/* Hands the chunk to the pool: a full buffer is swapped for an empty one, a partial one is
 * copied (the column keeps filling it). */
static int submit(column *c, colsink *k)
{
    bool partial = c->nbuf < c->chunk_rows;
    h5ml_job *j = take_slot(c, k, c->nbuf);
    if (j == NULL) return -1;
    if (j->raw_cap < c->buf_cap) {
        unsigned char *r = realloc(j->raw, c->buf_cap);
        if (r == NULL) return -1;
        j->raw = r;
        j->raw_cap = c->buf_cap;
    }
    if (partial) {
        size_t used = (size_t)c->nbuf * c->row_bytes;
        memcpy(j->raw, c->buf, used);
        memset(j->raw + used, 0, j->full - used);
        h5ml__pool_submit(k->pool);
        return 0;
    }
    unsigned char *t = c->buf;
    size_t tc = c->buf_cap;
    c->buf = j->raw;
    c->buf_cap = j->raw_cap;
    j->raw = t;
    j->raw_cap = tc;
    c->disk_known = false;
    h5ml__pool_submit(k->pool);
    return drain(k, false);
}

/* Whole chunks of an unfiltered column go to the file straight from the caller's rows. */
static int append_whole_chunks(column *c, const unsigned char **p, int64_t *n)
{
    size_t full = (size_t)c->chunk_rows * c->row_bytes;
    while (*n >= c->chunk_rows) {
        if (h5ml__col_set_extent(c, c->base + c->chunk_rows) < 0) return -1;
        hsize_t off[3] = { (hsize_t)c->base, 0, 0 };
        if (H5Dwrite_chunk(c->dset, H5P_DEFAULT, 0, off, full, *p) < 0) return h5ml__h5_save(), -1;
        c->base += c->chunk_rows;
        *p += full;
        *n -= c->chunk_rows;
    }
    return 0;
}

/* Appends n rows, fill() writing them into the buffer a piece at a time. */
static int append_rows(column *c, colsink *k, int64_t n, h5ml_col_fill fill, const void *ctx)
{
    for (int64_t done = 0; done < n;) {
        int64_t take = c->chunk_rows - c->nbuf;
        if (take > n - done) take = n - done;
        fill(ctx, done, take, c->buf + (size_t)c->nbuf * c->row_bytes);
        c->nbuf += take;
        done += take;
        if (c->nbuf == c->chunk_rows) {
            int rc = (k->pool && c->direct) ? submit(c, k) : write_buffer(c, &k->s, false);
            if (rc < 0) return -1;
            c->base += c->chunk_rows;
            c->nbuf = c->nbuf_on_disk = 0;
            c->partial_bytes = 0;
            c->partial_raw = false;
            c->disk_known = false; /* nothing of the next chunk is in the file yet */
        }
    }
    return 0;
}

int h5ml__col_append_fill(column *c, colsink *k, int64_t n, h5ml_col_fill fill, const void *ctx)
{
    return append_rows(c, k, n, fill, ctx);
}

typedef struct copy_ctx { const unsigned char *src; size_t row_bytes; } copy_ctx;

static void copy_rows(const void *ctx, int64_t first, int64_t count, void *dst)
{
    const copy_ctx *x = ctx;
    memcpy(dst, x->src + (size_t)first * x->row_bytes, (size_t)count * x->row_bytes);
}

int h5ml__col_append(column *c, colsink *k, const void *src, int64_t n)
{
    const unsigned char *p = src;
    copy_ctx x = { p, c->row_bytes };
    bool whole = c->direct && c->pipe.nfilters == 0;
    if (whole && c->nbuf > 0 && n >= 2 * c->chunk_rows - c->nbuf) { /* complete the buffer's chunk first */
        int64_t take = c->chunk_rows - c->nbuf;
        if (append_rows(c, k, take, copy_rows, &x) < 0) return -1;
        p += (size_t)take * c->row_bytes;
        n -= take;
    }
    if (whole && c->nbuf == 0 && n >= c->chunk_rows) {
        if (append_whole_chunks(c, &p, &n) < 0) return -1;
        c->nbuf_on_disk = 0;
        c->partial_bytes = 0;
        c->partial_raw = false;
        c->disk_known = false;
    }
    x.src = p;
    return append_rows(c, k, n, copy_rows, &x);
}

int h5ml__col_flush(column *c, colsink *k, bool final)
{
    if (c->nbuf == c->nbuf_on_disk && !(final && c->partial_raw)) return 0;
    size_t full = (size_t)c->chunk_rows * c->row_bytes;
    if (!final && c->partial_bytes >= full) c->partial_raw = true;
    bool filtered = final || !c->partial_raw;
    int rc = (k->pool && c->direct && filtered) ? submit(c, k) : write_buffer(c, &k->s, final);
    if (rc < 0) return -1;
    c->nbuf_on_disk = c->nbuf;
    return 0;
}

int h5ml__col_read(column *c, colsink *k, int64_t start, int64_t count, void *dst)
{
    unsigned char *out = dst;
    int64_t disk = start < c->base ? (c->base < start + count ? c->base : start + count) - start : 0;
    if (disk > 0) {
        if (h5ml__sink_drain(k) < 0) return -1;
        /* Around an HDF5 defect (1.10.8; H5Dchunk.c still has it): a dataset remembers the
         * last chunk it looked up, and H5Dwrite_chunk leaves there the filter mask the chunk
         * had before. A chunk just stored unfiltered (incompressible rows) would be read
         * through the filters. Looking up another chunk replaces that entry: the one past
         * the dataset's end, never stored (so the lookup itself fails, harmlessly). */
        hsize_t past[3] = { (hsize_t)((c->extent / c->chunk_rows + 1) * c->chunk_rows), 0, 0 }, size = 0;
        H5Dget_chunk_storage_size(c->dset, past, &size);
        H5Eclear2(H5E_DEFAULT);
        if (h5ml__read_rows(c->dset, c->memtype, start, disk, out) < 0) return -1;
        out += (size_t)disk * c->row_bytes;
    }
    int64_t first = start + disk, rows = count - disk;
    if (rows <= 0) return 0;
    if (first + rows > c->base + c->nbuf) return -1; /* beyond what was appended */
    memcpy(out, c->buf + (size_t)(first - c->base) * c->row_bytes, (size_t)rows * c->row_bytes);
    return 0;
}

void h5ml__col_free(column *c)
{
    if (c->dset > 0) H5Dclose(c->dset);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* ---- cutting a dataset back ---------------------------------------------------------------
 * Shrinking a chunked dataset makes HDF5 1.10 rewrite the new edge chunk (filling what falls
 * outside the extent) through the filter pipeline, and when that write has the size of the
 * chunk already stored but another filter mask (say shuffled, LZF skipped, over a chunk
 * stored raw), HDF5 keeps the old mask: the chunk then decodes to garbage. So the edge
 * chunk's stored bytes are read before the cut and put back after it, with their own mask;
 * when the stored chunk has their size and another mask, a write of another size comes
 * first, so HDF5 records the new mask. */
static int chunk_info(hid_t d, const hsize_t *off, hsize_t *size, unsigned *mask)
{
    haddr_t addr = HADDR_UNDEF;
    *size = 0;
    if (H5Dget_chunk_info_by_coord(d, off, mask, &addr, size) < 0) return -1;
    return addr != HADDR_UNDEF && *size > 0 ? 1 : 0;
}

int h5ml__shrink_dataset(hid_t d, const hsize_t *dims)
{
    hid_t dcpl = H5Dget_create_plist(d), space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t chunk[3] = { 0, 0, 0 }, old[3] = { 0, 0, 0 };
    H5Sget_simple_extent_dims(space, old, NULL);
    bool chunked = H5Pget_layout(dcpl) == H5D_CHUNKED && rank >= 1 && rank <= 3 && H5Pget_chunk(dcpl, 3, chunk) == rank;
    H5Sclose(space);
    H5Pclose(dcpl);
    if (!chunked || dims[0] >= old[0] || dims[0] % chunk[0] == 0) return H5Dset_extent(d, dims) < 0 ? -1 : 0;
    hsize_t off[3] = { dims[0] / chunk[0] * chunk[0], 0, 0 }, size = 0;
    unsigned mask = 0;
    int have = chunk_info(d, off, &size, &mask);
    unsigned char *saved = have > 0 ? malloc((size_t)size + 1) : NULL;
    uint32_t m32 = 0;
    if (have > 0 && (saved == NULL || H5Dread_chunk(d, H5P_DEFAULT, off, &m32, saved) < 0)) have = -1;
    int rc = have < 0 || H5Dset_extent(d, dims) < 0 ? -1 : 0;
    if (rc == 0 && have > 0) {
        hsize_t now = 0;
        unsigned now_mask = 0;
        if (chunk_info(d, off, &now, &now_mask) > 0 && now == size && now_mask != m32)
            rc = H5Dwrite_chunk(d, H5P_DEFAULT, m32, off, (size_t)size + 1, saved) < 0 ? -1 : 0;
        if (rc == 0 && H5Dwrite_chunk(d, H5P_DEFAULT, m32, off, (size_t)size, saved) < 0) rc = -1;
    }
    free(saved);
    return rc;
}
