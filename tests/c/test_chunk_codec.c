/*
 * Tests of lib/format/chunk_codec.c: chunk geometry, gather/scatter, shuffle,
 * fletcher32 and the encode/decode pipeline, and cross-checks against HDF5
 * itself: chunks HDF5 writes decode (and re-encode byte for byte), and
 * chunks brine writes with H5Dwrite_chunk read back through plain H5Dread.
 */
/* MAP_ANONYMOUS, for the guard pages of the inflater tests. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hdf5.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "format/chunk_codec.h"
#include "format/codec_backend.h"
#include "test_util.h"

#define ALL_FILTERS (BRINE_FILTER_SHUFFLE | BRINE_FILTER_DEFLATE | BRINE_FILTER_FLETCHER32)

/* A resolved zlib codec: the one whose bytes must equal HDF5's own deflate filter. */
static brine_chunk_codec zlib_at(int level)
{
    return (brine_chunk_codec){BRINE_CODEC_ZLIB, level};
}

static const size_t esizes[] = {1, 2, 4, 8, 16};
#define NESIZES (sizeof esizes / sizeof esizes[0])

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Fills n bytes with a position-dependent pattern (misplaced bytes show up). */
static void fill_pattern(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 2654435761u) >> 13);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tu_rand(&s) >> 56);
}

/* Compressible elements: element i holds i/5 as a little-endian integer of esize bytes. */
static void fill_smooth(uint8_t *p, size_t nelem, size_t esize)
{
    for (size_t i = 0; i < nelem; i++) {
        uint64_t v = i / 5;
        for (size_t b = 0; b < esize; b++) {
            p[i * esize + b] = (uint8_t)v;
            v >>= 8;
        }
    }
}

/* ---- plan / geom ------------------------------------------------------- */

static void check_plan(int ndim, const uint64_t *dims, size_t esize, const uint64_t *want_chunk,
                       uint64_t want_nchunks)
{
    brine_chunk_geom g;
    brine_chunk__plan(&g, ndim, dims, esize, BRINE_CHUNK_TARGET_BYTES);
    assert_int_equal(g.ndim, ndim);
    uint64_t elems = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(g.dims[i], dims[i]);
        assert_int_equal(g.chunk[i], want_chunk[i]);
        assert_int_equal(g.grid[i], (dims[i] + want_chunk[i] - 1) / want_chunk[i]);
        elems *= want_chunk[i];
    }
    assert_int_equal(g.nchunks, want_nchunks);
    assert_int_equal(g.esize, esize);
    assert_int_equal(g.chunk_elems, elems);
    assert_int_equal(g.chunk_bytes, elems * esize);
}

static void test_plan(void **state)
{
    (void)state;
    /* 1-D small: whole array in one chunk. */
    check_plan(1, (const uint64_t[]){1000}, 8, (const uint64_t[]){1000}, 1);
    /* 1-D exactly 1 MiB still fits whole. */
    check_plan(1, (const uint64_t[]){131072}, 8, (const uint64_t[]){131072}, 1);
    /* 1-D large: 2^20 / 8 elements per chunk, last chunk partial. */
    check_plan(1, (const uint64_t[]){10000000}, 8, (const uint64_t[]){131072}, 77);
    check_plan(1, (const uint64_t[]){(uint64_t)1 << 30}, 16, (const uint64_t[]){65536}, 16384);
    check_plan(1, (const uint64_t[]){3000000}, 1, (const uint64_t[]){1048576}, 3);
    /* 2-D whose row exceeds 1 MiB: one row, part of it. */
    check_plan(2, (const uint64_t[]){10, 200000}, 8, (const uint64_t[]){1, 131072}, 20);
    /* 2-D whose rows fit: floor(2^20 / 8000) = 131 rows. */
    check_plan(2, (const uint64_t[]){1000, 1000}, 8, (const uint64_t[]){131, 1000}, 8);
    /* 3-D fitting whole, and one needing 64 planes. */
    check_plan(3, (const uint64_t[]){50, 64, 64}, 4, (const uint64_t[]){50, 64, 64}, 1);
    check_plan(3, (const uint64_t[]){100, 64, 64}, 4, (const uint64_t[]){64, 64, 64}, 2);
    /* 3-D where the middle dimension is cut: floor(2^20 / 800) = 1310. */
    check_plan(3, (const uint64_t[]){7, 3000, 100}, 8, (const uint64_t[]){1, 1310, 100}, 21);
    /* 8-D small. */
    check_plan(8, (const uint64_t[]){2, 3, 2, 3, 2, 3, 2, 3}, 16,
               (const uint64_t[]){2, 3, 2, 3, 2, 3, 2, 3}, 1);

    /* An element larger than the target: one element per chunk, never zero. */
    brine_chunk_geom g;
    brine_chunk__plan(&g, 2, (const uint64_t[]){3, 5}, 16, 8);
    assert_int_equal(g.chunk[0], 1);
    assert_int_equal(g.chunk[1], 1);
    assert_int_equal(g.nchunks, 15);

    /* geom from a file: zeros and >= 4 GiB chunks are refused. */
    assert_int_equal(brine_chunk__geom(&g, 2, (const uint64_t[]){4, 4},
                                       (const uint64_t[]){0, 4}, 8), -1);
    assert_int_equal(brine_chunk__geom(&g, 2, (const uint64_t[]){1 << 20, 1 << 20},
                                       (const uint64_t[]){1 << 16, 1 << 13}, 8), -1);
    assert_int_equal(brine_chunk__geom(&g, 0, (const uint64_t[]){4}, (const uint64_t[]){4}, 8),
                     -1);
    assert_int_equal(brine_chunk__geom(&g, 2, (const uint64_t[]){5, 7},
                                       (const uint64_t[]){2, 3}, 4), 0);
    assert_int_equal(g.grid[0], 3);
    assert_int_equal(g.grid[1], 3);
    assert_int_equal(g.nchunks, 9);
    assert_int_equal(g.chunk_bytes, 24);
}

/* ---- offset / gather / scatter ----------------------------------------- */

typedef struct shape_case {
    int ndim;
    uint64_t dims[BRINE_MAX_NDIM];
    uint64_t chunk[BRINE_MAX_NDIM];
} shape_case;

static const shape_case shape_cases[] = {
    {1, {10}, {3}},
    {1, {10}, {10}},
    {1, {1}, {1}},
    {1, {100}, {7}},
    {2, {7, 5}, {3, 2}},
    {2, {7, 5}, {3, 5}},
    {2, {4, 6}, {4, 6}},
    {2, {5, 9}, {1, 4}},
    {2, {3, 4}, {5, 4}}, /* chunk larger than the dataset (extendible datasets) */
    {3, {5, 4, 3}, {2, 3, 2}},
    {3, {5, 4, 3}, {2, 4, 3}},
    {3, {5, 4, 3}, {2, 1, 3}},
    {3, {6, 6, 6}, {3, 3, 3}},
    {4, {3, 4, 5, 6}, {2, 3, 4, 5}},
    {4, {3, 4, 5, 6}, {2, 2, 5, 6}},
    {4, {2, 3, 4, 5}, {1, 1, 1, 5}},
    {8, {2, 3, 2, 3, 2, 3, 2, 3}, {1, 2, 2, 2, 1, 2, 2, 2}},
};

/* Checks the gathered chunk element by element against the definition. */
static void check_gathered(const brine_chunk_geom *g, const uint8_t *mem, const uint64_t *off,
                           const uint8_t *chunk)
{
    for (size_t e = 0; e < g->chunk_elems; e++) {
        size_t rest = e, lin = 0;
        int inside = 1;
        uint64_t c[BRINE_MAX_NDIM];
        for (int d = g->ndim - 1; d >= 0; d--) {
            c[d] = rest % g->chunk[d];
            rest /= g->chunk[d];
        }
        for (int d = 0; d < g->ndim; d++) {
            const uint64_t x = off[d] + c[d];
            inside &= x < g->dims[d];
            lin = lin * (size_t)g->dims[d] + (size_t)x;
        }
        for (size_t b = 0; b < g->esize; b++) {
            const uint8_t want = inside ? mem[lin * g->esize + b] : 0;
            assert_int_equal(chunk[e * g->esize + b], want);
        }
    }
}

