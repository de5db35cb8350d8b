/*
 * brine_save_async and brine_wait: saves that the caller waits for only as
 * long as it takes to copy its state.
 *
 * brine_save_async copies every registered variable (in parallel, OpenMP
 * threads) into staging memory and the variable table and user metadata
 * into tables of its own, then hands that snapshot to the context's
 * background thread, which runs brine_save's pipeline (brine_save__write) on
 * it: same encoding, same file, same publication and rotation.
 *
 * One background thread per save, started by brine_save_async and joined
 * by the next call that settles the context (brine_wait, the next save,
 * a restore, brine_close).  A thread kept from one save to the next would
 * save a pthread_create and an OpenMP team start per save (well under a
 * millisecond), but it would also keep its OpenMP team alive between saves:
 * libgomp then manages more threads than there are CPUs and makes every
 * thread of the simulation's own team stop spinning at barriers almost at
 * once (its "throttled" spin count), which slowed heat2d by 20 to 30% for
 * the rest of the run (docs/performance.md, "Asynchronous saves").  A thread
 * that exits takes its team with it.
 *
 * Ownership: the snapshot (staging, tables), a->pending and a->err belong
 * to the thread from its creation until it clears a->busy (release), and to
 * the caller's thread once it has seen a->busy clear (acquire) or joined
 * the thread.  The thread never touches b but for the fields brine_open set
 * (brine_save__write's contract); its failure stays in a->err until a call
 * on the caller's thread reports it (brine_async__settle, __poll, __close).
 * All HDF5 calls of a save run on the thread; the caller's thread makes
 * none on b while a save is in flight, because every call that would first
 * settles.
 *
 * Staging memory: one buffer for the variables' bytes, each variable at a
 * 64-byte aligned offset, in registration order; a table of brine_var
 * pointing into it; a table of brine_attr_val whose names and strings live
 * in one more buffer.  All are allocated (through b->alloc) by the first
 * save and reused, grown only when the state outgrows them.
 */
#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "../common/alloc.h"
#include "../io/dir_scan.h" /* BRINE_MAX_STEP */
#include "async.h"
#include "coll.h"
#include "core.h"
#include "save.h"

/* Offsets of variables in the staging buffer are multiples of this (a cache line). */
#define STAGING_ALIGN 64
/* The parallel copy hands out the staging range in blocks of this size. */
#define COPY_BLOCK ((size_t)4 << 20)
/* Below this many bytes the copy stays on the calling thread: a thread team costs more. */
#define PARALLEL_COPY_MIN ((size_t)1 << 20)

typedef struct brine_async brine_async;

struct brine_async {
    const brine *b;          /* the context; the thread reads only what brine_open set */
    pthread_t thread;
    int joinable;            /* a thread was started and not joined yet */
    atomic_int busy;         /* 1 from the thread's creation until it is done with the snapshot */
    int64_t step;            /* the save's step */
    int threads;             /* its compression threads, resolved on the caller's thread */
    int pending;             /* the last save failed and no call has returned its error yet */
    brine_error err;         /* the last save's failure */

    /* In a group (docs/mpi.md): the thread only writes this rank's file into tmpdir; the
     * agreement and commit (brine_coll__finish) run on the caller's thread when it settles. */
    int commit_pending;      /* a collective save awaits its agreement */
    char tmpdir[4096];
    uint64_t size;           /* this rank's file, for the manifest */
    uint32_t crc;

    /* The snapshot. */
    unsigned char *staging;
    size_t staging_cap;
    brine_var *vars;         /* copies of b->vars, data pointing into staging */
    size_t nvars, vars_cap;
    brine_attr_val *attrs;   /* copies of b->attrs, name and s pointing into text */
    size_t nattrs, attrs_cap;
    char *text;
    size_t text_cap;
};

static size_t align_up(size_t n)
{
    return (n + (STAGING_ALIGN - 1)) & ~(size_t)(STAGING_ALIGN - 1);
}

/* Bytes of a variable's value as the snapshot holds it: a string's up to its NUL, included. */
static size_t value_bytes(const brine_var *v)
{
    return v->is_string ? strlen(v->data) + 1 : v->nbytes;
}

/* Staging bytes for b's variables into *out.  0, or -1 when the sum overflows. */
static int staging_bytes(const brine *b, size_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < b->nvars; i++) {
        const size_t n = value_bytes(&b->vars[i]);
        if (n > SIZE_MAX - STAGING_ALIGN || align_up(n) > SIZE_MAX - total)
            return -1;
        total += align_up(n);
    }
    *out = total;
    return 0;
}

