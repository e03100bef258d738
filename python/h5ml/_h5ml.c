/*
 * h5ml._h5ml -- the CPython extension under the h5ml package: libh5ml (include/h5ml.h) with
 * NumPy arrays in and out. The contract with the Python layer is python/EXTENSION.md.
 *
 * How it holds together:
 *
 *  - GIL. Every library call that does I/O or real work runs between Py_BEGIN_ALLOW_THREADS
 *    and Py_END_ALLOW_THREADS. Arguments are converted (and validated) before, with the GIL
 *    held, into arrays and strings this module owns references to until the call returns, so
 *    nothing they point to can go away while the GIL is released. Results are allocated as
 *    new numpy arrays before the call (they are not visible to any other thread yet) and
 *    filled by the library without the GIL.
 *  - Callbacks. The library calls the log and progress callbacks on the calling thread, from
 *    inside a call made without the GIL: the trampolines take it with PyGILState_Ensure. An
 *    exception raised by a progress callback cancels the operation (the trampoline returns
 *    nonzero, the library rolls back) and is re-raised when the call returns; one raised by a
 *    log callback is re-raised after the call (chained to the library's error if it failed).
 *  - One thread per handle. libh5ml handles are not thread-safe; each object has a lock
 *    (struct guard) taken around every use, waited for without the GIL. A method called from
 *    one of the handle's own callbacks raises instead of deadlocking.
 *  - Fork. A Reader reopens its file in a forked child (the pid at open is kept); a SigReader
 *    does so inside the library. Writers refuse to work in a child, and a child never closes
 *    (finalizes) the parent's writer: its state belongs to the parent and its worker threads
 *    do not exist in the child.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "h5ml.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

/* This process's id, kept current across fork by an atfork handler: every call checks it
 * (handles opened before a fork must not share HDF5 state with the parent), and getpid() is
 * a system call. */
static pid_t current_pid;
static void refresh_pid(void) { current_pid = getpid(); }
static pid_t my_pid(void) { return current_pid; }

PyMODINIT_FUNC PyInit__h5ml(void);

static PyObject *json_loads; /* json.loads, for the library's JSON texts */

/* ======================================================================================
 * Exceptions
 * ====================================================================================== */

