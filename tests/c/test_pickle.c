/*
 * Pickle encoder and strict decoder (lib/format/pickle_{encode,decode}.c):
 * round trips, exact bytes, streams written by CPython and numpy (protocols 0
 * to 5), text opcodes, numpy's reconstructors, truncations, random mutations,
 * refused globals and opcodes, allocation failure injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/error.h"
#include "format/dtype.h"
#include "format/pickle_decode.h"
#include "format/pickle_encode.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Helpers */

/* An allocator that counts live blocks and fails the fail_at-th call (1-based; 0 = never). */
typedef struct tally {
    long calls;
    long fail_at;
    long live;
} tally;

static void *tally_alloc(void *ctx, size_t n)
{
    tally *t = ctx;
    t->calls++;
    if (t->fail_at && t->calls == t->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        t->live++;
    return p;
}

static void tally_free(void *ctx, void *p)
{
    tally *t = ctx;
    t->live--;
    free(p);
}

/* A growable byte string for hand-made streams. */
typedef struct bytes {
    uint8_t data[1 << 16];
    size_t len;
} bytes;

static void b_add(bytes *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof b->data);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void b_u8(bytes *b, int v)
{
    uint8_t c = (uint8_t)v;
    b_add(b, &c, 1);
}

static void b_le(bytes *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b_u8(b, (int)((v >> (8 * i)) & 0xff));
}

static void b_str(bytes *b, const char *s)
{
    b_add(b, s, strlen(s));
}

/* SHORT_BINUNICODE s */
static void b_sbu(bytes *b, const char *s)
{
    b_u8(b, 0x8c);
    b_u8(b, (int)strlen(s));
    b_str(b, s);
}

static int decode(brine_pickle_doc **doc, const uint8_t *s, size_t n, brine_error *err)
{
    brine__error_clear(err);
    int rc = brine_pickle__decode(doc, s, n, NULL, err);
    if (rc == 0)
        assert_non_null(*doc);
    else
        assert_null(*doc);
    return rc;
}

static brine_pickle_doc *decode_ok(const uint8_t *s, size_t n)
{
    brine_error err;
    brine_pickle_doc *doc = NULL;
    int rc = decode(&doc, s, n, &err);
    if (rc != 0)
        fail_msg("decode failed (%d): %s", rc, err.msg);
    return doc;
}

static void expect_corrupt(const uint8_t *s, size_t n, const char *msg_part)
{
    brine_error err;
    brine_pickle_doc *doc = NULL;
    int rc = decode(&doc, s, n, &err);
    if (rc != BRINE_ECORRUPT)
        fail_msg("expected ECORRUPT (containing \"%s\"), got %d: %s", msg_part ? msg_part : "", rc, err.msg);
    assert_int_equal(err.code, BRINE_ECORRUPT);
    if (msg_part && !strstr(err.msg, msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg_part);
}

static uint8_t *enc_finish(brine_pickle_enc *e, size_t *len)
{
    uint8_t *out = NULL;
    assert_int_equal(brine_pickle__enc_finish(e, &out, len), 0);
    assert_non_null(out);
    return out;
}

static const brine_pvalue *get(const brine_pickle_doc *doc, const char *name)
{
    const brine_pvalue *v = brine_pickle__lookup(brine_pickle__root(doc), name);
    if (!v)
        fail_msg("no value at '%s'", name);
    return v;
}

static void assert_int_value(const brine_pvalue *v, int64_t want)
{
    assert_int_equal(v->kind, BRINE_PV_INT);
    assert_int_equal(v->v.integer.negative, want < 0);
    assert_true(v->v.integer.i == want);
    if (want >= 0)
        assert_true(v->v.integer.u == (uint64_t)want);
}

static void assert_str_value(const brine_pvalue *v, const char *want, size_t len)
{
    assert_int_equal(v->kind, BRINE_PV_STR);
    assert_int_equal(v->v.str.len, len);
    assert_memory_equal(v->v.str.s, want, len);
}

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Touches every byte of a decoded tree (so ASan sees any bad pointer); returns a checksum. */
static uint64_t walk(const brine_pvalue *v, unsigned depth)
{
    assert_true(depth <= BRINE_PICKLE_MAX_NEST);
    uint64_t h = (uint64_t)v->kind;
    switch (v->kind) {
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
    case BRINE_PV_BYTEARRAY:
        for (size_t i = 0; i < v->v.str.len; i++)
            h = h * 31 + (unsigned char)v->v.str.s[i];
        break;
    case BRINE_PV_GLOBAL:
    case BRINE_PV_DTYPE:
    case BRINE_PV_RECONSTRUCT:
        fail_msg("a decoder-only value (kind %d) in a finished tree", (int)v->kind);
        break;
    case BRINE_PV_TUPLE:
    case BRINE_PV_LIST:
        for (size_t i = 0; i < v->v.seq.n; i++)
            h = h * 31 + walk(v->v.seq.items[i], depth + 1);
        break;
    case BRINE_PV_DICT:
        for (size_t i = 0; i < v->v.dict.n; i++) {
            h = h * 31 + walk(v->v.dict.keys[i], depth + 1);
            h = h * 31 + walk(v->v.dict.values[i], depth + 1);
            if (v->v.dict.keys[i]->kind == BRINE_PV_STR) {
                const brine_pvalue *k = v->v.dict.keys[i];
                assert_ptr_equal(brine_pickle__dict_get(v, k->v.str.s, k->v.str.len), v->v.dict.values[i]);
            }
        }
        break;
    case BRINE_PV_NDARRAY:
        assert_true(v->v.array.ndim >= 0 && v->v.array.ndim <= BRINE_MAX_NDIM);
        assert_true(v->v.array.order == 'C' || v->v.array.order == 'F');
        assert_non_null(brine_dtype__info(v->v.array.dtype));
        for (size_t i = 0; i < v->v.array.inband_len; i++)
            h = h * 31 + v->v.array.inband[i];
        break;
    case BRINE_PV_INT:
        h = h * 31 + v->v.integer.u + (uint64_t)v->v.integer.i;
        break;
    default:
        break;
    }
    assert_int_equal(v->internal, 0);
    if (v->has_np_dtype)
        assert_non_null(brine_dtype__info(v->np_dtype));
    return h;
}

/* ------------------------------------------------------------------------ */
/* Round trips */

static const int64_t ints[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, -1, -128, -129, -255, -256, -257, -32768, -32769,
    INT32_MAX, (int64_t)INT32_MAX + 1, INT32_MIN, (int64_t)INT32_MIN - 1,
    (int64_t)1 << 40, -((int64_t)1 << 40), ((int64_t)1 << 55) - 1, (int64_t)1 << 55, -((int64_t)1 << 55),
    INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1,
};

static const uint64_t uints[] = {
    0, 255, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, UINT64_MAX - 1, UINT64_MAX, 0x8000000000000001ull,
};

static const uint64_t float_bits[] = {
    0x0000000000000000ull, /* 0.0 */
    0x8000000000000000ull, /* -0.0 */
    0x7ff0000000000000ull, /* inf */
    0xfff0000000000000ull, /* -inf */
    0x7ff8000000000000ull, /* quiet NaN */
    0xfff8000000000001ull, /* negative NaN with payload */
    0x7ff0000000000001ull, /* signalling NaN */
    0x0000000000000001ull, /* smallest subnormal */
    0x7fefffffffffffffull, /* DBL_MAX */
    0x3ff8000000000000ull, /* 1.5 */
};

static void test_roundtrip_scalars(void **state)
{
    (void)state;
    char key[64];
    static char big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    const char *uni = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 caf\xc3\xa9"; /* é€😀 café */

    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_key(&e, "t", 1);
    brine_pickle__enc_bool(&e, 1);
    brine_pickle__enc_key(&e, "f", 1);
    brine_pickle__enc_bool(&e, 0);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "i%zu", i);
        brine_pickle__enc_key(&e, key, strlen(key));
        brine_pickle__enc_int(&e, ints[i]);
    }
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        snprintf(key, sizeof key, "u%zu", i);
        brine_pickle__enc_key(&e, key, strlen(key));
        brine_pickle__enc_uint(&e, uints[i]);
    }
    for (size_t i = 0; i < sizeof float_bits / sizeof float_bits[0]; i++) {
        snprintf(key, sizeof key, "d%zu", i);
        brine_pickle__enc_key(&e, key, strlen(key));
        brine_pickle__enc_float(&e, double_of(float_bits[i]));
        snprintf(key, sizeof key, "c%zu", i);
        brine_pickle__enc_key(&e, key, strlen(key));
        brine_pickle__enc_complex(&e, double_of(float_bits[i]), double_of(float_bits[(i + 1) % 10]));
    }
    brine_pickle__enc_key(&e, "s_empty", 7);
    brine_pickle__enc_str(&e, "", 0);
    brine_pickle__enc_key(&e, "s_uni", 5);
    brine_pickle__enc_str(&e, uni, strlen(uni));
    brine_pickle__enc_key(&e, uni, strlen(uni)); /* a non-ASCII key */
    brine_pickle__enc_str(&e, "k", 1);
    brine_pickle__enc_key(&e, "s255", 4);
    brine_pickle__enc_str(&e, big, 255);
    brine_pickle__enc_key(&e, "s256", 4);
    brine_pickle__enc_str(&e, big, 256);
    brine_pickle__enc_key(&e, "s70000", 6);
    brine_pickle__enc_str(&e, big, sizeof big);
    brine_pickle__enc_key(&e, big, 300); /* a key of 300 bytes: BINUNICODE */
    brine_pickle__enc_int(&e, 7);
    brine_pickle__enc_dict_end(&e);
    size_t len;
    uint8_t *s = enc_finish(&e, &len);
    assert_int_equal(e.nbuffers, 0);

    brine_pickle_doc *doc = decode_ok(s, len);
    const brine_pvalue *root = brine_pickle__root(doc);
    assert_int_equal(root->kind, BRINE_PV_DICT);
    assert_int_equal(brine_pickle__nbuffers(doc), 0);
    assert_int_equal(get(doc, "t")->kind, BRINE_PV_BOOL);
    assert_int_equal(get(doc, "t")->v.b, 1);
    assert_int_equal(get(doc, "f")->v.b, 0);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "i%zu", i);
        assert_int_value(get(doc, key), ints[i]);
    }
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        snprintf(key, sizeof key, "u%zu", i);
        const brine_pvalue *v = get(doc, key);
        assert_int_equal(v->kind, BRINE_PV_INT);
        assert_int_equal(v->v.integer.negative, 0);
        assert_true(v->v.integer.u == uints[i]);
    }
    for (size_t i = 0; i < sizeof float_bits / sizeof float_bits[0]; i++) {
        snprintf(key, sizeof key, "d%zu", i);
        const brine_pvalue *v = get(doc, key);
        assert_int_equal(v->kind, BRINE_PV_FLOAT);
        assert_true(bits_of(v->v.f) == float_bits[i]);
        snprintf(key, sizeof key, "c%zu", i);
        v = get(doc, key);
        assert_int_equal(v->kind, BRINE_PV_COMPLEX);
        assert_true(bits_of(v->v.c.re) == float_bits[i]);
        assert_true(bits_of(v->v.c.im) == float_bits[(i + 1) % 10]);
    }
    assert_str_value(get(doc, "s_empty"), "", 0);
    assert_str_value(get(doc, "s_uni"), uni, strlen(uni));
    assert_str_value(get(doc, uni), "k", 1);
    assert_str_value(get(doc, "s255"), big, 255);
    assert_str_value(get(doc, "s256"), big, 256);
    assert_str_value(get(doc, "s70000"), big, sizeof big);
    assert_int_value(brine_pickle__dict_get(root, big, 300), 7);
    assert_null(brine_pickle__dict_get(root, big, 299));
    assert_null(brine_pickle__dict_get(root, "nope", 4));
    assert_null(brine_pickle__dict_get(get(doc, "t"), "t", 1));
    assert_null(brine_pickle__dict_get(NULL, "t", 1));
    walk(root, 0);
    brine_pickle__free(doc);
    free(s);
}

