/* main.c: a mock chip. One process runs the same runtime a board runs, over the POSIX HAL:
 * host link = pseudo-terminal, chip links = Unix sockets, flash = a file, clock = virtual. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "hal/posix/posix_chip.h"
#include "runtime/runtime.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    posix_chip_args a;
    posix_default_args(&a);
    int rc = posix_parse_args(argc, argv, &a);
    if (rc == 1) {
        fputs(posix_usage(), stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "orch-chip: %s\n", a.error);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (posix_chip_init(&a) != 0) {
        fprintf(stderr, "orch-chip %u: %s\n", a.chip_id, posix_chip_error());
        return 1;
    }
    runtime_init();
    while (!stop) {
        if (runtime_poll(200) < 0) {
            fprintf(stderr, "orch-chip %u: host link failed\n", a.chip_id);
            break;
        }
    }
    posix_chip_close();
    return 0;
}
