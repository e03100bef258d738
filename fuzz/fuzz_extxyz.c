/* Fuzz target: the extended XYZ reader (src/extxyz.c), with a round-trip oracle.
 *
 * The input is an XYZ file. Every frame the reader accepts (up to MAX_FRAMES) is written
 * back with the XYZ writer (src/xyzwrite.c) as the h5ml frame it would become (forces as
 * the stored float32, energy 0 when absent), the written file is parsed again, and each
 * frame must come back equal: atomic numbers, positions, cell, pbc, energy, forces and
 * stress value for value (bit for bit; NaN matches NaN), and the metadata
 * (info) as the same JSON. The writer promises numbers that read back exactly (shortest
 * round-trip form, h5ml__fmt_double).
 *
 * Frames outside what an h5ml file can hold are not written back: atomic numbers outside
 * 0..118 (the writer's input comes from h5ml files, whose numbers are validated). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "fuzz_util.h"
#pragma GCC diagnostic pop

#include <jansson.h>
#include <math.h>

enum { MAX_FRAMES = 64 };

typedef struct saved {
    int64_t natoms;
    int64_t *numbers;
    double *positions;
    float *forces;
    double cell[9];
    uint8_t pbc[3];
    double energy;
    int has_stress;
    double stress[6];
    char *info;
} saved;

static void *dup_mem(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q == NULL) abort();
    if (n) memcpy(q, p, n);
    return q;
}

static bool writable(const h5ml_xyz_frame *f)
{
    for (int64_t i = 0; i < f->natoms; i++)
        if (f->numbers[i] < 0 || f->numbers[i] > 118) return false;
    return true;
}

/* The h5ml frame the XYZ frame stands for. */
static void save(saved *s, const h5ml_xyz_frame *f)
{
    size_t n = (size_t)f->natoms;
    s->natoms = f->natoms;
    s->numbers = dup_mem(f->numbers, n * sizeof *s->numbers);
    s->positions = dup_mem(f->positions, 3 * n * sizeof *s->positions);
    s->forces = malloc(3 * n * sizeof *s->forces + 1);
    if (s->forces == NULL) abort();
    for (size_t k = 0; k < 3 * n; k++) s->forces[k] = f->has_forces ? (float)f->forces[k] : 0.0f;
    memcpy(s->cell, f->cell, sizeof s->cell);
    memcpy(s->pbc, f->pbc, sizeof s->pbc);
    s->energy = f->has_energy ? f->energy : 0.0;
    s->has_stress = f->has_stress;
    memcpy(s->stress, f->stress, sizeof s->stress);
    s->info = f->info_json ? strdup(f->info_json) : NULL;
}

static void saved_free(saved *s)
{
    free(s->numbers);
    free(s->positions);
    free(s->forces);
    free(s->info);
}

static h5ml_frame as_frame(const saved *s, int64_t index)
{
    h5ml_frame f;
    memset(&f, 0, sizeof f);
    f.index = index;
    f.natoms = s->natoms;
    f.numbers = s->numbers;
    f.positions = s->positions;
    memcpy(f.cell, s->cell, sizeof f.cell);
    memcpy(f.pbc, s->pbc, sizeof f.pbc);
    f.energy = s->energy;
    f.forces = s->forces;
    f.has_stress = s->has_stress;
    memcpy(f.stress, s->stress, sizeof f.stress);
    f.info_json = s->info;
    return f;
}

