/*
 * The I/O layer: the POSIX method table, whole transfers, the HDF5 driver
 * (observed and fault-injected through a wrapping method table), directory
 * scans and rotation, and atomic publication.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "brine.h"
#include "common/alloc.h"
#include "io/dir_scan.h"
#include "io/h5_vfd.h"
#include "io/io.h"
#include "io/publish.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* A counting, fault-injecting method table around brine_io_posix().        */

enum {
    OP_OPEN, OP_CLOSE, OP_PREAD, OP_PWRITE, OP_FSYNC, OP_FTRUNCATE, OP_FSIZE,
    OP_RENAME, OP_UNLINK, OP_MKDIR, OP_FSYNC_DIR, OP_LIST_DIR, OP_COUNT
};

typedef struct fault {
    brine_io_methods m; /* m.ctx points back here */
    const brine_io_methods *base;
    int calls[OP_COUNT];
    long last_seq[OP_COUNT]; /* order of the last call of each op */
    long seq;
    int live_fds; /* successful opens minus closes */
    int last_fsync_fd, last_close_fd;
    /* Fail the fail_nth call of fail_op with fail_err (once, or from then on when sticky). */
    int fail_op, fail_nth, fail_err, sticky;
    int short_io; /* transfer at most half of what is asked */
    int eintr;    /* every other pread/pwrite first fails with -EINTR */
    int eintr_toggle;
    char last_fsync_dir[512];
    int in_fclose;        /* set by write_sample around H5Fclose */
    int failed_in_fclose; /* the injected failure happened inside H5Fclose */
} fault;

static int hit(fault *f, int op)
{
    f->calls[op]++;
    f->last_seq[op] = ++f->seq;
    if (f->fail_op != op)
        return 0;
    int fail = f->sticky ? f->calls[op] >= f->fail_nth : f->calls[op] == f->fail_nth;
    if (fail && f->calls[op] == f->fail_nth)
        f->failed_in_fclose = f->in_fclose;
    return fail;
}

static int f_open(void *ctx, const char *path, int flags, unsigned mode)
{
    fault *f = ctx;
    if (hit(f, OP_OPEN))
        return -f->fail_err;
    int fd = f->base->open(f->base->ctx, path, flags, mode);
    if (fd >= 0)
        f->live_fds++;
    return fd;
}

static int f_close(void *ctx, int fd)
{
    fault *f = ctx;
    f->live_fds--;
    f->last_close_fd = fd;
    /* The descriptor is released even when close "fails", as on Linux. */
    int r = f->base->close(f->base->ctx, fd);
    if (hit(f, OP_CLOSE))
        return -f->fail_err;
    return r;
}

static int64_t f_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    fault *f = ctx;
    if (hit(f, OP_PREAD))
        return -f->fail_err;
    if (f->eintr && (f->eintr_toggle ^= 1))
        return -EINTR;
    if (f->short_io && n > 1)
        n /= 2;
    return f->base->pread(f->base->ctx, fd, buf, n, off);
}

static int64_t f_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    fault *f = ctx;
    if (hit(f, OP_PWRITE))
        return -f->fail_err;
    if (f->eintr && (f->eintr_toggle ^= 1))
        return -EINTR;
    if (f->short_io && n > 1)
        n /= 2;
    return f->base->pwrite(f->base->ctx, fd, buf, n, off);
}

static int f_fsync(void *ctx, int fd)
{
    fault *f = ctx;
    f->last_fsync_fd = fd;
    if (hit(f, OP_FSYNC))
        return -f->fail_err;
    return f->base->fsync(f->base->ctx, fd);
}

static int f_ftruncate(void *ctx, int fd, uint64_t size)
{
    fault *f = ctx;
    if (hit(f, OP_FTRUNCATE))
        return -f->fail_err;
    return f->base->ftruncate(f->base->ctx, fd, size);
}

static int f_fsize(void *ctx, int fd, uint64_t *out)
{
    fault *f = ctx;
    if (hit(f, OP_FSIZE))
        return -f->fail_err;
    return f->base->fsize(f->base->ctx, fd, out);
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    fault *f = ctx;
    if (hit(f, OP_RENAME))
        return -f->fail_err;
    return f->base->rename(f->base->ctx, from, to);
}

static int f_unlink(void *ctx, const char *path)
{
    fault *f = ctx;
    if (hit(f, OP_UNLINK))
        return -f->fail_err;
    return f->base->unlink(f->base->ctx, path);
}

static int f_mkdir(void *ctx, const char *path, unsigned mode)
{
    fault *f = ctx;
    if (hit(f, OP_MKDIR))
        return -f->fail_err;
    return f->base->mkdir(f->base->ctx, path, mode);
}

static int f_fsync_dir(void *ctx, const char *path)
{
    fault *f = ctx;
    snprintf(f->last_fsync_dir, sizeof f->last_fsync_dir, "%s", path);
    if (hit(f, OP_FSYNC_DIR))
        return -f->fail_err;
    return f->base->fsync_dir(f->base->ctx, path);
}

static int f_list_dir(void *ctx, const char *path, int (*each)(void *, const char *), void *arg)
{
    fault *f = ctx;
    if (hit(f, OP_LIST_DIR))
        return -f->fail_err;
    return f->base->list_dir(f->base->ctx, path, each, arg);
}

static void fault_init(fault *f)
{
    memset(f, 0, sizeof *f);
    f->base = brine_io_posix();
    f->fail_op = -1;
    f->last_fsync_fd = f->last_close_fd = -1;
    f->m = (brine_io_methods){BRINE_IO_METHODS_VERSION, f, f_open, f_close, f_pread, f_pwrite,
                              f_fsync, f_ftruncate, f_fsize, f_rename, f_unlink, f_mkdir,
                              f_fsync_dir, f_list_dir};
}

static void fault_set(fault *f, int op, int nth, int err)
{
    f->fail_op = op;
    f->fail_nth = nth;
    f->fail_err = err;
}

/* ------------------------------------------------------------------------ */
/* An HDF5 workload: attributes, a chunked + deflated dataset, a contiguous one. */

#define NY 120
#define NX 200
#define NPICKLE 100000

static double u_data[NY][NX];
static unsigned char pickle_data[NPICKLE];

static void fill_data(void)
{
    for (int i = 0; i < NY; i++)
        for (int j = 0; j < NX; j++)
            u_data[i][j] = i * 1000.0 + j + 0.25;
    uint64_t s = 42;
    for (int i = 0; i < NPICKLE; i++)
        pickle_data[i] = (unsigned char)(i % 97 < 60 ? (uint64_t)i * 7 : tu_rand(&s));
}