/* The pending exception as one object (NULL if none), and back. */
static PyObject *exc_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static void exc_give(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

/* Makes `context` (stolen) the __context__ of the pending exception. */
static void exc_chain(PyObject *context)
{
    PyObject *exc = exc_take();
    if (exc) PyException_SetContext(exc, context);
    else Py_DECREF(context);
    exc_give(exc);
}

/* Text from the library: UTF-8 in principle, but paths may hold any bytes. */
static PyObject *text_of(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && memcmp(s + n - k, tail, k) == 0;
}

/* The exception class of python/EXTENSION.md's table for a library code. */
static PyObject *exception_for(int code, const char *msg)
{
    switch (code) {
    case H5ML_ERR_NOTFOUND: /* a missing input directory of import_mat is ENOENT too */
        return ends_with(msg, "No such file or directory") ? PyExc_FileNotFoundError : PyExc_ValueError;
    case H5ML_ERR_ARG:
    case H5ML_ERR_VALUE:
    case H5ML_ERR_PARSE:
    case H5ML_ERR_SCHEMA:
    case H5ML_ERR_CHECK:
    case H5ML_ERR_DIFFER: return PyExc_ValueError;
    case H5ML_ERR_RANGE: return PyExc_IndexError;
    case H5ML_ERR_NOMEM: return PyExc_MemoryError;
    case H5ML_ERR_IO: return ends_with(msg, "No such file or directory") ? PyExc_FileNotFoundError : PyExc_OSError;
    default: return PyExc_RuntimeError; /* ERR_STATE, ERR_BUSY, ERR_HDF5 */
    }
}

static void set_error(int code, const char *msg)
{
    if (msg == NULL || *msg == 0) msg = h5ml_strerror(code);
    PyObject *text = text_of(msg);
    if (text == NULL) return;
    PyErr_SetObject(exception_for(code, msg), text);
    Py_DECREF(text);
}

/* Raises the failure `rc` of a call on `handle` with the handle's code and message (the
 * returned code alone when the library left none on the handle). Returns -1. */
static int raise_for(int rc, const void *handle)
{
    int code = handle ? h5ml_errcode(handle) : H5ML_OK;
    if (code != H5ML_OK) set_error(code, h5ml_errmsg(handle));
    else set_error(rc, h5ml_strerror(rc));
    return -1;
}

/* ======================================================================================
 * Callbacks
 * ====================================================================================== */

/* A log or progress callable and the exception it raised, kept until the call returns. */
typedef struct callback {
    PyObject *fn;  /* the callable, or NULL */
    PyObject *exc; /* the exception it raised, or NULL */
} callback;

static int callable_arg(PyObject *obj, const char *name, PyObject **out)
{
    *out = NULL;
    if (obj == NULL || obj == Py_None) return 0;
    if (!PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be callable or None, got %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_INCREF(obj);
    *out = obj;
    return 0;
}

static void log_trampoline(void *user, int level, const char *msg)
{
    callback *cb = user;
    PyGILState_STATE st = PyGILState_Ensure();
    if (cb->fn && cb->exc == NULL) {
        PyObject *r = PyObject_CallFunction(cb->fn, "iN", level, text_of(msg));
        if (r == NULL) cb->exc = exc_take();
        Py_XDECREF(r);
    }
    PyGILState_Release(st);
}

/* Progress: calls the callable if any, and checks for signals either way so that Ctrl-C
 * cancels a long operation. Nonzero cancels. */
static int progress_trampoline(void *user, int64_t done, int64_t total)
{
    callback *cb = user;
    if (cb->exc) return 1; /* written by this thread only */
    PyGILState_STATE st = PyGILState_Ensure();
    int stop = 0;
    if (cb->fn) {
        PyObject *r = PyObject_CallFunction(cb->fn, "LL", (long long)done, (long long)total);
        if (r == NULL) stop = 1;
        Py_XDECREF(r);
    }
    if (!stop && PyErr_CheckSignals() < 0) stop = 1;
    if (stop) cb->exc = exc_take();
    PyGILState_Release(st);
    return stop;
}

/* After a library call on `handle` that returned `rc`: raises what should be raised and
 * returns -1, or returns 0. The exception of a progress callback wins (it caused the
 * failure, whose message is just "cancelled"; the library ignores the return value of its
 * final progress call, so it may also come with success). Otherwise the library's error,
 * with a log callback's exception as its context, else the log callback's exception. */
static int finish(int rc, const void *handle, callback *log, callback *progress)
{
    PyObject *pexc = progress ? progress->exc : NULL, *lexc = log ? log->exc : NULL;
    if (progress) progress->exc = NULL;
    if (log) log->exc = NULL;
    if (pexc) {
        exc_give(pexc);
        if (lexc) exc_chain(lexc);
        return -1;
    }
    if (rc != H5ML_OK) {
        raise_for(rc, handle);
        if (lexc) exc_chain(lexc);
        return -1;
    }
    if (lexc) {
        exc_give(lexc);
        return -1;
    }
    return 0;
}

/* ======================================================================================
 * One thread at a time per handle
 * ====================================================================================== */

typedef struct guard {
    PyThread_type_lock lock;
    unsigned long owner; /* thread holding it, 0 if none (read and written with the GIL) */
    pid_t pid;           /* process that made the lock */
} guard;

static int guard_init(guard *g)
{
    g->lock = PyThread_allocate_lock();
    g->owner = 0;
    g->pid = my_pid();
    if (g->lock == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void guard_free(guard *g)
{
    /* In a forked child the lock may be held by a thread of the parent: leave it be. */
    if (g->lock && g->pid == my_pid()) PyThread_free_lock(g->lock);
    g->lock = NULL;
}

static int guard_enter(guard *g, const char *what)
{
    if (g->lock == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s is not initialized", what);
        return -1;
    }
    if (g->pid != my_pid()) {
        /* A forked child: the parent's lock may have been held by a thread that does not
         * exist here; start over with a fresh one (the copy is left allocated). */
        PyThread_type_lock fresh = PyThread_allocate_lock();
        if (fresh == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->lock = fresh;
        g->owner = 0;
        g->pid = my_pid();
    }
    if (!PyThread_acquire_lock(g->lock, NOWAIT_LOCK)) {
        if (g->owner == PyThread_get_thread_ident()) {
            PyErr_Format(PyExc_RuntimeError, "%s used from one of its own callbacks while busy", what);
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(g->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    g->owner = PyThread_get_thread_ident();
    return 0;
}

static void guard_exit(guard *g)
{
    g->owner = 0;
    PyThread_release_lock(g->lock);
}

/* ======================================================================================
 * Arguments
 * ====================================================================================== */

/* "(5, 3)" */
static void shape_text(PyArrayObject *a, char *buf, size_t len)
{
    size_t k = 0;
    int nd = PyArray_NDIM(a);
    const npy_intp *d = PyArray_DIMS(a);
    buf[0] = 0;
    int n = snprintf(buf, len, "(");
    for (int i = 0; n >= 0 && i < nd; i++) {
        k += (size_t)n;
        if (k >= len) return;
        n = snprintf(buf + k, len - k, i ? ", %lld" : "%lld", (long long)d[i]);
    }
    if (n < 0) return;
    k += (size_t)n;
    if (k < len) snprintf(buf + k, len - k, nd == 1 ? ",)" : ")");
}

/* Whether every value of a floating-point array is an integer that fits in int64. */
static int all_integral(PyArrayObject *src)
{
    PyArrayObject *d = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)src, NPY_DOUBLE, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (d == NULL) return -1;
    const double *v = PyArray_DATA(d);
    npy_intp n = PyArray_SIZE(d);
    int ok = 1;
    for (npy_intp i = 0; i < n && ok; i++)
        ok = v[i] == floor(v[i]) && v[i] >= -9223372036854775808.0 && v[i] < 9223372036854775808.0;
    Py_DECREF(d);
    return ok;
}

/* `obj` as an aligned C-contiguous array of `type` (NPY_INT64, NPY_DOUBLE, NPY_FLOAT or
 * NPY_BOOL): a new reference, without a copy when it already is one. Anything numpy.asarray
 * takes is accepted if numeric; floats become integers only when they hold integers. */
static PyArrayObject *as_array(PyObject *obj, int type, const char *name)
{
    if (obj == NULL || obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must be an array, got None", name);
        return NULL;
    }
    PyArrayObject *src = (PyArrayObject *)PyArray_FROM_O(obj);
    if (src == NULL) return NULL;
    char kind = PyArray_DESCR(src)->kind;
    if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f') {
        PyErr_Format(PyExc_TypeError, "%s must be a numeric array, got dtype %S", name, (PyObject *)PyArray_DESCR(src));
        Py_DECREF(src);
        return NULL;
    }
    if (kind == 'f' && type == NPY_INT64) {
        int ok = all_integral(src);
        if (ok <= 0) {
            if (ok == 0) PyErr_Format(PyExc_ValueError, "%s must hold integers, got non-integral values (dtype %S)", name,
                                      (PyObject *)PyArray_DESCR(src));
            Py_DECREF(src);
            return NULL;
        }
    }
    PyObject *out = PyArray_FROM_OTF((PyObject *)src, type, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(src);
    return (PyArrayObject *)out;
}

enum { ANY = -1 };

/* as_array() and a shape check: want[k] >= 0 must match, ANY matches anything. The message
 * names the argument and `expect` ("(n, 3)"); `note` (may be NULL) explains a bound
 * extent ("n = 5 from numbers") when the rank is right but an extent is not. */
static PyArrayObject *array_arg(PyObject *obj, int type, const char *name, int nd, const npy_intp *want, const char *expect,
                                const char *note)
{
    if (obj == NULL || obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must be an array of shape %s, got None", name, expect);
        return NULL;
    }
    PyArrayObject *a = as_array(obj, type, name);
    if (a == NULL) return NULL;
    bool ok = PyArray_NDIM(a) == nd;
    for (int k = 0; ok && k < nd; k++) ok = want[k] == ANY || PyArray_DIM(a, k) == want[k];
    if (ok) return a;
    char got[128];
    shape_text(a, got, sizeof got);
    if (note && PyArray_NDIM(a) == nd) PyErr_Format(PyExc_ValueError, "%s must have shape %s, got %s (%s)", name, expect, got, note);
    else PyErr_Format(PyExc_ValueError, "%s must have shape %s, got %s", name, expect, got);
    Py_DECREF(a);
    return NULL;
}

/* A str argument as UTF-8, valid while `obj` lives. */
static const char *utf8_arg(PyObject *obj, const char *name)
{
    if (obj == NULL || !PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, got %.100s", name, obj ? Py_TYPE(obj)->tp_name : "nothing");
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s && strlen(s) != (size_t)n) {
        PyErr_Format(PyExc_ValueError, "%s contains a NUL character", name);
        return NULL;
    }
    return s;
}

/* A str or None: NULL in *out for None. Returns 0 or -1. */
static int opt_utf8_arg(PyObject *obj, const char *name, const char **out)
{
    *out = NULL;
    if (obj == NULL || obj == Py_None) return 0;
    *out = utf8_arg(obj, name);
    return *out ? 0 : -1;
}

/* A sequence of str (or None entries when allowed) as a C array; the tuple made from it
 * holds the strings while the GIL is released. */
typedef struct strvec {
    PyObject *items;
    const char **v;
    Py_ssize_t n;
} strvec;

static void strvec_free(strvec *sv)
{
    PyMem_Free(sv->v);
    Py_XDECREF(sv->items);
    memset(sv, 0, sizeof *sv);
}

/* want >= 0: the number of entries required ("one per signal": `per`). */
static int strvec_init(strvec *sv, PyObject *obj, const char *name, Py_ssize_t want, const char *per, bool none_ok)
{
    memset(sv, 0, sizeof *sv);
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || !PySequence_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of str%s, got %.100s", name, none_ok ? " (or None entries)" : "",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    sv->items = PySequence_Tuple(obj);
    if (sv->items == NULL) return -1;
    sv->n = PyTuple_GET_SIZE(sv->items);
    if (want >= 0 && sv->n != want) {
        PyErr_Format(PyExc_ValueError, "%s must have %zd entries (one per %s), got %zd", name, want, per, sv->n);
        strvec_free(sv);
        return -1;
    }
    sv->v = PyMem_Malloc(sizeof *sv->v * (size_t)(sv->n ? sv->n : 1));
    if (sv->v == NULL) {
        strvec_free(sv);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < sv->n; i++) {
        PyObject *it = PyTuple_GET_ITEM(sv->items, i);
        char item[96];
        snprintf(item, sizeof item, "%s[%zd]", name, i);
        if (it == Py_None && none_ok) {
            sv->v[i] = NULL;
            continue;
        }
        if (!PyUnicode_Check(it)) {
            PyErr_Format(PyExc_TypeError, "%s must be a str%s, got %.100s", item, none_ok ? " or None" : "", Py_TYPE(it)->tp_name);
            strvec_free(sv);
            return -1;
        }
        if ((sv->v[i] = utf8_arg(it, item)) == NULL) {
            strvec_free(sv);
            return -1;
        }
    }
    return 0;
}

/* A compression profile travels in the same int as a compression (every call site parses
 * one `compression` argument): COMPRESS_PROFILE(p), above every h5ml_compression. */
#define COMPRESS_PROFILE(p) (100 + (p))

/* The filter options of an int from compression_arg: compression and profile (0 = unset). */
static void filters_of(int code, int *comp, int *profile)
{
    *comp = code >= COMPRESS_PROFILE(0) ? 0 : code;
    *profile = code >= COMPRESS_PROFILE(0) ? code - COMPRESS_PROFILE(0) : 0;
}

/* Whether a gzip level applies to these filter options (gzip given, or by the profile). */
static bool gzip_chosen(int comp, int profile)
{
    if (comp) return comp == H5ML_COMPRESS_GZIP;
    return profile != H5ML_PROFILE_FAST && profile != H5ML_PROFILE_NONE;
}

/* "gzip", "lzf", "none", None, or a profile: "fast", "balanced", "small". */
static int compression_arg(PyObject *obj, int *out)
{
    static const struct { const char *name; int code; } names[] = {
        { "gzip", H5ML_COMPRESS_GZIP }, { "lzf", H5ML_COMPRESS_LZF }, { "none", H5ML_COMPRESS_NONE }
    };
    if (obj == NULL || obj == Py_None) {
        *out = H5ML_COMPRESS_NONE;
        return 0;
    }
    if (PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8(obj);
        if (s == NULL) return -1;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            if (strcmp(s, names[k].name) == 0) {
                *out = names[k].code;
                return 0;
            }
        int p = h5ml_profile_from_name(s);
        if (p > 0) {
            *out = COMPRESS_PROFILE(p);
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "compression must be 'gzip', 'lzf', 'none', None or a profile ('fast', 'balanced', 'small'), got %R", obj);
    return -1;
}

static const char *compression_name(int code)
{
    switch (code) {
    case H5ML_COMPRESS_NONE: return "none";
    case H5ML_COMPRESS_LZF: return "lzf";
    case H5ML_COMPRESS_GZIP:
    case H5ML_COMPRESS_DEFAULT: return "gzip";
    default: return "other";
    }
}

/* Three ratios (train, val, test). */
static int ratios_arg(PyObject *obj, double out[3])
{
    static const npy_intp three[1] = { 3 };
    out[0] = 0.7;
    out[1] = out[2] = 0.15;
    if (obj == NULL) return 0;
    PyArrayObject *a = array_arg(obj, NPY_DOUBLE, "ratios", 1, three, "(3,)", NULL);
    if (a == NULL) return -1;
    memcpy(out, PyArray_DATA(a), 3 * sizeof *out);
    Py_DECREF(a);
    return 0;
}

/* A seed: an integer in [0, 2**64). */
static int seed_arg(PyObject *obj, uint64_t *out)
{
    *out = 42;
    if (obj == NULL) return 0;
    PyObject *i = PyNumber_Index(obj);
    unsigned long long v = i ? PyLong_AsUnsignedLongLong(i) : (unsigned long long)-1;
    Py_XDECREF(i);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError) && i != NULL) return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "seed must be an integer in [0, 2**64), got %R", obj);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* A path as bytes (str, bytes or os.PathLike), through PyUnicode_FSConverter. */
#define PATH(b) PyBytes_AS_STRING(b)

static PyObject *path_str(PyObject *bytes) { return PyUnicode_DecodeFSDefault(PATH(bytes)); }

/* json.loads(text) */
static PyObject *json_value(const char *text)
{
    PyObject *s = text_of(text);
    if (s == NULL) return NULL;
    PyObject *v = PyObject_CallOneArg(json_loads, s);
    Py_DECREF(s);
    return v;
}

/* A new array of `type` and shape dims, filled from `src` (NULL: left uninitialized). */
static PyArrayObject *new_array(int nd, const npy_intp *dims, int type, const void *src)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(nd, (npy_intp *)dims, type);
    if (a && src && PyArray_NBYTES(a) > 0) memcpy(PyArray_DATA(a), src, (size_t)PyArray_NBYTES(a));
    return a;
}

/* d[key] = v, stealing v (NULL: an error is pending). */
static int put(PyObject *d, const char *key, PyObject *v)
{
    if (v == NULL) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *int_list3(const int64_t v[3]) { return Py_BuildValue("[LLL]", (long long)v[0], (long long)v[1], (long long)v[2]); }

/* A Python scalar or sequence of numbers for metadata attributes: what the value is. */
typedef enum { VAL_STR, VAL_BOOL, VAL_INT, VAL_FLOAT, VAL_INTS, VAL_FLOATS } value_kind;

typedef struct value {
    value_kind kind;
    const char *s;
    long long i;
    double f;
    PyArrayObject *array; /* VAL_INTS (int64), VAL_FLOATS (float64) */
} value;

static int value_arg(PyObject *obj, value *out)
{
    memset(out, 0, sizeof *out);
    if (PyUnicode_Check(obj)) {
        out->kind = VAL_STR;
        return (out->s = utf8_arg(obj, "value")) ? 0 : -1;
    }
    if (PyBool_Check(obj) || PyArray_IsScalar(obj, Bool)) {
        out->kind = VAL_BOOL;
        out->i = PyObject_IsTrue(obj);
        return out->i < 0 ? -1 : 0;
    }
    if (PyLong_Check(obj) || PyArray_IsScalar(obj, Integer)) {
        out->kind = VAL_INT;
        out->i = PyLong_AsLongLong(obj);
        return out->i == -1 && PyErr_Occurred() ? -1 : 0;
    }
    if (PyFloat_Check(obj) || PyArray_IsScalar(obj, Floating)) {
        out->kind = VAL_FLOAT;
        out->f = PyFloat_AsDouble(obj);
        return out->f == -1.0 && PyErr_Occurred() ? -1 : 0;
    }
    if (PyBytes_Check(obj) || obj == Py_None || !(PySequence_Check(obj) || PyArray_Check(obj))) {
        PyErr_Format(PyExc_TypeError, "value must be a str, bool, int, float or a sequence of numbers, got %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(obj);
    if (a == NULL) return -1;
    char kind = PyArray_DESCR(a)->kind;
    int nd = PyArray_NDIM(a);
    Py_DECREF(a);
    if (nd != 1 || (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')) {
        PyErr_Format(PyExc_TypeError, "value must be a flat sequence of numbers, got %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    out->kind = kind == 'f' ? VAL_FLOATS : VAL_INTS;
    out->array = as_array(obj, kind == 'f' ? NPY_DOUBLE : NPY_INT64, "value");
    return out->array ? 0 : -1;
}

/* The (key, value) arguments of Writer.meta and SigWriter.attr; without int_arrays (signal
 * files have no integer-array attributes) a sequence of integers becomes float64. */
static int key_value_args(PyObject *args, const char *fmt, bool int_arrays, const char **key, value *v)
{
    PyObject *key_o, *val_o;
    memset(v, 0, sizeof *v);
    if (!PyArg_ParseTuple(args, fmt, &key_o, &val_o) || (*key = utf8_arg(key_o, "key")) == NULL || value_arg(val_o, v) < 0) return -1;
    if (v->kind != VAL_INTS || int_arrays) return 0;
    v->kind = VAL_FLOATS;
    Py_SETREF(v->array, (PyArrayObject *)PyArray_FROM_OTF((PyObject *)v->array, NPY_DOUBLE, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST));
    return v->array ? 0 : -1;
}

/* ======================================================================================
 * Handles: what the four types share
 * ====================================================================================== */

/* What differs between the types in opening, closing and forking. */
typedef struct handle_ops {
    const char *name;                          /* "Writer", for messages */
    PyTypeObject *type;                        /* the type readers pickle as */
    int (*finalize)(void *h);                  /* writers: run by close() if still open */
    int (*rollback)(void *h);                  /* writers */
    int (*close)(void *h);                     /* frees the handle */
    int (*reopen)(void *h, const char *path);  /* Reader: reopens in a forked child */
    bool forks_itself;                         /* SigReader: the library reopens after a fork */
} handle_ops;

enum { ST_OPEN, ST_FINALIZED, ST_ROLLED_BACK };

typedef struct HandleObject {
    PyObject_HEAD
    const handle_ops *ops;
    void *h;        /* the library's handle; NULL once closed */
    guard g;
    callback log;
    PyObject *path; /* str */
    PyObject *args; /* readers: the constructor's arguments, for pickling */
    pid_t pid;      /* process that opened the handle */
    int state;      /* writers: ST_* */
} HandleObject;

static PyObject *handle_new(PyTypeObject *type, const handle_ops *ops)
{
    HandleObject *self = (HandleObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->ops = ops;
    if (guard_init(&self->g) < 0) Py_CLEAR(self);
    return (PyObject *)self;
}

/* Takes the guard for a use of the open handle, after a fork reopening it (Reader) or
 * refusing (writers: the parent's file, the parent's threads). */
static int handle_enter(HandleObject *self)
{
    const handle_ops *ops = self->ops;
    if (guard_enter(&self->g, ops->name) < 0) return -1;
    if (self->h == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s is closed", ops->name);
    } else if (self->pid == my_pid() || ops->forks_itself) {
        return 0;
    } else if (ops->reopen) {
        PyObject *pathb = PyUnicode_EncodeFSDefault(self->path);
        if (pathb) {
            int rc;
            Py_BEGIN_ALLOW_THREADS
            rc = ops->reopen(self->h, PATH(pathb));
            Py_END_ALLOW_THREADS
            Py_DECREF(pathb);
            self->pid = my_pid(); /* a failed reopen leaves the handle closed: the library says so */
            if (finish(rc, self->h, &self->log, NULL) == 0) return 0;
        }
    } else {
        PyErr_Format(PyExc_RuntimeError, "%s of %S was opened in process %ld and cannot be used in a forked child", ops->name,
                     self->path, (long)self->pid);
    }
    guard_exit(&self->g);
    return -1;
}

/* Finalizes a writer still open and frees the handle; raises the first failure. */
static int handle_close_impl(HandleObject *self)
{
    void *h = self->h;
    if (h == NULL) return 0;
    self->h = NULL;
    /* In a forked child a writer is the parent's, and so is the HDF5 state of a reader that
     * never reopened: dropped without closing (the library does so for signal readers). */
    if (self->pid != my_pid() && !self->ops->forks_itself) return 0;
    int rc = H5ML_OK, rc2;
    if (self->ops->finalize && self->state == ST_OPEN) {
        Py_BEGIN_ALLOW_THREADS
        rc = self->ops->finalize(h);
        Py_END_ALLOW_THREADS
        if (rc == H5ML_OK) self->state = ST_FINALIZED;
    }
    int failed = finish(rc, h, &self->log, NULL); /* before close frees the message */
    Py_BEGIN_ALLOW_THREADS
    rc2 = self->ops->close(h);
    Py_END_ALLOW_THREADS
    if (failed) return -1;
    if (rc2 != H5ML_OK) {
        set_error(rc2, h5ml_strerror(rc2));
        return -1;
    }
    return 0;
}

/* The start of __init__: the guard taken, nothing open yet. */
static int init_begin(HandleObject *self)
{
    if (guard_enter(&self->g, self->ops->name) < 0) return -1;
    if (self->h == NULL) return 0;
    PyErr_Format(PyExc_RuntimeError, "%s is already open", self->ops->name);
    guard_exit(&self->g);
    return -1;
}

/* Installs the log callable (stolen; NULL for none) on the handle being opened. */
static void init_log(HandleObject *self, void *h, PyObject *log_fn)
{
    Py_XSETREF(self->log.fn, log_fn);
    if (self->log.fn) h5ml_set_log(h, log_trampoline, &self->log);
}

/* The end of a successful open: keeps `h`, opened on `pathb`, and `args` (stolen; may be NULL). */
static int init_done(HandleObject *self, void *h, PyObject *pathb, PyObject *args)
{
    PyObject *path = path_str(pathb);
    if (path == NULL) {
        Py_XDECREF(args);
        return -1;
    }
    Py_XSETREF(self->path, path);
    Py_XSETREF(self->args, args);
    self->h = h;
    self->pid = my_pid();
    self->state = ST_OPEN;
    return 0;
}

/* A step of a writer without arguments (checkpoint, finalize, rollback); the state it
 * leads to. A rollback closes the file for writing even when it fails. */
static PyObject *handle_step(HandleObject *self, int (*fn)(void *), int state_after)
{
    if (handle_enter(self) < 0) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(self->h);
    Py_END_ALLOW_THREADS
    if ((rc == H5ML_OK || state_after == ST_ROLLED_BACK) && self->state == ST_OPEN) self->state = state_after;
    PyObject *result = finish(rc, self->h, &self->log, NULL) == 0 ? Py_NewRef(Py_None) : NULL;
    guard_exit(&self->g);
    return result;
}

static PyObject *handle_finalize(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return handle_step(self, self->ops->finalize, ST_FINALIZED);
}

static PyObject *handle_rollback(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return handle_step(self, self->ops->rollback, ST_ROLLED_BACK);
}

static PyObject *handle_close(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (guard_enter(&self->g, self->ops->name) < 0) return NULL;
    int rc = handle_close_impl(self);
    guard_exit(&self->g);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *handle_enter_with(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *handle_exit_with(HandleObject *self, PyObject *args)
{
    (void)args;
    PyObject *r = handle_close(self, NULL);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

/* Readers pickle as their constructor's arguments: the file is reopened where unpickled. */
static PyObject *handle_reduce(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (self->args == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s is not initialized", self->ops->name);
        return NULL;
    }
    return Py_BuildValue("(OO)", (PyObject *)self->ops->type, self->args);
}

static PyObject *handle_get_path(HandleObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->path ? self->path : Py_None);
}

static PyObject *handle_get_closed(HandleObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->h == NULL);
}

static PyObject *handle_get_finalized(HandleObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->state == ST_FINALIZED);
}

static int handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->log.fn);
    Py_VISIT(self->log.exc);
    return 0;
}

static int handle_clear(HandleObject *self)
{
    Py_CLEAR(self->log.fn);
    Py_CLEAR(self->log.exc);
    return 0;
}

/* Closing when collected: tp_finalize runs before tp_clear for garbage in cycles, so the
 * log callable still hears the last warnings of a writer finalized here. */
static void handle_finalize_hook(PyObject *o)
{
    HandleObject *self = (HandleObject *)o;
    if (self->h == NULL) return;
    PyObject *saved = exc_take();
    if (handle_close_impl(self) < 0) PyErr_WriteUnraisable(o);
    exc_give(saved);
}

static void handle_dealloc(HandleObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) return; /* resurrected */
    PyObject_GC_UnTrack(self);
    if (self->h) handle_finalize_hook((PyObject *)self); /* a subclass's __del__ replaced the hook */
    handle_clear(self);
    Py_CLEAR(self->path);
    Py_CLEAR(self->args);
    guard_free(&self->g);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define HANDLE_METHODS                                                                            \
    { "close", (PyCFunction)handle_close, METH_NOARGS, "close()\n--\n\nCloses (idempotent)." },    \
        { "__enter__", handle_enter_with, METH_NOARGS, NULL },                                    \
        { "__exit__", (PyCFunction)handle_exit_with, METH_VARARGS, NULL }

/* finalize() and rollback() of the writers */
#define WRITER_METHODS(finalize_doc, rollback_doc)                                                 \
    { "finalize", (PyCFunction)handle_finalize, METH_NOARGS, "finalize()\n--\n\n" finalize_doc },  \
        { "rollback", (PyCFunction)handle_rollback, METH_NOARGS, "rollback()\n--\n\n" rollback_doc }

#define HANDLE_GETSET                                                                             \
    { "path", (getter)handle_get_path, NULL, "the file", NULL },                                  \
        { "closed", (getter)handle_get_closed, NULL, "whether close() was called", NULL }

/* The type of one handle kind (static; subclassable; closed when collected). */
#define HANDLE_TYPE(Name, getset, doc)                                                                    \
    {                                                                                             \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "h5ml._h5ml." #Name,                             \
        .tp_basicsize = sizeof(HandleObject), .tp_dealloc = (destructor)handle_dealloc,           \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, .tp_doc = doc, \
        .tp_traverse = (traverseproc)handle_traverse, .tp_clear = (inquiry)handle_clear,          \
        .tp_methods = Name##_methods, .tp_getset = getset, .tp_init = (initproc)Name##_init, \
        .tp_new = Name##_new, .tp_finalize = handle_finalize_hook,                                \
    }

/* ======================================================================================
 * Writer
 * ====================================================================================== */

static int writer_finalize(void *h) { return h5ml_writer_finalize(h); }
static int writer_close(void *h) { return h5ml_writer_close(h); }
static int writer_checkpoint(void *h) { return h5ml_writer_checkpoint(h); }
static int writer_rollback(void *h) { return h5ml_writer_rollback(h); }

static PyTypeObject WriterType;
static const handle_ops writer_ops = { "Writer", &WriterType, writer_finalize, writer_rollback, writer_close, NULL, false };

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return handle_new(type, &writer_ops);
}

static int Writer_init(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "path", "mode", "compression", "level", "shuffle", "validate", "chunk_atoms",
                          "chunk_structures", "checkpoint_ms", "threads", "log", "dedup", "access", NULL };
    PyObject *pathb = NULL, *comp_obj = NULL, *log_obj = Py_None, *log_fn = NULL;
    const char *mode = "w";
    long long level = 0, chunk_atoms = 0, chunk_structures = 0, checkpoint_ms = 0, threads = 0;
    int shuffle = 1, validate = 1, dedup = 0, code = H5ML_COMPRESS_GZIP, comp, profile, hmode, access = 0;
    const char *access_s = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|sOLppLLLLOpz:Writer", kw, PyUnicode_FSConverter, &pathb, &mode, &comp_obj,
                                     &level, &shuffle, &validate, &chunk_atoms, &chunk_structures, &checkpoint_ms, &threads,
                                     &log_obj, &dedup, &access_s))
        return -1;
    if (access_s && strcmp(access_s, "sequential") == 0) access = H5ML_ACCESS_SEQUENTIAL;
    else if (access_s && strcmp(access_s, "shuffled") == 0) access = H5ML_ACCESS_SHUFFLED;
    else if (access_s) {
        Py_XDECREF(pathb);
        PyErr_Format(PyExc_ValueError, "access must be 'sequential' or 'shuffled', got '%s'", access_s);
        return -1;
    }
    int ret = -1;
    h5ml_writer *w = NULL;
    if (strcmp(mode, "w") == 0) hmode = H5ML_CREATE;
    else if (strcmp(mode, "a") == 0 || strcmp(mode, "append") == 0) hmode = H5ML_APPEND;
    else {
        PyErr_Format(PyExc_ValueError, "mode must be 'w' or 'a', got '%s'", mode);
        goto done;
    }
    if ((comp_obj && compression_arg(comp_obj, &code) < 0) || callable_arg(log_obj, "log", &log_fn) < 0 || init_begin(self) < 0)
        goto done;
    filters_of(code, &comp, &profile);
    if ((w = h5ml_writer_new()) == NULL) {
        PyErr_NoMemory();
        guard_exit(&self->g);
        goto done;
    }
    const struct { h5ml_option opt; long long value; bool set; } opts[] = {
        { H5ML_OPT_PROFILE, profile, profile != 0 },
        { H5ML_OPT_COMPRESSION, comp, comp != 0 },
        { H5ML_OPT_LEVEL, level, gzip_chosen(comp, profile) && level != 0 }, /* level is gzip's only */
        { H5ML_OPT_SHUFFLE, shuffle ? 1 : -1, true },
        { H5ML_OPT_VALIDATE, validate ? 1 : -1, true },
        { H5ML_OPT_DEDUP, dedup ? 1 : -1, true },
        { H5ML_OPT_ACCESS, access, access != 0 },
        { H5ML_OPT_CHUNK_ATOMS, chunk_atoms, chunk_atoms != 0 },
        { H5ML_OPT_CHUNK_STRUCTURES, chunk_structures, chunk_structures != 0 },
        { H5ML_OPT_CHECKPOINT_MS, checkpoint_ms, checkpoint_ms != 0 },
        { H5ML_OPT_THREADS, threads, threads != 0 },
    };
    int rc = H5ML_OK;
    for (size_t k = 0; k < sizeof opts / sizeof *opts && rc == H5ML_OK; k++)
        if (opts[k].set) rc = h5ml_writer_set(w, opts[k].opt, opts[k].value);
    init_log(self, w, log_fn);
    log_fn = NULL;
    if (rc == H5ML_OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_writer_open(w, PATH(pathb), (h5ml_mode)hmode);
        Py_END_ALLOW_THREADS
    }
    if (finish(rc, w, &self->log, NULL) == 0 && init_done(self, w, pathb, NULL) == 0) {
        w = NULL;
        ret = 0;
    }
    guard_exit(&self->g);
done:
    if (w) {
        Py_BEGIN_ALLOW_THREADS
        h5ml_writer_close(w); /* the open failed: nothing to finalize */
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(log_fn);
    Py_XDECREF(pathb);
    return ret;
}

/* Adding to a closed writer: closing finalized it, as in the original writer. */
static int check_not_finalized(HandleObject *self)
{
    if (self->h != NULL || self->state != ST_FINALIZED) return 0;
    PyErr_SetString(PyExc_RuntimeError, "Cannot add structures after finalize() has been called");
    return -1;
}

static PyObject *Writer_add(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "numbers", "positions", "energy", "forces", "cell", "pbc", "stress", "info", NULL };
    PyObject *numbers_o, *positions_o, *forces_o, *cell_o = Py_None, *pbc_o = Py_None, *stress_o = Py_None, *info_o = Py_None;
    double energy;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOdO|OOOO:add", kw, &numbers_o, &positions_o, &energy, &forces_o, &cell_o, &pbc_o,
                                     &stress_o, &info_o) ||
        check_not_finalized(self) < 0)
        return NULL;
    PyArrayObject *numbers = NULL, *positions = NULL, *forces = NULL, *cell = NULL, *pbc = NULL, *stress = NULL;
    PyObject *result = NULL;
    const char *info = NULL;
    static const npy_intp any1[1] = { ANY }, three[1] = { 3 }, three3[2] = { 3, 3 }, any3[2] = { ANY, 3 };
    if ((numbers = array_arg(numbers_o, NPY_INT64, "numbers", 1, any1, "(n,)", NULL)) == NULL) goto done;
    npy_intp n = PyArray_DIM(numbers, 0);
    npy_intp n3[2] = { n, 3 };
    char note[64];
    snprintf(note, sizeof note, "n = %lld from numbers", (long long)n);
    if ((positions = array_arg(positions_o, NPY_DOUBLE, "positions", 2, n3, "(n, 3)", note)) == NULL) goto done;
    if ((forces = array_arg(forces_o, NPY_DOUBLE, "forces", 2, any3, "(n, 3)", NULL)) == NULL) goto done;
    npy_intp m = PyArray_DIM(forces, 0);
    if (m == 0 && n > 0) { /* forces_rows 0 would mean "natoms" to the library */
        PyErr_Format(PyExc_ValueError, "Forces shape (0, 3) doesn't match atoms (%lld, 3)", (long long)n);
        goto done;
    }
    if (cell_o != Py_None && (cell = array_arg(cell_o, NPY_DOUBLE, "cell", 2, three3, "(3, 3)", NULL)) == NULL) goto done;
    if (pbc_o != Py_None && (pbc = array_arg(pbc_o, NPY_BOOL, "pbc", 1, three, "(3,)", NULL)) == NULL) goto done;
    if (stress_o != Py_None) {
        if ((stress = as_array(stress_o, NPY_DOUBLE, "stress")) == NULL) goto done;
        bool voigt = PyArray_NDIM(stress) == 1 && PyArray_DIM(stress, 0) == 6;
        bool full = PyArray_NDIM(stress) == 2 && PyArray_DIM(stress, 0) == 3 && PyArray_DIM(stress, 1) == 3;
        if (!voigt && !full) {
            char got[128];
            shape_text(stress, got, sizeof got);
            PyErr_Format(PyExc_ValueError, "stress must have shape (6,) or (3, 3), got %s", got);
            goto done;
        }
    }
    if (opt_utf8_arg(info_o, "info", &info) < 0 || handle_enter(self) < 0) goto done;
    h5ml_structure s = {
        .natoms = n,
        .numbers = PyArray_DATA(numbers),
        .positions = PyArray_DATA(positions),
        .cell = cell ? PyArray_DATA(cell) : NULL,
        .pbc = pbc ? PyArray_DATA(pbc) : NULL,
        .energy = energy,
        .forces = PyArray_DATA(forces),
        .forces_rows = m,
        .stress = stress ? PyArray_DATA(stress) : NULL,
        .stress_len = stress ? PyArray_SIZE(stress) : 0,
        .info_json = info,
    };
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_writer_add(self->h, &s);
    Py_END_ALLOW_THREADS
    if (finish(rc, self->h, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
    guard_exit(&self->g);
done:
    Py_XDECREF(numbers);
    Py_XDECREF(positions);
    Py_XDECREF(forces);
    Py_XDECREF(cell);
    Py_XDECREF(pbc);
    Py_XDECREF(stress);
    return result;
}

static PyObject *Writer_add_batch(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "natoms", "numbers", "positions", "energies", "forces", "cells", "pbc", "stress", "stress_mask", "info", NULL };
    PyObject *natoms_o, *numbers_o, *positions_o, *energies_o, *forces_o, *cells_o = Py_None, *pbc_o = Py_None, *stress_o = Py_None,
                                                                          *mask_o = Py_None, *info_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|OOOOO:add_batch", kw, &natoms_o, &numbers_o, &positions_o, &energies_o,
                                     &forces_o, &cells_o, &pbc_o, &stress_o, &mask_o, &info_o) ||
        check_not_finalized(self) < 0)
        return NULL;
    PyArrayObject *natoms = NULL, *numbers = NULL, *positions = NULL, *energies = NULL, *forces = NULL, *cells = NULL, *pbc = NULL,
                  *stress = NULL, *mask = NULL;
    strvec info = { 0 };
    PyObject *result = NULL;
    static const npy_intp any1[1] = { ANY };
    if ((natoms = array_arg(natoms_o, NPY_INT64, "natoms", 1, any1, "(N,)", NULL)) == NULL) goto done;
    npy_intp N = PyArray_DIM(natoms, 0);
    const int64_t *na = PyArray_DATA(natoms);
    if ((numbers = array_arg(numbers_o, NPY_INT64, "numbers", 1, any1, "(M,)", NULL)) == NULL) goto done;
    npy_intp M = PyArray_DIM(numbers, 0);
    int64_t sum = 0;
    for (npy_intp k = 0; k < N; k++) {
        if (na[k] < 0 || na[k] > M - sum) { /* also keeps the sum from overflowing */
            if (na[k] < 0) PyErr_Format(PyExc_ValueError, "natoms[%zd] is negative (%lld)", (Py_ssize_t)k, (long long)na[k]);
            else PyErr_Format(PyExc_ValueError, "natoms adds up to more than the %lld atoms of numbers", (long long)M);
            goto done;
        }
        sum += na[k];
    }
    if (sum != M) {
        PyErr_Format(PyExc_ValueError, "natoms adds up to %lld atoms but numbers has %lld", (long long)sum, (long long)M);
        goto done;
    }
    char nN[64], nM[64];
    snprintf(nN, sizeof nN, "N = %lld from natoms", (long long)N);
    snprintf(nM, sizeof nM, "M = %lld from numbers", (long long)M);
    const npy_intp dN[1] = { N }, dM3[2] = { M, 3 }, dN33[3] = { N, 3, 3 }, dN3[2] = { N, 3 }, dN6[2] = { N, 6 };
    if ((positions = array_arg(positions_o, NPY_DOUBLE, "positions", 2, dM3, "(M, 3)", nM)) == NULL ||
        (energies = array_arg(energies_o, NPY_DOUBLE, "energies", 1, dN, "(N,)", nN)) == NULL ||
        (forces = array_arg(forces_o, NPY_DOUBLE, "forces", 2, dM3, "(M, 3)", nM)) == NULL)
        goto done;
    if (cells_o != Py_None && (cells = array_arg(cells_o, NPY_DOUBLE, "cells", 3, dN33, "(N, 3, 3)", nN)) == NULL) goto done;
    if (pbc_o != Py_None && (pbc = array_arg(pbc_o, NPY_BOOL, "pbc", 2, dN3, "(N, 3)", nN)) == NULL) goto done;
    if (stress_o != Py_None && (stress = array_arg(stress_o, NPY_DOUBLE, "stress", 2, dN6, "(N, 6)", nN)) == NULL) goto done;
    if (mask_o != Py_None) {
        if (stress == NULL) {
            PyErr_SetString(PyExc_ValueError, "stress_mask given without stress");
            goto done;
        }
        if ((mask = array_arg(mask_o, NPY_BOOL, "stress_mask", 1, dN, "(N,)", nN)) == NULL) goto done;
    }
    if (info_o != Py_None && strvec_init(&info, info_o, "info", N, "structure", true) < 0) goto done;
    if (handle_enter(self) < 0) goto done;
    h5ml_batch b = {
        .count = N,
        .natoms = na,
        .numbers = PyArray_DATA(numbers),
        .positions = PyArray_DATA(positions),
        .cells = cells ? PyArray_DATA(cells) : NULL,
        .pbc = pbc ? PyArray_DATA(pbc) : NULL,
        .energies = PyArray_DATA(energies),
        .forces = PyArray_DATA(forces),
        .stress = stress ? PyArray_DATA(stress) : NULL,
        .stress_mask = mask ? PyArray_DATA(mask) : NULL,
        .info_json = info.items ? info.v : NULL,
    };
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_writer_add_batch(self->h, &b);
    Py_END_ALLOW_THREADS
    if (finish(rc, self->h, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
    guard_exit(&self->g);
done:
    strvec_free(&info);
    Py_XDECREF(natoms);
    Py_XDECREF(numbers);
    Py_XDECREF(positions);
    Py_XDECREF(energies);
    Py_XDECREF(forces);
    Py_XDECREF(cells);
    Py_XDECREF(pbc);
    Py_XDECREF(stress);
    Py_XDECREF(mask);
    return result;
}

static PyObject *Writer_meta(HandleObject *self, PyObject *args)
{
    const char *key;
    value v;
    PyObject *result = NULL;
    if (key_value_args(args, "UO:meta", true, &key, &v) == 0 && handle_enter(self) == 0) {
        int rc = H5ML_OK;
        h5ml_writer *w = self->h;
        switch (v.kind) { /* kept in memory until finalize: no I/O here */
        case VAL_STR: rc = h5ml_writer_meta_string(w, key, v.s); break;
        case VAL_BOOL: rc = h5ml_writer_meta_bool(w, key, (int)v.i); break;
        case VAL_INT: rc = h5ml_writer_meta_int(w, key, v.i); break;
        case VAL_FLOAT: rc = h5ml_writer_meta_double(w, key, v.f); break;
        case VAL_INTS: rc = h5ml_writer_meta_ints(w, key, PyArray_DATA(v.array), (size_t)PyArray_SIZE(v.array)); break;
        case VAL_FLOATS: rc = h5ml_writer_meta_doubles(w, key, PyArray_DATA(v.array), (size_t)PyArray_SIZE(v.array)); break;
        }
        if (finish(rc, w, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
        guard_exit(&self->g);
    }
    Py_XDECREF(v.array);
    return result;
}

static PyObject *Writer_meta_json(HandleObject *self, PyObject *args)
{
    PyObject *key_o, *text_o;
    if (!PyArg_ParseTuple(args, "UU:meta_json", &key_o, &text_o)) return NULL;
    const char *key = utf8_arg(key_o, "key"), *text = key ? utf8_arg(text_o, "text") : NULL;
    if (text == NULL || handle_enter(self) < 0) return NULL;
    int rc = h5ml_writer_meta_json(self->h, key, text);
    PyObject *result = finish(rc, self->h, &self->log, NULL) == 0 ? Py_NewRef(Py_None) : NULL;
    guard_exit(&self->g);
    return result;
}

static PyObject *Writer_checkpoint(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return handle_step(self, writer_checkpoint, ST_OPEN);
}

static PyObject *Writer_stats(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    h5ml_writer_stats st;
    h5ml_writer_get_stats(self->h, &st);
    guard_exit(&self->g);
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L}", "structures", (long long)st.structures, "atoms",
                         (long long)st.atoms, "added", (long long)st.added, "added_atoms", (long long)st.added_atoms,
                         "checkpoints", (long long)st.checkpoints, "warnings", (long long)st.warnings, "dropped",
                         (long long)st.dropped, "deduplicated", (long long)st.deduplicated);
}

static PyMethodDef Writer_methods[] = {
    { "add", (PyCFunction)(void (*)(void))Writer_add, METH_VARARGS | METH_KEYWORDS,
      "add(numbers, positions, energy, forces, cell=None, pbc=None, stress=None, info=None)\n--\n\nAdds one structure." },
    { "add_batch", (PyCFunction)(void (*)(void))Writer_add_batch, METH_VARARGS | METH_KEYWORDS,
      "add_batch(natoms, numbers, positions, energies, forces, cells=None, pbc=None, stress=None, stress_mask=None, "
      "info=None)\n--\n\nAdds structures given as flat arrays." },
    { "meta", (PyCFunction)Writer_meta, METH_VARARGS, "meta(key, value)\n--\n\nA /metadata attribute, written at finalize." },
    { "meta_json", (PyCFunction)Writer_meta_json, METH_VARARGS, "meta_json(key, text)\n--\n\nA JSON text stored as a string attribute." },
    { "checkpoint", (PyCFunction)Writer_checkpoint, METH_NOARGS, "checkpoint()\n--\n\nMakes everything added durable." },
    WRITER_METHODS("Writes /metadata; adding fails afterwards.", "Discards everything added since open."),
    { "stats", (PyCFunction)Writer_stats, METH_NOARGS, "stats()\n--\n\nCounters of the writer as a dict." },
    HANDLE_METHODS,
    { NULL, NULL, 0, NULL },
};

/* Writer and SigWriter */
static PyGetSetDef writer_getset[] = {
    HANDLE_GETSET,
    { "finalized", (getter)handle_get_finalized, NULL, "whether the file was finalized", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject WriterType = HANDLE_TYPE(Writer, writer_getset, "Writer(path, mode='w', compression='gzip', level=0, shuffle=True, "
                                                     "validate=True, chunk_atoms=0, chunk_structures=0, checkpoint_ms=0, "
                                                     "threads=0, log=None, dedup=False, access=None)\n--\n\nWrites an atomistic dataset. "
                                                     "compression: 'gzip', 'lzf', 'none', None or a profile ('fast', "
                                                     "'balanced', 'small'); level 0: gzip's default 4 or the profile's.");

/* ======================================================================================
 * Reader
 * ====================================================================================== */

static int reader_close(void *h)
{
    h5ml_reader_close(h);
    return H5ML_OK;
}

static int reader_reopen(void *h, const char *path) { return h5ml_reader_open(h, path); }

static PyTypeObject ReaderType;
static const handle_ops reader_ops = { "Reader", &ReaderType, NULL, NULL, reader_close, reader_reopen, false };

static PyObject *Reader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return handle_new(type, &reader_ops);
}

/* self->args of a Reader (what it pickles as): (path,) with the default cache and threads,
 * else (path, None, cache, threads) (the log callable is not pickled). */
static PyObject *reader_args(PyObject *path, PyObject *cache, long long threads)
{
    if (cache == Py_None && threads == 0) return PyTuple_Pack(1, path);
    return Py_BuildValue("(OOOL)", path, Py_None, cache, threads);
}

/* threads for h5ml_reader_set_threads (0..256, checked there; what does not fit an int is
 * refused here with the same message). */
static int threads_arg(long long threads, int *out)
{
    if ((long long)(int)threads != threads) {
        PyErr_Format(PyExc_ValueError, "threads must be 0..256 (got %lld)", threads);
        return -1;
    }
    *out = (int)threads;
    return 0;
}

/* cache: None (the library's default) or a byte count; *set false for None. */
static int cache_arg(PyObject *obj, long long *out, bool *set)
{
    *set = obj != Py_None;
    *out = 0;
    if (!*set) return 0;
    if (!PyLong_Check(obj) && !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "cache must be an int (bytes) or None, got %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = PyLong_AsLongLong(obj);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int Reader_init(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "path", "log", "cache", "threads", NULL };
    PyObject *pathb = NULL, *log_obj = Py_None, *log_fn = NULL, *cache_obj = Py_None;
    long long threads = 0, cache = 0;
    bool cache_set = false;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|OOL:Reader", kw, PyUnicode_FSConverter, &pathb, &log_obj, &cache_obj,
                                     &threads))
        return -1;
    int ret = -1;
    h5ml_reader *r = NULL;
    if (cache_arg(cache_obj, &cache, &cache_set) < 0 || threads_arg(threads, &nthreads) < 0 ||
        callable_arg(log_obj, "log", &log_fn) < 0 || init_begin(self) < 0)
        goto done;
    if ((r = h5ml_reader_new()) == NULL) {
        PyErr_NoMemory();
    } else {
        init_log(self, r, log_fn);
        log_fn = NULL;
        int rc = cache_set ? h5ml_reader_set_cache(r, cache) : H5ML_OK;
        if (rc == H5ML_OK) rc = h5ml_reader_set_threads(r, nthreads);
        if (rc == H5ML_OK) {
            Py_BEGIN_ALLOW_THREADS
            rc = h5ml_reader_open(r, PATH(pathb));
            Py_END_ALLOW_THREADS
        }
        if (finish(rc, r, &self->log, NULL) == 0) {
            PyObject *path = path_str(pathb), *pargs = path ? reader_args(path, cache_obj, threads) : NULL;
            Py_XDECREF(path);
            if (pargs && init_done(self, r, pathb, pargs) == 0) {
                r = NULL;
                ret = 0;
            }
        }
    }
    guard_exit(&self->g);
done:
    h5ml_reader_close(r);
    Py_XDECREF(log_fn);
    Py_XDECREF(pathb);
    return ret;
}

/* Structure i as a dict of new arrays (the frame's storage is reused by the next call). */
static PyObject *frame_dict(const h5ml_frame *f)
{
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    const npy_intp n1[1] = { f->natoms }, n3[2] = { f->natoms, 3 }, c33[2] = { 3, 3 }, three[1] = { 3 }, six[1] = { 6 };
    uint8_t pbc[3] = { f->pbc[0] != 0, f->pbc[1] != 0, f->pbc[2] != 0 };
    if (put(d, "numbers", (PyObject *)new_array(1, n1, NPY_INT64, f->numbers)) < 0 ||
        put(d, "positions", (PyObject *)new_array(2, n3, NPY_DOUBLE, f->positions)) < 0 ||
        put(d, "cell", (PyObject *)new_array(2, c33, NPY_DOUBLE, f->cell)) < 0 ||
        put(d, "pbc", (PyObject *)new_array(1, three, NPY_BOOL, pbc)) < 0 || put(d, "energy", PyFloat_FromDouble(f->energy)) < 0 ||
        put(d, "forces", (PyObject *)new_array(2, n3, NPY_FLOAT, f->forces)) < 0 ||
        put(d, "stress", f->has_stress ? (PyObject *)new_array(1, six, NPY_DOUBLE, f->stress) : Py_NewRef(Py_None)) < 0 ||
        put(d, "info", f->info_json ? text_of(f->info_json) : Py_NewRef(Py_None)) < 0)
        Py_CLEAR(d);
    return d;
}

static PyObject *Reader_get(HandleObject *self, PyObject *args)
{
    long long i;
    if (!PyArg_ParseTuple(args, "L:get", &i) || handle_enter(self) < 0) return NULL;
    h5ml_frame f;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_reader_get(self->h, i, &f);
    Py_END_ALLOW_THREADS
    PyObject *result = finish(rc, self->h, &self->log, NULL) == 0 ? frame_dict(&f) : NULL;
    guard_exit(&self->g);
    return result;
}

/* The flat arrays of read() and read_indices(): per-structure ones of `count` rows, per-atom
 * ones of `atoms` rows, in the order of the dict they become. */
enum { FR_COUNT = 9 };
static const char *const frames_names[FR_COUNT] = { "natoms", "numbers", "positions", "cells", "pbc",
                                                    "energies", "forces", "stress", "stress_mask" };

/* New (uninitialized) arrays for `count` structures of `atoms` atoms in total, and `fr`
 * pointing into them. Returns 0, or -1 with an exception set and nothing allocated. */
static int frames_new(int64_t count, int64_t atoms, PyArrayObject *arr[FR_COUNT], h5ml_frames *fr)
{
    const npy_intp c[1] = { (npy_intp)count }, c3[2] = { (npy_intp)count, 3 }, c33[3] = { (npy_intp)count, 3, 3 },
                  c6[2] = { (npy_intp)count, 6 }, a1[1] = { (npy_intp)atoms }, a3[2] = { (npy_intp)atoms, 3 };
    arr[0] = new_array(1, c, NPY_INT64, NULL);
    arr[1] = new_array(1, a1, NPY_INT64, NULL);
    arr[2] = new_array(2, a3, NPY_DOUBLE, NULL);
    arr[3] = new_array(3, c33, NPY_DOUBLE, NULL);
    arr[4] = new_array(2, c3, NPY_BOOL, NULL);
    arr[5] = new_array(1, c, NPY_DOUBLE, NULL);
    arr[6] = new_array(2, a3, NPY_FLOAT, NULL);
    arr[7] = new_array(2, c6, NPY_DOUBLE, NULL);
    arr[8] = new_array(1, c, NPY_BOOL, NULL);
    bool ok = true;
    for (int k = 0; k < FR_COUNT; k++) ok = ok && arr[k] != NULL;
    if (!ok) {
        for (int k = 0; k < FR_COUNT; k++) Py_CLEAR(arr[k]);
        return -1;
    }
    *fr = (h5ml_frames){
        PyArray_DATA(arr[0]), PyArray_DATA(arr[1]), PyArray_DATA(arr[2]), PyArray_DATA(arr[3]), PyArray_DATA(arr[4]),
        PyArray_DATA(arr[5]), PyArray_DATA(arr[6]), PyArray_DATA(arr[7]), PyArray_DATA(arr[8]),
    };
    return 0;
}

/* The dict of the arrays (released either way; `ok` false: only released). */
static PyObject *frames_dict(PyArrayObject *arr[FR_COUNT], bool ok)
{
    PyObject *result = ok ? PyDict_New() : NULL;
    for (int k = 0; k < FR_COUNT; k++) {
        if (result && put(result, frames_names[k], Py_NewRef((PyObject *)arr[k])) < 0) Py_CLEAR(result);
        Py_CLEAR(arr[k]);
    }
    return result;
}

static PyObject *Reader_read(HandleObject *self, PyObject *args)
{
    long long start, count;
    if (!PyArg_ParseTuple(args, "LL:read", &start, &count) || handle_enter(self) < 0) return NULL;
    PyObject *result = NULL;
    int64_t atoms = 0;
    PyArrayObject *arr[FR_COUNT];
    h5ml_frames fr;
    int rc = h5ml_reader_range_atoms(self->h, start, count, &atoms); /* checks the range; no I/O */
    if (finish(rc, self->h, &self->log, NULL) == 0 && frames_new(count, atoms, arr, &fr) == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_reader_read(self->h, start, count, &fr);
        Py_END_ALLOW_THREADS
        result = frames_dict(arr, finish(rc, self->h, &self->log, NULL) == 0);
    }
    guard_exit(&self->g);
    return result;
}

/* `obj` (a sequence of ints or an integer array, any integer dtype) as int64 indices (n,). */
static PyArrayObject *indices_arg(PyObject *obj)
{
    if (PyArray_Check(obj) && PyArray_DESCR((PyArrayObject *)obj)->kind == 'b') {
        PyErr_SetString(PyExc_TypeError, "indices must be integers, got a bool array (a mask: use numpy.flatnonzero)");
        return NULL;
    }
    static const npy_intp any1[1] = { ANY };
    return array_arg(obj, NPY_INT64, "indices", 1, any1, "(n,)", NULL);
}

static PyObject *Reader_read_indices(HandleObject *self, PyObject *args)
{
    PyObject *idx_o;
    if (!PyArg_ParseTuple(args, "O:read_indices", &idx_o)) return NULL;
    PyArrayObject *idx = indices_arg(idx_o);
    if (idx == NULL) return NULL;
    PyObject *result = NULL;
    if (handle_enter(self) == 0) {
        const int64_t *iv = PyArray_DATA(idx);
        int64_t n = PyArray_DIM(idx, 0), atoms = 0;
        PyArrayObject *arr[FR_COUNT];
        h5ml_frames fr;
        int rc = h5ml_reader_atoms_of(self->h, iv, n, &atoms); /* checks every index; no I/O */
        if (finish(rc, self->h, &self->log, NULL) == 0 && frames_new(n, atoms, arr, &fr) == 0) {
            Py_BEGIN_ALLOW_THREADS
            rc = h5ml_reader_read_indices(self->h, iv, n, &fr);
            Py_END_ALLOW_THREADS
            result = frames_dict(arr, finish(rc, self->h, &self->log, NULL) == 0);
        }
        guard_exit(&self->g);
    }
    Py_DECREF(idx);
    return result;
}

static PyObject *Reader_atoms_of(HandleObject *self, PyObject *args)
{
    PyObject *idx_o;
    if (!PyArg_ParseTuple(args, "O:atoms_of", &idx_o)) return NULL;
    PyArrayObject *idx = indices_arg(idx_o);
    if (idx == NULL) return NULL;
    PyObject *result = NULL;
    if (handle_enter(self) == 0) {
        int64_t atoms = 0;
        int rc = h5ml_reader_atoms_of(self->h, PyArray_DATA(idx), PyArray_DIM(idx, 0), &atoms); /* no I/O */
        if (finish(rc, self->h, &self->log, NULL) == 0) result = PyLong_FromLongLong(atoms);
        guard_exit(&self->g);
    }
    Py_DECREF(idx);
    return result;
}

static PyObject *Reader_metadata(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    char *json = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_reader_metadata(self->h, &json);
    Py_END_ALLOW_THREADS
    PyObject *result = finish(rc, self->h, &self->log, NULL) == 0 ? json_value(json ? json : "{}") : NULL;
    h5ml_free(json);
    guard_exit(&self->g);
    return result;
}

static PyObject *Reader_layout(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    h5ml_layout l;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_reader_layout(self->h, &l);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (finish(rc, self->h, &self->log, NULL) == 0)
        result = Py_BuildValue("{s:s,s:i,s:N,s:L,s:L}", "compression", compression_name(l.compression), "level", l.level, "shuffle",
                               PyBool_FromLong(l.shuffle), "chunk_atoms", (long long)l.chunk_atoms, "chunk_structures",
                               (long long)l.chunk_structures);
    guard_exit(&self->g);
    return result;
}

/* The cache (borrowed) and threads the reader pickles with (self->args, see reader_args). */
static PyObject *reader_cache_setting(HandleObject *self)
{
    return self->args && PyTuple_GET_SIZE(self->args) == 4 ? PyTuple_GET_ITEM(self->args, 2) : Py_None;
}

static long long reader_threads_setting(HandleObject *self)
{
    return self->args && PyTuple_GET_SIZE(self->args) == 4 ? PyLong_AsLongLong(PyTuple_GET_ITEM(self->args, 3)) : 0;
}

static int reader_keep_settings(HandleObject *self, PyObject *cache, long long threads)
{
    PyObject *pargs = reader_args(self->path, cache, threads);
    if (pargs == NULL) return -1;
    Py_XSETREF(self->args, pargs);
    return 0;
}

static PyObject *Reader_set_threads(HandleObject *self, PyObject *args)
{
    long long threads;
    int n;
    if (!PyArg_ParseTuple(args, "L:set_threads", &threads) || threads_arg(threads, &n) < 0 || handle_enter(self) < 0) return NULL;
    PyObject *result = NULL;
    int rc = h5ml_reader_set_threads(self->h, n); /* no I/O */
    if (finish(rc, self->h, &self->log, NULL) == 0 && reader_keep_settings(self, reader_cache_setting(self), threads) == 0)
        result = Py_NewRef(Py_None);
    guard_exit(&self->g);
    return result;
}

static PyObject *Reader_set_cache(HandleObject *self, PyObject *args)
{
    PyObject *cache_obj;
    long long cache;
    bool set;
    if (!PyArg_ParseTuple(args, "O:set_cache", &cache_obj) || cache_arg(cache_obj, &cache, &set) < 0) return NULL;
    if (!set) {
        PyErr_SetString(PyExc_TypeError, "cache must be an int (bytes), got None");
        return NULL;
    }
    if (handle_enter(self) < 0) return NULL;
    PyObject *result = NULL, *pathb = NULL, *keep = NULL;
    long long threads = reader_threads_setting(self);
    int rc = h5ml_reader_set_cache(self->h, cache); /* checks the size; no I/O */
    if (finish(rc, self->h, &self->log, NULL) == 0 && (keep = PyLong_FromLongLong(cache)) != NULL &&
        (pathb = PyUnicode_EncodeFSDefault(self->path)) != NULL) {
        /* The budget is the reader's from its next open: reopen now. A failure (the file gone)
         * leaves the reader not open, and its uses say so. */
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_reader_open(self->h, PATH(pathb));
        Py_END_ALLOW_THREADS
        if (finish(rc, self->h, &self->log, NULL) == 0 && reader_keep_settings(self, keep, threads) == 0) result = Py_NewRef(Py_None);
    }
    Py_XDECREF(keep);
    Py_XDECREF(pathb);
    guard_exit(&self->g);
    return result;
}

static PyObject *Reader_refresh(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    int64_t n = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_reader_refresh(self->h, &n);
    Py_END_ALLOW_THREADS
    PyObject *result = finish(rc, self->h, &self->log, NULL) == 0 ? PyLong_FromLongLong((long long)n) : NULL;
    guard_exit(&self->g);
    return result;
}

/* count and total_atoms */
static PyObject *reader_number(HandleObject *self, int64_t (*fn)(const h5ml_reader *))
{
    if (handle_enter(self) < 0) return NULL;
    long long n = fn(self->h);
    guard_exit(&self->g);
    return PyLong_FromLongLong(n);
}

static PyObject *Reader_get_count(HandleObject *self, void *closure)
{
    (void)closure;
    return reader_number(self, h5ml_reader_count);
}

static PyObject *Reader_get_total_atoms(HandleObject *self, void *closure)
{
    (void)closure;
    return reader_number(self, h5ml_reader_total_atoms);
}

static PyMethodDef Reader_methods[] = {
    { "get", (PyCFunction)Reader_get, METH_VARARGS, "get(i)\n--\n\nStructure i as a dict of new arrays." },
    { "read", (PyCFunction)Reader_read, METH_VARARGS, "read(start, count)\n--\n\nStructures [start, start+count) as flat arrays." },
    { "read_indices", (PyCFunction)Reader_read_indices, METH_VARARGS,
      "read_indices(indices)\n--\n\nStructures `indices` (a sequence or array of ints; any order, repeats allowed) as "
      "read()'s flat arrays in that order: natoms, cells, pbc, energies, stress, stress_mask with one row per index, "
      "numbers, positions, forces with the atoms of each structure after those of the one before. One call of the "
      "library for the whole batch: each chunk involved is read once, decoded on the reader's threads and kept in its "
      "chunk cache. IndexError for an index outside [0, count) (negative ones included)." },
    { "atoms_of", (PyCFunction)Reader_atoms_of, METH_VARARGS,
      "atoms_of(indices)\n--\n\nTotal number of atoms of the structures `indices` (no I/O)." },
    { "set_threads", (PyCFunction)Reader_set_threads, METH_VARARGS,
      "set_threads(n)\n--\n\nThreads of read_indices (0..256): 0 (default) one per core, 1 the calling thread only." },
    { "set_cache", (PyCFunction)Reader_set_cache, METH_VARARGS,
      "set_cache(nbytes)\n--\n\nMemory for decompressed chunks kept between reads (default 256 MiB; 0 keeps none: "
      "every read decodes the chunks it needs). Reopens the file for it to apply, dropping the chunks cached so far." },
    { "metadata", (PyCFunction)Reader_metadata, METH_NOARGS, "metadata()\n--\n\nThe /metadata attributes as a dict." },
    { "refresh", (PyCFunction)Reader_refresh, METH_NOARGS,
      "refresh()\n--\n\nFollows a file a writer is appending to: takes the file's state as it is now and returns the "
      "new count. While an h5ml writer appends, structures appear at its checkpoints, whole, and the count never "
      "decreases. On error the reader keeps its previous state. Drops the cached chunks." },
    { "layout", (PyCFunction)Reader_layout, METH_NOARGS, "layout()\n--\n\nHow the file stores its data." },
    { "__reduce__", (PyCFunction)handle_reduce, METH_NOARGS, NULL },
    HANDLE_METHODS,
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Reader_getset[] = {
    { "count", (getter)Reader_get_count, NULL, "number of structures (N)", NULL },
    { "total_atoms", (getter)Reader_get_total_atoms, NULL, "number of atoms (M)", NULL },
    HANDLE_GETSET,
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject ReaderType = HANDLE_TYPE(Reader, Reader_getset, "Reader(path, log=None, cache=None, threads=0)\n--\n\n"
                                                           "Reads an atomistic dataset. cache: bytes of decompressed "
                                                           "chunks kept (None: 256 MiB; see set_cache); threads: "
                                                           "see set_threads.");

/* ======================================================================================
 * SigWriter
 * ====================================================================================== */

static int sigwriter_finalize(void *h) { return h5ml_sigwriter_finalize(h); }
static int sigwriter_close(void *h) { return h5ml_sigwriter_close(h); }
static int sigwriter_rollback(void *h) { return h5ml_sigwriter_rollback(h); }

static PyTypeObject SigWriterType;
static const handle_ops sigwriter_ops = { "SigWriter", &SigWriterType, sigwriter_finalize, sigwriter_rollback, sigwriter_close, NULL, false };

static PyObject *SigWriter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return handle_new(type, &sigwriter_ops);
}

/* A signal writer with the options shared by SigWriter and the whole-file operations (code:
 * from compression_arg; level 0: gzip's default or the profile's). */
static h5ml_sigwriter *sigwriter_configured(int code, long long level, int shuffle, long long threads)
{
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    int comp, profile, rc = H5ML_OK;
    filters_of(code, &comp, &profile);
    if (profile) rc = h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, profile);
    if (rc == H5ML_OK && comp) rc = h5ml_sigwriter_set(w, H5ML_SIG_COMPRESSION, comp);
    if (rc == H5ML_OK && gzip_chosen(comp, profile) && level != 0) rc = h5ml_sigwriter_set(w, H5ML_SIG_LEVEL, level);
    if (rc == H5ML_OK) rc = h5ml_sigwriter_set(w, H5ML_SIG_SHUFFLE, shuffle ? 1 : -1);
    if (rc == H5ML_OK && threads != 0) rc = h5ml_sigwriter_set(w, H5ML_SIG_THREADS, threads);
    if (rc == H5ML_OK) return w;
    raise_for(rc, w);
    h5ml_sigwriter_close(w);
    return NULL;
}

static int SigWriter_init(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "path", "length", "layout", "cache_name", "mode", "compression", "level", "shuffle", "num_classes",
                          "allow_nonfinite", "chunk_rows", "threads", "log", "expect", NULL };
    PyObject *pathb = NULL, *cache_o = Py_None, *comp_obj = NULL, *log_obj = Py_None, *log_fn = NULL, *expect_o = Py_None;
    long long length = 0, level = 0, num_classes = 0, chunk_rows = 0, threads = 0;
    const char *layout_s = "flat", *mode = "w", *cache_name = NULL;
    int shuffle = 1, allow_nonfinite = 0, comp = H5ML_COMPRESS_GZIP, layout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|LsOsOLpLpLLOO:SigWriter", kw, PyUnicode_FSConverter, &pathb, &length, &layout_s,
                                     &cache_o, &mode, &comp_obj, &level, &shuffle, &num_classes, &allow_nonfinite, &chunk_rows,
                                     &threads, &log_obj, &expect_o))
        return -1;
    /* expect: signals the file (flat: an int) or each split (split: 3 ints) will hold */
    long long expect[3] = { -1, -1, -1 };
    if (expect_o != Py_None) {
        if (PyLong_Check(expect_o)) {
            expect[0] = PyLong_AsLongLong(expect_o);
        } else {
            PyObject *seq = PySequence_Fast(expect_o, "expect must be an int or a sequence of 3 ints");
            if (seq == NULL) return -1;
            bool ok = PySequence_Fast_GET_SIZE(seq) == 3;
            for (int k = 0; ok && k < 3; k++) expect[k] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, k));
            Py_DECREF(seq);
            if (!ok) {
                PyErr_SetString(PyExc_ValueError, "expect must be an int or a sequence of 3 ints (train, val, test)");
                return -1;
            }
        }
        if (PyErr_Occurred()) return -1;
    }
    int ret = -1;
    h5ml_sigwriter *w = NULL;
    bool append = strcmp(mode, "a") == 0 || strcmp(mode, "append") == 0;
    if (strcmp(layout_s, "flat") == 0) layout = H5ML_SIG_FLAT;
    else if (strcmp(layout_s, "split") == 0) layout = H5ML_SIG_SPLIT;
    else {
        PyErr_Format(PyExc_ValueError, "layout must be 'flat' or 'split', got '%s'", layout_s);
        goto done;
    }
    if (!append && strcmp(mode, "w") != 0) {
        PyErr_Format(PyExc_ValueError, "mode must be 'w' or 'a', got '%s'", mode);
        goto done;
    }
    if (append && layout != H5ML_SIG_FLAT) {
        PyErr_SetString(PyExc_ValueError, "mode 'a' appends to a flat cache: layout must be 'flat'");
        goto done;
    }
    if ((comp_obj && compression_arg(comp_obj, &comp) < 0) || opt_utf8_arg(cache_o, "cache_name", &cache_name) < 0 ||
        callable_arg(log_obj, "log", &log_fn) < 0 || init_begin(self) < 0)
        goto done;
    if ((w = sigwriter_configured(comp, level, shuffle, threads)) == NULL) {
        guard_exit(&self->g);
        goto done;
    }
    int rc = h5ml_sigwriter_set(w, H5ML_SIG_ALLOW_NONFINITE, allow_nonfinite ? 1 : -1);
    if (rc == H5ML_OK && num_classes != 0) rc = h5ml_sigwriter_set(w, H5ML_SIG_NUM_CLASSES, num_classes);
    if (rc == H5ML_OK && chunk_rows != 0) rc = h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, chunk_rows);
    for (int k = 0; k < 3 && rc == H5ML_OK && !append; k++)
        if (expect[k] >= 0) rc = h5ml_sigwriter_expect(w, layout == H5ML_SIG_FLAT ? H5ML_NO_SPLIT : k, expect[k]);
    init_log(self, w, log_fn);
    log_fn = NULL;
    if (rc == H5ML_OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = append ? h5ml_sigwriter_append(w, PATH(pathb))
                    : h5ml_sigwriter_create(w, PATH(pathb), (h5ml_sig_layout)layout, length, cache_name);
        Py_END_ALLOW_THREADS
    }
    if (finish(rc, w, &self->log, NULL) == 0 && init_done(self, w, pathb, NULL) == 0) {
        w = NULL;
        ret = 0;
    }
    guard_exit(&self->g);
