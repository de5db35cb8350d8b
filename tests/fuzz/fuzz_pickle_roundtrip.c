/*
 * Fuzz target, the round trip: the input bytes are read as a sequence of
 * encoder calls (nested dicts, bools, ints, uints, floats, complex numbers,
 * strings, ndarrays), which are encoded (brine_pickle__enc_*), decoded
 * (brine_pickle__decode) and compared value by value, bit for bit.
 */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "format/pickle_decode.h"
#include "format/pickle_encode.h"
#include "fuzz_common.h"

enum { EV_BEGIN, EV_END, EV_KEY, EV_BOOL, EV_INT, EV_UINT, EV_FLOAT, EV_COMPLEX, EV_STR, EV_ARRAY };

typedef struct event {
    int kind;
    uint64_t a, b;   /* int/uint/bits of float/re,im bits; bool in a */
    char s[64];
    size_t len;
    int ndim, dtype;
    uint64_t shape[3];
    char order;
    int64_t buffer;
} event;

enum { MAX_EV = 4096 };
static event want[MAX_EV], got[MAX_EV];
static size_t nwant, ngot;

static uint64_t take(const uint8_t **p, const uint8_t *end, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | (*p < end ? *(*p)++ : 0);
    return v;
}

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void emit(const brine_pvalue *v);

