/*
 * brine_restore: find the newest checkpoint that verifies and matches the
 * registered variables, and load it into their memory; brine_restore_begin:
 * the same search, for a reader.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../format/dtype.h"
#include "../io/dir_scan.h"
#include "async.h"
#include "checkpoint.h"
#include "coll.h"
#include "core.h"
#include "match.h"
#include "reader.h"

/* Everything verification learnt about one variable, so that copying cannot fail on it. */
typedef struct planned {
    const brine_pvalue *value; /* NULL: not in the checkpoint (BRINE_RESTORE_PARTIAL) */
    char *dataset;             /* arrays stored out of band: the dataset path, owned */
    uint64_t dims[BRINE_MAX_NDIM]; /* the stored dataset's dimensions */
    size_t stored_bytes;       /* arrays: bytes in the stored dtype */
    size_t new_bytes;          /* resizable arrays: bytes in the registered dtype, stored shape */
} planned;

/* A list of differences, as much as fits in a message, counting the rest. */
typedef struct diffs {
    const char *sep; /* between differences: "; " in a message, "\n" in a report */
    char text[BRINE_ERRMSG_MAX];
    size_t used;
    size_t count;
    size_t cut; /* differences that did not fit */
} diffs;

static void diff_add(diffs *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void diff_add(diffs *d, const char *fmt, ...)
{
    char one[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof one, fmt, ap);
    va_end(ap);
    d->count++;
    const char *s = d->used ? d->sep : "";
    /* Half the message at most, so that the file name, the count and the
     * "... and N more" tail survive when brine_restore quotes it. */
    if (d->cut || d->used + strlen(s) + strlen(one) + 64 >= sizeof d->text / 2) {
        d->cut++;
        return;
    }
    d->used += (size_t)snprintf(d->text + d->used, sizeof d->text - d->used, "%s%s", s, one);
}

static const char *diff_tail(const diffs *d, char *buf, size_t n)
{
    if (d->cut)
        snprintf(buf, n, " ... and %zu more", d->cut);
    else
        buf[0] = '\0';
    return buf;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Walks the checkpoint's tree and records every leaf whose name is not registered. */
static void find_unregistered(const brine_pvalue *dict, char *path, size_t plen, size_t cap,
                              const char *const *sorted, size_t n, diffs *out)
{
    for (size_t i = 0; i < dict->v.dict.n; i++) {
        const brine_pvalue *k = dict->v.dict.keys[i], *v = dict->v.dict.values[i];
        if (k->kind != BRINE_PV_STR) {
            diff_add(out, "a %s key in group '%.*s' is in the checkpoint (only str keys name variables)",
                     k->kind == BRINE_PV_INT ? "int" : "non-str", (int)plen, path);
            continue;
        }
        const size_t klen = k->v.str.len;
        const int usable = klen > 0 && !memchr(k->v.str.s, '/', klen) && plen + 1 + klen < cap;
        if (!usable) {
            diff_add(out, "'%.*s%s%.*s' is in the checkpoint but cannot be a variable name",
                     (int)plen, path, plen ? "/" : "", (int)(klen > 200 ? 200 : klen), k->v.str.s);
            continue;
        }
        size_t len = plen;
        if (plen)
            path[len++] = '/';
        memcpy(path + len, k->v.str.s, klen);
        len += klen;
        path[len] = '\0';
        const char *key = path;
        if (bsearch(&key, sorted, n, sizeof *sorted, by_name)) {
            /* registered: compared by its own check */
        } else if (v->kind == BRINE_PV_DICT) {
            find_unregistered(v, path, len, cap, sorted, n, out);
        } else {
            diff_add(out, "'%s' is in the checkpoint (%s) but not registered", path,
                     brine_match__kind_name(v->kind));
        }
        path[plen] = '\0';
    }
}

/* Unregistered names of the checkpoint: into out.  0 or BRINE_ENOMEM. */
static int unregistered(brine *b, const brine_pvalue *root, diffs *out)
{
    int rc = 0;
    const size_t cap = 8192;
    const char **sorted = b->nvars ? brine__calloc(b->alloc, b->nvars, sizeof *sorted) : NULL;
    char *path = brine__alloc(b->alloc, cap);
    if ((b->nvars && !sorted) || !path) {
        rc = brine__fail(&b->err, BRINE_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < b->nvars; i++)
        sorted[i] = b->vars[i].name;
    if (b->nvars)
        qsort(sorted, b->nvars, sizeof *sorted, by_name);
    path[0] = '\0';
    find_unregistered(root, path, 0, cap, sorted, b->nvars, out);
done:
    brine__free(b->alloc, sorted);
    brine__free(b->alloc, path);
    return rc;
}

static brine_target target_of(const brine_var *var)
{
    brine_target t = {var->name, "registered", var->is_string, var->nbytes, var->dtype, var->ndim, var->shape,
                      var->flags, var->resizable};
    return t;
}

/*
 * Matches every registered variable against the checkpoint.  Differences of
 * names go to names (tolerated under BRINE_RESTORE_PARTIAL), others to hard.
 */
static int match_all(brine *b, const brine_pvalue *root, planned *plan, diffs *names, diffs *hard)
{
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *var = &b->vars[i];
        const brine_pvalue *v = brine_pickle__lookup(root, var->name);
        char why[700];
        if (!v) {
            diff_add(names, "variable '%s' is registered but not in the checkpoint", var->name);
            continue;
        }
        const brine_target t = target_of(var);
        if (brine_match__value(&t, v, why, sizeof why)) {
            diff_add(hard, "variable '%s' is %s", var->name, why);
            continue;
        }
        plan[i].value = v;
    }
    return unregistered(b, root, names);
}

/* Checks and verifies the stored data of every matched array; sizes what copying needs. */
static int verify_arrays(brine *b, const brine_ckpt *c, const char *file, planned *plan,
                         size_t *scratch)
{
    int rc = 0;
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *var = &b->vars[i];
        planned *p = &plan[i];
        const brine_pvalue *v = p->value;
        if (!v || v->kind != BRINE_PV_NDARRAY)
            continue;
        const int dtype = v->v.array.dtype;
        const int ndim = v->v.array.ndim;
        p->stored_bytes = brine_dtype__info(dtype)->size;
        for (int d = 0; d < ndim; d++) {
            p->dims[d] = v->v.array.order == 'F' ? v->v.array.shape[ndim - 1 - d] : v->v.array.shape[d];
            p->stored_bytes *= (size_t)v->v.array.shape[d]; /* the decoder bounded it */
        }
        if (var->resizable) {
            brine_var probe = *var;
            if ((rc = brine_registry__set_shape(&probe, v->v.array.shape, &b->err))) {
                brine__error_prefix(&b->err, "%s: ", file);
                return rc;
            }
            p->new_bytes = probe.nbytes;
        }
        if (dtype != (int)var->dtype && p->stored_bytes > *scratch)
            *scratch = p->stored_bytes;
        if (v->v.array.buffer < 0)
            continue; /* in-band data: the decoder checked its length against the shape */
        if ((uint64_t)v->v.array.buffer >= c->nbuffers)
            return brine__fail(&b->err, BRINE_ECORRUPT,
                               "%s: variable '%s' uses buffer %" PRId64 " but the file lists %zu",
                               file, var->name, v->v.array.buffer, c->nbuffers);
        if (!(p->dataset = brine_ckpt__dataset_path(b->alloc, var->name)))
            return brine__fail(&b->err, BRINE_ENOMEM, "out of memory");
        if ((rc = brine_h5__verify_array(c->r, p->dataset, var->name, dtype, v->v.array.order, ndim,
                                         p->dims, &b->err)))
            return rc;
    }
    return 0;
}

/* Gives every resizable array the memory of its stored size; sets *data and shape[]. */
static int resize_all(brine *b, const planned *plan)
{
    for (size_t i = 0; i < b->nvars; i++) {
        brine_var *var = &b->vars[i];
        const brine_pvalue *v = plan[i].value;
        if (!var->resizable || !v)
            continue;
        void *mem = *var->data_ref;
        if (plan[i].new_bytes != var->nbytes) {
            if (var->resize)
                mem = var->resize(var->resize_ctx, var->name, mem, plan[i].new_bytes);
            else if (plan[i].new_bytes > 0)
                mem = realloc(mem, plan[i].new_bytes);
            if (!mem && plan[i].new_bytes > 0)
                return brine__fail(&b->err, BRINE_ENOMEM,
                                   "resizable variable '%s': no memory for its %zu bytes", var->name,
                                   plan[i].new_bytes);
            *var->data_ref = mem;
        }
        for (int d = 0; d < var->ndim; d++)
            var->shape_ref[d] = (size_t)v->v.array.shape[d];
        brine_registry__set_shape(var, v->v.array.shape, &b->err); /* checked by verify_arrays */
        var->data = mem;
    }
    return 0;
}

/* Copies every matched variable into its memory.  Nothing here can mismatch. */
static int copy_all(brine *b, const brine_ckpt *c, const planned *plan, void *scratch)
{
    int rc = 0;
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *var = &b->vars[i];
        const planned *p = &plan[i];
        const brine_pvalue *v = p->value;
        if (!v)
            continue;
        if (var->is_string) {
            memcpy(var->data, v->v.str.s, v->v.str.len);
            ((char *)var->data)[v->v.str.len] = '\0';
            continue;
        }
        if (var->ndim == 0) {
            brine_match__store_scalar(var->dtype, var->data, v);
            continue;
        }
        const int dtype = v->v.array.dtype;
        const int convert = dtype != (int)var->dtype;
        const size_t n = p->stored_bytes / brine_dtype__info(dtype)->size;
        if (!p->dataset) {
            if (convert)
                brine_dtype__convert(var->data, var->dtype, v->v.array.inband, dtype, n);
            else if (p->stored_bytes)
                memcpy(var->data, v->v.array.inband, p->stored_bytes);
            continue;
        }
        void *dst = convert ? scratch : var->data;
        if ((rc = brine_h5__read_array(c->r, p->dataset, var->name, dtype, v->v.array.order,
                                       v->v.array.ndim, p->dims, dst, &b->err)))
            return rc;
        if (convert)
            brine_dtype__convert(var->data, var->dtype, scratch, dtype, n);
    }
    return 0;
}

