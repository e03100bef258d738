/* h5ml's file driver: POSIX I/O like HDF5's sec2 driver, plus two rules that make a file
 * written in SWMR mode openable by any HDF5 reader at every instant, including after the
 * writer was killed:
 *
 *  1. The superblock (v2/v3) is always written with its file-consistency flags cleared.
 *     HDF5 sets them while a writer has the file open and refuses plain opens of a file
 *     that still carries them ("file is already open for write"); a killed writer never
 *     clears them. The checksum is recomputed (Jenkins lookup3, as HDF5 does).
 *  2. Before any metadata is written, the superblock's end-of-file address is raised to the
 *     current end of allocation (extending the file if needed), so that no metadata on
 *     disk ever points past the end a plain reader believes in. SWMR's flush ordering
 *     already writes children before parents; this rule closes the one gap it leaves for
 *     non-SWMR readers.
 *
 * A SIGKILL cannot interrupt a single small pwrite(), and the page cache keeps writes in
 * order for other processes, so no fsync is needed for process crashes. Power loss is not
 * covered (that needs fsync ordering; see the README). Writer exclusivity is not enforced
 * here: HDF5 drops its lock in SWMR mode, so the writer takes its own (atoms_writer.c).
 *
 * A write that fails (a full disk, an I/O error) stops all writing to the file: that write
 * and every later one stay in memory only (reads still see them), and HDF5 is told they
 * succeeded. The file on disk stays what a process killed at that write would have left,
 * consistent by the rules above, and HDF5's own state stays sound (HDF5 1.10 fails a flush
 * half-way on a write error, refuses every flush after it, and crashes at exit closing the
 * file it could not close; reading back metadata it believes written but is not, it fails
 * and leaks). The writers ask h5ml__safe_error (open file) or h5ml__safe_path_error (closed
 * file) after writing, report the errno, and never finalize such a file: they stop, so
 * what is kept in memory is at most what one call wrote. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SB_SIZE 48 /* superblock v2/v3 with 8-byte addresses */
#define SB_FLAGS 11
#define SB_EOF 28
#define SB_CKSUM 44

/* Writes held back during a batched flush (see h5ml__safe_flush). */
typedef struct held_write {
    haddr_t addr;
    size_t size, at; /* `at`: offset of the bytes in the arena */
    bool meta;       /* metadata: written last page first (see put_meta) */
} held_write;

typedef struct safe_file {
    H5FD_t pub; /* must be first */
    int fd;
    bool batching;
    held_write *held;
    size_t nheld, capheld;
    unsigned char *arena;
    size_t narena, caparena;
    haddr_t eoa, eof;
    haddr_t sb_eof;            /* end-of-file address in the superblock on disk */
    unsigned char sb[SB_SIZE]; /* last superblock image on disk */
    bool have_sb;
    dev_t dev;
    ino_t ino;
    pid_t pid; /* the process that opened it: a forked child must not drop the parent's lock */
    bool apart; /* opened under h5ml__safe_open_apart: never shared (see safe_cmp) */
    bool readonly;
    int err;   /* errno of the first failed write; from then on writes are dropped */
} safe_file;

/* The errno of files whose writing failed, by inode, so that it can be asked once the file
 * is closed (its last writes happen in H5Fclose). An entry is dropped when the inode is
 * opened for writing again (a new writer, or a new file on a reused inode). */
enum { FAILED_MAX = 64 };
static struct failed_file { dev_t dev; ino_t ino; int err; } failed[FAILED_MAX];
static int nfailed_next;
static pthread_mutex_t failed_mu = PTHREAD_MUTEX_INITIALIZER;

static void failed_set(dev_t dev, ino_t ino, int err)
{
    pthread_mutex_lock(&failed_mu);
    int k = 0;
    while (k < FAILED_MAX && !(failed[k].err && failed[k].dev == dev && failed[k].ino == ino)) k++;
    if (k == FAILED_MAX) k = nfailed_next++ % FAILED_MAX;
    failed[k] = (struct failed_file){ dev, ino, err };
    pthread_mutex_unlock(&failed_mu);
}

