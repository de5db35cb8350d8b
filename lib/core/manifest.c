/*
 * Multi-rank checkpoint directories (manifest.h, docs/format.md section 7):
 * names, the manifest's parser, deletion and rotation, shared by the
 * collective layer (coll.c) and the tools (listing.c).
 *
 * The I/O goes through the io table, but for rmdir(2), which the method
 * table does not have (removing a directory is cleanup; a failure only
 * leaves it for the next save).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/alloc.h"
#include "../io/io.h"
#include "core.h"
#include "manifest.h"

#define STEP_DIGITS 12
/* A manifest larger than this is not one brine wrote (a line per rank). */
#define MANIFEST_MAX ((uint64_t)64 << 20)

/* ------------------------------------------------------------------------ */
/* Names */

/*
 * Matches "<prefix>-<12 digits>" at the start of name; returns the
 * character after the digits (NULL when it does not match) and the step.
 */
static const char *match_dir(const char *name, const char *prefix, int64_t *step)
{
    const size_t plen = strlen(prefix);
    if (strncmp(name, prefix, plen) != 0 || name[plen] != '-')
        return NULL;
    const char *p = name + plen + 1;
    int64_t s = 0;
    for (int i = 0; i < STEP_DIGITS; i++, p++) {
        if (*p < '0' || *p > '9')
            return NULL;
        s = s * 10 + (*p - '0');
    }
    *step = s;
    return p;
}

int brine_mdir__is_final(const char *name, const char *prefix, int64_t *step)
{
    const char *end = match_dir(name, prefix, step);
    return end && *end == '\0';
}

int brine_mdir__is_temp(const char *name, const char *prefix)
{
    int64_t step = 0;
    if (name[0] != '.')
        return 0;
    const char *end = match_dir(name + 1, prefix, &step);
    return end && strncmp(end, ".tmp-", 5) == 0;
}

/* ------------------------------------------------------------------------ */
/* Directories */

typedef struct names {
    const brine_allocator *a;
    const char *prefix; /* NULL: every name */
    int temps;          /* with prefix: 1 temporary directories, 0 committed ones */
    char **v;
    int64_t *steps;
    size_t n, cap;
    int failed;
} names;

static int collect(void *arg, const char *name)
{
    names *s = arg;
    int64_t step = 0;
    if (s->prefix && !(s->temps ? brine_mdir__is_temp(name, s->prefix) : brine_mdir__is_final(name, s->prefix, &step)))
        return 0;
    if (s->n == s->cap) {
        const size_t cap = s->cap ? 2 * s->cap : 16;
        void *v = s->v, *t = s->steps;
        if (brine__resize(s->a, &v, s->n * sizeof *s->v, cap * sizeof *s->v) ||
            (s->v = v, brine__resize(s->a, &t, s->n * sizeof *s->steps, cap * sizeof *s->steps))) {
            s->failed = 1;
            return 1;
        }
        s->steps = t;
        s->cap = cap;
    }
    if (!(s->v[s->n] = brine__strdup(s->a, name))) {
        s->failed = 1;
        return 1;
    }
    s->steps[s->n++] = step;
    return 0;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        brine__free(s->a, s->v[i]);
    brine__free(s->a, s->v);
    brine__free(s->a, s->steps);
}

/* Lists dir into s.  0, or an error in err (BRINE_ENOTFOUND when dir does not exist). */
static int list(const brine_io_methods *io, const char *dir, names *s, brine_error *err)
{
    const int r = io->list_dir(io->ctx, dir, collect, s);
    if (s->failed)
        return brine__fail(err, BRINE_ENOMEM, "listing %s: out of memory", dir);
    if (r < 0) {
        brine__fail_errno(err, r, "reading directory %s failed", dir);
        return err->code = r == -ENOENT ? BRINE_ENOTFOUND : BRINE_EIO;
    }
    return 0;
}

