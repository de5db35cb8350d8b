/*
 * The failure paths of brine_restore() and brine_save(): missing and damaged
 * checkpoints (fallback to older ones, registered memory untouched when none
 * verifies), version and shape mismatches, temporary files, and failing
 * saves (a read-only directory, injected I/O errors through a
 * brine_io_methods table, failing allocations).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "brine.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

#define MSG_HAS(b, needle)                                                                   \
    do {                                                                                     \
        const char *m_ = brine_errmsg(b);                                                    \
        if (!m_ || !strstr(m_, (needle))) {                                                  \
            print_error("message \"%s\" does not contain \"%s\"\n", m_ ? m_ : "(null)",       \
                        (needle));                                                           \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

static void ckpt(char *out, size_t n, const char *dir, int64_t step)
{
    tu_ckpt_path(out, n, dir, "ckpt", step);
}

static int ckpt_exists(const char *dir, int64_t step)
{
    return tu_ckpt_exists(dir, "ckpt", step);
}

/* ------------------------------------------------------------------------ */
/* A standard state: two arrays (one multi-chunk), scalars and a string.    */
/* ------------------------------------------------------------------------ */

#define UX 300
#define UY 500 /* 300x500 float64: chunks of 262 rows, so 2 chunks */
#define MX 40
#define MY 50

typedef struct sim_state {
    double u[UX * UY];
    uint8_t mask[MX * MY]; /* bool */
    double t;
    int64_t n;
    char name[32];
} sim_state;

static sim_state *state_new(void)
{
    sim_state *s = malloc(sizeof *s);
    assert_non_null(s);
    memset(s, 0, sizeof *s);
    return s;
}

static void state_fill(sim_state *s, uint64_t seed)
{
    uint64_t rs = seed;
    for (size_t i = 0; i < UX * UY; i++) {
        /* half compressible, half random bits (NaN payloads included) */
        if (i % 2)
            s->u[i] = (double)(i % UY) * 0.5 + (double)seed;
        else {
            uint64_t v = tu_rand(&rs);
            memcpy(&s->u[i], &v, 8);
        }
    }
    for (size_t i = 0; i < MX * MY; i++)
        s->mask[i] = (uint8_t)(tu_rand(&rs) & 1);
    s->t = 0.125 * (double)seed;
    s->n = -(int64_t)seed * 1000003;
    snprintf(s->name, sizeof s->name, "state %llu \xc3\xa9", (unsigned long long)seed);
}

static void state_sentinel(sim_state *s)
{
    memset(s, 0xA5, sizeof *s);
}

/*
 * Compares two states: every byte, except that the name is compared as a
 * string (restore writes the string and its NUL, not the rest of the buffer).
 * For a memory-untouched check use state_assert_untouched().
 */
static void state_assert_equal(const sim_state *a, const sim_state *b, const char *what)
{
    if (strcmp(a->name, b->name) != 0) {
        print_error("%s: name \"%s\" != \"%s\"\n", what, a->name, b->name);
        fail();
    }
    if (memcmp(a, b, offsetof(sim_state, name)) != 0) {
        const unsigned char *x = (const void *)a, *y = (const void *)b;
        size_t i = 0;
        while (x[i] == y[i])
            i++;
        const char *field = i < offsetof(sim_state, mask)   ? "u"
                            : i < offsetof(sim_state, t)    ? "mask"
                            : i < offsetof(sim_state, n)    ? "t"
                            : i < offsetof(sim_state, name) ? "n"
                                                        : "name";
        print_error("%s: state differs first at byte %zu (field %s)\n", what, i, field);
        fail();
    }
}

static void state_assert_untouched(const sim_state *a, const sim_state *sentinel, const char *what)
{
    if (memcmp(a, sentinel, sizeof *a) != 0) {
        const unsigned char *x = (const void *)a, *y = (const void *)sentinel;
        size_t i = 0;
        while (x[i] == y[i])
            i++;
        print_error("%s: registered memory written at byte %zu\n", what, i);
        fail();
    }
}

static void state_register(brine *b, sim_state *s)
{
    const size_t su[2] = {UX, UY}, sm[2] = {MX, MY};
    OK(b, brine_register(b, "grid/u", BRINE_F64, s->u, 2, su, 0));
    OK(b, brine_register(b, "grid/mask", BRINE_BOOL, s->mask, 2, sm, 0));
    OK(b, brine_register(b, "t", BRINE_F64, &s->t, 0, NULL, 0));
    OK(b, brine_register(b, "n", BRINE_I64, &s->n, 0, NULL, 0));
    OK(b, brine_register_string(b, "name", s->name, sizeof s->name));
}

/* Writes checkpoints of the standard state with seeds equal to the steps. */
static void save_steps(const char *dir, const int64_t *steps, size_t n)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    brine *b = tu_open(dir, &o);
    sim_state *s = state_new();
    state_register(b, s);
    for (size_t i = 0; i < n; i++) {
        state_fill(s, (uint64_t)steps[i]);
        OK(b, brine_save(b, steps[i]));
    }
    brine_close(b);
    free(s);
}

/*
 * Restores the standard state from dir in a fresh context.  Returns the code;
 * *step gets the step; the restored state is left in out.  msg (optional)
 * receives a copy of the message.
 */
static int restore_into(const char *dir, sim_state *out, int64_t *step, char *msg, size_t msgn)
{
    brine *b = tu_open(dir, NULL);
    state_register(b, out);
    int rc = brine_restore(b, step);
    if (msg)
        snprintf(msg, msgn, "%s", brine_errmsg(b));
    brine_close(b);
    return rc;
}

/* Asserts that restoring dir gives step want_step with the state of seed want_step. */
static void expect_restores(const char *dir, int64_t want_step, const char *what)
{
    sim_state *got = state_new(), *want = state_new();
    state_sentinel(got);
    int64_t step = -1;
    char msg[4096];
    int rc = restore_into(dir, got, &step, msg, sizeof msg);
    if (rc != 0) {
        print_error("%s: restore returned %d (%s): %s\n", what, rc, brine_errstr(rc), msg);
        fail();
    }
    if (step != want_step) {
        print_error("%s: restored step %lld, expected %lld\n", what, (long long)step,
                    (long long)want_step);
        fail();
    }
    state_fill(want, (uint64_t)want_step);
    state_assert_equal(got, want, what);
    free(got);
    free(want);
}

