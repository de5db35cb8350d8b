/*
 * Checkpoint directories seen from outside a run (the brine command):
 * brine_list, which names the checkpoints and temporary files of every
 * prefix by the library's own naming rules (io/dir_scan.c), and brine_prune,
 * retention by hand through the same rotation code a save runs; and the
 * manifest calls of multi-rank checkpoint directories (manifest.c's parser).
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
#include "manifest.h"
#include "reader.h"
#include "save.h"

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
    const brine_io_methods *io;
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

/*
 * The directory forms of docs/format.md 7.1, "<prefix>-<12 digits>"
 * (BRINE_ENTRY_MULTIRANK) and ".<prefix>-<12 digits>.tmp-<anything>"
 * (BRINE_ENTRY_TEMPORARY), checked by manifest.c's matchers; the prefix is
 * the text before a '-' followed by 12 digits and the end or ".tmp-".
 * Returns the kind or 0.
 */
static int classify_dir(const char *name, char *prefix, size_t cap, int64_t *step)
{
    const int temp = name[0] == '.';
    const char *base = name + temp;
    for (const char *dash = strchr(base, '-'); dash; dash = strchr(dash + 1, '-')) {
        const size_t plen = (size_t)(dash - base);
        if (plen == 0 || plen >= cap)
            continue;
        memcpy(prefix, base, plen);
        prefix[plen] = '\0';
        if (!brine__prefix_valid(prefix))
            continue;
        if (temp ? brine_mdir__is_temp(name, prefix) : brine_mdir__is_final(name, prefix, step)) {
            if (temp) {
                int64_t sv = 0;
                for (const char *p = dash + 1; p < dash + 13; p++)
                    sv = sv * 10 + (*p - '0');
                *step = sv;
            }
            return temp ? BRINE_ENTRY_TEMPORARY : BRINE_ENTRY_MULTIRANK;
        }
    }
    return 0;
}

/* Adds up the sizes of the rank-<r>.h5 files of a checkpoint directory. */
typedef struct rank_sizes {
    const char *dir;
    uint64_t total;
} rank_sizes;

