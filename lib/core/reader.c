/*
 * brine_reader: one checkpoint opened for inspection and for reading
 * variables into memory the program sized itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/buffer.h"
#include "../format/dtype.h"
#include "../io/dir_scan.h"
#include "checkpoint.h"
#include "core.h"
#include "match.h"
#include "reader.h"

/* One leaf of the state. */
typedef struct entry {
    brine_var_info info;
    const brine_pvalue *value;
    int verified; /* arrays stored out of band: their chunks have verified */
} entry;

struct brine_reader {
    const brine_allocator *alloc;
    char *path;
    brine_ckpt c;
    entry *vars;
    size_t nvars, cap;
    brine_attr_val *attrs; /* sorted by name */
    size_t nattrs;
    brine_error err;
};

/* "dir/name-000000000042.h5" gives 42; -1 when the file name has no such step. */
static int64_t step_of_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dash = strrchr(base, '-');
    int64_t step = -1;
    if (!dash || dash == base)
        return -1;
    char prefix[80];
    size_t plen = (size_t)(dash - base);
    if (plen >= sizeof prefix)
        return -1;
    memcpy(prefix, base, plen);
    prefix[plen] = '\0';
    return brine_scan__parse_name(base, prefix, &step) ? step : -1;
}

static int add_entry(brine_reader *r, const char *name, size_t len, const brine_pvalue *v)
{
    if (r->nvars == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        void *p = r->vars;
        if (cap > SIZE_MAX / sizeof *r->vars ||
            brine__resize(r->alloc, &p, r->nvars * sizeof *r->vars, cap * sizeof *r->vars))
            return BRINE_ENOMEM;
        r->vars = p;
        r->cap = cap;
    }
    entry *e = &r->vars[r->nvars];
    memset(e, 0, sizeof *e);
    char *copy = brine__alloc(r->alloc, len + 1);
    if (!copy)
        return BRINE_ENOMEM;
    memcpy(copy, name, len);
    copy[len] = '\0';
    e->info.name = copy;
    e->value = v;
    e->info.dtype = -1;
    switch (v->kind) {
    case BRINE_PV_NDARRAY: {
        const brine_dtype_info *di = brine_dtype__info(v->v.array.dtype);
        e->info.kind = BRINE_VAR_ARRAY;
        e->info.dtype = v->v.array.dtype;
        e->info.ndim = v->v.array.ndim;
        e->info.nbytes = di->size;
        for (int d = 0; d < v->v.array.ndim; d++) {
            e->info.shape[d] = (size_t)v->v.array.shape[d];
            e->info.nbytes *= (size_t)v->v.array.shape[d];
        }
        e->info.flags = v->v.array.order == 'F' ? BRINE_FORTRAN_ORDER : 0;
        break;
    }
    case BRINE_PV_BOOL:
    case BRINE_PV_INT:
    case BRINE_PV_FLOAT:
    case BRINE_PV_COMPLEX:
        e->info.kind = BRINE_VAR_SCALAR;
        e->info.dtype = brine_match__scalar_dtype(v);
        break;
    case BRINE_PV_STR:
        e->info.kind = BRINE_VAR_STRING;
        e->info.nbytes = v->v.str.len;
        break;
    default:
        e->info.kind = BRINE_VAR_OTHER;
        break;
    }
    r->nvars++;
    return 0;
}

/* Lists the leaves under dict (whose name is path[0..plen)). */
static int walk(brine_reader *r, const brine_pvalue *dict, brine_buf *path, size_t plen)
{
    int rc = 0;
    for (size_t i = 0; i < dict->v.dict.n && !rc; i++) {
        const brine_pvalue *k = dict->v.dict.keys[i], *v = dict->v.dict.values[i];
        path->len = plen;
        if (plen)
            brine_buf__put_u8(path, '/');
        if (k->kind == BRINE_PV_STR) {
            brine_buf__append(path, k->v.str.s, k->v.str.len);
        } else {
            /* Not a name a program can ask for; listed so that nothing is hidden. */
            char what[40];
            int n = k->kind == BRINE_PV_INT && !k->v.integer.negative
                        ? snprintf(what, sizeof what, "<int key %" PRIu64 ">", k->v.integer.u)
                        : snprintf(what, sizeof what, "<%s key>", brine_match__kind_name(k->kind));
            brine_buf__append(path, what, (size_t)n);
            v = k; /* its value is not a variable either */
        }
        if (path->failed)
            return BRINE_ENOMEM;
        if (v->kind == BRINE_PV_DICT && k->kind == BRINE_PV_STR)
            rc = walk(r, v, path, path->len);
        else
            rc = add_entry(r, (const char *)path->data, path->len, k->kind == BRINE_PV_STR ? v : k);
    }
    return rc;
}

