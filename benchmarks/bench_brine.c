/*
 * bench_brine: one benchmark case per invocation, one JSON line on stdout.
 *
 * Cases (--case):
 *   brine   brine_save + brine_restore through the public API only
 *           (--codec zlib|libdeflate|isal|none|default, --level, --threads)
 *   hdf5    the HDF5 C library's own filter pipeline: shuffle + deflate(--level)
 *           + fletcher32, same chunk shape as brine, one H5Dwrite, close, fsync;
 *           restore is one H5Dread
 *   async   how long brine_save_async blocks the caller (the copy into staging
 *           memory), against one single-threaded memcpy of the same bytes into
 *           touched memory, measured in the same process: the first call (which
 *           allocates the staging memory) and --reps later ones (best and
 *           median; each waited for with brine_wait, untimed); then a restore
 *           checks the data.  --fields N splits the state into N arrays.
 *   memcpy  memcpy of the same bytes into touched memory (the memory-bandwidth limit)
 *   raw     write(2) of the raw bytes + fsync (the disk limit); restore reads them back
 *   gen     writes the generated data to --out (for the Python cases) and prints its shape
 *   codecs  prints which brine codecs are built in
 *
 * Data (--data): f64 (smooth 2-D field + 1e-6 relative noise), f32 (the same in
 * float32), i64 (sorted index array with random gaps), rand (random bytes);
 * --mib sets the size.  The generator is deterministic: every case and the
 * Python cases see identical bytes.
 *
 * Each case runs in a fresh process so its memory peak is its own: before a
 * phase the kernel's peak-RSS counter is reset (write "5" to
 * /proc/self/clear_refs) and the phase's extra memory is VmHWM minus the VmRSS
 * before it.  "Restore" is measured twice: warm (the file was just written and
 * is in the page cache) and cold (after sync + echo 3 > /proc/sys/vm/drop_caches,
 * when that is permitted; "cold" says whether it was).
 *
 * Throughputs are input bytes per second in MB/s (10^6 bytes).
 */
#define _GNU_SOURCE
#include <brine.h>
#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define CHUNK_TARGET MIB

/* ------------------------------------------------------------- utilities */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_brine: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* A field of /proc/self/status in KiB, or -1. */
static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Peak-memory measurement of one phase. */
typedef struct {
    long base_kib;
    int reset_ok;
} mem_phase;

static void mem_begin(mem_phase *m)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    m->reset_ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    m->base_kib = status_kib("VmRSS");
}

/* Extra MiB over the phase's starting RSS. */
static double mem_end(const mem_phase *m)
{
    long hwm = status_kib("VmHWM");
    if (hwm < 0 || m->base_kib < 0)
        return -1;
    return (double)(hwm - m->base_kib) / 1024.0;
}

static int drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return 0;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok;
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0)
        die("fsync %s: %s", path, strerror(errno));
    close(fd);
}

static long long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        die("stat %s: %s", path, strerror(errno));
    return (long long)st.st_size;
}

/* ------------------------------------------------------------------ data */

