/*
 * brine diff A B: which variables differ in presence, kind, dtype, shape,
 * order or values; for arrays, how many elements differ and the largest
 * absolute and relative differences.  Exit status as diff(1).
 */
#include <complex.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char diff_help[] =
    "usage: brine diff [--json] [--rank R] A B\n"
    "\n"
    "Compares two checkpoints variable by variable: present in one only, kind,\n"
    "dtype, shape or order different, or values different.  For arrays it counts\n"
    "the elements that differ and gives the largest absolute difference and the\n"
    "largest relative one (|a - b| / max(|a|, |b|)).  Values compare exactly\n"
    "(NaN equals NaN); both files are verified as their arrays are read.\n"
    "Metadata attributes are not compared.\n"
    "\n"
    "A or B may be a multi-rank checkpoint directory (<prefix>-<step>/): its\n"
    "rank R's file is compared, after its size and CRC-32 are checked against\n"
    "the manifest.  A rank file (<prefix>-<step>/rank-<R>.h5) is a normal file.\n"
    "\n"
    "  --json      one JSON document on stdout\n"
    "  --rank R    the rank to compare in checkpoint directories (required for them)\n"
    "\n"
    "Exit status (as diff(1)): 0 same, 1 different, 2 trouble (usage, a file\n"
    "that cannot be read or does not verify).\n";

/* What differs in one variable. */
typedef struct delta {
    const char *name;
    const char *what; /* "only_a", "only_b", "kind", "dtype", "shape", "order", "values" */
    char detail[512];
    uint64_t count, total;
    double max_abs, max_rel;
} delta;

/* Element i of an array of dtype as a complex double (reals have imaginary part 0). */
static double complex element(const void *p, int dtype, size_t i)
{
    switch (dtype) {
    case BRINE_BOOL: return ((const unsigned char *)p)[i] != 0;
    case BRINE_I8: return ((const int8_t *)p)[i];
    case BRINE_I16: return ((const int16_t *)p)[i];
    case BRINE_I32: return ((const int32_t *)p)[i];
    case BRINE_I64: return (double)((const int64_t *)p)[i];
    case BRINE_U8: return ((const uint8_t *)p)[i];
    case BRINE_U16: return ((const uint16_t *)p)[i];
    case BRINE_U32: return ((const uint32_t *)p)[i];
    case BRINE_U64: return (double)((const uint64_t *)p)[i];
    case BRINE_F32: return ((const float *)p)[i];
    case BRINE_F64: return ((const double *)p)[i];
    case BRINE_C64: {
        const float *c = (const float *)p + 2 * i;
        return CMPLX(c[0], c[1]);
    }
    default: {
        const double *c = (const double *)p + 2 * i;
        return CMPLX(c[0], c[1]);
    }
    }
}

/* Same value: equal bytes (integers, and floats bit for bit, NaNs of any payload included), or equal as numbers. */
static int same(double complex a, double complex b, const void *pa, const void *pb, size_t esize,
                int floating)
{
    if (memcmp(pa, pb, esize) == 0)
        return 1;
    /* Integers differ exactly when their bytes do, even where their doubles round to one value. */
    if (!floating)
        return 0;
    const int nan_a = isnan(creal(a)) || isnan(cimag(a)), nan_b = isnan(creal(b)) || isnan(cimag(b));
    if (nan_a || nan_b)
        return nan_a && nan_b;
    return a == b;
}

/* Compares n elements of dtype; fills count, max_abs, max_rel. */
static void compare(delta *d, const void *a, const void *b, int dtype, size_t n)
{
    const size_t esize = brine_dtype_size((brine_dtype)dtype);
    const int floating = dtype >= BRINE_F32;
    d->total = n;
    for (size_t i = 0; i < n; i++) {
        const double complex x = element(a, dtype, i), y = element(b, dtype, i);
        if (same(x, y, (const char *)a + i * esize, (const char *)b + i * esize, esize, floating))
            continue;
        d->count++;
        const double ad = cabs(x - y);
        const double scale = fmax(cabs(x), cabs(y));
        if (ad > d->max_abs || isnan(ad))
            d->max_abs = isnan(ad) ? INFINITY : fmax(d->max_abs, ad);
        const double rel = scale > 0 ? ad / scale : 0;
        if (rel > d->max_rel || isnan(rel))
            d->max_rel = isnan(rel) ? INFINITY : fmax(d->max_rel, rel);
    }
}

