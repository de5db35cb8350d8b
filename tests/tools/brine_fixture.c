/*
 * brine_fixture: writes checkpoints of a deterministic state for the Python tests.
 *
 * usage: brine_fixture DIR [--steps N] [--prefix P] [--codec NAME] [--level L] [--threads T]
 *        brine_fixture --list-codecs      (prints the codecs built in, one per line)
 *
 * Registers the state below with the public API only (brine.h), then for
 * s = 1..N (default 3) fills every variable for step s and calls
 * brine_save(b, s), keeping every checkpoint.  Exit status 0 on success,
 * 1 when a brine call fails (its brine_errmsg() is printed), 2 on bad usage.
 *
 * The formulas are mirrored by tests/python/fixture_values.py; change both.
 * s is the step; k is the element's flat index in the LOGICAL shape in C
 * (row-major) order, whatever the array's memory order, so that Python
 * recomputes a variable as f(np.arange(size).reshape(shape)).  Integer
 * arithmetic is exact (64-bit, reduced as written); "/ 3" etc. are IEEE
 * divisions in the element's own precision, computed identically by numpy.
 *
 * dtypes, in brine_dtype order: bool int8 int16 int32 int64 uint8 uint16
 * uint32 uint64 float32 float64 complex64 complex128; d = that index (0..12).
 *
 * step                  int64 scalar    s
 * time                  float64 scalar  s * 0.25
 * scalars/<dtype>       one scalar of every dtype:
 *     bool  s % 2 == 1             int8  -100 + s % 200        int16  300 + s % 30000
 *     int32 -2000000000 + s        int64 9000000000000000000 + s
 *     uint8 200 + s % 50           uint16 60000 + s % 5000     uint32 4000000000 + s
 *     uint64 18446744073709551615 - s
 *     float32 (float)s / 3.0f      float64 (double)s / 3.0
 *     complex64  re (float)s / 3.0f, im -0.5f * (float)s
 *     complex128 re (double)s / 7.0, im -1.0 / (double)(s + 1)
 * meta/title            string "brine fixture step <s> \u2713" (UTF-8 check mark), capacity 64
 * arrays/<dtype>/d1     shape (5 + d), C order
 * arrays/<dtype>/d2     shape (3 + d % 3, 2 + d % 4), Fortran order when d is even
 * arrays/<dtype>/d3     shape (2 + d % 2, 3, 2 + d % 3), Fortran order when d is odd
 *     element values by dtype ("mod" is the non-negative remainder):
 *     bool       (k + s) % 3 == 0
 *     int8       (7k + s) mod 256 - 128
 *     int16      (31k + 1000s) mod 65536 - 32768
 *     int32      (2654435761k + s) mod 2^32 - 2^31
 *     int64      (0x9E3779B97F4A7C15 k + s) mod 2^64, as two's complement
 *     uint8      (k + s) mod 256
 *     uint16     (257k + s) mod 65536
 *     uint32     (2654435761k + s) mod 2^32
 *     uint64     (0x9E3779B97F4A7C15 k + s) mod 2^64
 *     float32    k % 11 == 5: NaN (0x7fc00000); == 7: -0.0f; == 9: -inf;
 *                otherwise (float)(k - 2s) / 3.0f
 *     float64    k % 13 == 5: NaN (0x7ff8000000000000); == 7: -0.0; == 9: +inf;
 *                otherwise (double)(k - 2s) / 3.0
 *     complex64  re (float)(k + s) / 3.0f, im (float)k * -0.25f
 *     complex128 re (double)k / 7.0, im (double)s - (double)k * 0.5
 * fluid/velocity        float64 (700, 500) C: 3 chunks of 262 rows, the last one an edge chunk
 *                       (double)((7919k + 104729s) mod 1000003) / 1000003.0
 * fluid/pressure        float32 (300, 1100) Fortran (dataset (1100, 300), edge chunk)
 *                       (float)((31k + s) mod 65521) / 7.0f
 * fluid/density         float64 (2, 150, 1000) C (chunks 1 x 131 x 1000, edge chunks)
 *                       (double)(k % 1000) * 0.5 + (double)s
 * grid/params/dx        float64 scalar 1.0 / 700
 * grid/params/dy        float64 scalar 1.0 / 500
 * grid/params/nx        int32 scalar 700
 * grid/params/ny        int32 scalar 500
 * grid/x                float64 (700) C: (double)k * (1.0 / 700)
 * empty/e1              float64 (0) C
 * empty/e2              int32 (4, 0) registered Fortran: written "C" (empty)
 * empty/e3              complex128 (0, 3, 2) C
 * edge/row_f            uint16 (1, 5) registered Fortran: written "C" (one extent != 1);
 *                       (k + s) mod 65536
 * noise/bytes           uint8 (3, 400000) C, incompressible: chunks of 2 rows, so the first
 *                       is stored with the deflate bit of its filter mask set, and the edge
 *                       chunk (half zero padding) compresses:
 *                       x = k * 0x9E3779B97F4A7C15 + s * 0xD1B54A32D192ED03 (mod 2^64);
 *                       x ^= x >> 29; x *= 0xBF58476D1CE4E5B9 (mod 2^64); x ^= x >> 32;
 *                       the value is x >> 56
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brine.h"

enum formula { F_GENERIC, F_VELOCITY, F_PRESSURE, F_DENSITY, F_GRID_X, F_ROW, F_NOISE };

typedef struct array_var {
    char name[64];
    brine_dtype dtype;
    int ndim;
    size_t shape[3];
    unsigned flags;
    enum formula formula;
    void *data;
    size_t count;
} array_var;

#define MAX_ARRAYS 64

static const char *const dtype_names[BRINE_DTYPE_COUNT] = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "float32", "float64", "complex64", "complex128",
};

static array_var arrays[MAX_ARRAYS];
static int n_arrays;

/* Scalars: one storage slot per dtype, complex as two components. */
static bool sc_bool;
static int8_t sc_i8;
static int16_t sc_i16;
static int32_t sc_i32;
static int64_t sc_i64;
static uint8_t sc_u8;
static uint16_t sc_u16;
static uint32_t sc_u32;
static uint64_t sc_u64;
static float sc_f32;
static double sc_f64;
static float sc_c64[2];
static double sc_c128[2];
static int64_t sc_step;
static double sc_time;
static double sc_dx, sc_dy;
static int32_t sc_nx, sc_ny;
static char title[64];

