/*
 * The public API the brine command is built on (brine.h, "Tools"): listings,
 * prune, storage descriptions, streamed reads, brine_export's sink errors
 * and brine_dumps, through the shared library like any program.  The
 * command's behaviour end to end is tests/cli/test_cli.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brine.h"
#include "../c/test_util.h"

/* A small state: a C array, an F array, a scalar, a string, nested names. */
typedef struct state {
    double a[2][3];
    int16_t f[4 * 5];
    int64_t step;
    char title[32];
} state;

static brine *open_state(const char *dir, state *s, const brine_options *o)
{
    brine *b = tu_open(dir, o);
    const size_t sa[2] = {2, 3}, sf[2] = {4, 5};
    for (int i = 0; i < 6; i++)
        s->a[i / 3][i % 3] = 0.5 * i - 1;
    for (int i = 0; i < 20; i++)
        s->f[i] = (int16_t)(i * 7 - 30);
    s->step = 42;
    snprintf(s->title, sizeof s->title, "h\xc3\xa9llo");
    OK(b, brine_register(b, "grid/a", BRINE_F64, s->a, 2, sa, 0));
    OK(b, brine_register(b, "grid/f", BRINE_I16, s->f, 2, sf, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "step", BRINE_I64, &s->step, 0, NULL, 0));
    OK(b, brine_register_string(b, "title", s->title, sizeof s->title));
    return b;
}

static const void *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* Counting allocator: brine_dumps allocates through options.alloc and brine_dumps_free gives it back. */
static long live_blocks;
static void *count_alloc(void *ctx, size_t n)
{
    (void)ctx;
    live_blocks++;
    return malloc(n);
}
static void count_free(void *ctx, void *p)
{
    (void)ctx;
    live_blocks--;
    free(p);
}

