/*
 * Collective checkpoints (docs/mpi.md, docs/format.md section 7): a group
 * of processes, each writing its own file of one checkpoint, and a commit
 * that makes the whole checkpoint appear at once or not at all.
 *
 * One checkpoint is the directory "<dir>/<prefix>-<step 12 digits>" holding
 * "rank-<r>.h5" per rank and "manifest", which rank 0 writes last.  It is
 * built under a hidden temporary name, ".<prefix>-<step>.tmp-<nonce>", and
 * renamed to its final name only when every rank's file is on disk: the
 * rename is the commit, as it is for single files.  Any directory of the
 * temporary form is a leftover, removed by the next save; a directory of the
 * final form without a valid manifest is never restored from.
 *
 * The I/O goes through b->io, but for rmdir(2), which the method table does
 * not have (removing a temporary directory is cleanup; a failure only leaves
 * it for the next save).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/alloc.h"
#include "../common/buffer.h"
#include "../io/dir_scan.h"
#include "../io/io.h"
#include "../io/publish.h"
#include "coll.h"
#include "core.h"
#include "save.h"

#define STEP_DIGITS 12
/* A manifest larger than this is not one brine wrote (a line per rank). */
#define MANIFEST_MAX ((uint64_t)64 << 20)
#define MANIFEST_MAGIC "brine-manifest 1\n"

/* ------------------------------------------------------------------------ */
/* The group */

int brine_coll__attach(brine *b, const brine_coll *coll)
{
    brine_error *err = brine_context__open_error();
    brine_coll *c = NULL;
    if (!b || !coll) {
        if (coll && coll->close)
            coll->close(coll->ctx);
        return brine__fail(err, BRINE_EINVAL, "brine_coll__attach: NULL argument");
    }
    if (b->coll) {
        coll->close(coll->ctx);
        return brine__fail(err, BRINE_EINVAL, "brine_coll__attach: the context already has a group");
    }
    /* Whether a save is in flight differs between ranks: waiting is the only way they stay together. */
    if (b->opts.async_flags & BRINE_ASYNC_NOWAIT) {
        coll->close(coll->ctx);
        return brine__fail(err, BRINE_EINVAL,
                           "options.async_flags has BRINE_ASYNC_NOWAIT, which cannot work "
                           "collectively: ranks would disagree on whether a save is in flight");
    }
    if (!(c = brine__alloc(b->alloc, sizeof *c))) {
        coll->close(coll->ctx);
        return brine__fail(err, BRINE_ENOMEM, "out of memory");
    }
    *c = *coll;
    b->coll = c;
    return 0;
}

int brine_coll__open_failed(int code, const char *msg)
{
    return brine__fail(brine_context__open_error(), code, "%s", msg);
}

void brine_coll__close(brine *b)
{
    if (!b->coll)
        return;
    b->coll->close(b->coll->ctx);
    brine__free(b->alloc, b->coll);
    b->coll = NULL;
    b->coll_inflight = 0;
}

/* A transport failure: the group cannot be trusted any more. */
static int transport_failed(brine_error *err, const char *what)
{
    return brine__fail(err, BRINE_EIO, "the collective %s between the ranks failed", what);
}

/* ------------------------------------------------------------------------ */
/* Names */

/*
 * Matches "<prefix>-<12 digits>" at the start of name; returns the
 * character after the digits (NULL when it does not match) and the step.
 */
static const char *match_dir(const char *name, const char *prefix, int64_t *step)
{
    const size_t plen = strlen(prefix);
    if (strncmp(name, prefix, plen) != 0 || name[plen] != '-')
        return NULL;
    const char *p = name + plen + 1;
    int64_t s = 0;
    for (int i = 0; i < STEP_DIGITS; i++, p++) {
        if (*p < '0' || *p > '9')
            return NULL;
        s = s * 10 + (*p - '0');
    }
    *step = s;
    return p;
}

/* A committed checkpoint directory's name, "<prefix>-<12 digits>". */
static int is_final_dir(const char *name, const char *prefix, int64_t *step)
{
    const char *end = match_dir(name, prefix, step);
    return end && *end == '\0';
}