/*
 * Verifies one checkpoint completely, then copies it into the registered
 * memory.  *copied tells whether memory was written (then a failure has left
 * it partly written).
 */
static int restore_file(brine *b, const char *file, int64_t file_step, int64_t *step, int *copied)
{
    int rc = 0;
    brine_ckpt c;
    planned *plan = NULL;
    diffs *names = NULL, *hard = NULL;
    void *scratch = NULL;
    size_t scratch_bytes = 0;
    char tail[64];

    *copied = 0;
    if ((rc = brine_ckpt__open(&c, file, file_step, b->io, b->alloc, b->opts.threads, &b->err)))
        return rc;
    names = brine__calloc(b->alloc, 2, sizeof *names);
    plan = b->nvars ? brine__calloc(b->alloc, b->nvars, sizeof *plan) : NULL;
    if (!names || (b->nvars && !plan)) {
        rc = brine__fail(&b->err, BRINE_ENOMEM, "out of memory");
        goto done;
    }
    hard = names + 1;

    /* Phase 1: match and verify everything; nothing is written to registered memory. */
    /* Without BRINE_RESTORE_PARTIAL a difference of names is as hard as any. */
    const int partial = (b->opts.restore_flags & BRINE_RESTORE_PARTIAL) != 0;
    names->sep = partial ? "\n" : "; ";
    hard->sep = "; ";
    if ((rc = match_all(b, c.root, plan, partial ? names : hard, hard)))
        goto done;
    if (hard->count) {
        rc = brine__fail(&b->err, BRINE_EMISMATCH,
                         "%s: %zu difference%s between the registered variables and the checkpoint: %s%s",
                         file, hard->count, hard->count == 1 ? "" : "s", hard->text,
                         diff_tail(hard, tail, sizeof tail));
        goto done;
    }
    if ((rc = verify_arrays(b, &c, file, plan, &scratch_bytes)))
        goto done;
    if (scratch_bytes && !(scratch = brine__alloc(b->alloc, scratch_bytes))) {
        rc = brine__fail(&b->err, BRINE_ENOMEM, "out of memory (%zu bytes to convert an array)",
                         scratch_bytes);
        goto done;
    }

    /* Phase 2: size resizable arrays, copy. */
    *copied = 1;
    if ((rc = resize_all(b, plan)) || (rc = copy_all(b, &c, plan, scratch)))
        goto done;
    *step = c.step;
    if (names->count) {
        /* names->text leaves room for the tail and the newline (diff_add). */
        const size_t used = strlen(names->text);
        memcpy(b->report, names->text, used);
        diff_tail(names, tail, sizeof tail);
        memcpy(b->report + used, tail, strlen(tail));
        memcpy(b->report + used + strlen(tail), "\n", 2);
    }
done:
    rc = brine_ckpt__io_failure(&c, rc, file, &b->err);
    for (size_t i = 0; plan && i < b->nvars; i++)
        brine__free(b->alloc, plan[i].dataset);
    brine__free(b->alloc, plan);
    brine__free(b->alloc, names);
    brine__free(b->alloc, scratch);
    brine_ckpt__close(&c);
    return rc;
}

