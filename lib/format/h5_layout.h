/*
 * The HDF5 side of a checkpoint file (docs/format.md, section 2): creating
 * the file, its attributes, the array datasets (chunks compressed by brine in
 * OpenMP threads, written by this thread with H5Dwrite_chunk) and the pickle
 * dataset; and, for restore, opening a file, reading the stream, checking
 * datasets against what the stream says, verifying and decoding chunks.
 *
 * Every HDF5 call of the library is made here, from the calling thread only:
 * Debian's HDF5 is thread-safe through one global lock, so HDF5 calls never
 * run in parallel; only chunk coding does.  The file-access property list
 * (which virtual file driver does the I/O) is the caller's.
 */
#ifndef BRINE_FORMAT_H5_LAYOUT_H
#define BRINE_FORMAT_H5_LAYOUT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "chunk_codec.h"

/** Saved state of HDF5's automatic error printing, silenced inside brine calls. */
typedef struct brine_h5_quiet {
    H5E_auto2_t func;
    void *data;
} brine_h5_quiet;

/** Silences HDF5's error printing for this thread until brine_h5__quiet_end(). */
void brine_h5__quiet_begin(brine_h5_quiet *q);
/** Restores what brine_h5__quiet_begin() saved. */
void brine_h5__quiet_end(const brine_h5_quiet *q);

/** How arrays are written. */
typedef struct brine_h5_write_opts {
    brine_chunk_codec codec; /**< resolved codec and level */
    int threads;             /**< OpenMP threads for chunk coding; 0 = OpenMP's default */
} brine_h5_write_opts;

typedef struct brine_h5_writer brine_h5_writer;

/**
 * Creates (truncating) the checkpoint file path through fapl and writes
 * brine's root attributes: brine_format, brine_version, step, created,
 * brine_host and brine_threads (the threads chunk coding uses: opts->threads,
 * or OpenMP's default when 0).  @return 0, BRINE_ENOMEM or BRINE_EHDF5.
 */
int brine_h5__create(brine_h5_writer **out, const char *path, hid_t fapl, int64_t step,
                     const brine_h5_write_opts *opts, const brine_allocator *a, brine_error *err);

/**
 * Writes one array dataset at /state/<name>.  dims are the dataset
 * dimensions (an F array's shape reversed); order is 'C' or 'F' (the
 * attribute).  Empty arrays (a zero in dims) become contiguous datasets with
 * no data.  @return 0, BRINE_ENOMEM or BRINE_EHDF5.
 */
int brine_h5__write_array(brine_h5_writer *w, const char *name, int dtype, char order, int ndim,
                          const uint64_t *dims, const void *data, brine_error *err);

/**
 * Writes /brine/pickle with its attributes buffers (nbuffers dataset paths)
 * and crc32.  @return 0, BRINE_ENOMEM or BRINE_EHDF5.
 */
int brine_h5__write_pickle(brine_h5_writer *w, const uint8_t *stream, size_t len,
                           const char *const *buffers, size_t nbuffers, brine_error *err);

/* ---------------------------------------------------------------- root attributes */

/** Most root attributes brine_h5__read_attrs() accepts in one file (more: BRINE_ECORRUPT). */
#define BRINE_H5_ATTRS_MAX 4096

/** Most user attributes a context may hold: BRINE_H5_ATTRS_MAX less room for brine's own. */
#define BRINE_H5_USER_ATTRS_MAX (BRINE_H5_ATTRS_MAX - 64)

/**
 * Longest string attribute value, in bytes, that brine writes, and that
 * brine_h5__read_attrs() reads (a longer one is BRINE_ECORRUPT).
 */
#define BRINE_H5_ATTR_STRING_MAX ((size_t)1 << 20)

/** One user metadata attribute: set by brine_set_attr_*, written and read here. */
typedef struct brine_attr_val {
    char *name;           /**< owned */
    brine_attr_type type;
    int64_t i;            /**< BRINE_ATTR_INT */
    double d;             /**< BRINE_ATTR_DOUBLE */
    char *s;              /**< BRINE_ATTR_STRING, owned */
} brine_attr_val;

/**
 * Writes user metadata as root attributes (docs/format.md, 2.1): integers as
 * H5T_STD_I64LE, doubles as H5T_IEEE_F64LE, strings as fixed-length UTF-8,
 * NULLPAD, of the string's byte length (1 for the empty string), all scalar.
 * The names are valid (checked by brine_set_attr_*) and not brine's own.
 * @return 0 or BRINE_EHDF5 (the message names the attribute).
 */
int brine_h5__write_user_attrs(brine_h5_writer *w, const brine_attr_val *attrs, size_t n,
                               brine_error *err);

/**
 * Flushes and closes the file (the driver fsyncs it as it closes) and frees w.
 * The driver may record a failure of the final writes or of the fsync in
 * its status without H5Fclose failing: the caller must check it.
 * @return 0 or BRINE_EHDF5.  w is freed either way.
 */
int brine_h5__finish(brine_h5_writer *w, brine_error *err);

/** Closes and frees w after a failure, ignoring errors.  NULL is a no-op. */
void brine_h5__abandon(brine_h5_writer *w);

typedef struct brine_h5_reader brine_h5_reader;

/** Bytes of a file's start that brine_h5__check_header needs. */
#define BRINE_H5_HEADER_BYTES 9

/**
 * Checks, before HDF5 parses anything, that a file starts with the HDF5
 * signature and a superblock of version 2 or later: only those formats
 * checksum their metadata, and HDF5 1.10 can overrun its buffers on damaged
 * metadata it cannot check.  head holds the file's first n bytes.
 * @return 0, or BRINE_ECORRUPT with the reason in why.
 */