static entry *find(brine_reader *r, const char *name)
{
    for (size_t i = 0; i < r->nvars; i++) {
        if (strcmp(r->vars[i].info.name, name) == 0)
            return &r->vars[i];
    }
    return NULL;
}

/* The dataset dimensions of a stored array. */
static void dims_of(const brine_pvalue *v, uint64_t *dims)
{
    const int n = v->v.array.ndim;
    for (int d = 0; d < n; d++)
        dims[d] = v->v.array.order == 'F' ? v->v.array.shape[n - 1 - d] : v->v.array.shape[d];
}

/* Verifies an out-of-band array's chunks once. */
static int verify(brine_reader *r, entry *e)
{
    int rc = 0;
    const brine_pvalue *v = e->value;
    if (e->verified || v->v.array.buffer < 0)
        return 0;
    uint64_t dims[BRINE_MAX_NDIM];
    dims_of(v, dims);
    char *ds = brine_ckpt__dataset_path(r->alloc, e->info.name);
    if (!ds)
        return brine__fail(&r->err, BRINE_ENOMEM, "out of memory");
    rc = brine_h5__verify_array(r->c.r, ds, e->info.name, v->v.array.dtype, v->v.array.order,
                                v->v.array.ndim, dims, &r->err);
    brine__free(r->alloc, ds);
    /* The messages name the file already (or the failing system call and its path). */
    if (rc)
        return brine_ckpt__io_failure(&r->c, rc, r->path, &r->err);
    e->verified = 1;
    return 0;
}

void brine_reader_close(brine_reader *r)
{
    if (!r)
        return;
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    brine_ckpt__close(&r->c);
    brine_h5__quiet_end(&quiet);
    for (size_t i = 0; i < r->nvars; i++)
        brine__free(r->alloc, (void *)r->vars[i].info.name);
    brine__free(r->alloc, r->vars);
    brine_h5__free_attrs(r->alloc, r->attrs, r->nattrs);
    brine__free(r->alloc, r->path);
    brine__free(r->alloc, r);
}

int brine_reader__open(brine_reader **out, const char *file, int64_t name_step,
                       const brine_io_methods *io, const brine_allocator *a, int threads,
                       unsigned flags, brine_error *err)
{
    int rc = 0;
    brine_buf path;
    brine_buf__init(&path, a);
    brine_reader *r = brine__calloc(a, 1, sizeof *r);
    *out = NULL;
    if (!r)
        return brine__fail(err, BRINE_ENOMEM, "out of memory opening %s", file);
    r->alloc = a;
    r->c.fapl = H5I_INVALID_HID;
    if (!(r->path = brine__strdup(a, file))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory opening %s", file);
        goto done;
    }
    if ((rc = brine_ckpt__open(&r->c, file, name_step, io, a, threads, err)))
        goto done;
    if ((rc = brine_h5__read_attrs(r->c.r, &r->attrs, &r->nattrs, err))) {
        rc = brine_ckpt__io_failure(&r->c, rc, file, err);
        goto done;
    }
    if (walk(r, r->c.root, &path, 0)) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory listing %s", file);
        goto done;
    }
    for (size_t i = 0; i < r->nvars; i++) {
        entry *e = &r->vars[i];
        const brine_pvalue *v = e->value;
        if (e->info.kind != BRINE_VAR_ARRAY || v->v.array.buffer < 0)
            continue;
        if ((uint64_t)v->v.array.buffer >= r->c.nbuffers) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s: variable '%s' uses buffer %" PRId64 " but the file lists %zu",
                             file, e->info.name, v->v.array.buffer, r->c.nbuffers);
            goto done;
        }
        if ((flags & BRINE_READER_VERIFY) && (rc = verify(r, e))) {
            *err = r->err;
            goto done;
        }
    }
