/*
 * Shared by the fuzz targets (tests/fuzz): each target file defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer
 * (-fsanitize=fuzzer, BRINE_FUZZ=ON, clang) or with fuzz_replay.c, a plain
 * main() that feeds it every file of a corpus directory (the quick tier).
 */
#ifndef BRINE_FUZZ_COMMON_H
#define BRINE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The state fuzz_checkpoint registers (and make_corpus saves as its seed). */
typedef struct fuzz_state {
    double a[3][4];
    int32_t f[2][3]; /* Fortran order i(3,2) */
    int64_t n;
    double complex_v[2];
    char s[32];
} fuzz_state;

static inline int fuzz_state_register(brine *b, fuzz_state *st)
{
    int rc;
    if ((rc = brine_register(b, "a", BRINE_F64, st->a, 2, (size_t[]){3, 4}, 0)) ||
        (rc = brine_register(b, "g/f", BRINE_I32, st->f, 2, (size_t[]){3, 2}, BRINE_FORTRAN_ORDER)) ||
        (rc = brine_register(b, "g/n", BRINE_I64, &st->n, 0, NULL, 0)) ||
        (rc = brine_register(b, "c", BRINE_C128, st->complex_v, 0, NULL, 0)) ||
        (rc = brine_register_string(b, "s", st->s, sizeof st->s)))
        return rc;
    return 0;
}

static inline void fuzz_state_fill(fuzz_state *st)
{
    for (int i = 0; i < 12; i++)
        st->a[i / 4][i % 4] = 0.5 * i - 1.0;
    for (int i = 0; i < 6; i++)
        st->f[i / 3][i % 3] = 100 * i - 7;
    st->n = 123456789012;
    st->complex_v[0] = 1.5;
    st->complex_v[1] = -2.25;
    const char text[] = "fuzz \xc3\xa9t\xc3\xa9";
    for (size_t i = 0; i < sizeof st->s; i++)
        st->s[i] = i < sizeof text ? text[i] : 0;
}

#endif
