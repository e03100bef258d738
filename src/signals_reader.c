/* The signal-cache reader (h5ml.h, section 6): flat and split files, h5ml's and the
 * original tools'. Chunks of whole signals filtered by shuffle, deflate or LZF (what h5ml
 * and h5py write) are read directly: the chunk's address is asked of HDF5 once, then the
 * bytes are pread and decoded here, on several threads for a batch; anything else goes
 * through H5Dread. A true LRU cache (capacity in signals) and a prefetch block (consecutive
 * signals read together) sit in front. */
#define _GNU_SOURCE
#include "chunkcol.h"
#include "pool.h"
#include "signals_priv.h"

#include <errno.h>
#include <jansson.h>
#include <libdeflate.h>
#include <liblzf/lzf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The LRU: an open-addressing map from signal index to slot, and a doubly linked list of
 * slots from most to least recently used. */
typedef struct lru {
    int64_t cap, used;
    float *data;          /* cap x length */
    int64_t *key;         /* slot -> signal index */
    int64_t *label;
    int32_t *prev, *next; /* list, -1 ends */
    int32_t head, tail;
    int64_t *map;         /* hash slots -> slot index or -1; size mapcap (power of 2) */
    int64_t mapcap;
} lru;

typedef struct chunk_loc {
    haddr_t addr;
    hsize_t size;
    uint32_t mask;
    bool known, present;
} chunk_loc;

struct h5ml_sigreader {
    h5ml_base base;
    int64_t opt[H5ML_SIGR__COUNT];
    char *path, *split;
    pid_t pid;
    hid_t file, group, signals, labels_ds, indices_ds, meta_ds;
    int layout;
    int64_t split_counts[3];
    int64_t n, length;
    int64_t *labels;        /* all N */
    /* direct chunk access */
    bool direct;
    int fd;
    int64_t chunk_rows, nchunks;
    chunk_loc *chunks;
    bool shuffle;
    int codec;              /* 0 none, 1 deflate, 2 lzf */
    int nfilters;
    /* the last decoded chunk, for sequential reads */
    int64_t last_chunk;
    float *last;
    /* prefetch block */
    int64_t block_start, block_count;
    float *block;
    lru cache;
    h5ml_sigreader_stats stats;
    struct worker_state *workers; /* decode buffers kept between reads, one per thread */
    int nworkers;
};

static int64_t opt(const h5ml_sigreader *r, h5ml_sigr_option o) { return r->opt[o]; }
static void free_workers(h5ml_sigreader *r);
static void drop_worker_chunks(h5ml_sigreader *r);

h5ml_sigreader *h5ml_sigreader_new(void)
{
    h5ml_sigreader *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    h5ml__base_init(&r->base);
    r->file = r->group = r->signals = r->labels_ds = r->indices_ds = r->meta_ds = H5I_INVALID_HID;
    r->fd = -1;
    r->last_chunk = r->block_start = -1;
    return r;
}

/* ---- LRU ------------------------------------------------------------------------------- */

static void lru_free(lru *c)
{
    free(c->data);
    free(c->key);
    free(c->label);
    free(c->prev);
    free(c->next);
    free(c->map);
    memset(c, 0, sizeof *c);
}

static int lru_init(lru *c, int64_t cap, int64_t length)
{
    lru_free(c);
    if (cap <= 0) return 0;
    c->cap = cap;
    c->mapcap = 16;
    while (c->mapcap < 2 * cap) c->mapcap *= 2;
    c->data = malloc(sizeof *c->data * (size_t)(cap * length));
    c->key = malloc(sizeof *c->key * (size_t)cap);
    c->label = malloc(sizeof *c->label * (size_t)cap);
    c->prev = malloc(sizeof *c->prev * (size_t)cap);
    c->next = malloc(sizeof *c->next * (size_t)cap);
    c->map = malloc(sizeof *c->map * (size_t)c->mapcap);
    if (!c->data || !c->key || !c->label || !c->prev || !c->next || !c->map) {
        lru_free(c);
        return -1;
    }
    for (int64_t k = 0; k < c->mapcap; k++) c->map[k] = -1;
    c->head = c->tail = -1;
    return 0;
}

static uint64_t hash64(int64_t k)
{
    uint64_t z = (uint64_t)k * 0x9e3779b97f4a7c15ull;
    return z ^ (z >> 29);
}

/* Hash slot holding key, or the empty slot where it would go. */
static int64_t lru_probe(const lru *c, int64_t key)
{
    int64_t h = (int64_t)(hash64(key) & (uint64_t)(c->mapcap - 1));
    while (c->map[h] >= 0 && c->key[c->map[h]] != key) h = (h + 1) & (c->mapcap - 1);
    return h;
}

static void lru_unlink(lru *c, int32_t s)
{
    if (c->prev[s] >= 0) c->next[c->prev[s]] = c->next[s];
    else c->head = c->next[s];
    if (c->next[s] >= 0) c->prev[c->next[s]] = c->prev[s];
    else c->tail = c->prev[s];
}

static void lru_push_front(lru *c, int32_t s)
{
    c->prev[s] = -1;
    c->next[s] = c->head;
    if (c->head >= 0) c->prev[c->head] = s;
    c->head = s;
    if (c->tail < 0) c->tail = s;
}

