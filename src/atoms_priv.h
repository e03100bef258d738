/* Internal interface between the atomistic reader, writer and whole-file operations. */
#ifndef H5ML_ATOMS_PRIV_H
#define H5ML_ATOMS_PRIV_H

#include "internal.h"

/* Opens like h5ml_reader_open, but a tail left by a killed writer (datasets longer than the
 * consistent prefix) is tolerated: the reader shows the prefix, *dropped tells how many
 * structures the longest per-structure dataset had beyond it. */
int h5ml__reader_open_recover(h5ml_reader *r, const char *path, int64_t *dropped);
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

#endif
