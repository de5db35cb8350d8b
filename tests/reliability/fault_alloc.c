/*
 * Allocation failure: for brine_save and for brine_restore, fail the Nth
 * allocation made through the brine_allocator hook, N = 1, 2, ... until the
 * call succeeds.  Each failing call must return an error (BRINE_ENOMEM, or
 * another clean code) with a message, free every block it allocated
 * (allocations minus frees through the hook equal what the context held
 * before the call), leave no temporary file and the earlier checkpoints
 * byte-for-byte intact; a restore never reports success with wrong data.
 * The same loop runs over brine_open + registration.
 *
 * zlib's and HDF5's own allocations do not go through the hook (brine.h):
 * they are not failed here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brine.h"
#include "rel_util.h"

enum { KEEP = 2 };

static char dir[512];
static uint8_t *snap[3];
static size_t snap_len[3];

static void check_untouched(const char *what)
{
    char p[700];
    for (int st = 1; st <= 2; st++) {
        size_t n = 0;
        rel_ckpt_path(p, sizeof p, dir, st);
        uint8_t *b = rel_read_file(p, &n);
        REL_CHECK(b && n == snap_len[st] && memcmp(b, snap[st], n) == 0,
                  "%s: checkpoint of step %d was %s", what, st, b ? "modified" : "removed");
        free(b);
    }
}

static void reset_dir(void)
{
    char p[700];
    rel_clear_dir(dir);
    for (int st = 1; st <= 2; st++) {
        rel_ckpt_path(p, sizeof p, dir, st);
        if (rel_write_file(p, snap[st], snap_len[st]))
            exit(2);
    }
}

/*
 * Opens file with a reader allocating through a (NULL: malloc), lists its
 * variables and metadata and reads every array, scalar and string; *out
 * receives all of it as bytes (malloc'd).  Returns 0 or the first error.
 */
static int read_everything(const char *file, const brine_allocator *a, uint8_t **out, size_t *len)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = a;
    brine_reader *r = NULL;
    int rc = brine_reader_open(&r, file, &o, 0);
    size_t used = 0, cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    *out = NULL;
    *len = 0;
    if (rc || !buf)
        goto done;
    for (size_t i = 0; i < brine_reader_count(r) && !rc; i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        const size_t need = v.kind == BRINE_VAR_ARRAY ? v.nbytes : 256;
        if (used + need > cap) {
            while (used + need > cap)
                cap *= 2;
            uint8_t *bigger = realloc(buf, cap);
            if (!bigger) {
                rc = BRINE_ENOMEM;
                break;
            }
            buf = bigger;
        }
        memset(buf + used, 0, need);
        if (v.kind == BRINE_VAR_STRING)
            rc = brine_read_string(r, v.name, (char *)buf + used, need);
        else if (v.kind != BRINE_VAR_OTHER)
            rc = brine_read(r, v.name, (brine_dtype)v.dtype, buf + used, v.ndim, v.shape, v.flags);
        used += need;
    }
    for (size_t i = 0; i < brine_reader_attr_count(r) && !rc; i++) {
        brine_attr at;
        brine_reader_attr(r, i, &at);
        int n = snprintf((char *)buf + used, cap - used > 300 ? 300 : cap - used, "%s=%lld/%g/%s;",
                         at.name, (long long)at.i, at.d, at.s ? at.s : "");
        used += n > 0 && (size_t)n < 300 ? (size_t)n : 0;
    }
