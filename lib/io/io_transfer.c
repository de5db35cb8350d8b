/*
 * Whole transfers over a brine_io_methods table.  pread(2) and pwrite(2) may
 * move fewer bytes than asked (signals, quotas, pipes, NFS) and may fail with
 * EINTR; callers of the I/O layer want all or nothing, so the loops live here
 * once rather than in every caller.
 */
#include "io.h"

#include <assert.h>
#include <errno.h>

/*
 * The one loop behind both: writes from wbuf when it is given, otherwise reads
 * into rbuf.  A method that moves 0 bytes without an error (a write that
 * would loop forever, or the end of the file before n bytes the caller
 * expected) or claims more than it was given is an I/O error.
 */
static int transfer_all(const brine_io_methods *io, int fd, unsigned char *rbuf,
                        const unsigned char *wbuf, size_t n, uint64_t offset)
{
    int rc = 0;
    size_t moved = 0;
    assert(n == 0 || (rbuf == NULL) != (wbuf == NULL));
    while (moved < n) {
        int64_t r = wbuf ? io->pwrite(io->ctx, fd, wbuf + moved, n - moved, offset + moved)
                         : io->pread(io->ctx, fd, rbuf + moved, n - moved, offset + moved);
        if (r == -EINTR)
            continue;
        if (r < 0) {
            rc = (int)r;
            goto done;
        }
        if (r == 0 || (uint64_t)r > n - moved) {
            rc = -EIO;
            goto done;
        }
        moved += (size_t)r;
    }
done:
    return rc;
}

int brine_io__pwrite_all(const brine_io_methods *io, int fd, const void *buf, size_t n,
                         uint64_t offset)
{
    return transfer_all(io, fd, NULL, buf, n, offset);
}

int brine_io__pread_all(const brine_io_methods *io, int fd, void *buf, size_t n, uint64_t offset)
{
    return transfer_all(io, fd, buf, NULL, n, offset);
}
