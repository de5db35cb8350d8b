/*
 * brine_save: encode the state, write the file under a temporary name,
 * publish it, rotate.  brine_save__write is that pipeline for any variable
 * table, so asynchronous saves (async.c) run the same code on their snapshot.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/alloc.h"
#include "../common/text.h"
#include "../format/dtype.h"
#include "../format/h5_layout.h"
#include "../format/pickle_encode.h"
#include "../io/dir_scan.h"
#include "../io/h5_vfd.h"
#include "../io/publish.h"
#include "async.h"
#include "coll.h"
#include "core.h"
#include "save.h"

/* Length of the next name component of name starting at from. */
static size_t component_len(const char *name, size_t from)
{
    const char *slash = strchr(name + from, '/');
    return slash ? (size_t)(slash - (name + from)) : strlen(name + from);
}

void brine_save__encode_scalar(brine_pickle_enc *e, brine_dtype dtype, const void *p)
{
    switch (dtype) {
    case BRINE_BOOL: brine_pickle__enc_bool(e, *(const unsigned char *)p != 0); break;
    case BRINE_I8: brine_pickle__enc_int(e, *(const int8_t *)p); break;
    case BRINE_I16: brine_pickle__enc_int(e, *(const int16_t *)p); break;
    case BRINE_I32: brine_pickle__enc_int(e, *(const int32_t *)p); break;
    case BRINE_I64: brine_pickle__enc_int(e, *(const int64_t *)p); break;
    case BRINE_U8: brine_pickle__enc_uint(e, *(const uint8_t *)p); break;
    case BRINE_U16: brine_pickle__enc_uint(e, *(const uint16_t *)p); break;
    case BRINE_U32: brine_pickle__enc_uint(e, *(const uint32_t *)p); break;
    case BRINE_U64: brine_pickle__enc_uint(e, *(const uint64_t *)p); break;
    case BRINE_F32: brine_pickle__enc_float(e, *(const float *)p); break;
    case BRINE_F64: brine_pickle__enc_float(e, *(const double *)p); break;
    case BRINE_C64: {
        const float *c = p;
        brine_pickle__enc_complex(e, c[0], c[1]);
        break;
    }
    case BRINE_C128: {
        const double *c = p;
        brine_pickle__enc_complex(e, c[0], c[1]);
        break;
    }
    }
}

void brine_save__encode_group(const brine_var *vars, size_t nvars, brine_pickle_enc *e,
                              const char *prefix, size_t prefix_len, size_t *order, size_t *narrays)
{
    brine_pickle__enc_dict_begin(e);
    for (size_t i = 0; i < nvars; i++) {
        const brine_var *v = &vars[i];
        if (strncmp(v->name, prefix, prefix_len) != 0)
            continue;
        const size_t n = component_len(v->name, prefix_len);
        const int leaf = v->name[prefix_len + n] == '\0';
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *o = vars[j].name;
            seen = strncmp(o, prefix, prefix_len) == 0 &&
                   strncmp(o + prefix_len, v->name + prefix_len, n) == 0 &&
                   (o[prefix_len + n] == '/' || o[prefix_len + n] == '\0');
        }
        if (seen)
            continue;
        brine_pickle__enc_key(e, v->name + prefix_len, n);
        if (!leaf) {
            brine_save__encode_group(vars, nvars, e, v->name, prefix_len + n + 1, order, narrays);
        } else if (v->is_string) {
            brine_pickle__enc_str(e, v->data, strlen(v->data));
        } else if (v->ndim == 0) {
            brine_save__encode_scalar(e, v->dtype, v->data);
        } else if (!order) {
            /* In-band (brine_dumps): the array's bytes right in the stream. */
            brine_pickle__enc_ndarray_begin(e, v->ndim, v->shape, brine_dtype__info(v->dtype)->numpy);
            brine_pickle__enc_bytearray8_header(e, v->nbytes);
            brine_buf__append(&e->out, v->data, v->nbytes);
            brine_pickle__enc_ndarray_end(e, v->order);
        } else {
            brine_pickle__enc_ndarray(e, v->ndim, v->shape, brine_dtype__info(v->dtype)->numpy,
                                      v->order);
            order[(*narrays)++] = i;
        }
    }
    brine_pickle__enc_dict_end(e);
}

