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

/**
 * A synchronous save of s on the caller's thread: brine_save__write, or
 * the collective save (brine_coll__save) when b has a group.  Errors in b->err.
 */
int brine_save__sync(brine *b, const brine_save_state *s, int64_t step);

/**
 * The rank's part of a collective save: writes s as "rank-<r>.h5" in the
 * checkpoint's temporary directory tmpdir (temporary name, fsync, rename,
 * fsync of tmpdir; no leftover removal, no rotation), then reads it back
 * for the manifest's *size and CRC-32 *crc.  Same thread contract as
 * brine_save__write: a background thread may run it.  A failure's message
 * starts "saving step N to DIR (rank R): ".
 * @return 0, BRINE_ENOMEM, BRINE_EIO, BRINE_ENOSPC or BRINE_EHDF5.
 */
int brine_save__write_rank(const brine *b, const brine_save_state *s, int64_t step,
                           const char *tmpdir, uint64_t *size, uint32_t *crc, brine_error *err);

/* ---- The collective commit (coll.c, docs/mpi.md); every call collective over b->coll. ---- */

/**
 * A whole collective save of s: brine_coll__prepare, brine_save__write_rank,
 * brine_coll__finish.  0 on every rank or an error on every rank (b->err).
 * local_rc non-zero: this rank already failed (its message in b->err); it
 * writes nothing but takes part, so that every rank fails together.
 */
int brine_coll__save(brine *b, const brine_save_state *s, int64_t step, int local_rc);

/**
 * Rank 0 removes leftover temporary checkpoint directories of the prefix
 * and creates this save's, "<dir>/.<prefix>-<step 12 digits>.tmp-<nonce>";
 * its name (or failure) is broadcast, so every rank gets tmpdir (cap bytes)
 * or the same error in b->err.
 */
int brine_coll__prepare(brine *b, int64_t step, char *tmpdir, size_t cap);

/**
 * The agreement and commit: every rank passes the outcome of its own write
 * (local_rc, with its message in *err when it failed; its file's size and
 * crc when it succeeded).  When every rank succeeded, rank 0 writes the
 * manifest, renames tmpdir to "<dir>/<prefix>-<step>" (directory fsyncs),
 * and rotates; otherwise it removes tmpdir.  Every rank gets the outcome:
 * 0, or an error in err (a rank's own failure keeps its message; the others
 * name the failing ranks).
 */
int brine_coll__finish(brine *b, int64_t step, const char *tmpdir, int local_rc, uint64_t size,
                       uint32_t crc, brine_error *err);

/** Size and CRC-32 of the whole file at path, read through io.  0 or BRINE_EIO. */
int brine_coll__file_crc(const brine_io_methods *io, const char *path, uint64_t *size, uint32_t *crc,
                         brine_error *err);

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
