/*
 * Schemas that change: every difference named (EMISMATCH), BRINE_RESTORE_PARTIAL,
 * BRINE_CONVERT, resizable arrays, and the reader (brine_reader_open,
 * brine_restore_begin, brine_find, brine_read).
 */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "brine.h"
#include "test_util.h"

/* Fails unless text contains needle. */
#define HAS(text, needle)                                                                    \
    do {                                                                                     \
        const char *t_ = (text);                                                             \
        if (!t_ || !strstr(t_, (needle))) {                                                  \
            print_error("\"%s\"\ndoes not contain \"%s\"\n", t_ ? t_ : "(null)", (needle));  \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

#define RD_OK(r, expr)                                                                        \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        if (rc_ != 0) {                                                                      \
            print_error("%s returned %d: %s\n", #expr, rc_, brine_reader_errmsg(r));         \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

#define RD_RC(r, code, expr)                                                                  \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        if (rc_ != (code)) {                                                                 \
            print_error("%s returned %d, expected %d: %s\n", #expr, rc_, (int)(code),        \
                        brine_reader_errmsg(r));                                             \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

static void all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i], v);
}

/* ------------------------------------------------------------------------ */
/* Every difference named                                                   */

static void save_base(const char *dir)
{
    brine *b = tu_open(dir, NULL);
    double a[4] = {1, 2, 3, 4};
    int32_t n = 7;
    float c[6] = {1, 2, 3, 4, 5, 6};
    char s[16] = "hello";
    const size_t sa[1] = {4}, sc[2] = {2, 3};
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, sa, 0));
    OK(b, brine_register(b, "g/n", BRINE_I32, &n, 0, NULL, 0));
    OK(b, brine_register(b, "g/c", BRINE_F32, c, 2, sc, 0));
    OK(b, brine_register_string(b, "s", s, sizeof s));
    OK(b, brine_save(b, 1));
    brine_close(b);
}

static void test_every_difference_named(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    save_base(dir);
    brine *b = tu_open(dir, NULL);
    float a[4], c[6], extra = 5;
    char s[16];
    memset(a, 0x5A, sizeof a);
    memset(c, 0x5A, sizeof c);
    memset(s, 0x5A, sizeof s);
    const size_t sa[1] = {4}, sc[2] = {3, 2};
    OK(b, brine_register(b, "a", BRINE_F32, a, 1, sa, 0));          /* dtype differs */
    OK(b, brine_register(b, "g/c", BRINE_F32, c, 2, sc, 0));        /* shape differs */
    OK(b, brine_register(b, "new", BRINE_F32, &extra, 0, NULL, 0)); /* not in the checkpoint */
    OK(b, brine_register_string(b, "s", s, sizeof s));               /* matches */
    /* g/n is in the checkpoint but not registered */
    int64_t step = -1;
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, &step));
    const char *m = brine_errmsg(b);
    HAS(m, "ckpt-000000000001.h5: 4 differences between the registered variables and the checkpoint");
    HAS(m, "variable 'a' is registered as float32 (4,) order C, the checkpoint has float64 (4,) order C"
           " (with BRINE_CONVERT it would be converted)");
    HAS(m, "variable 'g/c' is registered as float32 (3, 2) order C, the checkpoint has float32 (2, 3) order C");
    HAS(m, "variable 'new' is registered but not in the checkpoint");
    HAS(m, "'g/n' is in the checkpoint (an int) but not registered");
    assert_int_equal(step, -1);
    all_bytes(a, sizeof a, 0x5A);
    all_bytes(c, sizeof c, 0x5A);
    all_bytes(s, sizeof s, 0x5A);
    brine_close(b);

    /* Partial: names are tolerated, a dtype or shape difference is not. */
    b = tu_open_partial(dir);
    OK(b, brine_register(b, "a", BRINE_F32, a, 1, sa, 0));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
    HAS(brine_errmsg(b), "1 difference between");
    HAS(brine_errmsg(b), "variable 'a' is registered as float32");
    all_bytes(a, sizeof a, 0x5A);
    brine_close(b);

    /* Scalars compare by value: an int restores into float and complex, must fit an integer. */
    b = tu_open_partial(dir);
    int8_t small = 0;
    OK(b, brine_register(b, "g/n", BRINE_I8, &small, 0, NULL, 0));
    OK(b, brine_restore(b, NULL));
    assert_int_equal(small, 7);
    brine_close(b);
    b = tu_open_partial(dir);
    double complex_n[2] = {0, 1};
    OK(b, brine_register(b, "g/n", BRINE_C128, complex_n, 0, NULL, 0));
    OK(b, brine_restore(b, NULL));
    assert_true(complex_n[0] == 7.0 && complex_n[1] == 0.0);
    brine_close(b);
    b = tu_open_partial(dir);
    int s_as_int = 0;
    OK(b, brine_register(b, "s", BRINE_I32, &s_as_int, 0, NULL, 0));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
    HAS(brine_errmsg(b), "variable 's' is registered as a int32 scalar, the checkpoint has a str");
    brine_close(b);
    tu_rmtree(dir);
}

