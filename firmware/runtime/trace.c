/* trace.c: see trace.h. The decoder and the encoder charge and record their phases the same way,
 * which is what the host's cost model (orchestrator/perf) mirrors. */
#include "runtime/trace.h"

#include <stddef.h>

#include "hal/hal.h"

trace_phase_t trace_phase_begin(proto_trace_record *recs, uint32_t cap, uint32_t *n, uint32_t index,
                                uint8_t phase, uint8_t layer) {
    trace_phase_t p = {NULL, {0, 0, 0, 0}};
    if (*n < cap) {
        p.r = &recs[(*n)++];
        p.r->token_index = index;
        p.r->phase = phase;
        p.r->layer = layer;
        p.r->start_cycles = hal_cycles();
        p.r->macs = p.r->onchip_bytes = p.r->offchip_bytes = 0;
        p.r->link_tx_bytes = p.r->link_rx_bytes = 0;
    }
    coll_link_stats_get(&p.link0);
    return p;
}

void trace_phase_end(trace_phase_t *p, uint64_t macs, uint64_t onchip, uint64_t offchip) {
    hal_account(macs, onchip, offchip);
    if (!p->r) return;
    coll_link_stats s;
    coll_link_stats_get(&s);
    p->r->macs = macs;
    p->r->onchip_bytes = onchip;
    p->r->offchip_bytes = offchip;
    p->r->link_tx_bytes = (uint32_t)(s.tx_bytes - p->link0.tx_bytes);
    p->r->link_rx_bytes = (uint32_t)(s.rx_bytes - p->link0.rx_bytes);
    p->r->end_cycles = hal_cycles();
}
