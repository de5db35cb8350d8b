/*
 * When to save (brine_maybe_save), the signals a scheduler sends before it
 * kills a job (brine_install_signals), and options from BRINE_* environment
 * variables (brine_open).  docs/checkpointing.md is the user's guide.
 */
/* SA_RESTART is an XSI extension of sigaction. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/text.h"
#include "../io/dir_scan.h" /* BRINE_MAX_STEP */
#include "coll.h"
#include "core.h"

/* ------------------------------------------------------------------------ */
/* The clock */

double brine_policy__now(const brine *b)
{
    if (b->opts.clock)
        return b->opts.clock(b->opts.clock_ctx);
    struct timespec ts;
    /* Cannot fail with a valid clock id and pointer; a monotonic clock is in every POSIX we run on. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Signals */

/* Signal numbers this module can hold: Linux has 1..64 (_NSIG is 65). */
#ifdef NSIG
#define SIGNAL_SLOTS NSIG
#else
#define SIGNAL_SLOTS 65
#endif

/*
 * Process-wide, as signal dispositions are.  The handler reads `previous`
 * and writes `pending` only; `previous[s]` is written before the handler is
 * installed for s and never while it is installed.
 */
static volatile sig_atomic_t pending;                /* the last signal that arrived; 0: none */
static struct sigaction previous[SIGNAL_SLOTS];      /* what brine's handler replaced */
static unsigned char installed[SIGNAL_SLOTS];        /* brine's handler is installed for s */
static _Atomic(const brine *) owner;                 /* the context with signals installed */

/*
 * Sets the flag, then runs the handler brine replaced when it was a
 * function.  Async-signal-safe: it touches a sig_atomic_t and calls the
 * previous handler, nothing else; errno is kept for the interrupted code.
 */
static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    const int saved_errno = errno;
    pending = sig;
    if (sig > 0 && sig < SIGNAL_SLOTS) {
        const struct sigaction *const p = &previous[sig];
        if (p->sa_flags & SA_SIGINFO) {
            if (p->sa_sigaction)
                p->sa_sigaction(sig, info, uctx);
        } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler) {
            p->sa_handler(sig);
        }
    }
    errno = saved_errno;
}

/* Puts back the handlers of every slot brine holds. */
static void restore_all(void)
{
    for (int s = 1; s < SIGNAL_SLOTS; s++) {
        if (!installed[s])
            continue;
        (void)sigaction(s, &previous[s], NULL);
        installed[s] = 0;
    }
    pending = 0;
}

void brine_signals__uninstall(brine *b)
{
    if (!b || !b->signals_installed)
        return;
    restore_all();
    b->signals_installed = 0;
    atomic_store(&owner, NULL);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    case SIGKILL: return "SIGKILL";
    case SIGSTOP: return "SIGSTOP";
    case SIGXCPU: return "SIGXCPU";
    case SIGALRM: return "SIGALRM";
    default: return "signal";
    }
}

int brine_install_signals(brine *b, const int *signals, int n)
{
    static const int defaults[] = {SIGTERM, SIGUSR1};
    int rc = 0;
    int claimed = 0;

    if (!b)
        return BRINE_EINVAL;
    brine__error_clear(&b->err);
    if (!signals) {
        signals = defaults;
        n = (int)(sizeof defaults / sizeof defaults[0]);
    }
    if (n < 1)
        return brine__fail(&b->err, BRINE_EINVAL, "brine_install_signals: %d signals", n);
    for (int i = 0; i < n; i++) {
        const int s = signals[i];
        if (s == SIGKILL || s == SIGSTOP)
            return brine__fail(&b->err, BRINE_EINVAL,
                               "brine_install_signals: %s (%d) cannot be caught", signal_name(s), s);
        struct sigaction probe;
        if (s <= 0 || s >= SIGNAL_SLOTS || sigaction(s, NULL, &probe) != 0)
            return brine__fail(&b->err, BRINE_EINVAL,
                               "brine_install_signals: %d is not a signal number", s);
    }
    /* Installing again on the same context replaces its set. */
    const brine *expected = NULL;
    if (b->signals_installed) {
        brine_signals__uninstall(b);
    }
    if (!atomic_compare_exchange_strong(&owner, &expected, b))
        return brine__fail(&b->err, BRINE_EINVAL,
                           "brine_install_signals: another brine context has signals installed "
                           "(one at a time: brine_close() it first)");
    claimed = 1;
    pending = 0;

    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_signal;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&act.sa_mask);
    for (int i = 0; i < n; i++) {
        const int s = signals[i];
        if (installed[s]) /* listed twice */
            continue;
        /* What is there now is chained; it is recorded before brine's handler can run. */
        if (sigaction(s, NULL, &previous[s]) != 0 || sigaction(s, &act, NULL) != 0) {
            const int e = errno;
            brine__fail_errno(&b->err, -e, "brine_install_signals: sigaction of %s (%d)",
                              signal_name(s), s);
            rc = b->err.code = BRINE_EIO; /* whatever errno says: the header promises EIO */
            goto done;
        }
        installed[s] = 1;
    }
    b->signals_installed = 1;
