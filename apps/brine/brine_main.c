/*
 * brine: list, inspect, verify, diff, export and prune checkpoints from the
 * shell (docs/cli.md).  This file holds the dispatcher, the shared helpers
 * and the commands that look at files one by one: ls, info, verify, prune.
 * diff is in cli_diff.c, export in cli_export.c and cli_npz.c.
 */
#include <getopt.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------------ helpers */

int cli_exit_of(int code)
{
    switch (code) {
    case BRINE_OK: return CLI_OK;
    case BRINE_ECORRUPT:
    case BRINE_EVERSION:
    case BRINE_EHDF5:
    case BRINE_EMISMATCH: return CLI_FAIL;
    default: return CLI_TROUBLE;
    }
}

int cli_error(int code, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "brine %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

void cli_human_size(char *out, size_t cap, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%" PRIu64 " B", n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

void cli_shape_str(char *out, size_t cap, int ndim, const size_t *shape)
{
    size_t used = (size_t)snprintf(out, cap, "(");
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(out + used, cap - used, "%s%zu", d ? ", " : "", shape[d]);
    if (ndim == 1 && used < cap)
        used += (size_t)snprintf(out + used, cap - used, ",");
    if (used < cap)
        snprintf(out + used, cap - used, ")");
}

void cli_time_str(char *out, size_t cap, int64_t t)
{
    const time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(out, cap, "?");
}

void cli_progress_begin(cli_progress *p, const char *label, uint64_t total)
{
    p->on = isatty(2) && total > 0;
    p->total = total;
    p->done = 0;
    p->label = label;
}

void cli_progress_add(cli_progress *p, uint64_t n)
{
    p->done += n;
    if (!p->on)
        return;
    const int width = 30;
    const double f = p->total ? (double)p->done / (double)p->total : 1.0;
    const int fill = (int)(f * width + 0.5);
    fprintf(stderr, "\r%-24.24s [", p->label);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %5.1f%%", 100 * f);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr);
}

/* Options every command shares. */
typedef struct common_opts {
    int json;
    int verify;
    int rank; /* --rank, -1 when not given */
    const char *prefix;
} common_opts;

enum { OPT_JSON = 256, OPT_PREFIX, OPT_VERIFY, OPT_KEEP_LAST, OPT_KEEP_EVERY, OPT_RANK };

/* parse_common's allow: which of the options not every command has. */
#define ALLOW_VERIFY 1
#define ALLOW_RANK 2

/* Per-variable facts of an open checkpoint: logical bytes of its arrays and what they take on disk. */
typedef struct sizes {
    uint64_t data, stored;
} sizes;

static int array_sizes(brine_reader *r, sizes *out)
{
    out->data = out->stored = 0;
    for (size_t i = 0; i < brine_reader_count(r); i++) {
        brine_var_info v;
        brine_var_storage st;
        brine_reader_var(r, i, &v);
        if (v.kind != BRINE_VAR_ARRAY)
            continue;
        int rc = brine_reader_var_storage(r, v.name, &st);
        if (rc)
            return rc;
        if (!st.in_stream) {
            out->data += v.nbytes;
            out->stored += st.stored_bytes;
        }
    }
    return 0;
}

static double ratio_of(const sizes *s)
{
    return s->stored ? (double)s->data / (double)s->stored : 0.0;
}

/* ------------------------------------------------------------------ ls */

static const char ls_help[] =
    "usage: brine ls [--json] [--verify] [--prefix P] DIR\n"
    "\n"
    "Lists the checkpoints of DIR, one line each: step, created (the file's\n"
    "modification time, UTC), size, compression ratio of the arrays (their bytes\n"
    "over the bytes they take in the file), status and file name.  Status is\n"
    "'ok' (header, metadata, pickle stream and its CRC-32 check), 'corrupt'\n"
    "(with the reason) or 'incomplete' (a temporary file: being written, or left\n"
    "by a killed writer).  Array data is read only with --verify, which checks\n"
    "every chunk's checksum too.  A multi-rank (MPI) checkpoint directory,\n"
    "<prefix>-<step>/, is one line marked '/ (N ranks)', its size the sum of its\n"
    "rank files: 'ok' when its manifest verifies and every rank file opens (with\n"
    "--verify: also each one's size and CRC-32 against the manifest); a corrupt\n"
    "one names the failing rank.\n"
    "\n"
    "  --json      one JSON document on stdout\n"
    "  --verify    verify every chunk of every array (reads all the data)\n"
    "  --prefix P  only checkpoints named P-<step>.h5 or P-<step>/ (default: every prefix)\n"
    "\n"
    "Exit status: 0 all checkpoints ok, 1 some are corrupt, 2 usage or I/O error.\n";

/*
 * Parses the shared options and checks there are min_operands or more
 * operands (exactly min_operands unless many); returns the index of the first
 * operand, or -1 (usage, printed), -2 (--help, printed).
 */
static int parse_common(int argc, char **argv, common_opts *o, const char *help, int allow,
                        int min_operands, int many)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, OPT_JSON},
                                              {"prefix", required_argument, NULL, OPT_PREFIX},
                                              {"verify", no_argument, NULL, OPT_VERIFY},
                                              {"rank", required_argument, NULL, OPT_RANK},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->rank = -1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: o->json = 1; break;
        case OPT_PREFIX: o->prefix = optarg; break;
        case OPT_VERIFY:
            if (!(allow & ALLOW_VERIFY))
                goto usage;
            o->verify = 1;
            break;
        case OPT_RANK:
            if (!(allow & ALLOW_RANK))
                goto usage;
            if (cli_parse_rank(argv[0], optarg, &o->rank))
                return -1;
            break;
        case 'h': fputs(help, stdout); return -2;
        default: goto usage;
        }
    }
    if (argc - optind < min_operands || (!many && argc - optind > min_operands))
        goto usage;
    return optind;