static int set_attr(hid_t obj, const char *name, hid_t type, int rank, const hsize_t *dims,
                    const void *value)
{
    int rc = 0;
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t attr = H5I_INVALID_HID;
    if (space < 0) {
        rc = -1;
        goto done;
    }
    attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, value) < 0)
        rc = -1;
done:
    if (attr >= 0 && H5Aclose(attr) < 0)
        rc = -1;
    if (space >= 0 && H5Sclose(space) < 0)
        rc = -1;
    return rc;
}

/*
 * Writes the sample file as brine does: H5Fflush before H5Fclose (see
 * h5_vfd.h).  Every handle is closed whatever fails.  0, or -1 when an HDF5
 * call failed.  f, when given, learns when H5Fclose runs.
 */
static int write_sample(hid_t fapl, const char *path, fault *f)
{
    int rc = 0;
    hid_t file = H5I_INVALID_HID, grp = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    const int32_t fmt = 1;
    const int64_t step = 1200;
    const double vec[3] = {1.5, -2.0, 3.25};
    const hsize_t three = 3;

    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0) {
        rc = -1;
        goto done;
    }
    if (set_attr(file, "brine_format", H5T_STD_I32LE, 0, NULL, &fmt) < 0 ||
        set_attr(file, "step", H5T_STD_I64LE, 0, NULL, &step) < 0 ||
        set_attr(file, "vec", H5T_IEEE_F64LE, 1, &three, vec) < 0) {
        rc = -1;
        goto done;
    }

    /* /state/u: chunked (with edge chunks), shuffled and deflated. */
    const hsize_t dims[2] = {NY, NX}, chunk[2] = {32, 50};
    grp = H5Gcreate2(file, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate_simple(2, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (grp < 0 || space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 1) < 0) {
        rc = -1;
        goto done;
    }
    dset = H5Dcreate2(grp, "u", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, u_data) < 0) {
        rc = -1;
        goto done;
    }
    if (H5Dclose(dset) < 0)
        rc = -1;
    dset = H5I_INVALID_HID;
    H5Sclose(space);
    space = H5I_INVALID_HID;
    if (H5Gclose(grp) < 0)
        rc = -1;
    grp = H5I_INVALID_HID;
    if (rc < 0)
        goto done;

    /* /brine/pickle: contiguous, unfiltered. */
    const hsize_t n = NPICKLE;
    grp = H5Gcreate2(file, "brine", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate_simple(1, &n, NULL);
    if (grp < 0 || space < 0) {
        rc = -1;
        goto done;
    }
    dset = H5Dcreate2(grp, "pickle", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0 ||
        H5Dwrite(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, pickle_data) < 0) {
        rc = -1;
        goto done;
    }
done:
    if (dset >= 0 && H5Dclose(dset) < 0)
        rc = -1;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    if (grp >= 0 && H5Gclose(grp) < 0)
        rc = -1;
    if (file >= 0 && H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
        rc = -1;
    if (f)
        f->in_fclose = 1;
    if (file >= 0 && H5Fclose(file) < 0)
        rc = -1;
    if (f)
        f->in_fclose = 0;
    return rc;
}

/* Reads the sample file back and compares it; 0 when identical. */
static int check_sample(hid_t fapl, const char *path)
{
    int rc = 0;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    static double u[NY][NX];
    static unsigned char pk[NPICKLE];
    int32_t fmt = 0;
    int64_t step = 0;
    double vec[3] = {0};

    file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (file < 0) {
        rc = -1;
        goto done;
    }
    if ((attr = H5Aopen(file, "brine_format", H5P_DEFAULT)) < 0 ||
        H5Aread(attr, H5T_NATIVE_INT32, &fmt) < 0 || H5Aclose(attr) < 0 ||
        (attr = H5Aopen(file, "step", H5P_DEFAULT)) < 0 ||
        H5Aread(attr, H5T_NATIVE_INT64, &step) < 0 || H5Aclose(attr) < 0 ||
        (attr = H5Aopen(file, "vec", H5P_DEFAULT)) < 0 ||
        H5Aread(attr, H5T_NATIVE_DOUBLE, vec) < 0 || H5Aclose(attr) < 0) {
        rc = -1;
        goto done;
    }
    attr = H5I_INVALID_HID;
    if (fmt != 1 || step != 1200 || vec[0] != 1.5 || vec[1] != -2.0 || vec[2] != 3.25) {
        rc = -1;
        goto done;
    }
    memset(u, 0, sizeof u);
    if ((dset = H5Dopen2(file, "/state/u", H5P_DEFAULT)) < 0 ||
        H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, u) < 0 ||
        H5Dclose(dset) < 0) {
        rc = -1;
        goto done;
    }
    memset(pk, 0, sizeof pk);
    if ((dset = H5Dopen2(file, "/brine/pickle", H5P_DEFAULT)) < 0 ||
        H5Dread(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, pk) < 0 ||
        H5Dclose(dset) < 0) {
        rc = -1;
        goto done;
    }
    dset = H5I_INVALID_HID;
    if (memcmp(u, u_data, sizeof u) != 0 || memcmp(pk, pickle_data, sizeof pk) != 0)
        rc = -1;
done:
    if (attr >= 0)
        H5Aclose(attr);
    if (dset >= 0)
        H5Dclose(dset);
    if (file >= 0 && H5Fclose(file) < 0)
        rc = -1;
    return rc;
}

/* HDF5 file ids still open in the process: a failed H5Fclose must not leave one. */
static ssize_t open_files(void)
{
    return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
}

