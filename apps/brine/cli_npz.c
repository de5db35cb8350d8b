/*
 * brine export --format npz: a zip archive (stored, not compressed; zip64
 * where a size or an offset needs it) of one .npy file per variable, which
 * numpy.load reads.  Each array is streamed from the checkpoint into its
 * entry a slab at a time (brine_read_stream), its CRC-32 computed on the way
 * and written after the data (a data descriptor): the output never needs
 * seeking (a pipe works) and memory holds one slab, never a whole array.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cli.h"

#define U32_MAX_ 0xffffffffu

/* What the central directory needs of each entry. */
typedef struct zentry {
    char *name;
    uint32_t crc;
    uint64_t size;
    uint64_t offset;
} zentry;

typedef struct zip {
    FILE *f;
    uint64_t pos;
    zentry *v;
    size_t n, cap;
    int failed;
} zip;

static void put(zip *z, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, z->f) != n)
        z->failed = 1;
    z->pos += n;
}

static void le(zip *z, uint64_t v, int nbytes)
{
    uint8_t b[8];
    for (int i = 0; i < nbytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(z, b, (size_t)nbytes);
}

/*
 * Starts a stored entry of size bytes (known: the .npy header and the
 * array's bytes) whose CRC-32 is not known yet: general purpose bit 3, so
 * the local header holds zeros and a data descriptor after the data gives
 * the CRC and sizes (as the central directory does).
 */
static int entry_begin(zip *z, const char *name, uint64_t size)
{
    if (z->n == z->cap) {
        size_t cap = z->cap ? 2 * z->cap : 16;
        zentry *v = realloc(z->v, cap * sizeof *v);
        if (!v)
            return BRINE_ENOMEM;
        z->v = v;
        z->cap = cap;
    }
    zentry *e = &z->v[z->n];
    if (!(e->name = strdup(name)))
        return BRINE_ENOMEM;
    e->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    e->size = size;
    e->offset = z->pos;
    z->n++;
    const int big = size >= U32_MAX_;
    const size_t nlen = strlen(name);
    le(z, 0x04034b50, 4);
    le(z, big ? 45 : 20, 2);
    le(z, 0x0808, 2); /* data descriptor follows; UTF-8 names */
    le(z, 0, 2);      /* stored */
    le(z, 0, 2);      /* time 00:00:00 */
    le(z, (1 << 5) | 1, 2); /* date 1980-01-01 */
    le(z, 0, 4);      /* crc, sizes: in the data descriptor */
    le(z, big ? U32_MAX_ : 0, 4);
    le(z, big ? U32_MAX_ : 0, 4);
    le(z, nlen, 2);
    le(z, big ? 20 : 0, 2);
    put(z, name, nlen);
    if (big) {
        le(z, 0x0001, 2);
        le(z, 16, 2);
        le(z, 0, 8);
        le(z, 0, 8);
    }
    return 0;
}

/* Data of the entry begun last, CRC'd as it goes (zlib's crc32 takes uInt lengths). */
static void entry_data(zip *z, const void *data, size_t n)
{
    zentry *e = &z->v[z->n - 1];
    uLong crc = e->crc;
    for (size_t off = 0; off < n;) {
        const size_t piece = n - off > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - off;
        crc = crc32(crc, (const Bytef *)data + off, (uInt)piece);
        off += piece;
    }
    e->crc = (uint32_t)crc;
    put(z, data, n);
}

/* The data descriptor: CRC-32 and sizes (8 bytes each for a zip64 entry). */
static void entry_end(zip *z)
{
    const zentry *e = &z->v[z->n - 1];
    const int big = e->size >= U32_MAX_;
    le(z, 0x08074b50, 4);
    le(z, e->crc, 4);
    le(z, e->size, big ? 8 : 4);
    le(z, e->size, big ? 8 : 4);
}

static void central_directory(zip *z)
{
    const uint64_t start = z->pos;
    for (size_t i = 0; i < z->n; i++) {
        const zentry *e = &z->v[i];
        const int big_size = e->size >= U32_MAX_, big_off = e->offset >= U32_MAX_;
        const size_t nlen = strlen(e->name);
        const unsigned extra = (big_size ? 16u : 0u) + (big_off ? 8u : 0u);
        le(z, 0x02014b50, 4);
        le(z, (3 << 8) | 45, 2); /* made by: Unix, zip 4.5 */
        le(z, big_size || big_off ? 45 : 20, 2);
        le(z, 0x0808, 2);
        le(z, 0, 2);
        le(z, 0, 2);
        le(z, (1 << 5) | 1, 2);
        le(z, e->crc, 4);
        le(z, big_size ? U32_MAX_ : e->size, 4);
        le(z, big_size ? U32_MAX_ : e->size, 4);
        le(z, nlen, 2);
        le(z, extra ? extra + 4 : 0, 2);
        le(z, 0, 2); /* comment */
        le(z, 0, 2); /* disk */
        le(z, 0, 2); /* internal attributes */
        le(z, (uint64_t)0100644 << 16, 4);
        le(z, big_off ? U32_MAX_ : e->offset, 4);
        put(z, e->name, nlen);
        if (extra) {
            /* zip64 fields in their fixed order, only those whose header value is 0xffffffff. */
            le(z, 0x0001, 2);
            le(z, extra, 2);
            if (big_size) {
                le(z, e->size, 8);
                le(z, e->size, 8);
            }
            if (big_off)
                le(z, e->offset, 8);
        }
    }
    const uint64_t size = z->pos - start;
    if (z->n >= 0xffff || start >= U32_MAX_ || size >= U32_MAX_) {
        const uint64_t eocd64 = z->pos;
        le(z, 0x06064b50, 4);
        le(z, 44, 8);
        le(z, (3 << 8) | 45, 2);
        le(z, 45, 2);
        le(z, 0, 4);
        le(z, 0, 4);
        le(z, z->n, 8);
        le(z, z->n, 8);
        le(z, size, 8);
        le(z, start, 8);
        le(z, 0x07064b50, 4);
        le(z, 0, 4);
        le(z, eocd64, 8);
        le(z, 1, 4);
    }
    le(z, 0x06054b50, 4);
    le(z, 0, 2);
    le(z, 0, 2);
    le(z, z->n >= 0xffff ? 0xffff : z->n, 2);
    le(z, z->n >= 0xffff ? 0xffff : z->n, 2);
    le(z, size >= U32_MAX_ ? U32_MAX_ : size, 4);
    le(z, start >= U32_MAX_ ? U32_MAX_ : start, 4);
    le(z, 0, 2);
}

/* The .npy header (format 1.0) of an array: magic, length, the dict padded to 64 bytes. */
static size_t npy_header(char *out, size_t cap, const char *descr, int fortran, int ndim, const size_t *shape)
{
    char dict[512], shp[256];
    cli_shape_str(shp, sizeof shp, ndim, shape);
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                     fortran ? "True" : "False", shp);
    size_t total = 10 + (size_t)n + 1;
    const size_t padded = (total + 63) / 64 * 64;
    if (padded > cap)
        return 0;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    const size_t hlen = padded - 10;
    out[8] = (char)(hlen & 0xff);
    out[9] = (char)(hlen >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', padded - total);
    out[padded - 1] = '\n';
    return padded;
}

/* UTF-8 (valid: the decoder checked it) to UTF-32LE code units; returns their number. */
static size_t utf32(const unsigned char *s, size_t len, uint32_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t c = s[i];
        int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
        c &= extra ? (0x3fu >> extra) : 0x7fu;
        i++;
        for (int k = 0; k < extra && i < len; k++, i++)
            c = (c << 6) | (s[i] & 0x3fu);
        out[n] = c;
    }
    return n;
}

