/* posix_clock.c: the mock chip's deterministic virtual cycle counter.
 *
 * Nothing here reads a wall clock: the counter advances only when the firmware declares work
 * (hal_account) or sends a link message, and jumps forward when a message stamped later than the
 * receiver's own time arrives. So the same firmware doing the same work on the same inputs shows the
 * same cycle counts however the host OS schedules the chip processes. Exact rule: docs/mock-chip.md. */
#include "hal/hal.h"
#include "hal/posix/posix_internal.h"

static hal_profile g_profile = {
    "default", 1000u, 4000u, 1000u, 1000u, 1000u, 0u, 0u, 0u,
};
static uint64_t g_vt;

uint64_t posix_cost_cycles(uint64_t amount, uint32_t rate_per_kcycle) {
    uint64_t rate = rate_per_kcycle ? rate_per_kcycle : 1u;
    /* amount*1000 may overflow 64 bits; split amount = q*rate + r so only r*1000 (< 2^42) is
     * multiplied: ceil(amount*1000/rate) = q*1000 + ceil(r*1000/rate). */
    uint64_t q = amount / rate;
    uint64_t r = amount % rate;
    return q * 1000u + (r * 1000u + rate - 1u) / rate;
}

void posix_clock_reset(const hal_profile *p) {
    g_profile = *p;
    g_vt = 0;
}

uint64_t posix_clock_vt(void) { return g_vt; }

uint64_t hal_cycles(void) { return g_vt + g_profile.cycle_offset; }

void hal_account(uint64_t macs, uint64_t onchip_bytes, uint64_t offchip_bytes) {
    uint64_t c = posix_cost_cycles(macs, g_profile.macs_per_kcycle);
    uint64_t c_on = posix_cost_cycles(onchip_bytes, g_profile.onchip_bytes_per_kcycle);
    uint64_t c_off = posix_cost_cycles(offchip_bytes, g_profile.offchip_bytes_per_kcycle);
    if (c_on > c) c = c_on;
    if (c_off > c) c = c_off;
    g_vt += c;
}

uint64_t posix_clock_charge_send(uint32_t n_bytes) {
    g_vt += (uint64_t)g_profile.link_latency_cycles +
            posix_cost_cycles(n_bytes, g_profile.link_bytes_per_kcycle);
    return g_vt;
}

void posix_clock_observe(uint64_t stamp) {
    if (stamp > g_vt) g_vt = stamp;
}
