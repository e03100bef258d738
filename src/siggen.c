/* Synthetic vibration signals of a rotating machine, one fault class per label.
 *
 * A sample is a pure function of (params, label, index): its seed is
 * rng_derive(rng_derive(params.seed, label), index) >> 11 (53 bits, exact in JSON), and three generators come from it:
 * the parameter stream (rng_seed(seed)), the noise stream (rng_seed(rng_derive(seed, 1)))
 * and the cavitation-burst stream (rng_seed(rng_derive(seed, 2))).
 *
 * Parameter stream, in draw order (range(a, b) = a + (b - a) * uniform):
 *   speed = speed_hz * (1 + range(-speed_var, speed_var)); severity = range(0.2, 1)
 *   (reported as 0 for "sain", which has no fault signature); load = uniform;
 *   mains = below(2) ? 60 : 50 Hz; mains amplitude = range(0.02, 0.05);
 *   phases (range(0, 2 pi)) of the 1X, 2X, 3X shaft harmonics and the 3 mains tones;
 *   then the fault's own draws (below, in order; the mixed classes draw the first fault's,
 *   then the second's).
 * Baseline (every class): 1X at 0.1 (1 + 0.3 load), 2X at 0.03; mains at f, 2f, 3f with
 *   amplitudes a, 0.4 a, 0.2 a; gaussian noise with sigma 0.05 (1 + 0.5 load).
 * Fault signatures, S = severity (shaft harmonics reuse the baseline phases, so the
 *   amplitudes add up instead of interfering at random):
 *   desequilibre   1X += S (speed / nominal)^2
 *   desalignement  L = 0.8 + 0.4 load: 1X += 0.25 S L, 2X += 0.8 S L, 3X += 0.4 S L
 *   jeu            rho = range(0.43, 0.48), phase: rho X at 0.6 S; 1X += 0.4 S; 2X += 0.35 S
 *   lubrification  f = range(2, 5) Hz stick-slip, phase psi: tones k f (k = 1..4) at
 *                  0.3 S (0.7 + 0.6 load) / k, each with a drawn phase; friction noise of
 *                  sigma 0.25 S (0.7 + 0.6 load) (1 + cos(2 pi f t + psi)) / 2
 *   cavitation     fc = range(1500, 2500) Hz, tau = range(1, 3) ms, burst rate = range(30, 80)
 *                  per s: bursts of white noise through a two-pole resonator at fc with
 *                  decay time tau (scaled to unit gain for white noise); noise sigma +=
 *                  0.02 S. Burst stream: the first start after an exponential gap (mean
 *                  rate / burst rate samples), then at each start: length range(1, 5) ms,
 *                  amplitude 1.5 S (0.7 + 0.6 load) range(0.5, 1.5), the gap to the next
 *                  start, then one noise draw per point inside the burst
 *   usure          fm = range(0.5, 2) Hz, depth = range(0.3, 0.7), phase: 1X at 0.5 S and 2X
 *                  at 0.4 S, both amplitude-modulated (1 + depth cos(2 pi fm t + phase));
 *                  noise sigma += 0.03 S
 *   oilwhirl       rho = range(0.42, 0.48), phase, fm = range(0.3, 1.5) Hz,
 *                  depth = range(0.3, 0.6), phase: rho X at 0.8 S, amplitude-modulated
 *   mixed classes  desalignement + desequilibre, usure + lubrification, cavitation + jeu.
 *
 * Rendering: every tone is a sum of sinusoids (amplitude modulation is written as the carrier
 * and two sidebands), rendered in blocks of 64 points: per tone, a table of
 * e^{i w j} (j < 64) and one complex phasor per block, advanced by e^{i w 64} and
 * re-anchored from the exact phase every 64 blocks, so the inner loop has no sin() and no
 * dependency between points. Tones at or above rate / 2 are skipped. The gaussian noise is
 * the Irwin-Hall sum of the four 16-bit parts of one 64-bit draw, standardised (exact mean
 * and variance, bounded at +-3.46 sigma): one generator call per point. */