/* Asserts that restoring dir fails with code (any failure when code is 0) and leaves memory untouched. */
static void expect_restore_fails(const char *dir, int code, char *msg, size_t msgn,
                                 const char *what)
{
    sim_state *got = state_new(), *sent = state_new();
    state_sentinel(got);
    state_sentinel(sent);
    int64_t step = -77;
    char m[4096];
    int rc = restore_into(dir, got, &step, m, sizeof m);
    if ((code && rc != code) || (!code && (rc == 0 || rc == BRINE_ENOTFOUND))) {
        print_error("%s: restore returned %d (%s), expected %d (%s); message: %s\n", what, rc,
                    brine_errstr(rc), code, code ? brine_errstr(code) : "any failure", m);
        fail();
    }
    if (!m[0]) {
        print_error("%s: empty error message\n", what);
        fail();
    }
    state_assert_untouched(got, sent, "registered memory after a failed restore");
    if (msg)
        snprintf(msg, msgn, "%s", m);
    free(got);
    free(sent);
}

/* ---- HDF5 surgery on checkpoint files ---- */

/* File offset and size of chunk idx of dataset path. */
static void chunk_location(const char *file, const char *path, hsize_t idx, haddr_t *addr,
                           hsize_t *size)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hsize_t n = 0;
    assert_true(H5Dget_num_chunks(d, s, &n) >= 0);
    assert_true(idx < n);
    hsize_t off[8];
    unsigned mask = 0;
    assert_true(H5Dget_chunk_info(d, s, idx, off, &mask, addr, size) >= 0);
    assert_true(*addr != HADDR_UNDEF && *size > 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
}

static hsize_t num_chunks(const char *file, const char *path)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hsize_t n = 0;
    assert_true(H5Dget_num_chunks(d, s, &n) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return n;
}

/* Flips one bit at byte rel (negative: from the end) of chunk idx of the array at path. */
static void corrupt_chunk(const char *dir, int64_t step, const char *path, hsize_t idx,
                          int64_t rel)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    haddr_t addr;
    hsize_t size;
    chunk_location(file, path, idx, &addr, &size);
    uint64_t at = rel >= 0 ? addr + (uint64_t)rel : addr + size - (uint64_t)(-rel);
    assert_true(at >= addr && at < addr + size);
    assert_int_equal(tu_flip_bit(file, at, 3), 0);
}

/* Flips a bit in the middle of the raw bytes of /brine/pickle (contiguous). */
static void corrupt_pickle_raw(const char *dir, int64_t step)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/brine/pickle", H5P_DEFAULT);
    assert_true(d >= 0);
    haddr_t off = H5Dget_offset(d);
    hsize_t sz = H5Dget_storage_size(d);
    H5Dclose(d);
    H5Fclose(f);
    assert_true(off != HADDR_UNDEF && sz > 8);
    assert_int_equal(tu_flip_bit(file, off + sz / 2, 0), 0);
}

static uint32_t crc32_iso(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

typedef void (*stream_edit)(uint8_t *p, size_t n);

/* Rewrites /brine/pickle through HDF5 after edit(); fix_crc also updates its crc32 attribute. */
static void edit_pickle(const char *dir, int64_t step, stream_edit edit, int fix_crc)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/brine/pickle", H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    assert_true(n > 4);
    uint8_t *buf = malloc((size_t)n);
    assert_true(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    edit(buf, (size_t)n);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    if (fix_crc) {
        uint32_t c = crc32_iso(buf, (size_t)n);
        hid_t a = H5Aopen(d, "crc32", H5P_DEFAULT);
        assert_true(a >= 0);
        assert_true(H5Awrite(a, H5T_NATIVE_UINT32, &c) >= 0);
        H5Aclose(a);
    }
    free(buf);
    H5Sclose(s);
    H5Dclose(d);
    assert_true(H5Fclose(f) >= 0);
}

static void edit_flip_middle(uint8_t *p, size_t n)
{
    p[n / 2] ^= 0x10;
}

static void edit_bad_stop(uint8_t *p, size_t n)
{
    assert_int_equal(p[n - 1], '.'); /* STOP */
    p[n - 1] = 0xff;                 /* no such opcode */
}

static void edit_bad_global(uint8_t *p, size_t n)
{
    static const char g[] = "ndarray\n";
    for (size_t i = 0; i + 8 <= n; i++) {
        if (!memcmp(p + i, g, 8)) {
            p[i + 6] = 'z'; /* numpy ndarraz: a global brine must refuse */
            return;
        }
    }
    print_error("no GLOBAL 'numpy ndarray' in the stream\n");
    fail();
}

static void set_root_int_attr(const char *dir, int64_t step, const char *name, int value)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT, &value) >= 0);
    H5Aclose(a);
    assert_true(H5Fclose(f) >= 0);
}

static void delete_link(const char *dir, int64_t step, const char *path)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, path, H5P_DEFAULT) >= 0);
    assert_true(H5Fclose(f) >= 0);
}

static void truncate_ckpt(const char *dir, int64_t step, double frac)
{
    char file[1024];
    ckpt(file, sizeof file, dir, step);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(truncate(file, (off_t)((double)st.st_size * frac)), 0);
}

/* ------------------------------------------------------------------------ */
/* Tests: nothing to restore                                                */
/* ------------------------------------------------------------------------ */

static void test_notfound_empty_dir(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    sim_state *s = state_new(), *sent = state_new();
    state_sentinel(s);
    state_sentinel(sent);
    brine *b = tu_open(dir, NULL);
    state_register(b, s);
    int64_t step = -5;
    EXPECT_RC(b, BRINE_ENOTFOUND, brine_restore(b, &step));
    assert_true(brine_errmsg(b)[0] != '\0');
    state_assert_untouched(s, sent, "memory after ENOTFOUND");
    brine_close(b);

    /* files that are not committed checkpoints of this prefix do not count */
    const char *junk[] = {"other-000000000001.h5",   "ckpt-1.h5",
                          "ckpt-000000000001.h5.bak", "ckpt-0000000000001.h5",
                          "ckpt-00000000000a.h5",     ".ckpt-000000000009.h5.tmp-123",
                          "ckpt_000000000001.h5",     "xckpt-000000000001.h5",
                          "README"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, junk[i]);
        assert_int_equal(tu_write_file(p, "garbage", 7), 0);
    }
    b = tu_open(dir, NULL);
    state_register(b, s);
    EXPECT_RC(b, BRINE_ENOTFOUND, brine_restore(b, &step));
    state_assert_untouched(s, sent, "memory after ENOTFOUND with junk files");
    brine_close(b);
    free(s);
    free(sent);
    tu_rmtree(dir);
}

