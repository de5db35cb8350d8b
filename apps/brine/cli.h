/*
 * The brine command (docs/cli.md): one file per group of commands, sharing
 * the exit codes, messages, JSON output and a few helpers declared here.
 * Uses the public API (brine.h) only, like any program.
 */
#ifndef BRINE_APPS_CLI_H
#define BRINE_APPS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "brine.h"

/* Exit codes, the same for every command (docs/cli.md). */
#define CLI_OK 0       /* everything verified / no difference / done */
#define CLI_FAIL 1     /* a checkpoint is damaged or does not verify; diff: the files differ */
#define CLI_TROUBLE 2  /* bad usage, a file that cannot be read, I/O error, out of memory */

/* The exit code of a brine error code outside diff: damage is CLI_FAIL, the rest CLI_TROUBLE. */
int cli_exit_of(int brine_code);

/* "brine CMD: message\n" on stderr; returns code. */
int cli_error(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 1.5 KiB, 3.2 MiB...: n bytes in at most 10 characters. */
void cli_human_size(char *out, size_t cap, uint64_t n);

/* "(3, 4)" of a shape; "()" for ndim 0. */
void cli_shape_str(char *out, size_t cap, int ndim, const size_t *shape);

/* ISO-8601 UTC of t, "YYYY-MM-DDTHH:MM:SSZ". */
void cli_time_str(char *out, size_t cap, int64_t t);

/* A progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct cli_progress {
    int on;
    uint64_t total, done;
    const char *label;
} cli_progress;
void cli_progress_begin(cli_progress *p, const char *label, uint64_t total);
void cli_progress_add(cli_progress *p, uint64_t n);
void cli_progress_end(cli_progress *p);

/* ---- JSON output (cli_json.c): written to a FILE as it goes, commas handled here. */
typedef struct cli_json {
    FILE *f;
    int depth;
    int first[64]; /* no member written yet at this depth */
    int after_key;
} cli_json;
void cli_json_init(cli_json *j, FILE *f);
void cli_json_object_begin(cli_json *j);
void cli_json_object_end(cli_json *j);
void cli_json_array_begin(cli_json *j);
void cli_json_array_end(cli_json *j);
void cli_json_key(cli_json *j, const char *key);
void cli_json_string(cli_json *j, const char *s);
void cli_json_int(cli_json *j, int64_t v);
void cli_json_uint(cli_json *j, uint64_t v);
void cli_json_double(cli_json *j, double v); /* null when not finite */
void cli_json_bool(cli_json *j, int v);
void cli_json_null(cli_json *j);
/* A key and its value in one call. */
void cli_json_kstr(cli_json *j, const char *key, const char *s);
void cli_json_kint(cli_json *j, const char *key, int64_t v);
void cli_json_kuint(cli_json *j, const char *key, uint64_t v);
void cli_json_kdouble(cli_json *j, const char *key, double v);
void cli_json_kbool(cli_json *j, const char *key, int v);
/* Ends the document with a newline. */
void cli_json_finish(cli_json *j);

/* Whether path is a multi-rank checkpoint directory (<prefix>-<12 digits>/, docs/format.md 7). */
int cli_is_ckptdir(const char *path);

/*
 * The file a command reads for path and --rank (rank < 0: not given): a
 * multi-rank checkpoint directory's rank file (rank default_rank when not
 * given; default_rank < 0: --rank is required), checked against the manifest
 * (size and CRC-32); any other path as it is (--rank is then an error).
 * Returns CLI_OK, or the exit code after saying why.
 */
int cli_rank_path(const char *cmd, const char *path, int rank, int default_rank, char *out, size_t cap);

/* Parses --rank's value into *out; CLI_OK or CLI_TROUBLE (said). */
int cli_parse_rank(const char *cmd, const char *s, int *out);

/* Commands: argc/argv start at the command's name. */
int cli_ls(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_diff(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_prune(int argc, char **argv);

/* Writes the checkpoint open in r as an .npz archive to f (cli_npz.c); says what failed on stderr. */
int cli_write_npz(brine_reader *r, FILE *f, const char *out_name);

#endif
