/*
 * brine_roundtrip: restores or saves variables described in a text file, for
 * round-trip tests between Python (brine.save, brine.load) and the C library.
 *
 * usage: brine_roundtrip restore DIR SPEC OUT [--prefix P]
 *            registers the variables of SPEC, calls brine_restore(), writes
 *            every variable's bytes to OUT (in SPEC order) and prints the
 *            restored step on stdout.
 *        brine_roundtrip save DIR SPEC DATA STEP [--prefix P]
 *            registers the variables of SPEC holding the bytes of DATA (laid
 *            out as restore's OUT) and calls brine_save(STEP), keeping every
 *            checkpoint.
 *        brine_roundtrip inspect FILE
 *            opens one checkpoint with brine_reader_open and prints its
 *            variables, one a line: "var NAME KIND DTYPE FLAGS NBYTES D0 D1 ..."
 *            (KIND array|scalar|string|other, DTYPE a numpy name or -), then
 *            its metadata: "attr NAME int|double|string VALUE" (doubles as %.17g).
 *
 * SPEC: one variable per line, fields separated by blanks; empty lines and
 * lines starting with '#' are skipped.
 *     name array  dtype order ndim d0 d1 ...    an array, ndim 1..8, order C or F
 *     name scalar dtype order 0                 a scalar (order is ignored: write C)
 *     name string -     -     0 capacity        a string buffer of capacity bytes
 * dtype is a numpy name: bool int8 int16 int32 int64 uint8 uint16 uint32
 * uint64 float32 float64 complex64 complex128.  A variable's bytes are its
 * memory: an array's elements in its order, a scalar's one element, a
 * string's whole buffer (capacity bytes, NUL-padded after restore).
 *
 * Exit status: 0 on success; 10 + (-rc) when a brine call returns rc (so
 * BRINE_ECORRUPT is 16), its brine_errmsg() printed on stderr; 1 when a file
 * of the tool cannot be read or written; 2 on bad usage or a bad SPEC.
 *
 * Public API only (brine.h).
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brine.h"

enum kind { K_ARRAY, K_SCALAR, K_STRING };

typedef struct var {
    char *name;
    enum kind kind;
    brine_dtype dtype;   /* K_ARRAY, K_SCALAR */
    unsigned flags;      /* BRINE_FORTRAN_ORDER or 0 */
    int ndim;
    size_t shape[BRINE_MAX_NDIM];
    size_t nbytes;       /* bytes of the variable's memory (a string's capacity) */
    void *data;
} var;

typedef struct spec {
    var *v;
    size_t n, cap;
} spec;

static const char *const dtype_names[BRINE_DTYPE_COUNT] = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "float32", "float64", "complex64", "complex128",
};

static int usage(void)
{
    fprintf(stderr, "usage: brine_roundtrip restore DIR SPEC OUT [--prefix P]\n"
                    "       brine_roundtrip save DIR SPEC DATA STEP [--prefix P]\n"
                    "       brine_roundtrip inspect FILE\n");
    return 2;
}

/* A whole decimal number in [0, max] from text; -1 when it is not one. */
static int64_t number(const char *text, int64_t max)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    return (errno || end == text || *end != '\0' || v < 0 || v > max) ? -1 : (int64_t)v;
}

static int dtype_named(const char *name)
{
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++)
        if (strcmp(dtype_names[d], name) == 0)
            return d;
    return -1;
}