#include "signals_priv.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the arithmetic the same on targets with fused multiply-add (compilers may fuse
 * a * b + c by default), so a sample differs between machines only through libm. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

const char *const h5ml__fault_names[H5ML_NUM_FAULTS] = {
    "sain", "desalignement", "desequilibre", "jeu", "lubrification", "cavitation",
    "usure", "oilwhirl", "mixed_misalign_imbalance", "mixed_wear_lube", "mixed_cavit_jeu",
};

enum {
    F_SAIN, F_DESALIGNEMENT, F_DESEQUILIBRE, F_JEU, F_LUBRIFICATION, F_CAVITATION, F_USURE,
    F_OILWHIRL, F_MIX_MISALIGN_IMBALANCE, F_MIX_WEAR_LUBE, F_MIX_CAVIT_JEU
};

#define TWO_PI 6.283185307179586
#define BLOCK 64
#define ANCHOR_BLOCKS 64
#define MAX_TONES 40

typedef struct tone {
    double w;       /* rad per sample */
    double amp, phase;
} tone;

typedef struct cavitation {
    int on;
    double c1, c2;       /* resonator: y = c1 y[-1] - c2 y[-2] + in x */
    double in_gain;      /* unit output variance for unit white input  */
    double gap_mean;     /* mean samples between bursts                */
    double len_lo, len_hi;
    double amp;
} cavitation;

typedef struct scene {
    double rate, nominal, speed, severity, load;
    double harm_phase[4];   /* phases of the shaft harmonics 1X..3X */
    tone tones[MAX_TONES];
    int ntones;
    double harm_amp[4];     /* in-phase amplitudes of 1X..3X, added up by the faults */
    double noise_sigma;
    double fric_sigma;      /* lubrication: noise modulated by env_tone */
    tone env_tone;
    cavitation cav;
} scene;

/* ---- scene ---- */

static double draw_phase(h5ml_rng *r) { return h5ml__rng_range(r, 0.0, TWO_PI); }

static void add_tone(scene *sc, double hz, double amp, double phase)
{
    if (hz < 0) { hz = -hz; phase = -phase; }
    if (hz <= 0 || hz >= sc->rate / 2 || amp == 0 || sc->ntones == MAX_TONES) return;
    sc->tones[sc->ntones++] = (tone){TWO_PI * hz / sc->rate, amp, phase};
}

/* amp (1 + depth cos(2 pi fm t + psi)) cos(2 pi f t + phase) as carrier plus sidebands. */
static void add_am_tone(scene *sc, double hz, double amp, double phase, double fm, double depth, double psi)
{
    add_tone(sc, hz, amp, phase);
    add_tone(sc, hz + fm, amp * depth / 2, phase + psi);
    add_tone(sc, hz - fm, amp * depth / 2, phase - psi);
}

static void sig_imbalance(scene *sc)
{
    double k = sc->speed / sc->nominal;
    sc->harm_amp[1] += sc->severity * k * k;
}

static void sig_misalignment(scene *sc)
{
    double l = 0.8 + 0.4 * sc->load;
    sc->harm_amp[1] += 0.25 * sc->severity * l;
    sc->harm_amp[2] += 0.8 * sc->severity * l;
    sc->harm_amp[3] += 0.4 * sc->severity * l;
}

static void sig_clearance(scene *sc, h5ml_rng *r)
{
    double rho = h5ml__rng_range(r, 0.43, 0.48), ph = draw_phase(r);
    add_tone(sc, rho * sc->speed, 0.6 * sc->severity, ph);
    sc->harm_amp[1] += 0.4 * sc->severity;
    sc->harm_amp[2] += 0.35 * sc->severity;
}

static void sig_lubrication(scene *sc, h5ml_rng *r)
{
    double f = h5ml__rng_range(r, 2.0, 5.0), psi = draw_phase(r), l = 0.7 + 0.6 * sc->load;
    for (int k = 1; k <= 4; k++) add_tone(sc, k * f, 0.3 * sc->severity * l / k, draw_phase(r));
    if (f >= sc->rate / 2) return;
    sc->fric_sigma = 0.25 * sc->severity * l;
    sc->env_tone = (tone){TWO_PI * f / sc->rate, 1.0, psi};
}

