/* posix_internal.h: what the files of the posix port share. Not for portable code. */
#ifndef ORCH_POSIX_INTERNAL_H
#define ORCH_POSIX_INTERNAL_H

#include <stdint.h>

#include "hal/posix/posix_chip.h"

/* The arguments the chip was started with (defaults before posix_chip_init). */
const posix_chip_args *posix_args(void);
/* Records a one-line reason for posix_chip_error(); printf-style. Returns HAL_ERR_IO for chaining. */
int posix_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Virtual clock (posix_clock.c). Time is kept on one cluster-wide axis ("virtual time", vt, zero
 * when every chip boots); hal_cycles() adds the chip's cycle_offset, as a board's counter shows
 * cycles since its own power-on. */
void posix_clock_reset(const hal_profile *p);
uint64_t posix_clock_vt(void);
uint64_t posix_clock_charge_send(uint32_t n_bytes); /* advances vt, returns the stamp to send */
void posix_clock_observe(uint64_t stamp);            /* vt = max(vt, stamp) */
/* ceil(amount / (rate_per_kcycle / 1000)) without overflow; rate 0 is treated as 1. */
uint64_t posix_cost_cycles(uint64_t amount, uint32_t rate_per_kcycle);

int posix_host_open(void);
void posix_host_close(void);
/* Forgets links, configuration and the fault-hook count: after it, links are "not configured". */
void posix_links_reset(void);
int posix_nv_open(void);
void posix_nv_close(void);

#endif /* ORCH_POSIX_INTERNAL_H */