static int setup_h5(void **state)
{
    (void)state;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fill_data();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* io_posix and io_transfer                                                 */

static int stop_at_b(void *arg, const char *name)
{
    int *seen = arg;
    (*seen)++;
    return name[0] == 'b' ? 7 : 0;
}

static int count_entry(void *arg, const char *name)
{
    int *seen = arg;
    assert_true(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
    (*seen)++;
    return 0;
}

static void test_posix_methods(void **state)
{
    (void)state;
    const brine_io_methods *io = brine_io_posix();
    assert_non_null(io);
    assert_ptr_equal(io, brine_io_posix());
    assert_int_equal(io->version, BRINE_IO_METHODS_VERSION);
    const char *dir = tu_tmpdir();
    char path[600], path2[600];
    snprintf(path, sizeof path, "%s/a", dir);
    snprintf(path2, sizeof path2, "%s/b", dir);

    assert_int_equal(io->open(io->ctx, path, O_RDONLY, 0), -ENOENT);
    int fd = io->open(io->ctx, path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(io->open(io->ctx, path, O_RDWR | O_CREAT | O_EXCL, 0600), -EEXIST);
    assert_int_equal(io->pwrite(io->ctx, fd, "hello", 5, 10), 5);
    uint64_t size = 0;
    assert_int_equal(io->fsize(io->ctx, fd, &size), 0);
    assert_int_equal(size, 15);
    char buf[8] = {0};
    assert_int_equal(io->pread(io->ctx, fd, buf, 8, 10), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(io->pread(io->ctx, fd, buf, 8, 100), 0);
    assert_int_equal(io->fsync(io->ctx, fd), 0);
    assert_int_equal(io->ftruncate(io->ctx, fd, 3), 0);
    assert_int_equal(io->fsize(io->ctx, fd, &size), 0);
    assert_int_equal(size, 3);
    assert_int_equal(io->close(io->ctx, fd), 0);
    assert_int_equal(io->close(io->ctx, fd), -EBADF);
    assert_int_equal(io->pread(io->ctx, fd, buf, 1, 0), -EBADF);
    assert_int_equal(io->fsync(io->ctx, fd), -EBADF);

    assert_int_equal(io->rename(io->ctx, path, path2), 0);
    assert_int_equal(io->rename(io->ctx, path, path2), -ENOENT);
    assert_int_equal(io->fsync_dir(io->ctx, dir), 0);
    assert_int_equal(io->fsync_dir(io->ctx, path2), -ENOTDIR);
    int seen = 0;
    assert_int_equal(io->list_dir(io->ctx, dir, count_entry, &seen), 0);
    assert_int_equal(seen, 1);
    seen = 0;
    assert_int_equal(io->list_dir(io->ctx, dir, stop_at_b, &seen), 7);
    assert_int_equal(io->list_dir(io->ctx, path, count_entry, &seen), -ENOENT);
    assert_int_equal(io->unlink(io->ctx, path2), 0);
    assert_int_equal(io->unlink(io->ctx, path2), -ENOENT);
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(io->mkdir(io->ctx, path, 0777), 0);
    assert_int_equal(io->mkdir(io->ctx, path, 0777), -EEXIST);
    tu_rmtree(dir);
}

static void test_transfer_retries(void **state)
{
    (void)state;
    fault f;
    fault_init(&f);
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/t", dir);
    unsigned char data[1000], back[1000];
    for (int i = 0; i < 1000; i++)
        data[i] = (unsigned char)(i * 13);

    int fd = f.m.open(f.m.ctx, path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    f.short_io = 1;
    f.eintr = 1;
    assert_int_equal(brine_io__pwrite_all(&f.m, fd, data, sizeof data, 5), 0);
    assert_true(f.calls[OP_PWRITE] > 10); /* halving plus EINTR: many attempts */
    f.calls[OP_PREAD] = 0;
    assert_int_equal(brine_io__pread_all(&f.m, fd, back, sizeof back, 5), 0);
    assert_true(f.calls[OP_PREAD] > 10);
    assert_memory_equal(back, data, sizeof data);
    /* End of file before n bytes is -EIO. */
    assert_int_equal(brine_io__pread_all(&f.m, fd, back, 10, 1000), -EIO);
    assert_int_equal(brine_io__pread_all(&f.m, fd, back, 0, 1 << 20), 0);
    f.short_io = f.eintr = 0;
    /* Errors other than EINTR come back as they are. */
    fault_set(&f, OP_PWRITE, f.calls[OP_PWRITE] + 1, ENOSPC);
    assert_int_equal(brine_io__pwrite_all(&f.m, fd, data, 10, 0), -ENOSPC);
    fault_set(&f, OP_PREAD, f.calls[OP_PREAD] + 1, EIO);
    assert_int_equal(brine_io__pread_all(&f.m, fd, back, 10, 0), -EIO);
    assert_int_equal(f.m.close(f.m.ctx, fd), 0);
    tu_rmtree(dir);
}

static int64_t zero_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    (void)ctx, (void)fd, (void)buf, (void)n, (void)off;
    return 0;
}

static void test_transfer_zero_write_is_eio(void **state)
{
    (void)state;
    brine_io_methods m = *brine_io_posix();
    m.pwrite = zero_pwrite;
    assert_int_equal(brine_io__pwrite_all(&m, 0, "x", 1, 0), -EIO);
    assert_int_equal(brine_io__pwrite_all(&m, 0, "x", 0, 0), 0);
}

/* ------------------------------------------------------------------------ */
/* The HDF5 driver                                                           */

static void test_vfd_roundtrip(void **state)
{
    (void)state;
    fault f;
    fault_init(&f);
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/sample.h5", dir);

    hid_t fapl = brine_vfd__fapl(&f.m, &st);
    assert_true(fapl >= 0);
    assert_true(H5Pget_driver(fapl) >= 0);
    assert_int_equal(write_sample(fapl, path, &f), 0);
    assert_int_equal(st.neg_errno, 0);
    assert_null(st.op);

    /* Durability: the fsync came after the last write and truncation, on the
     * file's descriptor, and the close after it. */
    assert_true(f.calls[OP_PWRITE] > 0);
    assert_int_equal(f.calls[OP_FSYNC], 1);
    assert_true(f.last_seq[OP_FSYNC] > f.last_seq[OP_PWRITE]);
    assert_true(f.last_seq[OP_FSYNC] > f.last_seq[OP_FTRUNCATE]);
    assert_true(f.last_seq[OP_CLOSE] > f.last_seq[OP_FSYNC]);
    assert_int_equal(f.last_fsync_fd, f.last_close_fd);
    assert_int_equal(f.live_fds, 0);
    assert_int_equal(open_files(), 0);

    /* Reads back through the driver and through HDF5's default driver. */
    int writes = f.calls[OP_PWRITE], fsyncs = f.calls[OP_FSYNC];
    assert_int_equal(check_sample(fapl, path), 0);
    assert_true(f.calls[OP_PREAD] > 0);
    assert_int_equal(f.calls[OP_PWRITE], writes);
    assert_int_equal(f.calls[OP_FSYNC], fsyncs); /* read-only: no fsync */
    assert_int_equal(check_sample(H5P_DEFAULT, path), 0);
    assert_int_equal(f.live_fds, 0);

    /* H5Fget_access_plist gives a fapl that still uses the driver. */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    assert_true(file >= 0);
    hid_t fapl2 = H5Fget_access_plist(file);
    assert_true(fapl2 >= 0);
    assert_int_equal(H5Pget_driver(fapl2), H5Pget_driver(fapl));
    assert_int_equal(H5Fclose(file), 0);
    int opens = f.calls[OP_OPEN];
    assert_int_equal(check_sample(fapl2, path), 0);
    assert_true(f.calls[OP_OPEN] > opens);
    assert_int_equal(H5Pclose(fapl2), 0);

    /* A missing file: H5Fopen fails, the status says open and ENOENT. */
    char missing[640];
    snprintf(missing, sizeof missing, "%s/missing.h5", dir);
    assert_true(H5Fopen(missing, H5F_ACC_RDONLY, fapl) < 0);
    assert_int_equal(st.neg_errno, -ENOENT);
    assert_string_equal(st.op, "open");
    assert_string_equal(st.path, missing);
    assert_int_equal(f.live_fds, 0);

    assert_int_equal(H5Pclose(fapl), 0);
    assert_int_equal(open_files(), 0);
    tu_rmtree(dir);
}

static void test_vfd_short_io_and_eintr(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        fault f;
        fault_init(&f);
        f.short_io = mode != 1;
        f.eintr = mode != 0;
        brine_vfd_status st;
        memset(&st, 0, sizeof st);
        const char *dir = tu_tmpdir();
        char path[600];
        snprintf(path, sizeof path, "%s/s.h5", dir);
        hid_t fapl = brine_vfd__fapl(&f.m, &st);
        assert_true(fapl >= 0);
        assert_int_equal(write_sample(fapl, path, &f), 0);
        assert_int_equal(check_sample(fapl, path), 0);
        assert_int_equal(check_sample(H5P_DEFAULT, path), 0);
        assert_int_equal(st.neg_errno, 0);
        assert_int_equal(f.live_fds, 0);
        assert_int_equal(H5Pclose(fapl), 0);
        tu_rmtree(dir);
    }
}

/*
 * Fails the k-th pwrite for every k a clean run makes, with err.  A failure
 * before H5Fclose makes an HDF5 call fail; one inside H5Fclose is only in the
 * status (see h5_vfd.h).  Either way the status names it, nothing leaks, no
 * HDF5 file id survives, and the failed file is written no more.
 */
static void pwrite_faults(int err)
{
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/f.h5", dir);
    fault f;
    fault_init(&f);
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    hid_t fapl = brine_vfd__fapl(&f.m, &st);
    assert_true(fapl >= 0);
    assert_int_equal(write_sample(fapl, path, &f), 0);
    const int n = f.calls[OP_PWRITE];
    assert_true(n >= 3);
    H5Pclose(fapl);
    unlink(path);

    int before_close = 0, in_close = 0;
    for (int k = 1; k <= n; k++) {
        fault_init(&f);
        fault_set(&f, OP_PWRITE, k, err);
        memset(&st, 0, sizeof st);
        fapl = brine_vfd__fapl(&f.m, &st);
        assert_true(fapl >= 0);
        int rc = write_sample(fapl, path, &f);
        if (f.failed_in_fclose) {
            in_close++;
        } else {
            before_close++;
            if (rc == 0)
                fail_msg("pwrite %d of %d failed with %s but HDF5 reported success", k, n,
                         strerror(err));
        }
        assert_int_equal(st.neg_errno, -err);
        assert_string_equal(st.op, "pwrite");
        assert_string_equal(st.path, path);
        if (f.calls[OP_PWRITE] != k)
            fail_msg("after pwrite %d failed, the driver wrote %d more times", k, f.calls[OP_PWRITE] - k);
        assert_int_equal(f.calls[OP_FSYNC], 0);
        if (f.live_fds != 0)
            fail_msg("pwrite %d of %d failing leaks %d descriptor(s)", k, n, f.live_fds);
        if (open_files() != 0)
            fail_msg("pwrite %d of %d failing leaves %zd HDF5 file(s) open", k, n, open_files());
        H5Pclose(fapl);
        unlink(path);
    }
    /* The workload exercises both sides of H5Fclose. */
    assert_true(before_close > 0);
    assert_true(in_close > 0);
    tu_rmtree(dir);
}

/* Fails the k-th pread while reading the sample back, for every k. */
static void test_vfd_pread_faults(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/r.h5", dir);
    fault f;
    fault_init(&f);
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    hid_t fapl = brine_vfd__fapl(&f.m, &st);
    assert_true(fapl >= 0);
    assert_int_equal(write_sample(fapl, path, &f), 0);
    fault_init(&f);
    assert_int_equal(check_sample(fapl, path), 0);
    const int n = f.calls[OP_PREAD];
    assert_true(n >= 3);
    H5Pclose(fapl);
    for (int k = 1; k <= n; k++) {
        fault_init(&f);
        fault_set(&f, OP_PREAD, k, EIO);
        memset(&st, 0, sizeof st);
        fapl = brine_vfd__fapl(&f.m, &st);
        assert_true(fapl >= 0);
        if (check_sample(fapl, path) == 0)
            fail_msg("pread %d of %d failed but the sample read back", k, n);
        assert_int_equal(st.neg_errno, -EIO);
        assert_string_equal(st.op, "pread");
        assert_string_equal(st.path, path);
        assert_int_equal(f.live_fds, 0);
        assert_int_equal(open_files(), 0);
        H5Pclose(fapl);
    }
    tu_rmtree(dir);
}

static void test_vfd_pwrite_enospc(void **state)
{
    (void)state;
    pwrite_faults(ENOSPC);
}

static void test_vfd_pwrite_eio(void **state)
{
    (void)state;
    pwrite_faults(EIO);
}

static void test_vfd_fsync_at_close_fails(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    fault f;
    fault_init(&f);
    fault_set(&f, OP_FSYNC, 1, EIO);
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    hid_t fapl = brine_vfd__fapl(&f.m, &st);
    assert_true(fapl >= 0);

    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    assert_true(file >= 0);
    const int32_t one = 1;
    assert_int_equal(set_attr(file, "a", H5T_STD_I32LE, 0, NULL, &one), 0);
    assert_int_equal(H5Fflush(file, H5F_SCOPE_LOCAL), 0);
    /* Not an HDF5 error (it would leave a dangling file id, see h5_vfd.h):
     * the status is where the failure is. */
    assert_int_equal(H5Fclose(file), 0);
    assert_int_equal(st.neg_errno, -EIO);
    assert_string_equal(st.op, "fsync");
    assert_string_equal(st.path, path);
    assert_int_equal(f.live_fds, 0);
    assert_int_equal(open_files(), 0);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* Opens path for writing where eoa and eof differ, so that HDF5 truncates. */
static void add_trailing_junk(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
}

static void test_vfd_other_faults(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/o.h5", dir);
    fault f;
    brine_vfd_status st;
    hid_t fapl, file;

    /* open and fsize fail H5Fcreate; close fails quietly at H5Fclose. */
    static const struct {
        int op;
        const char *name;
        int err;
        int hdf5_fails;
    } cases[] = {
        {OP_OPEN, "open", EACCES, 1},
        {OP_FSIZE, "fsize", EIO, 1},
        {OP_CLOSE, "close", EIO, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fault_init(&f);
        fault_set(&f, cases[c].op, 1, cases[c].err);
        f.sticky = 1;
        memset(&st, 0, sizeof st);
        fapl = brine_vfd__fapl(&f.m, &st);
        assert_true(fapl >= 0);
        assert_int_equal(write_sample(fapl, path, &f) < 0, cases[c].hdf5_fails);
        assert_int_equal(st.neg_errno, -cases[c].err);
        assert_string_equal(st.op, cases[c].name);
        assert_string_equal(st.path, path);
        assert_int_equal(f.live_fds, 0);
        assert_int_equal(open_files(), 0);
        H5Pclose(fapl);
        unlink(path);
    }

    /* ftruncate at H5Fflush: an HDF5 error; H5Fclose then succeeds. */
    assert_int_equal(write_sample(H5P_DEFAULT, path, NULL), 0);
    add_trailing_junk(path);
    fault_init(&f);
    fault_set(&f, OP_FTRUNCATE, 1, EIO);
    memset(&st, 0, sizeof st);
    fapl = brine_vfd__fapl(&f.m, &st);
    file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    assert_true(file >= 0);
    assert_true(H5Fflush(file, H5F_SCOPE_LOCAL) < 0);
    assert_int_equal(H5Fclose(file), 0);
    assert_int_equal(st.neg_errno, -EIO);
    assert_string_equal(st.op, "ftruncate");
    assert_int_equal(f.calls[OP_FSYNC], 0); /* a failed file is not synced */
    assert_int_equal(f.live_fds, 0);
    assert_int_equal(open_files(), 0);
    H5Pclose(fapl);

    /* ftruncate inside H5Fclose: only in the status. */
    fault_init(&f);
    fault_set(&f, OP_FTRUNCATE, 1, EIO);
    memset(&st, 0, sizeof st);
    fapl = brine_vfd__fapl(&f.m, &st);
    file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    assert_true(file >= 0);
    assert_int_equal(H5Fclose(file), 0);
    assert_int_equal(st.neg_errno, -EIO);
    assert_string_equal(st.op, "ftruncate");
    assert_string_equal(st.path, path);
    assert_int_equal(f.live_fds, 0);
    assert_int_equal(open_files(), 0);
    H5Pclose(fapl);

    /* Without a fault, the junk is truncated away and the file still reads. */
    fault_init(&f);
    memset(&st, 0, sizeof st);
    fapl = brine_vfd__fapl(&f.m, &st);
    file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    assert_true(file >= 0);
    assert_int_equal(H5Fclose(file), 0);
    assert_int_equal(f.calls[OP_FTRUNCATE], 1);
    assert_int_equal(st.neg_errno, 0);
    assert_int_equal(check_sample(fapl, path), 0);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* The driver through HDF5's public H5FD API: zeros past EOF, nothing past eoa. */
static void test_vfd_read_past_eof(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/raw", dir);
    assert_int_equal(tu_write_file(path, "0123456789", 10), 0);
    fault f;
    fault_init(&f);
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    hid_t fapl = brine_vfd__fapl(&f.m, &st);
    assert_true(fapl >= 0);
    H5FD_t *fd = H5FDopen(path, H5F_ACC_RDONLY, fapl, HADDR_UNDEF);
    assert_non_null(fd);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), 10);
    assert_int_equal(H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 100), 0);
    unsigned char buf[100];
    memset(buf, 0xAA, sizeof buf);
    assert_int_equal(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 4, 90, buf), 0);
    assert_memory_equal(buf, "456789", 6);
    for (int i = 6; i < 90; i++)
        assert_int_equal(buf[i], 0);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 50, 51, buf) < 0);
    assert_int_equal(st.neg_errno, 0); /* a bounds error is HDF5's, not a system call's */
    assert_int_equal(H5FDclose(fd), 0);
    assert_int_equal(f.calls[OP_FSYNC], 0);
    assert_int_equal(f.live_fds, 0);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* dir_scan                                                                  */

static void test_parse_name(void **state)
{
    (void)state;
    int64_t step = -1;
    assert_int_equal(brine_scan__parse_name("ckpt-000000001200.h5", "ckpt", &step), 1);
    assert_int_equal(step, 1200);
    assert_int_equal(brine_scan__parse_name("ckpt-000000000000.h5", "ckpt", &step), 1);
    assert_int_equal(step, 0);
    assert_int_equal(brine_scan__parse_name("ckpt-999999999999.h5", "ckpt", &step), 1);
    assert_int_equal(step, INT64_C(999999999999));
    assert_int_equal(brine_scan__parse_name("a.b+c-000000000007.h5", "a.b+c", &step), 1);
    assert_int_equal(step, 7);
    assert_int_equal(brine_scan__parse_name("ckpt-ckpt-000000000007.h5", "ckpt-ckpt", &step), 1);

    static const char *const bad[] = {
        "ckpt-00000000120.h5",    /* 11 digits */
        "ckpt-0000000012000.h5",  /* 13 digits */
        "ckpt-00000000120a.h5",
        "ckpt-+00000000120.h5",
        "ckpt- 00000000120.h5",
        "ckpt--00000000120.h5",
        "ckpt-000000001200.h5.tmp-12",
        ".ckpt-000000001200.h5",
        "ckpt-000000001200.h5x",
        "ckpt-000000001200.h",
        "ckpt-000000001200.H5",
        "ckpt-000000001200",
        "ckpt_000000001200.h5",
        "ckpt000000001200.h5",
        "ckptx-000000001200.h5",
        "other-000000001200.h5",
        "xckpt-000000001200.h5",
        "ckpt-.h5",
        "ckpt-",
        "ckpt",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        step = -1;
        if (brine_scan__parse_name(bad[i], "ckpt", &step) != 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(step, -1);
    }
    /* A prefix that is a prefix of another's does not match it. */
    assert_int_equal(brine_scan__parse_name("ckpt-000000000001.h5", "ck", &step), 0);

    assert_int_equal(brine_scan__is_temp(".ckpt-000000001200.h5.tmp-4242", "ckpt"), 1);
    assert_int_equal(brine_scan__is_temp(".ckpt-000000001200.h5.tmp-", "ckpt"), 1);
    assert_int_equal(brine_scan__is_temp("ckpt-000000001200.h5.tmp-4242", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".ckpt-000000001200.h5", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".ckpt-000000001200.h5.tmp", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".ckpt-00000000120.h5.tmp-1", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".other-000000001200.h5.tmp-1", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".ck-000000001200.h5.tmp-1", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp("..ckpt-000000001200.h5.tmp-1", "ckpt"), 0);
    assert_int_equal(brine_scan__is_temp(".", "ckpt"), 0);
}

static void touch(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(tu_write_file(path, name, strlen(name)), 0);
}

static int exists(const char *dir, const char *name)
{
    char path[700];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

static void touch_step(const char *dir, const char *prefix, int64_t step)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%012lld.h5", prefix, (long long)step);
    touch(dir, name);
}

static int has_step(const char *dir, const char *prefix, int64_t step)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%012lld.h5", prefix, (long long)step);
    return exists(dir, name);
}

static void test_list_sorted(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    static const int64_t steps[] = {500, 3, 999999999999, 0, 42, 1200, 7};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        touch_step(dir, "ckpt", steps[i]);
    touch_step(dir, "other", 1);
    touch(dir, ".ckpt-000000000001.h5.tmp-99");
    touch(dir, "ckpt-00000000001.h5");
    touch(dir, "notes.txt");
    char sub[600];
    snprintf(sub, sizeof sub, "%s/ckpt-000000000009.h5.d", dir);
    assert_int_equal(mkdir(sub, 0777), 0);

    brine_error err;
    brine__error_clear(&err);
    brine_ckpt_entry *v = NULL;
    size_t n = 99;
    assert_int_equal(brine_scan__list(&v, &n, brine_io_posix(), NULL, dir, "ckpt", &err), 0);
    assert_int_equal(n, 7);
    static const int64_t want[] = {0, 3, 7, 42, 500, 1200, 999999999999};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i].step, want[i]);
    free(v);

    assert_int_equal(brine_scan__list(&v, &n, brine_io_posix(), NULL, dir, "nothing", &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);

    /* A missing directory is BRINE_ENOTFOUND, naming the directory and the cause. */
    char missing[640];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    assert_int_equal(brine_scan__list(&v, &n, brine_io_posix(), NULL, missing, "ckpt", &err),
                     BRINE_ENOTFOUND);
    assert_int_equal(err.code, BRINE_ENOTFOUND);
    assert_non_null(strstr(err.msg, missing));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_null(v);
    assert_int_equal(n, 0);
    tu_rmtree(dir);
}

/* An allocator failing after a number of allocations, for the ENOMEM paths. */
typedef struct counting_alloc {
    int left, live;
} counting_alloc;

static void *ca_alloc(void *ctx, size_t size)
{
    counting_alloc *c = ctx;
    if (c->left-- <= 0)
        return NULL;
    c->live++;
    return malloc(size);
}

static void ca_free(void *ctx, void *p)
{
    counting_alloc *c = ctx;
    c->live--;
    free(p);
}

static void test_scan_enomem(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    for (int s = 0; s < 40; s++) {
        touch_step(dir, "ckpt", s);
        char name[64];
        snprintf(name, sizeof name, ".ckpt-%012d.h5.tmp-1", s);
        touch(dir, name);
    }
    brine_error err;
    for (int budget = 0;; budget++) {
        counting_alloc c = {budget, 0};
        const brine_allocator a = {ca_alloc, ca_free, &c};
        brine_ckpt_entry *v = NULL;
        size_t n = 0;
        int rc = brine_scan__list(&v, &n, brine_io_posix(), &a, dir, "ckpt", &err);
        if (rc == 0) {
            assert_int_equal(n, 40);
            brine__free(&a, v);
            assert_int_equal(c.live, 0);
            break;
        }
        assert_int_equal(rc, BRINE_ENOMEM);
        assert_int_equal(c.live, 0);
    }
    for (int budget = 0;; budget++) {
        counting_alloc c = {budget, 0};
        const brine_allocator a = {ca_alloc, ca_free, &c};
        int rc = brine_scan__remove_temps(brine_io_posix(), &a, dir, "ckpt", &err);
        assert_int_equal(c.live, 0);
        if (rc >= 0) {
            assert_int_equal(rc, 40);
            break;
        }
        assert_int_equal(rc, BRINE_ENOMEM);
        assert_int_equal(tu_count_entries(dir, ".ckpt"), 40); /* nothing removed on failure */
    }
    tu_rmtree(dir);
}

static void test_remove_temps(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    touch(dir, ".ckpt-000000000001.h5.tmp-100");
    touch(dir, ".ckpt-000000000002.h5.tmp-200");
    touch(dir, ".ckpt-000000000002.h5.tmp-");
    touch(dir, ".other-000000000001.h5.tmp-100");
    touch(dir, ".ckptx-000000000001.h5.tmp-100");
    touch(dir, ".ckpt-00000000001.h5.tmp-100");
    touch(dir, ".ckpt-000000000001.h5");
    touch(dir, "ckpt-000000000001.h5");
    touch(dir, "ckpt-000000000001.h5.tmp-5");
    fault f;
    fault_init(&f);
    brine_error err;
    brine__error_clear(&err);
    assert_int_equal(brine_scan__remove_temps(&f.m, NULL, dir, "ckpt", &err), 3);
    assert_false(exists(dir, ".ckpt-000000000001.h5.tmp-100"));
    assert_false(exists(dir, ".ckpt-000000000002.h5.tmp-200"));
    assert_false(exists(dir, ".ckpt-000000000002.h5.tmp-"));
    assert_true(exists(dir, ".other-000000000001.h5.tmp-100"));
    assert_true(exists(dir, ".ckptx-000000000001.h5.tmp-100"));
    assert_true(exists(dir, ".ckpt-00000000001.h5.tmp-100"));
    assert_true(exists(dir, ".ckpt-000000000001.h5"));
    assert_true(exists(dir, "ckpt-000000000001.h5"));
    assert_true(exists(dir, "ckpt-000000000001.h5.tmp-5"));
    assert_int_equal(f.calls[OP_UNLINK], 3);

    /* Best effort: a failing unlink is skipped, not an error. */
    touch(dir, ".ckpt-000000000001.h5.tmp-1");
    touch(dir, ".ckpt-000000000002.h5.tmp-1");
    fault_init(&f);
    fault_set(&f, OP_UNLINK, 1, EACCES);
    assert_int_equal(brine_scan__remove_temps(&f.m, NULL, dir, "ckpt", &err), 1);
    assert_int_equal(f.calls[OP_UNLINK], 2);
    assert_int_equal(exists(dir, ".ckpt-000000000001.h5.tmp-1") +
                         exists(dir, ".ckpt-000000000002.h5.tmp-1"),
                     1);

    /* A directory that cannot be listed is an error. */
    fault_init(&f);
    fault_set(&f, OP_LIST_DIR, 1, EIO);
    assert_int_equal(brine_scan__remove_temps(&f.m, NULL, dir, "ckpt", &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, strerror(EIO)));
    tu_rmtree(dir);
}

static void make_steps(const char *dir, int from, int to)
{
    for (int s = from; s <= to; s++)
        touch_step(dir, "ckpt", s);
}

static void test_rotate(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_error err;
    brine__error_clear(&err);
    fault f;
    touch_step(dir, "other", 1);
    touch(dir, ".ckpt-000000000001.h5.tmp-1");

    /* keep_last 0 (and negative) keeps everything, touching nothing. */
    make_steps(dir, 1, 5);
    fault_init(&f);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 0, 5, &err), 0);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", -1, 5, &err), 0);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 5);
    assert_int_equal(f.calls[OP_UNLINK] + f.calls[OP_FSYNC_DIR], 0);

    /* keep_last 3: the two oldest go, then the directory is fsynced. */
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 3, 5, &err), 2);
    assert_false(has_step(dir, "ckpt", 1));
    assert_false(has_step(dir, "ckpt", 2));
    assert_true(has_step(dir, "ckpt", 3) && has_step(dir, "ckpt", 4) && has_step(dir, "ckpt", 5));
    assert_int_equal(f.calls[OP_FSYNC_DIR], 1);
    assert_string_equal(f.last_fsync_dir, dir);
    assert_true(f.last_seq[OP_FSYNC_DIR] > f.last_seq[OP_UNLINK]);
    /* Nothing to do: no deletion, no fsync. */
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 3, 5, &err), 0);
    assert_int_equal(f.calls[OP_FSYNC_DIR], 1);

    /* keep_last 1. */
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 1, 5, &err), 2);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 1);
    assert_true(has_step(dir, "ckpt", 5));

    /* keep_step is never deleted, even when it is the oldest; the keep_last
     * newest stay as well (docs/format.md, section 1). */
    make_steps(dir, 1, 5);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 3, 1, &err), 1);
    assert_false(has_step(dir, "ckpt", 2));
    assert_true(has_step(dir, "ckpt", 1) && has_step(dir, "ckpt", 3) && has_step(dir, "ckpt", 4) &&
                has_step(dir, "ckpt", 5));
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 1, 1, &err), 2);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 2);
    assert_true(has_step(dir, "ckpt", 1) && has_step(dir, "ckpt", 5));
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 1, 5, &err), 1);
    assert_true(has_step(dir, "ckpt", 5) && !has_step(dir, "ckpt", 1));

    /* Other prefixes and temporaries are never touched. */
    assert_true(has_step(dir, "other", 1));
    assert_true(exists(dir, ".ckpt-000000000001.h5.tmp-1"));

    /* A failing unlink is skipped (not replaced by a newer checkpoint), and is not an error. */
    make_steps(dir, 1, 5);
    fault_init(&f);
    fault_set(&f, OP_UNLINK, 1, EACCES);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 2, 5, &err), 2);
    assert_int_equal(f.calls[OP_UNLINK], 3);
    assert_true(has_step(dir, "ckpt", 1)); /* failed: retried next time */
    assert_false(has_step(dir, "ckpt", 2));
    assert_false(has_step(dir, "ckpt", 3));
    assert_true(has_step(dir, "ckpt", 4) && has_step(dir, "ckpt", 5));
    fault_init(&f);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 2, 5, &err), 1);
    assert_false(has_step(dir, "ckpt", 1));

    /* A failing directory fsync does not fail a best-effort rotation. */
    make_steps(dir, 1, 3);
    fault_init(&f);
    fault_set(&f, OP_FSYNC_DIR, 1, EIO);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 2, 5, &err), 3);

    /* An unreadable directory is an error. */
    fault_init(&f);
    fault_set(&f, OP_LIST_DIR, 1, EACCES);
    assert_int_equal(brine_scan__rotate(&f.m, NULL, dir, "ckpt", 2, 5, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, strerror(EACCES)));
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* publish                                                                   */

