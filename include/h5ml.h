/*
 * h5ml.h -- machine-learning datasets in plain HDF5.
 *
 * This header is the manual of libh5ml. It covers:
 *
 *   1. Versions, errors and logging         h5ml_version(), h5ml_errmsg(), ...
 *   2. Atomistic writer                     h5ml_writer_*
 *   3. Atomistic reader                     h5ml_reader_*
 *   4. Extended XYZ reader and writer       h5ml_xyz_reader_*, h5ml_xyz_writer_*
 *   5. Whole-file operations                convert, export, verify, diff, merge, summary
 *   6. Signal datasets                      h5ml_sigwriter_*, h5ml_sigreader_*, h5ml_signals_*
 *
 * Conventions that hold everywhere:
 *
 *  - Handles are opaque. Each is made by h5ml_<x>_new(), which returns NULL only when
 *    memory is exhausted, opened by h5ml_<x>_open(), and released by h5ml_<x>_close();
 *    closing NULL is a no-op. A handle whose open failed still carries the message.
 *  - Functions that can fail return an h5ml_code: H5ML_OK (0) on success, a positive code
 *    otherwise. The detailed message, naming the file and what is wrong, lives on the
 *    handle: h5ml_errmsg(handle). There is no global "last error".
 *  - The library never prints. Warnings (physical plausibility, recovered files) go to a
 *    log callback if the caller installs one (h5ml_set_log), and are counted either way.
 *  - A handle may be used by one thread at a time; different handles may be used from
 *    different threads, but HDF5 itself serializes its calls (Debian's HDF5 is built
 *    thread-safe), so concurrent use of HDF5-backed handles is safe but not parallel.
 *  - Pointers passed in are borrowed for the duration of the call only, unless said.
 *
 * File schema (atomistic; format "h5ml-atoms", format_version "1.0"):
 *
 *   /structures/atomic_numbers         int64   (M,)     all atoms, concatenated
 *   /structures/atomic_numbers_splits  int64   (N+1,)   starts 0, ends M
 *   /structures/positions              float64 (M,3)    Angstrom
 *   /structures/cells                  float64 (N,3,3)  row vectors
 *   /structures/pbc                    bool    (N,3)    HDF5 enum FALSE=0/TRUE=1 on int8
 *   /labels/energy                     float64 (N,)     eV
 *   /labels/forces                     float32 (M,3)    eV/Angstrom
 *   /labels/forces_splits              int64   (N+1,)   equal to atomic_numbers_splits
 *   /labels/stress                     float64 (N,6)    Voigt xx,yy,zz,yz,xz,xy; 0 if masked
 *   /labels/stress_mask                bool    (N,)     true where stress was given
 *   /labels/structure_indices          int64   (N,)     0..N-1
 *   /labels/info                       string  (N,)     optional: per-structure metadata,
 *                                                       one JSON object each (UTF-8)
 *   /metadata                          group   attributes only (see h5ml_writer_finalize)
 *
 * Crash safety: a writer stores everything up to its last checkpoint so that a process
 * killed at any moment leaves a file that h5ml, h5py and h5dump open. Files are written in
 * HDF5's single-writer/multiple-reader (SWMR) mode, whose flush ordering keeps the file's
 * metadata consistent on disk, through a file driver of h5ml's that keeps the superblock's
 * "open for writing" flags clear and its end-of-file address ahead of every metadata write,
 * so that plain (non-SWMR) readers open the file too. Files need HDF5 1.10 or later to read.
 */
#ifndef H5ML_H
#define H5ML_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define H5ML_VERSION_MAJOR 0
#define H5ML_VERSION_MINOR 1
#define H5ML_VERSION_PATCH 0

#if defined(_WIN32)
#  define H5ML_API
#elif defined(H5ML_BUILDING)
#  define H5ML_API __attribute__((visibility("default")))
#else
#  define H5ML_API
#endif

/* ======================================================================================
 * 1. Versions, errors and logging
 * ====================================================================================== */

/* "MAJOR.MINOR.PATCH" of the library that is linked (static string). Thread-safe. */
H5ML_API const char *h5ml_version(void);

/* Error codes. X(name, description) */
#define H5ML_ERRORS(X)                                                                     \
    X(OK, "success")                                                                       \
    X(DONE, "end of input")                                                                \
    X(ERR_ARG, "invalid argument")                                                         \
    X(ERR_NOMEM, "out of memory")                                                          \
    X(ERR_IO, "input/output error")                                                        \
    X(ERR_HDF5, "HDF5 library error")                                                      \
    X(ERR_SCHEMA, "file does not follow the dataset schema")                               \
    X(ERR_VALUE, "invalid value")                                                          \
    X(ERR_PARSE, "malformed input")                                                        \
    X(ERR_STATE, "operation not allowed in this state")                                    \
    X(ERR_NOTFOUND, "not found")                                                           \
    X(ERR_RANGE, "index out of range")                                                     \
    X(ERR_BUSY, "file is being written by another process")                                \
    X(ERR_CHECK, "integrity check failed")                                                 \
    X(ERR_DIFFER, "files differ")                                                          \
    X(ERR_INTERRUPTED, "interrupted")

typedef enum h5ml_code {
#define H5ML_X_ENUM(name, text) H5ML_##name,
    H5ML_ERRORS(H5ML_X_ENUM)
#undef H5ML_X_ENUM
    H5ML_NUM_CODES
} h5ml_code;

/* Static description of a code ("invalid value"); never NULL. Thread-safe. */
H5ML_API const char *h5ml_strerror(int code);

/* The detailed message of the last failure on `handle` (any h5ml handle), for example
 * "data.xyz: frame 12 (line 301): expected 64 atom lines, found 63". Empty string when the
 * last call succeeded; "out of memory" for a NULL handle. Valid until the next call on the
 * handle. */
H5ML_API const char *h5ml_errmsg(const void *handle);

/* The code of the last failure on `handle` (H5ML_OK if none; H5ML_ERR_NOMEM for NULL). */
H5ML_API int h5ml_errcode(const void *handle);

typedef enum h5ml_level { H5ML_LOG_WARNING = 1, H5ML_LOG_INFO = 2 } h5ml_level;

/* Log callback: receives warnings such as "structure 7: atoms 0 and 3 are 0.312 A apart
 * (below 0.5 A)". `msg` is valid during the call only. */
typedef void (*h5ml_log_fn)(void *user, int level, const char *msg);

/* Installs `fn` on `handle` (NULL removes it). Without a callback nothing is printed. */
H5ML_API void h5ml_set_log(void *handle, h5ml_log_fn fn, void *user);

/* Number of warnings issued on `handle` so far (also counted without a callback). */
H5ML_API int64_t h5ml_warning_count(const void *handle);

/* Frees memory returned by the library (JSON strings, summaries). NULL is a no-op. */
H5ML_API void h5ml_free(void *p);

