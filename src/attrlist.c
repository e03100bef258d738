/* A list of attributes to write later (writers collect the caller's extra metadata and
 * write it at finalize). A key set twice keeps the last value. */
#include "internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { A_STR, A_INT, A_DOUBLE, A_BOOL, A_INTS, A_DOUBLES, A_STRS } attr_kind;

struct h5ml_attr {
    char *key;
    attr_kind kind;
    int64_t i;
    double d;
    void *arr; /* string, numbers, or an array of strings */
    size_t n;
};

void h5ml__attrs_free(h5ml_attrlist *l)
{
    for (size_t k = 0; k < l->n; k++) {
        if (l->v[k].kind == A_STRS)
            for (size_t j = 0; j < l->v[k].n; j++) free(((char **)l->v[k].arr)[j]);
        free(l->v[k].key);
        free(l->v[k].arr);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Takes ownership of e->arr (freed on failure). */
static int put(h5ml_attrlist *l, const char *key, struct h5ml_attr e)
{
    e.key = strdup(key);
    struct h5ml_attr *p = e.key ? realloc(l->v, sizeof *p * (l->n + 1)) : NULL;
    if (p == NULL) {
        if (e.kind == A_STRS && e.arr)
            for (size_t j = 0; j < e.n; j++) free(((char **)e.arr)[j]);
        free(e.key);
        free(e.arr);
        return -1;
    }
    l->v = p;
    l->v[l->n++] = e;
    return 0;
}

int h5ml__attrs_str(h5ml_attrlist *l, const char *key, const char *v)
{
    char *s = strdup(v ? v : "");
    if (s == NULL) return -1;
    return put(l, key, (struct h5ml_attr){ .kind = A_STR, .arr = s });
}

int h5ml__attrs_int(h5ml_attrlist *l, const char *key, int64_t v) { return put(l, key, (struct h5ml_attr){ .kind = A_INT, .i = v }); }
int h5ml__attrs_double(h5ml_attrlist *l, const char *key, double v) { return put(l, key, (struct h5ml_attr){ .kind = A_DOUBLE, .d = v }); }
int h5ml__attrs_bool(h5ml_attrlist *l, const char *key, int v) { return put(l, key, (struct h5ml_attr){ .kind = A_BOOL, .i = v != 0 }); }

static int put_array(h5ml_attrlist *l, const char *key, attr_kind kind, const void *v, size_t n, size_t elem)
{
    void *a = malloc(n * elem + 1);
    if (a == NULL) return -1;
    if (n) memcpy(a, v, n * elem);
    return put(l, key, (struct h5ml_attr){ .kind = kind, .arr = a, .n = n });
}

int h5ml__attrs_ints(h5ml_attrlist *l, const char *key, const int64_t *v, size_t n) { return put_array(l, key, A_INTS, v, n, sizeof *v); }
int h5ml__attrs_doubles(h5ml_attrlist *l, const char *key, const double *v, size_t n) { return put_array(l, key, A_DOUBLES, v, n, sizeof *v); }

int h5ml__attrs_strs(h5ml_attrlist *l, const char *key, const char *const *v, size_t n)
{
    char **a = calloc(n + 1, sizeof *a);
    if (a == NULL) return -1;
    for (size_t k = 0; k < n; k++)
        if ((a[k] = strdup(v[k] ? v[k] : "")) == NULL) {
            for (size_t j = 0; j < k; j++) free(a[j]);
            free(a);
            return -1;
        }
    return put(l, key, (struct h5ml_attr){ .kind = A_STRS, .arr = a, .n = n });
}

int h5ml__attrs_write(hid_t loc, const h5ml_attrlist *l)
{
    int rc = 0;
    for (size_t k = 0; k < l->n; k++) {
        const struct h5ml_attr *e = &l->v[k];
        switch (e->kind) {
        case A_STR: rc |= h5ml__attr_str(loc, e->key, e->arr); break;
        case A_INT: rc |= h5ml__attr_i64(loc, e->key, e->i); break;
        case A_DOUBLE: rc |= h5ml__attr_f64(loc, e->key, e->d); break;
        case A_BOOL: rc |= h5ml__attr_bool(loc, e->key, (int)e->i); break;
        case A_INTS: rc |= h5ml__attr_i64s(loc, e->key, e->arr, e->n); break;
        case A_DOUBLES: rc |= h5ml__attr_f64s(loc, e->key, e->arr, e->n); break;
        case A_STRS: rc |= h5ml__attr_strs(loc, e->key, (const char *const *)e->arr, e->n); break;
        }
    }
    return rc;
}

/* ---- attributes as JSON -------------------------------------------------------------------- */

static json_t *number_json(hid_t a, hid_t t, hid_t s)
{
    hssize_t n = H5Sget_simple_extent_npoints(s);
    int rank = H5Sget_simple_extent_ndims(s);
    H5T_class_t c = H5Tget_class(t);
    if (n < 0) return json_null();
    bool is_bool = c == H5T_ENUM && h5ml__is_bool_type(t);
    if (c == H5T_ENUM && !is_bool) return json_null();
    void *buf = malloc(8 * (size_t)(n ? n : 1));
    if (buf == NULL) return json_null();
    hid_t mt = c == H5T_FLOAT ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
    if (is_bool) mt = H5T_NATIVE_INT8;
    json_t *arr = json_array();
    if (n > 0 && H5Aread(a, mt, buf) >= 0) {
        for (hssize_t k = 0; k < n; k++) {
            json_t *v;
            if (is_bool) v = json_boolean(((int8_t *)buf)[k]);
            else if (c == H5T_FLOAT) v = isfinite(((double *)buf)[k]) ? json_real(((double *)buf)[k]) : json_null();
            else v = json_integer(((int64_t *)buf)[k]);
            json_array_append_new(arr, v);
        }
    }
    free(buf);
    if (rank == 0 && json_array_size(arr) == 1) {
        json_t *v = json_incref(json_array_get(arr, 0));
        json_decref(arr);
        return v;
    }
    return arr;
}

static json_t *string_json(hid_t a, hid_t t, hid_t s)
{
    hssize_t n = H5Sget_simple_extent_npoints(s);
    int rank = H5Sget_simple_extent_ndims(s);
    json_t *arr = json_array();
    if (n <= 0) return arr;
    if (H5Tis_variable_str(t) > 0) {
        char **v = calloc((size_t)n, sizeof *v);
        hid_t mt = h5ml__vlen_str_type();
        if (v && H5Aread(a, mt, v) >= 0) {
            for (hssize_t k = 0; k < n; k++) json_array_append_new(arr, json_string(v[k] ? v[k] : ""));
            H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
        }
        H5Tclose(mt);
        free(v);
    } else {
        size_t len = H5Tget_size(t);
        char *v = calloc((size_t)n, len + 1), *one = malloc(len + 1);
        if (v && one && H5Aread(a, t, v) >= 0)
            for (hssize_t k = 0; k < n; k++) {
                memcpy(one, v + (size_t)k * len, len);
                one[len] = 0;
                json_array_append_new(arr, json_string(one));
            }
        free(v);
        free(one);
    }
    if (rank == 0 && json_array_size(arr) == 1) {
        json_t *x = json_incref(json_array_get(arr, 0));
        json_decref(arr);
        return x;
    }
    return arr;
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    json_t *obj = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    json_t *v = H5Tget_class(t) == H5T_STRING ? string_json(a, t, s) : number_json(a, t, s);
    json_object_set_new(obj, name, v);
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    return 0;
}

bool h5ml__utf8_ok(const char *s)
{
    json_t *t = json_string(s); /* jansson checks UTF-8 as JSON needs it */
    json_decref(t);
    return t != NULL;
}

char *h5ml__attrs_json(hid_t loc)
{
    json_t *obj = json_object();
    hsize_t idx = 0;
    /* creation order when the object tracks it (h5ml's /metadata), else by name */
    if (H5Aiterate2(loc, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, attr_cb, obj) < 0 || json_object_size(obj) == 0) {
        H5Eclear2(H5E_DEFAULT);
        json_object_clear(obj);
        idx = 0;
        H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, obj);
    }
    H5Eclear2(H5E_DEFAULT);
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return text;
}
