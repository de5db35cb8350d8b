#include "chunk_codec.h"
#include "codec_backend.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* compressBound: the bound readers size chunk buffers with, whatever codec wrote them. */
#include <zlib.h>

/*
 * HDF5 stores a chunk's size in 32 bits and refuses chunks of 4 GiB or more,
 * so no chunk of a valid file is larger; it also keeps every zlib length
 * within a uInt.
 */
#define CHUNK_MAX_BYTES ((uint64_t)UINT32_MAX)

/* ---- geometry ---------------------------------------------------------- */

void brine_chunk__plan(brine_chunk_geom *g, int ndim, const uint64_t *dims, size_t esize,
                       size_t target_bytes)
{
    uint64_t chunk[BRINE_MAX_NDIM];
    uint64_t bytes = esize; /* bytes of the chunk's trailing dimensions chosen so far */
    int i = ndim - 1;
    int rc;

    assert(ndim >= 1 && ndim <= BRINE_MAX_NDIM && esize > 0);
    assert(target_bytes > 0 && target_bytes <= CHUNK_MAX_BYTES);
    /* Whole trailing dimensions while they fit: dims[i] * bytes <= target, without overflow. */
    for (; i >= 0; i--) {
        assert(dims[i] > 0);
        if (dims[i] > target_bytes / bytes)
            break;
        chunk[i] = dims[i];
        bytes *= dims[i];
    }
    if (i >= 0) {
        /* bytes may exceed the target only when one element does (esize > target). */
        const uint64_t take = target_bytes / bytes;
        chunk[i] = take > 0 ? take : 1;
        while (--i >= 0)
            chunk[i] = 1;
    }
    rc = brine_chunk__geom(g, ndim, dims, chunk, esize);
    assert(rc == 0);
    (void)rc;
}

int brine_chunk__geom(brine_chunk_geom *g, int ndim, const uint64_t *dims, const uint64_t *chunk,
                      size_t esize)
{
    uint64_t bytes = esize;
    uint64_t nchunks = 1;

    /* The shape comes from a file: check everything rather than assert. */
    if (ndim < 1 || ndim > BRINE_MAX_NDIM || esize == 0 || esize > CHUNK_MAX_BYTES)
        return -1;
    memset(g, 0, sizeof *g);
    for (int i = 0; i < ndim; i++) {
        if (chunk[i] == 0 || chunk[i] > CHUNK_MAX_BYTES / bytes)
            return -1;
        bytes *= chunk[i];
        /*
         * chunk[i] > dims[i] is accepted: HDF5 allows it for extendible
         * datasets, and gather/scatter clip every chunk to the dataset.
         */
        const uint64_t grid = dims[i] / chunk[i] + (dims[i] % chunk[i] != 0);
        if (grid > 0 && nchunks > UINT64_MAX / grid)
            return -1;
        nchunks *= grid;
        g->dims[i] = dims[i];
        g->chunk[i] = chunk[i];
        g->grid[i] = grid;
    }
    g->ndim = ndim;
    g->nchunks = nchunks;
    g->esize = esize;
    g->chunk_bytes = (size_t)bytes;
    g->chunk_elems = (size_t)(bytes / esize);
    return 0;
}

void brine_chunk__offset(const brine_chunk_geom *g, uint64_t index, uint64_t *offset)
{
    assert(index < g->nchunks);
    for (int i = g->ndim - 1; i >= 0; i--) {
        offset[i] = (index % g->grid[i]) * g->chunk[i];
        index /= g->grid[i];
    }
}

/*
 * How one chunk maps onto memory: the chunk is copied as runs of `run`
 * bytes, contiguous both in memory and in the chunk buffer, at the positions
 * of an odometer over the first `outer` dimensions.  Trailing dimensions the
 * chunk spans whole are merged into the run, so the usual ~1 MiB chunk that
 * spans its trailing dimensions is one or a few large memcpy calls.
 */
typedef struct chunk_walk {
    int outer;                      /* dimensions iterated outside the run */
    uint64_t ext[BRINE_MAX_NDIM];   /* extents of the in-bounds part of the chunk */
    size_t mstride[BRINE_MAX_NDIM]; /* bytes between neighbours along a dimension, memory */
    size_t cstride[BRINE_MAX_NDIM]; /* the same in the chunk buffer */
    size_t mbase;                   /* memory byte offset of the chunk's first element */
    size_t run;                     /* bytes per contiguous run */
    int clipped;                    /* an edge chunk: part of it lies outside the dataset */
} chunk_walk;