int brine_h5__check_header(const uint8_t *head, size_t n, char *why, size_t whylen);

/**
 * Opens a checkpoint read-only, checks brine_format and reads step.
 * @return 0; BRINE_EVERSION (newer format); BRINE_ECORRUPT (not a brine
 *         checkpoint: attribute missing or of the wrong type); BRINE_EHDF5
 *         (HDF5 cannot open it); BRINE_ENOMEM.
 */
int brine_h5__open(brine_h5_reader **out, const char *path, hid_t fapl, int threads,
                   const brine_allocator *a, brine_error *err);

/** The file's step attribute. */
int64_t brine_h5__step(const brine_h5_reader *r);

/**
 * Reads /brine/pickle, checks its crc32 and counts the entries of its
 * buffers attribute (their text is not read: each array lives at
 * /state/<name>).  The stream stays owned by r (valid until brine_h5__close).
 * @return 0, BRINE_ECORRUPT, BRINE_ENOMEM or BRINE_EHDF5.
 */
int brine_h5__read_pickle(brine_h5_reader *r, const uint8_t **stream, size_t *len,
                          size_t *nbuffers, brine_error *err);

/**
 * Checks that dataset path holds an array of dtype with the given dataset
 * dims, and that its storage is something brine can verify: chunked with
 * fletcher32 among the filters shuffle/deflate/fletcher32 (in that order),
 * unless it is empty; then reads every chunk and checks its fletcher32 and
 * that its filter mask skips nothing but deflate.  Nothing is written
 * anywhere.  order is not checked against the order attribute (the
 * stream's, under its CRC, is authoritative).  name is used in messages.
 * @return 0, BRINE_ECORRUPT, BRINE_ENOMEM or BRINE_EHDF5.
 */
int brine_h5__verify_array(brine_h5_reader *r, const char *path, const char *name, int dtype,
                           char order, int ndim, const uint64_t *dims, brine_error *err);

/**
 * Decodes dataset path (verified before with the same arguments) into mem
 * (row-major over dims, i.e. the variable's memory): chunks are read on this
 * thread and decoded in OpenMP threads straight into mem.
 * @return 0, BRINE_ECORRUPT, BRINE_ENOMEM or BRINE_EHDF5; mem may be
 *         partly written on failure.
 */
int brine_h5__read_array(brine_h5_reader *r, const char *path, const char *name, int dtype,
                         char order, int ndim, const uint64_t *dims, void *mem, brine_error *err);

/**
 * Decodes dataset path (as brine_h5__read_array, same arguments) a slab at a
 * time and hands each slab's bytes to write, in order: slabs are whole rows
 * of chunks along the first dimension, as many as fit in slab_bytes (at
 * least one chunk row).  Every chunk's checksum is checked as it is
 * decoded.  Memory: one slab and the pipeline's buffers.
 * @return 0, BRINE_ECORRUPT, BRINE_ENOMEM, BRINE_EHDF5, or write's non-zero
 *         return (whose message is write's to set).
 */
int brine_h5__read_stream(brine_h5_reader *r, const char *path, const char *name, int dtype,
                          char order, int ndim, const uint64_t *dims, size_t slab_bytes,
                          int (*write)(void *ctx, const void *data, size_t n), void *ctx,
                          brine_error *err);

/**
 * Lists the root attributes readable as brine_attr, sorted by name (strcmp):
 * scalars of an integer type of at most 8 bytes (as int64; an unsigned value
 * above INT64_MAX is skipped), of a float type (as double), or of a
 * fixed-length string type (the bytes before the first NUL, which must be
 * valid UTF-8, else it is skipped).  Variable-length strings are never read
 * (HDF5 keeps them in its global heap, which no checksum covers and which
 * HDF5 1.10 crashes on when it is damaged); attributes of any other type or
 * dataspace, and attributes whose name is not valid UTF-8, are skipped.
 *
 * *out is allocated with r's allocator, each name and string owned by it:
 * free it with brine_h5__free_attrs().  NULL when *n is 0, and on failure.
 * @return 0; BRINE_ECORRUPT (more than BRINE_H5_ATTRS_MAX attributes, a
 *         string longer than BRINE_H5_ATTR_STRING_MAX bytes, two attributes
 *         of one name, an attribute HDF5 cannot read); BRINE_ENOMEM;
 *         BRINE_EHDF5.
 */
int brine_h5__read_attrs(brine_h5_reader *r, brine_attr_val **out, size_t *n, brine_error *err);

/** Frees what brine_h5__read_attrs() returned: n attributes at v (NULL v is a no-op). */
void brine_h5__free_attrs(const brine_allocator *a, brine_attr_val *v, size_t n);

/** A pipeline filter brine does not decode (brine_h5_storage.filters). */
#define BRINE_FILTER_OTHER 0x8u

/** How a dataset is stored (brine_reader_var_storage). */
typedef struct brine_h5_storage {
    uint64_t stored_bytes; /**< H5Dget_storage_size */
    unsigned filters;      /**< BRINE_FILTER_* bits of its pipeline */
    int deflate_level;     /**< the deflate filter's client value; -1 without deflate */
    int chunk_ndim;        /**< 0 when not chunked */
    uint64_t chunk[BRINE_MAX_NDIM];
} brine_h5_storage;

/**
 * Describes dataset path's storage from its metadata, reading no data.
 * name is used in messages.  @return 0, BRINE_ECORRUPT (missing, bad chunk
 * shape) or BRINE_EHDF5.
 */
int brine_h5__storage(brine_h5_reader *r, const char *path, const char *name,
                      brine_h5_storage *out, brine_error *err);

/** Closes the file and frees r.  NULL is a no-op. */
void brine_h5__close(brine_h5_reader *r);

#endif
