/*
 * Save and restore through the public API (lib/include/brine.h), checked
 * against docs/format.md by looking inside the files with the HDF5 C API:
 * bit-exact round trips of every dtype (arrays and scalars), empty and
 * multi-chunk arrays, C and Fortran order, hierarchical names, strings,
 * argument errors, options, file naming and publication, the allocator hook
 * and the I/O method table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "brine.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Failure reporting helpers                                                */
/* ------------------------------------------------------------------------ */

/* Asserts that expr returns BRINE_EINVAL with a non-empty message containing name. */
#define EXPECT_EINVAL_NAMED(b, name, expr)                                                   \
    do {                                                                                     \
        EXPECT_RC(b, BRINE_EINVAL, expr);                                                    \
        check_msg_names(b, name, #expr, __FILE__, __LINE__);                                 \
    } while (0)

static void check_msg_names(const brine *b, const char *name, const char *what, const char *file,
                            int line)
{
    const char *m = brine_errmsg(b);
    if (!m || !m[0]) {
        print_error("%s: empty error message\n", what);
        _fail(file, line);
    }
    if (name && name[0] && !strstr(m, name)) {
        print_error("%s: message \"%s\" does not name \"%s\"\n", what, m, name);
        _fail(file, line);
    }
}

/* ------------------------------------------------------------------------ */
/* Value patterns                                                           */
/* ------------------------------------------------------------------------ */

static const char *const dt_name[BRINE_DTYPE_COUNT] = {"bool", "i8",  "i16", "i32", "i64",
                                                        "u8",   "u16", "u32", "u64", "f32",
                                                        "f64",  "c64", "c128"};
static const size_t dt_size[BRINE_DTYPE_COUNT] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 8, 16};
static const char *const dt_str[BRINE_DTYPE_COUNT] = {"|b1", "|i1", "<i2", "<i4", "<i8",
                                                       "|u1", "<u2", "<u4", "<u8", "<f4",
                                                       "<f8", "<c8", "<c16"};

static const uint64_t sp_bool[] = {0, 1, 1, 0};
static const uint64_t sp_i8[] = {0x80, 0x7f, 0, 0xff, 1, 0xfe};
static const uint64_t sp_i16[] = {0x8000, 0x7fff, 0, 0xffff, 1, 255, 256, 0xff00};
static const uint64_t sp_i32[] = {0x80000000u, 0x7fffffffu, 0, 0xffffffffu, 1, 255, 256,
                                  65535, 65536, 0xffffff00u, 0xffff0000u};
static const uint64_t sp_i64[] = {0x8000000000000000ull, 0x7fffffffffffffffull, 0,
                                  UINT64_MAX, 1, 255, 256, 65535, 65536, 0x7fffffffull,
                                  0x80000000ull, 0xffffffff7fffffffull, 0xffffffff80000000ull,
                                  0xffffffff00000000ull};
static const uint64_t sp_u8[] = {0, 0xff, 1, 0x80, 0x7f};
static const uint64_t sp_u16[] = {0, 0xffff, 0x8000, 255, 256, 1};
static const uint64_t sp_u32[] = {0, 0xffffffffu, 0x80000000u, 0x7fffffffu, 65535, 65536, 1};
static const uint64_t sp_u64[] = {0, UINT64_MAX, 0x8000000000000000ull, 0x7fffffffffffffffull,
                                  0xffffffffull, 0x100000000ull, 1, 255, 256};
/* quiet NaNs with payloads, signalling NaNs, -0.0, +-inf, denormals, extremes */
static const uint64_t sp_f32[] = {0x7fc00000u, 0xffc00001u, 0x7fc12345u, 0x7f800001u,
                                  0x7fa5a5a5u, 0xff800abcu, 0x80000000u, 0x7f800000u,
                                  0xff800000u, 0x00000001u, 0x807fffffu, 0x7f7fffffu,
                                  0xff7fffffu, 0x00800000u, 0x3f800000u, 0x00000000u};
static const uint64_t sp_f64[] = {0x7ff8000000000000ull, 0xfff8000000000001ull,
                                  0x7ff8123456789abcull, 0x7ff0000000000001ull,
                                  0x7ff4deadbeef0000ull, 0xfff0000000000abcull,
                                  0x8000000000000000ull, 0x7ff0000000000000ull,
                                  0xfff0000000000000ull, 0x0000000000000001ull,
                                  0x800fffffffffffffull, 0x7fefffffffffffffull,
                                  0xffefffffffffffffull, 0x0010000000000000ull,
                                  0x3ff0000000000000ull, 0x0000000000000000ull};

static void specials(brine_dtype d, const uint64_t **sp, size_t *n)
{
#define SP(a) \
    do {      \
        *sp = a; \
        *n = sizeof a / sizeof a[0]; \
    } while (0)
    switch (d) {
    case BRINE_BOOL: SP(sp_bool); break;
    case BRINE_I8: SP(sp_i8); break;
    case BRINE_I16: SP(sp_i16); break;
    case BRINE_I32: SP(sp_i32); break;
    case BRINE_I64: SP(sp_i64); break;
    case BRINE_U8: SP(sp_u8); break;
    case BRINE_U16: SP(sp_u16); break;
    case BRINE_U32: SP(sp_u32); break;
    case BRINE_U64: SP(sp_u64); break;
    case BRINE_F32:
    case BRINE_C64: SP(sp_f32); break;
    case BRINE_F64:
    case BRINE_C128: SP(sp_f64); break;
    }
#undef SP
}

/*
 * Element i of a pattern for dtype d: the special values first, then random
 * bits (random bits of floats include NaNs with random payloads).  In scalar
 * mode float32 signalling NaNs are made quiet: a float32 scalar travels as a
 * Python float (a double) and C's float->double conversion quiets sNaNs, so
 * only quiet NaN payloads are required to survive there.
 */
static void fill_elem(brine_dtype d, unsigned char *p, size_t i, uint64_t *rs, int scalar)
{
    const uint64_t *sp;
    size_t nsp;
    specials(d, &sp, &nsp);
    size_t words = (d == BRINE_C64 || d == BRINE_C128) ? 2 : 1;
    size_t w = dt_size[d] / words;
    for (size_t j = 0; j < words; j++) {
        size_t k = i * words + j;
        uint64_t v = k < nsp ? sp[k] : tu_rand(rs);
        if (d == BRINE_BOOL)
            v &= 1;
        if (scalar && w == 4 && (d == BRINE_F32 || d == BRINE_C64)) {
            uint32_t x = (uint32_t)v;
            if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x007fffffu) && !(x & 0x00400000u))
                v = x | 0x00400000u;
        }
        memcpy(p + j * w, &v, w); /* little-endian host (checked in test_version) */
    }
}

static void fill_array(brine_dtype d, void *buf, size_t n, uint64_t seed)
{
    uint64_t rs = seed;
    for (size_t i = 0; i < n; i++)
        fill_elem(d, (unsigned char *)buf + i * dt_size[d], i, &rs, 0);
}

static void assert_bytes_equal(const void *a, const void *b, size_t n, const char *what)
{
    if (memcmp(a, b, n) != 0) {
        const unsigned char *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i])
            i++;
        print_error("%s: %zu bytes differ first at byte %zu: %02x != %02x\n", what, n, i, x[i],
                    y[i]);
        fail();
    }
}

/* ------------------------------------------------------------------------ */
/* HDF5 inspection                                                          */
/* ------------------------------------------------------------------------ */

static hid_t h5_open(const char *dir, const char *prefix, int64_t step)
{
    char p[1024];
    tu_ckpt_path(p, sizeof p, dir, prefix, step);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        print_error("H5Fopen(%s) failed\n", p);
        fail();
    }
    return f;
}

/* Number of dimensions of dataset path (dims filled), or -1 when missing. */
static int h5_dims(hid_t f, const char *path, hsize_t *dims)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t s = H5Dget_space(d);
    int n = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return n;
}

/* Reads a string attribute; returns 0 for a variable-length string, 1 fixed, -1 error. */
static int h5_attr_str(hid_t obj, const char *name, char *out, size_t n, int *utf8)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5T_cset_t cs = H5Tget_cset(ft);
        if (utf8)
            *utf8 = cs == H5T_CSET_UTF8;
        H5Tset_cset(mt, cs);
        if (H5Tis_variable_str(ft) > 0) {
            H5Tset_size(mt, H5T_VARIABLE);
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(out, n, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
        } else {
            size_t sz = H5Tget_size(ft);
            char *tmp = calloc(sz + 1, 1);
            H5Tset_size(mt, sz + 1);
            if (H5Aread(a, mt, tmp) >= 0) {
                snprintf(out, n, "%s", tmp);
                rc = 1;
            }
            free(tmp);
        }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* The order attribute of a dataset ("C"/"F"), asserting it is a variable-length UTF-8 string. */
static char h5_order(hid_t f, const char *path)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    char s[16] = "";
    int utf8 = 0;
    int rc = h5_attr_str(d, "order", s, sizeof s, &utf8);
    H5Dclose(d);
    if (rc != 0 || !utf8) {
        print_error("%s: order attribute missing or not a variable-length UTF-8 string (%d, %d)\n",
                    path, rc, utf8);
        fail();
    }
    assert_int_equal(strlen(s), 1);
    return s[0];
}

static int64_t h5_attr_i64(hid_t obj, const char *name)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        print_error("attribute %s missing\n", name);
        fail();
    }
    int64_t v = -12345;
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* The raw bytes of a dataset as stored (read with its own file type), malloc'd. */
static void *h5_read_raw(hid_t f, const char *path, size_t *nbytes)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) {
        print_error("dataset %s missing\n", path);
        fail();
    }
    hid_t t = H5Dget_type(d);
    hid_t s = H5Dget_space(d);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    size_t n = (size_t)np * H5Tget_size(t);
    void *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    if (n && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        print_error("H5Dread(%s) failed (fletcher32 or filter error?)\n", path);
        fail();
    }
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
    *nbytes = n;
    return buf;
}

