#include "pickle_decode.h"

#include <assert.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "dtype.h"
#include "pickle_opcodes.h"

/* Names for messages; NULL for the opcodes brine refuses (see refused_opname). */
static const char *opname(int op)
{
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_INT: return "INT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_BININT2: return "BININT2";
    case OP_LONG: return "LONG";
    case OP_NONE: return "NONE";
    case OP_REDUCE: return "REDUCE";
    case OP_BUILD: return "BUILD";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_UNICODE: return "UNICODE";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_FLOAT: return "FLOAT";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_APPENDS: return "APPENDS";
    case OP_LIST: return "LIST";
    case OP_DICT: return "DICT";
    case OP_GLOBAL: return "GLOBAL";
    case OP_GET: return "GET";
    case OP_BINGET: return "BINGET";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_PUT: return "PUT";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_PROTO: return "PROTO";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    default: return NULL;
    }
}

/* The opcodes of protocols 0-5 brine refuses, with the reason (docs/format.md, 3.3). */
static const char *refused_opname(int op, const char **why)
{
    *why = "objects other than plain values are not state";
    switch (op) {
    case OP_POP: *why = "CPython writes it only for recursive tuples"; return "POP";
    case OP_POP_MARK: *why = "CPython writes it only for recursive tuples"; return "POP_MARK";
    case OP_DUP: *why = "CPython never writes it"; return "DUP";
    case OP_PERSID: *why = "persistent ids refer to objects outside the stream"; return "PERSID";
    case OP_BINPERSID: *why = "persistent ids refer to objects outside the stream"; return "BINPERSID";
    case OP_INST: return "INST";
    case OP_OBJ: return "OBJ";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_EXT1: *why = "the copyreg extension registry names arbitrary globals"; return "EXT1";
    case OP_EXT2: *why = "the copyreg extension registry names arbitrary globals"; return "EXT2";
    case OP_EXT4: *why = "the copyreg extension registry names arbitrary globals"; return "EXT4";
    case OP_EMPTY_SET: *why = "sets are not state"; return "EMPTY_SET";
    case OP_ADDITEMS: *why = "sets are not state"; return "ADDITEMS";
    case OP_FROZENSET: *why = "sets are not state"; return "FROZENSET";
    case OP_READONLY_BUFFER: *why = "brine's buffers are writable arrays"; return "READONLY_BUFFER";
    default: return NULL;
    }
}

