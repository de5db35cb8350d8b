/*
 * Standalone pickles with every array in-band: brine_export (a checkpoint,
 * streamed to a sink a slab at a time) and brine_dumps (the registered
 * state, in memory).  Both write brine's own array form,
 * numpy.ndarray(shape, dtype, BYTEARRAY8 data, 0, None, order), which stock
 * pickle and numpy 1.x and 2.x read and which the strict decoder accepts
 * (docs/format.md, 3.3): no private numpy reconstructor that moves between
 * numpy versions.
 */
#include <inttypes.h>
#include <string.h>

#include "../common/alloc.h"
#include "../format/dtype.h"
#include "../format/pickle_encode.h"
#include "core.h"
#include "reader.h"
#include "save.h"

/* The encoder's buffer is handed to the sink whenever it holds this much, and before array data. */
#define FLUSH_AT ((size_t)1 << 16)

typedef struct sink {
    brine_write_fn write;
    void *ctx;
    brine_reader *r;
} sink;

static int put(sink *s, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    const int rc = s->write(s->ctx, data, n);
    if (rc >= 0)
        return 0;
    const int code = rc == BRINE_ENOSPC || rc == BRINE_ENOMEM ? rc : BRINE_EIO;
    return brine__fail(brine_reader__err(s->r), code, "exporting %s: the output refused %zu bytes (%s)",
                       brine_reader_path(s->r), n, brine_errstr(code));
}

/* put() as a brine_write_fn, for brine_read_stream. */
static int put_data(void *ctx, const void *data, size_t n)
{
    return put(ctx, data, n);
}

/* Hands what the encoder holds to the sink and empties it. */
static int flush(brine_pickle_enc *e, sink *s)
{
    if (e->out.failed)
        return brine__fail(brine_reader__err(s->r), BRINE_ENOMEM, "out of memory encoding %s",
                           brine_reader_path(s->r));
    const int rc = put(s, e->out.data, e->out.len);
    e->out.len = 0;
    return rc;
}

/* One variable of the checkpoint, as its Python value. */
static int export_leaf(brine_pickle_enc *e, sink *s, const brine_var_info *v)
{
    int rc = 0;
    brine_reader *r = s->r;
    switch (v->kind) {
    case BRINE_VAR_ARRAY: {
        uint64_t shape[BRINE_MAX_NDIM];
        for (int d = 0; d < v->ndim; d++)
            shape[d] = v->shape[d];
        brine_pickle__enc_ndarray_begin(e, v->ndim, shape, brine_dtype_str((brine_dtype)v->dtype));
        brine_pickle__enc_bytearray8_header(e, v->nbytes);
        if ((rc = flush(e, s)))
            return rc;
        /* The array's bytes go from the file to the sink a slab at a time. */
        if ((rc = brine_read_stream(r, v->name, put_data, s)))
            return rc;
        brine_pickle__enc_ndarray_end(e, v->flags & BRINE_FORTRAN_ORDER ? 'F' : 'C');
        return rc;
    }
    case BRINE_VAR_SCALAR: {
        double value[2]; /* room and alignment for any scalar dtype */
        if ((rc = brine_read(r, v->name, (brine_dtype)v->dtype, value, 0, NULL, 0)))
            return rc;
        brine_save__encode_scalar(e, (brine_dtype)v->dtype, value);
        return 0;
    }
    case BRINE_VAR_STRING: {
        char *text = brine__alloc(NULL, v->nbytes + 1);
        if (!text)
            return brine__fail(brine_reader__err(r), BRINE_ENOMEM, "out of memory");
        if (!(rc = brine_read_string(r, v->name, text, v->nbytes + 1)))
            brine_pickle__enc_str(e, text, v->nbytes);
        brine__free(NULL, text);
        return rc;
    }
    default:
        return brine__fail(brine_reader__err(r), BRINE_EINVAL,
                           "%s: variable '%s' is a value brine cannot read (not an array, scalar or "
                           "string), so it cannot be exported",
                           brine_reader_path(r), v->name);
    }
}