static void test_publish_paths(void **state)
{
    (void)state;
    char final[256], tmp[256], want[256];
    brine_error err;
    brine__error_clear(&err);
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, sizeof tmp, "/d/e", "ckpt",
                                          1200, &err),
                     0);
    assert_string_equal(final, "/d/e/ckpt-000000001200.h5");
    snprintf(want, sizeof want, "/d/e/.ckpt-000000001200.h5.tmp-%ld", (long)getpid());
    assert_string_equal(tmp, want);
    int64_t step = -1;
    assert_int_equal(brine_scan__parse_name(strrchr(final, '/') + 1, "ckpt", &step), 1);
    assert_int_equal(step, 1200);
    assert_int_equal(brine_scan__is_temp(strrchr(tmp, '/') + 1, "ckpt"), 1);

    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, sizeof tmp, ".", "p",
                                          INT64_C(999999999999), &err),
                     0);
    assert_string_equal(final, "./p-999999999999.h5");
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, sizeof tmp, ".", "p",
                                          INT64_C(1000000000000), &err),
                     BRINE_EINVAL);
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, sizeof tmp, ".", "p", -1, &err),
                     BRINE_EINVAL);

    /* Too small: exactly one byte short of each. */
    size_t flen = strlen("/d/ckpt-000000000001.h5");
    assert_int_equal(brine_publish__paths(final, flen, tmp, sizeof tmp, "/d", "ckpt", 1, &err),
                     BRINE_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    assert_int_equal(brine_publish__paths(final, flen + 1, tmp, sizeof tmp, "/d", "ckpt", 1, &err), 0);
    size_t tlen = strlen(tmp);
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, tlen, "/d", "ckpt", 1, &err),
                     BRINE_EINVAL);
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, tlen + 1, "/d", "ckpt", 1, &err), 0);
}