/* Parses one SPEC line into v (tokens are cut in place).  0, or 2 after a message. */
static int parse_line(char *line, const char *file, int lineno, var *v)
{
    char *tok[4 + 1 + BRINE_MAX_NDIM + 1];
    int nt = 0;
    for (char *t = strtok(line, " \t\r\n"); t; t = strtok(NULL, " \t\r\n")) {
        if (nt == (int)(sizeof tok / sizeof *tok))
            goto bad;
        tok[nt++] = t;
    }
    if (nt < 5)
        goto bad;
    memset(v, 0, sizeof *v);
    int64_t ndim = number(tok[4], BRINE_MAX_NDIM);
    if (ndim < 0 || nt != 5 + (int)ndim + (strcmp(tok[1], "string") == 0))
        goto bad;
    v->ndim = (int)ndim;
    if (strcmp(tok[1], "string") == 0) {
        int64_t capacity = number(tok[5], INT64_MAX);
        if (ndim != 0 || capacity < 1 || strcmp(tok[2], "-") != 0 || strcmp(tok[3], "-") != 0)
            goto bad;
        v->kind = K_STRING;
        v->nbytes = (size_t)capacity;
    } else {
        int d = dtype_named(tok[2]);
        if (d < 0 || (strcmp(tok[3], "C") != 0 && strcmp(tok[3], "F") != 0))
            goto bad;
        v->dtype = (brine_dtype)d;
        v->flags = tok[3][0] == 'F' ? BRINE_FORTRAN_ORDER : 0u;
        v->nbytes = brine_dtype_size(v->dtype);
        if (strcmp(tok[1], "scalar") == 0 && ndim == 0) {
            v->kind = K_SCALAR;
        } else if (strcmp(tok[1], "array") == 0 && ndim >= 1) {
            v->kind = K_ARRAY;
            for (int k = 0; k < v->ndim; k++) {
                int64_t n = number(tok[5 + k], INT64_MAX);
                if (n < 0 || (n > 0 && v->nbytes > SIZE_MAX / (size_t)n))
                    goto bad;
                v->shape[k] = (size_t)n;
                v->nbytes *= (size_t)n;
            }
        } else {
            goto bad;
        }
    }
    /* At least one byte, so that empty arrays have a valid pointer. */
    v->name = strdup(tok[0]);
    v->data = calloc(v->nbytes ? v->nbytes : 1, 1);
    if (!v->name || !v->data) {
        fprintf(stderr, "brine_roundtrip: out of memory\n");
        exit(1);
    }
    return 0;
bad:
    fprintf(stderr, "brine_roundtrip: %s:%d: expected 'name array|scalar dtype C|F ndim d0 d1 ...' "
                    "or 'name string - - 0 capacity'\n",
            file, lineno);
    return 2;
}

static int read_spec(spec *s, const char *file)
{
    char line[4096];
    int lineno = 0, rc = 0;
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "brine_roundtrip: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        const char *p = line + strspn(line, " \t\r\n");
        if (*p == '\0' || *p == '#')
            continue;
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->v = realloc(s->v, s->cap * sizeof *s->v);
            if (!s->v) {
                fprintf(stderr, "brine_roundtrip: out of memory\n");
                exit(1);
            }
        }
        rc = parse_line(line, file, lineno, &s->v[s->n]);
        if (rc == 0)
            s->n++;
    }
    fclose(f);
    return rc;
}

static void free_spec(spec *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].data);
    }
    free(s->v);
}

/* Exit status of a failed brine call, after printing its message. */
static int brine_failed(int rc, const char *what, const char *msg)
{
    fprintf(stderr, "brine_roundtrip: %s: %s: %s\n", what, brine_errstr(rc), msg);
    return 10 - rc;
}

static int register_all(brine *b, const spec *s)
{
    static const size_t no_shape[1] = {0};
    for (size_t i = 0; i < s->n; i++) {
        const var *v = &s->v[i];
        int rc;
        if (v->kind == K_STRING)
            rc = brine_register_string(b, v->name, v->data, v->nbytes);
        else
            rc = brine_register(b, v->name, v->dtype, v->data, v->ndim,
                                v->kind == K_ARRAY ? v->shape : no_shape, v->flags);
        if (rc)
            return brine_failed(rc, v->name, brine_errmsg(b));
    }
    return 0;
}