static const char *kindname(brine_pkind k)
{
    switch (k) {
    case BRINE_PV_NONE: return "None";
    case BRINE_PV_BOOL: return "bool";
    case BRINE_PV_INT: return "int";
    case BRINE_PV_FLOAT: return "float";
    case BRINE_PV_COMPLEX: return "complex";
    case BRINE_PV_STR: return "str";
    case BRINE_PV_BYTES: return "bytes";
    case BRINE_PV_TUPLE: return "tuple";
    case BRINE_PV_LIST: return "list";
    case BRINE_PV_DICT: return "dict";
    case BRINE_PV_NDARRAY: return "numpy.ndarray";
    case BRINE_PV_GLOBAL: return "global";
    case BRINE_PV_BUFFER: return "out-of-band buffer";
    case BRINE_PV_BYTEARRAY: return "bytearray";
    case BRINE_PV_DTYPE: return "numpy.dtype";
    case BRINE_PV_RECONSTRUCT: return "numpy _reconstruct array before its BUILD";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Arena: the whole tree is freed in one go */

typedef struct arena_block {
    struct arena_block *next;
    size_t cap;  /* bytes of data */
    size_t used; /* bytes of data handed out */
    max_align_t data[];
} arena_block;

#define ARENA_BLOCK (32u * 1024u)

struct brine_pickle_doc {
    const brine_allocator *alloc;
    arena_block *blocks; /* newest first */
    const brine_pvalue *root;
    uint64_t nbuffers;
};

/* n zeroed, max_align_t-aligned bytes from the arena; NULL when out of memory. */
static void *arena_alloc(brine_pickle_doc *doc, size_t n)
{
    const size_t align = sizeof(max_align_t);
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - align)
        return NULL;
    n = (n + align - 1) / align * align;
    arena_block *b = doc->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof *b)
            return NULL;
        b = brine__alloc(doc->alloc, sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        /* A large one-off block goes behind the current one, so that the
         * current block's free space keeps serving small requests. */
        if (n > ARENA_BLOCK && doc->blocks) {
            b->next = doc->blocks->next;
            doc->blocks->next = b;
        } else {
            b->next = doc->blocks;
            doc->blocks = b;
        }
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Decoder state */

typedef struct memo_slot {
    uint64_t key;
    brine_pvalue *val; /* NULL: free slot */
} memo_slot;

typedef struct dec {
    brine_pickle_doc *doc;
    const brine_allocator *alloc;
    brine_error *err;
    const uint8_t *p;
    size_t len;
    size_t pos;    /* next byte to read */
    size_t op_pos; /* offset of the current opcode, for messages */
    int op;        /* the current opcode */
    /* value stack; MARK positions live apart in marks[] (CPython's metastack) */
    brine_pvalue **stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    /* memo: open addressing on the key, so that a huge BINPUT index costs nothing */
    memo_slot *memo;
    size_t memo_n, memo_cap;
    /* The "C" locale for FLOAT's decimal text, made on first use (0: none yet). */
    locale_t c_locale;
} dec;

static int corrupt(dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int corrupt(dec *d, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const char *name = opname(d->op);
    if (name)
        return brine__fail(d->err, BRINE_ECORRUPT, "malformed pickle stream: %s at byte %zu: %s",
                           name, d->op_pos, why);
    return brine__fail(d->err, BRINE_ECORRUPT, "malformed pickle stream: opcode 0x%02x at byte %zu: %s",
                       (unsigned)d->op, d->op_pos, why);
}

static int nomem(dec *d)
{
    const char *name = opname(d->op);
    return brine__fail(d->err, BRINE_ENOMEM, "out of memory decoding the pickle stream (%s at byte %zu)",
                       name ? name : "?", d->op_pos);
}

/* Checks that n more bytes are there. */
static int need(dec *d, uint64_t n)
{
    size_t left = d->len - d->pos;
    if (n > left)
        return corrupt(d, "needs %llu more bytes but only %zu remain", (unsigned long long)n, left);
    return 0;
}

static uint64_t read_le(dec *d, int nbytes)
{
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++)
        v |= (uint64_t)d->p[d->pos + (size_t)i] << (8 * i);
    d->pos += (size_t)nbytes;
    return v;
}

/* Reads an nbytes little-endian unsigned length, checked against what remains. */
static int read_len(dec *d, int nbytes, size_t *out)
{
    int rc = need(d, (uint64_t)nbytes);
    if (rc)
        return rc;
    uint64_t n = read_le(d, nbytes);
    if ((rc = need(d, n)) != 0)
        return rc;
    *out = (size_t)n;
    return 0;
}

static brine_pvalue *newval(dec *d, brine_pkind kind)
{
    brine_pvalue *v = arena_alloc(d->doc, sizeof *v);
    if (v)
        v->kind = kind;
    return v;
}

static int grow(dec *d, void **arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    size_t old_bytes, new_bytes;
    if (ncap < *cap || brine__mul_overflows(ncap, elem, &new_bytes))
        return nomem(d);
    old_bytes = *cap * elem;
    if (brine__resize(d->alloc, arr, old_bytes, new_bytes) != 0)
        return nomem(d);
    *cap = ncap;
    return 0;
}

static int push(dec *d, brine_pvalue *v)
{
    if (!v)
        return nomem(d);
    if (d->sn == d->scap) {
        void *p = d->stack;
        int rc = grow(d, &p, &d->scap, sizeof *d->stack);
        d->stack = p;
        if (rc)
            return rc;
    }
    d->stack[d->sn++] = v;
    return 0;
}

/* Items above the innermost MARK: the only ones an opcode may touch. */
static size_t fence(const dec *d)
{
    return d->mn ? d->marks[d->mn - 1] : 0;
}

static int need_stack(dec *d, size_t k)
{
    if (d->sn - fence(d) < k)
        return corrupt(d, "stack underflow: needs %zu value%s, %zu above the last MARK", k,
                       k == 1 ? "" : "s", d->sn - fence(d));
    return 0;
}

/* Pops the innermost MARK; its items are stack[*base .. sn). */
static int pop_mark(dec *d, size_t *base)
{
    if (d->mn == 0)
        return corrupt(d, "no MARK to pop");
    *base = d->marks[--d->mn];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Containers */

/*
 * Records that child becomes an item of parent: nesting depth and kinds.
 *
 * The decoder-only values (a global, a numpy.dtype) may only be items of a
 * tuple, which becomes "internal": such a tuple may only be the arguments of
 * REDUCE or the state of BUILD, which consume it, so none ever reaches a
 * finished tree.  numpy's _reconstruct value must get its BUILD first.
 */
static int place(dec *d, brine_pvalue *parent, brine_pvalue *child)
{
    if (child->kind == BRINE_PV_RECONSTRUCT)
        return corrupt(d, "numpy's _reconstruct array is used before its BUILD");
    if (child->internal)
        return corrupt(d, "a tuple holding a global or a numpy.dtype may only be the arguments of REDUCE "
                          "or the state of BUILD, not an item of a %s", kindname(parent->kind));
    if ((child->kind == BRINE_PV_GLOBAL || child->kind == BRINE_PV_DTYPE) && parent->kind != BRINE_PV_TUPLE)
        return corrupt(d, "a %s may only be an argument of REDUCE or BUILD, not stored in a %s",
                       child->kind == BRINE_PV_GLOBAL ? "global" : "numpy.dtype", kindname(parent->kind));
    if (child->kind == BRINE_PV_GLOBAL || child->kind == BRINE_PV_DTYPE)
        parent->internal = 1;
    if (child->depth + 1 > BRINE_PICKLE_MAX_NEST)
        return corrupt(d, "values nest deeper than %d", BRINE_PICKLE_MAX_NEST);
    if (parent->depth < child->depth + 1)
        parent->depth = child->depth + 1;
    child->placed = 1;
    return 0;
}

/*
 * A list or dict may only change while it is not an item of anything.  Any
 * cycle needs an item added to a container that is already inside another
 * value (or inside itself), so this keeps the tree acyclic and its depths
 * exact; CPython only writes such streams for recursive objects.
 */
static int check_mutable(dec *d, const brine_pvalue *c, const brine_pvalue *item1, const brine_pvalue *item2)
{
    if (c->placed || c == item1 || c == item2)
        return corrupt(d, "changes a %s that is already inside another value (recursive objects are not supported)",
                       kindname(c->kind));
    return 0;
}

static int list_append(dec *d, brine_pvalue *list, brine_pvalue *v)
{
    int rc = 0;
    if (list->kind != BRINE_PV_LIST)
        return corrupt(d, "appends to a %s, not a list", kindname(list->kind));
    if ((rc = check_mutable(d, list, v, NULL)) != 0)
        return rc;
    if (list->v.seq.n == list->v.seq.cap) {
        /* Doubling in the arena: the abandoned arrays sum to less than the last. */
        size_t ncap = list->v.seq.cap ? list->v.seq.cap * 2 : 4, bytes;
        if (brine__mul_overflows(ncap, sizeof(brine_pvalue *), &bytes))
            return nomem(d);
        brine_pvalue **items = arena_alloc(d->doc, bytes);
        if (!items)
            return nomem(d);
        if (list->v.seq.n)
            memcpy(items, list->v.seq.items, list->v.seq.n * sizeof *items);
        list->v.seq.items = items;
        list->v.seq.cap = ncap;
    }
    if ((rc = place(d, list, v)) != 0)
        return rc;
    list->v.seq.items[list->v.seq.n++] = v;
    return 0;
}

/* FNV-1a. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Whether k is a key the index merges (str, bytes, int), and its hash. */
static int key_hash(const brine_pvalue *k, uint64_t *h)
{
    uint64_t seed = 0xcbf29ce484222325ull ^ (uint64_t)k->kind;
    switch (k->kind) {
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
        *h = hash_bytes(seed, k->v.str.s, k->v.str.len);
        return 1;
    case BRINE_PV_INT: {
        uint64_t bits = k->v.integer.negative ? (uint64_t)k->v.integer.i : k->v.integer.u;
        *h = hash_bytes(seed ^ (uint64_t)k->v.integer.negative, &bits, sizeof bits);
        return 1;
    }
    default:
        return 0;
    }
}

static int keys_equal(const brine_pvalue *a, const brine_pvalue *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind == BRINE_PV_INT)
        return a->v.integer.negative == b->v.integer.negative && a->v.integer.i == b->v.integer.i &&
               a->v.integer.u == b->v.integer.u;
    return a->v.str.len == b->v.str.len && memcmp(a->v.str.s, b->v.str.s, a->v.str.len) == 0;
}

/* The slot holding key (or the free slot where it would go). */
static size_t find_slot(const brine_pvalue *dict, const brine_pvalue *key, uint64_t h)
{
    size_t mask = dict->v.dict.nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        size_t s = dict->v.dict.slots[i];
        if (s == 0 || keys_equal(dict->v.dict.keys[s - 1], key))
            return i;
        i = (i + 1) & mask;
    }
}

static int dict_reindex(dec *d, brine_pvalue *dict, size_t nslots)
{
    size_t bytes;
    if (brine__mul_overflows(nslots, sizeof(size_t), &bytes))
        return nomem(d);
    size_t *slots = arena_alloc(d->doc, bytes);
    if (!slots)
        return nomem(d);
    dict->v.dict.slots = slots;
    dict->v.dict.nslots = nslots;
    for (size_t j = 0; j < dict->v.dict.n; j++) {
        uint64_t h;
        if (key_hash(dict->v.dict.keys[j], &h))
            slots[find_slot(dict, dict->v.dict.keys[j], h)] = j + 1;
    }
    return 0;
}

static int is_hashable(const brine_pvalue *k)
{
    switch (k->kind) {
    case BRINE_PV_NONE:
    case BRINE_PV_BOOL:
    case BRINE_PV_INT:
    case BRINE_PV_FLOAT:
    case BRINE_PV_COMPLEX:
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
    case BRINE_PV_TUPLE:
        return 1;
    default:
        return 0;
    }
}

static int dict_set(dec *d, brine_pvalue *dict, brine_pvalue *key, brine_pvalue *val)
{
    int rc = 0;
    if (dict->kind != BRINE_PV_DICT)
        return corrupt(d, "sets an item of a %s, not a dict", kindname(dict->kind));
    if ((rc = check_mutable(d, dict, key, val)) != 0)
        return rc;
    if (!is_hashable(key))
        return corrupt(d, "a %s cannot be a dict key", kindname(key->kind));
    uint64_t h = 0;
    int indexed = key_hash(key, &h);
    if (indexed && dict->v.dict.nslots) {
        size_t s = dict->v.dict.slots[find_slot(dict, key, h)];
        if (s) {
            /* As in Python: the later value wins, the key keeps its place. */
            if ((rc = place(d, dict, val)) != 0)
                return rc;
            dict->v.dict.values[s - 1] = val;
            return 0;
        }
    }
    if (dict->v.dict.n == dict->v.dict.cap) {
        size_t ncap = dict->v.dict.cap ? dict->v.dict.cap * 2 : 4, bytes;
        if (brine__mul_overflows(ncap, sizeof(brine_pvalue *), &bytes))
            return nomem(d);
        brine_pvalue **keys = arena_alloc(d->doc, bytes);
        brine_pvalue **values = keys ? arena_alloc(d->doc, bytes) : NULL;
        if (!values)
            return nomem(d);
        if (dict->v.dict.n) {
            memcpy(keys, dict->v.dict.keys, dict->v.dict.n * sizeof *keys);
            memcpy(values, dict->v.dict.values, dict->v.dict.n * sizeof *values);
        }
        dict->v.dict.keys = keys;
        dict->v.dict.values = values;
        dict->v.dict.cap = ncap;
    }
    if ((rc = place(d, dict, key)) != 0 || (rc = place(d, dict, val)) != 0)
        return rc;
    dict->v.dict.keys[dict->v.dict.n] = key;
    dict->v.dict.values[dict->v.dict.n] = val;
    dict->v.dict.n++;
    if (indexed) {
        /* Keep the index at most half full so probes stay short. */
        if (dict->v.dict.n * 2 > dict->v.dict.nslots) {
            size_t nslots = dict->v.dict.nslots ? dict->v.dict.nslots * 2 : 8;
            while (dict->v.dict.n * 2 > nslots)
                nslots *= 2;
            return dict_reindex(d, dict, nslots); /* indexes the new key too */
        }
        dict->v.dict.slots[find_slot(dict, key, h)] = dict->v.dict.n;
    }
    return 0;
}

/* A tuple of the k values on top of the stack, which it replaces. */
static int make_tuple(dec *d, size_t k)
{
    int rc = 0;
    assert(d->sn - fence(d) >= k);
    brine_pvalue *t = newval(d, BRINE_PV_TUPLE);
    if (!t)
        return nomem(d);
    if (k) {
        t->v.seq.items = arena_alloc(d->doc, k * sizeof *t->v.seq.items);
        if (!t->v.seq.items)
            return nomem(d);
    }
    /* k may be 0 with an empty stack, and NULL + 0 is undefined behaviour. */
    brine_pvalue **src = k ? d->stack + (d->sn - k) : NULL;
    for (size_t i = 0; i < k; i++) {
        if ((rc = place(d, t, src[i])) != 0)
            return rc;
        t->v.seq.items[i] = src[i];
    }
    t->v.seq.n = k;
    t->v.seq.cap = k;
    d->sn -= k;
    return push(d, t);
}

/* ------------------------------------------------------------------------ */
/* Scalars */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A printable copy of an untrusted name for messages. */
static const char *printable(char *buf, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < cap; i++)
        buf[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (j + 4 >= cap)
        buf[j++] = '.', buf[j++] = '.', buf[j++] = '.';
    buf[j] = '\0';
    return buf;
}

/* A STR, BYTES or BYTEARRAY of the next n bytes of the stream (n checked by the caller). */
static int push_str(dec *d, brine_pkind kind, size_t n)
{
    const uint8_t *s = d->p + d->pos;
    if (kind == BRINE_PV_STR && !utf8_valid(s, n))
        return corrupt(d, "the string of %zu bytes is not valid UTF-8", n);
    brine_pvalue *v = newval(d, kind);
    if (!v)
        return nomem(d);
    v->v.str.s = (const char *)s;
    v->v.str.len = n;
    d->pos += n;
    return push(d, v);
}

/* A STR, BYTES or BYTEARRAY value of n bytes at s (in the stream or the arena). */
static brine_pvalue *new_str(dec *d, brine_pkind kind, const void *s, size_t n)
{
    brine_pvalue *v = newval(d, kind);
    if (v) {
        v->v.str.s = s;
        v->v.str.len = n;
    }
    return v;
}

static int push_int(dec *d, int negative, int64_t i, uint64_t u)
{
    brine_pvalue *v = newval(d, BRINE_PV_INT);
    if (!v)
        return nomem(d);
    v->v.integer.negative = negative;
    v->v.integer.i = i;
    v->v.integer.u = u;
    return push(d, v);
}

/* LONG1/LONG4 payload: n bytes of little-endian two's complement. */
static int push_long(dec *d, size_t n)
{
    const uint8_t *b = d->p + d->pos;
    d->pos += n;
    if (n == 0)
        return push_int(d, 0, 0, 0);
    int neg = (b[n - 1] & 0x80) != 0;
    uint8_t fill = neg ? 0xff : 0x00;
    /* Bytes past the eighth may only repeat the sign (non-minimal encodings are fine). */
    for (size_t i = 8; i < n; i++) {
        if (b[i] != fill)
            return corrupt(d, "the integer of %zu bytes does not fit in 64 bits", n);
    }
    uint64_t u = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        u |= (uint64_t)b[i] << (8 * i);
    if (neg) {
        if (n > 8 && !(b[7] & 0x80))
            return corrupt(d, "the integer of %zu bytes is below -2**63", n);
        if (n < 8)
            u |= ~(uint64_t)0 << (8 * n); /* sign extension */
        /* u >= 2**63 here; this conversion is exact and portable. */
        int64_t i = -(int64_t)(~u) - 1;
        return push_int(d, 1, i, 0);
    }
    return push_int(d, 0, u <= (uint64_t)INT64_MAX ? (int64_t)u : 0, u);
}

/* Pushes the integer of sign neg and magnitude mag (from decimal text). */
static int push_signed(dec *d, int neg, uint64_t mag)
{
    if (!neg || mag == 0)
        return push_int(d, 0, mag <= (uint64_t)INT64_MAX ? (int64_t)mag : 0, mag);
    if (mag > (uint64_t)INT64_MAX + 1)
        return corrupt(d, "the integer is below -2**63");
    /* mag - 1 fits in int64: this is exact and portable for mag = 2**63 too. */
    return push_int(d, 1, -(int64_t)(mag - 1) - 1, 0);
}

/* ------------------------------------------------------------------------ */
/* Text opcodes of protocols 0 and 1 */

/* The argument of a text opcode: the bytes up to the next '\n', which is consumed. */
static int read_line(dec *d, const char *what, const char **s, size_t *n)
{
    const uint8_t *start = d->p + d->pos;
    const uint8_t *nl = memchr(start, '\n', d->len - d->pos);
    if (!nl)
        return corrupt(d, "%s has no end of line before the end of the stream", what);
    *s = (const char *)start;
    *n = (size_t)(nl - start);
    d->pos += *n + 1;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Decimal text s[0..n): an optional '-' (when signs), then digits, as
 * pickle's INT, LONG, PUT and GET write them.  Python reads more (int(x, 0):
 * "+1", "0x1f", "1_000", spaces), which pickle never writes: refused.  With
 * no_leading_zeros, "007" is refused: Python's int(x, 0) refuses it, and
 * CPython's C unpickler reads it as octal ("000" is 0 for both).
 */
static int parse_decimal(dec *d, const char *s, size_t n, int signs, int no_leading_zeros, int *neg,
                         uint64_t *mag)
{
    char m[72];
    size_t i = 0;
    *neg = 0;
    *mag = 0;
    if (signs && n > 0 && s[0] == '-')
        *neg = s[i++] == '-';
    if (i == n)
        return corrupt(d, "'%s' is not a decimal integer", printable(m, sizeof m, s, n));
    size_t first = i;
    int nonzero = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return corrupt(d, "'%s' is not a decimal integer (pickle writes an optional '-' and digits)",
                           printable(m, sizeof m, s, n));
        unsigned digit = (unsigned)(s[i] - '0');
        if (*mag > (UINT64_MAX - digit) / 10)
            return corrupt(d, "the integer %s does not fit in 64 bits", printable(m, sizeof m, s, n));
        *mag = *mag * 10 + digit;
        nonzero |= digit != 0;
    }
    if (no_leading_zeros && s[first] == '0' && nonzero)
        return corrupt(d, "'%s' has leading zeros, which Python's int(x, 0) refuses", printable(m, sizeof m, s, n));
    return 0;
}