static void walk_init(chunk_walk *w, const brine_chunk_geom *g, const uint64_t *offset)
{
    const int n = g->ndim;
    int d;

    w->clipped = 0;
    w->mbase = 0;
    for (d = n - 1; d >= 0; d--) {
        assert(offset[d] < g->dims[d]);
        const uint64_t left = g->dims[d] - offset[d];
        w->ext[d] = left < g->chunk[d] ? left : g->chunk[d];
        w->clipped |= w->ext[d] < g->chunk[d];
        w->mstride[d] = d == n - 1 ? g->esize : w->mstride[d + 1] * (size_t)g->dims[d + 1];
        w->cstride[d] = d == n - 1 ? g->esize : w->cstride[d + 1] * (size_t)g->chunk[d + 1];
        w->mbase += (size_t)offset[d] * w->mstride[d];
    }
    d = n - 1;
    w->run = (size_t)w->ext[d] * g->esize;
    /* Dimension d-1 joins the run when d (and all after it) is whole in the chunk. */
    while (d > 0 && g->chunk[d] == g->dims[d]) {
        d--;
        w->run *= (size_t)w->ext[d];
    }
    w->outer = d;
}

/* Moves the odometer idx over the outer dimensions one step; 0 once it wraps around. */
static int walk_next(const chunk_walk *w, uint64_t *idx, size_t *moff, size_t *coff)
{
    for (int d = w->outer - 1; d >= 0; d--) {
        if (++idx[d] < w->ext[d]) {
            *moff += w->mstride[d];
            *coff += w->cstride[d];
            return 1;
        }
        *moff -= (size_t)(w->ext[d] - 1) * w->mstride[d];
        *coff -= (size_t)(w->ext[d] - 1) * w->cstride[d];
        idx[d] = 0;
    }
    return 0;
}

void brine_chunk__gather(const brine_chunk_geom *g, const void *mem, const uint64_t *offset,
                         void *chunk)
{
    const uint8_t *m = mem;
    uint8_t *c = chunk;
    uint64_t idx[BRINE_MAX_NDIM] = {0};
    chunk_walk w;
    size_t moff, coff = 0;

    walk_init(&w, g, offset);
    /* Padding must be zero (format.md 2.3); one memset is simpler than zeroing each gap. */
    if (w.clipped)
        memset(c, 0, g->chunk_bytes);
    moff = w.mbase;
    do
        memcpy(c + coff, m + moff, w.run);
    while (walk_next(&w, idx, &moff, &coff));
}

void brine_chunk__scatter(const brine_chunk_geom *g, void *mem, const uint64_t *offset,
                          const void *chunk)
{
    uint8_t *m = mem;
    const uint8_t *c = chunk;
    uint64_t idx[BRINE_MAX_NDIM] = {0};
    chunk_walk w;
    size_t moff, coff = 0;

    walk_init(&w, g, offset);
    moff = w.mbase;
    do
        memcpy(m + moff, c + coff, w.run);
    while (walk_next(&w, idx, &moff, &coff));
}

/* ---- fletcher32 -------------------------------------------------------- */

/* HDF5 folds both sums after every 360 words; the result depends on where the folds are. */
#define FLETCHER_BLOCK 360
/* The largest multiple of 32 within a block: a loop of that fixed trip count vectorises at -O2. */
#define FLETCHER_VEC 352

static uint32_t fold(uint32_t s)
{
    return (s & 0xffff) + (s >> 16);
}