typedef struct {
    const char *name;   /* f64, f32, i64, rand */
    brine_dtype dtype;
    size_t esize;
    int ndim;
    size_t shape[2];
    size_t nbytes;
    void *data;
} dataset;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double unit(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/*
 * A smooth 2-D temperature-like field: a large-scale mode, a tilted wave
 * (separable through sin(a+b) = sin a cos b + cos a sin b) and a gradient,
 * times (1 + 1e-6 u) with u uniform in [-1, 1).
 */
static double field_value(const double *tx, const double *ty, size_t nx, size_t ny, size_t i,
                          size_t j, uint64_t *s)
{
    const double *sx1 = tx, *sx2 = tx + nx, *cx2 = tx + 2 * nx;
    const double *cy1 = ty, *sy2 = ty + ny, *cy2 = ty + 2 * ny;
    double v = 300.0 + 40.0 * sx1[j] * cy1[i] + 15.0 * (sx2[j] * cy2[i] + cx2[j] * sy2[i]) +
               0.01 * (double)j;
    return v * (1.0 + 1e-6 * unit(s));
}

static void field_tables(size_t nx, size_t ny, double **tx, double **ty)
{
    const double pi = 3.14159265358979323846;
    *tx = xmalloc(3 * nx * sizeof **tx);
    *ty = xmalloc(3 * ny * sizeof **ty);
    for (size_t j = 0; j < nx; j++) {
        double x = (double)j / (double)nx;
        (*tx)[j] = sin(2 * pi * 3 * x);
        (*tx)[nx + j] = sin(2 * pi * 7 * x);
        (*tx)[2 * nx + j] = cos(2 * pi * 7 * x);
    }
    for (size_t i = 0; i < ny; i++) {
        double y = (double)i / (double)ny;
        (*ty)[i] = cos(2 * pi * 2 * y);
        (*ty)[ny + i] = sin(2 * pi * 5 * y);
        (*ty)[2 * ny + i] = cos(2 * pi * 5 * y);
    }
}

static void make_data(dataset *d, const char *name, double mib)
{
    size_t want = (size_t)(mib * (double)MIB);
    uint64_t s = 0x5eed;
    memset(d, 0, sizeof *d);
    d->name = name;
    if (!strcmp(name, "f64") || !strcmp(name, "f32")) {
        int f64 = name[1] == '6';
        d->dtype = f64 ? BRINE_F64 : BRINE_F32;
        d->esize = f64 ? 8 : 4;
        size_t nx = f64 ? 2048 : 4096; /* 16 KiB rows */
        size_t ny = want / (nx * d->esize);
        if (ny < 1)
            ny = 1;
        d->ndim = 2;
        d->shape[0] = ny;
        d->shape[1] = nx;
        d->nbytes = nx * ny * d->esize;
        d->data = xmalloc(d->nbytes);
        double *tx, *ty;
        field_tables(nx, ny, &tx, &ty);
        for (size_t i = 0; i < ny; i++)
            for (size_t j = 0; j < nx; j++) {
                double v = field_value(tx, ty, nx, ny, i, j, &s);
                if (f64)
                    ((double *)d->data)[i * nx + j] = v;
                else
                    ((float *)d->data)[i * nx + j] = (float)v;
            }
        free(tx);
        free(ty);
    } else if (!strcmp(name, "i64")) {
        d->dtype = BRINE_I64;
        d->esize = 8;
        d->ndim = 1;
        d->shape[0] = want / 8 ? want / 8 : 1;
        d->nbytes = d->shape[0] * 8;
        d->data = xmalloc(d->nbytes);
        int64_t *a = d->data, v = 0;
        for (size_t i = 0; i < d->shape[0]; i++) {
            a[i] = v;
            v += 1 + (int64_t)(splitmix64(&s) & 15); /* sorted indices, gaps 1..16 */
        }
    } else if (!strcmp(name, "rand")) {
        d->dtype = BRINE_U8;
        d->esize = 1;
        d->ndim = 1;
        d->shape[0] = want ? want : 1;
        d->nbytes = d->shape[0];
        d->data = xmalloc(d->nbytes + 8);
        uint8_t *p = d->data;
        for (size_t i = 0; i < d->nbytes; i += 8) {
            uint64_t r = splitmix64(&s);
            memcpy(p + i, &r, 8); /* the allocation has 8 spare bytes */
        }
    } else {
        die("unknown --data %s (f64, f32, i64, rand)", name);
    }
}

static const char *numpy_dtype(brine_dtype t)
{
    return brine_dtype_str(t);
}

/* brine's chunk rule (docs/format.md, 2.3): trailing dimensions, about 1 MiB. */
static void plan_chunk(const dataset *d, hsize_t *chunk)
{
    size_t bytes = d->esize;
    int d0 = d->ndim - 1;
    for (; d0 >= 0; d0--) {
        if (bytes * d->shape[d0] > CHUNK_TARGET)
            break;
        chunk[d0] = d->shape[d0];
        bytes *= d->shape[d0];
    }
    if (d0 >= 0) {
        size_t n = CHUNK_TARGET / bytes;
        chunk[d0] = n ? n : 1;
        for (int k = d0 - 1; k >= 0; k--)
            chunk[k] = 1;
    }
}

/* ------------------------------------------------------ results (JSON) */

typedef struct {
    char method[64];
    const char *codec;
    int level, threads;
    long long file_bytes;
    double save_s, restore_warm_s, restore_cold_s;
    double save_write_s, save_fsync_s, restore_read_s;
    double save_extra_mib, restore_extra_mib;
    int cold_dropped, verified;
    hsize_t chunk[2];
    /* --case async */
    double memcpy_s, blocked_first_s, blocked_median_s;
    int fields, reps;
} result;

static void print_json(const dataset *d, const result *r, double mib)
{
    const double mb = (double)d->nbytes / 1e6;
    printf("{\"method\": \"%s\", \"codec\": \"%s\", \"level\": %d, \"threads\": %d, "
           "\"data\": \"%s\", \"dtype\": \"%s\", \"shape\": [%zu",
           r->method, r->codec ? r->codec : "", r->level, r->threads, d->name,
           numpy_dtype(d->dtype), d->shape[0]);
    if (d->ndim == 2)
        printf(", %zu", d->shape[1]);
    printf("], \"chunk\": [");
    if (r->chunk[0])
        printf("%llu", (unsigned long long)r->chunk[0]);
    if (r->chunk[0] && d->ndim == 2)
        printf(", %llu", (unsigned long long)r->chunk[1]);
    printf("], \"mib\": %g, \"bytes\": %zu, \"file_bytes\": %lld, ", mib, d->nbytes, r->file_bytes);
    if (r->file_bytes > 0)
        printf("\"ratio\": %.4f, ", (double)d->nbytes / (double)r->file_bytes);
    else
        printf("\"ratio\": null, ");
#define SECS(key, v)                                                                         \
    do {                                                                                     \
        if ((v) > 0)                                                                         \
            printf("\"" key "_s\": %.6f, \"" key "_mbps\": %.2f, ", (v), mb / (v));          \
        else                                                                                 \
            printf("\"" key "_s\": null, \"" key "_mbps\": null, ");                         \
    } while (0)
    SECS("save", r->save_s);
    SECS("restore_warm", r->restore_warm_s);
    SECS("restore_cold", r->restore_cold_s);
#undef SECS
    printf("\"save_write_s\": %.6f, \"save_fsync_s\": %.6f, \"restore_read_s\": %.6f, ",
           r->save_write_s, r->save_fsync_s, r->restore_read_s);
    if (r->memcpy_s > 0)
        printf("\"memcpy_s\": %.6f, \"blocked_first_s\": %.6f, \"blocked_median_s\": %.6f, "
               "\"blocked_vs_memcpy\": %.3f, \"blocked_median_vs_memcpy\": %.3f, "
               "\"blocked_first_vs_memcpy\": %.3f, \"fields\": %d, "
               "\"reps\": %d, ",
               r->memcpy_s, r->blocked_first_s, r->blocked_median_s, r->save_s / r->memcpy_s,
               r->blocked_median_s / r->memcpy_s, r->blocked_first_s / r->memcpy_s, r->fields,
               r->reps);
    printf("\"save_extra_mib\": %.1f, \"restore_extra_mib\": %.1f, \"cold\": \"%s\", "
           "\"verified\": %s}\n",
           r->save_extra_mib, r->restore_extra_mib, r->cold_dropped ? "dropped" : "not dropped",
           r->verified ? "true" : "false");
    fflush(stdout);
}

/* ---------------------------------------------- timing I/O method table */

/* Wraps brine_io_posix() to time writes, reads and fsyncs (public API: brine_options.io). */
typedef struct {
    const brine_io_methods *inner;
    double write_s, read_s, fsync_s;
    uint64_t written, read;
} io_stats;

static io_stats g_io;

static int64_t timed_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    io_stats *s = ctx;
    double t = now();
    int64_t r = s->inner->pwrite(s->inner->ctx, fd, buf, n, off);
    s->write_s += now() - t;
    if (r > 0)
        s->written += (uint64_t)r;
    return r;
}