done:
    if (w) {
        Py_BEGIN_ALLOW_THREADS
        h5ml_sigwriter_rollback(w); /* a failed append is cut back; a created file never appears */
        h5ml_sigwriter_close(w);
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(log_fn);
    Py_XDECREF(pathb);
    return ret;
}

/* None, "train", "val", "test", or -1, 0, 1, 2. */
static int split_arg(PyObject *obj, int *out)
{
    static const char *const names[3] = { "train", "val", "test" };
    *out = H5ML_NO_SPLIT;
    if (obj == NULL || obj == Py_None) return 0;
    if (PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8(obj);
        if (s == NULL) return -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(s, names[k]) == 0) {
                *out = k;
                return 0;
            }
    } else if (PyLong_Check(obj) && !PyBool_Check(obj)) {
        long v = PyLong_AsLong(obj);
        if (v >= -1 && v <= 2) {
            *out = (int)v;
            return 0;
        }
        PyErr_Clear();
    }
    PyErr_Format(PyExc_ValueError, "split must be None, 'train', 'val', 'test' or -1, 0, 1, 2, got %R", obj);
    return -1;
}

static PyObject *SigWriter_add(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "signals", "labels", "split", "meta", "indices", NULL };
    PyObject *signals_o, *labels_o, *split_o = Py_None, *meta_o = Py_None, *indices_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:add", kw, &signals_o, &labels_o, &split_o, &meta_o, &indices_o)) return NULL;
    PyArrayObject *signals = NULL, *labels = NULL, *indices = NULL;
    strvec meta = { 0 };
    PyObject *result = NULL;
    int split;
    if (split_arg(split_o, &split) < 0 || handle_enter(self) < 0) return NULL;
    h5ml_sigwriter_stats st;
    h5ml_sigwriter_get_stats(self->h, &st);
    /* float32 goes to the library as it is; anything else as float64, converted there */
    bool f32 = PyArray_Check(signals_o) && PyArray_TYPE((PyArrayObject *)signals_o) == NPY_FLOAT;
    const npy_intp kl[2] = { ANY, (npy_intp)st.length };
    char expect[64], note[64];
    snprintf(expect, sizeof expect, "(k, %lld)", (long long)st.length);
    if ((signals = array_arg(signals_o, f32 ? NPY_FLOAT : NPY_DOUBLE, "signals", 2, kl, expect, "the signal length of the file")) ==
        NULL)
        goto done;
    npy_intp k = PyArray_DIM(signals, 0);
    const npy_intp dk[1] = { k };
    snprintf(note, sizeof note, "k = %lld from signals", (long long)k);
    if ((labels = array_arg(labels_o, NPY_INT64, "labels", 1, dk, "(k,)", note)) == NULL) goto done;
    if (indices_o != Py_None && (indices = array_arg(indices_o, NPY_INT64, "indices", 1, dk, "(k,)", note)) == NULL) goto done;
    if (meta_o != Py_None && strvec_init(&meta, meta_o, "meta", k, "signal", true) < 0) goto done;
    int rc;
    const void *data = PyArray_DATA(signals);
    const int64_t *lab = PyArray_DATA(labels), *idx = indices ? PyArray_DATA(indices) : NULL;
    const char *const *mv = meta.items ? meta.v : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = f32 ? h5ml_sigwriter_add(self->h, split, k, data, lab, mv, idx) : h5ml_sigwriter_add_f64(self->h, split, k, data, lab, mv, idx);
    Py_END_ALLOW_THREADS
    if (finish(rc, self->h, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
done:
    guard_exit(&self->g);
    strvec_free(&meta);
    Py_XDECREF(signals);
    Py_XDECREF(labels);
    Py_XDECREF(indices);
    return result;
}

static PyObject *SigWriter_attr(HandleObject *self, PyObject *args)
{
    const char *key;
    value v;
    PyObject *result = NULL;
    if (key_value_args(args, "UO:attr", false, &key, &v) == 0 && handle_enter(self) == 0) {
        int rc = H5ML_OK;
        h5ml_sigwriter *w = self->h;
        switch (v.kind) { /* kept in memory until finalize: no I/O here */
        case VAL_STR: rc = h5ml_sigwriter_attr_string(w, key, v.s); break;
        case VAL_BOOL: rc = h5ml_sigwriter_attr_bool(w, key, (int)v.i); break;
        case VAL_INT: rc = h5ml_sigwriter_attr_int(w, key, v.i); break;
        case VAL_FLOAT: rc = h5ml_sigwriter_attr_double(w, key, v.f); break;
        case VAL_INTS: /* made floats by key_value_args */
        case VAL_FLOATS: rc = h5ml_sigwriter_attr_doubles(w, key, PyArray_DATA(v.array), (size_t)PyArray_SIZE(v.array)); break;
        }
        if (finish(rc, w, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
        guard_exit(&self->g);
    }
    Py_XDECREF(v.array);
    return result;
}

static PyObject *SigWriter_class_names(HandleObject *self, PyObject *args)
{
    PyObject *names_o;
    if (!PyArg_ParseTuple(args, "O:class_names", &names_o)) return NULL;
    strvec names;
    if (strvec_init(&names, names_o, "names", -1, NULL, false) < 0) return NULL;
    PyObject *result = NULL;
    if (names.n > INT32_MAX) PyErr_SetString(PyExc_ValueError, "too many class names");
    else if (handle_enter(self) == 0) {
        int rc = h5ml_sigwriter_class_names(self->h, names.v, (int)names.n);
        if (finish(rc, self->h, &self->log, NULL) == 0) result = Py_NewRef(Py_None);
        guard_exit(&self->g);
    }
    strvec_free(&names);
    return result;
}

static PyObject *sigwriter_stats_dict(const h5ml_sigwriter_stats *st)
{
    return Py_BuildValue("{s:N,s:L,s:L}", "count", int_list3(st->count), "total", (long long)st->total, "length", (long long)st->length);
}

static PyObject *SigWriter_stats(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    h5ml_sigwriter_stats st;
    h5ml_sigwriter_get_stats(self->h, &st);
    guard_exit(&self->g);
    return sigwriter_stats_dict(&st);
}

static PyMethodDef SigWriter_methods[] = {
    { "add", (PyCFunction)(void (*)(void))SigWriter_add, METH_VARARGS | METH_KEYWORDS,
      "add(signals, labels, split=None, meta=None, indices=None)\n--\n\nAdds signals (k, L) with their labels." },
    { "attr", (PyCFunction)SigWriter_attr, METH_VARARGS, "attr(key, value)\n--\n\nA root attribute, written at finalize." },
    { "class_names", (PyCFunction)SigWriter_class_names, METH_VARARGS, "class_names(names)\n--\n\nNames of the classes." },
    WRITER_METHODS("Writes the attributes; the file appears.", "Discards the file being made."),
    { "stats", (PyCFunction)SigWriter_stats, METH_NOARGS, "stats()\n--\n\ndict(count, total, length)." },
    HANDLE_METHODS,
    { NULL, NULL, 0, NULL },
};

static PyTypeObject SigWriterType = HANDLE_TYPE(SigWriter, writer_getset, "SigWriter(path, length=0, layout='flat', cache_name=None, mode='w', "
                                                           "compression='gzip', level=0, shuffle=True, num_classes=0, "
                                                           "allow_nonfinite=False, chunk_rows=0, threads=0, log=None, expect=None)\n--\n\n"
                                                           "Writes a signal cache. expect: the signals the file (flat: an int) or "
                                                           "each split (split: train, val, test) will hold, so chunks fit them.");

/* ======================================================================================
 * SigReader
 * ====================================================================================== */

static int sigreader_close(void *h)
{
    h5ml_sigreader_close(h); /* in a forked child the library leaves the parent's file alone */
    return H5ML_OK;
}

static PyTypeObject SigReaderType;
static const handle_ops sigreader_ops = { "SigReader", &SigReaderType, NULL, NULL, sigreader_close, NULL, true };

/* self->args of a SigReader: (path, split, cache, prefetch, threads) */
enum { SR_PATH, SR_SPLIT, SR_CACHE, SR_PREFETCH, SR_THREADS };

static PyObject *SigReader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return handle_new(type, &sigreader_ops);
}

static int SigReader_init(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = { "path", "split", "cache", "prefetch", "threads", NULL };
    PyObject *pathb = NULL, *split_o = Py_None;
    long long cache = 0, prefetch = 0, threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|OLLL:SigReader", kw, PyUnicode_FSConverter, &pathb, &split_o, &cache, &prefetch,
                                     &threads))
        return -1;
    int ret = -1;
    h5ml_sigreader *r = NULL;
    const char *split = NULL;
    if (opt_utf8_arg(split_o, "split", &split) < 0 || init_begin(self) < 0) goto done;
    if ((r = h5ml_sigreader_new()) == NULL) {
        PyErr_NoMemory();
    } else {
        int rc = h5ml_sigreader_set(r, H5ML_SIGR_CACHE, cache);
        if (rc == H5ML_OK) rc = h5ml_sigreader_set(r, H5ML_SIGR_PREFETCH, prefetch);
        if (rc == H5ML_OK) rc = h5ml_sigreader_set(r, H5ML_SIGR_THREADS, threads);
        if (rc == H5ML_OK) {
            Py_BEGIN_ALLOW_THREADS
            rc = h5ml_sigreader_open(r, PATH(pathb), split);
            Py_END_ALLOW_THREADS
        }
        if (finish(rc, r, NULL, NULL) == 0) {
            PyObject *path = path_str(pathb);
            PyObject *pargs = path ? Py_BuildValue("(OOLLL)", path, split_o, cache, prefetch, threads) : NULL;
            Py_XDECREF(path);
            if (pargs && init_done(self, r, pathb, pargs) == 0) {
                r = NULL;
                ret = 0;
            }
        }
    }
    guard_exit(&self->g);
done:
    h5ml_sigreader_close(r);
    Py_XDECREF(pathb);
    return ret;
}

