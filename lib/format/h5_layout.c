#include "h5_layout.h"

#include <assert.h>
#include <inttypes.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/alloc.h"
#include "../common/text.h"
#include "chunk_codec.h"
#include "chunk_pipeline.h"
#include "dtype.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "brine writes little-endian data straight from memory: big-endian hosts are not supported yet"
#endif

/* Chunks in flight per OpenMP thread: enough to keep every thread busy while
 * this thread makes the HDF5 calls, few enough to bound memory (a few MiB per thread). */
#define CHUNKS_PER_THREAD 4

/* ---------------------------------------------------------------- errors */

void brine_h5__quiet_begin(brine_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void brine_h5__quiet_end(const brine_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data)
{
    /* Walked upward: the first entry is the most specific one. */
    char *out = data;
    if (n == 0 && e->desc)
        snprintf(out, 256, "%s (in %s)", e->desc, e->func_name ? e->func_name : "?");
    return 0;
}

/* Records a failed HDF5 call with HDF5's innermost message, then clears HDF5's stack. */
__attribute__((format(printf, 3, 4))) static int h5fail(brine_error *err, int code, const char *fmt,
                                                        ...)
{
    char head[1024];
    char detail[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, detail);
    H5Eclear2(H5E_DEFAULT);
    return brine__fail(err, code, "%s%s%s", head, detail[0] ? ": HDF5 says: " : "", detail);
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        closer(*id);
    *id = H5I_INVALID_HID;
}

/* ---------------------------------------------------------------- types */

/* The HDF5 file type of a dtype (docs/format.md, 2.3); the caller closes it. */
static hid_t file_type(int dtype)
{
    hid_t t = H5I_INVALID_HID;
    switch (dtype) {
    case BRINE_BOOL: {
        /* h5py's bool: an enum of int8 with FALSE = 0, TRUE = 1. */
        int8_t v;
        t = H5Tenum_create(H5T_STD_I8LE);
        v = 0;
        if (t >= 0 && H5Tenum_insert(t, "FALSE", &v) < 0)
            goto fail;
        v = 1;
        if (t >= 0 && H5Tenum_insert(t, "TRUE", &v) < 0)
            goto fail;
        return t;
    }
    case BRINE_I8: return H5Tcopy(H5T_STD_I8LE);
    case BRINE_I16: return H5Tcopy(H5T_STD_I16LE);
    case BRINE_I32: return H5Tcopy(H5T_STD_I32LE);
    case BRINE_I64: return H5Tcopy(H5T_STD_I64LE);
    case BRINE_U8: return H5Tcopy(H5T_STD_U8LE);
    case BRINE_U16: return H5Tcopy(H5T_STD_U16LE);
    case BRINE_U32: return H5Tcopy(H5T_STD_U32LE);
    case BRINE_U64: return H5Tcopy(H5T_STD_U64LE);
    case BRINE_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case BRINE_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case BRINE_C64:
    case BRINE_C128: {
        /* h5py's complex: a compound {r, i} of two floats. */
        hid_t part = dtype == BRINE_C64 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
        size_t half = dtype == BRINE_C64 ? 4 : 8;
        t = H5Tcreate(H5T_COMPOUND, 2 * half);
        if (t < 0 || H5Tinsert(t, "r", 0, part) < 0 || H5Tinsert(t, "i", half, part) < 0)
            goto fail;
        return t;
    }
    default:
        return H5I_INVALID_HID;
    }
fail:
    if (t >= 0)
        H5Tclose(t);
    return H5I_INVALID_HID;
}

static hid_t utf8_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---------------------------------------------------------------- attributes */

static int write_attr(hid_t obj, const char *name, hid_t type, const void *value, brine_error *err)
{
    int rc = 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5I_INVALID_HID;
    if (space < 0) {
        rc = h5fail(err, BRINE_EHDF5, "creating the dataspace of attribute %s", name);
        goto done;
    }
    attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, value) < 0)
        rc = h5fail(err, BRINE_EHDF5, "writing attribute %s", name);
done:
    close_id(&attr, H5Aclose);
    close_id(&space, H5Sclose);
    return rc;
}

static int write_str_attr(hid_t obj, const char *name, const char *value, brine_error *err)
{
    hid_t t = utf8_string_type();
    if (t < 0)
        return h5fail(err, BRINE_EHDF5, "creating a string type");
    int rc = write_attr(obj, name, t, &value, err);
    H5Tclose(t);
    return rc;
}

/* A scalar fixed-length UTF-8 string, NULLPAD, of value's byte length (1 for ""): docs/format.md, 2.1. */
static int write_fixed_str_attr(hid_t obj, const char *name, const char *value, brine_error *err)
{
    const size_t len = strlen(value);
    int rc = 0;
    hid_t t = H5Tcopy(H5T_C_S1);
    /* An empty string is stored as one NUL byte: value's terminator. */
    if (t < 0 || H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        rc = h5fail(err, BRINE_EHDF5, "creating the string type of attribute %s", name);
    else
        rc = write_attr(obj, name, t, value, err);
    close_id(&t, H5Tclose);
    return rc;
}

/* Reads a scalar integer attribute as int64.  0, BRINE_ECORRUPT or BRINE_EHDF5. */
static int read_int_attr(hid_t obj, const char *name, int64_t *out, const char *where,
                         brine_error *err)
{
    int rc = 0;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if (H5Aexists(obj, name) <= 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s has no attribute '%s'", where, name);
        goto done;
    }
    attr = H5Aopen(obj, name, H5P_DEFAULT);
    type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_INTEGER ||
        H5Sget_simple_extent_npoints(space) != 1) {
        rc = h5fail(err, BRINE_ECORRUPT, "attribute '%s' of %s is not one integer", name, where);
        goto done;
    }
    if (H5Aread(attr, H5T_NATIVE_INT64, out) < 0)
        rc = h5fail(err, BRINE_ECORRUPT, "reading attribute '%s' of %s", name, where);
done:
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    close_id(&attr, H5Aclose);
    return rc;
}

/* ---------------------------------------------------------------- writer */

struct brine_h5_writer {
    hid_t file;
    const brine_allocator *alloc;
    brine_h5_write_opts opts;
    char path[];
};

static int thread_count(int requested)
{
    return requested > 0 ? requested : omp_get_max_threads();
}