done:
    brine_buf__free(&path);
    if (rc) {
        brine_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int brine_reader_open(brine_reader **out, const char *path, const brine_options *opts,
                      unsigned flags)
{
    brine_error *err = brine_context__open_error();
    brine__error_clear(err);
    if (!out)
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: the path is NULL or empty");
    if (flags & ~BRINE_READER_VERIFY)
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: unknown flags 0x%x",
                           flags & ~BRINE_READER_VERIFY);
    if (opts && (opts->version < 1 || opts->version > BRINE_OPTIONS_VERSION))
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: options version %u, this library knows %d",
                           opts->version, BRINE_OPTIONS_VERSION);
    /* io, alloc and threads are in every version of the options. */
    const brine_io_methods *io = opts && opts->io ? opts->io : brine_io_posix();
    const brine_allocator *a = opts ? opts->alloc : NULL;
    int threads = opts ? opts->threads : 0;
    if (threads < 0)
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: threads %d is negative", threads);
    if (a && (!a->alloc || !a->free))
        return brine__fail(err, BRINE_EINVAL, "brine_reader_open: the allocator lacks alloc or free");
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    int rc = brine_reader__open(out, path, step_of_name(path), io, a, threads, flags, err);
    brine_h5__quiet_end(&quiet);
    return rc;
}

const char *brine_reader_path(const brine_reader *r)
{
    return r ? r->path : "";
}

int64_t brine_reader_step(const brine_reader *r)
{
    return r ? r->c.step : -1;
}

size_t brine_reader_count(const brine_reader *r)
{
    return r ? r->nvars : 0;
}

int brine_reader_var(const brine_reader *r, size_t i, brine_var_info *out)
{
    if (!r || !out || i >= r->nvars)
        return BRINE_EINVAL;
    *out = r->vars[i].info;
    return 0;
}

const char *brine_reader_errmsg(const brine_reader *r)
{
    return r ? r->err.msg : "no brine reader (NULL)";
}

/* The entry of name, or BRINE_ENOTFOUND / BRINE_EINVAL with a message. */
static int lookup(brine_reader *r, const char *name, const char *fn, entry **out)
{
    if (!name)
        return brine__fail(&r->err, BRINE_EINVAL, "%s: name is NULL", fn);
    if (!(*out = find(r, name)))
        return brine__fail(&r->err, BRINE_ENOTFOUND, "%s: no variable '%s' in the checkpoint", r->path,
                           name);
    return 0;
}

int brine_find(brine_reader *r, const char *name, brine_var_info *out)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    if (!out)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_find: out is NULL");
    int rc = lookup(r, name, "brine_find", &e);
    if (rc)
        return rc;
    *out = e->info;
    return 0;
}

/* Reads an array that matched into data (dtype and element count of the target). */
static int read_array(brine_reader *r, entry *e, brine_dtype dtype, void *data)
{
    int rc = 0;
    const brine_pvalue *v = e->value;
    const int stored = v->v.array.dtype;
    const size_t n = e->info.nbytes / brine_dtype__info(stored)->size;
    if (v->v.array.buffer < 0) {
        if (stored != (int)dtype)
            brine_dtype__convert(data, dtype, v->v.array.inband, stored, n);
        else if (n)
            memcpy(data, v->v.array.inband, e->info.nbytes);
        return 0;
    }
    if ((rc = verify(r, e)))
        return rc;
    void *scratch = NULL, *dst = data;
    if (stored != (int)dtype && !(dst = scratch = brine__alloc(r->alloc, e->info.nbytes)))
        return brine__fail(&r->err, BRINE_ENOMEM, "out of memory (%zu bytes to convert '%s')",
                           e->info.nbytes, e->info.name);
    uint64_t dims[BRINE_MAX_NDIM];
    dims_of(v, dims);
    char *ds = brine_ckpt__dataset_path(r->alloc, e->info.name);
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    if (!ds)
        rc = brine__fail(&r->err, BRINE_ENOMEM, "out of memory");
    else if ((rc = brine_h5__read_array(r->c.r, ds, e->info.name, stored, v->v.array.order,
                                        v->v.array.ndim, dims, dst, &r->err)))
        rc = brine_ckpt__io_failure(&r->c, rc, r->path, &r->err);
    brine_h5__quiet_end(&quiet);
    if (!rc && scratch)
        brine_dtype__convert(data, dtype, scratch, stored, n);
    brine__free(r->alloc, ds);
    brine__free(r->alloc, scratch);
    return rc;
}