/* The encoder chooses the same integer opcode as CPython's save_long. */
static void test_int_opcodes(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        size_t n;
        uint8_t b[12];
    } cases[] = {
        /* pickle.dumps(v, 5) minus PROTO and STOP, for each v */
        {0, 2, {0x4b, 0x00}},
        {255, 2, {0x4b, 0xff}},
        {256, 3, {0x4d, 0x00, 0x01}},
        {65535, 3, {0x4d, 0xff, 0xff}},
        {65536, 5, {0x4a, 0x00, 0x00, 0x01, 0x00}},
        {-1, 5, {0x4a, 0xff, 0xff, 0xff, 0xff}},
        {INT32_MIN, 5, {0x4a, 0x00, 0x00, 0x00, 0x80}},
        {(int64_t)INT32_MAX + 1, 7, {0x8a, 0x05, 0x00, 0x00, 0x00, 0x80, 0x00}},
        {(int64_t)INT32_MIN - 1, 7, {0x8a, 0x05, 0xff, 0xff, 0xff, 0x7f, 0xff}},
        {-((int64_t)1 << 32), 7, {0x8a, 0x05, 0x00, 0x00, 0x00, 0x00, 0xff}},
        {INT64_MIN, 10, {0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        {INT64_MAX, 10, {0x8a, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        brine_pickle_enc e;
        brine_pickle__enc_init(&e, NULL);
        brine_pickle__enc_int(&e, cases[i].v);
        size_t len;
        uint8_t *s = enc_finish(&e, &len);
        assert_int_equal(len, cases[i].n + 3);
        assert_memory_equal(s + 2, cases[i].b, cases[i].n);
        free(s);
    }
    /* uint64 max: LONG1 of 9 bytes, as pickle.dumps(2**64 - 1, 5) */
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_uint(&e, UINT64_MAX);
    size_t len;
    uint8_t *s = enc_finish(&e, &len);
    static const uint8_t want[] = {0x80, 0x05, 0x8a, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x2e};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(s, want, sizeof want);
    free(s);
}

static void test_roundtrip_nested(void **state)
{
    (void)state;
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    /* 64 nested dicts: {"d": {"d": ... {"x": 1, "e": {}}}}, the innermost being "e" */
    for (int i = 0; i < BRINE_PICKLE_MAX_DEPTH - 1; i++) {
        brine_pickle__enc_dict_begin(&e);
        if (i == BRINE_PICKLE_MAX_DEPTH - 2) {
            brine_pickle__enc_key(&e, "x", 1);
            brine_pickle__enc_int(&e, 1);
            brine_pickle__enc_key(&e, "e", 1);
            brine_pickle__enc_dict_begin(&e);
            brine_pickle__enc_dict_end(&e);
        } else {
            brine_pickle__enc_key(&e, "d", 1);
        }
    }
    for (int i = 0; i < BRINE_PICKLE_MAX_DEPTH - 1; i++)
        brine_pickle__enc_dict_end(&e);
    size_t len;
    uint8_t *s = enc_finish(&e, &len);
    brine_pickle_doc *doc = decode_ok(s, len);
    char name[4 * BRINE_PICKLE_MAX_DEPTH];
    name[0] = '\0';
    for (int i = 0; i < BRINE_PICKLE_MAX_DEPTH - 2; i++)
        strcat(name, "d/");
    strcat(name, "x");
    assert_int_value(get(doc, name), 1);
    name[strlen(name) - 1] = 'e';
    const brine_pvalue *empty = get(doc, name);
    assert_int_equal(empty->kind, BRINE_PV_DICT);
    assert_int_equal(empty->v.dict.n, 0);
    assert_null(brine_pickle__dict_get(empty, "x", 1));
    strcat(name, "/x"); /* through an empty dict */
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), name));
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), "d/q"));
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), "d//d"));
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), ""));
    assert_int_equal(brine_pickle__root(doc)->depth, BRINE_PICKLE_MAX_DEPTH - 1); /* "e" is a leaf */
    brine_pickle__free(doc);
    free(s);

    /* An empty root dict is EMPTY_DICT alone. */
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_dict_end(&e);
    s = enc_finish(&e, &len);
    static const uint8_t empty_root[] = {0x80, 0x05, 0x7d, 0x2e};
    assert_int_equal(len, sizeof empty_root);
    assert_memory_equal(s, empty_root, len);
    doc = decode_ok(s, len);
    assert_int_equal(brine_pickle__root(doc)->kind, BRINE_PV_DICT);
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), "a"));
    brine_pickle__free(doc);
    free(s);
}

static void test_encoder_misuse(void **state)
{
    (void)state;
    uint8_t *s = (uint8_t *)"x";
    size_t len = 1;
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    for (int i = 0; i <= BRINE_PICKLE_MAX_DEPTH; i++)
        brine_pickle__enc_dict_begin(&e);
    assert_int_equal(brine_pickle__enc_finish(&e, &s, &len), BRINE_EINVAL);
    assert_null(s);
    assert_int_equal(len, 0);

    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_dict_begin(&e); /* never closed */
    assert_int_equal(brine_pickle__enc_finish(&e, &s, &len), BRINE_EINVAL);

    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_key(&e, "k", 1); /* outside a dict */
    assert_int_equal(brine_pickle__enc_finish(&e, &s, &len), BRINE_EINVAL);

    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_ndarray(&e, 1, (const uint64_t[]){1}, "<f8", 'X');
    assert_int_equal(brine_pickle__enc_finish(&e, &s, &len), BRINE_EINVAL);

    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_int(&e, 5);
    brine_pickle__enc_abort(&e);
}