usage:
    fputs(help, stderr);
    return -1;
}

/* Opens a reader, returning 0 or the brine code (the message is brine_open_errmsg()). */
static int open_reader(brine_reader **r, const char *path, unsigned flags)
{
    return brine_reader_open(r, path, NULL, flags);
}

int cli_is_ckptdir(const char *path)
{
    struct stat st;
    int nranks = 0;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
           brine_manifest_read(path, NULL, NULL, &nranks, NULL, 0) != BRINE_EINVAL;
}

int cli_rank_path(const char *cmd, const char *path, int rank, int default_rank, char *out, size_t cap)
{
    if (!cli_is_ckptdir(path)) {
        if (rank >= 0)
            return cli_error(CLI_TROUBLE, cmd, "--rank %d: %s is not a multi-rank checkpoint directory", rank, path);
        snprintf(out, cap, "%s", path);
        return CLI_OK;
    }
    if (rank < 0)
        rank = default_rank;
    if (rank < 0) {
        int nranks = 0;
        const int rc = brine_manifest_read(path, NULL, NULL, &nranks, NULL, 0);
        if (rc)
            return cli_error(cli_exit_of(rc), cmd, "%s", brine_open_errmsg());
        return cli_error(CLI_TROUBLE, cmd, "%s is a multi-rank checkpoint of %d rank%s: choose one with --rank R "
                         "(0 to %d), or give a rank file, %s/rank-<R>.h5", path, nranks, nranks == 1 ? "" : "s",
                         nranks - 1, path);
    }
    const int rc = brine_rank_file_check(path, rank, NULL);
    if (rc)
        return cli_error(rc == BRINE_ENOTFOUND ? CLI_TROUBLE : cli_exit_of(rc), cmd, "%s", brine_open_errmsg());
    const int n = snprintf(out, cap, "%s/rank-%d.h5", path, rank);
    if (n < 0 || (size_t)n >= cap)
        return cli_error(CLI_TROUBLE, cmd, "the path of rank %d's file in %s is too long", rank, path);
    return CLI_OK;
}

int cli_parse_rank(const char *cmd, const char *s, int *out)
{
    char *end;
    const long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000000)
        return cli_error(CLI_TROUBLE, cmd, "--rank '%s' is not an integer >= 0", s);
    *out = (int)v;
    return CLI_OK;
}

/*
 * Status of a multi-rank checkpoint for ls: the manifest, then each rank file
 * opened (with verify: its size and CRC-32 against the manifest, and every
 * chunk), adding up the arrays' sizes.  0 ok, else the brine code with why.
 */
static int ls_multirank(const char *path, int verify, int *nranks, sizes *sz, char *why, size_t cap)
{
    *nranks = 0;
    int rc = brine_manifest_read(path, NULL, NULL, nranks, NULL, 0);
    if (rc) {
        snprintf(why, cap, "%s", brine_open_errmsg());
        return rc;
    }
    for (int k = 0; k < *nranks; k++) {
        char file[4096];
        brine_reader *r = NULL;
        sizes one = {0, 0};
        snprintf(file, sizeof file, "%s/rank-%d.h5", path, k);
        if (verify && (rc = brine_rank_file_check(path, k, NULL))) {
            snprintf(why, cap, "rank %d: %s", k, brine_open_errmsg());
            return rc;
        }
        rc = open_reader(&r, file, verify ? BRINE_READER_VERIFY : 0);
        if (!rc)
            rc = array_sizes(r, &one);
        if (rc) {
            snprintf(why, cap, "rank %d: %s", k, r ? brine_reader_errmsg(r) : brine_open_errmsg());
            brine_reader_close(r);
            return rc;
        }
        brine_reader_close(r);
        sz->data += one.data;
        sz->stored += one.stored;
    }
    return 0;
}

