/* Error codes, per-handle messages, logging, and one-time library set-up. */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR2(x) #x
#define STR(x) STR2(x)

const char *h5ml_version(void)
{
    return STR(H5ML_VERSION_MAJOR) "." STR(H5ML_VERSION_MINOR) "." STR(H5ML_VERSION_PATCH);
}

const char *h5ml_strerror(int code)
{
    static const char *const text[] = {
#define H5ML_X_TEXT(name, t) t,
        H5ML_ERRORS(H5ML_X_TEXT)
#undef H5ML_X_TEXT
    };
    if (code < 0 || code >= H5ML_NUM_CODES) return "unknown error";
    return text[code];
}

static const h5ml_base *as_base(const void *handle)
{
    const h5ml_base *b = handle;
    if (b == NULL || b->magic != H5ML_MAGIC) return NULL;
    return b;
}

const char *h5ml_errmsg(const void *handle)
{
    const h5ml_base *b = as_base(handle);
    if (b == NULL) return "out of memory";
    if (b->code != H5ML_OK && b->msg[0] == 0) return h5ml_strerror(b->code);
    return b->msg;
}

int h5ml_errcode(const void *handle)
{
    const h5ml_base *b = as_base(handle);
    return b ? b->code : H5ML_ERR_NOMEM;
}

void h5ml_set_log(void *handle, h5ml_log_fn fn, void *user)
{
    h5ml_base *b = (h5ml_base *)as_base(handle);
    if (b == NULL) return;
    b->log = fn;
    b->log_user = user;
}

int64_t h5ml_warning_count(const void *handle)
{
    const h5ml_base *b = as_base(handle);
    return b ? b->warnings : 0;
}

void h5ml_free(void *p) { free(p); }

int h5ml__resize(void *pp, size_t n, size_t size)
{
    void **slot = pp;
    void *q = realloc(*slot, (n ? n : 1) * size);
    if (q == NULL) return -1;
    *slot = q;
    return 0;
}

void h5ml__base_init(h5ml_base *b)
{
    memset(b, 0, sizeof *b);
    b->magic = H5ML_MAGIC;
}

static void vset(h5ml_base *b, int code, const char *fmt, va_list ap)
{
    b->code = code;
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
}

int h5ml__fail(h5ml_base *b, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(b, code, fmt, ap);
    va_end(ap);
    return code;
}

static __thread char saved_h5[512];

void h5ml__h5_save(void)
{
    char t[512];
    h5ml__h5_error_text(t, sizeof t);
    if (t[0]) memcpy(saved_h5, t, sizeof t);
}

int h5ml__fail_h5(h5ml_base *b, int code, const char *fmt, ...)
{
    char h5[512];
    h5ml__h5_error_text(h5, sizeof h5);
    if (h5[0] == 0) memcpy(h5, saved_h5, sizeof h5);
    saved_h5[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vset(b, code, fmt, ap);
    va_end(ap);
    if (h5[0]) {
        size_t n = strlen(b->msg);
        snprintf(b->msg + n, sizeof b->msg - n, " (HDF5: %s)", h5);
    }
    return code;
}

void h5ml__prefix(h5ml_base *b, const char *fmt, ...)
{
    char old[H5ML_MSG_MAX];
    memcpy(old, b->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->msg - 2) return;
    b->msg[n] = ':';
    b->msg[n + 1] = ' ';
    memcpy(b->msg + n + 2, old, sizeof b->msg - (size_t)n - 2);
    b->msg[sizeof b->msg - 1] = 0;
}

int h5ml__copy_error(h5ml_base *dst, const h5ml_base *src)
{
    dst->code = src->code;
    memcpy(dst->msg, src->msg, sizeof dst->msg);
    return dst->code;
}

static void vlog(h5ml_base *b, int level, const char *fmt, va_list ap)
{
    if (level == H5ML_LOG_WARNING) b->warnings++;
    if (b->log == NULL) return;
    char msg[H5ML_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    b->log(b->log_user, level, msg);
}

void h5ml__warn(h5ml_base *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(b, H5ML_LOG_WARNING, fmt, ap);
    va_end(ap);
}

void h5ml__info(h5ml_base *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(b, H5ML_LOG_INFO, fmt, ap);
    va_end(ap);
}

void h5ml__h5_quiet(h5ml_h5quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data) < 0) {
        q->fn = NULL;
        q->data = NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5ml__h5_restore(const h5ml_h5quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->fn, q->data); }

typedef struct walk_state { char *buf; size_t len; int depth; } walk_state;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    walk_state *ws = data;
    (void)n;
    /* Keep the innermost (first) description: it names the real cause, e.g.
     * "unable to open file: name = 'x.h5', errno = 2, error message = 'No such file'". */
    if (ws->depth++ == 0 && e->desc) snprintf(ws->buf, ws->len, "%s", e->desc);
    return 0;
}

void h5ml__h5_error_text(char *buf, size_t len)
{
    walk_state ws = { buf, len, 0 };
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &ws);
    H5Eclear2(H5E_DEFAULT);
}

void h5ml__iso8601(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static void init_impl(void)
{
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    init_rc = (H5open() < 0 || h5ml__lzf_register() < 0) ? -1 : 0;
    h5ml__h5_restore(&q);
}

int h5ml__init(void)
{
    pthread_once(&init_once, init_impl);
    return init_rc;
}
