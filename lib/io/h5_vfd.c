/*
 * The "brine" HDF5 virtual file driver (HDF5 1.10 VFD interface).
 *
 * Modelled on HDF5's sec2 driver: one file, positioned reads and writes, the
 * end of allocation (eoa) kept in memory, the end of file (eof) tracked from
 * the size at open and every write, truncation to eoa on HDF5's request.
 * Differences, all on purpose:
 *  - every operation goes through the brine_io_methods of the fapl;
 *  - close fsyncs a file opened read-write (see h5_vfd.h);
 *  - the first failing system call is recorded in the caller's brine_vfd_status;
 *  - after that failure the file is "failed": writes, truncations and the
 *    close-time fsync are no longer attempted and report success, and any
 *    failure once HDF5 is closing the file is recorded but reported as
 *    success.  HDF5 1.10 cannot survive an error inside H5Fclose: it frees
 *    the file yet keeps its id, and H5close (run at exit) then crashes on it
 *    (HDFGroup/hdf5#2257, fixed in 1.14.1).  A failed file is garbage anyway:
 *    brine discards it, and reads the status after H5Fclose;
 *  - cmp compares (method table, path) rather than (device, inode): the
 *    method table has no stat, and brine never reaches one file by two names;
 *  - no POSIX_COMPAT_HANDLE or SWMR feature: a custom table's descriptors
 *    need not be kernel descriptors, and brine does not use SWMR;
 *  - lock/unlock succeed without locking (see h5_vfd.h).
 * The per-file structures are HDF5's to manage (it frees them through close
 * on every path), so they use malloc rather than a context's allocator,
 * which the driver never sees.
 */
#include "h5_vfd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

/* Like sec2: the largest address a signed 64-bit file offset reaches. */
#define MAXADDR (((haddr_t)1 << 63) - 1)
#define ADDR_OVERFLOW(a) ((a) == HADDR_UNDEF || ((a) & ~(haddr_t)MAXADDR))
#define SIZE_OVERFLOW(z) ((z) & ~(hsize_t)MAXADDR)
#define REGION_OVERFLOW(a, z) \
    (ADDR_OVERFLOW(a) || SIZE_OVERFLOW(z) || (a) + (z) == HADDR_UNDEF || (a) + (z) < (a))

/* What the fapl carries; HDF5 copies it with fapl_copy. */
typedef struct vfd_fapl {
    const brine_io_methods *io;
    brine_vfd_status *status;
} vfd_fapl;

typedef struct vfd_file {
    H5FD_t pub; /* first: HDF5 hands the driver this pointer */
    const brine_io_methods *io;
    brine_vfd_status *status;
    int fd;
    int writable; /* opened with H5F_ACC_RDWR: fsync at close */
    int failed;   /* a system call failed: the contents are garbage, stop writing */
    int closing;  /* HDF5 is inside H5Fclose, past its last metadata flush */
    haddr_t eoa;  /* end of the space HDF5 has allocated */
    haddr_t eof;  /* end of the file's bytes: size at open, then extended by writes */
    char path[];
} vfd_file;

/* Pushes a driver error on HDF5's stack so H5E walks show the innermost cause. */
static void push_error(const char *func, int line, hid_t min, const char *msg)
{
    /* "%s": the message holds a path, which must not be read as a format. */
    H5Epush2(H5E_DEFAULT, __FILE__, func, (unsigned)line, H5E_ERR_CLS, H5E_VFL, min, "%s", msg);
}

/* Records a failure in status unless an earlier one is there. */
static void record(brine_vfd_status *status, const char *op, int neg_errno, const char *path)
{
    if (status && status->neg_errno == 0) {
        status->neg_errno = neg_errno;
        status->op = op;
        snprintf(status->path, sizeof status->path, "%s", path);
    }
}

/*
 * A failed system call on an open file: recorded, the file marked failed,
 * and -1 with an HDF5 error, or 0 when HDF5 is closing the file (an error
 * inside H5Fclose leaves HDF5 1.10 with a dangling file id; see the top).
 */
static herr_t fail_call(vfd_file *file, const char *op, int neg_errno, const char *func, int line,
                        hid_t min)
{
    char msg[768];
    record(file->status, op, neg_errno, file->path);
    file->failed = 1;
    if (file->closing)
        return 0;
    snprintf(msg, sizeof msg, "%s of %s failed: %s", op, file->path, strerror(-neg_errno));
    push_error(func, line, min, msg);
    return -1;
}

