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

#endif
