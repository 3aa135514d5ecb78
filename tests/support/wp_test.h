/* wpool's own small test runner.
 *
 *   TEST(name) { ... ASSERT_EQ(a, b); ... }
 *   int main(int argc, char **argv) { return wp_test_main(argc, argv); }
 *
 * Tests register themselves (a constructor per TEST). With no argument the
 * program runs every test, each in a child process so that a failing assert
 * (which prints both values and aborts) is counted and the rest go on, and
 * ends with the line "N passed, N failed". With a name it runs that test in
 * the process itself: CTest registers each test that way, with a timeout and
 * a label (tests/CMakeLists.txt). The asserts are safe from any thread.
 */
#ifndef WPOOL_TEST_H
#define WPOOL_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*wp_test_fn)(void);
void wp_test_register(const char *name, wp_test_fn fn);
int wp_test_main(int argc, char **argv);
/* A seed for the test's random choices: WP_TEST_SEED from the environment
 * or the clock; printed so that a failure can be replayed. */
uint64_t wp_test_seed(void);
/* Number of threads in this process now (from /proc/self/task). */
int wp_test_thread_count(void);
/* Waits up to 10 s for the thread count to become `want`, and returns the
 * last count seen. A joined thread is not gone from /proc at once: the
 * kernel wakes pthread_join when the thread drops its memory, and unlists
 * it a moment later (seen once in CI under TSan, after 64 joins). So a test
 * that checks that no thread is left compares this, never a single read. */
int wp_test_thread_count_settles(int want);
/* Scale for repetition counts: 1 normally, smaller under sanitizers only if
 * WP_TEST_SCALE says so. */
double wp_test_scale(void);

#define TEST(name)                                                    \
  static void wp_test_##name(void);                                   \
  __attribute__((constructor)) static void wp_test_reg_##name(void) { \
    wp_test_register(#name, wp_test_##name);                          \
  }                                                                   \
  static void wp_test_##name(void)

#define WP_FAIL_(...)                                                 \
  do {                                                                \
    fprintf(stderr, "%s:%d: assertion failed: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                                     \
    fputc('\n', stderr);                                              \
    fflush(stderr);                                                   \
    abort();                                                          \
  } while (0)

#define ASSERT(c)                 \
  do {                            \
    if (!(c)) WP_FAIL_("%s", #c); \
  } while (0)

#define ASSERT_CMP_(a, op, b)                                         \
  do {                                                                \
    long long wp_a_ = (long long)(a), wp_b_ = (long long)(b);         \
    if (!(wp_a_ op wp_b_))                                            \
      WP_FAIL_("%s %s %s (%lld vs %lld)", #a, #op, #b, wp_a_, wp_b_); \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)

#define ASSERT_STREQ(a, b)                                              \
  do {                                                                  \
    const char *wp_sa_ = (a), *wp_sb_ = (b);                            \
    if (!wp_sa_ || !wp_sb_ || strcmp(wp_sa_, wp_sb_) != 0)              \
      WP_FAIL_("%s == %s (\"%s\" vs \"%s\")", #a, #b,                   \
               wp_sa_ ? wp_sa_ : "(null)", wp_sb_ ? wp_sb_ : "(null)"); \
  } while (0)

/* Asserts that a wpool call returned 0, printing its message otherwise. */
#define ASSERT_OK(call)                                         \
  do {                                                          \
    int wp_rc_ = (call);                                        \
    if (wp_rc_ != 0) WP_FAIL_("%s returned %d", #call, wp_rc_); \
  } while (0)

#endif
