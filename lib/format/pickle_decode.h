/*
 * Strict pickle decoder: turns a checkpoint's stream into a small value tree.
 *
 * It accepts exactly the opcodes and globals listed in docs/format.md,
 * section 3.3, and nothing else.  It never executes anything: the globals it
 * knows (numpy.ndarray, builtins.complex, numpy's own array, dtype and scalar
 * reconstructors, and the two helpers CPython's protocols 0-2 use for bytes)
 * are recognised by name and their REDUCE (and numpy's BUILD) is turned into
 * an array descriptor or a plain value.  Every length read from the stream is
 * checked against what remains: a malformed stream is BRINE_ECORRUPT with a
 * message giving the byte offset, never an overread.
 */
#ifndef BRINE_FORMAT_PICKLE_DECODE_H
#define BRINE_FORMAT_PICKLE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

typedef enum brine_pkind {
    BRINE_PV_NONE,
    BRINE_PV_BOOL,
    BRINE_PV_INT,     /**< integer that fits in int64 or uint64 */
    BRINE_PV_FLOAT,
    BRINE_PV_COMPLEX,
    BRINE_PV_STR,
    BRINE_PV_BYTES,
    BRINE_PV_TUPLE,
    BRINE_PV_LIST,
    BRINE_PV_DICT,
    BRINE_PV_NDARRAY,
    BRINE_PV_GLOBAL,  /**< a known global not yet called (only seen inside the decoder) */
    BRINE_PV_BUFFER,  /**< a NEXT_BUFFER value not used as an ndarray's buffer: v.buffer */
    BRINE_PV_BYTEARRAY, /**< BYTEARRAY8: v.str, like BYTES (not hashable) */
    BRINE_PV_DTYPE,   /**< a numpy.dtype (only seen inside the decoder): v.dtype */
    BRINE_PV_RECONSTRUCT /**< numpy's _reconstruct before its BUILD (only seen inside the decoder) */
} brine_pkind;

/** Which known global a BRINE_PV_GLOBAL is (its v.global). */
enum {
    BRINE_PGLOBAL_NDARRAY = 1,     /**< numpy.ndarray */
    BRINE_PGLOBAL_COMPLEX = 2,     /**< builtins.complex (__builtin__.complex before protocol 3) */
    BRINE_PGLOBAL_FROMBUFFER = 3,  /**< numpy.core.numeric._frombuffer, numpy._core.numeric._frombuffer */
    BRINE_PGLOBAL_RECONSTRUCT = 4, /**< numpy.core.multiarray._reconstruct, numpy._core.multiarray._reconstruct */
    BRINE_PGLOBAL_DTYPE = 5,       /**< numpy.dtype */
    BRINE_PGLOBAL_SCALAR = 6,      /**< numpy.core.multiarray.scalar, numpy._core.multiarray.scalar */
    BRINE_PGLOBAL_ENCODE = 7,      /**< _codecs.encode (bytes before protocol 3) */
    BRINE_PGLOBAL_BYTES = 8        /**< builtins.bytes, __builtin__.bytes (empty bytes before protocol 3) */
};

/**
 * Deepest nesting of containers the decoder accepts (a dict in a dict is 2),
 * so that code walking a tree recursively has a bound.  brine itself writes at
 * most BRINE_PICKLE_MAX_DEPTH (64) nested dicts.
 */
#define BRINE_PICKLE_MAX_NEST 256

typedef struct brine_pvalue brine_pvalue;

