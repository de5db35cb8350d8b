/*
 * The I/O layer's helpers over a brine_io_methods table: whole reads and
 * writes that retry short transfers and EINTR, and path joining.
 */
#ifndef BRINE_IO_IO_H
#define BRINE_IO_IO_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/**
 * Writes all n bytes at offset, retrying short writes and -EINTR.
 * Returns 0 or a negated errno (-EIO when the method wrote 0 bytes).
 */
int brine_io__pwrite_all(const brine_io_methods *io, int fd, const void *buf, size_t n,
                         uint64_t offset);

/**
 * Reads exactly n bytes at offset, retrying short reads and -EINTR.
 * Returns 0, a negated errno, or -EIO at an unexpected end of file.
 */
int brine_io__pread_all(const brine_io_methods *io, int fd, void *buf, size_t n, uint64_t offset);

#endif