/* A temporary checkpoint directory's name, ".<prefix>-<12 digits>.tmp-<anything>". */
static int is_temp_dir(const char *name, const char *prefix)
{
    int64_t step = 0;
    if (name[0] != '.')
        return 0;
    const char *end = match_dir(name + 1, prefix, &step);
    return end && strncmp(end, ".tmp-", 5) == 0;
}

static int final_path(char *out, size_t cap, const brine *b, int64_t step)
{
    const int n = snprintf(out, cap, "%s/%s-%012" PRId64, b->dir, b->prefix, step);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Directories */

typedef struct names {
    const brine_allocator *a;
    const char *prefix; /* NULL: every name */
    int temps;          /* with prefix: 1 temporary directories, 0 committed ones */
    char **v;
    int64_t *steps;
    size_t n, cap;
    int failed;
} names;

static int collect(void *arg, const char *name)
{
    names *s = arg;
    int64_t step = 0;
    if (s->prefix && !(s->temps ? is_temp_dir(name, s->prefix) : is_final_dir(name, s->prefix, &step)))
        return 0;
    if (s->n == s->cap) {
        const size_t cap = s->cap ? 2 * s->cap : 16;
        void *v = s->v, *t = s->steps;
        if (brine__resize(s->a, &v, s->n * sizeof *s->v, cap * sizeof *s->v) ||
            (s->v = v, brine__resize(s->a, &t, s->n * sizeof *s->steps, cap * sizeof *s->steps))) {
            s->failed = 1;
            return 1;
        }
        s->steps = t;
        s->cap = cap;
    }
    if (!(s->v[s->n] = brine__strdup(s->a, name))) {
        s->failed = 1;
        return 1;
    }
    s->steps[s->n++] = step;
    return 0;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        brine__free(s->a, s->v[i]);
    brine__free(s->a, s->v);
    brine__free(s->a, s->steps);
}

/* Lists dir into s.  0, or an error in err (BRINE_ENOTFOUND when dir does not exist). */
static int list(const brine *b, const char *dir, names *s, brine_error *err)
{
    const int r = b->io->list_dir(b->io->ctx, dir, collect, s);
    if (s->failed)
        return brine__fail(err, BRINE_ENOMEM, "listing %s: out of memory", dir);
    if (r < 0) {
        brine__fail_errno(err, r, "reading directory %s failed", dir);
        return err->code = r == -ENOENT ? BRINE_ENOTFOUND : BRINE_EIO;
    }
    return 0;
}

/* Removes the directory path and the files in it.  Best effort (cleanup). */
static void remove_tree(const brine *b, const char *path)
{
    names s = {b->alloc, NULL, 0, NULL, NULL, 0, 0, 0};
    brine_error ignored;
    char file[4096];
    if (list(b, path, &s, &ignored) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const int n = snprintf(file, sizeof file, "%s/%s", path, s.v[i]);
            if (n > 0 && (size_t)n < sizeof file)
                (void)b->io->unlink(b->io->ctx, file);
        }
    }
    names_free(&s);
    (void)rmdir(path);
}

/* Removes the temporary checkpoint directories of the prefix (leftovers of killed saves). */
static void remove_temp_dirs(const brine *b)
{
    names s = {b->alloc, b->prefix, 1, NULL, NULL, 0, 0, 0};
    brine_error ignored;
    char path[4096];
    if (list(b, b->dir, &s, &ignored) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const int n = snprintf(path, sizeof path, "%s/%s", b->dir, s.v[i]);
            if (n > 0 && (size_t)n < sizeof path)
                remove_tree(b, path);
        }
    }
    names_free(&s);
}

/*
 * Deletes the committed checkpoint directory of step: renamed to a
 * temporary name first (atomic, then made durable), so that a crash half
 * way through the deletion never leaves a directory that looks committed.
 */
static int delete_checkpoint(const brine *b, int64_t step, const char *why)
{
    char from[4096], to[4096];
    if (final_path(from, sizeof from, b, step))
        return -1;
    const int n = snprintf(to, sizeof to, "%s/.%s-%012" PRId64 ".tmp-%s%ld", b->dir, b->prefix,
                           step, why, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof to || b->io->rename(b->io->ctx, from, to) < 0)
        return -1;
    (void)b->io->fsync_dir(b->io->ctx, b->dir);
    remove_tree(b, to);
    return 0;
}

