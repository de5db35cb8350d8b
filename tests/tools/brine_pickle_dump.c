/*
 * brine_pickle_dump [FILE]: decodes a pickle stream (FILE, or stdin when
 * absent or "-") with brine's strict decoder (brine_pickle__decode) and
 * prints its value tree in a canonical, deterministic text form, one line per
 * value in depth-first order, so that tests can compare it with what Python
 * computes from the pickled objects (tests/python/test_numpy_streams.py).
 *
 *   <path> <value>
 *
 * path: "$" for the stream's value, then "[i]" for item i of a tuple or
 * list and "{key}" for the value of a dict key (key in the compact form
 * below).  value:
 *
 *   none | bool 0|1 | int <decimal> | float <16 hex digits of the IEEE bits>
 *   complex <bits> <bits> | str|bytes|bytearray len=<n> hex=<hex>
 *   tuple|list|dict n=<items> | buffer <index>
 *   ndarray dtype=<name> shape=(<d>,...) order=C|F buffer=<index>
 *   ndarray dtype=<name> shape=(...) order=C|F inband len=<n> crc32=<8 hex> [hex=<hex>]
 *
 * a numpy scalar's value ends with " np=<dtype name>"; in-band array data is
 * printed in hex up to 4096 bytes.  Dict keys: none, bool:<b>, int:<v>,
 * float:<bits>, complex:<bits>:<bits>, str:<hex>, bytes:<hex>, tuple:(<k>,...),
 * with "@<dtype name>" after a numpy scalar's.  The last line is
 * "buffers <n>", the number of NEXT_BUFFER opcodes.
 *
 * A value shared through the memo is printed wherever it appears; a stream
 * whose tree would print more than MAX_LINES lines that way is an error.
 *
 * Exit status: 0 when the stream decodes; 1 when brine refuses it (its error
 * message on stderr); 2 for a usage or I/O error, or a tree too large to print.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "format/dtype.h"
#include "format/pickle_decode.h"

#define MAX_INBAND_HEX 4096
#define MAX_LINES 10000000

static unsigned long lines;

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_hex(FILE *out, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", s[i]);
}

static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static const char *dtype_name(int dt)
{
    const brine_dtype_info *info = brine_dtype__info(dt);
    return info ? info->name : "?";
}

static void put_int(FILE *out, const brine_pvalue *v)
{
    if (v->v.integer.negative)
        fprintf(out, "%" PRId64, v->v.integer.i);
    else
        fprintf(out, "%" PRIu64, v->v.integer.u);
}

/* A dict key, compact and unambiguous. */
static void put_key(FILE *out, const brine_pvalue *k)
{
    switch (k->kind) {
    case BRINE_PV_NONE: fputs("none", out); break;
    case BRINE_PV_BOOL: fprintf(out, "bool:%d", k->v.b); break;
    case BRINE_PV_INT: fputs("int:", out); put_int(out, k); break;
    case BRINE_PV_FLOAT: fprintf(out, "float:%016" PRIx64, bits_of(k->v.f)); break;
    case BRINE_PV_COMPLEX:
        fprintf(out, "complex:%016" PRIx64 ":%016" PRIx64, bits_of(k->v.c.re), bits_of(k->v.c.im));
        break;
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
        fputs(k->kind == BRINE_PV_STR ? "str:" : "bytes:", out);
        put_hex(out, k->v.str.s, k->v.str.len);
        break;
    case BRINE_PV_TUPLE:
        fputs("tuple:(", out);
        for (size_t i = 0; i < k->v.seq.n; i++) {
            if (i)
                fputc(',', out);
            put_key(out, k->v.seq.items[i]);
        }
        fputc(')', out);
        break;
    default: fprintf(out, "kind%d", (int)k->kind); break;
    }
    if (k->has_np_dtype)
        fprintf(out, "@%s", dtype_name(k->np_dtype));
}