done:
    brine_reader_close(r);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = used;
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    rel_state s;
    char p[700];
    rel_mkdtemp(dir, sizeof dir, "faultalloc");
    if (rel_state_init(&s, 300, 1))
        return 2;
    brine *b = rel_open(dir, &s, NULL, NULL, KEEP);
    if (!b)
        return 2;
    for (int st = 1; st <= 2; st++) {
        rel_state_fill(&s, st);
        if (brine_save(b, st))
            return 2;
        rel_ckpt_path(p, sizeof p, dir, st);
        snap[st] = rel_read_file(p, &snap_len[st]);
    }
    brine_close(b);

    rel_alloc al;
    long failed_total = 0;
    const long limit = 100000;

    /* brine_open + registration */
    long n_open = 0;
    for (long n = 1; n < limit; n++) {
        rel_alloc_init(&al);
        rel_alloc_arm(&al, n);
        brine_options o = BRINE_OPTIONS_INIT;
        o.alloc = &al.a;
        brine *c = NULL;
        int rc = brine_open(&c, dir, &o);
        if (rc == 0)
            rc = rel_state_register(c, &s);
        const char *msg = rc ? (c ? brine_errmsg(c) : brine_open_errmsg()) : "";
        if (rc) {
            REL_CHECK(rc == BRINE_ENOMEM, "open/register, allocation %ld failing: %d (%s) %s", n,
                      rc, brine_errstr(rc), msg);
            REL_CHECK(msg && *msg, "open/register, allocation %ld failing: no message", n);
        }
        brine_close(c);
        REL_CHECK(al.outstanding == 0 && al.bad_frees == 0,
                  "open/register, allocation %ld failing: %ld blocks leaked, %ld bad frees", n,
                  al.outstanding, al.bad_frees);
        if (al.failed == 0) { /* the Nth allocation never came: everything succeeded */
            REL_CHECK(rc == 0, "open/register: %d without a failed allocation", rc);
            n_open = n - 1;
            break;
        }
        failed_total++;
    }

    /* brine_save */
    long n_save = 0;
    for (long n = 1; n < limit; n++) {
        reset_dir();
        rel_alloc_init(&al);
        brine *c = rel_open(dir, &s, NULL, &al.a, KEEP);
        if (!c)
            return 2;
        const long held = al.outstanding;
        rel_state_fill(&s, 3);
        rel_alloc_arm(&al, n);
        const int rc = brine_save(c, 3);
        const char *msg = brine_errmsg(c);
        REL_CHECK(al.outstanding == held && al.bad_frees == 0,
                  "save, allocation %ld failing: %ld blocks leaked, %ld bad frees", n,
                  al.outstanding - held, al.bad_frees);
        if (al.failed == 0) {
            REL_CHECK(rc == 0, "save without a failed allocation: %d %s", rc, msg);
            brine_close(c);
            n_save = n - 1;
            break;
        }
        failed_total++;
        if (rc) {
            REL_CHECK(rc == BRINE_ENOMEM, "save, allocation %ld failing: %d (%s) %s", n, rc,
                      brine_errstr(rc), msg);
            REL_CHECK(msg && *msg, "save, allocation %ld failing: no message", n);
            REL_CHECK(rel_count_temps(dir) == 0, "save, allocation %ld failing: a temporary file remains", n);
            int64_t steps[8];
            REL_CHECK(rel_list_steps(dir, steps, 8) == 2, "save, allocation %ld failing: step 3 was published", n);
            check_untouched("save with a failing allocation");
        }
        /* else: the failed allocation was in best-effort work (cleanup, rotation) */
        rel_alloc_arm(&al, 0);
        rel_state_fill(&s, 4);
        const int rc2 = brine_save(c, 4);
        REL_CHECK(rc2 == 0, "save after allocation %ld failed: %d %s", n, rc2, brine_errmsg(c));
        REL_CHECK(rel_count_temps(dir) == 0, "temporary files after a healthy save");
        rel_state_poison(&s);
        int64_t got = -1;
        const int rc3 = brine_restore(c, &got);
        char why[256];
        REL_CHECK(rc3 == 0 && got == 4 && rel_state_check(&s, 4, why, sizeof why) == 0,
                  "restore after allocation %ld failed in a save: %d step %lld", n, rc3,
                  (long long)got);
        brine_close(c);
        REL_CHECK(al.outstanding == 0, "save loop %ld: %ld blocks leaked after close", n, al.outstanding);
    }

    /* brine_restore: the newest checkpoint verifies; a failure must never yield wrong data */
    long n_restore = 0, fell_back = 0;
    for (long n = 1; n < limit; n++) {
        reset_dir();
        rel_alloc_init(&al);
        brine *c = rel_open(dir, &s, NULL, &al.a, KEEP);
        if (!c)
            return 2;
        const long held = al.outstanding;
        rel_state_poison(&s);
        rel_alloc_arm(&al, n);
        int64_t got = -1;
        const int rc = brine_restore(c, &got);
        const char *msg = brine_errmsg(c);
        REL_CHECK(al.outstanding == held && al.bad_frees == 0,
                  "restore, allocation %ld failing: %ld blocks leaked, %ld bad frees", n,
                  al.outstanding - held, al.bad_frees);
        if (rc == 0) {
            char why[256];
            REL_CHECK(got == 1 || got == 2, "restore gave step %lld", (long long)got);
            REL_CHECK(rel_state_check(&s, got, why, sizeof why) == 0,
                      "restore, allocation %ld failing: returned 0 with WRONG DATA for step %lld: %s",
                      n, (long long)got, why);
            if (al.failed && got == 1)
                fell_back++;
            REL_CHECK(!al.failed || got == 2,
                      "restore, allocation %ld failing: fell back to step 1 (ENOMEM says nothing "
                      "about the file)", n);
        } else {
            REL_CHECK(rc == BRINE_ENOMEM, "restore, allocation %ld failing: %d (%s) %s", n, rc,
                      brine_errstr(rc), msg);
            REL_CHECK(msg && *msg, "restore, allocation %ld failing: no message", n);
        }
        check_untouched("restore with a failing allocation");
        brine_close(c);
        REL_CHECK(al.outstanding == 0, "restore loop %ld: %ld blocks leaked after close", n,
                  al.outstanding);
        if (al.failed == 0) {
            REL_CHECK(rc == 0 && got == 2, "restore without a failed allocation: %d", rc);
            n_restore = n - 1;
            break;
        }
        failed_total++;
    }
    (void)fell_back;

    /* A reader (brine_reader_open, listing, metadata, brine_read of every variable) */
    reset_dir();
    rel_ckpt_path(p, sizeof p, dir, 2);
    uint8_t *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0;
    REL_CHECK(read_everything(p, NULL, &want, &want_len) == 0, "reader without failures: %s",
              brine_open_errmsg());
    long n_reader = 0;
    for (long n = 1; n < limit; n++) {
        rel_alloc_init(&al);
        rel_alloc_arm(&al, n);
        const int rc = read_everything(p, &al.a, &got, &got_len);
        REL_CHECK(al.outstanding == 0 && al.bad_frees == 0,
                  "reader, allocation %ld failing: %ld blocks leaked, %ld bad frees", n,
                  al.outstanding, al.bad_frees);
        if (rc == 0)
            REL_CHECK(got_len == want_len && memcmp(got, want, want_len) == 0,
                      "reader, allocation %ld failing: returned 0 with WRONG DATA", n);
        else
            REL_CHECK(rc == BRINE_ENOMEM, "reader, allocation %ld failing: %d (%s)", n, rc,
                      brine_errstr(rc));
        free(got);
        got = NULL;
        if (al.failed == 0) {
            REL_CHECK(rc == 0, "reader without a failed allocation: %d", rc);
            n_reader = n - 1;
            break;
        }
        failed_total++;
    }
    free(want);
    printf("fault_alloc: open+register make %ld allocations, save %ld, restore %ld, a reader %ld; "
           "each failed in turn (%ld calls with a failed allocation); %ld checks, %ld failures\n",
           n_open, n_save, n_restore, n_reader, failed_total, rel_checks, rel_failures);
    rel_state_free(&s);
    rel_rmtree(dir);
    return rel_failures ? 1 : 0;
}
