/*
 * Asynchronous saves (brine_save_async, brine_wait): the file is the one a
 * synchronous save of the same state writes; the state is the one of the
 * call, whatever the program does afterwards; background failures are
 * reported once, by the right call; BRINE_ASYNC_NOWAIT; staging memory is
 * allocated once and capped by staging_max; many saves in a row.
 *
 * The background is made slow or failing with I/O method tables the test
 * controls (a gate that holds pwrite until the test opens it), never with
 * timing guesses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "brine.h"
#include "test_util.h"

#define MIB ((size_t)1 << 20)

static void assert_bytes_equal(const void *a, const void *b, size_t n, const char *what)
{
    if (n && memcmp(a, b, n) != 0) {
        const unsigned char *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i])
            i++;
        print_error("%s: %zu bytes differ first at byte %zu: %02x != %02x\n", what, n, i, x[i],
                    y[i]);
        fail();
    }
}

static void assert_msg_has(const char *msg, const char *part)
{
    if (!msg || !strstr(msg, part)) {
        print_error("message \"%s\" does not contain \"%s\"\n", msg ? msg : "(null)", part);
        fail();
    }
}

static void fill_bytes(void *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    unsigned char *c = p;
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t r = tu_rand(&s);
        memcpy(c + i, &r, n - i < 8 ? n - i : 8);
    }
}

/* ------------------------------------------------------------------------ */
/* Comparing two checkpoint files: every object, attribute and stored chunk */
/* ------------------------------------------------------------------------ */

#define MAX_OBJS 256

typedef struct objlist {
    char name[MAX_OBJS][256];
    int n;
} objlist;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    objlist *l = data;
    if (l->n < MAX_OBJS)
        snprintf(l->name[l->n], sizeof l->name[0], "%s", name);
    l->n++;
    return 0;
}

static herr_t attr_name_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data)
{
    (void)obj;
    (void)info;
    return list_cb(obj, name, NULL, data);
}

/* The values of attribute name of a and b are equal (vlen strings by content); created is skipped. */
static void compare_attr(hid_t a, hid_t b, const char *name, const char *where)
{
    hid_t aa = H5Aopen(a, name, H5P_DEFAULT), ab = H5Aopen(b, name, H5P_DEFAULT);
    if (aa < 0 || ab < 0) {
        print_error("%s: attribute %s missing in one file\n", where, name);
        fail();
    }
    hid_t ta = H5Aget_type(aa), tb = H5Aget_type(ab);
    hid_t sa = H5Aget_space(aa), sb = H5Aget_space(ab);
    if (H5Tequal(ta, tb) <= 0) {
        print_error("%s: attribute %s has different types\n", where, name);
        fail();
    }
    const hssize_t n = H5Sget_simple_extent_npoints(sa);
    assert_int_equal(n, H5Sget_simple_extent_npoints(sb));
    if (H5Tis_variable_str(ta) > 0) {
        char **va = calloc((size_t)n + 1, sizeof *va), **vb = calloc((size_t)n + 1, sizeof *vb);
        assert_true(H5Aread(aa, ta, va) >= 0 && H5Aread(ab, tb, vb) >= 0);
        for (hssize_t i = 0; i < n; i++) {
            if (strcmp(name, "created") == 0) {
                assert_int_equal(strlen(va[i]), strlen("2024-01-01T00:00:00Z"));
                assert_int_equal(strlen(vb[i]), strlen("2024-01-01T00:00:00Z"));
            } else if (strcmp(va[i], vb[i]) != 0) {
                print_error("%s: attribute %s[%d]: \"%s\" != \"%s\"\n", where, name, (int)i, va[i],
                            vb[i]);
                fail();
            }
            H5free_memory(va[i]);
            H5free_memory(vb[i]);
        }
        free(va);
        free(vb);
    } else {
        const size_t bytes = (size_t)n * H5Tget_size(ta);
        void *va = malloc(bytes + 1), *vb = malloc(bytes + 1);
        assert_true(H5Aread(aa, ta, va) >= 0 && H5Aread(ab, tb, vb) >= 0);
        char what[512];
        snprintf(what, sizeof what, "%s: attribute %s", where, name);
        assert_bytes_equal(va, vb, bytes, what);
        free(va);
        free(vb);
    }
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Aclose(aa);
    H5Aclose(ab);
}

static void compare_attrs(hid_t a, hid_t b, const char *where)
{
    static objlist la, lb;
    la.n = lb.n = 0;
    hsize_t idx = 0;
    assert_true(H5Aiterate2(a, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name_cb, &la) >= 0);
    idx = 0;
    assert_true(H5Aiterate2(b, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name_cb, &lb) >= 0);
    if (la.n != lb.n) {
        print_error("%s: %d attributes against %d\n", where, la.n, lb.n);
        fail();
    }
    for (int i = 0; i < la.n; i++) {
        assert_string_equal(la.name[i], lb.name[i]);
        compare_attr(a, b, la.name[i], where);
    }
}