static int failed_get(dev_t dev, ino_t ino, bool forget)
{
    int err = 0;
    pthread_mutex_lock(&failed_mu);
    for (int k = 0; k < FAILED_MAX; k++)
        if (failed[k].err && failed[k].dev == dev && failed[k].ino == ino) {
            err = failed[k].err;
            if (forget) failed[k].err = 0;
        }
    pthread_mutex_unlock(&failed_mu);
    return err;
}

/* Records the first failure of the file (errno, or EIO if errno says nothing). */
static void fail_file(safe_file *f)
{
    int e = errno ? errno : EIO;
    if (__atomic_load_n(&f->err, __ATOMIC_RELAXED)) return;
    __atomic_store_n(&f->err, e, __ATOMIC_RELAXED);
    failed_set(f->dev, f->ino, e);
}

static bool file_failed(const safe_file *f) { return __atomic_load_n(&f->err, __ATOMIC_RELAXED) != 0; }

static uint32_t rot(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static uint32_t le32(const uint8_t *k)
{
    return (uint32_t)k[0] | ((uint32_t)k[1] << 8) | ((uint32_t)k[2] << 16) | ((uint32_t)k[3] << 24);
}

/* Bob Jenkins' lookup3 hashlittle(), the checksum of HDF5's newer metadata. */
uint32_t h5ml__lookup3(const void *key, size_t length, uint32_t initval)
{
    const uint8_t *k = key;
    uint32_t a, b, c;
    a = b = c = 0xdeadbeef + (uint32_t)length + initval;
    while (length > 12) {
        a += le32(k);
        b += le32(k + 4);
        c += le32(k + 8);
        a -= c; a ^= rot(c, 4);  c += b;
        b -= a; b ^= rot(a, 6);  a += c;
        c -= b; c ^= rot(b, 8);  b += a;
        a -= c; a ^= rot(c, 16); c += b;
        b -= a; b ^= rot(a, 19); a += c;
        c -= b; c ^= rot(b, 4);  b += a;
        length -= 12;
        k += 12;
    }
    switch (length) {
    case 12: c += (uint32_t)k[11] << 24; /* fall through */
    case 11: c += (uint32_t)k[10] << 16; /* fall through */
    case 10: c += (uint32_t)k[9] << 8;   /* fall through */
    case 9:  c += k[8];                  /* fall through */
    case 8:  b += (uint32_t)k[7] << 24;  /* fall through */
    case 7:  b += (uint32_t)k[6] << 16;  /* fall through */
    case 6:  b += (uint32_t)k[5] << 8;   /* fall through */
    case 5:  b += k[4];                  /* fall through */
    case 4:  a += (uint32_t)k[3] << 24;  /* fall through */
    case 3:  a += (uint32_t)k[2] << 16;  /* fall through */
    case 2:  a += (uint32_t)k[1] << 8;   /* fall through */
    case 1:  a += k[0]; break;
    case 0:  return c;
    }
    c ^= b; c -= rot(b, 14);
    a ^= c; a -= rot(c, 11);
    b ^= a; b -= rot(a, 25);
    c ^= b; c -= rot(b, 16);
    a ^= c; a -= rot(c, 4);
    b ^= a; b -= rot(a, 14);
    c ^= b; c -= rot(b, 24);
    return c;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool sb_is_v2plus(const unsigned char *b)
{
    return memcmp(b, "\211HDF\r\n\032\n", 8) == 0 && b[8] >= 2 && b[9] == 8 && b[10] == 8;
}

static void sb_seal(unsigned char *b)
{
    b[SB_FLAGS] = 0;
    uint32_t c = h5ml__lookup3(b, SB_CKSUM, 0);
    for (int i = 0; i < 4; i++) b[SB_CKSUM + i] = (unsigned char)(c >> (8 * i));
}

static int pwrite_all(int fd, const void *buf, size_t n, haddr_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (haddr_t)w;
    }
    return 0;
}

/* A write of several pages can be cut at a page boundary by SIGKILL (the kernel checks for a
 * fatal signal between pages), leaving the head of a metadata block new and its tail old. A
 * block HDF5 grows at its end (a global heap collection gains objects where its free space
 * was) stays readable when the tail goes first: a cut leaves the old head, whose old layout
 * is complete, with new bytes only past what it describes. Every other metadata block has a
 * checksum, which a cut spoils whichever part goes first: it is written in one write, which
 * a failing device fails whole (page by page, a failure between two pages would spoil it). */
enum { PAGE = 4096 };

static int pwrite_meta(int fd, const unsigned char *buf, size_t n, haddr_t off)
{
    static const unsigned char gcol[8] = { 'G', 'C', 'O', 'L', 1, 0, 0, 0 };
    if (n < sizeof gcol || memcmp(buf, gcol, sizeof gcol) != 0) return pwrite_all(fd, buf, n, off);
    haddr_t end = off + n;
    while (end > off) {
        haddr_t start = (end - 1) / PAGE * PAGE;
        if (start < off) start = off;
        if (pwrite_all(fd, buf + (start - off), (size_t)(end - start), start) < 0) return -1;
        end = start;
    }
    return 0;
}

static int hold(safe_file *f, const void *buf, size_t n, haddr_t off, bool meta)
{
    if (f->nheld == f->capheld) {
        size_t cap = f->capheld ? 2 * f->capheld : 64;
        held_write *h = realloc(f->held, sizeof *h * cap);
        if (h == NULL) return -1;
        f->held = h;
        f->capheld = cap;
    }
    if (f->narena + n > f->caparena) {
        size_t cap = f->caparena ? 2 * f->caparena : 1 << 16;
        while (cap < f->narena + n) cap *= 2;
        unsigned char *a = realloc(f->arena, cap);
        if (a == NULL) return -1;
        f->arena = a;
        f->caparena = cap;
    }
    memcpy(f->arena + f->narena, buf, n);
    f->held[f->nheld++] = (held_write){ off, n, f->narena, meta };
    f->narena += n;
    return 0;
}

/* Every write of the file goes through here: straight to the file, or held during a batch. */
static int put(safe_file *f, const void *buf, size_t n, haddr_t off, bool meta)
{
    if (f->batching || file_failed(f)) {
        if (hold(f, buf, n, off, meta) < 0) fail_file(f); /* out of memory: the file cannot be made right */
        return 0;
    }
    if ((meta ? pwrite_meta(f->fd, buf, n, off) : pwrite_all(f->fd, buf, n, off)) < 0) {
        fail_file(f); /* from now on writes are kept in memory only: see the top of this file */
        hold(f, buf, n, off, meta);
    }
    return 0;
}

/* Writes the held writes in their order, merging runs of raw data that are contiguous both
 * in the file and in the arena into one pwrite. */
static int release(safe_file *f)
{
    if (file_failed(f)) return 0; /* kept for reads: nothing more reaches the file */
    int rc = 0;
    for (size_t i = 0; i < f->nheld && rc == 0;) {
        const held_write *h = &f->held[i];
        size_t j = i + 1, n = h->size;
        while (!h->meta && j < f->nheld && !f->held[j].meta && f->held[j].addr == h->addr + n && f->held[j].at == h->at + n)
            n += f->held[j++].size;
        rc = h->meta ? pwrite_meta(f->fd, f->arena + h->at, n, h->addr) : pwrite_all(f->fd, f->arena + h->at, n, h->addr);
        i = j;
    }
    if (rc < 0) {
        fail_file(f); /* the held writes stay, for reads; the rest never reaches the file */
        return 0;
    }
    f->nheld = f->narena = 0;
    return 0;
}

/* A read during a batch sees the held writes over the file's bytes. */
static void overlay_held(const safe_file *f, haddr_t addr, size_t size, unsigned char *buf)
{
    for (size_t i = 0; i < f->nheld; i++) {
        const held_write *h = &f->held[i];
        haddr_t lo = h->addr > addr ? h->addr : addr, hi = h->addr + h->size < addr + size ? h->addr + h->size : addr + size;
        if (lo < hi) memcpy(buf + (lo - addr), f->arena + h->at + (lo - h->addr), hi - lo);
    }
}

static int extend_to(safe_file *f, haddr_t size)
{
    if (f->eof >= size) return 0;
    if (!file_failed(f) && ftruncate(f->fd, (off_t)size) < 0) fail_file(f);
    f->eof = size;
    return 0;
}

static __thread bool open_apart; /* see h5ml__safe_open_apart */

void h5ml__safe_open_apart(bool on) { open_apart = on; }

static H5FD_t *safe_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)fapl;
    (void)maxaddr;
    int o = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
    /* Truncation is done below, and only when there is something to cut: on ext4 a file
     * truncated to zero is flushed whole when closed ("auto_da_alloc"), which costs a close
     * of a freshly written file a tenth of a second per 300 MB. */
    if (flags & H5F_ACC_CREAT) o |= O_CREAT;
    if (flags & H5F_ACC_EXCL) o |= O_EXCL;
    int fd = open(name, o | O_CLOEXEC, 0666);
    if (fd < 0) {
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_FILE, H5E_CANTOPENFILE,
                 "unable to open file: name = '%s', errno = %d, error message = '%s'", name, errno,
                 strerror(errno));
        return NULL;
    }
    struct stat st;
    safe_file *f = calloc(1, sizeof *f);
    if (f == NULL || fstat(fd, &st) < 0 || ((flags & H5F_ACC_TRUNC) && st.st_size > 0 && ftruncate(fd, 0) < 0)) {
        free(f);
        close(fd);
        return NULL;
    }
    if (flags & H5F_ACC_TRUNC) st.st_size = 0;
    f->fd = fd;
    f->pid = getpid();
    f->apart = open_apart;
    f->readonly = !(flags & H5F_ACC_RDWR);
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    if (flags & H5F_ACC_RDWR) failed_get(st.st_dev, st.st_ino, true); /* a new writer starts afresh */
    if (st.st_size >= SB_SIZE && pread(fd, f->sb, SB_SIZE, 0) == SB_SIZE && sb_is_v2plus(f->sb)) {
        f->have_sb = true;
        f->sb_eof = get64(f->sb + SB_EOF);
    }
    return &f->pub;
}

