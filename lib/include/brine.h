/*
 * brine: checkpoint/restart for long-running simulations.
 *
 * A program registers its state (arrays and scalars) once, then calls
 * brine_save() every so often.  Each call writes one checkpoint: an HDF5 file
 * holding a pickle protocol 5 stream of the whole state, whose arrays travel as
 * out-of-band buffers stored as ordinary, compressed HDF5 datasets.  Any Python
 * with numpy and h5py loads it; docs/format.md specifies the file format.
 * A restarted program calls brine_restore() to load the newest checkpoint that
 * verifies back into the registered memory.
 *
 * Conventions of the whole API:
 *  - Functions return 0 on success and a negative BRINE_E* code on failure;
 *    brine_errmsg() then says precisely what failed (file, variable, system
 *    call, errno text, HDF5's innermost error).
 *  - The library never prints and never exits; HDF5's automatic error printing
 *    is suppressed inside brine calls and restored afterwards.
 *  - A brine context is not thread-safe: use one context from one thread at a
 *    time.  Distinct contexts may be used from distinct threads.  An
 *    asynchronous save (brine_save_async) runs on a thread of brine's own
 *    while the context's thread goes on; a context must not be used across
 *    fork() while such a save is in flight (the child has no such thread).
 *  - Strings are UTF-8.
 */
#ifndef BRINE_H
#define BRINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define BRINE_API
#elif defined(__GNUC__)
#define BRINE_API __attribute__((visibility("default")))
#else
#define BRINE_API
#endif

/** Library version, also written into every checkpoint (root attribute brine_version). */
#define BRINE_VERSION_MAJOR 0
#define BRINE_VERSION_MINOR 1
#define BRINE_VERSION_PATCH 0
#define BRINE_VERSION_STRING "0.1.0"

/** The checkpoint file format version this library writes (and the newest it reads). */
#define BRINE_FORMAT_VERSION 1

/**
 * Error codes.  Kept few on purpose: each is something a program reacts to
 * differently.  The detail is in brine_errmsg().
 */
enum {
    BRINE_OK = 0,
    BRINE_EINVAL = -1,    /**< invalid argument: NULL pointer, bad name, duplicate name, bad ndim... */
    BRINE_ENOMEM = -2,    /**< an allocation failed */
    BRINE_EIO = -3,       /**< a system call failed (the message names it and gives errno's text) */
    BRINE_ENOSPC = -4,    /**< the file system is full (ENOSPC or EDQUOT) */
    BRINE_ENOTFOUND = -5, /**< no checkpoint at all in the directory */
    BRINE_ECORRUPT = -6,  /**< a checkpoint is damaged: bad checksum, malformed pickle, missing dataset */
    BRINE_EMISMATCH = -7, /**< a checkpoint's variables differ from the registered ones (name, dtype, shape) */
    BRINE_EVERSION = -8,  /**< a checkpoint was written in a newer format than this library reads */
    BRINE_EHDF5 = -9,     /**< the HDF5 library failed (its innermost message is in brine_errmsg) */
    BRINE_EBUSY = -10     /**< an asynchronous save is in flight and the options say not to wait for it */
};

/** Element types of registered variables.  Values are part of the ABI. */
typedef enum brine_dtype {
    BRINE_BOOL = 0, /**< C99 bool / one byte 0 or 1; numpy '|b1' */
    BRINE_I8,       /**< int8_t,  numpy '|i1' */
    BRINE_I16,      /**< int16_t, numpy '<i2' */
    BRINE_I32,      /**< int32_t, numpy '<i4' */
    BRINE_I64,      /**< int64_t, numpy '<i8' */
    BRINE_U8,       /**< uint8_t, numpy '|u1' */
    BRINE_U16,      /**< uint16_t, numpy '<u2' */
    BRINE_U32,      /**< uint32_t, numpy '<u4' */
    BRINE_U64,      /**< uint64_t, numpy '<u8' */
    BRINE_F32,      /**< float,  numpy '<f4' */
    BRINE_F64,      /**< double, numpy '<f8' */
    BRINE_C64,      /**< float complex (two floats, real first), numpy '<c8' */
    BRINE_C128      /**< double complex (two doubles, real first), numpy '<c16' */
} brine_dtype;

/** Number of brine_dtype values. */
#define BRINE_DTYPE_COUNT 13

/** Most dimensions a registered array may have. */
#define BRINE_MAX_NDIM 8

/** brine_register() flag: the array is stored in Fortran (column-major) order. */
#define BRINE_FORTRAN_ORDER 1u

/**
 * brine_register() and brine_read() flag: restore an array stored with
 * another dtype by converting it.  Without it a dtype difference is
 * BRINE_EMISMATCH: brine never converts silently.  The conversions allowed
 * never fail and never wrap: bool to any number; an integer to a wider
 * integer (unsigned to a wider signed or unsigned, signed to a wider signed);
 * any integer to any float or complex (rounded as numpy does); float32 and
 * float64 to either float or either complex; complex64 and complex128 to
 * either complex.  Everything else (narrowing integers, signed to unsigned,
 * float to integer, complex to real) stays a mismatch.
 */
#define BRINE_CONVERT 2u

/**
 * Pluggable file-system operations (SQLite's VFS, in small).
 *
 * Every file-system operation of the library goes through one of these
 * methods, including the I/O of the HDF5 files themselves (brine gives HDF5 a
 * virtual file driver that calls them).  The default is POSIX; tests plug in
 * tables that fail the Nth operation.  Methods return 0 (or a byte count) on
 * success and a negated errno value on failure.  A method table must outlive
 * every context that uses it.  Methods are called from the thread that
 * called into brine and, for asynchronous saves (brine_save_async), from the
 * save's background thread; for one context never from two threads at once
 * (a table several contexts share may be).
 */
