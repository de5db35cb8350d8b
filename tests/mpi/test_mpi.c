/*
 * Collective checkpoints (docs/mpi.md), run under mpirun by ctest:
 *   test_mpi SCENARIO DIR
 * Scenarios: commit, fallback, mismatch, async, signal, policy, open,
 * badstate, write (for
 * the Python tests: saves steps 1 and 2 of known data).  Every rank checks
 * what it can see; a failed check prints the rank, the line and the
 * library's message, and aborts the whole job (exit status non-zero).
 * Public API only (brine.h, brine_mpi.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brine.h"
#include "brine_mpi.h"

#define N 1000 /* doubles per rank */

static int rank, size;

#define CHECK(cond, b)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n  brine says: %s\n", rank,         \
                    __FILE__, __LINE__, #cond, (b) ? brine_errmsg(b) : brine_open_errmsg());      \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                          \
        }                                                                                          \
    } while (0)

/* ---- An I/O method table whose writes fail while `fail_writes` is set. ---- */

static int fail_writes;

static int64_t failing_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    (void)ctx;
    if (fail_writes)
        return -ENOSPC;
    return brine_io_posix()->pwrite(brine_io_posix()->ctx, fd, buf, n, off);
}

static brine_io_methods failing_io(void)
{
    brine_io_methods io = *brine_io_posix();
    io.pwrite = failing_pwrite;
    return io;
}

/* ---- helpers ---- */

static void fill(double *x, int64_t step)
{
    for (int i = 0; i < N; i++)
        x[i] = (double)step * 1e6 + rank * 1e3 + i * 0.25;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file, malloc'd; *n its size.  NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static int count_entries_starting(const char *dir, const char *start)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c '^%s' > /dev/null", dir, start);
    /* grep -c exits 0 when something matched. */
    return system(cmd) == 0;
}

static brine *open_ctx(const char *dir, MPI_Comm comm, const brine_io_methods *io, double *x)
{
    brine *b = NULL;
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.keep_last = 0;
    o.io = io;
    const int rc = brine_open_mpi(&b, dir, comm, &o);
    CHECK(rc == 0, NULL);
    const size_t shape[1] = {N};
    CHECK(brine_register(b, "x", BRINE_F64, x, 1, shape, 0) == 0, b);
    return b;
}

/* ---- scenarios ---- */

/* A save commits on every rank; one rank's failing write makes every rank fail, and nothing changes. */
static void scenario_commit(const char *dir)
{
    double x[N];
    brine_io_methods io = failing_io();
    brine *b = open_ctx(dir, MPI_COMM_WORLD, rank == 1 ? &io : NULL, x);
    char path[4096];

    fill(x, 1);
    CHECK(brine_save(b, 1) == 0, b);
    snprintf(path, sizeof path, "%s/ckpt-000000000001/manifest", dir);
    CHECK(exists(path), b);
    snprintf(path, sizeof path, "%s/ckpt-000000000001/rank-%d.h5", dir, rank);
    CHECK(exists(path), b);
    /* Each rank file is an ordinary checkpoint, readable alone. */
    brine_reader *r = NULL;
    CHECK(brine_reader_open(&r, path, NULL, BRINE_READER_VERIFY) == 0, b);
    CHECK(brine_reader_step(r) == 1, b);
    brine_reader_close(r);

    size_t before_n = 0;
    unsigned char *before = slurp(path, &before_n);
    CHECK(before != NULL, b);

    fill(x, 2);
    fail_writes = rank == 1;
    const int rc = brine_save(b, 2);
    fail_writes = 0;
    CHECK(rc != 0, b);
    if (rank == 1)
        CHECK(rc == BRINE_ENOSPC, b);
    else
        CHECK(rc == BRINE_ENOSPC && strstr(brine_errmsg(b), "rank 1 failed") &&
                  strstr(brine_errmsg(b), "no rank committed"), b);
    MPI_Barrier(MPI_COMM_WORLD);
    snprintf(path, sizeof path, "%s/ckpt-000000000002", dir);
    CHECK(!exists(path), b);
    CHECK(!count_entries_starting(dir, "\\.ckpt-"), b); /* the partial directory is gone */
    snprintf(path, sizeof path, "%s/ckpt-000000000001/rank-%d.h5", dir, rank);
    size_t after_n = 0;
    unsigned char *after = slurp(path, &after_n);
    CHECK(after && after_n == before_n && memcmp(before, after, before_n) == 0, b);
    free(before);
    free(after);
    MPI_Barrier(MPI_COMM_WORLD); /* every rank looked before the next save starts */

    /* A killed save's temporary directory is removed by the next save. */
    if (rank == 0) {
        snprintf(path, sizeof path, "%s/.ckpt-000000000009.tmp-1", dir);
        CHECK(mkdir(path, 0777) == 0, NULL);
        snprintf(path, sizeof path, "%s/.ckpt-000000000009.tmp-1/rank-0.h5", dir);
        FILE *f = fopen(path, "wb");
        CHECK(f && fputs("partial", f) >= 0 && fclose(f) == 0, NULL);
    }
    /* The next save works again (twice for one step: the second replaces the first), and
     * restore finds it on every rank. */
    fill(x, 42);
    CHECK(brine_save(b, 3) == 0, b);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(!count_entries_starting(dir, "\\.ckpt-"), b);
    MPI_Barrier(MPI_COMM_WORLD);
    fill(x, 3);
    CHECK(brine_save(b, 3) == 0, b);
    memset(x, 0, sizeof x);
    int64_t step = -1;
    CHECK(brine_restore(b, &step) == 0 && step == 3, b);
    double want[N];
    fill(want, 3);
    CHECK(memcmp(x, want, sizeof x) == 0, b);
    CHECK(brine_close(b) == 0, NULL);
}

