/* A growable byte buffer whose errors are sticky, so encoders check once at the end. */
#ifndef BRINE_COMMON_BUFFER_H
#define BRINE_COMMON_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

typedef struct brine_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    const brine_allocator *alloc;
    int failed; /**< set once an allocation failed; every later append is a no-op */
} brine_buf;

/** An empty buffer allocating through a (may be NULL). */
void brine_buf__init(brine_buf *b, const brine_allocator *a);

/** Makes room for extra more bytes.  0, or BRINE_ENOMEM (and the buffer is marked failed). */
int brine_buf__reserve(brine_buf *b, size_t extra);

/** Appends n bytes. */
void brine_buf__append(brine_buf *b, const void *p, size_t n);

/** Appends one byte. */
void brine_buf__put_u8(brine_buf *b, uint8_t v);

/** Frees the memory; the buffer is empty again. */
void brine_buf__free(brine_buf *b);

#endif