/* Strings must be NUL-terminated within their capacity and valid UTF-8, or Python cannot load them. */
static int check_strings(brine *b)
{
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *v = &b->vars[i];
        if (!v->is_string)
            continue;
        const char *nul = memchr(v->data, '\0', v->nbytes);
        if (!nul)
            return brine__fail(&b->err, BRINE_EINVAL,
                               "string variable '%s' has no NUL within its capacity of %zu bytes",
                               v->name, v->nbytes);
        if (!brine__utf8_valid(v->data, (size_t)(nul - (const char *)v->data)))
            return brine__fail(&b->err, BRINE_EINVAL, "string variable '%s' is not valid UTF-8",
                               v->name);
    }
    return 0;
}

/*
 * When the driver saw a failing system call, that is the real cause: report
 * it rather than HDF5's stack.  It can fail even when rc is 0: failures
 * while HDF5 closes the file (the last writes, the fsync) are only recorded.
 */
static int fold_io_failure(brine_error *err, int rc, const brine_vfd_status *st)
{
    if (st->neg_errno == 0)
        return rc;
    return brine__fail_errno(err, st->neg_errno, "%s of %s failed", st->op, st->path);
}

static int write_file(const brine *b, const brine_save_state *s, const char *tmp, int64_t step,
                      const uint8_t *stream, size_t len, const size_t *order, size_t narrays,
                      brine_error *err)
{
    int rc = 0;
    brine_vfd_status status = {0};
    brine_h5_writer *w = NULL;
    const brine_h5_write_opts wopts = {b->codec, s->threads};
    char **paths = NULL;
    hid_t fapl = brine_vfd__fapl(b->io, &status);

    if (fapl < 0) {
        rc = brine__fail(err, BRINE_EHDF5, "cannot set up brine's HDF5 file driver");
        goto done;
    }
    if (narrays && !(paths = brine__calloc(b->alloc, narrays, sizeof *paths))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = brine_h5__create(&w, tmp, fapl, step, &wopts, b->alloc, err)))
        goto done;
    if ((rc = brine_h5__write_user_attrs(w, s->attrs, s->nattrs, err)))
        goto done;
    for (size_t k = 0; k < narrays; k++) {
        const brine_var *v = &s->vars[order[k]];
        size_t n = strlen(v->name);
        if (!(paths[k] = brine__alloc(b->alloc, n + 8))) {
            rc = brine__fail(err, BRINE_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(paths[k], "/state/", 7);
        memcpy(paths[k] + 7, v->name, n + 1);
        if ((rc = brine_h5__write_array(w, v->name, v->dtype, v->order, v->ndim, v->dims, v->data,
                                        err)))
            goto done;
    }
    if ((rc = brine_h5__write_pickle(w, stream, len, (const char *const *)paths, narrays, err)))
        goto done;
    rc = brine_h5__finish(w, err);
    w = NULL;
done:
    brine_h5__abandon(w);
    if (fapl >= 0)
        H5Pclose(fapl);
    for (size_t k = 0; paths && k < narrays; k++)
        brine__free(b->alloc, paths[k]);
    brine__free(b->alloc, paths);
    return fold_io_failure(err, rc, &status);
}

int brine_save__check(brine *b, int64_t step, const char *fn)
{
    int rc = 0;
    char final[4096], tmp[4096];
    if (step < 0 || step > BRINE_MAX_STEP)
        return brine__fail(&b->err, BRINE_EINVAL, "%s: step %" PRId64 " is not in 0..%" PRId64, fn,
                           step, BRINE_MAX_STEP);
    if ((rc = check_strings(b)) || (rc = brine_registry__refresh(b)))
        return rc;
    /* The names must fit: found now, not by a background save. */
    return brine_publish__paths(final, sizeof final, tmp, sizeof tmp, b->dir, b->prefix, step,
                                &b->err);
}

void brine_save__started(brine *b)
{
    /* The clock is read only when its reading is used: every_seconds is on. */
    if (b->opts.every_seconds > 0)
        b->last_save_time = brine_policy__now(b);
}

/*
 * Encodes s, writes it to tmp and publishes it as final in dir (fsync,
 * rename, directory fsync).  On a failure tmp is gone; err has the cause.
 */
static int write_publish(const brine *b, const brine_save_state *s, int64_t step, const char *tmp,
                         const char *final, const char *dir, brine_error *err)
{
    int rc = 0;
    brine_pickle_enc enc;
    uint8_t *stream = NULL;
    size_t len = 0, narrays = 0;
    size_t *order = NULL;
    int tmp_exists = 0;

    if (s->nvars && !(order = brine__calloc(b->alloc, s->nvars, sizeof *order))) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory");
        goto done;
    }
    brine_pickle__enc_init(&enc, b->alloc);
    brine_save__encode_group(s->vars, s->nvars, &enc, "", 0, order, &narrays);
    if (brine_pickle__enc_finish(&enc, &stream, &len)) {
        rc = brine__fail(err, BRINE_ENOMEM, "out of memory encoding the pickle stream");
        goto done;
    }
    tmp_exists = 1;
    if ((rc = write_file(b, s, tmp, step, stream, len, order, narrays, err)))
        goto done;
    if ((rc = brine_publish__commit(b->io, tmp, final, dir, err)))
        goto done;
    tmp_exists = 0;
done:
    if (rc && tmp_exists)
        brine_publish__discard(b->io, tmp);
    brine__free(b->alloc, stream);
    brine__free(b->alloc, order);
    return rc;
}

