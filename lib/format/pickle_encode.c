#include "pickle_encode.h"

#include <string.h>

#include "../common/alloc.h"
#include "brine.h"
#include "pickle_opcodes.h"

static void put_le(brine_pickle_enc *e, uint64_t v, int nbytes)
{
    uint8_t b[8];
    for (int i = 0; i < nbytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    brine_buf__append(&e->out, b, (size_t)nbytes);
}

static void put_op(brine_pickle_enc *e, int op)
{
    brine_buf__put_u8(&e->out, (uint8_t)op);
}

void brine_pickle__enc_init(brine_pickle_enc *e, const brine_allocator *a)
{
    memset(e, 0, sizeof *e);
    brine_buf__init(&e->out, a);
    put_op(e, OP_PROTO);
    put_op(e, 5);
}

void brine_pickle__enc_dict_begin(brine_pickle_enc *e)
{
    put_op(e, OP_EMPTY_DICT);
    /* Deeper nesting than we can track is the caller's error, reported by
     * enc_finish rather than asserted: a state tree comes from user names. */
    if (e->depth >= BRINE_PICKLE_MAX_DEPTH) {
        e->misuse = 1;
        return;
    }
    e->has_items[e->depth++] = 0;
}

void brine_pickle__enc_key(brine_pickle_enc *e, const char *s, size_t len)
{
    if (e->depth <= 0) {
        e->misuse = 1;
        return;
    }
    /* The MARK of SETITEMS is opened lazily so that an empty dict is only
     * EMPTY_DICT, as CPython writes it. */
    if (!e->has_items[e->depth - 1]) {
        put_op(e, OP_MARK);
        e->has_items[e->depth - 1] = 1;
    }
    brine_pickle__enc_str(e, s, len);
}

void brine_pickle__enc_dict_end(brine_pickle_enc *e)
{
    if (e->depth <= 0) {
        e->misuse = 1;
        return;
    }
    if (e->has_items[--e->depth])
        put_op(e, OP_SETITEMS);
}

void brine_pickle__enc_bool(brine_pickle_enc *e, int v)
{
    put_op(e, v ? OP_NEWTRUE : OP_NEWFALSE);
}

/* LONG1 with the minimal two's complement little-endian bytes of the 72-bit
 * value whose low 64 bits are lo and whose sign extension is the byte hi. */
static void put_long1(brine_pickle_enc *e, uint64_t lo, uint8_t hi)
{
    uint8_t b[9];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(lo >> (8 * i));
    b[8] = hi;
    size_t n = 9;
    /* Drop a top byte that only repeats the sign of the byte below it. */
    while (n > 1 && ((b[n - 1] == 0x00 && !(b[n - 2] & 0x80)) ||
                     (b[n - 1] == 0xff && (b[n - 2] & 0x80))))
        n--;
    put_op(e, OP_LONG1);
    put_op(e, (int)n);
    brine_buf__append(&e->out, b, n);
}

void brine_pickle__enc_int(brine_pickle_enc *e, int64_t v)
{
    /* The same choice as CPython's save_long, so streams compare equal. */
    if (v >= 0 && v <= 0xff) {
        put_op(e, OP_BININT1);
        put_le(e, (uint64_t)v, 1);
    } else if (v >= 0 && v <= 0xffff) {
        put_op(e, OP_BININT2);
        put_le(e, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        put_op(e, OP_BININT);
        put_le(e, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        put_long1(e, (uint64_t)v, v < 0 ? 0xff : 0x00);
    }
}

void brine_pickle__enc_uint(brine_pickle_enc *e, uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        brine_pickle__enc_int(e, (int64_t)v);
    else
        put_long1(e, v, 0x00);
}

void brine_pickle__enc_float(brine_pickle_enc *e, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(bits >> (56 - 8 * i)); /* BINFLOAT is big-endian */
    put_op(e, OP_BINFLOAT);
    brine_buf__append(&e->out, b, sizeof b);
}

static void put_global(brine_pickle_enc *e, const char *module_nl_name_nl)
{
    put_op(e, OP_GLOBAL);
    brine_buf__append(&e->out, module_nl_name_nl, strlen(module_nl_name_nl));
}

void brine_pickle__enc_complex(brine_pickle_enc *e, double re, double im)
{
    put_global(e, "builtins\ncomplex\n");
    brine_pickle__enc_float(e, re);
    brine_pickle__enc_float(e, im);
    put_op(e, OP_TUPLE2);
    put_op(e, OP_REDUCE);
}

void brine_pickle__enc_str(brine_pickle_enc *e, const char *s, size_t len)
{
    if (len < 256) {
        put_op(e, OP_SHORT_BINUNICODE);
        put_le(e, len, 1);
    } else if ((uint64_t)len <= UINT32_MAX) {
        put_op(e, OP_BINUNICODE);
        put_le(e, len, 4);
    } else {
        put_op(e, OP_BINUNICODE8); /* as CPython, for strings of 4 GiB and more */
        put_le(e, len, 8);
    }
    brine_buf__append(&e->out, s, len);
}

void brine_pickle__enc_ndarray_begin(brine_pickle_enc *e, int ndim, const uint64_t *shape,
                                     const char *dtype_str)
{
    if (ndim < 0 || ndim > 8 || (ndim > 0 && !shape) || !dtype_str) {
        e->misuse = 1;
        return;
    }
    put_global(e, "numpy\nndarray\n");
    put_op(e, OP_MARK);
    /* The shape tuple as CPython writes a tuple of that length. */
    if (ndim == 0) {
        put_op(e, OP_EMPTY_TUPLE);
    } else {
        if (ndim > 3)
            put_op(e, OP_MARK);
        for (int i = 0; i < ndim; i++)
            brine_pickle__enc_uint(e, shape[i]);
        put_op(e, ndim == 1 ? OP_TUPLE1 : ndim == 2 ? OP_TUPLE2 : ndim == 3 ? OP_TUPLE3 : OP_TUPLE);
    }
    brine_pickle__enc_str(e, dtype_str, strlen(dtype_str));
}

void brine_pickle__enc_ndarray_end(brine_pickle_enc *e, char order)
{
    if (order != 'C' && order != 'F') {
        e->misuse = 1;
        return;
    }
    put_op(e, OP_BININT1);
    put_op(e, 0);
    put_op(e, OP_NONE);
    brine_pickle__enc_str(e, &order, 1);
    put_op(e, OP_TUPLE);
    put_op(e, OP_REDUCE);
}

void brine_pickle__enc_ndarray(brine_pickle_enc *e, int ndim, const uint64_t *shape,
                               const char *dtype_str, char order)
{
    brine_pickle__enc_ndarray_begin(e, ndim, shape, dtype_str);
    put_op(e, OP_NEXT_BUFFER);
    e->nbuffers++;
    brine_pickle__enc_ndarray_end(e, order);
}

void brine_pickle__enc_bytearray8_header(brine_pickle_enc *e, uint64_t n)
{
    put_op(e, OP_BYTEARRAY8);
    put_le(e, n, 8);
}

int brine_pickle__enc_finish(brine_pickle_enc *e, uint8_t **out, size_t *len)
{
    int rc = 0;
    *out = NULL;
    *len = 0;
    put_op(e, OP_STOP);
    if (e->out.failed) {
        rc = BRINE_ENOMEM;
        goto done;
    }
    if (e->misuse || e->depth != 0) {
        rc = BRINE_EINVAL;
        goto done;
    }
    *out = e->out.data;
    *len = e->out.len;
    /* The caller owns the bytes now; forget them without freeing. */
    brine_buf__init(&e->out, e->out.alloc);
done:
    if (rc != 0)
        brine_buf__free(&e->out);
    return rc;
}

void brine_pickle__enc_abort(brine_pickle_enc *e)
{
    brine_buf__free(&e->out);
}