static void test_gather_scatter(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 3, 4, 8, 16};
    for (size_t sc = 0; sc < sizeof shape_cases / sizeof shape_cases[0]; sc++) {
        const shape_case *s = &shape_cases[sc];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            brine_chunk_geom g;
            assert_int_equal(brine_chunk__geom(&g, s->ndim, s->dims, s->chunk, sizes[si]), 0);
            size_t total = g.esize;
            for (int d = 0; d < s->ndim; d++)
                total *= (size_t)s->dims[d];
            uint8_t *mem = xmalloc(total);
            uint8_t *back = xmalloc(total);
            uint8_t *chunk = xmalloc(g.chunk_bytes);
            fill_pattern(mem, total);
            memset(back, 0x55, total);
            uint64_t seen = 0;
            for (uint64_t k = 0; k < g.nchunks; k++) {
                uint64_t off[BRINE_MAX_NDIM];
                brine_chunk__offset(&g, k, off);
                /* Offsets are multiples of the chunk, row-major over the grid. */
                uint64_t idx = 0;
                for (int d = 0; d < s->ndim; d++) {
                    assert_int_equal(off[d] % g.chunk[d], 0);
                    assert_true(off[d] < g.dims[d]);
                    idx = idx * g.grid[d] + off[d] / g.chunk[d];
                }
                assert_int_equal(idx, k);
                /* Garbage first, so padding must really be written as zeros. */
                memset(chunk, 0xAA, g.chunk_bytes);
                brine_chunk__gather(&g, mem, off, chunk);
                check_gathered(&g, mem, off, chunk);
                brine_chunk__scatter(&g, back, off, chunk);
                seen++;
            }
            assert_int_equal(seen, g.nchunks);
            assert_memory_equal(back, mem, total);
            free(chunk);
            free(back);
            free(mem);
        }
    }
}

/* ---- shuffle ------------------------------------------------------------ */

static void test_shuffle(void **state)
{
    (void)state;
    const size_t counts[] = {0, 1, 2, 63, 64, 65, 127, 128, 1000, 4099};
    for (size_t esize = 1; esize <= 17; esize++) {
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const size_t n = counts[ci], len = n * esize;
            uint8_t *src = xmalloc(len), *sh = xmalloc(len), *back = xmalloc(len);
            fill_random(src, len, esize * 1000 + n);
            brine_shuffle(sh, src, n, esize);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < esize; j++)
                    assert_int_equal(sh[j * n + i], src[i * esize + j]);
            brine_unshuffle(back, sh, n, esize);
            if (len)
                assert_memory_equal(back, src, len);
            free(back);
            free(sh);
            free(src);
        }
    }
}

/* ---- fletcher32 --------------------------------------------------------- */

/* HDF5's H5_checksum_fletcher32, transcribed word by word, as the reference. */
static uint32_t ref_fletcher32(const uint8_t *data, size_t n)
{
    size_t len = n / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (len) {
        size_t tlen = len > 360 ? 360 : len;
        len -= tlen;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | ((uint16_t)data[1]);
            data += 2;
            sum2 += sum1;
        } while (--tlen);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (n % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

static void test_fletcher32(void **state)
{
    (void)state;
    /* Known values (the HDF5 cross-checks below check real HDF5 checksums too). */
    assert_int_equal(brine_fletcher32("", 0), 0x00000000u);
    assert_int_equal(brine_fletcher32("\x01", 1), 0x01000100u);
    assert_int_equal(brine_fletcher32("\x01\x02", 2), 0x01020102u);
    assert_int_equal(brine_fletcher32("abcde", 5), 0x4ff029c7u);
    assert_int_equal(brine_fletcher32("abcdef", 6), 0x50562a2du);
    uint8_t ff[1001];
    memset(ff, 0xff, sizeof ff);
    assert_int_equal(brine_fletcher32(ff, sizeof ff), 0xff00ff00u);
    uint8_t ramp[1025];
    for (size_t i = 0; i < sizeof ramp; i++)
        ramp[i] = (uint8_t)i;
    ramp[1024] = 7;
    assert_int_equal(brine_fletcher32(ramp, sizeof ramp), 0x1d1507ffu);

    /* Every length around the 360-word folding blocks, even and odd, random and all-ones. */
    const size_t big = (1u << 20) + 3;
    uint8_t *buf = xmalloc(big), *ones = xmalloc(big);
    fill_random(buf, big, 42);
    memset(ones, 0xff, big);
    for (size_t n = 0; n <= 2200; n++) {
        assert_int_equal(brine_fletcher32(buf, n), ref_fletcher32(buf, n));
        assert_int_equal(brine_fletcher32(buf + 1, n), ref_fletcher32(buf + 1, n));
        assert_int_equal(brine_fletcher32(ones, n), ref_fletcher32(ones, n));
    }
    const size_t lens[] = {big, big - 1, big - 2, 1u << 20, 720 * 1000, 720 * 1000 + 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        assert_int_equal(brine_fletcher32(buf, lens[i]), ref_fletcher32(buf, lens[i]));
        assert_int_equal(brine_fletcher32(ones, lens[i]), ref_fletcher32(ones, lens[i]));
    }
    free(ones);
    free(buf);
}

/* ---- encode / decode ---------------------------------------------------- */

enum { DATA_SMOOTH, DATA_RANDOM, DATA_ZEROS };

static void test_encode_decode(void **state)
{
    (void)state;
    const int levels[] = {0, 1, 6, 9};
    const size_t counts[] = {1, 2, 3, 3001};
    for (size_t ei = 0; ei < NESIZES; ei++) {
        const size_t esize = esizes[ei];
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const size_t n = counts[ci], raw_len = n * esize;
            const size_t bound = brine_chunk__encode_bound(raw_len);
            assert_true(bound >= raw_len + 4);
            for (int kind = DATA_SMOOTH; kind <= DATA_ZEROS; kind++) {
                for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
                    const int level = levels[li];
                    /* Exact sizes, so the sanitizer sees any overrun. */
                    uint8_t *raw = xmalloc(raw_len), *scratch = xmalloc(raw_len);
                    uint8_t *out = xmalloc(bound), *back = xmalloc(raw_len);
                    uint8_t *sh = xmalloc(raw_len);
                    if (kind == DATA_SMOOTH)
                        fill_smooth(raw, n, esize);
                    else if (kind == DATA_RANDOM)
                        fill_random(raw, raw_len, raw_len + (uint64_t)level);
                    else
                        memset(raw, 0, raw_len);
                    size_t out_len = 0;
                    uint32_t mask = 0xdead;
                    const brine_chunk_codec zc = zlib_at(level);
                    assert_int_equal(brine_chunk__encode(raw, raw_len, esize, &zc, scratch, out,
                                                         &out_len, &mask), 0);
                    assert_true(out_len <= raw_len + 4);
                    assert_true(mask == 0 || mask == BRINE_FILTER_DEFLATE);
                    brine_shuffle(sh, raw, n, esize);
                    if (mask) {
                        /* Did not shrink: the shuffled bytes as they are. */
                        assert_int_equal(out_len, raw_len + 4);
                        assert_memory_equal(out, sh, raw_len);
                    } else {
                        /* A zlib stream equal to what compress2 (HDF5's filter) writes. */
                        uLongf zlen = compressBound((uLong)raw_len);
                        uint8_t *z = xmalloc(zlen);
                        assert_int_equal(compress2(z, &zlen, sh, (uLong)raw_len, level), Z_OK);
                        assert_int_equal(out_len, zlen + 4);
                        assert_memory_equal(out, z, zlen);
                        free(z);
                    }
                    /* Which chunks shrink is predictable where it matters. */
                    if (level == 0 || raw_len <= 8 || kind == DATA_RANDOM)
                        assert_int_equal(mask, BRINE_FILTER_DEFLATE);
                    else if (n == 3001)
                        assert_int_equal(mask, 0);
                    char why[128] = "x";
                    memset(back, 0xcc, raw_len);
                    assert_int_equal(brine_chunk__decode(out, out_len, ALL_FILTERS, mask, esize,
                                                         scratch, back, raw_len, why, sizeof why),
                                     0);
                    assert_string_equal(why, "");
                    assert_memory_equal(back, raw, raw_len);
                    assert_int_equal(brine_chunk__verify(out, out_len, ALL_FILTERS, mask, why,
                                                         sizeof why), 0);
                    free(sh);
                    free(back);
                    free(out);
                    free(scratch);
                    free(raw);
                }
            }
        }
    }
}

/* Stored form of a smooth chunk of n doubles at level 6 (mask 0). */
static uint8_t *encode_smooth(size_t n, size_t *out_len)
{
    const size_t raw_len = n * 8;
    uint8_t *raw = xmalloc(raw_len), *scratch = xmalloc(raw_len);
    uint8_t *out = xmalloc(brine_chunk__encode_bound(raw_len));
    uint32_t mask = 1;
    fill_smooth(raw, n, 8);
    const brine_chunk_codec zc = zlib_at(6);
    assert_int_equal(brine_chunk__encode(raw, raw_len, 8, &zc, scratch, out, out_len, &mask), 0);
    assert_int_equal(mask, 0);
    free(scratch);
    free(raw);
    return out;
}

