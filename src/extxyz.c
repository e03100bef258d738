/* Streaming extended XYZ reader.
 *
 * The comment line is read with ASE's own grammar (ase.io.extxyz.key_val_str_to_dict):
 * whitespace separates pairs, '=' separates key and value, quotes '"' and '\'' and brackets
 * '{' '[' group, '\' escapes; a bare key means True; values become integers, floats,
 * arrays of them, T/F booleans, "_JSON ..." JSON, or stay strings. Lattice, stress and
 * virial are 3x3 in Fortran order. The atom lines follow Properties=name:type:ncols.
 *
 * Memory is bounded by the largest frame: the file is read through a buffer that holds the
 * current line only, and per-atom arrays grow to the largest frame seen. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_SIZE (1 << 20)
#define MAX_COLS 64

typedef enum { CT_SPECIES, CT_Z, CT_POS, CT_FORCES, CT_EXTRA } col_role;

typedef struct prop {
    char name[64];
    char type;   /* S R I L */
    int ncols;
    col_role role;
    json_t *data; /* extra columns: per-atom values */
} prop;

struct h5ml_xyz_reader {
    h5ml_base base;
    char *path;
    int fd;
    char *buf;
    size_t cap, start, end;
    bool eof;
    int64_t line, consumed, total, frame;
    int64_t acap;
    int64_t *numbers;
    double *positions, *forces;
    char *info_json;
    prop props[MAX_COLS];
    int nprops;
};

h5ml_xyz_reader *h5ml_xyz_reader_new(void)
{
    h5ml_xyz_reader *x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    h5ml__base_init(&x->base);
    x->fd = -1;
    return x;
}

