/* wpool: cancellation contexts, after Go's context package.
 *
 * A context is a node in a tree. It ends once, either canceled
 * (wp_ctx_err() == WP_ECANCELED) or because its deadline passed
 * (WP_ETIMEDOUT). When a context ends, all its descendants end with the same
 * error; its ancestors are never touched.
 *
 * Being told when a context ends, without polling:
 *   - wp_ctx_on_done() registers a callback (caller-embedded wp_ctx_hook);
 *   - wp_ctx_fd() gives a descriptor that becomes readable when it ends;
 *   - wp_ctx_wait() blocks until it ends.
 * Deadlines fire by themselves: a timer thread of the library cancels a
 * context when its deadline passes. That thread exists only while at least one
 * context with a pending deadline exists, and it is the library's only
 * process-wide state (plus the immutable background context).
 *
 * Time is CLOCK_MONOTONIC in nanoseconds (wp_now_ns()).
 *
 * Thread safety: every function here is thread-safe, unless marked otherwise.
 * Lifetime: contexts are reference-counted. Each constructor returns one
 * reference, which the caller gives back with wp_ctx_release(). A child holds
 * a reference on its parent, so a parent may be released before its children.
 */
#ifndef WPOOL_CTX_H
#define WPOOL_CTX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_ctx wp_ctx;

/* The root context: never ends, has no deadline, needs no release (releasing
 * or referencing it is a no-op). Never NULL. */
wp_ctx *wp_ctx_background(void);

/* Creates a child of parent (NULL means background) that ends when
 * wp_ctx_cancel() is called on it or when parent ends. If parent has already
 * ended, the child starts ended with parent's error.
 * Returns 0 and stores the new context in *out (one reference, the caller's),
 * or WP_EINVAL / WP_ENOMEM and stores NULL. */
int wp_ctx_with_cancel(wp_ctx *parent, wp_ctx **out);

/* Like wp_ctx_with_cancel(), and also ends with WP_ETIMEDOUT at the absolute
 * time deadline_ns (wp_now_ns() clock). A deadline in the past gives a context
 * that has already ended. The child's effective deadline is the earlier of
 * its own and its parent's. WP_ESYSTEM if the timer thread cannot start. */
int wp_ctx_with_deadline(wp_ctx *parent, int64_t deadline_ns, wp_ctx **out);

/* wp_ctx_with_deadline(parent, wp_now_ns() + timeout_ns, out), saturating. */
int wp_ctx_with_timeout(wp_ctx *parent, int64_t timeout_ns, wp_ctx **out);

/* Ends ctx and all its descendants with WP_ECANCELED, unless it has already
 * ended (then nothing changes). Done-callbacks run on the calling thread
 * before this returns. If another thread ended ctx first, this returns at
 * once, possibly before that thread has run the callbacks. Calling it on
 * background does nothing. */
void wp_ctx_cancel(wp_ctx *ctx);

/* 0 while ctx runs; WP_ECANCELED or WP_ETIMEDOUT once it has ended. Lock-free
 * (one atomic load): cheap enough to poll in a hot loop. */
int wp_ctx_err(const wp_ctx *ctx);

/* The effective deadline (wp_now_ns() clock), or INT64_MAX if none. */
int64_t wp_ctx_deadline(const wp_ctx *ctx);

/* Adds a reference and returns ctx. */
wp_ctx *wp_ctx_ref(wp_ctx *ctx);

/* Gives back one reference; the last one frees ctx (it does not cancel its
 * children, which keep their own references). NULL is a no-op. */
void wp_ctx_release(wp_ctx *ctx);

/* Blocks until ctx ends or, if deadline_ns is not INT64_MAX, until that time.
 * Returns wp_ctx_err(ctx) if it ended, WP_EAGAIN if deadline_ns came first.
 * It returns once the error is set, which may be before the done-callbacks
 * have run. */
int wp_ctx_wait(wp_ctx *ctx, int64_t deadline_ns);

/* A descriptor, owned by ctx and valid until its last release, that becomes
 * readable (and stays readable) once ctx ends: for poll(), epoll or
 * curl_multi_poll(). Created on first call; do not read or close it.
 * WP_ESYSTEM if it cannot be made; WP_EINVAL for background, which never
 * ends. */
int wp_ctx_fd(wp_ctx *ctx, int *fd);

/* Done-callbacks.
 *
 * cb runs exactly once when ctx ends, unless the hook is removed first. It runs
 * on the thread that ends the context (the one calling wp_ctx_cancel() on it
 * or an ancestor, or the library's timer thread for a deadline), with no lock
 * of the library held. It may call back into the library (cancel other
 * contexts, wp_ctx_hook_remove() on its own hook) but must not block for long:
 * deadlines of other contexts wait for it. */
typedef void (*wp_ctx_done_cb)(void *arg);

/* Caller-embedded; the fields are private. Initialize with wp_ctx_on_done(). */
typedef struct wp_ctx_hook {
  struct wp_ctx_hook *next_, *prev_;
  struct wp_ctx *ctx_;
  wp_ctx_done_cb cb_;
  void *arg_;
  int state_;
} wp_ctx_hook;

/* Registers hook so that cb(arg) runs when ctx ends. Returns 0 if registered.
 * If ctx has already ended, registers nothing, does not call cb, and returns
 * wp_ctx_err(ctx). On background, registers nothing and returns 0 (it never
 * ends; wp_ctx_hook_remove() then returns 0 too). hook must stay valid until
 * wp_ctx_hook_remove() has returned; the hook holds a reference on ctx. */
int wp_ctx_on_done(wp_ctx *ctx, wp_ctx_hook *hook, wp_ctx_done_cb cb,
                   void *arg);

/* Unregisters hook. Returns 0 if cb had not started and now never will, 1 if
 * cb has run (when this is called from another thread while cb runs, it waits
 * for cb to return first). From inside cb itself it returns 1 at once. After
 * it returns, hook may be freed. Safe on a hook that wp_ctx_on_done() refused
 * (returns 1) */
int wp_ctx_hook_remove(wp_ctx_hook *hook);

/* The CLOCK_MONOTONIC time in nanoseconds. */
int64_t wp_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