/* Type, shape, storage, filters, attributes and every stored chunk (as stored: compressed). */
static void compare_dataset(hid_t fa, hid_t fb, const char *path)
{
    hid_t da = H5Dopen2(fa, path, H5P_DEFAULT), db = H5Dopen2(fb, path, H5P_DEFAULT);
    assert_true(da >= 0 && db >= 0);
    hid_t ta = H5Dget_type(da), tb = H5Dget_type(db);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    hid_t pa = H5Dget_create_plist(da), pb = H5Dget_create_plist(db);
    if (H5Tequal(ta, tb) <= 0) {
        print_error("%s: types differ\n", path);
        fail();
    }
    hsize_t dima[8] = {0}, dimb[8] = {0};
    const int nd = H5Sget_simple_extent_dims(sa, dima, NULL);
    assert_int_equal(nd, H5Sget_simple_extent_dims(sb, dimb, NULL));
    assert_bytes_equal(dima, dimb, sizeof dima, path);
    compare_attrs(da, db, path);
    const H5D_layout_t layout = H5Pget_layout(pa);
    assert_int_equal(layout, H5Pget_layout(pb));
    assert_int_equal(H5Pget_nfilters(pa), H5Pget_nfilters(pb));
    for (int k = 0; k < H5Pget_nfilters(pa); k++) {
        unsigned fl, cva[8] = {0}, cvb[8] = {0};
        size_t nva = 8, nvb = 8;
        assert_int_equal(H5Pget_filter2(pa, (unsigned)k, &fl, &nva, cva, 0, NULL, NULL),
                         H5Pget_filter2(pb, (unsigned)k, &fl, &nvb, cvb, 0, NULL, NULL));
        assert_int_equal(nva, nvb);
        assert_bytes_equal(cva, cvb, sizeof cva, path);
    }
    if (layout == H5D_CHUNKED) {
        hsize_t ca[8] = {0}, cb[8] = {0};
        assert_int_equal(H5Pget_chunk(pa, 8, ca), H5Pget_chunk(pb, 8, cb));
        assert_bytes_equal(ca, cb, sizeof ca, path);
        hsize_t na = 0, nb = 0;
        assert_true(H5Dget_num_chunks(da, sa, &na) >= 0 && H5Dget_num_chunks(db, sb, &nb) >= 0);
        assert_int_equal(na, nb);
        for (hsize_t i = 0; i < na; i++) {
            hsize_t oa[8] = {0}, ob[8] = {0};
            unsigned ma = 0, mb = 0;
            haddr_t aa, ab;
            hsize_t za = 0, zb = 0;
            assert_true(H5Dget_chunk_info(da, sa, i, oa, &ma, &aa, &za) >= 0);
            assert_true(H5Dget_chunk_info(db, sb, i, ob, &mb, &ab, &zb) >= 0);
            assert_bytes_equal(oa, ob, sizeof oa, path);
            assert_int_equal(ma, mb);
            assert_int_equal(za, zb);
            unsigned char *ba = malloc(za + 1), *bb = malloc(zb + 1);
            uint32_t fa_mask = 0, fb_mask = 0;
            assert_true(H5Dread_chunk(da, H5P_DEFAULT, oa, &fa_mask, ba) >= 0);
            assert_true(H5Dread_chunk(db, H5P_DEFAULT, ob, &fb_mask, bb) >= 0);
            char what[512];
            snprintf(what, sizeof what, "%s chunk %llu", path, (unsigned long long)i);
            assert_bytes_equal(ba, bb, za, what);
            free(ba);
            free(bb);
        }
    } else {
        const hsize_t za = H5Dget_storage_size(da);
        assert_int_equal(za, H5Dget_storage_size(db));
        if (za) {
            const size_t n = (size_t)H5Sget_simple_extent_npoints(sa) * H5Tget_size(ta);
            unsigned char *ba = malloc(n), *bb = malloc(n);
            assert_true(H5Dread(da, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) >= 0);
            assert_true(H5Dread(db, tb, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) >= 0);
            assert_bytes_equal(ba, bb, n, path);
            free(ba);
            free(bb);
        }
    }
    H5Pclose(pa);
    H5Pclose(pb);
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Dclose(da);
    H5Dclose(db);
}

/*
 * The checkpoints of step in dirs a and b hold the same objects, attributes
 * (but created) and stored bytes: the pickle stream and every chunk.
 */
static void compare_checkpoints(const char *dir_a, const char *dir_b, int64_t step)
{
    char pa[1024], pb[1024];
    tu_ckpt_path(pa, sizeof pa, dir_a, "ckpt", step);
    tu_ckpt_path(pb, sizeof pb, dir_b, "ckpt", step);
    hid_t fa = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fa < 0 || fb < 0) {
        print_error("cannot open %s or %s\n", pa, pb);
        fail();
    }
    static objlist la, lb;
    la.n = lb.n = 0;
    assert_true(H5Lvisit(fa, H5_INDEX_NAME, H5_ITER_INC, list_cb, &la) >= 0);
    assert_true(H5Lvisit(fb, H5_INDEX_NAME, H5_ITER_INC, list_cb, &lb) >= 0);
    assert_int_equal(la.n, lb.n);
    assert_true(la.n < MAX_OBJS);
    compare_attrs(fa, fb, "/");
    int datasets = 0;
    for (int i = 0; i < la.n; i++) {
        assert_string_equal(la.name[i], lb.name[i]);
        hid_t o = H5Oopen(fa, la.name[i], H5P_DEFAULT);
        const H5I_type_t t = H5Iget_type(o);
        H5Oclose(o);
        if (t == H5I_DATASET) {
            compare_dataset(fa, fb, la.name[i]);
            datasets++;
        }
    }
    assert_true(datasets >= 1); /* /brine/pickle at least */
    H5Fclose(fa);
    H5Fclose(fb);
}

/* ------------------------------------------------------------------------ */
/* An I/O method table the test controls                                    */
/* ------------------------------------------------------------------------ */

typedef struct ctl_io {
    const brine_io_methods *base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_closed;  /* pwrite waits while it is set */
    int held;         /* pwrites waiting at the gate */
    atomic_int fail_pwrite; /* pwrite returns -ENOSPC while set */
    atomic_int fail_rename; /* rename returns -EIO while set */
} ctl_io;

