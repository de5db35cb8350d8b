/*
 * User metadata (brine_set_attr_*) and root attributes (docs/format.md, 2.1):
 * name and value validation, replacement in place, failing allocations; the
 * attributes a save writes (user metadata, brine_host, brine_threads) read
 * back with brine_h5__read_attrs, which must skip every type brine_attr
 * cannot hold and refuse oversized files; and the file as h5dump and h5py
 * see it (each skipped when the tool is missing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "brine.h"
#include "core/core.h"
#include "format/h5_layout.h"
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

/* Asserts that err holds code and a message containing needle. */
#define ERR_IS(err, want, needle)                                                            \
    do {                                                                                     \
        if ((err).code != (want) || !strstr((err).msg, (needle))) {                          \
            print_error("error %d \"%s\", expected %d with \"%s\"\n", (err).code, (err).msg,  \
                        (int)(want), (needle));                                              \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

/* An allocator that fails every allocation from the fail_at-th on (0: never) and counts live blocks. */
typedef struct fail_alloc {
    long count;
    long fail_at;
    long live;
} fail_alloc;

static void *fa_alloc(void *ctx, size_t size)
{
    fail_alloc *f = ctx;
    f->count++;
    if (f->fail_at && f->count >= f->fail_at)
        return NULL;
    void *p = malloc(size);
    if (p)
        f->live++;
    return p;
}

static void fa_free(void *ctx, void *p)
{
    fail_alloc *f = ctx;
    f->live--;
    free(p);
}

static hid_t fapl_v110(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    assert_true(fapl >= 0);
    assert_true(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0);
    return fapl;
}

/* brine_h5__read_attrs on path (malloc allocator): its code, the list in *out and *n. */
static int read_attrs(const char *path, brine_attr_val **out, size_t *n, brine_error *err)
{
    brine_h5_reader *r = NULL;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    brine__error_clear(err);
    int rc = brine_h5__open(&r, path, fapl, 1, NULL, err);
    H5Pclose(fapl);
    if (rc) {
        print_error("brine_h5__open(%s): %d %s\n", path, rc, err->msg);
        fail();
    }
    rc = brine_h5__read_attrs(r, out, n, err);
    brine_h5__close(r);
    return rc;
}

static const brine_attr_val *find(const brine_attr_val *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void want_int(const brine_attr_val *v, size_t n, const char *name, int64_t want)
{
    const brine_attr_val *a = find(v, n, name);
    if (!a || a->type != BRINE_ATTR_INT || a->i != want) {
        print_error("attribute %s: %s, expected the int %" PRId64 "\n", name,
                    !a ? "missing" : a->type != BRINE_ATTR_INT ? "not an int" : "another value",
                    want);
        fail();
    }
}

static void want_double(const brine_attr_val *v, size_t n, const char *name, double want)
{
    const brine_attr_val *a = find(v, n, name);
    /* Bitwise, for -0.0 and NaN. */
    if (!a || a->type != BRINE_ATTR_DOUBLE || memcmp(&a->d, &want, sizeof want) != 0) {
        print_error("attribute %s: %s, expected the double %.17g\n", name,
                    !a ? "missing" : a->type != BRINE_ATTR_DOUBLE ? "not a double" : "another value",
                    want);
        fail();
    }
}

static void want_string(const brine_attr_val *v, size_t n, const char *name, const char *want)
{
    const brine_attr_val *a = find(v, n, name);
    if (!a || a->type != BRINE_ATTR_STRING || strcmp(a->s, want) != 0) {
        print_error("attribute %s: %s, expected the string \"%s\"\n", name,
                    !a ? "missing" : a->type != BRINE_ATTR_STRING ? "not a string" : a->s, want);
        fail();
    }
}

static void want_absent(const brine_attr_val *v, size_t n, const char *name)
{
    if (find(v, n, name)) {
        print_error("attribute %s should have been skipped\n", name);
        fail();
    }
}

static void want_sorted(const brine_attr_val *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i - 1].name, v[i].name) >= 0) {
            print_error("attributes not in strcmp order: '%s' before '%s'\n", v[i - 1].name,
                        v[i].name);
            fail();
        }
    }
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    uint8_t *bytes = tu_read_file(from, &len);
    assert_non_null(bytes);
    assert_int_equal(tu_write_file(to, bytes, len), 0);
    free(bytes);
}

/* Creates a scalar attribute of type on obj with value (in type's layout). */
static void add_attr(hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, type, value) < 0) {
        print_error("creating attribute %s failed\n", name);
        fail();
    }
    H5Aclose(a);
    H5Sclose(space);
}