static herr_t safe_close(H5FD_t *p)
{
    safe_file *f = (safe_file *)p;
    release(f);
    errno = 0;
    if (close(f->fd) < 0 && errno != EINTR) fail_file(f); /* NFS reports write errors here */
    free(f->held);
    free(f->arena);
    free(f);
    return 0;
}

static int safe_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const safe_file *x = (const safe_file *)a, *y = (const safe_file *)b;
    /* HDF5 gives a second open of a file already open in the process the first one's state,
     * metadata cache included, unless the driver tells the two apart: an open apart (a
     * refreshing reader) then reads the file as it now is on disk. */
    if (x->apart || y->apart) return x == y ? 0 : (uintptr_t)x < (uintptr_t)y ? -1 : 1;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t safe_query(const H5FD_t *p, unsigned long *flags)
{
    (void)p;
    /* No metadata accumulation: each metadata block goes to disk as its own write, in the
     * order the metadata cache (SWMR flush dependencies) chose. */
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA |
             H5FD_FEAT_POSIX_COMPAT_HANDLE | H5FD_FEAT_SUPPORTS_SWMR_IO;
    return 0;
}

/* The file's size as it is now, at least `known` (a reader's view of a file a writer grows). */
static haddr_t size_now(const safe_file *f, haddr_t known)
{
    struct stat st;
    return fstat(f->fd, &st) == 0 && (haddr_t)st.st_size > known ? (haddr_t)st.st_size : known;
}

