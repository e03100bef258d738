/* Whole-file operations shared by the command line and the Python module: convert, export,
 * merge, verify, diff and summary. */
#define _GNU_SOURCE
#include "atoms_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { BLOCK = 4096 };

/* ---- block reads ------------------------------------------------------------------------- */

typedef struct block {
    int64_t start, count, atoms, cap_atoms;
    int64_t natoms[BLOCK];
    int64_t *numbers;
    double *positions;
    float *forces;
    double cells[9 * BLOCK], energies[BLOCK], stress[6 * BLOCK];
    uint8_t pbc[3 * BLOCK], mask[BLOCK];
    char *info[BLOCK];
} block;

static void block_free_info(block *b)
{
    for (int64_t i = 0; i < b->count; i++) {
        free(b->info[i]);
        b->info[i] = NULL;
    }
}

static void block_free(block *b)
{
    block_free_info(b);
    free(b->numbers);
    free(b->positions);
    free(b->forces);
    free(b);
}

static int read_info_block(h5ml_reader *r, block *b)
{
    hid_t ds = h5ml__reader_info_dset(r);
    if (ds < 0) return 0;
    char **v = calloc((size_t)b->count, sizeof *v);
    hid_t t = h5ml__vlen_str_type();
    int rc = v ? h5ml__read_rows(ds, t, b->start, b->count, v) : -1;
    if (rc == 0) {
        for (int64_t i = 0; i < b->count; i++) {
            b->info[i] = v[i] && *v[i] ? strdup(v[i]) : NULL;
            if (v[i]) H5free_memory(v[i]);
        }
    }
    H5Tclose(t);
    free(v);
    return rc;
}

/* Reads structures [start, start+count) (count <= BLOCK) with their metadata. */
static int block_read(h5ml_reader *r, block *b, int64_t start, int64_t count)
{
    block_free_info(b);
    int64_t na;
    int rc = h5ml_reader_range_atoms(r, start, count, &na);
    if (rc) return rc;
    if (na > b->cap_atoms) {
        size_t cap = (size_t)na;
        if (h5ml__resize(&b->numbers, cap, sizeof *b->numbers) || h5ml__resize(&b->positions, 3 * cap, sizeof *b->positions) ||
            h5ml__resize(&b->forces, 3 * cap, sizeof *b->forces))
            return h5ml__fail((h5ml_base *)r, H5ML_ERR_NOMEM, "out of memory");
        b->cap_atoms = na;
    }
    b->start = start;
    b->count = count;
    b->atoms = na;
    h5ml_frames o = { b->natoms, b->numbers, b->positions, b->cells, b->pbc, b->energies, b->forces, b->stress, b->mask };
    rc = h5ml_reader_read(r, start, count, &o);
    if (rc) return rc;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    if (read_info_block(r, b) < 0)
        rc = h5ml__fail_h5((h5ml_base *)r, H5ML_ERR_HDF5, "%s: cannot read /%s", h5ml_reader_path(r), H5ML_INFO_PATH);
    h5ml__h5_restore(&q);
    return rc;
}

static block *block_new(void) { return calloc(1, sizeof(block)); }

/* ---- convert ------------------------------------------------------------------------------ */

/* What a progress callback's return value asks for (h5ml.h, h5ml_progress_fn). */
static int stop_asked(int answer, h5ml_base *b)
{
    if (answer == 0) return H5ML_OK;
    if (answer == H5ML_PROGRESS_STOP) return h5ml__fail(b, H5ML_ERR_INTERRUPTED, "interrupted");
    return h5ml__fail(b, H5ML_ERR_STATE, "cancelled");
}

