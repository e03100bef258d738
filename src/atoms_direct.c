/* Direct reads of atomistic datasets: structures in any order, each chunk read once and
 * decoded here (shuffle, deflate, LZF: what h5ml and h5py write), kept in a decoded-chunk LRU
 * with a byte budget, on worker threads; rows of unfiltered chunks are copied straight from
 * the mapped file into the caller's buffers. Columns of other layouts go through HDF5.
 *
 * A read is a list of pieces: one run of consecutive structures (a shuffled batch is runs
 * of one) in one chunk of one dataset, going to a place in one output array. Pieces are
 * grouped by chunk, so each chunk is decoded once per read, and the groups the cache cannot
 * serve are spread over the threads. Unfiltered chunks are located (their address) on the
 * calling thread under the direct state's lock; compressed ones are fetched by the workers
 * with H5Dread_chunk (HDF5 serializes its calls), then decoded in parallel. */
#define _GNU_SOURCE
#include "atoms_priv.h"
#include "chunkcol.h"
#include "pool.h"

#include <errno.h>
#include <libdeflate.h>
#include <liblzf/lzf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct chunk_at {
    haddr_t addr;
    hsize_t size;
    uint32_t mask;
    bool known, present;
} chunk_at;

typedef struct dcol {
    bool direct;         /* chunks read here (else through HDF5) */
    int64_t chunk_rows;
    size_t row_bytes, elem;
    bool shuffle;
    int codec;           /* 0 none, 1 deflate, 2 lzf */
    int nfilters;
    int64_t nchunks;
    chunk_at *at;
} dcol;

/* The decoded-chunk LRU. */
typedef struct centry {
    uint64_t key;        /* col << 40 | chunk */
    unsigned char *data;
    size_t bytes;
    int32_t prev, next;
} centry;

struct h5ml_direct {
    int fd;
    const unsigned char *mapped; /* the file mapped read-only (bytes [0, mapped_size)), or NULL */
    size_t mapped_size;
    dcol col[COL_COUNT];
    pthread_mutex_t mu;  /* HDF5 calls, and the cache */
    int threads;
    /* cache */
    int64_t budget, used;
    centry *e;
    int32_t ne, cap, head, tail, free_list;
    int32_t *map;        /* open addressing: key -> entry, -1 empty, -2 deleted */
    int32_t mapcap;
    int32_t mapused, nlive; /* map slots not empty (entries and tombstones); entries */
};

static bool type_matches(hid_t ft, int kind)
{
    switch (kind) {
    case 'i': return H5Tequal(ft, H5T_STD_I64LE) > 0;
    case 'd': return H5Tequal(ft, H5T_IEEE_F64LE) > 0;
    case 'f': return H5Tequal(ft, H5T_IEEE_F32LE) > 0;
    default: /* bool: h5py's enum of int8 (values 0/1), or plain (u)int8 */
        return H5Tget_size(ft) == 1 && (H5Tget_class(ft) == H5T_ENUM || H5Tget_class(ft) == H5T_INTEGER);
    }
}

static void classify(h5ml_direct *d, hid_t dset, int c)
{
    dcol *k = &d->col[c];
    const h5ml_coldef *def = &h5ml__cols[c];
    hid_t dcpl = H5Dget_create_plist(dset), ft = H5Dget_type(dset), space = H5Dget_space(dset);
    hsize_t dims[3] = { 0, 0, 0 }, chunk[3] = { 0, 0, 0 };
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    bool ok = rank == def->rank && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 3, chunk) == rank &&
              type_matches(ft, def->kind);
    for (int i = 1; ok && i < rank; i++) ok = chunk[i] == dims[i];
    int nf = ok ? H5Pget_nfilters(dcpl) : 0;
    for (int i = 0; ok && i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && i == 0) k->shuffle = true;
        else if (id == H5Z_FILTER_DEFLATE && i == nf - 1) k->codec = 1;
        else if (id == H5ML_FILTER_LZF && i == nf - 1) k->codec = 2;
        else ok = false;
    }
    if (ok) {
        k->nfilters = nf;
        k->elem = H5Tget_size(ft);
        k->row_bytes = k->elem * (size_t)def->ncols;
        k->chunk_rows = (int64_t)chunk[0];
        k->nchunks = ((int64_t)dims[0] + k->chunk_rows - 1) / k->chunk_rows;
        k->at = calloc((size_t)(k->nchunks > 0 ? k->nchunks : 1), sizeof *k->at);
        ok = k->at != NULL;
    }
    k->direct = ok;
    H5Sclose(space);
    H5Tclose(ft);
    H5Pclose(dcpl);
}