static void dump(FILE *out, const brine_pvalue *v, char *path, size_t plen, size_t pcap)
{
    if (++lines > MAX_LINES) {
        fprintf(stderr, "brine_pickle_dump: more than %d lines: shared values make the tree too large to print\n",
                MAX_LINES);
        exit(2);
    }
    fprintf(out, "%.*s ", (int)plen, path);
    switch (v->kind) {
    case BRINE_PV_NONE: fputs("none", out); break;
    case BRINE_PV_BOOL: fprintf(out, "bool %d", v->v.b); break;
    case BRINE_PV_INT: fputs("int ", out); put_int(out, v); break;
    case BRINE_PV_FLOAT: fprintf(out, "float %016" PRIx64, bits_of(v->v.f)); break;
    case BRINE_PV_COMPLEX:
        fprintf(out, "complex %016" PRIx64 " %016" PRIx64, bits_of(v->v.c.re), bits_of(v->v.c.im));
        break;
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
    case BRINE_PV_BYTEARRAY:
        fprintf(out, "%s len=%zu hex=",
                v->kind == BRINE_PV_STR ? "str" : v->kind == BRINE_PV_BYTES ? "bytes" : "bytearray", v->v.str.len);
        put_hex(out, v->v.str.s, v->v.str.len);
        break;
    case BRINE_PV_TUPLE:
    case BRINE_PV_LIST:
        fprintf(out, "%s n=%zu", v->kind == BRINE_PV_TUPLE ? "tuple" : "list", v->v.seq.n);
        break;
    case BRINE_PV_DICT: fprintf(out, "dict n=%zu", v->v.dict.n); break;
    case BRINE_PV_BUFFER: fprintf(out, "buffer %" PRIu64, v->v.buffer); break;
    case BRINE_PV_NDARRAY:
        fprintf(out, "ndarray dtype=%s shape=(", dtype_name(v->v.array.dtype));
        for (int i = 0; i < v->v.array.ndim; i++)
            fprintf(out, "%s%" PRIu64, i ? "," : "", v->v.array.shape[i]);
        fprintf(out, ") order=%c ", v->v.array.order);
        if (v->v.array.buffer >= 0) {
            fprintf(out, "buffer=%" PRId64, v->v.array.buffer);
        } else {
            fprintf(out, "inband len=%zu crc32=%08" PRIx32, v->v.array.inband_len,
                    crc32_of(v->v.array.inband, v->v.array.inband_len));
            if (v->v.array.inband_len <= MAX_INBAND_HEX) {
                fputs(" hex=", out);
                put_hex(out, v->v.array.inband, v->v.array.inband_len);
            }
        }
        break;
    default: fprintf(out, "internal kind %d", (int)v->kind); break; /* never in a finished tree */
    }
    if (v->has_np_dtype)
        fprintf(out, " np=%s", dtype_name(v->np_dtype));
    fputc('\n', out);

    /* Children: the path grows in place; keys may be long, so it is reallocated as needed. */
    size_t n = v->kind == BRINE_PV_TUPLE || v->kind == BRINE_PV_LIST ? v->v.seq.n
               : v->kind == BRINE_PV_DICT                            ? v->v.dict.n
                                                                      : 0;
    for (size_t i = 0; i < n; i++) {
        char *seg = NULL;
        size_t seglen = 0;
        FILE *m = open_memstream(&seg, &seglen);
        if (!m) {
            perror("brine_pickle_dump: open_memstream");
            exit(2);
        }
        if (v->kind == BRINE_PV_DICT) {
            fputc('{', m);
            put_key(m, v->v.dict.keys[i]);
            fputc('}', m);
        } else {
            fprintf(m, "[%zu]", i);
        }
        fclose(m);
        char *p = path;
        size_t cap = pcap;
        if (plen + seglen + 1 > cap) {
            cap = (plen + seglen + 1) * 2;
            if (!(p = malloc(cap))) {
                fputs("brine_pickle_dump: out of memory\n", stderr);
                exit(2);
            }
            memcpy(p, path, plen);
        }
        memcpy(p + plen, seg, seglen);
        free(seg);
        dump(out, v->kind == BRINE_PV_DICT ? v->v.dict.values[i] : v->v.seq.items[i], p, plen + seglen, cap);
        if (p != path)
            free(p);
    }
}

static uint8_t *read_all(FILE *in, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap)
            break;
        uint8_t *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    if (buf && ferror(in)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(stderr, "usage: %s [FILE]   (a pickle stream; stdin when FILE is absent or -)\n", argv[0]);
        return 2;
    }
    FILE *in = stdin;
    if (argc == 2 && strcmp(argv[1], "-") != 0 && !(in = fopen(argv[1], "rb"))) {
        fprintf(stderr, "brine_pickle_dump: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    size_t len = 0;
    uint8_t *stream = read_all(in, &len);
    if (in != stdin)
        fclose(in);
    if (!stream) {
        fprintf(stderr, "brine_pickle_dump: cannot read the stream\n");
        return 2;
    }
    brine_error err;
    brine_pickle_doc *doc = NULL;
    if (brine_pickle__decode(&doc, stream, len, NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(stream);
        return 1;
    }
    char path[256] = "$";
    dump(stdout, brine_pickle__root(doc), path, 1, sizeof path);
    printf("buffers %" PRIu64 "\n", brine_pickle__nbuffers(doc));
    brine_pickle__free(doc);
    free(stream);
    return fflush(stdout) == 0 ? 0 : 2;
}