static void sig_cavitation(scene *sc, h5ml_rng *r)
{
    double fc = h5ml__rng_range(r, 1500.0, 2500.0), tau = h5ml__rng_range(r, 1e-3, 3e-3);
    double burst_rate = h5ml__rng_range(r, 30.0, 80.0);
    sc->noise_sigma += 0.02 * sc->severity;
    if (fc >= 0.45 * sc->rate) return; /* the resonance would not be sampled */
    double rr = exp(-1.0 / (tau * sc->rate)), cw = cos(TWO_PI * fc / sc->rate);
    double gain = (1 + rr * rr) / ((1 - rr * rr) * ((1 + rr * rr) * (1 + rr * rr) - 4 * rr * rr * cw * cw));
    sc->cav = (cavitation){1, 2 * rr * cw, rr * rr, 1 / sqrt(gain), sc->rate / burst_rate,
                           1e-3 * sc->rate, 5e-3 * sc->rate, 1.5 * sc->severity * (0.7 + 0.6 * sc->load)};
}

static void sig_wear(scene *sc, h5ml_rng *r)
{
    double fm = h5ml__rng_range(r, 0.5, 2.0), depth = h5ml__rng_range(r, 0.3, 0.7), psi = draw_phase(r);
    add_am_tone(sc, sc->speed, 0.5 * sc->severity, sc->harm_phase[1], fm, depth, psi);
    add_am_tone(sc, 2 * sc->speed, 0.4 * sc->severity, sc->harm_phase[2], fm, depth, psi);
    sc->noise_sigma += 0.03 * sc->severity;
}

static void sig_oilwhirl(scene *sc, h5ml_rng *r)
{
    double rho = h5ml__rng_range(r, 0.42, 0.48), ph = draw_phase(r);
    double fm = h5ml__rng_range(r, 0.3, 1.5), depth = h5ml__rng_range(r, 0.3, 0.6), psi = draw_phase(r);
    add_am_tone(sc, rho * sc->speed, 0.8 * sc->severity, ph, fm, depth, psi);
}

static void add_fault(scene *sc, int label, h5ml_rng *r)
{
    switch (label) {
    case F_DESALIGNEMENT: sig_misalignment(sc); break;
    case F_DESEQUILIBRE: sig_imbalance(sc); break;
    case F_JEU: sig_clearance(sc, r); break;
    case F_LUBRIFICATION: sig_lubrication(sc, r); break;
    case F_CAVITATION: sig_cavitation(sc, r); break;
    case F_USURE: sig_wear(sc, r); break;
    case F_OILWHIRL: sig_oilwhirl(sc, r); break;
    case F_MIX_MISALIGN_IMBALANCE: sig_misalignment(sc); sig_imbalance(sc); break;
    case F_MIX_WEAR_LUBE: sig_wear(sc, r); sig_lubrication(sc, r); break;
    case F_MIX_CAVIT_JEU: sig_cavitation(sc, r); sig_clearance(sc, r); break;
    default: break;
    }
}

static void build_scene(scene *sc, const h5ml_siggen_params *p, int label, h5ml_rng *r)
{
    memset(sc, 0, sizeof *sc);
    sc->rate = p->rate;
    sc->nominal = p->speed_hz;
    sc->speed = p->speed_hz * (1 + h5ml__rng_range(r, -p->speed_var, p->speed_var));
    sc->severity = h5ml__rng_range(r, 0.2, 1.0);
    sc->load = h5ml__rng_uniform(r);
    double mains = h5ml__rng_below(r, 2) ? 60.0 : 50.0, mains_amp = h5ml__rng_range(r, 0.02, 0.05);
    for (int k = 1; k <= 3; k++) sc->harm_phase[k] = draw_phase(r);
    for (int k = 1; k <= 3; k++) add_tone(sc, k * mains, mains_amp * (k == 1 ? 1.0 : k == 2 ? 0.4 : 0.2), draw_phase(r));
    sc->harm_amp[1] = 0.1 * (1 + 0.3 * sc->load);
    sc->harm_amp[2] = 0.03;
    sc->noise_sigma = 0.05 * (1 + 0.5 * sc->load);
    if (label == F_SAIN) sc->severity = 0;
    add_fault(sc, label, r);
    for (int k = 1; k <= 3; k++) add_tone(sc, k * sc->speed, sc->harm_amp[k], sc->harm_phase[k]);
}

