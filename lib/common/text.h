/* Text checks shared by the registry and the format layer. */
#ifndef BRINE_COMMON_TEXT_H
#define BRINE_COMMON_TEXT_H

#include <stddef.h>

/** 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF), else 0. */
int brine__utf8_valid(const char *s, size_t len);

/** Most components a variable name may have. */
#define BRINE_NAME_MAX_DEPTH 32

/**
 * Checks a hierarchical variable name (brine.h, brine_register).  Returns 1
 * when valid; else 0 with the reason in why[0..whylen).
 */
int brine__name_valid(const char *name, char *why, size_t whylen);

/** 1 when prefix is a valid checkpoint prefix (docs/format.md, section 1), else 0. */
int brine__prefix_valid(const char *prefix);

#endif
