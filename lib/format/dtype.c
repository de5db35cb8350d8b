#include "dtype.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

static const brine_dtype_info table[BRINE_DTYPE_COUNT] = {
    [BRINE_BOOL] = {"|b1", "bool", 1, BRINE_KIND_BOOL},
    [BRINE_I8] = {"|i1", "int8", 1, BRINE_KIND_INT},
    [BRINE_I16] = {"<i2", "int16", 2, BRINE_KIND_INT},
    [BRINE_I32] = {"<i4", "int32", 4, BRINE_KIND_INT},
    [BRINE_I64] = {"<i8", "int64", 8, BRINE_KIND_INT},
    [BRINE_U8] = {"|u1", "uint8", 1, BRINE_KIND_UINT},
    [BRINE_U16] = {"<u2", "uint16", 2, BRINE_KIND_UINT},
    [BRINE_U32] = {"<u4", "uint32", 4, BRINE_KIND_UINT},
    [BRINE_U64] = {"<u8", "uint64", 8, BRINE_KIND_UINT},
    [BRINE_F32] = {"<f4", "float32", 4, BRINE_KIND_FLOAT},
    [BRINE_F64] = {"<f8", "float64", 8, BRINE_KIND_FLOAT},
    [BRINE_C64] = {"<c8", "complex64", 8, BRINE_KIND_COMPLEX},
    [BRINE_C128] = {"<c16", "complex128", 16, BRINE_KIND_COMPLEX},
};

const brine_dtype_info *brine_dtype__info(int dtype)
{
    if (dtype < 0 || dtype >= BRINE_DTYPE_COUNT)
        return NULL;
    return &table[dtype];
}

int brine_dtype__from_numpy(const char *s, size_t len)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        if (strlen(table[d].numpy) == len && memcmp(table[d].numpy, s, len) == 0)
            return d;
    }
    return -1;
}

const char *brine_dtype_str(brine_dtype dtype)
{
    const brine_dtype_info *i = brine_dtype__info((int)dtype);
    return i ? i->numpy : NULL;
}

size_t brine_dtype_size(brine_dtype dtype)
{
    const brine_dtype_info *i = brine_dtype__info((int)dtype);
    return i ? i->size : 0;
}

/* Rank of a kind on numpy's "same kind" ladder: a conversion never goes down it. */
static int kind_rank(char kind)
{
    switch (kind) {
    case BRINE_KIND_BOOL: return 0;
    case BRINE_KIND_UINT:
    case BRINE_KIND_INT: return 1;
    case BRINE_KIND_FLOAT: return 2;
    default: return 3; /* complex */
    }
}

int brine_dtype__can_convert(int from, int to)
{
    const brine_dtype_info *f = brine_dtype__info(from), *t = brine_dtype__info(to);
    if (!f || !t)
        return 0;
    if (from == to)
        return 1;
    int rf = kind_rank(f->kind), rt = kind_rank(t->kind);
    if (rf != rt)
        return rf < rt;
    if (rf != 1)
        return 1; /* float <-> float, complex <-> complex: rounding, as numpy */
    /* Integers: only widening, never to unsigned from signed, so no value can wrap. */
    if (f->kind == BRINE_KIND_INT && t->kind == BRINE_KIND_UINT)
        return 0;
    if (f->kind == t->kind)
        return t->size > f->size;
    return t->size > f->size; /* unsigned to a strictly wider signed */
}

/* One element as the widest value of its kind; memcpy loads allow any alignment. */
typedef struct wide {
    char kind; /* the source's, so that integers reach float32 rounded once, as in numpy */
    int64_t i;
    uint64_t u;
    double re, im;
} wide;

static wide load(int dtype, const unsigned char *p)
{
    wide w = {brine_dtype__info(dtype)->kind, 0, 0, 0, 0};
    switch (dtype) {
    case BRINE_BOOL: w.u = p[0] != 0; w.i = (int64_t)w.u; w.re = (double)w.u; break;
    case BRINE_I8: { int8_t x; memcpy(&x, p, 1); w.i = x; break; }
    case BRINE_I16: { int16_t x; memcpy(&x, p, 2); w.i = x; break; }
    case BRINE_I32: { int32_t x; memcpy(&x, p, 4); w.i = x; break; }
    case BRINE_I64: memcpy(&w.i, p, 8); break;
    case BRINE_U8: { uint8_t x; memcpy(&x, p, 1); w.u = x; break; }
    case BRINE_U16: { uint16_t x; memcpy(&x, p, 2); w.u = x; break; }
    case BRINE_U32: { uint32_t x; memcpy(&x, p, 4); w.u = x; break; }
    case BRINE_U64: memcpy(&w.u, p, 8); break;
    case BRINE_F32: { float x; memcpy(&x, p, 4); w.re = x; break; }
    case BRINE_F64: memcpy(&w.re, p, 8); break;
    case BRINE_C64: { float x[2]; memcpy(x, p, 8); w.re = x[0]; w.im = x[1]; break; }
    case BRINE_C128: { double x[2]; memcpy(x, p, 16); w.re = x[0]; w.im = x[1]; break; }
    }
    if (w.kind == BRINE_KIND_INT) {
        w.u = (uint64_t)w.i;
        w.re = (double)w.i;
    } else if (w.kind == BRINE_KIND_UINT) {
        w.i = (int64_t)w.u; /* only read for a wider signed target, where it fits */
        w.re = (double)w.u;
    }
    return w;
}

/* An integer rounded straight to float (through double it could round twice). */
static float as_float(wide w)
{
    if (w.kind == BRINE_KIND_INT)
        return (float)w.i;
    if (w.kind == BRINE_KIND_UINT)
        return (float)w.u;
    return (float)w.re;
}

static void store(int dtype, unsigned char *p, wide w)
{
    switch (dtype) {
    case BRINE_BOOL: p[0] = (unsigned char)(w.u != 0); break;
    case BRINE_I8: { int8_t x = (int8_t)w.i; memcpy(p, &x, 1); break; }
    case BRINE_I16: { int16_t x = (int16_t)w.i; memcpy(p, &x, 2); break; }
    case BRINE_I32: { int32_t x = (int32_t)w.i; memcpy(p, &x, 4); break; }
    case BRINE_I64: memcpy(p, &w.i, 8); break;
    case BRINE_U8: { uint8_t x = (uint8_t)w.u; memcpy(p, &x, 1); break; }
    case BRINE_U16: { uint16_t x = (uint16_t)w.u; memcpy(p, &x, 2); break; }
    case BRINE_U32: { uint32_t x = (uint32_t)w.u; memcpy(p, &x, 4); break; }
    case BRINE_U64: memcpy(p, &w.u, 8); break;
    case BRINE_F32: { float x = as_float(w); memcpy(p, &x, 4); break; }
    case BRINE_F64: memcpy(p, &w.re, 8); break;
    case BRINE_C64: { float x[2] = {as_float(w), (float)w.im}; memcpy(p, x, 8); break; }
    case BRINE_C128: { double x[2] = {w.re, w.im}; memcpy(p, x, 16); break; }
    }
}

void brine_dtype__convert(void *dst, int to, const void *src, int from, size_t n)
{
    assert(brine_dtype__can_convert(from, to));
    const size_t fs = brine_dtype__info(from)->size, ts = brine_dtype__info(to)->size;
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t k = 0; k < n; k++)
        store(to, d + k * ts, load(from, s + k * fs));
}