static const uint64_t golden = 0x9E3779B97F4A7C15ull;

/* k: the C-order flat index of the element stored at memory position m. */
static uint64_t logical_index(const array_var *v, size_t m)
{
    size_t idx[3] = {0, 0, 0};
    if (v->flags & BRINE_FORTRAN_ORDER) {
        for (int j = 0; j < v->ndim; j++) {
            idx[j] = m % v->shape[j];
            m /= v->shape[j];
        }
    } else {
        for (int j = v->ndim - 1; j >= 0; j--) {
            idx[j] = m % v->shape[j];
            m /= v->shape[j];
        }
    }
    uint64_t k = 0;
    for (int j = 0; j < v->ndim; j++)
        k = k * v->shape[j] + idx[j];
    return k;
}

static void set_generic(brine_dtype dt, void *data, size_t m, uint64_t k, int64_t s)
{
    const uint64_t us = (uint64_t)s;
    const int64_t ik = (int64_t)k;
    switch (dt) {
    case BRINE_BOOL: ((bool *)data)[m] = (k + us) % 3 == 0; break;
    case BRINE_I8: ((int8_t *)data)[m] = (int8_t)((int64_t)((7 * k + us) % 256) - 128); break;
    case BRINE_I16:
        ((int16_t *)data)[m] = (int16_t)((int64_t)((31 * k + 1000 * us) % 65536) - 32768);
        break;
    case BRINE_I32:
        ((int32_t *)data)[m] =
            (int32_t)((int64_t)((2654435761ull * k + us) % 4294967296ull) - 2147483648ll);
        break;
    case BRINE_I64: {
        const uint64_t u = golden * k + us;
        int64_t i;
        memcpy(&i, &u, sizeof i); /* two's complement reinterpretation */
        ((int64_t *)data)[m] = i;
        break;
    }
    case BRINE_U8: ((uint8_t *)data)[m] = (uint8_t)((k + us) % 256); break;
    case BRINE_U16: ((uint16_t *)data)[m] = (uint16_t)((257 * k + us) % 65536); break;
    case BRINE_U32: ((uint32_t *)data)[m] = (uint32_t)((2654435761ull * k + us) % 4294967296ull); break;
    case BRINE_U64: ((uint64_t *)data)[m] = golden * k + us; break;
    case BRINE_F32: {
        float x;
        switch (k % 11) {
        case 5: x = NAN; break;
        case 7: x = -0.0f; break;
        case 9: x = -INFINITY; break;
        default: x = (float)(ik - 2 * s) / 3.0f; break;
        }
        ((float *)data)[m] = x;
        break;
    }
    case BRINE_F64: {
        double x;
        switch (k % 13) {
        case 5: x = (double)NAN; break;
        case 7: x = -0.0; break;
        case 9: x = (double)INFINITY; break;
        default: x = (double)(ik - 2 * s) / 3.0; break;
        }
        ((double *)data)[m] = x;
        break;
    }
    case BRINE_C64:
        ((float *)data)[2 * m] = (float)(ik + s) / 3.0f;
        ((float *)data)[2 * m + 1] = (float)ik * -0.25f;
        break;
    case BRINE_C128:
        ((double *)data)[2 * m] = (double)ik / 7.0;
        ((double *)data)[2 * m + 1] = (double)s - (double)ik * 0.5;
        break;
    }
}

