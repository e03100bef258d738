/* MATLAB import: listing a directory of .mat files (one sub-directory per class) and
 * reading one signal out of a .mat file with libmatio (v4, v5 and, through HDF5, v7.3). */
#include "signals_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <matio.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The SPEC's fault names; labels are the indices. Must match h5ml__fault_names in
 * siggen.c: kept here rather than referenced so the MATLAB import builds and is tested on
 * its own (test_matimport compares them when built with siggen.c and
 * -DH5ML_TEST_WITH_SIGGEN). */
static const char *const mat_fault_names[H5ML_NUM_FAULTS] = {
    "sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation",
    "usure", "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu",
};

static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || !msglen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

/* ENOENT and ENOTDIR both mean the path is not there, which callers report differently
 * from a path that exists but cannot be read. */
static int errno_code(int e)
{
    if (e == ENOMEM)
        return H5ML_ERR_NOMEM;
    return (e == ENOENT || e == ENOTDIR) ? H5ML_ERR_NOTFOUND : H5ML_ERR_IO;
}

/* ======================================================================================
 * Listing
 * ====================================================================================== */

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

static int has_mat_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".mat") == 0;
}

/* Dot entries are skipped: besides . and .., they are hidden directories (.git) and the
 * "._x.mat" AppleDouble files macOS leaves on shared drives, which are not MAT files. */
static int is_hidden(const char *name) { return name[0] == '.'; }

static int fault_index(const char *name)
{
    for (int k = 0; k < H5ML_NUM_FAULTS; k++)
        if (strcasecmp(name, mat_fault_names[k]) == 0)
            return k;
    return -1;
}

/* A sub-directory with .mat files, while listing. */
typedef struct mat_subdir {
    char *name;
    char **files;
    int64_t nfiles;
} mat_subdir;

typedef struct mat_lister {
    mat_subdir *subs;
    int nsubs, cap;
} mat_lister;

static void subdir_free(mat_subdir *sd)
{
    for (int64_t j = 0; j < sd->nfiles; j++)
        free(sd->files[j]);
    free(sd->files);
    free(sd->name);
    memset(sd, 0, sizeof *sd);
}

static void lister_free(mat_lister *ls)
{
    for (int i = 0; i < ls->nsubs; i++)
        subdir_free(&ls->subs[i]);
    free(ls->subs);
    memset(ls, 0, sizeof *ls);
}

/* readdir's NULL means the end or an error (an NFS hiccup, say): a listing that silently
 * misses files would make a smaller data set, so errors are told apart. */
static struct dirent *next_entry(DIR *d, int *err)
{
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e)
        *err = errno;
    return e;
}

static int push_file(mat_subdir *sd, int64_t *cap, char *path)
{
    if (sd->nfiles == *cap) {
        int64_t ncap = *cap ? 2 * *cap : 16;
        char **p = realloc(sd->files, (size_t)ncap * sizeof *p);
        if (!p)
            return -1;
        sd->files = p;
        *cap = ncap;
    }
    sd->files[sd->nfiles++] = path;
    return 0;
}

/* The regular files ending in .mat directly inside `path` (symbolic links followed). */
static int list_mat_files(const char *path, mat_subdir *sd, char *msg, size_t msglen)
{
    DIR *d = opendir(path);
    if (!d) {
        set_msg(msg, msglen, "%s: %s", path, strerror(errno));
        return errno_code(errno);
    }
    int64_t cap = 0;
    int rc = H5ML_OK, err = 0;
    struct dirent *e;
    while (rc == H5ML_OK && (e = next_entry(d, &err)) != NULL) {
        if (is_hidden(e->d_name) || !has_mat_suffix(e->d_name))
            continue;
        char *file = join_path(path, e->d_name);
        struct stat st;
        if (!file) {
            rc = H5ML_ERR_NOMEM;
        } else if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(file); /* a dangling link or a directory named x.mat: not a file to read */
        } else if (push_file(sd, &cap, file) != 0) {
            free(file);
            rc = H5ML_ERR_NOMEM;
        }
    }
    closedir(d);
    if (rc == H5ML_ERR_NOMEM)
        set_msg(msg, msglen, "out of memory");
    if (rc == H5ML_OK && err) {
        set_msg(msg, msglen, "%s: %s", path, strerror(err));
        rc = errno_code(err);
    }
    return rc;
}

static int push_subdir(mat_lister *ls, const mat_subdir *sd)
{
    if (ls->nsubs == ls->cap) {
        int ncap = ls->cap ? 2 * ls->cap : 16;
        mat_subdir *p = realloc(ls->subs, (size_t)ncap * sizeof *p);
        if (!p)
            return -1;
        ls->subs = p;
        ls->cap = ncap;
    }
    ls->subs[ls->nsubs++] = *sd;
    return 0;
}

/* Lists sub-directory `name` of `dir`, keeping it if it holds .mat files. */
static int add_subdir(mat_lister *ls, const char *dir, const char *name, char *msg,
                      size_t msglen)
{
    mat_subdir sd = {0};
    char *path = join_path(dir, name);
    int rc = H5ML_ERR_NOMEM;
    if (path && (sd.name = strdup(name)))
        rc = list_mat_files(path, &sd, msg, msglen);
    free(path);
    if (rc == H5ML_OK && sd.nfiles > 0 && push_subdir(ls, &sd) == 0)
        return H5ML_OK;
    if (rc == H5ML_OK && sd.nfiles > 0)
        rc = H5ML_ERR_NOMEM;
    if (rc == H5ML_ERR_NOMEM)
        set_msg(msg, msglen, "out of memory");
    subdir_free(&sd);
    return rc;
}

