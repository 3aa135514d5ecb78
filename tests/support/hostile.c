/* The test server's hostile routes: a raw-socket HTTP/1.x listener on
 * 127.0.0.1 (a port of its own), for the misbehaving servers that
 * libmicrohttpd will not play (it is too correct). Started by
 * wpool-testserver, which gives its ports at GET /hostile as
 * "port=N silent_port=M".
 *
 * Routes on `port` (GET; the request head is read, then):
 *   /endless        200, no length, a body that never ends
 *   /drip           200, Content-Length 1000, one byte per second
 *   /gzip-bomb      200, Content-Encoding: gzip, 1 GiB of zeros deflated
 *                   to ~6.5 MB (valid gzip); Content-Length of the wire
 *   /huge-headers   200 with 100 MB of headers (1 KB each), then "ok"
 *   /bad-status     a status line that is not HTTP ("SPDY/9 banana")
 *   /bad-code       "HTTP/1.1 abc Weird" (no number)
 *   /http10-close   HTTP/1.0 200, no length, 5000 bytes, then close
 *   /reset-mid-body 200, Content-Length 100000, 5000 bytes, then an RST
 *   /keepalive-close 200, Content-Length 2, "ok", kept alive (no
 *                   Connection: close), then closed at once: what a
 *                   server's idle timeout does to a pooled connection
 *   anything else   404
 * `silent_port` accepts connections and never reads nor writes a byte:
 * the client's request sits in the socket buffer until it gives up.
 *
 * Threads: one listener thread (poll on both listening sockets and a stop
 * pipe) and one thread per connection, at most MAX_CONN at once (further
 * connections are closed at once). hostile_stop() wakes every connection
 * (shutdown(2) on its socket, a broadcast for /drip's waits) and joins
 * every thread. Lock: mu guards the connection table and `stopping`.
 */
#define _GNU_SOURCE /* accept4 */
#include "hostile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 256
#define MAX_SILENT 256
#define HEAD_MAX 16384
#define BOMB_ZEROS (1u << 30)     /* bytes the gzip bomb inflates to */
#define HUGE_HEADERS (100u << 20) /* bytes of headers */
#define HEADER_LINE 1024u         /* bytes per header line */

struct conn {
  bool used, done;
  int fd;
  pthread_t thread;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast at stop */
  bool stopping;
  int lfd, sfd, stop_pipe[2];
  pthread_t listener;
  struct conn conns[MAX_CONN];
  int silent[MAX_SILENT];
  size_t nsilent;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER,
       .lfd = -1,
       .sfd = -1,
       .stop_pipe = {-1, -1}};

static bool stopping(void) {
  pthread_mutex_lock(&H.mu);
  bool s = H.stopping;
  pthread_mutex_unlock(&H.mu);
  return s;
}

/* Sends all of buf. Returns false when the peer is gone or at stop. */
static bool send_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0 || stopping()) return false;
    p += k;
    n -= (size_t)k;
  }
  return true;
}

static bool send_str(int fd, const char *s) {
  return send_all(fd, s, strlen(s));
}

/* Waits ms, or less if the server stops. Returns false at stop. */
static bool pause_ms(unsigned ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&H.mu);
  while (!H.stopping &&
         pthread_cond_timedwait(&H.cv, &H.mu, &ts) != ETIMEDOUT) {
  }
  bool ok = !H.stopping;
  pthread_mutex_unlock(&H.mu);
  return ok;
}

/* ---- the gzip bomb: built once, by hand (no zlib here) ------------------ */

static pthread_once_t bomb_once = PTHREAD_ONCE_INIT;
static unsigned char *bomb;
static size_t bomb_len;

typedef struct bits {
  unsigned char *p;
  size_t len;
  unsigned acc, n; /* pending bits, LSB first */
} bits;

static void put_bits(bits *b, unsigned v, unsigned n) {
  b->acc |= v << b->n;
  b->n += n;
  while (b->n >= 8) {
    b->p[b->len++] = (unsigned char)b->acc;
    b->acc >>= 8;
    b->n -= 8;
  }
}

/* Huffman codes go most significant bit first. */
static void put_code(bits *b, unsigned code, unsigned n) {
  unsigned r = 0;
  for (unsigned i = 0; i < n; i++) r |= ((code >> i) & 1u) << (n - 1 - i);
  put_bits(b, r, n);
}

/* CRC-32 of n zero bytes without reading them: processing a zero byte
 * multiplies the register by x^8 modulo the polynomial, so the CRC is
 * ~0 * x^(8n) mod P, then inverted (zlib's crc32_combine arithmetic). */
static uint32_t multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ 0xEDB88320u : b >> 1;
  }
  return p;
}

static uint32_t crc32_zeros(uint64_t n) {
  uint32_t x2k = 1u << 30; /* x^(2^k) mod P, from x^1 */
  uint32_t p = 1u << 31;   /* x^0 */
  for (uint64_t e = 8 * n; e; e >>= 1) {
    if (e & 1) p = multmodp(x2k, p);
    x2k = multmodp(x2k, x2k);
  }
  return multmodp(p, 0xFFFFFFFFu) ^ 0xFFFFFFFFu;
}