static PyObject *SigReader_get(HandleObject *self, PyObject *args)
{
    long long i;
    if (!PyArg_ParseTuple(args, "L:get", &i) || handle_enter(self) < 0) return NULL;
    PyObject *result = NULL;
    const npy_intp dims[1] = { (npy_intp)h5ml_sigreader_length(self->h) };
    PyArrayObject *out = new_array(1, dims, NPY_FLOAT, NULL);
    if (out) {
        int64_t label = 0;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_sigreader_get(self->h, i, PyArray_DATA(out), &label);
        Py_END_ALLOW_THREADS
        if (finish(rc, self->h, NULL, NULL) == 0) result = Py_BuildValue("(OL)", (PyObject *)out, (long long)label);
        Py_DECREF(out);
    }
    guard_exit(&self->g);
    return result;
}

/* (signals, labels) for n signals, read by fill() into new arrays. */
typedef int (*sig_fill)(h5ml_sigreader *r, const void *ctx, int64_t n, float *out, int64_t *labels);

static PyObject *sigreader_read_into(HandleObject *self, int64_t n, sig_fill fill, const void *ctx)
{
    const npy_intp d2[2] = { (npy_intp)n, (npy_intp)h5ml_sigreader_length(self->h) }, d1[1] = { (npy_intp)n };
    PyArrayObject *sig = new_array(2, d2, NPY_FLOAT, NULL), *lab = sig ? new_array(1, d1, NPY_INT64, NULL) : NULL;
    PyObject *result = NULL;
    if (lab) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = fill(self->h, ctx, n, PyArray_DATA(sig), PyArray_DATA(lab));
        Py_END_ALLOW_THREADS
        if (finish(rc, self->h, NULL, NULL) == 0) result = PyTuple_Pack(2, (PyObject *)sig, (PyObject *)lab);
    }
    Py_XDECREF(sig);
    Py_XDECREF(lab);
    return result;
}