static void test_dumps_inband(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir();
    state s;
    static const brine_allocator counting = {count_alloc, count_free, NULL};
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = &counting;
    brine *b = open_state(dir, &s, &o);
    uint8_t *buf = NULL;
    size_t len = 0;
    const long before = live_blocks;
    OK(b, brine_dumps(b, &buf, &len));
    assert_int_equal(live_blocks, before + 1);
    assert_true(len > 2 && buf[0] == 0x80 && buf[1] == 5 && buf[len - 1] == '.');
    /* Each array's bytes are in the stream, right after BYTEARRAY8 and their length. */
    uint8_t head[9] = {0x96, sizeof s.a, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t *at = find_bytes(buf, len, head, sizeof head);
    assert_non_null(at);
    assert_memory_equal(at + 9, s.a, sizeof s.a);
    head[1] = sizeof s.f;
    at = find_bytes(buf, len, head, sizeof head);
    assert_non_null(at);
    assert_memory_equal(at + 9, s.f, sizeof s.f);
    /* No out-of-band buffer: the pickle stands alone. */
    assert_null(find_bytes(buf, len, "\x97", 1));
    assert_non_null(find_bytes(buf, len, "h\xc3\xa9llo", 6));
    brine_dumps_free(b, buf);
    assert_int_equal(live_blocks, before);
    /* Nothing was written to the directory. */
    assert_int_equal(tu_count_entries(dir, ""), 0);

    EXPECT_RC(b, BRINE_EINVAL, brine_dumps(b, NULL, &len));
    memset(s.title, 'x', sizeof s.title); /* no NUL within its capacity */
    EXPECT_RC(b, BRINE_EINVAL, brine_dumps(b, &buf, &len));
    assert_non_null(strstr(brine_errmsg(b), "'title'"));
    assert_null(buf);
    assert_int_equal(brine_dumps(NULL, &buf, &len), BRINE_EINVAL);
    brine_dumps_free(b, NULL);
    assert_int_equal(brine_close(b), 0);
    tu_rmtree(dir);
}

static void test_list_and_prune(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir();
    state s;
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 0;
    brine *b = open_state(dir, &s, &o);
    for (int64_t step = 1; step <= 4; step++)
        OK(b, brine_save(b, step));
    assert_int_equal(brine_close(b), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/.ckpt-000000000005.h5.tmp-123", dir);
    assert_int_equal(tu_write_file(path, "x", 1), 0);
    snprintf(path, sizeof path, "%s/other-000000000002.h5", dir);
    assert_int_equal(tu_write_file(path, "y", 1), 0);
    snprintf(path, sizeof path, "%s/README", dir);
    assert_int_equal(tu_write_file(path, "z", 1), 0);

    brine_listing *l = NULL;
    assert_int_equal(brine_list(&l, dir, NULL, NULL), 0);
    assert_int_equal(brine_listing_count(l), 6);
    brine_entry e;
    assert_int_equal(brine_listing_entry(l, 0, &e), 0); /* "ckpt" sorts before "other" */
    assert_string_equal(e.prefix, "ckpt");
    assert_int_equal(e.step, 1);
    assert_int_equal(e.kind, BRINE_ENTRY_CHECKPOINT);
    assert_true(e.size > 1000 && e.mtime > 0);
    assert_int_equal(brine_listing_entry(l, 4, &e), 0);
    assert_int_equal(e.kind, BRINE_ENTRY_TEMPORARY);
    assert_int_equal(e.step, 5);
    assert_string_equal(e.name, ".ckpt-000000000005.h5.tmp-123");
    assert_int_equal(brine_listing_entry(l, 5, &e), 0);
    assert_string_equal(e.prefix, "other");
    assert_int_equal(brine_listing_entry(l, 6, &e), BRINE_EINVAL);
    brine_listing_free(l);
    assert_int_equal(brine_list(&l, dir, "other", NULL), 0);
    assert_int_equal(brine_listing_count(l), 1);
    brine_listing_free(l);
    brine_listing_free(NULL);

    assert_int_equal(brine_list(&l, dir, "../x", NULL), BRINE_EINVAL);
    assert_null(l);
    assert_non_null(strstr(brine_open_errmsg(), "../x"));
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(brine_list(&l, path, NULL, NULL), BRINE_ENOTFOUND);
    assert_non_null(strstr(brine_open_errmsg(), path));

    size_t deleted = 99;
    assert_int_equal(brine_prune(dir, "ckpt", 0, 0, NULL, &deleted), BRINE_EINVAL);
    assert_int_equal(deleted, 0);
    assert_int_equal(brine_prune(dir, "nope", 1, 0, NULL, &deleted), BRINE_ENOTFOUND);
    assert_int_equal(brine_prune(dir, "ckpt", 2, 0, NULL, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_false(tu_ckpt_exists(dir, "ckpt", 2));
    assert_true(tu_ckpt_exists(dir, "ckpt", 3) && tu_ckpt_exists(dir, "ckpt", 4));
    /* The other prefix, the temporary file and the unrelated file are untouched. */
    assert_int_equal(tu_count_entries(dir, ""), 5);
    tu_rmtree(dir);
}

typedef struct collect {
    uint8_t *data;
    size_t len, cap;
    int calls;
    int fail_with;
} collect;

static int collect_write(void *ctx, const void *data, size_t n)
{
    collect *c = ctx;
    c->calls++;
    if (c->fail_with)
        return c->fail_with;
    if (c->len + n > c->cap) {
        c->cap = 2 * (c->len + n);
        c->data = realloc(c->data, c->cap);
        assert_non_null(c->data);
    }
    memcpy(c->data + c->len, data, n);
    c->len += n;
    return 0;
}

static void test_reader_storage_stream_export(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir();
    state s;
    brine *b = open_state(dir, &s, NULL);
    OK(b, brine_save(b, 7));
    assert_int_equal(brine_close(b), 0);
    char path[4096];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", 7);
    brine_reader *r = NULL;
    assert_int_equal(brine_reader_open(&r, path, NULL, 0), 0);

    brine_var_storage st;
    assert_int_equal(brine_reader_var_storage(r, "grid/f", &st), 0);
    assert_int_equal(st.in_stream, 0);
    assert_true(st.stored_bytes > 0);
    assert_true(st.filters & BRINE_STORAGE_FLETCHER32);
    assert_int_equal(st.chunk_ndim, 2);
    assert_int_equal(st.chunk[0], 5); /* dataset dimensions: the F array's shape reversed */
    assert_int_equal(st.chunk[1], 4);
    assert_int_equal(brine_reader_var_storage(r, "step", &st), 0);
    assert_int_equal(st.in_stream, 1);
    assert_int_equal(st.stored_bytes, 0);
    assert_int_equal(brine_reader_var_storage(r, "nope", &st), BRINE_ENOTFOUND);
    assert_non_null(strstr(brine_reader_errmsg(r), "'nope'"));

    OK(NULL, brine_reader_verify(r, "grid/a"));
    OK(NULL, brine_reader_verify(r, "title")); /* in the stream: nothing to do */
    assert_int_equal(brine_reader_verify(r, "nope"), BRINE_ENOTFOUND);

    /* The streamed bytes are brine_read's, in the array's own order. */
    collect c = {0};
    assert_int_equal(brine_read_stream(r, "grid/f", collect_write, &c), 0);
    assert_int_equal(c.len, sizeof s.f);
    assert_memory_equal(c.data, s.f, sizeof s.f);
    c.len = 0;
    assert_int_equal(brine_read_stream(r, "step", collect_write, &c), BRINE_EMISMATCH);
    c.fail_with = -42; /* the sink's own code comes back as it is */
    assert_int_equal(brine_read_stream(r, "grid/a", collect_write, &c), -42);

    /* brine_export: a sink that fails stops it with BRINE_EIO (or ENOSPC as it is). */
    c.fail_with = -1;
    assert_int_equal(brine_export(r, collect_write, &c), BRINE_EIO);
    assert_non_null(strstr(brine_reader_errmsg(r), path));
    c.fail_with = BRINE_ENOSPC;
    assert_int_equal(brine_export(r, collect_write, &c), BRINE_ENOSPC);
    c.fail_with = 0;
    c.len = 0;
    c.calls = 0;
    assert_int_equal(brine_export(r, collect_write, &c), 0);
    assert_true(c.len > sizeof s.a + sizeof s.f && c.data[0] == 0x80 && c.data[c.len - 1] == '.');
    assert_non_null(find_bytes(c.data, c.len, s.a, sizeof s.a));
    assert_int_equal(brine_export(r, NULL, &c), BRINE_EINVAL);
    free(c.data);
    brine_reader_close(r);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dumps_inband),
        cmocka_unit_test(test_list_and_prune),
        cmocka_unit_test(test_reader_storage_stream_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