/* Appends "[reason]" (after "; " when not the first) to the combined message, cutting what does not fit. */
static void append_reason(char *all, size_t n, const char *reason)
{
    size_t used = strlen(all);
    const char *parts[4] = {used ? "; " : "", "[", reason, "]"};
    for (int i = 0; i < 4; i++) {
        size_t len = strlen(parts[i]);
        if (len > n - 1 - used)
            len = n - 1 - used;
        memcpy(all + used, parts[i], len);
        used += len;
    }
    all[used] = '\0';
}

/*
 * Tries attempt on the committed checkpoints of b, newest first, until one
 * succeeds.  attempt sets *dirty when it wrote registered memory.
 */
typedef int (*attempt_fn)(brine *b, const char *file, int64_t step, void *arg, int *dirty);

/*
 * newest_that_works for a group (docs/mpi.md): rank 0 names each candidate,
 * newest first; every rank checks its own file against the manifest and
 * makes its attempt; the first candidate every rank accepts wins, so the
 * ranks fall back together.  undo (may be NULL) forgets a successful attempt
 * that another rank's failure overrules.
 */
static int newest_collective(brine *b, attempt_fn attempt, void *arg, void (*undo)(void *),
                             const char *verb)
{
    int rc = 0, first_rc = 0, dirty = 0;
    size_t cursor = 0;
    int tried = 0;
    char reasons[BRINE_ERRMSG_MAX] = "";
    brine_h5_quiet quiet;

    brine_h5__quiet_begin(&quiet);
    for (;;) {
        int64_t step = -1;
        char file[4096], ranks[256], why[BRINE_ERRMSG_MAX + 128];
        int wrote = 0;
        if ((rc = brine_coll__next_candidate(b, &cursor, &step)))
            goto done;
        if (step < 0)
            break;
        tried++;
        int frc = brine_coll__check_rank_file(b, step, file, sizeof file);
        if (frc == 0)
            frc = attempt(b, file, step, arg, &wrote);
        dirty |= wrote;
        int agreed = 0;
        if ((rc = brine_coll__agree(b, frc, &agreed, ranks, sizeof ranks)))
            goto done;
        if (agreed == 0) {
            brine__error_clear(&b->err);
            goto done;
        }
        if (frc == 0 && undo)
            undo(arg);
        if (!first_rc)
            first_rc = agreed;
        if (frc)
            snprintf(why, sizeof why, "%s", b->err.msg);
        else
            snprintf(why, sizeof why, "%s-%012" PRId64 ": rank%s %s could not use it", b->prefix,
                     step, strchr(ranks, ',') ? "s" : "", ranks);
        append_reason(reasons, sizeof reasons, why);
        if (agreed == BRINE_ENOMEM)
            break;
    }
    if (!tried) {
        rc = brine__fail(&b->err, BRINE_ENOTFOUND,
                         "no checkpoint directory named %s-<step> in %s (rank 0 looked)", b->prefix,
                         b->dir);
        goto done;
    }
    rc = brine__fail(&b->err, first_rc, "no checkpoint in %s could be %s by every one of the %d ranks%s: %s",
                     b->dir, verb, b->coll->size,
                     dirty ? " (registered memory was partly overwritten)" : "", reasons);
done:
    brine_h5__quiet_end(&quiet);
    return rc;
}