static int64_t timed_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    io_stats *s = ctx;
    double t = now();
    int64_t r = s->inner->pread(s->inner->ctx, fd, buf, n, off);
    s->read_s += now() - t;
    if (r > 0)
        s->read += (uint64_t)r;
    return r;
}

static int timed_fsync(void *ctx, int fd)
{
    io_stats *s = ctx;
    double t = now();
    int r = s->inner->fsync(s->inner->ctx, fd);
    s->fsync_s += now() - t;
    return r;
}

static int timed_fsync_dir(void *ctx, const char *path)
{
    io_stats *s = ctx;
    double t = now();
    int r = s->inner->fsync_dir(s->inner->ctx, path);
    s->fsync_s += now() - t;
    return r;
}

#define PASS(name, ret, params, args)                                                        \
    static ret pass_##name params                                                            \
    {                                                                                        \
        io_stats *s = ctx;                                                                   \
        return s->inner->name args;                                                          \
    }
PASS(open, int, (void *ctx, const char *p, int f, unsigned m), (s->inner->ctx, p, f, m))
PASS(close, int, (void *ctx, int fd), (s->inner->ctx, fd))
PASS(ftruncate, int, (void *ctx, int fd, uint64_t n), (s->inner->ctx, fd, n))
PASS(fsize, int, (void *ctx, int fd, uint64_t *o), (s->inner->ctx, fd, o))
PASS(rename, int, (void *ctx, const char *a, const char *b), (s->inner->ctx, a, b))
PASS(unlink, int, (void *ctx, const char *p), (s->inner->ctx, p))
PASS(mkdir, int, (void *ctx, const char *p, unsigned m), (s->inner->ctx, p, m))
PASS(list_dir, int, (void *ctx, const char *p, int (*each)(void *, const char *), void *arg),
     (s->inner->ctx, p, each, arg))