static int scan_dir(const char *dir, mat_lister *ls, char *msg, size_t msglen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        set_msg(msg, msglen, "%s: %s", dir, strerror(errno));
        return errno_code(errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        set_msg(msg, msglen, "%s: not a directory", dir);
        return H5ML_ERR_IO;
    }
    DIR *d = opendir(dir);
    if (!d) {
        set_msg(msg, msglen, "%s: %s", dir, strerror(errno));
        return errno_code(errno);
    }
    int rc = H5ML_OK, err = 0;
    struct dirent *e;
    while (rc == H5ML_OK && (e = next_entry(d, &err)) != NULL) {
        if (is_hidden(e->d_name))
            continue;
        char *path = join_path(dir, e->d_name);
        if (!path) {
            set_msg(msg, msglen, "out of memory");
            rc = H5ML_ERR_NOMEM;
            break;
        }
        int isdir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        free(path);
        if (isdir)
            rc = add_subdir(ls, dir, e->d_name, msg, msglen);
    }
    closedir(d);
    if (rc == H5ML_OK && err) {
        set_msg(msg, msglen, "%s: %s", dir, strerror(err));
        rc = errno_code(err);
    }
    return rc;
}

static int cmp_subdir(const void *a, const void *b)
{
    return strcmp(((const mat_subdir *)a)->name, ((const mat_subdir *)b)->name);
}