static int newest_that_works(brine *b, attempt_fn attempt, void *arg, void (*undo)(void *),
                             const char *verb)
{
    if (b->coll)
        return newest_collective(b, attempt, arg, undo, verb);
    int rc = 0, first_rc = 0, dirty = 0;
    brine_ckpt_entry *list = NULL;
    size_t n = 0;
    brine_h5_quiet quiet;
    char reasons[BRINE_ERRMSG_MAX] = "";

    brine_h5__quiet_begin(&quiet);
    rc = brine_scan__list(&list, &n, b->io, b->alloc, b->dir, b->prefix, &b->err);
    if (rc)
        goto done;
    if (n == 0) {
        rc = brine__fail(&b->err, BRINE_ENOTFOUND, "no checkpoint named %s-<step>.h5 in %s",
                         b->prefix, b->dir);
        goto done;
    }
    for (size_t k = n; k-- > 0;) {
        char file[4096];
        int wrote = 0;
        snprintf(file, sizeof file, "%s/%s-%012" PRId64 ".h5", b->dir, b->prefix, list[k].step);
        int frc = attempt(b, file, list[k].step, arg, &wrote);
        if (frc == 0) {
            rc = 0;
            brine__error_clear(&b->err);
            goto done;
        }
        dirty |= wrote;
        if (!first_rc)
            first_rc = frc;
        append_reason(reasons, sizeof reasons, b->err.msg);
        /* Out of memory says nothing about the file; an older checkpoint must not win because of it. */
        if (frc == BRINE_ENOMEM)
            break;
    }
    rc = brine__fail(&b->err, first_rc, "no checkpoint in %s could be %s%s: %s", b->dir, verb,
                     dirty ? " (registered memory was partly overwritten)" : "", reasons);
done:
    brine_h5__quiet_end(&quiet);
    brine__free(b->alloc, list);
    return rc;
}

