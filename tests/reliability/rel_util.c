/* nftw and struct FTW are XSI. */
#define _XOPEN_SOURCE 700

#include "rel_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

long rel_checks, rel_failures;

void rel_fail(const char *fmt, ...)
{
    va_list ap;
    rel_failures++;
    if (rel_failures > 200)
        return; /* counted, not printed */
    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

long rel_env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    return strtol(v, NULL, 10);
}

double rel_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A double in [0, 1) from a hash: exact, no rounding questions. */
static double unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

int rel_state_init(rel_state *s, size_t big_rows, int compressible)
{
    memset(s, 0, sizeof *s);
    s->big_rows = big_rows;
    s->compressible = compressible;
    s->big = calloc(big_rows * REL_BIG_COLS, sizeof *s->big);
    return s->big ? 0 : -1;
}

void rel_state_free(rel_state *s)
{
    free(s->big);
    s->big = NULL;
}

static double big_value(const rel_state *s, int64_t step, size_t i)
{
    if (s->compressible)
        return (double)(step * 3 + (int64_t)(i / 4096));
    return unit(mix(((uint64_t)step << 32) ^ i)) * 1000.0;
}

static void fill_label(char *out, size_t n, int64_t step)
{
    snprintf(out, n, "step %lld: \xc3\xa9t\xc3\xa9 \xe2\x9c\x93", (long long)step);
}

void rel_state_fill(rel_state *s, int64_t step)
{
    const uint64_t st = (uint64_t)step;
    const size_t nbig = s->big_rows * REL_BIG_COLS;
    for (size_t i = 0; i < nbig; i++)
        s->big[i] = big_value(s, step, i);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 7; j++)
            s->small[i][j] = unit(mix(st * 100 + (uint64_t)(i * 7 + j))) - 0.5;
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 5; i++)
            s->fort[j][i] = (int32_t)(mix(st * 31 + (uint64_t)(j * 5 + i)) & 0xffffffu) - 0x7fffff;
    for (int i = 0; i < 4; i++) {
        s->z[i][0] = (float)step + 0.25f * (float)i;
        s->z[i][1] = -(float)i;
    }
    for (int i = 0; i < 9; i++)
        s->flags[i] = (uint8_t)((st >> (i % 8)) & 1u);
    s->step = step;
    s->time = 0.125 * (double)step;
    s->count = (uint32_t)(mix(st) & 0xffffffffu);
    s->ok = (uint8_t)(step & 1);
    s->zc[0] = unit(mix(st + 7));
    s->zc[1] = -unit(mix(st + 8));
    memset(s->label, 0, sizeof s->label);
    fill_label(s->label, sizeof s->label, step);
}

void rel_state_poison(rel_state *s)
{
    memset(s->big, 0xa5, s->big_rows * REL_BIG_COLS * sizeof *s->big);
    memset(s->small, 0xa5, sizeof s->small);
    memset(s->fort, 0xa5, sizeof s->fort);
    memset(s->z, 0xa5, sizeof s->z);
    memset(s->flags, 0xa5, sizeof s->flags);
    memset(&s->step, 0xa5, sizeof s->step);
    memset(&s->time, 0xa5, sizeof s->time);
    memset(&s->count, 0xa5, sizeof s->count);
    memset(&s->ok, 0xa5, sizeof s->ok);
    memset(s->zc, 0xa5, sizeof s->zc);
    memset(s->label, 'x', sizeof s->label); /* no NUL: a restore must write one */
}

int rel_state_check(const rel_state *s, int64_t step, char *why, size_t whylen)
{
    rel_state e;
    int rc = 0;
    if (rel_state_init(&e, s->big_rows, s->compressible)) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    rel_state_fill(&e, step);
    if (s->lean) { /* not registered: not compared */
        memcpy(e.fort, s->fort, sizeof e.fort);
        memcpy(e.z, s->z, sizeof e.z);
        memcpy(e.flags, s->flags, sizeof e.flags);
        e.count = s->count;
        e.ok = s->ok;
    }
    const size_t nbig = s->big_rows * REL_BIG_COLS;
    if (memcmp(s->big, e.big, nbig * sizeof *s->big) != 0) {
        size_t i = 0;
        while (memcmp(&s->big[i], &e.big[i], sizeof *s->big) == 0)
            i++;
        snprintf(why, whylen, "big/u[%zu] = %.17g, expected %.17g (step %lld)", i, s->big[i],
                 e.big[i], (long long)step);
        rc = -1;
    }
#define CMP(field, name)                                                                       \
    else if (memcmp(&s->field, &e.field, sizeof s->field) != 0)                                \
    {                                                                                          \
        snprintf(why, whylen, "%s differs from step %lld's", name, (long long)step);           \
        rc = -1;                                                                               \
    }
    CMP(small, "grid/small")
    CMP(fort, "grid/fort")
    CMP(z, "grid/z")
    CMP(flags, "flags")
    CMP(step, "step")
    CMP(time, "time")
    CMP(count, "count")
    CMP(ok, "ok")
    CMP(zc, "zc")
#undef CMP
    else if (strnlen(s->label, sizeof s->label) == sizeof s->label ||
             strcmp(s->label, e.label) != 0)
    {
        snprintf(why, whylen, "label is \"%.*s\", expected \"%s\"", (int)sizeof s->label, s->label,
                 e.label);
        rc = -1;
    }
    rel_state_free(&e);
    return rc;
}

