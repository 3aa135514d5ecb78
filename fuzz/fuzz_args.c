/* Fuzz target: the argument parser of `wpool fetch` (parse_fetch_args in
 * src/cli/main.c).
 *
 * main.c is compiled into this target with main renamed and exit() turned
 * into a longjmp back here, so the parser runs as it is, usage errors and
 * --help included. Input: the arguments after "fetch", separated by NUL
 * bytes (at most 64). Checked: it either returns options inside their
 * documented ranges (workers 1-10000, queue 1-1000000 or 2*workers, every
 * header "Name: value" without CR or LF, FILEs taken from the arguments),
 * or exits with 0 (--help, --version) or 2 (usage error), never anything
 * else; nothing leaks (ASan).
 *
 * stdout goes to /dev/null; usage messages still reach stderr (libFuzzer
 * runs use -close_fd_mask=2).
 */
#define _GNU_SOURCE
#define exit wp_fuzz_exit /* before <stdlib.h>: its prototype too */
#include <setjmp.h>
#include <stdlib.h>

#define main wpool_main
int main(int argc, char **argv);
#include "../src/cli/main.c"
#undef exit
#undef main

#include "fuzz.h"

static jmp_buf jb;
static int exit_status;

void wp_fuzz_exit(int status) {
  exit_status = status;
  longjmp(jb, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (!freopen("/dev/null", "w", stdout)) abort();
  return 0;
}

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  static char buf[4096 + 8];
  static char *argv[MAX_ARGS + 2];
  static options o; /* static: kept across the longjmp */
  memcpy(buf, data, size);
  buf[size] = '\0';
  int argc = 0;
  argv[argc++] = "fetch";
  for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  if (size == 0) argc = 1;
  argv[argc] = NULL;
  char *copy[MAX_ARGS + 2]; /* getopt permutes argv: keep what was given */
  memcpy(copy, argv, sizeof copy);

  /* Reset getopt completely: parse_fetch_args sets optind = 1, which in
   * glibc keeps a pointer into the previous argv when the previous parse
   * stopped inside "-hX" (fine in a process that parses once). */
  static char *reset_argv[] = {"x", NULL};
  optind = 0;
  (void)getopt(1, reset_argv, "");

  memset(&o, 0, sizeof o);
  exit_status = -1;
  if (setjmp(jb) == 0) {
    parse_fetch_args(argc, argv, &o);
    FUZZ_CHECK(o.workers >= 1 && o.workers <= 10000, "workers %u", o.workers);
    FUZZ_CHECK(
        o.queue >= 1 && (o.queue <= 1000000 || o.queue == 2ull * o.workers),
        "queue %llu", (unsigned long long)o.queue);
    FUZZ_CHECK(
        o.timeout_ns >= 0 && o.connect_timeout_ns >= 0 && o.deadline_ns >= 0,
        "negative duration");
    FUZZ_CHECK(o.max_redirects >= 0 && o.max_redirects <= 1000, "redirects");
    FUZZ_CHECK(o.loops <= 64, "loops %u", o.loops);
    FUZZ_CHECK(o.nheaders < (size_t)argc, "%zu headers", o.nheaders);
    for (size_t i = 0; i < o.nheaders; i++) {
      const char *h = o.headers[i];
      FUZZ_CHECK(strchr(h, ':') && h[0] != ':' && !strpbrk(h, "\r\n"),
                 "header '%s'", h);
    }
    FUZZ_CHECK(o.nfiles <= (size_t)argc - 1, "%zu files", o.nfiles);
    for (size_t i = 0; i < o.nfiles; i++) {
      bool found = false;
      for (int k = 1; k < argc && !found; k++) found = o.files[i] == copy[k];
      FUZZ_CHECK(found, "file %zu is not an argument", i);
    }
  } else {
    FUZZ_CHECK(exit_status == EXIT_OK || exit_status == EXIT_USAGE,
               "exit status %d", exit_status);
  }
  free(o.headers);
  o.headers = NULL;
  return 0;
}
