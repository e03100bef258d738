/* Makes the seed corpora of the fuzz targets that take generated inputs (run by
 * fuzz/make_corpus.sh, which also copies the bundled MATLAB files):
 *
 *   OUT/atoms_reader/    small atomistic files: 3 structures, each compression profile
 *                        (none, gzip, lzf), small chunks so that reads cross chunk borders;
 *                        with and without per-structure metadata; an empty file
 *   OUT/signals_reader/  small signal caches, flat and split, each profile, with metadata
 *   OUT/extxyz/          extended XYZ snippets covering the grammar (quotes, escapes,
 *                        _JSON values, extra columns, virial, Z column, blank lines)
 *   OUT/json_meta/       inputs of fuzz_json_meta (a flags byte, then NUL-separated JSON)
 *
 * Usage: fuzz_make_corpus OUT_DIR. Deterministic: the same files on every run, except for
 * the HDF5 files' creation-time attributes. */
#define _GNU_SOURCE
#include "h5ml.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void die(const char *what, const void *handle)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, handle ? h5ml_errmsg(handle) : strerror(errno));
    exit(1);
}

static void mkdir_p(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir, NULL);
}

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) die(p, NULL);
}

/* ---- atomistic files ---- */

static void atoms_file(const char *dir, const char *name, int profile, int with_info, int nstruct)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    h5ml_writer *w = h5ml_writer_new();
    if (w == NULL) die("out of memory", NULL);
    h5ml_writer_set(w, H5ML_OPT_PROFILE, profile);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, 4);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, 2);
    h5ml_writer_set(w, H5ML_OPT_THREADS, 1);
    h5ml_writer_set(w, H5ML_OPT_CHECKPOINT_MS, -1);
    if (h5ml_writer_open(w, p, H5ML_CREATE) != H5ML_OK) die(p, w);
    for (int s = 0; s < nstruct; s++) {
        int64_t natoms = 2 + s, numbers[8];
        double pos[24], forces[24], cell[9] = { 0 }, stress[6] = { 0.1, 0.2, 0.3, 0.01, 0.02, 0.03 };
        uint8_t pbc[3] = { 1, 1, (uint8_t)(s & 1) };
        for (int i = 0; i < natoms; i++) {
            numbers[i] = 1 + (i * 7 + s) % 30;
            for (int c = 0; c < 3; c++) {
                pos[3 * i + c] = 1.5 * i + 0.25 * c + 0.125 * s;
                forces[3 * i + c] = 0.01 * (i - c) + 0.5 * s;
            }
        }
        cell[0] = cell[4] = cell[8] = 10.0 + s;
        char info[128];
        snprintf(info, sizeof info, "{\"config_type\":\"bulk%d\",\"step\":%d,\"tags\":[1,2.5,true,null]}", s, s);
        h5ml_structure st = { .natoms = natoms, .numbers = numbers, .positions = pos, .cell = s == 1 ? NULL : cell,
                              .pbc = s == 1 ? NULL : pbc, .energy = -1.25 * (s + 1), .forces = forces,
                              .stress = s == 2 ? NULL : stress, .info_json = with_info && s != 1 ? info : NULL };
        if (h5ml_writer_add(w, &st) != H5ML_OK) die(p, w);
    }
    h5ml_writer_meta_string(w, "source", "fuzz corpus");
    if (h5ml_writer_close(w) != H5ML_OK) die(p, NULL);
}

/* ---- signal caches ---- */

static void signals_file(const char *dir, const char *name, int profile, h5ml_sig_layout layout, int with_meta)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    enum { LEN = 16, PER = 5 };
    h5ml_sigwriter *w = h5ml_sigwriter_new();
    if (w == NULL) die("out of memory", NULL);
    h5ml_sigwriter_set(w, H5ML_SIG_PROFILE, profile);
    h5ml_sigwriter_set(w, H5ML_SIG_CHUNK_ROWS, 2);
    h5ml_sigwriter_set(w, H5ML_SIG_THREADS, 1);
    if (h5ml_sigwriter_create(w, p, layout, LEN, "fuzz") != H5ML_OK) die(p, w);
    int nsplit = layout == H5ML_SIG_SPLIT ? 3 : 1;
    for (int s = 0; s < nsplit; s++) {
        float sig[PER * LEN];
        int64_t labels[PER], indices[PER];
        char mbuf[PER][64];
        const char *meta[PER];
        int count = PER - s; /* splits of different sizes */
        for (int k = 0; k < count; k++) {
            for (int i = 0; i < LEN; i++) sig[k * LEN + i] = (float)((k + 1) * (i % 5) - 2) * 0.25f + (float)s;
            labels[k] = (k + s) % 3;
            indices[k] = s * PER + k;
            snprintf(mbuf[k], sizeof mbuf[k], "{\"index\":%d,\"fault\":\"f%d\",\"speed_hz\":60.5}", k, (int)labels[k]);
            meta[k] = k == 1 ? NULL : mbuf[k];
        }
        int split = layout == H5ML_SIG_SPLIT ? s : H5ML_NO_SPLIT;
        if (h5ml_sigwriter_add(w, split, count, sig, labels, with_meta ? meta : NULL, layout == H5ML_SIG_SPLIT ? indices : NULL) !=
            H5ML_OK)
            die(p, w);
    }
    const char *names[3] = { "a", "b", "c" };
    h5ml_sigwriter_class_names(w, names, 3);
    h5ml_sigwriter_attr_double(w, "sampling_rate", 20480.0);
    if (h5ml_sigwriter_close(w) != H5ML_OK) die(p, NULL);
}

/* ---- extended XYZ ---- */

