/*
 * I/O fault injection.  A counting run learns how many brine_io_methods
 * operations one save (and one restore) makes; then, for every operation
 * index k of each path, every fault kind (EIO, ENOSPC, EINTR, short
 * transfer) and both modes (transient: only operation k fails; persistent:
 * operation k and every later call of the same method fail), we check:
 *
 *  - EIO / ENOSPC: the call returns an error with a non-empty message, or --
 *    only where the failure is legitimately harmless (rotation and temp
 *    cleanup are best effort; a restore may fall back to an older checkpoint)
 *    -- succeeds with exact data.  A failure of pwrite, fsync, ftruncate,
 *    rename or the directory fsync of a save is never reported as success;
 *  - EINTR and short transfers (pread/pwrite only) are retried: the call succeeds;
 *  - no descriptor leaks (opens == closes through the table, and the
 *    process's /proc/self/fd count is unchanged), no HDF5 file id left open;
 *  - the earlier checkpoints are byte-for-byte untouched by a failed save
 *    and by any restore;
 *  - afterwards a save with a healthy table succeeds, leaves no temporary
 *    file, and every checkpoint restores bit-exactly.
 *
 * Quick tier: every k, every kind, both modes on both paths.
 * BRINE_FAULT_FULL=1 (the long tier) also runs the save path against a state
 * three times larger (more chunks, more HDF5 operations) and with rotation
 * deleting files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brine.h"
#include "rel_util.h"

enum { KEEP = 2, MAX_OPS = 100000 };

typedef struct fixture {
    char dir[512];
    rel_state s;
    uint8_t *snap[3];
    size_t snap_len[3];
    int ops[MAX_OPS + 1]; /* op kind of each operation index of the counting run */
    long nops;
    long commit_idx; /* save: index of the directory fsync that commits (after the rename) */
} fixture;

static long injections, by_op[REL_OP_COUNT], false_success_checked, harmless_success,
    fallback_success, not_reached, retried_ok;

/* The directory holds exactly the checkpoints of steps 1 and 2, as written by the setup. */
static void reset_dir(fixture *fx)
{
    char p[700];
    rel_clear_dir(fx->dir);
    for (int st = 1; st <= 2; st++) {
        rel_ckpt_path(p, sizeof p, fx->dir, st);
        if (rel_write_file(p, fx->snap[st], fx->snap_len[st])) {
            perror(p);
            exit(2);
        }
    }
}

/* Steps 1 and 2 are still there, byte for byte. */
static void check_untouched(fixture *fx, const char *what)
{
    char p[700];
    for (int st = 1; st <= 2; st++) {
        size_t n = 0;
        rel_ckpt_path(p, sizeof p, fx->dir, st);
        uint8_t *b = rel_read_file(p, &n);
        REL_CHECK(b && n == fx->snap_len[st] && memcmp(b, fx->snap[st], n) == 0,
                  "%s: checkpoint of step %d was %s", what, st, b ? "modified" : "removed");
        free(b);
    }
}

/* Restores with the default table into poisoned memory; returns the step (or -1), checking the data. */
static int64_t healthy_restore(fixture *fx, const char *what)
{
    rel_state_poison(&fx->s);
    brine *b = rel_open(fx->dir, &fx->s, NULL, NULL, KEEP);
    int64_t got = -1;
    if (!b) {
        rel_fail("%s: cannot open", what);
        return -1;
    }
    const int rc = brine_restore(b, &got);
    REL_CHECK(rc == 0, "%s: healthy restore failed: %d %s", what, rc, brine_errmsg(b));
    if (rc == 0) {
        char why[256];
        REL_CHECK(rel_state_check(&fx->s, got, why, sizeof why) == 0,
                  "%s: healthy restore of step %lld: wrong data: %s", what, (long long)got, why);
    } else {
        got = -1;
    }
    brine_close(b);
    return got;
}

static void healthy_save(fixture *fx, int64_t step, const char *what)
{
    brine *b = rel_open(fx->dir, &fx->s, NULL, NULL, KEEP);
    if (!b) {
        rel_fail("%s: cannot open", what);
        return;
    }
    rel_state_fill(&fx->s, step);
    const int rc = brine_save(b, step);
    REL_CHECK(rc == 0, "%s: healthy save of step %lld failed: %d %s", what, (long long)step, rc,
              brine_errmsg(b));
    REL_CHECK(rel_count_temps(fx->dir) == 0, "%s: temporary files remain after a healthy save",
              what);
    brine_close(b);
    const int64_t got = healthy_restore(fx, what);
    REL_CHECK(got == step, "%s: after a healthy save of step %lld, restore gave %lld", what,
              (long long)step, (long long)got);
}