int rel_state_register(brine *b, rel_state *s)
{
    int rc;
    if (s->lean) {
        if ((rc = brine_register(b, "u", BRINE_F64, s->big, 2,
                                 (size_t[]){s->big_rows, REL_BIG_COLS}, 0)) ||
            (rc = brine_register(b, "small", BRINE_F64, s->small, 2, (size_t[]){6, 7}, 0)) ||
            (rc = brine_register(b, "step", BRINE_I64, &s->step, 0, NULL, 0)) ||
            (rc = brine_register(b, "time", BRINE_F64, &s->time, 0, NULL, 0)) ||
            (rc = brine_register(b, "zc", BRINE_C128, s->zc, 0, NULL, 0)) ||
            (rc = brine_register_string(b, "label", s->label, sizeof s->label)))
            return rc;
        return 0;
    }
    if ((rc = brine_register(b, "big/u", BRINE_F64, s->big, 2,
                             (size_t[]){s->big_rows, REL_BIG_COLS}, 0)) ||
        (rc = brine_register(b, "grid/small", BRINE_F64, s->small, 2, (size_t[]){6, 7}, 0)) ||
        (rc = brine_register(b, "grid/fort", BRINE_I32, s->fort, 2, (size_t[]){5, 3},
                             BRINE_FORTRAN_ORDER)) ||
        (rc = brine_register(b, "grid/z", BRINE_C64, s->z, 1, (size_t[]){4}, 0)) ||
        (rc = brine_register(b, "flags", BRINE_BOOL, s->flags, 1, (size_t[]){9}, 0)) ||
        (rc = brine_register(b, "step", BRINE_I64, &s->step, 0, NULL, 0)) ||
        (rc = brine_register(b, "time", BRINE_F64, &s->time, 0, NULL, 0)) ||
        (rc = brine_register(b, "count", BRINE_U32, &s->count, 0, NULL, 0)) ||
        (rc = brine_register(b, "ok", BRINE_BOOL, &s->ok, 0, NULL, 0)) ||
        (rc = brine_register(b, "zc", BRINE_C128, s->zc, 0, NULL, 0)) ||
        (rc = brine_register_string(b, "label", s->label, sizeof s->label)))
        return rc;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fault-injecting I/O                                                      */

static const char *const op_names[REL_OP_COUNT] = {
    "open", "close", "pread", "pwrite", "fsync", "ftruncate",
    "fsize", "rename", "unlink", "mkdir", "fsync_dir", "list_dir"};

const char *rel_op_name(int op)
{
    return op >= 0 && op < REL_OP_COUNT ? op_names[op] : "?";
}

const char *rel_fault_kind_name(rel_fault_kind k)
{
    static const char *const names[] = {"EIO", "ENOSPC", "EINTR", "short"};
    return k < REL_FAULT_KIND_COUNT ? names[k] : "?";
}

static void note_fault(rel_io *f, const char *path, int fd)
{
    if (f->injected++ == 0) {
        if (path)
            snprintf(f->fail_path, sizeof f->fail_path, "%s", path);
        else if (fd >= 0 && fd < 256)
            snprintf(f->fail_path, sizeof f->fail_path, "%s", f->fd_path[fd]);
        f->fail_fd_written = fd >= 0 && fd < 256 && f->fd_written[fd];
    }
}

/*
 * Counts the operation and says whether it is hit by the injection:
 * operation number fail_at, or (persistent) any later call of the same method.
 */
static int hit(rel_io *f, int op)
{
    f->seq++;
    f->calls[op]++;
    if (f->trace && f->seq <= f->trace_cap)
        f->trace[f->seq] = op;
    if (!f->fail_at)
        return 0;
    if (f->seq == f->fail_at) {
        f->fail_op = op;
        return 1;
    }
    return f->persistent && f->fail_op == op && f->seq > f->fail_at;
}

/* The errno of a hard fault (EIO, ENOSPC); 0 for EINTR/SHORT, which only apply to transfers. */
static int hard_errno(const rel_io *f)
{
    return f->kind == REL_FAULT_EIO ? EIO : f->kind == REL_FAULT_ENOSPC ? ENOSPC : 0;
}

static int f_open(void *ctx, const char *path, int flags, unsigned mode)
{
    rel_io *f = ctx;
    if (hit(f, REL_OP_OPEN) && hard_errno(f)) {
        note_fault(f, path, -1);
        return -hard_errno(f);
    }
    int fd = f->base->open(f->base->ctx, path, flags, mode);
    if (fd >= 0) {
        f->opens++;
        if (fd < 256) {
            snprintf(f->fd_path[fd], sizeof f->fd_path[fd], "%s", path);
            f->fd_written[fd] = 0;
        }
    }
    return fd;
}

static int f_close(void *ctx, int fd)
{
    rel_io *f = ctx;
    const int h = hit(f, REL_OP_CLOSE) && hard_errno(f);
    if (h)
        note_fault(f, NULL, fd);
    f->closes++;
    /* The descriptor is released even when close "fails", as on Linux. */
    int r = f->base->close(f->base->ctx, fd);
    return h ? -hard_errno(f) : r;
}

/*
 * The fault decision shared by pread and pwrite: 1 to call through (with *n
 * possibly halved for a short transfer), or 0 with *ret the failure to return.
 * The retry of an interrupted call is counted as an operation of its own.
 */
static int transfer_fault(rel_io *f, int op, int fd, size_t *n, int64_t *ret)
{
    if (f->eintr_pending) {
        f->eintr_pending = 0;
        f->seq++;
        f->calls[op]++;
        if (f->trace && f->seq <= f->trace_cap)
            f->trace[f->seq] = op;
        return 1;
    }
    if (!hit(f, op))
        return 1;
    note_fault(f, NULL, fd);
    if (f->kind == REL_FAULT_EINTR) {
        f->eintr_pending = 1;
        *ret = -EINTR;
        return 0;
    }
    if (f->kind == REL_FAULT_SHORT) {
        if (*n > 1)
            *n /= 2;
        return 1;
    }
    *ret = -hard_errno(f);
    return 0;
}

static int64_t f_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    rel_io *f = ctx;
    int64_t ret = 0;
    if (!transfer_fault(f, REL_OP_PREAD, fd, &n, &ret))
        return ret;
    return f->base->pread(f->base->ctx, fd, buf, n, off);
}

