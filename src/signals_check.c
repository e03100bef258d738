/* Checking, summarizing and comparing signal files (h5ml.h, section 6): every part (the flat
 * file or each split) is read through the signal reader in blocks, so memory stays bounded. */
#define _GNU_SOURCE
#include "signals_priv.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const split_names[3] = { "train", "val", "test" };

/* The parts of a file: the flat root (name "") or the splits it has. Returns how many. */
static int parts_of(h5ml_sigreader *r, const char *path, const char *names[3])
{
    int rc = h5ml_sigreader_open(r, path, NULL);
    if (rc == H5ML_OK) {
        names[0] = "";
        return 1;
    }
    if (rc != H5ML_ERR_ARG) return -1; /* not split: a real error */
    int64_t counts[3];
    rc = h5ml_sigreader_open(r, path, split_names[0]);
    if (rc != H5ML_OK) { /* no train split: open whichever there is */
        for (int s = 1; s < 3 && rc != H5ML_OK; s++) rc = h5ml_sigreader_open(r, path, split_names[s]);
        if (rc != H5ML_OK) return -1;
    }
    h5ml_sigreader_layout(r, counts);
    int n = 0;
    for (int s = 0; s < 3; s++)
        if (counts[s] >= 0) names[n++] = split_names[s];
    return n;
}

/* Signals of the open part in blocks of about 16 MiB: calls fn for each block. */
typedef int (*block_fn)(void *ctx, int64_t start, int64_t count, const float *sig, const int64_t *labels);

static int each_block(h5ml_sigreader *r, block_fn fn, void *ctx)
{
    int64_t n = h5ml_sigreader_count(r), len = h5ml_sigreader_length(r);
    int64_t batch = (16 << 20) / (4 * (len > 0 ? len : 1));
    if (batch < 1) batch = 1;
    if (batch > 8192) batch = 8192;
    float *buf = malloc(sizeof *buf * (size_t)(batch * (len > 0 ? len : 1)));
    int64_t *labels = malloc(sizeof *labels * (size_t)batch);
    int rc = buf && labels ? H5ML_OK : H5ML_ERR_NOMEM;
    for (int64_t at = 0; at < n && rc == H5ML_OK; at += batch) {
        int64_t k = n - at < batch ? n - at : batch;
        rc = h5ml_sigreader_read_range(r, at, k, buf, labels);
        if (rc == H5ML_OK) rc = fn(ctx, at, k, buf, labels);
    }
    free(buf);
    free(labels);
    return rc;
}

static bool attr_int(hid_t loc, const char *name, int64_t *v) { return H5Aexists(loc, name) > 0 && h5ml__attr_get_i64(loc, name, v) == 0; }

/* ---- verify ---------------------------------------------------------------------------------- */

typedef struct checker {
    h5ml_sigreader *r;
    h5ml_report_fn report;
    void *user;
    int64_t problems;
    const char *part;       /* "train/" or "" */
    char first[512];        /* the first problem */
    int64_t length, num_classes;
    int64_t nonfinite_reported;
} checker;

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(checker *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->problems == 0) snprintf(c->first, sizeof c->first, "%s", msg);
    c->problems++;
    if (c->report) c->report(c->user, msg);
}

static int check_block(void *ctx, int64_t start, int64_t count, const float *sig, const int64_t *labels)
{
    checker *c = ctx;
    for (int64_t k = 0; k < count; k++) {
        if (c->num_classes > 0 && (labels[k] < 0 || labels[k] >= c->num_classes))
            problem(c, "/%slabels[%lld] is %lld, outside the %lld classes [0, %lld)", c->part, (long long)(start + k),
                    (long long)labels[k], (long long)c->num_classes, (long long)c->num_classes);
        const float *s = sig + (size_t)k * (size_t)c->length;
        for (int64_t i = 0; i < c->length; i++)
            if (!isfinite(s[i])) {
                if (c->nonfinite_reported++ < 10)
                    problem(c, "/%ssignals[%lld, %lld] is %s", c->part, (long long)(start + k), (long long)i, isnan(s[i]) ? "NaN" : "Inf");
                break;
            }
        if (c->problems > 1000) return H5ML_ERR_CHECK;
    }
    return H5ML_OK;
}

