/*
 * Crash torture: a child process (torture_saver) saves step after step; we
 * kill it with SIGKILL at a random moment, then restore in this process and
 * check brine's first promise:
 *
 *  - the restored step is >= the last step the child reported committed
 *    (it reports only after brine_save returned 0);
 *  - the restored data are bit-exactly those of the restored step (no torn load);
 *  - temporary files left by a killed child are gone once a later child has
 *    committed a save (they are removed by the next save);
 *  - rotation keeps at most keep_last (+1 when killed between publish and rotate,
 *    more when several children in a row were killed there before reporting).
 *
 * Three directories with states of different sizes (one ~1 MiB chunk, two,
 * five) make saves last from a few to ~100 milliseconds, so that kills land
 * in compression, HDF5 writes, fsync, rename, directory fsync and rotation.
 * Kill delays are uniform in microseconds over ~2 save durations of the class.
 *
 * usage: torture_crash SAVER KILLS [ENVVAR]
 *   SAVER: the torture_saver executable; KILLS: how many kills; ENVVAR: an
 *   environment variable that, when set, replaces KILLS (the long tier uses
 *   BRINE_TORTURE_KILLS).  BRINE_TORTURE_SEED replays a run (the seed is printed).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "brine.h"
#include "rel_util.h"

enum { NCLASS = 3, KEEP_LAST = 2 };
static const size_t class_rows[NCLASS] = {40, 300, 1200};

typedef struct dirstate {
    char path[600];
    int64_t committed; /* highest step ever reported committed, -1 before */
    double save_time;  /* one save, seconds (measured by the first run of the class) */
    int calibrated;
    int files; /* checkpoints found after the previous kill */
    long kills, commits, restored_ahead, mid_save;
} dirstate;

