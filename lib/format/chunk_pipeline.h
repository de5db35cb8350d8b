/*
 * The chunk pipeline: overlaps the serial HDF5 step (H5Dwrite_chunk or
 * H5Dread_chunk, always on the calling thread, because HDF5 calls never run
 * in parallel) with the parallel codec step (compress or decompress, in
 * OpenMP threads), through a ring of slots.
 *
 * Writing: chunks are encoded in parallel into slots and written in chunk
 * order as soon as each is ready.  Reading: chunks are read in order into
 * slots and decoded in parallel as soon as each is read.  The calling thread
 * does the serial step and, whenever it has to wait, codec work as well, so
 * one thread works too.  Memory is bounded by the number of slots, whatever
 * the number of chunks.
 */
#ifndef BRINE_FORMAT_CHUNK_PIPELINE_H
#define BRINE_FORMAT_CHUNK_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

/** One run of the pipeline over chunks 0..nchunks-1. */
typedef struct brine_pipe {
    uint64_t nchunks;
    size_t nslots;  /**< ring size: chunks in flight at most */
    int nthreads;   /**< OpenMP threads, the calling thread included; >= 1 */
    void *ctx;      /**< passed to both steps */
    /** The HDF5 step, on the calling thread only, in chunk order.  Returns 0 or a brine code. */
    int (*serial)(void *ctx, uint64_t chunk, size_t slot);
    /** The codec step, on any thread (thread = omp_get_thread_num()).  Returns 0 or a brine code. */
    int (*parallel)(void *ctx, uint64_t chunk, size_t slot, int thread);
    /** Set on failure: the chunk whose step failed first. */
    uint64_t failed_chunk;
} brine_pipe;

/**
 * Writing order: parallel(i) then serial(i); serial steps run in chunk order.
 * Returns 0, or the code of the first step that failed (then no further
 * serial step runs).
 */
int brine_pipe__write(brine_pipe *p);

/**
 * Reading order: serial(i) then parallel(i); serial steps run in chunk order.
 * Returns 0, or the code of the first step that failed.
 */
int brine_pipe__read(brine_pipe *p);

#endif