/* Removes key's hash entry, re-placing the entries after it (linear probing deletion). */
static void lru_unmap(lru *c, int64_t key)
{
    int64_t h = lru_probe(c, key);
    if (c->map[h] < 0) return;
    c->map[h] = -1;
    for (int64_t j = (h + 1) & (c->mapcap - 1); c->map[j] >= 0; j = (j + 1) & (c->mapcap - 1)) {
        int64_t s = c->map[j];
        c->map[j] = -1;
        c->map[lru_probe(c, c->key[s])] = s;
    }
}

static const float *lru_get(lru *c, int64_t key, int64_t length, int64_t *label)
{
    if (c->cap == 0) return NULL;
    int64_t h = lru_probe(c, key);
    if (c->map[h] < 0) return NULL;
    int32_t s = (int32_t)c->map[h];
    lru_unlink(c, s);
    lru_push_front(c, s);
    if (label) *label = c->label[s];
    return c->data + (size_t)s * (size_t)length;
}

static void lru_put(lru *c, int64_t key, const float *sig, int64_t label, int64_t length)
{
    if (c->cap == 0 || c->map[lru_probe(c, key)] >= 0) return;
    int32_t s;
    if (c->used < c->cap) {
        s = (int32_t)c->used++;
    } else { /* evict the least recently used */
        s = c->tail;
        lru_unlink(c, s);
        lru_unmap(c, c->key[s]);
    }
    c->key[s] = key;
    c->label[s] = label;
    memcpy(c->data + (size_t)s * (size_t)length, sig, sizeof *sig * (size_t)length);
    c->map[lru_probe(c, key)] = s;
    lru_push_front(c, s);
}

/* ---- opening ----------------------------------------------------------------------------- */

static void close_file(h5ml_sigreader *r)
{
    hid_t *ids[] = { &r->meta_ds, &r->indices_ds, &r->labels_ds, &r->signals };
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
        if (*ids[k] >= 0) H5Dclose(*ids[k]);
        *ids[k] = H5I_INVALID_HID;
    }
    if (r->group >= 0 && r->group != r->file) H5Gclose(r->group);
    if (r->file >= 0) H5Fclose(r->file);
    r->group = r->file = H5I_INVALID_HID;
    free(r->labels);
    free(r->chunks);
    r->labels = NULL;
    r->chunks = NULL;
    r->fd = -1;
    r->n = r->length = 0;
    r->last_chunk = r->block_start = -1;
    /* Chunk-sized buffers are sized by the file: a handle reopened on a split or file with
     * larger chunks must not decode into the old ones. */
    free(r->last);
    r->last = NULL;
    drop_worker_chunks(r);
}

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    char *out = data;
    size_t n = strlen(out);
    snprintf(out + n, 1024 - n, "%s'%s'", n > 1 ? ", " : "", name);
    return 0;
}

/* "Split 'X' not found. Available: ['a', 'b']", with the file's top-level names. */
static int split_not_found(h5ml_sigreader *r, const char *split)
{
    char names[1024] = "[";
    hsize_t idx = 0;
    H5Literate(r->file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, names);
    size_t n = strlen(names);
    snprintf(names + n, sizeof names - n, "]");
    return h5ml__fail(&r->base, H5ML_ERR_NOTFOUND, "Split '%s' not found. Available: %s", split, names);
}

static bool has_dataset(hid_t loc, const char *name)
{
    H5O_info_t oi;
    return H5Lexists(loc, name, H5P_DEFAULT) > 0 && H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 &&
           oi.type == H5O_TYPE_DATASET;
}

static bool is_split_group(hid_t file, const char *name)
{
    H5O_info_t oi;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0 || H5Oget_info_by_name2(file, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_GROUP)
        return false;
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    bool ok = g >= 0 && has_dataset(g, "signals");
    if (g >= 0) H5Gclose(g);
    return ok;
}

static int64_t rows_of(hid_t d)
{
    hsize_t dims[3] = { 0, 0, 0 };
    return h5ml__dims(d, dims) >= 1 ? (int64_t)dims[0] : -1;
}

/* Decides whether the signals' chunks can be read directly and how they are filtered. */
/* A contiguous, unfiltered float32 dataset (what h5py writes without compression) is one
 * "chunk" of every row, read directly too. */
static bool classify_contiguous(h5ml_sigreader *r, hid_t dcpl, hid_t t)
{
    if (H5Pget_layout(dcpl) != H5D_CONTIGUOUS || H5Tequal(t, H5T_IEEE_F32LE) <= 0 || H5Pget_nfilters(dcpl) != 0) return false;
    haddr_t addr = H5Dget_offset(r->signals);
    r->chunk_rows = r->n > 0 ? r->n : 1;
    r->nchunks = 1;
    r->chunks = calloc(1, sizeof *r->chunks);
    if (r->chunks == NULL) return false;
    r->chunks[0] = (chunk_loc){ addr, (hsize_t)(r->n * r->length) * sizeof(float), 0, true, addr != HADDR_UNDEF };
    return true;
}