/* Bytes of the attributes' names and strings, with their NULs, into *out.  0 or -1 on overflow. */
static int text_bytes(const brine *b, size_t *out)
{
    size_t total = 0;
    for (size_t k = 0; k < b->nattrs; k++) {
        const brine_attr_val *v = &b->attrs[k];
        const size_t n = strlen(v->name) + 1 + (v->type == BRINE_ATTR_STRING ? strlen(v->s) + 1 : 0);
        if (n > SIZE_MAX - total)
            return -1;
        total += n;
    }
    *out = total;
    return 0;
}

/*
 * Makes *p hold at least need bytes: keeps it when it does, else frees it
 * and allocates need plus an eighth (a growing state does not reallocate
 * every save), at most cap when cap is not 0.  Contents are not kept.
 */
static int reserve(const brine_allocator *al, void **p, size_t *have, size_t need, size_t cap)
{
    if (need <= *have)
        return 0;
    size_t want = need + need / 8 < need ? need : need + need / 8;
    if (cap && want > cap)
        want = cap > need ? cap : need;
    brine__free(al, *p);
    *p = NULL;
    *have = 0;
    if (!(*p = brine__alloc(al, want)))
        return -1;
    *have = want;
    return 0;
}

/* The background thread: one save, then it exits (with its OpenMP team). */
static void *thread_main(void *arg)
{
    brine_async *a = arg;
    const brine_save_state s = {a->vars, a->nvars, a->attrs, a->nattrs, a->threads};
    const int rc = a->commit_pending ? brine_save__write_rank(a->b, &s, a->step, a->tmpdir, &a->size,
                                                              &a->crc, &a->err)
                                     : brine_save__write(a->b, &s, a->step, &a->err);
    a->pending = rc != 0;
    atomic_store_explicit(&a->busy, 0, memory_order_release);
    return NULL;
}

/* Creates b->async.  0 or BRINE_ENOMEM. */
static int create(brine *b)
{
    brine_async *a = brine__calloc(b->alloc, 1, sizeof *a);
    if (!a)
        return brine__fail(&b->err, BRINE_ENOMEM, "brine_save_async: out of memory");
    a->b = b;
    atomic_init(&a->busy, 0);
    b->async = a;
    return 0;
}

/*
 * Hands the snapshot over: starts the thread of this save with every signal
 * blocked (handlers run on the program's threads).  0 or BRINE_ENOMEM.
 */
static int start_thread(brine *b, brine_async *a, int64_t step)
{
    sigset_t all, old;
    a->step = step;
    atomic_store_explicit(&a->busy, 1, memory_order_relaxed); /* pthread_create orders it */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int e = pthread_create(&a->thread, NULL, thread_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        atomic_store_explicit(&a->busy, 0, memory_order_relaxed);
        return brine__fail(&b->err, BRINE_ENOMEM,
                           "brine_save_async: cannot start the background thread: pthread_create "
                           "failed: %s",
                           strerror(e));
    }
    a->joinable = 1;
    return 0;
}

/*
 * Copies every variable's bytes into the staging slots a->vars point to.
 * The staging range is cut into blocks that OpenMP threads take in turn, so
 * a large array is copied by every thread and many small ones by few.
 */
static void copy_state(const brine *b, brine_async *a, size_t total)
{
    const size_t nblocks = (total + COPY_BLOCK - 1) / COPY_BLOCK;
    const unsigned char *const base = a->staging;
    const brine_var *const src = b->vars, *const dst = a->vars;
    const size_t n = a->nvars;
#pragma omp parallel for schedule(dynamic, 1) if (total >= PARALLEL_COPY_MIN)
    for (size_t k = 0; k < nblocks; k++) {
        const size_t lo = k * COPY_BLOCK;
        const size_t hi = total - lo < COPY_BLOCK ? total : lo + COPY_BLOCK;
        /* The first variable whose slot ends after lo: slots ascend in staging. */
        size_t i = 0, j = n;
        while (i < j) {
            const size_t m = i + (j - i) / 2;
            const size_t end = (size_t)((const unsigned char *)dst[m].data - base) + align_up(dst[m].nbytes);
            if (end <= lo)
                i = m + 1;
            else
                j = m;
        }
        for (; i < n; i++) {
            const size_t off = (size_t)((const unsigned char *)dst[i].data - base);
            if (off >= hi)
                break;
            const size_t from = lo > off ? lo - off : 0;
            const size_t to = hi - off < dst[i].nbytes ? hi - off : dst[i].nbytes;
            if (from < to)
                memcpy((unsigned char *)dst[i].data + from, (const unsigned char *)src[i].data + from,
                       to - from);
        }
    }
}