int brine_read(brine_reader *r, const char *name, brine_dtype dtype, void *data, int ndim,
               const size_t *shape, unsigned flags)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    int rc = lookup(r, name, "brine_read", &e);
    if (rc)
        return rc;
    if (!brine_dtype__info((int)dtype))
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read '%s': dtype %d is not a brine_dtype",
                           name, (int)dtype);
    if (ndim < 0 || ndim > BRINE_MAX_NDIM || (ndim > 0 && !shape))
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read '%s': ndim %d is not in 0..%d or shape is NULL",
                           name, ndim, BRINE_MAX_NDIM);
    if (flags & ~(BRINE_FORTRAN_ORDER | BRINE_CONVERT))
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read '%s': unknown flags 0x%x", name,
                           flags & ~(BRINE_FORTRAN_ORDER | BRINE_CONVERT));
    uint64_t shp[BRINE_MAX_NDIM];
    for (int d = 0; d < ndim; d++)
        shp[d] = shape[d];
    const brine_target t = {name, "requested", 0, 0, dtype, ndim, shp, flags, 0};
    char why[700];
    if (brine_match__value(&t, e->value, why, sizeof why))
        return brine__fail(&r->err, BRINE_EMISMATCH, "%s: variable '%s' is %s", r->path, name, why);
    const size_t need = ndim == 0 ? brine_dtype__info(dtype)->size
                                  : e->info.nbytes / brine_dtype__info(e->info.dtype)->size *
                                        brine_dtype__info(dtype)->size;
    if (!data && need)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read '%s': data is NULL", name);
    if (ndim == 0) {
        brine_match__store_scalar(dtype, data, e->value);
        return 0;
    }
    return read_array(r, e, dtype, data);
}

int brine_read_string(brine_reader *r, const char *name, char *buf, size_t capacity)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    int rc = lookup(r, name, "brine_read_string", &e);
    if (rc)
        return rc;
    if (!buf || capacity == 0)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read_string '%s': buf is NULL or capacity 0",
                           name);
    const brine_target t = {name, "requested", 1, capacity, BRINE_U8, 0, NULL, 0, 0};
    char why[700];
    if (brine_match__value(&t, e->value, why, sizeof why))
        return brine__fail(&r->err, BRINE_EMISMATCH, "%s: variable '%s' is %s", r->path, name, why);
    memcpy(buf, e->value->v.str.s, e->value->v.str.len);
    buf[e->value->v.str.len] = '\0';
    return 0;
}

size_t brine_reader_attr_count(const brine_reader *r)
{
    return r ? r->nattrs : 0;
}

static void attr_out(const brine_attr_val *v, brine_attr *out)
{
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->type = v->type;
    out->i = v->i;
    out->d = v->d;
    out->s = v->s;
}

int brine_reader_attr(const brine_reader *r, size_t i, brine_attr *out)
{
    if (!r || !out || i >= r->nattrs)
        return BRINE_EINVAL;
    attr_out(&r->attrs[i], out);
    return 0;
}

int brine_find_attr(brine_reader *r, const char *name, brine_attr *out)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    if (!name || !out)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_find_attr: name or out is NULL");
    size_t lo = 0, hi = r->nattrs;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const int c = strcmp(r->attrs[mid].name, name);
        if (c == 0) {
            attr_out(&r->attrs[mid], out);
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return brine__fail(&r->err, BRINE_ENOTFOUND, "%s: no attribute '%s' (or not of a type brine reads)",
                       r->path, name);
}

/* ---------------------------------------------------------------- inspection (the brine command) */