static int convert_frames(h5ml_writer *w, h5ml_xyz_reader *x, const char *path, h5ml_progress_fn progress, void *user)
{
    h5ml_xyz_frame f;
    int64_t done, total, next_report = 0;
    for (;;) {
        int rc = h5ml_xyz_reader_next(x, &f);
        if (rc == H5ML_DONE) break;
        if (rc) return h5ml__copy_error((h5ml_base *)w, (h5ml_base *)x);
        if (!f.has_energy)
            return h5ml__fail((h5ml_base *)w, H5ML_ERR_PARSE,
                              "%s: frame %lld (line %lld): no energy (expected energy= or free_energy= on the comment line)",
                              path, (long long)f.index, (long long)f.line + 1);
        if (!f.has_forces)
            return h5ml__fail((h5ml_base *)w, H5ML_ERR_PARSE,
                              "%s: frame %lld (line %lld): no forces (expected a forces:R:3 column in Properties)", path,
                              (long long)f.index, (long long)f.line + 1);
        h5ml_structure s = {
            .natoms = f.natoms, .numbers = f.numbers, .positions = f.positions, .cell = f.cell, .pbc = f.pbc,
            .energy = f.energy, .forces = f.forces, .stress = f.has_stress ? f.stress : NULL, .stress_len = 6,
            .info_json = f.info_json,
        };
        rc = h5ml_writer_add(w, &s);
        if (rc) {
            /* the frame is to blame unless the output failed */
            if (!h5ml__writer_broken(w))
                h5ml__prefix((h5ml_base *)w, "%s: frame %lld (line %lld)", path, (long long)f.index, (long long)f.line);
            return rc;
        }
        h5ml_xyz_reader_progress(x, &done, &total);
        if (progress && done >= next_report) {
            next_report = done + (1 << 20);
            if ((rc = stop_asked(progress(user, done, total), (h5ml_base *)w)) != H5ML_OK) return rc;
        }
    }
    h5ml_xyz_reader_progress(x, &done, &total);
    if (progress) progress(user, done, total);
    return H5ML_OK;
}

int h5ml_convert_xyz(h5ml_writer *w, const char *xyz_path, h5ml_progress_fn progress, void *user)
{
    if (w == NULL) return H5ML_ERR_ARG;
    h5ml_xyz_reader *x = h5ml_xyz_reader_new();
    if (x == NULL) return h5ml__fail((h5ml_base *)w, H5ML_ERR_NOMEM, "out of memory");
    int rc = h5ml_xyz_reader_open(x, xyz_path);
    if (rc) h5ml__copy_error((h5ml_base *)w, (h5ml_base *)x);
    else rc = convert_frames(w, x, xyz_path, progress, user);
    h5ml_xyz_reader_close(x);
    /* Bad input writes nothing; a failed write leaves the file as a crash would (it holds its
     * last checkpoint), and an interruption keeps what was added for the caller to finalize. */
    if (rc && rc != H5ML_ERR_INTERRUPTED && !h5ml__writer_broken(w)) {
        int rb = h5ml_writer_rollback(w);
        (void)rb; /* the rollback keeps the original message unless it fails itself */
    }
    return rc;
}

/* ---- export and merge ---------------------------------------------------------------------- */

static void frame_at(const block *b, int64_t i, int64_t atom, h5ml_frame *f)
{
    memset(f, 0, sizeof *f);
    f->index = b->start + i;
    f->natoms = b->natoms[i];
    f->numbers = b->numbers + atom;
    f->positions = b->positions + 3 * atom;
    f->forces = b->forces + 3 * atom;
    memcpy(f->cell, b->cells + 9 * i, sizeof f->cell);
    memcpy(f->pbc, b->pbc + 3 * i, 3);
    f->energy = b->energies[i];
    f->has_stress = b->mask[i] != 0;
    memcpy(f->stress, b->stress + 6 * i, sizeof f->stress);
    f->info_json = b->info[i];
}

int h5ml_export_xyz(h5ml_reader *r, const char *xyz_path, int64_t start, int64_t end, h5ml_progress_fn progress, void *user)
{
    if (r == NULL) return H5ML_ERR_ARG;
    int64_t n = h5ml_reader_count(r);
    if (end < 0 || end > n) end = n;
    if (start < 0 || start > end)
        return h5ml__fail((h5ml_base *)r, H5ML_ERR_RANGE, "range %lld:%lld is outside the %lld structures of %s", (long long)start,
                          (long long)end, (long long)n, h5ml_reader_path(r));
    h5ml_xyz_writer *xw = h5ml_xyz_writer_new();
    block *b = block_new();
    int rc = (xw && b) ? h5ml_xyz_writer_open(xw, xyz_path) : H5ML_ERR_NOMEM;
    if (rc) h5ml__copy_error((h5ml_base *)r, xw ? (h5ml_base *)xw : (h5ml_base *)r);
    for (int64_t s = start; rc == H5ML_OK && s < end; s += BLOCK) {
        int64_t k = end - s < BLOCK ? end - s : BLOCK;
        if ((rc = block_read(r, b, s, k)) != H5ML_OK) break;
        int64_t atom = 0;
        for (int64_t i = 0; i < k && rc == H5ML_OK; i++) {
            h5ml_frame f;
            frame_at(b, i, atom, &f);
            if ((rc = h5ml_xyz_writer_write(xw, &f)) != H5ML_OK) h5ml__copy_error((h5ml_base *)r, (h5ml_base *)xw);
            atom += b->natoms[i];
        }
        if (rc == H5ML_OK && progress) rc = stop_asked(progress(user, s + k - start, end - start), (h5ml_base *)r);
    }
    if (xw && h5ml_xyz_writer_close(xw) != H5ML_OK && rc == H5ML_OK)
        rc = h5ml__fail((h5ml_base *)r, H5ML_ERR_IO, "%s: write error: %s", xyz_path, strerror(errno));
    if (b) block_free(b);
    if (rc && strcmp(xyz_path, "-") != 0) remove(xyz_path);
    return rc;
}

