/* brine_restore: find the newest checkpoint that verifies and load it into the registered memory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../format/dtype.h"
#include "../format/h5_layout.h"
#include "../format/pickle_decode.h"
#include "../io/dir_scan.h"
#include "../io/h5_vfd.h"
#include "../io/io.h"
#include "core.h"

/* Everything verification learnt about one variable, so the copy phase cannot fail on it. */
typedef struct planned {
    const brine_pvalue *value;
    char *dataset; /* arrays stored out of band: the dataset path, owned */
} planned;

static const char *kind_name(brine_pkind k)
{
    switch (k) {
    case BRINE_PV_NONE: return "None";
    case BRINE_PV_BOOL: return "a bool";
    case BRINE_PV_INT: return "an int";
    case BRINE_PV_FLOAT: return "a float";
    case BRINE_PV_COMPLEX: return "a complex";
    case BRINE_PV_STR: return "a str";
    case BRINE_PV_BYTES: return "bytes";
    case BRINE_PV_TUPLE: return "a tuple";
    case BRINE_PV_LIST: return "a list";
    case BRINE_PV_DICT: return "a dict (a group)";
    case BRINE_PV_NDARRAY: return "an array";
    default: return "an unexpected value";
    }
}

/* Whether an integer value fits the dtype's range. */
static int int_fits(const brine_pvalue *v, brine_dtype d)
{
    if (v->v.integer.negative) {
        int64_t x = v->v.integer.i;
        switch (d) {
        case BRINE_I8: return x >= INT8_MIN;
        case BRINE_I16: return x >= INT16_MIN;
        case BRINE_I32: return x >= INT32_MIN;
        case BRINE_I64: return 1;
        default: return 0;
        }
    }
    uint64_t u = v->v.integer.u;
    switch (d) {
    case BRINE_I8: return u <= INT8_MAX;
    case BRINE_I16: return u <= INT16_MAX;
    case BRINE_I32: return u <= INT32_MAX;
    case BRINE_I64: return u <= INT64_MAX;
    case BRINE_U8: return u <= UINT8_MAX;
    case BRINE_U16: return u <= UINT16_MAX;
    case BRINE_U32: return u <= UINT32_MAX;
    default: return 1;
    }
}

static double int_as_double(const brine_pvalue *v)
{
    return v->v.integer.negative ? (double)v->v.integer.i : (double)v->v.integer.u;
}

/* Checks a scalar value against its registered dtype.  0 or BRINE_EMISMATCH. */
static int check_scalar(brine *b, const char *file, const brine_var *var, const brine_pvalue *v)
{
    const brine_dtype_info *info = brine_dtype__info(var->dtype);
    int ok = 0;
    switch (info->kind) {
    case BRINE_KIND_BOOL: ok = v->kind == BRINE_PV_BOOL; break;
    case BRINE_KIND_INT:
    case BRINE_KIND_UINT:
        if (v->kind == BRINE_PV_INT && !int_fits(v, var->dtype))
            return brine__fail(&b->err, BRINE_EMISMATCH,
                               "%s: variable '%s': the value does not fit in %s", file, var->name,
                               info->name);
        ok = v->kind == BRINE_PV_INT;
        break;
    /* A float may have been edited in Python as an int (1 rather than 1.0): accept it. */
    case BRINE_KIND_FLOAT: ok = v->kind == BRINE_PV_FLOAT || v->kind == BRINE_PV_INT; break;
    case BRINE_KIND_COMPLEX:
        ok = v->kind == BRINE_PV_COMPLEX || v->kind == BRINE_PV_FLOAT || v->kind == BRINE_PV_INT;
        break;
    }
    if (!ok)
        return brine__fail(&b->err, BRINE_EMISMATCH,
                           "%s: variable '%s' is registered as a %s scalar, the checkpoint has %s",
                           file, var->name, info->name, kind_name(v->kind));
    return 0;
}

