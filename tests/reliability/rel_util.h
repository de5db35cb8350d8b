/*
 * Shared by the reliability suites (tests/reliability): a deterministic
 * state whose every value is a function of the step, a counting and
 * fault-injecting brine_io_methods table, a counting and failing allocator,
 * and directory helpers.  Only the public API (brine.h) is used here.
 */
#ifndef BRINE_REL_UTIL_H
#define BRINE_REL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "brine.h"

/* ------------------------------------------------------------------------ */
/* Reporting: every suite counts its checks and failures the same way.      */

extern long rel_checks, rel_failures;

/** Records a failed check with a printf-style message (printed to stderr). */
void rel_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define REL_CHECK(cond, ...)               \
    do {                                   \
        rel_checks++;                      \
        if (!(cond))                       \
            rel_fail(__VA_ARGS__);         \
    } while (0)

/** An environment variable as a long, or def when unset or empty. */
long rel_env_long(const char *name, long def);

/** Monotonic time in seconds. */
double rel_now(void);

/* ------------------------------------------------------------------------ */
/* The state.                                                               */

/**
 * Registered variables: "big/u" (f64[big_rows][512]: more than one ~1 MiB
 * chunk when big_rows > 256), "grid/small" (f64[6][7]), "grid/fort"
 * (i32, Fortran order, 5 x 3), "grid/z" (c64[4]), "flags" (bool[9]), and the
 * scalars "step" (i64), "time" (f64), "count" (u32), "ok" (bool), "zc" (c128),
 * plus the string "label".  Every value is a function of the step.
 * compressible: big/u repeats along rows (deflates ~1000:1) instead of noise.
 */
typedef struct rel_state {
    int lean;  /* set after rel_state_init: registers only "u" (the big array), "small" and the scalars and string, at the root */
    size_t big_rows;
    int compressible;
    double *big;
    double small[6][7];
    int32_t fort[3][5]; /* Fortran a(5,3) */
    float z[4][2];
    uint8_t flags[9];
    int64_t step;
    double time;
    uint32_t count;
    uint8_t ok;
    double zc[2];
    char label[48];
} rel_state;

#define REL_BIG_COLS 512

/** Allocates big; 0 or -1.  Values are zero until rel_state_fill. */
int rel_state_init(rel_state *s, size_t big_rows, int compressible);
void rel_state_free(rel_state *s);

/** Sets every value to the one of step. */
void rel_state_fill(rel_state *s, int64_t step);

/** Sets every byte of every variable to a poison pattern (fresh memory for a restore). */
void rel_state_poison(rel_state *s);

/**
 * Compares every variable with what rel_state_fill(step) writes, bit for bit.
 * Returns 0 when equal, else -1 with a description in why.
 */
int rel_state_check(const rel_state *s, int64_t step, char *why, size_t whylen);

/** Registers every variable with b.  0 or the first brine error. */
int rel_state_register(brine *b, rel_state *s);

/* ------------------------------------------------------------------------ */
/* A counting, fault-injecting I/O method table over brine_io_posix().      */

enum {
    REL_OP_OPEN, REL_OP_CLOSE, REL_OP_PREAD, REL_OP_PWRITE, REL_OP_FSYNC, REL_OP_FTRUNCATE,
    REL_OP_FSIZE, REL_OP_RENAME, REL_OP_UNLINK, REL_OP_MKDIR, REL_OP_FSYNC_DIR, REL_OP_LIST_DIR,
    REL_OP_COUNT
};

/** What an injected fault does. */
typedef enum rel_fault_kind {
    REL_FAULT_EIO,
    REL_FAULT_ENOSPC,
    REL_FAULT_EINTR, /**< pread/pwrite: -EINTR, the retry goes through */
    REL_FAULT_SHORT, /**< pread/pwrite: transfers half of what is asked */
    REL_FAULT_KIND_COUNT
} rel_fault_kind;

const char *rel_op_name(int op);
const char *rel_fault_kind_name(rel_fault_kind k);

typedef struct rel_io {
    brine_io_methods m; /* m.ctx points back here */
    const brine_io_methods *base;
    long seq;               /* operations so far (every method) */
    long calls[REL_OP_COUNT];
    long opens, closes;     /* successful opens, closes (a close releases the fd even when it fails) */
    /* Injection: operation number fail_at (1-based, over all methods) fails with kind;
     * when persistent, every later call of the same method fails too.
     * For EINTR and SHORT, "fails" means is interrupted once / transfers half. */
    long fail_at;           /* 0: no injection */
    rel_fault_kind kind;
    int persistent;
    int fail_op;            /* the method of operation fail_at, once reached (-1 before) */
    long injected;          /* faults actually injected */
    int eintr_pending;      /* the next retry of an interrupted call goes through */
    char fail_path[512];    /* the file the first injected fault concerned ("" for none) */
    int fail_fd_written;    /* the fd of the first fault had been written to */
    int *trace;             /* when set, trace[seq] = method of operation seq, for seq <= trace_cap */
    long trace_cap;
    /* fd -> path and written flag, for the report */
    char fd_path[256][256];
    unsigned char fd_written[256];
} rel_io;

void rel_io_init(rel_io *io);
/** Forgets counts and the injection (keeps nothing open). */
void rel_io_reset(rel_io *io);
/** Arms an injection at operation number at (1-based) from the next operation on. */
void rel_io_arm(rel_io *io, long at, rel_fault_kind kind, int persistent);

/* ------------------------------------------------------------------------ */
/* A counting allocator that can fail the Nth allocation.                   */

typedef struct rel_alloc {
    brine_allocator a; /* a.ctx points back here */
    long allocs, frees, outstanding;
    long fail_nth;     /* 0: never; else allocation number fail_nth (1-based, counted from arming) fails */
    long since_arm;
    long failed;       /* allocations refused */
    long bad_frees;    /* frees of a block this allocator did not hand out */
} rel_alloc;

void rel_alloc_init(rel_alloc *a);
void rel_alloc_arm(rel_alloc *a, long nth);

/* ------------------------------------------------------------------------ */
/* Directories.                                                             */

/** Entries of dir whose name starts with '.' (temporary files). -1 when dir cannot be read. */
int rel_count_temps(const char *dir);
/** Committed checkpoints "ckpt-<12 digits>.h5" in dir, steps into out (ascending), up to max. */
int rel_list_steps(const char *dir, int64_t *out, int max);
/** Open file descriptors of this process (entries of /proc/self/fd). */
int rel_count_fds(void);
/** A fresh empty directory under $TMPDIR or /tmp. */
void rel_mkdtemp(char *out, size_t n, const char *tag);
/** Removes a directory tree. */
void rel_rmtree(const char *path);
/** Removes every entry of a directory (not the directory). */
void rel_clear_dir(const char *dir);
/** Whole file into a malloc'd buffer (NULL on failure). */
uint8_t *rel_read_file(const char *path, size_t *len);
/** Writes a whole file (created or truncated). 0 or -1. */
int rel_write_file(const char *path, const void *data, size_t len);
/** "<dir>/ckpt-<step>.h5" */
void rel_ckpt_path(char *out, size_t n, const char *dir, int64_t step);

/** Opens a context on dir with io/alloc (either may be NULL) and keep_last; registers s. NULL on failure (printed). */
brine *rel_open(const char *dir, rel_state *s, const brine_io_methods *io, const brine_allocator *al,
                int keep_last);

/** Number of HDF5 file ids still open in the process. */
long rel_h5_open_files(void);

/** Number of HDF5 identifiers of files, groups, datatypes, dataspaces, datasets and attributes. */
long rel_h5_ids(void);

#endif