typedef struct brine_io_methods {
    unsigned version; /**< BRINE_IO_METHODS_VERSION */
    void *ctx;        /**< passed as the first argument of every method */
    /** open(2): returns a file descriptor >= 0 or -errno.  flags are open(2)'s O_* flags. */
    int (*open)(void *ctx, const char *path, int flags, unsigned mode);
    /** close(2). */
    int (*close)(void *ctx, int fd);
    /** pread(2): bytes read (0 at end of file, may be short) or -errno. */
    int64_t (*pread)(void *ctx, int fd, void *buf, size_t n, uint64_t offset);
    /** pwrite(2): bytes written (may be short) or -errno. */
    int64_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, uint64_t offset);
    /** fsync(2). */
    int (*fsync)(void *ctx, int fd);
    /** ftruncate(2). */
    int (*ftruncate)(void *ctx, int fd, uint64_t size);
    /** The current size of an open file (fstat(2)'s st_size). */
    int (*fsize)(void *ctx, int fd, uint64_t *out);
    /** rename(2). */
    int (*rename)(void *ctx, const char *from, const char *to);
    /** unlink(2). */
    int (*unlink)(void *ctx, const char *path);
    /** mkdir(2); an existing directory is -EEXIST. */
    int (*mkdir)(void *ctx, const char *path, unsigned mode);
    /** Open a directory, fsync it and close it: makes renames and unlinks in it durable. */
    int (*fsync_dir)(void *ctx, const char *path);
    /**
     * Calls each(arg, name) for every entry of a directory but "." and "..".
     * Stops early and returns each's value when each returns non-zero.
     */
    int (*list_dir)(void *ctx, const char *path, int (*each)(void *arg, const char *name), void *arg);
} brine_io_methods;

#define BRINE_IO_METHODS_VERSION 1

/** The default POSIX method table.  Never NULL; never changes. */
BRINE_API const brine_io_methods *brine_io_posix(void);

/**
 * Allocation hook (zstd's customMem).  Every allocation the library makes
 * itself goes through it; HDF5's and zlib's internal allocations do not.
 * With asynchronous saves, the save's background thread allocates and frees
 * through it while the caller's thread may too: the hook must then be
 * thread-safe.
 */
typedef struct brine_allocator {
    void *(*alloc)(void *ctx, size_t size); /**< like malloc; may return NULL */
    void (*free)(void *ctx, void *ptr);     /**< like free; never called with NULL */
    void *ctx;                              /**< passed to both */
} brine_allocator;

/**
 * Deflate implementations.  Every one writes the zlib-wrapped deflate stream
 * HDF5's standard deflate filter reads, so the codec never matters to readers.
 */
typedef enum brine_codec {
    BRINE_CODEC_DEFAULT = 0,   /**< the fastest built in that supports the level (ISA-L, libdeflate, zlib) */
    BRINE_CODEC_ZLIB = 1,      /**< zlib, levels 0..9; always built in */
    BRINE_CODEC_LIBDEFLATE = 2,/**< libdeflate, levels 0..12; when found at configure time */
    BRINE_CODEC_ISAL = 3,      /**< ISA-L igzip, levels 0..3; when found at configure time */
    BRINE_CODEC_NONE = 4       /**< no compression: arrays are stored with fletcher32 only (no deflate, no shuffle) */
} brine_codec;

/** 1 when codec is built into this library, else 0. */
BRINE_API int brine_codec_available(brine_codec codec);

/** The codec's name ("zlib", "libdeflate", "isal", "none", "default"), or NULL for an unknown value. */
BRINE_API const char *brine_codec_name(brine_codec codec);

/**
 * Options of brine_open().  Initialise with BRINE_OPTIONS_INIT, then change
 * fields: fields added in later versions get their defaults that way.
 *
 * Environment (when use_env is 1, the default): a field still at its
 * BRINE_OPTIONS_INIT value takes its variable, so a job script can tune
 * checkpointing without rebuilding; a field the program changed wins (a
 * field set to its default value counts as unchanged).  The variables:
 * BRINE_DIR (brine_open's dir when that is NULL), BRINE_PREFIX,
 * BRINE_KEEP_LAST, BRINE_KEEP_EVERY, BRINE_EVERY_STEPS, BRINE_EVERY_SECONDS
 * (a decimal number, fractions allowed), BRINE_LEVEL, BRINE_THREADS,
 * BRINE_CODEC (zlib, libdeflate, isal, none or default) and BRINE_ASYNC (0 or
 * 1); integers are plain decimal.  Every variable that is set is checked,
 * also when an explicit option wins: a malformed one makes brine_open() fail
 * with BRINE_EINVAL naming it and its value.  docs/checkpointing.md.
 */
typedef struct brine_options {
    unsigned version;   /**< BRINE_OPTIONS_VERSION */
    const char *prefix; /**< checkpoint file names are <prefix>-<step>.h5; default "ckpt" */
    int keep_last;      /**< checkpoints kept after each save; <= 0 keeps all.  Default 3 */
    int level;          /**< deflate level (range depends on the codec); default 1 */
    int threads;        /**< compression threads; 0 = OpenMP's default */
    const brine_io_methods *io;     /**< file-system operations; NULL = brine_io_posix() */
    const brine_allocator *alloc;   /**< allocation hook; NULL = malloc/free */
    brine_codec codec;  /**< deflate implementation; default BRINE_CODEC_DEFAULT */
    unsigned restore_flags; /**< 0 (strict, the default) or BRINE_RESTORE_PARTIAL; since version 2 */
    /* Since version 3: when brine_maybe_save() saves, what is kept, asynchronous saves. */
    int64_t every_steps;  /**< brine_maybe_save() saves at steps that are multiples of it; 0: off (default) */
    double every_seconds; /**< ... and when this much wall-clock time passed since the last save; 0: off */
    int keep_every;       /**< checkpoints whose step is a multiple of it (0 included) survive rotation and do
                               not count toward keep_last; 0: none (default) */
    int async;            /**< 1: brine_maybe_save() saves with brine_save_async(); default 0 */
    unsigned async_flags; /**< 0 or BRINE_ASYNC_NOWAIT */
    size_t staging_max;   /**< most bytes of staging memory for asynchronous saves (the registered variables'
                               bytes, each rounded up to 64); a larger state is saved synchronously by
                               brine_save_async().  0: no cap (default) */
    int use_env;          /**< 1 (default): options left at their default take BRINE_* variables; 0: ignore them */
    /** Wall clock in seconds for the every_seconds policy; NULL (default): CLOCK_MONOTONIC.  For tests. */
    double (*clock)(void *ctx);
    void *clock_ctx;      /**< passed to clock */
} brine_options;

