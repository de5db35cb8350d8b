/* User metadata: brine_set_attr_* keep name/value pairs that every checkpoint writes as root attributes. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/text.h"
#include "../format/h5_layout.h"
#include "core.h"

/* Longest attribute name, in bytes (docs/format.md, 2.1). */
#define NAME_MAX_BYTES 255

void brine_attrs__free(brine *b)
{
    brine_h5__free_attrs(b->alloc, b->attrs, b->nattrs);
    b->attrs = NULL;
    b->nattrs = b->attrs_cap = 0;
}

/*
 * name as it can go into a message: at most about 100 bytes (then "..."),
 * control characters and, when name is not UTF-8, every byte >= 0x80 as \xNN,
 * so that the message stays printable UTF-8.
 */
static void quote_name(char *out, size_t n, const char *name)
{
    const size_t len = strlen(name);
    const int utf8 = brine__utf8_valid(name, len);
    size_t used = 0;
    assert(n > 8);
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)name[i];
        const int escape = c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80);
        /* Cut only between characters, with room for one more (4 bytes), "..." and the NUL. */
        const int boundary = !utf8 || (c & 0xC0) != 0x80;
        if (boundary && (used + 8 > n || i >= 100)) {
            memcpy(out + used, "...", 4);
            return;
        }
        if (escape)
            used += (size_t)snprintf(out + used, n - used, "\\x%02x", c);
        else
            out[used++] = (char)c;
    }
    out[used] = '\0';
}

/* Checks an attribute name (brine.h, brine_set_attr_int).  0 or BRINE_EINVAL. */
static int check_name(brine *b, const char *fn, const char *name)
{
    char q[128];
    if (!name)
        return brine__fail(&b->err, BRINE_EINVAL, "%s: the attribute name is NULL", fn);
    const size_t len = strlen(name);
    if (len == 0)
        return brine__fail(&b->err, BRINE_EINVAL, "%s: the attribute name is empty", fn);
    quote_name(q, sizeof q, name);
    if (len > NAME_MAX_BYTES)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "%s: attribute name '%s' is %zu bytes long; names have 1 to %d bytes", fn,
                           q, len, NAME_MAX_BYTES);
    if (!brine__utf8_valid(name, len))
        return brine__fail(&b->err, BRINE_EINVAL, "%s: attribute name '%s' is not valid UTF-8", fn,
                           q);
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)name[i];
        if (c == '/')
            return brine__fail(&b->err, BRINE_EINVAL,
                               "%s: attribute name '%s' holds a '/' (byte %zu); names cannot", fn, q,
                               i);
        if (c < 0x20 || c == 0x7f)
            return brine__fail(&b->err, BRINE_EINVAL,
                               "%s: attribute name '%s' holds control character 0x%02x (byte %zu); "
                               "names cannot",
                               fn, q, c, i);
    }
    if (strncmp(name, "brine_", 6) == 0)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "%s: attribute name '%s' starts with \"brine_\", which is reserved for "
                           "brine's own attributes",
                           fn, q);
    if (strcmp(name, "step") == 0 || strcmp(name, "created") == 0)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "%s: attribute name '%s' is reserved: brine writes that attribute itself",
                           fn, q);
    return 0;
}

/*
 * Sets name to the value in val (type, i, d; s is a copy the context takes
 * over on success): replaces the value and type of an existing name in its
 * place, or appends the name.  The name is valid.  0, BRINE_EINVAL or BRINE_ENOMEM.
 */
static int put(brine *b, const char *fn, const char *name, const brine_attr_val *val)
{
    for (size_t k = 0; k < b->nattrs; k++) {
        brine_attr_val *v = &b->attrs[k];
        if (strcmp(v->name, name) == 0) {
            brine__free(b->alloc, v->s);
            v->type = val->type;
            v->i = val->i;
            v->d = val->d;
            v->s = val->s;
            return 0;
        }
    }
    if (b->nattrs >= BRINE_H5_USER_ATTRS_MAX)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "%s: attribute '%s' would be the %zu-th; a context holds at most %d", fn,
                           name, b->nattrs + 1, BRINE_H5_USER_ATTRS_MAX);
    if (b->nattrs == b->attrs_cap) {
        const size_t cap = b->attrs_cap ? 2 * b->attrs_cap : 8;
        void *p = b->attrs;
        if (brine__resize(b->alloc, &p, b->nattrs * sizeof *b->attrs, cap * sizeof *b->attrs))
            return brine__fail(&b->err, BRINE_ENOMEM, "%s: out of memory setting attribute '%s'", fn,
                               name);
        b->attrs = p;
        b->attrs_cap = cap;
    }
    char *copy = brine__strdup(b->alloc, name);
    if (!copy)
        return brine__fail(&b->err, BRINE_ENOMEM, "%s: out of memory setting attribute '%s'", fn,
                           name);
    brine_attr_val *v = &b->attrs[b->nattrs++];
    *v = *val;
    v->name = copy;
    return 0;
}

int brine_set_attr_int(brine *b, const char *name, int64_t value)
{
    int rc = 0;
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if ((rc = check_name(b, "brine_set_attr_int", name)))
        return rc;
    const brine_attr_val val = {NULL, BRINE_ATTR_INT, value, 0.0, NULL};
    return put(b, "brine_set_attr_int", name, &val);
}

int brine_set_attr_double(brine *b, const char *name, double value)
{
    int rc = 0;
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if ((rc = check_name(b, "brine_set_attr_double", name)))
        return rc;
    const brine_attr_val val = {NULL, BRINE_ATTR_DOUBLE, 0, value, NULL};
    return put(b, "brine_set_attr_double", name, &val);
}

int brine_set_attr_string(brine *b, const char *name, const char *value)
{
    static const char fn[] = "brine_set_attr_string";
    int rc = 0;
    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if ((rc = check_name(b, fn, name)))
        return rc;
    if (!value)
        return brine__fail(&b->err, BRINE_EINVAL, "%s: the value of attribute '%s' is NULL", fn,
                           name);
    const size_t len = strlen(value);
    /* Readers refuse longer strings (BRINE_H5_ATTR_STRING_MAX): never write one. */
    if (len > BRINE_H5_ATTR_STRING_MAX)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "%s: the value of attribute '%s' is %zu bytes long; strings have at most "
                           "%zu bytes",
                           fn, name, len, BRINE_H5_ATTR_STRING_MAX);
    if (!brine__utf8_valid(value, len))
        return brine__fail(&b->err, BRINE_EINVAL, "%s: the value of attribute '%s' is not valid UTF-8",
                           fn, name);
    brine_attr_val val = {NULL, BRINE_ATTR_STRING, 0, 0.0, brine__strdup(b->alloc, value)};
    if (!val.s)
        return brine__fail(&b->err, BRINE_ENOMEM, "%s: out of memory copying the value of attribute '%s'",
                           fn, name);
    if ((rc = put(b, fn, name, &val)))
        brine__free(b->alloc, val.s);
    return rc;
}