/* Decides whether the signals can be read directly (pread and, for filtered chunks, decoded
 * here) and how they are filtered. */
static void classify_chunks(h5ml_sigreader *r)
{
    hid_t dcpl = H5Dget_create_plist(r->signals), t = H5Dget_type(r->signals);
    hsize_t chunk[2] = { 0, 0 };
    r->shuffle = false;
    r->codec = 0;
    r->nfilters = 0;
    void *h = NULL;
    bool ok = H5Fget_vfd_handle(r->file, H5P_DEFAULT, &h) >= 0 && h != NULL;
    if (ok && classify_contiguous(r, dcpl, t)) {
        r->direct = true;
        r->fd = *(int *)h;
        H5Tclose(t);
        H5Pclose(dcpl);
        return;
    }
    ok = ok && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, chunk) == 2 && chunk[1] == (hsize_t)r->length &&
         H5Tequal(t, H5T_IEEE_F32LE) > 0;
    int nf = ok ? H5Pget_nfilters(dcpl) : 0;
    r->nfilters = nf;
    for (int i = 0; ok && i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && i == 0) r->shuffle = true;
        else if (id == H5Z_FILTER_DEFLATE && i == nf - 1) r->codec = 1;
        else if (id == H5ML_FILTER_LZF && i == nf - 1) r->codec = 2;
        else ok = false;
    }
    r->direct = ok;
    if (ok) {
        r->fd = *(int *)h;
        r->chunk_rows = (int64_t)chunk[0];
        r->nchunks = (r->n + r->chunk_rows - 1) / r->chunk_rows;
        r->chunks = calloc((size_t)(r->nchunks ? r->nchunks : 1), sizeof *r->chunks);
        if (r->chunks == NULL) r->direct = false;
    }
    H5Tclose(t);
    H5Pclose(dcpl);
}

static int count_splits(h5ml_sigreader *r)
{
    static const char *const names[3] = { "train", "val", "test" };
    for (int k = 0; k < 3; k++) {
        r->split_counts[k] = -1;
        if (!is_split_group(r->file, names[k])) continue;
        hid_t g = H5Gopen2(r->file, names[k], H5P_DEFAULT), d = H5Dopen2(g, "signals", H5P_DEFAULT);
        r->split_counts[k] = d >= 0 ? rows_of(d) : -1;
        if (d >= 0) H5Dclose(d);
        H5Gclose(g);
    }
    H5Eclear2(H5E_DEFAULT);
    return r->split_counts[0] >= 0 || r->split_counts[1] >= 0 || r->split_counts[2] >= 0;
}

static int open_impl(h5ml_sigreader *r, const char *path, const char *split)
{
    struct stat st;
    if (stat(path, &st) < 0) return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: is a directory", path);
    if (H5Fis_hdf5(path) <= 0) return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: not an HDF5 file", path);
    hid_t fapl = h5ml__fapl_read();
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (r->file < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_IO, "%s: cannot open", path);
    bool split_file = count_splits(r);
    r->layout = split_file ? H5ML_SIG_SPLIT : H5ML_SIG_FLAT;
    if (split && *split) {
        if (!is_split_group(r->file, split)) return split_not_found(r, split);
        r->group = H5Gopen2(r->file, split, H5P_DEFAULT);
    } else if (has_dataset(r->file, "signals")) {
        r->group = r->file;
    } else if (split_file) {
        return h5ml__fail(&r->base, H5ML_ERR_ARG, "%s is split into train, val and test: name the split to read", path);
    } else {
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: not a signal cache (no /signals dataset, no train/val/test groups)", path);
    }
    const char *where = split && *split ? split : "";
    if (!has_dataset(r->group, "labels"))
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s%slabels is missing", path, where, *where ? "/" : "");
    r->signals = H5Dopen2(r->group, "signals", H5P_DEFAULT);
    r->labels_ds = H5Dopen2(r->group, "labels", H5P_DEFAULT);
    if (has_dataset(r->group, "indices")) r->indices_ds = H5Dopen2(r->group, "indices", H5P_DEFAULT);
    if (has_dataset(r->group, "metadata")) r->meta_ds = H5Dopen2(r->group, "metadata", H5P_DEFAULT);
    hsize_t dims[3] = { 0, 0, 0 };
    hid_t t = r->signals >= 0 ? H5Dget_type(r->signals) : -1;
    bool float_ok = h5ml__plain_number(t, H5T_FLOAT) || h5ml__plain_number(t, H5T_INTEGER);
    if (t >= 0) H5Tclose(t);
    if (r->signals < 0 || h5ml__dims(r->signals, dims) != 2 || !float_ok)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s%ssignals must be a 2-D numeric dataset (N, length)", path, where,
                          *where ? "/" : "");
    r->n = (int64_t)dims[0];
    r->length = (int64_t)dims[1];
    hid_t opened[] = { r->signals, r->labels_ds, r->indices_ds, r->meta_ds };
    for (size_t k = 0; k < sizeof opened / sizeof *opened; k++)
        if (opened[k] >= 0 && !h5ml__lzf_params_ok(opened[k]))
            return h5ml__fail(&r->base, H5ML_ERR_SCHEMA,
                              "%s: /%s%s: a dataset's LZF filter records a chunk size that is not its chunks' (corrupt file?)", path,
                              where, *where ? "/" : "");
    /* Dimensions are believed as far as the file's bytes can hold them (see h5ml__rows_plausible). */
    if (r->n < 0 || r->length < 0 || (uint64_t)r->length > (UINT64_MAX >> 3) ||
        !h5ml__rows_plausible(r->signals, r->n, (size_t)r->length * sizeof(float), (int64_t)st.st_size) ||
        (r->labels_ds >= 0 && !h5ml__rows_plausible(r->labels_ds, r->n, sizeof(int64_t), (int64_t)st.st_size)))
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA,
                          "%s: /%s%ssignals claims %llu x %llu samples, more than the file's %lld bytes can hold (corrupt file?)", path,
                          where, *where ? "/" : "", (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)st.st_size);
    hid_t lt = r->labels_ds >= 0 ? H5Dget_type(r->labels_ds) : -1;
    bool lab_ok = h5ml__plain_number(lt, H5T_INTEGER) && rows_of(r->labels_ds) == r->n && h5ml__dims(r->labels_ds, dims) == 1;
    if (lt >= 0) H5Tclose(lt);
    if (!lab_ok)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s%slabels must be %lld integers, one per signal", path, where,
                          *where ? "/" : "", (long long)r->n);
    if (r->indices_ds >= 0 && rows_of(r->indices_ds) != r->n)
        return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: /%s/indices has %lld rows for %lld signals", path, where,
                          (long long)rows_of(r->indices_ds), (long long)r->n);
    if (r->meta_ds >= 0 && rows_of(r->meta_ds) != r->n) { /* the original tools' root metadata of a split file */
        H5Dclose(r->meta_ds);
        r->meta_ds = H5I_INVALID_HID;
    }
    if (r->length < 1 && r->n > 0) return h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: signals of length 0", path);
    r->labels = malloc(sizeof *r->labels * (size_t)(r->n > 0 ? r->n : 1));
    if (r->labels == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    if (r->n > 0 && h5ml__read_rows(r->labels_ds, H5T_NATIVE_INT64, 0, r->n, r->labels) < 0)
        return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read labels", path);
    classify_chunks(r);
    if (lru_init(&r->cache, opt(r, H5ML_SIGR_CACHE), r->length) < 0) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory for the cache");
    return H5ML_OK;
}