int h5ml_writer_add_file(h5ml_writer *w, h5ml_reader *r, h5ml_progress_fn progress, void *user)
{
    if (w == NULL || r == NULL) return H5ML_ERR_ARG;
    block *b = block_new();
    double *forces = NULL;
    int64_t fcap = 0;
    int rc = b ? H5ML_OK : h5ml__fail((h5ml_base *)w, H5ML_ERR_NOMEM, "out of memory");
    int64_t n = h5ml_reader_count(r);
    for (int64_t s = 0; rc == H5ML_OK && s < n; s += BLOCK) {
        int64_t k = n - s < BLOCK ? n - s : BLOCK;
        if ((rc = block_read(r, b, s, k)) != H5ML_OK) {
            h5ml__copy_error((h5ml_base *)w, (h5ml_base *)r);
            break;
        }
        if (b->atoms > fcap) {
            free(forces);
            fcap = b->atoms;
            forces = malloc(sizeof *forces * 3 * (size_t)fcap);
            if (forces == NULL) {
                rc = h5ml__fail((h5ml_base *)w, H5ML_ERR_NOMEM, "out of memory");
                break;
            }
        }
        for (int64_t i = 0; i < 3 * b->atoms; i++) forces[i] = b->forces[i];
        h5ml_batch batch = { k, b->natoms, b->numbers, b->positions, b->cells, b->pbc, b->energies, forces, b->stress, b->mask,
                             (const char *const *)b->info };
        if ((rc = h5ml_writer_add_batch(w, &batch)) != H5ML_OK)
            h5ml__prefix((h5ml_base *)w, "%s: structure %lld", h5ml_reader_path(r), (long long)s);
        else if (progress)
            rc = stop_asked(progress(user, s + k, n), (h5ml_base *)w);
    }
    free(forces);
    if (b) block_free(b);
    return rc;
}

/* ---- verify ------------------------------------------------------------------------------- */

typedef struct verifier {
    h5ml_reader *r;
    h5ml_report_fn report;
    void *user;
    int64_t problems;
} verifier;