static int cmp_entry(const void *a, const void *b)
{
    const h5ml_mat_entry *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int all_fault_names(const mat_lister *ls)
{
    for (int i = 0; i < ls->nsubs; i++)
        if (fault_index(ls->subs[i].name) < 0)
            return 0;
    return 1;
}

static char **copy_names(const char *const *names, int n)
{
    char **out = calloc((size_t)n, sizeof *out);
    for (int i = 0; out && i < n; i++) {
        if (!(out[i] = strdup(names[i]))) {
            while (i-- > 0)
                free(out[i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

/* Labels the sub-directories (fault indices, or positions in name order) and fills in the
 * class names. */
static int label_classes(mat_lister *ls, h5ml_mat_listing *out, int *labels)
{
    out->named = all_fault_names(ls);
    if (out->named) {
        for (int i = 0; i < ls->nsubs; i++)
            labels[i] = fault_index(ls->subs[i].name);
        out->nclasses = H5ML_NUM_FAULTS;
        out->class_names = copy_names(mat_fault_names, H5ML_NUM_FAULTS);
        return out->class_names ? H5ML_OK : H5ML_ERR_NOMEM;
    }
    qsort(ls->subs, (size_t)ls->nsubs, sizeof *ls->subs, cmp_subdir);
    out->class_names = calloc((size_t)ls->nsubs, sizeof *out->class_names);
    if (!out->class_names)
        return H5ML_ERR_NOMEM;
    out->nclasses = ls->nsubs;
    for (int i = 0; i < ls->nsubs; i++) {
        labels[i] = i;
        out->class_names[i] = ls->subs[i].name; /* moved out of the lister */
        ls->subs[i].name = NULL;
    }
    return H5ML_OK;
}

/* Moves the file paths out of the lister into `out`, labelled and sorted. */
static int build_listing(mat_lister *ls, h5ml_mat_listing *out)
{
    int *labels = malloc((size_t)ls->nsubs * sizeof *labels);
    int64_t total = 0;
    for (int i = 0; i < ls->nsubs; i++)
        total += ls->subs[i].nfiles;
    out->files = malloc((size_t)total * sizeof *out->files);
    if (!labels || !out->files || label_classes(ls, out, labels) != H5ML_OK) {
        free(labels);
        return H5ML_ERR_NOMEM;
    }
    for (int i = 0; i < ls->nsubs; i++) {
        for (int64_t j = 0; j < ls->subs[i].nfiles; j++) {
            out->files[out->nfiles++] = (h5ml_mat_entry){ls->subs[i].files[j], labels[i]};
            ls->subs[i].files[j] = NULL;
        }
    }
    free(labels);
    qsort(out->files, (size_t)out->nfiles, sizeof *out->files, cmp_entry);
    return H5ML_OK;
}

int h5ml__mat_list(const char *dir, h5ml_mat_listing *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    mat_lister ls = {0};
    int rc = scan_dir(dir, &ls, msg, msglen);
    if (rc == H5ML_OK && ls.nsubs == 0) {
        set_msg(msg, msglen,
                "%s: no sub-directories with .mat files (expected one sub-directory per "
                "fault type, e.g. %s%ssain/*.mat)",
                dir, dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/");
        rc = H5ML_ERR_NOTFOUND;
    }
    if (rc == H5ML_OK && build_listing(&ls, out) != H5ML_OK) {
        set_msg(msg, msglen, "out of memory");
        rc = H5ML_ERR_NOMEM;
    }
    lister_free(&ls);
    if (rc != H5ML_OK)
        h5ml__mat_listing_free(out);
    return rc;
}

void h5ml__mat_listing_free(h5ml_mat_listing *l)
{
    if (!l)
        return;
    for (int64_t i = 0; i < l->nfiles; i++)
        free(l->files[i].path);
    free(l->files);
    for (int i = 0; l->class_names && i < l->nclasses; i++)
        free(l->class_names[i]);
    free(l->class_names);
    memset(l, 0, sizeof *l);
}

/* ======================================================================================
 * Reading one signal
 * ====================================================================================== */

/* Why a variable can or cannot be the signal. */
typedef enum sig_kind {
    SIG_OK,
    SIG_EMPTY,
    SIG_COMPLEX,
    SIG_NOT_VECTOR,
    SIG_LOGICAL,
    SIG_SPARSE,
    SIG_NOT_NUMERIC,
    SIG_STRUCT_ARRAY, /* asked for a field of a struct that is not 1x1 */
} sig_kind;

static int is_numeric_class(enum matio_classes c)
{
    return c == MAT_C_DOUBLE || c == MAT_C_SINGLE || (c >= MAT_C_INT8 && c <= MAT_C_UINT64);
}

static size_t numel(const matvar_t *v)
{
    size_t n = 1;
    for (int k = 0; k < v->rank; k++)
        n *= v->dims[k];
    return v->rank > 0 ? n : 0;
}

static sig_kind classify(const matvar_t *v)
{
    if (v->class_type == MAT_C_SPARSE)
        return SIG_SPARSE;
    if (v->isLogical)
        return SIG_LOGICAL;
    if (!is_numeric_class(v->class_type))
        return SIG_NOT_NUMERIC;
    if (v->isComplex)
        return SIG_COMPLEX;
    if (v->rank != 2 || (v->dims[0] != 1 && v->dims[1] != 1))
        return SIG_NOT_VECTOR;
    return numel(v) == 0 ? SIG_EMPTY : SIG_OK;
}

static int is_scalar_struct(const matvar_t *v)
{
    return v->class_type == MAT_C_STRUCT && v->rank == 2 && v->dims[0] == 1 && v->dims[1] == 1;
}

static const char *class_text(enum matio_classes c)
{
    static const char *const names[] = {
        "empty", "cell", "struct", "object", "char", "sparse", "double", "single", "int8",
        "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "function", "opaque",
    };
    return (unsigned)c < sizeof names / sizeof *names ? names[c] : "unknown";
}

static void shape_text(const matvar_t *v, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < v->rank && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%zu", k ? "x" : "", v->dims[k]);
}

/* "double 1x500", "complex single 3x4", "logical 1x20", "char", "struct": shapes only
 * where they explain why a numeric-looking variable was not taken. */
static void describe(const matvar_t *v, char *buf, size_t len)
{
    char shape[64];
    shape_text(v, shape, sizeof shape);
    if (v->isLogical)
        snprintf(buf, len, "logical %s", shape);
    else if (is_numeric_class(v->class_type) || v->class_type == MAT_C_SPARSE)
        snprintf(buf, len, "%s%s %s", v->isComplex ? "complex " : "", class_text(v->class_type),
                 shape);
    else
        snprintf(buf, len, "%s", class_text(v->class_type));
}

/* The "variables: a (char), s (struct)" part of the messages, cut with "..." if long. */
typedef struct var_list {
    char text[400];
    size_t len;
    int count, cut;
} var_list;

static void var_list_add(var_list *l, const matvar_t *v)
{
    char desc[96], item[200];
    describe(v, desc, sizeof desc);
    int n = snprintf(item, sizeof item, "%s%s (%s)", l->count ? ", " : "",
                     v->name ? v->name : "?", desc);
    l->count++;
    if (l->cut || n < 0 || (size_t)n >= sizeof item || l->len + (size_t)n + 6 > sizeof l->text) {
        if (!l->cut)
            l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, ", ...");
        l->cut = 1;
        return;
    }
    memcpy(l->text + l->len, item, (size_t)n + 1);
    l->len += (size_t)n;
}

/* MATLAB names are at most 63 characters; anything longer is not a name we can be asked
 * for, so fixed buffers do. */
#define MAT_NAME_MAX 256

/* What the scan of the file's variables found. */
typedef struct mat_scan {
    const char *want_top, *want_field; /* the requested variable, split at '.'; or NULL */
    char top[MAT_NAME_MAX], field[MAT_NAME_MAX]; /* the chosen one */
    size_t n;          /* its element count (0: none chosen yet)   */
    int found;         /* the requested variable exists            */
    sig_kind kind;     /* ... and why it can or cannot be read     */
    char shape[64];    /* ... its shape, for the messages           */
    char desc[96];     /* ... its class, for the messages           */
    var_list vars;
    char **seen;       /* the top-level names met so far            */
    size_t nseen, capseen;
} mat_scan;

/* Whether a top-level variable of this name came before (and notes the name). libmatio reads
 * a variable by name as the first of that name, so a later one of the same name cannot be
 * read: it is no candidate (fuzz: a vector 'sig' after an empty 'sig' was chosen, then read
 * by name as the empty one). Out of memory, a name counts as new. */
static int seen_before(mat_scan *s, const char *name)
{
    for (size_t k = 0; k < s->nseen; k++)
        if (strcmp(s->seen[k], name) == 0)
            return 1;
    if (s->nseen == s->capseen) {
        size_t cap = s->capseen ? 2 * s->capseen : 16;
        char **p = realloc(s->seen, cap * sizeof *p);
        if (!p)
            return 0;
        s->seen = p;
        s->capseen = cap;
    }
    if ((s->seen[s->nseen] = strdup(name)) != NULL)
        s->nseen++;
    return 0;
}

static int copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= MAT_NAME_MAX)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Keeps `v` (top-level `top`, or its field `field`) if it is a larger signal than the one
 * kept (on a tie the first in the file stays). Scalars are not candidates: they are
 * parameters (a sampling rate, a speed), not signals; asked for by name, they are read. */
static void consider(mat_scan *s, const matvar_t *v, const char *top, const char *field)
{
    size_t n = numel(v);
    if (classify(v) != SIG_OK || n < 2 || n <= s->n)
        return;
    if (copy_name(s->top, top) == 0 && copy_name(s->field, field ? field : "") == 0)
        s->n = n;
}

static void note_requested(mat_scan *s, const matvar_t *v, sig_kind kind)
{
    s->found = 1;
    s->kind = kind;
    shape_text(v, s->shape, sizeof s->shape);
    describe(v, s->desc, sizeof s->desc);
    if (kind == SIG_OK) {
        copy_name(s->top, s->want_top);
        copy_name(s->field, s->want_field ? s->want_field : "");
        s->n = numel(v);
    }
}

static void find_requested(mat_scan *s, matvar_t *v)
{
    if (strcmp(v->name, s->want_top) != 0)
        return;
    if (!s->want_field) {
        note_requested(s, v, classify(v));
    } else if (v->class_type == MAT_C_STRUCT && !is_scalar_struct(v)) {
        note_requested(s, v, SIG_STRUCT_ARRAY);
    } else if (v->class_type == MAT_C_STRUCT) {
        matvar_t *f = Mat_VarGetStructFieldByName(v, s->want_field, 0);
        if (f)
            note_requested(s, f, classify(f));
    }
}

static void find_largest(mat_scan *s, matvar_t *v)
{
    consider(s, v, v->name, NULL);
    if (!is_scalar_struct(v))
        return;
    char *const *fields = Mat_VarGetStructFieldnames(v);
    unsigned nf = Mat_VarGetNumberOfFields(v);
    for (unsigned i = 0; fields && i < nf; i++) {
        matvar_t *f = Mat_VarGetStructFieldByIndex(v, i, 0);
        int dup = 0; /* a field is read by name too: the first of its name */
        for (unsigned j = 0; fields[i] && j < i && !dup; j++)
            dup = fields[j] && strcmp(fields[j], fields[i]) == 0;
        if (f && fields[i] && !dup)
            consider(s, f, v->name, fields[i]);
    }
}

/* One pass over the variable headers (no data is read). */
static void scan_vars(mat_t *mat, mat_scan *s)
{
    matvar_t *v;
    while ((v = Mat_VarReadNextInfo(mat)) != NULL) {
        /* A variable without a name, or with a '.' in it (asked for by name, that is a
         * struct's field), cannot be asked for (fuzz: such a variable was chosen and then
         * could not be read by its name): not a candidate. */
        if (v->name && v->name[0]) {
            var_list_add(&s->vars, v);
            if (!strchr(v->name, '.') && !seen_before(s, v->name)) {
                if (s->want_top)
                    find_requested(s, v);
                else
                    find_largest(s, v);
            }
        }
        Mat_VarFree(v);
    }
}

static int requested_error(const char *path, const char *var, const mat_scan *s, char *msg,
                           size_t msglen)
{
    if (!s->found) {
        set_msg(msg, msglen, "%s: variable '%s' not found (variables: %s)", path, var,
                s->vars.count ? s->vars.text : "none");
        return H5ML_ERR_NOTFOUND;
    }
    switch (s->kind) {
    case SIG_COMPLEX:
        set_msg(msg, msglen, "%s: variable '%s' is complex", path, var);
        break;
    case SIG_NOT_VECTOR:
        set_msg(msg, msglen, "%s: variable '%s' is not a vector (shape %s)", path, var, s->shape);
        break;
    case SIG_EMPTY:
        set_msg(msg, msglen, "%s: variable '%s' is empty (shape %s)", path, var, s->shape);
        break;
    case SIG_LOGICAL:
        set_msg(msg, msglen, "%s: variable '%s' is logical, not numeric", path, var);
        break;
    case SIG_SPARSE:
        set_msg(msg, msglen, "%s: variable '%s' is a sparse matrix", path, var);
        break;
    case SIG_STRUCT_ARRAY:
        set_msg(msg, msglen,
                "%s: variable '%s' is a %s struct array (fields are read from 1x1 structs only)",
                path, s->want_top, s->shape);
        break;
    default:
        set_msg(msg, msglen, "%s: variable '%s' is not numeric (%s)", path, var, s->desc);
        break;
    }
    return H5ML_ERR_VALUE;
}

/* The data libmatio read hold the n elements the header announced. */
static int has_data(const matvar_t *v, size_t n)
{
    size_t esize = Mat_SizeOf(v->data_type);
    return v->data && esize > 0 && v->nbytes / esize >= n;
}

/* Converts the data of a real numeric vector read by libmatio to double (the 64-bit
 * integer classes lose precision beyond 2^53, as they do in MATLAB's double()). */
static double *to_double(const matvar_t *v, size_t n)
{
    double *out = malloc(n * sizeof *out);
    if (!out)
        return NULL;
#define CONVERT(ctype)                                                                     \
    for (size_t i = 0; i < n; i++)                                                         \
        out[i] = (double)((const ctype *)v->data)[i];                                      \
    break
    switch (v->data_type) {
    case MAT_T_DOUBLE: CONVERT(double);
    case MAT_T_SINGLE: CONVERT(float);
    case MAT_T_INT8: CONVERT(int8_t);
    case MAT_T_UINT8: CONVERT(uint8_t);
    case MAT_T_INT16: CONVERT(int16_t);
    case MAT_T_UINT16: CONVERT(uint16_t);
    case MAT_T_INT32: CONVERT(int32_t);
    case MAT_T_UINT32: CONVERT(uint32_t);
    case MAT_T_INT64: CONVERT(int64_t);
    case MAT_T_UINT64: CONVERT(uint64_t);
    default:
        free(out);
        return NULL;
    }
#undef CONVERT
    return out;
}

/* Reads the chosen variable's data: the whole top-level variable (libmatio reads struct
 * fields only as part of their struct), then the field. */
static int read_chosen(mat_t *mat, const char *path, const mat_scan *s, double **out,
                       int64_t *len, char *msg, size_t msglen)
{
    const char *dot = s->field[0] ? "." : "";
    /* libmatio allocates the element count the header gives: more elements than the file's
     * bytes can hold (deflate packs at most 1032 bytes into one) is a corrupt file. */
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)s->n / 1100 > (uint64_t)st.st_size) {
        set_msg(msg, msglen, "%s: cannot read variable '%s%s%s' (truncated or corrupt file?)", path, s->top, dot,
                s->field);
        return H5ML_ERR_PARSE;
    }
    matvar_t *top = Mat_VarRead(mat, s->top);
    matvar_t *v = top && s->field[0] ? Mat_VarGetStructFieldByName(top, s->field, 0) : top;
    int rc = H5ML_OK;
    if (!v || classify(v) != SIG_OK || numel(v) != s->n || !has_data(v, s->n)) {
        set_msg(msg, msglen, "%s: cannot read variable '%s%s%s' (truncated or corrupt file?)",
                path, s->top, dot, s->field);
        rc = H5ML_ERR_PARSE;
    } else if (!(*out = to_double(v, s->n))) {
        set_msg(msg, msglen, "%s: out of memory reading '%s%s%s'", path, s->top, dot, s->field);
        rc = H5ML_ERR_NOMEM;
    } else {
        *len = (int64_t)s->n;
    }
    Mat_VarFree(top);
    return rc;
}

/* libmatio's own messages go nowhere unless a logger is installed; installing a silent one
 * keeps them quiet even if a libmatio release starts logging by default. */
static void no_log(int level, char *message)
{
    (void)level;
    (void)message;
}

static void silence_matio(void)
{
    static atomic_int done;
    if (!atomic_exchange(&done, 1))
        Mat_LogInitFunc("h5ml", no_log);
}

/* HDF5 (under libmatio, for v7.3) would print its error stack for a corrupt file, so its
 * automatic printing is off while libmatio runs, and the caller's setting restored after.
 * Like h5ml__h5_quiet, kept local so this file links on its own in the standalone test.
 * Mat_LogInitFunc installs libmatio's own HDF5 error handler on the calling thread: it
 * runs between the save and the switch-off, so the restore undoes it too. */
typedef struct h5_errors { H5E_auto2_t fn; void *data; } h5_errors;

static void quiet_begin(h5_errors *e)
{
    H5Eget_auto2(H5E_DEFAULT, &e->fn, &e->data);
    silence_matio();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const h5_errors *e) { H5Eset_auto2(H5E_DEFAULT, e->fn, e->data); }

/* Missing files and directories, before libmatio (which opens a directory "successfully"
 * and then finds no variables in it). */
static int check_path(const char *path, char *msg, size_t msglen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        set_msg(msg, msglen, "%s: %s", path, strerror(errno));
        return errno_code(errno);
    }
    if (S_ISDIR(st.st_mode)) {
        set_msg(msg, msglen, "%s: is a directory", path);
        return H5ML_ERR_IO;
    }
    return H5ML_OK;
}

/* Mat_Open says only "no": tell an unreadable file, a damaged MAT-file (the header is
 * there: typically a truncated v7.3 file, which HDF5 refuses) and anything else apart. */
static int open_error(const char *path, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_msg(msg, msglen, "%s: %s", path, strerror(errno));
        return errno_code(errno);
    }
    char head[6] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got == sizeof head && memcmp(head, "MATLAB", 6) == 0)
        set_msg(msg, msglen, "%s: MAT-file header found, but the file cannot be opened "
                             "(truncated or corrupt?)", path);
    else
        set_msg(msg, msglen, "%s: not a MATLAB file (or unreadable)", path);
    return H5ML_ERR_PARSE;
}