/**
 * brine_options.async_flags: brine_save_async() (and brine_save()) return
 * BRINE_EBUSY at once when an asynchronous save is still in flight, rather
 * than waiting for it.
 */
#define BRINE_ASYNC_NOWAIT 1u

/**
 * brine_options.restore_flags: a registered variable missing from the
 * checkpoint, or a checkpoint variable that is not registered, does not stop
 * brine_restore(): it restores every variable present in both, leaves the
 * others' memory untouched, and lists the differences in
 * brine_restore_report().  For a program that gained or dropped a variable.
 * A variable present in both with another dtype or shape is still
 * BRINE_EMISMATCH.
 */
#define BRINE_RESTORE_PARTIAL 1u

/** Versions 1 and 2 of the options (without the later fields) are still accepted. */
#define BRINE_OPTIONS_VERSION 3
#define BRINE_OPTIONS_INIT                                                                     \
    { BRINE_OPTIONS_VERSION, "ckpt", 3, 1, 0, NULL, NULL, BRINE_CODEC_DEFAULT, 0u, 0, 0.0, 0, 0, \
      0u, 0, 1, NULL, NULL }

/** Opaque checkpointing context. */
typedef struct brine brine;

/**
 * Creates a context that checkpoints into directory dir (created, with its
 * parents, when missing).
 *
 * @param out   receives the context; set to NULL on failure.
 * @param dir   checkpoint directory; copied.  NULL: the value of BRINE_DIR
 *              (when options.use_env is 1).
 * @param opts  options, or NULL for the defaults; copied (io and alloc are
 *              kept by pointer and must outlive the context).  Fields left
 *              at their defaults may come from BRINE_* environment variables
 *              (see brine_options).
 * @return 0; BRINE_EINVAL (NULL out, NULL dir without BRINE_DIR, an empty
 *         dir, bad prefix, version, a codec not built in, a level outside
 *         the codec's range, a negative every_steps or keep_every, an
 *         every_seconds that is negative or not finite, async or use_env not
 *         0 or 1, unknown async_flags, a malformed BRINE_* variable: the
 *         message names it and its value);
 *         BRINE_ENOMEM; BRINE_EIO or BRINE_ENOSPC (the directory cannot be created).
 * On failure no context exists, so the message cannot be fetched from it:
 * use brine_open_errmsg() for it.
 */
BRINE_API int brine_open(brine **out, const char *dir, const brine_options *opts);

/**
 * The message of the last failed brine_open(), brine_reader_open(),
 * brine_close(), brine_list() or brine_prune() in the calling thread.  Valid until the thread's next call of
 * one of them.
 */
BRINE_API const char *brine_open_errmsg(void);

/**
 * Waits for an asynchronous save in flight (and joins its thread), frees
 * the staging memory of asynchronous saves, then frees the context.
 * Registered memory is the caller's and is not touched.  NULL is a no-op.
 * @return 0, or the failure of a background save no other call has returned
 *         yet; its message is then brine_open_errmsg()'s (the context is gone).
 */
BRINE_API int brine_close(brine *b);

/**
 * Registers a variable: a scalar (ndim 0) or an array (ndim 1..BRINE_MAX_NDIM).
 *
 * brine keeps the pointer: data must stay valid, at the same address and
 * with the same shape, until brine_close().  brine_save() reads it;
 * brine_restore() writes it.
 *
 * @param name  hierarchical name, components separated by '/', e.g.
 *              "fluid/velocity".  Components are non-empty, not "." or "..",
 *              and hold no control characters or spaces; the whole name is
 *              valid UTF-8.  A name may not be both a variable and a group.
 * @param shape ndim extents (copied); zeros are allowed (empty arrays).
 *              Ignored when ndim is 0.
 * @param flags 0 or BRINE_FORTRAN_ORDER (column-major memory).
 * @return 0; BRINE_EINVAL (NULL b/name/data/shape, invalid or duplicate name,
 *         ndim out of range, unknown dtype or flag, size overflow); BRINE_ENOMEM.
 */
BRINE_API int brine_register(brine *b, const char *name, brine_dtype dtype, void *data,
                             int ndim, const size_t *shape, unsigned flags);

/**
 * Reallocation callback of a resizable variable (brine_register_resizable).
 * brine_restore() calls it when the checkpoint's array has another size than
 * the variable's current one: it must return memory for nbytes bytes (its
 * content need not be kept: brine overwrites it), or NULL when it cannot
 * (the restore fails with BRINE_ENOMEM and old stays the variable's memory).
 * old is the variable's current memory (may be NULL); nbytes may be 0.
 */
typedef void *(*brine_resize_fn)(void *ctx, const char *name, void *old, size_t nbytes);

/**
 * Registers an array whose size may change while the program runs (particle
 * lists, adaptive meshes).  brine keeps the addresses data and shape, not
 * their values: every brine_save() reads *data and shape[0..ndim) as they
 * are then.  brine_restore() accepts a checkpoint whose array has any shape
 * of this ndim: it sizes the memory with resize (or, when resize is NULL,
 * with realloc(), so *data must then come from malloc() or be NULL), then
 * sets *data and shape[] to the restored array's.  When the size is
 * unchanged the memory is reused.
 *
 * *data may be NULL while the array is empty.  ndim is 1..BRINE_MAX_NDIM.
 * flags: BRINE_FORTRAN_ORDER, BRINE_CONVERT.
 * @return as brine_register(); brine_save() fails with BRINE_EINVAL when
 *         *data is NULL for a non-empty shape or the size overflows.
 */
BRINE_API int brine_register_resizable(brine *b, const char *name, brine_dtype dtype, void **data,
                                       int ndim, size_t *shape, unsigned flags,
                                       brine_resize_fn resize, void *ctx);

/**
 * Registers a NUL-terminated UTF-8 string held in buf[capacity].
 * Saved as a Python str; restored into buf when it fits (with its NUL),
 * otherwise the checkpoint does not match (BRINE_EMISMATCH).
 * @return as brine_register(); capacity 0 is BRINE_EINVAL.
 */
BRINE_API int brine_register_string(brine *b, const char *name, char *buf, size_t capacity);

