/* The /metrics endpoint of the wpool tool: a libmicrohttpd daemon on its own
 * thread that renders a registry on each GET /metrics.
 * Thread safety: start and stop from one thread; the daemon's thread only
 * reads the registry (whose own mutex guards the render). */
#ifndef WPOOL_OBS_SERVE_H
#define WPOOL_OBS_SERVE_H

#include <stddef.h>
#include <sys/socket.h>

#include "wpool/metrics.h"

/* Parses a listen address: "PORT" (binds 127.0.0.1: a bare port stays on
 * loopback), "HOST:PORT" with HOST an IPv4 literal or "localhost", or
 * "[IPv6]:PORT". PORT is 0 to 65535 (0: the kernel picks one). Any other
 * interface than loopback must be named explicitly ("0.0.0.0:9464"); an
 * empty host (":9464") is refused. Returns 0 and fills *ss and *len, or -1
 * with a message in err. Pure: no I/O, no globals. */
int wp__parse_listen_addr(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len, char *err, size_t errlen);

typedef struct wp__metrics_server wp__metrics_server;

/* Starts serving m at addr (see above): GET or HEAD /metrics answers the
 * rendered text, anything else 404 (or 405 for another method). Returns 0
 * with the address actually bound ("127.0.0.1:41234") in bound, or -1 with
 * a message in err. */
int wp__metrics_serve(wp_metrics *m, const char *addr, wp__metrics_server **out,
                      char *bound, size_t boundlen, char *err, size_t errlen);

/* Stops the daemon (a scrape in progress completes first) and frees it.
 * NULL is a no-op. */
void wp__metrics_server_stop(wp__metrics_server *s);

#endif