static ctl_io *ctl(void *ctx)
{
    return ctx;
}

static int64_t ctl_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    ctl_io *c = ctl(ctx);
    pthread_mutex_lock(&c->mu);
    c->held++;
    pthread_cond_broadcast(&c->cv);
    while (c->gate_closed)
        pthread_cond_wait(&c->cv, &c->mu);
    c->held--;
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->fail_pwrite))
        return -ENOSPC;
    return c->base->pwrite(c->base->ctx, fd, buf, n, off);
}

static int ctl_rename(void *ctx, const char *from, const char *to)
{
    ctl_io *c = ctl(ctx);
    if (atomic_load(&c->fail_rename))
        return -EIO;
    return c->base->rename(c->base->ctx, from, to);
}

#define PASS(name, ret, params, args)                                                        \
    static ret ctl_##name params                                                             \
    {                                                                                        \
        ctl_io *c = ctl(ctx);                                                                \
        return c->base->name args;                                                           \
    }
PASS(open, int, (void *ctx, const char *p, int f, unsigned m), (c->base->ctx, p, f, m))
PASS(close, int, (void *ctx, int fd), (c->base->ctx, fd))
PASS(pread, int64_t, (void *ctx, int fd, void *buf, size_t n, uint64_t off),
     (c->base->ctx, fd, buf, n, off))
PASS(fsync, int, (void *ctx, int fd), (c->base->ctx, fd))
PASS(ftruncate, int, (void *ctx, int fd, uint64_t n), (c->base->ctx, fd, n))
PASS(fsize, int, (void *ctx, int fd, uint64_t *o), (c->base->ctx, fd, o))
PASS(unlink, int, (void *ctx, const char *p), (c->base->ctx, p))
PASS(mkdir, int, (void *ctx, const char *p, unsigned m), (c->base->ctx, p, m))
PASS(fsync_dir, int, (void *ctx, const char *p), (c->base->ctx, p))
PASS(list_dir, int, (void *ctx, const char *p, int (*each)(void *, const char *), void *arg),
     (c->base->ctx, p, each, arg))
#undef PASS

static void ctl_init(ctl_io *c, brine_io_methods *m)
{
    memset(c, 0, sizeof *c);
    c->base = brine_io_posix();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->fail_pwrite, 0);
    atomic_init(&c->fail_rename, 0);
    const brine_io_methods t = {BRINE_IO_METHODS_VERSION, c, ctl_open, ctl_close, ctl_pread,
                                ctl_pwrite, ctl_fsync, ctl_ftruncate, ctl_fsize, ctl_rename,
                                ctl_unlink, ctl_mkdir, ctl_fsync_dir, ctl_list_dir};
    *m = t;
}

static void ctl_destroy(ctl_io *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void gate_close(ctl_io *c)
{
    pthread_mutex_lock(&c->mu);
    c->gate_closed = 1;
    pthread_mutex_unlock(&c->mu);
}

/* Returns once a pwrite (the background save's) is held at the gate. */
static void gate_wait_held(ctl_io *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->held == 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void gate_open(ctl_io *c)
{
    pthread_mutex_lock(&c->mu);
    c->gate_closed = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------------ */
/* A state of every kind of variable                                        */
/* ------------------------------------------------------------------------ */

typedef struct big_state {
    void *arr[BRINE_DTYPE_COUNT]; /* one 2-D array per dtype */
    size_t shape[BRINE_DTYPE_COUNT][2];
    unsigned char scal[BRINE_DTYPE_COUNT][16]; /* one scalar per dtype */
    double *fort;                 /* Fortran order, several chunks */
    size_t fort_shape[2];
    double *rs;                   /* resizable */
    size_t rs_shape[2];
    float empty[1];               /* an empty array */
    char name[64];
    char note[32];                /* a string with spare capacity */
} big_state;

static void state_fill(big_state *s, uint64_t seed)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        const size_t es = brine_dtype_size((brine_dtype)d);
        s->shape[d][0] = 37 + (size_t)d;
        s->shape[d][1] = 101;
        const size_t n = s->shape[d][0] * s->shape[d][1] * es;
        if (!s->arr[d]) /* registered arrays keep their address: filled in place */
            s->arr[d] = malloc(n);
        fill_bytes(s->arr[d], n, seed + (uint64_t)d);
        fill_bytes(s->scal[d], sizeof s->scal[d], seed * 31 + (uint64_t)d);
        if (d == BRINE_BOOL) {
            for (size_t i = 0; i < n; i++)
                ((unsigned char *)s->arr[d])[i] &= 1;
            s->scal[d][0] &= 1;
        }
        /* float scalars travel as Python floats: keep them plain numbers */
        if (d == BRINE_F32 || d == BRINE_C64) {
            const float v[2] = {(float)seed + 0.25f, -(float)seed};
            memcpy(s->scal[d], v, sizeof v);
        }
        if (d == BRINE_F64 || d == BRINE_C128) {
            const double v[2] = {(double)seed + 0.125, -(double)seed * 3};
            memcpy(s->scal[d], v, sizeof v);
        }
    }
    s->fort_shape[0] = 700;
    s->fort_shape[1] = 300; /* 1.6 MiB: two chunks */
    const size_t nf = s->fort_shape[0] * s->fort_shape[1];
    if (!s->fort)
        s->fort = malloc(nf * sizeof *s->fort);
    for (size_t i = 0; i < nf; i++)
        s->fort[i] = (double)seed + (double)i * 1e-3;
    s->rs_shape[0] = 50 + (size_t)(seed % 7);
    s->rs_shape[1] = 3;
    s->rs = realloc(s->rs, s->rs_shape[0] * 3 * sizeof *s->rs);
    for (size_t i = 0; i < s->rs_shape[0] * 3; i++)
        s->rs[i] = (double)seed * 100.0 + (double)i;
    snprintf(s->name, sizeof s->name, "run-%llu \xc3\xa9t\xc3\xa9", (unsigned long long)seed);
    snprintf(s->note, sizeof s->note, "note %llu", (unsigned long long)seed);
}

static void state_free(big_state *s)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++)
        free(s->arr[d]);
    free(s->fort);
    free(s->rs);
    memset(s, 0, sizeof *s);
}