#undef PASS

static brine_io_methods timed_io(void)
{
    brine_io_methods m = {BRINE_IO_METHODS_VERSION, &g_io, pass_open, pass_close, timed_pread,
                          timed_pwrite, timed_fsync, pass_ftruncate, pass_fsize, pass_rename,
                          pass_unlink, pass_mkdir, timed_fsync_dir, pass_list_dir};
    g_io.inner = brine_io_posix();
    return m;
}

/* ------------------------------------------------------------------ cases */

typedef struct {
    const char *kase, *data, *codec, *dir, *out;
    double mib;
    int level, threads, cold;
    int fields, reps;
} args;

static brine_codec codec_of(const char *name)
{
    static const brine_codec all[] = {BRINE_CODEC_DEFAULT, BRINE_CODEC_ZLIB, BRINE_CODEC_LIBDEFLATE,
                                      BRINE_CODEC_ISAL, BRINE_CODEC_NONE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *n = brine_codec_name(all[i]);
        if (n && !strcmp(n, name))
            return all[i];
    }
    die("unknown codec %s", name);
    return BRINE_CODEC_DEFAULT;
}

static void brine_check(int rc, const brine *b, const char *what)
{
    if (rc)
        die("%s: %s: %s", what, brine_errstr(rc), b ? brine_errmsg(b) : brine_open_errmsg());
}

/* The options every brine case saves with: one checkpoint kept, --level, --threads, --codec. */
static brine_options bench_options(const args *a)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.prefix = "bench";
    o.keep_last = 1;
    o.level = a->level;
    o.threads = a->threads;
    o.codec = codec_of(a->codec);
    return o;
}

