#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void brine__error_clear(brine_error *e)
{
    e->code = 0;
    e->msg[0] = '\0';
}

int brine__fail(brine_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

int brine__code_of_errno(int neg_errno)
{
    switch (-neg_errno) {
    case ENOSPC:
    case EDQUOT:
        return BRINE_ENOSPC;
    case ENOMEM:
        return BRINE_ENOMEM;
    default:
        return BRINE_EIO;
    }
}

int brine__fail_errno(brine_error *e, int neg_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof e->msg) {
        char text[256];
        /* strerror_r's GNU and XSI variants differ; strerror is fine here
         * since the text is copied at once and errno values are fixed strings. */
        snprintf(text, sizeof text, "%s", strerror(-neg_errno));
        snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", text);
    }
    e->code = brine__code_of_errno(neg_errno);
    return e->code;
}

void brine__error_prefix(brine_error *e, const char *fmt, ...)
{
    char head[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    size_t hn = (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
    size_t old = strlen(e->msg);
    /* Keep the end of the old message cut, never the head: it is the context being added. */
    if (hn + old >= sizeof e->msg)
        old = sizeof e->msg - 1 - hn;
    memmove(e->msg + hn, e->msg, old);
    memcpy(e->msg, head, hn);
    e->msg[hn + old] = '\0';
}

const char *brine_errstr(int code)
{
    switch (code) {
    case BRINE_OK: return "success";
    case BRINE_EINVAL: return "invalid argument";
    case BRINE_ENOMEM: return "out of memory";
    case BRINE_EIO: return "I/O error";
    case BRINE_ENOSPC: return "no space left on device";
    case BRINE_ENOTFOUND: return "no checkpoint found";
    case BRINE_ECORRUPT: return "corrupt checkpoint";
    case BRINE_EMISMATCH: return "checkpoint does not match the registered variables";
    case BRINE_EVERSION: return "checkpoint format version not supported";
    case BRINE_EHDF5: return "HDF5 error";
    case BRINE_EBUSY: return "an asynchronous save is in flight";
    default: return "unknown error code";
    }
}
