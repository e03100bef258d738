/* A writer killed with SIGKILL at random moments leaves a file that plain HDF5 (as h5py
 * uses it) opens, holding exactly the structures up to a checkpoint, and appending
 * continues from there. Real processes: the child writes, the parent kills. */
#include "check.h"
#include "h5ml.h"

#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>

/* Structure i is a function of i, so the parent can check what the child wrote. */
static void make(int64_t i, int64_t *z, double *pos, double *f, double *cell, uint8_t *pbc, h5ml_structure *s)
{
    int64_t n = 1 + i % 5;
    for (int64_t k = 0; k < n; k++) {
        z[k] = 1 + (i + k) % 90;
        for (int j = 0; j < 3; j++) {
            pos[3 * k + j] = (double)i * 0.001 + (double)k * 1.5 + j;
            f[3 * k + j] = (double)((i * 7 + k * 3 + j) % 101) / 10.0 - 5.0;
        }
    }
    memset(cell, 0, 9 * sizeof *cell);
    cell[0] = cell[4] = cell[8] = 30.0 + (double)(i % 3);
    pbc[0] = pbc[1] = pbc[2] = (uint8_t)(i % 2);
    *s = (h5ml_structure){ .natoms = n, .numbers = z, .positions = pos, .cell = cell, .pbc = pbc,
                           .energy = -(double)i * 0.5, .forces = f };
}

static int child(const char *path, int mode, int64_t start)
{
    h5ml_writer *w = h5ml_writer_new();
    h5ml_writer_set(w, H5ML_OPT_CHECKPOINT_MS, 20);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_ATOMS, 512);
    h5ml_writer_set(w, H5ML_OPT_CHUNK_STRUCTURES, 64);
    if (h5ml_writer_open(w, path, mode) != H5ML_OK) {
        fprintf(stderr, "child: %s\n", h5ml_errmsg(w));
        _exit(3);
    }
    int64_t z[8];
    double pos[24], f[24], cell[9];
    uint8_t pbc[3];
    h5ml_structure s;
    for (int64_t i = start;; i++) {
        make(i, z, pos, f, cell, pbc, &s);
        if (h5ml_writer_add(w, &s) != H5ML_OK) {
            fprintf(stderr, "child: %s\n", h5ml_errmsg(w));
            _exit(4);
        }
    }
}

/* Every structure in the file is the one the child generated; returns the count or -1. */
static int64_t check_content(const char *path)
{
    h5ml_reader *r = h5ml_reader_new();
    if (h5ml_reader_open(r, path) != H5ML_OK) {
        fprintf(stderr, "open: %s\n", h5ml_errmsg(r));
        h5ml_reader_close(r);
        return -1;
    }
    int64_t n = h5ml_reader_count(r), m = h5ml_reader_total_atoms(r), bad = 0;
    int64_t *natoms = malloc(sizeof *natoms * (size_t)(n + 1)), *numbers = malloc(sizeof *numbers * (size_t)(m + 1));
    double *positions = malloc(sizeof *positions * 3 * (size_t)(m + 1)), *cells = malloc(sizeof *cells * 9 * (size_t)(n + 1));
    double *energies = malloc(sizeof *energies * (size_t)(n + 1));
    float *forces = malloc(sizeof *forces * 3 * (size_t)(m + 1));
    uint8_t *pbcs = malloc(3 * (size_t)(n + 1));
    h5ml_frames o = { natoms, numbers, positions, cells, pbcs, energies, forces, NULL, NULL };
    if (h5ml_reader_read(r, 0, n, &o) != H5ML_OK) bad++;
    int64_t z[8];
    double pos[24], f[24], cell[9];
    uint8_t pbc[3];
    h5ml_structure s;
    int64_t a = 0;
    for (int64_t i = 0; i < n && bad < 5; i++) {
        make(i, z, pos, f, cell, pbc, &s);
        bool same = natoms[i] == s.natoms && energies[i] == s.energy && !memcmp(numbers + a, z, sizeof *z * (size_t)s.natoms) &&
                    !memcmp(positions + 3 * a, pos, sizeof *pos * 3 * (size_t)s.natoms) &&
                    !memcmp(cells + 9 * i, cell, sizeof cell) && pbcs[3 * i] == pbc[0];
        for (int64_t k = 0; same && k < 3 * s.natoms; k++) same = forces[3 * a + k] == (float)f[k];
        if (!same) {
            fprintf(stderr, "structure %lld differs\n", (long long)i);
            bad++;
        }
        a += natoms[i];
    }
    free(natoms);
    free(numbers);
    free(positions);
    free(cells);
    free(energies);
    free(forces);
    free(pbcs);
    if (bad == 0 && h5ml_verify(r, NULL, NULL) != H5ML_OK) {
        fprintf(stderr, "verify: %s\n", h5ml_errmsg(r));
        bad++;
    }
    h5ml_reader_close(r);
    return bad ? -1 : n;
}