static void test_notfound_missing_dir(void **state)
{
    (void)state;
    const char *base = tu_tmpdir();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gone", base);
    sim_state *s = state_new();
    brine *b = tu_open(dir, NULL);
    state_register(b, s);
    assert_int_equal(rmdir(dir), 0);
    EXPECT_RC(b, BRINE_ENOTFOUND, brine_restore(b, NULL));
    assert_true(brine_errmsg(b)[0] != '\0');
    brine_close(b);
    free(s);
    tu_rmtree(base);
}

/* ------------------------------------------------------------------------ */
/* Tests: damaged checkpoints                                               */
/* ------------------------------------------------------------------------ */

static void test_fallback_corrupt_chunk(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    /* every chunk of both arrays, a byte in the middle and the fletcher32 bytes */
    const char *arrays[2] = {"/state/grid/u", "/state/grid/mask"};
    for (int a = 0; a < 2; a++) {
        const char *dir0 = tu_tmpdir();
        save_steps(dir0, steps, 1);
        char f2[1024];
        ckpt(f2, sizeof f2, dir0, 1);
        hsize_t nch = num_chunks(f2, arrays[a]);
        tu_rmtree(dir0);
        if (a == 0)
            assert_true(nch >= 2);
        for (hsize_t c = 0; c < nch; c++) {
            for (int where = 0; where < 3; where++) {
                const char *dir = tu_tmpdir();
                save_steps(dir, steps, 2);
                char fp[1024];
                ckpt(fp, sizeof fp, dir, 2);
                haddr_t addr;
                hsize_t size;
                chunk_location(fp, arrays[a], c, &addr, &size);
                int64_t rel = where == 0 ? (int64_t)size / 2 : where == 1 ? 0 : -2;
                corrupt_chunk(dir, 2, arrays[a], c, rel);
                char what[256];
                snprintf(what, sizeof what, "%s chunk %llu byte %lld of step 2 flipped", arrays[a],
                         (unsigned long long)c, (long long)rel);
                expect_restores(dir, 1, what);
                /* only the damaged one: corrupt, memory untouched */
                char f1[1024];
                ckpt(f1, sizeof f1, dir, 1);
                assert_int_equal(unlink(f1), 0);
                char msg[4096];
                expect_restore_fails(dir, BRINE_ECORRUPT, msg, sizeof msg, what);
                if (!strstr(msg, "grid/u") && !strstr(msg, "grid/mask")) {
                    print_error("%s: message does not name the array: %s\n", what, msg);
                    fail();
                }
                tu_rmtree(dir);
            }
        }
    }
}

static void test_all_fail_memory_untouched(void **state)
{
    (void)state;
    const int64_t steps[3] = {1, 2, 3};
    /* all corrupt: the newest one's error, every candidate in the message */
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 3);
    corrupt_chunk(dir, 1, "/state/grid/u", 0, 100);
    corrupt_pickle_raw(dir, 2);
    corrupt_chunk(dir, 3, "/state/grid/u", 1, 100);
    char msg[4096];
    expect_restore_fails(dir, BRINE_ECORRUPT, msg, sizeof msg, "three corrupt checkpoints");
    for (int i = 1; i <= 3; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "%012d", i);
        if (!strstr(msg, needle)) {
            print_error("message does not mention the checkpoint of step %d: %s\n", i, msg);
            fail();
        }
    }
    tu_rmtree(dir);

    /* the newest is a newer format, the older corrupt: EVERSION */
    dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    corrupt_chunk(dir, 1, "/state/grid/u", 0, 50);
    set_root_int_attr(dir, 2, "brine_format", 2);
    expect_restore_fails(dir, BRINE_EVERSION, msg, sizeof msg, "newest EVERSION, older corrupt");
    tu_rmtree(dir);

    /* the newest corrupt, the older a newer format: ECORRUPT */
    dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    set_root_int_attr(dir, 1, "brine_format", 2);
    corrupt_chunk(dir, 2, "/state/grid/u", 0, 50);
    expect_restore_fails(dir, BRINE_ECORRUPT, msg, sizeof msg, "newest corrupt, older EVERSION");
    tu_rmtree(dir);
}

static void test_pickle_crc_mismatch(void **state)
{
    (void)state;
    const int64_t steps[2] = {4, 8};
    /* a byte changed through HDF5 */
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    edit_pickle(dir, 8, edit_flip_middle, 0);
    expect_restores(dir, 4, "pickle of step 8 changed");
    char f[1024];
    ckpt(f, sizeof f, dir, 4);
    unlink(f);
    expect_restore_fails(dir, BRINE_ECORRUPT, NULL, 0, "only a changed pickle");
    tu_rmtree(dir);

    /* a bit flipped in the file */
    dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    corrupt_pickle_raw(dir, 8);
    expect_restores(dir, 4, "pickle bytes of step 8 flipped");
    tu_rmtree(dir);
}

static void test_pickle_malformed_valid_crc(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    stream_edit edits[2] = {edit_bad_stop, edit_bad_global};
    const char *names[2] = {"invalid opcode", "forbidden global"};
    for (int i = 0; i < 2; i++) {
        const char *dir = tu_tmpdir();
        save_steps(dir, steps, 2);
        edit_pickle(dir, 2, edits[i], 1);
        expect_restores(dir, 1, names[i]);
        char f[1024];
        ckpt(f, sizeof f, dir, 1);
        unlink(f);
        expect_restore_fails(dir, BRINE_ECORRUPT, NULL, 0, names[i]);
        tu_rmtree(dir);
    }
}

static void test_newer_format(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    set_root_int_attr(dir, 2, "brine_format", 2);
    expect_restores(dir, 1, "newest written in format 2");
    char f[1024];
    ckpt(f, sizeof f, dir, 1);
    unlink(f);
    char msg[4096];
    expect_restore_fails(dir, BRINE_EVERSION, msg, sizeof msg, "only format 2");
    if (!strstr(msg, "2") || !strstr(msg, "1")) {
        print_error("EVERSION message does not give both versions: %s\n", msg);
        fail();
    }
    tu_rmtree(dir);
}

static void test_truncated(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    const double fracs[4] = {0.5, 0.9, 0.01, 0.0};
    for (int i = 0; i < 4; i++) {
        const char *dir = tu_tmpdir();
        save_steps(dir, steps, 2);
        truncate_ckpt(dir, 2, fracs[i]);
        char what[64];
        snprintf(what, sizeof what, "step 2 truncated to %.0f%%", fracs[i] * 100);
        expect_restores(dir, 1, what);
        char f[1024];
        ckpt(f, sizeof f, dir, 1);
        unlink(f);
        expect_restore_fails(dir, 0, NULL, 0, what);
        tu_rmtree(dir);
    }
}