/* INT: "01" and "00" are True and False (protocol 0's bools), else an integer. */
static int op_int(dec *d)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(d, "the integer", &s, &n), neg;
    uint64_t mag;
    if (rc)
        return rc;
    if (n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
        brine_pvalue *v = newval(d, BRINE_PV_BOOL);
        if (v)
            v->v.b = s[1] == '1';
        return push(d, v);
    }
    if ((rc = parse_decimal(d, s, n, 1, 1, &neg, &mag)) != 0)
        return rc;
    /* CPython's C unpickler reads any 2-character 0 or 1 as a bool, its Python one "-0" as 0. */
    if (n == 2 && neg && mag == 0)
        return corrupt(d, "'-0' is ambiguous (False or 0 depending on CPython's unpickler)");
    return push_signed(d, neg, mag);
}

/* LONG: decimal digits with an optional 'L' suffix (Python 2 wrote it). */
static int op_long(dec *d)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(d, "the integer", &s, &n), neg;
    uint64_t mag;
    if (rc)
        return rc;
    if (n > 0 && s[n - 1] == 'L')
        n--;
    if ((rc = parse_decimal(d, s, n, 1, 1, &neg, &mag)) != 0)
        return rc;
    return push_signed(d, neg, mag);
}

/* Case-insensitive equality of s[0..n) and the lower-case word w. */
static int word_is(const char *s, size_t n, const char *w)
{
    if (n != strlen(w))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != w[i])
            return 0;
    }
    return 1;
}

/* Whether s[0..n) is a float as repr() writes it: [sign] digits [. digits] [e [sign] digits], inf, nan. */
static int float_text_valid(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (word_is(s + i, n - i, "inf") || word_is(s + i, n - i, "infinity") || word_is(s + i, n - i, "nan"))
        return 1;
    for (; i < n && is_digit(s[i]); i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && is_digit(s[i]); i++)
            digits++;
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (i == n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

/* FLOAT: repr() of a float.  strtod, correctly rounded, in the "C" locale whatever the program's. */
static int op_float(dec *d)
{
    char m[72];
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(d, "the float", &s, &n);
    if (rc)
        return rc;
    if (!float_text_valid(s, n))
        return corrupt(d, "'%s' is not a float as Python writes one", printable(m, sizeof m, s, n));
    char *text = arena_alloc(d->doc, n + 1);
    if (!text)
        return nomem(d);
    memcpy(text, s, n);
    text[n] = '\0';
    if (d->c_locale == (locale_t)0) {
        d->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (d->c_locale == (locale_t)0)
            return nomem(d);
    }
    locale_t old = uselocale(d->c_locale);
    char *end = NULL;
    double x = strtod(text, &end);
    uselocale(old);
    if (end != text + n)
        return corrupt(d, "'%s' is not a float as Python writes one", printable(m, sizeof m, s, n));
    /* Python writes infinities as "inf"; CPython's C unpickler refuses "1e999" (OverflowError). */
    if (isinf(x) && is_digit(text[strspn(text, "+-.")]))
        return corrupt(d, "'%s' is out of the range of a double", printable(m, sizeof m, s, n));
    brine_pvalue *v = newval(d, BRINE_PV_FLOAT);
    if (v)
        v->v.f = x;
    return push(d, v);
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    }
    return 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The character of the escape \c for the one-letter escapes, or -1. */
static int simple_escape(char c)
{
    switch (c) {
    case '\\': return '\\';
    case '\'': return '\'';
    case '"': return '"';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'a': return '\a';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'v': return '\v';
    default: return -1;
    }
}

/*
 * STRING: a quoted Python 2 str literal.  Python 3 unescapes it
 * (codecs.escape_decode) and decodes it with the unpickler's encoding,
 * 'ASCII' by default: a str of ASCII characters.  The escapes Python 2's
 * repr() writes are decoded (\\ \' \" \n \r \t \a \b \f \v \xhh \ooo);
 * anything else, and any non-ASCII result, is refused.
 */
static int op_string(dec *d)
{
    char m[72];
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(d, "the string", &s, &n);
    if (rc)
        return rc;
    if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
        return corrupt(d, "the STRING argument must be quoted");
    s++;
    n -= 2;
    char *out = arena_alloc(d->doc, n);
    if (!out)
        return nomem(d);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (c == '\\') {
            if (++i == n)
                return corrupt(d, "the string ends with a lone backslash");
            int simple = simple_escape(s[i]);
            if (simple >= 0) {
                c = (unsigned)simple;
            } else if (s[i] >= '0' && s[i] <= '7') {
                c = 0;
                for (int k = 0; k < 3 && i < n && s[i] >= '0' && s[i] <= '7'; k++, i++)
                    c = c * 8 + (unsigned)(s[i] - '0');
                i--;
            } else if (s[i] == 'x' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
                c = (unsigned)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
                i += 2;
            } else {
                return corrupt(d, "the string has the escape '\\%s', which brine does not decode",
                               printable(m, sizeof m, s + i, 1));
            }
        }
        if (c >= 0x80)
            return corrupt(d, "the string has the byte 0x%02x: not ASCII, which Python 3 refuses by default", c);
        out[j++] = (char)c;
    }
    return push(d, new_str(d, BRINE_PV_STR, out, j));
}

/* BINSTRING, SHORT_BINSTRING: n bytes, which must be ASCII (decoded as 'ASCII', as Python 3 does). */
static int op_binstring(dec *d, size_t n)
{
    if (!is_ascii((const char *)d->p + d->pos, n))
        return corrupt(d, "the string of %zu bytes is not ASCII, which Python 3 refuses by default", n);
    return push_str(d, BRINE_PV_STR, n);
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * UNICODE: raw-unicode-escape text.  Bytes are Latin-1 characters, except
 * the escapes \uXXXX and \UXXXXXXXX, which Python writes for characters above
 * U+00FF and for \ \0 \n \r \x1a.  A backslash starting anything else is
 * refused (Python would keep it, but never writes one), as are surrogates.
 */
static int op_unicode(dec *d)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = read_line(d, "the string", &s, &n);
    if (rc)
        return rc;
    /* Each byte gives at most 2 bytes of UTF-8; an escape of 6 or 10 bytes at most 4. */
    size_t cap;
    if (brine__mul_overflows(n, 2, &cap))
        return nomem(d);
    char *out = arena_alloc(d->doc, cap);
    if (!out)
        return nomem(d);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = (unsigned char)s[i];
        if (cp != '\\') {
            i++;
        } else if (i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            size_t k = s[i + 1] == 'u' ? 4 : 8;
            if (n - i - 2 < k)
                return corrupt(d, "truncated \\%c escape at byte %zu of the string", s[i + 1], i);
            cp = 0;
            for (size_t h = 0; h < k; h++) {
                int x = hex_value(s[i + 2 + h]);
                if (x < 0)
                    return corrupt(d, "bad \\%c escape at byte %zu of the string", s[i + 1], i);
                if (cp > 0x10ffff)
                    break; /* the check below refuses it; no overflow */
                cp = cp * 16 + (uint32_t)x;
            }
            if (cp > 0x10ffff)
                return corrupt(d, "the \\U escape at byte %zu of the string is above U+10FFFF", i);
            if (cp >= 0xd800 && cp <= 0xdfff)
                return corrupt(d, "the escape at byte %zu of the string is a surrogate (U+%04X), not a character",
                               i, (unsigned)cp);
            i += 2 + k;
        } else {
            return corrupt(d, "a backslash at byte %zu of the string starts no \\uXXXX or \\UXXXXXXXX escape "
                              "(pickle writes a backslash as \\u005c)", i);
        }
        j += put_utf8(out + j, cp);
    }
    return push(d, new_str(d, BRINE_PV_STR, out, j));
}

