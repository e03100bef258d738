/* Extended XYZ writer in ASE's layout, with shortest round-trip numbers, so that ASE reads
 * back every stored value exactly. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct h5ml_xyz_writer {
    h5ml_base base;
    char *path;
    FILE *fp;
    char *line;
    size_t cap, len;
};

h5ml_xyz_writer *h5ml_xyz_writer_new(void)
{
    h5ml_xyz_writer *xw = calloc(1, sizeof *xw);
    if (xw == NULL) return NULL;
    h5ml__base_init(&xw->base);
    return xw;
}

int h5ml_xyz_writer_open(h5ml_xyz_writer *xw, const char *path)
{
    if (xw == NULL) return H5ML_ERR_ARG;
    if (path == NULL) return h5ml__fail(&xw->base, H5ML_ERR_ARG, "no output path given");
    if (xw->fp) return h5ml__fail(&xw->base, H5ML_ERR_STATE, "this writer is already open");
    xw->path = strdup(path);
    xw->fp = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (xw->fp == NULL) return h5ml__fail(&xw->base, H5ML_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    setvbuf(xw->fp, NULL, _IOFBF, 1 << 20);
    return h5ml__ok(&xw->base);
}

/* ---- a growing line buffer ---- */

static int reserve(h5ml_xyz_writer *xw, size_t more)
{
    if (xw->len + more + 1 <= xw->cap) return 0;
    size_t cap = xw->cap ? xw->cap : 4096;
    while (cap < xw->len + more + 1) cap *= 2;
    char *p = realloc(xw->line, cap);
    if (p == NULL) return -1;
    xw->line = p;
    xw->cap = cap;
    return 0;
}

static void put(h5ml_xyz_writer *xw, const char *s, size_t n)
{
    if (reserve(xw, n) < 0) return;
    memcpy(xw->line + xw->len, s, n);
    xw->len += n;
    xw->line[xw->len] = 0;
}

static void puts_(h5ml_xyz_writer *xw, const char *s) { put(xw, s, strlen(s)); }

static void putd(h5ml_xyz_writer *xw, double v)
{
    char b[32];
    put(xw, b, (size_t)h5ml__fmt_double(b, v));
}

static void puti(h5ml_xyz_writer *xw, long long v)
{
    char b[32];
    put(xw, b, (size_t)snprintf(b, sizeof b, "%lld", v));
}

/* ASE's escape(): quote when the text holds spaces, quotes or brackets. Every character
 * the reader splits at counts as a space (fuzz: a key "&\r" written bare came back as "&"). */
static void put_escaped(h5ml_xyz_writer *xw, const char *s)
{
    if (*s && !strpbrk(s, " \"'{}[]\t\r\v\f=\\")) {
        puts_(xw, s);
        return;
    }
    put(xw, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') put(xw, "\\", 1);
        put(xw, s, 1);
    }
    put(xw, "\"", 1);
}

/* ---- info values ---- */

static bool all_of(json_t *arr, int (*pred)(const json_t *))
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (!pred(e)) return false;
    return json_array_size(arr) > 0;
}

static int is_int(const json_t *e) { return json_is_integer(e); }
static int is_real(const json_t *e) { return json_is_real(e); }
static int is_bool(const json_t *e) { return json_is_boolean(e); }

/* Whether the string s, written bare (put_escaped), reads back as this same string under
 * `key`: the reader makes numbers, booleans, arrays and _JSON values of text ("1", "T",
 * "1,2", "", "_JSON 5"), and no line holds a newline. Other strings go as _JSON (the string
 * "1" of a _JSON value would come back as the integer 1). */
static bool reads_back(const char *key, const char *s)
{
    if (strchr(s, '\n')) return false;
    json_t *v = h5ml__xyz_value(key, s);
    bool same = v && json_is_string(v) && strcmp(json_string_value(v), s) == 0;
    json_decref(v);
    return same;
}

static void put_scalar(h5ml_xyz_writer *xw, json_t *v)
{
    if (json_is_integer(v)) puti(xw, (long long)json_integer_value(v));
    else if (json_is_real(v)) putd(xw, json_real_value(v));
    else if (json_is_boolean(v)) put(xw, json_is_true(v) ? "T" : "F", 1);
}