static uint32_t get_u32(const unsigned char *p, int little)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++)
        v |= (uint32_t)p[little ? k : 3 - k] << (8 * k);
    return v;
}

/* libmatio reads past the end of a truncated v5 file without a word (the missing data come
 * back as zeros or garbage), so the chain of top-level elements after the 128-byte header
 * is checked against the file size first: each is an 8-byte tag (type miMATRIX 14 or
 * miCOMPRESSED 15, byte count) and that many bytes. Anything else ends the walk, leaving
 * unusual files to libmatio. */
static int v5_truncated(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    unsigned char tag[128];
    if (!f)
        return 0;
    int truncated = 0;
    if (fstat(fileno(f), &st) == 0 && fread(tag, 1, 128, f) == 128) {
        int little = tag[126] == 'I' && tag[127] == 'M';
        int big = tag[126] == 'M' && tag[127] == 'I';
        off_t pos = 128;
        while ((little || big) && pos + 8 <= st.st_size) {
            if (fseeko(f, pos, SEEK_SET) != 0 || fread(tag, 1, 8, f) != 8)
                break;
            uint32_t type = get_u32(tag, little);
            if (type != 14 && type != 15)
                break;
            pos += 8 + (off_t)get_u32(tag + 4, little);
        }
        truncated = pos > st.st_size;
    }
    fclose(f);
    return truncated;
}