static haddr_t safe_get_eoa(const H5FD_t *p, H5FD_mem_t t)
{
    (void)t;
    const safe_file *f = (const safe_file *)p;
    /* A reader's end of allocation is the superblock's at open, but a writer beside it (SWMR)
     * allocates past that, and what a reader loads later (an index block, a global heap of
     * strings, through them a chunk) can lie there: HDF5 refuses such reads ("address of
     * object past end of allocation", "actual len exceeds EOA"). For a reader the end is
     * the file's size as it now is, never less than HDF5's. */
    return f->readonly && f->eoa > 0 ? size_now(f, f->eoa) : f->eoa;
}

static herr_t safe_set_eoa(H5FD_t *p, H5FD_mem_t t, haddr_t a)
{
    (void)t;
    ((safe_file *)p)->eoa = a;
    return 0;
}

static haddr_t safe_get_eof(const H5FD_t *p, H5FD_mem_t t)
{
    (void)t;
    const safe_file *f = (const safe_file *)p;
    /* A reader's size as of now, not of its open: HDF5 reads the superblock after the open,
     * and a writer may have grown the file and written a superblock saying so in between
     * ("truncated file: eof = ..., stored_eof = ..." otherwise). */
    return f->readonly ? size_now(f, f->eof) : f->eof;
}

