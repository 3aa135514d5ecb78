/* The /metrics endpoint: see serve.h. */
#include "obs/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/parse.h" /* wp__parse_uint */

struct wp__metrics_server {
  struct MHD_Daemon *d;
  wp_metrics *m;
};

int wp__parse_listen_addr(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len, char *err, size_t errlen) {
  memset(ss, 0, sizeof *ss);
  uint64_t port;
  char host[64];
  const char *ps;
  if (!s || !*s) {
    snprintf(err, errlen, "an address is needed, like 9464 or 127.0.0.1:9464");
    return -1;
  }
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
      goto bad;
    memcpy(host, s + 1, (size_t)(close - s - 1));
    host[close - s - 1] = '\0';
    ps = close + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon) {
      snprintf(host, sizeof host, "127.0.0.1"); /* a bare port: loopback */
      ps = s;
    } else {
      if (colon == s) {
        snprintf(err, errlen,
                 "'%s': name the interface to listen on (127.0.0.1:PORT, "
                 "0.0.0.0:PORT for every interface)",
                 s);
        return -1;
      }
      if ((size_t)(colon - s) >= sizeof host ||
          memchr(s, ':', (size_t)(colon - s)))
        goto bad;
      memcpy(host, s, (size_t)(colon - s));
      host[colon - s] = '\0';
      ps = colon + 1;
    }
  }
  if (wp__parse_uint(ps, 0, 65535, &port) != 0) goto bad;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (s[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
  }
  if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return 0;
  }
bad:
  snprintf(err, errlen,
           "'%s': expected PORT, HOST:PORT (an IPv4 address or localhost) or "
           "[IPv6]:PORT",
           s);
  return -1;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status,
                               const char *type, char *body, size_t len,
                               enum MHD_ResponseMemoryMode mode) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
  if (!r) {
    if (mode == MHD_RESPMEM_MUST_FREE) free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  wp__metrics_server *s = cls;
  static char not_found[] = "not found: the metrics are at /metrics\n";
  static char no_method[] = "only GET and HEAD\n";
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", no_method,
                   strlen(no_method), MHD_RESPMEM_PERSISTENT);
  if (strcmp(url, "/metrics") != 0)
    return respond(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
                   strlen(not_found), MHD_RESPMEM_PERSISTENT);
  char *text;
  size_t len;
  if (wp_metrics_render(s->m, &text, &len) != 0) return MHD_NO;
  return respond(c, MHD_HTTP_OK, WP_METRICS_CONTENT_TYPE, text, len,
                 MHD_RESPMEM_MUST_FREE);
}

int wp__metrics_serve(wp_metrics *m, const char *addr, wp__metrics_server **out,
                      char *bound, size_t boundlen, char *err, size_t errlen) {
  *out = NULL;
  struct sockaddr_storage ss;
  socklen_t sl;
  if (wp__parse_listen_addr(addr, &ss, &sl, err, errlen) != 0) return -1;
  wp__metrics_server *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->m = m;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  /* The server's thread blocks signals: only the CLI's controller takes
   * them. It inherits this thread's mask, and `wpool fetch` starts the
   * server before it blocks its own: a SIGINT or SIGTERM the kernel gave to
   * that thread would kill the process (no drain, no results written). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  errno = 0;
  s->d =
      MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR,
                       (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
                       MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!s->d) {
    char eb[64] = "";
    if (e && strerror_r(e, eb, sizeof eb) != 0) eb[0] = '\0';
    snprintf(err, errlen, "cannot listen on %s%s%s", addr, eb[0] ? ": " : "",
             eb);
    free(s);
    return -1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = info ? info->port : 0;
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
              sizeof host);
    snprintf(bound, boundlen, "%s:%u", host, port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
              sizeof host);
    snprintf(bound, boundlen, "[%s]:%u", host, port);
  }
  *out = s;
  return 0;
}

void wp__metrics_server_stop(wp__metrics_server *s) {
  if (!s) return;
  MHD_stop_daemon(s->d);
  free(s);
}
