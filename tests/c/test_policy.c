/*
 * When brine saves (brine_maybe_save's every_steps and every_seconds
 * policies, with an injected clock: no test sleeps), what rotation keeps
 * (keep_every), options from BRINE_* environment variables, and the signals
 * a scheduler sends (brine_install_signals, raised in this process; a real
 * child process is tests/python/test_signals.py's).
 */
/* SA_RESTART is XSI; setenv is POSIX. */
#define _XOPEN_SOURCE 700

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brine.h"
#include "core/core.h" /* to look at the options brine_open resolved */
#include "io/dir_scan.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A clock the test moves by hand; counts its reads. */
typedef struct fake_clock {
    double t;
    int reads;
} fake_clock;

static double fake_now(void *ctx)
{
    fake_clock *c = ctx;
    c->reads++;
    return c->t;
}

/* State every test registers: one small array and the step. */
static double field[16];
static int64_t state_step;

static brine *open_with(const char *dir, brine_options *o)
{
    brine *b = tu_open(dir, o);
    const size_t shape[1] = {16};
    OK(b, brine_register(b, "field", BRINE_F64, field, 1, shape, 0));
    OK(b, brine_register(b, "step", BRINE_I64, &state_step, 0, NULL, 0));
    return b;
}

/* 1 when exactly the steps in want[0..n) have checkpoints among 0..upto, else prints and 0. */
static int only_these(const char *dir, int64_t upto, const int64_t *want, size_t n)
{
    int good = 1;
    for (int64_t s = 0; s <= upto; s++) {
        int wanted = 0;
        for (size_t k = 0; k < n; k++)
            wanted |= want[k] == s;
        if (tu_ckpt_exists(dir, "ckpt", s) != wanted) {
            print_error("step %lld: checkpoint %s\n", (long long)s,
                        wanted ? "missing" : "present but not expected");
            good = 0;
        }
    }
    if (tu_count_entries(dir, "ckpt-") != (int)n) {
        print_error("%d checkpoints in %s, expected %zu\n", tu_count_entries(dir, "ckpt-"), dir, n);
        good = 0;
    }
    return good;
}

static const char *const env_names[] = {
    "BRINE_DIR",         "BRINE_PREFIX", "BRINE_KEEP_LAST", "BRINE_KEEP_EVERY",
    "BRINE_EVERY_STEPS", "BRINE_EVERY_SECONDS", "BRINE_LEVEL", "BRINE_THREADS",
    "BRINE_CODEC",       "BRINE_ASYNC",
};

static void clear_env(void)
{
    for (size_t k = 0; k < sizeof env_names / sizeof env_names[0]; k++)
        unsetenv(env_names[k]);
}

static int setup_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                 */
/* ------------------------------------------------------------------------ */