/* A program that gained a variable: partial restore, a report, then strict again. */
static void test_partial_new_variable(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    save_base(dir);
    brine *b = tu_open_partial(dir);
    double a[4] = {0};
    int32_t n = 0;
    float c[6] = {0};
    char s[16] = "";
    double added[3] = {-1, -2, -3};
    const size_t sa[1] = {4}, sc[2] = {2, 3}, s3[1] = {3};
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, sa, 0));
    OK(b, brine_register(b, "g/n", BRINE_I32, &n, 0, NULL, 0));
    OK(b, brine_register(b, "g/c", BRINE_F32, c, 2, sc, 0));
    OK(b, brine_register_string(b, "s", s, sizeof s));
    OK(b, brine_register(b, "g/added", BRINE_F64, added, 1, s3, 0));
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 1);
    assert_true(a[3] == 4 && n == 7 && c[5] == 6 && strcmp(s, "hello") == 0);
    assert_true(added[0] == -1 && added[2] == -3); /* untouched */
    assert_string_equal(brine_restore_report(b),
                        "variable 'g/added' is registered but not in the checkpoint\n");
    OK(b, brine_save(b, 2));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 2);
    assert_string_equal(brine_restore_report(b), "");
    brine_close(b);
    /* the new checkpoint matches the new program strictly */
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, sa, 0));
    OK(b, brine_register(b, "g/n", BRINE_I32, &n, 0, NULL, 0));
    OK(b, brine_register(b, "g/c", BRINE_F32, c, 2, sc, 0));
    OK(b, brine_register_string(b, "s", s, sizeof s));
    OK(b, brine_register(b, "g/added", BRINE_F64, added, 1, s3, 0));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 2);
    brine_close(b);
    tu_rmtree(dir);
}

