/* wpool: bounded channels with Go's semantics.
 *
 * A channel carries fixed-size items (copied in and out with memcpy) between
 * any number of senders and receivers, first in first out.
 *   - send blocks while the channel is full, receive while it is empty;
 *   - wp_chan_close() wakes every waiter; receives then drain what is left and
 *     afterwards return WP_ECLOSED; sends return WP_ECLOSED at once (where Go
 *     panics);
 *   - try-forms return WP_EAGAIN instead of blocking;
 *   - a blocking wait takes a context and returns its error (WP_ECANCELED or
 *     WP_ETIMEDOUT) as soon as the context ends, with no polling.
 * Capacity is at least 1: this is Go's buffered channel; unbuffered
 * (rendezvous) channels are not provided.
 *
 * Event loops: wp_chan_fd() gives a descriptor that is readable exactly while
 * a receive would not block (an item is there, or the channel is closed), so
 * a loop can poll it beside its sockets and then call wp_chan_try_recv().
 *
 * Priorities, so that results are deterministic: a send first checks closed,
 * then space, then the context; a receive first checks items, then closed,
 * then the context. A wait that ends with an error leaves the item with the
 * caller (send) or the channel unchanged (receive).
 *
 * Thread safety: every function is thread-safe, except wp_chan_destroy(),
 * which must not run concurrently with any other call on the channel.
 * Memory: capacity * (item_size + 8) bytes (rounded up to 8 per item),
 * allocated once at creation.
 */
#ifndef WPOOL_CHAN_H
#define WPOOL_CHAN_H

#include <stddef.h>

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_chan wp_chan;

/* Creates a channel of capacity items of item_size bytes each. Returns 0 and
 * stores it in *out, or WP_EINVAL (a size is 0 or their product overflows) /
 * WP_ENOMEM with *out = NULL. */
int wp_chan_create(size_t item_size, size_t capacity, wp_chan **out);

/* Frees the channel and whatever items are still in it (items are plain
 * bytes; anything they point to stays the caller's). NULL is a no-op. No
 * thread may be using or waiting on the channel. */
void wp_chan_destroy(wp_chan *c);

/* Copies item in, waiting while the channel is full. ctx bounds the wait
 * (NULL: wait as long as it takes). Returns 0, WP_ECLOSED, or the context's
 * error; on error nothing was sent. */
int wp_chan_send(wp_chan *c, const void *item, wp_ctx *ctx);

/* Copies the oldest item out into item, waiting while the channel is empty
 * and open. Returns 0, WP_ECLOSED (closed and drained), or the context's
 * error. */
int wp_chan_recv(wp_chan *c, void *item, wp_ctx *ctx);

/* Non-blocking forms: WP_EAGAIN where the blocking form would wait. */
int wp_chan_try_send(wp_chan *c, const void *item);
int wp_chan_try_recv(wp_chan *c, void *item);

/* Closes the channel: returns 0 the first time, WP_ECLOSED afterwards (Go
 * panics on a second close). Wakes every waiting sender and receiver. */
int wp_chan_close(wp_chan *c);

/* Number of items in the channel now, and its capacity. */
size_t wp_chan_len(wp_chan *c);
size_t wp_chan_cap(const wp_chan *c);

/* Stores in *fd a descriptor, owned by the channel, that is readable exactly
 * while wp_chan_try_recv() would not return WP_EAGAIN. Created on first use;
 * from then on each empty/non-empty transition costs one system call.
 * Returns 0 or WP_ESYSTEM. Do not read or write the descriptor yourself. */
int wp_chan_fd(wp_chan *c, int *fd);

#ifdef __cplusplus
}
#endif
#endif
