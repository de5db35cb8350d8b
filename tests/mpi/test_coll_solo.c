/*
 * The collective layer (lib/core/coll.c) with a group of one, no MPI: so
 * that every build, MPI or not, tests the layout, the manifest, its
 * verification, rotation of whole directories, the rank-count check and a
 * failed commit (tests/mpi/test_mpi.c runs the same under mpirun).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../c/test_util.h"
#include "../c/solo_group.h"

static int fail_writes;

static int64_t failing_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    (void)ctx;
    return fail_writes ? -ENOSPC : brine_io_posix()->pwrite(NULL, fd, buf, n, off);
}

static double x[64];

static brine *open_solo(const char *dir, const brine_options *o)
{
    brine *b = tu_open(dir, o);
    OK(b, brine_coll__attach(b, tu_solo_group()));
    const size_t shape[1] = {64};
    OK(b, brine_register(b, "x", BRINE_F64, x, 1, shape, 0));
    return b;
}

static void fill(double v)
{
    for (int i = 0; i < 64; i++)
        x[i] = v + i;
}

static void path_of(char *out, size_t n, const char *dir, int64_t step, const char *file)
{
    snprintf(out, n, "%s/ckpt-%012lld%s%s", dir, (long long)step, file ? "/" : "", file ? file : "");
}

/* Writes text as dir's step manifest, with a correct checksum line. */
static void write_manifest(const char *dir, int64_t step, const char *text)
{
    char path[4096];
    path_of(path, sizeof path, dir, step, "manifest");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fprintf(f, "checksum %08lx\n", crc32(0L, (const unsigned char *)text, (uInt)strlen(text)));
    assert_int_equal(fclose(f), 0);
}

static void test_layout_rotation_and_manifest(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.keep_last = 2;
    tu_solo_closed = 0;
    brine *b = open_solo(dir, &o);
    for (int64_t s = 1; s <= 4; s++) {
        fill((double)s);
        OK(b, brine_save(b, s));
    }
    char path[4096];
    for (int64_t s = 1; s <= 4; s++) {
        path_of(path, sizeof path, dir, s, NULL);
        assert_int_equal(tu_file_exists(path), s >= 3); /* whole directories rotated */
    }
    assert_int_equal(tu_count_entries(dir, "."), 0);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 2);
    /* A bad step is every rank's: refused at once, nothing created. */
    EXPECT_RC(b, BRINE_EINVAL, brine_save(b, -1));
    EXPECT_RC(b, BRINE_EINVAL, brine_save_async(b, -1));
    assert_int_equal(tu_count_entries(dir, ""), 2);
    /* The rank file is an ordinary checkpoint of the step. */
    path_of(path, sizeof path, dir, 4, "rank-0.h5");
    brine_reader *r = NULL;
    OK(b, brine_reader_open(&r, path, NULL, BRINE_READER_VERIFY));
    assert_int_equal(brine_reader_step(r), 4);
    brine_reader_close(r);

    /* A damaged manifest: that checkpoint is not trusted, restore falls back. */
    path_of(path, sizeof path, dir, 4, "manifest");
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('X', f);
    fclose(f);
    int64_t step = -1;
    memset(x, 0, sizeof x);
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    assert_true(x[5] == 3.0 + 5);

    /* Written by 2 ranks: a mismatch naming both counts and the checkpoint. */
    path_of(path, sizeof path, dir, 4, NULL);
    tu_rmtree(path);
    char text[1024];
    uint64_t size = 0;
    path_of(path, sizeof path, dir, 3, "rank-0.h5");
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size = (uint64_t)ftell(f);
    fclose(f);
    snprintf(text, sizeof text,
             "brine-manifest 1\nprefix ckpt\nstep 3\nnranks 2\nrank 0 rank-0.h5 %llu 00000000\n"
             "rank 1 rank-1.h5 %llu 00000000\n",
             (unsigned long long)size, (unsigned long long)size);
    write_manifest(dir, 3, text);
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, &step));
    assert_non_null(strstr(brine_errmsg(b), "ckpt-000000000003 was saved by 2 ranks but this run has 1"));
    OK(b, brine_close(b));
    assert_int_equal(tu_solo_closed, 1); /* the group is closed with the context */
    tu_rmtree(dir);
}

static void test_rank_file_checked_against_manifest(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    brine *b = open_solo(dir, &o);
    fill(1.0);
    OK(b, brine_save(b, 1));
    fill(2.0);
    OK(b, brine_save(b, 2));
    /* A valid HDF5 file of another step in place of rank 0's: only the manifest tells. */
    char from[4096], to[4096];
    path_of(from, sizeof from, dir, 1, "rank-0.h5");
    path_of(to, sizeof to, dir, 2, "rank-0.h5");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 1);
    /* Every checkpoint rejected: the newest's reason first. */
    path_of(from, sizeof from, dir, 1, "manifest");
    assert_int_equal(unlink(from), 0);
    EXPECT_RC(b, BRINE_ECORRUPT, brine_restore(b, &step));
    assert_non_null(strstr(brine_errmsg(b), "the manifest records"));
    OK(b, brine_close(b));
    tu_rmtree(dir);
}

static void test_failed_commit_leaves_nothing(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_io_methods io = *brine_io_posix();
    io.pwrite = failing_pwrite;
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.io = &io;
    brine *b = open_solo(dir, &o);
    fill(1.0);
    OK(b, brine_save(b, 1));
    fail_writes = 1;
    EXPECT_RC(b, BRINE_ENOSPC, brine_save(b, 2));
    OK(b, brine_save_async(b, 3));
    EXPECT_RC(b, BRINE_ENOSPC, brine_wait(b));
    fail_writes = 0;
    assert_int_equal(tu_count_entries(dir, ""), 1); /* step 1 only, no temporary directory */
    fill(4.0);
    OK(b, brine_save_async(b, 4));
    OK(b, brine_wait(b));
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 2);
    /* A non-MPI context does not see directories. */
    brine *plain = tu_open(dir, NULL);
    const size_t shape[1] = {64};
    OK(plain, brine_register(plain, "x", BRINE_F64, x, 1, shape, 0));
    int64_t step = -1;
    EXPECT_RC(plain, BRINE_ENOTFOUND, brine_restore(plain, &step));
    OK(plain, brine_close(plain));
    OK(b, brine_close(b));
    tu_rmtree(dir);
}

static void test_nowait_refused(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.async_flags = BRINE_ASYNC_NOWAIT;
    brine *b = tu_open(dir, &o);
    tu_solo_closed = 0;
    assert_int_equal(brine_coll__attach(b, tu_solo_group()), BRINE_EINVAL);
    assert_non_null(strstr(brine_open_errmsg(), "BRINE_ASYNC_NOWAIT"));
    assert_int_equal(tu_solo_closed, 1);
    OK(b, brine_close(b));
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_rotation_and_manifest),
        cmocka_unit_test(test_rank_file_checked_against_manifest),
        cmocka_unit_test(test_failed_commit_leaves_nothing),
        cmocka_unit_test(test_nowait_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
