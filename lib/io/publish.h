/*
 * Atomic publication of a checkpoint file: names, mkdir -p, and the rename +
 * directory fsync that commit a fully written (and fsynced) temporary file.
 */
#ifndef BRINE_IO_PUBLISH_H
#define BRINE_IO_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

/**
 * Builds "<dir>/<prefix>-<step 12 digits>.h5" into final and
 * "<dir>/.<prefix>-<step 12 digits>.h5.tmp-<pid>" into tmp.
 * @return 0, or BRINE_EINVAL when a buffer is too small (message says so).
 */
int brine_publish__paths(char *final, size_t final_size, char *tmp, size_t tmp_size,
                         const char *dir, const char *prefix, int64_t step, brine_error *err);

/** Creates dir and its missing parents (mode 0777 & ~umask).  0 or BRINE_EIO/BRINE_ENOSPC. */
int brine_publish__mkdirs(const brine_io_methods *io, const char *dir, brine_error *err);

/**
 * Commits tmp as final: rename(tmp, final), then fsync(dir).  The caller has
 * fsynced tmp.  When the rename fails, tmp is unlinked.  When the directory
 * fsync fails, the rename may or may not survive a crash: that is reported as
 * a failure (BRINE_EIO), never as success, and the file is left in place
 * (unlinking it would not be durable either).
 * @return 0, BRINE_EIO or BRINE_ENOSPC.
 */
int brine_publish__commit(const brine_io_methods *io, const char *tmp, const char *final,
                          const char *dir, brine_error *err);

/** Unlinks path, ignoring errors (cleanup on a failure path). */
void brine_publish__discard(const brine_io_methods *io, const char *path);

#endif
