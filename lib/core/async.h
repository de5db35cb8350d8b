/*
 * Asynchronous saves (async.c): the state of a context's background save
 * thread, and the steps other modules take around it.  Every function here
 * is called on the caller's thread, the one using b.
 */
#ifndef BRINE_CORE_ASYNC_H
#define BRINE_CORE_ASYNC_H

#include "core.h"

/**
 * Settles b's asynchronous save before the caller does anything else with
 * b that makes HDF5 calls (a save, a restore): waits until the save in
 * flight, if any, is published or has failed, then returns the failure of a
 * background save no call has returned yet (its message copied into b->err;
 * it is reported once only).
 * @param nowait  return BRINE_EBUSY at once, with a message, rather than
 *                wait while a save is in flight (BRINE_ASYNC_NOWAIT).
 * @return 0, BRINE_EBUSY, or the background save's error.
 */
int brine_async__settle(brine *b, int nowait);

/**
 * The failure of a finished background save not reported yet (copied into
 * b->err, now reported), without waiting: 0 when none, and while a save is
 * still in flight.  For calls that report failures without needing the
 * save to be over (brine_maybe_save when no save is due).
 */
int brine_async__poll(brine *b);

/**
 * brine_close's part: waits for the save in flight, stops and joins the
 * background thread, frees the staging memory.  Returns the failure of a
 * background save no call has returned (its message in
 * brine_context__open_error(): the context is going away) or 0.
 */
int brine_async__close(brine *b);

#endif
