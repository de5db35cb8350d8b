/* The context and its registry, shared by the core modules (context, registry, save, restore). */
#ifndef BRINE_CORE_CORE_H
#define BRINE_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../format/chunk_codec.h"

/** One registered variable. */
typedef struct brine_var {
    char *name;        /**< hierarchical name, owned */
    int is_string;     /**< registered with brine_register_string */
    brine_dtype dtype; /**< element type (arrays and scalars) */
    void *data;        /**< the caller's memory */
    int ndim;          /**< 0 for scalars and strings */
    uint64_t shape[BRINE_MAX_NDIM]; /**< logical shape as registered */
    uint64_t dims[BRINE_MAX_NDIM];  /**< dataset dims: shape, reversed when order is 'F' */
    char order;        /**< 'C' or 'F', normalised (docs/format.md, 2.3) */
    size_t nbytes;     /**< bytes of data (elements * size); the capacity for strings */
} brine_var;

/** One user metadata attribute (brine_set_attr_*), written into every checkpoint. */
typedef struct brine_attr_val {
    char *name;           /**< owned */
    brine_attr_type type;
    int64_t i;            /**< BRINE_ATTR_INT */
    double d;             /**< BRINE_ATTR_DOUBLE */
    char *s;              /**< BRINE_ATTR_STRING, owned */
} brine_attr_val;

struct brine {
    char *dir;
    char *prefix;
    brine_options opts; /**< a copy; opts.prefix points to prefix */
    brine_chunk_codec codec; /**< opts.codec and opts.level resolved */
    const brine_io_methods *io;
    const brine_allocator *alloc; /**< NULL = malloc/free */
    brine_var *vars;
    size_t nvars;
    size_t cap;
    brine_attr_val *attrs; /**< user metadata, in the order first set */
    size_t nattrs;
    size_t attrs_cap;
    brine_error err;
};

/** Frees the registry's memory (brine_close). */
void brine_registry__free(brine *b);

/** Frees the user metadata (brine_close); attrs.c. */
void brine_attrs__free(brine *b);

#endif
