/* Fuzz target: arbitrary bytes into the strict pickle decoder (brine_pickle__decode). */
#include <string.h>

#include "common/error.h"
#include "format/pickle_decode.h"
#include "fuzz_common.h"

/* Touches every value of the tree, so that a dangling pointer or a bad length shows. */
static size_t walk(const brine_pvalue *v, unsigned depth)
{
    size_t sum = (size_t)v->kind;
    if (depth > BRINE_PICKLE_MAX_NEST + 1)
        __builtin_trap(); /* the decoder promised a bound */
    switch (v->kind) {
    case BRINE_PV_STR:
    case BRINE_PV_BYTES:
        for (size_t i = 0; i < v->v.str.len; i++)
            sum += (unsigned char)v->v.str.s[i];
        break;
    case BRINE_PV_TUPLE:
    case BRINE_PV_LIST:
        for (size_t i = 0; i < v->v.seq.n; i++)
            sum += walk(v->v.seq.items[i], depth + 1);
        break;
    case BRINE_PV_DICT:
        for (size_t i = 0; i < v->v.dict.n; i++) {
            sum += walk(v->v.dict.keys[i], depth + 1);
            sum += walk(v->v.dict.values[i], depth + 1);
            if (v->v.dict.keys[i]->kind == BRINE_PV_STR) {
                const brine_pvalue *k = v->v.dict.keys[i];
                /* every str key must be found again (the hash index agrees with the items) */
                if (brine_pickle__dict_get(v, k->v.str.s, k->v.str.len) == NULL)
                    __builtin_trap();
            }
        }
        break;
    case BRINE_PV_NDARRAY:
        for (size_t i = 0; i < v->v.array.inband_len; i++)
            sum += v->v.array.inband[i];
        break;
    default:
        break;
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    brine_error err;
    brine_pickle_doc *d = NULL;
    const int rc = brine_pickle__decode(&d, data, size, NULL, &err);
    if (rc == 0) {
        volatile size_t sink = walk(brine_pickle__root(d), 0);
        (void)sink;
        (void)brine_pickle__nbuffers(d);
        (void)brine_pickle__lookup(brine_pickle__root(d), "a/b");
    } else if (d != NULL || err.msg[0] == '\0') {
        __builtin_trap(); /* failure must leave no document and say why */
    }
    brine_pickle__free(d);
    return 0;
}