done:
    if (rc && claimed) {
        restore_all();
        atomic_store(&owner, NULL);
    }
    return rc;
}

int brine_should_exit(const brine *b)
{
    return b ? b->should_exit : 0;
}

/* ------------------------------------------------------------------------ */
/* brine_maybe_save */

/* The save a signal asked for: synchronous, after any save in flight. */
static int save_for_signal(brine *b, int64_t step)
{
    int rc = brine_wait(b);
    if (rc) {
        /* The save of last_policy_step is not on disk: it does not count. */
        b->last_policy_step = -1;
        return rc;
    }
    int saved = 0;
    if (step != b->last_policy_step) {
        if ((rc = brine_save(b, step)) != 0)
            return rc; /* the flag stays: the next call tries again */
        b->last_policy_step = step;
        saved = 1;
    }
    pending = 0;
    b->should_exit = 1;
    return saved;
}

/*
 * brine_maybe_save in a group (docs/mpi.md): every_steps needs no
 * communication, but the clock and signals are each rank's own.  Each call
 * completes the non-blocking MAX started by the previous call over the
 * ranks' flags (a signal pending, every_seconds due) and acts on the result,
 * then starts the next with its flags as they are after acting: every rank
 * saves at the same step, one call after the first rank saw the reason, and
 * no call blocks on the others but a save.
 */
static int maybe_save_group(brine *b, int64_t step)
{
    int rc = 0;
    int agreed[2] = {0, 0};
    if (b->coll_inflight) {
        b->coll_inflight = 0;
        if (b->coll->iallreduce_end(b->coll->ctx, agreed))
            return brine__fail(&b->err, BRINE_EIO,
                               "brine_maybe_save: the collective agreement on saving failed");
    }
    int saved = 0;
    if (agreed[0]) {
        rc = save_for_signal(b, step);
        saved = rc > 0;
        if (rc < 0)
            return rc; /* every rank failed alike: the flags are agreed again next call */
    } else {
        const int due = (b->opts.every_steps > 0 && step % b->opts.every_steps == 0) || agreed[1];
        if (due && step != b->last_policy_step) {
            if (b->opts.every_seconds > 0)
                b->last_save_time = brine_policy__now(b);
            rc = b->opts.async ? brine_save_async(b, step) : brine_save(b, step);
            if (rc)
                return rc;
            b->last_policy_step = step;
            saved = 1;
        }
    }
    const int flags[2] = {
        b->signals_installed && pending && !b->should_exit,
        b->opts.every_seconds > 0 && brine_policy__now(b) - b->last_save_time >= b->opts.every_seconds,
    };
    if (b->coll->iallreduce_begin(b->coll->ctx, flags, 2))
        return brine__fail(&b->err, BRINE_EIO, "brine_maybe_save: the collective agreement on saving failed");
    b->coll_inflight = 1;
    return saved;
}