static void fill_array(const array_var *v, int64_t s)
{
    const uint64_t us = (uint64_t)s;
    for (size_t m = 0; m < v->count; m++) {
        const uint64_t k = logical_index(v, m);
        switch (v->formula) {
        case F_GENERIC: set_generic(v->dtype, v->data, m, k, s); break;
        case F_VELOCITY:
            ((double *)v->data)[m] = (double)((7919 * k + 104729 * us) % 1000003) / 1000003.0;
            break;
        case F_PRESSURE: ((float *)v->data)[m] = (float)((31 * k + us) % 65521) / 7.0f; break;
        case F_DENSITY: ((double *)v->data)[m] = (double)(k % 1000) * 0.5 + (double)s; break;
        case F_GRID_X: ((double *)v->data)[m] = (double)k * (1.0 / 700); break;
        case F_ROW: ((uint16_t *)v->data)[m] = (uint16_t)((k + us) % 65536); break;
        case F_NOISE: {
            uint64_t x = k * UINT64_C(0x9E3779B97F4A7C15) + us * UINT64_C(0xD1B54A32D192ED03);
            x ^= x >> 29;
            x *= UINT64_C(0xBF58476D1CE4E5B9);
            x ^= x >> 32;
            ((uint8_t *)v->data)[m] = (uint8_t)(x >> 56);
            break;
        }
        }
    }
}

static void fill_scalars(int64_t s)
{
    const float fs = (float)s;
    sc_step = s;
    sc_time = (double)s * 0.25;
    sc_bool = s % 2 == 1;
    sc_i8 = (int8_t)(-100 + s % 200);
    sc_i16 = (int16_t)(300 + s % 30000);
    sc_i32 = (int32_t)(-2000000000 + s);
    sc_i64 = 9000000000000000000ll + s;
    sc_u8 = (uint8_t)(200 + s % 50);
    sc_u16 = (uint16_t)(60000 + s % 5000);
    sc_u32 = (uint32_t)(4000000000u + (uint64_t)s);
    sc_u64 = UINT64_MAX - (uint64_t)s;
    sc_f32 = fs / 3.0f;
    sc_f64 = (double)s / 3.0;
    sc_c64[0] = fs / 3.0f;
    sc_c64[1] = -0.5f * fs;
    sc_c128[0] = (double)s / 7.0;
    sc_c128[1] = -1.0 / (double)(s + 1);
    sc_dx = 1.0 / 700;
    sc_dy = 1.0 / 500;
    sc_nx = 700;
    sc_ny = 500;
    snprintf(title, sizeof title, "brine fixture step %" PRId64 " \xe2\x9c\x93", s);
}