void brine_mdir__remove_tree(const brine_io_methods *io, const brine_allocator *a, const char *path)
{
    names s = {a, NULL, 0, NULL, NULL, 0, 0, 0};
    brine_error ignored;
    char file[4096];
    if (list(io, path, &s, &ignored) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const int n = snprintf(file, sizeof file, "%s/%s", path, s.v[i]);
            if (n > 0 && (size_t)n < sizeof file)
                (void)io->unlink(io->ctx, file);
        }
    }
    names_free(&s);
    (void)rmdir(path);
}

void brine_mdir__remove_temps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                              const char *prefix)
{
    names s = {a, prefix, 1, NULL, NULL, 0, 0, 0};
    brine_error ignored;
    char path[4096];
    if (list(io, dir, &s, &ignored) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const int n = snprintf(path, sizeof path, "%s/%s", dir, s.v[i]);
            if (n > 0 && (size_t)n < sizeof path)
                brine_mdir__remove_tree(io, a, path);
        }
    }
    names_free(&s);
}

int brine_mdir__delete(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int64_t step, const char *why)
{
    char from[4096], to[4096];
    const int m = snprintf(from, sizeof from, "%s/%s-%012" PRId64, dir, prefix, step);
    const int n = snprintf(to, sizeof to, "%s/.%s-%012" PRId64 ".tmp-%s%ld", dir, prefix, step, why,
                           (long)getpid());
    if (m < 0 || (size_t)m >= sizeof from || n < 0 || (size_t)n >= sizeof to ||
        io->rename(io->ctx, from, to) < 0)
        return -1;
    (void)io->fsync_dir(io->ctx, dir);
    brine_mdir__remove_tree(io, a, to);
    return 0;
}

static int by_step_desc(const void *x, const void *y)
{
    const int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
    return (a < c) - (a > c);
}

int brine_mdir__list_steps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                           const char *prefix, int64_t **out, size_t *n, brine_error *err)
{
    names s = {a, prefix, 0, NULL, NULL, 0, 0, 0};
    *out = NULL;
    *n = 0;
    const int rc = list(io, dir, &s, err);
    if (rc == 0 && s.n) {
        qsort(s.steps, s.n, sizeof *s.steps, by_step_desc);
        *out = s.steps;
        *n = s.n;
        s.steps = NULL;
    }
    names_free(&s);
    return rc;
}

int brine_mdir__rotate(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int keep_last, int keep_every, int64_t keep_step,
                       brine_error *err)
{
    int64_t *steps = NULL;
    size_t n = 0, rotating = 0;
    int deleted = 0;
    if (keep_last <= 0)
        return 0;
    const int rc = brine_mdir__list_steps(io, a, dir, prefix, &steps, &n, err);
    if (rc)
        return rc > 0 ? -rc : rc;
    for (size_t i = 0; i < n; i++) {
        if (keep_every > 0 && steps[i] % keep_every == 0)
            continue;
        if (++rotating > (size_t)keep_last && steps[i] != keep_step &&
            brine_mdir__delete(io, a, dir, prefix, steps[i], "del") == 0)
            deleted++;
    }
    brine__free(a, steps);
    return deleted;
}

/* ------------------------------------------------------------------------ */
/* The manifest (docs/format.md, 7.2) */

