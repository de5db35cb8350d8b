/*
 * Regression test (label quick): a damaged root attribute "step" must not make
 * brine_restore report a wrong step.  It was once unchecked, so a flipped bit
 * made restore return 0 with the right data and a wrong step, and a resumed
 * run continued from the wrong step.  Now the 1.10 file format's object
 * header checksum covers it and restore compares it with the file name.
 *
 * Reproduction: save step 2, rewrite the attribute to 7 (as a bit flip
 * would), restore: must fail or report step 2.
 */
#include <hdf5.h>
#include <stdio.h>

#include "brine.h"
#include "rel_util.h"

int main(void)
{
    char dir[512], p[700];
    rel_state s;
    rel_mkdtemp(dir, sizeof dir, "bugstep");
    if (rel_state_init(&s, 4, 1))
        return 2;
    s.lean = 1;
    brine *b = rel_open(dir, &s, NULL, NULL, 0);
    rel_state_fill(&s, 2);
    if (!b || brine_save(b, 2))
        return 2;
    rel_ckpt_path(p, sizeof p, dir, 2);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "step", H5P_DEFAULT);
    const int64_t seven = 7;
    if (f < 0 || a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &seven) < 0)
        return 2;
    H5Aclose(a);
    H5Fclose(f);
    rel_state_poison(&s);
    int64_t got = -1;
    const int rc = brine_restore(b, &got);
    char why[256] = "";
    const int data_ok = rc == 0 && rel_state_check(&s, 2, why, sizeof why) == 0;
    printf("bug_step_unverified: restore of %s returned %d, step %lld, data of step 2: %s\n", p, rc,
           (long long)got, data_ok ? "yes" : "no");
    brine_close(b);
    rel_state_free(&s);
    rel_rmtree(dir);
    if (rc == 0 && got != 2) {
        printf("bug_step_unverified: BUG: success with a step that is not the checkpoint's\n");
        return 1;
    }
    return 0;
}