static bool plain_hdf5_opens(const char *path)
{
    /* What h5py does: default driver, read-only, no SWMR flag. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return false;
    hid_t d = H5Dopen2(f, "labels/forces", H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    float *buf = malloc(sizeof *buf * (size_t)(np + 1));
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    free(buf);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return rc >= 0;
}

static pid_t spawn(const char *path, int mode, int64_t start)
{
    pid_t pid = fork();
    if (pid == 0) child(path, mode, start);
    return pid;
}

/* Kills `pid` `ms` after `path` appeared (machines under load start slowly). */
static void kill_after(pid_t pid, const char *path, int ms)
{
    for (int i = 0; i < 5000 && access(path, F_OK) != 0; i++) usleep(1000);
    usleep((useconds_t)ms * 1000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer ended by itself (status %d)", st);
}

int main(void)
{
    unsigned seed = test_seed();
    rng_seed(seed);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const char *path = tmpname("crash");
    int rounds = 24;
    int64_t total_kept = 0;
    for (int round = 0; round < rounds; round++) {
        unlink(path);
        int ms = (int)rng_int(30, 400);
        kill_after(spawn(path, H5ML_CREATE, 0), path, ms);
        CHECK_MSG(access(path, F_OK) == 0, "round %d: no file after %d ms", round, ms);
        if (access(path, F_OK) != 0) continue;
        CHECK_MSG(plain_hdf5_opens(path), "round %d (%d ms): plain HDF5 cannot open the file", round, ms);
        int64_t n = check_content(path);
        CHECK_MSG(n >= 0, "round %d (%d ms): content or consistency wrong", round, ms);
        if (n < 0) {
            char keep[64];
            snprintf(keep, sizeof keep, "crash-failure-%u-%d.h5", seed, round);
            rename(path, keep);
            fprintf(stderr, "kept the file as %s\n", keep);
        }
        total_kept += n > 0 ? n : 0;
        if (n < 0) continue;
        /* append after the crash, killed too, then a clean append */
        kill_after(spawn(path, H5ML_APPEND, n), path, (int)rng_int(20, 200));
        int64_t n2 = check_content(path);
        CHECK_MSG(n2 >= n, "round %d: append after a crash lost data (%lld -> %lld)", round, (long long)n, (long long)n2);
        if (n2 < 0) continue;
        h5ml_writer *w = h5ml_writer_new();
        CHECK_MSG(h5ml_writer_open(w, path, H5ML_APPEND) == H5ML_OK, "%s", h5ml_errmsg(w));
        int64_t z[8];
        double pos[24], f[24], cell[9];
        uint8_t pbc[3];
        h5ml_structure s;
        for (int64_t i = n2; i < n2 + 100; i++) {
            make(i, z, pos, f, cell, pbc, &s);
            CHECK(h5ml_writer_add(w, &s) == H5ML_OK);
        }
        CHECK(h5ml_writer_close(w) == H5ML_OK);
        CHECK_EQ_I(check_content(path), n2 + 100);
    }
    printf("%d kills, %lld structures kept in total\n", 2 * rounds, (long long)total_kept);
    CHECK_MSG(total_kept > 0, "no kill round kept any structure: checkpoints are not reaching the file");
    unlink(path);
    return check_report("test_crash");
}
