/* JSON for --json: a small streaming emitter with RFC 8259 string escaping. */
#include <inttypes.h>
#include <math.h>

#include "cli.h"

void cli_json_init(cli_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = 1;
    j->after_key = 0;
}

/* The comma before a value, unless it follows its key or starts its container. */
static void sep(cli_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = 0;
}

static void open_(cli_json *j, int c)
{
    sep(j);
    fputc(c, j->f);
    if (j->depth < 63)
        j->depth++;
    j->first[j->depth] = 1;
}

static void close_(cli_json *j, int c)
{
    if (j->depth > 0)
        j->depth--;
    fputc(c, j->f);
}

void cli_json_object_begin(cli_json *j) { open_(j, '{'); }
void cli_json_object_end(cli_json *j) { close_(j, '}'); }
void cli_json_array_begin(cli_json *j) { open_(j, '['); }
void cli_json_array_end(cli_json *j) { close_(j, ']'); }

/*
 * A string: '"' and '\' escaped, control characters as \uXXXX, everything
 * else as it is (names are UTF-8; bytes above 0x7f pass through unchanged).
 */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void cli_json_key(cli_json *j, const char *key)
{
    sep(j);
    put_string(j->f, key);
    fputc(':', j->f);
    j->after_key = 1;
}

void cli_json_string(cli_json *j, const char *s)
{
    sep(j);
    put_string(j->f, s ? s : "");
}

void cli_json_int(cli_json *j, int64_t v)
{
    sep(j);
    fprintf(j->f, "%" PRId64, v);
}

void cli_json_uint(cli_json *j, uint64_t v)
{
    sep(j);
    fprintf(j->f, "%" PRIu64, v);
}

void cli_json_double(cli_json *j, double v)
{
    sep(j);
    if (isfinite(v))
        fprintf(j->f, "%.17g", v);
    else
        fputs("null", j->f);
}

void cli_json_bool(cli_json *j, int v)
{
    sep(j);
    fputs(v ? "true" : "false", j->f);
}

void cli_json_null(cli_json *j)
{
    sep(j);
    fputs("null", j->f);
}

void cli_json_kstr(cli_json *j, const char *key, const char *s)
{
    cli_json_key(j, key);
    cli_json_string(j, s);
}

void cli_json_kint(cli_json *j, const char *key, int64_t v)
{
    cli_json_key(j, key);
    cli_json_int(j, v);
}

void cli_json_kuint(cli_json *j, const char *key, uint64_t v)
{
    cli_json_key(j, key);
    cli_json_uint(j, v);
}

void cli_json_kdouble(cli_json *j, const char *key, double v)
{
    cli_json_key(j, key);
    cli_json_double(j, v);
}

void cli_json_kbool(cli_json *j, const char *key, int v)
{
    cli_json_key(j, key);
    cli_json_bool(j, v);
}

void cli_json_finish(cli_json *j)
{
    fputc('\n', j->f);
    fflush(j->f);
}
