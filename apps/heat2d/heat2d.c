/*
 * heat2d: the brine demo application.
 *
 * Solves the 2-D heat equation dT/dt = alpha * laplacian(T) on an ny x nx grid
 * with the explicit 5-point stencil, OpenMP-parallel over rows.  The boundary
 * is fixed (Dirichlet): the top edge is hot (1), the other edges cold (0); the
 * interior starts at 0 with a few hot spots (1.5) that diffuse away.
 *
 * It checkpoints with brine_maybe_save() every --every steps and/or every
 * --every-seconds seconds and, on start, resumes from the newest checkpoint
 * that verifies.  SIGTERM or SIGUSR1 (what a batch scheduler sends before the
 * time limit) makes it checkpoint the step it is at and exit 0; the next run
 * resumes from there.  Every grid point is computed by the same expression
 * from the previous state whatever the thread count (a pure stencil between
 * two buffers, no reduction), so a run killed or stopped and resumed ends
 * bit-identical to an uninterrupted one (--out writes the final field as raw
 * little-endian float64 to compare them).
 *
 * Uses only the public API (brine.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <brine.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Exit statuses. */
#define EXIT_RUNTIME 1 /* brine, I/O or parameter-mismatch failure */
#define EXIT_USAGE 2   /* bad command line */

/* alpha * dt / dx^2: below the explicit scheme's stability limit of 1/4. */
#define HEAT2D_R 0.2

typedef struct config {
    int64_t nx, ny;
    int64_t steps;
    int64_t every;
    double every_seconds;
    const char *dir;
    int keep;
    int level;
    double alpha;
    const char *out;
    int64_t sleep_ms;
    int async;
} config;

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [options]\n"
            "\n"
            "2-D heat equation (explicit 5-point stencil, OpenMP) checkpointed with brine %s.\n"
            "On start it resumes from the newest valid checkpoint in --dir, if any.\n"
            "\n"
            "options:\n"
            "  --nx N          grid points along x (columns), >= 3   [512]\n"
            "  --ny N          grid points along y (rows), >= 3      [512]\n"
            "  --steps N       total number of time steps            [1000]\n"
            "  --every N       checkpoint every N steps; 0: only at the end [100]\n"
            "  --every-seconds S  also checkpoint when S seconds passed since the last\n"
            "                  checkpoint; 0: off                    [0]\n"
            "  --dir DIR       checkpoint directory                  [heat2d-ckpt]\n"
            "  --keep N        checkpoints kept; <= 0 keeps all      [3]\n"
            "  --level L       deflate level 0..9                    [1]\n"
            "  --alpha A       thermal diffusivity, > 0              [1]\n"
            "  --out FILE      write the final field as raw little-endian float64\n"
            "                  (ny*nx values, row-major)\n"
            "  --sleep-ms M    sleep M milliseconds after every step (demos)  [0]\n"
            "  --async         save checkpoints in the background (brine_save_async): the\n"
            "                  loop waits only while the field is copied\n"
            "  -h, --help      this help\n"
            "\n"
            "SIGTERM or SIGUSR1 (Slurm: --signal=USR1@120) checkpoints the current step and\n"
            "exits 0; the next run resumes from it.  BRINE_* environment variables set what\n"
            "the options leave at brine's defaults (docs/checkpointing.md).\n"
            "Threads: OMP_NUM_THREADS.  Exit status: 0 success, 1 runtime error, 2 usage.\n",
            argv0, brine_version());
}