/* Progress callback for long operations: `done` of `total` units (bytes for an XYZ input,
 * structures otherwise), called between whole units of work (structures, batches, signals),
 * never inside one. Return 0 to go on.
 *
 * Return H5ML_PROGRESS_STOP to stop there and keep what was done: the operation returns
 * ERR_INTERRUPTED ("interrupted"). An atomistic operation (h5ml_convert_xyz,
 * h5ml_writer_add_file) leaves its writer open holding every structure added so far, each
 * complete, for the caller to finalize (h5ml_writer_finalize, h5ml_writer_finalize_aside)
 * or roll back. A signal operation (generate, import, split) discards its unfinished file
 * as on any failure (a split cache is all or nothing; an existing file stays as it was).
 * The command line stops this way on SIGTERM and SIGINT.
 *
 * Any other nonzero value cancels: the operation fails with ERR_STATE ("cancelled") and
 * rolls back like any other failure. */
typedef int (*h5ml_progress_fn)(void *user, int64_t done, int64_t total);
#define H5ML_PROGRESS_STOP 2

/* ======================================================================================
 * 2. Atomistic writer
 * ====================================================================================== */

typedef struct h5ml_writer h5ml_writer;

typedef enum h5ml_compression {
    H5ML_COMPRESS_DEFAULT = 0, /* gzip */
    H5ML_COMPRESS_NONE = 1,
    H5ML_COMPRESS_GZIP = 2,    /* HDF5's deflate filter (id 1) */
    H5ML_COMPRESS_LZF = 3      /* h5py's LZF filter (id 32000); h5py reads it without plugin */
} h5ml_compression;

/* Compression profiles: compression, level and shuffle set together (H5ML_OPT_PROFILE,
 * H5ML_SIG_PROFILE). Measured on the bundled data (README, "Compression profiles"):
 *
 *   fast       LZF + shuffle        the fastest writes and reads, larger files
 *   balanced   shuffle + gzip 4     the default: within 1 % of small's size, 2x its write
 *                                  speed on atomistic data, 10x on signals
 *   small      shuffle + gzip 9     the smallest files, the slowest writes
 *   none       no filter            the fastest with uncompressed data, the largest files
 *
 * Precedence: the profile fills in the parts that are not set explicitly. Compression,
 * level or shuffle set to a nonzero value (in any order, before or after the profile)
 * override the profile's part; a level applies to gzip only (a profile without a gzip
 * level, made gzip by an explicit compression, gets level 4). Without a profile the
 * explicit options alone apply, over the defaults (gzip 4 + shuffle: balanced). */
typedef enum h5ml_profile {
    H5ML_PROFILE_DEFAULT = 0,  /* balanced */
    H5ML_PROFILE_FAST = 1,
    H5ML_PROFILE_BALANCED = 2,
    H5ML_PROFILE_SMALL = 3,
    H5ML_PROFILE_NONE = 4
} h5ml_profile;

/* The profile named `name` ("fast", "balanced", "small", "none"; exact lowercase), or -1
 * for another name or NULL. Thread-safe. */
H5ML_API int h5ml_profile_from_name(const char *name);
/* The name of a profile ("balanced" for H5ML_PROFILE_DEFAULT), NULL for another value.
 * Static string; thread-safe. */
H5ML_API const char *h5ml_profile_name(int profile);

/* Writer options for h5ml_writer_set(); every option has a default, used when it is not
 * set or set to 0. Options must be set before h5ml_writer_open(). */
typedef enum h5ml_option {
    H5ML_OPT_COMPRESSION = 1,     /* h5ml_compression; default gzip                       */
    H5ML_OPT_LEVEL,               /* gzip level 1..9; default 4                            */
    H5ML_OPT_SHUFFLE,             /* 1 on (default), -1 off: byte shuffle before compression */
    H5ML_OPT_VALIDATE,            /* 1 on (default), -1 off: every check of section 2      */
    H5ML_OPT_CHUNK_ATOMS,         /* rows per chunk of per-atom datasets; default from the
                                     expected access (H5ML_OPT_ACCESS): 16384, or 4096 for
                                     shuffled access to a compressed file                  */
    H5ML_OPT_CHUNK_STRUCTURES,    /* rows per chunk of per-structure datasets; default 4096 */
    H5ML_OPT_CHECKPOINT_MS,       /* checkpoint interval in ms; default 2000; -1 only at
                                     finalize                                              */
    H5ML_OPT_THREADS,             /* threads that compress chunks and check batches;
                                     default one per core; 1 does everything on the
                                     calling thread                                        */
    H5ML_OPT_PROFILE,             /* h5ml_profile; see its precedence rule above           */
    H5ML_OPT_DEDUP,               /* 1 on, -1 off (default): skip duplicates (see below)   */
    H5ML_OPT_ACCESS,              /* h5ml_access: how the file will be read; sizes chunks  */
    H5ML_OPT__COUNT
} h5ml_option;

/* The expected access to an atomistic file (H5ML_OPT_ACCESS), from which the writer sizes
 * its chunks when H5ML_OPT_CHUNK_ATOMS is not set. A compressed chunk is decoded whole for
 * any structure in it, so a reader in shuffled order (training) that misses its chunk cache
 * decodes a chunk per structure: smaller chunks decode less. Measured on 12,500-800,000
 * structures of 8, 64 and 512 atoms, gzip-4, files larger than the reader's cache (README,
 * "Chunk shapes"): 4096-row chunks read 1.4-1.6x faster in shuffled order than 16384-row
 * ones from 64 atoms per structure up (no gain at 8), 1.2-2.2x slower in order, and write
 * 1.4-2x slower. Uncompressed chunks are read row by row, so they keep 16384 rows. */
typedef enum h5ml_access {
    H5ML_ACCESS_DEFAULT = 0,      /* = sequential */
    H5ML_ACCESS_SEQUENTIAL = 1,   /* in order, or shuffled within a cache-sized file: 16384 */
    H5ML_ACCESS_SHUFFLED = 2      /* random order over a file bigger than the cache: 4096  */
} h5ml_access;

