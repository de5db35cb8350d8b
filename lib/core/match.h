/*
 * Matching a checkpoint's value against what the program expects of it (a
 * registered variable, or brine_read's arguments), and copying scalars.
 * Shared by brine_restore (restore.c) and the reader (reader.c).
 */
#ifndef BRINE_CORE_MATCH_H
#define BRINE_CORE_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"
#include "../format/pickle_decode.h"

/** What the program expects under one name. */
typedef struct brine_target {
    const char *name;
    const char *as;         /**< "registered" or "requested", for messages */
    int is_string;          /**< a string of capacity bytes (with its NUL) */
    size_t capacity;
    brine_dtype dtype;      /**< arrays and scalars */
    int ndim;               /**< 0: a scalar */
    const uint64_t *shape;  /**< ndim extents */
    unsigned flags;         /**< BRINE_FORTRAN_ORDER, BRINE_CONVERT */
    int any_shape;          /**< a resizable array: any shape of this ndim */
} brine_target;

/** "a float", "an array"... for messages. */
const char *brine_match__kind_name(brine_pkind k);

/**
 * Checks v against t.  @return 0; or BRINE_EMISMATCH with why set to a
 * phrase completing "variable 'x' is ...", such as "registered as float32
 * (3, 4) order C, the checkpoint has float64 (3, 5) order C".
 */
int brine_match__value(const brine_target *t, const brine_pvalue *v, char *why, size_t whylen);

/** Writes scalar v (it matched a scalar target of dtype) into p. */
void brine_match__store_scalar(brine_dtype dtype, void *p, const brine_pvalue *v);

/**
 * The dtype a scalar value has for listings: its numpy dtype, else bool,
 * int64 (uint64 above INT64_MAX), float64 or complex128.  -1 for non-scalars.
 */
int brine_match__scalar_dtype(const brine_pvalue *v);

#endif