static int fill_indices(h5ml_sigreader *r, const void *ctx, int64_t n, float *out, int64_t *labels)
{
    return h5ml_sigreader_read(r, ctx, n, out, labels);
}

static int fill_range(h5ml_sigreader *r, const void *ctx, int64_t n, float *out, int64_t *labels)
{
    return h5ml_sigreader_read_range(r, *(const int64_t *)ctx, n, out, labels);
}

static PyObject *SigReader_read(HandleObject *self, PyObject *args)
{
    PyObject *idx_o;
    if (!PyArg_ParseTuple(args, "O:read", &idx_o)) return NULL;
    static const npy_intp any1[1] = { ANY };
    PyArrayObject *idx = array_arg(idx_o, NPY_INT64, "indices", 1, any1, "(n,)", NULL);
    if (idx == NULL) return NULL;
    PyObject *result = NULL;
    if (handle_enter(self) == 0) {
        result = sigreader_read_into(self, PyArray_DIM(idx, 0), fill_indices, PyArray_DATA(idx));
        guard_exit(&self->g);
    }
    Py_DECREF(idx);
    return result;
}

static PyObject *SigReader_read_range(HandleObject *self, PyObject *args)
{
    long long start, count;
    if (!PyArg_ParseTuple(args, "LL:read_range", &start, &count) || handle_enter(self) < 0) return NULL;
    PyObject *result = NULL;
    /* the range is checked first (no buffers) so that a bad count never sizes an array */
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_sigreader_read_range(self->h, start, count, NULL, NULL); /* may reopen after a fork */
    Py_END_ALLOW_THREADS
    int64_t s = start;
    if (finish(rc, self->h, NULL, NULL) == 0) result = sigreader_read_into(self, count, fill_range, &s);
    guard_exit(&self->g);
    return result;
}

