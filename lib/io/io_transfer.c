/*
 * Whole transfers over a brine_io_methods table.  pread(2) and pwrite(2) may
 * move fewer bytes than asked (signals, quotas, pipes, NFS) and may fail with
 * EINTR; callers of the I/O layer want all or nothing, so the loops live here
 * once rather than in every caller.
 */
#include "io.h"

#include <errno.h>

int brine_io__pwrite_all(const brine_io_methods *io, int fd, const void *buf, size_t n,
                         uint64_t offset)
{
    int rc = 0;
    const unsigned char *p = buf;
    while (n > 0) {
        int64_t r = io->pwrite(io->ctx, fd, p, n, offset);
        if (r == -EINTR)
            continue;
        if (r < 0) {
            rc = (int)r;
            goto done;
        }
        /* Writing nothing without an error would loop forever; a method that
         * claims more than it was given is broken.  Both are I/O errors. */
        if (r == 0 || (uint64_t)r > n) {
            rc = -EIO;
            goto done;
        }
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
done:
    return rc;
}

int brine_io__pread_all(const brine_io_methods *io, int fd, void *buf, size_t n, uint64_t offset)
{
    int rc = 0;
    unsigned char *p = buf;
    while (n > 0) {
        int64_t r = io->pread(io->ctx, fd, p, n, offset);
        if (r == -EINTR)
            continue;
        if (r < 0) {
            rc = (int)r;
            goto done;
        }
        /* 0 is the end of the file before n bytes: the caller expected them. */
        if (r == 0 || (uint64_t)r > n) {
            rc = -EIO;
            goto done;
        }
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
done:
    return rc;
}