static void problem(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(verifier *v, const char *fmt, ...)
{
    char msg[H5ML_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (v->problems++ == 0) h5ml__fail((h5ml_base *)v->r, H5ML_ERR_CHECK, "%s: %s", h5ml_reader_path(v->r), msg);
    if (v->report && v->problems <= 1000) v->report(v->user, msg);
}

static int verify_block(verifier *v, const block *b, const int64_t *indices)
{
    int64_t atom = 0;
    for (int64_t i = 0; i < b->count; i++) {
        int64_t s = b->start + i;
        if (indices[i] != s) problem(v, "labels/structure_indices[%lld] is %lld, expected %lld", (long long)s, (long long)indices[i], (long long)s);
        if (!isfinite(b->energies[i])) problem(v, "labels/energy[%lld] is %g (not finite)", (long long)s, b->energies[i]);
        for (int k = 0; k < 6; k++) {
            double x = b->stress[6 * i + k];
            if (!isfinite(x)) problem(v, "labels/stress[%lld] is not finite", (long long)s);
            else if (!b->mask[i] && x != 0) {
                problem(v, "labels/stress[%lld] is not zero although stress_mask is false", (long long)s);
                break;
            }
        }
        for (int64_t a = atom; a < atom + b->natoms[i]; a++) {
            if (b->numbers[a] < 0 || b->numbers[a] > 118)
                problem(v, "structures/atomic_numbers[%lld] is %lld (structure %lld), outside 0..118", (long long)a,
                        (long long)b->numbers[a], (long long)s);
            for (int k = 0; k < 3; k++) {
                if (!isfinite(b->forces[3 * a + k])) problem(v, "labels/forces[%lld] is not finite (structure %lld)", (long long)a, (long long)s);
                if (!isfinite(b->positions[3 * a + k]))
                    problem(v, "structures/positions[%lld] is not finite (structure %lld)", (long long)a, (long long)s);
            }
        }
        atom += b->natoms[i];
        if (v->problems > 1000) return -1;
    }
    return 0;
}

static bool close_enough(double a, double b, double rel)
{
    if (a == b || (isnan(a) && isnan(b))) return true; /* also equal infinities */
    return fabs(a - b) <= rel * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static void verify_metadata(verifier *v, const h5ml_stats *st)
{
    hid_t f = h5ml__reader_file(v->r);
    if (H5Lexists(f, "metadata", H5P_DEFAULT) <= 0) {
        problem(v, "no /metadata group");
        return;
    }
    hid_t g = H5Gopen2(f, "metadata", H5P_DEFAULT);
    int64_t n = -1, finalized = 1;
    if (h5ml__attr_get_i64(g, "finalized", &finalized) < 0) finalized = 1;
    if (h5ml__attr_get_i64(g, "num_structures", &n) < 0) {
        problem(v, "/metadata has no num_structures attribute");
    } else if (n < st->n && finalized == 0) {
        /* A writer was interrupted (or is still writing): its checkpoints store the data
         * before the attributes, so these lag behind. Valid data, stale counts. */
        h5ml__warn((h5ml_base *)v->r,
                   "%s was not finalized (its writer was interrupted or is still writing): /metadata describes the first "
                   "%lld of %lld structures; 'h5ml repair FILE' brings it up to date",
                   h5ml_reader_path(v->r), (long long)n, (long long)st->n);
        H5Gclose(g);
        return;
    } else if (n != st->n) {
        problem(v, "/metadata num_structures is %lld but the file holds %lld structures", (long long)n, (long long)st->n);
    }
    h5ml_stats a;
    if (H5Aexists(g, "energy_mean") > 0 && h5ml__stats_read(g, &a) == 0 && a.n == st->n) {
        if (a.atoms != st->atoms) problem(v, "/metadata num_atoms is %lld, the data has %lld", (long long)a.atoms, (long long)st->atoms);
        if (a.with_stress != st->with_stress) problem(v, "/metadata num_with_stress is %lld, the data has %lld", (long long)a.with_stress, (long long)st->with_stress);
        if (memcmp(a.element_counts, st->element_counts, sizeof a.element_counts) != 0)
            problem(v, "/metadata element_counts disagree with structures/atomic_numbers");
        struct { const char *name; double attr, data; } cmp[] = {
            { "energy_min", a.e_min, st->e_min }, { "energy_max", a.e_max, st->e_max },
            { "energy_mean", a.e_mean, st->e_mean },
            { "energy_std", h5ml__stats_std(a.e_m2, a.n), h5ml__stats_std(st->e_m2, st->n) },
            { "force_max", sqrt(a.f_max2), sqrt(st->f_max2) },
        };
        for (size_t k = 0; k < sizeof cmp / sizeof *cmp; k++)
            if (st->n > 0 && !close_enough(cmp[k].attr, cmp[k].data, 1e-6))
                problem(v, "/metadata %s is %.17g but the data gives %.17g", cmp[k].name, cmp[k].attr, cmp[k].data);
    }
    H5Gclose(g);
    H5Eclear2(H5E_DEFAULT);
}

int h5ml_verify(h5ml_reader *r, h5ml_report_fn report, void *user)
{
    if (r == NULL) return H5ML_ERR_ARG;
    if (h5ml__reader_file(r) < 0) return h5ml__fail((h5ml_base *)r, H5ML_ERR_STATE, "the reader is not open");
    verifier v = { r, report, user, 0 };
    block *b = block_new();
    int64_t *indices = malloc(sizeof *indices * BLOCK);
    h5ml_stats st;
    h5ml__stats_init(&st);
    int rc = (b && indices) ? H5ML_OK : h5ml__fail((h5ml_base *)r, H5ML_ERR_NOMEM, "out of memory");
    int64_t n = h5ml_reader_count(r);
    for (int64_t s = 0; rc == H5ML_OK && s < n; s += BLOCK) {
        int64_t k = n - s < BLOCK ? n - s : BLOCK;
        if ((rc = block_read(r, b, s, k)) != H5ML_OK) break;
        h5ml_h5quiet q;
        h5ml__h5_quiet(&q);
        if (h5ml__read_rows(h5ml__reader_dset(r, COL_INDICES), H5T_NATIVE_INT64, s, k, indices) < 0)
            rc = h5ml__fail_h5((h5ml_base *)r, H5ML_ERR_HDF5, "%s: cannot read /labels/structure_indices", h5ml_reader_path(r));
        h5ml__h5_restore(&q);
        if (rc) break;
        if (verify_block(&v, b, indices) < 0) break;
        int64_t atom = 0;
        for (int64_t i = 0; i < k; i++) {
            h5ml__stats_add(&st, b->natoms[i], b->numbers + atom, b->energies[i], NULL, b->forces + 3 * atom, b->mask[i], b->pbc + 3 * i);
            atom += b->natoms[i];
        }
    }
    if (rc == H5ML_OK && v.problems <= 1000 && st.n == n) {
        h5ml_h5quiet q;
        h5ml__h5_quiet(&q);
        verify_metadata(&v, &st);
        h5ml__h5_restore(&q);
    }
    if (b) block_free(b);
    free(indices);
    if (rc) return rc;
    if (v.problems) return H5ML_ERR_CHECK;
    return h5ml__ok((h5ml_base *)r);
}

/* ---- diff ---------------------------------------------------------------------------------- */

typedef struct names { char **v; size_t n, cap; } names;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    names *ns = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 32;
        char **p = realloc(ns->v, sizeof *p * cap);
        if (p == NULL) return -1;
        ns->v = p;
        ns->cap = cap;
    }
    ns->v[ns->n++] = strdup(name);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void names_free(names *ns)
{
    for (size_t i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
}

static int list_datasets(hid_t f, names *ns)
{
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, collect, ns) < 0) return -1;
    qsort(ns->v, ns->n, sizeof *ns->v, cmp_str);
    return 0;
}

static void format_value(char *out, size_t len, hid_t mt, const unsigned char *p)
{
    size_t sz = H5Tget_size(mt);
    H5T_class_t c = H5Tget_class(mt);
    if (c == H5T_FLOAT && sz == 8) snprintf(out, len, "%.17g", *(const double *)p);
    else if (c == H5T_FLOAT && sz == 4) snprintf(out, len, "%.9g", (double)*(const float *)p);
    else if ((c == H5T_INTEGER || c == H5T_ENUM) && sz == 8) snprintf(out, len, "%" PRId64, *(const int64_t *)p);
    else if ((c == H5T_INTEGER || c == H5T_ENUM) && sz == 4) snprintf(out, len, "%" PRId32, *(const int32_t *)p);
    else if ((c == H5T_INTEGER || c == H5T_ENUM) && sz == 1) snprintf(out, len, "%d", (int)*(const int8_t *)p);
    else snprintf(out, len, "<%zu bytes>", sz);
}

static void index_text(char *out, size_t len, const hsize_t *dims, int rank, hsize_t elem)
{
    hsize_t idx[8] = { 0 };
    for (int k = rank - 1; k >= 0; k--) {
        idx[k] = dims[k] ? elem % dims[k] : 0;
        elem = dims[k] ? elem / dims[k] : 0;
    }
    size_t n = 0;
    for (int k = 0; k < rank && n < len; k++) n += (size_t)snprintf(out + n, len - n, "%s%llu", k ? ", " : "", (unsigned long long)idx[k]);
}

/* Compares one dataset present in both files. Returns 0 equal, 1 different (message set), -1 error. */
static int diff_dataset(h5ml_base *base, hid_t fa, hid_t fb, const char *name)
{
    hid_t da = H5Dopen2(fa, name, H5P_DEFAULT), db = H5Dopen2(fb, name, H5P_DEFAULT);
    hid_t ta = H5Dget_type(da), tb = H5Dget_type(db);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    int rank = H5Sget_simple_extent_ndims(sa), rc = 0;
    /* Room for any rank HDF5 allows: the rank is checked below, after these calls (a rank
     * above 8 overflowed arrays of 8). */
    hsize_t dims[H5S_MAX_RANK] = { 0 }, dimsb[H5S_MAX_RANK] = { 0 };
    H5Sget_simple_extent_dims(sa, dims, NULL);
    H5Sget_simple_extent_dims(sb, dimsb, NULL);
    hid_t mt = H5I_INVALID_HID;
    if (da < 0 || db < 0 || rank < 0 || rank > 8) {
        rc = -1;
        h5ml__fail_h5(base, H5ML_ERR_HDF5, "cannot open /%s", name);
    } else if (!h5ml__lzf_params_ok(da) || !h5ml__lzf_params_ok(db)) {
        rc = -1;
        h5ml__fail(base, H5ML_ERR_SCHEMA, "/%s: the chunk size its LZF filter records is not its chunks' (corrupt file?)", name);
    } else if (H5Tequal(ta, tb) <= 0) {
        rc = 1;
        h5ml__fail(base, H5ML_ERR_DIFFER, "/%s: dtypes differ", name);
    } else if (rank != H5Sget_simple_extent_ndims(sb) || memcmp(dims, dimsb, sizeof dims) != 0) {
        char x[64], y[64];
        index_text(x, sizeof x, dims, rank, 0);
        rc = 1;
        size_t nx = 0, ny = 0;
        for (int k = 0; k < rank; k++) nx += (size_t)snprintf(x + nx, sizeof x - nx, "%s%llu", k ? ", " : "", (unsigned long long)dims[k]);
        for (int k = 0; k < H5Sget_simple_extent_ndims(sb); k++)
            ny += (size_t)snprintf(y + ny, sizeof y - ny, "%s%llu", k ? ", " : "", (unsigned long long)dimsb[k]);
        h5ml__fail(base, H5ML_ERR_DIFFER, "/%s: shapes differ: (%s) != (%s)", name, x, y);
    }
    if (rc == 0) {
        bool vstr = H5Tget_class(ta) == H5T_STRING && H5Tis_variable_str(ta) > 0;
        mt = vstr ? h5ml__vlen_str_type() : H5Tget_native_type(ta, H5T_DIR_ASCEND);
        size_t esz = H5Tget_size(mt);
        hsize_t row = 1, fsa = 0, fsb = 0;
        bool big = esz == 0;
        for (int k = 1; k < rank; k++) {
            big |= dims[k] != 0 && row > UINT64_MAX / esz / dims[k];
            row *= dims[k];
        }
        /* Shapes are believed as far as the files' bytes can hold them (fuzz: a dataset of a
         * hostile file claiming billions of rows kept the comparison reading fill values). */
        H5Fget_filesize(fa, &fsa);
        H5Fget_filesize(fb, &fsb);
        if (big || !h5ml__rows_plausible(da, rank ? (int64_t)dims[0] : 1, esz * row, (int64_t)fsa) ||
            !h5ml__rows_plausible(db, rank ? (int64_t)dims[0] : 1, esz * row, (int64_t)fsb)) {
            rc = -1;
            h5ml__fail(base, H5ML_ERR_SCHEMA, "/%s: its shape claims more data than the file holds (corrupt file?)", name);
        }
    }
    if (rc == 0) {
        bool vstr = H5Tget_class(ta) == H5T_STRING && H5Tis_variable_str(ta) > 0;
        size_t esz = H5Tget_size(mt);
        hsize_t row = 1;
        for (int k = 1; k < rank; k++) row *= dims[k];
        hsize_t rows = rank ? dims[0] : 1, per = (4u << 20) / (esz * (row ? row : 1)) + 1;
        unsigned char *ba = malloc(esz * row * per + 1), *bb = malloc(esz * row * per + 1);
        for (hsize_t r0 = 0; rc == 0 && r0 < rows; r0 += per) {
            hsize_t k = rows - r0 < per ? rows - r0 : per;
            if (!ba || !bb || (rank && (h5ml__read_rows(da, mt, (int64_t)r0, (int64_t)k, ba) < 0 ||
                                        h5ml__read_rows(db, mt, (int64_t)r0, (int64_t)k, bb) < 0)) ||
                (!rank && (H5Dread(da, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) < 0 || H5Dread(db, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) < 0))) {
                rc = -1;
                h5ml__fail_h5(base, H5ML_ERR_HDF5, "cannot read /%s", name);
                break;
            }
            hsize_t count = k * row;
            for (hsize_t e = 0; e < count; e++) {
                bool same;
                if (vstr) {
                    const char *x = ((char **)ba)[e], *y = ((char **)bb)[e];
                    same = strcmp(x ? x : "", y ? y : "") == 0;
                } else {
                    same = memcmp(ba + e * esz, bb + e * esz, esz) == 0;
                }
                if (!same) {
                    char at[96], va[64] = "", vb[64] = "";
                    index_text(at, sizeof at, dims, rank, r0 * row + e);
                    if (vstr) {
                        snprintf(va, sizeof va, "'%.24s'", ((char **)ba)[e] ? ((char **)ba)[e] : "");
                        snprintf(vb, sizeof vb, "'%.24s'", ((char **)bb)[e] ? ((char **)bb)[e] : "");
                    } else {
                        format_value(va, sizeof va, mt, ba + e * esz);
                        format_value(vb, sizeof vb, mt, bb + e * esz);
                    }
                    h5ml__fail(base, H5ML_ERR_DIFFER, "/%s[%s]: %s != %s", name, at, va, vb);
                    rc = 1;
                    break;
                }
            }
            if (vstr) {
                hsize_t cnt = count;
                hid_t ms = H5Screate_simple(1, &cnt, NULL);
                H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, ba);
                H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, bb);
                H5Sclose(ms);
            }
        }
        free(ba);
        free(bb);
    }
    if (mt >= 0) H5Tclose(mt);
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    if (da >= 0) H5Dclose(da);
    if (db >= 0) H5Dclose(db);
    return rc;
}

