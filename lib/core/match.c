/* Matching checkpoint values to registered variables; storing scalars. */
#include "match.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../format/dtype.h"
#include "core.h"

const char *brine_match__kind_name(brine_pkind k)
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

/* "float32 (3, 4) order C" */
static void describe(char *out, size_t n, int dtype, int ndim, const uint64_t *shape, char order)
{
    const brine_dtype_info *info = brine_dtype__info(dtype);
    size_t used = (size_t)snprintf(out, n, "%s (", info ? info->name : "?");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(out + used, n - used, "%s%" PRIu64, d ? ", " : "", shape[d]);
    if (used < n)
        snprintf(out + used, n - used, "%s) order %c", ndim == 1 ? "," : "", order);
}

static int check_scalar(const brine_target *t, const brine_pvalue *v, char *why, size_t whylen)
{
    const brine_dtype_info *info = brine_dtype__info(t->dtype);
    int ok = 0;
    switch (info->kind) {
    case BRINE_KIND_BOOL: ok = v->kind == BRINE_PV_BOOL; break;
    case BRINE_KIND_INT:
    case BRINE_KIND_UINT:
        if (v->kind == BRINE_PV_INT && !int_fits(v, t->dtype)) {
            char num[32];
            if (v->v.integer.negative)
                snprintf(num, sizeof num, "%" PRId64, v->v.integer.i);
            else
                snprintf(num, sizeof num, "%" PRIu64, v->v.integer.u);
            snprintf(why, whylen, "%s as a %s scalar, the checkpoint's value %s does not fit",
                     t->as, info->name, num);
            return BRINE_EMISMATCH;
        }
        ok = v->kind == BRINE_PV_INT;
        break;
    /* A float may have been edited in Python as an int (1 rather than 1.0): accept it. */
    case BRINE_KIND_FLOAT: ok = v->kind == BRINE_PV_FLOAT || v->kind == BRINE_PV_INT; break;
    case BRINE_KIND_COMPLEX:
        ok = v->kind == BRINE_PV_COMPLEX || v->kind == BRINE_PV_FLOAT || v->kind == BRINE_PV_INT;
        break;
    }
    if (!ok) {
        snprintf(why, whylen, "%s as a %s scalar, the checkpoint has %s", t->as, info->name,
                 v->kind == BRINE_PV_NDARRAY ? "an array" : brine_match__kind_name(v->kind));
        return BRINE_EMISMATCH;
    }
    return 0;
}

static int check_array(const brine_target *t, const brine_pvalue *v, char *why, size_t whylen)
{
    const char want_order = brine_registry__order(t->flags, t->ndim, t->shape);
    char want[256], got[256];
    describe(want, sizeof want, t->dtype, t->ndim, t->shape, want_order);
    if (v->kind != BRINE_PV_NDARRAY) {
        snprintf(why, whylen, "%s as %s, the checkpoint has %s", t->as, want,
                 brine_match__kind_name(v->kind));
        return BRINE_EMISMATCH;
    }
    const int stored_dtype = v->v.array.dtype;
    int same_shape = v->v.array.ndim == t->ndim;
    for (int d = 0; same_shape && !t->any_shape && d < t->ndim; d++)
        same_shape = v->v.array.shape[d] == t->shape[d];
    /* The order the memory would have with the stored shape: for a resizable
     * array whose shape changes, 'C' and 'F' may normalise differently. */
    const char order = same_shape ? brine_registry__order(t->flags, t->ndim, v->v.array.shape) : 0;
    const int dtype_ok = stored_dtype == (int)t->dtype ||
                         ((t->flags & BRINE_CONVERT) && brine_dtype__can_convert(stored_dtype, t->dtype));
    if (same_shape && order == v->v.array.order && dtype_ok)
        return 0;
    describe(got, sizeof got, stored_dtype, v->v.array.ndim, v->v.array.shape, v->v.array.order);
    const char *any = t->any_shape ? " (resizable: any shape of that ndim)" : "";
    const char *hint = "";
    if (same_shape && order == v->v.array.order && !dtype_ok) {
        const int possible = brine_dtype__can_convert(stored_dtype, t->dtype);
        if (t->flags & BRINE_CONVERT)
            hint = " (BRINE_CONVERT does not convert between these dtypes)";
        else if (possible)
            hint = " (with BRINE_CONVERT it would be converted)";
    }
    snprintf(why, whylen, "%s as %s%s, the checkpoint has %s%s", t->as, want, any, got, hint);
    return BRINE_EMISMATCH;
}

