/*
 * Regression test (label quick): brine_restore of a checkpoint whose HDF5
 * global heap is damaged must fail cleanly, not crash or hang.
 * data/vlen_attr_crash.h5 is a checkpoint written by corrupt_bytes in the
 * older file format (lean state, step 2) with bit 6 of byte 1871 flipped.
 * Reading its variable-length string attributes made HDF5 1.10.8 segfault
 * (H5Aread -> H5T__conv_vlen -> H5HG_read) or loop forever; restore no
 * longer reads variable-length strings at all (docs/format.md, section 6).
 *
 * The restore runs in a child with a 20 s alarm; the test passes when the
 * child exits normally (restore failed cleanly or restored exactly).
 * usage: bug_vlen_attr_crash FILE
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brine.h"
#include "rel_util.h"

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    size_t len = 0;
    uint8_t *bytes = rel_read_file(argv[1], &len);
    if (!bytes)
        return 2;
    char dir[512], p[700];
    rel_mkdtemp(dir, sizeof dir, "bugvlen");
    rel_ckpt_path(p, sizeof p, dir, 2);
    const int written = rel_write_file(p, bytes, len);
    free(bytes);
    if (written)
        return 2;
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        rel_state s;
        if (rel_state_init(&s, 300, 1))
            _exit(2);
        s.lean = 1;
        brine *b = rel_open(dir, &s, NULL, NULL, 0);
        int64_t got = -1;
        const int rc = brine_restore(b, &got);
        char why[256] = "";
        if (rc == 0 && rel_state_check(&s, got, why, sizeof why) != 0) {
            printf("restore returned 0 with wrong data: %s\n", why);
            _exit(1);
        }
        printf("bug_vlen_attr_crash: restore returned %d: %s\n", rc, brine_errmsg(b));
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    rel_rmtree(dir);
    if (WIFSIGNALED(status)) {
        printf("bug_vlen_attr_crash: BUG: brine_restore %s (signal %d: %s)\n",
               WTERMSIG(status) == SIGALRM ? "hung" : "crashed", WTERMSIG(status),
               strsignal(WTERMSIG(status)));
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