uint32_t brine_fletcher32(const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t words = len / 2;
    uint32_t sum1 = 0, sum2 = 0;

    /*
     * Within a block HDF5 computes sum2 += sum1 word by word.  The same
     * integer is sum2 + 360*sum1 + sum((360-k) * w[k]), whose terms have no
     * serial dependence, so the compiler vectorises them.  All arithmetic is
     * modulo 2^32 exactly as HDF5's uint32_t sums are, so the result is
     * bit-identical whether or not a sum wraps.
     */
    while (words >= FLETCHER_BLOCK) {
        uint32_t a = 0, b = 0;
        for (uint32_t k = 0; k < FLETCHER_VEC; k++) {
            const uint32_t w = (uint32_t)p[2 * k] << 8 | p[2 * k + 1];
            a += w;
            b += (FLETCHER_BLOCK - k) * w;
        }
        for (uint32_t k = FLETCHER_VEC; k < FLETCHER_BLOCK; k++) {
            const uint32_t w = (uint32_t)p[2 * k] << 8 | p[2 * k + 1];
            a += w;
            b += (FLETCHER_BLOCK - k) * w;
        }
        sum2 += FLETCHER_BLOCK * sum1 + b;
        sum1 += a;
        sum1 = fold(sum1);
        sum2 = fold(sum2);
        p += 2 * FLETCHER_BLOCK;
        words -= FLETCHER_BLOCK;
    }
    if (words > 0) {
        for (size_t k = 0; k < words; k++) {
            sum1 += (uint32_t)p[2 * k] << 8 | p[2 * k + 1];
            sum2 += sum1;
        }
        sum1 = fold(sum1);
        sum2 = fold(sum2);
        p += 2 * words;
    }
    if (len % 2) {
        /* HDF5 adds the odd byte as the high half of a word and, as for any word, sum1 to sum2. */
        sum1 += (uint32_t)p[0] << 8;
        sum2 += sum1;
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    sum1 = fold(sum1);
    sum2 = fold(sum2);
    return sum2 << 16 | sum1;
}

/* ---- shuffle ----------------------------------------------------------- */

/*
 * The shuffle is a transpose of an n x esize byte matrix.  Written naively it
 * either writes esize streams n bytes apart (a power-of-two stride that
 * thrashes the cache: 16-byte elements ran at ~0.4 GB/s) or fails to
 * vectorise.  So elements go BLOCK at a time through a small local tile:
 * the tile loop has a fixed trip count, the lanes are spelt out and the tile
 * cannot alias the arrays, which is what GCC's -O2 (very cheap) cost model
 * needs to vectorise it; the tile rows then move with memcpy.
 */
#define BLOCK 64

#define LANES2(M) M(0) M(1)
#define LANES4(M) LANES2(M) M(2) M(3)
#define LANES8(M) LANES4(M) M(4) M(5) M(6) M(7)
#define LANES16(M) LANES8(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define TILE_IN(j) t[j][k] = s[ES * k + j];
#define TILE_OUT(j) d[ES * k + j] = t[j][k];

#define DEFINE_SHUFFLE(E)                                                                          \
    static void shuffle##E(uint8_t *restrict dst, const uint8_t *restrict src, size_t n)         \
    {                                                                                              \
        enum { ES = E };                                                                           \
        uint8_t t[E][BLOCK];                                                                       \
        size_t i = 0;                                                                              \
        for (; i + BLOCK <= n; i += BLOCK) {                                                       \
            const uint8_t *s = src + i * ES;                                                       \
            for (size_t k = 0; k < BLOCK; k++) {                                                   \
                LANES##E(TILE_IN)                                                                  \
            }                                                                                      \
            for (size_t j = 0; j < ES; j++)                                                        \
                memcpy(dst + j * n + i, t[j], BLOCK);                                              \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            for (size_t j = 0; j < ES; j++)                                                        \
                dst[j * n + i] = src[i * ES + j];                                                  \
    }                                                                                              \
    static void unshuffle##E(uint8_t *restrict dst, const uint8_t *restrict src, size_t n)       \
    {                                                                                              \
        enum { ES = E };                                                                           \
        uint8_t t[E][BLOCK];                                                                       \
        size_t i = 0;                                                                              \
        for (; i + BLOCK <= n; i += BLOCK) {                                                       \
            uint8_t *d = dst + i * ES;                                                             \
            for (size_t j = 0; j < ES; j++)                                                        \
                memcpy(t[j], src + j * n + i, BLOCK);                                              \
            for (size_t k = 0; k < BLOCK; k++) {                                                   \
                LANES##E(TILE_OUT)                                                                 \
            }                                                                                      \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            for (size_t j = 0; j < ES; j++)                                                        \
                dst[i * ES + j] = src[j * n + i];                                                  \
    }

DEFINE_SHUFFLE(2)
DEFINE_SHUFFLE(4)
DEFINE_SHUFFLE(8)
DEFINE_SHUFFLE(16)

void brine_shuffle(void *dst, const void *src, size_t n, size_t esize)
{
    uint8_t *restrict d = dst;
    const uint8_t *restrict s = src;

    switch (esize) {
    case 1:
        memcpy(d, s, n);
        break;
    case 2:
        shuffle2(d, s, n);
        break;
    case 4:
        shuffle4(d, s, n);
        break;
    case 8:
        shuffle8(d, s, n);
        break;
    case 16:
        shuffle16(d, s, n);
        break;
    default:
        for (size_t j = 0; j < esize; j++)
            for (size_t i = 0; i < n; i++)
                d[j * n + i] = s[i * esize + j];
        break;
    }
}

void brine_unshuffle(void *dst, const void *src, size_t n, size_t esize)
{
    uint8_t *restrict d = dst;
    const uint8_t *restrict s = src;

    switch (esize) {
    case 1:
        memcpy(d, s, n);
        break;
    case 2:
        unshuffle2(d, s, n);
        break;
    case 4:
        unshuffle4(d, s, n);
        break;
    case 8:
        unshuffle8(d, s, n);
        break;
    case 16:
        unshuffle16(d, s, n);
        break;
    default:
        for (size_t j = 0; j < esize; j++)
            for (size_t i = 0; i < n; i++)
                d[i * esize + j] = s[j * n + i];
        break;
    }
}

/* ---- the pipeline ------------------------------------------------------ */

size_t brine_chunk__encode_bound(size_t raw_len)
{
    /*
     * brine itself never stores more than raw_len + 4 bytes, but readers size
     * their buffers with this bound, and HDF5 (h5py...) keeps a deflated
     * chunk even when it grew: leave room for zlib's worst case.
     */
    assert(raw_len <= CHUNK_MAX_BYTES);
    return (size_t)compressBound((uLong)raw_len) + 4;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail_why(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes the reason into why (when given) and returns code. */
static int fail_why(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int check_fletcher(const uint8_t *stored, size_t stored_len, char *why, size_t whylen)
{
    if (stored_len < 4)
        return fail_why(why, whylen, BRINE_ECORRUPT,
                        "stored chunk of %zu bytes is shorter than its fletcher32 checksum",
                        stored_len);
    const uint32_t want = get_le32(stored + stored_len - 4);
    const uint32_t got = brine_fletcher32(stored, stored_len - 4);
    if (want != got)
        return fail_why(why, whylen, BRINE_ECORRUPT,
                        "fletcher32 checksum mismatch (stored 0x%08x, computed 0x%08x)",
                        (unsigned)want, (unsigned)got);
    return 0;
}

/* ---- codecs -------------------------------------------------------------- */

#ifdef BRINE_HAVE_LIBDEFLATE
#define HAVE_LIBDEFLATE 1
#else
#define HAVE_LIBDEFLATE 0
#endif
#ifdef BRINE_HAVE_ISAL
#define HAVE_ISAL 1
#else
#define HAVE_ISAL 0
#endif

/* What brine_options may name: the name, whether it is built in, its levels. */
typedef struct codec_info {
    const char *name;
    int built;
    int min_level, max_level;
} codec_info;

static const codec_info codec_table[] = {
    [BRINE_CODEC_DEFAULT] = {"default", 1, 0, HAVE_LIBDEFLATE ? 12 : 9},
    [BRINE_CODEC_ZLIB] = {"zlib", 1, 0, 9},
    [BRINE_CODEC_LIBDEFLATE] = {"libdeflate", HAVE_LIBDEFLATE, 0, 12},
    [BRINE_CODEC_ISAL] = {"isal", HAVE_ISAL, 0, 3},
    [BRINE_CODEC_NONE] = {"none", 1, INT_MIN, INT_MAX},
};

/* NULL for a value outside the enum (brine_options comes from users, and from Fortran). */
static const codec_info *codec_lookup(brine_codec codec)
{
    const unsigned i = (unsigned)codec;
    return i < sizeof codec_table / sizeof codec_table[0] ? &codec_table[i] : NULL;
}

int brine_codec_available(brine_codec codec)
{
    const codec_info *const info = codec_lookup(codec);
    return info ? info->built : 0;
}

const char *brine_codec_name(brine_codec codec)
{
    const codec_info *const info = codec_lookup(codec);
    return info ? info->name : NULL;
}

int brine_chunk__resolve(brine_chunk_codec *out, brine_codec requested, int level, char *why,
                         size_t whylen)
{
    int rc = 0;
    const codec_info *const info = codec_lookup(requested);
    brine_codec codec = requested;

    if (why && whylen > 0)
        why[0] = '\0';
    if (!info) {
        rc = fail_why(why, whylen, BRINE_EINVAL, "unknown codec %d", (int)requested);
        goto done;
    }
    if (!info->built) {
        rc = fail_why(why, whylen, BRINE_EINVAL,
                      "codec %s is not built into this brine (it was not found at configure "
                      "time, or BRINE_WITH_%s was OFF)",
                      info->name, requested == BRINE_CODEC_ISAL ? "ISAL" : "LIBDEFLATE");
        goto done;
    }
    if (level < info->min_level || level > info->max_level) {
        rc = fail_why(why, whylen, BRINE_EINVAL, "level %d is outside codec %s's range %d..%d",
                      level, info->name, info->min_level, info->max_level);
        goto done;
    }
    if (requested == BRINE_CODEC_DEFAULT) {
        /*
         * The fastest that supports the level: ISA-L's four levels are
         * several times faster than anything else, libdeflate beats zlib at
         * every level, and zlib is the fallback that is always there.
         */
        if (HAVE_ISAL && level <= 3)
            codec = BRINE_CODEC_ISAL;
        else if (HAVE_LIBDEFLATE)
            codec = BRINE_CODEC_LIBDEFLATE;
        else
            codec = BRINE_CODEC_ZLIB;
    }
    out->codec = codec;
    /* The level means nothing without deflate: a fixed value keeps resolved codecs comparable. */
    out->level = codec == BRINE_CODEC_NONE ? 0 : level;
done:
    return rc;
}

unsigned brine_chunk__pipeline(const brine_chunk_codec *c)
{
    return c->codec == BRINE_CODEC_NONE
               ? BRINE_FILTER_FLETCHER32
               : BRINE_FILTER_SHUFFLE | BRINE_FILTER_DEFLATE | BRINE_FILTER_FLETCHER32;
}

/* Runs c's deflate: the stream's length in *out_len, 0 when it does not fit in cap bytes. */
static int deflate_with(const brine_chunk_codec *c, const uint8_t *src, size_t len, uint8_t *dst,
                        size_t cap, size_t *out_len)
{
    int rc = 0;

    switch (c->codec) {
#ifdef BRINE_HAVE_ISAL
    case BRINE_CODEC_ISAL:
        rc = brine_codec__isal_deflate(c->level, src, len, dst, cap, out_len);
        break;
#endif
#ifdef BRINE_HAVE_LIBDEFLATE
    case BRINE_CODEC_LIBDEFLATE:
        rc = brine_codec__libdeflate_deflate(c->level, src, len, dst, cap, out_len);
        break;
#endif
    case BRINE_CODEC_ZLIB:
        rc = brine_codec__zlib_deflate(c->level, src, len, dst, cap, out_len);
        break;
    default:
        /* resolve() hands out only built-in codecs; NONE never reaches deflate. */
        assert(!"codec not resolved");
        *out_len = 0;
        rc = BRINE_EINVAL;
        break;
    }
    return rc;
}

/*
 * The shortest zlib stream of one or more bytes: 2 bytes of header, 3 of
 * deflate data (a fixed-Huffman block with one literal: 18 bits), 4 of
 * Adler-32.  A chunk of up to this many bytes cannot shrink, so it is not
 * handed to a codec at all (which also keeps the libraries away from
 * degenerate output buffers of a few bytes).
 */
#define MIN_ZLIB_STREAM 9

int brine_chunk__encode(const void *raw, size_t raw_len, size_t esize, const brine_chunk_codec *c,
                        void *scratch, void *out, size_t *out_len, uint32_t *filter_mask)
{
    int rc = 0;
    uint8_t *const o = out;
    const uint8_t *input = raw; /* what deflate reads: the shuffled bytes */
    size_t stored_len = 0;

    assert(raw_len > 0 && raw_len <= CHUNK_MAX_BYTES && esize > 0 && raw_len % esize == 0);
    assert(c && c->codec != BRINE_CODEC_DEFAULT);
    *filter_mask = 0;
    *out_len = 0;
    if (c->codec == BRINE_CODEC_NONE) {
        /* Pipeline fletcher32 alone: the raw bytes and their checksum. */
        memcpy(o, raw, raw_len);
        stored_len = raw_len;
    } else {
        if (esize > 1) {
            brine_shuffle(scratch, raw, raw_len / esize, esize);
            input = scratch;
        }
        /*
         * Deflate straight into out, whose room (encode_bound) exceeds the
         * raw_len - 1 bytes a codec is given, so the common case needs no
         * copy.  Only a strictly smaller stream is kept.
         */
        if (raw_len > MIN_ZLIB_STREAM &&
            (rc = deflate_with(c, input, raw_len, o, raw_len - 1, &stored_len)))
            goto done;
        if (stored_len == 0) {
            /* The chunk does not shrink: keep it shuffled and mark deflate skipped. */
            *filter_mask |= BRINE_FILTER_DEFLATE;
            memcpy(o, input, raw_len);
            stored_len = raw_len;
        }
    }
    put_le32(o + stored_len, brine_fletcher32(o, stored_len));
    *out_len = stored_len + 4;
done:
    return rc;
}

brine_codec brine_chunk__inflater(void)
{
    /*
     * libdeflate before ISA-L: on 1 MiB shuffled float64 chunks it inflates
     * 1.4 to 1.6 times faster than ISA-L 2.30's isal_inflate (AMD EPYC with
     * AVX-512, zlib and ISA-L streams alike; test_codec_throughput prints
     * both), while ISA-L's deflate is the fastest compressor by far.
     */
    return HAVE_LIBDEFLATE ? BRINE_CODEC_LIBDEFLATE
           : HAVE_ISAL     ? BRINE_CODEC_ISAL
                           : BRINE_CODEC_ZLIB;
}

int brine_chunk__inflate_with(brine_codec inflater, const void *src, size_t src_len, void *dst,
                              size_t dst_len, char *why, size_t whylen)
{
    int rc = 0;
    const uint8_t *const s = src;
    brine_inflate_result res;

    if (why && whylen > 0)
        why[0] = '\0';
    if ((inflater != BRINE_CODEC_ZLIB && inflater != BRINE_CODEC_LIBDEFLATE &&
         inflater != BRINE_CODEC_ISAL) ||
        !brine_codec_available(inflater)) {
        rc = fail_why(why, whylen, BRINE_EINVAL, "inflater %s is not built in",
                      brine_codec_name(inflater) ? brine_codec_name(inflater) : "(unknown)");
        goto done;
    }
    if (src_len > CHUNK_MAX_BYTES || dst_len > CHUNK_MAX_BYTES) {
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "deflate stream of %zu bytes, or its %zu bytes inflated, exceed any chunk",
                      src_len, dst_len);
        goto done;
    }
    /*
     * The zlib header (RFC 1950, 2.2) is checked here, once, for every
     * inflater: zlib (and so HDF5) refuses a bad check value or a preset
     * dictionary, and brine must not accept a chunk HDF5 would refuse just
     * because another inflater is less strict about two redundant bits.
     */
    if (src_len < 2) {
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "deflate stream is truncated (%zu bytes, no room for its zlib header)",
                      src_len);
        goto done;
    }
    if ((s[0] & 0x0f) != 8 || (s[0] >> 4) > 7 || ((unsigned)s[0] << 8 | s[1]) % 31 != 0) {
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "bad deflate stream (invalid zlib header 0x%02x%02x)", s[0], s[1]);
        goto done;
    }
    if (s[1] & 0x20) {
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "bad deflate stream (a preset dictionary is required)");
        goto done;
    }
    switch (inflater) {
#ifdef BRINE_HAVE_ISAL
    case BRINE_CODEC_ISAL:
        brine_codec__isal_inflate(s, src_len, dst, dst_len, &res);
        break;
#endif
#ifdef BRINE_HAVE_LIBDEFLATE
    case BRINE_CODEC_LIBDEFLATE:
        brine_codec__libdeflate_inflate(s, src_len, dst, dst_len, &res);
        break;
#endif
    case BRINE_CODEC_ZLIB:
        brine_codec__zlib_inflate(s, src_len, dst, dst_len, &res);
        break;
    default:
        /* Checked above: every inflater built in has its case. */
        assert(!"inflater not built in");
        rc = BRINE_EINVAL;
        goto done;
    }
    switch (res.status) {
    case BRINE_INFLATE_OK:
        if (res.unused_in != 0)
            rc = fail_why(why, whylen, BRINE_ECORRUPT,
                          "%zu stray bytes follow the end of the deflate stream", res.unused_in);
        break;
    case BRINE_INFLATE_SHORT:
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "deflate stream inflates to %zu bytes, expected %zu", res.produced, dst_len);
        break;
    case BRINE_INFLATE_OVERFLOW:
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "deflate stream inflates to more than the chunk's %zu bytes", dst_len);
        break;
    case BRINE_INFLATE_TRUNCATED:
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "deflate stream is truncated (it ends before its final block)");
        break;
    case BRINE_INFLATE_BAD:
        rc = fail_why(why, whylen, BRINE_ECORRUPT, "bad deflate stream (%s)",
                      res.detail ? res.detail : "invalid data");
        break;
    case BRINE_INFLATE_NOMEM:
        rc = fail_why(why, whylen, BRINE_ENOMEM, "%s could not allocate memory to inflate",
                      brine_codec_name(inflater));
        break;
    }