/* Reads the whole file at path (at most max bytes) into *out (allocated through a). */
static int read_whole(const brine_io_methods *io, const brine_allocator *a, const char *path, uint64_t max,
                      uint8_t **out, uint64_t *size, brine_error *err)
{
    int rc = 0;
    uint8_t *buf = NULL;
    const int fd = io->open(io->ctx, path, O_RDONLY, 0);
    *out = NULL;
    if (fd < 0)
        return brine__fail_errno(err, fd, "open of %s failed", path);
    int r = io->fsize(io->ctx, fd, size);
    if (r < 0) {
        rc = brine__fail_errno(err, r, "fstat of %s failed", path);
        goto done;
    }
    if (*size > max) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s is %" PRIu64 " bytes, more than the %" PRIu64 " a manifest can be",
                         path, *size, max);
        goto done;
    }
    if (!(buf = brine__alloc(a, (size_t)*size + 1))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    if ((r = brine_io__pread_all(io, fd, buf, (size_t)*size, 0)) < 0) {
        rc = brine__fail_errno(err, r, "read of %s failed", path);
        goto done;
    }
    buf[*size] = '\0';
    *out = buf;
    buf = NULL;
done:
    brine__free(a, buf);
    io->close(io->ctx, fd);
    return rc;
}

/* Strict decimal (no sign, no spaces) from *p up to a delimiter; advances *p past it. */
static int take_u64(const char **p, char delim, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != delim)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static int take_hex8(const char **p, char delim, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++, s++) {
        const char c = *s;
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    if (*s != delim)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static int take_word(const char **p, const char *word)
{
    const size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0)
        return -1;
    *p += n;
    return 0;
}

int brine_manifest__read(const brine_io_methods *io, const brine_allocator *a, const char *cdir,
                         const char *prefix, int64_t step, brine_manifest_fn each, void *ctx,
                         int *nranks, brine_error *err)
{
    int rc = 0;
    char path[4096 + 16], want[128];
    uint8_t *buf = NULL;
    uint64_t len = 0, v = 0, count = 0;
    snprintf(path, sizeof path, "%s/manifest", cdir);
    if ((rc = read_whole(io, a, path, MANIFEST_MAX, &buf, &len, err)))
        goto done;
    const char *text = (const char *)buf;
    /* The last line, "checksum <8 hex>\n", covers every byte before it. */
    const size_t tail = sizeof "checksum 00000000\n" - 1;
    uint32_t stored = 0;
    const char *t = text + (len >= tail ? len - tail : 0);
    if (len < tail + strlen(BRINE_MANIFEST_MAGIC) || strlen(text) != len || take_word(&t, "checksum ") ||
        take_hex8(&t, '\n', &stored) || (len > tail && text[len - tail - 1] != '\n')) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s is not a brine manifest (no checksum line at its end)", path);
        goto done;
    }
    const uint32_t actual = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(len - tail));
    if (actual != stored) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")",
                         path, stored, actual);
        goto done;
    }
    const char *p = text;
    if (take_word(&p, BRINE_MANIFEST_MAGIC)) {
        rc = brine__fail(err, BRINE_EVERSION, "%s: first line is not '%.*s' (a newer format?)", path,
                         (int)strlen(BRINE_MANIFEST_MAGIC) - 1, BRINE_MANIFEST_MAGIC);
        goto done;
    }
    snprintf(want, sizeof want, "prefix %s\nstep ", prefix);
    if (take_word(&p, want) || take_u64(&p, '\n', &v) || (int64_t)v != step || take_word(&p, "nranks ") ||
        take_u64(&p, '\n', &count) || count < 1 || count > INT32_MAX) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: its header does not name prefix %s, step %" PRId64
                         " and a rank count", path, prefix, step);
        goto done;
    }
    *nranks = (int)count;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t r = 0, sz = 0;
        uint32_t c = 0;
        char name[64];
        snprintf(name, sizeof name, "rank-%" PRIu64 ".h5 ", k);
        if (take_word(&p, "rank ") || take_u64(&p, ' ', &r) || r != k || take_word(&p, name) ||
            take_u64(&p, ' ', &sz) || take_hex8(&p, '\n', &c)) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s: the line of rank %" PRIu64 " is malformed", path, k);
            goto done;
        }
        if (each && (rc = each(ctx, (int)k, sz, c)))
            goto done;
    }
    if (p != t - tail) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: unexpected text after the rank lines", path);
        goto done;
    }
done:
    brine__free(a, buf);
    return rc;
}