static const char *const dt_tag[BRINE_DTYPE_COUNT] = {"bool", "i8",  "i16", "i32", "i64",
                                                       "u8",   "u16", "u32", "u64", "f32",
                                                       "f64",  "c64", "c128"};

static void state_register(brine *b, big_state *s)
{
    char name[64];
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        snprintf(name, sizeof name, "arrays/%s", dt_tag[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, s->arr[d], 2, s->shape[d], 0));
        snprintf(name, sizeof name, "scalars/%s", dt_tag[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, s->scal[d], 0, NULL, 0));
    }
    OK(b, brine_register(b, "fortran", BRINE_F64, s->fort, 2, s->fort_shape, BRINE_FORTRAN_ORDER));
    OK(b, brine_register_resizable(b, "particles", BRINE_F64, (void **)&s->rs, 2, s->rs_shape, 0,
                                   NULL, NULL));
    const size_t zero[2] = {0, 4};
    OK(b, brine_register(b, "empty", BRINE_F32, s->empty, 2, zero, 0));
    OK(b, brine_register_string(b, "meta/name", s->name, sizeof s->name));
    OK(b, brine_register_string(b, "meta/note", s->note, sizeof s->note));
}

static void state_attrs(brine *b, uint64_t seed)
{
    char v[64];
    OK(b, brine_set_attr_int(b, "seed", (int64_t)seed));
    OK(b, brine_set_attr_double(b, "sim_time", (double)seed * 0.5));
    snprintf(v, sizeof v, "v%llu", (unsigned long long)seed);
    OK(b, brine_set_attr_string(b, "version", v));
    OK(b, brine_set_attr_string(b, "empty", ""));
}

/* The state in s equals the state in want (after a restore into s). */
static void state_expect(const big_state *s, const big_state *want)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        const size_t n = want->shape[d][0] * want->shape[d][1] * brine_dtype_size((brine_dtype)d);
        assert_bytes_equal(s->arr[d], want->arr[d], n, dt_tag[d]);
        assert_bytes_equal(s->scal[d], want->scal[d], brine_dtype_size((brine_dtype)d), dt_tag[d]);
    }
    assert_bytes_equal(s->fort, want->fort, want->fort_shape[0] * want->fort_shape[1] * 8, "fortran");
    assert_int_equal(s->rs_shape[0], want->rs_shape[0]);
    assert_bytes_equal(s->rs, want->rs, want->rs_shape[0] * 3 * 8, "particles");
    assert_string_equal(s->name, want->name);
    assert_string_equal(s->note, want->note);
}

/* A deep copy of s (the expected state). */
static void state_copy(big_state *to, const big_state *s)
{
    memset(to, 0, sizeof *to);
    *to = *s;
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        const size_t n = s->shape[d][0] * s->shape[d][1] * brine_dtype_size((brine_dtype)d);
        to->arr[d] = malloc(n);
        memcpy(to->arr[d], s->arr[d], n);
    }
    const size_t nf = s->fort_shape[0] * s->fort_shape[1] * 8;
    to->fort = malloc(nf);
    memcpy(to->fort, s->fort, nf);
    to->rs = malloc(s->rs_shape[0] * 24);
    memcpy(to->rs, s->rs, s->rs_shape[0] * 24);
}

/* Restores the newest checkpoint of dir into a fresh state and checks it against want. */
static void restore_and_expect(const char *dir, int64_t want_step, const big_state *want)
{
    big_state r = {0};
    state_fill(&r, 999); /* every value differs from want's */
    brine *b = tu_open(dir, NULL);
    state_register(b, &r);
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, want_step);
    state_expect(&r, want);
    assert_int_equal(brine_close(b), 0);
    state_free(&r);
}

