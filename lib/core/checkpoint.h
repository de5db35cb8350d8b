/*
 * One checkpoint file opened for restoring or reading: everything checked
 * that does not depend on the program's variables (docs/format.md, section 6,
 * steps 1-3).  Shared by brine_restore (restore.c) and the reader (reader.c).
 */
#ifndef BRINE_CORE_CHECKPOINT_H
#define BRINE_CORE_CHECKPOINT_H

#include <stdint.h>

#include "../common/error.h"
#include "../format/h5_layout.h"
#include "../format/pickle_decode.h"
#include "../io/h5_vfd.h"

typedef struct brine_ckpt {
    brine_vfd_status status;  /**< the driver's first failure; must not move while open */
    hid_t fapl;
    brine_h5_reader *r;
    const uint8_t *stream;    /**< owned by r */
    size_t len;
    brine_pickle_doc *doc;
    const brine_pvalue *root; /**< a dict */
    size_t nbuffers;
    int64_t step;
} brine_ckpt;

/**
 * Opens file and checks its header, HDF5 metadata, format version, step
 * (against name_step unless it is negative), stream CRC-32 and decoding, the
 * number of buffers, and that the state is a dict.  On failure nothing stays
 * open (brine_ckpt__close is still allowed); when the driver saw a system
 * call fail, that is the message.
 * @return 0, BRINE_ECORRUPT, BRINE_EVERSION, BRINE_EHDF5, BRINE_EIO, BRINE_ENOMEM.
 */
int brine_ckpt__open(brine_ckpt *c, const char *file, int64_t name_step,
                     const brine_io_methods *io, const brine_allocator *a, int threads,
                     brine_error *err);

/**
 * rc, or, when the driver recorded a failing system call, the error of that
 * call (it is the real cause of whatever HDF5 reported).
 */
int brine_ckpt__io_failure(const brine_ckpt *c, int rc, const char *file, brine_error *err);

/** Closes everything; c may be zeroed, partly opened or already closed. */
void brine_ckpt__close(brine_ckpt *c);

/** "/state/<name>" allocated through a, or NULL (out of memory). */
char *brine_ckpt__dataset_path(const brine_allocator *a, const char *name);

#endif
