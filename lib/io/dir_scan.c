/*
 * Checkpoint directories (docs/format.md, section 1): which names are
 * committed checkpoints and which are temporary leftovers, listing,
 * leftover removal and rotation.
 *
 * Names are parsed strictly (exactly 12 digits, nothing before or after):
 * anything else in the directory belongs to someone else and is never touched.
 */
#include <errno.h>
#include "dir_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"

#define STEP_DIGITS 12

/*
 * Matches "<prefix>-<12 digits>.h5" at the start of name; returns the
 * character after ".h5" (NULL when it does not match) and the step.
 */
static const char *match_committed(const char *name, const char *prefix, int64_t *step)
{
    size_t plen = strlen(prefix);
    if (plen == 0 || strncmp(name, prefix, plen) != 0)
        return NULL;
    const char *p = name + plen;
    if (*p++ != '-')
        return NULL;
    int64_t s = 0;
    for (int i = 0; i < STEP_DIGITS; i++, p++) {
        if (*p < '0' || *p > '9')
            return NULL;
        s = s * 10 + (*p - '0');
    }
    if (strncmp(p, ".h5", 3) != 0)
        return NULL;
    *step = s;
    return p + 3;
}

int brine_scan__parse_name(const char *name, const char *prefix, int64_t *step)
{
    int64_t s = 0;
    const char *end = match_committed(name, prefix, &s);
    if (!end || *end != '\0')
        return 0;
    if (step)
        *step = s;
    return 1;
}

int brine_scan__is_temp(const char *name, const char *prefix)
{
    static const char suffix[] = ".tmp-";
    int64_t s = 0;
    if (name[0] != '.')
        return 0;
    const char *end = match_committed(name + 1, prefix, &s);
    return end && strncmp(end, suffix, sizeof suffix - 1) == 0;
}

/* "<dir>/<name>", allocated through a. */
static char *join(const brine_allocator *a, const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = brine__alloc(a, n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- listing committed checkpoints ---- */

typedef struct list_state {
    const brine_allocator *a;
    const char *prefix;
    brine_ckpt_entry *v;
    size_t n, cap;
} list_state;

/* list_dir's callbacks return this to stop on an allocation failure: it is
 * positive, so it cannot be mistaken for list_dir's own -errno. */
#define STOP_ENOMEM 1

/*
 * Calls each(arg, name) for every name in dir.  Returns 0, BRINE_ENOMEM when
 * a callback returned STOP_ENOMEM, or BRINE_ENOTFOUND / BRINE_EIO (in err)
 * when the directory cannot be read.
 */
static int list_names(const brine_io_methods *io, const char *dir,
                      int (*each)(void *, const char *), void *arg, brine_error *err)
{
    int rc = 0;
    int r = io->list_dir(io->ctx, dir, each, arg);
    if (r == STOP_ENOMEM) {
        rc = brine__fail(err, BRINE_ENOMEM, "listing checkpoint directory %s: out of memory", dir);
        goto done;
    }
    if (r < 0) {
        /* A full disk does not stop a directory from being read: whatever
         * errno says, this is an I/O error, as the header promises. */
        brine__fail_errno(err, r, "reading checkpoint directory %s failed", dir);
        /* No directory means no checkpoint, which callers treat apart. */
        rc = err->code = r == -ENOENT ? BRINE_ENOTFOUND : BRINE_EIO;
        goto done;
    }
done:
    return rc;
}

static int collect_ckpt(void *arg, const char *name)
{
    list_state *st = arg;
    int64_t step;
    if (!brine_scan__parse_name(name, st->prefix, &step))
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        void *v = st->v;
        if (cap > SIZE_MAX / sizeof *st->v ||
            brine__resize(st->a, &v, st->n * sizeof *st->v, cap * sizeof *st->v) < 0)
            return STOP_ENOMEM;
        st->v = v;
        st->cap = cap;
    }
    st->v[st->n++].step = step;
    return 0;
}

static int by_step(const void *x, const void *y)
{
    int64_t a = ((const brine_ckpt_entry *)x)->step;
    int64_t b = ((const brine_ckpt_entry *)y)->step;
    return (a > b) - (a < b);
}

int brine_scan__list(brine_ckpt_entry **out, size_t *n, const brine_io_methods *io,
                     const brine_allocator *a, const char *dir, const char *prefix,
                     brine_error *err)
{
    int rc = 0;
    list_state st = {a, prefix, NULL, 0, 0};
    *out = NULL;
    *n = 0;
    rc = list_names(io, dir, collect_ckpt, &st, err);
    if (rc < 0)
        goto done;
    if (st.n > 1)
        qsort(st.v, st.n, sizeof *st.v, by_step);
    *out = st.v;
    *n = st.n;
    st.v = NULL;
done:
    brine__free(a, st.v);
    return rc;
}

/* ---- removing temporary leftovers ---- */

typedef struct temp_state {
    const brine_allocator *a;
    const char *dir;
    const char *prefix;
    char **paths;
    size_t n, cap;
} temp_state;

static int collect_temp(void *arg, const char *name)
{
    temp_state *st = arg;
    if (!brine_scan__is_temp(name, st->prefix))
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 8;
        void *v = st->paths;
        if (cap > SIZE_MAX / sizeof *st->paths ||
            brine__resize(st->a, &v, st->n * sizeof *st->paths, cap * sizeof *st->paths) < 0)
            return STOP_ENOMEM;
        st->paths = v;
        st->cap = cap;
    }
    char *path = join(st->a, st->dir, name);
    if (!path)
        return STOP_ENOMEM;
    st->paths[st->n++] = path;
    return 0;
}