static int add_rank_size(void *arg, const char *name)
{
    rank_sizes *rs = arg;
    const char *p = name + 5;
    if (strncmp(name, "rank-", 5) != 0 || *p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strcmp(p, ".h5") != 0)
        return 0;
    char path[4096];
    struct stat st;
    const int n = snprintf(path, sizeof path, "%s/%s", rs->dir, name);
    if (n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        rs->total += (uint64_t)st.st_size;
    return 0;
}

static int collect(void *arg, const char *name)
{
    scan *s = arg;
    brine_listing *l = s->l;
    char prefix[80];
    int64_t step = -1;
    int kind = classify(name, prefix, sizeof prefix, &step), is_dir = 0;
    if (!kind)
        is_dir = kind = classify_dir(name, prefix, sizeof prefix, &step);
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
    const int have = stat(path, &st) == 0;
    /* Something named like a checkpoint directory that is not a directory is not one. */
    if (is_dir && (!have || !S_ISDIR(st.st_mode))) {
        brine__free(l->alloc, path);
        brine__free(l->alloc, pre);
        return 0;
    }
    if (have) {
        e->mtime = (int64_t)st.st_mtime;
        e->size = (uint64_t)st.st_size;
        /* A directory's own size means nothing: a multi-rank checkpoint's is its rank files'. */
        if (is_dir) {
            rank_sizes rs = {path, 0};
            (void)s->io->list_dir(s->io->ctx, path, add_rank_size, &rs);
            e->size = rs.total;
        }
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
    /* Committed (a file or a directory) before temporary. */
    const int ta = a->kind == BRINE_ENTRY_TEMPORARY, tb = b->kind == BRINE_ENTRY_TEMPORARY;
    if (ta != tb)
        return ta - tb;
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
    scan s = {l, dir, prefix, io, 0};
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

/* ------------------------------------------------------------------------ */
/* Multi-rank checkpoint directories */

/* The prefix and step of a checkpoint directory's path ("<...>/<prefix>-<12 digits>[/]"). */
static int ckptdir_name(const char *ckptdir, char *prefix, size_t cap, int64_t *step, brine_error *err)
{
    char name[512];
    size_t end = strlen(ckptdir);
    while (end > 1 && ckptdir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && ckptdir[start - 1] != '/')
        start--;
    if (end - start >= sizeof name ||
        (memcpy(name, ckptdir + start, end - start), name[end - start] = '\0',
         classify_dir(name, prefix, cap, step) != BRINE_ENTRY_MULTIRANK))
        return brine__fail(err, BRINE_EINVAL,
                           "%s is not named as a multi-rank checkpoint directory, <prefix>-<12 digits> "
                           "(docs/format.md, section 7)",
                           ckptdir);
    return 0;
}

/* Where brine_manifest__read's lines go: ranks first .. first+cap-1 into v. */
typedef struct rank_lines {
    brine_rank_file *v;
    size_t cap;
    int first;
} rank_lines;

static int keep_line(void *ctx, int rank, uint64_t size, uint32_t crc)
{
    rank_lines *rl = ctx;
    if (rank >= rl->first && (size_t)(rank - rl->first) < rl->cap) {
        rl->v[rank - rl->first].size = size;
        rl->v[rank - rl->first].crc = crc;
    }
    return 0;
}

/* brine_manifest_read with the failure in err, keeping rank lines first .. first+cap-1. */
static int manifest_read(const char *ckptdir, const brine_io_methods *io, const brine_allocator *a,
                         int64_t *step, int *nranks, brine_rank_file *ranks, size_t cap, int first,
                         brine_error *err)
{
    char prefix[80];
    int64_t s = -1;
    int rc = ckptdir_name(ckptdir, prefix, sizeof prefix, &s, err);
    if (rc)
        return rc;
    rank_lines rl = {ranks, ranks ? cap : 0, first};
    if ((rc = brine_manifest__read(io, a, ckptdir, prefix, s, keep_line, &rl, nranks, err))) {
        /* Without a manifest a directory is not committed: damaged, like a bad manifest. */
        char path[4096 + 16];
        struct stat st;
        snprintf(path, sizeof path, "%s/manifest", ckptdir);
        if (stat(path, &st) != 0 && errno == ENOENT)
            rc = brine__fail(err, BRINE_ECORRUPT, "%s is missing, so %s is not a committed checkpoint "
                             "(docs/format.md, section 7)", path, ckptdir);
        return rc;
    }
    if (step)
        *step = s;
    return 0;
}

int brine_manifest_read(const char *ckptdir, const brine_options *opts, int64_t *step, int *nranks,
                        brine_rank_file *ranks, size_t cap)
{
    brine_error *err = brine_context__open_error();
    brine__error_clear(err);
    if (!ckptdir || !nranks || (cap && !ranks))
        return brine__fail(err, BRINE_EINVAL, "brine_manifest_read: NULL argument");
    *nranks = 0;
    const brine_io_methods *io = opts && opts->io ? opts->io : brine_io_posix();
    return manifest_read(ckptdir, io, opts ? opts->alloc : NULL, step, nranks, ranks, cap, 0, err);
}

/* Rank's file of ckptdir against the manifest: exists, size and CRC-32. */
static int rank_check(const char *ckptdir, int rank, const brine_io_methods *io, const brine_allocator *a,
                      char *file, size_t cap, brine_error *err)
{
    int nranks = 0, rc = 0;
    brine_rank_file want = {0, 0};
    uint64_t size = 0;
    uint32_t crc = 0;
    if (rank < 0)
        return brine__fail(err, BRINE_EINVAL, "rank %d of %s: ranks are >= 0", rank, ckptdir);
    const int n = snprintf(file, cap, "%s/rank-%d.h5", ckptdir, rank);
    if (n < 0 || (size_t)n >= cap)
        return brine__fail(err, BRINE_EINVAL, "the path of rank %d's file in %s is too long", rank, ckptdir);
    if ((rc = manifest_read(ckptdir, io, a, NULL, &nranks, &want, 1, rank, err)))
        return rc;
    if (rank >= nranks)
        return brine__fail(err, BRINE_ENOTFOUND, "%s has %d rank%s (0 to %d): there is no rank %d", ckptdir,
                           nranks, nranks == 1 ? "" : "s", nranks - 1, rank);
    struct stat st;
    if (stat(file, &st) != 0 && errno == ENOENT)
        return brine__fail(err, BRINE_ECORRUPT, "%s is missing: the manifest records it with %" PRIu64 " bytes",
                           file, want.size);
    if ((rc = brine_coll__file_crc(io, file, &size, &crc, err)))
        return rc;
    if (size != want.size || crc != want.crc)
        return brine__fail(err, BRINE_ECORRUPT,
                           "%s: the manifest records %" PRIu64 " bytes with CRC-32 %08" PRIx32
                           ", the file has %" PRIu64 " bytes with CRC-32 %08" PRIx32,
                           file, want.size, want.crc, size, crc);
    return 0;
}

int brine_rank_file_check(const char *ckptdir, int rank, const brine_options *opts)
{
    brine_error *err = brine_context__open_error();
    char file[4096];
    brine__error_clear(err);
    if (!ckptdir)
        return brine__fail(err, BRINE_EINVAL, "brine_rank_file_check: ckptdir is NULL");
    const brine_io_methods *io = opts && opts->io ? opts->io : brine_io_posix();
    return rank_check(ckptdir, rank, io, opts ? opts->alloc : NULL, file, sizeof file, err);
}

/*
 * Verifies a multi-rank checkpoint completely, as a restore with its rank
 * count would: the manifest, then each rank file's size and CRC-32 and the
 * file itself (BRINE_READER_VERIFY).  The first failure goes to err.
 */
static int verify_multirank(const char *ckptdir, int64_t step, const brine_io_methods *io,
                            const brine_allocator *a, int threads, brine_error *err)
{
    int nranks = 0;
    char file[4096];
    int rc = manifest_read(ckptdir, io, a, NULL, &nranks, NULL, 0, 0, err);
    for (int k = 0; k < nranks && !rc; k++) {
        brine_reader *r = NULL;
        if (!(rc = rank_check(ckptdir, k, io, a, file, sizeof file, err)))
            rc = brine_reader__open(&r, file, step, io, a, threads, BRINE_READER_VERIFY, err);
        brine_reader_close(r);
    }
    return rc;
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
    /* Files and directories (a run is written in one mode) each keep their newest that verifies. */
    int64_t keep_file = -1, keep_dir = -1;
    size_t nfiles = 0, ndirs = 0;
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    for (size_t i = l->n; i-- > 0;) {
        const brine_entry *e = &l->v[i];
        const int dir_kind = e->kind == BRINE_ENTRY_MULTIRANK;
        if (e->kind == BRINE_ENTRY_TEMPORARY)
            continue;
        *(dir_kind ? &ndirs : &nfiles) += 1;
        if ((dir_kind ? keep_dir : keep_file) >= 0)
            continue;
        brine_error rerr;
        brine__error_clear(&rerr);
        int vrc;
        if (dir_kind) {
            vrc = verify_multirank(e->path, e->step, io, a, threads, &rerr);
        } else {
            brine_reader *r = NULL;
            vrc = brine_reader__open(&r, e->path, e->step, io, a, threads, BRINE_READER_VERIFY, &rerr);
            brine_reader_close(r);
        }
        if (vrc == 0) {
            *(dir_kind ? &keep_dir : &keep_file) = e->step;
        } else {
            brine_buf__append(&why, "\n  ", 3);
            brine_buf__append(&why, rerr.msg, strlen(rerr.msg));
        }
    }
    brine_h5__quiet_end(&quiet);
    if ((nfiles && keep_file < 0) || (ndirs && keep_dir < 0) || nfiles + ndirs == 0) {
        brine_buf__put_u8(&why, '\0');
        rc = nfiles + ndirs == 0
                 ? brine__fail(err, BRINE_ENOTFOUND, "no checkpoint of prefix '%s' in %s", prefix, dir)
                 : brine__fail(err, BRINE_ECORRUPT,
                               "no %scheckpoint of prefix '%s' in %s verifies, so nothing was deleted:%s",
                               nfiles && keep_file < 0 ? "" : "multi-rank ", prefix, dir,
                               why.failed ? " (out of memory)" : (const char *)why.data);
        goto done;
    }
    int n = 0, m = 0;
    if (nfiles && (n = brine_scan__rotate_every(io, a, dir, prefix, keep_last, keep_every, keep_file, err)) < 0) {
        rc = n;
        goto done;
    }
    if (ndirs && (m = brine_mdir__rotate(io, a, dir, prefix, keep_last, keep_every, keep_dir, err)) < 0) {
        rc = m;
        goto done;
    }
    if (deleted)
        *deleted = (size_t)n + (size_t)m;
done:
    brine_buf__free(&why);
    brine_listing_free(l);
    return rc;
}