/* Reads DATA into the variables' memory: exactly the bytes they take together. */
static int read_data(const spec *s, const char *file)
{
    int rc = 0;
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "brine_roundtrip: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < s->n && rc == 0; i++)
        if (fread(s->v[i].data, 1, s->v[i].nbytes, f) != s->v[i].nbytes)
            rc = 2;
    if (rc == 0 && fgetc(f) != EOF)
        rc = 2;
    if (rc)
        fprintf(stderr, "brine_roundtrip: %s does not hold exactly the bytes of the SPEC's variables\n",
                file);
    fclose(f);
    return rc;
}

static int write_data(const spec *s, const char *file)
{
    int ok = 1;
    FILE *f = fopen(file, "wb");
    if (!f) {
        fprintf(stderr, "brine_roundtrip: cannot create %s: %s\n", file, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < s->n && ok; i++)
        ok = fwrite(s->v[i].data, 1, s->v[i].nbytes, f) == s->v[i].nbytes;
    ok &= fclose(f) == 0;
    if (!ok) {
        fprintf(stderr, "brine_roundtrip: writing %s failed\n", file);
        return 1;
    }
    return 0;
}

/* brine_roundtrip inspect FILE */
static int inspect(const char *file)
{
    static const char *const kinds[5] = {"?", "array", "scalar", "string", "other"};
    brine_reader *r = NULL;
    int brc = brine_reader_open(&r, file, NULL, BRINE_READER_VERIFY);
    if (brc)
        return brine_failed(brc, "brine_reader_open", brine_open_errmsg());
    for (size_t i = 0; i < brine_reader_count(r); i++) {
        brine_var_info v;
        brine_reader_var(r, i, &v);
        printf("var %s %s %s %u %zu", v.name, kinds[v.kind],
               v.dtype >= 0 ? dtype_names[v.dtype] : "-", v.flags, v.nbytes);
        for (int d = 0; d < v.ndim; d++)
            printf(" %zu", v.shape[d]);
        printf("\n");
    }
    for (size_t i = 0; i < brine_reader_attr_count(r); i++) {
        brine_attr a;
        brine_reader_attr(r, i, &a);
        if (a.type == BRINE_ATTR_INT)
            printf("attr %s int %" PRId64 "\n", a.name, a.i);
        else if (a.type == BRINE_ATTR_DOUBLE)
            printf("attr %s double %.17g\n", a.name, a.d);
        else
            printf("attr %s string %s\n", a.name, a.s);
    }
    brine_reader_close(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "inspect") == 0)
        return inspect(argv[2]);
    const char *prefix = "ckpt";
    const char *args[5];
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
            prefix = argv[++i];
        else if (nargs < 5)
            args[nargs++] = argv[i];
        else
            return usage();
    }
    const int restore = nargs == 4 && strcmp(args[0], "restore") == 0;
    const int save = nargs == 5 && strcmp(args[0], "save") == 0;
    int64_t step = save ? number(args[4], INT64_MAX) : 0;
    if ((!restore && !save) || step < 0)
        return usage();

    spec s = {NULL, 0, 0};
    brine *b = NULL;
    int brc = 0;
    brine_options opts = BRINE_OPTIONS_INIT;
    opts.prefix = prefix;
    opts.keep_last = 0; /* keep every checkpoint */
    int rc = read_spec(&s, args[2]);
    if (rc == 0 && save)
        rc = read_data(&s, args[3]);
    if (rc)
        goto done;
    if ((brc = brine_open(&b, args[1], &opts))) {
        rc = brine_failed(brc, "brine_open", brine_open_errmsg());
        goto done;
    }
    if ((rc = register_all(b, &s)))
        goto done;
    if (save) {
        if ((brc = brine_save(b, step)))
            rc = brine_failed(brc, "brine_save", brine_errmsg(b));
    } else if ((brc = brine_restore(b, &step))) {
        rc = brine_failed(brc, "brine_restore", brine_errmsg(b));
    } else if ((rc = write_data(&s, args[3])) == 0) {
        printf("%" PRId64 "\n", step);
    }
done:
    brine_close(b);
    free_spec(&s);
    return rc;
}
