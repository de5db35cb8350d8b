/* The context and its registry, shared by the core modules (context, registry, save, restore). */
#ifndef BRINE_CORE_CORE_H
#define BRINE_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../format/chunk_codec.h"
#include "../format/h5_layout.h" /* brine_attr_val */

/** One registered variable. */
typedef struct brine_var {
    char *name;        /**< hierarchical name, owned */
    int is_string;     /**< registered with brine_register_string */
    brine_dtype dtype; /**< element type (arrays and scalars) */
    void *data;        /**< the caller's memory */
    int ndim;          /**< 0 for scalars and strings */
    uint64_t shape[BRINE_MAX_NDIM]; /**< logical shape as registered */
    uint64_t dims[BRINE_MAX_NDIM];  /**< dataset dims: shape, reversed when order is 'F' */
    char order;        /**< 'C' or 'F', normalised (docs/format.md, 2.3) */
    size_t nbytes;     /**< bytes of data (elements * size); the capacity for strings */
    unsigned flags;    /**< as registered: BRINE_FORTRAN_ORDER, BRINE_CONVERT */
    /* Resizable arrays (brine_register_resizable): data, shape, dims, order
     * and nbytes above are refreshed from these before every save and restore. */
    int resizable;
    void **data_ref;
    size_t *shape_ref;
    brine_resize_fn resize; /**< NULL: realloc() */
    void *resize_ctx;
} brine_var;

struct brine {
    char *dir;
    char *prefix;
    brine_options opts; /**< a copy; opts.prefix points to prefix */
    brine_chunk_codec codec; /**< opts.codec and opts.level resolved */
    const brine_io_methods *io;
    const brine_allocator *alloc; /**< NULL = malloc/free */
    brine_var *vars;
    size_t nvars;
    size_t cap;
    brine_attr_val *attrs; /**< user metadata, in the order first set */
    size_t nattrs;
    size_t attrs_cap;
    char report[BRINE_ERRMSG_MAX]; /**< brine_restore_report() */
    /* Policies, signals, environment (policy.c) */
    double last_save_time;  /**< brine_policy__now() when the last save started, or at brine_open */
    int signals_installed;  /**< brine_install_signals() succeeded on this context */
    int should_exit;        /**< brine_should_exit() */
    int64_t last_policy_step; /**< the step brine_maybe_save() last saved; -1: none */
    /* Asynchronous saves (async.c) */
    struct brine_async *async; /**< NULL until the first brine_save_async() */
    /* A group of processes checkpointing together (coll.c, docs/mpi.md); NULL: a plain context. */
    struct brine_coll *coll;
    int coll_inflight; /**< brine_maybe_save()'s agreement was started and not completed */
    brine_error err;
};

/** The order ('C' or 'F') of an array with flags and shape (docs/format.md, 2.3). */
char brine_registry__order(unsigned flags, int ndim, const uint64_t *shape);

/**
 * Sets var's shape (ndim extents), dims, order and nbytes from shape and
 * var->flags.  @return 0, or BRINE_EINVAL (size overflow) with a message.
 */
int brine_registry__set_shape(brine_var *var, const uint64_t *shape, brine_error *err);

/**
 * Reads every resizable variable's current *data and shape (before a save or
 * a restore).  @return 0, or BRINE_EINVAL (size overflow, NULL data for a
 * non-empty shape) naming the variable.
 */
int brine_registry__refresh(brine *b);

/** Frees the registry's memory (brine_close). */
void brine_registry__free(brine *b);

/** The calling thread's record of brine_open's and brine_reader_open's last failure; context.c. */
brine_error *brine_context__open_error(void);

/** The policy clock in seconds (options.clock, else CLOCK_MONOTONIC); policy.c. */
double brine_policy__now(const brine *b);

/**
 * Options from BRINE_* environment variables when o->use_env is set
 * (docs/checkpointing.md): every field of o still at its BRINE_OPTIONS_INIT
 * value takes its variable, and *dir, when NULL, takes BRINE_DIR.  Every
 * variable that is set is checked, also when an explicit option wins.
 * Strings point into the environment.  policy.c.
 * @return 0, or BRINE_EINVAL in err naming the variable and its value.
 */
int brine_policy__apply_env(brine_options *o, const char **dir, brine_error *err);

/** Puts back the signal handlers brine_install_signals() replaced, when b has them (brine_close); policy.c. */
void brine_signals__uninstall(brine *b);

/** Frees b's group, if any, after every collective of it is over (brine_close); coll.c. */
void brine_coll__close(brine *b);

/**
 * The collective restore's candidates (coll.c): rank 0 lists the committed
 * checkpoint directories of b's prefix, and each call returns the next
 * newest step to every rank (*step), -1 when none is left.  *cursor starts
 * at 0.  0, or an error (rank 0 cannot read the directory) on every rank.
 */
int brine_coll__next_candidate(brine *b, size_t *cursor, int64_t *step);

/**
 * Checks the checkpoint directory of step for this rank: its manifest
 * (valid, nranks equal to the group's size, else BRINE_EMISMATCH naming
 * both), then this rank's file against the manifest's size and CRC-32
 * (BRINE_ECORRUPT).  file (cap bytes) gets the rank file's path.
 */
int brine_coll__check_rank_file(brine *b, int64_t step, char *file, size_t cap);

/**
 * Every rank's rc of one collective attempt: *first_rc gets the first
 * non-zero rc in rank order (0 when every rank succeeded) and ranks (cap
 * bytes) the failing ranks ("1, 3").  Returns 0, or BRINE_EIO with a
 * message in b->err when the transport failed.
 */
int brine_coll__agree(brine *b, int rc, int *first_rc, char *ranks, size_t cap);

/** Frees the user metadata (brine_close); attrs.c. */
void brine_attrs__free(brine *b);

#endif
