/* Helpers shared by the C tests: scratch directories and file utilities. */
#ifndef BRINE_TEST_UTIL_H
#define BRINE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/** Creates a fresh empty directory under $TMPDIR (or /tmp) and returns its path (static storage per call slot). */
const char *tu_tmpdir(void);

/** Removes a directory tree; ignores errors. */
void tu_rmtree(const char *path);

/** Number of entries in dir (excluding . and ..) whose name starts with prefix ("" for all). */
int tu_count_entries(const char *dir, const char *prefix);

/** path of "<dir>/<prefix>-<step 12 digits>.h5" into out. */
void tu_ckpt_path(char *out, size_t n, const char *dir, const char *prefix, int64_t step);

/** Reads a whole file into a malloc'd buffer; returns NULL on failure. */
uint8_t *tu_read_file(const char *path, size_t *len);

/** Writes a whole buffer to a file; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);

/** Flips one bit of the byte at offset in a file; returns 0 on success. */
int tu_flip_bit(const char *path, uint64_t offset, int bit);

/** Deterministic pseudo-random generator (splitmix64). */
uint64_t tu_rand(uint64_t *state);

#endif
