/*
 * Fuzz target: arbitrary bytes written as the only checkpoint of a
 * directory, then brine_restore with a small registered state
 * (fuzz_common.h).  Restore may fail with any error; it must not crash,
 * leak, or write registered memory unless it returns 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

static char dir[256], file[320];
static brine *ctx;
static fuzz_state st;

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/brine-fuzz-ckpt-%ld", base && *base ? base : "/tmp",
             (long)getpid());
    snprintf(file, sizeof file, "%s/ckpt-000000000001.h5", dir);
    brine_options o = BRINE_OPTIONS_INIT;
    if (brine_open(&ctx, dir, &o) || fuzz_state_register(ctx, &st))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx)
        setup();
    const int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    memset(&st, 0x5a, sizeof st);
    fuzz_state before = st;
    int64_t step = -1;
    const int rc = brine_restore(ctx, &step);
    if (rc != 0 && memcmp(&before, &st, sizeof st) != 0 &&
        !strstr(brine_errmsg(ctx), "partly overwritten"))
        __builtin_trap(); /* memory written although nothing verified */
    if (rc != 0 && brine_errmsg(ctx)[0] == '\0')
        __builtin_trap();
    unlink(file);
    return 0;
}