/* A scalar's or a string's value as (descr, data, bytes); data is malloc'ed. */
static int small_value(brine_reader *r, const brine_var_info *v, char *descr, size_t dcap, void **data,
                       size_t *bytes)
{
    *data = NULL;
    *bytes = 0;
    if (v->kind == BRINE_VAR_STRING) {
        char *s = malloc(v->nbytes + 1);
        uint32_t *u = malloc(4 * (v->nbytes + 1));
        int rc = s && u ? brine_read_string(r, v->name, s, v->nbytes + 1) : BRINE_ENOMEM;
        if (!rc) {
            size_t n = utf32((const unsigned char *)s, v->nbytes, u);
            if (n == 0)
                u[n++] = 0; /* numpy's '' is '<U1' */
            snprintf(descr, dcap, "<U%zu", n);
            *data = u;
            *bytes = 4 * n;
            u = NULL;
        }
        free(s);
        free(u);
        return rc;
    }
    snprintf(descr, dcap, "%s", brine_dtype_str((brine_dtype)v->dtype));
    const size_t n = brine_dtype_size((brine_dtype)v->dtype);
    if (!(*data = malloc(n)))
        return BRINE_ENOMEM;
    *bytes = n;
    return brine_read(r, v->name, (brine_dtype)v->dtype, *data, 0, NULL, 0);
}

