/*
 * A collective group of one member, without MPI: lets any build run
 * lib/core/coll.c's protocol (layout, manifest, rotation of directories)
 * through brine_coll__attach (tests/mpi/test_coll_solo.c,
 * tests/cli/test_multirank_api.c).
 */
#ifndef BRINE_TEST_SOLO_GROUP_H
#define BRINE_TEST_SOLO_GROUP_H

#include "core/coll.h"

/* The group's operations; every call's table is the same. */
const brine_coll *tu_solo_group(void);

/* How many times a solo group was closed (reset it before counting). */
extern int tu_solo_closed;

#endif
