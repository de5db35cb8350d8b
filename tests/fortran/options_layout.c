/*
 * C side of test_fortran_options: the layout and the initial values of
 * struct brine_options, which module brine mirrors as brine_c_options.  A
 * change of the C struct must fail that test, not users' programs.
 */
#include <brine.h>

#include <stddef.h>

int brine_test_options_layout(size_t *out, int n);
void brine_test_options_init(brine_options *out);
int brine_test_raise(int sig);

#include <signal.h>

/* sizeof(brine_options), then the offset of every field in declaration order;
 * returns how many values it wrote (at most n). */
int brine_test_options_layout(size_t *out, int n)
{
    const size_t v[] = {
        sizeof(brine_options),
        offsetof(brine_options, version),
        offsetof(brine_options, prefix),
        offsetof(brine_options, keep_last),
        offsetof(brine_options, level),
        offsetof(brine_options, threads),
        offsetof(brine_options, io),
        offsetof(brine_options, alloc),
        offsetof(brine_options, codec),
        offsetof(brine_options, restore_flags),
        offsetof(brine_options, every_steps),
        offsetof(brine_options, every_seconds),
        offsetof(brine_options, keep_every),
        offsetof(brine_options, async),
        offsetof(brine_options, async_flags),
        offsetof(brine_options, staging_max),
        offsetof(brine_options, use_env),
        offsetof(brine_options, clock),
        offsetof(brine_options, clock_ctx),
    };
    int k = 0;
    for (; k < n && k < (int)(sizeof v / sizeof v[0]); k++)
        out[k] = v[k];
    return k;
}

/* BRINE_OPTIONS_INIT, as a C program gets it. */
void brine_test_options_init(brine_options *out)
{
    const brine_options init = BRINE_OPTIONS_INIT;
    *out = init;
}

/* raise(3), for the signal test. */
int brine_test_raise(int sig)
{
    return raise(sig);
}