int h5ml__diff_datasets(h5ml_base *base, hid_t fa, hid_t fb, const char *pa, const char *pb)
{
    names na = { 0 }, nb = { 0 };
    int rc = H5ML_OK;
    if (list_datasets(fa, &na) < 0 || list_datasets(fb, &nb) < 0) rc = h5ml__fail_h5(base, H5ML_ERR_HDF5, "cannot list datasets");
    size_t i = 0, j = 0;
    while (rc == H5ML_OK && (i < na.n || j < nb.n)) {
        int c = i == na.n ? 1 : j == nb.n ? -1 : strcmp(na.v[i], nb.v[j]);
        if (c < 0) rc = h5ml__fail(base, H5ML_ERR_DIFFER, "/%s: only in %s", na.v[i], pa);
        else if (c > 0) rc = h5ml__fail(base, H5ML_ERR_DIFFER, "/%s: only in %s", nb.v[j], pb);
        else {
            int d = diff_dataset(base, fa, fb, na.v[i]);
            if (d != 0) rc = d < 0 ? base->code : H5ML_ERR_DIFFER;
            i++;
            j++;
        }
    }
    names_free(&na);
    names_free(&nb);
    return rc;
}

int h5ml_diff(h5ml_reader *a, h5ml_reader *b)
{
    if (a == NULL || b == NULL) return H5ML_ERR_ARG;
    hid_t fa = h5ml__reader_file(a), fb = h5ml__reader_file(b);
    if (fa < 0 || fb < 0) return h5ml__fail((h5ml_base *)a, H5ML_ERR_STATE, "both readers must be open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = h5ml__diff_datasets((h5ml_base *)a, fa, fb, h5ml_reader_path(a), h5ml_reader_path(b));
    if (rc == H5ML_OK) {
        int64_t x = -1, y = -1;
        hid_t ga = H5Lexists(fa, "metadata", H5P_DEFAULT) > 0 ? H5Gopen2(fa, "metadata", H5P_DEFAULT) : -1;
        hid_t gb = H5Lexists(fb, "metadata", H5P_DEFAULT) > 0 ? H5Gopen2(fb, "metadata", H5P_DEFAULT) : -1;
        if (ga >= 0) h5ml__attr_get_i64(ga, "num_structures", &x);
        if (gb >= 0) h5ml__attr_get_i64(gb, "num_structures", &y);
        if (ga >= 0) H5Gclose(ga);
        if (gb >= 0) H5Gclose(gb);
        H5Eclear2(H5E_DEFAULT);
        if (x != y) rc = h5ml__fail((h5ml_base *)a, H5ML_ERR_DIFFER, "/metadata num_structures: %lld != %lld", (long long)x, (long long)y);
    }
    h5ml__h5_restore(&q);
    if (rc == H5ML_OK) h5ml__ok((h5ml_base *)a);
    return rc;
}

/* ---- summary -------------------------------------------------------------------------------- */

static void storage(hid_t f, const char *path, int64_t *raw, int64_t *stored)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    size_t sz = H5Tis_variable_str(t) > 0 ? 0 : H5Tget_size(t);
    *raw += (int64_t)np * (int64_t)sz;
    *stored += sz ? (int64_t)H5Dget_storage_size(d) : 0;
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
}