/**
 * Writes one complete checkpoint of every registered variable for this step,
 * blocking until it is durable.
 *
 * The file is written under a hidden temporary name, fsynced, renamed to
 * <dir>/<prefix>-<step, 12 digits>.h5 and the directory fsynced; only then
 * does brine_save() return 0.  Then older checkpoints beyond keep_last are
 * deleted (best effort: a deletion that fails is retried by the next save and
 * does not fail this one).  A checkpoint of the same step is replaced.
 * On failure the temporary file is removed and every earlier checkpoint is
 * untouched; the program may go on and save again.
 *
 * After the arguments are checked, an asynchronous save still in flight
 * (brine_save_async) is waited for, and a background failure no call has
 * returned yet is returned instead of saving (see brine_save_async).
 *
 * @param step  0 .. 999999999999.
 * @return 0; BRINE_EINVAL (bad step, a string that is not valid UTF-8 or not
 *         terminated within its capacity); BRINE_ENOMEM; BRINE_EIO; BRINE_ENOSPC; BRINE_EHDF5;
 *         BRINE_EBUSY (BRINE_ASYNC_NOWAIT and a save in flight); the error
 *         of an earlier background save (then nothing was saved).
 */
BRINE_API int brine_save(brine *b, int64_t step);

/**
 * Starts a checkpoint of every registered variable for this step and returns
 * while it is compressed and written in the background.
 *
 * It checks its arguments as brine_save() does, then (one save at a time)
 * waits for the asynchronous save still in flight, if any, unless
 * options.async_flags has BRINE_ASYNC_NOWAIT (then BRINE_EBUSY at once).
 * Then it copies every registered variable (arrays, scalars, strings, a
 * resizable array at its current size) and the user metadata into staging
 * memory: in parallel (OpenMP threads, large arrays split among them), and
 * this copy is the only time the caller is blocked.  As soon as this
 * returns the program may change its variables, resize its resizable
 * arrays and set attributes: the checkpoint holds the values of this call.
 * A background thread (one per save, with every signal blocked; joined by
 * the next call that waits for it, or by brine_close()) then writes the
 * file as brine_save() would: the same bytes (but the `created` time), the
 * same publication and rotation.  All the save's HDF5 calls run on that
 * thread, with HDF5's error printing silenced there; so every call on b
 * that would call HDF5 (brine_save(), brine_restore(), brine_restore_begin(),
 * brine_close()) first waits for the save in flight.  Other calls
 * (brine_register*, brine_set_attr_*, brine_maybe_save() when nothing is
 * due) do not wait.
 *
 * Memory: one copy of the state (the variables' bytes, each rounded up to
 * 64), allocated through options.alloc by the first call and reused, grown
 * (by an eighth more than needed) only when the state grows, and kept until
 * brine_close(): no allocation per call in steady state.  A state larger
 * than options.staging_max (when not 0) is not copied: the checkpoint is
 * written synchronously, exactly as brine_save() does, and this returns 0
 * once it is published (brine_errmsg() is then "": it is not an error).
 *
 * Errors are never lost and reported once: the failure of a background save
 * (its message "saving step N to DIR: ...", as brine_save()'s) is returned
 * by brine_wait(); if the program does not wait, by the next brine_save(),
 * brine_save_async(), brine_maybe_save() that saves, brine_restore() or
 * brine_restore_begin(), which then returns it without doing its own work
 * (that call's save or restore did not happen: call it again); else by
 * brine_close(), whose message then is brine_open_errmsg().
 *
 * The I/O methods and the allocator are called from the background thread
 * too (brine_io_methods, brine_allocator).  A context with a save in flight
 * must not be used across fork().
 *
 * @return 0 (the save started, or was done synchronously); the error of an
 *         earlier background save (then nothing was started); BRINE_EBUSY;
 *         BRINE_EINVAL (as brine_save()); BRINE_ENOMEM (staging memory, the
 *         background thread cannot be started, or the state's size
 *         overflows); when the state exceeds staging_max, brine_save()'s
 *         errors.
 */
BRINE_API int brine_save_async(brine *b, int64_t step);

/**
 * Waits until the asynchronous save in flight (if any) is published or has
 * failed.  @return 0 (also when none was in flight) or the failure of a
 * background save no call has returned yet, with the full message in
 * brine_errmsg() ("saving step 42 to DIR: pwrite of ... failed: No space
 * left on device"); reported once: a second brine_wait() returns 0.
 * BRINE_EINVAL for NULL.
 */
BRINE_API int brine_wait(brine *b);

/**
 * Called once per iteration of the time loop: saves when a policy says so,
 * else returns at once (costing one clock read when every_seconds is set,
 * nothing else: no system call, no allocation).  It saves step when any of
 * these holds:
 *  - options.every_steps > 0 and step is a multiple of it;
 *  - options.every_seconds > 0 and that much time passed (by options.clock,
 *    else CLOCK_MONOTONIC) since the last save of this context started (or
 *    since brine_open()); a save for any reason restarts the interval;
 *  - a signal installed with brine_install_signals() arrived: then it first
 *    waits for a save in flight (brine_wait()), saves synchronously whatever
 *    options.async says, and brine_should_exit() turns 1 once the checkpoint
 *    is published.
 * It saves with brine_save_async() when options.async is set, else brine_save().
 *
 * A step is saved once: when the last save this function made (or started)
 * was of this same step, a second call with that step returns 0 whatever is
 * due; a signal then only waits for that save to be published and sets
 * brine_should_exit().  (Saves made by calling brine_save() directly do not
 * count.)  A save that failed does not count either: the next call retries.
 *
 * @return 1 when it saved (or started saving), 0 when no save was due or the
 *         step was already saved, or a negative error: BRINE_EINVAL (NULL b,
 *         step outside 0..999999999999), the error of the save (a failure of
 *         an earlier background save included), BRINE_EBUSY (options.async
 *         with BRINE_ASYNC_NOWAIT and a save still in flight: this step is
 *         not saved; the program may go on).  After an error of a
 *         signal-triggered save the signal stays pending and the next call
 *         tries again.
 */
BRINE_API int brine_maybe_save(brine *b, int64_t step);

