/* Internal interface between the atomistic reader, writer and whole-file operations. */
#ifndef H5ML_ATOMS_PRIV_H
#define H5ML_ATOMS_PRIV_H

#include "internal.h"

/* Opens like h5ml_reader_open, but a tail left by a killed writer (datasets longer than the
 * consistent prefix) is tolerated: the reader shows the prefix, *dropped tells how many
 * structures the longest per-structure dataset had beyond it. */
int h5ml__reader_open_recover(h5ml_reader *r, const char *path, int64_t *dropped);
/* Whether a write of w failed (h5ml.h, h5ml_writer_checkpoint): its file must not be rolled
 * back or finalized. */
bool h5ml__writer_broken(const h5ml_writer *w);
/* Statistics of the whole file: from /metadata when `trust_attrs` and they are complete and
 * agree with the data length, otherwise computed from the data. */
int h5ml__reader_stats(h5ml_reader *r, h5ml_stats *st, bool trust_attrs);
/* Scans all structures in blocks, accumulating statistics. */
int h5ml__reader_scan(h5ml_reader *r, h5ml_stats *st, h5ml_progress_fn progress, void *user);
hid_t h5ml__reader_file(const h5ml_reader *r);
hid_t h5ml__reader_dset(const h5ml_reader *r, int col);
hid_t h5ml__reader_info_dset(const h5ml_reader *r);
const int64_t *h5ml__reader_splits(const h5ml_reader *r);
/* Structures of an unfinished tail (file not finalized by its writer) that the open ignored. */
int64_t h5ml__reader_tail(const h5ml_reader *r);

/* ---- direct reads (atoms_direct.c) ---- */
typedef struct h5ml_direct h5ml_direct;
/* The direct-read state of an open file's datasets (NULL if the file's driver has no file
 * descriptor); budget: bytes of decoded chunks kept. */
h5ml_direct *h5ml__direct_open(hid_t file, const hid_t dset[COL_COUNT], int64_t budget);
void h5ml__direct_close(h5ml_direct *d);
void h5ml__direct_set_threads(h5ml_direct *d, int threads);
/* Whether every field `o` asks for can be read directly. */
bool h5ml__direct_covers(const h5ml_direct *d, const h5ml_frames *o);
/* Structures idx[0..n) (valid) into o, one after the other; 0, or -1 with a reason. */
int h5ml__direct_read(h5ml_direct *d, const hid_t dset[COL_COUNT], const int64_t *splits, const int64_t *idx, int64_t n,
                      const h5ml_frames *o, char *why, size_t whylen);

#endif