static void add_array(const char *name, brine_dtype dt, int ndim, size_t n0, size_t n1, size_t n2,
                      unsigned flags, enum formula formula)
{
    if (n_arrays == MAX_ARRAYS) {
        fprintf(stderr, "brine_fixture: too many arrays\n");
        exit(1);
    }
    array_var *v = &arrays[n_arrays++];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->dtype = dt;
    v->ndim = ndim;
    v->shape[0] = n0;
    v->shape[1] = n1;
    v->shape[2] = n2;
    v->flags = flags;
    v->formula = formula;
    v->count = 1;
    for (int j = 0; j < ndim; j++)
        v->count *= v->shape[j];
    /* At least one byte so that empty arrays get a valid, non-NULL pointer. */
    v->data = calloc(v->count ? v->count : 1, brine_dtype_size(dt) ? brine_dtype_size(dt) : 16);
    if (!v->data) {
        fprintf(stderr, "brine_fixture: out of memory\n");
        exit(1);
    }
}

static void define_arrays(void)
{
    char name[64];
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        const brine_dtype dt = (brine_dtype)d;
        snprintf(name, sizeof name, "arrays/%s/d1", dtype_names[d]);
        add_array(name, dt, 1, (size_t)(5 + d), 0, 0, 0, F_GENERIC);
        snprintf(name, sizeof name, "arrays/%s/d2", dtype_names[d]);
        add_array(name, dt, 2, (size_t)(3 + d % 3), (size_t)(2 + d % 4), 0,
                  d % 2 == 0 ? BRINE_FORTRAN_ORDER : 0u, F_GENERIC);
        snprintf(name, sizeof name, "arrays/%s/d3", dtype_names[d]);
        add_array(name, dt, 3, (size_t)(2 + d % 2), 3, (size_t)(2 + d % 3),
                  d % 2 == 1 ? BRINE_FORTRAN_ORDER : 0u, F_GENERIC);
    }
    add_array("fluid/velocity", BRINE_F64, 2, 700, 500, 0, 0, F_VELOCITY);
    add_array("fluid/pressure", BRINE_F32, 2, 300, 1100, 0, BRINE_FORTRAN_ORDER, F_PRESSURE);
    add_array("fluid/density", BRINE_F64, 3, 2, 150, 1000, 0, F_DENSITY);
    add_array("grid/x", BRINE_F64, 1, 700, 0, 0, 0, F_GRID_X);
    add_array("empty/e1", BRINE_F64, 1, 0, 0, 0, 0, F_GENERIC);
    add_array("empty/e2", BRINE_I32, 2, 4, 0, 0, BRINE_FORTRAN_ORDER, F_GENERIC);
    add_array("empty/e3", BRINE_C128, 3, 0, 3, 2, 0, F_GENERIC);
    add_array("edge/row_f", BRINE_U16, 2, 1, 5, 0, BRINE_FORTRAN_ORDER, F_ROW);
    add_array("noise/bytes", BRINE_U8, 2, 3, 400000, 0, 0, F_NOISE);
}

static int check(brine *b, int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "brine_fixture: %s: %s: %s\n", what, brine_errstr(rc), brine_errmsg(b));
        return 1;
    }
    return 0;
}

static int register_scalar(brine *b, const char *name, brine_dtype dt, void *data)
{
    static const size_t no_shape[1] = {0};
    return check(b, brine_register(b, name, dt, data, 0, no_shape, 0), name);
}