static int by_step_desc(const void *x, const void *y)
{
    const int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
    return (a < c) - (a > c);
}

/* The steps of the committed checkpoint directories, newest first, into *out (*n of them). */
static int list_steps(const brine *b, int64_t **out, size_t *n, brine_error *err)
{
    names s = {b->alloc, b->prefix, 0, NULL, NULL, 0, 0, 0};
    *out = NULL;
    *n = 0;
    const int rc = list(b, b->dir, &s, err);
    if (rc == 0 && s.n) {
        qsort(s.steps, s.n, sizeof *s.steps, by_step_desc);
        *out = s.steps;
        *n = s.n;
        s.steps = NULL;
    }
    names_free(&s);
    return rc;
}

/*
 * Rotation of whole checkpoint directories, as brine_scan__rotate_every does
 * for files: keep_last newest (not counting multiples of keep_every, which
 * stay), and keep_step.  Best effort.
 */
static void rotate(const brine *b, int64_t keep_step)
{
    int64_t *steps = NULL;
    size_t n = 0, rotating = 0;
    brine_error ignored;
    const int keep_last = b->opts.keep_last, keep_every = b->opts.keep_every;
    if (keep_last <= 0 || list_steps(b, &steps, &n, &ignored))
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (keep_every > 0 && steps[i] % keep_every == 0)
            continue;
        if (++rotating > (size_t)keep_last && steps[i] != keep_step)
            (void)delete_checkpoint(b, steps[i], "del");
    }
done:
    brine__free(b->alloc, steps);
}

/* ------------------------------------------------------------------------ */
/* Files */

/* Reads the whole file at path (at most max bytes) into *out (allocated through a). */
static int read_whole(const brine *b, const char *path, uint64_t max, uint8_t **out, uint64_t *size,
                      brine_error *err)
{
    int rc = 0;
    uint8_t *buf = NULL;
    const brine_io_methods *io = b->io;
    const int fd = io->open(io->ctx, path, O_RDONLY, 0);
    *out = NULL;
    if (fd < 0)
        return brine__fail_errno(err, fd, "open of %s failed", path);
    int r = io->fsize(io->ctx, fd, size);
    if (r < 0) {
        rc = brine__fail_errno(err, r, "fstat of %s failed", path);
        goto done;
    }
    if (*size > max) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s is %" PRIu64 " bytes, more than the %" PRIu64 " a manifest can be",
                         path, *size, max);
        goto done;
    }
    if (!(buf = brine__alloc(b->alloc, (size_t)*size + 1))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    if ((r = brine_io__pread_all(io, fd, buf, (size_t)*size, 0)) < 0) {
        rc = brine__fail_errno(err, r, "read of %s failed", path);
        goto done;
    }
    buf[*size] = '\0';
    *out = buf;
    buf = NULL;
done:
    brine__free(b->alloc, buf);
    io->close(io->ctx, fd);
    return rc;
}

