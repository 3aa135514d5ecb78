/* wpool: error codes.
 *
 * Every function of the library that can fail returns an int: 0 on success, a
 * negative WP_E* code on failure. The codes are append-only: a code is never
 * renumbered or reused. wp_strerror() gives the message for each.
 *
 * Thread safety: everything here is thread-safe.
 */
#ifndef WPOOL_ERROR_H
#define WPOOL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
  WP_OK = 0,
  WP_EINVAL = -1,    /* an argument is out of range or NULL */
  WP_ENOMEM = -2,    /* out of memory */
  WP_ECLOSED = -3,   /* the channel or pool is closed (Go: send on closed) */
  WP_EAGAIN = -4,    /* would block: try-send full, try-recv empty */
  WP_ECANCELED = -5, /* the context was canceled (Go: context.Canceled) */
  WP_ETIMEDOUT = -6, /* the deadline passed (Go: DeadlineExceeded) */
  WP_ESYSTEM = -7,   /* a system call failed (threads, descriptors) */
  WP_EBUSY = -8,     /* the object is in use by another operation */
  WP_ESTATE = -9     /* not allowed in the object's current state */
  /* Append new codes here; never renumber. Update WP__ERR_COUNT. */
};

/* Returns a static, NUL-terminated message for code (0, a WP_E* code, or
 * anything else, for which it returns "unknown error"). Never NULL. */
const char *wp_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
