/*
 * Writes the seed corpus of the fuzz targets into DIR/<target>/ (run once;
 * the output is committed as tests/fuzz/corpus):
 *   fuzz_checkpoint: a checkpoint of fuzz_common.h's state, and truncations of it;
 *   fuzz_pickle_decode: its pickle stream, and a few hand-made streams;
 *   fuzz_pickle_roundtrip: a few call sequences;
 *   fuzz_chunk_decode: stored chunks of each pipeline (deflated with zlib here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "format/chunk_codec.h"
#include "fuzz_common.h"

static void put(const char *dir, const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n)
        exit(1);
    fclose(f);
    return b;
}

/* A chunk header for fuzz_chunk_decode: pipeline, mask, esize code | raw_len low bits, raw_len high. */
static void chunk_seed(const char *dir, const char *name, unsigned pipeline, unsigned mask,
                       unsigned esize_code, size_t raw_len, const uint8_t *stored, size_t n)
{
    uint8_t *b = malloc(n + 4);
    b[0] = (uint8_t)pipeline;
    b[1] = (uint8_t)mask;
    b[2] = (uint8_t)(esize_code | ((raw_len & 0x3f) << 2));
    b[3] = (uint8_t)(raw_len >> 8);
    memcpy(b + 4, stored, n);
    put(dir, "fuzz_chunk_decode", name, b, n + 4);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s OUTDIR SCRATCHDIR\n", argv[0]);
        return 2;
    }
    const char *out = argv[1], *scratch = argv[2];
    mkdir(out, 0755);

    /* fuzz_checkpoint */
    fuzz_state st;
    fuzz_state_fill(&st);
    brine *b = NULL;
    brine_options o = BRINE_OPTIONS_INIT;
    if (brine_open(&b, scratch, &o) || fuzz_state_register(b, &st) || brine_save(b, 1)) {
        fprintf(stderr, "%s\n", b ? brine_errmsg(b) : brine_open_errmsg());
        return 1;
    }
    brine_close(b);
    char path[1024];
    snprintf(path, sizeof path, "%s/ckpt-000000000001.h5", scratch);
    size_t n = 0;
    uint8_t *ck = slurp(path, &n);
    put(out, "fuzz_checkpoint", "valid.h5", ck, n);
    put(out, "fuzz_checkpoint", "trunc-half.h5", ck, n / 2);
    put(out, "fuzz_checkpoint", "trunc-96.h5", ck, 96);
    put(out, "fuzz_checkpoint", "empty", ck, 0);

    /* fuzz_pickle_decode: brine's own stream for the state, found by its PROTO 5 header. */
    const uint8_t *p = NULL;
    for (size_t i = 0; i + 2 < n; i++)
        if (ck[i] == 0x80 && ck[i + 1] == 5 && ck[i + 2] == '}') {
            p = ck + i;
            break;
        }
    if (p) {
        size_t len = 0;
        while (p + len < ck + n && p[len] != '.')
            len++; /* up to STOP, close enough for a seed */
        put(out, "fuzz_pickle_decode", "state.pkl", p, len + 1);
    }
    static const uint8_t small[] = {0x80, 5, '}', 0x94, '(', 0x8c, 1, 'a', 'K', 7, 0x8c, 1, 'b',
                                    0x88, 'u', '.'};
    put(out, "fuzz_pickle_decode", "dict.pkl", small, sizeof small);
    static const uint8_t memo[] = {0x80, 5, 0x95, 9, 0, 0, 0, 0, 0, 0, 0, ']', 0x94, 'h', 0, 'a',
                                   'N', 'a', 0x85, '.'};
    put(out, "fuzz_pickle_decode", "list_memo.pkl", memo, sizeof memo);

    /* fuzz_pickle_roundtrip */
    static const uint8_t seq1[] = {2, 1, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 4, 0x80,
                                   0, 0, 0, 0, 0, 0, 1, 5, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
    put(out, "fuzz_pickle_roundtrip", "scalars", seq1, sizeof seq1);
    static const uint8_t seq2[] = {0, 7, 5, 'h', 'e', 'l', 'l', 'o', 0, 8, 2, 0, 3, 0, 4, 10, 1, 1,
                                   6, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1};
    put(out, "fuzz_pickle_roundtrip", "nested", seq2, sizeof seq2);

    /* fuzz_chunk_decode: 256 int32 elements (1 KiB) through each pipeline. */
    int32_t raw[256];
    for (int i = 0; i < 256; i++)
        raw[i] = i * 37 - 1000;
    uint8_t shuf[1024], z[2048 + 4];
    brine_shuffle(shuf, raw, 256, 4);
    uLongf zl = 2048;
    compress2(z, &zl, shuf, sizeof shuf, 6);
    uint32_t f = brine_fletcher32(z, zl);
    memcpy(z + zl, &f, 4); /* little-endian host */
    chunk_seed(out, "full-pipeline", 7, 0, 2, 1024, z, zl + 4);
    uint8_t plain[1024 + 4];
    memcpy(plain, raw, 1024);
    f = brine_fletcher32(plain, 1024);
    memcpy(plain + 1024, &f, 4);
    chunk_seed(out, "fletcher-only", 4, 0, 2, 1024, plain, 1028);
    memcpy(plain, shuf, 1024);
    f = brine_fletcher32(plain, 1024);
    memcpy(plain + 1024, &f, 4);
    chunk_seed(out, "deflate-skipped", 7, 2, 2, 1024, plain, 1028);
    free(ck);
    return 0;
}
