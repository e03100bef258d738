/* faultshim: an LD_PRELOAD library that makes writes fail, as a full disk or a failing
 * device would, for the files h5ml's fault tests name.
 *
 * Environment:
 *   H5ML_FAULT_PATH   substring of the paths to fail (unset: the shim does nothing)
 *   H5ML_FAULT_AFTER  bytes that may be written to such files (all of them together) before
 *                     writes fail; default 0
 *   H5ML_FAULT_ERRNO  ENOSPC (default), EIO, EDQUOT, EFBIG or a number
 *   H5ML_FAULT_MODE   all (default): every write after the budget fails, in place or not;
 *                     grow: only what needs new space fails (writes past the file's end and
 *                     growing ftruncate/fallocate), as on a full ext4 or xfs, where blocks
 *                     already allocated can still be overwritten
 *   H5ML_FAULT_SHORT  1: the write that crosses the budget is cut at the last page boundary
 *                     it reaches (a short write, as the kernel returns when it runs out of
 *                     blocks mid-write); 0: it fails whole. Default: 1 for ENOSPC/EDQUOT.
 *   H5ML_FAULT_LOG    file to which the shim appends one line per injected fault, and at
 *                     exit "pid P: exit: N bytes written, F faults"
 *
 * The files are tracked by descriptor: open, open64, openat, openat64, creat, creat64 (and
 * the _FORTIFY_SOURCE variants) of a matching path mark it, close and dup/dup2/dup3 follow
 * it. Failed calls: write, pwrite, pwrite64, writev, pwritev, pwritev64, pwritev2,
 * ftruncate, ftruncate64, fallocate, fallocate64, posix_fallocate, posix_fallocate64,
 * fsync, fdatasync. Nothing else changes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { MAXFD = 65536, PAGE = 4096 };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *match;
static long long budget;
static int fault_errno = ENOSPC;
static bool grow_only, short_writes;
static const char *log_path;
static long long written;      /* bytes written to matching files so far */
static long long faults;       /* faults injected */
static unsigned char tracked[MAXFD];

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_open_2)(const char *, int);
static int (*real_open64_2)(const char *, int);
static int (*real_openat_2)(int, const char *, int);
static int (*real_openat64_2)(int, const char *, int);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_posix_fallocate64)(int, off_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

/* glibc's _FORTIFY_SOURCE entry points (declared by <fcntl.h> only under fortification). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dir, const char *path, int flags);
int __openat64_2(int dir, const char *path, int flags);

#define LOAD(name, sym) name = (__typeof__(name))dlsym(RTLD_NEXT, sym)

static int parse_errno(const char *s)
{
    if (s == NULL || !*s || strcmp(s, "ENOSPC") == 0) return ENOSPC;
    if (strcmp(s, "EIO") == 0) return EIO;
    if (strcmp(s, "EDQUOT") == 0) return EDQUOT;
    if (strcmp(s, "EFBIG") == 0) return EFBIG;
    int v = atoi(s);
    return v > 0 ? v : ENOSPC;
}

static void init(void)
{
    LOAD(real_open, "open");
    LOAD(real_open64, "open64");
    LOAD(real_openat, "openat");
    LOAD(real_openat64, "openat64");
    LOAD(real_open_2, "__open_2");
    LOAD(real_open64_2, "__open64_2");
    LOAD(real_openat_2, "__openat_2");
    LOAD(real_openat64_2, "__openat64_2");
    LOAD(real_creat, "creat");
    LOAD(real_creat64, "creat64");
    LOAD(real_close, "close");
    LOAD(real_dup, "dup");
    LOAD(real_dup2, "dup2");
    LOAD(real_dup3, "dup3");
    LOAD(real_write, "write");
    LOAD(real_pwrite, "pwrite");
    LOAD(real_pwrite64, "pwrite64");
    LOAD(real_writev, "writev");
    LOAD(real_pwritev, "pwritev");
    LOAD(real_pwritev64, "pwritev64");
    LOAD(real_pwritev2, "pwritev2");
    LOAD(real_ftruncate, "ftruncate");
    LOAD(real_ftruncate64, "ftruncate64");
    LOAD(real_fallocate, "fallocate");
    LOAD(real_fallocate64, "fallocate64");
    LOAD(real_posix_fallocate, "posix_fallocate");
    LOAD(real_posix_fallocate64, "posix_fallocate64");
    LOAD(real_fsync, "fsync");
    LOAD(real_fdatasync, "fdatasync");
    match = getenv("H5ML_FAULT_PATH");
    if (match && !*match) match = NULL;
    const char *a = getenv("H5ML_FAULT_AFTER");
    budget = a ? atoll(a) : 0;
    fault_errno = parse_errno(getenv("H5ML_FAULT_ERRNO"));
    const char *m = getenv("H5ML_FAULT_MODE");
    grow_only = m && strcmp(m, "grow") == 0;
    const char *s = getenv("H5ML_FAULT_SHORT");
    short_writes = s ? atoi(s) != 0 : (fault_errno == ENOSPC || fault_errno == EDQUOT);
    log_path = getenv("H5ML_FAULT_LOG");
    if (log_path && !*log_path) log_path = NULL;
}

static void setup(void) { pthread_once(&once, init); }

static bool is_tracked(int fd) { return match && fd >= 0 && fd < MAXFD && tracked[fd]; }

static void track(int fd, const char *path)
{
    if (fd >= 0 && fd < MAXFD) tracked[fd] = match && path && strstr(path, match) != NULL;
}

static void follow(int oldfd, int newfd)
{
    if (newfd >= 0 && newfd < MAXFD) tracked[newfd] = is_tracked(oldfd);
}

/* One line per fault, written with the real write so that it is never failed itself. */
static void note(const char *call, int fd, long long size, long long allowed)
{
    faults++;
    if (log_path == NULL) return;
    int lfd = real_open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) return;
    char line[256];
    int n = snprintf(line, sizeof line, "pid %d: %s(fd %d, %lld bytes): %lld allowed, errno %d (%s); %lld written before\n",
                     (int)getpid(), call, fd, size, allowed, fault_errno, strerror(fault_errno), written);
    if (n > 0) real_write(lfd, line, (size_t)n);
    real_close(lfd);
}