static void test_mkdirs(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[700];
    struct stat sb;
    brine_error err;
    brine__error_clear(&err);
    fault f;
    fault_init(&f);

    snprintf(path, sizeof path, "%s/a/b//c/", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), 0);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    /* Three directories created, each parent fsynced. */
    assert_int_equal(f.calls[OP_FSYNC_DIR], 3);
    snprintf(path, sizeof path, "%s/a/b", dir);
    assert_string_equal(f.last_fsync_dir, path);

    /* Existing: fine, and idempotent. */
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), 0);
    assert_int_equal(brine_publish__mkdirs(&f.m, "/", &err), 0);

    /* Relative paths. */
    char cwd[600];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    fault_init(&f);
    assert_int_equal(brine_publish__mkdirs(&f.m, "rel", &err), 0);
    assert_string_equal(f.last_fsync_dir, ".");
    assert_int_equal(brine_publish__mkdirs(&f.m, "rel/x/y", &err), 0);
    assert_int_equal(chdir(cwd), 0);
    snprintf(path, sizeof path, "%s/rel/x/y", dir);
    assert_int_equal(stat(path, &sb), 0);

    /* A regular file in the way: an error naming it. */
    touch(dir, "file");
    snprintf(path, sizeof path, "%s/file", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOTDIR)));
    snprintf(path, sizeof path, "%s/file/sub", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, "mkdir"));

    /* A failing mkdir: the code follows errno. */
    fault_init(&f);
    fault_set(&f, OP_MKDIR, 2, ENOSPC);
    snprintf(path, sizeof path, "%s/n1/n2/n3", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), BRINE_ENOSPC);
    assert_non_null(strstr(err.msg, strerror(ENOSPC)));

    /* A failing parent fsync is an error: the new directory may not survive. */
    fault_init(&f);
    fault_set(&f, OP_FSYNC_DIR, 1, EIO);
    snprintf(path, sizeof path, "%s/m1", dir);
    assert_int_equal(brine_publish__mkdirs(&f.m, path, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, "fsync"));
    tu_rmtree(dir);
}

