/*
 * The collective layer (coll.c, docs/mpi.md): what a context does when its
 * state is split over several processes that checkpoint together.  libbrine
 * itself stays free of MPI: a transport (lib/mpi/brine_mpi.c) fills a
 * brine_coll table and attaches it with brine_coll__attach; a plain context
 * has none (b->coll is NULL) and every function here is then unused.
 *
 * Every operation of the table is collective over the group: all members
 * call it, in the same order, from the thread that uses the context.
 */
#ifndef BRINE_CORE_COLL_H
#define BRINE_CORE_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/**
 * A group of processes (an MPI communicator).  Every function returns 0, or
 * -1 when the transport failed (the group is then unusable: brine reports
 * BRINE_EIO naming the operation).
 */
typedef struct brine_coll {
    void *ctx;  /**< passed to every function */
    int rank;   /**< this member, 0..size-1 */
    int size;   /**< members of the group */
    /** Every member contributes n bytes at send; recv (size * n bytes) gets them in rank order. */
    int (*allgather)(void *ctx, const void *send, size_t n, void *recv);
    /** n bytes at buf of member root to every member. */
    int (*bcast)(void *ctx, void *buf, size_t n, int root);
    /**
     * Starts a non-blocking element-wise MAX of n <= 4 ints (the policy's
     * agreement, brine_maybe_save); the result is taken by iallreduce_end.
     */
    int (*iallreduce_begin)(void *ctx, const int *in, int n);
    /** Completes the reduction iallreduce_begin started: out gets its n ints. */
    int (*iallreduce_end)(void *ctx, int *out);
    /** Frees ctx and the group (brine_close), completing a reduction in flight. */
    void (*close)(void *ctx);
} brine_coll;

/**
 * Attaches coll to b (the transport's brine_open_*): b takes ownership and
 * calls coll->close at brine_close, also when attaching fails.  Semi-private
 * but exported, because the transport is a library of its own.
 * @return 0, BRINE_EINVAL (b already has a group, or options that cannot
 *         work collectively) or BRINE_ENOMEM.
 */
BRINE_API int brine_coll__attach(brine *b, const brine_coll *coll);

/**
 * Records a failure of the transport's brine_open_* in brine_open_errmsg()
 * and returns code; exported like __attach.
 */
BRINE_API int brine_coll__open_failed(int code, const char *msg);

#endif