int h5ml_sigreader_open(h5ml_sigreader *r, const char *path, const char *split)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (path == NULL) return h5ml__fail(&r->base, H5ML_ERR_ARG, "no input path given");
    if (h5ml__init() < 0) return h5ml__fail(&r->base, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    close_file(r);
    char *p = strdup(path), *s = split ? strdup(split) : NULL;
    free(r->path);
    free(r->split);
    r->path = p;
    r->split = s;
    r->pid = getpid();
    int rc = (p == NULL || (split && s == NULL)) ? h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory") : open_impl(r, path, split);
    if (rc) close_file(r);
    else h5ml__ok(&r->base);
    h5ml__h5_restore(&q);
    return rc;
}

/* In a forked child the parent's HDF5 handles are a copy of its state: reopen instead. */
static int ensure_process(h5ml_sigreader *r)
{
    if (r->file < 0) return h5ml__fail(&r->base, H5ML_ERR_STATE, "the reader is not open");
    if (r->pid == getpid()) return H5ML_OK;
    char *path = strdup(r->path), *split = r->split ? strdup(r->split) : NULL;
    int rc = path ? h5ml_sigreader_open(r, path, split) : h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    free(path);
    free(split);
    return rc;
}

void h5ml_sigreader_close(h5ml_sigreader *r)
{
    if (r == NULL) return;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    if (r->pid == getpid() || r->file < 0) close_file(r);
    else { /* a forked child: drop the copies without touching the parent's file */
        free(r->labels);
        free(r->chunks);
    }
    h5ml__h5_restore(&q);
    lru_free(&r->cache);
    free_workers(r);
    free(r->last);
    free(r->block);
    free(r->path);
    free(r->split);
    free(r);
}

int h5ml_sigreader_set(h5ml_sigreader *r, h5ml_sigr_option o, int64_t value)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (o <= 0 || o >= H5ML_SIGR__COUNT) return h5ml__fail(&r->base, H5ML_ERR_ARG, "unknown signal reader option %d", (int)o);
    if (value < 0 || value > (INT64_C(1) << 31)) return h5ml__fail(&r->base, H5ML_ERR_ARG, "option value out of range: %lld", (long long)value);
    r->opt[o] = value;
    if (o == H5ML_SIGR_CACHE && r->file >= 0 && lru_init(&r->cache, value, r->length) < 0)
        return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory for a cache of %lld signals", (long long)value);
    if (o == H5ML_SIGR_PREFETCH) r->block_start = -1;
    return h5ml__ok(&r->base);
}

int64_t h5ml_sigreader_count(const h5ml_sigreader *r) { return r ? r->n : 0; }
int64_t h5ml_sigreader_length(const h5ml_sigreader *r) { return r ? r->length : 0; }