static void test_corruption(void **state)
{
    (void)state;
    const size_t n = 3001, raw_len = n * 8;
    size_t len = 0;
    uint8_t *good = encode_smooth(n, &len);
    uint8_t *bad = xmalloc(len + 16);
    uint8_t *scratch = xmalloc(raw_len + 64), *back = xmalloc(raw_len + 64);
    char why[160];

    /* Every single-bit flip anywhere in the stored bytes is caught by fletcher32. */
    for (size_t pos = 0; pos < len; pos++) {
        memcpy(bad, good, len);
        bad[pos] ^= (uint8_t)(1u << (pos % 8));
        assert_int_equal(brine_chunk__decode(bad, len, ALL_FILTERS, 0, 8, scratch, back, raw_len,
                                             why, sizeof why), BRINE_ECORRUPT);
        assert_non_null(strstr(why, "fletcher32"));
        assert_int_equal(brine_chunk__verify(bad, len, ALL_FILTERS, 0, why, sizeof why),
                         BRINE_ECORRUPT);
    }
    /* Without the checksum the same flips reach zlib: errors or, rarely, wrong data; never a crash. */
    size_t caught = 0;
    for (size_t pos = 0; pos < len - 4; pos++) {
        memcpy(bad, good, len - 4);
        bad[pos] ^= (uint8_t)(1u << (pos % 8));
        const int rc = brine_chunk__decode(bad, len - 4, BRINE_FILTER_SHUFFLE | BRINE_FILTER_DEFLATE,
                                           0, 8, scratch, back, raw_len, why, sizeof why);
        assert_true(rc == 0 || rc == BRINE_ECORRUPT);
        caught += rc == BRINE_ECORRUPT;
    }
    assert_true(caught > (len - 4) * 9 / 10);

    /* Truncated: the checksum no longer matches... */
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(bad, good, cut);
        assert_int_equal(brine_chunk__decode(bad, cut, ALL_FILTERS, 0, 8, scratch, back, raw_len,
                                             why, sizeof why), BRINE_ECORRUPT);
        assert_true(why[0] != '\0');
    }
    /* ...and with a valid checksum over the shortened stream, inflate sees the truncation. */
    const size_t zlen = len - 4;
    for (size_t cut = 0; cut < zlen; cut++) {
        memcpy(bad, good, cut);
        const uint32_t f = brine_fletcher32(bad, cut);
        memcpy(bad + cut, &(uint8_t[4]){(uint8_t)f, (uint8_t)(f >> 8), (uint8_t)(f >> 16),
                                        (uint8_t)(f >> 24)}, 4);
        assert_int_equal(brine_chunk__decode(bad, cut + 4, ALL_FILTERS, 0, 8, scratch, back,
                                             raw_len, why, sizeof why), BRINE_ECORRUPT);
        assert_null(strstr(why, "fletcher32"));
        assert_true(why[0] != '\0');
    }

    /* A stream longer than the chunk, and one shorter. */
    assert_int_equal(brine_chunk__decode(good, len, ALL_FILTERS, 0, 8, scratch, back, raw_len - 8,
                                         why, sizeof why), BRINE_ECORRUPT);
    assert_non_null(strstr(why, "more than"));
    assert_int_equal(brine_chunk__decode(good, len, ALL_FILTERS, 0, 8, scratch, back, raw_len + 8,
                                         why, sizeof why), BRINE_ECORRUPT);
    assert_non_null(strstr(why, "expected"));

    /* Bytes after the end of the zlib stream, under a valid checksum. */
    memcpy(bad, good, zlen);
    bad[zlen] = 0;
    uint32_t f = brine_fletcher32(bad, zlen + 1);
    for (int b = 0; b < 4; b++)
        bad[zlen + 1 + (size_t)b] = (uint8_t)(f >> (8 * b));
    assert_int_equal(brine_chunk__decode(bad, zlen + 5, ALL_FILTERS, 0, 8, scratch, back, raw_len,
                                         why, sizeof why), BRINE_ECORRUPT);
    assert_non_null(strstr(why, "stray"));

    /* Too short for a checksum at all. */
    assert_int_equal(brine_chunk__decode(good, 3, ALL_FILTERS, 0, 8, scratch, back, raw_len, why,
                                         sizeof why), BRINE_ECORRUPT);
    assert_int_equal(brine_chunk__verify(good, 0, ALL_FILTERS, 0, why, sizeof why),
                     BRINE_ECORRUPT);

    /* A chunk stored uncompressed (mask bit) must hold exactly raw_len bytes. */
    assert_int_equal(brine_chunk__decode(good, len, ALL_FILTERS, BRINE_FILTER_DEFLATE, 8, scratch,
                                         back, raw_len, why, sizeof why), BRINE_ECORRUPT);
    assert_non_null(strstr(why, "uncompressed"));

    /* No checksum in the pipeline: verify has nothing to check; NULL why is allowed. */
    assert_int_equal(brine_chunk__verify(bad, 1, BRINE_FILTER_SHUFFLE | BRINE_FILTER_DEFLATE, 0,
                                         NULL, 0), 0);
    assert_int_equal(brine_chunk__decode(good, 3, ALL_FILTERS, 0, 8, scratch, back, raw_len, NULL,
                                         0), BRINE_ECORRUPT);

    /* Pipelines and masks are honoured: fletcher32 only, and deflate only. */
    uint8_t raw[37];
    fill_random(raw, sizeof raw, 9);
    memcpy(bad, raw, sizeof raw);
    f = brine_fletcher32(raw, sizeof raw);
    for (int b = 0; b < 4; b++)
        bad[sizeof raw + (size_t)b] = (uint8_t)(f >> (8 * b));
    assert_int_equal(brine_chunk__decode(bad, sizeof raw + 4, BRINE_FILTER_FLETCHER32, 0, 1,
                                         scratch, back, sizeof raw, why, sizeof why), 0);
    assert_memory_equal(back, raw, sizeof raw);
    assert_int_equal(brine_chunk__decode(bad, sizeof raw + 4, ALL_FILTERS,
                                         BRINE_FILTER_DEFLATE | BRINE_FILTER_SHUFFLE, 1, scratch,
                                         back, sizeof raw, why, sizeof why), 0);
    assert_memory_equal(back, raw, sizeof raw);
    uLongf zl = compressBound(sizeof raw);
    assert_int_equal(compress2(bad, &zl, raw, sizeof raw, 6), Z_OK);
    assert_int_equal(brine_chunk__decode(bad, zl, BRINE_FILTER_DEFLATE, 0, 1, scratch, back,
                                         sizeof raw, why, sizeof why), 0);
    assert_memory_equal(back, raw, sizeof raw);

    free(back);
    free(scratch);
    free(bad);
    free(good);
}

/* ---- codecs: zlib, libdeflate, ISA-L, none ------------------------------------ */

/* The deflate codecs and the levels each is tested at (its extremes, a fast one, the default). */
typedef struct codec_levels {
    brine_codec codec;
    int levels[4];
} codec_levels;

static const codec_levels all_codecs[] = {
    {BRINE_CODEC_ZLIB, {0, 1, 6, 9}},
    {BRINE_CODEC_LIBDEFLATE, {0, 1, 6, 12}},
    {BRINE_CODEC_ISAL, {0, 1, 2, 3}},
};
#define NCODECS (sizeof all_codecs / sizeof all_codecs[0])

/* Every zlib stream reader brine may use (decode picks the fastest one built in). */
static const brine_codec all_inflaters[] = {BRINE_CODEC_ZLIB, BRINE_CODEC_LIBDEFLATE,
                                            BRINE_CODEC_ISAL};
#define NINFLATERS (sizeof all_inflaters / sizeof all_inflaters[0])

/* Stores nothing: zlib's and libdeflate's level 0 write stored blocks, which never shrink. */
static int stores_only(const brine_chunk_codec *c)
{
    return c->level == 0 && c->codec != BRINE_CODEC_ISAL;
}

/* Plain zlib, as HDF5's deflate filter runs it, inflates z to exactly want. */
static void check_plain_zlib(const uint8_t *z, size_t zlen, const uint8_t *want, size_t n)
{
    uint8_t *buf = xmalloc(n);
    uLongf got = (uLongf)n;
    assert_int_equal(uncompress(buf, &got, z, (uLong)zlen), Z_OK);
    assert_int_equal(got, n);
    assert_memory_equal(buf, want, n);
    free(buf);
}

