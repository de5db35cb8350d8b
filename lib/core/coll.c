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
 * Names, the manifest's parser, deletion and rotation of directories are in
 * manifest.c, shared with the tools (listing.c).
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
#include "manifest.h"
#include "save.h"


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

static int final_path(char *out, size_t cap, const brine *b, int64_t step)
{
    const int n = snprintf(out, cap, "%s/%s-%012" PRId64, b->dir, b->prefix, step);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Files */

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
    brine_buf__append(&text, BRINE_MANIFEST_MAGIC, strlen(BRINE_MANIFEST_MAGIC));
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
        brine_mdir__remove_temps(b->io, b->alloc, b->dir, b->prefix);
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
    (void)brine_mdir__delete(b->io, b->alloc, b->dir, b->prefix, step, "old");
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
            /* Only after a commit: cleanup, retried by the next save. */
            (void)brine_mdir__rotate(b->io, b->alloc, b->dir, b->prefix, b->opts.keep_last,
                                     b->opts.keep_every, step, &cerr);
    }
    if (first >= 0) {
        /* Nothing is committed: the partial directory goes; earlier checkpoints are untouched. */
        if (g->rank == 0)
            brine_mdir__remove_tree(b->io, b->alloc, tmpdir);
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
            brine_mdir__remove_tree(b->io, b->alloc, tmpdir);
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
        out.rc = brine_mdir__list_steps(b->io, b->alloc, b->dir, b->prefix, &steps, &n, &err);
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

/* The manifest's line of one rank (brine_manifest__read's callback). */
typedef struct rank_line {
    int rank;
    uint64_t size;
    uint32_t crc;
} rank_line;

static int take_rank(void *ctx, int rank, uint64_t size, uint32_t crc)
{
    rank_line *l = ctx;
    if (rank == l->rank) {
        l->size = size;
        l->crc = crc;
    }
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
    rank_line want = {rank, 0, 0};
    if ((rc = brine_manifest__read(b->io, b->alloc, cdir, b->prefix, step, take_rank, &want, &nranks, &b->err)))
        return rc;
    want_size = want.size;
    want_crc = want.crc;
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