int h5ml_sigreader_layout(const h5ml_sigreader *r, int64_t split_counts[3])
{
    if (r == NULL) return H5ML_SIG_FLAT;
    if (split_counts) memcpy(split_counts, r->split_counts, sizeof r->split_counts);
    return r->layout;
}

void h5ml_sigreader_get_stats(const h5ml_sigreader *r, h5ml_sigreader_stats *out)
{
    memset(out, 0, sizeof *out);
    if (r) *out = r->stats;
}

/* ---- chunks ------------------------------------------------------------------------------- */

/* Looks up where chunk c lives (HDF5 call: the calling thread only). */
static int locate(h5ml_sigreader *r, int64_t c)
{
    chunk_loc *l = &r->chunks[c];
    if (l->known) return 0;
    hsize_t off[2] = { (hsize_t)(c * r->chunk_rows), 0 };
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(r->signals, off, &mask, &addr, &size) < 0) return -1;
    l->addr = addr;
    l->size = size;
    l->mask = mask;
    l->present = addr != HADDR_UNDEF && size > 0;
    l->known = true;
    return 0;
}

typedef struct decoder {
    unsigned char *in, *tmp;
    size_t in_cap, tmp_cap;
    struct libdeflate_decompressor *inflate;
} decoder;

static void decoder_free(decoder *d)
{
    free(d->in);
    free(d->tmp);
    if (d->inflate) libdeflate_free_decompressor(d->inflate);
}

static int grow(unsigned char **p, size_t *cap, size_t n)
{
    if (*cap >= n) return 0;
    unsigned char *q = realloc(*p, n);
    if (q == NULL) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Reads and decodes chunk `l` (raw size `full` bytes) into out. Thread-safe given its own
 * decoder. Returns 0, or -1 with a reason in why. */
static int decode_chunk(int fd, const chunk_loc *l, bool shuffle, int codec, size_t full, decoder *d, unsigned char *out,
                        const char **why)
{
    if (!l->present) { /* never written: HDF5's fill value, zero */
        memset(out, 0, full);
        return 0;
    }
    if (grow(&d->in, &d->in_cap, (size_t)l->size) < 0) return *why = "out of memory", -1;
    ssize_t got = pread(fd, d->in, (size_t)l->size, (off_t)l->addr);
    if (got != (ssize_t)l->size) return *why = "short read", -1;
    bool sh = shuffle && !(l->mask & 1u), cz = codec && !(l->mask & (shuffle ? 2u : 1u));
    const unsigned char *cur = d->in;
    size_t n = (size_t)l->size;
    unsigned char *dst = sh ? NULL : out;
    if (sh && grow(&d->tmp, &d->tmp_cap, full) < 0) return *why = "out of memory", -1;
    if (sh) dst = d->tmp;
    if (cz) {
        size_t actual = 0;
        if (codec == 1) {
            if (d->inflate == NULL && (d->inflate = libdeflate_alloc_decompressor()) == NULL) return *why = "out of memory", -1;
            if (libdeflate_zlib_decompress(d->inflate, cur, n, dst, full, &actual) != LIBDEFLATE_SUCCESS || actual != full)
                return *why = "corrupt deflate data", -1;
        } else if ((actual = lzf_decompress(cur, (unsigned)n, dst, (unsigned)full)) != full) {
            return *why = "corrupt LZF data", -1;
        }
    } else {
        if (n != full) return *why = "unfiltered chunk of the wrong size", -1;
        memcpy(dst, cur, full);
    }
    if (sh) h5ml__unshuffle(dst, out, full, sizeof(float));
    return 0;
}

/* Whether chunk l holds its rows as plain float32 (no filter, or every filter skipped). */
static bool is_raw(const h5ml_sigreader *r, const chunk_loc *l)
{
    unsigned all = (1u << r->nfilters) - 1;
    return l->present && (r->nfilters == 0 || (l->mask & all) == all);
}

/* Rows [row, row+k) of raw chunk l straight into out. */
static int pread_rows(int fd, const chunk_loc *l, int64_t row, int64_t k, int64_t length, float *out)
{
    size_t bytes = sizeof(float) * (size_t)(k * length);
    haddr_t at = l->addr + (haddr_t)row * (haddr_t)length * sizeof(float);
    if ((hsize_t)(row + k) * (hsize_t)length * sizeof(float) > l->size) return -1;
    unsigned char *p = (unsigned char *)out;
    while (bytes > 0) {
        ssize_t got = pread(fd, p, bytes, (off_t)at);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            return -1;
        }
        p += got;
        bytes -= (size_t)got;
        at += (haddr_t)got;
    }
    return 0;
}

/* Rows [start, start+count) through HDF5 (files whose chunks are not read directly). */
static int read_rows_h5(h5ml_sigreader *r, int64_t start, int64_t count, float *out)
{
    hsize_t off[2] = { (hsize_t)start, 0 }, cnt[2] = { (hsize_t)count, (hsize_t)r->length };
    if (!h5ml__chunks_whole(r->signals, start, count))
        return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: cannot read signals: a chunk is stored shorter than its shape (corrupt file?)",
                          r->path);
    hid_t fs = H5Dget_space(r->signals), ms = H5Screate_simple(2, cnt, NULL);
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (e >= 0) e = H5Dread(r->signals, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read signals", r->path);
    return H5ML_OK;
}