/* This machine's name into out (n > 1 bytes); "" when it is unknown or not UTF-8. */
static void host_name(char *out, size_t n)
{
    assert(n > 1);
    if (gethostname(out, n - 1) != 0)
        out[0] = '\0';
    out[n - 1] = '\0'; /* gethostname need not terminate a truncated name */
    if (!brine__utf8_valid(out, strlen(out)))
        out[0] = '\0';
}

int brine_h5__create(brine_h5_writer **out, const char *path, hid_t fapl, int64_t step,
                     const brine_h5_write_opts *opts, const brine_allocator *a, brine_error *err)
{
    int rc = 0;
    *out = NULL;
    brine_h5_writer *w = brine__alloc(a, sizeof *w + strlen(path) + 1);
    if (!w)
        return brine__fail(err, BRINE_ENOMEM, "out of memory creating %s", path);
    w->alloc = a;
    w->opts = *opts;
    memcpy(w->path, path, strlen(path) + 1);
    /* The 1.10 file format checksums all metadata (superblock v3, object
     * header v2, fixed-array chunk indexes holding each chunk's size and
     * filter mask), so restore detects damage to more than the chunks' data. */
    hid_t fapl_v110 = H5Pcopy(fapl);
    if (fapl_v110 < 0 || H5Pset_libver_bounds(fapl_v110, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "preparing %s", path);
        if (fapl_v110 >= 0)
            H5Pclose(fapl_v110);
        w->file = H5I_INVALID_HID;
        goto done;
    }
    w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl_v110);
    H5Pclose(fapl_v110);
    if (w->file < 0) {
        rc = h5fail(err, BRINE_EHDF5, "creating %s", path);
        goto done;
    }

    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char host[256];
    host_name(host, sizeof host);
    const int64_t threads = thread_count(w->opts.threads);
    const int32_t format = BRINE_FORMAT_VERSION;
    if ((rc = write_attr(w->file, "brine_format", H5T_STD_I32LE, &format, err)) ||
        (rc = write_str_attr(w->file, "brine_version", BRINE_VERSION_STRING, err)) ||
        (rc = write_attr(w->file, "step", H5T_STD_I64LE, &step, err)) ||
        (rc = write_str_attr(w->file, "created", created, err)) ||
        (rc = write_fixed_str_attr(w->file, "brine_host", host, err)) ||
        (rc = write_attr(w->file, "brine_threads", H5T_STD_I64LE, &threads, err)))
        goto done;
done:
    if (rc) {
        brine_h5__abandon(w);
        return rc;
    }
    *out = w;
    return 0;
}

int brine_h5__write_user_attrs(brine_h5_writer *w, const brine_attr_val *attrs, size_t n,
                               brine_error *err)
{
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        const brine_attr_val *v = &attrs[k];
        switch (v->type) {
        case BRINE_ATTR_INT: rc = write_attr(w->file, v->name, H5T_STD_I64LE, &v->i, err); break;
        case BRINE_ATTR_DOUBLE: rc = write_attr(w->file, v->name, H5T_IEEE_F64LE, &v->d, err); break;
        case BRINE_ATTR_STRING: rc = write_fixed_str_attr(w->file, v->name, v->s, err); break;
        default: assert(!"brine_attr_val of an unknown type");
        }
    }
    return rc;
}

/* "/state/<name>" into a new string. */
static char *state_path(const brine_allocator *a, const char *name)
{
    size_t n = strlen(name);
    char *p = brine__alloc(a, n + 8);
    if (p) {
        memcpy(p, "/state/", 7);
        memcpy(p + 7, name, n + 1);
    }
    return p;
}

/* Chunk buffers of one pipeline run: a stored chunk per slot, raw + scratch per thread. */
typedef struct chunk_buffers {
    const brine_allocator *alloc;
    size_t bound;       /* bytes of a stored chunk at most */
    uint8_t *stored;    /* nslots * bound */
    uint8_t *work;      /* nthreads * 2 * chunk_bytes: raw chunk, then scratch */
    size_t *lens;       /* per slot: stored bytes */
    uint32_t *masks;    /* per slot: filter mask (pipeline positions, as HDF5 has them) */
    char *whys;         /* per slot: why a codec step failed */
} chunk_buffers;

enum { WHY_SIZE = 200 };

static void buffers_free(chunk_buffers *cb)
{
    brine__free(cb->alloc, cb->whys);
    brine__free(cb->alloc, cb->masks);
    brine__free(cb->alloc, cb->lens);
    brine__free(cb->alloc, cb->work);
    brine__free(cb->alloc, cb->stored);
}

/*
 * Each thread's work area holds a raw chunk and a scratch chunk, each
 * followed by BRINE_CHUNK_SLACK zero bytes: codecs may read past the end of
 * their input (ISA-L does), and what they find there must never vary, or
 * the same chunk compresses to different bytes from run to run.
 */
static size_t work_half(const brine_chunk_geom *g)
{
    return g->chunk_bytes + BRINE_CHUNK_SLACK;
}

/* Sizes a pipeline run for g and allocates its buffers.  0 or BRINE_ENOMEM. */
static int buffers_alloc(chunk_buffers *cb, brine_pipe *p, const brine_chunk_geom *g,
                         int requested_threads, const brine_allocator *a)
{
    size_t stored_size, work_size;
    uint64_t threads = (uint64_t)thread_count(requested_threads);
    if (threads > g->nchunks)
        threads = g->nchunks;
    uint64_t slots = threads * CHUNKS_PER_THREAD;
    if (slots > g->nchunks)
        slots = g->nchunks;
    p->nchunks = g->nchunks;
    p->nthreads = (int)threads;
    p->nslots = (size_t)slots;
    memset(cb, 0, sizeof *cb);
    cb->alloc = a;
    cb->bound = brine_chunk__encode_bound(g->chunk_bytes);
    if (brine__mul_overflows(cb->bound, p->nslots, &stored_size) ||
        brine__mul_overflows(2 * work_half(g), (size_t)threads, &work_size))
        return BRINE_ENOMEM;
    cb->stored = brine__alloc(a, stored_size);
    /* Zeroed, for the slack after each buffer (work_half): it stays zero. */
    cb->work = brine__calloc(a, 1, work_size);
    cb->lens = brine__calloc(a, p->nslots, sizeof *cb->lens);
    cb->masks = brine__calloc(a, p->nslots, sizeof *cb->masks);
    cb->whys = brine__calloc(a, p->nslots, WHY_SIZE);
    if (!cb->stored || !cb->work || !cb->lens || !cb->masks || !cb->whys) {
        buffers_free(cb);
        return BRINE_ENOMEM;
    }
    return 0;
}

