/*
 * Pickle protocol 5 encoder for the state stream of docs/format.md, section 3.
 *
 * The caller walks its state tree and calls one function per value; the
 * encoder appends opcodes to a growable buffer.  Allocation failures are
 * sticky: check once with brine_pickle__enc_finish().
 */
#ifndef BRINE_FORMAT_PICKLE_ENCODE_H
#define BRINE_FORMAT_PICKLE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buffer.h"

#define BRINE_PICKLE_MAX_DEPTH 64

typedef struct brine_pickle_enc {
    brine_buf out;
    uint32_t nbuffers;                          /**< NEXT_BUFFER opcodes emitted so far */
    int depth;                                  /**< open dicts */
    unsigned char has_items[BRINE_PICKLE_MAX_DEPTH]; /**< whether a MARK is open for each dict */
    int misuse;                                 /**< sticky: dicts nested deeper than BRINE_PICKLE_MAX_DEPTH,
                                                     unbalanced dict_begin/dict_end, a key outside a dict,
                                                     or bad ndarray arguments */
} brine_pickle_enc;

/** Starts a stream (PROTO 5) allocating through a (may be NULL). */
void brine_pickle__enc_init(brine_pickle_enc *e, const brine_allocator *a);

/** Opens a dict (EMPTY_DICT); its items follow as key, value pairs. */
void brine_pickle__enc_dict_begin(brine_pickle_enc *e);
/** A dict key: a str of len bytes of UTF-8 (the caller has validated it). */
void brine_pickle__enc_key(brine_pickle_enc *e, const char *s, size_t len);
/** Closes the innermost dict (SETITEMS when it has items). */
void brine_pickle__enc_dict_end(brine_pickle_enc *e);

void brine_pickle__enc_bool(brine_pickle_enc *e, int v);
void brine_pickle__enc_int(brine_pickle_enc *e, int64_t v);
void brine_pickle__enc_uint(brine_pickle_enc *e, uint64_t v);
void brine_pickle__enc_float(brine_pickle_enc *e, double v);
void brine_pickle__enc_complex(brine_pickle_enc *e, double re, double im);
/** A str of len bytes of UTF-8 (the caller has validated it). */
void brine_pickle__enc_str(brine_pickle_enc *e, const char *s, size_t len);
/**
 * numpy.ndarray(shape, dtype_str, NEXT_BUFFER, 0, None, order): an array whose
 * data is the next out-of-band buffer.  order is 'C' or 'F'.
 */
void brine_pickle__enc_ndarray(brine_pickle_enc *e, int ndim, const uint64_t *shape,
                               const char *dtype_str, char order);

/*
 * The same call with in-band data (brine_export, brine_dumps): begin (the
 * global, MARK, shape and dtype), then the buffer argument, then end (offset,
 * strides, order, TUPLE, REDUCE).  For in-band data the buffer argument is
 * brine_pickle__enc_bytearray8_header() followed by exactly n raw bytes the
 * caller appends (or writes to its sink) itself: numpy.ndarray then wraps a
 * writable bytearray, in numpy 1.x and 2.x alike.
 */
void brine_pickle__enc_ndarray_begin(brine_pickle_enc *e, int ndim, const uint64_t *shape,
                                     const char *dtype_str);
void brine_pickle__enc_ndarray_end(brine_pickle_enc *e, char order);
/** BYTEARRAY8 and its 8-byte length n; the n bytes of data follow. */
void brine_pickle__enc_bytearray8_header(brine_pickle_enc *e, uint64_t n);

/**
 * Ends the stream (STOP).  On success *out and *len receive the stream, which the
 * caller frees with brine__free(a, *out).  Returns 0, BRINE_ENOMEM, or
 * BRINE_EINVAL when the calls were misused (see misuse); on failure *out is
 * NULL, *len 0 and the encoder's memory is freed.
 */
int brine_pickle__enc_finish(brine_pickle_enc *e, uint8_t **out, size_t *len);

/** Frees the encoder's memory without finishing (on an error path). */
void brine_pickle__enc_abort(brine_pickle_enc *e);

#endif
