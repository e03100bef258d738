/* Internal interfaces of the signal-dataset side of libh5ml: the PRNG, the split
 * assignment, the vibration generator and the MATLAB import. Pure computation here (no
 * HDF5): the writers and readers in signals_*.c put the results into files. */
#ifndef H5ML_SIGNALS_PRIV_H
#define H5ML_SIGNALS_PRIV_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* ---- PRNG (rng.c) ------------------------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same 64-bit seed gives the same stream on
 * every machine and compiler (integer arithmetic only; the floating-point helpers use only
 * exactly rounded operations, so they are reproducible too, except rng_normal, which uses
 * log/sqrt/cos of the C library: reproducible on one libm, within an ulp across them). */
typedef struct h5ml_rng { uint64_t s[4]; } h5ml_rng;

void h5ml__rng_seed(h5ml_rng *r, uint64_t seed);
/* A seed for stream `k` derived from `seed` (splitmix64 of both): independent substreams,
 * e.g. one per generated sample, so generation order does not change any sample. */
uint64_t h5ml__rng_derive(uint64_t seed, uint64_t k);
uint64_t h5ml__rng_next(h5ml_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double h5ml__rng_uniform(h5ml_rng *r);
/* Uniform in [lo, hi). */
double h5ml__rng_range(h5ml_rng *r, double lo, double hi);
/* Unbiased integer in [0, n) (n > 0; Lemire's method with rejection). */
uint64_t h5ml__rng_below(h5ml_rng *r, uint64_t n);
/* Standard normal (Box-Muller; the spare value is cached in the generator state copy
 * passed in, so keep using the same h5ml_rng). */
double h5ml__rng_normal(h5ml_rng *r);
/* Fisher-Yates shuffle of v[0..n). */
void h5ml__rng_shuffle_i64(h5ml_rng *r, int64_t *v, int64_t n);

/* ---- split assignment (split.c) -----------------------------------------------------------
 * Assigns n samples to train/val/test from `ratios` (each >= 0, summing to 1 within 1e-6).
 * Stratified: each label's samples are shuffled (seeded) and cut by the ratios with
 * largest-remainder rounding, and every class with at least 3 samples gets at least one
 * sample in each split with a nonzero ratio; overall split sizes end within one sample of
 * n * ratio. Not stratified: one seeded shuffle of all samples cut by the ratios.
 * Output: `order[s]` receives the original indices of split s (0 train, 1 val, 2 test) in
 * the seeded order the split file stores them, `count[s]` their number; order[s] arrays
 * are malloc'd by the callee (free with free()). Labels must be >= 0 when stratifying.
 * Returns H5ML_OK, or ERR_VALUE / ERR_NOMEM with a message in msg (e.g. "split ratios must
 * sum to 1 (got 0.7 + 0.2 + 0.2 = 1.1)"). */
int h5ml__split_assign(const int64_t *labels, int64_t n, const double ratios[3], int stratify,
                       uint64_t seed, int64_t *order[3], int64_t count[3], char *msg, size_t msglen);

/* ---- vibration signal generator (siggen.c) -----------------------------------------------
 * A rotating machine at a nominal speed (default 60 Hz, drawn within +-10 % per sample),
 * sampled at `rate` Hz for `length` samples, with the fault signature of one of the 11
 * classes (labels 0..10, names in h5ml__fault_names) and noise layers (broadband noise,
 * mains interference at 50 or 60 Hz and its harmonics). Every sample is a function of
 * (seed, label, index) only, so any subset can be generated in any order or in parallel. */
#define H5ML_NUM_FAULTS 11
extern const char *const h5ml__fault_names[H5ML_NUM_FAULTS];

typedef struct h5ml_siggen_params {
    double rate;        /* sampling rate, Hz (default 20480)            */
    int64_t length;     /* samples per signal (default 102400 = 5 s)    */
    double speed_hz;    /* nominal shaft speed, Hz (default 60)         */
    double speed_var;   /* relative speed variation (default 0.10)      */
    uint64_t seed;      /* dataset seed                                 */
} h5ml_siggen_params;

/* What was drawn for one sample (stored as its per-sample metadata). */
typedef struct h5ml_siggen_info {
    int label;
    double severity;    /* 0..1 amplitude scale of the fault signature  */
    double speed_hz;    /* actual shaft speed                           */
    double load;        /* 0..1 machine load                            */
    uint64_t seed;      /* the sample's own seed (derived)              */
} h5ml_siggen_info;

/* Fills out[0..p->length) with sample `index` of class `label`. Returns 0, or -1 for a
 * label outside 0..10 or bad parameters. Thread-safe (no shared state). */
int h5ml__siggen_sample(const h5ml_siggen_params *p, int label, int64_t index, float *out,
                        h5ml_siggen_info *info);
/* The per-sample metadata JSON object of `info`:
 * {"fault":"jeu","label":3,"severity":0.62,"speed_hz":61.3,"speed_rpm":3678,"load":0.4,
 *  "seed":1234,"index":17}. Returns the length written (truncated to outlen-1). */
int h5ml__siggen_info_json(const h5ml_siggen_info *info, int64_t index, char *out, size_t outlen);

/* ---- MATLAB import (matimport.c) ----------------------------------------------------------
 * A directory with one sub-directory per fault type, .mat files (v5, v7.3) inside, each
 * holding one signal. */
typedef struct h5ml_mat_entry {
    char *path;         /* the .mat file                                */
    int label;          /* class index                                  */
} h5ml_mat_entry;

typedef struct h5ml_mat_listing {
    h5ml_mat_entry *files;  /* sorted by label, then path                  */
    int64_t nfiles;
    char **class_names;     /* label -> sub-directory name                 */
    int nclasses;
    int named;              /* 1: every sub-directory is a SPEC fault name, labels are the
                               SPEC's; 0: sub-directories sorted by name, labels 0.. in that
                               order                                       */
} h5ml_mat_listing;

/* Lists `dir`. Errors (returned as ERR_IO / ERR_VALUE / ERR_NOTFOUND with the message in
 * msg, naming the path): not a directory, no sub-directories, no .mat files at all. Empty
 * sub-directories are skipped. */
int h5ml__mat_list(const char *dir, h5ml_mat_listing *out, char *msg, size_t msglen);
void h5ml__mat_listing_free(h5ml_mat_listing *l);

/* Reads one signal from a .mat file: the variable `var` if not NULL, else the largest real
 * numeric vector (1 x n or n x 1, any numeric class, logical excluded) among the top-level
 * variables (and fields of top-level structs). Converted to double in *out (malloc'd),
 * *len its length, the variable's name copied to name (may be NULL). Errors name the file:
 * "x.mat: no real numeric vector found (variables: a (char), s (struct))",
 * "x.mat: variable 'sig' not found (variables: ...)", "x.mat: variable 'sig' is complex",
 * "x.mat: not a MATLAB file". */
int h5ml__mat_read_signal(const char *path, const char *var, double **out, int64_t *len,
                          char *name, size_t namelen, char *msg, size_t msglen);

/* ---- between the signal reader and the whole-file operations ---- */
hid_t h5ml__sigreader_file(const h5ml_sigreader *r);

#endif
