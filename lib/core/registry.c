/* brine_register and brine_register_string: the table of variables a context saves and restores. */
#include <string.h>

#include "../common/alloc.h"
#include "../common/text.h"
#include "../format/dtype.h"
#include "core.h"

void brine_registry__free(brine *b)
{
    for (size_t i = 0; i < b->nvars; i++)
        brine__free(b->alloc, b->vars[i].name);
    brine__free(b->alloc, b->vars);
    b->vars = NULL;
    b->nvars = b->cap = 0;
}

/* 1 when a is b followed by '/' and more (a lies inside group b). */
static int inside(const char *a, const char *b)
{
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && a[n] == '/';
}

/* Checks the name and that it clashes with no registered variable; then appends a slot. */
static int add_var(brine *b, const char *name, brine_var **out)
{
    char why[160];
    if (!brine__name_valid(name, why, sizeof why))
        return brine__fail(&b->err, BRINE_EINVAL, "invalid variable name '%s': %s", name, why);
    for (size_t i = 0; i < b->nvars; i++) {
        const char *other = b->vars[i].name;
        if (strcmp(other, name) == 0)
            return brine__fail(&b->err, BRINE_EINVAL, "variable '%s' is already registered", name);
        if (inside(name, other) || inside(other, name))
            return brine__fail(&b->err, BRINE_EINVAL,
                               "variable '%s' clashes with registered '%s': a name cannot be both a "
                               "variable and a group",
                               name, other);
    }
    if (b->nvars == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        void *p = b->vars;
        if (cap > SIZE_MAX / sizeof *b->vars ||
            brine__resize(b->alloc, &p, b->nvars * sizeof *b->vars, cap * sizeof *b->vars))
            return brine__fail(&b->err, BRINE_ENOMEM, "out of memory registering '%s'", name);
        b->vars = p;
        b->cap = cap;
    }
    brine_var *v = &b->vars[b->nvars];
    memset(v, 0, sizeof *v);
    v->name = brine__strdup(b->alloc, name);
    if (!v->name)
        return brine__fail(&b->err, BRINE_ENOMEM, "out of memory registering '%s'", name);
    *out = v;
    return 0;
}

char brine_registry__order(unsigned flags, int ndim, const uint64_t *shape)
{
    int big_extents = 0, empty = 0;
    for (int d = 0; d < ndim; d++) {
        big_extents += shape[d] != 1;
        empty |= shape[d] == 0;
    }
    /* F order is kept only where it lays bytes out differently from C
     * (docs/format.md, 2.3): two or more extents other than 1, and not empty. */
    return (flags & BRINE_FORTRAN_ORDER) && big_extents >= 2 && !empty ? 'F' : 'C';
}

int brine_registry__set_shape(brine_var *v, const uint64_t *shape, brine_error *err)
{
    size_t nbytes = brine_dtype__info(v->dtype)->size;
    for (int d = 0; d < v->ndim; d++) {
        if (shape[d] > SIZE_MAX || brine__mul_overflows(nbytes, (size_t)shape[d], &nbytes))
            return brine__fail(err, BRINE_EINVAL, "variable '%s': its size overflows size_t",
                               v->name);
    }
    v->nbytes = nbytes;
    v->order = brine_registry__order(v->flags, v->ndim, shape);
    for (int d = 0; d < v->ndim; d++) {
        v->shape[d] = shape[d];
        v->dims[d] = v->order == 'F' ? shape[v->ndim - 1 - d] : shape[d];
    }
    return 0;
}

int brine_registry__refresh(brine *b)
{
    for (size_t i = 0; i < b->nvars; i++) {
        brine_var *v = &b->vars[i];
        if (!v->resizable)
            continue;
        uint64_t shape[BRINE_MAX_NDIM];
        for (int d = 0; d < v->ndim; d++)
            shape[d] = v->shape_ref[d];
        int rc = brine_registry__set_shape(v, shape, &b->err);
        if (rc)
            return rc;
        v->data = *v->data_ref;
        if (!v->data && v->nbytes)
            return brine__fail(&b->err, BRINE_EINVAL,
                               "resizable variable '%s': its data pointer is NULL but its shape "
                               "holds %zu bytes",
                               v->name, v->nbytes);
    }
    return 0;
}

/* The checks brine_register and brine_register_resizable share. */
static int check_args(brine *b, const char *name, brine_dtype dtype, int ndim, const void *shape,
                      unsigned flags, int min_ndim)
{
    if (!name)
        return brine__fail(&b->err, BRINE_EINVAL, "brine_register: name is NULL");
    if (!brine_dtype__info((int)dtype))
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': dtype %d is not a brine_dtype",
                           name, (int)dtype);
    if (ndim < min_ndim || ndim > BRINE_MAX_NDIM)
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': ndim %d is not in %d..%d", name,
                           ndim, min_ndim, BRINE_MAX_NDIM);
    if (ndim > 0 && !shape)
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': shape is NULL for ndim %d", name,
                           ndim);
    if (flags & ~(BRINE_FORTRAN_ORDER | BRINE_CONVERT))
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': unknown flags 0x%x", name,
                           flags & ~(BRINE_FORTRAN_ORDER | BRINE_CONVERT));
    return 0;
}

int brine_register(brine *b, const char *name, brine_dtype dtype, void *data, int ndim,
                   const size_t *shape, unsigned flags)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    int rc = check_args(b, name, dtype, ndim, shape, flags, 0);
    if (rc)
        return rc;
    if (!data)
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': data is NULL", name);
    uint64_t shp[BRINE_MAX_NDIM];
    for (int d = 0; d < ndim; d++)
        shp[d] = shape[d];
    brine_var probe = {.name = (char *)name, .dtype = dtype, .ndim = ndim, .flags = flags};
    if ((rc = brine_registry__set_shape(&probe, shp, &b->err)))
        return rc;

    brine_var *v;
    if ((rc = add_var(b, name, &v)))
        return rc;
    probe.name = v->name;
    *v = probe;
    v->data = data;
    b->nvars++;
    return 0;
}

int brine_register_resizable(brine *b, const char *name, brine_dtype dtype, void **data, int ndim,
                             size_t *shape, unsigned flags, brine_resize_fn resize, void *ctx)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    int rc = check_args(b, name, dtype, ndim, shape, flags, 1);
    if (rc)
        return rc;
    if (!data)
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': data (the pointer's address) is NULL",
                           name);
    brine_var *v;
    if ((rc = add_var(b, name, &v)))
        return rc;
    v->dtype = dtype;
    v->ndim = ndim;
    v->flags = flags;
    v->resizable = 1;
    v->data_ref = data;
    v->shape_ref = shape;
    v->resize = resize;
    v->resize_ctx = ctx;
    v->order = 'C';
    b->nvars++;
    return 0;
}

int brine_register_string(brine *b, const char *name, char *buf, size_t capacity)
{
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if (!name)
        return brine__fail(&b->err, BRINE_EINVAL, "brine_register_string: name is NULL");
    if (!buf)
        return brine__fail(&b->err, BRINE_EINVAL, "variable '%s': buf is NULL", name);
    if (capacity == 0)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "variable '%s': capacity is 0 (it must hold at least the NUL)", name);
    brine_var *v;
    int rc = add_var(b, name, &v);
    if (rc)
        return rc;
    v->is_string = 1;
    v->dtype = BRINE_U8;
    v->data = buf;
    v->nbytes = capacity;
    v->order = 'C';
    b->nvars++;
    return 0;
}