int brine_save__write(const brine *b, const brine_save_state *s, int64_t step, brine_error *err)
{
    int rc = 0;
    char final[4096], tmp[4096];
    brine_h5_quiet quiet;

    brine__error_clear(err);
    if ((rc = brine_publish__paths(final, sizeof final, tmp, sizeof tmp, b->dir, b->prefix, step,
                                   err)))
        return rc;

    brine_h5__quiet_begin(&quiet);
    /* Leftovers of a killed writer: they are not checkpoints, only lost space. */
    brine_error ignored;
    brine_scan__remove_temps(b->io, b->alloc, b->dir, b->prefix, &ignored);
    if ((rc = write_publish(b, s, step, tmp, final, b->dir, err)))
        goto done;
    /* Rotation is cleanup: a deletion that fails is retried by the next save. */
    brine_scan__rotate_every(b->io, b->alloc, b->dir, b->prefix, b->opts.keep_last,
                             b->opts.keep_every, step, &ignored);
done:
    if (rc)
        brine__error_prefix(err, "saving step %" PRId64 " to %s: ", step, b->dir);
    brine_h5__quiet_end(&quiet);
    return rc;
}

int brine_save__write_rank(const brine *b, const brine_save_state *s, int64_t step,
                           const char *tmpdir, uint64_t *size, uint32_t *crc, brine_error *err)
{
    int rc = 0;
    char final[4096], tmp[4096];
    brine_h5_quiet quiet;
    const int rank = b->coll->rank;

    brine__error_clear(err);
    *size = 0;
    *crc = 0;
    const int n = snprintf(final, sizeof final, "%s/rank-%d.h5", tmpdir, rank);
    const int m = snprintf(tmp, sizeof tmp, "%s/.rank-%d.h5.tmp-%ld", tmpdir, rank, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof final || m < 0 || (size_t)m >= sizeof tmp)
        return brine__fail(err, BRINE_EINVAL, "saving step %" PRId64 " to %s (rank %d): the path "
                           "of the rank's file in %s is too long", step, b->dir, rank, tmpdir);
    brine_h5__quiet_begin(&quiet);
    if ((rc = write_publish(b, s, step, tmp, final, tmpdir, err)))
        goto done;
    /* What the manifest records, read back from the file as it is now on disk. */
    rc = brine_coll__file_crc(b->io, final, size, crc, err);
done:
    if (rc)
        brine__error_prefix(err, "saving step %" PRId64 " to %s (rank %d): ", step, b->dir, rank);
    brine_h5__quiet_end(&quiet);
    return rc;
}

int brine_save(brine *b, int64_t step)
{
    int rc = 0;
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    const int check_rc = brine_save__check(b, step, "brine_save");
    /* In a group a rank's own bad state still takes part in the agreement, which fails
     * everywhere; a bad step is every rank's, and fails on every rank without it. */
    if (check_rc && (!b->coll || step < 0 || step > BRINE_MAX_STEP))
        return check_rc;
    /* One save at a time, and a background failure is reported before anything else is done. */
    if ((rc = brine_async__settle(b, (b->opts.async_flags & BRINE_ASYNC_NOWAIT) != 0)))
        return rc;
    const brine_save_state s = {b->vars, b->nvars, b->attrs, b->nattrs, b->opts.threads};
    if (check_rc)
        return brine_coll__save(b, &s, step, check_rc);
    brine_save__started(b);
    return brine_save__sync(b, &s, step);
}

int brine_save__sync(brine *b, const brine_save_state *s, int64_t step)
{
    if (b->coll)
        return brine_coll__save(b, s, step, 0);
    return brine_save__write(b, s, step, &b->err);
}