static void store_scalar(const brine_var *var, const brine_pvalue *v)
{
    double re = 0, im = 0;
    if (v->kind == BRINE_PV_FLOAT)
        re = v->v.f;
    else if (v->kind == BRINE_PV_INT)
        re = int_as_double(v);
    else if (v->kind == BRINE_PV_COMPLEX) {
        re = v->v.c.re;
        im = v->v.c.im;
    }
    void *p = var->data;
    switch (var->dtype) {
    case BRINE_BOOL: *(unsigned char *)p = (unsigned char)v->v.b; break;
    case BRINE_I8: *(int8_t *)p = (int8_t)v->v.integer.i; break;
    case BRINE_I16: *(int16_t *)p = (int16_t)v->v.integer.i; break;
    case BRINE_I32: *(int32_t *)p = (int32_t)v->v.integer.i; break;
    case BRINE_I64: *(int64_t *)p = v->v.integer.i; break;
    case BRINE_U8: *(uint8_t *)p = (uint8_t)v->v.integer.u; break;
    case BRINE_U16: *(uint16_t *)p = (uint16_t)v->v.integer.u; break;
    case BRINE_U32: *(uint32_t *)p = (uint32_t)v->v.integer.u; break;
    case BRINE_U64: *(uint64_t *)p = v->v.integer.u; break;
    case BRINE_F32: *(float *)p = (float)re; break;
    case BRINE_F64: *(double *)p = re; break;
    case BRINE_C64: ((float *)p)[0] = (float)re; ((float *)p)[1] = (float)im; break;
    case BRINE_C128: ((double *)p)[0] = re; ((double *)p)[1] = im; break;
    }
}

static void describe_shape(char *out, size_t n, int ndim, const uint64_t *shape, char order)
{
    size_t used = (size_t)snprintf(out, n, "(");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(out + used, n - used, "%s%" PRIu64, d ? ", " : "", shape[d]);
    if (used < n)
        snprintf(out + used, n - used, "%s) order %c", ndim == 1 ? "," : "", order);
}

/* Checks an array value against its registered variable and verifies its dataset. */
static int check_array(brine *b, brine_h5_reader *r, const char *file, const brine_var *var,
                       const brine_pvalue *v, size_t nbuffers, planned *plan)
{
    const brine_dtype_info *info = brine_dtype__info(var->dtype);
    if (v->kind != BRINE_PV_NDARRAY)
        return brine__fail(&b->err, BRINE_EMISMATCH,
                           "%s: variable '%s' is registered as a %s array, the checkpoint has %s",
                           file, var->name, info->name, kind_name(v->kind));
    int same = v->v.array.dtype == (int)var->dtype && v->v.array.ndim == var->ndim &&
               v->v.array.order == var->order;
    for (int d = 0; same && d < var->ndim; d++)
        same = v->v.array.shape[d] == var->shape[d];
    if (!same) {
        char want[200], got[200];
        const brine_dtype_info *gi = brine_dtype__info(v->v.array.dtype);
        describe_shape(want, sizeof want, var->ndim, var->shape, var->order);
        describe_shape(got, sizeof got, v->v.array.ndim, v->v.array.shape, v->v.array.order);
        return brine__fail(&b->err, BRINE_EMISMATCH,
                           "%s: variable '%s' is registered as %s %s, the checkpoint has %s %s", file,
                           var->name, info->name, want, gi ? gi->name : "?", got);
    }
    if (v->v.array.buffer < 0) {
        /* In-band data: the decoder has checked its length against the shape. */
        plan->dataset = NULL;
        return 0;
    }
    if ((uint64_t)v->v.array.buffer >= nbuffers)
        return brine__fail(&b->err, BRINE_ECORRUPT,
                           "%s: variable '%s' uses buffer %" PRId64 " but the file lists %zu", file,
                           var->name, v->v.array.buffer, nbuffers);
    /* docs/format.md, 2.3: an array's dataset is /state/<name>. */
    size_t n = strlen(var->name);
    if (!(plan->dataset = brine__alloc(b->alloc, n + 8)))
        return brine__fail(&b->err, BRINE_ENOMEM, "out of memory");
    memcpy(plan->dataset, "/state/", 7);
    memcpy(plan->dataset + 7, var->name, n + 1);
    return brine_h5__verify_array(r, plan->dataset, var->name, var->dtype, var->order, var->ndim,
                                  var->dims, &b->err);
}