/* PUT, GET: a decimal memo index. */
static int read_memo_index(dec *d, uint64_t *key)
{
    const char *s = NULL;
    size_t n = 0;
    int neg, rc = read_line(d, "the memo index", &s, &n);
    if (rc)
        return rc;
    if (n > 0 && s[0] == '-')
        return corrupt(d, "negative memo index");
    return parse_decimal(d, s, n, 0, 0, &neg, key);
}

/* ------------------------------------------------------------------------ */
/* Globals */

static const struct known_global {
    const char *module, *name;
    int which;
} known_globals[] = {
    {"numpy", "ndarray", BRINE_PGLOBAL_NDARRAY},
    {"builtins", "complex", BRINE_PGLOBAL_COMPLEX},
    {"__builtin__", "complex", BRINE_PGLOBAL_COMPLEX},
    {"numpy.core.numeric", "_frombuffer", BRINE_PGLOBAL_FROMBUFFER},
    {"numpy._core.numeric", "_frombuffer", BRINE_PGLOBAL_FROMBUFFER},
    {"numpy.core.multiarray", "_reconstruct", BRINE_PGLOBAL_RECONSTRUCT},
    {"numpy._core.multiarray", "_reconstruct", BRINE_PGLOBAL_RECONSTRUCT},
    {"numpy", "dtype", BRINE_PGLOBAL_DTYPE},
    {"numpy.core.multiarray", "scalar", BRINE_PGLOBAL_SCALAR},
    {"numpy._core.multiarray", "scalar", BRINE_PGLOBAL_SCALAR},
    {"_codecs", "encode", BRINE_PGLOBAL_ENCODE},
    {"builtins", "bytes", BRINE_PGLOBAL_BYTES},
    {"__builtin__", "bytes", BRINE_PGLOBAL_BYTES},
};

static int push_global(dec *d, const char *mod, size_t modlen, const char *name, size_t namelen)
{
    int which = 0;
    for (size_t i = 0; i < sizeof known_globals / sizeof known_globals[0] && !which; i++) {
        const struct known_global *g = &known_globals[i];
        if (strlen(g->module) == modlen && !memcmp(g->module, mod, modlen) && strlen(g->name) == namelen &&
            !memcmp(g->name, name, namelen))
            which = g->which;
    }
    if (!which) {
        char m[72], n[72];
        return corrupt(d, "global '%s %s' is not allowed (only numpy.ndarray, builtins.complex, numpy's "
                          "_frombuffer, _reconstruct, dtype and scalar, and _codecs.encode and bytes: "
                          "docs/format.md 3.3)",
                       printable(m, sizeof m, mod, modlen), printable(n, sizeof n, name, namelen));
    }
    brine_pvalue *v = newval(d, BRINE_PV_GLOBAL);
    if (!v)
        return nomem(d);
    v->v.global = which;
    return push(d, v);
}

/* ------------------------------------------------------------------------ */
/* REDUCE of the known globals */

/*
 * A plain int or float, not a numpy scalar: where the Python reader takes only
 * int and float (numpy's own pickles never put numpy scalars there), so must
 * this decoder.
 */
static int as_double(const brine_pvalue *v, double *out)
{
    if (v->has_np_dtype)
        return -1;
    if (v->kind == BRINE_PV_FLOAT)
        *out = v->v.f;
    else if (v->kind == BRINE_PV_INT)
        *out = v->v.integer.negative ? (double)v->v.integer.i : (double)v->v.integer.u;
    else
        return -1;
    return 0;
}

/* Whether v is the plain int want (not a bool, not a numpy scalar). */
static int is_int(const brine_pvalue *v, int64_t want)
{
    if (v->kind != BRINE_PV_INT || v->has_np_dtype)
        return 0;
    return want < 0 ? v->v.integer.negative && v->v.integer.i == want
                    : !v->v.integer.negative && v->v.integer.u == (uint64_t)want;
}

/* Whether v is a plain bool (not a numpy bool). */
static int is_bool(const brine_pvalue *v)
{
    return v->kind == BRINE_PV_BOOL && !v->has_np_dtype;
}

static int is_str(const brine_pvalue *v, const char *want)
{
    return v->kind == BRINE_PV_STR && v->v.str.len == strlen(want) && !memcmp(v->v.str.s, want, v->v.str.len);
}

static int reduce_complex(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    double re, im;
    if (args->v.seq.n != 2 || as_double(args->v.seq.items[0], &re) || as_double(args->v.seq.items[1], &im))
        return corrupt(d, "builtins.complex takes exactly (float or int, float or int)");
    brine_pvalue *v = newval(d, BRINE_PV_COMPLEX);
    if (!v)
        return nomem(d);
    v->v.c.re = re;
    v->v.c.im = im;
    *out = v;
    return 0;
}

/*
 * Checks an array's shape, a tuple of at most BRINE_MAX_NDIM non-negative
 * ints, and its size in bytes for dtype dt (who names the call for messages).
 * A zero extent makes the array empty whatever the others are, as numpy has it.
 */
static int check_shape(dec *d, const char *who, const brine_pvalue *shape, int dt, uint64_t *nbytes)
{
    if (shape->kind != BRINE_PV_TUPLE || shape->v.seq.n > BRINE_MAX_NDIM)
        return corrupt(d, "%s's shape must be a tuple of at most %d ints", who, BRINE_MAX_NDIM);
    uint64_t nelem = 1;
    int overflow = 0;
    for (size_t i = 0; i < shape->v.seq.n; i++) {
        const brine_pvalue *e = shape->v.seq.items[i];
        if (e->kind != BRINE_PV_INT || e->v.integer.negative || e->has_np_dtype)
            return corrupt(d, "%s's shape holds a %s, not a non-negative int", who,
                           e->has_np_dtype             ? "numpy int"
                           : e->kind == BRINE_PV_INT ? "negative int"
                                                     : kindname(e->kind));
        if (e->v.integer.u != 0 && nelem > UINT64_MAX / e->v.integer.u)
            overflow = 1;
        nelem *= e->v.integer.u;
    }
    if (dt < 0)
        return 0; /* the caller checks the dtype first, then calls again */
    size_t itemsize = brine_dtype__info(dt)->size;
    if (nelem != 0 && (overflow || nelem > UINT64_MAX / itemsize))
        return corrupt(d, "%s's size overflows 64 bits", who);
    *nbytes = nelem * itemsize;
    return 0;
}

/* docs/format.md 2.3: 'F' only when the bytes lie differently from 'C' (2+ extents != 1, not empty). */
static char normal_order(char order, int ndim, const uint64_t *shape)
{
    int big = 0, empty = 0;
    for (int i = 0; i < ndim; i++) {
        big += shape[i] != 1;
        empty |= shape[i] == 0;
    }
    return order == 'F' && big >= 2 && !empty ? 'F' : 'C';
}