/* Whether the dataset's HDF5 type is the one docs/format.md 2.3 gives for d. */
static int h5_type_is(hid_t t, brine_dtype d)
{
    static hid_t std[BRINE_DTYPE_COUNT];
    std[BRINE_I8] = H5T_STD_I8LE;
    std[BRINE_I16] = H5T_STD_I16LE;
    std[BRINE_I32] = H5T_STD_I32LE;
    std[BRINE_I64] = H5T_STD_I64LE;
    std[BRINE_U8] = H5T_STD_U8LE;
    std[BRINE_U16] = H5T_STD_U16LE;
    std[BRINE_U32] = H5T_STD_U32LE;
    std[BRINE_U64] = H5T_STD_U64LE;
    std[BRINE_F32] = H5T_IEEE_F32LE;
    std[BRINE_F64] = H5T_IEEE_F64LE;
    switch (d) {
    case BRINE_BOOL: {
        if (H5Tget_class(t) != H5T_ENUM || H5Tget_size(t) != 1 || H5Tget_nmembers(t) != 2)
            return 0;
        hid_t super = H5Tget_super(t);
        int ok = H5Tequal(super, H5T_STD_I8LE) > 0;
        H5Tclose(super);
        char name[16];
        signed char v = 0;
        ok = ok && H5Tenum_nameof(t, &v, name, sizeof name) >= 0 && !strcmp(name, "FALSE");
        v = 1;
        ok = ok && H5Tenum_nameof(t, &v, name, sizeof name) >= 0 && !strcmp(name, "TRUE");
        return ok;
    }
    case BRINE_C64:
    case BRINE_C128: {
        size_t h = d == BRINE_C64 ? 4 : 8;
        hid_t ft = d == BRINE_C64 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
        if (H5Tget_class(t) != H5T_COMPOUND || H5Tget_size(t) != 2 * h || H5Tget_nmembers(t) != 2)
            return 0;
        int ok = 1;
        for (unsigned m = 0; m < 2; m++) {
            char *nm = H5Tget_member_name(t, m);
            hid_t mt = H5Tget_member_type(t, m);
            ok = ok && nm && !strcmp(nm, m ? "i" : "r") && H5Tget_member_offset(t, m) == m * h &&
                 H5Tequal(mt, ft) > 0;
            H5free_memory(nm);
            H5Tclose(mt);
        }
        return ok;
    }
    default:
        return H5Tequal(t, std[d]) > 0;
    }
}

static void check_dataset_type(hid_t f, const char *path, brine_dtype d)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t t = H5Dget_type(ds);
    if (!h5_type_is(t, d)) {
        print_error("%s: HDF5 type is not the one of %s\n", path, dt_name[d]);
        fail();
    }
    H5Tclose(t);
    H5Dclose(ds);
}

/* Checks the storage of a non-empty array (format 2.3); returns the chunk dims. */
static void check_chunked_storage(hid_t f, const char *path, int level, hsize_t *chunk)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t dcpl = H5Dget_create_plist(d);
    if (H5Pget_layout(dcpl) != H5D_CHUNKED) {
        print_error("%s is not chunked\n", path);
        fail();
    }
    int nd = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
    assert_true(nd >= 1);
    int nf = H5Pget_nfilters(dcpl);
    if (nf != 3) {
        print_error("%s has %d filters, expected shuffle, deflate, fletcher32\n", path, nf);
        fail();
    }
    const H5Z_filter_t want[3] = {H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32};
    for (int i = 0; i < 3; i++) {
        unsigned flags = 0, cd[8] = {0}, conf = 0;
        size_t ncd = 8;
        char name[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name,
                                         &conf);
        if (id != want[i]) {
            print_error("%s: filter %d is %d, expected %d\n", path, i, (int)id, (int)want[i]);
            fail();
        }
        if (id == H5Z_FILTER_DEFLATE) {
            assert_true(ncd >= 1);
            if ((int)cd[0] != level) {
                print_error("%s: deflate level %u, expected %d\n", path, cd[0], level);
                fail();
            }
        }
    }
    /* every chunk is written, edge chunks included */
    hid_t s = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int n = H5Sget_simple_extent_dims(s, dims, NULL);
    assert_int_equal(n, nd);
    hsize_t want_chunks = 1;
    for (int i = 0; i < n; i++)
        want_chunks *= (dims[i] + chunk[i] - 1) / chunk[i];
    hsize_t nchunks = 0;
    assert_true(H5Dget_num_chunks(d, s, &nchunks) >= 0);
    if (nchunks != want_chunks) {
        print_error("%s: %llu chunks stored, expected %llu\n", path, (unsigned long long)nchunks,
                    (unsigned long long)want_chunks);
        fail();
    }
    H5Sclose(s);
    H5Pclose(dcpl);
    H5Dclose(d);
}

/* The chunk shape docs/format.md 2.3 prescribes for a dataset of dims and element size es. */
static void expected_chunk(int n, const hsize_t *dims, size_t es, hsize_t *chunk)
{
    uint64_t bytes = es;
    int i = n - 1;
    for (; i >= 0; i--) {
        if (bytes * dims[i] <= (1u << 20)) {
            chunk[i] = dims[i];
            bytes *= dims[i];
        } else {
            uint64_t k = (1u << 20) / bytes;
            chunk[i] = k < 1 ? 1 : k;
            i--;
            break;
        }
    }
    for (; i >= 0; i--)
        chunk[i] = 1;
}

static int h5_is_contiguous(hid_t f, const char *path, int *nfilters)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t dcpl = H5Dget_create_plist(d);
    int c = H5Pget_layout(dcpl) == H5D_CONTIGUOUS;
    *nfilters = H5Pget_nfilters(dcpl);
    H5Pclose(dcpl);
    H5Dclose(d);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_version_errstr_dtypes(void **state)
{
    (void)state;
    const uint16_t one = 1;
    assert_int_equal(*(const unsigned char *)&one, 1); /* the patterns assume little-endian */

    assert_string_equal(brine_version(), BRINE_VERSION_STRING);

    const int codes[] = {BRINE_OK,        BRINE_EINVAL,    BRINE_ENOMEM,   BRINE_EIO,
                         BRINE_ENOSPC,    BRINE_ENOTFOUND, BRINE_ECORRUPT, BRINE_EMISMATCH,
                         BRINE_EVERSION,  BRINE_EHDF5};
    const size_t nc = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < nc; i++) {
        const char *s = brine_errstr(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(s, brine_errstr(codes[j]))) {
                print_error("brine_errstr(%d) == brine_errstr(%d) == \"%s\"\n", codes[i], codes[j],
                            s);
                fail();
            }
        }
    }
    assert_non_null(brine_errstr(-1000));
    assert_non_null(brine_errstr(42));
    assert_non_null(brine_errmsg(NULL));

    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        assert_non_null(brine_dtype_str((brine_dtype)d));
        assert_string_equal(brine_dtype_str((brine_dtype)d), dt_str[d]);
        assert_int_equal(brine_dtype_size((brine_dtype)d), dt_size[d]);
    }
    assert_null(brine_dtype_str((brine_dtype)BRINE_DTYPE_COUNT));
    assert_null(brine_dtype_str((brine_dtype)-1));
    assert_int_equal(brine_dtype_size((brine_dtype)BRINE_DTYPE_COUNT), 0);
    assert_int_equal(brine_dtype_size((brine_dtype)-1), 0);
}

/* Every dtype, as 1-D and 3-D arrays: restore bit-exact, HDF5 type and bytes as specified. */
static void test_dtype_roundtrip(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    enum { N1 = 77 };
    const size_t shape1[1] = {N1};
    const size_t shape3[3] = {2, 3, 5};
    void *a1[BRINE_DTYPE_COUNT], *a3[BRINE_DTYPE_COUNT];
    void *e1[BRINE_DTYPE_COUNT], *e3[BRINE_DTYPE_COUNT];
    char name[64];
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        a1[d] = malloc(N1 * dt_size[d]);
        e1[d] = malloc(N1 * dt_size[d]);
        a3[d] = malloc(30 * dt_size[d]);
        e3[d] = malloc(30 * dt_size[d]);
        fill_array((brine_dtype)d, e1[d], N1, 100 + (uint64_t)d);
        fill_array((brine_dtype)d, e3[d], 30, 200 + (uint64_t)d);
        memcpy(a1[d], e1[d], N1 * dt_size[d]);
        memcpy(a3[d], e3[d], 30 * dt_size[d]);
        snprintf(name, sizeof name, "one/%s", dt_name[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, a1[d], 1, shape1, 0));
        snprintf(name, sizeof name, "three/%s", dt_name[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, a3[d], 3, shape3, 0));
    }
    OK(b, brine_save(b, 7));
    /* the data must not have been touched by saving */
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++)
        assert_bytes_equal(a1[d], e1[d], N1 * dt_size[d], "array after save");

    /* the file, read by HDF5 itself */
    hid_t f = h5_open(dir, "ckpt", 7);
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        char path[128];
        hsize_t dims[8];
        size_t nb;
        snprintf(path, sizeof path, "/state/one/%s", dt_name[d]);
        assert_int_equal(h5_dims(f, path, dims), 1);
        assert_int_equal(dims[0], N1);
        check_dataset_type(f, path, (brine_dtype)d);
        assert_int_equal(h5_order(f, path), 'C');
        void *raw = h5_read_raw(f, path, &nb);
        assert_int_equal(nb, N1 * dt_size[d]);
        assert_bytes_equal(raw, e1[d], nb, path);
        free(raw);
        snprintf(path, sizeof path, "/state/three/%s", dt_name[d]);
        assert_int_equal(h5_dims(f, path, dims), 3);
        assert_int_equal(dims[0], 2);
        assert_int_equal(dims[1], 3);
        assert_int_equal(dims[2], 5);
        check_dataset_type(f, path, (brine_dtype)d);
        raw = h5_read_raw(f, path, &nb);
        assert_int_equal(nb, 30 * dt_size[d]);
        assert_bytes_equal(raw, e3[d], nb, path);
        free(raw);
    }
    H5Fclose(f);

    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        memset(a1[d], 0xA5, N1 * dt_size[d]);
        memset(a3[d], 0x5A, 30 * dt_size[d]);
    }
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 7);
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        snprintf(name, sizeof name, "restored 1-D %s", dt_name[d]);
        assert_bytes_equal(a1[d], e1[d], N1 * dt_size[d], name);
        snprintf(name, sizeof name, "restored 3-D %s", dt_name[d]);
        assert_bytes_equal(a3[d], e3[d], 30 * dt_size[d], name);
    }
    brine_close(b);

    /* a fresh context (a restarted program) restores the same; step may be NULL */
    b = tu_open(dir, NULL);
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        memset(a1[d], 0, N1 * dt_size[d]);
        memset(a3[d], 0, 30 * dt_size[d]);
        snprintf(name, sizeof name, "one/%s", dt_name[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, a1[d], 1, shape1, 0));
        snprintf(name, sizeof name, "three/%s", dt_name[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, a3[d], 3, shape3, 0));
    }
    OK(b, brine_restore(b, NULL));
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        assert_bytes_equal(a1[d], e1[d], N1 * dt_size[d], "restored in a new context (1-D)");
        assert_bytes_equal(a3[d], e3[d], 30 * dt_size[d], "restored in a new context (3-D)");
    }
    brine_close(b);
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        free(a1[d]);
        free(a3[d]);
        free(e1[d]);
        free(e3[d]);
    }
    tu_rmtree(dir);
}

