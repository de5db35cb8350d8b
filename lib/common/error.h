/* Error records: a code plus a precise, human-readable message. */
#ifndef BRINE_COMMON_ERROR_H
#define BRINE_COMMON_ERROR_H

#include <stddef.h>

#include "brine.h"

#define BRINE_ERRMSG_MAX 4096

/** The last failure of a context: the code and the full message. */
typedef struct brine_error {
    int code;
    char msg[BRINE_ERRMSG_MAX];
} brine_error;

/** Forgets any previous failure. */
void brine__error_clear(brine_error *e);

/** Records code with a printf-style message and returns code (so `return brine__fail(...)` reads well). */
int brine__fail(brine_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Records a failed system call.  neg_errno is a negated errno value as the
 * I/O methods return it; the code is BRINE_ENOSPC for ENOSPC/EDQUOT,
 * BRINE_ENOMEM for ENOMEM and BRINE_EIO otherwise, and errno's text is
 * appended to the message.
 */
int brine__fail_errno(brine_error *e, int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Maps a negated errno value to a brine code (see brine__fail_errno). */
int brine__code_of_errno(int neg_errno);

/** Puts a printf-style context in front of the current message ("saving step 5: ..."). */
void brine__error_prefix(brine_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