static int64_t f_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    rel_io *f = ctx;
    int64_t ret = 0;
    if (fd >= 0 && fd < 256)
        f->fd_written[fd] = 1;
    if (!transfer_fault(f, REL_OP_PWRITE, fd, &n, &ret))
        return ret;
    return f->base->pwrite(f->base->ctx, fd, buf, n, off);
}

#define SIMPLE_FD(name, OP, call)                  \
    static int name                                \
    {                                              \
        rel_io *f = ctx;                           \
        if (hit(f, OP) && hard_errno(f)) {         \
            note_fault(f, NULL, fd);               \
            return -hard_errno(f);                 \
        }                                          \
        return call;                               \
    }

SIMPLE_FD(f_fsync(void *ctx, int fd), REL_OP_FSYNC, f->base->fsync(f->base->ctx, fd))
SIMPLE_FD(f_ftruncate(void *ctx, int fd, uint64_t size), REL_OP_FTRUNCATE,
          f->base->ftruncate(f->base->ctx, fd, size))
SIMPLE_FD(f_fsize(void *ctx, int fd, uint64_t *out), REL_OP_FSIZE,
          f->base->fsize(f->base->ctx, fd, out))

#define SIMPLE_PATH(name, OP, path, call)          \
    static int name                                \
    {                                              \
        rel_io *f = ctx;                           \
        if (hit(f, OP) && hard_errno(f)) {         \
            note_fault(f, path, -1);               \
            return -hard_errno(f);                 \
        }                                          \
        return call;                               \
    }

SIMPLE_PATH(f_rename(void *ctx, const char *from, const char *to), REL_OP_RENAME, from,
            f->base->rename(f->base->ctx, from, to))
SIMPLE_PATH(f_unlink(void *ctx, const char *path), REL_OP_UNLINK, path,
            f->base->unlink(f->base->ctx, path))
SIMPLE_PATH(f_mkdir(void *ctx, const char *path, unsigned mode), REL_OP_MKDIR, path,
            f->base->mkdir(f->base->ctx, path, mode))
SIMPLE_PATH(f_fsync_dir(void *ctx, const char *path), REL_OP_FSYNC_DIR, path,
            f->base->fsync_dir(f->base->ctx, path))
SIMPLE_PATH(f_list_dir(void *ctx, const char *path, int (*each)(void *, const char *), void *arg),
            REL_OP_LIST_DIR, path, f->base->list_dir(f->base->ctx, path, each, arg))

