/*
 * The default brine_io_methods: thin POSIX wrappers.
 *
 * Each method makes exactly one attempt and returns -errno on failure.  None
 * retries EINTR or short transfers: that is brine_io__pwrite_all's and
 * brine_io__pread_all's job, so that a fault-injecting table wrapped around
 * this one sees every attempt.
 */
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The largest offset off_t holds: offsets are uint64_t in the table, off_t in the system calls. */
#define OFF_T_MAX ((uint64_t)(((uint64_t)1 << (sizeof(off_t) * 8 - 1)) - 1))

static int posix_open(void *ctx, const char *path, int flags, unsigned mode)
{
    (void)ctx;
    /* Descriptors must not leak into programs the simulation may exec. */
    int fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
    return fd < 0 ? -errno : fd;
}

static int posix_close(void *ctx, int fd)
{
    (void)ctx;
    /* Not retried on EINTR: on Linux the descriptor is released anyway, and
     * closing it again could close one another thread just opened. */
    return close(fd) < 0 ? -errno : 0;
}

static int64_t posix_pread(void *ctx, int fd, void *buf, size_t n, uint64_t offset)
{
    (void)ctx;
    if (offset > OFF_T_MAX)
        return -EINVAL;
    /* pread returns ssize_t: a larger request would make a count that reads as an error. */
    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    ssize_t r = pread(fd, buf, n, (off_t)offset);
    return r < 0 ? -errno : (int64_t)r;
}

static int64_t posix_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t offset)
{
    (void)ctx;
    if (offset > OFF_T_MAX)
        return -EINVAL;
    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    ssize_t r = pwrite(fd, buf, n, (off_t)offset);
    return r < 0 ? -errno : (int64_t)r;
}

static int posix_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd) < 0 ? -errno : 0;
}

static int posix_ftruncate(void *ctx, int fd, uint64_t size)
{
    (void)ctx;
    if (size > OFF_T_MAX)
        return -EFBIG;
    return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

static int posix_fsize(void *ctx, int fd, uint64_t *out)
{
    (void)ctx;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *out = st.st_size > 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static int posix_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) < 0 ? -errno : 0;
}

static int posix_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) < 0 ? -errno : 0;
}

static int posix_mkdir(void *ctx, const char *path, unsigned mode)
{
    (void)ctx;
    return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

static int posix_fsync_dir(void *ctx, const char *path)
{
    (void)ctx;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto done;
    }
    if (fsync(fd) < 0)
        rc = -errno;
    /* A failing close cannot undo the fsync; the fsync's error matters more. */
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
done:
    return rc;
}

static int posix_list_dir(void *ctx, const char *path, int (*each)(void *arg, const char *name),
                          void *arg)
{
    (void)ctx;
    int rc = 0;
    DIR *d = opendir(path);
    if (!d) {
        rc = -errno;
        goto done;
    }
    for (;;) {
        /* readdir returns NULL both at the end and on error; only errno tells them apart. */
        errno = 0;
        const struct dirent *e = readdir(d);
        if (!e) {
            rc = errno ? -errno : 0;
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        rc = each(arg, e->d_name);
        if (rc != 0)
            break;
    }
    closedir(d);
done:
    return rc;
}

static const brine_io_methods posix_methods = {
    BRINE_IO_METHODS_VERSION,
    NULL,
    posix_open,
    posix_close,
    posix_pread,
    posix_pwrite,
    posix_fsync,
    posix_ftruncate,
    posix_fsize,
    posix_rename,
    posix_unlink,
    posix_mkdir,
    posix_fsync_dir,
    posix_list_dir,
};

const brine_io_methods *brine_io_posix(void)
{
    return &posix_methods;
}
