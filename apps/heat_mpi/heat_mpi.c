/*
 * heat_mpi: heat2d split over MPI ranks, checkpointed with brine_open_mpi.
 *
 * The same problem, initial condition and stencil as apps/heat2d: the ny x nx
 * grid is cut into strips of whole rows, one per rank (the first ny % size
 * ranks get one row more); before every step each rank exchanges its first
 * and last rows with its neighbours (halo rows), then updates its rows with
 * heat2d's expression.  Every point is computed from the same values in the
 * same order as in heat2d, so the gathered final field is bit-identical to
 * heat2d's for the same --nx, --ny, --steps and --alpha, however many ranks
 * and however often the run is killed and resumed.
 *
 * Each rank registers its own strip; brine writes one file per rank and
 * commits the checkpoint collectively (docs/mpi.md).  On start every rank
 * resumes from the newest checkpoint all of them can verify.  SIGTERM or
 * SIGUSR1 to any rank checkpoints every rank at the same step and exits 0.
 *
 * usage: mpirun -np P heat_mpi [--nx N] [--ny N] [--steps N] [--every N]
 *                              [--dir DIR] [--keep N] [--out FILE]
 *                              [--sleep-ms M] [--async]
 * Uses only the public API (brine.h, brine_mpi.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <brine.h>
#include <brine_mpi.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEAT2D_R 0.2 /* alpha * dt / dx^2, as heat2d */

typedef struct config {
    int64_t nx, ny, steps, every, sleep_ms;
    int keep, async;
    double alpha;
    const char *dir, *out;
} config;

static int rank, nranks;

static int parse_args(int argc, char **argv, config *c)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--async")) {
            c->async = 1;
            continue;
        }
        if (i + 1 >= argc)
            goto bad;
        const char *v = argv[++i];
        char *end = NULL;
        errno = 0;
        if (!strcmp(a, "--dir"))
            c->dir = v;
        else if (!strcmp(a, "--out"))
            c->out = v;
        else if (!strcmp(a, "--alpha"))
            c->alpha = strtod(v, &end);
        else {
            const long long n = strtoll(v, &end, 10);
            if (!strcmp(a, "--nx") && n >= 3 && n <= (1 << 20))
                c->nx = n;
            else if (!strcmp(a, "--ny") && n >= 3 && n <= (1 << 20))
                c->ny = n;
            else if (!strcmp(a, "--steps") && n >= 0)
                c->steps = n;
            else if (!strcmp(a, "--every") && n >= 0)
                c->every = n;
            else if (!strcmp(a, "--keep"))
                c->keep = (int)n;
            else if (!strcmp(a, "--sleep-ms") && n >= 0)
                c->sleep_ms = n;
            else
                goto bad;
        }
        if (end && (*end || errno))
            goto bad;
        continue;
    bad:
        if (rank == 0)
            fprintf(stderr,
                    "heat_mpi: bad argument '%s'\nusage: mpirun -np P heat_mpi [--nx N] [--ny N] "
                    "[--steps N] [--every N] [--dir DIR] [--keep N] [--alpha A] [--out FILE] "
                    "[--sleep-ms M] [--async]\n",
                    a);
        return 2;
    }
    if (!(c->alpha > 0.0)) {
        if (rank == 0)
            fprintf(stderr, "heat_mpi: --alpha must be > 0\n");
        return 2;
    }
    return 0;
}

/* heat2d's initial condition, for global row j of an nx-wide grid of ny rows. */
static void initial_row(double *row, size_t j, size_t nx, size_t ny)
{
    static const struct { double x, y, r; } spots[] = {
        {0.30, 0.55, 0.08},
        {0.68, 0.35, 0.12},
        {0.62, 0.78, 0.05},
    };
    const double sx = 1.0 / (double)(nx - 1);
    const double sy = 1.0 / (double)(ny - 1);
    for (size_t i = 0; i < nx; i++) {
        double v = 0.0;
        if (j == 0) {
            v = 1.0;
        } else if (j < ny - 1 && i > 0 && i < nx - 1) {
            const double x = (double)i * sx, y = (double)j * sy;
            for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
                const double ddx = x - spots[s].x, ddy = y - spots[s].y;
                if (ddx * ddx + ddy * ddy <= spots[s].r * spots[s].r)
                    v = 1.5;
            }
        }
        row[i] = v;
    }
}

/*
 * Exchanges halo rows: local row 0 and row nloc+1 of buf (nloc owned rows in
 * between) get the neighbours' edge rows.
 */
