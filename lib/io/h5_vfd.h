/*
 * An HDF5 virtual file driver whose every operation goes through a
 * brine_io_methods table, so that HDF5's own file I/O can be observed and
 * fault-injected like the rest of the library.
 *
 * It behaves like HDF5's sec2 driver (one file, pread/pwrite), plus two
 * things brine needs: closing a file opened for writing fsyncs it first
 * (H5Fclose writes after its last flush, so this is the only place where an
 * fsync covers everything), and the first failing operation is recorded,
 * with its errno, in a brine_vfd_status the caller owns, so brine can report
 * "pwrite of FILE failed: No space left on device" rather than HDF5's generic stack.
 * File locking is not implemented (lock/unlock succeed): brine never
 * opens a file that another writer may hold (it writes temporary names).
 *
 * HDF5 1.10 cannot survive an error inside H5Fclose: it frees the file but
 * keeps its id, and H5close (run at exit) then crashes on it
 * (HDFGroup/hdf5#2257, fixed in 1.14.1).  So:
 *  - after its first failure a file is "failed": writes, truncations and the
 *    close-time fsync are skipped and report success (the file is garbage
 *    and its writer discards it);
 *  - a failure once H5Fclose has flushed its metadata (the final writes,
 *    the fsync, close) is recorded in the status but not reported to HDF5:
 *    H5Fclose succeeds.
 * A writer therefore calls H5Fflush(file, H5F_SCOPE_LOCAL) before H5Fclose
 * (so that the metadata is written, and can fail, outside H5Fclose), and
 * after H5Fclose treats a non-zero status.neg_errno as the failure it is.
 */
#ifndef BRINE_IO_H5_VFD_H
#define BRINE_IO_H5_VFD_H

#include <hdf5.h>

#include "brine.h"

/** The first failure seen by the driver since the status was cleared (zero it to clear). */
typedef struct brine_vfd_status {
    int neg_errno;      /**< 0 when nothing failed, else the negated errno */
    const char *op;     /**< "open", "pread", "pwrite", "fsync", "close", "ftruncate", "fsize" */
    char path[512];     /**< the file's path */
} brine_vfd_status;

/**
 * A file-access property list using the driver with io; failures are
 * recorded in *status (which must outlive every file opened with it).
 * Returns the fapl (close with H5Pclose) or H5I_INVALID_HID.
 * Thread-safe: registers the driver once per process.
 */
hid_t brine_vfd__fapl(const brine_io_methods *io, brine_vfd_status *status);

#endif