/* 0-d scalars of every dtype, through many value patterns (the specials first). */
static void test_scalars_roundtrip(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 2;
    brine *b = tu_open(dir, &o);
    unsigned char val[BRINE_DTYPE_COUNT][16], want[BRINE_DTYPE_COUNT][16];
    const size_t dummy_shape[1] = {3};
    char name[64];
    for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
        snprintf(name, sizeof name, "s/%s", dt_name[d]);
        OK(b, brine_register(b, name, (brine_dtype)d, val[d], 0, dummy_shape, 0));
    }
    uint64_t rs = 99;
    for (size_t k = 0; k < 24; k++) {
        for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
            fill_elem((brine_dtype)d, want[d], k, &rs, 1);
            memcpy(val[d], want[d], dt_size[d]);
        }
        OK(b, brine_save(b, (int64_t)k));
        for (int d = 0; d < BRINE_DTYPE_COUNT; d++)
            memset(val[d], 0xA5, sizeof val[d]);
        int64_t step = -1;
        OK(b, brine_restore(b, &step));
        assert_int_equal(step, (int64_t)k);
        for (int d = 0; d < BRINE_DTYPE_COUNT; d++) {
            if (memcmp(val[d], want[d], dt_size[d]) != 0) {
                uint64_t g[2] = {0, 0}, w[2] = {0, 0};
                memcpy(g, val[d], dt_size[d]);
                memcpy(w, want[d], dt_size[d]);
                print_error("scalar %s pattern %zu: restored %016llx %016llx, saved %016llx "
                            "%016llx\n",
                            dt_name[d], k, (unsigned long long)g[1], (unsigned long long)g[0],
                            (unsigned long long)w[1], (unsigned long long)w[0]);
                fail();
            }
            /* restore writes exactly the element, not beyond it */
            for (size_t j = dt_size[d]; j < sizeof val[d]; j++)
                assert_int_equal(val[d][j], 0xA5);
        }
    }
    /* scalars have no dataset (format 2.4) */
    hid_t f = h5_open(dir, "ckpt", 23);
    assert_true(H5Lexists(f, "/state", H5P_DEFAULT) <= 0 ||
                H5Lexists(f, "/state/s", H5P_DEFAULT) <= 0);
    H5Fclose(f);
    brine_close(b);
    tu_rmtree(dir);
}

/* ndim 0 ignores shape, so NULL is accepted there. */
static void test_scalar_null_shape(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double x = -0.0;
    int32_t n = INT32_MIN;
    OK(b, brine_register(b, "x", BRINE_F64, &x, 0, NULL, 0));
    OK(b, brine_register(b, "n", BRINE_I32, &n, 0, NULL, 0));
    OK(b, brine_save(b, 1));
    x = 1.0;
    n = 0;
    OK(b, brine_restore(b, NULL));
    assert_true(x == 0.0 && signbit(x));
    assert_int_equal(n, INT32_MIN);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_empty_arrays(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double dummy1[4] = {1, 2, 3, 4};
    float dummy3[4] = {5, 6, 7, 8};
    int16_t dummyf[4] = {9, 10, 11, 12};
    int32_t keep[3] = {7, -8, 9};
    const size_t s1[1] = {0};
    const size_t s3[3] = {4, 0, 3};
    const size_t sf[3] = {3, 2, 0};
    const size_t sk[1] = {3};
    OK(b, brine_register(b, "e1", BRINE_F64, dummy1, 1, s1, 0));
    OK(b, brine_register(b, "g/e3", BRINE_F32, dummy3, 3, s3, 0));
    OK(b, brine_register(b, "g/ef", BRINE_I16, dummyf, 3, sf, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "keep", BRINE_I32, keep, 1, sk, 0));
    OK(b, brine_save(b, 3));

    hid_t f = h5_open(dir, "ckpt", 3);
    hsize_t dims[8];
    int nf = -1;
    assert_int_equal(h5_dims(f, "/state/e1", dims), 1);
    assert_int_equal(dims[0], 0);
    assert_true(h5_is_contiguous(f, "/state/e1", &nf));
    assert_int_equal(nf, 0);
    assert_int_equal(h5_order(f, "/state/e1"), 'C');
    assert_int_equal(h5_dims(f, "/state/g/e3", dims), 3);
    assert_int_equal(dims[0], 4);
    assert_int_equal(dims[1], 0);
    assert_int_equal(dims[2], 3);
    assert_true(h5_is_contiguous(f, "/state/g/e3", &nf));
    assert_int_equal(nf, 0);
    /* an empty F array lays out as C: written as "C" with the shape unreversed */
    assert_int_equal(h5_dims(f, "/state/g/ef", dims), 3);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 2);
    assert_int_equal(dims[2], 0);
    assert_int_equal(h5_order(f, "/state/g/ef"), 'C');
    check_dataset_type(f, "/state/g/e3", BRINE_F32);
    H5Fclose(f);

    keep[0] = keep[1] = keep[2] = 0;
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    assert_int_equal(keep[0], 7);
    assert_int_equal(keep[1], -8);
    assert_int_equal(keep[2], 9);
    /* nothing is written for an empty array */
    assert_true(dummy1[0] == 1 && dummy1[3] == 4);
    assert_true(dummy3[0] == 5 && dummy3[3] == 8);
    assert_int_equal(dummyf[0], 9);
    brine_close(b);

    /* a context that registers only empty arrays */
    b = tu_open_partial(dir);
    OK(b, brine_register(b, "e1", BRINE_F64, dummy1, 1, s1, 0));
    OK(b, brine_register(b, "g/e3", BRINE_F32, dummy3, 3, s3, 0));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    OK(b, brine_save(b, 4));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 4);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_multichunk(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    const size_t sa[2] = {1000, 700};
    const size_t sb[3] = {130, 70, 50};
    const size_t nc = 3u * 1024 * 1024 + 1001;
    const size_t sc[1] = {nc};
    const size_t na = 1000 * 700, nb = 130 * 70 * 50;
    double *a = malloc(na * 8), *ea = malloc(na * 8);
    float *fb = malloc(nb * 4), *eb = malloc(nb * 4);
    int8_t *c = malloc(nc), *ec = malloc(nc);
    assert_true(a && ea && fb && eb && c && ec);
    /* a: smooth (compressible) with specials sprinkled; b: random bits; c: random (incompressible) */
    for (size_t i = 0; i < na; i++)
        ea[i] = (double)(i % 700) * 0.25 - (double)(i / 700);
    fill_array(BRINE_F64, ea + 12345, 16, 5);
    fill_array(BRINE_F32, eb, nb, 6);
    fill_array(BRINE_I8, ec, nc, 7);
    memcpy(a, ea, na * 8);
    memcpy(fb, eb, nb * 4);
    memcpy(c, ec, nc);
    OK(b, brine_register(b, "a", BRINE_F64, a, 2, sa, 0));
    OK(b, brine_register(b, "b", BRINE_F32, fb, 3, sb, 0));
    OK(b, brine_register(b, "c", BRINE_I8, c, 1, sc, 0));
    OK(b, brine_save(b, 11));

    hid_t f = h5_open(dir, "ckpt", 11);
    const char *paths[3] = {"/state/a", "/state/b", "/state/c"};
    const void *want[3] = {ea, eb, ec};
    const size_t bytes[3] = {na * 8, nb * 4, nc};
    const size_t es[3] = {8, 4, 1};
    const brine_dtype dts[3] = {BRINE_F64, BRINE_F32, BRINE_I8};
    for (int i = 0; i < 3; i++) {
        hsize_t dims[8], chunk[8], echunk[8];
        int n = h5_dims(f, paths[i], dims);
        assert_true(n >= 1);
        check_dataset_type(f, paths[i], dts[i]);
        check_chunked_storage(f, paths[i], 1, chunk);
        expected_chunk(n, dims, es[i], echunk);
        hsize_t nchunks = 1;
        for (int k = 0; k < n; k++) {
            if (chunk[k] != echunk[k]) {
                print_error("%s: chunk dim %d is %llu, format 2.3 gives %llu\n", paths[i], k,
                            (unsigned long long)chunk[k], (unsigned long long)echunk[k]);
                fail();
            }
            nchunks *= (dims[k] + chunk[k] - 1) / chunk[k];
        }
        assert_true(nchunks > 1); /* the point of the test */
        size_t got;
        void *raw = h5_read_raw(f, paths[i], &got);
        assert_int_equal(got, bytes[i]);
        assert_bytes_equal(raw, want[i], got, paths[i]);
        free(raw);
    }
    H5Fclose(f);

    memset(a, 0, na * 8);
    memset(fb, 0, nb * 4);
    memset(c, 0, nc);
    int64_t step = -1;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 11);
    assert_bytes_equal(a, ea, na * 8, "1000x700 float64");
    assert_bytes_equal(fb, eb, nb * 4, "130x70x50 float32");
    assert_bytes_equal(c, ec, nc, "3 MiB int8");
    brine_close(b);
    free(a);
    free(ea);
    free(fb);
    free(eb);
    free(c);
    free(ec);
    tu_rmtree(dir);
}