/* Reads the start of file through the I/O methods and checks it is an HDF5 file brine can verify. */
static int check_header(brine *b, const char *file)
{
    uint8_t head[BRINE_H5_HEADER_BYTES];
    char why[200];
    int fd = b->io->open(b->io->ctx, file, O_RDONLY, 0);
    if (fd < 0)
        return brine__fail_errno(&b->err, fd, "open of %s failed", file);
    int rc = brine_io__pread_all(b->io, fd, head, sizeof head, 0);
    b->io->close(b->io->ctx, fd);
    if (rc == -EIO)
        /* Also an unexpected end of file: too short to be a checkpoint. */
        return brine__fail(&b->err, BRINE_ECORRUPT, "%s: too short or unreadable as HDF5", file);
    if (rc)
        return brine__fail_errno(&b->err, rc, "pread of %s failed", file);
    if (brine_h5__check_header(head, sizeof head, why, sizeof why))
        return brine__fail(&b->err, BRINE_ECORRUPT, "%s: %s", file, why);
    return 0;
}

/*
 * Verifies one checkpoint completely, then copies it into the registered
 * memory.  *copied tells whether memory was written (then a failure has left
 * it partly written).
 */
static int restore_file(brine *b, const char *file, int64_t file_step, hid_t fapl, int64_t *step,
                        int *copied)
{
    int rc = 0;
    brine_h5_reader *r = NULL;
    brine_pickle_doc *doc = NULL;
    planned *plan = NULL;
    const uint8_t *stream;
    size_t len, nbuffers;

    *copied = 0;
    if ((rc = check_header(b, file)) ||
        (rc = brine_h5__open(&r, file, fapl, b->opts.threads, b->alloc, &b->err)) ||
        (rc = brine_h5__read_pickle(r, &stream, &len, &nbuffers, &b->err)))
        goto done;
    /* No checksum covers the step attribute: the name must agree with it. */
    if (brine_h5__step(r) != file_step) {
        rc = brine__fail(&b->err, BRINE_ECORRUPT,
                         "%s: its step attribute says %" PRId64 ", its name %" PRId64, file,
                         brine_h5__step(r), file_step);
        goto done;
    }
    if ((rc = brine_pickle__decode(&doc, stream, len, b->alloc, &b->err))) {
        brine__error_prefix(&b->err, "%s: the pickle stream: ", file);
        goto done;
    }
    if (brine_pickle__nbuffers(doc) != nbuffers) {
        rc = brine__fail(&b->err, BRINE_ECORRUPT,
                         "%s: the pickle stream takes %" PRIu64 " buffers, the file lists %zu", file,
                         brine_pickle__nbuffers(doc), nbuffers);
        goto done;
    }
    const brine_pvalue *root = brine_pickle__root(doc);
    if (root->kind != BRINE_PV_DICT) {
        rc = brine__fail(&b->err, BRINE_ECORRUPT, "%s: the pickled state is %s, not a dict", file,
                         kind_name(root->kind));
        goto done;
    }
    if (b->nvars && !(plan = brine__calloc(b->alloc, b->nvars, sizeof *plan))) {
        rc = brine__fail(&b->err, BRINE_ENOMEM, "out of memory");
        goto done;
    }

    /* Phase 1: verify everything; nothing is written to registered memory. */
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *var = &b->vars[i];
        const brine_pvalue *v = brine_pickle__lookup(root, var->name);
        if (!v) {
            rc = brine__fail(&b->err, BRINE_EMISMATCH,
                             "%s: variable '%s' is registered but not in the checkpoint", file,
                             var->name);
            goto done;
        }
        plan[i].value = v;
        if (var->is_string) {
            if (v->kind != BRINE_PV_STR)
                rc = brine__fail(&b->err, BRINE_EMISMATCH,
                                 "%s: variable '%s' is registered as a string, the checkpoint has %s",
                                 file, var->name, kind_name(v->kind));
            else if (v->v.str.len + 1 > var->nbytes)
                rc = brine__fail(&b->err, BRINE_EMISMATCH,
                                 "%s: string variable '%s' holds %zu bytes in the checkpoint, more "
                                 "than its capacity of %zu bytes (with the NUL) allows",
                                 file, var->name, v->v.str.len, var->nbytes);
        } else if (var->ndim == 0) {
            rc = check_scalar(b, file, var, v);
        } else {
            rc = check_array(b, r, file, var, v, nbuffers, &plan[i]);
        }
        if (rc)
            goto done;
    }

    /* Phase 2: copy. */
    *copied = 1;
    for (size_t i = 0; i < b->nvars; i++) {
        const brine_var *var = &b->vars[i];
        const brine_pvalue *v = plan[i].value;
        if (var->is_string) {
            memcpy(var->data, v->v.str.s, v->v.str.len);
            ((char *)var->data)[v->v.str.len] = '\0';
        } else if (var->ndim == 0) {
            store_scalar(var, v);
        } else if (!plan[i].dataset) {
            memcpy(var->data, v->v.array.inband, var->nbytes);
        } else if ((rc = brine_h5__read_array(r, plan[i].dataset, var->name, var->dtype, var->order,
                                              var->ndim, var->dims, var->data, &b->err))) {
            goto done;
        }
    }
    *step = brine_h5__step(r);