/**
 * Makes the signals a scheduler sends before it kills a job trigger a save.
 * The handler only sets a flag (it is async-signal-safe); the next
 * brine_maybe_save() saves synchronously and brine_should_exit() then tells
 * the program to stop.  Handlers installed before are chained: they still run
 * (after brine's flag is set), unless they were SIG_DFL or SIG_IGN (a
 * default SIGTERM would end the process before the save).  brine_close()
 * puts the previous handlers back.  One context at a time may have signals
 * installed; calling this again on the same context replaces its set.  A
 * signal listed twice is installed once.  brine's handler is installed with
 * SA_RESTART and SA_SIGINFO; a chained handler is called as a function with
 * the same arguments (its own sa_mask and SA_RESETHAND/SA_NODEFER flags are
 * not reproduced).  A signal that arrived before this call is not seen.
 *
 * Slurm: `#SBATCH --signal=USR1@120` sends SIGUSR1 two minutes before the
 * time limit (`--signal=B:USR1@120` to the batch shell only).
 *
 * @param signals  the signals; NULL for SIGTERM and SIGUSR1.
 * @param n        how many (ignored when signals is NULL).
 * @return 0; BRINE_EINVAL (n < 1, a signal that cannot be caught: SIGKILL,
 *         SIGSTOP, a number that is not a signal; or another context has
 *         signals installed), and then nothing was installed; BRINE_EIO
 *         (sigaction failed).
 */
BRINE_API int brine_install_signals(brine *b, const int *signals, int n);

/**
 * 1 once a signal installed with brine_install_signals() has arrived and the
 * checkpoint it triggered is published: the program should stop cleanly
 * (brine_close(), exit 0).  Else 0 (also for NULL).  It stays 1.
 */
BRINE_API int brine_should_exit(const brine *b);

/**
 * Loads the newest checkpoint that verifies into the registered memory.
 *
 * Candidates are tried newest step first.  One verifies when HDF5's metadata
 * checksums hold, its format version is known, its step attribute agrees
 * with its name, its pickle stream matches its crc32 and decodes, every
 * registered variable is present with the registered dtype, shape and order,
 * and every chunk of every array matches its fletcher32 checksum (an array
 * stored without checksums is refused): docs/format.md, section 6.
 *
 * The checkpoint must hold exactly the registered variables: a registered
 * name missing from it, a name in it that is not registered, a different
 * dtype (unless registered with BRINE_CONVERT), shape (unless registered
 * with brine_register_resizable) or order is BRINE_EMISMATCH, and the
 * message lists every difference, each with the variable's name and both
 * dtypes and shapes.  BRINE_RESTORE_PARTIAL relaxes the names (see
 * brine_options).  Scalars compare by value: an int, float or complex
 * (Python's or numpy's) restores into any scalar dtype that holds its value's
 * kind (an integer must fit the registered integer type; a float or int
 * restores into float and complex scalars).
 *
 * Registered memory is written only once a checkpoint has verified.  (Should reading then fail,
 * e.g. an I/O error, brine falls back to the next checkpoint, which overwrites
 * every variable; only when none succeeds may memory be left partly written,
 * and the error says so.)
 *
 * @param step  receives the restored step; may be NULL.
 * @return 0; BRINE_ENOTFOUND (no checkpoint in the directory); otherwise the
 *         error of the newest candidate (BRINE_ECORRUPT, BRINE_EMISMATCH,
 *         BRINE_EVERSION, BRINE_EIO, BRINE_EHDF5, BRINE_ENOMEM) with every
 *         candidate's reason in the message; the failure of an earlier
 *         asynchronous save no call has returned yet (then nothing was
 *         restored: see brine_save_async(), which it first waits for).
 */
BRINE_API int brine_restore(brine *b, int64_t *step);

/**
 * What the last brine_restore() did not restore under BRINE_RESTORE_PARTIAL:
 * one line per difference ("variable 'x' is registered but not in the
 * checkpoint", "'y' is in the checkpoint but not registered").  "" when it
 * restored exactly the registered variables.  Owned by b; valid until the
 * next brine_restore() or brine_close().
 */
BRINE_API const char *brine_restore_report(const brine *b);

/* ------------------------------------------------------------------------ */
/* Metadata */

/**
 * User metadata written into every later checkpoint as root attributes of
 * the HDF5 file (visible in h5py, h5dump, and Python's Checkpoint.attrs):
 * program name and version, git revision, input parameters, simulation
 * time...  Setting a name again replaces its value (and type).  Strings are
 * stored as fixed-length UTF-8 (so readers never touch HDF5's unchecksummed
 * global heap); integers as 64-bit signed, doubles as 64-bit IEEE.
 *
 * @param name 1..255 bytes of UTF-8 without '/' or control characters, not
 *             starting with "brine_" and not "step" or "created" (those are
 *             brine's own: docs/format.md, 2.1).
 * @return 0; BRINE_EINVAL (bad name, value not UTF-8 or NULL, a string over
 *         1 MiB, more than 4032 names: what a reader accepts); BRINE_ENOMEM.
 */
BRINE_API int brine_set_attr_int(brine *b, const char *name, int64_t value);
/** As brine_set_attr_int(), for a double. */
BRINE_API int brine_set_attr_double(brine *b, const char *name, double value);
/** As brine_set_attr_int(), for a NUL-terminated UTF-8 string (copied). */
BRINE_API int brine_set_attr_string(brine *b, const char *name, const char *value);

/* ------------------------------------------------------------------------ */
/* Reading checkpoints without registering: inspection and sized restores */

/** Opaque handle on one open, verified checkpoint file. */
typedef struct brine_reader brine_reader;

/** What a checkpoint holds under one name (brine_reader_var, brine_find). */
typedef enum brine_var_kind {
    BRINE_VAR_ARRAY = 1,  /**< an array (ndim >= 1) */
    BRINE_VAR_SCALAR = 2, /**< a bool, int, float or complex scalar */
    BRINE_VAR_STRING = 3, /**< a str */
    BRINE_VAR_OTHER = 4   /**< a value brine cannot restore (None, a list, bytes...) */
} brine_var_kind;

