/*
 * Helpers shared by the C tests: scratch directories, file utilities, and
 * cmocka assertions on brine's return codes.
 *
 * The macros below (OK, EXPECT_RC) call cmocka's print_error() and fail():
 * they expand at the use site, so a file that uses them must include
 * <cmocka.h> (after <stdarg.h>, <stddef.h>, <setjmp.h>, <stdint.h>) before
 * this header.
 */
#ifndef BRINE_TEST_UTIL_H
#define BRINE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/* Asserts that expr returns 0; otherwise prints the code and brine_errmsg(b). */
#define OK(b, expr)                                                                          \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        if (rc_ != 0) {                                                                      \
            print_error("%s returned %d (%s): %s\n", #expr, rc_, brine_errstr(rc_),          \
                        brine_errmsg(b));                                                    \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

/* Asserts that expr returns code; prints the message otherwise. */
#define EXPECT_RC(b, code, expr)                                                             \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        if (rc_ != (code)) {                                                                 \
            print_error("%s returned %d (%s), expected %d (%s); message: %s\n", #expr, rc_,   \
                        brine_errstr(rc_), (int)(code), brine_errstr(code), brine_errmsg(b)); \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

/** brine_open() on dir with options o (NULL for defaults); fails the test, printing brine_open_errmsg(), if it does not succeed. */
brine *tu_open(const char *dir, const brine_options *o);

/** tu_open() with default options but BRINE_RESTORE_PARTIAL: for restoring a subset of what was saved. */
brine *tu_open_partial(const char *dir);

/** Creates a fresh empty directory under $TMPDIR (or /tmp) and returns its path (static storage per call slot). */
const char *tu_tmpdir(void);

/** Removes a directory tree; ignores errors. */
void tu_rmtree(const char *path);

/** Number of entries in dir (excluding . and ..) whose name starts with prefix ("" for all). */
int tu_count_entries(const char *dir, const char *prefix);

/** path of "<dir>/<prefix>-<step 12 digits>.h5" into out. */
void tu_ckpt_path(char *out, size_t n, const char *dir, const char *prefix, int64_t step);

/** 1 if path exists (stat succeeds), else 0. */
int tu_file_exists(const char *path);

/** 1 if the checkpoint file tu_ckpt_path() names exists, else 0. */
int tu_ckpt_exists(const char *dir, const char *prefix, int64_t step);

/** Reads a whole file into a malloc'd buffer; returns NULL on failure. */
uint8_t *tu_read_file(const char *path, size_t *len);

/** Writes a whole buffer to a file; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);

/** Flips one bit of the byte at offset in a file; returns 0 on success. */
int tu_flip_bit(const char *path, uint64_t offset, int bit);

/** Deterministic pseudo-random generator (splitmix64). */
uint64_t tu_rand(uint64_t *state);

#endif
