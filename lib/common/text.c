#include "text.h"

#include <stdio.h>
#include <string.h>

int brine__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        static const unsigned min_of_len[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_of_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

int brine__name_valid(const char *name, char *why, size_t whylen)
{
    size_t len = strlen(name);
    if (len == 0) {
        snprintf(why, whylen, "the name is empty");
        return 0;
    }
    if (len > 1024) {
        snprintf(why, whylen, "the name is longer than 1024 bytes");
        return 0;
    }
    if (!brine__utf8_valid(name, len)) {
        snprintf(why, whylen, "the name is not valid UTF-8");
        return 0;
    }
    const char *comp = name;
    int depth = 0;
    for (;;) {
        /* Groups nest as dicts in the pickle stream, whose depth is bounded. */
        if (++depth > BRINE_NAME_MAX_DEPTH) {
            snprintf(why, whylen, "the name has more than %d components", BRINE_NAME_MAX_DEPTH);
            return 0;
        }
        const char *end = strchr(comp, '/');
        size_t n = end ? (size_t)(end - comp) : strlen(comp);
        if (n == 0) {
            snprintf(why, whylen, "the name has an empty component (leading, trailing or double '/')");
            return 0;
        }
        if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.')) {
            snprintf(why, whylen, "the name has a '.' or '..' component");
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)comp[i];
            if (c <= 0x20 || c == 0x7F) {
                snprintf(why, whylen, "the name holds a space or control character at byte %zu",
                         (size_t)(comp - name) + i);
                return 0;
            }
        }
        if (!end)
            return 1;
        comp = end + 1;
    }
}

int brine__prefix_valid(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || n > 64 || prefix[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = prefix[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '+' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}