/* One fixed-Huffman deflate block: a literal 0, then matches of length 258
 * at distance 1 (13 bits each), then a shorter last match and the end. */
static void make_bomb(void) {
  size_t matches = (BOMB_ZEROS - 1) / 258, rest = (BOMB_ZEROS - 1) % 258;
  size_t cap = 32 + matches * 13 / 8 + 64;
  bits b = {.p = malloc(cap)};
  if (!b.p) return;
  static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  memcpy(b.p, head, sizeof head);
  b.len = sizeof head;
  put_bits(&b, 1, 1);        /* BFINAL */
  put_bits(&b, 1, 2);        /* BTYPE 01: fixed codes */
  put_code(&b, 0x30 + 0, 8); /* literal 0 */
  for (size_t i = 0; i < matches; i++) {
    put_code(&b, 0xC5, 8); /* 285: length 258 */
    put_code(&b, 0, 5);    /* distance code 0: 1 */
  }
  if (rest >= 3) { /* lengths 3..10 are codes 257..264, 7 bits, no extra */
    size_t k = rest;
    while (k >= 3) {
      size_t l = k > 10 ? 10 : k;
      if (k - l > 0 && k - l < 3) l = k - 3;
      put_code(&b, (unsigned)(l - 3 + 1), 7); /* 257 + (l - 3) - 256 */
      put_code(&b, 0, 5);
      k -= l;
    }
    rest = k;
  }
  for (size_t i = 0; i < rest; i++) put_code(&b, 0x30, 8);
  put_code(&b, 0, 7); /* 256: end of block */
  if (b.n) put_bits(&b, 0, 8 - b.n);
  uint32_t crc = crc32_zeros(BOMB_ZEROS);
  for (int i = 0; i < 4; i++) b.p[b.len++] = (unsigned char)(crc >> (8 * i));
  for (int i = 0; i < 4; i++)
    b.p[b.len++] = (unsigned char)((uint32_t)BOMB_ZEROS >> (8 * i));
  bomb = b.p;
  bomb_len = b.len;
}

/* ---- routes ------------------------------------------------------------- */

static void route_endless(int fd) {
  char chunk[65536]; /* per connection (see route_reset_mid_body) */
  memset(chunk, 'e', sizeof chunk);
  if (!send_str(fd,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                "Connection: close\r\n\r\n"))
    return;
  while (send_all(fd, chunk, sizeof chunk)) {
  }
}