/* Copies the variable table (pointing into staging) and the user metadata. */
static void snapshot_tables(const brine *b, brine_async *a)
{
    size_t off = 0;
    for (size_t i = 0; i < b->nvars; i++) {
        brine_var *v = &a->vars[i];
        *v = b->vars[i];
        v->nbytes = value_bytes(&b->vars[i]);
        v->data = a->staging ? a->staging + off : NULL; /* NULL: every variable is empty */
        v->data_ref = NULL;
        v->shape_ref = NULL;
        off += align_up(v->nbytes);
    }
    a->nvars = b->nvars;
    char *t = a->text;
    for (size_t k = 0; k < b->nattrs; k++) {
        const brine_attr_val *from = &b->attrs[k];
        brine_attr_val *to = &a->attrs[k];
        *to = *from;
        size_t len = strlen(from->name) + 1;
        memcpy(t, from->name, len);
        to->name = t;
        t += len;
        if (from->type == BRINE_ATTR_STRING) {
            len = strlen(from->s) + 1;
            memcpy(t, from->s, len);
            to->s = t;
            t += len;
        }
    }
    a->nattrs = b->nattrs;
}

/*
 * Makes the staging memory and the snapshot's tables large enough for the
 * current state (bytes of variables, text bytes of metadata).  0, or -1
 * when an allocation failed (what was reserved stays, to be reused).
 */
static int reserve_snapshot(brine *b, brine_async *a, size_t bytes, size_t text)
{
    void *p = a->staging, *q = a->vars, *r = a->attrs, *t = a->text;
    size_t vars_have = a->vars_cap * sizeof *a->vars, attrs_have = a->attrs_cap * sizeof *a->attrs;
    const int failed = reserve(b->alloc, &p, &a->staging_cap, bytes, b->opts.staging_max) ||
                       reserve(b->alloc, &q, &vars_have, b->nvars * sizeof *a->vars, 0) ||
                       reserve(b->alloc, &r, &attrs_have, b->nattrs * sizeof *a->attrs, 0) ||
                       reserve(b->alloc, &t, &a->text_cap, text, 0);
    a->staging = p;
    a->vars = q;
    a->vars_cap = vars_have / sizeof *a->vars;
    a->attrs = r;
    a->attrs_cap = attrs_have / sizeof *a->attrs;
    a->text = t;
    return failed ? -1 : 0;
}

/* Copies the state into the reserved snapshot and starts the save's thread. */
static int snapshot_and_start(brine *b, brine_async *a, int64_t step, size_t bytes)
{
    snapshot_tables(b, a);
    copy_state(b, a, bytes);
    a->threads = b->opts.threads > 0 ? b->opts.threads : omp_get_max_threads();
    return start_thread(b, a, step);
}

/*
 * brine_save_async in a group: the same steps on every rank whatever
 * happens locally (a bad state, no staging memory, a state over
 * staging_max), so that the collectives stay in step: the temporary
 * directory is agreed now, this rank's file is written by the thread (or
 * here, when it cannot be), and the agreement waits for the next settle.
 * A rank's own bad state (check_rc) is reported there too, on every rank.
 */
static int save_async_group(brine *b, int64_t step, int check_rc)
{
    int rc = 0;
    size_t bytes = 0, text = 0;
    brine_error mine = b->err;
    if (!b->async && (rc = create(b)))
        abort(); /* a few hundred bytes: without them this rank cannot stay in step */
    brine_async *a = b->async;
    if ((rc = brine_coll__prepare(b, step, a->tmpdir, sizeof a->tmpdir)))
        return rc;
    a->step = step;
    a->commit_pending = 1;
    a->size = 0;
    a->crc = 0;
    if (check_rc) {
        /* Reported at the settle, with the agreement: every rank learns it at the same call. */
        a->err = mine;
        a->pending = 1;
        return 0;
    }
    brine_save__started(b);
    int sync = b->opts.staging_max && (staging_bytes(b, &bytes) || bytes > b->opts.staging_max);
    if (!sync && staging_bytes(b, &bytes) == 0 && text_bytes(b, &text) == 0) {
        sync = reserve_snapshot(b, a, bytes, text) || snapshot_and_start(b, a, step, bytes) != 0;
    } else {
        sync = 1;
    }
    if (sync) {
        /* Too large to copy, or no memory for the copy: this rank writes now, from the state. */
        const brine_save_state s = {b->vars, b->nvars, b->attrs, b->nattrs, b->opts.threads};
        a->pending = brine_save__write_rank(b, &s, step, a->tmpdir, &a->size, &a->crc, &a->err) != 0;
    }
    return 0;
}