static void check_metadata(checker *c)
{
    if (!h5ml_sigreader_has_metadata(c->r)) return;
    int64_t n = h5ml_sigreader_count(c->r);
    for (int64_t i = 0; i < n && c->problems <= 1000; i++) {
        char *m = NULL;
        if (h5ml_sigreader_metadata(c->r, i, &m) != H5ML_OK) {
            problem(c, "/%smetadata[%lld] cannot be read", c->part, (long long)i);
            return;
        }
        json_t *v = m ? json_loads(m, JSON_DECODE_ANY, NULL) : NULL;
        if (m && (v == NULL || !json_is_object(v))) problem(c, "/%smetadata[%lld] is not a JSON object", c->part, (long long)i);
        json_decref(v);
        free(m);
    }
}

/* Marks the part's original indices in seen[]; problems for repeats and values out of range. */
static void check_indices(checker *c, uint8_t *seen, int64_t total)
{
    int64_t n = h5ml_sigreader_count(c->r);
    int64_t *idx = malloc(sizeof *idx * (size_t)(n > 0 ? n : 1));
    if (idx == NULL || h5ml_sigreader_indices(c->r, idx) != H5ML_OK) {
        free(idx);
        problem(c, "/%sindices cannot be read", c->part);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= total) problem(c, "/%sindices[%lld] is %lld, outside [0, %lld)", c->part, (long long)i, (long long)idx[i], (long long)total);
        else if (seen[idx[i]]++) problem(c, "/%sindices[%lld]: signal %lld appears twice in the file", c->part, (long long)i, (long long)idx[i]);
    }
    free(idx);
}

static int verify_parts(checker *c, const char *path, const char *names[3], int nparts)
{
    hid_t f = h5ml__sigreader_file(c->r);
    int64_t num_classes = 0, attr_total = -1, attr_len = -1, total = 0;
    attr_int(f, "num_classes", &num_classes);
    bool have_total = attr_int(f, "num_signals", &attr_total), have_len = attr_int(f, "signal_length", &attr_len);
    int64_t counts[3] = { 0, 0, 0 };
    bool indexed = nparts > 1 || *names[0];
    int rc = H5ML_OK;
    for (int p = 0; p < nparts && rc == H5ML_OK; p++) {
        if ((rc = h5ml_sigreader_open(c->r, path, *names[p] ? names[p] : NULL)) != H5ML_OK) return rc;
        f = h5ml__sigreader_file(c->r);
        counts[p] = h5ml_sigreader_count(c->r);
        total += counts[p];
        char part[16];
        snprintf(part, sizeof part, "%s%s", names[p], *names[p] ? "/" : "");
        c->part = part;
        c->length = h5ml_sigreader_length(c->r);
        c->num_classes = num_classes;
        if (have_len && attr_len != c->length)
            problem(c, "signal_length attribute is %lld but /%ssignals has length %lld", (long long)attr_len, part, (long long)c->length);
        if (*names[p]) {
            hid_t g = H5Gopen2(f, names[p], H5P_DEFAULT);
            int64_t ns = -1;
            if (g >= 0 && attr_int(g, "num_samples", &ns) && ns != counts[p])
                problem(c, "/%s num_samples attribute is %lld but the split holds %lld signals", names[p], (long long)ns, (long long)counts[p]);
            if (g >= 0) H5Gclose(g);
            char ipath[32];
            snprintf(ipath, sizeof ipath, "%sindices", part);
            if (H5Lexists(f, ipath, H5P_DEFAULT) <= 0) indexed = false;
        }
        rc = each_block(c->r, check_block, c);
        if (rc == H5ML_ERR_CHECK) rc = H5ML_OK; /* too many problems: stop reading, report */
        if (rc == H5ML_OK) check_metadata(c); /* after a read error: its message stays the handle's */
    }
    if (rc) return rc;
    if (have_total && attr_total != total)
        problem(c, "num_signals attribute is %lld but the file holds %lld signals", (long long)attr_total, (long long)total);
    if (indexed && total > 0) { /* the splits' indices together: a permutation of 0..total-1 */
        uint8_t *seen = calloc((size_t)total, 1);
        if (seen == NULL) return h5ml__fail((h5ml_base *)c->r, H5ML_ERR_NOMEM, "out of memory");
        for (int p = 0; p < nparts && (rc = h5ml_sigreader_open(c->r, path, names[p])) == H5ML_OK; p++) {
            char part[16];
            snprintf(part, sizeof part, "%s/", names[p]);
            c->part = part;
            check_indices(c, seen, total);
        }
        free(seen);
    }
    return rc;
}

static int verify_impl(h5ml_sigreader *r, const char *path, h5ml_report_fn report, void *user)
{
    const char *names[3];
    int nparts = parts_of(r, path, names);
    if (nparts < 0) return h5ml_errcode(r);
    checker c = { .r = r, .report = report, .user = user };
    int rc = verify_parts(&c, path, names, nparts);
    if (rc) return rc;
    if (c.problems)
        return h5ml__fail((h5ml_base *)r, H5ML_ERR_CHECK, "%s: %lld problem(s); the first: %s", path, (long long)c.problems, c.first);
    return h5ml__ok((h5ml_base *)r);
}