static void describe_filters(hid_t d, h5ml_summary *out)
{
    hid_t dcpl = H5Dget_create_plist(d);
    snprintf(out->compression, sizeof out->compression, "none");
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE) out->shuffle = 1;
        else if (id == H5Z_FILTER_DEFLATE) {
            snprintf(out->compression, sizeof out->compression, "gzip");
            out->compression_level = ncd ? (int)cd[0] : 0;
        } else if (id == H5ML_FILTER_LZF) snprintf(out->compression, sizeof out->compression, "lzf");
        else snprintf(out->compression, sizeof out->compression, "filter %d", (int)id);
    }
    H5Pclose(dcpl);
}

int h5ml_summarize(h5ml_reader *r, h5ml_summary *out, h5ml_progress_fn progress, void *user)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (h5ml__reader_file(r) < 0) return h5ml__fail((h5ml_base *)r, H5ML_ERR_STATE, "the reader is not open");
    h5ml_stats st;
    int rc = h5ml__reader_scan(r, &st, progress, user);
    if (rc) return rc;
    const int64_t *sp = h5ml__reader_splits(r);
    out->structures = st.n;
    out->atoms = st.atoms;
    out->atoms_min = st.n ? INT64_MAX : 0;
    for (int64_t i = 0; i < st.n; i++) {
        int64_t k = sp[i + 1] - sp[i];
        if (k < out->atoms_min) out->atoms_min = k;
        if (k > out->atoms_max) out->atoms_max = k;
    }
    out->periodic = st.periodic;
    out->with_stress = st.with_stress;
    memcpy(out->element_counts, st.element_counts, sizeof st.element_counts);
    out->energy_min = st.n ? st.e_min : NAN;
    out->energy_max = st.n ? st.e_max : NAN;
    out->energy_mean = st.n ? st.e_mean : NAN;
    out->energy_std = h5ml__stats_std(st.e_m2, st.n);
    out->energy_per_atom_mean = st.n ? st.epa_mean : NAN;
    out->energy_per_atom_std = h5ml__stats_std(st.epa_m2, st.n);
    out->force_max = st.atoms ? sqrt(st.f_max2) : NAN;
    out->force_rms = st.atoms ? sqrt(st.f_sumsq / (3.0 * (double)st.atoms)) : NAN;
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    hid_t f = h5ml__reader_file(r);
    for (int c = 0; c < COL_COUNT; c++) storage(f, h5ml__cols[c].path, &out->bytes_raw, &out->bytes_stored);
    describe_filters(h5ml__reader_dset(r, COL_FORCES), out);
    hid_t info = h5ml__reader_info_dset(r);
    if (info >= 0) {
        block *b = block_new();
        for (int64_t s = 0; b && s < st.n; s += BLOCK) {
            int64_t k = st.n - s < BLOCK ? st.n - s : BLOCK;
            b->start = s;
            b->count = k;
            if (read_info_block(r, b) < 0) break;
            for (int64_t i = 0; i < k; i++) out->with_info += b->info[i] != NULL;
            block_free_info(b);
        }
        if (b) block_free(b);
    }
    h5ml__h5_restore(&q);
    struct stat sb;
    if (stat(h5ml_reader_path(r), &sb) == 0) out->bytes_file = (int64_t)sb.st_size;
    return h5ml__ok((h5ml_base *)r);
}