/* Many differences: the message stays bounded and counts what it leaves out. */
static void test_many_differences(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    int32_t v[300];
    char name[64];
    for (int i = 0; i < 300; i++) {
        v[i] = i;
        snprintf(name, sizeof name, "group_with_a_long_name/variable_%03d", i);
        OK(b, brine_register(b, name, BRINE_I32, &v[i], 0, NULL, 0));
    }
    OK(b, brine_save(b, 1));
    brine_close(b);
    b = tu_open(dir, NULL);
    int32_t x = 0;
    OK(b, brine_register(b, "x", BRINE_I32, &x, 0, NULL, 0));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
    HAS(brine_errmsg(b), "301 differences");
    HAS(brine_errmsg(b), "variable 'x' is registered but not in the checkpoint");
    HAS(brine_errmsg(b), "more");
    brine_close(b);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* BRINE_CONVERT                                                            */

static int rank_of(brine_dtype d)
{
    switch (d) {
    case BRINE_BOOL: return 0;
    case BRINE_F32:
    case BRINE_F64: return 2;
    case BRINE_C64:
    case BRINE_C128: return 3;
    default: return 1;
    }
}

static int is_signed(brine_dtype d)
{
    return d == BRINE_I8 || d == BRINE_I16 || d == BRINE_I32 || d == BRINE_I64;
}

/* The rule of brine.h, written out independently of the library's code. */
static int expect_convertible(brine_dtype from, brine_dtype to)
{
    if (from == to)
        return 1;
    int rf = rank_of(from), rt = rank_of(to);
    if (rf != rt)
        return rf < rt;
    if (rf != 1)
        return 1;
    if (is_signed(from) && !is_signed(to))
        return 0;
    return brine_dtype_size(to) > brine_dtype_size(from);
}

/* Element i of an array of dtype d as real and imaginary parts. */
static void element(brine_dtype d, const void *p, size_t i, double *re, double *im)
{
    *im = 0;
    switch (d) {
    case BRINE_BOOL: *re = ((const unsigned char *)p)[i]; break;
    case BRINE_I8: *re = ((const int8_t *)p)[i]; break;
    case BRINE_I16: *re = ((const int16_t *)p)[i]; break;
    case BRINE_I32: *re = ((const int32_t *)p)[i]; break;
    case BRINE_I64: *re = (double)((const int64_t *)p)[i]; break;
    case BRINE_U8: *re = ((const uint8_t *)p)[i]; break;
    case BRINE_U16: *re = ((const uint16_t *)p)[i]; break;
    case BRINE_U32: *re = ((const uint32_t *)p)[i]; break;
    case BRINE_U64: *re = (double)((const uint64_t *)p)[i]; break;
    case BRINE_F32: *re = ((const float *)p)[i]; break;
    case BRINE_F64: *re = ((const double *)p)[i]; break;
    case BRINE_C64: *re = ((const float *)p)[2 * i]; *im = ((const float *)p)[2 * i + 1]; break;
    case BRINE_C128: *re = ((const double *)p)[2 * i]; *im = ((const double *)p)[2 * i + 1]; break;
    }
}

/* Small values every dtype holds exactly: the converted values must be equal. */
static void fill_small(brine_dtype d, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int v = d == BRINE_BOOL ? (int)(i % 2) : (int)(i * 7 % 100);
        switch (d) {
        case BRINE_BOOL: ((unsigned char *)p)[i] = (unsigned char)v; break;
        case BRINE_I8: ((int8_t *)p)[i] = (int8_t)(v - 50); break;
        case BRINE_I16: ((int16_t *)p)[i] = (int16_t)(v - 50); break;
        case BRINE_I32: ((int32_t *)p)[i] = v - 50; break;
        case BRINE_I64: ((int64_t *)p)[i] = v - 50; break;
        case BRINE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
        case BRINE_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
        case BRINE_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
        case BRINE_U64: ((uint64_t *)p)[i] = (uint64_t)v; break;
        case BRINE_F32: ((float *)p)[i] = (float)v / 4; break;
        case BRINE_F64: ((double *)p)[i] = (double)v / 4; break;
        case BRINE_C64: ((float *)p)[2 * i] = (float)v / 4; ((float *)p)[2 * i + 1] = -(float)v; break;
        case BRINE_C128: ((double *)p)[2 * i] = (double)v / 4; ((double *)p)[2 * i + 1] = -v; break;
        }
    }
}

static void test_convert_every_pair(void **state)
{
    (void)state;
    enum { N = 300 };
    const size_t shape[1] = {N};
    const char *dir = tu_tmpdir();
    unsigned char src[N * 16], dst[N * 16];
    int allowed = 0, refused = 0;
    for (int from = 0; from < BRINE_DTYPE_COUNT; from++) {
        tu_rmtree(dir);
        brine *b = tu_open(dir, NULL);
        fill_small((brine_dtype)from, src, N);
        OK(b, brine_register(b, "x", (brine_dtype)from, src, 1, shape, 0));
        OK(b, brine_save(b, 1));
        brine_close(b);
        for (int to = 0; to < BRINE_DTYPE_COUNT; to++) {
            const int ok = expect_convertible((brine_dtype)from, (brine_dtype)to);
            memset(dst, 0x5A, sizeof dst);
            b = tu_open(dir, NULL);
            OK(b, brine_register(b, "x", (brine_dtype)to, dst, 1, shape, BRINE_CONVERT));
            int rc = brine_restore(b, NULL);
            if (!ok) {
                refused++;
                EXPECT_RC(b, BRINE_EMISMATCH, rc);
                HAS(brine_errmsg(b), "BRINE_CONVERT does not convert between these dtypes");
                all_bytes(dst, sizeof dst, 0x5A);
            } else {
                allowed++;
                OK(b, rc);
                for (size_t i = 0; i < N; i++) {
                    double r1, i1, r2, i2;
                    element((brine_dtype)from, src, i, &r1, &i1);
                    element((brine_dtype)to, dst, i, &r2, &i2);
                    if (r1 != r2 || i1 != i2) {
                        print_error("%s -> %s: element %zu is %g%+gi, expected %g%+gi\n",
                                    brine_dtype_str((brine_dtype)from), brine_dtype_str((brine_dtype)to),
                                    i, r2, i2, r1, i1);
                        fail();
                    }
                }
            }
            brine_close(b);
            if (from != to) {
                /* Without the flag: a mismatch, with a hint when the conversion exists. */
                b = tu_open(dir, NULL);
                OK(b, brine_register(b, "x", (brine_dtype)to, dst, 1, shape, 0));
                EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
                if (ok)
                    HAS(brine_errmsg(b), "with BRINE_CONVERT it would be converted");
                brine_close(b);
            }
        }
    }
    /* 13 same-dtype pairs, and the rule's count: a guard against a silently empty loop. */
    assert_int_equal(allowed + refused, BRINE_DTYPE_COUNT * BRINE_DTYPE_COUNT);
    assert_true(allowed > 60 && refused > 40);
    tu_rmtree(dir);
}