struct brine_pvalue {
    brine_pkind kind;
    /* Decoder bookkeeping, valid in a finished tree too: */
    unsigned depth;  /**< 0 for a leaf, else 1 + the depth of its deepest item */
    unsigned placed; /**< 1 once the value is an item of a tuple, list or dict */
    unsigned internal; /**< 1 for a tuple holding a decoder-only value (a global, a
                            numpy.dtype): it may only be the arguments of REDUCE or the
                            state of BUILD; never 1 in a finished tree */
    int has_np_dtype; /**< 1 for a numpy scalar */
    int np_dtype;     /**< its brine_dtype when has_np_dtype */
    union {
        int b; /**< BOOL: 0 or 1 */
        struct {
            int negative;   /**< 1 when the value is < 0 (then it is in .i) */
            int64_t i;      /**< the value when it fits in int64, else 0 */
            uint64_t u;     /**< the value when >= 0, else 0 */
        } integer;
        double f;
        struct {
            double re, im;
        } c;
        struct {
            const char *s; /**< points into the stream, or into the document when the
                                text had to be decoded (escapes, latin-1); not NUL-terminated */
            size_t len;
        } str; /**< STR (valid UTF-8), BYTES and BYTEARRAY */
        struct {
            brine_pvalue **items;
            size_t n;
            size_t cap;            /**< allocated items (decoder bookkeeping) */
        } seq; /**< TUPLE and LIST */
        struct {
            brine_pvalue **keys;
            brine_pvalue **values;
            size_t n;              /**< items, in insertion order; keys are distinct (see below) */
            size_t cap;            /**< allocated items (decoder bookkeeping) */
            size_t *slots;         /**< open-addressing hash index: item + 1, 0 = free */
            size_t nslots;         /**< a power of two, or 0 when slots is NULL */
        } dict; /**< str, bytes and int keys are unique: a repeated key replaces the
                     value and keeps its first position, as Python does.  Other
                     hashable keys (None, bool, float, complex, tuple) are kept
                     as they come, never merged. */
        struct {
            int ndim;
            uint64_t shape[8];
            int dtype;             /**< brine_dtype */
            char order;            /**< 'C' or 'F' (numpy's forms: 'F' only when the
                                        layout differs from C, as docs/format.md 2.3) */
            int64_t buffer;        /**< index of its out-of-band buffer, or -1 when in-band */
            const uint8_t *inband; /**< in-band data when buffer is -1: points into the stream,
                                        or into the document for data decoded from text */
            size_t inband_len;     /**< exactly the shape's elements times the dtype's size */
        } array;
        int global; /**< GLOBAL: which known global (BRINE_PGLOBAL_*) */
        uint64_t buffer; /**< BUFFER: index of its out-of-band buffer */
        struct {
            int id;    /**< brine_dtype */
            int built; /**< 1 once BUILD gave it numpy's state (its byte order) */
        } dtype; /**< DTYPE */
    } v;
};

/** A decoded stream: the tree lives in an arena freed as a whole. */
typedef struct brine_pickle_doc brine_pickle_doc;

/**
 * Decodes stream[0..len).  The stream must outlive the document (strings
 * point into it).  On success *out is the document; on failure *out is NULL
 * and err says what is wrong and at which byte offset.
 * @return 0, BRINE_ECORRUPT, or BRINE_ENOMEM.
 */
int brine_pickle__decode(brine_pickle_doc **out, const uint8_t *stream, size_t len,
                         const brine_allocator *a, brine_error *err);

/** The value the stream pickles (its STOP value). */
const brine_pvalue *brine_pickle__root(const brine_pickle_doc *d);

/** How many NEXT_BUFFER opcodes the stream has. */
uint64_t brine_pickle__nbuffers(const brine_pickle_doc *d);

/** Frees a document; NULL is a no-op. */
void brine_pickle__free(brine_pickle_doc *d);

/** The value of key (a str of keylen bytes) in a DICT, or NULL (also when dict is NULL or not a DICT). */
const brine_pvalue *brine_pickle__dict_get(const brine_pvalue *dict, const char *key, size_t keylen);

/**
 * Follows a hierarchical name "a/b/c" through nested dicts from root.
 * NULL when a component is missing or a non-dict is met on the way.
 * Components are split on '/' only, taken literally ("a//b" looks up "").
 */
const brine_pvalue *brine_pickle__lookup(const brine_pvalue *root, const char *name);

#endif