int h5ml_reader_layout(h5ml_reader *r, h5ml_layout *out)
{
    if (r == NULL || out == NULL) return H5ML_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (h5ml__reader_file(r) < 0) return h5ml__fail((h5ml_base *)r, H5ML_ERR_STATE, "the reader is not open");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    h5ml_summary s;
    memset(&s, 0, sizeof s);
    describe_filters(h5ml__reader_dset(r, COL_FORCES), &s);
    out->compression = strcmp(s.compression, "gzip") == 0 ? H5ML_COMPRESS_GZIP
                       : strcmp(s.compression, "lzf") == 0 ? H5ML_COMPRESS_LZF
                                                           : H5ML_COMPRESS_NONE;
    out->level = s.compression_level;
    out->shuffle = s.shuffle;
    hsize_t ch[3];
    int cols[2] = { COL_NUMBERS, COL_ENERGY };
    int64_t *dst[2] = { &out->chunk_atoms, &out->chunk_structures };
    for (int k = 0; k < 2; k++) {
        hid_t dcpl = H5Dget_create_plist(h5ml__reader_dset(r, cols[k]));
        if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 3, ch) >= 1) *dst[k] = (int64_t)ch[0];
        H5Pclose(dcpl);
    }
    h5ml__h5_restore(&q);
    return h5ml__ok((h5ml_base *)r);
}