/* A new NDARRAY of shape[0..ndim) over buf (a BUFFER, or in-band bytes of exactly the right length). */
static brine_pvalue *new_array(dec *d, int ndim, const uint64_t *shape, int dt, char order, const brine_pvalue *buf)
{
    brine_pvalue *v = newval(d, BRINE_PV_NDARRAY);
    if (!v)
        return NULL;
    v->v.array.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->v.array.shape[i] = shape[i];
    v->v.array.dtype = dt;
    v->v.array.order = order;
    if (buf->kind == BRINE_PV_BUFFER) {
        v->v.array.buffer = (int64_t)buf->v.buffer;
    } else {
        v->v.array.buffer = -1;
        v->v.array.inband = (const uint8_t *)buf->v.str.s;
        v->v.array.inband_len = buf->v.str.len;
    }
    return v;
}

static int reduce_ndarray(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    if (args->v.seq.n != 6)
        return corrupt(d, "numpy.ndarray takes (shape, dtype, buffer, 0, None, order), got %zu arguments",
                       args->v.seq.n);
    brine_pvalue *const *a = args->v.seq.items;
    const brine_pvalue *shape = a[0], *dtype = a[1], *buf = a[2], *offset = a[3], *strides = a[4], *order = a[5];
    uint64_t nbytes = 0, dims[BRINE_MAX_NDIM];
    int rc = check_shape(d, "numpy.ndarray", shape, -1, &nbytes);
    if (rc)
        return rc;
    if (dtype->kind != BRINE_PV_STR)
        return corrupt(d, "numpy.ndarray's dtype is a %s, not a str", kindname(dtype->kind));
    int dt = brine_dtype__from_numpy(dtype->v.str.s, dtype->v.str.len);
    if (dt < 0) {
        char m[72];
        return corrupt(d, "unknown numpy dtype '%s'", printable(m, sizeof m, dtype->v.str.s, dtype->v.str.len));
    }
    if ((rc = check_shape(d, "numpy.ndarray", shape, dt, &nbytes)) != 0)
        return rc;
    if (buf->kind != BRINE_PV_BUFFER && buf->kind != BRINE_PV_BYTES)
        return corrupt(d, "numpy.ndarray's buffer is a %s, not NEXT_BUFFER or bytes", kindname(buf->kind));
    if (buf->kind == BRINE_PV_BYTES && (uint64_t)buf->v.str.len != nbytes)
        return corrupt(d, "numpy.ndarray's in-band buffer has %zu bytes, its shape and dtype need %llu",
                       buf->v.str.len, (unsigned long long)nbytes);
    if (!is_int(offset, 0))
        return corrupt(d, "numpy.ndarray's offset must be the int 0");
    if (strides->kind != BRINE_PV_NONE)
        return corrupt(d, "numpy.ndarray's strides must be None");
    if (order->kind != BRINE_PV_STR || order->v.str.len != 1 || (order->v.str.s[0] != 'C' && order->v.str.s[0] != 'F'))
        return corrupt(d, "numpy.ndarray's order must be 'C' or 'F'");
    for (size_t i = 0; i < shape->v.seq.n; i++)
        dims[i] = shape->v.seq.items[i]->v.integer.u;
    /* brine's own form keeps the order as written (a writer writes 'C' where 2.3 says so). */
    if (!(*out = new_array(d, (int)shape->v.seq.n, dims, dt, order->v.str.s[0], buf)))
        return nomem(d);
    return 0;
}

/*
 * numpy's _frombuffer(buffer, dtype, shape, order[, axis_order]), what
 * ndarray.__reduce_ex__(5) writes for a C- or F-contiguous array:
 * frombuffer(buffer, dtype).reshape(shape, order=order).  numpy 2 adds
 * axis_order: with order 'K' the array is reshape(shape, 'C').transpose(axis_order).
 * brine represents the identity (C order) and the reversal (F order of the
 * reversed shape) exactly; other permutations are refused.
 */
static int reduce_frombuffer(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    size_t n = args->v.seq.n;
    if (n != 4 && n != 5)
        return corrupt(d, "numpy's _frombuffer takes (buffer, dtype, shape, order[, axis_order]), got %zu arguments", n);
    brine_pvalue *const *a = args->v.seq.items;
    const brine_pvalue *buf = a[0], *dtype = a[1], *shape = a[2], *order = a[3], *axes = n == 5 ? a[4] : NULL;
    uint64_t nbytes = 0, dims[BRINE_MAX_NDIM];
    if (dtype->kind != BRINE_PV_DTYPE)
        return corrupt(d, "numpy's _frombuffer's dtype is a %s, not a numpy.dtype", kindname(dtype->kind));
    int rc = check_shape(d, "numpy's _frombuffer", shape, dtype->v.dtype.id, &nbytes);
    if (rc)
        return rc;
    int ndim = (int)shape->v.seq.n;
    for (int i = 0; i < ndim; i++)
        dims[i] = shape->v.seq.items[i]->v.integer.u;
    if (order->kind != BRINE_PV_STR || order->v.str.len != 1 || !strchr("CFK", order->v.str.s[0]) ||
        order->v.str.s[0] == '\0')
        return corrupt(d, "numpy's _frombuffer's order must be 'C', 'F' or 'K'");
    char o = order->v.str.s[0];
    if (o != 'K' && axes && axes->kind != BRINE_PV_NONE)
        return corrupt(d, "numpy's _frombuffer's axis_order must be None when the order is '%c'", o);
    if (o == 'K') {
        if (!axes || axes->kind != BRINE_PV_TUPLE || axes->v.seq.n != (size_t)ndim)
            return corrupt(d, "numpy's _frombuffer with order 'K' needs an axis_order of %d ints", ndim);
        int identity = 1, reversal = 1;
        unsigned seen = 0;
        for (int i = 0; i < ndim; i++) {
            const brine_pvalue *e = axes->v.seq.items[i];
            if (e->kind != BRINE_PV_INT || e->has_np_dtype || e->v.integer.negative ||
                e->v.integer.u >= (uint64_t)ndim || (seen & (1u << e->v.integer.u)))
                return corrupt(d, "numpy's _frombuffer's axis_order is not a permutation of the %d axes", ndim);
            seen |= 1u << e->v.integer.u;
            identity &= e->v.integer.u == (uint64_t)i;
            reversal &= e->v.integer.u == (uint64_t)(ndim - 1 - i);
        }
        if (!identity && !reversal) {
            char p[8 * BRINE_MAX_NDIM + 8];
            size_t used = 0;
            for (int i = 0; i < ndim; i++)
                used += (size_t)snprintf(p + used, sizeof p - used, "%s%llu", i ? ", " : "",
                                         (unsigned long long)axes->v.seq.items[i]->v.integer.u);
            return corrupt(d, "numpy's _frombuffer's axis_order (%s) is neither the identity nor the reversal: "
                              "brine arrays are in C or F order", p);
        }
        if (identity) {
            o = 'C';
        } else {
            o = 'F';
            for (int i = 0; i < ndim; i++)
                dims[i] = shape->v.seq.items[ndim - 1 - i]->v.integer.u;
        }
    }
    if (buf->kind != BRINE_PV_BUFFER && buf->kind != BRINE_PV_BYTES && buf->kind != BRINE_PV_BYTEARRAY)
        return corrupt(d, "numpy's _frombuffer's buffer is a %s, not NEXT_BUFFER, bytes or bytearray",
                       kindname(buf->kind));
    if (buf->kind != BRINE_PV_BUFFER && (uint64_t)buf->v.str.len != nbytes)
        return corrupt(d, "numpy's _frombuffer's in-band buffer has %zu bytes, its shape and dtype need %llu",
                       buf->v.str.len, (unsigned long long)nbytes);
    if (!(*out = new_array(d, ndim, dims, dtype->v.dtype.id, normal_order(o, ndim, dims), buf)))
        return nomem(d);
    return 0;
}

/* numpy's _reconstruct(numpy.ndarray, (0,), b'b'): an empty array that BUILD fills (build_array). */
static int reduce_reconstruct(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    brine_pvalue *const *a = args->v.seq.items;
    if (args->v.seq.n != 3 || a[0]->kind != BRINE_PV_GLOBAL || a[0]->v.global != BRINE_PGLOBAL_NDARRAY ||
        a[1]->kind != BRINE_PV_TUPLE || a[1]->v.seq.n != 1 || !is_int(a[1]->v.seq.items[0], 0) ||
        a[2]->kind != BRINE_PV_BYTES || a[2]->v.str.len != 1 || a[2]->v.str.s[0] != 'b')
        return corrupt(d, "numpy's _reconstruct takes exactly (numpy.ndarray, (0,), b'b')");
    if (!(*out = newval(d, BRINE_PV_RECONSTRUCT)))
        return nomem(d);
    return 0;
}

/* numpy's dtype codes ("f8": kind and size) of the brine dtypes. */
static const struct {
    const char *code;
    int dtype;
} dtype_codes[] = {
    {"b1", BRINE_BOOL}, {"i1", BRINE_I8},  {"i2", BRINE_I16}, {"i4", BRINE_I32},  {"i8", BRINE_I64},
    {"u1", BRINE_U8},   {"u2", BRINE_U16}, {"u4", BRINE_U32}, {"u8", BRINE_U64},  {"f4", BRINE_F32},
    {"f8", BRINE_F64},  {"c8", BRINE_C64}, {"c16", BRINE_C128},
};

