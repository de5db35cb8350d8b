/*
 * Atomic publication (docs/format.md, section 1): a checkpoint is written
 * under a hidden temporary name, fsynced by its writer, renamed to its final
 * name and the directory fsynced.  rename(2) replaces the final name
 * atomically, so a reader sees the old file or the new one, never a mix.
 */
#include "publish.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dir_scan.h"

/* Room for the longest path mkdirs handles without an allocator (Linux's PATH_MAX). */
#define MKDIRS_MAX 4096

int brine_publish__paths(char *final, size_t final_size, char *tmp, size_t tmp_size,
                         const char *dir, const char *prefix, int64_t step, brine_error *err)
{
    int rc = 0;
    if (step < 0 || step > BRINE_MAX_STEP) {
        rc = brine__fail(err, BRINE_EINVAL, "step %lld is outside 0..%lld", (long long)step,
                         (long long)BRINE_MAX_STEP);
        goto done;
    }
    int n = snprintf(final, final_size, "%s/%s-%012lld.h5", dir, prefix, (long long)step);
    if (n < 0 || (size_t)n >= final_size) {
        rc = brine__fail(err, BRINE_EINVAL, "checkpoint path in %s is too long (%d bytes, room for %zu)",
                         dir, n, final_size ? final_size - 1 : 0);
        goto done;
    }
    /* The pid keeps two writers' leftovers apart should the one-writer rule be broken. */
    n = snprintf(tmp, tmp_size, "%s/.%s-%012lld.h5.tmp-%ld", dir, prefix, (long long)step,
                 (long)getpid());
    if (n < 0 || (size_t)n >= tmp_size) {
        rc = brine__fail(err, BRINE_EINVAL,
                         "temporary checkpoint path in %s is too long (%d bytes, room for %zu)", dir, n,
                         tmp_size ? tmp_size - 1 : 0);
        goto done;
    }
done:
    return rc;
}

/*
 * mkdir of path; when it creates the directory, fsyncs its parent so that
 * the new directory survives a crash (the commit only fsyncs the checkpoint
 * directory itself, not the entries leading to it).  *created says whether
 * it was created; an existing one is not an error.
 */
static int make_one(const brine_io_methods *io, char *path, int *created, brine_error *err)
{
    int rc = 0;
    *created = 0;
    int r = io->mkdir(io->ctx, path, 0777);
    if (r == -EEXIST)
        goto done;
    if (r < 0) {
        rc = brine__fail_errno(err, r, "mkdir of %s failed", path);
        goto done;
    }
    *created = 1;
    /* The parent: up to the last slash, with repeated slashes before it. */
    char *slash = strrchr(path, '/');
    while (slash && slash > path && slash[-1] == '/')
        slash--;
    const char *parent = ".";
    if (slash == path) {
        parent = "/";
    } else if (slash) {
        *slash = '\0';
        parent = path;
    }
    r = io->fsync_dir(io->ctx, parent);
    if (r < 0)
        rc = brine__fail_errno(err, r, "fsync of directory %s failed", parent);
    if (slash && slash != path)
        *slash = '/';
done:
    return rc;
}

int brine_publish__mkdirs(const brine_io_methods *io, const char *dir, brine_error *err)
{
    int rc = 0;
    char path[MKDIRS_MAX];
    size_t len = strlen(dir);
    if (len >= sizeof path) {
        rc = brine__fail_errno(err, -ENAMETOOLONG, "mkdir of %.64s... failed", dir);
        goto done;
    }
    memcpy(path, dir, len + 1);
    /* "a/b/" is "a/b": the last component is the one checked below. */
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';

    /* Each ancestor, shortest first; the root and repeated slashes are skipped. */
    int created = 0;
    for (size_t i = 1; i < len; i++) {
        if (path[i] != '/' || path[i - 1] == '/')
            continue;
        path[i] = '\0';
        rc = make_one(io, path, &created, err);
        path[i] = '/';
        if (rc < 0)
            goto done;
    }
    rc = make_one(io, path, &created, err);
    if (rc < 0 || created)
        goto done;
    /* It existed: mkdir says EEXIST for a regular file too.  Opening it as a
     * directory tells them apart, and the fsync makes an earlier creation
     * durable if its creator did not. */
    int r = io->fsync_dir(io->ctx, path);
    if (r < 0)
        rc = brine__fail_errno(err, r, "fsync of directory %s failed", path);
done:
    return rc;
}

int brine_publish__commit(const brine_io_methods *io, const char *tmp, const char *final,
                          const char *dir, brine_error *err)
{
    int rc = 0;
    int r = io->rename(io->ctx, tmp, final);
    if (r < 0) {
        rc = brine__fail_errno(err, r, "rename of %s to %s failed", tmp, final);
        /* The old final file, if any, is untouched; the temporary one is garbage. */
        brine_publish__discard(io, tmp);
        goto done;
    }
    r = io->fsync_dir(io->ctx, dir);
    if (r < 0) {
        /* The rename is visible but may not survive a crash: not a success.
         * The file stays: unlinking it would be no more durable. */
        rc = brine__fail_errno(err, r,
                               "fsync of directory %s failed, so the rename of %s to %s may not survive a crash",
                               dir, tmp, final);
        goto done;
    }
done:
    return rc;
}

void brine_publish__discard(const brine_io_methods *io, const char *path)
{
    (void)io->unlink(io->ctx, path);
}