static void test_missing_dataset(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    delete_link(dir, 2, "/state/grid/u");
    expect_restores(dir, 1, "dataset missing in step 2");
    char f[1024];
    ckpt(f, sizeof f, dir, 1);
    unlink(f);
    expect_restore_fails(dir, BRINE_ECORRUPT, NULL, 0, "only a checkpoint missing a dataset");
    tu_rmtree(dir);
}

/* I/O errors while reading the newest checkpoint: fall back. */
typedef struct pread_fail {
    const brine_io_methods *base;
    const char *substr; /* fail reads of files whose path contains it */
    int fds[1024];
    int failures;
} pread_fail;

static int pf_open(void *ctx, const char *path, int flags, unsigned mode)
{
    pread_fail *p = ctx;
    int fd = p->base->open(p->base->ctx, path, flags, mode);
    if (fd >= 0 && fd < 1024)
        p->fds[fd] = strstr(path, p->substr) != NULL;
    return fd;
}
static int pf_close(void *ctx, int fd)
{
    pread_fail *p = ctx;
    if (fd >= 0 && fd < 1024)
        p->fds[fd] = 0;
    return p->base->close(p->base->ctx, fd);
}
static int64_t pf_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    pread_fail *p = ctx;
    /* let the superblock and metadata be read; fail reads beyond the first 4 KiB */
    if (fd >= 0 && fd < 1024 && p->fds[fd] && off > 4096) {
        p->failures++;
        return -EIO;
    }
    return p->base->pread(p->base->ctx, fd, buf, n, off);
}

static void test_read_error_falls_back(void **state)
{
    (void)state;
    const int64_t steps[2] = {1, 2};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 2);
    const brine_io_methods *px = brine_io_posix();
    pread_fail p;
    memset(&p, 0, sizeof p);
    p.base = px;
    p.substr = "ckpt-000000000002.h5";
    brine_io_methods m = *px;
    m.ctx = &p;
    m.open = pf_open;
    m.close = pf_close;
    m.pread = pf_pread;
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    brine *b = tu_open(dir, &o);
    sim_state *s = state_new(), *want = state_new();
    state_sentinel(s);
    state_register(b, s);
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_true(p.failures > 0);
    assert_int_equal(step, 1);
    state_fill(want, 1);
    state_assert_equal(s, want, "restore after read errors on the newest");
    brine_close(b);
    free(s);
    free(want);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Tests: mismatches                                                        */
/* ------------------------------------------------------------------------ */

/* Saves one variable set by save_fn, restores with register_fn: EMISMATCH, memory untouched. */
static void mismatch_case(const char *what, int (*save_fn)(brine *, void *),
                          int (*reg_fn)(brine *, void *), const char *varname)
{
    const char *dir = tu_tmpdir();
    static unsigned char data[4096], mem[4096], sent[4096];
    memset(data, 1, sizeof data);
    brine *b = tu_open(dir, NULL);
    OK(b, save_fn(b, data));
    OK(b, brine_save(b, 1));
    brine_close(b);

    b = tu_open(dir, NULL);
    memset(mem, 0xA5, sizeof mem);
    memcpy(sent, mem, sizeof mem);
    OK(b, reg_fn(b, mem));
    int64_t step = -3;
    int rc = brine_restore(b, &step);
    if (rc != BRINE_EMISMATCH) {
        print_error("%s: restore returned %d (%s), expected EMISMATCH; message: %s\n", what, rc,
                    brine_errstr(rc), brine_errmsg(b));
        fail();
    }
    if (varname && !strstr(brine_errmsg(b), varname)) {
        print_error("%s: message does not name %s: %s\n", what, varname, brine_errmsg(b));
        fail();
    }
    if (memcmp(mem, sent, sizeof mem) != 0) {
        print_error("%s: registered memory was written by a failed restore\n", what);
        fail();
    }
    brine_close(b);
    tu_rmtree(dir);
}

static const size_t sh_10[1] = {10}, sh_11[1] = {11}, sh_2x5[2] = {2, 5}, sh_5x2[2] = {5, 2},
                    sh_3x4[2] = {3, 4}, sh_1[1] = {1};

static int reg_keep(brine *b, void *p)
{
    /* a matching companion variable, so that the checkpoint is otherwise fine */
    static int32_t k = 7;
    (void)p;
    return brine_register(b, "keep", BRINE_I32, &k, 0, NULL, 0);
}
static int s_f64_10(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 1, sh_10, 0);
}
static int r_f32_10(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F32, p, 1, sh_10, 0);
}
static int r_i64_10(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_I64, p, 1, sh_10, 0);
}
static int r_f64_11(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 1, sh_11, 0);
}
static int s_f64_2x5(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 2, sh_2x5, 0);
}
static int r_f64_5x2(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 2, sh_5x2, 0);
}
static int s_c_3x4(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 2, sh_3x4, 0);
}
static int r_f_3x4(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 2, sh_3x4, BRINE_FORTRAN_ORDER);
}
static int r_f_4x3(brine *b, void *p)
{
    /* same dataset dimensions (3,4) as the C array, but F order: still a mismatch */
    static const size_t s43[2] = {4, 3};
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 2, s43, BRINE_FORTRAN_ORDER);
}
static int r_missing(brine *b, void *p)
{
    int rc = s_f64_10(b, p);
    return rc ? rc : brine_register(b, "extra/var", BRINE_F64, (char *)p + 1024, 1, sh_10, 0);
}
static int s_str_long(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    if (rc)
        return rc;
    strcpy(p, "a string of thirty-two characters");
    return brine_register_string(b, "v", p, 64);
}
static int r_str_short(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register_string(b, "v", p, 16);
}
static int r_str_exact_minus_one(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    /* strlen is 33: 33 bytes of capacity leave no room for the NUL */
    return rc ? rc : brine_register_string(b, "v", p, 33);
}
static int s_scalar(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 0, NULL, 0);
}
static int r_array1(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v", BRINE_F64, p, 1, sh_1, 0);
}
static int r_string(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register_string(b, "v", p, 64);
}
static int r_group(brine *b, void *p)
{
    int rc = reg_keep(b, p);
    return rc ? rc : brine_register(b, "v/w", BRINE_F64, p, 1, sh_10, 0);
}