int brine_coll__file_crc(const brine_io_methods *io, const char *path, uint64_t *size, uint32_t *crc,
                         brine_error *err)
{
    int rc = 0;
    static const size_t chunk = (size_t)1 << 20;
    unsigned char *buf = NULL;
    uLong c = crc32(0L, Z_NULL, 0);
    const int fd = io->open(io->ctx, path, O_RDONLY, 0);
    if (fd < 0)
        return brine__fail_errno(err, fd, "open of %s failed", path);
    int r = io->fsize(io->ctx, fd, size);
    if (r < 0) {
        rc = brine__fail_errno(err, r, "fstat of %s failed", path);
        goto done;
    }
    if (!(buf = malloc(chunk))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory checksumming %s", path);
        goto done;
    }
    for (uint64_t off = 0; off < *size;) {
        const size_t n = *size - off < chunk ? (size_t)(*size - off) : chunk;
        if ((r = brine_io__pread_all(io, fd, buf, n, off)) < 0) {
            rc = brine__fail_errno(err, r, "read of %s failed", path);
            goto done;
        }
        c = crc32(c, buf, (uInt)n);
        off += n;
    }
    *crc = (uint32_t)c;
done:
    free(buf);
    io->close(io->ctx, fd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The manifest (docs/format.md, 7.2) */

typedef struct rank_report {
    int32_t rc;
    uint32_t crc;
    uint64_t size;
    char msg[496]; /* the start of the failing rank's message */
} rank_report;

/* Writes the manifest of reports into tmpdir (temporary name, fsync, rename). */
static int write_manifest(const brine *b, int64_t step, const char *tmpdir, const rank_report *rep,
                          brine_error *err)
{
    int rc = 0, fd = -1, r = 0;
    const brine_io_methods *io = b->io;
    char tmp[4096], final[4096], line[256];
    brine_buf text;
    brine_buf__init(&text, b->alloc);
    const int n = b->coll->size;

    snprintf(tmp, sizeof tmp, "%s/.manifest.tmp", tmpdir);
    snprintf(final, sizeof final, "%s/manifest", tmpdir);
    brine_buf__append(&text, MANIFEST_MAGIC, strlen(MANIFEST_MAGIC));
    snprintf(line, sizeof line, "prefix %s\nstep %" PRId64 "\nnranks %d\n", b->prefix, step, n);
    brine_buf__append(&text, line, strlen(line));
    for (int k = 0; k < n; k++) {
        snprintf(line, sizeof line, "rank %d rank-%d.h5 %" PRIu64 " %08" PRIx32 "\n", k, k, rep[k].size,
                 rep[k].crc);
        brine_buf__append(&text, line, strlen(line));
    }
    if (text.failed) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory writing the manifest");
        goto done;
    }
    snprintf(line, sizeof line, "checksum %08lx\n", crc32(crc32(0L, Z_NULL, 0), text.data, (uInt)text.len));
    brine_buf__append(&text, line, strlen(line));
    if (text.failed) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory writing the manifest");
        goto done;
    }
    if ((fd = io->open(io->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666)) < 0) {
        rc = brine__fail_errno(err, fd, "open of %s failed", tmp);
        goto done;
    }
    if ((r = brine_io__pwrite_all(io, fd, text.data, text.len, 0)) < 0 || (r = io->fsync(io->ctx, fd)) < 0) {
        rc = brine__fail_errno(err, r, "writing %s failed", tmp);
        goto done;
    }
    r = io->close(io->ctx, fd);
    fd = -1;
    if (r < 0) {
        rc = brine__fail_errno(err, r, "close of %s failed", tmp);
        goto done;
    }
    rc = brine_publish__commit(io, tmp, final, tmpdir, err);
done:
    if (fd >= 0) {
        io->close(io->ctx, fd);
        brine_publish__discard(io, tmp);
    }
    brine_buf__free(&text);
    return rc;
}

/* Strict decimal (no sign, no spaces) from *p up to a delimiter; advances *p past it. */
static int take_u64(const char **p, char delim, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != delim)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static int take_hex8(const char **p, char delim, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++, s++) {
        const char c = *s;
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    if (*s != delim)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static int take_word(const char **p, const char *word)
{
    const size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0)
        return -1;
    *p += n;
    return 0;
}

/*
 * Reads and checks the manifest of the checkpoint directory cdir: its
 * checksum, prefix, step, and the entry of rank (size and crc).  *nranks
 * gets its rank count (checked by the caller against the group).
 */