static void check_info(int64_t k, const char *want, const char *got)
{
    if (want == NULL || got == NULL) {
        FUZZ_CHECK(want == NULL && got == NULL, "frame %lld: info %s came back as %s", (long long)k, want ? want : "(none)",
                   got ? got : "(none)");
        return;
    }
    json_t *a = json_loads(want, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *b = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(a != NULL, "frame %lld: the reader's info is not JSON: %s", (long long)k, want);
    FUZZ_CHECK(b != NULL, "frame %lld: the info read back is not JSON: %s", (long long)k, got);
    FUZZ_CHECK(json_equal(a, b), "frame %lld: info %s came back as %s", (long long)k, want, got);
    json_decref(a);
    json_decref(b);
}

static void compare(int64_t k, const saved *s, const h5ml_xyz_frame *f)
{
    FUZZ_CHECK(f->natoms == s->natoms, "frame %lld: %lld atoms came back as %lld", (long long)k, (long long)s->natoms,
               (long long)f->natoms);
    for (int64_t i = 0; i < s->natoms; i++) {
        FUZZ_CHECK(f->numbers[i] == s->numbers[i], "frame %lld atom %lld: Z %lld came back as %lld", (long long)k, (long long)i,
                   (long long)s->numbers[i], (long long)f->numbers[i]);
        for (int c = 0; c < 3; c++) {
            double p = s->positions[3 * i + c], q = f->positions[3 * i + c];
            FUZZ_CHECK(fuzz_same_double(p, q), "frame %lld atom %lld: position %.17g came back as %.17g", (long long)k, (long long)i, p, q);
            double fw = (double)s->forces[3 * i + c], fg = f->has_forces ? f->forces[3 * i + c] : 0.0;
            FUZZ_CHECK(f->has_forces, "frame %lld: the forces written were not read back", (long long)k);
            FUZZ_CHECK(fuzz_same_double(fw, fg), "frame %lld atom %lld: force %.9g came back as %.17g", (long long)k, (long long)i, fw, fg);
        }
    }
    /* A zero cell is not written (no Lattice): only its sign of zero may change. */
    for (int c = 0; c < 9; c++)
        FUZZ_CHECK(fuzz_same_double(s->cell[c], f->cell[c]) || (s->cell[c] == 0 && f->cell[c] == 0), "frame %lld: cell[%d] %.17g came back as %.17g",
                   (long long)k, c, s->cell[c], f->cell[c]);
    for (int c = 0; c < 3; c++)
        FUZZ_CHECK(!!s->pbc[c] == !!f->pbc[c], "frame %lld: pbc[%d] %d came back as %d", (long long)k, c, s->pbc[c], f->pbc[c]);
    FUZZ_CHECK(f->has_energy, "frame %lld: the energy written was not read back", (long long)k);
    FUZZ_CHECK(fuzz_same_double(s->energy, f->energy), "frame %lld: energy %.17g came back as %.17g", (long long)k, s->energy, f->energy);
    FUZZ_CHECK(!!s->has_stress == !!f->has_stress, "frame %lld: has_stress %d came back as %d", (long long)k, s->has_stress,
               f->has_stress);
    for (int c = 0; s->has_stress && c < 6; c++)
        FUZZ_CHECK(fuzz_same_double(s->stress[c], f->stress[c]), "frame %lld: stress[%d] %.17g came back as %.17g", (long long)k, c, s->stress[c],
                   f->stress[c]);
    check_info(k, s->info, f->info_json);
}

static void check_error(const void *handle, int rc, const char *path)
{
    fuzz_check_message(handle, rc, "h5ml_xyz_reader_next");
    FUZZ_CHECK(rc == H5ML_ERR_PARSE || rc == H5ML_ERR_NOMEM || rc == H5ML_ERR_IO, "unexpected code %d (%s)", rc, h5ml_errmsg(handle));
    FUZZ_CHECK(strstr(h5ml_errmsg(handle), path) != NULL, "the message does not name %s: %s", path, h5ml_errmsg(handle));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[600], out[600];
    fuzz_path(in, sizeof in, "in.xyz");
    fuzz_path(out, sizeof out, "out.xyz");
    fuzz_write_file(in, data, size);

    h5ml_xyz_reader *x = h5ml_xyz_reader_new();
    h5ml_xyz_writer *xw = h5ml_xyz_writer_new();
    FUZZ_CHECK(x && xw, "out of memory");
    FUZZ_CHECK(h5ml_xyz_reader_open(x, in) == H5ML_OK, "%s", h5ml_errmsg(x));
    FUZZ_CHECK(h5ml_xyz_writer_open(xw, out) == H5ML_OK, "%s", h5ml_errmsg(xw));
    saved frames[MAX_FRAMES];
    int n = 0, rc;
    h5ml_xyz_frame f;
    while (n < MAX_FRAMES && (rc = h5ml_xyz_reader_next(x, &f)) == H5ML_OK) {
        FUZZ_CHECK(f.index == n, "frame index %lld, expected %d", (long long)f.index, n);
        FUZZ_CHECK(f.natoms >= 0, "natoms %lld", (long long)f.natoms);
        if (f.info_json) {
            json_t *j = json_loads(f.info_json, JSON_ALLOW_NUL, NULL);
            FUZZ_CHECK(json_is_object(j), "info is not a JSON object: %s", f.info_json);
            json_decref(j);
        }
        if (!writable(&f)) break;
        save(&frames[n], &f);
        h5ml_frame hf = as_frame(&frames[n], n);
        FUZZ_CHECK(h5ml_xyz_writer_write(xw, &hf) == H5ML_OK, "%s", h5ml_errmsg(xw));
        n++;
    }
    if (n < MAX_FRAMES && rc != H5ML_OK && rc != H5ML_DONE) check_error(x, rc, in);
    h5ml_xyz_reader_close(x);
    FUZZ_CHECK(h5ml_xyz_writer_close(xw) == H5ML_OK, "cannot close %s", out);

    /* Read back what was written. */
    x = h5ml_xyz_reader_new();
    FUZZ_CHECK(x && h5ml_xyz_reader_open(x, out) == H5ML_OK, "%s", h5ml_errmsg(x));
    for (int k = 0; k < n; k++) {
        rc = h5ml_xyz_reader_next(x, &f);
        FUZZ_CHECK(rc == H5ML_OK, "frame %d written is not read back: %s", k, h5ml_errmsg(x));
        compare(k, &frames[k], &f);
    }
    rc = h5ml_xyz_reader_next(x, &f);
    FUZZ_CHECK(rc == H5ML_DONE, "more frames read back than the %d written (%d: %s)", n, rc, h5ml_errmsg(x));
    h5ml_xyz_reader_close(x);
    for (int k = 0; k < n; k++) saved_free(&frames[k]);
    unlink(in);
    unlink(out);
    return 0;
}