int brine_reader_verify(brine_reader *r, const char *name)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    int rc = lookup(r, name, "brine_reader_verify", &e);
    if (rc || e->info.kind != BRINE_VAR_ARRAY)
        return rc;
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    rc = verify(r, e);
    brine_h5__quiet_end(&quiet);
    return rc;
}

int brine_reader_var_storage(brine_reader *r, const char *name, brine_var_storage *out)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    if (!out)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_reader_var_storage: out is NULL");
    int rc = lookup(r, name, "brine_reader_var_storage", &e);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    out->deflate_level = -1;
    if (e->info.kind != BRINE_VAR_ARRAY || e->value->v.array.buffer < 0) {
        out->in_stream = 1;
        return 0;
    }
    char *ds = brine_ckpt__dataset_path(r->alloc, e->info.name);
    if (!ds)
        return brine__fail(&r->err, BRINE_ENOMEM, "out of memory");
    brine_h5_storage st;
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    rc = brine_h5__storage(r->c.r, ds, e->info.name, &st, &r->err);
    brine_h5__quiet_end(&quiet);
    brine__free(r->alloc, ds);
    if (rc)
        return brine_ckpt__io_failure(&r->c, rc, r->path, &r->err);
    out->stored_bytes = st.stored_bytes;
    out->filters = (st.filters & BRINE_FILTER_SHUFFLE ? BRINE_STORAGE_SHUFFLE : 0) |
                   (st.filters & BRINE_FILTER_DEFLATE ? BRINE_STORAGE_DEFLATE : 0) |
                   (st.filters & BRINE_FILTER_FLETCHER32 ? BRINE_STORAGE_FLETCHER32 : 0);
    out->deflate_level = st.deflate_level;
    out->chunk_ndim = st.chunk_ndim;
    for (int d = 0; d < st.chunk_ndim; d++)
        out->chunk[d] = (size_t)st.chunk[d];
    return 0;
}

brine_error *brine_reader__err(brine_reader *r)
{
    return &r->err;
}

/* Slab size of brine_read_stream: large enough for long HDF5 reads, small next to any RAM. */
#define STREAM_SLAB_BYTES ((size_t)16 << 20)

/* The caller's sink, noting whether it is what failed (its error is its own). */
typedef struct stream_sink {
    brine_write_fn write;
    void *ctx;
    int failed;
} stream_sink;

static int stream_put(void *p, const void *data, size_t n)
{
    stream_sink *s = p;
    const int rc = s->write(s->ctx, data, n);
    s->failed = rc != 0;
    return rc;
}

int brine_read_stream(brine_reader *r, const char *name, brine_write_fn write, void *ctx)
{
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(&r->err);
    entry *e;
    int rc = lookup(r, name, "brine_read_stream", &e);
    if (rc)
        return rc;
    if (!write)
        return brine__fail(&r->err, BRINE_EINVAL, "brine_read_stream '%s': write is NULL", name);
    if (e->info.kind != BRINE_VAR_ARRAY)
        return brine__fail(&r->err, BRINE_EMISMATCH, "%s: variable '%s' is not an array", r->path, name);
    const brine_pvalue *v = e->value;
    if (v->v.array.buffer < 0)
        return e->info.nbytes ? write(ctx, v->v.array.inband, e->info.nbytes) : 0;
    uint64_t dims[BRINE_MAX_NDIM];
    dims_of(v, dims);
    char *ds = brine_ckpt__dataset_path(r->alloc, e->info.name);
    if (!ds)
        return brine__fail(&r->err, BRINE_ENOMEM, "out of memory");
    stream_sink sink = {write, ctx, 0};
    brine_h5_quiet quiet;
    brine_h5__quiet_begin(&quiet);
    rc = brine_h5__read_stream(r->c.r, ds, e->info.name, v->v.array.dtype, v->v.array.order,
                               v->v.array.ndim, dims, STREAM_SLAB_BYTES, stream_put, &sink, &r->err);
    brine_h5__quiet_end(&quiet);
    brine__free(r->alloc, ds);
    if (rc && !sink.failed)
        rc = brine_ckpt__io_failure(&r->c, rc, r->path, &r->err);
    return rc;
}