static int read_manifest(const brine *b, const char *cdir, int64_t step, int rank, int *nranks,
                         uint64_t *size, uint32_t *crc, brine_error *err)
{
    int rc = 0;
    char path[4096 + 16], want[128];
    uint8_t *buf = NULL;
    uint64_t len = 0, v = 0, count = 0;
    snprintf(path, sizeof path, "%s/manifest", cdir);
    if ((rc = read_whole(b, path, MANIFEST_MAX, &buf, &len, err)))
        goto done;
    const char *text = (const char *)buf;
    /* The last line, "checksum <8 hex>\n", covers every byte before it. */
    const size_t tail = sizeof "checksum 00000000\n" - 1;
    uint32_t stored = 0;
    const char *t = text + (len >= tail ? len - tail : 0);
    if (len < tail + strlen(MANIFEST_MAGIC) || strlen(text) != len || take_word(&t, "checksum ") ||
        take_hex8(&t, '\n', &stored) || (len > tail && text[len - tail - 1] != '\n')) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s is not a brine manifest (no checksum line at its end)", path);
        goto done;
    }
    const uint32_t actual = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(len - tail));
    if (actual != stored) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")",
                         path, stored, actual);
        goto done;
    }
    const char *p = text;
    if (take_word(&p, MANIFEST_MAGIC)) {
        rc = brine__fail(err, BRINE_EVERSION, "%s: first line is not '%.*s' (a newer format?)", path,
                         (int)strlen(MANIFEST_MAGIC) - 1, MANIFEST_MAGIC);
        goto done;
    }
    snprintf(want, sizeof want, "prefix %s\nstep ", b->prefix);
    if (take_word(&p, want) || take_u64(&p, '\n', &v) || (int64_t)v != step || take_word(&p, "nranks ") ||
        take_u64(&p, '\n', &count) || count < 1 || count > INT32_MAX) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: its header does not name prefix %s, step %" PRId64
                         " and a rank count", path, b->prefix, step);
        goto done;
    }
    *nranks = (int)count;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t r = 0, sz = 0;
        uint32_t c = 0;
        char name[64];
        snprintf(name, sizeof name, "rank-%" PRIu64 ".h5 ", k);
        if (take_word(&p, "rank ") || take_u64(&p, ' ', &r) || r != k || take_word(&p, name) ||
            take_u64(&p, ' ', &sz) || take_hex8(&p, '\n', &c)) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s: the line of rank %" PRIu64 " is malformed", path, k);
            goto done;
        }
        if ((int)k == rank) {
            *size = sz;
            *crc = c;
        }
    }
    if (p != t - tail) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: unexpected text after the rank lines", path);
        goto done;
    }