int brine_scan__remove_temps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                             const char *prefix, brine_error *err)
{
    int rc = 0;
    temp_state st = {a, dir, prefix, NULL, 0, 0};
    /* Names are collected first and unlinked after the listing: whether a
     * directory stream survives unlinks is unspecified for other tables. */
    rc = list_names(io, dir, collect_temp, &st, err);
    if (rc < 0)
        goto done;
    /* Best effort: a leftover that cannot be removed only wastes space. */
    for (size_t i = 0; i < st.n; i++)
        if (io->unlink(io->ctx, st.paths[i]) == 0)
            rc++;
done:
    for (size_t i = 0; i < st.n; i++)
        brine__free(a, st.paths[i]);
    brine__free(a, st.paths);
    return rc;
}

/* ---- rotation ---- */

int brine_scan__rotate_every(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                             const char *prefix, int keep_last, int keep_every, int64_t keep_step,
                             brine_error *err)
{
    int rc = 0;
    brine_ckpt_entry *v = NULL;
    size_t n = 0;
    char *path = NULL;
    if (keep_last <= 0)
        goto done;
    rc = brine_scan__list(&v, &n, io, a, dir, prefix, err);
    if (rc < 0)
        goto done;
    /* Multiples of keep_every are kept apart: the others rotate among themselves. */
    size_t rotating = 0;
    for (size_t i = 0; i < n; i++)
        if (!(keep_every > 0 && v[i].step % keep_every == 0))
            v[rotating++] = v[i];
    if (rotating <= (size_t)keep_last)
        goto done;
    /* Everything older than the keep_last newest goes, except keep_step (the
     * checkpoint just published, which may be older than stale ones of an
     * earlier run).  A deletion that fails is retried by the next rotation. */
    const size_t to_delete = rotating - (size_t)keep_last;
    size_t plen = strlen(dir) + 1 + strlen(prefix) + sizeof "-000000000000.h5";
    path = brine__alloc(a, plen);
    if (!path) {
        rc = brine__fail(err, BRINE_ENOMEM, "rotating checkpoints in %s: out of memory", dir);
        goto done;
    }
    int deleted = 0;
    for (size_t i = 0; i < to_delete; i++) {
        if (v[i].step == keep_step)
            continue;
        snprintf(path, plen, "%s/%s-%012lld.h5", dir, prefix, (long long)v[i].step);
        if (io->unlink(io->ctx, path) == 0)
            deleted++;
    }
    /* Best effort too: an unlink lost in a crash is redone by the next rotation. */
    if (deleted > 0)
        (void)io->fsync_dir(io->ctx, dir);
    rc = deleted;
done:
    brine__free(a, path);
    brine__free(a, v);
    return rc;
}

int brine_scan__rotate(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int keep_last, int64_t keep_step, brine_error *err)
{
    return brine_scan__rotate_every(io, a, dir, prefix, keep_last, 0, keep_step, err);
}
