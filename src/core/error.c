/* The one table of error messages. Append-only, like the codes. */
#include "wpool/error.h"

static const char *const messages[] = {
    "success",                             /* WP_OK */
    "invalid argument",                    /* WP_EINVAL */
    "out of memory",                       /* WP_ENOMEM */
    "closed",                              /* WP_ECLOSED */
    "resource temporarily unavailable",    /* WP_EAGAIN */
    "canceled",                            /* WP_ECANCELED */
    "deadline exceeded",                   /* WP_ETIMEDOUT */
    "system call failed",                  /* WP_ESYSTEM */
    "busy",                                /* WP_EBUSY */
    "operation not allowed in this state", /* WP_ESTATE */
};

const char *wp_strerror(int code) {
  if (code > 0 || -code >= (int)(sizeof messages / sizeof messages[0]))
    return "unknown error";
  return messages[-code];
}