/* Deduplication (H5ML_OPT_DEDUP = 1): a structure identical to one already in the file is
 * skipped (not written, no error) and counted in h5ml_writer_stats.deduplicated. Identical
 * means the same natoms, atomic numbers, positions, cell and pbc as stored, bit for bit
 * (a NULL cell equals a zero cell, NULL pbc equals {0,0,0}, any nonzero pbc flag equals 1;
 * -0.0 differs from 0.0, and a position one ulp away is another structure). Energy, forces,
 * stress and metadata are not compared: the first structure written is kept. Structures of
 * one batch are compared with each other too, and in append mode with every structure the
 * file held at open, which h5ml_writer_open reads (in blocks) to hash. Validation comes
 * first: a rejected structure is an error even if it duplicates a stored one; plausibility
 * warnings are issued for written structures only.
 *
 * How: a 64-bit hash of (natoms, numbers, positions, cell, pbc) goes into an open-addressing
 * table of (hash, structure index) slots; on a hash match the stored structure is read back
 * (from the writer's chunk buffers, or from the file) and compared byte for byte, so a hash
 * collision never drops a structure. Memory: one 16-byte slot per structure in a table kept
 * at most half full, so 32 to 64 bytes per structure in the file (64 MB at most for a
 * million structures), plus the largest structure compared. Cost: hashing runs on the
 * batch-checking threads; a duplicate costs a read-back, from the file at worst one chunk
 * per geometry dataset (kept in an 8 MiB HDF5 chunk cache per dataset). */

/* Makes a writer handle with default options. NULL only if out of memory. */
H5ML_API h5ml_writer *h5ml_writer_new(void);

/* Sets an option. Returns ERR_ARG (message on the handle) for an unknown option or a value
 * out of bounds, ERR_STATE once the writer is open. */
H5ML_API int h5ml_writer_set(h5ml_writer *w, h5ml_option opt, int64_t value);

typedef enum h5ml_mode {
    H5ML_CREATE = 0, /* create; a new file appears at open (so a killed writer leaves its
                        checkpoints there), while an existing file is replaced only when the
                        new one is finalized (a failed or killed run leaves it as it was, the
                        unfinished new file under PATH.h5ml-PID.tmp) */
    H5ML_APPEND = 1, /* append to an existing file (created if missing) */
    H5ML_REPAIR = 2  /* append, first cutting datasets of unequal length back to their
                        longest consistent prefix whoever wrote the file */
} h5ml_mode;

/* Opens `path` for writing. Append continues the splits and structure_indices, keeps the
 * file's compression and chunking, and recovers a file left by a killed h5ml writer (its data
 * up to the last checkpoint; an unfinished tail is dropped with a warning). A file of unequal
 * dataset lengths that no h5ml writer left unfinished is refused unless mode is REPAIR. Appending to a file
 * written by another tool (h5py) works when its datasets are chunked and resizable.
 * Errors: ERR_IO (cannot create/open), ERR_SCHEMA (not a dataset of this schema),
 * ERR_BUSY (another h5ml writer has the file open), ERR_HDF5. */
H5ML_API int h5ml_writer_open(h5ml_writer *w, const char *path, h5ml_mode mode);

/* One structure. Arrays are row-major. */
typedef struct h5ml_structure {
    int64_t natoms;
    const int64_t *numbers;   /* natoms atomic numbers (0..118); required if natoms > 0   */
    const double *positions;  /* natoms x 3, Angstrom; required if natoms > 0             */
    const double *cell;       /* 3 x 3 row vectors; NULL = zeros                          */
    const uint8_t *pbc;       /* 3 flags (0/1); NULL = non-periodic                       */
    double energy;            /* eV                                                       */
    const double *forces;     /* forces_rows x 3, eV/Angstrom; stored as float32          */
    int64_t forces_rows;      /* rows of `forces`; must equal natoms (0 means natoms)     */
    const double *stress;     /* 6 (Voigt xx,yy,zz,yz,xz,xy) or 9 (3x3); NULL = none      */
    int64_t stress_len;       /* 6 or 9 (0 means 6)                                       */
    const char *info_json;    /* per-structure metadata: a JSON object, or NULL           */
} h5ml_structure;

/* Adds one structure. With validation on, rejects (ERR_VALUE, nothing written) a non-finite
 * energy ("Invalid energy: nan"), forces of the wrong shape ("Forces shape (10, 3) doesn't
 * match atoms (5, 3)"), forces or stress with NaN or Inf ("Forces contain NaN", "Stress
 * contains Inf"), a stress of the wrong length, and atomic numbers outside 0..118. Atoms
 * closer than 0.5 A (periodic images counted) and |F| above 50 eV/A only warn.
 * ERR_STATE after finalize ("Cannot add structures after finalize() has been called"). */
H5ML_API int h5ml_writer_add(h5ml_writer *w, const h5ml_structure *s);

/* Many structures as flat arrays. Structure k has natoms[k] atoms; atoms are concatenated. */
typedef struct h5ml_batch {
    int64_t count;               /* number of structures                                 */
    const int64_t *natoms;       /* count entries                                        */
    const int64_t *numbers;      /* sum(natoms)                                          */
    const double *positions;     /* sum(natoms) x 3                                      */
    const double *cells;         /* count x 9, or NULL = zeros                           */
    const uint8_t *pbc;          /* count x 3, or NULL = non-periodic                    */
    const double *energies;      /* count                                                */
    const double *forces;        /* sum(natoms) x 3                                      */
    const double *stress;        /* count x 6 (Voigt), or NULL = none                    */
    const uint8_t *stress_mask;  /* count flags, or NULL = all given (if stress != NULL) */
    const char *const *info_json;/* count JSON objects (entries may be NULL), or NULL    */
} h5ml_batch;

/* Adds a batch: the same checks as h5ml_writer_add per structure. If structure k is
 * rejected, structures 0..k-1 are written, k and later are not, and the message names k
 * ("structure 12 of the batch: Invalid energy: inf"). */
H5ML_API int h5ml_writer_add_batch(h5ml_writer *w, const h5ml_batch *b);

/* Extra /metadata attributes, written at finalize (a key set twice keeps the last value).
 * Keys must not be empty or contain '/'; reserved names (num_structures, format, ...) are
 * refused with ERR_ARG. json must parse as JSON and is stored as a string attribute. */
H5ML_API int h5ml_writer_meta_string(h5ml_writer *w, const char *key, const char *value);
H5ML_API int h5ml_writer_meta_int(h5ml_writer *w, const char *key, int64_t value);
H5ML_API int h5ml_writer_meta_double(h5ml_writer *w, const char *key, double value);
H5ML_API int h5ml_writer_meta_bool(h5ml_writer *w, const char *key, int value);
H5ML_API int h5ml_writer_meta_json(h5ml_writer *w, const char *key, const char *json);
H5ML_API int h5ml_writer_meta_doubles(h5ml_writer *w, const char *key, const double *v, size_t n);
H5ML_API int h5ml_writer_meta_ints(h5ml_writer *w, const char *key, const int64_t *v, size_t n);

/* Writes everything buffered and makes it durable against a killed process (done
 * automatically every H5ML_OPT_CHECKPOINT_MS). */
H5ML_API int h5ml_writer_checkpoint(h5ml_writer *w);