/* labels() and indices(): all N as int64. */
static PyObject *sigreader_column(HandleObject *self, int (*fn)(h5ml_sigreader *, int64_t *))
{
    if (handle_enter(self) < 0) return NULL;
    const npy_intp d1[1] = { (npy_intp)h5ml_sigreader_count(self->h) };
    PyArrayObject *out = new_array(1, d1, NPY_INT64, NULL);
    if (out) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = fn(self->h, PyArray_DATA(out));
        Py_END_ALLOW_THREADS
        if (finish(rc, self->h, NULL, NULL) < 0) Py_CLEAR(out);
    }
    guard_exit(&self->g);
    return (PyObject *)out;
}

static PyObject *SigReader_labels(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return sigreader_column(self, h5ml_sigreader_labels);
}

static PyObject *SigReader_indices(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return sigreader_column(self, h5ml_sigreader_indices);
}

/* metadata(i) -> str or None; attrs() -> dict */
static PyObject *SigReader_metadata(HandleObject *self, PyObject *args)
{
    long long i;
    if (!PyArg_ParseTuple(args, "L:metadata", &i) || handle_enter(self) < 0) return NULL;
    char *json = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_sigreader_metadata(self->h, i, &json);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (finish(rc, self->h, NULL, NULL) == 0) result = json ? text_of(json) : Py_NewRef(Py_None);
    h5ml_free(json);
    guard_exit(&self->g);
    return result;
}

