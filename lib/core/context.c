/* Opening and closing contexts, options, error messages. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/text.h"
#include "../io/publish.h"
#include "async.h"
#include "core.h"

/* brine_open has no context to keep its message in when it fails. */
static _Thread_local brine_error open_error;

brine_error *brine_context__open_error(void)
{
    return &open_error;
}

const char *brine_open_errmsg(void)
{
    return open_error.msg;
}

const char *brine_version(void)
{
    return BRINE_VERSION_STRING;
}

int brine_open(brine **out, const char *dir, const brine_options *opts)
{
    int rc = 0;
    brine_options o = BRINE_OPTIONS_INIT;
    brine *b = NULL;

    brine__error_clear(&open_error);
    if (!out)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: out is NULL");
    *out = NULL;
    if (opts) {
        if (opts->version < 1 || opts->version > BRINE_OPTIONS_VERSION)
            return brine__fail(&open_error, BRINE_EINVAL,
                               "brine_open: options version %u, this library knows %d "
                               "(initialise options with BRINE_OPTIONS_INIT)",
                               opts->version, BRINE_OPTIONS_VERSION);
        /* An older struct is shorter: read only what it has, keep defaults for the rest. */
        if (opts->version == 1)
            memcpy(&o, opts, offsetof(brine_options, restore_flags));
        else if (opts->version == 2)
            memcpy(&o, opts, offsetof(brine_options, every_steps));
        else
            o = *opts;
        o.version = BRINE_OPTIONS_VERSION;
    }
    if (o.use_env != 0 && o.use_env != 1)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: use_env %d is not 0 or 1", o.use_env);
    if ((rc = brine_policy__apply_env(&o, &dir, &open_error)) != 0)
        return rc;
    if (!dir || !*dir)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: the directory is %s%s",
                           dir ? "empty" : "NULL",
                           dir || !o.use_env ? "" : " and BRINE_DIR is not set");
    if (!o.prefix)
        o.prefix = "ckpt";
    if (!brine__prefix_valid(o.prefix))
        return brine__fail(&open_error, BRINE_EINVAL,
                           "brine_open: prefix '%s' is invalid: use 1 to 64 characters from "
                           "[A-Za-z0-9_.+-], not starting with '.'",
                           o.prefix);
    brine_chunk_codec codec;
    char why[200];
    if (brine_chunk__resolve(&codec, o.codec, o.level, why, sizeof why))
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: %s", why);
    if (o.threads < 0)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: threads %d is negative", o.threads);
    if (o.restore_flags & ~BRINE_RESTORE_PARTIAL)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: unknown restore_flags 0x%x",
                           o.restore_flags & ~BRINE_RESTORE_PARTIAL);
    if (o.io && o.io->version != BRINE_IO_METHODS_VERSION)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: I/O methods version %u, expected %d",
                           o.io->version, BRINE_IO_METHODS_VERSION);
    if (o.alloc && (!o.alloc->alloc || !o.alloc->free))
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: the allocator lacks alloc or free");
    if (o.every_steps < 0)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: every_steps %" PRId64 " is negative",
                           o.every_steps);
    if (!(o.every_seconds >= 0.0) || !isfinite(o.every_seconds))
        return brine__fail(&open_error, BRINE_EINVAL,
                           "brine_open: every_seconds %g is not a finite number >= 0", o.every_seconds);
    if (o.keep_every < 0)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: keep_every %d is negative",
                           o.keep_every);
    if (o.async != 0 && o.async != 1)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: async %d is not 0 or 1", o.async);
    if (o.async_flags & ~BRINE_ASYNC_NOWAIT)
        return brine__fail(&open_error, BRINE_EINVAL, "brine_open: unknown async_flags 0x%x",
                           o.async_flags & ~BRINE_ASYNC_NOWAIT);

    b = brine__calloc(o.alloc, 1, sizeof *b);
    if (!b)
        return brine__fail(&open_error, BRINE_ENOMEM, "brine_open: out of memory");
    b->alloc = o.alloc;
    b->io = o.io ? o.io : brine_io_posix();
    b->dir = brine__strdup(b->alloc, dir);
    b->prefix = brine__strdup(b->alloc, o.prefix);
    if (!b->dir || !b->prefix) {
        rc = brine__fail(&open_error, BRINE_ENOMEM, "brine_open: out of memory");
        goto done;
    }
    b->opts = o;
    b->opts.prefix = b->prefix;
    b->codec = codec;
    b->last_save_time = brine_policy__now(b); /* every_seconds counts from here */
    b->last_policy_step = -1;
    if ((rc = brine_publish__mkdirs(b->io, b->dir, &open_error)) != 0)
        goto done;
done:
    if (rc) {
        brine_close(b);
        return rc;
    }
    *out = b;
    return 0;
}

int brine_close(brine *b)
{
    if (!b)
        return 0;
    brine_signals__uninstall(b);
    /* First: the background save still reads the registry's names and writes files. */
    const int rc = brine_async__close(b);
    /* After the async close: a save in flight is committed collectively there. */
    brine_coll__close(b);
    const brine_allocator *a = b->alloc;
    brine_registry__free(b);
    brine_attrs__free(b);
    brine__free(a, b->dir);
    brine__free(a, b->prefix);
    brine__free(a, b);
    return rc;
}

const char *brine_errmsg(const brine *b)
{
    if (!b)
        return "no brine context (NULL)";
    return b->err.msg;
}