/* ---- structure checks before libmatio -------------------------------------------------
 * libmatio believes the sizes in a file's headers when it allocates: a variable's rank, its
 * name's length, the number of cells or struct fields, the element count (fuzz_matimport:
 * a 30 KB file made it ask for 8 GiB for the dimensions of one variable, 144 TB for a
 * cell array). So the headers libmatio reads are checked first: every size must fit in the
 * bytes that hold it (a compressed variable is inflated for this, at most MAT_INFLATE_MAX
 * bytes). Anything that does not is a corrupt file. */

#define MAT_INFLATE_MAX ((size_t)1 << 30)
#define MAT_MAX_DEPTH 32

typedef struct mat_elem {
    uint32_t type;
    size_t nbytes;            /* data bytes                                  */
    const unsigned char *data;
    size_t size;              /* the whole element: tag, data and padding    */
} mat_elem;

/* The data element at p (n bytes available): the 8-byte tag, or the 4-byte small form.
 * Returns -1 when it does not fit. */
static int next_elem(const unsigned char *p, size_t n, int little, mat_elem *e)
{
    if (n < 8)
        return -1;
    uint32_t w = get_u32(p, little);
    if (w >> 16) { /* small data element: 2 bytes of size, 2 of type, 4 of data */
        e->type = w & 0xffff;
        e->nbytes = w >> 16;
        e->data = p + 4;
        e->size = 8;
        return e->nbytes <= 4 ? 0 : -1;
    }
    e->type = w;
    e->nbytes = get_u32(p + 4, little);
    e->data = p + 8;
    if (e->nbytes > n - 8)
        return -1;
    size_t padded = (e->nbytes + 7) & ~(size_t)7;
    e->size = 8 + (padded <= n - 8 ? padded : n - 8);
    return 0;
}