/* Write failures (a full disk, an I/O error: ERR_IO naming the file and the system's reason,
 * e.g. "out.h5: cannot write: No space left on device"): the first failed write stops all
 * writing to the file, so it stays what a killed writer leaves, holding every structure up
 * to its last checkpoint (h5ml_writer_stats.committed) and openable by any HDF5 reader. The
 * writer is then broken (h5ml_writer_stats.failed): adding fails, finalize refuses (a
 * created file is left unfinalized where it is; one that was to replace an existing file is
 * removed at close, the existing file untouched), rollback of an append refuses. Append
 * (H5ML_APPEND) continues the file later from what it holds. */

/* Writes buffered data and the /metadata attributes: num_structures, num_atoms,
 * format ("h5ml-atoms"), format_version, created and updated (ISO 8601, UTC),
 * h5ml_version, compression, compression_level, shuffle, chunk_atoms, chunk_structures,
 * elements and element_counts (int64 arrays), energy_min/max/mean/std,
 * energy_per_atom_mean/std, force_max (largest |F|), force_rms (root mean square of the
 * force components), num_with_stress, num_periodic, finalized, and the extra metadata.
 * A second call only warns. After finalize, adding fails; the file stays open until close. */
H5ML_API int h5ml_writer_finalize(h5ml_writer *w);

/* Finalizes like h5ml_writer_finalize, but a created file that was to replace an existing
 * file stays under its temporary name (PATH.h5ml-PID.tmp), finalized, and the existing file
 * is left as it was; any other file is finalized where it is. *where (may be NULL) receives
 * the path of the finalized file, valid until h5ml_writer_close. For an interrupted run
 * (ERR_INTERRUPTED): what was written is kept, and a complete file is never replaced by a
 * partial one. */
H5ML_API int h5ml_writer_finalize_aside(h5ml_writer *w, const char **where);

/* Discards everything added since open: a created file is removed, an appended file is
 * cut back to its length at open. Used by whole-file operations so that bad input leaves
 * nothing half-written. The handle is closed for writing afterwards. */
H5ML_API int h5ml_writer_rollback(h5ml_writer *w);

/* Finalizes (if open and not finalized), closes and frees. NULL is a no-op. Returns the
 * finalize/close status; the handle is freed in every case. */
H5ML_API int h5ml_writer_close(h5ml_writer *w);

/* Counters of an open writer (valid any time). */
typedef struct h5ml_writer_stats {
    int64_t structures;      /* in the file, including those before an append */
    int64_t atoms;
    int64_t added;           /* structures added through this handle */
    int64_t added_atoms;     /* atoms added through this handle */
    int64_t checkpoints;
    int64_t warnings;
    int64_t dropped;         /* structures of an unfinished tail cut at open (append, repair) */
    int64_t deduplicated;    /* structures skipped as duplicates (H5ML_OPT_DEDUP); not in added */
    int64_t committed;       /* structures durable in the file: at open, then at each checkpoint
                                and at finalize (what a killed writer leaves at least) */
    int64_t failed;          /* nonzero once a write failed: the writer is broken (see
                                h5ml_writer_checkpoint); the errno when the system gave one */
} h5ml_writer_stats;
H5ML_API void h5ml_writer_get_stats(const h5ml_writer *w, h5ml_writer_stats *out);

/* ======================================================================================
 * 3. Atomistic reader
 * ====================================================================================== */

typedef struct h5ml_reader h5ml_reader;

H5ML_API h5ml_reader *h5ml_reader_new(void);

/* Opens `path` read-only and checks the schema: every dataset present with its dtype class
 * and shape, lengths that agree (N and M), splits that start at 0, never decrease, end at M,
 * and forces_splits equal to atomic_numbers_splits. Any violation is ERR_SCHEMA with a
 * message naming the file and dataset; no read ever goes out of bounds. Files written by
 * h5py with the same schema are read too. */
/* A file whose writer has not finalized it (/metadata finalized = 0: still being written, or
 * the writer was killed) may have datasets of unequal length, since each grows on its own;
 * such a file opens as its consistent prefix (the structures every dataset holds whole),
 * with a warning on the handle naming the ignored tail, read in HDF5's SWMR mode (a writer
 * may still be adding to it: see h5ml_reader_refresh). Any other length disagreement is
 * ERR_SCHEMA. */
H5ML_API int h5ml_reader_open(h5ml_reader *r, const char *path);

H5ML_API void h5ml_reader_close(h5ml_reader *r);

/* Follows a file that a writer is appending to: reopens the file at the reader's path and
 * takes its state as it is now, then sets *count (may be NULL) to the new number of
 * structures N. While an h5ml writer appends, structures appear at each of its checkpoints
 * (H5ML_OPT_CHECKPOINT_MS), all their data with them, and N never decreases; a file cut
 * back or replaced meanwhile reads as it now is. Opening follows h5ml_reader_open's rules,
 * without repeating its warning about an unfinished tail. On error (ERR_STATE if the reader
 * is not open, or the errors of h5ml_reader_open) the reader keeps its previous state,
 * still usable, and *count its previous N. Chunks cached for reads are dropped. Not
 * thread-safe: no other call on this reader may run meanwhile. */
H5ML_API int h5ml_reader_refresh(h5ml_reader *r, int64_t *count);

/* Memory (bytes) for decompressed chunks kept between reads, set before open; a quarter of
 * it per dataset. Default 256 MiB; 0 keeps HDF5's 1 MiB per dataset. Random reads of a
 * compressed file decompress a whole chunk (thousands of atoms) per structure unless the
 * chunk stays cached, so a budget that holds the file's per-atom chunks makes them fast.
 * Each reader (each DataLoader worker) has its own. */
H5ML_API int h5ml_reader_set_cache(h5ml_reader *r, int64_t bytes);

H5ML_API int64_t h5ml_reader_count(const h5ml_reader *r);       /* N */
H5ML_API int64_t h5ml_reader_total_atoms(const h5ml_reader *r); /* M */
H5ML_API const char *h5ml_reader_path(const h5ml_reader *r);

/* Number of atoms of structures [start, start+count): *atoms = splits[start+count] -
 * splits[start]. ERR_RANGE if the range is not inside [0, N]. */
H5ML_API int h5ml_reader_range_atoms(h5ml_reader *r, int64_t start, int64_t count, int64_t *atoms);

/* Caller buffers for a range of structures; any pointer may be NULL to skip that field.
 * Sizes: count entries for per-structure fields (x3, x9, x6 where noted) and A entries for
 * per-atom fields (x3), A from h5ml_reader_range_atoms. */
typedef struct h5ml_frames {
    int64_t *natoms;       /* count                                   */
    int64_t *numbers;      /* A                                       */
    double *positions;     /* A x 3                                   */
    double *cells;         /* count x 9                               */
    uint8_t *pbc;          /* count x 3 (0/1)                         */
    double *energies;      /* count                                   */
    float *forces;         /* A x 3 (stored precision)                */
    double *stress;        /* count x 6                               */
    uint8_t *stress_mask;  /* count (0/1)                             */
} h5ml_frames;

