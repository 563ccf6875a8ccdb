/* coll_internal.h: what the collective modules share. */
#ifndef ORCH_COLL_INTERNAL_H
#define ORCH_COLL_INTERNAL_H

#include <stddef.h>

#include "collective/coll.h"

typedef struct {
    int configured;
    uint32_t rank;
    uint32_t world;
    hal_topology topo;
    uint32_t timeout_ms;
    coll_link_stats stats;
} coll_state;

extern coll_state coll_g;

/* hal_link_send / hal_link_recv with counters and the collective timeout. On error they abort all
 * links (see coll_abort) and return the error. */
int coll_send(uint32_t peer, const void *buf, uint32_t n);
int coll_recv(uint32_t peer, void *buf, uint32_t n);
/* 0 if collectives may run, else the error to return. */
int coll_ready(void);

/* Two's complement sums without signed-overflow UB: dst[i] += src[i] for i < n, and the cost of it
 * declared to the HAL (one add per element, three memory accesses). */
void coll_add_s32(int32_t *dst, const int32_t *src, uint32_t n);
void coll_add_s64(int64_t *dst, const int64_t *src, uint32_t n);

/* First element of part j when n elements are split into parts equal to within one. */
static inline uint32_t coll_part_lo(uint32_t j, uint32_t n, uint32_t parts) {
    return (uint32_t)(((uint64_t)j * n) / parts);
}

#endif /* ORCH_COLL_INTERNAL_H */