static PyObject *SigReader_attrs(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    char *json = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_sigreader_attrs(self->h, &json);
    Py_END_ALLOW_THREADS
    PyObject *result = finish(rc, self->h, NULL, NULL) == 0 ? json_value(json ? json : "{}") : NULL;
    h5ml_free(json);
    guard_exit(&self->g);
    return result;
}

/* set_cache(n), set_prefetch(n): also what the reader pickles as. */
static PyObject *sigreader_set(HandleObject *self, PyObject *args, h5ml_sigr_option opt, int slot)
{
    long long n;
    if (!PyArg_ParseTuple(args, "L", &n) || handle_enter(self) < 0) return NULL;
    int rc = h5ml_sigreader_set(self->h, opt, n); /* may allocate the cache: no I/O */
    PyObject *result = NULL, *pargs = NULL;
    Py_ssize_t size = PyTuple_GET_SIZE(self->args);
    if (finish(rc, self->h, NULL, NULL) == 0 && (pargs = PyTuple_New(size)) != NULL) {
        for (Py_ssize_t k = 0; k < size; k++)
            PyTuple_SET_ITEM(pargs, k, k == slot ? PyLong_FromLongLong(n) : Py_NewRef(PyTuple_GET_ITEM(self->args, k)));
        if (PyTuple_GET_ITEM(pargs, slot) == NULL) Py_CLEAR(pargs);
    }
    if (pargs) {
        Py_SETREF(self->args, pargs);
        result = Py_NewRef(Py_None);
    }
    guard_exit(&self->g);
    return result;
}

static PyObject *SigReader_set_cache(HandleObject *self, PyObject *args)
{
    return sigreader_set(self, args, H5ML_SIGR_CACHE, SR_CACHE);
}

static PyObject *SigReader_set_prefetch(HandleObject *self, PyObject *args)
{
    return sigreader_set(self, args, H5ML_SIGR_PREFETCH, SR_PREFETCH);
}

static PyObject *SigReader_stats(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (handle_enter(self) < 0) return NULL;
    h5ml_sigreader_stats st;
    h5ml_sigreader_get_stats(self->h, &st);
    guard_exit(&self->g);
    return Py_BuildValue("{s:L,s:L,s:L}", "hits", (long long)st.hits, "misses", (long long)st.misses, "chunks_read",
                         (long long)st.chunks_read);
}

/* count, length, layout, split_counts, has_metadata: from the open reader */
typedef enum { SR_COUNT, SR_LENGTH, SR_LAYOUT, SR_SPLIT_COUNTS, SR_HAS_METADATA } sr_property;

static PyObject *SigReader_property(HandleObject *self, void *closure)
{
    static const char *const names[3] = { "train", "val", "test" };
    if (handle_enter(self) < 0) return NULL;
    h5ml_sigreader *r = self->h;
    int64_t counts[3];
    PyObject *result = NULL;
    switch ((sr_property)(intptr_t)closure) {
    case SR_COUNT: result = PyLong_FromLongLong(h5ml_sigreader_count(r)); break;
    case SR_LENGTH: result = PyLong_FromLongLong(h5ml_sigreader_length(r)); break;
    case SR_LAYOUT: result = PyUnicode_FromString(h5ml_sigreader_layout(r, NULL) == H5ML_SIG_SPLIT ? "split" : "flat"); break;
    case SR_HAS_METADATA: result = PyBool_FromLong(h5ml_sigreader_has_metadata(r)); break;
    case SR_SPLIT_COUNTS:
        h5ml_sigreader_layout(r, counts);
        result = PyDict_New();
        for (int k = 0; result && k < 3; k++)
            if (counts[k] >= 0 && put(result, names[k], PyLong_FromLongLong(counts[k])) < 0) Py_CLEAR(result);
        break;
    }
    guard_exit(&self->g);
    return result;
}

static PyObject *SigReader_get_split(HandleObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->args ? PyTuple_GET_ITEM(self->args, SR_SPLIT) : Py_None);
}

static PyMethodDef SigReader_methods[] = {
    { "get", (PyCFunction)SigReader_get, METH_VARARGS, "get(i)\n--\n\n(signal float32 (L,), label)." },
    { "read", (PyCFunction)SigReader_read, METH_VARARGS, "read(indices)\n--\n\n(signals (n, L), labels (n,)) in the order given." },
    { "read_range", (PyCFunction)SigReader_read_range, METH_VARARGS, "read_range(start, count)\n--\n\nSignals [start, start+count)." },
    { "labels", (PyCFunction)SigReader_labels, METH_NOARGS, "labels()\n--\n\nAll labels (int64)." },
    { "indices", (PyCFunction)SigReader_indices, METH_NOARGS, "indices()\n--\n\nEach signal's index before splitting." },
    { "metadata", (PyCFunction)SigReader_metadata, METH_VARARGS, "metadata(i)\n--\n\nSignal i's JSON metadata, or None." },
    { "attrs", (PyCFunction)SigReader_attrs, METH_NOARGS, "attrs()\n--\n\nThe root attributes as a dict." },
    { "set_cache", (PyCFunction)SigReader_set_cache, METH_VARARGS, "set_cache(n)\n--\n\nLRU cache capacity in signals." },
    { "set_prefetch", (PyCFunction)SigReader_set_prefetch, METH_VARARGS, "set_prefetch(n)\n--\n\nPrefetch block in signals." },
    { "stats", (PyCFunction)SigReader_stats, METH_NOARGS, "stats()\n--\n\ndict(hits, misses, chunks_read)." },
    { "__reduce__", (PyCFunction)handle_reduce, METH_NOARGS, NULL },
    HANDLE_METHODS,
    { NULL, NULL, 0, NULL },
};

#define SR_GETTER(name, which, doc) { name, (getter)SigReader_property, NULL, doc, (void *)(intptr_t)(which) }

static PyGetSetDef SigReader_getset[] = {
    SR_GETTER("count", SR_COUNT, "signals in the open split"),
    SR_GETTER("length", SR_LENGTH, "samples per signal"),
    SR_GETTER("layout", SR_LAYOUT, "'flat' or 'split'"),
    SR_GETTER("split_counts", SR_SPLIT_COUNTS, "signals per split present"),
    SR_GETTER("has_metadata", SR_HAS_METADATA, "whether signals have metadata"),
    { "split", (getter)SigReader_get_split, NULL, "the split read, or None", NULL },
    HANDLE_GETSET,
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject SigReaderType = HANDLE_TYPE(SigReader, SigReader_getset, "SigReader(path, split=None, cache=0, prefetch=0, threads=0)\n--\n\n"
                                                           "Reads a signal cache.");

/* ======================================================================================
 * Whole-file operations
 * ====================================================================================== */

static PyObject *py_convert_xyz(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "writer", "xyz_path", "progress", NULL };
    HandleObject *writer;
    PyObject *pathb = NULL, *progress_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O&|O:convert_xyz", kw, &WriterType, &writer, PyUnicode_FSConverter, &pathb,
                                     &progress_o))
        return NULL;
    callback progress = { NULL, NULL };
    PyObject *result = NULL;
    if (callable_arg(progress_o, "progress", &progress.fn) == 0 && handle_enter(writer) == 0) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_convert_xyz(writer->h, PATH(pathb), progress_trampoline, &progress);
        Py_END_ALLOW_THREADS
        if (rc != H5ML_OK && writer->state == ST_OPEN) writer->state = ST_ROLLED_BACK; /* the library rolled back */
        if (finish(rc, writer->h, &writer->log, &progress) == 0) result = Py_NewRef(Py_None);
        guard_exit(&writer->g);
    }
    Py_XDECREF(progress.fn);
    Py_XDECREF(pathb);
    return result;
}

static PyObject *py_export_xyz(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "reader", "xyz_path", "start", "end", "progress", NULL };
    HandleObject *reader;
    PyObject *pathb = NULL, *progress_o = Py_None;
    long long start = 0, end = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O&|LLO:export_xyz", kw, &ReaderType, &reader, PyUnicode_FSConverter, &pathb,
                                     &start, &end, &progress_o))
        return NULL;
    callback progress = { NULL, NULL };
    PyObject *result = NULL;
    if (callable_arg(progress_o, "progress", &progress.fn) == 0 && handle_enter(reader) == 0) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_export_xyz(reader->h, PATH(pathb), start, end, progress_trampoline, &progress);
        Py_END_ALLOW_THREADS
        if (finish(rc, reader->h, &reader->log, &progress) == 0) result = Py_NewRef(Py_None);
        guard_exit(&reader->g);
    }
    Py_XDECREF(progress.fn);
    Py_XDECREF(pathb);
    return result;
}

/* The end of generate, import_mat and split: the summary, or the error after the library
 * rolled back (nothing is left at the output path). Closes the writer. */
static PyObject *sigwriter_outcome(h5ml_sigwriter *w, int rc, callback *progress)
{
    PyObject *result = NULL;
    if (finish(rc, w, NULL, progress) == 0) {
        h5ml_sigwriter_stats st;
        h5ml_sigwriter_get_stats(w, &st);
        result = sigwriter_stats_dict(&st);
    }
    Py_BEGIN_ALLOW_THREADS
    if (rc != H5ML_OK) h5ml_sigwriter_rollback(w); /* a no-op if the library did it */
    h5ml_sigwriter_close(w);
    Py_END_ALLOW_THREADS
    return result;
}

static PyObject *py_generate(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "path", "per_class", "length", "rate", "speed", "seed", "ratios", "compression", "level", "shuffle",
                          "threads", "progress", NULL };
    PyObject *pathb = NULL, *seed_o = NULL, *ratios_o = NULL, *comp_o = NULL, *progress_o = Py_None;
    long long per_class = 100, length = 102400, level = 0, threads = 0;
    double rate = 20480.0, speed = 60.0;
    int shuffle = 1, comp = H5ML_COMPRESS_GZIP;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|LLddOOOLpLO:generate", kw, PyUnicode_FSConverter, &pathb, &per_class, &length,
                                     &rate, &speed, &seed_o, &ratios_o, &comp_o, &level, &shuffle, &threads, &progress_o))
        return NULL;
    h5ml_siggen_options o = { per_class, length, rate, speed, 42, { 0, 0, 0 } };
    callback progress = { NULL, NULL };
    PyObject *result = NULL;
    h5ml_sigwriter *w = NULL;
    if (seed_arg(seed_o, &o.seed) < 0 || ratios_arg(ratios_o, o.ratios) < 0 || (comp_o && compression_arg(comp_o, &comp) < 0) ||
        callable_arg(progress_o, "progress", &progress.fn) < 0 || (w = sigwriter_configured(comp, level, shuffle, threads)) == NULL)
        goto done;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_signals_generate(w, PATH(pathb), &o, progress_trampoline, &progress);
    Py_END_ALLOW_THREADS
    result = sigwriter_outcome(w, rc, &progress);
done:
    Py_XDECREF(progress.fn);
    Py_XDECREF(pathb);
    return result;
}

static PyObject *py_import_mat(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "directory", "path", "var", "truncate", "pad", "flat", "stratify", "seed", "ratios", "compression", "level",
                          "shuffle", "progress", NULL };
    PyObject *dirb = NULL, *pathb = NULL, *var_o = Py_None, *seed_o = NULL, *ratios_o = NULL, *comp_o = NULL, *progress_o = Py_None;
    int truncate = 0, pad = 0, flat = 0, stratify = 1, shuffle = 1, comp = H5ML_COMPRESS_GZIP;
    long long level = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|OppppOOOLpO:import_mat", kw, PyUnicode_FSConverter, &dirb, PyUnicode_FSConverter,
                                     &pathb, &var_o, &truncate, &pad, &flat, &stratify, &seed_o, &ratios_o, &comp_o, &level, &shuffle,
                                     &progress_o))
        return NULL;
    h5ml_import_options o = { NULL, truncate, pad, flat, !stratify, 42, { 0, 0, 0 } };
    callback progress = { NULL, NULL };
    PyObject *result = NULL;
    h5ml_sigwriter *w = NULL;
    if (opt_utf8_arg(var_o, "var", &o.var) < 0 || seed_arg(seed_o, &o.seed) < 0 || ratios_arg(ratios_o, o.ratios) < 0 ||
        (comp_o && compression_arg(comp_o, &comp) < 0) || callable_arg(progress_o, "progress", &progress.fn) < 0 ||
        (w = sigwriter_configured(comp, level, shuffle, 0)) == NULL)
        goto done;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_signals_import(w, PATH(dirb), PATH(pathb), &o, progress_trampoline, &progress);
    Py_END_ALLOW_THREADS
    result = sigwriter_outcome(w, rc, &progress);
