#include "dtype.h"

#include <string.h>

static const brine_dtype_info table[BRINE_DTYPE_COUNT] = {
    [BRINE_BOOL] = {"|b1", "bool", 1, BRINE_KIND_BOOL},
    [BRINE_I8] = {"|i1", "int8", 1, BRINE_KIND_INT},
    [BRINE_I16] = {"<i2", "int16", 2, BRINE_KIND_INT},
    [BRINE_I32] = {"<i4", "int32", 4, BRINE_KIND_INT},
    [BRINE_I64] = {"<i8", "int64", 8, BRINE_KIND_INT},
    [BRINE_U8] = {"|u1", "uint8", 1, BRINE_KIND_UINT},
    [BRINE_U16] = {"<u2", "uint16", 2, BRINE_KIND_UINT},
    [BRINE_U32] = {"<u4", "uint32", 4, BRINE_KIND_UINT},
    [BRINE_U64] = {"<u8", "uint64", 8, BRINE_KIND_UINT},
    [BRINE_F32] = {"<f4", "float32", 4, BRINE_KIND_FLOAT},
    [BRINE_F64] = {"<f8", "float64", 8, BRINE_KIND_FLOAT},
    [BRINE_C64] = {"<c8", "complex64", 8, BRINE_KIND_COMPLEX},
    [BRINE_C128] = {"<c16", "complex128", 16, BRINE_KIND_COMPLEX},
};

const brine_dtype_info *brine_dtype__info(int dtype)
{
    if (dtype < 0 || dtype >= BRINE_DTYPE_COUNT)
        return NULL;
    return &table[dtype];
}

int brine_dtype__from_numpy(const char *s, size_t len)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        if (strlen(table[d].numpy) == len && memcmp(table[d].numpy, s, len) == 0)
            return d;
    }
    return -1;
}

const char *brine_dtype_str(brine_dtype dtype)
{
    const brine_dtype_info *i = brine_dtype__info((int)dtype);
    return i ? i->numpy : NULL;
}

size_t brine_dtype_size(brine_dtype dtype)
{
    const brine_dtype_info *i = brine_dtype__info((int)dtype);
    return i ? i->size : 0;
}
