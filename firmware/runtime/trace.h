/* trace.h: one trace record per phase: cycle stamps, the work declared, link bytes moved. */
#ifndef RUNTIME_TRACE_H
#define RUNTIME_TRACE_H

#include <stdint.h>

#include "collective/coll.h"
#include "proto/msg.h"

typedef struct {
    proto_trace_record *r; /* NULL when the buffer was full: the work is still charged */
    coll_link_stats link0;
} trace_phase_t;

/* Opens a record in recs[*n] (if *n < cap) stamped with the current cycle count. */
trace_phase_t trace_phase_begin(proto_trace_record *recs, uint32_t cap, uint32_t *n, uint32_t index,
                                uint8_t phase, uint8_t layer);
/* Declares the phase's work to the cycle counter (one roofline charge per phase) and closes it. */
void trace_phase_end(trace_phase_t *p, uint64_t macs, uint64_t onchip, uint64_t offchip);

#endif