static void chunk_hoffset(const brine_chunk_geom *g, uint64_t chunk, hsize_t *hoff)
{
    uint64_t offset[BRINE_MAX_NDIM];
    brine_chunk__offset(g, chunk, offset);
    for (int d = 0; d < g->ndim; d++)
        hoff[d] = offset[d];
}

/* One dataset being written: what the two pipeline steps need. */
typedef struct write_job {
    hid_t dset;
    const brine_chunk_geom *g;
    const void *data;
    const brine_chunk_codec *codec;
    chunk_buffers cb;
    brine_error *err;
    const char *name;
    int serial_failed; /* the serial step recorded its own message */
} write_job;

static int encode_step(void *ctx, uint64_t chunk, size_t slot, int thread)
{
    write_job *j = ctx;
    const size_t cbytes = j->g->chunk_bytes;
    uint8_t *raw = j->cb.work + (size_t)thread * 2 * work_half(j->g);
    uint64_t offset[BRINE_MAX_NDIM];
    brine_chunk__offset(j->g, chunk, offset);
    brine_chunk__gather(j->g, j->data, offset, raw);
    j->cb.masks[slot] = 0;
    return brine_chunk__encode(raw, cbytes, j->g->esize, j->codec, raw + work_half(j->g),
                               j->cb.stored + slot * j->cb.bound, &j->cb.lens[slot],
                               &j->cb.masks[slot]);
}

static int write_step(void *ctx, uint64_t chunk, size_t slot)
{
    write_job *j = ctx;
    hsize_t hoff[BRINE_MAX_NDIM];
    chunk_hoffset(j->g, chunk, hoff);
    if (H5Dwrite_chunk(j->dset, H5P_DEFAULT, j->cb.masks[slot], hoff, j->cb.lens[slot],
                       j->cb.stored + slot * j->cb.bound) < 0) {
        j->serial_failed = 1;
        return h5fail(j->err, BRINE_EHDF5, "writing chunk %" PRIu64 " of '%s'", chunk, j->name);
    }
    return 0;
}

/* Compresses the chunks of one dataset in OpenMP threads while this thread writes them, in order. */
static int write_chunks(brine_h5_writer *w, hid_t dset, const brine_chunk_geom *g,
                        const void *data, const char *name, brine_error *err)
{
    write_job j = {dset, g, data, &w->opts.codec, {0}, err, name, 0};
    brine_pipe p = {0};
    if (buffers_alloc(&j.cb, &p, g, w->opts.threads, w->alloc))
        return brine__fail(err, BRINE_ENOMEM, "out of memory for the chunk buffers of '%s'", name);
    p.ctx = &j;
    p.serial = write_step;
    p.parallel = encode_step;
    int rc = brine_pipe__write(&p);
    if (rc && !j.serial_failed)
        rc = brine__fail(err, rc, "compressing chunk %" PRIu64 " of '%s' failed (%s)",
                         p.failed_chunk, name, brine_errstr(rc));
    buffers_free(&j.cb);
    return rc;
}

int brine_h5__write_array(brine_h5_writer *w, const char *name, int dtype, char order, int ndim,
                          const uint64_t *dims, const void *data, brine_error *err)
{
    int rc = 0;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t lcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    const brine_dtype_info *info = brine_dtype__info(dtype);
    char *path = state_path(w->alloc, name);
    hsize_t hdims[BRINE_MAX_NDIM];
    int empty = 0;
    brine_chunk_geom g;

    assert(info && ndim >= 1 && ndim <= BRINE_MAX_NDIM);
    if (!path) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory writing '%s'", name);
        goto done;
    }
    for (int d = 0; d < ndim; d++) {
        hdims[d] = dims[d];
        empty |= dims[d] == 0;
    }
    type = file_type(dtype);
    space = H5Screate_simple(ndim, hdims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (type < 0 || space < 0 || dcpl < 0 || lcpl < 0 ||
        H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "preparing dataset %s", path);
        goto done;
    }
    if (!empty) {
        hsize_t hchunk[BRINE_MAX_NDIM];
        brine_chunk__plan(&g, ndim, dims, info->size, BRINE_CHUNK_TARGET_BYTES);
        for (int d = 0; d < ndim; d++)
            hchunk[d] = g.chunk[d];
        /* Chunks are written whole by H5Dwrite_chunk: no fill values, no early allocation. */
        const unsigned pipeline = brine_chunk__pipeline(&w->opts.codec);
        if (H5Pset_chunk(dcpl, ndim, hchunk) < 0 ||
            ((pipeline & BRINE_FILTER_SHUFFLE) && H5Pset_shuffle(dcpl) < 0) ||
            /* HDF5 refuses levels above 9 (libdeflate goes to 12); readers ignore the value. */
            ((pipeline & BRINE_FILTER_DEFLATE) &&
             H5Pset_deflate(dcpl, (unsigned)(w->opts.codec.level > 9 ? 9 : w->opts.codec.level)) < 0) ||
            H5Pset_fletcher32(dcpl) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
            H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR) < 0) {
            rc = h5fail(err, BRINE_EHDF5, "setting the filters of dataset %s", path);
            goto done;
        }
    }
    dset = H5Dcreate2(w->file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (dset < 0) {
        rc = h5fail(err, BRINE_EHDF5, "creating dataset %s", path);
        goto done;
    }
    const char order_str[2] = {order, '\0'};
    if ((rc = write_str_attr(dset, "order", order_str, err)))
        goto done;
    if (!empty)
        rc = write_chunks(w, dset, &g, data, name, err);
done:
    close_id(&dset, H5Dclose);
    close_id(&lcpl, H5Pclose);
    close_id(&dcpl, H5Pclose);
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    brine__free(w->alloc, path);
    return rc;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), p, n);
}