/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_f64(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, or EXIT_USAGE after printing why; sets *help when --help was given. */
static int parse_args(int argc, char **argv, config *cfg, int *help)
{
    enum { O_NX = 256, O_NY, O_STEPS, O_EVERY, O_DIR, O_KEEP, O_LEVEL, O_ALPHA, O_OUT, O_SLEEP,
           O_EVERY_SECONDS, O_ASYNC };
    static const struct option longopts[] = {
        {"nx", required_argument, NULL, O_NX},
        {"ny", required_argument, NULL, O_NY},
        {"steps", required_argument, NULL, O_STEPS},
        {"every", required_argument, NULL, O_EVERY},
        {"dir", required_argument, NULL, O_DIR},
        {"keep", required_argument, NULL, O_KEEP},
        {"level", required_argument, NULL, O_LEVEL},
        {"alpha", required_argument, NULL, O_ALPHA},
        {"out", required_argument, NULL, O_OUT},
        {"sleep-ms", required_argument, NULL, O_SLEEP},
        {"every-seconds", required_argument, NULL, O_EVERY_SECONDS},
        {"async", no_argument, NULL, O_ASYNC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Steps are brine steps: at most 12 decimal digits. */
    const int64_t max_step = INT64_C(999999999999);
    /* Keeps ny*nx*8 bytes and the grid's index arithmetic far from overflow. */
    const int64_t max_extent = 1 << 20;

    *help = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int64_t v = 0;
        int bad = 0;
        switch (c) {
        case O_NX:
            bad = parse_i64(optarg, 3, max_extent, &cfg->nx);
            break;
        case O_NY:
            bad = parse_i64(optarg, 3, max_extent, &cfg->ny);
            break;
        case O_STEPS:
            bad = parse_i64(optarg, 0, max_step, &cfg->steps);
            break;
        case O_EVERY:
            bad = parse_i64(optarg, 0, max_step, &cfg->every);
            break;
        case O_DIR:
            bad = optarg[0] == '\0';
            cfg->dir = optarg;
            break;
        case O_KEEP:
            bad = parse_i64(optarg, INT_MIN, INT_MAX, &v);
            cfg->keep = (int)v;
            break;
        case O_LEVEL:
            bad = parse_i64(optarg, 0, 9, &v);
            cfg->level = (int)v;
            break;
        case O_ALPHA:
            bad = parse_f64(optarg, &cfg->alpha) != 0 || !(cfg->alpha > 0.0) || cfg->alpha > 1e300;
            break;
        case O_OUT:
            bad = optarg[0] == '\0';
            cfg->out = optarg;
            break;
        case O_SLEEP:
            bad = parse_i64(optarg, 0, 3600 * 1000, &cfg->sleep_ms);
            break;
        case O_EVERY_SECONDS:
            bad = parse_f64(optarg, &cfg->every_seconds) != 0 || !(cfg->every_seconds >= 0.0) ||
                  cfg->every_seconds > 1e12;
            break;
        case O_ASYNC:
            cfg->async = 1;
            break;
        case 'h':
            *help = 1;
            return 0;
        default: /* getopt_long has printed the problem */
            fprintf(stderr, "Try '%s --help'.\n", argv[0]);
            return EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "%s: invalid value '%s' for --%s\n", argv[0], optarg,
                    longopts[c - O_NX].name);
            fprintf(stderr, "Try '%s --help'.\n", argv[0]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", argv[0], argv[optind],
                argv[0]);
        return EXIT_USAGE;
    }
    if ((uint64_t)cfg->nx * (uint64_t)cfg->ny > (SIZE_MAX / 2) / sizeof(double)) {
        fprintf(stderr, "%s: grid %" PRId64 " x %" PRId64 " is too large\n", argv[0], cfg->nx,
                cfg->ny);
        return EXIT_USAGE;
    }
    return 0;
}

/* The initial condition: fixed hot top edge, cold other edges, hot spots inside. */
static void initialise(double *T, size_t nx, size_t ny)
{
    static const struct { double x, y, r; } spots[] = {
        {0.30, 0.55, 0.08},
        {0.68, 0.35, 0.12},
        {0.62, 0.78, 0.05},
    };
    const double sx = 1.0 / (double)(nx - 1);
    const double sy = 1.0 / (double)(ny - 1);
    for (size_t j = 0; j < ny; j++) {
        for (size_t i = 0; i < nx; i++) {
            double v = 0.0;
            if (j == 0) {
                v = 1.0; /* row 0 is the top edge */
            } else if (j < ny - 1 && i > 0 && i < nx - 1) {
                const double x = (double)i * sx, y = (double)j * sy;
                for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
                    const double ddx = x - spots[s].x, ddy = y - spots[s].y;
                    if (ddx * ddx + ddy * ddy <= spots[s].r * spots[s].r)
                        v = 1.5;
                }
            }
            T[j * nx + i] = v;
        }
    }
}

/*
 * One explicit step from in to out: out = in + r * (N + S + E + W - 4 in) on
 * the interior.  The boundary rows and columns of out are never written: both
 * buffers hold the same fixed boundary values.
 */
static void step_once(const double *restrict in, double *restrict out, size_t nx, size_t ny,
                      double r)
{
    const long rows = (long)ny;
#pragma omp parallel for schedule(static)
    for (long j = 1; j < rows - 1; j++) {
        const double *const up = in + (size_t)(j - 1) * nx;
        const double *const mid = in + (size_t)j * nx;
        const double *const down = in + (size_t)(j + 1) * nx;
        double *const o = out + (size_t)j * nx;
        for (size_t i = 1; i < nx - 1; i++)
            o[i] = mid[i] + r * (up[i] + down[i] + mid[i - 1] + mid[i + 1] - 4.0 * mid[i]);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Writes n doubles as little-endian float64; returns 0 or -1 after printing why. */
static int write_field(const char *path, const double *T, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "heat2d: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    const uint16_t probe = 1;
    unsigned char first = 0;
    memcpy(&first, &probe, 1);
    int rc = 0;
    if (first == 1) { /* little-endian host: the bytes as they are */
        if (fwrite(T, sizeof(double), n, f) != n)
            rc = -1;
    } else {
        for (size_t k = 0; k < n && rc == 0; k++) {
            unsigned char b[sizeof(double)], le[sizeof(double)];
            memcpy(b, &T[k], sizeof b);
            for (size_t q = 0; q < sizeof b; q++)
                le[q] = b[sizeof b - 1 - q];
            if (fwrite(le, 1, sizeof le, f) != sizeof le)
                rc = -1;
        }
    }
    if (rc != 0)
        fprintf(stderr, "heat2d: cannot write %s: %s\n", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "heat2d: cannot write %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* What grid_fixed saw: the field's size, and the size of a checkpoint it refused (0: none). */
typedef struct grid_check {
    size_t nbytes;
    size_t refused;
} grid_check;

/*
 * brine_resize_fn of field/T: the field is registered by reference only to
 * follow the buffer swaps, its size never changes; brine asks for another
 * size only when a checkpoint has another grid, which heat2d refuses.
 */
static void *grid_fixed(void *ctx, const char *name, void *old, size_t nbytes)
{
    grid_check *g = ctx;
    (void)name;
    if (nbytes == g->nbytes)
        return old;
    g->refused = nbytes;
    return NULL;
}

static int save(brine *b, int64_t step)
{
    const int rc = brine_save(b, step);
    if (rc != 0) {
        fprintf(stderr, "heat2d: checkpoint of step %" PRId64 " failed: %s: %s\n", step,
                brine_errstr(rc), brine_errmsg(b));
        return -1;
    }
    printf("step %" PRId64 " saved\n", step);
    return 0;
}

int main(int argc, char **argv)
{
    config cfg = {
        .nx = 512, .ny = 512, .steps = 1000, .every = 100, .dir = "heat2d-ckpt",
        .every_seconds = 0.0, .keep = 3, .level = 1, .alpha = 1.0, .out = NULL, .sleep_ms = 0,
    };
    int help = 0;
    int status = parse_args(argc, argv, &cfg, &help);
    if (status != 0)
        return status;
    if (help) {
        usage(stdout, argv[0]);
        return 0;
    }
    /* Progress lines reach a log file (or a pipe) as they happen. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    const size_t nx = (size_t)cfg.nx, ny = (size_t)cfg.ny, n = nx * ny;
    double *const T = malloc(n * sizeof(double));
    double *const S = malloc(n * sizeof(double));
    brine *b = NULL;
    status = EXIT_RUNTIME;
    if (!T || !S) {
        fprintf(stderr, "heat2d: out of memory for a %zu x %zu grid\n", ny, nx);
        goto done;
    }

    /* The state brine saves and restores; all of it lives until brine_close. */
    const double dx = 1.0 / (double)((nx > ny ? nx : ny) - 1);
    const double dt = HEAT2D_R * dx * dx / cfg.alpha;
    int64_t step = 0;
    double time_now = 0.0;
    double p_alpha = cfg.alpha, p_dx = dx, p_dt = dt;
    int64_t p_nx = cfg.nx, p_ny = cfg.ny;

    brine_options opts = BRINE_OPTIONS_INIT;
    opts.keep_last = cfg.keep;
    opts.level = cfg.level;
    opts.every_steps = cfg.every;
    opts.every_seconds = cfg.every_seconds;
    opts.async = cfg.async;
    int rc = brine_open(&b, cfg.dir, &opts);
    if (rc != 0) {
        fprintf(stderr, "heat2d: cannot open checkpoint directory %s: %s: %s\n", cfg.dir,
                brine_errstr(rc), brine_open_errmsg());
        goto done;
    }
    /*
     * Steps alternate between the buffers T and S (no copy per step), so the
     * current field is registered by reference: brine reads the pointer cur
     * when it saves.  Its shape cannot change (grid_fixed refuses), so the
     * resizable registration is only for the pointer.
     */
    double *cur = T, *next = S;
    size_t tshape[2] = {ny, nx};
    grid_check grid = {ny * nx * sizeof(double), 0};
    rc = brine_register_resizable(b, "field/T", BRINE_F64, (void **)&cur, 2, tshape, 0, grid_fixed,
                                  &grid);
    if (rc != 0) {
        fprintf(stderr, "heat2d: cannot register field/T: %s: %s\n", brine_errstr(rc),
                brine_errmsg(b));
        goto done;
    }
    const struct { const char *name; brine_dtype dtype; void *data; } vars[] = {
        {"step", BRINE_I64, &step},
        {"time", BRINE_F64, &time_now},
        {"params/alpha", BRINE_F64, &p_alpha},
        {"params/dx", BRINE_F64, &p_dx},
        {"params/dt", BRINE_F64, &p_dt},
        {"params/nx", BRINE_I64, &p_nx},
        {"params/ny", BRINE_I64, &p_ny},
    };
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        rc = brine_register(b, vars[k].name, vars[k].dtype, vars[k].data, 0, NULL, 0);
        if (rc != 0) {
            fprintf(stderr, "heat2d: cannot register %s: %s: %s\n", vars[k].name, brine_errstr(rc),
                    brine_errmsg(b));
            goto done;
        }
    }

    /* SIGTERM and SIGUSR1: checkpoint at the next step, then stop (see the loop). */
    rc = brine_install_signals(b, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "heat2d: cannot install signal handlers: %s: %s\n", brine_errstr(rc),
                brine_errmsg(b));
        goto done;
    }

    int64_t restored = -1;
    rc = brine_restore(b, &restored);
    if (rc == BRINE_ENOTFOUND) {
        initialise(T, nx, ny);
        step = 0;
        time_now = 0.0;
        printf("no checkpoint in %s: starting fresh (%zu x %zu grid, %" PRId64 " steps)\n", cfg.dir,
               ny, nx, cfg.steps);
    } else if (rc != 0 && grid.refused) {
        fprintf(stderr,
                "heat2d: the newest checkpoint in %s holds a field of %zu values, this run's "
                "grid has %zu x %zu: rerun with the checkpoint's --nx and --ny or another --dir\n",
                cfg.dir, grid.refused / sizeof(double), ny, nx);
        goto done;
    } else if (rc != 0) {
        fprintf(stderr, "heat2d: cannot resume from %s: %s: %s\n", cfg.dir, brine_errstr(rc),
                brine_errmsg(b));
        fprintf(stderr, "heat2d: not starting over; move the directory away to start fresh\n");
        goto done;
    } else {
        /* brine matched names, dtypes and shapes; the physics is heat2d's to check. */
        if (step != restored) {
            fprintf(stderr,
                    "heat2d: checkpoint of step %" PRId64 " in %s holds step = %" PRId64 "\n",
                    restored, cfg.dir, step);
            goto done;
        }
        if (p_nx != cfg.nx || p_ny != cfg.ny || p_alpha != cfg.alpha || p_dx != dx || p_dt != dt) {
            fprintf(stderr,
                    "heat2d: the checkpoint of step %" PRId64 " in %s was written with different "
                    "parameters:\n"
                    "  checkpoint:   nx=%" PRId64 " ny=%" PRId64 " alpha=%.17g dx=%.17g dt=%.17g\n"
                    "  command line: nx=%" PRId64 " ny=%" PRId64 " alpha=%.17g dx=%.17g dt=%.17g\n"
                    "heat2d: rerun with the checkpoint's parameters or another --dir\n",
                    restored, cfg.dir, p_nx, p_ny, p_alpha, p_dx, p_dt, cfg.nx, cfg.ny, cfg.alpha,
                    dx, dt);
            goto done;
        }
        if (step > cfg.steps) {
            fprintf(stderr,
                    "heat2d: the checkpoint in %s is at step %" PRId64 ", beyond --steps %" PRId64
                    "\n",
                    cfg.dir, step, cfg.steps);
            goto done;
        }
        printf("resumed from step %" PRId64 "\n", step);
    }

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("heat2d: %zu x %zu grid, steps %" PRId64 "..%" PRId64 ", alpha %g, dt %.6g, %d thread%s\n",
           ny, nx, step, cfg.steps, cfg.alpha, dt, threads, threads == 1 ? "" : "s");

    int64_t last_saved = rc == 0 ? step : -1; /* a resumed step is already on disk */
    memcpy(next, cur, n * sizeof(double)); /* the boundary values, fixed in both */
    while (step < cfg.steps) {
        step_once(cur, next, nx, ny, HEAT2D_R);
        double *const swap = cur;
        cur = next;
        next = swap;
        step++;
        time_now = (double)step * dt;
        /* Saves when --every or --every-seconds says so, or a signal arrived. */
        rc = brine_maybe_save(b, step);
        if (rc < 0) {
            fprintf(stderr, "heat2d: checkpoint of step %" PRId64 " failed: %s: %s\n", step,
                    brine_errstr(rc), brine_errmsg(b));
            goto done;
        }
        if (rc == 1) {
            printf("step %" PRId64 " saved\n", step);
            last_saved = step;
        }
        if (brine_should_exit(b)) {
            printf("signal received: stopped at step %" PRId64 ", its checkpoint is in %s; "
                   "rerun to resume\n",
                   step, cfg.dir);
            status = 0;
            goto done;
        }
        if (cfg.sleep_ms > 0)
            sleep_ms(cfg.sleep_ms);
    }
    /* The final state is always checkpointed, so a rerun finds the run complete. */
    if (last_saved != step && save(b, step) != 0)
        goto done;

    double sum = 0.0, tmax = 0.0;
    for (size_t k = 0; k < n; k++) {
        sum += cur[k];
        if (cur[k] > tmax)
            tmax = cur[k];
    }
    printf("done: step %" PRId64 ", time %.9g, mean T %.9g, max T %.9g\n", step, time_now,
           sum / (double)n, tmax);
    if (cfg.out) {
        if (write_field(cfg.out, cur, n) != 0)
            goto done;
        printf("wrote %s (%zu x %zu float64, little-endian)\n", cfg.out, ny, nx);
    }
    status = 0;

done:
    brine_close(b);
    free(S);
    free(T);
    return status;
}
