#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *brine__alloc(const brine_allocator *a, size_t n)
{
    if (n == 0)
        return NULL;
    return a ? a->alloc(a->ctx, n) : malloc(n);
}

void *brine__calloc(const brine_allocator *a, size_t n, size_t size)
{
    size_t total;
    if (brine__mul_overflows(n, size, &total) || total == 0)
        return NULL;
    void *p = brine__alloc(a, total);
    if (p)
        memset(p, 0, total);
    return p;
}

void brine__free(const brine_allocator *a, void *p)
{
    if (!p)
        return;
    if (a)
        a->free(a->ctx, p);
    else
        free(p);
}

char *brine__strdup(const brine_allocator *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = brine__alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int brine__resize(const brine_allocator *a, void **p, size_t old_size, size_t new_size)
{
    void *q = brine__alloc(a, new_size);
    if (!q)
        return -1;
    if (*p) {
        memcpy(q, *p, old_size < new_size ? old_size : new_size);
        brine__free(a, *p);
    }
    *p = q;
    return 0;
}

int brine__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}