h5ml_direct *h5ml__direct_open(hid_t file, const hid_t dset[COL_COUNT], int64_t budget)
{
    void *h = NULL;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &h) < 0 || h == NULL) return NULL;
    h5ml_direct *d = calloc(1, sizeof *d);
    if (d == NULL) return NULL;
    d->fd = *(int *)h;
    d->budget = budget;
    /* A mapping turns the row copies of uncompressed chunks, and the compressed bytes of the
     * others, into memory reads: no system call per piece. Data past its end (a file still
     * growing) is pread. */
    struct stat st;
    if (fstat(d->fd, &st) == 0 && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, d->fd, 0);
        if (m != MAP_FAILED) {
            d->mapped = m;
            d->mapped_size = (size_t)st.st_size;
        }
    }
    d->head = d->tail = d->free_list = -1;
    pthread_mutex_init(&d->mu, NULL);
    for (int c = 0; c < COL_COUNT; c++) classify(d, dset[c], c);
    H5Eclear2(H5E_DEFAULT);
    return d;
}

static void cache_clear(h5ml_direct *d)
{
    for (int32_t i = 0; i < d->ne; i++) free(d->e[i].data);
    free(d->e);
    free(d->map);
    d->e = NULL;
    d->map = NULL;
    d->ne = d->cap = d->mapcap = 0;
    d->mapused = d->nlive = 0;
    d->head = d->tail = d->free_list = -1;
    d->used = 0;
}