/* A smooth float64 field (a heat-equation profile): its low mantissa bytes still vary. */
static void fill_field(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const double x = (double)i / (double)n;
        v[i] = 300.0 + 40.0 * x * (1.0 - x) + 5.0 * exp(-(x - 0.3) * (x - 0.3) * 50.0);
    }
}

enum { DATA_TINY = DATA_ZEROS + 1, DATA_FIELD };

/*
 * Every codec built in, at each of its levels, for every element size and
 * compressible, incompressible, zero and tiny chunks: encode, decode (the
 * fastest inflater), every other inflater, and plain zlib on the stream.
 */
static void test_codec_round_trip(void **state)
{
    (void)state;
    const size_t counts[] = {1, 3, 3001};
    size_t tested = 0;
    for (size_t k = 0; k < NCODECS; k++) {
        if (!brine_codec_available(all_codecs[k].codec))
            continue;
        for (size_t li = 0; li < 4; li++) {
            brine_chunk_codec c;
            char why[160];
            assert_int_equal(brine_chunk__resolve(&c, all_codecs[k].codec,
                                                  all_codecs[k].levels[li], why, sizeof why),
                             0);
            assert_int_equal(c.codec, all_codecs[k].codec);
            for (size_t ei = 0; ei < NESIZES; ei++) {
                const size_t esize = esizes[ei];
                for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                    for (int kind = DATA_SMOOTH; kind <= DATA_FIELD; kind++) {
                        const size_t n = kind == DATA_TINY ? 1 : counts[ci];
                        if (kind == DATA_TINY && ci > 0)
                            continue;
                        if (kind == DATA_FIELD && (esize != 8 || n < 3001))
                            continue;
                        const size_t raw_len = n * esize;
                        uint8_t *raw = xmalloc(raw_len), *scratch = xmalloc(raw_len);
                        uint8_t *out = xmalloc(brine_chunk__encode_bound(raw_len));
                        uint8_t *back = xmalloc(raw_len), *sh = xmalloc(raw_len);
                        if (kind == DATA_SMOOTH)
                            fill_smooth(raw, n, esize);
                        else if (kind == DATA_RANDOM)
                            fill_random(raw, raw_len, raw_len * 31 + li);
                        else if (kind == DATA_FIELD)
                            fill_field((double *)(void *)raw, n);
                        else if (kind == DATA_TINY)
                            memset(raw, 0x41, raw_len);
                        else
                            memset(raw, 0, raw_len);
                        size_t out_len = 0;
                        uint32_t mask = 0xdead;
                        assert_int_equal(brine_chunk__encode(raw, raw_len, esize, &c, scratch,
                                                             out, &out_len, &mask), 0);
                        assert_true(out_len <= raw_len + 4);
                        assert_true(mask == 0 || mask == BRINE_FILTER_DEFLATE);
                        brine_shuffle(sh, raw, n, esize);
                        if (mask) {
                            assert_int_equal(out_len, raw_len + 4);
                            assert_memory_equal(out, sh, raw_len);
                        } else {
                            assert_true(out_len - 4 < raw_len);
                            /* HDF5 can read it: plain zlib inflates it to the shuffled chunk. */
                            check_plain_zlib(out, out_len - 4, sh, raw_len);
                            /* And so does every other inflater built in. */
                            for (size_t ii = 0; ii < NINFLATERS; ii++) {
                                if (!brine_codec_available(all_inflaters[ii]))
                                    continue;
                                memset(back, 0xcc, raw_len);
                                assert_int_equal(brine_chunk__inflate_with(
                                                     all_inflaters[ii], out, out_len - 4, back,
                                                     raw_len, why, sizeof why),
                                                 0);
                                assert_memory_equal(back, sh, raw_len);
                            }
                        }
                        /* Which chunks shrink is predictable where it matters. */
                        if (stores_only(&c) || raw_len <= 9 || kind == DATA_RANDOM)
                            assert_int_equal(mask, BRINE_FILTER_DEFLATE);
                        else if (n == 3001 && kind != DATA_FIELD)
                            assert_int_equal(mask, 0);
                        strcpy(why, "x");
                        memset(back, 0xcc, raw_len);
                        assert_int_equal(brine_chunk__decode(out, out_len, ALL_FILTERS, mask,
                                                             esize, scratch, back, raw_len, why,
                                                             sizeof why),
                                         0);
                        assert_string_equal(why, "");
                        assert_memory_equal(back, raw, raw_len);
                        tested++;
                        free(sh);
                        free(back);
                        free(out);
                        free(scratch);
                        free(raw);
                    }
                }
            }
        }
    }
    assert_true(tested > 0);
}

static void test_resolve(void **state)
{
    (void)state;
    const int isal = brine_codec_available(BRINE_CODEC_ISAL);
    const int libdeflate = brine_codec_available(BRINE_CODEC_LIBDEFLATE);
    brine_chunk_codec c;
    char why[200];

    assert_int_equal(brine_codec_available(BRINE_CODEC_ZLIB), 1);
    assert_int_equal(brine_codec_available(BRINE_CODEC_NONE), 1);
    assert_int_equal(brine_codec_available(BRINE_CODEC_DEFAULT), 1);
    assert_int_equal(brine_codec_available((brine_codec)99), 0);
    assert_int_equal(brine_codec_available((brine_codec)-1), 0);
    assert_string_equal(brine_codec_name(BRINE_CODEC_DEFAULT), "default");
    assert_string_equal(brine_codec_name(BRINE_CODEC_ZLIB), "zlib");
    assert_string_equal(brine_codec_name(BRINE_CODEC_LIBDEFLATE), "libdeflate");
    assert_string_equal(brine_codec_name(BRINE_CODEC_ISAL), "isal");
    assert_string_equal(brine_codec_name(BRINE_CODEC_NONE), "none");
    assert_null(brine_codec_name((brine_codec)5));
    assert_null(brine_codec_name((brine_codec)-1));
    printf("codecs built in: zlib%s%s; decode inflates with %s\n", libdeflate ? " libdeflate" : "",
           isal ? " isal" : "", brine_codec_name(brine_chunk__inflater()));
    /* The fastest inflater measured (test_codec_throughput): libdeflate, then ISA-L. */
    assert_int_equal(brine_chunk__inflater(), libdeflate ? BRINE_CODEC_LIBDEFLATE
                                              : isal     ? BRINE_CODEC_ISAL
                                                         : BRINE_CODEC_ZLIB);

    /* DEFAULT: ISA-L for 0..3, libdeflate for the rest, zlib only when neither is there. */
    for (int level = 0; level <= 12; level++) {
        const brine_codec want = isal && level <= 3 ? BRINE_CODEC_ISAL
                                 : libdeflate       ? BRINE_CODEC_LIBDEFLATE
                                                    : BRINE_CODEC_ZLIB;
        const int ok = want != BRINE_CODEC_ZLIB || level <= 9;
        memset(&c, 0x5a, sizeof c);
        const int rc = brine_chunk__resolve(&c, BRINE_CODEC_DEFAULT, level, why, sizeof why);
        if (ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(c.codec, want);
            assert_int_equal(c.level, level);
            assert_int_equal(brine_chunk__pipeline(&c), ALL_FILTERS);
        } else {
            assert_int_equal(rc, BRINE_EINVAL);
            assert_non_null(strstr(why, "range"));
        }
    }
    assert_int_equal(brine_chunk__resolve(&c, BRINE_CODEC_DEFAULT, -1, why, sizeof why),
                     BRINE_EINVAL);
    assert_int_equal(brine_chunk__resolve(&c, BRINE_CODEC_DEFAULT, 13, why, sizeof why),
                     BRINE_EINVAL);
    assert_non_null(strstr(why, "level 13"));

    /* An explicit codec: its own range, and only when built in. */
    static const struct {
        brine_codec codec;
        int max;
    } explicit_codecs[] = {
        {BRINE_CODEC_ZLIB, 9}, {BRINE_CODEC_LIBDEFLATE, 12}, {BRINE_CODEC_ISAL, 3}};
    for (size_t i = 0; i < sizeof explicit_codecs / sizeof explicit_codecs[0]; i++) {
        const brine_codec codec = explicit_codecs[i].codec;
        const int built = brine_codec_available(codec);
        for (int level = -2; level <= explicit_codecs[i].max + 2; level++) {
            strcpy(why, "x");
            const int rc = brine_chunk__resolve(&c, codec, level, why, sizeof why);
            if (!built) {
                assert_int_equal(rc, BRINE_EINVAL);
                assert_non_null(strstr(why, "not built"));
            } else if (level < 0 || level > explicit_codecs[i].max) {
                assert_int_equal(rc, BRINE_EINVAL);
                assert_non_null(strstr(why, "range"));
                assert_non_null(strstr(why, brine_codec_name(codec)));
            } else {
                assert_int_equal(rc, 0);
                assert_string_equal(why, "");
                assert_int_equal(c.codec, codec);
                assert_int_equal(c.level, level);
            }
        }
    }
    /* NONE: no deflate, so no level to check; fletcher32 alone. */
    assert_int_equal(brine_chunk__resolve(&c, BRINE_CODEC_NONE, 1, why, sizeof why), 0);
    assert_int_equal(c.codec, BRINE_CODEC_NONE);
    assert_int_equal(c.level, 0);
    assert_int_equal(brine_chunk__pipeline(&c), BRINE_FILTER_FLETCHER32);
    assert_int_equal(brine_chunk__resolve(&c, BRINE_CODEC_NONE, 42, NULL, 0), 0);
    /* Values outside the enum. */
    assert_int_equal(brine_chunk__resolve(&c, (brine_codec)5, 1, why, sizeof why), BRINE_EINVAL);
    assert_non_null(strstr(why, "unknown codec 5"));
    assert_int_equal(brine_chunk__resolve(&c, (brine_codec)-3, 1, why, sizeof why), BRINE_EINVAL);
    assert_int_equal(brine_chunk__resolve(&c, (brine_codec)1000, 1, NULL, 0), BRINE_EINVAL);
}

