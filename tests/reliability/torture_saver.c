/*
 * The child of torture_crash: resumes from the newest checkpoint in DIR (if
 * any), then saves steps forever, keep_last 2, writing "R\n" once ready and
 * "C <step>\n" to the descriptor FD after each brine_save that returned 0
 * (the line is written with one write(2) and, when FD is a file, fsynced).
 * It is killed with SIGKILL by its parent; it never exits on its own unless
 * something fails (exit status 2 plus a message on stderr).
 *
 * usage: torture_saver DIR BIG_ROWS FD
 * Uses the public API only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brine.h"
#include "rel_util.h"

static void say(int fd, const char *line)
{
    const size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n)
        _exit(3);
    fsync(fd); /* EINVAL on a pipe: harmless */
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR BIG_ROWS FD\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const size_t rows = (size_t)strtoul(argv[2], NULL, 10);
    const int fd = atoi(argv[3]);
    rel_state s;
    if (rel_state_init(&s, rows, 0))
        return 2;
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 2;
    brine *b = NULL;
    int rc = brine_open(&b, dir, &o);
    if (rc || (rc = rel_state_register(b, &s))) {
        fprintf(stderr, "torture_saver: open/register: %d %s\n", rc,
                b ? brine_errmsg(b) : brine_open_errmsg());
        return 2;
    }
    int64_t step = 0;
    rc = brine_restore(b, &step);
    if (rc == BRINE_ENOTFOUND) {
        step = 0;
    } else if (rc) {
        fprintf(stderr, "torture_saver: restore: %d %s\n", rc, brine_errmsg(b));
        return 2;
    } else {
        char why[256];
        if (rel_state_check(&s, step, why, sizeof why)) {
            fprintf(stderr, "torture_saver: restored step %lld is wrong: %s\n", (long long)step,
                    why);
            return 2;
        }
        step++;
    }
    say(fd, "R\n");
    for (;; step++) {
        rel_state_fill(&s, step);
        if ((rc = brine_save(b, step))) {
            fprintf(stderr, "torture_saver: save %lld: %d %s\n", (long long)step, rc,
                    brine_errmsg(b));
            return 2;
        }
        char line[64];
        snprintf(line, sizeof line, "C %lld\n", (long long)step);
        say(fd, line);
    }
}