static void test_fortran_order(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    /* a(5,3) column-major */
    double fa[15], efa[15];
    for (int i = 0; i < 15; i++)
        efa[i] = fa[i] = i * 1.5 - 3;
    const size_t sfa[2] = {5, 3};
    /* 3-D int32 (4,3,2) F */
    int32_t f3[24], ef3[24];
    fill_array(BRINE_I32, ef3, 24, 3);
    memcpy(f3, ef3, sizeof f3);
    const size_t sf3[3] = {4, 3, 2};
    /* F array with a single extent != 1: stored as "C" */
    float f1[7], ef1[7];
    fill_array(BRINE_F32, ef1, 7, 4);
    memcpy(f1, ef1, sizeof f1);
    const size_t sf1[3] = {1, 7, 1};
    /* 1-D F array: also "C" */
    int64_t g1[5] = {1, 2, 3, 4, 5};
    const size_t sg1[1] = {5};
    /* large multi-chunk F array (300, 1000) complex64 */
    const size_t sbig[2] = {300, 1000};
    const size_t nbig = 300 * 1000;
    float *big = malloc(nbig * 8), *ebig = malloc(nbig * 8);
    fill_array(BRINE_C64, ebig, nbig, 9);
    memcpy(big, ebig, nbig * 8);
    /* same shape in C order next to it */
    double ca[15];
    memcpy(ca, efa, sizeof ca);
    const size_t sca[2] = {5, 3};

    OK(b, brine_register(b, "fa", BRINE_F64, fa, 2, sfa, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "f3", BRINE_I32, f3, 3, sf3, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "f1", BRINE_F32, f1, 3, sf1, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "g1", BRINE_I64, g1, 1, sg1, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "big", BRINE_C64, big, 2, sbig, BRINE_FORTRAN_ORDER));
    OK(b, brine_register(b, "ca", BRINE_F64, ca, 2, sca, 0));
    OK(b, brine_save(b, 2));

    hid_t f = h5_open(dir, "ckpt", 2);
    hsize_t dims[8];
    size_t nbytes;
    assert_int_equal(h5_dims(f, "/state/fa", dims), 2);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 5);
    assert_int_equal(h5_order(f, "/state/fa"), 'F');
    void *raw = h5_read_raw(f, "/state/fa", &nbytes);
    assert_int_equal(nbytes, sizeof efa);
    assert_bytes_equal(raw, efa, nbytes, "F array stored without transposition");
    free(raw);

    assert_int_equal(h5_dims(f, "/state/f3", dims), 3);
    assert_int_equal(dims[0], 2);
    assert_int_equal(dims[1], 3);
    assert_int_equal(dims[2], 4);
    assert_int_equal(h5_order(f, "/state/f3"), 'F');

    assert_int_equal(h5_dims(f, "/state/f1", dims), 3);
    assert_int_equal(dims[0], 1);
    assert_int_equal(dims[1], 7);
    assert_int_equal(dims[2], 1);
    assert_int_equal(h5_order(f, "/state/f1"), 'C');

    assert_int_equal(h5_dims(f, "/state/g1", dims), 1);
    assert_int_equal(dims[0], 5);
    assert_int_equal(h5_order(f, "/state/g1"), 'C');

    assert_int_equal(h5_dims(f, "/state/big", dims), 2);
    assert_int_equal(dims[0], 1000);
    assert_int_equal(dims[1], 300);
    assert_int_equal(h5_order(f, "/state/big"), 'F');
    raw = h5_read_raw(f, "/state/big", &nbytes);
    assert_int_equal(nbytes, nbig * 8);
    assert_bytes_equal(raw, ebig, nbytes, "big F array");
    free(raw);

    assert_int_equal(h5_dims(f, "/state/ca", dims), 2);
    assert_int_equal(dims[0], 5);
    assert_int_equal(dims[1], 3);
    assert_int_equal(h5_order(f, "/state/ca"), 'C');
    H5Fclose(f);

    memset(fa, 0, sizeof fa);
    memset(f3, 0, sizeof f3);
    memset(f1, 0, sizeof f1);
    memset(g1, 0, sizeof g1);
    memset(big, 0, nbig * 8);
    memset(ca, 0, sizeof ca);
    OK(b, brine_restore(b, NULL));
    assert_bytes_equal(fa, efa, sizeof fa, "fa");
    assert_bytes_equal(f3, ef3, sizeof f3, "f3");
    assert_bytes_equal(f1, ef1, sizeof f1, "f1");
    assert_int_equal(g1[4], 5);
    assert_bytes_equal(big, ebig, nbig * 8, "big");
    assert_bytes_equal(ca, efa, sizeof ca, "ca");
    brine_close(b);

    /* the single-extent F array was written as "C": a C registration of it matches */
    b = tu_open_partial(dir);
    memset(f1, 0, sizeof f1);
    OK(b, brine_register(b, "f1", BRINE_F32, f1, 3, sf1, 0));
    OK(b, brine_restore(b, NULL));
    assert_bytes_equal(f1, ef1, sizeof f1, "f1 restored as C");
    brine_close(b);
    free(big);
    free(ebig);
    tu_rmtree(dir);
}

static void test_hierarchical_names(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double abc[3] = {1, 2, 3}, abd[2] = {4, 5};
    int32_t ae[2] = {6, 7};
    int64_t fv = 8;
    char gh[16] = "hello";
    float deep[2] = {9, 10};
    const size_t s3[1] = {3}, s2[1] = {2};
    OK(b, brine_register(b, "a/b/c", BRINE_F64, abc, 1, s3, 0));
    OK(b, brine_register(b, "a/b/d", BRINE_F64, abd, 1, s2, 0));
    OK(b, brine_register(b, "a/e", BRINE_I32, ae, 1, s2, 0));
    OK(b, brine_register(b, "f", BRINE_I64, &fv, 0, NULL, 0));
    OK(b, brine_register_string(b, "g/h", gh, sizeof gh));
    OK(b, brine_register(b, "p/q/r/s/t/u/v/w", BRINE_F32, deep, 1, s2, 0));

    /* a name that is both a group and a variable */
    double x[2] = {0, 0};
    char sx[8] = "";
    EXPECT_EINVAL_NAMED(b, "a", brine_register(b, "a", BRINE_F64, x, 1, s2, 0));
    EXPECT_EINVAL_NAMED(b, "a/b", brine_register(b, "a/b", BRINE_F64, x, 1, s2, 0));
    EXPECT_EINVAL_NAMED(b, "a/b", brine_register(b, "a/b", BRINE_F64, x, 0, NULL, 0));
    EXPECT_EINVAL_NAMED(b, "a/b/c/d", brine_register(b, "a/b/c/d", BRINE_F64, x, 1, s2, 0));
    EXPECT_EINVAL_NAMED(b, "f/x", brine_register(b, "f/x", BRINE_F64, x, 1, s2, 0));
    EXPECT_EINVAL_NAMED(b, "g", brine_register_string(b, "g", sx, sizeof sx));
    EXPECT_EINVAL_NAMED(b, "g/h/i", brine_register_string(b, "g/h/i", sx, sizeof sx));
    EXPECT_EINVAL_NAMED(b, "a/e", brine_register_string(b, "a/e", sx, sizeof sx));

    OK(b, brine_save(b, 1));
    hid_t f = h5_open(dir, "ckpt", 1);
    hsize_t dims[8];
    assert_int_equal(h5_dims(f, "/state/a/b/c", dims), 1);
    assert_int_equal(dims[0], 3);
    assert_int_equal(h5_dims(f, "/state/a/b/d", dims), 1);
    assert_int_equal(dims[0], 2);
    assert_int_equal(h5_dims(f, "/state/a/e", dims), 1);
    assert_int_equal(h5_dims(f, "/state/p/q/r/s/t/u/v/w", dims), 1);
    /* intermediate groups are ordinary groups */
    hid_t grp = H5Gopen2(f, "/state/a/b", H5P_DEFAULT);
    assert_true(grp >= 0);
    H5Gclose(grp);
    assert_true(H5Lexists(f, "/state/f", H5P_DEFAULT) <= 0);
    assert_true(H5Lexists(f, "/state/g", H5P_DEFAULT) <= 0);
    H5Fclose(f);

    memset(abc, 0, sizeof abc);
    memset(abd, 0, sizeof abd);
    memset(ae, 0, sizeof ae);
    memset(deep, 0, sizeof deep);
    fv = 0;
    memset(gh, 'z', sizeof gh);
    OK(b, brine_restore(b, NULL));
    assert_true(abc[0] == 1 && abc[2] == 3 && abd[1] == 5);
    assert_int_equal(ae[1], 7);
    assert_int_equal(fv, 8);
    assert_string_equal(gh, "hello");
    assert_true(deep[0] == 9 && deep[1] == 10);
    brine_close(b);

    /* siblings registered in another order in a new context still restore */
    b = tu_open_partial(dir);
    memset(abc, 0, sizeof abc);
    memset(abd, 0, sizeof abd);
    OK(b, brine_register(b, "a/b/d", BRINE_F64, abd, 1, s2, 0));
    OK(b, brine_register(b, "a/b/c", BRINE_F64, abc, 1, s3, 0));
    OK(b, brine_restore(b, NULL));
    assert_true(abc[0] == 1 && abc[2] == 3 && abd[0] == 4 && abd[1] == 5);
    brine_close(b);
    tu_rmtree(dir);
}

static void test_strings(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    const char *utf8 = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac "
                       "\xf0\x9f\x98\x80";
    char s1[64], s2[8], s3[300], s4[16];
    const size_t l1 = strlen(utf8);
    snprintf(s1, sizeof s1, "%s", utf8);
    strcpy(s2, "1234567"); /* exactly fills its capacity with the NUL */
    memset(s3, 'x', 299);  /* long: BINUNICODE rather than SHORT_BINUNICODE */
    s3[299] = '\0';
    s4[0] = '\0';
    OK(b, brine_register_string(b, "text/utf8", s1, sizeof s1));
    OK(b, brine_register_string(b, "text/full", s2, sizeof s2));
    OK(b, brine_register_string(b, "text/long", s3, sizeof s3));
    OK(b, brine_register_string(b, "text/empty", s4, sizeof s4));
    OK(b, brine_save(b, 1));
    memset(s1, 'q', sizeof s1);
    memset(s2, 'q', sizeof s2);
    memset(s3, 'q', sizeof s3);
    memset(s4, 'q', sizeof s4);
    OK(b, brine_restore(b, NULL));
    assert_int_equal(strlen(s1), l1);
    assert_string_equal(s1, utf8);
    assert_string_equal(s2, "1234567");
    assert_int_equal(strlen(s3), 299);
    assert_string_equal(s4, "");
    brine_close(b);

    /* restore into a smaller capacity: the checkpoint does not match */
    b = tu_open(dir, NULL);
    char small[8];
    memset(small, 'S', sizeof small);
    OK(b, brine_register_string(b, "text/utf8", small, sizeof small));
    int64_t step = -7;
    EXPECT_RC(b, BRINE_EMISMATCH, brine_restore(b, &step));
    check_msg_names(b, "text/utf8", "restore into a small string", __FILE__, __LINE__);
    for (size_t i = 0; i < sizeof small; i++)
        assert_int_equal(small[i], 'S');
    brine_close(b);

    /* capacity exactly strlen + 1 is enough */
    b = tu_open_partial(dir);
    char exact[128];
    memset(exact, 'E', sizeof exact);
    OK(b, brine_register_string(b, "text/utf8", exact, l1 + 1));
    OK(b, brine_restore(b, NULL));
    assert_string_equal(exact, utf8);
    assert_int_equal(exact[l1 + 1], 'E');
    brine_close(b);

    /* invalid UTF-8 or an unterminated buffer at save time: EINVAL, nothing written */
    const char *bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "ab\x80",           /* lone continuation byte */
        "\xe2\x82",         /* truncated sequence */
        "x\xff",            /* never valid */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* beyond U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *d2 = tu_tmpdir();
        b = tu_open(d2, NULL);
        char buf[16];
        snprintf(buf, sizeof buf, "%s", bad[i]);
        OK(b, brine_register_string(b, "badstr", buf, sizeof buf));
        int rc = brine_save(b, 1);
        if (rc != BRINE_EINVAL) {
            print_error("invalid UTF-8 case %zu: brine_save returned %d (%s), expected EINVAL\n", i,
                        rc, brine_errstr(rc));
            fail();
        }
        check_msg_names(b, "badstr", "invalid UTF-8 at save", __FILE__, __LINE__);
        assert_int_equal(tu_count_entries(d2, ""), 0);
        brine_close(b);
        tu_rmtree(d2);
    }
    {
        const char *d2 = tu_tmpdir();
        b = tu_open(d2, NULL);
        char buf[4];
        memcpy(buf, "abcd", 4); /* no NUL within capacity */
        OK(b, brine_register_string(b, "unterminated", buf, sizeof buf));
        EXPECT_EINVAL_NAMED(b, "unterminated", brine_save(b, 1));
        assert_int_equal(tu_count_entries(d2, ""), 0);
        /* fixing the string makes the next save work */
        buf[3] = '\0';
        OK(b, brine_save(b, 1));
        assert_true(tu_ckpt_exists(d2, "ckpt", 1));
        brine_close(b);
        tu_rmtree(d2);
    }
    tu_rmtree(dir);
}