/* numpy's name of a dtype code brine refuses, for messages ("f2" is float16). */
static const char *refused_dtype_name(char *buf, size_t cap, const char *code, size_t n)
{
    unsigned long size = 0;
    for (size_t i = 1; i < n && i < 6 && is_digit(code[i]); i++)
        size = size * 10 + (unsigned long)(code[i] - '0');
    const char *what = NULL;
    switch (n ? code[0] : 0) {
    case 'f': what = "float"; break;
    case 'c': what = "complex"; break;
    case 'i': what = "int"; break;
    case 'u': what = "uint"; break;
    case 'b': what = "bool"; break;
    case 'O': return "object";
    case 'U': return "str";
    case 'S': return "bytes";
    case 'V': return "void or structured";
    case 'M': return "datetime64";
    case 'm': return "timedelta64";
    default: return "unknown";
    }
    snprintf(buf, cap, "%s%lu", what, size * 8);
    return buf;
}

/* numpy.dtype(code, align, copy): what dtype.__reduce__ writes, ('f8', False, True). */
static int reduce_dtype(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    brine_pvalue *const *a = args->v.seq.items;
    if (args->v.seq.n != 3 || a[0]->kind != BRINE_PV_STR || !is_bool(a[1]) || !is_bool(a[2]))
        return corrupt(d, "numpy.dtype takes (code, align, copy) as numpy writes it, e.g. ('f8', False, True)");
    int dt = -1;
    for (size_t i = 0; i < sizeof dtype_codes / sizeof dtype_codes[0] && dt < 0; i++) {
        if (is_str(a[0], dtype_codes[i].code))
            dt = dtype_codes[i].dtype;
    }
    if (dt < 0) {
        char m[72], name[32];
        return corrupt(d, "numpy dtype '%s' (%s) is not one of brine's 13 dtypes (bool, int8-64, uint8-64, "
                          "float32, float64, complex64, complex128)",
                       printable(m, sizeof m, a[0]->v.str.s, a[0]->v.str.len),
                       refused_dtype_name(name, sizeof name, a[0]->v.str.s, a[0]->v.str.len));
    }
    brine_pvalue *v = newval(d, BRINE_PV_DTYPE);
    if (!v)
        return nomem(d);
    v->v.dtype.id = dt;
    *out = v;
    return 0;
}

static uint64_t load_le(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return v;
}

static double load_f32(const char *p)
{
    uint32_t bits = (uint32_t)load_le(p, 4);
    float f;
    memcpy(&f, &bits, 4);
    return (double)f; /* exact */
}

static double load_f64(const char *p)
{
    uint64_t bits = load_le(p, 8);
    double x;
    memcpy(&x, &bits, 8);
    return x;
}

/* numpy's scalar(dtype, bytes): a numpy scalar, from its little-endian bytes. */
static int reduce_scalar(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    brine_pvalue *const *a = args->v.seq.items;
    if (args->v.seq.n != 2 || a[0]->kind != BRINE_PV_DTYPE || a[1]->kind != BRINE_PV_BYTES)
        return corrupt(d, "numpy's scalar takes exactly (numpy.dtype, bytes)");
    int dt = a[0]->v.dtype.id;
    const brine_dtype_info *info = brine_dtype__info(dt);
    const char *p = a[1]->v.str.s;
    if (a[1]->v.str.len != info->size)
        return corrupt(d, "a numpy %s scalar has %zu bytes, not %zu", info->name, a[1]->v.str.len, info->size);
    brine_pvalue *v = newval(d, BRINE_PV_NONE);
    if (!v)
        return nomem(d);
    v->has_np_dtype = 1;
    v->np_dtype = dt;
    switch (info->kind) {
    case BRINE_KIND_BOOL:
        if ((unsigned char)p[0] > 1)
            return corrupt(d, "a numpy bool scalar holds the byte %u, not 0 or 1", (unsigned char)p[0]);
        v->kind = BRINE_PV_BOOL;
        v->v.b = p[0];
        break;
    case BRINE_KIND_INT: {
        uint64_t u = load_le(p, info->size);
        if (info->size < 8 && (u >> (8 * info->size - 1)))
            u |= ~(uint64_t)0 << (8 * info->size); /* sign extension */
        v->kind = BRINE_PV_INT;
        if (u >> 63) {
            v->v.integer.negative = 1;
            v->v.integer.i = -(int64_t)(~u) - 1; /* exact, as in push_long */
        } else {
            v->v.integer.i = (int64_t)u;
            v->v.integer.u = u;
        }
        break;
    }
    case BRINE_KIND_UINT:
        v->kind = BRINE_PV_INT;
        v->v.integer.u = load_le(p, info->size);
        v->v.integer.i = v->v.integer.u <= (uint64_t)INT64_MAX ? (int64_t)v->v.integer.u : 0;
        break;
    case BRINE_KIND_FLOAT:
        v->kind = BRINE_PV_FLOAT;
        v->v.f = info->size == 4 ? load_f32(p) : load_f64(p);
        break;
    case BRINE_KIND_COMPLEX:
        v->kind = BRINE_PV_COMPLEX;
        v->v.c.re = info->size == 8 ? load_f32(p) : load_f64(p);
        v->v.c.im = info->size == 8 ? load_f32(p + 4) : load_f64(p + 8);
        break;
    default:
        assert(0);
    }
    *out = v;
    return 0;
}

/* _codecs.encode(text, 'latin1'): how protocols 0 to 2 pickle bytes. */
static int reduce_encode(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    brine_pvalue *const *a = args->v.seq.items;
    if (args->v.seq.n != 2 || a[0]->kind != BRINE_PV_STR || !is_str(a[1], "latin1"))
        return corrupt(d, "_codecs.encode takes exactly (str, 'latin1'), as pickle writes bytes");
    const unsigned char *s = (const unsigned char *)a[0]->v.str.s;
    size_t n = a[0]->v.str.len, j = 0;
    char *bytes = arena_alloc(d->doc, n);
    if (!bytes)
        return nomem(d);
    /* The str is valid UTF-8: U+0000-U+007F is one byte, U+0080-U+00FF is 0xc2 or 0xc3 and one more. */
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            bytes[j++] = (char)s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n) {
            bytes[j++] = (char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            return corrupt(d, "_codecs.encode to latin1 of a character above U+00FF");
        }
    }
    if (!(*out = new_str(d, BRINE_PV_BYTES, bytes, j)))
        return nomem(d);
    return 0;
}

static int reduce(dec *d)
{
    int rc = need_stack(d, 2);
    if (rc)
        return rc;
    const brine_pvalue *args = d->stack[d->sn - 1];
    const brine_pvalue *callable = d->stack[d->sn - 2];
    if (callable->kind != BRINE_PV_GLOBAL)
        return corrupt(d, "calls a %s (only the globals of docs/format.md 3.3 may be called)",
                       kindname(callable->kind));
    if (args->kind != BRINE_PV_TUPLE)
        return corrupt(d, "the arguments are a %s, not a tuple", kindname(args->kind));
    brine_pvalue *v = NULL;
    switch (callable->v.global) {
    case BRINE_PGLOBAL_NDARRAY: rc = reduce_ndarray(d, args, &v); break;
    case BRINE_PGLOBAL_COMPLEX: rc = reduce_complex(d, args, &v); break;
    case BRINE_PGLOBAL_FROMBUFFER: rc = reduce_frombuffer(d, args, &v); break;
    case BRINE_PGLOBAL_RECONSTRUCT: rc = reduce_reconstruct(d, args, &v); break;
    case BRINE_PGLOBAL_DTYPE: rc = reduce_dtype(d, args, &v); break;
    case BRINE_PGLOBAL_SCALAR: rc = reduce_scalar(d, args, &v); break;
    case BRINE_PGLOBAL_ENCODE: rc = reduce_encode(d, args, &v); break;
    case BRINE_PGLOBAL_BYTES:
        if (args->v.seq.n != 0)
            return corrupt(d, "builtins.bytes takes no arguments here (pickle writes bytes() for b'')");
        if (!(v = new_str(d, BRINE_PV_BYTES, "", 0)))
            return nomem(d);
        break;
    default:
        assert(0);
        return corrupt(d, "unknown global");
    }
    if (rc)
        return rc;
    d->sn -= 2;
    return push(d, v);
}

/* ------------------------------------------------------------------------ */
/* BUILD: only numpy's dtype state and _reconstruct's array state */

/* numpy.dtype.__setstate__ of a plain dtype: (3, byteorder, None, None, None, -1, -1, 0). */
static int build_dtype(dec *d, brine_pvalue *dt, const brine_pvalue *state)
{
    const brine_dtype_info *info = brine_dtype__info(dt->v.dtype.id);
    if (dt->v.dtype.built)
        return corrupt(d, "the numpy.dtype %s already has its state", info->name);
    if (dt->placed)
        return corrupt(d, "changes the numpy.dtype %s after it was used", info->name);
    brine_pvalue *const *a = state->kind == BRINE_PV_TUPLE ? state->v.seq.items : NULL;
    if (!a || state->v.seq.n != 8 || !is_int(a[0], 3) || a[1]->kind != BRINE_PV_STR || a[1]->v.str.len != 1 ||
        a[2]->kind != BRINE_PV_NONE || a[3]->kind != BRINE_PV_NONE || a[4]->kind != BRINE_PV_NONE ||
        !is_int(a[5], -1) || !is_int(a[6], -1) || !is_int(a[7], 0))
        return corrupt(d, "the state of the numpy.dtype %s must be numpy's (3, '<', None, None, None, -1, -1, 0) "
                          "of a plain dtype", info->name);
    char order = a[1]->v.str.s[0];
    if (order == '>')
        return corrupt(d, "numpy dtype %s with byte order '>' is big-endian: brine reads little-endian data only",
                       info->name);
    if (order == '|' && info->size > 1)
        return corrupt(d, "the numpy.dtype %s has the byte order '|', which only 1-byte dtypes have", info->name);
    if (order != '<' && order != '|' && order != '=')
        return corrupt(d, "the numpy.dtype %s has the byte order '%c', not '<', '|' or '='", info->name,
                       order >= 0x20 && order < 0x7f ? order : '?');
    dt->v.dtype.built = 1;
    return 0;
}