static size_t mat_type_size(uint32_t type)
{
    switch (type) {
    case 1: case 2: case 16: return 1;  /* miINT8, miUINT8, miUTF8    */
    case 3: case 4: case 17: return 2;  /* miINT16, miUINT16, miUTF16 */
    case 5: case 6: case 7: case 18: return 4; /* miINT32, miUINT32, miSINGLE, miUTF32 */
    case 9: case 12: case 13: return 8; /* miDOUBLE, miINT64, miUINT64 */
    default: return 0;
    }
}

static int check_matrix(const unsigned char *p, size_t n, int little, int depth);

/* `count` miMATRIX elements one after the other in [p, p+n). */
static int check_matrices(const unsigned char *p, size_t n, int little, uint64_t count, int depth)
{
    if (count > n / 8) /* each takes a tag at least */
        return -1;
    for (uint64_t k = 0; k < count; k++) {
        mat_elem e;
        if (next_elem(p, n, little, &e) < 0 || e.type != 14 || check_matrix(e.data, e.nbytes, little, depth + 1) < 0)
            return -1;
        p += e.size;
        n -= e.size;
    }
    return 0;
}

/* The body of a miMATRIX element: array flags, dimensions, name, then by class the data,
 * the cells, or the field names and fields. */
static int check_matrix(const unsigned char *p, size_t n, int little, int depth)
{
    mat_elem flags, dims, name;
    if (n == 0) /* an empty element: an empty cell or field; not a variable, whose headers
                 * libmatio would read from what follows (fuzz: 3 GiB for a name there) */
        return depth > 0 ? 0 : -1;
    if (depth > MAT_MAX_DEPTH || next_elem(p, n, little, &flags) < 0 || flags.nbytes != 8)
        return -1;
    p += flags.size;
    n -= flags.size;
    /* Dimensions other than miINT32 libmatio skips without reading, and takes what follows
     * the tag for the name's (fuzz: a 4 GiB name from a dimension) */
    if (next_elem(p, n, little, &dims) < 0 || dims.type != 5 || dims.nbytes % 4 || dims.nbytes < 8)
        return -1;
    uint64_t numel = 1;
    for (size_t k = 0; k < dims.nbytes / 4; k++) {
        uint64_t d = get_u32(dims.data + 4 * k, little);
        if (d && numel > ((uint64_t)1 << 48) / d)
            return -1;
        numel *= d;
    }
    p += dims.size;
    n -= dims.size;
    /* Inside a struct or cell the name is empty: libmatio reads a struct field's name tag
     * as 8 bytes whatever it says, and what follows as the field's data */
    if (next_elem(p, n, little, &name) < 0 || (depth > 0 && name.size != 8))
        return -1;
    p += name.size;
    n -= name.size;
    unsigned cls = get_u32(flags.data, little) & 0xff;
    int complex = (get_u32(flags.data, little) & 0x800) != 0;
    if (cls == 1) /* cell array */
        return check_matrices(p, n, little, numel, depth);
    if (cls == 2 || cls == 3) { /* struct, object (with its class name first) */
        mat_elem cname, flen, fnames;
        if (cls == 3) {
            if (next_elem(p, n, little, &cname) < 0)
                return -1;
            p += cname.size;
            n -= cname.size;
        }
        /* The field name length as libmatio reads it: the tag's second word, the field
         * names' tag right after (fuzz: a length in the 8-byte form made it take 8, and the
         * length's own value for the names' size, 4 GiB). Files hold the 4-byte form. */
        if (next_elem(p, n, little, &flen) < 0 || flen.type != 5 || flen.nbytes != 4 || flen.size != 8)
            return -1;
        uint32_t len = get_u32(flen.data, little);
        p += flen.size;
        n -= flen.size;
        if (len == 0 || next_elem(p, n, little, &fnames) < 0 || fnames.nbytes % len)
            return -1;
        uint64_t nfields = fnames.nbytes / len;
        p += fnames.size;
        n -= fnames.size;
        /* libmatio allocates per element even without fields (fuzz: 4 GiB for a 1 x
         * 4294901761 struct array with none) */
        if ((nfields && numel > (n / 8) / nfields) || (!nfields && numel > n + 64))
            return -1;
        return check_matrices(p, n, little, numel * nfields, depth);
    }
    if (cls == 4 || (cls >= 6 && cls <= 15)) { /* char, numeric: the element count fits the data */
        for (int part = 0; part < 1 + complex && (numel > 0 || n > 0); part++) {
            mat_elem d;
            size_t es;
            if (next_elem(p, n, little, &d) < 0 || (es = mat_type_size(d.type)) == 0 || numel > d.nbytes / es)
                return -1;
            /* Numeric data stored as text (miUTF8/16/32): libmatio allocates the array and
             * reads nothing into it (fuzz: samples of uninitialized memory) */
            if (cls != 4 && d.type >= 16)
                return -1;
            p += d.size;
            n -= d.size;
        }
        return 0;
    }
    if (cls == 5) { /* sparse: nzmax entries at most, as many as the data holds */
        uint64_t nzmax = get_u32(flags.data + 4, little);
        return nzmax > n ? -1 : 0;
    }
    /* Function handles, opaque objects and unknown classes: libmatio allocates a pointer per
     * element of function handles (fuzz: 69 GB for a 271-byte file) */
    return numel > n / 8 + 1 ? -1 : 0;
}

