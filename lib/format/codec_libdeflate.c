/*
 * libdeflate behind chunk_codec.c (built when BRINE_HAVE_LIBDEFLATE): whole-
 * buffer compression, levels 0..12, and the fastest inflater after ISA-L.
 */
#include "codec_backend.h"

#include <assert.h>
#include <string.h>

#include <libdeflate.h>

int brine_codec__libdeflate_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst,
                                    size_t cap, size_t *out_len)
{
    int rc = 0;
    /*
     * A compressor per call, not per thread: allocating one costs a few
     * microseconds against milliseconds of compressing a chunk (libdeflate
     * resets its match finder on every call anyway), and nothing outlives
     * the call, so no thread's exit can leak one.
     */
    struct libdeflate_compressor *const c = libdeflate_alloc_compressor(level);

    assert(level >= 0 && level <= 12);
    *out_len = 0;
    if (!c) {
        rc = BRINE_ENOMEM; /* the level is valid (resolve checked it): out of memory */
        goto done;
    }
    /* 0 when the stream does not fit in cap bytes; libdeflate never writes past cap. */
    *out_len = libdeflate_zlib_compress(c, src, len, dst, cap);
done:
    if (c)
        libdeflate_free_compressor(c);
    return rc;
}

void brine_codec__libdeflate_inflate(const uint8_t *src, size_t src_len, uint8_t *dst,
                                     size_t dst_len, brine_inflate_result *res)
{
    struct libdeflate_decompressor *const d = libdeflate_alloc_decompressor();
    size_t in_used = 0, out_got = 0;

    memset(res, 0, sizeof *res);
    if (!d) {
        res->status = BRINE_INFLATE_NOMEM;
        goto done;
    }
    /* With actual_out given, a stream shorter than dst_len succeeds and says how long it was. */
    switch (libdeflate_zlib_decompress_ex(d, src, src_len, dst, dst_len, &in_used, &out_got)) {
    case LIBDEFLATE_SUCCESS:
        res->produced = out_got;
        res->unused_in = src_len - in_used;
        res->status = out_got == dst_len ? BRINE_INFLATE_OK : BRINE_INFLATE_SHORT;
        break;
    case LIBDEFLATE_INSUFFICIENT_SPACE:
        res->status = BRINE_INFLATE_OVERFLOW;
        break;
    default:
        /* LIBDEFLATE_BAD_DATA: libdeflate does not tell a truncated stream from a damaged one. */
        res->status = BRINE_INFLATE_BAD;
        res->detail = "libdeflate: invalid or truncated data";
        break;
    }
done:
    if (d)
        libdeflate_free_decompressor(d);
}