/* Arrays are written bare ("1 2 3") only when they read back as the same array: two or
 * more elements (one reads back as a scalar), all integers, all floats or all booleans (the
 * reader makes floats of "1 2.5"); the rest go as _JSON. */
static void put_value(h5ml_xyz_writer *xw, const char *key, json_t *v)
{
    if (json_is_number(v) || json_is_boolean(v)) {
        put_scalar(xw, v);
    } else if (json_is_string(v) && reads_back(key, json_string_value(v))) {
        put_escaped(xw, json_string_value(v));
    } else if (json_is_array(v) && json_array_size(v) > 1 && (all_of(v, is_int) || all_of(v, is_real) || all_of(v, is_bool))) {
        put(xw, "\"", 1);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i) put(xw, " ", 1);
            put_scalar(xw, e);
        }
        put(xw, "\"", 1);
    } else {
        char *j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (j == NULL) return;
        size_t n = strlen(j) + 8;
        char *s = malloc(n);
        if (s) {
            snprintf(s, n, "_JSON %s", j);
            put_escaped(xw, s);
            free(s);
        }
        free(j);
    }
}

/* Per-atom extra columns kept under "__arrays__": name -> list (1 column) or list of rows. */
typedef struct extra { const char *name; json_t *data; int ncols; char type; } extra;

/* The type of a column from all its values: a float column holds NaN and Inf as the strings
 * "nan", "inf", so one float anywhere makes it R (its first value alone would make a column
 * starting with NaN a text column). */
static char column_type(json_t *data)
{
    bool real = false, integer = false, boolean = false, text = false;
    size_t i, k;
    json_t *row, *e;
    json_array_foreach(data, i, row)
    {
        size_t n = json_is_array(row) ? json_array_size(row) : 1;
        for (k = 0; k < n; k++) {
            e = json_is_array(row) ? json_array_get(row, k) : row;
            real |= json_is_real(e);
            integer |= json_is_integer(e);
            boolean |= json_is_boolean(e);
            text |= json_is_string(e);
        }
    }
    return real ? 'R' : integer ? 'I' : boolean ? 'L' : text ? 'S' : 'R';
}

static int collect_extras(json_t *arrays, int64_t natoms, extra *out, int max)
{
    int n = 0;
    const char *name;
    json_t *data;
    json_object_foreach(arrays, name, data)
    {
        /* A frame without atoms keeps its (empty) columns too, as one column of floats. */
        if (n == max || !json_is_array(data) || (int64_t)json_array_size(data) != natoms) continue;
        json_t *first = json_array_get(data, 0);
        out[n] = (extra){ name, data, json_is_array(first) ? (int)json_array_size(first) : 1, column_type(data) };
        n++;
    }
    return n;
}

/* A text cell goes bare: atom lines are split at spaces only, so quotes would become part
 * of the value (a cell a"b would come back as "a\"b", quotes and all). Only text that is empty or holds
 * spaces, which a read cell never does, is quoted. */
static void put_cell_value(h5ml_xyz_writer *xw, json_t *e, char type)
{
    const char *t = json_is_string(e) ? json_string_value(e) : "";
    if (type == 'S' && *t && !strpbrk(t, " \t\r\n\v\f")) puts_(xw, t);
    else if (type == 'S') put_escaped(xw, t);
    else if (json_is_string(e)) puts_(xw, json_string_value(e)); /* nan / inf kept as text */
    else put_scalar(xw, e);
}