int brine_h5__write_pickle(brine_h5_writer *w, const uint8_t *stream, size_t len,
                           const char *const *buffers, size_t nbuffers, brine_error *err)
{
    int rc = 0;
    hid_t space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    hid_t strtype = H5I_INVALID_HID, bspace = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    hsize_t n = len, nb = nbuffers;
    const char *none = NULL;

    space = H5Screate_simple(1, &n, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (space < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "preparing /brine/pickle");
        goto done;
    }
    dset = H5Dcreate2(w->file, "/brine/pickle", H5T_STD_U8LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, stream) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "writing /brine/pickle");
        goto done;
    }
    strtype = utf8_string_type();
    bspace = H5Screate_simple(1, &nb, NULL);
    attr = (strtype >= 0 && bspace >= 0)
               ? H5Acreate2(dset, "buffers", strtype, bspace, H5P_DEFAULT, H5P_DEFAULT)
               : H5I_INVALID_HID;
    if (attr < 0 || H5Awrite(attr, strtype, nbuffers ? (const void *)buffers : &none) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "writing attribute buffers of /brine/pickle");
        goto done;
    }
    const uint32_t crc = crc32_of(stream, len);
    rc = write_attr(dset, "crc32", H5T_STD_U32LE, &crc, err);
done:
    close_id(&attr, H5Aclose);
    close_id(&bspace, H5Sclose);
    close_id(&strtype, H5Tclose);
    close_id(&dset, H5Dclose);
    close_id(&lcpl, H5Pclose);
    close_id(&space, H5Sclose);
    return rc;
}

int brine_h5__finish(brine_h5_writer *w, brine_error *err)
{
    int rc = 0;
    /* Flush first: HDF5 1.10 crashes later (at H5close) when a write fails
     * inside H5Fclose, so let metadata writes fail here, where failing is
     * safe; the file driver reports failures inside H5Fclose through its
     * status instead (io/h5_vfd.h). */
    if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
        rc = h5fail(err, BRINE_EHDF5, "flushing %s", w->path);
    if (H5Fclose(w->file) < 0 && rc == 0)
        rc = h5fail(err, BRINE_EHDF5, "closing %s", w->path);
    brine__free(w->alloc, w);
    return rc;
}

void brine_h5__abandon(brine_h5_writer *w)
{
    if (!w)
        return;
    if (w->file >= 0) {
        /* Close everything still open in the file so that H5Fclose really closes it. */
        H5Fclose(w->file);
        H5Eclear2(H5E_DEFAULT);
    }
    brine__free(w->alloc, w);
}

/* ---------------------------------------------------------------- reader */

int brine_h5__check_header(const uint8_t *head, size_t n, char *why, size_t whylen)
{
    static const uint8_t signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n < BRINE_H5_HEADER_BYTES || memcmp(head, signature, sizeof signature) != 0) {
        snprintf(why, whylen, "it does not start with the HDF5 signature");
        return BRINE_ECORRUPT;
    }
    if (head[8] < 2) {
        snprintf(why, whylen,
                 "its HDF5 superblock is version %u, a format without metadata checksums "
                 "(brine writes version 3: docs/format.md, section 2)",
                 (unsigned)head[8]);
        return BRINE_ECORRUPT;
    }
    return 0;
}

struct brine_h5_reader {
    hid_t file;
    const brine_allocator *alloc;
    int threads;
    int64_t step;
    uint8_t *stream;
    size_t len;
    size_t nbuffers;
    char path[];
};

int brine_h5__open(brine_h5_reader **out, const char *path, hid_t fapl, int threads,
                   const brine_allocator *a, brine_error *err)
{
    int rc = 0;
    int64_t format = 0;
    *out = NULL;
    brine_h5_reader *r = brine__alloc(a, sizeof *r + strlen(path) + 1);
    if (!r)
        return brine__fail(err, BRINE_ENOMEM, "out of memory opening %s", path);
    memset(r, 0, sizeof *r);
    r->alloc = a;
    r->threads = threads;
    memcpy(r->path, path, strlen(path) + 1);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (r->file < 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s is not a readable HDF5 file", path);
        goto done;
    }
    if ((rc = read_int_attr(r->file, "brine_format", &format, path, err)))
        goto done;
    if (format > BRINE_FORMAT_VERSION) {
        rc = brine__fail(err, BRINE_EVERSION,
                         "%s is in brine format %" PRId64 "; this library (brine %s) reads format %d",
                         path, format, BRINE_VERSION_STRING, BRINE_FORMAT_VERSION);
        goto done;
    }
    if (format < 1) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s has brine_format %" PRId64 ", which no brine wrote",
                         path, format);
        goto done;
    }
    rc = read_int_attr(r->file, "step", &r->step, path, err);
done:
    if (rc) {
        brine_h5__close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int64_t brine_h5__step(const brine_h5_reader *r)
{
    return r->step;
}

/*
 * Counts the entries of the buffers attribute.  Their text is not read:
 * variable-length strings live in HDF5's global heap, which no checksum
 * covers and which HDF5 1.10 crashes or loops on when it is damaged; the
 * format puts each array at /state/<name>, so restore needs only the count.
 */
static int count_buffers_attr(brine_h5_reader *r, hid_t dset, brine_error *err)
{
    int rc = 0;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if (H5Aexists(dset, "buffers") <= 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: /brine/pickle has no attribute 'buffers'", r->path);
        goto done;
    }
    attr = H5Aopen(dset, "buffers", H5P_DEFAULT);
    type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_STRING ||
        H5Sget_simple_extent_ndims(space) != 1) {
        rc = h5fail(err, BRINE_ECORRUPT,
                    "%s: attribute 'buffers' of /brine/pickle is not a list of strings", r->path);
        goto done;
    }
    r->nbuffers = (size_t)H5Sget_simple_extent_npoints(space);
done:
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    close_id(&attr, H5Aclose);
    return rc;
}