static void test_mismatch(void **state)
{
    (void)state;
    mismatch_case("dtype f64 -> f32", s_f64_10, r_f32_10, "v");
    mismatch_case("dtype f64 -> i64", s_f64_10, r_i64_10, "v");
    mismatch_case("shape 10 -> 11", s_f64_10, r_f64_11, "v");
    mismatch_case("shape 2x5 -> 5x2", s_f64_2x5, r_f64_5x2, "v");
    mismatch_case("order C -> F", s_c_3x4, r_f_3x4, "v");
    mismatch_case("order C (3,4) -> F (4,3)", s_c_3x4, r_f_4x3, "v");
    mismatch_case("missing variable", s_f64_10, r_missing, "extra/var");
    mismatch_case("string too long", s_str_long, r_str_short, "v");
    mismatch_case("string without room for its NUL", s_str_long, r_str_exact_minus_one, "v");
    mismatch_case("scalar -> array", s_scalar, r_array1, "v");
    mismatch_case("array -> scalar", r_array1, s_scalar, "v");
    mismatch_case("number -> string", s_scalar, r_string, "v");
    mismatch_case("variable -> group", s_f64_10, r_group, "v");
}

/* A newer checkpoint that does not match falls back to an older one that does. */
static void test_mismatch_falls_back(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    double a10[10], a11[11];
    for (int i = 0; i < 11; i++)
        a11[i] = i < 10 ? (a10[i] = i + 0.5) : 99;
    brine *b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_F64, a10, 1, sh_10, 0));
    OK(b, brine_save(b, 1));
    brine_close(b);
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_F64, a11, 1, sh_11, 0));
    OK(b, brine_save(b, 2));
    brine_close(b);

    double got[10];
    memset(got, 0, sizeof got);
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_F64, got, 1, sh_10, 0));
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 1);
    assert_memory_equal(got, a10, sizeof got);
    brine_close(b);

    /* the older one corrupt too: the newest one's error (EMISMATCH) */
    corrupt_chunk(dir, 1, "/state/v", 0, 8);
    b = tu_open(dir, NULL);
    memset(got, 0x5A, sizeof got);
    OK(b, brine_register(b, "v", BRINE_F64, got, 1, sh_10, 0));
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, &step));
    MSG_HAS(b, "000000000001");
    MSG_HAS(b, "000000000002");
    for (int i = 0; i < 10; i++) {
        unsigned char *p = (unsigned char *)&got[i];
        for (int k = 0; k < 8; k++)
            assert_int_equal(p[k], 0x5A);
    }
    brine_close(b);
    tu_rmtree(dir);
}

static void test_extra_variables(void **state)
{
    (void)state;
    const int64_t steps[1] = {3};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 1);
    /* register only a subset of the saved sim_state */
    sim_state *s = state_new(), *want = state_new();
    state_sentinel(s);
    state_fill(want, 3);
    const size_t sm[2] = {MX, MY};

    /* by default the unregistered ones are a mismatch, each named, and nothing is written */
    brine *b = tu_open(dir, NULL);
    OK(b, brine_register(b, "grid/mask", BRINE_BOOL, s->mask, 2, sm, 0));
    OK(b, brine_register(b, "n", BRINE_I64, &s->n, 0, NULL, 0));
    int64_t step = 0;
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, &step));
    MSG_HAS(b, "'grid/u' is in the checkpoint (an array) but not registered");
    MSG_HAS(b, "'t' is in the checkpoint (a float) but not registered");
    MSG_HAS(b, "'name' is in the checkpoint (a str) but not registered");
    const unsigned char *m = (const unsigned char *)s->mask;
    for (size_t i = 0; i < sizeof s->mask; i++)
        assert_int_equal(m[i], 0xA5);
    brine_close(b);

    /* BRINE_RESTORE_PARTIAL restores the subset and reports the rest */
    b = tu_open_partial(dir);
    OK(b, brine_register(b, "grid/mask", BRINE_BOOL, s->mask, 2, sm, 0));
    OK(b, brine_register(b, "n", BRINE_I64, &s->n, 0, NULL, 0));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    assert_memory_equal(s->mask, want->mask, sizeof s->mask);
    assert_int_equal(s->n, want->n);
    assert_non_null(strstr(brine_restore_report(b), "'grid/u' is in the checkpoint (an array) but not registered\n"));
    assert_non_null(strstr(brine_restore_report(b), "'t' is in the checkpoint (a float) but not registered\n"));
    /* the unregistered ones were not written anywhere */
    const unsigned char *u = (const unsigned char *)s->u;
    for (size_t i = 0; i < sizeof s->u; i++)
        assert_int_equal(u[i], 0xA5);
    brine_close(b);
    free(s);
    free(want);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Tests: temporary files                                                   */
/* ------------------------------------------------------------------------ */

static void test_temp_files(void **state)
{
    (void)state;
    const int64_t steps[1] = {1};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 1);
    char p[1024];
    snprintf(p, sizeof p, "%s/.ckpt-000000000009.h5.tmp-123", dir);
    assert_int_equal(tu_write_file(p, "garbage garbage", 15), 0);
    snprintf(p, sizeof p, "%s/.ckpt-000000000000.h5.tmp-1", dir);
    assert_int_equal(tu_write_file(p, "", 0), 0);
    /* a copy of a valid checkpoint under a temporary name is still not a checkpoint */
    {
        char src[1024];
        ckpt(src, sizeof src, dir, 1);
        size_t n = 0;
        uint8_t *bytes = tu_read_file(src, &n);
        assert_non_null(bytes);
        snprintf(p, sizeof p, "%s/.ckpt-000000000007.h5.tmp-99", dir);
        assert_int_equal(tu_write_file(p, bytes, n), 0);
        free(bytes);
    }
    /* another prefix's temporary file belongs to another writer */
    snprintf(p, sizeof p, "%s/.other-000000000009.h5.tmp-5", dir);
    assert_int_equal(tu_write_file(p, "x", 1), 0);
    assert_int_equal(tu_count_entries(dir, ".ckpt-"), 3);

    expect_restores(dir, 1, "restore with temporary files around");
    /* restore removes nothing */
    assert_int_equal(tu_count_entries(dir, ".ckpt-"), 3);

    /* the next save removes this prefix's leftovers */
    brine *b = tu_open(dir, NULL);
    sim_state *s = state_new();
    state_fill(s, 2);
    state_register(b, s);
    OK(b, brine_save(b, 2));
    assert_int_equal(tu_count_entries(dir, ".ckpt-"), 0);
    assert_int_equal(tu_count_entries(dir, ".other-"), 1);
    brine_close(b);
    free(s);
    expect_restores(dir, 2, "after the save");
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Tests: failing saves                                                     */
/* ------------------------------------------------------------------------ */