static void setup(fixture *fx, size_t rows)
{
    char p[700];
    rel_mkdtemp(fx->dir, sizeof fx->dir, "faultio");
    if (rel_state_init(&fx->s, rows, 1))
        exit(2);
    brine *b = rel_open(fx->dir, &fx->s, NULL, NULL, KEEP);
    if (!b)
        exit(2);
    for (int st = 1; st <= 2; st++) {
        rel_state_fill(&fx->s, st);
        if (brine_save(b, st)) {
            fprintf(stderr, "setup save: %s\n", brine_errmsg(b));
            exit(2);
        }
        rel_ckpt_path(p, sizeof p, fx->dir, st);
        fx->snap[st] = rel_read_file(p, &fx->snap_len[st]);
    }
    brine_close(b);
}

/* The operations a call makes, recorded by a counting run.  save: 1 for brine_save(3), 0 for restore. */
static void count_ops(fixture *fx, rel_io *io, int save)
{
    reset_dir(fx);
    brine *b = rel_open(fx->dir, &fx->s, &io->m, NULL, KEEP);
    if (!b)
        exit(2);
    rel_io_reset(io);
    io->trace = fx->ops;
    io->trace_cap = MAX_OPS;
    int rc;
    int64_t got = 0;
    if (save) {
        rel_state_fill(&fx->s, 3);
        rc = brine_save(b, 3);
    } else {
        rc = brine_restore(b, &got);
    }
    if (rc) {
        fprintf(stderr, "counting run failed: %s\n", brine_errmsg(b));
        exit(2);
    }
    fx->nops = io->seq;
    io->trace = NULL;
    fx->commit_idx = 0;
    for (long k = 1, renamed = 0; save && k <= fx->nops && k <= MAX_OPS && !fx->commit_idx; k++) {
        renamed |= fx->ops[k] == REL_OP_RENAME;
        if (renamed && fx->ops[k] == REL_OP_FSYNC_DIR)
            fx->commit_idx = k;
    }
    if (fx->nops > MAX_OPS) {
        fprintf(stderr, "more than %d operations\n", MAX_OPS);
        exit(2);
    }
    brine_close(b);
}

static int is_transfer(int op)
{
    return op == REL_OP_PREAD || op == REL_OP_PWRITE;
}

