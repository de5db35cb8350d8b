/*
 * Fuzz target: an arbitrary stored chunk into brine_chunk__decode (and
 * brine_chunk__verify).  The first 4 bytes choose the dataset's pipeline,
 * the chunk's filter mask, the element size and the raw chunk size (up to
 * 64 KiB); the rest is the stored chunk.
 */
#include <stdlib.h>
#include <string.h>

#include "format/chunk_codec.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const size_t esizes[4] = {1, 2, 4, 8};
    const unsigned pipeline = data[0] & 7u;
    const uint32_t mask = data[1] & 7u;
    const size_t esize = esizes[data[2] & 3u];
    size_t raw_len = ((size_t)data[3] << 8 | (size_t)(data[2] >> 2)) % 65536;
    raw_len -= raw_len % esize;
    if (raw_len == 0)
        raw_len = esize;
    const uint8_t *stored = data + 4;
    const size_t stored_len = size - 4;
    /* Exactly sized heap copies, so that AddressSanitizer sees any overread. */
    uint8_t *in = malloc(stored_len ? stored_len : 1);
    uint8_t *out = malloc(raw_len), *scratch = malloc(raw_len);
    char why[256];
    if (in && out && scratch) {
        memcpy(in, stored, stored_len);
        why[0] = '\0';
        const int rc = brine_chunk__decode(in, stored_len, pipeline, mask, esize, scratch, out,
                                           raw_len, why, sizeof why);
        if (rc != 0 && why[0] == '\0')
            __builtin_trap(); /* a refusal says why */
        (void)brine_chunk__verify(in, stored_len, pipeline, mask, why, sizeof why);
    }
    free(in);
    free(out);
    free(scratch);
    return 0;
}