static herr_t safe_get_handle(H5FD_t *p, hid_t fapl, void **h)
{
    (void)fapl;
    *h = &((safe_file *)p)->fd;
    return 0;
}

/* HDF5 1.10 copies a global-heap object by the size its collection records, unchecked: a
 * corrupt size crashes the reader (or overruns its buffer). Each collection is checked when
 * HDF5 first reads its header: its objects must tile it exactly (free space, object 0,
 * last). One that does not gets its signature spoiled in what HDF5 receives, so HDF5 fails
 * with "bad global heap collection signature" instead. */
/* Walks the objects as HDF5 does (H5HG__cache_heap_deserialize): an object header (index,
 * references, size) and the padded object, or free space (index 0) whose size covers its
 * header; a tail too short for a header is free space. No object may reach past the end. */
static bool gheap_tiles(const unsigned char *b, uint64_t total)
{
    uint64_t at = 16;
    while (total - at >= 16) {
        unsigned idx = (unsigned)b[at] | ((unsigned)b[at + 1] << 8);
        uint64_t osize = get64(b + at + 8), room = total - at;
        if (osize > room) return false;
        uint64_t need = idx ? 16 + ((osize + 7) & ~UINT64_C(7)) : osize;
        if (need == 0 || need > room) return false;
        at += need;
    }
    return true;
}

static void check_gheap(const safe_file *f, haddr_t addr, unsigned char *b, size_t size)
{
    /* Signature, version 1, three zero bytes: the header of a collection, read at its start
     * (raw data that happens to look like one is only read, never changed, if it tiles). */
    static const unsigned char head[8] = { 'G', 'C', 'O', 'L', 1, 0, 0, 0 };
    if (size < 16 || memcmp(b, head, 8) != 0) return;
    uint64_t total = get64(b + 8);
    bool ok = total >= 16 && total <= (UINT64_C(1) << 32);
    if (ok && total <= size) {
        ok = gheap_tiles(b, total);
    } else if (ok) {
        unsigned char *whole = malloc(total);
        ok = whole && pread(f->fd, whole, total, (off_t)addr) == (ssize_t)total && gheap_tiles(whole, total);
        free(whole);
    }
    if (!ok) memcpy(b, "XXXX", 4);
}

static herr_t safe_read(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    (void)dxpl;
    safe_file *f = (safe_file *)p;
    char *b = buf;
    unsigned char *whole = buf;
    haddr_t whole_addr = addr;
    size_t whole_size = size;
    while (size > 0) {
        ssize_t r = pread(f->fd, b, size, (off_t)addr);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) { /* past the end of file: zeros, as sec2 does */
            memset(b, 0, size);
            break;
        }
        b += r;
        size -= (size_t)r;
        addr += (haddr_t)r;
    }
    if (f->nheld) overlay_held(f, whole_addr, whole_size, whole);
    (void)t; /* global heaps arrive as raw data (H5FD_FLMAP_DICHOTOMY): recognized by content */
    check_gheap(f, whole_addr, whole, whole_size);
    return 0;
}

static int raise_sb_eof(safe_file *f)
{
    if (!f->have_sb || f->eoa <= f->sb_eof) return 0;
    unsigned char img[SB_SIZE];
    memcpy(img, f->sb, SB_SIZE);
    put64(img + SB_EOF, f->eoa);
    sb_seal(img);
    if (extend_to(f, f->eoa) < 0 || put(f, img, SB_SIZE, 0, true) < 0) return -1;
    memcpy(f->sb, img, SB_SIZE);
    f->sb_eof = f->eoa;
    return 0;
}