static void route_drip(int fd) {
  if (!send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")) return;
  for (int i = 0; i < 1000; i++)
    if (!send_all(fd, "d", 1) || !pause_ms(1000)) return;
}

static void route_gzip_bomb(int fd) {
  pthread_once(&bomb_once, make_bomb);
  if (!bomb) {
    send_str(fd, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  char head[256];
  snprintf(head, sizeof head,
           "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
           "Content-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
           bomb_len);
  if (send_str(fd, head)) send_all(fd, bomb, bomb_len);
}

static void route_huge_headers(int fd) {
  char line[HEADER_LINE + 1];
  if (!send_str(fd, "HTTP/1.1 200 OK\r\n")) return;
  for (unsigned i = 0; i < HUGE_HEADERS / HEADER_LINE; i++) {
    int n = snprintf(line, sizeof line, "X-Pad-%08u: ", i);
    memset(line + n, 'h', HEADER_LINE - 2 - (size_t)n);
    memcpy(line + HEADER_LINE - 2, "\r\n", 2);
    if (!send_all(fd, line, HEADER_LINE)) return;
  }
  send_str(fd, "Content-Length: 2\r\n\r\nok");
}

static void route_reset_mid_body(int fd) {
  /* On this connection thread's stack: a shared static buffer filled by
   * every connection was a data race (TSan) once two ran at once. */
  char part[5000];
  memset(part, 'r', sizeof part);
  if (!send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") ||
      !send_all(fd, part, sizeof part))
    return;
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  /* The close in conn_main now sends an RST. */
}

static void route_http10(int fd) {
  char body[5000]; /* per connection (see route_reset_mid_body) */
  memset(body, 'o', sizeof body);
  if (send_str(fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"))
    send_all(fd, body, sizeof body);
  shutdown(fd, SHUT_WR);
}

/* Reads the request head; returns the path (in buf) or NULL. */
static const char *read_head(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return NULL;
    n += (size_t)k;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\n")) break;
  }
  if (strncmp(buf, "GET ", 4) != 0 && strncmp(buf, "HEAD ", 5) != 0)
    return NULL;
  char *path = strchr(buf, ' ') + 1;
  char *end = strpbrk(path, " ?\r\n");
  if (end) *end = '\0';
  return path;
}

static void *conn_main(void *arg) {
  struct conn *c = arg;
  char buf[HEAD_MAX];
  struct timeval tv = {.tv_sec = 10};
  (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const char *path = read_head(c->fd, buf, sizeof buf);
  if (!path) path = "";
  if (!*path)
    shutdown(c->fd, SHUT_RDWR); /* not a GET: hang up */
  else if (strcmp(path, "/endless") == 0)
    route_endless(c->fd);
  else if (strcmp(path, "/drip") == 0)
    route_drip(c->fd);
  else if (strcmp(path, "/gzip-bomb") == 0)
    route_gzip_bomb(c->fd);
  else if (strcmp(path, "/huge-headers") == 0)
    route_huge_headers(c->fd);
  else if (strcmp(path, "/bad-status") == 0)
    send_str(c->fd, "SPDY/9 banana\r\nContent-Length: 2\r\n\r\nok");
  else if (strcmp(path, "/bad-code") == 0)
    send_str(c->fd, "HTTP/1.1 abc Weird\r\nContent-Length: 2\r\n\r\nok");
  else if (strcmp(path, "/http10-close") == 0)
    route_http10(c->fd);
  else if (strcmp(path, "/reset-mid-body") == 0)
    route_reset_mid_body(c->fd);
  else if (strcmp(path, "/keepalive-close") == 0)
    send_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  else
    send_str(c->fd,
             "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
             "Connection: close\r\n\r\n");
  pthread_mutex_lock(&H.mu);
  close(c->fd);
  c->fd = -1;
  c->done = true;
  pthread_mutex_unlock(&H.mu);
  return NULL;
}

/* Joins the connections that have ended (mu held). */
static void reap_locked(bool all) {
  for (size_t i = 0; i < MAX_CONN; i++) {
    struct conn *c = &H.conns[i];
    if (!c->used || (!c->done && !all)) continue;
    pthread_mutex_unlock(&H.mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&H.mu);
    c->used = c->done = false;
  }
}

static void accept_conn(void) {
  int fd = accept4(H.lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  pthread_mutex_lock(&H.mu);
  reap_locked(false);
  struct conn *c = NULL;
  for (size_t i = 0; i < MAX_CONN && !c; i++)
    if (!H.conns[i].used) c = &H.conns[i];
  if (!c || H.stopping) {
    pthread_mutex_unlock(&H.mu);
    close(fd); /* full: the client sees a closed connection */
    return;
  }
  c->used = true;
  c->done = false;
  c->fd = fd;
  if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
    c->used = false;
    close(fd);
  }
  pthread_mutex_unlock(&H.mu);
}

static void accept_silent(void) {
  int fd = accept4(H.sfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  if (H.nsilent == MAX_SILENT) { /* bounded: the oldest goes */
    close(H.silent[0]);
    memmove(H.silent, H.silent + 1, (MAX_SILENT - 1) * sizeof *H.silent);
    H.nsilent--;
  }
  H.silent[H.nsilent++] = fd;
}

static void *listener_main(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd p[3] = {{.fd = H.lfd, .events = POLLIN},
                          {.fd = H.sfd, .events = POLLIN},
                          {.fd = H.stop_pipe[0], .events = POLLIN}};
    if (poll(p, 3, -1) < 0 && errno != EINTR) break;
    if (p[2].revents) break;
    if (p[0].revents & POLLIN) accept_conn();
    if (p[1].revents & POLLIN) accept_silent();
  }
  return NULL;
}

static int listen_any(unsigned *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int hostile_start(unsigned *port, unsigned *silent_port) {
  H.lfd = listen_any(port);
  H.sfd = listen_any(silent_port);
  if (H.lfd < 0 || H.sfd < 0 || pipe(H.stop_pipe) != 0 ||
      pthread_create(&H.listener, NULL, listener_main, NULL) != 0) {
    if (H.lfd >= 0) close(H.lfd);
    if (H.sfd >= 0) close(H.sfd);
    H.lfd = H.sfd = -1;
    return -1;
  }
  return 0;
}

void hostile_stop(void) {
  if (H.lfd < 0) return;
  pthread_mutex_lock(&H.mu);
  H.stopping = true;
  pthread_cond_broadcast(&H.cv);
  for (size_t i = 0; i < MAX_CONN; i++)
    if (H.conns[i].used && !H.conns[i].done) shutdown(H.conns[i].fd, SHUT_RDWR);
  pthread_mutex_unlock(&H.mu);
  ssize_t w = write(H.stop_pipe[1], "x", 1);
  (void)w;
  pthread_join(H.listener, NULL);
  pthread_mutex_lock(&H.mu);
  reap_locked(true);
  pthread_mutex_unlock(&H.mu);
  for (size_t i = 0; i < H.nsilent; i++) close(H.silent[i]);
  close(H.lfd);
  close(H.sfd);
  close(H.stop_pipe[0]);
  close(H.stop_pipe[1]);
  free(bomb);
  H.lfd = H.sfd = -1;
}
