#include "chunk_pipeline.h"

#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "brine.h"

/*
 * Shared state of one run.  Counters only grow.  Slot s holds chunk i when
 * i % nslots == s; a tag of i + 1 in a slot says chunk i's step is done.
 */
typedef struct run {
    brine_pipe *p;
    _Atomic uint64_t claimed;  /* next chunk a thread may claim for the parallel step */
    _Atomic uint64_t serial_done; /* chunks whose serial step is done (in order) */
    _Atomic uint64_t parallel_count; /* chunks whose parallel step is done (any order) */
    _Atomic int failed;
    int rc;
    _Atomic uint64_t *tags;    /* per slot: 1 + the last chunk whose parallel step is done in it */
} run;

static void fail(run *r, int rc, uint64_t chunk)
{
#pragma omp critical(brine_pipe_fail)
    {
        if (!atomic_load(&r->failed)) {
            r->rc = rc;
            r->p->failed_chunk = chunk;
            atomic_store(&r->failed, 1);
        }
    }
}

/* Runs the parallel step of chunk i in its slot and publishes the result. */
static void do_parallel(run *r, uint64_t i, int me)
{
    const size_t slot = (size_t)(i % r->p->nslots);
    const int rc = r->p->parallel(r->p->ctx, i, slot, me);
    if (rc) {
        fail(r, rc, i);
        return;
    }
    atomic_store_explicit(&r->tags[slot], i + 1, memory_order_release);
    atomic_fetch_add(&r->parallel_count, 1);
}

static int start(run *r, brine_pipe *p)
{
    r->p = p;
    atomic_init(&r->claimed, 0);
    atomic_init(&r->serial_done, 0);
    atomic_init(&r->parallel_count, 0);
    atomic_init(&r->failed, 0);
    r->rc = 0;
    /* A handful of words: not worth routing through the allocation hook's failure paths. */
    r->tags = calloc(p->nslots, sizeof *r->tags);
    return r->tags ? 0 : BRINE_ENOMEM;
}

int brine_pipe__write(brine_pipe *p)
{
    run r;
    const uint64_t n = p->nchunks;
    const uint64_t S = p->nslots;
    if (n == 0)
        return 0;
    if (start(&r, p))
        return BRINE_ENOMEM;

#pragma omp parallel num_threads(p->nthreads)
    {
        const int me = omp_get_thread_num();
        if (me == 0) {
            /* The calling thread: write each chunk as soon as it is encoded, in
             * order; while the next one is not ready, encode one whose slot is free. */
            while (!atomic_load(&r.failed)) {
                const uint64_t w = atomic_load(&r.serial_done);
                if (w == n)
                    break;
                const size_t slot = (size_t)(w % S);
                if (atomic_load_explicit(&r.tags[slot], memory_order_acquire) == w + 1) {
                    const int rc = p->serial(p->ctx, w, slot);
                    if (rc) {
                        fail(&r, rc, w);
                        break;
                    }
                    atomic_store_explicit(&r.serial_done, w + 1, memory_order_release);
                    continue;
                }
                uint64_t i = atomic_load(&r.claimed);
                if (i < n && i < w + S &&
                    atomic_compare_exchange_strong(&r.claimed, &i, i + 1)) {
                    do_parallel(&r, i, me);
                    continue;
                }
                sched_yield();
            }
        } else {
            for (;;) {
                const uint64_t i = atomic_fetch_add(&r.claimed, 1);
                if (i >= n)
                    break;
                /* Chunk i's slot is free once chunk i - S has been written. */
                while (!atomic_load(&r.failed) &&
                       i >= atomic_load_explicit(&r.serial_done, memory_order_acquire) + S)
                    sched_yield();
                if (atomic_load(&r.failed))
                    break;
                do_parallel(&r, i, me);
            }
        }
    }
    free(r.tags);
    return r.rc;
}

int brine_pipe__read(brine_pipe *p)
{
    run r;
    const uint64_t n = p->nchunks;
    const uint64_t S = p->nslots;
    if (n == 0)
        return 0;
    if (start(&r, p))
        return BRINE_ENOMEM;

#pragma omp parallel num_threads(p->nthreads)
    {
        const int me = omp_get_thread_num();
        while (!atomic_load(&r.failed) && atomic_load(&r.parallel_count) < n) {
            const uint64_t nread = atomic_load_explicit(&r.serial_done, memory_order_acquire);
            if (me == 0 && nread < n) {
                /* The calling thread reads the next chunk as soon as its slot is
                 * free: when chunk nread - S has been decoded. */
                const size_t slot = (size_t)(nread % S);
                if (nread < S ||
                    atomic_load_explicit(&r.tags[slot], memory_order_acquire) == nread - S + 1) {
                    const int rc = p->serial(p->ctx, nread, slot);
                    if (rc) {
                        fail(&r, rc, nread);
                        break;
                    }
                    atomic_store_explicit(&r.serial_done, nread + 1, memory_order_release);
                    continue;
                }
            }
            uint64_t d = atomic_load(&r.claimed);
            if (d < nread && atomic_compare_exchange_strong(&r.claimed, &d, d + 1)) {
                do_parallel(&r, d, me);
                continue;
            }
            if (d >= n)
                break;
            sched_yield();
        }
    }
    free(r.tags);
    return r.rc;
}
