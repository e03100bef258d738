/* The extended XYZ reader: ASE's comment-line grammar, Properties columns, special keys,
 * line endings, and errors naming file, frame and line. */
#include "check.h"
#include "h5ml.h"

static const char *write_text(const char *name, const char *text)
{
    const char *path = tmpname(name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static h5ml_xyz_reader *open_text(const char *name, const char *text)
{
    h5ml_xyz_reader *x = h5ml_xyz_reader_new();
    CHECK(h5ml_xyz_reader_open(x, write_text(name, text)) == H5ML_OK);
    return x;
}

static void test_ase_frame(void)
{
    h5ml_xyz_reader *x = open_text("ase",
        "2\n"
        "Lattice=\"4.0 0.0 0.0 0.5 4.0 0.0 0.0 0.0 5.0\" Properties=species:S:1:pos:R:3:forces:R:3 "
        "config_type=bulk energy=-10.5 stress=\"1 6 5 6 2 4 5 4 3\" free_energy=-10.25 pbc=\"T T F\"\n"
        "Cu       0.00000000       0.00000000       0.00000000       0.10000000      -0.20000000       0.30000000\n"
        "Cu       1.80000000       1.80000000       0.00000000      -0.10000000       0.20000000      -0.30000000\n");
    h5ml_xyz_frame f;
    CHECK(h5ml_xyz_reader_next(x, &f) == H5ML_OK);
    CHECK_EQ_I(f.natoms, 2);
    CHECK_EQ_I(f.numbers[0], 29);
    CHECK(f.positions[3] == 1.8 && f.forces[5] == -0.3);
    CHECK(f.cell[0] == 4.0 && f.cell[3] == 0.5 && f.cell[4] == 4.0 && f.cell[8] == 5.0); /* rows are the vectors */
    CHECK(f.pbc[0] == 1 && f.pbc[1] == 1 && f.pbc[2] == 0);
    CHECK(f.has_energy && f.energy == -10.5);
    /* 9-value stress read in Fortran order -> Voigt xx yy zz yz xz xy */
    CHECK(f.has_stress && f.stress[0] == 1 && f.stress[1] == 2 && f.stress[2] == 3 && f.stress[3] == 4 &&
          f.stress[4] == 5 && f.stress[5] == 6);
    CHECK_STR(f.info_json, "{\"config_type\":\"bulk\",\"free_energy\":-10.25}");
    CHECK_EQ_I(h5ml_xyz_reader_next(x, &f), H5ML_DONE);
    h5ml_xyz_reader_close(x);
}

static void test_comment_grammar(void)
{
    /* quotes, escapes, braces, bare keys, spaces around '=', JSON, ints vs floats, booleans */
    h5ml_xyz_reader *x = open_text("grammar",
        "1\n"
        "  a = 1 b=2.0 c=\"x y\" d='q' e={1 2 3} f=[4,5] g h=T i=\"T F T\" j=\"say \\\"hi\\\"\" "
        "k=_JSON {\"z\": [1, 2]} l=1e3 m=-7 n=inf energy=1 o=\"_JSON {\\\"z\\\": [1, 2]}\" \r\n"
        "H 0 0 0 0 0 0\n");
    h5ml_xyz_frame f;
    CHECK_MSG(h5ml_xyz_reader_next(x, &f) == H5ML_OK, "%s", h5ml_errmsg(x));
    /* no Properties: species:S:1:pos:R:3, so there are no forces */
    CHECK(!f.has_forces);
    CHECK_STR(f.info_json, "{\"a\":1,\"b\":2.0,\"c\":\"x y\",\"d\":\"q\",\"e\":[1,2,3],\"f\":[4,5],\"g\":true,\"h\":true,"
                           "\"i\":[true,false,true],\"j\":\"say \\\"hi\\\"\",\"k\":\"_JSON\",\"\\\"z\\\": [1, 2]\":true,"
                           "\"l\":1000.0,\"m\":-7,\"n\":\"inf\",\"o\":{\"z\":[1,2]}}");
    /* (the same line through ASE's key_val_str_to_dict gives exactly these keys and values) */
    h5ml_xyz_reader_close(x);
}

static void test_columns_and_virial(void)
{
    h5ml_xyz_reader *x = open_text("cols",
        "2\n"
        "Lattice=\"2 0 0 0 2 0 0 0 2\" Properties=Z:I:1:pos:R:3:force:R:3:tags:I:1:magmoms:R:1:fixed:L:3:label:S:1 "
        "virial=\"8 0 0 0 16 0 0 0 24\" energy=-1\n"
        "8 0 0 0 1 2 3 5 0.5 T F T a\n"
        "1 1 1 1 4 5 6 7 -0.25 F F F b\n"
        "\n"
        "1\n"
        "Properties=species:S:1:pos:R:3:forces:R:3 energy=2 pbc=F\n"
        "he 1 2 3 0 0 0");
    h5ml_xyz_frame f;
    CHECK_MSG(h5ml_xyz_reader_next(x, &f) == H5ML_OK, "%s", h5ml_errmsg(x));
    CHECK(f.numbers[0] == 8 && f.numbers[1] == 1);
    CHECK(f.has_forces && f.forces[3] == 4);
    CHECK(f.pbc[0] && f.pbc[1] && f.pbc[2]); /* Lattice without pbc: periodic */
    /* stress = -virial / volume (volume 8) */
    CHECK(f.has_stress && f.stress[0] == -1 && f.stress[1] == -2 && f.stress[2] == -3 && f.stress[3] == 0);
    CHECK_STR(f.info_json, "{\"virial\":[8,0,0,0,16,0,0,0,24],\"__arrays__\":{\"tags\":[5,7],\"magmoms\":[0.5,-0.25],"
                           "\"fixed\":[[true,false,true],[false,false,false]],\"label\":[\"a\",\"b\"]}}");
    CHECK_MSG(h5ml_xyz_reader_next(x, &f) == H5ML_OK, "%s", h5ml_errmsg(x)); /* blank line, no final newline */
    CHECK_EQ_I(f.index, 1);
    CHECK_EQ_I(f.line, 6);
    CHECK_EQ_I(f.numbers[0], 2); /* "he" -> He, case-insensitive like ASE */
    CHECK(!f.pbc[0] && f.energy == 2);
    CHECK(f.info_json == NULL);
    CHECK_EQ_I(h5ml_xyz_reader_next(x, &f), H5ML_DONE);
    h5ml_xyz_reader_close(x);
}

static void expect_error(const char *text, const char *needle)
{
    h5ml_xyz_reader *x = open_text("err", text);
    h5ml_xyz_frame f;
    int rc;
    while ((rc = h5ml_xyz_reader_next(x, &f)) == H5ML_OK) {}
    CHECK_MSG(rc == H5ML_ERR_PARSE, "expected a parse error for: %s", needle);
    CHECK_CONTAINS(h5ml_errmsg(x), needle);
    CHECK_CONTAINS(h5ml_errmsg(x), ".tmp: frame ");
    h5ml_xyz_reader_close(x);
}

static void test_errors(void)
{
    const char *ok = "1\nProperties=species:S:1:pos:R:3:forces:R:3 energy=1\nH 0 0 0 0 0 0\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%sabc\nenergy=1\nH 0 0 0\n", ok);
    expect_error(buf, "frame 1 (line 4): expected the number of atoms, found 'abc'");
    snprintf(buf, sizeof buf, "%s3\nenergy=1\nH 0 0 0\nH 1 1 1\n", ok);
    expect_error(buf, "frame 1 (line 4): file ends after 2 of 3 atom lines");
    expect_error("2\nenergy=1\nH 0 0 0\nH 1 x 1\n", "frame 0 (line 4): pos of atom 1: 'x' is not a number");
    expect_error("1\nenergy=1\nQq 0 0 0\n", "frame 0 (line 3): unknown chemical symbol 'Qq' for atom 0");
    expect_error("1\nLattice=\"1 0 0 0 1 0 0 0\" energy=1\nH 0 0 0\n", "frame 0 (line 2): Lattice must be 9 numbers");
    expect_error("1\nProperties=species:S:1:forces:R:3 energy=1\nH 0 0 0\n", "has no pos:R:3 column");
    expect_error("1\nProperties=species:S:1:pos:R:3:x:Q:1 energy=1\nH 0 0 0 1\n", "unknown property type 'Q'");
    expect_error("1\nProperties=species:S:1:pos:R:3:forces:R:3 energy=1\nH 0 0 0 1 2\n", "atom 0 has too few columns");
    expect_error("1\nenergy=1 pbc=\"T T\"\nH 0 0 0\n", "pbc must be three T/F flags");
    expect_error("1\n", "file ends after the atom count");
    /* an empty file is a clean end, not an error */
    h5ml_xyz_reader *x = open_text("empty", "");
    h5ml_xyz_frame f;
    CHECK_EQ_I(h5ml_xyz_reader_next(x, &f), H5ML_DONE);
    h5ml_xyz_reader_close(x);
    x = h5ml_xyz_reader_new();
    CHECK_EQ_I(h5ml_xyz_reader_open(x, "/nonexistent/in.xyz"), H5ML_ERR_IO);
    CHECK_CONTAINS(h5ml_errmsg(x), "/nonexistent/in.xyz: No such file");
    h5ml_xyz_reader_close(x);
}

static void test_long_lines_and_big_frames(void)
{
    /* A frame larger than the 1 MiB read buffer and a comment line longer than it. */
    const char *path = tmpname("big");
    FILE *fp = fopen(path, "w");
    int n = 60000;
    fprintf(fp, "%d\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-3.5 note=\"", n);
    for (int i = 0; i < 300000; i++) fputc('a' + i % 26, fp);
    fprintf(fp, "\"\n");
    for (int i = 0; i < n; i++) fprintf(fp, "Si %d.25 %d.5 %d.75 0.%d 0 0\n", i, i % 7, i % 11, i % 10);
    fclose(fp);
    h5ml_xyz_reader *x = h5ml_xyz_reader_new();
    CHECK(h5ml_xyz_reader_open(x, path) == H5ML_OK);
    h5ml_xyz_frame f;
    CHECK_MSG(h5ml_xyz_reader_next(x, &f) == H5ML_OK, "%s", h5ml_errmsg(x));
    CHECK_EQ_I(f.natoms, n);
    CHECK(f.positions[3 * (n - 1)] == (double)(n - 1) + 0.25 && f.forces[3 * 7] == 0.7);
    CHECK(f.info_json && strlen(f.info_json) == 300000 + strlen("{\"note\":\"\"}"));
    int64_t done, total;
    h5ml_xyz_reader_progress(x, &done, &total);
    CHECK_EQ_I(done, total);
    h5ml_xyz_reader_close(x);
    unlink(path);
}

int main(void)
{
    test_seed();
    test_ase_frame();
    test_comment_grammar();
    test_columns_and_virial();
    test_errors();
    test_long_lines_and_big_frames();
    return check_report("test_extxyz");
}