/* ---- batch reads: each chunk once, on worker threads ---------------------------------------- */

typedef struct want { int64_t chunk, row, pos; } want; /* signal row wanted at output position pos */

static int cmp_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->chunk != y->chunk) return x->chunk < y->chunk ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* A decoding thread's buffers; kept on the reader, since fresh chunk-sized buffers cost
 * page faults on every read. */
typedef struct worker_state {
    decoder d;
    float *chunk;
} worker_state;

static worker_state *worker_states(h5ml_sigreader *r, int n)
{
    if (n > r->nworkers) {
        worker_state *w = realloc(r->workers, sizeof *w * (size_t)n);
        if (w == NULL) return NULL;
        memset(w + r->nworkers, 0, sizeof *w * (size_t)(n - r->nworkers));
        r->workers = w;
        r->nworkers = n;
    }
    return r->workers;
}

static void drop_worker_chunks(h5ml_sigreader *r)
{
    for (int k = 0; k < r->nworkers; k++) {
        free(r->workers[k].chunk);
        r->workers[k].chunk = NULL;
    }
}

static void free_workers(h5ml_sigreader *r)
{
    for (int k = 0; k < r->nworkers; k++) {
        decoder_free(&r->workers[k].d);
        free(r->workers[k].chunk);
    }
    free(r->workers);
    r->workers = NULL;
    r->nworkers = 0;
}

typedef struct batch {
    h5ml_sigreader *r;
    int next_worker;
    const want *w;
    const int64_t *group_start; /* wants of chunk group g: [group_start[g], group_start[g+1]) */
    int64_t ngroups, next;
    float *out;
    bool failed;
    const char *why;
    int64_t failed_chunk;
} batch;

/* The wants of one raw chunk: runs of consecutive rows going to consecutive outputs are
 * one pread each (a range read is one pread per chunk). */
static int read_raw_group(batch *b, const want *w, int64_t n)
{
    h5ml_sigreader *r = b->r;
    for (int64_t k = 0; k < n;) {
        int64_t run = 1;
        while (k + run < n && w[k + run].row == w[k].row + run && w[k + run].pos == w[k].pos + run) run++;
        if (pread_rows(r->fd, &r->chunks[w[k].chunk], w[k].row, run, r->length, b->out + (size_t)w[k].pos * (size_t)r->length) < 0)
            return -1;
        k += run;
    }
    return 0;
}

static void *batch_worker(void *arg)
{
    batch *b = arg;
    h5ml_sigreader *r = b->r;
    size_t full = (size_t)(r->chunk_rows * r->length) * sizeof(float);
    worker_state *ws = &r->workers[__atomic_fetch_add(&b->next_worker, 1, __ATOMIC_RELAXED)];
    decoder *d = &ws->d;
    for (;;) {
        int64_t g = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (g >= b->ngroups) break;
        const want *first = &b->w[b->group_start[g]];
        int64_t nw = b->group_start[g + 1] - b->group_start[g];
        const chunk_loc *l = &r->chunks[first->chunk];
        const char *why = NULL;
        if (is_raw(r, l)) {
            if (read_raw_group(b, first, nw) == 0) continue;
            why = "short read";
        } else if (ws->chunk == NULL && (ws->chunk = malloc(full)) == NULL) {
            why = "out of memory";
        } else if (decode_chunk(r->fd, l, r->shuffle, r->codec, full, d, (unsigned char *)ws->chunk, &why) == 0) {
            for (int64_t k = 0; k < nw; k++)
                memcpy(b->out + (size_t)first[k].pos * (size_t)r->length, ws->chunk + (size_t)first[k].row * (size_t)r->length,
                       sizeof(float) * (size_t)r->length);
            continue;
        }
        b->why = why;
        b->failed_chunk = first->chunk;
        __atomic_store_n(&b->failed, true, __ATOMIC_RELAXED);
        break;
    }
    return NULL;
}

/* Reads signals idx[0..n) (all in range) into out, each chunk decoded once. */
static int read_direct(h5ml_sigreader *r, const int64_t *idx, int64_t n, float *out)
{
    want *w = malloc(sizeof *w * (size_t)n);
    int64_t *gs = malloc(sizeof *gs * (size_t)(n + 1));
    if (w == NULL || gs == NULL) {
        free(w);
        free(gs);
        return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    }
    for (int64_t k = 0; k < n; k++) w[k] = (want){ idx[k] / r->chunk_rows, idx[k] % r->chunk_rows, k };
    qsort(w, (size_t)n, sizeof *w, cmp_want);
    int64_t ng = 0;
    int rc = H5ML_OK;
    for (int64_t k = 0; k < n && rc == H5ML_OK; k++) {
        if (k > 0 && w[k].chunk == w[k - 1].chunk) continue;
        gs[ng++] = k;
        if (locate(r, w[k].chunk) < 0) rc = h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot locate a chunk of signals", r->path);
    }
    gs[ng] = n;
    r->stats.chunks_read += ng;
    batch b = { .r = r, .w = w, .group_start = gs, .ngroups = ng, .out = out };
    int64_t threads = opt(r, H5ML_SIGR_THREADS);
    int nt = (int)(threads ? threads : h5ml__default_threads());
    if (nt > ng) nt = (int)ng;
    if (r->nfilters == 0) nt = 1; /* plain preads: the kernel's copy, nothing to spread */
    if (nt > 64) nt = 64;
    if (nt < 1) nt = 1;
    if (rc == H5ML_OK && worker_states(r, nt) == NULL) rc = h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < nt && rc == H5ML_OK; t++)
        if (pthread_create(&tid[started], NULL, batch_worker, &b) == 0) started++;
    if (rc == H5ML_OK) batch_worker(&b);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    if (rc == H5ML_OK && b.failed)
        rc = h5ml__fail(&r->base, H5ML_ERR_IO, "%s: cannot read chunk %lld of signals: %s", r->path, (long long)b.failed_chunk,
                        b.why ? b.why : "error");
    free(w);
    free(gs);
    return rc;
}