/* The root attribute name of dir's checkpoint of step, as an int / string. */
static void expect_attrs(const char *dir, int64_t step, int64_t seed)
{
    char path[1024], v[64];
    tu_ckpt_path(path, sizeof path, dir, "ckpt", step);
    brine_reader *r = NULL;
    assert_int_equal(brine_reader_open(&r, path, NULL, 0), 0);
    brine_attr a;
    assert_int_equal(brine_find_attr(r, "seed", &a), 0);
    assert_int_equal(a.i, seed);
    assert_int_equal(brine_find_attr(r, "sim_time", &a), 0);
    assert_true(a.d == (double)seed * 0.5);
    assert_int_equal(brine_find_attr(r, "version", &a), 0);
    snprintf(v, sizeof v, "v%lld", (long long)seed);
    assert_string_equal(a.s, v);
    brine_reader_close(r);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_wait_without_save(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    assert_int_equal(brine_wait(NULL), BRINE_EINVAL);
    assert_int_equal(brine_save_async(NULL, 1), BRINE_EINVAL);
    brine *b = tu_open(dir, NULL);
    OK(b, brine_wait(b));
    double x = 1;
    OK(b, brine_register(b, "x", BRINE_F64, &x, 0, NULL, 0));
    /* arguments are checked before anything starts, as brine_save checks them */
    EXPECT_RC(b, BRINE_EINVAL, brine_save_async(b, -1));
    assert_msg_has(brine_errmsg(b), "brine_save_async");
    char s[4] = {'a', 'b', 'c', 'd'}; /* no NUL */
    OK(b, brine_register_string(b, "s", s, sizeof s));
    EXPECT_RC(b, BRINE_EINVAL, brine_save_async(b, 1));
    assert_msg_has(brine_errmsg(b), "'s'");
    s[3] = '\0';
    s[0] = (char)0xff; /* not UTF-8 */
    EXPECT_RC(b, BRINE_EINVAL, brine_save_async(b, 1));
    s[0] = 'a';
    double *p = NULL;
    size_t shape[1] = {3};
    OK(b, brine_register_resizable(b, "r", BRINE_F64, (void **)&p, 1, shape, 0, NULL, NULL));
    EXPECT_RC(b, BRINE_EINVAL, brine_save_async(b, 1));
    assert_msg_has(brine_errmsg(b), "'r'");
    shape[0] = 0;
    OK(b, brine_save_async(b, 1));
    OK(b, brine_wait(b));
    OK(b, brine_wait(b));
    assert_true(tu_ckpt_exists(dir, "ckpt", 1));
    assert_int_equal(brine_close(b), 0);
    tu_rmtree(dir);
}

/*
 * The codecs whose output depends only on the data.  ISA-L is left out of the
 * byte comparisons: with two threads it has been seen to compress a chunk to
 * different (valid) streams from one save to the next even in one process,
 * synchronous saves included (docs/performance.md, "Determinism").
 */
static const brine_codec exact_codecs[] = {BRINE_CODEC_ZLIB, BRINE_CODEC_LIBDEFLATE, BRINE_CODEC_NONE};

/* An asynchronous save writes what a synchronous save of the same state writes. */
static void same_bytes_as_sync(brine_codec codec)
{
    const char *dir_sync = tu_tmpdir(), *dir_async = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.codec = codec;
    big_state s = {0};
    state_fill(&s, 5);
    brine *bs = tu_open(dir_sync, &o), *ba = tu_open(dir_async, &o);
    state_register(bs, &s);
    state_register(ba, &s);
    state_attrs(bs, 5);
    state_attrs(ba, 5);
    OK(bs, brine_save(bs, 42));
    OK(ba, brine_save_async(ba, 42));
    OK(ba, brine_wait(ba));
    if (codec != BRINE_CODEC_ISAL)
        compare_checkpoints(dir_sync, dir_async, 42);
    restore_and_expect(dir_async, 42, &s);
    expect_attrs(dir_async, 42, 5);

    /* again once the staging memory exists, with a grown resizable array and new values */
    state_fill(&s, 6);
    s.rs_shape[0] = 4000;
    s.rs = realloc(s.rs, s.rs_shape[0] * 24);
    for (size_t i = 0; i < s.rs_shape[0] * 3; i++)
        s.rs[i] = -(double)i;
    state_attrs(bs, 6);
    state_attrs(ba, 6);
    OK(ba, brine_save_async(ba, 43));
    OK(bs, brine_save(bs, 43));
    OK(ba, brine_wait(ba));
    if (codec != BRINE_CODEC_ISAL)
        compare_checkpoints(dir_sync, dir_async, 43);
    restore_and_expect(dir_async, 43, &s);
    expect_attrs(dir_async, 43, 6);
    assert_int_equal(brine_close(bs), 0);
    assert_int_equal(brine_close(ba), 0);
    state_free(&s);
    tu_rmtree(dir_sync);
    tu_rmtree(dir_async);
}

static void test_same_bytes_as_sync(void **state)
{
    (void)state;
    int compared = 0;
    for (size_t k = 0; k < sizeof exact_codecs / sizeof exact_codecs[0]; k++) {
        if (brine_codec_available(exact_codecs[k])) {
            same_bytes_as_sync(exact_codecs[k]);
            compared++;
        }
    }
    assert_true(compared >= 2); /* zlib and none are always built in */
    if (brine_codec_available(BRINE_CODEC_ISAL))
        same_bytes_as_sync(BRINE_CODEC_ISAL); /* the values only */
}

/*
 * The program changes everything as soon as brine_save_async returns, while
 * the background save is held at the gate: the checkpoint has the values of
 * the call.  The old memory of the resizable array is freed and the old
 * attribute strings too: a background save reading them would be caught by
 * AddressSanitizer, and would write the wrong values anyway.
 */
static void test_changes_after_return(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir(), *dir_sync = tu_tmpdir();
    ctl_io c;
    brine_io_methods m;
    ctl_init(&c, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.codec = BRINE_CODEC_ZLIB; /* byte comparisons need an exact codec (exact_codecs) */
    big_state s = {0}, want;
    state_fill(&s, 11);
    brine *b = tu_open(dir, &o);
    state_register(b, &s);
    state_attrs(b, 11);
    state_copy(&want, &s);

    gate_close(&c);
    OK(b, brine_save_async(b, 7));
    gate_wait_held(&c); /* the background save is writing the file now */
    /* change every value, the size of the resizable array, and the metadata */
    state_fill(&s, 12);
    double *old = s.rs;
    s.rs = malloc(9000 * 24);
    free(old);
    s.rs_shape[0] = 9000;
    for (size_t i = 0; i < 9000 * 3; i++)
        s.rs[i] = 1.0 / (double)(i + 1);
    memset(s.name, 'x', sizeof s.name - 1);
    state_attrs(b, 12);
    OK(b, brine_set_attr_string(b, "added", "after the call"));
    gate_open(&c);
    OK(b, brine_wait(b));
    restore_and_expect(dir, 7, &want);
    expect_attrs(dir, 7, 11);

    /* and the file is the one a synchronous save of the state of the call writes */
    o.io = NULL;
    brine *bs = tu_open(dir_sync, &o);
    state_register(bs, &want);
    state_attrs(bs, 11);
    OK(bs, brine_save(bs, 7));
    compare_checkpoints(dir_sync, dir, 7);
    assert_int_equal(brine_close(bs), 0);
    assert_int_equal(brine_close(b), 0);
    ctl_destroy(&c);
    state_free(&s);
    state_free(&want);
    tu_rmtree(dir);
    tu_rmtree(dir_sync);
}

static void expect_only_checkpoints(const char *dir, int n)
{
    /* temporary files start with '.' */
    assert_int_equal(tu_count_entries(dir, "."), 0);
    assert_int_equal(tu_count_entries(dir, ""), n);
}

static void test_background_failure(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    ctl_io c;
    brine_io_methods m;
    ctl_init(&c, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.keep_last = 0;
    double a[1000];
    fill_bytes(a, sizeof a, 1);
    const size_t shape[1] = {1000};
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, shape, 0));
    OK(b, brine_save(b, 1));
    char p1[1024];
    tu_ckpt_path(p1, sizeof p1, dir, "ckpt", 1);
    size_t len1 = 0, len = 0;
    uint8_t *before = tu_read_file(p1, &len1);
    assert_non_null(before);
    char want[1200];
    snprintf(want, sizeof want, "saving step 2 to %s: ", dir);

    /* brine_wait returns it, with the whole message, once */
    atomic_store(&c.fail_pwrite, 1);
    OK(b, brine_save_async(b, 2));
    EXPECT_RC(b, BRINE_ENOSPC, brine_wait(b));
    assert_true(strncmp(brine_errmsg(b), want, strlen(want)) == 0);
    assert_msg_has(brine_errmsg(b), "pwrite of ");
    assert_msg_has(brine_errmsg(b), strerror(ENOSPC));
    OK(b, brine_wait(b));
    assert_string_equal(brine_errmsg(b), "");
    atomic_store(&c.fail_pwrite, 0);
    expect_only_checkpoints(dir, 1);
    uint8_t *after = tu_read_file(p1, &len);
    assert_non_null(after);
    assert_int_equal(len, len1);
    assert_bytes_equal(before, after, len, "the earlier checkpoint");
    free(after);

    /* not waited for: the next brine_save returns it without saving, once; then saves */
    atomic_store(&c.fail_pwrite, 1);
    OK(b, brine_save_async(b, 3));
    EXPECT_RC(b, BRINE_ENOSPC, brine_save(b, 4));
    assert_msg_has(brine_errmsg(b), "saving step 3 to ");
    atomic_store(&c.fail_pwrite, 0);
    assert_false(tu_ckpt_exists(dir, "ckpt", 4));
    expect_only_checkpoints(dir, 1);
    OK(b, brine_save(b, 4));
    assert_true(tu_ckpt_exists(dir, "ckpt", 4));

    /* ... the next brine_save_async, likewise */
    atomic_store(&c.fail_rename, 1);
    OK(b, brine_save_async(b, 5));
    EXPECT_RC(b, BRINE_EIO, brine_save_async(b, 6));
    assert_msg_has(brine_errmsg(b), "saving step 5 to ");
    assert_msg_has(brine_errmsg(b), "rename");
    atomic_store(&c.fail_rename, 0);
    expect_only_checkpoints(dir, 2);
    OK(b, brine_save_async(b, 6));
    OK(b, brine_wait(b));
    assert_true(tu_ckpt_exists(dir, "ckpt", 6));

    /* ... brine_restore and brine_restore_begin, likewise */
    atomic_store(&c.fail_pwrite, 1);
    OK(b, brine_save_async(b, 7));
    int64_t step = 0;
    EXPECT_RC(b, BRINE_ENOSPC, brine_restore(b, &step));
    assert_msg_has(brine_errmsg(b), "saving step 7 to ");
    atomic_store(&c.fail_pwrite, 0);
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 6);
    atomic_store(&c.fail_pwrite, 1);
    OK(b, brine_save_async(b, 8));
    brine_reader *r = NULL;
    EXPECT_RC(b, BRINE_ENOSPC, brine_restore_begin(b, &r, &step));
    assert_null(r);
    assert_msg_has(brine_errmsg(b), "saving step 8 to ");
    atomic_store(&c.fail_pwrite, 0);
    OK(b, brine_restore_begin(b, &r, &step));
    assert_int_equal(step, 6);
    brine_reader_close(r);
    expect_only_checkpoints(dir, 3);

    /* never reported: brine_close returns it, its message in brine_open_errmsg() */
    atomic_store(&c.fail_pwrite, 1);
    OK(b, brine_save_async(b, 9));
    assert_int_equal(brine_close(b), BRINE_ENOSPC);
    assert_msg_has(brine_open_errmsg(), "saving step 9 to ");
    assert_msg_has(brine_open_errmsg(), strerror(ENOSPC));
    expect_only_checkpoints(dir, 3);
    after = tu_read_file(p1, &len);
    assert_non_null(after);
    assert_bytes_equal(before, after, len, "the earlier checkpoint");
    free(after);
    free(before);
    ctl_destroy(&c);
    tu_rmtree(dir);
}