static void test_commit(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char final[700], tmp[700];
    brine_error err;
    brine__error_clear(&err);
    assert_int_equal(brine_publish__paths(final, sizeof final, tmp, sizeof tmp, dir, "ckpt", 5, &err), 0);
    fault f;
    size_t len = 0;
    uint8_t *got;

    /* Success: tmp becomes final, then the directory is fsynced. */
    assert_int_equal(tu_write_file(tmp, "old", 3), 0);
    fault_init(&f);
    assert_int_equal(brine_publish__commit(&f.m, tmp, final, dir, &err), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    got = tu_read_file(final, &len);
    assert_non_null(got);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "old", 3);
    free(got);
    assert_int_equal(f.calls[OP_FSYNC_DIR], 1);
    assert_string_equal(f.last_fsync_dir, dir);
    assert_true(f.last_seq[OP_FSYNC_DIR] > f.last_seq[OP_RENAME]);

    /* A failing rename: tmp is removed, the old final untouched. */
    assert_int_equal(tu_write_file(tmp, "new", 3), 0);
    fault_init(&f);
    fault_set(&f, OP_RENAME, 1, EIO);
    assert_int_equal(brine_publish__commit(&f.m, tmp, final, dir, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_non_null(strstr(err.msg, tmp));
    assert_non_null(strstr(err.msg, strerror(EIO)));
    assert_int_equal(access(tmp, F_OK), -1);
    got = tu_read_file(final, &len);
    assert_non_null(got);
    assert_memory_equal(got, "old", 3);
    free(got);
    assert_int_equal(f.calls[OP_FSYNC_DIR], 0);

    /* ENOSPC keeps its code. */
    assert_int_equal(tu_write_file(tmp, "new", 3), 0);
    fault_init(&f);
    fault_set(&f, OP_RENAME, 1, ENOSPC);
    assert_int_equal(brine_publish__commit(&f.m, tmp, final, dir, &err), BRINE_ENOSPC);
    assert_int_equal(access(tmp, F_OK), -1);

    /* A failing directory fsync is a failure; the renamed file stays. */
    assert_int_equal(tu_write_file(tmp, "new", 3), 0);
    fault_init(&f);
    fault_set(&f, OP_FSYNC_DIR, 1, EIO);
    assert_int_equal(brine_publish__commit(&f.m, tmp, final, dir, &err), BRINE_EIO);
    assert_non_null(strstr(err.msg, "fsync"));
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, strerror(EIO)));
    got = tu_read_file(final, &len);
    assert_non_null(got);
    assert_memory_equal(got, "new", 3);
    free(got);
    assert_int_equal(access(tmp, F_OK), -1);

    /* discard ignores a missing file. */
    brine_publish__discard(brine_io_posix(), tmp);
    tu_rmtree(dir);
}