int brine_save_async(brine *b, int64_t step)
{
    int rc = 0;
    size_t bytes = 0, text = 0;

    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    const int check_rc = brine_save__check(b, step, "brine_save_async");
    /* As brine_save: a rank's bad state goes to the agreement, a bad step is every rank's. */
    if (check_rc && (!b->coll || step < 0 || step > BRINE_MAX_STEP))
        return check_rc;
    if ((rc = brine_async__settle(b, (b->opts.async_flags & BRINE_ASYNC_NOWAIT) != 0)))
        return rc;
    if (b->coll)
        return save_async_group(b, step, check_rc);
    if (staging_bytes(b, &bytes) || text_bytes(b, &text))
        return brine__fail(&b->err, BRINE_ENOMEM,
                           "brine_save_async: the state's size overflows size_t");
    if (b->opts.staging_max && bytes > b->opts.staging_max) {
        /* Too large to copy: the caller waits for the whole save instead. */
        brine_save__started(b);
        const brine_save_state s = {b->vars, b->nvars, b->attrs, b->nattrs, b->opts.threads};
        return brine_save__write(b, &s, step, &b->err);
    }
    if (!b->async && (rc = create(b)))
        return rc;
    brine_async *a = b->async;
    if (reserve_snapshot(b, a, bytes, text))
        return brine__fail(&b->err, BRINE_ENOMEM,
                           "brine_save_async: out of memory for the staging memory of %zu bytes "
                           "(one copy of the state)",
                           bytes);

    brine_save__started(b);
    return snapshot_and_start(b, a, step, bytes);
}

int brine_wait(brine *b)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    return brine_async__settle(b, 0);
}

/* Reports the unreported failure into err; no save is in flight. */
static int take_failure(brine_async *a, brine_error *err)
{
    if (!a->pending)
        return 0;
    a->pending = 0;
    *err = a->err;
    return err->code;
}

/* Waits for the thread of the last save, if any, and joins it. */
static void join(brine_async *a)
{
    if (a->joinable) {
        pthread_join(a->thread, NULL);
        a->joinable = 0;
    }
}

/*
 * The collective half of a group's asynchronous save, once this rank's file
 * is written (the thread joined): agreement and commit on every rank.
 */
static void commit_group(brine *b, brine_async *a)
{
    if (!a->commit_pending)
        return;
    a->commit_pending = 0;
    const int local_rc = a->pending ? a->err.code : 0;
    a->pending = brine_coll__finish(b, a->step, a->tmpdir, local_rc, a->size, a->crc, &a->err) != 0;
}

int brine_async__settle(brine *b, int nowait)
{
    brine_async *a = b->async;
    if (!a)
        return 0;
    if (nowait && atomic_load_explicit(&a->busy, memory_order_acquire))
        return brine__fail(&b->err, BRINE_EBUSY,
                           "the asynchronous save of step %" PRId64 " is still in flight "
                           "(options.async_flags has BRINE_ASYNC_NOWAIT)",
                           a->step);
    join(a);
    commit_group(b, a);
    return take_failure(a, &b->err);
}

int brine_async__poll(brine *b)
{
    brine_async *a = b->async;
    /* A group's save is not over before its agreement, which only settling makes. */
    if (!a || a->commit_pending || atomic_load_explicit(&a->busy, memory_order_acquire))
        return 0;
    return take_failure(a, &b->err);
}

int brine_async__close(brine *b)
{
    brine_async *a = b->async;
    if (!a)
        return 0;
    join(a);
    commit_group(b, a);
    const int rc = take_failure(a, brine_context__open_error());
    brine__free(b->alloc, a->text);
    brine__free(b->alloc, a->attrs);
    brine__free(b->alloc, a->vars);
    brine__free(b->alloc, a->staging);
    brine__free(b->alloc, a);
    b->async = NULL;
    return rc;
}
