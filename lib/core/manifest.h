/*
 * Multi-rank checkpoint directories (docs/format.md, section 7), shared by
 * the collective save and restore (coll.c) and by the tools that look at a
 * run from outside (listing.c: brine_list, brine_prune, the manifest calls):
 * their names, the manifest's parser, deletion and rotation of whole
 * directories.  One implementation, so that a tool never accepts a
 * checkpoint the library would not restore, nor deletes one differently.
 */
#ifndef BRINE_CORE_MANIFEST_H
#define BRINE_CORE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../io/io.h"
#include "brine.h"

#define BRINE_MANIFEST_MAGIC "brine-manifest 1\n"

/* A committed checkpoint directory's name, "<prefix>-<12 digits>": 1 (and *step) or 0. */
int brine_mdir__is_final(const char *name, const char *prefix, int64_t *step);

/* A temporary checkpoint directory's name, ".<prefix>-<12 digits>.tmp-<anything>": 1 or 0. */
int brine_mdir__is_temp(const char *name, const char *prefix);

/* The steps of the directories of final form of prefix in dir, newest first (*out through a, may be NULL). */
int brine_mdir__list_steps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                           const char *prefix, int64_t **out, size_t *n, brine_error *err);

/* Removes the directory path and the files in it.  Best effort (cleanup). */
void brine_mdir__remove_tree(const brine_io_methods *io, const brine_allocator *a, const char *path);

/* Removes the temporary checkpoint directories of prefix in dir (leftovers of killed saves). */
void brine_mdir__remove_temps(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                              const char *prefix);

/*
 * Deletes the committed checkpoint directory of step: renamed to a temporary
 * name (".<prefix>-<step>.tmp-<why><pid>") first and the rename made
 * durable, so that a crash half way through the deletion never leaves a
 * directory that looks committed.  0, or -1 when it could not be renamed.
 */
int brine_mdir__delete(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int64_t step, const char *why);

/*
 * Rotation of whole checkpoint directories, as brine_scan__rotate_every does
 * for files: keeps the keep_last newest (multiples of keep_every > 0 stay and
 * do not count) and keep_step.  keep_last <= 0 keeps all.  Best effort.
 * @return the number deleted, or a negative brine code when dir cannot be listed.
 */
int brine_mdir__rotate(const brine_io_methods *io, const brine_allocator *a, const char *dir,
                       const char *prefix, int keep_last, int keep_every, int64_t keep_step,
                       brine_error *err);

/* Called for each rank line of a manifest, in rank order; non-zero stops the parse and is returned. */
typedef int (*brine_manifest_fn)(void *ctx, int rank, uint64_t size, uint32_t crc);

/*
 * Reads and checks the manifest of the checkpoint directory cdir as
 * docs/format.md 7.2 says, in its order: checksum line and CRC (else
 * BRINE_ECORRUPT), version (BRINE_EVERSION), prefix and step equal to the
 * given ones, exactly nranks rank lines in order (BRINE_ECORRUPT).  each
 * (may be NULL) sees every rank line; *nranks gets the count.
 * @return 0 or a brine code with the message (naming the manifest) in err.
 */
int brine_manifest__read(const brine_io_methods *io, const brine_allocator *a, const char *cdir,
                         const char *prefix, int64_t step, brine_manifest_fn each, void *ctx,
                         int *nranks, brine_error *err);

#endif