/* Must run last: H5close() unregisters every driver, and the fapl must register it again. */
static void test_vfd_after_h5close(void **state)
{
    (void)state;
    brine_vfd_status st;
    memset(&st, 0, sizeof st);
    hid_t fapl = brine_vfd__fapl(brine_io_posix(), &st);
    assert_true(fapl >= 0);
    H5Pclose(fapl);
    assert_int_equal(H5close(), 0);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Another driver may now hold the old id's number. */
    hid_t sec2 = H5FD_SEC2;
    assert_true(sec2 >= 0);
    fapl = brine_vfd__fapl(brine_io_posix(), &st);
    assert_true(fapl >= 0);
    assert_int_not_equal(H5Pget_driver(fapl), sec2);
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/again.h5", dir);
    assert_int_equal(write_sample(fapl, path, NULL), 0);
    assert_int_equal(check_sample(H5P_DEFAULT, path), 0);
    H5Pclose(fapl);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posix_methods),
        cmocka_unit_test(test_transfer_retries),
        cmocka_unit_test(test_transfer_zero_write_is_eio),
        cmocka_unit_test(test_vfd_roundtrip),
        cmocka_unit_test(test_vfd_short_io_and_eintr),
        cmocka_unit_test(test_vfd_pwrite_enospc),
        cmocka_unit_test(test_vfd_pwrite_eio),
        cmocka_unit_test(test_vfd_pread_faults),
        cmocka_unit_test(test_vfd_fsync_at_close_fails),
        cmocka_unit_test(test_vfd_other_faults),
        cmocka_unit_test(test_vfd_read_past_eof),
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_list_sorted),
        cmocka_unit_test(test_scan_enomem),
        cmocka_unit_test(test_remove_temps),
        cmocka_unit_test(test_rotate),
        cmocka_unit_test(test_publish_paths),
        cmocka_unit_test(test_mkdirs),
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_vfd_after_h5close),
    };
    return cmocka_run_group_tests(tests, setup_h5, NULL);
}