/* How the file stores its data (read from /labels/forces and the per-structure datasets). */
typedef struct h5ml_layout {
    int compression;        /* h5ml_compression of /labels/forces                   */
    int level;              /* gzip level, 0 otherwise                              */
    int shuffle;            /* 1 if shuffled                                        */
    int64_t chunk_atoms;    /* rows per chunk of /structures/atomic_numbers         */
    int64_t chunk_structures; /* rows per chunk of /labels/energy                    */
} h5ml_layout;

H5ML_API int h5ml_reader_layout(h5ml_reader *r, h5ml_layout *out);

/* Reads structures [start, start+count) into `out`. ERR_RANGE outside [0, N]. */
H5ML_API int h5ml_reader_read(h5ml_reader *r, int64_t start, int64_t count, const h5ml_frames *out);

/* Reads structures idx[0..n), in any order and with repeats, into `out`, one after the other:
 * entry k of the per-structure fields is structure idx[k], and its atoms follow those of
 * idx[k-1] in the per-atom fields (sizes: n, and A = h5ml_reader_atoms_of(idx) rows). The
 * shuffled-batch read of training: each compressed chunk involved is read once (its stored
 * bytes, H5Dread_chunk) and decoded here (shuffle, deflate, LZF) when the file's filters
 * allow, kept in the reader's chunk cache (h5ml_reader_set_cache), on
 * h5ml_reader_set_threads threads; rows of uncompressed chunks are copied from the file. Files of other layouts go through HDF5. ERR_RANGE for an index outside [0, N).
 * Thread-safe: several threads may call h5ml_reader_read_indices (and h5ml_reader_read,
 * h5ml_reader_atoms_of) on one open reader at once. */
H5ML_API int h5ml_reader_read_indices(h5ml_reader *r, const int64_t *idx, int64_t n, const h5ml_frames *out);

/* Total atoms of structures idx[0..n) (ERR_RANGE for an index outside [0, N)). */
H5ML_API int h5ml_reader_atoms_of(h5ml_reader *r, const int64_t *idx, int64_t n, int64_t *atoms);

/* Threads for h5ml_reader_read_indices; 0 (default) is one per core, 1 reads on the calling
 * thread only. May be set any time. */
H5ML_API int h5ml_reader_set_threads(h5ml_reader *r, int threads);

/* One structure with its own storage, valid until the next call on the reader or close. */
typedef struct h5ml_frame {
    int64_t index;
    int64_t natoms;
    const int64_t *numbers;
    const double *positions;   /* natoms x 3 */
    double cell[9];
    uint8_t pbc[3];
    double energy;
    const float *forces;       /* natoms x 3 */
    int has_stress;
    double stress[6];
    const char *info_json;     /* NULL if the structure has no metadata */
} h5ml_frame;

/* Reads structure i (ERR_RANGE: "Index 7 out of range [0, 5)"). */
H5ML_API int h5ml_reader_get(h5ml_reader *r, int64_t i, h5ml_frame *out);

/* Per-structure metadata of structure i as a newly allocated JSON string (free with
 * h5ml_free), or *json = NULL when it has none. */
H5ML_API int h5ml_reader_info(h5ml_reader *r, int64_t i, char **json);

/* All /metadata attributes as one JSON object, newly allocated (h5ml_free). Numeric arrays
 * become JSON arrays, strings holding JSON stay strings. */
H5ML_API int h5ml_reader_metadata(h5ml_reader *r, char **json);

/* ======================================================================================
 * 4. Extended XYZ
 * ====================================================================================== */

typedef struct h5ml_xyz_reader h5ml_xyz_reader;

/* One parsed frame; storage belongs to the reader and is valid until the next call. */
typedef struct h5ml_xyz_frame {
    int64_t index;            /* 0-based frame number                                    */
    int64_t line;             /* 1-based line of the atom-count line                     */
    int64_t natoms;
    const int64_t *numbers;
    const double *positions;  /* natoms x 3                                              */
    double cell[9];           /* Lattice="..." as row vectors; zeros when absent          */
    uint8_t pbc[3];           /* pbc="T T F"; T T T when a Lattice is given without pbc  */
    int has_energy;           /* energy=, else free_energy=                              */
    double energy;
    int has_forces;           /* forces (or force) column                                */
    const double *forces;     /* natoms x 3                                              */
    int has_stress;           /* stress= 6 (Voigt) or 9 values, or virial= (-virial/V)   */
    double stress[6];
    const char *info_json;    /* other keys and per-atom columns as a JSON object, or NULL */
} h5ml_xyz_frame;

H5ML_API h5ml_xyz_reader *h5ml_xyz_reader_new(void);

/* Opens `path` for streaming ("-" is standard input). Memory stays bounded by the largest
 * frame whatever the file size. */
H5ML_API int h5ml_xyz_reader_open(h5ml_xyz_reader *x, const char *path);

/* Parses the next frame into *f. Returns H5ML_OK, H5ML_DONE at the clean end of the file,
 * or ERR_PARSE with "FILE: frame K (line L): what is wrong". */
H5ML_API int h5ml_xyz_reader_next(h5ml_xyz_reader *x, h5ml_xyz_frame *f);

/* Bytes consumed so far and total size (-1 if unknown, e.g. a pipe). */
H5ML_API void h5ml_xyz_reader_progress(const h5ml_xyz_reader *x, int64_t *done, int64_t *total);

H5ML_API void h5ml_xyz_reader_close(h5ml_xyz_reader *x);

typedef struct h5ml_xyz_writer h5ml_xyz_writer;

H5ML_API h5ml_xyz_writer *h5ml_xyz_writer_new(void);

/* Creates `path` ("-" is standard output). Numbers are written in the shortest form that
 * reads back to the same double, so ASE reads positions, cells, energies and stresses back
 * bit for bit (forces are the stored float32 values, also exact). */
H5ML_API int h5ml_xyz_writer_open(h5ml_xyz_writer *xw, const char *path);

/* Writes one frame in the layout ASE writes: Lattice (if the cell is not zero),
 * Properties=species:S:1:pos:R:3:forces:R:3[...], energy, stress (3x3), the metadata
 * keys, pbc. */
H5ML_API int h5ml_xyz_writer_write(h5ml_xyz_writer *xw, const h5ml_frame *f);

H5ML_API int h5ml_xyz_writer_close(h5ml_xyz_writer *xw);

/* ======================================================================================
 * 5. Whole-file operations
 * ====================================================================================== */

/* Streams every frame of the extended XYZ file `xyz_path` into the open writer `w`.
 * Malformed input or a rejected structure fails with the message on `w` (naming file,
 * frame and line) after h5ml_writer_rollback(): nothing of this input stays in the file.
 * A failed write (ERR_IO, the writer broken) is not rolled back: the file keeps what it
 * held at its last checkpoint, as after a crash. `progress` (may be NULL) is called with
 * bytes read (about every MiB); H5ML_PROGRESS_STOP stops after the last whole frame. */
