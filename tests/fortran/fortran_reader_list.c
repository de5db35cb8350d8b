/*
 * Lists a checkpoint's variables as the C reader API (brine_reader_*) sees
 * them, one line each: "name kind dtype order ndim e0 e1 ...", order being F
 * when the flags have BRINE_FORTRAN_ORDER, else C.  test_fortran.py checks
 * that C reports the order and the declared shape of Fortran arrays.
 * usage: fortran_reader_list FILE
 */
#include <brine.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    brine_reader *r = NULL;
    int rc = brine_reader_open(&r, argv[1], NULL, BRINE_READER_VERIFY);
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", argv[1], brine_errstr(rc), brine_open_errmsg());
        return 1;
    }
    const size_t n = brine_reader_count(r);
    for (size_t i = 0; i < n && rc == 0; i++) {
        brine_var_info v;
        rc = brine_reader_var(r, i, &v);
        if (rc != 0)
            break;
        printf("%s %d %d %c %d", v.name, (int)v.kind, v.dtype,
               (v.flags & BRINE_FORTRAN_ORDER) ? 'F' : 'C', v.ndim);
        for (int d = 0; d < v.ndim; d++)
            printf(" %zu", v.shape[d]);
        printf("\n");
    }
    if (rc != 0)
        fprintf(stderr, "%s: %s: %s\n", argv[1], brine_errstr(rc), brine_reader_errmsg(r));
    brine_reader_close(r);
    return rc == 0 ? 0 : 1;
}