/* A save that fails (or not) at operation k. */
static void save_case(fixture *fx, rel_io *io, long k, rel_fault_kind kind, int persistent)
{
    char what[256];
    snprintf(what, sizeof what, "save, op %ld/%ld (%s), %s, %s", k, fx->nops,
             rel_op_name(fx->ops[k]), rel_fault_kind_name(kind),
             persistent ? "persistent" : "transient");
    reset_dir(fx);
    const int fds0 = rel_count_fds();
    const long h5ids0 = rel_h5_ids();
    brine *b = rel_open(fx->dir, &fx->s, &io->m, NULL, KEEP);
    if (!b) {
        rel_fail("%s: cannot open", what);
        return;
    }
    rel_state_fill(&fx->s, 3);
    rel_io_arm(io, k, kind, persistent);
    const int rc = brine_save(b, 3);
    const char *msg = brine_errmsg(b);
    const int op = io->fail_op;
    if (!io->injected) {
        not_reached++;
        rel_io_reset(io);
        brine_close(b);
        return;
    }
    injections++;
    by_op[op]++;
    if (kind == REL_FAULT_EINTR || kind == REL_FAULT_SHORT) {
        REL_CHECK(rc == 0, "%s: not retried: %d %s", what, rc, msg);
        retried_ok += rc == 0;
    } else if (rc != 0) {
        REL_CHECK(msg && *msg, "%s: error %d without a message", what, rc);
        const int want = kind == REL_FAULT_ENOSPC ? BRINE_ENOSPC : BRINE_EIO;
        REL_CHECK(rc == want || rc == BRINE_EHDF5 || rc == BRINE_EIO || rc == BRINE_ENOSPC,
                  "%s: unexpected code %d (%s): %s", what, rc, brine_errstr(rc), msg);
        /* The first failure is the one the caller hears of. */
        REL_CHECK(rc == want, "%s: code %d (%s), expected %d (%s): %s", what, rc, brine_errstr(rc),
                  want, brine_errstr(want), msg);
    } else {
        /* Success despite a failed operation: only where the operation was not needed. */
        /* Up to the commit (the directory fsync after the rename), every pwrite, fsync,
         * ftruncate, rename and directory fsync is needed; a failed open may be retried
         * (HDF5 itself retries a create), which the restore below checks. */
        const int critical = k <= fx->commit_idx &&
                             (op == REL_OP_PWRITE || op == REL_OP_FSYNC || op == REL_OP_FSYNC_DIR ||
                              op == REL_OP_RENAME || op == REL_OP_FTRUNCATE ||
                              (op == REL_OP_CLOSE && io->fail_fd_written));
        false_success_checked += critical;
        REL_CHECK(!critical, "%s: FALSE SUCCESS: brine_save returned 0 although %s of %s failed",
                  what, rel_op_name(op), io->fail_path);
        harmless_success++;
    }
    const long opens = io->opens, closes = io->closes;
    rel_io_reset(io);
    brine_close(b);
    REL_CHECK(opens == closes, "%s: %ld opens, %ld closes", what, opens, closes);
    REL_CHECK(rel_count_fds() == fds0, "%s: %d file descriptors leaked", what,
              rel_count_fds() - fds0);
    REL_CHECK(rel_h5_open_files() == 0, "%s: %ld HDF5 files left open", what, rel_h5_open_files());
    REL_CHECK(rel_h5_ids() == h5ids0, "%s: %ld HDF5 identifiers leaked", what, rel_h5_ids() - h5ids0);
    if (rc != 0) {
        check_untouched(fx, what);
        int64_t steps[16];
        const int n = rel_list_steps(fx->dir, steps, 16);
        /* A failed directory fsync leaves the renamed file in place (it may or may not be durable). */
        REL_CHECK(n == 2 || (n == 3 && op == REL_OP_FSYNC_DIR), "%s: %d checkpoints after a failed save",
                  what, n);
        if (!(op == REL_OP_UNLINK && persistent))
            REL_CHECK(rel_count_temps(fx->dir) == 0, "%s: the failed save left a temporary file",
                      what);
    }
    const int64_t got = healthy_restore(fx, what);
    if (rc == 0)
        REL_CHECK(got == 3, "%s: save succeeded but restore gave step %lld", what, (long long)got);
    else
        REL_CHECK(got == 2 || (got == 3 && op == REL_OP_FSYNC_DIR),
                  "%s: after a failed save, restore gave step %lld", what, (long long)got);
    healthy_save(fx, 4, what);
}

static void restore_case(fixture *fx, rel_io *io, long k, rel_fault_kind kind, int persistent)
{
    char what[256];
    snprintf(what, sizeof what, "restore, op %ld/%ld (%s), %s, %s", k, fx->nops,
             rel_op_name(fx->ops[k]), rel_fault_kind_name(kind),
             persistent ? "persistent" : "transient");
    reset_dir(fx);
    const int fds0 = rel_count_fds();
    const long h5ids0 = rel_h5_ids();
    rel_state_poison(&fx->s);
    brine *b = rel_open(fx->dir, &fx->s, &io->m, NULL, KEEP);
    if (!b) {
        rel_fail("%s: cannot open", what);
        return;
    }
    rel_io_arm(io, k, kind, persistent);
    int64_t got = -1;
    const int rc = brine_restore(b, &got);
    const char *msg = brine_errmsg(b);
    if (!io->injected) {
        not_reached++;
        rel_io_reset(io);
        brine_close(b);
        return;
    }
    injections++;
    by_op[io->fail_op]++;
    const long opens = io->opens, closes = io->closes;
    if (kind == REL_FAULT_EINTR || kind == REL_FAULT_SHORT) {
        REL_CHECK(rc == 0 && got == 2, "%s: not retried: rc %d, step %lld: %s", what, rc,
                  (long long)got, msg);
        retried_ok += rc == 0;
    } else if (rc != 0) {
        REL_CHECK(msg && *msg, "%s: error %d without a message", what, rc);
    } else {
        REL_CHECK(got == 1 || got == 2, "%s: restored step %lld", what, (long long)got);
        if (got == 1)
            fallback_success++;
        else
            harmless_success++;
    }
    if (rc == 0) {
        char why[256];
        REL_CHECK(rel_state_check(&fx->s, got, why, sizeof why) == 0,
                  "%s: restore returned 0 with WRONG DATA for step %lld: %s", what, (long long)got,
                  why);
    }
    REL_CHECK(opens == closes, "%s: %ld opens, %ld closes", what, opens, closes);
    rel_io_reset(io);
    brine_close(b);
    REL_CHECK(rel_count_fds() == fds0, "%s: %d file descriptors leaked", what,
              rel_count_fds() - fds0);
    REL_CHECK(rel_h5_open_files() == 0, "%s: %ld HDF5 files left open", what, rel_h5_open_files());
    REL_CHECK(rel_h5_ids() == h5ids0, "%s: %ld HDF5 identifiers leaked", what, rel_h5_ids() - h5ids0);
    check_untouched(fx, what);
    const int64_t after = healthy_restore(fx, what);
    REL_CHECK(after == 2, "%s: healthy restore afterwards gave step %lld", what, (long long)after);
}

