/* Facts about brine_dtype values: sizes, numpy strings, kinds.  No HDF5 here. */
#ifndef BRINE_FORMAT_DTYPE_H
#define BRINE_FORMAT_DTYPE_H

#include <stddef.h>

#include "brine.h"

/** numpy kind characters, as in dtype.kind. */
#define BRINE_KIND_BOOL 'b'
#define BRINE_KIND_INT 'i'
#define BRINE_KIND_UINT 'u'
#define BRINE_KIND_FLOAT 'f'
#define BRINE_KIND_COMPLEX 'c'

typedef struct brine_dtype_info {
    const char *numpy;  /**< explicit numpy dtype string, e.g. "<f8" */
    const char *name;   /**< numpy's name, e.g. "float64" (for messages) */
    size_t size;        /**< bytes per element */
    char kind;          /**< BRINE_KIND_* */
} brine_dtype_info;

/** The facts of dtype, or NULL when dtype is not a brine_dtype. */
const brine_dtype_info *brine_dtype__info(int dtype);

/** The dtype whose numpy string is s (as written by brine: "<f8", "|b1"...), or -1. */
int brine_dtype__from_numpy(const char *s, size_t len);

/**
 * Whether BRINE_CONVERT allows restoring an array of dtype from into memory
 * of dtype to (brine.h, BRINE_CONVERT): conversions that never fail and
 * never wrap.  1 or 0; 1 when from == to.
 */
int brine_dtype__can_convert(int from, int to);

/**
 * Converts n elements of src (dtype from, any alignment) into dst (dtype to,
 * any alignment), as numpy's astype does.  brine_dtype__can_convert(from, to)
 * must hold.  A bool source element is true when its byte is not 0.
 */
void brine_dtype__convert(void *dst, int to, const void *src, int from, size_t n);

#endif