static int write_frame(h5ml_xyz_writer *xw, const h5ml_frame *f)
{
    json_t *info = NULL, *arrays = NULL;
    if (f->info_json) {
        info = json_loads(f->info_json, 0, NULL);
        if (info && !json_is_object(info)) {
            json_decref(info);
            info = NULL;
        }
        arrays = info ? json_object_get(info, "__arrays__") : NULL;
    }
    extra ex[64];
    int nex = arrays ? collect_extras(arrays, f->natoms, ex, 64) : 0;
    xw->len = 0;
    puti(xw, (long long)f->natoms);
    put(xw, "\n", 1);
    bool cell_any = false;
    for (int k = 0; k < 9; k++) cell_any |= f->cell[k] != 0;
    if (cell_any) {
        puts_(xw, "Lattice=\"");
        for (int k = 0; k < 9; k++) {
            if (k) put(xw, " ", 1);
            putd(xw, f->cell[k]);
        }
        puts_(xw, "\" ");
    }
    puts_(xw, "Properties=species:S:1:pos:R:3:forces:R:3");
    for (int k = 0; k < nex; k++) {
        char b[96];
        snprintf(b, sizeof b, ":%s:%c:%d", ex[k].name, ex[k].type, ex[k].ncols);
        puts_(xw, b);
    }
    puts_(xw, " energy=");
    putd(xw, f->energy);
    if (f->has_stress) {
        const double *s = f->stress; /* Voigt xx yy zz yz xz xy -> symmetric 3x3 */
        double m[9] = { s[0], s[5], s[4], s[5], s[1], s[3], s[4], s[3], s[2] };
        puts_(xw, " stress=\"");
        for (int k = 0; k < 9; k++) {
            if (k) put(xw, " ", 1);
            putd(xw, m[k]);
        }
        put(xw, "\"", 1);
    }
    if (info) {
        const char *key;
        json_t *v;
        json_object_foreach(info, key, v)
        {
            if (strcmp(key, "__arrays__") == 0 || strcmp(key, "energy") == 0 || strcmp(key, "stress") == 0 ||
                strcmp(key, "pbc") == 0 || strcmp(key, "Lattice") == 0 || strcmp(key, "Properties") == 0)
                continue;
            put(xw, " ", 1);
            put_escaped(xw, key);
            put(xw, "=", 1);
            put_value(xw, key, v);
        }
    }
    puts_(xw, " pbc=\"");
    for (int k = 0; k < 3; k++) {
        if (k) put(xw, " ", 1);
        put(xw, f->pbc[k] ? "T" : "F", 1);
    }
    puts_(xw, "\"\n");
    for (int64_t i = 0; i < f->natoms; i++) {
        const char *sym = h5ml_symbol((int)f->numbers[i]);
        puts_(xw, sym ? sym : "X");
        for (int k = 0; k < 3; k++) {
            put(xw, " ", 1);
            putd(xw, f->positions[3 * i + k]);
        }
        for (int k = 0; k < 3; k++) {
            put(xw, " ", 1);
            putd(xw, (double)f->forces[3 * i + k]);
        }
        for (int c = 0; c < nex; c++) {
            json_t *row = json_array_get(ex[c].data, (size_t)i);
            for (int k = 0; k < ex[c].ncols; k++) {
                put(xw, " ", 1);
                put_cell_value(xw, ex[c].ncols > 1 ? json_array_get(row, (size_t)k) : row, ex[c].type);
            }
        }
        put(xw, "\n", 1);
        if (xw->len > (1 << 16)) { /* keep the line buffer small for big frames */
            if (fwrite(xw->line, 1, xw->len, xw->fp) != xw->len) break;
            xw->len = 0;
        }
    }
    json_decref(info);
    if (xw->len > xw->cap) return h5ml__fail(&xw->base, H5ML_ERR_NOMEM, "out of memory");
    if (fwrite(xw->line, 1, xw->len, xw->fp) != xw->len || ferror(xw->fp))
        return h5ml__fail(&xw->base, H5ML_ERR_IO, "%s: write error: %s", xw->path, strerror(errno));
    return H5ML_OK;
}

int h5ml_xyz_writer_write(h5ml_xyz_writer *xw, const h5ml_frame *f)
{
    if (xw == NULL || f == NULL) return H5ML_ERR_ARG;
    if (xw->fp == NULL) return h5ml__fail(&xw->base, H5ML_ERR_STATE, "the writer is not open");
    int rc = write_frame(xw, f);
    if (rc == H5ML_OK) h5ml__ok(&xw->base);
    return rc;
}

int h5ml_xyz_writer_close(h5ml_xyz_writer *xw)
{
    if (xw == NULL) return H5ML_OK;
    int rc = H5ML_OK;
    if (xw->fp) {
        bool err = fflush(xw->fp) != 0 || ferror(xw->fp);
        if (xw->fp != stdout && fclose(xw->fp) != 0) err = true;
        if (err) rc = H5ML_ERR_IO;
    }
    free(xw->line);
    free(xw->path);
    free(xw);
    return rc;
}
