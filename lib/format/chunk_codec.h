/*
 * Chunks of array datasets: geometry (which elements a chunk holds), gather
 * and scatter between a variable's memory and a chunk buffer, and the filter
 * pipeline shuffle -> deflate (zlib stream) -> fletcher32 of docs/format.md,
 * section 2.3, computed by brine itself so chunks can be compressed in
 * parallel and handed to HDF5 with H5Dwrite_chunk.  No HDF5 calls here:
 * everything in this module is safe to call from many threads at once.
 */
#ifndef BRINE_FORMAT_CHUNK_CODEC_H
#define BRINE_FORMAT_CHUNK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/** The chunk size brine aims at (docs/format.md, 2.3). */
#define BRINE_CHUNK_TARGET_BYTES ((size_t)1 << 20)

/** Filter pipeline positions and filter-mask bits (a set bit = filter skipped for that chunk). */
#define BRINE_FILTER_SHUFFLE 0x1u
#define BRINE_FILTER_DEFLATE 0x2u
#define BRINE_FILTER_FLETCHER32 0x4u

/**
 * Geometry of a chunked dataset.  dims are the *dataset* dimensions (an
 * F-order array's shape reversed), so memory is always row-major over dims.
 */
typedef struct brine_chunk_geom {
    int ndim;                       /**< 1..BRINE_MAX_NDIM */
    uint64_t dims[BRINE_MAX_NDIM];  /**< dataset extents, all > 0 */
    uint64_t chunk[BRINE_MAX_NDIM]; /**< chunk extents, 1 <= chunk[i] <= dims[i] */
    uint64_t grid[BRINE_MAX_NDIM];  /**< chunks along each dimension: ceil(dims/chunk) */
    uint64_t nchunks;               /**< product of grid */
    size_t esize;                   /**< bytes per element */
    size_t chunk_elems;             /**< product of chunk */
    size_t chunk_bytes;             /**< chunk_elems * esize */
} brine_chunk_geom;

/**
 * Fills g for dataset dims with the chunk shape of docs/format.md, 2.3
 * (about target_bytes, spanning the trailing dimensions).
 * Every dims[i] must be > 0.
 */
void brine_chunk__plan(brine_chunk_geom *g, int ndim, const uint64_t *dims, size_t esize,
                       size_t target_bytes);

/**
 * Fills g for dataset dims with a given chunk shape (as read from a file).
 * Returns 0, or -1 when the chunk shape is invalid (a zero, or larger than 4 GiB in bytes).
 */
int brine_chunk__geom(brine_chunk_geom *g, int ndim, const uint64_t *dims, const uint64_t *chunk,
                      size_t esize);

/** The element offset (dataset coordinates) of chunk number index, chunks numbered row-major. */
void brine_chunk__offset(const brine_chunk_geom *g, uint64_t index, uint64_t *offset);

/**
 * Copies the elements of the chunk at offset from mem (row-major over
 * g->dims) into chunk (g->chunk_bytes bytes, row-major over g->chunk),
 * zero-filling the part of an edge chunk that lies outside the dataset.
 */
void brine_chunk__gather(const brine_chunk_geom *g, const void *mem, const uint64_t *offset,
                         void *chunk);

/** The inverse of gather: copies the in-bounds elements of chunk into mem. */
void brine_chunk__scatter(const brine_chunk_geom *g, void *mem, const uint64_t *offset,
                          const void *chunk);

/** HDF5's fletcher32 of len bytes (docs/format.md, 2.3). */
uint32_t brine_fletcher32(const void *data, size_t len);

/** HDF5's byte shuffle of n elements of esize bytes: dst[j*n + i] = src[i*esize + j]. */
void brine_shuffle(void *dst, const void *src, size_t n, size_t esize);

/** The inverse of brine_shuffle. */
void brine_unshuffle(void *dst, const void *src, size_t n, size_t esize);

/** A resolved codec: what brine_chunk__encode runs (never BRINE_CODEC_DEFAULT). */
typedef struct brine_chunk_codec {
    brine_codec codec;
    int level;
} brine_chunk_codec;

/**
 * Resolves a requested codec and level (brine_options) to the codec that
 * runs: BRINE_CODEC_DEFAULT becomes the fastest built-in codec supporting
 * level (ISA-L for 0..3, else libdeflate, else zlib).
 * @return 0, or BRINE_EINVAL with why: codec not built in, level out of its range.
 */
int brine_chunk__resolve(brine_chunk_codec *out, brine_codec requested, int level, char *why,
                         size_t whylen);

/**
 * The filter pipeline (BRINE_FILTER_* bits) arrays are written with:
 * shuffle | deflate | fletcher32, or fletcher32 alone for BRINE_CODEC_NONE.
 */
unsigned brine_chunk__pipeline(const brine_chunk_codec *c);

/**
 * Bytes that must follow raw and scratch for brine_chunk__encode, holding a
 * fixed content (zeros): some codecs read past the end of their input (ISA-L
 * does), and output must not depend on what they find there.
 */
#define BRINE_CHUNK_SLACK 256

/** Bytes the stored form of a chunk of raw_len bytes may need at most. */
size_t brine_chunk__encode_bound(size_t raw_len);

/**
 * Encodes one chunk for the pipeline of c (brine_chunk__pipeline): shuffle +
 * deflate with c's codec and level + fletcher32, or fletcher32 alone.
 *
 * raw: raw_len bytes of elements of esize bytes.  scratch: raw_len bytes of
 * scratch memory.  Both must be followed by BRINE_CHUNK_SLACK bytes of zeros
 * for the output to be deterministic.  out: at least
 * brine_chunk__encode_bound(raw_len) bytes.  When deflate does not shrink the chunk, the shuffled bytes are stored
 * as they are and BRINE_FILTER_DEFLATE is set in *filter_mask.
 * *filter_mask holds pipeline positions as HDF5 numbers them, which for both
 * pipelines equal the BRINE_FILTER_* bits of shuffle | deflate | fletcher32
 * only when all three are present: for BRINE_CODEC_NONE it is always 0.
 * @return 0, or BRINE_ENOMEM (the codec could not allocate).
 */
int brine_chunk__encode(const void *raw, size_t raw_len, size_t esize, const brine_chunk_codec *c,
                        void *scratch, void *out, size_t *out_len, uint32_t *filter_mask);

/**
 * Decodes one stored chunk with the fastest inflater built in (libdeflate,
 * then ISA-L, then zlib, as measured on AVX-512 hardware: all read any zlib stream).  pipeline: the BRINE_FILTER_* bits of the filters
 * the dataset's pipeline has (in the standard order shuffle, deflate,
 * fletcher32); filter_mask: the chunk's mask of skipped filters.
 * out receives exactly raw_len bytes; scratch holds raw_len bytes.
 * @return 0, or BRINE_ECORRUPT with a reason in why[0..whylen) (checksum
 * mismatch, a bad deflate stream, a size other than raw_len), or BRINE_ENOMEM.
 */
int brine_chunk__decode(const void *stored, size_t stored_len, unsigned pipeline,
                        uint32_t filter_mask, size_t esize, void *scratch, void *out,
                        size_t raw_len, char *why, size_t whylen);

/**
 * Checks only a stored chunk's fletcher32 (the verification pass of restore).
 * @return 0 or BRINE_ECORRUPT (with why).
 */
int brine_chunk__verify(const void *stored, size_t stored_len, unsigned pipeline,
                        uint32_t filter_mask, char *why, size_t whylen);

#endif