/* At exit: the bytes written to matching files and the faults injected, so that a test can
 * measure a run's writes once (a budget larger than them) and sweep the budget below it. */
__attribute__((destructor)) static void report(void)
{
    if (!match || log_path == NULL || real_open == NULL) return;
    int lfd = real_open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) return;
    char line[128];
    int n = snprintf(line, sizeof line, "pid %d: exit: %lld bytes written, %lld faults\n", (int)getpid(), written, faults);
    if (n > 0) real_write(lfd, line, (size_t)n);
    real_close(lfd);
}

static long long file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
}

/* How many of `size` bytes at `off` (-1: the current position) may be written to the
 * tracked fd. Counts what it allows as written. Call with mu held. */
static long long allow(const char *call, int fd, long long size, long long off)
{
    if (size <= 0) return size;
    if (off < 0) off = (long long)lseek(fd, 0, SEEK_CUR);
    long long left = budget - written;
    if (left >= size) {
        written += size;
        return size;
    }
    if (grow_only) {
        /* Blocks the file already has can be rewritten; new ones cannot be had. */
        long long have = file_size(fd) - off;
        if (have >= size) {
            written += size;
            return size;
        }
        if (left < have) left = have > 0 ? have : 0;
    }
    if (left < 0) left = 0;
    long long cut = 0;
    if (short_writes) {
        long long end = (off + left) / PAGE * PAGE; /* the kernel cuts at a page boundary */
        cut = end > off ? end - off : 0;
        if (cut > size) cut = size;
    }
    written += cut;
    note(call, fd, size, cut);
    return cut;
}

static ssize_t fail_io(void)
{
    errno = fault_errno;
    return -1;
}

/* ---- opening and closing ---- */

static int mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_open(path, flags, mode);
    track(fd, path);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_open64(path, flags, mode);
    track(fd, path);
    return fd;
}

int openat(int dir, const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_openat(dir, path, flags, mode);
    track(fd, path);
    return fd;
}

int openat64(int dir, const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    int fd = real_openat64(dir, path, flags, mode);
    track(fd, path);
    return fd;
}

int __open_2(const char *path, int flags)
{
    setup();
    int fd = real_open_2(path, flags);
    track(fd, path);
    return fd;
}

int __open64_2(const char *path, int flags)
{
    setup();
    int fd = real_open64_2(path, flags);
    track(fd, path);
    return fd;
}

int __openat_2(int dir, const char *path, int flags)
{
    setup();
    int fd = real_openat_2(dir, path, flags);
    track(fd, path);
    return fd;
}

int __openat64_2(int dir, const char *path, int flags)
{
    setup();
    int fd = real_openat64_2(dir, path, flags);
    track(fd, path);
    return fd;
}

int creat(const char *path, mode_t mode)
{
    setup();
    int fd = real_creat(path, mode);
    track(fd, path);
    return fd;
}

int creat64(const char *path, mode_t mode)
{
    setup();
    int fd = real_creat64(path, mode);
    track(fd, path);
    return fd;
}

int close(int fd)
{
    setup();
    if (fd >= 0 && fd < MAXFD) tracked[fd] = 0;
    return real_close(fd);
}

int dup(int fd)
{
    setup();
    int n = real_dup(fd);
    follow(fd, n);
    return n;
}

int dup2(int fd, int to)
{
    setup();
    int n = real_dup2(fd, to);
    follow(fd, n);
    return n;
}

int dup3(int fd, int to, int flags)
{
    setup();
    int n = real_dup3(fd, to, flags);
    follow(fd, n);
    return n;
}

/* ---- writing ---- */

static long long iov_total(const struct iovec *iov, int n)
{
    long long t = 0;
    for (int i = 0; i < n; i++) t += (long long)iov[i].iov_len;
    return t;
}

