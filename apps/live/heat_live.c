/*
 * heat_live: a running simulation streams its state to a Python process.
 *
 * The 2-D heat equation of heat2d (explicit 5-point stencil, a hot top edge,
 * a hot spot in the middle), checkpointed with brine_save every --every
 * steps, and, every --stream-every steps, serialised with brine_dumps into
 * one standalone pickle that is sent over a Unix socket to a viewer
 * (apps/live/live_viewer.py), which reads it with pickle.loads and numpy
 * alone: live monitoring without touching the checkpoint files.
 *
 * Wire format: per message, the pickle's length as 8 bytes little-endian,
 * then the pickle.  The connection closes after the last step.
 *
 * Uses only the public API (brine.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <brine.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char help[] =
    "usage: heat_live --stream SOCKET [options]\n"
    "\n"
    "2-D heat equation that checkpoints with brine and streams its state every\n"
    "--stream-every steps to a viewer listening on Unix socket SOCKET\n"
    "(apps/live/live_viewer.py), as pickles made by brine_dumps.\n"
    "\n"
    "  --stream SOCKET     the viewer's Unix socket (required)\n"
    "  --stream-every N    send the state every N steps          [10]\n"
    "  --dir DIR           checkpoint directory                  [heat-live-ckpt]\n"
    "  --every N           checkpoint every N steps; 0: never    [10]\n"
    "  --keep N            checkpoints kept; <= 0 keeps all      [0]\n"
    "  --nx N, --ny N      grid size, >= 3                       [64, 48]\n"
    "  --steps N           time steps                            [50]\n"
    "\n"
    "Exit status: 0 success, 1 runtime error (brine, socket), 2 usage.\n";

/* Sends all n bytes; 0 or -1 (errno set). */
static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int connect_to(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "heat_live: socket path %s is too long\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "heat_live: cannot connect to %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* One message: 8-byte little-endian length, then brine_dumps's pickle of the registered state. */
static int stream_state(brine *b, int fd, int64_t step)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = brine_dumps(b, &buf, &len);
    if (rc) {
        fprintf(stderr, "heat_live: brine_dumps at step %" PRId64 ": %s\n", step, brine_errmsg(b));
        return -1;
    }
    uint8_t head[8];
    for (int i = 0; i < 8; i++)
        head[i] = (uint8_t)((uint64_t)len >> (8 * i));
    rc = send_all(fd, head, sizeof head) || send_all(fd, buf, len);
    if (rc)
        fprintf(stderr, "heat_live: sending step %" PRId64 " failed: %s\n", step, strerror(errno));
    brine_dumps_free(b, buf);
    return rc ? -1 : 0;
}

static int64_t parse_int(const char *s, const char *opt, int64_t min)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < min) {
        fprintf(stderr, "heat_live: %s '%s' is not an integer >= %" PRId64 "\n", opt, s, min);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"stream", required_argument, NULL, 's'}, {"stream-every", required_argument, NULL, 'S'},
        {"dir", required_argument, NULL, 'd'},    {"every", required_argument, NULL, 'e'},
        {"keep", required_argument, NULL, 'k'},   {"nx", required_argument, NULL, 'x'},
        {"ny", required_argument, NULL, 'y'},     {"steps", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *sock = NULL, *dir = "heat-live-ckpt";
    int64_t stream_every = 10, every = 10, nx = 64, ny = 48, steps = 50;
    int keep = 0, c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'S': stream_every = parse_int(optarg, "--stream-every", 1); break;
        case 'd': dir = optarg; break;
        case 'e': every = parse_int(optarg, "--every", 0); break;
        case 'k': keep = (int)parse_int(optarg, "--keep", -1); break;
        case 'x': nx = parse_int(optarg, "--nx", 3); break;
        case 'y': ny = parse_int(optarg, "--ny", 3); break;
        case 'n': steps = parse_int(optarg, "--steps", 0); break;
        case 'h': fputs(help, stdout); return 0;
        default: fputs(help, stderr); return 2;
        }
    }
    if (!sock || optind != argc) {
        fputs(help, stderr);
        return 2;
    }
    const size_t n = (size_t)(nx * ny);
    double *cur = calloc(n, sizeof *cur), *next = calloc(n, sizeof *next);
    if (!cur || !next) {
        fprintf(stderr, "heat_live: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < nx; i++)
        cur[i] = next[i] = 1.0; /* the hot top edge */
    cur[(ny / 2) * nx + nx / 2] = 1.5;

    brine *b = NULL;
    brine_options opts = BRINE_OPTIONS_INIT;
    opts.keep_last = keep;
    int64_t step = 0;
    double time = 0;
    const double dt = 0.2;
    int status = 1, fd = -1;
    if (brine_open(&b, dir, &opts)) {
        fprintf(stderr, "heat_live: %s\n", brine_open_errmsg());
        goto done;
    }
    size_t shape[2] = {(size_t)ny, (size_t)nx};
    /* The field swaps buffers every step: register the pointer's address, as heat2d does. */
    if (brine_register_resizable(b, "field/T", BRINE_F64, (void **)&cur, 2, shape, 0, NULL, NULL) ||
        brine_register(b, "step", BRINE_I64, &step, 0, NULL, 0) ||
        brine_register(b, "time", BRINE_F64, &time, 0, NULL, 0)) {
        fprintf(stderr, "heat_live: %s\n", brine_errmsg(b));
        goto done;
    }
    if ((fd = connect_to(sock)) < 0)
        goto done;
    for (step = 1; step <= steps; step++) {
        for (int64_t y = 1; y < ny - 1; y++)
            for (int64_t x = 1; x < nx - 1; x++) {
                const int64_t i = y * nx + x;
                next[i] = cur[i] + dt * (cur[i - 1] + cur[i + 1] + cur[i - nx] + cur[i + nx] - 4 * cur[i]);
            }
        double *t = cur;
        cur = next;
        next = t;
        time += dt;
        if (every > 0 && step % every == 0 && brine_save(b, step)) {
            fprintf(stderr, "heat_live: %s\n", brine_errmsg(b));
            goto done;
        }
        if (step % stream_every == 0 && stream_state(b, fd, step))
            goto done;
    }
    status = 0;
done:
    if (fd >= 0)
        close(fd);
    if (brine_close(b) && status == 0) {
        fprintf(stderr, "heat_live: %s\n", brine_open_errmsg());
        status = 1;
    }
    free(cur);
    free(next);
    return status;
}
