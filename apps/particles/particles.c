/*
 * particles: a brine demo whose state changes size while it runs.
 *
 * Particles fall under gravity in a 2-D box [0, 1] x [0, 1] and bounce off
 * its walls, losing a little energy.  A source injects a few particles near
 * the top every step of its "on" periods (500 steps on, 500 off), with random
 * velocities; particles that land in the drain (a gap in the floor) leave.
 * So the particle count rises and falls: every array of the
 * state (positions, velocities, ids) is registered with
 * brine_register_resizable, and brine_restore resizes them.
 *
 * The run is deterministic: its random numbers come from a splitmix64
 * generator whose state is part of the checkpoint, and particles are updated
 * and removed in a fixed order.  So a run killed at any moment and resumed
 * ends bit-identical to an uninterrupted one (--out writes the final state).
 * Checkpoints also carry metadata (brine_set_attr_*): the program, its
 * parameters and the simulated time.
 *
 * Uses only the public API (brine.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <brine.h>

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define DT 0.002
#define GRAVITY 9.81
#define RESTITUTION 0.8
#define DRAIN_LO 0.3 /* the floor has a hole between these x */
#define DRAIN_HI 0.7
#define SOURCE_PERIOD 500 /* steps the source is on, then off */

/* A growable array whose capacity brine's resize callback respects. */
typedef struct growable {
    void *data;
    size_t cap; /* bytes allocated */
} growable;

typedef struct state {
    growable pos, vel, id; /* n x 2 float64, n x 2 float64, n int64 */
    size_t pos_shape[2], vel_shape[2], id_shape[1];
    int64_t n;
    int64_t next_id;
    uint64_t rng;
    double t;
} state;

typedef struct config {
    int64_t steps, every, inject;
    const char *dir;
    const char *out;
    int keep;
    int64_t sleep_ms;
} config;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1) from 53 random bits. */
static double uniform(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

/*
 * brine_resize_fn: grows by doubling and never shrinks, so the simulation
 * and brine_restore share one allocation policy.  The content need not be
 * kept (brine overwrites it) but realloc keeps it anyway.
 */
static void *grow_to(void *ctx, const char *name, void *old, size_t nbytes)
{
    growable *g = ctx;
    (void)name;
    if (old != g->data)
        return NULL; /* cannot happen: brine passes the pointer registered */
    if (nbytes <= g->cap && g->data)
        return g->data;
    size_t cap = g->cap ? g->cap : 1024;
    while (cap < nbytes)
        cap *= 2;
    void *p = realloc(g->data, cap);
    if (!p)
        return NULL;
    g->data = p;
    g->cap = cap;
    return p;
}

static int reserve(state *s, size_t n)
{
    return grow_to(&s->pos, "", s->pos.data, n * 2 * sizeof(double)) &&
                   grow_to(&s->vel, "", s->vel.data, n * 2 * sizeof(double)) &&
                   grow_to(&s->id, "", s->id.data, n * sizeof(int64_t))
               ? 0
               : -1;
}

static void set_n(state *s, size_t n)
{
    s->n = (int64_t)n;
    s->pos_shape[0] = s->vel_shape[0] = s->id_shape[0] = n;
    s->pos_shape[1] = s->vel_shape[1] = 2;
}

/* One time step (number k): inject, move, bounce, drain. */
static int step(state *s, const config *c, int64_t k)
{
    /* The source runs in pulses, so the count rises and falls. */
    const int64_t inject = ((k - 1) / SOURCE_PERIOD) % 2 == 0 ? c->inject : 0;
    size_t n = (size_t)s->n;
    if (reserve(s, n + (size_t)inject))
        return -1;
    double *x = s->pos.data, *v = s->vel.data;
    int64_t *id = s->id.data;
    for (int64_t j = 0; j < inject; j++, n++) {
        x[2 * n] = 0.2 + 0.6 * uniform(&s->rng);
        x[2 * n + 1] = 0.9 + 0.1 * uniform(&s->rng);
        v[2 * n] = uniform(&s->rng) - 0.5;
        v[2 * n + 1] = -uniform(&s->rng);
        id[n] = s->next_id++;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        double px = x[2 * i], py = x[2 * i + 1], vx = v[2 * i], vy = v[2 * i + 1];
        vy -= GRAVITY * DT;
        px += vx * DT;
        py += vy * DT;
        if (px < 0) { px = -px; vx = -vx * RESTITUTION; }
        if (px > 1) { px = 2 - px; vx = -vx * RESTITUTION; }
        if (py > 1) { py = 2 - py; vy = -vy * RESTITUTION; }
        if (py < 0) {
            if (px > DRAIN_LO && px < DRAIN_HI)
                continue; /* drained: the particle leaves */
            py = -py;
            vy = -vy * RESTITUTION;
        }
        x[2 * kept] = px;
        x[2 * kept + 1] = py;
        v[2 * kept] = vx;
        v[2 * kept + 1] = vy;
        id[kept] = id[i];
        kept++;
    }
    set_n(s, kept);
    s->t += DT;
    return 0;
}

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [options]\n"
            "\n"
            "Particles falling into a drain: a state whose size changes, checkpointed with brine %s.\n"
            "On start it resumes from the newest valid checkpoint in --dir, if any.\n"
            "\n"
            "  --steps N      total time steps                          [4000]\n"
            "  --every N      checkpoint every N steps; 0: only at the end [200]\n"
            "  --inject N     particles injected per step while the source is on [5]\n"
            "  --dir DIR      checkpoint directory                      [particles-ckpt]\n"
            "  --keep N       checkpoints kept; <= 0 keeps all          [3]\n"
            "  --out FILE     write the final state: n (int64), then ids (int64[n]),\n"
            "                 positions and velocities (float64[n][2] each), little-endian\n"
            "  --sleep-ms M   sleep M milliseconds after every step (demos)  [0]\n"
            "  -h, --help     this help\n"
            "\n"
            "Exit status: 0 success, 1 runtime error, 2 usage.\n",
            argv0, brine_version());
}

