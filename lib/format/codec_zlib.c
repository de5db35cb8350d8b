/* zlib behind chunk_codec.c: always built in, and the reference HDF5's own deflate filter uses. */
#include "codec_backend.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

/* zlib's next_in is then const, so const input needs no cast. */
#define ZLIB_CONST
#include <zlib.h>

int brine_codec__zlib_deflate(int level, const uint8_t *src, size_t len, uint8_t *dst,
                              size_t cap, size_t *out_len)
{
    int rc = 0;
    z_stream zs;
    int zinit = 0;
    int zrc;

    /* chunk_codec.c keeps chunks below 4 GiB, so both lengths fit a uInt. */
    assert(level >= 0 && level <= 9 && len <= UINT_MAX && cap <= UINT_MAX);
    *out_len = 0;
    /*
     * deflateInit + one deflate(Z_FINISH) is what compress2 does, and
     * compress2 is what HDF5's deflate filter calls: the same bytes exactly.
     */
    memset(&zs, 0, sizeof zs);
    zrc = deflateInit(&zs, level);
    if (zrc != Z_OK) {
        /* Z_STREAM_ERROR would be a bad level, which resolve() rules out. */
        assert(zrc == Z_MEM_ERROR);
        rc = BRINE_ENOMEM;
        goto done;
    }
    zinit = 1;
    zs.next_in = src;
    zs.avail_in = (uInt)len;
    zs.next_out = dst;
    /*
     * Only cap bytes of room: deflate stops early when the stream would not
     * fit.  Output space does not change zlib's stream, only when it is flushed.
     */
    zs.avail_out = (uInt)cap;
    zrc = deflate(&zs, Z_FINISH);
    if (zrc == Z_STREAM_END) {
        *out_len = cap - zs.avail_out;
    } else {
        /* Z_OK or Z_BUF_ERROR: out of room.  Z_STREAM_ERROR: a state this code never creates. */
        assert(zrc == Z_OK || zrc == Z_BUF_ERROR);
    }
done:
    if (zinit)
        deflateEnd(&zs);
    return rc;
}

void brine_codec__zlib_inflate(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                               brine_inflate_result *res)
{
    z_stream zs;
    int zinit = 0;
    int zrc;

    assert(src_len <= UINT_MAX && dst_len <= UINT_MAX);
    memset(res, 0, sizeof *res);
    memset(&zs, 0, sizeof zs);
    zrc = inflateInit(&zs);
    if (zrc != Z_OK) {
        res->status = zrc == Z_MEM_ERROR ? BRINE_INFLATE_NOMEM : BRINE_INFLATE_BAD;
        res->detail = "zlib's inflateInit failed";
        goto done;
    }
    zinit = 1;
    zs.next_in = src;
    zs.avail_in = (uInt)src_len;
    zs.next_out = dst;
    zs.avail_out = (uInt)dst_len;
    /* Z_FINISH with room for all of it lets zlib inflate without its sliding window. */
    zrc = inflate(&zs, Z_FINISH);
    res->produced = dst_len - zs.avail_out;
    switch (zrc) {
    case Z_STREAM_END:
        res->status = res->produced == dst_len ? BRINE_INFLATE_OK : BRINE_INFLATE_SHORT;
        res->unused_in = zs.avail_in;
        break;
    case Z_OK:
    case Z_BUF_ERROR:
        /* Stopped short of the end: out of output room with input left, or out of input. */
        res->status = zs.avail_out == 0 && zs.avail_in > 0 ? BRINE_INFLATE_OVERFLOW
                                                           : BRINE_INFLATE_TRUNCATED;
        break;
    case Z_MEM_ERROR:
        res->status = BRINE_INFLATE_NOMEM;
        break;
    case Z_NEED_DICT:
        res->status = BRINE_INFLATE_BAD;
        res->detail = "a preset dictionary is required";
        break;
    default: /* Z_DATA_ERROR */
        res->status = BRINE_INFLATE_BAD;
        /* zlib's messages are string literals: they outlive inflateEnd. */
        res->detail = zs.msg ? zs.msg : "zlib reports a data error";
        break;
    }
done:
    if (zinit)
        inflateEnd(&zs);
}
