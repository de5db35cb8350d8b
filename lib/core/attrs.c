/* User metadata: brine_set_attr_* keep name/value pairs that every checkpoint writes as root attributes. */
#include "../common/alloc.h"
#include "core.h"

void brine_attrs__free(brine *b)
{
    for (size_t i = 0; i < b->nattrs; i++) {
        brine__free(b->alloc, b->attrs[i].name);
        brine__free(b->alloc, b->attrs[i].s);
    }
    brine__free(b->alloc, b->attrs);
    b->attrs = NULL;
    b->nattrs = b->attrs_cap = 0;
}