int cli_ls(int argc, char **argv)
{
    common_opts o;
    int first = parse_common(argc, argv, &o, ls_help, ALLOW_VERIFY, 1, 0);
    if (first < 0)
        return first == -2 ? CLI_OK : CLI_TROUBLE;
    const char *dir = argv[first];
    brine_listing *l = NULL;
    int rc = brine_list(&l, dir, o.prefix, NULL);
    if (rc)
        return cli_error(CLI_TROUBLE, "ls", "%s", brine_open_errmsg());
    int status = CLI_OK;
    cli_json j;
    if (o.json) {
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_kstr(&j, "dir", dir);
        cli_json_key(&j, "checkpoints");
        cli_json_array_begin(&j);
    } else if (brine_listing_count(l)) {
        printf("%-12s  %-20s  %10s  %6s  %-10s  %s\n", "STEP", "CREATED", "SIZE", "RATIO", "STATUS",
               "FILE");
    }
    for (size_t i = 0; i < brine_listing_count(l); i++) {
        brine_entry e;
        brine_listing_entry(l, i, &e);
        const char *st = "incomplete";
        char why[2048] = "";
        sizes sz = {0, 0};
        int nranks = 1;
        if (e.kind == BRINE_ENTRY_MULTIRANK) {
            if (ls_multirank(e.path, o.verify, &nranks, &sz, why, sizeof why)) {
                st = "corrupt";
                status = CLI_FAIL;
            } else {
                st = "ok";
            }
        } else if (e.kind == BRINE_ENTRY_CHECKPOINT) {
            brine_reader *r = NULL;
            int orc = open_reader(&r, e.path, o.verify ? BRINE_READER_VERIFY : 0);
            if (!orc)
                orc = array_sizes(r, &sz);
            if (orc) {
                snprintf(why, sizeof why, "%s", r ? brine_reader_errmsg(r) : brine_open_errmsg());
                st = "corrupt";
                status = CLI_FAIL;
            } else {
                st = "ok";
            }
            brine_reader_close(r);
        }
        char created[32], size[24];
        cli_time_str(created, sizeof created, e.mtime);
        cli_human_size(size, sizeof size, e.size);
        if (o.json) {
            cli_json_object_begin(&j);
            cli_json_kstr(&j, "file", e.name);
            cli_json_kstr(&j, "path", e.path);
            cli_json_kstr(&j, "prefix", e.prefix);
            cli_json_kint(&j, "step", e.step);
            cli_json_kstr(&j, "kind", e.kind == BRINE_ENTRY_CHECKPOINT  ? "checkpoint"
                                      : e.kind == BRINE_ENTRY_MULTIRANK ? "multirank"
                                                                        : "temporary");
            cli_json_key(&j, "ranks");
            if (e.kind == BRINE_ENTRY_TEMPORARY || nranks == 0)
                cli_json_null(&j); /* unknown: no manifest (yet), or one that does not verify */
            else
                cli_json_int(&j, nranks);
            cli_json_kstr(&j, "created", created);
            cli_json_kuint(&j, "size", e.size);
            cli_json_kuint(&j, "array_bytes", sz.data);
            cli_json_kuint(&j, "stored_bytes", sz.stored);
            cli_json_key(&j, "ratio");
            if (sz.stored)
                cli_json_double(&j, ratio_of(&sz));
            else
                cli_json_null(&j);
            cli_json_kstr(&j, "status", st);
            cli_json_kbool(&j, "verified", o.verify && strcmp(st, "ok") == 0);
            cli_json_key(&j, "error");
            if (why[0])
                cli_json_string(&j, why);
            else
                cli_json_null(&j);
            cli_json_object_end(&j);
        } else {
            char ratio[16] = "-";
            if (sz.stored)
                snprintf(ratio, sizeof ratio, "%.2f", ratio_of(&sz));
            char ranks[48] = "";
            if (e.kind == BRINE_ENTRY_MULTIRANK && nranks > 0)
                snprintf(ranks, sizeof ranks, "/ (%d rank%s)", nranks, nranks == 1 ? "" : "s");
            else if (e.kind == BRINE_ENTRY_MULTIRANK)
                snprintf(ranks, sizeof ranks, "/");
            printf("%012" PRId64 "  %-20s  %10s  %6s  %-10s  %s%s\n", e.step, created, size, ratio, st,
                   e.name, ranks);
            if (why[0])
                printf("    %s\n", why);
        }
    }
    if (o.json) {
        cli_json_array_end(&j);
        cli_json_kbool(&j, "ok", status == CLI_OK);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else if (brine_listing_count(l) == 0) {
        printf("no checkpoints in %s\n", dir);
    }
    brine_listing_free(l);
    return status;
}

/* ------------------------------------------------------------------ info */

static const char info_help[] =
    "usage: brine info [--json] FILE\n"
    "       brine info [--json] [--rank R] CKPTDIR\n"
    "\n"
    "Shows a checkpoint's format version, step, metadata attributes and a table\n"
    "of its variables: name, kind, dtype, shape, order, bytes, stored bytes,\n"
    "compression ratio and storage (the stream, or chunks and filters).  Reads\n"
    "metadata only: no array data (use brine verify for that).\n"
    "A multi-rank checkpoint directory (CKPTDIR, <prefix>-<step>/) shows its\n"
    "manifest (step, rank count, each rank file's size and CRC-32), then the\n"
    "above for one rank's file, checked against the manifest first: rank 0, or R.\n"
    "\n"
    "  --json      one JSON document on stdout\n"
    "  --rank R    with CKPTDIR: the rank whose file is shown (default 0)\n"
    "\n"
    "Exit status: 0 ok, 1 the file is corrupt, 2 usage or I/O error.\n";

static const char *kind_name(brine_var_kind k)
{
    switch (k) {
    case BRINE_VAR_ARRAY: return "array";
    case BRINE_VAR_SCALAR: return "scalar";
    case BRINE_VAR_STRING: return "string";
    default: return "other";
    }
}

static void filters_str(char *out, size_t cap, const brine_var_storage *st)
{
    if (st->in_stream) {
        snprintf(out, cap, "stream");
        return;
    }
    size_t used = (size_t)snprintf(out, cap, "%s", st->chunk_ndim ? "chunks " : "contiguous");
    if (st->chunk_ndim) {
        cli_shape_str(out + used, cap - used, st->chunk_ndim, st->chunk);
        used = strlen(out);
    }
    if (st->filters & BRINE_STORAGE_SHUFFLE)
        used += (size_t)snprintf(out + used, cap - used, " shuffle");
    if ((st->filters & BRINE_STORAGE_DEFLATE) && used < cap)
        used += (size_t)snprintf(out + used, cap - used, " deflate(%d)", st->deflate_level);
    if ((st->filters & BRINE_STORAGE_FLETCHER32) && used < cap)
        snprintf(out + used, cap - used, " fletcher32");
}

static void json_filters(cli_json *j, const brine_var_storage *st)
{
    cli_json_array_begin(j);
    if (st->filters & BRINE_STORAGE_SHUFFLE)
        cli_json_string(j, "shuffle");
    if (st->filters & BRINE_STORAGE_DEFLATE)
        cli_json_string(j, "deflate");
    if (st->filters & BRINE_STORAGE_FLETCHER32)
        cli_json_string(j, "fletcher32");
    cli_json_array_end(j);
}

static const char *dtype_name(int dtype)
{
    const char *s = dtype >= 0 ? brine_dtype_str((brine_dtype)dtype) : NULL;
    return s ? s : "-";
}

int cli_info(int argc, char **argv)
{
    common_opts o;
    int first = parse_common(argc, argv, &o, info_help, ALLOW_RANK, 1, 0);
    if (first < 0)
        return first == -2 ? CLI_OK : CLI_TROUBLE;
    const char *ckptdir = cli_is_ckptdir(argv[first]) ? argv[first] : NULL;
    char file[4096];
    int64_t mstep = -1;
    int nranks = 0, rank = o.rank < 0 ? 0 : o.rank;
    brine_rank_file *ranks = NULL;
    int rc = cli_rank_path("info", argv[first], o.rank, 0, file, sizeof file);
    if (rc)
        return rc;
    if (ckptdir) {
        /* Verified once by cli_rank_path; read again for the table of every rank. */
        if ((rc = brine_manifest_read(ckptdir, NULL, &mstep, &nranks, NULL, 0)) ||
            !(ranks = calloc((size_t)nranks, sizeof *ranks)) ||
            (rc = brine_manifest_read(ckptdir, NULL, &mstep, &nranks, ranks, (size_t)nranks))) {
            free(ranks);
            return rc ? cli_error(cli_exit_of(rc), "info", "%s", brine_open_errmsg())
                      : cli_error(CLI_TROUBLE, "info", "out of memory");
        }
    }
    const char *path = file;
    brine_reader *r = NULL;
    rc = open_reader(&r, path, 0);
    if (rc) {
        free(ranks);
        return cli_error(cli_exit_of(rc), "info", "%s", brine_open_errmsg());
    }
    brine_attr fmt;
    const int64_t format = brine_find_attr(r, "brine_format", &fmt) == 0 ? fmt.i : -1;
    const size_t n = brine_reader_count(r);
    brine_var_storage *st = calloc(n ? n : 1, sizeof *st);
    if (!st) {
        free(ranks);
        brine_reader_close(r);
        return cli_error(CLI_TROUBLE, "info", "out of memory");
    }
    sizes total = {0, 0};
    for (size_t i = 0; i < n && !rc; i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        if ((rc = brine_reader_var_storage(r, v.name, &st[i])))
            break;
        if (v.kind == BRINE_VAR_ARRAY && !st[i].in_stream) {
            total.data += v.nbytes;
            total.stored += st[i].stored_bytes;
        }
    }
    if (rc) {
        cli_error(cli_exit_of(rc), "info", "%s", brine_reader_errmsg(r));
        free(ranks);
        free(st);
        brine_reader_close(r);
        return cli_exit_of(rc);
    }
    if (o.json) {
        cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        if (ckptdir) {
            cli_json_kstr(&j, "checkpoint", ckptdir);
            cli_json_kint(&j, "nranks", nranks);
            cli_json_key(&j, "ranks");
            cli_json_array_begin(&j);
            for (int k = 0; k < nranks; k++) {
                char name[32], crc[16];
                snprintf(name, sizeof name, "rank-%d.h5", k);
                snprintf(crc, sizeof crc, "%08" PRIx32, ranks[k].crc);
                cli_json_object_begin(&j);
                cli_json_kint(&j, "rank", k);
                cli_json_kstr(&j, "file", name);
                cli_json_kuint(&j, "size", ranks[k].size);
                cli_json_kstr(&j, "crc32", crc);
                cli_json_object_end(&j);
            }
            cli_json_array_end(&j);
            cli_json_kint(&j, "rank", rank);
        }
        cli_json_kstr(&j, "file", path);
        cli_json_kint(&j, "format", format);
        cli_json_kint(&j, "step", brine_reader_step(r));
        cli_json_key(&j, "attributes");
        cli_json_object_begin(&j);
        for (size_t i = 0; i < brine_reader_attr_count(r); i++) {
            brine_attr a;
            brine_reader_attr(r, i, &a);
            cli_json_key(&j, a.name);
            if (a.type == BRINE_ATTR_INT)
                cli_json_int(&j, a.i);
            else if (a.type == BRINE_ATTR_DOUBLE)
                cli_json_double(&j, a.d);
            else
                cli_json_string(&j, a.s);
        }
        cli_json_object_end(&j);
        cli_json_kuint(&j, "array_bytes", total.data);
        cli_json_kuint(&j, "stored_bytes", total.stored);
        cli_json_key(&j, "variables");
        cli_json_array_begin(&j);
        for (size_t i = 0; i < n; i++) {
            brine_var_info v;
            brine_reader_var(r, i, &v);
            cli_json_object_begin(&j);
            cli_json_kstr(&j, "name", v.name);
            cli_json_kstr(&j, "kind", kind_name(v.kind));
            cli_json_key(&j, "dtype");
            if (v.dtype >= 0)
                cli_json_string(&j, dtype_name(v.dtype));
            else
                cli_json_null(&j);
            cli_json_key(&j, "shape");
            cli_json_array_begin(&j);
            for (int d = 0; d < v.ndim; d++)
                cli_json_uint(&j, v.shape[d]);
            cli_json_array_end(&j);
            cli_json_kstr(&j, "order", v.flags & BRINE_FORTRAN_ORDER ? "F" : "C");
            cli_json_kuint(&j, "bytes", v.nbytes);
            cli_json_kbool(&j, "in_stream", st[i].in_stream);
            cli_json_kuint(&j, "stored_bytes", st[i].stored_bytes);
            cli_json_key(&j, "ratio");
            if (st[i].stored_bytes)
                cli_json_double(&j, (double)v.nbytes / (double)st[i].stored_bytes);
            else
                cli_json_null(&j);
            cli_json_key(&j, "filters");
            json_filters(&j, &st[i]);
            cli_json_key(&j, "deflate_level");
            if (st[i].deflate_level >= 0)
                cli_json_int(&j, st[i].deflate_level);
            else
                cli_json_null(&j);
            cli_json_key(&j, "chunk");
            if (st[i].chunk_ndim) {
                cli_json_array_begin(&j);
                for (int d = 0; d < st[i].chunk_ndim; d++)
                    cli_json_uint(&j, st[i].chunk[d]);
                cli_json_array_end(&j);
            } else {
                cli_json_null(&j);
            }
            cli_json_object_end(&j);
        }
        cli_json_array_end(&j);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else {
        char a[24], b[24];
        cli_human_size(a, sizeof a, total.data);
        cli_human_size(b, sizeof b, total.stored);
        if (ckptdir) {
            uint64_t sum = 0;
            for (int k = 0; k < nranks; k++)
                sum += ranks[k].size;
            cli_human_size(a, sizeof a, sum);
            printf("checkpoint:  %s (multi-rank)\n", ckptdir);
            printf("step:        %" PRId64 "\n", mstep);
            printf("ranks:       %d, %s in all\n", nranks, a);
            printf("  %-6s %-16s %10s  %s\n", "RANK", "FILE", "SIZE", "CRC-32");
            for (int k = 0; k < nranks; k++) {
                char name[32];
                snprintf(name, sizeof name, "rank-%d.h5", k);
                cli_human_size(a, sizeof a, ranks[k].size);
                printf("  %-6d %-16s %10s  %08" PRIx32 "\n", k, name, a, ranks[k].crc);
            }
            printf("rank %d's file (size and CRC-32 checked; --rank R for another):\n", rank);
            cli_human_size(a, sizeof a, total.data);
        }
        printf("file:        %s\n", path);
        printf("format:      %" PRId64 "\n", format);
        printf("step:        %" PRId64 "\n", brine_reader_step(r));
        printf("arrays:      %s in %s", a, b);
        if (total.stored)
            printf(" (ratio %.2f)", ratio_of(&total));
        printf("\nattributes:\n");
        for (size_t i = 0; i < brine_reader_attr_count(r); i++) {
            brine_attr at;
            brine_reader_attr(r, i, &at);
            if (at.type == BRINE_ATTR_INT)
                printf("  %-20s %" PRId64 "\n", at.name, at.i);
            else if (at.type == BRINE_ATTR_DOUBLE)
                printf("  %-20s %.17g\n", at.name, at.d);
            else
                printf("  %-20s \"%s\"\n", at.name, at.s);
        }
        printf("variables:\n");
        printf("  %-24s %-6s %-5s %-16s %-5s %10s %10s %6s  %s\n", "NAME", "KIND", "DTYPE", "SHAPE",
               "ORDER", "BYTES", "STORED", "RATIO", "STORAGE");
        for (size_t i = 0; i < n; i++) {
            brine_var_info v;
            char shape[128], bytes[24], stored[24] = "-", ratio[16] = "-", filters[160];
            brine_reader_var(r, i, &v);
            cli_shape_str(shape, sizeof shape, v.ndim, v.shape);
            if (v.kind == BRINE_VAR_ARRAY || v.kind == BRINE_VAR_STRING)
                cli_human_size(bytes, sizeof bytes, v.nbytes);
            else
                snprintf(bytes, sizeof bytes, "-");
            if (!st[i].in_stream) {
                cli_human_size(stored, sizeof stored, st[i].stored_bytes);
                if (st[i].stored_bytes)
                    snprintf(ratio, sizeof ratio, "%.2f", (double)v.nbytes / (double)st[i].stored_bytes);
            }
            filters_str(filters, sizeof filters, &st[i]);
            printf("  %-24s %-6s %-5s %-16s %-5s %10s %10s %6s  %s\n", v.name, kind_name(v.kind),
                   dtype_name(v.dtype), v.kind == BRINE_VAR_ARRAY ? shape : "-",
                   v.kind == BRINE_VAR_ARRAY ? (v.flags & BRINE_FORTRAN_ORDER ? "F" : "C") : "-",
                   bytes, stored, ratio, filters);
        }
    }
    free(ranks);
    free(st);
    brine_reader_close(r);
    return CLI_OK;
}

/* ------------------------------------------------------------------ verify */

static const char verify_help[] =
    "usage: brine verify [--json] [--prefix P] FILE|DIR|CKPTDIR...\n"
    "\n"
    "Verifies checkpoints completely, as brine_restore does before trusting one\n"
    "(docs/format.md, section 6): HDF5 metadata checksums, format version, step,\n"
    "the pickle stream's CRC-32 and decoding, and every chunk of every array\n"
    "against its fletcher32 checksum.  A directory verifies each of its\n"
    "checkpoints (temporary files are listed, not verified).  Chunks are checked\n"
    "in parallel (OpenMP threads: OMP_NUM_THREADS); a progress bar is drawn on\n"
    "stderr when it is a terminal.  Every damaged variable is reported, not\n"
    "only the first.  A multi-rank checkpoint directory (CKPTDIR, <prefix>-<step>/,\n"
    "in DIR or given) verifies when its manifest does and every rank file has\n"
    "the recorded size and CRC-32 and verifies; failures name the rank.\n"
    "\n"
    "  --json      one JSON document on stdout\n"
    "  --prefix P  in directories, only checkpoints named P-<step>.h5 or P-<step>/\n"
    "\n"
    "Exit status: 0 everything verifies, 1 something does not, 2 usage or I/O error.\n";

typedef struct verify_result {
    int ok;
    int exit;      /* CLI_OK, CLI_FAIL (damage) or CLI_TROUBLE (cannot be read: missing, I/O) */
    size_t nerrors;
    char errors[16][1024];
    uint64_t bytes;
    size_t variables;
} verify_result;

static void add_error(verify_result *v, const char *msg)
{
    v->ok = 0;
    if (v->exit == CLI_OK)
        v->exit = CLI_FAIL;
    if (v->nerrors < 16)
        snprintf(v->errors[v->nerrors], sizeof v->errors[0], "%s", msg);
    v->nerrors++;
}

/* Verifies one file: everything the open checks, then each array's chunks, reporting every failure. */
static void verify_file(const char *path, verify_result *out)
{
    memset(out, 0, sizeof *out);
    out->ok = 1;
    brine_reader *r = NULL;
    int rc = open_reader(&r, path, 0);
    if (rc) {
        add_error(out, brine_open_errmsg());
        out->exit = cli_exit_of(rc);
        return;
    }
    const size_t n = brine_reader_count(r);
    out->variables = n;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        if (v.kind == BRINE_VAR_ARRAY)
            total += v.nbytes;
    }
    const char *base = strrchr(path, '/');
    cli_progress p;
    cli_progress_begin(&p, base ? base + 1 : path, total);
    for (size_t i = 0; i < n; i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        if (v.kind != BRINE_VAR_ARRAY)
            continue;
        if (brine_reader_verify(r, v.name))
            add_error(out, brine_reader_errmsg(r));
        cli_progress_add(&p, v.nbytes);
    }
    cli_progress_end(&p);
    out->bytes = total;
    brine_reader_close(r);
}

/*
 * Verifies a multi-rank checkpoint: its manifest, then every rank's file
 * against it (size, CRC-32) and as a file; every failure names its rank.
 */
static void verify_multirank(const char *path, verify_result *out, verify_result *sub, int *nranks)
{
    memset(out, 0, sizeof *out);
    out->ok = 1;
    *nranks = 0;
    int rc = brine_manifest_read(path, NULL, NULL, nranks, NULL, 0);
    if (rc) {
        add_error(out, brine_open_errmsg());
        out->exit = cli_exit_of(rc);
        return;
    }
    for (int k = 0; k < *nranks; k++) {
        char file[4096], msg[1024];
        snprintf(file, sizeof file, "%s/rank-%d.h5", path, k);
        if ((rc = brine_rank_file_check(path, k, NULL))) {
            snprintf(msg, sizeof msg, "rank %d: %.990s", k, brine_open_errmsg());
            add_error(out, msg);
            if (cli_exit_of(rc) > out->exit)
                out->exit = cli_exit_of(rc);
            continue;
        }
        verify_file(file, sub);
        out->variables += sub->variables;
        out->bytes += sub->bytes;
        for (size_t e = 0; e < sub->nerrors && e < 16; e++) {
            snprintf(msg, sizeof msg, "rank %d: %.990s", k, sub->errors[e]);
            add_error(out, msg);
        }
        if (sub->exit > out->exit)
            out->exit = sub->exit;
    }
}

/* Prints one verified checkpoint (a file, or a multi-rank directory when nranks > 0). */
static void verify_report(const char *path, const verify_result *res, int nranks, int json, cli_json *j)
{
    if (json) {
        cli_json_object_begin(j);
        cli_json_kstr(j, "path", path);
        cli_json_kstr(j, "status", res->ok ? "ok" : res->exit == CLI_FAIL ? "corrupt" : "unreadable");
        cli_json_key(j, "ranks");
        if (nranks >= 0)
            cli_json_int(j, nranks ? nranks : 1);
        else
            cli_json_null(j); /* a manifest that does not verify */
        cli_json_kuint(j, "variables", res->variables);
        cli_json_kuint(j, "array_bytes", res->bytes);
        cli_json_key(j, "errors");
        cli_json_array_begin(j);
        for (size_t k = 0; k < res->nerrors && k < 16; k++)
            cli_json_string(j, res->errors[k]);
        cli_json_array_end(j);
        cli_json_object_end(j);
    } else if (res->ok) {
        char b[24], ranks[32] = "";
        cli_human_size(b, sizeof b, res->bytes);
        if (nranks > 0)
            snprintf(ranks, sizeof ranks, "%d rank%s, ", nranks, nranks == 1 ? "" : "s");
        printf("%s: ok (%s%zu variables, %s of arrays verified)\n", path, ranks, res->variables, b);
    } else {
        printf("%s: %s\n", path, res->exit == CLI_FAIL ? "CORRUPT" : "UNREADABLE");
        for (size_t k = 0; k < res->nerrors && k < 16; k++)
            printf("  %s\n", res->errors[k]);
        if (res->nerrors > 16)
            printf("  ... and %zu more\n", res->nerrors - 16);
    }
}

int cli_verify(int argc, char **argv)
{
    common_opts o;
    int first = parse_common(argc, argv, &o, verify_help, 0, 1, 1);
    if (first < 0)
        return first == -2 ? CLI_OK : CLI_TROUBLE;
    int status = CLI_OK;
    verify_result *res = malloc(2 * sizeof *res), *sub = res + 1;
    if (!res)
        return cli_error(CLI_TROUBLE, "verify", "out of memory");
    cli_json j;
    if (o.json) {
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_key(&j, "files");
        cli_json_array_begin(&j);
    }
    for (int a = first; a < argc; a++) {
        /* A directory is listed; anything else is a file. */
        brine_listing *l = NULL;
        size_t count = 1;
        int is_dir = 0;
        if (cli_is_ckptdir(argv[a])) {
            int nranks = 0;
            verify_multirank(argv[a], res, sub, &nranks);
            if (res->exit > status)
                status = res->exit;
            verify_report(argv[a], res, nranks ? nranks : -1, o.json, &j);
            continue;
        }
        if (brine_list(&l, argv[a], o.prefix, NULL) == 0) {
            is_dir = 1;
            count = brine_listing_count(l);
            if (count == 0 && !o.json)
                printf("%s: no checkpoints\n", argv[a]);
        }
        for (size_t i = 0; i < count; i++) {
            brine_entry e = {0};
            const char *path = argv[a];
            if (is_dir) {
                brine_listing_entry(l, i, &e);
                path = e.path;
            }
            if (is_dir && e.kind == BRINE_ENTRY_TEMPORARY) {
                if (o.json) {
                    cli_json_object_begin(&j);
                    cli_json_kstr(&j, "path", path);
                    cli_json_kstr(&j, "status", "incomplete");
                    cli_json_object_end(&j);
                } else {
                    printf("%s: incomplete (temporary %s), not verified\n", path,
                           strstr(e.name, ".h5.tmp-") ? "file" : "directory");
                }
                continue;
            }
            int nranks = 0;
            if (is_dir && e.kind == BRINE_ENTRY_MULTIRANK) {
                verify_multirank(path, res, sub, &nranks);
                if (!nranks)
                    nranks = -1;
            } else {
                verify_file(path, res);
            }
            if (res->exit > status)
                status = res->exit;
            verify_report(path, res, nranks, o.json, &j);
        }
        brine_listing_free(l);
    }
    if (o.json) {
        cli_json_array_end(&j);
        cli_json_kbool(&j, "ok", status == CLI_OK);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    }
    free(res);
    return status;
}

/* ------------------------------------------------------------------ prune */

static const char prune_help[] =
    "usage: brine prune --keep-last N [--keep-every K] [--prefix P] DIR\n"
    "\n"
    "Applies retention by hand, as a save's rotation does: keeps the N newest\n"
    "checkpoints and, with --keep-every, those whose step is a multiple of K;\n"
    "deletes the other checkpoints of the prefix.  The newest checkpoint that\n"
    "verifies completely is never deleted, even when newer ones are damaged;\n"
    "when none verifies nothing is deleted.  Temporary files are left alone.\n"
    "Multi-rank checkpoint directories (<prefix>-<step>/) are pruned the same way,\n"
    "apart from single files: the newest directory whose manifest and rank files\n"
    "all verify stays, and a directory is renamed to a temporary name before its\n"
    "files are removed, so that a crash never leaves one that looks committed.\n"
    "Prints the files and directories it deleted.\n"
    "\n"
    "  --keep-last N   checkpoints to keep, N >= 1\n"
    "  --keep-every K  also keep steps that are multiples of K\n"
    "  --prefix P      the run's prefix (default: the only prefix in DIR)\n"
    "\n"
    "Exit status: 0 done, 1 no checkpoint verifies (nothing deleted), 2 usage or I/O error.\n";

/* The prefix to prune: the one given, else the only one the directory has. */
static int only_prefix(const char *dir, char *out, size_t cap)
{
    brine_listing *l = NULL;
    if (brine_list(&l, dir, NULL, NULL))
        return cli_error(CLI_TROUBLE, "prune", "%s", brine_open_errmsg());
    out[0] = '\0';
    int rc = CLI_OK;
    for (size_t i = 0; i < brine_listing_count(l) && rc == CLI_OK; i++) {
        brine_entry e;
        brine_listing_entry(l, i, &e);
        if (out[0] && strcmp(out, e.prefix) != 0)
            rc = cli_error(CLI_TROUBLE, "prune", "%s holds checkpoints of several prefixes ('%s', '%s'): "
                           "choose one with --prefix", dir, out, e.prefix);
        else
            snprintf(out, cap, "%s", e.prefix);
    }
    if (rc == CLI_OK && !out[0])
        rc = cli_error(CLI_TROUBLE, "prune", "no checkpoints in %s", dir);
    brine_listing_free(l);
    return rc;
}

static int parse_count(const char *s, int min, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_prune(int argc, char **argv)
{
    static const struct option longopts[] = {{"keep-last", required_argument, NULL, OPT_KEEP_LAST},
                                              {"keep-every", required_argument, NULL, OPT_KEEP_EVERY},
                                              {"prefix", required_argument, NULL, OPT_PREFIX},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    int keep_last = 0, keep_every = 0, c;
    const char *prefix = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_KEEP_LAST:
            if (parse_count(optarg, 1, &keep_last))
                return cli_error(CLI_TROUBLE, "prune", "--keep-last '%s' is not an integer >= 1", optarg);
            break;
        case OPT_KEEP_EVERY:
            if (parse_count(optarg, 0, &keep_every))
                return cli_error(CLI_TROUBLE, "prune", "--keep-every '%s' is not an integer >= 0", optarg);
            break;
        case OPT_PREFIX: prefix = optarg; break;
        case 'h': fputs(prune_help, stdout); return CLI_OK;
        default: fputs(prune_help, stderr); return CLI_TROUBLE;
        }
    }
    if (argc - optind != 1 || keep_last < 1) {
        fputs(prune_help, stderr);
        return CLI_TROUBLE;
    }
    const char *dir = argv[optind];
    char pre[80];
    if (!prefix) {
        int rc = only_prefix(dir, pre, sizeof pre);
        if (rc)
            return rc;
        prefix = pre;
    }
    brine_listing *before = NULL;
    if (brine_list(&before, dir, prefix, NULL))
        return cli_error(CLI_TROUBLE, "prune", "%s", brine_open_errmsg());
    size_t deleted = 0;
    int rc = brine_prune(dir, prefix, keep_last, keep_every, NULL, &deleted);
    if (rc) {
        brine_listing_free(before);
        return cli_error(rc == BRINE_ECORRUPT ? CLI_FAIL : CLI_TROUBLE, "prune", "%s", brine_open_errmsg());
    }
    /* What went: the checkpoints listed before that no longer exist. */
    for (size_t i = 0; i < brine_listing_count(before); i++) {
        brine_entry e;
        brine_listing_entry(before, i, &e);
        if (e.kind != BRINE_ENTRY_TEMPORARY && access(e.path, F_OK) != 0)
            printf("deleted %s\n", e.path);
    }
    printf("%zu checkpoint%s deleted\n", deleted, deleted == 1 ? "" : "s");
    brine_listing_free(before);
    return CLI_OK;
}

/* ------------------------------------------------------------------ main */

static const char main_help[] =
    "usage: brine COMMAND [OPTIONS] ARGS\n"
    "\n"
    "Checkpoints from the shell (docs/cli.md):\n"
    "  ls DIR               list checkpoints: step, created, size, ratio, status\n"
    "  info FILE|CKPTDIR    format, metadata and the table of variables\n"
    "  verify FILE|DIR      check every checksum and the pickle stream\n"
    "  diff A B             which variables differ, and by how much\n"
    "  export FILE -o OUT   a standalone pickle (or .npz) for numpy without HDF5\n"
    "  (multi-rank MPI checkpoints: CKPTDIR for FILE, with --rank R in info, diff, export)\n"
    "  prune DIR --keep-last N [--keep-every K]   retention by hand\n"
    "\n"
    "'brine COMMAND --help' describes each.  --json on ls, info, verify and diff.\n"
    "Exit status: 0 ok, 1 damaged checkpoint / differences, 2 usage or I/O error.\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"ls", cli_ls},         {"info", cli_info},     {"verify", cli_verify},
                {"diff", cli_diff},     {"export", cli_export}, {"prune", cli_prune}};
    if (argc < 2) {
        fputs(main_help, stderr);
        return CLI_TROUBLE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(main_help, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("brine %s\n", brine_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "brine: unknown command '%s'\n\n%s", argv[1], main_help);
    return CLI_TROUBLE;
}