static void case_brine(const args *a, const dataset *d, result *r)
{
    brine_io_methods io = timed_io();
    brine_options o = bench_options(a);
    o.io = &io;
    brine *b = NULL;
    mem_phase m;
    char path[4096];
    uint8_t *dst = xmalloc(d->nbytes);

    plan_chunk(d, r->chunk);
    snprintf(r->method, sizeof r->method, "brine");
    r->codec = a->codec;
    brine_check(brine_open(&b, a->dir, &o), NULL, "brine_open");
    brine_check(brine_register(b, "state/field", d->dtype, d->data, d->ndim, d->shape, 0), b,
                "brine_register");
    mem_begin(&m);
    double t = now();
    brine_check(brine_save(b, 1), b, "brine_save");
    r->save_s = now() - t;
    r->save_extra_mib = mem_end(&m);
    r->save_write_s = g_io.write_s;
    r->save_fsync_s = g_io.fsync_s;
    brine_close(b);
    snprintf(path, sizeof path, "%s/bench-000000000001.h5", a->dir);
    r->file_bytes = file_size(path);

    /* Restore into other memory, touched first so page faults are not timed. */
    memset(dst, 0xA5, d->nbytes);
    brine_check(brine_open(&b, a->dir, &o), NULL, "brine_open");
    brine_check(brine_register(b, "state/field", d->dtype, dst, d->ndim, d->shape, 0), b,
                "brine_register");
    int64_t step = -1;
    g_io.read_s = 0;
    mem_begin(&m);
    t = now();
    brine_check(brine_restore(b, &step), b, "brine_restore");
    r->restore_warm_s = now() - t;
    r->restore_extra_mib = mem_end(&m);
    r->restore_read_s = g_io.read_s;
    r->verified = step == 1 && memcmp(dst, d->data, d->nbytes) == 0;
    if (a->cold) {
        memset(dst, 0x5A, d->nbytes);
        r->cold_dropped = drop_caches();
        t = now();
        brine_check(brine_restore(b, &step), b, "brine_restore");
        r->restore_cold_s = now() - t;
        r->verified &= memcmp(dst, d->data, d->nbytes) == 0;
    }
    brine_close(b);
    unlink(path);
    free(dst);
}