int brine_h5__read_pickle(brine_h5_reader *r, const uint8_t **stream, size_t *len,
                          size_t *nbuffers, brine_error *err)
{
    int rc = 0;
    hid_t dset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int64_t crc = 0;
    hsize_t n = 0;

    if (H5Lexists(r->file, "/brine", H5P_DEFAULT) <= 0 ||
        H5Lexists(r->file, "/brine/pickle", H5P_DEFAULT) <= 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s has no dataset /brine/pickle", r->path);
        goto done;
    }
    dset = H5Dopen2(r->file, "/brine/pickle", H5P_DEFAULT);
    type = dset >= 0 ? H5Dget_type(dset) : H5I_INVALID_HID;
    space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5Sget_simple_extent_ndims(space) != 1) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: /brine/pickle is not a 1-D array of bytes", r->path);
        goto done;
    }
    H5Sget_simple_extent_dims(space, &n, NULL);
    if (n < 3 || n > SIZE_MAX) {
        rc = brine__fail(err, BRINE_ECORRUPT, "%s: /brine/pickle holds %llu bytes, too few for a pickle",
                         r->path, (unsigned long long)n);
        goto done;
    }
    r->stream = brine__alloc(r->alloc, (size_t)n);
    if (!r->stream) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory reading /brine/pickle of %s", r->path);
        goto done;
    }
    r->len = (size_t)n;
    if (H5Dread(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->stream) < 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: reading /brine/pickle", r->path);
        goto done;
    }
    if ((rc = read_int_attr(dset, "crc32", &crc, "/brine/pickle", err))) {
        brine__error_prefix(err, "%s: ", r->path);
        goto done;
    }
    const uint32_t actual = crc32_of(r->stream, r->len);
    if ((uint64_t)crc != actual) {
        rc = brine__fail(err, BRINE_ECORRUPT,
                         "%s: the pickle stream is damaged: its CRC-32 is %08" PRIx32
                         ", the file says %08" PRIx64,
                         r->path, actual, (uint64_t)crc);
        goto done;
    }
    if ((rc = count_buffers_attr(r, dset, err)))
        goto done;
    *stream = r->stream;
    *len = r->len;
    *nbuffers = r->nbuffers;
done:
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    close_id(&dset, H5Dclose);
    return rc;
}

/* An array dataset opened and checked against what the stream and the registry say. */
typedef struct array_handle {
    hid_t dset;
    int chunked;         /* otherwise contiguous or compact: read with H5Dread */
    int empty;
    brine_chunk_geom g;  /* when chunked */
    unsigned pipeline;   /* BRINE_FILTER_* bits present in the pipeline */
    unsigned bit_of[8];  /* BRINE_FILTER_* bit of the filter at each pipeline position */
    int nfilters;
} array_handle;

static void describe_dims(char *out, size_t n, int ndim, const uint64_t *dims)
{
    size_t used = (size_t)snprintf(out, n, "(");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(out + used, n - used, "%s%" PRIu64, d ? ", " : "", dims[d]);
    if (used < n)
        snprintf(out + used, n - used, ")");
}

static int open_array(brine_h5_reader *r, array_handle *h, const char *path, const char *name,
                      int dtype, char order, int ndim, const uint64_t *dims, brine_error *err)
{
    int rc = 0;
    hid_t type = H5I_INVALID_HID, want = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID;
    hsize_t hdims[BRINE_MAX_NDIM];
    const brine_dtype_info *info = brine_dtype__info(dtype);

    memset(h, 0, sizeof *h);
    h->dset = H5Dopen2(r->file, path, H5P_DEFAULT);
    if (h->dset < 0) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: variable '%s': dataset %s is missing", r->path, name,
                    path);
        goto done;
    }
    type = H5Dget_type(h->dset);
    want = file_type(dtype);
    if (type < 0 || want < 0 || H5Tequal(type, want) <= 0) {
        rc = h5fail(err, BRINE_ECORRUPT,
                    "%s: variable '%s': dataset %s does not have the HDF5 type of %s", r->path, name,
                    path, info->name);
        goto done;
    }
    space = H5Dget_space(h->dset);
    if (space < 0 || H5Sget_simple_extent_ndims(space) != ndim) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: variable '%s': dataset %s has %d dimensions, expected %d",
                    r->path, name, path, space < 0 ? -1 : H5Sget_simple_extent_ndims(space), ndim);
        goto done;
    }
    H5Sget_simple_extent_dims(space, hdims, NULL);
    for (int d = 0; d < ndim; d++) {
        if (hdims[d] != dims[d]) {
            char want_s[160], got_s[160];
            uint64_t got[BRINE_MAX_NDIM];
            for (int k = 0; k < ndim; k++)
                got[k] = hdims[k];
            describe_dims(want_s, sizeof want_s, ndim, dims);
            describe_dims(got_s, sizeof got_s, ndim, got);
            rc = brine__fail(err, BRINE_ECORRUPT,
                             "%s: variable '%s': dataset %s has dimensions %s, the pickle says %s",
                             r->path, name, path, got_s, want_s);
            goto done;
        }
        h->empty |= dims[d] == 0;
    }
    /* The order attribute is for other readers: the stream's order (under
     * its CRC) is authoritative, and reading a variable-length string would
     * reach the unchecked global heap (see count_buffers_attr). */
    (void)order;
    dcpl = H5Dget_create_plist(h->dset);
    if (dcpl < 0) {
        rc = h5fail(err, BRINE_EHDF5, "%s: reading the storage of %s", r->path, path);
        goto done;
    }
    h->chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
    h->nfilters = H5Pget_nfilters(dcpl);
    if (h->nfilters < 0 || h->nfilters > 3) {
        rc = h5fail(err, BRINE_ECORRUPT, "%s: dataset %s has %d filters; brine decodes shuffle, "
                    "deflate and fletcher32 only", r->path, path, h->nfilters);
        goto done;
    }
    unsigned last = 0;
    for (int i = 0; i < h->nfilters; i++) {
        unsigned flags = 0, config = 0;
        size_t nvalues = 0;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, NULL, sizeof fname,
                                         fname, &config);
        unsigned bit = id == H5Z_FILTER_SHUFFLE     ? BRINE_FILTER_SHUFFLE
                       : id == H5Z_FILTER_DEFLATE   ? BRINE_FILTER_DEFLATE
                       : id == H5Z_FILTER_FLETCHER32 ? BRINE_FILTER_FLETCHER32
                                                     : 0;
        /* The filters must come in the standard order, each at most once. */
        if (bit == 0 || bit <= last) {
            rc = h5fail(err, BRINE_ECORRUPT,
                        "%s: dataset %s uses filter %d (%s) in position %d; brine decodes shuffle, "
                        "deflate and fletcher32 in that order only",
                        r->path, path, (int)id, fname, i);
            goto done;
        }
        last = bit;
        h->bit_of[i] = bit;
        h->pipeline |= bit;
    }
    if (!h->empty && (!h->chunked || !(h->pipeline & BRINE_FILTER_FLETCHER32))) {
        rc = brine__fail(err, BRINE_ECORRUPT,
                         "%s: variable '%s': dataset %s has no fletcher32 checksums, so brine "
                         "cannot verify it",
                         r->path, name, path);
        goto done;
    }
    if (h->chunked && !h->empty) {
        hsize_t hchunk[BRINE_MAX_NDIM];
        uint64_t chunk[BRINE_MAX_NDIM];
        if (H5Pget_chunk(dcpl, ndim, hchunk) != ndim) {
            rc = h5fail(err, BRINE_ECORRUPT, "%s: dataset %s: bad chunk shape", r->path, path);
            goto done;
        }
        for (int d = 0; d < ndim; d++)
            chunk[d] = hchunk[d];
        if (brine_chunk__geom(&h->g, ndim, dims, chunk, info->size) != 0) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s: dataset %s: unsupported chunk shape", r->path,
                             path);
            goto done;
        }
    }