/* ndarray.__setstate__((1, shape, dtype, is_fortran, data)) on _reconstruct's array. */
static int build_array(dec *d, brine_pvalue *arr, const brine_pvalue *state)
{
    brine_pvalue *const *a = state->kind == BRINE_PV_TUPLE ? state->v.seq.items : NULL;
    if (!a || state->v.seq.n != 5 || !is_int(a[0], 1) || a[2]->kind != BRINE_PV_DTYPE ||
        !(is_bool(a[3]) || is_int(a[3], 0) || is_int(a[3], 1)) || a[4]->kind != BRINE_PV_BYTES)
        return corrupt(d, "the state of numpy's _reconstruct array must be (1, shape, numpy.dtype, is_fortran, bytes)");
    uint64_t nbytes = 0, dims[BRINE_MAX_NDIM];
    int rc = check_shape(d, "numpy's _reconstruct array", a[1], a[2]->v.dtype.id, &nbytes);
    if (rc)
        return rc;
    if ((uint64_t)a[4]->v.str.len != nbytes)
        return corrupt(d, "numpy's _reconstruct array has %zu bytes of data, its shape and dtype need %llu",
                       a[4]->v.str.len, (unsigned long long)nbytes);
    int ndim = (int)a[1]->v.seq.n;
    for (int i = 0; i < ndim; i++)
        dims[i] = a[1]->v.seq.items[i]->v.integer.u;
    int fortran = a[3]->kind == BRINE_PV_BOOL ? a[3]->v.b : (int)a[3]->v.integer.u;
    /* The same value becomes the array: the memo may already hold it. */
    arr->kind = BRINE_PV_NDARRAY;
    arr->v.array.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        arr->v.array.shape[i] = dims[i];
    arr->v.array.dtype = a[2]->v.dtype.id;
    arr->v.array.order = normal_order(fortran ? 'F' : 'C', ndim, dims);
    arr->v.array.buffer = -1;
    arr->v.array.inband = (const uint8_t *)a[4]->v.str.s;
    arr->v.array.inband_len = a[4]->v.str.len;
    return 0;
}