static void emit_str(int kind, const char *s, size_t len)
{
    if (ngot >= MAX_EV)
        __builtin_trap();
    event *e = &got[ngot++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    if (len > sizeof e->s)
        __builtin_trap();
    memcpy(e->s, s, len);
    e->len = len;
}

static void emit(const brine_pvalue *v)
{
    if (ngot >= MAX_EV)
        __builtin_trap();
    event *e = &got[ngot];
    memset(e, 0, sizeof *e);
    switch (v->kind) {
    case BRINE_PV_DICT:
        e->kind = EV_BEGIN;
        ngot++;
        for (size_t i = 0; i < v->v.dict.n; i++) {
            const brine_pvalue *k = v->v.dict.keys[i];
            if (k->kind != BRINE_PV_STR)
                __builtin_trap();
            emit_str(EV_KEY, k->v.str.s, k->v.str.len);
            emit(v->v.dict.values[i]);
        }
        if (ngot >= MAX_EV)
            __builtin_trap();
        memset(&got[ngot], 0, sizeof got[ngot]);
        got[ngot++].kind = EV_END;
        return;
    case BRINE_PV_BOOL:
        e->kind = EV_BOOL;
        e->a = (uint64_t)v->v.b;
        break;
    case BRINE_PV_INT:
        e->kind = v->v.integer.negative ? EV_INT : EV_UINT;
        e->a = v->v.integer.negative ? (uint64_t)v->v.integer.i : v->v.integer.u;
        break;
    case BRINE_PV_FLOAT:
        e->kind = EV_FLOAT;
        e->a = bits_of(v->v.f);
        break;
    case BRINE_PV_COMPLEX:
        e->kind = EV_COMPLEX;
        e->a = bits_of(v->v.c.re);
        e->b = bits_of(v->v.c.im);
        break;
    case BRINE_PV_STR:
        emit_str(EV_STR, v->v.str.s, v->v.str.len);
        return;
    case BRINE_PV_NDARRAY:
        e->kind = EV_ARRAY;
        e->ndim = v->v.array.ndim;
        for (int i = 0; i < e->ndim && i < 3; i++)
            e->shape[i] = v->v.array.shape[i];
        e->dtype = v->v.array.dtype;
        e->order = v->v.array.order;
        e->buffer = v->v.array.buffer;
        break;
    default:
        __builtin_trap(); /* the encoder never writes anything else */
    }
    ngot++;
}

static void add(int kind, uint64_t a, uint64_t b)
{
    event *e = &want[nwant++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->a = a;
    e->b = b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    brine_pickle_enc enc;
    int depth = 1;
    unsigned keyno = 0;
    int64_t nbuf = 0;
    nwant = ngot = 0;
    brine_pickle__enc_init(&enc, NULL);
    brine_pickle__enc_dict_begin(&enc);
    add(EV_BEGIN, 0, 0);
    while (p < end && nwant < MAX_EV - 200) {
        const unsigned op = *p++ % 10;
        if (op == 1) { /* close the current dict */
            if (depth > 1) {
                brine_pickle__enc_dict_end(&enc);
                add(EV_END, 0, 0);
                depth--;
            }
            continue;
        }
        if (op == 0 && depth >= BRINE_PICKLE_MAX_DEPTH)
            continue;
        char key[16];
        const int kl = snprintf(key, sizeof key, "k%u", keyno++);
        brine_pickle__enc_key(&enc, key, (size_t)kl);
        event *k = &want[nwant++];
        memset(k, 0, sizeof *k);
        k->kind = EV_KEY;
        memcpy(k->s, key, (size_t)kl);
        k->len = (size_t)kl;
        switch (op) {
        case 0:
            brine_pickle__enc_dict_begin(&enc);
            add(EV_BEGIN, 0, 0);
            depth++;
            break;
        case 2: {
            const int v = (int)(take(&p, end, 1) & 1);
            brine_pickle__enc_bool(&enc, v);
            add(EV_BOOL, (uint64_t)v, 0);
            break;
        }
        case 3: {
            const int64_t v = (int64_t)take(&p, end, 8);
            brine_pickle__enc_int(&enc, v);
            add(v < 0 ? EV_INT : EV_UINT, (uint64_t)v, 0);
            break;
        }
        case 4: {
            const uint64_t v = take(&p, end, 8);
            brine_pickle__enc_uint(&enc, v);
            add(EV_UINT, v, 0);
            break;
        }
        case 5: {
            const uint64_t v = take(&p, end, 8);
            brine_pickle__enc_float(&enc, double_of(v));
            add(EV_FLOAT, v, 0);
            break;
        }
        case 6: {
            const uint64_t re = take(&p, end, 8), im = take(&p, end, 8);
            brine_pickle__enc_complex(&enc, double_of(re), double_of(im));
            add(EV_COMPLEX, re, im);
            break;
        }
        case 7: case 9: {
            event *e = &want[nwant++];
            memset(e, 0, sizeof *e);
            e->kind = EV_STR;
            e->len = (size_t)(take(&p, end, 1) % 64);
            for (size_t i = 0; i < e->len; i++)
                e->s[i] = (char)(0x20 + take(&p, end, 1) % 95); /* printable ASCII: valid UTF-8 */
            brine_pickle__enc_str(&enc, e->s, e->len);
            break;
        }
        case 8: {
            event *e = &want[nwant++];
            memset(e, 0, sizeof *e);
            e->kind = EV_ARRAY;
            e->ndim = 1 + (int)(take(&p, end, 1) % 3);
            for (int i = 0; i < e->ndim; i++)
                e->shape[i] = take(&p, end, 2);
            e->dtype = (int)(take(&p, end, 1) % BRINE_DTYPE_COUNT);
            e->order = take(&p, end, 1) & 1 ? 'F' : 'C';
            e->buffer = nbuf++;
            brine_pickle__enc_ndarray(&enc, e->ndim, e->shape, brine_dtype_str((brine_dtype)e->dtype),
                                      e->order);
            break;
        }
        }
    }
    while (depth-- > 0) {
        brine_pickle__enc_dict_end(&enc);
        add(EV_END, 0, 0);
    }
    uint8_t *stream = NULL;
    size_t len = 0;
    if (brine_pickle__enc_finish(&enc, &stream, &len) != 0)
        __builtin_trap(); /* well-formed calls cannot be misuse; malloc does not fail here */
    brine_error err;
    brine_pickle_doc *d = NULL;
    if (brine_pickle__decode(&d, stream, len, NULL, &err) != 0)
        __builtin_trap(); /* the decoder refuses what the encoder wrote */
    if (brine_pickle__nbuffers(d) != (uint64_t)nbuf)
        __builtin_trap();
    emit(brine_pickle__root(d));
    if (ngot != nwant)
        __builtin_trap();
    for (size_t i = 0; i < nwant; i++) {
        const event *w = &want[i], *g = &got[i];
        if (w->kind != g->kind || w->a != g->a || w->b != g->b || w->len != g->len ||
            memcmp(w->s, g->s, w->len) != 0)
            __builtin_trap();
        if (w->kind == EV_ARRAY &&
            (w->ndim != g->ndim || memcmp(w->shape, g->shape, sizeof w->shape) != 0 ||
             w->dtype != g->dtype || w->order != g->order || w->buffer != g->buffer))
            __builtin_trap();
    }
    brine_pickle__free(d);
    brine__free(NULL, stream);
    return 0;
}