static hid_t fixed_string(size_t size, H5T_cset_t cset, H5T_str_t pad)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(t, size) >= 0);
    assert_true(H5Tset_cset(t, cset) >= 0);
    assert_true(H5Tset_strpad(t, pad) >= 0);
    return t;
}

/* The user metadata of the checkpoint the tests below read. */
#define TITLE "h\xc3\xa9llo \xe2\x9c\x93" /* "héllo ✓": 7 characters, 10 bytes */
static const char emoji[] = "\xf0\x9f\x8c\x8a wave";

static void set_standard(brine *b)
{
    OK(b, brine_set_attr_string(b, "title", TITLE));
    OK(b, brine_set_attr_int(b, "nx", 1024));
    OK(b, brine_set_attr_double(b, "dt", 0.125));
    OK(b, brine_set_attr_int(b, "imin", INT64_MIN));
    OK(b, brine_set_attr_int(b, "imax", INT64_MAX));
    OK(b, brine_set_attr_double(b, "negzero", -0.0));
    OK(b, brine_set_attr_double(b, "inf", INFINITY));
    OK(b, brine_set_attr_double(b, "nan", NAN));
    OK(b, brine_set_attr_string(b, "empty", ""));
    OK(b, brine_set_attr_string(b, "emoji", emoji));
    OK(b, brine_set_attr_string(b, "\xc3\xbc" "ber", "unicode name"));
    OK(b, brine_set_attr_string(b, "a b", "space in name"));
    OK(b, brine_set_attr_int(b, ".", 1));
    OK(b, brine_set_attr_int(b, "Step", 2));
    OK(b, brine_set_attr_int(b, "brine", 3));
    OK(b, brine_set_attr_int(b, "brinE_x", 4));
}

static void want_standard(const brine_attr_val *v, size_t n)
{
    want_string(v, n, "title", TITLE);
    want_int(v, n, "nx", 1024);
    want_double(v, n, "dt", 0.125);
    want_int(v, n, "imin", INT64_MIN);
    want_int(v, n, "imax", INT64_MAX);
    want_double(v, n, "negzero", -0.0);
    want_double(v, n, "inf", INFINITY);
    const brine_attr_val *a = find(v, n, "nan");
    assert_non_null(a);
    assert_int_equal(a->type, BRINE_ATTR_DOUBLE);
    assert_true(isnan(a->d));
    want_string(v, n, "empty", "");
    want_string(v, n, "emoji", emoji);
    want_string(v, n, "\xc3\xbc" "ber", "unicode name");
    want_string(v, n, "a b", "space in name");
    want_int(v, n, ".", 1);
    want_int(v, n, "Step", 2);
    want_int(v, n, "brine", 3);
    want_int(v, n, "brinE_x", 4);
}

/* Saves the standard metadata at step 7 with threads, into a new directory; path receives the file. */
static const char *save_standard(char *path, size_t n, int threads)
{
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.threads = threads;
    brine *b = tu_open(dir, &o);
    static double x[100];
    const size_t shape[1] = {100};
    for (int i = 0; i < 100; i++)
        x[i] = i * 0.5;
    OK(b, brine_register(b, "x", BRINE_F64, x, 1, shape, 0));
    set_standard(b);
    OK(b, brine_save(b, 7));
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 7);
    brine_close(b);
    tu_ckpt_path(path, n, dir, "ckpt", 7);
    return dir;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

/* name is refused by all three setters, with a message holding needle; the context keeps no attribute. */
static void want_bad_name(brine *b, const char *name, const char *needle)
{
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_int(b, name, 1));
    MSG_HAS(b, "brine_set_attr_int");
    MSG_HAS(b, needle);
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_double(b, name, 1.0));
    MSG_HAS(b, "brine_set_attr_double");
    MSG_HAS(b, needle);
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, name, "v"));
    MSG_HAS(b, "brine_set_attr_string");
    MSG_HAS(b, needle);
    assert_int_equal(b->nattrs, 0);
}