/* Inflates the miCOMPRESSED element [p, p+n) into a new buffer (*len bytes); NULL when it is
 * corrupt or larger than MAT_INFLATE_MAX. */
static unsigned char *inflate_elem(const unsigned char *p, size_t n, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return NULL;
    size_t cap = n < ((size_t)1 << 20) ? 4 * n + 64 : n, used = 0;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)p;
    z.avail_in = (uInt)(n < UINT32_MAX ? n : UINT32_MAX);
    int zr = Z_OK;
    while (out && zr == Z_OK) {
        if (used == cap) {
            unsigned char *o = cap < MAT_INFLATE_MAX ? realloc(out, 2 * cap) : NULL;
            if (!o) {
                free(out);
                out = NULL;
                break;
            }
            out = o;
            cap *= 2;
        }
        size_t room = cap - used < UINT32_MAX ? cap - used : UINT32_MAX;
        z.next_out = out + used;
        z.avail_out = (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        used += room - z.avail_out;
        if (zr == Z_BUF_ERROR && z.avail_out > 0) /* input ended before the stream did */
            break;
        if (zr == Z_BUF_ERROR)
            zr = Z_OK;
    }
    inflateEnd(&z);
    if (out && zr != Z_STREAM_END && used == 0) {
        free(out);
        return NULL;
    }
    *len = used; /* a stream cut short still shows its headers, as libmatio reads them */
    return out;
}

/* The variables of a v5 file are well formed as far as libmatio's reading goes: 0, or -1
 * with the problem in msg. */
static int v5_check(const char *path, char *msg, size_t msglen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 128) {
        if (fd >= 0)
            close(fd);
        return 0; /* libmatio reports what is wrong */
    }
    size_t size = (size_t)st.st_size;
    unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return 0;
    int little = m[126] == 'I' && m[127] == 'M', rc = 0;
    int k = 0;
    for (size_t pos = 128; (little || (m[126] == 'M' && m[127] == 'I')) && pos + 8 <= size && rc == 0; k++) {
        mat_elem e;
        if (next_elem(m + pos, size - pos, little, &e) < 0)
            break; /* runs past the end: v5_truncated's case */
        if (e.type == 14) {
            rc = check_matrix(e.data, e.nbytes, little, 0);
        } else if (e.type == 15) {
            size_t len = 0;
            unsigned char *u = inflate_elem(e.data, e.nbytes, &len);
            mat_elem in;
            rc = !u || (len >= 8 && (next_elem(u, len, little, &in) < 0 || (in.type == 14 &&
                        check_matrix(in.data, in.nbytes, little, 0) < 0))) ? -1 : 0;
            free(u);
        } else {
            break;
        }
        pos += 8 + e.nbytes; /* as v5_truncated walks: top-level elements carry their padding */
    }
    munmap(m, size);
    if (rc < 0)
        set_msg(msg, msglen, "%s: corrupt file (the header of variable %d does not fit its data)", path, k);
    return rc;
}

/* A v4 file's variables: 20-byte headers, each name inside the file (libmatio allocates the
 * length it reads). The header is read as libmatio 1.5 reads it: the type (MOPT digits) in
 * either byte order, then the rest in the order its M digit names (fuzz: a type stored big-
 * endian with M = 0 made libmatio take the name length little-endian, 1.8 GiB). A header
 * libmatio would not take, or data running past the end, ends the walk: libmatio fails there
 * before allocating. */