/* BRINE_CODEC_NONE: the raw bytes (not shuffled) and their fletcher32, mask 0, whatever the data */
static void test_codec_none(void **state)
{
    (void)state;
    brine_chunk_codec c;
    assert_int_equal(brine_chunk__resolve(&c, BRINE_CODEC_NONE, 0, NULL, 0), 0);
    const unsigned pipeline = brine_chunk__pipeline(&c);
    const size_t counts[] = {1, 2, 3001};
    for (size_t ei = 0; ei < NESIZES; ei++) {
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            for (int kind = DATA_SMOOTH; kind <= DATA_ZEROS; kind++) {
                const size_t esize = esizes[ei], n = counts[ci], raw_len = n * esize;
                uint8_t *raw = xmalloc(raw_len), *scratch = xmalloc(raw_len);
                uint8_t *out = xmalloc(brine_chunk__encode_bound(raw_len));
                uint8_t *back = xmalloc(raw_len);
                char why[160];
                if (kind == DATA_SMOOTH)
                    fill_smooth(raw, n, esize);
                else if (kind == DATA_RANDOM)
                    fill_random(raw, raw_len, raw_len);
                else
                    memset(raw, 0, raw_len);
                size_t len = 0;
                uint32_t mask = 0xdead;
                assert_int_equal(brine_chunk__encode(raw, raw_len, esize, &c, scratch, out, &len,
                                                     &mask), 0);
                assert_int_equal(mask, 0);
                assert_int_equal(len, raw_len + 4);
                assert_memory_equal(out, raw, raw_len);
                const uint32_t f = brine_fletcher32(raw, raw_len);
                assert_int_equal(out[raw_len] | out[raw_len + 1] << 8 | out[raw_len + 2] << 16 |
                                     (uint32_t)out[raw_len + 3] << 24,
                                 f);
                memset(back, 0xcc, raw_len);
                assert_int_equal(brine_chunk__decode(out, len, pipeline, mask, esize, scratch,
                                                     back, raw_len, why, sizeof why), 0);
                assert_memory_equal(back, raw, raw_len);
                assert_int_equal(brine_chunk__verify(out, len, pipeline, mask, why, sizeof why),
                                 0);
                out[raw_len / 2] ^= 0x10;
                assert_int_equal(brine_chunk__decode(out, len, pipeline, mask, esize, scratch,
                                                     back, raw_len, why, sizeof why),
                                 BRINE_ECORRUPT);
                assert_non_null(strstr(why, "fletcher32"));
                free(back);
                free(out);
                free(scratch);
                free(raw);
            }
        }
    }
}

/*
 * Buffers that end where an inaccessible page begins, so an inflater (ISA-L
 * is assembly, out of the sanitizers' sight) that reads past its input or
 * writes past its output faults instead of passing silently.
 */
typedef struct guarded {
    uint8_t *map;
    size_t maplen;
    uint8_t *end; /* the first inaccessible byte */
    size_t cap;
} guarded;

static guarded guarded_alloc(size_t cap)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data = (cap + page - 1) / page * page;
    guarded g;
    g.maplen = data + page;
    g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + data, page, PROT_NONE), 0);
    g.end = g.map + data;
    g.cap = cap;
    return g;
}

static void guarded_free(const guarded *g)
{
    assert_int_equal(munmap(g->map, g->maplen), 0);
}

/*
 * Inflates z[0..zlen) with inflater, the input copied flush against src's
 * guard page, into the last dst_len bytes before dst's guard page (returned
 * in *outp); checks that a failure always says why.
 */
static int inflate_guarded(brine_codec inflater, const uint8_t *z, size_t zlen, const guarded *src,
                           const guarded *dst, size_t dst_len, uint8_t **outp, char *why,
                           size_t whylen)
{
    assert_true(zlen <= src->cap && dst_len <= dst->cap);
    uint8_t *const in = src->end - zlen;
    uint8_t *const out = dst->end - dst_len;
    memmove(in, z, zlen);
    strcpy(why, "x");
    const int rc = brine_chunk__inflate_with(inflater, in, zlen, out, dst_len, why, whylen);
    assert_true(rc == 0 || rc == BRINE_ECORRUPT);
    if (rc)
        assert_true(why[0] != '\0' && strcmp(why, "x") != 0);
    else
        assert_string_equal(why, "");
    if (outp)
        *outp = out;
    return rc;
}

/*
 * Every inflater built in, on streams from every codec: damaged, truncated,
 * too long, too short, followed by garbage, with a bad header; each is
 * BRINE_ECORRUPT with a reason, and none reads or writes out of bounds.
 */