static void test_arg_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double x[4] = {1, 2, 3, 4};
    const size_t s4[1] = {4};
    const size_t s2[2] = {2, 2};
    char str[8] = "ok";

    /* NULL pointers */
    assert_int_equal(brine_register(NULL, "v", BRINE_F64, x, 1, s4, 0), BRINE_EINVAL);
    EXPECT_RC(b, BRINE_EINVAL, brine_register(b, NULL, BRINE_F64, x, 1, s4, 0));
    check_msg_names(b, NULL, "NULL name", __FILE__, __LINE__);
    EXPECT_EINVAL_NAMED(b, "v_nulldata", brine_register(b, "v_nulldata", BRINE_F64, NULL, 1, s4, 0));
    EXPECT_EINVAL_NAMED(b, "v_nullshape",
                        brine_register(b, "v_nullshape", BRINE_F64, x, 1, NULL, 0));
    EXPECT_EINVAL_NAMED(b, "v_nullscalar",
                        brine_register(b, "v_nullscalar", BRINE_F64, NULL, 0, NULL, 0));
    assert_int_equal(brine_register_string(NULL, "s", str, sizeof str), BRINE_EINVAL);
    EXPECT_RC(b, BRINE_EINVAL, brine_register_string(b, NULL, str, sizeof str));
    EXPECT_EINVAL_NAMED(b, "s_nullbuf", brine_register_string(b, "s_nullbuf", NULL, 8));
    assert_int_equal(brine_save(NULL, 1), BRINE_EINVAL);
    int64_t step = 0;
    assert_int_equal(brine_restore(NULL, &step), BRINE_EINVAL);

    /* ndim out of range */
    EXPECT_EINVAL_NAMED(b, "v_ndim_neg", brine_register(b, "v_ndim_neg", BRINE_F64, x, -1, s4, 0));
    const size_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    EXPECT_EINVAL_NAMED(b, "v_ndim_9", brine_register(b, "v_ndim_9", BRINE_F64, x, 9, s9, 0));
    /* 8 is allowed */
    OK(b, brine_register(b, "v_ndim_8", BRINE_F64, x, 8, s9 + 1, 0));

    /* bad dtype and flags */
    EXPECT_EINVAL_NAMED(b, "v_dtype", brine_register(b, "v_dtype", (brine_dtype)BRINE_DTYPE_COUNT,
                                                     x, 1, s4, 0));
    EXPECT_EINVAL_NAMED(b, "v_dtype_neg",
                        brine_register(b, "v_dtype_neg", (brine_dtype)-1, x, 1, s4, 0));
    EXPECT_EINVAL_NAMED(b, "v_flags", brine_register(b, "v_flags", BRINE_F64, x, 2, s2, 4u));
    /* size overflow */
    const size_t huge[2] = {SIZE_MAX / 2, 4};
    EXPECT_EINVAL_NAMED(b, "v_huge", brine_register(b, "v_huge", BRINE_F64, x, 2, huge, 0));

    /* capacity 0 */
    EXPECT_EINVAL_NAMED(b, "s_cap0", brine_register_string(b, "s_cap0", str, 0));

    /* bad names */
    const char *bad_names[] = {"", "/a", "a//b", "a/", ".", "a/../b", "..", "a/./b", "/",
                               "sp ace", "tab\tx", "nl\nx", "bad\xff" "utf8"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        const char *n = bad_names[i];
        int rc = brine_register(b, n, BRINE_F64, x, 1, s4, 0);
        if (rc != BRINE_EINVAL) {
            print_error("brine_register(\"%s\") returned %d, expected EINVAL\n", n, rc);
            fail();
        }
        /* the message names the variable (for printable names) */
        const char *check = (i < 8) ? n : NULL;
        check_msg_names(b, check, "bad name", __FILE__, __LINE__);
        rc = brine_register_string(b, n, str, sizeof str);
        if (rc != BRINE_EINVAL) {
            print_error("brine_register_string(\"%s\") returned %d, expected EINVAL\n", n, rc);
            fail();
        }
        check_msg_names(b, check, "bad string name", __FILE__, __LINE__);
    }

    /* duplicate names, whatever the kind of the second registration */
    double y[4] = {9, 9, 9, 9};
    OK(b, brine_register(b, "dup", BRINE_F64, x, 1, s4, 0));
    EXPECT_EINVAL_NAMED(b, "dup", brine_register(b, "dup", BRINE_F64, y, 1, s4, 0));
    EXPECT_EINVAL_NAMED(b, "dup", brine_register(b, "dup", BRINE_I32, y, 0, NULL, 0));
    EXPECT_EINVAL_NAMED(b, "dup", brine_register_string(b, "dup", str, sizeof str));
    OK(b, brine_register_string(b, "sdup", str, sizeof str));
    EXPECT_EINVAL_NAMED(b, "sdup", brine_register_string(b, "sdup", str, sizeof str));
    EXPECT_EINVAL_NAMED(b, "sdup", brine_register(b, "sdup", BRINE_F64, y, 1, s4, 0));

    /* bad steps */
    EXPECT_RC(b, BRINE_EINVAL, brine_save(b, -1));
    check_msg_names(b, NULL, "step -1", __FILE__, __LINE__);
    EXPECT_RC(b, BRINE_EINVAL, brine_save(b, INT64_C(1000000000000)));
    check_msg_names(b, NULL, "step 10^12", __FILE__, __LINE__);
    EXPECT_RC(b, BRINE_EINVAL, brine_save(b, INT64_MIN));
    assert_int_equal(tu_count_entries(dir, ""), 0);

    /* the context is still usable, with only the valid registrations */
    OK(b, brine_save(b, INT64_C(999999999999)));
    assert_true(tu_ckpt_exists(dir, "ckpt", INT64_C(999999999999)));
    x[0] = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, INT64_C(999999999999));
    assert_true(x[0] == 1);
    assert_true(y[0] == 9);
    hid_t f = h5_open(dir, "ckpt", INT64_C(999999999999));
    hsize_t dims[8];
    assert_int_equal(h5_dims(f, "/state/dup", dims), 1);
    assert_int_equal(h5_dims(f, "/state/v_ndim_8", dims), 8);
    assert_int_equal(h5_dims(f, "/state/v_dtype", dims), -1);
    assert_int_equal(h5_dims(f, "/state/v_huge", dims), -1);
    H5Fclose(f);
    brine_close(b);

    brine_close(NULL);
    tu_rmtree(dir);
}

static void test_open_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = (brine *)(uintptr_t)1;
    assert_int_equal(brine_open(NULL, dir, NULL), BRINE_EINVAL);
    assert_true(brine_open_errmsg()[0] != '\0');
    assert_int_equal(brine_open(&b, NULL, NULL), BRINE_EINVAL);
    assert_null(b);
    assert_true(brine_open_errmsg()[0] != '\0');

    const char *bad_prefix[] = {"", ".hidden", "a/b", "sp ace", "x*y",
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad_prefix / sizeof bad_prefix[0]; i++) {
        brine_options o = BRINE_OPTIONS_INIT;
        o.prefix = bad_prefix[i];
        b = (brine *)(uintptr_t)1;
        int rc = brine_open(&b, dir, &o);
        if (rc != BRINE_EINVAL) {
            print_error("prefix \"%s\": brine_open returned %d, expected EINVAL\n", bad_prefix[i],
                        rc);
            brine_close(rc == 0 ? b : NULL);
            fail();
        }
        assert_null(b);
        assert_true(brine_open_errmsg()[0] != '\0');
    }
    /* Out of range for the default codec (libdeflate, when built, goes to 12),
     * and for zlib, which stops at 9. */
    const int bad_level[] = {-1, 13, 100, 10};
    for (size_t i = 0; i < 4; i++) {
        brine_options o = BRINE_OPTIONS_INIT;
        o.level = bad_level[i];
        if (bad_level[i] == 10)
            o.codec = BRINE_CODEC_ZLIB;
        b = (brine *)(uintptr_t)1;
        assert_int_equal(brine_open(&b, dir, &o), BRINE_EINVAL);
        assert_null(b);
        assert_true(brine_open_errmsg()[0] != '\0');
    }
    {
        brine_options o = BRINE_OPTIONS_INIT;
        o.version = 999;
        b = (brine *)(uintptr_t)1;
        assert_int_equal(brine_open(&b, dir, &o), BRINE_EINVAL);
        assert_null(b);
    }
    /* a 64-character prefix is fine */
    {
        brine_options o = BRINE_OPTIONS_INIT;
        o.prefix = "A123456789_123456789.123456789+123456789-12345678901234567890123";
        assert_int_equal(strlen(o.prefix), 64);
        b = tu_open(dir, &o);
        brine_close(b);
    }
    brine_close(NULL);
    tu_rmtree(dir);
}