static void test_failed_save_readonly_dir(void **state)
{
    (void)state;
    if (geteuid() == 0) {
        /* root ignores directory permissions: the injected failures below cover this */
        skip();
    }
    const int64_t steps[1] = {1};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 1);
    brine *b = tu_open(dir, NULL);
    sim_state *s = state_new();
    state_fill(s, 2);
    state_register(b, s);
    assert_int_equal(chmod(dir, 0500), 0);
    int rc = brine_save(b, 2);
    assert_int_equal(chmod(dir, 0700), 0);
    if (rc != BRINE_EIO) {
        print_error("save into a read-only directory returned %d (%s), expected EIO: %s\n", rc,
                    brine_errstr(rc), brine_errmsg(b));
        fail();
    }
    assert_true(strlen(brine_errmsg(b)) > 0);
    MSG_HAS(b, strerror(EACCES));
    assert_int_equal(tu_count_entries(dir, "."), 0);
    assert_false(ckpt_exists(dir, 2));
    expect_restores(dir, 1, "after a failed save");
    state_fill(s, 3);
    OK(b, brine_save(b, 3));
    brine_close(b);
    expect_restores(dir, 3, "after a later save");
    free(s);
    tu_rmtree(dir);
}

/* An I/O method table that fails chosen operations. */
typedef struct faulty {
    const brine_io_methods *base;
    long pwrites, fsyncs, renames, opens;
    long pwrite_fail_at; /* 1-based; 0 = never */
    int pwrite_persistent;
    int pwrite_errno;
    int fsync_errno, rename_errno, fsync_dir_errno, unlink_errno, open_create_errno;
    long injected;
} faulty;

static int fa_open(void *ctx, const char *path, int flags, unsigned mode)
{
    faulty *f = ctx;
    f->opens++;
    if (f->open_create_errno && (flags & O_CREAT)) {
        f->injected++;
        return -f->open_create_errno;
    }
    return f->base->open(f->base->ctx, path, flags, mode);
}
static int fa_close(void *ctx, int fd)
{
    faulty *f = ctx;
    return f->base->close(f->base->ctx, fd);
}
static int64_t fa_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    faulty *f = ctx;
    return f->base->pread(f->base->ctx, fd, buf, n, off);
}
static int64_t fa_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    faulty *f = ctx;
    f->pwrites++;
    if (f->pwrite_fail_at &&
        (f->pwrites == f->pwrite_fail_at || (f->pwrite_persistent && f->pwrites > f->pwrite_fail_at))) {
        f->injected++;
        return -f->pwrite_errno;
    }
    return f->base->pwrite(f->base->ctx, fd, buf, n, off);
}
static int fa_fsync(void *ctx, int fd)
{
    faulty *f = ctx;
    f->fsyncs++;
    if (f->fsync_errno) {
        f->injected++;
        return -f->fsync_errno;
    }
    return f->base->fsync(f->base->ctx, fd);
}
static int fa_ftruncate(void *ctx, int fd, uint64_t size)
{
    faulty *f = ctx;
    return f->base->ftruncate(f->base->ctx, fd, size);
}
static int fa_fsize(void *ctx, int fd, uint64_t *out)
{
    faulty *f = ctx;
    return f->base->fsize(f->base->ctx, fd, out);
}
static int fa_rename(void *ctx, const char *from, const char *to)
{
    faulty *f = ctx;
    f->renames++;
    if (f->rename_errno) {
        f->injected++;
        return -f->rename_errno;
    }
    return f->base->rename(f->base->ctx, from, to);
}
static int fa_unlink(void *ctx, const char *path)
{
    faulty *f = ctx;
    if (f->unlink_errno) {
        f->injected++;
        return -f->unlink_errno;
    }
    return f->base->unlink(f->base->ctx, path);
}
static int fa_mkdir(void *ctx, const char *path, unsigned mode)
{
    faulty *f = ctx;
    return f->base->mkdir(f->base->ctx, path, mode);
}
static int fa_fsync_dir(void *ctx, const char *path)
{
    faulty *f = ctx;
    if (f->fsync_dir_errno) {
        f->injected++;
        return -f->fsync_dir_errno;
    }
    return f->base->fsync_dir(f->base->ctx, path);
}
static int fa_list_dir(void *ctx, const char *path, int (*each)(void *, const char *), void *arg)
{
    faulty *f = ctx;
    return f->base->list_dir(f->base->ctx, path, each, arg);
}

static void faulty_init(faulty *f, brine_io_methods *m)
{
    memset(f, 0, sizeof *f);
    f->base = brine_io_posix();
    *m = (brine_io_methods){BRINE_IO_METHODS_VERSION,
                            f,
                            fa_open,
                            fa_close,
                            fa_pread,
                            fa_pwrite,
                            fa_fsync,
                            fa_ftruncate,
                            fa_fsize,
                            fa_rename,
                            fa_unlink,
                            fa_mkdir,
                            fa_fsync_dir,
                            fa_list_dir};
}

static void faulty_clear(faulty *f)
{
    const brine_io_methods *base = f->base;
    memset(f, 0, sizeof *f);
    f->base = base;
}

/*
 * The invariants after a save that failed: the expected code with a message
 * (containing needle when given), no temporary file, no checkpoint of the
 * failed step, the earlier checkpoint (step 1) restorable bit-exactly.
 */
static void check_failed_save(brine *b, int rc, int code, const char *needle, const char *dir,
                              int64_t failed_step, const char *what)
{
    if (rc != code) {
        print_error("%s: brine_save returned %d (%s), expected %d (%s); message: %s\n", what, rc,
                    brine_errstr(rc), code, brine_errstr(code), brine_errmsg(b));
        fail();
    }
    const char *m = brine_errmsg(b);
    if (!m || !m[0]) {
        print_error("%s: empty message\n", what);
        fail();
    }
    if (needle && !strstr(m, needle)) {
        print_error("%s: message \"%s\" lacks \"%s\"\n", what, m, needle);
        fail();
    }
    if (tu_count_entries(dir, ".") != 0) {
        print_error("%s: a temporary file remains\n", what);
        fail();
    }
    if (failed_step >= 0 && ckpt_exists(dir, failed_step)) {
        print_error("%s: a checkpoint of the failed step %lld exists\n", what,
                    (long long)failed_step);
        fail();
    }
    expect_restores(dir, 1, what);
}