static int write_superblock(safe_file *f, size_t size, const void *buf)
{
    unsigned char *img = malloc(size);
    if (img == NULL) return -1;
    memcpy(img, buf, size);
    sb_seal(img);
    haddr_t eof = get64(img + SB_EOF);
    int rc = extend_to(f, eof);
    if (rc == 0) rc = put(f, img, size, 0, true);
    if (rc == 0) {
        memcpy(f->sb, img, SB_SIZE);
        f->have_sb = true;
        f->sb_eof = eof;
    }
    free(img);
    return rc;
}

static herr_t safe_write(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t size, const void *buf)
{
    (void)dxpl;
    safe_file *f = (safe_file *)p;
    if (t == H5FD_MEM_SUPER && addr == 0 && size >= SB_SIZE && sb_is_v2plus(buf))
        return write_superblock(f, size, buf) < 0 ? -1 : 0;
    if (t != H5FD_MEM_DRAW && raise_sb_eof(f) < 0) return -1;
    static const unsigned char gcol[8] = { 'G', 'C', 'O', 'L', 1, 0, 0, 0 }; /* heaps come as raw data */
    bool meta = t != H5FD_MEM_DRAW || (size >= 16 && memcmp(buf, gcol, 8) == 0);
    if (put(f, buf, size, addr, meta) < 0) return -1;
    if (addr + size > f->eof) f->eof = addr + size;
    return 0;
}

static herr_t safe_flush(H5FD_t *p, hid_t dxpl, hbool_t closing)
{
    (void)p;
    (void)dxpl;
    (void)closing;
    return 0;
}

static herr_t safe_truncate(H5FD_t *p, hid_t dxpl, hbool_t closing)
{
    (void)dxpl;
    (void)closing;
    /* Only ever extend: shrinking could cut off space the on-disk superblock still claims. */
    safe_file *f = (safe_file *)p;
    return extend_to(f, f->eoa) < 0 ? -1 : 0;
}