/* BRINE_ASYNC_NOWAIT: a call that would wait returns BRINE_EBUSY instead. */
static void test_nowait_busy(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    ctl_io c;
    brine_io_methods m;
    ctl_init(&c, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.async_flags = BRINE_ASYNC_NOWAIT;
    int64_t x = 1;
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "x", BRINE_I64, &x, 0, NULL, 0));
    gate_close(&c);
    OK(b, brine_save_async(b, 1));
    gate_wait_held(&c);
    x = 2;
    EXPECT_RC(b, BRINE_EBUSY, brine_save_async(b, 2));
    assert_msg_has(brine_errmsg(b), "step 1");
    EXPECT_RC(b, BRINE_EBUSY, brine_save(b, 2));
    assert_false(tu_ckpt_exists(dir, "ckpt", 1));
    gate_open(&c);
    OK(b, brine_wait(b));
    assert_true(tu_ckpt_exists(dir, "ckpt", 1));
    OK(b, brine_save_async(b, 2));
    OK(b, brine_wait(b));
    x = 0;
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 2);
    assert_int_equal(x, 2);
    assert_int_equal(brine_close(b), 0);
    ctl_destroy(&c);
    tu_rmtree(dir);
}

/* brine_close waits for the save in flight: the checkpoint is there after it. */
static void test_close_waits(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    big_state s = {0};
    state_fill(&s, 21);
    brine *b = tu_open(dir, NULL);
    state_register(b, &s);
    OK(b, brine_save_async(b, 3));
    assert_int_equal(brine_close(b), 0);
    assert_true(tu_ckpt_exists(dir, "ckpt", 3));
    expect_only_checkpoints(dir, 1);
    restore_and_expect(dir, 3, &s);
    state_free(&s);
    tu_rmtree(dir);
}

