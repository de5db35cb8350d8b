/*
 * Checkpoint directories: which files are committed checkpoints, which are
 * temporary leftovers, and rotation (docs/format.md, section 1).
 */
#ifndef BRINE_IO_DIR_SCAN_H
#define BRINE_IO_DIR_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define BRINE_MAX_STEP INT64_C(999999999999)

/** One committed checkpoint found in a directory. */
typedef struct brine_ckpt_entry {
    int64_t step;
} brine_ckpt_entry;

/**
 * Whether name is a committed checkpoint of prefix ("<prefix>-<12 digits>.h5")
 * and, when it is, its step.  Returns 1 or 0.
 */
int brine_scan__parse_name(const char *name, const char *prefix, int64_t *step);

/**
 * Whether name is a temporary file of prefix (".<prefix>-<12 digits>.h5.tmp-<anything>").
 * Returns 1 or 0.
 */
int brine_scan__is_temp(const char *name, const char *prefix);

/**
 * Lists the committed checkpoints of prefix in dir, ascending by step.
 * *out is allocated through a (free with brine__free); *n may be 0 (then *out is NULL).
 * @return 0; BRINE_ENOMEM; BRINE_ENOTFOUND (the directory does not exist);
 *         BRINE_EIO (the directory cannot be read; the message names it).
 */
int brine_scan__list(brine_ckpt_entry **out, size_t *n, const brine_io_methods *io,
                     const brine_allocator *a, const char *dir, const char *prefix,
                     brine_error *err);

/**
 * Removes the temporary files of prefix left in dir by killed writers.
 * Best effort: returns the number removed, or a negative brine code when the
 * directory cannot be listed.
 */
int brine_scan__remove_temps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                             const char *prefix, brine_error *err);

/**
 * Rotation (docs/format.md, section 1): deletes the committed checkpoints of
 * prefix in dir but the keep_last newest by step, the one of step keep_step
 * (the one just published, which may be older than stale ones of an earlier
 * run) and, when keep_every > 0, those whose step is a multiple of keep_every
 * (step 0 included).  Kept multiples do not count toward keep_last.
 * keep_last <= 0 keeps all.  Best effort: a file that cannot be deleted is
 * skipped (the next rotation retries it).  Then fsyncs the directory when
 * anything was deleted.
 * @return the number of files deleted, or a negative brine code when the
 *         directory cannot be listed.
 */
int brine_scan__rotate_every(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                             const char *prefix, int keep_last, int keep_every, int64_t keep_step,
                             brine_error *err);

/** brine_scan__rotate_every() with keep_every 0: only keep_last and keep_step count. */
int brine_scan__rotate(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int keep_last, int64_t keep_step, brine_error *err);

#endif
