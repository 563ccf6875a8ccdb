/* check.h: the assertion macros the HAL and collective tests share. Each test is its own binary. */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <stdio.h>

static unsigned g_pass, g_fail;

/* In the test driver process: count, and print the first line of every failure. */
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            g_pass++;                                                                          \
        } else {                                                                               \
            g_fail++;                                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

/* In a forked chip process: count into the shared page S for rank R and keep the first failure. */
#define CCHECK(cond, ...)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            S->passed[R]++;                                                                    \
        } else if (S->failed[R]++ == 0) {                                                      \
            snprintf(S->first_fail[R], sizeof(S->first_fail[R]), __VA_ARGS__);                \
        }                                                                                      \
    } while (0)

#endif
