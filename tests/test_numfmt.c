/* Number parsing (exact, like strtod) and shortest round-trip printing. */
#include "check.h"
#include "internal.h"

static void check_parse(const char *s)
{
    double got, want = strtod(s, NULL);
    const char *end = h5ml__parse_double(s, s + strlen(s), &got);
    CHECK_MSG(end == s + strlen(s), "'%s' not fully parsed", s);
    CHECK_MSG(memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want)), "'%s': %.17g != %.17g", s, got, want);
}

/* Significant digits of a printed number (no leading zeros, no trailing zeros). */
static int sig_digits(const char *s)
{
    char d[40];
    int n = 0;
    for (const char *p = s; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '0' && *p <= '9' && (n > 0 || *p != '0')) d[n++] = *p;
    while (n > 1 && d[n - 1] == '0') n--;
    return n;
}

static void check_roundtrip(double v)
{
    char buf[32];
    int n = h5ml__fmt_double(buf, v);
    CHECK_EQ_I(n, (int64_t)strlen(buf));
    double back;
    CHECK(h5ml__parse_double(buf, buf + n, &back) == buf + n);
    CHECK_MSG(memcmp(&back, &v, sizeof v) == 0 || (isnan(v) && isnan(back)), "%.17g printed as %s", v, buf);
    CHECK_MSG(strpbrk(buf, ".eni") != NULL, "%s would read back as an integer", buf);
    if (!isfinite(v) || v == 0) return;
    char ref[40];
    for (int prec = 1; prec <= 17; prec++) { /* the shortest representation */
        snprintf(ref, sizeof ref, "%.*g", prec, v);
        if (strtod(ref, NULL) == v) break;
    }
    CHECK_MSG(sig_digits(buf) <= sig_digits(ref), "%s is longer than %s", buf, ref);
}

int main(void)
{
    unsigned seed = test_seed();
    rng_seed(seed);
    const char *fixed[] = { "0", "-0", "1", "-1.5", "0.1", "3.14159265358979", "1e-300", "1e308", "4.9e-324",
                            "2.2250738585072014e-308", "123456789012345678901234567890", "0.000000000000000000001234",
                            "       1.23456789", "1.", ".5", "-.5e3", "1E+10", "9007199254740993", "nan", "-inf",
                            "Infinity", "1.7976931348623157e308", "0.30000000000000004", "-12.00000000" };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        const char *s = fixed[i];
        while (*s == ' ') s++;
        check_parse(s);
    }
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        /* ASE-style %16.8f, random %.17g, random short decimals */
        double v = rng_normal() * pow(10, (double)rng_int(-8, 8));
        int kind = (int)rng_int(0, 2);
        if (kind == 0) snprintf(buf, sizeof buf, "%.8f", v);
        else if (kind == 1) snprintf(buf, sizeof buf, "%.17g", v);
        else snprintf(buf, sizeof buf, "%.*e", (int)rng_int(0, 20), v);
        check_parse(buf);
    }
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = rng_u64();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        check_roundtrip(v);
        check_roundtrip(rng_normal() * 10);
    }
    double specials[] = { 0.0, -0.0, 1.0, 3.0, -12.0, 0.1, 1e22, 1e23, 5e-324, NAN, INFINITY, -INFINITY, 1.5685969006058453 };
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) check_roundtrip(specials[i]);
    h5ml__fmt_double(buf, 3.0);
    CHECK_STR(buf, "3.0");
    h5ml__fmt_double(buf, 0.1);
    CHECK_STR(buf, "0.1");
    h5ml__fmt_double(buf, -1.5685969006058453);
    CHECK_STR(buf, "-1.5685969006058453");
    h5ml__fmt_float(buf, 0.1f);
    CHECK_STR(buf, "0.10000000149011612");
    /* integers */
    int64_t iv;
    const char *s = "9223372036854775807";
    CHECK(h5ml__parse_int(s, s + strlen(s), &iv) == s + strlen(s) && iv == INT64_MAX);
    s = "-9223372036854775808";
    CHECK(h5ml__parse_int(s, s + strlen(s), &iv) == s + strlen(s) && iv == INT64_MIN);
    s = "9223372036854775808";
    CHECK(h5ml__parse_int(s, s + strlen(s), &iv) == NULL);
    s = "12x";
    CHECK(h5ml__parse_int(s, s + strlen(s), &iv) == s + 2 && iv == 12);
    s = "abc";
    CHECK(h5ml__parse_double(s, s + 3, &specials[0]) == NULL);
    return check_report("test_numfmt");
}