int h5ml_signals_verify(h5ml_sigreader *r, const char *path, h5ml_report_fn report, void *user)
{
    if (r == NULL || path == NULL) return H5ML_ERR_ARG;
    h5ml_h5quiet q; /* a damaged file makes HDF5 calls fail here (attributes): never printed */
    h5ml__h5_quiet(&q);
    int rc = verify_impl(r, path, report, user);
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- summary --------------------------------------------------------------------------------- */

typedef struct summer {
    h5ml_sigsummary *s;
    int part;
    double sum, sumsq;     /* Kahan-free: doubles over float samples are ample for a summary */
    int64_t finite;
    h5ml_progress_fn progress;
    void *user;
    int64_t done;
} summer;

static int sum_block(void *ctx, int64_t start, int64_t count, const float *sig, const int64_t *labels)
{
    (void)start;
    summer *m = ctx;
    h5ml_sigsummary *s = m->s;
    for (int64_t k = 0; k < count; k++) {
        if (labels[k] >= 0 && labels[k] < 256) s->class_counts[m->part][labels[k]]++;
        else s->other_labels[m->part]++;
        if (labels[k] + 1 > s->num_classes) s->num_classes = labels[k] + 1;
        const float *v = sig + (size_t)k * (size_t)s->length;
        double sum = 0, sumsq = 0;
        for (int64_t i = 0; i < s->length; i++) {
            double x = v[i];
            if (!isfinite(x)) {
                s->nonfinite++;
                continue;
            }
            sum += x;
            sumsq += x * x;
            m->finite++;
            if (x < s->min) s->min = x;
            if (x > s->max) s->max = x;
        }
        m->sum += sum;
        m->sumsq += sumsq;
    }
    m->done += count;
    if (m->progress && m->progress(m->user, m->done, s->total)) return H5ML_ERR_STATE;
    return H5ML_OK;
}

static void storage_of(hid_t f, const char *part, h5ml_sigsummary *s)
{
    char name[32];
    snprintf(name, sizeof name, "%s%ssignals", part, *part ? "/" : "");
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    s->bytes_raw += (int64_t)H5Tget_size(t) * (int64_t)H5Sget_simple_extent_npoints(sp);
    s->bytes_stored += (int64_t)H5Dget_storage_size(d);
    int nf = H5Pget_nfilters(dcpl);
    snprintf(s->compression, sizeof s->compression, "none");
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE) s->shuffle = 1;
        else if (id == H5Z_FILTER_DEFLATE) {
            snprintf(s->compression, sizeof s->compression, "gzip");
            s->compression_level = ncd ? (int)cd[0] : 0;
        } else if (id == H5ML_FILTER_LZF) snprintf(s->compression, sizeof s->compression, "lzf");
        else snprintf(s->compression, sizeof s->compression, "other");
    }
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
}

static int summarize_impl(h5ml_sigreader *r, const char *path, h5ml_sigsummary *out, h5ml_progress_fn progress, void *user)
{
    const char *names[3];
    int nparts = parts_of(r, path, names);
    if (nparts < 0) return h5ml_errcode(r);
    out->layout = *names[0] ? H5ML_SIG_SPLIT : H5ML_SIG_FLAT;
    out->length = h5ml_sigreader_length(r);
    out->min = INFINITY;
    out->max = -INFINITY;
    for (int s = 0; s < 3; s++) out->count[s] = -1;
    int64_t counts[3];
    h5ml_sigreader_layout(r, counts);
    for (int p = 0; p < nparts; p++) {
        int s = *names[p] ? (names[p][0] == 't' && names[p][1] == 'r' ? 0 : names[p][0] == 'v' ? 1 : 2) : 0;
        out->count[s] = *names[p] ? counts[s] : h5ml_sigreader_count(r);
        out->total += out->count[s];
    }
    summer m = { .s = out, .progress = progress, .user = user };
    int rc = H5ML_OK;
    for (int p = 0; p < nparts && rc == H5ML_OK; p++) {
        if ((rc = h5ml_sigreader_open(r, path, *names[p] ? names[p] : NULL)) != H5ML_OK) break;
        m.part = *names[p] ? (names[p][0] == 't' && names[p][1] == 'r' ? 0 : names[p][0] == 'v' ? 1 : 2) : 0;
        if (h5ml_sigreader_has_metadata(r)) out->has_metadata = 1;
        storage_of(h5ml__sigreader_file(r), names[p], out);
        rc = each_block(r, sum_block, &m);
        if (rc == H5ML_ERR_STATE) rc = h5ml__fail((h5ml_base *)r, H5ML_ERR_STATE, "cancelled");
    }
    if (rc) return rc;
    int64_t nc = 0;
    if (attr_int(h5ml__sigreader_file(r), "num_classes", &nc) && nc > 0) out->num_classes = nc;
    if (m.finite > 0) {
        out->mean = m.sum / (double)m.finite;
        double var = m.sumsq / (double)m.finite - out->mean * out->mean;
        out->std = sqrt(var > 0 ? var : 0);
        out->rms = sqrt(m.sumsq / (double)m.finite);
    } else {
        out->min = out->max = NAN;
    }
    struct stat st;
    if (stat(path, &st) == 0) out->bytes_file = (int64_t)st.st_size;
    return h5ml__ok((h5ml_base *)r);
}