/* ---- rendering ---- */

/* One tone's block table e^{i w j} and its phasor amp e^{i (phase + w n0)}. */
typedef struct osc {
    double re[BLOCK], im[BLOCK];
    double zr, zi, wr, wi, nwi;
} osc;

static void osc_anchor(osc *o, const tone *t, int64_t n0)
{
    double ph = fmod(t->phase + t->w * (double)n0, TWO_PI);
    o->zr = t->amp * cos(ph);
    o->zi = t->amp * sin(ph);
}

static void osc_init(osc *o, const tone *t)
{
    for (int j = 0; j < BLOCK; j++) {
        o->re[j] = cos(t->w * j);
        o->im[j] = sin(t->w * j);
    }
    o->wr = cos(t->w * BLOCK);
    o->wi = sin(t->w * BLOCK);
    o->nwi = -o->wi;
    osc_anchor(o, t, 0);
}

static void osc_add_block(osc *restrict o, double *restrict acc)
{
    double zr = o->zr, zi = o->zi;
    for (int j = 0; j < BLOCK; j++) acc[j] += zr * o->re[j] - zi * o->im[j];
    /* Two sums (with -wi stored) rather than a difference and a sum: GCC 12 vectorises the
     * latter into a fused multiply-add-subtract even with contraction off. */
    o->zr = zr * o->wr + zi * o->nwi;
    o->zi = zr * o->wi + zi * o->wr;
}

/* Irwin-Hall of four 16-bit uniforms, standardised: mean 4 * 32767.5, variance
 * 4 * (65536^2 - 1) / 12. */
static inline double fast_normal(h5ml_rng *r)
{
    uint64_t u = h5ml__rng_next(r);
    uint64_t s = (u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48);
    return ((double)s - 131070.0) * 2.6428997921303014e-05; /* 1 / sqrt((2^32 - 1) / 3) */
}

typedef struct burst_state {
    h5ml_rng rng;
    int64_t next_start, end;
    double amp;
    double y1, y2;
} burst_state;

static void cavitation_block(const cavitation *cav, burst_state *b, int64_t n0, double *acc)
{
    for (int j = 0; j < BLOCK; j++) {
        int64_t n = n0 + j;
        if (n >= b->next_start) {
            double len = h5ml__rng_range(&b->rng, cav->len_lo, cav->len_hi);
            b->amp = cav->amp * h5ml__rng_range(&b->rng, 0.5, 1.5) * cav->in_gain;
            b->end = n + (int64_t)len;
            double gap = -log(1.0 - h5ml__rng_uniform(&b->rng)) * cav->gap_mean;
            b->next_start = b->end + 1 + (int64_t)gap;
        }
        double x = n < b->end ? b->amp * fast_normal(&b->rng) : 0.0;
        double y = cav->c1 * b->y1 - cav->c2 * b->y2 + x;
        b->y2 = b->y1;
        b->y1 = y;
        acc[j] += y;
    }
}

static void noise_block(const scene *sc, osc *env, h5ml_rng *r, double *acc)
{
    if (sc->fric_sigma > 0) {
        double e[BLOCK] = {0};
        osc_add_block(env, e);
        for (int j = 0; j < BLOCK; j++)
            acc[j] += (sc->noise_sigma + sc->fric_sigma * 0.5 * (1 + e[j])) * fast_normal(r);
    } else {
        for (int j = 0; j < BLOCK; j++) acc[j] += sc->noise_sigma * fast_normal(r);
    }
}