/* Length of the name component of name starting at from. */
static size_t component_len(const char *name, size_t from)
{
    const char *slash = strchr(name + from, '/');
    return slash ? (size_t)(slash - (name + from)) : strlen(name + from);
}

/*
 * The dict of the group whose names start with prefix (prefix_len bytes,
 * ending with '/' unless empty), members in order of first appearance: the
 * reader lists variables in the stream's order, so the nesting comes out as
 * it was written.
 */
static int export_group(brine_pickle_enc *e, sink *s, const brine_var_info *vars, size_t n,
                        const char *prefix, size_t prefix_len)
{
    int rc = 0;
    brine_pickle__enc_dict_begin(e);
    for (size_t i = 0; i < n && !rc; i++) {
        const char *name = vars[i].name;
        if (strncmp(name, prefix, prefix_len) != 0)
            continue;
        const size_t len = component_len(name, prefix_len);
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *o = vars[j].name;
            seen = strncmp(o, prefix, prefix_len) == 0 && strncmp(o + prefix_len, name + prefix_len, len) == 0 &&
                   (o[prefix_len + len] == '/' || o[prefix_len + len] == '\0');
        }
        if (seen)
            continue;
        brine_pickle__enc_key(e, name + prefix_len, len);
        if (name[prefix_len + len] == '/')
            rc = export_group(e, s, vars, n, name, prefix_len + len + 1);
        else
            rc = export_leaf(e, s, &vars[i]);
        if (!rc && e->out.len >= FLUSH_AT)
            rc = flush(e, s);
    }
    brine_pickle__enc_dict_end(e);
    return rc;
}

int brine_export(brine_reader *r, brine_write_fn write, void *ctx)
{
    int rc = 0;
    if (!r)
        return BRINE_EINVAL;
    brine__error_clear(brine_reader__err(r));
    if (!write)
        return brine__fail(brine_reader__err(r), BRINE_EINVAL, "brine_export: write is NULL");
    const size_t n = brine_reader_count(r);
    brine_var_info *vars = n ? brine__calloc(NULL, n, sizeof *vars) : NULL;
    if (n && !vars)
        return brine__fail(brine_reader__err(r), BRINE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        brine_reader_var(r, i, &vars[i]);
    sink s = {write, ctx, r};
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, NULL);
    if (!(rc = export_group(&e, &s, vars, n, "", 0))) {
        uint8_t *tail = NULL;
        size_t len = 0;
        const int misuse = brine_pickle__enc_finish(&e, &tail, &len);
        if (misuse)
            rc = brine__fail(brine_reader__err(r), misuse, "%s: the state cannot be encoded (%s)",
                             brine_reader_path(r), brine_errstr(misuse));
        else
            rc = put(&s, tail, len);
        brine__free(NULL, tail);
    } else {
        brine_pickle__enc_abort(&e);
    }
    brine__free(NULL, vars);
    return rc;
}

int brine_dumps(brine *b, uint8_t **out, size_t *len)
{
    int rc = 0;
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if (!out || !len)
        return brine__fail(&b->err, BRINE_EINVAL, "brine_dumps: out or len is NULL");
    *out = NULL;
    *len = 0;
    /* The checks of a save (strings, resizable arrays); step 0 is only for the path check. */
    if ((rc = brine_save__check(b, 0, "brine_dumps")))
        return rc;
    brine_pickle_enc e;
    brine_pickle__enc_init(&e, b->alloc);
    brine_save__encode_group(b->vars, b->nvars, &e, "", 0, NULL, NULL);
    if ((rc = brine_pickle__enc_finish(&e, out, len)))
        return brine__fail(&b->err, rc, "brine_dumps: %s encoding the state",
                           rc == BRINE_ENOMEM ? "out of memory" : "nesting too deep");
    return 0;
}

void brine_dumps_free(brine *b, uint8_t *buf)
{
    if (buf)
        brine__free(b ? b->alloc : NULL, buf);
}