done:
    close_id(&dcpl, H5Pclose);
    close_id(&space, H5Sclose);
    close_id(&want, H5Tclose);
    close_id(&type, H5Tclose);
    if (rc)
        close_id(&h->dset, H5Dclose);
    return rc;
}

/* The chunk's mask of skipped filters, from pipeline positions to BRINE_FILTER_* bits. */
static uint32_t brine_mask(const array_handle *h, uint32_t hdf5_mask)
{
    uint32_t m = 0;
    for (int i = 0; i < h->nfilters; i++)
        if (hdf5_mask & (1u << i))
            m |= h->bit_of[i];
    return m;
}

/* One dataset being read: what the two pipeline steps need. */
typedef struct read_job {
    brine_h5_reader *r;
    const array_handle *h;
    const char *path;
    const char *name;
    void *mem; /* NULL: verify only */
    chunk_buffers cb;
    brine_error *err;
    int serial_failed;
    uint64_t row0;       /* a slab (brine_h5__read_stream): its first dataset row, */
    uint64_t chunk_base; /* and the file's number of its first chunk; else 0 and 0 */
} read_job;

static int read_step(void *ctx, uint64_t chunk, size_t slot)
{
    read_job *j = ctx;
    const brine_chunk_geom *g = &j->h->g;
    hsize_t hoff[BRINE_MAX_NDIM];
    hsize_t size = 0;
    uint32_t hmask = 0;
    chunk_hoffset(g, chunk, hoff);
    hoff[0] += j->row0;
    chunk += j->chunk_base; /* for messages: the chunk's number in the file */
    j->serial_failed = 1;
    if (H5Dget_chunk_storage_size(j->h->dset, hoff, &size) < 0 || size == 0)
        return h5fail(j->err, BRINE_ECORRUPT, "%s: variable '%s': chunk %" PRIu64 " of %s is missing",
                      j->r->path, j->name, chunk, j->path);
    if (size > j->cb.bound)
        return brine__fail(j->err, BRINE_ECORRUPT,
                           "%s: variable '%s': chunk %" PRIu64 " of %s is %llu bytes, more than a "
                           "%zu-byte chunk can take",
                           j->r->path, j->name, chunk, j->path, (unsigned long long)size,
                           g->chunk_bytes);
    if (H5Dread_chunk(j->h->dset, H5P_DEFAULT, hoff, &hmask, j->cb.stored + slot * j->cb.bound) < 0)
        return h5fail(j->err, BRINE_ECORRUPT, "%s: variable '%s': reading chunk %" PRIu64 " of %s",
                      j->r->path, j->name, chunk, j->path);
    /* Only deflate may be skipped (an incompressible chunk).  A mask that
     * skips the shuffle or the checksum is damage the checksum cannot see. */
    if (brine_mask(j->h, hmask) & ~BRINE_FILTER_DEFLATE)
        return brine__fail(j->err, BRINE_ECORRUPT,
                           "%s: variable '%s': chunk %" PRIu64 " of %s has filter mask 0x%" PRIx32
                           ": only deflate may be skipped",
                           j->r->path, j->name, chunk, j->path, hmask);
    j->serial_failed = 0;
    j->cb.lens[slot] = (size_t)size;
    j->cb.masks[slot] = brine_mask(j->h, hmask);
    return 0;
}

static int decode_step(void *ctx, uint64_t chunk, size_t slot, int thread)
{
    read_job *j = ctx;
    const brine_chunk_geom *g = &j->h->g;
    const uint8_t *stored = j->cb.stored + slot * j->cb.bound;
    char *why = j->cb.whys + slot * WHY_SIZE;
    if (!j->mem)
        return brine_chunk__verify(stored, j->cb.lens[slot], j->h->pipeline, j->cb.masks[slot], why,
                                   WHY_SIZE);
    uint8_t *raw = j->cb.work + (size_t)thread * 2 * work_half(g);
    int rc = brine_chunk__decode(stored, j->cb.lens[slot], j->h->pipeline, j->cb.masks[slot],
                                 g->esize, raw + work_half(g), raw, g->chunk_bytes, why, WHY_SIZE);
    if (rc == 0) {
        uint64_t offset[BRINE_MAX_NDIM];
        brine_chunk__offset(g, chunk, offset);
        brine_chunk__scatter(g, j->mem, offset, raw);
    }
    return rc;
}

/*
 * Reads every chunk of h on this thread while OpenMP threads verify them
 * (mem == NULL) or decode them straight into mem.
 */
static int chunk_pass(brine_h5_reader *r, const array_handle *h, const char *path,
                      const char *name, void *mem, uint64_t row0, uint64_t chunk_base,
                      brine_error *err)
{
    read_job j = {r, h, path, name, mem, {0}, err, 0, row0, chunk_base};
    brine_pipe p = {0};
    if (buffers_alloc(&j.cb, &p, &h->g, r->threads, r->alloc))
        return brine__fail(err, BRINE_ENOMEM, "out of memory for the chunk buffers of '%s'", name);
    p.ctx = &j;
    p.serial = read_step;
    p.parallel = decode_step;
    int rc = brine_pipe__read(&p);
    if (rc && !j.serial_failed)
        rc = brine__fail(err, rc, "%s: variable '%s': chunk %" PRIu64 " of %s: %s", r->path, name,
                         p.failed_chunk + chunk_base, path, j.cb.whys + (p.failed_chunk % p.nslots) * WHY_SIZE);
    buffers_free(&j.cb);
    return rc;
}