int h5ml_signals_summarize(h5ml_sigreader *r, const char *path, h5ml_sigsummary *out, h5ml_progress_fn progress, void *user)
{
    if (r == NULL || path == NULL || out == NULL) return H5ML_ERR_ARG;
    memset(out, 0, sizeof *out);
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = summarize_impl(r, path, out, progress, user);
    h5ml__h5_restore(&q);
    return rc;
}

/* ---- diff ---------------------------------------------------------------------------------- */

/* The count attributes of two files: num_signals at the root, num_samples of each split. */
static int diff_counts(h5ml_base *b, hid_t fa, hid_t fb)
{
    const char *where[4] = { ".", "train", "val", "test" };
    const char *attr[4] = { "num_signals", "num_samples", "num_samples", "num_samples" };
    for (int k = 0; k < 4; k++) {
        if (H5Lexists(fa, where[k], H5P_DEFAULT) <= 0 && k > 0) continue;
        hid_t ga = H5Oopen(fa, where[k], H5P_DEFAULT), gb = H5Oopen(fb, where[k], H5P_DEFAULT);
        int64_t x = -1, y = -1;
        if (ga >= 0) attr_int(ga, attr[k], &x);
        if (gb >= 0) attr_int(gb, attr[k], &y);
        if (ga >= 0) H5Oclose(ga);
        if (gb >= 0) H5Oclose(gb);
        if (x != y) return h5ml__fail(b, H5ML_ERR_DIFFER, "%s%s%s: %lld != %lld", k ? "/" : "", k ? where[k] : "", attr[k], (long long)x, (long long)y);
    }
    return H5ML_OK;
}

int h5ml_diff_files(h5ml_sigreader *r, const char *a, const char *b)
{
    if (r == NULL || a == NULL || b == NULL) return H5ML_ERR_ARG;
    if (h5ml__init() < 0) return h5ml__fail((h5ml_base *)r, H5ML_ERR_HDF5, "cannot initialize HDF5");
    h5ml_h5quiet q;
    h5ml__h5_quiet(&q);
    int rc = H5ML_OK;
    hid_t f[2] = { H5I_INVALID_HID, H5I_INVALID_HID };
    const char *p[2] = { a, b };
    for (int k = 0; k < 2 && rc == H5ML_OK; k++) {
        struct stat st;
        if (stat(p[k], &st) < 0) rc = h5ml__fail((h5ml_base *)r, H5ML_ERR_IO, "%s: No such file or directory", p[k]);
        else if (H5Fis_hdf5(p[k]) <= 0) rc = h5ml__fail((h5ml_base *)r, H5ML_ERR_SCHEMA, "%s: not an HDF5 file", p[k]);
        else {
            hid_t fapl = h5ml__fapl_read();
            f[k] = H5Fopen(p[k], H5F_ACC_RDONLY, fapl);
            H5Pclose(fapl);
            if (f[k] < 0) rc = h5ml__fail_h5((h5ml_base *)r, H5ML_ERR_IO, "%s: cannot open", p[k]);
        }
    }
    if (rc == H5ML_OK) rc = h5ml__diff_datasets((h5ml_base *)r, f[0], f[1], a, b);
    if (rc == H5ML_OK) rc = diff_counts((h5ml_base *)r, f[0], f[1]);
    for (int k = 0; k < 2; k++)
        if (f[k] >= 0) H5Fclose(f[k]);
    H5Eclear2(H5E_DEFAULT);
    h5ml__h5_restore(&q);
    if (rc == H5ML_OK) h5ml__ok((h5ml_base *)r);
    return rc;
}