static int cmp_double(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/*
 * Opens a context on a->dir whose state is the data set's bytes at base cut
 * into `fields` arrays "state/field<k>" along the first dimension (whole rows).
 */
static brine *open_fields(const args *a, const brine_options *o, const dataset *d, int fields,
                          uint8_t *base)
{
    const size_t rows = d->shape[0], row_bytes = d->nbytes / rows;
    brine *b = NULL;
    brine_check(brine_open(&b, a->dir, o), NULL, "brine_open");
    for (int f = 0; f < fields; f++) {
        const size_t r0 = rows * (size_t)f / (size_t)fields, r1 = rows * (size_t)(f + 1) / (size_t)fields;
        char name[32];
        size_t shape[2] = {r1 - r0, d->ndim == 2 ? d->shape[1] : 0};
        snprintf(name, sizeof name, "state/field%d", f);
        brine_check(brine_register(b, name, d->dtype, base + r0 * row_bytes, d->ndim, shape, 0), b,
                    "brine_register");
    }
    return b;
}

/*
 * brine_save_async's blocked time against memcpy.  The state is the data
 * set cut into --fields arrays along its first dimension (whole rows), so
 * the bytes are the same as every other case's.
 */
static void case_async(const args *a, const dataset *d, result *r)
{
    enum { MAX_FIELDS = 64, MAX_REPS = 100 };
    brine_options o = bench_options(a);
    brine *b = NULL;
    uint8_t *dst = xmalloc(d->nbytes);
    const int fields = a->fields < 1 ? 1 : a->fields > MAX_FIELDS ? MAX_FIELDS : a->fields;
    const int reps = a->reps < 1 ? 1 : a->reps > MAX_REPS ? MAX_REPS : a->reps;
    const size_t rows = d->shape[0];
    double blocked[MAX_REPS];

    if ((size_t)fields > rows)
        die("--fields %d: the data has only %zu rows", fields, rows);
    snprintf(r->method, sizeof r->method, "brine-async");
    r->codec = a->codec;
    r->fields = fields;
    r->reps = reps;
    plan_chunk(d, r->chunk);

    /* The baseline first, as case_memcpy measures it: best of 3 into touched memory. */
    memset(dst, 0, d->nbytes);
    r->memcpy_s = 1e30;
    for (int k = 0; k < 3; k++) {
        double t = now();
        memcpy(dst, d->data, d->nbytes);
        t = now() - t;
        if (t < r->memcpy_s)
            r->memcpy_s = t;
    }

    b = open_fields(a, &o, d, fields, (uint8_t *)d->data);
    mem_phase m;
    mem_begin(&m);
    double t = now();
    brine_check(brine_save_async(b, 1), b, "brine_save_async");
    r->blocked_first_s = now() - t;
    t = now();
    brine_check(brine_wait(b), b, "brine_wait");
    r->save_write_s = now() - t; /* the rest of the first save, in the background */
    for (int k = 0; k < reps; k++) {
        t = now();
        brine_check(brine_save_async(b, 2 + k), b, "brine_save_async");
        blocked[k] = now() - t;
        brine_check(brine_wait(b), b, "brine_wait");
    }
    r->save_extra_mib = mem_end(&m);
    qsort(blocked, (size_t)reps, sizeof blocked[0], cmp_double);
    r->save_s = blocked[0];
    r->blocked_median_s = blocked[reps / 2];
    brine_close(b);

    /* Check what the last save wrote. */
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-%012d.h5", a->dir, 1 + reps);
    r->file_bytes = file_size(path);
    memset(dst, 0xA5, d->nbytes);
    b = open_fields(a, &o, d, fields, dst);
    int64_t step = -1;
    brine_check(brine_restore(b, &step), b, "brine_restore");
    r->verified = step == 1 + reps && memcmp(dst, d->data, d->nbytes) == 0;
    brine_close(b);
    unlink(path);
    free(dst);
}

static hid_t h5_type(brine_dtype t)
{
    switch (t) {
    case BRINE_F64: return H5T_IEEE_F64LE;
    case BRINE_F32: return H5T_IEEE_F32LE;
    case BRINE_I64: return H5T_STD_I64LE;
    case BRINE_U8: return H5T_STD_U8LE;
    default: die("no HDF5 type"); return -1;
    }
}

static hid_t h5_mem_type(brine_dtype t)
{
    switch (t) {
    case BRINE_F64: return H5T_NATIVE_DOUBLE;
    case BRINE_F32: return H5T_NATIVE_FLOAT;
    case BRINE_I64: return H5T_NATIVE_INT64;
    case BRINE_U8: return H5T_NATIVE_UINT8;
    default: die("no HDF5 type"); return -1;
    }
}

static void case_hdf5(const args *a, const dataset *d, result *r)
{
    char path[4096];
    hsize_t dims[2] = {d->shape[0], d->ndim == 2 ? d->shape[1] : 0};
    uint8_t *dst = xmalloc(d->nbytes);
    mem_phase m;

    snprintf(path, sizeof path, "%s/hdf5-pipeline.h5", a->dir);
    snprintf(r->method, sizeof r->method, "hdf5-c");
    r->codec = "zlib";
    r->threads = 1;
    plan_chunk(d, r->chunk);

    mem_begin(&m);
    double t = now();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(d->ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (f < 0 || space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, d->ndim, r->chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)a->level) < 0 ||
        H5Pset_fletcher32(dcpl) < 0)
        die("HDF5: setting up %s", path);
    hid_t ds = H5Dcreate2(f, "field", h5_type(d->dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, h5_mem_type(d->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, d->data) < 0)
        die("HDF5: writing %s", path);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (H5Fclose(f) < 0)
        die("HDF5: closing %s", path);
    double tw = now();
    fsync_path(path);
    r->save_s = now() - t;
    r->save_fsync_s = now() - tw;
    r->save_extra_mib = mem_end(&m);
    r->file_bytes = file_size(path);

    for (int pass = 0; pass < 1 + a->cold; pass++) {
        memset(dst, 0xA5, d->nbytes);
        if (pass)
            r->cold_dropped = drop_caches();
        mem_begin(&m);
        t = now();
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        ds = f < 0 ? -1 : H5Dopen2(f, "field", H5P_DEFAULT);
        if (ds < 0 || H5Dread(ds, h5_mem_type(d->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
            die("HDF5: reading %s", path);
        H5Dclose(ds);
        H5Fclose(f);
        double el = now() - t;
        if (pass)
            r->restore_cold_s = el;
        else {
            r->restore_warm_s = el;
            r->restore_extra_mib = mem_end(&m);
        }
        r->verified = (pass == 0 || r->verified) && memcmp(dst, d->data, d->nbytes) == 0;
    }
    unlink(path);
    free(dst);
}

static void case_memcpy(const dataset *d, result *r)
{
    uint8_t *dst = xmalloc(d->nbytes);
    memset(dst, 0, d->nbytes);
    snprintf(r->method, sizeof r->method, "memcpy");
    r->codec = "";
    r->threads = 1;
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t = now();
        memcpy(dst, d->data, d->nbytes);
        t = now() - t;
        if (t < best)
            best = t;
    }
    r->save_s = best;
    r->restore_warm_s = best;
    r->verified = memcmp(dst, d->data, d->nbytes) == 0;
    free(dst);
}

static void write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
    while (n) {
        ssize_t w = write(fd, p, n > 8 * MIB ? 8 * MIB : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write %s: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, uint8_t *p, size_t n, const char *path)
{
    while (n) {
        ssize_t got = read(fd, p, n > 8 * MIB ? 8 * MIB : n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            die("read %s: %s", path, got < 0 ? strerror(errno) : "short file");
        p += got;
        n -= (size_t)got;
    }
}

static void case_raw(const args *a, const dataset *d, result *r)
{
    char path[4096];
    uint8_t *dst = xmalloc(d->nbytes);
    snprintf(path, sizeof path, "%s/raw.bin", a->dir);
    snprintf(r->method, sizeof r->method, "write+fsync");
    r->codec = "";
    r->threads = 1;

    mem_phase m;
    mem_begin(&m);
    double t = now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    write_all(fd, d->data, d->nbytes, path);
    double tw = now();
    if (fsync(fd) != 0)
        die("fsync %s: %s", path, strerror(errno));
    close(fd);
    r->save_s = now() - t;
    r->save_write_s = tw - t;
    r->save_fsync_s = now() - tw;
    r->save_extra_mib = mem_end(&m);
    r->file_bytes = file_size(path);

    for (int pass = 0; pass < 1 + a->cold; pass++) {
        memset(dst, 0xA5, d->nbytes);
        if (pass)
            r->cold_dropped = drop_caches();
        mem_begin(&m);
        t = now();
        fd = open(path, O_RDONLY);
        if (fd < 0)
            die("open %s: %s", path, strerror(errno));
        read_all(fd, dst, d->nbytes, path);
        close(fd);
        if (pass)
            r->restore_cold_s = now() - t;
        else {
            r->restore_warm_s = now() - t;
            r->restore_extra_mib = mem_end(&m);
        }
        r->verified = (pass == 0 || r->verified) && memcmp(dst, d->data, d->nbytes) == 0;
    }
    unlink(path);
    free(dst);
}

static void case_gen(const args *a, const dataset *d)
{
    if (!a->out)
        die("--case gen needs --out FILE");
    int fd = open(a->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open %s: %s", a->out, strerror(errno));
    write_all(fd, d->data, d->nbytes, a->out);
    close(fd);
    hsize_t chunk[2] = {0, 0};
    plan_chunk(d, chunk);
    printf("{\"data\": \"%s\", \"dtype\": \"%s\", \"shape\": [%zu", d->name, numpy_dtype(d->dtype),
           d->shape[0]);
    if (d->ndim == 2)
        printf(", %zu", d->shape[1]);
    printf("], \"chunk\": [%llu", (unsigned long long)chunk[0]);
    if (d->ndim == 2)
        printf(", %llu", (unsigned long long)chunk[1]);
    printf("], \"bytes\": %zu, \"path\": \"%s\"}\n", d->nbytes, a->out);
}

static void case_codecs(void)
{
    static const brine_codec all[] = {BRINE_CODEC_ZLIB, BRINE_CODEC_LIBDEFLATE, BRINE_CODEC_ISAL,
                                      BRINE_CODEC_NONE};
    printf("{\"brine_version\": \"%s\", \"codecs\": {", brine_version());
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        printf("%s\"%s\": %s", i ? ", " : "", brine_codec_name(all[i]),
               brine_codec_available(all[i]) ? "true" : "false");
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    printf("}, \"hdf5_version\": \"%u.%u.%u\"}\n", maj, min, rel);
}

static void usage(void)
{
    fputs("usage: bench_brine --case brine|async|hdf5|memcpy|raw|gen|codecs [--data f64|f32|i64|rand]\n"
          "                   [--mib N] [--codec zlib|libdeflate|isal|none|default] [--level L]\n"
          "                   [--threads T] [--dir DIR] [--cold] [--out FILE]\n"
          "                   [--fields N] [--reps N]   (async: arrays, timed calls)\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    args a = {NULL, "f64", "zlib", ".", NULL, 16, 1, 1, 0, 1, 5};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--cold")) {
            a.cold = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--case")) a.kase = v;
        else if (!strcmp(k, "--data")) a.data = v;
        else if (!strcmp(k, "--mib")) a.mib = atof(v);
        else if (!strcmp(k, "--codec")) a.codec = v;
        else if (!strcmp(k, "--level")) a.level = atoi(v);
        else if (!strcmp(k, "--threads")) a.threads = atoi(v);
        else if (!strcmp(k, "--dir")) a.dir = v;
        else if (!strcmp(k, "--out")) a.out = v;
        else if (!strcmp(k, "--fields")) a.fields = atoi(v);
        else if (!strcmp(k, "--reps")) a.reps = atoi(v);
        else usage();
    }
    if (!a.kase)
        usage();
    if (!strcmp(a.kase, "codecs")) {
        case_codecs();
        return 0;
    }
    if (a.mib <= 0)
        die("--mib must be > 0");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mkdir(a.dir, 0755);

    dataset d;
    make_data(&d, a.data, a.mib);
    result r;
    memset(&r, 0, sizeof r);
    if (!strcmp(a.kase, "brine") || !strcmp(a.kase, "hdf5") || !strcmp(a.kase, "async")) {
        r.level = a.level;
        r.threads = a.threads;
    }
    if (!strcmp(a.kase, "brine"))
        case_brine(&a, &d, &r);
    else if (!strcmp(a.kase, "async"))
        case_async(&a, &d, &r);
    else if (!strcmp(a.kase, "hdf5"))
        case_hdf5(&a, &d, &r);
    else if (!strcmp(a.kase, "memcpy"))
        case_memcpy(&d, &r);
    else if (!strcmp(a.kase, "raw"))
        case_raw(&a, &d, &r);
    else if (!strcmp(a.kase, "gen")) {
        case_gen(&a, &d);
        free(d.data);
        return 0;
    } else
        usage();
    if (!r.verified)
        die("case %s: the restored data differ from the saved data", a.kase);
    print_json(&d, &r, a.mib);
    free(d.data);
    return 0;
}
