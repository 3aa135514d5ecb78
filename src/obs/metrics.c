/* Metrics registry and Prometheus text rendering: see wpool/metrics.h.
 *
 * Design. A registry is a list of families (name, help, type) in
 * registration order, each a list of series; registering and rendering hold
 * the registry's mutex, updates never do: a series' values are atomics
 * (relaxed: a scrape needs no ordering between series). Each series is its
 * own allocation and never moves or goes away before the registry, so the
 * pointers handed out stay valid without a reference count.
 *
 * A series is identified by its label pairs rendered once at registration
 * (name="escaped value",...), which is also what the renderer prints.
 *
 * Histograms keep one count per bucket (not cumulative), so an observation
 * is one bucket increment plus the sum; the renderer accumulates them and
 * prints _count as the +Inf bucket, so the two always agree and buckets
 * never decrease within a scrape even while observations go on.
 *
 * Doubles (gauges, histogram sums) are stored as their bit patterns in
 * atomic 64-bit words; adding is a compare-and-swap loop.
 *
 * Lock order: registry mu, then whatever a collector takes (a pool's mu).
 * Nothing of the library takes the registry's mu while holding another lock.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "obs/prom.h"
#include "wpool/error.h"
#include "wpool/metrics.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };
static const char *const kind_names[] = {"counter", "gauge", "histogram"};

#define MAX_BOUNDS 64

struct wp_counter {
  atomic_uint_fast64_t v;
};
struct wp_gauge {
  atomic_uint_fast64_t bits;
};
struct wp_histogram {
  size_t nb;
  double *bounds;               /* nb, increasing */
  atomic_uint_fast64_t *counts; /* nb + 1: the last is above every bound */
  atomic_uint_fast64_t sum_bits;
};

typedef struct series {
  struct series *next;
  char *key; /* rendered label pairs, "" for none */
  union {
    struct wp_counter c;
    struct wp_gauge g;
    struct wp_histogram h;
  } u;
} series;

typedef struct family {
  struct family *next;
  char *name, *help;
  enum kind kind;
  series *first, **tail;
} family;

typedef struct collector {
  struct collector *next;
  wp_metrics_collect_cb cb;
  void *arg;
} collector;

struct wp_metrics {
  pthread_mutex_t mu;
  family *first, **tail;
  collector *collectors;
  bool process;
  double start_time; /* process_start_time_seconds, read once */
};

/* ---- doubles in atomic words --------------------------------------------- */