done:
    Py_XDECREF(progress.fn);
    Py_XDECREF(dirb);
    Py_XDECREF(pathb);
    return result;
}

static PyObject *py_split(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "src", "dst", "ratios", "stratify", "seed", "compression", "level", "shuffle", "progress", NULL };
    PyObject *srcb = NULL, *dstb = NULL, *seed_o = NULL, *ratios_o = NULL, *comp_o = NULL, *progress_o = Py_None;
    int stratify = 1, shuffle = 1, comp = H5ML_COMPRESS_GZIP;
    long long level = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|OpOOLpO:split", kw, PyUnicode_FSConverter, &srcb, PyUnicode_FSConverter, &dstb,
                                     &ratios_o, &stratify, &seed_o, &comp_o, &level, &shuffle, &progress_o))
        return NULL;
    double ratios[3];
    uint64_t seed;
    callback progress = { NULL, NULL };
    PyObject *result = NULL;
    h5ml_sigwriter *w = NULL;
    if (seed_arg(seed_o, &seed) < 0 || ratios_arg(ratios_o, ratios) < 0 || (comp_o && compression_arg(comp_o, &comp) < 0) ||
        callable_arg(progress_o, "progress", &progress.fn) < 0 || (w = sigwriter_configured(comp, level, shuffle, 0)) == NULL)
        goto done;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_signals_split(w, PATH(srcb), PATH(dstb), ratios, stratify, seed, progress_trampoline, &progress);
    Py_END_ALLOW_THREADS
    result = sigwriter_outcome(w, rc, &progress);
done:
    Py_XDECREF(progress.fn);
    Py_XDECREF(srcb);
    Py_XDECREF(dstb);
    return result;
}

/* Problems reported by verify, collected without the GIL. */
typedef struct problems {
    char **v;
    size_t n, cap;
    bool nomem;
} problems;

static void collect_problem(void *user, const char *problem)
{
    problems *p = user;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        char **v = realloc(p->v, cap * sizeof *v);
        if (v == NULL) {
            p->nomem = true;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    char *copy = strdup(problem);
    if (copy == NULL) p->nomem = true;
    else p->v[p->n++] = copy;
}

static void problems_free(problems *p)
{
    for (size_t k = 0; k < p->n; k++) free(p->v[k]);
    free(p->v);
}

/* The problems as a list (OK or ERR_CHECK), or the error raised. */
static PyObject *verify_outcome(int rc, const void *handle, problems *p)
{
    if (rc != H5ML_OK && rc != H5ML_ERR_CHECK) return raise_for(rc, handle), NULL;
    if (p->nomem) return PyErr_NoMemory();
    PyObject *list = PyList_New(0);
    for (size_t k = 0; list && k < p->n; k++) {
        PyObject *s = text_of(p->v[k]);
        if (s == NULL || PyList_Append(list, s) < 0) Py_CLEAR(list);
        Py_XDECREF(s);
    }
    if (list && rc == H5ML_ERR_CHECK && p->n == 0) { /* a failure the reporter did not hear of */
        PyObject *s = text_of(h5ml_errmsg(handle));
        if (s == NULL || PyList_Append(list, s) < 0) Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
}

static PyObject *py_verify(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "path", NULL };
    PyObject *pathb = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:verify", kw, PyUnicode_FSConverter, &pathb)) return NULL;
    const char *path = PATH(pathb);
    problems p = { NULL, 0, 0, false };
    PyObject *result = NULL;
    int is_signals, rc;
    Py_BEGIN_ALLOW_THREADS
    is_signals = h5ml_is_signal_file(path);
    Py_END_ALLOW_THREADS
    if (is_signals) {
        h5ml_sigreader *r = h5ml_sigreader_new();
        if (r == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_signals_verify(r, path, collect_problem, &p);
        Py_END_ALLOW_THREADS
        result = verify_outcome(rc, r, &p);
        h5ml_sigreader_close(r);
    } else {
        h5ml_reader *r = h5ml_reader_new();
        if (r == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        bool opened;
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_reader_open(r, path);
        opened = rc == H5ML_OK;
        if (opened) rc = h5ml_verify(r, collect_problem, &p);
        Py_END_ALLOW_THREADS
        if (opened) result = verify_outcome(rc, r, &p);
        else raise_for(rc, r); /* a file that cannot be opened at all is an error, not a problem */
        Py_BEGIN_ALLOW_THREADS
        h5ml_reader_close(r);
        Py_END_ALLOW_THREADS
    }
done:
    problems_free(&p);
    Py_XDECREF(pathb);
    return result;
}

static PyObject *class_counts_dict(const int64_t counts[256])
{
    PyObject *d = PyDict_New();
    for (int label = 0; d && label < 256; label++) {
        if (counts[label] == 0) continue;
        PyObject *k = PyLong_FromLong(label), *v = k ? PyLong_FromLongLong(counts[label]) : NULL;
        if (v == NULL || PyDict_SetItem(d, k, v) < 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *summary_dict(const h5ml_sigsummary *s)
{
    static const char *const names[3] = { "train", "val", "test" };
    bool flat = s->layout == H5ML_SIG_FLAT;
    PyObject *classes = PyDict_New();
    for (int k = 0; classes && k < 3; k++) {
        if (flat ? k > 0 : s->count[k] < 0) continue;
        if (put(classes, flat ? "all" : names[k], class_counts_dict(s->class_counts[k])) < 0) Py_CLEAR(classes);
    }
    if (classes == NULL) return NULL;
    return Py_BuildValue("{s:s,s:L,s:L,s:N,s:N,s:N,s:L,s:d,s:d,s:d,s:d,s:d,s:L,s:N,s:L,s:L,s:L,s:s,s:i,s:N}", "layout",
                         flat ? "flat" : "split", "length", (long long)s->length, "total", (long long)s->total, "count",
                         int_list3(s->count), "class_counts", classes, "other_labels", int_list3(s->other_labels), "num_classes",
                         (long long)s->num_classes, "min", s->min, "max", s->max, "mean", s->mean, "std", s->std, "rms", s->rms,
                         "nonfinite", (long long)s->nonfinite, "has_metadata", PyBool_FromLong(s->has_metadata), "bytes_file",
                         (long long)s->bytes_file, "bytes_raw", (long long)s->bytes_raw, "bytes_stored", (long long)s->bytes_stored,
                         "compression", s->compression, "compression_level", s->compression_level, "shuffle",
                         PyBool_FromLong(s->shuffle));
}

static PyObject *py_summarize_signals(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "path", NULL };
    PyObject *pathb = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:summarize_signals", kw, PyUnicode_FSConverter, &pathb)) return NULL;
    PyObject *result = NULL;
    h5ml_sigreader *r = h5ml_sigreader_new();
    h5ml_sigsummary *s = PyMem_Malloc(sizeof *s);
    if (r == NULL || s == NULL) {
        PyErr_NoMemory();
    } else {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = h5ml_signals_summarize(r, PATH(pathb), s, NULL, NULL);
        Py_END_ALLOW_THREADS
        if (finish(rc, r, NULL, NULL) == 0) result = summary_dict(s);
    }
    PyMem_Free(s);
    h5ml_sigreader_close(r);
    Py_XDECREF(pathb);
    return result;
}

static PyObject *py_diff(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "a", "b", NULL };
    PyObject *ab = NULL, *bb = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&:diff", kw, PyUnicode_FSConverter, &ab, PyUnicode_FSConverter, &bb)) return NULL;
    const char *a = PATH(ab), *b = PATH(bb);
    PyObject *result = NULL;
    int rc;
    const void *handle = NULL;
    h5ml_sigreader *sr = NULL;
    h5ml_reader *ra = NULL, *rb = NULL;
    if ((sr = h5ml_sigreader_new()) == NULL || (ra = h5ml_reader_new()) == NULL || (rb = h5ml_reader_new()) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* As the command line does: signal caches compared dataset by dataset with their count
     * attributes, atomistic files through readers (schema checked, num_structures compared). */
    Py_BEGIN_ALLOW_THREADS
    if (h5ml_is_signal_file(a) || h5ml_is_signal_file(b)) {
        handle = sr;
        rc = h5ml_diff_files(sr, a, b);
    } else if ((rc = h5ml_reader_open(ra, a)) != H5ML_OK) {
        handle = ra;
    } else if ((rc = h5ml_reader_open(rb, b)) != H5ML_OK) {
        handle = rb;
    } else {
        handle = ra;
        rc = h5ml_diff(ra, rb);
    }
    Py_END_ALLOW_THREADS
    if (rc == H5ML_OK) result = Py_NewRef(Py_None);
    else if (rc == H5ML_ERR_DIFFER) result = text_of(h5ml_errmsg(handle));
    else raise_for(rc, handle);
done:
    Py_BEGIN_ALLOW_THREADS
    h5ml_sigreader_close(sr);
    h5ml_reader_close(ra);
    h5ml_reader_close(rb);
    Py_END_ALLOW_THREADS
    Py_XDECREF(ab);
    Py_XDECREF(bb);
    return result;
}

static PyObject *py_is_signal_file(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "path", NULL };
    PyObject *pathb = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:is_signal_file", kw, PyUnicode_FSConverter, &pathb)) return NULL;
    int yes;
    Py_BEGIN_ALLOW_THREADS
    yes = h5ml_is_signal_file(PATH(pathb));
    Py_END_ALLOW_THREADS
    Py_DECREF(pathb);
    return PyBool_FromLong(yes);
}

static PyObject *py_split_assign(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kw[] = { "labels", "ratios", "stratify", "seed", NULL };
    PyObject *labels_o, *ratios_o = NULL, *seed_o = NULL;
    int stratify = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OpO:split_assign", kw, &labels_o, &ratios_o, &stratify, &seed_o)) return NULL;
    static const npy_intp any1[1] = { ANY };
    double ratios[3];
    uint64_t seed;
    if (ratios_arg(ratios_o, ratios) < 0 || seed_arg(seed_o, &seed) < 0) return NULL;
    PyArrayObject *labels = array_arg(labels_o, NPY_INT64, "labels", 1, any1, "(n,)", NULL);
    if (labels == NULL) return NULL;
    int64_t *order[3] = { NULL, NULL, NULL }, count[3] = { 0, 0, 0 };
    char msg[512] = "";
    int rc;
    const int64_t *lab = PyArray_DATA(labels);
    int64_t n = PyArray_DIM(labels, 0);
    Py_BEGIN_ALLOW_THREADS
    rc = h5ml_split_indices(lab, n, ratios, stratify, seed, order, count, msg, sizeof msg);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (rc != H5ML_OK) {
        set_error(rc, msg);
    } else {
        PyObject *parts[3] = { NULL, NULL, NULL };
        for (int s = 0; s < 3; s++) {
            const npy_intp d[1] = { (npy_intp)count[s] };
            parts[s] = (PyObject *)new_array(1, d, NPY_INT64, order[s]);
        }
        if (parts[0] && parts[1] && parts[2]) result = PyTuple_Pack(3, parts[0], parts[1], parts[2]);
        for (int s = 0; s < 3; s++) Py_XDECREF(parts[s]);
    }
    for (int s = 0; s < 3; s++) h5ml_free(order[s]);
    Py_DECREF(labels);
    return result;
}

static PyObject *py_version(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyUnicode_FromString(h5ml_version());
}

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

static PyMethodDef module_methods[] = {
    { "convert_xyz", KW(py_convert_xyz), "convert_xyz(writer, xyz_path, progress=None)\n--\n\nAppends an extended XYZ file." },
    { "export_xyz", KW(py_export_xyz),
      "export_xyz(reader, xyz_path, start=0, end=-1, progress=None)\n--\n\nWrites structures [start, end) as extended XYZ." },
    { "generate", KW(py_generate),
      "generate(path, per_class=100, length=102400, rate=20480.0, speed=60.0, seed=42, ratios=(0.7, 0.15, 0.15), "
      "compression='gzip', level=0, shuffle=True, threads=0, progress=None)\n--\n\nWrites simulated vibration signals." },
    { "import_mat", KW(py_import_mat),
      "import_mat(directory, path, var=None, truncate=False, pad=False, flat=False, stratify=True, seed=42, "
      "ratios=(0.7, 0.15, 0.15), compression='gzip', level=0, shuffle=True, progress=None)\n--\n\nImports MATLAB files." },
    { "split", KW(py_split),
      "split(src, dst, ratios=(0.7, 0.15, 0.15), stratify=True, seed=42, compression='gzip', level=0, shuffle=True, "
      "progress=None)\n--\n\nSplits a flat cache into train, val and test." },
    { "verify", KW(py_verify), "verify(path)\n--\n\nThe problems found in a file of either kind (empty when clean)." },
    { "summarize_signals", KW(py_summarize_signals), "summarize_signals(path)\n--\n\nSummary of a signal file, from the data." },
    { "diff", KW(py_diff), "diff(a, b)\n--\n\nNone when identical, else the first difference." },
    { "is_signal_file", KW(py_is_signal_file), "is_signal_file(path)\n--\n\nWhether path holds a signal cache." },
    { "split_assign", KW(py_split_assign),
      "split_assign(labels, ratios=(0.7, 0.15, 0.15), stratify=True, seed=42)\n--\n\nThe indices of train, val and test." },
    { "version", py_version, METH_NOARGS, "version()\n--\n\nThe library's version." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "h5ml._h5ml",
    .m_doc = "libh5ml for Python: the extension under the h5ml package (see python/EXTENSION.md).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__h5ml(void)
{
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid);
    import_array();
    PyObject *json = PyImport_ImportModule("json");
    if (json == NULL) return NULL;
    json_loads = PyObject_GetAttrString(json, "loads");
    Py_DECREF(json);
    if (json_loads == NULL) return NULL;
    PyTypeObject *types[] = { &WriterType, &ReaderType, &SigWriterType, &SigReaderType };
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        if (PyType_Ready(types[k]) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    const char *names[] = { "Writer", "Reader", "SigWriter", "SigReader" };
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        if (PyModule_AddObjectRef(m, names[k], (PyObject *)types[k]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