/* One rank's newest file is damaged: every rank falls back to the previous checkpoint together. */
static void scenario_fallback(const char *dir)
{
    double x[N], want[N];
    brine *b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    char path[4096];
    fill(x, 1);
    CHECK(brine_save(b, 1) == 0, b);
    fill(x, 2);
    CHECK(brine_save(b, 2) == 0, b);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == size - 1) {
        /* One byte in the middle, same size: only the checksum can tell. */
        snprintf(path, sizeof path, "%s/ckpt-000000000002/rank-%d.h5", dir, rank);
        FILE *f = fopen(path, "r+b");
        CHECK(f != NULL, b);
        fseek(f, 0, SEEK_END);
        const long len = ftell(f);
        fseek(f, len / 2, SEEK_SET);
        const int c = fgetc(f);
        fseek(f, len / 2, SEEK_SET);
        fputc(c ^ 0x5a, f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    memset(x, 0, sizeof x);
    int64_t step = -1;
    CHECK(brine_restore(b, &step) == 0, b);
    CHECK(step == 1, b);
    fill(want, 1);
    CHECK(memcmp(x, want, sizeof x) == 0, b);

    /* A reader opened through brine_restore_begin falls back the same way. */
    brine_reader *r = NULL;
    CHECK(brine_restore_begin(b, &r, &step) == 0 && step == 1 && brine_reader_step(r) == 1, b);
    brine_reader_close(r);

    /* Every checkpoint damaged on one rank: every rank fails, naming the damage. */
    if (rank == size - 1) {
        snprintf(path, sizeof path, "%s/ckpt-000000000001/rank-%d.h5", dir, rank);
        CHECK(truncate(path, 100) == 0, b);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const int rc = brine_restore(b, &step);
    CHECK(rc == BRINE_ECORRUPT, b);
    CHECK(strstr(brine_errmsg(b), "could be restored by every one of the"), b);
    CHECK(brine_close(b) == 0, NULL);
}

/* A checkpoint of 2 ranks restored by a different number: EMISMATCH naming both counts. */
static void scenario_mismatch(const char *dir)
{
    double x[N];
    MPI_Comm half;
    CHECK(size >= 3, NULL);
    MPI_Comm_split(MPI_COMM_WORLD, rank < 2 ? 0 : MPI_UNDEFINED, rank, &half);
    if (half != MPI_COMM_NULL) {
        brine *b = open_ctx(dir, half, NULL, x);
        fill(x, 7);
        CHECK(brine_save(b, 7) == 0, b);
        CHECK(brine_close(b) == 0, NULL);
        MPI_Comm_free(&half);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    brine *b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    int64_t step = -1;
    const int rc = brine_restore(b, &step);
    char want[128];
    snprintf(want, sizeof want, "saved by 2 ranks but this run has %d", size);
    CHECK(rc == BRINE_EMISMATCH, b);
    CHECK(strstr(brine_errmsg(b), want) && strstr(brine_errmsg(b), "ckpt-000000000007"), b);
    CHECK(brine_close(b) == 0, NULL);
}

/* Asynchronous saves: committed at brine_wait; one rank's failure fails every rank there. */
static void scenario_async(const char *dir)
{
    double x[N], want[N];
    brine_io_methods io = failing_io();
    brine *b = open_ctx(dir, MPI_COMM_WORLD, rank == 0 ? &io : NULL, x);
    char path[4096];
    fill(x, 4);
    CHECK(brine_save_async(b, 4) == 0, b);
    fill(x, 99); /* the save has its own copy */
    CHECK(brine_wait(b) == 0, b);
    snprintf(path, sizeof path, "%s/ckpt-000000000004/manifest", dir);
    CHECK(exists(path), b);

    fail_writes = rank == 0; /* the background thread of rank 0 sees it */
    CHECK(brine_save_async(b, 5) == 0, b);
    const int rc = brine_wait(b);
    fail_writes = 0;
    CHECK(rc == BRINE_ENOSPC, b);
    if (rank != 0)
        CHECK(strstr(brine_errmsg(b), "rank 0 failed"), b);
    snprintf(path, sizeof path, "%s/ckpt-000000000005", dir);
    CHECK(!exists(path), b);

    /* A save left in flight is committed by brine_close. */
    fill(x, 6);
    CHECK(brine_save_async(b, 6) == 0, b);
    CHECK(brine_close(b) == 0, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    int64_t step = -1;
    memset(x, 0, sizeof x);
    CHECK(brine_restore(b, &step) == 0 && step == 6, b);
    fill(want, 6);
    CHECK(memcmp(x, want, sizeof x) == 0, b);
    CHECK(brine_close(b) == 0, NULL);
}

/* A signal to rank 1 only: every rank saves the same step and should exit. */
static void scenario_signal(const char *dir)
{
    double x[N];
    brine *b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    CHECK(brine_install_signals(b, NULL, 0) == 0, b);
    int64_t saved_at = -1, step = 0;
    for (step = 1; step <= 50 && !brine_should_exit(b); step++) {
        fill(x, step);
        if (rank == 1 && step == 5)
            raise(SIGUSR1);
        const int rc = brine_maybe_save(b, step);
        CHECK(rc >= 0, b);
        if (rc == 1) {
            CHECK(saved_at < 0, b);
            saved_at = step;
        }
    }
    CHECK(brine_should_exit(b), b);
    /* One call of latency: rank 1 saw it before its call at step 5, all act at step 6. */
    CHECK(saved_at == 6, b);
    int64_t lo = saved_at, hi = saved_at;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    CHECK(lo == hi, b);
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt-000000000006/manifest", dir);
    CHECK(exists(path), b);
    CHECK(brine_close(b) == 0, NULL);
}

/* every_seconds with a clock that runs on rank 0 only: the ranks still save at the same steps. */
static double fake_now;
static double fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void scenario_policy(const char *dir)
{
    double x[N];
    brine *b = NULL;
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    o.keep_last = 2;
    o.every_seconds = 10.0;
    o.async = 1;
    o.clock = fake_clock;
    CHECK(brine_open_mpi(&b, dir, MPI_COMM_WORLD, &o) == 0, NULL);
    const size_t shape[1] = {N};
    CHECK(brine_register(b, "x", BRINE_F64, x, 1, shape, 0) == 0, b);
    int64_t saves[8];
    int nsaves = 0;
    for (int64_t step = 1; step <= 40; step++) {
        fill(x, step);
        if (rank == 0)
            fake_now += 1.0; /* only rank 0's time passes */
        const int rc = brine_maybe_save(b, step);
        CHECK(rc >= 0, b);
        if (rc == 1 && nsaves < 8)
            saves[nsaves++] = step;
    }
    CHECK(brine_wait(b) == 0, b);
    CHECK(nsaves >= 3, b);
    int64_t all[8 * 64];
    CHECK(size <= 64, b);
    MPI_Allgather(saves, 8, MPI_INT64_T, all, 8, MPI_INT64_T, MPI_COMM_WORLD);
    int counts[64];
    MPI_Allgather(&nsaves, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int k = 0; k < size; k++) {
        CHECK(counts[k] == nsaves, b);
        CHECK(memcmp(&all[8 * k], saves, (size_t)nsaves * sizeof *saves) == 0, b);
    }
    /* keep_last 2: only whole directories of the two newest remain. */
    if (rank == 0) {
        char path[4096];
        for (int i = 0; i < nsaves; i++) {
            snprintf(path, sizeof path, "%s/ckpt-%012" PRId64, dir, saves[i]);
            CHECK(exists(path) == (i >= nsaves - 2), b);
        }
    }
    CHECK(brine_close(b) == 0, NULL);
}

/* brine_open_mpi fails on every rank when one cannot open; NOWAIT is refused. */
static void scenario_open(const char *dir)
{
    char path[4096];
    brine *b = NULL;
    brine_options o = BRINE_OPTIONS_INIT;
    o.use_env = 0;
    if (rank == 0) {
        CHECK(mkdir(dir, 0777) == 0, NULL);
        snprintf(path, sizeof path, "%s/file", dir);
        FILE *f = fopen(path, "wb");
        CHECK(f && fclose(f) == 0, NULL);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    /* Rank 1's directory is under a regular file. */
    snprintf(path, sizeof path, rank == 1 ? "%s/file/sub" : "%s/ok", dir);
    const int rc = brine_open_mpi(&b, path, MPI_COMM_WORLD, &o);
    CHECK(rc == BRINE_EIO && b == NULL, NULL);
    if (rank == 1)
        CHECK(strstr(brine_open_errmsg(), "file/sub"), NULL);
    else
        CHECK(strstr(brine_open_errmsg(), "rank 1 could not open"), NULL);
    o.async_flags = BRINE_ASYNC_NOWAIT;
    snprintf(path, sizeof path, "%s/ok", dir);
    CHECK(brine_open_mpi(&b, path, MPI_COMM_WORLD, &o) == BRINE_EINVAL && b == NULL, NULL);
    CHECK(strstr(brine_open_errmsg(), "BRINE_ASYNC_NOWAIT"), NULL);
}

/* A bad state on one rank (a string that is not UTF-8) fails the save on every rank, sync and async. */
static void scenario_badstate(const char *dir)
{
    double x[N];
    char text[16] = "fine";
    brine *b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    CHECK(brine_register_string(b, "note", text, sizeof text) == 0, b);
    fill(x, 1);
    CHECK(brine_save(b, 1) == 0, b);
    if (rank == 1)
        text[0] = (char)0xff;
    int rc = brine_save(b, 2);
    CHECK(rc == BRINE_EINVAL, b);
    CHECK(strstr(brine_errmsg(b), rank == 1 ? "not valid UTF-8" : "rank 1 failed"), b);
    CHECK(brine_save_async(b, 3) == 0, b); /* reported with the agreement, on every rank */
    rc = brine_wait(b);
    CHECK(rc == BRINE_EINVAL, b);
    CHECK(strstr(brine_errmsg(b), rank == 1 ? "not valid UTF-8" : "rank 1 failed"), b);
    text[0] = 'f';
    int64_t step = -1;
    CHECK(brine_restore(b, &step) == 0 && step == 1, b);
    CHECK(brine_close(b) == 0, NULL);
}

/* Steps 1 and 2 of known data, for the Python tests: x[i] = step*1e6 + rank*1e3 + i/4, and a scalar. */
static void scenario_write(const char *dir)
{
    double x[N];
    int32_t who = rank;
    brine *b = open_ctx(dir, MPI_COMM_WORLD, NULL, x);
    CHECK(brine_register(b, "rank", BRINE_I32, &who, 0, NULL, 0) == 0, b);
    for (int64_t step = 1; step <= 2; step++) {
        fill(x, step);
        CHECK(brine_save(b, step) == 0, b);
    }
    CHECK(brine_close(b) == 0, NULL);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3) {
        if (rank == 0)
            fprintf(stderr, "usage: test_mpi commit|fallback|mismatch|async|signal|policy|open|badstate|write DIR\n");
        MPI_Finalize();
        return 2;
    }
    const char *s = argv[1], *dir = argv[2];
    if (rank == 0) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (!strcmp(s, "commit"))
        scenario_commit(dir);
    else if (!strcmp(s, "fallback"))
        scenario_fallback(dir);
    else if (!strcmp(s, "mismatch"))
        scenario_mismatch(dir);
    else if (!strcmp(s, "async"))
        scenario_async(dir);
    else if (!strcmp(s, "signal"))
        scenario_signal(dir);
    else if (!strcmp(s, "policy"))
        scenario_policy(dir);
    else if (!strcmp(s, "open"))
        scenario_open(dir);
    else if (!strcmp(s, "badstate"))
        scenario_badstate(dir);
    else if (!strcmp(s, "write"))
        scenario_write(dir);
    else {
        if (rank == 0)
            fprintf(stderr, "unknown scenario %s\n", s);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (rank == 0)
        printf("%s: ok on %d ranks\n", s, size);
    MPI_Finalize();
    return 0;
}