/* pwrite fails at the Nth call (then persistently or once), for every N a save makes. */
static void pwrite_failure_loop(int persistent, int err, int code)
{
    const int64_t steps[1] = {1};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 1);
    static faulty f;
    brine_io_methods m;
    faulty_init(&f, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.keep_last = 0;
    brine *b = tu_open(dir, &o);
    sim_state *s = state_new();
    state_fill(s, 2);
    state_register(b, s);
    sim_state *copy = state_new();
    memcpy(copy, s, sizeof *s);

    long n;
    int failures = 0;
    for (n = 1; n < 5000; n++) {
        faulty_clear(&f);
        f.pwrite_fail_at = n;
        f.pwrite_persistent = persistent;
        f.pwrite_errno = err;
        int rc = brine_save(b, 2);
        state_assert_untouched(s, copy, "registered memory after a save");
        if (f.injected == 0) {
            /* N beyond the writes of a save: it succeeded */
            OK(b, rc);
            break;
        }
        char what[128];
        snprintf(what, sizeof what, "pwrite #%ld failing with %s (%s)", n, strerror(err),
                 persistent ? "persistently" : "once");
        if (!persistent && rc == 0) {
            /* a transient failure that brine retried: the checkpoint must then be intact */
            expect_restores(dir, 2, what);
            char p2[1024];
            ckpt(p2, sizeof p2, dir, 2);
            unlink(p2);
            continue;
        }
        failures++;
        check_failed_save(b, rc, code, strerror(err), dir, 2, what);
    }
    assert_true(failures > 0);
    assert_true(n < 5000);
    /* the last (successful) save */
    expect_restores(dir, 2, "the save after the failures");
    brine_close(b);
    free(s);
    free(copy);
    tu_rmtree(dir);
}

static void test_save_pwrite_enospc_persistent(void **state)
{
    (void)state;
    pwrite_failure_loop(1, ENOSPC, BRINE_ENOSPC);
}

static void test_save_pwrite_enospc_once(void **state)
{
    (void)state;
    pwrite_failure_loop(0, ENOSPC, BRINE_ENOSPC);
}

static void test_save_pwrite_edquot_eio(void **state)
{
    (void)state;
    const int64_t steps[1] = {1};
    const int errs[2] = {EDQUOT, EIO};
    const int codes[2] = {BRINE_ENOSPC, BRINE_EIO};
    for (int i = 0; i < 2; i++) {
        const char *dir = tu_tmpdir();
        save_steps(dir, steps, 1);
        static faulty f;
        brine_io_methods m;
        faulty_init(&f, &m);
        brine_options o = BRINE_OPTIONS_INIT;
        o.io = &m;
        brine *b = tu_open(dir, &o);
        sim_state *s = state_new();
        state_fill(s, 2);
        state_register(b, s);
        f.pwrite_fail_at = 3;
        f.pwrite_persistent = 1;
        f.pwrite_errno = errs[i];
        int rc = brine_save(b, 2);
        assert_true(f.injected > 0);
        check_failed_save(b, rc, codes[i], strerror(errs[i]), dir, 2, strerror(errs[i]));
        faulty_clear(&f);
        OK(b, brine_save(b, 2));
        brine_close(b);
        expect_restores(dir, 2, "after recovery");
        free(s);
        tu_rmtree(dir);
    }
}