/** One variable of a checkpoint. */
typedef struct brine_var_info {
    const char *name;      /**< hierarchical name; owned by the reader, valid until it is closed */
    brine_var_kind kind;
    /**
     * Element type of an array.  For a scalar, the type its value has: a
     * Python bool is BRINE_BOOL, int BRINE_I64 (BRINE_U64 above INT64_MAX),
     * float BRINE_F64, complex BRINE_C128; a numpy scalar has its own dtype.
     * -1 for strings and others.
     */
    int dtype;
    int ndim;              /**< 0 for scalars, strings and others */
    size_t shape[BRINE_MAX_NDIM]; /**< logical shape (as registered, never reversed) */
    unsigned flags;        /**< BRINE_FORTRAN_ORDER when stored in Fortran order */
    size_t nbytes;         /**< arrays: bytes of data; strings: bytes without the NUL; else 0 */
} brine_var_info;

/** Types of user metadata (brine_attr). */
typedef enum brine_attr_type {
    BRINE_ATTR_INT = 1,
    BRINE_ATTR_DOUBLE = 2,
    BRINE_ATTR_STRING = 3
} brine_attr_type;

/** One root attribute of a checkpoint. */
typedef struct brine_attr {
    const char *name;     /**< owned by the reader */
    brine_attr_type type;
    int64_t i;            /**< BRINE_ATTR_INT */
    double d;             /**< BRINE_ATTR_DOUBLE */
    const char *s;        /**< BRINE_ATTR_STRING: NUL-terminated, owned by the reader */
} brine_attr;

/** brine_reader_open() flag: verify every chunk of every array now (section 6 of docs/format.md). */
#define BRINE_READER_VERIFY 1u

/**
 * Opens one checkpoint file for reading.  Always checked: the HDF5 header
 * and metadata checksums, the format version, the step against the name
 * (when the name is <prefix>-<step>.h5), the pickle stream's CRC-32 and its
 * decoding.  With BRINE_READER_VERIFY every array's chunks are verified too;
 * without it brine_read() verifies each array before writing any of it.
 *
 * @param opts  only io, alloc and threads are used; NULL for the defaults.
 * @return 0; BRINE_EINVAL; BRINE_ENOMEM; BRINE_EIO; BRINE_ECORRUPT;
 *         BRINE_EVERSION; BRINE_EHDF5.  On failure *out is NULL and the
 *         message is brine_open_errmsg()'s.
 */
BRINE_API int brine_reader_open(brine_reader **out, const char *path, const brine_options *opts,
                                unsigned flags);

/**
 * Opens the newest checkpoint of b's directory that verifies completely
 * (BRINE_READER_VERIFY), without looking at the registered variables: for a
 * program that sizes its memory from the checkpoint (brine_find) before
 * reading into it (brine_read).  Falls back to older checkpoints as
 * brine_restore() does.
 * @param step  receives its step; may be NULL.
 * @return as brine_restore() (the message is brine_errmsg(b)'s).
 */
BRINE_API int brine_restore_begin(brine *b, brine_reader **out, int64_t *step);

/** Closes a reader (brine_restore_begin's too).  NULL is a no-op. */
BRINE_API void brine_reader_close(brine_reader *r);

/** The reader's file path, as opened. */
BRINE_API const char *brine_reader_path(const brine_reader *r);

/** The checkpoint's step. */
BRINE_API int64_t brine_reader_step(const brine_reader *r);

/** Number of variables (leaves of the state: every name but groups). */
BRINE_API size_t brine_reader_count(const brine_reader *r);

/** Describes variable i (0 .. count-1, in the stream's order).  @return 0 or BRINE_EINVAL. */
BRINE_API int brine_reader_var(const brine_reader *r, size_t i, brine_var_info *out);

/** Describes the variable name.  @return 0; BRINE_ENOTFOUND (with a message); BRINE_EINVAL. */
BRINE_API int brine_find(brine_reader *r, const char *name, brine_var_info *out);

/**
 * Reads variable name into data, which the caller sized from brine_find().
 * dtype, ndim, shape and flags describe data exactly as brine_register()
 * would (a scalar is ndim 0); the stored variable must match them (with
 * BRINE_CONVERT in flags, a convertible dtype is accepted).
 * @return 0; BRINE_ENOTFOUND; BRINE_EMISMATCH (the message names both
 *         dtypes and shapes); BRINE_ECORRUPT (the array's chunks do not
 *         verify: nothing was written); BRINE_EINVAL; BRINE_ENOMEM;
 *         BRINE_EIO; BRINE_EHDF5.
 */
BRINE_API int brine_read(brine_reader *r, const char *name, brine_dtype dtype, void *data, int ndim,
                         const size_t *shape, unsigned flags);

/**
 * Reads string variable name into buf[capacity] with its NUL.
 * @return 0; BRINE_ENOTFOUND; BRINE_EMISMATCH (not a string, or longer than
 *         capacity - 1 bytes); BRINE_EINVAL.
 */
BRINE_API int brine_read_string(brine_reader *r, const char *name, char *buf, size_t capacity);

/**
 * Number of root attributes readable as brine_attr: integer, float and
 * fixed-length string scalars (user metadata and brine's brine_host,
 * brine_threads, brine_format, step).  Variable-length strings (created,
 * brine_version) are not read: HDF5 keeps them in its unchecksummed global heap.
 */
BRINE_API size_t brine_reader_attr_count(const brine_reader *r);

/** Root attribute i (0 .. attr_count-1, in name order).  @return 0 or BRINE_EINVAL. */
BRINE_API int brine_reader_attr(const brine_reader *r, size_t i, brine_attr *out);

/** The root attribute name.  @return 0; BRINE_ENOTFOUND; BRINE_EINVAL. */
BRINE_API int brine_find_attr(brine_reader *r, const char *name, brine_attr *out);

/** The cause of the last failure of a call on r ("" when none); as brine_errmsg(). */
BRINE_API const char *brine_reader_errmsg(const brine_reader *r);

/**
 * The precise cause of the last failure of a call on b ("" when none).
 * Owned by b; valid until the next call on b.  NULL b gives a fixed text.
 */
BRINE_API const char *brine_errmsg(const brine *b);

/** A short static description of an error code ("corrupt checkpoint", ...). */
BRINE_API const char *brine_errstr(int code);

/** The library's version string, e.g. "0.1.0". */
BRINE_API const char *brine_version(void);