/* Rounding as numpy: float64 -> float32 rounds once; int64 -> float32 rounds once, not through double. */
static void test_convert_rounding(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    double d[3] = {0.1, 1e300, -3.3};
    int64_t big[2] = {(INT64_C(1) << 60) + (INT64_C(1) << 36) + 1, -((INT64_C(1) << 60) + (INT64_C(1) << 36) + 1)};
    const size_t s3[1] = {3}, s2[1] = {2};
    brine *b = tu_open(dir, NULL);
    OK(b, brine_register(b, "d", BRINE_F64, d, 1, s3, 0));
    OK(b, brine_register(b, "big", BRINE_I64, big, 1, s2, 0));
    OK(b, brine_save(b, 1));
    brine_close(b);
    float f[3], g[2];
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "d", BRINE_F32, f, 1, s3, BRINE_CONVERT));
    OK(b, brine_register(b, "big", BRINE_F32, g, 1, s2, BRINE_CONVERT));
    OK(b, brine_restore(b, NULL));
    assert_true(f[0] == (float)0.1 && isinf(f[1]) && f[2] == (float)-3.3);
    const float up = (float)((INT64_C(1) << 60) + (INT64_C(1) << 37));
    assert_true(g[0] == up && g[1] == -up);
    brine_close(b);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Resizable arrays                                                         */

typedef struct particles {
    double *pos; /* n x 3 */
    size_t shape[2];
    int64_t n;
} particles;

static void particles_fill(particles *p, size_t n, int seed)
{
    p->pos = realloc(p->pos, n ? n * 3 * sizeof(double) : 1);
    p->shape[0] = n;
    p->shape[1] = 3;
    p->n = (int64_t)n;
    for (size_t i = 0; i < 3 * n; i++)
        p->pos[i] = seed * 1000.0 + (double)i / 7.0;
}

static brine *open_particles(const char *dir, particles *p, brine_resize_fn fn, void *ctx)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    brine *b = tu_open(dir, &o);
    OK(b, brine_register_resizable(b, "particles/pos", BRINE_F64, (void **)&p->pos, 2, p->shape, 0,
                                   fn, ctx));
    OK(b, brine_register(b, "particles/n", BRINE_I64, &p->n, 0, NULL, 0));
    return b;
}

static void expect_particles(const particles *p, size_t n, int seed)
{
    assert_int_equal(p->shape[0], n);
    assert_int_equal(p->shape[1], 3);
    assert_int_equal(p->n, (int64_t)n);
    for (size_t i = 0; i < 3 * n; i++) {
        if (p->pos[i] != seed * 1000.0 + (double)i / 7.0) {
            print_error("pos[%zu] = %g\n", i, p->pos[i]);
            fail();
        }
    }
}

static void test_resizable_grow_shrink(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    particles w = {0};
    brine *b = open_particles(dir, &w, NULL, NULL);
    const size_t sizes[4] = {5, 9000, 2, 0};
    for (int k = 0; k < 4; k++) {
        particles_fill(&w, sizes[k], k + 1);
        OK(b, brine_save(b, k + 1));
    }
    brine_close(b);

    /* A fresh program starts with nothing allocated; each restore sizes the memory. */
    for (int k = 3; k >= 0; k--) {
        particles r = {0};
        b = open_particles(dir, &r, NULL, NULL);
        int64_t step = 0;
        OK(b, brine_restore(b, &step));
        assert_int_equal(step, k + 1);
        expect_particles(&r, sizes[k], k + 1);
        /* and it saves again from the restored size */
        OK(b, brine_save(b, 100));
        brine_close(b);
        free(r.pos);
        char path[1024];
        tu_ckpt_path(path, sizeof path, dir, "ckpt", 100);
        unlink(path);
        tu_ckpt_path(path, sizeof path, dir, "ckpt", k + 1);
        unlink(path); /* next round restores the one before */
    }
    free(w.pos);
    tu_rmtree(dir);
}