void rel_io_init(rel_io *io)
{
    memset(io, 0, sizeof *io);
    io->base = brine_io_posix();
    io->fail_op = -1;
    io->m = (brine_io_methods){BRINE_IO_METHODS_VERSION, io, f_open, f_close, f_pread, f_pwrite,
                               f_fsync, f_ftruncate, f_fsize, f_rename, f_unlink, f_mkdir,
                               f_fsync_dir, f_list_dir};
}

void rel_io_reset(rel_io *io)
{
    io->seq = 0;
    memset(io->calls, 0, sizeof io->calls);
    io->opens = io->closes = 0;
    io->fail_at = 0;
    io->persistent = 0;
    io->fail_op = -1;
    io->injected = 0;
    io->eintr_pending = 0;
    io->fail_path[0] = '\0';
    io->fail_fd_written = 0;
}

void rel_io_arm(rel_io *io, long at, rel_fault_kind kind, int persistent)
{
    rel_io_reset(io);
    io->fail_at = at;
    io->kind = kind;
    io->persistent = persistent;
}

/* ------------------------------------------------------------------------ */
/* Allocator                                                                */

#define REL_MAGIC 0x62726e65616c6c6full

static void *a_alloc(void *ctx, size_t size)
{
    rel_alloc *a = ctx;
    a->since_arm++;
    if (a->fail_nth && a->since_arm == a->fail_nth) {
        a->failed++;
        return NULL;
    }
    uint64_t *p = malloc(size + 16);
    if (!p)
        return NULL;
    p[0] = REL_MAGIC;
    p[1] = size;
    a->allocs++;
    a->outstanding++;
    return p + 2;
}

static void a_free(void *ctx, void *ptr)
{
    rel_alloc *a = ctx;
    uint64_t *p = (uint64_t *)ptr - 2;
    if (p[0] != REL_MAGIC) {
        a->bad_frees++;
        return;
    }
    p[0] = 0;
    a->frees++;
    a->outstanding--;
    free(p);
}

void rel_alloc_init(rel_alloc *a)
{
    memset(a, 0, sizeof *a);
    a->a = (brine_allocator){a_alloc, a_free, a};
}

void rel_alloc_arm(rel_alloc *a, long nth)
{
    a->fail_nth = nth;
    a->since_arm = 0;
}

/* ------------------------------------------------------------------------ */
/* Directories                                                              */

int rel_count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int rel_list_steps(const char *dir, int64_t *out, int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        long long step;
        char tail[8];
        if (strlen(e->d_name) == 20 && sscanf(e->d_name, "ckpt-%12lld%4s", &step, tail) == 2 &&
            strcmp(tail, ".h5") == 0 && n < max)
            out[n++] = step;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_i64);
    return n;
}

int rel_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", "..", and the DIR's own descriptor */
}

void rel_mkdtemp(char *out, size_t n, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/brine-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void rel_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void rel_clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    const struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        rel_rmtree(p);
    }
    closedir(d);
}

uint8_t *rel_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        } else {
            *len = got;
        }
    }
    close(fd);
    return buf;
}

int rel_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t r = write(fd, (const uint8_t *)data + done, len - done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    return close(fd) == 0 && done == len ? 0 : -1;
}

void rel_ckpt_path(char *out, size_t n, const char *dir, int64_t step)
{
    snprintf(out, n, "%s/ckpt-%012lld.h5", dir, (long long)step);
}

brine *rel_open(const char *dir, rel_state *s, const brine_io_methods *io, const brine_allocator *al,
                int keep_last)
{
    brine_options o = BRINE_OPTIONS_INIT;
    brine *b = NULL;
    o.io = io;
    o.alloc = al;
    o.keep_last = keep_last;
    o.threads = 1;
    int rc = brine_open(&b, dir, &o);
    if (rc) {
        fprintf(stderr, "brine_open(%s): %d %s\n", dir, rc, brine_open_errmsg());
        return NULL;
    }
    if ((rc = rel_state_register(b, s))) {
        fprintf(stderr, "registering: %d %s\n", rc, brine_errmsg(b));
        brine_close(b);
        return NULL;
    }
    return b;
}

long rel_h5_open_files(void)
{
    return (long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
}

long rel_h5_ids(void)
{
    static const H5I_type_t types[] = {H5I_FILE, H5I_GROUP, H5I_DATATYPE, H5I_DATASPACE,
                                       H5I_DATASET, H5I_ATTR};
    long n = 0;
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* types not yet initialised refuse politely */
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        hsize_t m = 0;
        if (H5Inmembers(types[i], &m) >= 0)
            n += (long)m;
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return n;
}