/* Reads variable v of r (array, scalar or string) into a malloc'ed buffer. */
static int load(brine_reader *r, const brine_var_info *v, void **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (v->kind == BRINE_VAR_STRING) {
        char *s = malloc(v->nbytes + 1);
        if (!s)
            return BRINE_ENOMEM;
        *out = s;
        *n = v->nbytes;
        return brine_read_string(r, v->name, s, v->nbytes + 1);
    }
    const size_t esize = brine_dtype_size((brine_dtype)v->dtype);
    const size_t bytes = v->kind == BRINE_VAR_ARRAY ? v->nbytes : esize;
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        return BRINE_ENOMEM;
    *out = p;
    *n = esize ? bytes / esize : 0;
    return brine_read(r, v->name, (brine_dtype)v->dtype, p, v->kind == BRINE_VAR_ARRAY ? v->ndim : 0,
                      v->shape, v->flags);
}

static const char *kind_of(brine_var_kind k)
{
    return k == BRINE_VAR_ARRAY ? "array" : k == BRINE_VAR_SCALAR ? "scalar" : k == BRINE_VAR_STRING ? "string" : "other";
}

/*
 * Compares the variable present in both.  Returns 0 (compared; d->what set
 * when they differ) or a brine error (reading failed: trouble).
 */
static int diff_var(brine_reader *ra, brine_reader *rb, const brine_var_info *a, const brine_var_info *b,
                    delta *d, const char **err_file)
{
    char sa[128], sb[128];
    if (a->kind != b->kind) {
        d->what = "kind";
        snprintf(d->detail, sizeof d->detail, "%s vs %s", kind_of(a->kind), kind_of(b->kind));
        return 0;
    }
    if (a->kind == BRINE_VAR_OTHER)
        return 0; /* values brine cannot read; listed by info */
    if (a->dtype != b->dtype) {
        d->what = "dtype";
        snprintf(d->detail, sizeof d->detail, "%s vs %s", a->dtype >= 0 ? brine_dtype_str((brine_dtype)a->dtype) : "str",
                 b->dtype >= 0 ? brine_dtype_str((brine_dtype)b->dtype) : "str");
        return 0;
    }
    if (a->kind == BRINE_VAR_ARRAY) {
        int shape_differs = a->ndim != b->ndim;
        for (int k = 0; k < a->ndim && !shape_differs; k++)
            shape_differs = a->shape[k] != b->shape[k];
        if (shape_differs) {
            cli_shape_str(sa, sizeof sa, a->ndim, a->shape);
            cli_shape_str(sb, sizeof sb, b->ndim, b->shape);
            d->what = "shape";
            snprintf(d->detail, sizeof d->detail, "%s vs %s", sa, sb);
            return 0;
        }
        if ((a->flags ^ b->flags) & BRINE_FORTRAN_ORDER) {
            d->what = "order";
            snprintf(d->detail, sizeof d->detail, "%s vs %s", a->flags & BRINE_FORTRAN_ORDER ? "F" : "C",
                     b->flags & BRINE_FORTRAN_ORDER ? "F" : "C");
            return 0;
        }
    }
    void *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    int rc = load(ra, a, &pa, &na);
    if (rc)
        *err_file = "A";
    else if ((rc = load(rb, b, &pb, &nb)))
        *err_file = "B";
    if (!rc) {
        if (a->kind == BRINE_VAR_STRING) {
            if (na != nb || memcmp(pa, pb, na) != 0) {
                d->what = "values";
                snprintf(d->detail, sizeof d->detail, "\"%.200s\" vs \"%.200s\"", (char *)pa, (char *)pb);
                d->count = d->total = 1;
            }
        } else {
            compare(d, pa, pb, a->dtype, na);
            if (d->count) {
                d->what = "values";
                snprintf(d->detail, sizeof d->detail, "%" PRIu64 " of %" PRIu64 " elements differ, max abs %.6g, max rel %.6g",
                         d->count, d->total, d->max_abs, d->max_rel);
            }
        }
    }
    free(pa);
    free(pb);
    return rc;
}