typedef struct resize_log {
    int calls;
    size_t last_bytes;
    int fail;
} resize_log;

static void *counting_resize(void *ctx, const char *name, void *old, size_t nbytes)
{
    resize_log *log = ctx;
    assert_string_equal(name, "particles/pos");
    log->calls++;
    log->last_bytes = nbytes;
    if (log->fail)
        return NULL;
    free(old);
    return malloc(nbytes ? nbytes : 1);
}

static void test_resizable_callback(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    particles w = {0};
    brine *b = open_particles(dir, &w, NULL, NULL);
    particles_fill(&w, 40, 3);
    OK(b, brine_save(b, 1));
    brine_close(b);

    resize_log log = {0};
    particles r = {0};
    particles_fill(&r, 7, 9);
    b = open_particles(dir, &r, counting_resize, &log);
    OK(b, brine_restore(b, NULL));
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last_bytes, 40 * 3 * sizeof(double));
    expect_particles(&r, 40, 3);
    /* same size again: the memory is reused, no call */
    double *before = r.pos;
    OK(b, brine_restore(b, NULL));
    assert_int_equal(log.calls, 1);
    assert_ptr_equal(r.pos, before);
    brine_close(b);

    /* the callback fails: ENOMEM, the old memory and shape stay */
    particles_fill(&r, 7, 9);
    b = open_particles(dir, &r, counting_resize, &log);
    log.fail = 1;
    EXPECT_RC(b, BRINE_ENOMEM, brine_restore(b, NULL));
    HAS(brine_errmsg(b), "resizable variable 'particles/pos'");
    expect_particles(&r, 7, 9);
    brine_close(b);
    free(r.pos);
    free(w.pos);
    tu_rmtree(dir);
}

static void test_resizable_errors_and_order(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double *p = NULL;
    size_t shape[2] = {4, 3};
    OK(b, brine_register_resizable(b, "f", BRINE_F64, (void **)&p, 2, shape, BRINE_FORTRAN_ORDER,
                                   NULL, NULL));
    /* NULL data with a non-empty shape is refused at save time */
    EXPECT_RC(b, BRINE_EINVAL, brine_save(b, 1));
    HAS(brine_errmsg(b), "resizable variable 'f'");
    EXPECT_RC(b, BRINE_EINVAL, brine_register_resizable(b, "r0", BRINE_F64, (void **)&p, 0, shape, 0,
                                                      NULL, NULL));
    EXPECT_RC(b, BRINE_EINVAL, brine_register_resizable(b, "rn", BRINE_F64, NULL, 1, shape, 0, NULL,
                                                      NULL));
    /* Fortran order: (4, 3) is stored F; (1, 3) normalises to C; both restore. */
    p = malloc(12 * sizeof *p);
    for (int i = 0; i < 12; i++)
        p[i] = i;
    OK(b, brine_save(b, 1));
    shape[0] = 1;
    OK(b, brine_save(b, 2));
    brine_close(b);
    for (int step = 2; step >= 1; step--) {
        double *q = NULL;
        size_t qs[2] = {0, 0};
        b = tu_open(dir, NULL);
        OK(b, brine_register_resizable(b, "f", BRINE_F64, (void **)&q, 2, qs, BRINE_FORTRAN_ORDER,
                                       NULL, NULL));
        int64_t got = 0;
        OK(b, brine_restore(b, &got));
        assert_int_equal(got, step);
        assert_int_equal(qs[0], step == 2 ? 1 : 4);
        assert_int_equal(qs[1], 3);
        for (size_t i = 0; i < qs[0] * 3; i++)
            assert_true(q[i] == (double)i);
        brine_close(b);
        free(q);
        char path[1024];
        tu_ckpt_path(path, sizeof path, dir, "ckpt", step);
        if (step == 2)
            unlink(path);
    }
    /* A C-order registration of the F-stored (4, 3) array does not match: the bytes differ. */
    double *q = NULL;
    size_t qs[2] = {0, 0};
    b = tu_open(dir, NULL);
    OK(b, brine_register_resizable(b, "f", BRINE_F64, (void **)&q, 2, qs, 0, NULL, NULL));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
    HAS(brine_errmsg(b), "(resizable: any shape of that ndim), the checkpoint has float64 (4, 3) order F");
    brine_close(b);
    /* Another ndim does not match either. */
    size_t q1[1] = {0};
    b = tu_open(dir, NULL);
    OK(b, brine_register_resizable(b, "f", BRINE_F64, (void **)&q, 1, q1, 0, NULL, NULL));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, NULL));
    brine_close(b);
    free(p);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */

static void save_reader_state(const char *dir, int64_t step)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    brine *b = tu_open(dir, &o);
    static double u[50][40];
    for (int i = 0; i < 50; i++)
        for (int j = 0; j < 40; j++)
            u[i][j] = i * 100 + j + (double)step;
    int32_t fm[2][3] = {{1, 2, 3}, {4, 5, 6}}; /* used as F (3, 2) */
    double t = 0.5 * (double)step;
    uint64_t big = UINT64_MAX;
    char title[32] = "run \xe2\x9c\x93";
    const size_t su[2] = {50, 40}, sf[2] = {3, 2};
    OK(b, brine_register(b, "fluid/u", BRINE_F64, u, 2, su, 0));
    OK(b, brine_register(b, "fm", BRINE_I32, fm, 2, sf, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "t", BRINE_F64, &t, 0, NULL, 0));
    OK(b, brine_register(b, "big", BRINE_U64, &big, 0, NULL, 0));
    OK(b, brine_register_string(b, "meta/title", title, sizeof title));
    OK(b, brine_set_attr_string(b, "program", "test_schema \xe2\x9c\x93"));
    OK(b, brine_set_attr_int(b, "seed", -42));
    OK(b, brine_set_attr_double(b, "sim_time", 0.25 * (double)step));
    OK(b, brine_save(b, step));
    brine_close(b);
}

static void corrupt_first_chunk(const char *file, const char *dataset)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t off[8], size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    assert_true(H5Dget_chunk_info(d, s, 0, off, &mask, &addr, &size) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    assert_int_equal(tu_flip_bit(file, addr + size / 2, 2), 0);
}