static const char *const xyz_seeds[] = {
    "2\nLattice=\"4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 pbc=\"T T T\"\n"
    "H 0.0 0.0 0.0 0.1 0.2 0.3\nO 1.0 1.5 2.0 -0.1 -0.2 -0.3\n",
    "1\nenergy=2.5 stress=\"1 2 3 4 5 6\" config_type=gas\nC 0 0 0\n\n1\nfree_energy=-3 \nN 1e-3 2E+2 -0.5\n",
    "3\nProperties=Z:I:1:pos:R:3:charge:R:1:tag:I:1:fixed:L:1:label:S:1:vel:R:3 energy=1\n"
    "6 0 0 0 0.5 1 T a 1 2 3\n8 1 0 0 -0.5 2 F b 4 5 6\n1 0 1 0 0.0 3 T c 7 8 9\n",
    "1\nLattice=\"2 0 0 0 3 0 0 0 4\" virial=\"1 0 0 0 2 0 0 0 3\" key1=\"quoted value\" key2='single' key3={1 2 3} "
    "key4=[4,5,6] flag esc=a\\ b json=\"_JSON {\\\"a\\\": [1, 2]}\" b=F bs=\"T F T\" f=1.5e300 i=-42\nSi 0.5 0.5 0.5\n",
    "2\nkey = spaced  other=1=2 uid=123 n=nan inf=inf pbc=\"F T F\" Lattice=\"1 0 0 0 1 0 0 0 1\"\nFe 0 0 0\nfe 1 1 1\n",
    "0\nenergy=0.0\n",
    "1\nProperties=species:S:1:pos:R:3:force:R:3 energy=-0.0 stress=\"1 0 0 0 1 0 0 0 1\"\nX 0.1 0.2 0.3 nan inf -inf\r\n",
    "4\nProperties=species:S:1:pos:R:3:m:R:2 \nH 0 0 0 1 2\nHe 1 1 1 3 4\nLi 2 2 2 5 6\nBe 3 3 3 7 8\n",
};

/* ---- JSON metadata ---- */

static const char *const json_seeds[] = {
    "{\"a\":1}",
    "{\"config_type\":\"bulk\",\"step\":3,\"tags\":[1,2.5,true,null],\"nested\":{\"x\":\"\\u00e9\\n\"}}",
    "{}",
    "[1,2,3]",
    "{\"a\":1,\"a\":2}",
    "{\"big\":1e308,\"small\":-1e-308,\"int\":-9223372036854775808}",
    "not json",
    "",
    "{\"s\":\"\\ud83d\\ude00 emoji\",\"e\":\"\"}",
};

static void json_seed(const char *dir, const char *name, unsigned char flags, const int *which, int n)
{
    char buf[4096];
    size_t len = 0;
    buf[len++] = (char)flags;
    for (int k = 0; k < n; k++) {
        const char *s = json_seeds[which[k]];
        size_t l = strlen(s);
        memcpy(buf + len, s, l);
        len += l;
        if (k + 1 < n) buf[len++] = 0;
    }
    put_file(dir, name, buf, len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const char *out = argv[1];
    char d[1024];
    mkdir_p(out);

    snprintf(d, sizeof d, "%s/atoms_reader", out);
    mkdir_p(d);
    atoms_file(d, "none.h5", H5ML_PROFILE_NONE, 1, 3);
    atoms_file(d, "gzip.h5", H5ML_PROFILE_BALANCED, 1, 3);
    atoms_file(d, "lzf.h5", H5ML_PROFILE_FAST, 1, 3);
    atoms_file(d, "gzip_noinfo.h5", H5ML_PROFILE_SMALL, 0, 3);
    atoms_file(d, "empty.h5", H5ML_PROFILE_NONE, 0, 0);

    snprintf(d, sizeof d, "%s/signals_reader", out);
    mkdir_p(d);
    signals_file(d, "flat_none.h5", H5ML_PROFILE_NONE, H5ML_SIG_FLAT, 1);
    signals_file(d, "flat_gzip.h5", H5ML_PROFILE_BALANCED, H5ML_SIG_FLAT, 0);
    signals_file(d, "flat_lzf.h5", H5ML_PROFILE_FAST, H5ML_SIG_FLAT, 1);
    signals_file(d, "split_none.h5", H5ML_PROFILE_NONE, H5ML_SIG_SPLIT, 0);
    signals_file(d, "split_gzip.h5", H5ML_PROFILE_BALANCED, H5ML_SIG_SPLIT, 1);
    signals_file(d, "split_lzf.h5", H5ML_PROFILE_FAST, H5ML_SIG_SPLIT, 1);

    snprintf(d, sizeof d, "%s/extxyz", out);
    mkdir_p(d);
    for (size_t k = 0; k < sizeof xyz_seeds / sizeof *xyz_seeds; k++) {
        char name[32];
        snprintf(name, sizeof name, "seed%02zu.xyz", k);
        put_file(d, name, xyz_seeds[k], strlen(xyz_seeds[k]));
    }

    snprintf(d, sizeof d, "%s/json_meta", out);
    mkdir_p(d);
    int all[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8 };
    json_seed(d, "good_single.bin", 0x00, all, 2);
    json_seed(d, "good_batch.bin", 0x01, all, 3);
    json_seed(d, "mixed_batch.bin", 0x01, all, 9);
    json_seed(d, "signals_flat.bin", 0x02, all + 1, 4);
    json_seed(d, "signals_split.bin", 0x06, all, 6);
    json_seed(d, "file_meta.bin", 0x08, all + 3, 4);
    json_seed(d, "dup_keys.bin", 0x03, all + 4, 2);
    return 0;
}