/** numpy's dtype string of a dtype ("<f8", "|b1", ...), or NULL when dtype is not a brine_dtype. */
BRINE_API const char *brine_dtype_str(brine_dtype dtype);

/** Size in bytes of one element of dtype, or 0 when dtype is not a brine_dtype. */
BRINE_API size_t brine_dtype_size(brine_dtype dtype);

/* ------------------------------------------------------------------------ */
/* Tools: directory listings, retention, storage, in-band pickles (issue 8,
 * used by the `brine` command; docs/cli.md) */

/** What a file of a checkpoint directory is (brine_list). */
typedef enum brine_entry_kind {
    BRINE_ENTRY_CHECKPOINT = 1, /**< a committed checkpoint, <prefix>-<12 digits>.h5 */
    BRINE_ENTRY_TEMPORARY = 2,  /**< .<prefix>-<12 digits>.h5.tmp-<pid>, or the directory
                                     .<prefix>-<12 digits>.tmp-<anything> of a multi-rank save:
                                     being written (or deleted), or left by a killed writer */
    BRINE_ENTRY_MULTIRANK = 3   /**< the directory <prefix>-<12 digits> of a multi-rank (MPI)
                                     checkpoint (docs/format.md, section 7); size is the sum of
                                     its rank-<r>.h5 files; committed only when its manifest
                                     verifies (brine_manifest_read) */
} brine_entry_kind;

/** One file of a checkpoint directory. */
typedef struct brine_entry {
    const char *path;   /**< dir/name; owned by the listing */
    const char *name;   /**< the file name; owned by the listing */
    const char *prefix; /**< its prefix; owned by the listing */
    int64_t step;       /**< the step in its name */
    brine_entry_kind kind;
    uint64_t size;      /**< bytes (stat(2)'s st_size) */
    int64_t mtime;      /**< last modification, seconds since the Epoch (stat(2)): when it was written */
} brine_entry;

/** Opaque list of the checkpoint files of a directory. */
typedef struct brine_listing brine_listing;

/**
 * Lists the checkpoints and temporary files of dir, by the naming rules of
 * docs/format.md, section 1 (other files are ignored), sorted by prefix,
 * then step, then committed before temporary.  Nothing is opened: a listed
 * checkpoint is not verified (brine_reader_open does that).
 * @param prefix  only this prefix; NULL for every prefix.
 * @param opts    only io and alloc are used; NULL for the defaults.
 * @return 0; BRINE_EINVAL; BRINE_ENOTFOUND (dir does not exist); BRINE_EIO;
 *         BRINE_ENOMEM.  On failure *out is NULL and the message is
 *         brine_open_errmsg()'s.
 */
BRINE_API int brine_list(brine_listing **out, const char *dir, const char *prefix,
                         const brine_options *opts);

/** Number of entries of a listing (0 for NULL). */
BRINE_API size_t brine_listing_count(const brine_listing *l);

/** Entry i (0 .. count-1).  @return 0 or BRINE_EINVAL. */
BRINE_API int brine_listing_entry(const brine_listing *l, size_t i, brine_entry *out);

/** Frees a listing.  NULL is a no-op. */
BRINE_API void brine_listing_free(brine_listing *l);

/** One rank's line of a multi-rank checkpoint's manifest (brine_manifest_read). */
typedef struct brine_rank_file {
    uint64_t size; /**< the size of rank-<r>.h5 in bytes, as the manifest records it */
    uint32_t crc;  /**< its CRC-32 (zlib's crc32), as the manifest records it */
} brine_rank_file;

/**
 * Reads and checks the manifest of the multi-rank checkpoint directory
 * ckptdir (<dir>/<prefix>-<12 digits>; docs/format.md, 7.2) with the
 * library's own parser: its checksum, version, the prefix and step of the
 * directory's name and the rank lines.  Rank files are not read.
 * @param step    receives the step; may be NULL.
 * @param nranks  receives the rank count.
 * @param ranks   receives the first min(cap, *nranks) rank lines; NULL when cap is 0.
 * @param opts    only io and alloc are used; NULL for the defaults.
 * @return 0; BRINE_EINVAL (NULL arguments, ckptdir's name is not
 *         <prefix>-<12 digits>); BRINE_ECORRUPT (bad or missing manifest);
 *         BRINE_EVERSION; BRINE_EIO; BRINE_ENOMEM.  The message is
 *         brine_open_errmsg()'s and names the manifest.
 */
BRINE_API int brine_manifest_read(const char *ckptdir, const brine_options *opts, int64_t *step,
                                  int *nranks, brine_rank_file *ranks, size_t cap);

/**
 * Checks rank's file of the multi-rank checkpoint ckptdir against the
 * manifest, as a restore does before trusting it: the manifest verifies
 * (brine_manifest_read), ckptdir/rank-<rank>.h5 exists and has the recorded
 * size and CRC-32.  The file itself is then verified as any checkpoint file
 * (brine_reader_open with BRINE_READER_VERIFY).
 * @param opts  only io and alloc are used; NULL for the defaults.
 * @return 0; BRINE_EINVAL (NULL, a name not <prefix>-<12 digits>, rank < 0);
 *         BRINE_ENOTFOUND (rank >= the manifest's rank count); BRINE_ECORRUPT
 *         (the manifest, a missing file, or a size or CRC-32 mismatch: the
 *         message names the file, expected vs found); BRINE_EVERSION;
 *         BRINE_EIO; BRINE_ENOMEM.  The message is brine_open_errmsg()'s.
 */
BRINE_API int brine_rank_file_check(const char *ckptdir, int rank, const brine_options *opts);

