/*
 * The tools' API on multi-rank checkpoint directories written by the library
 * itself (the collective layer with a group of one, as tests/mpi/
 * test_coll_solo.c drives it, so every build runs this): brine_list's
 * BRINE_ENTRY_MULTIRANK and temporary directories, brine_manifest_read,
 * brine_rank_file_check and brine_prune, which must agree with what a
 * restore of the same run accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../c/test_util.h"
#include "../c/solo_group.h"

static double x[256];

static brine *open_solo(const char *dir)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.keep_last = 0; /* keep everything: the test prunes by hand */
    brine *b = tu_open(dir, &o);
    OK(b, brine_coll__attach(b, tu_solo_group()));
    const size_t shape[1] = {256};
    OK(b, brine_register(b, "x", BRINE_F64, x, 1, shape, 0));
    return b;
}

static void cdir_of(char *out, size_t n, const char *dir, int64_t step)
{
    snprintf(out, n, "%s/ckpt-%012lld", dir, (long long)step);
}

static void test_list_manifest_check_prune(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char cdir[4096], file[4200], tmp[4096];
    brine *b = open_solo(dir);
    for (int64_t s = 1; s <= 4; s++) {
        for (int i = 0; i < 256; i++)
            x[i] = (double)(s * 1000 + i);
        OK(b, brine_save(b, s));
    }
    brine_close(b);
    snprintf(tmp, sizeof tmp, "%s/.ckpt-000000000005.tmp-123", dir);
    assert_int_equal(mkdir(tmp, 0777), 0);

    /* brine_list: four committed directories (size: their one rank file), then the temporary one. */
    brine_listing *l = NULL;
    assert_int_equal(brine_list(&l, dir, NULL, NULL), 0);
    assert_int_equal(brine_listing_count(l), 5);
    for (size_t i = 0; i < 4; i++) {
        brine_entry e;
        struct stat st;
        assert_int_equal(brine_listing_entry(l, i, &e), 0);
        assert_int_equal(e.kind, BRINE_ENTRY_MULTIRANK);
        assert_int_equal(e.step, (int64_t)i + 1);
        assert_string_equal(e.prefix, "ckpt");
        snprintf(file, sizeof file, "%s/rank-0.h5", e.path);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(e.size, (uint64_t)st.st_size);
    }
    brine_entry t;
    assert_int_equal(brine_listing_entry(l, 4, &t), 0);
    assert_int_equal(t.kind, BRINE_ENTRY_TEMPORARY);
    assert_int_equal(t.step, 5);
    assert_string_equal(t.name, ".ckpt-000000000005.tmp-123");
    brine_listing_free(l);

    /* brine_manifest_read: what the library wrote, size and CRC-32 of the rank file. */
    cdir_of(cdir, sizeof cdir, dir, 4);
    int64_t step = -1;
    int nranks = 0;
    brine_rank_file rf[2];
    memset(rf, 0xff, sizeof rf);
    assert_int_equal(brine_manifest_read(cdir, NULL, &step, &nranks, rf, 2), 0);
    assert_int_equal(step, 4);
    assert_int_equal(nranks, 1);
    snprintf(file, sizeof file, "%s/rank-0.h5", cdir);
    size_t len = 0;
    uint8_t *bytes = tu_read_file(file, &len);
    assert_non_null(bytes);
    assert_int_equal(rf[0].size, len);
    assert_int_equal(rf[0].crc, (uint32_t)crc32(0L, bytes, (uInt)len));
    assert_int_equal(rf[1].size, UINT64_MAX); /* beyond nranks: untouched */
    free(bytes);
    assert_int_equal(brine_rank_file_check(cdir, 0, NULL), 0);
    assert_int_equal(brine_rank_file_check(cdir, 1, NULL), BRINE_ENOTFOUND);
    assert_non_null(strstr(brine_open_errmsg(), "there is no rank 1"));
    assert_int_equal(brine_rank_file_check(dir, 0, NULL), BRINE_EINVAL);
    assert_int_equal(brine_manifest_read(file, NULL, NULL, &nranks, NULL, 0), BRINE_EINVAL);
    assert_int_equal(brine_manifest_read(NULL, NULL, NULL, &nranks, NULL, 0), BRINE_EINVAL);

    /* Damage step 4's rank file: the check names it, expected vs found. */
    assert_int_equal(tu_flip_bit(file, len / 2, 3), 0);
    assert_int_equal(brine_rank_file_check(cdir, 0, NULL), BRINE_ECORRUPT);
    assert_non_null(strstr(brine_open_errmsg(), "rank-0.h5: the manifest records"));
    /* Step 3 loses its manifest. */
    cdir_of(cdir, sizeof cdir, dir, 3);
    snprintf(file, sizeof file, "%s/manifest", cdir);
    assert_int_equal(remove(file), 0);
    assert_int_equal(brine_manifest_read(cdir, NULL, NULL, &nranks, NULL, 0), BRINE_ECORRUPT);
    assert_non_null(strstr(brine_open_errmsg(), "manifest is missing"));

    /* Prune keeps the newest (4) and the newest that verifies (2); 1 goes, the temporary stays. */
    size_t deleted = 0;
    assert_int_equal(brine_prune(dir, "ckpt", 1, 0, NULL, &deleted), 0);
    assert_int_equal(deleted, 2);
    for (int64_t s = 1; s <= 4; s++) {
        cdir_of(cdir, sizeof cdir, dir, s);
        assert_int_equal(tu_file_exists(cdir), s == 2 || s == 4);
    }
    assert_int_equal(tu_file_exists(tmp), 1);
    assert_int_equal(tu_count_entries(dir, "."), 1);

    /* A restore of the run agrees: 4 is damaged, 2 is what it falls back to. */
    b = open_solo(dir);
    memset(x, 0, sizeof x);
    step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 2);
    assert_true(x[7] == 2007.0);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_prune_refuses_when_no_directory_verifies(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char cdir[4096], file[4200];
    brine *b = open_solo(dir);
    OK(b, brine_save(b, 7));
    OK(b, brine_save(b, 8));
    brine_close(b);
    for (int64_t s = 7; s <= 8; s++) {
        cdir_of(cdir, sizeof cdir, dir, s);
        snprintf(file, sizeof file, "%s/rank-0.h5", cdir);
        assert_int_equal(remove(file), 0);
    }
    size_t deleted = 99;
    assert_int_equal(brine_prune(dir, "ckpt", 1, 0, NULL, &deleted), BRINE_ECORRUPT);
    assert_int_equal(deleted, 0);
    assert_non_null(strstr(brine_open_errmsg(), "nothing was deleted"));
    assert_non_null(strstr(brine_open_errmsg(), "rank-0.h5 is missing"));
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 2);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_manifest_check_prune),
        cmocka_unit_test(test_prune_refuses_when_no_directory_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