H5ML_API int h5ml_convert_xyz(h5ml_writer *w, const char *xyz_path, h5ml_progress_fn progress,
                              void *user);

/* Writes structures [start, end) of the open reader `r` to `xyz_path`; end < 0 means N.
 * Errors are reported on `r`. */
H5ML_API int h5ml_export_xyz(h5ml_reader *r, const char *xyz_path, int64_t start, int64_t end,
                             h5ml_progress_fn progress, void *user);

/* Appends every structure (and its per-structure metadata) of reader `r` to writer `w`.
 * Errors are reported on `w`. Used by merge. */
H5ML_API int h5ml_writer_add_file(h5ml_writer *w, h5ml_reader *r, h5ml_progress_fn progress,
                                  void *user);

/* Problem reporter for h5ml_verify: called once per problem found. */
typedef void (*h5ml_report_fn)(void *user, const char *problem);

/* Every integrity check on the open reader's file: schema (done at open), splits, lengths,
 * structure_indices = 0..N-1, atomic numbers in 0..118, finite energies, forces and
 * stresses, zero stress where masked, num_structures and the statistics in /metadata agree
 * with the data. A file whose writer did not finalize it (killed, or still writing) may
 * have /metadata lagging behind the data: that is a warning on the handle, not a problem.
 * Returns H5ML_OK when clean, ERR_CHECK otherwise (the first problem is also the handle's
 * message). */
H5ML_API int h5ml_verify(h5ml_reader *r, h5ml_report_fn report, void *user);

/* Exact comparison of every dataset of two files (names, dtypes, shapes, values bit for
 * bit) and of num_structures. Returns H5ML_OK when equal, ERR_DIFFER with the first
 * difference as the message on `a` ("labels/energy[17]: -1.25 != -1.5"), or an error. */
H5ML_API int h5ml_diff(h5ml_reader *a, h5ml_reader *b);

/* Schema-aware summary computed from the data (not trusted from attributes). */
typedef struct h5ml_summary {
    int64_t structures, atoms;
    int64_t atoms_min, atoms_max;
    int64_t periodic, with_stress, with_info;
    int64_t element_counts[119];      /* index = atomic number */
    double energy_min, energy_max, energy_mean, energy_std;
    double energy_per_atom_mean, energy_per_atom_std;
    double force_max, force_rms;
    int64_t bytes_file, bytes_raw, bytes_stored;  /* file size; dataset bytes raw/stored */
    char compression[32];             /* "gzip", "lzf", "none" (of /labels/forces)        */
    int compression_level, shuffle;
} h5ml_summary;

H5ML_API int h5ml_summarize(h5ml_reader *r, h5ml_summary *out, h5ml_progress_fn progress,
                            void *user);

/* Chemical symbol of atomic number z (0 = "X"), NULL outside 0..118. Thread-safe. */
H5ML_API const char *h5ml_symbol(int z);

/* ======================================================================================
 * 6. Signal datasets
 *
 * Fixed-length signals (vibration records, say) with integer labels and optional JSON
 * metadata, in the layouts of the original CacheManager (format "h5ml-signals", "1.0"):
 *
 *   Flat file
 *     /signals          float32 (N, L)   chunked by whole signals; gzip 4 + shuffle by default
 *     /labels           int64   (N,)     unfiltered
 *     /metadata         string  (N,)     optional: one JSON object per signal (UTF-8)
 *     root attributes   cache_name, num_signals, signal_length, cached_at (ISO 8601),
 *                       compression ("gzip", "lzf", "none"), compression_level, format,
 *                       format_version, h5ml_version; class_names and num_classes when
 *                       the classes are named
 *
 *   Split file: groups /train, /val, /test, each with
 *     signals, labels, metadata (as above), indices (int64: each sample's index in the
 *     data set before splitting) and attribute num_samples;
 *     root attributes as above plus split_ratios (float64[3]), stratified (bool),
 *     random_seed (int64); a generated file adds num_classes, sampling_rate,
 *     generation_date and rng_seed.
 *
 * Files of the original Python tools (same names, h5py-made, attributes possibly missing)
 * are read too. h5ml writes signal caches in HDF5 1.8's format (checksummed object headers,
 * so that damage is reported rather than crashing HDF5 1.10), read by HDF5 1.8 and later.
 * ====================================================================================== */

typedef struct h5ml_sigwriter h5ml_sigwriter;

typedef enum h5ml_sig_layout {
    H5ML_SIG_FLAT = 0,  /* /signals, /labels, /metadata at the root */
    H5ML_SIG_SPLIT = 1  /* /train, /val, /test groups */
} h5ml_sig_layout;

/* The splits of a split file, by number. */
enum { H5ML_TRAIN = 0, H5ML_VAL = 1, H5ML_TEST = 2, H5ML_NO_SPLIT = -1 };

/* Signal writer options (h5ml_sigwriter_set, before create/append; 0 = default). */
typedef enum h5ml_sig_option {
    H5ML_SIG_COMPRESSION = 1,  /* h5ml_compression; default gzip                          */
    H5ML_SIG_LEVEL,            /* gzip level 1..9; default 4                               */
    H5ML_SIG_SHUFFLE,          /* 1 on (default), -1 off                                   */
    H5ML_SIG_CHUNK_ROWS,       /* signals per chunk; default: about 256 KiB of them, >= 1   */
    H5ML_SIG_THREADS,          /* compression threads; default one per core                */
    H5ML_SIG_ALLOW_NONFINITE,  /* 1: accept NaN/Inf samples; default -1: reject them       */
    H5ML_SIG_NUM_CLASSES,      /* labels must lie in [0, n); default 0: any label          */
    H5ML_SIG_PROFILE,          /* h5ml_profile (section 2, same precedence over
                                  COMPRESSION, LEVEL and SHUFFLE); default balanced       */
    H5ML_SIG__COUNT
} h5ml_sig_option;

H5ML_API h5ml_sigwriter *h5ml_sigwriter_new(void);
H5ML_API int h5ml_sigwriter_set(h5ml_sigwriter *w, h5ml_sig_option opt, int64_t value);

/* Creates a cache of signals of `length` samples. The file is built under a temporary name
 * (PATH.h5ml-PID.tmp) and appears at `path` (replacing a file there) only when finalized,
 * so a failed or interrupted run leaves no half-written file. `cache_name` may be NULL (the
 * file name without extension is used). Errors: ERR_ARG (length < 1), ERR_IO. */
H5ML_API int h5ml_sigwriter_create(h5ml_sigwriter *w, const char *path, h5ml_sig_layout layout, int64_t length,
                                   const char *cache_name);

