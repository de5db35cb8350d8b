/*
 * brine over MPI (docs/mpi.md): checkpoints of a state split over the ranks
 * of a communicator, one file per rank, committed collectively.  Link with
 * brine_mpi (CMake target brine::brine_mpi), built when MPI was found.
 */
#ifndef BRINE_MPI_H
#define BRINE_MPI_H

#include <mpi.h>

#include "brine.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Opens a context whose checkpoints belong to every rank of comm: like
 * brine_open(), called by every rank of comm with the same dir and options.
 * comm is duplicated (MPI_Comm_dup), so brine's messages never mix with the
 * program's; brine_close() frees the duplicate and must be called by every
 * rank before MPI_Finalize.
 *
 * Every other call keeps its signature and becomes collective over comm,
 * called by every rank in the same order with the same step: brine_save,
 * brine_save_async, brine_wait, brine_restore, brine_restore_begin,
 * brine_maybe_save and brine_close.  Registration and attributes stay
 * local: each rank registers its own part of the state.
 *
 * A checkpoint is the directory <dir>/<prefix>-<step 12 digits>/ holding
 * rank-<r>.h5 per rank (each a normal checkpoint file) and a manifest that
 * rank 0 writes last (docs/format.md, section 7).  A save succeeds on every
 * rank or fails on every rank, and a failed one leaves nothing behind.
 * brine_restore() restores the newest checkpoint every rank can verify; one
 * saved by a different number of ranks is BRINE_EMISMATCH.
 *
 * Asynchronous saves: the background thread only writes this rank's file;
 * the agreement and commit run on the calling thread at the next call that
 * waits for the save (brine_wait, the next save, a restore, brine_close), so
 * MPI is never called from two threads and MPI_THREAD_FUNNELED is enough.
 * options.async_flags BRINE_ASYNC_NOWAIT is refused (BRINE_EINVAL): ranks
 * would disagree on whether a save is in flight.
 *
 * @param out  receives the context; NULL on failure.
 * @param dir  the checkpoint directory, shared by every rank (NULL: BRINE_DIR).
 * @param comm the communicator; MPI must be initialised.
 * @param opts options as for brine_open() (NULL: defaults).
 * @return 0 on every rank, or the same error on every rank: those of
 *         brine_open() (a rank that failed keeps its message in
 *         brine_open_errmsg(); the others name it), BRINE_EINVAL for
 *         BRINE_ASYNC_NOWAIT, BRINE_EIO when MPI fails.
 */
BRINE_API int brine_open_mpi(brine **out, const char *dir, MPI_Comm comm, const brine_options *opts);

#ifdef __cplusplus
}
#endif

#endif