static int render(const scene *sc, uint64_t seed, int64_t length, float *out)
{
    osc *o = malloc((size_t)(sc->ntones + 1) * sizeof *o);
    if (!o) return -1;
    osc *env = &o[sc->ntones];
    for (int k = 0; k < sc->ntones; k++) osc_init(&o[k], &sc->tones[k]);
    osc_init(env, &sc->env_tone);
    h5ml_rng noise;
    h5ml__rng_seed(&noise, h5ml__rng_derive(seed, 1));
    burst_state bursts = {.next_start = 0};
    h5ml__rng_seed(&bursts.rng, h5ml__rng_derive(seed, 2));
    if (sc->cav.on) bursts.next_start = (int64_t)(-log(1.0 - h5ml__rng_uniform(&bursts.rng)) * sc->cav.gap_mean);
    for (int64_t n0 = 0, b = 0; n0 < length; n0 += BLOCK, b++) {
        double acc[BLOCK] = {0};
        if (b % ANCHOR_BLOCKS == 0 && b > 0) {
            for (int k = 0; k < sc->ntones; k++) osc_anchor(&o[k], &sc->tones[k], n0);
            osc_anchor(env, &sc->env_tone, n0);
        }
        for (int k = 0; k < sc->ntones; k++) osc_add_block(&o[k], acc);
        noise_block(sc, env, &noise, acc);
        if (sc->cav.on) cavitation_block(&sc->cav, &bursts, n0, acc);
        int64_t len = length - n0 < BLOCK ? length - n0 : BLOCK;
        for (int64_t j = 0; j < len; j++) out[n0 + j] = (float)acc[j];
    }
    free(o);
    return 0;
}

static int params_ok(const h5ml_siggen_params *p)
{
    return p && isfinite(p->rate) && p->rate > 0 && p->length > 0 && isfinite(p->speed_hz) && p->speed_hz > 0 &&
           isfinite(p->speed_var) && p->speed_var >= 0 && p->speed_var < 1;
}

int h5ml__siggen_sample(const h5ml_siggen_params *p, int label, int64_t index, float *out, h5ml_siggen_info *info)
{
    if (!params_ok(p) || label < 0 || label >= H5ML_NUM_FAULTS || index < 0 || !out) return -1;
    /* 53 bits, so the seed survives JSON (parsers read numbers as doubles or int64) */
    uint64_t seed = h5ml__rng_derive(h5ml__rng_derive(p->seed, (uint64_t)label), (uint64_t)index) >> 11;
    h5ml_rng r;
    h5ml__rng_seed(&r, seed);
    scene *sc = malloc(sizeof *sc);
    if (!sc) return -1;
    build_scene(sc, p, label, &r);
    if (info) *info = (h5ml_siggen_info){label, sc->severity, sc->speed, sc->load, seed};
    int rc = render(sc, seed, p->length, out);
    free(sc);
    return rc;
}

/* JSON has no nan/inf; h5ml__fmt_double gives the shortest round-trip decimal otherwise. */
static void json_number(char out[32], double v)
{
    if (isfinite(v)) h5ml__fmt_double(out, v);
    else strcpy(out, "null");
}

int h5ml__siggen_info_json(const h5ml_siggen_info *info, int64_t index, char *out, size_t outlen)
{
    char sev[32], hz[32], rpm[32], load[32];
    json_number(sev, info->severity);
    json_number(hz, info->speed_hz);
    json_number(rpm, info->speed_hz * 60);
    json_number(load, info->load);
    const char *name = info->label >= 0 && info->label < H5ML_NUM_FAULTS ? h5ml__fault_names[info->label] : "unknown";
    int n = snprintf(out, outlen,
                     "{\"fault\":\"%s\",\"label\":%d,\"severity\":%s,\"speed_hz\":%s,\"speed_rpm\":%s,"
                     "\"load\":%s,\"seed\":%" PRIu64 ",\"index\":%" PRId64 "}",
                     name, info->label, sev, hz, rpm, load, info->seed, index);
    if (n < 0 || outlen == 0) return 0;
    return (size_t)n < outlen ? n : (int)outlen - 1;
}