static void test_name_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';

    want_bad_name(b, NULL, "name is NULL");
    want_bad_name(b, "", "name is empty");
    want_bad_name(b, long_name, "256 bytes long");
    want_bad_name(b, "bad\xff", "'bad\\xff' is not valid UTF-8");
    want_bad_name(b, "\xc0\xaf", "not valid UTF-8");         /* overlong '/' */
    want_bad_name(b, "\xed\xa0\x80x", "not valid UTF-8");     /* a surrogate */
    want_bad_name(b, "caf\xc3", "not valid UTF-8");           /* truncated */
    want_bad_name(b, "a/b", "'a/b' holds a '/' (byte 1)");
    want_bad_name(b, "/", "holds a '/'");
    want_bad_name(b, "line\nbreak", "'line\\x0abreak' holds control character 0x0a (byte 4)");
    want_bad_name(b, "\x01", "control character 0x01");
    want_bad_name(b, "tab\t", "control character 0x09");
    want_bad_name(b, "del\x7f", "control character 0x7f");
    want_bad_name(b, "brine_", "'brine_' starts with \"brine_\"");
    want_bad_name(b, "brine_host", "reserved for brine's own");
    want_bad_name(b, "brine_mine", "reserved for brine's own");
    want_bad_name(b, "step", "'step' is reserved");
    want_bad_name(b, "created", "'created' is reserved");

    /* A long bad name is cut in the message, and the message stays short. */
    char very_long[5000];
    memset(very_long, 'v', sizeof very_long - 1);
    very_long[sizeof very_long - 1] = '\0';
    want_bad_name(b, very_long, "4999 bytes long");
    MSG_HAS(b, "vvv...'");
    assert_true(strlen(brine_errmsg(b)) < 300);

    /* The edges that are allowed. */
    memset(long_name, 'n', 255);
    long_name[255] = '\0';
    OK(b, brine_set_attr_int(b, long_name, 255));
    assert_string_equal(brine_errmsg(b), "");
    OK(b, brine_set_attr_int(b, "steps", 1));
    OK(b, brine_set_attr_int(b, "Created", 1));
    OK(b, brine_set_attr_int(b, "brine", 1));
    OK(b, brine_set_attr_int(b, "brine-x", 1));
    OK(b, brine_set_attr_int(b, "x_brine_", 1));
    OK(b, brine_set_attr_int(b, " ", 1));
    OK(b, brine_set_attr_int(b, "\xf4\x8f\xbf\xbf", 1)); /* U+10FFFF */
    assert_int_equal(b->nattrs, 8);

    /* NULL context. */
    assert_int_equal(brine_set_attr_int(NULL, "a", 1), BRINE_EINVAL);
    assert_int_equal(brine_set_attr_double(NULL, "a", 1), BRINE_EINVAL);
    assert_int_equal(brine_set_attr_string(NULL, "a", "v"), BRINE_EINVAL);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_value_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "title", NULL));
    MSG_HAS(b, "the value of attribute 'title' is NULL");
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "title", "caf\xe9"));
    MSG_HAS(b, "the value of attribute 'title' is not valid UTF-8");
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "title", "\xed\xbf\xbf"));
    MSG_HAS(b, "'title' is not valid UTF-8");
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "title", "\xf4\x90\x80\x80")); /* > U+10FFFF */
    MSG_HAS(b, "'title' is not valid UTF-8");
    assert_int_equal(b->nattrs, 0);

    /* A failed replacement keeps the old value. */
    OK(b, brine_set_attr_string(b, "title", "old"));
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "title", "bad\xff"));
    assert_int_equal(b->nattrs, 1);
    assert_int_equal(b->attrs[0].type, BRINE_ATTR_STRING);
    assert_string_equal(b->attrs[0].s, "old");

    /* Strings up to BRINE_H5_ATTR_STRING_MAX bytes, which readers accept. */
    char *big = malloc(BRINE_H5_ATTR_STRING_MAX + 2);
    assert_non_null(big);
    memset(big, 'b', BRINE_H5_ATTR_STRING_MAX + 1);
    big[BRINE_H5_ATTR_STRING_MAX + 1] = '\0';
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_string(b, "big", big));
    MSG_HAS(b, "the value of attribute 'big' is 1048577 bytes long");
    big[BRINE_H5_ATTR_STRING_MAX] = '\0';
    OK(b, brine_set_attr_string(b, "big", big));
    OK(b, brine_save(b, 1));
    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 1);
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    OK(b, read_attrs(path, &v, &n, &err));
    want_string(v, n, "big", big);
    want_string(v, n, "title", "old");
    brine_h5__free_attrs(NULL, v, n);
    free(big);
    brine_close(b);
    tu_rmtree(dir);
}

