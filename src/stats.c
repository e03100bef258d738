/* Dataset statistics accumulated while writing, stored as /metadata attributes. Means and
 * variances use Welford's update, so appends continue from the stored values. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void h5ml__stats_init(h5ml_stats *st)
{
    memset(st, 0, sizeof *st);
    st->e_min = INFINITY;
    st->e_max = -INFINITY;
}

static void welford(double *mean, double *m2, int64_t n, double x)
{
    double d = x - *mean;
    *mean += d / (double)n;
    *m2 += d * (x - *mean);
}

void h5ml__stats_add(h5ml_stats *st, int64_t natoms, const int64_t *numbers, double energy, const double *f64,
                     const float *f32, int has_stress, const uint8_t *pbc)
{
    st->n++;
    st->atoms += natoms;
    if (has_stress) st->with_stress++;
    if (pbc && (pbc[0] || pbc[1] || pbc[2])) st->periodic++;
    for (int64_t i = 0; i < natoms; i++)
        if (numbers[i] >= 0 && numbers[i] <= 118) st->element_counts[numbers[i]]++;
    if (isfinite(energy)) {
        if (energy < st->e_min) st->e_min = energy;
        if (energy > st->e_max) st->e_max = energy;
    }
    welford(&st->e_mean, &st->e_m2, st->n, energy);
    welford(&st->epa_mean, &st->epa_m2, st->n, natoms ? energy / (double)natoms : 0.0);
    double fmax2 = st->f_max2, sum = 0;
    for (int64_t i = 0; i < natoms; i++) {
        double x, y, z;
        if (f64) {
            x = (float)f64[3 * i];
            y = (float)f64[3 * i + 1];
            z = (float)f64[3 * i + 2];
        } else {
            x = f32[3 * i];
            y = f32[3 * i + 1];
            z = f32[3 * i + 2];
        }
        double f2 = x * x + y * y + z * z;
        sum += f2;
        if (f2 > fmax2) fmax2 = f2;
    }
    st->f_max2 = fmax2;
    st->f_sumsq += sum;
}

double h5ml__stats_std(double m2, int64_t n) { return n > 0 ? sqrt(m2 / (double)n) : NAN; }

int h5ml__stats_write(hid_t meta, const h5ml_stats *st)
{
    int64_t z[119], c[119];
    size_t k = 0;
    for (int i = 0; i <= 118; i++)
        if (st->element_counts[i]) {
            z[k] = i;
            c[k++] = st->element_counts[i];
        }
    bool any = st->n > 0;
    int rc = 0;
    rc |= h5ml__attr_i64(meta, "num_structures", st->n);
    rc |= h5ml__attr_i64(meta, "num_atoms", st->atoms);
    rc |= h5ml__attr_i64(meta, "num_with_stress", st->with_stress);
    rc |= h5ml__attr_i64(meta, "num_periodic", st->periodic);
    rc |= h5ml__attr_i64s(meta, "elements", z, k);
    rc |= h5ml__attr_i64s(meta, "element_counts", c, k);
    rc |= h5ml__attr_f64(meta, "energy_min", any ? st->e_min : NAN);
    rc |= h5ml__attr_f64(meta, "energy_max", any ? st->e_max : NAN);
    rc |= h5ml__attr_f64(meta, "energy_mean", any ? st->e_mean : NAN);
    rc |= h5ml__attr_f64(meta, "energy_std", h5ml__stats_std(st->e_m2, st->n));
    rc |= h5ml__attr_f64(meta, "energy_per_atom_mean", any ? st->epa_mean : NAN);
    rc |= h5ml__attr_f64(meta, "energy_per_atom_std", h5ml__stats_std(st->epa_m2, st->n));
    rc |= h5ml__attr_f64(meta, "force_max", st->atoms ? sqrt(st->f_max2) : NAN);
    rc |= h5ml__attr_f64(meta, "force_rms", st->atoms ? sqrt(st->f_sumsq / (3.0 * (double)st->atoms)) : NAN);
    return rc ? -1 : 0;
}

int h5ml__stats_read(hid_t meta, h5ml_stats *st)
{
    h5ml__stats_init(st);
    double e_std, epa_std, fmax, frms;
    int rc = 0;
    rc |= h5ml__attr_get_i64(meta, "num_structures", &st->n);
    rc |= h5ml__attr_get_i64(meta, "num_atoms", &st->atoms);
    rc |= h5ml__attr_get_i64(meta, "num_with_stress", &st->with_stress);
    rc |= h5ml__attr_get_i64(meta, "num_periodic", &st->periodic);
    rc |= h5ml__attr_get_f64(meta, "energy_min", &st->e_min);
    rc |= h5ml__attr_get_f64(meta, "energy_max", &st->e_max);
    rc |= h5ml__attr_get_f64(meta, "energy_mean", &st->e_mean);
    rc |= h5ml__attr_get_f64(meta, "energy_std", &e_std);
    rc |= h5ml__attr_get_f64(meta, "energy_per_atom_mean", &st->epa_mean);
    rc |= h5ml__attr_get_f64(meta, "energy_per_atom_std", &epa_std);
    rc |= h5ml__attr_get_f64(meta, "force_max", &fmax);
    rc |= h5ml__attr_get_f64(meta, "force_rms", &frms);
    int64_t *z = NULL, *c = NULL;
    int64_t nz = h5ml__attr_get_i64s(meta, "elements", &z);
    int64_t nc = h5ml__attr_get_i64s(meta, "element_counts", &c);
    if (nz < 0 || nz != nc) rc = -1;
    for (int64_t k = 0; rc == 0 && k < nz; k++) {
        if (z[k] < 0 || z[k] > 118) rc = -1;
        else st->element_counts[z[k]] = c[k];
    }
    free(z);
    free(c);
    if (rc) return -1;
    if (st->n == 0) {
        h5ml__stats_init(st);
        return 0;
    }
    st->e_m2 = e_std * e_std * (double)st->n;
    st->epa_m2 = epa_std * epa_std * (double)st->n;
    st->f_max2 = st->atoms ? fmax * fmax : 0;
    st->f_sumsq = st->atoms ? frms * frms * 3.0 * (double)st->atoms : 0;
    return 0;
}