int brine_match__value(const brine_target *t, const brine_pvalue *v, char *why, size_t whylen)
{
    if (t->is_string) {
        if (v->kind != BRINE_PV_STR) {
            snprintf(why, whylen, "%s as a string, the checkpoint has %s", t->as,
                     brine_match__kind_name(v->kind));
            return BRINE_EMISMATCH;
        }
        if (v->v.str.len + 1 > t->capacity) {
            snprintf(why, whylen,
                     "%s as a string of capacity %zu bytes (with the NUL), the checkpoint's holds %zu bytes",
                     t->as, t->capacity, v->v.str.len);
            return BRINE_EMISMATCH;
        }
        return 0;
    }
    return t->ndim == 0 ? check_scalar(t, v, why, whylen) : check_array(t, v, why, whylen);
}

void brine_match__store_scalar(brine_dtype dtype, void *p, const brine_pvalue *v)
{
    double re = 0, im = 0;
    if (v->kind == BRINE_PV_FLOAT)
        re = v->v.f;
    else if (v->kind == BRINE_PV_INT)
        re = v->v.integer.negative ? (double)v->v.integer.i : (double)v->v.integer.u;
    else if (v->kind == BRINE_PV_COMPLEX) {
        re = v->v.c.re;
        im = v->v.c.im;
    }
    /* memcpy stores: the memory may be unaligned (brine_read takes any pointer). */
    switch (dtype) {
    case BRINE_BOOL: { unsigned char x = (unsigned char)v->v.b; memcpy(p, &x, 1); break; }
    case BRINE_I8: { int8_t x = (int8_t)v->v.integer.i; memcpy(p, &x, 1); break; }
    case BRINE_I16: { int16_t x = (int16_t)v->v.integer.i; memcpy(p, &x, 2); break; }
    case BRINE_I32: { int32_t x = (int32_t)v->v.integer.i; memcpy(p, &x, 4); break; }
    case BRINE_I64: memcpy(p, &v->v.integer.i, 8); break;
    case BRINE_U8: { uint8_t x = (uint8_t)v->v.integer.u; memcpy(p, &x, 1); break; }
    case BRINE_U16: { uint16_t x = (uint16_t)v->v.integer.u; memcpy(p, &x, 2); break; }
    case BRINE_U32: { uint32_t x = (uint32_t)v->v.integer.u; memcpy(p, &x, 4); break; }
    case BRINE_U64: memcpy(p, &v->v.integer.u, 8); break;
    case BRINE_F32: { float x = (float)re; memcpy(p, &x, 4); break; }
    case BRINE_F64: memcpy(p, &re, 8); break;
    case BRINE_C64: { float x[2] = {(float)re, (float)im}; memcpy(p, x, 8); break; }
    case BRINE_C128: { double x[2] = {re, im}; memcpy(p, x, 16); break; }
    }
}

int brine_match__scalar_dtype(const brine_pvalue *v)
{
    if (v->has_np_dtype)
        return v->np_dtype;
    switch (v->kind) {
    case BRINE_PV_BOOL: return BRINE_BOOL;
    case BRINE_PV_INT:
        return !v->v.integer.negative && v->v.integer.u > (uint64_t)INT64_MAX ? BRINE_U64 : BRINE_I64;
    case BRINE_PV_FLOAT: return BRINE_F64;
    case BRINE_PV_COMPLEX: return BRINE_C128;
    default: return -1;
    }
}