/* brine_read_stream's sink: the array's bytes into the current entry. */
static int array_piece(void *ctx, const void *data, size_t n)
{
    zip *z = ctx;
    entry_data(z, data, n);
    return z->failed ? BRINE_EIO : 0;
}

int cli_write_npz(brine_reader *r, FILE *f, const char *out_name)
{
    int rc = 0;
    zip z = {f, 0, NULL, 0, 0, 0};
    for (size_t i = 0; i < brine_reader_count(r) && !rc; i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        char descr[32], head[1024], name[4096];
        void *data = NULL;
        size_t bytes = 0;
        const int arr = v.kind == BRINE_VAR_ARRAY;
        if (v.kind == BRINE_VAR_OTHER) {
            cli_error(CLI_TROUBLE, "export", "%s: variable '%s' is a value brine cannot read, so it "
                      "cannot be exported", brine_reader_path(r), v.name);
            rc = BRINE_EINVAL;
            break;
        }
        if (arr) {
            snprintf(descr, sizeof descr, "%s", brine_dtype_str((brine_dtype)v.dtype));
            bytes = v.nbytes;
        } else if ((rc = small_value(r, &v, descr, sizeof descr, &data, &bytes))) {
            cli_error(cli_exit_of(rc), "export", "%s", rc == BRINE_ENOMEM ? "out of memory" : brine_reader_errmsg(r));
            free(data);
            break;
        }
        const size_t hlen = npy_header(head, sizeof head, descr, arr && (v.flags & BRINE_FORTRAN_ORDER),
                                       arr ? v.ndim : 0, v.shape);
        snprintf(name, sizeof name, "%s.npy", v.name);
        if (!hlen || (rc = entry_begin(&z, name, hlen + bytes))) {
            rc = rc ? rc : BRINE_EINVAL;
            cli_error(CLI_TROUBLE, "export", "%s: cannot write the .npy of '%s'", out_name, v.name);
            free(data);
            break;
        }
        entry_data(&z, head, hlen);
        if (arr) {
            /* Streamed from the file a slab at a time: memory holds a slab, not the array. */
            if ((rc = brine_read_stream(r, v.name, array_piece, &z)) && !z.failed)
                cli_error(cli_exit_of(rc), "export", "%s", brine_reader_errmsg(r));
        } else {
            entry_data(&z, data, bytes);
        }
        free(data);
        if (!rc)
            entry_end(&z);
        if (!rc && z.failed)
            rc = BRINE_EIO;
    }
    if (!rc) {
        central_directory(&z);
        if (fflush(f) != 0)
            z.failed = 1;
    }
    if (z.failed) {
        rc = BRINE_EIO;
        cli_error(CLI_TROUBLE, "export", "writing %s failed: %s", out_name, strerror(errno));
    }
    for (size_t i = 0; i < z.n; i++)
        free(z.v[i].name);
    free(z.v);
    return rc;
}