static void test_every_steps(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fake_clock clk = {1000.0, 0};
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    o.every_steps = 5;
    o.clock = fake_now;
    o.clock_ctx = &clk;
    brine *b = open_with(dir, &o);
    for (int64_t s = 0; s <= 23; s++) {
        clk.t += 1000.0; /* time passes, but no time policy is set */
        const int reads = clk.reads;
        const int rc = brine_maybe_save(b, s);
        assert_int_equal(rc, s % 5 == 0 ? 1 : 0);
        /* every_seconds is 0: a call that does not save never reads the clock
         * (a save may: it records when it started). */
        if (rc == 0)
            assert_int_equal(clk.reads, reads);
    }
    const int64_t want[] = {0, 5, 10, 15, 20};
    assert_true(only_these(dir, 30, want, 5));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_every_seconds(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fake_clock clk = {500.0, 0};
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    o.every_seconds = 10.0;
    o.clock = fake_now;
    o.clock_ctx = &clk;
    brine *b = open_with(dir, &o); /* the interval counts from here: t = 500 */
    static const struct { double t; int saves; } plan[] = {
        {505.0, 0}, {509.999, 0}, {510.0, 1},   /* exactly 10 s after the open */
        {515.0, 0}, {519.9, 0},   {523.5, 1},   /* late: the next one counts from 523.5 */
        {530.0, 0}, {533.4, 0},   {533.5, 1},
        {533.5, 0}, {900.0, 1},   {900.0, 0},
    };
    for (size_t k = 0; k < sizeof plan / sizeof plan[0]; k++) {
        clk.t = plan[k].t;
        const int reads = clk.reads;
        const int rc = brine_maybe_save(b, (int64_t)k + 1);
        if (rc != plan[k].saves)
            print_error("call %zu at t=%g returned %d, expected %d\n", k, plan[k].t, rc,
                        plan[k].saves);
        assert_int_equal(rc, plan[k].saves);
        /* A call that does not save reads the clock once. */
        if (!plan[k].saves)
            assert_int_equal(clk.reads, reads + 1);
    }
    const int64_t want[] = {3, 6, 9, 11};
    assert_true(only_these(dir, 20, want, 4));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_both_policies(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fake_clock clk = {0.0, 0};
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    o.every_steps = 10;
    o.every_seconds = 25.0;
    o.clock = fake_now;
    o.clock_ctx = &clk;
    brine *b = open_with(dir, &o);
    /* 4 s per step: the time policy fires 25 s after any save, step saves included. */
    int64_t saved[16];
    size_t nsaved = 0;
    for (int64_t s = 1; s <= 32; s++) {
        clk.t = 4.0 * (double)s;
        const int rc = brine_maybe_save(b, s);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1)
            saved[nsaved++] = s;
    }
    const int64_t want[] = {7, 10, 17, 20, 27, 30};
    assert_int_equal(nsaved, 6);
    assert_memory_equal(saved, want, sizeof want);
    assert_true(only_these(dir, 40, want, 6));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_no_policy(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fake_clock clk = {0.0, 0};
    brine_options o = BRINE_OPTIONS_INIT;
    o.clock = fake_now;
    o.clock_ctx = &clk;
    brine *b = open_with(dir, &o);
    const int reads = clk.reads;
    for (int64_t s = 0; s < 100; s++) {
        clk.t += 1e6;
        assert_int_equal(brine_maybe_save(b, s), 0);
    }
    assert_int_equal(clk.reads, reads);
    assert_int_equal(tu_count_entries(dir, ""), 0);
    brine_close(b);
    tu_rmtree(dir);
}

/* The real clock (CLOCK_MONOTONIC) is used when no clock is given. */
static void test_monotonic_clock(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.every_seconds = 3600.0;
    brine *b = open_with(dir, &o);
    const double t0 = brine_policy__now(b);
    assert_true(t0 > 0.0);
    assert_true(brine_policy__now(b) >= t0);
    assert_int_equal(brine_maybe_save(b, 1), 0); /* an hour has not passed */
    b->last_save_time -= 3601.0;                 /* ... now it has */
    assert_int_equal(brine_maybe_save(b, 2), 1);
    assert_int_equal(brine_maybe_save(b, 3), 0);
    assert_true(tu_ckpt_exists(dir, "ckpt", 2));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_same_step_twice(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fake_clock clk = {0.0, 0};
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    o.every_steps = 5;
    o.every_seconds = 10.0;
    o.clock = fake_now;
    o.clock_ctx = &clk;
    brine *b = open_with(dir, &o);
    char path[4096];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 5);

    assert_int_equal(brine_maybe_save(b, 5), 1);
    assert_true(tu_file_exists(path));
    assert_int_equal(unlink(path), 0); /* a second save would bring it back */
    assert_int_equal(brine_maybe_save(b, 5), 0);
    clk.t = 100.0; /* the time policy is due too: still the same step */
    assert_int_equal(brine_maybe_save(b, 5), 0);
    assert_false(tu_file_exists(path));
    /* The next step saves (the time policy is still due). */
    assert_int_equal(brine_maybe_save(b, 6), 1);
    assert_true(tu_ckpt_exists(dir, "ckpt", 6));
    /* An explicit brine_save of a step does not stop the policy from saving it. */
    assert_int_equal(brine_maybe_save(b, 5), 1);
    assert_true(tu_file_exists(path));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_return_values(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.every_steps = 2;
    brine *b = open_with(dir, &o);
    assert_int_equal(brine_maybe_save(NULL, 2), BRINE_EINVAL);
    EXPECT_RC(b, BRINE_EINVAL, brine_maybe_save(b, -1));
    assert_non_null(strstr(brine_errmsg(b), "-1"));
    EXPECT_RC(b, BRINE_EINVAL, brine_maybe_save(b, BRINE_MAX_STEP + 1));

    /* A save that fails returns its error, and the same step is tried again. */
    void *data = NULL;
    size_t shape[1] = {4};
    OK(b, brine_register_resizable(b, "grow", BRINE_F64, &data, 1, shape, 0, NULL, NULL));
    EXPECT_RC(b, BRINE_EINVAL, brine_maybe_save(b, 4));
    assert_non_null(strstr(brine_errmsg(b), "grow"));
    assert_int_equal(brine_maybe_save(b, 5), 0);
    EXPECT_RC(b, BRINE_EINVAL, brine_maybe_save(b, 4));
    double four[4] = {1, 2, 3, 4};
    data = four;
    assert_int_equal(brine_maybe_save(b, 4), 1);
    assert_true(tu_ckpt_exists(dir, "ckpt", 4));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_option_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = NULL;
    static const struct { const char *field; int bad; } cases[] = {
        {"every_steps", 1}, {"every_seconds", 2}, {"every_seconds", 3}, {"every_seconds", 4},
        {"keep_every", 5}, {"async", 6}, {"async_flags", 7}, {"use_env", 8},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        brine_options o = BRINE_OPTIONS_INIT;
        switch (cases[k].bad) {
        case 1: o.every_steps = -1; break;
        case 2: o.every_seconds = -0.5; break;
        case 3: o.every_seconds = 1.0 / 0.0; break;
        case 4: o.every_seconds = 0.0 / 0.0; break;
        case 5: o.keep_every = -10; break;
        case 6: o.async = 2; break;
        case 7: o.async_flags = 0x10; break;
        case 8: o.use_env = 7; break;
        }
        assert_int_equal(brine_open(&b, dir, &o), BRINE_EINVAL);
        assert_null(b);
        if (!strstr(brine_open_errmsg(), cases[k].field))
            print_error("case %zu: message \"%s\" does not name %s\n", k, brine_open_errmsg(),
                        cases[k].field);
        assert_non_null(strstr(brine_open_errmsg(), cases[k].field));
    }
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                */
/* ------------------------------------------------------------------------ */

static void test_keep_every(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 2;
    o.keep_every = 10;
    brine *b = open_with(dir, &o);
    for (int64_t s = 1; s <= 35; s++) {
        OK(b, brine_save(b, s));
        /* The multiples of 10 so far, and the 2 newest of the others. */
        const int64_t others = s - s / 10;
        assert_int_equal(tu_count_entries(dir, "ckpt-"), (int)(s / 10 + (others < 2 ? others : 2)));
    }
    const int64_t want[] = {10, 20, 30, 34, 35};
    assert_true(only_these(dir, 40, want, 5));
    brine_close(b);

    /* Through brine_maybe_save, with step 0: a multiple of every keep_every. */
    tu_rmtree(dir);
    dir = tu_tmpdir();
    o.every_steps = 3;
    o.keep_last = 1;
    o.keep_every = 4;
    b = open_with(dir, &o);
    for (int64_t s = 0; s <= 30; s++)
        assert_true(brine_maybe_save(b, s) >= 0);
    /* saved: 0 3 6 ... 30; multiples of 4 among them: 0 12 24; plus the newest. */
    const int64_t want2[] = {0, 12, 24, 30};
    assert_true(only_these(dir, 40, want2, 4));
    brine_close(b);
    tu_rmtree(dir);
}

/* The rotation function itself: keep_step, keep_last <= 0, stale newer steps. */
static void test_rotate_every(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    brine *b = open_with(dir, &o);
    for (int64_t s = 1; s <= 12; s++)
        OK(b, brine_save(b, s));
    brine_error err;
    /* keep_last 0 keeps everything whatever keep_every says. */
    assert_int_equal(brine_scan__rotate_every(brine_io_posix(), NULL, dir, "ckpt", 0, 5, 12, &err), 0);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 12);
    /* keep_step 3 (just published, older than the others) survives. */
    assert_int_equal(brine_scan__rotate_every(brine_io_posix(), NULL, dir, "ckpt", 2, 5, 3, &err), 7);
    const int64_t want[] = {3, 5, 10, 11, 12};
    assert_true(only_these(dir, 20, want, 5));
    /* Without keep_every (the old entry point) the multiples rotate too. */
    assert_int_equal(brine_scan__rotate(brine_io_posix(), NULL, dir, "ckpt", 2, 12, &err), 3);
    const int64_t want2[] = {11, 12};
    assert_true(only_these(dir, 20, want2, 2));
    brine_close(b);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Environment variables                                                    */
/* ------------------------------------------------------------------------ */

/* Opens dir (may be NULL) with o, expecting success; returns the context. */
static brine *env_open(const char *dir, const brine_options *o)
{
    brine *b = NULL;
    const int rc = brine_open(&b, dir, o);
    if (rc != 0)
        print_error("brine_open returned %d: %s\n", rc, brine_open_errmsg());
    assert_int_equal(rc, 0);
    return b;
}

/* brine_open must fail with EINVAL naming name and value. */
static void expect_env_error(const char *dir, const char *name, const char *value)
{
    brine *b = NULL;
    assert_int_equal(setenv(name, value, 1), 0);
    const int rc = brine_open(&b, dir, NULL);
    const char *m = brine_open_errmsg();
    if (rc != BRINE_EINVAL || !strstr(m, name) || (value[0] && !strstr(m, value)))
        print_error("%s='%s': brine_open returned %d, message \"%s\"\n", name, value, rc, m);
    assert_int_equal(rc, BRINE_EINVAL);
    assert_null(b);
    assert_non_null(strstr(m, name));
    if (value[0])
        assert_non_null(strstr(m, value));
    unsetenv(name);
}

static void test_env_each(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = NULL;

    setenv("BRINE_PREFIX", "run7", 1);
    setenv("BRINE_KEEP_LAST", "-1", 1);
    setenv("BRINE_KEEP_EVERY", "100", 1);
    setenv("BRINE_EVERY_STEPS", "250", 1);
    setenv("BRINE_EVERY_SECONDS", "1800.5", 1);
    setenv("BRINE_LEVEL", "6", 1);
    setenv("BRINE_THREADS", "3", 1);
    setenv("BRINE_CODEC", "zlib", 1);
    setenv("BRINE_ASYNC", "1", 1);
    b = env_open(dir, NULL);
    assert_string_equal(b->opts.prefix, "run7");
    assert_int_equal(b->opts.keep_last, -1);
    assert_int_equal(b->opts.keep_every, 100);
    assert_int_equal(b->opts.every_steps, 250);
    assert_true(b->opts.every_seconds == 1800.5);
    assert_int_equal(b->opts.level, 6);
    assert_int_equal(b->opts.threads, 3);
    assert_int_equal(b->opts.codec, BRINE_CODEC_ZLIB);
    assert_int_equal(b->opts.async, 1);
    /* The prefix is used for the files. */
    const size_t shape[1] = {16};
    OK(b, brine_register(b, "field", BRINE_F64, field, 1, shape, 0));
    OK(b, brine_save(b, 3));
    assert_true(tu_ckpt_exists(dir, "run7", 3));
    brine_close(b);

    /* Every codec name. */
    static const char *const names[] = {"default", "zlib", "libdeflate", "isal", "none"};
    static const brine_codec codecs[] = {BRINE_CODEC_DEFAULT, BRINE_CODEC_ZLIB,
                                         BRINE_CODEC_LIBDEFLATE, BRINE_CODEC_ISAL, BRINE_CODEC_NONE};
    clear_env();
    for (size_t k = 0; k < 5; k++) {
        setenv("BRINE_CODEC", names[k], 1);
        if (!brine_codec_available(codecs[k])) {
            expect_env_error(dir, "BRINE_CODEC", names[k]);
            continue;
        }
        b = env_open(dir, NULL);
        assert_int_equal(b->opts.codec, codecs[k]);
        brine_close(b);
    }
    clear_env();
    setenv("BRINE_ASYNC", "0", 1);
    setenv("BRINE_EVERY_SECONDS", "0", 1);
    setenv("BRINE_KEEP_EVERY", "0", 1);
    b = env_open(dir, NULL);
    assert_int_equal(b->opts.async, 0);
    assert_true(b->opts.every_seconds == 0.0);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_env_malformed(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    static const struct { const char *name, *value; } cases[] = {
        {"BRINE_DIR", ""},
        {"BRINE_PREFIX", ".hidden"}, {"BRINE_PREFIX", "a/b"}, {"BRINE_PREFIX", ""},
        {"BRINE_KEEP_LAST", "three"}, {"BRINE_KEEP_LAST", "3x"}, {"BRINE_KEEP_LAST", ""},
        {"BRINE_KEEP_LAST", " 3"}, {"BRINE_KEEP_LAST", "99999999999"},
        {"BRINE_KEEP_EVERY", "-1"}, {"BRINE_KEEP_EVERY", "1.5"},
        {"BRINE_EVERY_STEPS", "-5"}, {"BRINE_EVERY_STEPS", "1e3"},
        {"BRINE_EVERY_STEPS", "1000000000000"},
        {"BRINE_EVERY_SECONDS", "-1"}, {"BRINE_EVERY_SECONDS", "inf"},
        {"BRINE_EVERY_SECONDS", "nan"}, {"BRINE_EVERY_SECONDS", "10m"},
        {"BRINE_EVERY_SECONDS", "1e999"}, {"BRINE_EVERY_SECONDS", ""},
        {"BRINE_LEVEL", "fast"}, {"BRINE_LEVEL", "-1"}, {"BRINE_LEVEL", "42"},
        {"BRINE_THREADS", "-2"}, {"BRINE_THREADS", "all"},
        {"BRINE_CODEC", "gzip"}, {"BRINE_CODEC", "ZLIB"}, {"BRINE_CODEC", ""},
        {"BRINE_ASYNC", "yes"}, {"BRINE_ASYNC", "2"}, {"BRINE_ASYNC", ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        expect_env_error(dir, cases[k].name, cases[k].value);

    /* A level the codec does not have names the variables it came from. */
    setenv("BRINE_CODEC", "zlib", 1);
    expect_env_error(dir, "BRINE_LEVEL", "12");
    unsetenv("BRINE_CODEC");
    brine_options o = BRINE_OPTIONS_INIT;
    o.codec = BRINE_CODEC_ZLIB;
    setenv("BRINE_LEVEL", "12", 1);
    brine *b = NULL;
    assert_int_equal(brine_open(&b, dir, &o), BRINE_EINVAL);
    assert_non_null(strstr(brine_open_errmsg(), "BRINE_LEVEL=12"));
    clear_env();

    /* A malformed variable is refused even when an explicit option wins over it. */
    o = (brine_options)BRINE_OPTIONS_INIT;
    o.keep_last = 5;
    setenv("BRINE_KEEP_LAST", "lots", 1);
    assert_int_equal(brine_open(&b, dir, &o), BRINE_EINVAL);
    assert_non_null(strstr(brine_open_errmsg(), "BRINE_KEEP_LAST"));
    clear_env();
    tu_rmtree(dir);
}

static void test_env_precedence(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.prefix = "explicit";
    o.keep_last = 5;
    o.keep_every = 7;
    o.every_steps = 11;
    o.every_seconds = 2.5;
    o.level = 4;
    o.threads = 2;
    o.codec = BRINE_CODEC_ZLIB;
    o.async = 1;
    setenv("BRINE_PREFIX", "env", 1);
    setenv("BRINE_KEEP_LAST", "9", 1);
    setenv("BRINE_KEEP_EVERY", "9", 1);
    setenv("BRINE_EVERY_STEPS", "9", 1);
    setenv("BRINE_EVERY_SECONDS", "9", 1);
    setenv("BRINE_LEVEL", "9", 1);
    setenv("BRINE_THREADS", "9", 1);
    setenv("BRINE_CODEC", "none", 1);
    setenv("BRINE_ASYNC", "0", 1);
    brine *b = env_open(dir, &o);
    assert_string_equal(b->opts.prefix, "explicit");
    assert_int_equal(b->opts.keep_last, 5);
    assert_int_equal(b->opts.keep_every, 7);
    assert_int_equal(b->opts.every_steps, 11);
    assert_true(b->opts.every_seconds == 2.5);
    assert_int_equal(b->opts.level, 4);
    assert_int_equal(b->opts.threads, 2);
    assert_int_equal(b->opts.codec, BRINE_CODEC_ZLIB);
    assert_int_equal(b->opts.async, 1);
    brine_close(b);

    /* An option left at its default takes the variable: here all but the prefix. */
    brine_options d = BRINE_OPTIONS_INIT;
    d.prefix = "mine";
    b = env_open(dir, &d);
    assert_string_equal(b->opts.prefix, "mine");
    assert_int_equal(b->opts.keep_last, 9);
    assert_int_equal(b->opts.codec, BRINE_CODEC_NONE);
    brine_close(b);
    /* NULL options are the defaults. */
    b = env_open(dir, NULL);
    assert_string_equal(b->opts.prefix, "env");
    assert_int_equal(b->opts.every_steps, 9);
    brine_close(b);

    /* use_env 0: every variable is ignored, malformed ones and BRINE_DIR included. */
    setenv("BRINE_LEVEL", "not a level", 1);
    setenv("BRINE_DIR", dir, 1);
    d = (brine_options)BRINE_OPTIONS_INIT;
    d.use_env = 0;
    b = env_open(dir, &d);
    assert_string_equal(b->opts.prefix, "ckpt");
    assert_int_equal(b->opts.keep_last, 3);
    assert_int_equal(b->opts.level, 1);
    assert_int_equal(b->opts.every_steps, 0);
    assert_int_equal(b->opts.codec, BRINE_CODEC_DEFAULT);
    brine_close(b);
    b = NULL;
    assert_int_equal(brine_open(&b, NULL, &d), BRINE_EINVAL);
    assert_null(b);

    /* Options of version 2 (before use_env existed) read the environment. */
    clear_env();
    setenv("BRINE_KEEP_LAST", "8", 1);
    brine_options v2 = BRINE_OPTIONS_INIT;
    v2.version = 2;
    v2.use_env = 0; /* not part of a version 2 struct: ignored */
    b = env_open(dir, &v2);
    assert_int_equal(b->opts.keep_last, 8);
    brine_close(b);
    clear_env();
    tu_rmtree(dir);
}

static void test_env_dir(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    const char *other = tu_tmpdir();
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/from-env/nested", dir);
    brine *b = NULL;

    /* NULL dir without BRINE_DIR: EINVAL saying so. */
    assert_int_equal(brine_open(&b, NULL, NULL), BRINE_EINVAL);
    assert_non_null(strstr(brine_open_errmsg(), "BRINE_DIR"));

    setenv("BRINE_DIR", sub, 1);
    b = env_open(NULL, NULL);
    assert_string_equal(b->dir, sub);
    const size_t shape[1] = {16};
    OK(b, brine_register(b, "field", BRINE_F64, field, 1, shape, 0));
    OK(b, brine_save(b, 1));
    brine_close(b);
    assert_true(tu_ckpt_exists(sub, "ckpt", 1));

    /* An explicit directory wins. */
    b = env_open(other, NULL);
    assert_string_equal(b->dir, other);
    brine_close(b);
    /* An empty one is still an error. */
    assert_int_equal(brine_open(&b, "", NULL), BRINE_EINVAL);
    clear_env();
    tu_rmtree(dir);
    tu_rmtree(other);
}

/* ------------------------------------------------------------------------ */
/* Signals                                                                  */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t plain_calls, info_calls, info_signo;

static void plain_handler(int sig)
{
    (void)sig;
    plain_calls++;
}

static void info_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    info_calls++;
    info_signo = info ? info->si_signo : -1;
    (void)sig;
}

static void set_handler(int sig, void (*h)(int), struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, old), 0);
}

static void set_info_handler(int sig, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = info_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, old), 0);
}

/* The handler of sig now is brine's: SA_SIGINFO | SA_RESTART and not h. */
static void assert_brine_handler(int sig)
{
    struct sigaction cur;
    assert_int_equal(sigaction(sig, NULL, &cur), 0);
    assert_true(cur.sa_flags & SA_SIGINFO);
    assert_true(cur.sa_flags & SA_RESTART);
    assert_true(cur.sa_sigaction != info_handler);
}

static void test_signal_saves(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    struct sigaction old_usr1, old_term;
    set_handler(SIGUSR1, SIG_DFL, &old_usr1);
    set_handler(SIGTERM, SIG_DFL, &old_term);
    brine_options o = BRINE_OPTIONS_INIT;
    o.every_steps = 100;
    brine *b = open_with(dir, &o);
    OK(b, brine_install_signals(b, NULL, 0)); /* SIGTERM and SIGUSR1 */
    assert_brine_handler(SIGUSR1);
    assert_brine_handler(SIGTERM);

    assert_int_equal(brine_maybe_save(b, 1), 0);
    assert_int_equal(brine_should_exit(b), 0);
    /* SIG_DFL is not chained: the process lives on. */
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(brine_should_exit(b), 0); /* not before the save */
    assert_false(tu_ckpt_exists(dir, "ckpt", 2));
    assert_int_equal(brine_maybe_save(b, 2), 1); /* not a multiple of 100 */
    assert_true(tu_ckpt_exists(dir, "ckpt", 2));
    assert_int_equal(brine_should_exit(b), 1);
    /* The flag was consumed: the next call goes back to the policy. */
    assert_int_equal(brine_maybe_save(b, 3), 0);
    assert_false(tu_ckpt_exists(dir, "ckpt", 3));
    assert_int_equal(brine_should_exit(b), 1);

    /* SIGTERM too. */
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(brine_maybe_save(b, 4), 1);
    assert_true(tu_ckpt_exists(dir, "ckpt", 4));

    /* A signal at a step the policy has just saved: no second save, exit all the same. */
    brine_close(b);
    b = open_with(dir, &o);
    assert_int_equal(brine_should_exit(b), 0);
    OK(b, brine_install_signals(b, (const int[]){SIGUSR1}, 1));
    assert_int_equal(brine_maybe_save(b, 100), 1);
    char path[4096];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 100);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(brine_maybe_save(b, 100), 0);
    assert_false(tu_file_exists(path));
    assert_int_equal(brine_should_exit(b), 1);
    brine_close(b);

    /* brine_close put SIG_DFL back. */
    struct sigaction cur;
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL);
    assert_int_equal(sigaction(SIGTERM, NULL, &cur), 0);
    assert_true(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL);
    assert_int_equal(sigaction(SIGUSR1, &old_usr1, NULL), 0);
    assert_int_equal(sigaction(SIGTERM, &old_term, NULL), 0);
    tu_rmtree(dir);
}