static int parse_int(const char *s, int64_t min, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, config *c)
{
    static const struct option opts[] = {
        {"steps", required_argument, NULL, 's'}, {"every", required_argument, NULL, 'e'},
        {"inject", required_argument, NULL, 'i'}, {"dir", required_argument, NULL, 'd'},
        {"keep", required_argument, NULL, 'k'},  {"out", required_argument, NULL, 'o'},
        {"sleep-ms", required_argument, NULL, 'z'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int64_t v;
    int which = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, &which)) != -1;) {
        switch (ch) {
        case 's': if (parse_int(optarg, 0, &c->steps)) goto bad; break;
        case 'e': if (parse_int(optarg, 0, &c->every)) goto bad; break;
        case 'i': if (parse_int(optarg, 0, &c->inject) || c->inject > 1000) goto bad; break;
        case 'd': c->dir = optarg; break;
        case 'k': if (parse_int(optarg, -1000000, &v) || v > 1000000) goto bad; c->keep = (int)v; break;
        case 'o': c->out = optarg; break;
        case 'z': if (parse_int(optarg, 0, &c->sleep_ms)) goto bad; break;
        case 'h': usage(stdout, argv[0]); exit(0);
        default: usage(stderr, argv[0]); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "%s: invalid value '%s' for --%s\n", argv[0], optarg, opts[which].name);
        return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return -1;
    }
    return 0;
}