/**
 * Applies retention by hand, as a save's rotation does (docs/format.md,
 * section 1, the same code): keeps the keep_last newest checkpoints of prefix
 * in dir and, when keep_every > 0, those whose step is a multiple of it;
 * deletes the other committed checkpoints.  It never deletes the newest
 * checkpoint that verifies completely (BRINE_READER_VERIFY), even when newer
 * ones (which do not verify) take the keep_last places; when none verifies
 * it deletes nothing.  Single files and multi-rank checkpoint directories
 * (section 7) are pruned separately, each kind keeping its own newest one
 * that verifies (a directory verifies when its manifest, every rank file's
 * size and CRC-32 and every rank file do); a directory is deleted as a
 * multi-rank save's rotation does, renamed to a temporary name first.  Temporary files are left alone (a writer may be
 * writing one).  Deletions are best effort, then the directory is fsynced.
 * @param keep_last  >= 1.
 * @param deleted    receives the number of files and directories deleted; may be NULL.
 * @param opts       io, alloc and threads are used; NULL for the defaults.
 * @return 0; BRINE_EINVAL (keep_last < 1, keep_every < 0, bad prefix);
 *         BRINE_ENOTFOUND (no checkpoint of prefix in dir); BRINE_ECORRUPT
 *         (none verifies: nothing was deleted; the message gives each one's
 *         reason); BRINE_EIO; BRINE_ENOMEM.  The message is brine_open_errmsg()'s.
 */
BRINE_API int brine_prune(const char *dir, const char *prefix, int keep_last, int keep_every,
                          const brine_options *opts, size_t *deleted);

/** brine_var_storage.filters: the HDF5 filters of an array's dataset. */
#define BRINE_STORAGE_SHUFFLE 1u
#define BRINE_STORAGE_DEFLATE 2u
#define BRINE_STORAGE_FLETCHER32 4u

/** How one variable is stored in a checkpoint (brine_reader_var_storage). */
typedef struct brine_var_storage {
    int in_stream;          /**< 1: the value lives in the pickle stream (scalars, strings, in-band arrays) */
    uint64_t stored_bytes;  /**< bytes the dataset's chunks take in the file (checksums included); 0 in the stream */
    unsigned filters;       /**< BRINE_STORAGE_* bits */
    int deflate_level;      /**< the deflate filter's level as recorded (a hint: brine's codecs may differ); -1 without deflate */
    int chunk_ndim;         /**< 0 when not chunked (empty arrays, values in the stream) */
    size_t chunk[BRINE_MAX_NDIM]; /**< chunk shape, in dataset dimensions (an F array's reversed) */
} brine_var_storage;

/**
 * How variable name is stored: in the stream or as a dataset, its stored
 * bytes and filters.  Reads HDF5 metadata only, no array data.
 * @return 0; BRINE_ENOTFOUND; BRINE_EINVAL; BRINE_ECORRUPT (the dataset is
 *         missing); BRINE_EHDF5.
 */
BRINE_API int brine_reader_var_storage(brine_reader *r, const char *name, brine_var_storage *out);

/**
 * Verifies every chunk of variable name (docs/format.md, section 6, step 5),
 * as BRINE_READER_VERIFY does for all of them: chunks are read on this
 * thread and checked in OpenMP threads (brine_options.threads of the reader).
 * A variable verified once is not read again.  Values in the stream were
 * checked by brine_reader_open() and return 0 at once.
 * @return 0; BRINE_ENOTFOUND; BRINE_EINVAL; BRINE_ECORRUPT (the message
 *         names the variable and the chunk); BRINE_ENOMEM; BRINE_EIO; BRINE_EHDF5.
 */
BRINE_API int brine_reader_verify(brine_reader *r, const char *name);

/**
 * A sink for brine_export(): writes n bytes and returns 0, or a negative
 * value to stop the export: BRINE_ENOSPC and BRINE_ENOMEM are returned as
 * they are, anything else as BRINE_EIO.
 */
typedef int (*brine_write_fn)(void *ctx, const void *data, size_t n);

/**
 * Streams array variable name's bytes to write: its data exactly as
 * brine_read() with its own dtype and order would store it (row-major for C
 * order, column-major for F), in pieces of at most about 16 MiB (or one row
 * of the stored dataset's first dimension, when that is larger): for
 * arrays larger than memory.  Every chunk's checksum is checked as it is
 * decoded; a damaged chunk stops the stream with BRINE_ECORRUPT after the
 * pieces before it were written.
 * @return 0; BRINE_ENOTFOUND; BRINE_EMISMATCH (not an array); BRINE_EINVAL;
 *         BRINE_ECORRUPT; BRINE_ENOMEM; BRINE_EIO; BRINE_EHDF5; or write's
 *         non-zero return as it is.
 */
BRINE_API int brine_read_stream(brine_reader *r, const char *name, brine_write_fn write, void *ctx);

/**
 * Writes the whole checkpoint r as one standalone pickle of protocol 5
 * (docs/cli.md): the state dict with every array in-band, as
 * numpy.ndarray(shape, dtype, bytearray, 0, None, order), so that
 * pickle.load() in any Python with numpy 1.x or 2.x reads it, without h5py
 * or brine.  Scalars become Python bool, int, float or complex; strings str.
 * Arrays are streamed (brine_read_stream): memory holds one slab of about
 * 16 MiB, never a whole array.  Every chunk is verified as it is read; on an
 * error the sink has received part of the pickle (write to a temporary file
 * and rename it when this returns 0).  Nothing is written to r's file.
 * @return 0; BRINE_EINVAL (NULL arguments; a variable brine cannot export, a
 *         value of kind BRINE_VAR_OTHER: the message names it); the errors
 *         of brine_read(); the sink's error.  The message is brine_reader_errmsg(r)'s.
 */
BRINE_API int brine_export(brine_reader *r, brine_write_fn write, void *ctx);

/**
 * Serialises the registered state into one standalone protocol-5 pickle in
 * memory, every array in-band (as brine_export()), which pickle.loads() in a
 * Python with numpy reads directly: for sending a running simulation's state
 * to a Python process over a socket or pipe (apps/live).  Reads the
 * registered memory as brine_save() does; writes no file.
 * @param out  receives the bytes, allocated through options.alloc: free them
 *             with brine_dumps_free(b, *out).
 * @return 0; BRINE_EINVAL (NULL arguments, a string not valid UTF-8 or not
 *         terminated, a resizable array with NULL data); BRINE_ENOMEM.
 */
BRINE_API int brine_dumps(brine *b, uint8_t **out, size_t *len);

/** Frees what brine_dumps() returned.  NULL is a no-op. */
BRINE_API void brine_dumps_free(brine *b, uint8_t *buf);

#ifdef __cplusplus
}
#endif

#endif /* BRINE_H */