static void test_roundtrip_ndarray(void **state)
{
    (void)state;
    char key[16];
    uint64_t shape[BRINE_MAX_NDIM];
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_dict_begin(&e);
    int n = 0;
    for (int ndim = 0; ndim <= BRINE_MAX_NDIM; ndim++) {
        for (int dt = 0; dt < BRINE_DTYPE_COUNT; dt++) {
            for (int k = 0; k < ndim; k++)
                shape[k] = (uint64_t)((k + dt) % 4 + (ndim == 1 && dt == 3 ? 300 : 0)); /* zeros too */
            snprintf(key, sizeof key, "a%d", n++);
            brine_pickle__enc_key(&e, key, strlen(key));
            brine_pickle__enc_ndarray(&e, ndim, shape, brine_dtype__info(dt)->numpy, (dt & 1) ? 'F' : 'C');
        }
    }
    /* extents that need BININT and LONG1, and the largest 1-byte array */
    brine_pickle__enc_key(&e, "big", 3);
    brine_pickle__enc_ndarray(&e, 3, (const uint64_t[]){70000, (uint64_t)1 << 33, 1}, "|u1", 'C');
    brine_pickle__enc_key(&e, "huge", 4);
    brine_pickle__enc_ndarray(&e, 1, (const uint64_t[]){UINT64_MAX}, "|b1", 'C');
    brine_pickle__enc_dict_end(&e);
    size_t len;
    uint8_t *s = enc_finish(&e, &len);
    assert_int_equal(e.nbuffers, n + 2);

    brine_pickle_doc *doc = decode_ok(s, len);
    assert_int_equal(brine_pickle__nbuffers(doc), n + 2);
    n = 0;
    for (int ndim = 0; ndim <= BRINE_MAX_NDIM; ndim++) {
        for (int dt = 0; dt < BRINE_DTYPE_COUNT; dt++) {
            snprintf(key, sizeof key, "a%d", n);
            const brine_pvalue *v = get(doc, key);
            assert_int_equal(v->kind, BRINE_PV_NDARRAY);
            assert_int_equal(v->v.array.ndim, ndim);
            for (int k = 0; k < ndim; k++)
                assert_true(v->v.array.shape[k] == (uint64_t)((k + dt) % 4 + (ndim == 1 && dt == 3 ? 300 : 0)));
            assert_int_equal(v->v.array.dtype, dt);
            assert_int_equal(v->v.array.order, (dt & 1) ? 'F' : 'C');
            assert_int_equal(v->v.array.buffer, n);
            assert_null(v->v.array.inband);
            n++;
        }
    }
    const brine_pvalue *v = get(doc, "big");
    assert_true(v->v.array.shape[0] == 70000 && v->v.array.shape[1] == (uint64_t)1 << 33 && v->v.array.shape[2] == 1);
    assert_int_equal(v->v.array.buffer, n);
    v = get(doc, "huge");
    assert_true(v->v.array.shape[0] == UINT64_MAX);
    assert_int_equal(v->v.array.dtype, BRINE_BOOL);
    brine_pickle__free(doc);
    free(s);

    /* The same extent with 2-byte elements overflows 64 bits: refused. */
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_ndarray(&e, 1, (const uint64_t[]){UINT64_MAX}, "<i2", 'C');
    s = enc_finish(&e, &len);
    expect_corrupt(s, len, "overflows");
    free(s);
    /* ... but not when another extent is 0 (an empty array). */
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_ndarray(&e, 3, (const uint64_t[]){UINT64_MAX, UINT64_MAX, 0}, "<i2", 'C');
    s = enc_finish(&e, &len);
    doc = decode_ok(s, len);
    assert_int_equal(brine_pickle__root(doc)->kind, BRINE_PV_NDARRAY);
    brine_pickle__free(doc);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Exact bytes */

static void test_exact_bytes(void **state)
{
    (void)state;
    /*
     * {"a": 1, "b": {}, "c": numpy.ndarray((2, 3), "<f8", <buffer 0>, 0, None, "C")}
     * Checked by hand with pickletools.dis and pickle.loads(s, buffers=[...]).
     */
    static const uint8_t want[] = {
        0x80, 0x05,                         /* PROTO 5 */
        0x7d,                               /* EMPTY_DICT */
        0x28,                               /* MARK */
        0x8c, 0x01, 'a', 0x4b, 0x01,        /* 'a' BININT1 1 */
        0x8c, 0x01, 'b', 0x7d,              /* 'b' EMPTY_DICT (no MARK/SETITEMS) */
        0x8c, 0x01, 'c',                    /* 'c' */
        0x63, 'n', 'u', 'm', 'p', 'y', '\n', 'n', 'd', 'a', 'r', 'r', 'a', 'y', '\n', /* GLOBAL */
        0x28,                               /* MARK */
        0x4b, 0x02, 0x4b, 0x03, 0x86,       /* (2, 3) TUPLE2 */
        0x8c, 0x03, '<', 'f', '8',          /* '<f8' */
        0x97,                               /* NEXT_BUFFER */
        0x4b, 0x00, 0x4e,                   /* 0 None */
        0x8c, 0x01, 'C',                    /* 'C' */
        0x74, 0x52,                         /* TUPLE REDUCE */
        0x75,                               /* SETITEMS */
        0x2e,                               /* STOP */
    };
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_key(&e, "a", 1);
    brine_pickle__enc_int(&e, 1);
    brine_pickle__enc_key(&e, "b", 1);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_dict_end(&e);
    brine_pickle__enc_key(&e, "c", 1);
    brine_pickle__enc_ndarray(&e, 2, (const uint64_t[]){2, 3}, "<f8", 'C');
    brine_pickle__enc_dict_end(&e);
    size_t len;
    uint8_t *s = enc_finish(&e, &len);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(s, want, len);
    free(s);

    /* complex(1.5, -0.0) */
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_complex(&e, 1.5, -0.0);
    s = enc_finish(&e, &len);
    static const uint8_t want_c[] = {
        0x80, 0x05, 0x63, 'b', 'u', 'i', 'l', 't', 'i', 'n', 's', '\n', 'c', 'o', 'm', 'p', 'l', 'e', 'x', '\n',
        0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, /* BINFLOAT 1.5 */
        0x47, 0x80, 0, 0, 0, 0, 0, 0, 0,    /* BINFLOAT -0.0 */
        0x86, 0x52, 0x2e,
    };
    assert_int_equal(len, sizeof want_c);
    assert_memory_equal(s, want_c, len);
    free(s);

    /* a 4-d shape: MARK ... TUPLE */
    brine_pickle__enc_init(&e, NULL);
    brine_pickle__enc_ndarray(&e, 4, (const uint64_t[]){1, 2, 3, 4}, "|b1", 'F');
    s = enc_finish(&e, &len);
    static const uint8_t want_a[] = {
        0x80, 0x05, 0x63, 'n', 'u', 'm', 'p', 'y', '\n', 'n', 'd', 'a', 'r', 'r', 'a', 'y', '\n',
        0x28, 0x28, 0x4b, 1, 0x4b, 2, 0x4b, 3, 0x4b, 4, 0x74, /* MARK MARK 1 2 3 4 TUPLE */
        0x8c, 0x03, '|', 'b', '1', 0x97, 0x4b, 0x00, 0x4e, 0x8c, 0x01, 'F', 0x74, 0x52, 0x2e,
    };
    assert_int_equal(len, sizeof want_a);
    assert_memory_equal(s, want_a, len);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Streams written by CPython 3.11 */

/*
 * pickle.dumps({'a': 1, 'b': [1.5, 'x', None, True], 'c': (1, 2), 'big': 2**63,
 *               'neg': -2**63, 'z': complex(1, 2), 'by': b'xy'}, protocol=5)
 * FRAME, MEMOIZE, STACK_GLOBAL, LONG1, APPENDS, SETITEMS.
 */
static const uint8_t cpy_basic[147] = {
    0x80, 0x05, 0x95, 0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x01,
    0x61, 0x94, 0x4b, 0x01, 0x8c, 0x01, 0x62, 0x94, 0x5d, 0x94, 0x28, 0x47, 0x3f, 0xf8, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x8c, 0x01, 0x78, 0x94, 0x4e, 0x88, 0x65, 0x8c, 0x01, 0x63, 0x94, 0x4b,
    0x01, 0x4b, 0x02, 0x86, 0x94, 0x8c, 0x03, 0x62, 0x69, 0x67, 0x94, 0x8a, 0x09, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x8c, 0x03, 0x6e, 0x65, 0x67, 0x94, 0x8a, 0x08, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x8c, 0x01, 0x7a, 0x94, 0x8c, 0x08, 0x62, 0x75, 0x69, 0x6c,
    0x74, 0x69, 0x6e, 0x73, 0x94, 0x8c, 0x07, 0x63, 0x6f, 0x6d, 0x70, 0x6c, 0x65, 0x78, 0x94, 0x93,
    0x94, 0x47, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x47, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x86, 0x94, 0x52, 0x94, 0x8c, 0x02, 0x62, 0x79, 0x94, 0x43, 0x02, 0x78, 0x79,
    0x94, 0x75, 0x2e,
};

/*
 * shared = [1, 2]
 * pickle.dumps({'s': shared, 't': shared, 'k': {'n': None, 'k2': 'v'}, 'u': 'é€😀',
 *               'f': -0.0, 'i': -70000, 'L': 2**40}, protocol=5)
 * FRAME, MEMOIZE and BINGET (t is s).
 */
static const uint8_t cpy_memo[106] = {
    0x80, 0x05, 0x95, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x01,
    0x73, 0x94, 0x5d, 0x94, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x65, 0x8c, 0x01, 0x74, 0x94, 0x68, 0x02,
    0x8c, 0x01, 0x6b, 0x94, 0x7d, 0x94, 0x28, 0x8c, 0x01, 0x6e, 0x94, 0x4e, 0x8c, 0x02, 0x6b, 0x32,
    0x94, 0x8c, 0x01, 0x76, 0x94, 0x75, 0x8c, 0x01, 0x75, 0x94, 0x8c, 0x09, 0xc3, 0xa9, 0xe2, 0x82,
    0xac, 0xf0, 0x9f, 0x98, 0x80, 0x94, 0x8c, 0x01, 0x66, 0x94, 0x47, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x8c, 0x01, 0x69, 0x94, 0x4a, 0x90, 0xee, 0xfe, 0xff, 0x8c, 0x01, 0x4c, 0x94,
    0x8a, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x75, 0x2e,
};

/*
 * shared = [1, 2]
 * pickle.dumps([shared, shared, ('x', 'x'), -1, 65535, 65536, 'yz'], protocol=2)
 * BINPUT/BINGET, BINUNICODE, BININT2, no FRAME.
 */
static const uint8_t cpy_proto2[54] = {
    0x80, 0x02, 0x5d, 0x71, 0x00, 0x28, 0x5d, 0x71, 0x01, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x65, 0x68,
    0x01, 0x58, 0x01, 0x00, 0x00, 0x00, 0x78, 0x71, 0x02, 0x68, 0x02, 0x86, 0x71, 0x03, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4d, 0xff, 0xff, 0x4a, 0x00, 0x00, 0x01, 0x00, 0x58, 0x02, 0x00, 0x00, 0x00,
    0x79, 0x7a, 0x71, 0x04, 0x65, 0x2e,
};

/*
 * pickle.dumps([b'\x00\x01'], protocol=2): protocol 2 pickles bytes as
 * _codecs.encode(str, 'latin1').
 */
static const uint8_t cpy_proto2_bytes[53] = {
    0x80, 0x02, 0x5d, 0x71, 0x00, 0x63, 0x5f, 0x63, 0x6f, 0x64, 0x65, 0x63, 0x73, 0x0a, 0x65, 0x6e,
    0x63, 0x6f, 0x64, 0x65, 0x0a, 0x71, 0x01, 0x58, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x71, 0x02,
    0x58, 0x06, 0x00, 0x00, 0x00, 0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x71, 0x03, 0x86, 0x71, 0x04,
    0x52, 0x71, 0x05, 0x61, 0x2e,
};

/*
 * An object whose __reduce_ex__ returns (numpy.ndarray, (shape, dt, data, 0, None, order)):
 *   class Arr:
 *       def __init__(self, shape, dt, data, order): self.a = (shape, dt, data, order)
 *       def __reduce_ex__(self, proto): return (np.ndarray, (*self.a[:3], 0, None, self.a[3]))
 *   bufs = []
 *   pickle.dumps({'fluid': {'u': Arr((2, 3), '<f8', pickle.PickleBuffer(bytearray(48)), 'C'),
 *                           'v': Arr((4,), '<i4', bytes(range(16)), 'F')}, 't': 0.5},
 *                protocol=5, buffer_callback=bufs.append)
 * STACK_GLOBAL 'numpy' 'ndarray' memoized and fetched again with BINGET,
 * NEXT_BUFFER, and an in-band buffer.
 */
static const uint8_t cpy_ndarray[137] = {
    0x80, 0x05, 0x95, 0x7e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x05,
    0x66, 0x6c, 0x75, 0x69, 0x64, 0x94, 0x7d, 0x94, 0x28, 0x8c, 0x01, 0x75, 0x94, 0x8c, 0x05, 0x6e,
    0x75, 0x6d, 0x70, 0x79, 0x94, 0x8c, 0x07, 0x6e, 0x64, 0x61, 0x72, 0x72, 0x61, 0x79, 0x94, 0x93,
    0x94, 0x28, 0x4b, 0x02, 0x4b, 0x03, 0x86, 0x94, 0x8c, 0x03, 0x3c, 0x66, 0x38, 0x94, 0x97, 0x4b,
    0x00, 0x4e, 0x8c, 0x01, 0x43, 0x94, 0x74, 0x94, 0x52, 0x94, 0x8c, 0x01, 0x76, 0x94, 0x68, 0x06,
    0x28, 0x4b, 0x04, 0x85, 0x94, 0x8c, 0x03, 0x3c, 0x69, 0x34, 0x94, 0x43, 0x10, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x94, 0x4b, 0x00,
    0x4e, 0x8c, 0x01, 0x46, 0x94, 0x74, 0x94, 0x52, 0x94, 0x75, 0x8c, 0x01, 0x74, 0x94, 0x47, 0x3f,
    0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x75, 0x2e,
};

/*
 * pickle.dumps({'a': np.arange(6, dtype=np.int16).reshape(2, 3).T, 's': np.float32(1.5)},
 *              protocol=5) with numpy 1.24: numpy.core.numeric._frombuffer of a BYTEARRAY8
 * (order 'F'), numpy.dtype with BUILD, numpy.core.multiarray.scalar; FRAME, MEMOIZE, BINGET.
 */
static const uint8_t np_proto5_inband[234] = {
    0x80, 0x05, 0x95, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x01,
    0x61, 0x94, 0x8c, 0x12, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e, 0x6e,
    0x75, 0x6d, 0x65, 0x72, 0x69, 0x63, 0x94, 0x8c, 0x0b, 0x5f, 0x66, 0x72, 0x6f, 0x6d, 0x62, 0x75,
    0x66, 0x66, 0x65, 0x72, 0x94, 0x93, 0x94, 0x28, 0x96, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00, 0x05, 0x00, 0x94, 0x8c, 0x05,
    0x6e, 0x75, 0x6d, 0x70, 0x79, 0x94, 0x8c, 0x05, 0x64, 0x74, 0x79, 0x70, 0x65, 0x94, 0x93, 0x94,
    0x8c, 0x02, 0x69, 0x32, 0x94, 0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x8c, 0x01,
    0x3c, 0x94, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b,
    0x00, 0x74, 0x94, 0x62, 0x4b, 0x03, 0x4b, 0x02, 0x86, 0x94, 0x8c, 0x01, 0x46, 0x94, 0x74, 0x94,
    0x52, 0x94, 0x8c, 0x01, 0x73, 0x94, 0x8c, 0x15, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f,
    0x72, 0x65, 0x2e, 0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61, 0x72, 0x72, 0x61, 0x79, 0x94, 0x8c, 0x06,
    0x73, 0x63, 0x61, 0x6c, 0x61, 0x72, 0x94, 0x93, 0x94, 0x68, 0x08, 0x8c, 0x02, 0x66, 0x34, 0x94,
    0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x68, 0x0c, 0x4e, 0x4e, 0x4e, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94, 0x62, 0x43, 0x04, 0x00,
    0x00, 0xc0, 0x3f, 0x94, 0x86, 0x94, 0x52, 0x94, 0x75, 0x2e,
};

/*
 * pickle.dumps({'u': np.zeros((2, 3)), 'v': np.ones(4, dtype=np.uint8),
 *               'z': np.array(-1, dtype=np.int64)}, protocol=5, buffer_callback=lambda b: False):
 * three NEXT_BUFFER, one dtype memoized and fetched again (BINGET).
 */
static const uint8_t np_proto5_oob[234] = {
    0x80, 0x05, 0x95, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x01,
    0x75, 0x94, 0x8c, 0x12, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e, 0x6e,
    0x75, 0x6d, 0x65, 0x72, 0x69, 0x63, 0x94, 0x8c, 0x0b, 0x5f, 0x66, 0x72, 0x6f, 0x6d, 0x62, 0x75,
    0x66, 0x66, 0x65, 0x72, 0x94, 0x93, 0x94, 0x28, 0x97, 0x8c, 0x05, 0x6e, 0x75, 0x6d, 0x70, 0x79,
    0x94, 0x8c, 0x05, 0x64, 0x74, 0x79, 0x70, 0x65, 0x94, 0x93, 0x94, 0x8c, 0x02, 0x66, 0x38, 0x94,
    0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x8c, 0x01, 0x3c, 0x94, 0x4e, 0x4e, 0x4e,
    0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94, 0x62, 0x4b,
    0x02, 0x4b, 0x03, 0x86, 0x94, 0x8c, 0x01, 0x43, 0x94, 0x74, 0x94, 0x52, 0x94, 0x8c, 0x01, 0x76,
    0x94, 0x68, 0x04, 0x28, 0x97, 0x68, 0x07, 0x8c, 0x02, 0x75, 0x31, 0x94, 0x89, 0x88, 0x87, 0x94,
    0x52, 0x94, 0x28, 0x4b, 0x03, 0x8c, 0x01, 0x7c, 0x94, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff,
    0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94, 0x62, 0x4b, 0x04, 0x85, 0x94, 0x68,
    0x0e, 0x74, 0x94, 0x52, 0x94, 0x8c, 0x01, 0x7a, 0x94, 0x68, 0x04, 0x28, 0x97, 0x68, 0x07, 0x8c,
    0x02, 0x69, 0x38, 0x94, 0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x68, 0x0b, 0x4e,
    0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94,
    0x62, 0x29, 0x68, 0x0e, 0x74, 0x94, 0x52, 0x94, 0x75, 0x2e,
};

/*
 * pickle.dumps({'f': np.asfortranarray(np.arange(6.).reshape(2, 3)), 'e': np.zeros(0, np.int8),
 *               'c': np.complex64(1 - 2j), 'u': np.uint64(2**64 - 1)}, protocol=2):
 * numpy.core.multiarray._reconstruct then BUILD, data as _codecs.encode(str, 'latin1'),
 * __builtin__.bytes() for the empty array, scalars.
 */
static const uint8_t np_proto2[590] = {
    0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00, 0x00, 0x66, 0x71, 0x01, 0x63, 0x6e,
    0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e, 0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61,
    0x72, 0x72, 0x61, 0x79, 0x0a, 0x5f, 0x72, 0x65, 0x63, 0x6f, 0x6e, 0x73, 0x74, 0x72, 0x75, 0x63,
    0x74, 0x0a, 0x71, 0x02, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x0a, 0x6e, 0x64, 0x61, 0x72, 0x72,
    0x61, 0x79, 0x0a, 0x71, 0x03, 0x4b, 0x00, 0x85, 0x71, 0x04, 0x63, 0x5f, 0x63, 0x6f, 0x64, 0x65,
    0x63, 0x73, 0x0a, 0x65, 0x6e, 0x63, 0x6f, 0x64, 0x65, 0x0a, 0x71, 0x05, 0x58, 0x01, 0x00, 0x00,
    0x00, 0x62, 0x71, 0x06, 0x58, 0x06, 0x00, 0x00, 0x00, 0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x71,
    0x07, 0x86, 0x71, 0x08, 0x52, 0x71, 0x09, 0x87, 0x71, 0x0a, 0x52, 0x71, 0x0b, 0x28, 0x4b, 0x01,
    0x4b, 0x02, 0x4b, 0x03, 0x86, 0x71, 0x0c, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x0a, 0x64, 0x74,
    0x79, 0x70, 0x65, 0x0a, 0x71, 0x0d, 0x58, 0x02, 0x00, 0x00, 0x00, 0x66, 0x38, 0x71, 0x0e, 0x89,
    0x88, 0x87, 0x71, 0x0f, 0x52, 0x71, 0x10, 0x28, 0x4b, 0x03, 0x58, 0x01, 0x00, 0x00, 0x00, 0x3c,
    0x71, 0x11, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b,
    0x00, 0x74, 0x71, 0x12, 0x62, 0x88, 0x68, 0x05, 0x58, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x40, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xc3, 0xb0, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x40, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x40, 0x71, 0x13,
    0x68, 0x07, 0x86, 0x71, 0x14, 0x52, 0x71, 0x15, 0x74, 0x71, 0x16, 0x62, 0x58, 0x01, 0x00, 0x00,
    0x00, 0x65, 0x71, 0x17, 0x68, 0x02, 0x68, 0x03, 0x4b, 0x00, 0x85, 0x71, 0x18, 0x68, 0x09, 0x87,
    0x71, 0x19, 0x52, 0x71, 0x1a, 0x28, 0x4b, 0x01, 0x4b, 0x00, 0x85, 0x71, 0x1b, 0x68, 0x0d, 0x58,
    0x02, 0x00, 0x00, 0x00, 0x69, 0x31, 0x71, 0x1c, 0x89, 0x88, 0x87, 0x71, 0x1d, 0x52, 0x71, 0x1e,
    0x28, 0x4b, 0x03, 0x58, 0x01, 0x00, 0x00, 0x00, 0x7c, 0x71, 0x1f, 0x4e, 0x4e, 0x4e, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x71, 0x20, 0x62, 0x89, 0x63,
    0x5f, 0x5f, 0x62, 0x75, 0x69, 0x6c, 0x74, 0x69, 0x6e, 0x5f, 0x5f, 0x0a, 0x62, 0x79, 0x74, 0x65,
    0x73, 0x0a, 0x71, 0x21, 0x29, 0x52, 0x71, 0x22, 0x74, 0x71, 0x23, 0x62, 0x58, 0x01, 0x00, 0x00,
    0x00, 0x63, 0x71, 0x24, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e,
    0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61, 0x72, 0x72, 0x61, 0x79, 0x0a, 0x73, 0x63, 0x61, 0x6c, 0x61,
    0x72, 0x0a, 0x71, 0x25, 0x68, 0x0d, 0x58, 0x02, 0x00, 0x00, 0x00, 0x63, 0x38, 0x71, 0x26, 0x89,
    0x88, 0x87, 0x71, 0x27, 0x52, 0x71, 0x28, 0x28, 0x4b, 0x03, 0x68, 0x11, 0x4e, 0x4e, 0x4e, 0x4a,
    0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x71, 0x29, 0x62, 0x68,
    0x05, 0x58, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc2, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc3, 0x80,
    0x71, 0x2a, 0x68, 0x07, 0x86, 0x71, 0x2b, 0x52, 0x71, 0x2c, 0x86, 0x71, 0x2d, 0x52, 0x71, 0x2e,
    0x58, 0x01, 0x00, 0x00, 0x00, 0x75, 0x71, 0x2f, 0x68, 0x25, 0x68, 0x0d, 0x58, 0x02, 0x00, 0x00,
    0x00, 0x75, 0x38, 0x71, 0x30, 0x89, 0x88, 0x87, 0x71, 0x31, 0x52, 0x71, 0x32, 0x28, 0x4b, 0x03,
    0x68, 0x11, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b,
    0x00, 0x74, 0x71, 0x33, 0x62, 0x68, 0x05, 0x58, 0x10, 0x00, 0x00, 0x00, 0xc3, 0xbf, 0xc3, 0xbf,
    0xc3, 0xbf, 0xc3, 0xbf, 0xc3, 0xbf, 0xc3, 0xbf, 0xc3, 0xbf, 0xc3, 0xbf, 0x71, 0x34, 0x68, 0x07,
    0x86, 0x71, 0x35, 0x52, 0x71, 0x36, 0x86, 0x71, 0x37, 0x52, 0x71, 0x38, 0x75, 0x2e,
};

/*
 * pickle.dumps({'i': [1, -2, 2**40, True, None], 'f': 1.5, 's': '\u00e9\u20ac\\\n',
 *               't': (1, 'x'), 'b': np.bool_(True), 'a': np.arange(3, dtype=np.int32)}, protocol=0):
 * text opcodes (DICT, LIST, INT, LONG, FLOAT, UNICODE, PUT, GET), numpy's forms with UNICODE data.
 */
static const uint8_t np_proto0[577] = {
    0x28, 0x64, 0x70, 0x30, 0x0a, 0x56, 0x69, 0x0a, 0x70, 0x31, 0x0a, 0x28, 0x6c, 0x70, 0x32, 0x0a,
    0x49, 0x31, 0x0a, 0x61, 0x49, 0x2d, 0x32, 0x0a, 0x61, 0x4c, 0x31, 0x30, 0x39, 0x39, 0x35, 0x31,
    0x31, 0x36, 0x32, 0x37, 0x37, 0x37, 0x36, 0x4c, 0x0a, 0x61, 0x49, 0x30, 0x31, 0x0a, 0x61, 0x4e,
    0x61, 0x73, 0x56, 0x66, 0x0a, 0x70, 0x33, 0x0a, 0x46, 0x31, 0x2e, 0x35, 0x0a, 0x73, 0x56, 0x73,
    0x0a, 0x70, 0x34, 0x0a, 0x56, 0xe9, 0x5c, 0x75, 0x32, 0x30, 0x61, 0x63, 0x5c, 0x75, 0x30, 0x30,
    0x35, 0x63, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x61, 0x0a, 0x70, 0x35, 0x0a, 0x73, 0x56, 0x74, 0x0a,
    0x70, 0x36, 0x0a, 0x28, 0x49, 0x31, 0x0a, 0x56, 0x78, 0x0a, 0x70, 0x37, 0x0a, 0x74, 0x70, 0x38,
    0x0a, 0x73, 0x56, 0x62, 0x0a, 0x70, 0x39, 0x0a, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63,
    0x6f, 0x72, 0x65, 0x2e, 0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61, 0x72, 0x72, 0x61, 0x79, 0x0a, 0x73,
    0x63, 0x61, 0x6c, 0x61, 0x72, 0x0a, 0x70, 0x31, 0x30, 0x0a, 0x28, 0x63, 0x6e, 0x75, 0x6d, 0x70,
    0x79, 0x0a, 0x64, 0x74, 0x79, 0x70, 0x65, 0x0a, 0x70, 0x31, 0x31, 0x0a, 0x28, 0x56, 0x62, 0x31,
    0x0a, 0x70, 0x31, 0x32, 0x0a, 0x49, 0x30, 0x30, 0x0a, 0x49, 0x30, 0x31, 0x0a, 0x74, 0x70, 0x31,
    0x33, 0x0a, 0x52, 0x70, 0x31, 0x34, 0x0a, 0x28, 0x49, 0x33, 0x0a, 0x56, 0x7c, 0x0a, 0x70, 0x31,
    0x35, 0x0a, 0x4e, 0x4e, 0x4e, 0x49, 0x2d, 0x31, 0x0a, 0x49, 0x2d, 0x31, 0x0a, 0x49, 0x30, 0x0a,
    0x74, 0x70, 0x31, 0x36, 0x0a, 0x62, 0x63, 0x5f, 0x63, 0x6f, 0x64, 0x65, 0x63, 0x73, 0x0a, 0x65,
    0x6e, 0x63, 0x6f, 0x64, 0x65, 0x0a, 0x70, 0x31, 0x37, 0x0a, 0x28, 0x56, 0x01, 0x0a, 0x70, 0x31,
    0x38, 0x0a, 0x56, 0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x0a, 0x70, 0x31, 0x39, 0x0a, 0x74, 0x70,
    0x32, 0x30, 0x0a, 0x52, 0x70, 0x32, 0x31, 0x0a, 0x74, 0x70, 0x32, 0x32, 0x0a, 0x52, 0x70, 0x32,
    0x33, 0x0a, 0x73, 0x56, 0x61, 0x0a, 0x70, 0x32, 0x34, 0x0a, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79,
    0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e, 0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61, 0x72, 0x72, 0x61, 0x79,
    0x0a, 0x5f, 0x72, 0x65, 0x63, 0x6f, 0x6e, 0x73, 0x74, 0x72, 0x75, 0x63, 0x74, 0x0a, 0x70, 0x32,
    0x35, 0x0a, 0x28, 0x63, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x0a, 0x6e, 0x64, 0x61, 0x72, 0x72, 0x61,
    0x79, 0x0a, 0x70, 0x32, 0x36, 0x0a, 0x28, 0x49, 0x30, 0x0a, 0x74, 0x70, 0x32, 0x37, 0x0a, 0x67,
    0x31, 0x37, 0x0a, 0x28, 0x56, 0x62, 0x0a, 0x70, 0x32, 0x38, 0x0a, 0x67, 0x31, 0x39, 0x0a, 0x74,
    0x70, 0x32, 0x39, 0x0a, 0x52, 0x70, 0x33, 0x30, 0x0a, 0x74, 0x70, 0x33, 0x31, 0x0a, 0x52, 0x70,
    0x33, 0x32, 0x0a, 0x28, 0x49, 0x31, 0x0a, 0x28, 0x49, 0x33, 0x0a, 0x74, 0x70, 0x33, 0x33, 0x0a,
    0x67, 0x31, 0x31, 0x0a, 0x28, 0x56, 0x69, 0x34, 0x0a, 0x70, 0x33, 0x34, 0x0a, 0x49, 0x30, 0x30,
    0x0a, 0x49, 0x30, 0x31, 0x0a, 0x74, 0x70, 0x33, 0x35, 0x0a, 0x52, 0x70, 0x33, 0x36, 0x0a, 0x28,
    0x49, 0x33, 0x0a, 0x56, 0x3c, 0x0a, 0x70, 0x33, 0x37, 0x0a, 0x4e, 0x4e, 0x4e, 0x49, 0x2d, 0x31,
    0x0a, 0x49, 0x2d, 0x31, 0x0a, 0x49, 0x30, 0x0a, 0x74, 0x70, 0x33, 0x38, 0x0a, 0x62, 0x49, 0x30,
    0x30, 0x0a, 0x67, 0x31, 0x37, 0x0a, 0x28, 0x56, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x5c, 0x75,
    0x30, 0x30, 0x30, 0x30, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30,
    0x01, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x5c, 0x75, 0x30,
    0x30, 0x30, 0x30, 0x02, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x30,
    0x5c, 0x75, 0x30, 0x30, 0x30, 0x30, 0x0a, 0x70, 0x33, 0x39, 0x0a, 0x67, 0x31, 0x39, 0x0a, 0x74,
    0x70, 0x34, 0x30, 0x0a, 0x52, 0x70, 0x34, 0x31, 0x0a, 0x74, 0x70, 0x34, 0x32, 0x0a, 0x62, 0x73,
    0x2e,
};

static void test_cpython_streams(void **state)
{
    (void)state;
    brine_pickle_doc *doc = decode_ok(cpy_basic, sizeof cpy_basic);
    const brine_pvalue *root = brine_pickle__root(doc);
    assert_int_equal(root->kind, BRINE_PV_DICT);
    assert_int_equal(root->v.dict.n, 7);
    assert_str_value(root->v.dict.keys[0], "a", 1); /* insertion order */
    assert_str_value(root->v.dict.keys[6], "by", 2);
    assert_int_value(get(doc, "a"), 1);
    const brine_pvalue *b = get(doc, "b");
    assert_int_equal(b->kind, BRINE_PV_LIST);
    assert_int_equal(b->v.seq.n, 4);
    assert_int_equal(b->v.seq.items[0]->kind, BRINE_PV_FLOAT);
    assert_true(b->v.seq.items[0]->v.f == 1.5);
    assert_str_value(b->v.seq.items[1], "x", 1);
    assert_int_equal(b->v.seq.items[2]->kind, BRINE_PV_NONE);
    assert_int_equal(b->v.seq.items[3]->kind, BRINE_PV_BOOL);
    assert_int_equal(b->v.seq.items[3]->v.b, 1);
    const brine_pvalue *c = get(doc, "c");
    assert_int_equal(c->kind, BRINE_PV_TUPLE);
    assert_int_equal(c->v.seq.n, 2);
    assert_int_value(c->v.seq.items[1], 2);
    const brine_pvalue *big = get(doc, "big");
    assert_int_equal(big->kind, BRINE_PV_INT);
    assert_int_equal(big->v.integer.negative, 0);
    assert_true(big->v.integer.u == (uint64_t)1 << 63);
    assert_int_value(get(doc, "neg"), INT64_MIN);
    const brine_pvalue *z = get(doc, "z");
    assert_int_equal(z->kind, BRINE_PV_COMPLEX);
    assert_true(z->v.c.re == 1.0 && z->v.c.im == 2.0);
    const brine_pvalue *by = get(doc, "by");
    assert_int_equal(by->kind, BRINE_PV_BYTES);
    assert_int_equal(by->v.str.len, 2);
    assert_memory_equal(by->v.str.s, "xy", 2);
    assert_int_equal(brine_pickle__nbuffers(doc), 0);
    brine_pickle__free(doc);

    doc = decode_ok(cpy_memo, sizeof cpy_memo);
    const brine_pvalue *s = get(doc, "s");
    assert_ptr_equal(s, get(doc, "t")); /* BINGET gives the same object */
    assert_int_equal(s->kind, BRINE_PV_LIST);
    assert_int_equal(s->v.seq.n, 2);
    assert_int_equal(get(doc, "k/n")->kind, BRINE_PV_NONE);
    assert_str_value(get(doc, "k/k2"), "v", 1);
    assert_str_value(get(doc, "u"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    assert_true(bits_of(get(doc, "f")->v.f) == 0x8000000000000000ull);
    assert_int_value(get(doc, "i"), -70000);
    assert_int_value(get(doc, "L"), (int64_t)1 << 40);
    brine_pickle__free(doc);

    doc = decode_ok(cpy_proto2, sizeof cpy_proto2);
    root = brine_pickle__root(doc);
    assert_int_equal(root->kind, BRINE_PV_LIST);
    assert_int_equal(root->v.seq.n, 7);
    assert_ptr_equal(root->v.seq.items[0], root->v.seq.items[1]);
    assert_ptr_equal(root->v.seq.items[2]->v.seq.items[0], root->v.seq.items[2]->v.seq.items[1]);
    assert_int_value(root->v.seq.items[3], -1);
    assert_int_value(root->v.seq.items[4], 65535);
    assert_int_value(root->v.seq.items[5], 65536);
    assert_str_value(root->v.seq.items[6], "yz", 2);
    assert_null(brine_pickle__lookup(root, "a")); /* not a dict */
    brine_pickle__free(doc);

    doc = decode_ok(cpy_proto2_bytes, sizeof cpy_proto2_bytes);
    root = brine_pickle__root(doc);
    assert_int_equal(root->v.seq.n, 1);
    assert_int_equal(root->v.seq.items[0]->kind, BRINE_PV_BYTES);
    assert_int_equal(root->v.seq.items[0]->v.str.len, 2);
    assert_memory_equal(root->v.seq.items[0]->v.str.s, "\x00\x01", 2);
    brine_pickle__free(doc);

    doc = decode_ok(cpy_ndarray, sizeof cpy_ndarray);
    assert_int_equal(brine_pickle__nbuffers(doc), 1);
    const brine_pvalue *u = get(doc, "fluid/u");
    assert_int_equal(u->kind, BRINE_PV_NDARRAY);
    assert_int_equal(u->v.array.ndim, 2);
    assert_true(u->v.array.shape[0] == 2 && u->v.array.shape[1] == 3);
    assert_int_equal(u->v.array.dtype, BRINE_F64);
    assert_int_equal(u->v.array.order, 'C');
    assert_int_equal(u->v.array.buffer, 0);
    const brine_pvalue *v = get(doc, "fluid/v");
    assert_int_equal(v->v.array.ndim, 1);
    assert_int_equal(v->v.array.dtype, BRINE_I32);
    assert_int_equal(v->v.array.order, 'F');
    assert_int_equal(v->v.array.buffer, -1);
    assert_int_equal(v->v.array.inband_len, 16);
    assert_ptr_equal(v->v.array.inband, cpy_ndarray + 93); /* points into the stream */
    assert_int_equal(v->v.array.inband[15], 15);
    assert_true(get(doc, "t")->v.f == 0.5);
    assert_null(brine_pickle__lookup(brine_pickle__root(doc), "fluid/u/x"));
    brine_pickle__free(doc);
}

/* An array value's fields. */
static void assert_array(const brine_pvalue *v, int dtype, int ndim, const uint64_t *shape, char order)
{
    assert_int_equal(v->kind, BRINE_PV_NDARRAY);
    assert_int_equal(v->v.array.dtype, dtype);
    assert_int_equal(v->v.array.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_true(v->v.array.shape[i] == shape[i]);
    assert_int_equal(v->v.array.order, order);
    assert_int_equal(v->has_np_dtype, 0);
}

static void test_numpy_pickles(void **state)
{
    (void)state;
    /* protocol 5 in band: _frombuffer of a BYTEARRAY8 (its bytes stay in the stream), a scalar */
    brine_pickle_doc *doc = decode_ok(np_proto5_inband, sizeof np_proto5_inband);
    const brine_pvalue *a = get(doc, "a");
    assert_array(a, BRINE_I16, 2, (const uint64_t[]){3, 2}, 'F');
    assert_int_equal(a->v.array.buffer, -1);
    assert_ptr_equal(a->v.array.inband, np_proto5_inband + 65);
    assert_int_equal(a->v.array.inband_len, 12);
    for (int i = 0; i < 6; i++) /* the bytes of 0..5 in memory (F) order */
        assert_int_equal(a->v.array.inband[2 * i] | a->v.array.inband[2 * i + 1] << 8, i);
    const brine_pvalue *s = get(doc, "s");
    assert_int_equal(s->kind, BRINE_PV_FLOAT);
    assert_true(s->v.f == 1.5);
    assert_int_equal(s->has_np_dtype, 1);
    assert_int_equal(s->np_dtype, BRINE_F32);
    assert_int_equal(brine_pickle__nbuffers(doc), 0);
    walk(brine_pickle__root(doc), 0);
    brine_pickle__free(doc);

    /* protocol 5 out of band: NEXT_BUFFER, a 0-d array, the _frombuffer global from the memo */
    doc = decode_ok(np_proto5_oob, sizeof np_proto5_oob);
    assert_int_equal(brine_pickle__nbuffers(doc), 3);
    assert_array(get(doc, "u"), BRINE_F64, 2, (const uint64_t[]){2, 3}, 'C');
    assert_int_equal(get(doc, "u")->v.array.buffer, 0);
    assert_array(get(doc, "v"), BRINE_U8, 1, (const uint64_t[]){4}, 'C');
    assert_int_equal(get(doc, "v")->v.array.buffer, 1);
    assert_array(get(doc, "z"), BRINE_I64, 0, NULL, 'C');
    assert_int_equal(get(doc, "z")->v.array.buffer, 2);
    assert_null(get(doc, "z")->v.array.inband);
    walk(brine_pickle__root(doc), 0);
    brine_pickle__free(doc);

    /* protocol 2: _reconstruct + BUILD, data from _codecs.encode, __builtin__.bytes() */
    doc = decode_ok(np_proto2, sizeof np_proto2);
    const brine_pvalue *f = get(doc, "f");
    assert_array(f, BRINE_F64, 2, (const uint64_t[]){2, 3}, 'F');
    assert_int_equal(f->v.array.buffer, -1);
    assert_int_equal(f->v.array.inband_len, 48);
    assert_true(f->v.array.inband < np_proto2 || f->v.array.inband >= np_proto2 + sizeof np_proto2);
    static const double fvals[6] = {0, 3, 1, 4, 2, 5}; /* np.arange(6.).reshape(2, 3) in F order */
    for (int i = 0; i < 6; i++) {
        double x;
        memcpy(&x, f->v.array.inband + 8 * i, 8);
        assert_true(x == fvals[i]);
    }
    assert_array(get(doc, "e"), BRINE_I8, 1, (const uint64_t[]){0}, 'C');
    assert_int_equal(get(doc, "e")->v.array.inband_len, 0);
    const brine_pvalue *c = get(doc, "c");
    assert_int_equal(c->kind, BRINE_PV_COMPLEX);
    assert_true(c->v.c.re == 1.0 && c->v.c.im == -2.0);
    assert_int_equal(c->np_dtype, BRINE_C64);
    const brine_pvalue *u = get(doc, "u");
    assert_int_equal(u->kind, BRINE_PV_INT);
    assert_true(u->v.integer.u == UINT64_MAX && !u->v.integer.negative);
    assert_int_equal(u->np_dtype, BRINE_U64);
    walk(brine_pickle__root(doc), 0);
    brine_pickle__free(doc);

    /* protocol 0: text opcodes, numpy's forms with UNICODE data */
    doc = decode_ok(np_proto0, sizeof np_proto0);
    const brine_pvalue *l = get(doc, "i");
    assert_int_equal(l->kind, BRINE_PV_LIST);
    assert_int_equal(l->v.seq.n, 5);
    assert_int_value(l->v.seq.items[0], 1);
    assert_int_value(l->v.seq.items[1], -2);
    assert_int_value(l->v.seq.items[2], (int64_t)1 << 40);
    assert_int_equal(l->v.seq.items[3]->kind, BRINE_PV_BOOL);
    assert_int_equal(l->v.seq.items[3]->v.b, 1);
    assert_int_equal(l->v.seq.items[4]->kind, BRINE_PV_NONE);
    assert_true(get(doc, "f")->v.f == 1.5);
    assert_str_value(get(doc, "s"), "\xc3\xa9\xe2\x82\xac\\\n", 7);
    const brine_pvalue *t = get(doc, "t");
    assert_int_equal(t->kind, BRINE_PV_TUPLE);
    assert_int_value(t->v.seq.items[0], 1);
    assert_str_value(t->v.seq.items[1], "x", 1);
    assert_int_equal(get(doc, "b")->kind, BRINE_PV_BOOL);
    assert_int_equal(get(doc, "b")->np_dtype, BRINE_BOOL);
    assert_int_equal(get(doc, "b")->has_np_dtype, 1);
    const brine_pvalue *arr = get(doc, "a");
    assert_array(arr, BRINE_I32, 1, (const uint64_t[]){3}, 'C');
    assert_int_equal(arr->v.array.inband_len, 12);
    assert_memory_equal(arr->v.array.inband, "\0\0\0\0\1\0\0\0\2\0\0\0", 12);
    walk(brine_pickle__root(doc), 0);
    brine_pickle__free(doc);
}

/* A stream of protocol 0: the n bytes of opcodes at s, then STOP. */
static brine_pickle_doc *decode_text_n(const char *s, size_t n)
{
    static bytes b;
    b.len = 0;
    b_add(&b, s, n);
    b_u8(&b, '.');
    return decode_ok(b.data, b.len);
}

#define decode_text(s) decode_text_n(s, sizeof(s) - 1)

static void test_text_opcodes(void **state)
{
    (void)state;
    /* INT: bools, ints, "000"; LONG with and without L, at the limits */
    brine_pickle_doc *doc = decode_text("(I01\nI00\nI0\nI000\nI-5\nI2147483648\nL9223372036854775808L\n"
                                        "L-9223372036854775808\nL18446744073709551615L\nL-0\nl");
    const brine_pvalue *l = brine_pickle__root(doc);
    assert_int_equal(l->v.seq.n, 10);
    assert_int_equal(l->v.seq.items[0]->kind, BRINE_PV_BOOL);
    assert_int_equal(l->v.seq.items[0]->v.b, 1);
    assert_int_equal(l->v.seq.items[1]->kind, BRINE_PV_BOOL);
    assert_int_equal(l->v.seq.items[1]->v.b, 0);
    assert_int_value(l->v.seq.items[2], 0);
    assert_int_value(l->v.seq.items[3], 0);
    assert_int_value(l->v.seq.items[4], -5);
    assert_int_value(l->v.seq.items[5], 2147483648);
    assert_true(l->v.seq.items[6]->v.integer.u == (uint64_t)1 << 63 && !l->v.seq.items[6]->v.integer.negative);
    assert_int_value(l->v.seq.items[7], INT64_MIN);
    assert_true(l->v.seq.items[8]->v.integer.u == UINT64_MAX);
    assert_int_value(l->v.seq.items[9], 0);
    brine_pickle__free(doc);

    /* FLOAT: what repr() writes, correctly rounded */
    doc = decode_text("(F1.5\nF-0.0\nFinf\nF-inf\nFnan\nF1e+300\nF5e-324\nF0.1\nF2.2250738585072014e-308\nF.5\nF7.\nl");
    l = brine_pickle__root(doc);
    static const uint64_t fbits[] = {0x3ff8000000000000ull, 0x8000000000000000ull, 0x7ff0000000000000ull,
                                     0xfff0000000000000ull, 0,                      0x7e37e43c8800759cull,
                                     0x0000000000000001ull, 0x3fb999999999999aull, 0x0010000000000000ull,
                                     0x3fe0000000000000ull, 0x401c000000000000ull};
    for (size_t i = 0; i < sizeof fbits / sizeof fbits[0]; i++) {
        assert_int_equal(l->v.seq.items[i]->kind, BRINE_PV_FLOAT);
        if (i == 4)
            assert_true(l->v.seq.items[i]->v.f != l->v.seq.items[i]->v.f); /* nan */
        else
            assert_true(bits_of(l->v.seq.items[i]->v.f) == fbits[i]);
    }
    brine_pickle__free(doc);

    /* STRING, BINSTRING, SHORT_BINSTRING: Python 2 str, decoded as ASCII */
    doc = decode_text("(S'a\\'b\\\\c\\n\\t\\x41\\101\\0'\nS\"it's\"\nS''\nT\x02\x00\x00\x00hiU\x03xyzU\x00l");
    l = brine_pickle__root(doc);
    assert_str_value(l->v.seq.items[0], "a'b\\c\n\tAA\0", 10);
    assert_str_value(l->v.seq.items[1], "it's", 4);
    assert_str_value(l->v.seq.items[2], "", 0);
    assert_str_value(l->v.seq.items[3], "hi", 2);
    assert_str_value(l->v.seq.items[4], "xyz", 3);
    assert_str_value(l->v.seq.items[5], "", 0);
    brine_pickle__free(doc);

    /* UNICODE: latin-1 bytes and \u / \U escapes to UTF-8 */
    doc = decode_text("(V\\u005c\\u000a\xe9\\u20ac\\U0001f600a\nV\nl");
    l = brine_pickle__root(doc);
    assert_str_value(l->v.seq.items[0], "\\\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "a", 12);
    assert_str_value(l->v.seq.items[1], "", 0);
    brine_pickle__free(doc);

    /* DICT, LIST, PUT and GET (sharing the memo with BINPUT/BINGET), an empty MARK ... LIST */
    doc = decode_text("(dp0\nV\nI1\nsVk\np00000001\n(lp2\nI7\naq\x03sVm\ng2\nsVn\nh\x03sVo\n(lsVp\n(I1\nI2\ndsVq\n"
                      "(dp99999999999\ns");
    const brine_pvalue *d = brine_pickle__root(doc);
    assert_int_equal(d->kind, BRINE_PV_DICT);
    assert_int_value(get(doc, ""), 1);
    assert_ptr_equal(get(doc, "k")->v.seq.items[0], brine_pickle__dict_get(d, "n", 1)->v.seq.items[0]);
    assert_ptr_equal(get(doc, "n"), get(doc, "k"));
    assert_int_equal(get(doc, "m")->kind, BRINE_PV_LIST); /* d["k"] = the list, then d["m"] too */
    assert_int_equal(get(doc, "o")->kind, BRINE_PV_LIST);
    assert_int_equal(get(doc, "o")->v.seq.n, 0);
    assert_int_equal(get(doc, "p")->kind, BRINE_PV_DICT);
    assert_int_equal(get(doc, "p")->v.dict.n, 1);
    assert_int_equal(get(doc, "q")->v.dict.n, 0);
    walk(d, 0);
    brine_pickle__free(doc);

    /* BYTEARRAY8 */
    static const uint8_t ba[] = {0x80, 0x05, 0x96, 3, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', '.'};
    doc = decode_ok(ba, sizeof ba);
    assert_int_equal(brine_pickle__root(doc)->kind, BRINE_PV_BYTEARRAY);
    assert_int_equal(brine_pickle__root(doc)->v.str.len, 3);
    assert_ptr_equal(brine_pickle__root(doc)->v.str.s, (const char *)ba + 11);
    brine_pickle__free(doc);
}

/* A string literal and its length (it may hold NUL bytes). */
#define ARGS(s) s, sizeof(s) - 1
#define b_lit(b, s) b_add(b, s, sizeof(s) - 1)

/* numpy 2's forms: numpy._core module names, _frombuffer's axis_order. */
static void test_numpy2_forms(void **state)
{
    (void)state;
    bytes *b = calloc(1, sizeof *b);
    assert_non_null(b);
    static const char dtype_f8[] = "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x03\x8c\x01<NNNJ\xff\xff\xff\xff"
                                   "J\xff\xff\xff\xffK\x00tb";
    static const struct {
        const char *args; /* after the buffer and the dtype */
        size_t len;
        int ndim;
        uint64_t shape[3];
        char order;
    } cases[] = {
        {ARGS("(K\x02K\x03K\x04t\x8c\x01" "C"), 3, {2, 3, 4}, 'C'},
        {ARGS("(K\x02K\x03K\x04t\x8c\x01" "CN"), 3, {2, 3, 4}, 'C'},
        {ARGS("(K\x02K\x03K\x04t\x8c\x01" "FN"), 3, {2, 3, 4}, 'F'},
        {ARGS("(K\x02K\x03K\x04t\x8c\x01" "K(K\x00K\x01K\x02t"), 3, {2, 3, 4}, 'C'},
        {ARGS("(K\x02K\x03K\x04t\x8c\x01" "K(K\x02K\x01K\x00t"), 3, {4, 3, 2}, 'F'},
        {ARGS("(K\x02K\x01K\x04t\x8c\x01" "K(K\x02K\x01K\x00t"), 3, {4, 1, 2}, 'F'},
        {ARGS("(K\x05K\x01K\x01t\x8c\x01" "K(K\x02K\x01K\x00t"), 3, {1, 1, 5}, 'C'}, /* one extent != 1 */
        {ARGS("(K\x00K\x03t\x8c\x01" "F"), 2, {0, 3}, 'C'},                      /* empty */
        {ARGS(")\x8c\x01" "K)"), 0, {0}, 'C'},                                    /* 0-d */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b->len = 0;
        b_lit(b, "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97");
        b_add(b, dtype_f8, sizeof dtype_f8 - 1);
        b_add(b, cases[i].args, cases[i].len);
        b_lit(b, "tR.");
        brine_pickle_doc *doc = decode_ok(b->data, b->len);
        assert_array(brine_pickle__root(doc), BRINE_F64, cases[i].ndim, cases[i].shape, cases[i].order);
        assert_int_equal(brine_pickle__root(doc)->v.array.buffer, 0);
        brine_pickle__free(doc);
    }
    /* numpy._core.multiarray: _reconstruct and scalar; in-band data as BINBYTES */
    b->len = 0;
    b_lit(b, "\x80\x05](cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R");
    b_lit(b, "(K\x01K\x02K\x01\x86");
    b_add(b, dtype_f8, sizeof dtype_f8 - 1);
    b_lit(b, "\x88" "B\x10\0\0\0");
    b_add(b, "\0\0\0\0\0\0\xf0?\0\0\0\0\0\0\0@", 16);
    b_lit(b, "tb");
    b_lit(b, "cnumpy._core.multiarray\nscalar\ncnumpy\ndtype\n\x8c\x02i1\x89\x88\x87R" "C\x01\xff\x86R");
    b_lit(b, "cnumpy._core.multiarray\nscalar\ncnumpy\ndtype\n\x8c\x02u2\x89\x88\x87R" "C\x02\xff\xff\x86R");
    b_lit(b, "cnumpy._core.multiarray\nscalar\ncnumpy\ndtype\n\x8c\x02i8\x89\x88\x87R" "C\x08");
    b_add(b, "\0\0\0\0\0\0\0\x80", 8);
    b_lit(b, "\x86R");
    b_lit(b, "cnumpy._core.multiarray\nscalar\ncnumpy\ndtype\n\x8c\x03" "c16\x89\x88\x87R" "C\x10");
    b_add(b, "\0\0\0\0\0\0\xf0?\0\0\0\0\0\0\xf0\xbf", 16);
    b_lit(b, "\x86R");
    b_lit(b, "e.");
    brine_pickle_doc *doc = decode_ok(b->data, b->len);
    const brine_pvalue *l = brine_pickle__root(doc);
    assert_int_equal(l->v.seq.n, 5);
    assert_array(l->v.seq.items[0], BRINE_F64, 2, (const uint64_t[]){2, 1}, 'C'); /* F normalised */
    assert_int_equal(l->v.seq.items[0]->v.array.inband_len, 16);
    assert_int_value(l->v.seq.items[1], -1);
    assert_int_equal(l->v.seq.items[1]->np_dtype, BRINE_I8);
    assert_int_value(l->v.seq.items[2], 65535);
    assert_int_equal(l->v.seq.items[2]->np_dtype, BRINE_U16);
    assert_int_value(l->v.seq.items[3], INT64_MIN);
    assert_true(l->v.seq.items[4]->v.c.re == 1.0 && l->v.seq.items[4]->v.c.im == -1.0);
    assert_int_equal(l->v.seq.items[4]->np_dtype, BRINE_C128);
    walk(l, 0);
    brine_pickle__free(doc);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Other accepted forms */

static void test_accepts(void **state)
{
    (void)state;
    bytes *b = calloc(1, sizeof *b);
    assert_non_null(b);

    /* EMPTY_DICT; SETITEM; duplicate keys: the later value wins, the first position stays. */
    b_str(b, "\x80\x05}");
    b_sbu(b, "a"); b_u8(b, 'K'); b_u8(b, 1); b_u8(b, 's');
    b_sbu(b, "b"); b_u8(b, 'K'); b_u8(b, 2); b_u8(b, 's');
    b_u8(b, '('); b_sbu(b, "a"); b_u8(b, 'K'); b_u8(b, 3); b_sbu(b, "a"); b_u8(b, 'K'); b_u8(b, 4); b_u8(b, 'u');
    /* int keys merge too; a None key is allowed but cannot be looked up */
    b_u8(b, 'K'); b_u8(b, 9); b_u8(b, 'N'); b_u8(b, 's');
    b_u8(b, 0x8a); b_u8(b, 2); b_u8(b, 9); b_u8(b, 0); b_u8(b, 'K'); b_u8(b, 10); b_u8(b, 's'); /* LONG1 9 */
    b_u8(b, 'N'); b_u8(b, 'N'); b_u8(b, 's');
    /* BINUNICODE, BINUNICODE8, BINBYTES, BINBYTES8, LONG4, empty LONG1 */
    b_u8(b, 'X'); b_le(b, 2, 4); b_str(b, "bu"); b_u8(b, 0x8d); b_le(b, 3, 8); b_str(b, "\xc3\xa9!"); b_u8(b, 's');
    b_sbu(b, "bb"); b_u8(b, 'B'); b_le(b, 1, 4); b_str(b, "z"); b_u8(b, 's');
    b_sbu(b, "b8"); b_u8(b, 0x8e); b_le(b, 0, 8); b_u8(b, 's');
    b_sbu(b, "l4"); b_u8(b, 0x8b); b_le(b, 12, 4); b_le(b, (uint64_t)-5, 8); b_le(b, UINT64_MAX, 4); b_u8(b, 's');
    b_sbu(b, "l0"); b_u8(b, 0x8a); b_u8(b, 0); b_u8(b, 's');
    /* EMPTY_LIST, APPEND, APPENDS, LONG_BINPUT with a huge index, LONG_BINGET, BINPUT overwrite */
    b_sbu(b, "L"); b_u8(b, ']'); b_u8(b, 'r'); b_le(b, 0xfffffff0u, 4);
    b_u8(b, 'K'); b_u8(b, 1); b_u8(b, 'q'); b_u8(b, 3); b_u8(b, 'a');
    b_u8(b, '('); b_u8(b, 'K'); b_u8(b, 2); b_u8(b, 'q'); b_u8(b, 3); b_u8(b, 'e'); /* memo 3 is now 2 */
    b_u8(b, '('); b_u8(b, 'h'); b_u8(b, 3); b_u8(b, 'e'); b_u8(b, '('); b_u8(b, 'e'); b_u8(b, 's');
    b_sbu(b, "L2"); b_u8(b, 'j'); b_le(b, 0xfffffff0u, 4); b_u8(b, 's');
    /* tuples; GLOBAL complex with int arguments; a NEXT_BUFFER left alone */
    b_sbu(b, "t"); b_u8(b, '('); b_u8(b, ')'); b_u8(b, 'N'); b_u8(b, 0x88); b_u8(b, 0x89); b_u8(b, 't'); b_u8(b, 's');
    b_sbu(b, "z"); b_str(b, "cbuiltins\ncomplex\n"); b_u8(b, 'J'); b_le(b, (uint64_t)-3, 4); b_u8(b, 'K'); b_u8(b, 4);
    b_u8(b, 0x86); b_u8(b, 'R'); b_u8(b, 's');
    b_sbu(b, "nb"); b_u8(b, 0x97); b_u8(b, 's');
    /* FRAME between opcodes */
    b_u8(b, 0x95); b_le(b, 1, 8);
    b_u8(b, '.');
    brine_pickle_doc *doc = decode_ok(b->data, b->len);
    const brine_pvalue *root = brine_pickle__root(doc);
    assert_str_value(root->v.dict.keys[0], "a", 1);
    assert_int_value(root->v.dict.values[0], 4);
    assert_int_value(get(doc, "a"), 4);
    assert_int_value(get(doc, "b"), 2);
    assert_int_equal(root->v.dict.keys[2]->kind, BRINE_PV_INT);
    assert_int_value(root->v.dict.values[2], 10);
    assert_int_equal(root->v.dict.keys[3]->kind, BRINE_PV_NONE);
    assert_str_value(get(doc, "bu"), "\xc3\xa9!", 3);
    assert_int_equal(get(doc, "bb")->kind, BRINE_PV_BYTES);
    assert_int_equal(get(doc, "b8")->v.str.len, 0);
    assert_int_value(get(doc, "l4"), -5);
    assert_int_value(get(doc, "l0"), 0);
    const brine_pvalue *l = get(doc, "L");
    assert_ptr_equal(l, get(doc, "L2"));
    assert_int_equal(l->v.seq.n, 3);
    assert_int_value(l->v.seq.items[0], 1);
    assert_int_value(l->v.seq.items[1], 2);
    assert_ptr_equal(l->v.seq.items[2], l->v.seq.items[1]);
    const brine_pvalue *t = get(doc, "t");
    assert_int_equal(t->v.seq.n, 4);
    assert_int_equal(t->v.seq.items[0]->kind, BRINE_PV_TUPLE);
    assert_int_equal(t->v.seq.items[3]->v.b, 0);
    assert_true(get(doc, "z")->v.c.re == -3.0 && get(doc, "z")->v.c.im == 4.0);
    assert_int_equal(get(doc, "nb")->kind, BRINE_PV_BUFFER);
    assert_true(get(doc, "nb")->v.buffer == 0);
    assert_int_equal(brine_pickle__nbuffers(doc), 1);
    walk(root, 0);
    brine_pickle__free(doc);

    /* 250 nested tuples are fine; BRINE_PICKLE_MAX_NEST + 1 are not. */
    for (int depth = 250; depth <= BRINE_PICKLE_MAX_NEST + 1; depth += BRINE_PICKLE_MAX_NEST + 1 - 250) {
        b->len = 0;
        b_str(b, "\x80\x05)");
        for (int i = 0; i < depth; i++)
            b_u8(b, 0x85);
        b_u8(b, '.');
        if (depth <= BRINE_PICKLE_MAX_NEST) {
            doc = decode_ok(b->data, b->len);
            assert_int_equal(brine_pickle__root(doc)->depth, depth);
            brine_pickle__free(doc);
        } else {
            expect_corrupt(b->data, b->len, "nest deeper");
        }
    }
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Refusals */

static void test_refused_globals(void **state)
{
    (void)state;
    static const char *const names[] = {
        "os\nsystem\n", "builtins\neval\n", "builtins\nexec\n", "__builtin__\neval\n", "numpy\nload\n",
        "numpy.core.multiarray\n_reconstruct2\n", "numpy\nndarray \n", "builtins\ncomplex\r\n", "\n\n",
        "numpy\nfrombuffer\n", "numpy.core.numeric\nfrombuffer\n", "numpy.core\n_frombuffer\n",
        "numpy._core.multiarray\n_vec_string\n", "numpy\nmatrix\n", "numpy.ma.core\n_mareconstruct\n",
        "_codecs\ndecode\n", "codecs\nencode\n", "copyreg\n_reconstructor\n", "copy_reg\n_reconstructor\n",
        "builtins\nbytearray\n", "__builtin__\nset\n", "numpy.dtypes\nFloat64DType\n", "numpy\nfloat64\n",
    };
    bytes b;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        b.len = 0;
        b_str(&b, "\x80\x05");
        b_u8(&b, 'c');
        b_str(&b, names[i]);
        b_str(&b, "\x29R.");
        expect_corrupt(b.data, b.len, "GLOBAL at byte 2: global '");
    }
    b.len = 0;
    b_str(&b, "\x80\x05");
    b_str(&b, "cos\nsystem\n");
    expect_corrupt(b.data, b.len, "global 'os system' is not allowed");
    /* STACK_GLOBAL too, and with non-str arguments */
    b.len = 0;
    b_str(&b, "\x80\x05");
    b_sbu(&b, "builtins");
    b_sbu(&b, "eval");
    b_u8(&b, 0x93);
    expect_corrupt(b.data, b.len, "STACK_GLOBAL at byte 18: global 'builtins eval' is not allowed");
    b.len = 0;
    b_str(&b, "\x80\x05");
    b_u8(&b, 'C'); b_u8(&b, 5); b_str(&b, "numpy");
    b_sbu(&b, "ndarray");
    b_u8(&b, 0x93);
    expect_corrupt(b.data, b.len, "must be str");
    /* A GLOBAL line without its end of line */
    expect_corrupt((const uint8_t *)"\x80\x05" "cnumpy\nndarray", 16, "end of line");
}

typedef struct bad_case {
    const char *what;
    const char *stream; /* hex-free: C string with escapes */
    size_t len;
    const char *msg;
} bad_case;

#define BAD(what, s, msg) {what, s, sizeof(s) - 1, msg}

static const bad_case bad_cases[] = {
    BAD("empty", "", "empty"),
    BAD("text INT without newline", "I1", "no end of line"),
    BAD("PROTO 6", "\x80\x06N.", "protocol 6"),
    BAD("second PROTO", "\x80\x05\x80\x05N.", "PROTO at byte 2"),
    BAD("no STOP", "\x80\x05N", "without STOP"),
    BAD("trailing bytes", "\x80\x05N.N", "1 bytes follow STOP"),
    BAD("two values at STOP", "\x80\x05NN.", "holds 2 values"),
    BAD("nothing at STOP", "\x80\x05.", "holds 0 values"),
    BAD("open MARK at STOP", "\x80\x05(N.", "never closed"),
    BAD("POP", "\x80\x05NN0.", "opcode 0x30 at byte 4"),
    BAD("text INT hex", "\x80\x05I0x1\n.", "INT at byte 2: '0x1' is not a decimal integer"),
    BAD("READONLY_BUFFER", "\x80\x05\x97\x98.", "READONLY_BUFFER"),
    BAD("NEWOBJ", "\x80\x05\x81.", "opcode 0x81"),
    BAD("EMPTY_SET", "\x80\x05\x8f.", "opcode 0x8f"),
    BAD("BYTEARRAY8 past end", "\x80\x05\x96\x03\0\0\0\0\0\0\0a.", "BYTEARRAY8 at byte 2: needs 3 more bytes but only 2"),
    BAD("INST", "\x80\x05(ios\nsystem\n.", "INST is not supported"),
    BAD("PERSID", "P1\n.", "PERSID is not supported (persistent ids"),
    BAD("EXT1", "\x80\x05\x82\x01.", "EXT1 is not supported"),
    BAD("unknown opcode", "\x80\x05\xff.", "unknown opcode 0xff"),
    BAD("APPEND on empty stack", "\x80\x05N" "a.", "APPEND at byte 3: stack underflow"),
    BAD("APPEND below MARK", "\x80\x05](Na.", "stack underflow"),
    BAD("APPEND to a dict", "\x80\x05}Na.", "not a list"),
    BAD("APPENDS without MARK", "\x80\x05]Ne.", "no MARK"),
    BAD("APPENDS with nothing below", "\x80\x05(Ne.", "no container below"),
    BAD("empty APPENDS to a dict", "\x80\x05}(e.", "applies to a dict"),
    BAD("SETITEM to a list", "\x80\x05]NNs.", "not a dict"),
    BAD("SETITEMS odd", "\x80\x05}(NNNu.", "odd number"),
    BAD("list key", "\x80\x05}]Ns.", "cannot be a dict key"),
    BAD("dict key", "\x80\x05}}Ns.", "cannot be a dict key"),
    BAD("TUPLE without MARK", "\x80\x05Nt.", "no MARK"),
    BAD("TUPLE2 underflow", "\x80\x05N\x86.", "TUPLE2 at byte 3: stack underflow"),
    BAD("TUPLE3 over MARK", "\x80\x05NN(N\x87.", "stack underflow"),
    BAD("recursive list", "\x80\x05]\x94h\x00" "a.", "recursive"),
    BAD("list in itself via tuple", "\x80\x05]\x94h\x00\x85" "a.", "recursive"),
    BAD("list changed after placing", "\x80\x05]\x94\x85h\x00Na.", "recursive"),
    BAD("dict in itself", "\x80\x05}\x94Nh\x00s.", "recursive"),
    BAD("BINGET undefined", "\x80\x05Nh\x05.", "BINGET at byte 3: memo entry 5 was never stored"),
    BAD("LONG_BINGET undefined", "\x80\x05j\x01\0\0\0.", "memo entry 1"),
    BAD("MEMOIZE on empty", "\x80\x05\x94N.", "stack underflow"),
    BAD("BINPUT on empty", "\x80\x05q\x00N.", "stack underflow"),
    BAD("BININT short", "\x80\x05J\x01\x02", "needs 4 more bytes but only 2 remain"),
    BAD("BINFLOAT short", "\x80\x05G\0\0\0\0\0\0\0", "BINFLOAT at byte 2"),
    BAD("LONG1 past end", "\x80\x05\x8a\x05\0\0.", "needs 5 more bytes"),
    BAD("LONG1 too big", "\x80\x05\x8a\x09\0\0\0\0\0\0\0\0\x01.", "does not fit"),
    BAD("LONG1 too negative", "\x80\x05\x8a\x09\0\0\0\0\0\0\0\0\xff.", "below -2**63"),
    BAD("LONG1 uint64 max + 1", "\x80\x05\x8a\x0a\0\0\0\0\0\0\0\0\x01\0.", "does not fit"),
    BAD("LONG4 negative length", "\x80\x05\x8b\xff\xff\xff\xff.", "negative byte count"),
    BAD("LONG4 past end", "\x80\x05\x8b\x00\x00\x00\x01.", "needs 16777216 more bytes"),
    BAD("SHORT_BINUNICODE past end", "\x80\x05\x8c\x05" "ab.", "needs 5 more bytes but only 3"),
    BAD("BINUNICODE past end", "\x80\x05X\xff\xff\xff\xff.", "needs 4294967295"),
    BAD("BINUNICODE8 past end", "\x80\x05\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "needs 18446744073709551615"),
    BAD("BINBYTES8 past end", "\x80\x05\x8e\0\0\0\0\0\0\0\x80.", "BINBYTES8 at byte 2"),
    BAD("SHORT_BINBYTES past end", "\x80\x05" "C\x02" "a", "SHORT_BINBYTES at byte 2"),
    BAD("FRAME past end", "\x80\x05\x95\x10\0\0\0\0\0\0\0N.", "FRAME at byte 2"),
    BAD("overlong UTF-8", "\x80\x05\x8c\x02\xc0\x80.", "not valid UTF-8"),
    BAD("surrogate", "\x80\x05\x8c\x03\xed\xa0\x80.", "not valid UTF-8"),
    BAD("above U+10FFFF", "\x80\x05\x8c\x04\xf4\x90\x80\x80.", "not valid UTF-8"),
    BAD("truncated UTF-8", "\x80\x05\x8c\x02\xe2\x82.", "not valid UTF-8"),
    BAD("lone continuation", "\x80\x05\x8c\x01\x80.", "not valid UTF-8"),
    BAD("REDUCE of a str", "\x80\x05\x8c\x01x)R.", "calls a str"),
    BAD("REDUCE with a list", "\x80\x05" "cbuiltins\ncomplex\n]R.", "not a tuple"),
    BAD("uncalled global at STOP", "\x80\x05" "cbuiltins\ncomplex\n.", "uncalled global"),
    BAD("global in a tuple", "\x80\x05" "cbuiltins\ncomplex\n\x85.", "a tuple holding a global"),
    BAD("global in a list", "\x80\x05]" "cbuiltins\ncomplex\n" "a.", "a global may only be an argument"),
    BAD("global-holding tuple in a tuple", "\x80\x05" "cbuiltins\ncomplex\n\x85\x85.", "not an item of a tuple"),
    BAD("complex of str", "\x80\x05" "cbuiltins\ncomplex\n\x8c\x01" "1K\x01\x86R.", "builtins.complex takes"),
    BAD("complex of 1", "\x80\x05" "cbuiltins\ncomplex\nK\x01\x85R.", "builtins.complex takes"),
    BAD("complex of bool", "\x80\x05" "cbuiltins\ncomplex\n\x88K\x01\x86R.", "builtins.complex takes"),
    BAD("ndarray of 5", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00Nt" "R.", "got 5 arguments"),
    BAD("ndarray shape int", "\x80\x05" "cnumpy\nndarray\n(K\x02\x8c\x03<f8\x97K\x00N\x8c\x01" "Ct" "R.", "shape must be a tuple"),
    BAD("ndarray shape negative", "\x80\x05" "cnumpy\nndarray\n(J\xff\xff\xff\xff\x85\x8c\x03<f8\x97K\x00N\x8c\x01" "Ct" "R.", "negative int"),
    BAD("ndarray shape float", "\x80\x05" "cnumpy\nndarray\n(G\0\0\0\0\0\0\0\0\x85\x8c\x03<f8\x97K\x00N\x8c\x01" "Ct" "R.", "holds a float"),
    BAD("ndarray 9 dims", "\x80\x05" "cnumpy\nndarray\n((K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t\x8c\x03<f8\x97K\x00N\x8c\x01" "Ct" "R.", "at most 8"),
    BAD("ndarray dtype >f8", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03>f8\x97K\x00N\x8c\x01" "Ct" "R.", "unknown numpy dtype '>f8'"),
    BAD("ndarray dtype bytes", "\x80\x05" "cnumpy\nndarray\n()C\x03<f8\x97K\x00N\x8c\x01" "Ct" "R.", "dtype is a bytes"),
    BAD("ndarray buffer None", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8NK\x00N\x8c\x01" "Ct" "R.", "buffer is a None"),
    BAD("ndarray in-band too short", "\x80\x05" "cnumpy\nndarray\n(K\x02\x85\x8c\x03<i2C\x03" "abcK\x00N\x8c\x01" "Ct" "R.", "has 3 bytes, its shape and dtype need 4"),
    BAD("ndarray offset 1", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x01N\x8c\x01" "Ct" "R.", "offset must be"),
    BAD("ndarray offset False", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97\x89N\x8c\x01" "Ct" "R.", "offset must be"),
    BAD("ndarray strides", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00)\x8c\x01" "Ct" "R.", "strides must be None"),
    BAD("ndarray order X", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00N\x8c\x01" "Xt" "R.", "order must be"),
    BAD("ndarray order CC", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00N\x8c\x02" "CCt" "R.", "order must be"),
    BAD("ndarray order None", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00NNt" "R.", "order must be"),
    /* text opcodes */
    BAD("INT +1", "I+1\n.", "not a decimal integer"),
    BAD("INT -0", "I-0\n.", "ambiguous"),
    BAD("INT leading zeros", "I010\n.", "leading zeros"),
    BAD("INT 2**64", "I18446744073709551616\n.", "does not fit in 64 bits"),
    BAD("INT empty", "I\n.", "is not a decimal integer"),
    BAD("INT -", "I-\n.", "is not a decimal integer"),
    BAD("LONG below", "L-9223372036854775809L\n.", "below -2**63"),
    BAD("LONG only L", "LL\n.", "is not a decimal integer"),
    BAD("FLOAT comma", "F1,5\n.", "not a float"),
    BAD("FLOAT spaces", "F 1.5\n.", "not a float"),
    BAD("FLOAT exponent", "F1e\n.", "not a float"),
    BAD("FLOAT overflow", "F-1e400\n.", "out of the range"),
    BAD("FLOAT no end of line", "F1.5", "FLOAT at byte 0: the float has no end of line"),
    BAD("STRING unquoted", "Sa\n.", "must be quoted"),
    BAD("STRING one quote", "S'\n.", "must be quoted"),
    BAD("STRING lone backslash", "S'a\\'\n.", "lone backslash"),
    BAD("STRING \\x1", "S'\\x1'\n.", "escape '\\x'"),
    BAD("STRING \\N", "S'\\N{DASH}'\n.", "escape '\\N'"),
    BAD("STRING octal 200", "S'\\200'\n.", "0x80: not ASCII"),
    BAD("BINSTRING not ASCII", "T\x01\0\0\0\xff.", "not ASCII"),
    BAD("BINSTRING negative", "T\xff\xff\xff\xff.", "negative byte count"),
    BAD("BINSTRING past end", "T\x05\0\0\0ab.", "needs 5 more bytes but only 3"),
    BAD("SHORT_BINSTRING past end", "U\x05" "ab.", "SHORT_BINSTRING at byte 0: needs 5"),
    BAD("UNICODE raw backslash", "Va\\b\n.", "starts no \\uXXXX"),
    BAD("UNICODE truncated u", "V\\u00e\n.", "truncated \\u escape"),
    BAD("UNICODE bad hex", "V\\u00eg\n.", "bad \\u escape"),
    BAD("UNICODE surrogate", "V\\udfff\n.", "surrogate"),
    BAD("UNICODE huge", "V\\Uffffffff\n.", "above U+10FFFF"),
    BAD("PUT negative", "Np-1\n.", "negative memo index"),
    BAD("PUT not a number", "Npx\n.", "is not a decimal integer"),
    BAD("PUT on empty stack", "p0\nN.", "stack underflow"),
    BAD("GET undefined", "g3\n.", "GET at byte 0: memo entry 3 was never stored"),
    BAD("DICT odd", "(NNNd.", "odd number"),
    BAD("DICT list key", "(]Nd.", "cannot be a dict key"),
    BAD("LIST without MARK", "Nl.", "no MARK"),
    BAD("bytearray key", "\x80\x05}\x96\x00\0\0\0\0\0\0\0Ns.", "a bytearray cannot be a dict key"),
    /* numpy.dtype */
    BAD("dtype f2", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f2\x89\x88\x87R.", "numpy dtype 'f2' (float16)"),
    BAD("dtype O8", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "O8\x89\x88\x87R.", "'O8' (object)"),
    BAD("dtype <f8", "\x80\x05" "cnumpy\ndtype\n\x8c\x03" "<f8\x89\x88\x87R.", "'<f8' (unknown)"),
    BAD("dtype 2 args", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x86R.", "numpy.dtype takes (code, align, copy)"),
    BAD("dtype int flags", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8K\x00K\x01\x87R.", "numpy.dtype takes"),
    BAD("dtype alone", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R.", "stream's value is a numpy.dtype"),
    BAD("dtype in a dict", "\x80\x05}N" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87Rs.", "numpy.dtype may only be an argument"),
    BAD("dtype state short", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x03\x8c\x01<tb.", "must be numpy's (3, '<'"),
    BAD("dtype state version 4", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x04\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "must be numpy's"),
    BAD("dtype state fields", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x03\x8c\x01<N)NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "must be numpy's"),
    BAD("dtype big-endian", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x03\x8c\x01>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "float64 with byte order '>' is big-endian"),
    BAD("dtype | for f8", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "only 1-byte dtypes"),
    BAD("dtype byte order x", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R(K\x03\x8c\x01xNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "byte order 'x'"),
    BAD("dtype built twice", "\x80\x05" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x94(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94" "bh\x01" "b.", "already has its state"),
    BAD("dtype built after use", "\x80\x05" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x94" "C\x01\x07\x86Rh\x00(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "after it was used"),
    /* BUILD on anything else */
    BAD("BUILD on a list", "\x80\x05]}b.", "BUILD applies only to a numpy.dtype or numpy's _reconstruct array, not to a list"),
    BAD("BUILD on an array", "\x80\x05" "cnumpy\nndarray\n()\x8c\x03<f8\x97K\x00N\x8c\x01" "Ct" "R}b.", "not to a numpy.ndarray"),
    BAD("BUILD on a global", "\x80\x05" "cnumpy\ndtype\nNb.", "not to a global"),
    BAD("BUILD underflow", "\x80\x05}b.", "BUILD at byte 3: stack underflow"),
    /* numpy.core.multiarray.scalar */
    BAD("scalar 1 arg", "\x80\x05" "cnumpy.core.multiarray\nscalar\nC\x01\x00\x85R.", "scalar takes exactly (numpy.dtype, bytes)"),
    BAD("scalar of str", "\x80\x05" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x8c\x01" "a\x86R.", "scalar takes exactly"),
    BAD("scalar of bytearray", "\x80\x05" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x96\x01\0\0\0\0\0\0\0" "a\x86R.", "scalar takes exactly"),
    BAD("scalar size", "\x80\x05" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "i4\x89\x88\x87R" "C\x03" "abc\x86R.", "a numpy int32 scalar has 3 bytes, not 4"),
    BAD("scalar bool 2", "\x80\x05" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "b1\x89\x88\x87R" "C\x01\x02\x86R.", "not 0 or 1"),
    /* numpy.core.numeric._frombuffer */
    BAD("frombuffer 3 args", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)tR.", "got 3 arguments"),
    BAD("frombuffer 6 args", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "CNNtR.", "got 6 arguments"),
    BAD("frombuffer str dtype", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97\x8c\x03<f8)\x8c\x01" "CtR.", "dtype is a str, not a numpy.dtype"),
    BAD("frombuffer shape list", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R]\x8c\x01" "CtR.", "shape must be a tuple"),
    BAD("frombuffer order A", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "AtR.", "order must be 'C', 'F' or 'K'"),
    BAD("frombuffer order NUL", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01\x00tR.", "order must be 'C', 'F' or 'K'"),
    BAD("frombuffer None buffer", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(N" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "CtR.", "buffer is a None"),
    BAD("frombuffer short", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(C\x07" "abcdefg" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "CtR.", "has 7 bytes, its shape and dtype need 8"),
    BAD("frombuffer K without axes", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "KtR.", "order 'K' needs an axis_order of 0 ints"),
    BAD("frombuffer K axes None", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R)\x8c\x01" "KNtR.", "needs an axis_order"),
    BAD("frombuffer C with axes", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87RK\x02\x85\x8c\x01" "CK\x00\x85tR.", "must be None when the order is 'C'"),
    BAD("frombuffer axes repeat", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87RK\x02K\x02\x86\x8c\x01" "KK\x00K\x00\x86tR.", "not a permutation"),
    BAD("frombuffer axes out of range", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87RK\x02K\x02\x86\x8c\x01" "KK\x00K\x02\x86tR.", "not a permutation"),
    BAD("frombuffer axes length", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87RK\x02K\x02\x86\x8c\x01" "KK\x00\x85tR.", "axis_order of 2 ints"),
    BAD("frombuffer axes permuted", "\x80\x05" "cnumpy._core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R(K\x02K\x02K\x02t\x8c\x01" "K(K\x00K\x02K\x01ttR.", "axis_order (0, 2, 1) is neither the identity nor the reversal"),
    BAD("frombuffer numpy int extent", "\x80\x05" "cnumpy.core.numeric\n_frombuffer\n(\x97" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R" "C\x01\x02\x86R\x85\x8c\x01" "CtR.", "shape holds a numpy int"),
    /* numpy.core.multiarray._reconstruct */
    BAD("reconstruct of complex", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cbuiltins\ncomplex\nK\x00\x85" "C\x01" "b\x87R.", "_reconstruct takes exactly (numpy.ndarray, (0,), b'b')"),
    BAD("reconstruct (1,)", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x01\x85" "C\x01" "b\x87R.", "_reconstruct takes exactly"),
    BAD("reconstruct b'c'", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "c\x87R.", "_reconstruct takes exactly"),
    BAD("reconstruct without BUILD", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R.", "stream's value is a numpy _reconstruct array before its BUILD"),
    BAD("reconstruct in a list", "\x80\x05]" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "a.", "used before its BUILD"),
    BAD("reconstruct state version 0", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "(K\x01\x85" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x89" "C\x01" "atb.", "must be (1, shape, numpy.dtype, is_fortran, bytes)"),
    BAD("reconstruct data bytearray", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "(K\x01K\x01\x85" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x89\x96\x01\0\0\0\0\0\0\0" "atb.", "must be (1, shape"),
    BAD("reconstruct fortran 2", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "(K\x01K\x01\x85" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87RK\x02" "C\x01" "atb.", "must be (1, shape"),
    BAD("reconstruct data short", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "(K\x01K\x02\x85" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x89" "C\x01" "atb.", "has 1 bytes of data, its shape and dtype need 2"),
    BAD("reconstruct built twice", "\x80\x05" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\nK\x00\x85" "C\x01" "b\x87R" "(K\x01K\x01\x85" "cnumpy\ndtype\n\x8c\x02" "u1\x89\x88\x87R\x89" "C\x01" "at\x94" "bh\x00" "b.", "not to a numpy.ndarray"),
    /* _codecs.encode, bytes */
    BAD("encode utf-8", "\x80\x02" "c_codecs\nencode\n\x8c\x01" "a\x8c\x05" "utf-8\x86R.", "_codecs.encode takes exactly (str, 'latin1')"),
    BAD("encode of bytes", "\x80\x02" "c_codecs\nencode\nC\x01" "a\x8c\x06" "latin1\x86R.", "_codecs.encode takes exactly"),
    BAD("encode above U+00FF", "\x80\x02" "c_codecs\nencode\n\x8c\x02\xc4\x80\x8c\x06" "latin1\x86R.", "above U+00FF"),
    BAD("bytes(5)", "\x80\x02" "c__builtin__\nbytes\nK\x05\x85R.", "builtins.bytes takes no arguments"),
    BAD("complex of numpy float", "\x80\x05" "cbuiltins\ncomplex\n" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n\x8c\x02" "f8\x89\x88\x87R" "C\x08\0\0\0\0\0\0\0\0\x86RK\x00\x86R.", "builtins.complex takes"),
};

static void test_refused_streams(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        brine_error err;
        brine_pickle_doc *doc = NULL;
        int rc = decode(&doc, (const uint8_t *)bad_cases[i].stream, bad_cases[i].len, &err);
        if (rc != BRINE_ECORRUPT)
            fail_msg("%s: expected ECORRUPT, got %d (%s)", bad_cases[i].what, rc, err.msg);
        if (!strstr(err.msg, bad_cases[i].msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad_cases[i].what, err.msg, bad_cases[i].msg);
    }
    /* A NULL error record is allowed. */
    brine_pickle_doc *doc = (brine_pickle_doc *)1;
    assert_int_equal(brine_pickle__decode(&doc, (const uint8_t *)"NN.", 3, NULL, NULL), BRINE_ECORRUPT);
    assert_null(doc);
    brine_pickle__free(NULL);
    assert_null(brine_pickle__root(NULL));
}

/* ------------------------------------------------------------------------ */
/* Truncations and mutations */

/* A state with a bit of everything, as brine writes it. */
static uint8_t *sample_stream(const brine_allocator *a, size_t *len, int nkeys, int *rc)
{
    char key[32];
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, a);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_key(&e, "fluid", 5);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_key(&e, "u", 1);
    brine_pickle__enc_ndarray(&e, 2, (const uint64_t[]){64, 32}, "<f8", 'F');
    brine_pickle__enc_key(&e, "empty", 5);
    brine_pickle__enc_dict_begin(&e);
    brine_pickle__enc_dict_end(&e);
    brine_pickle__enc_key(&e, "z", 1);
    brine_pickle__enc_complex(&e, 1.0, -2.5);
    brine_pickle__enc_dict_end(&e);
    brine_pickle__enc_key(&e, "t", 1);
    brine_pickle__enc_float(&e, 0.125);
    brine_pickle__enc_key(&e, "step", 4);
    brine_pickle__enc_int(&e, -1234567890123);
    brine_pickle__enc_key(&e, "ok", 2);
    brine_pickle__enc_bool(&e, 1);
    brine_pickle__enc_key(&e, "name", 4);
    brine_pickle__enc_str(&e, "r\xc3\xa9sum\xc3\xa9", 8);
    for (int i = 0; i < nkeys; i++) {
        snprintf(key, sizeof key, "k%d", i);
        brine_pickle__enc_key(&e, key, strlen(key));
        if (i % 3 == 0)
            brine_pickle__enc_uint(&e, (uint64_t)i * 0x9e3779b97f4a7c15ull);
        else if (i % 3 == 1)
            brine_pickle__enc_str(&e, key, strlen(key));
        else
            brine_pickle__enc_ndarray(&e, i % 9, (const uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8}, "<c16", 'C');
    }
    brine_pickle__enc_dict_end(&e);
    uint8_t *out = NULL;
    *rc = brine_pickle__enc_finish(&e, &out, len);
    return out;
}

static void test_truncations(void **state)
{
    (void)state;
    size_t len;
    int rc;
    uint8_t *s = sample_stream(NULL, &len, 20, &rc);
    assert_int_equal(rc, 0);
    const struct {
        const uint8_t *p;
        size_t n;
    } streams[] = {
        {s, len}, {cpy_basic, sizeof cpy_basic}, {cpy_memo, sizeof cpy_memo},
        {cpy_proto2, sizeof cpy_proto2}, {cpy_ndarray, sizeof cpy_ndarray},
        {np_proto5_inband, sizeof np_proto5_inband}, {np_proto5_oob, sizeof np_proto5_oob},
        {np_proto2, sizeof np_proto2}, {np_proto0, sizeof np_proto0},
    };
    for (size_t k = 0; k < sizeof streams / sizeof streams[0]; k++) {
        brine_pickle_doc *doc = decode_ok(streams[k].p, streams[k].n);
        brine_pickle__free(doc);
        for (size_t n = 0; n < streams[k].n; n++) {
            /* A copy of exactly n bytes, so ASan catches any read past them. */
            uint8_t *t = malloc(n ? n : 1);
            assert_non_null(t);
            memcpy(t, streams[k].p, n);
            brine_error err;
            rc = decode(&doc, t, n, &err);
            if (rc != BRINE_ECORRUPT)
                fail_msg("stream %zu cut at %zu: got %d", k, n, rc);
            free(t);
        }
    }
    free(s);
}

static void test_mutations(void **state)
{
    (void)state;
    size_t len;
    int rc;
    uint8_t *s = sample_stream(NULL, &len, 12, &rc);
    assert_int_equal(rc, 0);
    const struct {
        const uint8_t *p;
        size_t n;
    } streams[] = {
        {s, len}, {cpy_basic, sizeof cpy_basic}, {cpy_memo, sizeof cpy_memo},
        {cpy_proto2, sizeof cpy_proto2}, {cpy_ndarray, sizeof cpy_ndarray},
        {np_proto5_inband, sizeof np_proto5_inband}, {np_proto5_oob, sizeof np_proto5_oob},
        {np_proto2, sizeof np_proto2}, {np_proto0, sizeof np_proto0},
    };
    static const uint8_t interesting[] = {
        0x00, 0xff, 0x7f, 0x80, '(', '.', 'N', 'K', 'J', 'X', 'R', 'a', 'e', 'h', 'q', 's', 't', 'u', ')', ']',
        '}', 0x85, 0x86, 0x87, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x93, 0x94, 0x95, 0x97, 'c', 'C', 'B', 'G',
        'I', 'L', 'F', 'S', 'T', 'U', 'V', 'd', 'l', 'p', 'g', 'b', 0x96, '\n', '\\', '0', '1',
    };
    uint64_t seed = 0x5eed;
    long ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t k = (size_t)(tu_rand(&seed) % (sizeof streams / sizeof streams[0]));
        size_t n = streams[k].n;
        uint8_t *t = malloc(n + 16);
        assert_non_null(t);
        memcpy(t, streams[k].p, n);
        int edits = 1 + (int)(tu_rand(&seed) % 4);
        for (int j = 0; j < edits; j++) {
            uint64_t r = tu_rand(&seed);
            size_t at = n ? (size_t)(r >> 8) % n : 0;
            switch (r % 5) {
            case 0: /* flip a bit */
                if (n)
                    t[at] ^= (uint8_t)(1u << ((r >> 4) % 8));
                break;
            case 1: /* replace a byte by an interesting one */
                if (n)
                    t[at] = interesting[(r >> 40) % sizeof interesting];
                break;
            case 2: /* insert a byte */
                if (n < streams[k].n + 16) {
                    memmove(t + at + 1, t + at, n - at);
                    t[at] = (r >> 40) & 1 ? interesting[(r >> 41) % sizeof interesting] : (uint8_t)(r >> 48);
                    n++;
                }
                break;
            case 3: /* delete a byte */
                if (n) {
                    memmove(t + at, t + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: /* random byte */
                if (n)
                    t[at] = (uint8_t)(r >> 48);
                break;
            }
        }
        /* Exactly n bytes, so ASan sees overreads. */
        uint8_t *u = malloc(n ? n : 1);
        assert_non_null(u);
        memcpy(u, t, n);
        free(t);
        brine_error err;
        brine_pickle_doc *doc = NULL;
        rc = decode(&doc, u, n, &err);
        if (rc == 0) {
            walk(brine_pickle__root(doc), 0);
            brine_pickle__free(doc);
            ok++;
        } else {
            if (rc != BRINE_ECORRUPT)
                fail_msg("mutation %d: rc %d: %s", iter, rc, err.msg);
            assert_true(strncmp(err.msg, "malformed pickle stream: ", 25) == 0);
            bad++;
        }
        free(u);
    }
    /* Both outcomes must be common for the test to mean anything. */
    assert_true(ok > 100);
    assert_true(bad > 10000);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Allocation failures */

static void test_alloc_failures_decode(void **state)
{
    (void)state;
    size_t len;
    int rc;
    /* Large enough for several arena blocks, stack growth and dict reindexing. */
    uint8_t *s = sample_stream(NULL, &len, 3000, &rc);
    assert_int_equal(rc, 0);
    const struct {
        const uint8_t *p;
        size_t n;
    } streams[] = {
        {s, len}, {cpy_basic, sizeof cpy_basic}, {cpy_memo, sizeof cpy_memo}, {cpy_ndarray, sizeof cpy_ndarray},
        {np_proto5_inband, sizeof np_proto5_inband}, {np_proto2, sizeof np_proto2}, {np_proto0, sizeof np_proto0},
    };
    for (size_t k = 0; k < sizeof streams / sizeof streams[0]; k++) {
        long n;
        for (n = 1; n < 100000; n++) {
            tally t = {0, n, 0};
            brine_allocator a = {tally_alloc, tally_free, &t};
            brine_error err;
            brine_pickle_doc *doc = NULL;
            rc = brine_pickle__decode(&doc, streams[k].p, streams[k].n, &a, &err);
            if (rc == 0) {
                assert_true(t.calls < n); /* the failure was never reached */
                walk(brine_pickle__root(doc), 0);
                brine_pickle__free(doc);
                assert_int_equal(t.live, 0);
                break;
            }
            if (rc != BRINE_ENOMEM)
                fail_msg("stream %zu, allocation %ld failing: rc %d: %s", k, n, rc, err.msg);
            assert_null(doc);
            assert_int_equal(t.live, 0);
        }
        assert_true(n > 2);
        assert_true(n < 100000);
    }
    free(s);
}

static void test_alloc_failures_encode(void **state)
{
    (void)state;
    long n;
    for (n = 1; n < 1000; n++) {
        tally t = {0, n, 0};
        brine_allocator a = {tally_alloc, tally_free, &t};
        size_t len = 99;
        int rc;
        uint8_t *s = sample_stream(&a, &len, 500, &rc);
        if (rc == 0) {
            assert_true(t.calls < n);
            assert_int_equal(t.live, 1);
            brine_pickle_doc *doc = decode_ok(s, len);
            assert_int_equal(brine_pickle__nbuffers(doc), 1 + 500 / 3);
            brine_pickle__free(doc);
            brine__free(&a, s);
            assert_int_equal(t.live, 0);
            break;
        }
        assert_int_equal(rc, BRINE_ENOMEM);
        assert_null(s);
        assert_int_equal(len, 0);
        assert_int_equal(t.live, 0);
    }
    assert_true(n > 3); /* the buffer grew a few times */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_scalars),
        cmocka_unit_test(test_int_opcodes),
        cmocka_unit_test(test_roundtrip_nested),
        cmocka_unit_test(test_encoder_misuse),
        cmocka_unit_test(test_roundtrip_ndarray),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_cpython_streams),
        cmocka_unit_test(test_numpy_pickles),
        cmocka_unit_test(test_text_opcodes),
        cmocka_unit_test(test_numpy2_forms),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refused_globals),
        cmocka_unit_test(test_refused_streams),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_alloc_failures_decode),
        cmocka_unit_test(test_alloc_failures_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
