/* Opening a checkpoint file and checking what does not depend on variables. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "../common/alloc.h"
#include "../io/io.h"
#include "match.h"

/* Reads the start of file through the I/O methods and checks it is an HDF5 file brine can verify. */
static int check_header(const brine_io_methods *io, const char *file, brine_error *err)
{
    uint8_t head[BRINE_H5_HEADER_BYTES];
    char why[200];
    int fd = io->open(io->ctx, file, O_RDONLY, 0);
    if (fd < 0)
        return brine__fail_errno(err, fd, "open of %s failed", file);
    int rc = brine_io__pread_all(io, fd, head, sizeof head, 0);
    io->close(io->ctx, fd);
    if (rc == -EIO)
        /* Also an unexpected end of file: too short to be a checkpoint. */
        return brine__fail(err, BRINE_ECORRUPT, "%s: too short or unreadable as HDF5", file);
    if (rc)
        return brine__fail_errno(err, rc, "pread of %s failed", file);
    if (brine_h5__check_header(head, sizeof head, why, sizeof why))
        return brine__fail(err, BRINE_ECORRUPT, "%s: %s", file, why);
    return 0;
}

int brine_ckpt__open(brine_ckpt *c, const char *file, int64_t name_step,
                     const brine_io_methods *io, const brine_allocator *a, int threads,
                     brine_error *err)
{
    int rc = 0;
    memset(c, 0, sizeof *c);
    c->fapl = H5I_INVALID_HID;
    if ((rc = check_header(io, file, err)))
        return rc;
    if ((c->fapl = brine_vfd__fapl(io, &c->status)) < 0)
        return brine__fail(err, BRINE_EHDF5, "cannot set up brine's HDF5 file driver");
    if ((rc = brine_h5__open(&c->r, file, c->fapl, threads, a, err)) ||
        (rc = brine_h5__read_pickle(c->r, &c->stream, &c->len, &c->nbuffers, err)))
        goto done;
    c->step = brine_h5__step(c->r);
    /* No checksum covers the step attribute: the name must agree with it. */
    if (name_step >= 0 && c->step != name_step) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: its step attribute says %" PRId64 ", its name %" PRId64,
                         file, c->step, name_step);
        goto done;
    }
    if ((rc = brine_pickle__decode(&c->doc, c->stream, c->len, a, err))) {
        brine__error_prefix(err, "%s: the pickle stream: ", file);
        goto done;
    }
    if (brine_pickle__nbuffers(c->doc) != c->nbuffers) {
        rc = brine__fail(err, BRINE_ECORRUPT,
                         "%s: the pickle stream takes %" PRIu64 " buffers, the file lists %zu", file,
                         brine_pickle__nbuffers(c->doc), c->nbuffers);
        goto done;
    }
    c->root = brine_pickle__root(c->doc);
    if (c->root->kind != BRINE_PV_DICT)
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: the pickled state is %s, not a dict", file,
                         brine_match__kind_name(c->root->kind));
done:
    if (rc) {
        rc = brine_ckpt__io_failure(c, rc, file, err);
        brine_ckpt__close(c);
    }
    return rc;
}

int brine_ckpt__io_failure(const brine_ckpt *c, int rc, const char *file, brine_error *err)
{
    if (!c->status.neg_errno)
        return rc;
    return brine__fail_errno(err, c->status.neg_errno, "%s: %s of %s failed", file, c->status.op,
                             c->status.path);
}

void brine_ckpt__close(brine_ckpt *c)
{
    brine_pickle__free(c->doc);
    c->doc = NULL;
    c->root = NULL;
    brine_h5__close(c->r);
    c->r = NULL;
    if (c->fapl > 0) /* 0 in a zeroed struct is no id */
        H5Pclose(c->fapl);
    c->fapl = H5I_INVALID_HID;
}

char *brine_ckpt__dataset_path(const brine_allocator *a, const char *name)
{
    /* docs/format.md, 2.3: an array's dataset is /state/<name>. */
    size_t n = strlen(name);
    char *p = n < SIZE_MAX - 8 ? brine__alloc(a, n + 8) : NULL;
    if (p) {
        memcpy(p, "/state/", 7);
        memcpy(p + 7, name, n + 1);
    }
    return p;
}