/* ---- staging memory: counted through the allocator hook ---- */

typedef struct counting {
    pthread_t caller;
    atomic_long allocs, frees, caller_allocs, big_allocs;
    size_t big; /* allocations of at least this many bytes count as big */
} counting;

#define HDR 16

static void *count_alloc(void *ctx, size_t size)
{
    counting *c = ctx;
    unsigned char *p = malloc(size + HDR);
    if (!p)
        return NULL;
    atomic_fetch_add(&c->allocs, 1);
    if (pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->caller_allocs, 1);
    if (size >= c->big)
        atomic_fetch_add(&c->big_allocs, 1);
    return p + HDR;
}

static void count_free(void *ctx, void *ptr)
{
    counting *c = ctx;
    atomic_fetch_add(&c->frees, 1);
    free((unsigned char *)ptr - HDR);
}

static void test_staging_reuse(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    counting c;
    c.caller = pthread_self();
    atomic_init(&c.allocs, 0);
    atomic_init(&c.frees, 0);
    atomic_init(&c.caller_allocs, 0);
    atomic_init(&c.big_allocs, 0);
    const size_t n = 3 * MIB; /* 24 MiB of float64 */
    c.big = 20 * MIB;
    const brine_allocator al = {count_alloc, count_free, &c};
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = &al;
    o.threads = 2;
    o.keep_last = 2;
    double *a = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        a[i] = (double)i;
    double *r = NULL;
    size_t rshape[1] = {1000};
    r = malloc(rshape[0] * 8);
    fill_bytes(r, rshape[0] * 8, 3);
    int64_t it = 0;
    char tag[16] = "tag";
    const size_t shape[1] = {n};
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, shape, 0));
    OK(b, brine_register_resizable(b, "r", BRINE_F64, (void **)&r, 1, rshape, 0, NULL, NULL));
    OK(b, brine_register(b, "it", BRINE_I64, &it, 0, NULL, 0));
    OK(b, brine_register_string(b, "tag", tag, sizeof tag));
    OK(b, brine_set_attr_string(b, "what", "staging"));

    /* the first asynchronous save allocates the staging memory (one big allocation) */
    OK(b, brine_save_async(b, 1));
    OK(b, brine_wait(b));
    assert_int_equal(atomic_load(&c.big_allocs), 1);
    for (int64_t step = 2; step <= 5; step++) {
        it = step;
        a[0] = (double)step;
        const long before = atomic_load(&c.caller_allocs);
        OK(b, brine_save_async(b, step));
        if (atomic_load(&c.caller_allocs) != before) {
            print_error("save %lld: brine_save_async allocated %ld times\n", (long long)step,
                        atomic_load(&c.caller_allocs) - before);
            fail();
        }
        OK(b, brine_wait(b));
        assert_int_equal(atomic_load(&c.big_allocs), 1);
    }
    /* the state grows: the staging memory once more, then reused again */
    rshape[0] = MIB / 2;
    r = realloc(r, rshape[0] * 8);
    fill_bytes(r, rshape[0] * 8, 4);
    OK(b, brine_save_async(b, 6));
    OK(b, brine_wait(b));
    assert_int_equal(atomic_load(&c.big_allocs), 2);
    const long before = atomic_load(&c.caller_allocs);
    OK(b, brine_save_async(b, 7));
    OK(b, brine_wait(b));
    assert_int_equal(atomic_load(&c.caller_allocs), before);
    assert_int_equal(atomic_load(&c.big_allocs), 2);
    it = 0;
    a[0] = -1;
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 7);
    assert_int_equal(it, 5);
    assert_true(a[0] == 5.0 && a[n - 1] == (double)(n - 1));
    assert_int_equal(brine_close(b), 0);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    free(a);
    free(r);
    tu_rmtree(dir);
}