static int attempt_restore(brine *b, const char *file, int64_t file_step, void *arg, int *dirty)
{
    return restore_file(b, file, file_step, arg, dirty);
}

int brine_restore(brine *b, int64_t *step)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    /* No HDF5 calls while a save is in flight; its unreported failure comes first. */
    int rc = brine_async__settle(b, 0);
    if (rc)
        return rc;
    b->report[0] = '\0';
    rc = brine_registry__refresh(b);
    if (rc)
        return rc;
    int64_t got = 0;
    rc = newest_that_works(b, attempt_restore, &got, NULL, "restored");
    if (rc == 0 && step)
        *step = got;
    return rc;
}

const char *brine_restore_report(const brine *b)
{
    return b ? b->report : "";
}

static int attempt_open(brine *b, const char *file, int64_t file_step, void *arg, int *dirty)
{
    *dirty = 0;
    return brine_reader__open(arg, file, file_step, b->io, b->alloc, b->opts.threads,
                              BRINE_READER_VERIFY, &b->err);
}

/* Another rank could not open its file of the same checkpoint: this rank's reader goes. */
static void close_opened(void *arg)
{
    brine_reader **out = arg;
    brine_reader_close(*out);
    *out = NULL;
}

int brine_restore_begin(brine *b, brine_reader **out, int64_t *step)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if (!out)
        return brine__fail(&b->err, BRINE_EINVAL, "brine_restore_begin: out is NULL");
    *out = NULL;
    /* No HDF5 calls while a save is in flight; its unreported failure comes first. */
    int rc = brine_async__settle(b, 0);
    if (rc)
        return rc;
    rc = newest_that_works(b, attempt_open, out, close_opened, "opened");
    if (rc == 0 && step)
        *step = brine_reader_step(*out);
    return rc;
}