static void print_delta(const delta *d, cli_json *j, int json)
{
    if (!json) {
        if (strcmp(d->what, "only_a") == 0)
            printf("only in A: %s\n", d->name);
        else if (strcmp(d->what, "only_b") == 0)
            printf("only in B: %s\n", d->name);
        else
            printf("%s %s: %s: %s\n", d->what, strcmp(d->what, "values") == 0 ? "differ" : "differs", d->name,
                   d->detail);
        return;
    }
    cli_json_object_begin(j);
    cli_json_kstr(j, "name", d->name);
    cli_json_kstr(j, "difference", d->what);
    cli_json_kstr(j, "detail", d->detail);
    if (strcmp(d->what, "values") == 0) {
        cli_json_kuint(j, "count", d->count);
        cli_json_kuint(j, "elements", d->total);
        cli_json_kdouble(j, "max_abs", d->max_abs);
        cli_json_kdouble(j, "max_rel", d->max_rel);
    }
    cli_json_object_end(j);
}

int cli_diff(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {"rank", required_argument, NULL, 'r'},
                                              {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, rank = -1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'r') {
            if (cli_parse_rank("diff", optarg, &rank))
                return CLI_TROUBLE;
        } else if (c == 'h') {
            fputs(diff_help, stdout);
            return CLI_OK;
        } else {
            fputs(diff_help, stderr);
            return CLI_TROUBLE;
        }
    }
    if (argc - optind != 2) {
        fputs(diff_help, stderr);
        return CLI_TROUBLE;
    }
    /* Checkpoint directories become their rank's file; files stay (diff(1)'s exit 1 is "different"). */
    char fa[4096], fb[4096];
    const int da = cli_is_ckptdir(argv[optind]), db = cli_is_ckptdir(argv[optind + 1]);
    if (rank >= 0 && !da && !db)
        return cli_error(CLI_TROUBLE, "diff", "--rank %d: neither %s nor %s is a multi-rank checkpoint directory",
                         rank, argv[optind], argv[optind + 1]);
    if ((da && cli_rank_path("diff", argv[optind], rank, -1, fa, sizeof fa)) ||
        (db && cli_rank_path("diff", argv[optind + 1], rank, -1, fb, sizeof fb)))
        return CLI_TROUBLE;
    const char *pa = da ? fa : argv[optind], *pb = db ? fb : argv[optind + 1];
    brine_reader *ra = NULL, *rb = NULL;
    if (brine_reader_open(&ra, pa, NULL, 0))
        return cli_error(CLI_TROUBLE, "diff", "%s", brine_open_errmsg());
    if (brine_reader_open(&rb, pb, NULL, 0)) {
        brine_reader_close(ra);
        return cli_error(CLI_TROUBLE, "diff", "%s", brine_open_errmsg());
    }
    int status = CLI_OK;
    cli_json j;
    if (json) {
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j);
        cli_json_kstr(&j, "a", pa);
        cli_json_kstr(&j, "b", pb);
        cli_json_key(&j, "differences");
        cli_json_array_begin(&j);
    }
    /* A's variables in A's order, then those only B has. */
    for (int side = 0; side < 2 && status != CLI_TROUBLE; side++) {
        brine_reader *r = side ? rb : ra, *other = side ? ra : rb;
        for (size_t i = 0; i < brine_reader_count(r) && status != CLI_TROUBLE; i++) {
            brine_var_info v, w;
            brine_reader_var(r, i, &v);
            delta d;
            memset(&d, 0, sizeof d);
            d.name = v.name;
            if (brine_find(other, v.name, &w) != 0) {
                d.what = side ? "only_b" : "only_a";
            } else if (side == 0) {
                const char *which = NULL;
                int rc = diff_var(ra, rb, &v, &w, &d, &which);
                if (rc) {
                    status = cli_error(CLI_TROUBLE, "diff", "%s", brine_reader_errmsg(which[0] == 'A' ? ra : rb));
                    break;
                }
            }
            if (d.what) {
                status = CLI_FAIL;
                print_delta(&d, &j, json);
            }
        }
    }
    if (json) {
        cli_json_array_end(&j);
        cli_json_kbool(&j, "same", status == CLI_OK);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    } else if (status == CLI_OK) {
        printf("no differences\n");
    }
    brine_reader_close(ra);
    brine_reader_close(rb);
    return status;
}
