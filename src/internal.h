/* Shared helpers of libh5ml. Not installed. */
#ifndef H5ML_INTERNAL_H
#define H5ML_INTERNAL_H

#include "h5ml.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H5ML_MSG_MAX 1024

/* Every handle starts with this, so h5ml_errmsg() and h5ml_set_log() take any handle. */
typedef struct h5ml_base {
    uint32_t magic;
    int code;
    char msg[H5ML_MSG_MAX];
    h5ml_log_fn log;
    void *log_user;
    int64_t warnings;
} h5ml_base;

#define H5ML_MAGIC 0x68356d6cu /* "h5ml" */

void h5ml__base_init(h5ml_base *b);
/* Sets code and message on `b`; returns `code`. */
int h5ml__fail(h5ml_base *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like h5ml__fail with ERR_HDF5 (or `code`), appending the innermost HDF5 error text. */
int h5ml__fail_h5(h5ml_base *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Keeps the current HDF5 error text for the next h5ml__fail_h5 (call right after a failed
 * HDF5 call when cleanup calls, which clear HDF5's stack, come before the report). */
void h5ml__h5_save(void);
/* Prefixes the current message with "prefix: " (used to add context when propagating). */
void h5ml__prefix(h5ml_base *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies code and message from `src` to `dst`; returns the code. */
int h5ml__copy_error(h5ml_base *dst, const h5ml_base *src);
static inline int h5ml__ok(h5ml_base *b) { b->code = H5ML_OK; b->msg[0] = 0; return H5ML_OK; }
void h5ml__warn(h5ml_base *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void h5ml__info(h5ml_base *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resizes the array *pp to n elements of `size` bytes; on failure *pp is kept, -1 returned. */
int h5ml__resize(void *pp, size_t n, size_t size);

/* HDF5's automatic error printing is silenced while a public entry point runs, and the
 * caller's setting restored afterwards (per thread: HDF5 is built thread-safe). */
typedef struct h5ml_h5quiet { H5E_auto2_t fn; void *data; } h5ml_h5quiet;
void h5ml__h5_quiet(h5ml_h5quiet *q);
void h5ml__h5_restore(const h5ml_h5quiet *q);
/* One-time library set-up: registers the LZF filter and the file driver. */
int h5ml__init(void);

/* ---- file driver (safefile.c) ---- */
/* A file access property list using h5ml's crash-consistent driver and the latest format. */
hid_t h5ml__fapl_safe(void);
/* h5ml's driver with HDF5 1.8's format (readable by HDF5 1.8 and later; checksummed object
 * headers), for files written without SWMR (signal caches): POSIX I/O as sec2, and a failed
 * write stops all writing (h5ml__safe_error). */
hid_t h5ml__fapl_write(void);
/* A plain read-only file access property list (sec2), with a modest chunk cache. */
hid_t h5ml__fapl_read(void);
uint32_t h5ml__lookup3(const void *key, size_t length, uint32_t initval);
/* H5Fflush with the metadata writes of the flush held in memory and written back to back at
 * its end (files on h5ml's driver; a plain H5Fflush otherwise). Returns 0 or -1. */
int h5ml__safe_flush(hid_t file);
/* While on (this thread), files opened with h5ml's driver get their own HDF5 state even when
 * the process has them open already (HDF5 would otherwise share that open's state, so that
 * the new open saw no more than the old one did). */
void h5ml__safe_open_apart(bool on);
/* h5ml__safe_flush with the metadata of the objects first[0..nfirst) (ids <= 0 skipped;
 * H5Oflush, which also takes the global heaps) made and written before the rest, in that
 * order: an HDF5 flush otherwise orders its writes by file address, whatever they mean. */
int h5ml__safe_flush_first(hid_t file, const hid_t *first, int nfirst);
/* The errno of the first write to `file` that failed (0: none, or not h5ml's driver). From
 * that write on nothing more reaches the file and HDF5 is told writes succeed, so callers
 * must ask after writing (see safefile.c). Thread-safe. */
int h5ml__safe_error(hid_t file);
/* Where that errno is kept while `file` is open (NULL: not h5ml's driver), for writers that
 * ask after every call: read it with __atomic_load_n. */
const int *h5ml__safe_error_flag(hid_t file);
/* The same for the file at `path` once closed: the errno of a failed write during the last
 * session that opened it for writing through h5ml's driver (0: none). */
int h5ml__safe_path_error(const char *path);

/* ---- LZF filter (lzf_filter.c) ---- */
#define H5ML_FILTER_LZF 32000
int h5ml__lzf_register(void);
/* Whether an LZF-filtered dataset's recorded chunk size (cd_values[2], which the filter
 * requires of every decoded chunk) is its chunk shape's; true for other datasets. */
bool h5ml__lzf_params_ok(hid_t dset);

/* ---- HDF5 helpers (h5io.c) ---- */
hid_t h5ml__bool_type(void); /* h5py's numpy-bool enum; caller closes */
/* Whether t is an integer (1, 2, 4 or 8 bytes) or floating-point (2, 4 or 8 bytes) type that
 * uses all its bits, as every writer stores numbers; false for other classes. */
bool h5ml__plain_number(hid_t t, H5T_class_t cls);
hid_t h5ml__vlen_str_type(void); /* variable-length UTF-8 string; caller closes */
bool h5ml__is_bool_type(hid_t t);
int h5ml__attr_write(hid_t loc, const char *name, hid_t type, hid_t space, const void *buf);
int h5ml__attr_i64(hid_t loc, const char *name, int64_t v);
int h5ml__attr_f64(hid_t loc, const char *name, double v);
int h5ml__attr_bool(hid_t loc, const char *name, int v);
int h5ml__attr_str(hid_t loc, const char *name, const char *v);
int h5ml__attr_i64s(hid_t loc, const char *name, const int64_t *v, size_t n);
int h5ml__attr_strs(hid_t loc, const char *name, const char *const *v, size_t n); /* vlen UTF-8 */
int h5ml__attr_f64s(hid_t loc, const char *name, const double *v, size_t n);
/* Reads a scalar integer/float attribute; returns 0 if present and convertible. */
int h5ml__attr_get_i64(hid_t loc, const char *name, int64_t *v);
int h5ml__attr_get_f64(hid_t loc, const char *name, double *v);
/* Reads a string attribute (fixed or variable length) into a new malloc'd string. */
char *h5ml__attr_get_str(hid_t loc, const char *name);
/* Reads an integer array attribute; returns count or -1; *out malloc'd. */
int64_t h5ml__attr_get_i64s(hid_t loc, const char *name, int64_t **out);
/* Whether a dataset can hold `rows` rows of `row_bytes` bytes as the file (of file_size
 * bytes, -1 unknown) stores it: checked before h5ml allocates from a file's dimensions. */
bool h5ml__rows_plausible(hid_t dset, int64_t rows, size_t row_bytes, int64_t file_size);
/* Whether the chunks of rows [start, start+count) of an unfiltered chunked dataset are stored
 * whole, as HDF5 needs before it reads them (true for other datasets). */
bool h5ml__chunks_whole(hid_t dset, int64_t start, int64_t count);
/* Current dims of a dataset (up to 3); returns rank or -1. */
int h5ml__dims(hid_t dset, hsize_t dims[3]);
/* Reads rows [start, start+count) of a dataset with `ncols` fixed trailing elements into
 * `buf` converted to `memtype`. */
int h5ml__read_rows(hid_t dset, hid_t memtype, int64_t start, int64_t count, void *buf);
/* The innermost HDF5 error text of the current thread's stack (static buffer per call). */
void h5ml__h5_error_text(char *buf, size_t len);
void h5ml__iso8601(char out[32]);

/* ---- attributes to write later (attrlist.c) ---- */
typedef struct h5ml_attrlist { struct h5ml_attr *v; size_t n; } h5ml_attrlist;
/* Each returns 0, or -1 when out of memory. */
int h5ml__attrs_str(h5ml_attrlist *l, const char *key, const char *v);
int h5ml__attrs_int(h5ml_attrlist *l, const char *key, int64_t v);
int h5ml__attrs_double(h5ml_attrlist *l, const char *key, double v);
int h5ml__attrs_bool(h5ml_attrlist *l, const char *key, int v);
int h5ml__attrs_ints(h5ml_attrlist *l, const char *key, const int64_t *v, size_t n);
int h5ml__attrs_doubles(h5ml_attrlist *l, const char *key, const double *v, size_t n);
int h5ml__attrs_strs(h5ml_attrlist *l, const char *key, const char *const *v, size_t n);
/* Writes them in order onto loc (a later value of a key replaces an earlier one). */
int h5ml__attrs_write(hid_t loc, const h5ml_attrlist *l);
void h5ml__attrs_free(h5ml_attrlist *l);
/* Whether s is valid UTF-8: names and strings h5ml stores are read back as JSON, which takes
 * nothing else (and HDF5 is told they are UTF-8). */
bool h5ml__utf8_ok(const char *s);
/* The attributes of an HDF5 object as one JSON object (numbers, bools, strings, arrays),
 * malloc'd; NULL when out of memory. */
char *h5ml__attrs_json(hid_t loc);

/* ---- files (h5io.c) ---- */
/* Moves the file built under `tmp` to `path`: a rename, or over an existing file an
 * exchange of the two names and removal of the old file (atomic like a rename, without
 * ext4's flush of the whole new file on a rename over another). Returns 0 or -1 (errno). */
int h5ml__move_into_place(const char *tmp, const char *path, bool replacing);
/* "PATH.h5ml-PID.tmp", malloc'd (NULL when out of memory). */
char *h5ml__tmp_name(const char *path);

/* ---- comparison (ops.c) ---- */
/* Every dataset of two open files, names, dtypes, shapes and values; the first difference
 * is ERR_DIFFER with the message on `base` (pa, pb: the files' names for it). */
int h5ml__diff_datasets(h5ml_base *base, hid_t fa, hid_t fb, const char *pa, const char *pb);

/* ---- extended XYZ (extxyz.c) ---- */
/* The value the XYZ reader makes of the text `v` of key `key` in a comment line (an
 * integer, float, bool, array of them, _JSON value or string, as ASE converts it); new
 * reference, NULL for text that is not UTF-8. The writer asks it whether a string would
 * read back as itself. */
struct json_t *h5ml__xyz_value(const char *key, const char *v);

/* ---- numbers (numfmt.c) ---- */
/* Parses a decimal/exponent float from [p, end); returns pointer past it or NULL. Exact
 * (correctly rounded) like strtod. */
const char *h5ml__parse_double(const char *p, const char *end, double *out);
const char *h5ml__parse_int(const char *p, const char *end, int64_t *out);
/* Shortest decimal that reads back to exactly `v`; always has '.', 'e', "nan" or "inf"
 * so it reads back as a float. Returns length; out needs 32 bytes. */
int h5ml__fmt_double(char *out, double v);
int h5ml__fmt_float(char *out, float v);  /* shortest for the float32 value, as a double */

/* ---- elements (elements.c) ---- */
int h5ml__element_z(const char *sym, size_t len); /* -1 if unknown; case-insensitive like ASE */

/* ---- validation (validate.c) ---- */
/* The SPEC's checks; on failure writes the message to msg and returns ERR_VALUE. */
int h5ml__validate(const h5ml_structure *s, char *msg, size_t msglen);
/* Whether any of v[0..n) is NaN or Inf. */
bool h5ml__any_nonfinite(const double *v, int64_t n);
bool h5ml__any_nonfinite_f32(const float *v, int64_t n);
/* Plausibility: closest pair below 0.5 A (periodic images counted). Returns 1 and sets
 * *i, *j, *d if such a pair exists. */
int h5ml__close_pair(int64_t n, const double *pos, const double *cell, const uint8_t *pbc,
                     double threshold, int64_t *i, int64_t *j, double *d);

/* ---- statistics (stats.c) ---- */
typedef struct h5ml_stats {
    int64_t n, atoms, with_stress, periodic;
    int64_t element_counts[119];
    double e_min, e_max, e_mean, e_m2;    /* Welford */
    double epa_mean, epa_m2;
    double f_max2, f_sumsq;               /* squared max |F|, sum of squared components */
} h5ml_stats;
void h5ml__stats_init(h5ml_stats *st);
/* Forces as stored (float32), given as float32 or as float64 that is rounded to float32. */
void h5ml__stats_add(h5ml_stats *st, int64_t natoms, const int64_t *numbers, double energy,
                     const double *forces_or_null, const float *forces32_or_null,
                     int has_stress, const uint8_t *pbc);
double h5ml__stats_std(double m2, int64_t n);
/* Writes the statistics attributes onto /metadata; loads them back (0 if all present). */
int h5ml__stats_write(hid_t meta, const h5ml_stats *st);
int h5ml__stats_read(hid_t meta, h5ml_stats *st);

/* ---- dataset names ---- */
enum {
    COL_NUMBERS, COL_NUMBERS_SPLITS, COL_POSITIONS, COL_CELLS, COL_PBC,
    COL_ENERGY, COL_FORCES, COL_FORCES_SPLITS, COL_STRESS, COL_STRESS_MASK, COL_INDICES,
    COL_COUNT
};
typedef struct h5ml_coldef {
    const char *path;
    int per_atom;    /* 1: M rows, 0: N rows, 2: N+1 rows (splits) */
    int ncols;       /* trailing elements per row (1, 3, 6, 9) */
    int kind;        /* 'i' int64, 'd' float64, 'f' float32, 'b' bool */
    int rank;        /* 1, 2, or 3 (cells) */
} h5ml_coldef;
extern const h5ml_coldef h5ml__cols[COL_COUNT];
#define H5ML_INFO_PATH "labels/info"
#define H5ML_FORMAT_NAME "h5ml-atoms"
#define H5ML_FORMAT_VERSION "1.0"

#endif