int h5ml_xyz_reader_open(h5ml_xyz_reader *x, const char *path)
{
    if (x == NULL) return H5ML_ERR_ARG;
    if (path == NULL) return h5ml__fail(&x->base, H5ML_ERR_ARG, "no input path given");
    if (x->fd >= 0) return h5ml__fail(&x->base, H5ML_ERR_STATE, "this reader is already open");
    x->path = strdup(path);
    if (strcmp(path, "-") == 0) {
        x->fd = dup(0);
    } else {
        x->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (x->fd < 0) return h5ml__fail(&x->base, H5ML_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    x->total = (fstat(x->fd, &st) == 0 && S_ISREG(st.st_mode)) ? (int64_t)st.st_size : -1;
    if (x->total >= 0 && S_ISDIR(st.st_mode)) return h5ml__fail(&x->base, H5ML_ERR_IO, "%s: is a directory", path);
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(x->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    x->cap = READ_SIZE;
    x->buf = malloc(x->cap);
    if (x->buf == NULL) return h5ml__fail(&x->base, H5ML_ERR_NOMEM, "out of memory");
    return h5ml__ok(&x->base);
}

void h5ml_xyz_reader_progress(const h5ml_xyz_reader *x, int64_t *done, int64_t *total)
{
    *done = x ? x->consumed : 0;
    *total = x ? x->total : -1;
}

static void clear_props(h5ml_xyz_reader *x)
{
    for (int i = 0; i < x->nprops; i++) json_decref(x->props[i].data);
    x->nprops = 0;
}

void h5ml_xyz_reader_close(h5ml_xyz_reader *x)
{
    if (x == NULL) return;
    if (x->fd >= 0) close(x->fd);
    clear_props(x);
    free(x->buf);
    free(x->path);
    free(x->numbers);
    free(x->positions);
    free(x->forces);
    free(x->info_json);
    free(x);
}

static int perr(h5ml_xyz_reader *x, int64_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- lines ------------------------------------------------------------------------------ */

static int fill(h5ml_xyz_reader *x)
{
    if (x->start > 0) {
        memmove(x->buf, x->buf + x->start, x->end - x->start);
        x->end -= x->start;
        x->start = 0;
    }
    if (x->end == x->cap) {
        char *b = realloc(x->buf, x->cap * 2);
        if (b == NULL) return h5ml__fail(&x->base, H5ML_ERR_NOMEM, "%s: out of memory (line %lld longer than %zu bytes)",
                                         x->path, (long long)x->line + 1, x->cap);
        x->buf = b;
        x->cap *= 2;
    }
    for (;;) {
        ssize_t r = read(x->fd, x->buf + x->end, x->cap - x->end);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return h5ml__fail(&x->base, H5ML_ERR_IO, "%s: read error: %s", x->path, strerror(errno));
        if (r == 0) x->eof = true;
        x->end += (size_t)r;
        return H5ML_OK;
    }
}

/* Next line without its end-of-line; returns 1 with *p, *len set, 0 at end of input, or -1. */
static int next_line(h5ml_xyz_reader *x, char **p, size_t *len)
{
    size_t scanned = 0;
    for (;;) {
        char *s = x->buf + x->start, *nl = memchr(s + scanned, '\n', x->end - x->start - scanned);
        if (nl || (x->eof && x->end > x->start)) {
            size_t n = nl ? (size_t)(nl - s) : x->end - x->start;
            x->start += n + (nl ? 1 : 0);
            x->consumed += (int64_t)n + (nl ? 1 : 0);
            x->line++;
            if (n > 0 && s[n - 1] == '\r') n--;
            s[n] = 0; /* the newline (or spare capacity) becomes the terminator */
            /* A NUL byte would cut keys and values short where they become C strings (fuzz:
             * "0\n\0\r1 0\n" made the key "\0" an empty key that was written back as ""=T
             * and read back as part of the previous value). Text has none. */
            if (memchr(s, 0, n) != NULL) {
                perr(x, x->line, "line %lld contains a NUL byte (not a text file?)", (long long)x->line);
                return -1;
            }
            *p = s;
            *len = n;
            return 1;
        }
        if (x->eof) return 0;
        scanned = x->end - x->start;
        if (x->end == x->cap && x->start == 0 && fill(x) != H5ML_OK) return -1;
        else if (fill(x) != H5ML_OK) return -1;
    }
}

static int perr(h5ml_xyz_reader *x, int64_t line, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return h5ml__fail(&x->base, H5ML_ERR_PARSE, "%s: frame %lld (line %lld): %s", x->path, (long long)x->frame,
                      (long long)line, what);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n'; }

/* ---- comment line: ASE's key=value grammar ------------------------------------------------ */

typedef struct kv { const char *key; const char *val; bool has_val; } kv;

typedef struct part { int pair; size_t start, len; } part;

/* Splits the comment line into key/value pairs exactly as key_val_str_to_dict does (same
 * quoting, escapes, bare keys and "key = value" spacing). Characters go into `chars`
 * (len + 1 bytes), the resulting strings into `strs` (2 * len + 8 bytes). Returns the
 * pair count (at most maxkv). */
static int split_pairs(const char *s, size_t len, char *chars, char *strs, kv *kvs, int maxkv, part *parts)
{
    while (len && is_space(*s)) s++, len--;
    while (len && is_space(s[len - 1])) len--;
    int npairs = 1, nparts = 1, pair_first[1024], pair_nparts[1024];
    pair_first[0] = 0;
    pair_nparts[0] = 1;
    parts[0] = (part){ 0, 0, 0 };
    size_t w = 0;
    char close = 0;
    bool esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        part *last = &parts[nparts - 1];
        if (esc) {
            chars[w++] = c;
            last->len++;
            esc = false;
        } else if (c == '\\') {
            esc = true;
        } else if (close) {
            if (c == close) {
                close = 0;
            } else {
                chars[w++] = c;
                last->len++;
            }
        } else if (c == '"' || c == '\'' || c == '{' || c == '[') {
            close = c == '{' ? '}' : c == '[' ? ']' : c;
        } else if (is_space(c)) {
            if (last->len == 0 || npairs >= maxkv || npairs >= 1024 || nparts >= 2 * maxkv) continue;
            pair_first[npairs] = nparts;
            pair_nparts[npairs] = 1;
            parts[nparts++] = (part){ npairs, w, 0 };
            npairs++;
        } else if (c != '=') {
            chars[w++] = c;
            last->len++;
        } else {
            if (pair_nparts[npairs - 1] == 1 && last->len == 0 && npairs > 1) {
                npairs--; /* "key =value": the '=' belongs to the previous pair */
                nparts--;
            }
            if (nparts >= 2 * maxkv) continue;
            parts[nparts++] = (part){ npairs - 1, w, 0 };
            pair_nparts[npairs - 1]++;
        }
    }
    int n = 0;
    char *o = strs;
    for (int p = 0; p < npairs; p++) {
        const part *k = &parts[pair_first[p]];
        if (pair_nparts[p] == 1 && k->len == 0) continue;
        kvs[n].key = o;
        memcpy(o, chars + k->start, k->len);
        o += k->len;
        *o++ = 0;
        kvs[n].has_val = pair_nparts[p] > 1;
        kvs[n].val = o;
        for (int q = 1; q < pair_nparts[p]; q++) {
            const part *v = &parts[pair_first[p] + q];
            if (q > 1) *o++ = '=';
            memcpy(o, chars + v->start, v->len);
            o += v->len;
        }
        *o++ = 0;
        n++;
    }
    return n;
}

/* Tokens of a value: runs of characters other than whitespace and ','. */
static int tokens(const char *v, const char **tok, size_t *tlen, int max)
{
    int n = 0;
    while (*v) {
        while (*v && (is_space(*v) || *v == ',')) v++;
        if (!*v) break;
        const char *t = v;
        while (*v && !is_space(*v) && *v != ',') v++;
        if (n < max) {
            tok[n] = t;
            tlen[n] = (size_t)(v - t);
        }
        n++;
    }
    return n;
}

static json_t *real_json(double d)
{
    if (isfinite(d)) return json_real(d);
    return json_string(isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
}

/* Converts a value string as ASE does: ints, else floats, else booleans, else JSON, else
 * the string itself. */
static json_t *convert_value(const char *key, const char *v)
{
    enum { MAXT = 4096 };
    static __thread const char *tok[MAXT];
    static __thread size_t tl[MAXT];
    if (strcasecmp(key, "uid") == 0) return json_string(v);
    int nt = tokens(v, tok, tl, MAXT);
    if (nt <= MAXT) {
        bool ints = true, reals = true;
        json_t *arr = json_array();
        for (int i = 0; i < nt && ints; i++) {
            int64_t iv;
            const char *e = h5ml__parse_int(tok[i], tok[i] + tl[i], &iv);
            if (e != tok[i] + tl[i]) ints = false;
            else json_array_append_new(arr, json_integer(iv));
        }
        if (!ints) {
            json_array_clear(arr);
            for (int i = 0; i < nt && reals; i++) {
                double d;
                const char *e = h5ml__parse_double(tok[i], tok[i] + tl[i], &d);
                if (e != tok[i] + tl[i]) reals = false;
                else json_array_append_new(arr, real_json(d));
            }
        }
        if (ints || reals) {
            if (nt == 1) {
                json_t *one = json_incref(json_array_get(arr, 0));
                json_decref(arr);
                return one;
            }
            return arr;
        }
        json_decref(arr);
        bool bools = nt > 0;
        for (int i = 0; i < nt && bools; i++)
            if (tl[i] != 1 || (tok[i][0] != 'T' && tok[i][0] != 'F')) bools = false;
        if (bools) {
            if (nt == 1) return json_boolean(tok[0][0] == 'T');
            json_t *b = json_array();
            for (int i = 0; i < nt; i++) json_array_append_new(b, json_boolean(tok[i][0] == 'T'));
            return b;
        }
    }
    if (strncmp(v, "_JSON ", 6) == 0) {
        /* No NUL inside strings: it would cut them short as C strings (and in the file's
         * UTF-8 strings), so such a value stays text. */
        json_t *j = json_loads(v + 6, JSON_DECODE_ANY, NULL);
        if (j) return j;
    }
    return json_string(v);
}

json_t *h5ml__xyz_value(const char *key, const char *v) { return convert_value(key, v); }

static bool to_double(json_t *e, double *out)
{
    if (json_is_number(e)) {
        *out = json_number_value(e);
        return true;
    }
    const char *t = json_is_string(e) ? json_string_value(e) : NULL;
    if (t == NULL) return false;
    if (strcmp(t, "nan") == 0) *out = NAN;
    else if (strcmp(t, "inf") == 0) *out = INFINITY;
    else if (strcmp(t, "-inf") == 0) *out = -INFINITY;
    else return false;
    return true;
}

/* n numbers from a scalar (n == 1) or an array of n. */
static bool numbers_of(json_t *v, double *out, size_t n)
{
    if (n == 1 && !json_is_array(v)) return to_double(v, out);
    if (!json_is_array(v) || json_array_size(v) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!to_double(json_array_get(v, i), &out[i])) return false;
    return true;
}

static double det3(const double m[9])
{
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/* ---- Properties ------------------------------------------------------------------------- */

static int parse_properties(h5ml_xyz_reader *x, int64_t line, const char *spec)
{
    clear_props(x);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL, *name = strtok_r(buf, ":", &save);
    bool have_pos = false, have_sym = false;
    while (name) {
        char *type = strtok_r(NULL, ":", &save), *cols = strtok_r(NULL, ":", &save);
        if (type == NULL || cols == NULL)
            return perr(x, line, "Properties=%s is not a list of name:type:columns", spec);
        if (x->nprops == MAX_COLS) return perr(x, line, "too many Properties (more than %d)", MAX_COLS);
        /* The name becomes a JSON key (fuzz: a name with bytes that are not UTF-8 made the
         * column vanish from the metadata), and is not cut short. */
        if (strlen(name) >= sizeof x->props[0].name)
            return perr(x, line, "property name '%.60s...' is longer than %zu bytes", name, sizeof x->props[0].name - 1);
        if (!h5ml__utf8_ok(name)) return perr(x, line, "property name '%s' is not valid UTF-8", name);
        prop *p = &x->props[x->nprops];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
        p->type = type[0];
        char *end;
        long nc = strtol(cols, &end, 10);
        if (strlen(type) != 1 || !strchr("SRIL", p->type))
            return perr(x, line, "unknown property type '%s' for %s (expected S, R, I or L)", type, name);
        if (*end || nc < 1 || nc > 1000) return perr(x, line, "bad column count '%s' for property %s", cols, name);
        p->ncols = (int)nc;
        if (strcmp(name, "species") == 0 && p->type == 'S' && nc == 1) p->role = CT_SPECIES, have_sym = true;
        else if (strcmp(name, "Z") == 0 && p->type == 'I' && nc == 1) p->role = CT_Z, have_sym = true;
        else if (strcmp(name, "pos") == 0 && p->type == 'R' && nc == 3) p->role = CT_POS, have_pos = true;
        else if ((strcmp(name, "forces") == 0 || strcmp(name, "force") == 0) && p->type == 'R' && nc == 3)
            p->role = CT_FORCES;
        else p->role = CT_EXTRA;
        x->nprops++;
        name = strtok_r(NULL, ":", &save);
    }
    if (!have_pos) return perr(x, line, "Properties=%s has no pos:R:3 column", spec);
    if (!have_sym) return perr(x, line, "Properties=%s has neither species:S:1 nor Z:I:1", spec);
    return H5ML_OK;
}

static int grow_atoms(h5ml_xyz_reader *x, int64_t n)
{
    if (n <= x->acap) return H5ML_OK;
    size_t cap = (size_t)(n < 256 ? 256 : n);
    if (h5ml__resize(&x->numbers, cap, sizeof *x->numbers) || h5ml__resize(&x->positions, 3 * cap, sizeof *x->positions) ||
        h5ml__resize(&x->forces, 3 * cap, sizeof *x->forces))
        return h5ml__fail(&x->base, H5ML_ERR_NOMEM, "%s: out of memory for %lld atoms", x->path, (long long)n);
    x->acap = (int64_t)cap;
    return H5ML_OK;
}

/* ---- frames ------------------------------------------------------------------------------ */

typedef struct header {
    json_t *info;
    bool has_energy, has_free, has_stress, has_lattice, has_pbc;
    double energy, free_energy, stress[6];
    const char *properties;
    json_t *virial;
} header;

/* pbc="T T F" (or a single T/F, or True/False words). */
static int parse_pbc(h5ml_xyz_reader *x, h5ml_xyz_frame *f, json_t *v, const char *val)
{
    if (json_is_boolean(v)) {
        f->pbc[0] = f->pbc[1] = f->pbc[2] = json_is_true(v);
        return H5ML_OK;
    }
    if (json_is_array(v) && json_array_size(v) == 3) {
        for (int i = 0; i < 3; i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_boolean(e)) return perr(x, f->line + 1, "pbc must be three T/F flags, found '%s'", val);
            f->pbc[i] = json_is_true(e);
        }
        return H5ML_OK;
    }
    const char *t[4];
    size_t tl[4];
    if (json_is_string(v) && tokens(json_string_value(v), t, tl, 4) == 3) {
        for (int i = 0; i < 3; i++) {
            bool tr = tl[i] == 4 && strncmp(t[i], "True", 4) == 0, fa = tl[i] == 5 && strncmp(t[i], "False", 5) == 0;
            if (!tr && !fa) return perr(x, f->line + 1, "pbc must be three T/F flags, found '%s'", val);
            f->pbc[i] = tr;
        }
        return H5ML_OK;
    }
    return perr(x, f->line + 1, "pbc must be three T/F flags, found '%s'", val);
}

static int parse_comment(h5ml_xyz_reader *x, h5ml_xyz_frame *f, char *line, size_t len, header *h)
{
    enum { MAXKV = 1000 };
    kv *kvs = malloc(sizeof *kvs * MAXKV);
    part *parts = malloc(sizeof *parts * 2 * MAXKV);
    char *chars = malloc(len + 8), *out = malloc(2 * len + 16);
    if (!kvs || !out || !parts || !chars) {
        free(kvs);
        free(out);
        free(parts);
        free(chars);
        return h5ml__fail(&x->base, H5ML_ERR_NOMEM, "out of memory");
    }
    int n = split_pairs(line, len, chars, out, kvs, MAXKV, parts);
    int rc = H5ML_OK;
    h->info = json_object();
    static const char *const default_props = "species:S:1:pos:R:3";
    h->properties = default_props;
    for (int k = 0; k < n && rc == H5ML_OK; k++) {
        const char *key = kvs[k].key, *val = kvs[k].has_val ? kvs[k].val : "T";
        if (!*key) { /* "=5" or '""=5' first on the line: no key to store it under, nor to write back */
            rc = perr(x, f->line + 1, "empty key before '=%s'", val);
            break;
        }
        if (!h5ml__utf8_ok(key)) { /* a JSON key: it would be dropped from the metadata */
            rc = perr(x, f->line + 1, "key '%s' is not valid UTF-8", key);
            break;
        }
        if (strcmp(key, "Properties") == 0) {
            rc = parse_properties(x, f->line + 1, val);
            h->properties = NULL;
            continue;
        }
        json_t *v = convert_value(key, val);
        if (v == NULL) {
            rc = perr(x, f->line + 1, "value of '%s' is not valid UTF-8", key);
            break;
        }
        bool special = strcmp(key, "Lattice") == 0 || strcmp(key, "stress") == 0 || strcmp(key, "virial") == 0;
        double m[9];
        if (special && !numbers_of(v, m, 9) && !(strcmp(key, "stress") == 0 && numbers_of(v, m, 6))) {
            json_decref(v);
            rc = perr(x, f->line + 1, "%s must be 9 numbers (3x3)%s, found '%s'", key,
                      strcmp(key, "stress") == 0 ? " or 6 (Voigt)" : "", val);
            break;
        }
        if (strcmp(key, "Lattice") == 0) {
            memcpy(f->cell, m, sizeof m); /* Fortran-order 3x3, transposed: rows are the vectors */
            h->has_lattice = true;
            json_decref(v);
        } else if (strcmp(key, "stress") == 0) {
            if (json_array_size(v) == 9) {
                double s[6] = { m[0], m[4], m[8], m[7], m[6], m[3] };
                memcpy(h->stress, s, sizeof s);
            } else {
                memcpy(h->stress, m, 6 * sizeof *m);
            }
            h->has_stress = true;
            json_decref(v);
        } else if (strcmp(key, "pbc") == 0) {
            rc = parse_pbc(x, f, v, val);
            json_decref(v);
            if (rc) break;
            h->has_pbc = true;
        } else if (strcmp(key, "energy") == 0 || strcmp(key, "free_energy") == 0) {
            double e;
            if (!numbers_of(v, &e, 1)) {
                json_decref(v);
                rc = perr(x, f->line + 1, "%s must be a number, found '%s'", key, val);
                break;
            }
            if (key[0] == 'e') h->has_energy = true, h->energy = e;
            else h->has_free = true, h->free_energy = e;
            if (key[0] == 'f') json_object_set_new(h->info, key, v); /* kept: export writes it back */
            else json_decref(v);
        } else {
            if (strcmp(key, "virial") == 0) h->virial = v;
            json_object_set_new(h->info, key, v);
        }
    }
    free(kvs);
    free(out);
    free(parts);
    free(chars);
    if (rc == H5ML_OK && h->properties) rc = parse_properties(x, f->line + 1, h->properties);
    return rc;
}

static int parse_atom(h5ml_xyz_reader *x, int64_t line, char *s, size_t len, int64_t i, bool *have_forces)
{
    const char *p = s, *end = s + len;
    for (int c = 0; c < x->nprops; c++) {
        prop *pr = &x->props[c];
        json_t *row = NULL;
        if (pr->role == CT_EXTRA && pr->ncols > 1) row = json_array();
        for (int k = 0; k < pr->ncols; k++) {
            while (p < end && is_space(*p)) p++;
            if (p >= end) {
                json_decref(row);
                return perr(x, line, "atom %lld has too few columns for Properties (missing %s)", (long long)i, pr->name);
            }
            const char *t = p;
            while (p < end && !is_space(*p)) p++;
            size_t tl = (size_t)(p - t);
            double d = 0;
            int64_t iv = 0;
            json_t *v = NULL;
            switch (pr->role) {
            case CT_SPECIES: {
                int z = h5ml__element_z(t, tl);
                if (z < 0) return perr(x, line, "unknown chemical symbol '%.*s' for atom %lld", (int)tl, t, (long long)i);
                x->numbers[i] = z;
                break;
            }
            case CT_Z:
                if (h5ml__parse_int(t, p, &iv) != p)
                    return perr(x, line, "atomic number '%.*s' of atom %lld is not an integer", (int)tl, t, (long long)i);
                x->numbers[i] = iv;
                break;
            case CT_POS:
            case CT_FORCES:
                if (h5ml__parse_double(t, p, &d) != p)
                    return perr(x, line, "%s of atom %lld: '%.*s' is not a number", pr->name, (long long)i, (int)tl, t);
                (pr->role == CT_POS ? x->positions : x->forces)[3 * i + k] = d;
                break;
            case CT_EXTRA: /* errors free the row (fuzz: a bad value in a multi-column extra leaked it) */
                if (pr->type == 'R') {
                    if (h5ml__parse_double(t, p, &d) != p)
                        return json_decref(row),
                               perr(x, line, "%s of atom %lld: '%.*s' is not a number", pr->name, (long long)i, (int)tl, t);
                    v = real_json(d);
                } else if (pr->type == 'I') {
                    if (h5ml__parse_int(t, p, &iv) != p)
                        return json_decref(row),
                               perr(x, line, "%s of atom %lld: '%.*s' is not an integer", pr->name, (long long)i, (int)tl, t);
                    v = json_integer(iv);
                } else if (pr->type == 'L') {
                    bool tr = (tl == 1 && *t == 'T') || (tl == 4 && !strncmp(t, "True", 4));
                    bool fa = (tl == 1 && *t == 'F') || (tl == 5 && !strncmp(t, "False", 5));
                    if (!tr && !fa)
                        return json_decref(row),
                               perr(x, line, "%s of atom %lld: '%.*s' is not T or F", pr->name, (long long)i, (int)tl, t);
                    v = json_boolean(tr);
                } else {
                    v = json_stringn(t, tl);
                    if (v == NULL)
                        return json_decref(row), perr(x, line, "%s of atom %lld is not valid UTF-8", pr->name, (long long)i);
                }
                if (row) json_array_append_new(row, v);
                else json_array_append_new(pr->data, v);
                break;
            }
        }
        if (row) json_array_append_new(pr->data, row);
        if (pr->role == CT_FORCES) *have_forces = true;
    }
    return H5ML_OK;
}

static int read_frame(h5ml_xyz_reader *x, h5ml_xyz_frame *f)
{
    char *s;
    size_t len;
    int got;
    /* count line (blank lines between frames are skipped) */
    for (;;) {
        got = next_line(x, &s, &len);
        if (got <= 0) return got < 0 ? x->base.code : H5ML_DONE;
        size_t a = 0;
        while (a < len && is_space(s[a])) a++;
        if (a < len) break;
    }
    memset(f, 0, sizeof *f);
    f->index = x->frame;
    f->line = x->line;
    const char *b = s, *e = s + len;
    while (b < e && is_space(*b)) b++;
    while (e > b && is_space(e[-1])) e--;
    int64_t natoms;
    if (h5ml__parse_int(b, e, &natoms) != e || natoms < 0)
        return perr(x, f->line, "expected the number of atoms, found '%.*s'", (int)(e - b > 60 ? 60 : e - b), b);
    /* The arrays grow with the atom lines actually read, not to the count announced (fuzz: a
     * count of 98436300 in a 4 KB file allocated 5.5 GB up front). */
    if (grow_atoms(x, natoms < 256 ? natoms : 256) != H5ML_OK) return x->base.code;
    got = next_line(x, &s, &len);
    if (got < 0) return x->base.code;
    if (got == 0) return perr(x, f->line, "file ends after the atom count (no comment line)");
    header h;
    memset(&h, 0, sizeof h);
    int rc = parse_comment(x, f, s, len, &h);
    for (int c = 0; rc == H5ML_OK && c < x->nprops; c++)
        if (x->props[c].role == CT_EXTRA) x->props[c].data = json_array();
    bool have_forces = false;
    for (int64_t i = 0; rc == H5ML_OK && i < natoms; i++) {
        got = next_line(x, &s, &len);
        if (got < 0) rc = x->base.code;
        else if (got == 0) rc = perr(x, f->line, "file ends after %lld of %lld atom lines", (long long)i, (long long)natoms);
        else if (i >= x->acap && grow_atoms(x, 2 * i) != H5ML_OK) rc = x->base.code;
        else rc = parse_atom(x, x->line, s, len, i, &have_forces);
    }
    if (rc == H5ML_OK) {
        f->natoms = natoms;
        f->numbers = x->numbers;
        f->positions = x->positions;
        f->forces = have_forces ? x->forces : NULL;
        f->has_forces = have_forces;
        if (!h.has_pbc && h.has_lattice) f->pbc[0] = f->pbc[1] = f->pbc[2] = 1;
        f->has_energy = h.has_energy || h.has_free;
        f->energy = h.has_energy ? h.energy : h.free_energy;
        if (h.has_stress) {
            f->has_stress = 1;
            memcpy(f->stress, h.stress, sizeof h.stress);
        } else if (h.virial) {
            double v[9], vol = fabs(det3(f->cell));
            if (vol > 0 && numbers_of(h.virial, v, 9)) { /* stress = -virial / volume */
                double s6[6] = { -v[0] / vol, -v[4] / vol, -v[8] / vol, -v[7] / vol, -v[6] / vol, -v[3] / vol };
                memcpy(f->stress, s6, sizeof s6);
                f->has_stress = 1;
            }
        }
        json_t *arrays = NULL;
        for (int c = 0; c < x->nprops; c++)
            if (x->props[c].role == CT_EXTRA) {
                if (arrays == NULL) arrays = json_object();
                json_object_set(arrays, x->props[c].name, x->props[c].data);
            }
        if (arrays) json_object_set_new(h.info, "__arrays__", arrays);
        free(x->info_json);
        x->info_json = json_object_size(h.info) ? json_dumps(h.info, JSON_COMPACT) : NULL;
        f->info_json = x->info_json;
    }
    json_decref(h.info);
    x->frame++;
    return rc;
}

int h5ml_xyz_reader_next(h5ml_xyz_reader *x, h5ml_xyz_frame *f)
{
    if (x == NULL || f == NULL) return H5ML_ERR_ARG;
    if (x->fd < 0) return h5ml__fail(&x->base, H5ML_ERR_STATE, "the reader is not open");
    int rc = read_frame(x, f);
    if (rc == H5ML_OK || rc == H5ML_DONE) h5ml__ok(&x->base);
    return rc;
}