/* Tells the writer, before h5ml_sigwriter_create, how many signals `split` (H5ML_NO_SPLIT for
 * a flat file) will hold. Chunking adapts: a part expected to hold fewer signals than a
 * default chunk gets chunks of exactly that many (once any count is given, a split not given
 * is expected empty). A hint only: adding more is allowed and correct, just in smaller
 * chunks. An explicit H5ML_SIG_CHUNK_ROWS wins. Errors: ERR_ARG, ERR_STATE (already open). */
H5ML_API int h5ml_sigwriter_expect(h5ml_sigwriter *w, int split, int64_t count);

/* Opens an existing flat cache to add signals to it (its compression and chunking kept);
 * a failure rolls the file back to its length at open. ERR_SCHEMA for a split file. */
H5ML_API int h5ml_sigwriter_append(h5ml_sigwriter *w, const char *path);

/* Adds `count` signals (count x length samples, row-major) with their labels to the flat
 * file (split = H5ML_NO_SPLIT) or to a split (H5ML_TRAIN, H5ML_VAL, H5ML_TEST). `meta` (may
 * be NULL; entries may be NULL) holds one JSON object per signal; `indices` (split files;
 * may be NULL = the running count) the signals' indices before splitting. Checked first,
 * nothing written on error (ERR_VALUE): "signal 3 of the batch: sample 17 is NaN", "label
 * 12 of signal 3 is outside the 11 classes [0, 11)", metadata that is not a JSON object. */
H5ML_API int h5ml_sigwriter_add(h5ml_sigwriter *w, int split, int64_t count, const float *signals,
                                const int64_t *labels, const char *const *meta, const int64_t *indices);
/* The same with float64 samples (converted to the stored float32). */
H5ML_API int h5ml_sigwriter_add_f64(h5ml_sigwriter *w, int split, int64_t count, const double *signals,
                                    const int64_t *labels, const char *const *meta, const int64_t *indices);

/* Root attributes written at finalize (a key set twice keeps the last value; h5ml's own
 * names such as num_signals are refused with ERR_ARG unless the layout defines them as
 * caller-set: split_ratios, stratified, random_seed, num_classes, sampling_rate,
 * generation_date, rng_seed, cache_name). */
H5ML_API int h5ml_sigwriter_attr_string(h5ml_sigwriter *w, const char *key, const char *value);
H5ML_API int h5ml_sigwriter_attr_int(h5ml_sigwriter *w, const char *key, int64_t value);
H5ML_API int h5ml_sigwriter_attr_double(h5ml_sigwriter *w, const char *key, double value);
H5ML_API int h5ml_sigwriter_attr_bool(h5ml_sigwriter *w, const char *key, int value);
H5ML_API int h5ml_sigwriter_attr_doubles(h5ml_sigwriter *w, const char *key, const double *v, size_t n);
/* Names of the classes (label k is names[k]): the class_names attribute, and num_classes. */
H5ML_API int h5ml_sigwriter_class_names(h5ml_sigwriter *w, const char *const *names, int n);

/* Writes everything, the attributes (num_signals, num_samples per split, ...) and moves
 * the file into place. A second call only warns. */
H5ML_API int h5ml_sigwriter_finalize(h5ml_sigwriter *w);
/* Discards the file being made (or cuts an appended file back). */
H5ML_API int h5ml_sigwriter_rollback(h5ml_sigwriter *w);
/* Finalizes if needed, closes, frees. NULL is a no-op. */
H5ML_API int h5ml_sigwriter_close(h5ml_sigwriter *w);

typedef struct h5ml_sigwriter_stats {
    int64_t count[3];   /* signals per split (count[0] for a flat file) */
    int64_t total;
    int64_t length;
    int64_t failed;     /* nonzero once a write failed (a full disk, an I/O error: ERR_IO
                           "PATH: cannot write: REASON"): from then on nothing is written,
                           the file is never finalized, a new one is removed at close */
} h5ml_sigwriter_stats;
H5ML_API void h5ml_sigwriter_get_stats(const h5ml_sigwriter *w, h5ml_sigwriter_stats *out);

typedef struct h5ml_sigreader h5ml_sigreader;

/* Reader options (h5ml_sigreader_set, before or after open). */
typedef enum h5ml_sigr_option {
    H5ML_SIGR_CACHE = 1,   /* LRU cache of decoded signals, capacity in signals; default 0 */
    H5ML_SIGR_PREFETCH,    /* read this many consecutive signals at once and keep them
                              (chunked prefetch); default 0 = off                           */
    H5ML_SIGR_THREADS,     /* decompression threads for batch reads; default one per core  */
    H5ML_SIGR__COUNT
} h5ml_sigr_option;

H5ML_API h5ml_sigreader *h5ml_sigreader_new(void);
H5ML_API int h5ml_sigreader_set(h5ml_sigreader *r, h5ml_sigr_option opt, int64_t value);

/* Opens `path` and the split `split` ("train", "val", "test"; NULL or "" for a flat file).
 * Errors: ERR_IO / ERR_SCHEMA naming the file, ERR_NOTFOUND "Split 'X' not found.
 * Available: ['train', 'val', 'test']" (the file's top-level names), ERR_ARG "FILE is split
 * into train, val, test: name one" when split is NULL on a split file. Reopening on an open
 * handle closes the previous file. A handle used in a forked child reopens the file there
 * (HDF5 state is never shared across a fork). */
H5ML_API int h5ml_sigreader_open(h5ml_sigreader *r, const char *path, const char *split);
H5ML_API void h5ml_sigreader_close(h5ml_sigreader *r);

H5ML_API int64_t h5ml_sigreader_count(const h5ml_sigreader *r);   /* N of the open split */
H5ML_API int64_t h5ml_sigreader_length(const h5ml_sigreader *r);  /* L */
/* The layout of the open file, and for a split file the number of signals in each split
 * (-1 for a split the file does not have). */
H5ML_API int h5ml_sigreader_layout(const h5ml_sigreader *r, int64_t split_counts[3]);

/* Signal i into out[0..L) and its label into *label (either may be NULL). ERR_RANGE
 * "Index 7 out of range [0, 5)". */
H5ML_API int h5ml_sigreader_get(h5ml_sigreader *r, int64_t i, float *out, int64_t *label);
/* Signals idx[0..n) in any order (repeats allowed) into out (n x L) and labels (n; either may
 * be NULL). Each chunk involved is read and decompressed once, several on worker threads. */
H5ML_API int h5ml_sigreader_read(h5ml_sigreader *r, const int64_t *idx, int64_t n, float *out, int64_t *labels);
/* Signals [start, start+count). */
H5ML_API int h5ml_sigreader_read_range(h5ml_sigreader *r, int64_t start, int64_t count, float *out,
                                       int64_t *labels);