static void test_inflater_corruption(void **state)
{
    (void)state;
    const size_t n = 3001, raw_len = n * 8;
    const size_t bound = brine_chunk__encode_bound(raw_len);
    uint8_t *raw = xmalloc(raw_len), *sh = xmalloc(raw_len), *scratch = xmalloc(raw_len);
    uint8_t *out = xmalloc(bound), *bad = xmalloc(bound + 16);
    const guarded gsrc = guarded_alloc(bound + 16), gdst = guarded_alloc(raw_len + 8);
    uint8_t *got;
    char why[200];
    fill_smooth(raw, n, 8);
    brine_shuffle(sh, raw, n, 8);

    for (size_t ii = 0; ii < NINFLATERS; ii++) {
        const brine_codec inflater = all_inflaters[ii];
        if (!brine_codec_available(inflater)) {
            assert_int_equal(brine_chunk__inflate_with(inflater, out, 0, scratch, raw_len, why,
                                                       sizeof why), BRINE_EINVAL);
            assert_non_null(strstr(why, "not built in"));
            continue;
        }
        for (size_t k = 0; k < NCODECS; k++) {
            brine_chunk_codec c;
            if (brine_chunk__resolve(&c, all_codecs[k].codec, all_codecs[k].levels[2], NULL, 0))
                continue;
            size_t len;
            uint32_t mask;
            assert_int_equal(brine_chunk__encode(raw, raw_len, 8, &c, scratch, out, &len, &mask),
                             0);
            assert_int_equal(mask, 0);
            const size_t zlen = len - 4;

            /* The good stream, exactly. */
            assert_int_equal(inflate_guarded(inflater, out, zlen, &gsrc, &gdst, raw_len, &got, why,
                                             sizeof why), 0);
            assert_memory_equal(got, sh, raw_len);

            /* Truncated anywhere. */
            for (size_t cut = 0; cut < zlen; cut++)
                assert_int_equal(inflate_guarded(inflater, out, cut, &gsrc, &gdst, raw_len, NULL,
                                                 why, sizeof why), BRINE_ECORRUPT);

            /* Every single-bit flip: an error or (where a flip leaves a valid stream) the data. */
            size_t caught = 0;
            for (size_t pos = 0; pos < zlen; pos++) {
                memcpy(bad, out, zlen);
                bad[pos] ^= (uint8_t)(1u << (pos % 8));
                caught += inflate_guarded(inflater, bad, zlen, &gsrc, &gdst, raw_len, NULL, why,
                                          sizeof why) == BRINE_ECORRUPT;
            }
            assert_true(caught > zlen * 9 / 10);

            /* A chunk smaller and one larger than the stream inflates to. */
            assert_int_equal(inflate_guarded(inflater, out, zlen, &gsrc, &gdst, raw_len - 8, NULL,
                                             why, sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "more than"));
            assert_int_equal(inflate_guarded(inflater, out, zlen, &gsrc, &gdst, raw_len + 8, NULL,
                                             why, sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "expected"));

            /* Trailing garbage, one byte and many. */
            memcpy(bad, out, zlen);
            memset(bad + zlen, 0, 16);
            assert_int_equal(inflate_guarded(inflater, bad, zlen + 1, &gsrc, &gdst, raw_len, NULL,
                                             why, sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "1 stray"));
            assert_int_equal(inflate_guarded(inflater, bad, zlen + 16, &gsrc, &gdst, raw_len, NULL,
                                             why, sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "16 stray"));

            /* A bad Adler-32 (its last byte), a bad header check, a preset dictionary. */
            memcpy(bad, out, zlen);
            bad[zlen - 1] ^= 0x01;
            assert_int_equal(inflate_guarded(inflater, bad, zlen, &gsrc, &gdst, raw_len, NULL, why,
                                             sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "bad deflate stream"));
            memcpy(bad, out, zlen);
            bad[1] ^= 0x01;
            assert_int_equal(inflate_guarded(inflater, bad, zlen, &gsrc, &gdst, raw_len, NULL, why,
                                             sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "zlib header"));
            /* FDICT set, FCHECK made valid again. */
            bad[1] = (uint8_t)((out[1] & 0xc0) | 0x20);
            bad[1] = (uint8_t)(bad[1] + (31 - ((unsigned)bad[0] << 8 | bad[1]) % 31) % 31);
            assert_int_equal(inflate_guarded(inflater, bad, zlen, &gsrc, &gdst, raw_len, NULL, why,
                                             sizeof why), BRINE_ECORRUPT);
            assert_non_null(strstr(why, "dictionary"));
        }

        /* A valid stream of nothing, and random bytes behind a valid header. */
        uLongf el = 64;
        uint8_t empty[64];
        assert_int_equal(compress2(empty, &el, (const Bytef *)"", 0, 6), Z_OK);
        assert_int_equal(inflate_guarded(inflater, empty, el, &gsrc, &gdst, 100, NULL, why,
                                         sizeof why), BRINE_ECORRUPT);
        assert_non_null(strstr(why, "expected"));
        for (uint64_t seed = 1; seed <= 300; seed++) {
            const size_t glen = 2 + (size_t)(seed * 37 % 500);
            fill_random(bad, glen, seed);
            bad[0] = 0x78;
            bad[1] = 0x9c;
            (void)inflate_guarded(inflater, bad, glen, &gsrc, &gdst, raw_len, NULL, why,
                                  sizeof why);
        }
    }
    guarded_free(&gdst);
    guarded_free(&gsrc);
    free(bad);
    free(out);
    free(scratch);
    free(sh);
    free(raw);
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/*
 * Not an assertion: the throughput of each codec and level on a 1 MiB chunk
 * of a smooth float64 field (the whole encode: shuffle, deflate, fletcher32),
 * and of each inflater on the stream (deflate undone, still shuffled).
 * Skipped unless BRINE_PRINT_THROUGHPUT is set: speed is measured by
 * benchmarks/, not by the test suite.
 */
static void test_codec_throughput(void **state)
{
    (void)state;
    if (!getenv("BRINE_PRINT_THROUGHPUT"))
        skip();
    const size_t n = 131072, raw_len = n * 8;
    uint8_t *raw = xmalloc(raw_len), *scratch = xmalloc(raw_len), *back = xmalloc(raw_len);
    uint8_t *out = xmalloc(brine_chunk__encode_bound(raw_len));
    fill_field((double *)(void *)raw, n);
    printf("codec       level  ratio  encode MB/s  inflate MB/s (zlib libdeflate isal)\n");
    for (size_t k = 0; k < NCODECS; k++) {
        for (size_t li = 0; li < 4; li++) {
            brine_chunk_codec c;
            if (brine_chunk__resolve(&c, all_codecs[k].codec, all_codecs[k].levels[li], NULL, 0))
                continue;
            size_t len = 0;
            uint32_t mask = 0;
            int reps = 0;
            const double t0 = seconds_now();
            double t1;
            do {
                assert_int_equal(brine_chunk__encode(raw, raw_len, 8, &c, scratch, out, &len,
                                                     &mask), 0);
                reps++;
            } while ((t1 = seconds_now()) - t0 < 0.15 || reps < 2);
            printf("%-10s  %5d  %5.3f  %11.0f ", brine_codec_name(c.codec), c.level,
                   (double)len / (double)raw_len, (double)raw_len * reps / (t1 - t0) / 1e6);
            for (size_t ii = 0; ii < NINFLATERS; ii++) {
                char why[160];
                if (mask || !brine_codec_available(all_inflaters[ii])) {
                    printf("  %10s", "-");
                    continue;
                }
                reps = 0;
                const double t2 = seconds_now();
                double t3;
                do {
                    assert_int_equal(brine_chunk__inflate_with(all_inflaters[ii], out, len - 4,
                                                               back, raw_len, why, sizeof why),
                                     0);
                    reps++;
                } while ((t3 = seconds_now()) - t2 < 0.1 || reps < 2);
                printf("  %10.0f", (double)raw_len * reps / (t3 - t2) / 1e6);
            }
            printf("\n");
        }
    }
    free(out);
    free(back);
    free(scratch);
    free(raw);
}

/* ---- reentrancy ----------------------------------------------------------- */

typedef struct thread_job {
    uint64_t seed;
    int failures;
} thread_job;

static void *codec_thread(void *arg)
{
    thread_job *job = arg;
    const size_t n = 20000, raw_len = n * 4;
    uint8_t *raw = malloc(raw_len), *scratch = malloc(raw_len), *back = malloc(raw_len);
    uint8_t *out = malloc(brine_chunk__encode_bound(raw_len));
    char why[100];
    if (!raw || !scratch || !back || !out) {
        job->failures++;
        goto done;
    }
    for (int round = 0; round < 40; round++) {
        /* Every codec in turn, at a level in its range; those not built in fall back to zlib. */
        static const brine_codec cycle[] = {BRINE_CODEC_ZLIB, BRINE_CODEC_LIBDEFLATE,
                                            BRINE_CODEC_ISAL, BRINE_CODEC_NONE,
                                            BRINE_CODEC_DEFAULT};
        static const int max_level[] = {9, 12, 3, 9, 12};
        const int k = round % 5;
        brine_chunk_codec c;
        size_t len;
        uint32_t mask;
        if (brine_chunk__resolve(&c, cycle[k], round % (max_level[k] + 1), NULL, 0))
            c = zlib_at(1 + round % 9);
        fill_smooth(raw, n, 4);
        if (round % 3 == 0)
            fill_random(raw + raw_len / 2, raw_len / 2, job->seed + (uint64_t)round);
        if (brine_chunk__encode(raw, raw_len, 4, &c, scratch, out, &len, &mask) ||
            brine_chunk__decode(out, len, brine_chunk__pipeline(&c), mask, 4, scratch, back,
                                raw_len, why, sizeof why) ||
            memcmp(back, raw, raw_len) != 0)
            job->failures++;
    }
done:
    free(out);
    free(back);
    free(scratch);
    free(raw);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    enum { N = 8 };
    pthread_t t[N];
    thread_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (thread_job){(uint64_t)i * 77, 0};
        assert_int_equal(pthread_create(&t[i], NULL, codec_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
}

/* ---- cross-checks against HDF5 ----------------------------------------------- */

/* The file type brine uses for an element size (format.md 2.3); 16 = complex128. */
static hid_t h5_type(size_t esize)
{
    hid_t t = H5I_INVALID_HID;
    switch (esize) {
    case 1:
        t = H5Tcopy(H5T_STD_U8LE);
        break;
    case 2:
        t = H5Tcopy(H5T_STD_I16LE);
        break;
    case 4:
        t = H5Tcopy(H5T_IEEE_F32LE);
        break;
    case 8:
        t = H5Tcopy(H5T_IEEE_F64LE);
        break;
    case 16:
        t = H5Tcreate(H5T_COMPOUND, 16);
        assert_true(t >= 0);
        assert_true(H5Tinsert(t, "r", 0, H5T_IEEE_F64LE) >= 0);
        assert_true(H5Tinsert(t, "i", 8, H5T_IEEE_F64LE) >= 0);
        break;
    default:
        fail();
    }
    assert_true(t >= 0);
    return t;
}

/* A chunked dataset with the given pipeline (BRINE_FILTER_* bits) and deflate level. */
static hid_t h5_create(hid_t file, const char *name, const brine_chunk_geom *g, unsigned pipeline,
                       int level)
{
    hsize_t dims[BRINE_MAX_NDIM], chunk[BRINE_MAX_NDIM];
    for (int d = 0; d < g->ndim; d++) {
        dims[d] = g->dims[d];
        chunk[d] = g->chunk[d];
    }
    const hid_t type = h5_type(g->esize);
    const hid_t space = H5Screate_simple(g->ndim, dims, NULL);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(space >= 0 && dcpl >= 0);
    assert_true(H5Pset_chunk(dcpl, g->ndim, chunk) >= 0);
    if (pipeline & BRINE_FILTER_SHUFFLE)
        assert_true(H5Pset_shuffle(dcpl) >= 0);
    if (pipeline & BRINE_FILTER_DEFLATE)
        assert_true(H5Pset_deflate(dcpl, (unsigned)level) >= 0);
    if (pipeline & BRINE_FILTER_FLETCHER32)
        assert_true(H5Pset_fletcher32(dcpl) >= 0);
    const hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(dset >= 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    return dset;
}

typedef struct h5_case {
    size_t esize;
    int ndim;
    uint64_t dims[3];
    uint64_t chunk[3];
    int level;
    int data; /* DATA_SMOOTH, DATA_RANDOM, or 3: smooth with a random stretch */
    unsigned pipeline;
} h5_case;

static const h5_case h5_cases[] = {
    {8, 2, {100, 70}, {32, 30}, 6, DATA_SMOOTH, ALL_FILTERS},
    {8, 2, {100, 70}, {32, 30}, 1, 3, ALL_FILTERS},
    {8, 2, {100, 70}, {32, 30}, 9, DATA_SMOOTH, ALL_FILTERS},
    {8, 2, {100, 70}, {32, 30}, 0, DATA_SMOOTH, ALL_FILTERS},
    {4, 1, {100000}, {30001}, 6, 3, ALL_FILTERS},
    {4, 3, {9, 10, 11}, {4, 10, 5}, 1, DATA_RANDOM, ALL_FILTERS},
    {2, 3, {9, 10, 11}, {2, 3, 11}, 6, DATA_SMOOTH, ALL_FILTERS},
    {1, 1, {1001}, {333}, 6, 3, ALL_FILTERS},
    {1, 2, {37, 41}, {7, 9}, 9, DATA_SMOOTH, ALL_FILTERS},
    {16, 2, {21, 33}, {8, 16}, 6, 3, ALL_FILTERS},
    {16, 1, {5000}, {1024}, 1, DATA_SMOOTH, ALL_FILTERS},
    /* fletcher32 alone over odd and even chunk lengths: HDF5's own checksums. */
    {1, 1, {100}, {7}, 0, DATA_RANDOM, BRINE_FILTER_FLETCHER32},
    {1, 1, {1000}, {999}, 0, DATA_RANDOM, BRINE_FILTER_FLETCHER32},
    {2, 1, {1000}, {77}, 0, DATA_RANDOM, BRINE_FILTER_FLETCHER32},
};

static uint8_t *case_data(const h5_case *c, const brine_chunk_geom *g, size_t *total)
{
    size_t nelem = 1;
    for (int d = 0; d < g->ndim; d++)
        nelem *= (size_t)g->dims[d];
    *total = nelem * g->esize;
    uint8_t *mem = xmalloc(*total);
    if (c->data == DATA_RANDOM) {
        fill_random(mem, *total, nelem);
    } else {
        fill_smooth(mem, nelem, g->esize);
        if (c->data == 3) {
            /* Noise over the whole first (interior) chunk: it cannot shrink. */
            uint8_t *noise = xmalloc(g->chunk_bytes);
            const uint64_t origin[BRINE_MAX_NDIM] = {0};
            fill_random(noise, g->chunk_bytes, 5);
            brine_chunk__scatter(g, mem, origin, noise);
            free(noise);
        }
    }
    return mem;
}

/*
 * (a) HDF5 writes with its own filters; every chunk read raw with
 * H5Dread_chunk decodes to the data, and encoding the same chunk gives
 * HDF5's stored bytes exactly, except where deflate grew the chunk: HDF5
 * keeps the larger stream, brine stores it uncompressed with the mask bit.
 */
static void test_hdf5_writes_brine_reads(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    for (size_t ci = 0; ci < sizeof h5_cases / sizeof h5_cases[0]; ci++) {
        const h5_case *c = &h5_cases[ci];
        brine_chunk_geom g;
        assert_int_equal(brine_chunk__geom(&g, c->ndim, c->dims, c->chunk, c->esize), 0);
        size_t total;
        uint8_t *mem = case_data(c, &g, &total);
        uint8_t *back = xmalloc(total);
        memset(back, 0x77, total);

        const hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(file >= 0);
        const hid_t dset = h5_create(file, "d", &g, c->pipeline, c->level);
        const hid_t type = h5_type(g.esize);
        assert_true(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, mem) >= 0);
        assert_true(H5Fflush(file, H5F_SCOPE_GLOBAL) >= 0);

        const size_t bound = brine_chunk__encode_bound(g.chunk_bytes);
        uint8_t *stored = xmalloc(bound), *mine = xmalloc(bound);
        uint8_t *raw = xmalloc(g.chunk_bytes), *scratch = xmalloc(g.chunk_bytes);
        uint8_t *decoded = xmalloc(g.chunk_bytes);
        size_t identical = 0, shrank = 0, grew = 0, odd = 0;
        for (uint64_t k = 0; k < g.nchunks; k++) {
            uint64_t off[BRINE_MAX_NDIM];
            hsize_t hoff[BRINE_MAX_NDIM], size = 0;
            uint32_t hmask = 0xffff;
            char why[160];
            brine_chunk__offset(&g, k, off);
            for (int d = 0; d < g.ndim; d++)
                hoff[d] = off[d];
            assert_true(H5Dget_chunk_storage_size(dset, hoff, &size) >= 0);
            assert_true(size > 0 && size <= bound);
            assert_true(H5Dread_chunk(dset, H5P_DEFAULT, hoff, &hmask, stored) >= 0);
            /* HDF5 never skips a filter here; its mask positions are those of the pipeline. */
            assert_int_equal(hmask, 0);
            odd += size % 2;

            assert_int_equal(brine_chunk__verify(stored, (size_t)size, c->pipeline, 0, why,
                                                 sizeof why), 0);
            assert_int_equal(brine_chunk__decode(stored, (size_t)size, c->pipeline, 0, g.esize,
                                                 scratch, decoded, g.chunk_bytes, why, sizeof why),
                             0);
            brine_chunk__gather(&g, mem, off, raw);
            /* HDF5 also pads its edge chunks with zeros. */
            assert_memory_equal(decoded, raw, g.chunk_bytes);
            brine_chunk__scatter(&g, back, off, decoded);

            if (c->pipeline != ALL_FILTERS)
                continue;
            size_t mine_len;
            uint32_t mask;
            const brine_chunk_codec zc = zlib_at(c->level);
            assert_int_equal(brine_chunk__encode(raw, g.chunk_bytes, g.esize, &zc, scratch, mine,
                                                 &mine_len, &mask), 0);
            if ((size_t)size - 4 < g.chunk_bytes) {
                /* HDF5's deflate shrank the chunk: brine's stored bytes are identical. */
                shrank++;
                assert_int_equal(mask, 0);
                assert_int_equal(mine_len, (size_t)size);
                assert_memory_equal(mine, stored, mine_len);
                identical++;
            } else {
                grew++;
                assert_int_equal(mask, BRINE_FILTER_DEFLATE);
                assert_int_equal(mine_len, g.chunk_bytes + 4);
            }
        }
        assert_memory_equal(back, mem, total);
        if (c->pipeline == ALL_FILTERS) {
            assert_int_equal(identical, shrank);
            assert_int_equal(shrank + grew, g.nchunks);
            /* Level 0 never shrinks; noise does not either (zero-padded edge chunks may). */
            if (c->level == 0)
                assert_int_equal(grew, g.nchunks);
            if (c->data != DATA_SMOOTH)
                assert_true(grew > 0);
            if (c->level > 0)
                assert_true(identical > 0);
        } else if (g.chunk_bytes % 2) {
            assert_true(odd > 0); /* checksums over odd lengths were checked */
        }
        free(decoded);
        free(scratch);
        free(raw);
        free(mine);
        free(stored);
        H5Tclose(type);
        H5Dclose(dset);
        H5Fclose(file);
        free(back);
        free(mem);
    }
    tu_rmtree(dir);
}

/*
 * (b) brine encodes with codec cc and writes with H5Dwrite_chunk, including
 * incompressible chunks (mask bit) and padded edge chunks; plain H5Dread,
 * after closing and reopening the file, returns the data bit for bit.
 */
static void brine_writes_case(const char *path, const h5_case *c, const brine_chunk_codec *cc)
{
    brine_chunk_geom g;
    assert_int_equal(brine_chunk__geom(&g, c->ndim, c->dims, c->chunk, c->esize), 0);
    size_t total;
    uint8_t *mem = case_data(c, &g, &total);

    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    /* HDF5's deflate takes client levels 0..9 only; the value does not matter to readers. */
    hid_t dset = h5_create(file, "d", &g, brine_chunk__pipeline(cc), cc->level > 9 ? 9 : cc->level);
    const size_t bound = brine_chunk__encode_bound(g.chunk_bytes);
    uint8_t *stored = xmalloc(bound), *raw = xmalloc(g.chunk_bytes);
    uint8_t *scratch = xmalloc(g.chunk_bytes);
    uint32_t *masks = xmalloc(g.nchunks * sizeof *masks);
    size_t masked = 0, edges = 0;
    for (uint64_t k = 0; k < g.nchunks; k++) {
        uint64_t off[BRINE_MAX_NDIM];
        hsize_t hoff[BRINE_MAX_NDIM];
        size_t len;
        brine_chunk__offset(&g, k, off);
        for (int d = 0; d < g.ndim; d++) {
            hoff[d] = off[d];
            edges += off[d] + g.chunk[d] > g.dims[d];
        }
        brine_chunk__gather(&g, mem, off, raw);
        assert_int_equal(brine_chunk__encode(raw, g.chunk_bytes, g.esize, cc, scratch, stored,
                                             &len, &masks[k]), 0);
        masked += masks[k] != 0;
        assert_true(H5Dwrite_chunk(dset, H5P_DEFAULT, masks[k], hoff, len, stored) >= 0);
    }
    if (cc->codec == BRINE_CODEC_NONE)
        assert_int_equal(masked, 0);
    else if (stores_only(cc) || c->data != DATA_SMOOTH)
        assert_true(masked > 0);
    H5Dclose(dset);
    assert_true(H5Fclose(file) >= 0);

    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    dset = H5Dopen2(file, "d", H5P_DEFAULT);
    assert_true(dset >= 0);
    const hid_t type = h5_type(g.esize);
    uint8_t *back = xmalloc(total);
    memset(back, 0x33, total);
    assert_true(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(back, mem, total);
    /* HDF5 kept each chunk's mask as written. */
    for (uint64_t k = 0; k < g.nchunks; k++) {
        uint64_t off[BRINE_MAX_NDIM];
        hsize_t hoff[BRINE_MAX_NDIM];
        uint32_t hmask = 0xffff;
        brine_chunk__offset(&g, k, off);
        for (int d = 0; d < g.ndim; d++)
            hoff[d] = off[d];
        assert_true(H5Dread_chunk(dset, H5P_DEFAULT, hoff, &hmask, stored) >= 0);
        assert_int_equal(hmask, masks[k]);
    }
    int dividing = 1;
    for (int d = 0; d < g.ndim; d++)
        dividing &= g.dims[d] % g.chunk[d] == 0;
    if (!dividing)
        assert_true(edges > 0); /* padded edge chunks were among those written */
    H5Tclose(type);
    H5Dclose(dset);
    H5Fclose(file);
    free(back);
    free(masks);
    free(scratch);
    free(raw);
    free(stored);
    free(mem);
}

static void test_brine_writes_hdf5_reads(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    char path[600];
    size_t written = 0;
    snprintf(path, sizeof path, "%s/b.h5", dir);
    for (size_t ci = 0; ci < sizeof h5_cases / sizeof h5_cases[0]; ci++) {
        const h5_case *c = &h5_cases[ci];
        /* Every codec built in on the full pipeline; NONE on the fletcher32-only cases. */
        const struct {
            brine_codec codec;
            int level;
        } variants[] = {{BRINE_CODEC_ZLIB, c->level},
                        {BRINE_CODEC_LIBDEFLATE, c->level},
                        {BRINE_CODEC_LIBDEFLATE, 12},
                        {BRINE_CODEC_ISAL, c->level % 4},
                        {BRINE_CODEC_NONE, 0}};
        for (size_t vi = 0; vi < sizeof variants / sizeof variants[0]; vi++) {
            brine_chunk_codec cc;
            if ((variants[vi].codec == BRINE_CODEC_NONE) != (c->pipeline != ALL_FILTERS) ||
                brine_chunk__resolve(&cc, variants[vi].codec, variants[vi].level, NULL, 0))
                continue;
            brine_writes_case(path, c, &cc);
            written++;
        }
    }
    assert_true(written >= sizeof h5_cases / sizeof h5_cases[0]);
    tu_rmtree(dir);
}

/*
 * A chunk encodes to the same bytes whatever was compressed before it (the
 * file must not depend on the thread count or on call order): encode X,
 * then a different chunk Y, then X again, with every codec and level.
 * ISA-L once kept stale hash tables in a reused level buffer and failed this.
 */
static void test_encode_is_deterministic(void **state)
{
    (void)state;
    const size_t n = 131072, raw_len = n * 8;
    double *x = xmalloc(raw_len), *y = xmalloc(raw_len);
    uint8_t *scratch = xmalloc(raw_len);
    const size_t bound = brine_chunk__encode_bound(raw_len);
    uint8_t *first = xmalloc(bound), *other = xmalloc(bound), *again = xmalloc(bound);
    uint64_t seed = 99;
    for (size_t i = 0; i < n; i++) {
        x[i] = sin((double)i * 1e-3) + 1e-7 * (double)(tu_rand(&seed) % 1000);
        y[i] = cos((double)i * 7e-3) * (double)(i % 97);
    }
    static const struct { brine_codec codec; int levels[4]; int nlevels; } cases[] = {
        {BRINE_CODEC_ZLIB, {1, 6, 9}, 3},
        {BRINE_CODEC_LIBDEFLATE, {1, 6, 12}, 3},
        {BRINE_CODEC_ISAL, {0, 1, 2, 3}, 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (!brine_codec_available(cases[k].codec))
            continue;
        for (int l = 0; l < cases[k].nlevels; l++) {
            brine_chunk_codec c;
            char why[200];
            assert_int_equal(brine_chunk__resolve(&c, cases[k].codec, cases[k].levels[l], why,
                                                  sizeof why), 0);
            /* Small chunks too: ISA-L sizes (and clears) its hash by the input. */
            static const size_t x_len[] = {96, 4096, 131072 * 8};
            for (size_t xl = 0; xl < sizeof x_len / sizeof x_len[0]; xl++) {
                size_t len1 = 0, len2 = 0, len3 = 0;
                uint32_t m1 = 0, m2 = 0, m3 = 0;
                assert_int_equal(brine_chunk__encode(x, x_len[xl], 8, &c, scratch, first, &len1, &m1), 0);
                for (int round = 0; round < 3; round++) {
                    assert_int_equal(brine_chunk__encode(y, raw_len, 8, &c, scratch, other, &len2, &m2), 0);
                    /* Leave garbage where the codec's next buffers are likely to come from. */
                    for (size_t junk = 4096; junk <= ((size_t)2 << 20); junk *= 2) {
                        void *p = malloc(junk + 64 * round);
                        assert_non_null(p);
                        memset(p, 0x5a + round, junk + 64 * round);
                        free(p);
                    }
                    assert_int_equal(brine_chunk__encode(x, x_len[xl], 8, &c, scratch, again, &len3, &m3), 0);
                    if (len1 != len3 || m1 != m3 || memcmp(first, again, len1) != 0) {
                        print_error("%s level %d: a %zu-byte chunk encoded to different bytes\n",
                                    brine_codec_name(cases[k].codec), cases[k].levels[l], x_len[xl]);
                        fail();
                    }
                }
            }
        }
    }
    free(again);
    free(other);
    free(first);
    free(scratch);
    free(y);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_gather_scatter),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_fletcher32),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_codec_round_trip),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_codec_none),
        cmocka_unit_test(test_inflater_corruption),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_encode_is_deterministic),
        cmocka_unit_test(test_hdf5_writes_brine_reads),
        cmocka_unit_test(test_brine_writes_hdf5_reads),
        cmocka_unit_test(test_codec_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
