#define _GNU_SOURCE
#include "wp_test.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WP_TEST_MAX 256

static struct {
  const char *name;
  wp_test_fn fn;
} tests[WP_TEST_MAX];
static int ntests;

void wp_test_register(const char *name, wp_test_fn fn) {
  if (ntests == WP_TEST_MAX) {
    fprintf(stderr, "too many tests (max %d)\n", WP_TEST_MAX);
    abort();
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  ntests++;
}

uint64_t wp_test_seed(void) {
  static uint64_t seed;
  if (seed) return seed;
  const char *s = getenv("WP_TEST_SEED");
  if (s && *s) {
    seed = strtoull(s, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
           ((uint64_t)getpid() << 32);
  }
  if (!seed) seed = 1;
  fprintf(stderr, "WP_TEST_SEED=%" PRIu64 "\n", seed);
  return seed;
}

static void *noop_thread(void *arg) { return arg; }

int wp_test_thread_count(void) {
  /* Sanitizer runtimes start a helper thread of their own at the first
   * pthread_create: make that happen before anything is counted. */
  static int warmed;
  if (!warmed) {
    pthread_t t;
    if (pthread_create(&t, NULL, noop_thread, NULL) == 0) pthread_join(t, NULL);
    warmed = 1;
  }
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

int wp_test_thread_count_settles(int want) {
  struct timespec t0, now, ms = {0, 1000000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int n;
  while ((n = wp_test_thread_count()) != want) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec >= 10) break;
    nanosleep(&ms, NULL);
  }
  return n;
}

double wp_test_scale(void) {
  const char *s = getenv("WP_TEST_SCALE");
  if (!s || !*s) return 1.0;
  double v = strtod(s, NULL);
  return v > 0 ? v : 1.0;
}

static int run_one(int i) {
  fprintf(stderr, "-- %s\n", tests[i].name);
  tests[i].fn();
  return 0;
}

int wp_test_main(int argc, char **argv) {
  if (argc > 1) {
    for (int i = 0; i < ntests; i++)
      if (strcmp(tests[i].name, argv[1]) == 0) return run_one(i);
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  int passed = 0, failed = 0;
  for (int i = 0; i < ntests; i++) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    if (pid == 0) _exit(run_one(i));
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      passed++;
      printf("ok   %s\n", tests[i].name);
    } else {
      failed++;
      printf("FAIL %s (%s %d)\n", tests[i].name,
             WIFSIGNALED(st) ? "signal" : "exit",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