int brine_maybe_save(brine *b, int64_t step)
{
    if (!b)
        return BRINE_EINVAL;
    if (step < 0 || step > BRINE_MAX_STEP)
        return brine__fail(&b->err, BRINE_EINVAL,
                           "brine_maybe_save: step %" PRId64 " is not in 0..%" PRId64, step,
                           BRINE_MAX_STEP);
    if (b->coll)
        return maybe_save_group(b, step);
    if (b->signals_installed && pending)
        return save_for_signal(b, step);

    int due = b->opts.every_steps > 0 && step % b->opts.every_steps == 0;
    double now = 0.0;
    if (b->opts.every_seconds > 0) {
        now = brine_policy__now(b);
        due |= now - b->last_save_time >= b->opts.every_seconds;
    }
    /* A step is saved once however often the loop asks. */
    if (!due || step == b->last_policy_step)
        return 0;
    /* The save paths set it too; here it also serves saves made before they did. */
    if (b->opts.every_seconds > 0)
        b->last_save_time = now;
    const int rc = b->opts.async ? brine_save_async(b, step) : brine_save(b, step);
    if (rc)
        return rc;
    b->last_policy_step = step;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Environment variables */

/* value as a whole decimal integer in [lo, hi]; 0 or -1. */
static int parse_int(const char *value, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    if (!(value[0] >= '0' && value[0] <= '9') && value[0] != '-' && value[0] != '+')
        return -1; /* strtoll would skip white space */
    errno = 0;
    const long long v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *value, double *out)
{
    char *end = NULL;
    if (!((value[0] >= '0' && value[0] <= '9') || value[0] == '.'))
        return -1; /* no sign, white space, inf, nan */
    errno = 0;
    const double v = strtod(value, &end);
    if (errno != 0 || end == value || *end != '\0' || !isfinite(v) || v < 0.0)
        return -1;
    *out = v;
    return 0;
}

/* An environment variable that is set; NULL when it is not. */
static const char *env(const char *name)
{
    return getenv(name);
}

static int bad(brine_error *err, const char *name, const char *value, const char *expected)
{
    return brine__fail(err, BRINE_EINVAL,
                       "brine_open: environment variable %s='%s' is invalid: expected %s", name,
                       value, expected);
}

/* An integer variable: *have is set when the variable is set. */
static int env_int(const char *name, long long lo, long long hi, const char *expected,
                   long long *out, int *have, brine_error *err)
{
    const char *const v = env(name);
    *have = 0;
    if (!v)
        return 0;
    if (parse_int(v, lo, hi, out))
        return bad(err, name, v, expected);
    *have = 1;
    return 0;
}

int brine_policy__apply_env(brine_options *o, const char **dir, brine_error *err)
{
    const brine_options d = BRINE_OPTIONS_INIT;
    long long v = 0;
    int have = 0, rc = 0;
    int env_level = 0, env_codec = 0;

    if (!o->use_env)
        return 0;
    /* Every variable that is set is checked, also when an explicit option wins. */
    const char *s = env("BRINE_DIR");
    if (s && !*s)
        return bad(err, "BRINE_DIR", s, "a non-empty path");
    if (s && !*dir)
        *dir = s;

    s = env("BRINE_PREFIX");
    if (s && !brine__prefix_valid(s))
        return bad(err, "BRINE_PREFIX", s,
                   "1 to 64 characters from [A-Za-z0-9_.+-], not starting with '.'");
    if (s && (!o->prefix || strcmp(o->prefix, d.prefix) == 0))
        o->prefix = s;

    if ((rc = env_int("BRINE_KEEP_LAST", INT32_MIN, INT32_MAX, "an integer (<= 0 keeps all)", &v,
                      &have, err)))
        return rc;
    if (have && o->keep_last == d.keep_last)
        o->keep_last = (int)v;

    if ((rc = env_int("BRINE_KEEP_EVERY", 0, INT32_MAX, "an integer >= 0", &v, &have, err)))
        return rc;
    if (have && o->keep_every == d.keep_every)
        o->keep_every = (int)v;

    if ((rc = env_int("BRINE_EVERY_STEPS", 0, BRINE_MAX_STEP, "an integer >= 0", &v, &have, err)))
        return rc;
    if (have && o->every_steps == d.every_steps)
        o->every_steps = (int64_t)v;

    s = env("BRINE_EVERY_SECONDS");
    if (s) {
        double secs = 0.0;
        if (parse_seconds(s, &secs))
            return bad(err, "BRINE_EVERY_SECONDS", s, "a number of seconds >= 0");
        if (o->every_seconds == d.every_seconds)
            o->every_seconds = secs;
    }

    /* The codec's range is checked below, with the codec. */
    if ((rc = env_int("BRINE_LEVEL", 0, INT32_MAX, "an integer >= 0", &v, &have, err)))
        return rc;
    if (have && o->level == d.level) {
        o->level = (int)v;
        env_level = 1;
    }

    if ((rc = env_int("BRINE_THREADS", 0, 1 << 20, "an integer from 0 (OpenMP's default) to 1048576",
                      &v, &have, err)))
        return rc;
    if (have && o->threads == d.threads)
        o->threads = (int)v;

    s = env("BRINE_CODEC");
    if (s) {
        int codec = -1;
        for (int c = 0; c <= BRINE_CODEC_NONE; c++)
            if (brine_codec_name((brine_codec)c) && strcmp(s, brine_codec_name((brine_codec)c)) == 0)
                codec = c;
        if (codec < 0)
            return bad(err, "BRINE_CODEC", s, "zlib, libdeflate, isal, none or default");
        if (o->codec == d.codec) {
            o->codec = (brine_codec)codec;
            env_codec = 1;
        }
    }

    if ((rc = env_int("BRINE_ASYNC", 0, 1, "0 or 1", &v, &have, err)))
        return rc;
    if (have && o->async == d.async)
        o->async = (int)v;

    /* A codec or level from the environment that does not fit says where it came from. */
    if (env_level || env_codec) {
        brine_chunk_codec c;
        char why[200];
        if (brine_chunk__resolve(&c, o->codec, o->level, why, sizeof why))
            return brine__fail(err, BRINE_EINVAL, "brine_open: %s (from the environment:%s%s%s%s)",
                               why, env_codec ? " BRINE_CODEC=" : "",
                               env_codec ? env("BRINE_CODEC") : "",
                               env_level ? " BRINE_LEVEL=" : "", env_level ? env("BRINE_LEVEL") : "");
    }
    return 0;
}