static void test_reader_lists_and_reads(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    save_reader_state(dir, 4);
    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 4);
    brine_reader *r = NULL;
    int rc = brine_reader_open(&r, path, NULL, 0);
    if (rc) {
        print_error("%s\n", brine_open_errmsg());
        fail();
    }
    assert_string_equal(brine_reader_path(r), path);
    assert_int_equal(brine_reader_step(r), 4);
    assert_int_equal(brine_reader_count(r), 5);
    brine_var_info info;
    const char *names[5] = {"fluid/u", "fm", "t", "big", "meta/title"};
    for (size_t i = 0; i < 5; i++) {
        RD_OK(r, brine_reader_var(r, i, &info));
        assert_string_equal(info.name, names[i]);
    }
    RD_RC(r, BRINE_EINVAL, brine_reader_var(r, 5, &info));

    /* Metadata: the program's and brine's own, sorted by name; vlen strings are not read. */
    const char *attr_names[7] = {"brine_format", "brine_host", "brine_threads", "program", "seed",
                                 "sim_time", "step"};
    assert_int_equal(brine_reader_attr_count(r), 7);
    brine_attr attr;
    for (size_t i = 0; i < 7; i++) {
        RD_OK(r, brine_reader_attr(r, i, &attr));
        assert_string_equal(attr.name, attr_names[i]);
    }
    RD_RC(r, BRINE_EINVAL, brine_reader_attr(r, 7, &attr));
    RD_OK(r, brine_find_attr(r, "program", &attr));
    assert_int_equal(attr.type, BRINE_ATTR_STRING);
    assert_string_equal(attr.s, "test_schema \xe2\x9c\x93");
    RD_OK(r, brine_find_attr(r, "seed", &attr));
    assert_true(attr.type == BRINE_ATTR_INT && attr.i == -42);
    RD_OK(r, brine_find_attr(r, "sim_time", &attr));
    assert_true(attr.type == BRINE_ATTR_DOUBLE && attr.d == 1.0);
    RD_OK(r, brine_find_attr(r, "step", &attr));
    assert_true(attr.type == BRINE_ATTR_INT && attr.i == 4);
    RD_OK(r, brine_find_attr(r, "brine_threads", &attr));
    assert_true(attr.type == BRINE_ATTR_INT && attr.i >= 1);
    RD_RC(r, BRINE_ENOTFOUND, brine_find_attr(r, "created", &attr)); /* a vlen string */
    RD_RC(r, BRINE_ENOTFOUND, brine_find_attr(r, "nope", &attr));

    RD_OK(r, brine_find(r, "fluid/u", &info));
    assert_int_equal(info.kind, BRINE_VAR_ARRAY);
    assert_int_equal(info.dtype, BRINE_F64);
    assert_int_equal(info.ndim, 2);
    assert_true(info.shape[0] == 50 && info.shape[1] == 40);
    assert_int_equal(info.flags, 0);
    assert_int_equal(info.nbytes, 50 * 40 * 8);
    RD_OK(r, brine_find(r, "fm", &info));
    assert_int_equal(info.flags, BRINE_FORTRAN_ORDER);
    assert_true(info.shape[0] == 3 && info.shape[1] == 2);
    RD_OK(r, brine_find(r, "t", &info));
    assert_true(info.kind == BRINE_VAR_SCALAR && info.dtype == BRINE_F64 && info.ndim == 0);
    RD_OK(r, brine_find(r, "big", &info));
    assert_true(info.kind == BRINE_VAR_SCALAR && info.dtype == BRINE_U64);
    RD_OK(r, brine_find(r, "meta/title", &info));
    assert_true(info.kind == BRINE_VAR_STRING && info.nbytes == strlen("run \xe2\x9c\x93"));
    RD_RC(r, BRINE_ENOTFOUND, brine_find(r, "fluid", &info)); /* a group is no variable */
    HAS(brine_reader_errmsg(r), "no variable 'fluid'");

    /* Sized by the program, read bit-exactly. */
    double *u = malloc(50 * 40 * 8);
    const size_t su[2] = {50, 40};
    RD_OK(r, brine_read(r, "fluid/u", BRINE_F64, u, 2, su, 0));
    for (int i = 0; i < 50; i++)
        for (int j = 0; j < 40; j++)
            assert_true(u[i * 40 + j] == i * 100 + j + 4.0);
    int32_t fm[6] = {0};
    const size_t sf[2] = {3, 2};
    RD_OK(r, brine_read(r, "fm", BRINE_I32, fm, 2, sf, BRINE_FORTRAN_ORDER));
    assert_true(fm[0] == 1 && fm[5] == 6);
    int64_t fm64[6] = {0};
    RD_RC(r, BRINE_EMISMATCH, brine_read(r, "fm", BRINE_I64, fm64, 2, sf, BRINE_FORTRAN_ORDER));
    HAS(brine_reader_errmsg(r), "variable 'fm' is requested as int64 (3, 2) order F, the checkpoint has int32 (3, 2) order F");
    RD_OK(r, brine_read(r, "fm", BRINE_I64, fm64, 2, sf, BRINE_FORTRAN_ORDER | BRINE_CONVERT));
    assert_true(fm64[0] == 1 && fm64[5] == 6);
    RD_RC(r, BRINE_EMISMATCH, brine_read(r, "fm", BRINE_I32, fm, 2, sf, 0)); /* C order */
    double t = 0;
    RD_OK(r, brine_read(r, "t", BRINE_F64, &t, 0, NULL, 0));
    assert_true(t == 2.0);
    uint32_t small = 0;
    RD_RC(r, BRINE_EMISMATCH, brine_read(r, "big", BRINE_U32, &small, 0, NULL, 0));
    HAS(brine_reader_errmsg(r), "does not fit");
    char title[32], tiny[4];
    RD_OK(r, brine_read_string(r, "meta/title", title, sizeof title));
    assert_string_equal(title, "run \xe2\x9c\x93");
    memset(tiny, 'x', sizeof tiny);
    RD_RC(r, BRINE_EMISMATCH, brine_read_string(r, "meta/title", tiny, sizeof tiny));
    all_bytes(tiny, sizeof tiny, 'x');
    RD_RC(r, BRINE_EMISMATCH, brine_read_string(r, "t", title, sizeof title));
    RD_RC(r, BRINE_ENOTFOUND, brine_read(r, "nope", BRINE_F64, &t, 0, NULL, 0));
    RD_RC(r, BRINE_EINVAL, brine_read(r, "t", (brine_dtype)99, &t, 0, NULL, 0));
    RD_RC(r, BRINE_EINVAL, brine_read(r, "fluid/u", BRINE_F64, NULL, 2, su, 0));
    brine_reader_close(r);
    brine_reader_close(NULL);

    /* A damaged chunk: a quick open succeeds, brine_read refuses before writing anything. */
    corrupt_first_chunk(path, "/state/fluid/u");
    RD_OK(r, brine_reader_open(&r, path, NULL, 0));
    memset(u, 0x5A, 50 * 40 * 8);
    RD_RC(r, BRINE_ECORRUPT, brine_read(r, "fluid/u", BRINE_F64, u, 2, su, 0));
    HAS(brine_reader_errmsg(r), path);
    HAS(brine_reader_errmsg(r), "fluid/u");
    all_bytes(u, 50 * 40 * 8, 0x5A);
    RD_OK(r, brine_read(r, "t", BRINE_F64, &t, 0, NULL, 0)); /* the rest stays readable */
    brine_reader_close(r);
    /* with BRINE_READER_VERIFY the open itself fails */
    r = (brine_reader *)1;
    assert_int_equal(brine_reader_open(&r, path, NULL, BRINE_READER_VERIFY), BRINE_ECORRUPT);
    assert_null(r);
    HAS(brine_open_errmsg(), "fluid/u");
    /* bad arguments */
    assert_int_equal(brine_reader_open(&r, NULL, NULL, 0), BRINE_EINVAL);
    assert_int_equal(brine_reader_open(&r, path, NULL, 8), BRINE_EINVAL);
    assert_int_equal(brine_reader_open(NULL, path, NULL, 0), BRINE_EINVAL);
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/none.h5", dir);
    assert_int_equal(brine_reader_open(&r, missing, NULL, 0), BRINE_EIO);
    HAS(brine_open_errmsg(), "none.h5");
    free(u);
    tu_rmtree(dir);
}