/* At most BRINE_H5_USER_ATTRS_MAX attributes, so that readers never refuse a file brine wrote. */
static void test_too_many(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    char name[32];
    for (int i = 0; i < BRINE_H5_USER_ATTRS_MAX; i++) {
        snprintf(name, sizeof name, "a%05d", i);
        OK(b, brine_set_attr_int(b, name, i));
    }
    EXPECT_RC(b, BRINE_EINVAL, brine_set_attr_int(b, "one_more", 1));
    MSG_HAS(b, "'one_more'");
    MSG_HAS(b, "at most");
    OK(b, brine_set_attr_double(b, "a00007", 7.5)); /* replacing is still fine */
    OK(b, brine_save(b, 2));
    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 2);
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    OK(b, read_attrs(path, &v, &n, &err));
    assert_int_equal(n, BRINE_H5_USER_ATTRS_MAX + 4); /* brine_format, brine_host, brine_threads, step */
    want_sorted(v, n);
    want_double(v, n, "a00007", 7.5);
    want_int(v, n, "a04000", 4000);
    brine_h5__free_attrs(NULL, v, n);
    brine_close(b);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Replacement and failing allocations                                      */
/* ------------------------------------------------------------------------ */

static void test_replace(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    OK(b, brine_set_attr_int(b, "zeta", 1));
    OK(b, brine_set_attr_string(b, "alpha", "first"));
    OK(b, brine_set_attr_double(b, "mid", 2.5));
    /* Each name changes type; positions stay those of the first set. */
    OK(b, brine_set_attr_string(b, "zeta", "now a string"));
    OK(b, brine_set_attr_int(b, "alpha", -9));
    OK(b, brine_set_attr_double(b, "mid", 3.5));
    OK(b, brine_set_attr_double(b, "zeta", 0.25));
    OK(b, brine_set_attr_string(b, "zeta", "again"));
    assert_int_equal(b->nattrs, 3);
    assert_string_equal(b->attrs[0].name, "zeta");
    assert_int_equal(b->attrs[0].type, BRINE_ATTR_STRING);
    assert_string_equal(b->attrs[0].s, "again");
    assert_string_equal(b->attrs[1].name, "alpha");
    assert_int_equal(b->attrs[1].type, BRINE_ATTR_INT);
    assert_null(b->attrs[1].s);
    assert_string_equal(b->attrs[2].name, "mid");

    OK(b, brine_save(b, 4));
    OK(b, brine_set_attr_int(b, "later", 5)); /* not in step 4 */
    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 4);
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    OK(b, read_attrs(path, &v, &n, &err));
    want_sorted(v, n);
    want_string(v, n, "zeta", "again");
    want_int(v, n, "alpha", -9);
    want_double(v, n, "mid", 3.5);
    want_absent(v, n, "later");
    brine_h5__free_attrs(NULL, v, n);
    brine_close(b);
    tu_rmtree(dir);
}

/*
 * Every allocation of a set failing in turn (N = 1, 2, ... until it
 * succeeds): BRINE_ENOMEM naming the attribute, the context unchanged and
 * usable, nothing leaked.  Adds at capacity (the array grows) and replaces.
 */