static herr_t safe_lock(H5FD_t *p, hbool_t rw)
{
    safe_file *f = (safe_file *)p;
    if (flock(f->fd, (rw ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0 && errno != ENOSYS) {
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_FILE, H5E_CANTLOCKFILE,
                 "unable to lock file, errno = %d, error message = '%s'", errno, strerror(errno));
        return -1;
    }
    return 0;
}

static herr_t safe_unlock(H5FD_t *p)
{
    safe_file *f = (safe_file *)p;
    /* flock belongs to the open file, which a forked child shares with its parent: a child
     * closing its copy must leave the parent's lock alone. */
    if (f->pid != getpid()) return 0;
    if (flock(f->fd, LOCK_UN) < 0 && errno != ENOSYS) return -1;
    return 0;
}

static const H5FD_class_t safe_class = {
    "h5ml_safe",        (haddr_t)INT64_MAX, H5F_CLOSE_WEAK,
    NULL,               /* terminate */
    NULL, NULL, NULL,   /* sb_size, sb_encode, sb_decode: no driver info block */
    0, NULL, NULL, NULL, /* fapl */
    0, NULL, NULL,      /* dxpl */
    safe_open,          safe_close,         safe_cmp,          safe_query,
    NULL,               /* get_type_map */
    NULL, NULL,         /* alloc, free: HDF5's defaults */
    safe_get_eoa,       safe_set_eoa,       safe_get_eof,      safe_get_handle,
    safe_read,          safe_write,         safe_flush,        safe_truncate,
    safe_lock,          safe_unlock,        H5FD_FLMAP_DICHOTOMY,
};

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static hid_t safe_id = H5I_INVALID_HID;

static void register_driver(void) { safe_id = H5FDregister(&safe_class); }

hid_t h5ml__fapl_safe(void)
{
    pthread_once(&reg_once, register_driver);
    if (safe_id < 0) return H5I_INVALID_HID;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    if (H5Pset_driver(fapl, safe_id, NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    /* A metadata cache large enough that the hot object headers stay in memory between
     * checkpoints, so dataset extents reach the disk together, at checkpoints. */
    H5AC_cache_config_t cfg;
    cfg.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(fapl, &cfg) >= 0) {
        cfg.set_initial_size = 1;
        cfg.initial_size = 4 << 20;
        cfg.min_size = 4 << 20;
        cfg.max_size = 16 << 20;
        H5Pset_mdc_config(fapl, &cfg);
    }
    return fapl;
}

hid_t h5ml__fapl_write(void)
{
    pthread_once(&reg_once, register_driver);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || safe_id < 0) return fapl;
    /* HDF5 1.8's format at least: object headers with checksums. In the earliest format a
     * damaged attribute message goes undetected and HDF5 1.10 crashes reading it (an index
     * into a global heap, say); with checksums it reports the damage. */
    if (H5Pset_driver(fapl, safe_id, NULL) < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

hid_t h5ml__fapl_read(void)
{
    pthread_once(&reg_once, register_driver);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    /* h5ml's driver for reads too, for its global-heap check (check_gheap). */
    if (safe_id >= 0) H5Pset_driver(fapl, safe_id, NULL);
    /* A file being written is read in SWMR mode (atoms_reader.c), where HDF5 reads a block
     * whose checksum fails again, sleeping 1 ns, 2 ns, 4 ns... between attempts: its default
     * 100 attempts would sleep for ages on a block that is damaged for good. 26 wait about
     * 67 ms in all, far longer than a writer's checkpoint takes to reach the file. */
    H5Pset_metadata_read_attempts(fapl, 26);
    /* 8 MiB raw-data chunk cache per dataset: sequential range reads decompress each chunk once.
     * Preemption weight 0.75 (HDF5's default): with 1.0, HDF5 1.10 kept every chunk read at
     * random, far past the 8 MiB. */
    H5Pset_cache(fapl, 0, 1021, 8 << 20, 0.75);
    return fapl;
}

/* The driver's state behind an open file, or NULL if the file does not use this driver. */
static safe_file *safe_of(hid_t file)
{
    hid_t fapl = H5Fget_access_plist(file);
    bool ours = fapl >= 0 && safe_id >= 0 && H5Pget_driver(fapl) == safe_id;
    if (fapl >= 0) H5Pclose(fapl);
    void *h = NULL;
    if (!ours || H5Fget_vfd_handle(file, H5P_DEFAULT, &h) < 0 || h == NULL) return NULL;
    return (safe_file *)((char *)h - offsetof(safe_file, fd));
}

/* H5Oflush of each of first[0..nfirst) (those > 0), then H5Fflush of the rest. */
static herr_t flush_in_order(hid_t file, const hid_t *first, int nfirst)
{
    herr_t e = 0;
    for (int i = 0; i < nfirst && e >= 0; i++)
        if (first[i] > 0) e = H5Oflush(first[i]);
    if (e >= 0) e = H5Fflush(file, H5F_SCOPE_GLOBAL);
    return e;
}

int h5ml__safe_flush_first(hid_t file, const hid_t *first, int nfirst)
{
    safe_file *f = safe_of(file);
    if (f == NULL) return flush_in_order(file, first, nfirst) < 0 ? -1 : 0;
    /* Serializing the metadata cache takes milliseconds; its writes, held until it is done and
     * then issued back to back, take microseconds: that is the only window in which a killed
     * writer leaves datasets whose lengths disagree on disk. They are issued in the order
     * HDF5 made them, so the datasets flushed first reach the file first. */
    f->batching = true;
    herr_t e = flush_in_order(file, first, nfirst);
    f->batching = false;
    int rc = release(f);
    return e < 0 || rc < 0 ? -1 : 0;
}

int h5ml__safe_flush(hid_t file) { return h5ml__safe_flush_first(file, NULL, 0); }

const int *h5ml__safe_error_flag(hid_t file)
{
    safe_file *f = safe_of(file);
    return f ? &f->err : NULL;
}

int h5ml__safe_error(hid_t file)
{
    const int *e = h5ml__safe_error_flag(file);
    return e ? __atomic_load_n(e, __ATOMIC_RELAXED) : 0;
}

int h5ml__safe_path_error(const char *path)
{
    struct stat st;
    if (path == NULL || stat(path, &st) < 0) return 0;
    return failed_get(st.st_dev, st.st_ino, false);
}