/* NULL options use "ckpt"; a custom prefix names the files; no temporary file remains. */
static void test_prefix_and_names(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    int32_t v[3] = {1, 2, 3};
    const size_t s3[1] = {3};

    brine *b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_I32, v, 1, s3, 0));
    OK(b, brine_save(b, 0));
    OK(b, brine_save(b, 42));
    {
        char p[1024];
        snprintf(p, sizeof p, "%s/ckpt-000000000000.h5", dir);
        assert_true(tu_file_exists(p));
        snprintf(p, sizeof p, "%s/ckpt-000000000042.h5", dir);
        assert_true(tu_file_exists(p));
    }
    assert_int_equal(tu_count_entries(dir, "."), 0);
    assert_int_equal(tu_count_entries(dir, ""), 2);

    /* the root attributes (format 2.1) */
    hid_t f = h5_open(dir, "ckpt", 42);
    assert_int_equal(h5_attr_i64(f, "brine_format"), 1);
    assert_int_equal(h5_attr_i64(f, "step"), 42);
    char s[128];
    int utf8 = 0;
    assert_int_equal(h5_attr_str(f, "brine_version", s, sizeof s, &utf8), 0);
    assert_true(utf8);
    assert_string_equal(s, BRINE_VERSION_STRING);
    assert_int_equal(h5_attr_str(f, "created", s, sizeof s, &utf8), 0);
    assert_int_equal(strlen(s), 20);
    assert_true(s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
                s[19] == 'Z');
    {
        hid_t a = H5Aopen(f, "brine_format", H5P_DEFAULT);
        hid_t t = H5Aget_type(a);
        assert_true(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 4 &&
                    H5Tget_sign(t) == H5T_SGN_2);
        H5Tclose(t);
        H5Aclose(a);
    }
    {
        hid_t p = H5Dopen2(f, "/brine/pickle", H5P_DEFAULT);
        assert_true(p >= 0);
        hid_t t = H5Dget_type(p);
        assert_true(H5Tequal(t, H5T_STD_U8LE) > 0);
        H5Tclose(t);
        assert_true(H5Aexists(p, "crc32") > 0);
        assert_true(H5Aexists(p, "buffers") > 0);
        H5Dclose(p);
    }
    H5Fclose(f);
    brine_close(b);

    brine_options o = BRINE_OPTIONS_INIT;
    o.prefix = "run_1.x+y-z";
    b = tu_open(dir, &o);
    OK(b, brine_register(b, "v", BRINE_I32, v, 1, s3, 0));
    OK(b, brine_save(b, 123456789012));
    assert_true(tu_ckpt_exists(dir, "run_1.x+y-z", 123456789012));
    assert_int_equal(tu_count_entries(dir, "run_1.x+y-z-"), 1);
    assert_int_equal(tu_count_entries(dir, "ckpt-"), 2); /* the other prefix is left alone */
    assert_int_equal(tu_count_entries(dir, "."), 0);
    v[0] = 0;
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 123456789012);
    assert_int_equal(v[0], 1);
    brine_close(b);

    /* the default context does not see the other prefix's checkpoints */
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_I32, v, 1, s3, 0));
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 42);
    brine_close(b);
    tu_rmtree(dir);
}

static void check_steps(const char *dir, const int *present, int n)
{
    for (int s = 1; s <= n; s++) {
        if (tu_ckpt_exists(dir, "ckpt", s) != present[s - 1]) {
            print_error("step %d: exists=%d, expected %d\n", s, tu_ckpt_exists(dir, "ckpt", s),
                        present[s - 1]);
            fail();
        }
    }
}

static void test_keep_last(void **state)
{
    (void)state;
    int32_t v = 0;
    /* keep_last 3 */
    const char *dir = tu_tmpdir();
    brine_options o = BRINE_OPTIONS_INIT;
    o.keep_last = 3;
    brine *b = tu_open(dir, &o);
    OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
    for (int s = 1; s <= 6; s++) {
        v = s * 10;
        OK(b, brine_save(b, s));
    }
    const int want3[6] = {0, 0, 0, 1, 1, 1};
    check_steps(dir, want3, 6);
    assert_int_equal(tu_count_entries(dir, ""), 3);
    v = 0;
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 6);
    assert_int_equal(v, 60);
    brine_close(b);
    tu_rmtree(dir);

    /* keep_last 0 and negative keep everything */
    for (int kl = 0; kl >= -1; kl--) {
        dir = tu_tmpdir();
        o.keep_last = kl;
        b = tu_open(dir, &o);
        OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
        for (int s = 1; s <= 6; s++)
            OK(b, brine_save(b, s));
        const int all[6] = {1, 1, 1, 1, 1, 1};
        check_steps(dir, all, 6);
        brine_close(b);
        tu_rmtree(dir);
    }

    /* default (NULL options): 3 */
    dir = tu_tmpdir();
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
    for (int s = 1; s <= 5; s++)
        OK(b, brine_save(b, s));
    const int want_def[5] = {0, 0, 1, 1, 1};
    check_steps(dir, want_def, 5);
    brine_close(b);
    tu_rmtree(dir);

    /* keep_last 1, and saving an older step than existing ones never deletes the new one */
    dir = tu_tmpdir();
    o.keep_last = 1;
    b = tu_open(dir, &o);
    OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
    OK(b, brine_save(b, 5));
    OK(b, brine_save(b, 6));
    assert_false(tu_ckpt_exists(dir, "ckpt", 5));
    assert_true(tu_ckpt_exists(dir, "ckpt", 6));
    /* saving an older step: the newest by step is kept, and so is the one just published */
    OK(b, brine_save(b, 2));
    assert_true(tu_ckpt_exists(dir, "ckpt", 2));
    assert_true(tu_ckpt_exists(dir, "ckpt", 6));
    brine_close(b);
    tu_rmtree(dir);
}

static void test_levels(void **state)
{
    (void)state;
    const int levels[] = {0, 9, 1, 5};
    const size_t n = 300 * 1000;
    const size_t shape[2] = {300, 1000};
    double *a = malloc(n * 8), *e = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        e[i] = (double)(i % 1000) / 7.0;
    fill_array(BRINE_F64, e, 16, 1);
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const char *dir = tu_tmpdir();
        brine_options o = BRINE_OPTIONS_INIT;
        o.level = levels[li];
        o.threads = (int)li; /* 0 (OpenMP's default), 1, 2, 3 */
        brine *b = tu_open(dir, &o);
        memcpy(a, e, n * 8);
        OK(b, brine_register(b, "a", BRINE_F64, a, 2, shape, 0));
        OK(b, brine_save(b, 1));
        hid_t f = h5_open(dir, "ckpt", 1);
        hsize_t chunk[8];
        check_chunked_storage(f, "/state/a", levels[li], chunk);
        size_t nb;
        void *raw = h5_read_raw(f, "/state/a", &nb);
        assert_bytes_equal(raw, e, n * 8, "HDF5 read at level");
        free(raw);
        H5Fclose(f);
        memset(a, 0, n * 8);
        OK(b, brine_restore(b, NULL));
        assert_bytes_equal(a, e, n * 8, "restore at level");
        brine_close(b);
        tu_rmtree(dir);
    }
    free(a);
    free(e);
}

static void test_open_creates_parents(void **state)
{
    (void)state;
    const char *base = tu_tmpdir();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/x/y/z", base);
    brine *b = tu_open(dir, NULL);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    int v = 3;
    OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
    OK(b, brine_save(b, 1));
    assert_true(tu_ckpt_exists(dir, "ckpt", 1));
    brine_close(b);
    /* a trailing slash and an existing directory are fine */
    snprintf(dir, sizeof dir, "%s/x/y/z/", base);
    b = tu_open(dir, NULL);
    OK(b, brine_register(b, "v", BRINE_I32, &v, 0, NULL, 0));
    v = 0;
    OK(b, brine_restore(b, NULL));
    assert_int_equal(v, 3);
    brine_close(b);
    /* a directory path through a regular file cannot be created */
    char file[1024];
    snprintf(file, sizeof file, "%s/plain", base);
    assert_int_equal(tu_write_file(file, "x", 1), 0);
    snprintf(dir, sizeof dir, "%s/plain/sub", base);
    b = (brine *)(uintptr_t)1;
    int rc = brine_open(&b, dir, NULL);
    assert_true(rc == BRINE_EIO);
    assert_null(b);
    assert_true(brine_open_errmsg()[0] != '\0');
    tu_rmtree(base);
}

static void test_same_step_replaces(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    double a[100];
    fill_array(BRINE_F64, a, 100, 1);
    const size_t s[1] = {100};
    OK(b, brine_register(b, "a", BRINE_F64, a, 1, s, 0));
    OK(b, brine_save(b, 5));
    double e[100];
    fill_array(BRINE_F64, e, 100, 2);
    memcpy(a, e, sizeof a);
    OK(b, brine_save(b, 5));
    assert_int_equal(tu_count_entries(dir, ""), 1);
    memset(a, 0, sizeof a);
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 5);
    assert_bytes_equal(a, e, sizeof a, "replaced checkpoint");
    brine_close(b);
    tu_rmtree(dir);
}

/* ---- the allocator hook ---- */

typedef struct counting_alloc {
    atomic_long allocs;
    atomic_long frees;
    atomic_long bad_frees;
    atomic_long bytes;
} counting_alloc;

#define HDR 16
#define MAGIC 0xB41AEC0DEull

static void *ca_alloc(void *ctx, size_t size)
{
    counting_alloc *c = ctx;
    unsigned char *p = malloc(size + HDR);
    if (!p)
        return NULL;
    const uint64_t m[2] = {MAGIC, size};
    memcpy(p, m, sizeof m);
    atomic_fetch_add(&c->allocs, 1);
    atomic_fetch_add(&c->bytes, (long)size);
    return p + HDR;
}

static void ca_free(void *ctx, void *ptr)
{
    counting_alloc *c = ctx;
    if (!ptr) {
        atomic_fetch_add(&c->bad_frees, 1);
        return;
    }
    unsigned char *p = (unsigned char *)ptr - HDR;
    uint64_t m[2];
    memcpy(m, p, sizeof m);
    if (m[0] != MAGIC) {
        atomic_fetch_add(&c->bad_frees, 1);
        return; /* not ours: leak rather than crash */
    }
    m[0] = 0;
    memcpy(p, m, sizeof m);
    atomic_fetch_add(&c->frees, 1);
    free(p);
}

