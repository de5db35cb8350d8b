/*
 * Long tier: a state larger than 4 GiB (one array of 4.25 GiB, so every
 * 32-bit size or offset would overflow) saves and restores bit-exactly.
 * Needs about 9 GiB of memory and a minute; run with `ctest -L long`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "brine.h"
#include "test_util.h"

static void test_state_over_4gib(void **state)
{
    (void)state;
    const size_t rows = 4352, cols = (size_t)1 << 20; /* 2^32 + 2^28 bytes */
    const size_t n = rows * cols;
    uint8_t *data = malloc(n), *back = malloc(n);
    if (!data || !back) {
        free(data);
        free(back);
        skip(); /* not enough memory on this machine */
    }
    /* Compressible but not trivial: a slow ramp with a pseudo-random byte every 64. */
    uint64_t seed = 7;
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i >> 12);
    for (size_t i = 0; i < n; i += 64)
        data[i] = (uint8_t)tu_rand(&seed);
    int64_t step_var = 123;

    const char *dir = tu_tmpdir();
    const size_t shape[2] = {rows, cols};
    brine *b = NULL;
    assert_int_equal(brine_open(&b, dir, NULL), 0);
    assert_int_equal(brine_register(b, "big", BRINE_U8, data, 2, shape, 0), 0);
    assert_int_equal(brine_register(b, "step", BRINE_I64, &step_var, 0, NULL, 0), 0);
    int rc = brine_save(b, 1);
    if (rc)
        print_error("%s\n", brine_errmsg(b));
    assert_int_equal(rc, 0);
    brine_close(b);

    memset(back, 0, n);
    step_var = 0;
    assert_int_equal(brine_open(&b, dir, NULL), 0);
    assert_int_equal(brine_register(b, "big", BRINE_U8, back, 2, shape, 0), 0);
    assert_int_equal(brine_register(b, "step", BRINE_I64, &step_var, 0, NULL, 0), 0);
    int64_t step = -1;
    rc = brine_restore(b, &step);
    if (rc)
        print_error("%s\n", brine_errmsg(b));
    assert_int_equal(rc, 0);
    brine_close(b);
    assert_int_equal(step, 1);
    assert_int_equal(step_var, 123);
    assert_true(memcmp(data, back, n) == 0);
    tu_rmtree(dir);
    free(back);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_over_4gib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