int brine_h5__verify_array(brine_h5_reader *r, const char *path, const char *name, int dtype,
                           char order, int ndim, const uint64_t *dims, brine_error *err)
{
    array_handle h;
    int rc = open_array(r, &h, path, name, dtype, order, ndim, dims, err);
    if (rc)
        return rc;
    if (!h.empty)
        rc = chunk_pass(r, &h, path, name, NULL, 0, 0, err);
    H5Dclose(h.dset);
    return rc;
}

int brine_h5__read_array(brine_h5_reader *r, const char *path, const char *name, int dtype,
                         char order, int ndim, const uint64_t *dims, void *mem, brine_error *err)
{
    array_handle h;
    int rc = open_array(r, &h, path, name, dtype, order, ndim, dims, err);
    if (rc)
        return rc;
    if (!h.empty)
        rc = chunk_pass(r, &h, path, name, mem, 0, 0, err);
    H5Dclose(h.dset);
    return rc;
}

int brine_h5__read_stream(brine_h5_reader *r, const char *path, const char *name, int dtype,
                          char order, int ndim, const uint64_t *dims, size_t slab_bytes,
                          int (*write)(void *ctx, const void *data, size_t n), void *ctx,
                          brine_error *err)
{
    array_handle h;
    uint8_t *mem = NULL;
    int rc = open_array(r, &h, path, name, dtype, order, ndim, dims, err);
    if (rc || h.empty)
        goto done;
    /* Slabs of whole chunk rows along the first dimension: each is a
     * contiguous run of the array's bytes, and no chunk is decoded twice. */
    uint64_t row_bytes = h.g.esize;
    for (int d = 1; d < ndim; d++)
        row_bytes *= dims[d];
    const uint64_t c0 = h.g.chunk[0];
    uint64_t rows = slab_bytes / row_bytes / c0 * c0;
    if (rows < c0)
        rows = c0;
    if (rows > dims[0])
        rows = dims[0];
    if (rows > SIZE_MAX / row_bytes || !(mem = brine__alloc(r->alloc, (size_t)(rows * row_bytes)))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory for a slab of %" PRIu64 " rows of '%s'", rows,
                         name);
        goto done;
    }
    const uint64_t chunks_per_row = h.g.nchunks / h.g.grid[0];
    for (uint64_t row0 = 0; row0 < dims[0] && !rc; row0 += rows) {
        const uint64_t n = dims[0] - row0 < rows ? dims[0] - row0 : rows;
        array_handle slab = h;
        uint64_t sdims[BRINE_MAX_NDIM];
        memcpy(sdims, dims, (size_t)ndim * sizeof *dims);
        sdims[0] = n;
        /* A chunk taller than the last slab is accepted: scatter clips it. */
        if (brine_chunk__geom(&slab.g, ndim, sdims, h.g.chunk, h.g.esize) != 0) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s: dataset %s: unsupported chunk shape", r->path, path);
            break;
        }
        if (!(rc = chunk_pass(r, &slab, path, name, mem, row0, row0 / c0 * chunks_per_row, err)))
            rc = write(ctx, mem, (size_t)(n * row_bytes)); /* the caller's error, its own message */
    }
done:
    brine__free(r->alloc, mem);
    close_id(&h.dset, H5Dclose); /* open_array left it invalid when it failed */
    return rc;
}

/* ---------------------------------------------------------------- root attributes (reading) */

void brine_h5__free_attrs(const brine_allocator *a, brine_attr_val *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        brine__free(a, v[i].name);
        brine__free(a, v[i].s);
    }
    brine__free(a, v);
}

/* The attributes read so far, as brine_h5__read_attrs lists them. */
typedef struct attr_list {
    brine_h5_reader *r;
    brine_attr_val *v;
    size_t n, cap;
    size_t seen; /* attributes visited, read or skipped */
    brine_error *err;
    int rc;      /* the failure that stopped the iteration */
} attr_list;

/* Appends an attribute of name to l: the value is the caller's to set.  NULL when out of memory. */
static brine_attr_val *attr_append(attr_list *l, const char *name)
{
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 16;
        void *p = l->v;
        if (brine__resize(l->r->alloc, &p, l->n * sizeof *l->v, cap * sizeof *l->v))
            return NULL;
        l->v = p;
        l->cap = cap;
    }
    brine_attr_val *v = &l->v[l->n];
    memset(v, 0, sizeof *v);
    v->name = brine__strdup(l->r->alloc, name);
    if (!v->name)
        return NULL;
    l->n++;
    return v;
}

/*
 * Reads root attribute name into l when its type is one brine_attr holds;
 * skips it otherwise.  0, BRINE_ECORRUPT, BRINE_ENOMEM or BRINE_EHDF5.
 */