static void test_allocator(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    counting_alloc c;
    atomic_init(&c.allocs, 0);
    atomic_init(&c.frees, 0);
    atomic_init(&c.bad_frees, 0);
    atomic_init(&c.bytes, 0);
    const brine_allocator al = {ca_alloc, ca_free, &c};
    brine_options o = BRINE_OPTIONS_INIT;
    o.alloc = &al;
    o.keep_last = 2;
    o.threads = 2;
    brine *b = tu_open(dir, &o);
    const size_t n = 400 * 1000;
    const size_t shape[2] = {400, 1000};
    float *a = malloc(n * 4);
    fill_array(BRINE_F32, a, n, 3);
    double t = 1.5;
    char s[32] = "allocator";
    OK(b, brine_register(b, "g/a", BRINE_F32, a, 2, shape, 0));
    OK(b, brine_register(b, "g/t", BRINE_F64, &t, 0, NULL, 0));
    OK(b, brine_register_string(b, "s", s, sizeof s));
    EXPECT_RC(b, BRINE_EINVAL, brine_register(b, "g/t", BRINE_F64, &t, 0, NULL, 0));
    for (int step = 1; step <= 4; step++)
        OK(b, brine_save(b, step));
    int64_t st = 0;
    OK(b, brine_restore(b, &st));
    assert_int_equal(st, 4);
    brine_close(b);
    long allocs = atomic_load(&c.allocs), frees = atomic_load(&c.frees);
    if (allocs == 0) {
        print_error("the allocator hook was never called\n");
        fail();
    }
    if (allocs != frees || atomic_load(&c.bad_frees) != 0) {
        print_error("allocs %ld, frees %ld, frees of foreign/NULL pointers %ld\n", allocs, frees,
                    (long)atomic_load(&c.bad_frees));
        fail();
    }
    /* a restore-only context, and a failed open, also free everything */
    o.restore_flags = BRINE_RESTORE_PARTIAL;
    b = tu_open(dir, &o);
    OK(b, brine_register(b, "g/a", BRINE_F32, a, 2, shape, 0));
    OK(b, brine_restore(b, NULL));
    brine_close(b);
    brine_options bad = o;
    bad.level = 42;
    assert_int_equal(brine_open(&b, dir, &bad), BRINE_EINVAL);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    free(a);
    tu_rmtree(dir);
}

/* ---- the I/O method table: fsync before rename, fsync_dir after ---- */

#define SPY_MAXFD 1024
#define SPY_MAXPATH 64

typedef struct spy {
    const brine_io_methods *base;
    pthread_t thread;
    int wrong_thread, bad_ctx, violations;
    char violation[1024];
    char fd_path[SPY_MAXFD][512]; /* "" when closed */
    struct {
        char path[512];
        int dirty;  /* written since the last fsync */
        int synced; /* fsynced at least once */
    } files[SPY_MAXPATH];
    int nfiles;
    int renames, fsyncs, fsync_dirs, opens, pwrites;
    int pending_dir_sync; /* a rename not yet followed by fsync_dir of its directory */
    char pending_dir[512];
    struct stat pending_st;
    const char *final_dir;
} spy;

static spy *spy_of(void *ctx)
{
    return (spy *)ctx;
}

static void spy_violation(spy *s, const char *fmt, const char *a, const char *b2)
{
    if (!s->violations)
        snprintf(s->violation, sizeof s->violation, fmt, a, b2);
    s->violations++;
}

static void spy_check(spy *s, void *ctx)
{
    if (ctx != s)
        s->bad_ctx++;
    if (!pthread_equal(pthread_self(), s->thread))
        s->wrong_thread++;
}

static int spy_file(spy *s, const char *path)
{
    for (int i = 0; i < s->nfiles; i++)
        if (!strcmp(s->files[i].path, path))
            return i;
    if (s->nfiles == SPY_MAXPATH)
        return -1;
    /* path may point into s itself: memmove, not snprintf (whose arguments are restrict). */
    size_t n = strlen(path);
    if (n >= sizeof s->files[0].path)
        n = sizeof s->files[0].path - 1;
    memmove(s->files[s->nfiles].path, path, n);
    s->files[s->nfiles].path[n] = '\0';
    s->files[s->nfiles].dirty = 0;
    s->files[s->nfiles].synced = 0;
    return s->nfiles++;
}

static int spy_open(void *ctx, const char *path, int flags, unsigned mode)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    s->opens++;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) && base[0] != '.' && strstr(base, ".h5") &&
        !strstr(base, ".tmp"))
        spy_violation(s, "a final name opened for writing: %s%s", path, "");
    int fd = s->base->open(s->base->ctx, path, flags, mode);
    if (fd >= 0 && fd < SPY_MAXFD) {
        snprintf(s->fd_path[fd], sizeof s->fd_path[fd], "%s", path);
        int i = spy_file(s, path);
        if (i >= 0 && (flags & O_TRUNC))
            s->files[i].dirty = 1;
    }
    return fd;
}

static int spy_close(void *ctx, int fd)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    if (fd >= 0 && fd < SPY_MAXFD)
        s->fd_path[fd][0] = '\0';
    return s->base->close(s->base->ctx, fd);
}

static int64_t spy_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    return s->base->pread(s->base->ctx, fd, buf, n, off);
}

static void spy_dirty(spy *s, int fd)
{
    if (fd >= 0 && fd < SPY_MAXFD && s->fd_path[fd][0]) {
        int i = spy_file(s, s->fd_path[fd]);
        if (i >= 0)
            s->files[i].dirty = 1;
    }
}

static int64_t spy_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    s->pwrites++;
    spy_dirty(s, fd);
    return s->base->pwrite(s->base->ctx, fd, buf, n, off);
}

static int spy_fsync(void *ctx, int fd)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    s->fsyncs++;
    int rc = s->base->fsync(s->base->ctx, fd);
    if (rc == 0 && fd >= 0 && fd < SPY_MAXFD && s->fd_path[fd][0]) {
        int i = spy_file(s, s->fd_path[fd]);
        if (i >= 0) {
            s->files[i].dirty = 0;
            s->files[i].synced = 1;
        }
    }
    return rc;
}

static int spy_ftruncate(void *ctx, int fd, uint64_t size)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    spy_dirty(s, fd);
    return s->base->ftruncate(s->base->ctx, fd, size);
}

static int spy_fsize(void *ctx, int fd, uint64_t *out)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    return s->base->fsize(s->base->ctx, fd, out);
}

static int spy_rename(void *ctx, const char *from, const char *to)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    s->renames++;
    int i = spy_file(s, from);
    if (i < 0 || !s->files[i].synced || s->files[i].dirty)
        spy_violation(s, "rename of %s to %s before it was fsynced after its last write", from, to);
    for (int fd = 0; fd < SPY_MAXFD; fd++)
        if (s->fd_path[fd][0] && !strcmp(s->fd_path[fd], from))
            spy_violation(s, "rename of %s while it is still open (to %s)", from, to);
    int rc = s->base->rename(s->base->ctx, from, to);
    if (rc == 0) {
        s->pending_dir_sync = 1;
        snprintf(s->pending_dir, sizeof s->pending_dir, "%s", to);
        char *slash = strrchr(s->pending_dir, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(s->pending_dir, ".");
        if (stat(s->pending_dir, &s->pending_st) != 0)
            spy_violation(s, "cannot stat the directory of %s%s", to, "");
    }
    return rc;
}

static int spy_unlink(void *ctx, const char *path)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    return s->base->unlink(s->base->ctx, path);
}

static int spy_mkdir(void *ctx, const char *path, unsigned mode)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    return s->base->mkdir(s->base->ctx, path, mode);
}

static int spy_fsync_dir(void *ctx, const char *path)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    s->fsync_dirs++;
    int rc = s->base->fsync_dir(s->base->ctx, path);
    struct stat st;
    if (rc == 0 && s->pending_dir_sync && stat(path, &st) == 0 &&
        st.st_dev == s->pending_st.st_dev && st.st_ino == s->pending_st.st_ino)
        s->pending_dir_sync = 0;
    return rc;
}

static int spy_list_dir(void *ctx, const char *path, int (*each)(void *, const char *), void *arg)
{
    spy *s = spy_of(ctx);
    spy_check(s, ctx);
    return s->base->list_dir(s->base->ctx, path, each, arg);
}

static void spy_init(spy *s, brine_io_methods *m)
{
    memset(s, 0, sizeof *s);
    s->base = brine_io_posix();
    assert_non_null(s->base);
    assert_int_equal(s->base->version, BRINE_IO_METHODS_VERSION);
    s->thread = pthread_self();
    *m = (brine_io_methods){BRINE_IO_METHODS_VERSION,
                            s,
                            spy_open,
                            spy_close,
                            spy_pread,
                            spy_pwrite,
                            spy_fsync,
                            spy_ftruncate,
                            spy_fsize,
                            spy_rename,
                            spy_unlink,
                            spy_mkdir,
                            spy_fsync_dir,
                            spy_list_dir};
}

static void test_io_methods_publication(void **state)
{
    (void)state;
    const char *base = tu_tmpdir();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/new/ckpts", base);
    static spy s; /* large: keep it off the stack */
    brine_io_methods m;
    spy_init(&s, &m);
    brine_options o = BRINE_OPTIONS_INIT;
    o.io = &m;
    o.threads = 2;
    o.keep_last = 2;
    brine *b = tu_open(dir, &o);
    /* the directory was created through the table */
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);

    const size_t n = 500 * 1000;
    const size_t shape[2] = {500, 1000};
    double *a = malloc(n * 8);
    fill_array(BRINE_F64, a, n, 8);
    int64_t k = 0;
    OK(b, brine_register(b, "a", BRINE_F64, a, 2, shape, 0));
    OK(b, brine_register(b, "k", BRINE_I64, &k, 0, NULL, 0));
    for (int step = 1; step <= 4; step++) {
        int renames = s.renames, pwrites = s.pwrites, fsyncs = s.fsyncs;
        k = step;
        OK(b, brine_save(b, step));
        if (s.violations) {
            print_error("step %d: %d violation(s), first: %s\n", step, s.violations, s.violation);
            fail();
        }
        if (s.renames != renames + 1) {
            print_error("step %d: %d renames in one save, expected 1\n", step,
                        s.renames - renames);
            fail();
        }
        if (s.pending_dir_sync) {
            print_error("step %d: brine_save returned 0 without fsync_dir of %s after rename\n",
                        step, s.pending_dir);
            fail();
        }
        assert_true(s.pwrites > pwrites); /* HDF5's own I/O goes through the table */
        assert_true(s.fsyncs > fsyncs);
        assert_true(tu_ckpt_exists(dir, "ckpt", step));
        assert_int_equal(tu_count_entries(dir, "."), 0);
    }
    assert_int_equal(tu_count_entries(dir, ""), 2);
    int64_t step = 0;
    k = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 4);
    assert_int_equal(k, 4);
    brine_close(b);
    if (s.bad_ctx || s.wrong_thread) {
        print_error("methods called with a wrong ctx %d times, from another thread %d times\n",
                    s.bad_ctx, s.wrong_thread);
        fail();
    }
    free(a);
    tu_rmtree(base);
}