static int v4_check(const char *path, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int rc = 0;
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        return 0;
    }
    uint64_t pos = 0, size = (uint64_t)st.st_size;
    unsigned char h[20];
    while (rc == 0 && pos + 20 <= size && fseeko(f, (off_t)pos, SEEK_SET) == 0 && fread(h, 1, 20, f) == 20) {
        int32_t type = (int32_t)get_u32(h, 1);
        if (type < 0 || type > 4052)
            type = (int32_t)get_u32(h, 0);
        if (type < 0 || type > 4052 || type / 1000 > 1 || (type / 100) % 10 != 0 || (type / 10) % 10 > 5 || type % 10 > 2)
            break;
        int little = type / 1000 == 0;
        static const uint64_t esize[6] = {8, 4, 4, 2, 2, 1};
        int32_t rows = (int32_t)get_u32(h + 4, little), cols = (int32_t)get_u32(h + 8, little);
        int32_t namelen = (int32_t)get_u32(h + 16, little);
        int imag = get_u32(h + 12, 1) != 0;
        if (namelen < 1)
            break;
        if ((uint64_t)namelen > size - pos - 20) {
            rc = -1;
            break;
        }
        /* libmatio's data size: the dimensions as size_t (a negative one wraps), multiplied
         * with wrap-around and taken as a long (fuzz: 0 rows of -1660944384 columns make 0
         * bytes, and the next header follows). libmatio then seeks past the data without
         * looking at the result: a negative size seeks back into the file (corrupt); past
         * the end, where the file system refuses the offset (ext4 above 16 TiB, fuzz) it
         * reads the next header right after the name, so that one is checked too. */
        uint64_t left = size - pos - 20 - (uint64_t)namelen, each = esize[(type / 10) % 10] * (imag ? 2 : 1);
        int64_t data = (int64_t)((uint64_t)(int64_t)rows * (uint64_t)(int64_t)cols * each);
        if (data < 0) {
            rc = -1;
            break;
        }
        pos += 20 + (uint64_t)namelen + ((uint64_t)data <= left ? (uint64_t)data : 0);
    }
    fclose(f);
    if (rc < 0)
        set_msg(msg, msglen, "%s: corrupt file (a variable's header does not fit the file)", path);
    return rc;
}

/* Whether the file starts like a v5 or v7.3 MAT-file (its 116-byte text header). */
static int has_text_header(const char *path)
{
    FILE *f = fopen(path, "rb");
    char head[6] = {0};
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    return got == sizeof head && memcmp(head, "MATLAB", 6) == 0;
}

/* libmatio 1.5.23 returns a handle from Mat_Open even when HDF5 cannot open a v7.3 file
 * (truncated, say), which then seems to hold no variables: ask HDF5 directly. */
static int no_variables(mat_t *mat, const char *path, char *msg, size_t msglen)
{
    if (Mat_GetVersion(mat) == MAT_FT_MAT73) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            set_msg(msg, msglen, "%s: MAT-file header found, but the file cannot be opened "
                                 "(truncated or corrupt?)", path);
            return H5ML_ERR_PARSE;
        }
        H5Fclose(f);
    }
    set_msg(msg, msglen, "%s: no variables in the file", path);
    return H5ML_ERR_NOTFOUND;
}

static int split_var(const char *var, char top[MAT_NAME_MAX], const char **field)
{
    const char *dot = strchr(var, '.');
    size_t n = dot ? (size_t)(dot - var) : strlen(var);
    if (n >= MAT_NAME_MAX)
        return -1;
    memcpy(top, var, n);
    top[n] = 0;
    *field = dot ? dot + 1 : NULL;
    return 0;
}

static int read_signal(mat_t *mat, const char *path, const char *var, double **out,
                       int64_t *len, char *name, size_t namelen, char *msg, size_t msglen)
{
    mat_scan *s = calloc(1, sizeof *s);
    char want_top[MAT_NAME_MAX];
    if (!s) {
        set_msg(msg, msglen, "out of memory");
        return H5ML_ERR_NOMEM;
    }
    if (var && split_var(var, want_top, &s->want_field) == 0)
        s->want_top = want_top;
    scan_vars(mat, s);

    int rc;
    if (s->vars.count == 0) {
        rc = no_variables(mat, path, msg, msglen);
    } else if (var && (!s->found || s->kind != SIG_OK)) {
        rc = requested_error(path, var, s, msg, msglen);
    } else if (!var && s->n == 0) {
        set_msg(msg, msglen, "%s: no real numeric vector found (variables: %s)", path,
                s->vars.text);
        rc = H5ML_ERR_NOTFOUND;
    } else {
        rc = read_chosen(mat, path, s, out, len, msg, msglen);
    }
    if (rc == H5ML_OK && name && namelen)
        snprintf(name, namelen, "%s%s%s", s->top, s->field[0] ? "." : "", s->field);
    for (size_t k = 0; k < s->nseen; k++)
        free(s->seen[k]);
    free(s->seen);
    free(s);
    return rc;
}

int h5ml__mat_read_signal(const char *path, const char *var, double **out, int64_t *len,
                          char *name, size_t namelen, char *msg, size_t msglen)
{
    *out = NULL;
    *len = 0;
    if (name && namelen)
        name[0] = 0;
    if (var && !var[0])
        var = NULL;
    int rc = check_path(path, msg, msglen);
    if (rc != H5ML_OK)
        return rc;

    /* Mat_Open reads the first variable of a v4 file (one without the "MATLAB" text header
     * of v5 and v7.3) to recognize the format: its headers are checked before. */
    if (!has_text_header(path) && v4_check(path, msg, msglen) < 0)
        return H5ML_ERR_PARSE;
    h5_errors saved;
    quiet_begin(&saved);
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat) {
        rc = open_error(path, msg, msglen);
    } else if (Mat_GetVersion(mat) == MAT_FT_MAT5 && v5_truncated(path)) {
        set_msg(msg, msglen, "%s: truncated file (a variable runs past its end)", path);
        rc = H5ML_ERR_PARSE;
    } else if (Mat_GetVersion(mat) == MAT_FT_MAT5 && v5_check(path, msg, msglen) < 0) {
        rc = H5ML_ERR_PARSE;
    } else {
        rc = read_signal(mat, path, var, out, len, name, namelen, msg, msglen);
    }
    if (mat)
        Mat_Close(mat);
    quiet_end(&saved);
    return rc;
}
