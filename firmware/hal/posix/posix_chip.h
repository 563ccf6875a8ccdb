/* posix_chip.h: the mock chip's process-level API (command line, start-up, shut-down).
 * Only hal/posix/main.c and the C tests use it; portable code sees hal.h alone.
 * The command line and run-dir layout are documented in docs/mock-chip.md. */
#ifndef ORCH_POSIX_CHIP_H
#define ORCH_POSIX_CHIP_H

#include <stdint.h>

#include "hal/hal.h"

#define POSIX_PATH_MAX 256u   /* run dir and nv path, including NUL */
#define POSIX_ERROR_MAX 256u

typedef struct {
    uint32_t chip_id;
    char run_dir[POSIX_PATH_MAX];  /* where link<rank>.sock and chip<ID>.pty live; must exist */
    char nv_path[POSIX_PATH_MAX];  /* "" means <run_dir>/chip<ID>.nv */
    uint32_t nv_size;              /* bytes; 0 = no non-volatile storage */
    hal_profile profile;
    uint32_t link_timeout_ms;      /* link send and configure (connect/accept) timeout */
    uint32_t host_write_timeout_ms;
    int no_pty;                    /* 1: no host link (collective tests, link benchmarks) */
    int quiet;                     /* 1: do not print the "PTY <path>" line on stdout */
    uint32_t fault_exit_after_sends; /* test hook: _exit(86) on this many-th link send; 0 = never */
    char error[POSIX_ERROR_MAX];   /* set by posix_parse_args on failure */
} posix_chip_args;

/* Exit status of a chip killed by the fault hook, so tests can tell it from a crash. */
#define POSIX_FAULT_EXIT_STATUS 86

/* Fills *out with the documented defaults (run_dir "." etc.). */
void posix_default_args(posix_chip_args *out);
/* Parses argv[1..argc-1] over the defaults. Returns 0 on success, 1 if --help was given (print
 * posix_usage()), -1 on a bad option with a one-line reason in out->error. */
int posix_parse_args(int argc, char **argv, posix_chip_args *out);
const char *posix_usage(void);

/* Starts the chip: opens/creates the nv file, opens the pty and announces it, resets the virtual
 * clock to the profile's cycle offset. Returns 0, or <0 with a reason in posix_chip_error(). */
int posix_chip_init(const posix_chip_args *a);
/* Releases everything posix_chip_init acquired (links, pty, nv mapping); init may be called again. */
void posix_chip_close(void);
const char *posix_chip_error(void);
/* The slave path of the host pty ("" without one). */
const char *posix_host_pty_path(void);

#endif /* ORCH_POSIX_CHIP_H */
