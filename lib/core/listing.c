/*
 * Checkpoint directories seen from outside a run (the brine command):
 * brine_list, which names the checkpoints and temporary files of every
 * prefix by the library's own naming rules (io/dir_scan.c), and brine_prune,
 * retention by hand through the same rotation code a save runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/alloc.h"
#include "../common/buffer.h"
#include "../common/text.h"
#include "../format/h5_layout.h"
#include "../io/dir_scan.h"
#include "core.h"
#include "reader.h"

/* An entry and the strings it points to, owned by the listing. */
struct brine_listing {
    const brine_allocator *alloc;
    brine_entry *v;
    size_t n, cap;
};

typedef struct scan {
    brine_listing *l;
    const char *dir;
    const char *want; /* NULL: every prefix */
    int failed;       /* out of memory */
} scan;

/*
 * Parses "<prefix>-<12 digits>.h5" (committed) or ".<prefix>-<12
 * digits>.h5.tmp-<anything>" (temporary) whatever the prefix, which is the
 * text before the last '-' that precedes the digits.  Returns the kind, or 0
 * for any other name; the prefix goes to prefix[cap].
 */
static int classify(const char *name, char *prefix, size_t cap, int64_t *step)
{
    const int temp = name[0] == '.';
    const char *base = name + temp;
    const char *h5 = strstr(base, ".h5");
    /* "-" + 12 digits before ".h5"; the prefix before that. */
    if (!h5 || h5 - base < 14)
        return 0;
    const size_t plen = (size_t)(h5 - base) - 13;
    if (plen >= cap)
        return 0;
    memcpy(prefix, base, plen);
    prefix[plen] = '\0';
    if (!brine__prefix_valid(prefix))
        return 0;
    if (!(temp ? brine_scan__is_temp(name, prefix) : brine_scan__parse_name(name, prefix, NULL)))
        return 0;
    /* Both forms checked the 12 digits after "<prefix>-". */
    int64_t s = 0;
    for (const char *p = base + plen + 1; p < h5; p++)
        s = s * 10 + (*p - '0');
    *step = s;
    return temp ? BRINE_ENTRY_TEMPORARY : BRINE_ENTRY_CHECKPOINT;
}

static int collect(void *arg, const char *name)
{
    scan *s = arg;
    brine_listing *l = s->l;
    char prefix[80];
    int64_t step = -1;
    const int kind = classify(name, prefix, sizeof prefix, &step);
    if (!kind || (s->want && strcmp(prefix, s->want) != 0))
        return 0;
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 16;
        void *p = l->v;
        if (brine__resize(l->alloc, &p, l->n * sizeof *l->v, cap * sizeof *l->v)) {
            s->failed = 1;
            return 1;
        }
        l->v = p;
        l->cap = cap;
    }
    brine_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    const size_t dlen = strlen(s->dir), nlen = strlen(name);
    char *path = brine__alloc(l->alloc, dlen + 1 + nlen + 1);
    char *pre = brine__strdup(l->alloc, prefix);
    if (!path || !pre) {
        brine__free(l->alloc, path);
        brine__free(l->alloc, pre);
        s->failed = 1;
        return 1;
    }
    snprintf(path, dlen + nlen + 2, "%s/%s", s->dir, name);
    e->path = path;
    e->name = path + dlen + 1;
    e->prefix = pre;
    e->kind = (brine_entry_kind)kind;
    e->step = step;
    /* A file removed since the listing (a rotation, a finished temporary) keeps size 0. */
    struct stat st;
    if (stat(path, &st) == 0) {
        e->size = (uint64_t)st.st_size;
        e->mtime = (int64_t)st.st_mtime;
    }
    l->n++;
    return 0;
}

static int by_prefix_step(const void *x, const void *y)
{
    const brine_entry *a = x, *b = y;
    const int c = strcmp(a->prefix, b->prefix);
    if (c)
        return c;
    if (a->step != b->step)
        return (a->step > b->step) - (a->step < b->step);
    if (a->kind != b->kind)
        return (int)a->kind - (int)b->kind;
    return strcmp(a->name, b->name);
}

void brine_listing_free(brine_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        brine__free(l->alloc, (void *)l->v[i].path);
        brine__free(l->alloc, (void *)l->v[i].prefix);
    }
    brine__free(l->alloc, l->v);
    brine__free(l->alloc, l);
}