static uint64_t rng;
static uint64_t next_rand(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Reads what is available on fd into buf (appending); returns 0 at EOF, 1 otherwise. */
static int drain(int fd, char *buf, size_t cap, size_t *len, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return 1;
    if (*len + 1 >= cap) { /* keep the tail: only the last lines matter */
        memmove(buf, buf + cap / 2, *len - cap / 2);
        *len -= cap / 2;
    }
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    if (n <= 0)
        return 0;
    *len += (size_t)n;
    buf[*len] = '\0';
    return 1;
}

/* Last "C <step>" line in buf (complete lines only) and how many there are. */
static int64_t last_commit(const char *buf, long *count)
{
    int64_t last = -1;
    *count = 0;
    for (const char *p = buf; (p = strstr(p, "C ")); p += 2) {
        char *end;
        long long v = strtoll(p + 2, &end, 10);
        if (*end == '\n') {
            last = v;
            (*count)++;
        }
    }
    return last;
}

/* Temporary files of dir whose pid suffix is not pid: they should have been removed. */
static int stale_temps(const char *dir, pid_t pid, char *name, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int stale = 0;
    const struct dirent *e;
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".tmp-%ld", (long)pid);
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.' || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        const size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l < sl || strcmp(e->d_name + l - sl, suffix) != 0) {
            stale++;
            snprintf(name, n, "%s", e->d_name);
        }
    }
    closedir(d);
    return stale;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s TORTURE_SAVER KILLS [ENVVAR]\n", argv[0]);
        return 2;
    }
    const char *saver = argv[1];
    long kills = strtol(argv[2], NULL, 10);
    if (argc == 4) /* the long tier: the environment may scale it */
        kills = rel_env_long(argv[3], kills);
    rng = (uint64_t)rel_env_long("BRINE_TORTURE_SEED", (long)time(NULL) ^ (long)getpid());
    printf("torture_crash: %ld kills, seed %llu (BRINE_TORTURE_SEED to replay)\n", kills,
           (unsigned long long)rng);
    fflush(stdout);

    dirstate ds[NCLASS];
    rel_state st[NCLASS];
    char top[512];
    rel_mkdtemp(top, sizeof top, "torture");
    for (int c = 0; c < NCLASS; c++) {
        memset(&ds[c], 0, sizeof ds[c]);
        snprintf(ds[c].path, sizeof ds[c].path, "%s/class%d", top, c);
        ds[c].committed = -1;
        ds[c].save_time = 0.02;
        if (rel_state_init(&st[c], class_rows[c], 0))
            return 2;
    }

    const double t0 = rel_now();
    long early_kills = 0, total_commits = 0;
    for (long k = 0; k < kills; k++) {
        const int c = (int)(next_rand() % NCLASS);
        dirstate *d = &ds[c];
        int pfd[2];
        if (pipe(pfd)) {
            perror("pipe");
            return 2;
        }
        char rows[32], fdarg[16];
        snprintf(rows, sizeof rows, "%zu", class_rows[c]);
        snprintf(fdarg, sizeof fdarg, "%d", pfd[1]);
        fflush(NULL);
        const pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            close(pfd[0]);
            execl(saver, saver, d->path, rows, fdarg, (char *)NULL);
            perror("execl");
            _exit(127);
        }
        close(pfd[1]);
        char buf[8192];
        size_t len = 0;
        buf[0] = '\0';
        const int early = next_rand() % 8 == 0; /* kill during start-up / its own restore */
        double ready_at = rel_now();
        if (!early) {
            const double until = rel_now() + 30.0;
            while (!strchr(buf, 'R') && rel_now() < until)
                if (!drain(pfd[0], buf, sizeof buf, &len, 100))
                    break;
            ready_at = rel_now();
        }
        if (!d->calibrated && !early) {
            /* First run of a class: time three saves, then kill at once. */
            long n = 0;
            const double until = rel_now() + 60.0;
            while (last_commit(buf, &n), n < 3 && rel_now() < until)
                if (!drain(pfd[0], buf, sizeof buf, &len, 100))
                    break;
            if (n >= 3) {
                d->save_time = (rel_now() - ready_at) / (double)n;
                d->calibrated = 1;
            }
        } else {
            const double span = early ? 0.02 : 2.0 * d->save_time;
            const useconds_t delay = (useconds_t)((double)(next_rand() % 1000000) * span);
            struct timespec ts = {(time_t)(delay / 1000000), (long)(delay % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        while (drain(pfd[0], buf, sizeof buf, &len, 0))
            ;
        close(pfd[0]);
        d->kills++;
        early_kills += early;
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            rel_fail("kill %ld: the saver ended on its own (status %d) in %s", k, status, d->path);
            continue;
        }
        long n_commits = 0;
        const int64_t last = last_commit(buf, &n_commits);
        if (n_commits > 0) {
            if (last < d->committed)
                rel_fail("kill %ld: the saver committed step %lld after %lld", k, (long long)last,
                         (long long)d->committed);
            d->committed = last;
            d->commits += n_commits;
            total_commits += n_commits;
        }

        /* A temporary file left now means the kill landed inside a save. */
        if (rel_count_temps(d->path) > 0)
            d->mid_save++;
        if (n_commits > 0) {
            char name[256] = "";
            const int stale = stale_temps(d->path, pid, name, sizeof name);
            REL_CHECK(stale == 0, "kill %ld: %d temporary file(s) of an earlier saver remain after "
                      "a committed save, e.g. %s/%s", k, stale, d->path, name);
        }
        int64_t steps[64];
        const int nsteps = rel_list_steps(d->path, steps, 64);
        /* A reported save had rotated, so after it at most one more publish can be
         * unrotated; a child that reported nothing may have added one to what it found. */
        const int bound = n_commits > 0 ? KEEP_LAST + 1 : d->files + 1;
        REL_CHECK(nsteps <= bound, "kill %ld: %d checkpoints in %s with keep_last %d (at most %d "
                  "expected)", k, nsteps, d->path, KEEP_LAST, bound);
        d->files = nsteps;

        /* Restore into poisoned memory in this process. */
        rel_state *s = &st[c];
        rel_state_poison(s);
        brine *b = rel_open(d->path, s, NULL, NULL, KEEP_LAST);
        if (!b) {
            rel_fail("kill %ld: cannot open %s", k, d->path);
            continue;
        }
        int64_t got = -1;
        const int rc = brine_restore(b, &got);
        rel_checks++;
        if (d->committed >= 0) {
            if (rc != 0) {
                rel_fail("kill %ld: restore in %s failed (%d, %s) although step %lld was committed",
                         k, d->path, rc, brine_errmsg(b), (long long)d->committed);
            } else if (got < d->committed) {
                rel_fail("kill %ld: restored step %lld < committed step %lld in %s", k,
                         (long long)got, (long long)d->committed, d->path);
            }
        } else if (rc != 0 && rc != BRINE_ENOTFOUND) {
            rel_fail("kill %ld: restore in %s with nothing committed: %d %s", k, d->path, rc,
                     brine_errmsg(b));
        }
        if (rc == 0) {
            char why[256];
            rel_checks++;
            if (rel_state_check(s, got, why, sizeof why))
                rel_fail("kill %ld: TORN LOAD: restore of step %lld returned 0 with wrong data: %s",
                         k, (long long)got, why);
            if (got > d->committed) {
                d->restored_ahead++; /* published but killed before it could say so */
                d->committed = got;  /* the next saver resumes from it */
            }
        }
        brine_close(b);
        if (rel_failures > 20)
            break;
    }

    /* A save in this process removes every temporary leftover. */
    for (int c = 0; c < NCLASS; c++) {
        brine *b = rel_open(ds[c].path, &st[c], NULL, NULL, KEEP_LAST);
        if (!b)
            continue;
        rel_state_fill(&st[c], ds[c].committed + 1);
        const int rc = brine_save(b, ds[c].committed + 1);
        REL_CHECK(rc == 0, "final save in %s: %d %s", ds[c].path, rc, brine_errmsg(b));
        REL_CHECK(rel_count_temps(ds[c].path) == 0, "temporary files remain in %s after a save",
                  ds[c].path);
        brine_close(b);
    }

    const double secs = rel_now() - t0;
    long total_kills = 0, total_mid = 0, total_ahead = 0;
    for (int c = 0; c < NCLASS; c++) {
        printf("  class %d (%zu x %d f64): %ld kills, %ld commits, %ld mid-save kills (temp file "
               "left), %ld restores ahead of the last report, ~%.1f ms/save\n",
               c, class_rows[c], REL_BIG_COLS, ds[c].kills, ds[c].commits, ds[c].mid_save,
               ds[c].restored_ahead, ds[c].save_time * 1e3);
        total_kills += ds[c].kills;
        total_mid += ds[c].mid_save;
        total_ahead += ds[c].restored_ahead;
    }
    printf("torture_crash: %ld kills (%ld during start-up), %ld committed saves, %ld kills left a "
           "temp file, %ld restores found a step newer than the last report; %ld checks, %ld "
           "failures, %.1f s\n",
           total_kills, early_kills, total_commits, total_mid, total_ahead, rel_checks,
           rel_failures, secs);
    for (int c = 0; c < NCLASS; c++)
        rel_state_free(&st[c]);
    if (rel_failures == 0)
        rel_rmtree(top);
    else
        printf("torture_crash: directories kept in %s\n", top);
    return rel_failures ? 1 : 0;
}