/* One signal, through the last-chunk buffer (sequential reads decode each chunk once). */
static int read_one(h5ml_sigreader *r, int64_t i, float *out)
{
    if (!r->direct) return read_rows_h5(r, i, 1, out);
    int64_t c = i / r->chunk_rows;
    size_t full = (size_t)(r->chunk_rows * r->length) * sizeof(float);
    if (locate(r, c) < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot locate a chunk of signals", r->path);
    if (is_raw(r, &r->chunks[c])) { /* just the row, straight into out */
        r->stats.chunks_read++;
        if (pread_rows(r->fd, &r->chunks[c], i % r->chunk_rows, 1, r->length, out) < 0)
            return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: cannot read signal %lld", r->path, (long long)i);
        return H5ML_OK;
    }
    if (c != r->last_chunk) {
        if (r->last == NULL && (r->last = malloc(full)) == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
        if (locate(r, c) < 0) return h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot locate a chunk of signals", r->path);
        if (worker_states(r, 1) == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
        const char *why = NULL;
        int e = decode_chunk(r->fd, &r->chunks[c], r->shuffle, r->codec, full, &r->workers[0].d, (unsigned char *)r->last, &why);
        r->stats.chunks_read++;
        r->last_chunk = e < 0 ? -1 : c;
        if (e < 0) return h5ml__fail(&r->base, H5ML_ERR_IO, "%s: cannot read chunk %lld of signals: %s", r->path, (long long)c, why);
    }
    memcpy(out, r->last + (size_t)(i % r->chunk_rows) * (size_t)r->length, sizeof *out * (size_t)r->length);
    return H5ML_OK;
}

static int range_error(h5ml_sigreader *r, int64_t i)
{
    return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Index %lld out of range [0, %lld)", (long long)i, (long long)r->n);
}

static int read_range_impl(h5ml_sigreader *r, int64_t start, int64_t count, float *out)
{
    if (!r->direct) return read_rows_h5(r, start, count, out);
    int64_t *idx = malloc(sizeof *idx * (size_t)(count ? count : 1));
    if (idx == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < count; k++) idx[k] = start + k;
    int rc = read_direct(r, idx, count, out);
    free(idx);
    return rc;
}

/* Signal i from the prefetch block, loading the block that holds it when needed. */
static int read_prefetched(h5ml_sigreader *r, int64_t i, float *out)
{
    int64_t p = opt(r, H5ML_SIGR_PREFETCH);
    if (r->block_start < 0 || i < r->block_start || i >= r->block_start + r->block_count) {
        int64_t start = i / p * p, count = r->n - start < p ? r->n - start : p;
        float *blk = realloc(r->block, sizeof *blk * (size_t)(p * r->length));
        if (blk == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory for a prefetch block of %lld signals", (long long)p);
        r->block = blk;
        r->block_start = -1;
        int rc = read_range_impl(r, start, count, r->block);
        if (rc) return rc;
        r->block_start = start;
        r->block_count = count;
        r->stats.misses++;
    } else {
        r->stats.hits++;
    }
    memcpy(out, r->block + (size_t)(i - r->block_start) * (size_t)r->length, sizeof *out * (size_t)r->length);
    return H5ML_OK;
}

static int get_impl(h5ml_sigreader *r, int64_t i, float *out)
{
    const float *hit = lru_get(&r->cache, i, r->length, NULL);
    if (hit) {
        r->stats.hits++;
        memcpy(out, hit, sizeof *out * (size_t)r->length);
        return H5ML_OK;
    }
    int rc;
    if (opt(r, H5ML_SIGR_PREFETCH) > 0) {
        rc = read_prefetched(r, i, out);
    } else {
        r->stats.misses++;
        rc = read_one(r, i, out);
    }
    if (rc == H5ML_OK) lru_put(&r->cache, i, out, r->labels[i], r->length);
    return rc;
}

int h5ml_sigreader_get(h5ml_sigreader *r, int64_t i, float *out, int64_t *label)
{
    if (r == NULL) return H5ML_ERR_ARG;
    int rc = ensure_process(r);
    if (rc) return rc;
    if (i < 0 || i >= r->n) return range_error(r, i);
    if (label) *label = r->labels[i];
    if (out == NULL) return h5ml__ok(&r->base);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    rc = get_impl(r, i, out);
    h5ml__h5_restore(&q);
    return rc ? rc : h5ml__ok(&r->base);
}

int h5ml_sigreader_read(h5ml_sigreader *r, const int64_t *idx, int64_t n, float *out, int64_t *labels)
{
    if (r == NULL || (n > 0 && idx == NULL)) return H5ML_ERR_ARG;
    int rc = ensure_process(r);
    if (rc) return rc;
    for (int64_t k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= r->n) return range_error(r, idx[k]);
    if (labels)
        for (int64_t k = 0; k < n; k++) labels[k] = r->labels[idx[k]];
    if (out == NULL || n == 0) return h5ml__ok(&r->base);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    if (!r->direct || r->cache.cap > 0 || opt(r, H5ML_SIGR_PREFETCH) > 0) {
        for (int64_t k = 0; k < n && rc == H5ML_OK; k++) rc = get_impl(r, idx[k], out + (size_t)k * (size_t)r->length);
    } else {
        r->stats.misses += n;
        rc = read_direct(r, idx, n, out);
    }
    h5ml__h5_restore(&q);
    return rc ? rc : h5ml__ok(&r->base);
}

int h5ml_sigreader_read_range(h5ml_sigreader *r, int64_t start, int64_t count, float *out, int64_t *labels)
{
    if (r == NULL) return H5ML_ERR_ARG;
    int rc = ensure_process(r);
    if (rc) return rc;
    if (count < 0 || start < 0 || start > r->n || count > r->n - start)
        return h5ml__fail(&r->base, H5ML_ERR_RANGE, "Range [%lld, %lld) out of range [0, %lld)", (long long)start,
                          (long long)(start + count), (long long)r->n);
    if (labels) memcpy(labels, r->labels + start, sizeof *labels * (size_t)count);
    if (out == NULL || count == 0) return h5ml__ok(&r->base);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    r->stats.misses += count;
    rc = read_range_impl(r, start, count, out);
    h5ml__h5_restore(&q);
    return rc ? rc : h5ml__ok(&r->base);
}

int h5ml_sigreader_labels(h5ml_sigreader *r, int64_t *out)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    int rc = ensure_process(r);
    if (rc) return rc;
    memcpy(out, r->labels, sizeof *out * (size_t)r->n);
    return h5ml__ok(&r->base);
}

int h5ml_sigreader_indices(h5ml_sigreader *r, int64_t *out)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    int rc = ensure_process(r);
    if (rc) return rc;
    if (r->indices_ds < 0) {
        for (int64_t k = 0; k < r->n; k++) out[k] = k;
        return h5ml__ok(&r->base);
    }
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    if (r->n > 0 && h5ml__read_rows(r->indices_ds, H5T_NATIVE_INT64, 0, r->n, out) < 0)
        rc = h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read indices", r->path);
    h5ml__h5_restore(&q);
    return rc ? rc : h5ml__ok(&r->base);
}

int h5ml_sigreader_has_metadata(const h5ml_sigreader *r) { return r && r->meta_ds >= 0; }

int h5ml_sigreader_metadata(h5ml_sigreader *r, int64_t i, char **json)
{
    if (r == NULL || json == NULL) return H5ML_ERR_ARG;
    *json = NULL;
    int rc = ensure_process(r);
    if (rc) return rc;
    if (i < 0 || i >= r->n) return range_error(r, i);
    if (r->meta_ds < 0) return h5ml__ok(&r->base);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    hid_t ft = H5Dget_type(r->meta_ds);
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = h5ml__fail(&r->base, H5ML_ERR_SCHEMA, "%s: metadata is not a string dataset", r->path);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t t = h5ml__vlen_str_type();
        char *v = NULL;
        if (h5ml__read_rows(r->meta_ds, t, i, 1, &v) < 0) rc = h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read metadata", r->path);
        if (v && *v) *json = strdup(v);
        if (v) H5free_memory(v);
        H5Tclose(t);
    } else {
        size_t len = H5Tget_size(ft);
        char *v = calloc(len + 1, 1);
        if (v == NULL || h5ml__read_rows(r->meta_ds, ft, i, 1, v) < 0) rc = h5ml__fail_h5(&r->base, H5ML_ERR_HDF5, "%s: cannot read metadata", r->path);
        if (rc == H5ML_OK && *v) *json = v;
        else free(v);
    }
    H5Tclose(ft);
    h5ml__h5_restore(&q);
    return rc ? rc : h5ml__ok(&r->base);
}

int h5ml_sigreader_attrs(h5ml_sigreader *r, char **json)
{
    if (r == NULL || json == NULL) return H5ML_ERR_ARG;
    *json = NULL;
    int rc = ensure_process(r);
    if (rc) return rc;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    *json = h5ml__attrs_json(r->file);
    h5ml__h5_restore(&q);
    if (*json == NULL) return h5ml__fail(&r->base, H5ML_ERR_NOMEM, "out of memory");
    return h5ml__ok(&r->base);
}

/* The reader's open file (for the whole-file operations). */
hid_t h5ml__sigreader_file(const h5ml_sigreader *r) { return r->file; }