done:
    brine__free(b->alloc, buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Save */

int brine_coll__prepare(brine *b, int64_t step, char *tmpdir, size_t cap)
{
    struct {
        int32_t rc;
        char text[4096 + 512];
    } out;
    memset(&out, 0, sizeof out);
    if (b->coll->rank == 0) {
        brine_error err;
        brine__error_clear(&err);
        remove_temp_dirs(b);
        const int n = snprintf(out.text, sizeof out.text, "%s/.%s-%012" PRId64 ".tmp-%ld", b->dir,
                               b->prefix, step, (long)getpid());
        if (n < 0 || (size_t)n >= cap) {
            out.rc = brine__fail(&err, BRINE_EINVAL, "the temporary checkpoint directory's path in %s is too long",
                                 b->dir);
        } else {
            const int r = b->io->mkdir(b->io->ctx, out.text, 0777);
            if (r < 0 && r != -EEXIST)
                out.rc = brine__fail_errno(&err, r, "mkdir of %s failed", out.text);
        }
        if (out.rc)
            snprintf(out.text, sizeof out.text, "%s", err.msg);
    }
    if (b->coll->bcast(b->coll->ctx, &out, sizeof out, 0))
        return transport_failed(&b->err, "broadcast of the temporary directory");
    if (out.rc)
        return brine__fail(&b->err, out.rc, "saving step %" PRId64 " to %s (on rank 0): %s", step, b->dir,
                           out.text);
    snprintf(tmpdir, cap, "%s", out.text);
    return 0;
}

/* Rank 0's commit: manifest, fsync, rename into place (replacing a checkpoint of the same step). */
static int commit(brine *b, int64_t step, const char *tmpdir, const rank_report *rep, brine_error *err)
{
    int rc = 0;
    char final[4096];
    if (final_path(final, sizeof final, b, step))
        return brine__fail(err, BRINE_EINVAL, "the checkpoint directory's path in %s is too long", b->dir);
    if ((rc = write_manifest(b, step, tmpdir, rep, err)))
        return rc;
    /* A checkpoint of this step from an earlier run is replaced: rename(2) does not replace a
     * directory that has files, so it goes first; a crash between the two leaves the older
     * checkpoints, which restore falls back to. */
    (void)delete_checkpoint(b, step, "old");
    const int r = b->io->rename(b->io->ctx, tmpdir, final);
    if (r < 0)
        return brine__fail_errno(err, r, "rename of %s to %s failed", tmpdir, final);
    const int d = b->io->fsync_dir(b->io->ctx, b->dir);
    if (d < 0)
        return brine__fail_errno(err, d, "fsync of directory %s failed, so the rename of %s to %s may not survive a crash",
                                 b->dir, tmpdir, final);
    return 0;
}

int brine_coll__finish(brine *b, int64_t step, const char *tmpdir, int local_rc, uint64_t size,
                       uint32_t crc, brine_error *err)
{
    int rc = 0;
    brine_coll *const g = b->coll;
    rank_report mine, *all = NULL;
    struct {
        int32_t rc;
        char msg[BRINE_ERRMSG_MAX];
    } outcome;
    char ranks[256] = "";
    int first = -1, nfailed = 0;

    memset(&mine, 0, sizeof mine);
    memset(&outcome, 0, sizeof outcome);
    mine.rc = local_rc;
    mine.size = size;
    mine.crc = crc;
    if (local_rc)
        snprintf(mine.msg, sizeof mine.msg, "%.*s", (int)sizeof mine.msg - 1, err->msg);
    /* Without memory for the agreement this rank cannot stay in step with the group. */
    if (!(all = brine__calloc(b->alloc, (size_t)g->size, sizeof *all)))
        abort();
    if (g->allgather(g->ctx, &mine, sizeof mine, all)) {
        rc = transport_failed(err, "agreement on the saved files");
        goto done;
    }
    for (int k = 0; k < g->size; k++) {
        if (!all[k].rc)
            continue;
        if (first < 0)
            first = k;
        const size_t used = strlen(ranks);
        if (++nfailed <= 16)
            snprintf(ranks + used, sizeof ranks - used, "%s%d", used ? ", " : "", k);
        else if (nfailed == 17)
            snprintf(ranks + used, sizeof ranks - used, ", ...");
    }
    if (first < 0 && g->rank == 0) {
        brine_error cerr;
        brine__error_clear(&cerr);
        outcome.rc = commit(b, step, tmpdir, all, &cerr);
        if (outcome.rc)
            snprintf(outcome.msg, sizeof outcome.msg, "saving step %" PRId64 " to %.1024s (committing on rank 0): %.2900s",
                     step, b->dir, cerr.msg);
        else
            rotate(b, step); /* only after a commit: cleanup, retried by the next save */
    }
    if (first >= 0) {
        /* Nothing is committed: the partial directory goes; earlier checkpoints are untouched. */
        if (g->rank == 0)
            remove_tree(b, tmpdir);
        if (local_rc) {
            rc = local_rc; /* this rank's own message stays */
            goto done;
        }
        rc = brine__fail(err, all[first].rc,
                         "saving step %" PRId64 " to %s: rank%s %s failed, so no rank committed the "
                         "checkpoint (rank %d: %s)",
                         step, b->dir, nfailed == 1 ? "" : "s", ranks, first, all[first].msg);
        goto done;
    }
    if (g->bcast(g->ctx, &outcome, sizeof outcome, 0)) {
        rc = transport_failed(err, "broadcast of the commit's outcome");
        goto done;
    }
    if (outcome.rc) {
        if (g->rank == 0)
            remove_tree(b, tmpdir);
        rc = brine__fail(err, outcome.rc, "%s", outcome.msg);
    }
done:
    brine__free(b->alloc, all);
    return rc;
}

int brine_coll__save(brine *b, const brine_save_state *s, int64_t step, int local_rc)
{
    char tmpdir[4096];
    uint64_t size = 0;
    uint32_t crc = 0;
    brine_error mine = b->err;
    int rc = brine_coll__prepare(b, step, tmpdir, sizeof tmpdir);
    if (rc)
        return rc;
    if (local_rc)
        b->err = mine;
    else
        rc = brine_save__write_rank(b, s, step, tmpdir, &size, &crc, &b->err);
    return brine_coll__finish(b, step, tmpdir, local_rc ? local_rc : rc, size, crc, &b->err);
}

/* ------------------------------------------------------------------------ */
/* Restore */

int brine_coll__next_candidate(brine *b, size_t *cursor, int64_t *step)
{
    struct {
        int64_t step;
        int32_t rc;
        char msg[1024];
    } out;
    memset(&out, 0, sizeof out);
    out.step = -1;
    if (b->coll->rank == 0) {
        int64_t *steps = NULL;
        size_t n = 0;
        brine_error err;
        brine__error_clear(&err);
        out.rc = list_steps(b, &steps, &n, &err);
        if (out.rc)
            snprintf(out.msg, sizeof out.msg, "%.*s", (int)sizeof out.msg - 1, err.msg);
        else if (*cursor < n)
            out.step = steps[*cursor];
        brine__free(b->alloc, steps);
    }
    (*cursor)++;
    if (b->coll->bcast(b->coll->ctx, &out, sizeof out, 0))
        return transport_failed(&b->err, "broadcast of the checkpoint to restore");
    *step = out.step;
    if (out.rc)
        return brine__fail(&b->err, out.rc, "on rank 0: %s", out.msg);
    return 0;
}

int brine_coll__check_rank_file(brine *b, int64_t step, char *file, size_t cap)
{
    int rc = 0, nranks = 0;
    char cdir[4096];
    uint64_t want_size = 0, size = 0;
    uint32_t want_crc = 0, crc = 0;
    const int rank = b->coll->rank;
    if (final_path(cdir, sizeof cdir, b, step))
        return brine__fail(&b->err, BRINE_EINVAL, "the checkpoint directory's path in %s is too long", b->dir);
    const int n = snprintf(file, cap, "%s/rank-%d.h5", cdir, rank);
    if (n < 0 || (size_t)n >= cap)
        return brine__fail(&b->err, BRINE_EINVAL, "the path of rank %d's file in %s is too long", rank, cdir);
    if ((rc = read_manifest(b, cdir, step, rank, &nranks, &want_size, &want_crc, &b->err)))
        return rc;
    if (nranks != b->coll->size)
        return brine__fail(&b->err, BRINE_EMISMATCH,
                           "%s was saved by %d rank%s but this run has %d: restore with %d ranks (brine "
                           "does not re-partition; each rank's file is %s/rank-<r>.h5)",
                           cdir, nranks, nranks == 1 ? "" : "s", b->coll->size, nranks, cdir);
    if ((rc = brine_coll__file_crc(b->io, file, &size, &crc, &b->err)))
        return rc;
    if (size != want_size || crc != want_crc)
        return brine__fail(&b->err, BRINE_ECORRUPT,
                           "%s: the manifest records %" PRIu64 " bytes with CRC-32 %08" PRIx32
                           ", the file has %" PRIu64 " bytes with CRC-32 %08" PRIx32,
                           file, want_size, want_crc, size, crc);
    return 0;
}

int brine_coll__agree(brine *b, int rc, int *first_rc, char *ranks, size_t cap)
{
    brine_coll *const g = b->coll;
    int32_t *all = brine__calloc(b->alloc, (size_t)g->size, sizeof *all);
    int32_t mine = rc;
    int first = 0, nfailed = 0;
    ranks[0] = '\0';
    if (!all)
        abort(); /* no memory for the collective: cannot stay in step with the group */
    if (g->allgather(g->ctx, &mine, sizeof mine, all)) {
        brine__free(b->alloc, all);
        return transport_failed(&b->err, "agreement on the checkpoint");
    }
    for (int k = 0; k < g->size; k++) {
        if (!all[k])
            continue;
        if (!first)
            first = all[k];
        const size_t used = strlen(ranks);
        if (++nfailed <= 16)
            snprintf(ranks + used, cap - used, "%s%d", used ? ", " : "", k);
        else if (nfailed == 17)
            snprintf(ranks + used, cap - used, ", ...");
    }
    brine__free(b->alloc, all);
    *first_rc = first;
    return 0;
}