/* Writes the first `allowed` bytes of an iovec with the real pwrite (or write if off < 0). */
static ssize_t write_iov_prefix(int fd, const struct iovec *iov, int n, long long off, long long allowed)
{
    long long done = 0;
    for (int i = 0; i < n && done < allowed; i++) {
        size_t len = iov[i].iov_len;
        if ((long long)len > allowed - done) len = (size_t)(allowed - done);
        ssize_t w = off >= 0 ? real_pwrite(fd, iov[i].iov_base, len, (off_t)(off + done)) : real_write(fd, iov[i].iov_base, len);
        if (w < 0) return done ? (ssize_t)done : -1;
        done += w;
        if ((size_t)w < len) break;
    }
    return (ssize_t)done;
}

#define GUARDED(call, fd, size, off, realcall)                                                                       \
    do {                                                                                                             \
        setup();                                                                                                     \
        if (!is_tracked(fd)) return realcall;                                                                        \
        pthread_mutex_lock(&mu);                                                                                     \
        long long ok = allow(call, fd, (long long)(size), (long long)(off));                                         \
        pthread_mutex_unlock(&mu);                                                                                   \
        if (ok == (long long)(size)) return realcall;                                                                \
        if (ok <= 0) return fail_io();                                                                               \
        size = (size_t)ok;                                                                                           \
        return realcall;                                                                                             \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n) { GUARDED("write", fd, n, -1, real_write(fd, buf, n)); }

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { GUARDED("pwrite", fd, n, off, real_pwrite(fd, buf, n, off)); }

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    GUARDED("pwrite64", fd, n, off, real_pwrite64(fd, buf, n, off));
}

static ssize_t guarded_iov(const char *call, int fd, const struct iovec *iov, int n, long long off, ssize_t (*whole)(void *),
                           void *ctx)
{
    setup();
    if (!is_tracked(fd)) return whole(ctx);
    long long size = iov_total(iov, n);
    pthread_mutex_lock(&mu);
    long long ok = allow(call, fd, size, off);
    pthread_mutex_unlock(&mu);
    if (ok == size) return whole(ctx);
    if (ok <= 0) return fail_io();
    return write_iov_prefix(fd, iov, n, off, ok);
}

typedef struct iov_call { int fd; const struct iovec *iov; int n; off_t off; int flags; int kind; } iov_call;

static ssize_t iov_whole(void *p)
{
    iov_call *c = p;
    switch (c->kind) {
    case 0: return real_writev(c->fd, c->iov, c->n);
    case 1: return real_pwritev(c->fd, c->iov, c->n, c->off);
    case 2: return real_pwritev64(c->fd, c->iov, c->n, c->off);
    default: return real_pwritev2(c->fd, c->iov, c->n, c->off, c->flags);
    }
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    iov_call c = { fd, iov, n, -1, 0, 0 };
    return guarded_iov("writev", fd, iov, n, -1, iov_whole, &c);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    iov_call c = { fd, iov, n, off, 0, 1 };
    return guarded_iov("pwritev", fd, iov, n, off, iov_whole, &c);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    iov_call c = { fd, iov, n, off, 0, 2 };
    return guarded_iov("pwritev64", fd, iov, n, off, iov_whole, &c);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    iov_call c = { fd, iov, n, off, flags, 3 };
    return guarded_iov("pwritev2", fd, iov, n, off < 0 ? -1 : off, iov_whole, &c);
}

/* ---- sizes and syncs: they fail whole once the budget is spent (in grow mode only when they
 * would give the file new blocks; cutting a file or syncing it then still works) ---- */

static bool refuse(const char *call, int fd, long long new_end)
{
    setup();
    if (!is_tracked(fd)) return false;
    pthread_mutex_lock(&mu);
    bool no = written >= budget && (!grow_only || (new_end >= 0 && new_end > file_size(fd)));
    if (no) note(call, fd, new_end, 0);
    pthread_mutex_unlock(&mu);
    return no;
}

int ftruncate(int fd, off_t len) { return refuse("ftruncate", fd, len) ? (int)fail_io() : real_ftruncate(fd, len); }
int ftruncate64(int fd, off_t len) { return refuse("ftruncate64", fd, len) ? (int)fail_io() : real_ftruncate64(fd, len); }

int fallocate(int fd, int mode, off_t off, off_t len)
{
    return refuse("fallocate", fd, off + len) ? (int)fail_io() : real_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
    return refuse("fallocate64", fd, off + len) ? (int)fail_io() : real_fallocate64(fd, mode, off, len);
}

/* posix_fallocate returns the error instead of setting errno. */
int posix_fallocate(int fd, off_t off, off_t len)
{
    return refuse("posix_fallocate", fd, off + len) ? fault_errno : real_posix_fallocate(fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
    return refuse("posix_fallocate64", fd, off + len) ? fault_errno : real_posix_fallocate64(fd, off, len);
}

int fsync(int fd) { return refuse("fsync", fd, -1) ? (int)fail_io() : real_fsync(fd); }
int fdatasync(int fd) { return refuse("fdatasync", fd, -1) ? (int)fail_io() : real_fdatasync(fd); }
