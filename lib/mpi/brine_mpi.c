/*
 * brine_open_mpi: the collective layer of lib/core (coll.h) over an MPI
 * communicator.  This is the only file that calls MPI; libbrine itself stays
 * free of it, so a build without MPI loses only this library.
 */
#include "brine_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/coll.h"

typedef struct mpi_group {
    MPI_Comm comm;       /* the duplicate: brine's traffic never mixes with the program's */
    MPI_Request req;     /* the policy's non-blocking reduction, when active */
    int active;
    int in[4], out[4];   /* its buffers: they must outlive the call that starts it */
    int n;
} mpi_group;

static int g_allgather(void *ctx, const void *send, size_t n, void *recv)
{
    const mpi_group *g = ctx;
    if (n > (size_t)INT32_MAX)
        return -1;
    return MPI_Allgather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE, g->comm) == MPI_SUCCESS ? 0 : -1;
}

static int g_bcast(void *ctx, void *buf, size_t n, int root)
{
    const mpi_group *g = ctx;
    if (n > (size_t)INT32_MAX)
        return -1;
    return MPI_Bcast(buf, (int)n, MPI_BYTE, root, g->comm) == MPI_SUCCESS ? 0 : -1;
}

static int g_iallreduce_begin(void *ctx, const int *in, int n)
{
    mpi_group *g = ctx;
    if (g->active || n < 1 || n > 4)
        return -1;
    memcpy(g->in, in, (size_t)n * sizeof *in);
    g->n = n;
    if (MPI_Iallreduce(g->in, g->out, n, MPI_INT, MPI_MAX, g->comm, &g->req) != MPI_SUCCESS)
        return -1;
    g->active = 1;
    return 0;
}

static int g_iallreduce_end(void *ctx, int *out)
{
    mpi_group *g = ctx;
    if (!g->active)
        return -1;
    g->active = 0;
    if (MPI_Wait(&g->req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return -1;
    memcpy(out, g->out, (size_t)g->n * sizeof *out);
    return 0;
}

static void g_close(void *ctx)
{
    mpi_group *g = ctx;
    if (!g)
        return;
    /* A reduction in flight is a collective every rank started: every rank completes it. */
    if (g->active)
        MPI_Wait(&g->req, MPI_STATUS_IGNORE);
    MPI_Comm_free(&g->comm);
    free(g);
}

int brine_open_mpi(brine **out, const char *dir, MPI_Comm comm, const brine_options *opts)
{
    int rc = 0, initialized = 0, finalized = 0, rank = 0, size = 0;
    char msg[1024];
    brine *b = NULL;
    int *all = NULL;
    mpi_group *g = NULL;

    if (out)
        *out = NULL;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized)
        return brine_coll__open_failed(BRINE_EINVAL, "brine_open_mpi: MPI is not initialised (call MPI_Init first)");
    if (comm == MPI_COMM_NULL)
        return brine_coll__open_failed(BRINE_EINVAL, "brine_open_mpi: comm is MPI_COMM_NULL");
    if (!(g = calloc(1, sizeof *g)))
        return brine_coll__open_failed(BRINE_ENOMEM, "brine_open_mpi: out of memory");
    if (MPI_Comm_dup(comm, &g->comm) != MPI_SUCCESS) {
        free(g);
        return brine_coll__open_failed(BRINE_EIO, "brine_open_mpi: MPI_Comm_dup failed");
    }
    /* Failures of brine's collectives come back as codes, reported as BRINE_EIO. */
    MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g->comm, &rank);
    MPI_Comm_size(g->comm, &size);

    /* Every rank opens; all succeed or all fail. */
    rc = brine_open(out ? &b : NULL, dir, opts);
    if (rc) {
        snprintf(msg, sizeof msg, "%s", brine_open_errmsg());
    }
    if (!(all = calloc((size_t)size, sizeof *all)) ||
        MPI_Allgather(&rc, 1, MPI_INT, all, 1, MPI_INT, g->comm) != MPI_SUCCESS)
        abort(); /* cannot stay in step with the group */
    int first = -1;
    for (int k = 0; k < size && first < 0; k++)
        if (all[k])
            first = k;
    if (first >= 0) {
        g_close(g);
        brine_close(b);
        if (rc)
            rc = brine_coll__open_failed(rc, msg);
        else {
            snprintf(msg, sizeof msg,
                     "brine_open_mpi: rank %d could not open the context in %s (its brine_open_errmsg() "
                     "says why), so no rank did", first, dir ? dir : "BRINE_DIR");
            rc = brine_coll__open_failed(all[first], msg);
        }
        goto done;
    }
    brine_coll table = {g, rank, size, g_allgather, g_bcast,
                        g_iallreduce_begin, g_iallreduce_end, g_close};
    /* attach takes g: it closes it itself when it fails. */
    if ((rc = brine_coll__attach(b, &table))) {
        brine_close(b);
        goto done;
    }
    *out = b;
done:
    free(all);
    return rc;
}