static void test_signal_save_fails(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = open_with(dir, NULL);
    void *data = NULL;
    size_t shape[1] = {2};
    OK(b, brine_register_resizable(b, "grow", BRINE_F64, &data, 1, shape, 0, NULL, NULL));
    OK(b, brine_install_signals(b, (const int[]){SIGUSR2}, 1));
    assert_int_equal(raise(SIGUSR2), 0);
    /* The save fails: no exit, and the next call tries again. */
    EXPECT_RC(b, BRINE_EINVAL, brine_maybe_save(b, 7));
    assert_int_equal(brine_should_exit(b), 0);
    double two[2] = {1, 2};
    data = two;
    assert_int_equal(brine_maybe_save(b, 8), 1);
    assert_true(tu_ckpt_exists(dir, "ckpt", 8));
    assert_int_equal(brine_should_exit(b), 1);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_signal_chaining(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    struct sigaction old_usr1, old_usr2, old_hup;
    set_info_handler(SIGUSR1, &old_usr1);
    set_handler(SIGUSR2, plain_handler, &old_usr2);
    set_handler(SIGHUP, SIG_IGN, &old_hup);
    plain_calls = info_calls = 0;
    info_signo = 0;

    brine *b = open_with(dir, NULL);
    const int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGUSR2}; /* a duplicate is harmless */
    OK(b, brine_install_signals(b, sigs, 4));
    assert_brine_handler(SIGUSR1);
    assert_brine_handler(SIGUSR2);
    assert_brine_handler(SIGHUP);

    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(info_calls, 1);
    assert_int_equal(info_signo, SIGUSR1); /* siginfo passed on */
    assert_int_equal(plain_calls, 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(plain_calls, 1); /* once, though listed twice */
    assert_int_equal(raise(SIGHUP), 0); /* SIG_IGN was not chained (nothing to call) */
    assert_int_equal(brine_maybe_save(b, 5), 1);
    assert_int_equal(brine_should_exit(b), 1);

    /* Installing again on the same context replaces the set, chaining the same handlers. */
    OK(b, brine_install_signals(b, (const int[]){SIGUSR2}, 1));
    assert_int_equal(sigaction(SIGUSR1, NULL, &(struct sigaction){0}), 0);
    struct sigaction cur;
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(cur.sa_sigaction == info_handler); /* put back */
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(plain_calls, 2);
    brine_close(b);

    /* brine_close puts back what was there, flags and all. */
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(cur.sa_flags & SA_SIGINFO);
    assert_true(cur.sa_sigaction == info_handler);
    assert_int_equal(sigaction(SIGUSR2, NULL, &cur), 0);
    assert_false(cur.sa_flags & SA_SIGINFO);
    assert_true(cur.sa_handler == plain_handler);
    assert_int_equal(sigaction(SIGHUP, NULL, &cur), 0);
    assert_true(cur.sa_handler == SIG_IGN);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(plain_calls, 3);

    assert_int_equal(sigaction(SIGUSR1, &old_usr1, NULL), 0);
    assert_int_equal(sigaction(SIGUSR2, &old_usr2, NULL), 0);
    assert_int_equal(sigaction(SIGHUP, &old_hup, NULL), 0);
    tu_rmtree(dir);
}

static void test_signal_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    struct sigaction old_usr1;
    set_handler(SIGUSR1, plain_handler, &old_usr1);
    brine *b = open_with(dir, NULL);
    brine *c = open_with(dir, NULL);

    assert_int_equal(brine_install_signals(NULL, NULL, 0), BRINE_EINVAL);
    static const struct { int sig; const char *named; } bad[] = {
        {SIGKILL, "SIGKILL"}, {SIGSTOP, "SIGSTOP"}, {0, "0"}, {-3, "-3"}, {100000, "100000"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        EXPECT_RC(b, BRINE_EINVAL, brine_install_signals(b, &bad[k].sig, 1));
        assert_non_null(strstr(brine_errmsg(b), bad[k].named));
    }
    /* A bad one among good ones installs nothing. */
    const int mixed[] = {SIGUSR1, SIGKILL};
    EXPECT_RC(b, BRINE_EINVAL, brine_install_signals(b, mixed, 2));
    struct sigaction cur;
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(cur.sa_handler == plain_handler);
    EXPECT_RC(b, BRINE_EINVAL, brine_install_signals(b, mixed, 0));

    /* One context at a time. */
    OK(b, brine_install_signals(b, (const int[]){SIGUSR1}, 1));
    EXPECT_RC(c, BRINE_EINVAL, brine_install_signals(c, NULL, 0));
    assert_non_null(strstr(brine_errmsg(c), "another brine context"));
    /* c has none: a signal is b's, not c's. */
    plain_calls = 0;
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(plain_calls, 1);
    assert_int_equal(brine_maybe_save(c, 1), 0);
    assert_int_equal(brine_should_exit(c), 0);
    brine_close(b); /* frees the slot, and forgets the pending signal */
    OK(c, brine_install_signals(c, (const int[]){SIGUSR1}, 1));
    assert_int_equal(brine_maybe_save(c, 1), 0);
    brine_close(c);
    assert_int_equal(brine_should_exit(NULL), 0);

    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(cur.sa_handler == plain_handler);
    assert_int_equal(sigaction(SIGUSR1, &old_usr1, NULL), 0);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Asynchronous saves through the policy                                    */
/* ------------------------------------------------------------------------ */

static void test_async_policy(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    o.every_steps = 4;
    o.async = 1;
    brine *b = open_with(dir, &o);
    OK(b, brine_install_signals(b, (const int[]){SIGUSR2}, 1));
    for (int64_t s = 1; s <= 8; s++) {
        field[0] = (double)s;
        const int rc = brine_maybe_save(b, s);
        assert_int_equal(rc, s % 4 == 0 ? 1 : 0);
    }
    /* A signal while the save of step 8 may be in flight: it is waited for,
     * then step 9 is saved synchronously. */
    assert_int_equal(raise(SIGUSR2), 0);
    field[0] = 9.0;
    assert_int_equal(brine_maybe_save(b, 9), 1);
    assert_true(tu_ckpt_exists(dir, "ckpt", 8)); /* published, no wait needed */
    assert_true(tu_ckpt_exists(dir, "ckpt", 9));
    assert_int_equal(brine_should_exit(b), 1);
    OK(b, brine_wait(b));
    const int64_t want[] = {4, 8, 9};
    assert_true(only_these(dir, 12, want, 3));
    assert_int_equal(brine_close(b), 0);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_steps, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_every_seconds, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_both_policies, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_no_policy, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_monotonic_clock, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_same_step_twice, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_return_values, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_option_errors, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_keep_every, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_rotate_every, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_env_each, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_env_malformed, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_env_precedence, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_env_dir, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_signal_saves, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_signal_save_fails, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_signal_chaining, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_signal_errors, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_async_policy, setup_env, teardown_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