static uint64_t dbits(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static double bitsd(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static void atomic_add_double(atomic_uint_fast64_t *a, double d) {
  uint_fast64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + d),
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

/* ---- updates (no lock) ------------------------------------------------- */

void wp_counter_add(wp_counter *c, uint64_t n) {
  if (c) atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t wp_counter_value(const wp_counter *c) {
  return c ? atomic_load_explicit(&((wp_counter *)c)->v, memory_order_relaxed)
           : 0;
}

void wp_gauge_set(wp_gauge *g, double v) {
  if (g) atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void wp_gauge_add(wp_gauge *g, double delta) {
  if (g) atomic_add_double(&g->bits, delta);
}

double wp_gauge_value(const wp_gauge *g) {
  return g ? bitsd(atomic_load_explicit(&((wp_gauge *)g)->bits,
                                        memory_order_relaxed))
           : 0;
}

void wp_histogram_observe(wp_histogram *h, double v) {
  if (!h || isnan(v)) return;
  size_t i = 0;
  while (i < h->nb && v > h->bounds[i]) i++;
  atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
  atomic_add_double(&h->sum_bits, v);
}

uint64_t wp_histogram_count(const wp_histogram *h) {
  if (!h) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i <= h->nb; i++)
    n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
  return n;
}

/* ---- the registry ---------------------------------------------------------
 */

int wp_metrics_create(wp_metrics **out) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  wp_metrics *m = calloc(1, sizeof *m);
  if (!m) return WP_ENOMEM;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return WP_ESYSTEM;
  }
  m->tail = &m->first;
  *out = m;
  return 0;
}

static void series_free(enum kind k, series *s) {
  if (k == K_HISTOGRAM) {
    free(s->u.h.bounds);
    free(s->u.h.counts);
  }
  free(s->key);
  free(s);
}

void wp_metrics_destroy(wp_metrics *m) {
  if (!m) return;
  for (family *f = m->first, *fn; f; f = fn) {
    fn = f->next;
    for (series *s = f->first, *sn; s; s = sn) {
      sn = s->next;
      series_free(f->kind, s);
    }
    free(f->name);
    free(f->help);
    free(f);
  }
  for (collector *c = m->collectors, *cn; c; c = cn) {
    cn = c->next;
    free(c);
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* Renders labels as name="value",... into a malloc'd string; NULL on a bad
 * label name or no memory (*rc says which). */
static char *render_labels(const char *const *labels, enum kind k, int *rc) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) {
    *rc = WP_ENOMEM;
    return NULL;
  }
  *rc = 0;
  for (size_t i = 0; labels && labels[i]; i += 2) {
    const char *v = labels[i + 1];
    if (!v || !wp__prom_valid_name(labels[i], true) ||
        (k == K_HISTOGRAM && strcmp(labels[i], "le") == 0)) {
      *rc = WP_EINVAL;
      break;
    }
    /* The same label twice would be an invalid series. */
    for (size_t j = 0; j < i; j += 2)
      if (strcmp(labels[j], labels[i]) == 0) *rc = WP_EINVAL;
    if (*rc) break;
    if (fprintf(f, "%s%s=\"", i ? "," : "", labels[i]) < 0 ||
        wp__prom_escape(f, v, strlen(v), true) != 0 || fputc('"', f) == EOF) {
      *rc = WP_ENOMEM;
      break;
    }
  }
  if (fclose(f) != 0 && *rc == 0) *rc = WP_ENOMEM;
  if (*rc != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

static int bounds_ok(const double *b, size_t n) {
  if (!b || n < 1 || n > MAX_BOUNDS) return 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(b[i])) return 0;
    if (i > 0 && !(b[i] > b[i - 1])) return 0;
  }
  return 1;
}

static int same_bounds(const struct wp_histogram *h, const double *b,
                       size_t n) {
  return h->nb == n && memcmp(h->bounds, b, n * sizeof *b) == 0;
}

/* Finds or adds the series; returns it in *out. */
static int reg(wp_metrics *m, const char *name, const char *help,
               const char *const *labels, enum kind k, const double *bounds,
               size_t nb, series **out) {
  *out = NULL;
  if (!m || !name || !wp__prom_valid_name(name, false)) return WP_EINVAL;
  if (k == K_HISTOGRAM && !bounds_ok(bounds, nb)) return WP_EINVAL;
  int rc;
  char *key = render_labels(labels, k, &rc);
  if (!key) return rc;
  series *s = NULL;
  family *nf = NULL;
  pthread_mutex_lock(&m->mu);
  family *f = m->first;
  while (f && strcmp(f->name, name) != 0) f = f->next;
  rc = WP_EINVAL;
  if (f && f->kind != k) goto out;
  if (f) {
    for (s = f->first; s; s = s->next)
      if (strcmp(s->key, key) == 0) break;
    if (s) {
      if (k == K_HISTOGRAM && !same_bounds(&s->u.h, bounds, nb)) {
        s = NULL;
        goto out;
      }
      rc = 0;
      goto out;
    }
  }
  rc = WP_ENOMEM;
  s = calloc(1, sizeof *s);
  if (!s) goto out;
  if (k == K_HISTOGRAM) {
    s->u.h.nb = nb;
    s->u.h.bounds = malloc(nb * sizeof *bounds);
    s->u.h.counts = calloc(nb + 1, sizeof *s->u.h.counts);
    if (!s->u.h.bounds || !s->u.h.counts) goto fail_series;
    memcpy(s->u.h.bounds, bounds, nb * sizeof *bounds);
  }
  if (!f) {
    nf = calloc(1, sizeof *nf);
    if (!nf) goto fail_series;
    nf->name = strdup(name);
    nf->help = strdup(help ? help : "");
    if (!nf->name || !nf->help) goto fail_family;
    nf->kind = k;
    nf->tail = &nf->first;
    *m->tail = nf;
    m->tail = &nf->next;
    f = nf;
  }
  s->key = key;
  key = NULL;
  /* f is set: found above, or the new family just made. */
  /* cppcheck-suppress nullPointerRedundantCheck */
  *f->tail = s;
  /* cppcheck-suppress nullPointerRedundantCheck */
  f->tail = &s->next;
  rc = 0;
  goto out;
fail_family:
  free(nf->name);
  free(nf->help);
  free(nf);
fail_series:
  series_free(k, s);
  s = NULL;
out:
  pthread_mutex_unlock(&m->mu);
  free(key);
  *out = s;
  return rc;
}

int wp_metrics_counter(wp_metrics *m, const char *name, const char *help,
                       const char *const *labels, wp_counter **out) {
  if (!out) return WP_EINVAL;
  series *s;
  int rc = reg(m, name, help, labels, K_COUNTER, NULL, 0, &s);
  *out = s ? &s->u.c : NULL;
  return rc;
}

int wp_metrics_gauge(wp_metrics *m, const char *name, const char *help,
                     const char *const *labels, wp_gauge **out) {
  if (!out) return WP_EINVAL;
  series *s;
  int rc = reg(m, name, help, labels, K_GAUGE, NULL, 0, &s);
  *out = s ? &s->u.g : NULL;
  return rc;
}

int wp_metrics_histogram(wp_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds,
                         size_t nbounds, wp_histogram **out) {
  if (!out) return WP_EINVAL;
  series *s;
  int rc = reg(m, name, help, labels, K_HISTOGRAM, bounds, nbounds, &s);
  *out = s ? &s->u.h : NULL;
  return rc;
}

int wp_metrics_add_collector(wp_metrics *m, wp_metrics_collect_cb cb,
                             void *arg) {
  if (!m || !cb) return WP_EINVAL;
  collector *c = malloc(sizeof *c);
  if (!c) return WP_ENOMEM;
  c->cb = cb;
  c->arg = arg;
  pthread_mutex_lock(&m->mu);
  c->next = m->collectors;
  m->collectors = c;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

int wp_metrics_remove_collector(wp_metrics *m, wp_metrics_collect_cb cb,
                                void *arg) {
  if (!m) return WP_EINVAL;
  collector *found = NULL;
  pthread_mutex_lock(&m->mu); /* a render in progress finishes first */
  for (collector **pp = &m->collectors; *pp; pp = &(*pp)->next) {
    if ((*pp)->cb == cb && (*pp)->arg == arg) {
      found = *pp;
      *pp = found->next;
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
  free(found);
  return found ? 0 : WP_EINVAL;
}

/* ---- process metrics (Linux /proc) -------------------------------------- */

/* The process's start, in seconds since the epoch: its start time in clock
 * ticks since boot (/proc/self/stat, field 22) plus the boot time
 * (/proc/stat btime). 0 if unknown. */
static double read_start_time(void) {
  double start = 0;
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: the fields
   * after it start past the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p++;
  unsigned long long ticks = 0;
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ') p++;
    if (field == 22) {
      ticks = strtoull(p, NULL, 10);
      break;
    }
    while (*p && *p != ' ') p++;
  }
  f = fopen("/proc/stat", "r");
  if (!f) return 0;
  unsigned long long btime = 0;
  char line[256];
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "btime ", 6) == 0) {
      btime = strtoull(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  long hz = sysconf(_SC_CLK_TCK);
  if (btime && hz > 0) start = (double)btime + (double)ticks / (double)hz;
  return start;
}

int wp_metrics_add_process(wp_metrics *m) {
  if (!m) return WP_EINVAL;
  double st = read_start_time();
  pthread_mutex_lock(&m->mu);
  m->process = true;
  m->start_time = st;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* not the descriptor that reads the directory */
}

static void write_one(FILE *f, const char *name, const char *type,
                      const char *help, double v) {
  char num[32];
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type,
          name, wp__prom_double(num, sizeof num, v));
}

static void write_process(wp_metrics *m, FILE *f) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    double cpu =
        (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
        ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    write_one(f, "process_cpu_seconds_total", "counter",
              "Total user and system CPU time spent in seconds.", cpu);
  }
  unsigned long long vsz = 0, rss = 0;
  FILE *st = fopen("/proc/self/statm", "r");
  if (st) {
    /* The kernel's own numbers, and the count is checked: no conversion
     * error to report. */
    /* NOLINTNEXTLINE(cert-err34-c) */
    if (fscanf(st, "%llu %llu", &vsz, &rss) == 2) {
      long page = sysconf(_SC_PAGESIZE);
      write_one(f, "process_resident_memory_bytes", "gauge",
                "Resident memory size in bytes.", (double)rss * (double)page);
      write_one(f, "process_virtual_memory_bytes", "gauge",
                "Virtual memory size in bytes.", (double)vsz * (double)page);
    }
    fclose(st);
  }
  int fds = open_fds();
  if (fds >= 0)
    write_one(f, "process_open_fds", "gauge",
              "Number of open file descriptors.", fds);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    write_one(f, "process_max_fds", "gauge",
              "Maximum number of open file descriptors.",
              rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
  if (m->start_time > 0)
    write_one(f, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.",
              m->start_time);
}

/* ---- rendering -------------------------------------------------------------
 */

static void write_series(FILE *f, const family *fam, const series *s) {
  char num[32];
  const char *open = s->key[0] ? "{" : "", *close = s->key[0] ? "}" : "";
  switch (fam->kind) {
    case K_COUNTER:
      fprintf(f, "%s%s%s%s %" PRIu64 "\n", fam->name, open, s->key, close,
              (uint64_t)atomic_load_explicit(&((series *)s)->u.c.v,
                                             memory_order_relaxed));
      break;
    case K_GAUGE:
      fprintf(f, "%s%s%s%s %s\n", fam->name, open, s->key, close,
              wp__prom_double(num, sizeof num, wp_gauge_value(&s->u.g)));
      break;
    case K_HISTOGRAM: {
      const struct wp_histogram *h = &s->u.h;
      const char *sep = s->key[0] ? "," : "";
      uint64_t cum = 0;
      for (size_t i = 0; i <= h->nb; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        fprintf(
            f, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", fam->name, s->key, sep,
            i < h->nb ? wp__prom_double(num, sizeof num, h->bounds[i]) : "+Inf",
            cum);
      }
      double sum = bitsd(atomic_load_explicit(&((series *)s)->u.h.sum_bits,
                                              memory_order_relaxed));
      fprintf(f, "%s_sum%s%s%s %s\n", fam->name, open, s->key, close,
              wp__prom_double(num, sizeof num, sum));
      fprintf(f, "%s_count%s%s%s %" PRIu64 "\n", fam->name, open, s->key, close,
              cum);
      break;
    }
  }
}

int wp_metrics_write(wp_metrics *m, FILE *f) {
  if (!m || !f) return WP_EINVAL;
  pthread_mutex_lock(&m->mu);
  for (collector *c = m->collectors; c; c = c->next) c->cb(c->arg);
  for (const family *fam = m->first; fam; fam = fam->next) {
    if (!fam->first) continue;
    fprintf(f, "# HELP %s ", fam->name);
    wp__prom_escape(f, fam->help, strlen(fam->help), false);
    fprintf(f, "\n# TYPE %s %s\n", fam->name, kind_names[fam->kind]);
    for (const series *s = fam->first; s; s = s->next) write_series(f, fam, s);
  }
  if (m->process) write_process(m, f);
  pthread_mutex_unlock(&m->mu);
  return ferror(f) ? WP_ESYSTEM : 0;
}

int wp_metrics_render(wp_metrics *m, char **out, size_t *len) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  if (!m) return WP_EINVAL;
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return WP_ENOMEM;
  int rc = wp_metrics_write(m, f);
  if (fclose(f) != 0 && rc == 0) rc = WP_ENOMEM;
  if (rc != 0) {
    free(buf);
    return rc == WP_ESYSTEM ? WP_ENOMEM : rc;
  }
  *out = buf;
  if (len) *len = n;
  return 0;
}