static void test_restore_begin(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    brine_reader *r = NULL;
    EXPECT_RC(b, BRINE_ENOTFOUND, brine_restore_begin(b, &r, NULL));
    assert_null(r);
    save_reader_state(dir, 1);
    save_reader_state(dir, 2);
    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 2);
    corrupt_first_chunk(path, "/state/fluid/u");
    /* the newest is damaged: begin falls back to step 1, whatever is registered */
    int64_t step = 0;
    OK(b, brine_restore_begin(b, &r, &step));
    assert_int_equal(step, 1);
    assert_int_equal(brine_reader_step(r), 1);
    brine_var_info info;
    RD_OK(r, brine_find(r, "fluid/u", &info));
    double *u = malloc(info.nbytes);
    RD_OK(r, brine_read(r, "fluid/u", BRINE_F64, u, info.ndim, info.shape, info.flags));
    assert_true(u[0] == 1.0 && u[41] == 101 + 1.0);
    brine_reader_close(r);
    free(u);
    EXPECT_RC(b, BRINE_EINVAL, brine_restore_begin(b, NULL, NULL));
    brine_close(b);
    tu_rmtree(dir);
}

/* A version 1 options struct (before restore_flags) is still accepted. */
static void test_options_version_1(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    struct {
        brine_options o;
        unsigned canary;
    } v1;
    memset(&v1, 0xFF, sizeof v1);
    brine_options init = BRINE_OPTIONS_INIT;
    memcpy(&v1.o, &init, offsetof(brine_options, restore_flags));
    v1.o.version = 1; /* restore_flags holds garbage: it must not be read */
    brine *b = NULL;
    assert_int_equal(brine_open(&b, dir, &v1.o), 0);
    brine_close(b);
    brine_options bad = BRINE_OPTIONS_INIT;
    bad.restore_flags = 0x80;
    assert_int_equal(brine_open(&b, dir, &bad), BRINE_EINVAL);
    HAS(brine_open_errmsg(), "restore_flags");
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_difference_named),
        cmocka_unit_test(test_partial_new_variable),
        cmocka_unit_test(test_many_differences),
        cmocka_unit_test(test_convert_every_pair),
        cmocka_unit_test(test_convert_rounding),
        cmocka_unit_test(test_resizable_grow_shrink),
        cmocka_unit_test(test_resizable_callback),
        cmocka_unit_test(test_resizable_errors_and_order),
        cmocka_unit_test(test_reader_lists_and_reads),
        cmocka_unit_test(test_restore_begin),
        cmocka_unit_test(test_options_version_1),
    };
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