static int register_all(brine *b)
{
    void *const scalar_data[BRINE_DTYPE_COUNT] = {
        &sc_bool, &sc_i8, &sc_i16, &sc_i32, &sc_i64, &sc_u8, &sc_u16,
        &sc_u32, &sc_u64, &sc_f32, &sc_f64, sc_c64, sc_c128,
    };
    char name[64];
    int bad = 0;
    bad |= register_scalar(b, "step", BRINE_I64, &sc_step);
    bad |= register_scalar(b, "time", BRINE_F64, &sc_time);
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        snprintf(name, sizeof name, "scalars/%s", dtype_names[d]);
        bad |= register_scalar(b, name, (brine_dtype)d, scalar_data[d]);
    }
    bad |= check(b, brine_register_string(b, "meta/title", title, sizeof title), "meta/title");
    for (int i = 0; i < n_arrays; i++) {
        const array_var *v = &arrays[i];
        bad |= check(b, brine_register(b, v->name, v->dtype, v->data, v->ndim, v->shape, v->flags),
                     v->name);
        if (strcmp(v->name, "fluid/density") == 0) { /* a nested group after arrays */
            bad |= register_scalar(b, "grid/params/dx", BRINE_F64, &sc_dx);
            bad |= register_scalar(b, "grid/params/dy", BRINE_F64, &sc_dy);
            bad |= register_scalar(b, "grid/params/nx", BRINE_I32, &sc_nx);
            bad |= register_scalar(b, "grid/params/ny", BRINE_I32, &sc_ny);
        }
    }
    return bad;
}

static int usage(void)
{
    fprintf(stderr, "usage: brine_fixture DIR [--steps N] [--prefix P] [--codec NAME] [--level L] "
                    "[--threads T]\n       brine_fixture --list-codecs\n");
    return 2;
}

/* The codec named name ("default", "zlib", ...), or -1. */
static int codec_named(const char *name)
{
    for (int c = BRINE_CODEC_DEFAULT; c <= BRINE_CODEC_NONE; c++)
        if (strcmp(brine_codec_name((brine_codec)c), name) == 0)
            return c;
    return -1;
}

/* A whole decimal number in [lo, hi] from text, or lo - 1. */
static long number(const char *text, long lo, long hi)
{
    char *end;
    long v = strtol(text, &end, 10);
    return (*end != '\0' || end == text || v < lo || v > hi) ? lo - 1 : v;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    const char *prefix = "ckpt";
    long steps = 3;
    brine_options opts = BRINE_OPTIONS_INIT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list-codecs") == 0) {
            for (int c = BRINE_CODEC_ZLIB; c <= BRINE_CODEC_NONE; c++)
                if (brine_codec_available((brine_codec)c))
                    printf("%s\n", brine_codec_name((brine_codec)c));
            return 0;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            if ((steps = number(argv[++i], 0, 100000)) < 0)
                return usage();
        } else if (strcmp(argv[i], "--codec") == 0 && i + 1 < argc) {
            int c = codec_named(argv[++i]);
            if (c < 0)
                return usage();
            opts.codec = (brine_codec)c;
        } else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) {
            if ((opts.level = (int)number(argv[++i], 0, 99)) < 0)
                return usage();
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if ((opts.threads = (int)number(argv[++i], 1, 1024)) < 1)
                return usage();
        } else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            return usage();
        }
    }
    if (dir == NULL)
        return usage();

    define_arrays();
    opts.prefix = prefix;
    opts.keep_last = 1000000; /* keep every checkpoint */
    brine *b = NULL;
    if (brine_open(&b, dir, &opts) != 0) {
        fprintf(stderr, "brine_fixture: brine_open(%s): %s\n", dir, brine_open_errmsg());
        return 1;
    }
    int rc = register_all(b);
    for (long s = 1; rc == 0 && s <= steps; s++) {
        fill_scalars(s);
        for (int i = 0; i < n_arrays; i++)
            fill_array(&arrays[i], s);
        rc = check(b, brine_save(b, s), "brine_save");
    }
    brine_close(b);
    for (int i = 0; i < n_arrays; i++)
        free(arrays[i].data);
    return rc == 0 ? 0 : 1;
}
