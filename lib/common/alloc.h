/* Allocation through the context's hook (brine_allocator), so tests can fail the Nth allocation. */
#ifndef BRINE_COMMON_ALLOC_H
#define BRINE_COMMON_ALLOC_H

#include <stddef.h>

#include "brine.h"

/** malloc through a (NULL = malloc/free); NULL on failure or when n is 0. */
void *brine__alloc(const brine_allocator *a, size_t n);

/** Zeroed n*size bytes; NULL on failure or on overflow of n*size. */
void *brine__calloc(const brine_allocator *a, size_t n, size_t size);

/** free through a; NULL p is a no-op. */
void brine__free(const brine_allocator *a, void *p);

/** A copy of s; NULL on failure. */
char *brine__strdup(const brine_allocator *a, const char *s);

/**
 * Resizes *p from old_size to new_size bytes, keeping the contents (realloc
 * emulated with alloc + copy + free, since the hook has no realloc).
 * Returns 0, or -1 with *p unchanged.
 */
int brine__resize(const brine_allocator *a, void **p, size_t old_size, size_t new_size);

/** Sets *out to a*b; returns -1 on overflow. */
int brine__mul_overflows(size_t a, size_t b, size_t *out);

#endif