static int write_out(const state *s, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const size_t n = (size_t)s->n;
    int ok = fwrite(&s->n, sizeof s->n, 1, f) == 1 &&
             (n == 0 || (fwrite(s->id.data, sizeof(int64_t), n, f) == n &&
                         fwrite(s->pos.data, sizeof(double), 2 * n, f) == 2 * n &&
                         fwrite(s->vel.data, sizeof(double), 2 * n, f) == 2 * n));
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Registers the state, and the metadata every checkpoint carries. */
static int setup(brine *b, state *s, const config *c)
{
    int rc = 0;
    if ((rc = brine_register_resizable(b, "particles/pos", BRINE_F64, &s->pos.data, 2, s->pos_shape,
                                       0, grow_to, &s->pos)) ||
        (rc = brine_register_resizable(b, "particles/vel", BRINE_F64, &s->vel.data, 2, s->vel_shape,
                                       0, grow_to, &s->vel)) ||
        (rc = brine_register_resizable(b, "particles/id", BRINE_I64, &s->id.data, 1, s->id_shape, 0,
                                       grow_to, &s->id)) ||
        (rc = brine_register(b, "particles/n", BRINE_I64, &s->n, 0, NULL, 0)) ||
        (rc = brine_register(b, "next_id", BRINE_I64, &s->next_id, 0, NULL, 0)) ||
        (rc = brine_register(b, "rng", BRINE_U64, &s->rng, 0, NULL, 0)) ||
        (rc = brine_register(b, "t", BRINE_F64, &s->t, 0, NULL, 0)) ||
        (rc = brine_set_attr_string(b, "program", "particles")) ||
        (rc = brine_set_attr_string(b, "program_version", brine_version())) ||
        (rc = brine_set_attr_int(b, "inject_per_step", c->inject)) ||
        (rc = brine_set_attr_double(b, "dt", DT)))
        return rc;
    return 0;
}

int main(int argc, char **argv)
{
    config c = {4000, 200, 5, "particles-ckpt", NULL, 3, 0};
    state s;
    memset(&s, 0, sizeof s);
    s.rng = 42;
    set_n(&s, 0);
    if (parse_args(argc, argv, &c))
        return EXIT_USAGE;

    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = c.keep;
    brine *b = NULL;
    int rc = brine_open(&b, c.dir, &o);
    if (rc) {
        fprintf(stderr, "particles: %s\n", brine_open_errmsg());
        return EXIT_RUNTIME;
    }
    if ((rc = setup(b, &s, &c))) {
        fprintf(stderr, "particles: %s\n", brine_errmsg(b));
        brine_close(b);
        return EXIT_RUNTIME;
    }
    int64_t first = 0;
    rc = brine_restore(b, &first);
    if (rc == 0) {
        printf("resumed from step %" PRId64 " with %" PRId64 " particles\n", first, s.n);
    } else if (rc == BRINE_ENOTFOUND) {
        printf("no checkpoint in %s: starting from step 0\n", c.dir);
    } else {
        fprintf(stderr, "particles: %s\n", brine_errmsg(b));
        brine_close(b);
        return EXIT_RUNTIME;
    }
    int status = 0;
    int64_t lo = s.n, hi = s.n;
    for (int64_t k = first + 1; k <= c.steps; k++) {
        if (step(&s, &c, k)) {
            fprintf(stderr, "particles: out of memory at step %" PRId64 "\n", k);
            status = EXIT_RUNTIME;
            break;
        }
        lo = s.n < lo ? s.n : lo;
        hi = s.n > hi ? s.n : hi;
        const int last = k == c.steps;
        if ((c.every > 0 && k % c.every == 0) || last) {
            if ((rc = brine_set_attr_double(b, "sim_time", s.t)) || (rc = brine_save(b, k))) {
                fprintf(stderr, "particles: %s\n", brine_errmsg(b));
                status = EXIT_RUNTIME;
                break;
            }
            printf("step %" PRId64 ": %" PRId64 " particles, checkpoint written\n", k, s.n);
            fflush(stdout);
        }
        if (c.sleep_ms > 0) {
            struct timespec ts = {c.sleep_ms / 1000, (long)(c.sleep_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (status == 0) {
        printf("done: %" PRId64 " particles at t = %.3f (between %" PRId64 " and %" PRId64 " in this run)\n",
               s.n, s.t, lo, hi);
        if (c.out && write_out(&s, c.out)) {
            fprintf(stderr, "particles: cannot write %s\n", c.out);
            status = EXIT_RUNTIME;
        }
    }
    brine_close(b);
    free(s.pos.data);
    free(s.vel.data);
    free(s.id.data);
    return status;
}