#define FAIL_CALL(file, op, neg_errno, min) fail_call((file), (op), (neg_errno), __func__, __LINE__, (min))

static void *vfd_fapl_copy(const void *old)
{
    vfd_fapl *copy = malloc(sizeof *copy);
    if (copy)
        memcpy(copy, old, sizeof *copy);
    return copy;
}

static herr_t vfd_fapl_free(void *info)
{
    free(info);
    return 0;
}

/* A fresh copy of the file's fapl info, so H5Fget_access_plist gives a usable fapl. */
static void *vfd_fapl_get(H5FD_t *_file)
{
    const vfd_file *file = (const vfd_file *)_file;
    const vfd_fapl info = {file->io, file->status};
    return vfd_fapl_copy(&info);
}

static H5FD_t *vfd_open(const char *name, unsigned flags, hid_t fapl_id, haddr_t maxaddr)
{
    vfd_file *file = NULL;
    H5FD_t *ret = NULL;
    int fd = -1;

    if (!name || !*name) {
        push_error(__func__, __LINE__, H5E_BADVALUE, "invalid file name");
        goto done;
    }
    if (maxaddr == 0 || ADDR_OVERFLOW(maxaddr)) {
        push_error(__func__, __LINE__, H5E_OVERFLOW, "bogus maxaddr");
        goto done;
    }
    const vfd_fapl *info = H5Pget_driver_info(fapl_id);
    if (!info || !info->io) {
        push_error(__func__, __LINE__, H5E_BADVALUE, "the fapl carries no brine driver info");
        goto done;
    }
    size_t len = strlen(name);
    file = calloc(1, sizeof *file + len + 1);
    if (!file) {
        push_error(__func__, __LINE__, H5E_CANTALLOC, "unable to allocate the file struct");
        goto done;
    }
    memcpy(file->path, name, len + 1);
    file->io = info->io;
    file->status = info->status;
    file->writable = (flags & H5F_ACC_RDWR) != 0;

    int oflags = file->writable ? O_RDWR : O_RDONLY;
    if (flags & H5F_ACC_TRUNC)
        oflags |= O_TRUNC;
    if (flags & H5F_ACC_CREAT)
        oflags |= O_CREAT;
    if (flags & H5F_ACC_EXCL)
        oflags |= O_EXCL;

    /* H5Fcreate first tries to open the file without creating it and, when
     * that fails, clears the error and creates it.  That tentative failure
     * is not a failure of the file: forget it when the same path is opened
     * again, so the status holds the outcome of the real attempt. */
    brine_vfd_status *st = file->status;
    if (st && st->neg_errno != 0 && st->op && !strcmp(st->op, "open") &&
        !strncmp(st->path, name, sizeof st->path - 1)) {
        st->neg_errno = 0;
        st->op = NULL;
        st->path[0] = '\0';
    }
    fd = file->io->open(file->io->ctx, name, oflags, 0666);
    if (fd < 0) {
        (void)FAIL_CALL(file, "open", fd, H5E_CANTOPENFILE);
        goto done;
    }
    uint64_t size = 0;
    int r = file->io->fsize(file->io->ctx, fd, &size);
    if (r < 0) {
        (void)FAIL_CALL(file, "fsize", r, H5E_CANTGETSIZE);
        goto done;
    }
    file->fd = fd;
    file->eof = (haddr_t)size;

    ret = &file->pub;
    fd = -1;
    file = NULL;
done:
    if (fd >= 0)
        file->io->close(file->io->ctx, fd);
    free(file);
    return ret;
}

static herr_t vfd_close(H5FD_t *_file)
{
    vfd_file *file = (vfd_file *)_file;
    /* Failures here are recorded, never returned: see the top of the file. */
    file->closing = 1;
    /* H5Fclose still writes after its last flush (superblock, accumulated
     * metadata), so only here does an fsync cover every byte.  A failed
     * file is garbage: syncing it is pointless. */
    if (file->writable && !file->failed) {
        int r = file->io->fsync(file->io->ctx, file->fd);
        if (r < 0)
            (void)FAIL_CALL(file, "fsync", r, H5E_CANTFLUSH);
    }
    /* Closed even after a failed fsync, so the descriptor never leaks. */
    int r = file->io->close(file->io->ctx, file->fd);
    if (r < 0)
        (void)FAIL_CALL(file, "close", r, H5E_CANTCLOSEFILE);
    free(file);
    return 0;
}