static int build(dec *d)
{
    int rc = need_stack(d, 2);
    if (rc)
        return rc;
    const brine_pvalue *state = d->stack[d->sn - 1];
    brine_pvalue *inst = d->stack[d->sn - 2];
    if (inst->kind == BRINE_PV_DTYPE)
        rc = build_dtype(d, inst, state);
    else if (inst->kind == BRINE_PV_RECONSTRUCT)
        rc = build_array(d, inst, state);
    else
        return corrupt(d, "BUILD applies only to a numpy.dtype or numpy's _reconstruct array, not to a %s",
                       kindname(inst->kind));
    if (rc)
        return rc;
    d->sn--;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Memo */

static memo_slot *memo_find(const dec *d, uint64_t key)
{
    if (!d->memo_cap)
        return NULL;
    size_t mask = d->memo_cap - 1;
    size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & mask;
    while (d->memo[i].val && d->memo[i].key != key)
        i = (i + 1) & mask;
    return &d->memo[i];
}

static int memo_put(dec *d, uint64_t key)
{
    int rc = need_stack(d, 1);
    if (rc)
        return rc;
    brine_pvalue *v = d->stack[d->sn - 1];
    if ((d->memo_n + 1) * 2 > d->memo_cap) {
        size_t ncap = d->memo_cap ? d->memo_cap * 2 : 64, bytes;
        if (brine__mul_overflows(ncap, sizeof(memo_slot), &bytes))
            return nomem(d);
        memo_slot *old = d->memo;
        size_t oldcap = d->memo_cap;
        d->memo = brine__calloc(d->alloc, ncap, sizeof(memo_slot));
        if (!d->memo) {
            d->memo = old;
            return nomem(d);
        }
        d->memo_cap = ncap;
        for (size_t i = 0; i < oldcap; i++) {
            if (old[i].val)
                *memo_find(d, old[i].key) = old[i];
        }
        brine__free(d->alloc, old);
    }
    memo_slot *s = memo_find(d, key);
    if (!s->val)
        d->memo_n++;
    s->key = key;
    s->val = v;
    return 0;
}

static int memo_get(dec *d, uint64_t key)
{
    const memo_slot *s = memo_find(d, key);
    if (!s || !s->val)
        return corrupt(d, "memo entry %llu was never stored", (unsigned long long)key);
    return push(d, s->val);
}

/* ------------------------------------------------------------------------ */
/* The opcode loop */

static int step(dec *d, int *stop)
{
    int rc = 0;
    size_t n = 0, base = 0;
    brine_pvalue *v = NULL;

    switch (d->op) {
    case OP_PROTO:
        if (d->op_pos != 0)
            return corrupt(d, "PROTO may only be the first opcode");
        if ((rc = need(d, 1)) != 0)
            return rc;
        if (d->p[d->pos] > 5)
            return corrupt(d, "unsupported pickle protocol %u", (unsigned)d->p[d->pos]);
        d->pos++;
        return 0;
    case OP_FRAME:
        /* Frames only group opcodes for buffered readers; we have it all. */
        return read_len(d, 8, &n);
    case OP_STOP:
        if (d->mn != 0)
            return corrupt(d, "%zu MARK%s never closed", d->mn, d->mn == 1 ? "" : "s");
        if (d->sn != 1)
            return corrupt(d, "the stack holds %zu values, not 1", d->sn);
        if (d->stack[0]->kind == BRINE_PV_GLOBAL)
            return corrupt(d, "the stream's value is an uncalled global");
        if (d->stack[0]->kind == BRINE_PV_DTYPE || d->stack[0]->kind == BRINE_PV_RECONSTRUCT ||
            d->stack[0]->internal)
            return corrupt(d, "the stream's value is a %s, which is only an intermediate value of numpy's pickles",
                           d->stack[0]->internal ? "tuple holding a global or a numpy.dtype"
                                                 : kindname(d->stack[0]->kind));
        if (d->pos != d->len)
            return corrupt(d, "%zu bytes follow STOP", d->len - d->pos);
        d->doc->root = d->stack[0];
        *stop = 1;
        return 0;

    case OP_MARK:
        if (d->mn == d->mcap) {
            void *p = d->marks;
            rc = grow(d, &p, &d->mcap, sizeof *d->marks);
            d->marks = p;
            if (rc)
                return rc;
        }
        d->marks[d->mn++] = d->sn;
        return 0;

    case OP_MEMOIZE:
        return memo_put(d, d->memo_n);
    case OP_BINPUT:
        if ((rc = need(d, 1)) != 0)
            return rc;
        return memo_put(d, read_le(d, 1));
    case OP_LONG_BINPUT:
        if ((rc = need(d, 4)) != 0)
            return rc;
        return memo_put(d, read_le(d, 4));
    case OP_BINGET:
        if ((rc = need(d, 1)) != 0)
            return rc;
        return memo_get(d, read_le(d, 1));
    case OP_PUT:
    case OP_GET: {
        uint64_t key = 0;
        if ((rc = read_memo_index(d, &key)) != 0)
            return rc;
        return d->op == OP_PUT ? memo_put(d, key) : memo_get(d, key);
    }
    case OP_LONG_BINGET:
        if ((rc = need(d, 4)) != 0)
            return rc;
        return memo_get(d, read_le(d, 4));

    case OP_NONE:
        return push(d, newval(d, BRINE_PV_NONE));
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        if ((v = newval(d, BRINE_PV_BOOL)) != NULL)
            v->v.b = d->op == OP_NEWTRUE;
        return push(d, v);
    case OP_BININT1:
    case OP_BININT2:
        if ((rc = need(d, d->op == OP_BININT1 ? 1 : 2)) != 0)
            return rc;
        n = (size_t)read_le(d, d->op == OP_BININT1 ? 1 : 2);
        return push_int(d, 0, (int64_t)n, n);
    case OP_BININT: {
        if ((rc = need(d, 4)) != 0)
            return rc;
        int32_t x = (int32_t)(uint32_t)read_le(d, 4);
        return push_int(d, x < 0, x, x < 0 ? 0 : (uint64_t)x);
    }
    case OP_INT:
        return op_int(d);
    case OP_LONG:
        return op_long(d);
    case OP_FLOAT:
        return op_float(d);
    case OP_LONG1:
        if ((rc = read_len(d, 1, &n)) != 0)
            return rc;
        return push_long(d, n);
    case OP_LONG4: {
        if ((rc = need(d, 4)) != 0)
            return rc;
        int32_t x = (int32_t)(uint32_t)read_le(d, 4);
        if (x < 0)
            return corrupt(d, "negative byte count %d", (int)x);
        if ((rc = need(d, (uint64_t)x)) != 0)
            return rc;
        return push_long(d, (size_t)x);
    }
    case OP_BINFLOAT: {
        if ((rc = need(d, 8)) != 0)
            return rc;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = (bits << 8) | d->p[d->pos++]; /* big-endian */
        if ((v = newval(d, BRINE_PV_FLOAT)) != NULL)
            memcpy(&v->v.f, &bits, sizeof bits);
        return push(d, v);
    }
    case OP_SHORT_BINUNICODE:
    case OP_BINUNICODE:
    case OP_BINUNICODE8:
        if ((rc = read_len(d, d->op == OP_SHORT_BINUNICODE ? 1 : d->op == OP_BINUNICODE ? 4 : 8, &n)) != 0)
            return rc;
        return push_str(d, BRINE_PV_STR, n);
    case OP_UNICODE:
        return op_unicode(d);
    case OP_STRING:
        return op_string(d);
    case OP_BINSTRING: {
        if ((rc = need(d, 4)) != 0)
            return rc;
        int32_t x = (int32_t)(uint32_t)read_le(d, 4);
        if (x < 0)
            return corrupt(d, "negative byte count %d", (int)x);
        if ((rc = need(d, (uint64_t)x)) != 0)
            return rc;
        return op_binstring(d, (size_t)x);
    }
    case OP_SHORT_BINSTRING:
        if ((rc = read_len(d, 1, &n)) != 0)
            return rc;
        return op_binstring(d, n);
    case OP_SHORT_BINBYTES:
    case OP_BINBYTES:
    case OP_BINBYTES8:
        if ((rc = read_len(d, d->op == OP_SHORT_BINBYTES ? 1 : d->op == OP_BINBYTES ? 4 : 8, &n)) != 0)
            return rc;
        return push_str(d, BRINE_PV_BYTES, n);
    case OP_BYTEARRAY8:
        if ((rc = read_len(d, 8, &n)) != 0)
            return rc;
        return push_str(d, BRINE_PV_BYTEARRAY, n);
    case OP_NEXT_BUFFER:
        if ((v = newval(d, BRINE_PV_BUFFER)) != NULL)
            v->v.buffer = d->doc->nbuffers++;
        return push(d, v);

    case OP_EMPTY_TUPLE:
        return make_tuple(d, 0);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3:
        n = (size_t)(d->op - OP_TUPLE1 + 1);
        if ((rc = need_stack(d, n)) != 0)
            return rc;
        return make_tuple(d, n);
    case OP_TUPLE:
        if ((rc = pop_mark(d, &base)) != 0)
            return rc;
        return make_tuple(d, d->sn - base);
    case OP_EMPTY_LIST:
        return push(d, newval(d, BRINE_PV_LIST));
    case OP_EMPTY_DICT:
        return push(d, newval(d, BRINE_PV_DICT));
    case OP_LIST:
    case OP_DICT:
        /* MARK items LIST, MARK key value ... DICT: a new container of the items. */
        if ((rc = pop_mark(d, &base)) != 0)
            return rc;
        if (d->op == OP_DICT && (d->sn - base) % 2 != 0)
            return corrupt(d, "odd number of values (%zu) for key, value pairs", d->sn - base);
        if (!(v = newval(d, d->op == OP_DICT ? BRINE_PV_DICT : BRINE_PV_LIST)))
            return nomem(d);
        for (size_t i = base; i < d->sn; i += d->op == OP_DICT ? 2 : 1) {
            rc = d->op == OP_DICT ? dict_set(d, v, d->stack[i], d->stack[i + 1]) : list_append(d, v, d->stack[i]);
            if (rc)
                return rc;
        }
        d->sn = base;
        return push(d, v);
    case OP_APPEND:
        if ((rc = need_stack(d, 2)) != 0)
            return rc;
        if ((rc = list_append(d, d->stack[d->sn - 2], d->stack[d->sn - 1])) != 0)
            return rc;
        d->sn--;
        return 0;
    case OP_SETITEM:
        if ((rc = need_stack(d, 3)) != 0)
            return rc;
        if ((rc = dict_set(d, d->stack[d->sn - 3], d->stack[d->sn - 2], d->stack[d->sn - 1])) != 0)
            return rc;
        d->sn -= 2;
        return 0;
    case OP_APPENDS:
    case OP_SETITEMS:
        if ((rc = pop_mark(d, &base)) != 0)
            return rc;
        /* The container sits just below the MARK, above the enclosing one. */
        if (base <= fence(d))
            return corrupt(d, "stack underflow: no container below the MARK");
        if (d->op == OP_SETITEMS && (d->sn - base) % 2 != 0)
            return corrupt(d, "odd number of values (%zu) for key, value pairs", d->sn - base);
        for (size_t i = base; i < d->sn; i += d->op == OP_SETITEMS ? 2 : 1) {
            rc = d->op == OP_SETITEMS ? dict_set(d, d->stack[base - 1], d->stack[i], d->stack[i + 1])
                                      : list_append(d, d->stack[base - 1], d->stack[i]);
            if (rc)
                return rc;
        }
        /* An empty APPENDS/SETITEMS must still name a container of the right kind. */
        if (d->sn == base && d->stack[base - 1]->kind != (d->op == OP_SETITEMS ? BRINE_PV_DICT : BRINE_PV_LIST))
            return corrupt(d, "applies to a %s", kindname(d->stack[base - 1]->kind));
        d->sn = base;
        return 0;

    case OP_GLOBAL: {
        const char *mod = NULL, *name = NULL;
        size_t modlen = 0, namelen = 0;
        if ((rc = read_line(d, "the global's name", &mod, &modlen)) != 0 ||
            (rc = read_line(d, "the global's name", &name, &namelen)) != 0)
            return rc;
        return push_global(d, mod, modlen, name, namelen);
    }
    case OP_STACK_GLOBAL: {
        if ((rc = need_stack(d, 2)) != 0)
            return rc;
        const brine_pvalue *mod = d->stack[d->sn - 2], *name = d->stack[d->sn - 1];
        if (mod->kind != BRINE_PV_STR || name->kind != BRINE_PV_STR)
            return corrupt(d, "module and name must be str, not %s and %s", kindname(mod->kind),
                           kindname(name->kind));
        d->sn -= 2;
        return push_global(d, mod->v.str.s, mod->v.str.len, name->v.str.s, name->v.str.len);
    }
    case OP_REDUCE:
        return reduce(d);
    case OP_BUILD:
        return build(d);

    default: {
        const char *why = NULL, *name = refused_opname(d->op, &why);
        if (name)
            return corrupt(d, "%s is not supported (%s)", name, why);
        return corrupt(d, "unknown opcode 0x%02x", (unsigned)d->op);
    }
    }
}

int brine_pickle__decode(brine_pickle_doc **out, const uint8_t *stream, size_t len,
                         const brine_allocator *a, brine_error *err)
{
    int rc = 0;
    brine_error scratch;
    dec d;
    memset(&d, 0, sizeof d);
    d.alloc = a;
    d.err = err ? err : &scratch;
    d.p = stream;
    d.len = stream ? len : 0;
    *out = NULL;

    d.doc = brine__calloc(a, 1, sizeof *d.doc);
    if (!d.doc) {
        rc = brine__fail(d.err, BRINE_ENOMEM, "out of memory decoding the pickle stream");
        goto done;
    }
    d.doc->alloc = a;

    /* Without PROTO, a stream is of protocol 0 or 1. */
    if (d.len == 0) {
        d.op = -1;
        rc = brine__fail(d.err, BRINE_ECORRUPT, "malformed pickle stream: it is empty");
        goto done;
    }
    for (int stop = 0; !stop;) {
        if (d.pos >= d.len) {
            rc = brine__fail(d.err, BRINE_ECORRUPT, "malformed pickle stream: it ends at byte %zu without STOP",
                             d.len);
            goto done;
        }
        d.op_pos = d.pos;
        d.op = d.p[d.pos++];
        if ((rc = step(&d, &stop)) != 0)
            goto done;
    }
    *out = d.doc;
    d.doc = NULL;
done:
    brine__free(a, d.stack);
    brine__free(a, d.marks);
    brine__free(a, d.memo);
    if (d.c_locale != (locale_t)0)
        freelocale(d.c_locale);
    brine_pickle__free(d.doc);
    return rc;
}

const brine_pvalue *brine_pickle__root(const brine_pickle_doc *d)
{
    return d ? d->root : NULL;
}

uint64_t brine_pickle__nbuffers(const brine_pickle_doc *d)
{
    return d ? d->nbuffers : 0;
}

void brine_pickle__free(brine_pickle_doc *d)
{
    if (!d)
        return;
    for (arena_block *b = d->blocks, *next; b; b = next) {
        next = b->next;
        brine__free(d->alloc, b);
    }
    brine__free(d->alloc, d);
}

const brine_pvalue *brine_pickle__dict_get(const brine_pvalue *dict, const char *key, size_t keylen)
{
    if (!dict || dict->kind != BRINE_PV_DICT || dict->v.dict.nslots == 0 || (!key && keylen))
        return NULL;
    brine_pvalue k;
    memset(&k, 0, sizeof k);
    k.kind = BRINE_PV_STR;
    k.v.str.s = key ? key : "";
    k.v.str.len = keylen;
    uint64_t h;
    key_hash(&k, &h);
    size_t s = dict->v.dict.slots[find_slot(dict, &k, h)];
    return s ? dict->v.dict.values[s - 1] : NULL;
}

const brine_pvalue *brine_pickle__lookup(const brine_pvalue *root, const char *name)
{
    if (!name)
        return NULL;
    const brine_pvalue *v = root;
    for (;;) {
        const char *slash = strchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        v = brine_pickle__dict_get(v, name, n);
        if (!v || !slash)
            return v;
        name = slash + 1;
    }
}