/* A state with no variables is a valid (empty) checkpoint. */
static void test_no_variables(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine *b = tu_open(dir, NULL);
    OK(b, brine_save(b, 3));
    hid_t f = h5_open(dir, "ckpt", 3);
    hid_t p = H5Dopen2(f, "/brine/pickle", H5P_DEFAULT);
    assert_true(p >= 0);
    hid_t a = H5Aopen(p, "buffers", H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t sp = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 1);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), 0);
    H5Sclose(sp);
    H5Aclose(a);
    H5Dclose(p);
    H5Fclose(f);
    int64_t step = 0;
    OK(b, brine_restore(b, &step));
    assert_int_equal(step, 3);
    brine_close(b);
    tu_rmtree(dir);
}

/* Two prefixes in one directory rotate independently. */
static void test_two_prefixes(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    brine_options oa = BRINE_OPTIONS_INIT, ob = BRINE_OPTIONS_INIT;
    oa.prefix = "alpha";
    oa.keep_last = 1;
    ob.prefix = "beta";
    ob.keep_last = 2;
    brine *a = tu_open(dir, &oa), *b = tu_open(dir, &ob);
    int32_t va = 0, vb = 0;
    OK(a, brine_register(a, "v", BRINE_I32, &va, 0, NULL, 0));
    OK(b, brine_register(b, "v", BRINE_I32, &vb, 0, NULL, 0));
    for (int s = 1; s <= 4; s++) {
        va = s;
        vb = 10 * s;
        OK(a, brine_save(a, s));
        OK(b, brine_save(b, s + 100));
    }
    assert_int_equal(tu_count_entries(dir, "alpha-"), 1);
    assert_int_equal(tu_count_entries(dir, "beta-"), 2);
    assert_true(tu_ckpt_exists(dir, "alpha", 4));
    assert_true(tu_ckpt_exists(dir, "beta", 103));
    assert_true(tu_ckpt_exists(dir, "beta", 104));
    va = vb = 0;
    int64_t sa = 0, sb = 0;
    OK(a, brine_restore(a, &sa));
    OK(b, brine_restore(b, &sb));
    assert_int_equal(sa, 4);
    assert_int_equal(va, 4);
    assert_int_equal(sb, 104);
    assert_int_equal(vb, 40);
    brine_close(a);
    brine_close(b);
    tu_rmtree(dir);
}

/* Distinct contexts may be used from distinct threads at the same time. */
typedef struct thread_job {
    int id;
    int failed;
    char why[512];
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    const char *base = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/brine-thread-%d-%ld", base && *base ? base : "/tmp", job->id,
             (long)getpid());
    brine_options o = BRINE_OPTIONS_INIT;
    o.threads = 1;
    o.keep_last = 2;
    brine *b = NULL;
    const size_t n = 200 * 700;
    const size_t shape[2] = {200, 700};
    double *a = malloc(n * 8), *e = malloc(n * 8);
    char s[32];
    if (brine_open(&b, dir, &o) != 0) {
        snprintf(job->why, sizeof job->why, "open: %s", brine_open_errmsg());
        goto fail;
    }
    if (brine_register(b, "a", BRINE_F64, a, 2, shape, 0) ||
        brine_register_string(b, "s", s, sizeof s)) {
        snprintf(job->why, sizeof job->why, "register: %s", brine_errmsg(b));
        goto fail;
    }
    for (int step = 1; step <= 6; step++) {
        fill_array(BRINE_F64, e, n, (uint64_t)(job->id * 1000 + step));
        memcpy(a, e, n * 8);
        snprintf(s, sizeof s, "thread %d step %d", job->id, step);
        int rc = brine_save(b, step);
        if (rc) {
            snprintf(job->why, sizeof job->why, "save %d: %s", step, brine_errmsg(b));
            goto fail;
        }
        memset(a, 0, n * 8);
        s[0] = '\0';
        int64_t got = 0;
        rc = brine_restore(b, &got);
        char want[32];
        snprintf(want, sizeof want, "thread %d step %d", job->id, step);
        if (rc || got != step || memcmp(a, e, n * 8) || strcmp(s, want)) {
            snprintf(job->why, sizeof job->why, "restore %d: rc %d step %lld: %s", step, rc,
                     (long long)got, brine_errmsg(b));
            goto fail;
        }
    }
    brine_close(b);
    free(a);
    free(e);
    tu_rmtree(dir);
    return NULL;
fail:
    job->failed = 1;
    brine_close(b);
    free(a);
    free(e);
    tu_rmtree(dir);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    enum { NT = 4 };
    pthread_t t[NT];
    thread_job jobs[NT];
    for (int i = 0; i < NT; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < NT; i++) {
        if (jobs[i].failed) {
            print_error("thread %d: %s\n", i, jobs[i].why);
            fail();
        }
    }
}

/*
 * Every codec built in, at its lowest, a middle and its highest level, with
 * one and two threads: brine_restore gives back the bytes, incompressible
 * chunks (stored with the deflate bit of their filter mask) included, and
 * the file does not depend on the thread count.
 */
static void test_every_codec_restores(void **state)
{
    (void)state;
    static const struct {
        brine_codec codec;
        int levels[3];
    } cases[] = {
        {BRINE_CODEC_ZLIB, {0, 6, 9}},
        {BRINE_CODEC_LIBDEFLATE, {0, 6, 12}},
        {BRINE_CODEC_ISAL, {0, 1, 3}},
        {BRINE_CODEC_NONE, {0, 0, 0}},
    };
    const size_t rows = 600, cols = 700; /* 3.2 MiB: 4 chunks, the last an edge chunk */
    const size_t n = rows * cols;
    double *data = malloc(n * sizeof *data);
    double *back = malloc(n * sizeof *back);
    assert_non_null(data);
    assert_non_null(back);
    uint64_t seed = 42;
    for (size_t i = 0; i < n; i++) {
        /* The first half smooth, the second random bits: both kinds of chunk. */
        if (i < n / 2)
            data[i] = sin((double)i * 1e-4);
        else {
            uint64_t r = tu_rand(&seed);
            memcpy(&data[i], &r, sizeof r);
        }
    }
    const size_t shape[2] = {rows, cols};
    int tried = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (!brine_codec_available(cases[c].codec))
            continue;
        for (int l = 0; l < 3; l++) {
            uint8_t *first = NULL;
            size_t first_len = 0;
            for (int threads = 1; threads <= 2; threads++) {
                const char *dir = tu_tmpdir();
                brine_options o = BRINE_OPTIONS_INIT;
                o.codec = cases[c].codec;
                o.level = cases[c].levels[l];
                o.threads = threads;
                brine *b = NULL;
                assert_int_equal(brine_open(&b, dir, &o), 0);
                OK(b, brine_register(b, "field", BRINE_F64, data, 2, shape, 0));
                OK(b, brine_save(b, 7));
                brine_close(b);

                memset(back, 0, n * sizeof *back);
                assert_int_equal(brine_open(&b, dir, &o), 0);
                OK(b, brine_register(b, "field", BRINE_F64, back, 2, shape, 0));
                int64_t step = -1;
                OK(b, brine_restore(b, &step));
                brine_close(b);
                assert_int_equal(step, 7);
                if (memcmp(data, back, n * sizeof *data) != 0) {
                    print_error("codec %s level %d threads %d: restored bytes differ\n",
                                brine_codec_name(cases[c].codec), cases[c].levels[l], threads);
                    fail();
                }
                /* The stored chunks are the same whatever the thread count; only
                 * the created attribute may differ, so compare the dataset's bytes. */
                char path[600];
                tu_ckpt_path(path, sizeof path, dir, "ckpt", 7);
                hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
                hid_t d = H5Dopen2(f, "/state/field", H5P_DEFAULT);
                size_t total = 0;
                uint8_t *chunks = malloc(4 * 2 * 1024 * 1024);
                assert_non_null(chunks);
                for (hsize_t r = 0; r < rows; r += 187) { /* chunk rows: 2^20 / (700 * 8) */
                    hsize_t off[2] = {r, 0}, size = 0;
                    uint32_t mask = 0;
                    assert_true(H5Dget_chunk_storage_size(d, off, &size) >= 0);
                    assert_true(H5Dread_chunk(d, H5P_DEFAULT, off, &mask, chunks + total) >= 0);
                    memcpy(chunks + total + size, &mask, sizeof mask);
                    total += (size_t)size + sizeof mask;
                }
                H5Dclose(d);
                H5Fclose(f);
                if (threads == 1) {
                    first = chunks;
                    first_len = total;
                } else {
                    assert_int_equal(total, first_len);
                    assert_memory_equal(chunks, first, total);
                    free(chunks);
                }
                tu_rmtree(dir);
                tried++;
            }
            free(first);
        }
    }
    assert_true(tried >= 2 * 3 * 2); /* zlib and none at least */
    free(back);
    free(data);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests print their own diagnostics */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_errstr_dtypes),
        cmocka_unit_test(test_dtype_roundtrip),
        cmocka_unit_test(test_scalars_roundtrip),
        cmocka_unit_test(test_scalar_null_shape),
        cmocka_unit_test(test_empty_arrays),
        cmocka_unit_test(test_multichunk),
        cmocka_unit_test(test_fortran_order),
        cmocka_unit_test(test_hierarchical_names),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_arg_errors),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_prefix_and_names),
        cmocka_unit_test(test_keep_last),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_open_creates_parents),
        cmocka_unit_test(test_same_step_replaces),
        cmocka_unit_test(test_allocator),
        cmocka_unit_test(test_io_methods_publication),
        cmocka_unit_test(test_no_variables),
        cmocka_unit_test(test_two_prefixes),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_every_codec_restores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
