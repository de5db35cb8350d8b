/* The reader's constructor, shared with brine_restore_begin (restore.c). */
#ifndef BRINE_CORE_READER_H
#define BRINE_CORE_READER_H

#include <stdint.h>

#include "../common/error.h"

/**
 * Opens file as a reader (brine.h, brine_reader_open), checking the step
 * against name_step unless it is negative.  Failures go to err.
 */
int brine_reader__open(brine_reader **out, const char *file, int64_t name_step,
                       const brine_io_methods *io, const brine_allocator *a, int threads,
                       unsigned flags, brine_error *err);

/** r's error record, for the modules that build on the public reader calls (export.c). */
brine_error *brine_reader__err(brine_reader *r);

#endif