/* All N labels; all N indices before splitting (0..N-1 for a flat file). */
H5ML_API int h5ml_sigreader_labels(h5ml_sigreader *r, int64_t *out);
H5ML_API int h5ml_sigreader_indices(h5ml_sigreader *r, int64_t *out);
/* Whether the open split has per-signal metadata; signal i's metadata as a new JSON string
 * (h5ml_free), or *json = NULL when it has none. */
H5ML_API int h5ml_sigreader_has_metadata(const h5ml_sigreader *r);
H5ML_API int h5ml_sigreader_metadata(h5ml_sigreader *r, int64_t i, char **json);
/* The root attributes as one JSON object (h5ml_free). */
H5ML_API int h5ml_sigreader_attrs(h5ml_sigreader *r, char **json);

/* Cache counters of the reader (hits and misses of the LRU and prefetch block). */
typedef struct h5ml_sigreader_stats { int64_t hits, misses, chunks_read; } h5ml_sigreader_stats;
H5ML_API void h5ml_sigreader_get_stats(const h5ml_sigreader *r, h5ml_sigreader_stats *out);

/* ---- whole-file operations on signal caches ---- */

/* The vibration simulator: a rotating machine at a nominal speed (+-10 % per signal) with
 * the signature of one of the 11 fault classes (labels 0..10: sain, desalignement,
 * desequilibre, jeu, lubrification, cavitation, usure, oilwhirl, mixed_misalign_imbalance,
 * mixed_wear_lube, mixed_cavit_jeu) and noise. Every signal is a function of (seed, class,
 * index) only. */
typedef struct h5ml_siggen_options {
    int64_t per_class;  /* signals per class; default 100                        */
    int64_t length;     /* samples per signal; default 102400 (5 s at 20480 Hz)   */
    double rate;        /* sampling rate in Hz; default 20480                     */
    double speed_hz;    /* nominal shaft speed in Hz; default 60                  */
    uint64_t seed;      /* generator and split seed, used as given (0 is a seed too;
                           a NULL options pointer means 42, the command line's default) */
    double ratios[3];   /* train/val/test; default 0.7/0.15/0.15 (all 0 = default) */
} h5ml_siggen_options;

/* Writes a generated split file (stratified) through `w` (options set, not yet created):
 * signals, labels, per-signal metadata {fault, label, severity, speed_hz, speed_rpm, load,
 * seed, index}, and the generator's attributes. Memory stays bounded by a few signals per
 * thread. `progress` gets signals written of the total. */
H5ML_API int h5ml_signals_generate(h5ml_sigwriter *w, const char *path, const h5ml_siggen_options *o,
                                   h5ml_progress_fn progress, void *user);

typedef struct h5ml_import_options {
    const char *var;    /* variable holding the signal; NULL: the largest real numeric vector */
    int truncate;       /* unequal lengths: cut every signal to the shortest           */
    int pad;            /* unequal lengths: pad every signal with zeros to the longest */
    int flat;           /* write a flat cache instead of a split one                   */
    int no_stratify;    /* split without stratifying                                   */
    uint64_t seed;      /* split seed, used as given (the command line's default is 42) */
    double ratios[3];   /* default 0.7/0.15/0.15                                       */
} h5ml_import_options;

/* Imports a directory of MATLAB files, one sub-directory per class (the SPEC's fault names
 * give their labels; other names are numbered in sorted order), .mat v4/v5/v7.3 read with
 * libmatio. Unequal lengths are an error naming both files unless truncate or pad. */
H5ML_API int h5ml_signals_import(h5ml_sigwriter *w, const char *dir, const char *path,
                                 const h5ml_import_options *o, h5ml_progress_fn progress, void *user);

/* Splits the flat cache `in` into the split file `out`: ratios summing to 1, stratified by
 * label or not, reproducible from `seed` on every machine. Each split keeps its signals'
 * metadata and original indices. */
H5ML_API int h5ml_signals_split(h5ml_sigwriter *w, const char *in, const char *out, const double ratios[3],
                                int stratify, uint64_t seed, h5ml_progress_fn progress, void *user);

/* Every integrity check of a signal file (all splits): names, dtypes and shapes, lengths
 * that agree, num_signals / num_samples attributes, finite samples, labels within
 * num_classes, metadata that parses as JSON objects, indices forming a permutation of
 * 0..num_signals-1 across the splits. `r` need not be open; problems are reported as for
 * h5ml_verify. Returns H5ML_OK, ERR_CHECK, or an error. */
H5ML_API int h5ml_signals_verify(h5ml_sigreader *r, const char *path, h5ml_report_fn report, void *user);

/* Summary of a signal file computed from the data (all splits). */
typedef struct h5ml_sigsummary {
    int layout;                     /* H5ML_SIG_FLAT or H5ML_SIG_SPLIT                      */
    int64_t length, total;          /* signal length, signals in the file                  */
    int64_t count[3];               /* signals per split (count[0]: flat file); -1 absent  */
    int64_t class_counts[3][256];   /* per split, per label 0..255                         */
    int64_t other_labels[3];        /* labels outside 0..255                               */
    int64_t num_classes;            /* the num_classes attribute, else 1 + the largest label */
    double min, max, mean, std, rms;/* over every sample of every signal                   */
    int64_t nonfinite;              /* NaN or Inf samples                                  */
    int has_metadata;
    int64_t bytes_file, bytes_raw, bytes_stored; /* file size; signals raw / stored       */
    char compression[16];           /* of the signals: "gzip", "lzf", "none", or "other"  */
    int compression_level, shuffle;
} h5ml_sigsummary;

/* Reads every signal of `path` (in blocks, bounded memory) and fills *out. `r` need not be
 * open; errors are reported on it. `progress` gets signals read of the total. */
H5ML_API int h5ml_signals_summarize(h5ml_sigreader *r, const char *path, h5ml_sigsummary *out,
                                    h5ml_progress_fn progress, void *user);

/* The split of h5ml_signals_split for labels in memory: order[s] (allocated; free each with
 * h5ml_free) receives the original indices of split s (0 train, 1 val, 2 test) in the order
 * a split file stores them, count[s] their number. Same algorithm and seed semantics, so the
 * same labels, ratios and seed give the same assignment as the command line. Returns H5ML_OK
 * or ERR_VALUE / ERR_NOMEM with the message in msg (msglen bytes; may be NULL). Thread-safe. */
H5ML_API int h5ml_split_indices(const int64_t *labels, int64_t n, const double ratios[3], int stratify, uint64_t seed,
                                int64_t *order[3], int64_t count[3], char *msg, size_t msglen);

/* Whether `path` holds a signal cache (flat or split) rather than an atomistic dataset. */
H5ML_API int h5ml_is_signal_file(const char *path);

/* Exact comparison of every dataset and of the count attributes of two HDF5 files of any
 * layout; the first difference is the message on `r` (which need not be open). */
H5ML_API int h5ml_diff_files(h5ml_sigreader *r, const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif /* H5ML_H */