static void test_save_fsync_rename_open_failures(void **state)
{
    (void)state;
    const int64_t steps[1] = {1};
    enum { FSYNC, RENAME, OPEN };
    static const struct {
        int op, err, code;
        const char *what, *needle;
    } cases[] = {
        {FSYNC, EIO, BRINE_EIO, "fsync failing with EIO", "fsync"},
        {FSYNC, ENOSPC, BRINE_ENOSPC, "fsync failing with ENOSPC", "fsync"},
        {RENAME, EIO, BRINE_EIO, "rename failing with EIO", "rename"},
        {RENAME, EXDEV, BRINE_EIO, "rename failing with EXDEV", "rename"},
        {OPEN, EACCES, BRINE_EIO, "open(O_CREAT) failing with EACCES", "open"},
        {OPEN, ENOSPC, BRINE_ENOSPC, "open(O_CREAT) failing with ENOSPC", "open"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *dir = tu_tmpdir();
        save_steps(dir, steps, 1);
        static faulty f;
        brine_io_methods m;
        faulty_init(&f, &m);
        brine_options o = BRINE_OPTIONS_INIT;
        o.io = &m;
        brine *b = tu_open(dir, &o);
        sim_state *s = state_new();
        state_fill(s, 2);
        state_register(b, s);
        if (cases[c].op == FSYNC)
            f.fsync_errno = cases[c].err;
        else if (cases[c].op == RENAME)
            f.rename_errno = cases[c].err;
        else
            f.open_create_errno = cases[c].err;
        int rc = brine_save(b, 2);
        assert_true(f.injected > 0);
        /* the message gives the failing call and the errno text of the injected error */
        check_failed_save(b, rc, cases[c].code, strerror(cases[c].err), dir, 2, cases[c].what);
        MSG_HAS(b, cases[c].needle);
        /* a later save succeeds */
        faulty_clear(&f);
        state_fill(s, 3);
        OK(b, brine_save(b, 3));
        assert_int_equal(tu_count_entries(dir, "."), 0);
        brine_close(b);
        expect_restores(dir, 3, "the save after the failure");
        free(s);
        tu_rmtree(dir);
    }
}

static void test_save_fsync_dir_failure(void **state)
{
    (void)state;
    const int64_t steps[1] = {1};
    const char *dir = tu_tmpdir();
    save_steps(dir, steps, 1);
    static faulty f;
    brine_io_methods m;
    faulty_init(&f, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    brine *b = tu_open(dir, &o);
    sim_state *s = state_new();
    state_fill(s, 2);
    state_register(b, s);
    f.fsync_dir_errno = EIO;
    int rc = brine_save(b, 2);
    assert_true(f.injected > 0);
    if (rc == 0) {
        print_error("a save whose directory fsync failed was reported as success\n");
        fail();
    }
    if (rc != BRINE_EIO) {
        print_error("fsync_dir failing: %d (%s), expected EIO: %s\n", rc, brine_errstr(rc),
                    brine_errmsg(b));
        fail();
    }
    assert_true(brine_errmsg(b)[0] != '\0');
    MSG_HAS(b, strerror(EIO));
    assert_int_equal(tu_count_entries(dir, "."), 0);
    /* the earlier checkpoint is untouched */
    assert_true(ckpt_exists(dir, 1));
    /* a later save succeeds */
    faulty_clear(&f);
    state_fill(s, 3);
    OK(b, brine_save(b, 3));
    brine_close(b);
    expect_restores(dir, 3, "the save after the fsync_dir failure");
    free(s);
    tu_rmtree(dir);
}

/* Rotation is best effort: a failing unlink does not fail the save; the next rotation retries. */
static void test_rotation_unlink_failure(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    static faulty f;
    brine_io_methods m;
    faulty_init(&f, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.keep_last = 2;
    brine *b = tu_open(dir, &o);
    int64_t v = 0;
    OK(b, brine_register(b, "v", BRINE_I64, &v, 0, NULL, 0));
    f.unlink_errno = EACCES;
    for (int s = 1; s <= 4; s++) {
        v = s;
        OK(b, brine_save(b, s));
    }
    assert_true(f.injected > 0);
    for (int s = 1; s <= 4; s++)
        assert_true(ckpt_exists(dir, s));
    f.unlink_errno = 0;
    v = 5;
    OK(b, brine_save(b, 5));
    assert_false(ckpt_exists(dir, 1));
    assert_false(ckpt_exists(dir, 2));
    assert_false(ckpt_exists(dir, 3));
    assert_true(ckpt_exists(dir, 4));
    assert_true(ckpt_exists(dir, 5));
    brine_close(b);
    tu_rmtree(dir);
}

/* ---- failing allocations ---- */

typedef struct failing_alloc {
    atomic_long n, fail_at, live, bad;
} failing_alloc;

static void *fl_alloc(void *ctx, size_t size)
{
    failing_alloc *a = ctx;
    long k = atomic_fetch_add(&a->n, 1) + 1;
    long at = atomic_load(&a->fail_at);
    if (at && k == at)
        return NULL;
    unsigned char *p = malloc(size + 16);
    if (!p)
        return NULL;
    memcpy(p, "brineALLOCmagic", 16);
    atomic_fetch_add(&a->live, 1);
    return p + 16;
}

static void fl_free(void *ctx, void *ptr)
{
    failing_alloc *a = ctx;
    if (!ptr) {
        atomic_fetch_add(&a->bad, 1);
        return;
    }
    unsigned char *p = (unsigned char *)ptr - 16;
    if (memcmp(p, "brineALLOCmagic", 16) != 0) {
        atomic_fetch_add(&a->bad, 1);
        return;
    }
    memset(p, 0, 16);
    atomic_fetch_sub(&a->live, 1);
    free(p);
}

/* Fails the Nth allocation for N = 1, 2, ... until open, register, save and restore all succeed. */
static void test_enomem_loop(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    const int64_t steps[1] = {1};
    save_steps(dir, steps, 1);
    sim_state *s = state_new(), *copy = state_new();
    failing_alloc a;
    const brine_allocator al = {fl_alloc, fl_free, &a};
    long n;
    for (n = 1; n < 100000; n++) {
        atomic_init(&a.n, 0);
        atomic_init(&a.fail_at, n);
        atomic_init(&a.live, 0);
        atomic_init(&a.bad, 0);
        brine_options o = BRINE_OPTIONS_INIT;
        o.alloc = &al;
        o.keep_last = 0;
        brine *b = NULL;
        int rc = brine_open(&b, dir, &o);
        int stage = 0;
        const char *msg = "";
        if (rc == 0) {
            stage = 1;
            const size_t su[2] = {UX, UY}, sm[2] = {MX, MY};
            state_fill(s, 2);
            rc = brine_register(b, "grid/u", BRINE_F64, s->u, 2, su, 0);
            if (!rc)
                rc = brine_register(b, "grid/mask", BRINE_BOOL, s->mask, 2, sm, 0);
            if (!rc)
                rc = brine_register(b, "t", BRINE_F64, &s->t, 0, NULL, 0);
            if (!rc)
                rc = brine_register(b, "n", BRINE_I64, &s->n, 0, NULL, 0);
            if (!rc)
                rc = brine_register_string(b, "name", s->name, sizeof s->name);
            if (!rc) {
                stage = 2;
                rc = brine_save(b, 2);
                if (rc && tu_count_entries(dir, ".") != 0) {
                    print_error("allocation #%ld failing: a temporary file remains\n", n);
                    fail();
                }
            }
            if (!rc) {
                stage = 3;
                memcpy(copy, s, sizeof *s);
                state_sentinel(s);
                rc = brine_restore(b, NULL);
                if (!rc)
                    state_assert_equal(s, copy, "restore with the allocator");
            }
            msg = brine_errmsg(b);
        } else {
            msg = brine_open_errmsg();
            if (b != NULL) {
                print_error("a failed brine_open left *out non-NULL\n");
                fail();
            }
        }
        if (rc != 0 && rc != BRINE_ENOMEM) {
            print_error("allocation #%ld failing at stage %d: %d (%s), expected ENOMEM: %s\n", n,
                        stage, rc, brine_errstr(rc), msg);
            fail();
        }
        if (rc != 0 && !msg[0]) {
            print_error("allocation #%ld failing: ENOMEM without a message\n", n);
            fail();
        }
        brine_close(b);
        if (atomic_load(&a.live) != 0 || atomic_load(&a.bad) != 0) {
            print_error("allocation #%ld failing at stage %d: %ld blocks leaked, %ld bad frees\n",
                        n, stage, (long)atomic_load(&a.live), (long)atomic_load(&a.bad));
            fail();
        }
        if (atomic_load(&a.n) < n) /* the Nth allocation never happened: all succeeded */
            break;
        /* a fresh step each time so that each save creates a file */
        char p2[1024];
        ckpt(p2, sizeof p2, dir, 2);
        unlink(p2);
    }
    assert_true(n > 1);
    assert_true(n < 100000);
    expect_restores(dir, 2, "after the ENOMEM loop");
    free(s);
    free(copy);
    tu_rmtree(dir);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notfound_empty_dir),
        cmocka_unit_test(test_notfound_missing_dir),
        cmocka_unit_test(test_fallback_corrupt_chunk),
        cmocka_unit_test(test_all_fail_memory_untouched),
        cmocka_unit_test(test_pickle_crc_mismatch),
        cmocka_unit_test(test_pickle_malformed_valid_crc),
        cmocka_unit_test(test_newer_format),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_dataset),
        cmocka_unit_test(test_read_error_falls_back),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_mismatch_falls_back),
        cmocka_unit_test(test_extra_variables),
        cmocka_unit_test(test_temp_files),
        cmocka_unit_test(test_failed_save_readonly_dir),
        cmocka_unit_test(test_save_pwrite_enospc_persistent),
        cmocka_unit_test(test_save_pwrite_enospc_once),
        cmocka_unit_test(test_save_pwrite_edquot_eio),
        cmocka_unit_test(test_save_fsync_rename_open_failures),
        cmocka_unit_test(test_save_fsync_dir_failure),
        cmocka_unit_test(test_rotation_unlink_failure),
        cmocka_unit_test(test_enomem_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