static int vfd_cmp(const H5FD_t *_f1, const H5FD_t *_f2)
{
    const vfd_file *f1 = (const vfd_file *)_f1;
    const vfd_file *f2 = (const vfd_file *)_f2;
    if ((uintptr_t)f1->io != (uintptr_t)f2->io)
        return (uintptr_t)f1->io < (uintptr_t)f2->io ? -1 : 1;
    int c = strcmp(f1->path, f2->path);
    return c < 0 ? -1 : c > 0;
}

static herr_t vfd_query(const H5FD_t *_file, unsigned long *flags)
{
    (void)_file;
    /* sec2's optimisations, which make HDF5 issue few, large writes. */
    if (flags)
        *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA |
                 H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA |
                 H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t vfd_get_eoa(const H5FD_t *_file, H5FD_mem_t type)
{
    (void)type;
    return ((const vfd_file *)_file)->eoa;
}

static herr_t vfd_set_eoa(H5FD_t *_file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    if (ADDR_OVERFLOW(addr)) {
        push_error(__func__, __LINE__, H5E_OVERFLOW, "address overflow");
        return -1;
    }
    ((vfd_file *)_file)->eoa = addr;
    return 0;
}

static haddr_t vfd_get_eof(const H5FD_t *_file, H5FD_mem_t type)
{
    (void)type;
    return ((const vfd_file *)_file)->eof;
}

static herr_t vfd_get_handle(H5FD_t *_file, hid_t fapl, void **file_handle)
{
    (void)fapl;
    if (!file_handle) {
        push_error(__func__, __LINE__, H5E_BADVALUE, "file handle not valid");
        return -1;
    }
    *file_handle = &((vfd_file *)_file)->fd;
    return 0;
}

static herr_t vfd_read(H5FD_t *_file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                       void *buf)
{
    vfd_file *file = (vfd_file *)_file;
    herr_t rc = 0;
    (void)type;
    (void)dxpl;
    if (REGION_OVERFLOW(addr, (hsize_t)size) || addr + size > file->eoa) {
        push_error(__func__, __LINE__, H5E_OVERFLOW, "read beyond the allocated address space");
        rc = -1;
        goto done;
    }
    /* Like sec2, bytes past the end of the file read as zeros: HDF5 reads
     * allocated but not yet written space.  Below eof the bytes must exist, so
     * a short file there is an error (pread_all's -EIO), not silent zeros. */
    size_t in_file = 0;
    if (addr < file->eof)
        in_file = file->eof - addr < size ? (size_t)(file->eof - addr) : size;
    if (in_file > 0) {
        int r = brine_io__pread_all(file->io, file->fd, buf, in_file, addr);
        if (r < 0) {
            /* While closing, zeros stand in for the bytes: the file is now
             * failed, so nothing derived from them reaches the disk. */
            rc = FAIL_CALL(file, "pread", r, H5E_READERROR);
            if (rc == 0)
                memset(buf, 0, size);
            goto done;
        }
    }
    if (in_file < size)
        memset((unsigned char *)buf + in_file, 0, size - in_file);
done:
    return rc;
}

static herr_t vfd_write(H5FD_t *_file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                        const void *buf)
{
    vfd_file *file = (vfd_file *)_file;
    herr_t rc = 0;
    (void)type;
    (void)dxpl;
    if (REGION_OVERFLOW(addr, (hsize_t)size) || addr + size > file->eoa) {
        push_error(__func__, __LINE__, H5E_OVERFLOW, "write beyond the allocated address space");
        rc = -1;
        goto done;
    }
    /* A failed file is discarded by its writer: writing it is wasted work,
     * and an error now could fall inside H5Fclose (see the top of the file). */
    if (file->failed)
        goto done;
    int r = brine_io__pwrite_all(file->io, file->fd, buf, size, addr);
    if (r < 0) {
        rc = FAIL_CALL(file, "pwrite", r, H5E_WRITEERROR);
        goto done;
    }
    if (addr + size > file->eof)
        file->eof = addr + size;
done:
    return rc;
}

static herr_t vfd_truncate(H5FD_t *_file, hid_t dxpl, hbool_t closing)
{
    vfd_file *file = (vfd_file *)_file;
    (void)dxpl;
    /* H5Fclose truncates after its metadata flush and before the last
     * writes: from here on HDF5 must not see an error (see the top). */
    if (closing)
        file->closing = 1;
    if (file->failed || file->eoa == file->eof)
        return 0;
    int r = file->io->ftruncate(file->io->ctx, file->fd, file->eoa);
    if (r < 0)
        return FAIL_CALL(file, "ftruncate", r, H5E_SEEKERROR);
    file->eof = file->eoa;
    return 0;
}

static herr_t vfd_lock(H5FD_t *_file, hbool_t rw)
{
    /* See h5_vfd.h: brine only opens files no other writer holds. */
    (void)_file;
    (void)rw;
    return 0;
}

static herr_t vfd_unlock(H5FD_t *_file)
{
    (void)_file;
    return 0;
}

static const H5FD_class_t vfd_class = {
    "brine",               /* name */
    MAXADDR,               /* maxaddr */
    H5F_CLOSE_WEAK,        /* fc_degree */
    NULL,                  /* terminate */
    NULL,                  /* sb_size: no driver info in the superblock, */
    NULL,                  /* sb_encode   so any driver reads the files */
    NULL,                  /* sb_decode */
    sizeof(vfd_fapl),      /* fapl_size */
    vfd_fapl_get,          /* fapl_get */
    vfd_fapl_copy,         /* fapl_copy */
    vfd_fapl_free,         /* fapl_free */
    0,                     /* dxpl_size */
    NULL,                  /* dxpl_copy */
    NULL,                  /* dxpl_free */
    vfd_open,              /* open */
    vfd_close,             /* close */
    vfd_cmp,               /* cmp */
    vfd_query,             /* query */
    NULL,                  /* get_type_map */
    NULL,                  /* alloc */
    NULL,                  /* free */
    vfd_get_eoa,           /* get_eoa */
    vfd_set_eoa,           /* set_eoa */
    vfd_get_eof,           /* get_eof */
    vfd_get_handle,        /* get_handle */
    vfd_read,              /* read */
    vfd_write,             /* write */
    NULL,                  /* flush: like sec2, nothing buffered here */
    vfd_truncate,          /* truncate */
    vfd_lock,              /* lock */
    vfd_unlock,            /* unlock */
    H5FD_FLMAP_DICHOTOMY   /* fl_map */
};

static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static hid_t driver_id = H5I_INVALID_HID;

/*
 * The driver's id, registering the driver when needed.  Not a pthread_once:
 * H5close() (or a program's own H5close/H5open cycle) unregisters every
 * driver, and the id may then even name another driver, so the id is
 * re-checked by class name on every call.
 */
static hid_t driver(void)
{
    hid_t id = H5I_INVALID_HID;
    pthread_mutex_lock(&register_lock);
    if (driver_id >= 0 && H5Iget_type(driver_id) == H5I_VFL) {
        const H5FD_class_t *cls = H5Iobject_verify(driver_id, H5I_VFL);
        if (cls && cls->name && !strcmp(cls->name, vfd_class.name))
            id = driver_id;
    }
    if (id < 0) {
        id = H5FDregister(&vfd_class);
        driver_id = id;
    }
    pthread_mutex_unlock(&register_lock);
    return id;
}

hid_t brine_vfd__fapl(const brine_io_methods *io, brine_vfd_status *status)
{
    hid_t fapl = H5I_INVALID_HID;
    hid_t ret = H5I_INVALID_HID;
    const vfd_fapl info = {io, status};

    if (!io) {
        push_error(__func__, __LINE__, H5E_BADVALUE, "no I/O methods");
        goto done;
    }
    hid_t id = driver();
    if (id < 0)
        goto done;
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        goto done;
    if (H5Pset_driver(fapl, id, &info) < 0)
        goto done;
    ret = fapl;
    fapl = H5I_INVALID_HID;
done:
    if (fapl >= 0)
        H5Pclose(fapl);
    return ret;
}