/* A state larger than staging_max is saved synchronously by brine_save_async. */
static void test_staging_max(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    ctl_io c;
    brine_io_methods m;
    ctl_init(&c, &m);
    counting cnt;
    cnt.caller = pthread_self();
    atomic_init(&cnt.allocs, 0);
    atomic_init(&cnt.frees, 0);
    atomic_init(&cnt.caller_allocs, 0);
    atomic_init(&cnt.big_allocs, 0);
    cnt.big = 7 * MIB + MIB / 2; /* more than one save's chunk buffers on 1 thread */
    const brine_allocator al = {count_alloc, count_free, &cnt};
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = &al;
    o.io = &m;
    o.staging_max = 1 * MIB;
    o.threads = 1;
    const size_t n = MIB; /* 8 MiB */
    double *a = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        a[i] = (double)i * 0.5;
    const size_t shape[1] = {n};
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, shape, 0));
    /* the save is over when the call returns, without staging memory; so a failure is its own */
    OK(b, brine_save_async(b, 1));
    assert_string_equal(brine_errmsg(b), "");
    assert_true(tu_ckpt_exists(dir, "ckpt", 1));
    assert_int_equal(atomic_load(&cnt.big_allocs), 0);
    atomic_store(&c.fail_pwrite, 1);
    EXPECT_RC(b, BRINE_ENOSPC, brine_save_async(b, 2));
    assert_msg_has(brine_errmsg(b), "saving step 2 to ");
    atomic_store(&c.fail_pwrite, 0);
    OK(b, brine_wait(b)); /* reported already */
    a[5] = 1234.5;
    OK(b, brine_save_async(b, 3));
    a[5] = 0;
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    assert_true(a[5] == 1234.5 && a[n - 1] == (double)(n - 1) * 0.5);
    assert_int_equal(brine_close(b), 0);
    assert_int_equal(atomic_load(&cnt.allocs), atomic_load(&cnt.frees));
    free(a);
    ctl_destroy(&c);
    tu_rmtree(dir);
}

/* Fifty saves in a row, each started while the previous may be in flight, keep_last 3. */
static void test_many_saves(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 3;
    const size_t n = 200 * 1000;
    double *f = malloc(n * 8);
    int32_t *g = malloc(n * 4);
    int64_t it = 0;
    const size_t shape[1] = {n};
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "f", BRINE_F64, f, 1, shape, 0));
    OK(b, brine_register(b, "g", BRINE_I32, g, 1, shape, 0));
    OK(b, brine_register(b, "it", BRINE_I64, &it, 0, NULL, 0));
    for (int64_t step = 1; step <= 50; step++) {
        it = step;
        for (size_t i = 0; i < n; i++) {
            f[i] = (double)step + (double)i * 1e-6;
            g[i] = (int32_t)(step * 7 + (int64_t)i);
        }
        OK(b, brine_set_attr_int(b, "step_attr", step));
        OK(b, brine_save_async(b, step));
    }
    OK(b, brine_wait(b));
    assert_int_equal(tu_count_entries(dir, ""), 3);
    assert_true(tu_ckpt_exists(dir, "ckpt", 48) && tu_ckpt_exists(dir, "ckpt", 49) &&
                tu_ckpt_exists(dir, "ckpt", 50));
    assert_int_equal(brine_close(b), 0);

    memset(f, 0, n * 8);
    memset(g, 0, n * 4);
    it = 0;
    b = tu_open(dir, &o);
    OK(b, brine_register(b, "f", BRINE_F64, f, 1, shape, 0));
    OK(b, brine_register(b, "g", BRINE_I32, g, 1, shape, 0));
    OK(b, brine_register(b, "it", BRINE_I64, &it, 0, NULL, 0));
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 50);
    assert_int_equal(it, 50);
    for (size_t i = 0; i < n; i++) {
        if (f[i] != 50.0 + (double)i * 1e-6 || g[i] != (int32_t)(350 + (int64_t)i)) {
            print_error("element %zu: %g %d\n", i, f[i], g[i]);
            fail();
        }
    }
    assert_int_equal(brine_close(b), 0);
    free(f);
    free(g);
    tu_rmtree(dir);
}

/* An asynchronous save restarts brine_maybe_save's every_seconds interval, as brine_save does. */
static double fake_clock(void *ctx)
{
    return *(const double *)ctx;
}

static void test_restarts_time_policy(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    double t = 100.0;
    brine_options o = BRINE_OPTIONS_INIT;
    o.every_seconds = 10.0;
    o.async = 1;
    o.clock = fake_clock;
    o.clock_ctx = &t;
    int64_t x = 0;
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "x", BRINE_I64, &x, 0, NULL, 0));
    t = 105.0;
    OK(b, brine_save_async(b, 1)); /* the interval counts from here */
    t = 112.0;
    assert_int_equal(brine_maybe_save(b, 2), 0);
    t = 115.5;
    assert_int_equal(brine_maybe_save(b, 3), 1);
    OK(b, brine_wait(b));
    assert_true(tu_ckpt_exists(dir, "ckpt", 1) && tu_ckpt_exists(dir, "ckpt", 3));
    assert_int_equal(brine_close(b), 0);
    tu_rmtree(dir);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests print their own diagnostics */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_without_save),
        cmocka_unit_test(test_same_bytes_as_sync),
        cmocka_unit_test(test_changes_after_return),
        cmocka_unit_test(test_background_failure),
        cmocka_unit_test(test_nowait_busy),
        cmocka_unit_test(test_close_waits),
        cmocka_unit_test(test_staging_reuse),
        cmocka_unit_test(test_staging_max),
        cmocka_unit_test(test_many_saves),
        cmocka_unit_test(test_restarts_time_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
