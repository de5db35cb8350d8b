/*
 * The deflate implementations behind chunk_codec.c: zlib (always), libdeflate
 * and ISA-L igzip (when found at configure time, BRINE_HAVE_LIBDEFLATE and
 * BRINE_HAVE_ISAL).  Each one writes and reads zlib streams (RFC 1950), the
 * format of HDF5's deflate filter.  chunk_codec.c owns the shuffle, the
 * fletcher32 and the checks common to every inflater (the zlib header, sizes,
 * trailing bytes); a backend only runs its library.
 *
 * Every function is reentrant: state is allocated per call (measured: under
 * 10 us per call against 1 to 70 ms of compressing a 1 MiB chunk), so there
 * is no per-thread cache to leak when OpenMP or user threads exit.
 */
#ifndef BRINE_FORMAT_CODEC_BACKEND_H
#define BRINE_FORMAT_CODEC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/*
 * What an inflater reports; chunk_codec.c turns it into BRINE_ECORRUPT with
 * one wording whatever the backend, so messages do not depend on the build.
 */
typedef enum brine_inflate_status {
    BRINE_INFLATE_OK,        /**< a complete stream that exactly filled dst */
    BRINE_INFLATE_SHORT,     /**< a complete stream that inflated to fewer bytes (*produced) */
    BRINE_INFLATE_OVERFLOW,  /**< the stream inflates to more than dst_len bytes */
    BRINE_INFLATE_TRUNCATED, /**< input ended before the stream did */
    BRINE_INFLATE_BAD,       /**< invalid deflate data, wrapper or Adler-32 (detail in *detail) */
    BRINE_INFLATE_NOMEM      /**< the inflater could not allocate its state */
} brine_inflate_status;

/** Result of one inflate: status, bytes written, input bytes left after the stream. */
typedef struct brine_inflate_result {
    brine_inflate_status status;
    size_t produced;     /**< bytes written to dst (meaningful for OK and SHORT) */
    size_t unused_in;    /**< input bytes after the end of the stream (OK and SHORT) */
    const char *detail;  /**< static text for BAD, or NULL */
} brine_inflate_result;

/*
 * Deflate functions: compress src[0..len) into a zlib stream of at most cap
 * bytes at dst.  *out_len = the stream's length, or 0 when it does not fit
 * in cap bytes (the caller then stores the chunk uncompressed).  level is in
 * the codec's range (brine_chunk__resolve checked it).
 * Return 0 or BRINE_ENOMEM.
 *
 * Inflate functions: inflate the zlib stream src[0..src_len) into at most
 * dst_len bytes at dst, never writing past dst + dst_len, and fill *res.
 */

int brine_codec__zlib_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst,
                              size_t cap, size_t *out_len);
void brine_codec__zlib_inflate(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                               brine_inflate_result *res);

#ifdef BRINE_HAVE_LIBDEFLATE
int brine_codec__libdeflate_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst,
                                    size_t cap, size_t *out_len);
void brine_codec__libdeflate_inflate(const uint8_t *src, size_t src_len, uint8_t *dst,
                                     size_t dst_len, brine_inflate_result *res);
#endif

#ifdef BRINE_HAVE_ISAL
int brine_codec__isal_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                              size_t *out_len);
void brine_codec__isal_inflate(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                               brine_inflate_result *res);
#endif

/**
 * Inflates a zlib stream with a chosen inflater (BRINE_CODEC_ZLIB,
 * _LIBDEFLATE or _ISAL) into exactly dst_len bytes, with every check
 * brine_chunk__decode makes.  brine_chunk__decode uses the fastest one built
 * in; this entry point lets tests hold each inflater to the same contract.
 * @return 0; BRINE_ECORRUPT (with why); BRINE_ENOMEM; BRINE_EINVAL when that
 *         inflater is not built in.
 */
int brine_chunk__inflate_with(brine_codec inflater, const void *src, size_t src_len, void *dst,
                              size_t dst_len, char *why, size_t whylen);

/** The inflater brine_chunk__decode uses, the fastest built in: libdeflate, ISA-L, zlib. */
brine_codec brine_chunk__inflater(void);

#endif