static void exchange(double *buf, size_t nloc, size_t nx)
{
    const int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    const int down = rank < nranks - 1 ? rank + 1 : MPI_PROC_NULL;
    MPI_Sendrecv(buf + nx, (int)nx, MPI_DOUBLE, up, 0, buf + (nloc + 1) * nx, (int)nx, MPI_DOUBLE, down, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(buf + nloc * nx, (int)nx, MPI_DOUBLE, down, 1, buf, (int)nx, MPI_DOUBLE, up, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

/* heat2d's step on the owned rows whose global index is in 1..ny-2; row0 is the first's. */
static void step_once(const double *restrict in, double *restrict out, size_t nloc, size_t row0,
                      size_t nx, size_t ny, double r)
{
    for (size_t l = 1; l <= nloc; l++) {
        const size_t j = row0 + l - 1;
        if (j == 0 || j == ny - 1)
            continue;
        const double *const up = in + (l - 1) * nx;
        const double *const mid = in + l * nx;
        const double *const down = in + (l + 1) * nx;
        double *const o = out + l * nx;
        for (size_t i = 1; i < nx - 1; i++)
            o[i] = mid[i] + r * (up[i] + down[i] + mid[i - 1] + mid[i + 1] - 4.0 * mid[i]);
    }
}

/* The strip's size never changes: brine asks for another only for a checkpoint of another grid. */
static void *strip_fixed(void *ctx, const char *name, void *old, size_t nbytes)
{
    (void)name;
    return nbytes == *(const size_t *)ctx ? old : NULL;
}

static int fail(const char *what, int rc, const brine *b)
{
    fprintf(stderr, "heat_mpi (rank %d): %s: %s: %s\n", rank, what, brine_errstr(rc),
            b ? brine_errmsg(b) : brine_open_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    int provided = 0, status = 1, rc = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    setvbuf(stdout, NULL, _IOLBF, 0);

    config cfg = {.nx = 256, .ny = 256, .steps = 1000, .every = 100, .sleep_ms = 0, .keep = 3,
                  .async = 0, .alpha = 1.0, .dir = "heat_mpi-ckpt", .out = NULL};
    if ((status = parse_args(argc, argv, &cfg)) != 0) {
        MPI_Finalize();
        return status;
    }
    status = 1;
    const size_t nx = (size_t)cfg.nx, ny = (size_t)cfg.ny;
    if (ny < (size_t)nranks) {
        if (rank == 0)
            fprintf(stderr, "heat_mpi: %zu rows cannot be split over %d ranks\n", ny, nranks);
        MPI_Finalize();
        return 2;
    }
    /* The strip: rows row0 .. row0+nloc-1. */
    const size_t base = ny / (size_t)nranks, extra = ny % (size_t)nranks;
    const size_t nloc = base + ((size_t)rank < extra);
    const size_t row0 = (size_t)rank * base + ((size_t)rank < extra ? (size_t)rank : extra);
    double *const A = calloc((nloc + 2) * nx, sizeof(double));
    double *const B = calloc((nloc + 2) * nx, sizeof(double));
    brine *b = NULL;
    if (!A || !B) {
        fprintf(stderr, "heat_mpi (rank %d): out of memory\n", rank);
        goto done;
    }

    const double dx = 1.0 / (double)((nx > ny ? nx : ny) - 1);
    const double dt = HEAT2D_R * dx * dx / cfg.alpha;
    int64_t step = 0, p_nx = cfg.nx, p_ny = cfg.ny, p_row0 = (int64_t)row0;
    double time_now = 0.0, p_alpha = cfg.alpha;

    brine_options opts = BRINE_OPTIONS_INIT;
    opts.keep_last = cfg.keep;
    opts.every_steps = cfg.every;
    opts.async = cfg.async;
    if ((rc = brine_open_mpi(&b, cfg.dir, MPI_COMM_WORLD, &opts)) != 0) {
        fail("cannot open the checkpoint directory", rc, NULL);
        goto done;
    }
    /* The owned rows of the current buffer, which alternates between A and B. */
    double *cur = A, *next = B;
    double *own = cur + nx;
    size_t shape[2] = {nloc, nx};
    size_t strip_bytes = nloc * nx * sizeof(double);
    if ((rc = brine_register_resizable(b, "field/T", BRINE_F64, (void **)&own, 2, shape, 0, strip_fixed,
                                       &strip_bytes)) ||
        (rc = brine_register(b, "step", BRINE_I64, &step, 0, NULL, 0)) ||
        (rc = brine_register(b, "time", BRINE_F64, &time_now, 0, NULL, 0)) ||
        (rc = brine_register(b, "params/alpha", BRINE_F64, &p_alpha, 0, NULL, 0)) ||
        (rc = brine_register(b, "params/nx", BRINE_I64, &p_nx, 0, NULL, 0)) ||
        (rc = brine_register(b, "params/ny", BRINE_I64, &p_ny, 0, NULL, 0)) ||
        (rc = brine_register(b, "params/row0", BRINE_I64, &p_row0, 0, NULL, 0))) {
        fail("cannot register the state", rc, b);
        goto done;
    }
    if ((rc = brine_install_signals(b, NULL, 0)) != 0) {
        fail("cannot install signal handlers", rc, b);
        goto done;
    }
    int64_t restored = -1;
    rc = brine_restore(b, &restored); /* collective: the same outcome on every rank */
    if (rc == BRINE_ENOTFOUND) {
        for (size_t l = 0; l < nloc; l++)
            initial_row(cur + (l + 1) * nx, row0 + l, nx, ny);
        if (rank == 0)
            printf("no checkpoint in %s: starting fresh (%zu x %zu grid over %d ranks)\n", cfg.dir, ny, nx,
                   nranks);
    } else if (rc != 0) {
        fail("cannot resume", rc, b);
        goto done;
    } else {
        if (p_nx != cfg.nx || p_ny != cfg.ny || p_row0 != (int64_t)row0 || p_alpha != cfg.alpha ||
            step != restored || step > cfg.steps) {
            fprintf(stderr, "heat_mpi (rank %d): the checkpoint of step %" PRId64 " in %s does not fit this "
                    "run (nx %" PRId64 ", ny %" PRId64 ", row0 %" PRId64 ", alpha %g)\n",
                    rank, restored, cfg.dir, p_nx, p_ny, p_row0, p_alpha);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (rank == 0)
            printf("resumed from step %" PRId64 "\n", step);
    }
    own = cur + nx;
    memcpy(next, cur, (nloc + 2) * nx * sizeof(double)); /* the fixed boundary, in both */

    int64_t last_saved = rc == 0 ? step : -1;
    while (step < cfg.steps) {
        exchange(cur, nloc, nx);
        step_once(cur, next, nloc, row0, nx, ny, HEAT2D_R);
        double *const swap = cur;
        cur = next;
        next = swap;
        own = cur + nx;
        step++;
        time_now = (double)step * dt;
        rc = brine_maybe_save(b, step);
        if (rc < 0) {
            fail("checkpoint failed", rc, b);
            goto done;
        }
        if (rc == 1) {
            last_saved = step;
            if (rank == 0)
                printf("step %" PRId64 " saved\n", step);
        }
        if (brine_should_exit(b)) {
            if (rank == 0)
                printf("signal received: stopped at step %" PRId64 "; rerun to resume\n", step);
            status = 0;
            goto done;
        }
        if (cfg.sleep_ms > 0) {
            struct timespec ts = {(time_t)(cfg.sleep_ms / 1000), (long)(cfg.sleep_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (last_saved != step && (rc = brine_save(b, step)) != 0) {
        fail("final checkpoint failed", rc, b);
        goto done;
    }
    if ((rc = brine_wait(b)) != 0) {
        fail("checkpoint failed", rc, b);
        goto done;
    }
    /* The whole field on rank 0, row-major float64 as heat2d --out writes it (little-endian hosts). */
    int *counts = NULL, *displs = NULL;
    double *all = NULL;
    if (rank == 0) {
        counts = malloc((size_t)nranks * sizeof *counts);
        displs = malloc((size_t)nranks * sizeof *displs);
        all = malloc(nx * ny * sizeof *all);
        if (!counts || !displs || !all)
            MPI_Abort(MPI_COMM_WORLD, 1);
        for (int r = 0; r < nranks; r++) {
            const size_t n_r = base + ((size_t)r < extra);
            const size_t r0 = (size_t)r * base + ((size_t)r < extra ? (size_t)r : extra);
            counts[r] = (int)(n_r * nx);
            displs[r] = (int)(r0 * nx);
        }
    }
    MPI_Gatherv(cur + nx, (int)(nloc * nx), MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    status = 0;
    if (rank == 0) {
        printf("done: step %" PRId64 "\n", step);
        if (cfg.out) {
            FILE *f = fopen(cfg.out, "wb");
            if (!f || fwrite(all, sizeof *all, nx * ny, f) != nx * ny || fclose(f) != 0) {
                fprintf(stderr, "heat_mpi: cannot write %s: %s\n", cfg.out, strerror(errno));
                status = 1;
            }
        }
    }
    free(counts);
    free(displs);
    free(all);
done:
    if (b && (rc = brine_close(b)) != 0) {
        fprintf(stderr, "heat_mpi (rank %d): brine_close: %s: %s\n", rank, brine_errstr(rc), brine_open_errmsg());
        status = 1;
    }
    free(A);
    free(B);
    MPI_Finalize();
    return status;
}