static void run_path(fixture *fx, rel_io *io, int save)
{
    count_ops(fx, io, save);
    const long n = fx->nops;
    long cases = 0;
    const double t0 = rel_now();
    const long only_k = rel_env_long("BRINE_FAULT_K", 0); /* one operation index (debugging) */
    for (long k = 1; k <= n; k++) {
        if (only_k && k != only_k)
            continue;
        for (int kind = 0; kind < REL_FAULT_KIND_COUNT; kind++) {
            if ((kind == REL_FAULT_EINTR || kind == REL_FAULT_SHORT) && !is_transfer(fx->ops[k]))
                continue;
            if (getenv("BRINE_FAULT_KIND") && rel_env_long("BRINE_FAULT_KIND", 0) != kind)
                continue;
            for (int persistent = 0; persistent <= 1; persistent++) {
                if (getenv("BRINE_FAULT_MODE") && rel_env_long("BRINE_FAULT_MODE", 0) != persistent)
                    continue;
                if (save)
                    save_case(fx, io, k, (rel_fault_kind)kind, persistent);
                else
                    restore_case(fx, io, k, (rel_fault_kind)kind, persistent);
                cases++;
            }
        }
        if (rel_failures > 50)
            break;
    }
    long per[REL_OP_COUNT] = {0};
    for (long k = 1; k <= n; k++)
        per[fx->ops[k]]++;
    printf("  %s path: %ld operations (", save ? "save" : "restore", n);
    for (int op = 0; op < REL_OP_COUNT; op++)
        if (per[op])
            printf("%s%s %ld", op ? ", " : "", rel_op_name(op), per[op]);
    printf("), %ld cases, %.1f s\n", cases, rel_now() - t0);
    fflush(stdout);
}

int main(void)
{
    const int full = (int)rel_env_long("BRINE_FAULT_FULL", 0);
    const char *only = getenv("BRINE_FAULT_ONLY"); /* "save" or "restore": one path */
    setvbuf(stdout, NULL, _IOLBF, 0);
    static fixture fx;
    static rel_io io;
    rel_io_init(&io);
    const size_t sizes[2] = {300, 1000};
    for (int i = 0; i < (full ? 2 : 1); i++) {
        setup(&fx, sizes[i]);
        printf("fault_io: state of %zu x %d f64 (%zu chunks) + small arrays, scalars, a string; "
               "keep_last %d\n", fx.s.big_rows, REL_BIG_COLS, (fx.s.big_rows + 255) / 256, KEEP);
        if (!only || !strcmp(only, "save"))
            run_path(&fx, &io, 1);
        if (!only || !strcmp(only, "restore"))
            run_path(&fx, &io, 0);
        rel_rmtree(fx.dir);
        rel_state_free(&fx.s);
        for (int st = 1; st <= 2; st++)
            free(fx.snap[st]);
    }
    printf("fault_io: %ld faults injected (", injections);
    for (int op = 0; op < REL_OP_COUNT; op++)
        if (by_op[op])
            printf("%s%s %ld", op ? ", " : "", rel_op_name(op), by_op[op]);
    printf("); %ld EINTR/short retried to success; %ld successes despite a harmless failure, "
           "%ld restores fell back to the older checkpoint; %ld checks, %ld failures\n",
           retried_ok, harmless_success, fallback_success, rel_checks, rel_failures);
    return rel_failures ? 1 : 0;
}