/* brine_list with the failure recorded in err. */
static int list_dir(brine_listing **out, const char *dir, const char *prefix,
                    const brine_options *opts, brine_error *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return brine__fail(err, BRINE_EINVAL, "brine_list: the directory is NULL or empty");
    if (prefix && !brine__prefix_valid(prefix))
        return brine__fail(err, BRINE_EINVAL,
                           "brine_list: prefix '%s' is invalid: use 1 to 64 characters from "
                           "[A-Za-z0-9_.+-], not starting with '.'",
                           prefix);
    const brine_io_methods *io = opts && opts->io ? opts->io : brine_io_posix();
    const brine_allocator *a = opts ? opts->alloc : NULL;
    brine_listing *l = brine__calloc(a, 1, sizeof *l);
    if (!l)
        return brine__fail(err, BRINE_ENOMEM, "out of memory listing %s", dir);
    l->alloc = a;
    scan s = {l, dir, prefix, 0};
    const int r = io->list_dir(io->ctx, dir, collect, &s);
    if (s.failed || r < 0) {
        brine_listing_free(l);
        if (s.failed)
            return brine__fail(err, BRINE_ENOMEM, "out of memory listing %s", dir);
        brine__fail_errno(err, r, "reading checkpoint directory %s failed", dir);
        return err->code = r == -ENOENT ? BRINE_ENOTFOUND : BRINE_EIO;
    }
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, by_prefix_step);
    *out = l;
    return 0;
}

int brine_list(brine_listing **out, const char *dir, const char *prefix, const brine_options *opts)
{
    brine_error *err = brine_context__open_error();
    brine__error_clear(err);
    if (!out)
        return brine__fail(err, BRINE_EINVAL, "brine_list: out is NULL");
    return list_dir(out, dir, prefix, opts, err);
}

size_t brine_listing_count(const brine_listing *l)
{
    return l ? l->n : 0;
}

int brine_listing_entry(const brine_listing *l, size_t i, brine_entry *out)
{
    if (!l || !out || i >= l->n)
        return BRINE_EINVAL;
    *out = l->v[i];
    return 0;
}

int brine_prune(const char *dir, const char *prefix, int keep_last, int keep_every,
                const brine_options *opts, size_t *deleted)
{
    int rc = 0;
    brine_error *err = brine_context__open_error();
    brine_listing *l = NULL;
    brine_buf why;
    brine__error_clear(err);
    brine_buf__init(&why, opts ? opts->alloc : NULL);
    if (deleted)
        *deleted = 0;
    if (keep_last < 1 || keep_every < 0)
        return brine__fail(err, BRINE_EINVAL, "brine_prune: keep_last %d must be >= 1 and keep_every %d >= 0",
                           keep_last, keep_every);
    if (!prefix)
        return brine__fail(err, BRINE_EINVAL, "brine_prune: prefix is NULL");
    if ((rc = list_dir(&l, dir, prefix, opts, err)))
        return rc;
    const brine_io_methods *io = opts && opts->io ? opts->io : brine_io_posix();
    const brine_allocator *a = opts ? opts->alloc : NULL;
    const int threads = opts ? opts->threads : 0;
    int64_t keep = -1;
    size_t ncommitted = 0;
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    /* The newest checkpoint that verifies completely is never deleted. */
    for (size_t i = l->n; i-- > 0 && keep < 0;) {
        const brine_entry *e = &l->v[i];
        if (e->kind != BRINE_ENTRY_CHECKPOINT)
            continue;
        ncommitted++;
        brine_reader *r = NULL;
        brine_error rerr;
        brine__error_clear(&rerr);
        if (brine_reader__open(&r, e->path, e->step, io, a, threads, BRINE_READER_VERIFY, &rerr) == 0) {
            keep = e->step;
        } else {
            brine_buf__append(&why, "\n  ", 3);
            brine_buf__append(&why, rerr.msg, strlen(rerr.msg));
        }
        brine_reader_close(r);
    }
    brine_h5__quiet_end(&quiet);
    if (keep < 0) {
        brine_buf__put_u8(&why, '\0');
        rc = ncommitted == 0
                 ? brine__fail(err, BRINE_ENOTFOUND, "no checkpoint of prefix '%s' in %s", prefix, dir)
                 : brine__fail(err, BRINE_ECORRUPT,
                               "no checkpoint of prefix '%s' in %s verifies, so nothing was deleted:%s",
                               prefix, dir, why.failed ? " (out of memory)" : (const char *)why.data);
        goto done;
    }
    const int n = brine_scan__rotate_every(io, a, dir, prefix, keep_last, keep_every, keep, err);
    if (n < 0) {
        rc = n;
        goto done;
    }
    if (deleted)
        *deleted = (size_t)n;
done:
    brine_buf__free(&why);
    brine_listing_free(l);
    return rc;
}
