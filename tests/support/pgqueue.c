/* wpool-pgqueue: the PostgreSQL queue's calls (src/store/pg.c) one at a
 * time, for the integration tests (tests/integration/test_store.py) that
 * must put the queue into states a whole worker never shows on demand, such
 * as a stale result arriving after the same worker claimed the job again.
 *
 *   wpool-pgqueue URL claim QUEUE WORKER MAX    prints "id attempts" a line
 *   wpool-pgqueue URL heartbeat QUEUE WORKER    prints how many were reaped
 *   wpool-pgqueue URL finish WORKER ID CLAIM    records job ID as completed
 *                                               (ok, 200) by that claim
 *
 * Exit 0, or 1 with the error on stderr; 2 on a usage error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static void print_job(const wp__qjob *j, void *userdata) {
  (void)userdata;
  printf("%" PRId64 " %u\n", j->id, j->attempts);
}

static int usage(void) {
  fprintf(stderr,
          "usage: wpool-pgqueue URL claim QUEUE WORKER MAX\n"
          "       wpool-pgqueue URL heartbeat QUEUE WORKER\n"
          "       wpool-pgqueue URL finish WORKER ID CLAIM\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *cmd = argv[2];
  char err[1024] = "";
  wp__pg *pg;
  if (wp__pg_connect(argv[1], &pg, err, sizeof err) != 0) {
    fprintf(stderr, "wpool-pgqueue: %s\n", err);
    return 1;
  }
  int rc;
  if (strcmp(cmd, "claim") == 0 && argc == 6) {
    rc = wp__pg_claim(pg, argv[3], argv[4], 60000000000LL,
                      (unsigned)strtoul(argv[5], NULL, 10), print_job, NULL,
                      err, sizeof err) < 0;
  } else if (strcmp(cmd, "heartbeat") == 0 && argc == 5) {
    long reaped = 0;
    rc = wp__pg_heartbeat(pg, argv[4], argv[3], 60000000000LL, &reaped, err,
                          sizeof err) != 0;
    if (rc == 0) printf("%ld\n", reaped);
  } else if (strcmp(cmd, "finish") == 0 && argc == 6) {
    wp__qdone d;
    memset(&d, 0, sizeof d);
    d.id = strtoll(argv[4], NULL, 10);
    d.attempts = (unsigned)strtoul(argv[5], NULL, 10);
    d.kind = WP__Q_DONE;
    d.ok = true;
    d.status = 200;
    d.elapsed_ms = 1;
    rc = wp__pg_finish(pg, argv[3], &d, 1, err, sizeof err) != 0;
  } else {
    wp__pg_close(pg);
    return usage();
  }
  wp__pg_close(pg);
  if (rc) fprintf(stderr, "wpool-pgqueue: %s\n", err);
  return rc ? 1 : 0;
}
