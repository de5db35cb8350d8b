#include "buffer.h"

#include <string.h>

#include "alloc.h"

void brine_buf__init(brine_buf *b, const brine_allocator *a)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->alloc = a;
    b->failed = 0;
}

int brine_buf__reserve(brine_buf *b, size_t extra)
{
    if (b->failed)
        return BRINE_ENOMEM;
    if (extra <= b->cap - b->len)
        return 0;
    size_t want = b->len + extra;
    if (want < b->len) {
        b->failed = 1;
        return BRINE_ENOMEM;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) {
            cap = want;
            break;
        }
        cap *= 2;
    }
    void *p = b->data;
    if (brine__resize(b->alloc, &p, b->len, cap) != 0) {
        b->failed = 1;
        return BRINE_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void brine_buf__append(brine_buf *b, const void *p, size_t n)
{
    if (n == 0 || brine_buf__reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void brine_buf__put_u8(brine_buf *b, uint8_t v)
{
    brine_buf__append(b, &v, 1);
}

void brine_buf__free(brine_buf *b)
{
    brine__free(b->alloc, b->data);
    brine_buf__init(b, b->alloc);
}