done:
    for (size_t i = 0; plan && i < b->nvars; i++)
        brine__free(b->alloc, plan[i].dataset);
    brine__free(b->alloc, plan);
    brine_pickle__free(doc);
    brine_h5__close(r);
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

int brine_restore(brine *b, int64_t *step)
{
    int rc = 0, first_rc = 0, dirty = 0;
    brine_ckpt_entry *list = NULL;
    size_t n = 0;
    brine_h5_quiet quiet;
    char reasons[BRINE_ERRMSG_MAX] = "";

    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
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
        int64_t got = 0;
        int copied = 0;
        brine_vfd_status status = {0};
        snprintf(file, sizeof file, "%s/%s-%012" PRId64 ".h5", b->dir, b->prefix, list[k].step);
        hid_t fapl = brine_vfd__fapl(b->io, &status);
        if (fapl < 0) {
            rc = brine__fail(&b->err, BRINE_EHDF5, "cannot set up brine's HDF5 file driver");
            goto done;
        }
        int frc = restore_file(b, file, list[k].step, fapl, &got, &copied);
        H5Pclose(fapl);
        if (frc == 0) {
            if (step)
                *step = got;
            rc = 0;
            brine__error_clear(&b->err);
            goto done;
        }
        if (status.neg_errno)
            frc = brine__fail_errno(&b->err, status.neg_errno, "%s: %s of %s failed", file,
                                    status.op, status.path);
        dirty |= copied;
        if (!first_rc)
            first_rc = frc;
        append_reason(reasons, sizeof reasons, b->err.msg);
        /* Out of memory says nothing about the file; an older checkpoint must not win because of it. */
        if (frc == BRINE_ENOMEM)
            break;
    }
    rc = brine__fail(&b->err, first_rc, "no checkpoint in %s could be restored%s: %s", b->dir,
                     dirty ? " (registered memory was partly overwritten)" : "", reasons);
done:
    brine_h5__quiet_end(&quiet);
    brine__free(b->alloc, list);
    return rc;
}