done:
    return rc;
}

int brine_chunk__decode(const void *stored, size_t stored_len, unsigned pipeline,
                        uint32_t filter_mask, size_t esize, void *scratch, void *out,
                        size_t raw_len, char *why, size_t whylen)
{
    int rc = 0;
    const unsigned active = pipeline & ~(unsigned)filter_mask;
    const int unshuffle = (active & BRINE_FILTER_SHUFFLE) && esize > 1;
    const uint8_t *data = stored;
    size_t data_len = stored_len;
    const uint8_t *plain = data; /* the bytes with deflate undone (still shuffled) */

    assert((pipeline & ~(unsigned)(BRINE_FILTER_SHUFFLE | BRINE_FILTER_DEFLATE |
                                   BRINE_FILTER_FLETCHER32)) == 0);
    assert(raw_len > 0 && esize > 0 && raw_len % esize == 0);
    if (why && whylen > 0)
        why[0] = '\0';
    /* The checksum first: a damaged chunk is reported as such, not as a bad stream. */
    if (active & BRINE_FILTER_FLETCHER32) {
        if ((rc = check_fletcher(data, data_len, why, whylen)))
            goto done;
        data_len -= 4;
    }
    if (active & BRINE_FILTER_DEFLATE) {
        uint8_t *const dst = unshuffle ? scratch : out;
        /* Every inflater reads every zlib stream, whichever codec wrote it: take the fastest. */
        if ((rc = brine_chunk__inflate_with(brine_chunk__inflater(), data, data_len, dst, raw_len,
                                            why, whylen)))
            goto done;
        plain = dst;
    } else if (data_len != raw_len) {
        rc = fail_why(why, whylen, BRINE_ECORRUPT,
                      "uncompressed chunk holds %zu bytes, expected %zu", data_len, raw_len);
        goto done;
    }
    if (unshuffle)
        brine_unshuffle(out, plain, raw_len / esize, esize);
    else if (plain != out)
        memcpy(out, plain, raw_len);
done:
    return rc;
}

int brine_chunk__verify(const void *stored, size_t stored_len, unsigned pipeline,
                        uint32_t filter_mask, char *why, size_t whylen)
{
    if (why && whylen > 0)
        why[0] = '\0';
    /* Without a checksum there is nothing to verify short of decoding. */
    if (!(pipeline & ~(unsigned)filter_mask & BRINE_FILTER_FLETCHER32))
        return 0;
    return check_fletcher(stored, stored_len, why, whylen);
}