void h5ml__direct_close(h5ml_direct *d)
{
    if (d == NULL) return;
    if (d->mapped) munmap((void *)d->mapped, d->mapped_size);
    cache_clear(d);
    for (int c = 0; c < COL_COUNT; c++) free(d->col[c].at);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void h5ml__direct_set_threads(h5ml_direct *d, int threads)
{
    if (d) d->threads = threads;
}

/* ---- the LRU (called with mu held) --------------------------------------------------------- */

static uint32_t slot_of(const h5ml_direct *d, uint64_t key)
{
    uint64_t z = key * 0x9e3779b97f4a7c15ull;
    return (uint32_t)((z ^ (z >> 31)) & (uint64_t)(d->mapcap - 1));
}

static int32_t map_find(const h5ml_direct *d, uint64_t key)
{
    if (d->mapcap == 0) return -1;
    for (uint32_t h = slot_of(d, key);; h = (h + 1) & (uint32_t)(d->mapcap - 1)) {
        int32_t i = d->map[h];
        if (i == -1) return -1;
        if (i >= 0 && d->e[i].key == key) return i;
    }
}

static int map_rebuild(h5ml_direct *d, int32_t cap)
{
    int32_t *m = malloc(sizeof *m * (size_t)cap);
    if (m == NULL) return -1;
    for (int32_t i = 0; i < cap; i++) m[i] = -1;
    free(d->map);
    d->map = m;
    d->mapcap = cap;
    for (int32_t i = d->head; i >= 0; i = d->e[i].next) {
        uint32_t h = slot_of(d, d->e[i].key);
        while (d->map[h] != -1) h = (h + 1) & (uint32_t)(cap - 1);
        d->map[h] = i;
    }
    d->mapused = d->nlive;
    return 0;
}

static void list_unlink(h5ml_direct *d, int32_t i)
{
    centry *x = &d->e[i];
    if (x->prev >= 0) d->e[x->prev].next = x->next;
    else d->head = x->next;
    if (x->next >= 0) d->e[x->next].prev = x->prev;
    else d->tail = x->prev;
}

static void list_front(h5ml_direct *d, int32_t i)
{
    d->e[i].prev = -1;
    d->e[i].next = d->head;
    if (d->head >= 0) d->e[d->head].prev = i;
    d->head = i;
    if (d->tail < 0) d->tail = i;
}

static void evict_one(h5ml_direct *d)
{
    int32_t i = d->tail;
    list_unlink(d, i);
    for (uint32_t h = slot_of(d, d->e[i].key);; h = (h + 1) & (uint32_t)(d->mapcap - 1))
        if (d->map[h] == i) {
            d->map[h] = -2; /* a tombstone keeps later probes going */
            break;
        }
    d->used -= (int64_t)d->e[i].bytes;
    d->nlive--;
    free(d->e[i].data);
    d->e[i].data = NULL;
    d->e[i].next = d->free_list;
    d->free_list = i;
}

/* Takes `data` (malloc'd, `bytes` long) into the cache, or frees it when it cannot stay. */
static void cache_put(h5ml_direct *d, uint64_t key, unsigned char *data, size_t bytes)
{
    if (d->budget <= 0 || (int64_t)bytes > d->budget / 2 || map_find(d, key) >= 0) {
        free(data);
        return;
    }
    while (d->used + (int64_t)bytes > d->budget && d->tail >= 0) evict_one(d);
    int32_t i;
    if (d->free_list >= 0) {
        i = d->free_list;
        d->free_list = d->e[i].next;
    } else {
        if (d->ne == d->cap) {
            int32_t cap = d->cap ? 2 * d->cap : 64;
            centry *e = realloc(d->e, sizeof *e * (size_t)cap);
            if (e == NULL) {
                free(data);
                return;
            }
            d->e = e;
            d->cap = cap;
        }
        i = d->ne++;
    }
    d->e[i] = (centry){ key, data, bytes, -1, -1 };
    list_front(d, i);
    d->used += (int64_t)bytes;
    d->nlive++;
    if (d->mapcap == 0 || 4 * (d->mapused + 1) > 3 * d->mapcap) { /* rebuild: drop tombstones, grow if needed */
        int32_t cap = 256;
        while (2 * (d->nlive + 1) > cap) cap *= 2;
        if (map_rebuild(d, cap) < 0) return;
    } else {
        uint32_t h = slot_of(d, key);
        while (d->map[h] >= 0) h = (h + 1) & (uint32_t)(d->mapcap - 1);
        if (d->map[h] == -1) d->mapused++;
        d->map[h] = i;
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

/* One piece: rows [row, row+count) of chunk `chunk` of column `col`, to dst. */
typedef struct piece {
    int32_t col;
    int64_t chunk, row, count;
    unsigned char *dst;
} piece;

static int cmp_piece(const void *a, const void *b)
{
    const piece *x = a, *y = b;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    if (x->chunk != y->chunk) return x->chunk < y->chunk ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

typedef struct plan {
    piece *p;
    int64_t n, cap;
} plan;

static int plan_add(plan *pl, int col, int64_t chunk, int64_t row, int64_t count, unsigned char *dst)
{
    if (pl->n == pl->cap) {
        int64_t cap = pl->cap ? 2 * pl->cap : 256;
        piece *p = realloc(pl->p, sizeof *p * (size_t)cap);
        if (p == NULL) return -1;
        pl->p = p;
        pl->cap = cap;
    }
    pl->p[pl->n++] = (piece){ col, chunk, row, count, dst };
    return 0;
}

/* Rows [first, first+count) of a column, split at chunk boundaries, to dst. */
static int plan_rows(plan *pl, const dcol *k, int col, int64_t first, int64_t count, unsigned char *dst)
{
    while (count > 0) {
        int64_t chunk = first / k->chunk_rows, row = first % k->chunk_rows;
        int64_t take = k->chunk_rows - row < count ? k->chunk_rows - row : count;
        if (plan_add(pl, col, chunk, row, take, dst) < 0) return -1;
        dst += (size_t)take * k->row_bytes;
        first += take;
        count -= take;
    }
    return 0;
}

typedef struct job {
    h5ml_direct *d;
    const piece *p;
    const int64_t *group;  /* pieces of group g: [group[g], group[g+1]) */
    const int64_t *todo;   /* the groups to run (those the cache could not serve) */
    const hid_t *dset;     /* the datasets, by column (filtered chunks are read through HDF5) */
    int64_t ntodo, next;
    bool failed;
    const char *why;
    int failed_col;
    int64_t failed_chunk;
} job;

typedef struct decoder {
    unsigned char *in, *tmp;
    size_t in_cap, tmp_cap;
    struct libdeflate_decompressor *inflate;
} decoder;

static int grow(unsigned char **p, size_t *cap, size_t n)
{
    if (*cap >= n) return 0;
    unsigned char *q = realloc(*p, n);
    if (q == NULL) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int pread_full(int fd, unsigned char *p, size_t n, haddr_t at)
{
    while (n > 0) {
        ssize_t got = pread(fd, p, n, (off_t)at);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            return -1;
        }
        p += got;
        n -= (size_t)got;
        at += (haddr_t)got;
    }
    return 0;
}

/* Decodes the chunk of column k that fetch put in dc->in (size and mask in a; full = raw
 * chunk bytes) into out; a chunk never stored is zeros. */
static int decode(const dcol *k, const chunk_at *a, size_t full, decoder *dc, unsigned char *out, const char **why)
{
    if (!a->present) {
        memset(out, 0, full);
        return 0;
    }
    const unsigned char *in = dc->in;
    bool sh = k->shuffle && !(a->mask & 1u) && k->elem > 1, cz = k->codec && !(a->mask & (k->shuffle ? 2u : 1u));
    unsigned char *dst = out;
    if (sh) {
        if (grow(&dc->tmp, &dc->tmp_cap, full) < 0) return *why = "out of memory", -1;
        dst = dc->tmp;
    }
    if (cz) {
        size_t actual = 0;
        if (k->codec == 1) {
            if (dc->inflate == NULL && (dc->inflate = libdeflate_alloc_decompressor()) == NULL) return *why = "out of memory", -1;
            if (libdeflate_zlib_decompress(dc->inflate, in, (size_t)a->size, dst, full, &actual) != LIBDEFLATE_SUCCESS ||
                actual != full)
                return *why = "corrupt deflate data", -1;
        } else if (lzf_decompress(in, (unsigned)a->size, dst, (unsigned)full) != full) {
            return *why = "corrupt LZF data", -1;
        }
    } else {
        if ((size_t)a->size != full) return *why = "unfiltered chunk of the wrong size", -1;
        memcpy(dst, in, full);
    }
    if (sh) h5ml__unshuffle(dst, out, full, k->elem);
    return 0;
}

/* Chunks of unfiltered datasets are located (their address) and copied row by row; chunks
 * of filtered ones are fetched whole through HDF5 (fetch) and decoded. */
static bool is_raw(const dcol *k, const chunk_at *a) { return k->nfilters == 0 && a->present; }

/* The stored bytes of a chunk of a filtered dataset into dc->in, with their size and filter
 * mask in *a (not `known`: decode then takes dc->in). H5Dread_chunk finds a chunk through
 * the dataset's index in constant time, where H5Dget_chunk_info_by_coord (HDF5 1.10) walks
 * every chunk: locating all n chunks of a dataset that way costs n^2. */
static int fetch(const dcol *k, hid_t dset, int64_t chunk, decoder *dc, chunk_at *a, const char **why)
{
    hsize_t off[3] = { (hsize_t)(chunk * k->chunk_rows), 0, 0 }, size = 0;
    uint32_t mask = 0;
    *a = (chunk_at){ 0 };
    if (H5Dget_chunk_storage_size(dset, off, &size) < 0) return *why = "cannot find the chunk", -1;
    if (size == 0) return 0; /* never written: fill value, zeros */
    if (grow(&dc->in, &dc->in_cap, (size_t)size) < 0) return *why = "out of memory", -1;
    if (H5Dread_chunk(dset, H5P_DEFAULT, off, &mask, dc->in) < 0) return *why = "cannot read the chunk", -1;
    a->size = size;
    a->mask = mask;
    a->present = true;
    return 0;
}

static uint64_t chunk_key(const piece *p) { return (uint64_t)p->col << 40 | (uint64_t)p->chunk; }

/* Serves the np pieces of one filtered chunk from the cache if it holds the chunk. */
static bool from_cache(h5ml_direct *d, const piece *first, int64_t np)
{
    const dcol *k = &d->col[first->col];
    pthread_mutex_lock(&d->mu);
    int32_t i = map_find(d, chunk_key(first));
    if (i >= 0) { /* copy under the lock: the entry may be evicted right after */
        list_unlink(d, i);
        list_front(d, i);
        for (int64_t q = 0; q < np; q++)
            memcpy(first[q].dst, d->e[i].data + (size_t)first[q].row * k->row_bytes, (size_t)first[q].count * k->row_bytes);
    }
    pthread_mutex_unlock(&d->mu);
    return i >= 0;
}

/* One group: every piece of one chunk the cache did not hold (execute copied the pieces of
 * located unfiltered chunks already): fetched, decoded, copied out and offered to the cache. */
static int run_group(job *j, int64_t g, decoder *dc)
{
    h5ml_direct *d = j->d;
    const piece *first = &j->p[j->group[g]];
    int64_t np = j->group[g + 1] - j->group[g];
    const dcol *k = &d->col[first->col];
    size_t full = (size_t)k->chunk_rows * k->row_bytes;
    chunk_at a = { 0 }; /* an unfiltered chunk here was never stored: zeros */
    if (k->nfilters > 0 && fetch(k, j->dset[first->col], first->chunk, dc, &a, &j->why) < 0) return -1;
    unsigned char *data = malloc(full);
    if (data == NULL) return j->why = "out of memory", -1;
    if (decode(k, &a, full, dc, data, &j->why) < 0) {
        free(data);
        return -1;
    }
    for (int64_t q = 0; q < np; q++) memcpy(first[q].dst, data + (size_t)first[q].row * k->row_bytes, (size_t)first[q].count * k->row_bytes);
    pthread_mutex_lock(&d->mu);
    cache_put(d, chunk_key(first), data, full);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static void *worker(void *arg)
{
    job *j = arg;
    decoder dc = { 0 };
    for (;;) {
        int64_t t = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (t >= j->ntodo || __atomic_load_n(&j->failed, __ATOMIC_RELAXED)) break;
        int64_t g = j->todo[t];
        if (run_group(j, g, &dc) < 0) {
            j->failed_col = j->p[j->group[g]].col;
            j->failed_chunk = j->p[j->group[g]].chunk;
            __atomic_store_n(&j->failed, true, __ATOMIC_RELAXED);
        }
    }
    free(dc.in);
    free(dc.tmp);
    if (dc.inflate) libdeflate_free_decompressor(dc.inflate);
    return NULL;
}

/* A thread started for one read: HDF5 keeps its error printing per thread, on by default. */
static void *worker_thread(void *arg)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return worker(arg);
}

static int locate(h5ml_direct *d, hid_t dset, int c, int64_t chunk)
{
    dcol *k = &d->col[c];
    chunk_at *a = &k->at[chunk];
    if (a->known) return 0;
    hsize_t off[3] = { (hsize_t)(chunk * k->chunk_rows), 0, 0 };
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(dset, off, &mask, &addr, &size) < 0) return -1;
    a->addr = addr;
    a->size = size;
    a->mask = mask;
    a->present = addr != HADDR_UNDEF && size > 0;
    a->known = true;
    return 0;
}

/* Groups the plan by chunk, locates every chunk (under the lock), and runs the groups. */
/* Copies a piece of an uncompressed chunk (from the mapping, or pread). */
static int copy_raw(const h5ml_direct *d, const piece *p, const char **why)
{
    const dcol *k = &d->col[p->col];
    const chunk_at *a = &k->at[p->chunk];
    haddr_t at = a->addr + (haddr_t)p->row * k->row_bytes;
    size_t n = (size_t)p->count * k->row_bytes;
    if ((hsize_t)(p->row + p->count) * k->row_bytes > a->size) return *why = "short chunk", -1;
    if (d->mapped && at + n <= d->mapped_size) memcpy(p->dst, d->mapped + at, n);
    else if (pread_full(d->fd, p->dst, n, at) < 0) return *why = "short read", -1;
    return 0;
}

/* Locates every chunk of the plan (HDF5, under the lock), copies the pieces of uncompressed
 * chunks at once, in the order given, and runs the rest grouped by chunk on the threads. */
static int execute(h5ml_direct *d, const hid_t dset[COL_COUNT], plan *pl, char *why, size_t whylen)
{
    int rc = 0;
    int64_t nf = 0; /* pieces of filtered chunks, moved to the front */
    pthread_mutex_lock(&d->mu);
    for (int64_t i = 0; i < pl->n && rc == 0; i++) {
        piece *p = &pl->p[i];
        if (d->col[p->col].nfilters == 0 && !d->col[p->col].at[p->chunk].known && locate(d, dset[p->col], p->col, p->chunk) < 0) {
            snprintf(why, whylen, "cannot locate a chunk of /%s", h5ml__cols[p->col].path);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (int64_t i = 0; i < pl->n && rc == 0; i++) {
        piece *p = &pl->p[i];
        const char *w = NULL;
        if (!is_raw(&d->col[p->col], &d->col[p->col].at[p->chunk])) pl->p[nf++] = *p;
        else if (copy_raw(d, p, &w) < 0) {
            snprintf(why, whylen, "/%s, chunk %lld: %s", h5ml__cols[p->col].path, (long long)p->chunk, w);
            rc = -1;
        }
    }
    if (rc < 0 || nf == 0) return rc;
    qsort(pl->p, (size_t)nf, sizeof *pl->p, cmp_piece);
    int64_t *group = malloc(sizeof *group * (size_t)(nf + 1)), ng = 0;
    if (group == NULL) return snprintf(why, whylen, "out of memory"), -1;
    for (int64_t i = 0; i < nf; i++)
        if (i == 0 || pl->p[i].col != pl->p[i - 1].col || pl->p[i].chunk != pl->p[i - 1].chunk) group[ng++] = i;
    group[ng] = nf;
    /* Chunks in the cache are copied here; threads start only for chunks to decode. */
    int64_t *todo = malloc(sizeof *todo * (size_t)ng), ntodo = 0;
    if (todo == NULL) return free(group), snprintf(why, whylen, "out of memory"), -1;
    for (int64_t g = 0; g < ng; g++)
        if (!from_cache(d, &pl->p[group[g]], group[g + 1] - group[g])) todo[ntodo++] = g;
    job j = { .d = d, .p = pl->p, .group = group, .todo = todo, .ntodo = ntodo, .dset = dset };
    int nt = d->threads > 0 ? d->threads : h5ml__default_threads();
    if (nt > 16) nt = 16;
    if (nt > ntodo) nt = (int)ntodo;
    pthread_t tid[16];
    int started = 0;
    for (int t = 1; t < nt; t++)
        if (pthread_create(&tid[started], NULL, worker_thread, &j) == 0) started++;
    if (ntodo > 0) worker(&j);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    free(group);
    free(todo);
    if (j.failed)
        return snprintf(why, whylen, "/%s, chunk %lld: %s", h5ml__cols[j.failed_col].path, (long long)j.failed_chunk,
                        j.why ? j.why : "read error"),
               -1;
    return 0;
}

/* Where a column's rows go, and what one row is in the caller's buffer. */
static unsigned char *out_of(const h5ml_frames *o, int c)
{
    switch (c) {
    case COL_NUMBERS: return (unsigned char *)o->numbers;
    case COL_POSITIONS: return (unsigned char *)o->positions;
    case COL_FORCES: return (unsigned char *)o->forces;
    case COL_CELLS: return (unsigned char *)o->cells;
    case COL_PBC: return (unsigned char *)o->pbc;
    case COL_ENERGY: return (unsigned char *)o->energies;
    case COL_STRESS: return (unsigned char *)o->stress;
    case COL_STRESS_MASK: return o->stress_mask;
    default: return NULL;
    }
}

static const int read_cols[] = { COL_NUMBERS, COL_POSITIONS, COL_FORCES, COL_CELLS, COL_PBC, COL_ENERGY, COL_STRESS, COL_STRESS_MASK };

bool h5ml__direct_covers(const h5ml_direct *d, const h5ml_frames *o)
{
    if (d == NULL) return false;
    for (size_t i = 0; i < sizeof read_cols / sizeof *read_cols; i++)
        if (out_of(o, read_cols[i]) && !d->col[read_cols[i]].direct) return false;
    return true;
}

int h5ml__direct_read(h5ml_direct *d, const hid_t dset[COL_COUNT], const int64_t *splits, const int64_t *idx, int64_t n,
                      const h5ml_frames *o, char *why, size_t whylen)
{
    plan pl = { 0 };
    int rc = 0;
    int64_t atom = 0;
    for (int64_t k = 0; k < n && rc == 0;) {
        int64_t run = 1; /* consecutive structures read as one run */
        while (k + run < n && idx[k + run] == idx[k] + run) run++;
        int64_t s = idx[k], a0 = splits[s], na = splits[s + run] - a0;
        for (size_t i = 0; i < sizeof read_cols / sizeof *read_cols && rc == 0; i++) {
            int c = read_cols[i];
            unsigned char *base = out_of(o, c);
            if (base == NULL) continue;
            const dcol *col = &d->col[c];
            bool per_atom = h5ml__cols[c].per_atom == 1;
            int64_t first = per_atom ? a0 : s, count = per_atom ? na : run, dst_row = per_atom ? atom : k;
            if (count > 0) rc = plan_rows(&pl, col, c, first, count, base + (size_t)dst_row * col->row_bytes);
        }
        if (o->natoms)
            for (int64_t q = 0; q < run; q++) o->natoms[k + q] = splits[s + q + 1] - splits[s + q];
        atom += na;
        k += run;
    }
    if (rc < 0) snprintf(why, whylen, "out of memory");
    else if (pl.n > 0) rc = execute(d, dset, &pl, why, whylen);
    free(pl.p);
    return rc;
}
