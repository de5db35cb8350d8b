/*
 * The save pipeline that brine_save() and asynchronous saves share (save.c):
 * checking the registered state, then encoding, writing, publishing and
 * rotating one checkpoint of a variable table and a set of user attributes.
 */
#ifndef BRINE_CORE_SAVE_H
#define BRINE_CORE_SAVE_H

#include <stddef.h>
#include <stdint.h>

#include "../format/pickle_encode.h"
#include "core.h"

/** What one checkpoint holds: a variable table and the user metadata, as they are to be written. */
typedef struct brine_save_state {
    const brine_var *vars;       /**< in registration order; data, shape, dims, order, nbytes current */
    size_t nvars;
    const brine_attr_val *attrs; /**< user metadata, in the order first set */
    size_t nattrs;
    int threads;                 /**< compression threads; 0 = OpenMP's default on the calling thread */
} brine_save_state;

/**
 * The checks every save makes before it starts, on b's registered state:
 * the step's range, every string NUL-terminated within its capacity and
 * valid UTF-8, resizable variables refreshed (brine_registry__refresh).
 * fn names the public function in messages.
 * @return 0 or BRINE_EINVAL, with the message in b->err.
 */
int brine_save__check(brine *b, int64_t step, const char *fn);

/**
 * Records that a save of b starts now, for the every_seconds policy
 * (b->last_save_time); reads the clock only when that policy is on.
 */
void brine_save__started(brine *b);

/**
 * Writes one checkpoint of s for step: removes temporary leftovers, encodes
 * the pickle stream, writes the file under its temporary name, publishes it
 * (fsync, rename, directory fsync), rotates.  Every HDF5 call is made on the
 * calling thread, with HDF5's error printing silenced there; chunks are
 * compressed in OpenMP threads.
 *
 * Of b it reads only what brine_open() set and nothing changes afterwards
 * (dir, prefix, io, alloc, codec, opts.keep_last and opts.keep_every), and
 * it writes nothing of b: a background thread may run it while the caller
 * uses b.  A failure is recorded in err, whose message then starts
 * "saving step N to DIR: ".
 * @return 0, BRINE_ENOMEM, BRINE_EIO, BRINE_ENOSPC or BRINE_EHDF5.
 */
int brine_save__write(const brine *b, const brine_save_state *s, int64_t step, brine_error *err);

/** Encodes the scalar of dtype at p (aligned for its type) as Python's value (bool, int, float, complex). */
void brine_save__encode_scalar(brine_pickle_enc *e, brine_dtype dtype, const void *p);

/*
 * Emits the dict of the group whose names start with prefix (prefix_len
 * bytes, ending with '/' unless empty): each member once, in order of first
 * registration.  Arrays are appended to order[*narrays] in the order their
 * NEXT_BUFFER opcodes are emitted; with order NULL they are written in-band
 * instead (brine_dumps), their bytes copied into the stream.
 */
void brine_save__encode_group(const brine_var *vars, size_t nvars, brine_pickle_enc *e,
                              const char *prefix, size_t prefix_len, size_t *order, size_t *narrays);

#endif
