/*
 * ISA-L igzip behind chunk_codec.c (built when BRINE_HAVE_ISAL): levels 0..3,
 * the fastest deflate and inflate on x86-64 and aarch64.
 *
 * ISA-L's structures take non-const buffers although it never writes its
 * input; the casts below only drop that const.
 */
#include "codec_backend.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>

/*
 * ISA-L's AVX2/AVX-512 kernels can return with the upper halves of the
 * vector registers dirty (no vzeroupper on their way out).  The calling
 * thread's next legacy-SSE code, such as a simulation's own loop compiled
 * for plain x86-64, then runs with a false dependency on those halves on
 * every instruction: heat2d's stencil ran about twice as slowly after a save
 * with ISA-L, for the rest of the run (docs/performance.md, "Asynchronous
 * saves").  Clearing them after each call costs a few cycles.  vzeroupper
 * needs AVX; without it ISA-L never dirtied anything.
 */
static void clean_vector_state(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx"))
        __asm__ __volatile__("vzeroupper");
#endif
}

/* The level buffer ISA-L's documentation suggests for each level (0 needs none). */
static const uint32_t level_buf_size[4] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                           ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

int brine_codec__isal_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                              size_t *out_len)
{
    int rc = 0;
    /*
     * Per call, on the heap: the stream is 80 KiB, too big for the stack of
     * an OpenMP thread, and allocating it with its level buffer costs
     * microseconds against a millisecond of compressing a chunk.
     */
    struct isal_zstream *const zs = malloc(sizeof *zs);
    uint8_t *const lbuf = level > 0 ? malloc(level_buf_size[level]) : NULL;
    int zrc;

    assert(level >= 0 && level <= 3 && len <= UINT32_MAX && cap <= UINT32_MAX);
    *out_len = 0;
    if (!zs || (level > 0 && !lbuf)) {
        rc = BRINE_ENOMEM;
        goto done;
    }
    /*
     * Stateless: one call over the whole chunk, which ISA-L requires to fit
     * in avail_out, exactly what brine wants (a chunk that does not fit in
     * cap bytes is stored uncompressed).
     */
    isal_deflate_stateless_init(zs);
    zs->level = (uint32_t)level;
    zs->level_buf = lbuf;
    zs->level_buf_size = level > 0 ? level_buf_size[level] : 0;
    zs->gzip_flag = IGZIP_ZLIB; /* RFC 1950 header and Adler-32, as HDF5's filter writes */
    zs->flush = NO_FLUSH;
    zs->end_of_stream = 1;
    zs->next_in = (uint8_t *)src;
    zs->avail_in = (uint32_t)len;
    zs->next_out = dst;
    zs->avail_out = (uint32_t)cap;
    zrc = isal_deflate_stateless(zs);
    clean_vector_state();
    if (zrc == COMP_OK) {
        *out_len = zs->total_out;
    } else {
        /* Anything but "did not fit" is a parameter this code never passes. */
        assert(zrc == STATELESS_OVERFLOW);
    }
done:
    free(lbuf);
    free(zs);
    return rc;
}

void brine_codec__isal_inflate(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                               brine_inflate_result *res)
{
    /* 85 KiB of state: on the heap, like the deflate stream above. */
    struct inflate_state *const st = malloc(sizeof *st);

    assert(src_len <= UINT32_MAX && dst_len <= UINT32_MAX);
    memset(res, 0, sizeof *res);
    if (!st) {
        res->status = BRINE_INFLATE_NOMEM;
        goto done;
    }
    isal_inflate_init(st);
    st->next_in = (uint8_t *)src;
    st->avail_in = (uint32_t)src_len;
    st->next_out = dst;
    st->avail_out = (uint32_t)dst_len;
    st->crc_flag = ISAL_ZLIB; /* parse the zlib header, verify the Adler-32 trailer */
    const int zrc = isal_inflate_stateless(st);
    clean_vector_state();
    switch (zrc) {
    case ISAL_DECOMP_OK:
        res->produced = st->total_out;
        res->unused_in = st->avail_in;
        res->status = st->total_out == dst_len ? BRINE_INFLATE_OK : BRINE_INFLATE_SHORT;
        break;
    case ISAL_END_INPUT:
        res->status = BRINE_INFLATE_TRUNCATED;
        break;
    case ISAL_OUT_OVERFLOW:
        res->status = BRINE_INFLATE_OVERFLOW;
        break;
    case ISAL_NEED_DICT:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "a preset dictionary is required";
        break;
    case ISAL_INVALID_BLOCK:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "ISA-L: invalid block";
        break;
    case ISAL_INVALID_SYMBOL:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "ISA-L: invalid symbol";
        break;
    case ISAL_INVALID_LOOKBACK:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "ISA-L: invalid distance";
        break;
    case ISAL_INCORRECT_CHECKSUM:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "ISA-L: incorrect Adler-32 checksum";
        break;
    default: /* ISAL_INVALID_WRAPPER, ISAL_UNSUPPORTED_METHOD */
        res->status = BRINE_INFLATE_BAD;
        res->detail = "ISA-L: invalid zlib header";
        break;
    }
done:
    free(st);
}
