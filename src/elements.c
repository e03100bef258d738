/* Chemical symbols, indexed by atomic number (0 = "X", ASE's dummy atom). */
#include "internal.h"

#include <pthread.h>
#include <string.h>

static const char *const symbols[119] = {
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na",
    "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V",
    "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag",
    "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu",
    "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi",
    "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am",
    "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh",
    "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
};

const char *h5ml_symbol(int z) { return (z >= 0 && z <= 118) ? symbols[z] : NULL; }

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Symbols of 1-3 letters map to a slot of a 26*27*27 table, built once. */
#define SLOTS (26 * 27 * 27)
static int16_t table[SLOTS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int slot(const char *sym, size_t len)
{
    int k[3] = { 0, 0, 0 };
    for (size_t i = 0; i < len; i++) {
        int c = lower((unsigned char)sym[i]);
        if (c < 'a' || c > 'z') return -1;
        k[i] = c - 'a' + (i ? 1 : 0);
    }
    return (k[0] * 27 + k[1]) * 27 + k[2];
}

static void build_table(void)
{
    for (int i = 0; i < SLOTS; i++) table[i] = -1;
    for (int z = 0; z <= 118; z++) table[slot(symbols[z], strlen(symbols[z]))] = (int16_t)z;
}

/* Case-insensitive, like ASE (which capitalizes what it reads). */
int h5ml__element_z(const char *sym, size_t len)
{
    if (len == 0 || len > 3) return -1;
    pthread_once(&table_once, build_table);
    int k = slot(sym, len);
    return k < 0 ? -1 : table[k];
}
