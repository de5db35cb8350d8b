/* A collective group of one member, without MPI (solo_group.h). */
#include "solo_group.h"

#include <string.h>

int tu_solo_closed;

/* Alone, every rank's contribution is this rank's. */
static int solo_allgather(void *ctx, const void *send, size_t n, void *recv)
{
    (void)ctx;
    memcpy(recv, send, n);
    return 0;
}

static int solo_bcast(void *ctx, void *buf, size_t n, int root)
{
    (void)ctx, (void)buf, (void)n, (void)root;
    return 0;
}

/* The non-blocking reduction: what began is what ends. */
static int held[4], nheld;

static int solo_ibegin(void *ctx, const int *in, int n)
{
    (void)ctx;
    memcpy(held, in, (size_t)n * sizeof *in);
    nheld = n;
    return 0;
}

static int solo_iend(void *ctx, int *out)
{
    (void)ctx;
    memcpy(out, held, (size_t)nheld * sizeof *out);
    return 0;
}

static void solo_close(void *ctx)
{
    (void)ctx;
    tu_solo_closed++;
}

const brine_coll *tu_solo_group(void)
{
    static const brine_coll g = {NULL, 0, 1, solo_allgather, solo_bcast, solo_ibegin, solo_iend, solo_close};
    return &g;
}