static void test_enomem(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    fail_alloc fa = {0, 0, 0};
    const brine_allocator al = {fa_alloc, fa_free, &fa};
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = &al;
    brine *b = tu_open(dir, &o);
    char name[32];
    for (int i = 0; i < 8; i++) { /* fills the first capacity */
        snprintf(name, sizeof name, "k%d", i);
        OK(b, brine_set_attr_string(b, name, "value"));
    }
    assert_int_equal(b->nattrs, b->attrs_cap);

    enum { ADD, REPLACE_STRING, REPLACE_INT, NCASES };
    for (int c = 0; c < NCASES; c++) {
        int succeeded = 0;
        for (long fail_n = 1; !succeeded; fail_n++) {
            const size_t before = b->nattrs;
            fa.fail_at = fa.count + fail_n;
            int rc = c == ADD              ? brine_set_attr_string(b, "added", "new value")
                     : c == REPLACE_STRING ? brine_set_attr_string(b, "k3", "replaced")
                                           : brine_set_attr_int(b, "k5", 55);
            fa.fail_at = 0;
            if (rc == 0) {
                succeeded = 1;
                break;
            }
            assert_true(fail_n < 10);
            EXPECT_RC(b, BRINE_ENOMEM, rc);
            MSG_HAS(b, c == ADD ? "'added'" : c == REPLACE_STRING ? "'k3'" : "'k5'");
            MSG_HAS(b, "out of memory");
            assert_int_equal(b->nattrs, before);
            if (c != ADD) {
                const brine_attr_val *a = &b->attrs[c == REPLACE_STRING ? 3 : 5];
                assert_int_equal(a->type, BRINE_ATTR_STRING);
                assert_string_equal(a->s, "value");
            }
            /* Still usable. */
            OK(b, brine_set_attr_int(b, "k0", fail_n));
            OK(b, brine_set_attr_string(b, "k0", "value"));
        }
    }
    OK(b, brine_save(b, 3));
    brine_close(b);
    assert_int_equal(fa.live, 0);

    char path[1024];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 3);
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    assert_int_equal(read_attrs(path, &v, &n, &err), 0);
    want_string(v, n, "added", "new value");
    want_string(v, n, "k3", "replaced");
    want_int(v, n, "k5", 55);
    want_string(v, n, "k0", "value");
    want_string(v, n, "k7", "value");
    brine_h5__free_attrs(NULL, v, n);

    /* brine_h5__read_attrs failing its allocations in turn: ENOMEM, nothing leaked. */
    int done = 0;
    for (long fail_n = 1; !done; fail_n++) {
        brine_h5_reader *r = NULL;
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        brine__error_clear(&err);
        assert_int_equal(brine_h5__open(&r, path, fapl, 1, &al, &err), 0);
        H5Pclose(fapl);
        fa.fail_at = fa.count + fail_n;
        v = (brine_attr_val *)&err; /* must be reset */
        n = 99;
        int rc = brine_h5__read_attrs(r, &v, &n, &err);
        fa.fail_at = 0;
        if (rc == 0) {
            want_string(v, n, "added", "new value");
            done = 1;
        } else {
            ERR_IS(err, BRINE_ENOMEM, "out of memory");
            assert_null(v);
            assert_int_equal(n, 0);
        }
        brine_h5__free_attrs(&al, v, n);
        brine_h5__close(r);
        assert_int_equal(fa.live, 0);
        assert_true(fail_n < 200);
    }
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Writing and reading back                                                 */
/* ------------------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
    (void)state;
    char path[1024];
    const char *dir = save_standard(path, sizeof path, 3);
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    assert_int_equal(read_attrs(path, &v, &n, &err), 0);
    want_sorted(v, n);
    want_standard(v, n);
    /* brine's own: the integers and brine_host; never the variable-length strings. */
    want_int(v, n, "brine_format", BRINE_FORMAT_VERSION);
    want_int(v, n, "step", 7);
    want_int(v, n, "brine_threads", 3);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    want_string(v, n, "brine_host", host);
    want_absent(v, n, "created");
    want_absent(v, n, "brine_version");
    assert_int_equal(n, 16 + 4);
    brine_h5__free_attrs(NULL, v, n);
    tu_rmtree(dir);

    /* threads = 0: OpenMP's default, the threads chunk coding uses. */
    dir = save_standard(path, sizeof path, 0);
    assert_int_equal(read_attrs(path, &v, &n, &err), 0);
    want_int(v, n, "brine_threads", omp_get_max_threads());
    assert_true(find(v, n, "brine_threads")->i >= 1);
    brine_h5__free_attrs(NULL, v, n);
    tu_rmtree(dir);

    /* No user metadata at all. */
    dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    OK(b, brine_save(b, 1));
    brine_close(b);
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 1);
    assert_int_equal(read_attrs(path, &v, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(v[0].name, "brine_format");
    assert_string_equal(v[1].name, "brine_host");
    assert_string_equal(v[2].name, "brine_threads");
    assert_string_equal(v[3].name, "step");
    brine_h5__free_attrs(NULL, v, n);
    tu_rmtree(dir);
}

/* HDF5 refusing an attribute (here: one that exists) is BRINE_EHDF5 naming it. */
static void test_write_failure(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/direct.h5", dir);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    const brine_h5_write_opts wo = {{0}, 1};
    brine_h5_writer *w = NULL;
    brine_error err;
    brine__error_clear(&err);
    assert_int_equal(brine_h5__create(&w, path, fapl, 1, &wo, NULL, &err), 0);
    char name_a[] = "dup", name_b[] = "dup", s[] = "text";
    brine_attr_val attrs[2] = {{name_a, BRINE_ATTR_INT, 1, 0, NULL},
                               {name_b, BRINE_ATTR_STRING, 0, 0, s}};
    assert_int_equal(brine_h5__write_user_attrs(w, attrs, 1, &err), 0);
    assert_int_equal(brine_h5__write_user_attrs(w, attrs + 1, 1, &err), BRINE_EHDF5);
    ERR_IS(err, BRINE_EHDF5, "attribute dup");
    brine_h5__abandon(w);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* Attributes of types brine_attr cannot hold are skipped; readable foreign ones are read. */
static void test_foreign_types(void **state)
{
    (void)state;
    char path[1024], copy[1100];
    const char *dir = save_standard(path, sizeof path, 1);
    snprintf(copy, sizeof copy, "%s/foreign.h5", dir);
    copy_file(path, copy);

    hid_t fapl = fapl_v110();
    hid_t f = H5Fopen(copy, H5F_ACC_RDWR, fapl);
    assert_true(f >= 0);
    /* Skipped. */
    {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        const char *s = "variable";
        add_attr(f, "zz_vlen", t, &s);
        H5Tclose(t);
    }
    {
        hid_t t = H5Tenum_create(H5T_STD_I8LE);
        int8_t e = 0;
        H5Tenum_insert(t, "FALSE", &e);
        e = 1;
        H5Tenum_insert(t, "TRUE", &e);
        add_attr(f, "zz_enum", t, &e);
        H5Tclose(t);
    }
    {
        const hsize_t dim = 3;
        hid_t t = H5Tarray_create2(H5T_STD_I32LE, 1, &dim);
        const int32_t a[3] = {1, 2, 3};
        add_attr(f, "zz_array", t, a);
        H5Tclose(t);
    }
    {
        hid_t t = H5Tcreate(H5T_COMPOUND, 16);
        H5Tinsert(t, "r", 0, H5T_IEEE_F64LE);
        H5Tinsert(t, "i", 8, H5T_IEEE_F64LE);
        const double c[2] = {1, 2};
        add_attr(f, "zz_compound", t, c);
        H5Tclose(t);
    }
    {
        const uint64_t u = UINT64_MAX;
        add_attr(f, "zz_u64max", H5T_STD_U64LE, &u);
        const uint64_t big = (uint64_t)INT64_MAX + 1;
        add_attr(f, "zz_u64big", H5T_STD_U64LE, &big);
    }
    {
        hid_t t = fixed_string(4, H5T_CSET_UTF8, H5T_STR_NULLPAD);
        add_attr(f, "zz_bad_utf8", t, "ab\xff" "c");
        H5Tclose(t);
        add_attr(f, "bad\xff" "name", H5T_STD_I64LE, &(int64_t){1});
    }
    {
        hid_t space = H5Screate_simple(1, (const hsize_t[]){1}, NULL);
        hid_t a = H5Acreate2(f, "zz_1d", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        const int64_t one = 1;
        assert_true(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &one) >= 0);
        H5Aclose(a);
        H5Sclose(space);
        add_attr(f, "zz_bitfield", H5T_STD_B8LE, &(uint8_t){1});
        hid_t opaque = H5Tcreate(H5T_OPAQUE, 4);
        add_attr(f, "zz_opaque", opaque, "abcd");
        H5Tclose(opaque);
    }
    /* Read (converted). */
    add_attr(f, "zz_u64ok", H5T_STD_U64LE, &(uint64_t){(uint64_t)INT64_MAX});
    add_attr(f, "zz_u8", H5T_STD_U8LE, &(uint8_t){200});
    add_attr(f, "zz_i16be", H5T_STD_I16BE, (const uint8_t[]){0xff, 0xfb}); /* -5 */
    add_attr(f, "zz_u32", H5T_STD_U32LE, &(uint32_t){4000000000u});
    add_attr(f, "zz_f32", H5T_IEEE_F32LE, &(float){1.5f});
    add_attr(f, "zz_f64be", H5T_IEEE_F64BE, (const uint8_t[]){0xc0, 0x04, 0, 0, 0, 0, 0, 0});
    {
        hid_t t = fixed_string(6, H5T_CSET_ASCII, H5T_STR_NULLPAD);
        add_attr(f, "zz_inner_nul", t, "ab\0cd");
        H5Tclose(t);
        t = fixed_string(5, H5T_CSET_ASCII, H5T_STR_NULLTERM);
        add_attr(f, "zz_nullterm", t, "abcd");
        H5Tclose(t);
        t = fixed_string(6, H5T_CSET_ASCII, H5T_STR_SPACEPAD);
        add_attr(f, "zz_spacepad", t, "ab    ");
        H5Tclose(t);
    }
    H5Fclose(f);

    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;
    assert_int_equal(read_attrs(copy, &v, &n, &err), 0);
    want_sorted(v, n);
    want_standard(v, n);
    want_absent(v, n, "zz_vlen");
    want_absent(v, n, "zz_enum");
    want_absent(v, n, "zz_array");
    want_absent(v, n, "zz_compound");
    want_absent(v, n, "zz_u64max");
    want_absent(v, n, "zz_u64big");
    want_absent(v, n, "zz_bad_utf8");
    want_absent(v, n, "bad\xff" "name");
    want_absent(v, n, "zz_1d");
    want_absent(v, n, "zz_bitfield");
    want_absent(v, n, "zz_opaque");
    want_int(v, n, "zz_u64ok", INT64_MAX);
    want_int(v, n, "zz_u8", 200);
    want_int(v, n, "zz_i16be", -5);
    want_int(v, n, "zz_u32", 4000000000);
    want_double(v, n, "zz_f32", 1.5);
    want_double(v, n, "zz_f64be", -2.5);
    want_string(v, n, "zz_inner_nul", "ab");
    want_string(v, n, "zz_nullterm", "abcd");
    want_string(v, n, "zz_spacepad", "ab    ");
    assert_int_equal(n, 16 + 4 + 9);
    brine_h5__free_attrs(NULL, v, n);

    /* brine_restore still takes the checkpoint with all of these in it. */
    copy_file(copy, path);
    brine *b = tu_open(dir, NULL);
    double x[100];
    const size_t shape[1] = {100};
    OK(b, brine_register(b, "x", BRINE_F64, x, 1, shape, 0));
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 7);
    assert_true(x[99] == 49.5);
    brine_close(b);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* Oversized files: a string beyond BRINE_H5_ATTR_STRING_MAX, more than BRINE_H5_ATTRS_MAX attributes. */
static void test_oversized(void **state)
{
    (void)state;
    char path[1024], copy[1100];
    const char *dir = save_standard(path, sizeof path, 1);
    hid_t fapl = fapl_v110();
    brine_attr_val *v = NULL;
    size_t n = 0;
    brine_error err;

    snprintf(copy, sizeof copy, "%s/bigstring.h5", dir);
    copy_file(path, copy);
    hid_t f = H5Fopen(copy, H5F_ACC_RDWR, fapl);
    assert_true(f >= 0);
    char *big = calloc(BRINE_H5_ATTR_STRING_MAX + 1, 1);
    assert_non_null(big);
    memset(big, 'x', 10);
    hid_t t = fixed_string(BRINE_H5_ATTR_STRING_MAX + 1, H5T_CSET_UTF8, H5T_STR_NULLPAD);
    add_attr(f, "huge", t, big);
    H5Tclose(t);
    H5Fclose(f);
    free(big);
    v = (brine_attr_val *)&err;
    assert_int_equal(read_attrs(copy, &v, &n, &err), BRINE_ECORRUPT);
    ERR_IS(err, BRINE_ECORRUPT, "'huge' is a string of 1048577 bytes");
    ERR_IS(err, BRINE_ECORRUPT, copy);
    assert_null(v);
    assert_int_equal(n, 0);

    snprintf(copy, sizeof copy, "%s/many.h5", dir);
    copy_file(path, copy);
    f = H5Fopen(copy, H5F_ACC_RDWR, fapl);
    assert_true(f >= 0);
    /* 16 user + 6 brine attributes already. */
    char name[32];
    for (int i = 0; i < BRINE_H5_ATTRS_MAX - 22; i++) {
        snprintf(name, sizeof name, "m%05d", i);
        add_attr(f, name, H5T_STD_I64LE, &(int64_t){i});
    }
    H5Fclose(f);
    assert_int_equal(read_attrs(copy, &v, &n, &err), 0);
    assert_int_equal(n, BRINE_H5_ATTRS_MAX - 2); /* created, brine_version skipped */
    want_sorted(v, n);
    brine_h5__free_attrs(NULL, v, n);
    f = H5Fopen(copy, H5F_ACC_RDWR, fapl);
    add_attr(f, "one_too_many", H5T_STD_I64LE, &(int64_t){1});
    H5Fclose(f);
    assert_int_equal(read_attrs(copy, &v, &n, &err), BRINE_ECORRUPT);
    ERR_IS(err, BRINE_ECORRUPT, "more than 4096 root attributes");
    assert_null(v);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* The file as stock tools see it                                           */
/* ------------------------------------------------------------------------ */

/* Runs cmd, returning its whole standard output (malloc'd), or NULL when it fails. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    if (pclose(p) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The block of h5dump's output describing attribute name, up to the next attribute (in place). */
static char *dump_block(char *dump, const char *name)
{
    char head[300];
    snprintf(head, sizeof head, "ATTRIBUTE \"%s\" {", name);
    char *start = strstr(dump, head);
    if (!start) {
        print_error("h5dump shows no attribute %s:\n%s\n", name, dump);
        fail();
    }
    char *end = strstr(start + 1, "ATTRIBUTE \"");
    if (end)
        *end = '\0';
    return start;
}

static void block_has(const char *block, const char *needle)
{
    if (!strstr(block, needle)) {
        print_error("h5dump block lacks \"%s\":\n%s\n", needle, block);
        fail();
    }
}

static void check_string_block(char *dump, const char *name, size_t strsize)
{
    char *copy = strdup(dump);
    assert_non_null(copy);
    const char *block = dump_block(copy, name);
    char want[64];
    snprintf(want, sizeof want, "STRSIZE %zu;", strsize);
    block_has(block, "H5T_STRING");
    block_has(block, want);
    block_has(block, "STRPAD H5T_STR_NULLPAD;");
    block_has(block, "CSET H5T_CSET_UTF8;");
    block_has(block, "CTYPE H5T_C_S1;");
    block_has(block, "DATASPACE  SCALAR");
    free(copy);
}

static void check_type_block(char *dump, const char *name, const char *type)
{
    char *copy = strdup(dump);
    assert_non_null(copy);
    const char *block = dump_block(copy, name);
    block_has(block, type);
    block_has(block, "DATASPACE  SCALAR");
    free(copy);
}

static void test_h5dump(void **state)
{
    (void)state;
    if (system("command -v h5dump >/dev/null 2>&1") != 0)
        skip();
    char path[1024], cmd[1200];
    const char *dir = save_standard(path, sizeof path, 2);
    snprintf(cmd, sizeof cmd, "h5dump -A '%s'", path);
    char *dump = run(cmd);
    assert_non_null(dump);
    check_string_block(dump, "title", strlen(TITLE));
    check_string_block(dump, "emoji", strlen(emoji));
    check_string_block(dump, "empty", 1);
    check_type_block(dump, "nx", "DATATYPE  H5T_STD_I64LE");
    check_type_block(dump, "imin", "DATATYPE  H5T_STD_I64LE");
    check_type_block(dump, "dt", "DATATYPE  H5T_IEEE_F64LE");
    check_type_block(dump, "brine_threads", "DATATYPE  H5T_STD_I64LE");
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    check_string_block(dump, "brine_host", host[0] ? strlen(host) : 1);
    free(dump);
    tu_rmtree(dir);
}

/* h5py reads the values: strings as numpy.bytes_, integers as int64, doubles as float64. */
static void test_h5py(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0)
        skip();
    char path[1024], cmd[2000];
    const char *dir = save_standard(path, sizeof path, 2);
    /* One line per attribute: name (hex), numpy type name, value (hex of the bytes, or repr). */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '"
             "import sys, h5py\n"
             "with h5py.File(sys.argv[1], \"r\") as f:\n"
             "    for k in sorted(f.attrs):\n"
             "        v = f.attrs[k]\n"
             "        s = v.hex() if isinstance(v, bytes) else str(v)\n"
             "        print(k.encode().hex(), type(v).__name__, s)\n"
             "' '%s'",
             path);
    char *raw = run(cmd);
    assert_non_null(raw);
    /* A newline in front, so that every line, the first too, is matched whole. */
    char *out = malloc(strlen(raw) + 2);
    assert_non_null(out);
    out[0] = '\n';
    strcpy(out + 1, raw);
    free(raw);
    const struct {
        const char *name, *type, *value;
    } want[] = {
        {"title", "bytes_", TITLE}, {"emoji", "bytes_", emoji}, {"empty", "bytes_", ""},
        {"nx", "int64", "1024"},    {"imin", "int64", "-9223372036854775808"},
        {"dt", "float64", "0.125"}, {"negzero", "float64", "-0.0"},
        {"brine_threads", "int64", "2"},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        char line[600] = "\n";
        size_t used = 1;
        for (const char *c = want[k].name; *c; c++)
            used += (size_t)snprintf(line + used, sizeof line - used, "%02x", (unsigned char)*c);
        used += (size_t)snprintf(line + used, sizeof line - used, " %s ", want[k].type);
        if (strcmp(want[k].type, "bytes_") == 0)
            for (const char *c = want[k].value; *c; c++)
                used += (size_t)snprintf(line + used, sizeof line - used, "%02x", (unsigned char)*c);
        else
            used += (size_t)snprintf(line + used, sizeof line - used, "%s", want[k].value);
        snprintf(line + used, sizeof line - used, "\n");
        if (!strstr(out, line)) {
            print_error("h5py output lacks the line \"%s\" (%s):\n%s\n", line, want[k].name, out);
            fail();
        }
    }
    free(out);
    tu_rmtree(dir);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests print their own diagnostics */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_enomem),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_foreign_types),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_h5dump),
        cmocka_unit_test(test_h5py),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