static int read_one_attr(attr_list *l, hid_t loc, const char *name)
{
    int rc = 0;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    const char *path = l->r->path;
    char *s = NULL;
    brine_attr_val val = {0};

    /* Not UTF-8: no brine writer wrote it, and no caller could name it. */
    if (!brine__utf8_valid(name, strlen(name)))
        goto done;
    attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0) {
        rc = h5fail(l->err, BRINE_ECORRUPT, "%s: opening root attribute '%s'", path, name);
        goto done;
    }
    type = H5Aget_type(attr);
    space = H5Aget_space(attr);
    if (type < 0 || space < 0) {
        rc = h5fail(l->err, BRINE_ECORRUPT, "%s: reading the type of root attribute '%s'", path, name);
        goto done;
    }
    if (H5Sget_simple_extent_type(space) != H5S_SCALAR)
        goto done; /* skipped */
    const size_t size = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
        const H5T_sign_t sign = H5Tget_sign(type);
        if (size == 0 || size > 8 || (sign != H5T_SGN_NONE && sign != H5T_SGN_2))
            goto done;
        herr_t got;
        if (sign == H5T_SGN_NONE) {
            /* Read as uint64: HDF5 would clip a larger value into int64 without a word. */
            uint64_t u = 0;
            got = H5Aread(attr, H5T_NATIVE_UINT64, &u);
            if (got >= 0 && u > (uint64_t)INT64_MAX)
                goto done;
            val.i = (int64_t)u;
        } else {
            got = H5Aread(attr, H5T_NATIVE_INT64, &val.i);
        }
        if (got < 0) {
            rc = h5fail(l->err, BRINE_ECORRUPT, "%s: reading root attribute '%s'", path, name);
            goto done;
        }
        val.type = BRINE_ATTR_INT;
        break;
    }
    case H5T_FLOAT:
        if (size == 0 || size > 16)
            goto done;
        if (H5Aread(attr, H5T_NATIVE_DOUBLE, &val.d) < 0) {
            rc = h5fail(l->err, BRINE_ECORRUPT, "%s: reading root attribute '%s'", path, name);
            goto done;
        }
        val.type = BRINE_ATTR_DOUBLE;
        break;
    case H5T_STRING: {
        /* Variable-length strings live in the unchecksummed global heap: never read. */
        const htri_t variable = H5Tis_variable_str(type);
        if (variable < 0) {
            rc = h5fail(l->err, BRINE_EHDF5, "%s: inspecting the type of root attribute '%s'", path,
                        name);
            goto done;
        }
        if (variable || size == 0)
            goto done;
        if (size > BRINE_H5_ATTR_STRING_MAX) {
            rc = brine__fail(l->err, BRINE_ECORRUPT,
                             "%s: root attribute '%s' is a string of %zu bytes, more than the "
                             "%zu brine reads",
                             path, name, size, BRINE_H5_ATTR_STRING_MAX);
            goto done;
        }
        s = brine__alloc(l->r->alloc, size + 1);
        if (!s) {
            rc = brine__fail(l->err, BRINE_ENOMEM, "%s: out of memory reading root attribute '%s'",
                             path, name);
            goto done;
        }
        /* Read with the file's own type: the bytes as stored, no conversion. */
        if (H5Aread(attr, type, s) < 0) {
            rc = h5fail(l->err, BRINE_ECORRUPT, "%s: reading root attribute '%s'", path, name);
            goto done;
        }
        s[size] = '\0';
        if (!brine__utf8_valid(s, strlen(s)))
            goto done;
        val.type = BRINE_ATTR_STRING;
        break;
    }
    default:
        goto done; /* enums, compounds, arrays, references...: skipped */
    }
    brine_attr_val *v = attr_append(l, name);
    if (!v) {
        rc = brine__fail(l->err, BRINE_ENOMEM, "%s: out of memory reading root attribute '%s'", path,
                         name);
        goto done;
    }
    v->type = val.type;
    v->i = val.i;
    v->d = val.d;
    v->s = s;
    s = NULL;
done:
    brine__free(l->r->alloc, s);
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    close_id(&attr, H5Aclose);
    return rc;
}

static herr_t visit_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    attr_list *l = data;
    (void)info;
    if (++l->seen > BRINE_H5_ATTRS_MAX) {
        l->rc = brine__fail(l->err, BRINE_ECORRUPT, "%s has more than %d root attributes",
                            l->r->path, BRINE_H5_ATTRS_MAX);
        return -1;
    }
    l->rc = read_one_attr(l, loc, name);
    return l->rc ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const brine_attr_val *)a)->name, ((const brine_attr_val *)b)->name);
}

int brine_h5__read_attrs(brine_h5_reader *r, brine_attr_val **out, size_t *n, brine_error *err)
{
    int rc = 0;
    attr_list l = {r, NULL, 0, 0, 0, err, 0};
    hsize_t idx = 0;

    *out = NULL;
    *n = 0;
    if (H5Aiterate2(r->file, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, &l) < 0) {
        rc = l.rc ? l.rc : h5fail(err, BRINE_ECORRUPT, "%s: listing the root attributes", r->path);
        H5Eclear2(H5E_DEFAULT);
        goto done;
    }
    /* HDF5 lists dense attribute storage by its own order: sort here. */
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, by_name);
    for (size_t i = 1; i < l.n; i++) {
        if (strcmp(l.v[i - 1].name, l.v[i].name) == 0) {
            rc = brine__fail(err, BRINE_ECORRUPT, "%s has two root attributes named '%s'", r->path,
                             l.v[i].name);
            goto done;
        }
    }
done:
    if (rc) {
        brine_h5__free_attrs(r->alloc, l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

void brine_h5__close(brine_h5_reader *r)
{
    if (!r)
        return;
    if (r->file >= 0)
        H5Fclose(r->file);
    H5Eclear2(H5E_DEFAULT);
    brine__free(r->alloc, r->stream);
    brine__free(r->alloc, r);
}

/* ---------------------------------------------------------------- storage (inspection) */

int brine_h5__storage(brine_h5_reader *r, const char *path, const char *name,
                      brine_h5_storage *out, brine_error *err)
{
    int rc = 0;
    hid_t dcpl = H5I_INVALID_HID;
    memset(out, 0, sizeof *out);
    out->deflate_level = -1;
    hid_t dset = H5Dopen2(r->file, path, H5P_DEFAULT);
    if (dset < 0)
        return h5fail(err, BRINE_ECORRUPT, "%s: variable '%s': dataset %s is missing", r->path, name,
                      path);
    out->stored_bytes = H5Dget_storage_size(dset);
    if ((dcpl = H5Dget_create_plist(dset)) < 0) {
        rc = h5fail(err, BRINE_EHDF5, "%s: reading the storage of %s", r->path, path);
        goto done;
    }
    const int nfilters = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nfilters; i++) {
        unsigned flags = 0, config = 0, values[8] = {0};
        size_t nvalues = 8;
        char fname[64] = "";
        const H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, values,
                                               sizeof fname, fname, &config);
        if (id == H5Z_FILTER_SHUFFLE)
            out->filters |= BRINE_FILTER_SHUFFLE;
        else if (id == H5Z_FILTER_DEFLATE) {
            out->filters |= BRINE_FILTER_DEFLATE;
            out->deflate_level = nvalues > 0 ? (int)values[0] : -1;
        } else if (id == H5Z_FILTER_FLETCHER32)
            out->filters |= BRINE_FILTER_FLETCHER32;
        else
            out->filters |= BRINE_FILTER_OTHER;
    }
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t c[BRINE_MAX_NDIM];
        const int n = H5Pget_chunk(dcpl, BRINE_MAX_NDIM, c);
        if (n < 0 || n > BRINE_MAX_NDIM) {
            rc = h5fail(err, BRINE_ECORRUPT, "%s: dataset %s: bad chunk shape", r->path, path);
            goto done;
        }
        out->chunk_ndim = n;
        for (int d = 0; d < n; d++)
            out->chunk[d] = c[d];
    }
done:
    close_id(&dcpl, H5Pclose);
    H5Dclose(dset);
    return rc;
}
