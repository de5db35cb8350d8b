#include "pickle_decode.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "dtype.h"
#include "pickle_opcodes.h"

/* Names for messages; NULL for the opcodes brine refuses. */
static const char *opname(int op)
{
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_REDUCE: return "REDUCE";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_APPENDS: return "APPENDS";
    case OP_GLOBAL: return "GLOBAL";
    case OP_BINGET: return "BINGET";
    case OP_LONG_BINGET: return "LONG_BINGET";
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
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
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

/* Records that child becomes an item of parent: nesting depth and kinds. */
static int place(dec *d, brine_pvalue *parent, brine_pvalue *child)
{
    if (child->kind == BRINE_PV_GLOBAL)
        return corrupt(d, "a global may only be called by REDUCE, not stored in a %s", kindname(parent->kind));
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

/* ------------------------------------------------------------------------ */
/* Globals and REDUCE */

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

static int push_global(dec *d, const char *mod, size_t modlen, const char *name, size_t namelen)
{
    int which = 0;
    if (modlen == 5 && !memcmp(mod, "numpy", 5) && namelen == 7 && !memcmp(name, "ndarray", 7))
        which = BRINE_PGLOBAL_NDARRAY;
    else if (modlen == 8 && !memcmp(mod, "builtins", 8) && namelen == 7 && !memcmp(name, "complex", 7))
        which = BRINE_PGLOBAL_COMPLEX;
    if (!which) {
        char m[72], n[72];
        return corrupt(d, "global '%s %s' is not allowed (only 'numpy ndarray' and 'builtins complex')",
                       printable(m, sizeof m, mod, modlen), printable(n, sizeof n, name, namelen));
    }
    brine_pvalue *v = newval(d, BRINE_PV_GLOBAL);
    if (!v)
        return nomem(d);
    v->v.global = which;
    return push(d, v);
}

/* GLOBAL's argument: "module\nname\n". */
static int read_line(dec *d, const char **s, size_t *n)
{
    const uint8_t *start = d->p + d->pos;
    const uint8_t *nl = memchr(start, '\n', d->len - d->pos);
    if (!nl)
        return corrupt(d, "the global's name has no end of line before the end of the stream");
    *s = (const char *)start;
    *n = (size_t)(nl - start);
    d->pos += *n + 1;
    return 0;
}

static int as_double(const brine_pvalue *v, double *out)
{
    if (v->kind == BRINE_PV_FLOAT)
        *out = v->v.f;
    else if (v->kind == BRINE_PV_INT)
        *out = v->v.integer.negative ? (double)v->v.integer.i : (double)v->v.integer.u;
    else
        return -1;
    return 0;
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

static int reduce_ndarray(dec *d, const brine_pvalue *args, brine_pvalue **out)
{
    if (args->v.seq.n != 6)
        return corrupt(d, "numpy.ndarray takes (shape, dtype, buffer, 0, None, order), got %zu arguments",
                       args->v.seq.n);
    brine_pvalue *const *a = args->v.seq.items;
    const brine_pvalue *shape = a[0], *dtype = a[1], *buf = a[2], *offset = a[3], *strides = a[4], *order = a[5];

    if (shape->kind != BRINE_PV_TUPLE || shape->v.seq.n > BRINE_MAX_NDIM)
        return corrupt(d, "numpy.ndarray's shape must be a tuple of at most %d ints", BRINE_MAX_NDIM);
    uint64_t nelem = 1;
    int overflow = 0;
    for (size_t i = 0; i < shape->v.seq.n; i++) {
        const brine_pvalue *e = shape->v.seq.items[i];
        if (e->kind != BRINE_PV_INT || e->v.integer.negative)
            return corrupt(d, "numpy.ndarray's shape holds a %s, not a non-negative int",
                           e->kind == BRINE_PV_INT ? "negative int" : kindname(e->kind));
        if (e->v.integer.u != 0 && nelem > UINT64_MAX / e->v.integer.u)
            overflow = 1;
        nelem *= e->v.integer.u;
    }
    if (dtype->kind != BRINE_PV_STR)
        return corrupt(d, "numpy.ndarray's dtype is a %s, not a str", kindname(dtype->kind));
    int dt = brine_dtype__from_numpy(dtype->v.str.s, dtype->v.str.len);
    if (dt < 0) {
        char m[72];
        return corrupt(d, "unknown numpy dtype '%s'", printable(m, sizeof m, dtype->v.str.s, dtype->v.str.len));
    }
    size_t itemsize = brine_dtype__info(dt)->size;
    /* A zero extent makes the array empty whatever the others are, as numpy has it. */
    if (nelem != 0 && (overflow || nelem > UINT64_MAX / itemsize))
        return corrupt(d, "numpy.ndarray's size overflows 64 bits");
    uint64_t nbytes = nelem * itemsize;
    if (buf->kind != BRINE_PV_BUFFER && buf->kind != BRINE_PV_BYTES)
        return corrupt(d, "numpy.ndarray's buffer is a %s, not NEXT_BUFFER or bytes", kindname(buf->kind));
    if (buf->kind == BRINE_PV_BYTES && (uint64_t)buf->v.str.len != nbytes)
        return corrupt(d, "numpy.ndarray's in-band buffer has %zu bytes, its shape and dtype need %llu",
                       buf->v.str.len, (unsigned long long)nbytes);
    if (offset->kind != BRINE_PV_INT || offset->v.integer.negative || offset->v.integer.u != 0)
        return corrupt(d, "numpy.ndarray's offset must be the int 0");
    if (strides->kind != BRINE_PV_NONE)
        return corrupt(d, "numpy.ndarray's strides must be None");
    if (order->kind != BRINE_PV_STR || order->v.str.len != 1 || (order->v.str.s[0] != 'C' && order->v.str.s[0] != 'F'))
        return corrupt(d, "numpy.ndarray's order must be 'C' or 'F'");

    brine_pvalue *v = newval(d, BRINE_PV_NDARRAY);
    if (!v)
        return nomem(d);
    v->v.array.ndim = (int)shape->v.seq.n;
    for (size_t i = 0; i < shape->v.seq.n; i++)
        v->v.array.shape[i] = shape->v.seq.items[i]->v.integer.u;
    v->v.array.dtype = dt;
    v->v.array.order = order->v.str.s[0];
    if (buf->kind == BRINE_PV_BUFFER) {
        v->v.array.buffer = (int64_t)buf->v.buffer;
    } else {
        v->v.array.buffer = -1;
        v->v.array.inband = (const uint8_t *)buf->v.str.s;
        v->v.array.inband_len = buf->v.str.len;
    }
    *out = v;
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
        return corrupt(d, "calls a %s (only numpy.ndarray and builtins.complex may be called)",
                       kindname(callable->kind));
    if (args->kind != BRINE_PV_TUPLE)
        return corrupt(d, "the arguments are a %s, not a tuple", kindname(args->kind));
    brine_pvalue *v = NULL;
    assert(callable->v.global == BRINE_PGLOBAL_NDARRAY || callable->v.global == BRINE_PGLOBAL_COMPLEX);
    if (callable->v.global == BRINE_PGLOBAL_NDARRAY)
        rc = reduce_ndarray(d, args, &v);
    else
        rc = reduce_complex(d, args, &v);
    if (rc)
        return rc;
    d->sn -= 2;
    return push(d, v);
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
    case OP_SHORT_BINBYTES:
    case OP_BINBYTES:
    case OP_BINBYTES8:
        if ((rc = read_len(d, d->op == OP_SHORT_BINBYTES ? 1 : d->op == OP_BINBYTES ? 4 : 8, &n)) != 0)
            return rc;
        return push_str(d, BRINE_PV_BYTES, n);
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
        if ((rc = read_line(d, &mod, &modlen)) != 0 || (rc = read_line(d, &name, &namelen)) != 0)
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

    default:
        if (d->op == OP_READONLY_BUFFER)
            return corrupt(d, "READONLY_BUFFER is not supported (brine's buffers are writable arrays)");
        return corrupt(d, "unknown or unsupported opcode 0x%02x", (unsigned)d->op);
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

    if (d.len == 0 || d.p[0] != OP_PROTO) {
        d.op = d.len ? d.p[0] : -1;
        rc = brine__fail(d.err, BRINE_ECORRUPT, "malformed pickle stream: %s",
                         d.len ? "it does not start with PROTO" : "it is empty");
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
